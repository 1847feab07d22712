/* soak_board.c: create/run/destroy soak of the VMM's machine (vmm/board.c,
 * linked with every VMM object but main.c). Each cycle builds a board
 * (1 vCPU, 16 MiB, COM1 to a file, a read-only virtio-blk disk) with the
 * soak test kernel (tests/vmm/kernels/soak.c: starts the PIT and RTC
 * threads, prints "soak: up", resets through the i8042), runs it on its
 * vCPU thread until the run ends as a power-off, then stops the vCPUs and
 * calls board_destroy. After a warm-up the process's fds, threads and RSS
 * must not grow (tests/soak/soak.h).
 *
 * Usage: soak_board KERNEL DISK. Environment: ZHV_SOAK_BOARD_CYCLES
 * (default 1000), ZHV_SOAK_WARMUP (default 100). Exit status 0 when every
 * cycle ran and nothing grew, 1 otherwise, 77 without a usable /dev/kvm. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "board.h"
#include "sandbox.h"
#include "soak.h"
#include "vcpu_thread.h"

#define GUEST_LINE "soak: up\n"
/* Allowed RSS growth after warm-up: as in soak_lib.c (allocator
 * placement across the per-thread arenas of each cycle's vCPU, PIT and
 * RTC threads), with more threads per cycle. 512 KiB over 900 cycles
 * bounds a leak at 580 bytes per cycle; the board's smallest allocation
 * per cycle that could leak (a UART) is about 600 bytes, the guest's
 * RAM mapping alone 16 MiB. */
#define RSS_MARGIN_KB 512

struct soak_board {
	const char *kernel, *disk;
	FILE *serial;
	long serial_len;
};

/* The run's end: vm->on_exit wakes the main thread (and kicks the vCPUs). */
static pthread_mutex_t end_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t end_cond = PTHREAD_COND_INITIALIZER;
static bool ended;
static struct vcpus *current_vcpus;

static void on_exit_cb(struct vm *vm)
{
	(void)vm;
	pthread_mutex_lock(&end_lock);
	if (current_vcpus)
		vcpus_kick_all(current_vcpus);
	ended = true;
	pthread_cond_signal(&end_cond);
	pthread_mutex_unlock(&end_lock);
}

static bool one_cycle(long i, void *opaque)
{
	struct soak_board *s = opaque;
	struct board_disk disk = {.path = s->disk, .read_only = true};
	struct board_config cfg = {
		.ncpus = 1,
		.mem_size = 16u << 20,
		.serial = s->serial,
		.disks = &disk,
		.ndisks = 1,
		.boot = {.kernel_path = s->kernel},
	};
	static struct board b; /* large */
	char err[512] = "";
	bool ok = false;
	if (board_create(&b, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "soak_board: cycle %ld: %s\n", i, err);
		board_destroy(&b);
		return false;
	}
	struct vcpus *v = vcpus_create(&b.vm);
	if (!v) {
		fprintf(stderr, "soak_board: out of memory\n");
		board_destroy(&b);
		return false;
	}
	pthread_mutex_lock(&end_lock);
	ended = false;
	current_vcpus = v;
	pthread_mutex_unlock(&end_lock);
	b.vm.on_exit = on_exit_cb;
	if (vcpus_start(v, &b.boot, err, sizeof(err)) < 0) {
		fprintf(stderr, "soak_board: cycle %ld: %s\n", i, err);
		vm_request_exit(&b.vm, VM_EXIT_ERROR, 1);
	}
	pthread_mutex_lock(&end_lock);
	while (!ended)
		pthread_cond_wait(&end_cond, &end_lock);
	current_vcpus = NULL;
	pthread_mutex_unlock(&end_lock);
	vcpus_stop(v);

	int kind = atomic_load(&b.vm.exit_kind);
	if (kind != VM_EXIT_POWEROFF || b.vm.exit_status != 0) {
		fprintf(stderr,
		        "soak_board: cycle %ld: the run ended with kind %d, status %d "
		        "(expected a power-off, 0)\n",
		        i, kind, b.vm.exit_status);
		goto out;
	}
	/* COM1's file grew by the guest's line. */
	fflush(s->serial);
	long len = ftell(s->serial);
	if (len != s->serial_len + (long)strlen(GUEST_LINE)) {
		fprintf(stderr,
		        "soak_board: cycle %ld: COM1 output went from %ld to %ld bytes "
		        "(expected \"soak: up\\n\")\n",
		        i, s->serial_len, len);
		goto out;
	}
	s->serial_len = len;
	ok = true;
out:
	board_destroy(&b);
	return ok;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: soak_board KERNEL DISK\n");
		return 2;
	}
	long cycles = soak_env_count("ZHV_SOAK_BOARD_CYCLES", 1000);
	long warmup = soak_env_count("ZHV_SOAK_WARMUP", 100);
	struct soak_board s = {.kernel = argv[1], .disk = argv[2]};
	struct stat st;
	if (stat(s.kernel, &st) < 0 || stat(s.disk, &st) < 0) {
		fprintf(stderr, "soak_board: %s or %s: %s\n", s.kernel, s.disk, strerror(errno));
		return 2;
	}
	zhv_guest_t *probe;
	zhv_status_t zst = zhv_guest_create(NULL, &probe);
	if (zst == ZHV_ERR_NOT_SUPPORTED) {
		printf("# soak_board: no usable /dev/kvm\n");
		return 77;
	}
	if (zst != ZHV_OK) {
		printf("# soak_board: zhv_guest_create: %s\n", zhv_status_string(zst));
		return 1;
	}
	zhv_guest_destroy(probe);
	/* The vCPU threads wait for the sandbox's decision: none here (a
	 * seccomp filter lasts as long as the process; each cycle opens files). */
	char why[256];
	if (sandbox_enable(false, NULL, why, sizeof(why)) < 0) {
		printf("# soak_board: %s\n", why);
		return 1;
	}
	/* Opened before the first measurement, so that it counts in every one. */
	s.serial = tmpfile();
	if (!s.serial) {
		perror("soak_board: tmpfile");
		return 1;
	}
	int ret = soak_run("board", cycles, warmup, RSS_MARGIN_KB, one_cycle, &s);
	fclose(s.serial);
	return ret;
}
