/* zhv.h: the public API of libzhv, a guest and vCPU layer over Linux KVM.
 *
 * libzhv gives a program what Zircon's x86 hypervisor gives its user space:
 * guests with a guest-physical address space, traps delivered as packets,
 * ports, vCPUs bound to threads (enter / kick / interrupt / read and write
 * state), an interrupt tracker with Zircon's injection priorities, CPUID and
 * MSR policy, and a PV clock. KVM (/dev/kvm) plays the part of VMX.
 *
 * Conventions for every call in this header:
 *  - Calls return a zhv_status_t: ZHV_OK (0) or a negative ZHV_ERR_* code.
 *    zhv_status_string() names it. Output parameters are written only on
 *    ZHV_OK.
 *  - The library never exits, aborts or prints on its own. Diagnostics (the
 *    decoded instruction and registers after an emulation failure, unhandled
 *    exits) go to the callback installed with zhv_set_log().
 *  - Objects are opaque handles. A guest lives until zhv_guest_destroy() has
 *    been called *and* every vCPU of it has been destroyed (the vCPUs hold a
 *    reference), as in Zircon.
 *  - Threads: zhv_vcpu_enter(), zhv_vcpu_read_state() and
 *    zhv_vcpu_write_state() run only on the thread that created the vCPU
 *    (ZHV_ERR_BAD_STATE elsewhere). Everything else may be called from any
 *    thread.
 *  - Handles: a call on a vCPU that is running on another thread when
 *    zhv_vcpu_destroy() is called completes safely (destroy waits for it).
 *    A call that starts after destroy (or, for a guest, after its last
 *    reference is gone) has returned is the caller's error, as using a
 *    closed handle is in Zircon.
 *  - libzhv sends the real-time signal ZHV_KICK_SIGNAL (SIGRTMIN + 4) to vCPU
 *    threads to make them leave KVM_RUN. zhv_vcpu_create() installs a
 *    handler for it (with SA_RESTART) unless the program already has one
 *    there (then it fails with ALREADY_EXISTS); a program must not use that
 *    signal for anything else. A vCPU thread keeps the signal blocked
 *    outside KVM_RUN (zhv_vcpu_create() blocks it); KVM unblocks it only
 *    while the guest runs (KVM_SET_SIGNAL_MASK, the thread's current mask
 *    minus that signal), so kicks work whatever the program does with its
 *    signal mask and never interrupt the program's own system calls. At
 *    most one such signal is in flight per vCPU thread: kicks and
 *    interrupts that come while one is send none (it, or immediate_exit,
 *    ends KVM_RUN).
 */

/* Deviations from Zircon.
 *
 * libzhv does what Zircon's x86 hypervisor does (calls, statuses, packets,
 * initial state, the quirks of its list in the project's spec, section
 * 7.5) except for what follows, in one place. Each item: what Zircon does;
 * what libzhv does; why. The call comments below hold the details.
 *
 *  - Packet size. Zircon's zx_port_packet_t is 48 bytes; zhv_packet_t is
 *    56: the MEM payload also carries the access as KVM decoded it. Not
 *    binary-compatible; Zircon's field names and offsets are kept. Why:
 *    KVM performs the access itself, so the caller gets it without an x86
 *    decoder of its own. (zhv_packet_t, zhv_packet_guest_mem_t.)
 *  - Packet types of libzhv's own. Zircon has no EOI packet;
 *    ZHV_PKT_TYPE_GUEST_EOI is ours, numbered outside Zircon's range
 *    (bit 31 set), never 7 (ZX_PKT_TYPE_INTERRUPT). Why: KVM reports
 *    level-triggered EOIs to user space, which Zircon's kernel handles
 *    itself. (ZHV_PKT_TYPE_*, zhv_guest_set_irq_route.)
 *  - MEM trap reads. Zircon does not perform the access: user space decodes
 *    the instruction at rip and emulates it (results through
 *    ZX_VCPU_STATE), so an unanswered read changes no register. libzhv: KVM
 *    has decoded the access and completes it at the next enter; the read
 *    loads what zhv_vcpu_write_state(ZHV_VCPU_MEM) gave, or 0 if nothing
 *    (lib/x86/exit.c zeroes KVM's data). rip and instruction_size come from
 *    decoding (a write's instruction is decoded backwards from RIP;
 *    instruction_size 0 if that fails), not from a VM-exit field. Why: KVM
 *    completes every MMIO read itself.
 *  - RIP at a packet. Zircon advances RIP past the instruction before it
 *    returns an IO or MEM packet. libzhv: KVM finishes the instruction at
 *    the next enter, so until then RIP is at an IN or MEM read (and at a
 *    single OUT on VMX/SVM), and a state read shows it there without
 *    finishing the exit. Why: finishing it early would lose the answer.
 *    (zhv_vcpu_read_state, zhv_vcpu_write_state.)
 *  - String and REP port I/O (INS/OUTS). Zircon fails enter with
 *    NOT_SUPPORTED (RIP on the instruction). libzhv returns one IO packet
 *    per element; each IN element is answered before the next enter. Why:
 *    KVM batches the elements into one exit, and real guests use them.
 *    (zhv_vcpu_enter.)
 *  - Unanswered IN on a trapped port. Zircon zeroes RAX for a 4-byte IN and
 *    leaves AL/AX as they were for 1 and 2 bytes. libzhv: the access_size
 *    low bytes of RAX become 0 for every size. Why: KVM completes the IN
 *    from a buffer, which libzhv fills with 0 until answered.
 *  - Unclaimed I/O and memory (a port without an IO trap; a guest-physical
 *    address with neither RAM nor a trap). Zircon fails enter with
 *    NOT_FOUND and leaves RIP on the instruction, so the error repeats on
 *    every enter. libzhv also returns NOT_FOUND, but completes the access as
 *    a PC bus does: reads see all-ones, writes are dropped, and the next
 *    enter resumes after the instruction. Why: a VMM can log it and go on
 *    (guests probe for absent devices). (zhv_vcpu_enter.)
 *  - Local APIC. Zircon emulates an x2APIC of its own (SVR always reads
 *    0xFF, INIT ignored, STARTUP ignores shorthands, 32-bit IPI masks,
 *    timer at the TSC rate, a TSC_DEADLINE write in another timer mode or a
 *    reserved LVT mode fails enter) and sends IPIs and STARTUP to user space
 *    as VCPU packets. libzhv uses KVM's architectural local APIC (xAPIC
 *    and x2APIC, split irqchip): registers, INIT/SIPI, timer and errors as
 *    on hardware; IPIs travel between vCPUs inside KVM, so
 *    ZHV_PKT_TYPE_GUEST_VCPU packets are never produced and APs are created
 *    up front (ZHV_VCPU_OPT_WAIT_SIPI) rather than on a STARTUP packet.
 *    HLT waits inside KVM. Why: KVM keeps the x2APIC MSRs to itself, so an
 *    APIC of our own cannot exist on KVM. (zhv_vcpu_create,
 *    zhv_packet_guest_vcpu_t.)
 *  - Interrupt vectors. Zircon accepts 21-31 and fails the next enter, and
 *    drops vectors above 255 silently. libzhv refuses them at the call
 *    (INVALID_ARGS, OUT_OF_RANGE). Why: the error shows where it is made.
 *    (zhv_vcpu_interrupt.)
 *  - vCPU count. Zircon allows ids 1-63 (a 64th vCPU: NO_RESOURCES).
 *    libzhv allows up to the guest's max_vcpus (KVM's maximum by default)
 *    with 32-bit x2APIC IDs; MSIs name APIC IDs above 255 in address bits
 *    63:40. Why: KVM supports it. (zhv_vcpu_create, zhv_guest_signal_msi.)
 *  - Initial CR4. Zircon's BSP starts with PAE|PGE|OSFXSR|OSXSAVE|FSGSBASE.
 *    libzhv asks KVM for the same, and if KVM refuses OSXSAVE or FSGSBASE
 *    (as some KVMs do when their CPUID view lacks XSAVE or FSGSBASE),
 *    creates the vCPU without both bits and logs a warning. Why: otherwise
 *    no vCPU could be created on those hosts.
 *  - MSRs. Zircon answers a fixed list and injects #GP for everything
 *    else (TSC, TSC_DEADLINE reads, SPEC_CTRL reads, MISC_ENABLE writes...);
 *    an APIC_BASE write that changes the APIC's mode fails enter. libzhv:
 *    the MSRs KVM implements (architectural ones, the APIC's, kvmclock)
 *    behave as KVM makes them; for the others libzhv answers Zircon's list
 *    and injects #GP. Why: KVM does not pass its own MSRs to user space.
 *  - CPUID. Zircon: the host's CPUID with its overrides; leaf 0 reports the
 *    host's maximum, leaves above 0x17 answer as 0x17. libzhv: KVM's
 *    supported table with Zircon's overrides, so leaf 0, leaves beyond the
 *    table, and host features KVM adds follow KVM (README: "CPUID on this
 *    machine"). Why: the table given to KVM is all a guest can see.
 *  - Invalid CR0 and XSETBV values. Zircon fails enter with INVALID_ARGS
 *    for some, and raises #GP for CR0 with CD=0, NW=1 with RIP already past
 *    the instruction. libzhv: KVM raises the architectural #GP or #UD at
 *    the instruction. Why: KVM handles these instructions.
 *  - Kick. Zircon's kernel interrupts the vCPU itself; libzhv uses an
 *    atomic flag, KVM's immediate_exit and the signal ZHV_KICK_SIGNAL (see
 *    above). The contract is Zircon's. (zhv_vcpu_kick.)
 *  - Guest memory. Zircon enforces a guest mapping's permissions, execute
 *    included (EPT), and maps with the cache policy of the VMO. libzhv
 *    needs READ in every mapping, cannot enforce EXECUTE, and refuses the
 *    ZHV_MAP_CACHE_* policies with NOT_SUPPORTED (RAM is write-back; the
 *    guest's PAT still applies); a write to read-only RAM fails enter with
 *    ACCESS_DENIED. Why: KVM memory slots are readable, executable and
 *    write-back, optionally read-only. (ZHV_MAP_*, zhv_guest_map.)
 *  - PV clock: KVM's kvmclock (the MSRs and CPUID leaves Zircon also
 *    uses), with KVM's update rules rather than Zircon's.
 */

