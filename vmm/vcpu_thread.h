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

#endif /* ZHV_VMM_VCPU_THREAD_H */
