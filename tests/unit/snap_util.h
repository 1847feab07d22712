/* snap_util.h: helpers for the unit tests of the devices' snapshot
 * sections (vmm/snapshot.h): find a machine's section, save it, load it,
 * and check that damaged sections are refused and change nothing. */
#ifndef ZHV_TESTS_SNAP_UTIL_H
#define ZHV_TESTS_SNAP_UTIL_H

static inline struct snap_section *snapt_find(struct vm *vm, const char *name)
{
	for (unsigned i = 0; i < vm->nsnapshots; i++)
		if (!strcmp(vm->snapshots[i].name, name))
			return &vm->snapshots[i];
	fail_msg("no snapshot section %s", name);
	return NULL;
}

/* Save section (name) of (vm) into (w) (freed by the caller). */
static inline void snapt_save(struct vm *vm, const char *name, struct snap_writer *w)
{
	struct snap_section *s = snapt_find(vm, name);
	assert_int_equal(s->version, 1);
	*w = (struct snap_writer){0};
	assert_int_equal(s->save(s->opaque, w), 0);
	assert_int_equal(w->err, 0);
}

static inline int snapt_load(struct vm *vm, const char *name, const uint8_t *p, size_t len)
{
	struct snap_section *s = snapt_find(vm, name);
	/* A copy of exactly (len) bytes: ASan sees any read past the end. */
	uint8_t *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	if (len)
		memcpy(copy, p, len);
	struct snap_reader r = {.p = copy, .len = len};
	int ret = s->load(s->opaque, &r);
	free(copy);
	return ret;
}

/* The device's section saves the same bytes as (ref) but for its last
 * (skip) (a time remainder, which runs on). */
static inline void snapt_assert_same(struct vm *vm, const char *name, const struct snap_writer *ref,
                              size_t skip)
{
	struct snap_writer w;
	snapt_save(vm, name, &w);
	assert_int_equal(w.len, ref->len);
	assert_true(skip <= w.len);
	if (w.len > skip)
		assert_memory_equal(w.buf, ref->buf, w.len - skip);
	snap_writer_free(&w);
}

/* Every proper prefix of (p, len) and (p, len) with one more byte are
 * refused (-EINVAL) by (vm)'s section, and leave the device as it was:
 * its next save is the same, but for its last (skip) bytes (times). */
static inline void snapt_check_bad_lengths(struct vm *vm, const char *name, const uint8_t *p,
                                    size_t len, size_t skip)
{
	struct snap_writer before;
	snapt_save(vm, name, &before);
	for (size_t n = 0; n < len; n++)
		assert_int_equal(snapt_load(vm, name, p, n), -EINVAL);
	uint8_t *longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, p, len);
	longer[len] = 0;
	assert_int_equal(snapt_load(vm, name, longer, len + 1), -EINVAL);
	free(longer);
	snapt_assert_same(vm, name, &before, skip);
	snap_writer_free(&before);
}

/* (p, len) with byte (off) set to (v) is refused, changing nothing. */
static inline void snapt_check_bad_byte(struct vm *vm, const char *name, const uint8_t *p, size_t len,
                                 size_t off, uint8_t v, size_t skip)
{
	assert_true(off < len);
	struct snap_writer before;
	snapt_save(vm, name, &before);
	uint8_t *bad = malloc(len);
	assert_non_null(bad);
	memcpy(bad, p, len);
	bad[off] = v;
	assert_int_equal(snapt_load(vm, name, bad, len), -EINVAL);
	free(bad);
	snapt_assert_same(vm, name, &before, skip);
	snap_writer_free(&before);
}

/* A little-endian access of (size) bytes at (addr) on (bus), through the
 * range that holds it. */
static inline uint32_t snapt_io(struct bus *bus, uint64_t addr, bool write, uint32_t v, unsigned size)
{
	for (unsigned i = 0; i < bus->count; i++) {
		const struct bus_range *r = &bus->ranges[i];
		if (addr < r->base || addr >= r->base + r->len)
			continue;
		uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
		r->fn(r->opaque, addr - r->base, write, d, size);
		uint32_t out = 0;
		for (unsigned b = 0; b < size; b++)
			out |= (uint32_t)d[b] << (8 * b);
		return out;
	}
	fail_msg("address %#llx not registered", (unsigned long long)addr);
	return 0;
}

#endif
