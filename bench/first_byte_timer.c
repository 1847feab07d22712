/* first_byte_timer.c: the timing harness of bench/vmm_startup.sh.
 *
 * Usage: first_byte_timer [options] @NAME[:GUEST_MIB] COMMAND [ARG...]
 *                                   [@NAME[:GUEST_MIB] COMMAND [ARG...]]...
 *
 * Runs every contender (a command line introduced by an @NAME word) RUNS
 * times, interleaved (round r starts with contender r mod N), and for each
 * run measures:
 *   first byte: CLOCK_MONOTONIC from just before posix_spawn() to the
 *               return of the read() that got the first byte of the
 *               child's stdout (a pipe);
 *   exit:       from the same start to wait4() returning (the child has
 *               exited and is reaped; its stdout is drained first);
 *   max RSS:    wait4()'s rusage.ru_maxrss (KiB) of the child.
 * stdin is /dev/null, stderr goes to a log file printed when a run fails.
 * A run fails when it times out, the first byte is not the expected one,
 * or the exit status is not the expected one; failed runs are left out of
 * the statistics and counted.
 *
 * About ru_maxrss: at execve() Linux folds the peak RSS of the mm being
 * replaced into the new program's ru_maxrss, and posix_spawn() runs the
 * child on the parent's mm until it execs. So a child's ru_maxrss is never
 * below (roughly) the harness's own peak RSS; that is why this program is
 * linked statically and allocates almost nothing, and why vmm_startup.sh
 * also times bench/spawn_floor (a libc-free program of a few KiB): its
 * ru_maxrss is that floor. Also, this kernel keeps RSS in per-CPU counters
 * that are read approximately, so single values can be off by ~0.1 MiB.
 *
 * Snapshots (-s N): after the timed rounds, N more runs per contender
 * stop the child with SIGSTOP as soon as its first byte arrives, read
 * /proc/PID/status (VmHWM: the peak RSS of the VMM's own address space,
 * without the floor above, but from the approximate counters) and
 * /proc/PID/smaps (the sum of all Rss: the exact RSS at that moment; and,
 * when GUEST_MIB is given with the name, the Rss of the mapping of exactly
 * GUEST_MIB MiB: the guest RAM the VMM or its guest has touched), then
 * SIGCONT it. These runs are not timed; a child that exits before the
 * SIGSTOP lands gives no snapshot.
 *
 * Options: -n RUNS (default 20), -w WARMUP rounds not counted (default 1),
 * -t TIMEOUT seconds per run (default 20), -c CHAR expected first byte
 * (default Z), -x STATUS expected exit status (default 33; -1 for any),
 * -s N snapshot runs (default 5), -g MS pause before each timed run
 * (default 20: the previous VM's teardown, which the kernel finishes after
 * its process is reaped, must not overlap the next run), -S PREFIX save
 * the first snapshot's /proc/PID/smaps of each contender as
 * PREFIX.NAME.smaps, -T give every child FBT_T0=<CLOCK_MONOTONIC ns just
 * before its spawn> in its environment (for a VMM instrumented to print
 * its own phase times against it), -v print every run.
 *
 * Output: `RUN name=... ...` lines with -v, then one line per contender:
 *   RESULT name=NAME n=.. fails=.. first_us=MED first_p10_us=.. first_p90_us=..
 *          first_min_us=.. exit_us=MED exit_p10_us=.. exit_p90_us=..
 *          maxrss_kb=MED maxrss_min_kb=.. maxrss_max_kb=..
 *          [hwm_kb=MED rss_kb=MED [guest_kb=MED] snaps=K]
 * Exit status 0 when every contender had at least one good run, else 1. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"

extern char **environ;

#define MAX_CONTENDERS 16
#define MAX_RUNS 1000

struct contender {
	char name[64];
	long guest_kib;  /* size of the guest-RAM mapping to look for, or 0 */
	char **argv;     /* NULL-terminated, points into main's argv */
	char errlog[64]; /* the child's stderr */
	double first[MAX_RUNS], exit[MAX_RUNS], rss[MAX_RUNS];
	double hwm[MAX_RUNS], guest[MAX_RUNS], rss_snap[MAX_RUNS];
	size_t n, nsnap, fails;
};

