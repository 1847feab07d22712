/* dev_fwcfg.c: QEMU's fw_cfg I/O interface (selector 0x510, data 0x511)
 * from the guest side: signature, ID, NB_CPUS and MAX_CPUS against
 * --cpus, RAM_SIZE against --memory, reads past an item's end and of an
 * unknown key return 0, and re-selecting restarts an item.
 * Command line: cpus=N mem=MIB. */
#include "group.h"

#define FW_SEL 0x510
#define FW_DATA 0x511
#define KEY_SIGNATURE 0x00
#define KEY_ID 0x01
#define KEY_UUID 0x02
#define KEY_RAM_SIZE 0x03
#define KEY_NB_CPUS 0x05
#define KEY_MAX_CPUS 0x0F

static void sel(uint16_t key)
{
	outw(FW_SEL, key);
}

static uint32_t read_le(unsigned n)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint32_t)inb(FW_DATA) << (8 * i);
	return v;
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	unsigned cpus = rt_cmdline_uint("cpus", 0), mem_mib = rt_cmdline_uint("mem", 0);
	if (!cpus || !mem_mib)
		rt_fail("need cpus=N mem=MIB on the command line");

	char sig[5] = {0};
	sel(KEY_SIGNATURE);
	for (int i = 0; i < 4; i++)
		sig[i] = (char)inb(FW_DATA);
	RT_EXPECT(!memcmp(sig, "QEMU", 4), "signature '%s'", sig);
	RT_EXPECT(inb(FW_DATA) == 0, "a byte past the signature is not 0");
	sel(KEY_SIGNATURE); /* selecting again starts over */
	RT_EXPECT(inb(FW_DATA) == 'Q', "re-selecting did not restart the item");
	sel(KEY_ID);
	uint32_t id = read_le(4);
	RT_EXPECT(id & 1, "ID %x lacks the traditional interface bit", id);
	RT_GROUP_OK("fwcfg-signature");

	sel(KEY_NB_CPUS);
	uint32_t nb = read_le(2);
	RT_EXPECT(nb == cpus, "NB_CPUS %u, --cpus %u", nb, cpus);
	sel(KEY_MAX_CPUS);
	uint32_t max = read_le(2);
	RT_EXPECT(max >= cpus, "MAX_CPUS %u below %u", max, cpus);
	RT_GROUP_OK("fwcfg-nb-cpus");

	sel(KEY_RAM_SIZE);
	uint32_t lo = read_le(4), hi = read_le(4);
	uint32_t want_lo = mem_mib << 20, want_hi = mem_mib >> 12;
	RT_EXPECT(lo == want_lo && hi == want_hi, "RAM_SIZE %x:%x, --memory %u MiB", hi, lo, mem_mib);
	RT_EXPECT(inb(FW_DATA) == 0, "a byte past RAM_SIZE is not 0");
	RT_GROUP_OK("fwcfg-ram-size");

	static const uint16_t unknown[] = {0x0004, 0x0019, 0x1234, 0x4000, 0x8000, 0xFFFF};
	for (unsigned k = 0; k < sizeof(unknown) / sizeof(unknown[0]); k++) {
		sel(unknown[k]);
		for (unsigned i = 0; i < 8; i++) {
			uint8_t v = inb(FW_DATA);
			RT_EXPECT(v == 0, "key %x byte %u reads %x", unknown[k], i, v);
		}
	}
	sel(KEY_UUID);
	RT_EXPECT(read_le(4) == 0, "UUID not all zero");
	RT_GROUP_OK("fwcfg-unknown-key");
	rt_pass();
}
