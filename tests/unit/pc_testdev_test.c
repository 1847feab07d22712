/* pc_testdev_test.c: unit tests of QEMU's pc-testdev (dev/pc_testdev.c):
 * its ranges, the 0xe0/0xe8 register's byte lanes, the flush-page port,
 * IRQ-line ports driving ISA lines, the 64 KiB MMIO window, and odd
 * widths, offsets and lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../vmm/dev/pc_testdev.c"
#include "fake_bus.h"
#include "snap_util.h"

/* ---- stubs ------------------------------------------------------------------ */

/* The interrupt lines as the controllers see them. */
static int line_level[VM_IOAPIC_PINS];
static unsigned line_calls, last_source;

void vm_irq_set_shared(struct vm *vm, unsigned gsi, unsigned source, int level)
{
	(void)vm;
	assert_true(gsi < VM_IOAPIC_PINS);
	line_level[gsi] = level;
	last_source = source;
	line_calls++;
}

/* ---- helpers ---------------------------------------------------------------- */

static struct vm test_vm;

static int setup(void **state)
{
	(void)state;
	memset(&test_vm, 0, sizeof(test_vm));
	test_vm.io_bus.kind = ZHV_TRAP_IO;
	test_vm.mmio_bus.kind = ZHV_TRAP_MEM;
	memset(line_level, 0, sizeof(line_level));
	line_calls = 0;
	assert_int_equal(pc_testdev_create(&test_vm), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fake_vm_teardown(&test_vm);
	return 0;
}

static uint64_t io(uint16_t port, bool write, uint64_t v, unsigned size)
{
	return fake_bus_xfer(&test_vm.io_bus, port, write, v, size);
}

static uint64_t mem(uint64_t addr, bool write, uint64_t v, unsigned size)
{
	return fake_bus_xfer(&test_vm.mmio_bus, addr, write, v, size);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_ranges(void **state)
{
	(void)state;
	/* QEMU's: 0xe0 (4), 0xe4 (4), 0xe8 (4), 0x2000 (24), MMIO 0xff000000 (64 KiB). */
	static const struct {
		uint64_t base, len;
		bool mmio;
	} want[] = {{0xE0, 4, false},    {0xE4, 4, false},        {0xE8, 4, false},
	            {0x2000, 24, false}, {0xFF000000, 0x10000, true}};
	assert_int_equal(test_vm.io_bus.count, 4);
	assert_int_equal(test_vm.mmio_bus.count, 1);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct bus_range *r =
			fake_bus_find(want[i].mmio ? &test_vm.mmio_bus : &test_vm.io_bus, want[i].base);
		assert_non_null(r);
		assert_int_equal(r->base, want[i].base);
		assert_int_equal(r->len, want[i].len);
	}
	assert_null(fake_bus_find(&test_vm.io_bus, 0xEC));
	assert_null(fake_bus_find(&test_vm.io_bus, 0xDF));
	assert_null(fake_bus_find(&test_vm.io_bus, 0x2018));
	/* A second pc-testdev would overlap the first. */
	assert_int_equal(pc_testdev_create(&test_vm), -EEXIST);
	assert_int_equal(pc_testdev_create(NULL), -EINVAL);
}

static void test_ioport_register(void **state)
{
	(void)state;
	assert_int_equal(io(0xE0, false, 0, 4), 0); /* starts at 0 */
	io(0xE0, true, 0x12345678u, 4);
	assert_int_equal(io(0xE0, false, 0, 4), 0x12345678u);
	assert_int_equal(io(0xE0, false, 0, 1), 0x78);
	assert_int_equal(io(0xE1, false, 0, 1), 0x56);
	assert_int_equal(io(0xE2, false, 0, 2), 0x1234);
	/* A narrow write changes its lanes only (QEMU's mask << start_bit). */
	io(0xE1, true, 0xAB, 1);
	assert_int_equal(io(0xE0, false, 0, 4), 0x1234AB78u);
	io(0xE2, true, 0xCDEF, 2);
	assert_int_equal(io(0xE0, false, 0, 4), 0xCDEFAB78u);
	/* rep outsb: the last byte written is what inb reads. */
	const char *s = "Hello World!";
	for (size_t i = 0; s[i]; i++)
		io(0xE0, true, (uint8_t)s[i], 1);
	assert_int_equal(io(0xE0, false, 0, 1), '!');
	/* 0xe8 is the same register. */
	io(0xE8, true, 0xA5A5F00Du, 4);
	assert_int_equal(io(0xE0, false, 0, 4), 0xA5A5F00Du);
	io(0xE0, true, 0x01020304u, 4);
	assert_int_equal(io(0xE8, false, 0, 4), 0x01020304u);
	assert_int_equal(io(0xEB, false, 0, 1), 0x01);
}

static void test_ioport_odd_accesses(void **state)
{
	(void)state;
	io(0xE0, true, 0x44332211u, 4);
	/* Past the register's end: the bytes inside it count, the rest read
	 * all-ones and are dropped on write. */
	assert_int_equal(io(0xE3, false, 0, 4), 0xFFFFFF44u);
	assert_int_equal(io(0xE2, false, 0, 4), 0xFFFF4433u);
	io(0xE3, true, 0xDDCCBB99u, 4);
	assert_int_equal(io(0xE0, false, 0, 4), 0x99332211u);
	/* An 8-byte access (never from port I/O, but the bus allows it). */
	assert_int_equal(io(0xE0, false, 0, 8), 0xFFFFFFFF99332211ull);
	io(0xE8, true, 0x1122334455667788ull, 8);
	assert_int_equal(io(0xE0, false, 0, 4), 0x55667788u);
}

static void test_flush_page(void **state)
{
	(void)state;
	io(0xE0, true, 0xCAFEBABEu, 4);
	mem(0xFF000010, true, 0x5A, 1);
	/* A flush of any address, at any width, changes nothing the guest sees. */
	io(0xE4, true, 0x00100000u, 4);
	io(0xE4, true, 0xFF000000u, 4);
	io(0xE4, true, 0xFFFFFFFFu, 4);
	io(0xE5, true, 0x12, 1);
	io(0xE4, true, 0x1234, 2);
	assert_int_equal(io(0xE0, false, 0, 4), 0xCAFEBABEu);
	assert_int_equal(mem(0xFF000010, false, 0, 1), 0x5A);
	assert_int_equal(line_calls, 0);
	/* Write-only: reads are all-ones, like an undecoded port. */
	assert_int_equal(io(0xE4, false, 0, 4), 0xFFFFFFFFu);
	assert_int_equal(io(0xE6, false, 0, 1), 0xFF);
}

static void test_irq_lines(void **state)
{
	(void)state;
	/* 0x2000 + n, one byte: n's level is (V != 0). */
	io(0x200E, true, 1, 1);
	assert_int_equal(line_level[14], 1);
	assert_int_equal(last_source, TESTDEV_IRQ_SOURCE);
	io(0x200E, true, 0, 1);
	assert_int_equal(line_level[14], 0);
	io(0x200F, true, 0x80, 1);
	assert_int_equal(line_level[15], 1);
	io(0x200F, true, 0, 1);
	assert_int_equal(line_level[15], 0);
	for (unsigned n = 0; n < 16; n++) {
		io((uint16_t)(0x2000 + n), true, 0xFF, 1);
		assert_int_equal(line_level[n], 1);
	}
	for (unsigned n = 0; n < 16; n++) {
		io((uint16_t)(0x2000 + n), true, 0, 1);
		assert_int_equal(line_level[n], 0);
	}
	assert_int_equal(line_calls, 36);
	assert_int_equal(((struct pc_testdev *)fake_bus_find(&test_vm.io_bus, 0x2000)->opaque)->lines, 0);
}

static void test_irq_bad_input(void **state)
{
	(void)state;
	/* Lines 16-23 are not ISA lines (QEMU aborts): ignored. */
	for (unsigned n = 16; n < 24; n++)
		io((uint16_t)(0x2000 + n), true, 1, 1);
	/* Wider writes are not valid (QEMU: 1 byte only): ignored. */
	io(0x2003, true, 1, 2);
	io(0x2004, true, 0x01010101u, 4);
	io(0x2016, true, 1, 4); /* and one running past the range */
	assert_int_equal(line_calls, 0);
	/* Reads: all-ones, no line moves. */
	assert_int_equal(io(0x2000, false, 0, 1), 0xFF);
	assert_int_equal(io(0x2010, false, 0, 4), 0xFFFFFFFFu);
	assert_int_equal(line_calls, 0);
	for (unsigned n = 0; n < VM_IOAPIC_PINS; n++)
		assert_int_equal(line_level[n], 0);
}

static void test_iomem(void **state)
{
	(void)state;
	const uint64_t base = 0xFF000000ull;
	assert_int_equal(mem(base, false, 0, 4), 0); /* starts zeroed */
	mem(base, true, 0x11223344u, 4);
	assert_int_equal(mem(base, false, 0, 4), 0x11223344u);
	assert_int_equal(mem(base + 1, false, 0, 2), 0x2233);
	mem(base + 2, true, 0xEE, 1);
	assert_int_equal(mem(base, false, 0, 4), 0x11EE3344u);
	mem(base + 0x100, true, 0x0123456789ABCDEFull, 8);
	assert_int_equal(mem(base + 0x100, false, 0, 8), 0x0123456789ABCDEFull);
	assert_int_equal(mem(base + 0x104, false, 0, 4), 0x01234567u);
	/* The last bytes of the window, and an access running past it. */
	mem(base + 0xFFFC, true, 0xA1B2C3D4u, 4);
	assert_int_equal(mem(base + 0xFFFF, false, 0, 1), 0xA1);
	assert_int_equal(mem(base + 0xFFFE, false, 0, 4), 0xFFFFA1B2u);
	mem(base + 0xFFFD, true, 0x55667788u, 4);
	assert_int_equal(mem(base + 0xFFFC, false, 0, 4), 0x667788D4u);
	/* Every byte is its own storage. */
	for (unsigned off = 0; off < 0x10000; off += 0x1001)
		mem(base + off, true, off & 0xFF, 1);
	for (unsigned off = 0; off < 0x10000; off += 0x1001)
		assert_int_equal(mem(base + off, false, 0, 1), off & 0xFF);
	/* The I/O register is separate storage. */
	assert_int_equal(io(0xE0, false, 0, 4), 0);
}

/* ---- snapshot section ------------------------------------------------------- */

/* Register, lines and iomem save and load into a fresh device that reads
 * the same; damaged sections are refused. */
static void test_snapshot(void **state)
{
	(void)state;
	io(0xE0, true, 0xA1B2C3D4, 4);
	io(0x2000 + 5, true, 1, 1);
	io(0x2000 + 0, true, 1, 1);
	for (unsigned off = 0; off < TESTDEV_IOMEM_LEN; off += 0x1000)
		mem(TESTDEV_IOMEM_BASE + off + (off >> 12), true, 0x0123456789ABCDEFull ^ off, 8);
	struct snap_writer w;
	snapt_save(&test_vm, "pc-testdev", &w);
	assert_int_equal(w.len, 8 + TESTDEV_IOMEM_LEN);
	static struct vm vb;
	memset(&vb, 0, sizeof(vb));
	vb.io_bus.kind = ZHV_TRAP_IO;
	vb.mmio_bus.kind = ZHV_TRAP_MEM;
	assert_int_equal(pc_testdev_create(&vb), 0);
	snapt_check_bad_lengths(&vb, "pc-testdev", w.buf, w.len, 0);
	snapt_check_bad_byte(&vb, "pc-testdev", w.buf, w.len, 6, 0x01, 0); /* line 16 */
	snapt_check_bad_byte(&vb, "pc-testdev", w.buf, w.len, 7, 0x80, 0); /* line 31 */
	unsigned calls = line_calls;
	assert_int_equal(snapt_load(&vb, "pc-testdev", w.buf, w.len), 0);
	assert_int_equal(line_calls, calls); /* the lines are the IOAPIC's to restore */
	snap_writer_free(&w);
	assert_int_equal(fake_bus_xfer(&vb.io_bus, 0xE0, false, 0, 4), 0xA1B2C3D4);
	assert_int_equal(fake_bus_xfer(&vb.io_bus, 0xE9, false, 0, 1), 0xC3);
	for (unsigned off = 0; off < TESTDEV_IOMEM_LEN; off += 8)
		assert_int_equal(fake_bus_xfer(&vb.mmio_bus, TESTDEV_IOMEM_BASE + off, false, 0, 8),
		                 mem(TESTDEV_IOMEM_BASE + off, false, 0, 8));
	struct pc_testdev *tb = vb.io_bus.ranges[0].opaque;
	assert_int_equal(tb->lines, 1u << 5 | 1u);
	/* The next write of a line is a change from the loaded level. */
	fake_bus_xfer(&vb.io_bus, 0x2000 + 5, true, 0, 1);
	assert_int_equal(line_level[5], 0);
	assert_int_equal(tb->lines, 1u);
	fake_vm_teardown(&vb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ioport_register, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ioport_odd_accesses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_page, setup, teardown),
		cmocka_unit_test_setup_teardown(test_irq_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_irq_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iomem, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
