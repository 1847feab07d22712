# lib.sh: helpers of the install and packaging tests (tests/pkg/*.sh):
# TAP lines, the summary line .ci/run totals, and running a command where a
# real KVM is (here if /dev/kvm is usable, else inside tools/kvm-in-qemu.sh).

tap_n=0 tap_pass=0 tap_fail=0 tap_skip=0
failures=""

ok() { tap_n=$((tap_n + 1)) tap_pass=$((tap_pass + 1)); echo "ok $tap_n $1"; }
skip() { tap_n=$((tap_n + 1)) tap_skip=$((tap_skip + 1)); echo "ok $tap_n $1 # SKIP $2"; }
# not_ok NAME [DIAGNOSTIC...]
not_ok() {
	tap_n=$((tap_n + 1)) tap_fail=$((tap_fail + 1))
	echo "not ok $tap_n $1"
	failures+="# FAILED $1"$'\n'
	shift
	local line
	for line in "$@"; do
		printf '%s\n' "$line" | sed 's/^/# /'
	done
}
# check NAME CMD...: ok if CMD succeeds; else not ok with its output.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		ok "$name"
	else
		not_ok "$name" "failed: $*" "$(printf '%s\n' "$out" | head -c 3000)"
	fi
}
finish() {
	echo "1..$tap_n"
	printf '%s' "$failures"
	echo "$tap_pass passed, $tap_fail failed, $tap_skip skipped"
	[ "$tap_fail" -eq 0 ]
	exit
}

has_kvm() { [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; }

# on_kvm NAME CMD...: run CMD (a script printing TAP lines "ok - x" /
# "not ok - x") where a real KVM is, and count its lines as ours. Without
# /dev/kvm it runs inside tools/kvm-in-qemu.sh (whose guest shares this
# file system: paths must not be under /tmp, which is its own there);
# ZHV_KVM_IN_QEMU=0 turns that off, and then the KVM checks are skipped,
# or fail under ZHV_REQUIRE_KVM=1.
on_kvm() {
	local name=$1 out rc line
	shift
	if has_kvm; then
		out=$("$@" 2>&1)
		rc=$?
	elif [ "${ZHV_KVM_IN_QEMU:-1}" != 0 ] && command -v qemu-system-x86_64 >/dev/null; then
		echo "# $name: no /dev/kvm here; inside tools/kvm-in-qemu.sh"
		out=$(tools/kvm-in-qemu.sh --mem 2G --timeout "${ZHV_QEMU_TIMEOUT:-600}" -- "$@" 2>&1)
		rc=$?
	elif [ "${ZHV_REQUIRE_KVM:-0}" = 1 ]; then
		not_ok "$name" "no /dev/kvm and no QEMU for tools/kvm-in-qemu.sh (ZHV_REQUIRE_KVM=1)"
		return
	else
		skip "$name" "no /dev/kvm"
		return
	fi
	local n=0
	while IFS= read -r line; do
		case $line in
		"ok - "*) ok "$name: ${line#ok - }"; n=$((n + 1)) ;;
		"not ok - "*) not_ok "$name: ${line#not ok - }"; n=$((n + 1)) ;;
		*) printf '# %s\n' "$line" ;;
		esac
	done <<<"$out"
	if [ "$n" -eq 0 ] || [ "$rc" -ne 0 ]; then
		# The inner script exits non-zero when a check failed; with no
		# failed check that means it (or the machine) broke.
		[ "$rc" -ne 0 ] && ! grep -q '^not ok - ' <<<"$out" &&
			not_ok "$name: exit status $rc"
		[ "$n" -eq 0 ] && [ "$rc" -eq 0 ] && not_ok "$name: no result"
	fi
}
