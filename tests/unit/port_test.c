/* port_test.c: unit tests of ports, trap arenas, time and status names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <pthread.h>
#include <sched.h>

#include "port_priv.h"

#define MS 1000000ll

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static zhv_packet_t user_packet(uint64_t key, uint64_t a, uint64_t b)
{
	zhv_packet_t p;

	memset(&p, 0, sizeof(p));
	p.key = key;
	p.type = ZHV_PKT_TYPE_USER;
	p.user.u64[0] = a;
	p.user.u64[1] = b;
	return p;
}

static zhv_packet_t bell_packet(uint64_t key, uint64_t addr)
{
	zhv_packet_t p;

	memset(&p, 0, sizeof(p));
	p.key = key;
	p.type = ZHV_PKT_TYPE_GUEST_BELL;
	p.guest_bell.addr = addr;
	return p;
}

static zhv_port_t *make_port(uint32_t max_user)
{
	zhv_port_t *port = NULL;

	assert_int_equal(zhv_port_create(max_user, &port), ZHV_OK);
	assert_non_null(port);
	return port;
}

/* Dequeue without waiting and check type and first payload word. */
static void expect_user(zhv_port_t *port, uint64_t key, uint64_t a)
{
	zhv_packet_t out;

	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(zhv_port_wait(port, 0, &out), ZHV_OK);
	assert_int_equal(out.type, ZHV_PKT_TYPE_USER);
	assert_int_equal(out.key, key);
	assert_int_equal(out.user.u64[0], a);
}

static void expect_bell(zhv_port_t *port, uint64_t key, uint64_t addr)
{
	zhv_packet_t out;

	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(zhv_port_wait(port, 0, &out), ZHV_OK);
	assert_int_equal(out.type, ZHV_PKT_TYPE_GUEST_BELL);
	assert_int_equal(out.key, key);
	assert_int_equal(out.guest_bell.addr, addr);
}

static void expect_empty(zhv_port_t *port)
{
	zhv_packet_t out;

	assert_int_equal(zhv_port_wait(port, 0, &out), ZHV_ERR_TIMED_OUT);
}

/* Wait (up to 2 s) for a thread to set (done): a lost wake-up fails the
 * test instead of hanging it in pthread_join. */
static void wait_done(atomic_int *done)
{
	zhv_time_t give_up = zhv_deadline_after(2000 * MS);

	while (!atomic_load(done)) {
		assert_true(zhv_clock_monotonic() < give_up);
		sleep_ms(1);
	}
}

/* Wait (up to 2 s) until (n) threads are blocked on (arena). */
static void wait_for_arena_waiters(struct port_arena *arena, uint32_t n)
{
	zhv_time_t give_up = zhv_deadline_after(2000 * MS);

	while (port_arena_waiters(arena) != n) {
		assert_true(zhv_clock_monotonic() < give_up);
		sleep_ms(1);
	}
}

