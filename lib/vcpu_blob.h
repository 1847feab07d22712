/* vcpu_blob.h: the vCPU blob format of zhv_vcpu_save / zhv_vcpu_restore
 * (zhv.h documents it): building and checking, without KVM. */
#ifndef ZHV_VCPU_BLOB_H
#define ZHV_VCPU_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zhv.h"

/* clang-format off */
#define BLOB_SEC_REGS      1u
#define BLOB_SEC_SREGS     2u
#define BLOB_SEC_XSAVE     3u
#define BLOB_SEC_XCRS      4u
#define BLOB_SEC_DEBUGREGS 5u
#define BLOB_SEC_MSRS      6u
#define BLOB_SEC_LAPIC     7u
#define BLOB_SEC_EVENTS    8u
#define BLOB_SEC_MPSTATE   9u
#define BLOB_SEC_TRACKER   10u
#define BLOB_SEC_COUNT     11u /* types are 1..10 */
/* clang-format on */

#define BLOB_MSR_ENTRY_SIZE 16u
/* The most MSRs a blob may hold (KVM lists about 40-120). */
#define BLOB_MSRS_MAX 1024u

/* A checked blob: where each section's payload is (NULL if absent). */
struct blob_view {
	zhv_vcpu_blob_info_t info;
	const uint8_t *sec[BLOB_SEC_COUNT];
	uint32_t sec_size[BLOB_SEC_COUNT];
};

/* blob_crc32: CRC-32 (IEEE) of (buf), continuing from (crc) (0 to start). */
uint32_t blob_crc32(uint32_t crc, const void *buf, size_t len);

/* blob_check: check (buf, len) completely (header, version, sizes, every
 * section, CRC) and describe it in (view). Statuses as zhv_vcpu_restore. */
zhv_status_t blob_check(const void *buf, size_t len, struct blob_view *view);

/* A blob being written into a caller's buffer: sections are appended with
 * blob_add (which only counts once the buffer is full), and blob_finish
 * writes the header and CRC. */
struct blob_writer {
	uint8_t *buf;
	size_t cap, len;
	uint32_t nsections;
};
void blob_begin(struct blob_writer *w, void *buf, size_t cap);
void blob_add(struct blob_writer *w, uint32_t type, const void *payload, uint32_t size);
/* blob_finish: true if everything fitted (the blob is complete); w->len is
 * the size either way. */
bool blob_finish(struct blob_writer *w, uint64_t model, uint32_t apic_id);

#endif /* ZHV_VCPU_BLOB_H */
