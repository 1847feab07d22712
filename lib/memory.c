/* memory.c: a guest's physical address space as a sorted list of regions,
 * each backed by one KVM memory slot.
 *
 * KVM cannot resize or move a slot, so unmapping or protecting part of a
 * region deletes its slot and installs new slots for the parts that stay.
 * A vCPU fetching code or walking page tables in that window would find no
 * memory there (and triple-fault), so every such multi-ioctl change runs
 * with the guest's vCPUs held outside KVM_RUN (DESIGN decision 9; the
 * m->hold hook, guest.c and vcpu.c), and callers of enter never see it.
 * Every ioctl is checked; when KVM refuses, the map and KVM's slots are put
 * back as they were. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zhv_priv.h"

#define PAGE_MASK (ZHV_PAGE_SIZE - 1)

zhv_status_t memory_init(struct guest_memory *m, int vm_fd, uint32_t nr_slots)
{
	memset(m, 0, sizeof(*m));
	m->vm_fd = vm_fd;
	m->nr_slots = nr_slots;
	m->slot_bits = calloc((nr_slots + 63) / 64, sizeof(uint64_t));
	if (!m->slot_bits)
		return ZHV_ERR_NO_MEMORY;
	pthread_rwlock_init(&m->lock, NULL);
	return ZHV_OK;
}

void memory_destroy(struct guest_memory *m)
{
	/* The slots go away with the VM file descriptor. */
	free(m->regions);
	free(m->slot_bits);
	pthread_rwlock_destroy(&m->lock);
	memset(m, 0, sizeof(*m));
}

static int slot_alloc(struct guest_memory *m)
{
	for (uint32_t i = 0; i < m->nr_slots; i++) {
		if (!(m->slot_bits[i / 64] & (1ull << (i % 64)))) {
			m->slot_bits[i / 64] |= 1ull << (i % 64);
			return (int)i;
		}
	}
	return -1;
}

static void slot_free(struct guest_memory *m, int slot)
{
	if (slot >= 0)
		m->slot_bits[slot / 64] &= ~(1ull << (slot % 64));
}

/* Install (r) into KVM. KVM can withhold writes (KVM_MEM_READONLY) but
 * not reads or execution. On failure r->slot is -1 and nothing changed. */
static zhv_status_t region_install(struct guest_memory *m, struct mem_region *r)
{
	r->slot = -1;
	int slot = slot_alloc(m);
	if (slot < 0)
		return ZHV_ERR_NO_RESOURCES;
	struct kvm_userspace_memory_region kr = {
		.slot = (uint32_t)slot,
		.flags = !(r->flags & ZHV_MAP_WRITE) ? KVM_MEM_READONLY
		         : m->log_dirty              ? KVM_MEM_LOG_DIRTY_PAGES
		                                     : 0,
		.guest_phys_addr = r->gpa,
		.memory_size = r->size,
		.userspace_addr = (uintptr_t)r->hva,
	};
	int e = zhv_ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &kr);
	if (e < 0) {
		slot_free(m, slot);
		zhv_log(ZHV_LOG_ERROR, "KVM_SET_USER_MEMORY_REGION(gpa=%#llx size=%#llx): %s",
		        (unsigned long long)r->gpa, (unsigned long long)r->size, strerror(-e));
		return e == -EEXIST ? ZHV_ERR_ALREADY_EXISTS : zhv_status_from_errno(e);
	}
	r->slot = slot;
	return ZHV_OK;
}

/* Remove (r)'s slot from KVM. On failure nothing changed. */
static zhv_status_t region_uninstall(struct guest_memory *m, struct mem_region *r)
{
	if (r->slot < 0)
		return ZHV_OK;
	struct kvm_userspace_memory_region kr = {
		.slot = (uint32_t)r->slot,
		.guest_phys_addr = r->gpa,
		.memory_size = 0,
	};
	int e = zhv_ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &kr);
	if (e < 0) {
		zhv_log(ZHV_LOG_ERROR, "KVM_SET_USER_MEMORY_REGION(delete slot %d, gpa=%#llx): %s",
		        r->slot, (unsigned long long)r->gpa, strerror(-e));
		return zhv_status_from_errno(e);
	}
	slot_free(m, r->slot);
	r->slot = -1;
	return ZHV_OK;
}

/* Put a region whose slot is gone back into KVM after a failed change. If
 * KVM refuses even that, the region stays in the map without a slot: its
 * accesses then exit to libzhv, which performs them on the host memory
 * (exit.c), so the guest still sees its RAM, only slower. */
