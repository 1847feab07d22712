#!/usr/bin/env bash
# stall.sh: a guest cannot hold zhv. SIGTERM (and Ctrl-A x) end zhv
# promptly while the guest (a) keeps a virtio-blk doorbell ringing with
# 500 GiB of reads queued behind it, or (b) prints endlessly to a stdout
# (pipe or terminal) nobody reads. Each case prints the measured time from
# the signal or keys to zhv's exit.
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
need_binaries "$ZHV" "$K/stall_blk.elf" "$K/stall_print.elf" "$BUILD/tests/vmm/host_cpu"
LIB=$(dirname "$0")/lib
# Time allowed from SIGTERM (or Ctrl-A x) to exit: 1 s, as promised. zhv
# needs a few milliseconds plus at most 200 ms of console flushing. A
# ThreadSanitizer build runs zhv's own code 5 to 15 times slower: 3 s
# there. On QEMU's software CPU (tools/kvm-in-qemu.sh), where the host
# kernel is emulated too, the hostile ring's exit waits for its in-flight
# reads (up to 256 x 256 KiB) in emulated page-cache copies: 0.41 to 1.07 s
# measured in 20 runs, so 3 s there as well. ZHV_STOP_LIMIT overrides.
STOP_LIMIT=1.0
host_cpu=$("$BUILD/tests/vmm/host_cpu")
if ldd "$ZHV" 2>/dev/null | grep -q libtsan || [ "${host_cpu#* }" = qemu-tcg ]; then
	STOP_LIMIT=3.0
fi
STOP_LIMIT=${ZHV_STOP_LIMIT:-$STOP_LIMIT}

if ! kvm_or_skip "stall: hostile virtio-blk doorbell"; then
	finish
fi

# wait_for FILE TEXT SECONDS: until FILE contains TEXT.
wait_for() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# stop_zhv PID: SIGTERM, then wait (at most 30 s, then SIGKILL); sets
# $status and $stop_s (seconds from the signal to the exit).
stop_zhv() {
	local pid=$1 t0 t1 i
	t0=$(date +%s.%N)
	kill -TERM "$pid"
	for ((i = 0; i < 3000; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.01
	done
	t1=$(date +%s.%N)
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
	fi
	wait "$pid"
	status=$?
	stop_s=$(echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}')
}
within_limit() { awk -v s="$stop_s" -v l="$STOP_LIMIT" 'BEGIN { exit !(s < l) }'; }

# ---- (a) 256 x 2 GiB of reads behind one doorbell, rung in a loop ----------
truncate -s 2100M "$T/big.img"
last_cmd="zhv run -m 64M --disk big.img stall_blk.elf"
"$ZHV" run -m 64M --disk "$T/big.img" "$K/stall_blk.elf" </dev/null >"$T/out" 2>"$T/err" &
pid=$!
if wait_for "$T/out" "stall_blk: ringing" 60; then
	sleep 1
	stop_zhv "$pid"
	echo "# SIGTERM to exit with the doorbell ringing: $stop_s s"
	check "hostile virtio-blk ring: SIGTERM ends zhv within $STOP_LIMIT s (took $stop_s s)" \
		eval 'status_is 143 && within_limit'
	check "hostile virtio-blk ring: no device error, no crash" \
		eval '! err_has "needs reset" && ! grep -qiE "AddressSanitizer|ThreadSanitizer|runtime error" "$T/err"'
else
	kill -KILL "$pid" 2>/dev/null
	wait "$pid"
	not_ok "hostile virtio-blk ring: the guest did not start" "$(last_run)"
fi

# ---- (b) stdout a pipe nobody reads ---------------------------------------
mkfifo "$T/fifo"
python3 "$LIB/stall_reader.py" "$T/fifo" "print: ready" "$T/reader" &
reader=$!
last_cmd="zhv run stall_print.elf >fifo (reader stalled)"
: >"$T/out"
"$ZHV" run "$K/stall_print.elf" </dev/null >"$T/fifo" 2>"$T/err" &
pid=$!
if wait_for "$T/reader" "full" 60; then
	sleep 1
	stop_zhv "$pid"
	echo "# SIGTERM to exit with stdout stalled: $stop_s s"
	check "stalled stdout pipe: SIGTERM ends zhv within $STOP_LIMIT s (took $stop_s s)" \
		eval 'status_is 143 && within_limit'
	check "stalled stdout pipe: the dropped output is counted on stderr" \
		eval 'grep -qE "zhv: COM1: [0-9]+ bytes of output dropped" "$T/err"'
else
	kill -KILL "$pid" 2>/dev/null
	wait "$pid"
	not_ok "stalled stdout pipe: the reader never saw the guest" "$(last_run)"
fi
kill "$reader" 2>/dev/null
wait "$reader" 2>/dev/null

# ---- (b) the same on a terminal nobody reads: Ctrl-A x and SIGTERM ---------
if command -v python3 >/dev/null; then
	PTY="python3 $LIB/pty_run.py"
	for act in "--send \x01x" "--signal TERM"; do
		last_cmd="pty_run --wait 'print: ready' --stall 20 $act -- zhv run stall_print.elf"
		# shellcheck disable=SC2086
		$PTY --timeout "$ZHV_TIMEOUT" --wait "print: ready" --stall 20 $act -- \
			"$ZHV" run "$K/stall_print.elf" >"$T/out" 2>"$T/err"
		sed 's/^/# /' "$T/err"
		status=$(sed -n 's/^pty_run: status \([^ ]*\) .*/\1/p' "$T/out")
		stop_s=$(sed -n 's/^pty_run: status .* after \([^ ]*\)$/\1/p' "$T/out")
		: "${status:=none}" "${stop_s:=none}"
		want=0
		[ "$act" = "--signal TERM" ] && want=-15 # killed by SIGTERM, re-raised after clean-up
		echo "# $act to exit with the terminal stalled: $stop_s s"
		check "stalled terminal: ${act#--} ends zhv within $STOP_LIMIT s (took $stop_s s)" \
			eval '[ "$status" = "$want" ] && [ "$stop_s" != none ] && within_limit'
		check "stalled terminal: ${act#--}: terminal restored" eval 'grep -q "termios same" "$T/out"'
	done
else
	skip "stalled terminal" "no python3 for the pseudo-terminal helper"
fi

finish
