/* apic.h: interrupt plumbing and time for test kernels: the local xAPIC
 * (Intel SDM vol. 3 ch. 11), the I/O APIC (82093AA datasheet) at zhv's
 * addresses, and a clock from the ACPI PM timer (ACPI 6.4 §4.8.3.3;
 * 3.579545 MHz, 32 bits at port 0x608 as zhv's FADT says). */
#ifndef ZHV_TEST_RT_APIC_H
#define ZHV_TEST_RT_APIC_H

#include "rt.h"

/* ---- local APIC ---------------------------------------------------------- */
#define RT_LAPIC_BASE 0xFEE00000u
#define RT_LAPIC_ID 0x020
#define RT_LAPIC_VERSION 0x030
#define RT_LAPIC_TPR 0x080
#define RT_LAPIC_EOI 0x0B0
#define RT_LAPIC_LDR 0x0D0
#define RT_LAPIC_DFR 0x0E0
#define RT_LAPIC_SVR 0x0F0
#define RT_LAPIC_ISR 0x100 /* 8 registers, 0x10 apart */
#define RT_LAPIC_IRR 0x200
#define RT_LAPIC_ICR_LO 0x300
#define RT_LAPIC_ICR_HI 0x310
#define RT_LAPIC_SVR_ENABLE 0x100
#define RT_LAPIC_SPURIOUS_VECTOR 0xFF

static inline uint32_t rt_lapic_read(unsigned reg)
{
	return mmio_read32(RT_LAPIC_BASE + reg);
}
static inline void rt_lapic_write(unsigned reg, uint32_t v)
{
	mmio_write32(RT_LAPIC_BASE + reg, v);
}
/* rt_lapic_enable: software-enable this CPU's APIC (SVR, spurious vector
 * 0xFF) and accept every priority (TPR 0). */
void rt_lapic_enable(void);
/* rt_lapic_id: this CPU's xAPIC ID (ID register bits 31-24). */
unsigned rt_lapic_id(void);
static inline void rt_lapic_eoi(void)
{
	rt_lapic_write(RT_LAPIC_EOI, 0);
}
/* rt_lapic_send_ipi: write the ICR (destination APIC ID, low word) and
 * wait (bounded) for the delivery status to clear. */
void rt_lapic_send_ipi(unsigned apic_id, uint32_t icr_lo);

/* ---- I/O APIC -------------------------------------------------------------- */
#define RT_IOAPIC_BASE 0xFEC00000u
#define RT_IOAPIC_REGSEL 0x00
#define RT_IOAPIC_WIN 0x10
#define RT_IOAPIC_EOIR 0x40
#define RT_IOAPIC_REG_ID 0x00
#define RT_IOAPIC_REG_VER 0x01
#define RT_IOAPIC_REG_ARB 0x02
#define RT_IOAPIC_REG_RTE(pin) (0x10u + 2u * (pin)) /* low dword; +1: high */

/* Redirection entry bits (low dword). */
#define RT_RTE_DELMODE_FIXED 0x000u
#define RT_RTE_LOGICAL (1u << 11)
#define RT_RTE_DELIVS (1u << 12)
#define RT_RTE_ACTIVE_LOW (1u << 13)
#define RT_RTE_REMOTE_IRR (1u << 14)
#define RT_RTE_LEVEL (1u << 15)
#define RT_RTE_MASKED (1u << 16)

uint32_t rt_ioapic_read(unsigned reg);
void rt_ioapic_write(unsigned reg, uint32_t v);
/* rt_ioapic_route: pin (pin) delivers (vector) to APIC ID (dest) (or the
 * logical destination set with RT_RTE_LOGICAL) with (flags) (RT_RTE_*).
 * Writes the high dword first, the low dword (which may unmask) last. */
void rt_ioapic_route(unsigned pin, unsigned vector, unsigned dest, uint32_t flags);
void rt_ioapic_mask(unsigned pin, bool masked);

/* ---- time ---------------------------------------------------------------------- */
#define RT_PM_TMR_PORT 0x608
#define RT_PM_TMR_HZ 3579545u
static inline uint32_t rt_pmtimer(void)
{
	return inl(RT_PM_TMR_PORT);
}
/* rt_us_since: microseconds since PM timer value (t0) (wraps after about
 * 20 minutes). */
uint32_t rt_us_since(uint32_t t0);
/* rt_delay_us: busy-wait (interrupts as the caller left them). */
void rt_delay_us(uint32_t us);
/* rt_wait_count: with interrupts enabled, wait until *(counter) >= (target)
 * or (timeout_us) pass. Returns whether the count was reached. Leaves
 * interrupts enabled. */
bool rt_wait_count(volatile uint32_t *counter, uint32_t target, uint32_t timeout_us);

/* ---- atomics -------------------------------------------------------------------- */
static inline uint32_t rt_atomic_inc(volatile uint32_t *p)
{
	uint32_t v = 1;
	__asm__ volatile("lock xaddl %0, %1" : "+r"(v), "+m"(*p) : : "memory");
	return v + 1;
}
static inline void rt_atomic_or(volatile uint32_t *p, uint32_t bits)
{
	__asm__ volatile("lock orl %1, %0" : "+m"(*p) : "r"(bits) : "memory");
}

/* ---- application processors (rt/smp.c) ------------------------------------------- */
/* An AP started by rt_start_ap loads the runtime's GDT and IDT, enables
 * its local APIC, counts itself in rt_ap_started / rt_ap_mask, then calls
 * (fn)(its APIC ID) on its own 1 KiB stack if (fn) is not NULL; when fn
 * returns (or without fn) it waits in "sti; hlt" for interrupts forever.
 * The real-mode trampoline lives in page RT_AP_TRAMPOLINE (SIPI vector 7). */
#define RT_AP_TRAMPOLINE 0x7000u
#define RT_MAX_CPUS 256
typedef void (*rt_ap_fn)(unsigned apic_id);
extern volatile uint32_t rt_ap_started;           /* APs that checked in */
extern volatile uint32_t rt_ap_mask[RT_MAX_CPUS / 32]; /* bit per APIC ID */
/* rt_smp_set_trampoline: use page (page) (below 1 MiB, page-aligned, not
 * page 0) instead of RT_AP_TRAMPOLINE; before the first AP is started. */
void rt_smp_set_trampoline(uint32_t page);
/* rt_smp_prepare: copy the trampoline and enable the BSP's local APIC;
 * (fn) is what every AP started from now on runs. rt_start_ap calls it
 * on first use. */
void rt_smp_prepare(rt_ap_fn fn);
/* rt_send_init_sipi: INIT, then two SIPIs, to (apic_id); does not wait. */
void rt_send_init_sipi(unsigned apic_id);
/* rt_start_ap: INIT/SIPI/SIPI to (apic_id) and wait up to (timeout_us) for
 * it to check in. */
bool rt_start_ap(unsigned apic_id, rt_ap_fn fn, uint32_t timeout_us);
/* rt_ap_seen: whether the AP with (apic_id) checked in. */
static inline bool rt_ap_seen(unsigned apic_id)
{
	return apic_id < RT_MAX_CPUS && (rt_ap_mask[apic_id / 32] >> (apic_id % 32)) & 1;
}

#endif /* ZHV_TEST_RT_APIC_H */
