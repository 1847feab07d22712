/* dev_ioapic.c: the I/O APIC from the guest side: identification
 * registers, redirection entries, and delivery. The interrupt source is
 * COM2's THRE interrupt (ISA IRQ 3 = pin 3): writing IER = THRI raises the
 * line, IER = 0 lowers it, so every edge is the test's own doing.
 * Command line: cpus=N; with N >= 2 it also starts APIC ID 1 and routes
 * the pin there (physical and logical destination). */
#include "apic.h"
#include "group.h"

#define COM2 0x2F8
#define UART_IER 1
#define UART_IER_THRI 0x02
#define PIN 3
#define VEC 0x43
#define VEC_LEVEL 0x44
#define VEC_AP 0x45

static volatile uint32_t hits;       /* interrupts on VEC / VEC_LEVEL / VEC_AP */
static volatile uint32_t last_vector;
static volatile uint32_t last_cpu;
static volatile uint32_t other_vectors;

static void on_irq(struct rt_frame *f)
{
	last_vector = f->vector;
	last_cpu = rt_lapic_id();
	rt_atomic_inc(&hits);
	rt_lapic_eoi();
}

/* Level-triggered interrupts: like on_irq, but lowers the line (serves
 * the source) at the (lower_at)th interrupt and after, before the EOI.
 * Until then the line stays high, so the local APIC's EOI (broadcast to
 * the IOAPIC, as on a PC) brings the interrupt again; a handler that
 * never lowered it would be an interrupt storm. */
static volatile uint32_t lower_at;

static void on_level(struct rt_frame *f)
{
	last_vector = f->vector;
	last_cpu = rt_lapic_id();
	if (rt_atomic_inc(&hits) >= lower_at)
		outb(COM2 + 1 /* IER */, 0);
	rt_lapic_eoi();
}

static void on_other(struct rt_frame *f)
{
	(void)f;
	rt_atomic_inc(&other_vectors);
	rt_lapic_eoi();
}

static void line_high(void)
{
	outb(COM2 + UART_IER, UART_IER_THRI);
}

static void line_low(void)
{
	outb(COM2 + UART_IER, 0);
}

static void edge(void)
{
	line_high();
	line_low();
}

/* Interrupts are delivered before the next guest instruction on the vCPU
 * that made the edge; another vCPU has to wake up first, which takes
 * milliseconds on a busy host. settle(n): the count once it reached (n),
 * or after 3 s. quiet(): the count after 50 ms, for "nothing (more)
 * came" checks. */
static uint32_t settle(uint32_t target)
{
	rt_wait_count(&hits, target, 3000000);
	return hits;
}

static uint32_t quiet(void)
{
	rt_delay_us(50000);
	return hits;
}

