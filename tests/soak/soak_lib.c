/* soak_lib.c: libzhv create/run/destroy soak. Each cycle makes a guest,
 * maps fresh RAM (identity page tables, 64-bit code), sets an IO trap on
 * port 0x3f8, a BELL trap on a new port and a MEM trap, runs a vCPU on a new
 * thread until the guest has printed "ok" through the IO trap, rung the bell
 * and hit the MEM trap, then destroys the vCPU, joins the thread, destroys
 * the port and the guest and unmaps the RAM. After a warm-up the process's
 * fds, threads and RSS must not grow (tests/soak/soak.h).
 *
 * Usage: soak_lib. Environment: ZHV_SOAK_LIB_CYCLES (default 10000),
 * ZHV_SOAK_WARMUP (default 100). Exit status 0 when every cycle ran and
 * nothing grew, 1 otherwise, 77 without a usable /dev/kvm. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "soak.h"
#include "zhv.h"

#define RAM_SIZE (2u << 20)
#define CODE_GPA 0x10000u
#define DONE_GPA 0x200000u /* MEM trap, key 2 */
#define BELL_GPA 0x201000u /* BELL trap, key 3 */
#define KEY_COM1 1
#define KEY_DONE 2
#define KEY_BELL 3
/* Allowed RSS growth after warm-up. Freed memory stays with malloc and
 * is reused, but where a block lands in its arenas (one per thread that
 * allocates: each cycle's vCPU thread takes whichever arena is free) and how
 * many of the pages it touches stay resident varies by a few pages from
 * one checkpoint to the next. 256 KiB over 9900 cycles bounds a leak at
 * 26 bytes per cycle; a leaked page per cycle would be 39 MiB. */
#define RSS_MARGIN_KB 256

static const uint8_t guest_code[] = {
	0x66, 0xba, 0xf8, 0x03,                   /* mov $0x3f8, %dx */
	0xb0, 'o',                                /* mov $'o', %al */
	0xee,                                     /* out %al, %dx */
	0xb0, 'k',                                /* mov $'k', %al */
	0xee,                                     /* out %al, %dx */
	0x48, 0xc7, 0x04, 0x25, 0x00, 0x10, 0x20, /* movq $1, BELL_GPA */
	0x00, 0x01, 0x00, 0x00, 0x00,
	0x48, 0xc7, 0x04, 0x25, 0x00, 0x00, 0x20, /* movq $0, DONE_GPA */
	0x00, 0x00, 0x00, 0x00, 0x00,
	0xf4,                                     /* hlt (never reached) */
};

struct run {
	zhv_guest_t *guest;
	char out[8];
	unsigned nout;
	bool done;
	char err[160];
};

/* The vCPU's thread: create it, enter until the MEM trap, destroy it. */
static void *vcpu_thread(void *arg)
{
	struct run *r = arg;
	zhv_vcpu_t *vcpu;
	zhv_status_t st = zhv_vcpu_create(r->guest, 0, CODE_GPA, &vcpu);
	if (st != ZHV_OK) {
		snprintf(r->err, sizeof(r->err), "zhv_vcpu_create: %s", zhv_status_string(st));
		return NULL;
	}
	for (int n = 0; n < 16 && !r->done; n++) {
		zhv_packet_t pkt;
		st = zhv_vcpu_enter(vcpu, &pkt);
		if (st != ZHV_OK) {
			snprintf(r->err, sizeof(r->err), "zhv_vcpu_enter: %s", zhv_status_string(st));
			break;
		}
		if (pkt.type == ZHV_PKT_TYPE_GUEST_IO && pkt.key == KEY_COM1 && !pkt.guest_io.input &&
		    r->nout < sizeof(r->out) - 1)
			r->out[r->nout++] = (char)pkt.guest_io.u8;
		else if (pkt.type == ZHV_PKT_TYPE_GUEST_MEM && pkt.key == KEY_DONE)
			r->done = true;
		else {
			snprintf(r->err, sizeof(r->err), "unexpected packet type %u key %llu", pkt.type,
			         (unsigned long long)pkt.key);
			break;
		}
	}
	if (!r->done && !r->err[0])
		snprintf(r->err, sizeof(r->err), "the guest did not reach its MEM trap");
	zhv_vcpu_destroy(vcpu);
	return NULL;
}

