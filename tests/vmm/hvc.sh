#!/usr/bin/env bash
# hvc.sh: the virtio console, zhv run --console virtio (Linux's hvc0),
# driven from the guest side by tests/vmm/kernels/dev_hvc.c: its output
# reaches zhv's stdout (apart from COM1's, here in a file), a line on
# zhv's stdin reaches the guest through the receive queue and comes back;
# without the option there is no virtio console; a bad --console value is
# a usage error.
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
need_binaries "$ZHV" "$K/dev_hvc.elf"

run_zhv run --console tty "$K/dev_hvc.elf"
check "--console tty: usage error (2)" status_is 2
check "--console tty: says what is expected" err_has "expected serial or virtio"

kvm_or_skip "virtio console" || finish
ZHV_TIMEOUT=120
PASS=$(((0x20 << 1) | 1))

line="a line longer than one 16-byte receive buffer"
last_cmd="printf '$line\\n' | zhv run --console virtio --serial file:com1 --debug-exit dev_hvc.elf"
printf '%s\n' "$line" | timeout -k 5 "$ZHV_TIMEOUT" "$ZHV" run --console virtio \
	--serial "file:$T/com1" --debug-exit --memory 64M "$K/dev_hvc.elf" >"$T/out" 2>"$T/err"
status=$?
check "--console virtio: the guest drives the virtio console and passes" status_is $PASS
check "--console virtio: guest output (two chains, three buffers) on stdout" \
	grep -qx 'hvc: hello from the guest' "$T/out"
check "--console virtio: stdin reaches the guest and comes back" \
	grep -qxF "hvc: got $line" "$T/out"
check "--console virtio: COM1's output stays on COM1" \
	grep -qx 'hvc: output written' "$T/com1"
check "--console virtio: no COM1 output on stdout" out_lacks "hvc: output written"

run_zhv run --debug-exit --memory 64M --cmdline absent=1 "$K/dev_hvc.elf"
check "without --console virtio: no virtio console" status_is $PASS
run_zhv run --console serial --debug-exit --memory 64M --cmdline absent=1 "$K/dev_hvc.elf"
check "--console serial: no virtio console" status_is $PASS
finish