#ifndef ZHV_H
#define ZHV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZHV_VERSION_MAJOR 0
#define ZHV_VERSION_MINOR 1
#define ZHV_VERSION_PATCH 0
#define ZHV_VERSION_STRING "0.1.0"

#if defined(__GNUC__)
#define ZHV_MUST_CHECK __attribute__((warn_unused_result))
#else
#define ZHV_MUST_CHECK
#endif

/* ------------------------------------------------------------------------ */
/* Status codes (named and numbered after Zircon's).                         */

typedef int32_t zhv_status_t;

/* clang-format off */
#define ZHV_OK                   0
#define ZHV_ERR_INTERNAL        (-1)
#define ZHV_ERR_NOT_SUPPORTED   (-2)
#define ZHV_ERR_NO_RESOURCES    (-3)
#define ZHV_ERR_NO_MEMORY       (-4)
#define ZHV_ERR_INVALID_ARGS    (-10)
#define ZHV_ERR_WRONG_TYPE      (-12)
#define ZHV_ERR_BAD_STATE       (-20)
#define ZHV_ERR_TIMED_OUT       (-21)
#define ZHV_ERR_SHOULD_WAIT     (-22)
#define ZHV_ERR_CANCELED        (-23)
#define ZHV_ERR_NOT_FOUND       (-25)
#define ZHV_ERR_ALREADY_EXISTS  (-26)
#define ZHV_ERR_ACCESS_DENIED   (-30)
#define ZHV_ERR_IO              (-40)
#define ZHV_ERR_OUT_OF_RANGE    (-14)
#define ZHV_ERR_BUFFER_TOO_SMALL (-15)
#define ZHV_ERR_IO_DATA_INTEGRITY (-42)
/* clang-format on */

/* zhv_status_string: the name of (status), e.g. "ZHV_ERR_BAD_STATE".
 * Any thread. Never NULL; unknown codes give "ZHV_ERR_<unknown>". */
const char *zhv_status_string(zhv_status_t status);

/* ------------------------------------------------------------------------ */
/* Logging.                                                                  */

typedef enum {
	ZHV_LOG_ERROR = 0, /* an enter call fails for the guest's sake */
	ZHV_LOG_WARN = 1,  /* something odd the guest did, handled */
	ZHV_LOG_DEBUG = 2, /* per-exit chatter (only if asked for) */
} zhv_log_level_t;

/* The callback gets one complete message without a trailing newline. It may
 * be called from any vCPU thread, concurrently: it must be thread-safe. */
typedef void (*zhv_log_fn)(void *opaque, zhv_log_level_t level, const char *msg);

/* zhv_set_log: install (fn) (NULL: discard everything) for messages up to
 * (max_level). Process-wide; any thread; takes effect for later messages. */
void zhv_set_log(zhv_log_fn fn, void *opaque, zhv_log_level_t max_level);

/* ------------------------------------------------------------------------ */
/* Preloading.                                                               */

/* zhv_preload: load now every shared library libzhv would otherwise load on
 * first use. Today that is Zydis (libZydis.so.4.0, else libZydis.so, looked
 * for where libzhv's build found it, then in the usual library
 * directories), the instruction decoder, which libzhv maps itself (no
 * dlopen: a static program can use it) the first time it decodes an
 * instruction: a MEM trap's access or a crash report. Call it before
 * anything that forbids opening files later, such as a seccomp filter
 * without open(); afterwards libzhv opens no file. Process-wide; any thread,
 * at any time, any number of times (the load happens once; later calls
 * return the first call's result).
 * Returns ZHV_OK when every library is loaded; ZHV_ERR_NOT_SUPPORTED when
 * one is missing or lacks a symbol libzhv needs (libzhv then works without
 * it exactly as it would have after a failed lazy load: MEM packets lack
 * their instruction lengths and crash reports lack the instruction). */
zhv_status_t zhv_preload(void);

/* ------------------------------------------------------------------------ */
/* The host.                                                                 */

/* How the host's KVM runs guests. */
typedef enum zhv_host_virt {
	ZHV_HOST_VIRT_UNKNOWN = 0,  /* /dev/kvm works, but no known KVM module is loaded */
	ZHV_HOST_VIRT_VMX = 1,      /* hardware: Intel VT-x (kvm_intel) */
	ZHV_HOST_VIRT_SVM = 2,      /* hardware: AMD-V (kvm_amd) */
	ZHV_HOST_VIRT_KVM_PVM = 3,  /* kvm_pvm: shadow paging, guest CPL0 code emulated */
} zhv_host_virt_t;

typedef struct zhv_host_info {
	char cpu_vendor[13];     /* CPUID leaf 0's vendor, e.g. "AuthenticAMD" */
	bool kvm_usable;         /* /dev/kvm opened read-write, API version 12 */
	int kvm_errno;           /* why not, if !kvm_usable: open()'s errno, or 0 */
	int kvm_api_version;     /* KVM_GET_API_VERSION, or -1 if /dev/kvm did not open */
	zhv_host_virt_t virt;    /* meaningful when kvm_usable */
} zhv_host_info_t;

/* zhv_host_query: what this host offers: the CPU vendor, whether /dev/kvm
 * can be used, KVM's API version and kind. Any thread; opens /dev/kvm and
 * closes it again, reads /sys/module. Returns ZHV_OK with (*info) filled
 * whether or not KVM is usable (kvm_usable says); ZHV_ERR_INVALID_ARGS if
 * (info) is NULL. */
zhv_status_t zhv_host_query(zhv_host_info_t *info);

/* zhv_host_virt_string: a short description of (virt), e.g. "hardware
 * virtualization (AMD-V)" or "kvm_pvm". Never NULL. */
const char *zhv_host_virt_string(zhv_host_virt_t virt);

/* ------------------------------------------------------------------------ */
/* Time.                                                                     */

/* Absolute CLOCK_MONOTONIC time in nanoseconds. */
typedef int64_t zhv_time_t;
#define ZHV_TIME_INFINITE INT64_MAX

/* zhv_clock_monotonic: now, in ns. Any thread. */
zhv_time_t zhv_clock_monotonic(void);
/* zhv_deadline_after: now + (ns), saturating at ZHV_TIME_INFINITE. */
zhv_time_t zhv_deadline_after(int64_t ns);

/* ------------------------------------------------------------------------ */
/* Packets.                                                                  */

/* Packet types. USER and GUEST_* have Zircon's numbers (ZX_PKT_TYPE_*).
 * Types of libzhv's own have bit 31 set and a low byte Zircon does not use
 * either (Zircon numbers its types from 0 up: 0x00-0x0A so far, 7 being
 * ZX_PKT_TYPE_INTERRUPT; some versions mask types with 0xFF), so no Zircon
 * type will ever equal one of them. Compare types with these names only. */
/* clang-format off */
#define ZHV_PKT_TYPE_USER        0u
#define ZHV_PKT_TYPE_GUEST_BELL  3u
#define ZHV_PKT_TYPE_GUEST_MEM   4u
#define ZHV_PKT_TYPE_GUEST_IO    5u
#define ZHV_PKT_TYPE_GUEST_VCPU  6u
#define ZHV_PKT_TYPE_GUEST_EOI   0x800000E0u /* libzhv's own (Zircon has no such packet) */
#define ZHV_PKT_TYPE_GUEST_DEBUG 0x800000E1u /* libzhv's own: see zhv_vcpu_set_debug */

#define ZHV_PKT_GUEST_VCPU_INTERRUPT 0u
#define ZHV_PKT_GUEST_VCPU_STARTUP   1u
/* clang-format on */

typedef struct {
	uint64_t u64[4];
} zhv_packet_user_t;

/* A BELL trap was written. (addr) is the exact guest-physical address. */
typedef struct {
	uint64_t addr;
	uint64_t reserved0;
	uint64_t reserved1;
	uint64_t reserved2;
} zhv_packet_guest_bell_t;

/* A MEM trap was accessed. Zircon's fields first; then the access as KVM
 * decoded it, so that a caller need not decode the instruction itself.
 *
 * (rip) is the address of the accessing instruction and (instruction_size)
 * its length in bytes (from a real x86 decoder). When zhv_vcpu_enter()
 * returns the packet, the guest's RIP is past the instruction for a write
 * (as in Zircon) and still at it for a read, until the next enter finishes
 * it (see zhv_vcpu_read_state). For a write, (data) holds the (access_size)
 * bytes written. For a
 * read, the value the guest receives is what the caller sets with
 * zhv_vcpu_write_state(ZHV_VCPU_MEM) before the next enter (0 if it sets
 * nothing). */
typedef struct {
	uint64_t addr;                /* guest-physical address accessed */
	uint64_t cr3;                 /* guest CR3 at the access */
	uint64_t rip;                 /* guest RIP of the accessing instruction */
	uint8_t instruction_size;     /* 1..15; 0 if it could not be decoded */
	uint8_t default_operand_size; /* 2 or 4 (Zircon's rule, spec 1.10) */
	uint8_t access_size;          /* 1, 2, 4 or 8 bytes */
	uint8_t write;                /* 1: the guest wrote, 0: it read */
	uint8_t reserved[4];
	uint64_t data; /* write: the value written (low access_size bytes) */
} zhv_packet_guest_mem_t;

