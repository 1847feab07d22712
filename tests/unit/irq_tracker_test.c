/* irq_tracker_test.c: unit tests of the interrupt tracker (Zircon's interrupt_bitmap test and more). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>
#include <pthread.h>

#include "irq_tracker.h"

#define MS 1000000ll

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static uint32_t waiters(struct irq_tracker *t)
{
	uint32_t n;

	pthread_mutex_lock(&t->lock);
	n = t->waiters;
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* Wait (up to 2 s) until a thread is really blocked in irq_tracker_wait, so
 * that the wake-up under test is the one that ends its wait. */
static void wait_for_waiter(struct irq_tracker *t)
{
	zhv_time_t give_up = zhv_deadline_after(2000 * MS);

	while (waiters(t) == 0) {
		assert_true(zhv_clock_monotonic() < give_up);
		sleep_ms(1);
	}
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

static int tracker_setup(void **state)
{
	static struct irq_tracker t;

	irq_tracker_init(&t);
	*state = &t;
	return 0;
}

static int tracker_teardown(void **state)
{
	/* A failed test can leave a thread blocked in irq_tracker_wait;
	 * destroying the condition variable under it would hang the run. */
	if (waiters(*state) == 0)
		irq_tracker_destroy(*state);
	return 0;
}

/* "Get": bits 0..31 are readable without popping. */
static bool get(struct irq_tracker *t, uint32_t v)
{
	return (irq_tracker_pending_mask(t) >> v) & 1;
}

/* "Scan": the highest pending vector, without consuming it. */
static int scan(struct irq_tracker *t)
{
	int v = irq_tracker_pop(t);

	if (v >= 0)
		irq_tracker_track(t, (uint32_t)v);
	return v;
}

/* Zircon's interrupt_bitmap test (spec 6.4 test 48): Set/Get/Scan/Clear. */
static void test_interrupt_bitmap(void **state)
{
	struct irq_tracker *t = *state;

	assert_false(get(t, 0));
	assert_false(get(t, 1));
	assert_int_equal(scan(t), -1);
	assert_false(irq_tracker_pending(t));

	/* Index 0. */
	irq_tracker_track(t, 0);
	assert_true(get(t, 0));
	assert_false(get(t, 1));
	assert_int_equal(scan(t), 0);
	assert_true(irq_tracker_pending(t));
	irq_tracker_clear(t, 0, 1);
	assert_false(get(t, 0));
	assert_false(get(t, 1));
	assert_int_equal(scan(t), -1);

	/* Index 1. */
	irq_tracker_track(t, 1);
	assert_false(get(t, 0));
	assert_true(get(t, 1));
	assert_int_equal(scan(t), 1);
	irq_tracker_clear(t, 1, 2);
	assert_false(get(t, 0));
	assert_false(get(t, 1));
	assert_int_equal(scan(t), -1);

	/* Clear(1, 3) clears 1 and 2 only. */
	for (uint32_t v = 0; v < 4; v++)
		irq_tracker_track(t, v);
	irq_tracker_clear(t, 1, 3);
	assert_true(get(t, 0));
	assert_false(get(t, 1));
	assert_false(get(t, 2));
	assert_true(get(t, 3));
	assert_int_equal(irq_tracker_pending_mask(t), 0x9);
}

/* x86 order: the highest vector first, across all four words. */
static void test_pop_order(void **state)
{
	static const uint32_t in[] = { 16, 32, 2, 255, 0, 100, 63, 64, 127, 128, 191, 192 };
	static const int out[] = { 255, 192, 191, 128, 127, 100, 64, 63, 32, 16, 2, 0 };
	struct irq_tracker *t = *state;

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		irq_tracker_interrupt(t, in[i]);
	/* Tracking twice is idempotent. */
	irq_tracker_track(t, 100);
	for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
		assert_int_equal(irq_tracker_pop(t), out[i]);
	assert_int_equal(irq_tracker_pop(t), -1);
	assert_false(irq_tracker_pending(t));
}

static void test_try_pop(void **state)
{
	struct irq_tracker *t = *state;

	irq_tracker_track(t, 5);
	irq_tracker_track(t, 200);
	assert_false(irq_tracker_try_pop(t, 6));
	assert_true(irq_tracker_try_pop(t, 5));
	assert_false(irq_tracker_try_pop(t, 5));
	assert_false(irq_tracker_try_pop(t, 256));
	assert_false(irq_tracker_try_pop(t, UINT32_MAX));
	assert_true(irq_tracker_pending(t));
	assert_true(irq_tracker_try_pop(t, 200));
	assert_false(irq_tracker_pending(t));
}

static void test_out_of_range_vectors_ignored(void **state)
{
	struct irq_tracker *t = *state;

	irq_tracker_track(t, 256);
	irq_tracker_interrupt(t, 1000);
	irq_tracker_interrupt(t, UINT32_MAX);
	assert_false(irq_tracker_pending(t));
	assert_int_equal(irq_tracker_pop(t), -1);
}

static void test_clear_ranges(void **state)
{
	struct irq_tracker *t = *state;

	for (uint32_t v = 0; v < IRQ_TRACKER_VECTORS; v++)
		irq_tracker_track(t, v);
	/* What injection does after delivering something: drop exceptions
	 * 0-1 and 3-20, keep the NMI (2) and external vectors. */
	irq_tracker_clear(t, 0, 2);
	irq_tracker_clear(t, 3, 21);
	assert_int_equal(irq_tracker_pending_mask(t), 0xFFE00004u);
	/* Across a word boundary, half-open. */
	irq_tracker_clear(t, 60, 130);
	assert_true(irq_tracker_try_pop(t, 59));
	assert_false(irq_tracker_try_pop(t, 60));
	assert_false(irq_tracker_try_pop(t, 64));
	assert_false(irq_tracker_try_pop(t, 129));
	assert_true(irq_tracker_try_pop(t, 130));
	/* Empty range, reversed range: no-ops. max is capped at 256. */
	irq_tracker_clear(t, 40, 40);
	irq_tracker_clear(t, 50, 45);
	assert_true(irq_tracker_try_pop(t, 40));
	assert_true(irq_tracker_try_pop(t, 47));
	irq_tracker_clear(t, 250, 100000);
	assert_false(irq_tracker_try_pop(t, 255));
	assert_false(irq_tracker_try_pop(t, 250));
	assert_int_equal(irq_tracker_pop(t), 249);
	irq_tracker_clear(t, 0, IRQ_TRACKER_VECTORS);
	assert_false(irq_tracker_pending(t));
}

static void test_mask(void **state)
{
	struct irq_tracker *t = *state;

	irq_tracker_track(t, 3);
	irq_tracker_track(t, 32);
	irq_tracker_track(t, 40);
	assert_int_equal(irq_tracker_pending_mask(t), 1u << 3);
	/* set_mask replaces bits 0..31 only (snapshot restore). */
	irq_tracker_set_mask(t, 0x80010001u);
	assert_int_equal(irq_tracker_pending_mask(t), 0x80010001u);
	assert_int_equal(irq_tracker_pop(t), 40);
	assert_int_equal(irq_tracker_pop(t), 32);
	assert_int_equal(irq_tracker_pop(t), 31);
	assert_int_equal(irq_tracker_pop(t), 16);
	assert_int_equal(irq_tracker_pop(t), 0);
	assert_int_equal(irq_tracker_pop(t), -1);
	irq_tracker_track(t, 33);
	irq_tracker_set_mask(t, 0);
	assert_int_equal(irq_tracker_pending_mask(t), 0);
	assert_int_equal(irq_tracker_pop(t), 33);
}

static void test_wait_pending_returns_at_once(void **state)
{
	struct irq_tracker *t = *state;
	zhv_time_t start = zhv_clock_monotonic();

	irq_tracker_track(t, 14);
	assert_int_equal(irq_tracker_wait(t, ZHV_TIME_INFINITE), ZHV_OK);
	assert_int_equal(irq_tracker_wait(t, zhv_deadline_after(1000 * MS)), ZHV_OK);
	assert_true(zhv_clock_monotonic() - start < 500 * MS);
	/* Waiting does not consume the vector. */
	assert_int_equal(irq_tracker_pop(t), 14);
}

/* Zircon resumes the vCPU when the deadline passes: OK, not TIMED_OUT. */
static void test_wait_times_out(void **state)
{
	struct irq_tracker *t = *state;
	zhv_time_t start = zhv_clock_monotonic();

	assert_int_equal(irq_tracker_wait(t, start + 30 * MS), ZHV_OK);
	assert_true(zhv_clock_monotonic() >= start + 30 * MS);
	assert_false(irq_tracker_pending(t));
	/* A deadline in the past (or 0) returns at once. */
	start = zhv_clock_monotonic();
	assert_int_equal(irq_tracker_wait(t, 0), ZHV_OK);
	assert_int_equal(irq_tracker_wait(t, start - 1000 * MS), ZHV_OK);
	assert_true(zhv_clock_monotonic() - start < 500 * MS);
}

/* A cancel before the wait is not lost, and counts once. */
static void test_cancel_before_wait(void **state)
{
	struct irq_tracker *t = *state;
	zhv_time_t start;

	irq_tracker_cancel(t);
	irq_tracker_cancel(t);
	/* Cancel wins over pending vectors and does not consume them. */
	irq_tracker_track(t, 8);
	assert_int_equal(irq_tracker_wait(t, ZHV_TIME_INFINITE), ZHV_ERR_CANCELED);
	assert_int_equal(irq_tracker_wait(t, ZHV_TIME_INFINITE), ZHV_OK);
	assert_int_equal(irq_tracker_pop(t), 8);
	start = zhv_clock_monotonic();
	assert_int_equal(irq_tracker_wait(t, start + 20 * MS), ZHV_OK);
	assert_true(zhv_clock_monotonic() >= start + 20 * MS);
}

struct waiter {
	struct irq_tracker *t;
	zhv_time_t deadline;
	atomic_int done;
	zhv_status_t status;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->status = irq_tracker_wait(w->t, w->deadline);
	atomic_store(&w->done, 1);
	return NULL;
}

static void test_cancel_wakes_waiter(void **state)
{
	struct waiter w = { .t = *state, .deadline = ZHV_TIME_INFINITE };
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
	wait_for_waiter(w.t);
	assert_int_equal(atomic_load(&w.done), 0);
	irq_tracker_cancel(w.t);
	wait_done(&w.done);
	pthread_join(th, NULL);
	assert_int_equal(w.status, ZHV_ERR_CANCELED);
	assert_int_equal(waiters(w.t), 0);
	/* Consumed: the next wait is not canceled. */
	assert_int_equal(irq_tracker_wait(w.t, 0), ZHV_OK);
}

static void test_interrupt_wakes_waiter(void **state)
{
	/* A finite but long deadline: if the wake-up were lost, the wait
	 * would end by timeout, which the elapsed-time check catches. */
	struct waiter w = { .t = *state, .deadline = zhv_deadline_after(5000 * MS) };
	pthread_t th;
	zhv_time_t start;

	assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
	wait_for_waiter(w.t);
	assert_int_equal(atomic_load(&w.done), 0);
	start = zhv_clock_monotonic();
	irq_tracker_interrupt(w.t, 77);
	wait_done(&w.done);
	pthread_join(th, NULL);
	assert_int_equal(w.status, ZHV_OK);
	assert_true(zhv_clock_monotonic() - start < 2000 * MS);
	assert_int_equal(irq_tracker_pop(w.t), 77);
}

/* A thread that empties the bitmap between the wake-up and the waiter's
 * check sends the waiter back to sleep (Zircon's loop on Pending()). */
static void test_wait_loops_when_vector_stolen(void **state)
{
	struct irq_tracker *t = *state;
	struct waiter w = { .t = t, .deadline = zhv_deadline_after(5000 * MS) };
	pthread_t th;

	/* Hold the lock so that the interrupt's wake-up cannot be acted on
	 * before the vector is gone again. */
	assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
	wait_for_waiter(t);
	pthread_mutex_lock(&t->lock);
	t->bits[1] |= 1ull << 1; /* vector 65 */
	pthread_cond_broadcast(&t->cond);
	t->bits[1] = 0;
	pthread_mutex_unlock(&t->lock);
	sleep_ms(20);
	assert_int_equal(atomic_load(&w.done), 0);
	irq_tracker_interrupt(t, 66);
	wait_done(&w.done);
	pthread_join(th, NULL);
	assert_int_equal(w.status, ZHV_OK);
	assert_int_equal(irq_tracker_pop(t), 66);
	assert_int_equal(irq_tracker_pop(t), -1);
}

#define STRESS_VECTORS 2000

struct stress {
	struct irq_tracker *t;
	atomic_int stop;
	atomic_int popped;
};

static void *stress_consumer(void *arg)
{
	struct stress *s = arg;

	for (;;) {
		int v;

		irq_tracker_wait(s->t, zhv_deadline_after(2000 * MS));
		while ((v = irq_tracker_pop(s->t)) >= 0)
			atomic_fetch_add(&s->popped, 1);
		if (atomic_load(&s->stop) && !irq_tracker_pending(s->t))
			break;
	}
	return NULL;
}

/* Interrupts from another thread, each waited for before the next: every
 * one is seen by the waiting consumer, none is lost. */
static void test_interrupts_from_other_thread(void **state)
{
	struct stress s = { .t = *state };
	pthread_t th;
	zhv_time_t give_up = zhv_deadline_after(5000 * MS);

	assert_int_equal(pthread_create(&th, NULL, stress_consumer, &s), 0);
	for (int i = 0; i < STRESS_VECTORS; i++) {
		int before = atomic_load(&s.popped);

		irq_tracker_interrupt(s.t, 32 + (uint32_t)i % 224);
		while (atomic_load(&s.popped) == before)
			assert_true(zhv_clock_monotonic() < give_up);
	}
	atomic_store(&s.stop, 1);
	irq_tracker_cancel(s.t);
	pthread_join(th, NULL);
	assert_int_equal(atomic_load(&s.popped), STRESS_VECTORS);
}

/* Spec 4 step 5: once an event went in, pending exceptions are dropped but
 * an NMI (2) and external interrupts stay pending. */
static void test_discard_exceptions_keeps_nmi(void **state)
{
	struct irq_tracker *t = *state;

	irq_tracker_interrupt(t, 0);
	irq_tracker_interrupt(t, 2);
	irq_tracker_interrupt(t, 13);
	irq_tracker_interrupt(t, 20);
	irq_tracker_interrupt(t, 32);
	irq_tracker_interrupt(t, 255);
	irq_tracker_discard_exceptions(t);
	assert_int_equal(irq_tracker_pending_mask(t), 1u << 2);
	assert_int_equal(irq_tracker_pop(t), 255);
	assert_int_equal(irq_tracker_pop(t), 32);
	assert_int_equal(irq_tracker_pop(t), 2);
	assert_int_equal(irq_tracker_pop(t), -1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tracker_setup, tracker_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_interrupt_bitmap),
		T(test_pop_order),
		T(test_try_pop),
		T(test_out_of_range_vectors_ignored),
		T(test_clear_ranges),
		T(test_mask),
		T(test_wait_pending_returns_at_once),
		T(test_wait_times_out),
		T(test_cancel_before_wait),
		T(test_cancel_wakes_waiter),
		T(test_interrupt_wakes_waiter),
		T(test_wait_loops_when_vector_stolen),
		T(test_interrupts_from_other_thread),
		T(test_discard_exceptions_keeps_nmi),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