static void test_invalid_args(void **state)
{
	zhv_port_t *port = make_port(0);
	zhv_packet_t p = user_packet(1, 2, 3);

	assert_int_equal(zhv_port_create(0, NULL), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(zhv_port_queue(NULL, &p), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(zhv_port_queue(port, NULL), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(zhv_port_wait(NULL, 0, &p), ZHV_ERR_INVALID_ARGS);
	assert_int_equal(zhv_port_wait(port, 0, NULL), ZHV_ERR_INVALID_ARGS);
	assert_null(port_arena_create(NULL));
	expect_empty(port);
	zhv_port_destroy(port);
	zhv_port_destroy(NULL);
	port_arena_destroy(NULL);
	port_unref(NULL);
}

static void test_fifo_order(void **state)
{
	zhv_port_t *port = make_port(0);
	struct port_arena *arena = port_arena_create(port);
	zhv_packet_t p, out;

	assert_non_null(arena);
	for (uint64_t i = 0; i < 10; i++) {
		p = user_packet(100 + i, i, ~i);
		/* The type is forced to USER; status and payload are kept. */
		p.type = ZHV_PKT_TYPE_GUEST_IO;
		p.status = -7;
		assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
		if (i % 3 == 0) {
			p = bell_packet(200 + i, 0x1000 + i);
			assert_int_equal(port_queue_trap_packet(arena, &p), ZHV_OK);
		}
	}
	assert_int_equal(port_arena_in_flight(arena), 4);
	/* One queue for both kinds, in queueing order. */
	for (uint64_t i = 0; i < 10; i++) {
		memset(&out, 0, sizeof(out));
		assert_int_equal(zhv_port_wait(port, ZHV_TIME_INFINITE, &out), ZHV_OK);
		assert_int_equal(out.type, ZHV_PKT_TYPE_USER);
		assert_int_equal(out.key, 100 + i);
		assert_int_equal(out.status, -7);
		assert_int_equal(out.user.u64[0], i);
		assert_int_equal(out.user.u64[1], ~i);
		if (i % 3 == 0)
			expect_bell(port, 200 + i, 0x1000 + i);
	}
	expect_empty(port);
	assert_int_equal(port_arena_in_flight(arena), 0);
	port_arena_destroy(arena);
	zhv_port_destroy(port);
}

/* The user-packet limit (SHOULD_WAIT) does not apply to trap packets
 * (spec 6.5 guest_set_trap_with_bell_and_max_user). */
static void test_user_limit(void **state)
{
	zhv_port_t *port = make_port(4);
	struct port_arena *arena = port_arena_create(port);
	zhv_packet_t p;

	assert_non_null(arena);
	for (uint64_t i = 0; i < 4; i++) {
		p = user_packet(1, i, 0);
		assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
	}
	p = user_packet(1, 4, 0);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_ERR_SHOULD_WAIT);
	for (uint64_t i = 0; i < 10; i++) {
		p = bell_packet(2, i);
		assert_int_equal(port_queue_trap_packet(arena, &p), ZHV_OK);
	}
	p = user_packet(1, 4, 0);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_ERR_SHOULD_WAIT);
	/* Dequeuing a user packet frees one slot; a trap packet would not. */
	expect_user(port, 1, 0);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_ERR_SHOULD_WAIT);
	for (uint64_t i = 1; i < 4; i++)
		expect_user(port, 1, i);
	for (uint64_t i = 0; i < 10; i++)
		expect_bell(port, 2, i);
	expect_user(port, 1, 4);
	expect_empty(port);
	port_arena_destroy(arena);
	zhv_port_destroy(port);
}

static void test_default_user_limit(void **state)
{
	zhv_port_t *port = make_port(0);
	zhv_packet_t p = user_packet(0, 0, 0);

	for (uint32_t i = 0; i < ZHV_PORT_DEFAULT_MAX_USER_PACKETS; i++)
		assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_ERR_SHOULD_WAIT);
	/* Destroying a full port frees its packets (LeakSanitizer checks). */
	zhv_port_destroy(port);
}

static void test_poll_and_timeout(void **state)
{
	zhv_port_t *port = make_port(0);
	zhv_packet_t p = user_packet(5, 6, 7), out;
	zhv_time_t start;

	/* Poll: 0 and deadlines in the past return at once. */
	start = zhv_clock_monotonic();
	assert_int_equal(zhv_port_wait(port, 0, &out), ZHV_ERR_TIMED_OUT);
	assert_int_equal(zhv_port_wait(port, -1, &out), ZHV_ERR_TIMED_OUT);
	assert_int_equal(zhv_port_wait(port, start - 1000 * MS, &out), ZHV_ERR_TIMED_OUT);
	assert_true(zhv_clock_monotonic() - start < 500 * MS);

	/* A real timeout waits at least until the deadline. */
	start = zhv_clock_monotonic();
	assert_int_equal(zhv_port_wait(port, start + 30 * MS, &out), ZHV_ERR_TIMED_OUT);
	assert_true(zhv_clock_monotonic() >= start + 30 * MS);

	/* A queued packet is returned even with an expired deadline. */
	assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
	assert_int_equal(zhv_port_wait(port, start, &out), ZHV_OK);
	assert_int_equal(out.key, 5);
	expect_empty(port);
	zhv_port_destroy(port);
}

