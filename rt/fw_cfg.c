/* fw_cfg.c: QEMU's firmware configuration interface over I/O ports
 * (QEMU docs/specs/fw_cfg.rst): selector 0x510 (16-bit), data 0x511. */
#include "rt.h"

#define FW_CFG_SELECTOR 0x510
#define FW_CFG_DATA 0x511
#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_NB_CPUS 0x05

unsigned rt_fw_cfg_ncpus(void)
{
	outw(FW_CFG_SELECTOR, FW_CFG_SIGNATURE);
	char sig[4];
	for (int i = 0; i < 4; i++)
		sig[i] = (char)inb(FW_CFG_DATA);
	if (memcmp(sig, "QEMU", 4) != 0)
		return 0;
	outw(FW_CFG_SELECTOR, FW_CFG_NB_CPUS);
	unsigned lo = inb(FW_CFG_DATA);
	unsigned hi = inb(FW_CFG_DATA);
	return lo | hi << 8;
}
