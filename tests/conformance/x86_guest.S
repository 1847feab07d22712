/* x86_guest.S: guest code of Zircon's x86-64 tests (spec 6.3, tests 14-34).
 * The drivers are in x86_test.c, in the same order; each snippet names the
 * tests that run it. Labels the drivers check (exit points, instructions
 * whose address matters) are exported with .global. */
#include "../lib/guest_abi.h"
#include "../lib/guest_asm.h"

.section .note.GNU-stack, "", @progbits
.section .rodata.zt_guest, "a", @progbits

/* 14 vcpu_read_write_state: add 1..16 to the registers the host wrote, set
 * CF and AC, exit. */
FUNCTION vcpu_read_write_state
	add $1, %rax
	add $2, %rcx
	add $3, %rdx
	add $4, %rbx
	add $5, %rsp
	add $6, %rbp
	add $7, %rsi
	add $8, %rdi
	add $9, %r8
	add $10, %r9
	add $11, %r10
	add $12, %r11
	add $13, %r12
	add $14, %r13
	add $15, %r14
	add $16, %r15
	stc
	stac
	exit_test
END_FUNCTION vcpu_read_write_state

/* 15-19 vcpu_interrupt, _priority, vcpu_nmi, _priority, vcpu_exception:
 * GDT and IDT, interrupts on, exit; the next enter spins until the
 * injected event's handler exits with RAX = vector. */
FUNCTION vcpu_interrupt
	init_interrupt_handling vcpu_interrupt_start
	sti
.global vcpu_interrupt_exit
vcpu_interrupt_exit:
	exit_test
	jmp .
END_FUNCTION vcpu_interrupt
.global vcpu_interrupt_start_isr_2_exit
.global vcpu_interrupt_start_isr_16_exit
.global vcpu_interrupt_start_isr_32_exit

/* 20 vcpu_ipi. BSP: ten x2APIC ICR writes in Zircon's order. After each,
 * it waits (bounded) until its own counters reach what the host wrote to
 * GUEST_MISC (a self-IPI is delivered asynchronously), then does
 * "out %al, $TRAP_PORT" so that the host can check who got the IPI.
 * APs (vcpu_ipi_ap, started in 64-bit mode by the host): load the tables,
 * flag readiness in GUEST_FLAGS[apic_id], then "sti; hlt" forever.
 * Handlers count per APIC ID: vector 0x66 in GUEST_COUNT_A (and EOI),
 * NMIs in GUEST_COUNT_B. */
#define IPI_EXPECT_SELF (GUEST_MISC + 0)
#define NMI_EXPECT_SELF (GUEST_MISC + 8)

.macro ipi_send dest, low
	mov $\dest, %edx
	mov $\low, %eax
	call vcpu_ipi_send
.endm

FUNCTION vcpu_ipi
	init_gdt vcpu_ipi_start
	lidt ABS(vcpu_ipi_start, vcpu_ipi_idtr)
	load_selectors vcpu_ipi_start
	sti
	ipi_send 0, ICR_LOW(ICR_SHORTHAND_ALL_INC, ICR_DELIVERY_FIXED, IPI_VECTOR)
	ipi_send 0, ICR_LOW(ICR_SHORTHAND_SELF, ICR_DELIVERY_FIXED, IPI_VECTOR)
	ipi_send 0, ICR_LOW(ICR_SHORTHAND_ALL_EXC, ICR_DELIVERY_FIXED, IPI_VECTOR)
	ipi_send 2, ICR_LOW(ICR_SHORTHAND_NONE, ICR_DELIVERY_FIXED, IPI_VECTOR)
	ipi_send 0xFFFFFFFF, ICR_LOW(ICR_SHORTHAND_NONE, ICR_DELIVERY_FIXED, IPI_VECTOR)
	ipi_send 64, ICR_LOW(ICR_SHORTHAND_NONE, ICR_DELIVERY_FIXED, IPI_VECTOR)
	ipi_send 0, ICR_LOW(ICR_SHORTHAND_ALL_INC, ICR_DELIVERY_NMI, 0)
	ipi_send 0, ICR_LOW(ICR_SHORTHAND_SELF, ICR_DELIVERY_NMI, 0)
	ipi_send 0, ICR_LOW(ICR_SHORTHAND_ALL_EXC, ICR_DELIVERY_NMI, 0)
	ipi_send 2, ICR_LOW(ICR_SHORTHAND_NONE, ICR_DELIVERY_NMI, 0)
	exit_test

/* EDX:EAX = ICR value. */
vcpu_ipi_send:
	mov $X2APIC_MSR_ICR, %ecx
	wrmsr
	mov $30000, %ecx
