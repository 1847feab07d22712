/* multiboot.c: multiboot v1 kernels (ELF32, ELF64 or a.out kludge), their
 * modules and the multiboot information (Multiboot Specification 0.6.96). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "loader_priv.h"

/* clang-format off */
#define MB_HEADER_MAGIC   0x1BADB002u /* 3.1.2 */
#define MB_BOOT_MAGIC     0x2BADB002u /* 3.2: in EAX at entry */
#define MB_SEARCH         8192u       /* 3.1: header within the first 8 KiB */
#define MB_FLAG_ALIGN     (1u << 0)   /* 3.1.2: page-align modules */
#define MB_FLAG_MEMINFO   (1u << 1)   /* mem_* and mmap_* required */
#define MB_FLAG_VIDEO     (1u << 2)   /* video mode table wanted */
#define MB_FLAG_AOUT      (1u << 16)  /* address fields valid: a.out kludge */
#define MB_FLAG_KNOWN_REQ (MB_FLAG_ALIGN | MB_FLAG_MEMINFO | MB_FLAG_VIDEO)

/* 3.3: multiboot_info flags and layout. */
#define MBI_MEM           (1u << 0)
#define MBI_CMDLINE       (1u << 2)
#define MBI_MODS          (1u << 3)
#define MBI_MMAP          (1u << 6)
#define MBI_LOADER_NAME   (1u << 9)
#define MBI_SIZE          120u        /* 116 bytes of fields, rounded up */
#define MBI_OFF_FLAGS     0
#define MBI_OFF_MEM_LOWER 4
#define MBI_OFF_MEM_UPPER 8
#define MBI_OFF_CMDLINE   16
#define MBI_OFF_MODS_CNT  20
#define MBI_OFF_MODS_ADDR 24
#define MBI_OFF_MMAP_LEN  44
#define MBI_OFF_MMAP_ADDR 48
#define MBI_OFF_LOADER    64
#define MB_MMAP_ENTRY     24u         /* size field (4) + 20 bytes it counts */
#define MB_MOD_ENTRY      16u         /* mod_start, mod_end, string, reserved */
#define MB_MAX_E820       16u
#define MB_LOADER_NAME    "zhv"
/* clang-format on */

int multiboot_find(const struct loader *l, struct multiboot_header *h, uint32_t *bad_offset)
{
	int bad = 0;
	size_t len = l->headlen < MB_SEARCH ? l->headlen : MB_SEARCH;

	/* 3.1: longword aligned; magic + flags + checksum == 0 (mod 2^32). */
	for (size_t off = 0; off + 12 <= len; off += 4) {
		const uint8_t *p = l->head + off;
		if (ld32(p) != MB_HEADER_MAGIC)
			continue;
		uint32_t flags = ld32(p + 4);
		if ((uint32_t)(MB_HEADER_MAGIC + flags + ld32(p + 8)) != 0) {
			if (!bad)
				*bad_offset = (uint32_t)off;
			bad = 1;
			continue;
		}
		memset(h, 0, sizeof(*h));
		h->offset = (uint32_t)off;
		h->flags = flags;
		if (off + 32 <= len) {
			h->header_addr = ld32(p + 12);
			h->load_addr = ld32(p + 16);
			h->load_end_addr = ld32(p + 20);
			h->bss_end_addr = ld32(p + 24);
			h->entry_addr = ld32(p + 28);
		}
		return 1;
	}
	return bad ? -1 : 0;
}

/* 3.1.3: the a.out kludge: the header's address fields say what to load. */
static int mb_load_aout(struct loader *l, const struct multiboot_header *h, uint64_t *end,
                        uint32_t *entry)
{
	const char *path = l->kernel.path;
	uint64_t fsize = l->kernel.size;

	if (h->offset + 32 > l->headlen || h->offset + 32 > MB_SEARCH)
		return loader_error(l, -ENOEXEC, "%s: not a multiboot kernel: truncated header "
		                    "(flag 16 needs the address fields)", path);
	if (h->header_addr < h->load_addr || h->header_addr - h->load_addr > h->offset)
		return loader_error(l, -ENOEXEC, "%s: multiboot: header_addr 0x%x and load_addr "
		                    "0x%x do not match the header's file offset 0x%x", path,
		                    h->header_addr, h->load_addr, h->offset);
	uint64_t text = h->offset - (h->header_addr - h->load_addr);
	uint64_t load_size;
	if (h->load_end_addr == 0) {
		load_size = fsize - text;
	} else {
		if (h->load_end_addr < h->load_addr)
			return loader_error(l, -ENOEXEC, "%s: multiboot: load_end_addr 0x%x is "
			                    "below load_addr 0x%x", path, h->load_end_addr,
			                    h->load_addr);
		load_size = h->load_end_addr - h->load_addr;
		if (load_size > fsize - text)
			return loader_error(l, -ENOEXEC, "%s: multiboot: load_end_addr 0x%x is "
			                    "past the end of the file", path, h->load_end_addr);
	}
	uint64_t mem_end = h->load_addr + load_size;
	if (h->bss_end_addr) {
		if (h->bss_end_addr < mem_end)
			return loader_error(l, -ENOEXEC, "%s: multiboot: bss_end_addr 0x%x is "
			                    "below the end of the loaded image 0x%" PRIx64, path,
			                    h->bss_end_addr, mem_end);
		mem_end = h->bss_end_addr;
	}
	if (mem_end > LOADER_4G)
		return loader_error(l, -ENOEXEC, "%s: multiboot: image at 0x%x (0x%" PRIx64
		                    " bytes) does not fit below 4 GiB", path, h->load_addr,
		                    load_size);
	if (h->entry_addr < h->load_addr || h->entry_addr >= mem_end)
		return loader_error(l, -ENOEXEC, "%s: multiboot: entry_addr 0x%x is outside the "
		                    "loaded image 0x%x-0x%" PRIx64, path, h->entry_addr,
		                    h->load_addr, mem_end);

	uint8_t *p;
	int ret = loader_claim(l, path, h->load_addr, mem_end - h->load_addr, REGION_SEGMENT,
	                       "the kernel image", (void **)&p);
	if (ret < 0)
		return ret;
	ret = loader_file_read(l, &l->kernel, text, p, load_size, "kernel image");
	if (ret < 0)
		return ret;
	memset(p + load_size, 0, mem_end - h->load_addr - load_size); /* bss */
	*end = mem_end;
	*entry = h->entry_addr;
	return 0;
}

