/* beyond_test.c: our own tests beyond Zircon's suite: more than 63 vCPUs,
 * the local APIC timer, INIT/SIPI start-up of an AP, #GP for unknown MSRs,
 * kick semantics, answers to IN and MEM reads, the enter error paths, and
 * EOI packets for level-triggered interrupt routes. Guest code: beyond_guest.S (same order). */
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"

ZT_GUEST_CODE(vcpu_enter); /* common_guest.S */
ZT_GUEST_CODE(many_vcpus);
ZT_GUEST_CODE(apic_timer);
ZT_GUEST_CODE(wait_sipi_bsp);
ZT_GUEST_CODE(wait_sipi_ap);
ZT_GUEST_CODE(msr_unknown_gp);
ZT_GUEST_CODE(io_in);
ZT_GUEST_CODE(mem_read);
ZT_GUEST_CODE(unhandled_access);
ZT_GUEST_CODE(read_only_ram);
ZT_GUEST_CODE(bell_read);
ZT_GUEST_CODE(string_io);
ZT_GUEST_CODE(triple_fault);
ZT_GUEST_CODE(level_eoi);
extern const char wait_sipi_ap_after_out[];
extern const char msr_unknown_gp_rdmsr[], msr_unknown_gp_wrmsr[], msr_unknown_gp_exit[];
extern const char unhandled_access_mem[], unhandled_access_load[], unhandled_access_io[],
	unhandled_access_in[], unhandled_access_exit[];
extern const char string_io_outsb[];
extern const char triple_fault_exit[];

/* Must match beyond_guest.S. */
#define TIMER_DEADLINE (GUEST_MISC + 0)
#define TIMER_AT_SPIN  (GUEST_MISC + 8)
#define TIMER_LAST_TSC (GUEST_MISC + 16)
#define UNBACKED_GPA   0x2000000
#define READ_ONLY_GPA  0x800000
#define LEVEL_VECTOR   0x30

/* ------------------------------------------------------------------------ */
/* More vCPUs than Zircon's 63: 100 vCPUs alive at once in one guest, each
 * on its own thread. The 99 APs are put into 64-bit mode at GUEST_ENTRY
 * with write_state; every vCPU counts itself under its x2APIC ID and
 * reports that ID with an OUT. All ids 0..99 must show up exactly once. */
#define MANY 100

struct many_ctx {
	struct zt_case *tc;
	const zhv_vcpu_sregs_t *tmpl;
	pthread_barrier_t *all_created;
	zhv_status_t create_status, enter_status;
	uint32_t apic_id;
	zhv_packet_t packet;
};

static void *many_vcpus_thread(void *arg)
{
	struct many_ctx *c = arg;
	zhv_vcpu_t *vcpu = NULL;
	c->create_status = zhv_vcpu_create(c->tc->guest, 0, 0, &vcpu);
	if (c->create_status == ZHV_OK) {
		zhv_vcpu_info_t info;
		ZT_ASSERT_OK(zhv_vcpu_get_info(vcpu, &info));
		c->apic_id = info.apic_id;
		zt_vcpu_set_long_mode(vcpu, c->tmpl, GUEST_ENTRY, GUEST_AP_STACK_TOP(info.apic_id));
	}
	/* Everybody waits here, so that all vCPUs exist at the same time. */
	pthread_barrier_wait(c->all_created);
	if (vcpu == NULL)
		return NULL;
	c->enter_status = zhv_vcpu_enter(vcpu, &c->packet);
	zhv_vcpu_destroy(vcpu);
	return NULL;
}

static void test_many_vcpus(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, many_vcpus_start, many_vcpus_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_IO, TRAP_PORT, 1, NULL, TRAP_KEY));
	zhv_vcpu_sregs_t tmpl = zt_read_sregs(tc.vcpu);

	static struct many_ctx ctx[MANY];
	static zt_thread_t *threads[MANY];
	pthread_barrier_t barrier;
	ZT_ASSERT_EQ(pthread_barrier_init(&barrier, NULL, MANY), 0);
	for (unsigned i = 1; i < MANY; i++) {
		ctx[i].tc = &tc;
		ctx[i].tmpl = &tmpl;
		ctx[i].all_created = &barrier;
		threads[i] = zt_thread_start(many_vcpus_thread, &ctx[i]);
	}
	pthread_barrier_wait(&barrier);

	/* The BSP: its OUT, then the exit. */
	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	ZT_ASSERT_OK(zhv_vcpu_enter(tc.vcpu, &p));
	ZT_EXPECT_EQ(p.type, ZHV_PKT_TYPE_GUEST_IO);
	ZT_EXPECT_EQ(p.guest_io.u8, 0);
	zt_enter_and_clean_exit(&tc);

	bool seen[MANY] = {true};
	for (unsigned i = 1; i < MANY; i++) {
		zt_thread_join(threads[i]);
		struct many_ctx *c = &ctx[i];
		if (!ZT_EXPECT_OK(c->create_status) || !ZT_EXPECT_OK(c->enter_status))
			continue;
		ZT_EXPECT_EQ(c->packet.type, ZHV_PKT_TYPE_GUEST_IO);
		ZT_EXPECT_EQ(c->packet.guest_io.port, TRAP_PORT);
		ZT_EXPECT_EQ(c->packet.guest_io.u8, c->apic_id & 0xFF);
		if (ZT_EXPECT(c->apic_id < MANY) && ZT_EXPECT(!seen[c->apic_id]))
			seen[c->apic_id] = true;
	}
	for (unsigned i = 0; i < MANY; i++) {
		if (zt_guest_load32(&tc, GUEST_COUNT_A + 4 * i) != 1) {
			zt_diag("APIC ID %u counted %u times", i,
			        zt_guest_load32(&tc, GUEST_COUNT_A + 4 * i));
			zt_fail_later();
		}
	}
	pthread_barrier_destroy(&barrier);
	zt_case_destroy(&tc);
}

