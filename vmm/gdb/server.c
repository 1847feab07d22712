/* server.c: zhv run --gdb (server.h): the listening socket, the session
 * thread, and the target the session debugs: the VM's vCPUs through
 * vcpus_debug_* (every register and memory access runs on the vCPU's own
 * thread, as libzhv wants). */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gdb/server.h"
#include "gdb/stub.h"
#include "thread.h"

/* stop_all: how long the vCPUs get to leave the guest */
#define STOP_TIMEOUT_MS 10000

struct gdb_server {
	int listen_fd;
	int stop_pipe[2];
	char where[96];
	bool wait;
	struct vm *vm;
	struct vcpus *v;
	struct gdb_stub *stub;
	pthread_t thread;
	bool started;
};

/* ---- the target: the VM's vCPUs ----------------------------------------------- */

struct state_req {
	struct gdb_cpu_state *st;
	bool write;
	int ret;
};

static void state_on_vcpu(zhv_vcpu_t *vcpu, void *arg)
{
	struct state_req *r = arg;
	zhv_vcpu_sregs_t sregs;
	zhv_vcpu_fpu_t fpu_image, *fpu = &fpu_image; /* 4 KiB: a vCPU thread's stack has room */
	r->ret = -EIO;
	bool have_fpu = zhv_vcpu_read_state(vcpu, ZHV_VCPU_FPU, fpu, sizeof(*fpu)) == ZHV_OK;
	if (!r->write) {
		if (zhv_vcpu_read_state(vcpu, ZHV_VCPU_REGS, &r->st->regs, sizeof(r->st->regs)) != ZHV_OK ||
		    zhv_vcpu_read_state(vcpu, ZHV_VCPU_SREGS, &r->st->sregs, sizeof(r->st->sregs)) != ZHV_OK)
			return;
		if (have_fpu)
			memcpy(r->st->fx, fpu->xsave, sizeof(r->st->fx));
		else
			memset(r->st->fx, 0, sizeof(r->st->fx));
		r->ret = 0;
		return;
	}
	/* Write back only what changed (the segment and FPU state are
	 * written whole). */
	if (zhv_vcpu_write_state(vcpu, ZHV_VCPU_REGS, &r->st->regs, sizeof(r->st->regs)) != ZHV_OK ||
	    zhv_vcpu_read_state(vcpu, ZHV_VCPU_SREGS, &sregs, sizeof(sregs)) != ZHV_OK)
		return;
	if (memcmp(&sregs, &r->st->sregs, sizeof(sregs)) != 0 &&
	    zhv_vcpu_write_state(vcpu, ZHV_VCPU_SREGS, &r->st->sregs, sizeof(sregs)) != ZHV_OK)
		return;
	if (have_fpu && memcmp(fpu->xsave, r->st->fx, sizeof(r->st->fx)) != 0) {
		memcpy(fpu->xsave, r->st->fx, sizeof(r->st->fx));
		if (zhv_vcpu_write_state(vcpu, ZHV_VCPU_FPU, fpu, sizeof(*fpu)) != ZHV_OK)
			return;
	}
	r->ret = 0;
}

struct mem_req {
	uint64_t gva;
	void *buf;
	size_t n;
	bool write;
	int ret;
};

static void mem_on_vcpu(zhv_vcpu_t *vcpu, void *arg)
{
	struct mem_req *r = arg;
	zhv_status_t st = r->write ? zhv_vcpu_write_virt(vcpu, r->gva, r->buf, r->n)
	                           : zhv_vcpu_read_virt(vcpu, r->gva, r->buf, r->n);
	r->ret = st == ZHV_OK ? 0 : st == ZHV_ERR_NOT_FOUND || st == ZHV_ERR_OUT_OF_RANGE ? -EFAULT
	                                                                                  : -EIO;
}

struct debug_req {
	const zhv_vcpu_debug_t *d;
	int ret;
};

static void debug_on_vcpu(zhv_vcpu_t *vcpu, void *arg)
{
	struct debug_req *r = arg;
	zhv_status_t st = zhv_vcpu_set_debug(vcpu, r->d);
	r->ret = st == ZHV_OK ? 0 : st == ZHV_ERR_NOT_SUPPORTED ? -ENOTSUP : -EINVAL;
}

