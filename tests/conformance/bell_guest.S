/* bell_guest.S: guest code of the BELL doorbell tests (bell_test.c, issue
 * 11): writes to a BELL trap at TRAP_ADDR, then an OUT to TRAP_PORT (an IO
 * trap) that hands control back to the host. */
#include "../lib/guest_abi.h"
#include "../lib/guest_asm.h"

.section .note.GNU-stack, "", @progbits
.section .rodata.zt_guest, "a", @progbits

/* bell_loop: RCX rounds of two doorbell writes, a 4-byte one to TRAP_ADDR
 * and a 2-byte one to TRAP_ADDR + 8 (virtio's notify width); then OUT,
 * then the exit. */
FUNCTION bell_loop
1:	movl %ecx, (TRAP_ADDR)
	movw %cx, (TRAP_ADDR + 8)
	dec %rcx
	jnz 1b
	out %al, $TRAP_PORT
	exit_test
END_FUNCTION bell_loop

/* bell_once: one doorbell write, OUT, another write, then the exit. */
FUNCTION bell_once
	movl $1, (TRAP_ADDR)
	out %al, $TRAP_PORT
	movl $2, (TRAP_ADDR)
	exit_test
END_FUNCTION bell_once

/* bell_spread: two passes over RCX addresses TRAP_ADDR + 4 * i, one
 * 4-byte write each; then OUT, then the exit. */
FUNCTION bell_spread
	mov $2, %r8d
2:	xor %edx, %edx
1:	movl %edx, TRAP_ADDR(, %rdx, 4)
	inc %edx
	cmp %ecx, %edx
	jne 1b
	dec %r8d
	jnz 2b
	out %al, $TRAP_PORT
	exit_test
END_FUNCTION bell_spread

/* bell_forever: ring TRAP_ADDR until the host stops the vCPU. */
FUNCTION bell_forever
1:	movl $1, (TRAP_ADDR)
	jmp 1b
END_FUNCTION bell_forever

/* mem_rewrite (MEM packets, issue 11): a 4-byte store to TRAP_ADDR that
 * ends at offset 11 and a 4-byte load from it at offset 11; the host
 * rewrites both with instructions of other lengths at the same places
 * (bell_test.c: test_mem_insn_rewritten). */
FUNCTION mem_rewrite
	.byte 0x90, 0x90, 0x90, 0x90
	.byte 0x89, 0x04, 0x25          /* mov %eax, (TRAP_ADDR) */
	.long TRAP_ADDR
	.byte 0x8b, 0x04, 0x25          /* mov (TRAP_ADDR), %eax */
	.long TRAP_ADDR
	.byte 0x90
	exit_test
END_FUNCTION mem_rewrite
