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
 * each mapping reports its flags, and the guest sees them: its stores to
 * the R and RX pages stop enter with ACCESS_DENIED and leave the memory
 * unchanged (the store is dropped and the guest goes on after it, zhv.h),
 * its stores to the RW and RWX pages land. 45 protect: protecting the RWX
 * page to R makes the guest's next store there ACCESS_DENIED too;
 * write-only does not exist on KVM (INVALID_ARGS, see zhv.h). KVM cannot
 * withhold execute permission (zhv.h): not checked. */
ZT_GUEST_CODE(enter_bad_state);
extern const char aspace_touch_store_r[], aspace_touch_store_rw[], aspace_touch_store_rx[],
	aspace_touch_store_rwx[], aspace_touch_exit2[], aspace_touch_store_protected[],
	aspace_touch_exit3[];
#define TOUCH_ADDR(label) ZT_GUEST_ADDR(aspace_touch_start, label)

/* enter; it must stop with ACCESS_DENIED for the store at (store), the
 * guest's RIP then being the next instruction (next). */
static void expect_denied_store(struct zt_case *tc, uint64_t store, uint64_t next)
{
	if (!zt_expect_enter(tc->vcpu, ZHV_ERR_ACCESS_DENIED)) {
		zt_diag("the store at %#llx was not denied", (unsigned long long)store);
		return;
	}
	ZT_EXPECT_EQ(zt_read_regs(tc->vcpu).rip, next);
}

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
	uint64_t value[4];
	for (unsigned i = 0; i < 4; i++) {
		uint64_t gpa = 0x400000 + i * 0x200000ull;
		value[i] = 0x1111111111111111ull * (i + 1);
		memcpy(pages + i * P, &value[i], 8);
		ZT_ASSERT_OK(zhv_guest_unmap(tc.guest, gpa, P));
		ZT_ASSERT_OK(zhv_guest_map(tc.guest, gpa, pages + i * P, P, flags[i]));
		uint32_t f = 0;
		ZT_EXPECT_OK(zhv_guest_query(tc.guest, gpa, &f));
		ZT_EXPECT_EQ(f, flags[i]);
	}
	zt_setup_vcpu(&tc);
	zt_enter_and_clean_exit(&tc);
	zhv_vcpu_state_t s = zt_read_state(tc.vcpu);
	ZT_EXPECT_EQ(s.rax, value[0]);
	ZT_EXPECT_EQ(s.rbx, value[1]);
	ZT_EXPECT_EQ(s.rcx, value[2]);
	ZT_EXPECT_EQ(s.rdx, value[3]);

	/* 46: the guest's stores follow the flags. */
	uint64_t v;
	expect_denied_store(&tc, TOUCH_ADDR(aspace_touch_store_r), TOUCH_ADDR(aspace_touch_store_rw));
	memcpy(&v, pages, 8);
	ZT_EXPECT_EQ(v, value[0]);
	expect_denied_store(&tc, TOUCH_ADDR(aspace_touch_store_rx),
	                    TOUCH_ADDR(aspace_touch_store_rwx));
	memcpy(&v, pages + P, 8);
	ZT_EXPECT_EQ(v, 0x52);
	memcpy(&v, pages + 2 * P, 8);
	ZT_EXPECT_EQ(v, value[2]);
	zt_enter_clean_exit_at(&tc, TOUCH_ADDR(aspace_touch_exit2));
	memcpy(&v, pages + 3 * P, 8);
	ZT_EXPECT_EQ(v, 0x54);
	for (unsigned i = 0; i < 4; i++) {
		uint32_t f = 0;
		ZT_EXPECT_OK(zhv_guest_query(tc.guest, 0x400000 + i * 0x200000ull, &f));
		ZT_EXPECT_EQ(f, flags[i]);
	}

	/* 45: protect the RWX page to R; write-only is refused. */
	ZT_EXPECT_OK(zhv_guest_protect(tc.guest, 0xa00000, P, ZHV_MAP_READ));
	uint32_t f = 0;
	ZT_EXPECT_OK(zhv_guest_query(tc.guest, 0xa00000, &f));
	ZT_EXPECT_EQ(f, ZHV_MAP_READ);
	ZT_EXPECT_STATUS(zhv_guest_protect(tc.guest, 0xa00000, P, ZHV_MAP_WRITE),
	                 ZHV_ERR_INVALID_ARGS);
	expect_denied_store(&tc, TOUCH_ADDR(aspace_touch_store_protected),
	                    TOUCH_ADDR(aspace_touch_exit3));
	memcpy(&v, pages + 3 * P, 8);
	ZT_EXPECT_EQ(v, 0x54);
	zt_enter_clean_exit_at(&tc, TOUCH_ADDR(aspace_touch_exit3));
	zt_case_destroy(&tc);
	munmap(pages, 4 * P);
}

