/* state_test.c: reads of vCPU state in the middle of an exit change
 * nothing (zhv.h, zhv_vcpu_read_state), and a vCPU id can be used again
 * after its vCPU ran and was destroyed: the new vCPU cannot be told from a
 * new vCPU of a new guest (issue 6, items 2 and 3). Guest code:
 * state_guest.S (same order). */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "suites.h"

ZT_GUEST_CODE(state_rep_insb);
ZT_GUEST_CODE(state_mem_read);
ZT_GUEST_CODE(state_in);
ZT_GUEST_CODE(state_out_write);
ZT_GUEST_CODE(state_change);
ZT_GUEST_CODE(state_dump);
extern const char state_rep_insb_insn[], state_mem_read_insn[], state_in_insn[],
	state_out_insn[], state_write_insn[], state_change_in[];

/* Must match state_guest.S. */
#define STATE_INS_BUF  GUEST_MISC
#define STATE_DUMP_OUT (GUEST_MISC + 0x200)
#define STATE_RAX      0x1122334455667788ull
/* Where state_dump is copied (a free page of the test layout). */
#define STATE_DUMP_GPA 0x6000

#define MSR_TSC            0x10
#define MSR_PAT            0x277
#define MSR_MTRR_DEF_TYPE  0x2ff
#define MSR_HV_VP_RUNTIME  0x40000010
#define MSR_HV_TIME_REF    0x40000020

/* The state kinds a reader can read, with their sizes. */
static const struct {
	uint32_t kind;
	size_t size;
	const char *name;
} read_kinds[] = {
	{ZHV_VCPU_STATE, sizeof(zhv_vcpu_state_t), "STATE"},
	{ZHV_VCPU_REGS, sizeof(zhv_vcpu_regs_t), "REGS"},
	{ZHV_VCPU_SREGS, sizeof(zhv_vcpu_sregs_t), "SREGS"},
	{ZHV_VCPU_FPU, sizeof(zhv_vcpu_fpu_t), "FPU"},
	{ZHV_VCPU_MSRS, sizeof(zhv_vcpu_msrs_t), "MSRS"},
	{ZHV_VCPU_EVENTS, sizeof(zhv_vcpu_events_t), "EVENTS"},
	{ZHV_VCPU_LAPIC, sizeof(zhv_vcpu_lapic_t), "LAPIC"},
};
#define NKINDS (sizeof(read_kinds) / sizeof(read_kinds[0]))

/* Read kind (i) of read_kinds (MSRS: the whole saved list). */
static void read_kind(zhv_vcpu_t *vcpu, size_t i)
{
	void *buf = calloc(1, read_kinds[i].size);
	ZT_ASSERT(buf != NULL);
	zhv_status_t st = zhv_vcpu_read_state(vcpu, read_kinds[i].kind, buf, read_kinds[i].size);
	if (st != ZHV_OK)
		zt_diag("read_state(%s) mid-exit", read_kinds[i].name);
	ZT_ASSERT_OK(st);
	free(buf);
}

static zhv_packet_t enter_packet(zhv_vcpu_t *vcpu, uint32_t type)
{
	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	zhv_status_t st = zhv_vcpu_enter(vcpu, &p);
	if (st != ZHV_OK)
		zt_dump_vcpu(vcpu);
	ZT_ASSERT_OK(st);
	ZT_ASSERT_EQ(p.type, type);
	return p;
}

/* What a reader sees at an IN, INS or MEM read (zhv.h): nothing of the
 * instruction has happened yet. */
static void expect_not_started(zhv_vcpu_t *vcpu, uint64_t rip, const char *kind)
{
	zhv_vcpu_regs_t r = zt_read_regs(vcpu);
	if (!ZT_EXPECT_EQ(r.rip, rip) | !ZT_EXPECT_EQ(r.rax, STATE_RAX))
		zt_diag("after a read of %s in the middle of the exit", kind);
}

/* ------------------------------------------------------------------------ */
/* Item 2 (a): REP INSB of 3 bytes from a trapped port; the host answers
 * a0, a1, a2, reading state of one kind before and after each answer.
 * Memory gets a0 a1 a2, RAX is untouched, RCX and RDI count the 3 bytes.
 * Before the fix the first read let KVM finish the INS with a0 00 00 and
 * the later answers went into RAX. */
