/* tiny.S: the tiny guest of bench/vmm_startup.sh. One ELF32 image that
 * zhv run, QEMU -M microvm and bench/raw_first_byte all boot the same way:
 * multiboot v1 (32-bit protected mode, paging off, flat segments). It
 * writes one byte ('Z') to COM1 and then exits through the debug-exit
 * port 0xf4 with value 0x10 (exit status (0x10 << 1) | 1 = 33 for zhv and
 * for QEMU's isa-debug-exit; raw_first_byte exits 33 too).
 *
 * Six instructions (then cli; hlt), all plain integer code: each is
 * emulated on this machine's KVM (guest CPL0, about 1 us each), so the
 * guest itself costs nothing measurable next to the VMMs' start-up.
 * No stack, no GDT of its own: nothing here depends on the segment
 * selectors the loader chose. */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000000 /* ELF image: no memory info or a.out kludge needed */

#define COM1       0x3f8
#define DEBUG_EXIT 0xf4
#define EXIT_VALUE 0x10

	.section .multiboot, "a"
	.balign 4
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

	.text
	.code32
	.globl _start
_start:
	mov $COM1, %dx
	mov $'Z', %al
	out %al, %dx
	mov $DEBUG_EXIT, %dx
	mov $EXIT_VALUE, %al
	out %al, %dx
1:	cli
	hlt
	jmp 1b
