#!/usr/bin/env bash
# console.sh: zhv on a terminal: raw mode, Ctrl-A x, Ctrl-A Ctrl-A, and the
# terminal settings restored on every way out (user quit, signals, guest
# exit). Runs zhv on a pseudo-terminal (tests/vmm/lib/pty_run.py).
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
need_binaries "$ZHV" "$K/echo.elf" "$K/debug_exit.elf"
PTY="python3 $(dirname "$0")/lib/pty_run.py"

if ! command -v python3 >/dev/null; then
	skip "console on a terminal" "no python3 for the pseudo-terminal helper"
	finish
fi
if ! kvm_or_skip "console on a terminal"; then
	finish
fi

# pty NAME ARGS...: run pty_run.py; output in $T/out, zhv's status in $status.
pty() {
	last_cmd="pty_run $*"
	$PTY --timeout "$ZHV_TIMEOUT" "$@" >"$T/out" 2>"$T/err"
	status=$(sed -n 's/^pty_run: status \([^ ]*\) .*/\1/p' "$T/out")
	: "${status:=none}"
}
termios_same() { out_has "termios same"; }
pty_status() { [ "$status" = "$1" ]; }

pty --wait "echo: ready" --send 'hi\x01x' -- "$ZHV" run --debug-exit "$K/echo.elf"
check "Ctrl-A x: status 0, 'terminated by user'" eval 'pty_status 0 && out_has "zhv: terminated by user"'
check "Ctrl-A x: terminal restored" termios_same

pty --wait "echo: ready" --send 'ab\x01\x01q' -- "$ZHV" run --debug-exit "$K/echo.elf"
check "raw mode: keys reach the guest unechoed, Ctrl-A Ctrl-A sends Ctrl-A" \
	eval 'pty_status 65 && grep -q "^ab$(printf "\001")\$" "$T/out"'
check "guest exit: terminal restored" termios_same

pty --wait "echo: ready" --send '\x03q' -- "$ZHV" run --debug-exit "$K/echo.elf"
check "Ctrl-C goes to the guest, not to zhv" eval 'pty_status 65 && out_has "echo: bye"'

pty --wait "echo: ready" --signal TERM -- "$ZHV" run --debug-exit "$K/echo.elf"
check "SIGTERM: killed by the signal (status -15), with a message" eval 'pty_status -15 && out_has "terminated by signal 15"'
check "SIGTERM: terminal restored" termios_same

pty --wait "echo: ready" --signal HUP -- "$ZHV" run --debug-exit "$K/echo.elf"
check "SIGHUP: terminal restored" eval 'pty_status -1 && termios_same'

pty --wait "echo: ready" --signal INT -- "$ZHV" run --debug-exit "$K/echo.elf"
check "SIGINT: terminal restored" eval 'pty_status -2 && termios_same'

pty -- "$ZHV" run --debug-exit "$K/debug_exit.elf"
check "debug-exit on a terminal: status 85, terminal restored" eval 'pty_status 85 && termios_same'

finish
