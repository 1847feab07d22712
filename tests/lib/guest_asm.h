/* guest_asm.h: GNU as macros for the conformance suite's guest snippets.
 *
 * Include from a .S file only (after guest_abi.h). Comments here are C
 * comments because the file goes through the C preprocessor.
 *
 * A snippet is bracketed by FUNCTION name / END_FUNCTION name, which define
 * the global symbols <name>_start and <name>_end that the host driver
 * declares with ZT_GUEST_CODE(name) and copies to GUEST_ENTRY (0x2000).
 * Position-dependent references inside a snippet go through
 * ABS(start, label): the guest-physical address of (label) once the snippet
 * sits at GUEST_ENTRY. Labels must be unique in the file, so the macros
 * below name theirs after the snippet's start symbol.
 *
 * Guest code runs on kvm_pvm's instruction emulator at CPL0
 * (kvm-on-this-machine.md, section 2): keep it short and plain-integer, no
 * int n / int3 / SSE arithmetic / movq xmm<->gpr.
 */
#ifndef ZT_GUEST_ASM_H
#define ZT_GUEST_ASM_H

#ifndef __ASSEMBLER__
#error "guest_asm.h is for assembly sources"
#endif

#define ABS(start, x) ((x) - (start) + GUEST_ENTRY)

/* GDT descriptors of init_gdt, as quads (base 0, limit 0xFFFFF, G=1):
 * access byte in bits 47:40, flags (G, D/B, L) in bits 55:52. */
#define GDT_CODE32      0x00CF9A000000FFFF /* P DPL0 code, D=1 */
#define GDT_CODE64      0x00AF9A000000FFFF /* P DPL0 code, L=1 */
#define GDT_DATA        0x00CF92000000FFFF /* P DPL0 data, B=1 */
#define GDT_USER_CODE32 0x00CFFA000000FFFF /* P DPL3 code, D=1 */
#define GDT_USER_DATA   0x00CFF2000000FFFF /* P DPL3 data, B=1 */
#define GDT_USER_CODE64 0x00AFFA000000FFFF /* P DPL3 code, L=1 */
#define GDT_CODE16      0x008F9A000000FFFF /* P DPL0 code, D=0 L=0 */
/* 64-bit available TSS (type 9) at GUEST_TSS, limit 0x67: low quad. */
#define GDT_TSS_LO      (0x0000890000000067 | ((GUEST_TSS & 0xFFFFFF) << 16))

.macro FUNCTION name
	.global \name\()_start
	.global \name\()_end
	.p2align 4
\name\()_start:
.endm

.macro END_FUNCTION name
\name\()_end:
.endm

/* movq $0, (EXIT_TEST_ADDR): 12 bytes, the clean exit the harness expects. */
.macro exit_test
	movq $0, (EXIT_TEST_ADDR)
.endm

/* movq $0, (EXIT_TEST_FAILURE_ADDR): the guest reports a failed check. */
.macro exit_test_failure
	movq $0, (EXIT_TEST_FAILURE_ADDR)
.endm

/* A 64-bit interrupt gate (SDM 6.14.1) to (handler), CS = CODE_64_SELECTOR,
 * DPL0, no IST. The handler must lie below 64 KiB (offset 31:16 is 0). */
.macro idt_gate start, handler
	.2byte ABS(\start, \handler)
	.2byte CODE_64_SELECTOR
	.byte 0
	.byte 0x8E
	.2byte 0
	.4byte 0
	.4byte 0
.endm

/* (n) not-present IDT entries. */
.macro idt_holes n
	.fill (\n) * 2, 8, 0
.endm

/* init_gdt: load Zircon's GDT (0x08 code32, 0x10 code64, 0x18 data,
 * 0x20 user code32, 0x28 user data, 0x30 user code64, 0x38 user data for
 * sysexit, 0x40 code16; ours: 0x48 a 64-bit TSS at GUEST_TSS for
 * init_tss) and set RSP = GUEST_STACK_TOP. Segment registers
 * keep their cached descriptors until the code reloads them, as in Zircon.
 * Defines \start\()_gdtr, which other vCPUs of the snippet may lgdt. */
.macro init_gdt start
	lgdt ABS(\start, \start\()_gdtr)
	mov $GUEST_STACK_TOP, %rsp
	jmp \start\()_gdt_end
	.p2align 3
