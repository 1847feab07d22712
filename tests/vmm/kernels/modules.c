/* modules.c: lists the multiboot modules it was given (string, size and
 * first bytes) and the memory map's RAM total: checks --module and the
 * multiboot information zhv's loader builds. */
#include "rt.h"

struct mmap_entry {
	uint32_t size;
	uint32_t addr_lo, addr_hi, len_lo, len_hi;
	uint32_t type;
} __attribute__((packed));

int test_main(const struct rt_mbi *mbi)
{
	if (!mbi)
		rt_fail("not booted by multiboot");
	uint32_t n = (mbi->flags & RT_MB_MODS) ? mbi->mods_count : 0;
	rt_printf("modules: %u\n", n);
	const struct rt_mb_module *m = (const void *)(uintptr_t)mbi->mods_addr;
	for (uint32_t i = 0; i < n; i++) {
		char head[9];
		uint32_t size = m[i].mod_end - m[i].mod_start;
		const char *data = (const char *)(uintptr_t)m[i].mod_start;
		uint32_t k;
		for (k = 0; k < 8 && k < size; k++)
			head[k] = data[k] >= 0x20 && data[k] < 0x7f ? data[k] : '.';
		head[k] = '\0';
		rt_printf("module %u: '%s' %u bytes at %x, starts '%s'\n", i,
		          m[i].string ? (const char *)(uintptr_t)m[i].string : "", size,
		          m[i].mod_start, head);
	}
	if (mbi->flags & RT_MB_MMAP) {
		uint32_t ram_mib = 0;
		for (uint32_t off = 0; off < mbi->mmap_length;) {
			const struct mmap_entry *e = (const void *)(uintptr_t)(mbi->mmap_addr + off);
			if (e->type == 1)
				ram_mib += (e->len_lo >> 20) + (e->len_hi << 12);
			off += e->size + 4;
		}
		rt_printf("memory map: about %u MiB of RAM\n", ram_mib);
	}
	rt_pass();
}
