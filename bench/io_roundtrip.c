/* io_roundtrip.c: cost of one IO-trap round trip through zhv_vcpu_enter()
 * against a raw KVM_RUN loop on the same guest code, in the same process.
 *
 * Guest (64-bit, CPL0, at BENCH_CODE_GPA, identical on every side):
 *     1: inc %eax
 *        out %al, $0x10
 *        jmp 1b
 * Every `out` exits to user space; the host checks the counter byte and
 * re-enters (for an OUT there is nothing else to answer).
 *
 * Variants, run in rotating order batch after batch so that machine load
 * hits them alike:
 *   libzhv        zhv_vcpu_enter() with an IO trap on port 0x10
 *   raw           own minimal KVM VM: KVM_CREATE_VM, one memslot, vCPU,
 *                 SET_CPUID2 (supported table), the same long-mode sregs
 *                 and XCR0 as libzhv's BSP (raw_kvm.c); KVM_EXIT_IO
 *                 handled inline
 *   raw-on-zhv    (diagnostic) the raw KVM_RUN loop on libzhv's own vCPU
 *                 fd (found in /proc/self/fd): KVM's cost with libzhv's VM
 *                 configuration (split irqchip, in-kernel LAPIC, MSR
 *                 exits), without libzhv's user-space code
 *   raw+split     (diagnostic) the raw VM with KVM_CAP_SPLIT_IRQCHIP too
 *
 * Each batch is (count) exits timed as a whole with CLOCK_MONOTONIC; the
 * per-exit time is batch time / count; we report the median over batches.
 *
 * A second, smaller part measures the MEM-trap round trip the same way
 * (guest `1: inc %eax; mov %al, 0x200000; jmp 1b`, a MEM trap on the page
 * at 0x200000 against a raw KVM_EXIT_MMIO loop); it has no target and is
 * reported as `RESULT mem_roundtrip`. BENCH_MEM_COUNT sets its exits per
 * batch (default count / 4; 0 skips it).
 *
 * Usage: io_roundtrip [batches [count]]  (default 20 x 2000). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "raw_kvm.h"
#include "stats.h"
#include "vcpu_fd.h"
#include "zhv.h"

#define PORT 0x10
#define TARGET 1.05

static const uint8_t io_code[] = {
	0xff, 0xc0, /* 1: inc %eax */
	0xe6, PORT, /* out %al, $PORT */
	0xeb, 0xfa, /* jmp 1b */
};

static const uint8_t mem_code[] = {
	0xff, 0xc0,                               /* 1: inc %eax */
	0x88, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00, /* mov %al, 0x200000 */
	0xeb, 0xf5,                               /* jmp 1b */
};

enum mode { MODE_IO, MODE_MEM };
enum kind { K_ZHV, K_RAW, K_ZFD };
enum extra { X_NONE, X_REG_IOCTLS, X_SYNC_REGS };

/* Variant 0 is libzhv and variant 1 the raw baseline in both modes; 2 and 3
 * are diagnostics. */
#define NVAR 4
#define V_ZHV 0
#define V_RAW 1
static const struct variant {
	const char *name, *key; /* key: its field in the RESULT line */
	enum kind kind;
	bool split;        /* raw VM with KVM_CAP_SPLIT_IRQCHIP */
	enum extra extra;  /* what the raw loop does besides KVM_RUN */
} variants[2][NVAR] = {
	[MODE_IO] = {
		{"libzhv", "zhv", K_ZHV, false, X_NONE},
		{"raw KVM", "raw", K_RAW, false, X_NONE},
		{"raw-on-zhv (diag)", "raw_on_zhv", K_ZFD, false, X_NONE},
		{"raw+split (diag)", "raw_split", K_RAW, true, X_NONE},
	},
	[MODE_MEM] = {
		{"libzhv", "zhv", K_ZHV, false, X_NONE},
		{"raw KVM", "raw", K_RAW, false, X_NONE},
		/* what libzhv's MEM packet costs in ioctls, and the cure */
		{"raw+GET_(S)REGS (diag)", "raw_getregs", K_RAW, false, X_REG_IOCTLS},
		{"raw+sync_regs (diag)", "raw_syncregs", K_RAW, false, X_SYNC_REGS},
	},
};

