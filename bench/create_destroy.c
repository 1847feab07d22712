/* create_destroy.c: a whole guest life cycle through libzhv against a
 * minimal raw-KVM VMM doing the same, in the same process, interleaved.
 *
 * Guest (64-bit CPL0 at BENCH_CODE_GPA): `movb $1, 0x200000; jmp .`: the
 * store hits GPA 0x200000, just above the 2 MiB of RAM, which is the first
 * (and only) exit. Both sides use the same pre-built, pre-faulted 2 MiB
 * host buffer (page tables at GPA 0, see raw_kvm.h); allocating it is not
 * part of the cycle.
 *
 * libzhv cycle (everything the public API needs):
 *   zhv_guest_create(NULL)            (libzhv: open /dev/kvm, API version,
 *                                      mmap size, CREATE_VM, ENABLE_CAP
 *                                      SPLIT_IRQCHIP + X2APIC_API +
 *                                      X86_USER_SPACE_MSR, CHECK_EXTENSION
 *                                      x2, GET_SUPPORTED_CPUID)
 *   zhv_guest_map(0, 2 MiB, RWX)
 *   zhv_guest_set_trap(MEM, 0x200000, 4 KiB)
 *   zhv_vcpu_create(BSP, entry)       (libzhv: CREATE_VCPU, mmap, LAPIC,
 *                                      CPUID, sregs, regs, XCR0, x2APIC)
 *   zhv_vcpu_enter() -> MEM packet    (libzhv decodes the instruction)
 *   zhv_vcpu_destroy(); zhv_guest_destroy()
 *
 * raw cycle: what a minimal VMM needs for the same first exit, and no more:
 *   open("/dev/kvm"); KVM_GET_VCPU_MMAP_SIZE; KVM_CREATE_VM;
 *   KVM_SET_USER_MEMORY_REGION (slot 0, GPA 0, 2 MiB);
 *   KVM_CREATE_VCPU(0); mmap(kvm_run);
 *   KVM_GET_SUPPORTED_CPUID; KVM_SET_CPUID2 (that table as is: long mode
 *   needs LM in the guest CPUID);
 *   KVM_GET_SREGS; KVM_SET_SREGS (the same 64-bit state libzhv gives its
 *   BSP); KVM_SET_REGS (RIP, RFLAGS);
 *   KVM_RUN -> KVM_EXIT_MMIO at 0x200000 (checked: write, 1 byte, value 1);
 *   munmap(kvm_run); close(vCPU); close(VM); close(/dev/kvm).
 * No irqchip, no LAPIC set-up, no XCR0, no MSRs, no MP state, no
 * instruction decoding: those are libzhv's features, and their cost is
 * what this benchmark shows. The /dev/kvm open and the supported-CPUID
 * query are done per cycle on both sides (libzhv does them per guest).
 *
 * KVM keeps a global static key, kvm_has_noapic_vcpu, enabled while any
 * vCPU without an in-kernel LAPIC exists on the host. Turning it on and
 * off patches kernel text: on this machine that adds about 0.2 ms to
 * KVM_CREATE_VCPU and 0.25 ms to the VM's close (measured: 45 vs 250 us,
 * 120 vs 400 us). The raw cycle would pay that twice per cycle only
 * because it happens to be the only such vCPU on the host, which is not
 * the VMM's own work; so the "raw KVM" variant runs while a separate idle
 * no-irqchip vCPU ("holder", created and destroyed outside the timed
 * cycles) keeps the key on. That is the stricter baseline for libzhv
 * (libzhv's vCPUs have KVM's LAPIC and never touch the key). The variant
 * "raw, key cold" is the same cycle without the holder.
 *
 * A diagnostic variant, raw+split, adds KVM_ENABLE_CAP(SPLIT_IRQCHIP)
 * right after KVM_CREATE_VM (so the vCPU gets KVM's in-kernel LAPIC, as in
 * libzhv): it splits libzhv's extra cost into KVM's (LAPIC, irq routing)
 * and libzhv's own. Another, "raw as libzhv", makes exactly libzhv's
 * system calls with no libzhv code in between and times each step (see
 * steps[] below): libzhv minus it is libzhv's user-space work, and its
 * step table prices each ioctl libzhv adds. BENCH_ONLY=<variant index>
 * runs one variant alone (for perf or strace).
 *
 * Each cycle is timed in phases: create (VM), map (memory + trap), vcpu
 * (vCPU + state), run (to the first exit) and destroy.
 * Usage: create_destroy [cycles_per_variant]  (default 100). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "raw_kvm.h"
#include "stats.h"
#include "zhv.h"

#define TARGET 1.2

static const uint8_t guest_code[] = {
	0xc6, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00, 0x01, /* movb $1, 0x200000 */
	0xeb, 0xfe,                                     /* jmp . */
};

