/* id_alloc.h: round-robin id allocator (internal; Zircon's IdAllocator). */
#ifndef ZHV_ID_ALLOC_H
#define ZHV_ID_ALLOC_H

#include <pthread.h>
#include <stdint.h>

#include "zhv.h"

/* Ids are in [min, max). Allocation searches [next, max) then [min, next);
 * after allocating id, next = id + 1 (wrapping to min). Freed ids are thus
 * not reused at once. */
struct id_alloc {
	pthread_mutex_t lock;
	uint64_t *bits;
	uint32_t min, max, next;
};

/* id_alloc_init: ids [min, max), all free, hint at min. Returns ZHV_OK,
 * INVALID_ARGS (min >= max) or NO_MEMORY. */
zhv_status_t id_alloc_init(struct id_alloc *a, uint32_t min, uint32_t max);
void id_alloc_destroy(struct id_alloc *a);
/* id_alloc_get: returns ZHV_OK with (*id), or NO_RESOURCES when full. */
zhv_status_t id_alloc_get(struct id_alloc *a, uint32_t *id);
/* id_alloc_put: free (id); INVALID_ARGS if it was not allocated. */
zhv_status_t id_alloc_put(struct id_alloc *a, uint32_t id);

#endif /* ZHV_ID_ALLOC_H */
