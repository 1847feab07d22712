/* bell_test.c: BELL traps backed by KVM ioeventfds (issue 11; zhv.h,
 * zhv_guest_set_trap: "BELL doorbells without an exit"). Every test checks
 * the packets a consumer sees and the guest's exit counters: a doorbell
 * write must reach the port without a vCPU exit. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "suites.h"

ZT_GUEST_CODE(bell_loop);
ZT_GUEST_CODE(bell_once);
ZT_GUEST_CODE(bell_spread);
ZT_GUEST_CODE(bell_forever);
ZT_GUEST_CODE(mem_rewrite);

static zhv_time_t deadline_ms(int64_t ms)
{
	return zhv_deadline_after(ms * 1000000);
}

/* A thread that takes BELL packets from a port while the guest runs, and
 * counts them per address (TRAP_ADDR + stride * i, i < naddr). */
#define MAX_ADDRS 1024
struct consumer {
	zhv_port_t *port;
	uint64_t want;   /* stop after this many packets */
	uint32_t stride, naddr;
	uint64_t got, bad;
	uint32_t counts[MAX_ADDRS];
	zt_thread_t *thread;
};

static void *consume(void *arg)
{
	struct consumer *c = arg;
	while (c->got < c->want) {
		zhv_packet_t p;
		memset(&p, 0, sizeof(p));
		/* Generous: nested KVM on TCG is slow; a hang ends here. */
		zhv_status_t st = zhv_port_wait(c->port, deadline_ms(30000), &p);
		if (st != ZHV_OK) {
			zt_diag("consumer: zhv_port_wait: %s after %llu packets",
			        zhv_status_string(st), (unsigned long long)c->got);
			break;
		}
		c->got++;
		uint64_t off = p.guest_bell.addr - TRAP_ADDR;
		if (p.type != ZHV_PKT_TYPE_GUEST_BELL || p.key != TRAP_KEY || p.status != ZHV_OK ||
		    p.guest_bell.addr < TRAP_ADDR || off % c->stride || off / c->stride >= c->naddr) {
			if (c->bad++ < 5)
				zt_diag("consumer: unexpected packet type %#x key %#llx addr %#llx",
				        p.type, (unsigned long long)p.key,
				        (unsigned long long)p.guest_bell.addr);
			continue;
		}
		c->counts[off / c->stride]++;
	}
	return NULL;
}

static void consumer_start(struct consumer *c, zhv_port_t *port, uint64_t want, uint32_t stride,
                           uint32_t naddr)
{
	memset(c, 0, sizeof(*c));
	c->port = port;
	c->want = want;
	c->stride = stride;
	c->naddr = naddr;
	c->thread = zt_thread_start(consume, c);
}

static zhv_guest_stats_t stats(zhv_guest_t *g)
{
	zhv_guest_stats_t s;
	memset(&s, 0, sizeof(s));
	ZT_ASSERT_OK(zhv_guest_get_stats(g, &s));
	return s;
}

/* enter must stop at the guest's OUT to TRAP_PORT. */
static void expect_out(struct zt_case *tc)
{
	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	ZT_ASSERT_OK(zhv_vcpu_enter(tc->vcpu, &p));
	ZT_EXPECT_EQ(p.type, ZHV_PKT_TYPE_GUEST_IO);
	ZT_EXPECT_EQ(p.guest_io.port, TRAP_PORT);
}

static void setup(struct zt_case *tc, zhv_port_t **port, const char *start, const char *end)
{
	ZT_ASSERT_OK(zhv_port_create(0, port));
	zt_setup_guest(tc, start, end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc->guest, ZHV_TRAP_BELL, TRAP_ADDR, ZHV_PAGE_SIZE, *port,
	                                TRAP_KEY));
	ZT_ASSERT_OK(zhv_guest_set_trap(tc->guest, ZHV_TRAP_IO, TRAP_PORT, 1, NULL, TRAP_KEY));
}

/* One doorbell write, then an OUT: enter returns the IO packet without the
 * vCPU ever having left KVM_RUN for the doorbell (no MMIO exit), and the
 * BELL packet is on the port. */
