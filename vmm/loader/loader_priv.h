/* loader_priv.h: what the loader's files share: the load context, checked
 * file and guest-memory access, the low-memory layout and the entry states. */
#ifndef ZHV_VMM_LOADER_PRIV_H
#define ZHV_VMM_LOADER_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../vm.h"
#include "loader.h"

/* clang-format off */
/* Low-memory layout (loader.h explains it). Page 0 (IVT, BDA) and the
 * reserved BIOS area (EBDA, ACPI at 0xE0000, MP table at 0xF0000) are never
 * written; every other address is claimed before it is used. The GDT, page
 * tables, stack and boot information are placed after the kernel and its
 * modules: at the preferred addresses below when those are free, else in
 * the lowest free RAM (loader_alloc). */
#define LOADER_PAGE          0x1000ull
#define LOADER_GDT           0x1000ull  /* preferred: one page, the GDT */
#define LOADER_PML4          0x2000ull  /* preferred: page tables (64-bit) */
#define LOADER_PT_PAGES      6ull       /* PML4, PDPT, 4 PDs (4 GiB, 2 MiB pages) */
#define LOADER_PT_END        0x8000ull
#define LOADER_STACK         0x8000ull  /* preferred: one page of boot stack */
#define LOADER_STACK_TOP     0x9000ull
#define LOADER_INFO          0x9000ull  /* preferred: boot information area */
#define LOADER_BIOS          0x9FC00ull /* EBDA and BIOS area: reserved */
#define LOADER_1M            0x100000ull
#define LOADER_4G            0x100000000ull
#define LOADER_APIC_BASE     0xFEE00900ull /* xAPIC enabled, BSP: power-on */

#define CR0_PE  (1ull << 0)
#define CR0_MP  (1ull << 1)
#define CR0_ET  (1ull << 4)
#define CR0_NE  (1ull << 5)
#define CR0_WP  (1ull << 16)
#define CR0_PG  (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_PGE (1ull << 7)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

/* ELF (System V gABI; elf(5)). */
#define ELF_CLASS32  1
#define ELF_CLASS64  2
#define ELF_EM_386    3
#define ELF_EM_X86_64 62
#define ELF_PT_LOAD  1
#define ELF_PT_NOTE  4
#define ELF_SHT_NOTE 7
/* clang-format on */

/* What a claimed guest range holds. Kernel segments may touch each other
 * (linkers share pages between segments); anything else must not overlap. */
enum loader_region_kind {
	REGION_RESERVED = 1, /* never RAM for loading: page 0, BIOS area */
	REGION_SEGMENT,      /* part of the kernel image */
	REGION_MODULE,       /* initrd or multiboot module */
	REGION_BOOTINFO,     /* GDT, page tables, stack, boot information */
};

struct loader_region {
	uint64_t start, end;
	enum loader_region_kind kind;
	char what[64];
};

/* A file the loader reads: every read is checked against (size). */
struct loader_file {
	int fd;
	uint64_t size;
	const char *path;
};

/* One load: the request, the output and everything placed so far. */
struct loader {
	struct vm *vm;
	const struct boot_request *req;
	struct boot_state *out;
	char *err;
	size_t errlen;
	struct loader_file kernel;
	uint8_t head[8192]; /* the kernel's first bytes (multiboot scans 8 KiB) */
	size_t headlen;
	/* Claimed ranges: kernel segments (which may be many) apart from the
	 * rest (a few), so that placing n segments costs n log n, not n^2. */
	struct loader_region *regions; /* everything but REGION_SEGMENT */
	size_t nregions, capregions;
	struct loader_region *segs;    /* REGION_SEGMENT, in claim order */
	size_t nsegs, capsegs;
	size_t *seg_order;    /* segs sorted by start (when seg_sorted) */
	uint64_t *seg_maxend; /* max end of seg_order[0..i] */
	size_t *seg_maxidx;   /* the segment holding that end */
	bool seg_sorted;
	uint64_t note_bytes;  /* bytes of ELF notes read so far */
	uint64_t info_next; /* where the next boot information should go */
	/* Set by loader_place_boot: where the GDT, the page tables (64-bit
	 * formats, else 0) and the boot stack went. */
	bool boot_placed;
	uint64_t gdt, pml4, stack_top;
};

