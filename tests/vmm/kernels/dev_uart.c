/* dev_uart.c: the 16550A UART (COM1) from the guest side: scratch, line
 * control and divisor latch, line and modem status, the THRE and
 * received-data interrupts through I/O APIC pin 4 to this CPU's IDT, and
 * loopback mode. With "rx=1" on the command line it only waits for the
 * bytes "Hi!" from the host (the script pipes them into zhv's stdin) and
 * takes them with the received-data interrupt. */
#include "apic.h"
#include "group.h"

#define COM1 RT_COM1
#define RBR 0
#define THR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define LCR_DLAB 0x80
#define LCR_8N1 0x03
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define UART_PIN 4 /* ISA IRQ 4 */
#define VEC_UART 0x34

/* Inside DLAB or loopback, rt_fail's message would land in the divisor
 * latch or the receiver: U_EXPECT puts the UART back first (the message
 * arguments must not read UART registers: they are evaluated after). */
static void uart_restore(void)
{
	outb(COM1 + LCR, LCR_8N1);
	outb(COM1 + MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
	outb(COM1 + IER, 0);
}
#define U_EXPECT(cond, ...)                                                       \
	do {                                                                          \
		if (!(cond)) {                                                            \
			uart_restore();                                                       \
			rt_printf("\n%s:%d: %s\n", __FILE__, __LINE__, #cond);               \
			rt_fail(__VA_ARGS__);                                                 \
		}                                                                         \
	} while (0)

static volatile uint32_t irqs;
static volatile uint8_t iir_seen[64];
static volatile bool read_iir_in_handler = true;
static volatile bool drain_rx_in_handler;
static volatile uint8_t rx_buf[64];
static volatile uint32_t rx_len;

static void on_uart(struct rt_frame *f)
{
	(void)f;
	uint32_t n = irqs;
	if (read_iir_in_handler) {
		uint8_t iir = inb(COM1 + IIR);
		if (n < sizeof(iir_seen))
			iir_seen[n] = iir;
	}
	if (drain_rx_in_handler) {
		while (inb(COM1 + LSR) & LSR_DR) {
			uint8_t c = inb(COM1 + RBR);
			if (rx_len < sizeof(rx_buf))
				rx_buf[rx_len] = c;
			rx_len++;
		}
	}
	irqs = n + 1;
	rt_lapic_eoi();
}

/* Interrupts from COM1 reach this CPU at the access that raised them
 * (before its next instruction), so 20 ms is plenty, also before
 * concluding that no more come. */
static uint32_t settle(uint32_t want)
{
	rt_wait_count(&irqs, want, 20000);
	return irqs;
}

static void irq_setup(void)
{
	rt_lapic_enable();
	rt_set_handler(VEC_UART, on_uart);
	rt_ioapic_route(UART_PIN, VEC_UART, 0, 0); /* edge, physical APIC 0, unmasked */
	rt_sti();
}

static int rx_mode(void)
{
	static const char want[] = "Hi!";
	outb(COM1 + FCR, 0);
	drain_rx_in_handler = true;
	irq_setup();
	outb(COM1 + IER, IER_RDI); /* bytes that came already raise it now */
	uint32_t t0 = rt_pmtimer();
	while (rx_len < 3 && rt_us_since(t0) < 20000000)
		rt_pause();
	outb(COM1 + IER, 0);
	RT_EXPECT(rx_len == 3, "received %u bytes from the host, want 3", rx_len);
	for (unsigned i = 0; i < 3; i++)
		RT_EXPECT(rx_buf[i] == (uint8_t)want[i], "byte %u is %x, want %x", i, rx_buf[i],
		          (uint8_t)want[i]);
	RT_EXPECT(irqs >= 1, "no received-data interrupt");
	RT_EXPECT(iir_seen[0] == IIR_RDI, "the interrupt's IIR is %x, want 0x04", iir_seen[0]);
	RT_EXPECT(!(inb(COM1 + LSR) & LSR_DR), "LSR.DR still set after draining");
	rt_printf("uart: got 'Hi!' from the host in %u interrupt(s)\n", irqs);
	RT_GROUP_OK("uart-rx-host");
	rt_pass();
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	if (rt_cmdline_uint("rx", 0))
		return rx_mode();

	/* ---- scratch ---- */
	static const uint8_t pat[] = {0x00, 0x55, 0xAA, 0xFF, 0x3C};
	for (unsigned i = 0; i < sizeof(pat); i++) {
		outb(COM1 + SCR, pat[i]);
		uint8_t v = inb(COM1 + SCR);
		RT_EXPECT(v == pat[i], "SCR reads %x after writing %x", v, pat[i]);
	}
	RT_GROUP_OK("uart-scratch");

	/* ---- LCR and the divisor latch ---- */
	uint8_t v1 = inb(COM1 + LCR), v2;
	RT_EXPECT(v1 == LCR_8N1, "LCR %x at boot, want 8N1 (0x03)", v1);
	outb(COM1 + IER, 0);
	outb(COM1 + LCR, LCR_DLAB | LCR_8N1);
	v1 = inb(COM1 + LCR);
	U_EXPECT(v1 == (LCR_DLAB | LCR_8N1), "LCR with DLAB reads %x", v1);
	outb(COM1 + DLL, 0x0C); /* 9600 baud */
	outb(COM1 + DLM, 0x00);
	v1 = inb(COM1 + DLL);
	v2 = inb(COM1 + DLM);
	U_EXPECT(v1 == 0x0C && v2 == 0x00, "divisor 12 reads %x/%x", v1, v2);
	outb(COM1 + DLL, 0x34);
	outb(COM1 + DLM, 0x12);
	v1 = inb(COM1 + DLL);
	v2 = inb(COM1 + DLM);
	U_EXPECT(v1 == 0x34 && v2 == 0x12, "divisor 0x1234 reads %x/%x", v1, v2);
	outb(COM1 + LCR, 0x1B); /* DLAB off, 8 bits, even parity */
	v1 = inb(COM1 + LCR);
	U_EXPECT(v1 == 0x1B, "LCR reads %x after writing 0x1b", v1);
	v1 = inb(COM1 + IER);
	U_EXPECT(v1 == 0, "with DLAB clear, offset 1 reads %x (IER 0)", v1);
	outb(COM1 + IER, 0x00); /* must not touch DLM */
	outb(COM1 + LCR, LCR_DLAB | LCR_8N1);
	v1 = inb(COM1 + DLM);
	v2 = inb(COM1 + DLL);
	U_EXPECT(v1 == 0x12 && v2 == 0x34, "the divisor changed to %x/%x behind DLAB", v1, v2);
	outb(COM1 + DLL, 0x01); /* 115200 baud */
	outb(COM1 + DLM, 0x00);
	outb(COM1 + LCR, LCR_8N1);
	RT_EXPECT(inb(COM1 + SCR) == 0x3C, "SCR lost across DLAB switching");
	RT_GROUP_OK("uart-dlab");

	/* ---- LSR, IER, FCR/IIR, MSR ---- */
	uint8_t iir, lsr = inb(COM1 + LSR);
	RT_EXPECT((lsr & (LSR_THRE | LSR_TEMT)) == (LSR_THRE | LSR_TEMT) && !(lsr & LSR_DR),
	          "idle LSR %x, want THRE|TEMT and no DR", lsr);
	outb(COM1 + FCR, 0);
	outb(COM1 + IER, 0xFF);
	RT_EXPECT(inb(COM1 + IER) == 0x0F, "IER reads %x after 0xff, want 0x0f", inb(COM1 + IER));
	outb(COM1 + IER, 0);
	(void)inb(COM1 + IIR); /* drop the THRE that enabling it raised */
	RT_EXPECT(inb(COM1 + IIR) == IIR_NONE, "IIR %x with IER 0", inb(COM1 + IIR));
	/* (The IOAPIC pin is still masked here: IIR alone.) Enabling THRI
	 * with THR empty makes THRE pending; reading IIR consumes it. */
	outb(COM1 + IER, IER_THRI);
	iir = inb(COM1 + IIR);
	RT_EXPECT(iir == IIR_THRI, "IIR %x after enabling THRI, want 0x02 (THRE pending)", iir);
	iir = inb(COM1 + IIR);
	RT_EXPECT(iir == IIR_NONE, "IIR %x on the second read, want 0x01", iir);
	outb(COM1 + IER, 0);
	outb(COM1 + FCR, 0x07); /* FIFOs on, both cleared */
	RT_EXPECT((inb(COM1 + IIR) & 0xC0) == 0xC0, "FIFO bits of IIR clear with FIFOs on");
	outb(COM1 + FCR, 0);
	iir = inb(COM1 + IIR);
	RT_EXPECT(iir == IIR_NONE, "IIR %x with nothing pending and FIFOs off, want 0x01", iir);
	uint8_t msr = inb(COM1 + MSR);
	RT_EXPECT(msr == 0xB0, "MSR %x, want DCD|DSR|CTS (0xb0)", msr);
	RT_GROUP_OK("uart-lsr-ier");

	/* ---- THRE interrupt through the IOAPIC ---- */
	irq_setup();
	outb(COM1 + IER, IER_THRI);
	RT_EXPECT(settle(1) == 1, "enabling THRI gave %u interrupts", irqs);
	RT_EXPECT(iir_seen[0] == IIR_THRI, "the handler's IIR is %x, want 0x02", iir_seen[0]);
	RT_EXPECT(inb(COM1 + IIR) == IIR_NONE, "THRE still pending after the IIR read");
	RT_EXPECT(settle(2) == 1, "a THRE interrupt repeated without a new THR write");
	/* Each transmitted byte empties THR again: one THRE interrupt each. */
	static const char line[] = "uart: THRE interrupt per byte\n";
	rt_printf("%s", line);
	uint32_t want = 1 + sizeof(line) - 1;
	RT_EXPECT(settle(want) == want, "%u THRE interrupts for %u bytes", irqs - 1,
	          (unsigned)sizeof(line) - 1);
	for (unsigned i = 1; i < want && i < sizeof(iir_seen); i++)
		RT_EXPECT(iir_seen[i] == IIR_THRI, "interrupt %u: IIR %x", i, iir_seen[i]);
	RT_GROUP_OK("uart-thre-irq");

	/* A handler that only writes THR (no IIR read) still gets the next
	 * THRE: writing THR clears the interrupt, the byte leaving sets it
	 * again (PC16550D: "THRE ... reset by ... writing into the THR"). */
	read_iir_in_handler = false;
	irqs = 0;
	outb(COM1 + IER, 0);
	outb(COM1 + IER, IER_THRI);
	RT_EXPECT(settle(1) == 1, "re-enabling THRI gave %u interrupts", irqs);
	for (uint32_t i = 1; i <= 3; i++) {
		outb(COM1 + THR, (uint8_t)"abc"[i - 1]);
		RT_EXPECT(settle(i + 1) == i + 1, "THR write %u without an IIR read: %u interrupts",
		          i, irqs);
	}
	outb(COM1 + IER, 0);
	read_iir_in_handler = true;
	(void)inb(COM1 + IIR);
	rt_printf("\n");
	RT_GROUP_OK("uart-thre-rearm");

	/* ---- loopback ---- */
	outb(COM1 + MCR, MCR_LOOP | MCR_DTR | MCR_RTS);
	uint8_t msr_l = inb(COM1 + MSR);
	U_EXPECT((msr_l & 0xF0) == 0x30, "loopback DTR|RTS: MSR %x, want DSR|CTS", msr_l);
	outb(COM1 + MCR, MCR_LOOP | MCR_OUT1 | MCR_OUT2);
	msr_l = inb(COM1 + MSR);
	U_EXPECT((msr_l & 0xF0) == 0xC0, "loopback OUT1|OUT2: MSR %x, want DCD|RI", msr_l);
	U_EXPECT(!(inb(COM1 + LSR) & LSR_DR), "DR set before sending");
	outb(COM1 + THR, 0xA5);
	lsr = inb(COM1 + LSR);
	U_EXPECT(lsr & LSR_DR, "loopback: no DR after sending (LSR %x)", lsr);
	uint8_t got = inb(COM1 + RBR);
	U_EXPECT(got == 0xA5, "loopback: read %x, sent 0xa5", got);
	U_EXPECT(!(inb(COM1 + LSR) & LSR_DR), "loopback: DR still set after the read");
	/* A string comes back in order and never reaches the host. */
	static const char mark[] = "LOOPBACK-ONLY";
	for (unsigned i = 0; mark[i]; i++)
		outb(COM1 + THR, (uint8_t)mark[i]);
	for (unsigned i = 0; mark[i]; i++) {
		U_EXPECT(inb(COM1 + LSR) & LSR_DR, "loopback: byte %u missing", i);
		got = inb(COM1 + RBR);
		U_EXPECT(got == (uint8_t)mark[i], "loopback: byte %u is %x", i, got);
	}
	/* IIR priority (datasheet Table 4): received data before THRE. */
	rt_cli();
	outb(COM1 + IER, IER_RDI | IER_THRI);
	outb(COM1 + THR, 0x11);
	iir = inb(COM1 + IIR);
	U_EXPECT(iir == IIR_RDI, "data and THRE pending: IIR %x, want 0x04 first", iir);
	U_EXPECT(inb(COM1 + RBR) == 0x11, "loopback byte 0x11 lost");
	iir = inb(COM1 + IIR);
	U_EXPECT(iir == IIR_THRI, "after the read: IIR %x, want 0x02", iir);
	U_EXPECT(inb(COM1 + IIR) == IIR_NONE, "THRE not consumed by the IIR read");
	outb(COM1 + IER, 0);
	rt_sti();
	settle(1000); /* let the interrupts raised meanwhile come and go */
	/* The received-data interrupt in loopback. */
	irqs = 0;
	drain_rx_in_handler = true;
	outb(COM1 + IER, IER_RDI);
	U_EXPECT(settle(1) == 0, "RDI interrupt with nothing received");
	outb(COM1 + THR, 0x5A);
	U_EXPECT(settle(1) == 1, "loopback: %u received-data interrupts", irqs);
	U_EXPECT(iir_seen[0] == IIR_RDI, "loopback: the handler's IIR is %x", iir_seen[0]);
	U_EXPECT(rx_len == 1 && rx_buf[0] == 0x5A, "loopback: handler read %u bytes (%x)",
	          rx_len, rx_buf[0]);
	outb(COM1 + IER, 0);
	drain_rx_in_handler = false;
	outb(COM1 + MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
	msr_l = inb(COM1 + MSR);
	U_EXPECT((msr_l & 0xF0) == 0xB0, "out of loopback: MSR %x", msr_l);
	RT_GROUP_OK("uart-loopback");
	rt_pass();
}