static void rep_insb_case(size_t k)
{
	struct zt_case tc;
	zt_setup_guest(&tc, state_rep_insb_start, state_rep_insb_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_IO, TRAP_PORT, 1, NULL, TRAP_KEY));
	memset(tc.mem + STATE_INS_BUF, 0x55, 8);
	uint64_t insn = ZT_GUEST_ADDR(state_rep_insb_start, state_rep_insb_insn);
	for (uint8_t i = 0; i < 3; i++) {
		zhv_packet_t p = enter_packet(tc.vcpu, ZHV_PKT_TYPE_GUEST_IO);
		ZT_EXPECT_EQ(p.guest_io.input, 1);
		ZT_EXPECT_EQ(p.guest_io.port, TRAP_PORT);
		read_kind(tc.vcpu, k);
		zhv_vcpu_io_t io = {.access_size = 1, .u8 = (uint8_t)(0xa0 + i)};
		ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_IO, &io, sizeof(io)));
		read_kind(tc.vcpu, k);
		expect_not_started(tc.vcpu, insn, read_kinds[k].name);
	}
	zt_enter_and_clean_exit(&tc);
	const uint8_t *buf = tc.mem + STATE_INS_BUF;
	if (!ZT_EXPECT_EQ(buf[0], 0xa0) | !ZT_EXPECT_EQ(buf[1], 0xa1) |
	    !ZT_EXPECT_EQ(buf[2], 0xa2) | !ZT_EXPECT_EQ(buf[3], 0x55))
		zt_diag("reads of %s between the packets", read_kinds[k].name);
	zhv_vcpu_regs_t r = zt_read_regs(tc.vcpu);
	ZT_EXPECT_EQ(r.rax, STATE_RAX);
	ZT_EXPECT_EQ(r.rcx, 0);
	ZT_EXPECT_EQ(r.rdi, STATE_INS_BUF + 3);
	zt_case_destroy(&tc);
}

static void test_read_mid_rep_insb(void)
{
	for (size_t k = 0; k < NKINDS; k++)
		rep_insb_case(k);
}

/* Item 2 (b): a load from a MEM trap; the host reads state of one kind
 * after the packet, then answers: the answer is accepted and the load gets
 * it. Before the fix the read committed 0 to RAX and the answer failed
 * with BAD_STATE. */
static void mem_read_case(size_t k)
{
	struct zt_case tc;
	zt_setup_guest(&tc, state_mem_read_start, state_mem_read_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_MEM, TRAP_ADDR, ZHV_PAGE_SIZE, NULL,
	                                TRAP_KEY));
	uint64_t insn = ZT_GUEST_ADDR(state_mem_read_start, state_mem_read_insn);
	zhv_packet_t p = enter_packet(tc.vcpu, ZHV_PKT_TYPE_GUEST_MEM);
	ZT_EXPECT_EQ(p.guest_mem.addr, TRAP_ADDR);
	ZT_EXPECT_EQ(p.guest_mem.write, 0);
	ZT_EXPECT_EQ(p.guest_mem.rip, insn);
	read_kind(tc.vcpu, k);
	expect_not_started(tc.vcpu, insn, read_kinds[k].name);
	zhv_vcpu_mem_t m = {.access_size = 8, .data = 0xfeedfacecafebeefull};
	zhv_status_t st = zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_MEM, &m, sizeof(m));
	if (st != ZHV_OK)
		zt_diag("answer after a read of %s", read_kinds[k].name);
	ZT_ASSERT_OK(st);
	read_kind(tc.vcpu, k);
	zt_enter_and_clean_exit(&tc);
	ZT_EXPECT_EQ(zt_read_regs(tc.vcpu).rax, 0xfeedfacecafebeefull);
	zt_case_destroy(&tc);
}

static void test_read_mid_mem_read(void)
{
	for (size_t k = 0; k < NKINDS; k++)
		mem_read_case(k);
}

/* Item 2 (c): a single IN; a read of one kind between the packet and the
 * answer, another after the answer. The guest's AL gets the answer, the
 * rest of RAX stays, and until the next enter a reader sees the IN not
 * yet done. Before the fix the first read finished the IN with 0. */
static void in_case(size_t k)
{
	struct zt_case tc;
	zt_setup_guest(&tc, state_in_start, state_in_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_IO, TRAP_PORT, 1, NULL, TRAP_KEY));
	uint64_t insn = ZT_GUEST_ADDR(state_in_start, state_in_insn);
	zhv_packet_t p = enter_packet(tc.vcpu, ZHV_PKT_TYPE_GUEST_IO);
	ZT_EXPECT_EQ(p.guest_io.input, 1);
	read_kind(tc.vcpu, k);
	expect_not_started(tc.vcpu, insn, read_kinds[k].name);
	zhv_vcpu_io_t io = {.access_size = 1, .u8 = 0xa5};
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_IO, &io, sizeof(io)));
	read_kind(tc.vcpu, k);
	expect_not_started(tc.vcpu, insn, read_kinds[k].name);
	zt_enter_and_clean_exit(&tc);
	ZT_EXPECT_EQ(zt_read_regs(tc.vcpu).rax, (STATE_RAX & ~0xffull) | 0xa5);
	zt_case_destroy(&tc);
}