struct side {
	enum mode mode;
	const struct variant *var;
	zhv_guest_t *guest;
	zhv_vcpu_t *vcpu;
	int zfd; /* libzhv's vCPU seen as a raw fd */
	struct kvm_run *zrun;
	size_t zrun_size;
	struct raw_vm raw[NVAR]; /* the K_RAW variants' own VMs */
	uint8_t last[NVAR];      /* last counter byte seen per guest */
	uint8_t *ram[NVAR];
	volatile uint64_t sink;  /* keeps the diagnostic register reads */
};

static void die(const char *what, const char *why)
{
	fprintf(stderr, "io_roundtrip: %s: %s\n", what, why);
	exit(1);
}

static void check_counter(struct side *s, int var, uint8_t got)
{
	/* raw-on-zhv runs libzhv's guest: same counter */
	int slot = s->var[var].kind == K_ZFD ? V_ZHV : var;
	uint8_t want = (uint8_t)(s->last[slot] + 1);
	if (got != want) {
		fprintf(stderr, "io_roundtrip: %s: counter %u, expected %u\n", s->var[var].name,
		        got, want);
		exit(1);
	}
	s->last[slot] = got;
}

static void run_zhv(struct side *s, long count)
{
	for (long i = 0; i < count; i++) {
		zhv_packet_t pkt;
		zhv_status_t st = zhv_vcpu_enter(s->vcpu, &pkt);
		if (st != ZHV_OK)
			die("zhv_vcpu_enter", zhv_status_string(st));
		if (s->mode == MODE_IO) {
			if (pkt.type != ZHV_PKT_TYPE_GUEST_IO || pkt.guest_io.port != PORT ||
			    pkt.guest_io.input)
				die("zhv_vcpu_enter", "unexpected packet");
			check_counter(s, V_ZHV, pkt.guest_io.u8);
		} else {
			if (pkt.type != ZHV_PKT_TYPE_GUEST_MEM ||
			    pkt.guest_mem.addr != BENCH_TRAP_GPA || !pkt.guest_mem.write)
				die("zhv_vcpu_enter", "unexpected packet");
			check_counter(s, V_ZHV, (uint8_t)pkt.guest_mem.data);
		}
	}
}

static void run_raw_fd(struct side *s, int var, int fd, struct kvm_run *run, long count)
{
	enum extra extra = s->var[var].extra;
	run->kvm_valid_regs = extra == X_SYNC_REGS ? KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS : 0;
	for (long i = 0; i < count; i++) {
		if (ioctl(fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR) {
				i--;
				continue;
			}
			die("KVM_RUN", strerror(errno));
		}
		if (s->mode == MODE_IO) {
			if (run->exit_reason != KVM_EXIT_IO || run->io.port != PORT ||
			    run->io.direction != KVM_EXIT_IO_OUT)
				die("KVM_RUN", raw_exit_name(run->exit_reason));
			check_counter(s, var, *((uint8_t *)run + run->io.data_offset));
		} else {
			if (run->exit_reason != KVM_EXIT_MMIO ||
			    run->mmio.phys_addr != BENCH_TRAP_GPA || !run->mmio.is_write)
				die("KVM_RUN", raw_exit_name(run->exit_reason));
			check_counter(s, var, run->mmio.data[0]);
		}
		if (extra == X_REG_IOCTLS) {
			/* libzhv's insn_ctx_load() for every MEM packet */
			struct kvm_regs r;
			struct kvm_sregs sr;
			if (ioctl(fd, KVM_GET_REGS, &r) < 0 || ioctl(fd, KVM_GET_SREGS, &sr) < 0)
				die("KVM_GET_REGS/SREGS", strerror(errno));
			s->sink += r.rip + sr.cr3;
		} else if (extra == X_SYNC_REGS) {
			/* the same data, filled in by KVM at the exit */
			s->sink += run->s.regs.regs.rip + run->s.regs.sregs.cr3;
		}
	}
}

