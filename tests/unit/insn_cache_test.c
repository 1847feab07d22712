/* insn_cache_test.c: the per-vCPU memo of MEM packets' instruction lengths
 * (lib/x86/insn_cache.c) and the candidate count it relies on
 * (decode_backwards_write_fits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "x86/decode.h"
#include "x86/insn_cache.h"

static unsigned V(const struct insn_cache_entry *e)
{
	return e ? e->value : 0;
}

static const uint8_t store7[] = {0x89, 0x04, 0x25, 0x00, 0xe0, 0xff, 0x00}; /* mov %eax, abs */

static void test_miss_then_hit(void **state)
{
	(void)state;
	struct insn_cache c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(V(insn_cache_lookup(&c, 0x2000, 2, false, 4, store7, 7)), 0);
	insn_cache_store(&c, 0x2000, 2, false, 4, store7, 7, 7);
	assert_int_equal(V(insn_cache_lookup(&c, 0x2000, 2, false, 4, store7, 7)), 7);
	/* More bytes available than the instruction: still a hit. */
	uint8_t more[15];
	memset(more, 0x90, sizeof(more));
	memcpy(more, store7, 7);
	assert_int_equal(V(insn_cache_lookup(&c, 0x2000, 2, false, 4, more, 15)), 7);
	assert_int_equal(c.hits, 2);
	assert_int_equal(c.misses, 1);
}

static void test_any_difference_misses(void **state)
{
	(void)state;
	struct insn_cache c;
	memset(&c, 0, sizeof(c));
	insn_cache_store(&c, 0x2000, 2, false, 4, store7, 7, 7);
	uint8_t changed[7];
	memcpy(changed, store7, 7);
	changed[6] ^= 1; /* one byte of the instruction rewritten */
	assert_int_equal(V(insn_cache_lookup(&c, 0x2000, 2, false, 4, changed, 7)), 0);
	assert_int_equal(V(insn_cache_lookup(&c, 0x2000, 1, false, 4, store7, 7)), 0); /* mode */
	assert_int_equal(V(insn_cache_lookup(&c, 0x2000, 2, true, 4, store7, 7)), 0);  /* direction */
	assert_int_equal(V(insn_cache_lookup(&c, 0x2000, 2, false, 2, store7, 7)), 0); /* size */
	assert_int_equal(V(insn_cache_lookup(&c, 0x3000, 2, false, 4, store7, 7)), 0); /* address */
	assert_int_equal(V(insn_cache_lookup(&c, 0x2000, 2, false, 4, store7, 6)), 0); /* too few */
	assert_int_equal(c.hits, 0);
}

/* A write entry is the whole window before RIP: a window of another
 * length (the page before became unmapped, say) is a miss. */
static void test_write_window_exact(void **state)
{
	(void)state;
	struct insn_cache c;
	memset(&c, 0, sizeof(c));
	uint8_t win[15];
	memset(win, 0x90, sizeof(win));
	memcpy(win + 8, store7, 7);
	insn_cache_store(&c, 0x2010, 2, true, 4, win, 15, 7);
	assert_int_equal(V(insn_cache_lookup(&c, 0x2010, 2, true, 4, win, 15)), 7);
	assert_int_equal(V(insn_cache_lookup(&c, 0x2010, 2, true, 4, win + 1, 14)), 0);
	win[0] = 0xcc; /* a byte before the instruction changed */
	assert_int_equal(V(insn_cache_lookup(&c, 0x2010, 2, true, 4, win, 15)), 0);
}

static void test_store_rejects_bad(void **state)
{
	(void)state;
	struct insn_cache c;
	memset(&c, 0, sizeof(c));
	uint8_t big[16] = {0};
	insn_cache_store(&c, 0x2000, 2, false, 4, big, 16, 7); /* too many bytes */
	insn_cache_store(&c, 0x2000, 2, false, 4, store7, 0, 7); /* no bytes */
	insn_cache_store(&c, 0x2000, 2, false, 4, store7, 7, 0); /* no value */
	for (unsigned i = 0; i < INSN_CACHE_SLOTS; i++)
		assert_int_equal(c.e[i].valid, 0);
}

