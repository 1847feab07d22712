/* gdb_stub_test: the GDB remote protocol session (vmm/gdb/stub.c) over a
 * fake target of two vCPUs and 64 KiB of memory, through a socket pair:
 * the packets GDB sends, the replies it expects, breakpoints planted only
 * while running, stepping off a breakpoint, watchpoints, Ctrl-C, detach,
 * and hostile input (bad checksums, bad hex, huge lengths).
 *
 * "gdb_stub_test --serve PORT" serves the same fake target to a real GDB
 * on 127.0.0.1:PORT (one connection), for trying GDB by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../vmm/gdb/rsp.c"
#include "../../vmm/gdb/stub.c"

#include <arpa/inet.h>
#include <netinet/in.h>

#define NCPU 2
#define MEM_BASE 0x100000u
#define MEM_SIZE 0x10000u

struct fake {
	uint8_t mem[MEM_SIZE];
	struct gdb_cpu_state st[NCPU];
	zhv_vcpu_debug_t dbg[NCPU];
	struct gdb_stub *g;
	int stops, resumes, last_only, kills;
	uint8_t byte40_at_resume; /* memory at 0x100040 at the last resume */
	uint64_t watch_hits; /* watchpoint stops reported */
};

static int f_get_state(void *t, unsigned cpu, struct gdb_cpu_state *s)
{
	struct fake *f = t;
	if (cpu >= NCPU)
		return -EINVAL;
	*s = f->st[cpu];
	return 0;
}

static int f_set_state(void *t, unsigned cpu, const struct gdb_cpu_state *s)
{
	struct fake *f = t;
	if (cpu >= NCPU)
		return -EINVAL;
	f->st[cpu] = *s;
	return 0;
}

static bool in_mem(uint64_t gva, size_t n)
{
	return gva >= MEM_BASE && n <= MEM_SIZE && gva - MEM_BASE <= MEM_SIZE - n;
}

static int f_read_mem(void *t, unsigned cpu, uint64_t gva, void *buf, size_t n)
{
	struct fake *f = t;
	(void)cpu;
	if (!in_mem(gva, n))
		return -EFAULT;
	memcpy(buf, f->mem + (gva - MEM_BASE), n);
	return 0;
}

static int f_write_mem(void *t, unsigned cpu, uint64_t gva, const void *buf, size_t n)
{
	struct fake *f = t;
	(void)cpu;
	if (!in_mem(gva, n))
		return -EFAULT;
	memcpy(f->mem + (gva - MEM_BASE), buf, n);
	return 0;
}

static int f_set_debug(void *t, unsigned cpu, const zhv_vcpu_debug_t *d)
{
	struct fake *f = t;
	f->dbg[cpu] = *d;
	return 0;
}

static int f_stop_all(void *t)
{
	struct fake *f = t;
	f->stops++;
	return 0;
}

/* "Run" a vCPU: a single step advances RIP by one; a continue runs up to
 * the next int3 in memory (then stops there), or, with a write
 * watchpoint set, stops at once as if the watched address was written;
 * else it runs until stopped. */
static void run_cpu(struct fake *f, unsigned c)
{
	struct gdb_cpu_state *s = &f->st[c];
	zhv_packet_guest_debug_t d = {0};
	if (f->dbg[c].flags & ZHV_DEBUG_SINGLESTEP) {
		s->regs.rip++;
		d.reason = ZHV_DEBUG_STOP_STEP;
		d.rip = s->regs.rip;
		gdb_stub_on_stop(f->g, c, &d);
		return;
	}
	for (uint64_t a = s->regs.rip; in_mem(a, 1); a++) {
		if (f->mem[a - MEM_BASE] != 0xCC)
			continue;
		if (!(f->dbg[c].flags & ZHV_DEBUG_SW_BREAKPOINTS))
			break;
		d.reason = ZHV_DEBUG_STOP_SW_BREAKPOINT;
		d.rip = a;
		if (gdb_stub_on_stop(f->g, c, &d) == GDB_STOP_PARK) {
			s->regs.rip = a;
			return;
		}
	}
	for (unsigned i = 0; i < 4; i++) {
		if (f->dbg[c].hw[i].type != ZHV_DEBUG_HW_WRITE)
			continue;
		d.reason = ZHV_DEBUG_STOP_WATCHPOINT;
		d.slot = i;
		d.addr = f->dbg[c].hw[i].addr;
		s->regs.rip += 2;
		d.rip = s->regs.rip;
		f->watch_hits++;
		gdb_stub_on_stop(f->g, c, &d);
		return;
	}
}

