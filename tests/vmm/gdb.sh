#!/usr/bin/env bash
# gdb.sh: zhv run --gdb with Debian's GDB (issue 12). A test kernel built
# with symbols (tests/vmm/kernels/gdb_guest.c) starts held (--gdb-wait);
# `gdb -batch` connects, breaks on a function by name, checks where it
# stopped and a variable, single-steps, watches a global, and runs the
# guest to its end (zhv's exit status checked); the same with 2 vCPUs
# (two GDB threads, Ctrl-C while both run); a machine restored from a
# snapshot (--restore with --gdb-wait); then a hostile client
# (tests/vmm/lib/gdb_hostile.py) that zhv must survive.
#
# Each session is its own run of zhv. Quirks (as libzhv's conformance
# debug tests and README "Tests" name them), each skipped only on a host
# that has it and only after the session showed exactly its symptom:
# - kvm_pvm (shared/spec/kvm-on-this-machine.md, section 3), AMD and Intel
#   (the same module): hardware breakpoints and watchpoints never trigger.
#   Symptom: the guest runs through the watchpoint to its end (65).
#   Software breakpoints work there (int3 at CPL0 fails KVM's emulation;
#   libzhv's fallback reports it as the breakpoint), as CPL0 steps do.
# - QEMU's software CPU (tools/kvm-in-qemu.sh: CPUID says TCGTCGTCGTCG, not
#   kvm_pvm), AMD: its nested SVM checks an int3 against the INTn intercept
#   only, so KVM never sees a planted int3. Symptom: the guest's own #BP
#   handler runs ("rt: exception 3", status 253). And the debug registers
#   VMRUN loads never trigger (QEMU sets DR7 without arming its
#   breakpoints): the same symptom as kvm_pvm's. Single-steps work there.
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
hw_quirk=   # the named quirk of this host for hardware breakpoints, if any
int3_quirk= # the same for int3
if [ -d /sys/module/kvm_pvm ] && [ "$host_vendor" = AuthenticAMD ]; then
	# measured on an AMD host only (spec section 3): elsewhere, a failure
	hw_quirk="kvm_pvm (AMD): hardware breakpoints and watchpoints never trigger (spec section 3)"
elif [ "${host_cpu#* }" = qemu-tcg ] && [ "$host_vendor" = AuthenticAMD ]; then
	hw_quirk="QEMU TCG AMD: debug registers loaded by VMRUN never trigger"
	int3_quirk="QEMU TCG AMD: int3 in a nested guest bypasses its #BP intercept"
fi
echo "# host: $host_cpu$([ -d /sys/module/kvm_pvm ] && echo ", kvm_pvm")"

# start_zhv ARGS...: zhv run in the background (pid in $zpid) with --gdb on
# a free loopback port (in $port), held until GDB attaches.
start_zhv() {
	: >"$T/zout"
	: >"$T/zerr"
	timeout -k 5 "$GDB_TIMEOUT" "$ZHV" run --debug-exit --gdb tcp::0 --gdb-wait "$@" "$K" \
		</dev/null >"$T/zout" 2>"$T/zerr" &
	zpid=$!
	wait_port
}