1:
	mov (IPI_EXPECT_SELF), %eax
	cmp %eax, (GUEST_COUNT_A)
	jne 2f
	mov (NMI_EXPECT_SELF), %eax
	cmp %eax, (GUEST_COUNT_B)
	je 3f
2:
	pause
	dec %ecx
	jnz 1b
3:
	out %al, $TRAP_PORT
	ret

.global vcpu_ipi_ap
vcpu_ipi_ap:
	lgdt ABS(vcpu_ipi_start, vcpu_ipi_start_gdtr)
	lidt ABS(vcpu_ipi_start, vcpu_ipi_idtr)
	load_selectors vcpu_ipi_start
	mov $X2APIC_MSR_ID, %ecx
	rdmsr
	movl $1, GUEST_FLAGS(, %rax, 4)
	sti
1:
	hlt
	jmp 1b

vcpu_ipi_isr:
	push %rax
	push %rcx
	push %rdx
	mov $X2APIC_MSR_ID, %ecx
	rdmsr
	lock incl GUEST_COUNT_A(, %rax, 4)
	x2apic_eoi
	pop %rdx
	pop %rcx
	pop %rax
	iretq

vcpu_ipi_nmi:
	push %rax
	push %rcx
	push %rdx
	mov $X2APIC_MSR_ID, %ecx
	rdmsr
	lock incl GUEST_COUNT_B(, %rax, 4)
	pop %rdx
	pop %rcx
	pop %rax
	iretq

	.p2align 3
vcpu_ipi_idt:
	idt_holes NMI_VECTOR
	idt_gate vcpu_ipi_start, vcpu_ipi_nmi
	idt_holes (IPI_VECTOR-NMI_VECTOR-1)
	idt_gate vcpu_ipi_start, vcpu_ipi_isr
vcpu_ipi_idtr:
	.2byte vcpu_ipi_idtr - vcpu_ipi_idt - 1
	.8byte ABS(vcpu_ipi_start, vcpu_ipi_idt)
END_FUNCTION vcpu_ipi

/* 21 vcpu_hlt: interrupts on, halt; the host's interrupt wakes the vCPU
 * and handler 32 exits. Waking without an interrupt reports a failure. */
FUNCTION vcpu_hlt
	init_interrupt_handling vcpu_hlt_start
	sti
	hlt
	exit_test_failure
END_FUNCTION vcpu_hlt
.global vcpu_hlt_start_isr_32_exit

/* 22 vcpu_pause. */
FUNCTION vcpu_pause
	pause
	exit_test
END_FUNCTION vcpu_pause

/* 23 vcpu_write_cr0: RBX = CR0 as found; clear CD and NW, set NE, write;
 * RAX = CR0 as read back. */
FUNCTION vcpu_write_cr0
	mov %cr0, %rax
	mov %rax, %rbx
	and $~(X86_CR0_CD | X86_CR0_NW), %rax
	or $X86_CR0_NE, %rax
	mov %rax, %cr0
	mov %cr0, %rax
	exit_test
END_FUNCTION vcpu_write_cr0

/* 24 vcpu_write_invalid_cr0: CD = 0 with NW = 1 is invalid: #GP, handler 13
 * exits with RAX = 13. Reaching the next instruction is a failure. */
FUNCTION vcpu_write_invalid_cr0
	init_interrupt_handling vcpu_write_invalid_cr0_start
	mov %cr0, %rax
	and $~X86_CR0_CD, %rax
	or $X86_CR0_NW, %rax
	mov %rax, %cr0
	exit_test_failure
END_FUNCTION vcpu_write_invalid_cr0
.global vcpu_write_invalid_cr0_start_isr_13_exit

/* 25 vcpu_compat_mode: far-return into a 32-bit code segment (0x41 is
 * "inc %ecx" there, a REX prefix in 64-bit mode: EBX = 1 only if the CPU
 * really ran 32-bit code), back to 64-bit, into a 16-bit code segment
 * ("push" moves SP by 2 only with 16-bit operands: CX = 2), back to 64-bit,
 * reload the data selectors, exit. */
FUNCTION vcpu_compat_mode
	init_gdt vcpu_compat_mode_start
	xor %ebx, %ebx
	xor %ecx, %ecx
	pushq $CODE_32_SELECTOR
	pushq $ABS(vcpu_compat_mode_start, vcpu_compat_mode_32)
	lretq

.code32
vcpu_compat_mode_32:
	xor %ecx, %ecx
	.byte 0x41 /* 32-bit: inc %ecx; 64-bit: REX.B */
	loop vcpu_compat_mode_exit
	mov $1, %ebx
	pushl $CODE_64_SELECTOR
	pushl $ABS(vcpu_compat_mode_start, vcpu_compat_mode_to16)
	lret
.code64