static void f_resume(void *t, int only)
{
	struct fake *f = t;
	f->resumes++;
	f->last_only = only;
	f->byte40_at_resume = f->mem[0x40];
	for (unsigned c = 0; c < NCPU; c++)
		if (only < 0 || (unsigned)only == c)
			run_cpu(f, c);
}

static void f_kill(void *t)
{
	struct fake *f = t;
	f->kills++;
}

static const struct gdb_target_ops fake_ops = {
	.get_state = f_get_state, .set_state = f_set_state, .read_mem = f_read_mem,
	.write_mem = f_write_mem, .set_debug = f_set_debug, .stop_all = f_stop_all,
	.resume = f_resume, .kill = f_kill,
};

static void fake_init(struct fake *f, bool long_mode)
{
	memset(f, 0, sizeof(*f));
	for (unsigned c = 0; c < NCPU; c++) {
		f->st[c].regs.rip = MEM_BASE + 0x100 * c;
		f->st[c].regs.rax = 0x1111111122222222ull + c;
		f->st[c].regs.rsp = 0x8000;
		f->st[c].regs.rflags = 0x2;
		f->st[c].sregs.cs.selector = long_mode ? 0x08 : 0x10;
		f->st[c].sregs.cs.l = long_mode;
		f->st[c].sregs.efer = long_mode ? 0x500 : 0;
		f->st[c].sregs.cr0 = long_mode ? 0x80000011 : 0x11;
		f->st[c].sregs.cr3 = 0x1000;
		f->st[c].fx[0] = 0x7f; /* FCW 0x37f */
		f->st[c].fx[1] = 0x03;
		f->st[c].fx[24] = 0x80; /* MXCSR 0x1f80 */
		f->st[c].fx[25] = 0x1f;
	}
	for (unsigned i = 0; i < MEM_SIZE; i++)
		f->mem[i] = (uint8_t)(i * 7 + 1) == 0xCC ? 0x90 : (uint8_t)(i * 7 + 1);
	f->g = gdb_stub_create(&fake_ops, f, NCPU);
	assert_non_null(f->g);
}

/* ---- the session on a thread, GDB's side here --------------------------------- */

struct session {
	struct fake f;
	int fds[2];
	pthread_t thread;
	struct rsp_rx rx;
};

static void *serve_thread(void *arg)
{
	struct session *s = arg;
	gdb_stub_serve(s->f.g, s->fds[1]);
	return NULL;
}

static void send_pkt(struct session *s, const char *payload);
static void send_raw(struct session *s, const void *buf, size_t n);
static enum rsp_event next_event(struct session *s);

static struct session *start(bool long_mode)
{
	struct session *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	fake_init(&s->f, long_mode);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->fds), 0);
	rsp_rx_init(&s->rx);
	assert_int_equal(pthread_create(&s->thread, NULL, serve_thread, s), 0);
	/* a first exchange: the session is set up (and the fake target's
	 * state the test changes next no longer read meanwhile) */
	send_pkt(s, "?");
	assert_int_equal(next_event(s), RSP_EV_ACK);
	assert_int_equal(next_event(s), RSP_EV_PACKET);
	send_raw(s, "+", 1);
	return s;
}

static void finish(struct session *s)
{
	/* GDB goes away: the session ends. The '+' first (ignored by the
	 * stub) tells ThreadSanitizer that what this thread read of the fake
	 * target came before the session's clean-up writes it. */
	send_raw(s, "+", 1);
	close(s->fds[0]);
	pthread_join(s->thread, NULL);
	close(s->fds[1]);
	gdb_stub_destroy(s->f.g);
	free(s);
}

