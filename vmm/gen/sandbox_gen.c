/* sandbox_gen.c: a build-time program that compiles zhv run's seccomp
 * filters (vmm/sandbox.c) with libseccomp and prints them as a C header
 * (BUILD/vmm/sandbox_bpf.h): ready BPF programs and the table of system
 * call names the SIGSYS handler prints. zhv itself then needs neither
 * libseccomp nor its work at start-up (loading the library, compiling the
 * rules twice, exporting the vCPU filter, resolving 512 names: together
 * most of the sandbox's start-up cost), and only loads the programs.
 *
 * The rules below are the sandbox's allowlist; sandbox.h says what the two
 * layers are. Their variants are all compiled: the VMM filter with and
 * without --control's calls, the vCPU filter, each plain and for sanitizer
 * builds (which sandbox.c picks at compile time). The one value known only
 * at run time, zhv's pid (tgkill is allowed within the process only), is
 * compiled as PID_PLACEHOLDER; the header gives the index of the one
 * instruction that compares it, which sandbox.c patches before loading.
 *
 * Usage: sandbox_gen > sandbox_bpf.h (exit status 1, with a message, when
 * a rule is refused or the placeholder is not found exactly once). */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <termios.h>
#include <unistd.h>

#include "sandbox_bpf_abi.h"

enum filter_kind { FILTER_VMM, FILTER_VCPU };

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
	/* libzhv's BELL doorbells (lib/port.c): an eventfd per doorbell,
	 * registered by the vCPU that first rings it, and the port's epoll
	 * set its waiters sleep in */
	SCMP_SYS(eventfd2), SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait),
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
	/* BELL doorbells registered at their first write, or dropped */
	KVM_IOEVENTFD,
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

static scmp_filter_ctx build_filter(enum filter_kind kind, unsigned features, bool sanitizer,
                                    uint32_t pid, char *err, size_t errlen)
{
	bool control_allowed = features & SANDBOX_FEAT_CONTROL;
	bool gdb_allowed = features & SANDBOX_FEAT_GDB;
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
	     SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffull, (scmp_datum_t)pid));
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
	if (gdb_allowed) {
		/* --gdb only (vmm/gdb/): a vCPU thread sets its debug
		 * registers and stops (zhv_vcpu_set_debug) when the debugger
		 * asks it to, after asking KVM whether it can
		 * (KVM_CHECK_EXTENSION of KVM_CAP_SET_GUEST_DEBUG, a query);
		 * the gdb thread accepts connections on its listening socket
		 * (socket stays forbidden). Its reads, writes and polls, and
		 * libzhv's guest-virtual memory accesses (guest RAM and the
		 * ioctls above), need nothing new. */
		RULE(ctx, SCMP_ACT_ALLOW, ioctl, 1,
		     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffull, (scmp_datum_t)KVM_SET_GUEST_DEBUG));
		RULE(ctx, SCMP_ACT_ALLOW, ioctl, 1,
		     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffull, (scmp_datum_t)KVM_CHECK_EXTENSION));
	}
	if (kind == FILTER_VMM && (gdb_allowed || control_allowed)) {
		/* The gdb and control threads accept connections on their
		 * listening sockets. */
		RULE(ctx, SCMP_ACT_ALLOW, accept4, 0);
		RULE(ctx, SCMP_ACT_ALLOW, accept, 0);
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

	if (sanitizer) {
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
	}
	return ctx;
fail:
	seccomp_release(ctx);
	return NULL;
}

/* ---- output -------------------------------------------------------------- */

