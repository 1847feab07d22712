/* aspace_guest.S: guest code of the address-space tests (aspace_test.c,
 * Zircon's kernel tests 35-46 adapted to libzhv's memory calls). */
#include "../lib/guest_abi.h"
#include "../lib/guest_asm.h"

.section .note.GNU-stack, "", @progbits
.section .rodata.zt_guest, "a", @progbits

/* aspace_touch (test 40): load one qword from each of four pages the host
 * mapped with R, RW, RX and RWX over a hole in RAM, then exit. */
FUNCTION aspace_touch
	mov (0x400000), %rax
	mov (0x600000), %rbx
	mov (0x800000), %rcx
	mov (0xa00000), %rdx
	exit_test
END_FUNCTION aspace_touch
