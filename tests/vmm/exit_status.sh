#!/usr/bin/env bash
# exit_status.sh: how a run ends, with the test kernels of
# tests/vmm/kernels/: isa-debug-exit statuses, i8042 reset, triple fault
# (status 1 with a register dump), unclaimed ports and MMIO, COM1 input.
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
need_binaries "$ZHV" "$K/debug_exit.elf" "$K/hello.elf" "$K/reset.elf" \
	"$K/triple_fault.elf" "$K/unclaimed.elf" "$K/echo.elf"

if ! kvm_or_skip "test kernels run"; then
	finish
fi

run_zhv run "$K/debug_exit.elf"
check "debug-exit 0x2a: status 85" status_is 85

run_zhv run --cmdline "exit=21" "$K/hello.elf"
check "debug-exit 21 from C: status 43" status_is 43
check "multiboot command line reaches the kernel" out_has "exit=21"
run_zhv run "$K/hello.elf"
check "debug-exit 0: status 1" status_is 1

run_zhv run "$K/reset.elf"
check "i8042 reset: status 0" status_is 0
check "i8042 reset: the kernel did not run on" eval 'out_has "reset: pulsing" && out_lacks FAIL'

run_zhv run "$K/triple_fault.elf"
check "triple fault: status 1" status_is 1
check "triple fault: named on stderr" err_has "triple fault"
# KVM on AMD-V (SVM, without kvm_pvm) reinitialises the vCPU at a shutdown
# intercept (the VMCB is undefined after it), so the registers of the fault
# are gone there and the dump shows the reset state; on VMX and on kvm_pvm
# it shows the faulting instruction.
if [ ! -d /sys/module/kvm_pvm ] && grep -qm1 AuthenticAMD /proc/cpuinfo; then
	check "triple fault: register dump (KVM on AMD-V: the vCPU's reset state)" \
		eval 'err_has "rip" && err_has "cr0" && err_has "insn:"'
else
	check "triple fault: register dump with the decoded instruction" \
		eval 'err_has "ud2" && err_has "7afe7afe" && err_has "rip"'
fi

run_zhv run --cpus 2 "$K/triple_fault.elf"
check "triple fault with an idle AP: status 1, no hang" status_is 1

run_zhv run "$K/unclaimed.elf"
check "unclaimed ports and MMIO read all-ones" eval 'status_is 65 && out_has PASS'

run_zhv run --debug-io "$K/unclaimed.elf"
check "--debug-io logs unclaimed port and MMIO accesses" \
	eval 'status_is 65 && err_has "unclaimed port read at 0x2a0" && err_has "unclaimed MMIO"'

# A flat binary runs in 64-bit mode at 1 MiB: mov $0x2a,%eax; out %eax,$0xf4; hlt.
printf '\xb8\x2a\x00\x00\x00\xe7\xf4\xf4\xeb\xfd' >"$T/flat.bin"
run_zhv run "$T/flat.bin"
check "flat 64-bit binary: debug-exit 0x2a gives status 85" status_is 85

last_cmd="printf 'abc\\nq' | zhv run echo.elf"
printf 'abc\nq' | timeout -k 5 "$ZHV_TIMEOUT" "$ZHV" run "$K/echo.elf" >"$T/out" 2>"$T/err"
status=$?
check "stdin reaches COM1 (piped)" eval 'status_is 65 && out_has "abc" && out_has "echo: bye"'

finish
