/* pci_test.c: unit tests of PCI bus 0 (dev/pci.c): config mechanism #1, empty slots, host bridge IDs, BAR placement and sizing, MMIO and I/O BAR routing, reset control. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../vmm/dev/pci.c"
#include "fake_bus.h"
#include "snap_util.h"

/* ---- stubs ------------------------------------------------------------------ */

static int exit_calls, exit_kind_seen;

void vm_request_exit(struct vm *vm, enum vm_exit_kind kind, int status)
{
	(void)vm, (void)status;
	exit_calls++;
	exit_kind_seen = kind;
}

static int unclaimed;

void vm_log_unclaimed(struct vm *vm, const char *space, uint64_t addr, bool write,
                      unsigned size)
{
	(void)vm, (void)space, (void)addr, (void)write, (void)size;
	unclaimed++;
}

/* ---- a fake device ------------------------------------------------------------ */

struct fake {
	struct pci_device pci;
	int last_bar;
	uint64_t last_offset;
	bool last_write;
	unsigned accesses;
	uint32_t last_cfg_offset, last_cfg_value;
	unsigned cfg_writes;
};

static void fake_bar_access(struct pci_device *dev, int bar, uint64_t offset, bool write,
                            uint8_t *data, unsigned size)
{
	struct fake *f = (struct fake *)dev;
	f->last_bar = bar;
	f->last_offset = offset;
	f->last_write = write;
	f->accesses++;
	if (!write)
		memset(data, 0x11 * (bar + 1), size);
}

static void fake_config_write(struct pci_device *dev, uint32_t offset, uint32_t value,
                              unsigned size)
{
	struct fake *f = (struct fake *)dev;
	(void)size;
	f->last_cfg_offset = offset;
	f->last_cfg_value = value;
	f->cfg_writes++;
}

static const struct pci_device_ops fake_ops = {
	.config_write = fake_config_write,
	.bar_access = fake_bar_access,
};

static struct fake fakes[40];
static unsigned nfakes;

static struct fake *fake_new(uint32_t bar0, uint32_t bar2, bool bar2_64)
{
	struct fake *f = &fakes[nfakes++];
	memset(f, 0, sizeof(*f));
	pci_put16(&f->pci.cfg[PCI_VENDOR_ID], 0x1AF4);
	pci_put16(&f->pci.cfg[PCI_DEVICE_ID], 0x1042);
	f->pci.cfg[0x0B] = 0x01; /* class: storage */
	f->pci.bar_size[0] = bar0;
	f->pci.bar_size[2] = bar2;
	if (bar2_64)
		f->pci.cfg[PCI_BAR0 + 8] = PCI_BAR_TYPE_64;
	f->pci.ops = &fake_ops;
	f->last_bar = -1;
	return f;
}

/* ---- helpers ---------------------------------------------------------------- */

static struct vm vms[32];
static unsigned nvms;
#define test_vm (vms[nvms - 1])

static int setup(void **state)
{
	(void)state;
	assert_true(nvms < sizeof(vms) / sizeof(vms[0]));
	nvms++;
	test_vm.io_bus.kind = ZHV_TRAP_IO;
	test_vm.mmio_bus.kind = ZHV_TRAP_MEM;
	exit_calls = 0;
	unclaimed = 0;
	nfakes = 0;
	assert_int_equal(pci_init(&test_vm), 0);
	return 0;
}

static uint32_t outl_inl(uint16_t port, bool write, uint32_t v, unsigned size)
{
	return fake_bus_xfer(&test_vm.io_bus, port, write, v, size);
}

static uint32_t cfg_addr(unsigned bus, unsigned slot, unsigned func, unsigned reg)
{
	return 0x80000000u | bus << 16 | slot << 11 | func << 8 | (reg & 0xFC);
}

static uint32_t cfg_read(unsigned bus, unsigned slot, unsigned func, unsigned reg,
                         unsigned size)
{
	outl_inl(0xCF8, true, cfg_addr(bus, slot, func, reg), 4);
	return outl_inl((uint16_t)(0xCFC + (reg & 3)), false, 0, size);
}