/* ------------------------------------------------------------------------ */
/* The local APIC timer (KVM's, driven through x2APIC MSRs). The guest arms
 * it and halts until it fires; the handler counts ticks and EOIs. Timing
 * bounds are loose (the machine is shared): only "not absurdly early". */
struct timer_result {
	uint32_t ticks, at_spin;
	uint64_t deadline, last_tsc;
	int64_t elapsed_ns;
};

static struct timer_result timer_case(uint32_t lvt, uint64_t count, uint32_t ticks, bool mask,
                                      uint64_t spin)
{
	struct zt_case tc;
	zt_setup_guest(&tc, apic_timer_start, apic_timer_end);
	tc.interrupts_enabled = true;
	zhv_vcpu_state_t s;
	memset(&s, 0, sizeof(s));
	s.rdi = lvt;
	s.rsi = count;
	s.r10 = ticks;
	s.r9 = mask;
	s.r8 = spin;
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_STATE, &s, sizeof(s)));

	struct timer_result r;
	zhv_time_t t0 = zhv_clock_monotonic();
	zt_enter_and_clean_exit(&tc);
	r.elapsed_ns = zhv_clock_monotonic() - t0;
	r.ticks = zt_guest_load32(&tc, GUEST_COUNT_A);
	r.at_spin = zt_guest_load32(&tc, TIMER_AT_SPIN);
	r.deadline = zt_guest_load64(&tc, TIMER_DEADLINE);
	r.last_tsc = zt_guest_load64(&tc, TIMER_LAST_TSC);
	zt_diag("ticks %u (%u when the busy loop began), %.2f ms in enter", r.ticks, r.at_spin,
	        (double)r.elapsed_ns / 1e6);
	zt_case_destroy(&tc);
	return r;
}

/* QEMU's software CPU (tools/kvm-in-qemu.sh: KVM nested on QEMU TCG's
 * emulated AMD-V) now and then delivers an event KVM injects twice: about
 * 1 run in 20 of these three cases counts a second tick of a one-shot timer
 * there, with the same binaries before and after any change to libzhv (the
 * interrupt is KVM's own: the LAPIC timer; libzhv injects nothing here).
 * The same quirk is behind the Linux boots' rare deaths there (an interrupt
 * delivered again from its own handler's entry runs with the user's GS:
 * tests/vmm/linux.sh). On that host only, a case that counted one tick
 * more than (want) runs once more and the first run is reported; anywhere
 * else, or twice in a row, it is a failure. */
static struct timer_result timer_case_once_more_on_tcg(uint32_t lvt, uint64_t count,
                                                       uint32_t ticks, bool mask,
                                                       uint64_t spin, uint32_t want)
{
	struct timer_result r = timer_case(lvt, count, ticks, mask, spin);
	if (r.ticks == want + 1 && zt_qemu_tcg()) {
		zt_diag("QEMU TCG quirk (an injected event delivered twice): %u ticks for %u; "
		        "once more", r.ticks, want);
		r = timer_case(lvt, count, ticks, mask, spin);
	}
	return r;
}

/* One-shot: 2,000,000 counts at divide-by-1 (2 ms with KVM's 1 GHz APIC
 * bus; at least 0.5 ms for any bus up to 4 GHz). Exactly one tick, even
 * though the guest keeps interrupts on for ~10,000 more loop iterations. */
static void test_apic_timer_oneshot(void)
{
	struct timer_result r = timer_case_once_more_on_tcg(TIMER_VECTOR | LVT_TIMER_ONESHOT,
	                                                    2000000, 1, false, 10000, 1);
	ZT_EXPECT_EQ(r.at_spin, 1);
	ZT_EXPECT_EQ(r.ticks, 1);
	ZT_EXPECT_GE(r.elapsed_ns, 500000);
}

/* Periodic: 1,000,000 counts (1 ms at 1 GHz); the guest waits for 10 ticks,
 * masks the LVT, then loops with interrupts on: at most one tick that was
 * already in flight may arrive after the mask. */
static void test_apic_timer_periodic(void)
{
	struct timer_result r = timer_case(TIMER_VECTOR | LVT_TIMER_PERIODIC, 1000000, 10, true,
	                                   10000);
	ZT_EXPECT_GE(r.at_spin, 10);
	ZT_EXPECT_LE(r.at_spin, 11);
	ZT_EXPECT_LE(r.ticks - r.at_spin, 1);
	ZT_EXPECT_GE(r.elapsed_ns, 2500000);
}

