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

static const uint8_t store7[] = {0x89, 0x04, 0x25, 0x00, 0xe0, 0xff, 0x00}; /* mov %eax, abs */

static void test_miss_then_hit(void **state)
{
	(void)state;
	struct insn_cache c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(insn_cache_lookup(&c, 0x2000, 2, false, 4, store7, 7), 0);
	insn_cache_store(&c, 0x2000, 2, false, 4, store7, 7, 7);
	assert_int_equal(insn_cache_lookup(&c, 0x2000, 2, false, 4, store7, 7), 7);
	/* More bytes available than the instruction: still a hit. */
	uint8_t more[15];
	memset(more, 0x90, sizeof(more));
	memcpy(more, store7, 7);
	assert_int_equal(insn_cache_lookup(&c, 0x2000, 2, false, 4, more, 15), 7);
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
	assert_int_equal(insn_cache_lookup(&c, 0x2000, 2, false, 4, changed, 7), 0);
	assert_int_equal(insn_cache_lookup(&c, 0x2000, 1, false, 4, store7, 7), 0); /* mode */
	assert_int_equal(insn_cache_lookup(&c, 0x2000, 2, true, 4, store7, 7), 0);  /* direction */
	assert_int_equal(insn_cache_lookup(&c, 0x2000, 2, false, 2, store7, 7), 0); /* size */
	assert_int_equal(insn_cache_lookup(&c, 0x3000, 2, false, 4, store7, 7), 0); /* address */
	assert_int_equal(insn_cache_lookup(&c, 0x2000, 2, false, 4, store7, 6), 0); /* too few */
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
	assert_int_equal(insn_cache_lookup(&c, 0x2010, 2, true, 4, win, 15), 7);
	assert_int_equal(insn_cache_lookup(&c, 0x2010, 2, true, 4, win + 1, 14), 0);
	win[0] = 0xcc; /* a byte before the instruction changed */
	assert_int_equal(insn_cache_lookup(&c, 0x2010, 2, true, 4, win, 15), 0);
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
		hits += insn_cache_lookup(&c, la, 2, false, 4, store7, 7) == 7;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_miss_then_hit),
		cmocka_unit_test(test_any_difference_misses),
		cmocka_unit_test(test_write_window_exact),
		cmocka_unit_test(test_store_rejects_bad),
		cmocka_unit_test(test_collisions),
		cmocka_unit_test(test_fits_and_pick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
