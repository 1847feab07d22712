#!/usr/bin/env bash
# gdb.sh: zhv run --gdb with Debian's GDB (issue 12). A test kernel built
# with symbols (tests/vmm/kernels/gdb_guest.c) starts held (--gdb-wait);
# `gdb -batch` connects, breaks on a function by name, checks where it
# stopped and a variable, single-steps, watches a global, and runs the
# guest to its end (zhv's exit status checked); the same with 2 vCPUs
# (two GDB threads, Ctrl-C while both run); then a hostile client
# (tests/vmm/lib/gdb_hostile.py) that zhv must survive.
#
# Quirks, each skipped only on the host that has it:
# - kvm_pvm (shared/spec/kvm-on-this-machine.md, section 3), as measured on
#   its AMD host: hardware breakpoints and watchpoints never trigger (debug
#   registers set through KVM_SET_GUEST_DEBUG are not in effect). There the
#   watchpoint steps are skipped. Software breakpoints work there (int3 at
#   CPL0 fails KVM's emulation; libzhv reports it as the breakpoint).
# - QEMU's software CPU (tools/kvm-in-qemu.sh: CPUID says TCGTCGTCGTCG, not
#   kvm_pvm), AMD: its nested SVM checks an int3 against the INTn intercept,
#   not KVM's #BP exception intercept, so KVM never sees a planted int3 and
#   the guest gets #BP. A first session there shows that exact symptom
#   (the guest's "rt: exception 3" and its exit, 253) and the session that
#   follows uses a hardware breakpoint (hbreak) where the others use break.
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS/gdb_guest.elf
need_binaries "$ZHV" "$K" "$BUILD/tests/vmm/host_cpu"
GDB_TIMEOUT=${GDB_TIMEOUT:-240}

# ---- options (no KVM needed) ----
run_zhv run --gdb-wait "$K"
check "--gdb-wait without --gdb: usage error" eval 'status_is 2 && err_has "--gdb-wait needs --gdb"'
run_zhv run --gdb unix:/tmp/x "$K"
check "--gdb unix:...: usage error" eval 'status_is 2 && err_has "expected tcp:HOST:PORT"'
run_zhv run --gdb tcp:127.0.0.1:99999 "$K"
check "--gdb with port 99999: usage error" eval 'status_is 2 && err_has "port number"'
run_zhv run --help
check "zhv run --help lists --gdb and --gdb-wait" eval 'out_has "--gdb tcp:" && out_has "--gdb-wait"'

if ! command -v gdb >/dev/null; then
	not_ok "gdb is installed" "Debian's gdb is a test dependency (tools/deps.sh)"
	finish
fi
if ! kvm_or_skip "GDB sessions"; then
	finish
fi

host_cpu=$("$BUILD/tests/vmm/host_cpu")
host_vendor=${host_cpu%% *}
hw_quirk=0
if [ -d /sys/module/kvm_pvm ] && [ "$host_vendor" = AuthenticAMD ]; then
	hw_quirk=1
fi
HW_QUIRK_MSG="kvm_pvm on AMD: hardware breakpoints and watchpoints never trigger (spec section 3)"
tcg_int3_host=0
if [ ! -d /sys/module/kvm_pvm ] && [ "${host_cpu#* }" = qemu-tcg ] && [ "$host_vendor" = AuthenticAMD ]; then
	tcg_int3_host=1
fi
TCG_INT3_MSG="QEMU TCG AMD: its nested SVM gives the guest the #BP of an int3 instead of KVM's intercept"
echo "# host: $host_cpu$([ -d /sys/module/kvm_pvm ] && echo ", kvm_pvm")"

