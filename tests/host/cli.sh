#!/usr/bin/env bash
# cli.sh: zhv's command line, the part that needs no KVM: help and version,
# usage errors (status 2) and inputs that cannot be opened (status 4) with
# a clear message, never a crash or a hang: FIFOs where files belong, a
# missing file, a directory as a kernel. tests/run-tests.sh runs the
# scripts of tests/host/ on this machine even when the KVM tests run inside
# tools/kvm-in-qemu.sh. The rest of the command line's checks (they reach
# the loader or a running guest) are in tests/vmm/cli.sh.
. "$(dirname "$0")/../vmm/lib/common.sh"
need_binaries "$ZHV" "$KERNELS/hello.elf"

run_zhv --help
check "--help: status 0, usage on stdout" eval 'status_is 0 && out_has "Usage: zhv run [options] KERNEL"'
run_zhv run --help
check "run --help: lists every option" eval 'status_is 0 && out_has --cpus && out_has --memory &&
	out_has --cmdline && out_has --initrd && out_has --module && out_has --disk &&
	out_has --net && out_has --serial && out_has --debug-io && out_has --debug-exit &&
	out_has --format'
check "run --help: the exit status table" eval 'out_has "(V << 1) | 1" && out_has "  2 " &&
	out_has "  4 " && out_has "  6 " && out_has "  8 " && out_has "  10 " && out_has SIGTERM'
run_zhv --version
check "--version prints the library version" eval 'status_is 0 && grep -qE "^zhv [0-9]+\.[0-9]+\.[0-9]+$" "$T/out"'

# usage NAME MESSAGE ARGS...: a usage error: status 2, MESSAGE on stderr.
usage() {
	local name=$1 msg=$2
	shift 2
	run_zhv "$@"
	check "$name: status 2 with a message" eval 'status_is 2 && err_has "$msg" && out_empty'
}
k=$KERNELS/hello.elf
usage "no arguments" "Usage:"
usage "unknown command" "unknown command 'boot'" boot "$k"
usage "unknown option" "unrecognized option '--frobnicate'" run --frobnicate "$k"
usage "missing KERNEL" "missing KERNEL" run --cpus 2
usage "two kernels" "more than one KERNEL" run "$k" "$k"
usage "--cpus 0" "--cpus '0'" run --cpus 0 "$k"
usage "--cpus 256" "--cpus '256'" run --cpus 256 "$k"
usage "--cpus -1" "--cpus '-1'" run --cpus -1 "$k"
usage "--cpus two" "--cpus 'two'" run --cpus two "$k"
usage "--cpus without a value" "requires an argument" run "$k" --cpus
usage "--memory bogus" "--memory 'bogus'" run --memory bogus "$k"
usage "--memory 12X" "--memory '12X'" run --memory 12X "$k"
usage "--memory too small" "at least 2M" run --memory 1M "$k"
usage "--memory 0" "at least 2M" run --memory 0 "$k"
usage "--memory overflow" "--memory '99999999999G'" run --memory 99999999999G "$k"
usage "--memory beyond the host" "more than the host's RAM" run --memory 64T "$k"
usage "--serial bogus" "--serial 'tty'" run --serial tty "$k"
usage "--serial file: without a path" "--serial 'file:'" run --serial file: "$k"
usage "--net without tap=" "--net 'eth0'" run --net eth0 "$k"
usage "--disk with a bad flag" "unknown flag 'rx'" run --disk "$T/d.img,rx" "$k"
usage "--format bogus" "--format 'bzimage': expected auto, multiboot, linux, pvh, elf or flat" \
	run --format bzimage "$k"

# runtime NAME MESSAGE ARGS...: an input that cannot be opened or loaded:
# status 4, MESSAGE on stderr, no crash, within 10 s (no input may block).
runtime() {
	local name=$1 msg=$2
	shift 2
	ZHV_TIMEOUT=10 run_zhv "$@"
	check "$name: status 4 with a message" eval 'status_is 4 && err_has "$msg" && no_crash'
}
runtime "missing kernel file" "$T/nonexistent.elf: No such file" run "$T/nonexistent.elf"
runtime "kernel is a directory" "$T: not a regular file" run "$T"
runtime "--serial file: in a missing directory" "$T/no/such/dir" run --serial "file:$T/no/such/dir" "$k"

# FIFOs where a file belongs: refused at once, never waited on.
mkfifo "$T/fifo"
runtime "kernel is a FIFO" "$T/fifo: not a regular file" run "$T/fifo"
runtime "--serial file: a FIFO with no reader" "a FIFO with no reader" \
	run --serial "file:$T/fifo" "$k"
runtime "--serial file: a directory" "Is a directory" run --serial "file:$T" "$k"

finish
