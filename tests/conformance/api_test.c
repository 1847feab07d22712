/* api_test.c: argument checking and state plumbing of the public API
 * (include/zhv.h): every documented invalid-argument path, thread affinity,
 * and read/write round trips. No guest code runs here except where a test
 * says so. */
#include <cpuid.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "suites.h"

#define GPA_LIMIT ZHV_GUEST_PHYS_SIZE

/* The host CPU's physical-address width (CPUID 0x80000008 EAX[7:0]). */
static unsigned host_phys_addr_bits(void)
{
	unsigned a, b, c, d;
	if (__get_cpuid(0x80000008, &a, &b, &c, &d) == 0)
		return 36;
	return a & 0xff;
}
#define PAGE ZHV_PAGE_SIZE

static void *map_host(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ZT_ASSERT(p != MAP_FAILED);
	return p;
}

/* Status names and time helpers. */
static void test_api_status_and_time(void)
{
	ZT_EXPECT(strcmp(zhv_status_string(ZHV_OK), "ZHV_OK") == 0);
	ZT_EXPECT(strcmp(zhv_status_string(ZHV_ERR_BAD_STATE), "ZHV_ERR_BAD_STATE") == 0);
	ZT_EXPECT(strcmp(zhv_status_string(ZHV_ERR_OUT_OF_RANGE), "ZHV_ERR_OUT_OF_RANGE") == 0);
	const char *u = zhv_status_string(-12345);
	ZT_ASSERT(u != NULL);
	ZT_EXPECT(strcmp(u, "ZHV_ERR_<unknown>") == 0);

	ZT_EXPECT_EQ(zhv_deadline_after(INT64_MAX), ZHV_TIME_INFINITE);
	zhv_time_t now = zhv_clock_monotonic();
	zhv_time_t d = zhv_deadline_after(1000000);
	ZT_EXPECT_GE(d, now + 1000000);
	ZT_EXPECT_LE(d, zhv_clock_monotonic() + 1000000);
}

/* Ports: NULL arguments, the user-packet quota, FIFO order, the type forced
 * to USER, polling and timed waits. */
static void test_api_port(void)
{
	zhv_port_t *port;
	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	ZT_EXPECT_STATUS(zhv_port_create(0, NULL), ZHV_ERR_INVALID_ARGS);
	ZT_ASSERT_OK(zhv_port_create(2, &port));
	ZT_EXPECT_STATUS(zhv_port_queue(port, NULL), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_port_queue(NULL, &p), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_port_wait(port, 0, NULL), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_port_wait(NULL, 0, &p), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_port_wait(port, 0, &p), ZHV_ERR_TIMED_OUT);

	uint64_t t0 = zt_now_ms();
	ZT_EXPECT_STATUS(zhv_port_wait(port, zhv_deadline_after(50 * 1000000), &p),
	                 ZHV_ERR_TIMED_OUT);
	ZT_EXPECT_GE(zt_now_ms() - t0, 40);

	p.key = 1;
	p.type = ZHV_PKT_TYPE_GUEST_BELL; /* forced to USER */
	ZT_EXPECT_OK(zhv_port_queue(port, &p));
	p.key = 2;
	ZT_EXPECT_OK(zhv_port_queue(port, &p));
	p.key = 3;
	ZT_EXPECT_STATUS(zhv_port_queue(port, &p), ZHV_ERR_SHOULD_WAIT);

	ZT_ASSERT_OK(zhv_port_wait(port, 0, &p));
	ZT_EXPECT_EQ(p.key, 1);
	ZT_EXPECT_EQ(p.type, ZHV_PKT_TYPE_USER);
	/* A slot is free again. */
	p.key = 3;
	ZT_EXPECT_OK(zhv_port_queue(port, &p));
	ZT_ASSERT_OK(zhv_port_wait(port, 0, &p));
	ZT_EXPECT_EQ(p.key, 2);
	ZT_ASSERT_OK(zhv_port_wait(port, ZHV_TIME_INFINITE, &p));
	ZT_EXPECT_EQ(p.key, 3);
	ZT_EXPECT_STATUS(zhv_port_wait(port, 0, &p), ZHV_ERR_TIMED_OUT);
	zhv_port_destroy(port);
	zhv_port_destroy(NULL);
}

/* Guest creation and guest-physical memory: alignment, flags, range,
 * overlap, query, host_addr, protect and unmap of sub-ranges. */
