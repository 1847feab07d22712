/* pit.c: 8254 PIT at 0x40-0x43 (counters computed from CLOCK_MONOTONIC, channel 0 on ISA IRQ 0 by a timer thread) and port 0x61. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../devices.h"
#include "../vm.h"
#include "thread.h"

/* clang-format off */
#define PIT_BASE_PORT   0x40u /* counters 0-2 at 0x40-0x42, control word 0x43 */
#define PIT_PORT_B      0x61u /* PC system control port B */
#define PIT_HZ          1193182ull /* 8254 input clock on a PC (14.31818 MHz / 12) */
#define PIT_MIN_PERIOD  100000ll   /* ns: clamp so a guest cannot make the host spin */
#define PIT_NS          1000000000ll

/* Control word (Intel 8254 datasheet, "Control Word Format"). */
#define PIT_CW_SC(v)    (((v) >> 6) & 3) /* select counter; 3 = read-back */
#define PIT_CW_RW(v)    (((v) >> 4) & 3) /* 0 latch, 1 LSB, 2 MSB, 3 LSB then MSB */
#define PIT_CW_MODE(v)  (((v) >> 1) & 7)
#define PIT_CW_BCD      0x01
#define PIT_RW_LSB      1
#define PIT_RW_MSB      2
#define PIT_RW_WORD     3

/* Read-back command (8254 datasheet, "Read-Back Command"). */
#define PIT_RB_NOCOUNT  0x20 /* 0: latch the count */
#define PIT_RB_NOSTATUS 0x10 /* 0: latch the status */
#define PIT_STATUS_OUT  0x80
#define PIT_STATUS_NULL 0x40 /* null count: no count loaded since the control word */

/* Port 0x61 (IBM PC/AT Technical Reference, port B). */
#define PIT_B_GATE2     0x01 /* timer 2 gate */
#define PIT_B_SPKR      0x02 /* speaker data enable */
#define PIT_B_RW_MASK   0x0F /* bits 3-0 read back as written */
#define PIT_B_REFRESH   0x10 /* refresh request: toggles every 15.085 us */
#define PIT_B_OUT2      0x20 /* timer 2 output */
#define PIT_REFRESH_NS  15085
/* clang-format on */

struct pit_channel {
	uint32_t count;      /* loaded count, 1..0x10000 (0 written means 0x10000) */
	uint8_t mode;        /* 0-5 (6, 7 are 2, 3) */
	uint8_t rw;          /* PIT_RW_* */
	bool bcd;            /* recorded; counting is binary */
	bool gate;
	bool counting;       /* a count is loaded and counting started */
	bool null_count;
	int64_t start_ns;    /* CLOCK_MONOTONIC when counting (re)started */
	uint64_t base_ticks; /* ticks counted before a gate-low pause */
	bool write_msb_next; /* LSB-then-MSB flip-flops */
	bool read_msb_next;
	uint8_t write_lsb;
	bool count_latched, latch_msb_next;
	uint16_t latch;
	bool status_latched;
	uint8_t status;
};

struct pit {
	pthread_mutex_t lock; /* channels and the timer below */
	pthread_cond_t cond;
	struct vm *vm;
	struct pit_channel ch[3];
	uint8_t port_b;
	/* Channel 0's interrupt: the thread pulses IRQ 0 at (next_ns). */
	bool armed, periodic;
	int64_t next_ns, period_ns;
	pthread_t thread;
	bool thread_started; /* the thread starts when channel 0 first counts */
	bool stopping;       /* pit_destroy: the thread returns */
};

static int64_t pit_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * PIT_NS + ts.tv_nsec;
}

static uint64_t pit_ns_to_ticks(int64_t ns)
{
	if (ns <= 0)
		return 0;
	uint64_t s = (uint64_t)(ns / PIT_NS), r = (uint64_t)(ns % PIT_NS);
	return s * PIT_HZ + r * PIT_HZ / PIT_NS;
}

static uint64_t pit_ticks(const struct pit_channel *c, int64_t now)
{
	if (!c->counting)
		return 0;
	if (!c->gate)
		return c->base_ticks;
	return c->base_ticks + pit_ns_to_ticks(now - c->start_ns);
}

