/* sandbox.c: zhv run's seccomp sandbox (sandbox.h says what it does).
 *
 * The allowlists below were learnt by running the end-to-end suite
 * (tests/vmm/NAME.sh) under `strace -f` on a real KVM, and by reading what
 * glibc does under the hood: malloc (brk, mmap, munmap, mremap, madvise),
 * pthread_create (mmap and mprotect for the stack, clone, set_robust_list,
 * rseq), mutexes and condition variables (futex), sleeps and clocks, stdio
 * (write, and fstat the first time a FILE writes), raise() and the kick of
 * a vCPU (getpid, gettid, tgkill, rt_sigprocmask).
 *
 * A forbidden call raises SIGSYS (SECCOMP_RET_TRAP); the handler writes a
 * message naming the call with write(2) and exits with ZHV_EXIT_SANDBOX.
 * Nobody can take SIGSYS away from that handler: rt_sigaction(SIGSYS, ...)
 * is itself forbidden, and a thread that had SIGSYS blocked would still be
 * killed (the kernel unblocks a seccomp SIGSYS, with the default action:
 * killed by signal 31 instead of the message). zhv blocks only chosen
 * signals (termination signals, libzhv's kick signal), never SIGSYS;
 * sandbox_vcpu_enter unblocks it on vCPU threads all the same.
 *
 * Test hook: ZHV_SANDBOX_SELFTEST=CALL (or main:CALL) in the environment
 * makes vCPU 1 (or the main thread), once its filters are on, make one
 * forbidden call: open, socket, execve, ptrace, ioctl (KVM_CREATE_VM, a
 * set-up-only request) or mprotect-exec. tests/vmm/sandbox.sh checks that
 * each one ends the run with status 10 and a message naming it, and that
 * under --no-sandbox it returns and the guest runs on. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <malloc.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "exit_status.h"
#include "zhv.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANDBOX_SANITIZER 1
#else
#define SANDBOX_SANITIZER 0
#endif

/* ---- the gate the vCPU threads wait at -------------------------------------- */

enum gate { GATE_WAIT, GATE_OPEN_SANDBOXED, GATE_OPEN_PLAIN, GATE_ABORT };

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static enum gate gate_state = GATE_WAIT;

/* The vCPU filter, built by the main thread (libseccomp allocates and may
 * probe the kernel: not a thing to do under the VMM filter), loaded by
 * each vCPU thread with one seccomp(2) call. */
static struct sock_fprog vcpu_prog;

/* ---- the SIGSYS handler -------------------------------------------------------- */

/* Syscall names, resolved before the filter goes on (the handler may only
 * use async-signal-safe calls, and libseccomp's resolver allocates). */
#define NAMES_MAX 512
#define NAME_LEN 24
static char syscall_names[NAMES_MAX][NAME_LEN];
static void (*violation_hook)(void);

static void resolve_names(void)
{
	for (int nr = 0; nr < NAMES_MAX; nr++) {
		char *n = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		if (n) {
			snprintf(syscall_names[nr], NAME_LEN, "%s", n);
			free(n);
		}
	}
}

struct msg {
	char buf[320];
	size_t len;
};

static void put(struct msg *m, const char *s)
{
	while (*s && m->len < sizeof(m->buf) - 1)
		m->buf[m->len++] = *s++;
}

static void put_num(struct msg *m, unsigned long long v, unsigned base)
{
	char tmp[24];
	int i = (int)sizeof(tmp) - 1;
	tmp[i] = '\0';
	do {
		tmp[--i] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && i > 0);
	if (base == 16)
		put(m, "0x");
	put(m, &tmp[i]);
}