static int t_call(struct gdb_server *s, unsigned cpu, void (*fn)(zhv_vcpu_t *, void *), void *arg,
                  int *ret)
{
	int r = vcpus_debug_call(s->v, cpu, fn, arg);
	return r < 0 ? r : *ret;
}

static int t_get_state(void *t, unsigned cpu, struct gdb_cpu_state *st)
{
	struct state_req r = {.st = st, .write = false};
	return t_call(t, cpu, state_on_vcpu, &r, &r.ret);
}

static int t_set_state(void *t, unsigned cpu, const struct gdb_cpu_state *st)
{
	struct state_req r = {.st = (struct gdb_cpu_state *)st, .write = true};
	return t_call(t, cpu, state_on_vcpu, &r, &r.ret);
}

static int t_read_mem(void *t, unsigned cpu, uint64_t gva, void *buf, size_t n)
{
	struct mem_req r = {.gva = gva, .buf = buf, .n = n};
	return t_call(t, cpu, mem_on_vcpu, &r, &r.ret);
}

static int t_write_mem(void *t, unsigned cpu, uint64_t gva, const void *buf, size_t n)
{
	struct mem_req r = {.gva = gva, .buf = (void *)buf, .n = n, .write = true};
	return t_call(t, cpu, mem_on_vcpu, &r, &r.ret);
}

static int t_set_debug(void *t, unsigned cpu, const zhv_vcpu_debug_t *d)
{
	struct debug_req r = {.d = d};
	return t_call(t, cpu, debug_on_vcpu, &r, &r.ret);
}

static int t_stop_all(void *t)
{
	struct gdb_server *s = t;
	vcpus_debug_hold(s->v);
	int r = vcpus_debug_wait(s->v, STOP_TIMEOUT_MS);
	if (r == -ETIMEDOUT) {
		fprintf(stderr, "zhv: gdb: the vCPUs did not stop within %d s (asleep in ACPI S3?); "
		        "they run on\n", STOP_TIMEOUT_MS / 1000);
		vcpus_debug_release(s->v, -1); /* none stays held for a stop that failed */
	}
	return r;
}

static void t_resume(void *t, int only)
{
	struct gdb_server *s = t;
	vcpus_debug_release(s->v, only);
}

static void t_kill(void *t)
{
	struct gdb_server *s = t;
	fprintf(stderr, "zhv: gdb: killed by the debugger\n");
	vm_request_exit(s->vm, VM_EXIT_POWEROFF, 0);
}

static const struct gdb_target_ops vcpu_target = {
	.get_state = t_get_state,
	.set_state = t_set_state,
	.read_mem = t_read_mem,
	.write_mem = t_write_mem,
	.set_debug = t_set_debug,
	.stop_all = t_stop_all,
	.resume = t_resume,
	.kill = t_kill,
};

/* The vCPU thread's hook: its debug stop goes to the session. */
static bool on_debug(void *ctx, unsigned index, zhv_vcpu_t *vcpu, const zhv_packet_guest_debug_t *d)
{
	struct gdb_server *s = ctx;
	switch (gdb_stub_on_stop(s->stub, index, d)) {
	case GDB_STOP_PARK:
		return true;
	case GDB_STOP_REINJECT:
		if (zhv_vcpu_interrupt(vcpu, 3) != ZHV_OK)
			fprintf(stderr, "zhv: gdb: vCPU %u: cannot give the guest its #BP\n", index + 1);
		return false;
	case GDB_STOP_IGNORE:
		break;
	}
	return false;
}

/* ---- the socket and the thread ------------------------------------------------- */

