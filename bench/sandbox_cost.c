/* sandbox_cost.c: what zhv run's seccomp sandbox (vmm/sandbox.c) adds to a
 * system call, measured on the calls a vCPU thread makes at every exit.
 * No KVM needed: ioctl(KVM_RUN) goes to fd -1, so the kernel only runs the
 * seccomp filters and fails it with EBADF.
 *
 * Calls (each timed in batches of 1000, median of BENCH_SAMPLES batches,
 * default 300, in ns per call):
 *   ioctl(-1, KVM_RUN)            the enter call: the longest path through
 *                                 the filters (ioctl is checked by request)
 *   rt_sigprocmask(query)         libzhv reads the mask at every enter
 *   pwrite64(/dev/null, 8 bytes)  device I/O on a descriptor opened before
 * first without the sandbox, then under the VMM and vCPU filters (as a
 * vCPU thread runs). Usage: sandbox_cost */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
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

static void measure(const char *variant, double med[NCALLS])
{
	long n = bench_env_int("BENCH_SAMPLES", 300);
	if (n < 10)
		n = 10;
	double *v = malloc((size_t)n * sizeof(*v));
	if (!v) {
		fprintf(stderr, "sandbox_cost: out of memory\n");
		exit(1);
	}
	for (int c = 0; c < NCALLS; c++) {
		one_batch((enum call)c); /* warm up */
		for (long i = 0; i < n; i++) {
			int64_t t0 = bench_now_ns();
			one_batch((enum call)c);
			v[i] = (double)(bench_now_ns() - t0) / BATCH;
		}
		bench_stats_t s;
		bench_stats(v, (size_t)n, &s);
		med[c] = s.median;
		printf("%-12s %-24s median %7.1f ns  p10 %7.1f  p90 %7.1f\n", variant,
		       call_names[c], s.median, s.p10, s.p90);
	}
	free(v);
}

int main(void)
{
	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null_fd < 0) {
		perror("sandbox_cost: /dev/null");
		return 1;
	}
	bench_pin_self(0);
	printf("load average %.2f\n", bench_loadavg());
	double off[NCALLS], on[NCALLS];
	measure("no sandbox", off);
	char err[256];
	if (sandbox_enable(true, NULL, err, sizeof(err)) < 0 || !sandbox_vcpu_enter(1)) {
		fprintf(stderr, "sandbox_cost: %s\n", err);
		return 1;
	}
	measure("sandbox", on);
	for (int c = 0; c < NCALLS; c++)
		printf("cost of the filters on %-24s %+6.1f ns per call\n", call_names[c],
		       on[c] - off[c]);
	return 0;
}
