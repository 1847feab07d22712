/* virtqueue_test.c: unit tests of split virtqueues over a fake guest RAM (chains, indirect tables, loops, bad addresses, used ring, index wrap). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../vmm/dev/virtqueue.c"

/* Fake guest RAM: [0, MEM_SIZE). */
#define MEM_SIZE (1u << 20)
#define DESC 0x1000u
#define AVAIL 0x2000u
#define USED 0x3000u
#define TABLE 0x4000u /* an indirect table */
#define BUF 0x10000u

static uint8_t *mem;
static struct vm fake_vm;
static struct vq vq;
static struct vq_chain chain;
static uint16_t drv_avail; /* the driver's avail->idx */

void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	if (gpa > MEM_SIZE || len > MEM_SIZE - gpa)
		return NULL;
	return mem + gpa;
}

static void set_desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
	struct vq_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };

	memcpy(mem + table + 16u * i, &d, sizeof(d));
}

static void put16_mem(uint64_t gpa, uint16_t v)
{
	memcpy(mem + gpa, &v, 2);
}

static uint16_t get16_mem(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, mem + gpa, 2);
	return v;
}

static uint32_t get32_mem(uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, mem + gpa, 4);
	return v;
}

static void avail_add(uint16_t head)
{
	put16_mem(AVAIL + 4 + 2u * (drv_avail % vq.size), head);
	drv_avail++;
	put16_mem(AVAIL + 2, drv_avail);
}

static int setup_size(uint16_t size)
{
	memset(mem, 0, MEM_SIZE);
	vq_init(&vq, &fake_vm, 256);
	vq.size = size;
	vq.desc_gpa = DESC;
	vq.avail_gpa = AVAIL;
	vq.used_gpa = USED;
	drv_avail = 0;
	return vq_enable(&vq);
}

static int setup(void **state)
{
	if (!mem)
		mem = aligned_alloc(4096, MEM_SIZE);
	return mem ? setup_size(8) : -1;
}

static int teardown_all(void **state)
{
	free(mem);
	mem = NULL;
	return 0;
}

static void test_simple_chain(void **state)
{
	set_desc(DESC, 3, BUF, 16, VQ_DESC_F_NEXT, 5);
	set_desc(DESC, 5, BUF + 0x100, 100, VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, BUF + 0x200, 1, VQ_DESC_F_WRITE, 0);
	avail_add(3);

	assert_int_equal(vq_pop(&vq, &chain), 1);
	assert_int_equal(chain.head, 3);
	assert_int_equal(chain.nr_out, 2);
	assert_int_equal(chain.nr_in, 1);
	assert_int_equal(chain.out_len, 116);
	assert_int_equal(chain.in_len, 1);
	assert_ptr_equal(chain.iov[0].iov_base, mem + BUF);
	assert_int_equal(chain.iov[1].iov_len, 100);
	assert_ptr_equal(chain.iov[2].iov_base, mem + BUF + 0x200);
	assert_int_equal(vq_pop(&vq, &chain), 0); /* empty */
	assert_false(vq_has_avail(&vq));
}

static void test_not_ready_pops_nothing(void **state)
{
	struct vq off;

	vq_init(&off, &fake_vm, 8);
	assert_int_equal(vq_pop(&off, &chain), 0);
	assert_false(vq_has_avail(&off));
	assert_false(vq_notify_needed(&off));
}

static void test_indirect(void **state)
{
	set_desc(TABLE, 0, BUF, 16, VQ_DESC_F_NEXT, 2);
	set_desc(TABLE, 2, BUF + 0x100, 512, VQ_DESC_F_NEXT | VQ_DESC_F_WRITE, 1);
	set_desc(TABLE, 1, BUF + 0x400, 1, VQ_DESC_F_WRITE, 0);
	/* WRITE on the indirect descriptor itself is ignored (§2.7.5.3.2). */
	set_desc(DESC, 0, TABLE, 3 * 16, VQ_DESC_F_INDIRECT | VQ_DESC_F_WRITE, 0);
	avail_add(0);

	assert_int_equal(vq_pop(&vq, &chain), 1);
	assert_int_equal(chain.head, 0);
	assert_int_equal(chain.nr_out, 1);
	assert_int_equal(chain.nr_in, 2);
	assert_int_equal(chain.in_len, 513);
	assert_ptr_equal(chain.iov[2].iov_base, mem + BUF + 0x400);
}

