/* snapshot.c: the guest's clock (kvmclock's time base) and reset-to-
 * snapshot (zhv.h, "Snapshots").
 *
 * A snapshot keeps a copy of every writable RAM region and has KVM log the
 * guest's writes to them (KVM_MEM_LOG_DIRTY_PAGES). A reset takes each
 * slot's log (KVM_GET_DIRTY_LOG, which also re-arms it) and copies back
 * only the pages in it, plus the pages libzhv or the program wrote
 * (on_write, zhv_snapshot_mark_dirty), so its cost follows the pages
 * written, not the guest's size; the host pages stay the same pages, so
 * KVM's mappings of the untouched ones stay warm. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vcpu_blob.h"
#include "zhv_priv.h"

/* ---- the guest's clock -------------------------------------------------- */

zhv_status_t zhv_guest_get_clock(zhv_guest_t *g, zhv_guest_clock_t *clock)
{
	if (!g || !clock)
		return ZHV_ERR_INVALID_ARGS;
	struct kvm_clock_data d;
	memset(&d, 0, sizeof(d));
	int e = zhv_ioctl(g->vm_fd, KVM_GET_CLOCK, &d);
	if (e < 0) {
		zhv_log(ZHV_LOG_ERROR, "KVM_GET_CLOCK: %s", strerror(-e));
		return ZHV_ERR_IO;
	}
	memset(clock, 0, sizeof(*clock));
	clock->ns = d.clock;
	clock->flags = d.flags;
#ifdef KVM_CLOCK_HOST_TSC
	if (d.flags & KVM_CLOCK_HOST_TSC)
		clock->host_tsc = d.host_tsc;
#endif
	return ZHV_OK;
}

zhv_status_t zhv_guest_set_clock(zhv_guest_t *g, const zhv_guest_clock_t *clock)
{
	if (!g || !clock)
		return ZHV_ERR_INVALID_ARGS;
	/* Only the clock: the guest's time goes on from it (no REALTIME
	 * flag, which would add the time the guest spent saved). */
	struct kvm_clock_data d;
	memset(&d, 0, sizeof(d));
	d.clock = clock->ns;
	int e = zhv_ioctl(g->vm_fd, KVM_SET_CLOCK, &d);
	if (e < 0) {
		zhv_log(ZHV_LOG_ERROR, "KVM_SET_CLOCK(%llu): %s", (unsigned long long)clock->ns,
		        strerror(-e));
		return e == -EINVAL ? ZHV_ERR_INVALID_ARGS : ZHV_ERR_IO;
	}
	return ZHV_OK;
}

/* ---- reset-to-snapshot -------------------------------------------------- */

struct snap_region {
	uint64_t gpa, size;
	uint8_t *hva;          /* the guest's RAM (the program's memory) */
	int slot;              /* KVM slot, -1 if none (served by exits) */
	uint8_t *copy;         /* the snapshot's copy */
	uint64_t *log;         /* KVM_GET_DIRTY_LOG's bitmap */
	_Atomic uint64_t *host; /* pages written by libzhv or the program */
	size_t words;          /* of log and host */
};

struct snap_vcpu {
	void *blob;
	size_t len;
	struct blob_view view;
	struct vcpu_msrs_prepared msrs;
};

struct zhv_snapshot {
	zhv_guest_t *guest;
	uint64_t gen; /* the memory map's generation at the snapshot */
	size_t nregions;
	struct snap_region *regions;
	zhv_guest_clock_t clock;
	pthread_mutex_t lock; /* vcpus */
	size_t nvcpus;
	struct snap_vcpu *vcpus; /* indexed by APIC ID */
};

