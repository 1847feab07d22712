/* loader.c: kernel format detection and dispatch, the e820 map, checked
 * file and guest-memory placement, GDT, page tables and entry states. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader_priv.h"

/* ---- the e820 map ---------------------------------------------------------- */

size_t loader_memory_map(const struct vm *vm, struct e820_entry *out, size_t max)
{
	struct e820_entry m[4];
	size_t n = 0;
	uint64_t low = vm->low_ram;

	/* Conventional memory up to the EBDA, the BIOS area (ACPI and MP
	 * tables, written by the devices), RAM from 1 MiB, RAM above 4 GiB. */
	if (low)
		m[n++] = (struct e820_entry){0, low < LOADER_BIOS ? low : LOADER_BIOS, E820_RAM};
	if (low > LOADER_BIOS)
		m[n++] = (struct e820_entry){LOADER_BIOS, LOADER_1M - LOADER_BIOS, E820_RESERVED};
	if (low > LOADER_1M)
		m[n++] = (struct e820_entry){LOADER_1M, low - LOADER_1M, E820_RAM};
	if (vm->ram_size > low)
		m[n++] = (struct e820_entry){VM_HIGH_RAM_BASE, vm->ram_size - low, E820_RAM};
	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++)
		out[i] = m[i];
	return n;
}

/* ---- errors, files ----------------------------------------------------------- */

int loader_error(struct loader *l, int rc, const char *fmt, ...)
{
	if (l->err && l->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(l->err, l->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

unsigned long long loader_ram_mib(const struct loader *l)
{
	return (unsigned long long)(l->vm->ram_size >> 20);
}

/* What a file that is not a regular file is, for messages. */
static const char *loader_file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	return "not a regular file";
}

int loader_file_open(struct loader *l, struct loader_file *f, const char *path)
{
	struct stat st;

	f->fd = -1;
	f->size = 0;
	f->path = path;
	/* O_NONBLOCK: opening a FIFO (or a device) must not wait for a
	 * writer; fstat on what was opened then decides, with no window
	 * between a check and the open. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		return loader_error(l, -e, "%s: %s", path, strerror(e));
	}
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return loader_error(l, -e, "%s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return loader_error(l, -EINVAL, "%s: not a regular file (%s)", path,
		                    loader_file_kind(st.st_mode));
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		int e = errno;
		close(fd);
		return loader_error(l, -e, "%s: %s", path, strerror(e));
	}
	f->fd = fd;
	f->size = (uint64_t)st.st_size;
	return 0;
}

void loader_file_close(struct loader_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

int loader_file_read(struct loader *l, const struct loader_file *f, uint64_t off, void *buf,
                     uint64_t len, const char *what)
{
	uint64_t end;
	if (__builtin_add_overflow(off, len, &end) || end > f->size)
		return loader_error(l, -ENOEXEC, "%s: truncated %s (0x%" PRIx64 " bytes at offset "
		                    "0x%" PRIx64 ", file has 0x%" PRIx64 ")", f->path, what, len,
		                    off, f->size);
	uint8_t *p = buf;
	loader_work.read_bytes += len;
	while (len) {
		loader_work.reads++;
		size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
		ssize_t r = pread(f->fd, p, chunk, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			return loader_error(l, -e, "%s: read: %s", f->path, strerror(e));
		}
		if (r == 0) /* the file shrank under us */
			return loader_error(l, -EIO, "%s: unexpected end of file", f->path);
		p += r;
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return 0;
}

/* ---- guest ranges -------------------------------------------------------------- */

struct loader_work loader_work;

/* Sort the segments by start, with the running maximum of their ends, for
 * the binary search of loader_overlap. */
static int cmp_seg(const void *a, const void *b, void *segs)
{
	const struct loader_region *x = &((const struct loader_region *)segs)[*(const size_t *)a];
	const struct loader_region *y = &((const struct loader_region *)segs)[*(const size_t *)b];
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static int loader_sort_segs(struct loader *l)
{
	if (l->seg_sorted || l->nsegs == 0)
		return 0;
	size_t n = l->nsegs;
	free(l->seg_order);
	free(l->seg_maxend);
	free(l->seg_maxidx);
	l->seg_order = malloc(n * sizeof(*l->seg_order));
	l->seg_maxend = malloc(n * sizeof(*l->seg_maxend));
	l->seg_maxidx = malloc(n * sizeof(*l->seg_maxidx));
	if (!l->seg_order || !l->seg_maxend || !l->seg_maxidx)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		l->seg_order[i] = i;
	qsort_r(l->seg_order, n, sizeof(*l->seg_order), cmp_seg, l->segs);
	for (size_t i = 0; i < n; i++) {
		const struct loader_region *r = &l->segs[l->seg_order[i]];
		if (i == 0 || r->end > l->seg_maxend[i - 1]) {
			l->seg_maxend[i] = r->end;
			l->seg_maxidx[i] = l->seg_order[i];
		} else {
			l->seg_maxend[i] = l->seg_maxend[i - 1];
			l->seg_maxidx[i] = l->seg_maxidx[i - 1];
		}
		loader_work.compares++;
	}
	l->seg_sorted = true;
	return 0;
}

/* The first claimed range [gpa, end) overlaps, segments included unless
 * (with_segs) is false; NULL if none. *(rc) is set on an allocation
 * failure. */
static const struct loader_region *loader_overlap(struct loader *l, uint64_t gpa, uint64_t end,
                                                  bool with_segs, int *rc)
{
	*rc = 0;
	for (size_t i = 0; i < l->nregions; i++) {
		const struct loader_region *r = &l->regions[i];
		loader_work.compares++;
		if (gpa < r->end && end > r->start)
			return r;
	}
	if (!with_segs || l->nsegs == 0)
		return NULL;
	if ((*rc = loader_sort_segs(l)) < 0)
		return NULL;
	/* c = how many segments start below (end); one of them overlaps iff
	 * the largest end among them is above (gpa). */
	size_t lo = 0, hi = l->nsegs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		loader_work.compares++;
		if (l->segs[l->seg_order[mid]].start < end)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0 && l->seg_maxend[lo - 1] > gpa)
		return &l->segs[l->seg_maxidx[lo - 1]];
	return NULL;
}

static int loader_push(struct loader *l, struct loader_region **arr, size_t *n, size_t *cap,
                       const char *path)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct loader_region *p = realloc(*arr, ncap * sizeof(*p));
		if (!p)
			return loader_error(l, -ENOMEM, "%s: out of memory", path);
		*arr = p;
		*cap = ncap;
	}
	(*n)++;
	return 0;
}

