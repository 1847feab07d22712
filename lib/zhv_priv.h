/* zhv_priv.h: libzhv's internal objects (guest, vCPU, memory map) and the
 * helpers the library's files share. Nothing here is public API. */
#ifndef ZHV_PRIV_H
#define ZHV_PRIV_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "id_alloc.h"
#include "irq_tracker.h"
#include "trap_map.h"
#include "x86/debug.h"
#include "x86/insn_cache.h"
#include "zhv.h"

/* ---- logging (log.c) ---------------------------------------------------- */
void zhv_log(zhv_log_level_t level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool zhv_log_enabled(zhv_log_level_t level);

/* ---- guest-physical memory (memory.c) ----------------------------------- */
struct mem_region {
	uint64_t gpa, size;
	uint8_t *hva;
	uint32_t flags; /* ZHV_MAP_* */
	int slot;       /* KVM memory slot, -1 when none (no access) */
};

struct guest_memory {
	pthread_rwlock_t lock;
	struct mem_region *regions; /* sorted by gpa, non-overlapping */
	size_t count, cap;
	uint64_t *slot_bits; /* allocated KVM slot ids */
	uint32_t nr_slots;
	int vm_fd;
	/* Called with true before, and false after, a change that takes more
	 * than one KVM ioctl (guest.c: hold the guest's vCPUs out of KVM_RUN). */
	void (*hold)(void *opaque, bool hold);
	void *hold_opaque;
	/* While a snapshot exists (snapshot.c): KVM logs the guest's writes
	 * to writable RAM (KVM_MEM_LOG_DIRTY_PAGES), memory_write reports
	 * libzhv's own writes to on_write, and gen counts changes of the map
	 * (every map, unmap and protect) so a reset can tell the map it
	 * saved from a changed one. Under the lock. */
	bool log_dirty;
	void (*on_write)(void *opaque, uint64_t gpa, size_t len);
	void *on_write_opaque;
	uint64_t gen;
};

zhv_status_t memory_init(struct guest_memory *m, int vm_fd, uint32_t nr_slots);
void memory_destroy(struct guest_memory *m);
zhv_status_t memory_map(struct guest_memory *m, uint64_t gpa, void *hva, uint64_t size,
                        uint32_t flags);
zhv_status_t memory_unmap(struct guest_memory *m, uint64_t gpa, uint64_t size);
zhv_status_t memory_protect(struct guest_memory *m, uint64_t gpa, uint64_t size, uint32_t flags);
/* memory_lookup: host address of [gpa, gpa + len) inside one region, and its
 * flags; NULL if not mapped. */
void *memory_lookup(struct guest_memory *m, uint64_t gpa, uint64_t len, uint32_t *flags);
/* memory_read / memory_write: copy to or from guest RAM; false if any byte
 * is not mapped. */
bool memory_read(struct guest_memory *m, uint64_t gpa, void *buf, size_t len);
bool memory_write(struct guest_memory *m, uint64_t gpa, const void *buf, size_t len);
/* memory_set_log_dirty: turn KVM's write log of every writable region on
 * or off, and install (on_write) for libzhv's own writes (NULL with off).
 * Returns the map generation in *gen. On failure nothing changed. */
zhv_status_t memory_set_log_dirty(struct guest_memory *m, bool on,
                                  void (*on_write)(void *, uint64_t, size_t), void *opaque,
                                  uint64_t *gen);

/* ---- statistics --------------------------------------------------------- */
struct guest_stats {
	_Atomic uint64_t vm_entries, vm_exits, interrupts, kicks, signal_exits, io_exits,
		mmio_exits, bell_packets, rdmsr_exits, wrmsr_exits, msr_gp_injected, hlt_exits,
		shutdown_exits, emulation_failures, emulated_by_libzhv, other_exits, eoi_exits;
};
#define STAT_INC(guest, field) atomic_fetch_add_explicit(&(guest)->stats.field, 1, memory_order_relaxed)

/* ---- guest (guest.c) ---------------------------------------------------- */

/* Number of IOAPIC pins KVM routes in split-irqchip mode (the VMM's IOAPIC
 * owns them; libzhv only needs the in-kernel local APICs). GSI routes of
 * these pins tell KVM which vectors need EOI exits. */
#define SPLIT_IRQCHIP_PINS 24

/* The interrupt message of one IOAPIC pin (zhv_guest_set_irq_route). */
struct irq_route {
	bool enabled;
	uint64_t address;
	uint32_t data;
};

/* What KVM gave a new KVM vCPU right after libzhv installed its CPUID:
 * its complete power-on state (x86/vcpu_state.c). A vCPU that reuses the
 * KVM vCPU starts from it, so that it cannot be told from a new one. */
#define POWER_ON_MSRS_MAX 512
struct vcpu_power_on {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	bool have_xcrs, have_debugregs;
	uint32_t nmsrs; /* MSRs KVM let us read and write back (not the TSC) */
	struct kvm_msr_entry msrs[POWER_ON_MSRS_MAX];
};

/* A KVM vCPU cannot be destroyed before its VM: when a zhv vCPU goes away
 * its KVM vCPU stays in its slot and goes back to its power-on state when
 * the same id is used again. Slots are allocated on first use. */
struct kvm_vcpu_slot {
	int fd;
	struct kvm_run *run; /* NULL until mapped (a failed mmap is retried) */
	struct kvm_lapic_state lapic_reset; /* its power-on LAPIC page */
	bool initialized; /* a vCPU was set up on it: lapic_reset etc. hold */
	struct vcpu_power_on power_on;      /* the rest of its power-on state */
	/* The zhv vCPU object of this id. It outlives zhv_vcpu_destroy and is
	 * reused by the next vCPU with the id, so that a kick, interrupt or
	 * get_info racing with destroy never touches freed memory; it is
	 * freed with the guest. */
	zhv_vcpu_t *obj;
};

struct zhv_guest {
	atomic_int refs; /* the user's reference + one per vCPU */
	int kvm_fd, vm_fd;
	size_t run_size;
	uint32_t max_vcpus;
	struct id_alloc ids; /* vCPU ids: [1, max_vcpus + 1) */
	struct trap_map traps;
	struct guest_memory mem;
	pthread_mutex_t vcpu_lock;
	struct kvm_vcpu_slot **kvm_vcpus; /* indexed by APIC ID = id - 1 */
	/* The run gate (DESIGN decision 9): a change of KVM's memory slots
	 * that takes several ioctls holds every vCPU of the guest outside
	 * KVM_RUN. gate_running counts vCPUs inside (or about to enter)
	 * KVM_RUN; gate_hold counts memory changes waiting or in progress. */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	uint32_t gate_running, gate_hold;
	bool sync_regs; /* MEM traps exist: have KVM_RUN return the registers */
	/* BELL doorbells on KVM ioeventfds (guest_bell_attach): whether KVM
	 * can (IOEVENTFD with ANY_LENGTH), and the addresses registered so
	 * far, at most ZHV_GUEST_MAX_DOORBELLS (bell_lock; bell_count is also
	 * read without it, as a hint). */
	pthread_mutex_t bell_lock;
	atomic_bool bell_fast;
	_Atomic uint32_t bell_count;
	uint64_t bell_addrs[ZHV_GUEST_MAX_DOORBELLS];
	struct kvm_cpuid2 *cpuid;        /* the policy table (cpuid.c) */
	uint64_t xcr0;                   /* initial XCR0 */
	pthread_mutex_t route_lock;      /* routes, and KVM's table made of them */
	struct irq_route routes[SPLIT_IRQCHIP_PINS];
	struct guest_stats stats;
	atomic_bool has_snapshot; /* zhv_snapshot_create: one at a time */
};

/* guest_bell_attach: give (addr) of BELL trap (t) a KVM ioeventfd, unless
 * it has one, the guest has ZHV_GUEST_MAX_DOORBELLS already, or KVM cannot;
 * then its writes keep taking the exit path. Any thread. */
void guest_bell_attach(zhv_guest_t *guest, const struct trap *t, uint64_t addr);

void guest_ref(zhv_guest_t *guest);
void guest_unref(zhv_guest_t *guest);

/* ---- vCPU (vcpu.c) ------------------------------------------------------ */
struct thread_binding;

/* What the last exit left for KVM to finish at the next KVM_RUN. */
enum pending_completion {
	PENDING_NONE = 0,
	PENDING_IO_IN,
	PENDING_IO_OUT,
	PENDING_MMIO_READ,
	PENDING_MMIO_WRITE,
};

struct zhv_vcpu {
	zhv_guest_t *guest;
	uint32_t id;      /* 1 = BSP */
	uint32_t apic_id; /* id - 1, also the KVM vcpu id */
	int fd;
	struct kvm_run *run;
	struct kvm_vcpu_slot *slot;
	struct thread_binding *binding;
	atomic_bool live;     /* between create and destroy */
	atomic_uint users;    /* kick / interrupt / get_info calls in progress */
	atomic_bool kicked;   /* a kick waits to be reported */
	atomic_bool in_enter; /* inside zhv_vcpu_enter */
	bool in_run;          /* counted in gate_running (under gate_lock) */
	uint64_t run_sigmask; /* the signal mask KVM_RUN uses (kernel format) */
	bool run_sigmask_set;
	struct irq_tracker tracker;
	enum pending_completion pending;
	/* A string or REP port access KVM handed over in one exit with
	 * io.count elements: one packet per element, (rep_index) the one the
	 * caller holds now. */
	uint32_t rep_index, rep_count;
	uint64_t rep_key;
	struct insn_cache icache; /* MEM packets' instruction lengths (vCPU thread) */
	_Atomic uint32_t last_exit; /* read by zhv_vcpu_get_info on any thread */
	_Atomic uint64_t last_exit_addr;
	struct vcpu_debug dbg; /* guest debugging (x86/debug.c); vCPU thread only */
};

/* vcpu_poke: make the vCPU leave KVM_RUN soon (immediate_exit + signal).
 * Any thread; async-signal-safe. */
void vcpu_poke(zhv_vcpu_t *vcpu);

/* vcpu_run_begin / vcpu_run_end: bracket every KVM_RUN of (vcpu) (the run
 * gate): begin waits while a memory change holds the guest's vCPUs out. */
void vcpu_run_begin(zhv_vcpu_t *vcpu);
void vcpu_run_end(zhv_vcpu_t *vcpu);

/* guest_hold_vcpus / guest_release_vcpus: around a change of KVM's memory
 * slots that takes more than one ioctl, keep every vCPU of (guest) out of
 * KVM_RUN (kick them, wait until each is out, block re-entry), then let
 * them go. Callers of enter see nothing. Any thread, including a vCPU's
 * own (it is outside KVM_RUN while it calls libzhv). */
void guest_hold_vcpus(zhv_guest_t *guest);
void guest_release_vcpus(zhv_guest_t *guest);

/* kvm_run_status: the status for KVM_RUN failing with (err) (errno), the
 * same on every path that runs KVM_RUN. */
zhv_status_t kvm_run_status(int err);

/* ---- x86 policy (x86/cpuid.c, x86/msr.c, x86/vcpu_state.c) -------------- */
/* cpuid_build_policy: KVM's supported table with Zircon's overrides. */
zhv_status_t cpuid_build_policy(int kvm_fd, struct kvm_cpuid2 **out);
/* cpuid_set_vcpu: install the policy on (vcpu_fd) for (apic_id). */
zhv_status_t cpuid_set_vcpu(const struct kvm_cpuid2 *policy, int vcpu_fd, uint32_t apic_id);
/* cpuid_xcr0_supported: XCR0 bits the policy allows. */
uint64_t cpuid_xcr0_supported(const struct kvm_cpuid2 *policy);

/* msr_policy_read / msr_policy_write: Zircon's answer for an MSR that KVM
 * left to user space. Return true if handled (value in *value for reads),
 * false if the guest gets #GP. */
bool msr_policy_read(uint32_t index, uint64_t *value);
bool msr_policy_write(uint32_t index, uint64_t value);

/* vcpu_state_init: the initial architectural state of a new or reused
 * vCPU (spec 2.2), per (options) and (entry). A new KVM vCPU gets its CPUID
 * and its power-on state is captured into its slot; a reused one (reused)
 * first finishes any completion its predecessor left and goes back to that
 * power-on state; then both are set up alike. */
zhv_status_t vcpu_state_init(zhv_vcpu_t *vcpu, uint32_t options, uint64_t entry, bool reused);
zhv_status_t vcpu_state_read(zhv_vcpu_t *vcpu, uint32_t kind, void *buf, size_t len);
zhv_status_t vcpu_state_write(zhv_vcpu_t *vcpu, uint32_t kind, const void *buf, size_t len);
/* vcpu_complete_pending: let KVM finish the last I/O or MMIO exit (so the
 * register state is what the guest sees after the instruction) without
 * running guest code. Reads of state never call it; writes of register
 * state and zhv_vcpu_destroy do. */
zhv_status_t vcpu_complete_pending(zhv_vcpu_t *vcpu);
/* vcpu_msrs_each: KVM_GET_MSRS or KVM_SET_MSRS (req) of e[0..n), one MSR
 * KVM refuses not stopping the others. With (drop), refused entries are
 * removed. Returns the number left (drop) or refused (!drop), or a
 * negative status. */
int64_t vcpu_msrs_each(zhv_vcpu_t *vcpu, unsigned long req, struct kvm_msr_entry *e, uint32_t n,
                       bool drop);
/* vcpu_saved_msr_list: the MSRs a snapshot of (vcpu) holds: KVM's saved-MSR
 * list and PAT/MTRRs, without the VM-wide and x2APIC ones (with the TSC),
 * into idx[0..max). Returns the count. */
uint32_t vcpu_saved_msr_list(zhv_vcpu_t *vcpu, uint32_t *idx, uint32_t max);

/* ---- snapshots (x86/vcpu_snapshot.c) ------------------------------------- */
struct blob_view;
/* vcpu_blob_save: zhv_vcpu_save without the thread check. */
zhv_status_t vcpu_blob_save(zhv_vcpu_t *vcpu, void *buf, size_t cap, size_t *len);
/* vcpu_blob_check_for: the checks of a blob (view, already parsed) that
 * need the vCPU: model and APIC ID. */
zhv_status_t vcpu_blob_check_for(zhv_vcpu_t *vcpu, const struct blob_view *view);
/* The MSRs of a checked blob as KVM_SET_MSRS takes them (the TSC deadline
 * apart), made once so that applying a blob allocates nothing. */
struct vcpu_msrs_prepared {
	struct kvm_msrs *msrs;
	uint64_t deadline;
	bool have_deadline;
};
zhv_status_t vcpu_msrs_prepare(const struct blob_view *view, struct vcpu_msrs_prepared *p);
void vcpu_msrs_release(struct vcpu_msrs_prepared *p);
/* vcpu_blob_apply: set the state of a checked blob (no rollback). */
zhv_status_t vcpu_blob_apply(zhv_vcpu_t *vcpu, const struct blob_view *view,
                             const struct vcpu_msrs_prepared *msrs);
/* vcpu_blob_restore: zhv_vcpu_restore without the thread check. */
zhv_status_t vcpu_blob_restore(zhv_vcpu_t *vcpu, const void *buf, size_t len);
/* vcpu_on_thread: true on the thread (vcpu) is bound to. */
bool vcpu_on_thread(const zhv_vcpu_t *vcpu);

/* ---- exits (x86/exit.c) ------------------------------------------------- */
enum exit_outcome {
	EXIT_CONTINUE = 1, /* re-enter the guest */
	EXIT_DELIVER = 2,  /* return the packet */
};
/* exit_handle: handle run->exit_reason. Returns EXIT_CONTINUE, EXIT_DELIVER
 * or a (negative) zhv_status_t that ends the enter call. */
int exit_handle(zhv_vcpu_t *vcpu, zhv_packet_t *packet);
/* exit_io_next_element: if a string I/O exit has elements left, fill
 * (packet) with the next one and return true. */
bool exit_io_next_element(zhv_vcpu_t *vcpu, zhv_packet_t *packet);
/* exit_inject_pending: before an entry, inject one tracked exception if
 * Zircon's priorities allow (spec 4). */
zhv_status_t exit_inject_pending(zhv_vcpu_t *vcpu);
/* emulate_fallback (x86/emulate.c): finish the instruction at RIP that
 * KVM could not emulate (KVM_INTERNAL_ERROR_EMULATION). True if it did
 * (or queued its exception); else (why) says why not. */
bool emulate_fallback(zhv_vcpu_t *vcpu, char *why, size_t whylen);
/* exit_emulation_failure: KVM could not emulate the instruction at RIP:
 * a guest-debug stop (EXIT_DELIVER, packet filled), or libzhv's emulator
 * ran it (EXIT_CONTINUE, or EXIT_DELIVER for a single-step stop), or 0
 * and (why) says why neither. */
int exit_emulation_failure(zhv_vcpu_t *vcpu, zhv_packet_t *packet, char *why, size_t whylen);
/* exit_dump: log registers and the decoded instruction at RIP. */
void exit_dump(zhv_vcpu_t *vcpu, zhv_log_level_t level, const char *why);

/* ioctl helper: retries EINTR for non-RUN ioctls, returns -errno on error. */
int zhv_ioctl(int fd, unsigned long req, void *arg);
zhv_status_t zhv_status_from_errno(int err);

#endif /* ZHV_PRIV_H */
