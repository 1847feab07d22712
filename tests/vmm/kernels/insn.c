/* insn.c: instructions some KVMs cannot emulate at CPL0 (XGETBV, MOVBE,
 * CLWB, CLFLUSHOPT, INVPCID, RDPRU, STAC/CLAC, FWAIT, INT3, INT n), each
 * run at CPL0 with its architectural result checked. On a hardware-
 * virtualized KVM they run natively; where KVM runs CPL0 code in its
 * instruction emulator (kvm_pvm) libzhv's fallback emulator finishes them
 * (lib/x86/emulate.c). Either way the guest must see the same thing: the
 * result, or the exception the architecture gives (#UD when the guest's
 * CPUID lacks the feature). Exceptions come back through the runtime's
 * IDT, whose handlers return with a 32-bit IRET (also one of the fallback
 * emulator's instructions). Prints "group NAME: ok" per instruction, then
 * PASS (tests/vmm/insn.sh). */
#include "group.h"
#include "rt.h"

/* The handler resumes at insn_resume and records the exception. */
uint32_t insn_resume;
static volatile uint32_t caught_vec, caught_err, caught_eip;
static volatile uint32_t bp_count;

static void catch_fault(struct rt_frame *f)
{
	caught_vec = f->vector + 1;
	caught_err = f->error;
	caught_eip = f->eip;
	f->eip = insn_resume;
}

static void catch_trap(struct rt_frame *f)
{
	bp_count++;
	caught_eip = f->eip; /* a trap: the next instruction */
}

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

#define UD (6 + 1)
#define GP (13 + 1)

/* TRY(label, "insn", outputs, inputs): run one instruction, a fault
 * resumes after it with caught_vec = vector + 1. */
#define TRY(insn, ...)                                                                   \
	do {                                                                             \
		caught_vec = caught_err = 0;                                              \
		__asm__ volatile("movl $1f, insn_resume\n\t" insn "\n1:" __VA_ARGS__);      \
	} while (0)

static void expect_fault(const char *what, uint32_t vec1, uint32_t err)
{
	if (caught_vec != vec1 || (vec1 == GP && caught_err != err))
		rt_fail("%s: exception %u (error %x), want %u (error %x)", what,
		        caught_vec ? caught_vec - 1 : 0xffu, caught_err, vec1 ? vec1 - 1 : 0xffu, err);
}

static void test_xgetbv(const uint32_t c1[4], const uint32_t cd1[4])
{
	uint32_t lo = 0, hi = 0;
	if (!(c1[2] & (1u << 26))) { /* no XSAVE: CR4.OSXSAVE cannot be set */
		TRY("xgetbv", : "=a"(lo), "=d"(hi) : "c"(0) : "memory");
		expect_fault("xgetbv without XSAVE", UD, 0);
		RT_GROUP_OK("xgetbv");
		return;
	}
	uint32_t cr4, cd0[4];
	__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
	__asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | (1u << 18)));
	cpuid(0xd, 0, cd0);
	/* XCR0: x87 always set, only components CPUID.(0xd,0) supports. */
	TRY("xgetbv", : "=a"(lo), "=d"(hi) : "c"(0) : "memory");
	expect_fault("xgetbv 0", 0, 0);
	RT_EXPECT((lo & 1) && !(lo & ~cd0[0]) && !(hi & ~cd0[3]), "xgetbv(0) = %x:%x, supported %x:%x",
	          hi, lo, cd0[3], cd0[0]);
	uint32_t xcr0 = lo;
	TRY("xgetbv", : "=a"(lo), "=d"(hi) : "c"(2) : "memory");
	expect_fault("xgetbv 2", GP, 0);
	TRY("xgetbv", : "=a"(lo), "=d"(hi) : "c"(1) : "memory");
	if (cd1[0] & (1u << 2)) {
		expect_fault("xgetbv 1", 0, 0);
		RT_EXPECT((lo & ~xcr0) == 0 && hi == 0, "xgetbv(1) = %x:%x beyond XCR0 %x", hi, lo, xcr0);
	} else {
		expect_fault("xgetbv 1 without XINUSE", GP, 0);
	}
	RT_GROUP_OK("xgetbv");
}

static void test_movbe(const uint32_t c1[4])
{
	static volatile uint32_t mem[2] = {0x11223344, 0};
	uint32_t v = 0;
	bool have = c1[2] & (1u << 22);
	TRY("movbe (%1), %0", : "=r"(v) : "r"(&mem[0]) : "memory");
	expect_fault("movbe load", have ? 0 : UD, 0);
	if (have)
		RT_EXPECT(v == 0x44332211, "movbe load gave %x", v);
	TRY("movbe %0, 4(%1)", : : "r"(0xa1b2c3d4u), "r"(&mem[0]) : "memory");
	expect_fault("movbe store", have ? 0 : UD, 0);
	if (have)
		RT_EXPECT(mem[1] == 0xd4c3b2a1, "movbe store wrote %x", mem[1]);
	uint32_t w = 0xffff0000;
	TRY("movbe (%1), %w0", : "+r"(w) : "r"(&mem[0]) : "memory");
	expect_fault("movbe 16-bit load", have ? 0 : UD, 0);
	if (have)
		RT_EXPECT(w == 0xffff4433, "movbe 16-bit load gave %x", w);
	RT_GROUP_OK("movbe");
}

