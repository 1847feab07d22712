/* snapshot_test.c: a vCPU's whole state saved as a blob and restored into
 * a fresh vCPU of a fresh guest, bad blobs refused without a change, and
 * reset-to-snapshot, also in a long loop (issue 9). Guest code:
 * snapshot_guest.S. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "suites.h"

ZT_GUEST_CODE(snap_compute);
ZT_GUEST_CODE(snap_dirty);

/* Must match snapshot_guest.S. */
#define SNAP_PVCLOCK   0x7000
#define SNAP_DATA      0x8000
#define SNAP_RESULT    (SNAP_DATA + 0x00)
#define SNAP_T1        (SNAP_DATA + 0x08)
#define SNAP_T2        (SNAP_DATA + 0x10)
#define SNAP_LSTAR_OUT (SNAP_DATA + 0x18)
#define SNAP_XMM_IN    (SNAP_DATA + 0x20)
#define SNAP_XMM_OUT   (SNAP_DATA + 0x30)
#define SNAP_COUNTER   (SNAP_DATA + 0x40)
#define SNAP_R12_OUT   (SNAP_DATA + 0x48)
#define SNAP_HOSTCELL  (SNAP_DATA + 0x50)
#define SNAP_HOST_OUT  (SNAP_DATA + 0x58)
#define SNAP_PAGE2     0x200000
#define SNAP_LSTAR     0x5a5a1234
#define SNAP_KEY       0x77

#define R12_MAGIC      0x1234567890abcdefull
#define HOSTCELL_SNAP  0x1111ull
#define HOSTCELL_LATER 0x5555ull

static const uint8_t xmm_pattern[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static void compute_setup(struct zt_case *tc)
{
	zt_setup_guest(tc, snap_compute_start, snap_compute_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc->guest, ZHV_TRAP_IO, TRAP_PORT, 1, NULL, SNAP_KEY));
	memcpy(tc->mem + SNAP_XMM_IN, xmm_pattern, sizeof(xmm_pattern));
}

/* Enter, expecting the checkpoint OUT. */
static void enter_checkpoint(struct zt_case *tc)
{
	zhv_packet_t p;
	zhv_status_t st = zhv_vcpu_enter(tc->vcpu, &p);
	if (st != ZHV_OK)
		zt_dump_vcpu(tc->vcpu);
	ZT_ASSERT_OK(st);
	ZT_ASSERT_EQ(p.type, ZHV_PKT_TYPE_GUEST_IO);
	ZT_ASSERT_EQ(p.key, SNAP_KEY);
	ZT_ASSERT_EQ(p.guest_io.input, 0);
}

/* The results of a finished snap_compute run. */
struct compute_result {
	uint64_t result, t1, t2, lstar;
	uint8_t xmm[16];
};

static struct compute_result compute_finish(struct zt_case *tc)
{
	zt_enter_and_clean_exit(tc);
	struct compute_result r;
	r.result = zt_guest_load64(tc, SNAP_RESULT);
	r.t1 = zt_guest_load64(tc, SNAP_T1);
	r.t2 = zt_guest_load64(tc, SNAP_T2);
	r.lstar = zt_guest_load32(tc, SNAP_LSTAR_OUT);
	memcpy(r.xmm, tc->mem + SNAP_XMM_OUT, sizeof(r.xmm));
	return r;
}

static void expect_clock_sane(const struct compute_result *r, const char *which)
{
	/* kvmclock's system time, read by the guest before and after the
	 * checkpoint: it must be on, must not run backwards, and must not
	 * jump (the save, the copy and the restore take far less than 20 s,
	 * and the restored guest does not count the time it spent saved). */
	zt_diag("%s: kvmclock %llu ns before the checkpoint, %llu ns after", which,
	        (unsigned long long)r->t1, (unsigned long long)r->t2);
	ZT_EXPECT_NE(r->t1, 0);
	ZT_EXPECT_GE(r->t2, r->t1);
	ZT_EXPECT_LE(r->t2 - r->t1, 20000000000ull);
}