int loader_claim(struct loader *l, const char *path, uint64_t gpa, uint64_t size,
                 enum loader_region_kind kind, const char *what, void **host)
{
	uint64_t end;
	void *p = NULL;

	if (host)
		*host = NULL;
	if (size == 0)
		return 0;
	if (__builtin_add_overflow(gpa, size, &end))
		return loader_error(l, -ENOEXEC, "%s: %s at 0x%" PRIx64 " of size 0x%" PRIx64
		                    " overflows the address space", path, what, gpa, size);
	if (kind != REGION_RESERVED) {
		p = vm_gpa(l->vm, gpa, size);
		if (!p)
			return loader_error(l, -ENOMEM, "%s: %s at 0x%" PRIx64 "-0x%" PRIx64
			                    " does not fit in guest RAM of %llu MiB", path, what,
			                    gpa, end, loader_ram_mib(l));
	}
	/* Segments may overlap segments (linkers share pages), nothing else. */
	int rc;
	const struct loader_region *r = loader_overlap(l, gpa, end, kind != REGION_SEGMENT, &rc);
	if (rc < 0)
		return loader_error(l, rc, "%s: out of memory", path);
	if (r)
		return loader_error(l, -EADDRINUSE, "%s: %s at 0x%" PRIx64 "-0x%" PRIx64
		                    " overlaps %s at 0x%" PRIx64 "-0x%" PRIx64, path, what, gpa,
		                    end, r->what, r->start, r->end);
	int ret;
	if (kind == REGION_SEGMENT) {
		ret = loader_push(l, &l->segs, &l->nsegs, &l->capsegs, path);
		if (ret == 0) {
			r = &l->segs[l->nsegs - 1];
			l->seg_sorted = false;
		}
	} else {
		ret = loader_push(l, &l->regions, &l->nregions, &l->capregions, path);
		if (ret == 0)
			r = &l->regions[l->nregions - 1];
	}
	if (ret < 0)
		return ret;
	struct loader_region *nr = (struct loader_region *)r;
	nr->start = gpa;
	nr->end = end;
	nr->kind = kind;
	snprintf(nr->what, sizeof(nr->what), "%s", what);
	if (kind == REGION_BOOTINFO)
		memset(p, 0, size);
	if (host)
		*host = p;
	return 0;
}

