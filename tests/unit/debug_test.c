/* debug_test.c: unit tests of lib/x86/debug.c without KVM: guest-virtual
 * memory access by a debugger (debug_translate_one, debug_virt_copy) over a
 * fake guest memory (every paging mode, large pages, a missing entry at
 * each level, non-canonical addresses, ranges across pages: all or
 * nothing, RAM checks); the settings zhv_vcpu_set_debug accepts, the DR7
 * made of them, and what a debug exit means under them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "x86/debug.h"

/* Control-register bits, and page-table entry bits P, RW, PS. */
enum {
	CR0_PE = 1, CR4_PSE = 1 << 4, CR4_PAE = 1 << 5, CR4_LA57 = 1 << 12,
	P = 1, RW = 2, PS = 1 << 7,
};
#define CR0_PG (1ull << 31)
#define EFER_LONG ((1ull << 8) | (1ull << 10)) /* LME | LMA */

/* 16 MiB of fake RAM at GPA 0; [RO_START, RO_END) is read-only RAM and
 * [HOLE_START, HOLE_END) is no RAM at all (e.g. a MEM trap). */
#define GMEM_SIZE  (16u << 20)
#define RO_START   0x800000ull
#define RO_END     0x801000ull
#define HOLE_START 0x900000ull
#define HOLE_END   0x902000ull

struct gmem {
	uint8_t *mem;
	unsigned writes, reads;
};

static bool is_ram(uint64_t gpa, size_t len)
{
	if (gpa >= GMEM_SIZE || len > GMEM_SIZE - gpa)
		return false;
	return gpa + len <= HOLE_START || gpa >= HOLE_END;
}

static bool gmem_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
	struct gmem *g = opaque;
	if (!is_ram(gpa, len))
		return false;
	memcpy(buf, g->mem + gpa, len);
	return true;
}

static bool gmem_read_counted(void *opaque, uint64_t gpa, void *buf, size_t len)
{
	((struct gmem *)opaque)->reads++;
	return gmem_read(opaque, gpa, buf, len);
}

static bool gmem_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
	struct gmem *g = opaque;
	if (!is_ram(gpa, len))
		return false;
	g->writes++;
	memcpy(g->mem + gpa, buf, len);
	return true;
}

static zhv_status_t gmem_check(void *opaque, uint64_t gpa, size_t len, bool write)
{
	(void)opaque;
	if (!is_ram(gpa, len))
		return ZHV_ERR_NOT_FOUND;
	if (write && gpa < RO_END && gpa + len > RO_START)
		return ZHV_ERR_ACCESS_DENIED;
	return ZHV_OK;
}

static void put64(struct gmem *g, uint64_t gpa, uint64_t v)
{
	memcpy(g->mem + gpa, &v, 8);
}

static void put32(struct gmem *g, uint64_t gpa, uint32_t v)
{
	memcpy(g->mem + gpa, &v, 4);
}

/* One fake memory for every test, zeroed before each. */
static uint8_t fake_ram[GMEM_SIZE];
static struct gmem fake = {.mem = fake_ram};

static int gmem_setup(void **state)
{
	memset(fake_ram, 0, sizeof(fake_ram));
	fake.reads = fake.writes = 0;
	*state = &fake;
	return 0;
}

static struct pagewalk_ctx ctx_of(struct gmem *g, uint64_t cr0, uint64_t cr3, uint64_t cr4,
                                  uint64_t efer)
{
	return (struct pagewalk_ctx){.cr0 = cr0, .cr3 = cr3, .cr4 = cr4, .efer = efer,
	                             .read_gpa = gmem_read, .opaque = g};
}

static struct debug_phys phys_of(struct gmem *g)
{
	return (struct debug_phys){.check = gmem_check, .read = gmem_read_counted,
	                           .write = gmem_write, .opaque = g};
}

