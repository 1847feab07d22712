#!/usr/bin/env bash
# sandbox.sh: zhv run's seccomp sandbox (vmm/sandbox.h), end to end. A guest
# runs with it on (the default); a forbidden call made by a zhv thread once
# the guest runs (the test hook ZHV_SANDBOX_SELFTEST, read before the
# sandbox goes on) ends the run with status 10 and a message naming the
# call; with --no-sandbox the same call returns and the guest runs on.
# The rest of the suite runs with the sandbox on too.
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
need_binaries "$ZHV" "$K/reset.elf"

if ! kvm_or_skip "sandbox tests"; then
	finish
fi

# Sanitizer builds run a wider filter (open and ptrace allowed for their
# reports and LeakSanitizer): the calls forbidden in every build first.
sanitizer=0
if grep -qaE '__(asan|tsan)_init' "$ZHV"; then
	sanitizer=1
fi

run_zhv run "$K/reset.elf"
check "a guest runs to its reset under the sandbox (status 0)" \
	eval 'status_is 0 && out_has "reset: pulsing"'

# name of the hook's call, system call the message names
calls="socket:socket execve:execve ioctl:ioctl mprotect-exec:mprotect"
[ "$sanitizer" = 1 ] || calls="open:openat ptrace:ptrace $calls"
for c in $calls; do
	hook=${c%%:*} sys=${c#*:}
	ZHV_SANDBOX_SELFTEST=$hook run_zhv run "$K/reset.elf"
	check "$hook on a vCPU thread: status 10, the message names $sys" \
		eval "status_is 10 && err_has 'zhv: sandbox: forbidden system call $sys (number' && err_has \"on thread 'vcpu 1'\" && out_lacks 'reset: pulsing'"
done

ZHV_SANDBOX_SELFTEST=ioctl run_zhv run "$K/reset.elf"
check "a forbidden ioctl is named by its request (KVM_CREATE_VM)" err_has "request 0xae01"

ZHV_SANDBOX_SELFTEST=main:socket run_zhv run "$K/reset.elf"
check "socket on the main thread: status 10, the message names it" \
	eval "status_is 10 && err_has 'forbidden system call socket' && err_has \"on thread 'zhv'\""

ZHV_SANDBOX_SELFTEST=socket run_zhv run --cpus 2 "$K/reset.elf"
check "with 2 vCPUs too" eval "status_is 10 && err_has 'forbidden system call socket'"

for hook in socket execve mprotect-exec main:socket; do
	ZHV_SANDBOX_SELFTEST=$hook run_zhv run --no-sandbox "$K/reset.elf"
	check "--no-sandbox: $hook returns and the guest runs on (status 0)" \
		eval "status_is 0 && err_has 'sandbox self-test on' && out_has 'reset: pulsing' && ! err_has 'forbidden'"
done

run_zhv run --help
check "--help lists --no-sandbox" out_has "--no-sandbox"

finish