/* Slots are direct-mapped: a colliding key replaces the entry, never
 * answers for it. */
static void test_collisions(void **state)
{
	(void)state;
	struct insn_cache c;
	memset(&c, 0, sizeof(c));
	for (uint64_t la = 0x1000; la < 0x1000 + 64 * 16; la += 16)
		insn_cache_store(&c, la, 2, false, 4, store7, 7, 7);
	unsigned hits = 0;
	for (uint64_t la = 0x1000; la < 0x1000 + 64 * 16; la += 16)
		hits += V(insn_cache_lookup(&c, la, 2, false, 4, store7, 7)) == 7;
	assert_true(hits <= INSN_CACHE_SLOTS);
	assert_true(hits > 0);
}

/* translate linear to physical one to one (the tests' flat mapping) */
static bool flat(void *opaque, uint64_t la, uint64_t *gpa)
{
	(void)opaque;
	*gpa = la;
	return true;
}

/* decode_backwards_write_fits gives the candidate set; with it,
 * decode_backwards_write_pick answers as the full decode does. The window
 * "nops; mov %eax, (0xFFE000)" has two candidates ending at RIP: the store
 * (7 bytes) and its last two bytes, ff 00 = "inc dword ptr [rax]". */
static void test_fits_and_pick(void **state)
{
	(void)state;
	uint8_t win[15];
	memset(win, 0x90, sizeof(win));
	memcpy(win + 8, store7, 7);
	struct decode_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = 0x2000 + 15;
	uint16_t fits = 0;
	unsigned len = decode_backwards_write_fits(win, sizeof(win), DECODE_MODE_LONG64, &regs,
	                                           0xffe000, 4, flat, NULL, NULL, &fits);
	assert_int_equal(len, 7);
	assert_int_equal(fits, (1u << 7) | (1u << 2));
	assert_int_equal(decode_backwards_write_pick(win, sizeof(win), DECODE_MODE_LONG64, &regs,
	                                             0xffe000, 4, flat, NULL, fits),
	                 7);
	/* With RAX = 0xFFE000 and the store's address elsewhere, the inc is
	 * the one that writes there: both ways agree. */
	regs.gpr[0] = 0xffe000;
	len = decode_backwards_write_fits(win, sizeof(win), DECODE_MODE_LONG64, &regs, 0xffe000, 4,
	                                  flat, NULL, NULL, &fits);
	uint8_t other[15];
	memcpy(other, win, sizeof(other));
	other[11] = 0x10; /* the store now writes 0xFFE010 */
	unsigned full = decode_backwards_write_fits(other, sizeof(other), DECODE_MODE_LONG64, &regs,
	                                            0xffe000, 4, flat, NULL, NULL, &fits);
	assert_int_equal(full, 2);
	assert_int_equal(decode_backwards_write_pick(other, sizeof(other), DECODE_MODE_LONG64,
	                                             &regs, 0xffe000, 4, flat, NULL, fits),
	                 2);
	assert_int_equal(len, 7);
	/* A 4-byte store of nothing: no candidate. */
	memset(win, 0x90, sizeof(win));
	len = decode_backwards_write_fits(win, sizeof(win), DECODE_MODE_LONG64, NULL, 0xffe000, 4,
	                                  NULL, NULL, NULL, &fits);
	assert_int_equal(len, 0);
	assert_int_equal(fits, 0);
	assert_int_equal(decode_backwards_write_pick(win, sizeof(win), DECODE_MODE_LONG64, NULL,
	                                             0xffe000, 4, NULL, NULL, 0),
	                 0);
	/* decode_length: the cheap forward length. */
	unsigned l = 0;
	assert_true(decode_length(store7, sizeof(store7), DECODE_MODE_LONG64, &l));
	assert_int_equal(l, 7);
	assert_false(decode_length(store7, 3, DECODE_MODE_LONG64, &l));
}

