#!/usr/bin/env bash
# mkinitramfs.sh BUSYBOX OUT: an uncompressed newc cpio with a static
# BusyBox and an /init that mounts /proc, prints "ZHV-INIT-OK", the kernel
# release and the command line the kernel gave it, then powers off (ACPI
# S5: zhv exits 0). The archive is made by BusyBox's own cpio, so the host
# needs no cpio. Uncompressed because inflating even 1 MB is minutes of
# work for a guest kernel whose CPL0 code is emulated (kvm_pvm).
set -euo pipefail
BB=${1:?usage: mkinitramfs.sh BUSYBOX OUT}
OUT=${2:?usage: mkinitramfs.sh BUSYBOX OUT}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys"
cp "$BB" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
# /dev/console comes from the kernel's built-in initramfs (usr/default_cpio_list).
cat >"$root/init" <<'INIT'
#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo "ZHV-INIT-OK $(/bin/busybox uname -r) cmdline: $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
INIT
chmod 0755 "$root/init"
(cd "$root" && find . | LC_ALL=C sort | "$BB" cpio -o -H newc -R 0:0 2>/dev/null) \
	>"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
