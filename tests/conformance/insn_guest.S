/* insn_guest.S: guest code of insn_test.c (libzhv's fallback emulator on a
 * real vCPU). Each step stops with an OUT to TRAP_PORT right before the
 * instruction under test; the host then runs libzhv's emulator on it
 * (zhv__emulate_at_rip), so the guest never executes it itself, whatever
 * the host's KVM can do. 64-bit, CPL0.
 *
 * Record n (INSN_REC(n), 64 bytes in GUEST_MISC), written by the guest:
 *   +0 RAX, +8 RDX, +16 RFLAGS after the instruction (if it completed),
 *   +24 vector + 1 of the exception it raised (0: none), +32 its error
 *   code, +40 CR2, +48 the RIP the handler saw, +56 step-specific.
 * The guest's CPUID words the host needs go to GUEST_FLAGS (insn_test.c).
 */
#include "../lib/guest_abi.h"
#include "../lib/guest_asm.h"

.section .note.GNU-stack, "", @progbits
.section .rodata.zt_guest, "a", @progbits

#define INSN_REC(n)  (GUEST_MISC + (n) * 64)
#define INSN_DATA    0x6000      /* MOVBE / CLWB operand */
#define INSN_DESC    0x6100      /* INVPCID descriptor (zeros) */
#define INSN_VA      0x800000    /* remapped by the INVPCID step */
#define INSN_UNMAPPED 0x40000000 /* above the 1 GiB the PD maps */
#define CPUID_1_ECX  (GUEST_FLAGS + 0)
#define CPUID_7_EBX  (GUEST_FLAGS + 4)
#define CPUID_D1_EAX (GUEST_FLAGS + 8)
#define CPUID_X8_EBX (GUEST_FLAGS + 12)

/* One step: R14 = its record, R15 = where a handler resumes (past the
 * stores), then the stop and the instruction (labels insn_emu_i<n> at
 * it and insn_emu_a<n> after it). */
.macro try n, insn:vararg
	mov $INSN_REC(\n), %r14
	mov $ABS(insn_emu_start, insn_emu_c\n), %r15
	out %al, $TRAP_PORT
.global insn_emu_i\n
insn_emu_i\n:
	\insn
.global insn_emu_a\n
insn_emu_a\n:
	mov %rax, 0(%r14)
	mov %rdx, 8(%r14)
	pushfq
	popq 16(%r14)
insn_emu_c\n:
.endm

.macro cpuid_word leaf, sub, reg, dst
	mov $\leaf, %eax
	mov $\sub, %ecx
	cpuid
	mov \reg, (\dst)
.endm

FUNCTION insn_emu
	init_gdt insn_emu_start
	lidt ABS(insn_emu_start, insn_emu_idtr)
	load_selectors insn_emu_start
	cpuid_word 1, 0, %ecx, CPUID_1_ECX
	cpuid_word 7, 0, %ebx, CPUID_7_EBX
	cpuid_word 0xd, 1, %eax, CPUID_D1_EAX
	mov $0x80000000, %eax
	cpuid
	cmp $0x80000008, %eax
	jb 1f
	cpuid_word 0x80000008, 0, %ebx, CPUID_X8_EBX
1:
	/* With XSAVE: CR4.OSXSAVE (the host sets XCR0 before step 0). */
	btl $26, (CPUID_1_ECX)
	jnc 2f
	mov %cr4, %rax
	bts $18, %rax
	mov %rax, %cr4
2:
	xor %ecx, %ecx
	try 0, xgetbv
	mov $2, %ecx
	try 1, xgetbv
	mov $1, %ecx
	try 2, xgetbv

	movq $0x1122334455667788, %rax
	mov %rax, (INSN_DATA)
	mov $INSN_DATA, %rbx
	mov $-1, %rax
	try 3, movbe 0(%rbx), %rax
	mov $0xaabbccdd, %ecx
	try 4, movbe %ecx, 8(%rbx)
	mov $-1, %rdx
	try 5, movbe 0(%rbx), %dx
	mov $INSN_UNMAPPED, %rsi
	try 6, movbe (%rsi), %eax
	movabs $0x0000800000000000, %rsi
	try 7, movbe (%rsi), %eax
	try 8, clflushopt (%rbx)
	try 9, clwb 16(%rbx)
	mov $INSN_UNMAPPED, %rsi
	try 10, clwb (%rsi)
	xor %ecx, %ecx
	try 11, rdpru

	/* INVPCID type 2: VA INSN_VA is used (cached), then its PDE is
	 * pointed 2 MiB further without INVLPG; after INVPCID the load
	 * must see the new page (marker 0x2222, the old one is 0x1111). */
	movq $0x1111, (INSN_VA)
	movq $0x2222, (INSN_VA + 0x200000)
	mov (INSN_VA), %rax
	addq $0x200000, (GUEST_PD + (INSN_VA >> 21) * 8)
	mov $2, %eax
	mov $INSN_DESC, %rbx
	try 12, invpcid (%rbx), %rax
	mov (INSN_VA), %rax
	mov %rax, (INSN_REC(12) + 56)
	subq $0x200000, (GUEST_PD + (INSN_VA >> 21) * 8)
	invlpg (INSN_VA)
	mov $4, %eax
	try 13, invpcid (%rbx), %rax
	try 14, int3
	try 15, stac
	exit_test

/* Exception handlers: record vector + 1, error code, CR2 and the RIP of
 * the frame in (R14), resume at R15. */
insn_emu_isr3:
	pushq $0
	pushq $3
	jmp insn_emu_common
insn_emu_isr6:
	pushq $0
	pushq $6
	jmp insn_emu_common
insn_emu_isr13:
	pushq $13
	jmp insn_emu_common
insn_emu_isr14:
	pushq $14
insn_emu_common:
	push %rax
	mov 8(%rsp), %rax
	inc %rax
	mov %rax, 24(%r14)
	mov 16(%rsp), %rax
	mov %rax, 32(%r14)
	mov %cr2, %rax
	mov %rax, 40(%r14)
	mov 24(%rsp), %rax
	mov %rax, 48(%r14)
	pop %rax
	add $16, %rsp
	mov %r15, (%rsp)
	iretq

	.p2align 3
insn_emu_idt:
	idt_holes 3
	idt_gate insn_emu_start, insn_emu_isr3
	idt_holes 2
	idt_gate insn_emu_start, insn_emu_isr6
	idt_holes 6
	idt_gate insn_emu_start, insn_emu_isr13
	idt_gate insn_emu_start, insn_emu_isr14
insn_emu_idtr:
	.2byte insn_emu_idtr - insn_emu_idt - 1
	.8byte ABS(insn_emu_start, insn_emu_idt)
END_FUNCTION insn_emu
