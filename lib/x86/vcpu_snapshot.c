/* vcpu_snapshot.c: a vCPU's whole state as one blob (zhv_vcpu_save,
 * zhv_vcpu_restore; the format is in zhv.h and vcpu_blob.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu_blob.h"
#include "zhv_priv.h"

#define MSR_IA32_TSC_DEADLINE 0x6e0

/* Everything a blob holds, read from KVM. */
struct vcpu_image {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	bool have_xcrs, have_debugregs;
	uint32_t tracker[2];
	uint32_t nmsrs;
	struct kvm_msr_entry msrs[BLOB_MSRS_MAX];
};

static zhv_status_t get(zhv_vcpu_t *v, unsigned long req, void *arg, const char *name)
{
	int e = zhv_ioctl(v->fd, req, arg);
	if (e < 0) {
		zhv_log(ZHV_LOG_ERROR, "vcpu %u: %s: %s", v->id, name, strerror(-e));
		return ZHV_ERR_IO;
	}
	return ZHV_OK;
}
#define GET(v, req, arg) get((v), (req), (arg), #req)
#define SET(v, req, arg) get((v), (req), (void *)(arg), #req)

/* FNV-1a, 64-bit. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* The vCPU model a blob is for: what the guest's CPUID policy says of the
 * CPU in the leaves that decide which state exists and what it means
 * (vendor, family/model/stepping, feature leaves, XSAVE components and
 * sizes). APIC IDs are left out (the blob's header has its own). */
static uint64_t vcpu_model(const zhv_guest_t *g)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const struct kvm_cpuid2 *c = g->cpuid;
	for (uint32_t i = 0; c && i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		uint32_t w[6] = {e->function, e->index, 0, 0, 0, 0};
		switch (e->function) {
		case 0:
			w[2] = e->eax, w[3] = e->ebx, w[4] = e->ecx, w[5] = e->edx;
			break;
		case 1:
			w[2] = e->eax, w[4] = e->ecx, w[5] = e->edx;
			break;
		case 7:
			if (e->index != 0)
				continue;
			w[3] = e->ebx, w[4] = e->ecx, w[5] = e->edx;
			break;
		case 0xd:
			w[2] = e->eax, w[3] = e->ebx, w[4] = e->ecx, w[5] = e->edx;
			break;
		case 0x80000001:
			w[4] = e->ecx, w[5] = e->edx;
			break;
		default:
			continue;
		}
		/* x2APIC / APIC ID bits of leaf 1 live in ebx, left out. */
		h = fnv(h, w, sizeof(w));
	}
	return h;
}

static zhv_status_t image_read(zhv_vcpu_t *v, struct vcpu_image *im)
{
	zhv_status_t st = GET(v, KVM_GET_REGS, &im->regs);
	if (st == ZHV_OK)
		st = GET(v, KVM_GET_SREGS, &im->sregs);
	if (st == ZHV_OK)
		st = GET(v, KVM_GET_XSAVE, &im->xsave);
	if (st == ZHV_OK)
		st = GET(v, KVM_GET_LAPIC, &im->lapic);
	if (st == ZHV_OK)
		st = GET(v, KVM_GET_VCPU_EVENTS, &im->events);
	if (st == ZHV_OK)
		st = GET(v, KVM_GET_MP_STATE, &im->mp);
	if (st != ZHV_OK)
		return st;
	im->have_xcrs = zhv_ioctl(v->fd, KVM_GET_XCRS, &im->xcrs) >= 0;
	im->have_debugregs = zhv_ioctl(v->fd, KVM_GET_DEBUGREGS, &im->debugregs) >= 0;
	im->tracker[0] = irq_tracker_pending_mask(&v->tracker);
	im->tracker[1] = 0;

	uint32_t idx[BLOB_MSRS_MAX];
	uint32_t n = vcpu_saved_msr_list(v, idx, BLOB_MSRS_MAX);
	for (uint32_t i = 0; i < n; i++)
		im->msrs[i] = (struct kvm_msr_entry){.index = idx[i]};
	/* Keep the MSRs KVM lets us read (the others this vCPU lacks). */
	int64_t k = vcpu_msrs_each(v, KVM_GET_MSRS, im->msrs, n, true);
	if (k < 0)
		return (zhv_status_t)k;
	im->nmsrs = (uint32_t)k;
	return ZHV_OK;
}