/* TSC-deadline: IA32_TSC_DEADLINE = now + 2,000,000 TSC ticks. One tick,
 * and its handler reads a TSC at or past the deadline (never early). */
static void test_apic_timer_tsc_deadline(void)
{
	struct timer_result r = timer_case_once_more_on_tcg(TIMER_VECTOR | LVT_TIMER_TSC_DEADLINE,
	                                                    2000000, 1, false, 10000, 1);
	ZT_EXPECT_EQ(r.ticks, 1);
	ZT_EXPECT_NE(r.deadline, 0);
	ZT_EXPECT_GE(r.last_tsc, r.deadline);
}

/* ------------------------------------------------------------------------ */
/* An AP created with ZHV_VCPU_OPT_WAIT_SIPI does not run until the BSP
 * sends it INIT and SIPI (vector 9) through its x2APIC ICR; it then runs
 * real-mode code at CS = 0x900, IP = 0 and its OUT reaches its thread. */
struct sipi_ctx {
	struct zt_case *tc;
	zhv_vcpu_t *vcpu;
	sem_t created;
	atomic_bool returned;
	zhv_status_t status;
	zhv_packet_t packet;
	zhv_vcpu_sregs_t sregs;
	zhv_vcpu_regs_t regs;
};

static void *wait_sipi_thread(void *arg)
{
	struct sipi_ctx *c = arg;
	zhv_vcpu_t *vcpu;
	ZT_ASSERT_OK(zhv_vcpu_create(c->tc->guest, ZHV_VCPU_OPT_WAIT_SIPI, 0, &vcpu));
	c->vcpu = vcpu;
	zhv_vcpu_info_t info;
	ZT_ASSERT_OK(zhv_vcpu_get_info(vcpu, &info));
	ZT_ASSERT_EQ(info.apic_id, 1);
	sem_post(&c->created);
	c->status = zhv_vcpu_enter(vcpu, &c->packet);
	if (c->status == ZHV_OK) {
		c->sregs = zt_read_sregs(vcpu);
		c->regs = zt_read_regs(vcpu);
	} else {
		zt_dump_vcpu(vcpu);
	}
	atomic_store(&c->returned, true);
	zhv_vcpu_destroy(vcpu);
	return NULL;
}

static bool sipi_returned(void *arg)
{
	return atomic_load(&((struct sipi_ctx *)arg)->returned);
}

static void test_wait_sipi(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, wait_sipi_bsp_start, wait_sipi_bsp_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_IO, TRAP_PORT, 1, NULL, TRAP_KEY));
	memcpy(tc.mem + GUEST_SIPI_PAGE, wait_sipi_ap_start,
	       (size_t)(wait_sipi_ap_end - wait_sipi_ap_start));

	struct sipi_ctx c;
	memset(&c, 0, sizeof(c));
	c.tc = &tc;
	sem_init(&c.created, 0, 0);
	zt_thread_t *t = zt_thread_start(wait_sipi_thread, &c);
	ZT_ASSERT(zt_sem_wait_ms(&c.created, 10000));

	/* Without the SIPI the AP stays in enter. */
	zt_sleep_ms(50);
	ZT_EXPECT(!atomic_load(&c.returned));

	zt_enter_and_clean_exit(&tc);
	if (!zt_wait_until_ms(sipi_returned, &c, 5000)) {
		zt_diag("the AP did not leave enter within 5 s of INIT/SIPI; kicking it");
		ZT_ASSERT_OK(zhv_vcpu_kick(c.vcpu));
		ZT_ASSERT(zt_wait_until_ms(sipi_returned, &c, 5000));
		zt_fail_now();
	}
	zt_thread_join(t);
	ZT_ASSERT_OK(c.status);
	ZT_EXPECT_EQ(c.packet.type, ZHV_PKT_TYPE_GUEST_IO);
	ZT_EXPECT_EQ(c.packet.guest_io.port, TRAP_PORT);
	ZT_EXPECT_EQ(c.packet.guest_io.u8, 0x5a);
	ZT_EXPECT_EQ(c.sregs.cs.selector, GUEST_SIPI_PAGE >> 4);
	ZT_EXPECT_EQ(c.sregs.cs.base, GUEST_SIPI_PAGE);
	/* Read mid-exit (zhv.h, zhv_vcpu_read_state): past the OUT where KVM's
	 * emulator ran it (kvm_pvm runs all ring-0 code so), at the OUT (2
	 * bytes) on a hardware-virtualized KVM until the next enter. */
	uint64_t after_out = (uint64_t)(wait_sipi_ap_after_out - wait_sipi_ap_start);
	ZT_EXPECT_EQ(c.regs.rip, zt_kvm_pvm() ? after_out : after_out - 2);
	zt_case_destroy(&tc);
}

/* ------------------------------------------------------------------------ */
/* An MSR nobody implements: RDMSR and WRMSR give the guest #GP(0) with RIP
 * on the instruction (a fault), and leave RAX/RDX alone; enter does not
 * fail. The #GP handler skips the instruction. */