static void test_api_guest_memory(void)
{
	zhv_guest_t *g;
	zhv_guest_config_t cfg = {.options = 1, .max_vcpus = 0};
	ZT_EXPECT_STATUS(zhv_guest_create(NULL, NULL), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_create(&cfg, &g), ZHV_ERR_INVALID_ARGS);
	ZT_ASSERT_OK(zhv_guest_create(NULL, &g));

	uint8_t *host = map_host(64 * PAGE);
	const uint64_t base = 0x100000;
	const uint32_t rw = ZHV_MAP_READ | ZHV_MAP_WRITE;

	/* Invalid arguments. */
	ZT_EXPECT_STATUS(zhv_guest_map(NULL, base, host, PAGE, rw), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_map(g, base + 0x10, host, PAGE, rw), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_map(g, base, host + 1, PAGE, rw), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_map(g, base, host, 100, rw), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_map(g, base, host, 0, rw), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_map(g, base, host, PAGE, 0), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_map(g, base, host, PAGE, ZHV_MAP_WRITE), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_map(g, base, host, PAGE, ZHV_MAP_READ | (1u << 6)),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_map(g, base, host, PAGE, ZHV_MAP_READ | (1u << 31)),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_map(g, GPA_LIMIT - PAGE, host, 2 * PAGE, rw),
	                 ZHV_ERR_OUT_OF_RANGE);
	ZT_EXPECT_STATUS(zhv_guest_map(g, GPA_LIMIT, host, PAGE, rw), ZHV_ERR_OUT_OF_RANGE);
	/* Undo whatever a wrongly accepted call above mapped. */
	ZT_ASSERT_OK(zhv_guest_unmap(g, base, 16 * PAGE));

	/* [base, base + 16 pages) RW; overlap refused; the neighbour is fine. */
	ZT_ASSERT_OK(zhv_guest_map(g, base, host, 16 * PAGE, rw));
	ZT_EXPECT_STATUS(zhv_guest_map(g, base + 8 * PAGE, host + 32 * PAGE, 16 * PAGE, rw),
	                 ZHV_ERR_ALREADY_EXISTS);
	ZT_EXPECT_STATUS(zhv_guest_map(g, base - PAGE, host + 32 * PAGE, 2 * PAGE, rw),
	                 ZHV_ERR_ALREADY_EXISTS);
	ZT_EXPECT_OK(zhv_guest_map(g, base + 16 * PAGE, host + 32 * PAGE, 4 * PAGE, ZHV_MAP_READ));
	/* The top page of the address space. KVM maps guest-physical addresses
	 * only below 2^MAXPHYADDR when it uses the CPU's nested paging
	 * (kvm_mmu_max_gfn; kvm_pvm's shadow paging allows 2^52): on a VMX or
	 * SVM host whose CPU has fewer than 48 physical-address bits (many
	 * Intel CPUs: 39 or 46; QEMU's TCG: 40) the top of zhv.h's 2^48 space
	 * cannot be mapped, and the map must fail without mapping anything;
	 * the top page below 2^MAXPHYADDR must work. */
	unsigned pa_bits = host_phys_addr_bits();
	if (pa_bits >= 48 || zt_kvm_pvm()) {
		ZT_EXPECT_OK(zhv_guest_map(g, GPA_LIMIT - PAGE, host + 40 * PAGE, PAGE, rw));
	} else {
		zt_diag("host MAXPHYADDR %u: KVM cannot map the top of the 2^48 guest-physical "
		        "space here",
		        pa_bits);
		ZT_EXPECT(zhv_guest_map(g, GPA_LIMIT - PAGE, host + 40 * PAGE, PAGE, rw) != ZHV_OK);
		ZT_EXPECT_STATUS(zhv_guest_query(g, GPA_LIMIT - PAGE, &(uint32_t){0}),
		                 ZHV_ERR_NOT_FOUND);
		ZT_EXPECT_OK(zhv_guest_map(g, (1ull << pa_bits) - PAGE, host + 40 * PAGE, PAGE, rw));
	}

	uint32_t flags = 0;
	ZT_EXPECT_OK(zhv_guest_query(g, base + 5 * PAGE + 123, &flags));
	ZT_EXPECT_EQ(flags, rw);
	ZT_EXPECT_OK(zhv_guest_query(g, base + 17 * PAGE, &flags));
	ZT_EXPECT_EQ(flags, ZHV_MAP_READ);
	ZT_EXPECT_STATUS(zhv_guest_query(g, base + 64 * PAGE, &flags), ZHV_ERR_NOT_FOUND);
	ZT_EXPECT_STATUS(zhv_guest_query(g, base, NULL), ZHV_ERR_INVALID_ARGS);

	void *hp = NULL;
	ZT_EXPECT_OK(zhv_guest_host_addr(g, base + PAGE + 8, 16, &hp));
	ZT_EXPECT_EQ((uintptr_t)hp, (uintptr_t)(host + PAGE + 8));
	ZT_EXPECT_STATUS(zhv_guest_host_addr(g, base, 0, &hp), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_host_addr(g, UINT64_MAX - 1, 4, &hp), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_host_addr(g, base + 64 * PAGE, 4, &hp), ZHV_ERR_NOT_FOUND);
	/* Crossing from one mapping into the next: not inside one mapping. */
	ZT_EXPECT_STATUS(zhv_guest_host_addr(g, base + 16 * PAGE - 8, 16, &hp),
	                 ZHV_ERR_NOT_FOUND);

	/* Protect: flag rules, unmapped pages, one page inside a mapping. */
	ZT_EXPECT_STATUS(zhv_guest_protect(g, base, PAGE, ZHV_MAP_WRITE), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_protect(g, base + 1, PAGE, rw), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_protect(g, base + 60 * PAGE, PAGE, rw), ZHV_ERR_NOT_FOUND);
	ZT_EXPECT_STATUS(zhv_guest_protect(g, base + 19 * PAGE, 2 * PAGE, rw), ZHV_ERR_NOT_FOUND);
	ZT_EXPECT_OK(zhv_guest_protect(g, base + 3 * PAGE, PAGE, ZHV_MAP_READ));
	ZT_EXPECT_OK(zhv_guest_query(g, base + 3 * PAGE, &flags));
	ZT_EXPECT_EQ(flags, ZHV_MAP_READ);
	ZT_EXPECT_OK(zhv_guest_query(g, base + 2 * PAGE, &flags));
	ZT_EXPECT_EQ(flags, rw);
	ZT_EXPECT_OK(zhv_guest_query(g, base + 4 * PAGE, &flags));
	ZT_EXPECT_EQ(flags, rw);

	/* Unmap: rules; a hole is fine; one page out of the middle. */
	ZT_EXPECT_STATUS(zhv_guest_unmap(g, base + 1, PAGE), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_unmap(g, base, 0), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_unmap(g, GPA_LIMIT, PAGE), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_OK(zhv_guest_unmap(g, base + 100 * PAGE, PAGE));
	ZT_EXPECT_OK(zhv_guest_unmap(g, base + 6 * PAGE, PAGE));
	ZT_EXPECT_STATUS(zhv_guest_query(g, base + 6 * PAGE, &flags), ZHV_ERR_NOT_FOUND);
	ZT_EXPECT_OK(zhv_guest_query(g, base + 5 * PAGE, &flags));
	ZT_EXPECT_OK(zhv_guest_query(g, base + 7 * PAGE, &flags));
	ZT_EXPECT_OK(zhv_guest_host_addr(g, base + 7 * PAGE, 8, &hp));
	ZT_EXPECT_EQ((uintptr_t)hp, (uintptr_t)(host + 7 * PAGE));
	/* The hole can be mapped again. */
	ZT_EXPECT_OK(zhv_guest_map(g, base + 6 * PAGE, host + 48 * PAGE, PAGE, rw));

	zhv_guest_stats_t st;
	ZT_EXPECT_OK(zhv_guest_get_stats(g, &st));
	zhv_guest_destroy(g);
	zhv_guest_destroy(NULL);
	munmap(host, 64 * PAGE);
}

/* set_trap validation in Zircon's order (spec 1.3). */
static void test_api_set_trap(void)
{
	zhv_guest_t *g;
	zhv_port_t *port;
	ZT_ASSERT_OK(zhv_guest_create(NULL, &g));
	ZT_ASSERT_OK(zhv_port_create(0, &port));

	/* Kinds and ports. */
	ZT_EXPECT_STATUS(zhv_guest_set_trap(NULL, ZHV_TRAP_MEM, 0, PAGE, NULL, 0),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_MEM, 0, PAGE, port, 0), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_BELL, 0, PAGE, NULL, 0),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_IO, 0x10, 1, port, 0), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, 3, 0, PAGE, NULL, 0), ZHV_ERR_INVALID_ARGS);

	/* IO ranges: port 0xFFFF can never be trapped (Zircon's rule). */
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_IO, 0x10, 0, NULL, 0), ZHV_ERR_OUT_OF_RANGE);
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_IO, 0xFFFF, 1, NULL, 0),
	                 ZHV_ERR_OUT_OF_RANGE);
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_IO, 0x10, UINT64_MAX, NULL, 0),
	                 ZHV_ERR_OUT_OF_RANGE);
	ZT_EXPECT_OK(zhv_guest_set_trap(g, ZHV_TRAP_IO, 0xFFFE, 1, NULL, 0));

	/* MEM/BELL ranges. */
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_MEM, 0x10001, PAGE, NULL, 0),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_MEM, 0x10000, 0x800, NULL, 0),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_MEM, 0x10000, 0, NULL, 0),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_MEM, GPA_LIMIT, PAGE, NULL, 0),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_BELL, GPA_LIMIT - PAGE, 2 * PAGE, port, 0),
	                 ZHV_ERR_INVALID_ARGS);

	/* Overlaps: MEM and BELL share a space, IO has its own. */
	ZT_EXPECT_OK(zhv_guest_set_trap(g, ZHV_TRAP_MEM, 0x10000, 2 * PAGE, NULL, 1));
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_MEM, 0x11000, PAGE, NULL, 2),
	                 ZHV_ERR_ALREADY_EXISTS);
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_BELL, 0xF000, 2 * PAGE, port, 3),
	                 ZHV_ERR_ALREADY_EXISTS);
	ZT_EXPECT_OK(zhv_guest_set_trap(g, ZHV_TRAP_BELL, 0x12000, PAGE, port, 4));
	ZT_EXPECT_OK(zhv_guest_set_trap(g, ZHV_TRAP_IO, 0x10, 4, NULL, 5));
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_IO, 0x13, 2, NULL, 6),
	                 ZHV_ERR_ALREADY_EXISTS);
	ZT_EXPECT_OK(zhv_guest_set_trap(g, ZHV_TRAP_IO, 0x14, 1, NULL, 7));
	ZT_EXPECT_OK(zhv_guest_set_trap(g, ZHV_TRAP_MEM, 0, PAGE, NULL, 8)); /* GPA 0: not IO 0x10 */

	/* A MEM trap punches a hole in RAM; a rejected overlapping one still
	 * unmaps the RAM under its range first (Zircon's quirk, zhv.h). */
	uint8_t *host = map_host(4 * PAGE);
	const uint64_t ram = 0x40000;
	uint32_t flags;
	ZT_ASSERT_OK(zhv_guest_map(g, ram, host, 4 * PAGE, ZHV_MAP_RWX));
	ZT_EXPECT_OK(zhv_guest_set_trap(g, ZHV_TRAP_MEM, ram, PAGE, NULL, 9));
	ZT_EXPECT_STATUS(zhv_guest_query(g, ram, &flags), ZHV_ERR_NOT_FOUND);
	ZT_EXPECT_OK(zhv_guest_query(g, ram + PAGE, &flags));
	ZT_EXPECT_STATUS(zhv_guest_set_trap(g, ZHV_TRAP_MEM, ram, 2 * PAGE, NULL, 10),
	                 ZHV_ERR_ALREADY_EXISTS);
	ZT_EXPECT_STATUS(zhv_guest_query(g, ram + PAGE, &flags), ZHV_ERR_NOT_FOUND);
	ZT_EXPECT_OK(zhv_guest_query(g, ram + 2 * PAGE, &flags));

	zhv_guest_destroy(g);
	zhv_port_destroy(port);
	munmap(host, 4 * PAGE);
}

