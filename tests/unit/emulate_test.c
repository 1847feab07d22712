/* emulate_test.c: unit tests for libzhv's fallback instruction emulator
 * (lib/x86/emulate.c): every instruction, every fault rule, bad input.
 * The guest is a 2 MiB buffer with long-mode page tables; no KVM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "x86/emulate.h"

#define CR0_PE   (1ull << 0)
#define CR0_MP   (1ull << 1)
#define CR0_TS   (1ull << 3)
#define CR0_NE   (1ull << 5)
#define CR0_WP   (1ull << 16)
#define CR0_PG   (1ull << 31)
#define CR4_TSD  (1ull << 2)
#define CR4_PAE  (1ull << 5)
#define CR4_PCIDE (1ull << 17)
#define CR4_OSXSAVE (1ull << 18)
#define CR4_SMAP (1ull << 21)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)
#define RFL_CF   (1ull << 0)
#define RFL_ZF   (1ull << 6)
#define RFL_RF   (1ull << 16)
#define RFL_AC   (1ull << 18)

#define P  1ull
#define RW 2ull
#define US 4ull
#define A  (1ull << 5)
#define D  (1ull << 6)
#define PS (1ull << 7)

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

#define MEM_SIZE (2u << 20)
#define PML4 0x1000u
#define PDPT 0x2000u
#define PD   0x3000u
#define PT   0x4000u
#define CODE 0x10000u
#define DATA 0x20000u
#define STACK 0x30000u

static uint8_t *mem;
static struct emu_state st;
static struct kvm_cpuid_entry2 cpuid[16];
static struct emu_env env;
static uint64_t q_xcr0, q_xinuse, q_fsw;
static bool q_fail;

static bool rd(void *o, uint64_t gpa, void *buf, size_t len)
{
	(void)o;
	if (gpa > MEM_SIZE || len > MEM_SIZE - gpa)
		return false;
	memcpy(buf, mem + gpa, len);
	return true;
}

static bool wr(void *o, uint64_t gpa, const void *buf, size_t len)
{
	(void)o;
	if (gpa > MEM_SIZE || len > MEM_SIZE - gpa)
		return false;
	memcpy(mem + gpa, buf, len);
	return true;
}

static bool query(void *o, enum emu_query q, uint64_t *v)
{
	(void)o;
	if (q_fail)
		return false;
	switch (q) {
	case EMU_Q_XCR0: *v = q_xcr0; return true;
	case EMU_Q_XINUSE: *v = q_xinuse; return true;
	case EMU_Q_FSW: *v = q_fsw; return true;
	case EMU_Q_MPERF: *v = 0x1122334455667788ull; return true;
	case EMU_Q_APERF: *v = 0x99aabbccddeeff00ull; return true;
	}
	return false;
}

static void put64(uint64_t gpa, uint64_t v) { memcpy(mem + gpa, &v, 8); }
static uint64_t get64(uint64_t gpa) { uint64_t v; memcpy(&v, mem + gpa, 8); return v; }
static uint32_t get32(uint64_t gpa) { uint32_t v; memcpy(&v, mem + gpa, 4); return v; }

/* PTE of the 4 KiB page holding (va) (va < 2 MiB). */
static void map(uint64_t va, uint64_t pa, uint64_t flags) { put64(PT + (va >> 12) * 8, pa | flags); }
static uint64_t pte(uint64_t va) { return get64(PT + (va >> 12) * 8); }

static struct kvm_cpuid_entry2 *leaf(uint32_t fn, uint32_t idx)
{
	for (unsigned i = 0; i < 16; i++)
		if (cpuid[i].function == fn && cpuid[i].index == idx &&
		    (cpuid[i].eax | cpuid[i].ebx | cpuid[i].ecx | cpuid[i].edx | cpuid[i].flags))
			return &cpuid[i];
	abort();
}

static int setup(void **s)
{
	(void)s;
	mem = calloc(1, MEM_SIZE);
	assert_non_null(mem);
	/* identity map of the first 2 MiB, 4 KiB pages, supervisor RW */
	put64(PML4, PDPT | P | RW | US);
	put64(PDPT, PD | P | RW | US);
	put64(PD, PT | P | RW | US);
	for (uint64_t va = 0; va < MEM_SIZE; va += 4096)
		map(va, va, P | RW);
	memset(&st, 0, sizeof(st));
	st.cr0 = CR0_PE | CR0_PG | CR0_WP | CR0_NE;
	st.cr3 = PML4;
	st.cr4 = CR4_PAE | CR4_OSXSAVE | CR4_SMAP;
	st.efer = EFER_LME | EFER_LMA | EFER_NXE;
	st.rip = CODE;
	st.rflags = 0x2;
	st.gpr[RSP] = STACK;
	for (int i = 0; i < EMU_NSEG; i++)
		st.seg[i] = (struct emu_seg){.limit = 0xffffffff, .type = 3, .s = 1, .present = 1, .db = 1};
	st.seg[EMU_CS] = (struct emu_seg){.selector = 0x10, .limit = 0xffffffff, .type = 11, .s = 1,
	                                  .present = 1, .l = 1};
	memset(cpuid, 0, sizeof(cpuid));
	struct kvm_cpuid_entry2 t[] = {
		{.function = 0, .eax = 0xd},
		{.function = 1, .ecx = (1u << 26) | (1u << 22) | (1u << 27)}, /* XSAVE MOVBE OSXSAVE */
		{.function = 7, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		 .ebx = (1u << 20) | (1u << 10) | (1u << 23) | (1u << 24)}, /* SMAP INVPCID CLFLUSHOPT CLWB */
		{.function = 0xd, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 1u << 2},
		{.function = 0x80000000u, .eax = 0x80000008u},
		{.function = 0x80000001u, .edx = 1u << 29},
		{.function = 0x80000008u, .eax = 0x3030, .ebx = 1u << 4, .edx = 1u << 16},
	};
	memcpy(cpuid, t, sizeof(t));
	env = (struct emu_env){.cpuid = cpuid, .ncpuid = 16, .read_phys = rd, .write_phys = wr,
	                       .query = query};
	q_xcr0 = 0x7;
	q_xinuse = 0x3;
	q_fsw = 0;
	q_fail = false;
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	free(mem);
	return 0;
}

