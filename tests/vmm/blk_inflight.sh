#!/usr/bin/env bash
# blk_inflight.sh: virtio-blk off the vCPU thread (issue 11). The guest
# (tests/vmm/kernels/blk_inflight.c) offers 128 scattered 4 KiB reads and
# then 64 writes behind one doorbell each and checks every byte, then
# drives the device with a descriptor outside RAM, a reset while 64 large
# reads are in flight and doorbells of a reset device. zhv's --debug-io
# account says where requests were started: all on virtio-blk's device
# thread (none on a vCPU thread, which only rang the doorbell), several in
# flight at once, the doorbells delivered as BELL packets.
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
need_binaries "$ZHV" "$K/blk_inflight.elf"

if ! kvm_or_skip "virtio-blk requests in flight"; then
	finish
fi

# Block b (4 KiB) of the image holds "block BBBBB dat\n" 256 times; the
# guest writes "wrote BBBBB now\n" x 256 to blocks 512-575.
blocks=1024
image() { awk -v n=$1 -v f="$2" 'BEGIN { for (b = 0; b < n; b++) for (i = 0; i < 256; i++)
	printf f, b }'; }
image $blocks "block %05d dat\n" >"$T/disk.img"
{
	image 512 "block %05d dat\n"
	awk 'BEGIN { for (b = 512; b < 576; b++) for (i = 0; i < 256; i++)
		printf "wrote %05d now\n", b }'
	image $blocks "block %05d dat\n" | tail -c +$((576 * 4096 + 1))
} >"$T/disk.expected"

run_zhv run --debug-exit --debug-io --memory 64M --disk "$T/disk.img" \
	--cmdline "blocks=$blocks" "$K/blk_inflight.elf"
check "blk_inflight: kernel passes (status 65, ${elapsed}s)" \
	eval 'status_is 65 && out_has PASS && out_lacks FAIL && no_crash'
for g in blk-inflight-read blk-inflight-write blk-hostile; do
	check "blk_inflight: $g" grep -qxF "group $g: ok" "$T/out"
done
check "blk_inflight: the image holds the guest's blocks 512-575 and nothing else changed" \
	cmp "$T/disk.img" "$T/disk.expected"
# "zhv: virtio-blk: N requests, E started outside the device thread, at
# most M in flight (io_uring; K reads from the page cache at once)": N counts every request the device took
# (128 + 64 + 64 + the hostile part's), E must be 0.
line=$(grep -E '^zhv: virtio-blk: [0-9]+ requests' "$T/err")
requests=$(echo "$line" | awk '{print $3}')
elsewhere=$(echo "$line" | awk '{print $5}')
inflight=$(echo "$line" | sed -n 's/.*at most \([0-9]*\) in flight.*/\1/p')
echo "# $line"
check "blk_inflight: zhv counted the guest's requests (${requests:-none} >= 256)" \
	eval '[ -n "$requests" ] && [ "$requests" -ge 256 ]'
check "blk_inflight: no request was started outside virtio-blk's device thread" \
	eval '[ "$elsewhere" = 0 ]'
check "blk_inflight: requests were in flight together (at most ${inflight:-?} at once, > 1)" \
	eval '[ -n "$inflight" ] && [ "$inflight" -gt 1 ]'
check "blk_inflight: the disk used io_uring" eval 'echo "$line" | grep -qF "(io_uring"'
bells=$(sed -n 's/.*bell packets \([0-9]*\).*/\1/p' "$T/err")
check "blk_inflight: doorbells came as BELL packets (${bells:-none})" \
	eval '[ -n "$bells" ] && [ "$bells" -ge 5 ]'
grep -E '^(inflight|reset):' "$T/out" | sed 's/^/# /'
finish
