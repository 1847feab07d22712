#!/usr/bin/env bash
# snapshot.sh: zhv run --control, zhv ctl and zhv run --restore end to end
# with tests/vmm/kernels/snap_count.c (a guest that counts timer ticks on
# 1 or 4 vCPUs, printing each on COM1 and, with a disk, writing each into a
# virtio-blk sector). A run saved mid-count (snapshot --paused, then stop)
# and restored in a new process prints and writes exactly what an
# uninterrupted run does. Then pause/resume/info/stop, zhv ctl's errors,
# a snapshot that replaces an older one, and every kind of bad snapshot
# (refused with status 4, the guest never running).
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
MEM=32M
need_binaries "$ZHV" "$K/snap_count.elf"
kvm_or_skip "snapshot and restore" || finish

SOCK=$T/ctl.sock
CTL() { "$ZHV" ctl "$SOCK" "$@"; }

# start_bg OUT ARGS...: zhv run ARGS in the background (pid in $bg),
# stdout to OUT, stderr to OUT.err.
start_bg() {
	local out=$1
	shift
	last_cmd="zhv $*"
	timeout -k 5 "$ZHV_TIMEOUT" "$ZHV" "$@" </dev/null >"$out" 2>"$out.err" &
	bg=$!
}
# wait_for FILE TEXT: until FILE holds TEXT (or the run ends / times out).
wait_for() {
	for _ in $(seq 1 $((ZHV_TIMEOUT * 10))); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		kill -0 "$bg" 2>/dev/null || { grep -qF -- "$2" "$1"; return; }
		sleep 0.1
	done
	return 1
}
# A disk image of 64 sectors, zeroed.
new_disk() { rm -f "$1"; truncate -s 32K "$1"; }
ticks_of() { grep -c '^tick ' "$1"; }

# ---- saved mid-count, restored in another process ----------------------------------
# same_run NAME CPUS DISK(0|1): the reference run, then the saved and
# restored one; their COM1 output (and disk images) must be identical.
same_run() {
	local name=$1 cpus=$2 disk=$3 dargs=() dargs2=()
	local cmdline="cpus=$cpus disk=$disk ticks=40"
	if [ "$disk" = 1 ]; then
		new_disk "$T/ref.img"
		new_disk "$T/run.img"
		dargs=(--disk "$T/ref.img")
		dargs2=(--disk "$T/run.img")
	fi
	run_zhv run --debug-exit --memory $MEM --cpus "$cpus" "${dargs[@]}" \
		--cmdline "$cmdline" "$K/snap_count.elf"
	cp "$T/out" "$T/ref.out"
	if ! status_is 65 || ! out_has "result"; then
		not_ok "$name: the uninterrupted run passes" "$(last_run)"
		return
	fi
	rm -rf "$T/snap"
	start_bg "$T/a.out" run --debug-exit --memory $MEM --cpus "$cpus" "${dargs2[@]}" \
		--control "$SOCK" --cmdline "$cmdline" "$K/snap_count.elf"
	wait_for "$T/a.out" "tick 004"
	CTL snapshot --paused "$T/snap" >"$T/ctl.out" 2>&1
	local snap_status=$?
	local before
	before=$(ticks_of "$T/a.out")
	CTL stop >>"$T/ctl.out" 2>&1
	wait "$bg"
	local a_status=$?
	if [ $snap_status -ne 0 ] || [ $a_status -ne 0 ] || [ "$before" -ge 40 ]; then
		not_ok "$name: snapshot mid-count" "snapshot status $snap_status, run status $a_status," \
			"ticks before $before" "$(cat "$T/ctl.out" "$T/a.out.err")"
		return
	fi
	ok "$name: snapshot --paused after tick $((before - 1)) of 40, then stop (status 0)"
	if [ "$disk" = 1 ] && ! CTL_info_devices_nonzero; then
		skip "$name: restored run" "this build saves no device state sections yet"
		return
	fi
	run_zhv run --restore "$T/snap"
	cat "$T/a.out" "$T/out" >"$T/both.out"
	check "$name: restored in a new process, it counts on to the same result (status $status)" \
		eval 'status_is 65 && cmp -s "$T/ref.out" "$T/both.out" && out_lacks "tick 000"'
	if [ "$disk" = 1 ]; then
		check "$name: the disk holds what the uninterrupted run wrote" \
			eval 'cmp -s "$T/ref.img" "$T/run.img" && out_has "disk ok"'
	fi
}
# Whether zhv saves device sections (zhv ctl info: devices=N), asked of a
# short-lived run.
CTL_info_devices_nonzero() {
	local pid
	"$ZHV" run --memory $MEM --control "$T/probe.sock" --cmdline "ticks=200" \
		"$K/snap_count.elf" </dev/null >/dev/null 2>&1 &
	pid=$!
	local info=""
	for _ in $(seq 1 100); do
		info=$("$ZHV" ctl "$T/probe.sock" info 2>/dev/null) && break
		sleep 0.1
	done
	"$ZHV" ctl "$T/probe.sock" stop >/dev/null 2>&1
	wait "$pid"
	case "$info" in *" devices=0 "*|"") return 1 ;; esac
	return 0
}

