#!/usr/bin/env bash
# package.sh: build the Debian packages from a copy of the tree and use
# them as a Debian user would (make package-test).
#
#  - dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS="nocheck parallel=2")
#    builds zhv, libzhv0 and libzhv-dev, each with its files;
#  - lintian reports no error;
#  - dpkg -i installs the three into this system (as root, else with
#    sudo): /usr/bin/zhv --version, pkg-config finds zhv.pc, a program
#    built with `pkg-config --cflags --libs zhv` links the installed
#    library; under KVM (tests/pkg/installed_kvm.sh) /usr/bin/zhv boots
#    /usr/lib/zhv/guest.elf and the program runs its guest;
#  - dpkg --purge removes them again, leaving nothing behind (packages
#    that were installed before the test are left installed).
#
# Prints TAP and ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.."
. tests/pkg/lib.sh
BUILD=${BUILD:-build}
CC=${CC:-cc}
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo

W=$(realpath -m "$BUILD/package-test")
rm -rf "$W"
mkdir -p "$W/src"
# The tree as git sees it (tracked files and new ones), without builds.
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$W/src" 2>/dev/null
ver=$(dpkg-parsechangelog -l debian/changelog -S Version)
arch=$(dpkg --print-architecture)

t0=$SECONDS
out=$(cd "$W/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b 2>&1)
rc=$?
debs=""
for p in zhv libzhv0 libzhv-dev; do
	debs+=" $W/${p}_${ver}_$arch.deb"
done
if [ $rc -eq 0 ] && ls $debs >/dev/null 2>&1; then
	ok "dpkg-buildpackage -us -uc -b: zhv, libzhv0, libzhv-dev $ver ($((SECONDS - t0)) s)"
else
	not_ok "dpkg-buildpackage -us -uc -b" "status $rc" "$(tail -n 40 <<<"$out")"
	finish
fi

# contents PKG FILE...: the package holds each FILE.
contents() {
	local pkg=$1 f missing=""
	shift
	local list
	list=$(dpkg-deb -c "$W/${pkg}_${ver}_$arch.deb" | awk '{print $6}' | sed 's|^\./|/|')
	for f in "$@"; do
		grep -qx -- "$f" <<<"$list" || missing+=" $f"
	done
	if [ -z "$missing" ]; then ok "$pkg holds $*"
	else not_ok "$pkg holds its files" "missing:$missing" "$list"; fi
}
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
contents zhv /usr/bin/zhv /usr/lib/zhv/guest.elf /usr/share/man/man1/zhv.1.gz
contents libzhv0 /usr/lib/$ma/libzhv.so.$ver /usr/lib/$ma/libzhv.so.0
contents libzhv-dev /usr/include/zhv.h /usr/lib/$ma/libzhv.a /usr/lib/$ma/libzhv.so \
	/usr/lib/$ma/pkgconfig/zhv.pc /usr/share/man/man3/libzhv.3.gz
dep=$(dpkg-deb -f "$W/zhv_${ver}_$arch.deb" Depends)
if grep -q 'libzhv0' <<<"$dep"; then ok "zhv depends on libzhv0 ($dep)"
else not_ok "zhv depends on libzhv0" "Depends: $dep"; fi

out=$(lintian "$W/zhv_${ver}_$arch.changes" 2>&1)
if ! grep -q '^E: ' <<<"$out"; then
	ok "lintian: no errors$(grep -c '^W: ' <<<"$out" | sed 's/^0$//; s/.\+/ (& warnings)/')"
else not_ok "lintian: no errors" "$out"; fi
[ -n "$out" ] && sed 's/^/# lintian: /' <<<"$out"

# Install into this system.
before=""
for p in zhv libzhv0 libzhv-dev; do
	dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' && before+=" $p"
done
if [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; then
	skip "dpkg -i of the packages" "not root, and sudo needs a password"
	finish
fi
out=$($SUDO dpkg -i $debs 2>&1)
if [ $? -eq 0 ]; then ok "dpkg -i zhv libzhv0 libzhv-dev"
else not_ok "dpkg -i zhv libzhv0 libzhv-dev" "$out"; fi

out=$(/usr/bin/zhv --version 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(head -n 1 <<<"$out")" = "zhv $ver" ] && grep -q '^KVM: ' <<<"$out"; then
	ok "/usr/bin/zhv --version: $(paste -sd' ' <<<"$out")"
else not_ok "/usr/bin/zhv --version" "status $rc" "$out"; fi
l=$(ldd /usr/bin/zhv 2>&1)
if grep -q "libzhv.so.0 => /lib/$ma/libzhv.so.0\|libzhv.so.0 => /usr/lib/$ma/libzhv.so.0" <<<"$l"; then
	ok "/usr/bin/zhv uses /usr/lib/$ma/libzhv.so.0"
else not_ok "/usr/bin/zhv uses the installed libzhv.so.0" "$l"; fi
if [ "$(env -u PKG_CONFIG_PATH pkg-config --modversion zhv 2>&1)" = "$ver" ]; then
	ok "pkg-config --modversion zhv: $ver"
else not_ok "pkg-config finds zhv.pc" "$(pkg-config --modversion zhv 2>&1)"; fi
mkdir -p "$W/hello"
cp examples/hello_guest.c "$W/hello/"
check "hello_guest.c built against the packages: cc \$(pkg-config --cflags --libs zhv)" \
	sh -c "cd '$W/hello' && $CC -std=c11 -Wall -Wextra -Werror \$(pkg-config --cflags zhv) -o hello-deb hello_guest.c \$(pkg-config --libs zhv)"

on_kvm "under KVM" tests/pkg/installed_kvm.sh - /usr/bin/zhv /usr/lib/zhv/guest.elf "$W/hello/hello-deb"

# Remove what this test installed.
remove=""
for p in zhv libzhv-dev libzhv0; do
	[[ " $before " == *" $p "* ]] || remove+=" $p"
done
if [ -n "$remove" ]; then
	out=$($SUDO dpkg --purge $remove 2>&1)
	left=$(ls -d /usr/bin/zhv /usr/lib/zhv /usr/lib/$ma/libzhv* /usr/include/zhv.h \
		/usr/lib/$ma/pkgconfig/zhv.pc /usr/share/man/man1/zhv.1.gz 2>/dev/null)
	if [ -z "$left" ] && ! dpkg -l $remove 2>/dev/null | grep -q '^[ir][iU]'; then
		ok "dpkg --purge$remove leaves nothing behind"
	else not_ok "dpkg --purge$remove leaves nothing behind" "$out" "left: $left"; fi
fi

finish
