#!/usr/bin/env bash
# insn.sh: the test kernel tests/vmm/kernels/insn.c runs, at CPL0, the
# instructions some KVMs cannot emulate (XGETBV, MOVBE, CLWB, CLFLUSHOPT,
# INVPCID, RDPRU, STAC/CLAC, INT3, INT n, FWAIT, and the runtime's 32-bit
# IRET) and checks each architectural result. It passes on every host:
# natively on a hardware-virtualized KVM, through libzhv's fallback
# emulator where KVM runs CPL0 code in its instruction emulator (kvm_pvm).
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
need_binaries "$ZHV" "$K/insn.elf"
if ! kvm_or_skip "instruction tests"; then
	finish
fi
passed() { status_is 65 && out_has PASS && out_lacks FAIL; }
no_emulation_failure() { ! err_has "cannot emulate"; }
run_zhv run --debug-exit --memory 32M "$K/insn.elf"
check "insn: kernel passes (status 65, ${elapsed}s)" passed
for g in xgetbv movbe clflushopt-clwb invpcid rdpru stac-clac int3-int-n fwait; do
	check "insn: $g" grep -qxF "group $g: ok" "$T/out"
done
check "insn: zhv reports no emulation failure" no_emulation_failure
finish
