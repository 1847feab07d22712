/* main.c: the bundled guest's BSP path: greet, start the APs, read the
 * disk, power off. It runs on the shared runtime (rt/): the runtime's
 * entry calls test_main with the multiboot information. */
#include "guest.h"

static bool overlaps(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
	return a < b + blen && b < a + alen;
}

/* A page below 1 MiB for the AP trampoline that holds none of what the
 * boot loader handed over (info block, strings, memory map, modules). */
static uint32_t trampoline_page(const struct rt_mbi *mbi, bool valid)
{
	static const uint32_t candidates[] = {0x8000, 0x7000, 0x6000, 0x5000, 0x4000,
	                                      0x3000, 0x2000, 0x1000, 0x10000, 0x20000};
	for (unsigned i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		uint32_t p = candidates[i];
		if (!valid)
			return p;
		if (overlaps(p, 4096, (uint32_t)(uintptr_t)mbi, sizeof(*mbi)))
			continue;
		if ((mbi->flags & RT_MB_CMDLINE) &&
		    overlaps(p, 4096, mbi->cmdline, strlen((const char *)(uintptr_t)mbi->cmdline) + 1))
			continue;
		if ((mbi->flags & RT_MB_MMAP) && overlaps(p, 4096, mbi->mmap_addr, mbi->mmap_length))
			continue;
		if ((mbi->flags & RT_MB_LOADER_NAME) && overlaps(p, 4096, mbi->boot_loader_name, 64))
			continue;
		bool busy = false;
		if (mbi->flags & RT_MB_MODS) {
			const struct rt_mb_module *m = (const void *)(uintptr_t)mbi->mods_addr;
			busy = overlaps(p, 4096, mbi->mods_addr, mbi->mods_count * sizeof(*m));
			for (uint32_t k = 0; k < mbi->mods_count && !busy; k++)
				busy = overlaps(p, 4096, m[k].mod_start, m[k].mod_end - m[k].mod_start) ||
				       (m[k].string && overlaps(p, 4096, m[k].string, 256));
		}
		if (!busy)
			return p;
	}
	return 0;
}

int test_main(const struct rt_mbi *mbi)
{
	bool mb = mbi != NULL;
	unsigned ncpus = rt_fw_cfg_ncpus();
	if (!ncpus)
		ncpus = rt_acpi_count_cpus();
	if (!ncpus)
		ncpus = 1;
	rt_printf("zhv guest: BSP up, %u CPUs\n", ncpus);
	if (!mb)
		rt_printf("zhv guest: not started by a multiboot loader (eax %x)\n", rt_boot_magic);
	else if ((mbi->flags & RT_MB_CMDLINE) && mbi->cmdline &&
	         *(const char *)(uintptr_t)mbi->cmdline)
		rt_printf("zhv guest: cmdline: %s\n", (const char *)(uintptr_t)mbi->cmdline);

	if (ncpus > 1) {
		uint32_t page = trampoline_page(mbi, mb);
		unsigned n = page ? smp_start_aps(ncpus, page) : 0;
		rt_printf("zhv guest: %u of %u APs up\n", n, ncpus - 1);
	}
	virtio_blk_probe();

	rt_printf("zhv guest: powering off\n");
	const char *why = rt_acpi_poweroff();
	/* Still here: ACPI did not work. Say so, then reset through the
	 * keyboard controller so that the run still ends. */
	rt_printf("zhv guest: %s\n", why);
	rt_printf("zhv guest: ACPI power-off failed; resetting\n");
	outb(0x64, 0xFE);
	rt_halt_forever();
}
