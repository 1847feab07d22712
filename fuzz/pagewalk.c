/* pagewalk.c: libFuzzer target of the guest page-table walker
 * (lib/x86/decode.c: pagewalk_translate, pagewalk_read) over guest page
 * tables in the input. The input is
 *   byte 0: bit 0 CR0.PG, bit 1 CR4.PSE, bit 2 CR4.PAE, bit 3 EFER.LMA,
 *           bit 4 CR4.LA57; le32 CR3, le64 linear address, byte length
 *           to read; then guest RAM at GPA 0 (the rest). */
#include "fuzz.h"

#include "x86/decode.h"

static bool read_gpa(void *opaque, uint64_t gpa, void *buf, size_t len)
{
	(void)opaque;
	if (gpa > fuzz_mem_size || len > fuzz_mem_size - gpa)
		return false;
	memcpy(buf, fuzz_mem + gpa, len);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader r = { data, size };
	uint8_t flags = fz8(&r);
	struct pagewalk_ctx ctx = {
		.cr0 = (flags & 1) ? (1ull << 31 | 1) : 1,
		.cr4 = ((flags & 2) ? 1ull << 4 : 0) | ((flags & 4) ? 1ull << 5 : 0) |
		       ((flags & 16) ? 1ull << 12 : 0),
		.efer = (flags & 8) ? (1ull << 10 | 1ull << 8) : 0,
		.read_gpa = read_gpa,
	};
	ctx.cr3 = fz32(&r);
	uint64_t la = fz64(&r);
	size_t len = fz8(&r) * 64u;
	static uint8_t buf[255 * 64];
	uint64_t gpa;

	fuzz_mem_set(r.p, r.n);
	bool ok = pagewalk_translate(&ctx, la, &gpa);
	if (!(flags & 1))
		FUZZ_CHECK(ok && gpa == la);
	size_t got = pagewalk_read(&ctx, la, buf, len);
	FUZZ_CHECK(got <= len);
	/* Nothing reads through an address that does not translate. */
	FUZZ_CHECK(got == 0 || ok);
	return 0;
}
