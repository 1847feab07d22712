/* sandbox_test: zhv run's seccomp sandbox (vmm/sandbox.c), without KVM.
 *
 * Each case runs in a child process (this program re-executed with
 * "--child CASE", so that no sanitizer minds a fork of a threaded process):
 * the child turns the sandbox on, as zhv run does after set-up, and makes
 * one call. A forbidden call must end the child with status 10 and a
 * message naming the call on stderr; an allowed one must work (exit 0).
 * Sanitizer builds run a wider filter (open and friends allowed, see
 * vmm/sandbox.c): the cases say which outcome they expect there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../vmm/sandbox.c"

#include <poll.h>
#include <spawn.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static const char *self_path;

/* ---- the child's side ------------------------------------------------------ */

static void sandbox_on(void)
{
	char err[256];
	if (sandbox_enable(true, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "sandbox_enable: %s\n", err);
		exit(99);
	}
}

static void *noop_thread(void *arg)
{
	return arg;
}

/* A thread that exists before the sandbox goes on (TSYNC must cover it):
 * it waits for the sandbox, then opens a socket. */
static pthread_mutex_t child_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t child_cond = PTHREAD_COND_INITIALIZER;
static bool child_go;

static void *early_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&child_lock);
	while (!child_go)
		pthread_cond_wait(&child_cond, &child_lock);
	pthread_mutex_unlock(&child_lock);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	fprintf(stderr, "socket on the early thread returned %d\n", fd);
	return NULL;
}

/* A "vCPU" thread: adds the vCPU filter, then closes a descriptor (only
 * the main thread may). */
static int vcpu_close_fd = -1;
static void *vcpu_like_thread(void *arg)
{
	(void)arg;
	if (!sandbox_vcpu_enter(1))
		return (void *)1;
	int r = close(vcpu_close_fd);
	fprintf(stderr, "close on the vCPU thread returned %d\n", r);
	return NULL;
}

/* Threads alive at once, each with its first malloc: glibc gives each a
 * new arena, and past 8 it looks up the CPU count (a file) unless the
 * sandbox fixed the limit beforehand. */
#define ARENA_THREADS 24
static pthread_barrier_t arena_barrier;
static void *volatile arena_blocks[ARENA_THREADS];

static void *arena_thread(void *arg)
{
	size_t i = (size_t)(uintptr_t)arg;
	arena_blocks[i] = malloc(1000);
	pthread_barrier_wait(&arena_barrier);
	free(arena_blocks[i]);
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
}

