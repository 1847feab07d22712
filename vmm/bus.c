/* bus.c: I/O-port and MMIO ranges as libzhv traps, and packet dispatch by
 * trap key (key = key_base + index into the range table). */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "bus.h"

/* Registration may happen while vCPUs run (a device added late): writers
 * serialize on this lock; readers (bus_dispatch) take no lock. An entry is
 * complete before its index becomes visible through bus->count (release
 * store / acquire load), and entries are never removed or changed while
 * the machine runs (bus_destroy clears them all once it has stopped). */
static pthread_mutex_t bus_lock = PTHREAD_MUTEX_INITIALIZER;

static int status_to_errno(zhv_status_t st)
{
	switch (st) {
	case ZHV_ERR_ALREADY_EXISTS:
		return -EEXIST;
	case ZHV_ERR_NO_MEMORY:
		return -ENOMEM;
	case ZHV_ERR_NO_RESOURCES:
		return -ENOSPC;
	case ZHV_ERR_INVALID_ARGS:
	case ZHV_ERR_OUT_OF_RANGE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

int bus_register(struct bus *bus, zhv_guest_t *guest, uint64_t base, uint64_t len,
                 bus_access_fn fn, void *opaque, const char *name)
{
	uint64_t end;
	if (!bus || !guest || !fn || len == 0 || __builtin_add_overflow(base, len, &end))
		return -EINVAL;
	if (bus->kind == ZHV_TRAP_MEM && ((base | len) & (ZHV_PAGE_SIZE - 1)))
		return -EINVAL;
	if (bus->kind == ZHV_TRAP_IO && end > 0xFFFF) /* libzhv: IO traps end below 0xFFFF */
		return -EINVAL;

	int ret = 0;
	pthread_mutex_lock(&bus_lock);
	unsigned n = bus->count;
	for (unsigned i = 0; i < n; i++) {
		const struct bus_range *r = &bus->ranges[i];
		if (base < r->base + r->len && r->base < end) {
			ret = -EEXIST;
			goto out;
		}
	}
	if (n >= BUS_MAX_RANGES) {
		ret = -ENOSPC;
		goto out;
	}
	zhv_status_t st = zhv_guest_set_trap(guest, bus->kind, base, len, NULL, bus->key_base + n);
	if (st != ZHV_OK) {
		ret = status_to_errno(st);
		goto out;
	}
	bus->ranges[n] = (struct bus_range){
		.base = base, .len = len, .fn = fn, .opaque = opaque, .name = name,
	};
	__atomic_store_n(&bus->count, n + 1, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&bus_lock);
	return ret;
}

void bus_destroy(struct bus *bus)
{
	if (!bus)
		return;
	pthread_mutex_lock(&bus_lock);
	__atomic_store_n(&bus->count, 0, __ATOMIC_RELEASE);
	memset(bus->ranges, 0, sizeof(bus->ranges));
	pthread_mutex_unlock(&bus_lock);
}

bool bus_dispatch(struct bus *bus, uint64_t key, uint64_t addr, bool write, uint8_t *data,
                  unsigned size)
{
	unsigned n = __atomic_load_n(&bus->count, __ATOMIC_ACQUIRE);
	if (key < bus->key_base || key - bus->key_base >= n)
		return false;
	const struct bus_range *r = &bus->ranges[key - bus->key_base];
	r->fn(r->opaque, addr - r->base, write, data, size);
	return true;
}
