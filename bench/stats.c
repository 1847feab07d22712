/* stats.c: see stats.h. */
#include "stats.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_percentile(const double *sorted, size_t n, double p)
{
	if (n == 0)
		return 0;
	double pos = p / 100.0 * (double)(n - 1);
	size_t lo = (size_t)pos;
	if (lo + 1 >= n)
		return sorted[n - 1];
	double frac = pos - (double)lo;
	return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

void bench_stats(const double *v, size_t n, bench_stats_t *out)
{
	memset(out, 0, sizeof(*out));
	out->n = n;
	if (n == 0)
		return;
	double *s = malloc(n * sizeof(*s));
	if (!s) {
		perror("malloc");
		exit(1);
	}
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += s[i];
	out->mean = sum / (double)n;
	out->min = s[0];
	out->max = s[n - 1];
	out->median = bench_percentile(s, n, 50);
	out->p10 = bench_percentile(s, n, 10);
	out->p90 = bench_percentile(s, n, 90);
	free(s);
}

void bench_print_header(const char *what)
{
	printf("  %-22s %6s %10s %10s %10s %10s %10s   (%s, us)\n", "variant", "n", "median",
	       "p10", "p90", "min", "max", what);
}

void bench_print_row(const char *name, const bench_stats_t *s)
{
	printf("  %-22s %6zu %10.3f %10.3f %10.3f %10.3f %10.3f\n", name, s->n, s->median / 1e3,
	       s->p10 / 1e3, s->p90 / 1e3, s->min / 1e3, s->max / 1e3);
}

long bench_env_int(const char *name, long dflt)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return dflt;
	char *end;
	long v = strtol(s, &end, 0);
	return *end ? dflt : v;
}

int bench_pin_self(int cpu)
{
	if (bench_env_int("BENCH_NOPIN", 0))
		return 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpu < 0 || cpu >= ncpu || ncpu < 2)
		return 0;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

double bench_loadavg(void)
{
	double l[1];
	return getloadavg(l, 1) == 1 ? l[0] : -1;
}