static int child(const char *c)
{
	if (!strcmp(c, "open")) {
		sandbox_on();
		int fd = open("/dev/null", O_RDONLY);
		fprintf(stderr, "open returned %d\n", fd);
		if (fd >= 0)
			close(fd);
	} else if (!strcmp(c, "tgkill-other")) {
		/* Signals stay within zhv: the filter compares the pid that
		 * sandbox_enable patched into it. */
		pid_t parent = getppid();
		sandbox_on();
		fprintf(stderr, "tgkill returned %ld\n", syscall(SYS_tgkill, parent, parent, 0));
	} else if (!strcmp(c, "control-open")) {
		/* --control's wider VMM filter: the control thread writes
		 * snapshots (open and friends), on the VMM filter only. */
		sandbox_allow_control();
		sandbox_on();
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return 95;
		close(fd);
	} else if (!strcmp(c, "socket")) {
		sandbox_on();
		fprintf(stderr, "socket returned %d\n", socket(AF_UNIX, SOCK_STREAM, 0));
	} else if (!strcmp(c, "execve")) {
		sandbox_on();
		char *argv[] = {(char *)"/bin/true", NULL};
		execve(argv[0], argv, environ);
		fprintf(stderr, "execve returned: %s\n", strerror(errno));
	} else if (!strcmp(c, "fork")) {
		sandbox_on();
		pid_t p = fork();
		if (p == 0)
			_exit(0);
		fprintf(stderr, "fork returned %d\n", (int)p);
	} else if (!strcmp(c, "ptrace")) {
		sandbox_on();
		fprintf(stderr, "ptrace returned %ld\n", ptrace(PTRACE_PEEKDATA, 1, NULL, NULL));
	} else if (!strcmp(c, "ioctl")) {
		sandbox_on();
		fprintf(stderr, "ioctl returned %d\n", ioctl(-1, KVM_CREATE_VM, 0));
	} else if (!strcmp(c, "mmap-exec")) {
		sandbox_on();
		void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		fprintf(stderr, "mmap returned %p\n", p);
	} else if (!strcmp(c, "sigaction-sigsys")) {
		sandbox_on();
		signal(SIGSYS, SIG_IGN);
		fprintf(stderr, "signal(SIGSYS) returned\n");
	} else if (!strcmp(c, "early-thread")) {
		pthread_t t;
		if (pthread_create(&t, NULL, early_thread, NULL) != 0)
			return 98;
		sandbox_on();
		pthread_mutex_lock(&child_lock);
		child_go = true;
		pthread_cond_signal(&child_cond);
		pthread_mutex_unlock(&child_lock);
		pthread_join(t, NULL);
	} else if (!strcmp(c, "main-with-threads")) {
		/* zhv's main thread stopped with its vCPU threads still there
		 * (ThreadSanitizer's _exit would report them). */
		pthread_t t;
		if (pthread_create(&t, NULL, noop_thread, NULL) != 0)
			return 98;
		sandbox_on();
		fprintf(stderr, "socket returned %d\n", socket(AF_UNIX, SOCK_STREAM, 0));
	} else if (!strcmp(c, "vcpu-close")) {
		vcpu_close_fd = dup(STDIN_FILENO);
		pthread_t t;
		if (vcpu_close_fd < 0 || pthread_create(&t, NULL, vcpu_like_thread, NULL) != 0)
			return 98;
		sandbox_on();
		pthread_join(t, NULL);
	} else if (!strcmp(c, "main-close")) {
		int fd = dup(STDIN_FILENO);
		sandbox_on();
		if (close(fd) != 0)
			return 97;
	} else if (!strcmp(c, "allowed")) {
		/* What zhv's threads do at run time, under both filters. */
		int pfd[2];
		if (pipe(pfd) < 0)
			return 98;
		sandbox_on();
		if (!sandbox_vcpu_enter(1))
			return 90;
		void *big = malloc(64 << 20); /* mmap */
		if (!big)
			return 91;
		memset(big, 1, 1 << 20);
		free(big);
		void *small = malloc(100);
		free(small);
		pthread_t t;
		if (pthread_create(&t, NULL, noop_thread, NULL) != 0) /* clone3 -> clone */
			return 92;
		pthread_join(t, NULL);
		if (write(pfd[1], "x", 1) != 1 || read(pfd[0], &(char){0}, 1) != 1)
			return 93;
		struct stat st;
		if (fstat(pfd[0], &st) != 0)
			return 94;
		struct timespec ts = {0, 1000};
		nanosleep(&ts, NULL);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		signal(SIGUSR1, on_usr1); /* rt_sigaction */
		raise(SIGUSR1);           /* tgkill */
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		if (poll(&p, 1, 0) != 0)
			return 95;
		pthread_setname_np(pthread_self(), "allowed");
		/* the RTC's time (glibc reads the time zone on first use) */
		time_t now = time(NULL);
		struct tm tm;
		if (!gmtime_r(&now, &tm) || !localtime_r(&now, &tm))
			return 96;
		/* virtio-rng */
		uint8_t rnd[16];
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return 97;
		pthread_t at[ARENA_THREADS];
		pthread_barrier_init(&arena_barrier, NULL, ARENA_THREADS + 1);
		for (int i = 0; i < ARENA_THREADS; i++)
			if (pthread_create(&at[i], NULL, arena_thread, (void *)(uintptr_t)i) != 0)
				return 98;
		pthread_barrier_wait(&arena_barrier);
		for (int i = 0; i < ARENA_THREADS; i++)
			pthread_join(at[i], NULL);
		printf("all allowed\n");
		fflush(stdout);
	} else if (!strcmp(c, "disabled")) {
		char err[256];
		if (sandbox_enable(false, NULL, err, sizeof(err)) < 0 || !sandbox_vcpu_enter(1))
			return 99;
		int fd = open("/dev/null", O_RDONLY);
		if (fd < 0)
			return 96;
		close(fd);
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		if (s < 0)
			return 96;
		close(s);
	} else {
		return 98;
	}
	return 0;
}

/* ---- the parent's side ------------------------------------------------------- */

struct outcome {
	int status; /* exit status, or 128 + signal */
	char err[4096];
};

static void run_child(const char *c, struct outcome *o)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDERR_FILENO);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	char *argv[] = {(char *)self_path, (char *)"--child", (char *)c, NULL};
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, self_path, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(o->err) - 1 && (r = read(pfd[0], o->err + n, sizeof(o->err) - 1 - n)) > 0)
		n += (size_t)r;
	o->err[n] = '\0';
	close(pfd[0]);
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	o->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* The call must be stopped: status 10, and the message names it. */
static void expect_stopped(const char *c, const char *syscall_name)
{
	struct outcome o;
	run_child(c, &o);
	char want[96];
	snprintf(want, sizeof(want), "zhv: sandbox: forbidden system call %s (number ", syscall_name);
	if (o.status != ZHV_EXIT_SANDBOX || !strstr(o.err, want))
		fail_msg("case %s: status %d (want 10), stderr:\n%s\n(want \"%s\")", c, o.status,
		         o.err, want);
}