static void test_msr_unknown_gp(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, msr_unknown_gp_start, msr_unknown_gp_end);
	zt_enter_clean_exit_at(&tc, ZT_GUEST_ADDR(msr_unknown_gp_start, msr_unknown_gp_exit));
	ZT_EXPECT_EQ(zt_guest_load32(&tc, GUEST_COUNT_A), 2);
	ZT_EXPECT_EQ(zt_guest_load64(&tc, GUEST_MISC + 0),
	             ZT_GUEST_ADDR(msr_unknown_gp_start, msr_unknown_gp_rdmsr));
	ZT_EXPECT_EQ(zt_guest_load64(&tc, GUEST_MISC + 8),
	             ZT_GUEST_ADDR(msr_unknown_gp_start, msr_unknown_gp_wrmsr));
	ZT_EXPECT_EQ(zt_guest_load64(&tc, GUEST_MISC + 64), 0);
	ZT_EXPECT_EQ(zt_guest_load64(&tc, GUEST_MISC + 72), 0);
	zhv_vcpu_state_t s = zt_read_state(tc.vcpu);
	ZT_EXPECT_EQ(s.rax, 0x1111);
	ZT_EXPECT_EQ(s.rdx, 0x2222);
	zhv_guest_stats_t st;
	ZT_ASSERT_OK(zhv_guest_get_stats(tc.guest, &st));
	ZT_EXPECT_GE(st.msr_gp_injected, 2);
	zt_case_destroy(&tc);
}

/* ------------------------------------------------------------------------ */
/* Kick semantics (zhv.h): kicks before enter are latched, KICKED shows
 * while pending, any number of kicks gives one CANCELED, then the guest
 * runs normally. */
static void test_kick_once(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, vcpu_enter_start, vcpu_enter_end);
	ZT_ASSERT_OK(zhv_vcpu_kick(tc.vcpu));
	ZT_ASSERT_OK(zhv_vcpu_kick(tc.vcpu));
	zhv_vcpu_info_t info;
	ZT_ASSERT_OK(zhv_vcpu_get_info(tc.vcpu, &info));
	ZT_EXPECT_EQ(info.flags & ZHV_VCPU_INFO_FLAG_KICKED, ZHV_VCPU_INFO_FLAG_KICKED);
	ZT_EXPECT_EQ(info.id, 1);
	ZT_EXPECT_EQ(info.apic_id, 0);

	zhv_packet_t p;
	ZT_EXPECT_STATUS(zhv_vcpu_enter(tc.vcpu, &p), ZHV_ERR_CANCELED);
	ZT_ASSERT_OK(zhv_vcpu_get_info(tc.vcpu, &info));
	ZT_EXPECT_EQ(info.flags & ZHV_VCPU_INFO_FLAG_KICKED, 0);
	zt_enter_and_clean_exit(&tc);

	zhv_guest_stats_t st;
	ZT_ASSERT_OK(zhv_guest_get_stats(tc.guest, &st));
	ZT_EXPECT_EQ(st.kicks, 1);
	zt_case_destroy(&tc);
}

/* ------------------------------------------------------------------------ */
/* IN from a trapped port: the packet says IN with the size; the answer
 * (ZHV_VCPU_IO) lands in the low bytes of RAX (inb keeps the rest, inl
 * zero-extends). */
static void expect_in(struct zt_case *tc, uint16_t port, uint8_t size, uint32_t answer)
{
	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	ZT_ASSERT_OK(zhv_vcpu_enter(tc->vcpu, &p));
	ZT_ASSERT_EQ(p.type, ZHV_PKT_TYPE_GUEST_IO);
	ZT_EXPECT_EQ(p.key, TRAP_KEY);
	ZT_EXPECT_EQ(p.guest_io.port, port);
	ZT_EXPECT_EQ(p.guest_io.access_size, size);
	ZT_EXPECT_EQ(p.guest_io.input, 1);
	ZT_EXPECT_EQ(p.guest_io.u32, 0);
	zhv_vcpu_io_t io;
	memset(&io, 0, sizeof(io));
	io.access_size = size;
	io.u32 = answer;
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc->vcpu, ZHV_VCPU_IO, &io, sizeof(io)));
}

static void test_io_in(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, io_in_start, io_in_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_IO, TRAP_PORT - 1, 4, NULL, TRAP_KEY));
	expect_in(&tc, TRAP_PORT, 1, 0x42);
	expect_in(&tc, TRAP_PORT - 1, 4, 0x12345678);
	zt_enter_and_clean_exit(&tc);
	zhv_vcpu_state_t s = zt_read_state(tc.vcpu);
	ZT_EXPECT_EQ(s.rbx, 0x1122334455667742ull);
	ZT_EXPECT_EQ(s.rcx, 0x12345678);
	zhv_guest_stats_t st;
	ZT_ASSERT_OK(zhv_guest_get_stats(tc.guest, &st));
	ZT_EXPECT_GE(st.io_exits, 2);
	zt_case_destroy(&tc);
}