#define B(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static struct emu_result step(const uint8_t *b, size_t n)
{
	struct emu_result r;
	emu_step(&env, &st, b, n, NULL, &r);
	return r;
}

/* Expect a fault; the state must be unchanged. */
static void expect_fault(const uint8_t *b, size_t n, uint8_t vec, bool has_ec, uint32_t ec)
{
	struct emu_state before = st;
	struct emu_result r = step(b, n);
	assert_int_equal(r.outcome, EMU_FAULT);
	assert_int_equal(r.vector, vec);
	assert_int_equal(r.has_error_code, has_ec);
	assert_int_equal(r.error_code, ec);
	assert_false(r.event);
	assert_int_equal(r.flush, EMU_FLUSH_NONE);
	assert_memory_equal(&before, &st, sizeof(st));
}

static void expect_ud(const uint8_t *b, size_t n) { expect_fault(b, n, 6, false, 0); }
static void expect_gp0(const uint8_t *b, size_t n) { expect_fault(b, n, 13, true, 0); }

static void expect_unhandled(const uint8_t *b, size_t n)
{
	struct emu_state before = st;
	struct emu_result r = step(b, n);
	assert_int_equal(r.outcome, EMU_UNHANDLED);
	assert_true(r.why[0] != 0);
	assert_memory_equal(&before, &st, sizeof(st));
}

static void expect_done(const uint8_t *b, size_t n, unsigned len)
{
	uint64_t rip = st.rip;
	struct emu_result r = step(b, n);
	assert_int_equal(r.outcome, EMU_DONE);
	assert_int_equal(r.length, len);
	assert_int_equal(st.rip, rip + len);
}

/* ---- XGETBV --------------------------------------------------------------------- */

static void test_xgetbv(void **s)
{
	(void)s;
	q_xcr0 = 0x4000002e7ull; /* bit 34: the high half goes to EDX */
	st.gpr[RAX] = st.gpr[RDX] = ~0ull;
	st.gpr[RCX] = 0xffffffff00000000ull; /* only ECX counts */
	st.rflags |= RFL_RF;
	expect_done(B(0x0f, 0x01, 0xd0), 3);
	assert_int_equal(st.gpr[RAX], 0x2e7);
	assert_int_equal(st.gpr[RDX], 4);
	assert_false(st.rflags & RFL_RF);
	/* XINUSE: XCR0 & XINUSE */
	st.gpr[RCX] = 1;
	q_xinuse = 0x205;
	expect_done(B(0x0f, 0x01, 0xd0), 3);
	assert_int_equal(st.gpr[RAX], 0x205);
	assert_int_equal(st.gpr[RDX], 0);
	/* REX is ignored */
	st.gpr[RCX] = 0;
	expect_done(B(0x48, 0x0f, 0x01, 0xd0), 4);
	/* at CPL3 too (not privileged) */
	st.seg[EMU_SS].dpl = 3;
	expect_done(B(0x0f, 0x01, 0xd0), 3);
}

static void test_xgetbv_faults(void **s)
{
	(void)s;
	st.gpr[RCX] = 2;
	expect_gp0(B(0x0f, 0x01, 0xd0));
	st.gpr[RCX] = 1; /* ECX=1 without CPUID.(0xd,1).EAX[2] */
	leaf(0xd, 1)->eax = 0;
	expect_gp0(B(0x0f, 0x01, 0xd0));
	st.gpr[RCX] = 0;
	expect_ud(B(0xf0, 0x0f, 0x01, 0xd0)); /* LOCK */
	expect_ud(B(0x66, 0x0f, 0x01, 0xd0)); /* NP */
	expect_ud(B(0xf3, 0x0f, 0x01, 0xd0));
	st.cr4 &= ~CR4_OSXSAVE;
	expect_ud(B(0x0f, 0x01, 0xd0));
	st.cr4 |= CR4_OSXSAVE;
	leaf(1, 0)->ecx &= ~(1u << 26);
	expect_ud(B(0x0f, 0x01, 0xd0));
	/* XINUSE unavailable from the host: refused, not guessed */
	leaf(1, 0)->ecx |= 1u << 26;
	leaf(0xd, 1)->eax = 4;
	st.gpr[RCX] = 1;
	q_fail = true;
	expect_unhandled(B(0x0f, 0x01, 0xd0));
}

/* ---- RDPRU ------------------------------------------------------------------------ */