enum { V_ZHV, V_RAW, V_RAW_COLD, V_RAW_SPLIT, V_MIMIC, NVAR };
static const char *const var_names[NVAR] = {"libzhv", "raw KVM", "raw, key cold (diag)",
                                            "raw+split (diag)", "raw as libzhv (diag)"};

/* The "raw as libzhv" variant issues exactly the system calls libzhv makes
 * for this cycle (seen with strace), with no libzhv code in between, and
 * times each step: it tells KVM's share of libzhv's cost from libzhv's own
 * user-space work, and which of libzhv's extra ioctls cost what. */
enum {
	S_OPEN, S_QUERY, S_CREATE_VM, S_CAPS, S_SUPP_CPUID, S_MEMSLOT, S_CREATE_VCPU,
	S_GET_LAPIC0, S_SET_CPUID, S_SREGS_REGS, S_SET_XCRS, S_SET_MSRS, S_LAPIC_SVR,
	S_MP_STATE, S_RUN, S_PKT_REGS, S_CLOSE_VCPU, S_CLOSE_VM, S_CLOSE_KVM, NSTEP
};
static const struct {
	const char *name;
	bool extra; /* an ioctl the minimal raw VMM does not make */
} steps[NSTEP] = {
	[S_OPEN] = {"open /dev/kvm", false},
	[S_QUERY] = {"GET_API_VERSION + GET_VCPU_MMAP_SIZE", false},
	[S_CREATE_VM] = {"KVM_CREATE_VM", false},
	[S_CAPS] = {"ENABLE_CAP x3 (split irqchip, x2APIC API, user MSR) + CHECK_EXTENSION x2", true},
	[S_SUPP_CPUID] = {"KVM_GET_SUPPORTED_CPUID", false},
	[S_MEMSLOT] = {"KVM_SET_USER_MEMORY_REGION", false},
	[S_CREATE_VCPU] = {"KVM_CREATE_VCPU (with in-kernel LAPIC) + mmap", false},
	[S_GET_LAPIC0] = {"KVM_GET_LAPIC (power-on copy)", true},
	[S_SET_CPUID] = {"KVM_SET_CPUID2", false},
	[S_SREGS_REGS] = {"KVM_GET_SREGS + SET_SREGS + SET_REGS", false},
	[S_SET_XCRS] = {"KVM_SET_XCRS", true},
	[S_SET_MSRS] = {"KVM_SET_MSRS (APIC_BASE: x2APIC)", true},
	[S_LAPIC_SVR] = {"KVM_GET_LAPIC + KVM_SET_LAPIC (SVR)", true},
	[S_MP_STATE] = {"KVM_SET_MP_STATE (RUNNABLE)", true},
	[S_RUN] = {"KVM_RUN to the first exit", false},
	[S_PKT_REGS] = {"KVM_GET_REGS + KVM_GET_SREGS (MEM packet)", true},
	[S_CLOSE_VCPU] = {"munmap kvm_run + close vCPU", false},
	[S_CLOSE_VM] = {"close VM (VM destruction)", false},
	[S_CLOSE_KVM] = {"close /dev/kvm", false},
};
static double *step_ns[NSTEP];
static long step_n;
enum { P_CREATE, P_MAP, P_VCPU, P_RUN, P_DESTROY, NPHASE };
static const char *const phase_names[NPHASE] = {"create", "map", "vcpu", "run", "destroy"};

static uint8_t *ram;

/* The idle no-irqchip vCPU that keeps kvm_has_noapic_vcpu enabled. */
static struct raw_vm holder;
static bool holding;

static void hold_key(bool on)
{
	if (on == holding)
		return;
	if (on) {
		if (raw_vm_open(&holder) || raw_vcpu_create(&holder))
			exit(1);
	} else {
		raw_vm_close(&holder);
	}
	holding = on;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "create_destroy: %s: %s\n", what, why);
	exit(1);
}

