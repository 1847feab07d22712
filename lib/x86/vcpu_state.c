/* vcpu_state.c: a vCPU's initial state (spec 2.2) and the state kinds of
 * zhv_vcpu_read_state / zhv_vcpu_write_state (spec 1.8). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "zhv_priv.h"

/* clang-format off */
#define CR0_PE   (1ull << 0)
#define CR0_ET   (1ull << 4)
#define CR0_WP   (1ull << 16)
#define CR0_PG   (1ull << 31)
#define CR4_PAE  (1ull << 5)
#define CR4_PGE  (1ull << 7)
#define CR4_OSFXSR  (1ull << 9)
#define CR4_FSGSBASE (1ull << 16)
#define CR4_OSXSAVE (1ull << 18)
#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)
#define APIC_BASE_ADDR  0xfee00000ull
#define APIC_BASE_BSP   (1ull << 8)
#define APIC_BASE_EXTD  (1ull << 10)
#define APIC_BASE_EN    (1ull << 11)
#define APIC_REG_ID     0x20
#define APIC_REG_LDR    0xd0
#define APIC_REG_SVR    0xf0
/* clang-format on */

static zhv_status_t vcpu_ioctl(zhv_vcpu_t *v, unsigned long req, void *arg, const char *name)
{
	int e = zhv_ioctl(v->fd, req, arg);
	if (e < 0) {
		zhv_log(ZHV_LOG_ERROR, "vcpu %u: %s: %s", v->id, name, strerror(-e));
		return e == -EINVAL ? ZHV_ERR_INVALID_ARGS : ZHV_ERR_IO;
	}
	return ZHV_OK;
}
#define VCPU_IOCTL(v, req, arg) vcpu_ioctl((v), (req), (arg), #req)

/* ---- initial state ---------------------------------------------------------- */

static void seg_flat16(struct kvm_segment *s, uint8_t type, uint16_t sel, uint64_t base)
{
	memset(s, 0, sizeof(*s));
	s->base = base;
	s->limit = 0xffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
}

static zhv_status_t set_msr(zhv_vcpu_t *v, uint32_t index, uint64_t value)
{
	union {
		struct kvm_msrs h;
		uint8_t buf[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} m;
	memset(&m, 0, sizeof(m));
	m.h.nmsrs = 1;
	m.h.entries[0].index = index;
	m.h.entries[0].data = value;
	int r = zhv_ioctl(v->fd, KVM_SET_MSRS, &m);
	return r == 1 ? ZHV_OK : ZHV_ERR_IO;
}

/* ---- power-on state of a KVM vCPU (reuse of vCPU ids) --------------------------
 * KVM cannot destroy a vCPU before its VM, and refuses KVM_SET_CPUID2 once a
 * vCPU has run. So libzhv keeps each KVM vCPU in its slot, and the first
 * time it creates one it captures everything KVM gave it right after its
 * CPUID was installed: registers, segments and control registers, XSAVE
 * image and XCR0, debug registers, MSRs, pending events, run state and the
 * LAPIC page. A later vCPU with the same id (the same APIC ID, hence the
 * same CPUID) skips KVM_SET_CPUID2 and puts that state back; from there both
 * are set up by the same code, so that a reused vCPU cannot be told from a
 * new one. */
#define MSR_IA32_TSC 0x10
#define MSR_CHUNK 128 /* KVM takes fewer than 256 MSRs per ioctl */

/* MSRs a vCPU has that KVM_GET_MSR_INDEX_LIST does not list: PAT and the
 * MTRRs (capability 8 variable ranges, KVM's number). */
static const uint32_t extra_msrs[] = {
	0x277,                                                  /* PAT */
	0x2ff,                                                  /* MTRRdefType */
	0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, /* fixed MTRRs */
	0x26d, 0x26e, 0x26f,
	0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206, 0x207, /* variable MTRRs */
	0x208, 0x209, 0x20a, 0x20b, 0x20c, 0x20d, 0x20e, 0x20f,
};

/* MSRs not to capture. Those of the VM rather than of the vCPU: KVM keeps
 * one value for all its vCPUs, so a new vCPU sees the VM's current value,
 * and a reused one must not write an old one back (KVM's wall clock;
 * Hyper-V's partition-wide MSRs: guest OS id, hypercall page, reset,
 * reference counter and TSC page, crash and synthetic-debugger registers,
 * re-enlightenment, TSC emulation and invariant TSC control). Those that
 * are windows on the local APIC, whose page is restored whole and where a
 * write has effects (an ICR write sends an IPI, an EOI write ends an
 * interrupt): the x2APIC range and Hyper-V's EOI, ICR and TPR. The TSC is
 * handled on its own. */
static bool msr_not_captured(uint32_t index)
{
	switch (index) {
	case MSR_IA32_TSC:
	case 0x11:
	case 0x4b564d00:
	case 0x40000000:
	case 0x40000001:
	case 0x40000003:
	case 0x40000020:
	case 0x40000021:
	case 0x40000118:
		return true;
	}
	return (index >= 0x40000100 && index <= 0x40000108) ||
	       (index >= 0x400000f1 && index <= 0x400000ff) ||
	       (index >= 0x40000070 && index <= 0x40000072) || (index >= 0x800 && index <= 0x8ff);
}

uint32_t vcpu_saved_msr_list(zhv_vcpu_t *v, uint32_t *idx, uint32_t max)
{
	uint32_t n = 0;
	for (size_t i = 0; i < sizeof(extra_msrs) / sizeof(extra_msrs[0]) && n < max; i++)
		idx[n++] = extra_msrs[i];
	if (n < max)
		idx[n++] = MSR_IA32_TSC;
	struct kvm_msr_list *list = calloc(1, sizeof(*list) + POWER_ON_MSRS_MAX * sizeof(uint32_t));
	if (!list)
		return n;
	list->nmsrs = POWER_ON_MSRS_MAX;
	if (zhv_ioctl(v->guest->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0)
		list->nmsrs = 0;
	for (uint32_t i = 0; i < list->nmsrs && n < max; i++) {
		uint32_t index = list->indices[i];
		bool dup = msr_not_captured(index);
		for (uint32_t k = 0; k < n && !dup; k++)
			dup = idx[k] == index;
		if (!dup)
			idx[n++] = index;
	}
	free(list);
	return n;
}

/* KVM_GET_MSRS or KVM_SET_MSRS (req) of entries[0..n), one MSR KVM refuses
 * not stopping the others (KVM stops an ioctl at the first one it refuses).
 * With (drop), refused entries are removed from the array. Returns the
 * number of entries left (drop) or refused (!drop), or a negative status
 * if an ioctl failed as a whole. */
int64_t vcpu_msrs_each(zhv_vcpu_t *v, unsigned long req, struct kvm_msr_entry *e, uint32_t n,
                         bool drop)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + MSR_CHUNK * sizeof(*e));
	if (!m)
		return ZHV_ERR_NO_MEMORY;
	uint32_t kept = 0, refused = 0, i = 0;
	while (i < n) {
		uint32_t chunk = n - i < MSR_CHUNK ? n - i : MSR_CHUNK;
		m->nmsrs = chunk;
		memcpy(m->entries, e + i, chunk * sizeof(*e));
		int r = zhv_ioctl(v->fd, req, m);
		if (r < 0) {
			zhv_log(ZHV_LOG_ERROR, "vcpu %u: %s: %s", v->id,
			        req == KVM_GET_MSRS ? "KVM_GET_MSRS" : "KVM_SET_MSRS", strerror(-r));
			free(m);
			return ZHV_ERR_IO;
		}
		if (drop)
			memmove(e + kept, m->entries, (size_t)r * sizeof(*e));
		kept += (uint32_t)r;
		i += (uint32_t)r;
		if (i < n && (uint32_t)r < chunk) {
			zhv_log(ZHV_LOG_DEBUG, "vcpu %u: KVM %s MSR %#x", v->id,
			        req == KVM_GET_MSRS ? "cannot read" : "refuses to write", e[i].index);
			refused++;
			i++;
		}
	}
	free(m);
	return drop ? kept : refused;
}