static void test_read_mid_in(void)
{
	for (size_t k = 0; k < NKINDS; k++)
		in_case(k);
}

/* What a reader sees after an OUT and after a MEM write (zhv.h): the
 * access is done; RIP is past the OUT where KVM's emulator ran it (all of
 * kvm_pvm's ring-0 code), at it on a hardware-virtualized KVM until the
 * next enter; RIP is past a MEM write everywhere. Reads of every kind in
 * between, and the guest goes on without repeating either access. */
static void test_read_mid_out_write(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, state_out_write_start, state_out_write_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_IO, TRAP_PORT, 1, NULL, TRAP_KEY));
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_MEM, TRAP_ADDR, ZHV_PAGE_SIZE, NULL,
	                                TRAP_KEY));
	uint64_t out = ZT_GUEST_ADDR(state_out_write_start, state_out_insn);
	uint64_t store = ZT_GUEST_ADDR(state_out_write_start, state_write_insn);
	zhv_packet_t p = enter_packet(tc.vcpu, ZHV_PKT_TYPE_GUEST_IO);
	ZT_EXPECT_EQ(p.guest_io.input, 0);
	ZT_EXPECT_EQ(p.guest_io.u8, 0x42);
	for (size_t k = 0; k < NKINDS; k++)
		read_kind(tc.vcpu, k);
	uint64_t rip = zt_read_regs(tc.vcpu).rip;
	zt_diag("RIP after the OUT packet: %s", rip == out ? "at the OUT" : rip == store ?
	        "past the OUT" : "elsewhere");
	ZT_EXPECT_EQ(rip, zt_kvm_pvm() ? store : out);

	p = enter_packet(tc.vcpu, ZHV_PKT_TYPE_GUEST_MEM);
	ZT_EXPECT_EQ(p.guest_mem.write, 1);
	ZT_EXPECT_EQ(p.guest_mem.data, 0x77);
	ZT_EXPECT_EQ(p.guest_mem.rip, store);
	for (size_t k = 0; k < NKINDS; k++)
		read_kind(tc.vcpu, k);
	ZT_EXPECT_EQ(zt_read_regs(tc.vcpu).rip, store + p.guest_mem.instruction_size);
	zt_enter_and_clean_exit(&tc);
	zt_case_destroy(&tc);
}

/* ------------------------------------------------------------------------ */
/* Item 3: reuse of vCPU ids. A guest with room for (max_vcpus) vCPUs, so
 * that the round-robin id allocator hands out the freed id again. Memory,
 * page tables and the exit trap as Zircon's harness; state_change at
 * GUEST_ENTRY, state_dump at STATE_DUMP_GPA. */
static void reuse_guest(struct zt_case *tc, uint32_t max_vcpus)
{
	memset(tc, 0, sizeof(*tc));
	void *mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ZT_ASSERT(mem != MAP_FAILED);
	tc->mem = mem;
	tc->code_start = state_change_start;
	zhv_guest_config_t cfg = {.options = 0, .max_vcpus = max_vcpus};
	ZT_ASSERT_OK(zhv_guest_create(&cfg, &tc->guest));
	ZT_ASSERT_OK(zhv_guest_map(tc->guest, 0, mem, GUEST_MEM_SIZE, ZHV_MAP_RWX));
	ZT_ASSERT_OK(zhv_guest_set_trap(tc->guest, ZHV_TRAP_MEM, EXIT_TEST_ADDR, ZHV_PAGE_SIZE,
	                                NULL, 0));
	ZT_ASSERT_OK(zhv_guest_set_trap(tc->guest, ZHV_TRAP_IO, TRAP_PORT, 1, NULL, TRAP_KEY));
	uint64_t *pml4 = (uint64_t *)(tc->mem + GUEST_PML4);
	uint64_t *pdpt = (uint64_t *)(tc->mem + GUEST_PDPT);
	uint64_t *pd = (uint64_t *)(tc->mem + GUEST_PD);
	pml4[0] = GUEST_PDPT | 0x7;
	pdpt[0] = GUEST_PD | 0x7;
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = (i << 21) | 0x87; /* P RW U PS */
	memcpy(tc->mem + GUEST_ENTRY, state_change_start,
	       (size_t)(state_change_end - state_change_start));
	memcpy(tc->mem + STATE_DUMP_GPA, state_dump_start,
	       (size_t)(state_dump_end - state_dump_start));
}