static struct contender cs[MAX_CONTENDERS];
static size_t ncs;
static int opt_timeout_ms = 20000, opt_status = 33, opt_verbose, opt_gap_ms = 20;
static unsigned char opt_byte = 'Z';
static const char *opt_smaps; /* -S PREFIX: keep the first snapshot's smaps */
static char **child_env;      /* -T: environ plus FBT_T0=<start ns> */
static char t0_var[40];

/* ---- /proc readers (snapshots only) ------------------------------------------ */

/* "VmHWM:	    1234 kB" -> 1234, or -1. */
static long status_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t klen = strlen(key);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* From /proc/PID/smaps: the Rss (KiB) of the first mapping of exactly
 * (size_kib) KiB into *guest (or -1), and the sum of every mapping's Rss
 * into *total (the exact RSS: smaps walks the page tables). */
static void smaps_rss_kib(pid_t pid, long size_kib, long *guest, long *total)
{
	char path[64], line[512];
	*guest = *total = -1;
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	long sum = 0;
	int in_it = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in_it = *guest < 0 && size_kib > 0 && (long)((hi - lo) >> 10) == size_kib;
			continue;
		}
		if (!strncmp(line, "Rss:", 4)) {
			long v = strtol(line + 4, NULL, 10);
			sum += v;
			if (in_it)
				*guest = v;
			in_it = 0;
		}
	}
	fclose(f);
	*total = sum;
}

/* Copy /proc/PID/smaps to PREFIX.NAME.smaps (for the RSS breakdown). */
static void save_smaps(const struct contender *c, pid_t pid)
{
	char in[64], out[512], buf[4096];
	snprintf(in, sizeof(in), "/proc/%d/smaps", (int)pid);
	snprintf(out, sizeof(out), "%s.%s.smaps", opt_smaps, c->name);
	FILE *f = fopen(in, "r"), *o = fopen(out, "w");
	size_t n;
	while (f && o && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, o);
	if (f)
		fclose(f);
	if (o)
		fclose(o);
}

/* ---- one run ------------------------------------------------------------------------ */

struct run_result {
	double first_ns, exit_ns;
	long maxrss_kib, hwm_kib, guest_kib, rss_kib;
	int status; /* wait status */
	int got_byte, timed_out;
};

static long ms_left(int64_t deadline)
{
	int64_t left = (deadline - bench_now_ns()) / 1000000;
	return left < 0 ? 0 : left;
}

