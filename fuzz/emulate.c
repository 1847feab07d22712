/* emulate.c: libFuzzer target of libzhv's fallback instruction emulator
 * (lib/x86/emulate.c: emu_fetch, emu_step) over guest page tables and
 * code in the input. The input is
 *   byte 0: mode (0 real, 1 32-bit protected, 2 64-bit), bit 2 CR0.PG,
 *           bit 3 CR4.PAE, bit 4 CR4.PSE, bit 5 CR4.LA57, bit 6 CPL3,
 *           bit 7 CR0.WP;
 *   byte 1: CR4 bits OSXSAVE (0), SMAP (1), SMEP (2), TSD (3), PCIDE (4),
 *           CR0.TS|MP (5), RFLAGS.AC (6), EFER.NXE (7);
 *   le32 CPUID feature bits (leaf 1 ECX XSAVE/MOVBE, leaf 7 EBX SMAP/
 *   INVPCID/CLFLUSHOPT/CLWB, 0xD.1 EAX[2], 0x80000008 EBX[4]: bits 0-7);
 *   le32 CR3, le64 RIP, 16 x le16 register values (sign-extended), le32
 *   segment base, le32 segment limit; then guest RAM at GPA 0 (the rest).
 * Checks: the outcome is one of the three; a fault or a refusal leaves the
 * registers and guest RAM alone; a completed instruction has a length of
 * 1-15 and only MOVBE's store and the walk's accessed/dirty bits change
 * RAM; a #PF has an error code and CR2. */
#include "fuzz.h"

#include "x86/emulate.h"

static uint8_t *before;

static bool rd(void *o, uint64_t gpa, void *buf, size_t len)
{
	(void)o;
	if (gpa > fuzz_mem_size || len > fuzz_mem_size - gpa)
		return false;
	memcpy(buf, fuzz_mem + gpa, len);
	return true;
}

static bool wr(void *o, uint64_t gpa, const void *buf, size_t len)
{
	(void)o;
	if (gpa > fuzz_mem_size || len > fuzz_mem_size - gpa)
		return false;
	memcpy(fuzz_mem + gpa, buf, len);
	return true;
}

static bool query(void *o, enum emu_query q, uint64_t *v)
{
	(void)o;
	*v = q == EMU_Q_FSW ? 0x80 : 0x1234;
	return q != EMU_Q_APERF;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader r = {data, size};
	uint8_t m = fz8(&r), c = fz8(&r);
	uint32_t feat = fz32(&r);
	struct emu_state st;
	memset(&st, 0, sizeof(st));
	unsigned mode = (m & 3) % 3;
	st.cr0 = (mode ? 1 : 0) | ((m & 4) && mode ? 1ull << 31 : 0) | ((m & 128) ? 1ull << 16 : 0) |
	         ((c & 32) ? 0xa : 0);
	st.cr4 = ((m & 8) || mode == 2 ? 1ull << 5 : 0) | ((m & 16) ? 1ull << 4 : 0) |
	         ((m & 32) ? 1ull << 12 : 0) | ((c & 1) ? 1ull << 18 : 0) | ((c & 2) ? 1ull << 21 : 0) |
	         ((c & 4) ? 1ull << 20 : 0) | ((c & 8) ? 1ull << 2 : 0) | ((c & 16) ? 1ull << 17 : 0);
	st.efer = (mode == 2 ? (1ull << 8 | 1ull << 10) : 0) | ((c & 128) ? 1ull << 11 : 0);
	if (mode == 2)
		st.cr0 |= 1ull << 31;
	st.rflags = 2 | ((c & 64) ? 1ull << 18 : 0);
	st.cr3 = fz32(&r);
	st.rip = fz64(&r);
	for (int i = 0; i < 16; i++)
		st.gpr[i] = (uint64_t)(int64_t)(int16_t)fz16(&r);
	uint32_t base = fz32(&r), limit = fz32(&r);
	for (int i = 0; i < EMU_NSEG; i++)
		st.seg[i] = (struct emu_seg){.base = base, .limit = limit, .type = 3, .s = 1,
		                             .present = 1, .db = mode == 1, .dpl = (m & 64) ? 3 : 0};
	st.seg[EMU_CS].type = 11;
	st.seg[EMU_CS].l = mode == 2;
	st.idt_base = base;
	st.idt_limit = 0xfff;
	struct kvm_cpuid_entry2 cpuid[] = {
		{.function = 0, .eax = 0xd},
		{.function = 1, .ecx = ((feat & 1) ? 1u << 26 : 0) | ((feat & 2) ? 1u << 22 : 0)},
		{.function = 7, .ebx = ((feat & 4) ? 1u << 20 : 0) | ((feat & 8) ? 1u << 10 : 0) |
		                       ((feat & 16) ? 1u << 23 : 0) | ((feat & 32) ? 1u << 24 : 0)},
		{.function = 0xd, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		 .eax = (feat & 64) ? 4 : 0},
		{.function = 0x80000000u, .eax = 0x80000008u},
		{.function = 0x80000008u, .eax = 0x30 + (feat >> 8 & 15), .ebx = (feat & 128) ? 16 : 0,
		 .edx = (feat >> 12 & 3) << 16},
	};
	struct emu_env env = {.cpuid = cpuid, .ncpuid = sizeof(cpuid) / sizeof(cpuid[0]),
	                      .read_phys = rd, .write_phys = wr, .query = query};
	fuzz_mem_set(r.p, r.n);
	free(before);
	before = malloc(fuzz_mem_size ? fuzz_mem_size : 1);
	if (!before)
		return 0;
	memcpy(before, fuzz_mem, fuzz_mem_size);

	uint8_t bytes[EMU_MAX_INSN];
	struct emu_result ff, res;
	size_t n = emu_fetch(&env, &st, bytes, &ff);
	FUZZ_CHECK(n <= EMU_MAX_INSN);
	struct emu_state orig = st;
	emu_step(&env, &st, bytes, n, &ff, &res);
	FUZZ_CHECK(res.outcome == EMU_DONE || res.outcome == EMU_FAULT ||
	           res.outcome == EMU_UNHANDLED);
	if (res.outcome != EMU_DONE)
		FUZZ_CHECK(memcmp(&orig, &st, sizeof(st)) == 0);
	if (res.outcome == EMU_DONE)
		FUZZ_CHECK(res.length >= 1 && res.length <= EMU_MAX_INSN && res.length <= n);
	if (res.outcome == EMU_FAULT && res.vector == 14)
		FUZZ_CHECK(res.has_error_code);
	if (res.outcome == EMU_UNHANDLED)
		FUZZ_CHECK(res.why[0] != 0);
	/* Besides accessed/dirty bits (which a successful walk may set even
	 * when the instruction then faults), only MOVBE's store writes. */
	bool movbe_store = res.outcome == EMU_DONE && !strcmp(res.name, "movbe");
	for (size_t i = 0; i < fuzz_mem_size && !movbe_store; i++)
		FUZZ_CHECK((fuzz_mem[i] ^ before[i]) == 0 || ((fuzz_mem[i] ^ before[i]) & ~0x60) == 0);
	return 0;
}
