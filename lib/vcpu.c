/* vcpu.c: vCPU objects, their thread binding, the enter loop (spec 3.1),
 * kick (spec 5), interrupt (DESIGN decision 2) and the run gate that keeps
 * vCPUs out of KVM_RUN while memory slots change (DESIGN decision 9). */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "zhv_priv.h"

#define ZHV_KICK_SIGNAL (SIGRTMIN + 4)

/* ---- thread binding ------------------------------------------------------
 * A vCPU belongs to the thread that created it, and a thread owns at most
 * one vCPU. The binding is a small refcounted object shared by the thread
 * (through a thread-local pointer and a pthread key whose destructor runs
 * at thread exit) and by the vCPU. Its (tid) is the thread's kernel id
 * while the thread lives and 0 after it exited, so that a kick (which must
 * be async-signal-safe: no locks) never signals a thread that is gone. */
struct thread_binding {
	_Atomic pid_t tid;
	atomic_int refs;
	zhv_vcpu_t *_Atomic vcpu;
	/* A kick signal was sent to the thread and not taken yet: pokes send
	 * no other. The signal is a real-time one, and real-time signals
	 * queue: without this, a thread kicking in a loop queued them faster
	 * than the vCPU thread could take them, which kept that thread in
	 * its drain loop, away from KVM_RUN, for as long as the kicks went on
	 * (and filled the user's queue of pending signals). */
	atomic_bool signaled;
};

/* initial-exec: the kick signal's handler reads it, and a first access to
 * a dynamic TLS block may allocate (not async-signal-safe). */
static __thread struct thread_binding *tls_binding __attribute__((tls_model("initial-exec")));
static pthread_key_t binding_key;
static pthread_once_t binding_once = PTHREAD_ONCE_INIT;
static bool binding_key_ok;

static void binding_unref(struct thread_binding *b)
{
	if (atomic_fetch_sub(&b->refs, 1) == 1)
		free(b);
}

static void binding_thread_exit(void *arg)
{
	struct thread_binding *b = arg;
	atomic_store(&b->tid, 0);
	binding_unref(b);
}

static void binding_global_init(void)
{
	binding_key_ok = pthread_key_create(&binding_key, binding_thread_exit) == 0;
}

static struct thread_binding *binding_for_current_thread(void)
{
	pthread_once(&binding_once, binding_global_init);
	if (tls_binding)
		return tls_binding;
	if (!binding_key_ok)
		return NULL;
	struct thread_binding *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	atomic_init(&b->tid, (pid_t)syscall(SYS_gettid));
	atomic_init(&b->refs, 1); /* the thread's reference */
	atomic_init(&b->signaled, false);
	if (pthread_setspecific(binding_key, b) != 0) {
		free(b);
		return NULL;
	}
	tls_binding = b;
	return b;
}

static bool on_vcpu_thread(const zhv_vcpu_t *vcpu)
{
	return tls_binding != NULL && tls_binding == vcpu->binding;
}

/* ---- the kick signal -------------------------------------------------------
 * The signal does nothing by itself: it only makes KVM_RUN return EINTR; the
 * state travels in the vCPU's atomic flags and in immediate_exit. A vCPU
 * thread keeps it blocked; KVM unblocks it only inside KVM_RUN (the mask
 * given with KVM_SET_SIGNAL_MASK), so a kick never interrupts the
 * application's own system calls, whatever its signal mask. */
static pthread_mutex_t signal_lock = PTHREAD_MUTEX_INITIALIZER;

static void kick_signal_handler(int sig)
{
	(void)sig;
	/* Taken here, not by KVM_RUN (the application unblocked it): the
	 * next poke signals again. */
	struct thread_binding *b = tls_binding;
	if (b)
		atomic_store(&b->signaled, false);
}