# start_zhv ARGS...: zhv run in the background (pid in $zpid) with --gdb on
# a free loopback port (in $port), held until GDB attaches.
start_zhv() {
	: >"$T/zout"
	: >"$T/zerr"
	timeout -k 5 "$GDB_TIMEOUT" "$ZHV" run --debug-exit --gdb tcp::0 --gdb-wait "$@" "$K" \
		</dev/null >"$T/zout" 2>"$T/zerr" &
	zpid=$!
	port=
	local i
	for i in $(seq 1 600); do
		port=$(sed -n 's/^zhv: gdb: listening on tcp:127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/zerr")
		[ -n "$port" ] && return 0
		kill -0 "$zpid" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}

# wait_zhv: zhv's exit status in $zstatus.
wait_zhv() {
	wait "$zpid"
	zstatus=$?
}

# start_gdb ARGS...: gdb -batch on the kernel's symbols, connected, running
# the commands ARGS in the background (pid in $gpid, output in $T/gdb),
# killed after GDB_TIMEOUT seconds. wait_gdb: its exit status in $gstatus.
start_gdb() {
	local args=(-batch -nx -ex "set pagination off" -ex "set confirm off"
	            -ex "file $K" -ex "target remote 127.0.0.1:$port")
	local a
	for a in "$@"; do
		args+=(-ex "$a")
	done
	gdb "${args[@]}" </dev/null >"$T/gdb" 2>&1 &
	gpid=$!
	(sleep "$GDB_TIMEOUT"; kill -9 "$gpid" 2>/dev/null) &
	gwatchdog=$!
}
wait_gdb() {
	wait "$gpid"
	gstatus=$?
	kill "$gwatchdog" 2>/dev/null
	wait "$gwatchdog" 2>/dev/null
}
run_gdb() {
	start_gdb "$@"
	wait_gdb
}

gdb_has() { grep -qE -- "$1" "$T/gdb"; }
session() {
	echo "gdb exit status: $gstatus, zhv exit status: ${zstatus:-running}"
	echo "--- gdb"
	head -c 6000 "$T/gdb"
	echo "--- zhv stdout"
	head -c 2000 "$T/zout"
	echo "--- zhv stderr"
	head -c 2000 "$T/zerr"
}
gcheck() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else not_ok "$name" "failed: $*" "$(session)"; fi
}

BREAK=break
if [ "$tcg_int3_host" = 1 ]; then
	if ! start_zhv; then
		not_ok "zhv run --gdb tcp::0 --gdb-wait listens" "$(cat "$T/zerr")"
		finish
	fi
	run_gdb "break gdb_tick" "continue"
	wait_zhv
	if [ "$zstatus" = 253 ] && grep -q "^rt: exception 3 " "$T/zout"; then
		skip "break gdb_tick: a software breakpoint stops the guest" "$TCG_INT3_MSG"
		BREAK=hbreak
	else
		gcheck "break gdb_tick: a software breakpoint stops the guest" \
			gdb_has "^Breakpoint 1, gdb_tick \\(n=1\\)"
	fi
fi

# ---- one vCPU: breakpoint, variable, stepi, watchpoint, to the end ----
if ! start_zhv; then
	not_ok "zhv run --gdb tcp::0 --gdb-wait listens" "$(cat "$T/zerr")"
	finish
fi
ok "zhv run --gdb tcp::0 listens on 127.0.0.1 (port $port)"
watch_cmds=(-ex)
steps=("$BREAK gdb_tick" "continue" "info symbol \$pc" "bt" "print counter" "print n"
       "continue" "print counter"
       "printf \"pc before %#x\\n\", \$pc" "stepi" "printf \"pc after %#x\\n\", \$pc"
       "delete")
if [ "$hw_quirk" = 0 ]; then
	steps+=("watch watched" "continue" "continue" "delete")
fi
steps+=("continue")
run_gdb "${steps[@]}"
wait_zhv
gcheck "GDB attached: the guest held at its entry point (_start)" gdb_has "^0x[0-9a-f]+ in _start \\(\\)"
gcheck "$BREAK gdb_tick: a breakpoint by function name" gdb_has "[Bb]reakpoint 1 at 0x[0-9a-f]+: file .*gdb_guest.c"
gcheck "continue: stopped in gdb_tick (info symbol \$pc)" gdb_has "^gdb_tick in section .text"
gcheck "bt: gdb_tick called from test_main" eval 'gdb_has "^#0 +gdb_tick \\(n=1\\)" && gdb_has "^#1 .* test_main"'
gcheck "print counter: 0 at the first call, n = 1" eval 'gdb_has "^\\\$1 = 0$" && gdb_has "^\\\$2 = 1$"'
gcheck "continue from the breakpoint: its second hit, counter = 1" gdb_has "^\\\$3 = 1$"
before=$(sed -n 's/^pc before //p' "$T/gdb")
after=$(sed -n 's/^pc after //p' "$T/gdb")
gcheck "stepi: one instruction on ($before -> $after)" \
	eval '[ -n "$before" ] && [ -n "$after" ] && [ $((after)) -gt $((before)) ] && [ $((after - before)) -le 15 ]'