static void send_raw(struct session *s, const void *buf, size_t n)
{
	assert_int_equal(write(s->fds[0], buf, n), (ssize_t)n);
}

static void send_pkt(struct session *s, const char *payload)
{
	static char frame[2 * RSP_PACKET_MAX + 8];
	size_t n = rsp_frame(payload, strlen(payload), frame, sizeof(frame));
	assert_true(n > 0);
	send_raw(s, frame, n);
}

/* A packet framed as is: its payload already escaped (or not, on purpose). */
static void send_unescaped(struct session *s, const char *payload)
{
	char frame[256];
	uint8_t sum = 0;
	for (const char *p = payload; *p; p++)
		sum = (uint8_t)(sum + (uint8_t)*p);
	int n = snprintf(frame, sizeof(frame), "$%s#%02x", payload, sum);
	assert_true(n > 0 && (size_t)n < sizeof(frame));
	send_raw(s, frame, (size_t)n);
}

/* The next event from the stub (a packet lands in s->rx.buf); false on
 * a 5 s timeout or EOF. */
static enum rsp_event next_event(struct session *s)
{
	for (;;) {
		struct pollfd p = {.fd = s->fds[0], .events = POLLIN};
		if (poll(&p, 1, 5000) <= 0)
			return RSP_EV_NONE;
		uint8_t c;
		if (read(s->fds[0], &c, 1) != 1)
			return RSP_EV_NONE;
		enum rsp_event e = rsp_rx_byte(&s->rx, c);
		if (e != RSP_EV_NONE)
			return e;
	}
}

/* Send (payload), expect '+' and a reply packet: returned (static). */
static const char *ask(struct session *s, const char *payload)
{
	send_pkt(s, payload);
	assert_int_equal(next_event(s), RSP_EV_ACK);
	assert_int_equal(next_event(s), RSP_EV_PACKET);
	send_raw(s, "+", 1);
	return s->rx.buf;
}

/* A reply to nothing sent (a stop after Ctrl-C). */
static const char *wait_reply(struct session *s)
{
	assert_int_equal(next_event(s), RSP_EV_PACKET);
	send_raw(s, "+", 1);
	return s->rx.buf;
}

/* ---- the tests -------------------------------------------------------------------- */

static void test_handshake(void **state)
{
	(void)state;
	struct session *s = start(false);
	const char *r = ask(s, "qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386");
	assert_non_null(strstr(r, "PacketSize=4000"));
	assert_non_null(strstr(r, "qXfer:features:read+"));
	assert_non_null(strstr(r, "vContSupported+"));
	assert_non_null(strstr(r, "swbreak+"));
	assert_non_null(strstr(r, "hwbreak+"));
	assert_string_equal(ask(s, "vMustReplyEmpty"), "");
	assert_string_equal(ask(s, "?"), "T05thread:1;");
	assert_string_equal(ask(s, "qfThreadInfo"), "m1,2");
	assert_string_equal(ask(s, "qsThreadInfo"), "l");
	assert_string_equal(ask(s, "qC"), "QC1");
	assert_string_equal(ask(s, "qAttached"), "1");
	assert_string_equal(ask(s, "vCont?"), "vCont;c;C;s;S;t");
	assert_string_equal(ask(s, "T2"), "OK");
	assert_string_equal(ask(s, "T3"), "E01");
	assert_string_equal(ask(s, "Hg2"), "OK");
	assert_string_equal(ask(s, "qC"), "QC2");
	assert_string_equal(ask(s, "Hg3"), "E01");
	assert_string_equal(ask(s, "Hgzz"), "E01");
	/* the whole target description, read in small pieces */
	char xml[16384] = "";
	size_t off = 0;
	for (;;) {
		char q[64];
		snprintf(q, sizeof(q), "qXfer:features:read:target.xml:%zx,100", off);
		r = ask(s, q);
		assert_true(r[0] == 'm' || r[0] == 'l');
		size_t n = strlen(r + 1);
		assert_true(off + n < sizeof(xml));
		memcpy(xml + off, r + 1, n);
		off += n;
		if (r[0] == 'l')
			break;
	}
	xml[off] = '\0';
	assert_non_null(strstr(xml, "<architecture>i386</architecture>"));
	assert_non_null(strstr(xml, "org.gnu.gdb.i386.core"));
	/* i386 GDB asserts on a 32-bit segments feature: fs_base is ours */
	assert_null(strstr(xml, "org.gnu.gdb.i386.segments"));
	assert_non_null(strstr(xml, "name=\"fs_base\""));
	assert_non_null(strstr(xml, "name=\"eip\""));
	assert_null(strstr(xml, "name=\"rip\""));
	assert_string_equal(ask(s, "qXfer:features:read:other.xml:0,100"), "E00");
	assert_string_equal(ask(s, "qXfer:features:read:target.xml:zz"), "E01");
	finish(s);
}