/* One cycle; t[0..NPHASE] are the phase boundaries. */
static void cycle_zhv(int64_t *t)
{
	zhv_guest_t *g;
	zhv_vcpu_t *v;
	zhv_packet_t pkt;
	zhv_status_t st;
	t[0] = bench_now_ns();
	if ((st = zhv_guest_create(NULL, &g)) != ZHV_OK)
		die("zhv_guest_create", zhv_status_string(st));
	t[1] = bench_now_ns();
	if ((st = zhv_guest_map(g, 0, ram, BENCH_RAM_SIZE, ZHV_MAP_RWX)) != ZHV_OK ||
	    (st = zhv_guest_set_trap(g, ZHV_TRAP_MEM, BENCH_TRAP_GPA, 0x1000, NULL, 7)) != ZHV_OK)
		die("zhv_guest_map/set_trap", zhv_status_string(st));
	t[2] = bench_now_ns();
	if ((st = zhv_vcpu_create(g, 0, BENCH_CODE_GPA, &v)) != ZHV_OK)
		die("zhv_vcpu_create", zhv_status_string(st));
	t[3] = bench_now_ns();
	if ((st = zhv_vcpu_enter(v, &pkt)) != ZHV_OK)
		die("zhv_vcpu_enter", zhv_status_string(st));
	t[4] = bench_now_ns();
	if (pkt.type != ZHV_PKT_TYPE_GUEST_MEM || pkt.key != 7 || !pkt.guest_mem.write ||
	    pkt.guest_mem.addr != BENCH_TRAP_GPA || pkt.guest_mem.data != 1)
		die("zhv_vcpu_enter", "unexpected packet");
	zhv_vcpu_destroy(v);
	zhv_guest_destroy(g);
	t[5] = bench_now_ns();
}

static void cycle_raw(int64_t *t, bool split)
{
	struct raw_vm r;
	t[0] = bench_now_ns();
	if (raw_vm_open(&r) || (split && raw_vm_split_irqchip(&r)))
		exit(1);
	t[1] = bench_now_ns();
	if (raw_vm_map(&r, 0, 0, ram, BENCH_RAM_SIZE))
		exit(1);
	t[2] = bench_now_ns();
	if (raw_vcpu_create(&r) || raw_vcpu_cpuid(&r) ||
	    raw_vcpu_long_mode(&r, BENCH_CODE_GPA, false))
		exit(1);
	t[3] = bench_now_ns();
	int e;
	while ((e = raw_run(&r)) == -EINTR)
		;
	t[4] = bench_now_ns();
	if (e)
		die("KVM_RUN", strerror(-e));
	struct kvm_run *run = r.run;
	if (run->exit_reason != KVM_EXIT_MMIO || run->mmio.phys_addr != BENCH_TRAP_GPA ||
	    !run->mmio.is_write || run->mmio.len != 1 || run->mmio.data[0] != 1)
		die("KVM_RUN", raw_exit_name(run->exit_reason));
	raw_vm_close(&r);
	t[5] = bench_now_ns();
}

static void xioctl(int fd, unsigned long req, void *arg, const char *name)
{
	if (ioctl(fd, req, arg) < 0)
		die(name, strerror(errno));
}

