/* stall_print.c: prints "print: ready", then numbered lines on COM1
 * forever (the script stalls the reader, then stops zhv). */
#include "rt.h"

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	rt_printf("print: ready\n");
	for (uint32_t n = 0;; n++)
		rt_printf("print: line %u of a guest that never stops talking\n", n);
}