/* What the last loader_load did (for the tests: work, not wall time). */
struct loader_work {
	uint64_t reads;       /* pread calls */
	uint64_t read_bytes;  /* bytes asked for */
	uint64_t compares;    /* range comparisons of the overlap checks */
	uint64_t note_bytes;  /* bytes of ELF notes walked */
};
extern struct loader_work loader_work;

/* Multiboot v1 header fields (multiboot 0.6.96 section 3.1.1). */
struct multiboot_header {
	uint32_t offset; /* in the file */
	uint32_t flags;
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};

/* A program header, whatever the ELF class. */
struct elf_phdr {
	uint32_t type, flags;
	uint64_t offset, vaddr, paddr, filesz, memsz;
};

struct elf_image {
	int elf_class; /* ELF_CLASS32 or ELF_CLASS64 */
	uint16_t machine;
	uint64_t entry;
	uint64_t shoff;
	uint16_t shentsize, shnum;
	struct elf_phdr *ph;
	size_t phnum;
	uint64_t lo, hi; /* after elf_load: lowest and highest loaded address */
};

/* Entry profiles of loader_enter_long. */
enum loader_long_profile {
	LONG_LINUX, /* Linux 64-bit boot protocol: what boot.rst asks, no more */
	LONG_PLAIN, /* ELF64 and flat: like libzhv's BSP (SSE usable, NX, SCE) */
};

/* ---- loader.c ------------------------------------------------------------ */

