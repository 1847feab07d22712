#!/usr/bin/env bash
# install.sh: make install into a temporary DESTDIR and use what it
# installed as a program outside the tree would (make install-test).
#
#  - every file in place, the SONAME and its links, and make uninstall
#    removing everything again;
#  - the ABI: the shared library exports exactly the functions zhv.h
#    declares, nothing else;
#  - zhv.h compiles as C11 and as C++ (extern "C": a C++ program links
#    and calls the library), -Wall -Wextra -pedantic -Werror clean;
#  - examples/hello_guest.c, copied out of the tree, built with
#    `pkg-config --cflags --libs zhv` against the shared library and with
#    `pkg-config --static` fully static; ldd shows the installed
#    libzhv.so.0 for one and no shared library for the other;
#  - the installed zhv: --version without KVM (status 0, says so), and its
#    option list and exit statuses equal to man/zhv.1's;
#  - under KVM (tests/pkg/installed_kvm.sh): both hello builds run their
#    guest, the installed zhv boots the installed bundled guest.
#
# Prints TAP and ends with "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.."
. tests/pkg/lib.sh
BUILD=${BUILD:-build}
CC=${CC:-cc}
CXX=${CXX:-c++}

# Under the build directory, not /tmp: kvm-in-qemu's guest sees this file
# system except its /tmp.
W=$(realpath -m "$BUILD/install-test")
rm -rf "$W"
mkdir -p "$W"
D=$W/dest
P=/usr/local
L=$D$P/lib

out=$(make --no-print-directory BUILD="$BUILD" DESTDIR="$D" PREFIX="$P" install 2>&1)
if [ $? -ne 0 ]; then
	not_ok "make install DESTDIR=... PREFIX=$P" "$(tail -n 30 <<<"$out")"
	finish
fi
ok "make install DESTDIR=... PREFIX=$P"

ver=$(sed -n 's/^#define ZHV_VERSION_STRING "\(.*\)"/\1/p' include/zhv.h)
major=${ver%%.*}
missing=""
for f in bin/zhv lib/libzhv.so.$ver lib/libzhv.a include/zhv.h lib/pkgconfig/zhv.pc \
	share/man/man1/zhv.1 share/man/man3/libzhv.3 lib/zhv/guest.elf; do
	[ -f "$D$P/$f" ] || missing+=" $f"
done
if [ -z "$missing" ]; then ok "installed: bin/zhv, libzhv.so.$ver, libzhv.a, zhv.h, zhv.pc, zhv.1, libzhv.3, the guest"
else not_ok "installed files" "missing:$missing"; fi

