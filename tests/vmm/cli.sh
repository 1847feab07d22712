#!/usr/bin/env bash
# cli.sh: zhv's command line: help and version, and bad input of every kind
# giving a clear message and exit status 2 (usage) or 1 (runtime), never a
# crash.
. "$(dirname "$0")/lib/common.sh"
need_binaries "$ZHV" "$KERNELS/hello.elf"

run_zhv --help
check "--help: status 0, usage on stdout" eval 'status_is 0 && out_has "Usage: zhv run [options] KERNEL"'
run_zhv run --help
check "run --help: lists every option" eval 'status_is 0 && out_has --cpus && out_has --memory &&
	out_has --cmdline && out_has --initrd && out_has --module && out_has --disk &&
	out_has --net && out_has --serial && out_has --debug-io'
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

# runtime NAME MESSAGE ARGS...: a runtime error: status 1, MESSAGE on
# stderr, no crash.
runtime() {
	local name=$1 msg=$2
	shift 2
	run_zhv "$@"
	check "$name: status 1 with a message" eval 'status_is 1 && err_has "$msg" && no_crash'
}
runtime "missing kernel file" "$T/nonexistent.elf: No such file" run "$T/nonexistent.elf"
runtime "kernel is a directory" "$T: not a regular file" run "$T"
runtime "--serial file: in a missing directory" "$T/no/such/dir" run --serial "file:$T/no/such/dir" "$k"

if kvm_or_skip "malformed kernels"; then
	# An ELF whose program headers lie beyond the end of the file.
	head -c 80 "$k" >"$T/truncated.elf"
	runtime "truncated ELF header" "truncated.elf" run "$T/truncated.elf"
	check "truncated ELF: rejected by the loader, not run" eval '! err_has "triple fault"'
	# The multiboot header intact, the segments cut off.
	head -c 4200 "$k" >"$T/cut.elf"
	runtime "ELF with its segment cut off" "cut.elf" run "$T/cut.elf"
	: >"$T/empty.elf"
	runtime "empty kernel file" "empty.elf" run "$T/empty.elf"
	runtime "missing disk image" "$T/nodisk.img" run --disk "$T/nodisk.img" "$k"
	runtime "missing initrd" "$T/noinitrd" run --initrd "$T/noinitrd" "$k"
	runtime "missing multiboot module" "$T/nomodule" run --module "$T/nomodule,args" "$k"
fi

finish
