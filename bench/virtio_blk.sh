#!/usr/bin/env bash
# virtio_blk.sh: virtio-blk 4 KiB random reads, zhv run against QEMU, on the
# same guest and image (issue 11). The guest is tests/vmm/kernels/
# bench_blk.c (freestanding, a virtio 1.x PCI driver: zhv's virtio-blk and
# QEMU's virtio-blk-pci with disable-legacy=on), reading 4 KiB blocks at
# random over a 1 GiB image file, first with 1 request in flight, then 32,
# for MS milliseconds each, timed by the guest with the ACPI PM timer.
# The image is a sparse file (truncate): its reads come from holes, so
# the numbers are the virtualization path (doorbell, device model, host
# I/O submission, completion, interrupt), not a disk's.
#
# Needs /dev/kvm (QEMU runs with -accel kvm): on a machine without it, run
# the whole script inside tools/kvm-in-qemu.sh (nested KVM: slow, but the
# same for both). QEMU: its defaults (pc machine, cache=writeback through
# the page cache, aio=threads) with virtio-blk-pci,disable-legacy=on; zhv:
# buffered I/O through io_uring. Prints, per depth Q, with medians over
# RUNS runs (default 3), each VMM alternating:
#   RESULT virtio_blk qd=Q zhv_iops=N qemu_iops=N ratio=R   (R = zhv / QEMU)
# Env: BUILD (build dir), RUNS, MS (default 3000), QEMU (binary).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ZHV=$BUILD/zhv
KERNEL=$BUILD/tests/vmm/kernels/bench_blk.elf
QEMU=${QEMU:-qemu-system-x86_64}
RUNS=${RUNS:-3}
MS=${MS:-3000}
for f in "$ZHV" "$KERNEL"; do
	[ -e "$f" ] || { echo "virtio_blk.sh: $f missing: run make (BUILD=$BUILD)" >&2; exit 2; }
done
command -v "$QEMU" >/dev/null || { echo "virtio_blk.sh: $QEMU not found" >&2; exit 2; }
if [ ! -c /dev/kvm ]; then
	echo "virtio_blk.sh: no /dev/kvm: run it inside tools/kvm-in-qemu.sh" >&2
	exit 2
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/zhv-bench-blk.XXXXXX")
trap 'rm -rf "$T"' EXIT
truncate -s 1G "$T/disk.img"

# parse FILE VMM: "Q IOPS" lines from the guest's output.
parse() {
	grep -F 'bench_blk qd=' "$1" | tr -d '\r' | awk '{
		split($2, q, "="); split($3, n, "="); split($4, t, "=");
		if (t[2] > 0) printf "%s %.0f\n", q[2], n[2] * 3579545 / t[2] }'
	tr -d '\r' <"$1" | grep -qx 'PASS' || { echo "virtio_blk.sh: $2 run failed:" >&2; cat "$1" >&2; exit 1; }
}

run_zhv() {
	timeout 300 "$ZHV" run --debug-exit --memory 64M --disk "$T/disk.img" \
		--cmdline "ms=$MS" "$KERNEL" >"$T/out" 2>"$T/err"
	parse "$T/out" zhv
}

run_qemu() {
	timeout 300 "$QEMU" -accel kvm -machine pc -cpu host -m 64M -nodefaults -no-reboot \
		-display none -monitor none -serial stdio \
		-device isa-debug-exit,iobase=0xf4,iosize=4 \
		-drive file="$T/disk.img",if=none,id=d0,format=raw \
		-device virtio-blk-pci,drive=d0,disable-legacy=on \
		-kernel "$KERNEL" -append "ms=$MS" >"$T/out" 2>"$T/err"
	parse "$T/out" QEMU
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

: >"$T/zhv.all"
: >"$T/qemu.all"
for ((r = 1; r <= RUNS; r++)); do
	run_zhv >"$T/z" || exit 1
	run_qemu >"$T/q" || exit 1
	echo "# run $r: zhv $(tr '\n' ' ' <"$T/z")| qemu $(tr '\n' ' ' <"$T/q")(qd iops)"
	cat "$T/z" >>"$T/zhv.all"
	cat "$T/q" >>"$T/qemu.all"
done
for q in 1 32; do
	z=$(awk -v q=$q '$1 == q { print $2 }' "$T/zhv.all" | median)
	m=$(awk -v q=$q '$1 == q { print $2 }' "$T/qemu.all" | median)
	echo "RESULT virtio_blk qd=$q zhv_iops=$z qemu_iops=$m ratio=$(awk -v a="$z" -v b="$m" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
done
