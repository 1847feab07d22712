/* trap_map_test.c: unit tests of the trap map (Zircon's trap_map tests, spec 6.4 tests 49-50). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>

#include "port_priv.h"
#include "trap_map.h"

static int map_setup(void **state)
{
	static struct trap_map map;

	trap_map_init(&map);
	*state = &map;
	return 0;
}

static int map_teardown(void **state)
{
	struct trap_map *map = *state;

	trap_map_release_ports(map);
	trap_map_destroy(map);
	return 0;
}

static zhv_status_t insert(struct trap_map *map, uint32_t kind, uint64_t addr, uint64_t len)
{
	return trap_map_insert(map, kind, addr, len, NULL, 0);
}

/* Spec 6.4 test 49 in one space (kind): traps [10,20), [20,30), [35,40). */
static void check_intersecting(struct trap_map *map, uint32_t kind)
{
	assert_int_equal(insert(map, kind, 10, 10), ZHV_OK);
	assert_int_equal(insert(map, kind, 20, 10), ZHV_OK);
	assert_int_equal(insert(map, kind, 35, 5), ZHV_OK);

	assert_int_equal(insert(map, kind, 0, 11), ZHV_ERR_ALREADY_EXISTS);  /* [0,11) vs 1 */
	assert_int_equal(insert(map, kind, 10, 10), ZHV_ERR_ALREADY_EXISTS); /* same as 1 */
	assert_int_equal(insert(map, kind, 11, 8), ZHV_ERR_ALREADY_EXISTS);  /* inside 1 */
	assert_int_equal(insert(map, kind, 15, 10), ZHV_ERR_ALREADY_EXISTS); /* 1 and 2 */
	assert_int_equal(insert(map, kind, 30, 10), ZHV_ERR_ALREADY_EXISTS); /* [30,40) vs 3 */
	assert_int_equal(insert(map, kind, 36, 5), ZHV_ERR_ALREADY_EXISTS);  /* [36,41) vs 3 */
	/* Beyond Zircon's list: a range covering several traps, and the last
	 * unit of trap 3 and of trap 2. */
	assert_int_equal(insert(map, kind, 5, 100), ZHV_ERR_ALREADY_EXISTS);
	assert_int_equal(insert(map, kind, 39, 1), ZHV_ERR_ALREADY_EXISTS);
	assert_int_equal(insert(map, kind, 29, 1), ZHV_ERR_ALREADY_EXISTS);

	assert_int_equal(insert(map, kind, 0, 10), ZHV_OK);  /* at the beginning */
	assert_int_equal(insert(map, kind, 30, 5), ZHV_OK);  /* in the gap */
	assert_int_equal(insert(map, kind, 40, 10), ZHV_OK); /* at the end */

	/* Rejected inserts left nothing behind; the space is now [0,50). */
	for (uint64_t a = 0; a < 50; a++)
		assert_non_null(trap_map_find(map, kind, a));
	assert_null(trap_map_find(map, kind, 50));
	assert_int_equal(trap_map_find(map, kind, 29)->addr, 20);
	assert_int_equal(trap_map_find(map, kind, 30)->addr, 30);
	assert_int_equal(trap_map_find(map, kind, 34)->len, 5);
}

static void test_insert_intersecting_mem(void **state)
{
	check_intersecting(*state, ZHV_TRAP_MEM);
}

static void test_insert_intersecting_io(void **state)
{
	check_intersecting(*state, ZHV_TRAP_IO);
}

