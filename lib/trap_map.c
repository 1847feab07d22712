/* trap_map.c: the MEM, BELL and IO traps of one guest (Zircon's TrapMap, spec 1.3). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "port_priv.h"
#include "trap_map.h"

void trap_map_init(struct trap_map *map)
{
	pthread_rwlockattr_t attr;

	/* glibc's rwlocks prefer readers by default: vCPUs looking up traps
	 * back to back would starve zhv_guest_set_trap for ever. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&map->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	memset(&map->mem, 0, sizeof(map->mem));
	memset(&map->io, 0, sizeof(map->io));
}

static struct trap_space *space_of(struct trap_map *map, uint32_t kind)
{
	switch (kind) {
	case ZHV_TRAP_BELL:
	case ZHV_TRAP_MEM:
		/* One guest-physical space: a BELL and a MEM trap may not
		 * overlap, since an access can go to only one of them. */
		return &map->mem;
	case ZHV_TRAP_IO:
		return &map->io;
	default:
		return NULL;
	}
}

/* Zircon's ValidRange, plus the end of the guest-physical space. */
static bool valid_range(uint32_t kind, uint64_t addr, uint64_t len)
{
	uint64_t end;

	if (len == 0 || __builtin_add_overflow(addr, len, &end))
		return false;
	if (kind == ZHV_TRAP_IO)
		/* Zircon compares with UINT16_MAX, so port 0xFFFF can never
		 * be trapped (spec 7.5 quirk, kept). */
		return end <= 0xFFFF;
	return end <= ZHV_GUEST_PHYS_SIZE;
}

/* Index of the first trap that starts above (addr) (upper_bound). */
static size_t upper_bound(const struct trap_space *s, uint64_t addr)
{
	size_t lo = 0, hi = s->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->traps[mid]->addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Half-open ranges [a, a + alen) and [b, b + blen), neither overflowing. */
static bool intersects(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static bool contains(const struct trap *t, uint64_t addr)
{
	return addr >= t->addr && addr - t->addr < t->len;
}

static void trap_free(struct trap *t)
{
	if (t->arena) {
		port_arena_destroy(t->arena);
		t->arena = NULL;
	}
	if (t->port) {
		port_unref(t->port);
		t->port = NULL;
	}
	free(t);
}

zhv_status_t trap_map_insert(struct trap_map *map, uint32_t kind, uint64_t addr, uint64_t len,
                             zhv_port_t *port, uint64_t key)
{
	struct trap_space *s = space_of(map, kind);
	struct trap *t;
	zhv_status_t status = ZHV_OK;
	size_t i;

	/* Spec 1.3 step 2 comes before the range checks: a BELL trap needs a
	 * port, MEM and IO traps take none. */
	if (!s || (kind == ZHV_TRAP_BELL) != (port != NULL))
		return ZHV_ERR_INVALID_ARGS;
	if (!valid_range(kind, addr, len))
		return ZHV_ERR_OUT_OF_RANGE;

	/* Allocate everything before taking the lock (as Zircon does), so
	 * the write side is held only for the overlap check and insertion,
	 * and vCPUs looking up traps are not held up by malloc. */
	t = calloc(1, sizeof(*t));
	if (!t)
		return ZHV_ERR_NO_MEMORY;
	t->kind = kind;
	t->addr = addr;
	t->len = len;
	t->key = key;
	if (port) {
		port_ref(port);
		t->port = port;
		t->arena = port_arena_create(port);
		if (!t->arena) {
			trap_free(t);
			return ZHV_ERR_NO_MEMORY;
		}
	}

	pthread_rwlock_wrlock(&map->lock);
	i = upper_bound(s, addr);
	/* The array holds no overlaps, so only the neighbours of the insertion
	 * point can intersect the new range. */
	if ((i < s->count && intersects(addr, len, s->traps[i]->addr, s->traps[i]->len)) ||
	    (i > 0 && intersects(addr, len, s->traps[i - 1]->addr, s->traps[i - 1]->len))) {
		status = ZHV_ERR_ALREADY_EXISTS;
		goto out_unlock;
	}
	if (s->count == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct trap **traps = realloc(s->traps, cap * sizeof(*traps));

		if (!traps) {
			status = ZHV_ERR_NO_MEMORY;
			goto out_unlock;
		}
		s->traps = traps;
		s->cap = cap;
	}
	memmove(&s->traps[i + 1], &s->traps[i], (s->count - i) * sizeof(*s->traps));
	s->traps[i] = t;
	s->count++;
	t = NULL;
out_unlock:
	pthread_rwlock_unlock(&map->lock);
	/* A rejected trap is torn down after the unlock: destroying its
	 * arena takes the port's lock, which lookups need not wait for. */
	if (t)
		trap_free(t);
	return status;
}

const struct trap *trap_map_find(struct trap_map *map, uint32_t kind, uint64_t addr)
{
	struct trap_space *s = space_of(map, kind);
	const struct trap *found = NULL;
	size_t i;

	if (!s)
		return NULL;
	pthread_rwlock_rdlock(&map->lock);
	/* The greatest start <= addr is the only candidate. */
	i = upper_bound(s, addr);
	if (i > 0 && contains(s->traps[i - 1], addr))
		found = s->traps[i - 1];
	pthread_rwlock_unlock(&map->lock);
	/* Traps are never removed before trap_map_destroy, so (found) stays
	 * valid after the unlock even if the array is reallocated. */
	return found;
}

void trap_map_release_ports(struct trap_map *map)
{
	struct trap_space *s = &map->mem;

	pthread_rwlock_wrlock(&map->lock);
	for (size_t i = 0; i < s->count; i++) {
		struct trap *t = s->traps[i];

		/* Destroying the arena first cancels this trap's queued
		 * packets (and only those) while the port is certainly
		 * alive; then our reference may be the last one. */
		if (t->arena) {
			port_arena_destroy(t->arena);
			t->arena = NULL;
		}
		if (t->port) {
			port_unref(t->port);
			t->port = NULL;
		}
	}
	pthread_rwlock_unlock(&map->lock);
}

static void space_destroy(struct trap_space *s)
{
	for (size_t i = 0; i < s->count; i++)
		trap_free(s->traps[i]);
	free(s->traps);
	memset(s, 0, sizeof(*s));
}

void trap_map_destroy(struct trap_map *map)
{
	/* trap_free also releases ports, should a caller have skipped
	 * trap_map_release_ports: nothing leaks either way. */
	space_destroy(&map->mem);
	space_destroy(&map->io);
	pthread_rwlock_destroy(&map->lock);
}
