/* apic.c: local APIC, I/O APIC and PM-timer helpers (see apic.h). */
#include "apic.h"

#define ICR_PENDING 0x1000u

void rt_lapic_enable(void)
{
	rt_lapic_write(RT_LAPIC_TPR, 0);
	rt_lapic_write(RT_LAPIC_SVR, RT_LAPIC_SVR_ENABLE | RT_LAPIC_SPURIOUS_VECTOR);
}

unsigned rt_lapic_id(void)
{
	return rt_lapic_read(RT_LAPIC_ID) >> 24;
}

void rt_lapic_send_ipi(unsigned apic_id, uint32_t icr_lo)
{
	rt_lapic_write(RT_LAPIC_ICR_HI, (uint32_t)apic_id << 24);
	rt_lapic_write(RT_LAPIC_ICR_LO, icr_lo);
	for (unsigned i = 0; i < 1000 && (rt_lapic_read(RT_LAPIC_ICR_LO) & ICR_PENDING); i++)
		rt_pause();
}

/* The IOAPIC's select/window pair is shared: keep it under one lock so
 * that CPUs never mix their accesses. */
static volatile uint32_t ioapic_lock;

static void ioapic_lock_take(void)
{
	for (;;) {
		uint32_t v = 1;
		__asm__ volatile("lock xchgl %0, %1" : "+r"(v), "+m"(ioapic_lock) : : "memory");
		if (!v)
			return;
		while (ioapic_lock)
			rt_pause();
	}
}

static void ioapic_lock_drop(void)
{
	__asm__ volatile("" ::: "memory");
	ioapic_lock = 0;
}

uint32_t rt_ioapic_read(unsigned reg)
{
	ioapic_lock_take();
	mmio_write32(RT_IOAPIC_BASE + RT_IOAPIC_REGSEL, reg);
	uint32_t v = mmio_read32(RT_IOAPIC_BASE + RT_IOAPIC_WIN);
	ioapic_lock_drop();
	return v;
}

void rt_ioapic_write(unsigned reg, uint32_t v)
{
	ioapic_lock_take();
	mmio_write32(RT_IOAPIC_BASE + RT_IOAPIC_REGSEL, reg);
	mmio_write32(RT_IOAPIC_BASE + RT_IOAPIC_WIN, v);
	ioapic_lock_drop();
}

void rt_ioapic_route(unsigned pin, unsigned vector, unsigned dest, uint32_t flags)
{
	rt_ioapic_write(RT_IOAPIC_REG_RTE(pin) + 1, (uint32_t)dest << 24);
	rt_ioapic_write(RT_IOAPIC_REG_RTE(pin), (vector & 0xFFu) | flags);
}

void rt_ioapic_mask(unsigned pin, bool masked)
{
	uint32_t lo = rt_ioapic_read(RT_IOAPIC_REG_RTE(pin));
	lo = masked ? lo | RT_RTE_MASKED : lo & ~RT_RTE_MASKED;
	rt_ioapic_write(RT_IOAPIC_REG_RTE(pin), lo);
}

/* ticks / 3.579545 = ticks * 286.1 / 1024: 286 is 0.03 % short, fine for
 * test timeouts, and avoids a 64-bit division (no libgcc here). */
uint32_t rt_us_since(uint32_t t0)
{
	uint32_t ticks = rt_pmtimer() - t0;
	return (uint32_t)(((uint64_t)ticks * 286u) >> 10);
}

void rt_delay_us(uint32_t us)
{
	uint32_t t0 = rt_pmtimer();
	while (rt_us_since(t0) < us)
		rt_pause();
}

bool rt_wait_count(volatile uint32_t *counter, uint32_t target, uint32_t timeout_us)
{
	uint32_t t0 = rt_pmtimer();
	rt_sti();
	for (;;) {
		if (*counter >= target)
			return true;
		if (rt_us_since(t0) >= timeout_us)
			return *counter >= target;
		rt_pause();
	}
}