vcpu_compat_mode_to16:
	pushq $CODE_16_SELECTOR
	pushq $ABS(vcpu_compat_mode_start, vcpu_compat_mode_16)
	lretq

.code16
vcpu_compat_mode_16:
	mov %sp, %ax
	sub $2, %ax
	pushw $0
	cmp %sp, %ax
	popw %ax
	jne vcpu_compat_mode_16_done
	mov $2, %cx
vcpu_compat_mode_16_done:
	pushw $CODE_64_SELECTOR
	pushw $ABS(vcpu_compat_mode_start, vcpu_compat_mode_64)
	lretw
.code64

vcpu_compat_mode_64:
	mov $DATA_SELECTOR, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %fs
	mov %eax, %gs
	mov %eax, %ss
vcpu_compat_mode_exit:
	exit_test
END_FUNCTION vcpu_compat_mode
.global vcpu_compat_mode_exit

/* 26 vcpu_syscall: STAR/LSTAR, sysretq to ring 3 (CS 0x33, SS 0x2b),
 * syscall back to ring 0 at LSTAR (CS 0x10, SS 0x18), exit. Relies on
 * EFER.SCE being set initially. */
FUNCTION vcpu_syscall
	init_interrupt_handling vcpu_syscall_start
	init_tss
	xor %eax, %eax
	mov $((USER_CODE_32_SELECTOR << 16) | CODE_64_SELECTOR), %edx
	mov $X86_MSR_IA32_STAR, %ecx
	wrmsr
	xor %edx, %edx
	mov $ABS(vcpu_syscall_start, vcpu_syscall_done), %eax
	mov $X86_MSR_IA32_LSTAR, %ecx
	wrmsr
	pushfq
	pop %r11
	mov $ABS(vcpu_syscall_start, vcpu_syscall_ring3), %rcx
	sysretq
.global vcpu_syscall_ring3
vcpu_syscall_ring3:
	syscall
	exit_test_failure
.global vcpu_syscall_done
vcpu_syscall_done:
	exit_test
END_FUNCTION vcpu_syscall

/* 27 vcpu_sysenter: SYSENTER_CS/EIP/ESP, 64-bit sysexit (REX.W) to ring 3
 * (CS 0x33, SS 0x3b), sysenter back to ring 0 at SYSENTER_EIP, exit. What
 * happens on each host: x86_test.c, sysenter_case. Ours: the CPUID vendor
 * string goes to GUEST_VENDOR first (KVM's emulator decides by it). */
#define GUEST_VENDOR (GUEST_MISC + 0x200)
.macro store_vendor
	xor %eax, %eax
	xor %ecx, %ecx
	cpuid
	mov %ebx, (GUEST_VENDOR)
	mov %edx, (GUEST_VENDOR + 4)
	mov %ecx, (GUEST_VENDOR + 8)
.endm

FUNCTION vcpu_sysenter
	init_interrupt_handling vcpu_sysenter_start
	init_tss
	store_vendor
	wrmsr_imm X86_MSR_IA32_SYSENTER_CS, CODE_64_SELECTOR
	wrmsr_imm X86_MSR_IA32_SYSENTER_EIP, ABS(vcpu_sysenter_start, vcpu_sysenter_done)
	mov $X86_MSR_IA32_SYSENTER_ESP, %ecx
	mov %esp, %eax
	xor %edx, %edx
	wrmsr
	mov %rsp, %rcx
	mov $ABS(vcpu_sysenter_start, vcpu_sysenter_ring3), %rdx
.global vcpu_sysenter_sysexit
vcpu_sysenter_sysexit:
	sysexitq /* REX.W: return to 64-bit mode */
.global vcpu_sysenter_ring3
vcpu_sysenter_ring3:
	sysenter
	exit_test_failure
.global vcpu_sysenter_done
vcpu_sysenter_done:
	exit_test
END_FUNCTION vcpu_sysenter

/* 28 vcpu_sysenter_compat: as 27 with a 32-bit sysexit into compatibility
 * mode ring 3 (CS 0x23, SS 0x2b). */
FUNCTION vcpu_sysenter_compat
	init_interrupt_handling vcpu_sysenter_compat_start
	init_tss
	store_vendor
	wrmsr_imm X86_MSR_IA32_SYSENTER_CS, CODE_64_SELECTOR
	wrmsr_imm X86_MSR_IA32_SYSENTER_EIP, ABS(vcpu_sysenter_compat_start, vcpu_sysenter_compat_done)
	mov $X86_MSR_IA32_SYSENTER_ESP, %ecx
	mov %esp, %eax
	xor %edx, %edx
	wrmsr
	mov %rsp, %rcx
	mov $ABS(vcpu_sysenter_compat_start, vcpu_sysenter_compat_ring3), %rdx