static uint64_t tr(const struct pagewalk_ctx *c, uint64_t gva, zhv_status_t want)
{
	uint64_t gpa = 0xdeadbeef;
	assert_int_equal(debug_translate_one(c, gva, &gpa), want);
	return gpa;
}

static uint64_t la(unsigned l5, unsigned l4, unsigned l3, unsigned l2, unsigned l1, unsigned off)
{
	uint64_t v = ((uint64_t)l5 << 48) | ((uint64_t)l4 << 39) | ((uint64_t)l3 << 30) |
	             ((uint64_t)l2 << 21) | ((uint64_t)l1 << 12) | off;
	return v;
}

/* 4-level: 4K, 2M and 1G pages, a missing entry at each level, a table
 * outside RAM, the upper half, non-canonical addresses. */
static void test_four_level(void **state)
{
	struct gmem *g = *state;
	struct pagewalk_ctx c = ctx_of(g, CR0_PE | CR0_PG, 0x1000, CR4_PAE, EFER_LONG);
	put64(g, 0x1000 + 1 * 8, 0x2000 | P);         /* PML4[1] (read-only: presence only) */
	put64(g, 0x1000 + 511 * 8, 0x2000 | P | RW);  /* PML4[511]: upper half */
	put64(g, 0x1000 + 3 * 8, HOLE_START | P);     /* PML4[3]: a table that is not RAM */
	put64(g, 0x2000 + 2 * 8, 0x3000 | P);         /* PDPT[2] */
	put64(g, 0x2000 + 3 * 8, 0x40000000 | P | PS); /* PDPT[3]: 1 GiB page */
	put64(g, 0x2000 + 4 * 8, 0x4000);             /* PDPT[4]: not present */
	put64(g, 0x3000 + 3 * 8, 0x4000 | P);         /* PD[3] */
	put64(g, 0x3000 + 5 * 8, 0x600000 | P | PS);  /* PD[5]: 2 MiB page */
	put64(g, 0x3000 + 6 * 8, 0x5000 | RW);        /* PD[6]: not present */
	put64(g, 0x4000 + 4 * 8, 0x123000 | P | (1ull << 63)); /* PT[4], NX: still readable */
	put64(g, 0x4000 + 5 * 8, 0x124000 | RW);      /* PT[5]: not present */

	assert_int_equal(tr(&c, la(0, 1, 2, 3, 4, 0x567), ZHV_OK), 0x123567);
	assert_int_equal(tr(&c, la(0, 1, 2, 5, 0, 0) + 0x12345, ZHV_OK), 0x612345);
	assert_int_equal(tr(&c, la(0, 1, 3, 0, 0, 0) + 0x1234567, ZHV_OK), 0x41234567);
	assert_int_equal(tr(&c, 0xffff800000000000ull | la(0, 511, 2, 3, 4, 8), ZHV_OK), 0x123008);
	/* Not present at each level: PML4, PDPT, PD, PT. */
	tr(&c, la(0, 2, 0, 0, 0, 0), ZHV_ERR_NOT_FOUND);
	tr(&c, la(0, 1, 4, 0, 0, 0), ZHV_ERR_NOT_FOUND);
	tr(&c, la(0, 1, 2, 6, 0, 0), ZHV_ERR_NOT_FOUND);
	tr(&c, la(0, 1, 2, 3, 5, 0), ZHV_ERR_NOT_FOUND);
	tr(&c, la(0, 3, 0, 0, 0, 0), ZHV_ERR_NOT_FOUND); /* the PDPT is no RAM */
	/* Non-canonical: bit 47 not copied up, and the first address past. */
	tr(&c, 0x0000800000000000ull, ZHV_ERR_OUT_OF_RANGE);
	tr(&c, 0xffff7fffffffffffull, ZHV_ERR_OUT_OF_RANGE);
	tr(&c, 0x0100000000000000ull | la(0, 1, 2, 3, 4, 0), ZHV_ERR_OUT_OF_RANGE);
}