bool loader_is_free(struct loader *l, uint64_t gpa, uint64_t size)
{
	uint64_t end;
	if (__builtin_add_overflow(gpa, size, &end) || !vm_gpa(l->vm, gpa, size))
		return false;
	int rc;
	return !loader_overlap(l, gpa, end, true, &rc) && rc == 0;
}

/* The lowest (align)-aligned address from 0x1000 up where (size) bytes of
 * RAM below 4 GiB are unclaimed, or UINT64_MAX (*rc < 0: out of memory).
 * Each step jumps past the claimed range that overlaps, so the search is
 * linear in the claimed ranges (times the log of the segment search). */
static uint64_t loader_find_free(struct loader *l, uint64_t size, uint64_t align, int *rc)
{
	uint64_t top = l->vm->low_ram < LOADER_4G ? l->vm->low_ram : LOADER_4G;
	uint64_t at = align_up(LOADER_PAGE, align);

	*rc = 0;
	while (at < top && size <= top - at) {
		const struct loader_region *r = loader_overlap(l, at, at + size, true, rc);
		if (*rc < 0)
			return UINT64_MAX;
		if (!r)
			return at;
		if (r->end >= top)
			break;
		at = align_up(r->end, align);
	}
	return UINT64_MAX;
}

int loader_alloc(struct loader *l, uint64_t want, uint64_t size, uint64_t align,
                 const char *what, uint64_t *gpa, void **host)
{
	const char *path = l->kernel.path;
	uint64_t at = want;

	if (size == 0)
		size = 1; /* an empty table still gets an address of its own */
	if (want == UINT64_MAX || want % align || want < LOADER_PAGE || want >= LOADER_4G ||
	    size > LOADER_4G - want || !loader_is_free(l, want, size)) {
		int rc = 0;
		if (size > LOADER_4G)
			at = UINT64_MAX;
		else
			at = loader_find_free(l, size, align, &rc);
		if (at == UINT64_MAX && rc < 0)
			return loader_error(l, rc, "%s: out of memory", path);
		if (at == UINT64_MAX)
			return loader_error(l, -ENOMEM, "%s: no room for %s (0x%" PRIx64 " bytes): "
			                    "guest RAM below 4 GiB (%llu MiB in all) is taken by the "
			                    "kernel, its modules and the reserved areas (page 0, "
			                    "0x9FC00-0xFFFFF)", path, what, size, loader_ram_mib(l));
	}
	int ret = loader_claim(l, path, at, size, REGION_BOOTINFO, what, host);
	if (ret < 0)
		return ret;
	*gpa = at;
	return 0;
}

int loader_info_alloc(struct loader *l, uint64_t size, uint64_t align, const char *what,
                      uint64_t *gpa, void **host)
{
	uint64_t want = l->info_next < LOADER_4G ? align_up(l->info_next, align) : UINT64_MAX;
	int ret = loader_alloc(l, want, size, align, what, gpa, host);
	if (ret < 0)
		return ret;
	l->info_next = *gpa + (size ? size : 1);
	return 0;
}

int loader_file_to_guest(struct loader *l, const struct loader_file *f, uint64_t off,
                         uint64_t gpa, uint64_t len, const char *what)
{
	if (len == 0)
		return 0;
	void *p = vm_gpa(l->vm, gpa, len);
	if (!p) /* callers claim first; this is a last guard */
		return loader_error(l, -ENOMEM, "%s: %s at 0x%" PRIx64 " is not in guest RAM",
		                    f->path, what, gpa);
	return loader_file_read(l, f, off, p, len, what);
}