static void test_bell_no_exit(void)
{
	struct zt_case tc;
	zhv_port_t *port;
	setup(&tc, &port, bell_once_start, bell_once_end);

	expect_out(&tc);
	zhv_guest_stats_t s = stats(tc.guest);
	ZT_EXPECT_EQ(s.mmio_exits, 0);
	ZT_EXPECT_EQ(s.io_exits, 1);
	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	ZT_ASSERT_OK(zhv_port_wait(port, deadline_ms(5000), &p));
	ZT_EXPECT_EQ(p.type, ZHV_PKT_TYPE_GUEST_BELL);
	ZT_EXPECT_EQ(p.key, TRAP_KEY);
	ZT_EXPECT_EQ(p.guest_bell.addr, TRAP_ADDR);
	ZT_EXPECT_STATUS(zhv_port_wait(port, 0, &p), ZHV_ERR_TIMED_OUT);
	ZT_EXPECT_EQ(stats(tc.guest).bell_packets, 1);

	/* The second write, then the exit store (the only MMIO exit). */
	zt_enter_and_clean_exit(&tc);
	ZT_ASSERT_OK(zhv_port_wait(port, deadline_ms(5000), &p));
	ZT_EXPECT_EQ(p.guest_bell.addr, TRAP_ADDR);
	ZT_EXPECT_STATUS(zhv_port_wait(port, 0, &p), ZHV_ERR_TIMED_OUT);
	ZT_EXPECT_EQ(stats(tc.guest).mmio_exits, 1);
	zt_case_destroy(&tc);
	zhv_port_destroy(port);
}

/* 3000 rounds of a 4-byte write to TRAP_ADDR and a 2-byte write to
 * TRAP_ADDR + 8, far more than a trap's 256 packets in flight, while a
 * consumer thread takes them: exactly one packet per write, each with the
 * right key and address. TRAP_ADDR + 8 exits once (its first write makes
 * it a doorbell), nothing else does. */
#define LOOP_ROUNDS 3000
static void test_bell_many_in_order(void)
{
	struct zt_case tc;
	zhv_port_t *port;
	setup(&tc, &port, bell_loop_start, bell_loop_end);
	zhv_vcpu_state_t st = zt_read_state(tc.vcpu);
	st.rcx = LOOP_ROUNDS;
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_STATE, &st, sizeof(st)));

	struct consumer *c = calloc(1, sizeof(*c));
	ZT_ASSERT_NE(c, NULL);
	consumer_start(c, port, 2 * LOOP_ROUNDS, 8, 2);
	expect_out(&tc);
	zt_thread_join(c->thread);
	ZT_EXPECT_EQ(c->got, 2 * LOOP_ROUNDS);
	ZT_EXPECT_EQ(c->bad, 0);
	ZT_EXPECT_EQ(c->counts[0], LOOP_ROUNDS);
	ZT_EXPECT_EQ(c->counts[1], LOOP_ROUNDS);
	zhv_packet_t p;
	ZT_EXPECT_STATUS(zhv_port_wait(port, 0, &p), ZHV_ERR_TIMED_OUT);
	zhv_guest_stats_t s = stats(tc.guest);
	ZT_EXPECT_EQ(s.mmio_exits, 1);
	ZT_EXPECT_EQ(s.bell_packets, 2 * LOOP_ROUNDS);
	zt_enter_and_clean_exit(&tc);
	zt_case_destroy(&tc);
	zhv_port_destroy(port);
	free(c);
}

/* Two passes over more addresses than ZHV_GUEST_MAX_DOORBELLS: every write
 * still gives its packet; the first write of each address but the trap's
 * first exits once, and in the second pass only the addresses beyond the
 * limit exit again (the exit path serves them). */