static void on_sigsys(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	if (violation_hook)
		violation_hook();
	int nr = si->si_syscall;
	struct msg m = {.len = 0};
	put(&m, "\nzhv: sandbox: forbidden system call ");
	if (nr >= 0 && nr < NAMES_MAX && syscall_names[nr][0])
		put(&m, syscall_names[nr]);
	else
		put(&m, "?");
	put(&m, " (number ");
	put_num(&m, (unsigned long long)(unsigned)nr, 10);
	put(&m, ")");
	const ucontext_t *uc = ucv;
	if (uc && nr == SYS_ioctl) {
		put(&m, ", request ");
		put_num(&m, (unsigned long long)uc->uc_mcontext.gregs[REG_RSI] & 0xffffffffull, 16);
	}
	char name[17] = "";
	if (prctl(PR_GET_NAME, name) == 0 && name[0]) {
		put(&m, ", on thread '");
		put(&m, name);
		put(&m, "'");
	}
	put(&m, "; stopping (zhv run --no-sandbox turns the sandbox off)\n");
	ssize_t r = write(STDERR_FILENO, m.buf, m.len);
	(void)r;
	/* _exit(), as the system call itself: ThreadSanitizer intercepts
	 * _exit() and would report on the threads the process leaves behind
	 * (and change the status). */
	syscall(SYS_exit_group, ZHV_EXIT_SANDBOX);
	_exit(ZHV_EXIT_SANDBOX);
}

/* ---- the filters ------------------------------------------------------------------ */

enum filter_kind { FILTER_VMM, FILTER_VCPU };

/* zhv run --control: sandbox_allow_control() */
static bool control_allowed;

void sandbox_allow_control(void)
{
	control_allowed = true;
}

/* Calls every thread may make, with any arguments. */
static const int allowed[] = {
	/* I/O on descriptors opened during set-up: disks, the TAP device, the
	 * terminal and serial file, the wake-up and stop pipes */
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(preadv), SCMP_SYS(pwritev),
	SCMP_SYS(preadv2), SCMP_SYS(pwritev2), SCMP_SYS(lseek), SCMP_SYS(fsync),
	SCMP_SYS(fdatasync), SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(fstat),
	/* virtio-rng's entropy */
	SCMP_SYS(getrandom),
	/* memory: malloc, thread stacks (mmap and mprotect: below) */
	SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
	/* threads, locks, time */
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(sched_yield),
	SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep), SCMP_SYS(clock_gettime),
	SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday), SCMP_SYS(getpid), SCMP_SYS(gettid),
	/* signals: the kick signal, termination signals, SIGSYS's own return */
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigtimedwait),
	SCMP_SYS(restart_syscall),
	SCMP_SYS(exit), SCMP_SYS(exit_group),
};

/* ioctl requests made after set-up. */
static const unsigned long allowed_ioctls[] = {
	/* a vCPU's enter, exit path, kick, interrupt injection and state */
	KVM_RUN, KVM_GET_REGS, KVM_SET_REGS, KVM_GET_SREGS, KVM_SET_SREGS, KVM_GET_MSRS,
	KVM_SET_MSRS, KVM_GET_LAPIC, KVM_SET_LAPIC, KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS,
	KVM_GET_MP_STATE, KVM_SET_MP_STATE, KVM_GET_XCRS, KVM_SET_XCRS, KVM_GET_XSAVE,
	KVM_SET_XSAVE, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, KVM_NMI, KVM_SET_SIGNAL_MASK,
	KVM_SET_CPUID2, KVM_GET_MSR_INDEX_LIST,
	/* the VM: MSIs, IOAPIC routes, trap changes (a PCI BAR moved) */
	KVM_SIGNAL_MSI, KVM_IRQ_LINE, KVM_SET_GSI_ROUTING, KVM_SET_USER_MEMORY_REGION,
	/* the terminal: isatty, and restoring it at exit or on a crash */
	TCGETS, TCSETS, TCSETSW, TCSETSF,
};

#define RULE(ctx, action, name, ...)                                                   \
	do {                                                                           \
		int rc_ = seccomp_rule_add((ctx), (action), SCMP_SYS(name), __VA_ARGS__); \
		if (rc_ < 0) {                                                         \
			snprintf(err, errlen, "seccomp rule for %s: %s", #name,         \
			         strerror(-rc_));                                       \
			goto fail;                                                     \
		}                                                                      \
	} while (0)

