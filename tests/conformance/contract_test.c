/* contract_test.c: the library's promises under concurrency and reuse, as an
 * embedding program leans on them (issue 6, items 1, 4 and 5): memory
 * changes while vCPUs run are invisible to the guest; kick, interrupt and
 * get_info racing with destroy never touch freed memory; kick is
 * async-signal-safe and works whatever the application's signal mask; the
 * kick signal is refused when the application has its own handler there;
 * the same KVM answer gives the same status on every path; a vCPU id whose
 * run area could not be mapped can be created again. Guest code:
 * contract_guest.S. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "suites.h"

ZT_GUEST_CODE(contract_mem_loop);
ZT_GUEST_CODE(contract_halt);

#define KICK_SIGNAL (SIGRTMIN + 4) /* ZHV_KICK_SIGNAL */

/* ---- a vCPU running on its own thread -------------------------------------
 * The thread creates the vCPU of an existing guest, says so, and enters
 * until an enter returns something other than CANCELED, or until (stop) is
 * set and a kick ended the last enter. Every status is recorded. */
struct runner {
	struct zt_case *tc;
	sem_t ready;
	atomic_bool stop;
	atomic_int enters, canceled, other;
	zhv_status_t last_other;
	bool block_all_signals; /* the application blocks every signal */
	zt_thread_t *thread;
};

static void *runner_thread(void *arg)
{
	struct runner *r = arg;
	zt_setup_vcpu(r->tc);
	if (r->block_all_signals) {
		sigset_t all;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, NULL);
	}
	sem_post(&r->ready);
	for (;;) {
		zhv_packet_t p;
		zhv_status_t st = zhv_vcpu_enter(r->tc->vcpu, &p);
		atomic_fetch_add(&r->enters, 1);
		if (st == ZHV_ERR_CANCELED) {
			atomic_fetch_add(&r->canceled, 1);
			if (atomic_load(&r->stop))
				break;
			continue;
		}
		r->last_other = st;
		atomic_fetch_add(&r->other, 1);
		if (st != ZHV_OK) {
			zt_diag("enter returned %s", zhv_status_string(st));
			zt_dump_vcpu(r->tc->vcpu);
		} else {
			zt_diag("unexpected packet type %u addr %#llx", p.type,
			        (unsigned long long)p.guest_mem.addr);
		}
		break;
	}
	return NULL;
}

static void runner_start(struct runner *r, struct zt_case *tc)
{
	memset(r, 0, sizeof(*r));
	r->tc = tc;
	sem_init(&r->ready, 0, 0);
}

static void runner_go(struct runner *r)
{
	r->thread = zt_thread_start(runner_thread, r);
	ZT_ASSERT(zt_sem_wait_ms(&r->ready, 10000));
}

static bool runner_done(void *arg)
{
	struct runner *r = arg;
	return atomic_load(&r->other) != 0 ||
	       (atomic_load(&r->stop) && atomic_load(&r->canceled) != 0);
}

/* Stop the runner with a kick; fails the test if it does not stop. */
static void runner_stop(struct runner *r)
{
	atomic_store(&r->stop, true);
	ZT_EXPECT_OK(zhv_vcpu_kick(r->tc->vcpu));
	ZT_ASSERT(zt_wait_until_ms(runner_done, r, 20000));
	zt_thread_join(r->thread);
}

static uint64_t guest_counter(const struct zt_case *tc)
{
	return zt_guest_load64(tc, GUEST_MISC);
}

/* ---- item 1: memory changes while vCPUs run -------------------------------- */

/* Pages next to what the guest uses: its code (0x2000), its page tables
 * (0x0, 0x1000, 0x10000), its data page (0x5000) and the word it reads
 * (0x400000). Pages it writes or the CPU writes (accessed bits in the page
 * tables) keep WRITE; the others go read-only and back. */
static const uint64_t near_pages[] = {
	0x0000, 0x1000, 0x2000, 0x3000, 0x4000, 0x6000, 0x7000, 0x8000,
	0x10000, 0x11000, 0x12000, 0x3ff000, 0x400000, 0x401000,
};

