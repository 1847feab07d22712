/* elf.c: ELF32/ELF64 header and program-header parsing, segment placement
 * and note lookup shared by the loaders, and plain ELF64 kernels. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "loader_priv.h"

/* clang-format off */
/* System V gABI, "ELF Header" and "Program Header". */
#define ELF_EI_CLASS   4
#define ELF_EI_DATA    5
#define ELF_DATA_LSB   1
#define ELF_ET_EXEC    2
#define ELF_ET_DYN     3
#define ELF_PN_XNUM    0xFFFF
#define ELF32_EHDR     52
#define ELF64_EHDR     64
#define ELF32_PHDR     32
#define ELF64_PHDR     56
#define ELF64_SHDR     64
/* Xen public/elfnote.h: the PVH 32-bit entry (docs/misc/pvh.pandoc). */
#define ELF_XEN_PHYS32_ENTRY 18
/* clang-format on */

bool elf_is_elf(const struct loader *l)
{
	return l->headlen >= 4 && memcmp(l->head, "\177ELF", 4) == 0;
}

void elf_free(struct elf_image *e)
{
	free(e->ph);
	e->ph = NULL;
	e->phnum = 0;
}

int elf_parse(struct loader *l, struct elf_image *e)
{
	const char *path = l->kernel.path;
	const uint8_t *h = l->head;

	memset(e, 0, sizeof(*e));
	if (l->headlen < ELF_EI_DATA + 1)
		return loader_error(l, -ENOEXEC, "%s: not an ELF file: truncated header", path);
	e->elf_class = h[ELF_EI_CLASS];
	if (e->elf_class != ELF_CLASS32 && e->elf_class != ELF_CLASS64)
		return loader_error(l, -ENOEXEC, "%s: not an ELF file: unknown class %u", path,
		                    h[ELF_EI_CLASS]);
	if (h[ELF_EI_DATA] != ELF_DATA_LSB)
		return loader_error(l, -ENOEXEC, "%s: ELF is not little-endian", path);
	bool is64 = e->elf_class == ELF_CLASS64;
	size_t ehsize = is64 ? ELF64_EHDR : ELF32_EHDR;
	if (l->headlen < ehsize)
		return loader_error(l, -ENOEXEC, "%s: not an ELF file: truncated header (%zu of "
		                    "%zu bytes)", path, l->headlen, ehsize);

	uint16_t type = ld16(h + 16);
	e->machine = ld16(h + 18);
	uint64_t phoff;
	uint16_t phentsize, phnum;
	if (is64) {
		e->entry = ld64(h + 24);
		phoff = ld64(h + 32);
		e->shoff = ld64(h + 40);
		phentsize = ld16(h + 54);
		phnum = ld16(h + 56);
		e->shentsize = ld16(h + 58);
		e->shnum = ld16(h + 60);
	} else {
		e->entry = ld32(h + 24);
		phoff = ld32(h + 28);
		e->shoff = ld32(h + 32);
		phentsize = ld16(h + 42);
		phnum = ld16(h + 44);
		e->shentsize = ld16(h + 46);
		e->shnum = ld16(h + 48);
	}
	if (type != ELF_ET_EXEC && type != ELF_ET_DYN)
		return loader_error(l, -ENOEXEC, "%s: ELF type %u is not an executable", path,
		                    type);
	if (phnum == 0)
		return loader_error(l, -ENOEXEC, "%s: ELF has no program headers", path);
	if (phnum == ELF_PN_XNUM)
		return loader_error(l, -ENOEXEC, "%s: ELF with extended program header numbering "
		                    "is not supported", path);
	size_t want = is64 ? ELF64_PHDR : ELF32_PHDR;
	if (phentsize < want)
		return loader_error(l, -ENOEXEC, "%s: ELF e_phentsize %u is too small (%zu)", path,
		                    phentsize, want);
	uint64_t table = (uint64_t)phentsize * phnum, table_end;
	if (__builtin_add_overflow(phoff, table, &table_end) || table_end > l->kernel.size)
		return loader_error(l, -ENOEXEC, "%s: program header table (0x%" PRIx64 " bytes at "
		                    "offset 0x%" PRIx64 ") outside file of 0x%" PRIx64 " bytes",
		                    path, table, phoff, l->kernel.size);

	e->ph = calloc(phnum, sizeof(*e->ph));
	if (!e->ph)
		return loader_error(l, -ENOMEM, "%s: out of memory", path);
	e->phnum = phnum;
	for (size_t i = 0; i < phnum; i++) {
		uint8_t b[ELF64_PHDR];
		struct elf_phdr *p = &e->ph[i];
		int ret = loader_file_read(l, &l->kernel, phoff + i * phentsize, b, want,
		                           "program header");
		if (ret < 0) {
			elf_free(e);
			return ret;
		}
		p->type = ld32(b);
		if (is64) {
			p->flags = ld32(b + 4);
			p->offset = ld64(b + 8);
			p->vaddr = ld64(b + 16);
			p->paddr = ld64(b + 24);
			p->filesz = ld64(b + 32);
			p->memsz = ld64(b + 40);
		} else {
			p->offset = ld32(b + 4);
			p->vaddr = ld32(b + 8);
			p->paddr = ld32(b + 12);
			p->filesz = ld32(b + 16);
			p->memsz = ld32(b + 20);
			p->flags = ld32(b + 24);
		}
	}
	return 0;
}

