/* virtio_blk.c: virtio block device (virtio 1.2 §5.2) over a raw image file: requests submitted by the device thread through io_uring, several in flight, completed by a completion thread. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <liburing.h>

#include "../devices.h"
#include "../vm.h"
#include "virtio_pci.h"
#include "thread.h"

/* clang-format off */
/* Feature bits (virtio 1.2 §5.2.3). */
#define VIRTIO_BLK_F_SEG_MAX   2
#define VIRTIO_BLK_F_RO        5
#define VIRTIO_BLK_F_BLK_SIZE  6
#define VIRTIO_BLK_F_FLUSH     9

/* Configuration layout (virtio 1.2 §5.2.4). */
#define BLK_CFG_CAPACITY  0  /* le64, 512-byte sectors */
#define BLK_CFG_SEG_MAX   12 /* le32 */
#define BLK_CFG_BLK_SIZE  20 /* le32 */
#define BLK_CFG_LEN       96 /* the whole struct (zoned fields last); 0 past blk_size */

/* Requests (virtio 1.2 §5.2.6). */
#define VIRTIO_BLK_T_IN      0
#define VIRTIO_BLK_T_OUT     1
#define VIRTIO_BLK_T_FLUSH   4
#define VIRTIO_BLK_T_GET_ID  8
#define VIRTIO_BLK_S_OK      0
#define VIRTIO_BLK_S_IOERR   1
#define VIRTIO_BLK_S_UNSUPP  2
#define VIRTIO_BLK_HDR_LEN   16 /* le32 type, le32 reserved, le64 sector */
#define VIRTIO_BLK_ID_BYTES  20

#define BLK_SECTOR      512u
#define BLK_QUEUE_SIZE  256
/* clang-format on */

/* Requests go to the image through io_uring: the device thread decodes
 * the chains a doorbell made available and submits their reads, writes
 * and flushes, up to a ring's worth in flight; a completion thread reaps
 * them, publishes the used elements and interrupts the guest (by MSI-X:
 * no vCPU exit). A request moves at most BLK_CHUNK bytes per operation,
 * the next chunk submitted when one completes, so that stopping the
 * machine or resetting the device waits for at most one chunk per
 * request, whatever the driver queued. Where io_uring cannot be set up
 * (a kernel without it, or a container that forbids it) the device thread
 * does the same operations itself with preadv/pwritev/fdatasync. */
#define BLK_CHUNK (256u << 10)
#define BLK_NOWAIT_BUDGET (256u << 10)
#define BLK_SLOTS BLK_QUEUE_SIZE
#define BLK_STOP_KEY UINT64_MAX

/* The request being served. */
struct blk_req {
	bool io;           /* a read or write (data to move) */
	bool write;        /* data flows to the image */
	bool flush;
	uint8_t status;    /* VIRTIO_BLK_S_* once decided */
	uint64_t sector;   /* where the data starts on the image */
	uint64_t len;      /* data bytes to move */
	uint64_t done;     /* data bytes moved so far */
	uint64_t written;  /* bytes reported in the used element, status excluded */
};

/* One request in flight: its chain, its state and the segments of the
 * operation in flight. */
struct blk_slot {
	struct vq_chain chain;
	struct blk_req req;
	struct iovec seg[VQ_MAX_CHAIN];
	unsigned nseg;
	size_t chunk;      /* bytes of the operation in flight */
	unsigned gen;      /* b->gen when taken: a reset since drops it */
};

struct virtio_blk {
	struct virtio_pci vp;
	int fd;
	bool read_only;
	char *path;        /* as given: a snapshot names its image */
	uint64_t size;     /* bytes of the image at creation */
	uint64_t capacity; /* sectors */
	char id[VIRTIO_BLK_ID_BYTES];
	/* Under vp.lock (the ring's submission and completion sides too). */
	struct io_uring ring;
	bool ring_ok;
	bool nowait_ok;           /* the image answers RWF_NOWAIT reads */
	uint64_t nowait_budget;   /* bytes this doorbell may still copy at once */
	struct blk_slot *slots;
	uint16_t free_slots[BLK_SLOTS];
	unsigned nfree;
	unsigned inflight;        /* slots taken */
	unsigned gen;             /* +1 at each device reset */
	bool stop;                /* virtio_blk_destroy: the completion thread ends */
	pthread_cond_t drained;   /* inflight became 0 */
	pthread_t cq_thread;
	bool cq_started;
	/* --debug-io statistics. */
	uint64_t requests, requests_elsewhere, nowait_ops;
	unsigned max_inflight;
};