static void test_registers_32(void **state)
{
	(void)state;
	struct session *s = start(false);
	size_t n;
	const struct reg_desc *t = reg_table(false, &n);
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += t[i].size;
	const char *r = ask(s, "g");
	assert_int_equal(strlen(r), 2 * total);
	/* eax (low half of rax), ... eip at register 8 */
	assert_memory_equal(r, "22222222", 8);
	assert_string_equal(ask(s, "p8"), "00001000");      /* eip 0x100000 */
	assert_string_equal(ask(s, "pa"), "10000000");      /* cs */
	assert_string_equal(ask(s, "p18"), "7f030000");     /* fctrl */
	assert_string_equal(ask(s, "p28"), "801f0000");     /* mxcsr */
	assert_string_equal(ask(s, "p2b"), "1100000000000000"); /* cr0 */
	assert_string_equal(ask(s, "p99"), "");              /* no such register */
	/* P: eax only, the high half of rax kept */
	assert_string_equal(ask(s, "P0=efbeadde"), "OK");
	assert_true(s->f.st[0].regs.rax == 0x11111111deadbeefull);
	assert_string_equal(ask(s, "P0=efbead"), "E01");
	assert_string_equal(ask(s, "P0=zzzzzzzz"), "E01");
	assert_string_equal(ask(s, "P0"), "E01");
	/* G: the same bytes back change nothing; eip changed */
	char *g = strdup(ask(s, "g"));
	assert_non_null(g);
	memcpy(g + 8 * 8, "78563412", 8);
	char *G = malloc(strlen(g) + 2);
	assert_non_null(G);
	G[0] = 'G';
	strcpy(G + 1, g);
	assert_string_equal(ask(s, G), "OK");
	assert_true(s->f.st[0].regs.rip == 0x12345678);
	assert_true(s->f.st[0].regs.rax == 0x11111111deadbeefull);
	G[strlen(G) - 1] = '\0'; /* one digit short */
	assert_string_equal(ask(s, G), "E01");
	free(G);
	free(g);
	/* vCPU 2's registers after Hg2 */
	assert_string_equal(ask(s, "Hg2"), "OK");
	assert_string_equal(ask(s, "p8"), "00011000");
	finish(s);
}

static void test_registers_64(void **state)
{
	(void)state;
	struct session *s = start(true);
	size_t n;
	const struct reg_desc *t = reg_table(true, &n);
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += t[i].size;
	assert_int_equal(strlen(ask(s, "g")), 2 * total);
	assert_string_equal(ask(s, "p10"), "0000100000000000"); /* rip */
	assert_string_equal(ask(s, "p7"), "0080000000000000");  /* rsp is GDB's 7 */
	assert_string_equal(ask(s, "p40"), "0005000000000000"); /* efer */
	const char *r = ask(s, "qXfer:features:read:target.xml:0,3fff");
	assert_non_null(strstr(r, "<architecture>i386:x86-64</architecture>"));
	assert_non_null(strstr(r, "org.gnu.gdb.i386.segments"));
	assert_non_null(strstr(r, "name=\"fs_base\""));
	assert_non_null(strstr(r, "name=\"cr3\""));
	finish(s);
}