same_run "1 vCPU" 1 0
same_run "4 vCPUs" 4 0
same_run "1 vCPU, virtio disk written before and after" 1 1
same_run "4 vCPUs, virtio disk written before and after" 4 1

# ---- pause, resume, info, stop; a snapshot that replaces another ------------------------
start_bg "$T/p.out" run --debug-exit --memory $MEM --control "$SOCK" \
	--cmdline "ticks=200" "$K/snap_count.elf"
wait_for "$T/p.out" "tick 002"
info=$(CTL info 2>&1)
check "ctl info: running, 1 vCPU, 32 MiB ($info)" \
	eval '[[ "$info" == "running cpus=1 memory=33554432 "* ]]'
CTL pause >/dev/null 2>&1
st=$?
sleep 0.5
n1=$(ticks_of "$T/p.out")
sleep 2
n2=$(ticks_of "$T/p.out")
info=$(CTL info 2>&1)
check "ctl pause: the guest stops counting ($n1 -> $n2 ticks in 2 s), info says paused" \
	eval '[ $st = 0 ] && [ "$n1" = "$n2" ] && [[ "$info" == paused* ]]'
CTL resume >/dev/null 2>&1
st=$?
wait_for "$T/p.out" "tick $(printf %03d $((n2 + 2)))"
n3=$(ticks_of "$T/p.out")
check "ctl resume: it counts on ($n2 -> $n3)" eval '[ $st = 0 ] && [ "$n3" -gt "$n2" ]'
CTL snapshot "$T/snap2" >/dev/null 2>&1
s1=$?
CTL snapshot "$T/snap2" >"$T/ctl.out" 2>&1
s2=$?
left=$(ls -d "$T"/snap2.tmp-* 2>/dev/null | wc -l)
info=$(CTL info 2>&1)
check "ctl snapshot twice into one DIR: replaced, nothing left beside it, still running" \
	eval '[ $s1 = 0 ] && [ $s2 = 0 ] && [ "$left" = 0 ] && [ -f "$T/snap2/manifest" ] &&
		[[ "$info" == running* ]]'
CTL stop >/dev/null 2>&1
st=$?
wait "$bg"
ws=$?
check "ctl stop: zhv run ends with status 0 and removes its socket" \
	eval '[ $st = 0 ] && [ $ws = 0 ] && [ ! -e "$SOCK" ]'
run_zhv run --restore "$T/snap2"
check "the replacing snapshot restores (the guest finishes: status $status)" \
	eval 'status_is 65 && out_has "result" && out_lacks "tick 000"'

# ---- zhv ctl's errors ------------------------------------------------------------------------
"$ZHV" ctl "$T/nothing.sock" info >"$T/out" 2>"$T/err"
status=$?
check "ctl: no such socket: status 8 and a message" \
	eval 'status_is 8 && err_has "cannot reach zhv at"'
