/* linux.c: Linux bzImage through the 64-bit boot protocol
 * (Documentation/arch/x86/boot.rst) and ELF vmlinux through the PVH entry
 * (Xen docs/misc/pvh.pandoc, public/arch-x86/hvm/start_info.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "loader_priv.h"

/* clang-format off */
/* boot.rst "THE REAL-MODE KERNEL HEADER": offsets in the file and in
 * boot_params (the zero page, arch/x86/include/uapi/asm/bootparam.h). */
#define BZ_SETUP_SECTS     0x1F1
#define BZ_BOOT_FLAG       0x1FE  /* 0xAA55 */
#define BZ_JUMP            0x200  /* jmp short: its offset gives the header end */
#define BZ_HEADER          0x202  /* "HdrS" */
#define BZ_VERSION         0x206
#define BZ_TYPE_OF_LOADER  0x210
#define BZ_LOADFLAGS       0x211
#define BZ_RAMDISK_IMAGE   0x218
#define BZ_RAMDISK_SIZE    0x21C
#define BZ_HEAP_END_PTR    0x224
#define BZ_CMD_LINE_PTR    0x228
#define BZ_INITRD_ADDR_MAX 0x22C
#define BZ_KERNEL_ALIGN    0x230
#define BZ_RELOCATABLE     0x234
#define BZ_XLOADFLAGS      0x236
#define BZ_CMDLINE_SIZE    0x238
#define BZ_PREF_ADDRESS    0x258
#define BZ_INIT_SIZE       0x260
#define BZ_HDR_COPY_MAX    0x290  /* boot_params: edd_mbr_sig_buffer follows */
#define BP_E820_ENTRIES    0x1E8
#define BP_E820_TABLE      0x2D0
#define BP_E820_MAX        128
#define BP_SIZE            0x1000

#define BZ_LOADED_HIGH     (1u << 0)
#define BZ_CAN_USE_HEAP    (1u << 7)
#define BZ_XLF_KERNEL_64   (1u << 0)
#define BZ_MIN_VERSION     0x0206
#define BZ_ENTRY64_OFFSET  0x200  /* 64-bit entry: load address + 0x200 */
#define BZ_HEAP_END        0xFE00 /* what QEMU gives: a full 64 KiB segment */
#define BZ_INITRD_MAX_DFLT 0x37FFFFFFu

/* start_info.h */
#define PVH_MAGIC          0x336ec578u
#define PVH_INFO_SIZE      56
#define PVH_MOD_SIZE       32
#define PVH_MEMMAP_SIZE    24
#define PVH_MAX_E820       16
/* clang-format on */

/* ---- bzImage ---------------------------------------------------------------- */

bool linux_is_bzimage(const struct loader *l)
{
	return l->headlen >= BZ_HEADER + 4 && memcmp(l->head + BZ_HEADER, "HdrS", 4) == 0;
}

/* The initrd goes as high as initrd_addr_max and low RAM allow, on a page,
 * above the memory the kernel needs (boot.rst "Details of header fields"). */
struct bz_initrd_place {
	uint64_t limit; /* one past the highest usable byte */
	uint64_t floor; /* end of the kernel's memory */
};

static uint64_t bz_place_initrd(struct loader *l, uint64_t size, void *arg)
{
	const struct bz_initrd_place *pl = arg;
	uint64_t at = size <= pl->limit ? (pl->limit - size) & ~(LOADER_PAGE - 1) : 0;
	if (size > pl->limit || at < pl->floor) {
		loader_error(l, -ENOMEM, "%s: initrd of 0x%" PRIx64 " bytes does not fit between "
		             "the kernel's end 0x%" PRIx64 " and 0x%" PRIx64 " (guest RAM %llu "
		             "MiB)", l->req->initrd_path, size, pl->floor, pl->limit,
		             loader_ram_mib(l));
		return UINT64_MAX;
	}
	return at;
}

