#!/usr/bin/env bash
# soak.sh: guest create/run/destroy cycles in one process, with no growth
# in fds, threads or RSS after a warm-up (tests/soak/): 10^4 cycles through
# libzhv (soak_lib) and 10^3 through the VMM's board code (soak_board,
# with board_destroy). The programs print their measurements as "# " lines.
#
# Environment: ZHV_SOAK_LIB_CYCLES (default 10000), ZHV_SOAK_BOARD_CYCLES
# (default 1000), ZHV_SOAK_WARMUP (default 100), ZHV_SOAK_TIMEOUT (seconds
# per program, default 1200).
. "$(dirname "$0")/lib/common.sh"
SOAK_LIB=$BUILD/tests/soak/soak_lib
SOAK_BOARD=$BUILD/tests/soak/soak_board
need_binaries "$SOAK_LIB" "$SOAK_BOARD" "$KERNELS/soak.elf"

if ! kvm_or_skip "soak"; then
	finish
fi

# soak NAME PROGRAM [ARGS...]: one TAP line for the program; its "# "
# lines pass through, and anything else it says becomes a diagnostic.
soak() {
	local name=$1 rc
	shift
	timeout -k 5 "${ZHV_SOAK_TIMEOUT:-1200}" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	grep '^# ' "$T/out"
	if [ "$rc" -eq 0 ]; then
		ok "$name"
	else
		not_ok "$name" "exit status $rc" "$(grep -v '^# ' "$T/out")" "$(head -c 4000 "$T/err")"
	fi
}

soak "libzhv: ${ZHV_SOAK_LIB_CYCLES:-10000} guest create/run/destroy cycles, no growth in fds, threads, RSS" \
	"$SOAK_LIB"

disk=$T/disk.img
printf 'soak disk\n' >"$disk"
truncate -s 1M "$disk"
soak "board: ${ZHV_SOAK_BOARD_CYCLES:-1000} board create/run/destroy cycles, no growth in fds, threads, RSS" \
	"$SOAK_BOARD" "$KERNELS/soak.elf" "$disk"
finish
