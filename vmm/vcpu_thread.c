/* vcpu_thread.c: every vCPU on its own thread: created in id order, the BSP
 * from the loader's boot state, the APs waiting for INIT/SIPI; the enter
 * loop turns packets into bus accesses until the run ends. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devices.h"
#include "exit_status.h"
#include "sandbox.h"
#include "vcpu_state.h"
#include "vcpu_thread.h"
#include "thread.h"

enum start_state { START_WAIT, START_GO, START_ABORT };

#define VCPU_STACK_SIZE (1u << 20)

struct vcpu_slot {
	struct vcpus *owner;
	unsigned index;             /* vCPU id - 1 = APIC ID */
	pthread_t thread;
	bool thread_started;
	bool ready;                 /* setup done (under owner->lock) */
	int setup_ret;              /* 0 or -errno */
	char err[192];
	_Atomic(zhv_vcpu_t *) vcpu; /* set once created; read by kickers */
	/* Power-on state for an S3 resume (captured at setup). */
	zhv_vcpu_lapic_t lapic0;
	zhv_vcpu_fpu_t *fpu0;       /* NULL: KVM gave none; the FPU is left as it is */
	unsigned sleep_gen;         /* the last S3 generation this vCPU went through */
	/* Pause and snapshot (under owner->lock). */
	bool parked;                /* in vcpu_park, outside enter */
	bool save_req;              /* vcpus_save asks this thread for its blob */
	uint8_t *blob;              /* the saved state (vcpu_state_save) */
	size_t blob_len;
	int save_ret;
	const uint8_t *restore;     /* --restore: the state to start from */
	size_t restore_len;
	/* Guest debugging (vcpus_debug_*). */
	atomic_bool dbg_hold;       /* park (until vcpus_debug_release) */
	void (*dbg_fn)(zhv_vcpu_t *, void *); /* vcpus_debug_call's request */
	void *dbg_arg;
};

struct vcpus {
	struct vm *vm;
	const struct boot_state *boot;
	unsigned n;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum start_state start;
	atomic_bool pause_req;      /* vcpus_pause: every vCPU parks */
	unsigned nparked;           /* threads in vcpu_park (under lock) */
	const zhv_guest_clock_t *restore_clock; /* --restore: set before any enter */
	vcpus_debug_fn on_debug;    /* ZHV_PKT_TYPE_GUEST_DEBUG packets (--gdb) */
	void *debug_ctx;
	struct vcpu_slot slots[];
};

static void vcpus_kick_vm(struct vm *vm)
{
	if (vm->vcpus)
		vcpus_kick_all(vm->vcpus);
}

struct vcpus *vcpus_create(struct vm *vm)
{
	struct vcpus *v = calloc(1, sizeof(*v) + vm->ncpus * sizeof(v->slots[0]));
	if (!v)
		return NULL;
	v->vm = vm;
	v->n = vm->ncpus;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	atomic_init(&v->pause_req, false);
	vm->vcpus = v;
	vm->kick_vcpus = vcpus_kick_vm;
	for (unsigned i = 0; i < v->n; i++) {
		v->slots[i].owner = v;
		v->slots[i].index = i;
		atomic_init(&v->slots[i].vcpu, NULL);
		atomic_init(&v->slots[i].dbg_hold, false);
	}
	return v;
}

/* ---- setup (on the vCPU's own thread) ----------------------------------- */

/* The BSP starts where the loader says: its segments, control registers and
 * GPRs. The APIC base stays the vCPU's own (power-on xAPIC, BSP flag). */
