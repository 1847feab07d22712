/* snapshot.h: the state of zhv run's devices in a snapshot (zhv ctl
 * snapshot, zhv run --restore).
 *
 * A device with state that a snapshot must carry registers one section at
 * its creation, next to its teardown (vm_add_snapshot). A section has a
 * name unique in the machine and stable across releases ("uart0", "pit",
 * "pci", "virtio-blk0", ...), a version of its own layout, and two calls:
 *
 *   save(opaque, w)  appends the device's state to w (snap_put_*). Called
 *                    with every vCPU paused, from the thread that takes
 *                    the snapshot; the device takes its own lock. Returns
 *                    0, -EBUSY when it cannot be saved at this moment, or
 *                    -ENOTSUP when it cannot be saved at all (a TAP in use):
 *                    the snapshot is then refused with the device's name.
 *   load(opaque, r)  sets the device's state from r (snap_get_*), on a
 *                    freshly created machine, before any vCPU runs. Must
 *                    check every value it takes (a snapshot is input: a
 *                    bad one is refused, never run) and consume the
 *                    section exactly. Returns 0 or -EINVAL.
 *
 * Values are little-endian and fixed-width; nothing host-specific (no
 * pointers, no fds, no host times: a device keeps deadlines as guest-time
 * remainders, e.g. nanoseconds left or counts). */
#ifndef ZHV_VMM_SNAPSHOT_H
#define ZHV_VMM_SNAPSHOT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A growing buffer. err: 0, or -ENOMEM once an append failed (every later
 * append is then dropped; the caller checks err once at the end). */
struct snap_writer {
	uint8_t *buf;
	size_t len, cap;
	int err;
};

/* A bounded reader. err: 0, or -EINVAL once a read ran past the end (every
 * later read then yields zeros). */
struct snap_reader {
	const uint8_t *p;
	size_t len, off;
	int err;
};

static inline void snap_put(struct snap_writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	if (n > w->cap - w->len) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap - w->len < n) {
			if (cap > SIZE_MAX / 2) {
				w->err = -ENOMEM;
				return;
			}
			cap *= 2;
		}
		uint8_t *b = realloc(w->buf, cap);
		if (!b) {
			w->err = -ENOMEM;
			return;
		}
		w->buf = b;
		w->cap = cap;
	}
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static inline void snap_put_u8(struct snap_writer *w, uint8_t v) { snap_put(w, &v, 1); }
static inline void snap_put_u16(struct snap_writer *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	snap_put(w, b, 2);
}
static inline void snap_put_u32(struct snap_writer *w, uint32_t v)
{
	uint8_t b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	snap_put(w, b, 4);
}
static inline void snap_put_u64(struct snap_writer *w, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	snap_put(w, b, 8);
}
static inline void snap_put_bool(struct snap_writer *w, bool v) { snap_put_u8(w, v ? 1 : 0); }

static inline void snap_writer_free(struct snap_writer *w)
{
	free(w->buf);
	*w = (struct snap_writer){0};
}

static inline bool snap_get(struct snap_reader *r, void *p, size_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = -EINVAL;
		memset(p, 0, n);
		return false;
	}
	memcpy(p, r->p + r->off, n);
	r->off += n;
	return true;
}

static inline uint8_t snap_get_u8(struct snap_reader *r)
{
	uint8_t v;
	snap_get(r, &v, 1);
	return v;
}
static inline uint16_t snap_get_u16(struct snap_reader *r)
{
	uint8_t b[2];
	snap_get(r, b, 2);
	return (uint16_t)(b[0] | b[1] << 8);
}
static inline uint32_t snap_get_u32(struct snap_reader *r)
{
	uint8_t b[4];
	uint32_t v = 0;
	snap_get(r, b, 4);
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}
static inline uint64_t snap_get_u64(struct snap_reader *r)
{
	uint8_t b[8];
	uint64_t v = 0;
	snap_get(r, b, 8);
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}
/* A bool must be stored as 0 or 1: anything else makes the section bad. */
static inline bool snap_get_bool(struct snap_reader *r)
{
	uint8_t v = snap_get_u8(r);
	if (v > 1)
		r->err = -EINVAL;
	return v == 1;
}
/* Marks the section bad (a value out of range). */
static inline void snap_bad(struct snap_reader *r) { r->err = -EINVAL; }
/* 0 if every read was in bounds and the section was consumed exactly. */
static inline int snap_reader_end(const struct snap_reader *r)
{
	return r->err ? r->err : (r->off == r->len ? 0 : -EINVAL);
}

/* One registered section (vm_add_snapshot). */
struct snap_section {
	char name[32];
	uint32_t version;
	int (*save)(void *opaque, struct snap_writer *w);
	int (*load)(void *opaque, struct snap_reader *r);
	void *opaque;
};

#endif
