/* vcpu_state.c: a vCPU's state in a snapshot: libzhv's vCPU blob. */
#include <errno.h>
#include <stdlib.h>

#include "vcpu_state.h"

int vcpu_state_save(zhv_vcpu_t *vcpu, uint8_t **out, size_t *len)
{
	size_t need = 0;
	zhv_status_t st = zhv_vcpu_save(vcpu, NULL, 0, &need);
	if (st != ZHV_OK && st != ZHV_ERR_BUFFER_TOO_SMALL)
		return st == ZHV_ERR_NO_MEMORY ? -ENOMEM : -EIO;
	if (need == 0 || need > ZHV_VCPU_BLOB_MAX)
		return -EIO;
	uint8_t *buf = malloc(need);
	if (!buf)
		return -ENOMEM;
	st = zhv_vcpu_save(vcpu, buf, need, len);
	if (st != ZHV_OK) {
		free(buf);
		return st == ZHV_ERR_NO_MEMORY ? -ENOMEM : -EIO;
	}
	*out = buf;
	return 0;
}

zhv_status_t vcpu_state_load(zhv_vcpu_t *vcpu, const uint8_t *blob, size_t len)
{
	return zhv_vcpu_restore(vcpu, blob, len);
}

zhv_status_t vcpu_state_check(const uint8_t *blob, size_t len)
{
	zhv_vcpu_blob_info_t info;
	return zhv_vcpu_blob_info(blob, len, &info);
}

const char *vcpu_state_error(zhv_status_t st)
{
	switch (st) {
	case ZHV_ERR_NOT_SUPPORTED:
		return "another format version of the vCPU state";
	case ZHV_ERR_IO_DATA_INTEGRITY:
		return "the vCPU state is corrupted (checksum mismatch)";
	case ZHV_ERR_WRONG_TYPE:
		return "the vCPU state is of another CPU model or another vCPU";
	case ZHV_ERR_INVALID_ARGS:
		return "the vCPU state is malformed (truncated or bad layout)";
	case ZHV_ERR_IO:
		return "KVM refused the vCPU state";
	case ZHV_ERR_NO_MEMORY:
		return "out of memory";
	default:
		return zhv_status_string(st);
	}
}