#define SPREAD_ADDRS (ZHV_GUEST_MAX_DOORBELLS + 44)
static void test_bell_beyond_limit(void)
{
	struct zt_case tc;
	zhv_port_t *port;
	setup(&tc, &port, bell_spread_start, bell_spread_end);
	zhv_vcpu_state_t st = zt_read_state(tc.vcpu);
	st.rcx = SPREAD_ADDRS;
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_STATE, &st, sizeof(st)));

	struct consumer *c = calloc(1, sizeof(*c));
	ZT_ASSERT_NE(c, NULL);
	consumer_start(c, port, 2 * SPREAD_ADDRS, 4, SPREAD_ADDRS);
	expect_out(&tc);
	zt_thread_join(c->thread);
	ZT_EXPECT_EQ(c->got, 2 * SPREAD_ADDRS);
	ZT_EXPECT_EQ(c->bad, 0);
	uint32_t wrong = 0;
	for (uint32_t i = 0; i < SPREAD_ADDRS; i++)
		if (c->counts[i] != 2 && wrong++ < 5)
			zt_diag("address %#x: %u packets", TRAP_ADDR + 4 * i, c->counts[i]);
	ZT_EXPECT_EQ(wrong, 0);
	zhv_guest_stats_t s = stats(tc.guest);
	ZT_EXPECT_EQ(s.mmio_exits, (SPREAD_ADDRS - 1) + (SPREAD_ADDRS - ZHV_GUEST_MAX_DOORBELLS));
	ZT_EXPECT_EQ(s.bell_packets, 2 * SPREAD_ADDRS);
	zt_enter_and_clean_exit(&tc);
	zt_case_destroy(&tc);
	zhv_port_destroy(port);
	free(c);
}

/* The port is destroyed after a doorbell rang (its packet still queued):
 * the next write of that address fails enter with BAD_STATE as on the exit
 * path (zhv.h: zhv_port_destroy), the store is skipped, the guest goes on. */
static void test_bell_port_destroyed(void)
{
	struct zt_case tc;
	zhv_port_t *port;
	setup(&tc, &port, bell_once_start, bell_once_end);
	expect_out(&tc);
	ZT_EXPECT_EQ(stats(tc.guest).mmio_exits, 0);
	zhv_port_destroy(port);
	zhv_packet_t p;
	ZT_EXPECT_STATUS(zhv_vcpu_enter(tc.vcpu, &p), ZHV_ERR_BAD_STATE);
	zt_enter_and_clean_exit(&tc);
	zt_case_destroy(&tc);
}

/* A vCPU thread rings one doorbell in an endless loop while a consumer
 * waits on the port; the vCPU is kicked (it never exits otherwise), then
 * the guest is destroyed while the consumer still waits. The consumer keeps
 * working: the trap's packets are gone with it, a user packet arrives. */
struct forever {
	struct zt_case tc;
	zhv_port_t *port;
	zhv_status_t enter_status;
	atomic_int ready; /* the vCPU exists (tc.vcpu is set) */
};

static void *forever_vcpu(void *arg)
{
	struct forever *f = arg;
	zt_setup_vcpu(&f->tc);
	atomic_store(&f->ready, 1);
	zhv_packet_t p;
	f->enter_status = zhv_vcpu_enter(f->tc.vcpu, &p);
	return NULL;
}

struct forever_consumer {
	zhv_port_t *port;
	uint64_t bells, users;
	atomic_uint_fast64_t seen;
};

static void *forever_consume(void *arg)
{
	struct forever_consumer *c = arg;
	for (;;) {
		zhv_packet_t p;
		if (zhv_port_wait(c->port, deadline_ms(30000), &p) != ZHV_OK)
			break;
		if (p.type == ZHV_PKT_TYPE_USER) {
			c->users++;
			break;
		}
		if (p.type == ZHV_PKT_TYPE_GUEST_BELL && p.guest_bell.addr == TRAP_ADDR)
			c->bells++;
		atomic_store(&c->seen, c->bells);
	}
	return NULL;
}

static void test_bell_guest_destroyed_while_ringing(void)
{
	struct forever *f = calloc(1, sizeof(*f));
	ZT_ASSERT_NE(f, NULL);
	ZT_ASSERT_OK(zhv_port_create(0, &f->port));
	zt_setup_guest_memory(&f->tc, bell_forever_start, bell_forever_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(f->tc.guest, ZHV_TRAP_BELL, TRAP_ADDR, ZHV_PAGE_SIZE,
	                                f->port, TRAP_KEY));
	struct forever_consumer c = {.port = f->port};
	zt_thread_t *ct = zt_thread_start(forever_consume, &c);
	zt_thread_t *vt = zt_thread_start(forever_vcpu, f);

	/* Wait until the consumer has seen 1000 doorbells (or 30 s). */
	zhv_time_t end = deadline_ms(30000);
	while (atomic_load(&c.seen) < 1000 && zhv_clock_monotonic() < end) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	zhv_guest_stats_t s = stats(f->tc.guest);
	ZT_EXPECT_EQ(s.mmio_exits, 0);
	ZT_EXPECT_GE(atomic_load(&c.seen), 1000);
	/* Stop the vCPU; the guest goes while the consumer waits. */
	while (!atomic_load(&f->ready)) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	ZT_EXPECT_OK(zhv_vcpu_kick(f->tc.vcpu));
	zt_thread_join(vt);
	ZT_EXPECT_STATUS(f->enter_status, ZHV_ERR_CANCELED);
	zt_case_destroy(&f->tc);

	zhv_packet_t user;
	memset(&user, 0, sizeof(user));
	user.key = 99;
	ZT_ASSERT_OK(zhv_port_queue(f->port, &user));
	zt_thread_join(ct);
	ZT_EXPECT_EQ(c.users, 1);
	zhv_packet_t p;
	ZT_EXPECT_STATUS(zhv_port_wait(f->port, 0, &p), ZHV_ERR_TIMED_OUT);
	zhv_port_destroy(f->port);
	free(f);
}

