/* bell_roundtrip.c: cost of one BELL doorbell write, guest to consumer,
 * libzhv against a raw KVM ioeventfd loop on the same guest code, in the
 * same process.
 *
 * Guest (64-bit, CPL0, at BENCH_CODE_GPA, identical on both sides):
 *     0: mov $COUNT, %ecx
 *     1: mov %eax, 0x200000      <- the doorbell (outside RAM: MMIO)
 *        dec %ecx
 *        jnz 1b
 *        out %al, $0x10           <- back to the host
 *        jmp 0b
 *
 * What is measured: one batch is COUNT doorbell writes. A consumer thread
 * is started first and blocks; then the clock starts, the vCPU runs until
 * the guest's OUT (after its COUNT writes), and the clock stops when the
 * consumer has received all COUNT writes and returned. Per write = batch
 * time / COUNT: the guest's write, KVM's signal, and the consumer taking
 * it, end to end, with the vCPU and consumer overlapping as they would in
 * a VMM.
 *   libzhv   a BELL trap on the page at 0x200000 with a port, an IO trap
 *            on port 0x10; zhv_vcpu_enter() until the IO packet; the
 *            consumer calls zhv_port_wait() until it has COUNT BELL
 *            packets (right key and address checked for each).
 *   raw      own minimal KVM VM (raw_kvm.c), KVM_IOEVENTFD on 0x200000
 *            (any length, no data match); KVM_RUN until KVM_EXIT_IO; the
 *            consumer read()s the eventfd, summing its counts to COUNT.
 * Both run in rotating order batch after batch so machine load hits them
 * alike; we report medians over batches.
 *
 * Usage: bell_roundtrip [batches [count]]  (default 20 x 2000). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "raw_kvm.h"
#include "stats.h"
#include "zhv.h"

#define PORT 0x10
#define KEY 0xbe11
#define TARGET 1.10

static uint8_t code[] = {
	0xb9, 0, 0, 0, 0,                         /* 0: mov $COUNT, %ecx */
	0x89, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00, /* 1: mov %eax, 0x200000 */
	0xff, 0xc9,                               /* dec %ecx */
	0x75, 0xf5,                               /* jnz 1b */
	0xe6, PORT,                               /* out %al, $PORT */
	0xeb, 0xec,                               /* jmp 0b */
};

struct bench {
	long count;
	/* libzhv */
	zhv_guest_t *guest;
	zhv_vcpu_t *vcpu;
	zhv_port_t *port;
	uint8_t *zram;
	/* raw */
	struct raw_vm raw;
	int efd;
	uint8_t *rram;
};

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bell_roundtrip: %s: %s\n", what, why);
	exit(1);
}

static void *zhv_consumer(void *arg)
{
	struct bench *b = arg;
	for (long i = 0; i < b->count; i++) {
		zhv_packet_t p;
		zhv_status_t st = zhv_port_wait(b->port, zhv_deadline_after(10000000000), &p);
		if (st != ZHV_OK)
			die("zhv_port_wait", zhv_status_string(st));
		if (p.type != ZHV_PKT_TYPE_GUEST_BELL || p.key != KEY ||
		    p.guest_bell.addr != BENCH_TRAP_GPA)
			die("zhv_port_wait", "unexpected packet");
	}
	return NULL;
}

static void *raw_consumer(void *arg)
{
	struct bench *b = arg;
	uint64_t got = 0;
	while (got < (uint64_t)b->count) {
		uint64_t n;
		if (read(b->efd, &n, sizeof(n)) != sizeof(n)) {
			if (errno == EINTR)
				continue;
			die("read eventfd", strerror(errno));
		}
		got += n;
	}
	if (got != (uint64_t)b->count)
		die("raw consumer", "more writes than the guest made");
	return NULL;
}

static void run_zhv(struct bench *b)
{
	zhv_packet_t p;
	zhv_status_t st = zhv_vcpu_enter(b->vcpu, &p);
	if (st != ZHV_OK)
		die("zhv_vcpu_enter", zhv_status_string(st));
	if (p.type != ZHV_PKT_TYPE_GUEST_IO || p.guest_io.port != PORT)
		die("zhv_vcpu_enter", "unexpected packet");
}

static void run_raw(struct bench *b)
{
	for (;;) {
		int r = raw_run(&b->raw);
		if (r == -EINTR)
			continue;
		if (r < 0)
			die("KVM_RUN", strerror(-r));
		if (b->raw.run->exit_reason != KVM_EXIT_IO || b->raw.run->io.port != PORT)
			die("KVM_RUN", raw_exit_name(b->raw.run->exit_reason));
		return;
	}
}

/* One batch of (v) (0 libzhv, 1 raw): ns per doorbell write. */
static double batch(struct bench *b, int v)
{
	pthread_t t;
	if (pthread_create(&t, NULL, v == 0 ? zhv_consumer : raw_consumer, b) != 0)
		die("pthread_create", "failed");
	int64_t t0 = bench_now_ns();
	if (v == 0)
		run_zhv(b);
	else
		run_raw(b);
	pthread_join(t, NULL);
	return (double)(bench_now_ns() - t0) / (double)b->count;
}