static void test_rdpru(void **s)
{
	(void)s;
	st.rflags |= RFL_ZF;
	expect_done(B(0x0f, 0x01, 0xfd), 3);
	assert_int_equal(st.gpr[RAX], 0x55667788);
	assert_int_equal(st.gpr[RDX], 0x11223344);
	assert_true(st.rflags & RFL_CF);
	assert_false(st.rflags & RFL_ZF);
	st.gpr[RCX] = 1;
	expect_done(B(0x0f, 0x01, 0xfd), 3);
	assert_int_equal(st.gpr[RAX], 0xddeeff00);
	assert_int_equal(st.gpr[RDX], 0x99aabbcc);
	/* beyond the maximum: zero, CF clear */
	st.gpr[RCX] = 2;
	expect_done(B(0x0f, 0x01, 0xfd), 3);
	assert_int_equal(st.gpr[RAX], 0);
	assert_int_equal(st.gpr[RDX], 0);
	assert_false(st.rflags & RFL_CF);
	/* maximum 0: APERF is not supported */
	leaf(0x80000008u, 0)->edx = 0;
	st.gpr[RCX] = 1;
	expect_done(B(0x0f, 0x01, 0xfd), 3);
	assert_false(st.rflags & RFL_CF);
	/* CPL3 with CR4.TSD clear is allowed */
	st.seg[EMU_SS].dpl = 3;
	st.gpr[RCX] = 0;
	expect_done(B(0x0f, 0x01, 0xfd), 3);
}

static void test_rdpru_faults(void **s)
{
	(void)s;
	st.seg[EMU_SS].dpl = 3;
	st.cr4 |= CR4_TSD;
	expect_ud(B(0x0f, 0x01, 0xfd));
	st.seg[EMU_SS].dpl = 0;
	expect_done(B(0x0f, 0x01, 0xfd), 3); /* TSD does not apply at CPL0 */
	expect_ud(B(0xf0, 0x0f, 0x01, 0xfd));
	leaf(0x80000008u, 0)->ebx = 0;
	expect_ud(B(0x0f, 0x01, 0xfd));
	leaf(0x80000008u, 0)->ebx = 1u << 4;
	q_fail = true;
	expect_unhandled(B(0x0f, 0x01, 0xfd));
}

/* ---- STAC / CLAC --------------------------------------------------------------------- */

static void test_stac_clac(void **s)
{
	(void)s;
	expect_done(B(0x0f, 0x01, 0xcb), 3);
	assert_true(st.rflags & RFL_AC);
	expect_done(B(0x0f, 0x01, 0xca), 3);
	assert_false(st.rflags & RFL_AC);
	expect_ud(B(0xf0, 0x0f, 0x01, 0xcb));
	expect_ud(B(0x66, 0x0f, 0x01, 0xca));
	st.seg[EMU_SS].dpl = 3;
	expect_ud(B(0x0f, 0x01, 0xcb));
	st.seg[EMU_SS].dpl = 0;
	leaf(7, 0)->ebx &= ~(1u << 20);
	expect_ud(B(0x0f, 0x01, 0xca));
}

/* ---- FWAIT ---------------------------------------------------------------------------- */

static void test_fwait(void **s)
{
	(void)s;
	expect_done(B(0x9b), 1);
	st.cr0 |= CR0_TS; /* TS without MP: no #NM */
	expect_done(B(0x9b), 1);
	st.cr0 |= CR0_MP;
	expect_fault(B(0x9b), 7, false, 0);
	st.cr0 &= ~(CR0_TS | CR0_MP);
	q_fsw = 0x80; /* ES: unmasked exception pending */
	expect_fault(B(0x9b), 16, false, 0);
	q_fsw = 0x3f; /* flags without ES: nothing pending */
	expect_done(B(0x9b), 1);
	q_fail = true;
	expect_unhandled(B(0x9b));
}

/* ---- INT3 / INT n ------------------------------------------------------------------------ */

#define IDT 0x5000u

static void gate(unsigned vec, unsigned dpl)
{
	uint64_t lo = (0x10ull << 16) | (1ull << 47) | ((uint64_t)dpl << 45) | (0xeull << 40);
	put64(IDT + vec * 16, lo);
	put64(IDT + vec * 16 + 8, 0);
}

static void test_int(void **s)
{
	(void)s;
	struct emu_result r = step(B(0xcc));
	assert_int_equal(r.outcome, EMU_DONE);
	assert_true(r.event);
	assert_int_equal(r.event_vector, 3);
	assert_int_equal(st.rip, CODE + 1);
	r = step(B(0xcd, 0x80));
	assert_true(r.event);
	assert_int_equal(r.event_vector, 0x80);
	assert_int_equal(st.rip, CODE + 3);
	r = step(B(0xcd, 0x0e));
	assert_true(r.event);
	assert_int_equal(r.event_vector, 14);
	/* CPL3: the gate's DPL decides */
	st.idt_base = IDT;
	st.idt_limit = 256 * 16 - 1;
	gate(0x80, 0);
	gate(0x81, 3);
	gate(3, 0);
	st.seg[EMU_SS].dpl = 3;
	expect_fault(B(0xcd, 0x80), 13, true, 0x80 * 8 + 2);
	expect_fault(B(0xcc), 13, true, 3 * 8 + 2);
	r = step(B(0xcd, 0x81));
	assert_int_equal(r.outcome, EMU_DONE);
	assert_int_equal(r.event_vector, 0x81);
	st.idt_limit = 0x81 * 16 - 1; /* gate 0x81 beyond the limit */
	expect_fault(B(0xcd, 0x81), 13, true, 0x81 * 8 + 2);
	/* truncated immediate */
	expect_unhandled(B(0xcd));
	st.seg[EMU_SS].dpl = 0;
	expect_ud(B(0xf0, 0xcc));
}