/* Install the handler, unless the application has its own there. */
static zhv_status_t kick_signal_install(void)
{
	zhv_status_t st = ZHV_OK;
	struct sigaction old;
	pthread_mutex_lock(&signal_lock);
	if (sigaction(ZHV_KICK_SIGNAL, NULL, &old) != 0) {
		st = ZHV_ERR_INTERNAL;
	} else if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == kick_signal_handler) {
		/* ours already */
	} else if (!(old.sa_flags & SA_SIGINFO) &&
	           (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN)) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = kick_signal_handler;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		if (sigaction(ZHV_KICK_SIGNAL, &sa, NULL) != 0)
			st = ZHV_ERR_INTERNAL;
	} else {
		zhv_log(ZHV_LOG_ERROR,
		        "the application has a handler for libzhv's kick signal (SIGRTMIN+4); "
		        "libzhv cannot kick vCPUs");
		st = ZHV_ERR_ALREADY_EXISTS;
	}
	pthread_mutex_unlock(&signal_lock);
	return st;
}

static void kick_signal_set(sigset_t *s)
{
	sigemptyset(s);
	sigaddset(s, ZHV_KICK_SIGNAL);
}

/* The kernel's sigset (64 signals) of a glibc sigset_t. */
static uint64_t kernel_sigset(const sigset_t *s)
{
	uint64_t k = 0;
	for (int sig = 1; sig <= 64; sig++)
		if (sigismember(s, sig) == 1)
			k |= 1ull << (sig - 1);
	return k;
}

/* Give KVM_RUN the thread's current mask minus the kick signal. Checked at
 * every enter (one rt_sigprocmask call), so a signal the application
 * unblocks or blocks later is treated inside KVM_RUN as outside it. */
static zhv_status_t vcpu_sync_sigmask(zhv_vcpu_t *v)
{
	sigset_t cur;
	if (pthread_sigmask(SIG_BLOCK, NULL, &cur) != 0)
		return ZHV_ERR_INTERNAL;
	uint64_t mask = kernel_sigset(&cur) & ~(1ull << (ZHV_KICK_SIGNAL - 1));
	if (v->run_sigmask_set && mask == v->run_sigmask)
		return ZHV_OK;
	union {
		struct kvm_signal_mask h;
		uint8_t buf[sizeof(struct kvm_signal_mask) + sizeof(uint64_t)];
	} km;
	km.h.len = sizeof(uint64_t);
	memcpy(km.h.sigset, &mask, sizeof(mask));
	int e = zhv_ioctl(v->fd, KVM_SET_SIGNAL_MASK, &km.h);
	if (e < 0) {
		zhv_log(ZHV_LOG_ERROR, "vcpu %u: KVM_SET_SIGNAL_MASK: %s", v->id, strerror(-e));
		return ZHV_ERR_IO;
	}
	v->run_sigmask = mask;
	v->run_sigmask_set = true;
	return ZHV_OK;
}

/* A kick that arrived while KVM_RUN ran stays pending once the thread's
 * mask blocks the signal again: take it, or the next KVM_RUN would return
 * EINTR at once, forever. The kick itself is in v->kicked. */
static void drain_kick_signals(zhv_vcpu_t *v)
{
	sigset_t s;
	kick_signal_set(&s);
	struct timespec zero = {0, 0};
	while (sigtimedwait(&s, NULL, &zero) > 0)
		;
	/* Taken: the next poke signals again. (No poke sent one since the
	 * flag was set; a poke from now on sets immediate_exit before it
	 * looks at the flag, and the enter loop clears immediate_exit only
	 * before it checks what pokes announce.) */
	atomic_store(&v->binding->signaled, false);
}

zhv_status_t kvm_run_status(int err)
{
	/* EFAULT: KVM could not reach guest memory (host memory behind a
	 * mapping went away): the guest cannot go on as it is. */
	return err == EFAULT ? ZHV_ERR_BAD_STATE : ZHV_ERR_IO;
}

/* ---- creation ------------------------------------------------------------ */

/* The KVM vCPU slot for (apic_id): the one left by an earlier vCPU with
 * that id (ids are unique among live vCPUs, so it is free), or a new one.
 * A KVM vCPU cannot be destroyed before its VM, so the slot keeps its fd
 * even when mapping its run area fails; the next create retries the map. */
