/* aspace_guest.S: guest code of the address-space tests (aspace_test.c,
 * Zircon's kernel tests 35-46 adapted to libzhv's memory calls). */
#include "../lib/guest_abi.h"
#include "../lib/guest_asm.h"

.section .note.GNU-stack, "", @progbits
.section .rodata.zt_guest, "a", @progbits

/* aspace_touch (tests 40, 45, 46): load one qword from each of four pages
 * the host mapped with R, RW, RX and RWX over a hole in RAM, exit; store to
 * each of them (the stores to R and RX stop enter with ACCESS_DENIED and
 * are dropped; the guest resumes after them), exit; store to the RWX page
 * again (the host has protected it to R meanwhile), exit. */
FUNCTION aspace_touch
	mov (0x400000), %rax
	mov (0x600000), %rbx
	mov (0x800000), %rcx
	mov (0xa00000), %rdx
	exit_test
.global aspace_touch_store_r
aspace_touch_store_r:
	movq $0x51, (0x400000)
.global aspace_touch_store_rw
aspace_touch_store_rw:
	movq $0x52, (0x600000)
.global aspace_touch_store_rx
aspace_touch_store_rx:
	movq $0x53, (0x800000)
.global aspace_touch_store_rwx
aspace_touch_store_rwx:
	movq $0x54, (0xa00000)
.global aspace_touch_exit2
aspace_touch_exit2:
	exit_test
.global aspace_touch_store_protected
aspace_touch_store_protected:
	movq $0x55, (0xa00000)
.global aspace_touch_exit3
aspace_touch_exit3:
	exit_test
END_FUNCTION aspace_touch

/* enter_bad_state (test 51): one exit, reached only from a valid state. */
FUNCTION enter_bad_state
	exit_test
END_FUNCTION enter_bad_state
