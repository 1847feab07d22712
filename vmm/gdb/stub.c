/* stub.c: a GDB remote serial protocol session (stub.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rsp.h"
#include "stub.h"

#include "regs.inc"

#define MAX_SW_BPS 256
#define PAGE 4096u
/* m: at most this many bytes per reply (twice as many hex digits) */
#define MEM_MAX ((RSP_PACKET_MAX - 16) / 2)

struct sw_bp {
	uint64_t addr;
	uint8_t orig;
	bool planted;
};

struct pending {
	bool valid;
	uint64_t seq;
	zhv_packet_guest_debug_t d;
};

struct gdb_stub {
	const struct gdb_target_ops *ops;
	void *t;
	unsigned ncpus;
	int notify[2]; /* vCPU stops and the end of the run wake the session */

	pthread_mutex_t lock;
	/* under lock: what vCPU threads look at */
	struct sw_bp bps[MAX_SW_BPS];
	unsigned nbps;
	struct pending *pend; /* [ncpus] */
	uint64_t seq;
	bool ended;
	int end_status;

	/* the session thread's own */
	struct {
		uint64_t addr;
		uint8_t type, len; /* ZHV_DEBUG_HW_*; type 0: free */
	} hw[4];
	zhv_vcpu_debug_t *applied; /* [ncpus]: what each vCPU has */
	bool *applied_valid;
	bool *stepped;             /* [ncpus]: stepped over its breakpoint in this resume */
	int fd;
	bool connected;
	bool killed;               /* GDB's k: the run is ending */
	bool running;
	int stepover;              /* the vCPU stepping off a breakpoint, or -1 */
	bool long_mode;
	unsigned gcpu, ccpu;       /* Hg and Hc */
	char last_stop[96];
	char *xml[2];              /* [long_mode] */
	struct rsp_rx rx;
	char reply[RSP_PACKET_MAX + 1];
	char frame[2 * RSP_PACKET_MAX + 8];
	size_t frame_len;
	uint8_t mem[MEM_MAX + 8];
};

/* ---- creation ------------------------------------------------------------ */

struct gdb_stub *gdb_stub_create(const struct gdb_target_ops *ops, void *t, unsigned ncpus)
{
	struct gdb_stub *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->ops = ops;
	g->t = t;
	g->ncpus = ncpus;
	g->notify[0] = g->notify[1] = -1;
	g->pend = calloc(ncpus, sizeof(*g->pend));
	g->applied = calloc(ncpus, sizeof(*g->applied));
	g->applied_valid = calloc(ncpus, sizeof(bool));
	g->stepped = calloc(ncpus, sizeof(bool));
	g->xml[0] = build_xml(false);
	g->xml[1] = build_xml(true);
	if (!g->pend || !g->applied || !g->applied_valid || !g->stepped || !g->xml[0] ||
	    !g->xml[1] || pipe2(g->notify, O_CLOEXEC | O_NONBLOCK) < 0) {
		gdb_stub_destroy(g);
		return NULL;
	}
	pthread_mutex_init(&g->lock, NULL);
	g->stepover = -1;
	return g;
}

void gdb_stub_destroy(struct gdb_stub *g)
{
	if (!g)
		return;
	if (g->notify[0] >= 0) {
		close(g->notify[0]);
		close(g->notify[1]);
		pthread_mutex_destroy(&g->lock);
	}
	free(g->pend);
	free(g->applied);
	free(g->applied_valid);
	free(g->stepped);
	free(g->xml[0]);
	free(g->xml[1]);
	free(g);
}

char *gdb_stub_target_xml(bool long_mode)
{
	return build_xml(long_mode);
}

static void wake(struct gdb_stub *g)
{
	char c = 1;
	ssize_t r = write(g->notify[1], &c, 1); /* full pipe: already woken */
	(void)r;
}

void gdb_stub_end(struct gdb_stub *g, int status)
{
	pthread_mutex_lock(&g->lock);
	if (!g->ended) {
		g->ended = true;
		g->end_status = status;
	}
	pthread_mutex_unlock(&g->lock);
	wake(g);
}

/* ---- vCPU side -------------------------------------------------------------- */

static int bp_find(struct gdb_stub *g, uint64_t addr)
{
	for (unsigned i = 0; i < g->nbps; i++)
		if (g->bps[i].addr == addr)
			return (int)i;
	return -1;
}