/* The address recipe of the longest candidate answers as the full decode's
 * address check does, for the operand forms a store can have. */
static bool flat_ok(void *opaque, uint64_t la, uint64_t *gpa)
{
	(void)opaque;
	*gpa = la;
	return true;
}

static void check_recipe(const uint8_t *insn, size_t n, const struct decode_regs *regs,
                         uint64_t want_gpa, unsigned size)
{
	struct decode_ea ea;
	assert_true(decode_store_ea(insn, n, DECODE_MODE_LONG64, &ea));
	assert_int_equal(ea.length, n);
	struct decode_insn d;
	struct decode_regs at = *regs;
	at.rip = regs->rip - n; /* decode_one wants the start */
	assert_true(decode_one(insn, n, DECODE_MODE_LONG64, &at, &d));
	assert_true(d.ea_valid);
	bool full = d.ea == want_gpa;
	if (!full && (insn[0] == 0xab || insn[0] == 0xaa || insn[1] == 0xab))
		full = d.ea - size == want_gpa || d.ea + size == want_gpa;
	assert_int_equal(decode_ea_matches(&ea, DECODE_MODE_LONG64, regs, want_gpa, size, flat_ok,
	                                   NULL),
	                 full);
	/* and a wrong address never matches */
	assert_false(decode_ea_matches(&ea, DECODE_MODE_LONG64, regs, want_gpa + 0x100000, size,
	                               flat_ok, NULL));
}

static void test_store_recipe(void **state)
{
	(void)state;
	struct decode_regs r;
	memset(&r, 0, sizeof(r));
	r.rip = 0x5000; /* past the instruction */
	r.gpr[0] = 0x1000;  /* rax */
	r.gpr[3] = 0x10;    /* rbx */
	r.gpr[7] = 0x9004;  /* rdi, already stepped by 4 */
	r.fs_base = 0x700000;
	/* mov %eax, 0xffe000 */
	check_recipe(store7, sizeof(store7), &r, 0xffe000, 4);
	/* mov %ecx, 8(%rax,%rbx,4) */
	static const uint8_t sib[] = {0x89, 0x4c, 0x98, 0x08};
	check_recipe(sib, sizeof(sib), &r, 0x1000 + 0x40 + 8, 4);
	/* mov %ecx, 0x100(%rip) */
	static const uint8_t riprel[] = {0x89, 0x0d, 0x00, 0x01, 0x00, 0x00};
	check_recipe(riprel, sizeof(riprel), &r, 0x5000 + 0x100, 4);
	/* mov %ecx, %fs:0x20 */
	static const uint8_t fs[] = {0x64, 0x89, 0x0c, 0x25, 0x20, 0x00, 0x00, 0x00};
	check_recipe(fs, sizeof(fs), &r, 0x700020, 4);
	/* stosl: rdi already moved on */
	static const uint8_t stos[] = {0xab};
	check_recipe(stos, sizeof(stos), &r, 0x9000, 4);
	/* mov %cx, (%eax) with an address-size prefix: 32-bit truncation */
	r.gpr[0] = 0xffffffff00002000ull;
	static const uint8_t a32[] = {0x67, 0x66, 0x89, 0x08};
	check_recipe(a32, sizeof(a32), &r, 0x2000, 2);
	/* a load has no store recipe */
	static const uint8_t load[] = {0x8b, 0x04, 0x25, 0x00, 0xe0, 0xff, 0x00};
	struct decode_ea ea;
	assert_false(decode_store_ea(load, sizeof(load), DECODE_MODE_LONG64, &ea));
	assert_false(ea.valid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_miss_then_hit),
		cmocka_unit_test(test_any_difference_misses),
		cmocka_unit_test(test_write_window_exact),
		cmocka_unit_test(test_store_rejects_bad),
		cmocka_unit_test(test_collisions),
		cmocka_unit_test(test_fits_and_pick),
		cmocka_unit_test(test_store_recipe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