static void expect_ok(const char *c)
{
	struct outcome o;
	run_child(c, &o);
	if (o.status != 0)
		fail_msg("case %s: status %d (want 0), stderr:\n%s", c, o.status, o.err);
}

static void test_socket_stopped(void **state)
{
	(void)state;
	expect_stopped("socket", "socket");
}

/* tgkill to another process; sanitizer builds allow any tgkill. */
static void test_tgkill_other_stopped(void **state)
{
	(void)state;
	if (SANDBOX_SANITIZER)
		expect_ok("tgkill-other");
	else
		expect_stopped("tgkill-other", "tgkill");
}

static void test_control_allows_open(void **state)
{
	(void)state;
	expect_ok("control-open");
}

static void test_execve_stopped(void **state)
{
	(void)state;
	expect_stopped("execve", "execve");
}

/* A new process (fork is clone without CLONE_THREAD); sanitizer builds
 * allow that clone for LeakSanitizer's tracer. */
static void test_fork_stopped(void **state)
{
	(void)state;
	if (SANDBOX_SANITIZER)
		expect_ok("fork");
	else
		expect_stopped("fork", "clone");
}

static void test_ptrace_stopped(void **state)
{
	(void)state;
	if (SANDBOX_SANITIZER)
		expect_ok("ptrace");
	else
		expect_stopped("ptrace", "ptrace");
}

static void test_open_stopped(void **state)
{
	(void)state;
	if (SANDBOX_SANITIZER)
		expect_ok("open");
	else
		expect_stopped("open", "openat");
}

/* ioctl is filtered by request: a set-up-only one is stopped, and the
 * message says which. */
static void test_ioctl_request_stopped(void **state)
{
	(void)state;
	struct outcome o;
	run_child("ioctl", &o);
	char want[64];
	snprintf(want, sizeof(want), "forbidden system call ioctl (number %d), request %#lx",
	         SYS_ioctl, (unsigned long)KVM_CREATE_VM);
	if (o.status != ZHV_EXIT_SANDBOX || !strstr(o.err, want))
		fail_msg("status %d, stderr:\n%s\n(want \"%s\")", o.status, o.err, want);
}

static void test_exec_mapping_stopped(void **state)
{
	(void)state;
	expect_stopped("mmap-exec", "mmap");
}

/* ThreadSanitizer interposes sigaction and keeps the application's
 * handlers in its own table: the kernel never sees the change, so the
 * filter cannot either (vmm/sandbox.c says so). */
static void test_sigsys_handler_kept(void **state)
{
	(void)state;
#ifdef __SANITIZE_THREAD__
	expect_ok("sigaction-sigsys");
#else
	expect_stopped("sigaction-sigsys", "rt_sigaction");
#endif
}

/* A thread started before the sandbox is under it too (TSYNC). */
static void test_early_thread_stopped(void **state)
{
	(void)state;
	expect_stopped("early-thread", "socket");
}

/* The main thread stopped while other threads exist: status 10 still
 * (under ThreadSanitizer too). */
static void test_main_stopped_with_threads(void **state)
{
	(void)state;
	expect_stopped("main-with-threads", "socket");
}

/* The vCPU filter is stricter than the VMM filter: close is the main
 * thread's (sanitizer builds allow it everywhere). */
static void test_vcpu_filter_stricter(void **state)
{
	(void)state;
	if (SANDBOX_SANITIZER)
		expect_ok("vcpu-close");
	else
		expect_stopped("vcpu-close", "close");
	expect_ok("main-close");
}

static void test_allowed_calls_work(void **state)
{
	(void)state;
	expect_ok("allowed");
}

static void test_disabled_allows_everything(void **state)
{
	(void)state;
	expect_ok("disabled");
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--child"))
		return child(argv[2]);
	self_path = "/proc/self/exe";
	static char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n > 0) {
		path[n] = '\0';
		self_path = path;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socket_stopped),
		cmocka_unit_test(test_execve_stopped),
		cmocka_unit_test(test_tgkill_other_stopped),
		cmocka_unit_test(test_control_allows_open),
		cmocka_unit_test(test_fork_stopped),
		cmocka_unit_test(test_ptrace_stopped),
		cmocka_unit_test(test_open_stopped),
		cmocka_unit_test(test_ioctl_request_stopped),
		cmocka_unit_test(test_exec_mapping_stopped),
		cmocka_unit_test(test_sigsys_handler_kept),
		cmocka_unit_test(test_early_thread_stopped),
		cmocka_unit_test(test_main_stopped_with_threads),
		cmocka_unit_test(test_vcpu_filter_stricter),
		cmocka_unit_test(test_allowed_calls_work),
		cmocka_unit_test(test_disabled_allows_everything),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