/* vcpu_create: argument checks, one vCPU per thread, the guest's vCPU
 * limit (checked before the thread, as in Zircon, spec 1.4). Checks made
 * after an id is allocated (entry, WAIT_SIPI for the BSP) move Zircon's
 * round-robin allocator on, so they use a guest of their own. */
struct create_result {
	zhv_status_t status;
	zhv_vcpu_t *vcpu;
};

static void *create_vcpu_thread(void *arg)
{
	struct create_result *r = calloc(1, sizeof(*r));
	ZT_ASSERT(r != NULL);
	r->status = zhv_vcpu_create(arg, 0, 0, &r->vcpu);
	return r;
}

static zhv_status_t create_on_other_thread(zhv_guest_t *g, zhv_vcpu_t **vcpu)
{
	struct create_result *r = zt_thread_join(zt_thread_start(create_vcpu_thread, g));
	zhv_status_t st = r->status;
	*vcpu = st == ZHV_OK ? r->vcpu : NULL;
	free(r);
	return st;
}

static void test_api_vcpu_create(void)
{
	zhv_guest_t *g;
	zhv_guest_config_t cfg = {.options = 0, .max_vcpus = 2};
	ZT_ASSERT_OK(zhv_guest_create(&cfg, &g));
	zhv_vcpu_t *v = NULL;
	ZT_EXPECT_STATUS(zhv_vcpu_create(NULL, 0, 0, &v), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_create(g, 0, 0, NULL), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_create(g, 1u << 7, 0, &v), ZHV_ERR_INVALID_ARGS);
	{
		zhv_guest_t *g2;
		ZT_ASSERT_OK(zhv_guest_create(NULL, &g2));
		ZT_EXPECT_STATUS(zhv_vcpu_create(g2, ZHV_VCPU_OPT_WAIT_SIPI, 0, &v),
		                 ZHV_ERR_INVALID_ARGS);
		ZT_EXPECT_STATUS(zhv_vcpu_create(g2, 0, GPA_LIMIT, &v), ZHV_ERR_INVALID_ARGS);
		ZT_EXPECT_STATUS(zhv_vcpu_create(g2, 0, UINT64_MAX, &v), ZHV_ERR_INVALID_ARGS);
		zhv_guest_destroy(g2);
	}

	ZT_ASSERT_OK(zhv_vcpu_create(g, 0, GPA_LIMIT - 1, &v));
	zhv_vcpu_info_t info;
	ZT_ASSERT_OK(zhv_vcpu_get_info(v, &info));
	ZT_EXPECT_EQ(info.id, 1);
	ZT_EXPECT_EQ(info.apic_id, 0);
	ZT_EXPECT_EQ(info.last_exit, ZHV_EXIT_NONE);

	/* One vCPU per thread. */
	zhv_vcpu_t *v2 = NULL;
	ZT_EXPECT_STATUS(zhv_vcpu_create(g, 0, 0, &v2), ZHV_ERR_BAD_STATE);
	/* max_vcpus = 2: a second thread gets id 2, a third NO_RESOURCES. */
	ZT_EXPECT_OK(create_on_other_thread(g, &v2));
	if (v2 != NULL) {
		ZT_ASSERT_OK(zhv_vcpu_get_info(v2, &info));
		ZT_EXPECT_EQ(info.id, 2);
		ZT_EXPECT_EQ(info.apic_id, 1);
	}
	zhv_vcpu_t *v3 = NULL;
	ZT_EXPECT_STATUS(create_on_other_thread(g, &v3), ZHV_ERR_NO_RESOURCES);
	zhv_vcpu_destroy(v3);
	/* A full guest reports NO_RESOURCES before BAD_STATE (Zircon's order). */
	ZT_EXPECT_STATUS(zhv_vcpu_create(g, 0, 0, &v3), ZHV_ERR_NO_RESOURCES);

	/* After destroy, this thread may create again. */
	zhv_vcpu_destroy(v2);
	zhv_vcpu_destroy(v);
	ZT_EXPECT_OK(zhv_vcpu_create(g, 0, 0, &v));
	zhv_vcpu_destroy(v);
	zhv_vcpu_destroy(NULL);
	zhv_guest_destroy(g);
}

