/* contract_guest.S: guest code of the library-contract tests
 * (contract_test.c): memory changes while vCPUs run, handles across
 * threads. */
#include "../lib/guest_abi.h"
#include "../lib/guest_asm.h"

.section .note.GNU-stack, "", @progbits
.section .rodata.zt_guest, "a", @progbits

/* Memory changes while running: fetch code at 0x2000, walk the page tables
 * at 0x0, 0x1000 and 0x10000, read 4 MiB and count in the data page,
 * forever. Only a kick ends it; any exit is a failure of the test. */
FUNCTION contract_mem_loop
1:
	mov (0x400000), %rax
	incq (GUEST_MISC)
	jmp 1b
END_FUNCTION contract_mem_loop

/* Handles across threads: halt forever with interrupts disabled, so that
 * only a kick ends enter. */
FUNCTION contract_halt
1:
	hlt
	jmp 1b
END_FUNCTION contract_halt
