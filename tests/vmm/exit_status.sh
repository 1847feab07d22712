#!/usr/bin/env bash
# exit_status.sh: how a run ends, the whole table of vmm/exit_status.h, with
# the test kernels of tests/vmm/kernels/: 0 power-off/reset; (V << 1) | 1
# after a guest writes V to isa-debug-exit (--debug-exit only: without it
# port 0xf4 is unclaimed), which can never be one of zhv's own even
# statuses; 2 usage; 4 load failure; 6 guest crash (triple fault, with a
# register dump); 8 host-side error; death by SIGTERM itself. Also
# unclaimed ports and MMIO, COM1 input.
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
need_binaries "$ZHV" "$K/debug_exit.elf" "$K/hello.elf" "$K/reset.elf" \
	"$K/triple_fault.elf" "$K/unclaimed.elf" "$K/echo.elf" "$K/dev_exit.elf"

# Statuses that need no guest to run.
run_zhv run --cpus 0 "$K/hello.elf"
check "usage error: status 2" eval 'status_is 2 && err_has "--cpus"'
run_zhv run "$T/no-such-kernel"
check "kernel that cannot be opened: status 4" eval 'status_is 4 && err_has "no-such-kernel"'
if ! has_kvm; then
	run_zhv run "$K/hello.elf"
	check "no /dev/kvm: status 8 (host-side error)" eval 'status_is 8 && err_has "/dev/kvm"'
fi

if ! kvm_or_skip "test kernels run"; then
	finish
fi

run_zhv run --debug-exit "$K/debug_exit.elf"
check "debug-exit 0x2a: status 85" status_is 85

run_zhv run --debug-exit --cmdline "exit=21" "$K/hello.elf"
check "debug-exit 21 from C: status 43" status_is 43
check "multiboot command line reaches the kernel" out_has "exit=21"
run_zhv run --debug-exit "$K/hello.elf"
check "debug-exit 0: status 1" status_is 1

# Without --debug-exit port 0xf4 is unclaimed: a write does nothing, reads
# see all-ones, and the guest runs on (here: to an i8042 reset, status 0).
run_zhv run --cmdline "code=2 width=4 then_reset=1" "$K/dev_exit.elf"
check "no --debug-exit: a write to 0xf4 does nothing (the guest runs on, status 0)" \
	eval 'status_is 0 && out_has "exit: the write did nothing" && out_lacks FAIL'
ZHV_TIMEOUT=5 run_zhv run "$K/debug_exit.elf" # writes 0x2a, then halts for good
check "no --debug-exit: debug_exit.elf's write does not end the run (timeout after 5 s)" \
	status_is 124

