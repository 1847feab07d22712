/* debug.c: guest debugging (issue 12): KVM_SET_GUEST_DEBUG settings per
 * vCPU, KVM_EXIT_DEBUG and the fallback emulator's instructions as
 * ZHV_PKT_TYPE_GUEST_DEBUG packets, and guest memory by guest-virtual
 * address through the shared page-table walker (x86/decode.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "x86/debug.h"
#include "zhv_priv.h"
#include "zhv_test_hooks.h"

#define CR0_PG    (1ull << 31)
#define CR4_LA57  (1ull << 12)
#define EFER_LMA  (1ull << 10)
#define RFLAGS_RF (1ull << 16)
#define DR6_BS    (1ull << 14)
#define DR7_FIXED 0x400ull   /* bit 10 reads as 1 */
#define DR7_GE    (1ull << 9) /* exact data breakpoints, as QEMU sets */

#define DEBUG_FLAGS (ZHV_DEBUG_ENABLE | ZHV_DEBUG_SINGLESTEP | ZHV_DEBUG_SW_BREAKPOINTS)

/* ---- guest-virtual memory (no KVM) ------------------------------------------ */

/* Is (gva) an address of the mode: canonical in long mode, 32 bits
 * otherwise? */
static bool in_address_space(const struct pagewalk_ctx *walk, uint64_t gva)
{
	if (!(walk->cr0 & CR0_PG) || !(walk->efer & EFER_LMA))
		return !(gva >> 32); /* no paging, 32-bit and PAE paging */
	unsigned bits = (walk->cr4 & CR4_LA57) ? 57 : 48;
	return (uint64_t)((int64_t)(gva << (64 - bits)) >> (64 - bits)) == gva;
}

zhv_status_t debug_translate_one(const struct pagewalk_ctx *walk, uint64_t gva, uint64_t *gpa)
{
	if (!in_address_space(walk, gva))
		return ZHV_ERR_OUT_OF_RANGE;
	return pagewalk_translate(walk, gva, gpa) ? ZHV_OK : ZHV_ERR_NOT_FOUND;
}

zhv_status_t debug_virt_copy(const struct pagewalk_ctx *walk, const struct debug_phys *phys,
                             uint64_t gva, void *buf, size_t len, bool write)
{
	if (len == 0)
		return ZHV_OK;
	if (!buf)
		return ZHV_ERR_INVALID_ARGS;
	/* The whole range in the mode's address space first: not wrapping,
	 * both ends valid and (long mode) in the same canonical half. */
	uint64_t last = gva + (len - 1);
	if (last < gva || !in_address_space(walk, gva) || !in_address_space(walk, last) ||
	    (gva >> 63) != (last >> 63))
		return ZHV_ERR_OUT_OF_RANGE;
	size_t npages = (size_t)(((gva & 0xfff) + (len - 1)) >> 12) + 1;
	uint64_t *gpas = malloc(npages * sizeof(*gpas));
	if (!gpas)
		return ZHV_ERR_NO_MEMORY;
	/* Translate and check every page before copying a byte. */
	zhv_status_t st = ZHV_OK;
	uint64_t cur = gva;
	size_t left = len;
	for (size_t i = 0; i < npages; i++) {
		size_t n = 4096 - (size_t)(cur & 0xfff);
		if (n > left)
			n = left;
		st = debug_translate_one(walk, cur, &gpas[i]);
		if (st == ZHV_OK)
			st = phys->check(phys->opaque, gpas[i], n, write);
		if (st != ZHV_OK)
			goto out;
		cur += n, left -= n;
	}
	uint8_t *p = buf;
	cur = gva, left = len;
	for (size_t i = 0; i < npages; i++) {
		size_t n = 4096 - (size_t)(cur & 0xfff);
		if (n > left)
			n = left;
		bool ok = write ? phys->write(phys->opaque, gpas[i], p, n)
		                : phys->read(phys->opaque, gpas[i], p, n);
		if (!ok) { /* the memory map changed under us */
			st = ZHV_ERR_IO;
			goto out;
		}
		p += n, cur += n, left -= n;
	}
out:
	free(gpas);
	return st;
}

/* ---- guest-virtual memory of a vCPU --------------------------------------------- */

static bool mem_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
	return memory_read(opaque, gpa, buf, len);
}

static bool mem_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
	return memory_write(opaque, gpa, buf, len);
}

