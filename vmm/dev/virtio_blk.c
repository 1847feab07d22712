/* virtio_blk.c: virtio block device (virtio 1.2 §5.2) over a raw image file: each notify serves a bounded amount on the notifying vCPU thread, a worker thread the rest. */
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

#include "../devices.h"
#include "../vm.h"
#include "virtio_pci.h"

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

/* Work per pass: one notify on the vCPU thread, or one slice of the
 * worker thread, moves at most BLK_PASS_BYTES of data and takes at most
 * one ring's worth of chains. A request larger than that is served over
 * several passes; what a notify leaves undone the worker finishes, one
 * pass at a time with the device lock released in between, so that no
 * doorbell holds a vCPU, the device lock or shutdown for longer than one
 * pass (about a millisecond), whatever the driver queued. */
#define BLK_PASS_BYTES (1u << 20)

/* The request being served (several passes for a large one). */
struct blk_req {
	bool active;
	bool io;           /* a read or write (data to move) */
	bool write;        /* data flows to the image */
	uint8_t status;    /* VIRTIO_BLK_S_* once decided */
	uint64_t sector;   /* where the data starts on the image */
	uint64_t len;      /* data bytes to move */
	uint64_t done;     /* data bytes moved so far */
	uint64_t written;  /* bytes reported in the used element, status excluded */
};

