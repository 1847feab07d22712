/* time.c: libzhv's clock: absolute CLOCK_MONOTONIC time in nanoseconds. */
#include <time.h>

#include "zhv.h"

zhv_time_t zhv_clock_monotonic(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer; every deadline in
	 * libzhv (condition variables included) is measured on this clock. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (zhv_time_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

zhv_time_t zhv_deadline_after(int64_t ns)
{
	zhv_time_t now = zhv_clock_monotonic();
	zhv_time_t deadline;

	/* now >= 0, so only a positive (ns) can overflow; saturate so that a
	 * huge timeout means "forever" rather than a deadline in the past. */
	if (__builtin_add_overflow(now, ns, &deadline))
		return ZHV_TIME_INFINITE;
	return deadline;
}
