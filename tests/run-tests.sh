#!/usr/bin/env bash
# run-tests.sh: run every test program under a timeout and total the TAP
# lines they print ("ok N name", "not ok N name", "ok N name # SKIP why").
# The last line is "N passed, N failed, N skipped".
set -u
BUILD=${BUILD:-build}
TIMEOUT=${ZHV_TEST_TIMEOUT:-600}
pass=0 fail=0 skip=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run() {
	local name=$1; shift
	echo "# ---- $name"
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
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
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