int linux_load_bzimage(struct loader *l)
{
	const struct boot_request *req = l->req;
	const char *path = l->kernel.path;
	const uint8_t *h = l->head;
	uint64_t fsize = l->kernel.size;

	if (l->headlen < BZ_VERSION + 2)
		return loader_error(l, -ENOEXEC, "%s: not a bzImage: truncated header", path);
	uint16_t version = ld16(h + BZ_VERSION);
	if (version < BZ_MIN_VERSION)
		return loader_error(l, -ENOEXEC, "%s: bzImage boot protocol %u.%02u is too old "
		                    "(the 64-bit boot needs 2.06 or later)", path, version >> 8,
		                    version & 0xFF);
	/* The header ends at 0x202 + the byte at 0x201 (the jump's offset). */
	size_t hdr_end = BZ_HEADER + h[BZ_JUMP + 1];
	if (hdr_end < BZ_CMDLINE_SIZE + 4)
		return loader_error(l, -ENOEXEC, "%s: bzImage setup header ends at 0x%zx, before "
		                    "the 2.06 fields", path, hdr_end);
	if (l->headlen < hdr_end)
		return loader_error(l, -ENOEXEC, "%s: not a bzImage: truncated header (ends at "
		                    "0x%zx, file has 0x%zx bytes)", path, hdr_end, l->headlen);
	if (ld16(h + BZ_BOOT_FLAG) != 0xAA55)
		return loader_error(l, -ENOEXEC, "%s: bzImage boot_flag is 0x%x, not 0xAA55", path,
		                    ld16(h + BZ_BOOT_FLAG));
	if (!(h[BZ_LOADFLAGS] & BZ_LOADED_HIGH))
		return loader_error(l, -ENOEXEC, "%s: zImage (not loaded high) is not supported",
		                    path);
	bool have_210 = version >= 0x020A && hdr_end >= BZ_INIT_SIZE + 4;
	bool have_212 = version >= 0x020C;
	if (!have_212 || !(ld16(h + BZ_XLOADFLAGS) & BZ_XLF_KERNEL_64))
		return loader_error(l, -ENOEXEC, "%s: bzImage has no 64-bit entry point (boot "
		                    "protocol %u.%02u, xloadflags lacks XLF_KERNEL_64)", path,
		                    version >> 8, version & 0xFF);
	if (req->nmodules)
		return loader_error(l, -EINVAL, "%s: modules need a multiboot kernel (a bzImage "
		                    "takes one initrd)", path);

	/* The protected-mode kernel follows (setup_sects + 1) sectors; a
	 * setup_sects of 0 means 4. */
	uint64_t setup_sects = h[BZ_SETUP_SECTS] ? h[BZ_SETUP_SECTS] : 4;
	uint64_t setup_size = (setup_sects + 1) * 512;
	if (fsize <= setup_size)
		return loader_error(l, -ENOEXEC, "%s: truncated bzImage: no protected-mode kernel "
		                    "after %" PRIu64 " setup bytes", path, setup_size);
	uint64_t pm_size = fsize - setup_size;

	/* Load address: pref_address for a relocatable kernel when it is
	 * aligned and fits (it then need not move itself), else 1 MiB. The
	 * decompressor works in [max(load, pref_address), + init_size). */
	uint64_t init_size = have_210 ? ld32(h + BZ_INIT_SIZE) : 0;
	uint64_t pref = have_210 ? ld64(h + BZ_PREF_ADDRESS) : LOADER_1M;
	uint64_t kalign = ld32(h + BZ_KERNEL_ALIGN);
	uint64_t need = pm_size > init_size ? pm_size : init_size;
	uint64_t load = LOADER_1M;
	if (h[BZ_RELOCATABLE] && have_210 && pref > LOADER_1M && pref < l->vm->low_ram &&
	    need <= l->vm->low_ram - pref && (kalign == 0 || pref % kalign == 0))
		load = pref;
	uint64_t work = (pref > load && pref < LOADER_4G ? pref : load) + need;
	int ret = 0;
	if (work > l->vm->low_ram)
		ret = loader_error(l, -ENOMEM, "%s: the kernel needs 0x%" PRIx64 "-0x%" PRIx64
		                   " (init_size 0x%" PRIx64 ") which does not fit in guest RAM "
		                   "of %llu MiB", path, load, work, init_size, loader_ram_mib(l));
	if (ret == 0)
		ret = loader_claim(l, path, load, work - load, REGION_SEGMENT,
		                   "the kernel and its decompression area", NULL);
	if (ret == 0)
		ret = loader_file_to_guest(l, &l->kernel, setup_size, load, pm_size, "kernel");

	uint64_t rd = 0, rd_size = 0;
	if (ret == 0 && req->initrd_path) {
		uint64_t max = ld32(h + BZ_INITRD_ADDR_MAX);
		struct bz_initrd_place pl = {
			.limit = (max ? max : BZ_INITRD_MAX_DFLT) + 1,
			.floor = align_up(work, LOADER_PAGE),
		};
		if (pl.limit > l->vm->low_ram)
			pl.limit = l->vm->low_ram;
		ret = loader_load_module(l, req->initrd_path, "the initrd", bz_place_initrd, &pl,
		                         &rd, &rd_size);
	}

	/* Then the GDT, page tables, stack and the zero page: the setup header
	 * copied into zeroed boot_params. */
	uint64_t bp_gpa = 0, cl_gpa = 0;
	uint8_t *bp = NULL;
	char *cl = NULL;
	if (ret == 0)
		ret = loader_place_boot(l, true);
	if (ret == 0)
		ret = loader_info_alloc(l, BP_SIZE, LOADER_PAGE, "the zero page", &bp_gpa,
		                        (void **)&bp);
	if (ret < 0)
		return ret;
	size_t copy_end = hdr_end < BZ_HDR_COPY_MAX ? hdr_end : BZ_HDR_COPY_MAX;
	memcpy(bp + BZ_SETUP_SECTS, h + BZ_SETUP_SECTS, copy_end - BZ_SETUP_SECTS);

	const char *cmdline = req->cmdline ? req->cmdline : "";
	size_t cl_len = strlen(cmdline);
	uint32_t cl_max = ld32(h + BZ_CMDLINE_SIZE);
	if (cl_len > cl_max)
		return loader_error(l, -E2BIG, "%s: command line of %zu bytes is longer than the "
		                    "kernel's cmdline_size %u", path, cl_len, cl_max);
	ret = loader_info_alloc(l, cl_len + 1, 16, "the command line", &cl_gpa, (void **)&cl);
	if (ret < 0)
		return ret;
	memcpy(cl, cmdline, cl_len + 1);
	if (req->initrd_path) {
		st32(bp + BZ_RAMDISK_IMAGE, (uint32_t)rd);
		st32(bp + BZ_RAMDISK_SIZE, (uint32_t)rd_size);
	}

	bp[BZ_TYPE_OF_LOADER] = 0xFF; /* undefined boot loader */
	bp[BZ_LOADFLAGS] |= BZ_CAN_USE_HEAP;
	st16(bp + BZ_HEAP_END_PTR, BZ_HEAP_END);
	st32(bp + BZ_CMD_LINE_PTR, (uint32_t)cl_gpa);

	struct e820_entry map[BP_E820_MAX];
	size_t n = loader_memory_map(l->vm, map, BP_E820_MAX);
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = bp + BP_E820_TABLE + 20 * i; /* struct boot_e820_entry, packed */
		st64(e, map[i].addr);
		st64(e + 8, map[i].size);
		st32(e + 16, map[i].type);
	}

	/* boot.rst "64-bit BOOT PROTOCOL": entry at load + 0x200, %rsi the
	 * boot_params. */
	ret = loader_enter_long(l, load + BZ_ENTRY64_OFFSET, LONG_LINUX);
	if (ret < 0)
		return ret;
	l->out->regs.rsi = bp_gpa;
	return 0;
}

