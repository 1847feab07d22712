/* virtio_rng.c: virtio entropy device (virtio 1.2 §5.4): fills the guest's buffers from getrandom(). */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "../devices.h"
#include "virtio_pci.h"

#define RNG_QUEUE_SIZE 64
/* Bytes given per request at most: the device may return fewer than the
 * buffer holds (§5.4.6.2), and a huge buffer must not stall the vCPU. */
#define RNG_MAX_PER_REQUEST 65536u

struct virtio_rng {
	struct virtio_pci vp;
	struct vq_chain chain; /* under vp.lock */
};

/* Fill (iov) with up to (max) random bytes; returns how many. */
static uint32_t rng_fill(const struct iovec *iov, unsigned n, size_t max)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < max; i++) {
		size_t want = iov[i].iov_len, off = 0;

		if (want > max - done)
			want = max - done;
		while (off < want) {
			ssize_t r = getrandom((uint8_t *)iov[i].iov_base + off, want - off, 0);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return (uint32_t)(done + off);
			off += (size_t)r;
		}
		done += off;
	}
	return (uint32_t)done;
}

static void rng_queue_notify(struct virtio_pci *vp, unsigned q)
{
	struct virtio_rng *rng = vp->opaque;
	struct vq *vq = virtio_pci_queue(vp, q);
	bool pushed = false;

	if (!vq)
		return;
	for (unsigned i = 0; i < vq->size; i++) {
		int r = vq_pop(vq, &rng->chain);
		struct vq_chain *c = &rng->chain;

		if (r == 0)
			break;
		if (r < 0) {
			virtio_pci_device_error(vp, "bad descriptor chain");
			break;
		}
		/* §5.4.6.1: requests are writable buffers; readable ones are
		 * skipped. */
		vq_push(vq, c->head, rng_fill(c->iov + c->nr_out, c->nr_in, RNG_MAX_PER_REQUEST));
		pushed = true;
	}
	if (pushed)
		virtio_pci_queue_interrupt(vp, q);
}

static void rng_destroy(struct virtio_pci *vp)
{
	struct virtio_rng *rng = vp->opaque;
	virtio_pci_fini(vp);
	free(rng);
}

static const struct virtio_dev_ops rng_ops = {
	.queue_notify = rng_queue_notify,
	.destroy = rng_destroy,
};

int virtio_rng_create(struct vm *vm)
{
	struct virtio_rng *rng = calloc(1, sizeof(*rng));
	struct virtio_pci_info info = {
		.name = "rng",
		.device_type = VIRTIO_ID_RNG,
		.class_code = 0x00ff00, /* unclassified device */
		.num_queues = 1,        /* requestq (§5.4.2) */
		.queue_size = RNG_QUEUE_SIZE,
		.ops = &rng_ops,
		.opaque = rng,
	};
	int r;

	if (!rng)
		return -ENOMEM;
	r = virtio_pci_init(&rng->vp, vm, &info);
	if (r < 0)
		free(rng);
	return r;
}
