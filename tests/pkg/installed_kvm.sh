#!/usr/bin/env bash
# installed_kvm.sh LIBDIR ZHV GUEST [HELLO...]: the checks of an installed
# zhv that need KVM (run by tests/pkg/install.sh and package.sh, inside
# tools/kvm-in-qemu.sh where this machine has no /dev/kvm). LIBDIR (or -
# for the system's) is the LD_LIBRARY_PATH of the programs; ZHV is the
# installed zhv, GUEST the installed bundled guest, each HELLO a build of
# examples/hello_guest.c. Prints "ok - NAME" / "not ok - NAME" lines.
set -u
libdir=$1 zhv=$2 guest=$3
shift 3
[ "$libdir" != - ] && export LD_LIBRARY_PATH=$libdir
T=${TMPDIR_KVM:-$(dirname "$zhv")}
status=0
fail() { echo "not ok - $1"; shift; printf '%s\n' "$@" | head -c 3000 | sed 's/^/# /'; status=1; }

out=$("$zhv" --version 2>&1); rc=$?
if [ "$rc" -eq 0 ] && grep -qE '^KVM: /dev/kvm, API version 12, ' <<<"$out"; then
	echo "ok - zhv --version reports the KVM ($(sed -n 2p <<<"$out"))"
else
	fail "zhv --version reports the KVM" "status $rc" "$out"
fi

out=$(timeout 300 "$zhv" run --cpus 2 --memory 64M "$guest" </dev/null 2>&1); rc=$?
if [ "$rc" -eq 0 ] && grep -q 'zhv guest: 1 of 1 APs up' <<<"$out" &&
	grep -q 'zhv guest: powering off' <<<"$out"; then
	echo "ok - $zhv run on $guest: 2 CPUs up, powered off (status 0)"
else
	fail "$zhv run on $guest" "status $rc" "$out"
fi

for hello in "$@"; do
	out=$(timeout 120 "$hello" 2>&1); rc=$?
	if [ "$rc" -eq 0 ] && grep -qx 'Hello from the guest' <<<"$out"; then
		echo "ok - $(basename "$hello") runs its guest"
	else
		fail "$(basename "$hello") runs its guest" "status $rc" "$out"
	fi
done
exit $status