static int bsp_load_state(struct vcpu_slot *s, zhv_vcpu_t *vcpu)
{
	const struct boot_state *boot = s->owner->boot;
	zhv_vcpu_sregs_t cur, sregs = boot->sregs;
	zhv_status_t st = zhv_vcpu_read_state(vcpu, ZHV_VCPU_SREGS, &cur, sizeof(cur));
	if (st == ZHV_OK) {
		sregs.apic_base = cur.apic_base;
		st = zhv_vcpu_write_state(vcpu, ZHV_VCPU_SREGS, &sregs, sizeof(sregs));
	}
	if (st == ZHV_OK)
		st = zhv_vcpu_write_state(vcpu, ZHV_VCPU_REGS, &boot->regs, sizeof(boot->regs));
	if (st != ZHV_OK) {
		snprintf(s->err, sizeof(s->err), "cannot set the BSP's boot state: %s",
		         zhv_status_string(st));
		return -EINVAL;
	}
	return 0;
}

static int vcpu_setup(struct vcpu_slot *s, zhv_vcpu_t **out)
{
	struct vm *vm = s->owner->vm;
	bool bsp = s->index == 0;
	/* A PC OS expects the xAPIC in its power-on state; APs wait in enter
	 * until the guest sends INIT/SIPI through its APIC. */
	uint32_t opts = bsp ? ZHV_VCPU_OPT_APIC_RESET : ZHV_VCPU_OPT_WAIT_SIPI;
	uint64_t entry = bsp && s->owner->boot ? s->owner->boot->regs.rip : 0;
	zhv_vcpu_t *vcpu;
	zhv_status_t st = zhv_vcpu_create(vm->guest, opts, entry, &vcpu);
	if (st != ZHV_OK) {
		snprintf(s->err, sizeof(s->err), "cannot create vCPU %u: %s", s->index + 1,
		         zhv_status_string(st));
		return st == ZHV_ERR_NO_MEMORY ? -ENOMEM : -EIO;
	}
	atomic_store(&s->vcpu, vcpu);
	zhv_vcpu_info_t info;
	if (zhv_vcpu_get_info(vcpu, &info) != ZHV_OK || info.id != s->index + 1) {
		snprintf(s->err, sizeof(s->err), "vCPU of thread %u got id %u", s->index,
		         info.id);
		return -EINVAL;
	}
	*out = vcpu;
	/* The power-on local APIC and FPU, for a resume from S3. */
	st = zhv_vcpu_read_state(vcpu, ZHV_VCPU_LAPIC, &s->lapic0, sizeof(s->lapic0));
	if (st != ZHV_OK) {
		snprintf(s->err, sizeof(s->err), "vCPU %u: cannot read its local APIC: %s",
		         s->index + 1, zhv_status_string(st));
		return -EIO;
	}
	s->fpu0 = malloc(sizeof(*s->fpu0));
	if (!s->fpu0) {
		snprintf(s->err, sizeof(s->err), "vCPU %u: out of memory", s->index + 1);
		return -ENOMEM;
	}
	if (zhv_vcpu_read_state(vcpu, ZHV_VCPU_FPU, s->fpu0, sizeof(*s->fpu0)) != ZHV_OK) {
		free(s->fpu0);
		s->fpu0 = NULL;
	}
	if (s->restore) {
		st = vcpu_state_load(vcpu, s->restore, s->restore_len);
		if (st != ZHV_OK) {
			snprintf(s->err, sizeof(s->err), "vCPU %u: the snapshot's state is refused: %s",
			         s->index + 1, vcpu_state_error(st));
			return -EINVAL;
		}
		return 0;
	}
	return bsp ? bsp_load_state(s, vcpu) : 0;
}

/* ---- ACPI S3 ------------------------------------------------------------------ */

static void seg_real(zhv_segment_t *g, uint16_t sel, uint8_t type)
{
	memset(g, 0, sizeof(*g));
	g->selector = sel;
	g->base = (uint64_t)sel << 4;
	g->limit = 0xFFFF;
	g->type = type;
	g->present = 1;
	g->s = 1;
}