/* The counting element and OUT after (ticks) clocks (8254 datasheet, mode
 * descriptions; mode 3 counts by two as in QEMU's i8254). */
static uint16_t pit_value(const struct pit_channel *c, int64_t now)
{
	if (!c->counting)
		return (uint16_t)c->count;
	uint64_t t = pit_ticks(c, now);
	switch (c->mode) {
	case 2:
		return (uint16_t)(c->count - t % c->count);
	case 3:
		return (uint16_t)(c->count - (2 * t) % c->count);
	default: /* 0, 1, 4, 5: count down, wrapping through 0xFFFF */
		return (uint16_t)(c->count - t);
	}
}

static bool pit_out(const struct pit_channel *c, int64_t now)
{
	if (!c->counting)
		return c->mode != 0; /* mode 0: OUT low from the control word on */
	uint64_t t = pit_ticks(c, now);
	switch (c->mode) {
	case 0:
	case 1:
		return t >= c->count;
	case 2:
		return t % c->count != c->count - 1;
	case 3:
		return t % c->count < (c->count + 1) / 2;
	default: /* 4, 5: one low clock at terminal count */
		return t != c->count;
	}
}

static void *pit_thread(void *arg);

/* Channel 0 was (re)loaded or stopped: (re)arm the thread, starting it the
 * first time (a guest that never uses the PIT costs no thread, and start-up
 * is quicker). Called with the lock held. */
static void pit_arm(struct pit *p, int64_t now)
{
	struct pit_channel *c = &p->ch[0];
	p->armed = c->counting;
	if (p->armed && !p->thread_started) {
		if (vmm_thread_start(&p->thread, 0, pit_thread, p) < 0) {
			fprintf(stderr, "zhv: pit: cannot start the timer thread\n");
			p->armed = false;
			return;
		}
		p->thread_started = true;
	}
	if (!p->armed) {
		pthread_cond_signal(&p->cond);
		return;
	}
	int64_t period = (int64_t)(c->count * (uint64_t)PIT_NS / PIT_HZ);
	if (period < PIT_MIN_PERIOD)
		period = PIT_MIN_PERIOD;
	p->period_ns = period;
	p->periodic = c->mode == 2 || c->mode == 3;
	p->next_ns = now + period;
	pthread_cond_signal(&p->cond);
}

static void pit_start(struct pit_channel *c, int64_t now)
{
	c->counting = true;
	c->null_count = false;
	c->base_ticks = 0;
	c->start_ns = now;
}

static void pit_load(struct pit *p, unsigned n, uint32_t value, int64_t now)
{
	struct pit_channel *c = &p->ch[n];
	c->count = value ? value : 0x10000;
	if (c->mode == 2 && c->count == 1) /* count 1 is illegal in modes 2 and 3 */
		c->count = 2;
	if (c->mode == 3 && c->count == 1)
		c->count = 2;
	pit_start(c, now);
	if (n == 0)
		pit_arm(p, now);
}

static void pit_latch_count(struct pit_channel *c, int64_t now)
{
	if (c->count_latched)
		return; /* a second latch before the read is ignored */
	c->latch = pit_value(c, now);
	c->count_latched = true;
	c->latch_msb_next = false;
}

static void pit_latch_status(struct pit_channel *c, int64_t now)
{
	if (c->status_latched)
		return;
	c->status = (uint8_t)((pit_out(c, now) ? PIT_STATUS_OUT : 0) |
	                      (c->null_count ? PIT_STATUS_NULL : 0) | c->rw << 4 | c->mode << 1 |
	                      (c->bcd ? 1 : 0));
	c->status_latched = true;
}

