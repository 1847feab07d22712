/* kick_latency.c: latency from zhv_vcpu_kick() on one thread until
 * zhv_vcpu_enter() returns ZHV_ERR_CANCELED on the vCPU thread, against the
 * raw-KVM way to do the same, in the same process.
 *
 * Guest (64-bit CPL0, emulated on this machine's kvm_pvm): `jmp .`.
 *
 * Variants (one vCPU thread owns all three vCPUs; the main thread kicks;
 * samples are interleaved in an ABC/CBA... pattern):
 *   libzhv        zhv_vcpu_kick(vcpu) -> zhv_vcpu_enter() returns CANCELED
 *   raw           own minimal KVM VM (same set-up as io_roundtrip's raw VM);
 *                 kick = run->immediate_exit = 1, then pthread_kill(SIGUSR1)
 *                 (no-op handler, no SA_RESTART) -> KVM_RUN returns EINTR
 *   raw-on-zhv    (diagnostic) the raw kick and KVM_RUN on libzhv's own
 *                 vCPU fd: KVM's latency with libzhv's VM configuration
 *
 * One sample: the main thread releases the vCPU thread, waits until it has
 * announced it is entering, sleeps BENCH_KICK_DELAY_US (default 300 us) so
 * that the vCPU is inside the guest, takes t0 (CLOCK_MONOTONIC) and kicks.
 * The vCPU thread takes t1 as soon as enter / KVM_RUN returns. Latency =
 * t1 - t0. By default the vCPU thread is pinned to CPU 1 and the kicker to
 * CPU 0 (BENCH_NOPIN=1 turns that off), as in the machine study.
 * Usage: kick_latency [kicks_per_variant]  (default 300). */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "raw_kvm.h"
#include "stats.h"
#include "vcpu_fd.h"
#include "zhv.h"

#define TARGET 1.1

static const uint8_t guest_code[] = {0xeb, 0xfe}; /* jmp . */

enum { V_ZHV, V_RAW, V_RAW_ON_ZHV, NVAR, V_STOP = NVAR };
static const char *const var_names[NVAR] = {"libzhv", "raw KVM", "raw-on-zhv (diag)"};

static struct {
	sem_t ready, go, done;
	atomic_int cmd;
	atomic_int entering;
	int64_t t_end;
	int early; /* enter returned before the kick: a bad sample */
	pthread_t thread;
	zhv_vcpu_t *zvcpu;
	zhv_guest_t *guest;
	struct raw_vm raw;
	int zfd;
	struct kvm_run *zrun;
	size_t zrun_size;
	atomic_int kicked; /* set by the kicker right before it kicks */
} S;

static void die(const char *what, const char *why)
{
	fprintf(stderr, "kick_latency: %s: %s\n", what, why);
	exit(1);
}

static void noop_handler(int sig)
{
	(void)sig;
}

static int raw_enter(int fd, struct kvm_run *run)
{
	int r = ioctl(fd, KVM_RUN, 0);
	int e = errno;
	S.t_end = bench_now_ns();
	run->immediate_exit = 0;
	if (r == 0) {
		fprintf(stderr, "kick_latency: KVM_RUN exited: %s\n", raw_exit_name(run->exit_reason));
		exit(1);
	}
	if (e != EINTR)
		die("KVM_RUN", strerror(e));
	return 0;
}

static void *vcpu_thread(void *arg)
{
	(void)arg;
	bench_pin_self(1);
	/* libzhv's vCPU belongs to this thread. */
	zhv_status_t st = zhv_guest_create(NULL, &S.guest);
	if (st != ZHV_OK)
		die("zhv_guest_create", zhv_status_string(st));
	uint8_t *zram = bench_guest_ram(guest_code, sizeof(guest_code));
	if ((st = zhv_guest_map(S.guest, 0, zram, BENCH_RAM_SIZE, ZHV_MAP_RWX)) != ZHV_OK ||
	    (st = zhv_vcpu_create(S.guest, 0, BENCH_CODE_GPA, &S.zvcpu)) != ZHV_OK)
		die("libzhv setup", zhv_status_string(st));
	S.zfd = bench_find_vcpu_fd();
	S.zrun_size = bench_vcpu_mmap_size();
	if (S.zfd < 0 || !S.zrun_size)
		die("setup", "cannot find libzhv's vCPU fd");
	S.zrun = mmap(NULL, S.zrun_size, PROT_READ | PROT_WRITE, MAP_SHARED, S.zfd, 0);
	if (S.zrun == MAP_FAILED)
		die("mmap", strerror(errno));

	uint8_t *rram = bench_guest_ram(guest_code, sizeof(guest_code));
	if (raw_vm_open(&S.raw) || raw_vm_map(&S.raw, 0, 0, rram, BENCH_RAM_SIZE) ||
	    raw_vcpu_create(&S.raw) || raw_vcpu_cpuid(&S.raw) ||
	    raw_vcpu_long_mode(&S.raw, BENCH_CODE_GPA, true))
		exit(1);
	sem_post(&S.ready);

	for (;;) {
		sem_wait(&S.go);
		int cmd = atomic_load(&S.cmd);
		if (cmd == V_STOP)
			break;
		atomic_store(&S.entering, 1);
		if (cmd == V_ZHV) {
			zhv_packet_t pkt;
			st = zhv_vcpu_enter(S.zvcpu, &pkt);
			S.t_end = bench_now_ns();
			if (st != ZHV_ERR_CANCELED)
				die("zhv_vcpu_enter", st == ZHV_OK ? "returned a packet"
				                                  : zhv_status_string(st));
		} else if (cmd == V_RAW) {
			raw_enter(S.raw.vcpu_fd, S.raw.run);
		} else {
			raw_enter(S.zfd, S.zrun);
		}
		S.early = !atomic_load(&S.kicked);
		sem_post(&S.done);
	}
	munmap(S.zrun, S.zrun_size);
	zhv_vcpu_destroy(S.zvcpu);
	zhv_guest_destroy(S.guest);
	raw_vm_close(&S.raw);
	return NULL;
}

