/* testdev.c: QEMU's test devices (--test-device pc-testdev, pci-testdev)
 * from the guest side, used the way kvm-unit-tests uses them: the 0xe0
 * register (with "rep outsb" as its emulator test does), the flush-page
 * port, the 64 KiB MMIO window at 0xff000000, ISA interrupt lines raised
 * and lowered through ports 0x2000 + n and taken through the I/O APIC
 * (edge and level, as its ioapic test does), and pci-testdev found by its
 * IDs in PCI configuration space, its six tests run through both BARs
 * counting hits (lib/pci-testdev.c's pci_testdev()). Exits through
 * isa-debug-exit (--debug-exit) with RT_PASS or RT_FAIL.
 *
 * Command line: pc=0 / pci=0 (default 1): the run has no such device, and
 * the kernel checks that its ports, window or PCI function are absent
 * (unclaimed ports and MMIO read all-ones). */
#include "apic.h"
#include "group.h"
#include "pci.h"

#define TD_IOPORT 0xE0
#define TD_FLUSH 0xE4
#define TD_IOPORT_BYTE 0xE8
#define TD_IRQ_BASE 0x2000
#define TD_IOMEM 0xFF000000u
#define TD_IOMEM_LEN 0x10000u

#define PIN_EDGE 14 /* lines ioapic.c of kvm-unit-tests uses too */
#define PIN_LEVEL 15
#define VEC_EDGE 0x60
#define VEC_LEVEL 0x61

static volatile uint32_t hits, last_vector, other_vectors;
static volatile uint32_t lower_at; /* level handler lowers the line from this hit on */

/* kvm-unit-tests' set_irq_line(): one byte to 0x2000 + line. */
static void set_irq_line(unsigned line, int val)
{
	outb((uint16_t)(TD_IRQ_BASE + line), (uint8_t)val);
}

static void on_edge(struct rt_frame *f)
{
	last_vector = f->vector;
	rt_atomic_inc(&hits);
	rt_lapic_eoi();
}

static void on_level(struct rt_frame *f)
{
	last_vector = f->vector;
	if (rt_atomic_inc(&hits) >= lower_at)
		set_irq_line(PIN_LEVEL, 0);
	rt_lapic_eoi();
}

static void on_other(struct rt_frame *f)
{
	(void)f;
	rt_atomic_inc(&other_vectors);
	rt_lapic_eoi();
}

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

/* ---- pc-testdev ---------------------------------------------------------------- */

static uint8_t flush_page[8192] __attribute__((aligned(4096)));