/* kick / interrupt / get_info arguments; interrupt vectors 21-31 are
 * refused up front, > 255 out of range; exceptions wait in the tracker. */
static void test_api_vcpu_signals(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, NULL, NULL);
	zhv_vcpu_info_t info;
	ZT_EXPECT_STATUS(zhv_vcpu_kick(NULL), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_get_info(NULL, &info), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_get_info(tc.vcpu, NULL), ZHV_ERR_INVALID_ARGS);

	for (uint32_t v = 21; v <= 31; v++)
		ZT_EXPECT_STATUS(zhv_vcpu_interrupt(tc.vcpu, v), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_interrupt(tc.vcpu, 256), ZHV_ERR_OUT_OF_RANGE);
	ZT_EXPECT_STATUS(zhv_vcpu_interrupt(tc.vcpu, 1000), ZHV_ERR_OUT_OF_RANGE);
	ZT_EXPECT_STATUS(zhv_vcpu_interrupt(tc.vcpu, UINT32_MAX), ZHV_ERR_OUT_OF_RANGE);
	ZT_EXPECT_OK(zhv_vcpu_interrupt(tc.vcpu, 32));
	ZT_EXPECT_OK(zhv_vcpu_interrupt(tc.vcpu, 255));
	ZT_EXPECT_OK(zhv_vcpu_interrupt(tc.vcpu, NMI_VECTOR));
	ZT_EXPECT_OK(zhv_vcpu_interrupt(tc.vcpu, 6));
	ZT_EXPECT_OK(zhv_vcpu_interrupt(tc.vcpu, GP_FAULT_VECTOR));
	ZT_EXPECT_OK(zhv_vcpu_interrupt(tc.vcpu, 20));

	zhv_vcpu_events_t ev;
	ZT_ASSERT_OK(zhv_vcpu_read_state(tc.vcpu, ZHV_VCPU_EVENTS, &ev, sizeof(ev)));
	uint32_t want = (1u << 6) | (1u << GP_FAULT_VECTOR) | (1u << 20);
	ZT_EXPECT_EQ(ev.tracker_pending & want, want);
	ZT_EXPECT_EQ(ev.tracker_pending & ~want & ~(1u << NMI_VECTOR), 0);

	ZT_EXPECT_OK(zhv_vcpu_kick(tc.vcpu));
	ZT_ASSERT_OK(zhv_vcpu_get_info(tc.vcpu, &info));
	ZT_EXPECT_EQ(info.flags, ZHV_VCPU_INFO_FLAG_KICKED);
	zt_case_destroy(&tc);
}

