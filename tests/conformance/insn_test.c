/* insn_test.c: libzhv's fallback emulator (lib/x86/emulate.c) on a real
 * vCPU, on any host. KVMs that run guest CPL0 code in their instruction
 * emulator (kvm_pvm) stop on XGETBV, MOVBE, CLWB, CLFLUSHOPT, INVPCID,
 * RDPRU, INT3, STAC...; libzhv finishes them. A hardware-virtualized KVM
 * runs them itself and never asks, so this test drives the emulator
 * directly: the guest (insn_guest.S) stops with an OUT right before each
 * instruction, the test runs zhv__emulate_at_rip on the vCPU, the guest
 * continues after the instruction and records what it saw: registers,
 * memory, and the exception it took with its error code and CR2. Expected
 * outcomes follow the guest's own CPUID (a feature it lacks is #UD). */
#include <inttypes.h>
#include <string.h>

#include "suites.h"
#include "zhv_test_hooks.h"

ZT_GUEST_CODE(insn_emu);
extern const char insn_emu_i6[], insn_emu_i7[], insn_emu_i10[], insn_emu_a14[];

#define NSTEPS 16
#define INSN_DATA 0x6000
#define INSN_UNMAPPED 0x40000000ull

struct rec {
	uint64_t rax, rdx, rflags, vec1, ec, cr2, rip, extra;
};

#define NONE 0
#define UD 7
#define GP 14
#define PF 15
#define BP 4

static bool expect_event(unsigned step, const struct rec *r, uint64_t vec1, uint64_t ec)
{
	bool ok = r->vec1 == vec1 && (vec1 == NONE || vec1 == UD || vec1 == BP || r->ec == ec);
	if (!ok) {
		zt_diag("step %u: want %s%" PRIu64 " (error code %#" PRIx64 "), the guest saw %s%" PRIu64
		        " (error code %#" PRIx64 ")",
		        step, vec1 ? "vector " : "no exception ", vec1 ? vec1 - 1 : 0, ec,
		        r->vec1 ? "vector " : "no exception ", r->vec1 ? r->vec1 - 1 : 0, r->ec);
		zt_fail_later();
	}
	return ok && vec1 == NONE;
}