static bool page_written_by_guest(uint64_t gpa)
{
	return gpa == GUEST_PML4 || gpa == GUEST_PDPT || gpa == GUEST_PD || gpa == GUEST_DATA;
}

/* Waits until the guest has counted at least (n) more loop iterations. */
static bool counter_moved(void *arg)
{
	const uint64_t *want = arg;
	return guest_counter((const struct zt_case *)(uintptr_t)want[1]) >= want[0];
}

static void expect_guest_progress(struct zt_case *tc, uint64_t from)
{
	uint64_t want[2] = {from + 10, (uint64_t)(uintptr_t)tc};
	ZT_EXPECT(zt_wait_until_ms(counter_moved, want, 10000));
}

/* 10^4 protect calls (5000 to a reduced set of flags and back to RWX) on
 * pages next to the code, page tables and data of a vCPU that runs all the
 * time: it must never leave enter, and it must keep running. Without the
 * run gate, the slot split leaves a window in which the vCPU finds no
 * memory for its code or page tables and triple-faults. */
static void test_protect_while_running(void)
{
	struct zt_case tc;
	zt_setup_guest_memory(&tc, contract_mem_loop_start, contract_mem_loop_end);
	struct runner r;
	runner_start(&r, &tc);
	runner_go(&r);
	expect_guest_progress(&tc, 0);

	const size_t n_near = sizeof(near_pages) / sizeof(near_pages[0]);
	uint64_t before = guest_counter(&tc);
	for (unsigned i = 0; i < 5000 && !atomic_load(&r.other); i++) {
		/* Every page between 1 and 8 MiB in turn, then the near ones. */
		uint64_t gpa = (i % 2) ? near_pages[(i / 2) % n_near]
		                       : 0x100000 + ((uint64_t)(i / 2) % 1792) * ZHV_PAGE_SIZE;
		uint32_t reduced = page_written_by_guest(gpa) ? ZHV_MAP_READ | ZHV_MAP_WRITE
		                                              : ZHV_MAP_READ;
		ZT_ASSERT_OK(zhv_guest_protect(tc.guest, gpa, ZHV_PAGE_SIZE, reduced));
		uint32_t f = 0;
		ZT_ASSERT_OK(zhv_guest_query(tc.guest, gpa, &f));
		ZT_ASSERT_EQ(f, reduced);
		ZT_ASSERT_OK(zhv_guest_protect(tc.guest, gpa, ZHV_PAGE_SIZE, ZHV_MAP_RWX));
	}
	ZT_EXPECT_EQ(atomic_load(&r.other), 0);
	expect_guest_progress(&tc, before);
	runner_stop(&r);
	ZT_EXPECT_EQ(atomic_load(&r.other), 0);
	ZT_EXPECT_EQ(atomic_load(&r.enters), 1); /* one enter, ended by our kick */
	zt_case_destroy(&tc);
}

/* 10^4 map and unmap calls of an unrelated range above the guest's RAM
 * (one KVM slot each) while the vCPU runs, and every tenth time a page
 * punched out of the RAM the guest runs in and put back (a slot split). */
