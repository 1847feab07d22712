/* sandbox_cost.c: what zhv run's seccomp sandbox (vmm/sandbox.c) adds to a
 * system call, measured on the calls a vCPU thread makes at every exit.
 * No KVM needed: ioctl(KVM_RUN) goes to fd -1, so the kernel only runs the
 * seccomp filters and fails it with EBADF.
 *
 * Two worker processes, one under the VMM and vCPU filters (as a vCPU
 * thread runs) and one without, time the same batches of 1000 calls in
 * turn (ABBA order, so that load on a shared machine hits both alike);
 * medians of BENCH_SAMPLES batches (default 300), in ns per call:
 *   ioctl(-1, KVM_RUN)            the enter call: the longest path through
 *                                 the filters (ioctl is checked by request)
 *   rt_sigprocmask(query)         libzhv reads the mask at every enter
 *   pwrite64(/dev/null, 8 bytes)  device I/O on a descriptor opened before
 * Usage: sandbox_cost */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"
#include "stats.h"

#define BATCH 1000

enum call { CALL_IOCTL, CALL_SIGMASK, CALL_PWRITE, NCALLS };
static const char *const call_names[NCALLS] = {
	"ioctl(-1, KVM_RUN)", "rt_sigprocmask(query)", "pwrite64(/dev/null, 8)"};

static int null_fd;

static void one_batch(enum call c)
{
	sigset_t cur;
	static const char buf[8];
	for (int i = 0; i < BATCH; i++) {
		switch (c) {
		case CALL_IOCTL:
			(void)ioctl(-1, KVM_RUN, 0);
			break;
		case CALL_SIGMASK:
			(void)pthread_sigmask(SIG_BLOCK, NULL, &cur);
			break;
		case CALL_PWRITE:
			(void)!pwrite(null_fd, buf, sizeof(buf), 0);
			break;
		default:
			break;
		}
	}
}

/* A worker process: runs the batch the parent asks for (a call's index
 * on (cmd)) and answers its time per call in ns (on (res)). */
static void worker(bool sandboxed, int cmd, int res)
{
	if (sandboxed) {
		char err[256];
		if (sandbox_enable(true, NULL, err, sizeof(err)) < 0 || !sandbox_vcpu_enter(1)) {
			fprintf(stderr, "sandbox_cost: %s\n", err);
			_exit(1);
		}
	}
	uint8_t c;
	while (read(cmd, &c, 1) == 1 && c < NCALLS) {
		one_batch((enum call)c); /* warm */
		int64_t t0 = bench_now_ns();
		one_batch((enum call)c);
		double ns = (double)(bench_now_ns() - t0) / BATCH;
		if (write(res, &ns, sizeof(ns)) != (ssize_t)sizeof(ns))
			break;
	}
	_exit(0);
}

struct proc {
	pid_t pid;
	int cmd, res;
};

static int start_worker(bool sandboxed, struct proc *p)
{
	int a[2], b[2];
	if (pipe(a) < 0 || pipe(b) < 0)
		return -1;
	p->pid = fork();
	if (p->pid < 0)
		return -1;
	if (p->pid == 0) {
		close(a[1]);
		close(b[0]);
		worker(sandboxed, a[0], b[1]);
	}
	close(a[0]);
	close(b[1]);
	p->cmd = a[1];
	p->res = b[0];
	return 0;
}

static double ask(struct proc *p, enum call c)
{
	uint8_t b = (uint8_t)c;
	double ns = -1;
	if (write(p->cmd, &b, 1) != 1 || read(p->res, &ns, sizeof(ns)) != (ssize_t)sizeof(ns)) {
		fprintf(stderr, "sandbox_cost: a worker died\n");
		exit(1);
	}
	return ns;
}

int main(void)
{
	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null_fd < 0) {
		perror("sandbox_cost: /dev/null");
		return 1;
	}
	long n = bench_env_int("BENCH_SAMPLES", 300);
	if (n < 10)
		n = 10;
	bench_pin_self(0);
	struct proc w[2]; /* 0: no sandbox, 1: sandbox */
	if (start_worker(false, &w[0]) < 0 || start_worker(true, &w[1]) < 0) {
		perror("sandbox_cost: starting the workers");
		return 1;
	}
	double *v[2];
	v[0] = malloc((size_t)n * sizeof(double));
	v[1] = malloc((size_t)n * sizeof(double));
	if (!v[0] || !v[1])
		return 1;
	printf("load average %.2f; %ld batches of %d calls per variant, interleaved\n",
	       bench_loadavg(), n, BATCH);
	for (int c = 0; c < NCALLS; c++) {
		for (long i = 0; i < n; i++) {
			int first = (int)(i & 1); /* ABBA... */
			v[first][i] = ask(&w[first], (enum call)c);
			v[!first][i] = ask(&w[!first], (enum call)c);
		}
		bench_stats_t s[2];
		for (int k = 0; k < 2; k++) {
			bench_stats(v[k], (size_t)n, &s[k]);
			printf("%-12s %-24s median %7.1f ns  p10 %7.1f  p90 %7.1f\n",
			       k ? "sandbox" : "no sandbox", call_names[c], s[k].median, s[k].p10,
			       s[k].p90);
		}
		printf("cost of the filters on %-24s %+6.1f ns per call (medians)\n", call_names[c],
		       s[1].median - s[0].median);
	}
	for (int k = 0; k < 2; k++) { /* stop (the second holds the first's pipe too) */
		uint8_t stop = 0xff;
		(void)!write(w[k].cmd, &stop, 1);
		close(w[k].cmd);
		close(w[k].res);
		waitpid(w[k].pid, NULL, 0);
	}
	free(v[0]);
	free(v[1]);
	return 0;
}