/* Check PT_LOAD (p), named (what), against the file and guest RAM. */
static int elf_check_segment(struct loader *l, const struct elf_phdr *p, const char *what,
                             uint64_t limit)
{
	const char *path = l->kernel.path;
	uint64_t end, fend;

	if (p->filesz > p->memsz)
		return loader_error(l, -ENOEXEC, "%s: %s: p_filesz 0x%" PRIx64 " exceeds p_memsz "
		                    "0x%" PRIx64, path, what, p->filesz, p->memsz);
	if (__builtin_add_overflow(p->offset, p->filesz, &fend) || fend > l->kernel.size)
		return loader_error(l, -ENOEXEC, "%s: %s: data (0x%" PRIx64 " bytes at offset 0x%"
		                    PRIx64 ") outside file of 0x%" PRIx64 " bytes", path, what,
		                    p->filesz, p->offset, l->kernel.size);
	if (__builtin_add_overflow(p->paddr, p->memsz, &end))
		return loader_error(l, -ENOEXEC, "%s: %s at 0x%" PRIx64 ": p_memsz 0x%" PRIx64
		                    " overflows the address space", path, what, p->paddr, p->memsz);
	if (end > limit)
		return loader_error(l, -ENOEXEC, "%s: %s at 0x%" PRIx64 "-0x%" PRIx64 " is above "
		                    "4 GiB (32-bit entry)", path, what, p->paddr, end);
	if (!vm_gpa(l->vm, p->paddr, p->memsz))
		return loader_error(l, -ENOMEM, "%s: %s at 0x%" PRIx64 "-0x%" PRIx64
		                    " does not fit in guest RAM of %llu MiB", path, what, p->paddr,
		                    end, loader_ram_mib(l));
	return 0;
}

int elf_load(struct loader *l, struct elf_image *e, uint64_t limit)
{
	const char *path = l->kernel.path;
	char what[64];
	size_t loaded = 0;
	int ret;

	/* Check every segment before writing any: a bad file leaves RAM as is. */
	for (size_t i = 0; i < e->phnum; i++) {
		if (e->ph[i].type != ELF_PT_LOAD || e->ph[i].memsz == 0)
			continue;
		snprintf(what, sizeof(what), "segment %zu", i);
		ret = elf_check_segment(l, &e->ph[i], what, limit);
		if (ret < 0)
			return ret;
		loaded++;
	}
	if (!loaded)
		return loader_error(l, -ENOEXEC, "%s: ELF has no loadable segment", path);

	e->lo = UINT64_MAX;
	e->hi = 0;
	for (size_t i = 0; i < e->phnum; i++) {
		const struct elf_phdr *p = &e->ph[i];
		uint8_t *dst;
		if (p->type != ELF_PT_LOAD || p->memsz == 0)
			continue;
		snprintf(what, sizeof(what), "segment %zu", i);
		ret = loader_claim(l, path, p->paddr, p->memsz, REGION_SEGMENT, what,
		                   (void **)&dst);
		if (ret == 0)
			ret = loader_file_read(l, &l->kernel, p->offset, dst, p->filesz, what);
		if (ret < 0)
			return ret;
		memset(dst + p->filesz, 0, p->memsz - p->filesz); /* bss */
		if (p->paddr < e->lo)
			e->lo = p->paddr;
		if (p->paddr + p->memsz > e->hi)
			e->hi = p->paddr + p->memsz;
	}
	return 0;
}

static bool elf_in(uint64_t addr, uint64_t base, uint64_t size)
{
	return addr >= base && addr - base < size;
}

int elf_entry_paddr(struct loader *l, const struct elf_image *e, uint64_t *paddr)
{
	for (size_t i = 0; i < e->phnum; i++) {
		const struct elf_phdr *p = &e->ph[i];
		if (p->type == ELF_PT_LOAD && elf_in(e->entry, p->paddr, p->memsz)) {
			*paddr = e->entry;
			return 0;
		}
	}
	for (size_t i = 0; i < e->phnum; i++) {
		const struct elf_phdr *p = &e->ph[i];
		if (p->type == ELF_PT_LOAD && elf_in(e->entry, p->vaddr, p->memsz)) {
			*paddr = p->paddr + (e->entry - p->vaddr);
			return 0;
		}
	}
	return loader_error(l, -ENOEXEC, "%s: ELF entry point 0x%" PRIx64 " is outside every "
	                    "loadable segment", l->kernel.path, e->entry);
}

/* Walk the notes in [off, off + size) of the file (gABI "Note Section":
 * namesz, descsz, type, then name and desc each padded to 4 bytes). */