static void pit_control(struct pit *p, uint8_t v, int64_t now)
{
	unsigned sc = PIT_CW_SC(v);
	if (sc == 3) { /* read-back: bits 3-1 select counters 2-0 */
		for (unsigned n = 0; n < 3; n++) {
			if (!(v & (2u << n)))
				continue;
			if (!(v & PIT_RB_NOCOUNT))
				pit_latch_count(&p->ch[n], now);
			if (!(v & PIT_RB_NOSTATUS))
				pit_latch_status(&p->ch[n], now);
		}
		return;
	}
	struct pit_channel *c = &p->ch[sc];
	if (PIT_CW_RW(v) == 0) {
		pit_latch_count(c, now);
		return;
	}
	unsigned mode = PIT_CW_MODE(v);
	c->mode = (uint8_t)(mode > 5 ? mode - 4 : mode);
	c->rw = (uint8_t)PIT_CW_RW(v);
	c->bcd = v & PIT_CW_BCD;
	c->counting = false; /* counting waits for the new count */
	c->null_count = true;
	c->write_msb_next = c->read_msb_next = false;
	c->count_latched = c->status_latched = false;
	if (sc == 0)
		pit_arm(p, now);
}

static uint8_t pit_counter_read(struct pit_channel *c, int64_t now)
{
	if (c->status_latched) {
		c->status_latched = false;
		return c->status;
	}
	if (c->count_latched) {
		uint8_t b;
		if (c->rw == PIT_RW_MSB || (c->rw == PIT_RW_WORD && c->latch_msb_next))
			b = (uint8_t)(c->latch >> 8);
		else
			b = (uint8_t)c->latch;
		if (c->rw == PIT_RW_WORD && !c->latch_msb_next)
			c->latch_msb_next = true;
		else
			c->count_latched = false;
		return b;
	}
	uint16_t v = pit_value(c, now);
	switch (c->rw) {
	case PIT_RW_MSB:
		return (uint8_t)(v >> 8);
	case PIT_RW_WORD:
		c->read_msb_next = !c->read_msb_next;
		return c->read_msb_next ? (uint8_t)v : (uint8_t)(v >> 8);
	default:
		return (uint8_t)v;
	}
}

static void pit_counter_write(struct pit *p, unsigned n, uint8_t v, int64_t now)
{
	struct pit_channel *c = &p->ch[n];
	switch (c->rw) {
	case PIT_RW_LSB:
		pit_load(p, n, v, now);
		break;
	case PIT_RW_MSB:
		pit_load(p, n, (uint32_t)v << 8, now);
		break;
	case PIT_RW_WORD:
		if (!c->write_msb_next) {
			c->write_lsb = v;
			c->write_msb_next = true;
			if (c->mode == 0) { /* mode 0: the first byte stops counting */
				c->counting = false;
				if (n == 0)
					pit_arm(p, now);
			}
		} else {
			c->write_msb_next = false;
			pit_load(p, n, (uint32_t)c->write_lsb | (uint32_t)v << 8, now);
		}
		break;
	default: /* no control word yet: ignored */
		break;
	}
}

/* Gate of channel 2 (port 0x61 bit 0). Low pauses counting; a rising
 * edge restarts modes 1, 2, 3 and 5 and resumes modes 0 and 4. */
static void pit_set_gate(struct pit_channel *c, bool gate, int64_t now)
{
	if (gate == c->gate)
		return;
	if (!gate) {
		c->base_ticks = pit_ticks(c, now);
		c->gate = false;
		return;
	}
	c->gate = true;
	c->start_ns = now;
	if (c->mode != 0 && c->mode != 4)
		c->base_ticks = 0;
}

static void pit_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                       unsigned size)
{
	struct pit *p = opaque;
	int64_t now = pit_now();
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < size; i++) {
		uint64_t reg = offset + i;
		if (!write)
			data[i] = 0xFF;
		if (reg < 3) {
			if (write)
				pit_counter_write(p, (unsigned)reg, data[i], now);
			else
				data[i] = pit_counter_read(&p->ch[reg], now);
		} else if (reg == 3 && write) {
			pit_control(p, data[i], now);
		}
		/* a read of the control word port: all-ones (8254: no-op) */
	}
	pthread_mutex_unlock(&p->lock);
}

static void pit_port_b_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                              unsigned size)
{
	struct pit *p = opaque;
	int64_t now = pit_now();
	(void)offset;
	pthread_mutex_lock(&p->lock);
	if (write) {
		p->port_b = data[0] & PIT_B_RW_MASK;
		pit_set_gate(&p->ch[2], p->port_b & PIT_B_GATE2, now);
	} else {
		memset(data, 0xFF, size);
		uint8_t v = p->port_b;
		if ((now / PIT_REFRESH_NS) & 1)
			v |= PIT_B_REFRESH;
		if (pit_out(&p->ch[2], now))
			v |= PIT_B_OUT2;
		data[0] = v;
	}
	pthread_mutex_unlock(&p->lock);
}