static scmp_filter_ctx build_filter(enum filter_kind kind, char *err, size_t errlen)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx) {
		snprintf(err, errlen, "seccomp_init failed");
		return NULL;
	}
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
		if (rc < 0) {
			snprintf(err, errlen, "seccomp rule for system call %d: %s", allowed[i],
			         strerror(-rc));
			goto fail;
		}
	}
	/* A vCPU's hot path first: ioctl (KVM_RUN), then the kick's calls. */
	seccomp_syscall_priority(ctx, SCMP_SYS(ioctl), 255);
	seccomp_syscall_priority(ctx, SCMP_SYS(rt_sigprocmask), 254);
	seccomp_syscall_priority(ctx, SCMP_SYS(futex), 253);
	for (size_t i = 0; i < sizeof(allowed_ioctls) / sizeof(allowed_ioctls[0]); i++)
		RULE(ctx, SCMP_ACT_ALLOW, ioctl, 1,
		     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffull, (scmp_datum_t)allowed_ioctls[i]));

	/* No executable mappings: libzhv's one lazily loaded library (Zydis)
	 * is loaded before the sandbox (zhv_preload). */
	RULE(ctx, SCMP_ACT_ALLOW, mmap, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	RULE(ctx, SCMP_ACT_ALLOW, mprotect, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* Threads only (CLONE_THREAD implies CLONE_SIGHAND and CLONE_VM): no
	 * new process. clone3's flags are in memory a filter cannot read: it
	 * fails with ENOSYS, and glibc falls back to clone. */
	RULE(ctx, SCMP_ACT_ALLOW, clone, 1,
	     SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	RULE(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3, 0);
	/* Signals go to zhv's own threads only (the kick, raise()). */
	RULE(ctx, SCMP_ACT_ALLOW, tgkill, 1,
	     SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffull, (scmp_datum_t)getpid()));
	/* Any handler but SIGSYS's, which must stay ours (the kernel reads
	 * an int: compare the low 32 bits only). */
	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGSYS)
			RULE(ctx, SCMP_ACT_ALLOW, rt_sigaction, 1,
			     SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffull, (scmp_datum_t)sig));
	/* fstat() of a FILE's descriptor (glibc: newfstatat(fd, "", AT_EMPTY_PATH)) */
	RULE(ctx, SCMP_ACT_ALLOW, newfstatat, 1,
	     SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH));
	/* A thread names itself; the SIGSYS message names the thread. */
	RULE(ctx, SCMP_ACT_ALLOW, prctl, 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
	RULE(ctx, SCMP_ACT_ALLOW, prctl, 1, SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME));
	/* Console output to a socket (vmm/dev/outq.c: send(MSG_DONTWAIT), i.e.
	 * sendto without an address): on its connected socket only. */
	RULE(ctx, SCMP_ACT_ALLOW, sendto, 1, SCMP_A4(SCMP_CMP_EQ, 0));
	RULE(ctx, SCMP_ACT_ALLOW, fcntl, 1, SCMP_A1(SCMP_CMP_EQ, F_GETFL));
	RULE(ctx, SCMP_ACT_ALLOW, fcntl, 1, SCMP_A1(SCMP_CMP_EQ, F_GETFD));

	if (kind == FILTER_VMM) {
		/* virtio-blk's device and completion threads submit and reap
		 * disk I/O on the io_uring each disk set up before the sandbox
		 * (vmm/dev/virtio_blk.c): io_uring_enter only (no
		 * io_uring_setup: no new ring; no io_uring_register). Not on
		 * vCPU threads, whose filter leaves it out. The operations
		 * run in the kernel on descriptors already open. */
		RULE(ctx, SCMP_ACT_ALLOW, io_uring_enter, 0);
		/* The main thread closes the vCPUs' descriptors at shutdown. */
		RULE(ctx, SCMP_ACT_ALLOW, close, 0);
		/* vCPU threads add their own filter on top (filters only ever
		 * take rights away). */
		RULE(ctx, SCMP_ACT_ALLOW, seccomp, 1,
		     SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER));
	}
	if (kind == FILTER_VMM && control_allowed) {
		/* --control only (vmm/control.c, snapshot_dir.c), on the VMM
		 * filter alone (vCPU threads keep theirs): the control thread
		 * accepts connections on its listening socket (no new socket
		 * can be made: socket stays forbidden), and "snapshot DIR"
		 * creates a directory beside DIR, writes and syncs its files
		 * (the memory file sparse: ftruncate to its size),
		 * renames it into place (swapping with an old snapshot),
		 * removes the old one and syncs the parent; the socket's file
		 * goes at the end. The guest's clock is read with the vCPUs
		 * paused. */
		RULE(ctx, SCMP_ACT_ALLOW, accept4, 0);
		RULE(ctx, SCMP_ACT_ALLOW, accept, 0);
		RULE(ctx, SCMP_ACT_ALLOW, open, 0);
		RULE(ctx, SCMP_ACT_ALLOW, openat, 0);
		RULE(ctx, SCMP_ACT_ALLOW, mkdir, 0);
		RULE(ctx, SCMP_ACT_ALLOW, mkdirat, 0);
		RULE(ctx, SCMP_ACT_ALLOW, rename, 0);
		RULE(ctx, SCMP_ACT_ALLOW, renameat, 0);
		RULE(ctx, SCMP_ACT_ALLOW, renameat2, 0);
		RULE(ctx, SCMP_ACT_ALLOW, unlink, 0);
		RULE(ctx, SCMP_ACT_ALLOW, unlinkat, 0);
		RULE(ctx, SCMP_ACT_ALLOW, rmdir, 0);
		RULE(ctx, SCMP_ACT_ALLOW, ftruncate, 0); /* a sparse memory file */
		RULE(ctx, SCMP_ACT_ALLOW, ioctl, 1,
		     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffull, (scmp_datum_t)KVM_GET_CLOCK));
	}