# wait_port: the port zhv (pid $zpid) says it listens on, in $port.
wait_port() {
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

# wait_zhv: zhv's exit status in $zstatus (its stderr kept for the
# sanitizer check at the end).
wait_zhv() {
	wait "$zpid"
	zstatus=$?
	cat "$T/zerr" >>"$T/zerr.all"
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

# ---- a session from the first instruction: registers, steps, memory, detach ----
if ! start_zhv; then
	not_ok "zhv run --gdb tcp::0 --gdb-wait listens" "$(cat "$T/zerr")"
	finish
fi
ok "zhv run --gdb tcp::0 listens on 127.0.0.1 (port $port)"
run_gdb "info registers eip cs" "print/x \$eax" "print \$cr0 & 1" "stepi" "info symbol \$pc" \
	"stepi" "info symbol \$pc" "stepi" "info symbol \$pc" "stepi" "info symbol \$pc" \
	"set var \$ecx = 0x12345678" "stepi" "print/x \$ecx" "print counter" "x/2xw &ap_ticks" \
	"info threads" "detach"
wait_zhv
gcheck "attach: the guest held at its entry point (_start), eip 0x100010" \
	eval 'gdb_has "^0x00100010 in _start \\(\\)" && gdb_has "^eip +0x100010 +0x100010 <_start>"'
gcheck "registers: eax holds the multiboot magic, cr0.PE set" \
	eval 'gdb_has "^\\\$1 = 0x2badb002$" && gdb_has "^\\\$2 = 1$"'
gcheck "stepi x4: cli, cld, lgdt, ljmp (_start+1, +2, +9, +16)" \
	eval 'gdb_has "^_start \\+ 1 in section .text" && gdb_has "^_start \\+ 2 in section .text" && gdb_has "^_start \\+ 9 in section .text" && gdb_has "^_start \\+ 16 in section .text"'
gcheck "set \$ecx, then stepi over mov \$0x10,%cx: ecx 0x12340010" gdb_has "^\\\$3 = 0x12340010$"
gcheck "memory by symbol: counter = 0, ap_ticks readable" \
	eval 'gdb_has "^\\\$4 = 0$" && gdb_has "^0x[0-9a-f]+ <ap_ticks>:"'
gcheck "one vCPU: one GDB thread" eval 'gdb_has "Thread 1 \\(vCPU 1\\)" && ! gdb_has "Thread 2"'
gcheck "detach: the guest runs on to its end (65, PASS)" \
	eval '[ "$zstatus" = 65 ] && grep -q PASS "$T/zout" && gdb_has "Inferior 1 .* detached" && grep -q "debugger detached" "$T/zerr"'
gcheck "GDB ended cleanly" eval '[ "$gstatus" = 0 ] && ! gdb_has "internal-error|Remote connection closed|Ignoring packet error|Remote failure"'

# ---- software breakpoints: break by name, bt, variables, continue, step ----
start_zhv || { not_ok "zhv run --gdb listens" "$(cat "$T/zerr")"; finish; }
run_gdb "break gdb_tick" "continue" "info symbol \$pc" "bt" "print counter" "print n" \
	"continue" "print counter" "printf \"pc before %#x\\n\", \$pc" "stepi" \
	"printf \"pc after %#x\\n\", \$pc" "delete" "continue"
wait_zhv
gcheck "break gdb_tick: a breakpoint by function name" gdb_has "^Breakpoint 1 at 0x[0-9a-f]+: file .*gdb_guest.c"
if [ -n "$int3_quirk" ] && [ "$zstatus" = 253 ] && grep -q "^rt: exception 3 " "$T/zout"; then
	for what in "continue: stopped in gdb_tick" "bt, counter, n at the first hit" \
	            "continue from the breakpoint: its second hit" "stepi from the breakpoint"; do
		skip "$what" "$int3_quirk"
	done
else
	gcheck "continue: stopped in gdb_tick (info symbol \$pc)" gdb_has "^gdb_tick in section .text"
	gcheck "bt: gdb_tick (n=1) called from test_main; counter 0, n 1" \
		eval 'gdb_has "^#0 +gdb_tick \\(n=1\\)" && gdb_has "^#1 .* test_main" && gdb_has "^\\\$1 = 0$" && gdb_has "^\\\$2 = 1$"'
	gcheck "continue from the breakpoint: its second hit, counter = 1" gdb_has "^\\\$3 = 1$"
	before=$(sed -n 's/^pc before //p' "$T/gdb")
	after=$(sed -n 's/^pc after //p' "$T/gdb")
	gcheck "stepi from the breakpoint: one instruction on ($before -> $after)" \
		eval '[ -n "$before" ] && [ -n "$after" ] && [ $((after)) -gt $((before)) ] && [ $((after - before)) -le 15 ]'
fi
gcheck "continue to the end: GDB sees the guest exit, zhv's status 65 (or the quirk's 253)" \
	eval '{ [ "$zstatus" = 65 ] && gdb_has "exited with code 0101"; } || { [ -n "$int3_quirk" ] && [ "$zstatus" = 253 ] && gdb_has "exited with code 0375"; }'

# ---- a watchpoint (the debug registers) ----
start_zhv || { not_ok "zhv run --gdb listens" "$(cat "$T/zerr")"; finish; }
run_gdb "watch watched" "continue" "continue" "delete" "continue"
wait_zhv
gcheck "watch watched: a hardware watchpoint" gdb_has "^Hardware watchpoint 1: watched"
if [ -n "$hw_quirk" ] && [ "$zstatus" = 65 ] && ! gdb_has "^Old value"; then
	skip "watch watched: stops with old value 0, new value 0x1234" "$hw_quirk"
	skip "watch watched: then old value 0x1234, new value 0x5678" "$hw_quirk"
else
	gcheck "watch watched: stops with old value 0, new value 0x1234" \
		eval 'gdb_has "^Old value = 0$" && gdb_has "^New value = 4660$"'
	gcheck "watch watched: then old value 0x1234, new value 0x5678" \
		eval 'gdb_has "^Old value = 4660$" && gdb_has "^New value = 22136$"'
	gcheck "watchpoints: the guest then ran to its end (65)" \
		eval '[ "$zstatus" = 65 ] && gdb_has "exited with code 0101"'
fi

# ---- two vCPUs: two threads, Ctrl-C, a variable written by GDB ----
start_zhv --cpus 2 --cmdline "cpus=2 hold=1" || { not_ok "zhv run --cpus 2 --gdb listens" "$(cat "$T/zerr")"; finish; }
# Ctrl-C: GDB passes a SIGINT to the target as 0x03 while it runs.
start_gdb "info threads" "echo running\\n" "continue" "thread 1" "bt" "print ap_ticks > 0" \
	"thread 2" "info symbol \$pc" "set var release = 1" "continue"
for i in $(seq 1 600); do
	grep -q '^running$' "$T/gdb" && break
	sleep 0.1
done
sleep 3 # both vCPUs run meanwhile: the BSP in bsp_hold, the AP in ap_spin
kill -INT "$gpid"
wait_gdb
wait_zhv
gcheck "2 vCPUs: two GDB threads" eval 'gdb_has "Thread 1 \\(vCPU 1\\)" && gdb_has "Thread 2 \\(vCPU 2\\)"'
gcheck "Ctrl-C (SIGINT to GDB: 0x03): every vCPU stops" gdb_has "received signal SIGINT, Interrupt"
gcheck "after the interrupt the BSP waits in bsp_hold" gdb_has "bsp_hold"
gcheck "the AP ran meanwhile (ap_ticks > 0)" gdb_has "^\\\$1 = 1$"
gcheck "thread 2: the AP, in its spin loop" \
	eval 'gdb_has "Switching to thread 2" && gdb_has "^(ap_spin|rt_atomic_inc|rt_pause)( \\+ [0-9]+)? in section"'
gcheck "set var release = 1, continue: the guest ran to its end (65)" \
	eval '[ "$zstatus" = 65 ] && gdb_has "exited with code 0101" && grep -q "counter 6 watched 5678 ap_ticks some" "$T/zout"'

# ---- a restored machine: GDB attaches to it before its first instruction ----
# Saved while the BSP holds in bsp_hold and the AP counts (zhv ctl snapshot
# --paused, then stop), restored with --gdb --gdb-wait: both vCPUs are
# where the snapshot left them, the saved memory is there, and the guest
# runs on to its end once GDB releases the BSP.
SOCK=$T/ctl.sock
rm -rf "$T/snap"
: >"$T/zout"
timeout -k 5 "$GDB_TIMEOUT" "$ZHV" run --debug-exit --cpus 2 --control "$SOCK" \
	--cmdline "cpus=2 hold=1" "$K" </dev/null >"$T/zout" 2>"$T/zerr" &
zpid=$!
for i in $(seq 1 600); do
	grep -q "gdb_guest: holding" "$T/zout" && break
	kill -0 "$zpid" 2>/dev/null || break
	sleep 0.1
done
sleep 1 # the AP counts on meanwhile
"$ZHV" ctl "$SOCK" snapshot --paused "$T/snap" >"$T/ctl.out" 2>&1
snap_status=$?
"$ZHV" ctl "$SOCK" stop >>"$T/ctl.out" 2>&1
wait_zhv
if [ "$snap_status" != 0 ] || [ "$zstatus" != 0 ]; then
	not_ok "restored machine: snapshot of the held guest" "snapshot status $snap_status" \
		"$(cat "$T/ctl.out")" "$(session)"
else
	ok "restored machine: the held guest saved (snapshot --paused, stop: status 0)"
	: >"$T/zout"
	: >"$T/zerr"
	timeout -k 5 "$GDB_TIMEOUT" "$ZHV" run --gdb tcp::0 --gdb-wait --restore "$T/snap" \
		</dev/null >"$T/zout" 2>"$T/zerr" &
	zpid=$!
	if ! wait_port; then
		not_ok "zhv run --restore --gdb tcp::0 --gdb-wait listens" "$(cat "$T/zerr")"
	else
		run_gdb "info threads" "thread 1" "bt" "print ap_ticks > 0" "print counter" \
			"thread 2" "info symbol \$pc" "set var release = 1" "continue"
		wait_zhv
		gcheck "restored machine: two GDB threads" \
			eval 'gdb_has "Thread 1 \\(vCPU 1\\)" && gdb_has "Thread 2 \\(vCPU 2\\)"'
		gcheck "restored machine: the BSP held in bsp_hold, as saved" \
			eval 'gdb_has "bsp_hold" && gdb_has "test_main"'
		gcheck "restored machine: the saved memory (ap_ticks > 0, counter 0)" \
			eval 'gdb_has "^\\\$1 = 1$" && gdb_has "^\\\$2 = 0$"'
		gcheck "restored machine: thread 2, the AP in its spin loop" \
			eval 'gdb_has "^(ap_spin|rt_atomic_inc|rt_pause)( \\+ [0-9]+)? in section"'
		gcheck "restored machine: set var release = 1, continue: the guest ran to its end (65)" \
			eval '[ "$zstatus" = 65 ] && gdb_has "exited with code 0101" && grep -q "counter 6 watched 5678 ap_ticks some" "$T/zout"'
	fi
fi

# ---- a hostile client, then the guest runs on ----
start_zhv || { not_ok "zhv run --gdb listens (hostile client)" "$(cat "$T/zerr")"; finish; }
timeout -k 5 "$GDB_TIMEOUT" python3 "$(dirname "$0")/lib/gdb_hostile.py" "$port" >"$T/gdb" 2>&1
gstatus=$?
wait_zhv
gcheck "hostile packets: errors or NAKs, zhv answering after each" \
	eval '[ "$gstatus" = 0 ] && ! gdb_has "^FAIL"'
gcheck "after the hostile client detached, the guest ran to its end (65)" \
	eval '[ "$zstatus" = 65 ] && grep -q PASS "$T/zout" && grep -q "debugger detached" "$T/zerr"'
echo "# hostile client:"
sed 's/^/#   /' "$T/gdb"
if grep -qiE 'AddressSanitizer|ThreadSanitizer|LeakSanitizer|runtime error' "$T/zerr.all"; then
	not_ok "no sanitizer report from zhv in any session" "$(grep -iE -A20 'Sanitizer|runtime error' "$T/zerr.all" | head -60)"
else
	ok "no sanitizer report from zhv in any session"
fi
finish
