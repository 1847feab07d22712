/* smp.c: the bundled guest's APs, started one at a time through the
 * runtime (rt/smp.c: INIT/SIPI, trampoline, per-CPU stacks), each saying
 * "cpu N up" before the next one starts, so that the lines come out in
 * order and at most two vCPUs compete for the host. */
#include "apic.h"
#include "guest.h"

/* How long one AP may take to start and print (emulated: seconds). */
#define AP_WAIT_US 5000000u

static volatile uint32_t aps_up;

static void ap_main(unsigned apic_id)
{
	rt_printf("cpu %u up\n", apic_id);
	rt_atomic_inc(&aps_up);
}

/* Interrupts stay off on the BSP (the guest programs no controller). */
static bool wait_up(uint32_t want)
{
	uint32_t t0 = rt_pmtimer();
	while (aps_up < want) {
		if (rt_us_since(t0) >= AP_WAIT_US)
			return aps_up >= want;
		rt_pause();
	}
	return true;
}

unsigned smp_start_aps(unsigned ncpus, uint32_t page)
{
	rt_smp_set_trampoline(page);
	unsigned self = rt_lapic_id();
	unsigned started = 0;

	for (unsigned id = 0; id < ncpus && id < 255; id++) {
		if (id == self)
			continue;
		uint32_t want = aps_up + 1;
		if (!rt_start_ap(id, ap_main, AP_WAIT_US) || !wait_up(want)) {
			rt_printf("zhv guest: cpu %u did not start\n", id);
			continue;
		}
		started++;
	}
	return started;
}
