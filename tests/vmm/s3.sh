#!/usr/bin/env bash
# s3.sh: ACPI S3 (suspend to RAM) end to end with tests/vmm/kernels/
# acpi_s3.c: the guest arms the RTC alarm, writes the FACS waking vector
# and enters S3; zhv stops every vCPU, the alarm wakes the machine and the
# BSP resumes at the vector (real mode; with x=1 the 32-bit X vector),
# with WAK_STS/RTC_STS set, RAM kept, the interrupt controllers reset and
# (2 vCPUs) the AP stopped and waiting for INIT/SIPI. Then a guest that
# sleeps with no wake armed: zhv waits without using the CPU until SIGTERM
# ends it (it dies of the signal after its clean-up, as documented), or
# Ctrl-A x on the terminal (status 0).
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
MEM=32M
need_binaries "$ZHV" "$K/acpi_s3.elf"

if ! kvm_or_skip "ACPI S3 tests"; then
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

# ---- wake by the RTC alarm ------------------------------------------------------
run_zhv run --debug-exit --memory $MEM "$K/acpi_s3.elf"
check "s3, 1 vCPU: suspend, RTC wake, real-mode resume (status 65, ${elapsed}s)" passed
groups "s3, 1 vCPU" s3-vector s3-pm1 s3-ram s3-irqchips

run_zhv run --debug-exit --memory $MEM --cpus 2 --cmdline "cpus=2" "$K/acpi_s3.elf"
check "s3, 2 vCPUs: the AP stops and waits for INIT/SIPI after the wake (${elapsed}s)" passed
groups "s3, 2 vCPUs" s3-vector s3-pm1 s3-ram s3-irqchips s3-ap

run_zhv run --debug-exit --memory $MEM --cmdline "x=1" "$K/acpi_s3.elf"
check "s3, X_Firmware_Waking_Vector: 32-bit protected-mode resume (${elapsed}s)" passed
groups "s3, X vector" s3-vector s3-pm1 s3-ram

# No waking vector in the FACS: the wake resets the machine as a BIOS does;
# a reset ends zhv's run with status 0.
run_zhv run --debug-exit --memory $MEM --cmdline "novec=1" "$K/acpi_s3.elf"
check "s3, no waking vector: the wake resets the machine (status 0, ${elapsed}s)" \
	eval 'status_is 0 && err_has "no usable waking vector" && out_has "s3: entering S3" &&
		out_lacks "s3: resumed" && out_lacks FAIL'

# ---- no wake armed: asleep until SIGTERM ---------------------------------------------
# CPU time (user + system, in clock ticks) of process $1.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null; }
last_cmd="zhv run --debug-exit --memory $MEM --cmdline arm=0 acpi_s3.elf (then SIGTERM)"
"$ZHV" run --debug-exit --memory $MEM --cmdline "arm=0" "$K/acpi_s3.elf" \
	</dev/null >"$T/out" 2>"$T/err" &
pid=$!
for _ in $(seq 1 $((ZHV_TIMEOUT * 10))); do
	grep -qF "s3: sleeping" "$T/out" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if grep -qF "s3: sleeping" "$T/out" && kill -0 "$pid" 2>/dev/null; then
	sleep 1 # the vCPU has parked
	hz=$(getconf CLK_TCK)
	c0=$(cpu_ticks "$pid")
	w0=$(date +%s.%N)
	sleep 3
	c1=$(cpu_ticks "$pid")
	w1=$(date +%s.%N)
	kill -TERM "$pid"
	wait "$pid"
	status=$?
	cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN {printf "%.3f", (b - a) / hz}')
	wall=$(echo "$w0 $w1" | awk '{printf "%.3f", $2 - $1}')
	echo "# asleep: zhv used ${cpu}s of CPU in ${wall}s of wall time"
	check "s3, no wake armed: zhv sleeps without using the CPU (${cpu}s CPU in ${wall}s)" \
		awk -v c="$cpu" -v w="$wall" 'BEGIN {exit !(c * 10 < w)}'
	check "s3, no wake armed: SIGTERM ends the run; zhv dies of it (status $status)" \
		status_is 143
	check "s3, no wake armed: the guest never resumed" eval 'out_lacks "s3: resumed" && out_lacks FAIL'
	check "s3, no wake armed: no sandbox violation or crash" \
		eval '! grep -qiE "sandbox|AddressSanitizer|runtime error|ThreadSanitizer" "$T/err"'
else
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	status=$?
	not_ok "s3, no wake armed: the guest went to sleep" "$(last_run)"
fi

# Ctrl-A x on the terminal also ends a sleeping machine (status 0).
last_cmd="pty_run.py --wait 's3: sleeping' --send '\\x01x' -- zhv run ... arm=0"
python3 "$(dirname "$0")/lib/pty_run.py" --wait "s3: sleeping" --send '\x01x' --timeout "$ZHV_TIMEOUT" \
	-- "$ZHV" run --debug-exit --memory $MEM --cmdline "arm=0" "$K/acpi_s3.elf" >"$T/out" 2>&1
status=$(sed -n 's/^pty_run: status \([^ ]*\) .*/\1/p' "$T/out")
status=${status:-none}
check "s3, no wake armed: Ctrl-A x ends the run with status 0, terminal restored" \
	eval '[ "$status" = 0 ] && grep -q "^pty_run: status 0 termios same" "$T/out" && out_lacks "s3: resumed"'

finish
