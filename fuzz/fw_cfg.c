/* fw_cfg.c: libFuzzer target of the fw_cfg I/O interface
 * (vmm/dev/fw_cfg.c). The input is port accesses of 4 bytes: byte 0 bit
 * 0 write, bits 1-2 the size (1, 2 or 4), bit 3 the port (0x510 or
 * 0x511; a wide access there runs past the range, as the bus passes a
 * vCPU's access on), then 3 bytes of data. */
#include "fuzz.h"

#include "../vmm/dev/fw_cfg.c"

int bus_register(struct bus *bus, zhv_guest_t *guest, uint64_t base, uint64_t len,
                 bus_access_fn fn, void *opaque, const char *name)
{
	(void)guest;
	if (bus->count >= BUS_MAX_RANGES)
		return -ENOSPC;
	bus->ranges[bus->count++] = (struct bus_range){ base, len, fn, opaque, name };
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader r = { data, size };
	struct vm vm = { 0 };

	vm.io_bus.kind = ZHV_TRAP_IO;
	vm.ncpus = 4;
	vm.ram_size = 1ull << 30;
	if (fw_cfg_create(&vm) < 0)
		abort();
	const struct bus_range *range = &vm.io_bus.ranges[0];
	struct fw_cfg *f = range->opaque;

	while (r.n) {
		uint8_t op = fz8(&r);
		bool write = op & 1;
		unsigned width = 1u << ((op >> 1) & 3);
		unsigned port = (op >> 3) & 1;
		uint8_t buf[8] = { fz8(&r), fz8(&r), fz8(&r) };

		if (width > 4)
			width = 4;
		uint32_t before = f->offset;
		range->fn(range->opaque, port, write, buf, width);
		FUZZ_CHECK(f->item_len <= FW_CFG_ITEM_MAX && f->offset <= f->item_len);
		if (!write && port == 0 && width == 1)
			FUZZ_CHECK(buf[0] == 0 && f->offset == before);
	}
	pthread_mutex_destroy(&f->lock);
	free(f);
	return 0;
}