/* A load from a MEM trap: a read packet; the load gets the answer. */
static void test_mem_read(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, mem_read_start, mem_read_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_MEM, TRAP_ADDR, ZHV_PAGE_SIZE, NULL,
	                                TRAP_KEY));
	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	ZT_ASSERT_OK(zhv_vcpu_enter(tc.vcpu, &p));
	ZT_ASSERT_EQ(p.type, ZHV_PKT_TYPE_GUEST_MEM);
	ZT_EXPECT_EQ(p.key, TRAP_KEY);
	ZT_EXPECT_EQ(p.guest_mem.addr, TRAP_ADDR);
	ZT_EXPECT_EQ(p.guest_mem.write, 0);
	ZT_EXPECT_EQ(p.guest_mem.access_size, 8);
	ZT_EXPECT_EQ(p.guest_mem.instruction_size, 8); /* mov (abs32), %rbx */
	ZT_EXPECT_EQ(p.guest_mem.rip, GUEST_ENTRY);
	zhv_vcpu_mem_t m;
	memset(&m, 0, sizeof(m));
	m.access_size = 8;
	m.data = 0xDEADBEEFCAFEF00Dull;
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_MEM, &m, sizeof(m)));
	zt_enter_clean_exit_at(&tc, GUEST_ENTRY + 8);
	ZT_EXPECT_EQ(zt_read_state(tc.vcpu).rbx, 0xDEADBEEFCAFEF00Dull);
	zt_case_destroy(&tc);
}

/* ------------------------------------------------------------------------ */
/* Enter's error paths for accesses nobody handles (zhv.h, NOT_FOUND): the
 * access is dropped as on a PC bus (a load sees all-ones) and the guest
 * goes on after the instruction. Zircon instead leaves RIP on it (spec
 * 3.14), which makes the error permanent; zhv.h documents the difference.
 * A store and a load to guest-physical memory with neither RAM nor trap,
 * then an OUT and an IN on a port without a trap. */
static void expect_unhandled(struct zt_case *tc, uint32_t last_exit, uint64_t addr,
                             uint64_t insn_rip, uint64_t next_rip)
{
	zt_expect_enter(tc->vcpu, ZHV_ERR_NOT_FOUND);
	zhv_vcpu_info_t info;
	ZT_ASSERT_OK(zhv_vcpu_get_info(tc->vcpu, &info));
	ZT_EXPECT_EQ(info.last_exit, last_exit);
	ZT_EXPECT_EQ(info.last_exit_addr, addr);
	/* Between this error and the next enter, RIP is at the instruction or
	 * past it, depending on whether KVM has finished it yet (zhv.h,
	 * zhv_vcpu_read_state). That the guest does go on after it is shown
	 * by the next step: the next access's error, or the clean exit (a
	 * repeated access would be one error too many). */
	uint64_t rip = zt_read_regs(tc->vcpu).rip;
	if (rip != insn_rip && rip != next_rip) {
		zt_diag("RIP %#llx: neither the access (%#llx) nor the next instruction (%#llx)",
		        (unsigned long long)rip, (unsigned long long)insn_rip,
		        (unsigned long long)next_rip);
		zt_fail_now();
	}
}

static void test_unhandled_access(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, unhandled_access_start, unhandled_access_end);
#define UA(label) ZT_GUEST_ADDR(unhandled_access_start, label)
	expect_unhandled(&tc, ZHV_EXIT_UNHANDLED_MEM, UNBACKED_GPA, UA(unhandled_access_mem),
	                 UA(unhandled_access_load));
	expect_unhandled(&tc, ZHV_EXIT_UNHANDLED_MEM, UNBACKED_GPA, UA(unhandled_access_load),
	                 UA(unhandled_access_io));
	expect_unhandled(&tc, ZHV_EXIT_UNHANDLED_IO, 0x99, UA(unhandled_access_io),
	                 UA(unhandled_access_in));
	expect_unhandled(&tc, ZHV_EXIT_UNHANDLED_IO, 0x99,
	                 UA(unhandled_access_in) + 5 /* after "mov $0, %eax" */,
	                 UA(unhandled_access_exit));
	zt_enter_clean_exit_at(&tc, UA(unhandled_access_exit));
	/* What the dropped loads returned, once they are finished. */
	zhv_vcpu_state_t s = zt_read_state(tc.vcpu);
	ZT_EXPECT_EQ(s.rbx, UINT64_MAX);
	ZT_EXPECT_EQ(s.rax, 0xff);
#undef UA
	zt_case_destroy(&tc);
}

/* A store to RAM made read-only with zhv_guest_protect: ACCESS_DENIED, the
 * memory unchanged; writable again, the guest reaches its exit. */
static void test_read_only_ram(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, read_only_ram_start, read_only_ram_end);
	ZT_ASSERT_OK(zhv_guest_protect(tc.guest, READ_ONLY_GPA, ZHV_PAGE_SIZE, ZHV_MAP_READ));
	uint32_t flags = 0;
	ZT_EXPECT_OK(zhv_guest_query(tc.guest, READ_ONLY_GPA, &flags));
	ZT_EXPECT_EQ(flags, ZHV_MAP_READ);

	zt_expect_enter(tc.vcpu, ZHV_ERR_ACCESS_DENIED);
	ZT_EXPECT_EQ(zt_guest_load64(&tc, READ_ONLY_GPA), 0);

	ZT_ASSERT_OK(zhv_guest_protect(tc.guest, READ_ONLY_GPA, ZHV_PAGE_SIZE, ZHV_MAP_RWX));
	zt_enter_and_clean_exit(&tc);
	zt_case_destroy(&tc);
}

