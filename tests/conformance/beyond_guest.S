/* beyond_guest.S: guest code of our own tests beyond Zircon's suite. The
 * drivers are in beyond_test.c, in the same order; each snippet names the
 * test that runs it. */
#include "../lib/guest_abi.h"
#include "../lib/guest_asm.h"

.section .note.GNU-stack, "", @progbits
.section .rodata.zt_guest, "a", @progbits

/* many_vcpus: every vCPU (the BSP at GUEST_ENTRY, the APs put there in
 * 64-bit mode by the host) counts itself in GUEST_COUNT_A[apic_id] and
 * reports its APIC ID with an OUT (AL = low byte); the BSP then exits. */
FUNCTION many_vcpus
	mov $X2APIC_MSR_ID, %ecx
	rdmsr
	lock incl GUEST_COUNT_A(, %rax, 4)
	out %al, $TRAP_PORT
	exit_test
END_FUNCTION many_vcpus

/* apic_timer: program the x2APIC timer and halt until it has fired.
 * Inputs (host writes them with ZHV_VCPU_STATE):
 *   RDI  LVT timer value (TIMER_VECTOR | mode)
 *   RSI  initial count, or in TSC-deadline mode the TSC delta
 *   R10  ticks to wait for
 *   R9   non-zero: mask the LVT after those ticks
 *   R8   iterations of a busy loop (interrupts on) before the exit
 * Outputs: GUEST_COUNT_A[0] ticks, TIMER_DEADLINE the TSC deadline armed,
 * TIMER_AT_SPIN the tick count when the busy loop began, TIMER_LAST_TSC
 * the TSC read in the last tick's handler. */
#define TIMER_DEADLINE (GUEST_MISC + 0)
#define TIMER_AT_SPIN  (GUEST_MISC + 8)
#define TIMER_LAST_TSC (GUEST_MISC + 16)
FUNCTION apic_timer
	init_gdt apic_timer_start
	lidt ABS(apic_timer_start, apic_timer_idtr)
	load_selectors apic_timer_start
	wrmsr_imm X2APIC_MSR_DCR, DCR_DIVIDE_BY_1
	mov $X2APIC_MSR_LVT_TIMER, %ecx
	mov %edi, %eax
	xor %edx, %edx
	wrmsr
	bt $18, %edi /* TSC-deadline mode? */
	jc 1f
	mov $X2APIC_MSR_INIT_COUNT, %ecx
	mov %esi, %eax
	xor %edx, %edx
	wrmsr
	jmp 2f
1:
	rdtsc
	shl $32, %rdx
	or %rdx, %rax
	add %rsi, %rax
	mov %rax, (TIMER_DEADLINE)
	mov %rax, %rdx
	shr $32, %rdx
	mov $X86_MSR_IA32_TSC_DEADLINE, %ecx
	wrmsr
2:
	/* Halt until R10 ticks; "sti; hlt" cannot miss a tick. */
	cli
	mov (GUEST_COUNT_A), %eax
	cmp %r10d, %eax
	jae 3f
	sti
	hlt
	jmp 2b
3:
	test %r9, %r9
	jz 4f
	mov $X2APIC_MSR_LVT_TIMER, %ecx
	mov %edi, %eax
	or $LVT_MASKED, %eax
	xor %edx, %edx
	wrmsr
4:
	mov (GUEST_COUNT_A), %eax
	mov %eax, (TIMER_AT_SPIN)
	sti
5:
	dec %r8
	jnz 5b
	cli
	exit_test

apic_timer_isr:
	push %rax
	push %rcx
	push %rdx
	lock incl (GUEST_COUNT_A)
	rdtsc
	mov %eax, (TIMER_LAST_TSC)
	mov %edx, (TIMER_LAST_TSC + 4)
	x2apic_eoi
	pop %rdx
	pop %rcx
	pop %rax
	iretq

	.p2align 3
apic_timer_idt:
	idt_holes TIMER_VECTOR
	idt_gate apic_timer_start, apic_timer_isr
