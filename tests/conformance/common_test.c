/* common_test.c: Zircon's common hypervisor tests (spec 6.2, tests 1-13)
 * and "bell and max user" (spec 6.5), on libzhv. Guest code: common_guest.S
 * (same order). Where a test differs from Zircon's, a comment says why. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "suites.h"

ZT_GUEST_CODE(vcpu_enter);
ZT_GUEST_CODE(vcpu_wait);
ZT_GUEST_CODE(vcpu_wait_sti);
ZT_GUEST_CODE(vcpu_count);
ZT_GUEST_CODE(vmar_protect);
ZT_GUEST_CODE(guest_set_trap);
ZT_GUEST_CODE(vcpu_always_exit);
extern const char vcpu_enter_exit[], guest_set_trap_exit[];
extern const char vmar_protect_second[], vmar_protect_exit[];

#define VCPU_ENTER_EXIT ZT_GUEST_ADDR(vcpu_enter_start, vcpu_enter_exit)
#define SET_TRAP_EXIT ZT_GUEST_ADDR(guest_set_trap_start, guest_set_trap_exit)

static zhv_time_t deadline_ms(int64_t ms)
{
	return zhv_deadline_after(ms * 1000000);
}

/* 1. VcpuEnter: CR3 and GS_BASE accesses and CPUID run without leaving the
 * guest; the only exit is the final store. */
static void test_vcpu_enter(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, vcpu_enter_start, vcpu_enter_end);
	zt_enter_clean_exit_at(&tc, VCPU_ENTER_EXIT);

	/* Ours: CPUID leaf 0 was answered from a CPUID table (without one,
	 * KVM answers all zeros, kvm-on-this-machine.md section 8). */
	zhv_vcpu_state_t s = zt_read_state(tc.vcpu);
	ZT_EXPECT_GE(s.rax & 0xFFFFFFFFu, 1);
	ZT_EXPECT_NE(s.rbx | s.rcx | s.rdx, 0);
	zt_case_destroy(&tc);
}

/* 2. VcpuKick: a vCPU halted with IF = 0 on another thread stays in enter
 * until the kick, which makes enter return CANCELED. */
struct kick_ctx {
	struct zt_case tc;
	sem_t ready;
	atomic_bool returned;
	zhv_status_t status;
};

static void *kick_vcpu_thread(void *arg)
{
	struct kick_ctx *c = arg;
	zt_setup_guest(&c->tc, vcpu_wait_start, vcpu_wait_end);
	sem_post(&c->ready);
	zhv_packet_t p;
	c->status = zhv_vcpu_enter(c->tc.vcpu, &p);
	atomic_store(&c->returned, true);
	return NULL;
}

static bool kick_returned(void *arg)
{
	return atomic_load(&((struct kick_ctx *)arg)->returned);
}

static void test_vcpu_kick(void)
{
	struct kick_ctx c;
	memset(&c, 0, sizeof(c));
	sem_init(&c.ready, 0, 0);
	zt_thread_t *t = zt_thread_start(kick_vcpu_thread, &c);
	ZT_ASSERT(zt_sem_wait_ms(&c.ready, 10000));

	/* Ours: a halted vCPU does not leave enter by itself. */
	zt_sleep_ms(50);
	ZT_EXPECT(!atomic_load(&c.returned));

	ZT_ASSERT_OK(zhv_vcpu_kick(c.tc.vcpu));
	ZT_EXPECT(zt_wait_until_ms(kick_returned, &c, 10000));
	zt_thread_join(t);
	ZT_EXPECT_STATUS(c.status, ZHV_ERR_CANCELED);

	/* Ours: the kick was consumed. */
	zhv_vcpu_info_t info;
	ZT_ASSERT_OK(zhv_vcpu_get_info(c.tc.vcpu, &info));
	ZT_EXPECT_EQ(info.flags & ZHV_VCPU_INFO_FLAG_KICKED, 0);
	ZT_EXPECT_EQ(info.last_exit, ZHV_EXIT_CANCELED);
	zt_case_destroy(&c.tc);
}