static void ap_setup(unsigned apic_id)
{
	/* Flat logical destination: APIC ID n gets bit n of the 8-bit set. */
	rt_lapic_write(RT_LAPIC_DFR, 0xFFFFFFFFu);
	rt_lapic_write(RT_LAPIC_LDR, (1u << apic_id) << 24);
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	unsigned cpus = rt_cmdline_uint("cpus", 1);
	rt_lapic_enable();
	rt_set_handler(VEC, on_irq);
	rt_set_handler(VEC_LEVEL, on_level);
	rt_set_handler(VEC_AP, on_irq);
	for (unsigned v = 0x20; v < 0xFF; v++)
		if (v != VEC && v != VEC_LEVEL && v != VEC_AP)
			rt_set_handler(v, on_other);
	line_low();

	/* ---- identification ---- */
	uint32_t ver = rt_ioapic_read(RT_IOAPIC_REG_VER);
	RT_EXPECT(ver == 0x00170020u, "version register %x, want 0x00170020", ver);
	RT_EXPECT(((ver >> 16) & 0xFF) + 1 == 24, "%u pins", ((ver >> 16) & 0xFF) + 1);
	RT_EXPECT(rt_ioapic_read(RT_IOAPIC_REG_ID) == 0, "ID %x after reset",
	          rt_ioapic_read(RT_IOAPIC_REG_ID));
	rt_ioapic_write(RT_IOAPIC_REG_ID, 0x05000000u);
	RT_EXPECT(rt_ioapic_read(RT_IOAPIC_REG_ID) == 0x05000000u, "ID reads %x after writing 5",
	          rt_ioapic_read(RT_IOAPIC_REG_ID));
	rt_ioapic_write(RT_IOAPIC_REG_ID, 0xFFFFFFFFu);
	RT_EXPECT(rt_ioapic_read(RT_IOAPIC_REG_ID) == 0x0F000000u, "ID reads %x, want bits 27-24",
	          rt_ioapic_read(RT_IOAPIC_REG_ID));
	rt_ioapic_write(RT_IOAPIC_REG_ID, 0);
	rt_ioapic_write(RT_IOAPIC_REG_VER, 0x12345678u); /* read-only */
	RT_EXPECT(rt_ioapic_read(RT_IOAPIC_REG_VER) == 0x00170020u, "version is writable");
	mmio_write32(RT_IOAPIC_BASE + RT_IOAPIC_REGSEL, RT_IOAPIC_REG_VER);
	RT_EXPECT(mmio_read32(RT_IOAPIC_BASE + RT_IOAPIC_REGSEL) == RT_IOAPIC_REG_VER,
	          "IOREGSEL does not read back");
	RT_GROUP_OK("ioapic-id");

	/* ---- redirection entries ---- */
	for (unsigned pin = 0; pin < 24; pin++) {
		uint32_t lo = rt_ioapic_read(RT_IOAPIC_REG_RTE(pin));
		uint32_t hi = rt_ioapic_read(RT_IOAPIC_REG_RTE(pin) + 1);
		RT_EXPECT(lo == RT_RTE_MASKED && hi == 0, "pin %u after reset: %x %x, want masked",
		          pin, hi, lo);
	}
	rt_ioapic_write(RT_IOAPIC_REG_RTE(5) + 1, 0xAB000000u);
	rt_ioapic_write(RT_IOAPIC_REG_RTE(5), 0x0001A9F3u); /* masked, level, low, logical, 0xF3 */
	RT_EXPECT(rt_ioapic_read(RT_IOAPIC_REG_RTE(5)) == 0x0001A9F3u, "pin 5 low reads %x",
	          rt_ioapic_read(RT_IOAPIC_REG_RTE(5)));
	RT_EXPECT(rt_ioapic_read(RT_IOAPIC_REG_RTE(5) + 1) == 0xAB000000u, "pin 5 high reads %x",
	          rt_ioapic_read(RT_IOAPIC_REG_RTE(5) + 1));
	/* Delivery status (12) and Remote IRR (14) are read-only. */
	rt_ioapic_write(RT_IOAPIC_REG_RTE(5), 0xFFFFFFFFu);
	uint32_t lo5 = rt_ioapic_read(RT_IOAPIC_REG_RTE(5));
	RT_EXPECT((lo5 & (RT_RTE_DELIVS | RT_RTE_REMOTE_IRR)) == 0,
	          "read-only bits written: pin 5 reads %x", lo5);
	RT_EXPECT((lo5 & 0x1AFFFu) == 0x1AFFFu, "writable bits lost: pin 5 reads %x", lo5);
	RT_EXPECT(rt_ioapic_read(RT_IOAPIC_REG_RTE(4)) == RT_RTE_MASKED &&
	              rt_ioapic_read(RT_IOAPIC_REG_RTE(6)) == RT_RTE_MASKED,
	          "writing pin 5 changed its neighbours");
	rt_ioapic_write(RT_IOAPIC_REG_RTE(5), RT_RTE_MASKED);
	rt_ioapic_write(RT_IOAPIC_REG_RTE(5) + 1, 0);
	RT_GROUP_OK("ioapic-rte");

	/* ---- masked and unmasked delivery ---- */
	rt_sti();
	rt_ioapic_route(PIN, VEC, 0, RT_RTE_MASKED);
	edge();
	edge();
	RT_EXPECT(quiet() == 0, "a masked pin delivered %u interrupts", hits);
	line_high(); /* an edge while masked is lost, also when unmasked later */
	rt_ioapic_mask(PIN, false);
	RT_EXPECT(quiet() == 0, "unmasking a pin whose line is high delivered");
	line_low();
	RT_EXPECT(quiet() == 0, "a falling edge delivered");
	RT_GROUP_OK("ioapic-masked");

	for (unsigned i = 1; i <= 3; i++) {
		edge();
		RT_EXPECT(settle(i) == i, "edge %u: %u interrupts", i, hits);
		RT_EXPECT(last_vector == VEC && last_cpu == 0, "vector %x on cpu %u", last_vector,
		          last_cpu);
	}
	line_high();
	RT_EXPECT(settle(4) == 4, "rising edge: %u interrupts", hits);
	line_high(); /* still high: no edge */
	RT_EXPECT(quiet() == 4, "a steady line delivered again");
	line_low();
	rt_ioapic_mask(PIN, true);
	edge();
	RT_EXPECT(quiet() == 4, "masked again, yet delivered");
	RT_GROUP_OK("ioapic-edge");

	/* ---- level-triggered: Remote IRR, the local APIC's EOI, the EOI
	 * register ---- */
	hits = 0;
	lower_at = 2; /* the first handler leaves the line high */
	rt_ioapic_route(PIN, VEC_LEVEL, 0, RT_RTE_LEVEL);
	line_high();
	RT_EXPECT(settle(2) == 2 && quiet() == 2,
	          "level: the local APIC EOI with the line high gave %u interrupts, want 2", hits);
	RT_EXPECT(last_vector == VEC_LEVEL, "level: vector %x", last_vector);
	RT_EXPECT(!(rt_ioapic_read(RT_IOAPIC_REG_RTE(PIN)) & RT_RTE_REMOTE_IRR),
	          "level: Remote IRR still set after the EOI with the line low");
	/* The EOI register with nothing in service changes nothing. */
	mmio_write32(RT_IOAPIC_BASE + RT_IOAPIC_EOIR, VEC_LEVEL);
	RT_EXPECT(quiet() == 2, "level: EOI with the line low delivered");
	/* Masked while high, unmasked: a level interrupt is sampled. */
	lower_at = 0; /* from now on every handler lowers the line */
	rt_ioapic_mask(PIN, true);
	line_high();
	RT_EXPECT(quiet() == 2, "level: masked pin delivered");
	rt_ioapic_mask(PIN, false);
	RT_EXPECT(settle(3) == 3 && quiet() == 3, "level: unmasking a high line gave %u interrupts",
	          hits - 2);
	RT_EXPECT(!(rt_ioapic_read(RT_IOAPIC_REG_RTE(PIN)) & RT_RTE_REMOTE_IRR),
	          "level: Remote IRR still set after the EOI");
	line_low();
	rt_ioapic_route(PIN, VEC, 0, RT_RTE_MASKED);
	RT_GROUP_OK("ioapic-level");

	/* ---- another vCPU ---- */
	if (cpus >= 2) {
		ap_setup(0);
		if (!rt_start_ap(1, ap_setup, 5000000))
			rt_fail("APIC ID 1 did not start");
		hits = 0;
		rt_ioapic_route(PIN, VEC_AP, 1, 0);
		edge();
		RT_EXPECT(settle(1) == 1 && quiet() == 1, "to APIC 1: %u interrupts", hits);
		RT_EXPECT(last_cpu == 1 && last_vector == VEC_AP, "to APIC 1: vector %x on cpu %u",
		          last_vector, last_cpu);
		rt_ioapic_route(PIN, VEC_AP, 0, 0);
		edge();
		RT_EXPECT(settle(2) == 2 && last_cpu == 0, "back to APIC 0: cpu %u", last_cpu);
		/* Logical flat: destination bit 1 is APIC ID 1, bit 0 the BSP. */
		rt_ioapic_route(PIN, VEC_AP, 0x02, RT_RTE_LOGICAL);
		edge();
		RT_EXPECT(settle(3) == 3 && last_cpu == 1, "logical 0x02: cpu %u", last_cpu);
		rt_ioapic_route(PIN, VEC_AP, 0x01, RT_RTE_LOGICAL);
		edge();
		RT_EXPECT(settle(4) == 4 && last_cpu == 0, "logical 0x01: cpu %u", last_cpu);
		rt_ioapic_route(PIN, VEC, 0, RT_RTE_MASKED);
		RT_GROUP_OK("ioapic-other-cpu");
	}
	RT_EXPECT(other_vectors == 0 && rt_spurious == 0, "%u stray interrupts",
	          other_vectors + rt_spurious);
	rt_pass();
}