struct waiter {
	zhv_port_t *port;
	zhv_time_t deadline;
	zhv_status_t status;
	zhv_packet_t packet;
	atomic_int done;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->status = zhv_port_wait(w->port, w->deadline, &w->packet);
	atomic_store(&w->done, 1);
	return NULL;
}

static void test_wait_wakes_on_queue(void **state)
{
	struct waiter w = { .port = make_port(0) };
	struct port_arena *arena = port_arena_create(w.port);
	zhv_packet_t p;
	pthread_t th;

	/* A user packet wakes a waiter with no deadline. */
	w.deadline = ZHV_TIME_INFINITE;
	assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
	sleep_ms(10);
	assert_int_equal(atomic_load(&w.done), 0);
	p = user_packet(9, 1, 0);
	assert_int_equal(zhv_port_queue(w.port, &p), ZHV_OK);
	wait_done(&w.done);
	pthread_join(th, NULL);
	assert_int_equal(w.status, ZHV_OK);
	assert_int_equal(w.packet.key, 9);

	/* A trap packet wakes a waiter with a (far) deadline. */
	w.deadline = zhv_deadline_after(5000 * MS);
	atomic_store(&w.done, 0);
	assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
	sleep_ms(10);
	assert_int_equal(atomic_load(&w.done), 0);
	p = bell_packet(10, 0x2000);
	assert_int_equal(port_queue_trap_packet(arena, &p), ZHV_OK);
	wait_done(&w.done);
	pthread_join(th, NULL);
	assert_int_equal(w.status, ZHV_OK);
	assert_int_equal(w.packet.type, ZHV_PKT_TYPE_GUEST_BELL);
	assert_int_equal(w.packet.guest_bell.addr, 0x2000);
	assert_true(zhv_clock_monotonic() < w.deadline);
	port_arena_destroy(arena);
	zhv_port_destroy(w.port);
}

struct trap_queuer {
	struct port_arena *arena;
	zhv_packet_t packet;
	atomic_int done;
	zhv_status_t status;
};

static void *trap_queue_thread(void *arg)
{
	struct trap_queuer *q = arg;

	q->status = port_queue_trap_packet(q->arena, &q->packet);
	atomic_store(&q->done, 1);
	return NULL;
}

static void fill_arena(struct port_arena *arena)
{
	for (uint64_t i = 0; i < PORT_ARENA_PACKETS; i++) {
		zhv_packet_t p = bell_packet(3, i);

		assert_int_equal(port_queue_trap_packet(arena, &p), ZHV_OK);
	}
	assert_int_equal(port_arena_in_flight(arena), PORT_ARENA_PACKETS);
}