/* Every state kind of one vCPU, read on its thread. */
struct snap {
	zhv_vcpu_state_t state;
	zhv_vcpu_regs_t regs;
	zhv_vcpu_sregs_t sregs;
	zhv_vcpu_fpu_t fpu;
	zhv_vcpu_msrs_t msrs;  /* KVM's saved-MSR list */
	zhv_vcpu_msrs_t extra; /* PAT and the MTRRs, which that list lacks */
	zhv_vcpu_events_t events;
	zhv_vcpu_lapic_t lapic;
};

static const uint32_t extra_msrs[] = {
	MSR_PAT, MSR_MTRR_DEF_TYPE, 0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b,
	0x26c, 0x26d, 0x26e, 0x26f, 0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206,
	0x207, 0x208, 0x209, 0x20a, 0x20b, 0x20c, 0x20d, 0x20e, 0x20f,
};
#define NEXTRA (sizeof(extra_msrs) / sizeof(extra_msrs[0]))

static struct snap *snap_take(zhv_vcpu_t *vcpu)
{
	struct snap *s = calloc(1, sizeof(*s));
	ZT_ASSERT(s != NULL);
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_STATE, &s->state, sizeof(s->state)));
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_REGS, &s->regs, sizeof(s->regs)));
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_SREGS, &s->sregs, sizeof(s->sregs)));
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_FPU, &s->fpu, sizeof(s->fpu)));
	s->msrs.count = 0;
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_MSRS, &s->msrs, sizeof(s->msrs)));
	s->extra.count = NEXTRA;
	for (size_t i = 0; i < NEXTRA; i++)
		s->extra.entries[i].index = extra_msrs[i];
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_MSRS, &s->extra, sizeof(s->extra)));
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_EVENTS, &s->events, sizeof(s->events)));
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_LAPIC, &s->lapic, sizeof(s->lapic)));
	return s;
}

static uint64_t msr_of(const zhv_vcpu_msrs_t *m, uint32_t index)
{
	for (uint32_t i = 0; i < m->count; i++)
		if (m->entries[i].index == index)
			return m->entries[i].value;
	return UINT64_MAX;
}

/* Byte-for-byte, reporting differing 8-byte words by offset. */
static bool expect_same(const char *what, const void *a, const void *b, size_t len)
{
	const uint8_t *x = a, *y = b;
	unsigned differ = 0;
	for (size_t off = 0; off < len; off += 8) {
		uint64_t u = 0, v = 0;
		size_t n = len - off < 8 ? len - off : 8;
		memcpy(&u, x + off, n);
		memcpy(&v, y + off, n);
		if (u != v && differ++ < 8)
			zt_diag("%s: offset %zu: reused %#" PRIx64 ", new %#" PRIx64, what, off, u, v);
	}
	if (differ) {
		zt_diag("%s: %u word(s) differ", what, differ);
		zt_fail_later();
	}
	return differ == 0;
}

/* A reused vCPU against a new one of a new guest, every state kind. Only
 * MSRs that count time are left out, as they cannot be equal: the TSC
 * (each VM has its own TSC origin on a hardware-virtualized KVM; checked
 * against the same VM's TSC instead, see tsc_continuous), Hyper-V's
 * reference counter (time since the VM was created) and its VP runtime
 * (KVM reads it from the CPU time of the thread that asks). The APIC
 * timer's current count is compared too: neither vCPU may have a timer
 * running. */
static bool expect_same_snap(const struct snap *r, const struct snap *n)
{
	bool same = expect_same("STATE", &r->state, &n->state, sizeof(r->state));
	same &= expect_same("REGS", &r->regs, &n->regs, sizeof(r->regs));
	same &= expect_same("SREGS", &r->sregs, &n->sregs, sizeof(r->sregs));
	same &= ZT_EXPECT_EQ(r->fpu.xcr0, n->fpu.xcr0);
	same &= expect_same("FPU xsave", r->fpu.xsave, n->fpu.xsave, sizeof(r->fpu.xsave));
	same &= expect_same("EVENTS", &r->events, &n->events, sizeof(r->events));
	same &= expect_same("LAPIC", &r->lapic, &n->lapic, sizeof(r->lapic));
	ZT_ASSERT_EQ(r->msrs.count, n->msrs.count);
	for (uint32_t i = 0; i < r->msrs.count; i++) {
		const zhv_msr_entry_t *a = &r->msrs.entries[i], *b = &n->msrs.entries[i];
		ZT_ASSERT_EQ(a->index, b->index);
		if (a->index == MSR_TSC || a->index == MSR_HV_TIME_REF ||
		    a->index == MSR_HV_VP_RUNTIME)
			continue;
		if (a->value != b->value) {
			zt_diag("MSR %#x: reused %#" PRIx64 ", new %#" PRIx64, a->index, a->value,
			        b->value);
			zt_fail_later();
			same = false;
		}
	}
	for (uint32_t i = 0; i < NEXTRA; i++) {
		if (r->extra.entries[i].value != n->extra.entries[i].value) {
			zt_diag("MSR %#x: reused %#" PRIx64 ", new %#" PRIx64, extra_msrs[i],
			        r->extra.entries[i].value, n->extra.entries[i].value);
			zt_fail_later();
			same = false;
		}
	}
	return same;
}

