/* fake_bus.h: the VMM's bus and teardown list for unit tests of devices,
 * without KVM. Include it once per test program, after the device sources:
 * it defines bus_register() (the devices call it) as a table that refuses
 * overlaps like the real one, and helpers to make an access the way the
 * bus hands it to a device. */
#ifndef ZHV_TEST_FAKE_BUS_H
#define ZHV_TEST_FAKE_BUS_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

int bus_register(struct bus *bus, zhv_guest_t *guest, uint64_t base, uint64_t len,
                 bus_access_fn fn, void *opaque, const char *name)
{
	(void)guest;
	for (unsigned i = 0; i < bus->count; i++)
		if (base < bus->ranges[i].base + bus->ranges[i].len && bus->ranges[i].base < base + len)
			return -EEXIST;
	if (bus->count >= BUS_MAX_RANGES)
		return -ENOSPC;
	bus->ranges[bus->count++] = (struct bus_range){base, len, fn, opaque, name};
	return 0;
}

/* fake_bus_find: the range of (bus) holding (addr), or NULL. */
static inline const struct bus_range *fake_bus_find(struct bus *bus, uint64_t addr)
{
	for (unsigned i = 0; i < bus->count; i++)
		if (addr >= bus->ranges[i].base && addr < bus->ranges[i].base + bus->ranges[i].len)
			return &bus->ranges[i];
	return NULL;
}

/* fake_bus_xfer: an access of (size) bytes (1-8) at (addr) of (bus) (the
 * range must exist: a cmocka assertion); a write passes (v), a read
 * returns the value the device produced. */
static inline uint64_t fake_bus_xfer(struct bus *bus, uint64_t addr, bool write, uint64_t v,
                                     unsigned size)
{
	const struct bus_range *r = fake_bus_find(bus, addr);
	assert_non_null(r);
	uint8_t d[8];
	for (unsigned i = 0; i < 8; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	r->fn(r->opaque, addr - r->base, write, d, size);
	uint64_t out = 0;
	for (unsigned i = 0; i < size && i < 8; i++)
		out |= (uint64_t)d[i] << (8 * i);
	return out;
}

/* fake_vm_teardown: run (vm)'s teardown list, last registered first, as
 * the machine's destruction does. */
static inline void fake_vm_teardown(struct vm *vm)
{
	while (vm->nteardowns > 0) {
		struct vm_teardown *t = &vm->teardowns[--vm->nteardowns];
		t->fn(t->opaque);
	}
}

#endif /* ZHV_TEST_FAKE_BUS_H */