/* The 257th packet of a trap waits for the consumer (spec 1.3). */
static void test_arena_exhaustion_blocks(void **state)
{
	zhv_port_t *port = make_port(0);
	struct port_arena *arena = port_arena_create(port);
	struct port_arena *other = port_arena_create(port);
	struct trap_queuer q = { .arena = arena, .packet = bell_packet(3, 1000) };
	zhv_packet_t p = user_packet(3, 77, 0);
	pthread_t th;

	assert_non_null(arena);
	assert_non_null(other);
	fill_arena(arena);
	assert_int_equal(pthread_create(&th, NULL, trap_queue_thread, &q), 0);
	wait_for_arena_waiters(arena, 1);
	assert_int_equal(atomic_load(&q.done), 0);

	/* Neither user packets nor another trap's arena are held up, and
	 * dequeuing them does not release the blocked queuer. */
	assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
	p = bell_packet(4, 5);
	assert_int_equal(port_queue_trap_packet(other, &p), ZHV_OK);
	sleep_ms(20);
	assert_int_equal(atomic_load(&q.done), 0);
	assert_int_equal(port_arena_waiters(arena), 1);

	/* Dequeue one of the arena's packets: the queuer goes on. */
	expect_bell(port, 3, 0);
	wait_done(&q.done);
	pthread_join(th, NULL);
	assert_int_equal(q.status, ZHV_OK);
	assert_int_equal(port_arena_waiters(arena), 0);
	assert_int_equal(port_arena_in_flight(arena), PORT_ARENA_PACKETS);

	for (uint64_t i = 1; i < PORT_ARENA_PACKETS; i++)
		expect_bell(port, 3, i);
	expect_user(port, 3, 77);
	expect_bell(port, 4, 5);
	expect_bell(port, 3, 1000);
	expect_empty(port);
	assert_int_equal(port_arena_in_flight(arena), 0);
	port_arena_destroy(other);
	port_arena_destroy(arena);
	zhv_port_destroy(port);
}

/* Closing the port fails later trap queues with BAD_STATE, releases a
 * queuer blocked on a full arena, and returns the arena's nodes. The port's
 * memory lives on while a trap holds a reference (spec 6.2 test 10). */
static void test_close_port(void **state)
{
	zhv_port_t *port = make_port(0);
	struct port_arena *arena;
	struct trap_queuer q = { .packet = bell_packet(3, 1000) };
	zhv_packet_t p;
	pthread_t th;

	/* What trap_map_insert does for a BELL trap. */
	port_ref(port);
	arena = port_arena_create(port);
	assert_non_null(arena);
	q.arena = arena;
	p = user_packet(3, 1, 0);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
	fill_arena(arena);
	assert_int_equal(pthread_create(&th, NULL, trap_queue_thread, &q), 0);
	wait_for_arena_waiters(arena, 1);

	assert_int_equal(atomic_load(&q.done), 0);
	zhv_port_destroy(port);
	wait_done(&q.done);
	pthread_join(th, NULL);
	assert_int_equal(q.status, ZHV_ERR_BAD_STATE);
	assert_int_equal(port_arena_in_flight(arena), 0);
	assert_int_equal(port_arena_waiters(arena), 0);
	p = bell_packet(3, 2000);
	assert_int_equal(port_queue_trap_packet(arena, &p), ZHV_ERR_BAD_STATE);
	assert_int_equal(port_arena_in_flight(arena), 0);

	/* Guest teardown: trap_map_release_ports. This frees the port. */
	port_arena_destroy(arena);
	port_unref(port);
}

/* Only the arena's own packets go (GuestSetTrapWithBellAndUser); the tail
 * of the queue stays consistent when the removed packets were last. */
