/* aspace_test.c: Zircon's kernel-internal guest-physical address-space tests
 * (spec 6.4, tests 35-46 and 51) adapted to libzhv's public memory calls:
 * map / unmap / protect / query stand for the guest VMAR, and a guest that
 * loads from each mapping stands for the EPT page-fault path. */
#include <string.h>
#include <sys/mman.h>

#include "suites.h"

ZT_GUEST_CODE(aspace_touch);

#define P ZHV_PAGE_SIZE

struct aspace {
	zhv_guest_t *guest;
	uint8_t *host;
};

static void aspace_init(struct aspace *a, size_t pages)
{
	ZT_ASSERT_OK(zhv_guest_create(NULL, &a->guest));
	a->host = mmap(NULL, pages * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ZT_ASSERT(a->host != MAP_FAILED);
}

static bool mapped(struct aspace *a, uint64_t gpa)
{
	uint32_t flags;
	return zhv_guest_query(a->guest, gpa, &flags) == ZHV_OK;
}

/* 35 unmap_range: map one page at 0, unmap it: not mapped. 36: unmapping
 * a range with no mapping succeeds. */
static void test_unmap_range(void)
{
	struct aspace a;
	aspace_init(&a, 1);
	ZT_ASSERT_OK(zhv_guest_map(a.guest, 0, a.host, P, ZHV_MAP_RWX));
	ZT_EXPECT(mapped(&a, 0));
	ZT_ASSERT_OK(zhv_guest_unmap(a.guest, 0, P));
	ZT_EXPECT(!mapped(&a, 0));
	ZT_EXPECT_OK(zhv_guest_unmap(a.guest, 0, P));          /* 36 */
	ZT_EXPECT_OK(zhv_guest_unmap(a.guest, 64 * P, 16 * P)); /* 36 */
	zhv_guest_destroy(a.guest);
}

/* 37 unmap_range_multiple_mappings: [0, 2p) and [3p, 5p) mapped; unmapping
 * [p, 4p) leaves 0 and 4p mapped, p..3p not. 38 sub-region: the surviving
 * pieces still point at the right host pages. */
static void test_unmap_multiple(void)
{
	struct aspace a;
	aspace_init(&a, 5);
	ZT_ASSERT_OK(zhv_guest_map(a.guest, 0, a.host, 2 * P, ZHV_MAP_RWX));
	ZT_ASSERT_OK(zhv_guest_map(a.guest, 3 * P, a.host + 3 * P, 2 * P, ZHV_MAP_RWX));
	ZT_ASSERT_OK(zhv_guest_unmap(a.guest, P, 3 * P));
	ZT_EXPECT(mapped(&a, 0));
	ZT_EXPECT(!mapped(&a, P));
	ZT_EXPECT(!mapped(&a, 2 * P));
	ZT_EXPECT(!mapped(&a, 3 * P));
	ZT_EXPECT(mapped(&a, 4 * P));
	void *h;
	ZT_ASSERT_OK(zhv_guest_host_addr(a.guest, 4 * P + 8, 8, &h));
	ZT_EXPECT_EQ((uintptr_t)h, (uintptr_t)(a.host + 4 * P + 8));
	ZT_ASSERT_OK(zhv_guest_host_addr(a.guest, 0, P, &h));
	ZT_EXPECT_EQ((uintptr_t)h, (uintptr_t)a.host);
	zhv_guest_destroy(a.guest);
}

/* 39 single_vmo_multiple_mappings: one host page mapped at p and at 3p;
 * both see the same memory; 0 and 2p are not mapped. 41: a host page at an
 * arbitrary guest address (where a PC's interrupt controllers live). */
static void test_multiple_mappings(void)
{
	struct aspace a;
	aspace_init(&a, 1);
	ZT_ASSERT_OK(zhv_guest_map(a.guest, P, a.host, P, ZHV_MAP_RWX));
	ZT_ASSERT_OK(zhv_guest_map(a.guest, 3 * P, a.host, P, ZHV_MAP_RWX));
	ZT_EXPECT(!mapped(&a, 0));
	ZT_EXPECT(mapped(&a, P));
	ZT_EXPECT(!mapped(&a, 2 * P));
	ZT_EXPECT(mapped(&a, 3 * P));
	void *h1, *h3;
	ZT_ASSERT_OK(zhv_guest_host_addr(a.guest, P, 8, &h1));
	ZT_ASSERT_OK(zhv_guest_host_addr(a.guest, 3 * P, 8, &h3));
	ZT_EXPECT_EQ((uintptr_t)h1, (uintptr_t)h3);
	ZT_EXPECT_OK(zhv_guest_map(a.guest, 0xfec00000, a.host, P, ZHV_MAP_READ | ZHV_MAP_WRITE));
	zhv_guest_destroy(a.guest);
}

/* 40 page_fault: the guest loads from pages mapped R, RW, RX and RWX and
 * sees the host's data (each first access faults the page in). 46 query:
 * each mapping reports its flags. 45 protect: to a narrower set succeeds
 * (write-only does not exist on KVM: INVALID_ARGS, see zhv.h). 42-44
 * (uncached, device, write-combining VMOs) have no KVM equivalent: guest
 * RAM is always write-back there. */
static void test_page_fault_and_query(void)
{
	struct zt_case tc;
	zt_setup_guest_memory(&tc, aspace_touch_start, aspace_touch_end);
	static const uint32_t flags[4] = {
		ZHV_MAP_READ,
		ZHV_MAP_READ | ZHV_MAP_WRITE,
		ZHV_MAP_READ | ZHV_MAP_EXECUTE,
		ZHV_MAP_RWX,
	};
	uint8_t *pages = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	                      -1, 0);
	ZT_ASSERT(pages != MAP_FAILED);
	for (unsigned i = 0; i < 4; i++) {
		uint64_t gpa = 0x400000 + i * 0x200000ull;
		uint64_t value = 0x1111111111111111ull * (i + 1);
		memcpy(pages + i * P, &value, 8);
		ZT_ASSERT_OK(zhv_guest_unmap(tc.guest, gpa, P));
		ZT_ASSERT_OK(zhv_guest_map(tc.guest, gpa, pages + i * P, P, flags[i]));
		uint32_t f = 0;
		ZT_EXPECT_OK(zhv_guest_query(tc.guest, gpa, &f));
		ZT_EXPECT_EQ(f, flags[i]);
	}
	zt_setup_vcpu(&tc);
	zt_enter_and_clean_exit(&tc);
	zhv_vcpu_state_t s = zt_read_state(tc.vcpu);
	ZT_EXPECT_EQ(s.rax, 0x1111111111111111ull);
	ZT_EXPECT_EQ(s.rbx, 0x2222222222222222ull);
	ZT_EXPECT_EQ(s.rcx, 0x3333333333333333ull);
	ZT_EXPECT_EQ(s.rdx, 0x4444444444444444ull);

	ZT_EXPECT_OK(zhv_guest_protect(tc.guest, 0xa00000, P, ZHV_MAP_READ));
	uint32_t f = 0;
	ZT_EXPECT_OK(zhv_guest_query(tc.guest, 0xa00000, &f));
	ZT_EXPECT_EQ(f, ZHV_MAP_READ);
	ZT_EXPECT_STATUS(zhv_guest_protect(tc.guest, 0xa00000, P, ZHV_MAP_WRITE),
	                 ZHV_ERR_INVALID_ARGS);
	zt_case_destroy(&tc);
	munmap(pages, 4 * P);
}