static void cfg_write(unsigned slot, unsigned reg, uint32_t v, unsigned size)
{
	outl_inl(0xCF8, true, cfg_addr(0, slot, 0, reg), 4);
	outl_inl((uint16_t)(0xCFC + (reg & 3)), true, v, size);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_conf1_address_register(void **state)
{
	(void)state;
	/* Linux's pci_check_type1(). */
	outl_inl(0xCFB, true, 0x01, 1);
	uint32_t saved = outl_inl(0xCF8, false, 0, 4);
	outl_inl(0xCF8, true, 0x80000000u, 4);
	assert_int_equal(outl_inl(0xCF8, false, 0, 4), 0x80000000u);
	outl_inl(0xCF8, true, saved, 4);
	outl_inl(0xCF8, true, 0x80ABCDEFu, 4);
	assert_int_equal(outl_inl(0xCF8, false, 0, 4), 0x80ABCDECu);
	/* Mechanism #2's probe bytes read all-ones: not mistaken for it. */
	assert_int_equal(outl_inl(0xCFA, false, 0, 1), 0xFF);
}

static void test_host_bridge_ids(void **state)
{
	(void)state;
	assert_int_equal(cfg_read(0, 0, 0, 0x00, 4), 0x12378086u);
	assert_int_equal(cfg_read(0, 0, 0, 0x08, 4) >> 8, 0x060000u);
	assert_int_equal(cfg_read(0, 0, 0, 0x0A, 2), 0x0600);
	assert_int_equal(cfg_read(0, 0, 0, 0x0E, 1), 0x00); /* header type 0, single function */
	/* Read-only IDs stay. */
	cfg_write(0, 0x00, 0xDEADBEEF, 4);
	assert_int_equal(cfg_read(0, 0, 0, 0x00, 4), 0x12378086u);
}

static void test_empty_reads_all_ones(void **state)
{
	(void)state;
	for (unsigned slot = 1; slot < 32; slot++)
		assert_int_equal(cfg_read(0, slot, 0, 0, 4), 0xFFFFFFFFu);
	assert_int_equal(cfg_read(0, 0, 1, 0, 4), 0xFFFFFFFFu); /* function 1 */
	assert_int_equal(cfg_read(1, 0, 0, 0, 4), 0xFFFFFFFFu); /* bus 1 */
	assert_int_equal(cfg_read(0, 5, 0, 0x3E, 2), 0xFFFF);
	/* Enable bit clear: nothing is selected. */
	outl_inl(0xCF8, true, 0x00000000u, 4);
	assert_int_equal(outl_inl(0xCFC, false, 0, 4), 0xFFFFFFFFu);
	cfg_write(7, 0x04, 0xFFFF, 2); /* to nobody: harmless */
	/* A dword read at 0xcfd only has three config bytes. */
	outl_inl(0xCF8, true, cfg_addr(0, 0, 0, 0xFC), 4);
	assert_int_equal(outl_inl(0xCFD, false, 0, 4) >> 24, 0xFF);
}

static void test_bar_placement_and_sizing(void **state)
{
	(void)state;
	struct fake *f = fake_new(0x4000, 0x100000, true);
	assert_int_equal(pci_add(&test_vm, &f->pci), 0);
	assert_int_equal(f->pci.slot, 1);
	assert_int_equal(cfg_read(0, 1, 0, 0, 4), 0x10421AF4u);
	uint32_t bar0 = cfg_read(0, 1, 0, 0x10, 4);
	assert_int_equal(bar0, (uint32_t)VM_PCI_MMIO_BASE);
	assert_int_equal(f->pci.bar_addr[0], VM_PCI_MMIO_BASE);
	uint32_t bar2 = cfg_read(0, 1, 0, 0x18, 4);
	assert_int_equal(bar2 & 0xF, PCI_BAR_TYPE_64);
	assert_int_equal((bar2 & ~0xFu) % 0x100000, 0); /* naturally aligned */
	assert_int_equal(cfg_read(0, 1, 0, 0x1C, 4), 0); /* upper half */
	assert_int_equal(cfg_read(0, 1, 0, 0x14, 4), 0); /* unused BAR */
	/* Memory decoding on, INTA on its GSI. */
	assert_int_not_equal(cfg_read(0, 1, 0, 0x04, 2) & PCI_CMD_MEMORY, 0);
	assert_int_equal(cfg_read(0, 1, 0, 0x3D, 1), 1);
	assert_int_equal(cfg_read(0, 1, 0, 0x3C, 1), PCI_INTX_GSI(1, 0));
	assert_int_equal(f->pci.irq_pin_gsi, PCI_INTX_GSI(1, 0));
	/* Sizing: all-ones reads back the size mask, restoring works. */
	cfg_write(1, 0x10, 0xFFFFFFFFu, 4);
	assert_int_equal(cfg_read(0, 1, 0, 0x10, 4), 0xFFFFC000u);
	cfg_write(1, 0x10, bar0, 4);
	assert_int_equal(cfg_read(0, 1, 0, 0x10, 4), bar0);
	cfg_write(1, 0x18, 0xFFFFFFFFu, 4);
	assert_int_equal(cfg_read(0, 1, 0, 0x18, 4), 0xFFF00000u | PCI_BAR_TYPE_64);
	cfg_write(1, 0x1C, 0xFFFFFFFFu, 4);
	assert_int_equal(cfg_read(0, 1, 0, 0x1C, 4), 0xFFFFFFFFu);
	cfg_write(1, 0x18, bar2, 4);
	cfg_write(1, 0x1C, 0, 4);
	assert_int_equal(f->pci.bar_addr[2], bar2 & ~0xFu);
	cfg_write(1, 0x14, 0xFFFFFFFFu, 4); /* unimplemented BAR stays 0 */
	assert_int_equal(cfg_read(0, 1, 0, 0x14, 4), 0);
	/* ROM BAR: none. */
	cfg_write(1, 0x30, 0xFFFFFFFFu, 4);
	assert_int_equal(cfg_read(0, 1, 0, 0x30, 4), 0);
	/* A second device gets slot 2 and a BAR that does not overlap. */
	struct fake *g = fake_new(0x4000, 0, false);
	assert_int_equal(pci_add(&test_vm, &g->pci), 0);
	assert_int_equal(g->pci.slot, 2);
	assert_true(g->pci.bar_addr[0] >= f->pci.bar_addr[2] + 0x100000 ||
	            g->pci.bar_addr[0] + 0x4000 <= f->pci.bar_addr[0] ||
	            (g->pci.bar_addr[0] >= f->pci.bar_addr[0] + 0x4000 &&
	             g->pci.bar_addr[0] + 0x4000 <= f->pci.bar_addr[2]));
	assert_int_equal(cfg_read(0, 2, 0, 0x3C, 1), PCI_INTX_GSI(2, 0));
}

static void test_mmio_routing(void **state)
{
	(void)state;
	struct fake *f = fake_new(0x4000, 0x1000, false);
	assert_int_equal(pci_add(&test_vm, &f->pci), 0);
	uint64_t b0 = f->pci.bar_addr[0], b2 = f->pci.bar_addr[2];
	assert_int_equal(fake_bus_xfer(&test_vm.mmio_bus, b0 + 0x10, false, 0, 4), 0x11111111u);
	assert_int_equal(f->last_bar, 0);
	assert_int_equal(f->last_offset, 0x10);
	fake_bus_xfer(&test_vm.mmio_bus, b2 + 0xFFC, true, 5, 4);
	assert_int_equal(f->last_bar, 2);
	assert_int_equal(f->last_offset, 0xFFC);
	assert_true(f->last_write);
	/* An access straddling the end of a BAR goes nowhere. */
	unsigned n = f->accesses;
	assert_int_equal(fake_bus_xfer(&test_vm.mmio_bus, b2 + 0xFFE, false, 0, 4), 0xFFFFFFFFu);
	assert_int_equal(f->accesses, n);
	/* Move BAR0 inside the window: routed at the new address only. */
	uint64_t moved = VM_PCI_MMIO_BASE + 0x800000;
	cfg_write(1, 0x10, (uint32_t)moved, 4);
	fake_bus_xfer(&test_vm.mmio_bus, moved + 8, false, 0, 4);
	assert_int_equal(f->last_bar, 0);
	assert_int_equal(f->last_offset, 8);
	n = f->accesses;
	assert_int_equal(fake_bus_xfer(&test_vm.mmio_bus, b0 + 8, false, 0, 4), 0xFFFFFFFFu);
	assert_int_equal(f->accesses, n);
	assert_true(unclaimed > 0);
	/* Memory decoding off: nothing routed. */
	cfg_write(1, 0x04, 0, 2);
	assert_int_equal(fake_bus_xfer(&test_vm.mmio_bus, moved + 8, false, 0, 4), 0xFFFFFFFFu);
	assert_int_equal(f->accesses, n);
	cfg_write(1, 0x04, PCI_CMD_MEMORY, 2);
	fake_bus_xfer(&test_vm.mmio_bus, moved + 8, false, 0, 4);
	assert_int_equal(f->accesses, n + 1);
}

static void test_config_write_hook(void **state)
{
	(void)state;
	struct fake *f = fake_new(0x1000, 0, false);
	assert_int_equal(pci_add(&test_vm, &f->pci), 0);
	cfg_write(1, 0x42, 0xBEEF, 2);
	assert_int_equal(f->cfg_writes, 1);
	assert_int_equal(f->last_cfg_offset, 0x42);
	assert_int_equal(f->last_cfg_value, 0xBEEF);
	assert_int_equal(cfg_read(0, 1, 0, 0x42, 2), 0xBEEF);
	/* Status is read-only, command only takes its writable bits. */
	cfg_write(1, 0x04, 0xFFFFFFFFu, 4);
	assert_int_equal(cfg_read(0, 1, 0, 0x04, 4), 0x00000547u);
	cfg_write(1, 0x3C, 0xAAAA, 2); /* line writable, pin not */
	assert_int_equal(cfg_read(0, 1, 0, 0x3C, 2), 0x01AA);
}

static void test_add_limits(void **state)
{
	(void)state;
	struct fake *bad = fake_new(0x800, 0, false); /* below 4 KiB */
	assert_int_equal(pci_add(&test_vm, &bad->pci), -EINVAL);
	bad = fake_new(0x3000, 0, false); /* not a power of 2 */
	assert_int_equal(pci_add(&test_vm, &bad->pci), -EINVAL);
	bad = fake_new(0, 0, false);
	bad->pci.bar_size[5] = 0x1000;
	bad->pci.cfg[PCI_BAR0 + 20] = PCI_BAR_TYPE_64; /* 64-bit in the last BAR */
	assert_int_equal(pci_add(&test_vm, &bad->pci), -EINVAL);
	bad = fake_new(0, 0, false);
	bad->pci.bar_size[0] = 0x80000000u; /* bigger than the window */
	assert_int_equal(pci_add(&test_vm, &bad->pci), -ENOSPC);
	for (unsigned i = 1; i < 32; i++) {
		struct fake *f = fake_new(0x1000, 0, false);
		assert_int_equal(pci_add(&test_vm, &f->pci), 0);
		assert_int_equal(f->pci.slot, i);
	}
	struct fake *f = fake_new(0x1000, 0, false);
	assert_int_equal(pci_add(&test_vm, &f->pci), -ENOSPC);
	assert_int_equal(pci_init(&test_vm), -EEXIST);
}

/* I/O BARs: placed in the port window at 0xc000 (trapped only once a
 * device has one), sized like memory BARs (bit 0 fixed), routed by port,
 * off with the command register's I/O bit; memory BARs are not matched by
 * port numbers nor I/O BARs by addresses. */
static void test_io_bars(void **state)
{
	(void)state;
	struct fake *m = fake_new(0x1000, 0, false);
	assert_int_equal(pci_add(&test_vm, &m->pci), 0);
	assert_null(fake_bus_find(&test_vm.io_bus, VM_PCI_IO_BASE)); /* no I/O BAR yet: no window */
	struct fake *f = fake_new(0x1000, 0, false);
	f->pci.bar_size[1] = 0x100;
	f->pci.cfg[PCI_BAR0 + 4] = PCI_BAR_IO;
	f->pci.bar_size[3] = 0x4;
	f->pci.cfg[PCI_BAR0 + 12] = PCI_BAR_IO | PCI_BAR_TYPE_64; /* type bits mean nothing for I/O */
	assert_int_equal(pci_add(&test_vm, &f->pci), 0);
	assert_non_null(fake_bus_find(&test_vm.io_bus, VM_PCI_IO_BASE));
	assert_int_equal(cfg_read(0, 2, 0, 0x14, 4), VM_PCI_IO_BASE | 1);
	assert_int_equal(cfg_read(0, 2, 0, 0x1C, 4), (VM_PCI_IO_BASE + 0x100) | 1);
	assert_int_equal(cfg_read(0, 2, 0, 0x20, 4), 0); /* not the upper half of a 64-bit BAR */
	assert_int_equal(cfg_read(0, 2, 0, 0x04, 2) & 3, 3); /* I/O and memory decoding on */
	assert_int_equal(cfg_read(0, 1, 0, 0x04, 2) & 3, 2); /* memory only */
	/* Routing. */
	assert_int_equal(outl_inl(VM_PCI_IO_BASE + 0x10, false, 0, 2), 0x2222);
	assert_int_equal(f->last_bar, 1);
	assert_int_equal(f->last_offset, 0x10);
	outl_inl(VM_PCI_IO_BASE + 0x102, true, 0xAB, 1);
	assert_int_equal(f->last_bar, 3);
	assert_int_equal(f->last_offset, 2);
	assert_true(f->last_write);
	unsigned before = f->accesses;
	assert_int_equal(outl_inl(VM_PCI_IO_BASE + 0x104, false, 0, 4), 0xFFFFFFFFu); /* past it */
	assert_int_equal(outl_inl(VM_PCI_IO_BASE + 0x103, false, 0, 2), 0xFFFF); /* straddles the end */
	assert_int_equal(f->accesses, before);
	/* Sizing: all-ones reads back the size mask with bit 0 set. */
	cfg_write(2, 0x1C, 0xFFFFFFFFu, 4);
	assert_int_equal(cfg_read(0, 2, 0, 0x1C, 4), 0xFFFFFFFDu);
	cfg_write(2, 0x14, 0xFFFFFFFFu, 4);
	assert_int_equal(cfg_read(0, 2, 0, 0x14, 4), 0xFFFFFF01u);
	/* Moving BAR1 within the window. */
	cfg_write(2, 0x14, VM_PCI_IO_BASE + 0x800, 4);
	assert_int_equal(cfg_read(0, 2, 0, 0x14, 4), (VM_PCI_IO_BASE + 0x800) | 1);
	outl_inl(VM_PCI_IO_BASE + 0x805, true, 1, 1);
	assert_int_equal(f->last_bar, 1);
	assert_int_equal(f->last_offset, 5);
	/* I/O decoding off: the ports read all-ones and reach no device. */
	cfg_write(2, 0x04, 0x0002, 2);
	before = f->accesses;
	assert_int_equal(outl_inl(VM_PCI_IO_BASE + 0x805, false, 0, 1), 0xFF);
	assert_int_equal(f->accesses, before);
	/* The memory BAR's address does not answer as a port, nor a port as
	 * a memory address. */
	cfg_write(2, 0x04, 0x0003, 2);
	assert_int_equal(fake_bus_xfer(&test_vm.mmio_bus, VM_PCI_MMIO_BASE + 0x1000, false, 0, 1), 0x11);
	assert_int_equal(f->last_bar, 0);
	/* Bad I/O BAR sizes. */
	struct fake *bad = fake_new(0, 0, false);
	bad->pci.bar_size[0] = 0x200; /* more than 256 ports */
	bad->pci.cfg[PCI_BAR0] = PCI_BAR_IO;
	assert_int_equal(pci_add(&test_vm, &bad->pci), -EINVAL);
	bad->pci.bar_size[0] = 2; /* less than 4 */
	assert_int_equal(pci_add(&test_vm, &bad->pci), -EINVAL);
	bad->pci.bar_size[0] = 12; /* not a power of 2 */
	assert_int_equal(pci_add(&test_vm, &bad->pci), -EINVAL);
	/* The window is 4 KiB of ports: the 16th 256-port BAR no longer fits. */
	for (unsigned i = 0; i < 14; i++) {
		struct fake *g = fake_new(0, 0, false);
		g->pci.bar_size[0] = 0x100;
		g->pci.cfg[PCI_BAR0] = PCI_BAR_IO;
		assert_int_equal(pci_add(&test_vm, &g->pci), 0);
	}
	struct fake *g = fake_new(0, 0, false);
	g->pci.bar_size[0] = 0x100;
	g->pci.cfg[PCI_BAR0] = PCI_BAR_IO;
	assert_int_equal(pci_add(&test_vm, &g->pci), -ENOSPC);
}

static void test_reset_control(void **state)
{
	(void)state;
	outl_inl(0xCF9, true, 0x02, 1);
	assert_int_equal(exit_calls, 0);
	assert_int_equal(outl_inl(0xCF9, false, 0, 1), 0x02);
	outl_inl(0xCF9, true, 0x06, 1);
	assert_int_equal(exit_calls, 1);
	assert_int_equal(exit_kind_seen, VM_EXIT_POWEROFF);
}

static void test_garbage(void **state)
{
	(void)state;
	struct fake *f = fake_new(0x4000, 0x1000, true);
	assert_int_equal(pci_add(&test_vm, &f->pci), 0);
	uint32_t x = 4242;
	for (unsigned i = 0; i < 100000; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		unsigned size = 1u << (x % 3);
		uint16_t port = (uint16_t)(0xCF8 + (x >> 4) % 8);
		uint32_t v = x * 2654435761u;
		if ((x >> 8) % 3 == 0)
			v = 0x80000000u | (v & 0x0000FFFFu); /* bus 0, some device */
		if ((x >> 12) % 4 == 0 && port == 0xCF9)
			continue; /* no resets here */
		fake_bus_xfer(&test_vm.io_bus, port, (x >> 10) & 1, v, size);
	}
	/* The host bridge still answers. */
	assert_int_equal(cfg_read(0, 0, 0, 0x00, 4), 0x12378086u);
}

/* ---- snapshot section ------------------------------------------------------- */

/* Config space as a guest left it (a moved BAR, command, interrupt line,
 * device-specific bytes, the bridge's, CONFIG_ADDRESS, RCR) saves and
 * loads into a fresh bus with the same functions, which then reads the
 * same everywhere and routes the moved BAR to its device. A section that
 * no guest write could give is refused. */
static void test_snapshot(void **state)
{
	(void)state;
	struct vm *va = &test_vm;
	struct fake *f = fake_new(0x1000, 0x2000, true);
	f->pci.bar_size[1] = 0x100;
	f->pci.cfg[PCI_BAR0 + 4] = PCI_BAR_IO;
	assert_int_equal(pci_add(va, &f->pci), 0);
	const uint32_t moved = (uint32_t)VM_PCI_MMIO_BASE + 0x100000;
	cfg_write(1, 0x10, moved, 4);
	cfg_write(1, 0x04, 0x0107, 2);
	cfg_write(1, 0x3C, 0x0B, 1);
	cfg_write(1, 0x40, 0xDEADBEEF, 4);
	cfg_write(0, 0x44, 0x12345678, 4);
	outl_inl(0xCF8, true, cfg_addr(0, 1, 0, 0x3C), 4);
	outl_inl(0xCF9, true, 0x02, 1);

	struct snap_writer w;
	snapt_save(va, "pci", &w);
	assert_int_equal(w.len, 5 + PCI_MAX_DEVICES + 2 * 256);
	unsigned keep = nfakes;
	setup(NULL);
	nfakes = keep;
	struct vm *vb = &test_vm;
	struct fake *g = fake_new(0x1000, 0x2000, true);
	g->pci.bar_size[1] = 0x100;
	g->pci.cfg[PCI_BAR0 + 4] = PCI_BAR_IO;
	assert_int_equal(pci_add(vb, &g->pci), 0);
	const size_t slot1 = 5 + 1 + 256 + 1; /* config space of slot 1 */
	snapt_check_bad_lengths(vb, "pci", w.buf, w.len, 0);
	snapt_check_bad_byte(vb, "pci", w.buf, w.len, 0, 0x01, 0);               /* address */
	snapt_check_bad_byte(vb, "pci", w.buf, w.len, 4, 0x04, 0);               /* RCR */
	snapt_check_bad_byte(vb, "pci", w.buf, w.len, slot1 + 256, 1, 0);        /* slot 2 */
	snapt_check_bad_byte(vb, "pci", w.buf, w.len, slot1 - 1, 0, 0);          /* slot 1 */
	snapt_check_bad_byte(vb, "pci", w.buf, w.len, slot1, 0x00, 0);           /* vendor */
	snapt_check_bad_byte(vb, "pci", w.buf, w.len, slot1 + 0x0B, 0x02, 0);    /* class */
	snapt_check_bad_byte(vb, "pci", w.buf, w.len, slot1 + 0x10, 0x01, 0);    /* BAR0 type */
	snapt_check_bad_byte(vb, "pci", w.buf, w.len, slot1 + 0x11, 0x01, 0);    /* BAR0 size */
	snapt_check_bad_byte(vb, "pci", w.buf, w.len, slot1 + 0x07, 0x80, 0);    /* status */
	snapt_check_bad_byte(vb, "pci", w.buf, w.len, slot1 + 0x20, 0x01, 0);    /* no BAR4 */
	assert_int_equal(g->cfg_writes, 0);
	assert_int_equal(snapt_load(vb, "pci", w.buf, w.len), 0);
	snap_writer_free(&w);
	/* The device heard of its own bytes, as of guest writes. */
	assert_int_equal(g->cfg_writes, (256 - 0x40) / 4);
	assert_int_equal(g->pci.bar_addr[0], moved);
	assert_int_equal(g->pci.bar_addr[2], f->pci.bar_addr[2]);
	struct vm *m[2] = {va, vb};
	uint32_t v[2][2 + 3 * 64];
	for (unsigned n = 0; n < 2; n++) {
		nvms = (unsigned)(m[n] - vms) + 1;
		v[n][0] = outl_inl(0xCF8, false, 0, 4);
		v[n][1] = outl_inl(0xCF9, false, 0, 1);
		for (unsigned slot = 0; slot < 3; slot++)
			for (unsigned reg = 0; reg < 256; reg += 4)
				v[n][2 + slot * 64 + reg / 4] = cfg_read(0, slot, 0, reg, 4);
	}
	assert_memory_equal(v[0], v[1], sizeof(v[0]));
	assert_int_equal(v[1][2 + 64 + 0x40 / 4], 0xDEADBEEF);
	assert_int_equal(v[1][2 + 0x44 / 4], 0x12345678);
	fake_bus_xfer(&vb->mmio_bus, moved + 8, false, 0, 4);
	assert_int_equal(g->last_bar, 0);
	assert_int_equal(g->last_offset, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_conf1_address_register, setup),
		cmocka_unit_test_setup(test_host_bridge_ids, setup),
		cmocka_unit_test_setup(test_empty_reads_all_ones, setup),
		cmocka_unit_test_setup(test_bar_placement_and_sizing, setup),
		cmocka_unit_test_setup(test_mmio_routing, setup),
		cmocka_unit_test_setup(test_config_write_hook, setup),
		cmocka_unit_test_setup(test_add_limits, setup),
		cmocka_unit_test_setup(test_io_bars, setup),
		cmocka_unit_test_setup(test_reset_control, setup),
		cmocka_unit_test_setup(test_garbage, setup),
		cmocka_unit_test_setup(test_snapshot, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