static uint64_t read_tsc(zhv_vcpu_t *vcpu)
{
	zhv_vcpu_msrs_t *m = calloc(1, sizeof(*m));
	ZT_ASSERT(m != NULL);
	m->count = 1;
	m->entries[0].index = MSR_TSC;
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_MSRS, m, sizeof(*m)));
	uint64_t tsc = m->entries[0].value;
	free(m);
	return tsc;
}

/* The reused vCPU's TSC is what a new vCPU of the same VM gets: the VM's,
 * not the value the KVM vCPU had when it was new. It has not gone back
 * (but for 10^6 cycles: KVM recomputes the offset from the clock when the
 * host TSC is unstable), and it has not run ahead by more than the time
 * that passed (at up to 10 GHz, plus a second of slack). */
static void tsc_continuous(uint64_t before, zhv_time_t t_before, uint64_t after,
                           zhv_time_t t_after)
{
	uint64_t elapsed_ns = (uint64_t)(t_after - t_before);
	ZT_EXPECT_GE(after + 1000000, before);
	ZT_EXPECT_LE(after - before, (elapsed_ns + 1000000000ull) * 10);
}

/* State the host changes on top of the guest's (before the guest runs):
 * MSRs ring-0 code on kvm_pvm cannot cheaply write, the FPU/SSE state
 * (kvm_pvm's emulator has no SSE arithmetic), and general registers. */
static const zhv_msr_entry_t host_msrs[] = {
	{0xc0000081, 0, 0x0023001000000000ull}, /* STAR */
	{0xc0000083, 0, 0xffffffff81000000ull}, /* CSTAR */
	{0xc0000084, 0, 0x4700},                /* FMASK */
	{0x175, 0, 0x9000},                     /* SYSENTER_ESP */
	{0x176, 0, 0xffffffff81234567ull},      /* SYSENTER_EIP */
	{MSR_MTRR_DEF_TYPE, 0, 0xc06},          /* enabled, fixed enabled, WB */
	{0x200, 0, 0x6},                        /* PHYSBASE0: WB at 0 */
	{0x201, 0, 0xffff00800ull},             /* PHYSMASK0: 1 MiB, valid */
	{0x250, 0, 0x0606060606060606ull},      /* FIX64K_00000 */
	{0xc0000103, 0, 7},                     /* TSC_AUX */
};