apic_timer_idtr:
	.2byte apic_timer_idtr - apic_timer_idt - 1
	.8byte ABS(apic_timer_start, apic_timer_idt)
END_FUNCTION apic_timer

/* wait_sipi: the BSP starts the AP with APIC ID 1 with INIT, then SIPI
 * (vector GUEST_SIPI_VECTOR), through its x2APIC ICR, and exits. */
#define ICR_INIT (ICR_LOW(ICR_SHORTHAND_NONE, ICR_DELIVERY_INIT, 0) | ICR_LEVEL_ASSERT)
#define ICR_SIPI (ICR_LOW(ICR_SHORTHAND_NONE, ICR_DELIVERY_STARTUP, GUEST_SIPI_VECTOR) | \
                  ICR_LEVEL_ASSERT)
FUNCTION wait_sipi_bsp
	mov $X2APIC_MSR_ICR, %ecx
	mov $1, %edx
	mov $ICR_INIT, %eax
	wrmsr
	mov $ICR_SIPI, %eax
	wrmsr
	exit_test
END_FUNCTION wait_sipi_bsp

/* wait_sipi: the AP's real-mode code, copied to the SIPI page: OUT 0x5a
 * to TRAP_PORT, then halt. */
.code16
FUNCTION wait_sipi_ap
	mov $0x5a, %al
	out %al, $TRAP_PORT
.global wait_sipi_ap_after_out
wait_sipi_ap_after_out:
1:
	hlt
	jmp 1b
END_FUNCTION wait_sipi_ap
.code64

/* msr_unknown_gp: RDMSR and WRMSR of an MSR nobody implements must give
 * the guest #GP (error code 0, RIP on the instruction). The #GP handler
 * records RIP (GUEST_MISC[n]) and error code (GUEST_MISC[8 + n]) for fault
 * n = GUEST_COUNT_A[0]++, skips the 2-byte instruction and returns. */
#define UNKNOWN_MSR 0x40000123
FUNCTION msr_unknown_gp
	init_gdt msr_unknown_gp_start
	lidt ABS(msr_unknown_gp_start, msr_unknown_gp_idtr)
	load_selectors msr_unknown_gp_start
	mov $UNKNOWN_MSR, %ecx
	mov $0x1111, %eax
	mov $0x2222, %edx
.global msr_unknown_gp_rdmsr
msr_unknown_gp_rdmsr:
	rdmsr
.global msr_unknown_gp_wrmsr
msr_unknown_gp_wrmsr:
	wrmsr
.global msr_unknown_gp_exit
msr_unknown_gp_exit:
	exit_test

msr_unknown_gp_isr:
	push %rax
	push %rbx
	mov (GUEST_COUNT_A), %eax
	mov 24(%rsp), %rbx /* RIP (above RBX, RAX, error code) */
	mov %rbx, GUEST_MISC(, %rax, 8)
	mov 16(%rsp), %rbx /* error code */
	mov %rbx, GUEST_MISC + 64(, %rax, 8)
	incl (GUEST_COUNT_A)
	addq $2, 24(%rsp)
	pop %rbx
	pop %rax
	add $8, %rsp
	iretq

	.p2align 3
msr_unknown_gp_idt:
	idt_holes GP_FAULT_VECTOR
	idt_gate msr_unknown_gp_start, msr_unknown_gp_isr
msr_unknown_gp_idtr:
	.2byte msr_unknown_gp_idtr - msr_unknown_gp_idt - 1
	.8byte ABS(msr_unknown_gp_start, msr_unknown_gp_idt)
END_FUNCTION msr_unknown_gp

/* io_in: answers to IN through ZHV_VCPU_IO. inb keeps RAX's upper bytes;
 * inl zero-extends into RAX. Results in RBX (inb) and RCX (inl). */
FUNCTION io_in
	mov $0x1122334455667788, %rax
	inb $TRAP_PORT, %al
	mov %rax, %rbx
	mov $-1, %rax
	inl $(TRAP_PORT - 1), %eax
	mov %rax, %rcx
	exit_test