/* (a) A vCPU saved at a checkpoint in the middle of a computation and
 * restored, with the guest's RAM and clock, into a fresh vCPU of a fresh
 * guest finishes with the result of an uninterrupted run: registers, XMM
 * state, MSRs (LSTAR, kvmclock) and the clock all came along. */
static void save_restore_mid_computation(void)
{
	/* The reference: the same computation, never saved. */
	struct zt_case ref;
	compute_setup(&ref);
	enter_checkpoint(&ref);
	struct compute_result want = compute_finish(&ref);
	zt_case_destroy(&ref);
	ZT_ASSERT_EQ(want.lstar, SNAP_LSTAR);
	ZT_ASSERT(memcmp(want.xmm, xmm_pattern, 16) == 0);

	/* The original: let its clock reach 300 ms first, so that a fresh
	 * guest's clock (a few ms) would be seen running backwards. */
	struct zt_case orig;
	compute_setup(&orig);
	zt_sleep_ms(300);
	enter_checkpoint(&orig);
	size_t len = 0;
	ZT_ASSERT_STATUS(zhv_vcpu_save(orig.vcpu, NULL, 0, &len), ZHV_ERR_BUFFER_TOO_SMALL);
	ZT_ASSERT(len > ZHV_VCPU_BLOB_HEADER_SIZE && len <= ZHV_VCPU_BLOB_MAX);
	uint8_t *blob = malloc(ZHV_VCPU_BLOB_MAX);
	ZT_ASSERT(blob != NULL);
	ZT_ASSERT_OK(zhv_vcpu_save(orig.vcpu, blob, ZHV_VCPU_BLOB_MAX, &len));
	zhv_vcpu_blob_info_t info;
	ZT_ASSERT_OK(zhv_vcpu_blob_info(blob, len, &info));
	ZT_EXPECT_EQ(info.version, ZHV_VCPU_BLOB_VERSION);
	ZT_EXPECT_EQ(info.apic_id, 0);
	ZT_EXPECT_EQ(info.size, len);
	zhv_guest_clock_t clock;
	ZT_ASSERT_OK(zhv_guest_get_clock(orig.guest, &clock));
	ZT_EXPECT_GE(clock.ns, 300000000ull);
	uint8_t *ram = malloc(GUEST_MEM_SIZE);
	ZT_ASSERT(ram != NULL);
	memcpy(ram, orig.mem, GUEST_MEM_SIZE);
	/* The original goes on as if nothing happened. */
	struct compute_result got_orig = compute_finish(&orig);
	zt_case_destroy(&orig);

	/* A fresh guest and vCPU, its RAM replaced by the saved copy (with
	 * the XMM input cleared: XMM3 must come from the blob). */
	struct zt_case copy;
	compute_setup(&copy);
	memcpy(copy.mem, ram, GUEST_MEM_SIZE);
	memset(copy.mem + SNAP_XMM_IN, 0, 16);
	ZT_ASSERT_OK(zhv_vcpu_restore(copy.vcpu, blob, len));
	ZT_ASSERT_OK(zhv_guest_set_clock(copy.guest, &clock));
	zhv_guest_clock_t now;
	ZT_ASSERT_OK(zhv_guest_get_clock(copy.guest, &now));
	ZT_EXPECT_GE(now.ns, clock.ns);
	struct compute_result got = compute_finish(&copy);
	zt_case_destroy(&copy);

	ZT_EXPECT_EQ(got_orig.result, want.result);
	ZT_EXPECT_EQ(got.result, want.result);
	ZT_EXPECT_EQ(got.lstar, SNAP_LSTAR);
	ZT_EXPECT(memcmp(got.xmm, xmm_pattern, 16) == 0);
	expect_clock_sane(&want, "uninterrupted");
	expect_clock_sane(&got_orig, "original");
	expect_clock_sane(&got, "restored");
	ZT_EXPECT_EQ(got.t1, got_orig.t1); /* from the saved RAM */
	free(ram);
	free(blob);
}

static void dirty_setup(struct zt_case *tc);