/* zhv_guest_set_irq_route and zhv_guest_signal_msi arguments: pins 0..23,
 * MSI addresses 0xFEExxxxx with destination bits 31:8 in bits 63:40 and
 * bits 39:32 clear; a disabled route ignores address and data. */
static void test_api_irq_route(void)
{
	zhv_guest_t *g;
	ZT_ASSERT_OK(zhv_guest_create(NULL, &g));
	const uint64_t a0 = 0xFEE00000ull;
	const uint32_t level = 0xC030; /* level, assert, vector 0x30 */
	ZT_EXPECT_STATUS(zhv_guest_set_irq_route(NULL, 0, a0, level, true), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_set_irq_route(g, 24, a0, level, true), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_set_irq_route(g, UINT32_MAX, a0, level, false),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_set_irq_route(g, 0, 0xFEC00000ull, level, true),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_set_irq_route(g, 0, a0 | (1ull << 32), level, true),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_guest_signal_msi(g, a0 | (1ull << 32), 0x30), ZHV_ERR_INVALID_ARGS);
	for (uint32_t pin = 0; pin < 24; pin++)
		ZT_EXPECT_OK(zhv_guest_set_irq_route(g, pin, a0 | (pin << 12), level | pin, true));
	/* Destination 0x1234 (bits 31:8 = 0x12 in address bits 63:40), logical. */
	uint64_t far = 0xFEE34004ull | (0x12ull << 40);
	ZT_EXPECT_OK(zhv_guest_set_irq_route(g, 23, far, level, true));
	/* No APIC takes these (no vCPUs; no such ID): dropped, ZHV_OK. */
	ZT_EXPECT_OK(zhv_guest_signal_msi(g, a0, 0x30));
	ZT_EXPECT_OK(zhv_guest_signal_msi(g, far, 0x30));
	ZT_EXPECT_OK(zhv_guest_set_irq_route(g, 7, 0, 0, false));
	ZT_EXPECT_OK(zhv_guest_set_irq_route(g, 7, 0, 0, false)); /* already disabled */
	ZT_EXPECT_OK(zhv_guest_set_irq_route(g, 8, 0xDEADBEEFull, 0, false));
	for (uint32_t pin = 0; pin < 24; pin++)
		ZT_EXPECT_OK(zhv_guest_set_irq_route(g, pin, 0, 0, false));
	zhv_guest_destroy(g);
}