/* Spec 6.4 test 50, then every other range rule. */
static void test_insert_out_of_range(void **state)
{
	struct trap_map *map = *state;

	assert_int_equal(insert(map, ZHV_TRAP_MEM, 0, 0), ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(insert(map, ZHV_TRAP_MEM, UINT32_MAX, UINT64_MAX), ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(insert(map, ZHV_TRAP_IO, 0, UINT32_MAX), ZHV_ERR_OUT_OF_RANGE);

	assert_int_equal(insert(map, ZHV_TRAP_IO, 0, 0), ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(insert(map, ZHV_TRAP_IO, 0x10, 0), ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(insert(map, ZHV_TRAP_IO, UINT64_MAX, 2), ZHV_ERR_OUT_OF_RANGE);
	/* Zircon's quirk: addr + len must be <= 0xFFFF, so port 0xFFFF
	 * itself can never be trapped. */
	assert_int_equal(insert(map, ZHV_TRAP_IO, 0xFFFF, 1), ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(insert(map, ZHV_TRAP_IO, 0xFFF0, 0x10), ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(insert(map, ZHV_TRAP_IO, 0x10000, 1), ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(insert(map, ZHV_TRAP_IO, 0xFFFE, 1), ZHV_OK);
	assert_int_equal(insert(map, ZHV_TRAP_IO, 0, 0xFFFE), ZHV_OK);

	assert_int_equal(insert(map, ZHV_TRAP_BELL, 0, 0), ZHV_ERR_INVALID_ARGS); /* no port */
	assert_int_equal(insert(map, ZHV_TRAP_MEM, UINT64_MAX, 1), ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(insert(map, ZHV_TRAP_MEM, 1, UINT64_MAX), ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(insert(map, ZHV_TRAP_MEM, ZHV_GUEST_PHYS_SIZE, ZHV_PAGE_SIZE),
	                 ZHV_ERR_OUT_OF_RANGE);
	assert_int_equal(insert(map, ZHV_TRAP_MEM, ZHV_GUEST_PHYS_SIZE - ZHV_PAGE_SIZE,
	                        2 * ZHV_PAGE_SIZE),
	                 ZHV_ERR_OUT_OF_RANGE);
	/* The last page of the guest-physical space is fine. */
	assert_int_equal(insert(map, ZHV_TRAP_MEM, ZHV_GUEST_PHYS_SIZE - ZHV_PAGE_SIZE,
	                        ZHV_PAGE_SIZE),
	                 ZHV_OK);
	assert_non_null(trap_map_find(map, ZHV_TRAP_MEM, ZHV_GUEST_PHYS_SIZE - 1));
	assert_null(trap_map_find(map, ZHV_TRAP_MEM, ZHV_GUEST_PHYS_SIZE));
	assert_null(trap_map_find(map, ZHV_TRAP_MEM, UINT64_MAX));
}

/* Spec 1.3 step 2 (kind and port) is checked before the range. */
static void test_kind_and_port_rules(void **state)
{
	struct trap_map *map = *state;
	zhv_port_t *port;

	assert_int_equal(zhv_port_create(0, &port), ZHV_OK);
	assert_int_equal(insert(map, 3, 0x1000, 0x1000), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(insert(map, UINT32_MAX, 0x1000, 0x1000), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(insert(map, 3, 0, 0), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_MEM, 0x1000, 0x1000, port, 1),
	                 ZHV_ERR_INVALID_ARGS);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_IO, 0x10, 1, port, 1),
	                 ZHV_ERR_INVALID_ARGS);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_BELL, 0x1000, 0x1000, NULL, 1),
	                 ZHV_ERR_INVALID_ARGS);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_BELL, 0x1000, 0, NULL, 1),
	                 ZHV_ERR_INVALID_ARGS);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_BELL, 0x1000, 0, port, 1),
	                 ZHV_ERR_OUT_OF_RANGE);
	/* None of the rejected calls inserted anything. */
	assert_null(trap_map_find(map, ZHV_TRAP_MEM, 0x1000));
	assert_null(trap_map_find(map, ZHV_TRAP_IO, 0x10));
	assert_null(trap_map_find(map, 3, 0x1000));
	/* The rejected BELL traps dropped their port references: destroying
	 * the port here frees it (LeakSanitizer would report it otherwise). */
	zhv_port_destroy(port);
}

static void test_find_edges(void **state)
{
	struct trap_map *map = *state;
	const struct trap *t;

	assert_null(trap_map_find(map, ZHV_TRAP_MEM, 0));
	assert_null(trap_map_find(map, ZHV_TRAP_IO, 0));

	assert_int_equal(trap_map_insert(map, ZHV_TRAP_MEM, 0x2000, 0x1000, NULL, 0xa), ZHV_OK);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_MEM, 0x3000, 0x2000, NULL, 0xb), ZHV_OK);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_MEM, 0x8000, 0x1000, NULL, 0xc), ZHV_OK);

	assert_null(trap_map_find(map, ZHV_TRAP_MEM, 0));
	assert_null(trap_map_find(map, ZHV_TRAP_MEM, 0x1fff));
	t = trap_map_find(map, ZHV_TRAP_MEM, 0x2000);
	assert_non_null(t);
	assert_int_equal(t->kind, ZHV_TRAP_MEM);
	assert_int_equal(t->addr, 0x2000);
	assert_int_equal(t->len, 0x1000);
	assert_int_equal(t->key, 0xa);
	assert_null(t->port);
	assert_null(t->arena);
	assert_ptr_equal(trap_map_find(map, ZHV_TRAP_MEM, 0x2fff), t);
	/* Adjacent traps: the boundary belongs to the second. */
	assert_int_equal(trap_map_find(map, ZHV_TRAP_MEM, 0x3000)->key, 0xb);
	assert_int_equal(trap_map_find(map, ZHV_TRAP_MEM, 0x4fff)->key, 0xb);
	/* The gap and past the end. */
	assert_null(trap_map_find(map, ZHV_TRAP_MEM, 0x5000));
	assert_null(trap_map_find(map, ZHV_TRAP_MEM, 0x7fff));
	assert_int_equal(trap_map_find(map, ZHV_TRAP_MEM, 0x8000)->key, 0xc);
	assert_int_equal(trap_map_find(map, ZHV_TRAP_MEM, 0x8fff)->key, 0xc);
	assert_null(trap_map_find(map, ZHV_TRAP_MEM, 0x9000));
	assert_null(trap_map_find(map, ZHV_TRAP_MEM, UINT64_MAX));
	/* BELL looks in the same space as MEM; an unknown kind finds nothing. */
	assert_ptr_equal(trap_map_find(map, ZHV_TRAP_BELL, 0x2800), t);
	assert_null(trap_map_find(map, 7, 0x2800));
	assert_null(trap_map_find(map, ZHV_TRAP_IO, 0x2800));
}