/* Every kind of state a program can set comes back in a fresh vCPU of a
 * fresh guest: CR2 (SREGS), libzhv's pending-exception tracker and a
 * pending NMI (EVENTS), the LAPIC's TPR and timer registers, PAT and an
 * MTRR (MSRS), the XSAVE image. Nothing runs in between. */
static void state_kinds_round_trip(void)
{
	struct zt_case a;
	dirty_setup(&a);
	zhv_vcpu_sregs_t sr = zt_read_sregs(a.vcpu);
	sr.cr2 = 0xdeadbeef000ull;
	ZT_ASSERT_OK(zhv_vcpu_write_state(a.vcpu, ZHV_VCPU_SREGS, &sr, sizeof(sr)));
	zhv_vcpu_events_t ev;
	ZT_ASSERT_OK(zhv_vcpu_read_state(a.vcpu, ZHV_VCPU_EVENTS, &ev, sizeof(ev)));
	ev.tracker_pending = 1u << 6; /* #UD waits in libzhv */
	ev.nmi_pending = 1;
	ZT_ASSERT_OK(zhv_vcpu_write_state(a.vcpu, ZHV_VCPU_EVENTS, &ev, sizeof(ev)));
	zhv_vcpu_lapic_t la;
	ZT_ASSERT_OK(zhv_vcpu_read_state(a.vcpu, ZHV_VCPU_LAPIC, &la, sizeof(la)));
	uint32_t tpr = 0x20, lvt_timer = 0x20040, dcr = 0x3;
	memcpy(&la.regs[0x80], &tpr, 4);       /* TPR */
	memcpy(&la.regs[0x320], &lvt_timer, 4); /* LVT timer: masked, vector 0x40 */
	memcpy(&la.regs[0x3e0], &dcr, 4);       /* divide by 16 */
	ZT_ASSERT_OK(zhv_vcpu_write_state(a.vcpu, ZHV_VCPU_LAPIC, &la, sizeof(la)));
	zhv_vcpu_msrs_t *m = calloc(1, sizeof(*m));
	ZT_ASSERT(m != NULL);
	m->count = 2;
	m->entries[0].index = 0x277; /* PAT */
	m->entries[0].value = 0x0007040600070406ull;
	m->entries[1].index = 0x2ff; /* MTRRdefType: enabled, write-back */
	m->entries[1].value = 0xc06;
	ZT_ASSERT_OK(zhv_vcpu_write_state(a.vcpu, ZHV_VCPU_MSRS, m, sizeof(*m)));
	zhv_vcpu_fpu_t *fpu = calloc(1, sizeof(*fpu));
	ZT_ASSERT(fpu != NULL);
	ZT_ASSERT_OK(zhv_vcpu_read_state(a.vcpu, ZHV_VCPU_FPU, fpu, sizeof(*fpu)));
	memcpy(&fpu->xsave[160 + 16 * 5], xmm_pattern, 16); /* XMM5 in the legacy area */
	fpu->xsave[512] |= 0x2; /* XSTATE_BV.SSE: the XMM registers are not in init state */
	ZT_ASSERT_OK(zhv_vcpu_write_state(a.vcpu, ZHV_VCPU_FPU, fpu, sizeof(*fpu)));

	uint8_t *blob = malloc(ZHV_VCPU_BLOB_MAX);
	size_t len = 0;
	ZT_ASSERT(blob != NULL);
	ZT_ASSERT_OK(zhv_vcpu_save(a.vcpu, blob, ZHV_VCPU_BLOB_MAX, &len));
	zt_case_destroy(&a);

	struct zt_case b;
	dirty_setup(&b);
	ZT_ASSERT_OK(zhv_vcpu_restore(b.vcpu, blob, len));
	ZT_EXPECT_EQ(zt_read_sregs(b.vcpu).cr2, 0xdeadbeef000ull);
	ZT_EXPECT_EQ(zt_read_regs(b.vcpu).r12, R12_MAGIC);
	ZT_ASSERT_OK(zhv_vcpu_read_state(b.vcpu, ZHV_VCPU_EVENTS, &ev, sizeof(ev)));
	ZT_EXPECT_EQ(ev.tracker_pending, 1u << 6);
	ZT_EXPECT_EQ(ev.nmi_pending, 1);
	zhv_vcpu_lapic_t lb;
	ZT_ASSERT_OK(zhv_vcpu_read_state(b.vcpu, ZHV_VCPU_LAPIC, &lb, sizeof(lb)));
	ZT_EXPECT(memcmp(&lb.regs[0x80], &tpr, 4) == 0);
	ZT_EXPECT(memcmp(&lb.regs[0x320], &lvt_timer, 4) == 0);
	ZT_EXPECT(memcmp(&lb.regs[0x3e0], &dcr, 4) == 0);
	m->count = 2;
	m->entries[0].value = m->entries[1].value = 0;
	ZT_ASSERT_OK(zhv_vcpu_read_state(b.vcpu, ZHV_VCPU_MSRS, m, sizeof(*m)));
	ZT_EXPECT_EQ(m->entries[0].value, 0x0007040600070406ull);
	ZT_EXPECT_EQ(m->entries[1].value, 0xc06);
	memset(fpu, 0, sizeof(*fpu));
	ZT_ASSERT_OK(zhv_vcpu_read_state(b.vcpu, ZHV_VCPU_FPU, fpu, sizeof(*fpu)));
	ZT_EXPECT(memcmp(&fpu->xsave[160 + 16 * 5], xmm_pattern, 16) == 0);
	zt_case_destroy(&b);
	free(fpu);
	free(m);
	free(blob);
}

