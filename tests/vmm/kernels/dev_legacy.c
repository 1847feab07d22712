/* dev_legacy.c: the rest of the PC from the guest side: the i8042
 * (controller commands, keyboard answers, IRQ 1 and IRQ 12 through the
 * I/O APIC), the 8259A pair (initialization, masks, IRR/ISR, ELCR), the
 * fixed legacy ports, the PCI host bridge and configuration mechanism
 * (including BAR sizing and 0xcf9), and a virtio-rng request. */
#include "apic.h"
#include "group.h"
#include "pci.h"
#include "virtio.h"

#define KBD_DATA 0x60
#define KBD_CMD 0x64
#define STR_OBF 0x01
#define STR_SYS 0x04
#define STR_AUXDATA 0x20
#define VEC_KBD 0x21
#define VEC_AUX 0x2C

static volatile uint32_t kbd_irqs, aux_irqs;

static void on_kbd(struct rt_frame *f)
{
	(void)f;
	kbd_irqs++;
	rt_lapic_eoi();
}

static void on_aux(struct rt_frame *f)
{
	(void)f;
	aux_irqs++;
	rt_lapic_eoi();
}

/* The next byte of the output buffer, or -1 if none comes. */
static int kbd_read(void)
{
	for (unsigned i = 0; i < 100; i++)
		if (inb(KBD_CMD) & STR_OBF)
			return inb(KBD_DATA);
	return -1;
}

static void kbd_flush(void)
{
	while (inb(KBD_CMD) & STR_OBF)
		(void)inb(KBD_DATA);
}

static void i8042_tests(void)
{
	kbd_flush();
	uint8_t st = inb(KBD_CMD);
	RT_EXPECT(!(st & STR_OBF) && (st & STR_SYS), "status %x: want SYS, empty buffer", st);
	outb(KBD_CMD, 0x20); /* read the command byte */
	int ctr = kbd_read();
	RT_EXPECT(ctr == 0x65, "command byte %x, want 0x65 (xlate, aux off, sys, kbd int)", ctr);
	outb(KBD_CMD, 0xAA);
	RT_EXPECT(kbd_read() == 0x55, "controller self-test did not answer 0x55");
	outb(KBD_CMD, 0xAB);
	RT_EXPECT(kbd_read() == 0x00, "keyboard interface test did not answer 0");
	outb(KBD_CMD, 0xA9);
	RT_EXPECT(kbd_read() == 0x02, "AUX interface test: want 0x02 (no mouse)");
	outb(KBD_CMD, 0xD0);
	int outp = kbd_read();
	RT_EXPECT(outp >= 0 && (outp & 0x03) == 0x03, "output port %x: reset and A20 high", outp);
	/* Keyboard commands through the data port. */
	outb(KBD_DATA, 0xEE);
	RT_EXPECT(kbd_read() == 0xEE, "keyboard echo");
	outb(KBD_DATA, 0xFF);
	RT_EXPECT(kbd_read() == 0xFA && kbd_read() == 0xAA, "keyboard reset: want FA AA");
	outb(KBD_DATA, 0xF2);
	int a = kbd_read(), b = kbd_read(), c = kbd_read();
	RT_EXPECT(a == 0xFA && b == 0xAB && c == 0x41, "keyboard ID %x %x %x, want FA AB 41", a, b,
	          c);
	RT_EXPECT(kbd_read() < 0, "stray byte after the ID");
	/* Write the command byte and read it back. */
	outb(KBD_CMD, 0x60);
	outb(KBD_DATA, 0x47);
	outb(KBD_CMD, 0x20);
	RT_EXPECT(kbd_read() == 0x47, "command byte did not read back 0x47");

	/* IRQ 1 and IRQ 12 with the controller's loop-back commands. */
	rt_set_handler(VEC_KBD, on_kbd);
	rt_set_handler(VEC_AUX, on_aux);
	rt_ioapic_route(1, VEC_KBD, 0, 0);
	rt_ioapic_route(12, VEC_AUX, 0, 0);
	rt_sti();
	outb(KBD_CMD, 0x60);
	outb(KBD_DATA, 0x45); /* xlate, sys, keyboard interrupt; no AUX interrupt */
	outb(KBD_CMD, 0xD2);
	outb(KBD_DATA, 0x1C);
	RT_EXPECT(rt_wait_count(&kbd_irqs, 1, 100000), "no IRQ 1 for a keyboard byte");
	st = inb(KBD_CMD);
	RT_EXPECT((st & (STR_OBF | STR_AUXDATA)) == STR_OBF, "status %x for a keyboard byte", st);
	RT_EXPECT(inb(KBD_DATA) == 0x1C, "keyboard byte lost");
	outb(KBD_CMD, 0x60);
	outb(KBD_DATA, 0x44); /* keyboard interrupt off */
	outb(KBD_CMD, 0xD2);
	outb(KBD_DATA, 0x2D);
	rt_delay_us(10000);
	RT_EXPECT(kbd_irqs == 1, "IRQ 1 with the keyboard interrupt disabled");
	kbd_flush();
	outb(KBD_CMD, 0x60);
	outb(KBD_DATA, 0x45 | 0x02); /* AUX interrupt on */
	outb(KBD_CMD, 0xD3);
	outb(KBD_DATA, 0x08);
	RT_EXPECT(rt_wait_count(&aux_irqs, 1, 100000), "no IRQ 12 for an AUX byte");
	st = inb(KBD_CMD);
	RT_EXPECT((st & (STR_OBF | STR_AUXDATA)) == (STR_OBF | STR_AUXDATA),
	          "status %x for an AUX byte", st);
	RT_EXPECT(inb(KBD_DATA) == 0x08, "AUX byte lost");
	RT_EXPECT(kbd_irqs == 1, "IRQ 1 for an AUX byte");
	rt_cli();
	rt_ioapic_mask(1, true);
	rt_ioapic_mask(12, true);
	outb(KBD_CMD, 0x60);
	outb(KBD_DATA, 0x65);
	kbd_flush();
}

