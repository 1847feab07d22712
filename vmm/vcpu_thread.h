/* vcpu_thread.h: one thread per vCPU: creation in id order, the BSP's boot
 * state, the enter loop that feeds packets to the buses, and shutdown. */
#ifndef ZHV_VMM_VCPU_THREAD_H
#define ZHV_VMM_VCPU_THREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loader/loader.h"
#include "vm.h"

struct vcpus;

/* vcpus_create: room for (vm)->ncpus vCPU threads; nothing runs yet.
 * Returns NULL when out of memory. */
struct vcpus *vcpus_create(struct vm *vm);

/* vcpus_start: create every vCPU thread. Thread i creates vCPU id i + 1
 * (thread 0 the BSP, with its state from (boot) and a power-on xAPIC;
 * the APs waiting for the guest's INIT/SIPI), one after the other so that
 * ids follow thread order. Only when all exist do they enter the guest.
 * Returns 0, or a negative errno-style value with a reason in (err) (no
 * vCPU entered the guest then; call vcpus_stop to clean up). */
int vcpus_start(struct vcpus *v, const struct boot_state *boot, char *err, size_t errlen);

/* vcpus_kick_all: make every vCPU leave zhv_vcpu_enter() (they then look
 * at vm->exit_kind). Any thread; safe before and during vcpus_start. */
void vcpus_kick_all(struct vcpus *v);

/* vcpus_stop: kick, join every thread, destroy every vCPU and free (v).
 * Call after vm_request_exit() (or a failed vcpus_start); not from a vCPU
 * thread. NULL is a no-op. */
void vcpus_stop(struct vcpus *v);

/* vcpus_pause: stop every vCPU outside the guest (zhv ctl pause, before a
 * snapshot): each thread parks, with no exit in flight, until
 * vcpus_resume. Waits up to (timeout_ms) for all to park (a vCPU thread
 * parked for ACPI S3 does not). Returns 0, -ECANCELED (the run is ending
 * or never started) or -ETIMEDOUT; on error the vCPUs run on. Not from a
 * vCPU thread. */
int vcpus_pause(struct vcpus *v, unsigned timeout_ms);
/* vcpus_resume: let paused vCPUs enter the guest again (no-op if none is). */
void vcpus_resume(struct vcpus *v);
/* vcpus_paused: whether a pause is in force. */
bool vcpus_paused(struct vcpus *v);
/* vcpus_save: with every vCPU paused, have each thread save its vCPU
 * (vcpu_state_save); blobs[i], lens[i] receive vCPU i + 1's state (the
 * caller frees them). Returns 0, -EAGAIN (not paused), -ECANCELED (the run
 * ended meanwhile) or the first vCPU's error (nothing returned then). */
int vcpus_save(struct vcpus *v, uint8_t **blobs, size_t *lens);
/* vcpus_set_restore: before vcpus_start: each vCPU starts from blobs[i]
 * (vcpu_state_load, instead of the boot state; the buffers must live until
 * vcpus_start returns), and the guest's clock is set to (clock) once all
 * are in place, before any enters. */
void vcpus_set_restore(struct vcpus *v, const uint8_t *const *blobs, const size_t *lens,
                       const zhv_guest_clock_t *clock);

/* ---- guest debugging (zhv run --gdb, vmm/gdb/) ----------------------------
 * A debugger holds vCPUs: a held vCPU parks outside the guest (as for
 * vcpus_pause) until released, and runs the debugger's requests there. */

/* The debugger's hook, on a vCPU thread, for its ZHV_PKT_TYPE_GUEST_DEBUG
 * packet (index = vCPU id - 1): true holds this vCPU at once. */
typedef bool (*vcpus_debug_fn)(void *ctx, unsigned index, zhv_vcpu_t *vcpu,
                               const zhv_packet_guest_debug_t *d);
/* vcpus_debug_init: before vcpus_start: set the hook; with (hold), every
 * vCPU is held before the guest's first instruction (--gdb-wait). */
void vcpus_debug_init(struct vcpus *v, vcpus_debug_fn on_debug, void *ctx, bool hold);
/* vcpus_debug_hold: hold every vCPU (any thread; returns at once). */
void vcpus_debug_hold(struct vcpus *v);
/* vcpus_debug_wait: wait up to (timeout_ms) until every vCPU is parked.
 * Returns 0, -ECANCELED (the run is ending) or -ETIMEDOUT (a vCPU asleep
 * in ACPI S3 does not park). Not from a vCPU thread. */
int vcpus_debug_wait(struct vcpus *v, unsigned timeout_ms);
/* vcpus_debug_release: release every vCPU (only < 0), or vCPU index
 * (only) alone, the others held. */
void vcpus_debug_release(struct vcpus *v, int only);
/* vcpus_debug_call: run fn(vcpu, arg) on the thread of held, parked vCPU
 * (index) and wait for it. Returns 0, -EINVAL, -EAGAIN (not held and
 * parked) or -ECANCELED (the run ended first). Not from a vCPU thread. */
int vcpus_debug_call(struct vcpus *v, unsigned index, void (*fn)(zhv_vcpu_t *, void *),
                     void *arg);

#endif /* ZHV_VMM_VCPU_THREAD_H */
