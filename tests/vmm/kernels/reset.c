/* reset.c: reset the machine through the i8042 (0xfe to port 0x64): zhv
 * treats a reset as the end of the run and exits with status 0. */
#include "rt.h"

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	rt_puts("reset: pulsing the i8042 reset line");
	outb(0x64, 0xFE);
	for (int i = 0; i < 1000; i++)
		rt_pause();
	rt_fail("still running after the i8042 reset");
}