/* 3.1.3, no flag 16: an ELF32 or ELF64 loaded by its program headers. */
static int mb_load_elf(struct loader *l, uint64_t *end, uint32_t *entry)
{
	const char *path = l->kernel.path;
	struct elf_image e;

	if (!elf_is_elf(l))
		return loader_error(l, -ENOEXEC, "%s: multiboot: not an ELF file and the header "
		                    "has no address fields (flag 16)", path);
	int ret = elf_parse(l, &e);
	if (ret < 0)
		return ret;
	uint16_t want = e.elf_class == ELF_CLASS32 ? ELF_EM_386 : ELF_EM_X86_64;
	uint64_t paddr = 0;
	if (e.machine != want)
		ret = loader_error(l, -ENOEXEC, "%s: multiboot: ELF machine %u is not x86",
		                   path, e.machine);
	if (ret == 0)
		ret = elf_load(l, &e, LOADER_4G);
	if (ret == 0)
		ret = elf_entry_paddr(l, &e, &paddr);
	if (ret == 0 && paddr >= LOADER_4G)
		ret = loader_error(l, -ENOEXEC, "%s: multiboot: entry point 0x%" PRIx64
		                   " is above 4 GiB", path, paddr);
	if (ret == 0) {
		*end = e.hi;
		*entry = (uint32_t)paddr;
	}
	elf_free(&e);
	return ret;
}

/* Modules go one after the other, page-aligned (flag 0), after the kernel. */
static uint64_t mb_place_module(struct loader *l, uint64_t size, void *arg)
{
	uint64_t *next = arg;
	uint64_t at = align_up(*next, LOADER_PAGE);
	if (size > LOADER_4G || at + size > LOADER_4G) {
		loader_error(l, -ENOMEM, "%s: multiboot module of 0x%" PRIx64 " bytes does not fit "
		             "below 4 GiB", l->kernel.path, size);
		return UINT64_MAX;
	}
	*next = at + size;
	return at;
}

/* "path args" (3.3: a module's string; QEMU's and GRUB's command line). */
static size_t mb_string_len(const char *path, const char *args)
{
	return strlen(path) + (args && args[0] ? 1 + strlen(args) : 0) + 1;
}

static void mb_string(char *dst, const char *path, const char *args)
{
	if (args && args[0])
		sprintf(dst, "%s %s", path, args);
	else
		strcpy(dst, path);
}

struct mb_module {
	const char *path, *args;
	uint64_t start, size;
};