/* read_state / write_state argument checks. */
static void test_api_vcpu_state_args(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, NULL, NULL);
	zhv_vcpu_state_t s;
	zhv_vcpu_io_t io;
	zhv_vcpu_mem_t mem;
	memset(&io, 0, sizeof(io));
	memset(&mem, 0, sizeof(mem));

	ZT_EXPECT_STATUS(zhv_vcpu_read_state(tc.vcpu, 99, &s, sizeof(s)), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_read_state(tc.vcpu, ZHV_VCPU_STATE, &s, sizeof(s) - 1),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_read_state(tc.vcpu, ZHV_VCPU_STATE, &s, sizeof(s) + 8),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_read_state(tc.vcpu, ZHV_VCPU_STATE, NULL, sizeof(s)),
	                 ZHV_ERR_INVALID_ARGS);
	/* Write-only kinds. */
	ZT_EXPECT_STATUS(zhv_vcpu_read_state(tc.vcpu, ZHV_VCPU_IO, &io, sizeof(io)),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_read_state(tc.vcpu, ZHV_VCPU_MEM, &mem, sizeof(mem)),
	                 ZHV_ERR_INVALID_ARGS);

	ZT_EXPECT_STATUS(zhv_vcpu_write_state(tc.vcpu, 99, &s, sizeof(s)), ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_STATE, &s, sizeof(s) - 8),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_STATE, NULL, sizeof(s)),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_IO, &io, sizeof(io) + 1),
	                 ZHV_ERR_INVALID_ARGS);

	zhv_vcpu_msrs_t *m = calloc(1, sizeof(*m));
	ZT_ASSERT(m != NULL);
	m->count = ZHV_VCPU_MSRS_MAX + 1;
	ZT_EXPECT_STATUS(zhv_vcpu_read_state(tc.vcpu, ZHV_VCPU_MSRS, m, sizeof(*m)),
	                 ZHV_ERR_INVALID_ARGS);
	ZT_EXPECT_STATUS(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_MSRS, m, sizeof(*m)),
	                 ZHV_ERR_INVALID_ARGS);
	free(m);
	zt_case_destroy(&tc);
}

