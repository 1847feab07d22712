/* vcpu_blob_test.c: the vCPU blob format of zhv_vcpu_save/restore (zhv.h,
 * "Snapshots") checked without KVM: a well-formed blob is accepted and
 * described; every truncation, a wrong version, a flipped bit, and each
 * malformed layout is refused with its status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/kvm.h>

#include "vcpu_blob.h"

#define MODEL 0x1122334455667788ull

/* A well-formed blob with (nmsrs) MSRs and every section; (skip) leaves
 * one section type out, (dup) writes one twice. Returns its size. */
static size_t build(uint8_t *buf, size_t cap, uint32_t nmsrs, uint32_t skip, uint32_t dup)
{
	static uint8_t payload[sizeof(struct kvm_xsave)];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 1);
	uint8_t msrs[8 + 4 * BLOB_MSR_ENTRY_SIZE];
	memset(msrs, 0, sizeof(msrs));
	memcpy(msrs, &nmsrs, 4);
	const struct {
		uint32_t type, size;
		const void *p;
	} secs[] = {
		{BLOB_SEC_REGS, sizeof(struct kvm_regs), payload},
		{BLOB_SEC_SREGS, sizeof(struct kvm_sregs), payload},
		{BLOB_SEC_XSAVE, sizeof(struct kvm_xsave), payload},
		{BLOB_SEC_XCRS, sizeof(struct kvm_xcrs), payload},
		{BLOB_SEC_DEBUGREGS, sizeof(struct kvm_debugregs), payload},
		{BLOB_SEC_MSRS, 8 + nmsrs * BLOB_MSR_ENTRY_SIZE, msrs},
		{BLOB_SEC_LAPIC, sizeof(struct kvm_lapic_state), payload},
		{BLOB_SEC_EVENTS, sizeof(struct kvm_vcpu_events), payload},
		{BLOB_SEC_MPSTATE, sizeof(struct kvm_mp_state), payload},
		{BLOB_SEC_TRACKER, 8, msrs + 8},
	};
	struct blob_writer w;
	blob_begin(&w, buf, cap);
	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		if (secs[i].type == skip)
			continue;
		blob_add(&w, secs[i].type, secs[i].p, secs[i].size);
		if (secs[i].type == dup)
			blob_add(&w, secs[i].type, secs[i].p, secs[i].size);
	}
	assert_true(blob_finish(&w, MODEL, 2));
	return w.len;
}

static void fix_crc(uint8_t *b, size_t len)
{
	memset(b + 28, 0, 4);
	uint32_t c = blob_crc32(0, b, len);
	memcpy(b + 28, &c, 4);
}

static void test_crc32_is_ieee(void **state)
{
	/* The standard check value of CRC-32/ISO-HDLC (zlib's crc32). */
	assert_int_equal(blob_crc32(0, "123456789", 9), 0xcbf43926u);
	assert_int_equal(blob_crc32(blob_crc32(0, "1234", 4), "56789", 5), 0xcbf43926u);
}

static void test_good_blob_described(void **state)
{
	uint8_t *b = calloc(1, ZHV_VCPU_BLOB_MAX);
	assert_non_null(b);
	size_t len = build(b, ZHV_VCPU_BLOB_MAX, 3, 0, 0);
	zhv_vcpu_blob_info_t info;
	assert_int_equal(zhv_vcpu_blob_info(b, len, &info), ZHV_OK);
	assert_int_equal(info.version, ZHV_VCPU_BLOB_VERSION);
	assert_int_equal(info.apic_id, 2);
	assert_true(info.model == MODEL);
	assert_int_equal(info.size, len);
	assert_int_equal(info.nsections, 10);
	struct blob_view v;
	assert_int_equal(blob_check(b, len, &v), ZHV_OK);
	assert_int_equal(v.sec_size[BLOB_SEC_MSRS], 8 + 3 * BLOB_MSR_ENTRY_SIZE);
	assert_ptr_equal(v.sec[BLOB_SEC_REGS], b + ZHV_VCPU_BLOB_HEADER_SIZE + 8);
	/* Optional sections may be absent. */
	len = build(b, ZHV_VCPU_BLOB_MAX, 0, BLOB_SEC_XCRS, 0);
	assert_int_equal(blob_check(b, len, &v), ZHV_OK);
	assert_null(v.sec[BLOB_SEC_XCRS]);
	len = build(b, ZHV_VCPU_BLOB_MAX, 0, BLOB_SEC_DEBUGREGS, 0);
	assert_int_equal(blob_check(b, len, &v), ZHV_OK);
	free(b);
}

static void test_small_buffer_counts_size(void **state)
{
	uint8_t *b = calloc(1, ZHV_VCPU_BLOB_MAX);
	assert_non_null(b);
	size_t len = build(b, ZHV_VCPU_BLOB_MAX, 2, 0, 0);
	struct blob_writer w;
	uint8_t small[100];
	blob_begin(&w, small, sizeof(small));
	blob_add(&w, BLOB_SEC_XSAVE, b, sizeof(struct kvm_xsave));
	assert_false(blob_finish(&w, MODEL, 0));
	assert_int_equal(w.len, ZHV_VCPU_BLOB_HEADER_SIZE + 8 + sizeof(struct kvm_xsave));
	blob_begin(&w, NULL, 0);
	assert_false(blob_finish(&w, MODEL, 0));
	assert_true(len > ZHV_VCPU_BLOB_HEADER_SIZE);
	free(b);
}

/* Every truncation is refused (and read nothing beyond its length: ASan
 * sees a copy of exactly that length). */