/* Channel 0's interrupt: sleep until the next terminal count, pulse IRQ 0
 * (the IOAPIC routes ISA IRQ 0 to pin 2). Missed periods are dropped, not
 * replayed in a burst. */
static void *pit_thread(void *arg)
{
	struct pit *p = arg;
	/* Named by itself (prctl): naming another thread opens a /proc file,
	 * which the sandbox forbids once the guest runs (vmm/sandbox.h). */
	pthread_setname_np(pthread_self(), "zhv-pit");
	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		if (!p->armed) {
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		int64_t now = pit_now();
		if (now < p->next_ns) {
			struct timespec ts = {.tv_sec = p->next_ns / PIT_NS,
			                      .tv_nsec = p->next_ns % PIT_NS};
			pthread_cond_timedwait(&p->cond, &p->lock, &ts);
			continue; /* re-check: the guest may have reprogrammed */
		}
		if (p->periodic) {
			p->next_ns += p->period_ns;
			if (p->next_ns <= now)
				p->next_ns = now + p->period_ns;
		} else {
			p->armed = false;
		}
		pthread_mutex_unlock(&p->lock);
		vm_irq_pulse(p->vm, 0);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ---- snapshot (snapshot.h): section "pit", version 1 ---------------------
 * For each channel: count (u32), mode rw (u8), bcd gate counting null_count
 * (bool), elapsed (u64: ns counted since start_ns, 0 unless counting with
 * the gate high), base_ticks (u64), write_msb_next read_msb_next (bool),
 * write_lsb (u8), count_latched latch_msb_next (bool), latch (u16),
 * status_latched (bool), status (u8). Then port_b (u8), and channel 0's
 * interrupt: armed periodic (bool), period_ns and the ns left to the next
 * one (u64). Times are guest-time remainders: the counters continue from
 * where they were, however long the snapshot waited. */

#define PIT_SNAP_MAX_NS (1ll << 62) /* no elapsed time or tick count beyond this */

static int pit_snap_save(void *opaque, struct snap_writer *w)
{
	struct pit *p = opaque;
	pthread_mutex_lock(&p->lock);
	int64_t now = pit_now();
	for (unsigned n = 0; n < 3; n++) {
		const struct pit_channel *c = &p->ch[n];
		int64_t elapsed = c->counting && c->gate ? now - c->start_ns : 0;
		snap_put_u32(w, c->count);
		snap_put_u8(w, c->mode);
		snap_put_u8(w, c->rw);
		snap_put_bool(w, c->bcd);
		snap_put_bool(w, c->gate);
		snap_put_bool(w, c->counting);
		snap_put_bool(w, c->null_count);
		snap_put_u64(w, (uint64_t)(elapsed > 0 ? elapsed : 0));
		snap_put_u64(w, c->base_ticks);
		snap_put_bool(w, c->write_msb_next);
		snap_put_bool(w, c->read_msb_next);
		snap_put_u8(w, c->write_lsb);
		snap_put_bool(w, c->count_latched);
		snap_put_bool(w, c->latch_msb_next);
		snap_put_u16(w, c->latch);
		snap_put_bool(w, c->status_latched);
		snap_put_u8(w, c->status);
	}
	snap_put_u8(w, p->port_b);
	snap_put_bool(w, p->armed);
	snap_put_bool(w, p->armed && p->periodic); /* a stopped timer keeps a stale mode */
	snap_put_u64(w, p->armed ? (uint64_t)p->period_ns : 0);
	int64_t left = p->armed ? p->next_ns - now : 0;
	if (left > p->period_ns)
		left = p->period_ns;
	snap_put_u64(w, (uint64_t)(left > 0 ? left : 0));
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static int pit_snap_load(void *opaque, struct snap_reader *r)
{
	struct pit *p = opaque;
	struct pit_channel ch[3];
	uint64_t elapsed[3];
	memset(ch, 0, sizeof(ch));
	for (unsigned n = 0; n < 3; n++) {
		struct pit_channel *c = &ch[n];
		c->count = snap_get_u32(r);
		c->mode = snap_get_u8(r);
		c->rw = snap_get_u8(r);
		c->bcd = snap_get_bool(r);
		c->gate = snap_get_bool(r);
		c->counting = snap_get_bool(r);
		c->null_count = snap_get_bool(r);
		elapsed[n] = snap_get_u64(r);
		c->base_ticks = snap_get_u64(r);
		c->write_msb_next = snap_get_bool(r);
		c->read_msb_next = snap_get_bool(r);
		c->write_lsb = snap_get_u8(r);
		c->count_latched = snap_get_bool(r);
		c->latch_msb_next = snap_get_bool(r);
		c->latch = snap_get_u16(r);
		c->status_latched = snap_get_bool(r);
		c->status = snap_get_u8(r);
		if (c->count < 1 || c->count > 0x10000 || c->mode > 5 || c->rw > PIT_RW_WORD ||
		    ((c->mode == 2 || c->mode == 3) && c->count < 2) || (n < 2 && !c->gate) ||
		    elapsed[n] >= (uint64_t)PIT_SNAP_MAX_NS ||
		    c->base_ticks >= (uint64_t)PIT_SNAP_MAX_NS)
			snap_bad(r);
	}
	uint8_t port_b = snap_get_u8(r);
	bool armed = snap_get_bool(r), periodic = snap_get_bool(r);
	uint64_t period = snap_get_u64(r), left = snap_get_u64(r);
	int64_t max_period = (int64_t)(0x10000ull * PIT_NS / PIT_HZ);
	if ((port_b & ~PIT_B_RW_MASK) || !(port_b & PIT_B_GATE2) != !ch[2].gate)
		snap_bad(r);
	if (armed && (!ch[0].counting || period < (uint64_t)PIT_MIN_PERIOD ||
	              period > (uint64_t)max_period || left > period))
		snap_bad(r);
	if (!armed && (periodic || period || left))
		snap_bad(r);
	int ret = snap_reader_end(r);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&p->lock);
	int64_t now = pit_now();
	for (unsigned n = 0; n < 3; n++) {
		p->ch[n] = ch[n];
		p->ch[n].start_ns = now - (int64_t)elapsed[n];
	}
	p->port_b = port_b;
	p->periodic = periodic;
	p->period_ns = (int64_t)period;
	p->next_ns = now + (int64_t)left;
	p->armed = armed;
	if (armed && !p->thread_started) {
		if (vmm_thread_start(&p->thread, 0, pit_thread, p) < 0) {
			pthread_mutex_unlock(&p->lock);
			fprintf(stderr, "zhv: pit: cannot start the timer thread\n");
			return -ENOMEM;
		}
		p->thread_started = true;
	}
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* vm_destroy: no vCPU runs (nothing can start or re-arm the thread any
 * more); stop and join the timer thread, which leaves every wait when
 * signalled. */
static void pit_destroy(void *opaque)
{
	struct pit *p = opaque;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (p->thread_started)
		pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

int pit_create(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	struct pit *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&p->lock, NULL);
	p->vm = vm;
	for (unsigned n = 0; n < 3; n++) {
		p->ch[n].count = 0x10000;
		p->ch[n].gate = n != 2; /* channels 0 and 1: gate tied high */
		p->ch[n].null_count = true;
	}
	/* From here the machine owns (p): vm_destroy frees it, also after a
	 * failure below. */
	int ret = vm_add_teardown(vm, pit_destroy, p);
	if (ret < 0) {
		pit_destroy(p);
		return ret;
	}
	ret = bus_register(&vm->io_bus, vm->guest, PIT_BASE_PORT, 4, pit_access, p, "pit");
	if (ret < 0)
		return ret;
	ret = bus_register(&vm->io_bus, vm->guest, PIT_PORT_B, 1, pit_port_b_access, p,
	                   "pit-port-b");
	if (ret < 0)
		return ret;
	return vm_add_snapshot(vm, "pit", 1, pit_snap_save, pit_snap_load, p);
}