static void run_variant(struct side *s, int var, long count)
{
	switch (s->var[var].kind) {
	case K_ZHV: run_zhv(s, count); break;
	case K_RAW: run_raw_fd(s, var, s->raw[var].vcpu_fd, s->raw[var].run, count); break;
	case K_ZFD: run_raw_fd(s, var, s->zfd, s->zrun, count); break;
	}
}

static void setup(struct side *s, enum mode mode)
{
	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->var = variants[mode];
	const uint8_t *code = mode == MODE_IO ? io_code : mem_code;
	size_t len = mode == MODE_IO ? sizeof(io_code) : sizeof(mem_code);
	for (int i = 0; i < NVAR; i++)
		s->ram[i] = bench_guest_ram(code, len);

	zhv_status_t st = zhv_guest_create(NULL, &s->guest);
	if (st != ZHV_OK)
		die("zhv_guest_create", zhv_status_string(st));
	if ((st = zhv_guest_map(s->guest, 0, s->ram[0], BENCH_RAM_SIZE, ZHV_MAP_RWX)) != ZHV_OK)
		die("zhv_guest_map", zhv_status_string(st));
	if (mode == MODE_IO)
		st = zhv_guest_set_trap(s->guest, ZHV_TRAP_IO, PORT, 1, NULL, 1);
	else
		st = zhv_guest_set_trap(s->guest, ZHV_TRAP_MEM, BENCH_TRAP_GPA, 0x1000, NULL, 1);
	if (st != ZHV_OK)
		die("zhv_guest_set_trap", zhv_status_string(st));
	if ((st = zhv_vcpu_create(s->guest, 0, BENCH_CODE_GPA, &s->vcpu)) != ZHV_OK)
		die("zhv_vcpu_create", zhv_status_string(st));
	/* Only libzhv's vCPU exists at this point: find its fd. */
	s->zfd = bench_find_vcpu_fd();
	s->zrun_size = bench_vcpu_mmap_size();
	if (s->zfd < 0 || !s->zrun_size)
		die("setup", "cannot find libzhv's vCPU fd in /proc/self/fd");
	s->zrun = mmap(NULL, s->zrun_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->zfd, 0);
	if (s->zrun == MAP_FAILED)
		die("mmap libzhv's kvm_run", strerror(errno));

	for (int v = 0; v < NVAR; v++) {
		struct raw_vm *r = &s->raw[v];
		r->kvm_fd = r->vm_fd = r->vcpu_fd = -1;
		if (s->var[v].kind != K_RAW)
			continue;
		if (raw_vm_open(r) || (s->var[v].split && raw_vm_split_irqchip(r)) ||
		    raw_vm_map(r, 0, 0, s->ram[v], BENCH_RAM_SIZE) || raw_vcpu_create(r) ||
		    raw_vcpu_cpuid(r) || raw_vcpu_long_mode(r, BENCH_CODE_GPA, true))
			exit(1);
	}
}

static void teardown(struct side *s)
{
	munmap(s->zrun, s->zrun_size);
	zhv_vcpu_destroy(s->vcpu);
	zhv_guest_destroy(s->guest);
	for (int v = 0; v < NVAR; v++) {
		if (s->var[v].kind == K_RAW)
			raw_vm_close(&s->raw[v]);
		munmap(s->ram[v], BENCH_RAM_SIZE);
	}
}

/* Run (batches) x (count) exits of every variant, rotating the order;
 * fill s_out[] with per-exit statistics and *pr with the per-batch
 * libzhv/raw ratios. Returns the wall time in seconds. */