static int elf_scan_notes(struct loader *l, uint64_t off, uint64_t size, uint32_t *entry)
{
	const char *path = l->kernel.path;
	uint64_t end;

	if (__builtin_add_overflow(off, size, &end) || end > l->kernel.size)
		return loader_error(l, -ENOEXEC, "%s: ELF note (0x%" PRIx64 " bytes at offset 0x%"
		                    PRIx64 ") outside file", path, size, off);
	while (end - off >= 12) {
		uint8_t nh[12];
		int ret = loader_file_read(l, &l->kernel, off, nh, 12, "ELF note");
		if (ret < 0)
			return ret;
		uint64_t namesz = ld32(nh), descsz = ld32(nh + 4);
		uint32_t type = ld32(nh + 8);
		uint64_t name_off = off + 12;
		uint64_t desc_off = name_off + align_up(namesz, 4);
		uint64_t next = desc_off + align_up(descsz, 4);
		if (next > end) /* a malformed tail ends the walk */
			break;
		char name[4];
		if (namesz == 4 && type == ELF_XEN_PHYS32_ENTRY) {
			ret = loader_file_read(l, &l->kernel, name_off, name, 4, "ELF note");
			if (ret < 0)
				return ret;
		}
		if (namesz == 4 && type == ELF_XEN_PHYS32_ENTRY && memcmp(name, "Xen", 4) == 0) {
			/* Linux emits the entry as a pointer-sized value (.quad
			 * on x86-64), others as 32 bits: it is physical either way. */
			uint8_t d[8];
			if (descsz != 4 && descsz != 8)
				return loader_error(l, -ENOEXEC, "%s: PVH entry note has a %" PRIu64
				                    "-byte value (want 4 or 8)", path, descsz);
			ret = loader_file_read(l, &l->kernel, desc_off, d, descsz, "ELF note");
			if (ret < 0)
				return ret;
			uint64_t v = descsz == 4 ? ld32(d) : ld64(d);
			if (v >= LOADER_4G)
				return loader_error(l, -ENOEXEC, "%s: PVH entry 0x%" PRIx64
				                    " is above 4 GiB", path, v);
			*entry = (uint32_t)v;
			return 1;
		}
		off = next;
	}
	return 0;
}

int elf_find_pvh_entry(struct loader *l, const struct elf_image *e, uint32_t *entry)
{
	const char *path = l->kernel.path;
	int ret;

	for (size_t i = 0; i < e->phnum; i++) {
		const struct elf_phdr *p = &e->ph[i];
		if (p->type != ELF_PT_NOTE)
			continue;
		ret = elf_scan_notes(l, p->offset, p->filesz, entry);
		if (ret != 0)
			return ret;
	}
	if (e->elf_class != ELF_CLASS64 || e->shoff == 0 || e->shnum == 0)
		return 0;
	/* No PT_NOTE had it: the SHT_NOTE sections (.note.*). */
	if (e->shentsize < ELF64_SHDR)
		return loader_error(l, -ENOEXEC, "%s: ELF e_shentsize %u is too small", path,
		                    e->shentsize);
	uint64_t table = (uint64_t)e->shentsize * e->shnum, table_end;
	if (__builtin_add_overflow(e->shoff, table, &table_end) || table_end > l->kernel.size)
		return loader_error(l, -ENOEXEC, "%s: section header table (0x%" PRIx64 " bytes at "
		                    "offset 0x%" PRIx64 ") outside file of 0x%" PRIx64 " bytes",
		                    path, table, e->shoff, l->kernel.size);
	for (size_t i = 0; i < e->shnum; i++) {
		uint8_t s[ELF64_SHDR];
		ret = loader_file_read(l, &l->kernel, e->shoff + i * e->shentsize, s, sizeof(s),
		                       "section header");
		if (ret < 0)
			return ret;
		if (ld32(s + 4) != ELF_SHT_NOTE) /* sh_type */
			continue;
		ret = elf_scan_notes(l, ld64(s + 24), ld64(s + 32), entry); /* sh_offset, sh_size */
		if (ret != 0)
			return ret;
	}
	return 0;
}

/* A plain ELF64: segments at p_paddr, 64-bit mode at e_entry on identity
 * page tables, RSP at the top of the boot stack, RDI = RSI = 0. */
int elf_load_elf64(struct loader *l, struct elf_image *e)
{
	const char *path = l->kernel.path;
	uint64_t entry;

	if (l->req->initrd_path || l->req->nmodules)
		return loader_error(l, -EINVAL, "%s: a plain ELF64 kernel takes no initrd or "
		                    "modules (no boot protocol to pass them)", path);
	int ret = loader_reserve_long(l);
	if (ret == 0)
		ret = elf_load(l, e, UINT64_MAX);
	if (ret == 0)
		ret = elf_entry_paddr(l, e, &entry);
	if (ret == 0)
		ret = loader_enter_long(l, entry, LONG_PLAIN);
	return ret;
}
