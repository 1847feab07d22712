/* state_guest.S: guest code of state_test.c (reads of state in the middle
 * of an exit, reuse of vCPU ids). Same order as the drivers. */
#include "../lib/guest_abi.h"
#include "../lib/guest_asm.h"

.section .note.GNU-stack, "", @progbits
.section .rodata.zt_guest, "a", @progbits

#define STATE_INS_BUF  GUEST_MISC
#define STATE_DUMP_OUT (GUEST_MISC + 0x200)
#define STATE_RAX      0x1122334455667788

/* state_rep_insb: a 3-element REP INSB from TRAP_PORT into STATE_INS_BUF,
 * with RAX = STATE_RAX (INS must leave it alone). */
FUNCTION state_rep_insb
	mov $STATE_RAX, %rax
	mov $STATE_INS_BUF, %edi
	mov $3, %ecx
	mov $TRAP_PORT, %edx
	cld
.global state_rep_insb_insn
state_rep_insb_insn:
	rep insb
	exit_test
END_FUNCTION state_rep_insb

/* state_mem_read: a load from a MEM trap into RAX (RAX = STATE_RAX
 * before it). */
FUNCTION state_mem_read
	mov $STATE_RAX, %rax
.global state_mem_read_insn
state_mem_read_insn:
	mov (TRAP_ADDR), %rax
	exit_test
END_FUNCTION state_mem_read

/* state_in: a single IN into AL (RAX = STATE_RAX before it). */
FUNCTION state_in
	mov $STATE_RAX, %rax
.global state_in_insn
state_in_insn:
	inb $TRAP_PORT, %al
	exit_test
END_FUNCTION state_in

/* state_out_write: an OUT of 0x42 to TRAP_PORT, then a store of 0x77 to
 * a MEM trap. */
FUNCTION state_out_write
	mov $0x42, %al
.global state_out_insn
state_out_insn:
	out %al, $TRAP_PORT
.global state_write_insn
state_write_insn:
	movq $0x77, (TRAP_ADDR)
	exit_test
END_FUNCTION state_out_write

/* state_change: change as much vCPU state as ring-0 code can cheaply
 * (kvm_pvm emulates it), then stop on an IN the host never answers:
 * GDT, IDT, TR, CS by a far return, the data segments, CR0.MP|NE,
 * CR4.DE|OSXMMEXCPT, the TPR through CR8, the x2APIC LVT timer and a
 * running timer count, SYSENTER_CS, LSTAR, PAT, FS_BASE, KERNEL_GS_BASE,
 * DR0, DR1, DR7 (an execute breakpoint on a data page: never hit) and
 * general registers. Needs the APIC in x2APIC mode. */
FUNCTION state_change
	init_gdt state_change_start
	lidt ABS(state_change_start, state_change_idtr)
	load_selectors state_change_start
	mov %eax, %fs
	mov %eax, %gs
	init_tss
	mov %cr0, %rax
	or $0x22, %rax
	mov %rax, %cr0
	mov %cr4, %rax
	or $0x408, %rax
	mov %rax, %cr4
	mov $5, %eax
	mov %rax, %cr8
	wrmsr_imm X2APIC_MSR_LVT_TIMER, (LVT_MASKED | LVT_TIMER_PERIODIC | TIMER_VECTOR)
	wrmsr_imm X2APIC_MSR_INIT_COUNT, 0x7fffffff
	wrmsr_imm X86_MSR_IA32_SYSENTER_CS, CODE_64_SELECTOR
	mov $X86_MSR_IA32_LSTAR, %ecx
	mov $0x12345678, %eax
	mov $0xffffffff, %edx
	wrmsr
	mov $0x277, %ecx /* PAT */
	mov $0x00070106, %eax
	mov $0x00070406, %edx
	wrmsr
	mov $0xc0000100, %ecx /* FS_BASE */
	mov $0x7000, %eax
	xor %edx, %edx
	wrmsr
	mov $0xc0000102, %ecx /* KERNEL_GS_BASE */
	mov $0x8000, %eax
	xor %edx, %edx
	wrmsr
	mov $0x1230000, %rax
	mov %rax, %dr0
	mov $GUEST_DATA, %rax
	mov %rax, %dr1
	mov $0x404, %eax /* L1, execute */
	mov %rax, %dr7
	mov $0x0123456789abcdef, %rbx
	mov $0x1111, %esi
	mov $0x2222, %edi
	mov $0x3333, %ebp
	mov %rbx, %r9
	not %r9
	mov $STATE_RAX, %rax
.global state_change_in
state_change_in:
	inb $TRAP_PORT, %al
	exit_test
	.p2align 3
state_change_idtr:
	.2byte 0x0fff
	.8byte 0x7000
END_FUNCTION state_change

/* state_dump: store DR0, DR1, DR2, DR3, DR6 and DR7 at STATE_DUMP_OUT
 * (u64 each), then exit. Position independent: copied to its own page. */
FUNCTION state_dump
	mov %dr0, %rax
	mov %rax, (STATE_DUMP_OUT + 0)
	mov %dr1, %rax
	mov %rax, (STATE_DUMP_OUT + 8)
	mov %dr2, %rax
	mov %rax, (STATE_DUMP_OUT + 16)
	mov %dr3, %rax
	mov %rax, (STATE_DUMP_OUT + 24)
	mov %dr6, %rax
	mov %rax, (STATE_DUMP_OUT + 32)
	mov %dr7, %rax
	mov %rax, (STATE_DUMP_OUT + 40)
	exit_test
END_FUNCTION state_dump