static void test_memory(void **state)
{
	(void)state;
	struct session *s = start(false);
	assert_string_equal(ask(s, "m100000,4"), "01080f16");
	assert_string_equal(ask(s, "m0,4"), "E0e");        /* not mapped */
	/* a read running off the end is cut short */
	assert_string_equal(ask(s, "m10fffe,4"), "f3fa");
	/* a huge length gives at most MEM_MAX bytes */
	const char *r = ask(s, "m100000,ffffffffffffffff");
	assert_int_equal(strlen(r), 2 * MEM_MAX);
	assert_string_equal(ask(s, "m100000"), "E01");
	assert_string_equal(ask(s, "m100000,"), "E01");
	assert_string_equal(ask(s, "m1000000000000000000,1"), "E01");
	assert_string_equal(ask(s, "M100010,2:abcd"), "OK");
	assert_int_equal(s->f.mem[0x10], 0xab);
	assert_int_equal(s->f.mem[0x11], 0xcd);
	assert_string_equal(ask(s, "M100010,2:abc"), "E01");
	assert_string_equal(ask(s, "M100010,2:abxx"), "E01");
	assert_string_equal(ask(s, "M0,1:00"), "E0e");
	assert_string_equal(ask(s, "M100000,ffffffff:00"), "E01");
	/* X: binary, '}' escapes ('#' goes as "}\x03": send_pkt escapes) */
	assert_string_equal(ask(s, "X100020,4:a#}z"), "OK");
	assert_memory_equal(s->f.mem + 0x20, "a#}z", 4);
	assert_string_equal(ask(s, "X100020,0:"), "OK");
	assert_string_equal(ask(s, "X100020,2:a"), "E01");
	/* a trailing escape */
	send_unescaped(s, "X100020,1:}");
	assert_int_equal(next_event(s), RSP_EV_ACK);
	assert_int_equal(next_event(s), RSP_EV_PACKET);
	assert_string_equal(s->rx.buf, "E01");
	finish(s);
}

static void test_breakpoint_continue_step(void **state)
{
	(void)state;
	struct session *s = start(false);
	uint8_t orig = s->f.mem[0x40];
	assert_string_equal(ask(s, "Z0,100040,1"), "OK");
	assert_string_equal(ask(s, "Z0,0,1"), "E0e"); /* unmapped */
	/* not planted while stopped: GDB reads the guest's byte */
	assert_int_equal(s->f.mem[0x40], orig);
	/* continue: vCPU 1 runs into the breakpoint */
	const char *r = ask(s, "vCont;c");
	assert_string_equal(r, "T05thread:1;swbreak:;");
	assert_true(s->f.st[0].regs.rip == MEM_BASE + 0x40);
	assert_int_equal(s->f.mem[0x40], orig); /* removed on the stop */
	assert_true(s->f.dbg[0].flags & ZHV_DEBUG_SW_BREAKPOINTS);
	/* vCPU 2 ran into it too (it started at 0x100100? no: past it), so
	 * nothing else is pending; step vCPU 1 alone: */
	r = ask(s, "vCont;s:1;c");
	assert_string_equal(r, "T05thread:1;");
	assert_int_equal(s->f.last_only, 0);
	assert_true(s->f.st[0].regs.rip == MEM_BASE + 0x41);
	assert_true(s->f.dbg[0].flags & ZHV_DEBUG_SINGLESTEP);
	assert_false(s->f.dbg[1].flags & ZHV_DEBUG_SINGLESTEP);
	/* back onto the breakpoint, continue: it is stepped off first, then
	 * everything runs (and runs on: no other breakpoint ahead) */
	s->f.st[0].regs.rip = MEM_BASE + 0x40;
	s->f.st[1].regs.rip = MEM_BASE + 0x200;
	send_pkt(s, "c");
	assert_int_equal(next_event(s), RSP_EV_ACK);
	struct pollfd p = {.fd = s->fds[0], .events = POLLIN};
	assert_int_equal(poll(&p, 1, 200), 0); /* running: no reply */
	/* Ctrl-C: everything stops, SIGINT */
	send_raw(s, "\x03", 1);
	assert_string_equal(wait_reply(s), "T02thread:1;");
	/* it ran: vCPU 1 stepped off the breakpoint, then all continued
	 * with it planted; now removed again */
	assert_true(s->f.st[0].regs.rip == MEM_BASE + 0x41);
	assert_int_equal(s->f.last_only, -1);
	assert_int_equal(s->f.byte40_at_resume, 0xCC);
	assert_int_equal(s->f.mem[0x40], orig);
	/* z0 removes it: the next continue runs on */
	assert_string_equal(ask(s, "z0,100040,1"), "OK");
	send_pkt(s, "c");
	assert_int_equal(next_event(s), RSP_EV_ACK);
	assert_int_equal(poll(&p, 1, 200), 0);
	send_raw(s, "\x03", 1);
	assert_string_equal(wait_reply(s), "T02thread:1;");
	assert_int_equal(s->f.byte40_at_resume, orig);
	finish(s);
}

