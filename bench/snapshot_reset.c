/* snapshot_reset.c: libzhv's reset-to-snapshot against creating the same
 * guest from scratch (issue 9, benchmark 5(b)).
 *
 * Guest: 64 MiB of RAM at GPA 0, identity page tables (2 MiB pages) at GPA
 * 0, code at 0x10000 (64-bit CPL0):
 *     loop: movb %cl, (%rdi); add $0x1000, %rdi; dec %ecx; jnz loop
 *           movb $1, 0x4000000        (a MEM trap just above RAM: the exit)
 * with RDI = 1 MiB and RCX = K: it dirties K pages, then exits.
 *
 * reset  (timed): zhv_snapshot_reset + zhv_snapshot_reset_vcpu + enter to
 *        the MEM packet, on a guest snapshotted at its entry point.
 * fresh  (timed): mmap 64 MiB, write page tables and code, create the
 *        guest, map the RAM, set the trap, create the vCPU, set RDI/RCX,
 *        enter to the MEM packet. (Destroying it is not timed.)
 * cow    (diagnostic, not libzhv's method): the guest's RAM is a
 *        MAP_PRIVATE mapping of a memfd holding the snapshot image; a reset
 *        is madvise(MADV_DONTNEED) over all of it (every private page goes,
 *        and with it KVM's mappings of every page the guest touched) plus
 *        zhv_vcpu_restore; timed in the same three steps as reset.
 * Then the throughput: one thread per CPU, each with its own snapshotted
 * guest (K = 16), resetting and running as fast as it can for a while.
 *
 * Prints per K one `RESULT snapshot_reset k=K reset_ns=N fresh_ns=N` line
 * (medians), and `RESULT snapshot_reset_rate k=16 threads=T per_s=N`.
 * Usage: snapshot_reset [iterations per K] [throughput seconds]
 * (default 300 and 2). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stats.h"
#include "zhv.h"

#define RAM_SIZE (64ull << 20)
#define CODE_GPA 0x10000ull
#define DIRTY_GPA 0x100000ull
#define TRAP_GPA 0x4000000ull

static const uint8_t guest_code[] = {
	0x88, 0x0f,                               /* movb %cl, (%rdi) */
	0x48, 0x81, 0xc7, 0x00, 0x10, 0x00, 0x00, /* add $0x1000, %rdi */
	0xff, 0xc9,                               /* dec %ecx */
	0x75, 0xf3,                               /* jnz loop */
	0xc6, 0x04, 0x25, 0x00, 0x00, 0x00, 0x04, 0x01, /* movb $1, 0x4000000 */
	0xeb, 0xfe,                               /* jmp . */
};