/* 42-44 uncached, uncached_device, write_combining: KVM cannot give a guest
 * those memory types for RAM (zhv.h, ZHV_MAP_CACHE_*): zhv_guest_map
 * refuses each with NOT_SUPPORTED, alone or with any access flags, and maps
 * nothing (query NOT_FOUND, and a write-back mapping of the same range then
 * succeeds). zhv_guest_protect does not take them either. */
static void test_cache_policies(void)
{
	static const uint32_t cache[3] = {
		ZHV_MAP_CACHE_UNCACHED,
		ZHV_MAP_CACHE_UNCACHED_DEVICE,
		ZHV_MAP_CACHE_WRITE_COMBINING,
	};
	static const uint32_t access[3] = {ZHV_MAP_READ, ZHV_MAP_READ | ZHV_MAP_WRITE, ZHV_MAP_RWX};
	struct aspace a;
	aspace_init(&a, 1);
	for (unsigned i = 0; i < 3; i++) {
		for (unsigned j = 0; j < 3; j++) {
			ZT_EXPECT_STATUS(zhv_guest_map(a.guest, P, a.host, P, access[j] | cache[i]),
			                 ZHV_ERR_NOT_SUPPORTED);
			uint32_t f = 0;
			ZT_EXPECT_STATUS(zhv_guest_query(a.guest, P, &f), ZHV_ERR_NOT_FOUND);
			void *h;
			ZT_EXPECT_STATUS(zhv_guest_host_addr(a.guest, P, 8, &h), ZHV_ERR_NOT_FOUND);
		}
	}
	ZT_EXPECT_STATUS(zhv_guest_map(a.guest, P, a.host, P, ZHV_MAP_CACHE_MASK),
	                 ZHV_ERR_NOT_SUPPORTED);
	ZT_EXPECT(!mapped(&a, P));

	/* Nothing was mapped: the default (write-back) mapping of the range
	 * succeeds, and a cache flag cannot be added to it later. */
	ZT_ASSERT_OK(zhv_guest_map(a.guest, P, a.host, P, ZHV_MAP_RWX));
	uint32_t f = 0;
	ZT_EXPECT_OK(zhv_guest_query(a.guest, P, &f));
	ZT_EXPECT_EQ(f, ZHV_MAP_RWX);
	for (unsigned i = 0; i < 3; i++) {
		ZT_EXPECT(zhv_guest_protect(a.guest, P, P, ZHV_MAP_RWX | cache[i]) != ZHV_OK);
		ZT_EXPECT_OK(zhv_guest_query(a.guest, P, &f));
		ZT_EXPECT_EQ(f, ZHV_MAP_RWX);
	}
	zhv_guest_destroy(a.guest);
}

/* 51 vmlaunch_fail: Zircon enters with an unloaded VMCS and must fail
 * gracefully. Here: guest state that libzhv cannot run.
 * (a) State KVM refuses outright (long mode without paging; a reserved CR4
 *     bit): write_state returns INVALID_ARGS and changes nothing: the state
 *     reads back as before and the guest runs from it.
 * (b) State KVM accepts but no CPU can enter: RIP non-canonical in 64-bit
 *     mode. Enter fails with an error zhv.h documents, and the same one
 *     again if entered again unchanged: BAD_STATE where the CPU's entry
 *     checks refuse it (VMX: a failed VM entry, Zircon's case), or
 *     NOT_SUPPORTED where the first fetch faults and the guest, which has no
 *     IDT yet, triple-faults (SVM, KVM's emulator), or the emulator gives
 *     up. get_info's last exit agrees. Then the state is repaired and the
 *     guest reaches its exit. */