static void pic_tests(void)
{
	RT_EXPECT(inb(0x21) == 0xFF && inb(0xA1) == 0xFF, "PIC masks %x %x at boot, want ff ff",
	          inb(0x21), inb(0xA1));
	/* The usual remap: ICW1-ICW4 to both chips. */
	outb(0x20, 0x11);
	outb(0xA0, 0x11);
	outb(0x21, 0x20);
	outb(0xA1, 0x28);
	outb(0x21, 0x04);
	outb(0xA1, 0x02);
	outb(0x21, 0x01);
	outb(0xA1, 0x01);
	RT_EXPECT(inb(0x21) == 0 && inb(0xA1) == 0, "masks %x %x after ICW1 (want 0)", inb(0x21),
	          inb(0xA1));
	outb(0x21, 0xFB);
	outb(0xA1, 0xA5);
	RT_EXPECT(inb(0x21) == 0xFB && inb(0xA1) == 0xA5, "masks read %x %x", inb(0x21), inb(0xA1));
	outb(0x20, 0x0A); /* OCW3: read IRR */
	RT_EXPECT(inb(0x20) == 0, "IRR %x", inb(0x20));
	outb(0x20, 0x0B); /* OCW3: read ISR */
	RT_EXPECT(inb(0x20) == 0, "ISR %x", inb(0x20));
	outb(0x20, 0x20); /* non-specific EOI with nothing in service */
	RT_EXPECT(inb(0x21) == 0xFB, "EOI changed the mask");
	/* ELCR: IRQ 0, 1, 2, 8 and 13 are always edge. */
	outb(0x4D0, 0xFF);
	outb(0x4D1, 0xFF);
	RT_EXPECT(inb(0x4D0) == 0xF8 && inb(0x4D1) == 0xDE, "ELCR reads %x %x, want f8 de",
	          inb(0x4D0), inb(0x4D1));
	outb(0x4D0, 0);
	outb(0x4D1, 0);
	outb(0x21, 0xFF);
	outb(0xA1, 0xFF);
}

static void ports_tests(void)
{
	RT_EXPECT(inb(0x92) == 0x02, "port 0x92 reads %x, want A20 on (0x02)", inb(0x92));
	outb(0x80, 0x42); /* POST code / io_delay */
	RT_EXPECT(inb(0x80) == 0xFF, "port 0x80 reads %x", inb(0x80));
	RT_EXPECT(inb(0x08) == 0xFF && inb(0xC0) == 0xFF, "DMA controller ports");
	RT_EXPECT(inb(0x1F7) == 0xFF && inb(0x177) == 0xFF, "IDE status ports are not empty");
	RT_EXPECT(inb(0xF4) == 0xFF, "reading isa-debug-exit: %x", inb(0xF4));
}

