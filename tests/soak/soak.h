/* soak.h: what the soak tests (tests/soak/) measure of their own process
 * between cycles: open fds, threads and resident memory, from /proc/self. */
#ifndef ZHV_SOAK_H
#define ZHV_SOAK_H

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct soak_sample {
	long fds;     /* entries of /proc/self/fd (the directory's own fd included) */
	long threads; /* "Threads:" of /proc/self/status */
	long rss_kb;  /* "VmRSS:" of /proc/self/status, KiB */
};

static inline long soak_status_field(const char *name)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long v = -1;
	size_t n = strlen(name);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, n) == 0 && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

static inline struct soak_sample soak_measure(void)
{
	struct soak_sample s = {-1, -1, -1};
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		long n = 0;
		struct dirent *e;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		s.fds = n;
	}
	s.threads = soak_status_field("Threads");
	s.rss_kb = soak_status_field("VmRSS");
	return s;
}

static inline double soak_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A positive count from the environment variable (name), else (def). */
static inline long soak_env_count(const char *name, long def)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return def;
	char *end;
	long v = strtol(s, &end, 10);
	if (*end || v <= 0) {
		fprintf(stderr, "%s='%s': expected a positive count\n", name, s);
		exit(2);
	}
	return v;
}

/* RSS is asserted only without sanitizers: ASan keeps freed memory in its
 * quarantine (up to 256 MiB) and TSan in its shadow and history, so their
 * RSS grows for reasons of their own; LeakSanitizer (SAN=1) checks every
 * allocation at exit instead. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_ASSERT_RSS false
#else
#define SOAK_ASSERT_RSS true
#endif

/* The soak's cycle loop with its checks. (cycle) runs one cycle and returns
 * false (after saying why on stderr) on failure. Measures after (warmup)
 * cycles, then at ten checkpoints up to (cycles); every checkpoint must
 * show the warm-up's fds and threads, and no more than (rss_margin_kb)
 * more RSS. Prints the numbers as "# " lines; returns the exit status. */
static inline int soak_run(const char *what, long cycles, long warmup, long rss_margin_kb,
                           bool (*cycle)(long i, void *opaque), void *opaque)
{
	if (warmup >= cycles)
		warmup = cycles / 10;
	struct soak_sample start = soak_measure();
	double t0 = soak_now();
	for (long i = 0; i < warmup; i++)
		if (!cycle(i, opaque)) {
			printf("# %s: cycle %ld failed\n", what, i);
			return 1;
		}
	struct soak_sample base = soak_measure();
	struct soak_sample worst = base;
	bool ok = true;
	long step = (cycles - warmup + 9) / 10;
	long next = warmup + step;
	for (long i = warmup; i < cycles; i++) {
		if (!cycle(i, opaque)) {
			printf("# %s: cycle %ld failed\n", what, i);
			return 1;
		}
		if (i + 1 == next || i + 1 == cycles) {
			struct soak_sample s = soak_measure();
			printf("# %s: after %ld cycles: %ld fds, %ld threads, VmRSS %ld kB\n", what,
			       i + 1, s.fds, s.threads, s.rss_kb);
			fflush(stdout);
			if (s.fds != base.fds || s.threads != base.threads ||
			    (SOAK_ASSERT_RSS && s.rss_kb > base.rss_kb + rss_margin_kb))
				ok = false;
			if (s.fds > worst.fds)
				worst.fds = s.fds;
			if (s.threads > worst.threads)
				worst.threads = s.threads;
			if (s.rss_kb > worst.rss_kb)
				worst.rss_kb = s.rss_kb;
			next += step;
		}
	}
	double t2 = soak_now();
	struct soak_sample end = soak_measure();
	printf("# %s: %ld cycles (%ld of warm-up) in %.1f s: %.2f ms per cycle\n", what, cycles,
	       warmup, t2 - t0, (t2 - t0) * 1e3 / (double)cycles);
	printf("# %s: fds %ld at start, %ld after warm-up, %ld at the end (most at a "
	       "checkpoint: %ld)\n",
	       what, start.fds, base.fds, end.fds, worst.fds);
	printf("# %s: threads %ld at start, %ld after warm-up, %ld at the end (most: %ld)\n",
	       what, start.threads, base.threads, end.threads, worst.threads);
	printf("# %s: VmRSS %ld kB at start, %ld kB after warm-up, %ld kB at the end (most: "
	       "%ld kB; margin %ld kB%s)\n",
	       what, start.rss_kb, base.rss_kb, end.rss_kb, worst.rss_kb, rss_margin_kb,
	       SOAK_ASSERT_RSS ? "" : ", not asserted under a sanitizer");
	if (!ok)
		printf("# %s: growth after warm-up: fds %+ld, threads %+ld, VmRSS %+ld kB\n", what,
		       worst.fds - base.fds, worst.threads - base.threads,
		       worst.rss_kb - base.rss_kb);
	return ok ? 0 : 1;
}

#endif /* ZHV_SOAK_H */
