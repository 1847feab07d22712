/* dev_pit.c: the 8254 PIT from the guest side. Channel 0 in mode 2 at
 * about 1 kHz interrupts through ISA IRQ 0, which the MADT overrides to
 * I/O APIC pin 2 (pin 0 must stay silent); then a mode 0 one-shot; the
 * read-back command; channel 2 gated and observed through port 0x61.
 * Times come from the ACPI PM timer, and bounds are loose: the host is
 * shared. */
#include "apic.h"
#include "group.h"

#define PIT_CH0 0x40
#define PIT_CH2 0x42
#define PIT_CMD 0x43
#define PORT_B 0x61
#define PORT_B_GATE2 0x01
#define PORT_B_SPKR 0x02
#define PORT_B_REFRESH 0x10
#define PORT_B_OUT2 0x20
#define PIT_HZ 1193182u

#define VEC_TIMER 0x30
#define VEC_PIN0 0x3F

static volatile uint32_t ticks, pin0_hits;

static void on_timer(struct rt_frame *f)
{
	(void)f;
	ticks++;
	rt_lapic_eoi();
}

static void on_pin0(struct rt_frame *f)
{
	(void)f;
	pin0_hits++;
	rt_lapic_eoi();
}

static void pit_program(unsigned ch, unsigned mode, uint16_t count)
{
	outb(PIT_CMD, (uint8_t)(ch << 6 | 0x30 | mode << 1)); /* LSB then MSB, binary */
	outb((uint16_t)(PIT_CH0 + ch), (uint8_t)count);
	outb((uint16_t)(PIT_CH0 + ch), (uint8_t)(count >> 8));
}

static uint16_t pit_latch(unsigned ch)
{
	outb(PIT_CMD, (uint8_t)(ch << 6)); /* counter latch */
	uint8_t lo = inb((uint16_t)(PIT_CH0 + ch));
	uint8_t hi = inb((uint16_t)(PIT_CH0 + ch));
	return (uint16_t)(hi << 8 | lo);
}