/* 5-level (CR4.LA57): 57-bit canonical addresses, the PML5 level. */
static void test_five_level(void **state)
{
	struct gmem *g = *state;
	struct pagewalk_ctx c =
		ctx_of(g, CR0_PE | CR0_PG, 0x1000, CR4_PAE | CR4_LA57, EFER_LONG);
	put64(g, 0x1000 + 2 * 8, 0x6000 | P);        /* PML5[2] */
	put64(g, 0x1000 + 511 * 8, 0x6000 | P);      /* PML5[511] */
	put64(g, 0x6000 + 1 * 8, 0x2000 | P);        /* PML4[1] */
	put64(g, 0x2000 + 2 * 8, 0x3000 | P);        /* PDPT[2] */
	put64(g, 0x3000 + 5 * 8, 0x600000 | P | PS); /* PD[5]: 2 MiB */
	assert_int_equal(tr(&c, la(2, 1, 2, 5, 0, 0) + 0x1234, ZHV_OK), 0x601234);
	assert_int_equal(tr(&c, 0xfe00000000000000ull | la(511, 1, 2, 5, 0, 0), ZHV_OK), 0x600000);
	tr(&c, la(3, 1, 2, 5, 0, 0), ZHV_ERR_NOT_FOUND); /* PML5[3] missing */
	tr(&c, la(2, 0, 2, 5, 0, 0), ZHV_ERR_NOT_FOUND); /* PML4[0] missing */
	/* Canonical in 5-level but not in 4-level, and the reverse. */
	tr(&c, 0x0100000000000000ull, ZHV_ERR_OUT_OF_RANGE);
	struct pagewalk_ctx c4 = c;
	c4.cr4 = CR4_PAE;
	tr(&c4, la(2, 1, 2, 5, 0, 0), ZHV_ERR_OUT_OF_RANGE);
}

/* 32-bit PAE paging: PDPTEs, 2 MiB and 4 KiB pages; above 4 GiB is out. */
static void test_pae32(void **state)
{
	struct gmem *g = *state;
	struct pagewalk_ctx c = ctx_of(g, CR0_PE | CR0_PG, 0x1020, CR4_PAE, 0);
	put64(g, 0x1020 + 1 * 8, 0x2000 | P);        /* PDPTE[1] */
	put64(g, 0x1020 + 3 * 8, 0x3000);            /* PDPTE[3]: not present */
	put64(g, 0x2000 + 4 * 8, 0xa00000 | P | PS); /* PD[4]: 2 MiB */
	put64(g, 0x2000 + 5 * 8, 0x4000 | P);        /* PD[5] */
	put64(g, 0x4000 + 7 * 8, 0x345000 | P);      /* PT[7] */
	uint64_t base = 1ull << 30;
	assert_int_equal(tr(&c, base + (4u << 21) + 0x1abcd, ZHV_OK), 0xa1abcd);
	assert_int_equal(tr(&c, base + (5u << 21) + (7u << 12) + 0x10, ZHV_OK), 0x345010);
	tr(&c, base + (5u << 21) + (8u << 12), ZHV_ERR_NOT_FOUND); /* PT[8] */
	tr(&c, base + (6u << 21), ZHV_ERR_NOT_FOUND);              /* PD[6] */
	tr(&c, 3ull << 30, ZHV_ERR_NOT_FOUND);                     /* PDPTE[3] */
	tr(&c, 0x100000000ull + base, ZHV_ERR_OUT_OF_RANGE);
}

/* 32-bit paging: 4 MiB pages with CR4.PSE (PSE-36 high bits), 4 KiB
 * pages; PS without CR4.PSE means a page table. */
