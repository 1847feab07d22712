#!/usr/bin/env bash
# run-tests.sh: run every test program under a timeout and total the TAP
# lines they print ("ok N name", "not ok N name", "ok N name # SKIP why").
# The last line is "N passed, N failed, N skipped".
#
# Environment: BUILD (build directory, default build); ZHV_TEST_TIMEOUT
# (seconds per program, default 600); ZHV_TESTS_SKIP (names of programs
# not to run, e.g. "vmm/linux.sh unit/loader_test": each counts as one
# skip).
#
# ThreadSanitizer builds (make tsan): TSAN_OPTIONS gets halt_on_error=1
# exitcode=66 second_deadlock_stack=1 (a report ends the process with
# status 66) and a log_path in a directory of ours, so that every report,
# whichever process made it (a forked conformance child, a zhv run whose
# stderr a script keeps to itself), is printed here and counts as a
# failure of the program that ran. tests/tsan.supp, if present, holds
# suppressions (only for races outside our code).
set -u
BUILD=${BUILD:-build}
TIMEOUT=${ZHV_TEST_TIMEOUT:-600}
SKIP_LIST=" ${ZHV_TESTS_SKIP:-} "
pass=0 fail=0 skip=0
log=$(mktemp)
san_dir=$(mktemp -d)
trap 'rm -rf "$log" "$san_dir"' EXIT

tsan_opts="halt_on_error=1 exitcode=66 second_deadlock_stack=1"
supp="$(cd "$(dirname "$0")" && pwd)/tsan.supp"
[ -f "$supp" ] && tsan_opts+=" suppressions=$supp"
export TSAN_OPTIONS="$tsan_opts ${TSAN_OPTIONS:-} log_path=$san_dir/tsan"

# Reports a sanitizer wrote to $san_dir while (name) ran: printed, and one
# failure for the program.
collect_reports() {
	local name=$1 f n=0
	for f in "$san_dir"/tsan.*; do
		[ -e "$f" ] || continue
		n=$((n + 1))
		echo "# ThreadSanitizer report ($(basename "$f")):"
		sed 's/^/# /' "$f"
		rm -f "$f"
	done
	if [ "$n" -gt 0 ]; then
		echo "not ok - $name: $n process(es) with ThreadSanitizer reports"
		fail=$((fail + 1))
	fi
}

run() {
	local name=$1; shift
	echo "# ---- $name"
	if [[ "$SKIP_LIST" == *" $name "* ]]; then
		echo "ok - $name # SKIP not run (ZHV_TESTS_SKIP)"
		skip=$((skip + 1))
		return
	fi
	local t0=$SECONDS
	timeout --kill-after=10 "$TIMEOUT" "$@" >"$log" 2>&1
	local rc=$?
	cat "$log"
	local p f s
	s=$(grep -cE '^ok [0-9]+.*# [Ss][Kk][Ii][Pp]' "$log")
	p=$(grep -E '^ok [0-9]+' "$log" | grep -cvE '# [Ss][Kk][Ii][Pp]')
	f=$(grep -cE '^not ok [0-9]+' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $name exited with status $rc"
		f=1
	fi
	echo "# $name: $((SECONDS - t0)) s"
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	collect_reports "$name"
}

for t in "$BUILD"/tests/unit/*_test; do
	[ -x "$t" ] || continue
	CMOCKA_MESSAGE_OUTPUT=TAP run "unit/$(basename "$t")" "$t"
done
if [ -x "$BUILD/tests/conformance/conformance" ]; then
	run conformance "$BUILD/tests/conformance/conformance"
fi
for t in tests/vmm/*.sh; do
	[ -x "$t" ] || continue
	run "vmm/$(basename "$t")" env BUILD="$BUILD" "$t"
done

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