static void pc_testdev_present(void)
{
	/* The 32-bit register and its byte lanes. */
	outl(TD_IOPORT, 0x12345678u);
	RT_EXPECT(inl(TD_IOPORT) == 0x12345678u, "0xe0 reads %x", inl(TD_IOPORT));
	RT_EXPECT(inb(TD_IOPORT) == 0x78 && inb(TD_IOPORT + 3) == 0x12 &&
	              inw(TD_IOPORT + 2) == 0x1234,
	          "0xe0 byte lanes: %x %x %x", inb(TD_IOPORT), inb(TD_IOPORT + 3),
	          inw(TD_IOPORT + 2));
	outb(TD_IOPORT + 1, 0xAB);
	RT_EXPECT(inl(TD_IOPORT) == 0x1234AB78u, "after a byte at 0xe1: %x", inl(TD_IOPORT));
	/* kvm-unit-tests' test_stringio: rep outsb, then inb reads the last. */
	static const char st1[] = "abcdefghijklmnop";
	const char *src = st1;
	uint32_t count = sizeof(st1) - 1;
	__asm__ volatile("cld; rep outsb"
	                 : "+S"(src), "+c"(count)
	                 : "d"((uint16_t)TD_IOPORT)
	                 : "memory");
	RT_EXPECT(inb(TD_IOPORT) == 'p', "rep outsb left %x, want 'p'", inb(TD_IOPORT));
	/* 0xe8: the same register, byte-wise in QEMU. */
	outl(TD_IOPORT_BYTE, 0xCAFEF00Du);
	RT_EXPECT(inl(TD_IOPORT) == 0xCAFEF00Du, "0xe8 write, 0xe0 reads %x", inl(TD_IOPORT));
	outw(TD_IOPORT, 0xBEEF);
	RT_EXPECT(inl(TD_IOPORT_BYTE) == 0xCAFEBEEFu, "0xe0 write, 0xe8 reads %x",
	          inl(TD_IOPORT_BYTE));
	RT_GROUP_OK("pc-testdev-ioport");

	/* Flush page: the page keeps its contents and stays writable. */
	uint8_t *page = (uint8_t *)(((uintptr_t)flush_page + 4095) & ~(uintptr_t)4095);
	for (unsigned i = 0; i < 64; i++)
		page[i * 64] = (uint8_t)(i ^ 0x5A);
	outl(TD_FLUSH, (uint32_t)(uintptr_t)page);
	for (unsigned i = 0; i < 64; i++)
		RT_EXPECT(page[i * 64] == (uint8_t)(i ^ 0x5A), "flushed page byte %u changed", i * 64);
	page[0] = 0xC3;
	RT_EXPECT(page[0] == 0xC3, "flushed page not writable");
	outl(TD_FLUSH, TD_IOMEM); /* not RAM: nothing happens either */
	RT_EXPECT(inl(TD_IOPORT) == 0xCAFEBEEFu, "the flush touched the register");
	RT_GROUP_OK("pc-testdev-flush");

	/* The MMIO window: plain storage at every width. */
	volatile uint8_t *m8 = (volatile uint8_t *)TD_IOMEM;
	volatile uint16_t *m16 = (volatile uint16_t *)TD_IOMEM;
	mmio_write32(TD_IOMEM, 0x11223344u);
	RT_EXPECT(mmio_read32(TD_IOMEM) == 0x11223344u, "iomem reads %x", mmio_read32(TD_IOMEM));
	m8[1] = 0xEE;
	RT_EXPECT(mmio_read32(TD_IOMEM) == 0x1122EE44u && m16[1] == 0x1122,
	          "iomem after a byte: %x", mmio_read32(TD_IOMEM));
	for (uint32_t off = 0x100; off < TD_IOMEM_LEN; off += 0x1F00)
		mmio_write32(TD_IOMEM + off, 0xA0000000u | off);
	mmio_write32(TD_IOMEM + TD_IOMEM_LEN - 4, 0xFEEDFACEu);
	for (uint32_t off = 0x100; off < TD_IOMEM_LEN; off += 0x1F00)
		RT_EXPECT(mmio_read32(TD_IOMEM + off) == (0xA0000000u | off), "iomem +%x reads %x",
		          off, mmio_read32(TD_IOMEM + off));
	RT_EXPECT(mmio_read32(TD_IOMEM + TD_IOMEM_LEN - 4) == 0xFEEDFACEu &&
	              m8[TD_IOMEM_LEN - 1] == 0xFE,
	          "iomem end reads %x", mmio_read32(TD_IOMEM + TD_IOMEM_LEN - 4));
	RT_EXPECT(mmio_read32(TD_IOMEM + TD_IOMEM_LEN) == 0xFFFFFFFFu,
	          "past the window reads %x", mmio_read32(TD_IOMEM + TD_IOMEM_LEN));
	RT_GROUP_OK("pc-testdev-iomem");

	/* IRQ lines through the I/O APIC. */
	rt_lapic_enable();
	rt_set_handler(VEC_EDGE, on_edge);
	rt_set_handler(VEC_LEVEL, on_level);
	for (unsigned v = 0x20; v < 0xFF; v++)
		if (v != VEC_EDGE && v != VEC_LEVEL)
			rt_set_handler(v, on_other);
	rt_sti();
	rt_ioapic_route(PIN_EDGE, VEC_EDGE, 0, 0);
	for (unsigned i = 1; i <= 3; i++) {
		set_irq_line(PIN_EDGE, 1); /* toggle_irq_line() */
		set_irq_line(PIN_EDGE, 0);
		RT_EXPECT(settle(i) == i, "edge %u: %u interrupts", i, hits);
		RT_EXPECT(last_vector == VEC_EDGE, "edge: vector %x", last_vector);
	}
	set_irq_line(PIN_EDGE, 1);
	RT_EXPECT(settle(4) == 4, "rising edge: %u interrupts", hits);
	set_irq_line(PIN_EDGE, 1); /* still high: no edge */
	RT_EXPECT(quiet() == 4, "a steady line delivered again");
	set_irq_line(PIN_EDGE, 0);
	RT_EXPECT(quiet() == 4, "a falling edge delivered");
	rt_ioapic_mask(PIN_EDGE, true);
	set_irq_line(PIN_EDGE, 1);
	set_irq_line(PIN_EDGE, 0);
	RT_EXPECT(quiet() == 4, "a masked pin delivered");
	/* Lines 16-23 are no ISA lines: nothing, and no crash. */
	for (unsigned line = 16; line < 24; line++)
		set_irq_line(line, 1);
	RT_EXPECT(inb(TD_IRQ_BASE) == 0xFF, "IRQ-line port read %x", inb(TD_IRQ_BASE));
	RT_GROUP_OK("pc-testdev-irq-edge");

	/* Level-triggered: the first handler leaves the line high, so the
	 * EOI brings it again (kvm-unit-tests' level retrigger). */
	hits = 0;
	lower_at = 2;
	rt_ioapic_route(PIN_LEVEL, VEC_LEVEL, 0, RT_RTE_LEVEL);
	set_irq_line(PIN_LEVEL, 1);
	RT_EXPECT(settle(2) == 2 && quiet() == 2, "level: %u interrupts, want 2", hits);
	RT_EXPECT(last_vector == VEC_LEVEL, "level: vector %x", last_vector);
	RT_EXPECT(!(rt_ioapic_read(RT_IOAPIC_REG_RTE(PIN_LEVEL)) & RT_RTE_REMOTE_IRR),
	          "level: Remote IRR still set");
	/* Raised while interrupts are off: one interrupt once they are on. */
	lower_at = 0;
	rt_cli();
	set_irq_line(PIN_LEVEL, 1);
	rt_sti();
	RT_EXPECT(settle(3) == 3 && quiet() == 3, "level with IF=0: %u interrupts", hits - 2);
	rt_ioapic_mask(PIN_LEVEL, true);
	RT_EXPECT(other_vectors == 0, "%u interrupts on other vectors", other_vectors);
	RT_GROUP_OK("pc-testdev-irq-level");
}

