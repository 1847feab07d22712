/* id_alloc.c: round-robin id allocator (Zircon's IdAllocator, spec 2.3). */
#include <stdlib.h>

#include "id_alloc.h"

static size_t words_for(uint32_t max)
{
	return ((size_t)max + 63) / 64;
}

static int bit_get(const uint64_t *bits, uint32_t i)
{
	return (bits[i / 64] >> (i % 64)) & 1;
}

/* The first clear bit in [lo, hi), or hi if every bit there is set. Scans a
 * word at a time: ids are handed out on every vCPU creation. */
static uint32_t find_first_zero(const uint64_t *bits, uint32_t lo, uint32_t hi)
{
	uint32_t i = lo;

	while (i < hi) {
		uint64_t free_bits = ~bits[i / 64] >> (i % 64);

		if (free_bits) {
			uint32_t found = i + (uint32_t)__builtin_ctzll(free_bits);

			return found < hi ? found : hi;
		}
		/* Nothing free in the rest of this word: go to the next one. */
		i = (i | 63) + 1;
		if (i == 0) /* wrapped past UINT32_MAX */
			break;
	}
	return hi;
}

zhv_status_t id_alloc_init(struct id_alloc *a, uint32_t min, uint32_t max)
{
	if (!a || min >= max)
		return ZHV_ERR_INVALID_ARGS;
	a->bits = calloc(words_for(max), sizeof(*a->bits));
	if (!a->bits)
		return ZHV_ERR_NO_MEMORY;
	if (pthread_mutex_init(&a->lock, NULL) != 0) {
		free(a->bits);
		a->bits = NULL;
		return ZHV_ERR_NO_RESOURCES;
	}
	a->min = min;
	a->max = max;
	a->next = min;
	return ZHV_OK;
}

void id_alloc_destroy(struct id_alloc *a)
{
	if (!a || !a->bits)
		return;
	pthread_mutex_destroy(&a->lock);
	free(a->bits);
	a->bits = NULL;
}

zhv_status_t id_alloc_get(struct id_alloc *a, uint32_t *id)
{
	uint32_t found;

	pthread_mutex_lock(&a->lock);
	/* Search from the hint first so that a just-freed id is not handed
	 * out again at once (a stale reference to it then cannot alias a new
	 * object); wrap around to [min, next) only when the top is full. */
	found = find_first_zero(a->bits, a->next, a->max);
	if (found == a->max) {
		found = find_first_zero(a->bits, a->min, a->next);
		if (found == a->next) {
			pthread_mutex_unlock(&a->lock);
			return ZHV_ERR_NO_RESOURCES;
		}
	}
	a->bits[found / 64] |= 1ull << (found % 64);
	a->next = found + 1 < a->max ? found + 1 : a->min;
	pthread_mutex_unlock(&a->lock);
	*id = found;
	return ZHV_OK;
}

zhv_status_t id_alloc_put(struct id_alloc *a, uint32_t id)
{
	zhv_status_t status = ZHV_ERR_INVALID_ARGS;

	pthread_mutex_lock(&a->lock);
	if (id >= a->min && id < a->max && bit_get(a->bits, id)) {
		a->bits[id / 64] &= ~(1ull << (id % 64));
		status = ZHV_OK;
	}
	pthread_mutex_unlock(&a->lock);
	return status;
}