static void host_changes(zhv_vcpu_t *vcpu)
{
	zhv_vcpu_msrs_t *m = calloc(1, sizeof(*m));
	ZT_ASSERT(m != NULL);
	for (size_t i = 0; i < sizeof(host_msrs) / sizeof(host_msrs[0]); i++) {
		m->count = 1;
		m->entries[0] = host_msrs[i];
		zhv_status_t st = zhv_vcpu_write_state(vcpu, ZHV_VCPU_MSRS, m, sizeof(*m));
		if (st == ZHV_ERR_NOT_SUPPORTED && host_msrs[i].index == 0xc0000103)
			zt_diag("KVM has no TSC_AUX for this guest: not changed");
		else
			ZT_ASSERT_OK(st);
	}
	free(m);

	zhv_vcpu_fpu_t *f = calloc(1, sizeof(*f));
	ZT_ASSERT(f != NULL);
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_FPU, f, sizeof(*f)));
	uint16_t fcw = 0x27f;
	uint32_t mxcsr = 0x9f80; /* FZ */
	memcpy(f->xsave + 0, &fcw, sizeof(fcw));
	memcpy(f->xsave + 24, &mxcsr, sizeof(mxcsr));
	for (int i = 0; i < 16 * 16; i++)
		f->xsave[160 + i] = (uint8_t)(i * 7 + 1); /* XMM0-15 */
	f->xsave[512] |= 0x3; /* XSTATE_BV: x87 and SSE state present */
	ZT_ASSERT_OK(zhv_vcpu_write_state(vcpu, ZHV_VCPU_FPU, f, sizeof(*f)));
	free(f);

	zhv_vcpu_regs_t r = zt_read_regs(vcpu);
	r.r8 = 0x8888;
	r.r10 = 0xaaaa;
	r.r11 = 0xbbbb;
	r.r12 = 0xcccc;
	r.r13 = 0xdddd;
	r.r14 = 0xeeee;
	r.r15 = 0xffff;
	r.rflags |= 1u << 10; /* DF */
	ZT_ASSERT_OK(zhv_vcpu_write_state(vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
}

/* Run state_change on (vcpu) (already at its entry, APIC in x2APIC mode)
 * to its IN, leave events pending (NMI, an exception in libzhv's tracker,
 * an interrupt in the APIC's IRR), check that the state did change, and
 * return the TSC then. The IN stays unanswered. */
static uint64_t dirty_to_mid_exit(zhv_vcpu_t *vcpu, zhv_time_t *when, bool pause)
{
	host_changes(vcpu);
	zhv_packet_t p = enter_packet(vcpu, ZHV_PKT_TYPE_GUEST_IO);
	ZT_ASSERT_EQ(p.guest_io.input, 1);
	ZT_ASSERT_OK(zhv_vcpu_interrupt(vcpu, NMI_VECTOR));
	ZT_ASSERT_OK(zhv_vcpu_interrupt(vcpu, GP_FAULT_VECTOR));
	ZT_ASSERT_OK(zhv_vcpu_interrupt(vcpu, INTERRUPT_VECTOR + 1));
	struct snap *s = snap_take(vcpu);
	ZT_EXPECT_EQ(s->regs.rip, ZT_GUEST_ADDR(state_change_start, state_change_in));
	ZT_EXPECT_EQ(s->sregs.cs.selector, CODE_64_SELECTOR);
	ZT_EXPECT_EQ(s->sregs.tr.selector, 0x48);
	ZT_EXPECT_EQ(s->sregs.cr8, 5);
	ZT_EXPECT_EQ(msr_of(&s->extra, MSR_PAT), 0x0007040600070106ull);
	ZT_EXPECT_EQ(msr_of(&s->extra, MSR_MTRR_DEF_TYPE), 0xc06);
	ZT_EXPECT_EQ(s->events.nmi_pending, 1);
	ZT_EXPECT_EQ(s->events.tracker_pending, 1u << GP_FAULT_VECTOR);
	uint32_t mxcsr;
	memcpy(&mxcsr, s->fpu.xsave + 24, sizeof(mxcsr));
	ZT_EXPECT_EQ(mxcsr, 0x9f80);
	free(s);
	/* Let the TSC move well past its value at creation: a reuse that
	 * wrote that value back would move it back by at least this. */
	if (pause)
		zt_sleep_ms(20);
	*when = zhv_clock_monotonic();
	return read_tsc(vcpu);
}

/* DR0-3, DR6, DR7 as the guest reads them (zhv.h has no debug-register
 * state kind): run state_dump on (vcpu), created at STATE_DUMP_GPA. */
static void dump_debug_regs(struct zt_case *tc, zhv_vcpu_t *vcpu, uint64_t out[6])
{
	memset(tc->mem + STATE_DUMP_OUT, 0xee, 48);
	zhv_packet_t p = enter_packet(vcpu, ZHV_PKT_TYPE_GUEST_MEM);
	ZT_ASSERT_EQ(p.guest_mem.addr, EXIT_TEST_ADDR);
	/* state_dump's own exit: nothing of a predecessor's unfinished IN
	 * (KVM would finish it at this first entry and resume after it). */
	ZT_EXPECT_EQ(p.guest_mem.rip,
	             STATE_DUMP_GPA + (uint64_t)(state_dump_end - state_dump_start) - EXIT_INSN_SIZE);
	for (int i = 0; i < 6; i++)
		out[i] = zt_guest_load64(tc, STATE_DUMP_OUT + 8 * (uint64_t)i);
}

/* A vCPU created on a thread of its own: created with (options, entry),
 * read (snap), with (dump) its debug registers dumped by guest code, then
 * destroyed. */
struct fresh_ctx {
	struct zt_case *tc;
	uint32_t options;
	uint64_t entry;
	bool dump;
	uint32_t id;
	struct snap *snap;
	uint64_t dr[6];
};

static void *fresh_thread(void *arg)
{
	struct fresh_ctx *c = arg;
	zhv_vcpu_t *vcpu;
	ZT_ASSERT_OK(zhv_vcpu_create(c->tc->guest, c->options, c->entry, &vcpu));
	zhv_vcpu_info_t info;
	ZT_ASSERT_OK(zhv_vcpu_get_info(vcpu, &info));
	c->id = info.id;
	c->snap = snap_take(vcpu);
	if (c->dump)
		dump_debug_regs(c->tc, vcpu, c->dr);
	zhv_vcpu_destroy(vcpu);
	return NULL;
}

static void expect_same_debug_regs(const uint64_t r[6], const uint64_t n[6])
{
	static const char *const names[] = {"DR0", "DR1", "DR2", "DR3", "DR6", "DR7"};
	for (int i = 0; i < 6; i++) {
		if (r[i] != n[i]) {
			zt_diag("%s: reused %#" PRIx64 ", new %#" PRIx64, names[i], r[i], n[i]);
			zt_fail_later();
		}
	}
}

/* The BSP (id 1, in a guest of one vCPU): it changes its state, is
 * destroyed in the middle of an IN, and id 1 is created again on the same
 * thread. Every state kind equals that of the BSP of a new guest created
 * the same way (on another thread: this one has its vCPU); the debug
 * registers too, as guest code reads them; the TSC is the VM's. Before the
 * fix the second create failed with IO. */
static void test_reuse_bsp(void)
{
	struct zt_case a, b;
	reuse_guest(&a, 1);
	ZT_ASSERT_OK(zhv_vcpu_create(a.guest, 0, GUEST_ENTRY, &a.vcpu));
	zhv_time_t t0;
	uint64_t tsc0 = dirty_to_mid_exit(a.vcpu, &t0, true);
	zhv_vcpu_destroy(a.vcpu);
	a.vcpu = NULL;

	zhv_vcpu_t *reused = NULL;
	ZT_ASSERT_OK(zhv_vcpu_create(a.guest, 0, STATE_DUMP_GPA, &reused));
	a.vcpu = reused;
	zhv_vcpu_info_t info;
	ZT_ASSERT_OK(zhv_vcpu_get_info(reused, &info));
	ZT_ASSERT_EQ(info.id, 1);
	struct snap *r = snap_take(reused);
	tsc_continuous(tsc0, t0, read_tsc(reused), zhv_clock_monotonic());

	reuse_guest(&b, 1);
	struct fresh_ctx fc = {.tc = &b, .options = 0, .entry = STATE_DUMP_GPA, .dump = true};
	zt_thread_join(zt_thread_start(fresh_thread, &fc));
	ZT_ASSERT_EQ(fc.id, 1);
	expect_same_snap(r, fc.snap);

	uint64_t dr[6];
	dump_debug_regs(&a, reused, dr);
	expect_same_debug_regs(dr, fc.dr);
	free(r);
	free(fc.snap);
	zt_case_destroy(&a);
	zt_case_destroy(&b);
}

/* An AP (id 2, in a guest of two vCPUs), created with (options): started in
 * 64-bit mode with its APIC in x2APIC mode (and made runnable, if it waits
 * for SIPI), it changes its state and is destroyed in the middle of an IN,
 * on its own thread. */
struct ap_ctx {
	struct zt_case *tc;
	const zhv_vcpu_sregs_t *tmpl;
	uint32_t options;
	uint64_t tsc;
	zhv_time_t when;
};

static void *dirty_ap_thread(void *arg)
{
	struct ap_ctx *c = arg;
	zhv_vcpu_t *vcpu;
	ZT_ASSERT_OK(zhv_vcpu_create(c->tc->guest, c->options, GUEST_SIPI_PAGE, &vcpu));
	zhv_vcpu_info_t info;
	ZT_ASSERT_OK(zhv_vcpu_get_info(vcpu, &info));
	ZT_ASSERT_EQ(info.id, 2);
	zt_vcpu_set_long_mode(vcpu, c->tmpl, GUEST_ENTRY, GUEST_AP_STACK_TOP(1));
	zhv_vcpu_sregs_t s = zt_read_sregs(vcpu);
	s.apic_base |= 0xc00; /* enabled, x2APIC */
	ZT_ASSERT_OK(zhv_vcpu_write_state(vcpu, ZHV_VCPU_SREGS, &s, sizeof(s)));
	zhv_vcpu_events_t ev;
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_EVENTS, &ev, sizeof(ev)));
	ev.mp_state = ZHV_MP_STATE_RUNNABLE;
	ZT_ASSERT_OK(zhv_vcpu_write_state(vcpu, ZHV_VCPU_EVENTS, &ev, sizeof(ev)));
	c->tsc = dirty_to_mid_exit(vcpu, &c->when, true);
	zhv_vcpu_destroy(vcpu);
	return NULL;
}

