/* virtqueue.c: split virtqueues (virtio 1.2 §2.7): chain walking, used ring, notification hint. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "../vm.h"
#include "virtqueue.h"

/* A descriptor as it sits in guest memory (virtio 1.2 §2.7.5). */
struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct vq_desc) == 16, "virtq_desc is 16 bytes");

/* Offsets inside the driver and device areas (virtio 1.2 §2.7.6, §2.7.8). */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 2
#define AVAIL_RING(i) (4u + 2u * (i))
#define USED_IDX 2
#define USED_RING(i) (4u + 8u * (i))

/* The rings are shared with running vCPUs: every index and flag word is
 * read exactly once with the ordering virtio 1.2 §2.7.13 asks for. The
 * views are naturally aligned (vq_enable checks the §2.7 alignments and
 * guest RAM is page aligned on the host). */
static uint16_t load16_acquire(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_ACQUIRE));
}

static uint16_t load16(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_RELAXED));
}

static void store16_release(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)p, htole16(v), __ATOMIC_RELEASE);
}

static bool is_pow2(uint32_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

void vq_init(struct vq *vq, struct vm *vm, uint16_t max_size)
{
	memset(vq, 0, sizeof(*vq));
	vq->vm = vm;
	vq->max_size = max_size;
	vq->size = max_size;
}

void vq_reset(struct vq *vq)
{
	vq_init(vq, vq->vm, vq->max_size);
}

int vq_enable(struct vq *vq)
{
	uint16_t n = vq->size;

	vq->ready = false;
	if (!is_pow2(n) || n > vq->max_size)
		return -EINVAL;
	/* virtio 1.2 §2.7: descriptor table 16-, driver area 2-, device area
	 * 4-byte aligned. */
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
		return -EINVAL;
	vq->desc = vm_gpa(vq->vm, vq->desc_gpa, VQ_DESC_BYTES(n));
	vq->avail = vm_gpa(vq->vm, vq->avail_gpa, VQ_AVAIL_BYTES(n));
	vq->used = vm_gpa(vq->vm, vq->used_gpa, VQ_USED_BYTES(n));
	if (!vq->desc || !vq->avail || !vq->used) {
		vq->desc = vq->avail = vq->used = NULL;
		return -EFAULT;
	}
	vq->broken = false;
	vq->last_avail = 0;
	vq->used_idx = 0;
	vq->ready = true;
	return 0;
}

static int vq_fail(struct vq *vq, int err)
{
	vq->broken = true;
	return err;
}

static void read_desc(const uint8_t *table, uint32_t i, struct vq_desc *d)
{
	struct vq_desc raw;

	memcpy(&raw, table + 16ull * i, sizeof(raw));
	d->addr = le64toh(raw.addr);
	d->len = le32toh(raw.len);
	d->flags = le16toh(raw.flags);
	d->next = le16toh(raw.next);
}

/* Walk the chain at (head) into (c). Bounded: at most (size) descriptors
 * of the ring plus at most (table entries) of one indirect table, and at
 * most VQ_MAX_CHAIN non-empty segments in all. */
static int walk_chain(struct vq *vq, uint16_t head, struct vq_chain *c)
{
	const uint8_t *table = vq->desc;
	uint32_t max = vq->size, idx = head, visited = 0;
	bool indirect = false;
	unsigned nseg = 0;
	uint64_t total = 0;

	c->head = head;
	c->nr_out = c->nr_in = 0;
	c->out_len = c->in_len = 0;
	for (;;) {
		struct vq_desc d;
		void *p;

		if (idx >= max || ++visited > max)
			return -EINVAL; /* index out of the table, or a loop */
		read_desc(table, idx, &d);
		if (d.flags & VQ_DESC_F_INDIRECT) {
			/* virtio 1.2 §2.7.5.3.1: one table, no NEXT beside
			 * INDIRECT, whole descriptors; WRITE is ignored. */
			if (indirect || (d.flags & VQ_DESC_F_NEXT))
				return -EINVAL;
			if (d.len == 0 || d.len % 16 || d.len / 16 > VQ_MAX_CHAIN)
				return -EINVAL;
			table = vm_gpa(vq->vm, d.addr, d.len);
			if (!table)
				return -EFAULT;
			max = d.len / 16;
			idx = 0;
			visited = 0;
			indirect = true;
			continue;
		}
		if (d.flags & VQ_DESC_F_WRITE)
			c->nr_in++;
		else if (c->nr_in)
			return -EINVAL; /* readable after writable: §2.7.4.2 */
		else
			c->nr_out++;
		if (d.len) {
			total += d.len;
			if (total > UINT32_MAX || nseg == VQ_MAX_CHAIN)
				return -EINVAL; /* §2.7.5.2: 2^32 bytes at most */
			p = vm_gpa(vq->vm, d.addr, d.len);
			if (!p)
				return -EFAULT;
			c->iov[nseg].iov_base = p;
			c->iov[nseg].iov_len = d.len;
			nseg++;
			if (d.flags & VQ_DESC_F_WRITE)
				c->in_len += d.len;
			else
				c->out_len += d.len;
		} else if (d.flags & VQ_DESC_F_WRITE) {
			c->nr_in--;
		} else {
			c->nr_out--;
		}
		if (!(d.flags & VQ_DESC_F_NEXT))
			return 0;
		idx = d.next;
	}
}

bool vq_has_avail(struct vq *vq)
{
	if (!vq->ready)
		return false;
	return vq->broken || load16_acquire(vq->avail + AVAIL_IDX) != vq->last_avail;
}

int vq_pop(struct vq *vq, struct vq_chain *chain)
{
	uint16_t avail_idx, head;
	int r;

	if (!vq->ready)
		return 0;
	if (vq->broken)
		return -EIO;
	/* Acquire: the ring entries and descriptors the driver wrote before
	 * bumping idx are visible after this load (§2.7.13). */
	avail_idx = load16_acquire(vq->avail + AVAIL_IDX);
	if (avail_idx == vq->last_avail)
		return 0;
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->size)
		return vq_fail(vq, -EINVAL); /* more entries than the ring holds */
	head = load16(vq->avail + AVAIL_RING(vq->last_avail & (vq->size - 1u)));
	r = walk_chain(vq, head, chain);
	if (r < 0)
		return vq_fail(vq, r);
	vq->last_avail++;
	return 1;
}