\start\()_gdt:
	.quad 0
	.quad GDT_CODE32
	.quad GDT_CODE64
	.quad GDT_DATA
	.quad GDT_USER_CODE32
	.quad GDT_USER_DATA
	.quad GDT_USER_CODE64
	.quad GDT_USER_DATA
	.quad GDT_CODE16
	.quad GDT_TSS_LO /* TSS_SELECTOR, used by init_tss */
	.quad 0
\start\()_gdtr:
	.2byte \start\()_gdtr - \start\()_gdt - 1
	.8byte ABS(\start, \start\()_gdt)
\start\()_gdt_end:
.endm

/* load_selectors: CS = CODE_64_SELECTOR (far return), DS, ES, SS =
 * DATA_SELECTOR. A vCPU starts with selector 0 in every segment register
 * (spec 2.2); handlers that return with iretq need this, since iretq pops
 * the interrupted CS and a null CS is #GP. Clobbers RAX. */
.macro load_selectors start
	pushq $CODE_64_SELECTOR
	pushq $ABS(\start, 1f)
	lretq
1:
	mov $DATA_SELECTOR, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
.endm

/* init_tss: load TR with a TSS whose RSP0 is GUEST_STACK_TOP, so that an
 * exception or interrupt taken at ring 3 reaches its ring-0 handler (with
 * the initial TR, RSP0 reads as 0 and the delivery triple-faults). Ours,
 * not Zircon's: it turns a wrong ring-3 outcome into a handler exit with
 * RAX = vector instead of a shutdown. Needs init_gdt. Clobbers EAX. */
.macro init_tss
	movq $GUEST_STACK_TOP, (GUEST_TSS + 4)
	mov $TSS_SELECTOR, %eax
	ltr %ax
.endm

/* sysret_to_ring3: STAR for Zircon's selectors (SYSRET: CS 0x33, SS
 * 0x2b; SYSCALL: CS 0x10, SS 0x18), then sysretq to (label) at CPL3 with
 * the current RFLAGS. Relies on EFER.SCE (set initially). Clobbers RAX,
 * RCX, RDX, R11. */
.macro sysret_to_ring3 start, label
	xor %eax, %eax
	mov $((USER_CODE_32_SELECTOR << 16) | CODE_64_SELECTOR), %edx
	mov $X86_MSR_IA32_STAR, %ecx
	wrmsr
	pushfq
	pop %r11
	mov $ABS(\start, \label), %rcx
	sysretq
.endm

/* One handler of init_interrupt_handling: RAX = vector, then a clean exit
 * (so the harness sees instruction_size 12 and the test checks RAX). Ours,
 * for diagnostics only: RBX = error code (0 if the vector has none), RCX =
 * the interrupted RIP, as Zircon's harness prints them. The exit store is
 * labelled \start\()_isr_\n\()_exit. */
.macro zircon_isr start, n
\start\()_isr_\n:
	mov $\n, %rax
.if (\n == 8) || ((\n >= 10) && (\n <= 14)) || (\n == 17)
	pop %rbx
.else
	xor %ebx, %ebx
.endif
	mov (%rsp), %rcx
\start\()_isr_\n\()_exit:
	exit_test
.endm

/* init_interrupt_handling: init_gdt plus an IDT for vectors 0..32 whose
 * handlers do "mov $vector, %rax; movq $0, (EXIT_TEST_ADDR)" (spec 6.1;
 * see zircon_isr for the two diagnostic registers we add). */
.macro init_interrupt_handling start
	init_gdt \start
	lidt ABS(\start, \start\()_idtr)
	jmp \start\()_idt_end
.irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, \
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32
	zircon_isr \start, \n
.endr
	.p2align 3
\start\()_idt:
.irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, \
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32
	idt_gate \start, \start\()_isr_\n
.endr
\start\()_idtr:
	.2byte \start\()_idtr - \start\()_idt - 1
	.8byte ABS(\start, \start\()_idt)
\start\()_idt_end:
.endm

/* wrmsr_imm msr, value: write a 32-bit immediate to an MSR (EDX = 0).
 * Clobbers EAX, ECX, EDX. */
.macro wrmsr_imm msr, value
	mov $\msr, %ecx
	mov $\value, %eax
	xor %edx, %edx
	wrmsr
.endm

/* x2apic_eoi: EOI through the x2APIC MSR. Clobbers EAX, ECX, EDX. */
.macro x2apic_eoi
	wrmsr_imm X2APIC_MSR_EOI, 0
.endm

#endif /* ZT_GUEST_ASM_H */