static struct snap_region *region_of(zhv_snapshot_t *s, uint64_t gpa)
{
	size_t lo = 0, hi = s->nregions;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct snap_region *r = &s->regions[mid];
		if (gpa < r->gpa)
			hi = mid;
		else if (gpa >= r->gpa + r->size)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

/* Mark the pages of [gpa, gpa + len) written; false if one is not in the
 * snapshot. */
static bool mark(zhv_snapshot_t *s, uint64_t gpa, uint64_t len)
{
	bool all = true;
	uint64_t end = gpa + len;
	for (uint64_t p = gpa & ~(ZHV_PAGE_SIZE - 1); p < end; p += ZHV_PAGE_SIZE) {
		struct snap_region *r = region_of(s, p);
		if (!r) {
			all = false;
			continue;
		}
		uint64_t page = (p - r->gpa) / ZHV_PAGE_SIZE;
		atomic_fetch_or(&r->host[page / 64], 1ull << (page % 64));
	}
	return all;
}

/* memory_write's hook: libzhv wrote guest RAM (under the memory lock). */
static void on_write(void *opaque, uint64_t gpa, size_t len)
{
	(void)mark(opaque, gpa, len);
}

static void snapshot_free(zhv_snapshot_t *s)
{
	for (size_t i = 0; i < s->nregions; i++) {
		struct snap_region *r = &s->regions[i];
		if (r->copy)
			munmap(r->copy, r->size);
		free(r->log);
		free((void *)r->host);
	}
	free(s->regions);
	for (size_t i = 0; i < s->nvcpus; i++) {
		free(s->vcpus[i].blob);
		vcpu_msrs_release(&s->vcpus[i].msrs);
	}
	free(s->vcpus);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* KVM_GET_DIRTY_LOG of (r) into r->log (which it also clears in KVM). */
static zhv_status_t get_log(zhv_guest_t *g, struct snap_region *r)
{
	if (r->slot < 0)
		return ZHV_OK;
	struct kvm_dirty_log d;
	memset(&d, 0, sizeof(d));
	d.slot = (uint32_t)r->slot;
	d.dirty_bitmap = r->log;
	int e = zhv_ioctl(g->vm_fd, KVM_GET_DIRTY_LOG, &d);
	if (e < 0) {
		zhv_log(ZHV_LOG_ERROR, "KVM_GET_DIRTY_LOG(slot %d): %s", r->slot, strerror(-e));
		return ZHV_ERR_IO;
	}
	return ZHV_OK;
}

zhv_status_t zhv_snapshot_create(zhv_guest_t *g, zhv_snapshot_t **out)
{
	if (!g || !out)
		return ZHV_ERR_INVALID_ARGS;
	bool expected = false;
	if (!atomic_compare_exchange_strong(&g->has_snapshot, &expected, true))
		return ZHV_ERR_ALREADY_EXISTS;
	zhv_snapshot_t *s = calloc(1, sizeof(*s));
	if (!s) {
		atomic_store(&g->has_snapshot, false);
		return ZHV_ERR_NO_MEMORY;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->guest = g;
	zhv_status_t st = ZHV_OK;
	bool logging = false;
	guest_hold_vcpus(g);

	/* The writable regions, as the map has them now. */
	struct guest_memory *m = &g->mem;
	pthread_rwlock_rdlock(&m->lock);
	s->regions = calloc(m->count ? m->count : 1, sizeof(*s->regions));
	for (size_t i = 0; s->regions && i < m->count; i++) {
		const struct mem_region *mr = &m->regions[i];
		if (!(mr->flags & ZHV_MAP_WRITE))
			continue;
		s->regions[s->nregions++] = (struct snap_region){
			.gpa = mr->gpa, .size = mr->size, .hva = mr->hva, .slot = mr->slot,
		};
	}
	pthread_rwlock_unlock(&m->lock);
	if (!s->regions) {
		st = ZHV_ERR_NO_MEMORY;
		goto fail;
	}
	if (s->nregions == 0) {
		st = ZHV_ERR_NOT_FOUND;
		goto fail;
	}
	for (size_t i = 0; i < s->nregions; i++) {
		struct snap_region *r = &s->regions[i];
		size_t pages = r->size / ZHV_PAGE_SIZE;
		r->words = (pages + 63) / 64;
		r->log = calloc(r->words, sizeof(uint64_t));
		r->host = calloc(r->words, sizeof(uint64_t));
		void *c = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		               -1, 0);
		r->copy = c == MAP_FAILED ? NULL : c;
		if (!r->log || !r->host || !r->copy) {
			st = ZHV_ERR_NO_MEMORY;
			goto fail;
		}
	}
	uint64_t gen = 0;
	st = memory_set_log_dirty(m, true, on_write, s, &gen);
	if (st != ZHV_OK)
		goto fail;
	logging = true;
	/* The map must still be the one read above (no change slipped in). */
	pthread_rwlock_rdlock(&m->lock);
	size_t k = 0;
	for (size_t i = 0; i < m->count; i++) {
		const struct mem_region *mr = &m->regions[i];
		if (!(mr->flags & ZHV_MAP_WRITE))
			continue;
		if (k >= s->nregions || s->regions[k].gpa != mr->gpa ||
		    s->regions[k].size != mr->size || s->regions[k].slot != mr->slot)
			st = ZHV_ERR_BAD_STATE;
		k++;
	}
	pthread_rwlock_unlock(&m->lock);
	if (st == ZHV_OK && k != s->nregions)
		st = ZHV_ERR_BAD_STATE;
	s->gen = gen;
	/* Empty the logs, then copy: the vCPUs are held, nothing writes. */
	for (size_t i = 0; st == ZHV_OK && i < s->nregions; i++) {
		struct snap_region *r = &s->regions[i];
		st = get_log(g, r);
		if (st == ZHV_OK)
			memcpy(r->copy, r->hva, r->size);
	}
	if (st == ZHV_OK)
		st = zhv_guest_get_clock(g, &s->clock);
	if (st != ZHV_OK)
		goto fail;
	guest_release_vcpus(g);
	guest_ref(g);
	*out = s;
	return ZHV_OK;
fail:
	if (logging)
		(void)memory_set_log_dirty(m, false, NULL, NULL, NULL);
	guest_release_vcpus(g);
	snapshot_free(s);
	atomic_store(&g->has_snapshot, false);
	return st;
}

zhv_status_t zhv_snapshot_add_vcpu(zhv_snapshot_t *s, zhv_vcpu_t *v)
{
	if (!s || !v || v->guest != s->guest)
		return ZHV_ERR_INVALID_ARGS;
	if (!vcpu_on_thread(v))
		return ZHV_ERR_BAD_STATE;
	size_t len = 0;
	zhv_status_t st = vcpu_blob_save(v, NULL, 0, &len);
	if (st != ZHV_ERR_BUFFER_TOO_SMALL && st != ZHV_OK)
		return st;
	/* MSRs KVM lets us read may differ by one between two reads in
	 * theory; save into a buffer of the bound instead. */
	void *blob = malloc(ZHV_VCPU_BLOB_MAX);
	if (!blob)
		return ZHV_ERR_NO_MEMORY;
	st = vcpu_blob_save(v, blob, ZHV_VCPU_BLOB_MAX, &len);
	struct blob_view view;
	struct vcpu_msrs_prepared msrs = {0};
	if (st == ZHV_OK)
		st = blob_check(blob, len, &view);
	if (st == ZHV_OK)
		st = vcpu_msrs_prepare(&view, &msrs);
	if (st != ZHV_OK) {
		free(blob);
		return st;
	}
	pthread_mutex_lock(&s->lock);
	if (v->apic_id >= s->nvcpus) {
		size_t n = (size_t)v->apic_id + 1;
		struct snap_vcpu *nv = realloc(s->vcpus, n * sizeof(*nv));
		if (!nv) {
			pthread_mutex_unlock(&s->lock);
			free(blob);
			vcpu_msrs_release(&msrs);
			return ZHV_ERR_NO_MEMORY;
		}
		memset(nv + s->nvcpus, 0, (n - s->nvcpus) * sizeof(*nv));
		s->vcpus = nv;
		s->nvcpus = n;
	}
	struct snap_vcpu *sv = &s->vcpus[v->apic_id];
	free(sv->blob);
	vcpu_msrs_release(&sv->msrs);
	sv->blob = blob;
	sv->len = len;
	sv->view = view; /* points into blob */
	sv->msrs = msrs;
	pthread_mutex_unlock(&s->lock);
	return ZHV_OK;
}

/* Copy back every page of (r) set in (bits) (one word per 64 pages). */
static void copy_back(struct snap_region *r, size_t w, uint64_t bits)
{
	while (bits) {
		unsigned b = (unsigned)__builtin_ctzll(bits);
		bits &= bits - 1;
		size_t off = (w * 64 + b) * ZHV_PAGE_SIZE;
		memcpy(r->hva + off, r->copy + off, ZHV_PAGE_SIZE);
	}
}

zhv_status_t zhv_snapshot_reset(zhv_snapshot_t *s)
{
	if (!s)
		return ZHV_ERR_INVALID_ARGS;
	zhv_guest_t *g = s->guest;
	zhv_status_t st = ZHV_OK;
	guest_hold_vcpus(g);
	pthread_rwlock_rdlock(&g->mem.lock);
	if (g->mem.gen != s->gen) {
		st = ZHV_ERR_BAD_STATE;
		goto out;
	}
	for (size_t i = 0; st == ZHV_OK && i < s->nregions; i++) {
		struct snap_region *r = &s->regions[i];
		st = get_log(g, r);
		for (size_t w = 0; st == ZHV_OK && w < r->words; w++) {
			uint64_t bits = atomic_exchange(&r->host[w], 0);
			if (r->slot >= 0)
				bits |= r->log[w];
			copy_back(r, w, bits);
		}
	}
	if (st == ZHV_OK)
		st = zhv_guest_set_clock(g, &s->clock);
out:
	pthread_rwlock_unlock(&g->mem.lock);
	guest_release_vcpus(g);
	return st;
}

zhv_status_t zhv_snapshot_reset_vcpu(zhv_snapshot_t *s, zhv_vcpu_t *v)
{
	if (!s || !v || v->guest != s->guest)
		return ZHV_ERR_INVALID_ARGS;
	if (!vcpu_on_thread(v))
		return ZHV_ERR_BAD_STATE;
	pthread_mutex_lock(&s->lock);
	struct snap_vcpu *sv = v->apic_id < s->nvcpus ? &s->vcpus[v->apic_id] : NULL;
	struct blob_view view;
	struct vcpu_msrs_prepared msrs;
	bool have = sv && sv->blob;
	if (have) {
		view = sv->view;
		msrs = sv->msrs;
	}
	pthread_mutex_unlock(&s->lock);
	if (!have)
		return ZHV_ERR_NOT_FOUND;
	/* The blob stays while this vCPU's thread uses it: only this thread
	 * replaces it (zhv_snapshot_add_vcpu runs on it too). */
	return vcpu_blob_apply(v, &view, &msrs);
}

zhv_status_t zhv_snapshot_mark_dirty(zhv_snapshot_t *s, uint64_t gpa, uint64_t len)
{
	if (!s || len == 0 || gpa + len < gpa)
		return ZHV_ERR_INVALID_ARGS;
	return mark(s, gpa, len) ? ZHV_OK : ZHV_ERR_NOT_FOUND;
}

void zhv_snapshot_destroy(zhv_snapshot_t *s)
{
	if (!s)
		return;
	zhv_guest_t *g = s->guest;
	guest_hold_vcpus(g);
	if (memory_set_log_dirty(&g->mem, false, NULL, NULL, NULL) != ZHV_OK)
		zhv_log(ZHV_LOG_WARN, "snapshot: KVM kept logging writes to guest RAM");
	/* memory_set_log_dirty removed the hook even if KVM refused. */
	guest_release_vcpus(g);
	snapshot_free(s);
	atomic_store(&g->has_snapshot, false);
	guest_unref(g);
}