static void test_direct_then_indirect(void **state)
{
	set_desc(TABLE, 0, BUF + 0x100, 8, VQ_DESC_F_WRITE, 0);
	set_desc(DESC, 4, BUF, 16, VQ_DESC_F_NEXT, 6);
	set_desc(DESC, 6, TABLE, 16, VQ_DESC_F_INDIRECT, 0);
	avail_add(4);

	assert_int_equal(vq_pop(&vq, &chain), 1);
	assert_int_equal(chain.nr_out, 1);
	assert_int_equal(chain.nr_in, 1);
}

static void expect_broken(int err)
{
	assert_int_equal(vq_pop(&vq, &chain), err);
	assert_true(vq.broken);
	/* Broken stays broken until reset: no retry of the bad chain. */
	assert_int_equal(vq_pop(&vq, &chain), -EIO);
	assert_true(vq_has_avail(&vq));
}

static void test_loop_detected(void **state)
{
	set_desc(DESC, 0, BUF, 16, VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, BUF, 16, VQ_DESC_F_NEXT, 2);
	set_desc(DESC, 2, BUF, 16, VQ_DESC_F_NEXT, 0);
	avail_add(0);
	expect_broken(-EINVAL);

	/* A reset and re-enable bring the queue back. */
	vq_reset(&vq);
	assert_int_equal(setup_size(8), 0);
	set_desc(DESC, 0, BUF, 16, 0, 0);
	avail_add(0);
	assert_int_equal(vq_pop(&vq, &chain), 1);
}

static void test_self_loop_of_empty_descriptors(void **state)
{
	/* Zero-length descriptors add no segment but still count. */
	set_desc(DESC, 7, BUF, 0, VQ_DESC_F_NEXT, 7);
	avail_add(7);
	expect_broken(-EINVAL);
}