# No value a guest writes gives one of zhv's own statuses: for each even
# status E, the values E / 2 (4-byte write), E (1 byte), E / 2 + 128
# (1 byte: the exit status keeps 8 bits) and E + 256 (2 bytes) end the run
# with an odd status, never E.
for E in 0 2 4 6 8 10; do
	for vw in $((E >> 1)):4 $E:1 $(((E >> 1) | 0x80)):1 $((E | 0x100)):2; do
		v=${vw%:*} w=${vw#*:}
		want=$((((v & ((1 << (8 * w)) - 1)) << 1 | 1) & 255))
		run_zhv run --debug-exit --cmdline "code=$v width=$w" "$K/dev_exit.elf"
		check "guest writes $v ($w bytes): status $want, odd, not zhv's $E" \
			eval 'status_is $want && [ $((status & 1)) = 1 ] && ! status_is $E'
	done
done

run_zhv run "$K/reset.elf"
check "i8042 reset: status 0" status_is 0
check "i8042 reset: the kernel did not run on" eval 'out_has "reset: pulsing" && out_lacks FAIL'

run_zhv run "$K/triple_fault.elf"
check "triple fault: status 6" status_is 6
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
check "triple fault with an idle AP: status 6, no hang" status_is 6
run_zhv run --debug-exit "$K/triple_fault.elf"
check "triple fault with --debug-exit too: status 6" status_is 6

# Load failures: 4, with the guest never started.
head -c 100 /dev/urandom >"$T/random.bin"
printf '\x90' | dd of="$T/random.bin" bs=1 count=1 conv=notrunc 2>/dev/null # not "\177ELF"
run_zhv run --debug-exit "$T/random.bin"
check "random bytes: status 4 (load failure), formats named" \
	eval 'status_is 4 && err_has "not a kernel format zhv knows" && err_has "--format flat"'
run_zhv run --debug-exit --initrd "$T/no-such-initrd" "$K/hello.elf"
check "missing initrd: status 4" eval 'status_is 4 && err_has "no-such-initrd"'
run_zhv run --debug-exit --disk "$T/no-such-disk" "$K/hello.elf"
check "missing disk: status 4" eval 'status_is 4 && err_has "no-such-disk"'

# A host-side error at set-up (a device that cannot be made): 8.
run_zhv run --debug-exit --net tap=a-name-longer-than-15 "$K/hello.elf"
check "device that cannot be created (tap name too long): status 8" \
	eval 'status_is 8 && err_has "net tap=a-name-longer-than-15"'

run_zhv run --debug-exit "$K/unclaimed.elf"
check "unclaimed ports and MMIO read all-ones" eval 'status_is 65 && out_has PASS'

run_zhv run --debug-exit --debug-io "$K/unclaimed.elf"
check "--debug-io logs unclaimed port and MMIO accesses" \
	eval 'status_is 65 && err_has "unclaimed port read at 0x2a0" && err_has "unclaimed MMIO"'

# A flat binary (only with --format flat) runs in 64-bit mode at 1 MiB:
# mov $0x2a,%eax; out %eax,$0xf4; hlt.
printf '\xb8\x2a\x00\x00\x00\xe7\xf4\xf4\xeb\xfd' >"$T/flat.bin"
run_zhv run --debug-exit --format flat "$T/flat.bin"
check "flat 64-bit binary (--format flat): debug-exit 0x2a gives status 85" status_is 85
run_zhv run --debug-exit "$T/flat.bin"
check "the same bytes without --format flat: refused, status 4" \
	eval 'status_is 4 && err_has "not a kernel format zhv knows"'

last_cmd="printf 'abc\\nq' | zhv run --debug-exit echo.elf"
printf 'abc\nq' | timeout -k 5 "$ZHV_TIMEOUT" "$ZHV" run --debug-exit "$K/echo.elf" >"$T/out" 2>"$T/err"
status=$?
check "stdin reaches COM1 (piped)" eval 'status_is 65 && out_has "abc" && out_has "echo: bye"'

# SIGTERM: zhv cleans up, then dies of the signal itself (the parent sees
# WIFSIGNALED: no exit status, so none a guest could forge).
if command -v python3 >/dev/null; then
	last_cmd="zhv run --debug-exit echo.elf, SIGTERM once it is ready"
	status=$(python3 - "$ZHV" run --debug-exit "$K/echo.elf" 2>"$T/err" <<'EOF'
import os, select, signal, subprocess, sys, time
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=sys.stderr)
out, end = b"", time.time() + 60
while b"echo: ready" not in out and time.time() < end:
    r, _, _ = select.select([p.stdout], [], [], 1)
    if r:
        out += os.read(p.stdout.fileno(), 4096)
p.send_signal(signal.SIGTERM)
try:
    print(p.wait(30))
except subprocess.TimeoutExpired:
    p.kill()
    print("timeout")
EOF
)
	check "SIGTERM: zhv dies of SIGTERM (WIFSIGNALED, not an exit status)" \
		eval '[ "$status" = -15 ] && err_has "terminated by signal 15"'
else
	skip "SIGTERM: zhv dies of SIGTERM" "no python3"
fi

finish