#if SANDBOX_SANITIZER
	/* Sanitizer builds (make sanitize, make tsan) run a wider filter:
	 * - their reports open files (log_path) and read /proc/self/maps and
	 *   the binary to symbolize: open, openat, readlink, stat, any fstatat,
	 *   fcntl, close on every thread;
	 * - LeakSanitizer stops the world at exit: a tracer task made with
	 *   clone(CLONE_VM | CLONE_UNTRACED, no CLONE_THREAD) ptrace()s every
	 *   thread, found in /proc/self/task (getdents), and the main thread
	 *   waits for it (wait4, prctl(PR_SET_PTRACER), sigaltstack, getppid,
	 *   kill). The tracer runs with every signal blocked but the
	 *   synchronous ones, SIGSYS included: a call it may not make kills
	 *   it silently and the main thread then waits for ever, so its
	 *   calls must all be here;
	 * - ThreadSanitizer's background thread (started before main, so
	 *   under the VMM filter too) only sleeps and reads clocks. TSan
	 *   interposes sigaction and keeps handlers in a table of its own:
	 *   under TSan a change of SIGSYS's handler never reaches the kernel,
	 *   and the filter cannot refuse it;
	 * - a report's memory dump checks memory through a pipe, and the
	 *   external symbolizer would start through pipe, fork and execve:
	 *   pipe fails instead (below; see there).
	 * execve, socket and executable mappings stay forbidden. */
	RULE(ctx, SCMP_ACT_ALLOW, open, 0);
	RULE(ctx, SCMP_ACT_ALLOW, openat, 0);
	RULE(ctx, SCMP_ACT_ALLOW, readlink, 0);
	RULE(ctx, SCMP_ACT_ALLOW, readlinkat, 0);
	RULE(ctx, SCMP_ACT_ALLOW, stat, 0);
	RULE(ctx, SCMP_ACT_ALLOW, lstat, 0);
	RULE(ctx, SCMP_ACT_ALLOW, newfstatat, 0);
	RULE(ctx, SCMP_ACT_ALLOW, getdents, 0);
	RULE(ctx, SCMP_ACT_ALLOW, getdents64, 0);
	RULE(ctx, SCMP_ACT_ALLOW, fcntl, 0);
	RULE(ctx, SCMP_ACT_ALLOW, getrlimit, 0);
	RULE(ctx, SCMP_ACT_ALLOW, prlimit64, 0);
	RULE(ctx, SCMP_ACT_ALLOW, sched_getaffinity, 0);
	if (kind == FILTER_VCPU)
		RULE(ctx, SCMP_ACT_ALLOW, close, 0);
	RULE(ctx, SCMP_ACT_ALLOW, clone, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
	RULE(ctx, SCMP_ACT_ALLOW, ptrace, 0);
	RULE(ctx, SCMP_ACT_ALLOW, wait4, 0);
	RULE(ctx, SCMP_ACT_ALLOW, waitid, 0);
	RULE(ctx, SCMP_ACT_ALLOW, prctl, 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_PTRACER));
	RULE(ctx, SCMP_ACT_ALLOW, prctl, 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_PDEATHSIG));
	RULE(ctx, SCMP_ACT_ALLOW, prctl, 1, SCMP_A0(SCMP_CMP_EQ, PR_GET_DUMPABLE));
	RULE(ctx, SCMP_ACT_ALLOW, prctl, 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_DUMPABLE));
	RULE(ctx, SCMP_ACT_ALLOW, sigaltstack, 0);
	RULE(ctx, SCMP_ACT_ALLOW, getppid, 0);
	RULE(ctx, SCMP_ACT_ALLOW, kill, 0);
	/* The external symbolizer (addr2line) would be started through a
	 * pipe, fork and execve: the pipe fails instead, and reports show
	 * frames as module+offset (addr2line -e BINARY OFFSET turns them
	 * into lines). */
	RULE(ctx, SCMP_ACT_ERRNO(EPERM), pipe2, 0);
	RULE(ctx, SCMP_ACT_ERRNO(EPERM), pipe, 0);
	RULE(ctx, SCMP_ACT_ALLOW, tgkill, 0);