/* ---- IRET (32-bit) --------------------------------------------------------------------------- */

static void prot32(void)
{
	st.cr0 = CR0_PE | CR0_NE;
	st.cr4 = 0;
	st.efer = 0;
	st.seg[EMU_CS] = (struct emu_seg){.selector = 0x8, .limit = 0xffffffff, .type = 11, .s = 1,
	                                  .present = 1, .db = 1};
}

static void test_iret32(void **s)
{
	(void)s;
	prot32();
	st.gpr[RSP] = 0xffff00000000ull | STACK; /* upper bits: not part of ESP */
	uint32_t frame[3] = {0x12345, 0x8, 0x40202 /* AC | IF */};
	memcpy(mem + STACK, frame, sizeof(frame));
	struct emu_result r = step(B(0xcf));
	assert_int_equal(r.outcome, EMU_DONE);
	assert_true(r.end_nmi_blocking);
	assert_int_equal(st.rip, 0x12345);
	assert_int_equal(st.rflags, 0x40202);
	assert_int_equal(st.gpr[RSP], STACK + 12);
	/* another CS, VM86, 16-bit IRET, NT, CPL3, 64-bit: not ours */
	st.gpr[RSP] = STACK;
	frame[1] = 0x18;
	memcpy(mem + STACK, frame, sizeof(frame));
	expect_unhandled(B(0xcf));
	frame[1] = 0x8;
	frame[2] = 0x20002;
	memcpy(mem + STACK, frame, sizeof(frame));
	expect_unhandled(B(0xcf));
	frame[2] = 0x2;
	memcpy(mem + STACK, frame, sizeof(frame));
	expect_unhandled(B(0x66, 0xcf));
	st.rflags |= 1u << 14;
	expect_unhandled(B(0xcf));
	st.rflags &= ~(1ull << 14);
	st.seg[EMU_SS].dpl = 3;
	expect_unhandled(B(0xcf));
	st.seg[EMU_SS].dpl = 0;
	/* EIP beyond CS's limit: #GP(0) */
	st.seg[EMU_CS].limit = 0xffff;
	expect_gp0(B(0xcf));
	/* the frame beyond SS's limit: #SS(0) */
	st.seg[EMU_CS].limit = 0xffffffff;
	st.seg[EMU_SS].limit = STACK + 4;
	expect_fault(B(0xcf), 12, true, 0);
}

/* ---- CLWB / CLFLUSHOPT -------------------------------------------------------------------------- */

static void test_clwb_clflushopt(void **s)
{
	(void)s;
	st.gpr[RAX] = DATA;
	uint8_t before[64];
	memcpy(before, mem + DATA, 64);
	expect_done(B(0x66, 0x0f, 0xae, 0x30), 4); /* clwb [rax] */
	expect_done(B(0x66, 0x0f, 0xae, 0x38), 4); /* clflushopt [rax] */
	expect_done(B(0x66, 0x41, 0x0f, 0xae, 0x7c, 0x24, 0x08), 7); /* clflushopt [r12+8] */
	assert_memory_equal(before, mem + DATA, 64);
	assert_true(pte(DATA) & A); /* a load's walk */
	assert_false(pte(DATA) & D);
	/* not present: #PF as a load, CR2 */
	map(DATA + 0x1000, DATA + 0x1000, 0);
	st.gpr[RAX] = DATA + 0x1008;
	struct emu_result r = step(B(0x66, 0x0f, 0xae, 0x30));
	assert_int_equal(r.outcome, EMU_FAULT);
	assert_int_equal(r.vector, 14);
	assert_int_equal(r.error_code, 0);
	assert_int_equal(r.cr2, DATA + 0x1008);
	/* a read-only page is fine (a load) */
	map(DATA + 0x1000, DATA + 0x1000, P);
	expect_done(B(0x66, 0x0f, 0xae, 0x38), 4);
	/* non-canonical: #GP(0); through RSP/RBP: #SS(0) */
	st.gpr[RAX] = 0x0000800000000000ull;
	expect_gp0(B(0x66, 0x0f, 0xae, 0x30));
	st.gpr[RBP] = 0x0000800000000000ull;
	expect_fault(B(0x66, 0x0f, 0xae, 0x7d, 0x00), 12, true, 0);
	/* CPL3, supervisor page: #PF P|U */
	st.gpr[RAX] = DATA;
	st.seg[EMU_SS].dpl = 3;
	expect_fault(B(0x66, 0x0f, 0xae, 0x30), 14, true, 5);
	/* CPL0, user page, SMAP and AC=0: #PF P; AC=1: allowed */
	st.seg[EMU_SS].dpl = 0;
	map(DATA, DATA, P | RW | US);
	expect_fault(B(0x66, 0x0f, 0xae, 0x38), 14, true, 1);
	st.rflags |= RFL_AC;
	expect_done(B(0x66, 0x0f, 0xae, 0x38), 4);
	/* features, LOCK, forms that are other instructions */
	leaf(7, 0)->ebx &= ~(1u << 24);
	expect_ud(B(0x66, 0x0f, 0xae, 0x30));
	expect_done(B(0x66, 0x0f, 0xae, 0x38), 4);
	leaf(7, 0)->ebx &= ~(1u << 23);
	expect_ud(B(0x66, 0x0f, 0xae, 0x38));
	leaf(7, 0)->ebx |= (1u << 23) | (1u << 24);
	expect_ud(B(0xf0, 0x66, 0x0f, 0xae, 0x30));
	expect_unhandled(B(0x0f, 0xae, 0x38));       /* clflush */
	expect_unhandled(B(0x66, 0x0f, 0xae, 0xf0)); /* tpause */
	expect_unhandled(B(0x66, 0x0f, 0xae, 0x28)); /* /5 */
}