static void test_map_unmap_while_running(void)
{
	struct zt_case tc;
	zt_setup_guest_memory(&tc, contract_mem_loop_start, contract_mem_loop_end);
	const uint64_t extra_size = 16 * ZHV_PAGE_SIZE;
	uint8_t *extra = mmap(NULL, extra_size, PROT_READ | PROT_WRITE,
	                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ZT_ASSERT(extra != MAP_FAILED);
	struct runner r;
	runner_start(&r, &tc);
	runner_go(&r);
	expect_guest_progress(&tc, 0);

	uint64_t before = guest_counter(&tc);
	for (unsigned i = 0; i < 5000 && !atomic_load(&r.other); i++) {
		ZT_ASSERT_OK(zhv_guest_map(tc.guest, 0x40000000, extra, extra_size, ZHV_MAP_RWX));
		ZT_ASSERT_OK(zhv_guest_unmap(tc.guest, 0x40000000, extra_size));
		if (i % 10)
			continue;
		uint64_t hole = 0x600000 + (uint64_t)(i / 10 % 256) * ZHV_PAGE_SIZE;
		ZT_ASSERT_OK(zhv_guest_unmap(tc.guest, hole, ZHV_PAGE_SIZE));
		ZT_ASSERT_OK(zhv_guest_map(tc.guest, hole, tc.mem + hole, ZHV_PAGE_SIZE,
		                           ZHV_MAP_RWX));
	}
	ZT_EXPECT_EQ(atomic_load(&r.other), 0);
	expect_guest_progress(&tc, before);
	runner_stop(&r);
	ZT_EXPECT_EQ(atomic_load(&r.other), 0);
	ZT_EXPECT_EQ(atomic_load(&r.enters), 1);
	zt_case_destroy(&tc);
	munmap(extra, extra_size);
}

/* ---- item 4: handles across threads ------------------------------------------ */

/* Destroy while other threads kick, interrupt and read the info of the
 * vCPU. The hammer threads stop using a pointer once destroy has returned
 * (they re-read it before each call), so every call they make started
 * before destroy returned, or in the instant between their check and the
 * call; libzhv must neither touch freed memory (ASan's run catches it) nor
 * lose or leak anything. */
struct destroy_race {
	zhv_vcpu_t *_Atomic vcpu;
	atomic_bool stop, bad_info;
	atomic_ulong calls;
};

static void *hammer_thread(void *arg)
{
	struct destroy_race *d = arg;
	while (!atomic_load(&d->stop)) {
		zhv_vcpu_t *v = atomic_load(&d->vcpu);
		if (!v) {
			sched_yield();
			continue;
		}
		(void)zhv_vcpu_kick(v);
		(void)zhv_vcpu_interrupt(v, 40);
		zhv_vcpu_info_t info;
		if (zhv_vcpu_get_info(v, &info) == ZHV_OK && info.id == 0)
			atomic_store(&d->bad_info, true); /* ids start at 1 */
		atomic_fetch_add(&d->calls, 1);
	}
	return NULL;
}

struct destroy_round {
	struct zt_case *tc;
	struct destroy_race *d;
	zhv_vcpu_t *_Atomic vcpu; /* for destroy by the main thread */
	sem_t entered, destroyed;
	bool destroy_here;
};

static void *destroy_round_thread(void *arg)
{
	struct destroy_round *x = arg;
	zhv_vcpu_t *v;
	ZT_ASSERT_OK(zhv_vcpu_create(x->tc->guest, 0, GUEST_ENTRY, &v));
	atomic_store(&x->d->vcpu, v);
	zhv_packet_t p;
	zhv_status_t st = zhv_vcpu_enter(v, &p); /* the hammer kicks it */
	ZT_ASSERT_STATUS(st, ZHV_ERR_CANCELED);
	if (x->destroy_here) {
		atomic_store(&x->d->vcpu, NULL);
		zhv_vcpu_destroy(v);
	} else {
		atomic_store(&x->vcpu, v);
		sem_post(&x->entered);
		ZT_ASSERT(zt_sem_wait_ms(&x->destroyed, 20000));
	}
	return NULL;
}

static void test_destroy_races_kick(void)
{
	struct zt_case tc;
	zt_setup_guest_memory(&tc, contract_halt_start, contract_halt_end);
	struct destroy_race d;
	memset(&d, 0, sizeof(d));
	zt_thread_t *h1 = zt_thread_start(hammer_thread, &d);
	zt_thread_t *h2 = zt_thread_start(hammer_thread, &d);
	for (int i = 0; i < 100; i++) {
		struct destroy_round x;
		memset(&x, 0, sizeof(x));
		x.tc = &tc;
		x.d = &d;
		x.destroy_here = i % 2 == 0;
		sem_init(&x.entered, 0, 0);
		sem_init(&x.destroyed, 0, 0);
		zt_thread_t *t = zt_thread_start(destroy_round_thread, &x);
		if (!x.destroy_here) {
			/* Destroy from another thread than the vCPU's. */
			ZT_ASSERT(zt_sem_wait_ms(&x.entered, 20000));
			zhv_vcpu_t *v = atomic_load(&x.vcpu);
			atomic_store(&d.vcpu, NULL);
			zhv_vcpu_destroy(v);
			sem_post(&x.destroyed);
		}
		zt_thread_join(t);
	}
	atomic_store(&d.stop, true);
	zt_thread_join(h1);
	zt_thread_join(h2);
	ZT_EXPECT_GE(atomic_load(&d.calls), 100);
	ZT_EXPECT(!atomic_load(&d.bad_info));
	zt_case_destroy(&tc);
}

/* zhv_vcpu_kick is async-signal-safe: a thread that kicks in a loop also
 * kicks from a signal handler that interrupts it at any point, here every
 * few microseconds. A lock inside kick deadlocks this thread. */
static zhv_vcpu_t *_Atomic signal_kick_vcpu;
static atomic_ulong signal_kicks;

static void kick_from_handler(int sig)
{
	(void)sig;
	int saved = errno;
	zhv_vcpu_kick(atomic_load(&signal_kick_vcpu));
	atomic_fetch_add(&signal_kicks, 1);
	errno = saved;
}

struct kicker {
	atomic_bool stop, done;
	atomic_ulong kicks;
};

static void *kicker_thread(void *arg)
{
	struct kicker *k = arg;
	while (!atomic_load(&k->stop)) {
		zhv_vcpu_kick(atomic_load(&signal_kick_vcpu));
		atomic_fetch_add(&k->kicks, 1);
	}
	atomic_store(&k->done, true);
	return NULL;
}

static bool kicker_done(void *arg)
{
	return atomic_load(&((struct kicker *)arg)->done);
}

/* A halted guest entered by a runner thread, the vCPU the kickers use. */
static void kick_case_start(struct zt_case *tc, struct runner *r)
{
	zt_setup_guest_memory(tc, contract_halt_start, contract_halt_end);
	runner_start(r, tc);
	runner_go(r);
	atomic_store(&signal_kick_vcpu, tc->vcpu);
}

static void kicker_start(struct kicker *k, pthread_t *t)
{
	memset(k, 0, sizeof(*k));
	ZT_ASSERT_EQ(pthread_create(t, NULL, kicker_thread, k), 0);
}

/* A kick that deadlocked (in a signal handler) never lets it stop. */
static void kicker_stop(struct kicker *k, pthread_t t)
{
	atomic_store(&k->stop, true);
	ZT_ASSERT(zt_wait_until_ms(kicker_done, k, 20000));
	pthread_join(t, NULL);
}

static void test_kick_from_signal_handler(void)
{
	struct zt_case tc;
	struct runner r;
	kick_case_start(&tc, &r);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_from_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	ZT_ASSERT_EQ(sigaction(SIGUSR2, &sa, NULL), 0);

	struct kicker k;
	pthread_t kt;
	kicker_start(&k, &kt);
	/* 2 s of signals, and on a slow host (nested under emulation,
	 * loaded) on until 100 handlers have run and a kick has ended one of
	 * the vCPU's enters (its thread competes with two busy ones), within
	 * 30 s. */
	uint64_t t0 = zt_now_ms(), end = t0 + 2000, limit = t0 + 30000;
	while ((zt_now_ms() < end || atomic_load(&signal_kicks) < 100 ||
	        atomic_load(&r.canceled) < 1) &&
	       zt_now_ms() < limit && !atomic_load(&r.other)) {
		pthread_kill(kt, SIGUSR2);
		usleep(20);
	}
	kicker_stop(&k, kt);
	ZT_EXPECT_GE(atomic_load(&signal_kicks), 100);
	runner_stop(&r);
	ZT_EXPECT_EQ(atomic_load(&r.other), 0);
	ZT_EXPECT_GE(atomic_load(&r.canceled), 2);
	zt_case_destroy(&tc);
}

/* Queued signals: SigQ in /proc/self/status ("queued/limit", counted for
 * the real user: this process's kick signals, and whatever the user's
 * other processes have pending). -1 if unreadable. */
static long queued_signals(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long q = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SigQ: %ld/", &q) == 1)
			break;
	fclose(f);
	return q;
}

/* A thread kicking in a loop: the vCPU thread keeps entering and being
 * canceled, and at most one kick signal waits for it at any time (the
 * signal is a real-time one; queued without limit, a kick loop kept the
 * vCPU thread in its drain, away from KVM_RUN, and filled the user's
 * queue of pending signals). */
static void test_kick_storm_bounded(void)
{
	struct zt_case tc;
	struct runner r;
	kick_case_start(&tc, &r);
	long base = queued_signals();
	ZT_ASSERT(base >= 0);

	struct kicker k;
	pthread_t kt;
	kicker_start(&k, &kt);
	/* 1 s of kicks, on until the vCPU has been canceled 10 times, within
	 * 30 s; SigQ sampled meanwhile. */
	long most = 0;
	uint64_t t0 = zt_now_ms();
	while ((zt_now_ms() < t0 + 1000 || atomic_load(&r.canceled) < 10) &&
	       zt_now_ms() < t0 + 30000 && !atomic_load(&r.other)) {
		long q = queued_signals() - base;
		if (q > most)
			most = q;
		zt_sleep_ms(5);
	}
	kicker_stop(&k, kt);
	int canceled = atomic_load(&r.canceled);
	zt_diag("%lu kicks, %d canceled enters, at most %ld kick signals queued",
	        atomic_load(&k.kicks), canceled, most);
	ZT_EXPECT_GE(canceled, 10);
	/* 1 for this vCPU thread; the margin is for the user's other
	 * processes (SigQ is the user's count), e.g. another suite. */
	ZT_EXPECT_LE(most, 8);
	runner_stop(&r);
	ZT_EXPECT_EQ(atomic_load(&r.other), 0);
	zt_case_destroy(&tc);
}

/* The kick works whatever the application does with its signal mask: here
 * the vCPU thread blocks every signal after creating its vCPU. */
static void test_kick_with_all_signals_blocked(void)
{
	struct zt_case tc;
	zt_setup_guest_memory(&tc, contract_halt_start, contract_halt_end);
	struct runner r;
	runner_start(&r, &tc);
	r.block_all_signals = true;
	runner_go(&r);
	zt_sleep_ms(50); /* into KVM_RUN, halted */
	ZT_EXPECT_EQ(atomic_load(&r.enters), 0);
	runner_stop(&r); /* the kick must end the enter */
	ZT_EXPECT_EQ(atomic_load(&r.other), 0);
	ZT_EXPECT_EQ(atomic_load(&r.canceled), 1);
	zt_case_destroy(&tc);
}

/* Outside KVM_RUN the kick signal stays blocked on a vCPU thread (so a kick
 * never interrupts the application's own system calls), and a kick
 * consumed by enter leaves no signal pending. */
static bool kick_signal_blocked(void)
{
	sigset_t cur;
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, KICK_SIGNAL) == 1;
}

