/* pci_testdev_test.c: unit tests of QEMU's pci-testdev (dev/pci_testdev.c)
 * on PCI bus 0 (dev/pci.c): IDs and BARs in config space, the test
 * headers read through both BARs, test selection and hit counting as
 * kvm-unit-tests' pci_testdev() drives them, and bad guest input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../vmm/dev/pci.c"
#include "../../vmm/dev/pci_testdev.c"
#include "fake_bus.h"
#include "snap_util.h"

/* ---- stubs ------------------------------------------------------------------ */

void vm_request_exit(struct vm *vm, enum vm_exit_kind kind, int status)
{
	(void)vm, (void)kind, (void)status;
}

void vm_log_unclaimed(struct vm *vm, const char *space, uint64_t addr, bool write,
                      unsigned size)
{
	(void)vm, (void)space, (void)addr, (void)write, (void)size;
}

/* ---- helpers ---------------------------------------------------------------- */

static struct vm test_vm;
static uint32_t bar0, bar1; /* as the guest finds them */

static uint32_t cfg_read(unsigned slot, unsigned reg, unsigned size)
{
	fake_bus_xfer(&test_vm.io_bus, 0xCF8, true, 0x80000000u | slot << 11 | (reg & 0xFC), 4);
	return fake_bus_xfer(&test_vm.io_bus, 0xCFC + (reg & 3), false, 0, size);
}

static void cfg_write(unsigned slot, unsigned reg, uint32_t v, unsigned size)
{
	fake_bus_xfer(&test_vm.io_bus, 0xCF8, true, 0x80000000u | slot << 11 | (reg & 0xFC), 4);
	fake_bus_xfer(&test_vm.io_bus, 0xCFC + (reg & 3), true, v, size);
}

/* An access through BAR (io ? 1 : 0) at (off). */
static uint32_t bar(bool io, uint32_t off, bool write, uint32_t v, unsigned size)
{
	return io ? fake_bus_xfer(&test_vm.io_bus, bar1 + off, write, v, size)
	          : fake_bus_xfer(&test_vm.mmio_bus, bar0 + off, write, v, size);
}

