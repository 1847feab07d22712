/* vcpu.c: vCPU objects, their thread binding, the enter loop (spec 3.1),
 * kick (spec 5) and interrupt (DESIGN decision 2). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zhv_priv.h"

#define ZHV_KICK_SIGNAL (SIGRTMIN + 4)

/* ---- thread binding ------------------------------------------------------
 * A vCPU belongs to the thread that created it, and a thread owns at most
 * one vCPU. The binding is a small refcounted object shared by the thread
 * (through a thread-local pointer and a pthread key whose destructor runs
 * at thread exit) and by the vCPU. It tells, under its lock, whether the
 * thread is still alive, so that a kick from another thread never signals
 * a thread that has exited. */
struct thread_binding {
	pthread_mutex_t lock;
	pthread_t thread;
	bool alive;
	zhv_vcpu_t *vcpu;
	atomic_int refs;
};

static __thread struct thread_binding *tls_binding;
static pthread_key_t binding_key;
static pthread_once_t binding_once = PTHREAD_ONCE_INIT;

static void binding_unref(struct thread_binding *b)
{
	if (atomic_fetch_sub(&b->refs, 1) == 1) {
		pthread_mutex_destroy(&b->lock);
		free(b);
	}
}

static void binding_thread_exit(void *arg)
{
	struct thread_binding *b = arg;
	pthread_mutex_lock(&b->lock);
	b->alive = false;
	pthread_mutex_unlock(&b->lock);
	binding_unref(b);
}

/* The kick signal does nothing by itself: it only makes KVM_RUN return
 * EINTR. The state travels in the vCPU's atomic flags. */
static void kick_signal_handler(int sig)
{
	(void)sig;
}

static void binding_global_init(void)
{
	pthread_key_create(&binding_key, binding_thread_exit);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_signal_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(ZHV_KICK_SIGNAL, &sa, NULL);
}

