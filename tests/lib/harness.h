/* harness.h: the conformance suite's test framework (TAP output, one forked
 * child per test with a timeout, assertions) and Zircon's guest harness
 * (spec 6.1: a 16 MiB guest with page tables, an exit trap and a BSP).
 *
 * A test is a void function. It fails through ZT_ASSERT_* (fatal: the
 * test's process ends at once, whichever thread asserts) or ZT_EXPECT_*
 * (recorded, the test goes on), and skips only through zt_skip_quirk() or
 * zt_skip_tcg_quirk(), which check that the host has the quirk. Every check
 * prints file:line, the expression and the values as TAP diagnostics.
 *
 * Tests are listed in static tables (struct zt_test[], ending with a
 * {NULL, NULL} entry) that the program's main passes to zt_main().
 */
#ifndef ZT_HARNESS_H
#define ZT_HARNESS_H

#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zhv.h"

#include "guest_abi.h"

/* ------------------------------------------------------------------------ */
/* Registry and runner.                                                      */

typedef void (*zt_test_fn)(void);

struct zt_test {
	const char *name;
	zt_test_fn fn;
};

/* zt_main: run every test of (suites) (an array of (nsuites) tables), or
 * only those whose name contains one of argv[1..] as a substring. Prints
 * TAP ("1..N", "ok N name", "not ok N name", "ok N name # SKIP why") on
 * stdout. Each test runs in its own child process, killed after
 * ZHV_CONF_TIMEOUT seconds (default 60). Without a usable /dev/kvm every
 * test is skipped, unless ZHV_REQUIRE_KVM=1, where each one fails.
 * ZHV_CONF_DEBUG=1 also shows libzhv's debug messages. Returns the exit
 * status: 0 when no test failed. */
int zt_main(int argc, char **argv, const struct zt_test *const *suites, size_t nsuites);

/* ------------------------------------------------------------------------ */
/* Diagnostics and assertions.                                               */

/* zt_diag: print "# " + the formatted text (each line prefixed), from any
 * thread, in one write. */
void zt_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* zt_fail_now / zt_fail_later: the test fails; _now ends its process. */
__attribute__((noreturn)) void zt_fail_now(void);
void zt_fail_later(void);

/* zt_skip_now: the test is skipped for (reason); ends its process. Tests
 * do not call it directly: a test may skip only for a named quirk of
 * kvm-on-this-machine.md, through zt_skip_quirk (below), which checks that
 * the host has that quirk. */