/* Thread affinity: enter, read_state and write_state from another thread
 * are BAD_STATE (checked before anything else); kick, interrupt and
 * get_info work from any thread. */
static void *other_thread_calls(void *arg)
{
	zhv_vcpu_t *v = arg;
	zhv_packet_t p;
	zhv_vcpu_state_t s;
	memset(&s, 0, sizeof(s));
	ZT_EXPECT_STATUS(zhv_vcpu_enter(v, &p), ZHV_ERR_BAD_STATE);
	ZT_EXPECT_STATUS(zhv_vcpu_read_state(v, ZHV_VCPU_STATE, &s, sizeof(s)), ZHV_ERR_BAD_STATE);
	ZT_EXPECT_STATUS(zhv_vcpu_read_state(v, 99, &s, 1), ZHV_ERR_BAD_STATE);
	ZT_EXPECT_STATUS(zhv_vcpu_write_state(v, ZHV_VCPU_STATE, &s, sizeof(s)), ZHV_ERR_BAD_STATE);
	zhv_vcpu_io_t io = {.access_size = 3};
	ZT_EXPECT_STATUS(zhv_vcpu_write_state(v, ZHV_VCPU_IO, &io, sizeof(io)), ZHV_ERR_BAD_STATE);
	ZT_EXPECT_OK(zhv_vcpu_interrupt(v, 32));
	zhv_vcpu_info_t info;
	ZT_EXPECT_OK(zhv_vcpu_get_info(v, &info));
	ZT_EXPECT_OK(zhv_vcpu_kick(v));
	return NULL;
}

static void test_api_thread_affinity(void)
{
	struct zt_case tc;
	ZT_GUEST_CODE(vcpu_enter);
	zt_setup_guest(&tc, vcpu_enter_start, vcpu_enter_end);
	zt_thread_join(zt_thread_start(other_thread_calls, tc.vcpu));
	/* The other thread's kick is this thread's next CANCELED. */
	zhv_packet_t p;
	ZT_EXPECT_STATUS(zhv_vcpu_enter(tc.vcpu, &p), ZHV_ERR_CANCELED);
	zt_enter_and_clean_exit(&tc);
	zt_case_destroy(&tc);
}

/* Round trips and Zircon's RFLAGS rules for ZHV_VCPU_STATE (spec 1.8):
 * RFLAGS changes only when the written value has bit 1 set, then only the
 * user bits; IF is never reported. */
