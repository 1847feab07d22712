#!/bin/sh
# bench/run.sh: build the libzhv benchmarks and run them all, then print a
# markdown table (libzhv median, raw-KVM median, ratio, target).
#
# Each benchmark runs libzhv and a raw-KVM baseline interleaved in one
# process and prints its own details plus one `RESULT name key=value ...`
# line, which this script turns into the table. Takes well under a minute
# on the project machine (about 10 s when it is quiet).
#
# Environment: BUILD (build directory, default build), BENCH_NOPIN=1 (do
# not pin threads to CPUs), IO_ARGS / KICK_ARGS / CD_ARGS / SNAP_ARGS
# (arguments for io_roundtrip, kick_latency, create_destroy and
# snapshot_reset), BELL_ARGS (bell_roundtrip).
# Exit status: 0 when every benchmark ran (a missed target is reported, not
# an error: timings on a shared machine are noisy), 1 when one failed.
set -eu

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
IO_ARGS=${IO_ARGS:-30 2000}
BELL_ARGS=${BELL_ARGS:-20 2000}
KICK_ARGS=${KICK_ARGS:-400}
CD_ARGS=${CD_ARGS:-150}
SNAP_ARGS=${SNAP_ARGS:-300 2}

make -s BUILD="$BUILD" bench

log=$(mktemp)
out=$(mktemp)
trap 'rm -f "$log" "$out"' EXIT INT TERM

status=0
run() {
	name=$1
	shift
	echo "### $name $*"
	rc=0
	"$BUILD/bench/$name" "$@" >"$out" 2>&1 || rc=$?
	cat "$out"
	cat "$out" >>"$log"
	if [ "$rc" -ne 0 ]; then
		echo "run.sh: $name failed (exit status $rc)" >&2
		status=1
	fi
	echo
}

echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
# shellcheck disable=SC2086 # the *_ARGS are word lists on purpose
run io_roundtrip $IO_ARGS
# shellcheck disable=SC2086
run bell_roundtrip $BELL_ARGS
# shellcheck disable=SC2086
run kick_latency $KICK_ARGS
# shellcheck disable=SC2086
run create_destroy $CD_ARGS
# shellcheck disable=SC2086
run snapshot_reset $SNAP_ARGS

echo "| benchmark | libzhv median | raw KVM median | ratio | target |"
echo "|---|---|---|---|---|"
awk '
function us(ns) { return sprintf("%.1f µs", ns / 1000) }
function cell(pfx) {
	return sprintf("%s (p10 %s, p90 %s)", us(v[pfx "_ns"]), us(v[pfx "_p10"]),
	               us(v[pfx "_p90"]))
}
$1 == "RESULT" && $2 ~ /^snapshot_reset/ {
	snap = snap "\n" $0
	next
}
$1 == "RESULT" {
	delete v
	for (i = 3; i <= NF; i++) {
		split($i, kv, "=")
		v[kv[1]] = kv[2]
	}
	if ("target" in v)
		tgt = sprintf("≤ %s (%s)", v["target"], v["pass"] == 1 ? "met" : "MISSED")
	else
		tgt = "— (extra, no target)"
	printf "| %s | %s | %s | %s | %s |\n", $2, cell("zhv"), cell("raw"), v["ratio"], tgt
	if (v["pass"] == "0")
		missed = missed " " $2
}
END {
	print ""
	print (missed == "" ? "All targets met." : "Missed targets:" missed)
	if (snap != "")
		print "\nreset-to-snapshot (medians; rate over all CPUs):" snap
}' "$log"
exit $status
