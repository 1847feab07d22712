#!/usr/bin/env bash
# testdev.sh: QEMU's test devices behind --test-device (pc-testdev,
# pci-testdev), exercised by tests/vmm/kernels/testdev.c as kvm-unit-tests
# uses them, with the result through --debug-exit (status (V << 1) | 1:
# 65 for PASS, 67 for FAIL). Also: each device is absent without its
# option (its ports and window unclaimed), and bad option values are usage
# errors (status 2).
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
MEM=32M
need_binaries "$ZHV" "$K/testdev.elf"

# ---- the option (no KVM needed: zhv stops at the command line) ----------------
run_zhv run --test-device bogus "$K/testdev.elf"
check "--test-device bogus: usage error (status 2)" \
	eval 'status_is 2 && err_has "bogus" && err_has "expected pc-testdev or pci-testdev"'
run_zhv run --test-device pc-testdev --test-device pc-testdev "$K/testdev.elf"
check "--test-device pc-testdev twice: usage error (status 2)" \
	eval 'status_is 2 && err_has "given twice"'
run_zhv run --test-device "" "$K/testdev.elf"
check "--test-device '': usage error (status 2)" status_is 2
run_zhv run "$K/testdev.elf" --test-device
check "--test-device without a name: usage error (status 2)" status_is 2
run_zhv --help
check "--help lists --test-device" eval 'status_is 0 && out_has "--test-device NAME"'

if ! kvm_or_skip "test devices"; then
	finish
fi

passed() { status_is 65 && out_has PASS && out_lacks FAIL; }
groups() {
	local label=$1 g
	shift
	for g in "$@"; do
		check "$label: $g" grep -qxF "group $g: ok" "$T/out"
	done
}

run_zhv run --debug-exit --memory $MEM --test-device pc-testdev --test-device pci-testdev \
	"$K/testdev.elf"
check "both devices: kernel passes (status 65, ${elapsed}s)" passed
groups "both" pc-testdev-ioport pc-testdev-flush pc-testdev-iomem pc-testdev-irq-edge \
	pc-testdev-irq-level pci-testdev-config pci-testdev-tests
check "pci-testdev: six tests named as QEMU's" \
	eval '[ "$(grep -c "^pci-testdev \(mem\|io\): \(mmio\|portio\)-\(no\|wildcard\|datamatch\)-eventfd$" "$T/out")" = 6 ]'

run_zhv run --debug-exit --memory $MEM --cmdline "pc=0 pci=0" "$K/testdev.elf"
check "no --test-device: both devices absent (status 65, ${elapsed}s)" passed
groups "none" pc-testdev-absent pci-testdev-absent

run_zhv run --debug-exit --memory $MEM --test-device pci-testdev --cmdline "pc=0" "$K/testdev.elf"
check "pci-testdev alone (status 65, ${elapsed}s)" passed
groups "pci-testdev alone" pc-testdev-absent pci-testdev-tests

run_zhv run --debug-exit --memory $MEM --test-device pc-testdev --cmdline "pci=0" "$K/testdev.elf"
check "pc-testdev alone (status 65, ${elapsed}s)" passed
groups "pc-testdev alone" pc-testdev-irq-level pci-testdev-absent

finish
