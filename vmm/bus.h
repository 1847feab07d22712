/* bus.h: the VMM's I/O-port and MMIO dispatch. Each registered range
 * becomes one libzhv trap (IO or MEM) whose key indexes the handler table;
 * a vCPU thread that gets a packet calls bus_dispatch. */
#ifndef ZHV_VMM_BUS_H
#define ZHV_VMM_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "zhv.h"

/* A device access. (offset) is relative to the registered base; (data)
 * holds (size) bytes (1, 2, 4 or 8) little-endian: filled by the handler for
 * a read, given for a write. Handlers run on vCPU threads, concurrently for
 * different vCPUs: a device protects its own state. */
typedef void (*bus_access_fn)(void *opaque, uint64_t offset, bool write, uint8_t *data,
                              unsigned size);

struct bus_range {
	uint64_t base, len;
	bus_access_fn fn;
	void *opaque;
	const char *name;
};

#define BUS_MAX_RANGES 256

struct bus {
	uint32_t kind; /* ZHV_TRAP_IO or ZHV_TRAP_MEM */
	struct bus_range ranges[BUS_MAX_RANGES];
	unsigned count;
	uint64_t key_base; /* trap key = key_base + index */
};

/* bus_register: trap [base, base + len) of (bus) on (guest) and route
 * accesses to (fn). MMIO ranges must be page aligned (libzhv MEM traps).
 * Returns 0 or a negative errno-style value (-EEXIST on overlap, -ENOSPC
 * when full, -EINVAL). */
int bus_register(struct bus *bus, zhv_guest_t *guest, uint64_t base, uint64_t len,
                 bus_access_fn fn, void *opaque, const char *name);

/* bus_destroy: forget every range (the machine is being destroyed: no
 * vCPU runs; the libzhv traps go with the guest). A later bus_dispatch
 * finds no range. The bus owns no other resource. */
void bus_destroy(struct bus *bus);

/* bus_dispatch: run the access for a packet whose key belongs to (bus).
 * Returns false if the key is not one of this bus's. */
bool bus_dispatch(struct bus *bus, uint64_t key, uint64_t addr, bool write, uint8_t *data,
                  unsigned size);

#endif /* ZHV_VMM_BUS_H */
