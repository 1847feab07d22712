/* gdb_rsp.c: libFuzzer target of zhv run --gdb's protocol layer: the
 * input is the byte stream a GDB client sends (packets, acks, Ctrl-C,
 * garbage), fed through the framing (vmm/gdb/rsp.c) into a session
 * (vmm/gdb/stub.c) over a fake target of two vCPUs, 64 KiB of memory
 * at 0x100000 and a run that stops at the first int3 or single step.
 * Replies go to a socket pair drained after each chunk. Checked: no
 * crash, every reply well framed (checksum right, payload within
 * PacketSize), the fake memory written only inside its bounds (ASan). */
#include "fuzz.h"

#include "../vmm/gdb/rsp.c"
#include "../vmm/gdb/stub.c"

#include <sys/socket.h>

#define NCPU 2
#define MEM_BASE 0x100000u
#define MEM_SIZE 0x10000u

static uint8_t *mem;
static struct gdb_cpu_state st[NCPU];
static zhv_vcpu_debug_t dbg[NCPU];
static struct gdb_stub *stub;

static int f_get_state(void *t, unsigned cpu, struct gdb_cpu_state *s)
{
	(void)t;
	FUZZ_CHECK(cpu < NCPU);
	*s = st[cpu];
	return 0;
}

static int f_set_state(void *t, unsigned cpu, const struct gdb_cpu_state *s)
{
	(void)t;
	FUZZ_CHECK(cpu < NCPU);
	st[cpu] = *s;
	return 0;
}

static bool in_mem(uint64_t gva, size_t n)
{
	return gva >= MEM_BASE && n <= MEM_SIZE && gva - MEM_BASE <= MEM_SIZE - n;
}

static int f_read_mem(void *t, unsigned cpu, uint64_t gva, void *buf, size_t n)
{
	(void)t;
	FUZZ_CHECK(cpu < NCPU);
	if (!in_mem(gva, n))
		return -EFAULT;
	memcpy(buf, mem + (gva - MEM_BASE), n);
	return 0;
}

static int f_write_mem(void *t, unsigned cpu, uint64_t gva, const void *buf, size_t n)
{
	(void)t;
	FUZZ_CHECK(cpu < NCPU);
	if (!in_mem(gva, n))
		return -EFAULT;
	memcpy(mem + (gva - MEM_BASE), buf, n);
	return 0;
}

static int f_set_debug(void *t, unsigned cpu, const zhv_vcpu_debug_t *d)
{
	(void)t;
	FUZZ_CHECK(cpu < NCPU);
	for (unsigned i = 0; i < 4; i++) {
		if (!d->hw[i].type)
			continue;
		/* what libzhv would refuse */
		FUZZ_CHECK(d->hw[i].len == 1 || d->hw[i].len == 2 || d->hw[i].len == 4 ||
		           d->hw[i].len == 8);
		FUZZ_CHECK((d->hw[i].addr & (d->hw[i].len - 1u)) == 0);
	}
	dbg[cpu] = *d;
	return 0;
}

static int f_stop_all(void *t)
{
	(void)t;
	return 0;
}

static void f_resume(void *t, int only)
{
	(void)t;
	for (unsigned c = 0; c < NCPU; c++) {
		if (only >= 0 && (unsigned)only != c)
			continue;
		zhv_packet_guest_debug_t d = {0};
		if (dbg[c].flags & ZHV_DEBUG_SINGLESTEP) {
			st[c].regs.rip++;
			d.reason = ZHV_DEBUG_STOP_STEP;
			d.rip = st[c].regs.rip;
			gdb_stub_on_stop(stub, c, &d);
			continue;
		}
		for (uint64_t a = st[c].regs.rip; in_mem(a, 1); a++) {
			if (mem[a - MEM_BASE] != 0xCC)
				continue;
			d.reason = ZHV_DEBUG_STOP_SW_BREAKPOINT;
			d.rip = a;
			if (gdb_stub_on_stop(stub, c, &d) == GDB_STOP_PARK) {
				st[c].regs.rip = a;
				break;
			}
		}
	}
}

static void f_kill(void *t)
{
	(void)t;
}

static const struct gdb_target_ops fake_ops = {
	.get_state = f_get_state, .set_state = f_set_state, .read_mem = f_read_mem,
	.write_mem = f_write_mem, .set_debug = f_set_debug, .stop_all = f_stop_all,
	.resume = f_resume, .kill = f_kill,
};

static int fds[2] = {-1, -1};
static struct rsp_rx *check_rx;

/* Read every reply the session sent; each packet must be well framed. */
static void drain(void)
{
	uint8_t buf[65536];
	ssize_t n;
	while ((n = recv(fds[0], buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			enum rsp_event e = rsp_rx_byte(check_rx, buf[i]);
			FUZZ_CHECK(e != RSP_EV_BAD && e != RSP_EV_TOO_LONG);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fds[0] < 0) {
		FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
		int big = 1 << 20;
		setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
		check_rx = malloc(sizeof(*check_rx));
		FUZZ_CHECK(check_rx);
	}
	mem = malloc(MEM_SIZE);
	FUZZ_CHECK(mem);
	for (unsigned i = 0; i < MEM_SIZE; i++)
		mem[i] = (uint8_t)(i * 7 + 1) == 0xCC ? 0x90 : (uint8_t)(i * 7 + 1);
	memset(st, 0, sizeof(st));
	memset(dbg, 0, sizeof(dbg));
	for (unsigned c = 0; c < NCPU; c++)
		st[c].regs.rip = MEM_BASE + 0x100 * c;
	/* the first byte picks the session's mode: 64-bit or 32-bit */
	bool lm = size > 0 && (data[0] & 1);
	st[0].sregs.efer = lm ? 0x500 : 0;
	st[0].sregs.cs.l = lm;
	stub = gdb_stub_create(&fake_ops, NULL, NCPU);
	FUZZ_CHECK(stub);
	/* what gdb_stub_serve sets up, without its poll loop */
	stub->fd = fds[1];
	stub->connected = true;
	stub->stepover = -1;
	stub->long_mode = cpu_long_mode(stub, 0);
	snprintf(stub->last_stop, sizeof(stub->last_stop), "T05thread:1;");
	rsp_rx_init(&stub->rx);
	rsp_rx_init(check_rx);
	/* in chunks of up to 512 bytes, with the vCPUs' stops in between */
	size_t off = size > 0 ? 1 : 0;
	while (off < size && stub->connected) {
		size_t n = size - off < 512 ? size - off : 512;
		bool live = on_input(stub, data + off, n);
		off += n;
		drain();
		if (!live)
			break;
		if (stub->running)
			on_running_event(stub, false);
		drain();
	}
	gdb_stub_destroy(stub);
	stub = NULL;
	free(mem);
	return 0;
}