enum gdb_stop_action gdb_stub_on_stop(struct gdb_stub *g, unsigned cpu,
                                      const zhv_packet_guest_debug_t *d)
{
	if (cpu >= g->ncpus)
		return GDB_STOP_IGNORE;
	pthread_mutex_lock(&g->lock);
	if (d->reason == ZHV_DEBUG_STOP_SW_BREAKPOINT) {
		int i = bp_find(g, d->rip);
		if (i < 0 || !g->bps[i].planted) {
			pthread_mutex_unlock(&g->lock);
			return GDB_STOP_REINJECT; /* the guest's own int3 */
		}
	}
	g->pend[cpu].valid = true;
	g->pend[cpu].seq = g->seq++;
	g->pend[cpu].d = *d;
	pthread_mutex_unlock(&g->lock);
	wake(g);
	return GDB_STOP_PARK;
}

/* ---- output ------------------------------------------------------------------ */

static bool send_all(struct gdb_stub *g, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = send(g->fd, buf, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {.fd = g->fd, .events = POLLOUT};
			if (poll(&p, 1, 10000) <= 0)
				return false;
			continue;
		}
		if (w <= 0) {
			g->connected = false;
			return false;
		}
		buf += w;
		n -= (size_t)w;
	}
	return true;
}

static void send_packet(struct gdb_stub *g, const char *payload, size_t len)
{
	g->frame_len = rsp_frame(payload, len, g->frame, sizeof(g->frame));
	if (g->frame_len == 0) /* cannot happen: replies are capped */
		g->frame_len = rsp_frame("E01", 3, g->frame, sizeof(g->frame));
	send_all(g, g->frame, g->frame_len);
}

static void reply_str(struct gdb_stub *g, const char *s)
{
	send_packet(g, s, strlen(s));
}

