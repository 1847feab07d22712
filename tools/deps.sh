#!/bin/sh
# deps.sh: install the Debian packages zhv's build, tests and packaging
# need (Debian 12). As root it runs apt-get itself; as any other user
# through sudo. Needs nothing but apt-get, so it works before make is
# installed (build-essential brings make). `make deps` runs it.
set -eu

PKGS="build-essential libzydis-dev libseccomp-dev liburing-dev libcmocka-dev libtsan2
clang libclang-rt-dev qemu-system-x86 pkg-config debhelper lintian gdb python3 iproute2"

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO=sudo
else
	echo "deps.sh: installing packages needs root: run it as root, or install sudo" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# shellcheck disable=SC2086 # one word per package
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $PKGS