/* 51 vmlaunch_fail: entering with an impossible state (long mode without
 * paging) fails with an error; the host process is fine and the vCPU runs
 * again once the state is repaired. */
static void test_enter_bad_state(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, aspace_touch_start, aspace_touch_end);
	zhv_vcpu_sregs_t good = zt_read_sregs(tc.vcpu), bad = good;
	bad.cr0 &= ~(1ull << 31); /* PG off with EFER.LMA on: invalid */
	zhv_status_t st = zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_SREGS, &bad, sizeof(bad));
	if (st == ZHV_OK) {
		zhv_packet_t p;
		st = zhv_vcpu_enter(tc.vcpu, &p);
		ZT_EXPECT(st != ZHV_OK);
	} else {
		ZT_EXPECT_STATUS(st, ZHV_ERR_INVALID_ARGS); /* KVM refused it up front */
	}
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_SREGS, &good, sizeof(good)));
	zhv_vcpu_regs_t r = zt_read_regs(tc.vcpu);
	r.rip = GUEST_ENTRY;
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
	zt_enter_and_clean_exit(&tc);
	zt_case_destroy(&tc);
}

const struct zt_test zt_aspace_tests[] = {
	{"35_36_aspace_unmap_range", test_unmap_range},
	{"37_38_aspace_unmap_multiple_mappings", test_unmap_multiple},
	{"39_41_aspace_multiple_mappings", test_multiple_mappings},
	{"40_45_46_aspace_page_fault_protect_query", test_page_fault_and_query},
	{"51_enter_bad_state", test_enter_bad_state},
	{NULL, NULL},
};