static bool kick_signal_pending(void)
{
	sigset_t p;
	sigpending(&p);
	return sigismember(&p, KICK_SIGNAL) == 1;
}

struct mask_ctx {
	struct zt_case tc;
	sem_t entering;
	bool blocked_after_create, blocked_after_enter, pending_after_enter;
	zhv_status_t status;
};

static void *mask_thread(void *arg)
{
	struct mask_ctx *c = arg;
	sigset_t ks;
	sigemptyset(&ks);
	sigaddset(&ks, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &ks, NULL); /* the application's choice */
	zt_setup_vcpu(&c->tc);
	c->blocked_after_create = kick_signal_blocked();
	sem_post(&c->entering);
	zhv_packet_t p;
	c->status = zhv_vcpu_enter(c->tc.vcpu, &p);
	c->blocked_after_enter = kick_signal_blocked();
	c->pending_after_enter = kick_signal_pending();
	return NULL;
}

static void test_kick_signal_blocked_outside_run(void)
{
	struct mask_ctx c;
	memset(&c, 0, sizeof(c));
	sem_init(&c.entering, 0, 0);
	zt_setup_guest_memory(&c.tc, contract_halt_start, contract_halt_end);
	zt_thread_t *t = zt_thread_start(mask_thread, &c);
	ZT_ASSERT(zt_sem_wait_ms(&c.entering, 10000));
	zt_sleep_ms(50);
	ZT_ASSERT_OK(zhv_vcpu_kick(c.tc.vcpu));
	zt_thread_join(t);
	ZT_EXPECT_STATUS(c.status, ZHV_ERR_CANCELED);
	ZT_EXPECT(c.blocked_after_create);
	ZT_EXPECT(c.blocked_after_enter);
	ZT_EXPECT(!c.pending_after_enter);
	zt_case_destroy(&c.tc);
}