/* 3. VcpuSuspendThread.
 * Adaptation: Linux has no zx_task_suspend for one thread. We suspend the
 * vCPU thread the way a debugger-style suspend looks to the library: a
 * signal (SIGUSR1, installed without SA_RESTART) whose handler blocks on a
 * semaphore until "resume". KVM_RUN is interrupted with EINTR. The guest
 * counts in memory, so the host sees whether it runs. Checks: the handler
 * runs while the thread is in enter (libzhv does not block foreign signals
 * during KVM_RUN); while suspended the guest does not run; after the
 * resume the guest runs again within the same enter (libzhv re-enters the
 * guest after a foreign signal, as Zircon restarts the syscall, and does
 * not return or wait); the kick then makes enter return CANCELED and the
 * guest stops. */
static sem_t suspend_resume;
static atomic_int suspend_state; /* 0 running, 1 suspended, 2 resumed */

static void suspend_handler(int sig)
{
	(void)sig;
	atomic_store(&suspend_state, 1);
	while (sem_wait(&suspend_resume) != 0) {
	}
	atomic_store(&suspend_state, 2);
}

struct suspend_ctx {
	struct zt_case tc;
	sem_t ready;
	atomic_bool returned;
	zhv_status_t status;
};

static void *suspend_vcpu_thread(void *arg)
{
	struct suspend_ctx *c = arg;
	zt_setup_guest(&c->tc, vcpu_count_start, vcpu_count_end);
	sem_post(&c->ready);
	zhv_packet_t p;
	c->status = zhv_vcpu_enter(c->tc.vcpu, &p);
	atomic_store(&c->returned, true);
	return NULL;
}

static bool suspend_is(void *arg)
{
	return atomic_load(&suspend_state) == (int)(intptr_t)arg;
}

static bool suspend_returned(void *arg)
{
	return atomic_load(&((struct suspend_ctx *)arg)->returned);
}

struct count_above {
	struct zt_case *tc;
	uint64_t value;
};

static bool guest_count_above(void *arg)
{
	struct count_above *a = arg;
	return zt_guest_load64(a->tc, GUEST_MISC) > a->value;
}

static void test_vcpu_suspend_thread(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = suspend_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;
	ZT_ASSERT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	sem_init(&suspend_resume, 0, 0);

	struct suspend_ctx c;
	memset(&c, 0, sizeof(c));
	sem_init(&c.ready, 0, 0);
	pthread_t tid;
	ZT_ASSERT_EQ(pthread_create(&tid, NULL, suspend_vcpu_thread, &c), 0);
	ZT_ASSERT(zt_sem_wait_ms(&c.ready, 10000));
	struct count_above above = {.tc = &c.tc, .value = 0};
	ZT_ASSERT(zt_wait_until_ms(guest_count_above, &above, 10000)); /* the guest runs */

	/* Suspend: the handler runs on the thread inside enter; the guest stops. */
	ZT_ASSERT_EQ(pthread_kill(tid, SIGUSR1), 0);
	ZT_ASSERT(zt_wait_until_ms(suspend_is, (void *)1, 5000));
	uint64_t at_suspend = zt_guest_load64(&c.tc, GUEST_MISC);
	zt_sleep_ms(100);
	ZT_EXPECT_EQ(zt_guest_load64(&c.tc, GUEST_MISC), at_suspend);
	ZT_EXPECT(!atomic_load(&c.returned));

	/* Resume: enter does not return, and the guest counts again. */
	sem_post(&suspend_resume);
	ZT_ASSERT(zt_wait_until_ms(suspend_is, (void *)2, 5000));
	above.value = at_suspend;
	if (!zt_wait_until_ms(guest_count_above, &above, 5000)) {
		zt_diag("the guest did not run again after the resume (count %llu)",
		        (unsigned long long)at_suspend);
		zt_fail_later();
	}
	ZT_EXPECT(!atomic_load(&c.returned));

	ZT_ASSERT_OK(zhv_vcpu_kick(c.tc.vcpu));
	ZT_EXPECT(zt_wait_until_ms(suspend_returned, &c, 10000));
	ZT_ASSERT_EQ(pthread_join(tid, NULL), 0);
	ZT_EXPECT_STATUS(c.status, ZHV_ERR_CANCELED);
	/* Out of enter, the guest no longer runs. */
	uint64_t at_return = zt_guest_load64(&c.tc, GUEST_MISC);
	zt_sleep_ms(20);
	ZT_EXPECT_EQ(zt_guest_load64(&c.tc, GUEST_MISC), at_return);
	zt_case_destroy(&c.tc);
}