/* id 2 again, on yet another thread, against id 2 of a new guest. */
static void reuse_ap_case(uint32_t options)
{
	struct zt_case a, b;
	reuse_guest(&a, 2);
	ZT_ASSERT_OK(zhv_vcpu_create(a.guest, 0, GUEST_ENTRY, &a.vcpu));
	zhv_vcpu_sregs_t tmpl = zt_read_sregs(a.vcpu);
	struct ap_ctx ac = {.tc = &a, .tmpl = &tmpl, .options = options};
	zt_thread_join(zt_thread_start(dirty_ap_thread, &ac));

	struct fresh_ctx rc = {.tc = &a, .options = options, .entry = GUEST_SIPI_PAGE};
	zt_thread_join(zt_thread_start(fresh_thread, &rc));
	ZT_ASSERT_EQ(rc.id, 2);
	/* The TSC, read right after creation by fresh_thread, is the VM's. */
	uint64_t tsc1 = msr_of(&rc.snap->msrs, MSR_TSC);
	tsc_continuous(ac.tsc, ac.when, tsc1, zhv_clock_monotonic());
	/* This thread's vCPU goes, so that it can create the new guest's BSP
	 * (id 2 was taken again before id 1 was free). */
	zhv_vcpu_destroy(a.vcpu);
	a.vcpu = NULL;

	reuse_guest(&b, 2);
	ZT_ASSERT_OK(zhv_vcpu_create(b.guest, 0, GUEST_ENTRY, &b.vcpu));
	struct fresh_ctx nc = {.tc = &b, .options = options, .entry = GUEST_SIPI_PAGE};
	zt_thread_join(zt_thread_start(fresh_thread, &nc));
	ZT_ASSERT_EQ(nc.id, 2);
	if (options & ZHV_VCPU_OPT_WAIT_SIPI)
		ZT_EXPECT_EQ(rc.snap->events.mp_state, ZHV_MP_STATE_UNINITIALIZED);
	expect_same_snap(rc.snap, nc.snap);
	free(rc.snap);
	free(nc.snap);
	zt_case_destroy(&a);
	zt_case_destroy(&b);
}