/* An application handler on the kick signal: libzhv refuses to create a
 * vCPU (it would have to replace the handler or lose kicks) and leaves the
 * handler alone; SIG_IGN is not a handler and is replaced. */
static void foreign_handler(int sig)
{
	(void)sig;
}

static void test_kick_signal_foreign_handler(void)
{
	struct zt_case tc;
	zt_setup_guest_memory(&tc, contract_halt_start, contract_halt_end);
	struct sigaction sa, now;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = foreign_handler;
	sigemptyset(&sa.sa_mask);
	ZT_ASSERT_EQ(sigaction(KICK_SIGNAL, &sa, NULL), 0);
	zhv_vcpu_t *v = NULL;
	ZT_EXPECT_STATUS(zhv_vcpu_create(tc.guest, 0, GUEST_ENTRY, &v), ZHV_ERR_ALREADY_EXISTS);
	ZT_ASSERT_EQ(sigaction(KICK_SIGNAL, NULL, &now), 0);
	ZT_EXPECT(now.sa_handler == foreign_handler);

	sa.sa_handler = SIG_IGN;
	ZT_ASSERT_EQ(sigaction(KICK_SIGNAL, &sa, NULL), 0);
	zt_setup_vcpu(&tc);
	ZT_ASSERT_EQ(sigaction(KICK_SIGNAL, NULL, &now), 0);
	ZT_EXPECT(now.sa_handler != SIG_IGN && now.sa_handler != SIG_DFL &&
	          now.sa_handler != foreign_handler);
	zt_case_destroy(&tc);
}