static zhv_status_t power_on_capture_msrs(zhv_vcpu_t *v, struct vcpu_power_on *p)
{
	struct kvm_msr_list *list = calloc(1, sizeof(*list) + POWER_ON_MSRS_MAX * sizeof(uint32_t));
	if (!list)
		return ZHV_ERR_NO_MEMORY;
	list->nmsrs = POWER_ON_MSRS_MAX;
	if (zhv_ioctl(v->guest->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		zhv_log(ZHV_LOG_WARN, "vcpu %u: KVM_GET_MSR_INDEX_LIST failed: a reused vCPU "
		        "gets only PAT and the MTRRs back", v->id);
		list->nmsrs = 0;
	}
	uint32_t n = 0;
	for (size_t i = 0; i < sizeof(extra_msrs) / sizeof(extra_msrs[0]); i++)
		p->msrs[n++].index = extra_msrs[i];
	for (uint32_t i = 0; i < list->nmsrs && n < POWER_ON_MSRS_MAX; i++) {
		uint32_t index = list->indices[i];
		bool dup = msr_not_captured(index);
		for (size_t k = 0; k < sizeof(extra_msrs) / sizeof(extra_msrs[0]) && !dup; k++)
			dup = extra_msrs[k] == index;
		if (!dup)
			p->msrs[n++].index = index;
	}
	free(list);
	/* Keep what KVM lets us read, then what it lets us write back (the
	 * same values, to this new vCPU: an MSR it refuses here is one a new
	 * vCPU cannot have changed either). */
	int64_t k = vcpu_msrs_each(v, KVM_GET_MSRS, p->msrs, n, true);
	if (k >= 0)
		k = vcpu_msrs_each(v, KVM_SET_MSRS, p->msrs, (uint32_t)k, true);
	if (k < 0)
		return (zhv_status_t)k;
	p->nmsrs = (uint32_t)k;
	return ZHV_OK;
}

static zhv_status_t power_on_capture(zhv_vcpu_t *v)
{
	struct vcpu_power_on *p = &v->slot->power_on;
	memset(p, 0, sizeof(*p));
	zhv_status_t st = VCPU_IOCTL(v, KVM_GET_REGS, &p->regs);
	if (st == ZHV_OK)
		st = VCPU_IOCTL(v, KVM_GET_SREGS, &p->sregs);
	if (st == ZHV_OK)
		st = VCPU_IOCTL(v, KVM_GET_XSAVE, &p->xsave);
	if (st == ZHV_OK)
		st = VCPU_IOCTL(v, KVM_GET_VCPU_EVENTS, &p->events);
	if (st == ZHV_OK)
		st = VCPU_IOCTL(v, KVM_GET_MP_STATE, &p->mp);
	if (st != ZHV_OK)
		return st;
	p->have_xcrs = zhv_ioctl(v->fd, KVM_GET_XCRS, &p->xcrs) >= 0;
	p->have_debugregs = zhv_ioctl(v->fd, KVM_GET_DEBUGREGS, &p->debugregs) >= 0;
	return power_on_capture_msrs(v, p);
}

/* Finish whatever completion the KVM vCPU still holds (an IN, INS or MMIO
 * read of a predecessor destroyed mid-exit) without running guest code:
 * KVM completes it at the start of KVM_RUN, then sees immediate_exit and
 * returns EINTR (a vCPU waiting for INIT returns at once). The state it
 * leaves is overwritten right after. */
static void flush_completion(zhv_vcpu_t *v)
{
	struct kvm_run *run = v->run;
	__atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	vcpu_run_begin(v); /* KVM may write guest memory: not while slots change */
	int r = ioctl(v->fd, KVM_RUN, 0);
	int e = errno;
	vcpu_run_end(v);
	__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	if (r < 0 && e != EINTR)
		zhv_log(ZHV_LOG_WARN, "vcpu %u: finishing the last exit of its predecessor: %s",
		        v->id, strerror(e));
}

static zhv_status_t power_on_restore(zhv_vcpu_t *v)
{
	struct kvm_vcpu_slot *slot = v->slot;
	struct vcpu_power_on *p = &slot->power_on;
	flush_completion(v);

	/* MSRs first, while the old LAPIC is in place: a TSC deadline its
	 * timer may still hold is disarmed by the write of 0. */
	struct kvm_msr_entry *e = malloc(p->nmsrs * sizeof(*e) + 1);
	if (!e)
		return ZHV_ERR_NO_MEMORY;
	memcpy(e, p->msrs, p->nmsrs * sizeof(*e));
	int64_t refused = vcpu_msrs_each(v, KVM_SET_MSRS, e, p->nmsrs, false);
	free(e);
	if (refused < 0)
		return (zhv_status_t)refused;
	if (refused > 0)
		zhv_log(ZHV_LOG_WARN, "vcpu %u: KVM refused %lld power-on MSR value(s) it took "
		        "when the vCPU was new", v->id, (long long)refused);
	/* The TSC: what KVM gives a new vCPU of this VM, synchronised with the
	 * others. A host write of 0 asks KVM for exactly that (its "vCPU
	 * creation" case); writing the captured value would move it back. */
	if (set_msr(v, MSR_IA32_TSC, 0) != ZHV_OK)
		zhv_log(ZHV_LOG_WARN, "vcpu %u: KVM refused to resynchronise the TSC", v->id);

	zhv_status_t st = VCPU_IOCTL(v, KVM_SET_SREGS, &p->sregs);
	if (st == ZHV_OK)
		st = VCPU_IOCTL(v, KVM_SET_REGS, &p->regs);
	if (st == ZHV_OK && p->have_xcrs)
		st = VCPU_IOCTL(v, KVM_SET_XCRS, &p->xcrs);
	if (st == ZHV_OK)
		st = VCPU_IOCTL(v, KVM_SET_XSAVE, &p->xsave);
	if (st == ZHV_OK && p->have_debugregs)
		st = VCPU_IOCTL(v, KVM_SET_DEBUGREGS, &p->debugregs);
	if (st == ZHV_OK)
		st = VCPU_IOCTL(v, KVM_SET_LAPIC, &slot->lapic_reset);
	if (st != ZHV_OK)
		return st;
	/* Events: no exception, interrupt or NMI in flight, no latched INIT
	 * (the SMM flags KVM reported carry it). */
	struct kvm_vcpu_events ev = p->events;
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
	            KVM_VCPUEVENT_VALID_SHADOW;
	st = VCPU_IOCTL(v, KVM_SET_VCPU_EVENTS, &ev);
	if (st == ZHV_OK)
		st = VCPU_IOCTL(v, KVM_SET_MP_STATE, &p->mp);
	return st;
}

zhv_status_t vcpu_state_init(zhv_vcpu_t *v, uint32_t options, uint64_t entry, bool reused)
{
	zhv_guest_t *g = v->guest;
	struct kvm_vcpu_slot *slot = v->slot;
	bool bsp = v->id == 1;
	zhv_status_t st;

	v->pending = PENDING_NONE;
	v->rep_index = v->rep_count = 0;
	if (reused) {
		/* Same APIC ID, same CPUID: KVM keeps the one it was given. */
		st = power_on_restore(v);
	} else {
		st = VCPU_IOCTL(v, KVM_GET_LAPIC, &slot->lapic_reset);
		if (st == ZHV_OK)
			st = cpuid_set_vcpu(g->cpuid, v->fd, v->apic_id);
		if (st == ZHV_OK)
			st = power_on_capture(v);
	}
	if (st != ZHV_OK)
		return st;
	/* From here on a reused vCPU is in the state of a new one. */

	struct kvm_sregs sr;
	st = VCPU_IOCTL(v, KVM_GET_SREGS, &sr);
	if (st != ZHV_OK)
		return st;
	/* Zircon's vCPUs run their APIC in x2APIC mode from the start; with
	 * APIC_RESET or WAIT_SIPI it stays in its power-on xAPIC mode. */
	bool x2apic = !(options & (ZHV_VCPU_OPT_APIC_RESET | ZHV_VCPU_OPT_WAIT_SIPI));
	sr.apic_base = APIC_BASE_ADDR | APIC_BASE_EN | (bsp ? APIC_BASE_BSP : 0) |
	               (x2apic ? APIC_BASE_EXTD : 0);

	/* An AP that waits for INIT/SIPI keeps its power-on registers. */
	bool wait_sipi = options & ZHV_VCPU_OPT_WAIT_SIPI;
	if (!wait_sipi) {
		/* Spec 2.2: flat segments with 16-bit limits, selector 0.
		 * OSXSAVE and FSGSBASE are tried even when KVM's supported
		 * CPUID omits XSAVE/FSGSBASE (some KVMs still give them to
		 * the guest); KVM_SET_SREGS refusing them is handled below. */
		uint64_t cr4 = CR4_OSFXSR | CR4_OSXSAVE | CR4_FSGSBASE;
		uint16_t sel = 0;
		uint64_t base = 0;
		if (!bsp) {
			sel = (uint16_t)(entry >> 4);
			base = entry;
		}
		seg_flat16(&sr.cs, 0xf, sel, base);
		seg_flat16(&sr.ds, 0x3, 0, 0);
		sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
		memset(&sr.tr, 0, sizeof(sr.tr));
		sr.tr.limit = 0xffff;
		sr.tr.type = 11; /* busy 64-bit TSS */
		sr.tr.present = 1;
		memset(&sr.ldt, 0, sizeof(sr.ldt));
		sr.ldt.limit = 0xffff;
		sr.ldt.type = 2;
		sr.ldt.present = 1;
		sr.gdt.base = sr.idt.base = 0;
		sr.gdt.limit = sr.idt.limit = 0xffff;
		sr.cr2 = sr.cr3 = 0;
		sr.cr8 = 0;
		if (bsp) {
			sr.cs.l = 1;
			/* Zircon runs with CR0.NE set but shows the guest
			 * PE|ET|WP|PG; KVM shows what we set. */
			sr.cr0 = CR0_PE | CR0_ET | CR0_WP | CR0_PG;
			sr.cr4 = cr4 | CR4_PAE | CR4_PGE;
			sr.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
		} else {
			sr.cr0 = CR0_ET | CR0_WP;
			sr.cr4 = cr4;
			sr.efer = EFER_SCE | EFER_NXE;
		}
	}
	st = VCPU_IOCTL(v, KVM_SET_SREGS, &sr);
	if (st != ZHV_OK && (sr.cr4 & (CR4_OSXSAVE | CR4_FSGSBASE))) {
		/* Some KVMs refuse CR4 bits their CPUID view lacks. */
		zhv_log(ZHV_LOG_WARN, "vcpu %u: KVM refused CR4 %#llx; retrying without "
		        "OSXSAVE/FSGSBASE", v->id, (unsigned long long)sr.cr4);
		sr.cr4 &= ~(CR4_OSXSAVE | CR4_FSGSBASE);
		st = VCPU_IOCTL(v, KVM_SET_SREGS, &sr);
	}
	if (st != ZHV_OK)
		return st;

	if (!wait_sipi) {
		struct kvm_regs regs;
		memset(&regs, 0, sizeof(regs));
		regs.rflags = 0x2;
		regs.rip = bsp ? entry : 0;
		st = VCPU_IOCTL(v, KVM_SET_REGS, &regs);
		if (st != ZHV_OK)
			return st;
	}
	if (g->xcr0 & 1) {
		struct kvm_xcrs xcrs;
		memset(&xcrs, 0, sizeof(xcrs));
		xcrs.nr_xcrs = 1;
		xcrs.xcrs[0].xcr = 0;
		xcrs.xcrs[0].value = g->xcr0;
		if (zhv_ioctl(v->fd, KVM_SET_XCRS, &xcrs) < 0)
			zhv_log(ZHV_LOG_WARN, "vcpu %u: KVM_SET_XCRS(%#llx) refused", v->id,
			        (unsigned long long)g->xcr0);
	}

	if (!x2apic) {
		/* The power-on page again: this makes KVM rebuild its APIC-ID
		 * map. KVM reset the APIC before the vCPU was online, so until
		 * some APIC state changes, IPIs (INIT/SIPI too) cannot find it. */
		st = VCPU_IOCTL(v, KVM_SET_LAPIC, &slot->lapic_reset);
		if (st != ZHV_OK)
			return st;
	}
	if (x2apic) {
		/* Zircon: interrupts deliverable at once (SVR enabled). The
		 * page is the power-on one in x2APIC format: 32-bit ID, LDR
		 * derived from it (SDM 10.12.10.2). */
		struct kvm_lapic_state la = slot->lapic_reset;
		uint32_t id = v->apic_id, svr = 0x1ff;
		uint32_t ldr = ((id >> 4) << 16) | (1u << (id & 0xf));
		memcpy(&la.regs[APIC_REG_ID], &id, sizeof(id));
		memcpy(&la.regs[APIC_REG_LDR], &ldr, sizeof(ldr));
		memcpy(&la.regs[APIC_REG_SVR], &svr, sizeof(svr));
		st = VCPU_IOCTL(v, KVM_SET_LAPIC, &la);
		if (st != ZHV_OK)
			return st;
	}

	/* KVM makes vCPU 0 runnable and the others wait for INIT (a reused
	 * vCPU got that state back); set it only where that differs from what
	 * we want. */
	bool want_runnable = !wait_sipi;
	if (bsp && want_runnable)
		return ZHV_OK;
	struct kvm_mp_state mp = {
		.mp_state = want_runnable ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_UNINITIALIZED,
	};
	return VCPU_IOCTL(v, KVM_SET_MP_STATE, &mp);
}

/* ---- completing I/O ---------------------------------------------------------- */

zhv_status_t vcpu_complete_pending(zhv_vcpu_t *v)
{
	if (v->pending == PENDING_NONE)
		return ZHV_OK;
	/* KVM finishes an I/O or MMIO exit at the start of the next KVM_RUN;
	 * with immediate_exit set it then returns at once (EINTR) without
	 * running the guest (KVM API: "immediate_exit"). */
	struct kvm_run *run = v->run;
	uint8_t saved = __atomic_load_n(&run->immediate_exit, __ATOMIC_SEQ_CST);
	__atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	vcpu_run_begin(v); /* KVM may write guest memory: not while slots change */
	int r = ioctl(v->fd, KVM_RUN, 0);
	int e = errno;
	vcpu_run_end(v);
	/* A kick that arrived meanwhile must still stop the next entry: keep
	 * immediate_exit set if it was. */
	if (!saved)
		__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	if (atomic_load(&v->kicked))
		__atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	/* An INS is finished now, with the answers given so far (0 for the
	 * rest): no packets for its remaining elements. The remaining elements
	 * of an OUTS were sent already; their packets still come. */
	if (v->pending == PENDING_IO_IN)
		v->rep_index = v->rep_count = 0;
	v->pending = PENDING_NONE;
	if (r == 0)
		debug_completion_exit(v); /* the step of that instruction */
	if (r < 0 && e != EINTR) {
		zhv_log(ZHV_LOG_ERROR, "vcpu %u: completing I/O: %s", v->id, strerror(e));
		return kvm_run_status(e);
	}
	return ZHV_OK;
}

/* ---- conversions --------------------------------------------------------------- */

static void seg_to_zhv(zhv_segment_t *o, const struct kvm_segment *s)
{
	memset(o, 0, sizeof(*o));
	o->base = s->base;
	o->limit = s->limit;
	o->selector = s->selector;
	o->type = s->type;
	o->present = s->present;
	o->dpl = s->dpl;
	o->db = s->db;
	o->s = s->s;
	o->l = s->l;
	o->g = s->g;
	o->avl = s->avl;
	o->unusable = s->unusable;
}

static void seg_from_zhv(struct kvm_segment *s, const zhv_segment_t *o)
{
	memset(s, 0, sizeof(*s));
	s->base = o->base;
	s->limit = o->limit;
	s->selector = o->selector;
	s->type = o->type;
	s->present = o->present;
	s->dpl = o->dpl;
	s->db = o->db;
	s->s = o->s;
	s->l = o->l;
	s->g = o->g;
	s->avl = o->avl;
	s->unusable = o->unusable;
}

static zhv_status_t read_sregs(zhv_vcpu_t *v, zhv_vcpu_sregs_t *o)
{
	struct kvm_sregs s;
	zhv_status_t st = VCPU_IOCTL(v, KVM_GET_SREGS, &s);
	if (st != ZHV_OK)
		return st;
	memset(o, 0, sizeof(*o));
	seg_to_zhv(&o->cs, &s.cs);
	seg_to_zhv(&o->ds, &s.ds);
	seg_to_zhv(&o->es, &s.es);
	seg_to_zhv(&o->fs, &s.fs);
	seg_to_zhv(&o->gs, &s.gs);
	seg_to_zhv(&o->ss, &s.ss);
	seg_to_zhv(&o->tr, &s.tr);
	seg_to_zhv(&o->ldt, &s.ldt);
	o->gdt.base = s.gdt.base;
	o->gdt.limit = s.gdt.limit;
	o->idt.base = s.idt.base;
	o->idt.limit = s.idt.limit;
	o->cr0 = s.cr0;
	o->cr2 = s.cr2;
	o->cr3 = s.cr3;
	o->cr4 = s.cr4;
	o->cr8 = s.cr8;
	o->efer = s.efer;
	o->apic_base = s.apic_base;
	return ZHV_OK;
}

static zhv_status_t write_sregs(zhv_vcpu_t *v, const zhv_vcpu_sregs_t *o)
{
	struct kvm_sregs s;
	/* Keep KVM's interrupt_bitmap (pending legacy interrupt). */
	zhv_status_t st = VCPU_IOCTL(v, KVM_GET_SREGS, &s);
	if (st != ZHV_OK)
		return st;
	seg_from_zhv(&s.cs, &o->cs);
	seg_from_zhv(&s.ds, &o->ds);
	seg_from_zhv(&s.es, &o->es);
	seg_from_zhv(&s.fs, &o->fs);
	seg_from_zhv(&s.gs, &o->gs);
	seg_from_zhv(&s.ss, &o->ss);
	seg_from_zhv(&s.tr, &o->tr);
	seg_from_zhv(&s.ldt, &o->ldt);
	s.gdt.base = o->gdt.base;
	s.gdt.limit = o->gdt.limit;
	s.idt.base = o->idt.base;
	s.idt.limit = o->idt.limit;
	s.cr0 = o->cr0;
	s.cr2 = o->cr2;
	s.cr3 = o->cr3;
	s.cr4 = o->cr4;
	s.cr8 = o->cr8;
	s.efer = o->efer;
	s.apic_base = o->apic_base;
	return VCPU_IOCTL(v, KVM_SET_SREGS, &s);
}

/* A kvm_msrs with room for ZHV_VCPU_MSRS_MAX entries. */
static struct kvm_msrs *msrs_alloc(void)
{
	return calloc(1, sizeof(struct kvm_msrs) + ZHV_VCPU_MSRS_MAX * sizeof(struct kvm_msr_entry));
}

static zhv_status_t read_msrs(zhv_vcpu_t *v, zhv_vcpu_msrs_t *o)
{
	if (o->count > ZHV_VCPU_MSRS_MAX)
		return ZHV_ERR_INVALID_ARGS;
	struct kvm_msrs *m = msrs_alloc();
	if (!m)
		return ZHV_ERR_NO_MEMORY;
	uint32_t n = o->count;
	zhv_status_t st = ZHV_OK;
	if (n == 0) {
		union {
			struct kvm_msr_list h;
			uint8_t buf[sizeof(struct kvm_msr_list) + ZHV_VCPU_MSRS_MAX * sizeof(uint32_t)];
		} list;
		list.h.nmsrs = ZHV_VCPU_MSRS_MAX;
		int e = zhv_ioctl(v->guest->kvm_fd, KVM_GET_MSR_INDEX_LIST, &list);
		if (e < 0) {
			st = ZHV_ERR_IO;
			goto out;
		}
		n = list.h.nmsrs;
		for (uint32_t i = 0; i < n; i++)
			m->entries[i].index = list.h.indices[i];
	} else {
		for (uint32_t i = 0; i < n; i++)
			m->entries[i].index = o->entries[i].index;
	}
	m->nmsrs = n;
	int r = zhv_ioctl(v->fd, KVM_GET_MSRS, m);
	if (r < 0 || (uint32_t)r != n) {
		st = r < 0 ? ZHV_ERR_IO : ZHV_ERR_NOT_SUPPORTED;
		goto out;
	}
	o->count = n;
	for (uint32_t i = 0; i < n; i++) {
		o->entries[i].index = m->entries[i].index;
		o->entries[i].reserved = 0;
		o->entries[i].value = m->entries[i].data;
	}
out:
	free(m);
	return st;
}

static zhv_status_t write_msrs(zhv_vcpu_t *v, const zhv_vcpu_msrs_t *o)
{
	if (o->count > ZHV_VCPU_MSRS_MAX)
		return ZHV_ERR_INVALID_ARGS;
	struct kvm_msrs *m = msrs_alloc();
	if (!m)
		return ZHV_ERR_NO_MEMORY;
	m->nmsrs = o->count;
	for (uint32_t i = 0; i < o->count; i++) {
		m->entries[i].index = o->entries[i].index;
		m->entries[i].data = o->entries[i].value;
	}
	int r = zhv_ioctl(v->fd, KVM_SET_MSRS, m);
	free(m);
	if (r < 0)
		return ZHV_ERR_IO;
	return (uint32_t)r == o->count ? ZHV_OK : ZHV_ERR_NOT_SUPPORTED;
}

static zhv_status_t read_events(zhv_vcpu_t *v, zhv_vcpu_events_t *o)
{
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp;
	zhv_status_t st = VCPU_IOCTL(v, KVM_GET_VCPU_EVENTS, &ev);
	if (st == ZHV_OK)
		st = VCPU_IOCTL(v, KVM_GET_MP_STATE, &mp);
	if (st != ZHV_OK)
		return st;
	memset(o, 0, sizeof(*o));
	o->exception_injected = ev.exception.injected;
	o->exception_pending = ev.exception.pending;
	o->exception_nr = ev.exception.nr;
	o->exception_has_error_code = ev.exception.has_error_code;
	o->exception_error_code = ev.exception.error_code;
	o->interrupt_injected = ev.interrupt.injected;
	o->interrupt_nr = ev.interrupt.nr;
	o->interrupt_soft = ev.interrupt.soft;
	o->interrupt_shadow = ev.interrupt.shadow;
	o->nmi_injected = ev.nmi.injected;
	o->nmi_pending = ev.nmi.pending;
	o->nmi_masked = ev.nmi.masked;
	o->sipi_vector = ev.sipi_vector;
	o->mp_state = mp.mp_state;
	o->tracker_pending = irq_tracker_pending_mask(&v->tracker);
	return ZHV_OK;
}

static zhv_status_t write_events(zhv_vcpu_t *v, const zhv_vcpu_events_t *o)
{
	if (o->mp_state > ZHV_MP_STATE_SIPI_RECEIVED)
		return ZHV_ERR_INVALID_ARGS;
	struct kvm_vcpu_events ev;
	memset(&ev, 0, sizeof(ev));
	ev.exception.injected = o->exception_injected;
	ev.exception.pending = o->exception_pending;
	ev.exception.nr = o->exception_nr;
	ev.exception.has_error_code = o->exception_has_error_code;
	ev.exception.error_code = o->exception_error_code;
	ev.interrupt.injected = o->interrupt_injected;
	ev.interrupt.nr = o->interrupt_nr;
	ev.interrupt.soft = o->interrupt_soft;
	ev.interrupt.shadow = o->interrupt_shadow;
	ev.nmi.injected = o->nmi_injected;
	ev.nmi.pending = o->nmi_pending;
	ev.nmi.masked = o->nmi_masked;
	ev.sipi_vector = o->sipi_vector;
	ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
	           KVM_VCPUEVENT_VALID_SHADOW;
	zhv_status_t st = VCPU_IOCTL(v, KVM_SET_VCPU_EVENTS, &ev);
	if (st != ZHV_OK)
		return st;
	struct kvm_mp_state mp = {.mp_state = o->mp_state};
	st = VCPU_IOCTL(v, KVM_SET_MP_STATE, &mp);
	if (st == ZHV_OK)
		irq_tracker_set_mask(&v->tracker, o->tracker_pending);
	return st;
}

static zhv_status_t read_fpu(zhv_vcpu_t *v, zhv_vcpu_fpu_t *o)
{
	struct kvm_xsave *xs = calloc(1, sizeof(*xs));
	if (!xs)
		return ZHV_ERR_NO_MEMORY;
	zhv_status_t st = VCPU_IOCTL(v, KVM_GET_XSAVE, xs);
	if (st == ZHV_OK) {
		memset(o, 0, sizeof(*o));
		memcpy(o->xsave, xs->region, sizeof(o->xsave));
		struct kvm_xcrs xcrs;
		memset(&xcrs, 0, sizeof(xcrs));
		if (zhv_ioctl(v->fd, KVM_GET_XCRS, &xcrs) >= 0) {
			for (uint32_t i = 0; i < xcrs.nr_xcrs; i++)
				if (xcrs.xcrs[i].xcr == 0)
					o->xcr0 = xcrs.xcrs[i].value;
		}
	}
	free(xs);
	return st;
}

static zhv_status_t write_fpu(zhv_vcpu_t *v, const zhv_vcpu_fpu_t *o)
{
	if (o->xcr0) {
		struct kvm_xcrs xcrs;
		memset(&xcrs, 0, sizeof(xcrs));
		xcrs.nr_xcrs = 1;
		xcrs.xcrs[0].value = o->xcr0;
		zhv_status_t st = VCPU_IOCTL(v, KVM_SET_XCRS, &xcrs);
		if (st != ZHV_OK)
			return st;
	}
	struct kvm_xsave *xs = calloc(1, sizeof(*xs));
	if (!xs)
		return ZHV_ERR_NO_MEMORY;
	memcpy(xs->region, o->xsave, sizeof(o->xsave));
	zhv_status_t st = VCPU_IOCTL(v, KVM_SET_XSAVE, xs);
	free(xs);
	return st;
}

static const size_t kind_size[] = {
	[ZHV_VCPU_STATE] = sizeof(zhv_vcpu_state_t),
	[ZHV_VCPU_IO] = sizeof(zhv_vcpu_io_t),
	[ZHV_VCPU_MEM] = sizeof(zhv_vcpu_mem_t),
	[ZHV_VCPU_SREGS] = sizeof(zhv_vcpu_sregs_t),
	[ZHV_VCPU_FPU] = sizeof(zhv_vcpu_fpu_t),
	[ZHV_VCPU_MSRS] = sizeof(zhv_vcpu_msrs_t),
	[ZHV_VCPU_EVENTS] = sizeof(zhv_vcpu_events_t),
	[ZHV_VCPU_LAPIC] = sizeof(zhv_vcpu_lapic_t),
	[ZHV_VCPU_REGS] = sizeof(zhv_vcpu_regs_t),
};
_Static_assert(sizeof(zhv_vcpu_state_t) == 136, "Zircon's zx_vcpu_state_t is 136 bytes");
_Static_assert(sizeof(zhv_vcpu_io_t) == 8, "Zircon's zx_vcpu_io_t is 8 bytes");
/* Zircon's packet is 48 bytes; ours carries the decoded MEM access too. */
_Static_assert(sizeof(zhv_packet_t) == 56, "zhv_packet_t ABI");
_Static_assert(sizeof(zhv_packet_guest_eoi_t) == sizeof(zhv_packet_user_t),
               "the EOI packet fills the union exactly");

static bool kind_ok(uint32_t kind, size_t len)
{
	return kind < sizeof(kind_size) / sizeof(kind_size[0]) && kind_size[kind] == len;
}

zhv_status_t vcpu_state_read(zhv_vcpu_t *v, uint32_t kind, void *buf, size_t len)
{
	if (!kind_ok(kind, len) || kind == ZHV_VCPU_IO || kind == ZHV_VCPU_MEM)
		return ZHV_ERR_INVALID_ARGS;
	/* Mid-exit (an IN or MMIO read waiting for its answer, or any I/O
	 * exit KVM finishes at the next KVM_RUN) the state is read as KVM
	 * holds it now, and the exit stays pending: completing it here would
	 * commit answers not given yet (zhv.h, zhv_vcpu_read_state). None of
	 * the GET ioctls below completes anything. */
	zhv_status_t st;
	struct kvm_regs r;
	switch (kind) {
	case ZHV_VCPU_STATE: {
		st = VCPU_IOCTL(v, KVM_GET_REGS, &r);
		if (st != ZHV_OK)
			return st;
		zhv_vcpu_state_t *o = buf;
		*o = (zhv_vcpu_state_t){
			r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi,
			r.r8,  r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15,
			r.rflags & ZHV_RFLAGS_USER_MASK,
		};
		return ZHV_OK;
	}
	case ZHV_VCPU_REGS: {
		st = VCPU_IOCTL(v, KVM_GET_REGS, &r);
		if (st != ZHV_OK)
			return st;
		zhv_vcpu_regs_t *o = buf;
		*o = (zhv_vcpu_regs_t){
			r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp,
			r.r8,  r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15,
			r.rip, r.rflags,
		};
		return ZHV_OK;
	}
	case ZHV_VCPU_SREGS:
		return read_sregs(v, buf);
	case ZHV_VCPU_FPU:
		return read_fpu(v, buf);
	case ZHV_VCPU_MSRS:
		return read_msrs(v, buf);
	case ZHV_VCPU_EVENTS:
		return read_events(v, buf);
	case ZHV_VCPU_LAPIC:
		return VCPU_IOCTL(v, KVM_GET_LAPIC, buf);
	}
	return ZHV_ERR_INVALID_ARGS;
}

static zhv_status_t write_io(zhv_vcpu_t *v, const zhv_vcpu_io_t *io)
{
	if (io->access_size != 1 && io->access_size != 2 && io->access_size != 4)
		return ZHV_ERR_INVALID_ARGS;
	struct kvm_run *run = v->run;
	if (v->pending == PENDING_IO_IN) {
		/* KVM copies this into RAX (or, for INS, memory) when it
		 * completes the IN. */
		uint8_t *data = (uint8_t *)run + run->io.data_offset +
		                (size_t)v->rep_index * run->io.size;
		size_t n = io->access_size < run->io.size ? io->access_size : run->io.size;
		memcpy(data, io->data, n);
		return ZHV_OK;
	}
	/* No IN pending (Zircon does not check either): low bytes of RAX. */
	struct kvm_regs r;
	zhv_status_t st = vcpu_complete_pending(v);
	if (st == ZHV_OK)
		st = VCPU_IOCTL(v, KVM_GET_REGS, &r);
	if (st != ZHV_OK)
		return st;
	memcpy(&r.rax, io->data, io->access_size);
	return VCPU_IOCTL(v, KVM_SET_REGS, &r);
}

zhv_status_t vcpu_state_write(zhv_vcpu_t *v, uint32_t kind, const void *buf, size_t len)
{
	if (!kind_ok(kind, len))
		return ZHV_ERR_INVALID_ARGS;
	if (kind == ZHV_VCPU_IO)
		return write_io(v, buf);
	if (kind == ZHV_VCPU_MEM) {
		const zhv_vcpu_mem_t *m = buf;
		if (v->pending != PENDING_MMIO_READ || m->access_size != v->run->mmio.len)
			return v->pending != PENDING_MMIO_READ ? ZHV_ERR_BAD_STATE
			                                       : ZHV_ERR_INVALID_ARGS;
		memcpy(v->run->mmio.data, &m->data, m->access_size);
		return ZHV_OK;
	}
	zhv_status_t st = vcpu_complete_pending(v);
	if (st != ZHV_OK)
		return st;
	struct kvm_regs r;
	switch (kind) {
	case ZHV_VCPU_STATE: {
		const zhv_vcpu_state_t *s = buf;
		st = VCPU_IOCTL(v, KVM_GET_REGS, &r);
		if (st != ZHV_OK)
			return st;
		r.rax = s->rax, r.rcx = s->rcx, r.rdx = s->rdx, r.rbx = s->rbx;
		r.rsp = s->rsp, r.rbp = s->rbp, r.rsi = s->rsi, r.rdi = s->rdi;
		r.r8 = s->r8, r.r9 = s->r9, r.r10 = s->r10, r.r11 = s->r11;
		r.r12 = s->r12, r.r13 = s->r13, r.r14 = s->r14, r.r15 = s->r15;
		/* Spec 1.8: RFLAGS only when the reserved-one bit is set, and
		 * then only the user bits. */
		if (s->rflags & 0x2)
			r.rflags = (r.rflags & ~ZHV_RFLAGS_USER_MASK) |
			           (s->rflags & ZHV_RFLAGS_USER_MASK);
		return VCPU_IOCTL(v, KVM_SET_REGS, &r);
	}
	case ZHV_VCPU_REGS: {
		const zhv_vcpu_regs_t *s = buf;
		r = (struct kvm_regs){
			.rax = s->rax, .rbx = s->rbx, .rcx = s->rcx, .rdx = s->rdx,
			.rsi = s->rsi, .rdi = s->rdi, .rsp = s->rsp, .rbp = s->rbp,
			.r8 = s->r8, .r9 = s->r9, .r10 = s->r10, .r11 = s->r11,
			.r12 = s->r12, .r13 = s->r13, .r14 = s->r14, .r15 = s->r15,
			.rip = s->rip, .rflags = s->rflags | 0x2,
		};
		return VCPU_IOCTL(v, KVM_SET_REGS, &r);
	}
	case ZHV_VCPU_SREGS:
		return write_sregs(v, buf);
	case ZHV_VCPU_FPU:
		return write_fpu(v, buf);
	case ZHV_VCPU_MSRS:
		return write_msrs(v, buf);
	case ZHV_VCPU_EVENTS:
		return write_events(v, buf);
	case ZHV_VCPU_LAPIC:
		return VCPU_IOCTL(v, KVM_SET_LAPIC, (void *)buf);
	}
	return ZHV_ERR_INVALID_ARGS;
}