if [ "$hw_quirk" = 0 ]; then
	gcheck "watch watched: stopped with old value 0, new value 0x1234" \
		eval 'gdb_has "Hardware watchpoint 2: watched" && gdb_has "^Old value = 0$" && gdb_has "^New value = 4660$"'
	gcheck "watch watched: then old value 0x1234, new value 0x5678" \
		eval 'gdb_has "^Old value = 4660$" && gdb_has "^New value = 22136$"'
else
	skip "watch watched: stops at both writes" "$HW_QUIRK_MSG"
	skip "watch watched: old and new values" "$HW_QUIRK_MSG"
fi
gcheck "continue to the end: GDB sees the guest exit (W reply)" gdb_has "exited with code 0101"
gcheck "zhv ends with the guest's status (65: PASS) and its output" \
	eval '[ "$zstatus" = 65 ] && grep -q "gdb_guest: counter 6 watched 5678" "$T/zout" && grep -q PASS "$T/zout"'
gcheck "GDB ended cleanly" eval '[ "$gstatus" = 0 ] && ! gdb_has "internal-error|Remote connection closed|Ignoring packet error"'

# ---- two vCPUs: two threads, Ctrl-C, variables written by GDB ----
if ! start_zhv --cpus 2 --cmdline "cpus=2 hold=1"; then
	not_ok "zhv run --cpus 2 --gdb listens" "$(cat "$T/zerr")"
	finish
fi
# Ctrl-C: GDB passes a SIGINT to the target as 0x03 while it runs.
start_gdb "info threads" "echo running\n" "continue" "thread 1" "bt" "print ap_ticks > 0" \
	"set var release = 1" "$BREAK gdb_poke" "continue" "info symbol \$pc" "print counter" \
	"thread 2" "info symbol \$pc" "delete" "continue"
for i in $(seq 1 600); do
	grep -q '^running$' "$T/gdb" && break
	sleep 0.1
done
sleep 3 # both vCPUs run meanwhile: the BSP in bsp_hold, the AP in ap_spin
kill -INT "$gpid"
wait_gdb
wait_zhv
gcheck "2 vCPUs: two GDB threads at attach" eval 'gdb_has "Thread 1 \\(vCPU 1\\)" && gdb_has "Thread 2 \\(vCPU 2\\)"'
gcheck "Ctrl-C (SIGINT to GDB: 0x03): every vCPU stops" gdb_has "received signal SIGINT, Interrupt"
gcheck "after the interrupt the BSP waits in bsp_hold" gdb_has "bsp_hold"
gcheck "the AP ran meanwhile (ap_ticks > 0)" gdb_has "^\\\$1 = 1$"
gcheck "set var release = 1, $BREAK gdb_poke: stopped there, counter 6" \
	eval 'gdb_has "^gdb_poke in section .text" && gdb_has "^\\\$2 = 6$"'
gcheck "thread 2: the AP, in its spin loop" eval 'gdb_has "Switching to thread 2" && gdb_has "^(ap_spin|rt_atomic_inc|rt_pause)[^ ]* in section"'
gcheck "2 vCPUs: the guest ran to its end (65)" eval '[ "$zstatus" = 65 ] && gdb_has "exited with code 0101"'

# ---- a hostile client, then the guest runs on ----
if ! start_zhv; then
	not_ok "zhv run --gdb listens (hostile client)" "$(cat "$T/zerr")"
	finish
fi
timeout -k 5 "$GDB_TIMEOUT" python3 "$(dirname "$0")/lib/gdb_hostile.py" "$port" >"$T/gdb" 2>&1
gstatus=$?
wait_zhv
gcheck "hostile packets: errors or NAKs, zhv answering after each" \
	eval '[ "$gstatus" = 0 ] && ! gdb_has "^FAIL"'
gcheck "after the hostile client detached, the guest ran to its end (65)" \
	eval '[ "$zstatus" = 65 ] && grep -q PASS "$T/zout" && grep -q "debugger detached" "$T/zerr"'
echo "# hostile client:"
sed 's/^/#   /' "$T/gdb"
finish