static double measure(struct side *s, long batches, long count, bench_stats_t *s_out,
                      bench_stats_t *pr)
{
	for (int v = 0; v < NVAR; v++) /* warm-up: shadow pages, caches */
		run_variant(s, v, count / 4 + 10);
	double *samples[NVAR];
	for (int v = 0; v < NVAR; v++)
		samples[v] = calloc((size_t)batches, sizeof(double));
	double *pair = calloc((size_t)batches, sizeof(double));
	int64_t start = bench_now_ns();
	for (long b = 0; b < batches; b++) {
		double t[NVAR];
		for (int k = 0; k < NVAR; k++) {
			int v = (int)((b + k) % NVAR);
			int64_t t0 = bench_now_ns();
			run_variant(s, v, count);
			t[v] = (double)(bench_now_ns() - t0) / (double)count;
			samples[v][b] = t[v];
		}
		pair[b] = t[V_ZHV] / t[V_RAW];
	}
	double wall = (double)(bench_now_ns() - start) / 1e9;
	for (int v = 0; v < NVAR; v++) {
		bench_stats(samples[v], (size_t)batches, &s_out[v]);
		free(samples[v]);
	}
	bench_stats(pair, (size_t)batches, pr);
	free(pair);
	return wall;
}

static void report(const struct side *sd, const char *name, const char *what, long batches,
                   long count, double wall, double load0, const bench_stats_t *s,
                   const bench_stats_t *pr, bool has_target)
{
	printf("%s: %ld batches x %ld %s exits, 64-bit CPL0 guest, variants rotated; "
	       "%.1f s, load %.2f -> %.2f\n",
	       name, batches, count, what, wall, load0, bench_loadavg());
	bench_print_header("per exit");
	for (int v = 0; v < NVAR; v++)
		bench_print_row(sd->var[v].name, &s[v]);
	double ratio = s[V_ZHV].median / s[V_RAW].median;
	printf("  ratio libzhv/raw: %.3f (median of per-batch ratios %.3f, p10 %.3f, p90 %.3f)\n",
	       ratio, pr->median, pr->p10, pr->p90);
	for (int v = 2; v < NVAR; v++)
		printf("  libzhv - %s: %+.0f ns/exit\n", sd->var[v].name,
		       s[V_ZHV].median - s[v].median);
	printf("RESULT %s zhv_ns=%.0f raw_ns=%.0f ratio=%.3f", name, s[V_ZHV].median,
	       s[V_RAW].median, ratio);
	if (has_target)
		printf(" target=%.2f pass=%d", TARGET, ratio <= TARGET);
	printf(" zhv_p10=%.0f zhv_p90=%.0f raw_p10=%.0f raw_p90=%.0f paired_ratio=%.3f",
	       s[V_ZHV].p10, s[V_ZHV].p90, s[V_RAW].p10, s[V_RAW].p90, pr->median);
	for (int v = 2; v < NVAR; v++)
		printf(" %s_ns=%.0f", sd->var[v].key, s[v].median);
	printf("\n");
}

int main(int argc, char **argv)
{
	long batches = argc > 1 ? atol(argv[1]) : 20;
	long count = argc > 2 ? atol(argv[2]) : 2000;
	long mem_count = bench_env_int("BENCH_MEM_COUNT", count / 4);
	if (batches < 1 || count < 1)
		die("usage", "io_roundtrip [batches [count]]");
	bench_pin_self(1);

	struct side side;
	bench_stats_t s[NVAR], pr;
	double load0 = bench_loadavg();
	setup(&side, MODE_IO);
	double wall = measure(&side, batches, count, s, &pr);
	report(&side, "io_roundtrip", "OUT", batches, count, wall, load0, s, &pr, true);
	teardown(&side); /* one libzhv vCPU per thread: free this one first */

	if (mem_count > 0) {
		load0 = bench_loadavg();
		setup(&side, MODE_MEM);
		wall = measure(&side, batches, mem_count, s, &pr);
		report(&side, "mem_roundtrip", "MEM-trap write", batches, mem_count, wall, load0, s, &pr,
		       false);
		teardown(&side);
	}
	return 0;
}
