/* debug.h: guest debugging (internal; x86/debug.c). The public calls are
 * zhv_vcpu_set_debug, zhv_vcpu_translate, zhv_vcpu_read_virt and
 * zhv_vcpu_write_virt (zhv.h). The core of the virtual-memory access,
 * debug_virt_copy(), needs no KVM: it takes the paging registers, the
 * shared page-table walker of x86/decode.c and callbacks to guest-physical
 * memory, so the unit tests drive it over a fake memory. */
#ifndef ZHV_X86_DEBUG_H
#define ZHV_X86_DEBUG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "x86/decode.h"
#include "zhv.h"

/* One vCPU's guest-debug state (member dbg of struct zhv_vcpu). */
struct vcpu_debug {
	zhv_vcpu_debug_t cfg; /* the settings KVM has; flags 0: off */
	/* The last stop was SW_BREAKPOINT at RIP (bp_rip): a #BP the caller
	 * queues before the next enter is the int3's own (see
	 * debug_before_entry). */
	bool bp_stop;
	uint64_t bp_rip;
	/* Set by emulate_fallback when it completed an instruction (no fault):
	 * a single-step then stops after it. */
	bool emulated;
	/* KVM reported a debug exit while libzhv only let it finish an I/O
	 * or MMIO exit (vcpu_complete_pending): the next enter returns it. */
	bool deferred;
	struct kvm_debug_exit_arch deferred_arch;
};

/* Guest-physical memory for debug_virt_copy. */
struct debug_phys {
	/* ZHV_OK if [gpa, gpa + len) (inside one page) is guest RAM, writable
	 * RAM if (write); NOT_FOUND or ACCESS_DENIED otherwise. */
	zhv_status_t (*check)(void *opaque, uint64_t gpa, size_t len, bool write);
	/* Copy from or to guest RAM; false if it is not RAM (any more). */
	bool (*read)(void *opaque, uint64_t gpa, void *buf, size_t len);
	bool (*write)(void *opaque, uint64_t gpa, const void *buf, size_t len);
	void *opaque;
};

/* debug_translate_one: the guest-physical address of (gva) in the mode the
 * paging registers of (walk) give (walk->read_gpa reads the tables).
 * Returns ZHV_OK, OUT_OF_RANGE (non-canonical in long mode, above 4 GiB in
 * the 32-bit modes and without paging) or NOT_FOUND (not present, or a
 * table that is not RAM). */
zhv_status_t debug_translate_one(const struct pagewalk_ctx *walk, uint64_t gva, uint64_t *gpa);

/* debug_virt_copy: read (write false) or write (len) bytes at (gva), all or
 * nothing: every page is translated and checked with phys->check before
 * phys->read / phys->write copies anything. len 0: ZHV_OK. Returns as
 * zhv_vcpu_read_virt / zhv_vcpu_write_virt (also NO_MEMORY, and IO if the
 * memory changed between the check and the copy). */
zhv_status_t debug_virt_copy(const struct pagewalk_ctx *walk, const struct debug_phys *phys,
                             uint64_t gva, void *buf, size_t len, bool write);

/* debug_settings_valid: (d) is a setting zhv_vcpu_set_debug accepts. */
bool debug_settings_valid(const zhv_vcpu_debug_t *d);
/* debug_dr7: the DR7 for the debug registers of (d) (global enables, R/W
 * and LEN per slot, GE). */
uint64_t debug_dr7(const zhv_vcpu_debug_t *d);
/* debug_classify: what a KVM_EXIT_DEBUG with (exception) (1: #DB, 3: #BP)
 * and (dr6) means under (cfg): ZHV_DEBUG_STOP_* with the debug register
 * in (*slot) (0 otherwise), or 0 if it is no stop the settings ask for
 * (the guest's own #DB). A data or execute breakpoint wins over a
 * single step reported with it. */
uint32_t debug_classify(const zhv_vcpu_debug_t *cfg, uint32_t exception, uint64_t dr6,
                        uint32_t *slot);

struct zhv_vcpu;
/* debug_vcpu_reset: forget the settings of a vCPU object that is created
 * or destroyed; (clear_kvm): also turn guest debugging off in KVM. */
void debug_vcpu_reset(struct zhv_vcpu *vcpu, bool clear_kvm);
/* debug_exit: a KVM_EXIT_DEBUG. Returns EXIT_DELIVER with a GUEST_DEBUG
 * packet, EXIT_CONTINUE (a #DB that is the guest's own, re-injected) or a
 * negative status. */
int debug_exit(struct zhv_vcpu *vcpu, zhv_packet_t *pkt);
/* debug_emulation_failure: KVM could not emulate the instruction at RIP.
 * With SW_BREAKPOINTS and an int3 there: fill the SW_BREAKPOINT packet and
 * return EXIT_DELIVER. Otherwise 0 (the fallback emulator goes on). */
int debug_emulation_failure(struct zhv_vcpu *vcpu, zhv_packet_t *pkt);
/* debug_after_emulation: the fallback emulator finished an instruction.
 * With SINGLESTEP: the STEP packet and EXIT_DELIVER; else EXIT_CONTINUE. */
int debug_after_emulation(struct zhv_vcpu *vcpu, zhv_packet_t *pkt);
/* debug_before_entry: before each entry of zhv_vcpu_enter: a #BP the
 * caller queued (zhv_vcpu_interrupt(v, 3)) right after a SW_BREAKPOINT
 * stop, with RIP still at that int3, is delivered as the int3 itself
 * would: through the IDT with the return address past it; a single-step
 * is armed again at the current RIP. */
zhv_status_t debug_before_entry(struct zhv_vcpu *vcpu);
/* debug_completion_exit: KVM_RUN that only finished an I/O or MMIO exit
 * (immediate_exit) ended with run->exit_reason: keep a debug exit (the
 * single-step of that instruction) for the next enter. */
void debug_completion_exit(struct zhv_vcpu *vcpu);
/* debug_deferred_stop: at the start of an enter: the kept debug exit as
 * a packet (EXIT_DELIVER), or 0. */
int debug_deferred_stop(struct zhv_vcpu *vcpu, zhv_packet_t *pkt);

#endif /* ZHV_X86_DEBUG_H */