static void seg_flat32(zhv_segment_t *g, uint16_t sel, uint8_t type)
{
	memset(g, 0, sizeof(*g));
	g->selector = sel;
	g->limit = 0xFFFFFFFF;
	g->type = type;
	g->present = 1;
	g->s = 1;
	g->db = 1;
	g->g = 1;
}

/* A vCPU as the firmware leaves it on the way out of S3: the CPU lost
 * its state (SDM vol. 3, 9.1.1 power-up values: interrupts off, CR0 =
 * ET, EFER 0, IDT the real-mode vector table, A20 on: zhv has no A20
 * gate), the local APIC and FPU are in their power-on state, nothing is
 * pending. The BSP starts at (t) (ACPI 6.4 §5.2.10: real mode at
 * CS:IP = vector >> 4 : vector & 0xF, or 32-bit flat protected mode with
 * paging off at X_Firmware_Waking_Vector); an AP waits for INIT/SIPI. */
static zhv_status_t vcpu_resume_state(struct vcpu_slot *s, zhv_vcpu_t *vcpu,
                                      const struct vm_wake_target *t)
{
	bool bsp = s->index == 0;
	zhv_vcpu_sregs_t sr;
	zhv_status_t st = zhv_vcpu_read_state(vcpu, ZHV_VCPU_SREGS, &sr, sizeof(sr));
	if (st != ZHV_OK)
		return st;
	/* The APIC base goes back to its power-on address, disabled first:
	 * KVM takes x2APIC -> xAPIC only through disabled. */
	const uint64_t apic_base = VM_LAPIC_BASE;
	sr.apic_base = apic_base;
	st = zhv_vcpu_write_state(vcpu, ZHV_VCPU_SREGS, &sr, sizeof(sr));
	if (st != ZHV_OK)
		return st;
	memset(&sr, 0, sizeof(sr));
	sr.apic_base = apic_base | 0x800 /* EN */ | (bsp ? 0x100 /* BSP */ : 0);
	bool pm32 = bsp && t->mode == VM_WAKE_PM32;
	if (pm32) {
		seg_flat32(&sr.cs, 0x08, 0xB);
		seg_flat32(&sr.ds, 0x10, 0x3);
		sr.cr0 = 0x11; /* PE | ET */
	} else {
		seg_real(&sr.cs, bsp ? (uint16_t)(t->addr >> 4) : 0, 0xB);
		seg_real(&sr.ds, 0, 0x3);
		sr.cr0 = 0x10; /* ET */
	}
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	sr.tr.limit = 0xFFFF;
	sr.tr.type = 0xB;
	sr.tr.present = 1;
	sr.ldt.limit = 0xFFFF;
	sr.ldt.type = 0x2;
	sr.ldt.present = 1;
	sr.gdt.limit = 0xFFFF;
	sr.idt.limit = 0x3FF;
	st = zhv_vcpu_write_state(vcpu, ZHV_VCPU_SREGS, &sr, sizeof(sr));
	if (st != ZHV_OK)
		return st;
	zhv_vcpu_regs_t regs;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = pm32 ? t->addr : bsp ? (t->addr & 0xF) : 0;
	st = zhv_vcpu_write_state(vcpu, ZHV_VCPU_REGS, &regs, sizeof(regs));
	if (st == ZHV_OK && s->fpu0)
		st = zhv_vcpu_write_state(vcpu, ZHV_VCPU_FPU, s->fpu0, sizeof(*s->fpu0));
	if (st == ZHV_OK)
		st = zhv_vcpu_write_state(vcpu, ZHV_VCPU_LAPIC, &s->lapic0, sizeof(s->lapic0));
	if (st != ZHV_OK)
		return st;
	zhv_vcpu_events_t ev;
	memset(&ev, 0, sizeof(ev));
	ev.mp_state = bsp ? ZHV_MP_STATE_RUNNABLE : ZHV_MP_STATE_UNINITIALIZED;
	return zhv_vcpu_write_state(vcpu, ZHV_VCPU_EVENTS, &ev, sizeof(ev));
}