static void test_every_truncation_refused(void **state)
{
	uint8_t *b = calloc(1, ZHV_VCPU_BLOB_MAX);
	assert_non_null(b);
	size_t len = build(b, ZHV_VCPU_BLOB_MAX, 4, 0, 0);
	struct blob_view v;
	for (size_t n = 0; n < len; n++) {
		uint8_t *cut = malloc(n ? n : 1);
		assert_non_null(cut);
		memcpy(cut, b, n);
		assert_int_equal(blob_check(cut, n, &v), ZHV_ERR_INVALID_ARGS);
		free(cut);
	}
	assert_int_equal(blob_check(NULL, len, &v), ZHV_ERR_INVALID_ARGS);
	free(b);
}

static void test_version_and_corruption(void **state)
{
	uint8_t *b = calloc(1, ZHV_VCPU_BLOB_MAX);
	assert_non_null(b);
	size_t len = build(b, ZHV_VCPU_BLOB_MAX, 1, 0, 0);
	struct blob_view v;
	uint32_t ver = ZHV_VCPU_BLOB_VERSION + 1;
	memcpy(b + 8, &ver, 4);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_NOT_SUPPORTED);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_NOT_SUPPORTED);
	ver = ZHV_VCPU_BLOB_VERSION;
	memcpy(b + 8, &ver, 4);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_OK);
	/* Every single-bit flip after the version field is caught. */
	for (size_t i = 12; i < len; i += 1 + i / 64) {
		b[i] ^= 0x10;
		zhv_status_t st = blob_check(b, len, &v);
		assert_true(st == ZHV_ERR_IO_DATA_INTEGRITY || st == ZHV_ERR_INVALID_ARGS);
		b[i] ^= 0x10;
	}
	assert_int_equal(blob_check(b, len, &v), ZHV_OK);
	b[0] = 'X';
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	free(b);
}

/* Layout errors under a correct CRC: what a checksum cannot catch. */
static void test_malformed_layouts(void **state)
{
	uint8_t *b = calloc(1, ZHV_VCPU_BLOB_MAX + 64);
	assert_non_null(b);
	struct blob_view v;
	size_t len;

	len = build(b, ZHV_VCPU_BLOB_MAX, 0, BLOB_SEC_LAPIC, 0); /* required */
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	len = build(b, ZHV_VCPU_BLOB_MAX, 0, BLOB_SEC_TRACKER, 0);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	len = build(b, ZHV_VCPU_BLOB_MAX, 0, 0, BLOB_SEC_EVENTS); /* repeated */
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);

	len = build(b, ZHV_VCPU_BLOB_MAX, 2, 0, 0);
	size_t first = ZHV_VCPU_BLOB_HEADER_SIZE;
	uint32_t x;
	/* Unknown section type. */
	x = 99;
	memcpy(b + first, &x, 4);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	x = BLOB_SEC_REGS;
	memcpy(b + first, &x, 4);
	/* A fixed-size section of the wrong size. */
	x = sizeof(struct kvm_regs) + 8;
	memcpy(b + first + 4, &x, 4);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	/* A size running past the end. */
	x = 0x7ffffff0;
	memcpy(b + first + 4, &x, 4);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	x = sizeof(struct kvm_regs);
	memcpy(b + first + 4, &x, 4);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_OK);
	/* More sections announced than present; fewer. */
	uint32_t nsec;
	memcpy(&nsec, b + 24, 4);
	x = nsec + 1;
	memcpy(b + 24, &x, 4);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	x = nsec - 1;
	memcpy(b + 24, &x, 4);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	memcpy(b + 24, &nsec, 4);
	/* The total size field disagreeing with the length given. */
	uint64_t total = len + 8;
	memcpy(b + 16, &total, 8);
	fix_crc(b, len + 8);
	assert_int_equal(blob_check(b, len + 8, &v), ZHV_ERR_INVALID_ARGS);
	total = len;
	memcpy(b + 16, &total, 8);
	/* Non-zero header reserved field; wrong header size. */
	x = 1;
	memcpy(b + 44, &x, 4);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	x = 0;
	memcpy(b + 44, &x, 4);
	x = 56;
	memcpy(b + 12, &x, 4);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	free(b);
}

static void test_msr_section_checked(void **state)
{
	uint8_t *b = calloc(1, ZHV_VCPU_BLOB_MAX);
	assert_non_null(b);
	struct blob_view v;
	size_t len = build(b, ZHV_VCPU_BLOB_MAX, 3, 0, 0);
	assert_int_equal(blob_check(b, len, &v), ZHV_OK);
	uint8_t *m = (uint8_t *)v.sec[BLOB_SEC_MSRS];
	/* A count that does not match the section's size. */
	uint32_t x = 4;
	memcpy(m, &x, 4);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	x = 0xffffffffu;
	memcpy(m, &x, 4);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	x = 3;
	memcpy(m, &x, 4);
	/* Its reserved word. */
	x = 1;
	memcpy(m + 4, &x, 4);
	fix_crc(b, len);
	assert_int_equal(blob_check(b, len, &v), ZHV_ERR_INVALID_ARGS);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32_is_ieee),
		cmocka_unit_test(test_good_blob_described),
		cmocka_unit_test(test_small_buffer_counts_size),
		cmocka_unit_test(test_every_truncation_refused),
		cmocka_unit_test(test_version_and_corruption),
		cmocka_unit_test(test_malformed_layouts),
		cmocka_unit_test(test_msr_section_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