/* An IO trap was accessed. For an OUT, (data) holds the value written; for an
 * IN it is 0 and the caller answers with zhv_vcpu_write_state(ZHV_VCPU_IO). */
typedef struct {
	uint16_t port;
	uint8_t access_size; /* 1, 2 or 4 */
	uint8_t input;       /* 1: IN, 0: OUT */
	union {
		uint8_t u8;
		uint16_t u16;
		uint32_t u32;
		uint8_t data[4];
	};
	uint64_t reserved0;
	uint64_t reserved1;
	uint64_t reserved2;
} zhv_packet_guest_io_t;

/* Zircon's VCPU packet. libzhv's vCPUs use KVM's local APIC, which delivers
 * IPIs and INIT/SIPI between vCPUs itself, so libzhv never produces these;
 * the type exists so that Zircon-shaped programs compile and can queue them
 * as they like. */
typedef struct {
	uint32_t type;
	uint32_t reserved0;
	union {
		struct {
			uint64_t mask;
			uint8_t vector;
			uint8_t reserved[7];
		} interrupt;
		struct {
			uint64_t id;
			uint64_t entry;
		} startup;
	};
	uint64_t reserved1;
} zhv_packet_guest_vcpu_t;

/* The guest's local APIC took an EOI for (vector), a vector its interrupt
 * controller sends level-triggered (a route set with
 * zhv_guest_set_irq_route): what a PC's local APIC broadcasts to its I/O
 * APICs so that they clear Remote-IRR and sample the input line again. The
 * key is 0. With a hardware-assisted KVM the packet follows the guest's EOI
 * write. kvm_pvm instead EOIs each interrupt itself when it injects it (the
 * guest's own EOI write then finds nothing in service) and reports that
 * EOI at the vCPU's next pass through KVM's entry path: after its next
 * exit, or 1024 emulated instructions after the last entry, but not while
 * the vCPU is halted. So there the packet may come before the guest's
 * handler has run, or only after the guest halted and woke up again. */
typedef struct {
	uint8_t vector;
	uint8_t reserved[31];
} zhv_packet_guest_eoi_t;

/* The vCPU stopped for a debugger (ZHV_PKT_TYPE_GUEST_DEBUG). The key is the
 * vCPU's id. zhv_vcpu_enter() returns it only while guest debugging is
 * enabled on that vCPU (zhv_vcpu_set_debug with ZHV_DEBUG_ENABLE), and only
 * for a stop that the settings asked for. Entering again resumes the guest
 * where it stopped (see each reason for where that is). */
/* clang-format off */
#define ZHV_DEBUG_STOP_STEP          1u /* one instruction single-stepped; rip =
                                           the next instruction */
#define ZHV_DEBUG_STOP_SW_BREAKPOINT 2u /* an int3 executed; rip = the address OF
                                           the int3 byte, the guest's RIP is left
                                           there (ZHV_DEBUG_SW_BREAKPOINTS only) */
#define ZHV_DEBUG_STOP_HW_BREAKPOINT 3u /* execute breakpoint in debug register
                                           (slot); rip = that instruction, not
                                           yet executed (RFLAGS.RF is set, so
                                           the next enter runs it) */
#define ZHV_DEBUG_STOP_WATCHPOINT    4u /* data breakpoint (slot) hit; the
                                           accessing instruction is done, rip =
                                           the next one */
/* clang-format on */
typedef struct {
	uint32_t reason; /* ZHV_DEBUG_STOP_* */
	uint32_t slot;   /* HW_BREAKPOINT / WATCHPOINT: debug register 0..3, else 0 */
	uint64_t rip;    /* guest RIP as described per reason */
	uint64_t addr;   /* HW_BREAKPOINT / WATCHPOINT: the address in that slot, else 0 */
	uint64_t dr6;    /* DR6 as KVM reported it (0 for stops libzhv makes itself) */
	uint64_t reserved;
} zhv_packet_guest_debug_t;

/* A packet: Zircon's zx_port_packet_t layout (key, type, status, then the
 * payload), but 56 bytes where Zircon's is 48: the union is 40 bytes, not
 * 32, because the MEM payload also carries the access as KVM decoded it
 * (access_size, write, data). Field names and offsets up to the end of
 * Zircon's payloads are Zircon's; the size is not (see "Deviations from
 * Zircon" at the top). */
typedef struct {
	uint64_t key;
	uint32_t type;  /* ZHV_PKT_TYPE_* */
	int32_t status; /* always ZHV_OK for guest packets */
	union {
		zhv_packet_user_t user;
		zhv_packet_guest_bell_t guest_bell;
		zhv_packet_guest_mem_t guest_mem;
		zhv_packet_guest_io_t guest_io;
		zhv_packet_guest_vcpu_t guest_vcpu;
		zhv_packet_guest_eoi_t guest_eoi;
		zhv_packet_guest_debug_t guest_debug;
	};
} zhv_packet_t;

#ifdef __cplusplus
static_assert(sizeof(zhv_packet_t) == 56, "zhv_packet_t is 56 bytes");
#else
_Static_assert(sizeof(zhv_packet_t) == 56, "zhv_packet_t is 56 bytes");
#endif

/* ------------------------------------------------------------------------ */
/* Ports: queues of packets. BELL traps deliver to a port; programs queue
 * their own (user) packets too.                                             */

typedef struct zhv_port zhv_port_t;

#define ZHV_PORT_DEFAULT_MAX_USER_PACKETS 2048u

/* zhv_port_create: a new port that accepts up to (max_user_packets) queued
 * user packets (0: ZHV_PORT_DEFAULT_MAX_USER_PACKETS). Packets from traps do
 * not count against that limit. Any thread. Returns ZHV_OK, INVALID_ARGS
 * (port NULL) or NO_MEMORY. */
ZHV_MUST_CHECK zhv_status_t zhv_port_create(uint32_t max_user_packets, zhv_port_t **port);

/* zhv_port_destroy: close the port. Packets still queued are dropped. A BELL
 * trap that points at a closed port makes the enter call that hits it fail
 * with BAD_STATE (the guest's store is skipped). Threads blocked in
 * zhv_port_wait() must have returned first. Any thread; NULL is a no-op. */
void zhv_port_destroy(zhv_port_t *port);

/* zhv_port_queue: queue a copy of (packet) (its type is forced to
 * ZHV_PKT_TYPE_USER). Any thread. Returns ZHV_OK, INVALID_ARGS, NO_MEMORY,
 * or SHOULD_WAIT when the port already holds its maximum of user packets. */
ZHV_MUST_CHECK zhv_status_t zhv_port_queue(zhv_port_t *port, const zhv_packet_t *packet);

/* zhv_port_wait: dequeue the oldest packet into (packet), waiting until
 * (deadline) (absolute, see zhv_deadline_after(); 0 polls). Any thread.
 * A negative deadline polls like 0. Doorbell writes of BELL traps on this
 * port become packets here, in the waiting thread (zhv_guest_set_trap);
 * such a port holds an epoll fd and one eventfd per doorbell. Returns
 * ZHV_OK, TIMED_OUT, or INVALID_ARGS. */
ZHV_MUST_CHECK zhv_status_t zhv_port_wait(zhv_port_t *port, zhv_time_t deadline,
                                          zhv_packet_t *packet);

/* ------------------------------------------------------------------------ */
/* Guests and guest-physical memory.                                         */

typedef struct zhv_guest zhv_guest_t;

/* The guest-physical address space is [0, ZHV_GUEST_PHYS_SIZE). */
#define ZHV_GUEST_PHYS_SIZE (1ull << 48)
#define ZHV_PAGE_SIZE 4096ull

typedef struct {
	uint32_t options;  /* must be 0 */
	uint32_t max_vcpus; /* 0: KVM's maximum (KVM_CAP_MAX_VCPUS) */
} zhv_guest_config_t;

/* zhv_guest_create: a new guest with an empty address space. (config) may be
 * NULL for the defaults. Any thread. Returns ZHV_OK; INVALID_ARGS (options
 * != 0, guest NULL); NOT_SUPPORTED (no usable /dev/kvm: KVM missing, or it
 * lacks split irqchip / user-space MSR exits); NO_MEMORY; or IO (another
 * KVM failure, logged). */
ZHV_MUST_CHECK zhv_status_t zhv_guest_create(const zhv_guest_config_t *config,
                                             zhv_guest_t **guest);

/* zhv_guest_destroy: drop the caller's reference. The guest (memory slots,
 * traps, KVM VM) goes away when its last vCPU is destroyed too; at that point
 * each trap cancels its own packets still queued on ports (user packets with
 * the same key stay). Host memory that was mapped is never freed by libzhv.
 * Any thread; NULL is a no-op. */
void zhv_guest_destroy(zhv_guest_t *guest);

/* clang-format off */
#define ZHV_MAP_READ    (1u << 0)
#define ZHV_MAP_WRITE   (1u << 1)
#define ZHV_MAP_EXECUTE (1u << 2)
#define ZHV_MAP_RWX     (ZHV_MAP_READ | ZHV_MAP_WRITE | ZHV_MAP_EXECUTE)
/* Cache policies (Zircon's VMO cache policies). Not supported on KVM: KVM
 * takes a guest's memory types from the guest's own PAT and MTRRs, over
 * host memory that is always ordinary write-back memory (Intel EPT maps RAM
 * write-back; AMD NPT combines the guest's PAT with the host's write-back
 * mapping), and a memory slot has no cache attribute a VMM could set. So
 * zhv_guest_map refuses them with NOT_SUPPORTED. A mapping without one is
 * write-back (the guest may still choose stronger types through its PAT). */
#define ZHV_MAP_CACHE_UNCACHED        (1u << 3)
#define ZHV_MAP_CACHE_UNCACHED_DEVICE (1u << 4)
#define ZHV_MAP_CACHE_WRITE_COMBINING (1u << 5)
#define ZHV_MAP_CACHE_MASK (ZHV_MAP_CACHE_UNCACHED | ZHV_MAP_CACHE_UNCACHED_DEVICE | \
                            ZHV_MAP_CACHE_WRITE_COMBINING)