static struct thread_binding *binding_for_current_thread(void)
{
	pthread_once(&binding_once, binding_global_init);
	if (tls_binding)
		return tls_binding;
	struct thread_binding *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	pthread_mutex_init(&b->lock, NULL);
	b->thread = pthread_self();
	b->alive = true;
	atomic_init(&b->refs, 1); /* the thread's reference */
	if (pthread_setspecific(binding_key, b) != 0) {
		free(b);
		return NULL;
	}
	tls_binding = b;
	/* The vCPU thread must be able to receive the kick signal. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, ZHV_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return b;
}

static bool on_vcpu_thread(const zhv_vcpu_t *vcpu)
{
	return tls_binding != NULL && tls_binding == vcpu->binding;
}

/* ---- creation ------------------------------------------------------------ */

/* The KVM vCPU for (apic_id): the one left by an earlier vCPU with that id
 * (ids are unique among live vCPUs, so it is free) or a new one. */
static zhv_status_t kvm_vcpu_get(zhv_guest_t *g, uint32_t apic_id, struct kvm_vcpu_slot **out,
                                 bool *reused)
{
	pthread_mutex_lock(&g->vcpu_lock);
	struct kvm_vcpu_slot *s = g->kvm_vcpus[apic_id];
	pthread_mutex_unlock(&g->vcpu_lock);
	if (s) {
		*out = s;
		*reused = true;
		return ZHV_OK;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return ZHV_ERR_NO_MEMORY;
	int vfd = ioctl(g->vm_fd, KVM_CREATE_VCPU, (unsigned long)apic_id);
	if (vfd < 0) {
		int e = errno;
		free(s);
		zhv_log(ZHV_LOG_ERROR, "KVM_CREATE_VCPU(%u): %s", apic_id, strerror(e));
		return e == EINVAL ? ZHV_ERR_NO_RESOURCES : zhv_status_from_errno(e);
	}
	void *r = mmap(NULL, g->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vfd, 0);
	if (r == MAP_FAILED) {
		close(vfd);
		free(s);
		return ZHV_ERR_NO_MEMORY;
	}
	s->fd = vfd;
	s->run = r;
	pthread_mutex_lock(&g->vcpu_lock);
	g->kvm_vcpus[apic_id] = s;
	pthread_mutex_unlock(&g->vcpu_lock);
	*out = s;
	*reused = false;
	return ZHV_OK;
}

zhv_status_t zhv_vcpu_create(zhv_guest_t *g, uint32_t options, uint64_t entry, zhv_vcpu_t **out)
{
	if (options & ~(uint32_t)(ZHV_VCPU_OPT_WAIT_SIPI | ZHV_VCPU_OPT_APIC_RESET))
		return ZHV_ERR_INVALID_ARGS;
	if (!g || !out)
		return ZHV_ERR_INVALID_ARGS;

	uint32_t id;
	zhv_status_t st = id_alloc_get(&g->ids, &id);
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
	if (b->vcpu) {
		st = ZHV_ERR_BAD_STATE; /* one vCPU per thread */
		goto err_id;
	}

	zhv_vcpu_t *v = calloc(1, sizeof(*v));
	if (!v) {
		st = ZHV_ERR_NO_MEMORY;
		goto err_id;
	}
	v->guest = g;
	v->id = id;
	v->apic_id = id - 1;
	irq_tracker_init(&v->tracker);
	bool reused = false;
	st = kvm_vcpu_get(g, v->apic_id, &v->slot, &reused);
	if (st != ZHV_OK)
		goto err_vcpu;
	v->fd = v->slot->fd;
	v->run = v->slot->run;
	st = vcpu_state_init(v, options, entry, reused);
	if (st != ZHV_OK)
		goto err_vcpu;

	guest_ref(g);
	atomic_fetch_add(&b->refs, 1);
	pthread_mutex_lock(&b->lock);
	b->vcpu = v;
	pthread_mutex_unlock(&b->lock);
	v->binding = b;
	*out = v;
	return ZHV_OK;

err_vcpu:
	irq_tracker_destroy(&v->tracker);
	free(v);
err_id:
	(void)id_alloc_put(&g->ids, id);
	return st;
}

void zhv_vcpu_destroy(zhv_vcpu_t *v)
{
	if (!v)
		return;
	struct thread_binding *b = v->binding;
	pthread_mutex_lock(&b->lock);
	b->vcpu = NULL;
	pthread_mutex_unlock(&b->lock);
	binding_unref(b);

	zhv_guest_t *g = v->guest;
	/* Leave the KVM vCPU quiet for its next user: no stale kick. */
	v->run->immediate_exit = 0;
	(void)id_alloc_put(&g->ids, v->id);
	irq_tracker_destroy(&v->tracker);
	free(v);
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
	pthread_mutex_lock(&b->lock);
	if (b->alive)
		pthread_kill(b->thread, ZHV_KICK_SIGNAL);
	pthread_mutex_unlock(&b->lock);
}

zhv_status_t zhv_vcpu_kick(zhv_vcpu_t *v)
{
	if (!v)
		return ZHV_ERR_INVALID_ARGS;
	atomic_store(&v->kicked, true);
	vcpu_poke(v);
	return ZHV_OK;
}

/* ---- interrupts ------------------------------------------------------------ */

/* An MSI to the vCPU's APIC ID (32-bit x2APIC IDs: bits 31:8 of the
 * destination travel in address_hi, KVM_X2APIC_API_USE_32BIT_IDS). */
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
	STAT_INC(v->guest, interrupts);
	if (vector >= 32) {
		/* KVM's LAPIC accepts it (or drops it, if software-disabled,
		 * as hardware does) and wakes a halted vCPU itself. */
		int r = send_msi(v, vector, 0 /* fixed */);
		return r < 0 ? zhv_status_from_errno(r) : ZHV_OK;
	}
	if (vector == 2) {
		/* NMI delivery mode. If the APIC cannot take it (hardware-
		 * disabled), the tracker injects it at the next entry. */
		if (send_msi(v, 0, 4 /* NMI */) > 0)
			return ZHV_OK;
	}
	irq_tracker_interrupt(&v->tracker, vector);
	vcpu_poke(v);
	return ZHV_OK;
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
	zhv_status_t st;

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
		st = exit_inject_pending(v);
		if (st != ZHV_OK)
			break;

		STAT_INC(g, vm_entries);
		/* With MEM traps, KVM hands back the registers with each exit
		 * (sync_regs) instead of costing two ioctls per MEM packet. */
		run->kvm_valid_regs = __atomic_load_n(&g->sync_regs, __ATOMIC_RELAXED)
		                              ? KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS
		                              : 0;
		int r = ioctl(v->fd, KVM_RUN, 0);
		v->pending = PENDING_NONE;
		if (r < 0) {
			int e = errno;
			if (e == EINTR || e == EAGAIN) {
				/* A signal, our own kick or poke, or (EAGAIN)
				 * an AP just received its SIPI. */
				STAT_INC(g, signal_exits);
				continue;
			}
			zhv_log(ZHV_LOG_ERROR, "vcpu %u: KVM_RUN: %s", v->id, strerror(e));
			v->last_exit = ZHV_EXIT_ERROR;
			st = e == EFAULT ? ZHV_ERR_BAD_STATE : ZHV_ERR_IO;
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

zhv_status_t zhv_vcpu_get_info(zhv_vcpu_t *v, zhv_vcpu_info_t *info)
{
	if (!v || !info)
		return ZHV_ERR_INVALID_ARGS;
	memset(info, 0, sizeof(*info));
	info->flags = atomic_load(&v->kicked) ? ZHV_VCPU_INFO_FLAG_KICKED : 0;
	info->id = v->id;
	info->apic_id = v->apic_id;
	info->last_exit = v->last_exit;
	info->last_exit_addr = v->last_exit_addr;
	return ZHV_OK;
}
