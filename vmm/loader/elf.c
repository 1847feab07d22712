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
/* Header tables larger than 65535 entries of 256 bytes are refused. */
#define ELF_TABLE_MAX  (16ull << 20)
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

	/* The whole table in one read. */
	if (table > ELF_TABLE_MAX)
		return loader_error(l, -E2BIG, "%s: program header table of 0x%" PRIx64 " bytes is "
		                    "too large (at most 0x%llx)", path, table,
		                    (unsigned long long)ELF_TABLE_MAX);
	uint8_t *tab = malloc(table);
	e->ph = calloc(phnum, sizeof(*e->ph));
	if (!tab || !e->ph) {
		free(tab);
		elf_free(e);
		return loader_error(l, -ENOMEM, "%s: out of memory", path);
	}
	int ret = loader_file_read(l, &l->kernel, phoff, tab, table, "program header table");
	if (ret < 0) {
		free(tab);
		elf_free(e);
		return ret;
	}
	e->phnum = phnum;
	for (size_t i = 0; i < phnum; i++) {
		const uint8_t *b = tab + i * phentsize;
		struct elf_phdr *p = &e->ph[i];
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
	free(tab);
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

struct elf_span {
	uint64_t start, end;
};

static int cmp_span(const void *a, const void *b)
{
	const struct elf_span *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Segments may share bytes (linkers share pages between segments), but
 * every shared byte is copied again: at most LOADER_SEGMENT_OVERLAP bytes
 * in all, so that the copy stays about the size of guest RAM. */
static int elf_check_overlap(struct loader *l, const struct elf_image *e, size_t loaded)
{
	struct elf_span *s = malloc(loaded * sizeof(*s));
	if (!s)
		return loader_error(l, -ENOMEM, "%s: out of memory", l->kernel.path);
	size_t n = 0;
	for (size_t i = 0; i < e->phnum; i++)
		if (e->ph[i].type == ELF_PT_LOAD && e->ph[i].memsz)
			s[n++] = (struct elf_span){e->ph[i].paddr, e->ph[i].paddr + e->ph[i].memsz};
	qsort(s, n, sizeof(*s), cmp_span);
	uint64_t shared = 0, reach = 0;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && s[i].start < reach)
			shared += (s[i].end < reach ? s[i].end : reach) - s[i].start;
		if (s[i].end > reach)
			reach = s[i].end;
		if (shared > LOADER_SEGMENT_OVERLAP)
			break;
	}
	free(s);
	if (shared > LOADER_SEGMENT_OVERLAP)
		return loader_error(l, -ENOEXEC, "%s: ELF segments overlap each other by more than "
		                    "%llu MiB in all", l->kernel.path,
		                    (unsigned long long)(LOADER_SEGMENT_OVERLAP >> 20));
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
	ret = elf_check_overlap(l, e, loaded);
	if (ret < 0)
		return ret;

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

/* Walk the notes in (buf, size), read from the file (gABI "Note Section":
 * namesz, descsz, type, then name and desc each padded to 4 bytes). */
static int elf_scan_notes(struct loader *l, const uint8_t *buf, uint64_t size, uint32_t *entry)
{
	const char *path = l->kernel.path;
	uint64_t off = 0;

	while (size - off >= 12) {
		const uint8_t *nh = buf + off;
		uint64_t namesz = ld32(nh), descsz = ld32(nh + 4);
		uint32_t type = ld32(nh + 8);
		uint64_t name_off = off + 12;
		uint64_t desc_off = name_off + align_up(namesz, 4);
		uint64_t next = desc_off + align_up(descsz, 4);
		if (next > size) /* a malformed tail ends the walk */
			break;
		if (namesz == 4 && type == ELF_XEN_PHYS32_ENTRY &&
		    memcmp(buf + name_off, "Xen", 4) == 0) {
			/* Linux emits the entry as a pointer-sized value (.quad
			 * on x86-64), others as 32 bits: it is physical either way. */
			if (descsz != 4 && descsz != 8)
				return loader_error(l, -ENOEXEC, "%s: PVH entry note has a %" PRIu64
				                    "-byte value (want 4 or 8)", path, descsz);
			uint64_t v = descsz == 4 ? ld32(buf + desc_off) : ld64(buf + desc_off);
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

/* A region of the file that holds notes (a PT_NOTE or a SHT_NOTE). */
struct elf_note_region {
	uint64_t off, size;
	size_t order; /* where it was found: the first region with the entry wins */
	bool dup;     /* the same bytes as an earlier region: not read again */
};

static int cmp_note_region(const void *a, const void *b)
{
	const struct elf_note_region *x = a, *y = b;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_note_order(const void *a, const void *b)
{
	const struct elf_note_region *x = a, *y = b;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Read each distinct note region once, at most LOADER_NOTE_BUDGET bytes
 * in all, and walk it in memory, in the order the regions were found. */
static int elf_scan_regions(struct loader *l, struct elf_note_region *r, size_t n,
                            uint32_t *entry)
{
	const char *path = l->kernel.path;
	qsort(r, n, sizeof(*r), cmp_note_region);
	for (size_t i = 1; i < n; i++)
		r[i].dup = r[i].off == r[i - 1].off && r[i].size == r[i - 1].size;
	qsort(r, n, sizeof(*r), cmp_note_order);
	for (size_t i = 0; i < n; i++) {
		uint64_t end;
		if (r[i].dup)
			continue;
		if (__builtin_add_overflow(r[i].off, r[i].size, &end) || end > l->kernel.size)
			return loader_error(l, -ENOEXEC, "%s: ELF note (0x%" PRIx64 " bytes at offset 0x%"
			                    PRIx64 ") outside file", path, r[i].size, r[i].off);
		if (r[i].size < 12)
			continue;
		if (r[i].size > LOADER_NOTE_BUDGET - l->note_bytes)
			return loader_error(l, -E2BIG, "%s: ELF notes of more than %llu MiB in all",
			                    path, (unsigned long long)(LOADER_NOTE_BUDGET >> 20));
		l->note_bytes += r[i].size;
		uint8_t *buf = malloc(r[i].size);
		if (!buf)
			return loader_error(l, -ENOMEM, "%s: out of memory", path);
		int ret = loader_file_read(l, &l->kernel, r[i].off, buf, r[i].size, "ELF note");
		if (ret == 0)
			ret = elf_scan_notes(l, buf, r[i].size, entry);
		free(buf);
		if (ret != 0)
			return ret;
	}
	return 0;
}

int elf_find_pvh_entry(struct loader *l, const struct elf_image *e, uint32_t *entry)
{
	const char *path = l->kernel.path;
	struct elf_note_region *r = NULL;
	size_t n = 0;
	int ret;

	/* The PT_NOTE segments first, then (if none has the entry) the
	 * SHT_NOTE sections (.note.*). */
	for (size_t i = 0; i < e->phnum; i++)
		n += e->ph[i].type == ELF_PT_NOTE;
	if (n) {
		r = calloc(n, sizeof(*r));
		if (!r)
			return loader_error(l, -ENOMEM, "%s: out of memory", path);
		n = 0;
		for (size_t i = 0; i < e->phnum; i++)
			if (e->ph[i].type == ELF_PT_NOTE) {
				r[n] = (struct elf_note_region){e->ph[i].offset, e->ph[i].filesz, n, false};
				n++;
			}
		ret = elf_scan_regions(l, r, n, entry);
		free(r);
		if (ret != 0)
			return ret;
	}
	if (e->elf_class != ELF_CLASS64 || e->shoff == 0 || e->shnum == 0)
		return 0;
	if (e->shentsize < ELF64_SHDR)
		return loader_error(l, -ENOEXEC, "%s: ELF e_shentsize %u is too small", path,
		                    e->shentsize);
	uint64_t table = (uint64_t)e->shentsize * e->shnum, table_end;
	if (__builtin_add_overflow(e->shoff, table, &table_end) || table_end > l->kernel.size)
		return loader_error(l, -ENOEXEC, "%s: section header table (0x%" PRIx64 " bytes at "
		                    "offset 0x%" PRIx64 ") outside file of 0x%" PRIx64 " bytes",
		                    path, table, e->shoff, l->kernel.size);
	/* The whole table in one read. */
	if (table > ELF_TABLE_MAX)
		return loader_error(l, -E2BIG, "%s: section header table of 0x%" PRIx64 " bytes is "
		                    "too large (at most 0x%llx)", path, table,
		                    (unsigned long long)ELF_TABLE_MAX);
	uint8_t *tab = malloc(table);
	r = calloc(e->shnum, sizeof(*r));
	if (!tab || !r) {
		free(tab);
		free(r);
		return loader_error(l, -ENOMEM, "%s: out of memory", path);
	}
	ret = loader_file_read(l, &l->kernel, e->shoff, tab, table, "section header table");
	n = 0;
	for (size_t i = 0; ret == 0 && i < e->shnum; i++) {
		const uint8_t *s = tab + i * e->shentsize;
		if (ld32(s + 4) != ELF_SHT_NOTE) /* sh_type */
			continue;
		/* sh_offset, sh_size */
		r[n] = (struct elf_note_region){ld64(s + 24), ld64(s + 32), n, false};
		n++;
	}
	free(tab);
	if (ret == 0)
		ret = elf_scan_regions(l, r, n, entry);
	free(r);
	return ret;
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
	int ret = elf_load(l, e, UINT64_MAX);
	if (ret == 0)
		ret = elf_entry_paddr(l, e, &entry);
	if (ret == 0)
		ret = loader_place_boot(l, true);
	if (ret == 0)
		ret = loader_enter_long(l, entry, LONG_PLAIN);
	return ret;
}
