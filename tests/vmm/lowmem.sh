#!/usr/bin/env bash
# lowmem.sh: multiboot kernels in low memory. zhv puts its GDT, boot stack
# and multiboot information where the image and its modules are not (never
# in page 0), and refuses (status 4) only when no RAM is left for them.
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS
need_binaries "$ZHV" "$K/lowmem.elf"
if ! kvm_or_skip "low-memory kernels"; then
	finish
fi

# A kernel linked at 0x8000 (where zhv's stack and information used to be)
# that copies a trampoline into page 0 and runs it in real mode. Real mode
# is emulated instruction by instruction here: the trampoline is short.
run_zhv run --debug-exit --memory 64M --cmdline "low=1" "$K/lowmem.elf"
check "linked at 0x8000: loaded, status 65" eval 'status_is 65 && out_has "PASS"'
echo "# the kernel linked at 0x8000 ran in ${elapsed}s"
check "the multiboot information lies outside the image" \
	eval 'out_has "image: 8000-" && out_has "cmdline: $K/lowmem.elf low=1"'
check "real mode: 16-bit code wrote to the UART" out_has "real mode: ok"
check "back in protected mode with the real-mode store seen" \
	out_has "back in protected mode, flag 1234"

# A raw multiboot image (a.out kludge) over all of low memory, 0x1000 up
# to the BIOS area (bss to 0x9FC00); its entry writes 0x2a to port 0xf4.
le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 24 & 255)))"; }
{
	le32 0x1BADB002; le32 0x00010000; le32 0xE4514FFE
	le32 0x1000; le32 0x1000; le32 0; le32 0x9FC00; le32 0x1020
	printf '\xb0\x2a\xe6\xf4\xfa\xf4'
} >"$T/cover.bin"
run_zhv run --debug-exit --memory 64M "$T/cover.bin"
check "image over all of low memory: boot data above 1 MiB, kernel runs (85)" status_is 85

# 2 MiB of RAM: the image takes low memory, a 1 MiB module all of the rest.
truncate -s 1M "$T/mod"
run_zhv run --debug-exit --memory 2M --module "$T/mod" "$T/cover.bin"
check "no room left: status 4 and a clear message" \
	eval 'status_is 4 && err_has "no room for the GDT"'

finish