void vq_unpop(struct vq *vq, uint16_t count)
{
	vq->last_avail -= count;
}

void vq_fill(struct vq *vq, uint16_t pos, uint16_t head, uint64_t len)
{
	uint8_t *elem;
	uint32_t raw[2] = { htole32(head), htole32(len > UINT32_MAX ? UINT32_MAX : (uint32_t)len) };

	if (!vq->ready)
		return;
	elem = vq->used + USED_RING((uint16_t)(vq->used_idx + pos) & (vq->size - 1u));
	memcpy(elem, raw, sizeof(raw));
}

void vq_flush(struct vq *vq, uint16_t count)
{
	if (!vq->ready)
		return;
	vq->used_idx += count;
	/* Release: the elements are visible before the index (§2.7.13). */
	store16_release(vq->used + USED_IDX, vq->used_idx);
}

void vq_push(struct vq *vq, uint16_t head, uint64_t len)
{
	vq_fill(vq, 0, head, len);
	vq_flush(vq, 1);
}

bool vq_notify_needed(struct vq *vq)
{
	if (!vq->ready)
		return false;
	/* Full barrier: the used index store is ordered before the flags
	 * load, or a driver re-enabling interrupts could be missed. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return !(load16(vq->avail + AVAIL_FLAGS) & VQ_AVAIL_F_NO_INTERRUPT);
}

size_t vq_iov_read(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len)
{
	uint8_t *dst = buf;
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t seg = iov[i].iov_len, chunk;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		chunk = seg - off;
		if (chunk > len - done)
			chunk = len - done;
		memcpy(dst + done, (const uint8_t *)iov[i].iov_base + off, chunk);
		done += chunk;
		off = 0;
	}
	return done;
}

size_t vq_iov_write(const struct iovec *iov, unsigned n, size_t off, const void *buf,
                    size_t len)
{
	const uint8_t *src = buf;
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t seg = iov[i].iov_len, chunk;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		chunk = seg - off;
		if (chunk > len - done)
			chunk = len - done;
		memcpy((uint8_t *)iov[i].iov_base + off, src + done, chunk);
		done += chunk;
		off = 0;
	}
	return done;
}

unsigned vq_iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len,
                      struct iovec *out, unsigned max, size_t *got)
{
	unsigned count = 0;
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len && count < max; i++) {
		size_t seg = iov[i].iov_len, chunk;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		chunk = seg - off;
		if (chunk > len - done)
			chunk = len - done;
		out[count].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[count].iov_len = chunk;
		count++;
		done += chunk;
		off = 0;
	}
	if (got)
		*got = done;
	return count;
}

void vq_snap_save(const struct vq *vq, struct snap_writer *w)
{
	snap_put_u16(w, vq->size);
	snap_put_u64(w, vq->desc_gpa);
	snap_put_u64(w, vq->avail_gpa);
	snap_put_u64(w, vq->used_gpa);
	snap_put_bool(w, vq->ready);
	snap_put_bool(w, vq->broken);
	snap_put_u16(w, vq->last_avail);
	snap_put_u16(w, vq->used_idx);
}

bool vq_snap_load(struct vq *vq, struct snap_reader *r)
{
	vq->size = snap_get_u16(r);
	vq->desc_gpa = snap_get_u64(r);
	vq->avail_gpa = snap_get_u64(r);
	vq->used_gpa = snap_get_u64(r);
	bool ready = snap_get_bool(r), broken = snap_get_bool(r);
	uint16_t last_avail = snap_get_u16(r), used_idx = snap_get_u16(r);
	vq->ready = false;
	vq->desc = vq->avail = vq->used = NULL;
	if (r->err)
		return false;
	if (ready) {
		if (vq_enable(vq) < 0) {
			snap_bad(r);
			return false;
		}
		vq->broken = broken;
		vq->last_avail = last_avail;
		vq->used_idx = used_idx;
		return true;
	}
	if (broken || last_avail || used_idx) {
		snap_bad(r);
		return false;
	}
	vq->broken = false;
	vq->last_avail = vq->used_idx = 0;
	return true;
}
