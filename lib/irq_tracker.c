/* irq_tracker.c: pending-vector bitmap of one vCPU (Zircon's InterruptTracker, spec 4). */
#include <time.h>

#include "irq_tracker.h"

#define WORDS (IRQ_TRACKER_VECTORS / 64)

void irq_tracker_init(struct irq_tracker *t)
{
	pthread_condattr_t attr;

	pthread_mutex_init(&t->lock, NULL);
	/* Deadlines are CLOCK_MONOTONIC (zhv_time_t): the condition variable
	 * must measure them on the same clock, or a change of the wall clock
	 * would stretch or cut short a wait. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &attr);
	pthread_condattr_destroy(&attr);
	for (unsigned i = 0; i < WORDS; i++)
		t->bits[i] = 0;
	t->signaled = false;
	t->canceled = false;
	t->waiters = 0;
}

void irq_tracker_destroy(struct irq_tracker *t)
{
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
}

static bool any_pending_locked(const struct irq_tracker *t)
{
	for (unsigned i = 0; i < WORDS; i++) {
		if (t->bits[i])
			return true;
	}
	return false;
}

/* Highest set vector, or -1: x86 gives higher vectors priority (SDM vol. 3,
 * 11.8.3), and Zircon's x86 bitmap scans in reverse for the same reason. */
static int highest_locked(const struct irq_tracker *t)
{
	for (int i = WORDS - 1; i >= 0; i--) {
		if (t->bits[i])
			return i * 64 + 63 - __builtin_clzll(t->bits[i]);
	}
	return -1;
}

static void clear_bit_locked(struct irq_tracker *t, uint32_t vector)
{
	t->bits[vector / 64] &= ~(1ull << (vector % 64));
}

void irq_tracker_track(struct irq_tracker *t, uint32_t vector)
{
	if (vector >= IRQ_TRACKER_VECTORS)
		return;
	pthread_mutex_lock(&t->lock);
	t->bits[vector / 64] |= 1ull << (vector % 64);
	pthread_mutex_unlock(&t->lock);
}

void irq_tracker_interrupt(struct irq_tracker *t, uint32_t vector)
{
	if (vector >= IRQ_TRACKER_VECTORS)
		return;
	pthread_mutex_lock(&t->lock);
	t->bits[vector / 64] |= 1ull << (vector % 64);
	t->signaled = true;
	/* Broadcast while holding the lock: a waiter cannot miss the wake-up
	 * between testing the bitmap and blocking. */
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

bool irq_tracker_pending(struct irq_tracker *t)
{
	bool pending;

	pthread_mutex_lock(&t->lock);
	pending = any_pending_locked(t);
	pthread_mutex_unlock(&t->lock);
	return pending;
}

bool irq_tracker_try_pop(struct irq_tracker *t, uint32_t vector)
{
	bool was_set = false;

	if (vector >= IRQ_TRACKER_VECTORS)
		return false;
	pthread_mutex_lock(&t->lock);
	if (t->bits[vector / 64] & (1ull << (vector % 64))) {
		clear_bit_locked(t, vector);
		was_set = true;
	}
	pthread_mutex_unlock(&t->lock);
	return was_set;
}

int irq_tracker_pop(struct irq_tracker *t)
{
	int vector;

	pthread_mutex_lock(&t->lock);
	vector = highest_locked(t);
	if (vector >= 0)
		clear_bit_locked(t, (uint32_t)vector);
	pthread_mutex_unlock(&t->lock);
	return vector;
}

void irq_tracker_clear(struct irq_tracker *t, uint32_t min, uint32_t max)
{
	if (max > IRQ_TRACKER_VECTORS)
		max = IRQ_TRACKER_VECTORS;
	pthread_mutex_lock(&t->lock);
	for (uint32_t v = min; v < max; v++)
		clear_bit_locked(t, v);
	pthread_mutex_unlock(&t->lock);
}

void irq_tracker_discard_exceptions(struct irq_tracker *t)
{
	pthread_mutex_lock(&t->lock);
	t->bits[0] &= ~(0xffffffffull & ~(1ull << 2));
	pthread_mutex_unlock(&t->lock);
}

uint32_t irq_tracker_pending_mask(struct irq_tracker *t)
{
	uint32_t mask;

	pthread_mutex_lock(&t->lock);
	mask = (uint32_t)t->bits[0];
	pthread_mutex_unlock(&t->lock);
	return mask;
}

void irq_tracker_set_mask(struct irq_tracker *t, uint32_t mask)
{
	pthread_mutex_lock(&t->lock);
	t->bits[0] = (t->bits[0] & ~0xffffffffull) | mask;
	pthread_mutex_unlock(&t->lock);
}

void irq_tracker_cancel(struct irq_tracker *t)
{
	pthread_mutex_lock(&t->lock);
	/* Sticky until a wait consumes it, like Zircon's auto-reset event
	 * signalled with INTR_RETRY: a kick that lands just before the vCPU
	 * starts waiting must still end that wait. */
	t->canceled = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

zhv_status_t irq_tracker_wait(struct irq_tracker *t, zhv_time_t deadline)
{
	struct timespec ts = {
		.tv_sec = deadline / 1000000000,
		.tv_nsec = deadline % 1000000000,
	};
	zhv_status_t status = ZHV_OK;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		if (t->canceled) {
			t->canceled = false;
			status = ZHV_ERR_CANCELED;
			break;
		}
		if (any_pending_locked(t)) {
			t->signaled = false;
			break;
		}
		/* Zircon resumes the vCPU when the deadline passes: OK. */
		if (deadline <= 0 || (deadline != ZHV_TIME_INFINITE &&
				      zhv_clock_monotonic() >= deadline))
			break;
		t->waiters++;
		if (deadline == ZHV_TIME_INFINITE)
			pthread_cond_wait(&t->cond, &t->lock);
		else
			pthread_cond_timedwait(&t->cond, &t->lock, &ts);
		t->waiters--;
		/* Whatever woke us (interrupt, cancel, timeout or a spurious
		 * wake-up), the loop re-reads the state under the lock. */
	}
	pthread_mutex_unlock(&t->lock);
	return status;
}
