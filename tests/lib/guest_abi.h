/* guest_abi.h: the contract between the conformance suite's guest snippets
 * (tests/conformance/<group>_guest.S) and their host drivers
 * (<group>_test.c).
 *
 * Included by C and by preprocessed assembly, so it holds only #defines
 * (no C suffixes such as 1u: GNU as must parse them too). Zircon's names and
 * values (spec 6.1) come first; everything after "our additions" is ours.
 *
 * Guest-physical layout of a test guest (16 MiB of RAM at GPA 0):
 *
 *   0x000000  PML4            entry 0 -> PDPT
 *   0x001000  PDPT            entry 0 -> PD
 *   0x002000  guest code      copied from <name>_start.. <name>_end
 *   0x003000  stack top       init_gdt sets RSP here (grows into 0x2xxx)
 *   0x004000  TSS             init_tss (RSP0 = 0x3000)
 *   0x005000  test data       counters and flags the host reads (below)
 *   0x009000  SIPI page       real-mode AP code (SIPI vector 9)
 *   0x010000  PD              512 x 2 MiB pages identity-mapping 1 GiB
 *                             (only the first 16 MiB are RAM)
 *   0x100000  AP stacks       4 KiB per APIC ID
 *   0xFFE000  TRAP_ADDR       MEM or BELL trap page set by some tests
 *   0xFFF000  EXIT_TEST_ADDR  MEM trap page (key 0): "the test is done"
 *
 * All page-table entries are P|RW|U, so ring-3 code can run anywhere.
 * 2 MiB pages, not Zircon's 1 GiB page: kvm_pvm rejects 1 GiB guest pages
 * (kvm-on-this-machine.md, section 6).
 */
#ifndef ZT_GUEST_ABI_H
#define ZT_GUEST_ABI_H

#define ZT_GUEST_ABI_VERSION 1

/* ---- Zircon's constants (spec 6.1) ------------------------------------- */
#define GUEST_MEM_SIZE         0x1000000
#define GUEST_ENTRY            0x2000
#define EXIT_TEST_ADDR         0xFFF000
#define EXIT_TEST_FAILURE_ADDR 0xFFF008
#define TRAP_ADDR              0xFFE000
#define TRAP_PORT              0x11
#define TRAP_KEY               0x1234
#define INTERRUPT_VECTOR       32
#define IPI_VECTOR             0x66
#define NMI_VECTOR             2
#define GP_FAULT_VECTOR        13
#define EXCEPTION_VECTOR       16

/* Length of "movq $0, (EXIT_TEST_ADDR)": what a clean exit looks like. */
#define EXIT_INSN_SIZE         12

/* ---- Our additions: layout ---------------------------------------------- */
#define GUEST_PML4             0x0000
#define GUEST_PDPT             0x1000
#define GUEST_STACK_TOP        0x3000
/* Code must leave room for the stack below GUEST_STACK_TOP. */
#define GUEST_CODE_MAX         0x0F00
#define GUEST_TSS              0x4000 /* 104-byte 64-bit TSS (init_tss) */
#define GUEST_PD               0x10000
#define GUEST_SIPI_VECTOR      0x09
#define GUEST_SIPI_PAGE        0x9000
#define GUEST_AP_STACKS        0x100000
#define GUEST_AP_STACK_SIZE    0x1000
/* Top of the stack of the vCPU with APIC ID (i). */
#define GUEST_AP_STACK_TOP(i)  (GUEST_AP_STACKS + ((i) + 1) * GUEST_AP_STACK_SIZE)

/* Test data page. Arrays are indexed by APIC ID (0..255). */
#define GUEST_DATA             0x5000
#define GUEST_COUNT_A          0x5000 /* u32[256]: e.g. IPIs, timer ticks, #GPs */
#define GUEST_COUNT_B          0x5400 /* u32[256]: e.g. NMIs */
#define GUEST_FLAGS            0x5800 /* u32[256]: e.g. "AP ready" */
#define GUEST_MISC             0x5C00 /* u64[128]: values a test defines */

/* ---- Segment selectors of init_gdt (Zircon's GDT) ----------------------- */
#define CODE_32_SELECTOR       0x08
#define CODE_64_SELECTOR       0x10
#define DATA_SELECTOR          0x18
#define USER_CODE_32_SELECTOR  0x20
#define USER_DATA_SELECTOR     0x28
#define USER_CODE_64_SELECTOR  0x30
#define USER_DATA_SYSEXIT_SELECTOR 0x38
#define CODE_16_SELECTOR       0x40
#define TSS_SELECTOR           0x48 /* ours */

/* ---- Architectural constants (Intel SDM vol. 3) ------------------------- */
#define X86_CR0_PE             0x00000001
#define X86_CR0_ET             0x00000010
#define X86_CR0_NE             0x00000020
#define X86_CR0_WP             0x00010000
#define X86_CR0_NW             0x20000000
#define X86_CR0_CD             0x40000000
#define X86_CR0_PG             0x80000000
#define X86_CR4_OSFXSR         0x00000200

#define X86_MSR_IA32_SYSENTER_CS  0x174
#define X86_MSR_IA32_SYSENTER_ESP 0x175
#define X86_MSR_IA32_SYSENTER_EIP 0x176
#define X86_MSR_IA32_TSC_DEADLINE 0x6E0
#define X86_MSR_IA32_EFER      0xC0000080
#define X86_MSR_IA32_STAR      0xC0000081
#define X86_MSR_IA32_LSTAR     0xC0000082
#define X86_MSR_IA32_GS_BASE   0xC0000101

/* x2APIC registers as MSRs (SDM 10.12.1.2). */
#define X2APIC_MSR_ID          0x802
#define X2APIC_MSR_EOI         0x80B
#define X2APIC_MSR_ICR         0x830
#define X2APIC_MSR_LVT_TIMER   0x832
#define X2APIC_MSR_INIT_COUNT  0x838
#define X2APIC_MSR_CUR_COUNT   0x839
#define X2APIC_MSR_DCR         0x83E

/* ICR fields (SDM 10.6.1, x2APIC: destination in EDX). */
#define ICR_SHORTHAND_NONE     0
#define ICR_SHORTHAND_SELF     1
#define ICR_SHORTHAND_ALL_INC  2
#define ICR_SHORTHAND_ALL_EXC  3
#define ICR_DELIVERY_FIXED     0
#define ICR_DELIVERY_NMI       4
#define ICR_DELIVERY_INIT      5
#define ICR_DELIVERY_STARTUP   6
#define ICR_LEVEL_ASSERT       (1 << 14)
#define ICR_LOW(shorthand, delivery, vector) \
	(((shorthand) << 18) | ((delivery) << 8) | (vector))

/* LVT timer (SDM 10.5.1): vector, mask bit 16, mode bits 18:17. */
#define LVT_MASKED             (1 << 16)
#define LVT_TIMER_ONESHOT      (0 << 17)
#define LVT_TIMER_PERIODIC     (1 << 17)
#define LVT_TIMER_TSC_DEADLINE (2 << 17)
#define DCR_DIVIDE_BY_1        0xB
#define TIMER_VECTOR           0x40

/* Hypercall results of the KVM ABI (Zircon returns the same). */
#define KVM_ENOSYS             1000
#define KVM_EPERM              1
#define INVALID_HYPERCALL      0xFFFFFFFF

#endif /* ZT_GUEST_ABI_H */
