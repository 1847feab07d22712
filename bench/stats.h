/* stats.h: timing and summary statistics shared by the libzhv benchmarks. */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Summary of a set of samples (all in the caller's unit, here ns). */
typedef struct {
	size_t n;
	double median, p10, p90, min, max, mean;
} bench_stats_t;

/* bench_now_ns: CLOCK_MONOTONIC in nanoseconds. */
int64_t bench_now_ns(void);

/* bench_percentile: the (p)th percentile (0..100) of sorted[0..n), linear
 * interpolation between closest ranks. */
double bench_percentile(const double *sorted, size_t n, double p);

/* bench_stats: summarise v[0..n) (v is not modified). */
void bench_stats(const double *v, size_t n, bench_stats_t *out);

/* bench_print_header / bench_print_row: one aligned table line per variant
 * (values printed in microseconds with (unit) in the header). */
void bench_print_header(const char *what);
void bench_print_row(const char *name, const bench_stats_t *s);

/* bench_pin_self: pin the calling thread to (cpu) unless the environment
 * has BENCH_NOPIN=1 or the machine has fewer CPUs. Returns 1 if pinned. */
int bench_pin_self(int cpu);

/* bench_env_int: integer from the environment, or (dflt). */
long bench_env_int(const char *name, long dflt);

/* bench_loadavg: the 1-minute load average (or -1). */
double bench_loadavg(void);

#endif
