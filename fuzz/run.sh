#!/usr/bin/env bash
# fuzz/run.sh: run the libFuzzer targets, one after the other, each for
# SECONDS seconds from its seeds (fuzz/corpus/<target>/) and what earlier
# runs found (BUILD/fuzz-corpus/<target>/).
#   usage: fuzz/run.sh [BUILD [SECONDS [TARGET...]]]
# BUILD defaults to build-fuzz (make fuzz-build), SECONDS to 60; SECONDS 0
# only runs the corpus once. Prints a TAP line per target ("ok N target:
# X execs, 0 crashes") with libFuzzer's coverage (cov: edges, ft:
# features) as a diagnostic, and "P passed, F failed" last. A crash, a
# leak, a UBSan report, a timeout (10 s for one input) or running out of
# memory (2 GiB) fails the target; the input is kept in BUILD/crashes/
# and named in the output. Exit status 0 when every target passed.
# FUZZ_MAX_EXECS=N in the environment also ends each target after N
# executions (for long runs: a fast target stops early).
set -u
cd "$(dirname "$0")/.."

BUILD=${1:-build-fuzz}
SECS=${2:-60}
shift $(($# > 2 ? 2 : $#))
if [ $# -gt 0 ]; then
	targets=("$@")
else
	targets=()
	for src in fuzz/*.c; do
		targets+=("$(basename "$src" .c)")
	done
fi

# A smaller quarantine than ASan's 256 MiB: the targets free a few KiB per
# input, and recycled memory spares a page fault per allocation (3 times
# the executions of a virtio target).
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=16}

crashes=$BUILD/crashes
logs=$BUILD/fuzz-logs
mkdir -p "$crashes" "$logs"
n=0 passed=0 failed=0 total_execs=0
echo "1..${#targets[@]}"
for t in "${targets[@]}"; do
	n=$((n + 1))
	bin=$BUILD/fuzz/$t
	log=$logs/$t.log
	if [ ! -x "$bin" ]; then
		echo "not ok $n $t: no $bin (make fuzz-build)"
		failed=$((failed + 1))
		continue
	fi
	work=$BUILD/fuzz-corpus/$t
	seeds=fuzz/corpus/$t
	mkdir -p "$work" "$seeds"
	if [ "$SECS" -gt 0 ]; then
		run=(-max_total_time="$SECS")
		[ -n "${FUZZ_MAX_EXECS:-}" ] && run+=(-runs="$FUZZ_MAX_EXECS")
	else
		run=(-runs=0)
	fi
	before=$(ls "$crashes" | grep -c "^$t-")
	t0=$SECONDS
	# The outer timeout only guards against a hung fuzzer process.
	timeout --kill-after=10 $((SECS + 120)) "$bin" "${run[@]}" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/$t-" \
		"$work" "$seeds" >"$log" 2>&1
	rc=$?
	secs=$((SECONDS - t0))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	execs=${execs:-0}
	total_execs=$((total_execs + execs))
	covline=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -n 1)
	cov=$(echo "$covline" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$covline" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	found=$(ls "$crashes" | grep "^$t-" | tail -n +$((before + 1)))
	ncrash=$(echo -n "$found" | grep -c .)
	if [ "$rc" -eq 0 ] && [ "$ncrash" -eq 0 ]; then
		echo "ok $n $t: $execs execs, 0 crashes"
		echo "# $t: ${secs} s, cov ${cov:-?}, ft ${ft:-?}"
		passed=$((passed + 1))
	else
		[ "$ncrash" -eq 0 ] && ncrash=1 # failed without an artifact (e.g. killed)
		echo "not ok $n $t: $execs execs, $ncrash crashes (exit status $rc)"
		for f in $found; do
			echo "# input: $crashes/$f (replay: $bin $crashes/$f)"
		done
		grep -E -m 1 -A 25 'ERROR: |runtime error|invariant failed|ALARM|out-of-memory' \
			"$log" | sed 's/^/# /'
		echo "# log: $log"
		failed=$((failed + 1))
	fi
done
echo "# $total_execs executions in all"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
