#!/usr/bin/env bash
# fetch.sh DIR: put Debian's cloud kernel and a BusyBox initramfs in DIR
# (a cache, reused across runs: remove it to fetch a newer kernel), by
# Debian's own tools:
#
#   DIR/vmlinuz           the bzImage of the versioned package that the
#                         metapackage linux-image-cloud-amd64 depends on
#   DIR/vmlinux           the ELF kernel cut out of it (PVH entry note)
#   DIR/busybox           /bin/busybox of busybox-static
#   DIR/initramfs.cpio    it plus an /init (see mkinitramfs.sh)
#   DIR/version           the package name and version, e.g.
#                         "linux-image-6.1.0-56-cloud-amd64 6.1.192-2"
#
# Exit status: 0 when all are there; 77 when they cannot be had here
# (no apt, no package lists, no network), with the reason on the last
# line of stderr; 1 on any other failure.
set -uo pipefail
DIR=${1:?usage: fetch.sh DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
META=${ZHV_LINUX_PACKAGE:-linux-image-cloud-amd64}
APT_TIMEOUT=${ZHV_APT_TIMEOUT:-180}

unavailable() { echo "fetch.sh: $*" >&2; exit 77; }
die() { echo "fetch.sh: $*" >&2; exit 1; }

# Several test runs may start at once (.ci/run runs two suites side by
# side): one fetches, the others wait for it. (Where the file system has
# no locks, e.g. a 9p share, each goes on unlocked.)
mkdir -p "$DIR" || die "cannot create $DIR"
{ exec 8>"$DIR/.lock" && flock 8; } 2>/dev/null || true

# The initramfs alone is rebuilt when mkinitramfs.sh changed.
if [ -s "$DIR/vmlinuz" ] && [ -s "$DIR/vmlinux" ] && [ -x "$DIR/busybox" ] &&
   [ -s "$DIR/version" ]; then
	if [ ! -s "$DIR/initramfs.cpio" ] || [ "$HERE/mkinitramfs.sh" -nt "$DIR/initramfs.cpio" ]; then
		"$HERE/mkinitramfs.sh" "$DIR/busybox" "$DIR/initramfs.cpio" ||
			die "cannot build the initramfs"
	fi
	exit 0
fi
for t in apt-get apt-cache dpkg-deb od dd; do
	command -v "$t" >/dev/null || unavailable "no $t on this host (not Debian-like)"
done
mkdir -p "$DIR" || die "cannot create $DIR"
work=$(mktemp -d "$DIR/.fetch.XXXXXX") || die "cannot create a work directory in $DIR"
trap 'rm -rf "$work"' EXIT

# The package lists may never have been read on a fresh machine: read them
# once (as root only; a user cannot).
candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'; }
c=$(candidate "$META")
if { [ -z "$c" ] || [ "$c" = "(none)" ]; } && [ "$(id -u)" -eq 0 ]; then
	echo "fetch.sh: no candidate for $META: apt-get update" >&2
	timeout "$APT_TIMEOUT" apt-get update -qq >&2 || true
	c=$(candidate "$META")
fi
[ -n "$c" ] && [ "$c" != "(none)" ] ||
	unavailable "apt knows no package $META (no Debian package lists for amd64?)"

# The metapackage depends on the versioned image package: take that one.
pkg=$(apt-cache depends "$META" 2>/dev/null |
      awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
[ -n "$pkg" ] || unavailable "cannot resolve $META to a versioned linux-image package"
ver=$(candidate "$pkg")

# apt-get download as root warns that _apt cannot write to the directory:
# harmless, so download where _apt may write, then move.
fetch_deb() { # NAME: sets DEB to the downloaded file
	DEB=""
	if ! ( cd "$work" && chmod 0777 "$work" &&
	       timeout "$APT_TIMEOUT" apt-get download -qq "$1" >/dev/null 2>"$work/apt.err" ); then
		unavailable "apt-get download $1 failed (no network?): $(grep -v '^W:' \
			"$work/apt.err" | tail -n 1)"
	fi
	DEB=$(ls "$work"/"${1}"_*.deb 2>/dev/null | head -n 1)
	[ -n "$DEB" ] || die "apt-get download $1 left no .deb"
}

fetch_deb "$pkg"
dpkg-deb -x "$DEB" "$work/kernel" || die "dpkg-deb -x $DEB failed"
vmlinuz=$(ls "$work"/kernel/boot/vmlinuz-* 2>/dev/null | head -n 1)
[ -n "$vmlinuz" ] || die "$DEB has no /boot/vmlinuz-*"

fetch_deb busybox-static
dpkg-deb -x "$DEB" "$work/busybox" || die "dpkg-deb -x $DEB failed"
[ -x "$work/busybox/bin/busybox" ] || die "$DEB has no /bin/busybox"

# vmlinux: the bzImage's payload (boot.rst: payload_offset at 0x248 and
# payload_length at 0x24c, from the start of the protected-mode code after
# (setup_sects + 1) * 512 bytes) is the compressed ELF followed by its
# 4-byte decompressed size; scripts/extract-vmlinux does the same by magic.
u8() { od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' '; }
u32() { od -An -tu4 -j "$2" -N 4 "$1" | tr -d ' '; }
sects=$(u8 "$vmlinuz" $((0x1f1)))
[ "$sects" -eq 0 ] && sects=4
poff=$(( (sects + 1) * 512 + $(u32 "$vmlinuz" $((0x248))) ))
plen=$(u32 "$vmlinuz" $((0x24c)))
[ "$plen" -gt 4 ] || die "$vmlinuz: no payload (payload_length $plen)"
magic=$(od -An -tx1 -j "$poff" -N 6 "$vmlinuz" | tr -d ' \n')
case $magic in
	1f8b*)         tool=gzip  tpkg=gzip       cmd="gzip -dc" ;;
	fd377a585a00*) tool=xz    tpkg=xz-utils   cmd="xz -dc" ;;
	02214c18*)     tool=lz4   tpkg=lz4        cmd="lz4 -dc" ;;
	28b52ffd*)     tool=zstd  tpkg=zstd       cmd="zstd -dc" ;;
	425a68*)       tool=bzip2 tpkg=bzip2      cmd="bzip2 -dc" ;;
	5d0000*)       tool=xz    tpkg=xz-utils   cmd="xz -dc --format=lzma" ;;
	894c5a4f*)     tool=lzop  tpkg=lzop       cmd="lzop -dc" ;;
	*) die "$vmlinuz: unknown payload compression (magic $magic at $poff)" ;;
