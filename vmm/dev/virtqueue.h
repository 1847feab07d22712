/* virtqueue.h: device side of virtio split virtqueues (virtio 1.2 §2.7) over guest RAM. */
#ifndef ZHV_VMM_VIRTQUEUE_H
#define ZHV_VMM_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct vm;
struct snap_writer;
struct snap_reader;

/* Largest queue any zhv device offers, and so the longest chain (virtio
 * 1.2 §2.7.5.3.1: a driver never builds a chain longer than the Queue
 * Size, indirect tables included). */
#define VQ_MAX_SIZE 256
#define VQ_MAX_CHAIN VQ_MAX_SIZE

/* clang-format off */
/* Descriptor flags (virtio 1.2 §2.7.5). */
#define VQ_DESC_F_NEXT      1u /* the chain continues in (next) */
#define VQ_DESC_F_WRITE     2u /* device-writable buffer */
#define VQ_DESC_F_INDIRECT  4u /* buffer is a table of descriptors (§2.7.5.3) */
/* Available ring flags (virtio 1.2 §2.7.6). */
#define VQ_AVAIL_F_NO_INTERRUPT 1u
/* Ring sizes in guest memory (virtio 1.2 §2.7, table "Virtqueue Part
 * Alignment and Size"); the event words are counted although
 * VIRTIO_F_EVENT_IDX is never offered. */
#define VQ_DESC_BYTES(n)   (16ull * (n))
#define VQ_AVAIL_BYTES(n)  (6ull + 2ull * (n))
#define VQ_USED_BYTES(n)   (6ull + 8ull * (n))
/* clang-format on */

/* One descriptor chain taken from the available ring. The device-readable
 * segments come first (iov[0 .. nr_out)), then the device-writable ones
 * (iov[nr_out .. nr_out + nr_in)), as virtio 1.2 §2.7.4.2 requires of the
 * driver. Zero-length descriptors are left out. The iov_base pointers
 * point into guest RAM and stay valid for the life of the VM. */
struct vq_chain {
	uint16_t head;    /* what vq_push() gives back to the driver */
	unsigned nr_out;  /* device-readable segments */
	unsigned nr_in;   /* device-writable segments */
	size_t out_len;   /* bytes in the readable segments */
	size_t in_len;    /* bytes in the writable segments */
	struct iovec iov[VQ_MAX_CHAIN];
};

/* A split virtqueue. The transport fills size and the three addresses
 * from the driver's writes, then calls vq_enable(). Not thread-safe: the
 * owning device serialises every call with its lock. */
struct vq {
	struct vm *vm;
	uint16_t max_size;   /* offered Queue Size (a power of 2) */
	uint16_t size;       /* driver's Queue Size */
	uint64_t desc_gpa;   /* Descriptor Area */
	uint64_t avail_gpa;  /* Driver Area */
	uint64_t used_gpa;   /* Device Area */
	bool ready;          /* enabled, rings resolved */
	bool broken;         /* the driver broke the rules: no more pops */
	uint16_t last_avail; /* next available-ring index to take */
	uint16_t used_idx;   /* used->idx as last published */
	uint8_t *desc;       /* host views of the rings (NULL until ready) */
	uint8_t *avail;
	uint8_t *used;
};

/* vq_init: a fresh, disabled queue of (vm) offering (max_size) entries
 * (a power of 2, at most VQ_MAX_SIZE). */
void vq_init(struct vq *vq, struct vm *vm, uint16_t max_size);
/* vq_reset: back to vq_init's state (device reset, virtio 1.2 §2.4). */
void vq_reset(struct vq *vq);
/* vq_enable: check (vq)'s size and ring addresses (power-of-2 size no
 * larger than max_size, §2.7 alignments, all three areas in RAM) and make
 * it ready. Returns 0, or -EINVAL / -EFAULT and leaves it disabled. */
int vq_enable(struct vq *vq);

/* vq_pop: take the next available chain into (chain). Returns 1 with a
 * chain, 0 when the ring is empty (or the queue is not ready), or a
 * negative errno when the driver broke the ring: -EFAULT for an address
 * outside RAM, -EINVAL for a bad index, a loop, a chain longer than the
 * queue, nested indirection or writable-before-readable order. After an
 * error the queue is broken: every later vq_pop fails with -EIO until
 * vq_reset (the caller reports DEVICE_NEEDS_RESET, §2.1.2). */
int vq_pop(struct vq *vq, struct vq_chain *chain);
/* vq_unpop: give back the last (count) chains vq_pop returned, not yet
 * pushed; they come out again from the next vq_pop. */
void vq_unpop(struct vq *vq, uint16_t count);
/* vq_has_avail: true if vq_pop would find a chain (or an error). */
bool vq_has_avail(struct vq *vq);

/* vq_fill: write used element (pos) past the published index: chain
 * (head) with (len) bytes written into its writable segments. vq_flush:
 * publish (count) filled elements at once (the driver sees them together,
 * as mergeable receive buffers need, §5.1.6.4). vq_push: fill + flush one.
 * Lengths are counted in 64 bits by the devices; the used element's len
 * is 32 bits (§2.7.8), which holds any chain vq_pop accepts (at most
 * 2^32 - 1 bytes, §2.7.5.2); a larger (len) is clamped to UINT32_MAX. */
void vq_fill(struct vq *vq, uint16_t pos, uint16_t head, uint64_t len);
void vq_flush(struct vq *vq, uint16_t count);
void vq_push(struct vq *vq, uint16_t head, uint64_t len);
/* vq_notify_needed: after pushing, whether the driver wants a used-buffer
 * notification (VIRTQ_AVAIL_F_NO_INTERRUPT clear, §2.7.7; no EVENT_IDX). */
bool vq_notify_needed(struct vq *vq);

/* Copying between flat buffers and segment lists. vq_iov_read copies up
 * to (len) bytes starting (off) bytes into (iov) to (buf); vq_iov_write
 * copies (buf) into (iov) at (off). Both return the bytes copied (short at
 * the end of the segments). vq_iov_slice describes bytes [off, off + len)
 * of (iov) as at most (max) segments in (out) and returns their count;
 * *(got) receives the bytes covered. */
size_t vq_iov_read(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len);
size_t vq_iov_write(const struct iovec *iov, unsigned n, size_t off, const void *buf,
                    size_t len);
unsigned vq_iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len,
                      struct iovec *out, unsigned max, size_t *got);

/* Snapshot (vmm/snapshot.h): vq_snap_save appends (vq)'s state: size
 * (u16), the three ring addresses (u64), ready broken (bool), last_avail
 * used_idx (u16). No event-index state: VIRTIO_F_EVENT_IDX is never
 * offered. vq_snap_load reads it into (vq), a copy of the queue it is for
 * (same machine and offered size), checking it as vq_enable would (size,
 * alignment, rings in RAM); a queue not ready must be as reset left it.
 * Returns false (and marks (r) bad) if the state is not one the queue can
 * have. */
void vq_snap_save(const struct vq *vq, struct snap_writer *w);
bool vq_snap_load(struct vq *vq, struct snap_reader *r);

#endif /* ZHV_VMM_VIRTQUEUE_H */