/* clang-format on */

/* zhv_guest_map: make host memory [host_addr, host_addr + size) the guest's
 * RAM at guest-physical [gpa, gpa + size). gpa, host_addr and size must be
 * page aligned and size non-zero; the range must lie inside the
 * guest-physical address space and must not overlap an existing mapping.
 * (flags) is ZHV_MAP_* and must include READ (KVM cannot make RAM
 * write-only or inaccessible). Without WRITE the range is read-only to the
 * guest (a write stops enter with ACCESS_DENIED). KVM cannot withhold
 * execute permission, so EXECUTE is recorded (see zhv_guest_query) but not
 * enforced. The caller keeps ownership of the host
 * memory and must keep it mapped while the guest may use it. Any thread.
 * Returns ZHV_OK, NOT_SUPPORTED (a ZHV_MAP_CACHE_* flag, whatever the other
 * arguments: nothing is mapped), INVALID_ARGS (alignment, zero size, no READ,
 * unknown flags), OUT_OF_RANGE (beyond the address space), ALREADY_EXISTS
 * (overlap), NO_RESOURCES (KVM memory slots exhausted) or IO.
 *
 * Memory changes while vCPUs run (map, unmap, protect, and set_trap over
 * RAM) are atomic for the guest: a change KVM makes in one step is made
 * directly; one that takes several (splitting a KVM memory slot to unmap or
 * protect part of it) is made with every vCPU of the guest held outside
 * KVM_RUN (kicked out, re-entry blocked until the change is complete), so
 * code, page tables and data next to the changed range stay reachable.
 * Callers of zhv_vcpu_enter() see nothing of it (no CANCELED, no error).
 * When KVM refuses a change, the address space is left as it was. */
ZHV_MUST_CHECK zhv_status_t zhv_guest_map(zhv_guest_t *guest, uint64_t gpa, void *host_addr,
                                          uint64_t size, uint32_t flags);

/* zhv_guest_unmap: remove all guest RAM in [gpa, gpa + size); parts of
 * mappings outside the range stay. Unmapping a hole is not an error.
 * Alignment as for zhv_guest_map. Any thread; vCPUs may be running.
 * Returns ZHV_OK, INVALID_ARGS (alignment, zero size, or a range beyond the
 * address space, as Zircon's VMAR unmap) or IO. */
ZHV_MUST_CHECK zhv_status_t zhv_guest_unmap(zhv_guest_t *guest, uint64_t gpa, uint64_t size);

/* zhv_guest_protect: set (flags) on every page of [gpa, gpa + size), which
 * must be fully mapped. Same flag rules as zhv_guest_map. Returns ZHV_OK,
 * INVALID_ARGS, OUT_OF_RANGE, NOT_FOUND (a page in the range is not mapped)
 * or IO. */
ZHV_MUST_CHECK zhv_status_t zhv_guest_protect(zhv_guest_t *guest, uint64_t gpa, uint64_t size,
                                              uint32_t flags);

/* zhv_guest_query: the flags of the mapping at (gpa) into (flags). Any
 * thread. Returns ZHV_OK or NOT_FOUND (not mapped). */
ZHV_MUST_CHECK zhv_status_t zhv_guest_query(zhv_guest_t *guest, uint64_t gpa, uint32_t *flags);

/* zhv_guest_host_addr: a host pointer to guest-physical [gpa, gpa + len),
 * which must lie inside one mapping (the checked accessor for device
 * models). Any thread. Returns ZHV_OK, INVALID_ARGS (len 0 or overflow) or
 * NOT_FOUND. The pointer stays valid while the mapping does. */
ZHV_MUST_CHECK zhv_status_t zhv_guest_host_addr(zhv_guest_t *guest, uint64_t gpa, uint64_t len,
                                                void **host);

/* ------------------------------------------------------------------------ */
/* Traps.                                                                    */

/* clang-format off */
#define ZHV_TRAP_BELL 0u /* asynchronous: a write queues a packet on a port */
#define ZHV_TRAP_MEM  1u /* synchronous: zhv_vcpu_enter() returns a packet */
#define ZHV_TRAP_IO   2u /* synchronous, x86 I/O ports */
/* clang-format on */

/* Per-guest limit of BELL addresses on KVM ioeventfds (see below). KVM
 * allows about 1000 devices on a VM's MMIO bus; this leaves room for the
 * rest. */
#define ZHV_GUEST_MAX_DOORBELLS 256u

/* zhv_guest_set_trap: trap guest accesses to [addr, addr + size).
 * Validation, in Zircon's order (spec 1.3):
 *  - MEM and IO take no port (port must be NULL), BELL needs one; unknown
 *    kind: all INVALID_ARGS.
 *  - IO: size 0, overflow, or addr + size > 0xFFFF: OUT_OF_RANGE.
 *  - MEM/BELL: addr and size must be page aligned (INVALID_ARGS). Guest RAM
 *    in the range is unmapped first (even if the trap is then rejected, as
 *    in Zircon), so the range traps from now on; RAM mapped there later is
 *    used as RAM. Size 0 or a range beyond the address space: INVALID_ARGS.
 *  - Any overlap with a trap of the same space (MEM and BELL share one,
 *    IO has its own): ALREADY_EXISTS.
 * MEM and IO accesses stop zhv_vcpu_enter() with a packet whose key is
 * (key). A BELL write queues {key, ZHV_PKT_TYPE_GUEST_BELL, addr} on (port)
 * and the vCPU goes on running; each trap has 256 packets in flight at most.
 * A BELL read stops enter with NOT_SUPPORTED. Traps stay until the guest is
 * destroyed. Any thread. Returns ZHV_OK or an error above; NO_MEMORY.
 *
 * BELL doorbells without an exit: a BELL address is rung either through a
 * vCPU exit (the write leaves KVM_RUN and libzhv queues the packet before
 * the vCPU re-enters; a vCPU that needs a 257th packet of its trap waits
 * until one is dequeued) or, once it is a "doorbell", inside the kernel
 * (a KVM ioeventfd on exactly that address, any access size: the vCPU never
 * leaves KVM_RUN and the write shows in no exit counter). The trap's first
 * address becomes a doorbell when the trap is set, every other address at
 * its first write (which exits once), up to ZHV_GUEST_MAX_DOORBELLS per
 * guest; addresses beyond that, and every address when KVM lacks
 * KVM_CAP_IOEVENTFD_ANY_LENGTH or the environment has ZHV_BELL_EVENTFD=0,
 * keep the exit path. Doorbell writes become packets when a thread calls
 * zhv_port_wait() on (port) (the waiter itself reads KVM's counters; there
 * is no libzhv thread in between): one packet per write, with the same
 * key, type and addr as on the exit path, and in write order for each
 * address (the packets of one address are all alike). A doorbell write
 * done before a zhv_port_wait() call starts is seen by it. The order of
 * packets of different addresses, and against packets queued meanwhile,
 * is the order in which waiters find them, not the guests' write order.
 * The 256-in-flight limit holds for doorbells too, but it never stalls the
 * guest: further writes stay counted in the kernel (a count, no memory per
 * write) and become packets as the consumer dequeues. The data written is
 * not kept (a BELL packet has none). zhv_port_destroy turns a port's
 * doorbells back into exit-path addresses, so a later write fails enter
 * with BAD_STATE as above; doorbell writes not yet turned into packets
 * when the port is closed or the guest destroyed are dropped, as queued
 * packets are. */
ZHV_MUST_CHECK zhv_status_t zhv_guest_set_trap(zhv_guest_t *guest, uint32_t kind, uint64_t addr,
                                               uint64_t size, zhv_port_t *port, uint64_t key);

/* ------------------------------------------------------------------------ */
/* Statistics (Zircon's ZX_INFO_GUEST_STATS, summed over the guest's vCPUs). */

typedef struct {
	uint64_t vm_entries;      /* KVM_RUN calls */
	uint64_t vm_exits;        /* KVM_RUN returns */
	uint64_t interrupts;      /* events libzhv injected or signalled */
	uint64_t kicks;           /* enter calls that returned CANCELED */
	uint64_t signal_exits;    /* KVM_RUN interrupted by a signal */
	uint64_t io_exits;        /* port I/O */
	uint64_t mmio_exits;      /* MEM/BELL traps and other MMIO (not doorbell writes) */
	uint64_t bell_packets;    /* BELL packets queued (exit path and doorbells) */
	uint64_t rdmsr_exits;     /* MSR reads handled by libzhv's policy */
	uint64_t wrmsr_exits;     /* MSR writes handled by libzhv's policy */
	uint64_t msr_gp_injected; /* unhandled MSR accesses that got #GP */
	uint64_t hlt_exits;       /* HLT in user space (0 with KVM's LAPIC) */
	uint64_t shutdown_exits;  /* triple faults */
	uint64_t emulation_failures; /* instructions neither KVM nor libzhv ran */
	uint64_t emulated_by_libzhv; /* instructions KVM could not emulate, libzhv did */
	uint64_t other_exits;
	uint64_t eoi_exits;       /* GUEST_EOI packets (level-triggered EOIs) */
} zhv_guest_stats_t;

/* zhv_guest_get_stats: a snapshot of the counters. Any thread. */
ZHV_MUST_CHECK zhv_status_t zhv_guest_get_stats(zhv_guest_t *guest, zhv_guest_stats_t *stats);

/* ------------------------------------------------------------------------ */
/* vCPUs.                                                                    */

typedef struct zhv_vcpu zhv_vcpu_t;