#endif
	return ctx;
fail:
	seccomp_release(ctx);
	return NULL;
}

/* The vCPU filter as a BPF program, exported through a memfd. */
static int export_vcpu_filter(char *err, size_t errlen)
{
	scmp_filter_ctx ctx = build_filter(FILTER_VCPU, err, errlen);
	if (!ctx)
		return -1;
	int ret = -1;
	int fd = memfd_create("zhv-vcpu-filter", MFD_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		goto out;
	}
	int rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp_export_bpf: %s", strerror(-rc));
		goto out;
	}
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) ||
	    size / (off_t)sizeof(struct sock_filter) > 0xffff) {
		snprintf(err, errlen, "the vCPU filter has a bad size (%lld bytes)", (long long)size);
		goto out;
	}
	struct sock_filter *insns = malloc((size_t)size);
	if (!insns) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (pread(fd, insns, (size_t)size, 0) != (ssize_t)size) {
		snprintf(err, errlen, "reading the vCPU filter back: %s", strerror(errno));
		free(insns);
		goto out;
	}
	vcpu_prog.len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
	vcpu_prog.filter = insns; /* lives as long as the process */
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return ret;
}

/* ---- the self-test hook ------------------------------------------------------------ */

static const char *selftest_call;
static bool selftest_on_main;

static void selftest_run(const char *who)
{
	const char *c = selftest_call;
	long r;
	int fd = -1;
	if (!strcmp(c, "open")) {
		r = fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	} else if (!strcmp(c, "socket")) {
		r = fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	} else if (!strcmp(c, "execve")) {
		char *argv[] = {(char *)"/nonexistent/zhv-sandbox-selftest", NULL};
		r = execve(argv[0], argv, environ);
	} else if (!strcmp(c, "ptrace")) {
		r = ptrace(PTRACE_PEEKDATA, 1, NULL, NULL);
	} else if (!strcmp(c, "ioctl")) {
		r = ioctl(-1, KVM_CREATE_VM, 0);
	} else if (!strcmp(c, "mprotect-exec")) {
		static char page[4096] __attribute__((aligned(4096)));
		r = mprotect(page, sizeof(page), PROT_READ | PROT_EXEC);
		if (r == 0)
			mprotect(page, sizeof(page), PROT_READ | PROT_WRITE);
	} else {
		fprintf(stderr, "zhv: ZHV_SANDBOX_SELFTEST=%s: unknown call\n", c);
		return;
	}
	int e = errno;
	fprintf(stderr, "zhv: sandbox self-test on %s: %s returned %ld%s%s\n", who, c, r,
	        r < 0 ? ": " : "", r < 0 ? strerror(e) : "");
	if (fd >= 0)
		close(fd);
}

