/* fuzz.h: what the libFuzzer targets share: a reader over the input, the
 * input's guest memory (vm_gpa over an exactly sized heap copy, so that
 * AddressSanitizer catches any access past what the device checked), and
 * the failure check. Each target is one fuzz/<name>.c that includes the
 * code under test, as the unit tests do (tests/unit/). */
#ifndef ZHV_FUZZ_H
#define ZHV_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test failed: a crash for the fuzzer. */
#define FUZZ_CHECK(cond)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
			        #cond);                                                    \
			abort();                                                           \
		}                                                                          \
	} while (0)

/* FUZZ_VERBOSE=1 in the environment: targets say what an input did (for
 * checking seeds and reproducing crashes by hand). */
static inline int fuzz_verbose(void)
{
	static int v = -1;

	if (v < 0)
		v = getenv("FUZZ_VERBOSE") != NULL;
	return v;
}

/* Sequential little-endian reads; past the end every read is 0. */
struct fuzz_reader {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fz8(struct fuzz_reader *r)
{
	if (!r->n)
		return 0;
	r->n--;
	return *r->p++;
}

static inline uint16_t fz16(struct fuzz_reader *r)
{
	uint16_t lo = fz8(r);
	return (uint16_t)(lo | fz8(r) << 8);
}

static inline uint32_t fz32(struct fuzz_reader *r)
{
	uint32_t lo = fz16(r);
	return lo | (uint32_t)fz16(r) << 16;
}

static inline uint64_t fz64(struct fuzz_reader *r)
{
	uint64_t lo = fz32(r);
	return lo | (uint64_t)fz32(r) << 32;
}

/* Guest memory: GPA [0, fuzz_mem_size) is a heap copy of the bytes the
 * target gives it (possibly none). */
static uint8_t *fuzz_mem;
static size_t fuzz_mem_size;

static inline void fuzz_mem_set(const uint8_t *p, size_t n)
{
	free(fuzz_mem);
	fuzz_mem = malloc(n ? n : 1);
	if (!fuzz_mem)
		abort();
	if (n)
		memcpy(fuzz_mem, p, n);
	fuzz_mem_size = n;
}

#endif /* ZHV_FUZZ_H */