static void test_two_cpus_pending(void **state)
{
	(void)state;
	struct session *s = start(false);
	/* a breakpoint each vCPU reaches: both stop, one is reported, the
	 * other on the next continue without running */
	s->f.st[0].regs.rip = MEM_BASE + 0x300;
	s->f.st[1].regs.rip = MEM_BASE + 0x500;
	assert_string_equal(ask(s, "Z0,100400,1"), "OK");
	assert_string_equal(ask(s, "Z0,100600,1"), "OK");
	assert_string_equal(ask(s, "c"), "T05thread:1;swbreak:;");
	int resumes = s->f.resumes;
	assert_string_equal(ask(s, "c"), "T05thread:2;swbreak:;");
	assert_int_equal(s->f.resumes, resumes); /* reported without running */
	assert_string_equal(ask(s, "qC"), "QC2");
	finish(s);
}

static void test_watchpoints(void **state)
{
	(void)state;
	struct session *s = start(false);
	assert_string_equal(ask(s, "Z2,100800,4"), "OK");
	assert_string_equal(ask(s, "Z2,100801,4"), "E16"); /* unaligned */
	assert_string_equal(ask(s, "Z2,100800,3"), "E16");
	assert_string_equal(ask(s, "Z3,100800,4"), "");    /* no read-only watch on x86 */
	assert_string_equal(ask(s, "Z4,100808,8"), "OK");
	assert_string_equal(ask(s, "Z1,100010,1"), "OK");
	assert_string_equal(ask(s, "Z1,100020,1"), "OK");
	assert_string_equal(ask(s, "Z1,100030,1"), "E1c"); /* four debug registers */
	assert_string_equal(ask(s, "z1,100020,1"), "OK");
	assert_string_equal(ask(s, "z4,100808,8"), "OK");
	assert_string_equal(ask(s, "z1,100010,1"), "OK");
	assert_string_equal(ask(s, "c"), "T05thread:1;watch:100800;");
	assert_int_equal(s->f.dbg[1].hw[0].type, ZHV_DEBUG_HW_WRITE); /* on every vCPU */
	assert_true(s->f.dbg[1].hw[0].addr == 0x100800);
	assert_int_equal(s->f.dbg[1].hw[0].len, 4);
	assert_string_equal(ask(s, "z2,100800,4"), "OK");
	assert_string_equal(ask(s, "Z9,100800,4"), "");
	assert_string_equal(ask(s, "Z2,100800"), "E01");
	assert_string_equal(ask(s, "Z2,100800,4;X1,0"), "E01");
	finish(s);
}