static zhv_status_t mem_check(void *opaque, uint64_t gpa, size_t len, bool write)
{
	uint32_t flags;
	if (!memory_lookup(opaque, gpa, len, &flags))
		return ZHV_ERR_NOT_FOUND;
	if (write && !(flags & ZHV_MAP_WRITE))
		return ZHV_ERR_ACCESS_DENIED;
	return ZHV_OK;
}

static zhv_status_t vcpu_walk(zhv_vcpu_t *v, struct pagewalk_ctx *walk)
{
	struct kvm_sregs s;
	if (zhv_ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return ZHV_ERR_IO;
	*walk = (struct pagewalk_ctx){.cr0 = s.cr0, .cr3 = s.cr3, .cr4 = s.cr4, .efer = s.efer,
	                              .read_gpa = mem_read, .opaque = &v->guest->mem};
	return ZHV_OK;
}

zhv_status_t zhv_vcpu_translate(zhv_vcpu_t *v, uint64_t gva, uint64_t *gpa)
{
	if (!v)
		return ZHV_ERR_INVALID_ARGS;
	if (!vcpu_on_thread(v))
		return ZHV_ERR_BAD_STATE;
	if (!gpa)
		return ZHV_ERR_INVALID_ARGS;
	struct pagewalk_ctx walk;
	zhv_status_t st = vcpu_walk(v, &walk);
	uint64_t out;
	if (st == ZHV_OK)
		st = debug_translate_one(&walk, gva, &out);
	if (st == ZHV_OK)
		st = mem_check(&v->guest->mem, out, 1, false);
	if (st == ZHV_OK)
		*gpa = out;
	return st;
}

static zhv_status_t virt_copy(zhv_vcpu_t *v, uint64_t gva, void *buf, size_t len, bool write)
{
	if (!v)
		return ZHV_ERR_INVALID_ARGS;
	if (!vcpu_on_thread(v))
		return ZHV_ERR_BAD_STATE;
	if (!buf && len)
		return ZHV_ERR_INVALID_ARGS;
	if (len == 0)
		return ZHV_OK;
	struct pagewalk_ctx walk;
	zhv_status_t st = vcpu_walk(v, &walk);
	if (st != ZHV_OK)
		return st;
	struct debug_phys phys = {.check = mem_check, .read = mem_read, .write = mem_write,
	                          .opaque = &v->guest->mem};
	return debug_virt_copy(&walk, &phys, gva, buf, len, write);
}

zhv_status_t zhv_vcpu_read_virt(zhv_vcpu_t *v, uint64_t gva, void *buf, size_t len)
{
	return virt_copy(v, gva, buf, len, false);
}

zhv_status_t zhv_vcpu_write_virt(zhv_vcpu_t *v, uint64_t gva, const void *buf, size_t len)
{
	return virt_copy(v, gva, (void *)buf, len, true);
}

/* ---- settings ----------------------------------------------------------------------- */

bool debug_settings_valid(const zhv_vcpu_debug_t *d)
{
	if ((d->flags & ~DEBUG_FLAGS) || d->reserved)
		return false;
	bool enabled = d->flags & ZHV_DEBUG_ENABLE;
	if (!enabled && d->flags)
		return false;
	for (int i = 0; i < 4; i++) {
		const __typeof__(d->hw[0]) *h = &d->hw[i];
		for (size_t k = 0; k < sizeof(h->reserved); k++)
			if (h->reserved[k])
				return false;
		if (h->type == ZHV_DEBUG_HW_OFF)
			continue;
		if (!enabled || h->type > ZHV_DEBUG_HW_ACCESS)
			return false;
		if (h->len != 1 && h->len != 2 && h->len != 4 && h->len != 8)
			return false;
		if ((h->addr & (h->len - 1)) || (h->type == ZHV_DEBUG_HW_EXEC && h->len != 1))
			return false;
	}
	return true;
}

/* DR7's R/W and LEN encodings (SDM vol. 3, 18.2.4). */
uint64_t debug_dr7(const zhv_vcpu_debug_t *d)
{
	static const uint8_t rw[] = {[ZHV_DEBUG_HW_EXEC] = 0, [ZHV_DEBUG_HW_WRITE] = 1,
	                             [ZHV_DEBUG_HW_ACCESS] = 3};
	uint64_t dr7 = DR7_FIXED;
	for (unsigned i = 0; i < 4; i++) {
		const uint8_t type = d->hw[i].type, len = d->hw[i].len;
		if (type == ZHV_DEBUG_HW_OFF)
			continue;
		uint64_t lenc = len == 1 ? 0 : len == 2 ? 1 : len == 8 ? 2 : 3;
		dr7 |= DR7_GE | (2ull << (2 * i)) | ((uint64_t)rw[type] << (16 + 4 * i)) |
		       (lenc << (18 + 4 * i));
	}
	return dr7;
}

/* Give (d) to KVM. KVM sets TF for a single-step at the RIP of this
 * call and keeps it only while RIP stays there: every change of RIP that
 * does not come from the guest itself (libzhv's emulator, a state write)
 * needs this again, which debug_before_entry does before each entry. */
static zhv_status_t kvm_set_debug(zhv_vcpu_t *v, const zhv_vcpu_debug_t *d)
{
	struct kvm_guest_debug g;
	memset(&g, 0, sizeof(g));
	if (d->flags & ZHV_DEBUG_ENABLE) {
		g.control = KVM_GUESTDBG_ENABLE;
		if (d->flags & ZHV_DEBUG_SINGLESTEP)
			g.control |= KVM_GUESTDBG_SINGLESTEP;
		if (d->flags & ZHV_DEBUG_SW_BREAKPOINTS)
			g.control |= KVM_GUESTDBG_USE_SW_BP;
		bool hw = false;
		for (int i = 0; i < 4; i++) {
			if (d->hw[i].type != ZHV_DEBUG_HW_OFF) {
				g.arch.debugreg[i] = d->hw[i].addr;
				hw = true;
			}
		}
		if (hw) {
			g.control |= KVM_GUESTDBG_USE_HW_BP;
			g.arch.debugreg[7] = debug_dr7(d);
		}
	}
	int r = zhv_ioctl(v->fd, KVM_SET_GUEST_DEBUG, &g);
	if (r < 0) {
		zhv_log(ZHV_LOG_ERROR, "vcpu %u: KVM_SET_GUEST_DEBUG: %s", v->id, strerror(-r));
		return ZHV_ERR_IO;
	}
	return ZHV_OK;
}

zhv_status_t zhv_vcpu_set_debug(zhv_vcpu_t *v, const zhv_vcpu_debug_t *d)
{
	if (!v)
		return ZHV_ERR_INVALID_ARGS;
	if (!vcpu_on_thread(v))
		return ZHV_ERR_BAD_STATE;
	if (!d || !debug_settings_valid(d))
		return ZHV_ERR_INVALID_ARGS;
	void *cap = (void *)(uintptr_t)KVM_CAP_SET_GUEST_DEBUG;
	if (zhv_ioctl(v->guest->kvm_fd, KVM_CHECK_EXTENSION, cap) <= 0)
		return ZHV_ERR_NOT_SUPPORTED;
	zhv_status_t st = kvm_set_debug(v, d);
	if (st != ZHV_OK)
		return st;
	v->dbg.cfg = *d;
	if (!(d->flags & ZHV_DEBUG_SW_BREAKPOINTS))
		v->dbg.bp_stop = false;
	return ZHV_OK;
}

void debug_vcpu_reset(zhv_vcpu_t *v, bool clear_kvm)
{
	if (clear_kvm && v->dbg.cfg.flags) {
		struct kvm_guest_debug g;
		memset(&g, 0, sizeof(g));
		(void)zhv_ioctl(v->fd, KVM_SET_GUEST_DEBUG, &g);
	}
	memset(&v->dbg, 0, sizeof(v->dbg));
}

/* ---- stops ------------------------------------------------------------------------------ */

static int debug_stop(zhv_vcpu_t *v, zhv_packet_t *pkt, const struct kvm_debug_exit_arch *a);

static void stop_packet(zhv_vcpu_t *v, zhv_packet_t *pkt, uint32_t reason, uint64_t rip)
{
	memset(pkt, 0, sizeof(*pkt));
	pkt->key = v->id;
	pkt->type = ZHV_PKT_TYPE_GUEST_DEBUG;
	pkt->guest_debug.reason = reason;
	pkt->guest_debug.rip = rip;
}

static zhv_status_t get_regs(zhv_vcpu_t *v, struct kvm_regs *r)
{
	return zhv_ioctl(v->fd, KVM_GET_REGS, r) < 0 ? ZHV_ERR_IO : ZHV_OK;
}

static int sw_breakpoint_stop(zhv_vcpu_t *v, zhv_packet_t *pkt, uint64_t rip)
{
	stop_packet(v, pkt, ZHV_DEBUG_STOP_SW_BREAKPOINT, rip);
	v->dbg.bp_stop = true;
	v->dbg.bp_rip = rip;
	return EXIT_DELIVER;
}

uint32_t debug_classify(const zhv_vcpu_debug_t *cfg, uint32_t exception, uint64_t dr6,
                        uint32_t *slot)
{
	*slot = 0;
	if (!(cfg->flags & ZHV_DEBUG_ENABLE))
		return 0;
	if (exception == 3)
		return (cfg->flags & ZHV_DEBUG_SW_BREAKPOINTS) ? ZHV_DEBUG_STOP_SW_BREAKPOINT : 0;
	if (exception != 1)
		return 0;
	/* B0-B3 of the slots in use, lowest first; then a single step. */
	for (uint32_t i = 0; i < 4; i++) {
		uint8_t type = cfg->hw[i].type;
		if (!(dr6 & (1ull << i)) || type == ZHV_DEBUG_HW_OFF)
			continue;
		*slot = i;
		return type == ZHV_DEBUG_HW_EXEC ? ZHV_DEBUG_STOP_HW_BREAKPOINT
		                                 : ZHV_DEBUG_STOP_WATCHPOINT;
	}
	if ((dr6 & DR6_BS) && (cfg->flags & ZHV_DEBUG_SINGLESTEP))
		return ZHV_DEBUG_STOP_STEP;
	return 0;
}

int debug_exit(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	return debug_stop(v, pkt, &v->run->debug.arch);
}

/* The stop of a KVM_EXIT_DEBUG whose data is (a). */
static int debug_stop(zhv_vcpu_t *v, zhv_packet_t *pkt, const struct kvm_debug_exit_arch *a)
{
	const zhv_vcpu_debug_t *cfg = &v->dbg.cfg;
	struct kvm_regs r;
	if (!(cfg->flags & ZHV_DEBUG_ENABLE)) {
		v->last_exit = ZHV_EXIT_ERROR;
		exit_dump(v, ZHV_LOG_ERROR, "debug exit with guest debugging off");
		return ZHV_ERR_INTERNAL;
	}
	if (get_regs(v, &r) != ZHV_OK)
		return ZHV_ERR_IO;
	uint32_t slot = 0;
	uint32_t reason = debug_classify(cfg, a->exception, a->dr6, &slot);
	if (reason == ZHV_DEBUG_STOP_SW_BREAKPOINT) /* #BP: RIP is at the int3 */
		return sw_breakpoint_stop(v, pkt, r.rip);
	if (reason) {
		stop_packet(v, pkt, reason, r.rip);
		pkt->guest_debug.dr6 = a->dr6;
		if (reason != ZHV_DEBUG_STOP_STEP) {
			pkt->guest_debug.slot = slot;
			pkt->guest_debug.addr = cfg->hw[slot].addr;
		}
		if (reason == ZHV_DEBUG_STOP_HW_BREAKPOINT) {
			/* A fault: the instruction has not run. RF lets the
			 * next entry run it without stopping again, as the
			 * processor's own #DB handler returns with RF. */
			r.rflags |= RFLAGS_RF;
			if (zhv_ioctl(v->fd, KVM_SET_REGS, &r) < 0)
				return ZHV_ERR_IO;
		}
		return EXIT_DELIVER;
	}
	/* Not a stop the debugger asked for (the guest's own #DB, e.g. ICEBP
	 * or its own TF, which KVM intercepts while it debugs): the guest's. */
	zhv_log(ZHV_LOG_DEBUG, "vcpu %u: debug exit (exception %u, dr6 %#llx) passed to the guest",
	        v->id, a->exception, (unsigned long long)a->dr6);
	irq_tracker_track(&v->tracker, a->exception == 3 ? 3 : 1);
	return EXIT_CONTINUE;
}

/* The linear address of RIP from the registers (CS base outside 64-bit). */
static uint64_t linear_rip(const struct kvm_regs *r, const struct kvm_sregs *s)
{
	if ((s->efer & EFER_LMA) && s->cs.l)
		return r->rip;
	return (s->cs.base + r->rip) & 0xffffffffull;
}

/* Is the instruction at RIP an int3? (*r): the registers. */
static bool int3_at_rip(zhv_vcpu_t *v, struct kvm_regs *r)
{
	struct kvm_sregs s;
	if (get_regs(v, r) != ZHV_OK || zhv_ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return false;
	struct pagewalk_ctx walk = {.cr0 = s.cr0, .cr3 = s.cr3, .cr4 = s.cr4, .efer = s.efer,
	                            .read_gpa = mem_read, .opaque = &v->guest->mem};
	uint8_t op;
	return pagewalk_read(&walk, linear_rip(r, &s), &op, 1) == 1 && op == 0xcc;
}

int debug_emulation_failure(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	v->dbg.emulated = false;
	struct kvm_regs r;
	if (!(v->dbg.cfg.flags & ZHV_DEBUG_SW_BREAKPOINTS) || !int3_at_rip(v, &r))
		return 0; /* the fallback emulator goes on (and reports errors) */
	return sw_breakpoint_stop(v, pkt, r.rip);
}

int debug_after_emulation(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	bool done = v->dbg.emulated;
	v->dbg.emulated = false;
	if (!done || !(v->dbg.cfg.flags & ZHV_DEBUG_SINGLESTEP))
		return EXIT_CONTINUE;
	struct kvm_regs r;
	if (get_regs(v, &r) != ZHV_OK)
		return ZHV_ERR_IO;
	stop_packet(v, pkt, ZHV_DEBUG_STOP_STEP, r.rip);
	return EXIT_DELIVER;
}

/* The int3 of a SW_BREAKPOINT stop, if the caller queued its #BP. */
static zhv_status_t deliver_int3(zhv_vcpu_t *v)
{
	if (!v->dbg.bp_stop)
		return ZHV_OK;
	v->dbg.bp_stop = false;
	if (!(irq_tracker_pending_mask(&v->tracker) & (1u << 3)))
		return ZHV_OK;
	struct kvm_regs r;
	if (!int3_at_rip(v, &r) || r.rip != v->dbg.bp_rip)
		return ZHV_OK; /* moved on: an ordinary #BP injection */
	/* Run the int3 in libzhv's emulator: it checks the gate, moves RIP past
	 * the int3 and delivers vector 3 through the IDT with that return
	 * address, whatever the KVM (an injected soft exception would take its
	 * length from a record of the last exit that may not be the int3's). */
	(void)irq_tracker_try_pop(&v->tracker, 3);
	v->run->kvm_valid_regs = 0; /* registers by ioctl: the caller may have set them */
	char why[96];
	if (!emulate_fallback(v, why, sizeof(why))) {
		zhv_log(ZHV_LOG_ERROR, "vcpu %u: delivering the #BP of the int3 at %#llx: %s", v->id,
		        (unsigned long long)r.rip, why);
		return ZHV_ERR_IO;
	}
	v->dbg.emulated = false;
	return ZHV_OK;
}

zhv_status_t debug_before_entry(zhv_vcpu_t *v)
{
	if (!v->dbg.cfg.flags)
		return ZHV_OK;
	zhv_status_t st = deliver_int3(v);
	/* Single-step: TF again at the RIP the guest enters at. */
	if (st == ZHV_OK && (v->dbg.cfg.flags & ZHV_DEBUG_SINGLESTEP))
		st = kvm_set_debug(v, &v->dbg.cfg);
	return st;
}

int debug_deferred_stop(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	if (!v->dbg.deferred)
		return 0;
	v->dbg.deferred = false;
	/* Only if the settings (changed since, maybe) still ask for it. */
	uint32_t slot;
	const struct kvm_debug_exit_arch *a = &v->dbg.deferred_arch;
	if (!debug_classify(&v->dbg.cfg, a->exception, a->dr6, &slot))
		return 0;
	return debug_stop(v, pkt, a);
}

void debug_completion_exit(zhv_vcpu_t *v)
{
	if (v->run->exit_reason == KVM_EXIT_DEBUG && (v->dbg.cfg.flags & ZHV_DEBUG_ENABLE)) {
		v->dbg.deferred = true;
		v->dbg.deferred_arch = v->run->debug.arch;
	}
}

zhv_status_t zhv__emulation_failure_at_rip(zhv_vcpu_t *v, zhv_packet_t *pkt, bool *stopped,
                                           char *why, size_t whylen)
{
	zhv_status_t st = vcpu_complete_pending(v);
	if (st != ZHV_OK)
		return st;
	memset(pkt, 0, sizeof(*pkt));
	v->run->kvm_valid_regs = 0; /* registers by ioctl, not from the last exit */
	int out = exit_emulation_failure(v, pkt, why, whylen);
	if (out < 0)
		return out;
	*stopped = out == EXIT_DELIVER;
	return out ? ZHV_OK : ZHV_ERR_NOT_SUPPORTED;
}