/* A load from a BELL trap: NOT_SUPPORTED (spec 3.10). */
static void test_bell_read(void)
{
	zhv_port_t *port;
	ZT_ASSERT_OK(zhv_port_create(0, &port));
	struct zt_case tc;
	zt_setup_guest(&tc, bell_read_start, bell_read_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_BELL, TRAP_ADDR, ZHV_PAGE_SIZE, port,
	                                TRAP_KEY));
	zt_expect_enter(tc.vcpu, ZHV_ERR_NOT_SUPPORTED);
	zhv_packet_t p;
	ZT_EXPECT_STATUS(zhv_port_wait(port, 0, &p), ZHV_ERR_TIMED_OUT);
	zt_case_destroy(&tc);
	zhv_port_destroy(port);
}

/* REP OUTSB to a trapped port: one IO packet per byte, in order, with the
 * bytes the guest sent (zhv.h: string I/O), then the guest goes on.
 * Counts 3 and 1. */
static void string_io_case(uint64_t count)
{
	struct zt_case tc;
	zt_setup_guest(&tc, string_io_start, string_io_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_IO, TRAP_PORT, 1, NULL, TRAP_KEY));
	zhv_vcpu_state_t s = zt_read_state(tc.vcpu);
	s.rcx = count;
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_STATE, &s, sizeof(s)));
	const uint8_t *code = (const uint8_t *)string_io_start;
	for (uint64_t i = 0; i < count; i++) {
		zhv_packet_t p;
		memset(&p, 0, sizeof(p));
		ZT_ASSERT_OK(zhv_vcpu_enter(tc.vcpu, &p));
		ZT_EXPECT_EQ(p.type, ZHV_PKT_TYPE_GUEST_IO);
		ZT_EXPECT_EQ(p.key, TRAP_KEY);
		ZT_EXPECT_EQ(p.guest_io.port, TRAP_PORT);
		ZT_EXPECT_EQ(p.guest_io.input, 0);
		ZT_EXPECT_EQ(p.guest_io.access_size, 1);
		ZT_EXPECT_EQ(p.guest_io.u8, code[i]);
	}
	zt_enter_and_clean_exit(&tc);
	ZT_EXPECT_EQ(zt_read_state(tc.vcpu).rcx, 0);
	zt_case_destroy(&tc);
}

static void test_string_io(void)
{
	string_io_case(3);
	string_io_case(1);
}

/* A triple fault: NOT_SUPPORTED, last exit SHUTDOWN; with its state
 * rewritten the vCPU runs again. The state written is the one from before
 * the enter: after a shutdown, KVM on SVM resets the vCPU (the VMCB is
 * undefined after a shutdown intercept), VMX and kvm_pvm keep it. */
static void test_triple_fault(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, triple_fault_start, triple_fault_end);
	zhv_vcpu_sregs_t s = zt_read_sregs(tc.vcpu);
	zt_expect_enter(tc.vcpu, ZHV_ERR_NOT_SUPPORTED);
	zhv_vcpu_info_t info;
	ZT_ASSERT_OK(zhv_vcpu_get_info(tc.vcpu, &info));
	ZT_EXPECT_EQ(info.last_exit, ZHV_EXIT_SHUTDOWN);
	zhv_guest_stats_t st;
	ZT_ASSERT_OK(zhv_guest_get_stats(tc.guest, &st));
	ZT_EXPECT_EQ(st.shutdown_exits, 1);

	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_SREGS, &s, sizeof(s)));
	zhv_vcpu_regs_t r;
	memset(&r, 0, sizeof(r));
	r.rflags = 0x2;
	r.rip = ZT_GUEST_ADDR(triple_fault_start, triple_fault_exit);
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
	zt_enter_clean_exit_at(&tc, r.rip);
	zt_case_destroy(&tc);
}

/* ------------------------------------------------------------------------ */
/* EOI packets (zhv_guest_set_irq_route): what an IOAPIC needs to re-deliver
 * a level-triggered input that is still asserted. Pin 5's route says it
 * sends LEVEL_VECTOR level-triggered to APIC ID 0; the host delivers that
 * MSI (level, assert) as the IOAPIC would, the guest's handler writes the
 * x2APIC EOI, and an enter returns ZHV_PKT_TYPE_GUEST_EOI for the vector.
 * The host then delivers again (the line is still high), which brings the
 * second interrupt and the second EOI packet, and the guest exits.
 *
 * When the packet comes differs between KVMs, so the driver takes packets
 * in any order and counts them. With a hardware-assisted local APIC
 * (VMX/SVM) the guest's EOI write exits at once, inside the handler.
 * kvm_pvm EOIs an interrupt itself when it injects it (the guest's own EOI
 * then finds the ISR empty) and reports that EOI at the vCPU's next pass
 * through KVM's entry path: at the next KVM_RUN after an exit to user
 * space, or at the end of its emulation batch (1024 instructions after
 * the entry, pvm_emul_batch), but never while the vCPU is halted (not even
 * after a kick). So the guest exits (OUT) with interrupts off before every
 * HLT and before its exit: every EOI is reported before the guest waits
 * for the next interrupt or exits. A watchdog kicks the vCPU if no packet
 * comes for 10 s. */
