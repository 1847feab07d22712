/* harness.c: TAP runner, assertions and Zircon's guest harness for the
 * conformance suite (see harness.h). */
#include "harness.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Output.                                                                   */

static void write_all(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void vprint_prefixed(const char *prefix, const char *fmt, va_list ap)
{
	char text[3072];
	char out[4096];
	size_t o = 0;
	size_t plen = strlen(prefix);

	vsnprintf(text, sizeof(text), fmt, ap);
	const char *p = text;
	do {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (o + plen + len + 1 >= sizeof(out))
			break;
		memcpy(out + o, prefix, plen);
		o += plen;
		memcpy(out + o, p, len);
		o += len;
		out[o++] = '\n';
		p = nl ? nl + 1 : NULL;
	} while (p && *p);
	write_all(out, o);
}

void zt_diag(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint_prefixed("# ", fmt, ap);
	va_end(ap);
}

static void tap_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tap_line(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint_prefixed("", fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Verdicts. The child process reports through a shared page.                */

enum { ZT_EXIT_PASS = 0, ZT_EXIT_FAIL = 1, ZT_EXIT_SKIP = 2 };

struct zt_shared {
	char skip_reason[512];
};

static struct zt_shared *shared;
static atomic_bool test_failed;

void zt_fail_later(void)
{
	atomic_store(&test_failed, true);
}

void zt_fail_now(void)
{
	_exit(ZT_EXIT_FAIL);
}

void zt_skip_now(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (shared)
		vsnprintf(shared->skip_reason, sizeof(shared->skip_reason), fmt, ap);
	va_end(ap);
	/* A failure recorded before the skip still counts. */
	_exit(atomic_load(&test_failed) ? ZT_EXIT_FAIL : ZT_EXIT_SKIP);
}

/* ------------------------------------------------------------------------ */
/* The host, for quirk gating.                                               */

zt_vendor_t zt_host_vendor(void)
{
	unsigned a, b, c, d;
	__cpuid(0, a, b, c, d);
	(void)a;
	if (b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e) /* "GenuineIntel" */
		return ZT_VENDOR_INTEL;
	if (b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163) /* "AuthenticAMD" */
		return ZT_VENDOR_AMD;
	return ZT_VENDOR_OTHER;
}

const char *zt_vendor_name(zt_vendor_t vendor)
{
	switch (vendor) {
	case ZT_VENDOR_INTEL:
		return "Intel";
	case ZT_VENDOR_AMD:
		return "AMD";
	default:
		return "other";
	}
}

bool zt_kvm_pvm(void)
{
	struct stat st;
	return stat("/sys/module/kvm_pvm", &st) == 0 && S_ISDIR(st.st_mode);
}

bool zt_qemu_tcg(void)
{
	unsigned a, b, c, d;
	__cpuid(1, a, b, c, d);
	if (!(c & (1u << 31)))
		return false;
	__cpuid(0x40000000, a, b, c, d);
	return b == 0x54474354 && c == 0x43544743 && d == 0x47435447; /* "TCGTCGTCGTCG" */
}

void zt_skip_tcg_quirk(unsigned vendors, const char *quirk, const char *details_fmt, ...)
{
	char details[320];
	va_list ap;
	va_start(ap, details_fmt);
	vsnprintf(details, sizeof(details), details_fmt, ap);
	va_end(ap);
	zt_vendor_t vendor = zt_host_vendor();
	if (!zt_qemu_tcg() || !(vendors & (unsigned)vendor)) {
		zt_diag("the symptom of QEMU TCG's quirk \"%s\" (%s) on a %s host that is not "
		        "QEMU TCG or not of a vendor it is documented for: a failure",
		        quirk, details, zt_vendor_name(vendor));
		zt_fail_now();
	}
	zt_skip_now("QEMU TCG quirk (%s CPU): %s; %s", zt_vendor_name(vendor), quirk, details);
}

void zt_skip_quirk(unsigned vendors, const char *quirk, const char *details_fmt, ...)
{
	char details[320];
	va_list ap;
	va_start(ap, details_fmt);
	vsnprintf(details, sizeof(details), details_fmt, ap);
	va_end(ap);
	zt_vendor_t vendor = zt_host_vendor();
	if (!zt_kvm_pvm()) {
		zt_diag("the symptom of kvm_pvm's quirk \"%s\" (%s), on a host without kvm_pvm "
		        "(%s CPU): a failure there",
		        quirk, details, zt_vendor_name(vendor));
		zt_fail_now();
	}
	if (!(vendors & (unsigned)vendor)) {
		zt_diag("the symptom of kvm_pvm's quirk \"%s\" (%s), documented for other host "
		        "vendors, on this kvm_pvm %s host: a failure here",
		        quirk, details, zt_vendor_name(vendor));
		zt_fail_now();
	}
	zt_skip_now("kvm_pvm quirk (%s host): %s; %s", zt_vendor_name(vendor), quirk, details);
}

static bool conclude(bool fatal)
{
	if (fatal)
		zt_fail_now();
	zt_fail_later();
	return false;
}

static const char *basename_of(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

bool zt_check_u64(bool fatal, const char *file, int line, const char *op, const char *ea,
                  const char *eb, uint64_t a, uint64_t b)
{
	bool ok;
	if (strcmp(op, "==") == 0)
		ok = a == b;
	else if (strcmp(op, "!=") == 0)
		ok = a != b;
	else if (strcmp(op, ">=") == 0)
		ok = a >= b;
	else
		ok = a <= b;
	if (ok)
		return true;
	zt_diag("%s:%d: check failed: %s %s %s\n"
	        "  left:  0x%" PRIx64 " (%" PRIu64 ", signed %" PRId64 ")\n"
	        "  right: 0x%" PRIx64 " (%" PRIu64 ", signed %" PRId64 ")",
	        basename_of(file), line, ea, op, eb, a, a, (int64_t)a, b, b, (int64_t)b);
	return conclude(fatal);
}

bool zt_check_status(bool fatal, const char *file, int line, const char *ea, const char *eb,
                     zhv_status_t a, zhv_status_t b)
{
	if (a == b)
		return true;
	zt_diag("%s:%d: check failed: %s == %s\n"
	        "  got:      %s (%d)\n"
	        "  expected: %s (%d)",
	        basename_of(file), line, ea, eb, zhv_status_string(a), a, zhv_status_string(b), b);
	return conclude(fatal);
}

bool zt_check_true(bool fatal, const char *file, int line, const char *expr, bool value)
{
	if (value)
		return true;
	zt_diag("%s:%d: check failed: %s", basename_of(file), line, expr);
	return conclude(fatal);
}

/* ------------------------------------------------------------------------ */
/* libzhv's log, as TAP diagnostics.                                         */

static void log_to_tap(void *opaque, zhv_log_level_t level, const char *msg)
{
	static const char *const names[] = {"error", "warn", "debug"};
	(void)opaque;
	zt_diag("zhv %s: %s", (unsigned)level < 3 ? names[level] : "?", msg);
}

/* ------------------------------------------------------------------------ */
/* Small helpers.                                                            */

void zt_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

uint64_t zt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool zt_sem_wait_ms(sem_t *sem, unsigned ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	for (;;) {
		if (sem_timedwait(sem, &ts) == 0)
			return true;
		if (errno != EINTR)
			return false;
	}
}

bool zt_wait_until_ms(bool (*cond)(void *), void *arg, unsigned ms)
{
	uint64_t deadline = zt_now_ms() + ms;
	for (;;) {
		if (cond(arg))
			return true;
		if (zt_now_ms() >= deadline)
			return cond(arg);
		zt_sleep_ms(1);
	}
}

struct zt_thread {
	pthread_t tid;
};

zt_thread_t *zt_thread_start(void *(*fn)(void *), void *arg)
{
	zt_thread_t *t = calloc(1, sizeof(*t));
	ZT_ASSERT(t != NULL);
	pthread_attr_t attr;
	ZT_ASSERT_EQ(pthread_attr_init(&attr), 0);
	ZT_ASSERT_EQ(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
	int rc = pthread_create(&t->tid, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	ZT_ASSERT_EQ(rc, 0);
	return t;
}

void *zt_thread_join(zt_thread_t *t)
{
	void *ret = NULL;
	ZT_ASSERT_EQ(pthread_join(t->tid, &ret), 0);
	free(t);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Guest harness.                                                            */

#define PTE_P  0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_PS 0x80ull
#define PAGE_2M 0x200000ull

void zt_setup_guest_memory(struct zt_case *tc, const char *start, const char *end)
{
	memset(tc, 0, sizeof(*tc));
	if (start != NULL) {
		ZT_ASSERT(end >= start);
		ZT_ASSERT_LE((uint64_t)(end - start), GUEST_CODE_MAX);
	}
	void *mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ZT_ASSERT(mem != MAP_FAILED);
	tc->mem = mem;
	tc->code_start = start;

	ZT_ASSERT_OK(zhv_guest_create(NULL, &tc->guest));
	ZT_ASSERT_OK(zhv_guest_map(tc->guest, 0, mem, GUEST_MEM_SIZE, ZHV_MAP_RWX));
	ZT_ASSERT_OK(zhv_guest_set_trap(tc->guest, ZHV_TRAP_MEM, EXIT_TEST_ADDR, ZHV_PAGE_SIZE,
	                                NULL, 0));

	/* Identity map the first GiB with 2 MiB pages, user-accessible: the
	 * 16 MiB of RAM and, above it, guest-physical space with no RAM. */
	uint64_t *pml4 = (uint64_t *)(tc->mem + GUEST_PML4);
	uint64_t *pdpt = (uint64_t *)(tc->mem + GUEST_PDPT);
	uint64_t *pd = (uint64_t *)(tc->mem + GUEST_PD);
	pml4[0] = GUEST_PDPT | PTE_P | PTE_RW | PTE_US;
	pdpt[0] = GUEST_PD | PTE_P | PTE_RW | PTE_US;
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = i * PAGE_2M | PTE_P | PTE_RW | PTE_US | PTE_PS;

	if (start != NULL && end != NULL)
		memcpy(tc->mem + GUEST_ENTRY, start, (size_t)(end - start));
}

void zt_setup_vcpu(struct zt_case *tc)
{
	ZT_ASSERT_OK(zhv_vcpu_create(tc->guest, 0, GUEST_ENTRY, &tc->vcpu));
}

void zt_setup_guest(struct zt_case *tc, const char *start, const char *end)
{
	zt_setup_guest_memory(tc, start, end);
	zt_setup_vcpu(tc);
}

void zt_case_destroy(struct zt_case *tc)
{
	zhv_vcpu_destroy(tc->vcpu);
	tc->vcpu = NULL;
	zhv_guest_destroy(tc->guest);
	tc->guest = NULL;
	if (tc->mem != NULL)
		munmap(tc->mem, GUEST_MEM_SIZE);
	tc->mem = NULL;
}

static const char *exit_name(uint32_t e)
{
	static const char *const names[] = {"NONE",     "PACKET",        "CANCELED",
	                                    "SHUTDOWN", "EMULATION",     "UNHANDLED_IO",
	                                    "UNHANDLED_MEM", "ERROR"};
	return e < sizeof(names) / sizeof(names[0]) ? names[e] : "?";
}

void zt_dump_vcpu(zhv_vcpu_t *vcpu)
{
	zhv_vcpu_info_t info;
	if (zhv_vcpu_get_info(vcpu, &info) == ZHV_OK)
		zt_diag("vcpu id %u apic_id %u flags 0x%x last_exit %s addr 0x%" PRIx64, info.id,
		        info.apic_id, info.flags, exit_name(info.last_exit), info.last_exit_addr);
	zhv_vcpu_regs_t r;
	zhv_status_t st = zhv_vcpu_read_state(vcpu, ZHV_VCPU_REGS, &r, sizeof(r));
	if (st != ZHV_OK) {
		zt_diag("read_state(REGS): %s", zhv_status_string(st));
		return;
	}
	zt_diag("rip %#" PRIx64 " rflags %#" PRIx64 " rsp %#" PRIx64 "\n"
	        "rax %#" PRIx64 " rbx %#" PRIx64 " rcx %#" PRIx64 " rdx %#" PRIx64 "\n"
	        "rsi %#" PRIx64 " rdi %#" PRIx64 " rbp %#" PRIx64 " r8 %#" PRIx64 " r11 %#" PRIx64,
	        r.rip, r.rflags, r.rsp, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8,
	        r.r11);
	zhv_vcpu_sregs_t s;
	st = zhv_vcpu_read_state(vcpu, ZHV_VCPU_SREGS, &s, sizeof(s));
	if (st != ZHV_OK) {
		zt_diag("read_state(SREGS): %s", zhv_status_string(st));
		return;
	}
	zhv_vcpu_events_t ev;
	if (zhv_vcpu_read_state(vcpu, ZHV_VCPU_EVENTS, &ev, sizeof(ev)) == ZHV_OK)
		zt_diag("mp_state %u sipi_vector %#x nmi_pending %u exception_pending %u "
		        "tracker_pending %#x",
		        ev.mp_state, ev.sipi_vector, ev.nmi_pending, ev.exception_pending,
		        ev.tracker_pending);
	zt_diag("cs %#x base %#" PRIx64 " (dpl %u l %u db %u) ss %#x cr0 %#" PRIx64
	        " cr3 %#" PRIx64 " cr4 %#" PRIx64 " efer %#" PRIx64 " gdt %#" PRIx64
	        "/%#x idt %#" PRIx64 "/%#x apic_base %#" PRIx64,
	        s.cs.selector, s.cs.base, s.cs.dpl, s.cs.l, s.cs.db, s.ss.selector, s.cr0, s.cr3, s.cr4,
	        s.efer, s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit, s.apic_base);
}

static void dump_packet(const zhv_packet_t *p)
{
	switch (p->type) {
	case ZHV_PKT_TYPE_GUEST_MEM:
		zt_diag("packet MEM key %#" PRIx64 " addr %#" PRIx64 " rip %#" PRIx64
		        " insn_size %u op_size %u access %u write %u data %#" PRIx64,
		        p->key, p->guest_mem.addr, p->guest_mem.rip,
		        p->guest_mem.instruction_size, p->guest_mem.default_operand_size,
		        p->guest_mem.access_size, p->guest_mem.write, p->guest_mem.data);
		break;
	case ZHV_PKT_TYPE_GUEST_IO:
		zt_diag("packet IO key %#" PRIx64 " port %#x size %u input %u data %#x", p->key,
		        p->guest_io.port, p->guest_io.access_size, p->guest_io.input,
		        p->guest_io.u32);
		break;
	default:
		zt_diag("packet type %u key %#" PRIx64, p->type, p->key);
		break;
	}
}

bool zt_expect_enter(zhv_vcpu_t *vcpu, zhv_status_t want)
{
	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	zhv_status_t st = zhv_vcpu_enter(vcpu, &p);
	if (st == want)
		return true;
	zt_diag("enter returned %s (%d), expected %s (%d)", zhv_status_string(st), st,
	        zhv_status_string(want), want);
	if (st == ZHV_OK)
		dump_packet(&p);
	zt_dump_vcpu(vcpu);
	zt_fail_later();
	return false;
}

zhv_packet_t zt_enter_and_clean_exit(struct zt_case *tc)
{
	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	zhv_status_t st = zhv_vcpu_enter(tc->vcpu, &p);
	if (st != ZHV_OK) {
		zt_diag("EnterAndCleanExit: enter returned %s (%d)", zhv_status_string(st), st);
		zt_dump_vcpu(tc->vcpu);
		zt_fail_now();
	}
	if (p.type != ZHV_PKT_TYPE_GUEST_MEM || p.guest_mem.addr != EXIT_TEST_ADDR ||
	    p.guest_mem.default_operand_size != 4) {
		zt_diag("EnterAndCleanExit: not a clean exit (want a MEM packet for %#x with "
		        "default_operand_size 4)",
		        EXIT_TEST_ADDR);
		dump_packet(&p);
		zt_dump_vcpu(tc->vcpu);
		zt_fail_now();
	}
	if (tc->interrupts_enabled && p.guest_mem.instruction_size != EXIT_INSN_SIZE) {
		zhv_vcpu_state_t s;
		zt_diag("Unexpected exception in guest (instruction_size %u)",
		        p.guest_mem.instruction_size);
		if (zhv_vcpu_read_state(tc->vcpu, ZHV_VCPU_STATE, &s, sizeof(s)) == ZHV_OK)
			zt_diag("vector (rax) = %" PRIu64 "\nerror code (rbx) = %" PRIu64
			        "\nrip (rcx) = %#" PRIx64,
			        s.rax, s.rbx, s.rcx);
		zt_fail_now();
	}
	return p;
}

void zt_enter_clean_exit_at(struct zt_case *tc, uint64_t rip)
{
	zhv_packet_t p = zt_enter_and_clean_exit(tc);
	if (p.guest_mem.rip != rip) {
		zt_diag("the exit came from guest RIP %#" PRIx64 ", expected %#" PRIx64
		        " (an exception handler ran?)",
		        p.guest_mem.rip, rip);
		zt_dump_vcpu(tc->vcpu);
		zt_fail_now();
	}
}

zhv_vcpu_state_t zt_read_state(zhv_vcpu_t *vcpu)
{
	zhv_vcpu_state_t s;
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_STATE, &s, sizeof(s)));
	return s;
}

zhv_vcpu_regs_t zt_read_regs(zhv_vcpu_t *vcpu)
{
	zhv_vcpu_regs_t r;
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
	return r;
}

zhv_vcpu_sregs_t zt_read_sregs(zhv_vcpu_t *vcpu)
{
	zhv_vcpu_sregs_t s;
	ZT_ASSERT_OK(zhv_vcpu_read_state(vcpu, ZHV_VCPU_SREGS, &s, sizeof(s)));
	return s;
}

void zt_vcpu_set_long_mode(zhv_vcpu_t *vcpu, const zhv_vcpu_sregs_t *tmpl, uint64_t rip,
                           uint64_t rsp)
{
	zhv_vcpu_sregs_t s = zt_read_sregs(vcpu);
	uint64_t apic_base = s.apic_base;
	s = *tmpl;
	s.apic_base = apic_base;
	ZT_ASSERT_OK(zhv_vcpu_write_state(vcpu, ZHV_VCPU_SREGS, &s, sizeof(s)));

	zhv_vcpu_regs_t r;
	memset(&r, 0, sizeof(r));
	r.rip = rip;
	r.rsp = rsp;
	r.rflags = 0x2;
	ZT_ASSERT_OK(zhv_vcpu_write_state(vcpu, ZHV_VCPU_REGS, &r, sizeof(r)));
}

uint32_t zt_guest_load32(const struct zt_case *tc, uint64_t gpa)
{
	return __atomic_load_n((const uint32_t *)(tc->mem + gpa), __ATOMIC_SEQ_CST);
}

uint64_t zt_guest_load64(const struct zt_case *tc, uint64_t gpa)
{
	return __atomic_load_n((const uint64_t *)(tc->mem + gpa), __ATOMIC_SEQ_CST);
}

void zt_guest_store32(struct zt_case *tc, uint64_t gpa, uint32_t value)
{
	__atomic_store_n((uint32_t *)(tc->mem + gpa), value, __ATOMIC_SEQ_CST);
}

void zt_guest_store64(struct zt_case *tc, uint64_t gpa, uint64_t value)
{
	__atomic_store_n((uint64_t *)(tc->mem + gpa), value, __ATOMIC_SEQ_CST);
}

/* ------------------------------------------------------------------------ */
/* Runner.                                                                   */

static unsigned env_uint(const char *name, unsigned dflt)
{
	const char *v = getenv(name);
	if (v == NULL || *v == '\0')
		return dflt;
	char *end;
	unsigned long n = strtoul(v, &end, 10);
	return (*end == '\0' && n > 0 && n < 100000) ? (unsigned)n : dflt;
}

static bool env_set(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && strcmp(v, "1") == 0;
}

static bool selected(const char *name, int argc, char **argv)
{
	if (argc <= 1)
		return true;
	for (int i = 1; i < argc; i++)
		if (strstr(name, argv[i]) != NULL)
			return true;
	return false;
}

static void child_setup(unsigned timeout_s)
{
	alarm(timeout_s + 2); /* belt and braces: the parent kills at timeout_s */
	zhv_set_log(log_to_tap, NULL, env_set("ZHV_CONF_DEBUG") ? ZHV_LOG_DEBUG : ZHV_LOG_WARN);
}

/* Probe in a child (a vCPU binds the calling thread; the parent must stay
 * clean for the forks): guest_create and vcpu_create(entry 0). Returns
 * false with (why) filled when KVM is unusable for libzhv. */
static bool probe_kvm(char *why, size_t len)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "no /dev/kvm (%s)", strerror(errno));
		return false;
	}
	close(fd);

	pid_t pid = fork();
	if (pid == 0) {
		zhv_guest_t *g;
		zhv_vcpu_t *v;
		zhv_status_t st = zhv_guest_create(NULL, &g);
		if (st == ZHV_ERR_NOT_SUPPORTED)
			_exit(10);
		if (st != ZHV_OK)
			_exit(11);
		st = zhv_vcpu_create(g, 0, 0, &v);
		if (st == ZHV_ERR_NOT_SUPPORTED)
			_exit(12);
		if (st != ZHV_OK)
			_exit(13);
		zhv_vcpu_destroy(v);
		zhv_guest_destroy(g);
		_exit(0);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		snprintf(why, len, "probe: fork/wait failed");
		return true; /* let the tests tell */
	}
	if (WIFEXITED(status)) {
		switch (WEXITSTATUS(status)) {
		case 10:
			snprintf(why, len, "no usable KVM (zhv_guest_create: NOT_SUPPORTED)");
			return false;
		case 12:
			snprintf(why, len, "no usable KVM (zhv_vcpu_create: NOT_SUPPORTED)");
			return false;
		case 0:
			return true;
		default:
			tap_line("# probe: guest_create/vcpu_create failed (code %d); running the "
			         "tests anyway",
			         WEXITSTATUS(status));
			return true;
		}
	}
	tap_line("# probe: crashed (signal %d); running the tests anyway", WTERMSIG(status));
	return true;
}

enum verdict { V_PASS, V_FAIL, V_SKIP };

static enum verdict run_one(const struct zt_test *t, unsigned timeout_s, char *reason,
                            size_t rlen)
{
	memset(shared, 0, sizeof(*shared));
	reason[0] = '\0';
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(reason, rlen, "fork: %s", strerror(errno));
		return V_FAIL;
	}
	if (pid == 0) {
		child_setup(timeout_s);
		t->fn();
		_exit(atomic_load(&test_failed) ? ZT_EXIT_FAIL : ZT_EXIT_PASS);
	}

	uint64_t deadline = zt_now_ms() + (uint64_t)timeout_s * 1000u;
	int status = 0;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			snprintf(reason, rlen, "waitpid: %s", strerror(errno));
			return V_FAIL;
		}
		if (zt_now_ms() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			zt_diag("timed out after %u s (killed)", timeout_s);
			return V_FAIL;
		}
		zt_sleep_ms(2);
	}
	if (WIFSIGNALED(status)) {
		zt_diag("test process killed by signal %d (%s)", WTERMSIG(status),
		        strsignal(WTERMSIG(status)));
		return V_FAIL;
	}
	switch (WEXITSTATUS(status)) {
	case ZT_EXIT_PASS:
		return V_PASS;
	case ZT_EXIT_SKIP:
		snprintf(reason, rlen, "%s", shared->skip_reason);
		return V_SKIP;
	case ZT_EXIT_FAIL:
		return V_FAIL;
	default:
		zt_diag("test process exited with status %d", WEXITSTATUS(status));
		return V_FAIL;
	}
}