/* clang-format off */
/* Options for zhv_vcpu_create. 0 is Zircon's behaviour. */
#define ZHV_VCPU_OPT_WAIT_SIPI  (1u << 0) /* AP waits for the guest's INIT/SIPI */
#define ZHV_VCPU_OPT_APIC_RESET (1u << 1) /* local APIC in its power-on state */
/* clang-format on */

/* zhv_vcpu_create: create a vCPU of (guest) bound to the calling thread.
 *
 * vCPU ids come from a per-guest round-robin allocator starting at 1, as in
 * Zircon; the vCPU with id 1 is the bootstrap processor (BSP). The APIC ID
 * (CPUID, x2APIC ID register, IPI destinations) is id - 1. The limit is the
 * guest's max_vcpus (KVM's maximum by default, well beyond Zircon's 63).
 *
 * Initial state (spec 2.2) with options 0:
 *  - BSP: 64-bit long mode at RIP = (entry), CR0 = PE|ET|WP|PG, CR3 = 0,
 *    CR4 = PAE|PGE|OSFXSR|OSXSAVE|FSGSBASE, EFER = SCE|LME|LMA|NXE, flat
 *    16-bit-limit segments with selector 0 (CS has L=1), GDTR/IDTR base 0
 *    limit 0xFFFF, RFLAGS = 0x2, all GPRs 0.
 *  - AP: real mode with CS.selector = entry >> 4, CS.base = entry (as
 *    Zircon does: entry is meant to be a SIPI page), IP = 0, CR0 = ET|WP.
 *  - The local APIC is enabled in x2APIC mode and software-enabled (SVR
 *    0x1FF), so interrupts are deliverable at once, as in Zircon.
 * ZHV_VCPU_OPT_APIC_RESET leaves the local APIC in its architectural
 * power-on state instead (xAPIC mode at 0xFEE00000, SVR 0xFF): what a PC
 * operating system expects. ZHV_VCPU_OPT_WAIT_SIPI (not for the BSP) creates
 * an AP in wait-for-SIPI state with a power-on APIC: zhv_vcpu_enter() blocks
 * in KVM until the guest starts it with INIT/SIPI through its APIC (or the
 * vCPU is kicked); (entry) is ignored.
 *
 * The calling thread gets ZHV_KICK_SIGNAL blocked (see the top of this
 * file). A vCPU id freed by zhv_vcpu_destroy() may be given out again; the
 * new vCPU is indistinguishable from a fresh one.
 *
 * Returns ZHV_OK; INVALID_ARGS (unknown options, WAIT_SIPI for the BSP,
 * entry >= ZHV_GUEST_PHYS_SIZE, NULL arguments); NO_RESOURCES (the guest has
 * its maximum of vCPUs); BAD_STATE (this thread already has a vCPU);
 * ALREADY_EXISTS (the program has its own handler on ZHV_KICK_SIGNAL);
 * NO_MEMORY (also when the vCPU's KVM run area cannot be mapped: the id
 * stays usable, a later create retries); IO. */
ZHV_MUST_CHECK zhv_status_t zhv_vcpu_create(zhv_guest_t *guest, uint32_t options, uint64_t entry,
                                            zhv_vcpu_t **vcpu);

/* zhv_vcpu_destroy: destroy (vcpu) and free its id. The creating thread is
 * free to create another vCPU afterwards. Any thread, but the vCPU must not
 * be inside zhv_vcpu_enter() (kick it and let enter return first). Works
 * after the creating thread has exited. A zhv_vcpu_kick(),
 * zhv_vcpu_interrupt() or zhv_vcpu_get_info() running on another thread
 * meanwhile completes first (destroy waits for it); one that starts after
 * destroy returned is the caller's error. If the last enter returned a
 * packet that was not answered (an IN, a MEM read), KVM finishes that
 * instruction now (an unanswered read loads what enter documents), so
 * nothing of it reaches the next vCPU with this id. NULL is a no-op. */
void zhv_vcpu_destroy(zhv_vcpu_t *vcpu);

/* zhv_vcpu_enter: run the guest until an exit that needs the caller.
 *
 * Returns ZHV_OK with (packet) filled (the packet is zeroed first, so
 * unused fields read 0):
 *  - ZHV_PKT_TYPE_GUEST_MEM or _IO: an access to a MEM or IO trap.
 *  - ZHV_PKT_TYPE_GUEST_EOI (key 0): the guest's local APIC took an EOI for
 *    a vector that an enabled route of zhv_guest_set_irq_route() sends
 *    level-triggered (MSI data bit 15) to this vCPU. The EOI itself is
 *    done; the caller's interrupt controller clears its Remote-IRR and
 *    re-delivers a line that is still asserted, then enters again. Never
 *    returned without such a route.
 * Exits libzhv handles itself (BELL writes, MSR policy, CPUID, interrupts,
 * HLT) never return.
 * Errors (packet undefined):
 *  - CANCELED: zhv_vcpu_kick() was called since the last CANCELED; once per
 *    kick, however many kicks came. Enter again to resume the guest.
 *  - BAD_STATE: wrong thread; a BELL trap's port is closed (the store is
 *    skipped); KVM refused to enter (invalid guest state); KVM could not
 *    reach guest memory (EFAULT: host memory behind a mapping is gone),
 *    here and on every other call that lets KVM finish an exit.
 *  - NOT_FOUND: the guest accessed a port without an IO trap, or guest-
 *    physical memory with neither RAM nor a trap. The access is dropped as
 *    on a PC bus: a write has no effect, a read returns all-ones, and
 *    entering again resumes after the instruction (Zircon leaves RIP on
 *    it, which makes the error permanent). zhv_vcpu_get_info() gives the
 *    port or address.
 *  - OUT_OF_RANGE: a memory access beyond the guest-physical address space.
 *  - ACCESS_DENIED: a write to read-only guest RAM.
 *  - NOT_SUPPORTED: triple fault (shutdown), a BELL read, or an
 *    instruction neither KVM nor libzhv can emulate (libzhv itself runs
 *    STAC, CLAC, INT3, INT n and FWAIT when KVM's emulator cannot). The
 *    decoded instruction and the registers are sent to the log callback.
 * String and REP port I/O (INS/OUTS) produce one IO packet per element;
 * answer each IN element with ZHV_VCPU_IO before entering again.
 *  - INTERNAL / IO: an unexpected KVM failure (logged).
 * After an error the vCPU stays usable: fix the state and enter again. */
ZHV_MUST_CHECK zhv_status_t zhv_vcpu_enter(zhv_vcpu_t *vcpu, zhv_packet_t *packet);

/* zhv_vcpu_kick: make the current zhv_vcpu_enter() of (vcpu), or the next
 * one, return CANCELED exactly once. A kick is never lost and never counted
 * twice, whatever the vCPU thread's signal mask. Any thread, and from a
 * signal handler: async-signal-safe (no locks, no allocation; atomics and
 * one tgkill). Returns ZHV_OK or INVALID_ARGS; a kick racing with
 * zhv_vcpu_destroy() returns ZHV_OK and does nothing. */
zhv_status_t zhv_vcpu_kick(zhv_vcpu_t *vcpu);

/* zhv_vcpu_interrupt: raise (vector) in (vcpu). Any thread.
 *  - 32..255: a fixed, edge-triggered interrupt to the vCPU's local APIC
 *    (wakes a HLT). It is accepted by the APIC as on hardware: dropped if
 *    the APIC is software-disabled, held in the IRR while the guest has
 *    interrupts masked.
 *  - 2: an NMI (wakes a HLT).
 *  - 0..20 except 2: an exception, held in libzhv's per-vCPU tracker and
 *    injected at the next entry (Zircon's encodings; error code 0 for 8, 10,
 *    11, 12, 13, 14, 17; #BP and #OF as software exceptions). Priorities as
 *    Zircon's: an NMI or an interrupt the guest can take at that entry goes
 *    first, and pending exceptions are dropped once something else was
 *    delivered. Only one exception per entry.
 * An interrupt no APIC accepts (the vCPU's local APIC is disabled) is
 * dropped as on hardware and returns ZHV_OK, as zhv_guest_signal_msi()
 * does for the same message.
 * Returns ZHV_OK; INVALID_ARGS (21..31: Zircon accepts them and fails the
 * next enter, libzhv refuses them up front); OUT_OF_RANGE (vector > 255);
 * IO (KVM failed otherwise). */
zhv_status_t zhv_vcpu_interrupt(zhv_vcpu_t *vcpu, uint32_t vector);

/* zhv_guest_signal_msi: deliver a message-signalled interrupt to the
 * guest's local APICs, as a PCI device or an IOAPIC would: (address) is the
 * MSI address (0xFEE00000 | destination << 12 | RH/DM bits; with more than
 * 255 APIC IDs, bits 31:8 of the destination go in address bits 63:40) and
 * (data) the MSI data (vector, delivery mode, level/trigger). KVM routes it
 * by destination, logical or physical, and wakes halted vCPUs. Any thread.
 * Returns ZHV_OK (also when no APIC accepted it, as on hardware),
 * INVALID_ARGS or IO. */
ZHV_MUST_CHECK zhv_status_t zhv_guest_signal_msi(zhv_guest_t *guest, uint64_t address,
                                                 uint32_t data);

/* zhv_guest_set_irq_route: tell libzhv which interrupt message pin (pin)
 * (0..23) of the guest's interrupt controller (the VMM's IOAPIC) sends:
 * (msi_address) and (msi_data) as zhv_guest_signal_msi() takes them
 * (destination bits 31:8 in address bits 63:40). libzhv does not deliver
 * anything through a route; the routes tell KVM's local APICs which
 * vectors come level-triggered (data bit 15) from the IOAPIC, so that an
 * EOI of one of them on a vCPU the route's destination matches ends that
 * vCPU's zhv_vcpu_enter() with a ZHV_PKT_TYPE_GUEST_EOI packet (KVM learns
 * nothing of the trigger mode of MSIs otherwise). Call it whenever a
 * redirection entry changes; (enabled) false removes the pin's route
 * (e.g. a masked entry). Edge-triggered routes are accepted and have no
 * effect. Each call replaces KVM's whole routing table (KVM_SET_GSI_ROUTING:
 * it costs every vCPU a rescan, so call it on changes only). Any thread.
 * Returns ZHV_OK; INVALID_ARGS (guest NULL, pin >= 24, or an enabled route
 * whose address is not 0xFEExxxxx or has bits 39:32 set); IO (KVM refused
 * it, logged). On an error the previous route of the pin stays. */
