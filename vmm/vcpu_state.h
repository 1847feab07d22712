/* vcpu_state.h: one vCPU's whole state for a snapshot of zhv run, in one
 * place (libzhv's versioned vCPU blob: zhv_vcpu_save / zhv_vcpu_restore). */
#ifndef ZHV_VMM_VCPU_STATE_H
#define ZHV_VMM_VCPU_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "zhv.h"

/* vcpu_state_save: on (vcpu)'s thread, outside enter: its state as a
 * newly allocated blob in *out (*len bytes; the caller frees it).
 * Returns 0 or a negative errno-style value. */
int vcpu_state_save(zhv_vcpu_t *vcpu, uint8_t **out, size_t *len);

/* vcpu_state_load: on (vcpu)'s thread, before it first enters: make it
 * what (blob, len) says, wholly or not at all. Returns libzhv's status. */
zhv_status_t vcpu_state_load(zhv_vcpu_t *vcpu, const uint8_t *blob, size_t len);

/* vcpu_state_check: check a blob without a vCPU (its header, version,
 * sizes and CRC). Returns libzhv's status. */
zhv_status_t vcpu_state_check(const uint8_t *blob, size_t len);

/* vcpu_state_error: (st) of vcpu_state_load/check in a user's words. */
const char *vcpu_state_error(zhv_status_t st);

#endif
