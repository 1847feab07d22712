/* zhv_test_hooks.h: libzhv entry points for its own tests (not part of the
 * API in include/zhv.h; programs that link libzhv.a statically may call
 * them, nothing else should). */
#ifndef ZHV_TEST_HOOKS_H
#define ZHV_TEST_HOOKS_H

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

#endif /* ZHV_TEST_HOOKS_H */