ZHV_MUST_CHECK zhv_status_t zhv_guest_set_irq_route(zhv_guest_t *guest, uint32_t pin,
                                                    uint64_t msi_address, uint32_t msi_data,
                                                    bool enabled);

/* State kinds for zhv_vcpu_read_state / zhv_vcpu_write_state. */
typedef enum {
	ZHV_VCPU_STATE = 0,  /* zhv_vcpu_state_t: Zircon's GPRs + RFLAGS */
	ZHV_VCPU_IO = 1,     /* zhv_vcpu_io_t: answer to an IN (write only) */
	ZHV_VCPU_MEM = 2,    /* zhv_vcpu_mem_t: answer to a MEM read (write only) */
	ZHV_VCPU_SREGS = 3,  /* zhv_vcpu_sregs_t: segments, control regs */
	ZHV_VCPU_FPU = 4,    /* zhv_vcpu_fpu_t: XSAVE image and XCR0 */
	ZHV_VCPU_MSRS = 5,   /* zhv_vcpu_msrs_t: model-specific registers */
	ZHV_VCPU_EVENTS = 6, /* zhv_vcpu_events_t: pending events, run state */
	ZHV_VCPU_LAPIC = 7,  /* zhv_vcpu_lapic_t: local APIC register page */
	ZHV_VCPU_REGS = 8,   /* zhv_vcpu_regs_t: all GPRs, RIP, full RFLAGS */
} zhv_vcpu_state_kind_t;

/* ZHV_VCPU_STATE: exactly Zircon's zx_vcpu_state_t (136 bytes). Read: 15
 * GPRs, RSP, and RFLAGS masked to CF|PF|AF|ZF|SF|TF|DF|OF|NT|AC|ID (IF and
 * the reserved bit are never reported). Write: GPRs and RSP; RFLAGS only if
 * the given rflags has bit 1 set, and then only those user bits change. */
typedef struct {
	uint64_t rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rflags;
} zhv_vcpu_state_t;

#define ZHV_RFLAGS_USER_MASK 0x244DD5ull

/* ZHV_VCPU_IO: answer to a pending IN. access_size must be 1, 2 or 4; that
 * many bytes of data go to the low bytes of RAX (for an INS element: to
 * that element's bytes in memory). The answer is only recorded: the guest
 * gets it when it next enters, after the last element of an INS has been
 * answered; reads of state in between do not disturb it, and writing IO
 * again before entering replaces it. An IN left unanswered reads 0. */
typedef struct {
	uint8_t access_size;
	uint8_t reserved[3];
	union {
		uint8_t u8;
		uint16_t u16;
		uint32_t u32;
		uint8_t data[4];
	};
} zhv_vcpu_io_t;

/* ZHV_VCPU_MEM: answer to a pending MEM-trap read (the value the guest's
 * load receives). access_size must match the packet's (1, 2, 4 or 8). It
 * is recorded and reaches the guest at the next enter; reads of state in
 * between do not disturb it. BAD_STATE when no MEM read is pending (also
 * after a write of another kind finished the exit, see
 * zhv_vcpu_write_state). A load left unanswered receives 0. */
typedef struct {
	uint8_t access_size;
	uint8_t reserved[7];
	uint64_t data;
} zhv_vcpu_mem_t;

/* ZHV_VCPU_REGS: the full general register file (what a debugger or a
 * snapshot needs; no masking). */
typedef struct {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
} zhv_vcpu_regs_t;

typedef struct {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type; /* 4-bit descriptor type */
	uint8_t present, dpl, db, s, l, g, avl, unusable, reserved;
} zhv_segment_t;

typedef struct {
	uint64_t base;
	uint16_t limit;
	uint16_t reserved[3];
} zhv_dtable_t;

/* ZHV_VCPU_SREGS: segment, descriptor-table and control registers. Writing
 * it can switch the vCPU to any mode (e.g. start an AP directly in 64-bit
 * mode, or a multiboot kernel in 32-bit protected mode). */
typedef struct {
	zhv_segment_t cs, ds, es, fs, gs, ss, tr, ldt;
	zhv_dtable_t gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8;
	uint64_t efer;
	uint64_t apic_base;
} zhv_vcpu_sregs_t;

/* ZHV_VCPU_FPU: the XSAVE image (legacy FXSAVE area, header, extended
 * components in the standard format) and XCR0. */
typedef struct {
	uint64_t xcr0;
	uint64_t reserved;
	uint8_t xsave[4096];
} zhv_vcpu_fpu_t;

#define ZHV_VCPU_MSRS_MAX 256u

typedef struct {
	uint32_t index;
	uint32_t reserved;
	uint64_t value;
} zhv_msr_entry_t;

/* ZHV_VCPU_MSRS: read fills the values of entries[0..count); read with
 * count == 0 lists every MSR a snapshot must save (KVM's saved-MSR list)
 * with its value. Write sets entries[0..count). count <= ZHV_VCPU_MSRS_MAX.
 * A read or write of an MSR KVM does not have fails with NOT_SUPPORTED. */
typedef struct {
	uint32_t count;
	uint32_t reserved;
	zhv_msr_entry_t entries[ZHV_VCPU_MSRS_MAX];
} zhv_vcpu_msrs_t;

/* clang-format off */
#define ZHV_MP_STATE_RUNNABLE      0u
#define ZHV_MP_STATE_UNINITIALIZED 1u /* waiting for INIT */
#define ZHV_MP_STATE_INIT_RECEIVED 2u /* waiting for SIPI */
#define ZHV_MP_STATE_HALTED        3u
#define ZHV_MP_STATE_SIPI_RECEIVED 4u
/* clang-format on */

/* ZHV_VCPU_EVENTS: events in flight at the vCPU boundary, its run state and
 * libzhv's tracker of exceptions not yet injected: everything a snapshot
 * needs besides the other kinds. */
typedef struct {
	uint8_t exception_injected, exception_pending, exception_nr;
	uint8_t exception_has_error_code;
	uint32_t exception_error_code;
	uint8_t interrupt_injected, interrupt_nr, interrupt_soft;
	uint8_t interrupt_shadow; /* STI / MOV-SS blocking */
	uint8_t nmi_injected, nmi_pending, nmi_masked;
	uint8_t reserved0;
	uint32_t sipi_vector;
	uint32_t mp_state; /* ZHV_MP_STATE_* */
	uint32_t tracker_pending; /* bit v: exception v waits in libzhv (v < 32) */
	uint32_t reserved1;
} zhv_vcpu_events_t;

/* ZHV_VCPU_LAPIC: the local APIC register page as KVM keeps it (x2APIC IDs
 * in 32-bit format). */
typedef struct {
	uint8_t regs[1024];
} zhv_vcpu_lapic_t;

/* zhv_vcpu_read_state: copy state (kind) of (vcpu) into (buf), which must be
 * exactly the size of that kind's struct. Only on the vCPU's thread. Returns
 * ZHV_OK; BAD_STATE (other thread; checked first); INVALID_ARGS (unknown or
 * write-only kind, wrong size, NULL buf, bad MSR count); NOT_SUPPORTED; IO.
 *
 * Reading changes nothing, also in the middle of an exit (after enter
 * returned an IO or MEM packet and before the next enter): every kind
 * reports the state as it is now, with the trapping instruction not yet
 * finished, and leaves the exit pending, so that answers given after the
 * read still reach the guest. What a reader sees then:
 *  - IN (and each element of an INS) and MEM read: nothing of the
 *    instruction has happened. RIP is at the instruction (the packet's
 *    rip for MEM); RAX, the load's destination register, and for INS
 *    RCX, RDI and the memory are unchanged, whatever was answered so far.
 *    All of it happens at the next enter.
 *  - OUT and MEM write: the access has reached the packet and the guest
 *    will not see it again. RIP is past the instruction where KVM's
 *    instruction emulator ran it (MEM writes; OUTS; every OUT of kvm_pvm,
 *    which emulates all guest ring-0 code); on a hardware-virtualized KVM
 *    (VMX/SVM) a single OUT leaves RIP at the OUT until the next enter.
 *  - Every other kind (SREGS, FPU, MSRS, EVENTS, LAPIC) is unaffected by
 *    the pending instruction.
 * Zircon shows RIP already past the instruction at every IO and MEM packet;
 * libzhv cannot, without finishing the exit. */
ZHV_MUST_CHECK zhv_status_t zhv_vcpu_read_state(zhv_vcpu_t *vcpu, uint32_t kind, void *buf,
                                                size_t len);

/* zhv_vcpu_write_state: set state (kind) of (vcpu) from (buf) (size as for
 * read). Only on the vCPU's thread. ZHV_VCPU_IO needs access_size 1, 2 or 4
 * (INVALID_ARGS otherwise). Returns as zhv_vcpu_read_state.
 * In the middle of an exit, ZHV_VCPU_IO and ZHV_VCPU_MEM only record the
 * answer. A write of any other kind first finishes the pending instruction
 * (without running guest code) with the answers given so far (0 for those
 * not given, also for INS elements not yet delivered as packets), then
 * sets the state: so answer first, then write. RIP read mid-exit at an IN
 * or MEM read and written back makes the guest run that instruction
 * again. */
ZHV_MUST_CHECK zhv_status_t zhv_vcpu_write_state(zhv_vcpu_t *vcpu, uint32_t kind,
                                                 const void *buf, size_t len);