static void test_reuse_ap(void)
{
	reuse_ap_case(0);
	reuse_ap_case(ZHV_VCPU_OPT_WAIT_SIPI);
}

/* Open file descriptors of this process. */
static unsigned count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	ZT_ASSERT(d != NULL);
	unsigned n = 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* Id 1 created, changed (as in test_reuse_bsp), and destroyed in the
 * middle of an IN, 100 times: every create succeeds with id 1, every vCPU
 * starts in the state of the first (a new KVM vCPU), no descriptor
 * leaks. */
static void test_reuse_100(void)
{
	struct zt_case tc;
	reuse_guest(&tc, 1);
	unsigned fds = 0;
	struct snap *first = NULL;
	for (int i = 0; i < 100; i++) {
		zhv_vcpu_t *vcpu;
		zhv_status_t st = zhv_vcpu_create(tc.guest, 0, GUEST_ENTRY, &vcpu);
		if (st != ZHV_OK)
			zt_diag("create number %d", i + 1);
		ZT_ASSERT_OK(st);
		zhv_vcpu_info_t info;
		ZT_ASSERT_OK(zhv_vcpu_get_info(vcpu, &info));
		ZT_ASSERT_EQ(info.id, 1);
		struct snap *s = snap_take(vcpu);
		if (!first) {
			first = s;
		} else {
			bool same = expect_same_snap(s, first);
			free(s);
			if (!same) {
				zt_diag("create number %d", i + 1);
				zt_fail_now();
			}
		}
		/* Fresh code: its GDT's TSS descriptor is busy after a run
		 * (LTR of a busy TSS faults). */
		memcpy(tc.mem + GUEST_ENTRY, state_change_start,
		       (size_t)(state_change_end - state_change_start));
		zhv_time_t when;
		(void)dirty_to_mid_exit(vcpu, &when, false);
		zhv_vcpu_destroy(vcpu);
		if (i == 0)
			fds = count_fds();
	}
	ZT_EXPECT_EQ(count_fds(), fds);
	free(first);
	zt_case_destroy(&tc);
}

const struct zt_test zt_state_tests[] = {
	{"state_read_mid_rep_insb", test_read_mid_rep_insb},
	{"state_read_mid_mem_read", test_read_mid_mem_read},
	{"state_read_mid_in", test_read_mid_in},
	{"state_read_mid_out_write", test_read_mid_out_write},
	{"state_reuse_bsp", test_reuse_bsp},
	{"state_reuse_ap", test_reuse_ap},
	{"state_reuse_100", test_reuse_100},
	{NULL, NULL},
};
