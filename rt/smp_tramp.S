/* smp_tramp.S: the application processors' way in. A SIPI with vector V
 * starts an AP in real mode at CS = V << 8, IP = 0 (SDM vol. 3, 9.4.4);
 * rt_smp_prepare copies rt_ap_trampoline to page V << 12. It loads the
 * BSP's GDT (crt0.S) and enters 32-bit protected
 * mode at rt_ap_entry32, which picks a stack by xAPIC ID and calls
 * rt_ap_main (smp.c). */

#define AP_STACK_SHIFT 10 /* 1 KiB per AP */
#define MAX_CPUS 256

	.globl rt_ap_trampoline, rt_ap_trampoline_end
	.text
	.code16
rt_ap_trampoline:
	cli
	cld
	lgdtl %cs:(rt_ap_gdt_desc - rt_ap_trampoline)
	mov %cr0, %eax
	or $1, %eax
	mov %eax, %cr0
	ljmpl $0x08, $rt_ap_entry32
	.balign 4
rt_ap_gdt_desc:
	.word rt_gdt_limit
	.long rt_gdt
rt_ap_trampoline_end:

	.code32
rt_ap_entry32:
	mov $0x10, %cx
	mov %cx, %ds
	mov %cx, %es
	mov %cx, %fs
	mov %cx, %gs
	mov %cx, %ss
	mov 0xFEE00020, %eax /* xAPIC ID, bits 31-24 */
	shr $24, %eax
	lea 1(%eax), %ecx
	shl $AP_STACK_SHIFT, %ecx
	add $rt_ap_stacks, %ecx
	mov %ecx, %esp
	push %eax
	call rt_ap_main
1:	cli
	hlt
	jmp 1b

	.bss
	.balign 16
rt_ap_stacks:
	.skip MAX_CPUS << AP_STACK_SHIFT