/* The machine is in S3: park until it wakes, then put the vCPU where the
 * firmware would. Returns false when the run ended meanwhile (or the
 * vCPU could not be reset, which ends it). */
static bool vcpu_sleep(struct vcpu_slot *s, zhv_vcpu_t *vcpu)
{
	struct vm *vm = s->owner->vm;
	struct vm_wake_target t;
	if (!vm_sleep_park(vm, &s->sleep_gen, &t))
		return false;
	zhv_status_t st = vcpu_resume_state(s, vcpu, &t);
	if (st != ZHV_OK) {
		fprintf(stderr, "zhv: vcpu %u: cannot reset it for the resume from S3: %s\n",
		        s->index + 1, zhv_status_string(st));
		vm_request_exit(vm, VM_EXIT_ERROR, ZHV_EXIT_FATAL);
	}
	vm_sleep_resumed(vm, s->index == 0);
	/* The chipset's IOAPIC is reset too (every vCPU is reset and none
	 * runs: what the old entries delivered meanwhile is gone). */
	if (s->index == 0)
		ioapic_reset(vm->ioapic);
	return atomic_load(&vm->exit_kind) == VM_EXIT_NONE;
}

/* ---- pause and snapshot ---------------------------------------------------------
 * vcpus_pause sets pause_req and kicks: each vCPU thread, back from enter
 * (no exit in flight: every packet was answered), parks here until
 * vcpus_resume or the end of the run. While parked it saves its vCPU when
 * vcpus_save asks (libzhv saves a vCPU on its own thread only). A debugger
 * holds vCPUs the same way (dbg_hold, each vCPU on its own), and has its
 * requests run here (vcpus_debug_call: libzhv's state and guest-virtual
 * memory calls are the vCPU thread's). */

static bool must_park(struct vcpu_slot *s)
{
	return atomic_load(&s->owner->pause_req) || atomic_load(&s->dbg_hold);
}