int multiboot_load(struct loader *l, const struct multiboot_header *h)
{
	const struct boot_request *req = l->req;
	const char *path = l->kernel.path;
	uint64_t kernel_end = 0;
	uint32_t entry = 0;
	int ret;

	uint32_t unknown = h->flags & 0xFFFFu & ~MB_FLAG_KNOWN_REQ;
	if (unknown)
		return loader_error(l, -ENOEXEC, "%s: multiboot: unsupported required flags 0x%x",
		                    path, unknown);
	/* Flag 2 (video mode): like QEMU, boot without video information. */
	if (h->flags & MB_FLAG_AOUT)
		ret = mb_load_aout(l, h, &kernel_end, &entry);
	else
		ret = mb_load_elf(l, &kernel_end, &entry);
	if (ret < 0)
		return ret;

	/* Modules: the initrd first (as QEMU's -initrd), then --module. */
	size_t nmods = req->nmodules + (req->initrd_path ? 1 : 0);
	struct mb_module *mods = calloc(nmods ? nmods : 1, sizeof(*mods));
	if (!mods)
		return loader_error(l, -ENOMEM, "%s: out of memory", path);
	size_t m = 0;
	if (req->initrd_path)
		mods[m++] = (struct mb_module){.path = req->initrd_path};
	for (size_t i = 0; i < req->nmodules; i++)
		mods[m++] = (struct mb_module){.path = req->modules[i].path,
		                               .args = req->modules[i].args};
	uint64_t next = kernel_end > LOADER_1M ? kernel_end : LOADER_1M;
	for (size_t i = 0; i < nmods && ret == 0; i++) {
		char what[64];
		if (!mods[i].path) {
			ret = loader_error(l, -EINVAL, "%s: multiboot module %zu has no file",
			                   path, i);
			break;
		}
		snprintf(what, sizeof(what), "multiboot module %zu", i);
		ret = loader_load_module(l, mods[i].path, what, mb_place_module, &next,
		                         &mods[i].start, &mods[i].size);
	}

	/* The information block: mbi, memory map, module list, strings. */
	struct e820_entry map[MB_MAX_E820];
	size_t nmap = loader_memory_map(l->vm, map, MB_MAX_E820);
	const char *cmdargs = req->cmdline;
	uint64_t off_mmap = MBI_SIZE;
	uint64_t off_mods = off_mmap + nmap * MB_MMAP_ENTRY;
	uint64_t off_str = off_mods + nmods * MB_MOD_ENTRY;
	uint64_t total = off_str + sizeof(MB_LOADER_NAME) + mb_string_len(path, cmdargs);
	for (size_t i = 0; i < nmods; i++)
		total += mb_string_len(mods[i].path ? mods[i].path : "", mods[i].args);

	/* Now that the kernel and its modules are in place: the GDT and
	 * stack, then the information, where neither is (loader.h). */
	uint64_t base = 0;
	uint8_t *mbi = NULL;
	if (ret == 0)
		ret = loader_place_boot(l, false);
	if (ret == 0)
		ret = loader_info_alloc(l, total, 16, "the multiboot information", &base,
		                        (void **)&mbi);
	if (ret < 0) {
		free(mods);
		return ret;
	}

	uint64_t low = l->vm->low_ram;
	uint64_t mem_lower = (low < LOADER_BIOS ? low : LOADER_BIOS) >> 10;
	uint64_t mem_upper = low > LOADER_1M ? (low - LOADER_1M) >> 10 : 0;
	st32(mbi + MBI_OFF_FLAGS, MBI_MEM | MBI_CMDLINE | MBI_MODS | MBI_MMAP | MBI_LOADER_NAME);
	st32(mbi + MBI_OFF_MEM_LOWER, (uint32_t)mem_lower);
	st32(mbi + MBI_OFF_MEM_UPPER, (uint32_t)mem_upper);

	for (size_t i = 0; i < nmap; i++) {
		uint8_t *e = mbi + off_mmap + i * MB_MMAP_ENTRY;
		st32(e, MB_MMAP_ENTRY - 4); /* size of the rest of the entry */
		st64(e + 4, map[i].addr);
		st64(e + 12, map[i].size);
		st32(e + 20, map[i].type);
	}
	st32(mbi + MBI_OFF_MMAP_LEN, (uint32_t)(nmap * MB_MMAP_ENTRY));
	st32(mbi + MBI_OFF_MMAP_ADDR, (uint32_t)(base + off_mmap));

	uint64_t s = off_str;
	memcpy(mbi + s, MB_LOADER_NAME, sizeof(MB_LOADER_NAME));
	st32(mbi + MBI_OFF_LOADER, (uint32_t)(base + s));
	s += sizeof(MB_LOADER_NAME);
	mb_string((char *)mbi + s, path, cmdargs);
	st32(mbi + MBI_OFF_CMDLINE, (uint32_t)(base + s));
	s += mb_string_len(path, cmdargs);

	for (size_t i = 0; i < nmods; i++) {
		uint8_t *e = mbi + off_mods + i * MB_MOD_ENTRY;
		st32(e, (uint32_t)mods[i].start);
		st32(e + 4, (uint32_t)(mods[i].start + mods[i].size)); /* exclusive end */
		mb_string((char *)mbi + s, mods[i].path, mods[i].args);
		st32(e + 8, (uint32_t)(base + s));
		s += mb_string_len(mods[i].path, mods[i].args);
	}
	st32(mbi + MBI_OFF_MODS_CNT, (uint32_t)nmods);
	st32(mbi + MBI_OFF_MODS_ADDR, (uint32_t)(base + off_mods));
	free(mods);

	/* 3.2 machine state: 32-bit protected mode, paging off, EAX magic,
	 * EBX the information's physical address. */
	ret = loader_enter_prot32(l, entry);
	if (ret < 0)
		return ret;
	l->out->regs.rax = MB_BOOT_MAGIC;
	l->out->regs.rbx = base;
	return 0;
}