/* ---- item 5: one status per KVM answer ----------------------------------------- */

/* An interrupt no APIC accepts is dropped, as on hardware, and both calls
 * that send one say so the same way (ZHV_OK). To have KVM answer "nobody"
 * (EPERM; its fast path says 0 instead), two local APICs (xAPIC mode) are
 * given the same ID 7, which makes KVM route every message by searching
 * all APICs; then a message to APIC ID 0, the BSP's original ID, finds no
 * APIC. The vector is indeed in no IRR. */
static void set_xapic_id(zhv_vcpu_t *v, uint32_t id)
{
	zhv_vcpu_lapic_t la;
	ZT_ASSERT_OK(zhv_vcpu_read_state(v, ZHV_VCPU_LAPIC, &la, sizeof(la)));
	uint32_t reg = id << 24; /* xAPIC ID: bits 31:24 */
	uint32_t svr = 0x1ff;    /* software-enabled: takes fixed interrupts */
	memcpy(&la.regs[0x20], &reg, sizeof(reg));
	memcpy(&la.regs[0xf0], &svr, sizeof(svr));
	ZT_ASSERT_OK(zhv_vcpu_write_state(v, ZHV_VCPU_LAPIC, &la, sizeof(la)));
}

static uint32_t irr_word1(zhv_vcpu_t *v) /* IRR bits 63:32 */
{
	zhv_vcpu_lapic_t la;
	ZT_ASSERT_OK(zhv_vcpu_read_state(v, ZHV_VCPU_LAPIC, &la, sizeof(la)));
	uint32_t w;
	memcpy(&w, &la.regs[0x210], sizeof(w));
	return w;
}