static void sleep_us(long us)
{
	struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static double one_sample(int var, long delay_us)
{
	atomic_store(&S.kicked, 0);
	atomic_store(&S.entering, 0);
	atomic_store(&S.cmd, var);
	sem_post(&S.go);
	while (!atomic_load(&S.entering))
		sleep_us(20);
	sleep_us(delay_us);
	atomic_store(&S.kicked, 1);
	int64_t t0 = bench_now_ns();
	if (var == V_ZHV) {
		if (zhv_vcpu_kick(S.zvcpu) != ZHV_OK)
			die("zhv_vcpu_kick", "failed");
	} else {
		struct kvm_run *run = var == V_RAW ? S.raw.run : S.zrun;
		__atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		pthread_kill(S.thread, SIGUSR1);
	}
	while (sem_wait(&S.done) < 0 && errno == EINTR)
		;
	if (S.early)
		return -1;
	return (double)(S.t_end - t0);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 300;
	long delay = bench_env_int("BENCH_KICK_DELAY_US", 300);
	if (n < 1)
		die("usage", "kick_latency [kicks_per_variant]");

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = noop_handler; /* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	sem_init(&S.ready, 0, 0);
	sem_init(&S.go, 0, 0);
	sem_init(&S.done, 0, 0);
	bench_pin_self(0);
	if (pthread_create(&S.thread, NULL, vcpu_thread, NULL) != 0)
		die("pthread_create", "failed");
	sem_wait(&S.ready);

	/* Warm-up. */
	for (int v = 0; v < NVAR; v++)
		for (int i = 0; i < 5; i++)
			(void)one_sample(v, delay);

	double *samples[NVAR];
	size_t got[NVAR] = {0};
	long bad = 0;
	for (int v = 0; v < NVAR; v++)
		samples[v] = calloc((size_t)n, sizeof(double));
	double load0 = bench_loadavg();
	int64_t start = bench_now_ns();
	for (long round = 0; round < n; round++) {
		for (int k = 0; k < NVAR; k++) {
			/* ABC, CBA, ABC, ...: each variant as often first as last */
			int v = (round & 1) ? NVAR - 1 - k : k;
			double t = one_sample(v, delay);
			if (t < 0) {
				bad++;
				continue;
			}
			samples[v][got[v]++] = t;
		}
	}
	double wall = (double)(bench_now_ns() - start) / 1e9;
	atomic_store(&S.cmd, V_STOP);
	sem_post(&S.go);
	pthread_join(S.thread, NULL);

	bench_stats_t s[NVAR];
	for (int v = 0; v < NVAR; v++)
		bench_stats(samples[v], got[v], &s[v]);
	printf("kick_latency: %ld kicks per variant, guest `jmp .` at CPL0, %ld us after entry, "
	       "interleaved; %.1f s, load %.2f -> %.2f%s\n",
	       n, delay, wall, load0, bench_loadavg(),
	       bad ? " (some samples dropped: enter returned before the kick)" : "");
	if (bad)
		printf("  dropped samples: %ld\n", bad);
	bench_print_header("kick -> enter returns");
	for (int v = 0; v < NVAR; v++)
		bench_print_row(var_names[v], &s[v]);
	double ratio = s[V_ZHV].median / s[V_RAW].median;
	printf("  ratio libzhv/raw: %.3f\n", ratio);
	printf("RESULT kick_latency zhv_ns=%.0f raw_ns=%.0f ratio=%.3f target=%.2f pass=%d "
	       "zhv_p10=%.0f zhv_p90=%.0f raw_p10=%.0f raw_p90=%.0f raw_on_zhv_ns=%.0f\n",
	       s[V_ZHV].median, s[V_RAW].median, ratio, TARGET, ratio <= TARGET, s[V_ZHV].p10,
	       s[V_ZHV].p90, s[V_RAW].p10, s[V_RAW].p90, s[V_RAW_ON_ZHV].median);
	for (int v = 0; v < NVAR; v++)
		free(samples[v]);
	return 0;
}
