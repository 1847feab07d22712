/* unclaimed.c: ports and MMIO nobody decodes read all-ones and ignore
 * writes, as on a PC bus. */
#include "rt.h"

#define FREE_PORT 0x2a0         /* no device of zhv's board decodes it */
#define FREE_MMIO 0xE0000000u   /* above the PCI window, below the IOAPIC */

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	outb(FREE_PORT, 0x12);
	RT_CHECK(inb(FREE_PORT) == 0xFF);
	RT_CHECK(inw(FREE_PORT) == 0xFFFF);
	RT_CHECK(inl(FREE_PORT) == 0xFFFFFFFFu);
	mmio_write32(FREE_MMIO, 0x12345678);
	uint32_t v = mmio_read32(FREE_MMIO);
	if (v != 0xFFFFFFFFu)
		rt_fail("MMIO at %x read %x, not all-ones", FREE_MMIO, v);
	outb(0xFFFF, 0x12); /* the one port libzhv cannot trap */
	RT_CHECK(inb(0xFFFF) == 0xFF);
	rt_pass();
}