#define ROUTE_PIN         5
#define MSI_ADDR_APIC0    0xFEE00000ull
#define MSI_DATA_LEVEL    ((1u << 15) | (1u << 14)) /* trigger level, assert */

struct watchdog {
	zhv_vcpu_t *vcpu;
	sem_t done;
	atomic_bool fired;
};

static void *watchdog_thread(void *arg)
{
	struct watchdog *w = arg;
	if (!zt_sem_wait_ms(&w->done, 10000)) {
		atomic_store(&w->fired, true);
		(void)zhv_vcpu_kick(w->vcpu);
	}
	return NULL;
}

struct eoi_run {
	unsigned eoi_packets, io_packets;
	char order[32]; /* E: EOI packet, I: IO packet, X: the exit */
	uint8_t vectors[8];
	uint32_t count_at_eoi[8];
};

/* Enter until the clean exit; count EOI and IO packets. At the first
 * (redeliver) EOI packets, deliver (data) again as an IOAPIC does while
 * the line stays high, and let the guest wait for one more interrupt. */
static struct eoi_run level_eoi_run(struct zt_case *tc, uint32_t data, unsigned redeliver)
{
	struct eoi_run r;
	memset(&r, 0, sizeof(r));
	struct watchdog w = {.vcpu = tc->vcpu};
	sem_init(&w.done, 0, 0);
	atomic_init(&w.fired, false);
	zt_thread_t *t = zt_thread_start(watchdog_thread, &w);
	for (unsigned steps = 0;; steps++) {
		ZT_ASSERT(steps < 20);
		zhv_packet_t p;
		memset(&p, 0, sizeof(p));
		zhv_status_t st = zhv_vcpu_enter(tc->vcpu, &p);
		if (st == ZHV_ERR_CANCELED && atomic_load(&w.fired)) {
			zt_diag("no packet for 10 s after %u EOI and %u IO packets, %u interrupt(s)",
			        r.eoi_packets, r.io_packets, zt_guest_load32(tc, GUEST_COUNT_A));
			zt_dump_vcpu(tc->vcpu);
			zt_fail_now();
		}
		ZT_ASSERT_OK(st);
		if (steps < sizeof(r.order) - 1)
			r.order[steps] = p.type == ZHV_PKT_TYPE_GUEST_EOI  ? 'E'
			                 : p.type == ZHV_PKT_TYPE_GUEST_IO ? 'I'
			                                                   : 'X';
		if (p.type == ZHV_PKT_TYPE_GUEST_IO) {
			ZT_EXPECT_EQ(p.guest_io.port, TRAP_PORT);
			r.io_packets++;
			continue;
		}
		if (p.type == ZHV_PKT_TYPE_GUEST_EOI) {
			ZT_EXPECT_EQ(p.key, 0);
			ZT_EXPECT_EQ(p.status, ZHV_OK);
			for (size_t i = 0; i < sizeof(p.guest_eoi.reserved); i++)
				ZT_EXPECT_EQ(p.guest_eoi.reserved[i], 0);
			if (r.eoi_packets < 8) {
				r.vectors[r.eoi_packets] = p.guest_eoi.vector;
				r.count_at_eoi[r.eoi_packets] = zt_guest_load32(tc, GUEST_COUNT_A);
			}
			if (r.eoi_packets++ < redeliver) {
				zhv_vcpu_state_t s = zt_read_state(tc->vcpu);
				s.r10++;
				ZT_ASSERT_OK(zhv_vcpu_write_state(tc->vcpu, ZHV_VCPU_STATE, &s, sizeof(s)));
				ZT_ASSERT_OK(zhv_guest_signal_msi(tc->guest, MSI_ADDR_APIC0, data));
			}
			continue;
		}
		/* Anything else must be the clean exit. */
		ZT_ASSERT_EQ(p.type, ZHV_PKT_TYPE_GUEST_MEM);
		ZT_ASSERT_EQ(p.guest_mem.addr, EXIT_TEST_ADDR);
		ZT_EXPECT_EQ(p.guest_mem.instruction_size, EXIT_INSN_SIZE);
		break;
	}
	sem_post(&w.done);
	zt_thread_join(t);
	sem_destroy(&w.done);
	return r;
}

static void level_eoi_setup(struct zt_case *tc)
{
	zt_setup_guest(tc, level_eoi_start, level_eoi_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc->guest, ZHV_TRAP_IO, TRAP_PORT, 1, NULL, TRAP_KEY));
	zhv_vcpu_state_t s = zt_read_state(tc->vcpu);
	s.r10 = 1; /* interrupts to wait for */
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc->vcpu, ZHV_VCPU_STATE, &s, sizeof(s)));
}