static int run_once(struct contender *c, int snapshot, struct run_result *r)
{
	memset(r, 0, sizeof(*r));
	r->hwm_kib = r->guest_kib = r->rss_kib = -1;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("pipe2");
		return -1;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, c->errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	pid_t pid;
	int64_t t0 = bench_now_ns();
	if (child_env)
		snprintf(t0_var, sizeof(t0_var), "FBT_T0=%lld", (long long)t0);
	int err = posix_spawnp(&pid, c->argv[0], &fa, NULL, c->argv,
	                       child_env ? child_env : environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (err) {
		fprintf(stderr, "first_byte_timer: %s: cannot run %s: %s\n", c->name, c->argv[0],
		        strerror(err));
		close(p[0]);
		return -1;
	}
	int64_t deadline = t0 + (int64_t)opt_timeout_ms * 1000000;

	/* The first byte. */
	struct pollfd pfd = {.fd = p[0], .events = POLLIN};
	unsigned char b;
	for (;;) {
		int n = poll(&pfd, 1, (int)ms_left(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			r->timed_out = 1;
			break;
		}
		ssize_t got = read(p[0], &b, 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got == 1) {
			r->first_ns = (double)(bench_now_ns() - t0);
			r->got_byte = b == opt_byte;
		}
		break; /* a byte, or EOF / error: no byte */
	}

	if (snapshot && r->got_byte) {
		int st;
		if (kill(pid, SIGSTOP) == 0 && waitpid(pid, &st, WUNTRACED) == pid) {
			if (WIFSTOPPED(st)) {
				r->hwm_kib = status_kib(pid, "VmHWM");
				if (opt_smaps && c->nsnap == 0)
					save_smaps(c, pid);
				smaps_rss_kib(pid, c->guest_kib, &r->guest_kib, &r->rss_kib);
				kill(pid, SIGCONT);
			} else { /* it exited first */
				r->status = st;
				goto reaped_early;
			}
		}
	}

	/* Drain stdout to EOF (the child must not block on a full pipe). */
	char buf[256];
	while (!r->timed_out) {
		int n = poll(&pfd, 1, (int)ms_left(deadline));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) {
			r->timed_out = 1;
			break;
		}
		ssize_t got = read(p[0], buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
	}
	if (r->timed_out)
		kill(pid, SIGKILL);

	struct rusage ru;
	int st;
	pid_t w;
	do
		w = wait4(pid, &st, 0, &ru);
	while (w < 0 && errno == EINTR);
	r->exit_ns = (double)(bench_now_ns() - t0);
	r->status = st;
	r->maxrss_kib = w == pid ? ru.ru_maxrss : -1;
	close(p[0]);
	return 0;

reaped_early:
	/* waitpid(WUNTRACED) reaped it: no rusage; only snapshots get here. */
	r->exit_ns = (double)(bench_now_ns() - t0);
	r->maxrss_kib = -1;
	close(p[0]);
	return 0;
}

static int run_ok(const struct run_result *r)
{
	if (r->timed_out || !r->got_byte || !WIFEXITED(r->status))
		return 0;
	return opt_status < 0 || WEXITSTATUS(r->status) == opt_status;
}

static void report_failure(const struct contender *c, const struct run_result *r)
{
	fprintf(stderr, "first_byte_timer: %s: run failed (%s", c->name,
	        r->timed_out ? "timeout" : !r->got_byte ? "no or wrong first byte" : "exit");
	if (WIFEXITED(r->status))
		fprintf(stderr, ", exit status %d", WEXITSTATUS(r->status));
	else if (WIFSIGNALED(r->status))
		fprintf(stderr, ", signal %d", WTERMSIG(r->status));
	fprintf(stderr, "); its stderr:\n");
	FILE *f = fopen(c->errlog, "r");
	if (f) {
		char line[256];
		for (int i = 0; i < 10 && fgets(line, sizeof(line), f); i++)
			fprintf(stderr, "  | %s", line);
		fclose(f);
	}
}

static void remove_errlogs(void)
{
	for (size_t k = 0; k < ncs; k++)
		unlink(cs[k].errlog);
}

/* Sleep between runs: the previous VM's teardown (deferred in the kernel
 * after its process is reaped) must not land in the next run. */
static void gap(void)
{
	struct timespec ts = {opt_gap_ms / 1000, (long)(opt_gap_ms % 1000) * 1000000};
	while (opt_gap_ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(void)
{
	fputs("usage: first_byte_timer [-n RUNS] [-w WARMUP] [-t TIMEOUT_S] [-c CHAR] "
	      "[-x STATUS] [-s SNAPS] [-g GAP_MS] [-S PREFIX] [-T] [-v]\n"
	      "                        @NAME[:GUEST_MIB] COMMAND [ARG...] [@NAME ...]...\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	long runs = 20, warmup = 1, snaps = 5;
	int opt;
	while ((opt = getopt(argc, argv, "+n:w:t:c:x:s:g:S:Tv")) != -1) {
		switch (opt) {
		case 'n': runs = strtol(optarg, NULL, 0); break;
		case 'w': warmup = strtol(optarg, NULL, 0); break;
		case 't': opt_timeout_ms = (int)(strtol(optarg, NULL, 0) * 1000); break;
		case 'c': opt_byte = (unsigned char)optarg[0]; break;
		case 'x': opt_status = (int)strtol(optarg, NULL, 0); break;
		case 's': snaps = strtol(optarg, NULL, 0); break;
		case 'g': opt_gap_ms = (int)strtol(optarg, NULL, 0); break;
		case 'S': opt_smaps = optarg; break;
		case 'T': {
			size_t n = 0;
			while (environ[n])
				n++;
			child_env = calloc(n + 2, sizeof(*child_env));
			if (!child_env)
				return 1;
			memcpy(child_env, environ, n * sizeof(*child_env));
			child_env[n] = t0_var;
			break;
		}
		case 'v': opt_verbose = 1; break;
		default: usage();
		}
	}
	if (runs < 1 || runs > MAX_RUNS || warmup < 0 || snaps < 0 || snaps > MAX_RUNS ||
	    opt_timeout_ms <= 0)
		usage();

	/* Split the rest into contenders at each @NAME word. */
	for (int i = optind; i < argc; i++) {
		if (argv[i][0] != '@')
			continue;
		if (ncs == MAX_CONTENDERS || i + 1 >= argc || argv[i + 1][0] == '@')
			usage();
		struct contender *c = &cs[ncs++];
		snprintf(c->name, sizeof(c->name), "%s", argv[i] + 1);
		char *colon = strchr(c->name, ':');
		if (colon) {
			*colon = '\0';
			c->guest_kib = strtol(colon + 1, NULL, 0) * 1024;
		}
		snprintf(c->errlog, sizeof(c->errlog), "/tmp/first_byte_timer.%d.%zu.err",
		         (int)getpid(), ncs - 1);
		argv[i] = NULL; /* ends the previous contender's argv */
		c->argv = &argv[i + 1];
	}
	if (ncs == 0 || (optind < argc && argv[optind] != NULL))
		usage();
	atexit(remove_errlogs);

	int status = 0;
	/* Timed rounds, interleaved; the first (warmup) rounds are not kept. */
	for (long round = 0; round < warmup + runs; round++) {
		for (size_t k = 0; k < ncs; k++) {
			struct contender *c = &cs[(k + (size_t)round) % ncs];
			struct run_result r;
			gap();
			if (run_once(c, 0, &r) < 0)
				return 1;
			int ok = run_ok(&r);
			if (opt_verbose)
				printf("RUN name=%s round=%ld%s ok=%d first_us=%.1f exit_us=%.1f "
				       "maxrss_kb=%ld status=%d\n", c->name, round,
				       round < warmup ? " warmup=1" : "", ok, r.first_ns / 1e3,
				       r.exit_ns / 1e3, r.maxrss_kib,
				       WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1);
			if (!ok) {
				report_failure(c, &r);
				if (round >= warmup)
					c->fails++;
				continue;
			}
			if (round < warmup)
				continue;
			c->first[c->n] = r.first_ns;
			c->exit[c->n] = r.exit_ns;
			c->rss[c->n] = (double)r.maxrss_kib;
			c->n++;
		}
	}
	/* Snapshot runs (not timed). */
	for (long s = 0; s < snaps; s++) {
		for (size_t k = 0; k < ncs; k++) {
			struct contender *c = &cs[k];
			struct run_result r;
			if (run_once(c, 1, &r) < 0)
				return 1;
			if (r.hwm_kib < 0) /* the child was gone before the snapshot */
				continue;
			c->hwm[c->nsnap] = (double)r.hwm_kib;
			c->guest[c->nsnap] = (double)r.guest_kib;
			c->rss_snap[c->nsnap] = (double)r.rss_kib;
			c->nsnap++;
			if (opt_verbose)
				printf("SNAP name=%s hwm_kb=%ld rss_kb=%ld guest_kb=%ld\n", c->name,
				       r.hwm_kib, r.rss_kib, r.guest_kib);
		}
	}

	for (size_t k = 0; k < ncs; k++) {
		struct contender *c = &cs[k];
		if (c->n == 0) {
			printf("RESULT name=%s n=0 fails=%zu\n", c->name, c->fails);
			status = 1;
			continue;
		}
		bench_stats_t f, e, m;
		bench_stats(c->first, c->n, &f);
		bench_stats(c->exit, c->n, &e);
		bench_stats(c->rss, c->n, &m);
		printf("RESULT name=%s n=%zu fails=%zu first_us=%.1f first_p10_us=%.1f "
		       "first_p90_us=%.1f first_min_us=%.1f exit_us=%.1f exit_p10_us=%.1f "
		       "exit_p90_us=%.1f maxrss_kb=%.0f maxrss_min_kb=%.0f maxrss_max_kb=%.0f",
		       c->name, c->n, c->fails, f.median / 1e3, f.p10 / 1e3, f.p90 / 1e3,
		       f.min / 1e3, e.median / 1e3, e.p10 / 1e3, e.p90 / 1e3, m.median, m.min,
		       m.max);
		if (c->nsnap) {
			bench_stats_t h, g, t;
			bench_stats(c->hwm, c->nsnap, &h);
			bench_stats(c->guest, c->nsnap, &g);
			bench_stats(c->rss_snap, c->nsnap, &t);
			printf(" hwm_kb=%.0f rss_kb=%.0f", h.median, t.median);
			if (c->guest_kib > 0)
				printf(" guest_kb=%.0f", g.median);
			printf(" snaps=%zu", c->nsnap);
		}
		printf("\n");
	}
	return status;
}
