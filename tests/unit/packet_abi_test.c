/* packet_abi_test.c: zhv_packet_t against Zircon's zx_port_packet_t
 * (zircon/syscalls/port.h): the size zhv.h states, Zircon's field offsets,
 * Zircon's type numbers, and libzhv's own types outside Zircon's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "zhv.h"

/* Every packet type number Zircon has used: USER 0, SIGNAL_ONE 1,
 * SIGNAL_REP 2 (removed), GUEST_BELL 3, GUEST_MEM 4, GUEST_IO 5,
 * GUEST_VCPU 6, INTERRUPT 7 (EXCEPTION(n) = 7 | n << 8 in old trees),
 * PAGE_REQUEST 9, PROCESSOR_POWER_LEVEL_TRANSITION_REQUEST 10. */
#define ZIRCON_MAX_TYPE 0x0Au

static void test_size(void **state)
{
	/* Zircon's is 48: 32-byte payloads. Ours carries the MEM access. */
	assert_int_equal(sizeof(zhv_packet_t), 56);
	assert_int_equal(sizeof(zhv_packet_user_t), 32);
	assert_int_equal(sizeof(zhv_packet_guest_bell_t), 32);
	assert_int_equal(sizeof(zhv_packet_guest_io_t), 32);
	assert_int_equal(sizeof(zhv_packet_guest_vcpu_t), 32);
	assert_int_equal(sizeof(zhv_packet_guest_eoi_t), 32);
	assert_int_equal(sizeof(zhv_packet_guest_mem_t), 40);
}

static void test_zircon_offsets(void **state)
{
	assert_int_equal(offsetof(zhv_packet_t, key), 0);
	assert_int_equal(offsetof(zhv_packet_t, type), 8);
	assert_int_equal(offsetof(zhv_packet_t, status), 12);
	assert_int_equal(offsetof(zhv_packet_t, user), 16);
	assert_int_equal(offsetof(zhv_packet_guest_mem_t, addr), 0);
	assert_int_equal(offsetof(zhv_packet_guest_mem_t, cr3), 8);
	assert_int_equal(offsetof(zhv_packet_guest_mem_t, rip), 16);
	assert_int_equal(offsetof(zhv_packet_guest_mem_t, instruction_size), 24);
	assert_int_equal(offsetof(zhv_packet_guest_mem_t, default_operand_size), 25);
	assert_int_equal(offsetof(zhv_packet_guest_io_t, port), 0);
	assert_int_equal(offsetof(zhv_packet_guest_io_t, access_size), 2);
	assert_int_equal(offsetof(zhv_packet_guest_io_t, input), 3);
	assert_int_equal(offsetof(zhv_packet_guest_io_t, data), 4);
	assert_int_equal(offsetof(zhv_packet_guest_vcpu_t, interrupt.mask), 8);
	assert_int_equal(offsetof(zhv_packet_guest_vcpu_t, interrupt.vector), 16);
	assert_int_equal(offsetof(zhv_packet_guest_vcpu_t, startup.entry), 16);
}

static void test_zircon_type_numbers(void **state)
{
	assert_int_equal(ZHV_PKT_TYPE_USER, 0);
	assert_int_equal(ZHV_PKT_TYPE_GUEST_BELL, 3);
	assert_int_equal(ZHV_PKT_TYPE_GUEST_MEM, 4);
	assert_int_equal(ZHV_PKT_TYPE_GUEST_IO, 5);
	assert_int_equal(ZHV_PKT_TYPE_GUEST_VCPU, 6);
}

/* libzhv's own types are none of Zircon's, even masked to a byte. */
static void test_own_types_outside_zircon(void **state)
{
	const uint32_t own[] = {ZHV_PKT_TYPE_GUEST_EOI};

	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		assert_true(own[i] & 0x80000000u);
		assert_true((own[i] & 0xFFu) > ZIRCON_MAX_TYPE);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_zircon_offsets),
		cmocka_unit_test(test_zircon_type_numbers),
		cmocka_unit_test(test_own_types_outside_zircon),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