static void reply_fmt(struct gdb_stub *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply_fmt(struct gdb_stub *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(g->reply, sizeof(g->reply), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(g->reply))
		n = 0;
	send_packet(g, g->reply, (size_t)n);
}

/* ---- stopping and resuming -------------------------------------------------- */

static void unplant_all(struct gdb_stub *g)
{
	pthread_mutex_lock(&g->lock);
	for (unsigned i = 0; i < g->nbps; i++) {
		struct sw_bp *b = &g->bps[i];
		if (b->planted && g->ops->write_mem(g->t, g->gcpu, b->addr, &b->orig, 1) < 0)
			fprintf(stderr, "zhv: gdb: cannot remove the breakpoint at %#" PRIx64 "\n",
			        b->addr);
		b->planted = false;
	}
	pthread_mutex_unlock(&g->lock);
}

static void plant_all(struct gdb_stub *g)
{
	static const uint8_t int3 = 0xCC;
	pthread_mutex_lock(&g->lock);
	for (unsigned i = 0; i < g->nbps; i++) {
		struct sw_bp *b = &g->bps[i];
		/* the byte is read again: the guest may have changed its code */
		if (g->ops->read_mem(g->t, g->gcpu, b->addr, &b->orig, 1) == 0 &&
		    g->ops->write_mem(g->t, g->gcpu, b->addr, &int3, 1) == 0)
			b->planted = true;
	}
	pthread_mutex_unlock(&g->lock);
}

/* Give every vCPU its debug settings: the hardware slots, int3 stops
 * while software breakpoints exist, single-step on (step) alone. With
 * (off), guest debugging ends on every vCPU. */
static void apply_debug(struct gdb_stub *g, int step, bool off)
{
	pthread_mutex_lock(&g->lock);
	bool sw = g->nbps > 0;
	pthread_mutex_unlock(&g->lock);
	for (unsigned c = 0; c < g->ncpus; c++) {
		zhv_vcpu_debug_t d;
		memset(&d, 0, sizeof(d));
		if (!off) {
			d.flags = ZHV_DEBUG_ENABLE | (sw ? ZHV_DEBUG_SW_BREAKPOINTS : 0) |
			          ((int)c == step ? ZHV_DEBUG_SINGLESTEP : 0);
			for (unsigned i = 0; i < 4; i++) {
				if (!g->hw[i].type)
					continue;
				d.hw[i].addr = g->hw[i].addr;
				d.hw[i].type = g->hw[i].type;
				d.hw[i].len = g->hw[i].len;
			}
		}
		if (g->applied_valid[c] && !memcmp(&g->applied[c], &d, sizeof(d)))
			continue;
		int r = g->ops->set_debug(g->t, c, &d);
		if (r < 0) {
			fprintf(stderr, "zhv: gdb: vCPU %u: cannot set its debug state: %s\n", c + 1,
			        strerror(-r));
			g->applied_valid[c] = false;
		} else {
			g->applied[c] = d;
			g->applied_valid[c] = true;
		}
	}
}

/* The earliest pending stop still worth reporting (a software breakpoint
 * GDB removed meanwhile is not: its vCPU is at the original instruction),
 * taken out of the queue into (out); false if none. */
static bool take_pending(struct gdb_stub *g, unsigned *cpu, zhv_packet_guest_debug_t *out)
{
	bool found = false;
	pthread_mutex_lock(&g->lock);
	for (unsigned c = 0; c < g->ncpus; c++) {
		struct pending *p = &g->pend[c];
		if (!p->valid)
			continue;
		if (p->d.reason == ZHV_DEBUG_STOP_SW_BREAKPOINT && bp_find(g, p->d.rip) < 0) {
			p->valid = false;
			continue;
		}
		if (!found || p->seq < g->pend[*cpu].seq) {
			*cpu = c;
			found = true;
		}
	}
	if (found) {
		*out = g->pend[*cpu].d;
		g->pend[*cpu].valid = false;
	}
	pthread_mutex_unlock(&g->lock);
	return found;
}

static void report_stop(struct gdb_stub *g, unsigned cpu, const zhv_packet_guest_debug_t *d)
{
	char extra[48] = "";
	int sig = 5; /* SIGTRAP */
	if (!d) {
		sig = 2; /* SIGINT: Ctrl-C */
	} else if (d->reason == ZHV_DEBUG_STOP_SW_BREAKPOINT) {
		snprintf(extra, sizeof(extra), "swbreak:;");
	} else if (d->reason == ZHV_DEBUG_STOP_HW_BREAKPOINT) {
		snprintf(extra, sizeof(extra), "hwbreak:;");
	} else if (d->reason == ZHV_DEBUG_STOP_WATCHPOINT) {
		uint8_t type = d->slot < 4 ? g->hw[d->slot].type : ZHV_DEBUG_HW_WRITE;
		snprintf(extra, sizeof(extra), "%s:%" PRIx64 ";",
		         type == ZHV_DEBUG_HW_ACCESS ? "awatch" : "watch", d->addr);
	}
	g->gcpu = g->ccpu = cpu;
	g->running = false;
	snprintf(g->last_stop, sizeof(g->last_stop), "T%02xthread:%x;%s", sig, cpu + 1, extra);
	reply_str(g, g->last_stop);
}

static void resume_all(struct gdb_stub *g);

/* The target runs and something woke the session: a vCPU's stop, or
 * Ctrl-C (interrupt). Stop everything and tell GDB, unless it was the end
 * of a step off a breakpoint, after which the others run on. */
static void on_running_event(struct gdb_stub *g, bool interrupt)
{
	unsigned cpu = 0;
	zhv_packet_guest_debug_t d;
	pthread_mutex_lock(&g->lock);
	bool any = false;
	for (unsigned c = 0; c < g->ncpus; c++)
		any |= g->pend[c].valid;
	pthread_mutex_unlock(&g->lock);
	if (!any && !interrupt)
		return; /* a wake-up for nothing new */
	if (g->ops->stop_all(g->t) < 0)
		return; /* the run is ending: the end's wake-up follows */
	unplant_all(g);
	bool have = take_pending(g, &cpu, &d);
	if (have && g->stepover >= 0 && (int)cpu == g->stepover &&
	    d.reason == ZHV_DEBUG_STOP_STEP) {
		g->stepover = -1;
		if (!interrupt) {
			resume_all(g);
			return;
		}
		have = take_pending(g, &cpu, &d);
	}
	g->stepover = -1;
	if (have)
		report_stop(g, cpu, &d);
	else
		report_stop(g, g->gcpu, NULL);
}

/* Continue every vCPU: first, one by one, step each vCPU that sits on a
 * software breakpoint off it (nothing planted meanwhile, the others
 * stopped), then plant the breakpoints and let all run. */
static void resume_all(struct gdb_stub *g)
{
	for (unsigned c = 0; c < g->ncpus; c++) {
		if (g->stepped[c])
			continue;
		g->stepped[c] = true;
		struct gdb_cpu_state s;
		if (g->ops->get_state(g->t, c, &s) < 0)
			continue;
		pthread_mutex_lock(&g->lock);
		bool on_bp = bp_find(g, s.regs.rip) >= 0;
		pthread_mutex_unlock(&g->lock);
		if (!on_bp)
			continue;
		g->stepover = (int)c;
		apply_debug(g, (int)c, false);
		g->running = true;
		g->ops->resume(g->t, (int)c);
		return;
	}
	plant_all(g);
	apply_debug(g, -1, false);
	g->running = true;
	g->ops->resume(g->t, -1);
}

/* c, s, vCont: (step) is the vCPU to single-step alone, or -1 to
 * continue all. A stop that happened before (another vCPU's breakpoint
 * while the first was reported) is reported first, without running. */
static void do_resume(struct gdb_stub *g, int step)
{
	unsigned cpu;
	zhv_packet_guest_debug_t d;
	if (take_pending(g, &cpu, &d)) {
		report_stop(g, cpu, &d);
		return;
	}
	g->stepover = -1;
	if (step >= 0) {
		apply_debug(g, step, false);
		g->running = true;
		g->ops->resume(g->t, step);
		return;
	}
	memset(g->stepped, 0, g->ncpus * sizeof(bool));
	resume_all(g);
}

/* ---- packets ------------------------------------------------------------------ */

static void reply_error(struct gdb_stub *g, int code)
{
	reply_fmt(g, "E%02x", code & 0xff);
}

/* A thread id: "-1" (all), "0" (any) or a hex number 1..ncpus. Returns
 * the vCPU (any/all: (dflt)), or -1. */
static int parse_tid(struct gdb_stub *g, const char *s, unsigned dflt)
{
	if (!strcmp(s, "-1") || !strcmp(s, "0"))
		return (int)dflt;
	uint64_t v;
	const char *p = s;
	if (rsp_parse_u64(&p, &v) < 0 || *p || v == 0 || v > g->ncpus)
		return -1;
	return (int)(v - 1);
}

static void handle_regs_read(struct gdb_stub *g)
{
	struct gdb_cpu_state s;
	if (g->ops->get_state(g->t, g->gcpu, &s) < 0) {
		reply_error(g, 1);
		return;
	}
	size_t n, o = 0;
	const struct reg_desc *t = reg_table(g->long_mode, &n);
	for (size_t i = 0; i < n; i++) {
		uint8_t v[16];
		reg_get(&s, &t[i], v);
		rsp_hex_encode(v, t[i].size, g->reply + o);
		o += 2u * t[i].size;
	}
	send_packet(g, g->reply, o);
}

static void handle_regs_write(struct gdb_stub *g, const char *hex)
{
	size_t n, total = 0;
	const struct reg_desc *t = reg_table(g->long_mode, &n);
	for (size_t i = 0; i < n; i++)
		total += t[i].size;
	struct gdb_cpu_state s;
	if (strlen(hex) != 2 * total || g->ops->get_state(g->t, g->gcpu, &s) < 0) {
		reply_error(g, 1);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t v[16];
		if (rsp_hex_decode(hex, t[i].size, v) < 0) {
			reply_error(g, 1);
			return;
		}
		reg_set(&s, &t[i], v);
		hex += 2u * t[i].size;
	}
	if (g->ops->set_state(g->t, g->gcpu, &s) < 0)
		reply_error(g, 1);
	else
		reply_str(g, "OK");
}

/* p N / P N=V */
static void handle_reg(struct gdb_stub *g, const char *arg, bool write)
{
	size_t n;
	const struct reg_desc *t = reg_table(g->long_mode, &n);
	uint64_t num;
	struct gdb_cpu_state s;
	if (rsp_parse_u64(&arg, &num) < 0 || (write ? *arg != '=' : *arg != '\0')) {
		reply_error(g, 1);
		return;
	}
	if (num >= n) {
		reply_str(g, write ? "E01" : ""); /* GDB takes "" as "not available" */
		return;
	}
	if (g->ops->get_state(g->t, g->gcpu, &s) < 0) {
		reply_error(g, 1);
		return;
	}
	uint8_t v[16];
	if (!write) {
		reg_get(&s, &t[num], v);
		rsp_hex_encode(v, t[num].size, g->reply);
		send_packet(g, g->reply, 2u * t[num].size);
		return;
	}
	arg++;
	if (strlen(arg) != 2u * t[num].size || rsp_hex_decode(arg, t[num].size, v) < 0) {
		reply_error(g, 1);
		return;
	}
	reg_set(&s, &t[num], v);
	reply_str(g, g->ops->set_state(g->t, g->gcpu, &s) < 0 ? "E01" : "OK");
}

/* "ADDR,LEN" then (end) */
static int parse_addr_len(const char **p, uint64_t *addr, uint64_t *len)
{
	if (rsp_parse_u64(p, addr) < 0 || **p != ',')
		return -1;
	(*p)++;
	return rsp_parse_u64(p, len);
}

/* Read what can be read from (addr), page by page, up to the first page
 * that cannot. Returns the bytes read. */
static size_t mem_read_partial(struct gdb_stub *g, uint64_t addr, size_t len)
{
	size_t done = 0;
	while (done < len) {
		uint64_t a = addr + done;
		size_t chunk = PAGE - (size_t)(a & (PAGE - 1));
		if (chunk > len - done)
			chunk = len - done;
		if (g->ops->read_mem(g->t, g->gcpu, a, g->mem + done, chunk) < 0)
			break;
		done += chunk;
	}
	return done;
}

static void handle_mem_read(struct gdb_stub *g, const char *arg)
{
	uint64_t addr, len;
	if (parse_addr_len(&arg, &addr, &len) < 0 || *arg) {
		reply_error(g, 1);
		return;
	}
	if (len > MEM_MAX) /* a shorter reply is allowed; GDB asks again */
		len = MEM_MAX;
	size_t got = mem_read_partial(g, addr, (size_t)len);
	if (got == 0 && len > 0) {
		reply_error(g, 14); /* EFAULT */
		return;
	}
	rsp_hex_encode(g->mem, got, g->reply);
	send_packet(g, g->reply, 2 * got);
}

/* M ADDR,LEN:HEX and X ADDR,LEN:BINARY */
static void handle_mem_write(struct gdb_stub *g, const char *arg, size_t arglen, bool binary)
{
	const char *p = arg;
	uint64_t addr, len;
	if (parse_addr_len(&p, &addr, &len) < 0 || *p != ':' || len > MEM_MAX) {
		reply_error(g, 1);
		return;
	}
	p++;
	size_t rest = arglen - (size_t)(p - arg);
	if (binary) {
		long n = rsp_unescape(p, rest, g->mem, MEM_MAX);
		if (n < 0 || (uint64_t)n != len) {
			reply_error(g, 1);
			return;
		}
	} else if (rest != 2 * len || rsp_hex_decode(p, (size_t)len, g->mem) < 0) {
		reply_error(g, 1);
		return;
	}
	if (len > 0 && g->ops->write_mem(g->t, g->gcpu, addr, g->mem, (size_t)len) < 0) {
		reply_error(g, 14);
		return;
	}
	reply_str(g, "OK");
}

/* Z/z TYPE,ADDR,KIND */
static void handle_break(struct gdb_stub *g, const char *arg, bool insert)
{
	uint64_t type, addr, kind;
	const char *p = arg;
	if (rsp_parse_u64(&p, &type) < 0 || *p++ != ',' || parse_addr_len(&p, &addr, &kind) < 0) {
		reply_error(g, 1);
		return;
	}
	/* conditions and commands (";X...") are not supported: ignored by
	 * not announcing ConditionalBreakpoints; nothing may follow */
	if (*p) {
		reply_error(g, 1);
		return;
	}
	if (type == 0) {
		pthread_mutex_lock(&g->lock);
		int i = bp_find(g, addr);
		int err = 0;
		if (insert && i < 0) {
			uint8_t b;
			if (g->nbps == MAX_SW_BPS)
				err = 0x1c; /* ENOSPC */
			else if (g->ops->read_mem(g->t, g->gcpu, addr, &b, 1) < 0)
				err = 14;
			else
				g->bps[g->nbps++] = (struct sw_bp){.addr = addr, .orig = b};
		} else if (!insert && i >= 0) {
			g->bps[i] = g->bps[--g->nbps];
		}
		pthread_mutex_unlock(&g->lock);
		if (err)
			reply_error(g, err);
		else
			reply_str(g, "OK");
		return;
	}
	uint8_t hwtype;
	switch (type) {
	case 1: hwtype = ZHV_DEBUG_HW_EXEC; kind = 1; break;
	case 2: hwtype = ZHV_DEBUG_HW_WRITE; break;
	case 4: hwtype = ZHV_DEBUG_HW_ACCESS; break;
	default: /* Z3, read watchpoints: x86 has none; GDB then uses Z4 */
		reply_str(g, "");
		return;
	}
	if ((kind != 1 && kind != 2 && kind != 4 && kind != 8) || (addr & (kind - 1))) {
		reply_error(g, 22); /* EINVAL: GDB splits unaligned watches itself */
		return;
	}
	int slot = -1;
	for (int i = 0; i < 4; i++) {
		bool same = g->hw[i].type == hwtype && g->hw[i].addr == addr && g->hw[i].len == kind;
		if (!insert && same) {
			g->hw[i].type = ZHV_DEBUG_HW_OFF;
			reply_str(g, "OK");
			return;
		}
		if (insert && slot < 0 && g->hw[i].type == ZHV_DEBUG_HW_OFF)
			slot = i;
	}
	if (!insert) {
		reply_str(g, "OK");
		return;
	}
	if (slot < 0) {
		reply_error(g, 0x1c); /* all four debug registers taken */
		return;
	}
	g->hw[slot].type = hwtype;
	g->hw[slot].addr = addr;
	g->hw[slot].len = (uint8_t)kind;
	reply_str(g, "OK");
}

/* qXfer:features:read:ANNEX:OFFSET,LENGTH */
static void handle_xfer_features(struct gdb_stub *g, const char *arg)
{
	const char *colon = strchr(arg, ':');
	if (!colon || (size_t)(colon - arg) != strlen("target.xml") ||
	    strncmp(arg, "target.xml", (size_t)(colon - arg)) != 0) {
		reply_str(g, "E00");
		return;
	}
	const char *p = colon + 1;
	uint64_t off, len;
	if (parse_addr_len(&p, &off, &len) < 0 || *p) {
		reply_str(g, "E01");
		return;
	}
	const char *x = g->xml[g->long_mode];
	size_t total = strlen(x);
	if (len > RSP_PACKET_MAX / 2)
		len = RSP_PACKET_MAX / 2; /* escaping may double it */
	if (off >= total) {
		reply_str(g, "l");
		return;
	}
	size_t n = total - (size_t)off < len ? total - (size_t)off : (size_t)len;
	g->reply[0] = off + n < total ? 'm' : 'l';
	memcpy(g->reply + 1, x + off, n);
	send_packet(g, g->reply, n + 1);
}

/* vCont;ACTION[:TID]... Returns false on a malformed one. */
static bool handle_vcont(struct gdb_stub *g, const char *p)
{
	int step = -1;
	while (*p == ';') {
		p++;
		char a = *p++;
		if (a == 'C' || a == 'S') { /* the signal is not delivered: x86 has none to give */
			uint64_t sig;
			if (rsp_parse_u64(&p, &sig) < 0)
				return false;
		} else if (a != 'c' && a != 's' && a != 't') {
			return false;
		}
		int cpu = -2;
		if (*p == ':') {
			char tid[24];
			size_t n = strcspn(p + 1, ";");
			if (n == 0 || n >= sizeof(tid))
				return false;
			memcpy(tid, p + 1, n);
			tid[n] = '\0';
			cpu = parse_tid(g, tid, g->ccpu);
			if (cpu < 0)
				return false;
			p += 1 + n;
		}
		if ((a == 's' || a == 'S') && step < 0)
			step = cpu == -2 ? (int)g->ccpu : cpu;
	}
	if (*p)
		return false;
	do_resume(g, step);
	return true;
}

/* c [ADDR] / s [ADDR]: resume at ADDR if given */
static void handle_cont(struct gdb_stub *g, const char *arg, bool step)
{
	if (*arg) {
		uint64_t addr;
		struct gdb_cpu_state s;
		if (rsp_parse_u64(&arg, &addr) < 0 || *arg ||
		    g->ops->get_state(g->t, g->ccpu, &s) < 0) {
			reply_error(g, 1);
			return;
		}
		s.regs.rip = addr;
		if (g->ops->set_state(g->t, g->ccpu, &s) < 0) {
			reply_error(g, 1);
			return;
		}
	}
	do_resume(g, step ? (int)g->ccpu : -1);
}

static void handle_thread_info(struct gdb_stub *g)
{
	size_t o = 0;
	g->reply[o++] = 'm';
	for (unsigned c = 0; c < g->ncpus; c++)
		o += (size_t)snprintf(g->reply + o, sizeof(g->reply) - o, "%s%x", c ? "," : "", c + 1);
	send_packet(g, g->reply, o);
}

/* Returns false when the session ends (D, k). */
static bool handle_packet(struct gdb_stub *g, char *pkt, size_t len)
{
	char c = pkt[0];
	char *arg = pkt + (len ? 1 : 0);
	if (len == 0) {
		reply_str(g, "");
		return true;
	}
	switch (c) {
	case '?':
		reply_str(g, g->last_stop);
		return true;
	case 'g':
		handle_regs_read(g);
		return true;
	case 'G':
		handle_regs_write(g, arg);
		return true;
	case 'p':
	case 'P':
		handle_reg(g, arg, c == 'P');
		return true;
	case 'm':
		handle_mem_read(g, arg);
		return true;
	case 'M':
	case 'X':
		handle_mem_write(g, arg, len - 1, c == 'X');
		return true;
	case 'Z':
	case 'z':
		handle_break(g, arg, c == 'Z');
		return true;
	case 'c':
	case 's':
		handle_cont(g, arg, c == 's');
		return true;
	case 'C':
	case 'S': { /* signal;addr: the signal is not delivered */
		char *semi = strchr(arg, ';');
		handle_cont(g, semi ? semi + 1 : "", c == 'S');
		return true;
	}
	case 'H': {
		int cpu = (arg[0] == 'g' || arg[0] == 'c') ? parse_tid(g, arg + 1, g->gcpu) : -1;
		if (cpu < 0) {
			reply_error(g, 1);
			return true;
		}
		if (arg[0] == 'g')
			g->gcpu = (unsigned)cpu;
		else
			g->ccpu = (unsigned)cpu;
		reply_str(g, "OK");
		return true;
	}
	case 'T':
		reply_str(g, parse_tid(g, arg, 0) >= 0 && strcmp(arg, "0") && strcmp(arg, "-1") ?
		                     "OK" : "E01");
		return true;
	case 'D':
		reply_str(g, "OK");
		return false;
	case 'k':
		g->killed = true;
		g->ops->kill(g->t);
		return false;
	case 'v':
		if (!strcmp(pkt, "vCont?")) {
			reply_str(g, "vCont;c;C;s;S;t");
		} else if (!strncmp(pkt, "vCont;", 6)) {
			if (!handle_vcont(g, pkt + 5))
				reply_error(g, 1);
		} else if (!strncmp(pkt, "vKill", 5)) {
			reply_str(g, "OK");
			g->killed = true;
			g->ops->kill(g->t);
			return false;
		} else {
			reply_str(g, ""); /* vMustReplyEmpty, vFile, vRun...: not supported */
		}
		return true;
	case 'q':
		if (!strncmp(pkt, "qSupported", 10)) {
			reply_fmt(g, "PacketSize=%x;qXfer:features:read+;vContSupported+;"
			          "swbreak+;hwbreak+", RSP_PACKET_MAX);
		} else if (!strncmp(pkt, "qXfer:features:read:", 20)) {
			handle_xfer_features(g, pkt + 20);
		} else if (!strcmp(pkt, "qfThreadInfo")) {
			handle_thread_info(g);
		} else if (!strcmp(pkt, "qsThreadInfo")) {
			reply_str(g, "l");
		} else if (!strcmp(pkt, "qC")) {
			reply_fmt(g, "QC%x", g->gcpu + 1);
		} else if (!strncmp(pkt, "qAttached", 9)) {
			reply_str(g, "1");
		} else if (!strncmp(pkt, "qSymbol", 7)) {
			reply_str(g, "OK");
		} else if (!strncmp(pkt, "qThreadExtraInfo,", 17)) {
			int cpu = parse_tid(g, pkt + 17, 0);
			char name[32];
			int n = snprintf(name, sizeof(name), "vCPU %d", cpu + 1);
			if (cpu < 0) {
				reply_error(g, 1);
			} else {
				rsp_hex_encode(name, (size_t)n, g->reply);
				send_packet(g, g->reply, 2u * (size_t)n);
			}
		} else {
			reply_str(g, "");
		}
		return true;
	default:
		reply_str(g, "");
		return true;
	}
}

/* ---- the session ---------------------------------------------------------------- */

static bool cpu_long_mode(struct gdb_stub *g, unsigned cpu)
{
	struct gdb_cpu_state s;
	if (g->ops->get_state(g->t, cpu, &s) < 0)
		return false;
	return (s.sregs.efer & (1u << 10)) && s.sregs.cs.l; /* LMA, 64-bit code */
}

/* Bytes from GDB. Returns false when the session ends. */
static bool on_input(struct gdb_stub *g, const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (rsp_rx_byte(&g->rx, buf[i])) {
		case RSP_EV_PACKET:
			send_all(g, "+", 1);
			if (g->running) /* all-stop: nothing but Ctrl-C while running */
				break;
			if (!handle_packet(g, g->rx.buf, g->rx.len))
				return false;
			break;
		case RSP_EV_BAD:
			send_all(g, "-", 1);
			break;
		case RSP_EV_TOO_LONG:
			send_all(g, "+", 1);
			if (!g->running)
				reply_error(g, 1);
			break;
		case RSP_EV_INTERRUPT:
			if (g->running)
				on_running_event(g, true);
			break;
		case RSP_EV_NAK: /* resend the last reply */
			if (g->frame_len)
				send_all(g, g->frame, g->frame_len);
			break;
		case RSP_EV_ACK:
		case RSP_EV_NONE:
			break;
		}
		if (!g->connected)
			return false;
	}
	return true;
}