.global vcpu_sysenter_compat_sysexit
vcpu_sysenter_compat_sysexit:
	sysexitl /* no REX.W: return to compatibility mode */
.code32
.global vcpu_sysenter_compat_ring3
vcpu_sysenter_compat_ring3:
	sysenter
	ud2
.code64
.global vcpu_sysenter_compat_done
vcpu_sysenter_compat_done:
	exit_test
END_FUNCTION vcpu_sysenter_compat

/* 29 vcpu_vmcall_invalid_number: an unknown hypercall at CPL0. */
FUNCTION vcpu_vmcall_invalid_number
	mov $INVALID_HYPERCALL, %rax
.global vcpu_vmcall_invalid_number_vmcall
vcpu_vmcall_invalid_number_vmcall:
	vmcall
.global vcpu_vmcall_invalid_number_exit
vcpu_vmcall_invalid_number_exit:
	exit_test
END_FUNCTION vcpu_vmcall_invalid_number

/* 30 vcpu_vmcall_invalid_cpl: sysretq to ring 3, then a hypercall there. */
FUNCTION vcpu_vmcall_invalid_cpl
	init_interrupt_handling vcpu_vmcall_invalid_cpl_start
	init_tss
	sysret_to_ring3 vcpu_vmcall_invalid_cpl_start, vcpu_vmcall_invalid_cpl_ring3
vcpu_vmcall_invalid_cpl_ring3:
	mov $INVALID_HYPERCALL, %rax
.global vcpu_vmcall_invalid_cpl_vmcall
vcpu_vmcall_invalid_cpl_vmcall:
	vmcall
.global vcpu_vmcall_invalid_cpl_exit
vcpu_vmcall_invalid_cpl_exit:
	exit_test
END_FUNCTION vcpu_vmcall_invalid_cpl

/* 31 vcpu_extended_registers: XMM0 = xmm_data, exit; then RAX:RBX = XMM0
 * and RCX:RDX = XMM1 (which the host wrote) through memory (kvm_pvm cannot
 * emulate movq xmm->gpr at CPL0), exit; clear CR4.OSFXSR, exit twice. */
#define XMM_SAVE (GUEST_MISC + 0x100)
FUNCTION vcpu_extended_registers
	mov %cr4, %rax
	or $X86_CR4_OSFXSR, %rax
	mov %rax, %cr4
	movdqu vcpu_extended_registers_data(%rip), %xmm0
	exit_test
	movdqu %xmm0, (XMM_SAVE)
	mov (XMM_SAVE), %rax
	mov (XMM_SAVE + 8), %rbx
	movdqu %xmm1, (XMM_SAVE + 16)
	mov (XMM_SAVE + 16), %rcx
	mov (XMM_SAVE + 24), %rdx
	exit_test
	mov %cr4, %rax
	and $~X86_CR4_OSFXSR, %rax
	mov %rax, %cr4
	exit_test
	exit_test
	.p2align 4
vcpu_extended_registers_data:
	.4byte 0x01234567
	.4byte 0x89abcdef
	.4byte 0xfedcba98
	.4byte 0x76543210
END_FUNCTION vcpu_extended_registers

/* 33 guest_set_trap_with_io: one OUT to TRAP_PORT (AL = 0x5a), exit. */
FUNCTION guest_set_trap_with_io
	mov $0x5a, %al
	out %al, $TRAP_PORT
.global guest_set_trap_with_io_exit
guest_set_trap_with_io_exit:
	exit_test
END_FUNCTION guest_set_trap_with_io

/* 34 cpuid_features: CPUID.1 must show the bits Zircon forces; a mismatch
 * exits through EXIT_TEST_FAILURE_ADDR (ECX and EDX kept for the host). */
#define CPUID1_ECX_SET   ((1 << 21) | (1 << 24) | (1 << 31)) /* X2APIC, TSC_DEADLINE, HYPERVISOR */
#define CPUID1_ECX_CLEAR ((1 << 5) | (1 << 15) | (1 << 3) | (1 << 8)) /* VMX, PDCM, MONITOR, TM2 */
#define CPUID1_EDX_SET   (1 << 11) /* SEP */
#define CPUID1_EDX_CLEAR ((1 << 29) | (1 << 22)) /* TM, ACPI */
FUNCTION cpuid_features
	mov $1, %eax
	xor %ecx, %ecx
	cpuid
	mov %ecx, %eax
	and $CPUID1_ECX_SET, %eax
	cmp $CPUID1_ECX_SET, %eax
	jne 1f
	test $CPUID1_ECX_CLEAR, %ecx
	jnz 1f
	test $CPUID1_EDX_SET, %edx
	jz 1f
	test $CPUID1_EDX_CLEAR, %edx
	jnz 1f
	exit_test
1:
	exit_test_failure
END_FUNCTION cpuid_features