/* Write (im) as a blob into (buf, cap); the size goes to *len. */
static zhv_status_t image_write(zhv_vcpu_t *v, const struct vcpu_image *im, void *buf, size_t cap,
                                size_t *len)
{
	struct blob_writer w;
	blob_begin(&w, buf, cap);
	blob_add(&w, BLOB_SEC_REGS, &im->regs, sizeof(im->regs));
	blob_add(&w, BLOB_SEC_SREGS, &im->sregs, sizeof(im->sregs));
	blob_add(&w, BLOB_SEC_XSAVE, &im->xsave, sizeof(im->xsave));
	if (im->have_xcrs)
		blob_add(&w, BLOB_SEC_XCRS, &im->xcrs, sizeof(im->xcrs));
	if (im->have_debugregs)
		blob_add(&w, BLOB_SEC_DEBUGREGS, &im->debugregs, sizeof(im->debugregs));
	size_t msz = 8 + (size_t)im->nmsrs * BLOB_MSR_ENTRY_SIZE;
	uint8_t *m = calloc(1, msz);
	if (!m)
		return ZHV_ERR_NO_MEMORY;
	memcpy(m, &im->nmsrs, 4);
	for (uint32_t i = 0; i < im->nmsrs; i++) {
		memcpy(m + 8 + i * BLOB_MSR_ENTRY_SIZE, &im->msrs[i].index, 4);
		memcpy(m + 8 + i * BLOB_MSR_ENTRY_SIZE + 8, &im->msrs[i].data, 8);
	}
	blob_add(&w, BLOB_SEC_MSRS, m, (uint32_t)msz);
	free(m);
	blob_add(&w, BLOB_SEC_LAPIC, &im->lapic, sizeof(im->lapic));
	blob_add(&w, BLOB_SEC_EVENTS, &im->events, sizeof(im->events));
	blob_add(&w, BLOB_SEC_MPSTATE, &im->mp, sizeof(im->mp));
	blob_add(&w, BLOB_SEC_TRACKER, im->tracker, sizeof(im->tracker));
	bool ok = blob_finish(&w, vcpu_model(v->guest), v->apic_id);
	*len = w.len;
	return ok ? ZHV_OK : ZHV_ERR_BUFFER_TOO_SMALL;
}

zhv_status_t vcpu_blob_save(zhv_vcpu_t *v, void *buf, size_t cap, size_t *len)
{
	if (!len || (!buf && cap))
		return ZHV_ERR_INVALID_ARGS;
	/* The blob holds no exit in flight: finish it (answers given so far). */
	zhv_status_t st = vcpu_complete_pending(v);
	if (st != ZHV_OK)
		return st;
	struct vcpu_image *im = calloc(1, sizeof(*im));
	if (!im)
		return ZHV_ERR_NO_MEMORY;
	st = image_read(v, im);
	if (st == ZHV_OK)
		st = image_write(v, im, buf, cap, len);
	free(im);
	return st;
}

zhv_status_t vcpu_blob_check_for(zhv_vcpu_t *v, const struct blob_view *view)
{
	if (view->info.model != vcpu_model(v->guest) || view->info.apic_id != v->apic_id)
		return ZHV_ERR_WRONG_TYPE;
	return ZHV_OK;
}

