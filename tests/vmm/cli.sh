#!/usr/bin/env bash
# cli.sh: zhv's command line with inputs that reach the loader or a running
# guest: malformed kernels, FIFOs and directories as disks, initrds and
# modules, a disk image locked by another user, a file of no known kernel
# format: a clear message and exit status 4, never a crash or a hang. What
# needs no KVM (help, usage errors, files that cannot be opened) is in
# tests/host/cli.sh.
. "$(dirname "$0")/lib/common.sh"
need_binaries "$ZHV" "$KERNELS/hello.elf" "$KERNELS/echo.elf"

k=$KERNELS/hello.elf
mkfifo "$T/fifo"
# runtime NAME MESSAGE ARGS...: an input that cannot be opened or loaded:
# status 4, MESSAGE on stderr, no crash, within 10 s (no input may block).
runtime() {
	local name=$1 msg=$2
	shift 2
	ZHV_TIMEOUT=10 run_zhv "$@"
	check "$name: status 4 with a message" eval 'status_is 4 && err_has "$msg" && no_crash'
}
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

	# No file of unknown format runs (a flat binary only with --format flat).
	head -c 100 /dev/urandom >"$T/random.bin"
	printf '\x90' | dd of="$T/random.bin" bs=1 count=1 conv=notrunc 2>/dev/null
	runtime "100 random bytes: refused, the known formats named" \
		"not a kernel format zhv knows (multiboot v1, Linux bzImage, PVH or x86-64 ELF64" \
		run --debug-exit "$T/random.bin"
	runtime "--format linux on a multiboot ELF" "not a Linux bzImage" \
		run --debug-exit --format linux "$k"
	runtime "--format pvh on a multiboot ELF" "not a PVH kernel" \
		run --debug-exit --format pvh "$k"
	run_zhv run --debug-exit --format multiboot "$k"
	check "--format multiboot on a multiboot ELF: boots (status 1)" status_is 1

	# FIFOs, a directory as a disk: refused, never waited on.
	runtime "--initrd a FIFO" "$T/fifo: not a regular file (a FIFO)" \
		run --debug-exit --initrd "$T/fifo" "$k"
	runtime "--module a FIFO" "$T/fifo: not a regular file (a FIFO)" \
		run --debug-exit --module "$T/fifo,args" "$k"
	runtime "--disk a FIFO,ro" "disk $T/fifo: not a disk image (a FIFO" \
		run --debug-exit --disk "$T/fifo,ro" "$k"
	runtime "--disk a FIFO" "disk $T/fifo: not a disk image (a FIFO" \
		run --debug-exit --disk "$T/fifo" "$k"
	runtime "--disk a directory,ro" "disk $T: not a disk image (a directory" \
		run --debug-exit --disk "$T,ro" "$k"
	runtime "--disk a character device,ro" "disk /dev/null: not a disk image (a character device" \
		run --debug-exit --disk "/dev/null,ro" "$k"
	# A FIFO with a reader: --serial writes into it.
	# (The reader holds the FIFO open for writing too, so it is there
	# before zhv opens it and never sees an end of file.)
	exec 8<>"$T/fifo"
	cat <&8 >"$T/fifo.out" &
	reader=$!
	exec 8>&-
	run_zhv run --debug-exit --serial "file:$T/fifo" "$k"
	for ((i = 0; i < 50; i++)); do
		grep -q "hello" "$T/fifo.out" && break
		sleep 0.1
	done
	kill $reader
	wait $reader 2>/dev/null
	check "--serial file: a FIFO with a reader gets the output" \
		eval 'status_is 1 && grep -q "hello" "$T/fifo.out"'

	# Image locks (as QEMU's): one writer alone, readers together.
	truncate -s 1M "$T/lock.img"
	runtime "--disk X --disk X: the image is in use" "the image is in use" \
		run --debug-exit --disk "$T/lock.img" --disk "$T/lock.img" "$k"
	runtime "--disk X,ro --disk X: the image is in use" "the image is in use" \
		run --debug-exit --disk "$T/lock.img,ro" --disk "$T/lock.img" "$k"
	run_zhv run --debug-exit --disk "$T/lock.img,ro" --disk "$T/lock.img,ro" "$k"
	check "--disk X,ro --disk X,ro: shared (status 1)" status_is 1
	# hold MODE: a zhv in the background with lock.img (MODE "" or ",ro")
	# that stays up (echo.elf waits for input) until killed.
	hold() {
		mkfifo "$T/hold.in"
		"$ZHV" run --debug-exit --disk "$T/lock.img$1" "$KERNELS/echo.elf" <"$T/hold.in" \
			>"$T/hold.out" 2>&1 &
		holder=$!
		exec 9>"$T/hold.in" # stdin stays open: no end of input for the guest
		local i
		for ((i = 0; i < 600; i++)); do
			grep -q "echo: ready" "$T/hold.out" 2>/dev/null && return 0
			kill -0 $holder 2>/dev/null || break
			sleep 0.1
		done
		return 1
	}
	unhold() {
		kill -TERM $holder 2>/dev/null
		wait $holder 2>/dev/null
		exec 9>&-
		rm -f "$T/hold.in"
	}
	if hold ""; then
		runtime "image held read-write by another zhv: a writer is refused" \
			"the image is in use" run --debug-exit --disk "$T/lock.img" "$k"
		runtime "image held read-write by another zhv: a reader is refused" \
			"the image is in use" run --debug-exit --disk "$T/lock.img,ro" "$k"
	else
		not_ok "a zhv holding lock.img read-write starts" "$(cat "$T/hold.out")"
	fi
	unhold
	if hold ",ro"; then
		run_zhv run --debug-exit --disk "$T/lock.img,ro" "$k"
		check "image held read-only by another zhv: another reader shares it" status_is 1
		runtime "image held read-only by another zhv: a writer is refused" \
			"the image is in use" run --debug-exit --disk "$T/lock.img" "$k"
	else
		not_ok "a zhv holding lock.img read-only starts" "$(cat "$T/hold.out")"
	fi
	unhold
	run_zhv run --debug-exit --disk "$T/lock.img" "$k"
	check "the lock goes with its zhv: a writer again (status 1)" status_is 1
fi

finish