static uint64_t le_bytes(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Decode the chain in (s): the header, and the status at once of what
 * moves no data (or is refused). Returns 0, or -1 if the chain cannot
 * hold a request. */
static int blk_start(struct virtio_blk *b, struct blk_slot *s)
{
	const struct vq_chain *c = &s->chain;
	struct blk_req *q = &s->req;
	uint8_t hdr[VIRTIO_BLK_HDR_LEN];
	uint64_t data_in;

	/* §5.2.6: a readable header and a last writable status byte, framed
	 * any way the driver likes (§2.6.4: no assumptions on layout). */
	if (vq_iov_read(c->iov, c->nr_out, 0, hdr, sizeof(hdr)) != sizeof(hdr) || c->in_len == 0)
		return -1;
	memset(q, 0, sizeof(*q));
	data_in = (uint64_t)c->in_len - 1;
	q->sector = le_bytes(hdr + 8, 8);
	switch (le_bytes(hdr, 4)) {
	case VIRTIO_BLK_T_IN:
		q->io = true;
		q->len = data_in;
		break;
	case VIRTIO_BLK_T_OUT:
		if (b->read_only) {
			q->status = VIRTIO_BLK_S_IOERR; /* §5.2.6.2 with VIRTIO_BLK_F_RO */
			return 0;
		}
		q->io = q->write = true;
		q->len = (uint64_t)c->out_len - sizeof(hdr);
		break;
	case VIRTIO_BLK_T_FLUSH:
		q->flush = !b->read_only;
		return 0;
	case VIRTIO_BLK_T_GET_ID:
		q->written = data_in < sizeof(b->id) ? data_in : sizeof(b->id);
		vq_iov_write(c->iov + c->nr_out, c->nr_in, 0, b->id, (size_t)q->written);
		return 0;
	default:
		q->status = VIRTIO_BLK_S_UNSUPP;
		return 0;
	}
	/* §5.2.6.1: data is a whole number of sectors, inside the disk. */
	if (q->len % BLK_SECTOR || q->sector > b->capacity ||
	    q->len / BLK_SECTOR > b->capacity - q->sector) {
		q->status = VIRTIO_BLK_S_IOERR;
		q->len = 0;
	}
	return 0;
}

/* Whether (s) has an operation to do: data left to move, or a flush. */
static bool blk_more(const struct blk_slot *s)
{
	const struct blk_req *q = &s->req;

	return q->status == VIRTIO_BLK_S_OK && (q->flush || q->done < q->len);
}

/* Describe the next operation of (s) in s->seg. */
static void blk_prepare(struct blk_slot *s)
{
	const struct vq_chain *c = &s->chain;
	struct blk_req *q = &s->req;
	uint64_t chunk = q->len - q->done;
	size_t got;

	s->nseg = 0;
	s->chunk = 0;
	if (q->flush)
		return;
	if (chunk > BLK_CHUNK)
		chunk = BLK_CHUNK;
	if (q->write)
		s->nseg = vq_iov_slice(c->iov, c->nr_out, VIRTIO_BLK_HDR_LEN + q->done, (size_t)chunk,
		                       s->seg, VQ_MAX_CHAIN, &got);
	else
		s->nseg = vq_iov_slice(c->iov + c->nr_out, c->nr_in, q->done, (size_t)chunk, s->seg,
		                       VQ_MAX_CHAIN, &got);
	s->chunk = got;
}

/* Account the result (res: bytes moved, 0 for a flush done, or -errno) of
 * the operation of (s). */
static void blk_result(struct blk_slot *s, long long res)
{
	struct blk_req *q = &s->req;

	if (q->flush) {
		q->flush = false;
		if (res < 0)
			q->status = VIRTIO_BLK_S_IOERR;
		return;
	}
	/* An error, or the image shrank under the guest (0 bytes at EOF). */
	if (res <= 0 || s->chunk == 0) {
		q->status = VIRTIO_BLK_S_IOERR;
		return;
	}
	q->done += (uint64_t)res; /* a short transfer goes on from there */
}

/* Do the operation of (s) on this thread (no io_uring). */
static long long blk_sync_op(struct virtio_blk *b, struct blk_slot *s)
{
	const struct blk_req *q = &s->req;
	off_t pos = (off_t)(q->sector * BLK_SECTOR + q->done);
	ssize_t r;

	if (q->flush)
		return fdatasync(b->fd) < 0 ? -errno : 0;
	if (s->chunk == 0)
		return -EIO;
	do {
		r = q->write ? pwritev(b->fd, s->seg, (int)s->nseg, pos)
		             : preadv(b->fd, s->seg, (int)s->nseg, pos);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

/* Read what the page cache holds of the operation of (s) without
 * blocking (preadv2 RWF_NOWAIT). Returns the bytes read, or <= 0: nothing
 * (not cached, or a file system without RWF_NOWAIT, which then is not
 * asked again). */
static long long blk_nowait_read(struct virtio_blk *b, struct blk_slot *s)
{
	const struct blk_req *q = &s->req;
	ssize_t r;

	do
		r = preadv2(b->fd, s->seg, (int)s->nseg, (off_t)(q->sector * BLK_SECTOR + q->done),
		            RWF_NOWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno != EAGAIN)
		b->nowait_ok = false;
	return r < 0 ? -errno : r;
}

/* Queue the operation of slot (i) on the ring. Returns false if the ring
 * has no room (never: it holds a submission per slot). */
static bool blk_queue_op(struct virtio_blk *b, unsigned i)
{
	struct blk_slot *s = &b->slots[i];
	const struct blk_req *q = &s->req;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);

	if (!sqe)
		return false;
	if (q->flush)
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
	else if (q->write)
		io_uring_prep_writev(sqe, b->fd, s->seg, s->nseg, q->sector * BLK_SECTOR + q->done);
	else
		io_uring_prep_readv(sqe, b->fd, s->seg, s->nseg, q->sector * BLK_SECTOR + q->done);
	io_uring_sqe_set_data64(sqe, i);
	return true;
}

/* Publish slot (i)'s request and free the slot. */
static void blk_finish(struct virtio_blk *b, unsigned i, struct vq *vq)
{
	struct blk_slot *s = &b->slots[i];
	const struct vq_chain *c = &s->chain;
	struct blk_req *q = &s->req;

	if (vq) {
		if (q->io && !q->write && q->status == VIRTIO_BLK_S_OK)
			q->written = q->len;
		vq_iov_write(c->iov + c->nr_out, c->nr_in, c->in_len - 1, &q->status, 1);
		vq_push(vq, c->head, q->written + 1);
	}
	b->free_slots[b->nfree++] = (uint16_t)i;
	b->inflight--;
	vm_device_io_add(b->vp.vm, -1);
	if (b->inflight == 0)
		pthread_cond_broadcast(&b->drained);
}

/* Move slot (i) on after an operation (or at its start): the next
 * operation queued, or the request published. Returns true if it was
 * published. Without io_uring the operations run here, one after the
 * other. */
static bool blk_advance(struct virtio_blk *b, unsigned i, struct vq *vq, bool *queued)
{
	struct blk_slot *s = &b->slots[i];
	/* After a reset, or once the machine is stopping, the request is
	 * dropped: nothing is published. */
	bool live = vq && s->gen == b->gen && !b->stop &&
	            atomic_load(&b->vp.vm->exit_kind) == VM_EXIT_NONE;

	while (live && blk_more(s)) {
		blk_prepare(s);
		if (b->ring_ok && b->nowait_ok && !s->req.flush && !s->req.write && s->chunk &&
		    s->req.done == 0 && s->req.len <= b->nowait_budget) {
			/* A small read the page cache holds is copied at once,
			 * here, as io_uring would at submission, without
			 * waking the completion thread; a doorbell copies at
			 * most BLK_NOWAIT_BUDGET so, the rest goes to the
			 * ring. */
			b->nowait_budget -= s->req.len;
			long long r = blk_nowait_read(b, s);
			if (r > 0) {
				b->nowait_ops++;
				blk_result(s, r);
				continue;
			}
		}
		if (b->ring_ok) {
			if (blk_queue_op(b, i)) {
				*queued = true;
				return false;
			}
			s->req.status = VIRTIO_BLK_S_IOERR;
			break;
		}
		blk_result(s, blk_sync_op(b, s));
		/* A stop ends a synchronous request after the chunk. */
		live = !b->stop && atomic_load(&b->vp.vm->exit_kind) == VM_EXIT_NONE;
	}
	blk_finish(b, i, live ? vq : NULL);
	return live;
}

static void blk_submit(struct virtio_blk *b, bool queued)
{
	if (!queued)
		return;
	int r;
	do
		r = io_uring_submit(&b->ring);
	while (r == -EINTR || r == -EAGAIN);
	if (r < 0 && !b->vp.error_logged) {
		b->vp.error_logged = true;
		fprintf(stderr, "zhv: virtio-blk: io_uring_submit: %s\n", strerror(-r));
	}
}

/* The doorbell, on the device thread (vp.lock held): take every available
 * chain (at most one per free slot: a ring's worth) and start it. */
static void blk_queue_notify(struct virtio_pci *vp, unsigned qi)
{
	struct virtio_blk *b = vp->opaque;
	struct vq *vq = virtio_pci_queue(vp, 0);
	bool pushed = false, queued = false;

	if (qi != 0 || !vq)
		return;
	b->nowait_budget = BLK_NOWAIT_BUDGET;
	while (b->nfree > 0) {
		unsigned i = b->free_slots[b->nfree - 1];
		struct blk_slot *s = &b->slots[i];
		int r = vq_pop(vq, &s->chain);

		if (r == 0)
			break;
		if (r < 0) {
			virtio_pci_device_error(vp, "bad descriptor chain");
			break;
		}
		if (blk_start(b, s) < 0) {
			virtio_pci_device_error(vp, "malformed request");
			break;
		}
		b->nfree--;
		b->inflight++;
		vm_device_io_add(vp->vm, 1);
		if (b->inflight > b->max_inflight)
			b->max_inflight = b->inflight;
		b->requests++;
		if (!virtio_pci_on_device_thread(vp))
			b->requests_elsewhere++;
		s->gen = b->gen;
		pushed |= blk_advance(b, i, vq, &queued);
	}
	b->nowait_budget = 0;
	blk_submit(b, queued);
	if (pushed)
		virtio_pci_queue_interrupt(vp, 0);
}

/* The completion thread: reaps the ring, publishes what completed and
 * interrupts the guest. Ends once virtio_blk_destroy asked and nothing is
 * in flight. */
static void *blk_cq_thread(void *arg)
{
	struct virtio_blk *b = arg;
	struct virtio_pci *vp = &b->vp;
	bool stop_seen = false;

	for (;;) {
		struct io_uring_cqe *cqe;
		int r = io_uring_wait_cqe(&b->ring, &cqe);

		if (r < 0 && r != -EINTR && r != -EAGAIN) {
			fprintf(stderr, "zhv: virtio-blk: io_uring_wait_cqe: %s\n", strerror(-r));
			break;
		}
		pthread_mutex_lock(&vp->lock);
		struct vq *vq = virtio_pci_queue(vp, 0);
		bool pushed = false, queued = false;
		unsigned head, n = 0;

		io_uring_for_each_cqe(&b->ring, head, cqe) {
			uint64_t i = io_uring_cqe_get_data64(cqe);

			n++;
			if (i == BLK_STOP_KEY) {
				stop_seen = true;
				continue;
			}
			if (i >= BLK_SLOTS)
				continue;
			blk_result(&b->slots[i], cqe->res);
			pushed |= blk_advance(b, (unsigned)i, vq, &queued);
		}
		io_uring_cq_advance(&b->ring, n);
		blk_submit(b, queued);
		if (pushed)
			virtio_pci_queue_interrupt(vp, 0);
		bool done = stop_seen && b->inflight == 0;
		pthread_mutex_unlock(&vp->lock);
		if (done)
			break;
	}
	return NULL;
}

static void blk_reset(struct virtio_pci *vp)
{
	struct virtio_blk *b = vp->opaque;

	/* §2.4: a reset forgets every request in flight: their operations
	 * run out (a chunk each) without touching the rings, and the reset
	 * completes once none is left, so none writes to guest memory the
	 * driver may reuse. */
	b->gen++;
	while (b->inflight > 0)
		pthread_cond_wait(&b->drained, &vp->lock);
}

/* Snapshot: the model's part of section "virtio-blk<n>" (virtio_pci.c has
 * the transport's): the image's path (u16 length, bytes), its size in
 * bytes (u64) and whether it is read-only (bool). A restore must have the
 * same image, by path, of the same size and mode: else it is refused (the
 * guest's view of the disk would change under it). Nothing is in flight in
 * a snapshot: while a request is in flight,
 * save answers -EBUSY (vm_devices_quiesce waits for that before a snapshot).
 * A doorbell rung just before the snapshot may not have been served: the
 * restored device looks at its queue once on its own. */
static int blk_snap_save(struct virtio_pci *vp, struct snap_writer *w)
{
	struct virtio_blk *b = vp->opaque;
	size_t len = strlen(b->path);

	if (b->inflight)
		return -EBUSY;
	if (len > UINT16_MAX) {
		fprintf(stderr, "zhv: virtio-blk: disk path too long for a snapshot\n");
		return -ENOTSUP;
	}
	snap_put_u16(w, (uint16_t)len);
	snap_put(w, b->path, len);
	snap_put_u64(w, b->size);
	snap_put_bool(w, b->read_only);
	return 0;
}

static int blk_snap_load(struct virtio_pci *vp, struct snap_reader *r, bool commit)
{
	struct virtio_blk *b = vp->opaque;
	uint16_t len = snap_get_u16(r);
	size_t have = strlen(b->path);

	if (r->err)
		return -EINVAL;
	if (len != have) {
		fprintf(stderr, "zhv: virtio-blk: the snapshot's disk is not %s\n", b->path);
		return -EINVAL;
	}
	if (r->len - r->off < len)
		return -EINVAL;
	bool same = !memcmp(r->p + r->off, b->path, len);
	r->off += len;
	uint64_t size = snap_get_u64(r);
	bool read_only = snap_get_bool(r);

	if (r->err)
		return -EINVAL;
	if (!same || size != b->size || read_only != b->read_only) {
		fprintf(stderr, "zhv: virtio-blk: the snapshot's disk (%s, %llu bytes%s) is not %s "
		        "(%llu bytes%s)\n", same ? b->path : "another path", (unsigned long long)size,
		        read_only ? ", read-only" : "", b->path, (unsigned long long)b->size,
		        b->read_only ? ", read-only" : "");
		return -EINVAL;
	}
	if (commit)
		virtio_pci_notify_thread(vp, 1u);
	return 0;
}

/* vm_destroy's hook (vmm/dev/virtio_pci.h): virtio_blk_destroy. */
static void blk_vp_destroy(struct virtio_pci *vp)
{
	virtio_blk_destroy(vp->opaque);
}

static const struct virtio_dev_ops blk_ops = {
	.queue_notify = blk_queue_notify,
	.reset = blk_reset,
	.destroy = blk_vp_destroy,
	.snap_save = blk_snap_save,
	.snap_load = blk_snap_load,
};

/* Open a disk image: a regular file or a block device (-ENOTBLK for
 * anything else: a FIFO, directory, socket or character device), opened
 * without blocking (a FIFO would wait for a writer) and locked as QEMU
 * does, with an open file description lock on the whole image: shared
 * for a read-only disk, exclusive for a writable one, so that no two
 * writers (two zhv, or one image given twice) and no reader beside a
 * writer use one image. -EBUSY when another holds a conflicting lock.
 * The lock lasts as long as the descriptor. */
static int blk_open_image(const char *path, bool read_only)
{
	struct stat st;
	int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		r = -ENOTBLK;
	if (r == 0) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
			r = -errno;
	}
	if (r == 0) {
		struct flock lk = {
			.l_type = read_only ? F_RDLCK : F_WRLCK,
			.l_whence = SEEK_SET,
			.l_start = 0,
			.l_len = 0, /* the whole file, however it grows */
		};
		if (fcntl(fd, F_OFD_SETLK, &lk) < 0) {
			if (errno == EAGAIN || errno == EACCES)
				r = -EBUSY;
			else /* a file system without locks: as QEMU, go on */
				fprintf(stderr, "zhv: warning: disk %s: cannot lock the image (%s)\n",
				        path, strerror(errno));
		}
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int virtio_blk_create(struct vm *vm, const char *path, bool read_only, struct virtio_blk **out)
{
	uint8_t cfg[BLK_CFG_LEN] = { 0 };
	struct virtio_pci_info info = {
		.name = "blk",
		.device_type = VIRTIO_ID_BLOCK,
		.class_code = 0x010000, /* mass storage, SCSI */
		.features = 1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_BLK_SIZE |
		            1ull << VIRTIO_BLK_F_FLUSH,
		.num_queues = 1,
		.queue_size = BLK_QUEUE_SIZE,
		.config = cfg,
		.config_len = sizeof(cfg),
		.ops = &blk_ops,
	};
	struct virtio_blk *b;
	const char *base;
	off_t end;
	int fd, r;

	fd = blk_open_image(path, read_only);
	if (fd < 0)
		return fd;
	end = lseek(fd, 0, SEEK_END); /* works for block devices too */
	if (end < 0) {
		r = -errno;
		goto err_close;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		r = -ENOMEM;
		goto err_close;
	}
	b->fd = fd;
	b->read_only = read_only;
	b->size = (uint64_t)end;
	b->capacity = (uint64_t)end / BLK_SECTOR;
	b->path = strdup(path);
	if (!b->path) {
		r = -ENOMEM;
		goto err_free;
	}
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	/* §5.2.6: the id is 20 bytes, NUL-terminated only if shorter. */
	memcpy(b->id, base, strnlen(base, sizeof(b->id)));

	put_le(cfg + BLK_CFG_CAPACITY, b->capacity, 8);
	/* Two descriptors of every request carry header and status. */
	put_le(cfg + BLK_CFG_SEG_MAX, BLK_QUEUE_SIZE - 2, 4);
	put_le(cfg + BLK_CFG_BLK_SIZE, BLK_SECTOR, 4);
	if (read_only)
		info.features |= 1ull << VIRTIO_BLK_F_RO;
	info.opaque = b;
	b->slots = calloc(BLK_SLOTS, sizeof(*b->slots));
	if (!b->slots) {
		r = -ENOMEM;
		goto err_free;
	}
	for (unsigned i = 0; i < BLK_SLOTS; i++)
		b->free_slots[i] = (uint16_t)(BLK_SLOTS - 1 - i);
	b->nfree = BLK_SLOTS;
	r = -pthread_cond_init(&b->drained, NULL);
	if (r < 0)
		goto err_free;
	/* One submission per slot, and one for the stop. */
	r = vm->no_device_threads ? -ENOTSUP : io_uring_queue_init(BLK_SLOTS * 2, &b->ring, 0);
	if (r < 0 && !vm->no_device_threads)
		fprintf(stderr, "zhv: warning: disk %s: io_uring unavailable (%s): requests are "
		        "served one at a time by the device thread\n", path, strerror(-r));
	b->ring_ok = r == 0;
	b->nowait_ok = true;
	r = virtio_pci_init(&b->vp, vm, &info);
	if (r < 0)
		goto err_cond;
	if (!b->ring_ok)
		goto done;
	/* The completion thread starts now, before any vCPU runs (and before
	 * the sandbox); termination signals go elsewhere. */
	r = vmm_thread_start(&b->cq_thread, 0, blk_cq_thread, b);
	if (r < 0) {
		/* The device is on the PCI bus and registered with the
		 * machine already: it stays, serving nothing, until
		 * vm_destroy (board_destroy) frees it with its image. */
		b->vp.status = VIRTIO_STATUS_FAILED | VIRTIO_STATUS_NEEDS_RESET;
		return r;
	}
	pthread_setname_np(b->cq_thread, "virtio-blk-cq");
	b->cq_started = true;
done:
	if (out)
		*out = b;
	return 0;

err_cond:
	if (b->ring_ok)
		io_uring_queue_exit(&b->ring);
	pthread_cond_destroy(&b->drained);
err_free:
	free(b->slots);
	free(b->path);
	free(b);
err_close:
	close(fd);
	return r;
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	if (!b)
		return;
	/* No doorbell is served any more; what is in flight runs out (at
	 * most a chunk per request), then the completion thread ends. */
	virtio_pci_stop(&b->vp);
	if (b->vp.vm && b->vp.vm->debug_io)
		fprintf(stderr, "zhv: virtio-blk: %llu requests, %llu started outside the device "
		        "thread, at most %u in flight (%s; %llu reads from the page cache at "
		        "once)\n", (unsigned long long)b->requests,
		        (unsigned long long)b->requests_elsewhere, b->max_inflight,
		        b->ring_ok ? "io_uring" : "synchronous", (unsigned long long)b->nowait_ops);
	if (b->cq_started) {
		pthread_mutex_lock(&b->vp.lock);
		b->stop = true;
		struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
		if (sqe) {
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, BLK_STOP_KEY);
		}
		blk_submit(b, sqe != NULL);
		pthread_mutex_unlock(&b->vp.lock);
		if (sqe)
			pthread_join(b->cq_thread, NULL);
		else
			abort(); /* the ring keeps room for this one */
	}
	if (b->ring_ok)
		io_uring_queue_exit(&b->ring);
	pthread_cond_destroy(&b->drained);
	close(b->fd);
	virtio_pci_fini(&b->vp);
	free(b->slots);
	free(b->path);
	free(b);
}
