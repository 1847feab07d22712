/* hello.c: prints its multiboot command line and exits with the code given
 * as "exit=N" on it (0 by default): checks --cmdline and exit statuses. */
#include "rt.h"

int test_main(const struct rt_mbi *mbi)
{
	rt_printf("hello: multiboot %s\n", mbi ? "yes" : "no");
	rt_printf("hello: cmdline '%s'\n", rt_cmdline());
	return (int)rt_cmdline_uint("exit", 0);
}