int loader_load_module(struct loader *l, const char *path, const char *what,
                       uint64_t (*place)(struct loader *l, uint64_t size, void *arg),
                       void *arg, uint64_t *gpa, uint64_t *size)
{
	struct loader_file f;
	int ret = loader_file_open(l, &f, path);
	if (ret < 0)
		return ret;
	uint64_t at = place(l, f.size, arg);
	if (at == UINT64_MAX)
		ret = -ENOMEM; /* (place) wrote the reason */
	if (ret == 0)
		ret = loader_claim(l, path, at, f.size, REGION_MODULE, what, NULL);
	if (ret == 0)
		ret = loader_file_to_guest(l, &f, 0, at, f.size, what);
	if (ret == 0) {
		*gpa = at;
		*size = f.size;
	}
	loader_file_close(&f);
	return ret;
}

/* ---- GDT, page tables, entry states (Intel SDM vol. 3A 3.4.5, 4.5) ---------- */

static zhv_segment_t loader_seg(uint16_t sel, uint8_t type, bool code64)
{
	/* Flat 4 GiB; type 0xB (code, read, accessed) or 0x3 (data, write,
	 * accessed): the accessed bit is preset so the CPU never writes the GDT. */
	return (zhv_segment_t){
		.base = 0, .limit = 0xFFFFFFFF, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = code64 ? 0 : 1, .s = 1, .l = code64 ? 1 : 0, .g = 1,
	};
}

static uint64_t loader_gdt_desc(const zhv_segment_t *s)
{
	uint64_t limit = s->g ? s->limit >> 12 : s->limit;
	return (limit & 0xFFFF) | (s->base & 0xFFFFFF) << 16 | (uint64_t)(s->type & 0xF) << 40 |
	       (uint64_t)s->s << 44 | (uint64_t)(s->dpl & 3) << 45 | (uint64_t)s->present << 47 |
	       ((limit >> 16) & 0xF) << 48 | (uint64_t)s->avl << 52 | (uint64_t)s->l << 53 |
	       (uint64_t)s->db << 54 | (uint64_t)s->g << 55 | ((s->base >> 24) & 0xFF) << 56;
}

int loader_place_boot(struct loader *l, bool page_tables)
{
	uint64_t at = 0;
	int ret = 0;

	if (l->boot_placed)
		return loader_error(l, -EINVAL, "%s: loader: boot data placed twice", l->kernel.path);
	/* In this order so that, when low memory is free, the layout is the
	 * one loader.h shows: GDT 0x1000, page tables 0x2000, stack 0x8000. */
	ret = loader_alloc(l, LOADER_GDT, LOADER_PAGE, LOADER_PAGE, "the GDT", &l->gdt, NULL);
	if (ret == 0 && page_tables)
		ret = loader_alloc(l, LOADER_PML4, LOADER_PT_PAGES * LOADER_PAGE, LOADER_PAGE,
		                   "the page tables", &l->pml4, NULL);
	if (ret == 0)
		ret = loader_alloc(l, LOADER_STACK, LOADER_PAGE, LOADER_PAGE, "the boot stack",
		                   &at, NULL);
	if (ret < 0)
		return ret;
	l->stack_top = at + LOADER_PAGE;
	l->boot_placed = true;
	return 0;
}

/* Write (n) descriptors of (segs) after the null descriptor. */
static int loader_write_gdt(struct loader *l, const zhv_segment_t *const *segs, size_t n)
{
	uint8_t *gdt = l->boot_placed ? vm_gpa(l->vm, l->gdt, LOADER_PAGE) : NULL;
	if (!gdt)
		return loader_error(l, -EINVAL, "%s: loader: no GDT placed", l->kernel.path);
	memset(gdt, 0, LOADER_PAGE);
	for (size_t i = 0; i < n; i++)
		if (segs[i])
			st64(gdt + 8 * (i + 1), loader_gdt_desc(segs[i]));
	l->out->sregs.gdt.base = l->gdt;
	l->out->sregs.gdt.limit = (uint16_t)(8 * (n + 1) - 1);
	return 0;
}