static void test_indirect_loop(void **state)
{
	set_desc(TABLE, 0, BUF, 8, VQ_DESC_F_NEXT, 1);
	set_desc(TABLE, 1, BUF, 8, VQ_DESC_F_NEXT, 0);
	set_desc(DESC, 0, TABLE, 2 * 16, VQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	expect_broken(-EINVAL);
}

static void test_indirect_next_out_of_table(void **state)
{
	set_desc(TABLE, 0, BUF, 8, VQ_DESC_F_NEXT, 2); /* table has 2 entries */
	set_desc(DESC, 0, TABLE, 2 * 16, VQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	expect_broken(-EINVAL);
}

static void test_nested_indirect(void **state)
{
	set_desc(TABLE, 0, TABLE, 16, VQ_DESC_F_INDIRECT, 0);
	set_desc(DESC, 0, TABLE, 16, VQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	expect_broken(-EINVAL);
}

static void test_indirect_malformed(void **state)
{
	/* Not a whole number of descriptors. */
	set_desc(DESC, 0, TABLE, 24, VQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	expect_broken(-EINVAL);

	/* INDIRECT together with NEXT (§2.7.5.3.1). */
	assert_int_equal(setup_size(8), 0);
	set_desc(TABLE, 0, BUF, 8, 0, 0);
	set_desc(DESC, 0, TABLE, 16, VQ_DESC_F_INDIRECT | VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, BUF, 8, 0, 0);
	avail_add(0);
	expect_broken(-EINVAL);

	/* Empty table. */
	assert_int_equal(setup_size(8), 0);
	set_desc(DESC, 0, TABLE, 0, VQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	expect_broken(-EINVAL);

	/* Table outside RAM. */
	assert_int_equal(setup_size(8), 0);
	set_desc(DESC, 0, MEM_SIZE - 16, 32, VQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	expect_broken(-EFAULT);
}

static void test_buffer_outside_ram(void **state)
{
	set_desc(DESC, 0, BUF, 16, VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, MEM_SIZE - 4, 8, VQ_DESC_F_WRITE, 0);
	avail_add(0);
	expect_broken(-EFAULT);

	/* An address whose end wraps around 2^64. */
	assert_int_equal(setup_size(8), 0);
	set_desc(DESC, 0, UINT64_MAX - 3, 16, 0, 0);
	avail_add(0);
	expect_broken(-EFAULT);
}

static void test_chain_over_4g(void **state)
{
	set_desc(DESC, 0, BUF, 16, VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, BUF, UINT32_MAX, 0, 0);
	avail_add(0);
	expect_broken(-EINVAL);
}

static void test_write_before_read(void **state)
{
	set_desc(DESC, 0, BUF, 16, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, BUF, 16, 0, 0);
	avail_add(0);
	expect_broken(-EINVAL);
}

static void test_bad_head(void **state)
{
	avail_add(8); /* size is 8 */
	expect_broken(-EINVAL);
}

static void test_avail_idx_too_far(void **state)
{
	put16_mem(AVAIL + 2, 9); /* 9 new entries in an 8-entry ring */
	expect_broken(-EINVAL);
}

static void test_ring_outside_ram(void **state)
{
	vq_init(&vq, &fake_vm, 256);
	vq.size = 256;
	vq.desc_gpa = MEM_SIZE - 16 * 128; /* table needs 16 * 256 */
	vq.avail_gpa = AVAIL;
	vq.used_gpa = USED;
	assert_int_equal(vq_enable(&vq), -EFAULT);
	assert_false(vq.ready);
	assert_int_equal(vq_pop(&vq, &chain), 0);

	vq.desc_gpa = DESC;
	vq.used_gpa = UINT64_MAX & ~3ull;
	assert_int_equal(vq_enable(&vq), -EFAULT);
	vq.used_gpa = USED;
	assert_int_equal(vq_enable(&vq), 0);
}

static void test_enable_checks(void **state)
{
	static const uint16_t bad_sizes[] = { 0, 3, 12, 512 };

	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++)
		assert_int_equal(setup_size(bad_sizes[i]), -EINVAL);
	assert_int_equal(setup_size(1), 0);
	assert_int_equal(setup_size(256), 0);

	vq.ready = false;
	vq.desc_gpa = DESC + 8; /* 16-byte alignment */
	assert_int_equal(vq_enable(&vq), -EINVAL);
	vq.desc_gpa = DESC;
	vq.avail_gpa = AVAIL + 1;
	assert_int_equal(vq_enable(&vq), -EINVAL);
	vq.avail_gpa = AVAIL;
	vq.used_gpa = USED + 2;
	assert_int_equal(vq_enable(&vq), -EINVAL);
}

static void test_zero_length_descriptor(void **state)
{
	set_desc(DESC, 0, BUF, 16, VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, 0xdeadbeef0000ull, 0, VQ_DESC_F_NEXT, 2); /* never mapped */
	set_desc(DESC, 2, BUF, 4, VQ_DESC_F_WRITE, 0);
	avail_add(0);
	assert_int_equal(vq_pop(&vq, &chain), 1);
	assert_int_equal(chain.nr_out, 1);
	assert_int_equal(chain.nr_in, 1);
}

static void test_used_ring(void **state)
{
	set_desc(DESC, 2, BUF, 16, 0, 0);
	set_desc(DESC, 6, BUF, 16, 0, 0);
	avail_add(2);
	avail_add(6);

	assert_int_equal(vq_pop(&vq, &chain), 1);
	vq_push(&vq, chain.head, 77);
	assert_int_equal(get16_mem(USED + 2), 1);
	assert_int_equal(get32_mem(USED + 4), 2);
	assert_int_equal(get32_mem(USED + 8), 77);

	/* Batched: both elements appear with one index update. */
	assert_int_equal(vq_pop(&vq, &chain), 1);
	vq_fill(&vq, 0, chain.head, 5);
	vq_fill(&vq, 1, 2, 6);
	assert_int_equal(get16_mem(USED + 2), 1);
	vq_flush(&vq, 2);
	assert_int_equal(get16_mem(USED + 2), 3);
	assert_int_equal(get32_mem(USED + 4 + 8), 6);
	assert_int_equal(get32_mem(USED + 4 + 16), 2);
	assert_int_equal(get32_mem(USED + 4 + 16 + 4), 6);
}

/* Used lengths are 64-bit on the device side: past 2 GiB they arrive
 * whole, and what does not fit the 32-bit used element is clamped, not
 * wrapped (a wrapped 4 GiB + 5 would tell the driver 5 bytes). */
static void test_used_length_wide(void **state)
{
	set_desc(DESC, 3, BUF, 16, VQ_DESC_F_WRITE, 0);
	avail_add(3);
	avail_add(3);
	avail_add(3);
	assert_int_equal(vq_pop(&vq, &chain), 1);
	vq_push(&vq, chain.head, 0x80000001ull);
	assert_int_equal(get32_mem(USED + 8), 0x80000001u);
	assert_int_equal(vq_pop(&vq, &chain), 1);
	vq_push(&vq, chain.head, 0xffffffffull);
	assert_int_equal(get32_mem(USED + 8 + 8), 0xffffffffu);
	assert_int_equal(vq_pop(&vq, &chain), 1);
	vq_push(&vq, chain.head, (1ull << 32) + 5);
	assert_int_equal(get32_mem(USED + 8 + 16), UINT32_MAX);
	assert_int_equal(get16_mem(USED + 2), 3);
}

static void test_unpop(void **state)
{
	set_desc(DESC, 1, BUF, 16, VQ_DESC_F_WRITE, 0);
	set_desc(DESC, 2, BUF, 32, VQ_DESC_F_WRITE, 0);
	avail_add(1);
	avail_add(2);
	assert_int_equal(vq_pop(&vq, &chain), 1);
	assert_int_equal(vq_pop(&vq, &chain), 1);
	vq_unpop(&vq, 2);
	assert_int_equal(vq_pop(&vq, &chain), 1);
	assert_int_equal(chain.head, 1);
}

/* 70000 round trips through a 4-entry ring: both 16-bit indices wrap. */
static void test_index_wraparound(void **state)
{
	assert_int_equal(setup_size(4), 0);
	for (uint32_t i = 0; i < 70000; i++) {
		uint16_t head = (uint16_t)(i % 4);

		set_desc(DESC, head, BUF + 8 * head, 8, VQ_DESC_F_WRITE, 0);
		avail_add(head);
		assert_int_equal(vq_pop(&vq, &chain), 1);
		assert_int_equal(chain.head, head);
		vq_push(&vq, head, i);
		assert_int_equal(get16_mem(USED + 2), (uint16_t)(i + 1));
		assert_int_equal(get32_mem(USED + 4 + 8 * ((i) % 4)), head);
		assert_int_equal(get32_mem(USED + 8 + 8 * ((i) % 4)), i);
	}
	assert_int_equal(vq.last_avail, (uint16_t)70000);
	assert_int_equal(vq_pop(&vq, &chain), 0);
}

static void test_notify_needed(void **state)
{
	assert_true(vq_notify_needed(&vq));
	put16_mem(AVAIL, VQ_AVAIL_F_NO_INTERRUPT);
	assert_false(vq_notify_needed(&vq));
}

static void test_chain_segment_limit(void **state)
{
	/* A 256-entry ring, every descriptor chained: fine; a full indirect
	 * table of VQ_MAX_CHAIN entries: fine; one more: rejected. */
	assert_int_equal(setup_size(256), 0);
	for (uint16_t i = 0; i < 256; i++)
		set_desc(DESC, i, BUF, 1, i == 255 ? 0 : VQ_DESC_F_NEXT, (uint16_t)(i + 1));
	avail_add(0);
	assert_int_equal(vq_pop(&vq, &chain), 1);
	assert_int_equal(chain.nr_out, 256);

	for (uint16_t i = 0; i < VQ_MAX_CHAIN; i++)
		set_desc(TABLE, i, BUF, 1, i == VQ_MAX_CHAIN - 1 ? 0 : VQ_DESC_F_NEXT,
		         (uint16_t)(i + 1));
	set_desc(DESC, 0, TABLE, 16 * VQ_MAX_CHAIN, VQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	assert_int_equal(vq_pop(&vq, &chain), 1);
	assert_int_equal(chain.out_len, VQ_MAX_CHAIN);

	set_desc(DESC, 0, TABLE, 16 * (VQ_MAX_CHAIN + 1), VQ_DESC_F_INDIRECT, 0);
	avail_add(0);
	expect_broken(-EINVAL);
}

static void test_iov_helpers(void **state)
{
	uint8_t a[3], b[5], out[8];
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } }, sl[2];
	size_t got;

	assert_int_equal(vq_iov_write(iov, 2, 1, "ABCDEFGHIJ", 10), 7);
	assert_int_equal(a[1], 'A');
	assert_int_equal(b[0], 'C');
	assert_int_equal(b[4], 'G');
	assert_int_equal(vq_iov_read(iov, 2, 2, out, 4), 4);
	assert_memory_equal(out, "BCDE", 4);
	assert_int_equal(vq_iov_read(iov, 2, 8, out, 4), 0);

	assert_int_equal(vq_iov_slice(iov, 2, 2, 3, sl, 2, &got), 2);
	assert_int_equal(got, 3);
	assert_ptr_equal(sl[0].iov_base, a + 2);
	assert_int_equal(sl[0].iov_len, 1);
	assert_ptr_equal(sl[1].iov_base, b);
	assert_int_equal(sl[1].iov_len, 2);
	assert_int_equal(vq_iov_slice(iov, 2, 0, 100, sl, 1, &got), 1);
	assert_int_equal(got, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_simple_chain, setup),
		cmocka_unit_test_setup(test_not_ready_pops_nothing, setup),
		cmocka_unit_test_setup(test_indirect, setup),
		cmocka_unit_test_setup(test_direct_then_indirect, setup),
		cmocka_unit_test_setup(test_loop_detected, setup),
		cmocka_unit_test_setup(test_self_loop_of_empty_descriptors, setup),
		cmocka_unit_test_setup(test_indirect_loop, setup),
		cmocka_unit_test_setup(test_indirect_next_out_of_table, setup),
		cmocka_unit_test_setup(test_nested_indirect, setup),
		cmocka_unit_test_setup(test_indirect_malformed, setup),
		cmocka_unit_test_setup(test_buffer_outside_ram, setup),
		cmocka_unit_test_setup(test_chain_over_4g, setup),
		cmocka_unit_test_setup(test_write_before_read, setup),
		cmocka_unit_test_setup(test_bad_head, setup),
		cmocka_unit_test_setup(test_avail_idx_too_far, setup),
		cmocka_unit_test_setup(test_ring_outside_ram, setup),
		cmocka_unit_test_setup(test_enable_checks, setup),
		cmocka_unit_test_setup(test_zero_length_descriptor, setup),
		cmocka_unit_test_setup(test_used_ring, setup),
		cmocka_unit_test_setup(test_unpop, setup),
		cmocka_unit_test_setup(test_index_wraparound, setup),
		cmocka_unit_test_setup(test_notify_needed, setup),
		cmocka_unit_test_setup(test_chain_segment_limit, setup),
		cmocka_unit_test_setup(test_iov_helpers, setup),
		cmocka_unit_test_setup(test_used_length_wide, setup),
	};

	return cmocka_run_group_tests(tests, NULL, teardown_all);
}