struct virtio_blk {
	struct virtio_pci vp;
	int fd;
	bool read_only;
	char *path;        /* as given: a snapshot names its image */
	uint64_t size;     /* bytes of the image at creation */
	uint64_t capacity; /* sectors */
	char id[VIRTIO_BLK_ID_BYTES];
	/* Under vp.lock: the request being served and its chain, scratch
	 * segments, and the worker's state. */
	struct blk_req req;
	struct vq_chain chain;
	struct iovec data[VQ_MAX_CHAIN];
	pthread_t worker;
	pthread_cond_t wake;   /* pending or stop became true */
	bool worker_started;
	bool pending;          /* work left over for the worker */
	bool stop;             /* virtio_blk_destroy: the worker ends */
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

/* Move (len) bytes between the image at byte (pos) and bytes [off, off +
 * len) of (iov) (len at most BLK_PASS_BYTES). Returns a VIRTIO_BLK_S_*
 * status. */
static uint8_t blk_rw(struct virtio_blk *b, const struct iovec *iov, unsigned n, uint64_t off,
                      size_t len, uint64_t pos, bool write)
{
	struct iovec *v = b->data;
	unsigned cnt;
	size_t got;

	cnt = vq_iov_slice(iov, n, off, len, v, VQ_MAX_CHAIN, &got);
	if (got != len)
		return VIRTIO_BLK_S_IOERR;
	while (len) {
		ssize_t r = write ? pwritev(b->fd, v, (int)cnt, (off_t)pos)
		                  : preadv(b->fd, v, (int)cnt, (off_t)pos);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return VIRTIO_BLK_S_IOERR; /* error, or the image shrank */
		len -= (size_t)r;
		pos += (uint64_t)r;
		while (r > 0 && cnt) {
			if ((size_t)r < v->iov_len) {
				v->iov_base = (uint8_t *)v->iov_base + r;
				v->iov_len -= (size_t)r;
				r = 0;
			} else {
				r -= (ssize_t)v->iov_len;
				v++;
				cnt--;
			}
		}
	}
	return VIRTIO_BLK_S_OK;
}

/* Start serving the chain in b->chain: decode the header, and finish at
 * once what moves no data (or is refused). Returns 0, or -1 if the chain
 * cannot hold a request. */
static int blk_start(struct virtio_blk *b)
{
	const struct vq_chain *c = &b->chain;
	struct blk_req *q = &b->req;
	uint8_t hdr[VIRTIO_BLK_HDR_LEN];
	uint64_t data_in;

	/* §5.2.6: a readable header and a last writable status byte, framed
	 * any way the driver likes (§2.6.4: no assumptions on layout). */
	if (vq_iov_read(c->iov, c->nr_out, 0, hdr, sizeof(hdr)) != sizeof(hdr) || c->in_len == 0)
		return -1;
	memset(q, 0, sizeof(*q));
	q->active = true;
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
		if (!b->read_only && fdatasync(b->fd) < 0)
			q->status = VIRTIO_BLK_S_IOERR;
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

/* Move up to (*budget) more bytes of the current request. Returns true
 * when the request is complete (its status decided). */
static bool blk_step(struct virtio_blk *b, uint64_t *budget)
{
	const struct vq_chain *c = &b->chain;
	struct blk_req *q = &b->req;

	while (q->status == VIRTIO_BLK_S_OK && q->done < q->len) {
		uint64_t chunk = q->len - q->done;

		if (*budget == 0)
			return false;
		if (chunk > *budget)
			chunk = *budget;
		if (q->write)
			q->status = blk_rw(b, c->iov, c->nr_out, VIRTIO_BLK_HDR_LEN + q->done,
			                   (size_t)chunk, q->sector * BLK_SECTOR + q->done, true);
		else
			q->status = blk_rw(b, c->iov + c->nr_out, c->nr_in, q->done, (size_t)chunk,
			                   q->sector * BLK_SECTOR + q->done, false);
		q->done += chunk;
		*budget -= chunk;
	}
	if (q->io && !q->write && q->status == VIRTIO_BLK_S_OK)
		q->written = q->len;
	return true;
}

/* One pass over the queue (vp.lock held): continue the current request,
 * then take new chains, until the ring is empty, a ring's worth of chains
 * was taken or BLK_PASS_BYTES were moved. Returns true if work is left. */
static bool blk_pass(struct virtio_blk *b)
{
	struct virtio_pci *vp = &b->vp;
	struct vq *vq = virtio_pci_queue(vp, 0);
	uint64_t budget = BLK_PASS_BYTES;
	unsigned chains = 0;
	bool pushed = false, more = false;

	if (!vq) {
		b->req.active = false; /* not running: nothing may be served */
		return false;
	}
	for (;;) {
		const struct vq_chain *c = &b->chain;

		if (!b->req.active) {
			int r;

			if (chains == vq->size || budget == 0) {
				more = vq_has_avail(vq);
				break;
			}
			r = vq_pop(vq, &b->chain);
			if (r == 0)
				break;
			if (r < 0) {
				virtio_pci_device_error(vp, "bad descriptor chain");
				break;
			}
			chains++;
			if (blk_start(b) < 0) {
				virtio_pci_device_error(vp, "malformed request");
				break;
			}
		}
		if (!blk_step(b, &budget)) {
			more = true;
			break;
		}
		vq_iov_write(c->iov + c->nr_out, c->nr_in, c->in_len - 1, &b->req.status, 1);
		vq_push(vq, c->head, b->req.written + 1);
		b->req.active = false;
		pushed = true;
	}
	if (pushed)
		virtio_pci_queue_interrupt(vp, 0);
	return more;
}

/* The worker: finishes what notifies left over, one pass at a time, the
 * device lock released between passes. It idles (no polling) until a
 * notify hands it work, and ends at virtio_blk_destroy. Once the run is
 * over (vm_request_exit) it drops the work: the guest is going away. */
static void *blk_worker(void *arg)
{
	struct virtio_blk *b = arg;
	struct virtio_pci *vp = &b->vp;

	pthread_mutex_lock(&vp->lock);
	for (;;) {
		while (!b->stop && !b->pending)
			pthread_cond_wait(&b->wake, &vp->lock);
		if (b->stop)
			break;
		if (atomic_load(&vp->vm->exit_kind) != VM_EXIT_NONE) {
			b->pending = false;
			continue;
		}
		b->pending = blk_pass(b);
		if (b->pending) {
			/* Let vCPUs waiting on the lock in (the mutex is not fair). */
			pthread_mutex_unlock(&vp->lock);
			sched_yield();
			pthread_mutex_lock(&vp->lock);
		}
	}
	pthread_mutex_unlock(&vp->lock);
	return NULL;
}

static void blk_queue_notify(struct virtio_pci *vp, unsigned q)
{
	struct virtio_blk *b = vp->opaque;

	if (q != 0 || b->pending)
		return; /* the worker is on it and will see the new chains */
	if (blk_pass(b)) {
		b->pending = true;
		pthread_cond_signal(&b->wake);
	}
}

static void blk_reset(struct virtio_pci *vp)
{
	struct virtio_blk *b = vp->opaque;

	/* §2.4: a reset forgets every request in flight. */
	b->req.active = false;
	b->pending = false;
}

/* Snapshot: the model's part of section "virtio-blk<n>" (virtio_pci.c has
 * the transport's): the image's path (u16 length, bytes), its size in
 * bytes (u64) and whether it is read-only (bool). A restore must have the
 * same image, by path, of the same size and mode: else it is refused (the
 * guest's view of the disk would change under it). Nothing is in flight in
 * a snapshot: while a request is being served (the worker has work left),
 * save answers -EBUSY, and the snapshot is taken once the worker has
 * finished (the vCPUs are paused, so that is soon). */
static int blk_snap_save(struct virtio_pci *vp, struct snap_writer *w)
{
	struct virtio_blk *b = vp->opaque;
	size_t len = strlen(b->path);

	if (b->pending || b->req.active)
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
	if (commit) {
		b->req.active = false;
		b->pending = false;
	}
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
	sigset_t block, old;
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
	r = -pthread_cond_init(&b->wake, NULL);
	if (r < 0)
		goto err_free;
	r = virtio_pci_init(&b->vp, vm, &info);
	if (r < 0)
		goto err_cond;
	/* The worker starts now, before any vCPU runs (and before a sandbox
	 * could forbid new threads); termination signals go elsewhere. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	r = -pthread_create(&b->worker, NULL, blk_worker, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		/* The device is on the PCI bus and registered with the
		 * machine already: it stays, serving nothing, until
		 * vm_destroy (board_destroy) frees it with its image. */
		b->vp.status = VIRTIO_STATUS_FAILED | VIRTIO_STATUS_NEEDS_RESET;
		return r;
	}
	pthread_setname_np(b->worker, "virtio-blk");
	b->worker_started = true;
	if (out)
		*out = b;
	return 0;

err_cond:
	pthread_cond_destroy(&b->wake);
err_free:
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
	if (b->worker_started) {
		/* The worker ends after at most the pass it is in. */
		pthread_mutex_lock(&b->vp.lock);
		b->stop = true;
		pthread_cond_signal(&b->wake);
		pthread_mutex_unlock(&b->vp.lock);
		pthread_join(b->worker, NULL);
	}
	pthread_cond_destroy(&b->wake);
	close(b->fd);
	virtio_pci_fini(&b->vp);
	free(b->path);
	free(b);
}