static void pc_testdev_absent(void)
{
	outl(TD_IOPORT, 0x12345678u);
	outl(TD_IOPORT_BYTE, 0x12345678u);
	RT_EXPECT(inl(TD_IOPORT) == 0xFFFFFFFFu && inl(TD_IOPORT_BYTE) == 0xFFFFFFFFu &&
	              inl(TD_FLUSH) == 0xFFFFFFFFu,
	          "without pc-testdev 0xe0 reads %x", inl(TD_IOPORT));
	set_irq_line(PIN_EDGE, 1);
	set_irq_line(PIN_EDGE, 0);
	RT_EXPECT(inb(TD_IRQ_BASE + PIN_EDGE) == 0xFF, "without pc-testdev 0x200e reads %x",
	          inb(TD_IRQ_BASE + PIN_EDGE));
	mmio_write32(TD_IOMEM, 0x12345678u);
	RT_EXPECT(mmio_read32(TD_IOMEM) == 0xFFFFFFFFu, "without pc-testdev 0xff000000 reads %x",
	          mmio_read32(TD_IOMEM));
	RT_GROUP_OK("pc-testdev-absent");
}

/* ---- pci-testdev ---------------------------------------------------------------- */

/* struct pci_test_dev_hdr of kvm-unit-tests. */
#define HDR_TEST 0
#define HDR_WIDTH 1
#define HDR_OFFSET 4
#define HDR_DATA 8
#define HDR_COUNT 12
#define HDR_NAME 16

struct bar_ops {
	uint8_t (*readb)(uint32_t a);
	uint32_t (*readl)(uint32_t a);
	void (*writeb)(uint32_t a, uint8_t v);
	void (*writew)(uint32_t a, uint16_t v);
	void (*writel)(uint32_t a, uint32_t v);
};

