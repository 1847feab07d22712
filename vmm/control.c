/* control.c: the control socket of zhv run (--control) and zhv ctl. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "exit_status.h"
#include "thread.h"

#define REQ_MAX 4096
#define CLIENT_TIMEOUT_MS 5000

struct control {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd;
	int stop_pipe[2];
	pthread_t thread;
	bool started;
	struct vm *vm;
	struct vcpus *v;
	const struct snapshot_machine *m;
};

static bool fill_addr(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path))
		return false;
	memcpy(a->sun_path, path, strlen(path) + 1);
	return true;
}

struct control *control_create(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un a;
	if (!*path || !fill_addr(&a, path)) {
		snprintf(err, errlen, "--control '%s': a socket path of 1 to %zu bytes is needed",
		         path, sizeof(a.sun_path) - 1);
		return NULL;
	}
	struct control *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->stop_pipe[0] = c->stop_pipe[1] = -1;
	memcpy(c->path, path, strlen(path) + 1);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->listen_fd < 0 || pipe2(c->stop_pipe, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "--control: %s", strerror(errno));
		goto fail;
	}
	if (bind(c->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (errno != EADDRINUSE) {
			snprintf(err, errlen, "--control %s: %s", path, strerror(errno));
			goto fail;
		}
		/* A socket nobody listens on (a zhv that died) is replaced. */
		struct stat st;
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool stale = probe >= 0 && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		             connect(probe, (struct sockaddr *)&a, sizeof(a)) < 0 &&
		             errno == ECONNREFUSED;
		if (probe >= 0)
			close(probe);
		if (!stale) {
			snprintf(err, errlen, "--control %s: in use (another zhv listens there, or it "
			         "is not a socket)", path);
			goto fail;
		}
		unlink(path);
		if (bind(c->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			snprintf(err, errlen, "--control %s: %s", path, strerror(errno));
			goto fail;
		}
	}
	if (listen(c->listen_fd, 8) < 0) {
		snprintf(err, errlen, "--control %s: %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	return c;
fail:
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	if (c->stop_pipe[0] >= 0) {
		close(c->stop_pipe[0]);
		close(c->stop_pipe[1]);
	}
	free(c);
	return NULL;
}

static void reply(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(int fd, const char *fmt, ...)
{
	char buf[1200];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	for (int i = 0; i < n; i++) /* one line */
		if (buf[i] == '\n')
			buf[i] = ' ';
	buf[n++] = '\n';
	for (int off = 0; off < n;) {
		ssize_t w = write(fd, buf + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (int)w;
	}
}

static void handle(struct control *c, int fd, char *req)
{
	struct vm *vm = c->vm;
	if (atomic_load(&vm->exit_kind) != VM_EXIT_NONE) {
		reply(fd, "error the machine is stopping");
		return;
	}
	if (!strcmp(req, "pause")) {
		int r = vcpus_pause(c->v, 5000);
		if (r < 0)
			reply(fd, "error cannot pause: %s", r == -ETIMEDOUT ?
			      "the vCPUs did not stop within 5 s (asleep in ACPI S3?)" : "the run is ending");
		else
			reply(fd, "ok paused");
	} else if (!strcmp(req, "resume")) {
		vcpus_resume(c->v);
		reply(fd, "ok running");
	} else if (!strcmp(req, "stop")) {
		reply(fd, "ok stopping");
		vm_request_exit(vm, VM_EXIT_POWEROFF, 0);
	} else if (!strcmp(req, "info")) {
		reply(fd, "ok %s cpus=%u memory=%" PRIu64 " disks=%zu devices=%u snapshot-version=%u",
		      vcpus_paused(c->v) ? "paused" : "running", vm->ncpus, vm->ram_size,
		      c->m->ndisks, vm->nsnapshots, SNAPSHOT_FORMAT_VERSION);
	} else if (!strncmp(req, "snapshot ", 9) || !strncmp(req, "snapshot-paused ", 16)) {
		bool paused = req[8] == '-';
		const char *dir = req + (paused ? 16 : 9);
		char err[768];
		if (snapshot_take(dir, vm, c->v, c->m, paused, err, sizeof(err)) < 0)
			reply(fd, "error %s", err);
		else
			reply(fd, "ok %s%s", dir, vcpus_paused(c->v) ? " (paused)" : "");
	} else {
		reply(fd, "error unknown request '%.64s' (expected pause, resume, info, stop, "
		      "snapshot PATH or snapshot-paused PATH)", req);
	}
}

/* One request line from (fd) within CLIENT_TIMEOUT_MS; false when the
 * client sent none (or the server is stopping). */
static bool read_request(struct control *c, int fd, char *buf, size_t cap)
{
	size_t n = 0;
	struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = c->stop_pipe[0], .events = POLLIN}};
	while (n < cap - 1) {
		int r = poll(p, 2, CLIENT_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || p[1].revents)
			return false;
		ssize_t got = read(fd, buf + n, cap - 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return false;
		n += (size_t)got;
		char *nl = memchr(buf, '\n', n);
		if (nl) {
			*nl = '\0';
			return true;
		}
	}
	reply(fd, "error request too long (at most %d bytes)", REQ_MAX);
	return false;
}

static void *control_thread(void *arg)
{
	struct control *c = arg;
	pthread_setname_np(pthread_self(), "control");
	struct pollfd p[2] = {{.fd = c->listen_fd, .events = POLLIN},
	                      {.fd = c->stop_pipe[0], .events = POLLIN}};
	static char req[REQ_MAX + 1];
	for (;;) {
		int r = poll(p, 2, -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || p[1].revents)
			break;
		int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (read_request(c, fd, req, sizeof(req)))
			handle(c, fd, req);
		close(fd);
	}
	return NULL;
}

int control_start(struct control *c, struct vm *vm, struct vcpus *v,
                  const struct snapshot_machine *m)
{
	c->vm = vm;
	c->v = v;
	c->m = m;
	int e = vmm_thread_start(&c->thread, 0, control_thread, c);
	if (e < 0)
		return e;
	c->started = true;
	return 0;
}

void control_stop(struct control *c)
{
	if (!c)
		return;
	if (c->started) {
		ssize_t w = write(c->stop_pipe[1], "x", 1);
		(void)w;
		pthread_join(c->thread, NULL);
	}
	close(c->listen_fd);
	close(c->stop_pipe[0]);
	close(c->stop_pipe[1]);
	unlink(c->path);
	free(c);
}

/* ---- zhv ctl ------------------------------------------------------------------ */

static const char ctl_usage[] =
	"Usage: zhv ctl SOCKET COMMAND\n"
	"\n"
	"Control the zhv run started with --control SOCKET. COMMAND is one of:\n"
	"  pause                  stop every vCPU (devices keep their state)\n"
	"  resume                 let paused vCPUs run again\n"
	"  info                   print the machine's state (running or paused),\n"
	"                         vCPUs, memory and disks\n"
	"  stop                   end the run (zhv run exits with status 0)\n"
	"  snapshot [--paused] DIR\n"
	"                         save the machine into directory DIR (replaced\n"
	"                         atomically if it exists), then resume it, or\n"
	"                         leave it paused with --paused\n"
	"\n"
	"Exit status: 0 done, 2 usage error, 8 the request failed (no zhv at\n"
	"SOCKET, or zhv refused it: the message says why).\n";

int control_client(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(ctl_usage, stdout);
		return 0;
	}
	if (argc < 3) {
		fprintf(stderr, "zhv ctl: %s\n%s", argc < 2 ? "missing SOCKET" : "missing COMMAND",
		        ctl_usage);
		return ZHV_EXIT_USAGE;
	}
	const char *sock = argv[1], *cmd = argv[2];
	char req[REQ_MAX + 2];
	bool simple = !strcmp(cmd, "pause") || !strcmp(cmd, "resume") || !strcmp(cmd, "info") ||
	              !strcmp(cmd, "stop");
	if (simple) {
		if (argc != 3) {
			fprintf(stderr, "zhv ctl: %s takes no argument\n", cmd);
			return ZHV_EXIT_USAGE;
		}
		snprintf(req, sizeof(req), "%s\n", cmd);
	} else if (!strcmp(cmd, "snapshot")) {
		bool paused = argc == 5 && !strcmp(argv[3], "--paused");
		if (argc != 4 + paused || !*argv[argc - 1]) {
			fprintf(stderr, "zhv ctl: usage: zhv ctl SOCKET snapshot [--paused] DIR\n");
			return ZHV_EXIT_USAGE;
		}
		const char *dir = argv[argc - 1];
		if (strchr(dir, '\n')) {
			fprintf(stderr, "zhv ctl: snapshot: DIR may not hold a newline\n");
			return ZHV_EXIT_USAGE;
		}
		/* zhv run may run elsewhere: the path goes absolute. */
		char cwd[REQ_MAX];
		if (dir[0] != '/' && !getcwd(cwd, sizeof(cwd))) {
			fprintf(stderr, "zhv ctl: getcwd: %s\n", strerror(errno));
			return ZHV_EXIT_FATAL;
		}
		int n = snprintf(req, sizeof(req), "%s %s%s%s\n", paused ? "snapshot-paused" : "snapshot",
		                 dir[0] == '/' ? "" : cwd, dir[0] == '/' ? "" : "/", dir);
		if (n < 0 || (size_t)n > REQ_MAX) {
			fprintf(stderr, "zhv ctl: snapshot: DIR too long\n");
			return ZHV_EXIT_USAGE;
		}
	} else {
		fprintf(stderr, "zhv ctl: unknown command '%s' (expected pause, resume, info, stop "
		        "or snapshot)\n", cmd);
		return ZHV_EXIT_USAGE;
	}
	struct sockaddr_un a;
	if (!fill_addr(&a, sock)) {
		fprintf(stderr, "zhv ctl: %s: socket path too long\n", sock);
		return ZHV_EXIT_USAGE;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "zhv ctl: cannot reach zhv at %s: %s\n", sock,
		        errno == ECONNREFUSED ? "nobody listens there (zhv has ended?)" : strerror(errno));
		if (fd >= 0)
			close(fd);
		return ZHV_EXIT_FATAL;
	}
	signal(SIGPIPE, SIG_IGN);
	size_t len = strlen(req);
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, req + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "zhv ctl: %s: %s\n", sock, strerror(errno));
			close(fd);
			return ZHV_EXIT_FATAL;
		}
		off += (size_t)w;
	}
	char ans[2048];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, ans + n, sizeof(ans) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(ans, '\n', n) || n == sizeof(ans) - 1)
			break;
	}
	close(fd);
	ans[n] = '\0';
	char *nl = strchr(ans, '\n');
	if (!nl) {
		fprintf(stderr, "zhv ctl: %s: no answer (zhv ended meanwhile?)\n", sock);
		return ZHV_EXIT_FATAL;
	}
	*nl = '\0';
	if (!strncmp(ans, "ok", 2) && (ans[2] == '\0' || ans[2] == ' ')) {
		if (ans[2])
			printf("%s\n", ans + 3);
		return 0;
	}
	fprintf(stderr, "zhv ctl: %s\n", !strncmp(ans, "error ", 6) ? ans + 6 : ans);
	return ZHV_EXIT_FATAL;
}