/* MEM packets: libzhv remembers decoded instruction lengths per vCPU
 * (lib/x86/insn_cache.h). The guest's code changes under the same RIP
 * (and, for the store, the same end address and access size): each packet
 * must describe the instruction that ran, never a remembered one. */
static void expect_mem(struct zt_case *tc, bool write, uint64_t rip, uint8_t size)
{
	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	ZT_ASSERT_OK(zhv_vcpu_enter(tc->vcpu, &p));
	ZT_EXPECT_EQ(p.type, ZHV_PKT_TYPE_GUEST_MEM);
	ZT_EXPECT_EQ(p.key, TRAP_KEY);
	ZT_EXPECT_EQ(p.guest_mem.addr, TRAP_ADDR);
	ZT_EXPECT_EQ(p.guest_mem.write, write);
	ZT_EXPECT_EQ(p.guest_mem.access_size, 4);
	ZT_EXPECT_EQ(p.guest_mem.rip, rip);
	ZT_EXPECT_EQ(p.guest_mem.instruction_size, size);
}

static void test_mem_insn_rewritten(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, mem_rewrite_start, mem_rewrite_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_MEM, TRAP_ADDR, ZHV_PAGE_SIZE, NULL,
	                                TRAP_KEY));
	for (int round = 0; round < 2; round++) { /* the second round hits memos */
		expect_mem(&tc, true, GUEST_ENTRY + 4, 7);
		expect_mem(&tc, false, GUEST_ENTRY + 11, 7);
		zt_enter_and_clean_exit(&tc);
		zhv_vcpu_regs_t r = zt_read_regs(tc.vcpu);
		r.rip = GUEST_ENTRY;
		ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
	}
	/* movl $0x12345678, (TRAP_ADDR): 11 bytes, also ending at offset 11;
	 * ds: mov (TRAP_ADDR), %eax: 8 bytes at offset 11. */
	static const uint8_t store[] = {0xc7, 0x04, 0x25, 0x00, 0xe0, 0xff, 0x00,
	                                0x78, 0x56, 0x34, 0x12};
	static const uint8_t load[] = {0x3e, 0x8b, 0x04, 0x25, 0x00, 0xe0, 0xff, 0x00};
	_Static_assert(TRAP_ADDR == 0xFFE000, "the bytes above encode TRAP_ADDR");
	memcpy(tc.mem + GUEST_ENTRY, store, sizeof(store));
	memcpy(tc.mem + GUEST_ENTRY + 11, load, sizeof(load));
	for (int round = 0; round < 2; round++) {
		expect_mem(&tc, true, GUEST_ENTRY, 11);
		expect_mem(&tc, false, GUEST_ENTRY + 11, 8);
		zt_enter_and_clean_exit(&tc);
		zhv_vcpu_regs_t r = zt_read_regs(tc.vcpu);
		r.rip = GUEST_ENTRY;
		ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
	}
	zt_case_destroy(&tc);
}

const struct zt_test zt_bell_tests[] = {
	{"bell_no_exit", test_bell_no_exit},
	{"bell_many_in_order", test_bell_many_in_order},
	{"bell_beyond_limit", test_bell_beyond_limit},
	{"bell_port_destroyed", test_bell_port_destroyed},
	{"bell_guest_destroyed_while_ringing", test_bell_guest_destroyed_while_ringing},
	{"mem_insn_rewritten", test_mem_insn_rewritten},
	{NULL, NULL},
};