zhv_status_t vcpu_msrs_prepare(const struct blob_view *view, struct vcpu_msrs_prepared *p)
{
	const uint8_t *sec = view->sec[BLOB_SEC_MSRS];
	uint32_t count;
	memcpy(&count, sec, 4);
	memset(p, 0, sizeof(*p));
	p->msrs = calloc(1, sizeof(*p->msrs) + (size_t)(count + 1) * sizeof(struct kvm_msr_entry));
	if (!p->msrs)
		return ZHV_ERR_NO_MEMORY;
	uint32_t n = 0;
	for (uint32_t i = 0; i < count; i++) {
		struct kvm_msr_entry x = {0};
		memcpy(&x.index, sec + 8 + i * BLOB_MSR_ENTRY_SIZE, 4);
		memcpy(&x.data, sec + 8 + i * BLOB_MSR_ENTRY_SIZE + 8, 8);
		if (x.index == MSR_IA32_TSC_DEADLINE) {
			p->deadline = x.data;
			p->have_deadline = true;
			continue;
		}
		p->msrs->entries[n++] = x;
	}
	p->msrs->nmsrs = n;
	return ZHV_OK;
}

void vcpu_msrs_release(struct vcpu_msrs_prepared *p)
{
	free(p->msrs);
	p->msrs = NULL;
}

/* KVM_SET_MSRS of all->entries[i..nmsrs) without copying: the 8 bytes in
 * front of entries[i] (the value of entry i - 1) stand in for the header
 * during the call. Returns what the ioctl returns. */
static int set_msrs_from(zhv_vcpu_t *v, struct kvm_msrs *all, uint32_t n, uint32_t i)
{
	_Static_assert(sizeof(struct kvm_msrs) == 8, "kvm_msrs header is 8 bytes");
	if (i == 0)
		return zhv_ioctl(v->fd, KVM_SET_MSRS, all);
	uint8_t *at = (uint8_t *)&all->entries[i] - sizeof(struct kvm_msrs);
	uint8_t saved[8];
	memcpy(saved, at, sizeof(saved));
	struct kvm_msrs h = {.nmsrs = n - i};
	memcpy(at, &h, sizeof(h));
	int r = zhv_ioctl(v->fd, KVM_SET_MSRS, at);
	memcpy(at, saved, sizeof(saved));
	return r;
}

/* KVM_SET_MSRS of the prepared MSRs (without the TSC deadline, set last
 * once the LAPIC's timer mode is in place), in one ioctl when KVM takes
 * them all. KVM stops at the first MSR it refuses; that one is accepted
 * only if it already holds the blob's value, and the rest go on. No
 * allocation (a reset loop runs this every time). */
