/* smp.c: AP bring-up through the BSP's xAPIC (SDM vol. 3, 10.6.1 ICR and
 * 9.4.4 MP initialization): INIT then SIPI to each APIC ID in turn, and the
 * APs' C entry. */
#include "guest.h"

/* clang-format off */
#define LAPIC_BASE    0xFEE00000u
#define LAPIC_ID      0x020
#define LAPIC_SVR     0x0F0
#define LAPIC_ICR_LO  0x300
#define LAPIC_ICR_HI  0x310
#define SVR_ENABLE    0x100
#define ICR_INIT      0x500
#define ICR_STARTUP   0x600
#define ICR_PENDING   0x1000 /* delivery status */
#define ICR_ASSERT    0x4000
/* clang-format on */

/* Spins of the wait for an AP (a few µs each when emulated: seconds). */
#define AP_WAIT_SPINS 500000u

static volatile uint32_t aps_up;

static void icr_send(uint32_t apic_id, uint32_t lo)
{
	mmio_write32(LAPIC_BASE + LAPIC_ICR_HI, apic_id << 24);
	mmio_write32(LAPIC_BASE + LAPIC_ICR_LO, lo);
	for (unsigned i = 0; i < 1000 && (mmio_read32(LAPIC_BASE + LAPIC_ICR_LO) & ICR_PENDING); i++)
		cpu_relax();
}

static bool wait_for_aps(uint32_t count)
{
	for (unsigned i = 0; i < AP_WAIT_SPINS; i++) {
		if (aps_up >= count)
			return true;
		cpu_relax();
	}
	return aps_up >= count;
}

void ap_main(uint32_t apic_id)
{
	console_printf("cpu %u up\n", apic_id);
	__atomic_add_fetch(&aps_up, 1, __ATOMIC_SEQ_CST);
	halt_forever();
}

unsigned smp_start_aps(unsigned ncpus, uint32_t page)
{
	memcpy((void *)(uintptr_t)page, ap_trampoline, (size_t)(ap_trampoline_end - ap_trampoline));
	/* A software-enabled APIC (its power-on SVR is 0xFF). */
	mmio_write32(LAPIC_BASE + LAPIC_SVR, mmio_read32(LAPIC_BASE + LAPIC_SVR) | SVR_ENABLE);
	uint32_t self = mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24;
	uint32_t vector = page >> 12;
	unsigned started = 0;

	/* One AP at a time: the lines come out in order and at most two
	 * vCPUs (this one and the new AP) compete for the host. */
	for (uint32_t id = 0; id < ncpus && id < 255; id++) {
		if (id == self)
			continue;
		uint32_t want = aps_up + 1;
		icr_send(id, ICR_INIT | ICR_ASSERT);
		icr_send(id, ICR_STARTUP | ICR_ASSERT | vector);
		if (!wait_for_aps(want)) {
			/* The MP protocol's second SIPI; a started AP ignores it. */
			icr_send(id, ICR_STARTUP | ICR_ASSERT | vector);
			if (!wait_for_aps(want)) {
				console_printf("zhv guest: cpu %u did not start\n", id);
				continue;
			}
		}
		started++;
	}
	return started;
}