static void test_arena_destroy_keeps_user_packets(void **state)
{
	const uint64_t key = 0x1234;
	zhv_port_t *port = make_port(0);
	struct port_arena *a1 = port_arena_create(port);
	struct port_arena *a2 = port_arena_create(port);
	struct port_arena *a3 = port_arena_create(port);
	zhv_packet_t p;

	assert_non_null(a1);
	assert_non_null(a2);
	assert_non_null(a3);
	p = bell_packet(key, 0);
	assert_int_equal(port_queue_trap_packet(a1, &p), ZHV_OK);
	p = user_packet(key, 1, 0);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
	p = bell_packet(key, 1);
	assert_int_equal(port_queue_trap_packet(a1, &p), ZHV_OK);
	p = bell_packet(key, 2);
	assert_int_equal(port_queue_trap_packet(a2, &p), ZHV_OK);
	p = user_packet(key, 2, 0);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
	p = bell_packet(key, 3);
	assert_int_equal(port_queue_trap_packet(a1, &p), ZHV_OK);
	p = bell_packet(key, 4);
	assert_int_equal(port_queue_trap_packet(a3, &p), ZHV_OK);
	p = bell_packet(key, 5);
	assert_int_equal(port_queue_trap_packet(a1, &p), ZHV_OK);

	port_arena_destroy(a1); /* head, middle and tail packets */
	port_arena_destroy(a3); /* now the last packet */
	/* The queue must end right after the last remaining packet. */
	p = user_packet(key, 3, 0);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);

	expect_user(port, key, 1);
	expect_bell(port, key, 2);
	expect_user(port, key, 2);
	expect_user(port, key, 3);
	expect_empty(port);

	/* Destroying an arena whose packets were all removed, and emptying
	 * the queue through it, leaves the port usable. */
	p = bell_packet(key, 6);
	assert_int_equal(port_queue_trap_packet(a2, &p), ZHV_OK);
	port_arena_destroy(a2);
	expect_empty(port);
	p = user_packet(key, 4, 0);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
	expect_user(port, key, 4);
	zhv_port_destroy(port);
}

/* Teardown in any order frees everything (run under LeakSanitizer). */
static void test_no_leaks(void **state)
{
	zhv_port_t *port = make_port(0);
	struct port_arena *arena;
	zhv_packet_t p;

	/* Owner first, trap last, packets of both kinds still queued. */
	port_ref(port);
	arena = port_arena_create(port);
	assert_non_null(arena);
	p = user_packet(1, 1, 0);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
	p = bell_packet(1, 1);
	assert_int_equal(port_queue_trap_packet(arena, &p), ZHV_OK);
	zhv_port_destroy(port);
	port_arena_destroy(arena);
	port_unref(port);

	/* Trap first, owner last. */
	port = make_port(0);
	port_ref(port);
	arena = port_arena_create(port);
	assert_non_null(arena);
	p = bell_packet(1, 1);
	assert_int_equal(port_queue_trap_packet(arena, &p), ZHV_OK);
	p = user_packet(1, 1, 0);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
	port_arena_destroy(arena);
	port_unref(port);
	expect_user(port, 1, 1);
	p = user_packet(1, 2, 0);
	assert_int_equal(zhv_port_queue(port, &p), ZHV_OK);
	zhv_port_destroy(port);
}

/* ---- many threads -------------------------------------------------------- */

#define USER_PRODUCERS 4
#define TRAP_PRODUCERS 2
#define PRODUCERS (USER_PRODUCERS + TRAP_PRODUCERS)
#define PER_PRODUCER 2000
#define CONSUMERS 3

struct mt {
	zhv_port_t *port;
	struct port_arena *arenas[TRAP_PRODUCERS];
	int consumers;
	atomic_int remaining; /* packets not yet dequeued */
	atomic_int producers_done;
	atomic_int errors;
	/* Per producer: sequence numbers seen (exactly once each). */
	atomic_uchar seen[PRODUCERS][PER_PRODUCER];
	/* Single-consumer runs check FIFO order per producer. */
	uint64_t next_seq[PRODUCERS];
};

struct producer {
	struct mt *mt;
	int id;
};

static void *producer_thread(void *arg)
{
	struct producer *pr = arg;
	struct mt *mt = pr->mt;

	for (uint64_t seq = 0; seq < PER_PRODUCER; seq++) {
		zhv_packet_t p;
		zhv_status_t st;

		if (pr->id < USER_PRODUCERS) {
			p = user_packet((uint64_t)pr->id, seq, 0);
			/* The port is small: back off until a consumer makes
			 * room, as a client of a full Zircon port would. */
			while ((st = zhv_port_queue(mt->port, &p)) == ZHV_ERR_SHOULD_WAIT)
				sched_yield();
		} else {
			p = bell_packet((uint64_t)pr->id, seq);
			/* Blocks whenever the arena's 256 packets are out. */
			st = port_queue_trap_packet(mt->arenas[pr->id - USER_PRODUCERS], &p);
		}
		if (st != ZHV_OK)
			atomic_fetch_add(&mt->errors, 1);
	}
	atomic_fetch_add(&mt->producers_done, 1);
	return NULL;
}