static void test_emulate_at_rip(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, insn_emu_start, insn_emu_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_IO, TRAP_PORT, 1, NULL, TRAP_KEY));
	unsigned steps = 0;
	for (;;) {
		zhv_packet_t p;
		memset(&p, 0, sizeof(p));
		zhv_status_t st = zhv_vcpu_enter(tc.vcpu, &p);
		if (st != ZHV_OK)
			zt_dump_vcpu(tc.vcpu);
		ZT_ASSERT_OK(st);
		if (p.type == ZHV_PKT_TYPE_GUEST_MEM && p.guest_mem.addr == EXIT_TEST_ADDR)
			break;
		ZT_ASSERT_EQ(p.type, ZHV_PKT_TYPE_GUEST_IO);
		ZT_ASSERT_EQ(p.guest_io.port, TRAP_PORT);
		uint32_t ecx1;
		memcpy(&ecx1, tc.mem + GUEST_FLAGS, 4); /* the guest's CPUID.1:ECX */
		if (steps == 0 && (ecx1 & (1u << 26))) {
			/* XGETBV must read the vCPU's XCR0: give it one that
			 * is not the reset value (x87 | SSE). */
			static zhv_vcpu_fpu_t fpu;
			ZT_ASSERT_OK(zhv_vcpu_read_state(tc.vcpu, ZHV_VCPU_FPU, &fpu, sizeof(fpu)));
			{
				fpu.xcr0 = 3;
				ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_FPU, &fpu,
				                                  sizeof(fpu)));
			}
		}
		char why[128] = "";
		st = zhv__emulate_at_rip(tc.vcpu, why, sizeof(why));
		if (st != ZHV_OK)
			zt_diag("step %u: libzhv's emulator refused the instruction: %s", steps, why);
		ZT_ASSERT_OK(st);
		ZT_ASSERT_LE(++steps, NSTEPS);
	}
	ZT_EXPECT_EQ(steps, NSTEPS);

	struct rec r[NSTEPS];
	memcpy(r, tc.mem + GUEST_MISC, sizeof(r));
	uint32_t c1_ecx, c7_ebx, cd1_eax, cx8_ebx;
	memcpy(&c1_ecx, tc.mem + GUEST_FLAGS + 0, 4);
	memcpy(&c7_ebx, tc.mem + GUEST_FLAGS + 4, 4);
	memcpy(&cd1_eax, tc.mem + GUEST_FLAGS + 8, 4);
	memcpy(&cx8_ebx, tc.mem + GUEST_FLAGS + 12, 4);
	bool xsave = c1_ecx & (1u << 26), movbe = c1_ecx & (1u << 22);
	bool xinuse = xsave && (cd1_eax & (1u << 2));
	bool clflushopt = c7_ebx & (1u << 23), clwb = c7_ebx & (1u << 24);
	bool invpcid = c7_ebx & (1u << 10), smap = c7_ebx & (1u << 20);
	bool rdpru = cx8_ebx & (1u << 4);
	zt_diag("guest CPUID: xsave %d xinuse %d movbe %d clflushopt %d clwb %d invpcid %d smap %d "
	        "rdpru %d",
	        xsave, xinuse, movbe, clflushopt, clwb, invpcid, smap, rdpru);

	/* XGETBV: XCR0 as the host set it (3); ECX=2 #GP(0); ECX=1
	 * XINUSE & XCR0 where supported, else #GP(0). Without XSAVE the
	 * guest could not set CR4.OSXSAVE: #UD. */
	if (expect_event(0, &r[0], xsave ? NONE : UD, 0)) {
		ZT_EXPECT_EQ(r[0].rax, 3);
		ZT_EXPECT_EQ(r[0].rdx, 0);
	}
	expect_event(1, &r[1], xsave ? GP : UD, 0);
	if (expect_event(2, &r[2], !xsave ? UD : xinuse ? NONE : GP, 0)) {
		ZT_EXPECT_EQ(r[2].rax & ~3ull, 0);
		ZT_EXPECT_EQ(r[2].rdx, 0);
	}
	/* MOVBE: 64-bit load, 32-bit store, 16-bit load (upper bits kept),
	 * #PF (not present, read, supervisor) with CR2, #GP(0) for a
	 * non-canonical address, RIP on the instruction. */
	if (expect_event(3, &r[3], movbe ? NONE : UD, 0))
		ZT_EXPECT_EQ(r[3].rax, 0x8877665544332211ull);
	if (expect_event(4, &r[4], movbe ? NONE : UD, 0))
		ZT_EXPECT_EQ(zt_guest_load32(&tc, INSN_DATA + 8), 0xddccbbaa);
	if (expect_event(5, &r[5], movbe ? NONE : UD, 0))
		ZT_EXPECT_EQ(r[5].rdx, 0xffffffffffff8877ull);
	expect_event(6, &r[6], movbe ? PF : UD, 0);
	if (movbe) {
		ZT_EXPECT_EQ(r[6].cr2, INSN_UNMAPPED);
		ZT_EXPECT_EQ(r[6].rip, ZT_GUEST_ADDR(insn_emu_start, insn_emu_i6));
	}
	expect_event(7, &r[7], movbe ? GP : UD, 0);
	ZT_EXPECT_EQ(r[7].rip, ZT_GUEST_ADDR(insn_emu_start, insn_emu_i7));
	/* CLFLUSHOPT, CLWB: no effect on a mapped line; #PF as a load. */
	expect_event(8, &r[8], clflushopt ? NONE : UD, 0);
	expect_event(9, &r[9], clwb ? NONE : UD, 0);
	expect_event(10, &r[10], clwb ? PF : UD, 0);
	if (clwb) {
		ZT_EXPECT_EQ(r[10].cr2, INSN_UNMAPPED);
		ZT_EXPECT_EQ(r[10].rip, ZT_GUEST_ADDR(insn_emu_start, insn_emu_i10));
	}
	/* RDPRU ECX=0 (MPERF): CF set. */
	if (expect_event(11, &r[11], rdpru ? NONE : UD, 0))
		ZT_EXPECT_EQ(r[11].rflags & 1, 1);
	/* INVPCID type 2 invalidates the stale translation; type 4: #GP(0). */
	if (expect_event(12, &r[12], invpcid ? NONE : UD, 0))
		ZT_EXPECT_EQ(r[12].extra, 0x2222);
	expect_event(13, &r[13], invpcid ? GP : UD, 0);
	/* INT3: #BP delivered through the IDT, RIP after the instruction. */
	expect_event(14, &r[14], BP, 0);
	ZT_EXPECT_EQ(r[14].rip, ZT_GUEST_ADDR(insn_emu_start, insn_emu_a14));
	/* STAC: AC set. */
	if (expect_event(15, &r[15], smap ? NONE : UD, 0))
		ZT_EXPECT_EQ((r[15].rflags >> 18) & 1, 1);

	zhv_guest_stats_t gs;
	ZT_ASSERT_OK(zhv_guest_get_stats(tc.guest, &gs));
	ZT_EXPECT_GE(gs.emulated_by_libzhv, NSTEPS);
	zt_case_destroy(&tc);
}

const struct zt_test zt_insn_tests[] = {
	{"insn_emulate_at_rip", test_emulate_at_rip},
	{NULL, NULL},
};