/* 4. VcpuProcessDestruction.
 * Adaptation: a child process creates a guest and a vCPU on a detached
 * thread whose guest flags GUEST_FLAGS[0] and halts in "sti; hlt" inside
 * enter; the child then exits (exit(42): atexit handlers and destructors
 * run) while that thread is still in enter. We check that the child really
 * got there (the guest ran; the vCPU thread is blocked in the KVM_RUN
 * ioctl, per /proc/PID/task/TID/syscall; enter had not returned) and that
 * the process then ends with exactly status 42: no crash, no hang, no
 * other exit path taken. */
#define KVM_RUN_IOCTL 0xae80
#define SYS_IOCTL_NR 16 /* x86-64 */

struct destruct_ctx {
	struct zt_case tc;
	sem_t ready;
	atomic_int tid;
};

static void *destruct_vcpu_thread(void *arg)
{
	struct destruct_ctx *c = arg;
	zt_setup_guest(&c->tc, vcpu_wait_sti_start, vcpu_wait_sti_end);
	atomic_store(&c->tid, (int)gettid());
	sem_post(&c->ready);
	zhv_packet_t p;
	zhv_status_t st = zhv_vcpu_enter(c->tc.vcpu, &p);
	zt_diag("child: enter returned %s before the process exited", zhv_status_string(st));
	_exit(3);
}

static bool destruct_guest_ran(void *arg)
{
	return zt_guest_load32(arg, GUEST_FLAGS) == 1;
}

static void destruct_child(int to_parent, int from_parent)
{
	static struct destruct_ctx c;
	sem_init(&c.ready, 0, 0);
	pthread_attr_t attr;
	pthread_t tid;
	if (pthread_attr_init(&attr) != 0 ||
	    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
	    pthread_create(&tid, &attr, destruct_vcpu_thread, &c) != 0)
		_exit(4);
	if (!zt_sem_wait_ms(&c.ready, 10000) ||
	    !zt_wait_until_ms(destruct_guest_ran, &c.tc, 10000))
		_exit(5);
	int vcpu_tid = atomic_load(&c.tid);
	char go;
	if (write(to_parent, &vcpu_tid, sizeof(vcpu_tid)) != sizeof(vcpu_tid) ||
	    read(from_parent, &go, 1) != 1)
		_exit(6);
	exit(42);
}

/* Whether thread (tid) of (pid) is blocked in ioctl(fd, KVM_RUN). */
static bool in_kvm_run(pid_t pid, int tid, char *line, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)pid, tid);
	line[0] = '\0';
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(line, len, "%s: %s", path, strerror(errno));
		return false;
	}
	if (fgets(line, (int)len, f) == NULL)
		line[0] = '\0';
	fclose(f);
	long nr = -1;
	unsigned long fd = 0, req = 0;
	return sscanf(line, "%ld %lx %lx", &nr, &fd, &req) == 3 && nr == SYS_IOCTL_NR &&
	       req == KVM_RUN_IOCTL;
}

static void test_vcpu_process_destruction(void)
{
	int up[2], down[2];
	ZT_ASSERT_EQ(pipe(up), 0);
	ZT_ASSERT_EQ(pipe(down), 0);
	pid_t pid = fork();
	ZT_ASSERT(pid >= 0);
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		destruct_child(up[1], down[0]);
	}
	close(up[1]);
	close(down[0]);

	int vcpu_tid = 0;
	struct pollfd pfd = {.fd = up[0], .events = POLLIN};
	if (poll(&pfd, 1, 20000) != 1 || read(up[0], &vcpu_tid, sizeof(vcpu_tid)) != sizeof(vcpu_tid)) {
		kill(pid, SIGKILL);
		int status = 0;
		waitpid(pid, &status, 0);
		zt_diag("the child did not get its guest running (status %#x)", status);
		zt_fail_now();
	}
	char line[256];
	uint64_t deadline = zt_now_ms() + 5000;
	bool blocked;
	while (!(blocked = in_kvm_run(pid, vcpu_tid, line, sizeof(line))) && zt_now_ms() < deadline)
		zt_sleep_ms(5);
	if (!blocked) {
		zt_diag("the child's vCPU thread is not blocked in KVM_RUN: syscall \"%s\"", line);
		zt_fail_later();
	}

	char go = 1;
	ZT_ASSERT_EQ(write(down[1], &go, 1), 1);
	int status = 0;
	deadline = zt_now_ms() + 20000;
	pid_t w;
	while ((w = waitpid(pid, &status, WNOHANG)) == 0 && zt_now_ms() < deadline)
		zt_sleep_ms(2);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		zt_diag("the child hung while exiting");
		zt_fail_now();
	}
	ZT_ASSERT_EQ(w, pid);
	if (WIFSIGNALED(status))
		zt_diag("child killed by signal %d", WTERMSIG(status));
	ZT_EXPECT(WIFEXITED(status));
	ZT_EXPECT_EQ(WEXITSTATUS(status), 42);
	close(up[0]);
	close(down[1]);
}