static void region_restore(struct guest_memory *m, struct mem_region *r)
{
	if (region_install(m, r) != ZHV_OK)
		zhv_log(ZHV_LOG_ERROR, "gpa %#llx: RAM left without a KVM slot (served by exits)",
		        (unsigned long long)r->gpa);
}

/* Hold the guest's vCPUs out of KVM_RUN before the first ioctl of a
 * multi-ioctl change (once per change; *held remembers it). */
static void hold_vcpus(struct guest_memory *m, bool *held)
{
	if (*held || !m->hold)
		return;
	m->hold(m->hold_opaque, true);
	*held = true;
}

static void release_vcpus(struct guest_memory *m, bool held)
{
	if (held && m->hold)
		m->hold(m->hold_opaque, false);
}

static zhv_status_t regions_reserve(struct guest_memory *m, size_t extra)
{
	if (m->count + extra <= m->cap)
		return ZHV_OK;
	size_t cap = m->cap ? m->cap * 2 : 8;
	while (cap < m->count + extra)
		cap *= 2;
	struct mem_region *n = realloc(m->regions, cap * sizeof(*n));
	if (!n)
		return ZHV_ERR_NO_MEMORY;
	m->regions = n;
	m->cap = cap;
	return ZHV_OK;
}

/* Index of the first region that ends after (gpa). */
static size_t first_after(const struct guest_memory *m, uint64_t gpa)
{
	size_t lo = 0, hi = m->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->regions[mid].gpa + m->regions[mid].size <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void regions_insert_at(struct guest_memory *m, size_t i, const struct mem_region *r)
{
	memmove(&m->regions[i + 1], &m->regions[i], (m->count - i) * sizeof(*r));
	m->regions[i] = *r;
	m->count++;
}

static void regions_remove_at(struct guest_memory *m, size_t i)
{
	memmove(&m->regions[i], &m->regions[i + 1], (m->count - i - 1) * sizeof(m->regions[0]));
	m->count--;
}

static zhv_status_t check_range(uint64_t gpa, uint64_t size)
{
	if (size == 0 || (gpa & PAGE_MASK) || (size & PAGE_MASK))
		return ZHV_ERR_INVALID_ARGS;
	if (gpa + size < gpa || gpa + size > ZHV_GUEST_PHYS_SIZE)
		return ZHV_ERR_OUT_OF_RANGE;
	return ZHV_OK;
}

/* READ is required: KVM cannot withhold reads (no write-only or
 * no-access RAM). */
static bool flags_valid(uint32_t flags)
{
	return (flags & ZHV_MAP_READ) && !(flags & ~(uint32_t)ZHV_MAP_RWX);
}

zhv_status_t memory_map(struct guest_memory *m, uint64_t gpa, void *hva, uint64_t size,
                        uint32_t flags)
{
	zhv_status_t st = check_range(gpa, size);
	if (st != ZHV_OK)
		return st;
	if (!hva || ((uintptr_t)hva & PAGE_MASK) || !flags_valid(flags))
		return ZHV_ERR_INVALID_ARGS;

	pthread_rwlock_wrlock(&m->lock);
	size_t i = first_after(m, gpa);
	if (i < m->count && m->regions[i].gpa < gpa + size) {
		st = ZHV_ERR_ALREADY_EXISTS;
		goto out;
	}
	st = regions_reserve(m, 1);
	if (st != ZHV_OK)
		goto out;
	struct mem_region r = {.gpa = gpa, .size = size, .hva = hva, .flags = flags};
	st = region_install(m, &r);
	if (st == ZHV_OK)
		regions_insert_at(m, i, &r);
out:
	m->gen++;
	pthread_rwlock_unlock(&m->lock);
	return st;
}

/* Split so that no region straddles (at): the region's slot is replaced by
 * one slot per part, with the vCPUs held out of KVM_RUN. Caller holds the
 * write lock and has reserved room for one more region. On failure the
 * map and KVM are as before. */
static zhv_status_t split_at(struct guest_memory *m, uint64_t at, bool *held)
{
	size_t i = first_after(m, at);
	if (i >= m->count)
		return ZHV_OK;
	struct mem_region *r = &m->regions[i];
	if (r->gpa >= at)
		return ZHV_OK;
	struct mem_region left = *r, right = *r;
	left.size = at - r->gpa;
	right.gpa = at;
	right.size = r->gpa + r->size - at;
	right.hva = r->hva + left.size;
	hold_vcpus(m, held);
	zhv_status_t st = region_uninstall(m, r);
	if (st != ZHV_OK)
		return st;
	st = region_install(m, &left);
	if (st == ZHV_OK) {
		st = region_install(m, &right);
		if (st != ZHV_OK && region_uninstall(m, &left) != ZHV_OK) {
			/* left keeps its slot: keep both halves in the map,
			 * right served by exits (region_restore). */
			m->regions[i] = left;
			right.slot = -1;
			regions_insert_at(m, i + 1, &right);
			return st;
		}
	}
	if (st != ZHV_OK) {
		region_restore(m, r); /* only slot exhaustion or ENOMEM gets here */
		return st;
	}
	m->regions[i] = left;
	regions_insert_at(m, i + 1, &right);
	return ZHV_OK;
}

zhv_status_t memory_unmap(struct guest_memory *m, uint64_t gpa, uint64_t size)
{
	zhv_status_t st = check_range(gpa, size);
	if (st != ZHV_OK)
		return st == ZHV_ERR_OUT_OF_RANGE ? ZHV_ERR_INVALID_ARGS : st;

	bool held = false;
	pthread_rwlock_wrlock(&m->lock);
	st = regions_reserve(m, 2);
	if (st == ZHV_OK)
		st = split_at(m, gpa, &held);
	if (st == ZHV_OK)
		st = split_at(m, gpa + size, &held);
	/* Each whole region goes with one ioctl: no hold needed for that. */
	size_t i = first_after(m, gpa);
	while (st == ZHV_OK && i < m->count && m->regions[i].gpa < gpa + size) {
		st = region_uninstall(m, &m->regions[i]);
		if (st == ZHV_OK)
			regions_remove_at(m, i);
	}
	m->gen++;
	pthread_rwlock_unlock(&m->lock);
	release_vcpus(m, held);
	return st;
}

zhv_status_t memory_protect(struct guest_memory *m, uint64_t gpa, uint64_t size, uint32_t flags)
{
	zhv_status_t st = check_range(gpa, size);
	if (st != ZHV_OK)
		return st;
	if (!flags_valid(flags))
		return ZHV_ERR_INVALID_ARGS;

	bool held = false;
	pthread_rwlock_wrlock(&m->lock);
	/* The whole range must be mapped. */
	uint64_t cur = gpa;
	for (size_t i = first_after(m, gpa); i < m->count && cur < gpa + size; i++) {
		if (m->regions[i].gpa > cur)
			break; /* a hole */
		cur = m->regions[i].gpa + m->regions[i].size;
	}
	if (cur < gpa + size) {
		st = ZHV_ERR_NOT_FOUND;
		goto out;
	}
	/* Nothing to do when every page already has (flags): no split. */
	bool change = false;
	for (size_t i = first_after(m, gpa); i < m->count && m->regions[i].gpa < gpa + size; i++)
		change |= m->regions[i].flags != flags;
	if (!change)
		goto out;
	st = regions_reserve(m, 2);
	if (st == ZHV_OK)
		st = split_at(m, gpa, &held);
	if (st == ZHV_OK)
		st = split_at(m, gpa + size, &held);
	if (st != ZHV_OK)
		goto out;
	/* Only a change of WRITE changes a KVM slot (READONLY); READ and
	 * EXECUTE are bookkeeping, KVM cannot withhold them. The flags are
	 * recorded once every slot is in place. */
	size_t first = first_after(m, gpa), i;
	for (i = first; i < m->count && m->regions[i].gpa < gpa + size; i++) {
		struct mem_region *r = &m->regions[i];
		if (!((r->flags ^ flags) & ZHV_MAP_WRITE))
			continue;
		hold_vcpus(m, &held);
		st = region_uninstall(m, r);
		if (st != ZHV_OK)
			break;
		uint32_t old = r->flags;
		r->flags = flags;
		st = region_install(m, r);
		if (st != ZHV_OK) {
			r->flags = old;
			region_restore(m, r);
			break;
		}
		r->flags = old; /* set below, once every region made it */
	}
	if (st != ZHV_OK) {
		/* Roll back the regions already changed in KVM. */
		for (size_t k = first; k < i; k++) {
			struct mem_region *r = &m->regions[k];
			if (!((r->flags ^ flags) & ZHV_MAP_WRITE))
				continue;
			if (region_uninstall(m, r) == ZHV_OK)
				region_restore(m, r); /* with its old flags */
		}
		goto out;
	}
	for (i = first; i < m->count && m->regions[i].gpa < gpa + size; i++)
		m->regions[i].flags = flags;
out:
	m->gen++;
	pthread_rwlock_unlock(&m->lock);
	release_vcpus(m, held);
	return st;
}

static const struct mem_region *find_locked(const struct guest_memory *m, uint64_t gpa,
                                            uint64_t len)
{
	size_t i = first_after(m, gpa);
	if (i >= m->count)
		return NULL;
	const struct mem_region *r = &m->regions[i];
	if (r->gpa > gpa || gpa + len > r->gpa + r->size)
		return NULL;
	return r;
}

void *memory_lookup(struct guest_memory *m, uint64_t gpa, uint64_t len, uint32_t *flags)
{
	if (len == 0 || gpa + len < gpa)
		return NULL;
	pthread_rwlock_rdlock(&m->lock);
	const struct mem_region *r = find_locked(m, gpa, len);
	void *p = r ? r->hva + (gpa - r->gpa) : NULL;
	if (r && flags)
		*flags = r->flags;
	pthread_rwlock_unlock(&m->lock);
	return p;
}

/* Copy page by page, since a range may span regions. */
bool memory_read(struct guest_memory *m, uint64_t gpa, void *buf, size_t len)
{
	uint8_t *out = buf;
	while (len) {
		size_t n = ZHV_PAGE_SIZE - (gpa & PAGE_MASK);
		if (n > len)
			n = len;
		uint8_t *p = memory_lookup(m, gpa, n, NULL);
		if (!p)
			return false;
		memcpy(out, p, n);
		out += n, gpa += n, len -= n;
	}
	return true;
}

bool memory_write(struct guest_memory *m, uint64_t gpa, const void *buf, size_t len)
{
	const uint8_t *in = buf;
	while (len) {
		size_t n = ZHV_PAGE_SIZE - (gpa & PAGE_MASK);
		if (n > len)
			n = len;
		pthread_rwlock_rdlock(&m->lock);
		const struct mem_region *r = find_locked(m, gpa, n);
		if (r) {
			memcpy(r->hva + (gpa - r->gpa), in, n);
			if (m->on_write)
				m->on_write(m->on_write_opaque, gpa, n);
		}
		pthread_rwlock_unlock(&m->lock);
		if (!r)
			return false;
		in += n, gpa += n, len -= n;
	}
	return true;
}

/* Set (flags) on the KVM slot of (r) in place (KVM allows a change of the
 * dirty-log flag alone on a live slot: one ioctl, no hold needed). */
static zhv_status_t region_set_kvm_flags(struct guest_memory *m, const struct mem_region *r,
                                         uint32_t flags)
{
	struct kvm_userspace_memory_region kr = {
		.slot = (uint32_t)r->slot,
		.flags = flags,
		.guest_phys_addr = r->gpa,
		.memory_size = r->size,
		.userspace_addr = (uintptr_t)r->hva,
	};
	int e = zhv_ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &kr);
	if (e < 0) {
		zhv_log(ZHV_LOG_ERROR, "KVM_SET_USER_MEMORY_REGION(slot %d, dirty log %s): %s",
		        r->slot, (flags & KVM_MEM_LOG_DIRTY_PAGES) ? "on" : "off", strerror(-e));
		return zhv_status_from_errno(e);
	}
	return ZHV_OK;
}