END_FUNCTION io_in

/* mem_read: a load from a MEM trap gets the value the host answers with
 * ZHV_VCPU_MEM. */
FUNCTION mem_read
	mov (TRAP_ADDR), %rbx
	exit_test
END_FUNCTION mem_read

/* unhandled_access: a store and a load at a GPA with neither RAM nor trap
 * (32 MiB, mapped in the guest page tables), then an OUT and an IN on a
 * port without a trap. Each stops enter with NOT_FOUND; the access is
 * dropped (loads see all-ones) and the guest goes on after it. */
#define UNBACKED_GPA 0x2000000
FUNCTION unhandled_access
.global unhandled_access_mem
unhandled_access_mem:
	movq $1, (UNBACKED_GPA)
.global unhandled_access_load
unhandled_access_load:
	mov (UNBACKED_GPA), %rbx
.global unhandled_access_io
unhandled_access_io:
	out %al, $0x99
.global unhandled_access_in
unhandled_access_in:
	mov $0, %eax
	in $0x99, %al
.global unhandled_access_exit
unhandled_access_exit:
	exit_test
END_FUNCTION unhandled_access

/* read_only_ram: a store to RAM the host made read-only. */
#define READ_ONLY_GPA 0x800000
FUNCTION read_only_ram
	movq $0x77, (READ_ONLY_GPA)
	exit_test
END_FUNCTION read_only_ram

/* bell_read: a load from a BELL trap. */
FUNCTION bell_read
	mov (TRAP_ADDR), %rax
	exit_test
END_FUNCTION bell_read

/* string_io: REP OUTSB of the first RCX bytes of this code to a trapped
 * port, RCX = count from the host. */
FUNCTION string_io
	mov $GUEST_ENTRY, %esi
	mov $TRAP_PORT, %edx
.global string_io_outsb
string_io_outsb:
	rep outsb
	exit_test
END_FUNCTION string_io

/* triple_fault: an empty IDT, then #UD: shutdown. The host then moves RIP
 * to triple_fault_exit and enters again. */
FUNCTION triple_fault
	lidt ABS(triple_fault_start, triple_fault_idtr)
	ud2
.global triple_fault_exit
triple_fault_exit:
	exit_test
triple_fault_idtr:
	.2byte 0
	.8byte 0
END_FUNCTION triple_fault

/* level_eoi: take interrupts of LEVEL_VECTOR (the host sends them as MSIs,
 * level-triggered or edge) until GUEST_COUNT_A[0] reaches R10 (the host
 * may raise it at an exit); the handler counts and writes the x2APIC EOI
 * MSR; then exit. Before each check, with interrupts off, an OUT to
 * TRAP_PORT: an exit to the host between any interrupt and the next HLT or
 * the exit (see test_level_eoi_packet). "cli; check; sti; hlt" cannot miss
 * an interrupt. */
#define LEVEL_VECTOR 0x30
FUNCTION level_eoi
	init_gdt level_eoi_start
	lidt ABS(level_eoi_start, level_eoi_idtr)
	load_selectors level_eoi_start
1:
	cli
	out %al, $TRAP_PORT
	mov (GUEST_COUNT_A), %eax
	cmp %r10d, %eax
	jae 2f
	sti
	hlt
	jmp 1b
2:
	exit_test

level_eoi_isr:
	push %rax
	push %rcx
	push %rdx
	incl (GUEST_COUNT_A)
	x2apic_eoi
	pop %rdx
	pop %rcx
	pop %rax
	iretq

	.p2align 3
level_eoi_idt:
	idt_holes LEVEL_VECTOR
	idt_gate level_eoi_start, level_eoi_isr
level_eoi_idtr:
	.2byte level_eoi_idtr - level_eoi_idt - 1
	.8byte ABS(level_eoi_start, level_eoi_idt)
END_FUNCTION level_eoi