/* 5. VcpuInvalidThreadReuse: a second vCPU on a thread that has one is
 * BAD_STATE; once the first guest and vCPU are gone, the thread may create
 * a new one. */
static void test_vcpu_invalid_thread_reuse(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, vcpu_enter_start, vcpu_enter_end);
	zhv_vcpu_t *vcpu = NULL;
	ZT_EXPECT_STATUS(zhv_vcpu_create(tc.guest, 0, 0, &vcpu), ZHV_ERR_BAD_STATE);
	zt_case_destroy(&tc);

	zt_setup_guest(&tc, vcpu_enter_start, vcpu_enter_end);
	zt_enter_clean_exit_at(&tc, VCPU_ENTER_EXIT);
	zt_case_destroy(&tc);
}

/* 6. GuestSetTrapWithMem: a MEM trap stops enter with a packet; the next
 * enter goes on after the store (RIP was advanced). */
static void test_guest_set_trap_with_mem(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, guest_set_trap_start, guest_set_trap_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_MEM, TRAP_ADDR, ZHV_PAGE_SIZE, NULL,
	                                TRAP_KEY));

	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	ZT_ASSERT_OK(zhv_vcpu_enter(tc.vcpu, &p));
	ZT_EXPECT_EQ(p.key, TRAP_KEY);
	ZT_EXPECT_EQ(p.type, ZHV_PKT_TYPE_GUEST_MEM);
	/* Ours: the rest of the packet, for "movq $0, (TRAP_ADDR)". */
	ZT_EXPECT_EQ(p.status, ZHV_OK);
	ZT_EXPECT_EQ(p.guest_mem.addr, TRAP_ADDR);
	ZT_EXPECT_EQ(p.guest_mem.rip, GUEST_ENTRY);
	ZT_EXPECT_EQ(p.guest_mem.cr3, GUEST_PML4);
	ZT_EXPECT_EQ(p.guest_mem.instruction_size, 12);
	ZT_EXPECT_EQ(p.guest_mem.default_operand_size, 4);
	ZT_EXPECT_EQ(p.guest_mem.access_size, 8);
	ZT_EXPECT_EQ(p.guest_mem.write, 1);
	ZT_EXPECT_EQ(p.guest_mem.data, 0);

	zt_enter_clean_exit_at(&tc, SET_TRAP_EXIT);
	zt_case_destroy(&tc);
}

/* 7. GuestSetTrapWithBell: a BELL write queues a packet on the port and the
 * guest runs on to the exit store within the same enter. */
static void test_guest_set_trap_with_bell(void)
{
	zhv_port_t *port;
	ZT_ASSERT_OK(zhv_port_create(0, &port));
	struct zt_case tc;
	zt_setup_guest(&tc, guest_set_trap_start, guest_set_trap_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_BELL, TRAP_ADDR, ZHV_PAGE_SIZE, port,
	                                TRAP_KEY));

	zt_enter_clean_exit_at(&tc, SET_TRAP_EXIT);

	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	ZT_ASSERT_OK(zhv_port_wait(port, deadline_ms(5000), &p));
	ZT_EXPECT_EQ(p.key, TRAP_KEY);
	ZT_EXPECT_EQ(p.type, ZHV_PKT_TYPE_GUEST_BELL);
	ZT_EXPECT_EQ(p.status, ZHV_OK);
	ZT_EXPECT_EQ(p.guest_bell.addr, TRAP_ADDR);
	/* Ours: one store, one packet. */
	ZT_EXPECT_STATUS(zhv_port_wait(port, 0, &p), ZHV_ERR_TIMED_OUT);

	zt_case_destroy(&tc);
	zhv_port_destroy(port);
}

