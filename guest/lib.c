/* lib.c: the few C library routines the guest (and the compiler) needs,
 * and the spinlock. */
#include "guest.h"

void *memset(void *dst, int c, size_t n)
{
	uint8_t *d = dst;
	while (n--)
		*d++ = (uint8_t)c;
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	while (n--)
		*d++ = *s++;
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	for (; n; n--, x++, y++) {
		if (*x != *y)
			return *x - *y;
	}
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

void spin_lock(volatile uint32_t *lock)
{
	for (;;) {
		uint32_t v = 1;
		__asm__ volatile("lock xchgl %0, %1" : "+r"(v), "+m"(*lock) : : "memory");
		if (v == 0)
			return;
		while (*lock)
			cpu_relax();
	}
}

void spin_unlock(volatile uint32_t *lock)
{
	barrier();
	*lock = 0;
}