/* The state both modes share: TR a busy 32-bit TSS (base 0, limit 0x67, as
 * the PVH ABI asks), an unused LDT, no IDT, RFLAGS bit 1 only, stack top. */
static void loader_common_state(struct loader *l)
{
	zhv_vcpu_sregs_t *s = &l->out->sregs;
	s->tr = (zhv_segment_t){.limit = 0x67, .type = 11, .present = 1};
	s->ldt = (zhv_segment_t){.limit = 0xFFFF, .type = 2, .present = 1};
	s->idt = (zhv_dtable_t){.base = 0, .limit = 0};
	s->apic_base = LOADER_APIC_BASE;
	l->out->regs.rflags = 0x2;
	l->out->regs.rsp = l->stack_top;
}

int loader_enter_prot32(struct loader *l, uint32_t eip)
{
	zhv_vcpu_sregs_t *s = &l->out->sregs;
	zhv_segment_t code = loader_seg(0x08, 0xB, false);
	zhv_segment_t data = loader_seg(0x10, 0x3, false);
	const zhv_segment_t *gdt[] = {&code, &data};

	memset(&l->out->sregs, 0, sizeof(l->out->sregs));
	memset(&l->out->regs, 0, sizeof(l->out->regs));
	int ret = loader_write_gdt(l, gdt, 2);
	if (ret < 0)
		return ret;
	s->cs = code;
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	/* Multiboot 3.2 / PVH: PE set, paging off, CR4 and EFER clear. */
	s->cr0 = CR0_PE | CR0_ET;
	loader_common_state(l);
	l->out->regs.rip = eip;
	return 0;
}

int loader_enter_long(struct loader *l, uint64_t rip, enum loader_long_profile profile)
{
	zhv_vcpu_sregs_t *s = &l->out->sregs;
	zhv_segment_t code32 = loader_seg(0x08, 0xB, false);
	zhv_segment_t code64 = loader_seg(0x10, 0xB, true);
	zhv_segment_t data = loader_seg(0x18, 0x3, false);
	const zhv_segment_t *gdt[] = {&code32, &code64, &data};

	if (rip >= LOADER_4G)
		return loader_error(l, -ENOEXEC, "%s: entry point 0x%" PRIx64 " is above 4 GiB "
		                    "(only the first 4 GiB are identity-mapped)", l->kernel.path,
		                    rip);
	memset(&l->out->sregs, 0, sizeof(l->out->sregs));
	memset(&l->out->regs, 0, sizeof(l->out->regs));
	int ret = loader_write_gdt(l, gdt, 3);
	if (ret < 0)
		return ret;

	/* Identity map of [0, 4 GiB) with 2 MiB pages (this KVM has no 1 GiB
	 * pages): PML4[0] -> PDPT[0..3] -> 4 PDs of 512 entries. U/S is set so
	 * that a kernel may drop to CPL3 on these tables; the MMIO window
	 * from 3 GiB is mapped uncached (PCD|PWT). */
	uint64_t pml4 = l->pml4, pdpt = pml4 + LOADER_PAGE, pd = pml4 + 2 * LOADER_PAGE;
	uint8_t *pt = pml4 ? vm_gpa(l->vm, pml4, LOADER_PT_PAGES * LOADER_PAGE) : NULL;
	if (!pt)
		return loader_error(l, -EINVAL, "%s: loader: no page tables placed",
		                    l->kernel.path);
	memset(pt, 0, LOADER_PT_PAGES * LOADER_PAGE);
	st64(pt, pdpt | 0x7);
	for (uint64_t i = 0; i < 4; i++)
		st64(pt + (pdpt - pml4) + 8 * i, (pd + i * LOADER_PAGE) | 0x7);
	for (uint64_t i = 0; i < 2048; i++) {
		uint64_t addr = i << 21;
		uint64_t e = addr | 0x87; /* P | RW | US | PS */
		if (addr >= VM_PCI_MMIO_BASE)
			e |= 0x18; /* PWT | PCD */
		st64(pt + (pd - pml4) + 8 * i, e);
	}

	s->cs = code64;
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->cr3 = pml4;
	if (profile == LONG_LINUX) {
		/* boot.rst "64-bit BOOT PROTOCOL": paging on, __BOOT_CS 0x10,
		 * __BOOT_DS 0x18, interrupts off. */
		s->cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
		s->cr4 = CR4_PAE;
		s->efer = EFER_LME | EFER_LMA;
	} else {
		s->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
		s->cr4 = CR4_PAE | CR4_PGE | CR4_OSFXSR | CR4_OSXMMEXCPT;
		s->efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
	}
	loader_common_state(l);
	l->out->regs.rip = rip;
	return 0;
}