static zhv_status_t kvm_vcpu_get(zhv_guest_t *g, uint32_t apic_id, struct kvm_vcpu_slot **out)
{
	pthread_mutex_lock(&g->vcpu_lock);
	struct kvm_vcpu_slot *s = g->kvm_vcpus[apic_id];
	pthread_mutex_unlock(&g->vcpu_lock);
	if (!s) {
		/* The object is allocated before the slot is published: the
		 * run gate (guest_hold_vcpus) reads it under vcpu_lock. */
		s = calloc(1, sizeof(*s));
		zhv_vcpu_t *obj = calloc(1, sizeof(*obj));
		if (!s || !obj) {
			free(s);
			free(obj);
			return ZHV_ERR_NO_MEMORY;
		}
		s->obj = obj;
		int vfd = ioctl(g->vm_fd, KVM_CREATE_VCPU, (unsigned long)apic_id);
		if (vfd < 0) {
			int e = errno;
			free(obj);
			free(s);
			zhv_log(ZHV_LOG_ERROR, "KVM_CREATE_VCPU(%u): %s", apic_id, strerror(e));
			return e == EINVAL ? ZHV_ERR_NO_RESOURCES : zhv_status_from_errno(e);
		}
		s->fd = vfd;
		pthread_mutex_lock(&g->vcpu_lock);
		g->kvm_vcpus[apic_id] = s;
		pthread_mutex_unlock(&g->vcpu_lock);
	}
	if (!s->run) {
		void *r = mmap(NULL, g->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
		if (r == MAP_FAILED) {
			zhv_log(ZHV_LOG_ERROR, "vcpu %u: mmap of the run area: %s", apic_id + 1,
			        strerror(errno));
			return ZHV_ERR_NO_MEMORY;
		}
		s->run = r;
	}
	*out = s;
	return ZHV_OK;
}

zhv_status_t zhv_vcpu_create(zhv_guest_t *g, uint32_t options, uint64_t entry, zhv_vcpu_t **out)
{
	if (options & ~(uint32_t)(ZHV_VCPU_OPT_WAIT_SIPI | ZHV_VCPU_OPT_APIC_RESET))
		return ZHV_ERR_INVALID_ARGS;
	if (!g || !out)
		return ZHV_ERR_INVALID_ARGS;
	zhv_status_t st = kick_signal_install();
	if (st != ZHV_OK)
		return st;

	uint32_t id;
	st = id_alloc_get(&g->ids, &id);
	if (st != ZHV_OK)
		return st;
	if (entry >= ZHV_GUEST_PHYS_SIZE || (id == 1 && (options & ZHV_VCPU_OPT_WAIT_SIPI))) {
		st = ZHV_ERR_INVALID_ARGS;
		goto err_id;
	}
	struct thread_binding *b = binding_for_current_thread();
	if (!b) {
		st = ZHV_ERR_NO_MEMORY;
		goto err_id;
	}
	if (atomic_load(&b->vcpu)) {
		st = ZHV_ERR_BAD_STATE; /* one vCPU per thread */
		goto err_id;
	}

	struct kvm_vcpu_slot *slot = NULL;
	st = kvm_vcpu_get(g, id - 1, &slot);
	if (st != ZHV_OK)
		goto err_id;
	/* The object is the slot's: no kick or interrupt can be using it (the
	 * previous vCPU of this id was destroyed, which waited for them). */
	zhv_vcpu_t *v = slot->obj;
	v->guest = g;
	v->id = id;
	v->apic_id = id - 1;
	v->fd = slot->fd;
	v->run = slot->run;
	v->slot = slot;
	v->binding = b;
	atomic_store(&v->kicked, false);
	atomic_store(&v->in_enter, false);
	v->in_run = false;
	v->run_sigmask_set = false;
	v->pending = PENDING_NONE;
	v->rep_index = v->rep_count = 0;
	v->rep_key = 0;
	atomic_store(&v->last_exit, 0);
	atomic_store(&v->last_exit_addr, 0);
	irq_tracker_init(&v->tracker);
	debug_vcpu_reset(v, false);
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	st = vcpu_state_init(v, options, entry, slot->initialized);
	if (st != ZHV_OK)
		goto err_tracker;
	slot->initialized = true;

	/* The kick signal stays blocked on this thread outside KVM_RUN. */
	sigset_t ks;
	kick_signal_set(&ks);
	pthread_sigmask(SIG_BLOCK, &ks, NULL);

	guest_ref(g);
	atomic_fetch_add(&b->refs, 1);
	atomic_store(&b->vcpu, v);
	atomic_store(&v->live, true);
	*out = v;
	return ZHV_OK;

err_tracker:
	irq_tracker_destroy(&v->tracker);
err_id:
	(void)id_alloc_put(&g->ids, id);
	return st;
}

/* Cross-thread calls (kick, interrupt, get_info) pin the object while they
 * use it; destroy waits until none does. */
static bool vcpu_pin(zhv_vcpu_t *v)
{
	atomic_fetch_add(&v->users, 1);
	if (atomic_load(&v->live))
		return true;
	atomic_fetch_sub(&v->users, 1);
	return false;
}

static void vcpu_unpin(zhv_vcpu_t *v)
{
	atomic_fetch_sub(&v->users, 1);
}

void zhv_vcpu_destroy(zhv_vcpu_t *v)
{
	if (!v)
		return;
	atomic_store(&v->live, false);
	/* Calls that started before live went false finish first. */
	while (atomic_load(&v->users) != 0)
		sched_yield();

	struct thread_binding *b = v->binding;
	atomic_store(&b->vcpu, NULL);
	binding_unref(b);
	v->binding = NULL;

	zhv_guest_t *g = v->guest;
	/* An exit the caller never answered: let KVM finish it now, so that
	 * nothing of it reaches the next vCPU with this id. */
	(void)vcpu_complete_pending(v);
	/* Leave the KVM vCPU quiet for its next user: no stale kick. */
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	atomic_store(&v->kicked, false);
	/* Guest debugging off, so the next vCPU with this id starts without. */
	debug_vcpu_reset(v, true);
	irq_tracker_destroy(&v->tracker);
	(void)id_alloc_put(&g->ids, v->id);
	guest_unref(g);
}

/* ---- kick and poke -------------------------------------------------------- */

void vcpu_poke(zhv_vcpu_t *v)
{
	/* immediate_exit covers the window before KVM_RUN; the signal covers a
	 * vCPU already inside it. Both are needed: see the enter loop. */
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (!atomic_load(&v->in_enter))
		return;
	struct thread_binding *b = v->binding;
	pid_t tid = b ? atomic_load(&b->tid) : 0;
	/* One signal in flight per thread: while one is, KVM_RUN ends by it
	 * (it was sent after the vCPU last took its signals, so it is pending
	 * or has already ended KVM_RUN), and outside KVM_RUN immediate_exit
	 * does the work. */
	if (tid > 0 && !atomic_exchange(&b->signaled, true) &&
	    syscall(SYS_tgkill, (pid_t)getpid(), tid, ZHV_KICK_SIGNAL) != 0)
		atomic_store(&b->signaled, false); /* not sent (the user's queue is full?) */
}

zhv_status_t zhv_vcpu_kick(zhv_vcpu_t *v)
{
	if (!v)
		return ZHV_ERR_INVALID_ARGS;
	if (!vcpu_pin(v))
		return ZHV_OK; /* being destroyed: nothing left to kick */
	atomic_store(&v->kicked, true);
	vcpu_poke(v);
	vcpu_unpin(v);
	return ZHV_OK;
}

/* ---- the run gate ----------------------------------------------------------- */

void vcpu_run_begin(zhv_vcpu_t *v)
{
	zhv_guest_t *g = v->guest;
	pthread_mutex_lock(&g->gate_lock);
	while (g->gate_hold)
		pthread_cond_wait(&g->gate_cond, &g->gate_lock);
	g->gate_running++;
	v->in_run = true;
	pthread_mutex_unlock(&g->gate_lock);
}

void vcpu_run_end(zhv_vcpu_t *v)
{
	zhv_guest_t *g = v->guest;
	pthread_mutex_lock(&g->gate_lock);
	v->in_run = false;
	if (--g->gate_running == 0 && g->gate_hold)
		pthread_cond_broadcast(&g->gate_cond);
	pthread_mutex_unlock(&g->gate_lock);
}

void guest_hold_vcpus(zhv_guest_t *g)
{
	pthread_mutex_lock(&g->gate_lock);
	g->gate_hold++;
	if (g->gate_running) {
		/* Every slot ever used; the objects live as long as the guest. */
		pthread_mutex_lock(&g->vcpu_lock);
		for (uint32_t i = 0; i < g->max_vcpus; i++) {
			struct kvm_vcpu_slot *s = g->kvm_vcpus[i];
			if (s && s->obj && s->obj->in_run)
				vcpu_poke(s->obj);
		}
		pthread_mutex_unlock(&g->vcpu_lock);
	}
	while (g->gate_running)
		pthread_cond_wait(&g->gate_cond, &g->gate_lock);
	pthread_mutex_unlock(&g->gate_lock);
}

void guest_release_vcpus(zhv_guest_t *g)
{
	pthread_mutex_lock(&g->gate_lock);
	if (--g->gate_hold == 0)
		pthread_cond_broadcast(&g->gate_cond);
	pthread_mutex_unlock(&g->gate_lock);
}

/* ---- interrupts ------------------------------------------------------------ */

/* An MSI to the vCPU's APIC ID (32-bit x2APIC IDs: bits 31:8 of the
 * destination travel in address_hi, KVM_X2APIC_API_USE_32BIT_IDS). Returns
 * the number of APICs that took it, or -errno. */
static int send_msi(zhv_vcpu_t *v, uint32_t vector, uint32_t delivery_mode)
{
	struct kvm_msi msi = {
		.address_lo = 0xfee00000u | ((v->apic_id & 0xffu) << 12),
		.address_hi = v->apic_id & 0xffffff00u,
		.data = (delivery_mode << 8) | vector,
	};
	return zhv_ioctl(v->guest->vm_fd, KVM_SIGNAL_MSI, &msi);
}

zhv_status_t zhv_vcpu_interrupt(zhv_vcpu_t *v, uint32_t vector)
{
	if (!v)
		return ZHV_ERR_INVALID_ARGS;
	if (vector > 255)
		return ZHV_ERR_OUT_OF_RANGE;
	if (vector > 20 && vector < 32)
		return ZHV_ERR_INVALID_ARGS;
	if (!vcpu_pin(v))
		return ZHV_OK; /* being destroyed: as if it came just after */
	zhv_status_t st = ZHV_OK;
	STAT_INC(v->guest, interrupts);
	if (vector >= 32) {
		/* KVM's LAPIC accepts it (or drops it, if software-disabled,
		 * as hardware does) and wakes a halted vCPU itself. KVM says
		 * EPERM when no APIC took the message (its APIC is disabled or
		 * no longer answers to its ID): dropped, as on hardware and as
		 * zhv_guest_signal_msi reports it. */
		int r = send_msi(v, vector, 0 /* fixed */);
		if (r < 0 && r != -EPERM)
			st = zhv_status_from_errno(r);
	} else if (vector == 2 && send_msi(v, 0, 4 /* NMI */) > 0) {
		/* NMI delivery mode. If the APIC cannot take it (hardware-
		 * disabled), the tracker injects it at the next entry. */
	} else {
		irq_tracker_interrupt(&v->tracker, vector);
		vcpu_poke(v);
	}
	vcpu_unpin(v);
	return st;
}

/* ---- enter ----------------------------------------------------------------- */

zhv_status_t zhv_vcpu_enter(zhv_vcpu_t *v, zhv_packet_t *packet)
{
	if (!v)
		return ZHV_ERR_INVALID_ARGS;
	if (!on_vcpu_thread(v))
		return ZHV_ERR_BAD_STATE;
	if (!packet)
		return ZHV_ERR_INVALID_ARGS;
	memset(packet, 0, sizeof(*packet));
	zhv_guest_t *g = v->guest;
	struct kvm_run *run = v->run;
	zhv_status_t st = vcpu_sync_sigmask(v);
	if (st != ZHV_OK)
		return st;

	atomic_store(&v->in_enter, true);
	for (;;) {
		/* Clear immediate_exit before looking at the flags: a kick
		 * that lands after this store sets it again and KVM_RUN
		 * returns at once, so nothing is lost (DESIGN decision 7). */
		__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (atomic_exchange(&v->kicked, false)) {
			STAT_INC(g, kicks);
			v->last_exit = ZHV_EXIT_CANCELED;
			st = ZHV_ERR_CANCELED;
			break;
		}
		if (exit_io_next_element(v, packet)) {
			st = ZHV_OK; /* next element of a string I/O */
			break;
		}
		int dstop = debug_deferred_stop(v, packet);
		if (dstop) {
			if (dstop == EXIT_DELIVER) {
				v->last_exit = ZHV_EXIT_PACKET;
				st = ZHV_OK;
				break;
			}
			if (dstop < 0) {
				st = dstop;
				break;
			}
		}
		st = debug_before_entry(v);
		if (st == ZHV_OK)
			st = exit_inject_pending(v);
		if (st != ZHV_OK)
			break;

		STAT_INC(g, vm_entries);
		/* With MEM traps, KVM hands back the registers with each exit
		 * (sync_regs) instead of costing two ioctls per MEM packet. */
		run->kvm_valid_regs = __atomic_load_n(&g->sync_regs, __ATOMIC_RELAXED)
		                              ? KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS
		                              : 0;
		vcpu_run_begin(v);
		int r = ioctl(v->fd, KVM_RUN, 0);
		int e = errno;
		vcpu_run_end(v);
		v->pending = PENDING_NONE;
		if (r < 0) {
			if (e == EINTR || e == EAGAIN) {
				/* A signal, our own kick or poke, a memory
				 * change holding vCPUs out, or (EAGAIN) an AP
				 * that just received its SIPI. */
				STAT_INC(g, signal_exits);
				if (e == EINTR)
					drain_kick_signals(v);
				continue;
			}
			zhv_log(ZHV_LOG_ERROR, "vcpu %u: KVM_RUN: %s", v->id, strerror(e));
			v->last_exit = ZHV_EXIT_ERROR;
			st = kvm_run_status(e);
			break;
		}
		STAT_INC(g, vm_exits);
		int out = exit_handle(v, packet);
		if (out == EXIT_CONTINUE)
			continue;
		if (out == EXIT_DELIVER) {
			v->last_exit = ZHV_EXIT_PACKET;
			st = ZHV_OK;
		} else {
			st = out;
		}
		break;
	}
	atomic_store(&v->in_enter, false);
	return st;
}

/* ---- state and info --------------------------------------------------------- */

zhv_status_t zhv_vcpu_read_state(zhv_vcpu_t *v, uint32_t kind, void *buf, size_t len)
{
	if (!v)
		return ZHV_ERR_INVALID_ARGS;
	if (!on_vcpu_thread(v))
		return ZHV_ERR_BAD_STATE;
	if (!buf)
		return ZHV_ERR_INVALID_ARGS;
	return vcpu_state_read(v, kind, buf, len);
}

zhv_status_t zhv_vcpu_write_state(zhv_vcpu_t *v, uint32_t kind, const void *buf, size_t len)
{
	if (!v)
		return ZHV_ERR_INVALID_ARGS;
	if (!on_vcpu_thread(v))
		return ZHV_ERR_BAD_STATE;
	if (!buf)
		return ZHV_ERR_INVALID_ARGS;
	return vcpu_state_write(v, kind, buf, len);
}

bool vcpu_on_thread(const zhv_vcpu_t *v)
{
	return on_vcpu_thread(v);
}

zhv_status_t zhv_vcpu_save(zhv_vcpu_t *v, void *buf, size_t cap, size_t *len)
{
	if (!v)
		return ZHV_ERR_INVALID_ARGS;
	if (!on_vcpu_thread(v))
		return ZHV_ERR_BAD_STATE;
	return vcpu_blob_save(v, buf, cap, len);
}

zhv_status_t zhv_vcpu_restore(zhv_vcpu_t *v, const void *buf, size_t len)
{
	if (!v)
		return ZHV_ERR_INVALID_ARGS;
	if (!on_vcpu_thread(v))
		return ZHV_ERR_BAD_STATE;
	if (!buf)
		return ZHV_ERR_INVALID_ARGS;
	return vcpu_blob_restore(v, buf, len);
}

zhv_status_t zhv_vcpu_get_info(zhv_vcpu_t *v, zhv_vcpu_info_t *info)
{
	if (!v || !info)
		return ZHV_ERR_INVALID_ARGS;
	if (!vcpu_pin(v))
		return ZHV_ERR_BAD_STATE; /* being destroyed */
	memset(info, 0, sizeof(*info));
	info->flags = atomic_load(&v->kicked) ? ZHV_VCPU_INFO_FLAG_KICKED : 0;
	info->id = v->id;
	info->apic_id = v->apic_id;
	info->last_exit = v->last_exit;
	info->last_exit_addr = v->last_exit_addr;
	vcpu_unpin(v);
	return ZHV_OK;
}
