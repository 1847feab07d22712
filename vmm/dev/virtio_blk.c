/* virtio_blk.c: virtio block device (virtio 1.2 §5.2) over a raw image file, served on the notifying vCPU thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../devices.h"
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

struct virtio_blk {
	struct virtio_pci vp;
	int fd;
	bool read_only;
	uint64_t capacity; /* sectors */
	char id[VIRTIO_BLK_ID_BYTES];
	/* Scratch for the request being served (under vp.lock). */
	struct vq_chain chain;
	struct iovec data[VQ_MAX_CHAIN];
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

/* Move (len) bytes between the image at (sector) and bytes [off, off +
 * len) of (iov). Returns a VIRTIO_BLK_S_* status. */
static uint8_t blk_rw(struct virtio_blk *b, const struct iovec *iov, unsigned n, size_t off,
                      size_t len, uint64_t sector, bool write)
{
	struct iovec *v = b->data;
	unsigned cnt;
	size_t got;
	off_t pos;

	/* §5.2.6.1: data is a whole number of sectors, inside the disk. */
	if (len % BLK_SECTOR || sector > b->capacity || len / BLK_SECTOR > b->capacity - sector)
		return VIRTIO_BLK_S_IOERR;
	cnt = vq_iov_slice(iov, n, off, len, v, VQ_MAX_CHAIN, &got);
	if (got != len)
		return VIRTIO_BLK_S_IOERR;
	pos = (off_t)(sector * BLK_SECTOR);
	while (len) {
		ssize_t r = write ? pwritev(b->fd, v, (int)cnt, pos) : preadv(b->fd, v, (int)cnt, pos);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return VIRTIO_BLK_S_IOERR; /* error, or the image shrank */
		len -= (size_t)r;
		pos += r;
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

/* Serve one request. Returns the bytes written into the chain's writable
 * part (data + status byte), or -1 if the chain cannot hold a request. */
static int blk_request(struct virtio_blk *b, const struct vq_chain *c)
{
	const struct iovec *out = c->iov, *in = c->iov + c->nr_out;
	uint8_t hdr[VIRTIO_BLK_HDR_LEN], status;
	uint64_t sector;
	size_t data_in, written = 0;

	/* §5.2.6: a readable header and a last writable status byte, framed
	 * any way the driver likes (§2.6.4: no assumptions on layout). */
	if (vq_iov_read(out, c->nr_out, 0, hdr, sizeof(hdr)) != sizeof(hdr) || c->in_len == 0)
		return -1;
	data_in = c->in_len - 1;
	sector = le_bytes(hdr + 8, 8);
	switch (le_bytes(hdr, 4)) {
	case VIRTIO_BLK_T_IN:
		status = blk_rw(b, in, c->nr_in, 0, data_in, sector, false);
		if (status == VIRTIO_BLK_S_OK)
			written = data_in;
		break;
	case VIRTIO_BLK_T_OUT:
		if (b->read_only)
			status = VIRTIO_BLK_S_IOERR; /* §5.2.6.2 with VIRTIO_BLK_F_RO */
		else
			status = blk_rw(b, out, c->nr_out, sizeof(hdr), c->out_len - sizeof(hdr),
			                sector, true);
		break;
	case VIRTIO_BLK_T_FLUSH:
		status = VIRTIO_BLK_S_OK;
		if (!b->read_only && fdatasync(b->fd) < 0)
			status = VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_GET_ID:
		written = data_in < sizeof(b->id) ? data_in : sizeof(b->id);
		vq_iov_write(in, c->nr_in, 0, b->id, written);
		status = VIRTIO_BLK_S_OK;
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	vq_iov_write(in, c->nr_in, c->in_len - 1, &status, 1);
	return (int)(written + 1);
}

static void blk_queue_notify(struct virtio_pci *vp, unsigned q)
{
	struct virtio_blk *b = vp->opaque;
	struct vq *vq = virtio_pci_queue(vp, q);
	bool pushed = false;

	if (!vq)
		return;
	/* At most one ring's worth per notify: the driver kicks after every
	 * addition (we never set VIRTQ_USED_F_NO_NOTIFY), so nothing is left
	 * behind, and a guest refilling the ring cannot keep us here. */
	for (unsigned i = 0; i < vq->size; i++) {
		int r = vq_pop(vq, &b->chain);

		if (r == 0)
			break;
		if (r < 0) {
			virtio_pci_device_error(vp, "bad descriptor chain");
			break;
		}
		r = blk_request(b, &b->chain);
		if (r < 0) {
			virtio_pci_device_error(vp, "malformed request");
			break;
		}
		vq_push(vq, b->chain.head, (uint32_t)r);
		pushed = true;
	}
	if (pushed)
		virtio_pci_queue_interrupt(vp, q);
}

static void virtio_blk_destroy(struct virtio_pci *vp);

static const struct virtio_dev_ops blk_ops = {
	.queue_notify = blk_queue_notify,
	.destroy = virtio_blk_destroy,
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

int virtio_blk_create(struct vm *vm, const char *path, bool read_only)
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
	b->capacity = (uint64_t)end / BLK_SECTOR;
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
	r = virtio_pci_init(&b->vp, vm, &info);
	if (r < 0)
		goto err_free;
	return 0;

err_free:
	free(b);
err_close:
	close(fd);
	return r;
}

/* vm_destroy (no vCPU runs, so no request is being served): close the
 * image and free the device. */
static void virtio_blk_destroy(struct virtio_pci *vp)
{
	struct virtio_blk *b = vp->opaque;

	close(b->fd);
	virtio_pci_fini(vp);
	free(b);
}