/* clang-format off */
#define ZHV_VCPU_INFO_FLAG_KICKED (1u << 0)
/* Why the last zhv_vcpu_enter() call ended. */
#define ZHV_EXIT_NONE          0u
#define ZHV_EXIT_PACKET        1u /* returned a packet */
#define ZHV_EXIT_CANCELED      2u
#define ZHV_EXIT_SHUTDOWN      3u /* triple fault */
#define ZHV_EXIT_EMULATION     4u /* instruction KVM could not emulate */
#define ZHV_EXIT_UNHANDLED_IO  5u
#define ZHV_EXIT_UNHANDLED_MEM 6u
#define ZHV_EXIT_ERROR         7u /* other error */
/* clang-format on */

typedef struct {
	uint32_t flags;     /* ZHV_VCPU_INFO_FLAG_* */
	uint32_t id;        /* vCPU id (1 = BSP) */
	uint32_t apic_id;   /* id - 1 */
	uint32_t last_exit; /* ZHV_EXIT_* */
	uint64_t last_exit_addr; /* port or GPA of an unhandled access */
} zhv_vcpu_info_t;

/* zhv_vcpu_get_info: flags (KICKED while a kick is pending), ids and the
 * reason the last enter ended. Any thread. Returns ZHV_OK, INVALID_ARGS, or
 * BAD_STATE when it races with zhv_vcpu_destroy() (nothing written). */
ZHV_MUST_CHECK zhv_status_t zhv_vcpu_get_info(zhv_vcpu_t *vcpu, zhv_vcpu_info_t *info);

/* ------------------------------------------------------------------------ */
/* Guest debugging: breakpoints, watchpoints and single-step on a vCPU
 * (KVM_SET_GUEST_DEBUG), and guest memory by guest-virtual address.        */

/* clang-format off */
#define ZHV_DEBUG_ENABLE         (1u << 0) /* off: everything below off, the guest
                                              owns DR0-DR7 */
#define ZHV_DEBUG_SINGLESTEP     (1u << 1) /* stop after each instruction */
#define ZHV_DEBUG_SW_BREAKPOINTS (1u << 2) /* every int3 stops (the caller re-injects
                                              #BP with zhv_vcpu_interrupt(v, 3) for
                                              an int3 it did not plant) */
#define ZHV_DEBUG_HW_OFF    0u
#define ZHV_DEBUG_HW_EXEC   1u /* instruction fetch; len must be 1 */
#define ZHV_DEBUG_HW_WRITE  2u /* data write */
#define ZHV_DEBUG_HW_ACCESS 3u /* data read or write */
/* clang-format on */

typedef struct {
	uint32_t flags;    /* ZHV_DEBUG_* */
	uint32_t reserved; /* 0 */
	struct {
		uint64_t addr; /* guest-virtual; aligned to len */
		uint8_t type;  /* ZHV_DEBUG_HW_* */
		uint8_t len;   /* 1, 2, 4 or 8 (ignored for HW_OFF) */
		uint8_t reserved[6];
	} hw[4];
} zhv_vcpu_debug_t;

/* zhv_vcpu_set_debug: set (vcpu)'s guest-debug state to (debug), replacing
 * the previous one (KVM_SET_GUEST_DEBUG). While ZHV_DEBUG_ENABLE is set,
 * zhv_vcpu_enter() returns ZHV_PKT_TYPE_GUEST_DEBUG packets for the stops
 * asked for: after each instruction (SINGLESTEP, also after an instruction
 * libzhv's own emulator ran), at each int3 (SW_BREAKPOINTS; without it an
 * int3 raises #BP in the guest as before), and at the debug registers of
 * hw[0..3] (the debugger's DR0-DR3 and DR7; the guest's own debug
 * registers are not in effect meanwhile). Clearing ENABLE gives the debug
 * registers back to the guest. A #DB that is not a stop asked for (the
 * guest's own, e.g. ICEBP) goes to the guest. An int3 the caller did not
 * plant: zhv_vcpu_interrupt(vcpu, 3) before the next enter, and the guest's
 * #BP handler runs with the return address past the int3. A single-step
 * survives changes of RIP (libzhv arms it again at each entry); a step KVM
 * reports while libzhv finishes an IO or MEM exit for a state write comes
 * at the next enter. The settings belong to the vCPU until changed or the
 * vCPU is destroyed (a new vCPU with the same id starts without them);
 * they are not part of zhv_vcpu_save()'s blob or of snapshots (a restored
 * vCPU keeps its current settings). See the README ("Guest debugging") for
 * what kvm_pvm cannot do.
 * Only on the vCPU's thread, outside enter (as zhv_vcpu_read_state).
 * Returns ZHV_OK; BAD_STATE (other thread; checked first); INVALID_ARGS
 * (NULL, unknown flags, reserved fields not 0, other flags without ENABLE,
 * a slot with an unknown type, a len not 1, 2, 4 or 8, an address not
 * aligned to len, HW_EXEC with len not 1); NOT_SUPPORTED (KVM lacks
 * KVM_CAP_SET_GUEST_DEBUG); IO (KVM refused, logged). On an error the
 * previous settings stay. */
ZHV_MUST_CHECK zhv_status_t zhv_vcpu_set_debug(zhv_vcpu_t *vcpu, const zhv_vcpu_debug_t *debug);

/* zhv_vcpu_translate, zhv_vcpu_read_virt, zhv_vcpu_write_virt: guest memory
 * by guest-virtual address, through the vCPU's current paging mode (no
 * paging, 32-bit with 4M pages, PAE, 4-level, 5-level; 2M and 1G pages),
 * as a debugger sees it: only presence is checked (U/S, R/W, NX, SMEP and
 * SMAP are ignored, so a debugger may write a read-only code page), no
 * accessed or dirty bit is set, page by page, guest RAM only.
 * translate gives the guest-physical address of (gva). read_virt and
 * write_virt copy (len) bytes, all or nothing: every page is translated
 * (and checked to be RAM) before any byte is copied. len 0 does nothing
 * and returns ZHV_OK. Writes are guest RAM writes as libzhv's own (a
 * snapshot sees them). Only on the vCPU's thread, outside enter.
 * Returns ZHV_OK; BAD_STATE (other thread; checked first); INVALID_ARGS
 * (NULL arguments); OUT_OF_RANGE (any byte of the range outside the mode's
 * address space: not canonical in long mode, above 4 GiB in the 32-bit
 * modes and without paging; or a range that wraps); NOT_FOUND (a page
 * not present, a page-table entry or a page that is not guest RAM: a MEM
 * trap or a hole); ACCESS_DENIED (write_virt to read-only guest RAM, a
 * mapping without ZHV_MAP_WRITE); NO_MEMORY; IO (KVM refused the register
 * read). */
ZHV_MUST_CHECK zhv_status_t zhv_vcpu_translate(zhv_vcpu_t *vcpu, uint64_t gva, uint64_t *gpa);
ZHV_MUST_CHECK zhv_status_t zhv_vcpu_read_virt(zhv_vcpu_t *vcpu, uint64_t gva, void *buf,
                                               size_t len);
ZHV_MUST_CHECK zhv_status_t zhv_vcpu_write_virt(zhv_vcpu_t *vcpu, uint64_t gva, const void *buf,
                                                size_t len);

/* ------------------------------------------------------------------------ */
/* Snapshots: a vCPU's whole state as one blob, the guest's clock, and
 * reset-to-snapshot.                                                        */

/* The vCPU blob (format version ZHV_VCPU_BLOB_VERSION). Little-endian, x86,
 * self-describing; it holds KVM's own structures, so a blob moves between
 * processes and machines with the same CPU model and kernel ABI:
 *
 *   header, 48 bytes:
 *     0  char     magic[8]     "ZHVVCPU\0"
 *     8  uint32   version      ZHV_VCPU_BLOB_VERSION
 *    12  uint32   header_size  48
 *    16  uint64   total_size   bytes of the whole blob, header included
 *    24  uint32   nsections
 *    28  uint32   crc32        CRC-32 (IEEE 802.3, as zlib's crc32) of the
 *                              whole blob with this field read as 0
 *    32  uint64   model        fingerprint of the vCPU model: CPUID vendor,
 *                              family/model/stepping, leaf 7 and
 *                              0x80000001 features, XSAVE components and
 *                              size as the guest's CPUID policy gives them
 *    40  uint32   apic_id      the saved vCPU's APIC ID (zhv id - 1)
 *    44  uint32   reserved     0
 *   then nsections sections, each: uint32 type, uint32 size, size bytes of
 *   payload, zero padding to a multiple of 8 bytes. Each type at most once:
 *     1  REGS      struct kvm_regs (GPRs, RIP, RFLAGS)            required
 *     2  SREGS     struct kvm_sregs (segments, GDT/IDT, CR0-4, CR8,
 *                  EFER, APIC base, pending legacy interrupt)      required
 *     3  XSAVE     struct kvm_xsave (4096 bytes: FPU/SSE/AVX)       required
 *     4  XCRS      struct kvm_xcrs (XCR0)                          optional
 *     5  DEBUGREGS struct kvm_debugregs (DR0-3, DR6, DR7)          optional
 *     6  MSRS      uint32 count, uint32 0, then count entries of
 *                  {uint32 index, uint32 0, uint64 value}: every MSR of
 *                  KVM's saved-MSR list (KVM_GET_MSR_INDEX_LIST) that KVM
 *                  lets a VMM read, including the TSC, the kvmclock
 *                  system-time and async-PF MSRs, SYSENTER/STAR/LSTAR,
 *                  TSC deadline; plus PAT and the fixed and variable
 *                  MTRRs. Not the VM-wide ones (kvmclock wall clock,
 *                  Hyper-V partition MSRs) nor the x2APIC range (the
 *                  LAPIC section holds it). APIC base is in SREGS.  required
 *     7  LAPIC     struct kvm_lapic_state (1024 bytes: the register
 *                  page, with the timer's LVT and initial count)   required
 *     8  EVENTS    struct kvm_vcpu_events (exception, interrupt, NMI,
 *                  interrupt shadow, SIPI vector)                  required
 *     9  MPSTATE   struct kvm_mp_state (runnable, halted, wait-for-SIPI)
 *                                                                   required
 *    10  TRACKER   uint32 pending, uint32 0: libzhv's own exceptions not
 *                  yet injected (bit v: vector v, see zhv_vcpu_interrupt)
 *                                                                   required
 * Versioning: any change to the header, a section's layout or the set of
 * sections increments ZHV_VCPU_BLOB_VERSION; libzhv restores only its own
 * version and refuses others with NOT_SUPPORTED (no silent conversion).
 * The local APIC timer restarts from its initial count at restore (KVM
 * keeps no current count); a TSC-deadline timer keeps its deadline. */
