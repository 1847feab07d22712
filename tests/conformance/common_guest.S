/* common_guest.S: guest code of Zircon's common tests (spec 6.2, tests 1-13
 * and "bell and max user" of 6.5). The drivers are in common_test.c, in
 * the same order; each snippet names the tests that run it. */
#include "../lib/guest_abi.h"
#include "../lib/guest_asm.h"

.section .note.GNU-stack, "", @progbits
.section .rodata.zt_guest, "a", @progbits

/* Tests 1 vcpu_enter, 5 vcpu_invalid_thread_reuse, 11.
 * Nothing here may leave the guest except the final store. */
FUNCTION vcpu_enter
	/* CR3 load and store do not exit. */
	mov %cr3, %rax
	mov %rax, %cr3
	/* A GS_BASE write does not exit. */
	xor %eax, %eax
	xor %edx, %edx
	mov $X86_MSR_IA32_GS_BASE, %ecx
	wrmsr
	/* CPUID leaf 0 is answered (vendor string in EBX:EDX:ECX). */
	xor %eax, %eax
	cpuid
vcpu_enter_exit:
	exit_test
END_FUNCTION vcpu_enter

/* Tests 2 vcpu_kick, 3 vcpu_suspend_thread: halt forever (IF = 0, so only
 * a kick gets the vCPU out). */
FUNCTION vcpu_wait
1:
	hlt
	jmp 1b
END_FUNCTION vcpu_wait

/* Test 3 vcpu_suspend_thread: count in GUEST_MISC forever (the host sees
 * whether the guest runs). */
FUNCTION vcpu_count
1:
	incq (GUEST_MISC)
	jmp 1b
END_FUNCTION vcpu_count

/* Test 4 vcpu_process_destruction: flag GUEST_FLAGS[0] (the guest ran),
 * then halt forever with interrupts enabled. */
FUNCTION vcpu_wait_sti
	movl $1, (GUEST_FLAGS)
	sti
1:
	hlt
	jmp 1b
END_FUNCTION vcpu_wait_sti

/* Tests 6-10 and bell_and_max_user: one store to the trap page, then exit. */
FUNCTION guest_set_trap
	movq $0, (TRAP_ADDR)
guest_set_trap_exit:
	exit_test
END_FUNCTION guest_set_trap

/* Test 13 vmar_protect: exit once; then read the PML4 page (which the host
 * has made read-only), store to its last entry (ACCESS_DENIED: the store is
 * dropped) and to the one before (after the host made the page writable
 * again), exit. The values have P = 0: the entries stay not present. */
#define VMAR_PROTECT_VALUE1 0x5a5a5a00
#define VMAR_PROTECT_VALUE2 0x3c3c3c00
FUNCTION vmar_protect
	exit_test
	mov (GUEST_PML4), %rax
	movq $VMAR_PROTECT_VALUE1, (GUEST_PML4 + 0xFF8)
.global vmar_protect_second
vmar_protect_second:
	movq $VMAR_PROTECT_VALUE2, (GUEST_PML4 + 0xFF0)
.global vmar_protect_exit
vmar_protect_exit:
	exit_test
END_FUNCTION vmar_protect

/* Test 12 vcpu_delete_from_other_thread: store to the trap page forever. */
FUNCTION vcpu_always_exit
1:
	movq $0, (TRAP_ADDR)
	jmp 1b
END_FUNCTION vcpu_always_exit

/* Exported so that drivers can check where the exit came from. */
.global vcpu_enter_exit
.global guest_set_trap_exit