static void test_legacy32(void **state)
{
	struct gmem *g = *state;
	struct pagewalk_ctx c = ctx_of(g, CR0_PE | CR0_PG, 0x1000, CR4_PSE, 0);
	put32(g, 0x1000 + 2 * 4, 0x00800000 | P | PS);      /* PDE[2]: 4 MiB */
	put32(g, 0x1000 + 3 * 4, 0x00c00000 | (1u << 13) | P | PS); /* 4 MiB at 4 GiB + 12 MiB */
	put32(g, 0x1000 + 4 * 4, 0x2000 | P);                /* PDE[4] -> PT */
	put32(g, 0x2000 + 1 * 4, 0x345000 | P);              /* PT[1] */
	assert_int_equal(tr(&c, (2u << 22) + 0x123456, ZHV_OK), 0x923456);
	assert_int_equal(tr(&c, (3u << 22) + 0x10, ZHV_OK), 0x100c00010ull);
	assert_int_equal(tr(&c, (4u << 22) + (1u << 12) + 0xfff, ZHV_OK), 0x345fff);
	tr(&c, (4u << 22) + (2u << 12), ZHV_ERR_NOT_FOUND); /* PT[2] */
	tr(&c, 5u << 22, ZHV_ERR_NOT_FOUND);                /* PDE[5] */
	tr(&c, 0x100000000ull, ZHV_ERR_OUT_OF_RANGE);
	/* Without CR4.PSE, PDE[2]'s PS is ignored: its frame is a table. */
	c.cr4 = 0;
	put32(g, 0x800000 + 0x123 * 4, 0x777000 | P);
	assert_int_equal(tr(&c, (2u << 22) + (0x123u << 12) + 1, ZHV_OK), 0x777001);
}

/* No paging (real mode, or protected mode with CR0.PG clear): linear is
 * physical, 32 bits. */
static void test_no_paging(void **state)
{
	struct gmem *g = *state;
	struct pagewalk_ctx c = ctx_of(g, 0, 0x1000, 0, 0);
	assert_int_equal(tr(&c, 0xb8000, ZHV_OK), 0xb8000);
	assert_int_equal(tr(&c, 0xfffffff0, ZHV_OK), 0xfffffff0);
	tr(&c, 0x100000000ull, ZHV_ERR_OUT_OF_RANGE);
	c.cr0 = CR0_PE;
	assert_int_equal(tr(&c, 0x123456, ZHV_OK), 0x123456);
}

/* A 4-level map of three virtual pages at VA 0x400000.. to scattered
 * frames, the fourth page missing, and one page on read-only RAM. */
#define VA 0x400000ull
static struct pagewalk_ctx map_pages(struct gmem *g)
{
	put64(g, 0x1000, 0x2000 | P);
	put64(g, 0x2000, 0x3000 | P);
	put64(g, 0x3000 + 2 * 8, 0x4000 | P);      /* PD[2]: VA 0x400000 */
	put64(g, 0x4000 + 0 * 8, 0x50000 | P);
	put64(g, 0x4000 + 1 * 8, 0x20000 | P);     /* not contiguous */
	put64(g, 0x4000 + 2 * 8, 0x70000 | P);
	put64(g, 0x4000 + 4 * 8, RO_START | P);    /* read-only RAM */
	put64(g, 0x4000 + 5 * 8, HOLE_START | P);  /* no RAM */
	return ctx_of(g, CR0_PE | CR0_PG, 0x1000, CR4_PAE, EFER_LONG);
}