/* 8. GuestSetTrapWithBellDrop: the guest and vCPU go away while the BELL
 * packet is still queued on a port that outlives them. Must not crash.
 * Ours: zhv.h says the trap cancels its queued packets at that point. */
static void test_guest_set_trap_with_bell_drop(void)
{
	zhv_port_t *port;
	ZT_ASSERT_OK(zhv_port_create(0, &port));
	struct zt_case tc;
	zt_setup_guest(&tc, guest_set_trap_start, guest_set_trap_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_BELL, TRAP_ADDR, ZHV_PAGE_SIZE, port,
	                                TRAP_KEY));
	zt_enter_clean_exit_at(&tc, SET_TRAP_EXIT);
	zt_case_destroy(&tc);

	zhv_packet_t p;
	ZT_EXPECT_STATUS(zhv_port_wait(port, 0, &p), ZHV_ERR_TIMED_OUT);
	zhv_port_destroy(port);
}

/* 9. GuestSetTrapWithBellAndUser: destroying the guest cancels the trap's
 * packets but not a user packet with the same key. */
static void test_guest_set_trap_with_bell_and_user(void)
{
	zhv_port_t *port;
	ZT_ASSERT_OK(zhv_port_create(0, &port));
	zhv_packet_t user;
	memset(&user, 0, sizeof(user));
	user.key = TRAP_KEY;
	user.type = ZHV_PKT_TYPE_USER;
	user.user.u64[0] = 0xC0FFEE;
	ZT_ASSERT_OK(zhv_port_queue(port, &user));

	struct zt_case tc;
	zt_setup_guest(&tc, guest_set_trap_start, guest_set_trap_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_BELL, TRAP_ADDR, ZHV_PAGE_SIZE, port,
	                                TRAP_KEY));
	zt_enter_clean_exit_at(&tc, SET_TRAP_EXIT);
	zt_case_destroy(&tc);

	zhv_packet_t p;
	memset(&p, 0, sizeof(p));
	ZT_ASSERT_OK(zhv_port_wait(port, deadline_ms(5000), &p));
	ZT_EXPECT_EQ(p.key, TRAP_KEY);
	ZT_EXPECT_EQ(p.type, ZHV_PKT_TYPE_USER);
	ZT_EXPECT_EQ(p.user.u64[0], 0xC0FFEE);
	/* Ours: the BELL packet was cancelled with its trap. */
	ZT_EXPECT_STATUS(zhv_port_wait(port, 0, &p), ZHV_ERR_TIMED_OUT);
	zhv_port_destroy(port);
}

/* 10. GuestSetTrapClosePort.
 * Adaptation: zhv_port_destroy stands for closing the port handle. The
 * BELL store then fails enter with BAD_STATE; the store is skipped and the
 * next enter reaches the exit. */
static void test_guest_set_trap_close_port(void)
{
	zhv_port_t *port;
	ZT_ASSERT_OK(zhv_port_create(0, &port));
	struct zt_case tc;
	zt_setup_guest(&tc, guest_set_trap_start, guest_set_trap_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_BELL, TRAP_ADDR, ZHV_PAGE_SIZE, port,
	                                TRAP_KEY));
	zhv_port_destroy(port);

	zhv_packet_t p;
	ZT_EXPECT_STATUS(zhv_vcpu_enter(tc.vcpu, &p), ZHV_ERR_BAD_STATE);
	zt_enter_clean_exit_at(&tc, SET_TRAP_EXIT);
	zt_case_destroy(&tc);
}

/* 11. VcpuUseAfterThreadExits: the vCPU's thread has exited; interrupt and
 * destroy from the main thread must work. Ours: kick and get_info too. */
static void *use_after_exit_thread(void *arg)
{
	zt_setup_guest(arg, vcpu_enter_start, vcpu_enter_end);
	return NULL;
}

static void test_vcpu_use_after_thread_exits(void)
{
	struct zt_case tc;
	zt_thread_join(zt_thread_start(use_after_exit_thread, &tc));

	ZT_EXPECT_OK(zhv_vcpu_interrupt(tc.vcpu, INTERRUPT_VECTOR));
	ZT_EXPECT_OK(zhv_vcpu_kick(tc.vcpu));
	zhv_vcpu_info_t info;
	ZT_EXPECT_OK(zhv_vcpu_get_info(tc.vcpu, &info));
	/* Not the vCPU's thread. */
	zhv_packet_t p;
	ZT_EXPECT_STATUS(zhv_vcpu_enter(tc.vcpu, &p), ZHV_ERR_BAD_STATE);
	zt_case_destroy(&tc);
}