void gdb_stub_serve(struct gdb_stub *g, int fd)
{
	g->fd = fd;
	g->connected = true;
	g->killed = false;
	g->running = false;
	g->stepover = -1;
	g->gcpu = g->ccpu = 0;
	g->frame_len = 0;
	rsp_rx_init(&g->rx);
	memset(g->hw, 0, sizeof(g->hw));
	memset(g->applied_valid, 0, g->ncpus * sizeof(bool));
	pthread_mutex_lock(&g->lock);
	g->nbps = 0;
	for (unsigned c = 0; c < g->ncpus; c++)
		g->pend[c].valid = false;
	bool ended = g->ended;
	pthread_mutex_unlock(&g->lock);
	/* Held already (--gdb-wait) or not, every vCPU must be parked before
	 * its state can be read: a held vCPU may not have reached its park. */
	if (ended || g->ops->stop_all(g->t) < 0)
		return;
	g->long_mode = cpu_long_mode(g, 0);
	snprintf(g->last_stop, sizeof(g->last_stop), "T05thread:1;");

	bool live = true;
	while (live) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = g->notify[0], .events = POLLIN}};
		int r = poll(p, 2, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (p[1].revents) {
			char drain[64];
			while (read(g->notify[0], drain, sizeof(drain)) > 0)
				;
			pthread_mutex_lock(&g->lock);
			ended = g->ended;
			int status = g->end_status;
			pthread_mutex_unlock(&g->lock);
			if (ended) {
				reply_fmt(g, "W%02x", status & 0xff);
				return; /* the run is over: nothing to give back */
			}
			if (g->running)
				on_running_event(g, false);
		}
		if (p[0].revents) {
			uint8_t buf[4096];
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			live = n > 0 && on_input(g, buf, (size_t)n);
		}
	}
	/* Detach or disconnect: the guest runs on without debugging. After a
	 * kill the run is ending: the vCPUs just leave. */
	if (g->killed || (g->running && g->ops->stop_all(g->t) < 0))
		return;
	unplant_all(g);
	pthread_mutex_lock(&g->lock);
	g->nbps = 0;
	for (unsigned c = 0; c < g->ncpus; c++)
		g->pend[c].valid = false;
	pthread_mutex_unlock(&g->lock);
	memset(g->hw, 0, sizeof(g->hw));
	apply_debug(g, -1, true);
	g->running = false;
	g->ops->resume(g->t, -1);
}