static void pci_tests(void)
{
	uint32_t id = rt_pci_read32(0, 0);
	RT_EXPECT(id == 0x12378086u, "00:00.0 is %x, want the i440FX 8086:1237", id);
	RT_EXPECT(rt_pci_read32(0, 0x08) >> 8 == 0x060000, "host bridge class %x",
	          rt_pci_read32(0, 0x08) >> 8);
	RT_EXPECT(rt_pci_read16(0, 0x00) == 0x8086 && rt_pci_read16(0, 0x02) == 0x1237 &&
	              rt_pci_read8(0, 0x0B) == 0x06,
	          "narrow configuration reads disagree");
	RT_EXPECT(rt_pci_read32(31, 0) == 0xFFFFFFFFu, "empty slot 31 reads %x",
	          rt_pci_read32(31, 0));
	outl(0xCF8, 0x80000100u); /* 00:00.1: no function 1 */
	RT_EXPECT(inl(0xCFC) == 0xFFFFFFFFu, "function 1 of the host bridge answers");
	outl(0xCF8, 0x80010000u); /* bus 1 does not exist */
	RT_EXPECT(inl(0xCFC) == 0xFFFFFFFFu, "bus 1 answers");
	outl(0xCF8, 0x80000003u);
	RT_EXPECT(inl(0xCF8) == 0x80000000u, "CONFIG_ADDRESS reads %x (bits 1-0 are 0)",
	          inl(0xCF8));
	outl(0xCF8, 0);
	RT_EXPECT(inb(0xCF9) == 0, "reset control register reads %x", inb(0xCF9));
	outb(0xCF9, 0x02); /* SYS_RST alone: no reset */
	RT_EXPECT(inb(0xCF9) == 0x02, "reset control register does not keep SYS_RST");
	outb(0xCF9, 0);

	/* BAR sizing on the virtio-rng function. */
	int slot = rt_pci_find(0x1AF4, RT_VIRTIO_PCI_DEVICE(RT_VIRTIO_ID_RNG), 0);
	RT_EXPECT(slot > 0, "no virtio-rng on bus 0");
	uint32_t bar = rt_pci_read32((unsigned)slot, 0x10);
	RT_EXPECT(bar && !(bar & 1), "BAR0 %x is not a memory BAR", bar);
	uint16_t cmd = rt_pci_read16((unsigned)slot, 0x04);
	rt_pci_write16((unsigned)slot, 0x04, cmd & (uint16_t)~RT_PCI_CMD_MEMORY);
	rt_pci_write32((unsigned)slot, 0x10, 0xFFFFFFFFu);
	uint32_t mask = rt_pci_read32((unsigned)slot, 0x10);
	rt_pci_write32((unsigned)slot, 0x10, bar);
	rt_pci_write16((unsigned)slot, 0x04, cmd);
	RT_EXPECT((mask & ~0xFu) == 0xFFFFC000u && (mask & 0xF) == (bar & 0xF),
	          "BAR0 size mask %x, want a 16 KiB memory BAR", mask);
	RT_EXPECT(rt_pci_read32((unsigned)slot, 0x10) == bar, "BAR0 not restored");
	rt_pci_write16((unsigned)slot, 0x00, 0x1234); /* IDs are read-only */
	RT_EXPECT(rt_pci_read16((unsigned)slot, 0x00) == 0x1AF4, "vendor ID writable");
}

static uint8_t rng_qmem[RT_VIRTQ_MEM_SIZE(8)] __attribute__((aligned(4096)));
static uint8_t rng_buf[32];

static void rng_tests(void)
{
	struct rt_virtio_dev d;
	struct rt_virtq q;
	RT_EXPECT(rt_virtio_find(RT_VIRTIO_ID_RNG, 0, &d), "virtio-rng: no device");
	RT_EXPECT(rt_virtio_init(&d, 0) == 0, "virtio-rng: features refused");
	RT_EXPECT(rt_virtq_setup(&d, &q, 0, 8, rng_qmem) == 0, "virtio-rng: no queue");
	rt_virtio_driver_ok(&d);
	struct rt_vbuf in = {rng_buf, sizeof(rng_buf)};
	int head = rt_virtq_add(&q, NULL, 0, &in, 1);
	rt_virtq_kick(&q);
	uint32_t id, len;
	RT_EXPECT(rt_virtq_wait(&q, &id, &len, 2000000), "virtio-rng: no answer");
	RT_EXPECT((int)id == head && len > 0 && len <= sizeof(rng_buf), "virtio-rng: id %u len %u",
	          id, len);
	unsigned zero = 0;
	for (unsigned i = 0; i < len; i++)
		zero += rng_buf[i] == 0;
	RT_EXPECT(zero < len, "virtio-rng: %u zero bytes", len);
	rt_virtio_reset(&d);
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	rt_lapic_enable();
	i8042_tests();
	RT_GROUP_OK("i8042");
	pic_tests();
	RT_GROUP_OK("pic");
	ports_tests();
	RT_GROUP_OK("legacy-ports");
	pci_tests();
	RT_GROUP_OK("pci-host");
	rng_tests();
	RT_GROUP_OK("virtio-rng");
	rt_pass();
}