static int setup(void **state)
{
	(void)state;
	memset(&test_vm, 0, sizeof(test_vm));
	test_vm.io_bus.kind = ZHV_TRAP_IO;
	test_vm.mmio_bus.kind = ZHV_TRAP_MEM;
	assert_int_equal(pci_init(&test_vm), 0);
	assert_int_equal(pci_testdev_create(&test_vm), 0);
	bar0 = cfg_read(1, 0x10, 4) & ~0xFu;
	bar1 = cfg_read(1, 0x14, 4) & ~0x3u;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fake_vm_teardown(&test_vm);
	return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_config_space(void **state)
{
	(void)state;
	assert_int_equal(cfg_read(1, 0x00, 2), 0x1B36);        /* PCI_VENDOR_ID_REDHAT */
	assert_int_equal(cfg_read(1, 0x02, 2), 0x0005);        /* PCI_DEVICE_ID_REDHAT_TEST */
	assert_int_equal(cfg_read(1, 0x08, 4), 0xFF000000u);   /* class 0xff, revision 0 */
	assert_int_equal(cfg_read(1, 0x0E, 1), 0);             /* header type 0 */
	assert_int_equal(cfg_read(1, 0x2C, 4), 0x11001AF4u);   /* subsystem */
	assert_int_equal(cfg_read(1, 0x3C, 2), 0);             /* no pin, no line */
	assert_int_equal(cfg_read(1, 0x04, 2) & 3, 3);         /* I/O and memory decoding on */
	/* BAR0: 32-bit memory in the BAR window, 4 KiB; BAR1: 256 ports. */
	uint32_t b0 = cfg_read(1, 0x10, 4), b1 = cfg_read(1, 0x14, 4);
	assert_int_equal(b0 & 0xF, 0);
	assert_true(b0 >= VM_PCI_MMIO_BASE && b0 < VM_PCI_MMIO_BASE + VM_PCI_MMIO_SIZE);
	assert_int_equal(b1 & 3, 1);
	assert_true((b1 & ~3u) >= VM_PCI_IO_BASE && (b1 & ~3u) < VM_PCI_IO_BASE + VM_PCI_IO_SIZE);
	cfg_write(1, 0x10, 0xFFFFFFFFu, 4);
	assert_int_equal(cfg_read(1, 0x10, 4), 0xFFFFF000u);
	cfg_write(1, 0x14, 0xFFFFFFFFu, 4);
	assert_int_equal(cfg_read(1, 0x14, 4), 0xFFFFFF01u);
	for (unsigned b = 2; b < 6; b++)
		assert_int_equal(cfg_read(1, 0x10 + 4 * b, 4), 0);
	cfg_write(1, 0x10, b0, 4);
	cfg_write(1, 0x14, b1, 4);
	assert_int_equal(cfg_read(1, 0x10, 4), b0);
	assert_int_equal(cfg_read(1, 0x14, 4), b1);
}

/* Each test's header: what kvm-unit-tests reads before writing. */
static void test_headers(void **state)
{
	(void)state;
	static const char *const names[6] = {
		"mmio-no-eventfd",   "mmio-wildcard-eventfd",   "mmio-datamatch-eventfd",
		"portio-no-eventfd", "portio-wildcard-eventfd", "portio-datamatch-eventfd"};
	/* Nothing selected: the header reads 0. */
	assert_int_equal(bar(false, 0, false, 0, 4), 0);
	assert_int_equal(bar(true, 12, false, 0, 4), 0);
	for (unsigned i = 0; i < 6; i++) {
		bool io = i >= 3;
		bar(io, 0, true, i % 3, 1);
		/* Either BAR reads the selected test's header. */
		for (int via = 0; via < 2; via++) {
			assert_int_equal(bar(via, 0, false, 0, 1), i);
			assert_int_equal(bar(via, 1, false, 0, 1), 1);
			assert_int_equal(bar(via, 4, false, 0, 4), (io ? 128u : 2048u) + i);
			assert_int_equal(bar(via, 8, false, 0, 4), i % 3 == 1 ? 0xCE : 0xFA);
			assert_int_equal(bar(via, 12, false, 0, 4), 0);
			size_t len = strlen(names[i]);
			for (size_t c = 0; c <= len; c++)
				assert_int_equal(bar(via, 16 + (uint32_t)c, false, 0, 1),
				                 c < len ? (uint8_t)names[i][c] : 0);
			/* Past the header: 0, however far. */
			assert_int_equal(bar(via, 16 + (uint32_t)len + 1, false, 0, 4), 0);
			assert_int_equal(bar(via, 200, false, 0, 4), 0);
		}
	}
	/* A test number >= 3 selects none. */
	bar(false, 0, true, 3, 1);
	assert_int_equal(bar(false, 1, false, 0, 1), 0);
	bar(true, 0, true, 0xFF, 1);
	assert_int_equal(bar(true, 1, false, 0, 1), 0);
}

/* kvm-unit-tests' pci_testdev_one(), per BAR: select, check count 0,
 * write (data) 16 times at (offset) with (width) bytes, read count. */
static uint32_t run_one(bool io, unsigned nr, uint32_t value_xor)
{
	bar(io, 0, true, nr, 1);
	assert_int_equal(bar(io, 12, false, 0, 4), 0);
	unsigned width = bar(io, 1, false, 0, 1);
	assert_int_equal(width, 1);
	uint32_t sig = bar(io, 8, false, 0, 4) ^ value_xor;
	uint32_t off = bar(io, 4, false, 0, 4);
	for (int i = 0; i < 16; i++)
		bar(io, off, true, sig, width);
	return bar(io, 12, false, 0, 4);
}

static void test_hits(void **state)
{
	(void)state;
	for (int io = 0; io < 2; io++)
		for (unsigned nr = 0; nr < 3; nr++)
			assert_int_equal(run_one(io, nr, 0), 16);
	/* Another value: counted by the wildcard tests only. */
	for (int io = 0; io < 2; io++) {
		assert_int_equal(run_one(io, 0, 0x01), 0);
		assert_int_equal(run_one(io, 1, 0x01), 16);
		assert_int_equal(run_one(io, 2, 0x01), 0);
	}
	/* Selecting again zeroes the count. */
	bar(false, 0, true, 1, 1);
	bar(false, 2049, true, 0, 1);
	assert_int_equal(bar(false, 12, false, 0, 4), 1);
	bar(false, 0, true, 1, 1);
	assert_int_equal(bar(false, 12, false, 0, 4), 0);
	/* Other offsets, and the other BAR, do not count. */
	bar(false, 2048, true, 0xFA, 1);
	bar(false, 2050, true, 0xFA, 1);
	bar(true, 2049 - 2048, true, 0xFA, 1);
	bar(true, 129, true, 0xFA, 1); /* mmio test 1's offset is 2049, not 129 */
	assert_int_equal(bar(false, 12, false, 0, 4), 0);
	/* Wider writes act as their bytes: the low byte lands on (offset). */
	bar(true, 0, true, 2, 1); /* portio-datamatch-eventfd, offset 133 */
	bar(true, 133, true, 0x77FA, 2);
	bar(true, 133, true, 0x112233FAu, 4);
	bar(true, 132, true, 0xFA00, 2); /* second byte on 133 */
	bar(true, 133, true, 0xFB, 1);
	assert_int_equal(bar(true, 12, false, 0, 4), 3);
	/* The header is read-only but for byte 0 (count and data stay). */
	bar(true, 12, true, 0, 4);
	bar(true, 8, true, 0x55, 1);
	assert_int_equal(bar(true, 12, false, 0, 4), 3);
	assert_int_equal(bar(true, 8, false, 0, 1), 0xFA);
}

/* Garbage through both BARs at every offset and width leaves the device
 * consistent: a later selection still counts exactly. */
static void test_garbage(void **state)
{
	(void)state;
	uint32_t x = 12345;
	for (int i = 0; i < 20000; i++) {
		x = x * 1103515245u + 12345u;
		bool io = x & 1;
		unsigned size = 1u << ((x >> 1) & 3);
		if (size == 8)
			size = 4;
		uint32_t len = io ? 256 : 4096;
		uint32_t off = (x >> 4) % (len - size + 1);
		bar(io, off, (x >> 20) & 1, x, size);
	}
	/* Out-of-range guest config: moving a BAR out of its window makes it
	 * unreachable, not a crash. */
	cfg_write(1, 0x14, 0x0000FF00u, 4);
	assert_int_equal(fake_bus_xfer(&test_vm.io_bus, VM_PCI_IO_BASE, false, 0, 1), 0xFF);
	cfg_write(1, 0x14, bar1, 4);
	for (int io = 0; io < 2; io++)
		for (unsigned nr = 0; nr < 3; nr++)
			assert_int_equal(run_one(io, nr, 0), 16);
}

/* ---- snapshot section ------------------------------------------------------- */

/* Counts of several tests and the selected one save and load (with the
 * bus's config space) into a fresh machine, which reads the same header
 * and counts on from there. */
static void test_snapshot(void **state)
{
	(void)state;
	bar(false, 0, true, 1, 1); /* mmio wildcard: two hits */
	bar(false, PT_MEMSIZE + 1, true, 0x12, 1);
	bar(false, PT_MEMSIZE + 1, true, 0x34, 1);
	bar(true, 0, true, 2, 1); /* portio datamatch: three hits, one miss; stays selected */
	for (unsigned i = 0; i < 3; i++)
		bar(true, PT_IOSIZE + 5, true, PT_DATAMATCH, 1);
	bar(true, PT_IOSIZE + 5, true, 0x00, 1);
	struct snap_writer wp, wt;
	snapt_save(&test_vm, "pci", &wp);
	snapt_save(&test_vm, "pci-testdev", &wt);
	assert_int_equal(wt.len, 1 + 4 * PT_TESTS);
	static struct vm vb;
	memset(&vb, 0, sizeof(vb));
	vb.io_bus.kind = ZHV_TRAP_IO;
	vb.mmio_bus.kind = ZHV_TRAP_MEM;
	assert_int_equal(pci_init(&vb), 0);
	assert_int_equal(pci_testdev_create(&vb), 0);
	snapt_check_bad_lengths(&vb, "pci-testdev", wt.buf, wt.len, 0);
	snapt_check_bad_byte(&vb, "pci-testdev", wt.buf, wt.len, 0, 6, 0);
	snapt_check_bad_byte(&vb, "pci-testdev", wt.buf, wt.len, 0, 0x80, 0);
	assert_int_equal(snapt_load(&vb, "pci", wp.buf, wp.len), 0);
	assert_int_equal(snapt_load(&vb, "pci-testdev", wt.buf, wt.len), 0);
	snap_writer_free(&wp);
	snap_writer_free(&wt);
	uint8_t ha[48], hb[48];
	for (unsigned off = 0; off < sizeof(ha); off++) {
		ha[off] = (uint8_t)bar(true, off, false, 0, 1);
		hb[off] = (uint8_t)fake_bus_xfer(&vb.io_bus, bar1 + off, false, 0, 1);
	}
	assert_memory_equal(ha, hb, sizeof(ha));
	assert_int_equal(hb[PT_HDR_COUNT], 3);
	/* One more hit on each; then the mmio test's count. */
	bar(true, PT_IOSIZE + 5, true, PT_DATAMATCH, 1);
	fake_bus_xfer(&vb.io_bus, bar1 + PT_IOSIZE + 5, true, PT_DATAMATCH, 1);
	assert_int_equal(fake_bus_xfer(&vb.io_bus, bar1 + PT_HDR_COUNT, false, 0, 4), 4);
	fake_bus_xfer(&vb.mmio_bus, bar0, true, 1, 1);
	assert_int_equal(fake_bus_xfer(&vb.mmio_bus, bar0 + PT_HDR_COUNT, false, 0, 4), 0); /* selecting resets */
	fake_vm_teardown(&vb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