struct twin_ctx {
	zhv_guest_t *guest;
	sem_t ready, done;
	uint32_t irr;
};

static void *twin_thread(void *arg)
{
	struct twin_ctx *c = arg;
	zhv_vcpu_t *v;
	ZT_ASSERT_OK(zhv_vcpu_create(c->guest, ZHV_VCPU_OPT_APIC_RESET, GUEST_ENTRY, &v));
	set_xapic_id(v, 7);
	sem_post(&c->ready);
	ZT_ASSERT(zt_sem_wait_ms(&c->done, 20000));
	c->irr = irr_word1(v);
	zhv_vcpu_destroy(v);
	return NULL;
}

static void test_interrupt_nobody_accepts(void)
{
	struct zt_case tc;
	zt_setup_guest_memory(&tc, contract_halt_start, contract_halt_end);
	ZT_ASSERT_OK(zhv_vcpu_create(tc.guest, ZHV_VCPU_OPT_APIC_RESET, GUEST_ENTRY, &tc.vcpu));
	set_xapic_id(tc.vcpu, 7);
	struct twin_ctx c = {.guest = tc.guest};
	sem_init(&c.ready, 0, 0);
	sem_init(&c.done, 0, 0);
	zt_thread_t *t = zt_thread_start(twin_thread, &c);
	ZT_ASSERT(zt_sem_wait_ms(&c.ready, 20000));

	ZT_EXPECT_OK(zhv_vcpu_interrupt(tc.vcpu, 40)); /* to APIC ID 0: nobody */
	ZT_EXPECT_OK(zhv_guest_signal_msi(tc.guest, 0xfee00000, 41));
	sem_post(&c.done);
	zt_thread_join(t);
	uint32_t dropped = (1u << (40 - 32)) | (1u << (41 - 32));
	ZT_EXPECT_EQ(irr_word1(tc.vcpu) & dropped, 0);
	ZT_EXPECT_EQ(c.irr & dropped, 0);
	zt_case_destroy(&tc);
}

/* ---- item 5: no orphan KVM vCPU when its run area cannot be mapped ------------- *
 * A seccomp filter on the vCPU thread hands the shared mmap of the vCPU's
 * file to a supervisor thread, which fails the first one with ENOMEM and
 * lets every later one through. With max_vcpus 1 the second create must use
 * the same id, i.e. the KVM vCPU the first attempt made. */
struct mmap_fault {
	int notify_fd;
	atomic_int failed, passed;
	atomic_bool stop;
	struct zt_case tc;
	zhv_status_t first, second;
};

#ifndef SECCOMP_USER_NOTIF_FLAG_CONTINUE
#define SECCOMP_USER_NOTIF_FLAG_CONTINUE (1UL << 0)
#endif

static void *mmap_supervisor(void *arg)
{
	struct mmap_fault *m = arg;
	while (!atomic_load(&m->stop)) {
		struct seccomp_notif req;
		struct seccomp_notif_resp resp;
		/* RECV blocks until a notification; poll so that (stop) ends
		 * the loop (closing the fd does not end a blocked RECV). */
		struct pollfd pfd = {.fd = m->notify_fd, .events = POLLIN};
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		memset(&req, 0, sizeof(req));
		if (ioctl(m->notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
			if (errno == EINTR)
				continue;
			break; /* the filter's owner is gone */
		}
		memset(&resp, 0, sizeof(resp));
		resp.id = req.id;
		if (atomic_load(&m->failed) == 0) {
			resp.error = -ENOMEM;
			atomic_fetch_add(&m->failed, 1);
		} else {
			resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
			atomic_fetch_add(&m->passed, 1);
		}
		(void)ioctl(m->notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	}
	return NULL;
}

static int install_mmap_notify_filter(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 3),
		/* flags (argument 3, low word) == MAP_SHARED: the run area */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MAP_SHARED, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
	                    &prog);
}