int zt_main(int argc, char **argv, const struct zt_test *const *suites, size_t nsuites)
{
	unsigned timeout_s = env_uint("ZHV_CONF_TIMEOUT", 60);
	bool require_kvm = env_set("ZHV_REQUIRE_KVM");

	size_t n = 0;
	for (size_t s = 0; s < nsuites; s++)
		for (const struct zt_test *t = suites[s]; t->name != NULL; t++)
			n += selected(t->name, argc, argv);

	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	              -1, 0);
	if (shared == MAP_FAILED) {
		tap_line("Bail out! mmap: %s", strerror(errno));
		return 1;
	}

	tap_line("1..%zu", n);
	tap_line("# host: %s CPU%s, %s", zt_vendor_name(zt_host_vendor()),
	         zt_qemu_tcg() ? " (QEMU TCG)" : "",
	         zt_kvm_pvm() ? "kvm_pvm (its quirks may skip)"
	                      : "no kvm_pvm (every Zircon assertion runs; no kvm_pvm quirk skips)");
	char why[256] = "";
	bool kvm_ok = probe_kvm(why, sizeof(why));
	if (!kvm_ok)
		tap_line("# %s%s", why, require_kvm ? " and ZHV_REQUIRE_KVM=1: every test fails" : "");

	size_t num = 0, failed = 0;
	for (size_t s = 0; s < nsuites; s++) {
		for (const struct zt_test *t = suites[s]; t->name != NULL; t++) {
			if (!selected(t->name, argc, argv))
				continue;
			num++;
			if (!kvm_ok) {
				if (require_kvm) {
					tap_line("not ok %zu %s", num, t->name);
					failed++;
				} else {
					tap_line("ok %zu %s # SKIP %s", num, t->name, why);
				}
				continue;
			}
			char reason[512];
			uint64_t t0 = zt_now_ms();
			enum verdict v = run_one(t, timeout_s, reason, sizeof(reason));
			uint64_t dt = zt_now_ms() - t0;
			switch (v) {
			case V_PASS:
				zt_diag("%s: %" PRIu64 " ms", t->name, dt);
				tap_line("ok %zu %s", num, t->name);
				break;
			case V_SKIP:
				tap_line("ok %zu %s # SKIP %s", num, t->name, reason);
				break;
			case V_FAIL:
				if (reason[0] != '\0')
					zt_diag("%s", reason);
				tap_line("not ok %zu %s", num, t->name);
				failed++;
				break;
			}
		}
	}
	if (failed > 0)
		zt_diag("%zu of %zu tests failed", failed, num);
	return failed > 0 ? 1 : 0;
}
