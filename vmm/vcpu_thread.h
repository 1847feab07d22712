/* vcpu_thread.h: one thread per vCPU: creation in id order, the BSP's boot
 * state, the enter loop that feeds packets to the buses, and shutdown. */
#ifndef ZHV_VMM_VCPU_THREAD_H
#define ZHV_VMM_VCPU_THREAD_H

#include <stddef.h>

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

#endif /* ZHV_VMM_VCPU_THREAD_H */