static void test_level_eoi_packet(void)
{
	struct zt_case tc;
	level_eoi_setup(&tc);
	uint32_t data = LEVEL_VECTOR | MSI_DATA_LEVEL;
	ZT_ASSERT_OK(zhv_guest_set_irq_route(tc.guest, ROUTE_PIN, MSI_ADDR_APIC0, data, true));
	ZT_ASSERT_OK(zhv_guest_signal_msi(tc.guest, MSI_ADDR_APIC0, data));
	struct eoi_run r = level_eoi_run(&tc, data, 1);
	zt_diag("packets in order: %s", r.order);
	ZT_EXPECT_EQ(zt_guest_load32(&tc, GUEST_COUNT_A), 2);
	/* One OUT per pass of the guest's loop: 3 when the second interrupt
	 * comes after the guest's next CLI (kvm_pvm: the EOI is reported at
	 * the next entry), 2 when it comes at once, as the handler's IRETQ
	 * sets IF (a hardware-assisted APIC exits at the EOI write). */
	ZT_EXPECT_GE(r.io_packets, 2);
	ZT_EXPECT_LE(r.io_packets, 3);
	ZT_ASSERT_EQ(r.eoi_packets, 2);
	for (unsigned i = 0; i < 2; i++) {
		ZT_EXPECT_EQ(r.vectors[i], LEVEL_VECTOR);
		/* The EOI is of interrupt i + 1: the handler counted it. */
		ZT_EXPECT_EQ(r.count_at_eoi[i], i + 1);
	}
	zhv_guest_stats_t st;
	ZT_ASSERT_OK(zhv_guest_get_stats(tc.guest, &st));
	ZT_EXPECT_EQ(st.eoi_exits, 2);
	zhv_vcpu_info_t info;
	ZT_ASSERT_OK(zhv_vcpu_get_info(tc.vcpu, &info));
	ZT_EXPECT_EQ(info.last_exit, ZHV_EXIT_PACKET);
	zt_case_destroy(&tc);
}

/* No EOI packet where no enabled level-triggered route names the vector:
 * without any route (as before routes existed), with an edge-triggered
 * route and edge MSI, and with a level route that was removed again. The
 * guest takes its interrupt, syncs and exits cleanly each time. */
enum no_eoi_case { NO_ROUTE, EDGE_ROUTE, REMOVED_ROUTE };

static void no_eoi_case(enum no_eoi_case c)
{
	struct zt_case tc;
	level_eoi_setup(&tc);
	uint32_t data = LEVEL_VECTOR | MSI_DATA_LEVEL;
	if (c == EDGE_ROUTE) {
		data = LEVEL_VECTOR;
		ZT_ASSERT_OK(zhv_guest_set_irq_route(tc.guest, ROUTE_PIN, MSI_ADDR_APIC0, data, true));
	} else if (c == REMOVED_ROUTE) {
		ZT_ASSERT_OK(zhv_guest_set_irq_route(tc.guest, ROUTE_PIN, MSI_ADDR_APIC0, data, true));
		ZT_ASSERT_OK(zhv_guest_set_irq_route(tc.guest, ROUTE_PIN, 0, 0, false));
	}
	ZT_ASSERT_OK(zhv_guest_signal_msi(tc.guest, MSI_ADDR_APIC0, data));
	struct eoi_run r = level_eoi_run(&tc, data, 0);
	ZT_EXPECT_EQ(r.eoi_packets, 0);
	ZT_EXPECT_EQ(r.io_packets, 2);
	ZT_EXPECT_EQ(zt_guest_load32(&tc, GUEST_COUNT_A), 1);
	zhv_guest_stats_t st;
	ZT_ASSERT_OK(zhv_guest_get_stats(tc.guest, &st));
	ZT_EXPECT_EQ(st.eoi_exits, 0);
	zt_case_destroy(&tc);
}

static void test_level_eoi_needs_route(void)
{
	no_eoi_case(NO_ROUTE);
	no_eoi_case(EDGE_ROUTE);
	no_eoi_case(REMOVED_ROUTE);
}

const struct zt_test zt_beyond_tests[] = {
	{"beyond_many_vcpus", test_many_vcpus},
	{"beyond_apic_timer_oneshot", test_apic_timer_oneshot},
	{"beyond_apic_timer_periodic", test_apic_timer_periodic},
	{"beyond_apic_timer_tsc_deadline", test_apic_timer_tsc_deadline},
	{"beyond_wait_sipi", test_wait_sipi},
	{"beyond_msr_unknown_gp", test_msr_unknown_gp},
	{"beyond_kick_once", test_kick_once},
	{"beyond_io_in", test_io_in},
	{"beyond_mem_read", test_mem_read},
	{"beyond_unhandled_access", test_unhandled_access},
	{"beyond_read_only_ram", test_read_only_ram},
	{"beyond_bell_read", test_bell_read},
	{"beyond_string_io", test_string_io},
	{"beyond_triple_fault", test_triple_fault},
	{"beyond_level_eoi_packet", test_level_eoi_packet},
	{"beyond_level_eoi_needs_route", test_level_eoi_needs_route},
	{NULL, NULL},
};