struct gdb_server *gdb_server_create(const char *spec, bool *usage, char *err, size_t errlen)
{
	*usage = true;
	if (strncmp(spec, "tcp:", 4) != 0) {
		snprintf(err, errlen, "--gdb '%s': expected tcp:HOST:PORT", spec);
		return NULL;
	}
	char host[64] = "127.0.0.1";
	const char *rest = spec + 4, *colon = strrchr(rest, ':');
	const char *p = colon ? colon + 1 : rest;
	if (colon) {
		size_t hl = (size_t)(colon - rest);
		if (hl >= 2 && rest[0] == '[' && rest[hl - 1] == ']') {
			rest++;
			hl -= 2;
		}
		if (hl >= sizeof(host)) {
			snprintf(err, errlen, "--gdb '%s': host name too long", spec);
			return NULL;
		}
		if (hl > 0) {
			memcpy(host, rest, hl);
			host[hl] = '\0';
		}
	}
	char *end;
	errno = 0;
	unsigned long pn = strtoul(p, &end, 10);
	if (!*p || *end || errno || pn > 65535 || strlen(p) > 5) {
		snprintf(err, errlen, "--gdb '%s': expected a port number 0..65535", spec);
		return NULL;
	}
	/* A numeric address (or "localhost"): zhv is linked statically, and a
	 * name service would load shared libraries of the C library. */
	struct sockaddr_storage bind_sa;
	memset(&bind_sa, 0, sizeof(bind_sa));
	socklen_t bind_len;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&bind_sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&bind_sa;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)pn);
		bind_len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)pn);
		bind_len = sizeof(*in6);
	} else {
		snprintf(err, errlen, "--gdb '%s': HOST must be a numeric IPv4 or IPv6 address "
		         "(or localhost)", spec);
		return NULL;
	}
	*usage = false;
	struct gdb_server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->listen_fd = -1;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	int fd = socket(bind_sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    /* accepted connections inherit it: packets go out at once */
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&bind_sa, bind_len) < 0 || listen(fd, 1) < 0) {
		snprintf(err, errlen, "--gdb %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(s);
		return NULL;
	}
	s->listen_fd = fd;
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	char h[INET6_ADDRSTRLEN] = "?";
	unsigned lport = 0;
	if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0) {
		if (sa.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&sa;
			inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
			lport = ntohs(a->sin6_port);
		} else {
			const struct sockaddr_in *a = (const struct sockaddr_in *)&sa;
			inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
			lport = ntohs(a->sin_port);
		}
	}
	snprintf(s->where, sizeof(s->where), sa.ss_family == AF_INET6 ? "tcp:[%s]:%u" : "tcp:%s:%u",
	         h, lport);
	if (pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "--gdb: pipe: %s", strerror(errno));
		close(fd);
		free(s);
		return NULL;
	}
	return s;
}

int gdb_server_attach(struct gdb_server *s, struct vm *vm, struct vcpus *v, bool wait)
{
	s->vm = vm;
	s->v = v;
	s->wait = wait;
	s->stub = gdb_stub_create(&vcpu_target, s, vm->ncpus);
	if (!s->stub)
		return -ENOMEM;
	vcpus_debug_init(v, on_debug, s, wait);
	return 0;
}

static void *server_thread(void *arg)
{
	struct gdb_server *s = arg;
	pthread_setname_np(pthread_self(), "gdb");
	for (;;) {
		struct pollfd p[2] = {{.fd = s->listen_fd, .events = POLLIN},
		                      {.fd = s->stop_pipe[0], .events = POLLIN}};
		int r = poll(p, 2, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || p[1].revents)
			break;
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		fprintf(stderr, "zhv: gdb: debugger attached\n");
		gdb_stub_serve(s->stub, fd);
		close(fd);
		if (atomic_load(&s->vm->exit_kind) != VM_EXIT_NONE)
			break;
		fprintf(stderr, "zhv: gdb: debugger detached; the guest runs on\n");
	}
	return NULL;
}

int gdb_server_start(struct gdb_server *s)
{
	fprintf(stderr, "zhv: gdb: listening on %s%s\n", s->where,
	        s->wait ? " (the guest waits for GDB to attach)" : "");
	int e = vmm_thread_start(&s->thread, 0, server_thread, s);
	if (e < 0)
		return e;
	s->started = true;
	return 0;
}

void gdb_server_stop(struct gdb_server *s, int status)
{
	if (!s)
		return;
	if (s->stub)
		gdb_stub_end(s->stub, status);
	if (s->started) {
		char c = 1;
		ssize_t w = write(s->stop_pipe[1], &c, 1);
		(void)w;
		pthread_join(s->thread, NULL);
	}
	gdb_stub_destroy(s->stub);
	close(s->listen_fd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	free(s);
}