/* ---- PVH ---------------------------------------------------------------------- */

/* Modules (the initrd first) from the top of low RAM down, page-aligned. */
struct pvh_place {
	uint64_t top, floor;
};

static uint64_t pvh_place_module(struct loader *l, uint64_t size, void *arg)
{
	struct pvh_place *pl = arg;
	uint64_t at = size <= pl->top ? (pl->top - size) & ~(LOADER_PAGE - 1) : 0;
	if (size > pl->top || at < pl->floor) {
		loader_error(l, -ENOMEM, "%s: PVH module of 0x%" PRIx64 " bytes does not fit "
		             "between the kernel's end 0x%" PRIx64 " and 0x%" PRIx64 " (guest RAM "
		             "%llu MiB)", l->kernel.path, size, pl->floor, pl->top,
		             loader_ram_mib(l));
		return UINT64_MAX;
	}
	pl->top = at;
	return at;
}

static int pvh_string(struct loader *l, const char *s, const char *what, uint64_t *gpa)
{
	char *p;
	size_t n = strlen(s) + 1;
	int ret = loader_info_alloc(l, n, 8, what, gpa, (void **)&p);
	if (ret == 0)
		memcpy(p, s, n);
	return ret;
}

int linux_load_pvh(struct loader *l, struct elf_image *e, uint32_t entry)
{
	const struct boot_request *req = l->req;
	const char *path = l->kernel.path;
	uint64_t info_gpa = 0, cl_gpa = 0, map_gpa = 0, mods_gpa = 0;
	uint8_t *info = NULL, *mm = NULL, *mods = NULL;

	int ret = elf_load(l, e, UINT64_MAX);
	if (ret < 0)
		return ret;
	bool inside = false;
	for (size_t i = 0; i < e->phnum; i++) {
		const struct elf_phdr *p = &e->ph[i];
		if (p->type == ELF_PT_LOAD && entry >= p->paddr && entry - p->paddr < p->memsz)
			inside = true;
	}
	if (!inside)
		return loader_error(l, -ENOEXEC, "%s: PVH entry 0x%x is outside every loadable "
		                    "segment", path, entry);

	/* The modules (the initrd first), from the top of low RAM down. */
	size_t nmods = req->nmodules + (req->initrd_path ? 1 : 0);
	struct pvh_module {
		uint64_t at, size;
		const char *args;
	} *mod = calloc(nmods ? nmods : 1, sizeof(*mod));
	if (!mod)
		return loader_error(l, -ENOMEM, "%s: out of memory", path);
	struct pvh_place pl = {
		.top = l->vm->low_ram < LOADER_4G ? l->vm->low_ram : LOADER_4G,
		.floor = align_up(e->hi, LOADER_PAGE),
	};
	for (size_t i = 0; i < nmods && ret == 0; i++) {
		bool rd = i == 0 && req->initrd_path;
		const struct boot_module *bm = rd ? NULL : &req->modules[i - (req->initrd_path ? 1 : 0)];
		const char *mpath = rd ? req->initrd_path : bm->path;
		char what[64];
		mod[i].args = rd ? NULL : bm->args;
		if (!mpath) {
			ret = loader_error(l, -EINVAL, "%s: PVH module %zu has no file", path, i);
			break;
		}
		if (rd)
			snprintf(what, sizeof(what), "the initrd");
		else
			snprintf(what, sizeof(what), "PVH module %zu", i);
		ret = loader_load_module(l, mpath, what, pvh_place_module, &pl, &mod[i].at,
		                         &mod[i].size);
	}

	/* Then the GDT and stack, and hvm_start_info version 1 with the
	 * command line, memory map and module list it points to. */
	if (ret == 0)
		ret = loader_place_boot(l, false);
	if (ret == 0)
		ret = loader_info_alloc(l, PVH_INFO_SIZE, 8, "the PVH start_info", &info_gpa,
		                        (void **)&info);
	if (ret == 0)
		ret = pvh_string(l, req->cmdline ? req->cmdline : "", "the command line", &cl_gpa);
	struct e820_entry map[PVH_MAX_E820];
	size_t n = loader_memory_map(l->vm, map, PVH_MAX_E820);
	if (ret == 0)
		ret = loader_info_alloc(l, n * PVH_MEMMAP_SIZE, 8, "the PVH memory map", &map_gpa,
		                        (void **)&mm);
	if (ret == 0 && nmods)
		ret = loader_info_alloc(l, nmods * PVH_MOD_SIZE, 8, "the PVH module list",
		                        &mods_gpa, (void **)&mods);
	for (size_t i = 0; i < nmods && ret == 0; i++) {
		uint64_t mcl = 0;
		if (mod[i].args)
			ret = pvh_string(l, mod[i].args, "a module command line", &mcl);
		uint8_t *m = mods + i * PVH_MOD_SIZE; /* hvm_modlist_entry */
		st64(m, mod[i].at);
		st64(m + 8, mod[i].size);
		st64(m + 16, mcl);
	}
	free(mod);
	if (ret < 0)
		return ret;

	for (size_t i = 0; i < n; i++) {
		uint8_t *m = mm + i * PVH_MEMMAP_SIZE; /* hvm_memmap_table_entry */
		st64(m, map[i].addr);
		st64(m + 8, map[i].size);
		st32(m + 16, map[i].type); /* XEN_HVM_MEMMAP_TYPE_* are e820's */
	}

	st32(info, PVH_MAGIC);
	st32(info + 4, 1);            /* version */
	st32(info + 8, 0);            /* flags */
	st32(info + 12, (uint32_t)nmods);
	st64(info + 16, mods_gpa);    /* modlist_paddr */
	st64(info + 24, cl_gpa);      /* cmdline_paddr */
	st64(info + 32, 0);           /* rsdp_paddr: 0, the kernel scans 0xE0000-0xFFFFF */
	st64(info + 40, map_gpa);     /* memmap_paddr */
	st32(info + 48, (uint32_t)n); /* memmap_entries */

	/* pvh.pandoc: 32-bit protected mode, paging off, EBX = start_info. */
	ret = loader_enter_prot32(l, entry);
	if (ret < 0)
		return ret;
	l->out->regs.rbx = info_gpa;
	return 0;
}