/* ---- bad blobs ----------------------------------------------------------- */

static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
	}
	return ~c;
}

/* Write a correct CRC into a blob (its field at offset 28 read as 0). */
static void fix_crc(uint8_t *b, size_t len)
{
	memset(b + 28, 0, 4);
	uint32_t c = crc32_ieee(b, len);
	memcpy(b + 28, &c, 4);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void dirty_setup(struct zt_case *tc)
{
	zt_setup_guest(tc, snap_dirty_start, snap_dirty_end);
	zt_guest_store64(tc, SNAP_HOSTCELL, HOSTCELL_SNAP);
	zhv_vcpu_regs_t r = zt_read_regs(tc->vcpu);
	r.r12 = R12_MAGIC;
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc->vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
}

struct other_thread_arg {
	zhv_vcpu_t *vcpu;
	const uint8_t *blob;
	size_t len;
	zhv_status_t save, restore;
};

static void *other_thread(void *p)
{
	struct other_thread_arg *a = p;
	uint8_t buf[64];
	size_t len = 0;
	a->save = zhv_vcpu_save(a->vcpu, buf, sizeof(buf), &len);
	a->restore = zhv_vcpu_restore(a->vcpu, a->blob, a->len);
	return NULL;
}

/* (c) Truncated, over-long, other-version, corrupted, malformed and
 * foreign blobs are refused with their status, and the vCPU is left as it
 * was: its registers read the same, and it runs on from there. */
static void bad_blobs_refused(void)
{
	struct zt_case tc;
	dirty_setup(&tc);
	size_t len = 0;
	uint8_t *good = malloc(ZHV_VCPU_BLOB_MAX);
	uint8_t *bad = malloc(ZHV_VCPU_BLOB_MAX + 64);
	ZT_ASSERT(good != NULL && bad != NULL);
	ZT_ASSERT_OK(zhv_vcpu_save(tc.vcpu, good, ZHV_VCPU_BLOB_MAX, &len));

	/* The vCPU as the bad blobs must leave it: R12 changed after the
	 * save, so a partial restore would show. */
	zhv_vcpu_regs_t r = zt_read_regs(tc.vcpu);
	r.r12 = 0x4242;
	ZT_ASSERT_OK(zhv_vcpu_write_state(tc.vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
	zhv_vcpu_regs_t before = zt_read_regs(tc.vcpu);
	zhv_vcpu_sregs_t sbefore = zt_read_sregs(tc.vcpu);

	struct {
		const char *what;
		size_t len;
		zhv_status_t want;
		void (*mutate)(uint8_t *b, size_t len);
	} cases[] = {
		{"empty", 0, ZHV_ERR_INVALID_ARGS, NULL},
		{"header only, cut", ZHV_VCPU_BLOB_HEADER_SIZE - 1, ZHV_ERR_INVALID_ARGS, NULL},
		{"truncated by 8", len - 8, ZHV_ERR_INVALID_ARGS, NULL},
		{"truncated by 1", len - 1, ZHV_ERR_INVALID_ARGS, NULL},
		{"8 bytes too long", len + 8, ZHV_ERR_INVALID_ARGS, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(bad, 0, ZHV_VCPU_BLOB_MAX + 64);
		memcpy(bad, good, len);
		zhv_status_t st = zhv_vcpu_restore(tc.vcpu, bad, cases[i].len);
		if (!ZT_EXPECT_STATUS(st, cases[i].want))
			zt_diag("blob: %s", cases[i].what);
	}

	/* Other versions: refused before anything else is looked at. */
	memcpy(bad, good, len);
	put32(bad + 8, ZHV_VCPU_BLOB_VERSION + 1);
	ZT_EXPECT_STATUS(zhv_vcpu_restore(tc.vcpu, bad, len), ZHV_ERR_NOT_SUPPORTED);
	put32(bad + 8, 0);
	fix_crc(bad, len);
	ZT_EXPECT_STATUS(zhv_vcpu_restore(tc.vcpu, bad, len), ZHV_ERR_NOT_SUPPORTED);

	/* Bad magic. */
	memcpy(bad, good, len);
	bad[0] ^= 0x20;
	ZT_EXPECT_STATUS(zhv_vcpu_restore(tc.vcpu, bad, len), ZHV_ERR_INVALID_ARGS);

	/* Corrupted: one bit anywhere after the header (here: the middle, in
	 * the register state), or in the header's model. */
	memcpy(bad, good, len);
	bad[len / 2] ^= 0x01;
	ZT_EXPECT_STATUS(zhv_vcpu_restore(tc.vcpu, bad, len), ZHV_ERR_IO_DATA_INTEGRITY);
	memcpy(bad, good, len);
	bad[ZHV_VCPU_BLOB_HEADER_SIZE + 8] ^= 0x80; /* RAX of the REGS section */
	ZT_EXPECT_STATUS(zhv_vcpu_restore(tc.vcpu, bad, len), ZHV_ERR_IO_DATA_INTEGRITY);

	/* A correct CRC over a bad layout: the first section's size. */
	memcpy(bad, good, len);
	uint32_t sz;
	memcpy(&sz, bad + ZHV_VCPU_BLOB_HEADER_SIZE + 4, 4);
	put32(bad + ZHV_VCPU_BLOB_HEADER_SIZE + 4, sz - 8);
	fix_crc(bad, len);
	ZT_EXPECT_STATUS(zhv_vcpu_restore(tc.vcpu, bad, len), ZHV_ERR_INVALID_ARGS);

	/* Another vCPU: APIC ID 3; another vCPU model. */
	memcpy(bad, good, len);
	put32(bad + 40, 3);
	fix_crc(bad, len);
	ZT_EXPECT_STATUS(zhv_vcpu_restore(tc.vcpu, bad, len), ZHV_ERR_WRONG_TYPE);
	memcpy(bad, good, len);
	bad[32] ^= 0x01;
	fix_crc(bad, len);
	ZT_EXPECT_STATUS(zhv_vcpu_restore(tc.vcpu, bad, len), ZHV_ERR_WRONG_TYPE);

	/* Another thread: refused before the blob is looked at. */
	struct other_thread_arg a = {.vcpu = tc.vcpu, .blob = good, .len = len};
	zt_thread_join(zt_thread_start(other_thread, &a));
	ZT_EXPECT_STATUS(a.save, ZHV_ERR_BAD_STATE);
	ZT_EXPECT_STATUS(a.restore, ZHV_ERR_BAD_STATE);

	/* Nothing changed. */
	zhv_vcpu_regs_t after = zt_read_regs(tc.vcpu);
	zhv_vcpu_sregs_t safter = zt_read_sregs(tc.vcpu);
	ZT_EXPECT(memcmp(&before, &after, sizeof(after)) == 0);
	ZT_EXPECT(memcmp(&sbefore, &safter, sizeof(safter)) == 0);
	ZT_EXPECT_EQ(after.r12, 0x4242);

	/* The good blob still restores, and the guest sees R12 from it. */
	ZT_ASSERT_OK(zhv_vcpu_restore(tc.vcpu, good, len));
	ZT_EXPECT_EQ(zt_read_regs(tc.vcpu).r12, R12_MAGIC);
	zt_enter_and_clean_exit(&tc);
	ZT_EXPECT_EQ(zt_guest_load64(&tc, SNAP_R12_OUT), R12_MAGIC);
	zt_case_destroy(&tc);
	free(good);
	free(bad);
}

/* ---- reset-to-snapshot --------------------------------------------------- */

/* One run of snap_dirty after a reset: it must see the snapshot's memory
 * and registers. Then the host writes a cell itself (and declares it). */
static bool dirty_run(struct zt_case *tc, zhv_snapshot_t *snap, unsigned i)
{
	zt_enter_and_clean_exit(tc);
	uint64_t counter = zt_guest_load64(tc, SNAP_COUNTER);
	uint64_t page2 = zt_guest_load64(tc, SNAP_PAGE2);
	uint64_t r12 = zt_guest_load64(tc, SNAP_R12_OUT);
	uint64_t host = zt_guest_load64(tc, SNAP_HOST_OUT);
	bool ok = counter == 1 && page2 == 1 && r12 == R12_MAGIC && host == HOSTCELL_SNAP;
	if (!ok) {
		zt_diag("run %u: counter %llu page2 %llu r12 %#llx hostcell %#llx", i,
		        (unsigned long long)counter, (unsigned long long)page2,
		        (unsigned long long)r12, (unsigned long long)host);
		ZT_EXPECT_EQ(counter, 1);
		ZT_EXPECT_EQ(page2, 1);
		ZT_EXPECT_EQ(r12, R12_MAGIC);
		ZT_EXPECT_EQ(host, HOSTCELL_SNAP);
	}
	zt_guest_store64(tc, SNAP_HOSTCELL, HOSTCELL_LATER);
	ZT_ASSERT_OK(zhv_snapshot_mark_dirty(snap, SNAP_HOSTCELL, 8));
	ZT_ASSERT_OK(zhv_snapshot_reset(snap));
	ZT_ASSERT_OK(zhv_snapshot_reset_vcpu(snap, tc->vcpu));
	return ok;
}

/* (b) The guest changes memory (two pages) and a register; after each
 * reset it sees the snapshot's memory and registers again, repeatedly. */
static void reset_to_snapshot(void)
{
	struct zt_case tc;
	dirty_setup(&tc);
	zhv_snapshot_t *snap = NULL;
	ZT_ASSERT_OK(zhv_snapshot_create(tc.guest, &snap));
	zhv_snapshot_t *second = NULL;
	ZT_EXPECT_STATUS(zhv_snapshot_create(tc.guest, &second), ZHV_ERR_ALREADY_EXISTS);
	/* Not added yet: nothing to reset the vCPU to. */
	ZT_EXPECT_STATUS(zhv_snapshot_reset_vcpu(snap, tc.vcpu), ZHV_ERR_NOT_FOUND);
	ZT_ASSERT_OK(zhv_snapshot_add_vcpu(snap, tc.vcpu));
	ZT_EXPECT_STATUS(zhv_snapshot_mark_dirty(snap, GUEST_MEM_SIZE, 8), ZHV_ERR_NOT_FOUND);
	for (unsigned i = 0; i < 50; i++)
		if (!dirty_run(&tc, snap, i))
			break;

	/* A changed memory map: reset refuses and copies nothing. */
	ZT_ASSERT_OK(zhv_guest_unmap(tc.guest, 0xE00000, ZHV_PAGE_SIZE));
	zt_enter_and_clean_exit(&tc);
	ZT_EXPECT_STATUS(zhv_snapshot_reset(snap), ZHV_ERR_BAD_STATE);
	ZT_EXPECT_EQ(zt_guest_load64(&tc, SNAP_COUNTER), 1);
	zhv_snapshot_destroy(snap);
	/* Without a snapshot the guest just runs on. */
	ZT_ASSERT_OK(zhv_snapshot_create(tc.guest, &snap));
	zhv_snapshot_destroy(snap);
	zt_case_destroy(&tc);
}

static unsigned count_fds(void)
{
	unsigned n = 0;
	DIR *d = opendir("/proc/self/fd");
	ZT_ASSERT(d != NULL);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Resident memory in KiB: anonymous, file-backed and shared (as
 * /proc/self/status counts them). */
struct rss {
	uint64_t anon, file, shmem;
};

static struct rss rss_now(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	ZT_ASSERT(f != NULL);
	struct rss r = {0, 0, 0};
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		unsigned long v;
		if (sscanf(line, "RssAnon: %lu", &v) == 1)
			r.anon = v;
		else if (sscanf(line, "RssFile: %lu", &v) == 1)
			r.file = v;
		else if (sscanf(line, "RssShmem: %lu", &v) == 1)
			r.shmem = v;
	}
	fclose(f);
	return r;
}

/* (d) 10^4 resets (ZHV_SNAPSHOT_LOOPS overrides the count) leave no
 * growth in file descriptors or resident memory. */
static void reset_loop_no_growth(void)
{
	unsigned loops = 10000;
	const char *env = getenv("ZHV_SNAPSHOT_LOOPS");
	if (env && atoi(env) > 0)
		loops = (unsigned)atoi(env);
	/* No transparent huge pages: khugepaged folding a partly used 2 MiB
	 * range of guest RAM into one huge page adds up to 2 MiB of RSS at a
	 * random moment, which is not growth of ours. */
	ZT_ASSERT(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0);
	struct zt_case tc;
	dirty_setup(&tc);
	zhv_snapshot_t *snap = NULL;
	ZT_ASSERT_OK(zhv_snapshot_create(tc.guest, &snap));
	ZT_ASSERT_OK(zhv_snapshot_add_vcpu(snap, tc.vcpu));
	/* Warm up (first touches of pages and caches), then measure. */
	for (unsigned i = 0; i < 100; i++)
		ZT_ASSERT(dirty_run(&tc, snap, i));
	unsigned fds0 = count_fds();
	struct rss rss0 = rss_now(), prev = rss0;
	uint64_t t0 = zt_now_ms();
	for (unsigned part = 0; part < 5; part++) {
		for (unsigned i = part * loops / 5; i < (part + 1) * loops / 5; i++)
			ZT_ASSERT(dirty_run(&tc, snap, i));
		struct rss r = rss_now();
		zt_diag("after %u resets: RSS anon %llu file %llu shmem %llu KiB", (part + 1) * loops / 5,
		        (unsigned long long)r.anon, (unsigned long long)r.file,
		        (unsigned long long)r.shmem);
		prev = r;
	}
	uint64_t ms = zt_now_ms() - t0;
	unsigned fds1 = count_fds();
	zt_diag("%u resets in %llu ms; fds %u -> %u; RSS anon %llu -> %llu KiB", loops,
	        (unsigned long long)ms, fds0, fds1, (unsigned long long)rss0.anon,
	        (unsigned long long)prev.anon);
	ZT_EXPECT_EQ(fds1, fds0);
	/* No growth of the anonymous memory libzhv allocates from: a leak of
	 * even 64 bytes per reset would be 640 KiB. */
	ZT_EXPECT_LE(prev.anon, rss0.anon + 256);
	ZT_EXPECT_LE(prev.shmem, rss0.shmem + 256);
	zhv_snapshot_destroy(snap);
	zt_case_destroy(&tc);
}

const struct zt_test zt_snapshot_tests[] = {
	{"snapshot_save_restore_mid_computation", save_restore_mid_computation},
	{"snapshot_state_kinds_round_trip", state_kinds_round_trip},
	{"snapshot_bad_blobs_refused", bad_blobs_refused},
	{"snapshot_reset_to_snapshot", reset_to_snapshot},
	{"snapshot_reset_loop_no_growth", reset_loop_no_growth},
	{NULL, NULL},
};