/* 12. VcpuDeleteFromOtherThread: a thread runs its vCPU (three MEM exits),
 * then idles; the main thread destroys the vCPU. Must not crash. */
struct delete_ctx {
	struct zt_case tc;
	sem_t ready, done;
};

static void *delete_vcpu_thread(void *arg)
{
	struct delete_ctx *c = arg;
	zt_setup_guest(&c->tc, vcpu_always_exit_start, vcpu_always_exit_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(c->tc.guest, ZHV_TRAP_MEM, TRAP_ADDR, ZHV_PAGE_SIZE, NULL,
	                                TRAP_KEY));
	for (int i = 0; i < 3; i++) {
		zhv_packet_t p;
		memset(&p, 0, sizeof(p));
		ZT_ASSERT_OK(zhv_vcpu_enter(c->tc.vcpu, &p));
		ZT_EXPECT_EQ(p.type, ZHV_PKT_TYPE_GUEST_MEM);
		ZT_EXPECT_EQ(p.key, TRAP_KEY);
	}
	sem_post(&c->ready);
	ZT_ASSERT(zt_sem_wait_ms(&c->done, 20000));
	return NULL;
}

static void test_vcpu_delete_from_other_thread(void)
{
	struct delete_ctx c;
	memset(&c, 0, sizeof(c));
	sem_init(&c.ready, 0, 0);
	sem_init(&c.done, 0, 0);
	zt_thread_t *t = zt_thread_start(delete_vcpu_thread, &c);
	ZT_ASSERT(zt_sem_wait_ms(&c.ready, 10000));

	zhv_vcpu_destroy(c.tc.vcpu);
	c.tc.vcpu = NULL;

	sem_post(&c.done);
	zt_thread_join(t);
	zt_case_destroy(&c.tc);
}

/* 13. VmarProtect.
 * Adaptation: zhv_guest_protect stands for zx_vmar_protect on the guest
 * VMAR, on Zircon's range (GPA 0, one page: the guest's PML4). Zircon
 * protects to RWX, which changes nothing; we protect to READ, which must
 * change what the guest sees: its page walks and its read of that page
 * still work, its store there stops enter with ACCESS_DENIED and leaves
 * memory unchanged. As for an access to nothing (zhv.h, NOT_FOUND), the
 * write is dropped and the guest resumes after it (KVM has completed the
 * instruction when it reports the write). Protected back to RWX, the
 * page takes the guest's next store and the guest reaches its clean exit. */
#define VMAR_PROTECT_VALUE2 0x3c3c3c00ull /* must match common_guest.S */

static void test_vmar_protect(void)
{
	struct zt_case tc;
	zt_setup_guest(&tc, vmar_protect_start, vmar_protect_end);
	zt_enter_clean_exit_at(&tc, GUEST_ENTRY);

	/* The walks through this page must never need to write it (A bit). */
	zt_guest_store64(&tc, GUEST_PML4, zt_guest_load64(&tc, GUEST_PML4) | 0x20);
	ZT_ASSERT_OK(zhv_guest_protect(tc.guest, 0, ZHV_PAGE_SIZE, ZHV_MAP_READ));
	uint32_t flags = 0;
	ZT_EXPECT_OK(zhv_guest_query(tc.guest, 0, &flags));
	ZT_EXPECT_EQ(flags, ZHV_MAP_READ);

	zt_expect_enter(tc.vcpu, ZHV_ERR_ACCESS_DENIED);
	ZT_EXPECT_EQ(zt_guest_load64(&tc, GUEST_PML4 + 0xFF8), 0);
	zhv_vcpu_regs_t r = zt_read_regs(tc.vcpu);
	ZT_EXPECT_EQ(r.rax, zt_guest_load64(&tc, GUEST_PML4)); /* the read worked */
	ZT_EXPECT_EQ(r.rip, ZT_GUEST_ADDR(vmar_protect_start, vmar_protect_second));

	ZT_ASSERT_OK(zhv_guest_protect(tc.guest, 0, ZHV_PAGE_SIZE, ZHV_MAP_RWX));
	ZT_EXPECT_OK(zhv_guest_query(tc.guest, 0, &flags));
	ZT_EXPECT_EQ(flags, ZHV_MAP_RWX);
	zt_enter_clean_exit_at(&tc, ZT_GUEST_ADDR(vmar_protect_start, vmar_protect_exit));
	ZT_EXPECT_EQ(zt_guest_load64(&tc, GUEST_PML4 + 0xFF0), VMAR_PROTECT_VALUE2);
	ZT_EXPECT_EQ(zt_guest_load64(&tc, GUEST_PML4 + 0xFF8), 0); /* dropped */
	zt_case_destroy(&tc);
}