/* loader_error: write "fmt..." to the caller's buffer and return (rc). */
int loader_error(struct loader *l, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* loader_ram_mib: guest RAM in MiB (for messages). */
unsigned long long loader_ram_mib(const struct loader *l);

int loader_file_open(struct loader *l, struct loader_file *f, const char *path);
void loader_file_close(struct loader_file *f);
/* loader_file_read: exactly (len) bytes at (off) of (f) into (buf); an
 * error names (what) ("truncated <what>" when the file is too short). */
int loader_file_read(struct loader *l, const struct loader_file *f, uint64_t off, void *buf,
                     uint64_t len, const char *what);

/* loader_claim: take guest range [gpa, gpa + size) for (what) of (kind):
 * fails unless it is RAM (REGION_RESERVED excepted) and overlaps nothing
 * claimed before (segments may overlap segments). (*host), if asked for,
 * is the range's host address; REGION_BOOTINFO ranges come back zeroed.
 * size 0 claims nothing and succeeds. */
int loader_claim(struct loader *l, const char *path, uint64_t gpa, uint64_t size,
                 enum loader_region_kind kind, const char *what, void **host);
/* loader_is_free: whether [gpa, gpa + size) is RAM and unclaimed. */
bool loader_is_free(struct loader *l, uint64_t gpa, uint64_t size);
/* loader_alloc: claim (size) zeroed bytes aligned to (align) for boot data
 * (REGION_BOOTINFO): at (want) if that is free RAM (want UINT64_MAX: no
 * preference), else at the lowest free address from 0x1000 up, below
 * 4 GiB: low memory first, then above 1 MiB. Fails with a message naming
 * (what) only when no free range of guest RAM below 4 GiB can hold it. */
int loader_alloc(struct loader *l, uint64_t want, uint64_t size, uint64_t align,
                 const char *what, uint64_t *gpa, void **host);
/* loader_info_alloc: (size) zeroed bytes of boot information, aligned to
 * (align): right after the previous piece (from LOADER_INFO) when free,
 * else wherever loader_alloc finds room. */
int loader_info_alloc(struct loader *l, uint64_t size, uint64_t align, const char *what,
                      uint64_t *gpa, void **host);
/* loader_file_to_guest: copy [off, off + len) of (f) to claimed guest
 * memory at (gpa). */
int loader_file_to_guest(struct loader *l, const struct loader_file *f, uint64_t off,
                         uint64_t gpa, uint64_t len, const char *what);
/* loader_load_module: open (path), place it at the address (place) picks
 * from its size (returns UINT64_MAX to refuse) and copy it there. */
int loader_load_module(struct loader *l, const char *path, const char *what,
                       uint64_t (*place)(struct loader *l, uint64_t size, void *arg),
                       void *arg, uint64_t *gpa, uint64_t *size);

/* loader_place_boot: place the GDT, the page tables (if (page_tables)) and
 * the boot stack. Formats call it once the kernel's segments and modules
 * are claimed and before any boot information is allocated, so that all of
 * them go where the kernel and its modules are not. */
int loader_place_boot(struct loader *l, bool page_tables);
/* loader_enter_long: write the GDT and the identity page tables and set
 * the 64-bit entry state at (rip) (after loader_place_boot(l, true)). */
int loader_enter_long(struct loader *l, uint64_t rip, enum loader_long_profile profile);
/* loader_enter_prot32: write the GDT (code 0x08, data 0x10) and set the
 * 32-bit protected-mode, paging-off entry state at (eip) (after
 * loader_place_boot). */
int loader_enter_prot32(struct loader *l, uint32_t eip);

/* ---- multiboot.c --------------------------------------------------------- */

/* multiboot_find: scan the kernel's first 8 KiB for a header. Returns 1
 * (found, *h filled), 0 (no magic), or -1 (magic but bad checksum;
 * *bad_offset says where). */
int multiboot_find(const struct loader *l, struct multiboot_header *h, uint32_t *bad_offset);
int multiboot_load(struct loader *l, const struct multiboot_header *h);

/* ---- linux.c ------------------------------------------------------------- */

bool linux_is_bzimage(const struct loader *l);
int linux_load_bzimage(struct loader *l);
/* linux_load_pvh: (e) parsed, (entry) from the PHYS32_ENTRY note. */
int linux_load_pvh(struct loader *l, struct elf_image *e, uint32_t entry);

/* ---- elf.c --------------------------------------------------------------- */

bool elf_is_elf(const struct loader *l);
/* elf_parse: read and check the ELF and program headers of the kernel. */
int elf_parse(struct loader *l, struct elf_image *e);
void elf_free(struct elf_image *e);
/* elf_load: place every PT_LOAD at p_paddr, below (limit). */
int elf_load(struct loader *l, struct elf_image *e, uint64_t limit);
/* elf_entry_paddr: the physical entry: e_entry itself if a segment holds it
 * at its physical address, else translated through the segment whose
 * virtual range holds it (as GRUB does). */
int elf_entry_paddr(struct loader *l, const struct elf_image *e, uint64_t *paddr);
/* elf_find_pvh_entry: XEN_ELFNOTE_PHYS32_ENTRY from a PT_NOTE segment or
 * a SHT_NOTE section. Returns 1 (found), 0 (none) or a negative error. */
int elf_find_pvh_entry(struct loader *l, const struct elf_image *e, uint32_t *entry);
int elf_load_elf64(struct loader *l, struct elf_image *e);

/* ---- flat.c -------------------------------------------------------------- */

int flat_load(struct loader *l);

/* ---- little-endian access to file bytes and guest memory ---------------- */

static inline uint16_t ld16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t ld32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t ld64(const void *p)
{
	return ld32(p) | (uint64_t)ld32((const uint8_t *)p + 4) << 32;
}

static inline void st16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static inline void st32(void *p, uint32_t v)
{
	st16(p, (uint16_t)v);
	st16((uint8_t *)p + 2, (uint16_t)(v >> 16));
}

static inline void st64(void *p, uint64_t v)
{
	st32(p, (uint32_t)v);
	st32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

#endif /* ZHV_VMM_LOADER_PRIV_H */
