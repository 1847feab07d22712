/* decode.c: libFuzzer target of the instruction decoder
 * (lib/x86/decode.c): the backward decode of an MMIO write (the bytes
 * before RIP, every start tried) and decode_one. The input is
 *   byte 0: bits 0-1 mode (real16, prot32, long64), bit 2 no registers,
 *           bit 3 no translation, bit 4 translation fails;
 *   byte 1: access size; byte 2: code length (up to 31: more than 15 is
 *   allowed, the decoder keeps the last 15);
 *   the code bytes, le64 GPA, then the registers (struct decode_regs,
 *   little-endian words; what is missing is 0). */
#include "fuzz.h"

#include "x86/decode.h"

static bool xlate_identity(void *opaque, uint64_t linear, uint64_t *gpa)
{
	(void)opaque;
	*gpa = linear;
	return true;
}

static bool xlate_fail(void *opaque, uint64_t linear, uint64_t *gpa)
{
	(void)opaque, (void)linear, (void)gpa;
	return false;
}

static void check_insn(const struct decode_insn *in)
{
	FUZZ_CHECK(in->length >= 1 && in->length <= 15);
	FUZZ_CHECK(memchr(in->text, '\0', sizeof(in->text)) != NULL);
	FUZZ_CHECK(!in->ea_valid || in->has_mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader r = { data, size };
	uint8_t flags = fz8(&r), access = fz8(&r), codelen = fz8(&r) & 31;
	uint8_t code[31] = { 0 };
	struct decode_regs regs;
	struct decode_insn insn;
	enum decode_mode mode = (enum decode_mode)((flags & 3) % 3);

	if (codelen > r.n)
		codelen = (uint8_t)r.n;
	for (unsigned i = 0; i < codelen; i++)
		code[i] = fz8(&r);
	uint64_t gpa = fz64(&r);
	uint64_t *words = (uint64_t *)&regs;
	for (size_t i = 0; i < sizeof(regs) / 8; i++)
		words[i] = fz64(&r);

	decode_xlate_fn xlate = (flags & 8) ? NULL : (flags & 16) ? xlate_fail : xlate_identity;
	const struct decode_regs *rp = (flags & 4) ? NULL : &regs;
	unsigned got = decode_backwards_write(code, codelen, mode, rp, gpa, access, xlate, NULL,
	                                      &insn);
	FUZZ_CHECK(got <= 15 && got <= codelen);
	if (got) {
		check_insn(&insn);
		FUZZ_CHECK(insn.length == got && insn.mem_write && insn.mem_size == access);
		/* It decodes forwards to the same instruction. */
		struct decode_insn fwd;
		FUZZ_CHECK(decode_one(code + codelen - got, got, mode, rp, &fwd));
		FUZZ_CHECK(fwd.length == got);
	}
	if (decode_one(code, codelen, mode, rp, &insn)) {
		check_insn(&insn);
		FUZZ_CHECK(insn.length <= codelen);
	}
	return 0;
}