static zhv_status_t apply_msrs(zhv_vcpu_t *v, struct kvm_msrs *all)
{
	uint32_t n = all->nmsrs, i = 0;
	while (i < n) {
		int r = set_msrs_from(v, all, n, i);
		if (r < 0) {
			zhv_log(ZHV_LOG_ERROR, "vcpu %u: KVM_SET_MSRS: %s", v->id, strerror(-r));
			return ZHV_ERR_IO;
		}
		i += (uint32_t)r;
		if (i >= n)
			break;
		const struct kvm_msr_entry *e = &all->entries[i];
		union {
			struct kvm_msrs h;
			uint8_t buf[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
		} one;
		memset(&one, 0, sizeof(one));
		one.h.nmsrs = 1;
		one.h.entries[0].index = e->index;
		if (zhv_ioctl(v->fd, KVM_GET_MSRS, &one) != 1 || one.h.entries[0].data != e->data) {
			zhv_log(ZHV_LOG_ERROR, "vcpu %u: KVM refuses MSR %#x = %#llx", v->id, e->index,
			        (unsigned long long)e->data);
			return ZHV_ERR_IO;
		}
		zhv_log(ZHV_LOG_DEBUG, "vcpu %u: KVM refuses to write MSR %#x; it holds the value",
		        v->id, e->index);
		i++;
	}
	return ZHV_OK;
}

zhv_status_t vcpu_blob_apply(zhv_vcpu_t *v, const struct blob_view *view,
                             const struct vcpu_msrs_prepared *msrs)
{
	zhv_status_t st = vcpu_complete_pending(v);
	if (st != ZHV_OK)
		return st;
	/* The order of QEMU's and Firecracker's restore: SREGS first (EFER,
	 * CR4 and APIC base decide what the rest means), the LAPIC before the
	 * MSRs (the TSC deadline needs the timer's mode), events and run state
	 * last. */
	st = SET(v, KVM_SET_SREGS, view->sec[BLOB_SEC_SREGS]);
	if (st == ZHV_OK)
		st = SET(v, KVM_SET_REGS, view->sec[BLOB_SEC_REGS]);
	if (st == ZHV_OK && view->sec[BLOB_SEC_XCRS])
		st = SET(v, KVM_SET_XCRS, view->sec[BLOB_SEC_XCRS]);
	if (st == ZHV_OK)
		st = SET(v, KVM_SET_XSAVE, view->sec[BLOB_SEC_XSAVE]);
	if (st == ZHV_OK)
		st = SET(v, KVM_SET_LAPIC, view->sec[BLOB_SEC_LAPIC]);
	if (st == ZHV_OK)
		st = apply_msrs(v, msrs->msrs);
	if (st == ZHV_OK && msrs->have_deadline) {
		union {
			struct kvm_msrs h;
			uint8_t buf[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
		} d;
		memset(&d, 0, sizeof(d));
		d.h.nmsrs = 1;
		d.h.entries[0].index = MSR_IA32_TSC_DEADLINE;
		d.h.entries[0].data = msrs->deadline;
		if (zhv_ioctl(v->fd, KVM_SET_MSRS, &d) != 1) {
			zhv_log(ZHV_LOG_ERROR, "vcpu %u: KVM refuses the TSC deadline", v->id);
			st = ZHV_ERR_IO;
		}
	}
	if (st == ZHV_OK && view->sec[BLOB_SEC_DEBUGREGS])
		st = SET(v, KVM_SET_DEBUGREGS, view->sec[BLOB_SEC_DEBUGREGS]);
	if (st == ZHV_OK) {
		struct kvm_vcpu_events ev;
		memcpy(&ev, view->sec[BLOB_SEC_EVENTS], sizeof(ev));
		ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
		            KVM_VCPUEVENT_VALID_SHADOW;
		st = SET(v, KVM_SET_VCPU_EVENTS, &ev);
	}
	if (st == ZHV_OK)
		st = SET(v, KVM_SET_MP_STATE, view->sec[BLOB_SEC_MPSTATE]);
	if (st == ZHV_OK) {
		uint32_t mask;
		memcpy(&mask, view->sec[BLOB_SEC_TRACKER], 4);
		irq_tracker_set_mask(&v->tracker, mask);
	}
	return st;
}

/* zhv_vcpu_restore without the thread check: check, then apply, and put
 * the previous state back if KVM refuses part of it. */
zhv_status_t vcpu_blob_restore(zhv_vcpu_t *v, const void *buf, size_t len)
{
	struct blob_view view;
	zhv_status_t st = blob_check(buf, len, &view);
	if (st == ZHV_OK)
		st = vcpu_blob_check_for(v, &view);
	if (st != ZHV_OK)
		return st;
	void *old = malloc(ZHV_VCPU_BLOB_MAX);
	if (!old)
		return ZHV_ERR_NO_MEMORY;
	size_t old_len = 0;
	st = vcpu_blob_save(v, old, ZHV_VCPU_BLOB_MAX, &old_len);
	struct vcpu_msrs_prepared pm = {0}, pback = {0};
	if (st == ZHV_OK)
		st = vcpu_msrs_prepare(&view, &pm);
	if (st == ZHV_OK) {
		st = vcpu_blob_apply(v, &view, &pm);
		struct blob_view back;
		if (st != ZHV_OK && blob_check(old, old_len, &back) == ZHV_OK &&
		    (vcpu_msrs_prepare(&back, &pback) != ZHV_OK ||
		     vcpu_blob_apply(v, &back, &pback) != ZHV_OK))
			zhv_log(ZHV_LOG_ERROR, "vcpu %u: restore failed and the previous state "
			        "could not be put back", v->id);
	}
	vcpu_msrs_release(&pm);
	vcpu_msrs_release(&pback);
	free(old);
	return st;
}
