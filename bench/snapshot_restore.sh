#!/bin/sh
# bench/snapshot_restore.sh: `zhv run --restore` to the guest's next COM1
# byte against a cold `zhv run` of the same guest to its first byte
# (issue 9, 5a). Needs /dev/kvm (tools/kvm-in-qemu.sh otherwise).
#
# The guest is tests/vmm/kernels/snap_count.elf with a long, fast count
# (ticks=100000 delay=1000: a line on COM1 every few tens of microseconds
# of APIC timer): a cold run boots it (kernel load, devices, vCPU, the
# runtime's set-up) up to its first line; for the restore, one run is
# paused mid-count and saved (zhv ctl snapshot --paused), and each
# restore (a new process: manifest, state and memory files read and
# checked, the board rebuilt, vCPUs and clock restored) runs to the next
# byte, at most one tick away. Each run is timed from just before its
# spawn to the first byte on its stdout (a pipe), then killed; the
# contenders alternate, RUNS times each (default 20), for guest RAM of
# MEMS MiB (default "32 256": a restore reads and checksums all of it).
# Prints a table and RESULT snapshot_restore lines with medians.
set -eu
BUILD=${BUILD:-build}
RUNS=${RUNS:-20}
MEMS=${MEMS:-"32 256"}
ZHV=$BUILD/zhv
K=$BUILD/tests/vmm/kernels/snap_count.elf
for f in "$ZHV" "$K"; do
	[ -e "$f" ] || { echo "snapshot_restore.sh: $f missing: run make (BUILD=$BUILD)" >&2; exit 1; }
done
[ -c /dev/kvm ] || { echo "snapshot_restore.sh: no /dev/kvm" >&2; exit 1; }
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT


echo "| guest RAM | cold zhv run, first byte (median ms) | zhv run --restore, next byte (median ms) | restore / cold |"
echo "|---|---|---|---|"
for mib in $MEMS; do
	# The snapshot: a run paused and saved mid-count.
	"$ZHV" run --memory "${mib}M" --control "$D/sock" --cmdline "ticks=100000 delay=1000" "$K" \
		</dev/null >"$D/out" 2>"$D/err" &
	pid=$!
	i=0
	until grep -q "^tick 00" "$D/out" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 600 ] || { echo "snapshot_restore.sh: the guest did not start" >&2; cat "$D/err" >&2; exit 1; }
		sleep 0.05
	done
	"$ZHV" ctl "$D/sock" snapshot --paused "$D/snap$mib" >/dev/null
	"$ZHV" ctl "$D/sock" stop >/dev/null
	wait $pid || true
	python3 - "$RUNS" "$mib" \
		"$ZHV run --memory ${mib}M $K" \
		"$ZHV run --restore $D/snap$mib" <<'PY'
import os, signal, statistics, subprocess, sys, time
runs, mib, cold, restore = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
cold = cold[:-1] + ["--cmdline", "ticks=100000 delay=1000"] + cold[-1:]
def first_byte(cmd):
    t0 = time.monotonic_ns()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    b = p.stdout.read(1)
    t1 = time.monotonic_ns()
    p.send_signal(signal.SIGTERM)
    p.stdout.close()
    p.wait()
    if not b:
        raise SystemExit("snapshot_restore.sh: no byte from " + " ".join(cmd))
    time.sleep(0.02)
    return (t1 - t0) / 1e6
c, r = [], []
first_byte(cold); first_byte(restore)  # warm-up
for i in range(runs):
    for lst, cmd in ((c, cold), (r, restore)) if i % 2 == 0 else ((r, restore), (c, cold)):
        lst.append(first_byte(cmd))
mc, mr = statistics.median(c), statistics.median(r)
print(f"| {mib} MiB | {mc:.2f} | {mr:.2f} | {mr / mc:.2f} |")
print(f"RESULT snapshot_restore mem_mib={mib} runs={runs} cold_ms={mc:.2f} restore_ms={mr:.2f} "
      f"ratio={mr / mc:.2f}")
PY
done