__attribute__((noreturn)) void zt_skip_now(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

bool zt_check_u64(bool fatal, const char *file, int line, const char *op, const char *ea,
                  const char *eb, uint64_t a, uint64_t b);
bool zt_check_status(bool fatal, const char *file, int line, const char *ea, const char *eb,
                     zhv_status_t a, zhv_status_t b);
bool zt_check_true(bool fatal, const char *file, int line, const char *expr, bool value);

#define ZT_CMP_(fatal, op, a, b) \
	zt_check_u64((fatal), __FILE__, __LINE__, #op, #a, #b, (uint64_t)(a), (uint64_t)(b))

/* Unsigned 64-bit comparisons (values are converted to uint64_t). */
#define ZT_ASSERT_EQ(a, b) ((void)ZT_CMP_(true, ==, a, b))
#define ZT_ASSERT_NE(a, b) ((void)ZT_CMP_(true, !=, a, b))
#define ZT_ASSERT_GE(a, b) ((void)ZT_CMP_(true, >=, a, b))
#define ZT_ASSERT_LE(a, b) ((void)ZT_CMP_(true, <=, a, b))
#define ZT_EXPECT_EQ(a, b) ZT_CMP_(false, ==, a, b)
#define ZT_EXPECT_NE(a, b) ZT_CMP_(false, !=, a, b)
#define ZT_EXPECT_GE(a, b) ZT_CMP_(false, >=, a, b)
#define ZT_EXPECT_LE(a, b) ZT_CMP_(false, <=, a, b)

/* Status comparisons, printed by name. */
#define ZT_ASSERT_STATUS(a, b) \
	((void)zt_check_status(true, __FILE__, __LINE__, #a, #b, (a), (b)))
#define ZT_EXPECT_STATUS(a, b) zt_check_status(false, __FILE__, __LINE__, #a, #b, (a), (b))
#define ZT_ASSERT_OK(a) ZT_ASSERT_STATUS(a, ZHV_OK)
#define ZT_EXPECT_OK(a) ZT_EXPECT_STATUS(a, ZHV_OK)

#define ZT_ASSERT(cond) ((void)zt_check_true(true, __FILE__, __LINE__, #cond, (cond)))
#define ZT_EXPECT(cond) zt_check_true(false, __FILE__, __LINE__, #cond, (cond))

/* ------------------------------------------------------------------------ */
/* The host, for quirk gating.                                               */

/* The host CPU's vendor, from CPUID leaf 0 executed by the test process (on
 * the host, not in a guest). libzhv gives the guest KVM's supported CPUID,
 * whose vendor string is the host's, so this is the guest's vendor too. */
typedef enum { ZT_VENDOR_OTHER = 1, ZT_VENDOR_INTEL = 2, ZT_VENDOR_AMD = 4 } zt_vendor_t;
zt_vendor_t zt_host_vendor(void);
const char *zt_vendor_name(zt_vendor_t vendor); /* "Intel", "AMD", "other" */

/* zt_kvm_pvm: true iff /sys/module/kvm_pvm exists, i.e. the host's KVM is
 * kvm_pvm (kvm-on-this-machine.md: guest 64-bit CPL3 code runs natively on
 * the host CPU, everything else in KVM's instruction emulator). */
bool zt_kvm_pvm(void);

/* zt_skip_quirk: skip for the kvm_pvm quirk (quirk), documented in
 * kvm-on-this-machine.md (and the README's skip table) for the host vendors
 * in (vendors) (a mask of zt_vendor_t). Call it only after the test has
 * seen the quirk's exact symptom. The skip happens only on a kvm_pvm host
 * whose vendor is in (vendors); anywhere else the symptom is a failure (a
 * hardware-virtualized host must pass Zircon's assertions), printed with
 * the quirk's name. The skip reason names the quirk and the host:
 * "kvm_pvm quirk (AMD host): <quirk>; <details>". */
/* zt_qemu_tcg: true iff the host CPU is QEMU's software emulation (TCG):
 * CPUID leaf 1 has the hypervisor bit and leaf 0x40000000 says
 * "TCGTCGTCGTCG" (tools/kvm-in-qemu.sh runs the suite on KVM inside such a
 * machine when this one has no /dev/kvm). */
bool zt_qemu_tcg(void);

/* zt_skip_tcg_quirk: as zt_skip_quirk, for a quirk of QEMU's TCG CPU
 * (vendors as there): skips only when zt_qemu_tcg(); a failure elsewhere. */
__attribute__((noreturn)) void zt_skip_tcg_quirk(unsigned vendors, const char *quirk,
                                                 const char *details_fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define ZT_QUIRK_ANY_VENDOR (ZT_VENDOR_INTEL | ZT_VENDOR_AMD | ZT_VENDOR_OTHER)
__attribute__((noreturn)) void zt_skip_quirk(unsigned vendors, const char *quirk,
                                             const char *details_fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------------ */
/* Zircon's guest harness (spec 6.1).                                        */

/* Declare the guest snippet (name) of a .S file: (name)_start, (name)_end. */
#define ZT_GUEST_CODE(name) extern const char name##_start[], name##_end[]

/* Guest-physical address of (label) of snippet (start) once the snippet
 * sits at GUEST_ENTRY: ABS() of guest_asm.h, for the host. */
#define ZT_GUEST_ADDR(start, label) \
	((uint64_t)((uintptr_t)(label) - (uintptr_t)(start)) + GUEST_ENTRY)

/* Zircon's TestCase. */
struct zt_case {
	zhv_guest_t *guest;
	zhv_vcpu_t *vcpu; /* the BSP, bound to the thread that created it */
	uint8_t *mem;     /* host view of the 16 MiB of guest RAM */
	const char *code_start;
	bool interrupts_enabled; /* EnterAndCleanExit wants instruction_size 12 */
};

/* zt_setup_guest_memory: Zircon's SetupGuest without the vCPU: mmap 16 MiB,
 * create the guest, map the memory RWX at GPA 0, MEM trap (key 0, no port)
 * on EXIT_TEST_ADDR, page tables (2 MiB pages), copy [start, end) to
 * GUEST_ENTRY (nothing if start is NULL). Asserts on failure. */
void zt_setup_guest_memory(struct zt_case *tc, const char *start, const char *end);

/* zt_setup_vcpu: vcpu_create(guest, 0, GUEST_ENTRY) on the calling thread. */
void zt_setup_vcpu(struct zt_case *tc);

/* zt_setup_guest: Zircon's SetupGuest (memory, then the BSP on this thread). */
void zt_setup_guest(struct zt_case *tc, const char *start, const char *end);

/* zt_case_destroy: destroy the vCPU (if any) and the guest, unmap memory.
 * No vCPU of the guest may be inside enter. */
void zt_case_destroy(struct zt_case *tc);

/* zt_enter_and_clean_exit: Zircon's EnterAndCleanExit. enter must return
 * ZHV_OK with a MEM packet for EXIT_TEST_ADDR and default_operand_size 4;
 * with tc->interrupts_enabled, instruction_size must be 12 (otherwise the
 * registers are printed and the test fails). Returns the packet. */
zhv_packet_t zt_enter_and_clean_exit(struct zt_case *tc);

/* zt_enter_clean_exit_at: zt_enter_and_clean_exit, and the exit store must
 * be the instruction at guest address (rip) (e.g. not an exception
 * handler's). */
void zt_enter_clean_exit_at(struct zt_case *tc, uint64_t rip);

/* zt_expect_enter: enter (vcpu), expecting status (want) (not ZHV_OK); on
 * a mismatch, print the packet or the state and fail (not fatal). */
bool zt_expect_enter(zhv_vcpu_t *vcpu, zhv_status_t want);

/* zt_dump_vcpu: print the vCPU's registers, segments and last exit as
 * diagnostics (call on the vCPU's thread). */
void zt_dump_vcpu(zhv_vcpu_t *vcpu);

/* zt_read_state / zt_read_regs / zt_read_sregs: read or assert. */
zhv_vcpu_state_t zt_read_state(zhv_vcpu_t *vcpu);
zhv_vcpu_regs_t zt_read_regs(zhv_vcpu_t *vcpu);
zhv_vcpu_sregs_t zt_read_sregs(zhv_vcpu_t *vcpu);

/* zt_vcpu_set_long_mode: put (vcpu) (an AP, in real mode after creation)
 * into 64-bit mode at (rip) with stack (rsp): segments, descriptor tables,
 * CR0/CR3/CR4 and EFER from (tmpl) (e.g. the BSP's initial SREGS), keeping
 * the vCPU's own APIC base; RFLAGS = 0x2. Call on the vCPU's thread. */
void zt_vcpu_set_long_mode(zhv_vcpu_t *vcpu, const zhv_vcpu_sregs_t *tmpl, uint64_t rip,
                           uint64_t rsp);

/* Guest RAM accessors for the test data page (atomic, host side). */
uint32_t zt_guest_load32(const struct zt_case *tc, uint64_t gpa);
uint64_t zt_guest_load64(const struct zt_case *tc, uint64_t gpa);
void zt_guest_store32(struct zt_case *tc, uint64_t gpa, uint32_t value);
void zt_guest_store64(struct zt_case *tc, uint64_t gpa, uint64_t value);

/* ------------------------------------------------------------------------ */
/* Small helpers.                                                            */

/* zt_sleep_ms: sleep (ms) milliseconds. zt_now_ms: monotonic time in ms. */
void zt_sleep_ms(unsigned ms);
uint64_t zt_now_ms(void);

/* zt_sem_wait_ms: sem_wait with a timeout; false if it timed out. */
bool zt_sem_wait_ms(sem_t *sem, unsigned ms);

/* zt_wait_until_ms: poll (cond)(arg) every millisecond for up to (ms);
 * returns its last value. */
bool zt_wait_until_ms(bool (*cond)(void *), void *arg, unsigned ms);

/* zt_thread_start / zt_thread_join: pthread wrappers that assert. */
typedef struct zt_thread zt_thread_t;
zt_thread_t *zt_thread_start(void *(*fn)(void *), void *arg);
void *zt_thread_join(zt_thread_t *thread);

#endif /* ZT_HARNESS_H */
