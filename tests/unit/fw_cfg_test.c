/* fw_cfg_test.c: unit tests of the fw_cfg I/O interface (dev/fw_cfg.c): signature, ID, CPU count, RAM size, unknown keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../vmm/dev/fw_cfg.c"
#include "fake_bus.h"
#include "snap_util.h"

static struct vm vms[8];
static unsigned nvms;
#define test_vm (vms[nvms - 1])

static int setup(void **state)
{
	(void)state;
	assert_true(nvms < sizeof(vms) / sizeof(vms[0]));
	nvms++;
	test_vm.io_bus.kind = ZHV_TRAP_IO;
	test_vm.ncpus = 3;
	test_vm.ram_size = 0x123456789000ull;
	assert_int_equal(fw_cfg_create(&test_vm), 0);
	assert_int_equal(test_vm.io_bus.ranges[0].base, 0x510);
	return 0;
}

static void port(uint16_t p, bool write, uint8_t *data, unsigned size)
{
	const struct bus_range *r = &test_vm.io_bus.ranges[0];
	assert_true(p >= r->base && p < r->base + r->len);
	r->fn(r->opaque, p - r->base, write, data, size);
}

static void select_key(uint16_t key)
{
	uint8_t d[2] = {(uint8_t)key, (uint8_t)(key >> 8)};
	port(0x510, true, d, 2); /* outw */
}

static uint64_t read_le(unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++) {
		uint8_t b = 0xEE;
		port(0x511, false, &b, 1);
		v |= (uint64_t)b << (8 * i);
	}
	return v;
}

static void test_signature(void **state)
{
	(void)state;
	select_key(0x0000);
	char sig[5] = {0};
	for (unsigned i = 0; i < 4; i++)
		sig[i] = (char)read_le(1);
	assert_string_equal(sig, "QEMU");
	assert_int_equal(read_le(1), 0); /* past the end */
	/* Reselecting restarts at offset 0. */
	select_key(0x0000);
	assert_int_equal(read_le(1), 'Q');
}

static void test_id_cpus_ram(void **state)
{
	(void)state;
	select_key(0x0001);
	assert_int_equal(read_le(4), 1); /* traditional interface, no DMA */
	select_key(0x0005);
	assert_int_equal(read_le(2), 3);
	select_key(0x000F);
	assert_int_equal(read_le(2), 3);
	select_key(0x0003);
	assert_int_equal(read_le(8), 0x123456789000ull);
	assert_int_equal(read_le(4), 0);
}

static void test_unknown_keys_read_zero(void **state)
{
	(void)state;
	static const uint16_t keys[] = {0x0004, 0x0019, 0x0020, 0x4000, 0x8000, 0xFFFF};
	for (unsigned k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		select_key(keys[k]);
		assert_int_equal(read_le(8), 0);
	}
	/* Garbage: data writes are ignored, odd sizes survive. */
	uint8_t d[4] = {1, 2, 3, 4};
	port(0x511, true, d, 1);
	port(0x510, false, d, 2);
	select_key(0x0005);
	port(0x511, false, d, 1);
	assert_int_equal(d[0], 3);
}

/* The selected key and the offset in it save and load into a fresh
 * device, which reads on from there; an offset past the item is refused. */
static void test_snapshot(void **state)
{
	(void)state;
	struct vm *va = &test_vm;
	select_key(FW_CFG_RAM_SIZE);
	assert_int_equal(read_le(3), 0x789000);
	struct snap_writer w;
	snapt_save(va, "fw_cfg", &w);
	assert_int_equal(w.len, 6);
	setup(NULL);
	struct vm *vb = &test_vm;
	snapt_check_bad_lengths(vb, "fw_cfg", w.buf, w.len, 0);
	snapt_check_bad_byte(vb, "fw_cfg", w.buf, w.len, 2, 9, 0); /* offset 9 of 8 bytes */
	assert_int_equal(snapt_load(vb, "fw_cfg", w.buf, w.len), 0);
	snap_writer_free(&w);
	assert_int_equal(read_le(5), 0x123456);
	nvms = (unsigned)(va - vms) + 1;
	assert_int_equal(read_le(5), 0x123456);
	/* An unknown key: any offset within its (empty) item, i.e. 0. */
	select_key(0x4242);
	snapt_save(va, "fw_cfg", &w);
	snapt_check_bad_byte(vb, "fw_cfg", w.buf, w.len, 2, 1, 0);
	assert_int_equal(snapt_load(vb, "fw_cfg", w.buf, w.len), 0);
	snap_writer_free(&w);
	nvms = (unsigned)(vb - vms) + 1;
	assert_int_equal(read_le(4), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_signature, setup),
		cmocka_unit_test_setup(test_id_cpus_ram, setup),
		cmocka_unit_test_setup(test_unknown_keys_read_zero, setup),
		cmocka_unit_test_setup(test_snapshot, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