/* 6.5 guest_set_trap_with_bell_and_max_user: the port is full of user
 * packets (queue returns SHOULD_WAIT); a BELL on that port still fires and
 * the vCPU reaches the exit: trap packets bypass the user quota. */
static void test_guest_set_trap_with_bell_and_max_user(void)
{
	zhv_port_t *port;
	ZT_ASSERT_OK(zhv_port_create(0, &port));
	zhv_packet_t user;
	memset(&user, 0, sizeof(user));
	user.key = 7;
	uint32_t queued = 0;
	zhv_status_t st;
	while ((st = zhv_port_queue(port, &user)) == ZHV_OK && queued < 100000)
		queued++;
	ZT_ASSERT_STATUS(st, ZHV_ERR_SHOULD_WAIT);
	/* Ours: the documented default quota. */
	ZT_EXPECT_EQ(queued, ZHV_PORT_DEFAULT_MAX_USER_PACKETS);

	struct zt_case tc;
	zt_setup_guest(&tc, guest_set_trap_start, guest_set_trap_end);
	ZT_ASSERT_OK(zhv_guest_set_trap(tc.guest, ZHV_TRAP_BELL, TRAP_ADDR, ZHV_PAGE_SIZE, port,
	                                TRAP_KEY));
	zt_enter_clean_exit_at(&tc, SET_TRAP_EXIT);

	/* Drain: all the user packets, then the BELL. */
	uint32_t users = 0, bells = 0;
	zhv_packet_t p;
	while (zhv_port_wait(port, 0, &p) == ZHV_OK) {
		if (p.type == ZHV_PKT_TYPE_USER && p.key == 7) {
			users++;
		} else if (p.type == ZHV_PKT_TYPE_GUEST_BELL) {
			bells++;
			ZT_EXPECT_EQ(p.key, TRAP_KEY);
			ZT_EXPECT_EQ(p.guest_bell.addr, TRAP_ADDR);
		} else {
			zt_diag("unexpected packet type %u key %#llx", p.type,
			        (unsigned long long)p.key);
			zt_fail_later();
		}
	}
	ZT_EXPECT_EQ(users, queued);
	ZT_EXPECT_EQ(bells, 1);
	zt_case_destroy(&tc);
	zhv_port_destroy(port);
}

const struct zt_test zt_common_tests[] = {
	{"01_vcpu_enter", test_vcpu_enter},
	{"02_vcpu_kick", test_vcpu_kick},
	{"03_vcpu_suspend_thread", test_vcpu_suspend_thread},
	{"04_vcpu_process_destruction", test_vcpu_process_destruction},
	{"05_vcpu_invalid_thread_reuse", test_vcpu_invalid_thread_reuse},
	{"06_guest_set_trap_with_mem", test_guest_set_trap_with_mem},
	{"07_guest_set_trap_with_bell", test_guest_set_trap_with_bell},
	{"08_guest_set_trap_with_bell_drop", test_guest_set_trap_with_bell_drop},
	{"09_guest_set_trap_with_bell_and_user", test_guest_set_trap_with_bell_and_user},
	{"10_guest_set_trap_close_port", test_guest_set_trap_close_port},
	{"11_vcpu_use_after_thread_exits", test_vcpu_use_after_thread_exits},
	{"12_vcpu_delete_from_other_thread", test_vcpu_delete_from_other_thread},
	{"13_vmar_protect", test_vmar_protect},
	{"6.5_guest_set_trap_with_bell_and_max_user", test_guest_set_trap_with_bell_and_max_user},
	{NULL, NULL},
};