static void die(const char *what, zhv_status_t st)
{
	fprintf(stderr, "snapshot_reset: %s: %s\n", what, zhv_status_string(st));
	exit(1);
}
#define CHECK(call)                                \
	do {                                       \
		zhv_status_t st_ = (call);         \
		if (st_ != ZHV_OK)                 \
			die(#call, st_);           \
	} while (0)

/* Page tables (PML4 0, PDPT 0x1000, PD 0x2000: 2 MiB pages over 128 MiB)
 * and the code. */
static void load_image(uint8_t *ram)
{
	uint64_t *pml4 = (uint64_t *)ram, *pdpt = (uint64_t *)(ram + 0x1000);
	uint64_t *pd = (uint64_t *)(ram + 0x2000);
	pml4[0] = 0x1000 | 0x7;
	pdpt[0] = 0x2000 | 0x7;
	for (uint64_t i = 0; i < 64; i++)
		pd[i] = (i << 21) | 0x87;
	memcpy(ram + CODE_GPA, guest_code, sizeof(guest_code));
}

static void *map_ram(void)
{
	void *p = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

struct bguest {
	zhv_guest_t *guest;
	zhv_vcpu_t *vcpu;
	uint8_t *ram;
};

/* Create, map, trap, vCPU with RDI/RCX: the guest at its entry point. */
static void guest_build(struct bguest *g, uint8_t *ram, unsigned k)
{
	g->ram = ram;
	CHECK(zhv_guest_create(NULL, &g->guest));
	CHECK(zhv_guest_map(g->guest, 0, ram, RAM_SIZE, ZHV_MAP_RWX));
	CHECK(zhv_guest_set_trap(g->guest, ZHV_TRAP_MEM, TRAP_GPA, ZHV_PAGE_SIZE, NULL, 1));
	CHECK(zhv_vcpu_create(g->guest, 0, CODE_GPA, &g->vcpu));
	zhv_vcpu_regs_t r;
	CHECK(zhv_vcpu_read_state(g->vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
	r.rdi = DIRTY_GPA;
	r.rcx = k;
	CHECK(zhv_vcpu_write_state(g->vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
}

static void guest_run(struct bguest *g)
{
	zhv_packet_t p;
	CHECK(zhv_vcpu_enter(g->vcpu, &p));
	if (p.type != ZHV_PKT_TYPE_GUEST_MEM || p.guest_mem.addr != TRAP_GPA) {
		fprintf(stderr, "snapshot_reset: unexpected packet type %#x\n", p.type);
		exit(1);
	}
}

static void guest_free(struct bguest *g)
{
	zhv_vcpu_destroy(g->vcpu);
	zhv_guest_destroy(g->guest);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Check the guest dirtied exactly its K pages' first bytes (value K - i). */
static void check_dirtied(const uint8_t *ram, unsigned k)
{
	for (unsigned i = 0; i < k; i++)
		if (ram[DIRTY_GPA + (uint64_t)i * ZHV_PAGE_SIZE] != (uint8_t)(k - i)) {
			fprintf(stderr, "snapshot_reset: page %u not written\n", i);
			exit(1);
		}
}

struct kresult {
	double reset, reset_mem, reset_vcpu, reset_run;
	double fresh, cow, cow_mem, cow_vcpu, cow_run;
};

static void bench_k(unsigned k, int iters, struct kresult *res)
{
	double *t = calloc((size_t)iters, sizeof(double));
	double *tm = calloc((size_t)iters, sizeof(double));
	double *tv = calloc((size_t)iters, sizeof(double));
	double *tr = calloc((size_t)iters, sizeof(double));
	if (!t || !tm || !tv || !tr)
		exit(1);

	/* reset-to-snapshot (libzhv) */
	struct bguest g;
	uint8_t *ram = map_ram();
	load_image(ram);
	guest_build(&g, ram, k);
	zhv_snapshot_t *snap;
	CHECK(zhv_snapshot_create(g.guest, &snap));
	CHECK(zhv_snapshot_add_vcpu(snap, g.vcpu));
	guest_run(&g); /* warm-up */
	for (int i = -5; i < iters; i++) {
		int64_t t0 = bench_now_ns();
		CHECK(zhv_snapshot_reset(snap));
		int64_t t1 = bench_now_ns();
		CHECK(zhv_snapshot_reset_vcpu(snap, g.vcpu));
		int64_t t2 = bench_now_ns();
		if (ram[DIRTY_GPA] != 0) {
			fprintf(stderr, "snapshot_reset: reset left a dirtied page\n");
			exit(1);
		}
		guest_run(&g);
		int64_t t3 = bench_now_ns();
		check_dirtied(ram, k);
		if (i >= 0) {
			t[i] = (double)(t3 - t0);
			tm[i] = (double)(t1 - t0);
			tv[i] = (double)(t2 - t1);
			tr[i] = (double)(t3 - t2);
		}
	}
	res->reset = median(t, (size_t)iters);
	res->reset_mem = median(tm, (size_t)iters);
	res->reset_vcpu = median(tv, (size_t)iters);
	res->reset_run = median(tr, (size_t)iters);
	zhv_snapshot_destroy(snap);
	guest_free(&g);
	munmap(ram, RAM_SIZE);

	/* fresh guest */
	int fresh_iters = iters < 100 ? iters : 100;
	for (int i = -2; i < fresh_iters; i++) {
		int64_t t0 = bench_now_ns();
		uint8_t *fr = map_ram();
		load_image(fr);
		guest_build(&g, fr, k);
		guest_run(&g);
		int64_t t1 = bench_now_ns();
		check_dirtied(fr, k);
		guest_free(&g);
		munmap(fr, RAM_SIZE);
		if (i >= 0)
			t[i] = (double)(t1 - t0);
	}
	res->fresh = median(t, (size_t)fresh_iters);

	/* copy-on-write over a memfd (diagnostic) */
	int fd = memfd_create("zhv-bench-snapshot", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)RAM_SIZE) != 0) {
		perror("memfd");
		exit(1);
	}
	uint8_t *image = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	uint8_t *cow = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (image == MAP_FAILED || cow == MAP_FAILED) {
		perror("mmap memfd");
		exit(1);
	}
	load_image(image);
	guest_build(&g, cow, k);
	uint8_t *blob = malloc(ZHV_VCPU_BLOB_MAX);
	size_t blen = 0;
	if (!blob)
		exit(1);
	CHECK(zhv_vcpu_save(g.vcpu, blob, ZHV_VCPU_BLOB_MAX, &blen));
	for (int i = -5; i < iters; i++) {
		int64_t t0 = bench_now_ns();
		if (madvise(cow, RAM_SIZE, MADV_DONTNEED) != 0) {
			perror("madvise");
			exit(1);
		}
		int64_t t1 = bench_now_ns();
		CHECK(zhv_vcpu_restore(g.vcpu, blob, blen));
		int64_t t2 = bench_now_ns();
		guest_run(&g);
		int64_t t3 = bench_now_ns();
		check_dirtied(cow, k);
		if (i >= 0) {
			t[i] = (double)(t3 - t0);
			tm[i] = (double)(t1 - t0);
			tv[i] = (double)(t2 - t1);
			tr[i] = (double)(t3 - t2);
		}
	}
	res->cow = median(t, (size_t)iters);
	res->cow_mem = median(tm, (size_t)iters);
	res->cow_vcpu = median(tv, (size_t)iters);
	res->cow_run = median(tr, (size_t)iters);
	guest_free(&g);
	free(blob);
	munmap(cow, RAM_SIZE);
	munmap(image, RAM_SIZE);
	close(fd);
	free(t);
	free(tm);
	free(tv);
	free(tr);
}

/* ---- throughput --------------------------------------------------------- */

static _Atomic int stop;

struct worker {
	pthread_t thread;
	int cpu;
	unsigned long resets;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	bench_pin_self(w->cpu);
	struct bguest g;
	uint8_t *ram = map_ram();
	load_image(ram);
	guest_build(&g, ram, 16);
	zhv_snapshot_t *snap;
	CHECK(zhv_snapshot_create(g.guest, &snap));
	CHECK(zhv_snapshot_add_vcpu(snap, g.vcpu));
	while (!stop) {
		guest_run(&g);
		CHECK(zhv_snapshot_reset(snap));
		CHECK(zhv_snapshot_reset_vcpu(snap, g.vcpu));
		w->resets++;
	}
	zhv_snapshot_destroy(snap);
	guest_free(&g);
	munmap(ram, RAM_SIZE);
	return NULL;
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 300;
	double secs = argc > 2 ? atof(argv[2]) : 2.0;
	if (iters < 1 || secs <= 0) {
		fprintf(stderr, "usage: snapshot_reset [iterations per K] [seconds]\n");
		return 2;
	}
	bench_pin_self(0);
	printf("snapshot_reset: 64 MiB guest, %d iterations per K (fresh: up to 100), "
	       "load %.2f\n", iters, bench_loadavg());
	printf("%5s | %-34s | %10s | %-34s | %6s\n", "K", "reset (mem + vcpu + run) us",
	       "fresh us", "cow diag (mem + vcpu + run) us", "fresh/reset");
	static const unsigned ks[] = {1, 16, 256};
	struct kresult r[3];
	for (int i = 0; i < 3; i++) {
		bench_k(ks[i], iters, &r[i]);
		printf("%5u | %7.1f (%6.1f + %6.1f + %7.1f) | %10.1f | %7.1f (%6.1f + %6.1f + %7.1f) | "
		       "%5.1fx\n",
		       ks[i], r[i].reset / 1e3, r[i].reset_mem / 1e3, r[i].reset_vcpu / 1e3,
		       r[i].reset_run / 1e3, r[i].fresh / 1e3, r[i].cow / 1e3, r[i].cow_mem / 1e3,
		       r[i].cow_vcpu / 1e3, r[i].cow_run / 1e3, r[i].fresh / r[i].reset);
	}
	for (int i = 0; i < 3; i++)
		printf("RESULT snapshot_reset k=%u reset_ns=%.0f fresh_ns=%.0f cow_ns=%.0f\n", ks[i],
		       r[i].reset, r[i].fresh, r[i].cow);

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	struct worker *w = calloc((size_t)ncpu, sizeof(*w));
	if (!w)
		return 1;
	for (long i = 0; i < ncpu; i++) {
		w[i].cpu = (int)i;
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0)
			return 1;
	}
	usleep((useconds_t)(secs * 1e6));
	stop = 1;
	unsigned long total = 0;
	for (long i = 0; i < ncpu; i++) {
		pthread_join(w[i].thread, NULL);
		total += w[i].resets;
	}
	printf("RESULT snapshot_reset_rate k=16 threads=%ld per_s=%.0f\n", ncpu,
	       (double)total / secs);
	free(w);
	return 0;
}