static int emit(const char *name, enum filter_kind kind, unsigned features, bool sanitizer)
{
	char err[256] = "";
	scmp_filter_ctx ctx = build_filter(kind, features, sanitizer, SANDBOX_BPF_PID_PLACEHOLDER, err,
	                                   sizeof(err));
	if (!ctx) {
		fprintf(stderr, "sandbox_gen: %s: %s\n", name, err);
		return -1;
	}
	int ret = -1;
	struct sock_filter *insns = NULL;
	int fd = memfd_create("sandbox_gen", MFD_CLOEXEC);
	int rc = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	off_t size = rc < 0 ? -1 : lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) ||
	    size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
		fprintf(stderr, "sandbox_gen: %s: cannot export the filter (%s, %lld bytes)\n", name,
		        strerror(rc < 0 ? -rc : errno), (long long)size);
		goto out;
	}
	size_t n = (size_t)size / sizeof(struct sock_filter);
	insns = malloc((size_t)size);
	if (!insns || pread(fd, insns, (size_t)size, 0) != (ssize_t)size) {
		fprintf(stderr, "sandbox_gen: %s: cannot read the filter back\n", name);
		goto out;
	}
	/* The pid: exactly one comparison with the placeholder. */
	size_t at = n, found = 0;
	for (size_t i = 0; i < n; i++) {
		if (insns[i].k != SANDBOX_BPF_PID_PLACEHOLDER)
			continue;
		found++;
		if (insns[i].code == (BPF_JMP | BPF_JEQ | BPF_K))
			at = i;
	}
	/* (Sanitizer builds allow tgkill to anyone: no comparison is left.) */
	if (sanitizer ? found > 1 || (found && at == n) : found != 1 || at == n) {
		fprintf(stderr, "sandbox_gen: %s: the pid placeholder %#x appears %zu times "
		        "(expected once, in a BPF_JEQ)\n", name, SANDBOX_BPF_PID_PLACEHOLDER, found);
		goto out;
	}
	printf("\n#define SANDBOX_BPF_%s_PID_AT %ld\n", name, at == n ? -1L : (long)at);
	printf("static const struct sock_filter sandbox_bpf_%s[%zu] = {\n", name, n);
	for (size_t i = 0; i < n; i++)
		printf("\t{ %#06x, %3u, %3u, %#010x },\n", insns[i].code, insns[i].jt, insns[i].jf,
		       insns[i].k);
	printf("};\n");
	ret = 0;
out:
	free(insns);
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return ret;
}

int main(void)
{
	printf("/* Generated by vmm/gen/sandbox_gen.c from libseccomp %u.%u.%u: do not edit. */\n",
	       seccomp_version()->major, seccomp_version()->minor, seccomp_version()->micro);
	printf("#ifndef ZHV_VMM_SANDBOX_BPF_H\n#define ZHV_VMM_SANDBOX_BPF_H\n");
	printf("#include <linux/filter.h>\n#include \"sandbox_bpf_abi.h\"\n");
	/* Every variant: the VMM and vCPU filters for each set of
	 * SANDBOX_FEAT_* (what --control and --gdb add), plain and for
	 * sanitizer builds, and a table of them per filter. */
	static const char *const kinds[] = {"vmm", "vcpu"};
	for (int san = 0; san <= 1; san++)
		for (int k = 0; k < 2; k++)
			for (unsigned f = 0; f < SANDBOX_FEATS; f++) {
				char name[64];
				snprintf(name, sizeof(name), "%s_%u%s", kinds[k], f, san ? "_san" : "");
				if (emit(name, k ? FILTER_VCPU : FILTER_VMM, f, san) < 0)
					return 1;
			}
	for (int san = 0; san <= 1; san++)
		for (int k = 0; k < 2; k++) {
			printf("\nstatic const struct sandbox_bpf_prog sandbox_bpf_%s%s[%u] = {\n",
			       kinds[k], san ? "_san" : "", SANDBOX_FEATS);
			for (unsigned f = 0; f < SANDBOX_FEATS; f++) {
				const char *sfx = san ? "_san" : "";
				printf("\t{sandbox_bpf_%s_%u%s, sizeof(sandbox_bpf_%s_%u%s) / "
				       "sizeof(struct sock_filter), SANDBOX_BPF_%s_%u%s_PID_AT},\n",
				       kinds[k], f, sfx, kinds[k], f, sfx, kinds[k], f, sfx);
			}
			printf("};\n");
		}
	/* System call names for the SIGSYS message. */
	printf("\nstatic const char sandbox_syscall_names[SANDBOX_NAMES_MAX][SANDBOX_NAME_LEN] = {\n");
	for (int nr = 0; nr < SANDBOX_NAMES_MAX; nr++) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		if (name && strlen(name) < SANDBOX_NAME_LEN)
			printf("\t[%d] = \"%s\",\n", nr, name);
		free(name);
	}
	printf("};\n#endif\n");
	return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}