static void *consumer_thread(void *arg)
{
	struct mt *mt = arg;

	while (atomic_load(&mt->remaining) > 0) {
		zhv_packet_t out;
		uint64_t seq;
		zhv_status_t st = zhv_port_wait(mt->port, zhv_deadline_after(50 * MS), &out);

		if (st == ZHV_ERR_TIMED_OUT)
			continue; /* the others may have taken the last ones */
		if (st != ZHV_OK || out.key >= PRODUCERS) {
			atomic_fetch_add(&mt->errors, 1);
			break;
		}
		seq = out.key < USER_PRODUCERS ? out.user.u64[0] : out.guest_bell.addr;
		if ((out.key < USER_PRODUCERS) != (out.type == ZHV_PKT_TYPE_USER) ||
		    seq >= PER_PRODUCER || atomic_fetch_add(&mt->seen[out.key][seq], 1) != 0)
			atomic_fetch_add(&mt->errors, 1);
		if (mt->consumers == 1) {
			if (seq != mt->next_seq[out.key])
				atomic_fetch_add(&mt->errors, 1);
			mt->next_seq[out.key] = seq + 1;
		}
		atomic_fetch_sub(&mt->remaining, 1);
	}
	return NULL;
}

static void run_mt(int consumers)
{
	static struct mt mt;
	struct producer prod[PRODUCERS];
	pthread_t pth[PRODUCERS], cth[CONSUMERS];
	zhv_time_t give_up = zhv_deadline_after(5000 * MS);

	memset(&mt, 0, sizeof(mt));
	mt.port = make_port(64);
	mt.consumers = consumers;
	atomic_store(&mt.remaining, PRODUCERS * PER_PRODUCER);
	for (int i = 0; i < TRAP_PRODUCERS; i++) {
		mt.arenas[i] = port_arena_create(mt.port);
		assert_non_null(mt.arenas[i]);
	}
	for (int i = 0; i < consumers; i++)
		assert_int_equal(pthread_create(&cth[i], NULL, consumer_thread, &mt), 0);
	for (int i = 0; i < PRODUCERS; i++) {
		prod[i].mt = &mt;
		prod[i].id = i;
		assert_int_equal(pthread_create(&pth[i], NULL, producer_thread, &prod[i]), 0);
	}
	/* Consumers end when all packets are in. Joins come only after that,
	 * so that a lost wake-up fails the test instead of hanging it. */
	while ((atomic_load(&mt.remaining) > 0 || atomic_load(&mt.producers_done) < PRODUCERS) &&
	       atomic_load(&mt.errors) == 0 && zhv_clock_monotonic() < give_up)
		sleep_ms(1);
	assert_int_equal(atomic_load(&mt.errors), 0);
	assert_int_equal(atomic_load(&mt.remaining), 0);
	assert_int_equal(atomic_load(&mt.producers_done), PRODUCERS);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(pth[i], NULL);
	for (int i = 0; i < consumers; i++)
		pthread_join(cth[i], NULL);
	for (int i = 0; i < PRODUCERS; i++) {
		for (int s = 0; s < PER_PRODUCER; s++)
			assert_int_equal(atomic_load(&mt.seen[i][s]), 1);
	}
	expect_empty(mt.port);
	for (int i = 0; i < TRAP_PRODUCERS; i++) {
		assert_int_equal(port_arena_in_flight(mt.arenas[i]), 0);
		port_arena_destroy(mt.arenas[i]);
	}
	zhv_port_destroy(mt.port);
}

static void test_mt_single_consumer_fifo(void **state)
{
	run_mt(1);
}

static void test_mt_many_consumers(void **state)
{
	run_mt(CONSUMERS);
}

