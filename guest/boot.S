/* boot.S: multiboot v1 header and entry (32-bit protected mode, paging off),
 * the GDT, and the real-mode AP trampoline copied below 1 MiB. */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, give memory info */

#define CODE_SEL 0x08
#define DATA_SEL 0x10
#define AP_STACK_SHIFT 11 /* 2 KiB per AP */
#define MAX_CPUS 256
#define BSP_STACK_SIZE 0x4000

	.section .multiboot, "a"
	.balign 4
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

	.text
	.code32
	.globl _start
_start:
	/* eax = multiboot magic, ebx = multiboot info; keep both. */
	cli
	cld
	lgdt gdt_desc
	ljmp $CODE_SEL, $1f
1:	mov $DATA_SEL, %cx
	mov %cx, %ds
	mov %cx, %es
	mov %cx, %fs
	mov %cx, %gs
	mov %cx, %ss
	mov $bsp_stack + BSP_STACK_SIZE, %esp
	push %ebx
	push %eax
	call guest_main
2:	cli
	hlt
	jmp 2b

/* The AP trampoline. A SIPI with vector V starts an AP in real mode at
 * CS = V << 8, IP = 0 (SDM vol. 3, 9.4.4.1), so this code is copied to page
 * V << 12 and addresses its data relative to CS. It loads the GDT and
 * enters 32-bit protected mode at ap_entry32 (an absolute address). */
	.globl ap_trampoline, ap_trampoline_end
	.code16
ap_trampoline:
	cli
	cld
	lgdtl %cs:(tramp_gdt_desc - ap_trampoline)
	mov %cr0, %eax
	or $1, %eax
	mov %eax, %cr0
	ljmpl $CODE_SEL, $ap_entry32
	.balign 4
tramp_gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt
ap_trampoline_end:

	.code32
ap_entry32:
	mov $DATA_SEL, %cx
	mov %cx, %ds
	mov %cx, %es
	mov %cx, %fs
	mov %cx, %gs
	mov %cx, %ss
	/* The xAPIC ID register (0xFEE00020, bits 31:24) picks the stack. */
	mov 0xFEE00020, %eax
	shr $24, %eax
	lea 1(%eax), %ecx
	shl $AP_STACK_SHIFT, %ecx
	add $ap_stacks, %ecx
	mov %ecx, %esp
	push %eax
	call ap_main
3:	cli
	hlt
	jmp 3b

	.data
	.balign 16
gdt:
	.quad 0                  /* null */
	.quad 0x00CF9A000000FFFF /* 0x08: 32-bit code, flat 4 GiB */
	.quad 0x00CF92000000FFFF /* 0x10: data, flat 4 GiB */
gdt_end:
	.balign 4
	.word 0
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt

	.bss
	.balign 16
bsp_stack:
	.skip BSP_STACK_SIZE
ap_stacks:
	.skip MAX_CPUS << AP_STACK_SHIFT