static void expect_sregs_unchanged(const zhv_vcpu_sregs_t *a, const zhv_vcpu_sregs_t *b)
{
	ZT_EXPECT_EQ(a->cr0, b->cr0);
	ZT_EXPECT_EQ(a->cr3, b->cr3);
	ZT_EXPECT_EQ(a->cr4, b->cr4);
	ZT_EXPECT_EQ(a->efer, b->efer);
	ZT_EXPECT_EQ(a->cs.selector, b->cs.selector);
	ZT_EXPECT_EQ(a->cs.l, b->cs.l);
}

static void test_enter_bad_state(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, enter_bad_state_start, enter_bad_state_end);
	zhv_vcpu_sregs_t good = zt_read_sregs(tc.vcpu);
	zhv_vcpu_regs_t good_regs = zt_read_regs(tc.vcpu);

	/* (a) */
	zhv_vcpu_sregs_t bad = good;
	bad.cr0 &= ~(uint64_t)X86_CR0_PG; /* PG off with EFER.LMA on */
	ZT_EXPECT_STATUS(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_SREGS, &bad, sizeof(bad)),
	                 ZHV_ERR_INVALID_ARGS);
	zhv_vcpu_sregs_t now = zt_read_sregs(tc.vcpu);
	expect_sregs_unchanged(&now, &good);
	bad = good;
	bad.cr4 |= 1ull << 63; /* reserved */
	ZT_EXPECT_STATUS(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_SREGS, &bad, sizeof(bad)),
	                 ZHV_ERR_INVALID_ARGS);
	now = zt_read_sregs(tc.vcpu);
	expect_sregs_unchanged(&now, &good);
	zt_enter_clean_exit_at(&tc, GUEST_ENTRY);

	/* (b) */
	zhv_vcpu_regs_t r = good_regs;
	r.rip = 0x0000800000000000ull; /* bit 47 set, bits 63:48 clear */
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	zhv_status_t st = zhv_vcpu_enter(tc.vcpu, &p);
	zhv_vcpu_info_t info;
	ZT_ASSERT_OK(zhv_vcpu_get_info(tc.vcpu, &info));
	zt_diag("enter with RIP %#llx: %s (last exit %u)", (unsigned long long)r.rip,
	        zhv_status_string(st), info.last_exit);
	if (st == ZHV_ERR_BAD_STATE) {
		ZT_EXPECT_EQ(info.last_exit, ZHV_EXIT_ERROR);
	} else if (st == ZHV_ERR_NOT_SUPPORTED) {
		/* A triple fault, or the fetch reached an emulator that gave up. */
		ZT_EXPECT(info.last_exit == ZHV_EXIT_SHUTDOWN || info.last_exit == ZHV_EXIT_EMULATION);
	} else {
		zt_diag("want BAD_STATE (entry refused) or NOT_SUPPORTED (triple fault)");
		if (st == ZHV_OK)
			zt_diag("packet type %u", p.type);
		zt_dump_vcpu(tc.vcpu);
		zt_fail_now();
	}
	ZT_EXPECT_STATUS(zhv_vcpu_enter(tc.vcpu, &p), st);

	/* Repaired, the vCPU runs again. */
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_SREGS, &good, sizeof(good)));
	r = good_regs;
	r.rip = GUEST_ENTRY;
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
	zt_enter_clean_exit_at(&tc, GUEST_ENTRY);
	zt_case_destroy(&tc);
}

const struct zt_test zt_aspace_tests[] = {
	{"35_36_aspace_unmap_range", test_unmap_range},
	{"37_38_aspace_unmap_multiple_mappings", test_unmap_multiple},
	{"39_41_aspace_multiple_mappings", test_multiple_mappings},
	{"40_45_46_aspace_page_fault_protect_query", test_page_fault_and_query},
	{"42_43_44_aspace_cache_policies", test_cache_policies},
	{"51_enter_bad_state", test_enter_bad_state},
	{NULL, NULL},
};