/* ---- entry points ------------------------------------------------------------------- */

static void open_gate(enum gate g)
{
	pthread_mutex_lock(&gate_lock);
	gate_state = g;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

int sandbox_enable(bool on, void (*on_violation)(void), char *err, size_t errlen)
{
	const char *t = getenv("ZHV_SANDBOX_SELFTEST");
	if (t && *t) {
		selftest_on_main = strncmp(t, "main:", 5) == 0;
		selftest_call = selftest_on_main ? t + 5 : t;
	}
	if (!on) {
		open_gate(GATE_OPEN_PLAIN);
		if (selftest_call && selftest_on_main)
			selftest_run("the main thread");
		return 0;
	}
	/* Everything that would open a file later happens now:
	 * - libzhv's lazily loaded decoder (Zydis);
	 * - glibc reads /etc/localtime on the first gmtime_r or localtime_r
	 *   (the RTC's first read of the time);
	 * - glibc's malloc reads /sys/devices/system/cpu/online when a new
	 *   thread wants a 9th arena: fix its limit now, at glibc's own
	 *   default (8 per CPU). */
	if (zhv_preload() != ZHV_OK)
		fprintf(stderr, "zhv: warning: the instruction decoder (Zydis) could not be "
		                "loaded; MEM exits and crash reports go without it\n");
	tzset();
	long ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	mallopt(M_ARENA_MAX, (int)(8 * (ncpus > 0 && ncpus < 4096 ? ncpus : 1)));
	resolve_names();
	violation_hook = on_violation;

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	sigset_t sys;
	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	if (sigaction(SIGSYS, &sa, NULL) < 0 || pthread_sigmask(SIG_UNBLOCK, &sys, NULL) != 0) {
		snprintf(err, errlen, "sandbox: SIGSYS handler: %s", strerror(errno));
		goto fail;
	}
	if (export_vcpu_filter(err, errlen) < 0)
		goto fail;
	scmp_filter_ctx ctx = build_filter(FILTER_VMM, err, errlen);
	if (!ctx)
		goto fail;
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc < 0) {
		snprintf(err, errlen, "sandbox: cannot install the seccomp filter: %s "
		         "(--no-sandbox runs without it)", strerror(-rc));
		goto fail;
	}
	open_gate(GATE_OPEN_SANDBOXED);
	if (selftest_call && selftest_on_main)
		selftest_run("the main thread");
	return 0;
fail:
	open_gate(GATE_ABORT);
	return -1;
}

bool sandbox_vcpu_enter(unsigned vcpu_id)
{
	pthread_mutex_lock(&gate_lock);
	while (gate_state == GATE_WAIT)
		pthread_cond_wait(&gate_cond, &gate_lock);
	enum gate g = gate_state;
	pthread_mutex_unlock(&gate_lock);
	if (g == GATE_ABORT)
		return false;
	if (g == GATE_OPEN_SANDBOXED) {
		sigset_t sys;
		sigemptyset(&sys);
		sigaddset(&sys, SIGSYS);
		pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &vcpu_prog) != 0) {
			fprintf(stderr, "zhv: vcpu %u: cannot install the sandbox's vCPU filter: %s\n",
			        vcpu_id, strerror(errno));
			return false;
		}
	}
	if (selftest_call && !selftest_on_main && vcpu_id == 1)
		selftest_run("vcpu 1");
	return true;
}
