/* zhv_test_hooks.h: libzhv entry points for its own tests (not part of the
 * API in include/zhv.h; programs that link libzhv.a statically may call
 * them, nothing else should). */
#ifndef ZHV_TEST_HOOKS_H
#define ZHV_TEST_HOOKS_H

#include <stdbool.h>
#include <stddef.h>

#include "zhv.h"

/* zhv__emulate_at_rip: run libzhv's fallback emulator (lib/x86/emulate.c,
 * the one that finishes instructions KVM cannot emulate) on the
 * instruction at (vcpu)'s RIP, now, on the calling thread (the vCPU's
 * thread, between exits). An exit in progress (an OUT the caller got a
 * packet for) is completed first. ZHV_OK: the instruction completed or
 * its exception is queued for the next entry; ZHV_ERR_NOT_SUPPORTED: the
 * emulator refused it, with the reason in (why). */
zhv_status_t zhv__emulate_at_rip(zhv_vcpu_t *vcpu, char *why, size_t whylen);

/* zhv__emulation_failure_at_rip: do now, on the vCPU's thread between
 * exits, what zhv_vcpu_enter() does when KVM stops with an emulation
 * failure at (vcpu)'s RIP (as kvm_pvm does on INT3, FWAIT... at CPL0):
 * guest debugging first (an int3 with ZHV_DEBUG_SW_BREAKPOINTS is a
 * SW_BREAKPOINT stop), then the fallback emulator (after which a
 * single-step stops). An exit in progress is completed first. ZHV_OK with
 * (*stopped) true and (packet) the GUEST_DEBUG packet enter would return;
 * ZHV_OK with (*stopped) false: the instruction was emulated and the guest
 * goes on at the next enter; ZHV_ERR_NOT_SUPPORTED: neither (why says
 * why). */
zhv_status_t zhv__emulation_failure_at_rip(zhv_vcpu_t *vcpu, zhv_packet_t *packet,
                                           bool *stopped, char *why, size_t whylen);

#endif /* ZHV_TEST_HOOKS_H */