esac
# Without the tool: Debian's package, unpacked next to the kernel (no
# install; it needs only libraries that apt itself needs).
if ! command -v "$tool" >/dev/null; then
	fetch_deb "$tpkg"
	dpkg-deb -x "$DEB" "$work/tool" || die "no $tool on this host; cannot unpack $DEB"
	export PATH="$work/tool/usr/bin:$work/tool/bin:$PATH"
fi
dd if="$vmlinuz" bs=64K iflag=skip_bytes,count_bytes skip="$poff" count=$((plen - 4)) \
   status=none | $cmd >"$work/vmlinux" ||
	die "$cmd of the payload of $vmlinuz failed"
[ "$(od -An -tx1 -N 4 "$work/vmlinux" | tr -d ' ')" = 7f454c46 ] ||
	die "the payload of $vmlinuz did not decompress to an ELF file"
want=$(u32 "$vmlinuz" $((poff + plen - 4)))
[ "$(stat -c %s "$work/vmlinux")" -eq "$want" ] ||
	die "vmlinux is $(stat -c %s "$work/vmlinux") bytes, the bzImage says $want"

"$HERE/mkinitramfs.sh" "$work/busybox/bin/busybox" "$work/initramfs.cpio" ||
	die "cannot build the initramfs"

# Into place last, so that an interrupted fetch leaves no half cache.
mv "$vmlinuz" "$DIR/vmlinuz" && mv "$work/vmlinux" "$DIR/vmlinux" &&
	mv "$work/initramfs.cpio" "$DIR/initramfs.cpio" &&
	cp "$work/busybox/bin/busybox" "$DIR/busybox" || die "cannot fill $DIR"
cp "$work"/kernel/boot/config-* "$DIR/config" 2>/dev/null || true
echo "$pkg $ver" >"$DIR/version" || die "cannot write $DIR/version"
