/* debug_guest.S: guest code of the guest-debugging tests (debug_test.c):
 * single-step, int3, hardware breakpoints and watchpoints, guest-virtual
 * memory. */
#include "../lib/guest_abi.h"
#include "../lib/guest_asm.h"

.section .note.GNU-stack, "", @progbits
.section .rodata.zt_guest, "a", @progbits

/* Single-step at CPL0: five instructions, one of them (FWAIT) one that
 * kvm_pvm's instruction emulator leaves to libzhv's. RAX ends as 4. */
FUNCTION debug_step
	nop
.global debug_step_1, debug_step_2, debug_step_3, debug_step_4, debug_step_5
debug_step_1:
	mov $1, %eax
debug_step_2:
	add $2, %eax
debug_step_3:
	fwait
debug_step_4:
	inc %eax
debug_step_5:
	exit_test
END_FUNCTION debug_step

/* int3 at CPL0 with an IDT whose #BP handler exits with RAX = 3 and RCX =
 * the return address (zircon_isr). */
FUNCTION debug_int3
	init_interrupt_handling debug_int3_start
	load_selectors debug_int3_start
	mov $0x77, %eax
.global debug_int3_bp, debug_int3_after
debug_int3_bp:
	int3
debug_int3_after:
	exit_test
END_FUNCTION debug_int3

/* Hardware breakpoints: an execute breakpoint on debug_hw_exec, a write
 * watchpoint on GUEST_MISC and a read/write one on GUEST_MISC + 8. RAX
 * ends as 2, GUEST_MISC as 5. */
FUNCTION debug_hw
	nop
.global debug_hw_exec, debug_hw_after_store, debug_hw_after_load
debug_hw_exec:
	mov $1, %eax
	movq $5, (GUEST_MISC)
debug_hw_after_store:
	mov (GUEST_MISC + 8), %ecx
debug_hw_after_load:
	inc %eax
	exit_test
END_FUNCTION debug_hw

/* Guest-virtual memory: through the host's 4 KiB mapping at
 * DEBUG_VIRT_BASE (PML4 entry 1), load 8 bytes across the first two pages
 * into GUEST_MISC and store a constant across the second and third. */
#define DEBUG_VIRT_BASE 0x8000000000
FUNCTION debug_virt
	movabs $(DEBUG_VIRT_BASE + 0xffc), %rbx
	mov (%rbx), %rax
	mov %rax, (GUEST_MISC)
	movabs $0x1122334455667788, %rcx
	mov %rcx, 0x1000(%rbx)
	exit_test
END_FUNCTION debug_virt

/* CPL3: set up ring 0 (IDT, TSS, STAR), sysretq to ring 3, store to
 * TRAP_ADDR (a MEM trap: the host turns debugging on there), then three
 * instructions, an int3 and the exit. */
FUNCTION debug_user
	init_interrupt_handling debug_user_start
	init_tss
	sysret_to_ring3 debug_user_start, debug_user_ring3
.global debug_user_ring3, debug_user_1, debug_user_2, debug_user_3, debug_user_bp
.global debug_user_start_isr_1, debug_user_start_isr_2, debug_user_start_idt
debug_user_ring3:
	movq $0, (TRAP_ADDR)
	nop
debug_user_1:
	mov $1, %eax
debug_user_2:
	inc %eax
debug_user_3:
	nop
debug_user_bp:
	int3
	exit_test
END_FUNCTION debug_user

/* The exits of a KVM that cannot emulate FWAIT and INT3 (kvm_pvm at CPL0),
 * driven by the host through zhv__emulation_failure_at_rip at each OUT:
 * FWAIT, then an int3 whose #BP handler exits with RAX = 3 and RCX = the
 * return address. */
FUNCTION debug_emu
	init_interrupt_handling debug_emu_start
	load_selectors debug_emu_start
	mov $0x77, %eax
	out %al, $TRAP_PORT
.global debug_emu_fwait, debug_emu_out2, debug_emu_bp, debug_emu_after
debug_emu_fwait:
	fwait
debug_emu_out2:
	out %al, $TRAP_PORT
debug_emu_bp:
	int3
debug_emu_after:
	exit_test
END_FUNCTION debug_emu