static void test_io_and_mem_spaces_independent(void **state)
{
	struct trap_map *map = *state;

	assert_int_equal(trap_map_insert(map, ZHV_TRAP_MEM, 0x10, 0x10, NULL, 1), ZHV_OK);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_IO, 0x10, 0x10, NULL, 2), ZHV_OK);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_IO, 0x18, 1, NULL, 3),
	                 ZHV_ERR_ALREADY_EXISTS);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_MEM, 0x18, 1, NULL, 3),
	                 ZHV_ERR_ALREADY_EXISTS);
	assert_int_equal(trap_map_find(map, ZHV_TRAP_MEM, 0x15)->key, 1);
	assert_int_equal(trap_map_find(map, ZHV_TRAP_IO, 0x15)->key, 2);
	assert_int_equal(trap_map_find(map, ZHV_TRAP_IO, 0x15)->kind, ZHV_TRAP_IO);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_IO, 0x100, 8, NULL, 4), ZHV_OK);
	assert_null(trap_map_find(map, ZHV_TRAP_MEM, 0x100));
}

static void test_bell_and_mem_share_space(void **state)
{
	struct trap_map *map = *state;
	zhv_port_t *port;
	const struct trap *t;

	assert_int_equal(zhv_port_create(0, &port), ZHV_OK);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_MEM, 0x1000, 0x1000, NULL, 1), ZHV_OK);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_BELL, 0x1000, 0x1000, port, 2),
	                 ZHV_ERR_ALREADY_EXISTS);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_BELL, 0x0, 0x2000, port, 2),
	                 ZHV_ERR_ALREADY_EXISTS);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_BELL, 0x2000, 0x1000, port, 2), ZHV_OK);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_MEM, 0x2800, 0x1000, NULL, 3),
	                 ZHV_ERR_ALREADY_EXISTS);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_IO, 0x2000, 0x10, NULL, 4), ZHV_OK);

	t = trap_map_find(map, ZHV_TRAP_MEM, 0x2abc);
	assert_non_null(t);
	assert_int_equal(t->kind, ZHV_TRAP_BELL);
	assert_int_equal(t->key, 2);
	assert_ptr_equal(t->port, port);
	assert_non_null(t->arena);
	assert_int_equal(trap_map_find(map, ZHV_TRAP_BELL, 0x1abc)->kind, ZHV_TRAP_MEM);
	/* The trap's reference keeps the port's memory after the owner
	 * closes it; teardown (release_ports) frees it. */
	zhv_port_destroy(port);
}

