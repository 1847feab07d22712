/* echo.c: echoes what arrives on COM1 until a 'q', then passes: checks
 * zhv's console path (stdin -> uart16550_input -> the guest's RBR). */
#include "rt.h"

#define LSR_DATA_READY 0x01

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	rt_puts("echo: ready");
	for (;;) {
		if (!(inb(RT_COM1 + 5) & LSR_DATA_READY)) {
			rt_pause();
			continue;
		}
		char c = (char)inb(RT_COM1);
		if (c == 'q')
			break;
		rt_printf("%c", c);
	}
	rt_puts("\necho: bye");
	rt_pass();
}