static void cycle_mimic(int64_t *t, bool record)
{
	int64_t ts[NSTEP + 1];
	int k = 0;
#define STEP() (ts[k++] = bench_now_ns())
	struct raw_vm r;
	memset(&r, 0, sizeof(r));
	t[0] = bench_now_ns();
	STEP();
	r.kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (r.kvm_fd < 0)
		die("open /dev/kvm", strerror(errno));
	STEP();
	(void)ioctl(r.kvm_fd, KVM_GET_API_VERSION, 0);
	r.run_size = (size_t)ioctl(r.kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	STEP();
	r.vm_fd = ioctl(r.kvm_fd, KVM_CREATE_VM, 0);
	if (r.vm_fd < 0)
		die("KVM_CREATE_VM", strerror(errno));
	STEP();
	struct kvm_enable_cap c1 = {.cap = KVM_CAP_SPLIT_IRQCHIP, .args = {24}};
	struct kvm_enable_cap c2 = {.cap = KVM_CAP_X2APIC_API, .args = {3}};
	struct kvm_enable_cap c3 = {.cap = KVM_CAP_X86_USER_SPACE_MSR,
	                            .args = {KVM_MSR_EXIT_REASON_UNKNOWN |
	                                     KVM_MSR_EXIT_REASON_FILTER}};
	xioctl(r.vm_fd, KVM_ENABLE_CAP, &c1, "ENABLE_CAP");
	xioctl(r.vm_fd, KVM_ENABLE_CAP, &c2, "ENABLE_CAP");
	xioctl(r.vm_fd, KVM_ENABLE_CAP, &c3, "ENABLE_CAP");
	(void)ioctl(r.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	(void)ioctl(r.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	STEP();
	struct kvm_cpuid2 *cp = calloc(1, sizeof(*cp) + 128 * sizeof(cp->entries[0]));
	if (!cp)
		die("calloc", "no memory");
	cp->nent = 128;
	xioctl(r.kvm_fd, KVM_GET_SUPPORTED_CPUID, cp, "KVM_GET_SUPPORTED_CPUID");
	t[1] = STEP();
	if (raw_vm_map(&r, 0, 0, ram, BENCH_RAM_SIZE))
		exit(1);
	t[2] = STEP();
	r.vcpu_fd = ioctl(r.vm_fd, KVM_CREATE_VCPU, 0UL);
	if (r.vcpu_fd < 0)
		die("KVM_CREATE_VCPU", strerror(errno));
	r.run = mmap(NULL, r.run_size, PROT_READ | PROT_WRITE, MAP_SHARED, r.vcpu_fd, 0);
	if (r.run == MAP_FAILED)
		die("mmap", strerror(errno));
	STEP();
	static struct kvm_lapic_state la0, la;
	xioctl(r.vcpu_fd, KVM_GET_LAPIC, &la0, "KVM_GET_LAPIC");
	STEP();
	xioctl(r.vcpu_fd, KVM_SET_CPUID2, cp, "KVM_SET_CPUID2");
	STEP();
	r.cpuid = cp;
	if (raw_vcpu_long_mode(&r, BENCH_CODE_GPA, false))
		exit(1);
	STEP();
	struct kvm_xcrs x;
	memset(&x, 0, sizeof(x));
	x.nr_xcrs = 1;
	x.xcrs[0].value = 7;
	(void)ioctl(r.vcpu_fd, KVM_SET_XCRS, &x); /* libzhv ignores a refusal */
	STEP();
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[1];
	} m = {.h = {.nmsrs = 1}, .e = {{.index = 0x1b, .data = 0xfee00000 | 0xd00}}};
	if (ioctl(r.vcpu_fd, KVM_SET_MSRS, &m) != 1)
		die("KVM_SET_MSRS", "APIC_BASE refused");
	STEP();
	xioctl(r.vcpu_fd, KVM_GET_LAPIC, &la, "KVM_GET_LAPIC");
	uint32_t svr = 0x1ff;
	memcpy(&la.regs[0xf0], &svr, 4);
	xioctl(r.vcpu_fd, KVM_SET_LAPIC, &la, "KVM_SET_LAPIC");
	STEP();
	struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_RUNNABLE};
	xioctl(r.vcpu_fd, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE");
	t[3] = STEP();
	int e;
	while ((e = raw_run(&r)) == -EINTR)
		;
	if (e || r.run->exit_reason != KVM_EXIT_MMIO)
		die("KVM_RUN", e ? strerror(-e) : raw_exit_name(r.run->exit_reason));
	STEP();
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	xioctl(r.vcpu_fd, KVM_GET_REGS, &regs, "KVM_GET_REGS");
	xioctl(r.vcpu_fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	t[4] = STEP();
	munmap(r.run, r.run_size);
	close(r.vcpu_fd);
	STEP();
	close(r.vm_fd);
	STEP();
	close(r.kvm_fd);
	t[5] = STEP();
	free(cp);
#undef STEP
	if (record) {
		for (int i = 0; i < NSTEP; i++)
			step_ns[i][step_n] = (double)(ts[i + 1] - ts[i]);
		step_n++;
	}
}

static void cycle(int var, int64_t *t, bool record)
{
	hold_key(var != V_RAW_COLD); /* untimed */
	if (var == V_ZHV)
		cycle_zhv(t);
	else if (var == V_MIMIC)
		cycle_mimic(t, record);
	else
		cycle_raw(t, var == V_RAW_SPLIT);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100;
	if (n < 1)
		die("usage", "create_destroy [cycles_per_variant]");
	bench_pin_self(1);
	ram = bench_guest_ram(guest_code, sizeof(guest_code));

	int64_t t[NPHASE + 1];
	for (int v = 0; v < NVAR; v++) /* warm-up */
		for (int i = 0; i < 3; i++)
			cycle(v, t, false);

	for (int i = 0; i < NSTEP; i++)
		step_ns[i] = calloc((size_t)n, sizeof(double));
	double *total[NVAR], *phase[NVAR][NPHASE];
	for (int v = 0; v < NVAR; v++) {
		total[v] = calloc((size_t)n, sizeof(double));
		for (int p = 0; p < NPHASE; p++)
			phase[v][p] = calloc((size_t)n, sizeof(double));
	}
	/* BENCH_ONLY=v runs just variant v (for perf/strace investigations). */
	long only = bench_env_int("BENCH_ONLY", -1);
	double load0 = bench_loadavg();
	int64_t start = bench_now_ns();
	for (long i = 0; i < n; i++) {
		for (int k = 0; k < NVAR; k++) {
			int v = (i & 1) ? NVAR - 1 - k : k; /* ABC, CBA, ... */
			if (only >= 0 && v != only)
				continue;
			cycle(v, t, true);
			total[v][i] = (double)(t[NPHASE] - t[0]);
			for (int p = 0; p < NPHASE; p++)
				phase[v][p][i] = (double)(t[p + 1] - t[p]);
		}
	}
	double wall = (double)(bench_now_ns() - start) / 1e9;

	bench_stats_t s[NVAR], ps[NVAR][NPHASE];
	for (int v = 0; v < NVAR; v++) {
		bench_stats(total[v], (size_t)n, &s[v]);
		for (int p = 0; p < NPHASE; p++)
			bench_stats(phase[v][p], (size_t)n, &ps[v][p]);
	}
	printf("create_destroy: %ld cycles per variant (create, map 2 MiB, trap, vCPU, run to "
	       "first exit, destroy), interleaved; %.1f s, load %.2f -> %.2f\n",
	       n, wall, load0, bench_loadavg());
	bench_print_header("whole cycle");
	for (int v = 0; v < NVAR; v++)
		bench_print_row(var_names[v], &s[v]);
	printf("  phase medians (us):     %10s %10s %10s %10s %10s\n", phase_names[0],
	       phase_names[1], phase_names[2], phase_names[3], phase_names[4]);
	for (int v = 0; v < NVAR; v++) {
		printf("  %-22s", var_names[v]);
		for (int p = 0; p < NPHASE; p++)
			printf(" %10.1f", ps[v][p].median / 1e3);
		printf("\n");
	}
	if (step_n > 0) {
		printf("  \"raw as libzhv\" steps (median us; * = not done by the minimal raw VMM):\n");
		double extra = 0;
		for (int i = 0; i < NSTEP; i++) {
			bench_stats_t st;
			bench_stats(step_ns[i], (size_t)step_n, &st);
			printf("    %c %-74s %8.1f\n", steps[i].extra ? '*' : ' ', steps[i].name,
			       st.median / 1e3);
			if (steps[i].extra)
				extra += st.median;
		}
		printf("    sum of * steps: %.1f us; libzhv - raw as libzhv: %+.1f us (libzhv's own "
		       "user-space work)\n",
		       extra / 1e3, (s[V_ZHV].median - s[V_MIMIC].median) / 1e3);
	}
	double ratio = s[V_ZHV].median / s[V_RAW].median;
	printf("  ratio libzhv/raw: %.3f (libzhv/raw-key-cold: %.3f, libzhv/raw+split: %.3f)\n",
	       ratio, s[V_ZHV].median / s[V_RAW_COLD].median,
	       s[V_ZHV].median / s[V_RAW_SPLIT].median);
	printf("RESULT create_destroy zhv_ns=%.0f raw_ns=%.0f ratio=%.3f target=%.2f pass=%d "
	       "zhv_p10=%.0f zhv_p90=%.0f raw_p10=%.0f raw_p90=%.0f raw_cold_ns=%.0f "
	       "raw_split_ns=%.0f raw_as_zhv_ns=%.0f\n",
	       s[V_ZHV].median, s[V_RAW].median, ratio, TARGET, ratio <= TARGET, s[V_ZHV].p10,
	       s[V_ZHV].p90, s[V_RAW].p10, s[V_RAW].p90, s[V_RAW_COLD].median,
	       s[V_RAW_SPLIT].median, s[V_MIMIC].median);
	hold_key(false);
	for (int v = 0; v < NVAR; v++) {
		free(total[v]);
		for (int p = 0; p < NPHASE; p++)
			free(phase[v][p]);
	}
	for (int i = 0; i < NSTEP; i++)
		free(step_ns[i]);
	munmap(ram, BENCH_RAM_SIZE);
	return 0;
}
