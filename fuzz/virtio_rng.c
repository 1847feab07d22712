/* virtio_rng.c: libFuzzer target of the virtio entropy device
 * (vmm/dev/virtio_rng.c) behind the virtio PCI transport
 * (fuzz/virtio_dev.h describes the input). */
#include "virtio_dev.h"

#include "../vmm/dev/virtio_rng.c"

static int fuzz_dev_create(uint8_t flags)
{
	(void)flags;
	return virtio_rng_create(&fuzz_vm);
}

static void fuzz_dev_event(uint8_t size, uint16_t offset, uint32_t value)
{
	(void)size, (void)offset, (void)value;
}
