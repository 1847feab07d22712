/* dev_smp.c: SMP bring-up of every vCPU through the xAPIC. The BSP sends
 * INIT/SIPI/SIPI to APIC IDs 1..cpus-1 all at once (the APs come up
 * together), then checks that exactly those IDs checked in, each once;
 * every AP then sends a fixed IPI to the BSP and the BSP one back to every
 * AP (a vector per AP: fixed IPIs of one vector coalesce in the IRR).
 * An INIT/SIPI to the first APIC ID past the last CPU starts nothing.
 * Command line: cpus=N (what --cpus says). */
#include "apic.h"
#include "rt.h"

#define VEC_TO_BSP 0x40 /* + APIC ID: 0x41 ... 0xBF */
#define VEC_TO_AP 0xC0
#define MAX_TEST_CPUS 128
#define ICR_FIXED 0x4000u /* fixed delivery, assert, physical destination */

static volatile uint32_t ipis_at_bsp;
static volatile uint32_t ipis_at_ap;
static volatile uint32_t ap_bad_id;
static volatile uint32_t ap_ipi_mask[RT_MAX_CPUS / 32];
static volatile uint32_t bsp_ipi_mask[RT_MAX_CPUS / 32];

static void on_ipi_at_bsp(struct rt_frame *f)
{
	unsigned id = f->vector - VEC_TO_BSP;
	rt_atomic_or(&bsp_ipi_mask[id / 32], 1u << (id % 32));
	rt_atomic_inc(&ipis_at_bsp);
	rt_lapic_eoi();
}

static void on_ipi_at_ap(struct rt_frame *f)
{
	(void)f;
	unsigned id = rt_lapic_id();
	if (id == 0 || id >= RT_MAX_CPUS)
		ap_bad_id = 1;
	else
		rt_atomic_or(&ap_ipi_mask[id / 32], 1u << (id % 32));
	rt_atomic_inc(&ipis_at_ap);
	rt_lapic_eoi();
}

static void ap_work(unsigned apic_id)
{
	if (apic_id != rt_lapic_id())
		ap_bad_id = 1;
	/* Say hello to the BSP with an IPI, then wait for one back. */
	rt_lapic_send_ipi(0, ICR_FIXED | (VEC_TO_BSP + apic_id));
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	unsigned cpus = rt_cmdline_uint("cpus", 1);
	if (cpus < 1 || cpus > MAX_TEST_CPUS)
		rt_fail("cpus=%u out of range", cpus);
	for (unsigned id = 1; id < cpus; id++)
		rt_set_handler(VEC_TO_BSP + id, on_ipi_at_bsp);
	rt_set_handler(VEC_TO_AP, on_ipi_at_ap);
	rt_smp_prepare(ap_work);
	unsigned self = rt_lapic_id();
	if (self != 0)
		rt_fail("the BSP has APIC ID %u, not 0", self);
	rt_sti();

	uint32_t t0 = rt_pmtimer();
	for (unsigned id = 1; id < cpus; id++)
		rt_send_init_sipi(id);
	if (!rt_wait_count(&rt_ap_started, cpus - 1, 20000000))
		rt_fail("only %u of %u APs checked in", rt_ap_started, cpus - 1);
	uint32_t up_us = rt_us_since(t0);
	for (unsigned id = 0; id < RT_MAX_CPUS; id++) {
		bool want = id >= 1 && id < cpus;
		if (rt_ap_seen(id) != want)
			rt_fail("APIC ID %u %s", id, want ? "did not check in" : "checked in unexpectedly");
	}
	RT_CHECK(ap_bad_id == 0);
	rt_printf("smp: %u of %u APs up in %u ms\n", rt_ap_started, cpus - 1, up_us / 1000);

	if (!rt_wait_count(&ipis_at_bsp, cpus - 1, 5000000))
		rt_fail("the BSP got %u IPIs from %u APs", ipis_at_bsp, cpus - 1);
	for (unsigned id = 1; id < cpus; id++)
		if (!((bsp_ipi_mask[id / 32] >> (id % 32)) & 1))
			rt_fail("no IPI from APIC ID %u", id);
	for (unsigned id = 1; id < cpus; id++)
		rt_lapic_send_ipi(id, ICR_FIXED | VEC_TO_AP);
	if (!rt_wait_count(&ipis_at_ap, cpus - 1, 5000000))
		rt_fail("the APs got %u of %u IPIs", ipis_at_ap, cpus - 1);
	for (unsigned id = 1; id < cpus; id++)
		if (!((ap_ipi_mask[id / 32] >> (id % 32)) & 1))
			rt_fail("the IPI for APIC ID %u landed elsewhere", id);
	RT_CHECK(ap_bad_id == 0);
	rt_printf("smp: IPIs: %u to the BSP, %u to the APs\n", ipis_at_bsp, ipis_at_ap);

	/* No CPU answers to the next APIC ID. */
	rt_send_init_sipi(cpus);
	rt_delay_us(20000);
	if (rt_ap_started != cpus - 1 || rt_ap_seen(cpus))
		rt_fail("INIT/SIPI to absent APIC ID %u started a CPU", cpus);
	rt_pass();
}