zhv_status_t memory_set_log_dirty(struct guest_memory *m, bool on,
                                  void (*on_write)(void *, uint64_t, size_t), void *opaque,
                                  uint64_t *gen)
{
	zhv_status_t st = ZHV_OK;
	pthread_rwlock_wrlock(&m->lock);
	size_t i;
	for (i = 0; i < m->count; i++) {
		const struct mem_region *r = &m->regions[i];
		if (r->slot < 0 || !(r->flags & ZHV_MAP_WRITE))
			continue;
		st = region_set_kvm_flags(m, r, on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
		if (st != ZHV_OK)
			break;
	}
	if (st != ZHV_OK) {
		for (size_t k = 0; k < i; k++) {
			const struct mem_region *r = &m->regions[k];
			if (r->slot >= 0 && (r->flags & ZHV_MAP_WRITE))
				(void)region_set_kvm_flags(m, r, on ? 0 : KVM_MEM_LOG_DIRTY_PAGES);
		}
	}
	if (st != ZHV_OK && !on) {
		/* Turning off: the hook goes whatever KVM did (its owner is
		 * going away); a slot still logging costs only speed. */
		m->log_dirty = false;
		m->on_write = NULL;
		m->on_write_opaque = NULL;
	} else if (st == ZHV_OK) {
		m->log_dirty = on;
		m->on_write = on ? on_write : NULL;
		m->on_write_opaque = on ? opaque : NULL;
		if (gen)
			*gen = m->gen;
	}
	pthread_rwlock_unlock(&m->lock);
	return st;
}