static void test_cache_lines(const uint32_t c7[4])
{
	static volatile uint32_t line[16];
	line[0] = 0x5a5a;
	TRY("clflushopt (%0)", : : "r"(&line[0]) : "memory");
	expect_fault("clflushopt", (c7[1] & (1u << 23)) ? 0 : UD, 0);
	TRY("clwb (%0)", : : "r"(&line[0]) : "memory");
	expect_fault("clwb", (c7[1] & (1u << 24)) ? 0 : UD, 0);
	RT_EXPECT(line[0] == 0x5a5a, "the line changed");
	RT_GROUP_OK("clflushopt-clwb");
}

static void test_invpcid(const uint32_t c7[4])
{
	static const uint32_t desc[4] __attribute__((aligned(16)));
	bool have = c7[1] & (1u << 10);
	TRY("invpcid (%1), %0", : : "r"(2u), "r"(desc) : "memory");
	expect_fault("invpcid type 2", have ? 0 : UD, 0);
	TRY("invpcid (%1), %0", : : "r"(4u), "r"(desc) : "memory");
	expect_fault("invpcid type 4", have ? GP : UD, 0);
	RT_GROUP_OK("invpcid");
}

static void test_rdpru(void)
{
	uint32_t r[4];
	cpuid(0x80000000u, 0, r);
	bool have = false;
	if (r[0] >= 0x80000008u) {
		cpuid(0x80000008u, 0, r);
		have = r[1] & (1u << 4);
	}
	uint32_t lo, hi, flags = 0;
	TRY("rdpru\n\tpushf\n\tpop %2", : "=a"(lo), "=d"(hi), "=r"(flags) : "c"(0) : "memory");
	expect_fault("rdpru", have ? 0 : UD, 0);
	if (have)
		RT_EXPECT(flags & 1, "rdpru of MPERF: CF clear");
	RT_GROUP_OK("rdpru");
}

static void test_stac_clac(const uint32_t c7[4])
{
	uint32_t flags = 0;
	bool have = c7[1] & (1u << 20);
	TRY("stac\n\tpushf\n\tpop %0", : "=r"(flags) : : "memory");
	expect_fault("stac", have ? 0 : UD, 0);
	if (have)
		RT_EXPECT(flags & (1u << 18), "stac: AC clear");
	TRY("clac\n\tpushf\n\tpop %0", : "=r"(flags) : : "memory");
	expect_fault("clac", have ? 0 : UD, 0);
	if (have)
		RT_EXPECT(!(flags & (1u << 18)), "clac: AC set");
	RT_GROUP_OK("stac-clac");
}

extern const char insn_after_int3[], insn_after_int40[];

static void test_int(void)
{
	bp_count = 0;
	__asm__ volatile("int3\n.global insn_after_int3\ninsn_after_int3:" ::: "memory");
	RT_EXPECT(bp_count == 1 && caught_eip == (uint32_t)(uintptr_t)insn_after_int3,
	          "int3: %u traps, eip %x", bp_count, caught_eip);
	__asm__ volatile("int $0x40\n.global insn_after_int40\ninsn_after_int40:" ::: "memory");
	RT_EXPECT(bp_count == 2 && caught_eip == (uint32_t)(uintptr_t)insn_after_int40,
	          "int $0x40: %u traps, eip %x", bp_count, caught_eip);
	RT_GROUP_OK("int3-int-n");
}

static void test_fwait(void)
{
	TRY("fwait", : : : "memory");
	expect_fault("fwait", 0, 0);
	RT_GROUP_OK("fwait");
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	rt_set_handler(6, catch_fault);
	rt_set_handler(13, catch_fault);
	rt_set_handler(3, catch_trap);
	rt_set_handler(0x40, catch_trap);
	uint32_t c1[4], c7[4] = {0, 0, 0, 0}, cd1[4] = {0, 0, 0, 0}, c0[4];
	cpuid(0, 0, c0);
	cpuid(1, 0, c1);
	if (c0[0] >= 7)
		cpuid(7, 0, c7);
	if (c0[0] >= 0xd)
		cpuid(0xd, 1, cd1);
	rt_printf("insn: cpuid 1 ecx %x, 7 ebx %x, d.1 eax %x\n", c1[2], c7[1], cd1[0]);
	test_xgetbv(c1, cd1);
	test_movbe(c1);
	test_cache_lines(c7);
	test_invpcid(c7);
	test_rdpru();
	test_stac_clac(c7);
	test_int();
	test_fwait();
	rt_pass();
}
