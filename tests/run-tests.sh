#!/usr/bin/env bash
# run-tests.sh: run every test program under a timeout and total the TAP
# lines they print ("ok N name", "not ok N name", "ok N name # SKIP why").
# The last line is "N passed, N failed, N skipped".
#
# Environment: BUILD (build directory, default build); ZHV_TEST_TIMEOUT
# (seconds per program, default 600); ZHV_TESTS_SKIP (names of programs
# not to run, e.g. "vmm/linux.sh unit/loader_test": each counts as one
# skip); ZHV_TESTS_ONLY and ZHV_TESTS_EXCLUDE (names: run only these, or
# all but these; neither counts anything: .ci/run splits a suite in two
# this way, each part run by one invocation).
#
# ThreadSanitizer builds leave out the programs whose checks are of the
# command line, the loaders and the boot formats, with no thread of their
# own to race (TSAN_NOT_RUN below): make test and make sanitize run them.
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
ONLY_LIST=" ${ZHV_TESTS_ONLY:-} "
EXCLUDE_LIST=" ${ZHV_TESTS_EXCLUDE:-} "
TSAN_NOT_RUN=" vmm/cli.sh vmm/testdev.sh vmm/insn.sh vmm/lowmem.sh vmm/multiboot.sh "
# The sanitizer zhv is built with, if any: asan, tsan or empty.
san=$(ldd "$BUILD/zhv" 2>/dev/null | grep -oE 'lib(a|t)san' | head -n 1)
san=${san#lib}
pass=0 fail=0 skip=0
failures="" # "program: not ok line" for the list printed before the summary
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
		failures+="# FAILED $name: $n process(es) with ThreadSanitizer reports"$'\n'
		fail=$((fail + 1))
	fi
}

run() {
	local name=$1; shift
	if [ -n "${ZHV_TESTS_ONLY:-}" ] && [[ "$ONLY_LIST" != *" $name "* ]]; then
		return
	fi
	if [[ "$EXCLUDE_LIST" == *" $name "* ]]; then
		echo "# ---- $name: not run here (ZHV_TESTS_EXCLUDE)"
		return
	fi
	if [ "$san" = tsan ] && [[ "$TSAN_NOT_RUN" == *" $name "* ]]; then
		echo "# ---- $name: not run under ThreadSanitizer (no threads of its own: make test and make sanitize run it)"
		return
	fi
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
		failures+="# FAILED $name: exited with status $rc"$'\n'
		f=1
	fi
	local line
	# (no process substitution: kvm-in-qemu's chroot has no /dev/fd)
	while IFS= read -r line; do
		[ -n "$line" ] && failures+="# FAILED $name: $line"$'\n'
	done <<<"$(grep -E '^not ok [0-9]+' "$log")"
	echo "# $name: $((SECONDS - t0)) s"
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	collect_reports "$name"
}

# The programs that need /dev/kvm (the conformance suite and zhv run end to
# end) run here, or, on a machine without /dev/kvm (e.g. one whose kernel is
# itself a guest and cannot nest KVM), all together inside
# tools/kvm-in-qemu.sh: a Debian kernel with a real KVM (kvm-amd) on QEMU's
# emulated AMD-V. Everything there runs slower, so a conformance test gets
# ZHV_CONF_TIMEOUT=300 s there unless set, and the soak (vmm/soak.sh) runs
# 1000 libzhv and 300 board cycles (300 and 100 under ASan, 100 and 30
# under TSan) unless ZHV_SOAK_LIB_CYCLES /
# ZHV_SOAK_BOARD_CYCLES say otherwise (its full 10^4 + 10^3 cycles take
# about 14 minutes there, at 71 and 123 ms per cycle). ZHV_KVM_IN_QEMU=0 turns this off
# (the programs then fail without KVM under ZHV_REQUIRE_KVM=1, or skip).
run_kvm_programs() {
	if [ -x "$BUILD/tests/conformance/conformance" ]; then
		run conformance "$BUILD/tests/conformance/conformance"
	fi
	for t in tests/vmm/*.sh; do
		[ -x "$t" ] || continue
		run "vmm/$(basename "$t")" env BUILD="$BUILD" "$t"
	done
}

# The inner run of kvm-in-qemu: only the KVM programs.
if [ "${ZHV_TESTS_KVM_ONLY:-0}" = 1 ]; then
	run_kvm_programs
	printf '%s' "$failures"
	echo "$pass passed, $fail failed, $skip skipped"
	[ "$fail" -eq 0 ]
	exit
fi

for t in "$BUILD"/tests/unit/*_test; do
	[ -x "$t" ] || continue
	CMOCKA_MESSAGE_OUTPUT=TAP run "unit/$(basename "$t")" "$t"
done
# tests/host/: zhv run's checks that need no KVM, always on this machine.
for t in tests/host/*.sh; do
	[ -x "$t" ] || continue
	run "host/$(basename "$t")" env BUILD="$BUILD" "$t"
done
if [ -e /dev/kvm ] || [ "${ZHV_KVM_IN_QEMU:-1}" = 0 ]; then
	run_kvm_programs
else
	echo "# ---- kvm-in-qemu: no /dev/kvm here; conformance and vmm tests on QEMU's emulated AMD-V"
	t0=$SECONDS
	# The guest machine has no network: fetch what vmm/linux.sh boots here.
	tests/vmm/linux/fetch.sh "${ZHV_CACHE:-${HOME:-/tmp}/.cache/zhv}/linux" >/dev/null 2>&1
	# Sanitizer builds: a tenth of the soak. Their RSS is not asserted;
	# fds, threads, LeakSanitizer and ThreadSanitizer are, and the cycles
	# are sequential, each the same: a leak shows after a few, a race in
	# the threads of one machine in any one of them.
	soak_lib=1000 soak_board=300
	if [ -n "$san" ]; then
		soak_lib=100 soak_board=30
	fi
	timeout --kill-after=10 "${ZHV_QEMU_TIMEOUT:-5400}" \
		tools/kvm-in-qemu.sh --mem 8G --timeout "${ZHV_QEMU_TIMEOUT:-5400}" -- \
		env ZHV_TESTS_KVM_ONLY=1 ZHV_CONF_TIMEOUT="${ZHV_CONF_TIMEOUT:-300}" BUILD="$BUILD" \
		ZHV_SOAK_LIB_CYCLES="${ZHV_SOAK_LIB_CYCLES:-$soak_lib}" \
		ZHV_SOAK_BOARD_CYCLES="${ZHV_SOAK_BOARD_CYCLES:-$soak_board}" \
		tests/run-tests.sh >"$log" 2>&1
	rc=$?
	cat "$log"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -z "$line" ]; then
		echo "not ok - kvm-in-qemu: no summary line (status $rc)"
		fail=$((fail + 1))
	else
		read -r p _ f _ s _ <<<"$(echo "$line" | tr -d ',')"
		pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + ${s:-0}))
		inner=$(grep -E '^# FAILED ' "$log" | sed 's/^# FAILED /# FAILED kvm-in-qemu: /')
		[ -n "$inner" ] && failures+="$inner"$'\n'
	fi
	echo "# kvm-in-qemu: $((SECONDS - t0)) s"
fi

# Every failure again, in one place, just above the summary line.
printf '%s' "$failures"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
