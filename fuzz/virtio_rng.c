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

static void fuzz_dev_destroy(void)
{
	struct virtio_pci *vp = fuzz_dev->opaque;

	pthread_mutex_destroy(&vp->lock);
	free(vp->opaque);
}

static void fuzz_dev_event(uint8_t size, uint16_t offset, uint32_t value)
{
	(void)size, (void)offset, (void)value;
}
