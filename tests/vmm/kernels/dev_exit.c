/* dev_exit.c: isa-debug-exit (port 0xf4) with the value and access width
 * from the command line ("code=V width=1|2|4"): zhv must exit with status
 * (V << 1) | 1. Reading the port first must not end the run. With
 * "then_reset=1", a run that goes on after the write (zhv without
 * --debug-exit: port 0xf4 unclaimed) says so and resets through the i8042
 * (status 0). */
#include "rt.h"

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	uint32_t code = rt_cmdline_uint("code", 0), width = rt_cmdline_uint("width", 4);
	if (inb(RT_DEBUG_EXIT_PORT) != 0xFF || inl(RT_DEBUG_EXIT_PORT) != 0xFFFFFFFFu)
		rt_fail("port 0xf4 does not read all-ones");
	rt_printf("exit: writing %x with %u-byte access\n", code, width);
	if (width == 1)
		outb(RT_DEBUG_EXIT_PORT, (uint8_t)code);
	else if (width == 2)
		outw(RT_DEBUG_EXIT_PORT, (uint16_t)code);
	else
		outl(RT_DEBUG_EXIT_PORT, code);
	if (rt_cmdline_uint("then_reset", 0)) {
		rt_puts("exit: the write did nothing; resetting");
		outb(0x64, 0xFE);
		for (int i = 0; i < 1000; i++)
			rt_pause();
	}
	rt_fail("still running after the debug-exit write");
}