static void vcpu_park(struct vcpu_slot *s, zhv_vcpu_t *vcpu)
{
	struct vcpus *v = s->owner;
	struct vm *vm = v->vm;
	pthread_mutex_lock(&v->lock);
	s->parked = true;
	v->nparked++;
	pthread_cond_broadcast(&v->cond);
	while (must_park(s) && atomic_load(&vm->exit_kind) == VM_EXIT_NONE) {
		if (s->dbg_fn) {
			s->dbg_fn(vcpu, s->dbg_arg);
			s->dbg_fn = NULL;
			pthread_cond_broadcast(&v->cond);
			continue;
		}
		if (s->save_req) {
			free(s->blob);
			s->blob = NULL;
			s->blob_len = 0;
			s->save_ret = vcpu_state_save(vcpu, &s->blob, &s->blob_len);
			s->save_req = false;
			pthread_cond_broadcast(&v->cond);
			continue;
		}
		pthread_cond_wait(&v->cond, &v->lock);
	}
	s->parked = false;
	v->nparked--;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

/* Deadline (CLOCK_REALTIME, as pthread_cond_timedwait uses) ms from now. */
static struct timespec deadline_ms(unsigned ms)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

int vcpus_pause(struct vcpus *v, unsigned timeout_ms)
{
	struct vm *vm = v->vm;
	atomic_store(&v->pause_req, true);
	vcpus_kick_all(v);
	struct timespec until = deadline_ms(timeout_ms);
	int ret = 0;
	pthread_mutex_lock(&v->lock);
	while (v->nparked < v->n && ret == 0) {
		if (atomic_load(&vm->exit_kind) != VM_EXIT_NONE || v->start != START_GO)
			ret = -ECANCELED;
		else if (pthread_cond_timedwait(&v->cond, &v->lock, &until) == ETIMEDOUT)
			ret = v->nparked < v->n ? -ETIMEDOUT : 0;
	}
	pthread_mutex_unlock(&v->lock);
	if (ret < 0)
		vcpus_resume(v);
	return ret;
}

void vcpus_resume(struct vcpus *v)
{
	pthread_mutex_lock(&v->lock);
	atomic_store(&v->pause_req, false);
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

bool vcpus_paused(struct vcpus *v)
{
	return atomic_load(&v->pause_req);
}

int vcpus_save(struct vcpus *v, uint8_t **blobs, size_t *lens)
{
	pthread_mutex_lock(&v->lock);
	if (!atomic_load(&v->pause_req) || v->nparked < v->n) {
		pthread_mutex_unlock(&v->lock);
		return -EAGAIN;
	}
	for (unsigned i = 0; i < v->n; i++) {
		v->slots[i].save_req = true;
		v->slots[i].save_ret = -EINPROGRESS;
	}
	pthread_cond_broadcast(&v->cond);
	int ret = 0;
	for (unsigned i = 0; i < v->n; i++) {
		struct vcpu_slot *s = &v->slots[i];
		while (s->save_req && s->parked)
			pthread_cond_wait(&v->cond, &v->lock);
		if (s->save_req) { /* it left the park: the run ended */
			s->save_req = false;
			ret = -ECANCELED;
		} else if (s->save_ret < 0 && ret == 0) {
			ret = s->save_ret;
		}
	}
	for (unsigned i = 0; i < v->n; i++) {
		struct vcpu_slot *s = &v->slots[i];
		blobs[i] = ret == 0 ? s->blob : NULL;
		lens[i] = ret == 0 ? s->blob_len : 0;
		if (ret < 0)
			free(s->blob);
		s->blob = NULL;
		s->blob_len = 0;
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

void vcpus_set_restore(struct vcpus *v, const uint8_t *const *blobs, const size_t *lens,
                       const zhv_guest_clock_t *clock)
{
	for (unsigned i = 0; i < v->n; i++) {
		v->slots[i].restore = blobs[i];
		v->slots[i].restore_len = lens[i];
	}
	v->restore_clock = clock;
}

/* ---- guest debugging -------------------------------------------------------------- */

void vcpus_debug_init(struct vcpus *v, vcpus_debug_fn on_debug, void *ctx, bool hold)
{
	v->on_debug = on_debug;
	v->debug_ctx = ctx;
	for (unsigned i = 0; i < v->n; i++)
		atomic_store(&v->slots[i].dbg_hold, hold);
}

void vcpus_debug_hold(struct vcpus *v)
{
	pthread_mutex_lock(&v->lock);
	for (unsigned i = 0; i < v->n; i++)
		atomic_store(&v->slots[i].dbg_hold, true);
	pthread_mutex_unlock(&v->lock);
	vcpus_kick_all(v);
}

int vcpus_debug_wait(struct vcpus *v, unsigned timeout_ms)
{
	struct vm *vm = v->vm;
	struct timespec until = deadline_ms(timeout_ms);
	int ret = 0;
	pthread_mutex_lock(&v->lock);
	for (unsigned i = 0; i < v->n && ret == 0; i++) {
		struct vcpu_slot *s = &v->slots[i];
		while (!s->parked && ret == 0) {
			if (atomic_load(&vm->exit_kind) != VM_EXIT_NONE || v->start == START_ABORT)
				ret = -ECANCELED;
			else if (pthread_cond_timedwait(&v->cond, &v->lock, &until) == ETIMEDOUT)
				ret = s->parked ? 0 : -ETIMEDOUT;
		}
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

void vcpus_debug_release(struct vcpus *v, int only)
{
	pthread_mutex_lock(&v->lock);
	for (unsigned i = 0; i < v->n; i++)
		atomic_store(&v->slots[i].dbg_hold, only >= 0 && (unsigned)only != i);
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

int vcpus_debug_call(struct vcpus *v, unsigned index, void (*fn)(zhv_vcpu_t *, void *), void *arg)
{
	if (index >= v->n)
		return -EINVAL;
	struct vcpu_slot *s = &v->slots[index];
	int ret = 0;
	pthread_mutex_lock(&v->lock);
	if (!s->parked || !atomic_load(&s->dbg_hold)) {
		ret = -EAGAIN;
	} else {
		s->dbg_fn = fn;
		s->dbg_arg = arg;
		pthread_cond_broadcast(&v->cond);
		while (s->dbg_fn && s->parked)
			pthread_cond_wait(&v->cond, &v->lock);
		if (s->dbg_fn) { /* it left the park: the run ended */
			s->dbg_fn = NULL;
			ret = -ECANCELED;
		}
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

/* ---- the enter loop --------------------------------------------------------- */

static int answer_io(struct vm *vm, zhv_vcpu_t *vcpu, const zhv_packet_t *pkt)
{
	const zhv_packet_guest_io_t *io = &pkt->guest_io;
	unsigned size = io->access_size <= 4 ? io->access_size : 4;
	uint8_t data[8] = {0};
	if (!io->input)
		memcpy(data, io->data, size);
	if (!bus_dispatch(&vm->io_bus, pkt->key, io->port, !io->input, data, size)) {
		fprintf(stderr, "zhv: port %#x: packet with unknown key %#" PRIx64 "\n", io->port,
		        pkt->key);
		return -EINVAL;
	}
	if (!io->input)
		return 0;
	zhv_vcpu_io_t ans = {.access_size = (uint8_t)size};
	memcpy(ans.data, data, size);
	zhv_status_t st = zhv_vcpu_write_state(vcpu, ZHV_VCPU_IO, &ans, sizeof(ans));
	if (st != ZHV_OK) {
		fprintf(stderr, "zhv: answering IN from port %#x: %s\n", io->port,
		        zhv_status_string(st));
		return -EIO;
	}
	return 0;
}

static int answer_mem(struct vm *vm, zhv_vcpu_t *vcpu, const zhv_packet_t *pkt)
{
	const zhv_packet_guest_mem_t *m = &pkt->guest_mem;
	unsigned size = m->access_size <= 8 ? m->access_size : 8;
	uint8_t data[8] = {0};
	if (m->write)
		memcpy(data, &m->data, size);
	if (!bus_dispatch(&vm->mmio_bus, pkt->key, m->addr, m->write, data, size)) {
		fprintf(stderr, "zhv: MMIO %#" PRIx64 ": packet with unknown key %#" PRIx64 "\n",
		        m->addr, pkt->key);
		return -EINVAL;
	}
	if (m->write)
		return 0;
	zhv_vcpu_mem_t ans = {.access_size = m->access_size};
	memcpy(&ans.data, data, sizeof(ans.data));
	zhv_status_t st = zhv_vcpu_write_state(vcpu, ZHV_VCPU_MEM, &ans, sizeof(ans));
	if (st != ZHV_OK) {
		fprintf(stderr, "zhv: answering the read of %#" PRIx64 ": %s\n", m->addr,
		        zhv_status_string(st));
		return -EIO;
	}
	return 0;
}

/* A fatal enter error: say what happened (libzhv has already logged the
 * registers and the decoded instruction) and end the run with status 1. */
static void vcpu_fatal(struct vm *vm, zhv_vcpu_t *vcpu, unsigned id, zhv_status_t st)
{
	zhv_vcpu_info_t info;
	if (zhv_vcpu_get_info(vcpu, &info) != ZHV_OK)
		memset(&info, 0, sizeof(info));
	char why[96];
	int status = ZHV_EXIT_GUEST_CRASH; /* what the guest did, else a host error */
	switch (info.last_exit) {
	case ZHV_EXIT_SHUTDOWN:
		snprintf(why, sizeof(why), "triple fault");
		break;
	case ZHV_EXIT_EMULATION:
		snprintf(why, sizeof(why), "an instruction KVM cannot emulate");
		break;
	case ZHV_EXIT_UNHANDLED_IO:
		snprintf(why, sizeof(why), "unsupported I/O to port %#" PRIx64, info.last_exit_addr);
		break;
	case ZHV_EXIT_UNHANDLED_MEM:
		snprintf(why, sizeof(why), "bad memory access at %#" PRIx64, info.last_exit_addr);
		break;
	default:
		snprintf(why, sizeof(why), "enter failed");
		status = ZHV_EXIT_FATAL;
		break;
	}
	if (atomic_load(&vm->exit_kind) == VM_EXIT_NONE)
		fprintf(stderr, "zhv: vcpu %u: %s (%s); stopping the guest\n", id, why,
		        zhv_status_string(st));
	vm_request_exit(vm, VM_EXIT_ERROR, status);
}

static void vcpu_run(struct vcpu_slot *s, zhv_vcpu_t *vcpu)
{
	struct vm *vm = s->owner->vm;
	unsigned id = s->index + 1;
	while (atomic_load(&vm->exit_kind) == VM_EXIT_NONE) {
		if (atomic_load(&vm->sleep_gen) != s->sleep_gen && !vcpu_sleep(s, vcpu))
			break;
		if (must_park(s)) {
			vcpu_park(s, vcpu);
			continue; /* the loop test sees an exit requested meanwhile */
		}
		zhv_packet_t pkt;
		zhv_status_t st = zhv_vcpu_enter(vcpu, &pkt);
		if (st == ZHV_OK) {
			int ret = -EINVAL;
			switch (pkt.type) {
			case ZHV_PKT_TYPE_GUEST_IO:
				ret = answer_io(vm, vcpu, &pkt);
				break;
			case ZHV_PKT_TYPE_GUEST_MEM:
				ret = answer_mem(vm, vcpu, &pkt);
				break;
			case ZHV_PKT_TYPE_GUEST_DEBUG:
				if (!s->owner->on_debug)
					break; /* nobody asked for it */
				/* The debugger's: this vCPU stops at once
				 * (the debugger then stops the others). */
				if (s->owner->on_debug(s->owner->debug_ctx, s->index, vcpu,
				                       &pkt.guest_debug))
					atomic_store(&s->dbg_hold, true);
				ret = 0;
				break;
			case ZHV_PKT_TYPE_GUEST_EOI:
				/* A local-APIC EOI of a level-triggered IOAPIC
				 * vector: the IOAPIC may deliver it again. */
				ioapic_eoi(vm->ioapic, pkt.guest_eoi.vector);
				ret = 0;
				break;
			default:
				fprintf(stderr, "zhv: vcpu %u: unexpected packet type %u\n", id,
				        pkt.type);
				break;
			}
			if (ret < 0) {
				vm_request_exit(vm, VM_EXIT_ERROR, ZHV_EXIT_FATAL);
				break;
			}
			continue; /* the loop test sees an exit a device requested */
		}
		if (st == ZHV_ERR_CANCELED)
			continue; /* kicked: the loop test decides */
		if (st == ZHV_ERR_NOT_FOUND) {
			/* Memory that is neither RAM nor a trap (or port
			 * 0xFFFF, the one port libzhv cannot trap): libzhv
			 * dropped the access as a PC bus does (reads see
			 * all-ones) and entering again resumes after it. */
			zhv_vcpu_info_t info;
			if (zhv_vcpu_get_info(vcpu, &info) != ZHV_OK)
				memset(&info, 0, sizeof(info));
			vm_log_unclaimed(vm, info.last_exit == ZHV_EXIT_UNHANDLED_IO ? "port" : "MMIO",
			                 info.last_exit_addr, false, 0);
			continue;
		}
		vcpu_fatal(vm, vcpu, id, st);
		break;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu_slot *s = arg;
	struct vcpus *v = s->owner;
	char name[16];
	snprintf(name, sizeof(name), "vcpu %u", s->index + 1);
	pthread_setname_np(pthread_self(), name);

	zhv_vcpu_t *vcpu = NULL;
	int ret = vcpu_setup(s, &vcpu);

	pthread_mutex_lock(&v->lock);
	s->setup_ret = ret;
	s->ready = true;
	pthread_cond_broadcast(&v->cond);
	while (v->start == START_WAIT)
		pthread_cond_wait(&v->cond, &v->lock);
	bool go = v->start == START_GO && ret == 0;
	pthread_mutex_unlock(&v->lock);

	/* The guest runs only under the sandbox (or with --no-sandbox). */
	if (go && !sandbox_vcpu_enter(s->index + 1)) {
		vm_request_exit(v->vm, VM_EXIT_ERROR, ZHV_EXIT_FATAL);
		go = false;
	}
	if (go)
		vcpu_run(s, vcpu);
	/* The vCPU stays until vcpus_stop: kickers may still hold it. */
	return NULL;
}

/* ---- start and stop ------------------------------------------------------------ */

static void release(struct vcpus *v, enum start_state state)
{
	pthread_mutex_lock(&v->lock);
	v->start = state;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

int vcpus_start(struct vcpus *v, const struct boot_state *boot, char *err, size_t errlen)
{
	v->boot = boot;
	int ret = 0;
	for (unsigned i = 0; i < v->n && ret == 0; i++) {
		struct vcpu_slot *s = &v->slots[i];
		/* Termination signals stay the main thread's. */
		int e = vmm_thread_start(&s->thread, VCPU_STACK_SIZE, vcpu_thread, s);
		if (e < 0) {
			snprintf(err, errlen, "cannot start the thread of vCPU %u: %s", i + 1,
			         strerror(-e));
			ret = e;
			break;
		}
		s->thread_started = true;
		/* Ids come from a round-robin allocator: create one at a
		 * time so that thread i gets id i + 1. */
		pthread_mutex_lock(&v->lock);
		while (!s->ready)
			pthread_cond_wait(&v->cond, &v->lock);
		ret = s->setup_ret;
		pthread_mutex_unlock(&v->lock);
		if (ret < 0)
			snprintf(err, errlen, "%s", s->err);
	}
	/* A restored guest's clock goes on from the snapshot: set once every
	 * vCPU holds its state, before any enters. */
	if (ret == 0 && v->restore_clock) {
		zhv_status_t st = zhv_guest_set_clock(v->vm->guest, v->restore_clock);
		if (st != ZHV_OK) {
			snprintf(err, errlen, "cannot set the guest's clock: %s", zhv_status_string(st));
			ret = -EIO;
		}
	}
	release(v, ret == 0 ? START_GO : START_ABORT);
	return ret;
}

void vcpus_kick_all(struct vcpus *v)
{
	for (unsigned i = 0; i < v->n; i++) {
		zhv_vcpu_t *vcpu = atomic_load(&v->slots[i].vcpu);
		if (vcpu)
			(void)zhv_vcpu_kick(vcpu);
	}
}

void vcpus_stop(struct vcpus *v)
{
	if (!v)
		return;
	release(v, v->start == START_GO ? START_GO : START_ABORT);
	vcpus_kick_all(v);
	for (unsigned i = 0; i < v->n; i++) {
		if (v->slots[i].thread_started)
			pthread_join(v->slots[i].thread, NULL);
	}
	/* Every enter has returned: the vCPUs can go (any thread may). */
	v->vm->kick_vcpus = NULL;
	for (unsigned i = 0; i < v->n; i++)
		free(v->slots[i].blob);
	v->vm->vcpus = NULL;
	for (unsigned i = 0; i < v->n; i++) {
		zhv_vcpu_destroy(atomic_exchange(&v->slots[i].vcpu, NULL));
		free(v->slots[i].fpu0);
	}
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	free(v);
}