/* A BELL trap delivers through its arena; releasing the ports cancels the
 * trap's own queued packets and keeps user packets with the same key
 * (Zircon's GuestSetTrapWithBellAndUser). */
static void test_bell_delivery_and_release(void **state)
{
	struct trap_map *map = *state;
	const uint64_t key = 0x1234;
	zhv_port_t *port;
	const struct trap *t;
	zhv_packet_t pkt = { .key = key, .type = ZHV_PKT_TYPE_USER, .user.u64 = { 7 } };
	zhv_packet_t out;

	assert_int_equal(zhv_port_create(0, &port), ZHV_OK);
	assert_int_equal(trap_map_insert(map, ZHV_TRAP_BELL, 0xFFE000, 0x1000, port, key), ZHV_OK);
	t = trap_map_find(map, ZHV_TRAP_BELL, 0xFFE000);
	assert_non_null(t);

	assert_int_equal(zhv_port_queue(port, &pkt), ZHV_OK);
	pkt.type = ZHV_PKT_TYPE_GUEST_BELL;
	pkt.guest_bell.addr = 0xFFE000;
	assert_int_equal(port_queue_trap_packet(t->arena, &pkt), ZHV_OK);
	pkt.guest_bell.addr = 0xFFE008;
	assert_int_equal(port_queue_trap_packet(t->arena, &pkt), ZHV_OK);
	assert_int_equal(port_arena_in_flight(t->arena), 2);

	assert_int_equal(zhv_port_wait(port, 0, &out), ZHV_OK);
	assert_int_equal(out.type, ZHV_PKT_TYPE_USER);
	assert_int_equal(zhv_port_wait(port, 0, &out), ZHV_OK);
	assert_int_equal(out.key, key);
	assert_int_equal(out.type, ZHV_PKT_TYPE_GUEST_BELL);
	assert_int_equal(out.guest_bell.addr, 0xFFE000);

	/* One BELL packet still queued, then another user packet. */
	pkt.type = ZHV_PKT_TYPE_USER;
	pkt.user.u64[0] = 8;
	assert_int_equal(zhv_port_queue(port, &pkt), ZHV_OK);

	trap_map_release_ports(map);
	assert_null(t->port);
	assert_null(t->arena);
	/* Still findable: traps stay until the map is destroyed. */
	assert_ptr_equal(trap_map_find(map, ZHV_TRAP_MEM, 0xFFEFFF), t);

	assert_int_equal(zhv_port_wait(port, 0, &out), ZHV_OK);
	assert_int_equal(out.type, ZHV_PKT_TYPE_USER);
	assert_int_equal(out.key, key);
	assert_int_equal(out.user.u64[0], 8);
	assert_int_equal(zhv_port_wait(port, 0, &out), ZHV_ERR_TIMED_OUT);
	zhv_port_destroy(port);
}

