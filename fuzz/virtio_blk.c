/* virtio_blk.c: libFuzzer target of the virtio block device's request
 * parser (vmm/dev/virtio_blk.c) behind the virtio PCI transport, over a
 * 16 KiB image (fuzz/virtio_dev.h describes the input; a device event
 * looks at the queue as a restored device does). Flags bit 0: the disk is
 * read-only. No device thread and no io_uring (vm.no_device_threads): the
 * requests run synchronously on this thread, so that every input is
 * deterministic and cheap. */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "virtio_dev.h"

#include "../vmm/dev/virtio_blk.c"

#define IMAGE_SIZE (32 * BLK_SECTOR)

static char image_path[64];
static int image_fd = -1;

static int fuzz_dev_create(uint8_t flags)
{
	static uint8_t pattern[IMAGE_SIZE];

	/* In memory (flushes cost nothing), opened by the device by name. */
	if (image_fd < 0) {
		image_fd = memfd_create("disk", MFD_CLOEXEC);
		if (image_fd < 0)
			return -1;
		snprintf(image_path, sizeof(image_path), "/proc/self/fd/%d", image_fd);
		for (size_t i = 0; i < sizeof(pattern); i++)
			pattern[i] = (uint8_t)(i * 7 + i / 512);
	}
	/* The same disk for every input. */
	if (ftruncate(image_fd, IMAGE_SIZE) < 0 ||
	    pwrite(image_fd, pattern, sizeof(pattern), 0) != (ssize_t)sizeof(pattern))
		return -1;
	return virtio_blk_create(&fuzz_vm, image_path, flags & 1, NULL);
}

static void fuzz_dev_event(uint8_t size, uint16_t offset, uint32_t value)
{
	struct virtio_pci *vp = fuzz_dev->opaque;

	(void)size, (void)offset, (void)value;
	/* A doorbell of the device's own, as after a restore. */
	pthread_mutex_lock(&vp->lock);
	virtio_pci_notify_thread(vp, 1);
	virtio_pci_serve_pending(vp);
	pthread_mutex_unlock(&vp->lock);
}