static void test_copy_across_pages(void **state)
{
	struct gmem *g = *state;
	struct pagewalk_ctx c = map_pages(g);
	struct debug_phys ph = phys_of(g);
	for (unsigned i = 0; i < 4096; i++) {
		g->mem[0x50000 + i] = (uint8_t)i;
		g->mem[0x20000 + i] = (uint8_t)(i + 1);
		g->mem[0x70000 + i] = (uint8_t)(i + 2);
	}
	/* 8192 bytes from the middle of page 0 to the middle of page 2. */
	uint8_t *buf = malloc(8192);
	assert_non_null(buf);
	assert_int_equal(debug_virt_copy(&c, &ph, VA + 0x800, buf, 8192, false), ZHV_OK);
	assert_memory_equal(buf, g->mem + 0x50800, 0x800);
	assert_memory_equal(buf + 0x800, g->mem + 0x20000, 0x1000);
	assert_memory_equal(buf + 0x1800, g->mem + 0x70000, 0x800);
	/* And back, shifted by one. */
	for (unsigned i = 0; i < 8192; i++)
		buf[i] = (uint8_t)(0xa5 ^ i);
	assert_int_equal(debug_virt_copy(&c, &ph, VA + 0xfff, buf, 4098, true), ZHV_OK);
	assert_int_equal(g->mem[0x50fff], 0xa5);
	assert_memory_equal(g->mem + 0x20000, buf + 1, 0x1000);
	assert_int_equal(g->mem[0x70000], (uint8_t)(0xa5 ^ 4097));
	assert_int_equal(g->mem[0x70001], 2 + 1); /* untouched */
	/* len 0: nothing, whatever the address. */
	g->reads = 0;
	assert_int_equal(debug_virt_copy(&c, &ph, 0x0000800000000000ull, buf, 0, false), ZHV_OK);
	assert_int_equal(g->reads, 0);
	free(buf);
}