/* trap_map_destroy alone also drops port references and arenas. */
static void test_destroy_without_release(void **state)
{
	struct trap_map map;
	zhv_port_t *port;
	zhv_packet_t pkt = { .key = 1, .type = ZHV_PKT_TYPE_GUEST_BELL };

	trap_map_init(&map);
	assert_int_equal(zhv_port_create(0, &port), ZHV_OK);
	assert_int_equal(trap_map_insert(&map, ZHV_TRAP_BELL, 0, 0x1000, port, 1), ZHV_OK);
	assert_int_equal(trap_map_insert(&map, ZHV_TRAP_BELL, 0x1000, 0x1000, port, 1), ZHV_OK);
	assert_int_equal(port_queue_trap_packet(trap_map_find(&map, ZHV_TRAP_MEM, 0)->arena, &pkt),
	                 ZHV_OK);
	zhv_port_destroy(port);
	trap_map_destroy(&map);
}

/* Many traps inserted out of order: the array grows and stays sorted. */
static void test_many_traps(void **state)
{
	struct trap_map *map = *state;
	const uint64_t n = 1000;

	/* 7 is coprime with n: i * 7 % n visits every slot once. */
	for (uint64_t i = 0; i < n; i++) {
		uint64_t slot = i * 7 % n;

		assert_int_equal(trap_map_insert(map, ZHV_TRAP_MEM, slot * 16, 8, NULL, slot), ZHV_OK);
	}
	for (uint64_t slot = 0; slot < n; slot++) {
		for (uint64_t off = 0; off < 16; off++) {
			const struct trap *t = trap_map_find(map, ZHV_TRAP_MEM, slot * 16 + off);

			if (off < 8) {
				assert_non_null(t);
				assert_int_equal(t->key, slot);
			} else {
				assert_null(t);
			}
		}
		assert_int_equal(trap_map_insert(map, ZHV_TRAP_MEM, slot * 16 + 7, 2, NULL, 0),
		                 ZHV_ERR_ALREADY_EXISTS);
	}
	assert_int_equal(map->mem.count, n);
	assert_int_equal(map->io.count, 0);
	for (size_t i = 1; i < map->mem.count; i++)
		assert_true(map->mem.traps[i - 1]->addr < map->mem.traps[i]->addr);
}

#define READERS 2
#define CONC_TRAPS 1000

struct conc {
	struct trap_map *map;
	atomic_int done;
	atomic_int errors;
};

static void *reader(void *arg)
{
	struct conc *c = arg;
	uint64_t addr = 0;

	while (!atomic_load(&c->done)) {
		const struct trap *t = trap_map_find(c->map, ZHV_TRAP_MEM, addr);

		/* Whatever is found must contain the address and match
		 * what the writer inserted there. */
		if (t && (addr < t->addr || addr >= t->addr + t->len || t->key != t->addr / 16))
			atomic_fetch_add(&c->errors, 1);
		addr = (addr + 5) % (CONC_TRAPS * 16);
	}
	return NULL;
}

/* Lookups from vCPU threads while traps are being added. */
static void test_concurrent_find_insert(void **state)
{
	struct conc c = { .map = *state };
	pthread_t th[READERS];

	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &c), 0);
	for (uint64_t i = 0; i < CONC_TRAPS; i++) {
		uint64_t slot = i * 13 % CONC_TRAPS;

		assert_int_equal(trap_map_insert(c.map, ZHV_TRAP_MEM, slot * 16, 10, NULL, slot),
		                 ZHV_OK);
	}
	atomic_store(&c.done, 1);
	for (int i = 0; i < READERS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&c.errors), 0);
	for (uint64_t slot = 0; slot < CONC_TRAPS; slot++)
		assert_int_equal(trap_map_find(c.map, ZHV_TRAP_MEM, slot * 16 + 9)->key, slot);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, map_setup, map_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_insert_intersecting_mem),
		T(test_insert_intersecting_io),
		T(test_insert_out_of_range),
		T(test_kind_and_port_rules),
		T(test_find_edges),
		T(test_io_and_mem_spaces_independent),
		T(test_bell_and_mem_share_space),
		T(test_bell_delivery_and_release),
		cmocka_unit_test(test_destroy_without_release),
		T(test_many_traps),
		T(test_concurrent_find_insert),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