static bool fail(const char *what, zhv_status_t st)
{
	fprintf(stderr, "soak_lib: %s: %s\n", what, zhv_status_string(st));
	return false;
}

static bool one_cycle(long i, void *opaque)
{
	(void)i;
	(void)opaque;
	bool ok = false;
	zhv_port_t *port = NULL;
	zhv_guest_t *guest;
	zhv_status_t st = zhv_guest_create(NULL, &guest);
	if (st != ZHV_OK)
		return fail("zhv_guest_create", st);
	uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	                    -1, 0);
	if (ram == MAP_FAILED) {
		perror("soak_lib: mmap");
		zhv_guest_destroy(guest);
		return false;
	}
	/* The BSP starts in 64-bit mode with CR3 = 0: PML4 at 0, PDPT at
	 * 0x1000, a page directory at 0x2000 with two 2 MiB pages. */
	uint64_t *pml4 = (uint64_t *)ram, *pdpt = (uint64_t *)(ram + 0x1000),
	         *pd = (uint64_t *)(ram + 0x2000);
	pml4[0] = 0x1000 | 0x3;
	pdpt[0] = 0x2000 | 0x3;
	pd[0] = 0x000000 | 0x83;
	pd[1] = 0x200000 | 0x83;
	memcpy(ram + CODE_GPA, guest_code, sizeof(guest_code));

	if ((st = zhv_port_create(0, &port)) != ZHV_OK) {
		fail("zhv_port_create", st);
		goto out;
	}
	if ((st = zhv_guest_map(guest, 0, ram, RAM_SIZE, ZHV_MAP_RWX)) != ZHV_OK ||
	    (st = zhv_guest_set_trap(guest, ZHV_TRAP_IO, 0x3f8, 1, NULL, KEY_COM1)) != ZHV_OK ||
	    (st = zhv_guest_set_trap(guest, ZHV_TRAP_MEM, DONE_GPA, 0x1000, NULL, KEY_DONE)) !=
	            ZHV_OK ||
	    (st = zhv_guest_set_trap(guest, ZHV_TRAP_BELL, BELL_GPA, 0x1000, port, KEY_BELL)) !=
	            ZHV_OK) {
		fail("guest set-up", st);
		goto out;
	}
	struct run r = {.guest = guest};
	pthread_t t;
	int e = pthread_create(&t, NULL, vcpu_thread, &r);
	if (e) {
		fprintf(stderr, "soak_lib: pthread_create: %s\n", strerror(e));
		goto out;
	}
	pthread_join(t, NULL);
	if (r.err[0]) {
		fprintf(stderr, "soak_lib: %s\n", r.err);
		goto out;
	}
	if (strcmp(r.out, "ok") != 0) {
		fprintf(stderr, "soak_lib: the guest printed '%s', not 'ok'\n", r.out);
		goto out;
	}
	zhv_packet_t pkt;
	st = zhv_port_wait(port, zhv_deadline_after(10ll * 1000 * 1000 * 1000), &pkt);
	if (st != ZHV_OK || pkt.type != ZHV_PKT_TYPE_GUEST_BELL || pkt.key != KEY_BELL) {
		fprintf(stderr, "soak_lib: no bell packet (%s, type %u)\n", zhv_status_string(st),
		        st == ZHV_OK ? pkt.type : 0);
		goto out;
	}
	ok = true;
out:
	zhv_guest_destroy(guest);
	zhv_port_destroy(port);
	munmap(ram, RAM_SIZE);
	return ok;
}

int main(void)
{
	long cycles = soak_env_count("ZHV_SOAK_LIB_CYCLES", 10000);
	long warmup = soak_env_count("ZHV_SOAK_WARMUP", 100);
	zhv_guest_t *probe;
	zhv_status_t st = zhv_guest_create(NULL, &probe);
	if (st == ZHV_ERR_NOT_SUPPORTED) {
		printf("# soak_lib: no usable /dev/kvm\n");
		return 77;
	}
	if (st != ZHV_OK) {
		printf("# soak_lib: zhv_guest_create: %s\n", zhv_status_string(st));
		return 1;
	}
	zhv_guest_destroy(probe);
	return soak_run("libzhv", cycles, warmup, RSS_MARGIN_KB, one_cycle, NULL);
}