static void setup(struct bench *b)
{
	uint32_t n = (uint32_t)b->count;
	memcpy(code + 1, &n, 4);
	b->zram = bench_guest_ram(code, sizeof(code));
	b->rram = bench_guest_ram(code, sizeof(code));

	zhv_status_t st = zhv_guest_create(NULL, &b->guest);
	if (st != ZHV_OK)
		die("zhv_guest_create", zhv_status_string(st));
	if ((st = zhv_guest_map(b->guest, 0, b->zram, BENCH_RAM_SIZE, ZHV_MAP_RWX)) != ZHV_OK)
		die("zhv_guest_map", zhv_status_string(st));
	if ((st = zhv_port_create(0, &b->port)) != ZHV_OK)
		die("zhv_port_create", zhv_status_string(st));
	if ((st = zhv_guest_set_trap(b->guest, ZHV_TRAP_BELL, BENCH_TRAP_GPA, 0x1000, b->port,
	                             KEY)) != ZHV_OK ||
	    (st = zhv_guest_set_trap(b->guest, ZHV_TRAP_IO, PORT, 1, NULL, 1)) != ZHV_OK)
		die("zhv_guest_set_trap", zhv_status_string(st));
	if ((st = zhv_vcpu_create(b->guest, 0, BENCH_CODE_GPA, &b->vcpu)) != ZHV_OK)
		die("zhv_vcpu_create", zhv_status_string(st));

	struct raw_vm *r = &b->raw;
	if (raw_vm_open(r) || raw_vm_map(r, 0, 0, b->rram, BENCH_RAM_SIZE) || raw_vcpu_create(r) ||
	    raw_vcpu_cpuid(r) || raw_vcpu_long_mode(r, BENCH_CODE_GPA, true))
		exit(1);
	b->efd = eventfd(0, EFD_CLOEXEC);
	struct kvm_ioeventfd io = {.addr = BENCH_TRAP_GPA, .len = 0, .fd = b->efd};
	if (b->efd < 0 || ioctl(r->vm_fd, KVM_IOEVENTFD, &io) < 0)
		die("KVM_IOEVENTFD", strerror(errno));
}

static void teardown(struct bench *b)
{
	zhv_vcpu_destroy(b->vcpu);
	zhv_guest_destroy(b->guest);
	zhv_port_destroy(b->port);
	raw_vm_close(&b->raw);
	close(b->efd);
	munmap(b->zram, BENCH_RAM_SIZE);
	munmap(b->rram, BENCH_RAM_SIZE);
}

int main(int argc, char **argv)
{
	long batches = argc > 1 ? atol(argv[1]) : 20;
	long count = argc > 2 ? atol(argv[2]) : 2000;
	if (batches < 1 || count < 1 || count > 0x7fffffff)
		die("usage", "bell_roundtrip [batches [count]]");
	bench_pin_self(1);

	struct bench b;
	memset(&b, 0, sizeof(b));
	b.count = count;
	setup(&b);
	double load0 = bench_loadavg();
	batch(&b, 0); /* warm-up: shadow pages, caches */
	batch(&b, 1);

	double *samples[2] = {calloc((size_t)batches, sizeof(double)),
	                      calloc((size_t)batches, sizeof(double))};
	double *pair = calloc((size_t)batches, sizeof(double));
	if (!samples[0] || !samples[1] || !pair)
		die("calloc", "out of memory");
	int64_t start = bench_now_ns();
	for (long i = 0; i < batches; i++) {
		double t[2];
		for (int k = 0; k < 2; k++) {
			int v = (int)((i + k) % 2);
			t[v] = batch(&b, v);
			samples[v][i] = t[v];
		}
		pair[i] = t[0] / t[1];
	}
	double wall = (double)(bench_now_ns() - start) / 1e9;
	bench_stats_t s[2], pr;
	bench_stats(samples[0], (size_t)batches, &s[0]);
	bench_stats(samples[1], (size_t)batches, &s[1]);
	bench_stats(pair, (size_t)batches, &pr);

	zhv_guest_stats_t gs;
	memset(&gs, 0, sizeof(gs));
	if (zhv_guest_get_stats(b.guest, &gs) != ZHV_OK)
		die("zhv_guest_get_stats", "failed");
	printf("bell_roundtrip: %ld batches x %ld doorbell writes, 64-bit CPL0 guest, "
	       "consumer thread, variants rotated; %.1f s, load %.2f -> %.2f\n",
	       batches, count, wall, load0, bench_loadavg());
	printf("  libzhv: %llu BELL packets, %llu MMIO exits (doorbell writes that exited)\n",
	       (unsigned long long)gs.bell_packets, (unsigned long long)gs.mmio_exits);
	bench_print_header("per write");
	bench_print_row("libzhv", &s[0]);
	bench_print_row("raw KVM ioeventfd", &s[1]);
	double ratio = s[0].median / s[1].median;
	printf("  ratio libzhv/raw: %.3f (median of per-batch ratios %.3f, p10 %.3f, p90 %.3f)\n",
	       ratio, pr.median, pr.p10, pr.p90);
	printf("RESULT bell_roundtrip zhv_ns=%.0f raw_ns=%.0f ratio=%.3f target=%.2f pass=%d "
	       "zhv_p10=%.0f zhv_p90=%.0f raw_p10=%.0f raw_p90=%.0f paired_ratio=%.3f\n",
	       s[0].median, s[1].median, ratio, TARGET, ratio <= TARGET, s[0].p10, s[0].p90,
	       s[1].p10, s[1].p90, pr.median);
	free(samples[0]);
	free(samples[1]);
	free(pair);
	teardown(&b);
	return 0;
}