/* All or nothing: a bad page anywhere in the range copies no byte. */
static void test_copy_all_or_nothing(void **state)
{
	struct gmem *g = *state;
	struct pagewalk_ctx c = map_pages(g);
	struct debug_phys ph = phys_of(g);
	uint8_t buf[0x3000], orig[0x3000];
	memset(buf, 0x5a, sizeof(buf));
	memcpy(orig, g->mem + 0x70000, 0x1000);
	/* Pages 2 and 3: page 3 is not present. */
	g->writes = g->reads = 0;
	assert_int_equal(debug_virt_copy(&c, &ph, VA + 0x2000, buf, 0x2000, true),
	                 ZHV_ERR_NOT_FOUND);
	assert_int_equal(debug_virt_copy(&c, &ph, VA + 0x2ff0, buf, 0x20, false),
	                 ZHV_ERR_NOT_FOUND);
	assert_int_equal(g->writes, 0);
	assert_int_equal(g->reads, 0);
	assert_memory_equal(g->mem + 0x70000, orig, 0x1000);
	for (unsigned i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0x5a);
	/* Read-only RAM: read yes, write no (and nothing before it written). */
	assert_int_equal(debug_virt_copy(&c, &ph, VA + 0x4000, buf, 16, false), ZHV_OK);
	assert_int_equal(debug_virt_copy(&c, &ph, VA + 0x4000, buf, 16, true),
	                 ZHV_ERR_ACCESS_DENIED);
	/* No RAM behind a present page (a MEM trap, a hole). */
	assert_int_equal(debug_virt_copy(&c, &ph, VA + 0x5000, buf, 1, false), ZHV_ERR_NOT_FOUND);
	assert_int_equal(debug_virt_copy(&c, &ph, VA + 0x4ffc, buf, 8, false), ZHV_ERR_NOT_FOUND);
	assert_int_equal(g->writes, 0);
	/* Into the non-canonical hole and around the top of the address space. */
	assert_int_equal(debug_virt_copy(&c, &ph, 0x00007ffffffffff8ull, buf, 16, false),
	                 ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(debug_virt_copy(&c, &ph, 0xfffffffffffffff8ull, buf, 16, false),
	                 ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(debug_virt_copy(&c, &ph, VA, NULL, 16, false), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(g->writes, 0);
}

/* A 32-bit range may not run past 4 GiB. */
static void test_copy_32bit_end(void **state)
{
	struct gmem *g = *state;
	struct pagewalk_ctx c = ctx_of(g, CR0_PE, 0, 0, 0);
	struct debug_phys ph = phys_of(g);
	uint8_t buf[16];
	assert_int_equal(debug_virt_copy(&c, &ph, 0xfffffff8ull, buf, 16, false),
	                 ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(debug_virt_copy(&c, &ph, 0xfffffff8ull, buf, 8, false), ZHV_ERR_NOT_FOUND);
	g->mem[0x1234] = 0x77;
	assert_int_equal(debug_virt_copy(&c, &ph, 0x1234, buf, 1, false), ZHV_OK);
	assert_int_equal(buf[0], 0x77);
}

/* Settings: what set_debug accepts, the DR7 it gives KVM, and what a
 * debug exit means under them. */
static zhv_vcpu_debug_t cfg_of(uint32_t flags)
{
	zhv_vcpu_debug_t d;
	memset(&d, 0, sizeof(d));
	d.flags = flags;
	return d;
}

static void test_settings_valid(void **state)
{
	(void)state;
	zhv_vcpu_debug_t d = cfg_of(0);
	assert_true(debug_settings_valid(&d));
	d = cfg_of(ZHV_DEBUG_ENABLE | ZHV_DEBUG_SINGLESTEP | ZHV_DEBUG_SW_BREAKPOINTS);
	assert_true(debug_settings_valid(&d));
	d.flags |= 1u << 3;
	assert_false(debug_settings_valid(&d));
	d = cfg_of(ZHV_DEBUG_SINGLESTEP);
	assert_false(debug_settings_valid(&d));
	static const struct {
		uint64_t addr;
		uint8_t type, len;
		bool ok;
	} slots[] = {
		{0x1000, ZHV_DEBUG_HW_EXEC, 1, true},   {0x1001, ZHV_DEBUG_HW_EXEC, 1, true},
		{0x1000, ZHV_DEBUG_HW_EXEC, 2, false},  {0x1000, ZHV_DEBUG_HW_WRITE, 8, true},
		{0x1004, ZHV_DEBUG_HW_WRITE, 8, false}, {0x1002, ZHV_DEBUG_HW_ACCESS, 2, true},
		{0x1002, ZHV_DEBUG_HW_ACCESS, 4, false}, {0x1000, ZHV_DEBUG_HW_ACCESS, 3, false},
		{0x1000, ZHV_DEBUG_HW_WRITE, 0, false}, {0x1000, 4, 1, false},
		{0x1003, ZHV_DEBUG_HW_OFF, 7, true},
	};
	for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		for (int k = 0; k < 4; k++) {
			d = cfg_of(ZHV_DEBUG_ENABLE);
			d.hw[k].addr = slots[i].addr;
			d.hw[k].type = slots[i].type;
			d.hw[k].len = slots[i].len;
			assert_int_equal(debug_settings_valid(&d), slots[i].ok);
			/* Without ENABLE no slot may be set. */
			d.flags = 0;
			assert_int_equal(debug_settings_valid(&d), slots[i].type == ZHV_DEBUG_HW_OFF);
		}
	}
	d = cfg_of(ZHV_DEBUG_ENABLE);
	d.reserved = 1;
	assert_false(debug_settings_valid(&d));
	d = cfg_of(ZHV_DEBUG_ENABLE);
	d.hw[2].reserved[0] = 1;
	assert_false(debug_settings_valid(&d));
}

static void test_dr7(void **state)
{
	(void)state;
	zhv_vcpu_debug_t d = cfg_of(ZHV_DEBUG_ENABLE);
	assert_int_equal(debug_dr7(&d), 0x400);
	d.hw[0] = (__typeof__(d.hw[0])){.addr = 0x1000, .type = ZHV_DEBUG_HW_EXEC, .len = 1};
	d.hw[1] = (__typeof__(d.hw[0])){.addr = 0x2000, .type = ZHV_DEBUG_HW_WRITE, .len = 8};
	d.hw[2] = (__typeof__(d.hw[0])){.addr = 0x3000, .type = ZHV_DEBUG_HW_ACCESS, .len = 4};
	d.hw[3] = (__typeof__(d.hw[0])){.addr = 0x4000, .type = ZHV_DEBUG_HW_WRITE, .len = 2};
	/* G0-G3 (bits 1, 3, 5, 7), GE (9), bit 10; R/W and LEN per slot:
	 * 0: exec/1 = 00/00, 1: write/8 = 01/10, 2: rw/4 = 11/11,
	 * 3: write/2 = 01/01. */
	uint64_t want = 0x400 | 0x200 | 0xaa | (0x0ull << 16) | (0x9ull << 20) | (0xfull << 24) |
	                (0x5ull << 28);
	assert_int_equal(debug_dr7(&d), want);
	d.hw[1].type = ZHV_DEBUG_HW_OFF;
	assert_int_equal(debug_dr7(&d), want & ~(0x8ull | (0xfull << 20)));
}

static void test_classify(void **state)
{
	(void)state;
	uint32_t slot = 99;
	zhv_vcpu_debug_t d = cfg_of(ZHV_DEBUG_ENABLE | ZHV_DEBUG_SINGLESTEP);
	const uint64_t bs = 0xffff4ff0; /* what kvm_pvm reports for a step */
	assert_int_equal(debug_classify(&d, 1, bs, &slot), ZHV_DEBUG_STOP_STEP);
	assert_int_equal(slot, 0);
	assert_int_equal(debug_classify(&d, 3, 0, &slot), 0); /* no SW_BREAKPOINTS */
	d.flags |= ZHV_DEBUG_SW_BREAKPOINTS;
	assert_int_equal(debug_classify(&d, 3, 0, &slot), ZHV_DEBUG_STOP_SW_BREAKPOINT);
	d.hw[2] = (__typeof__(d.hw[0])){.addr = 0x3000, .type = ZHV_DEBUG_HW_WRITE, .len = 4};
	d.hw[3] = (__typeof__(d.hw[0])){.addr = 0x4000, .type = ZHV_DEBUG_HW_EXEC, .len = 1};
	/* B2 with BS: the watchpoint, slot 2. */
	assert_int_equal(debug_classify(&d, 1, 0xffff0ff0 | 4 | (1u << 14), &slot),
	                 ZHV_DEBUG_STOP_WATCHPOINT);
	assert_int_equal(slot, 2);
	assert_int_equal(debug_classify(&d, 1, 0xffff0ff0 | 8, &slot),
	                 ZHV_DEBUG_STOP_HW_BREAKPOINT);
	assert_int_equal(slot, 3);
	/* B0 of a slot not in use, no BS: the guest's own. */
	assert_int_equal(debug_classify(&d, 1, 0xffff0ff0 | 1, &slot), 0);
	d.flags &= ~ZHV_DEBUG_SINGLESTEP;
	assert_int_equal(debug_classify(&d, 1, bs, &slot), 0);
	assert_int_equal(debug_classify(&d, 14, bs, &slot), 0);
	d.flags = 0;
	assert_int_equal(debug_classify(&d, 3, 0, &slot), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_four_level, gmem_setup, NULL),
		cmocka_unit_test_setup_teardown(test_five_level, gmem_setup, NULL),
		cmocka_unit_test_setup_teardown(test_pae32, gmem_setup, NULL),
		cmocka_unit_test_setup_teardown(test_legacy32, gmem_setup, NULL),
		cmocka_unit_test_setup_teardown(test_no_paging, gmem_setup, NULL),
		cmocka_unit_test_setup_teardown(test_copy_across_pages, gmem_setup, NULL),
		cmocka_unit_test_setup_teardown(test_copy_all_or_nothing, gmem_setup, NULL),
		cmocka_unit_test_setup_teardown(test_copy_32bit_end, gmem_setup, NULL),
		cmocka_unit_test(test_settings_valid),
		cmocka_unit_test(test_dr7),
		cmocka_unit_test(test_classify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