/* ---- detection and dispatch --------------------------------------------------- */

int loader_format_parse(const char *name)
{
	static const struct {
		const char *name;
		enum kernel_format format;
	} names[] = {
		{"auto", KERNEL_AUTO}, {"multiboot", KERNEL_MULTIBOOT}, {"linux", KERNEL_BZIMAGE},
		{"pvh", KERNEL_PVH},   {"elf", KERNEL_ELF64},           {"flat", KERNEL_FLAT},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (name && strcmp(name, names[i].name) == 0)
			return (int)names[i].format;
	return -1;
}

/* An ELF64 kernel: PVH if it has the Xen entry note (unless (want) is
 * KERNEL_ELF64), else plain ELF64 (unless (want) is KERNEL_PVH). */
static int loader_elf(struct loader *l, enum kernel_format want)
{
	const char *path = l->kernel.path;
	struct elf_image e;
	int ret = elf_parse(l, &e);
	if (ret < 0)
		return ret;
	if (e.elf_class != ELF_CLASS64 || e.machine != ELF_EM_X86_64) {
		const char *what = e.elf_class == ELF_CLASS32 ? "ELF32" : "non-x86-64 ELF64";
		if (want == KERNEL_AUTO)
			ret = loader_error(l, -ENOEXEC, "%s: not a bootable ELF: %s without a "
			                   "multiboot header (needs x86-64 ELF64, or multiboot)", path,
			                   what);
		else
			ret = loader_error(l, -ENOEXEC, "%s: not %s kernel: %s (needs x86-64 ELF64)",
			                   path, want == KERNEL_PVH ? "a PVH" : "an ELF64", what);
	} else {
		uint32_t entry = 0;
		ret = want == KERNEL_ELF64 ? 0 : elf_find_pvh_entry(l, &e, &entry);
		if (ret > 0) {
			l->out->format = KERNEL_PVH;
			ret = linux_load_pvh(l, &e, entry);
		} else if (ret == 0 && want == KERNEL_PVH) {
			ret = loader_error(l, -ENOEXEC, "%s: not a PVH kernel: no Xen PHYS32_ENTRY "
			                   "note", path);
		} else if (ret == 0) {
			l->out->format = KERNEL_ELF64;
			ret = elf_load_elf64(l, &e);
		}
	}
	elf_free(&e);
	return ret;
}

static int loader_dispatch(struct loader *l)
{
	struct multiboot_header mb;
	uint32_t bad = 0;
	const char *path = l->kernel.path;
	enum kernel_format want = l->req->format;

	if (l->kernel.size == 0)
		return loader_error(l, -ENOEXEC, "%s: empty file", path);

	switch (want) {
	case KERNEL_AUTO:
		break;
	case KERNEL_FLAT:
		l->out->format = KERNEL_FLAT;
		return flat_load(l);
	case KERNEL_MULTIBOOT: {
		int found = multiboot_find(l, &mb, &bad);
		if (found < 0)
			return loader_error(l, -ENOEXEC, "%s: multiboot header at offset 0x%x has a "
			                    "bad checksum", path, bad);
		if (found == 0)
			return loader_error(l, -ENOEXEC, "%s: not a multiboot kernel: no multiboot "
			                    "header in the first 8 KiB", path);
		l->out->format = KERNEL_MULTIBOOT;
		return multiboot_load(l, &mb);
	}
	case KERNEL_BZIMAGE:
		if (!linux_is_bzimage(l))
			return loader_error(l, -ENOEXEC, "%s: not a Linux bzImage (no \"HdrS\" boot "
			                    "protocol 2.06+ with a 64-bit entry)", path);
		l->out->format = KERNEL_BZIMAGE;
		return linux_load_bzimage(l);
	case KERNEL_PVH:
	case KERNEL_ELF64:
		if (!elf_is_elf(l))
			return loader_error(l, -ENOEXEC, "%s: not an ELF file", path);
		return loader_elf(l, want);
	default:
		return loader_error(l, -EINVAL, "%s: unknown kernel format %d", path, (int)want);
	}

	/* Multiboot first (a multiboot ELF is still an ELF), then bzImage,
	 * then ELF64 (PVH if it has the Xen entry note). Nothing else runs:
	 * a flat binary only when asked. */
	int found = multiboot_find(l, &mb, &bad);
	if (found > 0) {
		l->out->format = KERNEL_MULTIBOOT;
		return multiboot_load(l, &mb);
	}
	if (linux_is_bzimage(l)) {
		l->out->format = KERNEL_BZIMAGE;
		return linux_load_bzimage(l);
	}
	if (found < 0)
		return loader_error(l, -ENOEXEC, "%s: multiboot header at offset 0x%x has a bad "
		                    "checksum", path, bad);
	if (elf_is_elf(l))
		return loader_elf(l, KERNEL_AUTO);
	return loader_error(l, -ENOEXEC, "%s: not a kernel format zhv knows (multiboot v1, Linux "
	                    "bzImage, PVH or x86-64 ELF64; a flat binary needs --format flat)",
	                    path);
}

int loader_load(struct vm *vm, const struct boot_request *req, struct boot_state *out,
                char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!vm || !req || !out || !req->kernel_path) {
		if (err && errlen)
			snprintf(err, errlen, "loader: no kernel given");
		return -EINVAL;
	}
	if (req->nmodules && !req->modules) {
		if (err && errlen)
			snprintf(err, errlen, "loader: module list missing");
		return -EINVAL;
	}

	struct loader *l = calloc(1, sizeof(*l));
	if (!l) {
		if (err && errlen)
			snprintf(err, errlen, "loader: out of memory");
		return -ENOMEM;
	}
	l->vm = vm;
	l->req = req;
	l->out = out;
	l->err = err;
	l->errlen = errlen;
	l->info_next = LOADER_INFO;
	memset(out, 0, sizeof(*out));
	memset(&loader_work, 0, sizeof(loader_work));

	const char *path = req->kernel_path;
	int ret = loader_file_open(l, &l->kernel, path);
	if (ret == 0) {
		l->headlen = l->kernel.size < sizeof(l->head) ? (size_t)l->kernel.size :
		                                                sizeof(l->head);
		ret = loader_file_read(l, &l->kernel, 0, l->head, l->headlen, "header");
	}
	/* What no format may load over: page 0 (IVT, BDA; kernels also put
	 * their AP trampolines there), the BIOS area with the ACPI and MP
	 * tables. The GDT, stack, page tables and boot information are placed
	 * by each format once its kernel and modules are (loader_place_boot). */
	if (ret == 0)
		ret = loader_claim(l, path, 0, LOADER_PAGE, REGION_RESERVED,
		                   "page 0 (real-mode IVT and BDA)", NULL);
	if (ret == 0)
		ret = loader_claim(l, path, LOADER_BIOS, LOADER_1M - LOADER_BIOS, REGION_RESERVED,
		                   "the reserved BIOS area (EBDA, ACPI and MP tables)", NULL);
	if (ret == 0)
		ret = loader_dispatch(l);
	if (ret < 0 && err && errlen && !err[0])
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));

	loader_file_close(&l->kernel);
	loader_work.note_bytes = l->note_bytes;
	free(l->regions);
	free(l->segs);
	free(l->seg_order);
	free(l->seg_maxend);
	free(l->seg_maxidx);
	free(l);
	return ret < 0 ? ret : 0;
}