/* ---- MOVBE --------------------------------------------------------------------------------------- */

static void test_movbe_load(void **s)
{
	(void)s;
	uint8_t v[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
	memcpy(mem + DATA, v, 8);
	st.gpr[RSI] = DATA;
	st.gpr[RAX] = ~0ull;
	expect_done(B(0x0f, 0x38, 0xf0, 0x06), 4); /* movbe eax, [rsi] */
	assert_int_equal(st.gpr[RAX], 0x11223344);
	st.gpr[RAX] = ~0ull;
	expect_done(B(0x66, 0x0f, 0x38, 0xf0, 0x06), 5); /* movbe ax, [rsi] */
	assert_int_equal(st.gpr[RAX], 0xffffffffffff1122ull);
	expect_done(B(0x48, 0x0f, 0x38, 0xf0, 0x06), 5); /* movbe rax, [rsi] */
	assert_int_equal(st.gpr[RAX], 0x1122334455667788ull);
	expect_done(B(0x66, 0x48, 0x0f, 0x38, 0xf0, 0x06), 6); /* REX.W wins over 66 */
	assert_int_equal(st.gpr[RAX], 0x1122334455667788ull);
	/* movbe r9d, [rbx + rcx*4 + 0x10] */
	st.gpr[RBX] = DATA - 0x10 - 8;
	st.gpr[RCX] = 2;
	expect_done(B(0x44, 0x0f, 0x38, 0xf0, 0x4c, 0x8b, 0x10), 7);
	assert_int_equal(st.gpr[R9], 0x11223344);
	/* RIP-relative: movbe edx, [rip + disp] (relative to the next insn) */
	st.rip = CODE;
	uint32_t disp = DATA - (CODE + 8);
	expect_done(B(0x0f, 0x38, 0xf0, 0x15, disp & 0xff, (disp >> 8) & 0xff, (disp >> 16) & 0xff,
	              disp >> 24), 8);
	assert_int_equal(st.gpr[RDX], 0x11223344);
	/* 0x67: 32-bit address, the upper half of RSI ignored */
	st.gpr[RSI] = 0xabcd00000000ull | DATA;
	expect_done(B(0x67, 0x0f, 0x38, 0xf0, 0x06), 5);
	assert_int_equal(st.gpr[RAX], 0x11223344);
	/* FS override adds FS's base */
	st.seg[EMU_FS].base = 0x100;
	st.gpr[RSI] = DATA - 0x100;
	expect_done(B(0x64, 0x0f, 0x38, 0xf0, 0x06), 5);
	assert_int_equal(st.gpr[RAX], 0x11223344);
}

static void test_movbe_store(void **s)
{
	(void)s;
	st.gpr[RDI] = DATA;
	st.gpr[RAX] = 0x1122334455667788ull;
	expect_done(B(0x0f, 0x38, 0xf1, 0x07), 4); /* movbe [rdi], eax */
	assert_int_equal(get32(DATA), 0x88776655);
	assert_true(pte(DATA) & D);
	expect_done(B(0x48, 0x0f, 0x38, 0xf1, 0x07), 5);
	assert_int_equal(get64(DATA), 0x8877665544332211ull);
	put64(DATA, 0);
	expect_done(B(0x66, 0x0f, 0x38, 0xf1, 0x07), 5);
	assert_int_equal(get64(DATA), 0x8877);
	/* movbe [rdi + 8], r15 */
	st.gpr[R15] = 0x0102030405060708ull;
	expect_done(B(0x4c, 0x0f, 0x38, 0xf1, 0x7f, 0x08), 6);
	assert_int_equal(get64(DATA + 8), 0x0807060504030201ull);
}

static void test_movbe_faults(void **s)
{
	(void)s;
	st.gpr[RDI] = DATA;
	expect_ud(B(0x0f, 0x38, 0xf0, 0xc0));       /* register form */
	expect_ud(B(0xf3, 0x0f, 0x38, 0xf0, 0x07)); /* REP */
	expect_ud(B(0xf0, 0x0f, 0x38, 0xf1, 0x07)); /* LOCK */
	expect_unhandled(B(0xf2, 0x0f, 0x38, 0xf0, 0xc0)); /* crc32 */
	/* read-only page: a store faults (WP), a load does not */
	map(DATA, DATA, P);
	expect_fault(B(0x0f, 0x38, 0xf1, 0x07), 14, true, 3);
	expect_done(B(0x0f, 0x38, 0xf0, 0x07), 4);
	st.cr0 &= ~CR0_WP; /* supervisor writes ignore R/W without WP */
	expect_done(B(0x0f, 0x38, 0xf1, 0x07), 4);
	st.cr0 |= CR0_WP;
	/* CPL3 store to a user read-only page: P|W|U */
	map(DATA, DATA, P | US);
	st.seg[EMU_SS].dpl = 3;
	expect_fault(B(0x0f, 0x38, 0xf1, 0x07), 14, true, 7);
	st.seg[EMU_SS].dpl = 0;
	map(DATA, DATA, P | RW);
	/* a store across into a missing page: nothing written, CR2 = the page */
	map(DATA + 0x1000, DATA + 0x1000, 0);
	st.gpr[RDI] = DATA + 0xffc;
	st.gpr[RAX] = 0x1122334455667788ull;
	struct emu_result r = step(B(0x48, 0x0f, 0x38, 0xf1, 0x07));
	assert_int_equal(r.outcome, EMU_FAULT);
	assert_int_equal(r.error_code, 2);
	assert_int_equal(r.cr2, DATA + 0x1000);
	assert_int_equal(get32(DATA + 0xffc), 0);
	/* reserved bit in a PTE: P|RSVD */
	map(DATA, DATA | (1ull << 50), P | RW);
	st.gpr[RDI] = DATA;
	expect_fault(B(0x0f, 0x38, 0xf0, 0x07), 14, true, 9);
	map(DATA, DATA, P | RW);
	/* non-canonical */
	st.gpr[RDI] = 0xfff0000000000000ull;
	expect_gp0(B(0x0f, 0x38, 0xf0, 0x07));
	/* the last byte crossing into non-canonical space */
	st.gpr[RDI] = 0x00007ffffffffffcull;
	expect_gp0(B(0x48, 0x0f, 0x38, 0xf0, 0x07));
	/* CPUID */
	st.gpr[RDI] = DATA;
	leaf(1, 0)->ecx &= ~(1u << 22);
	expect_ud(B(0x0f, 0x38, 0xf0, 0x07));
	/* not RAM */
	leaf(1, 0)->ecx |= 1u << 22;
	map(DATA, 0x1000000, P | RW);
	expect_unhandled(B(0x0f, 0x38, 0xf0, 0x07));
}

static void test_movbe_16bit(void **s)
{
	(void)s;
	/* real mode: 16-bit operands and addresses by default */
	st.cr0 = 0;
	st.cr4 = 0;
	st.efer = 0;
	for (int i = 0; i < EMU_NSEG; i++)
		st.seg[i] = (struct emu_seg){.base = 0x1000, .limit = 0xffff, .type = 3, .s = 1,
		                             .present = 1, .selector = 0x100};
	st.rip = 0;
	uint8_t v[4] = {0xaa, 0xbb, 0xcc, 0xdd};
	memcpy(mem + 0x1000 + 0x234, v, 4);
	st.gpr[RBX] = 0x200;
	st.gpr[RSI] = 0x30;
	st.gpr[RAX] = 0x12340000;
	/* movbe ax, [bx + si + 4] */
	expect_done(B(0x0f, 0x38, 0xf0, 0x40, 0x04), 5);
	assert_int_equal(st.gpr[RAX], 0x1234aabb);
	/* 66: movbe eax, ... */
	expect_done(B(0x66, 0x0f, 0x38, 0xf0, 0x40, 0x04), 6);
	assert_int_equal(st.gpr[RAX], 0xaabbccdd);
	/* beyond the 64 KiB limit: #GP(0); BP-based: #SS(0) */
	st.gpr[RBX] = 0xfffe;
	st.gpr[RSI] = 0;
	expect_gp0(B(0x66, 0x0f, 0x38, 0xf0, 0x07)); /* [bx], 4 bytes */
	st.gpr[RBP] = 0xfffe;
	expect_fault(B(0x66, 0x0f, 0x38, 0xf0, 0x46, 0x00), 12, true, 0); /* [bp+0] */
	/* IP wraps at 64 KiB */
	st.rip = 0xfffe;
	st.gpr[RBX] = 0x200;
	st.gpr[RSI] = 0x30;
	struct emu_result r = step(B(0x0f, 0x38, 0xf0, 0x40, 0x04));
	assert_int_equal(r.outcome, EMU_DONE);
	assert_int_equal(st.rip, 3);
}

/* ---- INVPCID --------------------------------------------------------------------------------------- */

static void desc(uint64_t lo, uint64_t hi)
{
	put64(DATA, lo);
	put64(DATA + 8, hi);
}

static void test_invpcid(void **s)
{
	(void)s;
	static const enum emu_flush kinds[4] = {EMU_FLUSH_ADDR, EMU_FLUSH_PCID, EMU_FLUSH_ALL,
	                                        EMU_FLUSH_ALL_NONGLOBAL};
	st.gpr[RDI] = DATA;
	desc(0, 0x7fff12345000ull);
	for (uint64_t t = 0; t < 4; t++) {
		st.gpr[RAX] = t;
		struct emu_result r = step(B(0x66, 0x0f, 0x38, 0x82, 0x07)); /* invpcid rax, [rdi] */
		assert_int_equal(r.outcome, EMU_DONE);
		assert_int_equal(r.flush, kinds[t]);
		assert_int_equal(r.flush_addr, 0x7fff12345000ull);
	}
	/* PCID != 0 needs CR4.PCIDE for types 0 and 1 */
	desc(5, 0);
	st.cr4 |= CR4_PCIDE;
	st.gpr[RAX] = 1;
	struct emu_result r = step(B(0x66, 0x0f, 0x38, 0x82, 0x07));
	assert_int_equal(r.outcome, EMU_DONE);
	assert_int_equal(r.flush_pcid, 5);
	/* r9 as the type register, descriptor at [r10] */
	st.gpr[R9] = 2;
	st.gpr[R10] = DATA;
	r = step(B(0x66, 0x45, 0x0f, 0x38, 0x82, 0x0a));
	assert_int_equal(r.outcome, EMU_DONE);
	assert_int_equal(r.flush, EMU_FLUSH_ALL);
}

static void test_invpcid_faults(void **s)
{
	(void)s;
	st.gpr[RDI] = DATA;
	desc(0, 0);
	st.gpr[RAX] = 4;
	expect_gp0(B(0x66, 0x0f, 0x38, 0x82, 0x07));
	st.gpr[RAX] = 0x100000000ull; /* all 64 bits count */
	expect_gp0(B(0x66, 0x0f, 0x38, 0x82, 0x07));
	st.gpr[RAX] = 0;
	desc(1ull << 12, 0); /* reserved bits 63:12 */
	expect_gp0(B(0x66, 0x0f, 0x38, 0x82, 0x07));
	desc(3, 0); /* PCID without CR4.PCIDE, type 0 and 1 */
	expect_gp0(B(0x66, 0x0f, 0x38, 0x82, 0x07));
	st.gpr[RAX] = 1;
	expect_gp0(B(0x66, 0x0f, 0x38, 0x82, 0x07));
	st.gpr[RAX] = 2; /* types 2 and 3 ignore the PCID */
	expect_done(B(0x66, 0x0f, 0x38, 0x82, 0x07), 5);
	st.rip = CODE;
	desc(0, 0x0000800000000000ull); /* type 0: non-canonical address */
	st.gpr[RAX] = 0;
	expect_gp0(B(0x66, 0x0f, 0x38, 0x82, 0x07));
	st.gpr[RAX] = 1; /* type 1 ignores the address */
	expect_done(B(0x66, 0x0f, 0x38, 0x82, 0x07), 5);
	/* CPL3 */
	st.seg[EMU_SS].dpl = 3;
	expect_gp0(B(0x66, 0x0f, 0x38, 0x82, 0x07));
	st.seg[EMU_SS].dpl = 0;
	/* the descriptor on a missing page */
	map(DATA, DATA, 0);
	expect_fault(B(0x66, 0x0f, 0x38, 0x82, 0x07), 14, true, 0);
	map(DATA, DATA, P | RW);
	/* #UD: register form, LOCK, REP, CPUID */
	expect_ud(B(0x66, 0x0f, 0x38, 0x82, 0xc0));
	expect_ud(B(0xf0, 0x66, 0x0f, 0x38, 0x82, 0x07));
	expect_ud(B(0x66, 0xf3, 0x0f, 0x38, 0x82, 0x07));
	leaf(7, 0)->ebx &= ~(1u << 10);
	expect_ud(B(0x66, 0x0f, 0x38, 0x82, 0x07));
	/* without 66 it is not INVPCID */
	expect_unhandled(B(0x0f, 0x38, 0x82, 0x07));
}

/* ---- bad input --------------------------------------------------------------------------------------- */

static void test_bad_input(void **s)
{
	(void)s;
	expect_unhandled(NULL, 0);
	expect_unhandled(B(0x0f));
	expect_unhandled(B(0x0f, 0x01));
	expect_unhandled(B(0x66, 0x0f, 0x38, 0xf0));    /* no ModRM */
	expect_unhandled(B(0x0f, 0x38, 0xf0, 0x86, 0x01)); /* disp32 cut short */
	expect_unhandled(B(0x90));                       /* nop: not ours */
	expect_unhandled(B(0x0f, 0x01, 0xd1));           /* xsetbv: not ours */
	/* more than 15 bytes: #GP(0) */
	uint8_t longi[16];
	memset(longi, 0x66, sizeof(longi));
	longi[12] = 0x0f, longi[13] = 0x01, longi[14] = 0xd0;
	expect_unhandled(longi, 12); /* only prefixes available: truncated */
	memset(longi, 0x66, sizeof(longi));
	longi[13] = 0x0f, longi[14] = 0x01, longi[15] = 0xd0;
	expect_gp0(longi, 16);
	/* REX followed by a legacy prefix is ignored (so REX.W does not apply) */
	memcpy(mem + DATA, (uint8_t[]){1, 2, 3, 4, 5, 6, 7, 8}, 8);
	st.gpr[RSI] = DATA;
	st.gpr[RAX] = ~0ull;
	expect_done(B(0x48, 0x3e, 0x0f, 0x38, 0xf0, 0x06), 6);
	assert_int_equal(st.gpr[RAX], 0x01020304);
}

static void test_fetch(void **s)
{
	(void)s;
	/* an instruction across a page boundary into a missing page */
	map(CODE + 0x1000, CODE + 0x1000, 0);
	st.rip = CODE + 0xffe;
	mem[CODE + 0xffe] = 0x0f;
	mem[CODE + 0xfff] = 0x01;
	uint8_t b[EMU_MAX_INSN];
	struct emu_result ff, r;
	size_t n = emu_fetch(&env, &st, b, &ff);
	assert_int_equal(n, 2);
	assert_int_equal(ff.outcome, EMU_FAULT);
	emu_step(&env, &st, b, n, &ff, &r);
	assert_int_equal(r.outcome, EMU_FAULT);
	assert_int_equal(r.vector, 14);
	assert_int_equal(r.error_code, 0x10); /* I/D (NXE), not present, supervisor */
	assert_int_equal(r.cr2, CODE + 0x1000);
	/* a complete instruction before the missing page runs */
	st.rip = CODE + 0xffd;
	mem[CODE + 0xffd] = 0x0f, mem[CODE + 0xffe] = 0x01, mem[CODE + 0xfff] = 0xd0;
	n = emu_fetch(&env, &st, b, &ff);
	assert_int_equal(n, 3);
	emu_step(&env, &st, b, n, &ff, &r);
	assert_int_equal(r.outcome, EMU_DONE);
	assert_int_equal(st.rip, CODE + 0x1000);
	/* NX page: fetch fault P|I */
	map(CODE, CODE, P | RW | (1ull << 63));
	st.rip = CODE;
	n = emu_fetch(&env, &st, b, &ff);
	assert_int_equal(n, 0);
	assert_int_equal(ff.error_code, 0x11);
	/* a page table outside RAM: refused */
	put64(PD, 0x4000000 | P | RW);
	n = emu_fetch(&env, &st, b, &ff);
	assert_int_equal(n, 0);
	assert_int_equal(ff.outcome, EMU_UNHANDLED);
	emu_step(&env, &st, b, n, &ff, &r);
	assert_int_equal(r.outcome, EMU_UNHANDLED);
}

static void test_large_pages(void **s)
{
	(void)s;
	/* a 2 MiB page at 0x200000 -> 0 (PD entry 1) */
	put64(PD + 8, 0 | P | RW | PS);
	st.gpr[RSI] = 0x200000 + DATA;
	memcpy(mem + DATA, (uint8_t[]){1, 2, 3, 4}, 4);
	expect_done(B(0x0f, 0x38, 0xf0, 0x06), 4);
	assert_int_equal(st.gpr[RAX], 0x01020304);
	assert_true(get64(PD + 8) & A);
	/* reserved bits 20:13 of a 2 MiB PDE */
	put64(PD + 8, (1ull << 13) | P | RW | PS);
	expect_fault(B(0x0f, 0x38, 0xf0, 0x06), 14, true, 9);
	/* PS in a PML4E is reserved */
	put64(PML4 + 8, PDPT | P | RW | PS);
	st.gpr[RSI] = 1ull << 39;
	expect_fault(B(0x0f, 0x38, 0xf0, 0x06), 14, true, 9);
}

static void put32(uint64_t gpa, uint32_t v) { memcpy(mem + gpa, &v, 4); }

/* 32-bit paging without PAE: 4 KiB pages, 4 MiB pages with CR4.PSE, the
 * PS bit ignored without it; protection checks as in long mode. */
static void test_legacy_paging(void **s)
{
	(void)s;
	prot32();
	st.cr0 |= CR0_PG | CR0_WP;
	st.cr3 = 0x7000;
	put32(0x7000, 0x8000 | P | RW);          /* PDE 0 -> PT at 0x8000 */
	put32(0x7004, 0x000000 | P | RW | PS);   /* PDE 1: 4 MiB page at 0 */
	put32(0x8000 + (DATA >> 12) * 4, DATA | P); /* read-only 4 KiB page */
	memcpy(mem + DATA, (uint8_t[]){1, 2, 3, 4}, 4);
	st.gpr[RSI] = DATA;
	expect_done(B(0x0f, 0x38, 0xf0, 0x06), 4); /* movbe eax, [esi] */
	assert_int_equal(st.gpr[RAX], 0x01020304);
	assert_int_equal(get32(0x8000 + (DATA >> 12) * 4), DATA | P | A);
	expect_fault(B(0x0f, 0x38, 0xf1, 0x06), 14, true, 3); /* store: WP */
	st.cr4 |= 1u << 4; /* PSE */
	st.gpr[RSI] = 0x400000 + DATA;
	expect_done(B(0x0f, 0x38, 0xf0, 0x06), 4);
	assert_int_equal(st.gpr[RAX], 0x01020304);
	/* without PSE, PDE 1 points to a page table at 0: entry (DATA >> 12)
	 * there is whatever lies at 0x80, here not present */
	st.cr4 &= ~(1ull << 4);
	put32(0x0000 + (DATA >> 12) * 4, 0);
	struct emu_result r = step(B(0x0f, 0x38, 0xf0, 0x06));
	assert_int_equal(r.outcome, EMU_FAULT);
	assert_int_equal(r.error_code, 0);
	assert_int_equal(r.cr2, 0x400000 + DATA);
	/* a 32-bit address wraps: [esi + 8] with esi = 0xfffffffc -> 4 */
	st.cr0 &= ~CR0_PG;
	st.gpr[RSI] = 0xfffffffcull;
	memcpy(mem + 4, (uint8_t[]){9, 8, 7, 6}, 4);
	expect_done(B(0x0f, 0x38, 0xf0, 0x46, 0x08), 5);
	assert_int_equal(st.gpr[RAX], 0x09080706);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_xgetbv),        T(test_xgetbv_faults),   T(test_rdpru),
		T(test_rdpru_faults),  T(test_stac_clac),       T(test_fwait),
		T(test_int),           T(test_iret32),          T(test_clwb_clflushopt),
		T(test_movbe_load),    T(test_movbe_store),     T(test_movbe_faults),
		T(test_movbe_16bit),   T(test_invpcid),         T(test_invpcid_faults),
		T(test_bad_input),     T(test_fetch),           T(test_large_pages),
		T(test_legacy_paging),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