"$ZHV" ctl "$T/nothing.sock" frobnicate >"$T/out" 2>"$T/err"
status=$?
check "ctl: unknown command: status 2 and a message" \
	eval 'status_is 2 && err_has "zhv ctl: unknown command"'
"$ZHV" ctl "$T/nothing.sock" >"$T/out" 2>"$T/err"
status=$?
check "ctl: missing command: status 2" eval 'status_is 2 && err_has "zhv ctl: missing COMMAND"'
"$ZHV" ctl "$T/nothing.sock" snapshot >"$T/out" 2>"$T/err"
status=$?
check "ctl: snapshot without DIR: status 2" eval 'status_is 2 && err_has "zhv ctl: usage"'
start_bg "$T/e.out" run --memory $MEM --control "$SOCK" --cmdline "ticks=200" "$K/snap_count.elf"
wait_for "$T/e.out" "counting"
CTL snapshot "/nonexistent-dir/x/snap" >"$T/out" 2>"$T/err"
status=$?
check "ctl snapshot into a missing parent: status 8, the reason, the guest runs on" \
	eval 'status_is 8 && err_has "cannot create" && [[ "$(CTL info)" == running* ]]'
CTL stop >/dev/null 2>&1
wait "$bg"

# ---- bad snapshots ------------------------------------------------------------------------------
# Two good ones to damage: 32 MiB (the base) and 64 MiB (for its memory).
start_bg "$T/b.out" run --memory 64M --control "$SOCK" --cmdline "ticks=200" "$K/snap_count.elf"
wait_for "$T/b.out" "counting"
CTL snapshot "$T/snap64" >/dev/null 2>&1
CTL stop >/dev/null 2>&1
wait "$bg"
# bad NAME MESSAGE: restoring $T/bad must fail with status 4 and MESSAGE, the
# guest never running.
bad() {
	want=$2
	run_zhv run --restore "$T/bad"
	check "bad snapshot, $1: refused with status 4 ('$2')" \
		eval 'status_is 4 && err_has "$want" && out_empty && no_crash'
}
fresh() { rm -rf "$T/bad"; cp -r "$T/snap2" "$T/bad"; }
flip() { # flip one byte of file $1 at offset $2
	local b
	b=$(dd if="$1" bs=1 skip="$2" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
	printf "$(printf '\\%03o' $(((b ^ 0x55) & 255)))" |
		dd of="$1" bs=1 seek="$2" count=1 conv=notrunc 2>/dev/null
}
rm -rf "$T/bad"
bad "no such directory" "missing"
fresh; rm "$T/bad/memory"; bad "memory file missing" "memory: missing"
fresh; rm "$T/bad/state"; bad "state file missing" "state: missing"
fresh; rm "$T/bad/manifest"; bad "manifest missing" "manifest: missing"
fresh; truncate -s -4096 "$T/bad/memory"; bad "memory truncated" "truncated or of another memory size"
fresh; flip "$T/bad/memory" 1048700; bad "memory corrupted" "memory: corrupted"
fresh; truncate -s -100 "$T/bad/state"; bad "state truncated" "truncated"
fresh; flip "$T/bad/state" 200; bad "state corrupted" "state: corrupted"
fresh; flip "$T/bad/manifest" 20; bad "manifest corrupted" "corrupted"
fresh; head -c 40 "$T/snap2/manifest" >"$T/bad/manifest"; bad "manifest truncated" "truncated"
fresh; sed -i '1s/.*/zhv-snapshot 2/' "$T/bad/manifest"; bad "format version 2" "format version 2, this zhv reads version 1"
fresh; echo "hello" >"$T/bad/manifest"; bad "not a snapshot" "not a zhv snapshot"
fresh; cp "$T/snap64/memory" "$T/bad/memory"; bad "memory of another machine size" "of another memory size"
fresh; cp "$T/snap64/state" "$T/bad/state"; bad "state of another snapshot" "state"
finish
