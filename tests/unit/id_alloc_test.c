/* id_alloc_test.c: unit tests of the round-robin id allocator (Zircon's id_allocator test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>

#include "id_alloc.h"

static uint32_t get_ok(struct id_alloc *a)
{
	uint32_t id = UINT32_MAX;

	assert_int_equal(id_alloc_get(a, &id), ZHV_OK);
	return id;
}

static void test_init_rejects_empty_range(void **state)
{
	struct id_alloc a;

	assert_int_equal(id_alloc_init(&a, 1, 1), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(id_alloc_init(&a, 5, 2), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(id_alloc_init(&a, 1, 2), ZHV_OK);
	assert_int_equal(get_ok(&a), 1);
	id_alloc_destroy(&a);
}

/* Zircon's id_allocator_alloc_and_free, with MinId 1 and MaxId 8. */
static void test_alloc_and_free(void **state)
{
	const uint32_t min = 1, max = 8, free_id = max / 2;
	struct id_alloc a;
	uint32_t id = 12345;

	assert_int_equal(id_alloc_init(&a, min, max), ZHV_OK);
	for (uint32_t i = min; i < max; i++)
		assert_int_equal(get_ok(&a), i);

	/* Full: NO_RESOURCES, and the output is left alone. */
	assert_int_equal(id_alloc_get(&a, &id), ZHV_ERR_NO_RESOURCES);
	assert_int_equal(id, 12345);

	assert_int_equal(id_alloc_put(&a, free_id), ZHV_OK);
	assert_int_equal(id_alloc_put(&a, free_id), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(id_alloc_put(&a, max + 1), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(id_alloc_put(&a, max), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(id_alloc_put(&a, 0), ZHV_ERR_INVALID_ARGS);

	/* The only free id is found by wrapping around from the hint. */
	assert_int_equal(get_ok(&a), free_id);
	assert_int_equal(id_alloc_get(&a, &id), ZHV_ERR_NO_RESOURCES);
	id_alloc_destroy(&a);
}

/* Spec 2.3: a freed id is not reused until the hint wraps around, so after
 * freeing vCPU 1 the next vCPUs are not the BSP. */
static void test_round_robin(void **state)
{
	struct id_alloc a;

	assert_int_equal(id_alloc_init(&a, 1, 64), ZHV_OK);
	assert_int_equal(get_ok(&a), 1);
	assert_int_equal(get_ok(&a), 2);
	assert_int_equal(get_ok(&a), 3);
	assert_int_equal(id_alloc_put(&a, 1), ZHV_OK);
	assert_int_equal(id_alloc_put(&a, 2), ZHV_OK);
	assert_int_equal(get_ok(&a), 4);
	for (uint32_t i = 5; i < 64; i++)
		assert_int_equal(get_ok(&a), i);
	/* 63 was last: next wraps to min, where 1 and 2 are free again. */
	assert_int_equal(get_ok(&a), 1);
	assert_int_equal(get_ok(&a), 2);
	assert_int_equal(id_alloc_put(&a, 40), ZHV_OK);
	assert_int_equal(id_alloc_put(&a, 10), ZHV_OK);
	/* The hint is 3: the search from it finds 10 before 40. */
	assert_int_equal(get_ok(&a), 10);
	assert_int_equal(get_ok(&a), 40);
	id_alloc_destroy(&a);
}

/* Ranges that start and end inside 64-bit words, and free ids in several
 * words, exercise the word-at-a-time search. */
static void test_word_boundaries(void **state)
{
	struct id_alloc a;
	uint32_t id;

	assert_int_equal(id_alloc_init(&a, 70, 75), ZHV_OK);
	for (uint32_t i = 70; i < 75; i++)
		assert_int_equal(get_ok(&a), i);
	assert_int_equal(id_alloc_get(&a, &id), ZHV_ERR_NO_RESOURCES);
	assert_int_equal(id_alloc_put(&a, 69), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(id_alloc_put(&a, 75), ZHV_ERR_INVALID_ARGS);
	id_alloc_destroy(&a);

	assert_int_equal(id_alloc_init(&a, 0, 200), ZHV_OK);
	for (uint32_t i = 0; i < 200; i++)
		assert_int_equal(get_ok(&a), i);
	assert_int_equal(id_alloc_put(&a, 130), ZHV_OK);
	assert_int_equal(id_alloc_put(&a, 63), ZHV_OK);
	assert_int_equal(id_alloc_put(&a, 64), ZHV_OK);
	assert_int_equal(id_alloc_put(&a, 199), ZHV_OK);
	/* Hint is at min (199 was last); ids come back in ascending order. */
	assert_int_equal(get_ok(&a), 63);
	assert_int_equal(get_ok(&a), 64);
	assert_int_equal(get_ok(&a), 130);
	assert_int_equal(get_ok(&a), 199);
	assert_int_equal(id_alloc_get(&a, &id), ZHV_ERR_NO_RESOURCES);
	id_alloc_destroy(&a);
}

#define THREADS 8
#define ROUNDS 2000
#define RANGE 16 /* fewer ids than threads * 2: contention and NO_RESOURCES */

struct shared {
	struct id_alloc a;
	atomic_int owner[RANGE];
	atomic_int errors;
	atomic_int exhausted;
};

static void *churn(void *arg)
{
	struct shared *s = arg;

	for (int r = 0; r < ROUNDS; r++) {
		uint32_t id, id2;
		zhv_status_t st = id_alloc_get(&s->a, &id);

		if (st == ZHV_ERR_NO_RESOURCES) {
			atomic_fetch_add(&s->exhausted, 1);
			continue;
		}
		if (st != ZHV_OK || id >= RANGE) {
			atomic_fetch_add(&s->errors, 1);
			continue;
		}
		/* No two threads may hold the same id at once. */
		if (atomic_fetch_add(&s->owner[id], 1) != 0)
			atomic_fetch_add(&s->errors, 1);
		if (id_alloc_get(&s->a, &id2) == ZHV_OK) {
			if (atomic_fetch_add(&s->owner[id2], 1) != 0)
				atomic_fetch_add(&s->errors, 1);
			atomic_fetch_sub(&s->owner[id2], 1);
			if (id_alloc_put(&s->a, id2) != ZHV_OK)
				atomic_fetch_add(&s->errors, 1);
		}
		atomic_fetch_sub(&s->owner[id], 1);
		if (id_alloc_put(&s->a, id) != ZHV_OK)
			atomic_fetch_add(&s->errors, 1);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	static struct shared s;
	pthread_t t[THREADS];

	assert_int_equal(id_alloc_init(&s.a, 0, RANGE), ZHV_OK);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, churn, &s), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&s.errors), 0);
	/* Every id was given back: all RANGE ids can be taken again. */
	for (uint32_t i = 0; i < RANGE; i++) {
		uint32_t id;

		assert_int_equal(id_alloc_get(&s.a, &id), ZHV_OK);
		assert_true(id < RANGE);
		assert_int_equal(atomic_load(&s.owner[id]), 0);
		atomic_store(&s.owner[id], 1);
	}
	id_alloc_destroy(&s.a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_rejects_empty_range),
		cmocka_unit_test(test_alloc_and_free),
		cmocka_unit_test(test_round_robin),
		cmocka_unit_test(test_word_boundaries),
		cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
