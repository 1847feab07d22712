# common.sh: helpers for the end-to-end VMM tests (sourced by tests/vmm/*.sh):
# TAP output, the /dev/kvm rule, and running zhv under a timeout.
#
# Every test script: `. "$(dirname "$0")/lib/common.sh"`, then calls
# ok/not_ok/skip (or check), and ends with `finish`.

BUILD=${BUILD:-build}
ZHV=$BUILD/zhv
GUEST=$BUILD/guest/guest.elf
KERNELS=$BUILD/tests/vmm/kernels
ZHV_TIMEOUT=${ZHV_TIMEOUT:-60}

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
tap_n=0
tap_failed=0

ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n $1"; }
skip() { tap_n=$((tap_n + 1)); echo "ok $tap_n $1 # SKIP $2"; }
# not_ok NAME [DIAGNOSTIC...]: a failure, with "# " lines after it.
not_ok() {
	tap_n=$((tap_n + 1))
	tap_failed=1
	echo "not ok $tap_n $1"
	shift
	local line
	for line in "$@"; do
		printf '%s\n' "$line" | sed 's/^/# /'
	done
}
finish() {
	echo "1..$tap_n"
	exit $tap_failed
}

# The last run's output, for diagnostics.
last_run() {
	echo "command: $last_cmd"
	echo "exit status: $status"
	echo "--- stdout"
	head -c 3000 "$T/out"
	echo "--- stderr"
	head -c 3000 "$T/err"
}

# check NAME CONDITION...: ok if the command CONDITION succeeds, else
# not ok with the last zhv run's output.
check() {
	local name=$1
	shift
	if "$@"; then
		ok "$name"
	else
		not_ok "$name" "failed: $*" "$(last_run)"
	fi
}

# has_kvm: /dev/kvm is there and usable by us.
has_kvm() { [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; }

# kvm_or_skip NAME: true if KVM tests can run; otherwise reports NAME as
# skipped (or failed under ZHV_REQUIRE_KVM=1) and returns false.
kvm_or_skip() {
	if has_kvm; then
		return 0
	fi
	if [ "${ZHV_REQUIRE_KVM:-0}" = 1 ]; then
		not_ok "$1" "no /dev/kvm, and ZHV_REQUIRE_KVM=1"
	else
		skip "$1" "no /dev/kvm"
	fi
	return 1
}

# need_binaries FILE...: stop with one failure if the build is missing.
need_binaries() {
	local f
	for f in "$@"; do
		if [ ! -e "$f" ]; then
			not_ok "built: $f" "run make first (BUILD=$BUILD)"
			finish
		fi
	done
}

# run_zhv ARGS...: run zhv with stdin from /dev/null under a timeout;
# sets $status, $elapsed (seconds) and leaves stdout/stderr in $T/out,
# $T/err.
run_zhv() {
	last_cmd="zhv $*"
	local t0 t1
	t0=$(date +%s.%N)
	timeout -k 5 "$ZHV_TIMEOUT" "$ZHV" "$@" </dev/null >"$T/out" 2>"$T/err"
	status=$?
	t1=$(date +%s.%N)
	elapsed=$(echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}')
}

# Predicates on the last run.
status_is() { [ "$status" -eq "$1" ]; }
out_has() { grep -qF -- "$1" "$T/out"; }
out_lacks() { ! grep -qF -- "$1" "$T/out"; }
err_has() { grep -qF -- "$1" "$T/err"; }
out_empty() { [ ! -s "$T/out" ]; }
no_crash() { [ "$status" -lt 128 ] && ! grep -qiE 'AddressSanitizer|runtime error|Segmentation' "$T/err"; }