/* ---- time and status ------------------------------------------------------ */

static void test_time(void **state)
{
	zhv_time_t a = zhv_clock_monotonic(), b, d;

	assert_true(a > 0);
	sleep_ms(2);
	b = zhv_clock_monotonic();
	assert_true(b >= a + 2 * MS);
	d = zhv_deadline_after(1000 * MS);
	assert_true(d >= b + 1000 * MS);
	assert_true(d < zhv_clock_monotonic() + 1000 * MS + 1);
	assert_int_equal(zhv_deadline_after(INT64_MAX), ZHV_TIME_INFINITE);
	assert_int_equal(zhv_deadline_after(INT64_MAX - 1), ZHV_TIME_INFINITE);
	assert_true(zhv_deadline_after(-1000 * MS) < zhv_clock_monotonic());
	assert_true(zhv_deadline_after(INT64_MIN) < 0);
}

static void test_status_string(void **state)
{
	static const struct {
		zhv_status_t status;
		const char *name;
	} names[] = {
		{ ZHV_OK, "ZHV_OK" },
		{ ZHV_ERR_INTERNAL, "ZHV_ERR_INTERNAL" },
		{ ZHV_ERR_NOT_SUPPORTED, "ZHV_ERR_NOT_SUPPORTED" },
		{ ZHV_ERR_NO_RESOURCES, "ZHV_ERR_NO_RESOURCES" },
		{ ZHV_ERR_NO_MEMORY, "ZHV_ERR_NO_MEMORY" },
		{ ZHV_ERR_INVALID_ARGS, "ZHV_ERR_INVALID_ARGS" },
		{ ZHV_ERR_WRONG_TYPE, "ZHV_ERR_WRONG_TYPE" },
		{ ZHV_ERR_BAD_STATE, "ZHV_ERR_BAD_STATE" },
		{ ZHV_ERR_TIMED_OUT, "ZHV_ERR_TIMED_OUT" },
		{ ZHV_ERR_SHOULD_WAIT, "ZHV_ERR_SHOULD_WAIT" },
		{ ZHV_ERR_CANCELED, "ZHV_ERR_CANCELED" },
		{ ZHV_ERR_NOT_FOUND, "ZHV_ERR_NOT_FOUND" },
		{ ZHV_ERR_ALREADY_EXISTS, "ZHV_ERR_ALREADY_EXISTS" },
		{ ZHV_ERR_ACCESS_DENIED, "ZHV_ERR_ACCESS_DENIED" },
		{ ZHV_ERR_IO, "ZHV_ERR_IO" },
		{ ZHV_ERR_OUT_OF_RANGE, "ZHV_ERR_OUT_OF_RANGE" },
		{ ZHV_ERR_BUFFER_TOO_SMALL, "ZHV_ERR_BUFFER_TOO_SMALL" },
		{ ZHV_ERR_IO_DATA_INTEGRITY, "ZHV_ERR_IO_DATA_INTEGRITY" },
		{ 1, "ZHV_ERR_<unknown>" },
		{ -5, "ZHV_ERR_<unknown>" },
		{ INT32_MIN, "ZHV_ERR_<unknown>" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_string_equal(zhv_status_string(names[i].status), names[i].name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid_args),
		cmocka_unit_test(test_fifo_order),
		cmocka_unit_test(test_user_limit),
		cmocka_unit_test(test_default_user_limit),
		cmocka_unit_test(test_poll_and_timeout),
		cmocka_unit_test(test_wait_wakes_on_queue),
		cmocka_unit_test(test_arena_exhaustion_blocks),
		cmocka_unit_test(test_close_port),
		cmocka_unit_test(test_arena_destroy_keeps_user_packets),
		cmocka_unit_test(test_no_leaks),
		cmocka_unit_test(test_mt_single_consumer_fifo),
		cmocka_unit_test(test_mt_many_consumers),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_status_string),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