static void *mmap_fault_vcpu_thread(void *arg)
{
	struct mmap_fault *m = arg;
	/* The supervisor thread inherits the filter, which only catches shared
	 * mappings: it never makes one. */
	int fd = install_mmap_notify_filter();
	ZT_ASSERT_GE(fd, 0);
	m->notify_fd = fd;
	zt_thread_t *sup = zt_thread_start(mmap_supervisor, m);
	zhv_vcpu_t *v = NULL;
	m->first = zhv_vcpu_create(m->tc.guest, 0, GUEST_ENTRY, &v);
	m->second = zhv_vcpu_create(m->tc.guest, 0, GUEST_ENTRY, &m->tc.vcpu);
	if (m->second == ZHV_OK) {
		zhv_packet_t p;
		zhv_status_t st = zhv_vcpu_enter(m->tc.vcpu, &p); /* the vCPU works */
		ZT_EXPECT_OK(st);
		ZT_EXPECT_EQ(p.guest_mem.addr, EXIT_TEST_ADDR);
	}
	atomic_store(&m->stop, true);
	zt_thread_join(sup);
	close(fd);
	return NULL;
}

static void test_vcpu_mmap_failure_no_orphan(void)
{
	struct mmap_fault m;
	memset(&m, 0, sizeof(m));
	/* The seccomp filter goes on a thread of its own (filters are per
	 * thread, inherited by the threads it starts). */
	zt_setup_guest_memory(&m.tc, NULL, NULL);
	zhv_guest_destroy(m.tc.guest);
	zhv_guest_config_t cfg = {.options = 0, .max_vcpus = 1};
	ZT_ASSERT_OK(zhv_guest_create(&cfg, &m.tc.guest));
	ZT_ASSERT_OK(zhv_guest_map(m.tc.guest, 0, m.tc.mem, GUEST_MEM_SIZE, ZHV_MAP_RWX));
	ZT_ASSERT_OK(zhv_guest_set_trap(m.tc.guest, ZHV_TRAP_MEM, EXIT_TEST_ADDR, ZHV_PAGE_SIZE,
	                                NULL, 0));
	/* movq $0, (EXIT_TEST_ADDR) at the entry: the BSP exits at once. */
	static const uint8_t exit_store[] = {0x48, 0xc7, 0x04, 0x25, 0x00, 0xf0,
	                                     0xff, 0x00, 0x00, 0x00, 0x00, 0x00};
	memcpy(m.tc.mem + GUEST_ENTRY, exit_store, sizeof(exit_store));
	zt_thread_t *t = zt_thread_start(mmap_fault_vcpu_thread, &m);
	zt_thread_join(t);
	ZT_EXPECT_STATUS(m.first, ZHV_ERR_NO_MEMORY);
	ZT_EXPECT_EQ(atomic_load(&m.failed), 1);
	ZT_EXPECT_STATUS(m.second, ZHV_OK);
	zt_case_destroy(&m.tc);
}

const struct zt_test zt_contract_tests[] = {
	{"contract_protect_while_running", test_protect_while_running},
	{"contract_map_unmap_while_running", test_map_unmap_while_running},
	{"contract_destroy_races_kick", test_destroy_races_kick},
	{"contract_kick_from_signal_handler", test_kick_from_signal_handler},
	{"contract_kick_storm_bounded", test_kick_storm_bounded},
	{"contract_kick_with_all_signals_blocked", test_kick_with_all_signals_blocked},
	{"contract_kick_signal_blocked_outside_run", test_kick_signal_blocked_outside_run},
	{"contract_kick_signal_foreign_handler", test_kick_signal_foreign_handler},
	{"contract_interrupt_nobody_accepts", test_interrupt_nobody_accepts},
	{"contract_vcpu_mmap_failure_no_orphan", test_vcpu_mmap_failure_no_orphan},
	{NULL, NULL},
};