#define ZHV_VCPU_BLOB_VERSION 1u
#define ZHV_VCPU_BLOB_HEADER_SIZE 48u
/* An upper bound for the size of any version-1 blob. */
#define ZHV_VCPU_BLOB_MAX (64u * 1024u)

/* What zhv_vcpu_blob_info() reads from a blob's header. */
typedef struct {
	uint32_t version;
	uint32_t apic_id;
	uint64_t model;
	uint64_t size;
	uint32_t nsections;
	uint32_t reserved;
} zhv_vcpu_blob_info_t;

/* zhv_vcpu_save: write the whole state of (vcpu) into (buf) as a blob of
 * the format above; *len receives its size. Only on the vCPU's thread,
 * outside zhv_vcpu_enter() (stop a running vCPU with zhv_vcpu_kick() and
 * let enter return first). If the last enter returned an IO or MEM packet,
 * the instruction is finished first with the answers given so far, as
 * zhv_vcpu_write_state() does (so answer before saving): the blob never
 * holds an exit in flight. The guest does not run. (buf) may be NULL with
 * cap 0 to learn the size.
 * Returns ZHV_OK; BAD_STATE (other thread; checked first); INVALID_ARGS
 * (vcpu or len NULL, buf NULL with cap > 0); BUFFER_TOO_SMALL (cap is less
 * than the size, which is then written to *len and nothing else);
 * NO_MEMORY; IO (KVM refused a read, logged). */
ZHV_MUST_CHECK zhv_status_t zhv_vcpu_save(zhv_vcpu_t *vcpu, void *buf, size_t cap, size_t *len);

/* zhv_vcpu_restore: make (vcpu) what the blob (buf, len) says, wholly or
 * not at all. Only on the vCPU's thread, outside zhv_vcpu_enter(); the
 * vCPU may be fresh (created with any options) or have run. The blob is
 * checked completely before anything changes: header, version, sizes,
 * every section, the CRC, the vCPU model and APIC ID. A pending IO or MEM
 * exit of (vcpu) is finished first (as zhv_vcpu_save). If KVM then refuses
 * part of the state, the vCPU's previous state is put back.
 * Returns ZHV_OK; BAD_STATE (other thread; checked first); INVALID_ARGS
 * (NULL arguments, bad magic, truncated or over-long, a section of the
 * wrong size, unknown, repeated or missing); NOT_SUPPORTED (another format
 * version); IO_DATA_INTEGRITY (the CRC does not match: corrupted);
 * WRONG_TYPE (a blob of another vCPU model, or of another APIC ID); IO (KVM
 * refused the state; the vCPU was put back as it was); NO_MEMORY. On every
 * error but IO and NO_MEMORY nothing was changed. */
ZHV_MUST_CHECK zhv_status_t zhv_vcpu_restore(zhv_vcpu_t *vcpu, const void *buf, size_t len);

/* zhv_vcpu_blob_info: check a blob as zhv_vcpu_restore() does, short of
 * the vCPU model and APIC ID, and describe it. Needs no KVM; any thread.
 * Returns ZHV_OK or the statuses of zhv_vcpu_restore() for the blob. */
ZHV_MUST_CHECK zhv_status_t zhv_vcpu_blob_info(const void *buf, size_t len,
                                               zhv_vcpu_blob_info_t *info);

/* The guest's clock: kvmclock's time base, shared by all its vCPUs. */
typedef struct {
	uint64_t ns;       /* guest time in ns (KVM_GET_CLOCK's clock) */
	uint64_t host_tsc; /* the host TSC when read (0 if KVM has none) */
	uint32_t flags;    /* KVM's flags at the read (information only) */
	uint32_t reserved;
} zhv_guest_clock_t;

/* zhv_guest_get_clock / zhv_guest_set_clock: read the guest's clock, and
 * set it so that the guest's kvmclock continues from (clock->ns): a guest
 * restored from a snapshot sees its time go on from the moment of the
 * save, neither jumping over the time it spent saved nor running
 * backwards. Save it with the vCPUs, while none of them runs; set it after
 * restoring them and before the first enter. Any thread. Returns ZHV_OK,
 * INVALID_ARGS or IO. */
ZHV_MUST_CHECK zhv_status_t zhv_guest_get_clock(zhv_guest_t *guest, zhv_guest_clock_t *clock);
ZHV_MUST_CHECK zhv_status_t zhv_guest_set_clock(zhv_guest_t *guest,
                                                const zhv_guest_clock_t *clock);

/* Reset-to-snapshot: take a snapshot of a guest once (its writable RAM,
 * its clock, and each vCPU), then put the guest back to it as often as
 * wanted. A reset costs time in proportion to the pages written since the
 * last reset, not to the guest's size: while a snapshot exists, KVM logs
 * the guest's writes to its RAM (KVM_MEM_LOG_DIRTY_PAGES), and a reset
 * copies back only the pages in that log. Writes by the guest through KVM
 * (its vCPUs, and what KVM writes for it, e.g. kvmclock pages) and by
 * libzhv itself are logged; writes the program makes to guest RAM through
 * its own pointers are not: declare them with zhv_snapshot_mark_dirty(),
 * or they survive the reset. Read-only RAM is not saved (the guest cannot
 * change it). The memory map must not change while the snapshot exists
 * (map, unmap, protect, MEM or BELL traps over RAM): reset then refuses. */
typedef struct zhv_snapshot zhv_snapshot_t;

/* zhv_snapshot_create: snapshot the RAM and the clock of (guest) and start
 * logging writes. Call it with no vCPU of the guest inside enter (they
 * are held outside KVM_RUN meanwhile anyway), then add each vCPU with
 * zhv_snapshot_add_vcpu() on its thread. One snapshot per guest at a time.
 * Any thread. Returns ZHV_OK; INVALID_ARGS; ALREADY_EXISTS (the guest has
 * one); NOT_FOUND (the guest has no writable RAM); NO_MEMORY; IO. */
ZHV_MUST_CHECK zhv_status_t zhv_snapshot_create(zhv_guest_t *guest, zhv_snapshot_t **snapshot);

/* zhv_snapshot_add_vcpu: save (vcpu) (a vCPU of the snapshot's guest) into
 * the snapshot, as zhv_vcpu_save() does; again for the same vCPU replaces
 * it. On the vCPU's thread, outside enter. Returns ZHV_OK, INVALID_ARGS
 * (other guest), and zhv_vcpu_save()'s statuses. */
ZHV_MUST_CHECK zhv_status_t zhv_snapshot_add_vcpu(zhv_snapshot_t *snapshot, zhv_vcpu_t *vcpu);

/* zhv_snapshot_reset: put the guest's RAM and clock back to the snapshot:
 * copy back every page written since the snapshot or the last reset, then
 * set the clock. No vCPU of the guest may be inside enter (they are held
 * outside KVM_RUN meanwhile). Any thread. Then reset each vCPU with
 * zhv_snapshot_reset_vcpu() on its thread before it enters again.
 * Returns ZHV_OK; INVALID_ARGS; BAD_STATE (the memory map changed since
 * the snapshot: nothing was copied); IO (KVM failed; reset again). */
ZHV_MUST_CHECK zhv_status_t zhv_snapshot_reset(zhv_snapshot_t *snapshot);

/* zhv_snapshot_reset_vcpu: put (vcpu) back to its state in the snapshot.
 * On the vCPU's thread, outside enter. It allocates nothing (the blob was
 * checked and prepared when the vCPU was added), so it has no rollback:
 * Returns ZHV_OK; INVALID_ARGS (other guest); NOT_FOUND (the vCPU was never
 * added); BAD_STATE (other thread); IO (KVM refused part of the state,
 * logged: the vCPU is then partly reset; reset it again or destroy it). */
ZHV_MUST_CHECK zhv_status_t zhv_snapshot_reset_vcpu(zhv_snapshot_t *snapshot, zhv_vcpu_t *vcpu);

/* zhv_snapshot_mark_dirty: tell the snapshot that the program wrote guest
 * RAM [gpa, gpa + len) itself, so that the next reset restores it. Any
 * thread. Returns ZHV_OK, INVALID_ARGS (len 0, overflow) or NOT_FOUND (a
 * page of the range is not snapshotted RAM; the others are marked). */
ZHV_MUST_CHECK zhv_status_t zhv_snapshot_mark_dirty(zhv_snapshot_t *snapshot, uint64_t gpa,
                                                    uint64_t len);

/* zhv_snapshot_destroy: stop logging writes and free the snapshot. The
 * guest keeps running as it is. Any thread, no vCPU inside enter; NULL is
 * a no-op. A snapshot holds a reference on its guest (zhv_guest_destroy()
 * then takes effect when the snapshot goes). */
void zhv_snapshot_destroy(zhv_snapshot_t *snapshot);

#ifdef __cplusplus
}
#endif

#endif /* ZHV_H */
