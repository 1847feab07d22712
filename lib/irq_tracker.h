/* irq_tracker.h: pending-vector bitmap of one vCPU (internal; Zircon's
 * InterruptTracker). With KVM's local APIC it holds the exceptions (and
 * any vector the caller tracks) that libzhv injects at the next entry. */
#ifndef ZHV_IRQ_TRACKER_H
#define ZHV_IRQ_TRACKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "zhv.h"

#define IRQ_TRACKER_VECTORS 256u

struct irq_tracker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t bits[IRQ_TRACKER_VECTORS / 64];
	bool signaled;    /* auto-reset event: set by interrupt, reset by a
	                   * wait that returns; waits test the bitmap itself */
	bool canceled;    /* cancel pending for a waiter */
	uint32_t waiters; /* threads blocked in irq_tracker_wait (under lock) */
};

void irq_tracker_init(struct irq_tracker *t);
void irq_tracker_destroy(struct irq_tracker *t);

/* irq_tracker_track: mark (vector) pending without waking waiters.
 * Vectors >= 256 are ignored. */
void irq_tracker_track(struct irq_tracker *t, uint32_t vector);
/* irq_tracker_interrupt: mark (vector) pending and wake a waiter. */
void irq_tracker_interrupt(struct irq_tracker *t, uint32_t vector);
/* irq_tracker_pending: any vector pending? */
bool irq_tracker_pending(struct irq_tracker *t);
/* irq_tracker_try_pop: if (vector) is pending, clear it and return true. */
bool irq_tracker_try_pop(struct irq_tracker *t, uint32_t vector);
/* irq_tracker_pop: clear and return the highest pending vector (x86 order),
 * or -1 if none. */
int irq_tracker_pop(struct irq_tracker *t);
/* irq_tracker_clear: clear vectors [min, max) (max is capped at 256). */
void irq_tracker_clear(struct irq_tracker *t, uint32_t min, uint32_t max);
/* irq_tracker_discard_exceptions: drop the pending exceptions (vectors
 * 0..31 except 2) once an event was injected (spec 4 step 5); an NMI and
 * external interrupts stay pending. One step, so an NMI raised meanwhile by
 * another thread is never dropped with them. */
void irq_tracker_discard_exceptions(struct irq_tracker *t);
/* irq_tracker_pending_mask: bits 0..31 of the bitmap. */
uint32_t irq_tracker_pending_mask(struct irq_tracker *t);
/* irq_tracker_set_mask: replace bits 0..31 of the bitmap with (mask). */
void irq_tracker_set_mask(struct irq_tracker *t, uint32_t mask);
/* irq_tracker_cancel: make a current or the next irq_tracker_wait return
 * CANCELED once. */
void irq_tracker_cancel(struct irq_tracker *t);
/* irq_tracker_wait: wait until a vector is pending (returns ZHV_OK at once
 * if one already is), (deadline) passes (ZHV_OK, as Zircon; absolute
 * CLOCK_MONOTONIC ns, ZHV_TIME_INFINITE: no deadline), or cancel (CANCELED;
 * a pending cancel wins over pending vectors). Any thread. */
zhv_status_t irq_tracker_wait(struct irq_tracker *t, zhv_time_t deadline);

#endif /* ZHV_IRQ_TRACKER_H */