links_ok() {
	[ "$(readlink "$L/libzhv.so.$major")" = "libzhv.so.$ver" ] &&
		[ "$(readlink "$L/libzhv.so")" = "libzhv.so.$major" ]
}
check "links libzhv.so -> libzhv.so.$major -> libzhv.so.$ver" links_ok
soname=$(readelf -d "$L/libzhv.so.$ver" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" = "libzhv.so.$major" ]; then ok "SONAME libzhv.so.$major"
else not_ok "SONAME libzhv.so.$major" "readelf: '$soname'"; fi

# The ABI: the dynamic symbols against the header's functions.
$CC -E -P -std=c11 "$D$P/include/zhv.h" | tr '\n' ' ' | grep -oE '\bzhv_[a-z0-9_]+ *\(' |
	grep -oE 'zhv_[a-z0-9_]+' | sort -u >"$W/declared"
nm -D --defined-only "$L/libzhv.so.$ver" | awk '{print $3}' | sed 's/@.*//' |
	grep -vx 'ZHV_0' | sort -u >"$W/exported"
if [ -s "$W/declared" ] && diff -u "$W/declared" "$W/exported" >"$W/abi.diff"; then
	ok "exported symbols = zhv.h's $(wc -l <"$W/declared") functions (nothing else)"
else
	not_ok "exported symbols = zhv.h's functions" "$(cat "$W/abi.diff")"
fi
if readelf -d "$L/libzhv.so.$ver" | grep -q TEXTREL; then
	not_ok "libzhv.so has no text relocations (built -fPIC)"
else ok "libzhv.so has no text relocations (built -fPIC)"; fi

# The header as C11 and C++, through pkg-config.
export PKG_CONFIG_PATH=$L/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D
cflags=$(pkg-config --cflags zhv) && libs=$(pkg-config --libs zhv) &&
	slibs=$(pkg-config --static --libs zhv)
if [ $? -eq 0 ] && [ "$(pkg-config --modversion zhv)" = "$ver" ]; then
	ok "pkg-config zhv: $ver, $cflags, $libs; --static: $slibs"
else
	not_ok "pkg-config zhv" "$(pkg-config --cflags --libs zhv 2>&1)"
fi
printf '#include <zhv.h>\nint main(void) { return zhv_status_string(ZHV_ERR_BAD_STATE)[0] != 0x5a; }\n' >"$W/c11.c"
check "zhv.h: C11, -Wall -Wextra -pedantic -Werror" \
	$CC -std=c11 -Wall -Wextra -pedantic -Werror $cflags -c -o "$W/c11.o" "$W/c11.c"
cat >"$W/cxx.cc" <<'CXX'
#include <zhv.h>
#include <cstdio>
#include <cstring>
int main()
{
	zhv_host_info_t h;
	if (zhv_host_query(&h) != ZHV_OK)
		return 1;
	std::printf("%s %s\n", zhv_status_string(ZHV_ERR_BAD_STATE), ZHV_VERSION_STRING);
	return std::strcmp(zhv_status_string(ZHV_ERR_BAD_STATE), "ZHV_ERR_BAD_STATE") != 0;
}
CXX
check "zhv.h: C++11, -Wall -Wextra -pedantic -Werror" \
	$CXX -std=c++11 -Wall -Wextra -pedantic -Werror $cflags -o "$W/cxx" "$W/cxx.cc" $libs
out=$(LD_LIBRARY_PATH=$L "$W/cxx" 2>&1)
if [ "$out" = "ZHV_ERR_BAD_STATE $ver" ]; then ok "C++ program calls libzhv (extern \"C\")"
else not_ok "C++ program calls libzhv (extern \"C\")" "$out"; fi

# examples/hello_guest.c out of the tree, shared and static.
mkdir -p "$W/hello"
cp examples/hello_guest.c "$W/hello/"
check "hello_guest.c out of the tree, shared: cc \$(pkg-config --cflags --libs zhv)" \
	sh -c "cd '$W/hello' && $CC -std=c11 -Wall -Wextra -Werror $cflags -o hello-shared hello_guest.c $libs"
check "hello_guest.c out of the tree, static: cc -static \$(pkg-config --static ...)" \
	sh -c "cd '$W/hello' && $CC -static -std=c11 -Wall -Wextra -Werror $cflags -o hello-static hello_guest.c $slibs"
l=$(LD_LIBRARY_PATH=$L ldd "$W/hello/hello-shared" 2>&1)
if grep -q "libzhv.so.$major => $L/libzhv.so.$major" <<<"$l"; then ok "hello-shared: ldd finds the installed libzhv.so.$major"
else not_ok "hello-shared: ldd finds the installed libzhv.so.$major" "$l"; fi
l=$(ldd "$W/hello/hello-static" 2>&1)
if grep -q 'not a dynamic executable' <<<"$l" && ! nm -D "$W/hello/hello-static" 2>/dev/null | grep -q zhv_; then
	ok "hello-static: no shared library"
else not_ok "hello-static: no shared library" "$l"; fi

# The installed zhv, natively.
zhv=$D$P/bin/zhv
l=$(LD_LIBRARY_PATH=$L ldd "$zhv" 2>&1)
if grep -q "libzhv.so.$major => $L/libzhv.so.$major" <<<"$l"; then ok "installed zhv uses the installed libzhv.so.$major"
else not_ok "installed zhv uses the installed libzhv.so.$major" "$l"; fi
if ! has_kvm; then
	out=$(LD_LIBRARY_PATH=$L "$zhv" --version 2>&1); rc=$?
	if [ $rc -eq 0 ] && [ "$(head -n 1 <<<"$out")" = "zhv $ver" ] && grep -q '^KVM: none (/dev/kvm: ' <<<"$out" &&
		grep -qE '^CPU vendor: (AuthenticAMD|GenuineIntel|HygonGenuine)' <<<"$out"; then
		ok "zhv --version without /dev/kvm: says so, status 0"
	else not_ok "zhv --version without /dev/kvm" "status $rc" "$out"; fi
fi

# zhv run --help against the man page: the options, then the exit statuses.
LD_LIBRARY_PATH=$L "$zhv" run --help 2>&1 | sed -nE 's/^  +(-[a-zA-Z], )?(--[a-z-]+).*/\1\2/p' |
	tr -d ',' | sort >"$W/help.opts"
# The man page: each option's line after a .TP, e.g. .BR \-c ", " \-\-cpus " \fIN\fR"
awk '/^\.SH OPTIONS/{s=1;next} /^\.SH/{s=0} s&&p{print} {p=(s&&/^\.TP/)}' man/zhv.1 |
	sed 's/\\-/-/g; s/"//g; s/\\f[BIRP]//g; s/,/ /g' |
	while read -r line; do
		o=""
		for w in $line; do
			[[ $w =~ ^(-[a-zA-Z]|--[a-z-]+)$ ]] && o+="${o:+ }$w"
		done
		echo "$o"
	done | sort >"$W/man.opts"
if [ -s "$W/help.opts" ] && diff -u "$W/help.opts" "$W/man.opts" >"$W/opts.diff"; then
	ok "zhv run --help and zhv.1 list the same $(wc -l <"$W/help.opts") options"
else not_ok "zhv run --help and zhv.1 list the same options" "$(cat "$W/opts.diff")"; fi
sed -nE 's/^#define ZHV_EXIT_[A-Z_]+ +([0-9]+).*/\1/p' vmm/exit_status.h | sort -n >"$W/codes.h"
awk '/^\.SH EXIT STATUS/{s=1;next} /^\.SH/{s=0} s' man/zhv.1 | sed -nE 's/^\.B ([0-9]+)$/\1/p' |
	sort -n >"$W/codes.man"
if [ -s "$W/codes.h" ] && diff -u "$W/codes.h" "$W/codes.man" >"$W/codes.diff"; then
	ok "zhv.1's exit statuses = vmm/exit_status.h's ($(paste -sd' ' "$W/codes.h"))"
else not_ok "zhv.1's exit statuses = vmm/exit_status.h's" "$(cat "$W/codes.diff")"; fi
# Every option the help (and so the man page) names is used by a test.
untested=""
for o in $(sed 's/.* //' "$W/help.opts"); do
	grep -qE -- "$o([^a-z-]|$)" tests/vmm/*.sh tests/pkg/*.sh || untested+=" $o"
done
if [ -z "$untested" ]; then ok "every zhv run option is used by a test in tests/vmm or tests/pkg"
else not_ok "every zhv run option is used by a test" "no test uses:$untested"; fi
if cmp -s man/zhv.1 "$D$P/share/man/man1/zhv.1" && cmp -s man/libzhv.3 "$D$P/share/man/man3/libzhv.3"; then
	ok "installed man pages are man/'s"
else not_ok "installed man pages are man/'s"; fi
if command -v man >/dev/null; then
	check "zhv.1 and libzhv.3 format without warnings" \
		sh -c "! LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '$D$P/share/man/man1/zhv.1' '$D$P/share/man/man3/libzhv.3' 2>&1 >/dev/null | grep ."
fi

# Under KVM: the two hello builds and the installed zhv on its guest.
on_kvm "under KVM" tests/pkg/installed_kvm.sh "$L" "$zhv" "$D$P/lib/zhv/guest.elf" \
	"$W/hello/hello-shared" "$W/hello/hello-static"

out=$(make --no-print-directory BUILD="$BUILD" DESTDIR="$D" PREFIX="$P" uninstall 2>&1)
left=$(find "$D" ! -type d)
if [ $? -eq 0 ] && [ -z "$left" ]; then ok "make uninstall removes every file"
else not_ok "make uninstall removes every file" "$out" "left: $left"; fi

finish