static void test_api_state_roundtrip(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, NULL, NULL);

	zhv_vcpu_regs_t r = zt_read_regs(tc.vcpu);
	ZT_EXPECT_EQ(r.rip, GUEST_ENTRY);
	ZT_EXPECT_EQ(r.rflags, 0x2);
	for (unsigned i = 0; i < 16; i++)
		((uint64_t *)&r)[i] = 0x1000 + i;
	r.rip = 0x2345;
	r.rflags = 0x2 | 0x1; /* CF */
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
	zhv_vcpu_regs_t r2 = zt_read_regs(tc.vcpu);
	ZT_EXPECT(memcmp(&r, &r2, sizeof(r)) == 0);

	zhv_vcpu_state_t s = zt_read_state(tc.vcpu);
	ZT_EXPECT_EQ(s.rax, 0x1000);
	ZT_EXPECT_EQ(s.rbx, 0x1001);
	ZT_EXPECT_EQ(s.rcx, 0x1002);
	ZT_EXPECT_EQ(s.rsp, 0x1006);
	ZT_EXPECT_EQ(s.r15, 0x100f);
	ZT_EXPECT_EQ(s.rflags, 0x1);

	/* rflags without bit 1: RFLAGS untouched. */
	s.rflags = 0x40; /* ZF */
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_STATE, &s, sizeof(s)));
	ZT_EXPECT_EQ(zt_read_regs(tc.vcpu).rflags, 0x3);
	/* With bit 1: the user bits are replaced, IF (0x200) is not. */
	s.rflags = 0x2 | 0x40 | 0x200;
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_STATE, &s, sizeof(s)));
	ZT_EXPECT_EQ(zt_read_regs(tc.vcpu).rflags, 0x42);
	/* IF is never reported. */
	r = zt_read_regs(tc.vcpu);
	r.rflags = 0x202;
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
	ZT_EXPECT_EQ(zt_read_state(tc.vcpu).rflags, 0);

	/* SREGS: the BSP's initial state (spec 2.2) reads back and writes back. */
	zhv_vcpu_sregs_t sr = zt_read_sregs(tc.vcpu);
	ZT_EXPECT_EQ(sr.cs.l, 1);
	ZT_EXPECT_EQ(sr.cs.selector, 0);
	ZT_EXPECT_EQ(sr.cr0, X86_CR0_PE | X86_CR0_ET | X86_CR0_WP | X86_CR0_PG);
	ZT_EXPECT_EQ(sr.cr3, 0);
	ZT_EXPECT_EQ(sr.efer & 0xD01, 0xD01); /* SCE | LME | LMA | NXE */
	ZT_EXPECT_EQ(sr.gdt.limit, 0xFFFF);
	ZT_EXPECT_EQ(sr.idt.limit, 0xFFFF);
	ZT_EXPECT_EQ(sr.apic_base & 0xD00, 0xD00); /* EN | EXTD | BSP */
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_SREGS, &sr, sizeof(sr)));
	zhv_vcpu_sregs_t sr2 = zt_read_sregs(tc.vcpu);
	ZT_EXPECT_EQ(sr2.cr0, sr.cr0);
	ZT_EXPECT_EQ(sr2.efer, sr.efer);

	/* MSRS: count 0 lists what a snapshot saves; EFER reads as in SREGS. */
	zhv_vcpu_msrs_t *m = calloc(1, sizeof(*m));
	ZT_ASSERT(m != NULL);
	ZT_ASSERT_OK(zhv_vcpu_read_state(tc.vcpu, ZHV_VCPU_MSRS, m, sizeof(*m)));
	ZT_EXPECT_GE(m->count, 1);
	memset(m, 0, sizeof(*m));
	m->count = 1;
	m->entries[0].index = X86_MSR_IA32_EFER;
	ZT_ASSERT_OK(zhv_vcpu_read_state(tc.vcpu, ZHV_VCPU_MSRS, m, sizeof(*m)));
	ZT_EXPECT_EQ(m->entries[0].value, sr.efer);
	free(m);

	/* FPU: XCR0 has x87. LAPIC: x2APIC ID register (32-bit format) is 0. */
	zhv_vcpu_fpu_t *fpu = calloc(1, sizeof(*fpu));
	ZT_ASSERT(fpu != NULL);
	ZT_ASSERT_OK(zhv_vcpu_read_state(tc.vcpu, ZHV_VCPU_FPU, fpu, sizeof(*fpu)));
	ZT_EXPECT_EQ(fpu->xcr0 & 1, 1);
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_FPU, fpu, sizeof(*fpu)));
	free(fpu);
	zhv_vcpu_lapic_t la;
	ZT_ASSERT_OK(zhv_vcpu_read_state(tc.vcpu, ZHV_VCPU_LAPIC, &la, sizeof(la)));
	uint32_t id, svr;
	memcpy(&id, &la.regs[0x20], 4);
	memcpy(&svr, &la.regs[0xF0], 4);
	ZT_EXPECT_EQ(id, 0);
	ZT_EXPECT_EQ(svr & 0x100, 0x100); /* software-enabled (zhv.h) */
	zt_case_destroy(&tc);
}

const struct zt_test zt_api_tests[] = {
	{"api_status_and_time", test_api_status_and_time},
	{"api_port", test_api_port},
	{"api_guest_memory", test_api_guest_memory},
	{"api_set_trap", test_api_set_trap},
	{"api_vcpu_create", test_api_vcpu_create},
	{"api_vcpu_signals", test_api_vcpu_signals},
	{"api_irq_route", test_api_irq_route},
	{"api_vcpu_state_args", test_api_vcpu_state_args},
	{"api_thread_affinity", test_api_thread_affinity},
	{"api_state_roundtrip", test_api_state_roundtrip},
	{NULL, NULL},
};
