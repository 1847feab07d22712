/* trap_map.h: the registry of MEM, BELL and IO traps of one guest (internal). */
#ifndef ZHV_TRAP_MAP_H
#define ZHV_TRAP_MAP_H

#include <pthread.h>
#include <stdint.h>

#include "zhv.h"



/* One trap. Immutable after insertion except through the port layer. */
struct trap {
	uint32_t kind; /* ZHV_TRAP_* */
	uint64_t addr;
	uint64_t len;
	uint64_t key;
	zhv_port_t *port;             /* BELL only; holds a port reference */
	struct port_arena *arena;     /* BELL only: 256 preallocated packets */
};

/* A sorted array of non-overlapping ranges per space, searched by bisection.
 * Traps are only ever added (Zircon removes them only with the guest), so
 * lookups take the read side of an rwlock and never see a freed trap. */
struct trap_space {
	struct trap **traps; /* sorted by addr */
	size_t count, cap;
};

struct trap_map {
	pthread_rwlock_t lock;
	struct trap_space mem; /* MEM and BELL */
	struct trap_space io;  /* IO */
};

void trap_map_init(struct trap_map *map);
/* trap_map_destroy: free every trap (after trap_map_release_ports). */
void trap_map_destroy(struct trap_map *map);

/* trap_map_insert: validate the range of (kind) (spec 1.3 steps 3 and 5:
 * len 0 or addr + len overflow: OUT_OF_RANGE; IO with addr + len > 0xFFFF:
 * OUT_OF_RANGE; MEM/BELL with addr + len > ZHV_GUEST_PHYS_SIZE:
 * OUT_OF_RANGE; overlap with a trap of the same space: ALREADY_EXISTS) and
 * insert a new trap. BELL needs a (port), MEM and IO take none (NULL);
 * for BELL the map takes a port reference and allocates the trap's arena.
 * No alignment rule here (the caller checks MEM/BELL alignment). Returns
 * ZHV_OK, those errors, INVALID_ARGS (unknown kind, or the port rule above;
 * checked first, as spec 1.3 step 2) or NO_MEMORY. */
zhv_status_t trap_map_insert(struct trap_map *map, uint32_t kind, uint64_t addr, uint64_t len,
                             zhv_port_t *port, uint64_t key);

/* trap_map_find: the trap of (space kind: IO, or MEM for MEM/BELL) that
 * contains (addr), or NULL. The returned trap stays valid until
 * trap_map_destroy. */
const struct trap *trap_map_find(struct trap_map *map, uint32_t kind, uint64_t addr);

/* trap_map_release_ports: for every BELL trap, cancel its packets still
 * queued on its port and drop the port reference (guest teardown). */
void trap_map_release_ports(struct trap_map *map);

#endif /* ZHV_TRAP_MAP_H */
