/* crt0.S: test-kernel entry: multiboot v1 header, GDT, stack, IDT stubs for
 * all 256 vectors, then rt_start (rt.c). */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003
#define STACK_SIZE 0x4000

	.section .multiboot, "a"
	.balign 4
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

	.text
	.code32
	.globl _start
_start:
	cli
	cld
	lgdt rt_gdt_desc
	ljmp $0x08, $1f
1:	mov $0x10, %cx
	mov %cx, %ds
	mov %cx, %es
	mov %cx, %fs
	mov %cx, %gs
	mov %cx, %ss
	mov $rt_stack + STACK_SIZE, %esp
	push %ebx /* multiboot info */
	push %eax /* multiboot magic */
	call rt_start
2:	cli
	hlt
	jmp 2b

/* One stub per vector: push a 0 error code where the CPU pushes none
 * (SDM vol. 3, table 6-1), push the vector, go to the common path. */
	.balign 16
rt_isr_common:
	pusha
	push %esp
	call rt_isr_dispatch
	add $4, %esp
	popa
	add $8, %esp
	iret

	.set vec, 0
	.balign 16
	.globl rt_isr_stubs_start
rt_isr_stubs_start: /* stub of vector v at rt_isr_stubs_start + 16 * v */
	.rept 256
	.balign 16
	.if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	nop
	nop
	.else
	push $0
	.endif
	push $vec
	jmp rt_isr_common
	.set vec, vec + 1
	.endr

/* The GDT, also loaded by the APs (smp_tramp.S). */
	.data
	.balign 16
	.globl rt_gdt, rt_gdt_limit
rt_gdt:
	.quad 0
	.quad 0x00CF9A000000FFFF /* 0x08: 32-bit code */
	.quad 0x00CF92000000FFFF /* 0x10: data */
rt_gdt_end:
	.set rt_gdt_limit, rt_gdt_end - rt_gdt - 1
	.balign 4
	.word 0
rt_gdt_desc:
	.word rt_gdt_end - rt_gdt - 1
	.long rt_gdt

	.bss
	.balign 16
rt_stack:
	.skip STACK_SIZE
