/* smp.c: starting application processors with INIT/SIPI through the
 * BSP's xAPIC (SDM vol. 3, 11.6.1 ICR, 9.4.4 MP initialization); see
 * apic.h. */
#include "apic.h"

#define ICR_INIT 0x500u
#define ICR_STARTUP 0x600u
#define ICR_ASSERT 0x4000u

extern const uint8_t rt_ap_trampoline[], rt_ap_trampoline_end[];
void rt_ap_main(uint32_t apic_id);

volatile uint32_t rt_ap_started;
volatile uint32_t rt_ap_mask[RT_MAX_CPUS / 32];
static rt_ap_fn ap_fn;
static bool prepared;
static uint32_t tramp_page = RT_AP_TRAMPOLINE;

void rt_ap_main(uint32_t apic_id)
{
	rt_load_idt();
	rt_lapic_enable();
	if (apic_id < RT_MAX_CPUS)
		rt_atomic_or(&rt_ap_mask[apic_id / 32], 1u << (apic_id % 32));
	rt_atomic_inc(&rt_ap_started);
	rt_ap_fn fn = ap_fn;
	if (fn)
		fn(apic_id);
	for (;;)
		rt_wait_irq();
}

void rt_smp_set_trampoline(uint32_t page)
{
	if (!prepared && page && page < 0x100000 && !(page & 0xFFF))
		tramp_page = page;
}

void rt_smp_prepare(rt_ap_fn fn)
{
	ap_fn = fn;
	if (prepared)
		return;
	memcpy((void *)(uintptr_t)tramp_page, rt_ap_trampoline,
	       (size_t)(rt_ap_trampoline_end - rt_ap_trampoline));
	rt_lapic_enable();
	prepared = true;
}

void rt_send_init_sipi(unsigned apic_id)
{
	if (!prepared)
		rt_smp_prepare(ap_fn);
	rt_lapic_send_ipi(apic_id, ICR_INIT | ICR_ASSERT);
	rt_lapic_send_ipi(apic_id, ICR_STARTUP | ICR_ASSERT | (tramp_page >> 12));
	rt_lapic_send_ipi(apic_id, ICR_STARTUP | ICR_ASSERT | (tramp_page >> 12));
}

bool rt_start_ap(unsigned apic_id, rt_ap_fn fn, uint32_t timeout_us)
{
	rt_smp_prepare(fn);
	uint32_t t0 = rt_pmtimer();
	rt_send_init_sipi(apic_id);
	while (!rt_ap_seen(apic_id)) {
		if (rt_us_since(t0) >= timeout_us)
			return rt_ap_seen(apic_id);
		rt_pause();
	}
	return true;
}