static uint8_t io_rb(uint32_t a) { return inb((uint16_t)a); }
static uint32_t io_rl(uint32_t a) { return inl((uint16_t)a); }
static void io_wb(uint32_t a, uint8_t v) { outb((uint16_t)a, v); }
static void io_ww(uint32_t a, uint16_t v) { outw((uint16_t)a, v); }
static void io_wl(uint32_t a, uint32_t v) { outl((uint16_t)a, v); }
static uint8_t mm_rb(uint32_t a) { return *(volatile uint8_t *)a; }
static uint32_t mm_rl(uint32_t a) { return *(volatile uint32_t *)a; }
static void mm_wb(uint32_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static void mm_ww(uint32_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static void mm_wl(uint32_t a, uint32_t v) { *(volatile uint32_t *)a = v; }

static const struct bar_ops io_ops = {io_rb, io_rl, io_wb, io_ww, io_wl};
static const struct bar_ops mem_ops = {mm_rb, mm_rl, mm_wb, mm_ww, mm_wl};

static const char *const test_names[6] = {
	"mmio-no-eventfd",   "mmio-wildcard-eventfd",   "mmio-datamatch-eventfd",
	"portio-no-eventfd", "portio-wildcard-eventfd", "portio-datamatch-eventfd"};

/* pci_testdev_one(): false when (nr) is past the last test. Every test
 * that exists must count all 16 writes here (zhv has no ioeventfd path
 * that would leave the count at 0). */
static bool run_one(uint32_t base, const struct bar_ops *ops, unsigned nr, unsigned first)
{
	ops->writeb(base + HDR_TEST, (uint8_t)nr);
	uint32_t count = ops->readl(base + HDR_COUNT);
	if (count != 0)
		return false;
	uint8_t width = ops->readb(base + HDR_WIDTH);
	if (width != 1 && width != 2 && width != 4)
		return false;
	uint32_t sig = ops->readl(base + HDR_DATA);
	uint32_t off = ops->readl(base + HDR_OFFSET);
	for (int i = 0; i < 16; i++) {
		if (width == 1)
			ops->writeb(base + off, (uint8_t)sig);
		else if (width == 2)
			ops->writew(base + off, (uint16_t)sig);
		else
			ops->writel(base + off, sig);
	}
	count = ops->readl(base + HDR_COUNT);
	RT_EXPECT(count == 16, "test %u: count %u after 16 writes", first + nr, count);
	char name[32];
	unsigned i = 0;
	for (; i < sizeof(name) - 1; i++) {
		name[i] = (char)ops->readb(base + HDR_NAME + i);
		if (!name[i])
			break;
	}
	name[i] = 0;
	rt_printf("pci-testdev %s: %s\n", ops == &io_ops ? "io" : "mem", name);
	RT_EXPECT(first + nr < 6 && !memcmp(name, test_names[first + nr], strlen(name) + 1),
	          "test %u is called '%s'", first + nr, name);
	RT_EXPECT(ops->readb(base + HDR_TEST) == first + nr, "test %u: header says %u",
	          first + nr, ops->readb(base + HDR_TEST));
	/* A value other than the test's data counts for wildcard tests only. */
	ops->writeb(base + off, (uint8_t)(sig ^ 1));
	uint32_t extra = ops->readl(base + HDR_COUNT) - 16;
	RT_EXPECT(extra == (nr == 1 ? 1u : 0u), "test %u: a wrong value counted %u", first + nr,
	          extra);
	return true;
}

static unsigned run_all(uint32_t base, const struct bar_ops *ops, unsigned first)
{
	unsigned n = 0;
	while (n < 8 && run_one(base, ops, n, first))
		n++;
	return n;
}

static void pci_testdev_present(void)
{
	int slot = rt_pci_find(0x1B36, 0x0005, 0);
	RT_EXPECT(slot > 0, "pci-testdev 1b36:0005 not found");
	RT_EXPECT(rt_pci_find(0x1B36, 0x0005, 1) < 0, "two pci-testdevs");
	RT_EXPECT((rt_pci_read32((unsigned)slot, 0x08) >> 8) == 0xFF0000u, "class %x",
	          rt_pci_read32((unsigned)slot, 0x08) >> 8);
	RT_EXPECT(rt_pci_read8((unsigned)slot, 0x3D) == 0, "interrupt pin %u",
	          rt_pci_read8((unsigned)slot, 0x3D));
	uint32_t mem = (uint32_t)rt_pci_bar((unsigned)slot, 0);
	uint32_t iobar = rt_pci_read32((unsigned)slot, 0x14);
	RT_EXPECT(mem != 0, "BAR0 is not a memory BAR");
	RT_EXPECT((iobar & 1) && (iobar & ~3u) != 0 && (iobar & ~3u) < 0x10000,
	          "BAR1 %x is not an I/O BAR", iobar);
	/* BAR sizes, firmware-style probing. */
	rt_pci_write32((unsigned)slot, 0x10, 0xFFFFFFFFu);
	uint32_t m = rt_pci_read32((unsigned)slot, 0x10);
	rt_pci_write32((unsigned)slot, 0x10, mem);
	rt_pci_write32((unsigned)slot, 0x14, 0xFFFFFFFFu);
	uint32_t p = rt_pci_read32((unsigned)slot, 0x14);
	rt_pci_write32((unsigned)slot, 0x14, iobar);
	RT_EXPECT((~(m & ~0xFu) + 1) == 4096 && (uint16_t)(~(p & ~3u) + 1) == 256,
	          "BAR sizes: %x %x", m, p);
	RT_GROUP_OK("pci-testdev-config");

	unsigned n = run_all(mem, &mem_ops, 0);
	n += run_all(iobar & ~3u, &io_ops, 3);
	RT_EXPECT(n == 6, "%u pci-testdev tests, want 6", n);
	RT_GROUP_OK("pci-testdev-tests");
}

static void pci_testdev_absent(void)
{
	RT_EXPECT(rt_pci_find(0x1B36, 0x0005, 0) < 0, "pci-testdev present without the option");
	RT_EXPECT(inl(0xC000) == 0xFFFFFFFFu, "the PCI I/O window answers: %x", inl(0xC000));
	RT_GROUP_OK("pci-testdev-absent");
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	if (rt_cmdline_uint("pc", 1))
		pc_testdev_present();
	else
		pc_testdev_absent();
	if (rt_cmdline_uint("pci", 1))
		pci_testdev_present();
	else
		pci_testdev_absent();
	rt_pass();
}