static void test_hostile(void **state)
{
	(void)state;
	struct session *s = start(false);
	/* a bad checksum: NAK, nothing else */
	send_raw(s, "$g#00", 5);
	assert_int_equal(next_event(s), RSP_EV_NAK);
	/* garbage outside packets is ignored */
	send_raw(s, "\x01\xff garbage ###", 14);
	/* a packet longer than PacketSize: dropped, with an error */
	size_t n = RSP_PACKET_MAX + 100;
	char *big = malloc(n + 1);
	assert_non_null(big);
	memset(big, 'm', n);
	big[n] = '\0';
	send_pkt(s, big);
	free(big);
	assert_int_equal(next_event(s), RSP_EV_ACK);
	assert_int_equal(next_event(s), RSP_EV_PACKET);
	assert_string_equal(s->rx.buf, "E01");
	/* empty, unknown, truncated, junk */
	assert_string_equal(ask(s, ""), "");
	assert_string_equal(ask(s, "\xff\xfe"), "");
	assert_string_equal(ask(s, "H"), "E01");
	assert_string_equal(ask(s, "Hx1"), "E01");
	assert_string_equal(ask(s, "p"), "E01");
	assert_string_equal(ask(s, "pffffffffffffffff"), "");
	assert_string_equal(ask(s, "G00"), "E01");
	assert_string_equal(ask(s, "vCont;x"), "E01");
	assert_string_equal(ask(s, "vCont;s:99"), "E01");
	assert_string_equal(ask(s, "vCont;c:"), "E01");
	assert_string_equal(ask(s, "qXfer:features:read:target.xml:ffffffffffff,ffffffffffff"), "l");
	assert_string_equal(ask(s, "qThreadExtraInfo,1"), "764350552031"); /* "vCPU 1" */
	assert_string_equal(ask(s, "qThreadExtraInfo,7"), "E01");
	/* a NAK resends the last reply */
	assert_string_equal(ask(s, "qC"), "QC1");
	send_raw(s, "-", 1);
	assert_int_equal(next_event(s), RSP_EV_PACKET);
	assert_string_equal(s->rx.buf, "QC1");
	/* still answering */
	assert_string_equal(ask(s, "m100000,1"), "01");
	finish(s);
}

static void test_detach_and_kill(void **state)
{
	(void)state;
	struct session *s = start(false);
	assert_string_equal(ask(s, "Z0,100040,1"), "OK");
	assert_string_equal(ask(s, "Z2,100800,4"), "OK");
	assert_string_equal(ask(s, "c"), "T05thread:1;swbreak:;");
	assert_string_equal(ask(s, "D"), "OK");
	pthread_join(s->thread, NULL);
	/* debugging off everywhere, every vCPU running, nothing planted */
	for (unsigned c = 0; c < NCPU; c++)
		assert_int_equal(s->f.dbg[c].flags, 0);
	assert_int_equal(s->f.last_only, -1);
	assert_int_not_equal(s->f.mem[0x40], 0xCC);
	close(s->fds[0]);
	close(s->fds[1]);
	/* k: the target is killed, no reply */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->fds), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, serve_thread, s), 0);
	send_pkt(s, "k");
	assert_int_equal(next_event(s), RSP_EV_ACK);
	pthread_join(s->thread, NULL);
	assert_int_equal(s->f.kills, 1);
	close(s->fds[0]);
	close(s->fds[1]);
	gdb_stub_destroy(s->f.g);
	free(s);
}

static void test_end_of_run(void **state)
{
	(void)state;
	struct session *s = start(false);
	send_pkt(s, "c");
	assert_int_equal(next_event(s), RSP_EV_ACK);
	gdb_stub_end(s->f.g, 0x55);
	assert_string_equal(wait_reply(s), "W55");
	pthread_join(s->thread, NULL);
	close(s->fds[0]);
	close(s->fds[1]);
	gdb_stub_destroy(s->f.g);
	free(s);
}

/* ---- --serve PORT: the fake target for a real GDB --------------------------------- */

static int serve_main(const char *port)
{
	static struct fake f;
	fake_init(&f, getenv("FAKE_LONG_MODE") != NULL);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) < 0) {
		perror("gdb_stub_test --serve");
		return 1;
	}
	printf("listening on 127.0.0.1:%u\n", ntohs(a.sin_port));
	fflush(stdout);
	int fd = accept(l, NULL, NULL);
	if (fd < 0)
		return 1;
	gdb_stub_serve(f.g, fd);
	close(fd);
	close(l);
	gdb_stub_destroy(f.g);
	printf("session over: %d kills\n", f.kills);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--serve"))
		return serve_main(argv[2]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake),
		cmocka_unit_test(test_registers_32),
		cmocka_unit_test(test_registers_64),
		cmocka_unit_test(test_memory),
		cmocka_unit_test(test_breakpoint_continue_step),
		cmocka_unit_test(test_two_cpus_pending),
		cmocka_unit_test(test_watchpoints),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_detach_and_kill),
		cmocka_unit_test(test_end_of_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
