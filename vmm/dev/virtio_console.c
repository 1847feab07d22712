/* virtio_console.c: virtio console (virtio 1.2 §5.3), one port (hvc0): output to a FILE* through a bounded queue (dev/outq.c), input from virtio_console_input(). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "../devices.h"
#include "../snapshot.h"
#include "outq.h"
#include "virtio_pci.h"

/* Queues of port 0 without VIRTIO_CONSOLE_F_MULTIPORT (§5.3.2). */
#define CONSOLE_RXQ 0
#define CONSOLE_TXQ 1
#define CONSOLE_QUEUE_SIZE 64
#define CONSOLE_CFG_LEN 12 /* cols, rows, max_nr_ports, emerg_wr (§5.3.4): unused */
#define CONSOLE_INBUF 4096u

struct virtio_console {
	struct virtio_pci vp;
	struct outq *out; /* NULL: output discarded */
	/* Host input waiting for receive buffers: a ring under vp.lock. */
	uint8_t in[CONSOLE_INBUF];
	size_t in_head, in_count;
	struct vq_chain chain; /* under vp.lock */
};

/* The console virtio_console_input() feeds: the last one created, until
 * its destroy (the VMM's console input thread is stopped before). */
static struct virtio_console *_Atomic the_console;

/* Move buffered input into the guest's receive buffers. Lock held. */
static void console_deliver(struct virtio_console *con)
{
	struct virtio_pci *vp = &con->vp;
	struct vq *vq = virtio_pci_queue(vp, CONSOLE_RXQ);
	bool pushed = false;

	if (!vq)
		return;
	for (unsigned i = 0; i < vq->size && con->in_count; i++) {
		struct vq_chain *c = &con->chain;
		const struct iovec *iov;
		size_t done = 0;
		int r = vq_pop(vq, c);

		if (r == 0)
			break;
		if (r < 0) {
			virtio_pci_device_error(vp, "bad descriptor chain");
			break;
		}
		iov = c->iov + c->nr_out;
		while (con->in_count && done < c->in_len) {
			size_t run = CONSOLE_INBUF - con->in_head;

			if (run > con->in_count)
				run = con->in_count;
			run = vq_iov_write(iov, c->nr_in, done, con->in + con->in_head, run);
			done += run;
			con->in_head = (con->in_head + run) % CONSOLE_INBUF;
			con->in_count -= run;
		}
		vq_push(vq, c->head, (uint32_t)done);
		pushed = true;
	}
	if (pushed)
		virtio_pci_queue_interrupt(vp, CONSOLE_RXQ);
}

static void console_transmit(struct virtio_console *con)
{
	struct virtio_pci *vp = &con->vp;
	struct vq *vq = virtio_pci_queue(vp, CONSOLE_TXQ);
	bool pushed = false;

	if (!vq)
		return;
	for (unsigned i = 0; i < vq->size; i++) {
		struct vq_chain *c = &con->chain;
		int r = vq_pop(vq, c);

		if (r == 0)
			break;
		if (r < 0) {
			virtio_pci_device_error(vp, "bad descriptor chain");
			break;
		}
		/* Never blocks: past the queue's free room, output is
		 * dropped and counted (so a notify costs one ring of chains
		 * and at most the queue's size in copies). */
		for (unsigned s = 0; s < c->nr_out && con->out; s++)
			outq_write(con->out, c->iov[s].iov_base, c->iov[s].iov_len);
		vq_push(vq, c->head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_pci_queue_interrupt(vp, CONSOLE_TXQ);
}

static void console_queue_notify(struct virtio_pci *vp, unsigned q)
{
	struct virtio_console *con = vp->opaque;

	if (q == CONSOLE_RXQ)
		console_deliver(con);
	else
		console_transmit(con);
}

static void virtio_console_destroy(struct virtio_pci *vp)
{
	struct virtio_console *con = vp->opaque;
	struct virtio_console *expected = con;
	atomic_compare_exchange_strong(&the_console, &expected, NULL);
	outq_destroy(con->out); /* its writer flushes for at most 200 ms */
	virtio_pci_fini(vp);
	free(con);
}

/* Snapshot: the model's part of section "virtio-console<n>": the host
 * input waiting for receive buffers (u16 count, the bytes, oldest first).
 * Output is written at once (the host side is not state). */
static int console_snap_save(struct virtio_pci *vp, struct snap_writer *w)
{
	struct virtio_console *con = vp->opaque;

	snap_put_u16(w, (uint16_t)con->in_count);
	for (size_t i = 0; i < con->in_count; i++)
		snap_put_u8(w, con->in[(con->in_head + i) % CONSOLE_INBUF]);
	return 0;
}

static int console_snap_load(struct virtio_pci *vp, struct snap_reader *r, bool commit)
{
	struct virtio_console *con = vp->opaque;
	uint16_t n = snap_get_u16(r);

	if (r->err || n > CONSOLE_INBUF || r->len - r->off < n)
		return -EINVAL;
	if (commit) {
		snap_get(r, con->in, n);
		con->in_head = 0;
		con->in_count = n;
	} else {
		r->off += n;
	}
	return 0;
}

static const struct virtio_dev_ops console_ops = {
	.queue_notify = console_queue_notify,
	.destroy = virtio_console_destroy,
	.snap_save = console_snap_save,
	.snap_load = console_snap_load,
};

void virtio_console_input(const uint8_t *buf, size_t len)
{
	struct virtio_console *con = the_console;

	if (!con)
		return;
	pthread_mutex_lock(&con->vp.lock);
	for (size_t i = 0; i < len && con->in_count < CONSOLE_INBUF; i++) {
		con->in[(con->in_head + con->in_count) % CONSOLE_INBUF] = buf[i];
		con->in_count++;
	}
	console_deliver(con);
	pthread_mutex_unlock(&con->vp.lock);
}

int virtio_console_create(struct vm *vm, FILE *out)
{
	static const uint8_t cfg[CONSOLE_CFG_LEN];
	struct virtio_console *con = calloc(1, sizeof(*con));
	struct virtio_pci_info info = {
		.name = "console",
		.device_type = VIRTIO_ID_CONSOLE,
		.class_code = 0x078000, /* simple communication controller, other */
		.num_queues = 2,
		.queue_size = CONSOLE_QUEUE_SIZE,
		.config = cfg,
		.config_len = sizeof(cfg),
		.ops = &console_ops,
		.opaque = con,
	};
	int r;

	if (!con)
		return -ENOMEM;
	if (out && !(con->out = outq_create(out, OUTQ_DEFAULT_SIZE))) {
		r = -errno;
		free(con);
		return r;
	}
	r = virtio_pci_init(&con->vp, vm, &info);
	if (r < 0) {
		outq_destroy(con->out);
		free(con);
		return r;
	}
	the_console = con;
	return 0;
}