static uint8_t pit_status(unsigned ch)
{
	outb(PIT_CMD, (uint8_t)(0xE0 | 2u << ch)); /* read-back: status only */
	return inb((uint16_t)(PIT_CH0 + ch));
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	rt_lapic_enable();
	rt_set_handler(VEC_TIMER, on_timer);
	rt_set_handler(VEC_PIN0, on_pin0);
	rt_ioapic_route(2, VEC_TIMER, 0, 0);
	rt_ioapic_route(0, VEC_PIN0, 0, 0);
	rt_sti();

	/* ---- channel 0, mode 2, 1 kHz ---- */
	const uint16_t khz = (PIT_HZ + 500) / 1000; /* 1193 */
	uint32_t t0 = rt_pmtimer();
	pit_program(0, 2, khz);
	bool got = rt_wait_count(&ticks, 20, 5000000);
	uint32_t us = rt_us_since(t0);
	RT_EXPECT(got, "mode 2: %u ticks in %u ms, want 20", ticks, us / 1000);
	/* The 20th period ends at 20 ms; missed periods are dropped, never
	 * replayed, so it cannot come much sooner. */
	RT_EXPECT(us >= 15000, "mode 2: 20 ticks after only %u us (too fast)", us);
	RT_EXPECT(pin0_hits == 0, "ISA IRQ 0 reached pin 0 (%u times), not only pin 2", pin0_hits);
	uint16_t c = pit_latch(0);
	RT_EXPECT(c >= 1 && c <= khz, "mode 2: latched count %u outside 1..%u", c, khz);
	uint8_t st = pit_status(0);
	RT_EXPECT((st & 0x7F) == 0x34, "mode 2: read-back status %x, want 0x34 (+OUT)", st);
	rt_printf("pit: 20 ticks in %u ms\n", us / 1000);
	RT_GROUP_OK("pit-mode2-irq0");

	/* ---- channel 0, mode 0 one-shot (10 ms) ---- */
	outb(PIT_CMD, 0x30); /* mode 0: OUT low, counting stops until a count */
	rt_delay_us(20000);  /* a tick already on its way may still land */
	ticks = 0;
	rt_delay_us(30000);
	RT_EXPECT(ticks == 0, "%u ticks after the control word stopped channel 0", ticks);
	st = pit_status(0);
	RT_EXPECT((st & 0xC0) == 0x40, "mode 0 before the count: status %x (OUT low, null)", st);
	const uint16_t ten_ms = (uint16_t)(PIT_HZ / 100);
	t0 = rt_pmtimer();
	outb(PIT_CH0, (uint8_t)ten_ms);
	outb(PIT_CH0, (uint8_t)(ten_ms >> 8));
	got = rt_wait_count(&ticks, 1, 5000000);
	us = rt_us_since(t0);
	RT_EXPECT(got, "mode 0: no interrupt in 5 s");
	RT_EXPECT(us >= 7000, "mode 0: the 10 ms one-shot fired after %u us", us);
	rt_delay_us(60000);
	RT_EXPECT(ticks == 1, "mode 0: %u interrupts from one count", ticks);
	st = pit_status(0);
	RT_EXPECT((st & 0xFF) == 0xB0, "mode 0 after terminal count: status %x, want 0xb0", st);
	outb(PIT_CMD, 0x30); /* stop channel 0 */
	rt_printf("pit: one-shot after %u us\n", us);
	RT_GROUP_OK("pit-mode0-oneshot");

	/* ---- channel 2 through port 0x61 ---- */
	outb(PORT_B, 0);
	RT_EXPECT((inb(PORT_B) & 0x0F) == 0, "port 0x61 bits 3-0 read %x", inb(PORT_B) & 0x0F);
	pit_program(2, 0, ten_ms);
	RT_EXPECT(!(inb(PORT_B) & PORT_B_OUT2), "channel 2 OUT high before its gate opened");
	c = pit_latch(2);
	RT_EXPECT(c == ten_ms, "gate low: channel 2 counted (%u, loaded %u)", c, ten_ms);
	rt_delay_us(3000);
	RT_EXPECT(pit_latch(2) == ten_ms && !(inb(PORT_B) & PORT_B_OUT2),
	          "gate low: channel 2 counts");
	t0 = rt_pmtimer();
	outb(PORT_B, PORT_B_GATE2);
	RT_EXPECT((inb(PORT_B) & 0x0F) == PORT_B_GATE2, "port 0x61 bits 3-0 read %x",
	          inb(PORT_B) & 0x0F);
	c = pit_latch(2);
	RT_EXPECT(c <= ten_ms, "gate high: count %u", c);
	while (!(inb(PORT_B) & PORT_B_OUT2) && rt_us_since(t0) < 2000000)
		rt_pause();
	us = rt_us_since(t0);
	RT_EXPECT(inb(PORT_B) & PORT_B_OUT2, "channel 2 OUT not high 2 s after the gate");
	RT_EXPECT(us >= 7000, "channel 2 reached terminal count after %u us, loaded 10 ms", us);
	/* The refresh bit toggles every 15 us. */
	uint8_t seen = 0;
	for (unsigned i = 0; i < 2000 && seen != 3; i++)
		seen |= (inb(PORT_B) & PORT_B_REFRESH) ? 2 : 1;
	RT_EXPECT(seen == 3, "port 0x61 refresh bit never toggled");
	/* Mode 3, 10 ms square wave: OUT2 both ways within 50 ms. */
	pit_program(2, 3, ten_ms);
	seen = 0;
	t0 = rt_pmtimer();
	while (seen != 3 && rt_us_since(t0) < 2000000)
		seen |= (inb(PORT_B) & PORT_B_OUT2) ? 2 : 1;
	RT_EXPECT(seen == 3, "mode 3: OUT2 did not toggle");
	outb(PORT_B, 0);
	rt_printf("pit: channel 2 terminal count after %u us\n", us);
	RT_GROUP_OK("pit-channel2-port61");
	rt_pass();
}
