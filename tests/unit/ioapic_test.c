/* ioapic_test.c: unit tests of the IOAPIC model (dev/ioapic.c): registers, redirection entries, MSI encoding, masking, edge and level behaviour, ISA IRQ 0 on pin 2, the routes given to libzhv and the local APIC's EOI broadcast (ioapic_eoi). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../vmm/dev/ioapic.c"
#include "fake_bus.h"
#include "snap_util.h"

/* ---- stubs ------------------------------------------------------------------ */

struct msi {
	uint64_t addr;
	uint32_t data;
};
static struct msi msis[64];
static unsigned nmsi;

zhv_status_t zhv_guest_signal_msi(zhv_guest_t *guest, uint64_t address, uint32_t data)
{
	assert_non_null(guest);
	if (nmsi < sizeof(msis) / sizeof(msis[0]))
		msis[nmsi] = (struct msi){address, data};
	nmsi++;
	return ZHV_OK;
}

struct route_call {
	uint32_t pin;
	uint64_t addr;
	uint32_t data;
	bool enabled;
};
static struct route_call routes[64];
static unsigned nroute;
static zhv_status_t route_status = ZHV_OK; /* what the stub returns */

zhv_status_t zhv_guest_set_irq_route(zhv_guest_t *guest, uint32_t pin, uint64_t msi_address,
                                     uint32_t msi_data, bool enabled)
{
	assert_non_null(guest);
	assert_true(pin < VM_IOAPIC_PINS);
	if (nroute < sizeof(routes) / sizeof(routes[0]))
		routes[nroute] = (struct route_call){pin, msi_address, msi_data, enabled};
	nroute++;
	return route_status;
}

/* ---- helpers ---------------------------------------------------------------- */

/* Every machine stays reachable (devices have no destroy call), so that
 * LeakSanitizer under `make sanitize` sees no leak. */
static struct vm vms[32];
static unsigned nvms;
#define test_vm (vms[nvms - 1])
static struct ioapic *io;

static int setup(void **state)
{
	(void)state;
	assert_true(nvms < sizeof(vms) / sizeof(vms[0]));
	nvms++;
	test_vm.mmio_bus.kind = ZHV_TRAP_MEM;
	test_vm.guest = (zhv_guest_t *)&test_vm; /* any non-NULL handle */
	assert_int_equal(ioapic_create(&test_vm), 0);
	io = test_vm.ioapic;
	assert_non_null(io);
	nmsi = 0;
	nroute = 0;
	route_status = ZHV_OK;
	return 0;
}

static void mmio(uint64_t off, bool write, uint8_t *data, unsigned size)
{
	const struct bus_range *r = &test_vm.mmio_bus.ranges[0];
	r->fn(r->opaque, off, write, data, size);
}

static void mmio_w32(uint64_t off, uint32_t v)
{
	uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	mmio(off, true, d, 4);
}

static uint32_t mmio_r32(uint64_t off)
{
	uint8_t d[4] = {0};
	mmio(off, false, d, 4);
	return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

static uint32_t reg_read(uint32_t reg)
{
	mmio_w32(0x00, reg);
	return mmio_r32(0x10);
}

static void reg_write(uint32_t reg, uint32_t v)
{
	mmio_w32(0x00, reg);
	mmio_w32(0x10, v);
}

static void rte_write(unsigned pin, uint64_t e)
{
	reg_write(0x10 + 2 * pin + 1, (uint32_t)(e >> 32));
	reg_write(0x10 + 2 * pin, (uint32_t)e);
}

static uint64_t rte_read(unsigned pin)
{
	return reg_read(0x10 + 2 * pin) | (uint64_t)reg_read(0x10 + 2 * pin + 1) << 32;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_registration_and_ids(void **state)
{
	(void)state;
	assert_int_equal(test_vm.mmio_bus.count, 1);
	assert_int_equal(test_vm.mmio_bus.ranges[0].base, VM_IOAPIC_BASE);
	assert_int_equal(test_vm.mmio_bus.ranges[0].len, 0x1000);
	assert_int_equal(reg_read(0x01), 0x00170020u); /* version 0x20, 24 pins */
	assert_int_equal(reg_read(0x00), 0);
	reg_write(0x00, 0xFFFFFFFFu);
	assert_int_equal(reg_read(0x00), 0x0F000000u); /* only the ID bits */
	reg_write(0x01, 0x12345678u);                 /* version is read-only */
	assert_int_equal(reg_read(0x01), 0x00170020u);
	assert_int_equal(mmio_r32(0x00), 0x01); /* IOREGSEL reads back */
	assert_int_equal(reg_read(0x3F), 0);    /* past the table */
}

static void test_redirection_read_write(void **state)
{
	(void)state;
	for (unsigned pin = 0; pin < VM_IOAPIC_PINS; pin++)
		assert_int_equal(rte_read(pin), 0x10000); /* reset: masked */
	rte_write(7, 0xFF00000000000000ull | 0x1FFFF);
	/* Delivery status (12) and Remote-IRR (14) are read-only. */
	assert_int_equal(rte_read(7), 0xFF00000000000000ull | 0x1AFFF);
	rte_write(7, 0x0000000000000031ull);
	assert_int_equal(rte_read(7), 0x31);
	assert_int_equal(rte_read(6), 0x10000);
	/* A byte write to IOREGSEL, then a 2-byte read of IOWIN. */
	uint8_t sel = 0x10 + 2 * 7, d[2] = {0};
	mmio(0x00, true, &sel, 1);
	mmio(0x10, false, d, 2);
	assert_int_equal(d[0], 0x31);
	assert_int_equal(d[1], 0x00);
}

static void test_masked_does_not_deliver(void **state)
{
	(void)state;
	ioapic_set_irq(io, 5, 1);
	ioapic_set_irq(io, 5, 0);
	assert_int_equal(nmsi, 0);
	rte_write(5, 0x10035); /* masked, vector 0x35 */
	ioapic_set_irq(io, 5, 1);
	assert_int_equal(nmsi, 0);
	/* An edge while masked is lost: unmasking does not deliver it. */
	rte_write(5, 0x00035);
	assert_int_equal(nmsi, 0);
}

static void test_edge_delivers_one_msi(void **state)
{
	(void)state;
	rte_write(4, (3ull << 56) | 0x31); /* fixed, physical, dest 3 */
	ioapic_set_irq(io, 4, 1);
	assert_int_equal(nmsi, 1);
	assert_int_equal(msis[0].addr, 0xFEE03000ull);
	assert_int_equal(msis[0].data, 0x31);
	ioapic_set_irq(io, 4, 1); /* still high: no new edge */
	assert_int_equal(nmsi, 1);
	ioapic_set_irq(io, 4, 0);
	assert_int_equal(nmsi, 1);
	ioapic_set_irq(io, 4, 1);
	assert_int_equal(nmsi, 2);
	/* Logical destination, lowest priority, NMI delivery modes. */
	rte_write(3, (0x0Full << 56) | (1u << 11) | (1u << 8) | 0x41);
	ioapic_set_irq(io, 3, 1);
	assert_int_equal(nmsi, 3);
	assert_int_equal(msis[2].addr, 0xFEE0F004ull);
	assert_int_equal(msis[2].data, 0x141);
	rte_write(9, (4u << 8) | 0x02);
	ioapic_set_irq(io, 9, 1);
	assert_int_equal(msis[3].data, 0x402);
	/* Extended destination ID bits 55:49 go to MSI address bits 11:5. */
	rte_write(10, (0x01ull << 56) | (0x05ull << 49) | 0x50);
	ioapic_set_irq(io, 10, 1);
	assert_int_equal(msis[4].addr, 0xFEE010A0ull);
}

static void test_level_remote_irr_and_eoi(void **state)
{
	(void)state;
	rte_write(16, (1ull << 56) | (1u << 15) | (1u << 13) | 0x40); /* level, active low */
	ioapic_set_irq(io, 16, 1);
	assert_int_equal(nmsi, 1);
	assert_int_equal(msis[0].addr, 0xFEE01000ull);
	assert_int_equal(msis[0].data, 0xC040); /* trigger level | assert | vector */
	assert_int_not_equal(rte_read(16) & (1u << 14), 0); /* Remote-IRR */
	/* EOI register with the line still high: delivered again. */
	mmio_w32(0x40, 0x40);
	assert_int_equal(nmsi, 2);
	assert_int_not_equal(rte_read(16) & (1u << 14), 0);
	/* Line low, then EOI: Remote-IRR clears, nothing delivered. */
	ioapic_set_irq(io, 16, 0);
	mmio_w32(0x40, 0x40);
	assert_int_equal(nmsi, 2);
	assert_int_equal(rte_read(16) & (1u << 14), 0);
	/* EOI of another vector leaves a set Remote-IRR alone. */
	ioapic_set_irq(io, 16, 1);
	assert_int_equal(nmsi, 3);
	mmio_w32(0x40, 0x41);
	assert_int_not_equal(rte_read(16) & (1u << 14), 0);
	/* Edge-like: a new rising edge delivers even with Remote-IRR set. */
	ioapic_set_irq(io, 16, 0);
	ioapic_set_irq(io, 16, 1);
	assert_int_equal(nmsi, 4);
	/* Reprogramming to edge clears Remote-IRR. */
	rte_write(16, 0x40);
	assert_int_equal(rte_read(16) & (1u << 14), 0);
}

static void test_unmask_level_with_line_high(void **state)
{
	(void)state;
	ioapic_set_irq(io, 17, 1);
	rte_write(17, (1u << 16) | (1u << 15) | 0x51);
	assert_int_equal(nmsi, 0);
	rte_write(17, (1u << 15) | 0x51); /* unmask: the level is sampled */
	assert_int_equal(nmsi, 1);
	assert_int_equal(msis[0].data, 0xC051);
}

/* The reset of an S3 resume: every entry masked (Remote-IRR of a level in
 * service gone, its route removed), ID 0; the input levels stay, so the
 * guest's unmask of a level entry whose line is high delivers it. */
static void test_reset(void **state)
{
	(void)state;
	reg_write(0x00, 5u << 24);
	rte_write(16, (1ull << 56) | (1u << 15) | 0x40);
	ioapic_set_irq(io, 16, 1);
	assert_int_equal(nmsi, 1);
	assert_int_not_equal(rte_read(16) & (1u << 14), 0);
	nroute = 0;
	ioapic_reset(io);
	ioapic_reset(NULL);
	assert_int_equal(reg_read(0x00), 0);
	for (unsigned pin = 0; pin < VM_IOAPIC_PINS; pin++)
		assert_int_equal(rte_read(pin), 1u << 16);
	assert_int_equal(nroute, 1); /* pin 16's route goes */
	assert_int_equal(routes[0].pin, 16);
	assert_false(routes[0].enabled);
	ioapic_set_irq(io, 16, 0);
	ioapic_set_irq(io, 16, 1); /* masked: nothing */
	assert_int_equal(nmsi, 1);
	rte_write(16, (1u << 15) | 0x40);
	assert_int_equal(nmsi, 2);
}

static void test_isa_irq0_is_pin2(void **state)
{
	(void)state;
	rte_write(0, 0x20);
	rte_write(2, 0x30);
	ioapic_set_irq(io, 0, 1);
	ioapic_set_irq(io, 0, 0);
	assert_int_equal(nmsi, 1);
	assert_int_equal(msis[0].data, 0x30);
	ioapic_set_irq(io, 2, 1); /* GSI 2 is the same pin */
	assert_int_equal(nmsi, 2);
	assert_int_equal(msis[1].data, 0x30);
}

static void test_out_of_range_and_shutdown(void **state)
{
	(void)state;
	ioapic_set_irq(io, 24, 1);
	ioapic_set_irq(io, 1000, 1);
	ioapic_set_irq(NULL, 4, 1);
	assert_int_equal(nmsi, 0);
	rte_write(4, 0x31);
	ioapic_shutdown(io);
	ioapic_set_irq(io, 4, 1);
	assert_int_equal(nmsi, 0);
}

/* Every redirection entry change tells libzhv the pin's message; a masked
 * entry's route is removed; writes that leave the message alone do not
 * call again. Reset (all masked) sets no route. */
static void test_routes_follow_entries(void **state)
{
	(void)state;
	assert_int_equal(nroute, 0);
	/* High dword of a masked entry: still no route. */
	reg_write(0x10 + 2 * 16 + 1, 2u << 24);
	assert_int_equal(nroute, 0);
	/* Unmasked level entry, vector 0x40, dest 2: route = its MSI. */
	reg_write(0x10 + 2 * 16, (1u << 15) | 0x40);
	assert_int_equal(nroute, 1);
	assert_int_equal(routes[0].pin, 16);
	assert_true(routes[0].enabled);
	assert_int_equal(routes[0].addr, 0xFEE02000ull);
	assert_int_equal(routes[0].data, 0xC040); /* level | assert | vector */
	/* The same value again: no call. */
	reg_write(0x10 + 2 * 16, (1u << 15) | 0x40);
	assert_int_equal(nroute, 1);
	/* New destination (high dword): the route follows. */
	reg_write(0x10 + 2 * 16 + 1, 5u << 24);
	assert_int_equal(nroute, 2);
	assert_int_equal(routes[1].addr, 0xFEE05000ull);
	assert_true(routes[1].enabled);
	/* Polarity is not part of the message: no call. */
	reg_write(0x10 + 2 * 16, (1u << 15) | (1u << 13) | 0x40);
	assert_int_equal(nroute, 2);
	/* Masked: route removed. Unmasked again: back. */
	reg_write(0x10 + 2 * 16, (1u << 16) | (1u << 15) | 0x40);
	assert_int_equal(nroute, 3);
	assert_int_equal(routes[2].pin, 16);
	assert_false(routes[2].enabled);
	reg_write(0x10 + 2 * 16, (1u << 15) | 0x41);
	assert_int_equal(nroute, 4);
	assert_true(routes[3].enabled);
	assert_int_equal(routes[3].data, 0xC041);
	/* Edge entries get routes too (KVM ignores them for EOIs): logical,
	 * lowest priority, no trigger bit. */
	rte_write(3, (0x0Full << 56) | (1u << 11) | (1u << 8) | 0x31);
	assert_int_equal(nroute, 5);
	assert_int_equal(routes[4].pin, 3);
	assert_int_equal(routes[4].addr, 0xFEE0F004ull);
	assert_int_equal(routes[4].data, 0x131);
	/* ISA IRQ 0's pin 2 is a pin like any other. */
	rte_write(2, 0x30);
	assert_int_equal(routes[nroute - 1].pin, 2);
	assert_int_equal(nmsi, 0); /* routes never deliver */
}

/* A route libzhv refused is retried at the entry's next change. */
static void test_route_failure_retried(void **state)
{
	(void)state;
	route_status = ZHV_ERR_IO;
	rte_write(7, (1u << 15) | 0x57);
	assert_int_equal(nroute, 1);
	route_status = ZHV_OK;
	rte_write(7, (1u << 15) | 0x57); /* same entry: the route is still owed */
	assert_int_equal(nroute, 2);
	assert_true(routes[1].enabled);
	rte_write(7, (1u << 15) | 0x57);
	assert_int_equal(nroute, 2);
	/* After shutdown the guest may be gone: no more calls. */
	ioapic_shutdown(io);
	rte_write(7, (1u << 16) | (1u << 15) | 0x57);
	assert_int_equal(nroute, 2);
}

/* The local APIC's EOI (ioapic_eoi): a level entry in service whose line
 * is still high is delivered again; once the line is low the EOI only
 * clears Remote-IRR. */
static void test_lapic_eoi_redelivers_while_high(void **state)
{
	(void)state;
	rte_write(16, (1ull << 56) | (1u << 15) | (1u << 13) | 0x40); /* level, dest 1 */
	ioapic_set_irq(io, 16, 1);
	assert_int_equal(nmsi, 1);
	assert_int_not_equal(rte_read(16) & (1u << 14), 0);
	/* EOI, line still high: again, Remote-IRR set again. */
	ioapic_eoi(io, 0x40);
	assert_int_equal(nmsi, 2);
	assert_int_equal(msis[1].addr, 0xFEE01000ull);
	assert_int_equal(msis[1].data, 0xC040);
	assert_int_not_equal(rte_read(16) & (1u << 14), 0);
	ioapic_eoi(io, 0x40);
	assert_int_equal(nmsi, 3);
	/* An EOI of another vector changes nothing. */
	ioapic_eoi(io, 0x41);
	assert_int_equal(nmsi, 3);
	assert_int_not_equal(rte_read(16) & (1u << 14), 0);
	/* The line drops (the handler served the device): the EOI clears
	 * Remote-IRR and delivers nothing; a second EOI is a no-op. */
	ioapic_set_irq(io, 16, 0);
	ioapic_eoi(io, 0x40);
	assert_int_equal(nmsi, 3);
	assert_int_equal(rte_read(16) & (1u << 14), 0);
	ioapic_eoi(io, 0x40);
	assert_int_equal(nmsi, 3);
	/* High again: a new interrupt, and the cycle repeats. */
	ioapic_set_irq(io, 16, 1);
	assert_int_equal(nmsi, 4);
	ioapic_set_irq(io, 16, 0);
	ioapic_eoi(io, 0x40);
	assert_int_equal(nmsi, 4);
	assert_int_equal(rte_read(16) & (1u << 14), 0);
	ioapic_eoi(NULL, 0x40); /* no IOAPIC: no-op */
}

/* Every level entry with the EOI's vector is served (two pins sharing a
 * vector, as a PC's broadcast EOI does); edge entries are untouched. */
static void test_lapic_eoi_all_pins_of_vector(void **state)
{
	(void)state;
	rte_write(20, (1u << 15) | 0x60);
	rte_write(21, (1u << 15) | 0x60);
	rte_write(22, 0x60); /* edge, same vector */
	ioapic_set_irq(io, 20, 1);
	ioapic_set_irq(io, 21, 1);
	ioapic_set_irq(io, 22, 1);
	assert_int_equal(nmsi, 3);
	ioapic_set_irq(io, 21, 0);
	ioapic_eoi(io, 0x60);
	assert_int_equal(nmsi, 4); /* pin 20 only: 21 is low, 22 is edge */
	assert_int_equal(msis[3].data, 0xC060);
	assert_int_not_equal(rte_read(20) & (1u << 14), 0);
	assert_int_equal(rte_read(21) & (1u << 14), 0);
	assert_int_equal(rte_read(22) & (1u << 14), 0);
}

/* A level entry masked while in service (Linux masks oneshot interrupts
 * before their EOI): the route stays until the EOI reaches the IOAPIC,
 * which clears Remote-IRR without delivering; then the route goes. The
 * unmask samples the line that is still high. */
static void test_masked_in_service(void **state)
{
	(void)state;
	rte_write(18, (1u << 15) | 0x70);
	unsigned r0 = nroute;
	ioapic_set_irq(io, 18, 1);
	assert_int_equal(nmsi, 1);
	rte_write(18, (1u << 16) | (1u << 15) | 0x70); /* mask, in service */
	assert_int_equal(nroute, r0); /* route kept */
	ioapic_eoi(io, 0x70);
	assert_int_equal(nmsi, 1); /* masked: not delivered */
	assert_int_equal(rte_read(18) & (1u << 14), 0);
	assert_int_equal(nroute, r0 + 1);
	assert_false(routes[r0].enabled);
	assert_int_equal(routes[r0].pin, 18);
	rte_write(18, (1u << 15) | 0x70); /* unmask: line high, sampled */
	assert_int_equal(nmsi, 2);
	assert_int_equal(nroute, r0 + 2);
	assert_true(routes[r0 + 1].enabled);
	/* A masked level entry not in service has no route. */
	ioapic_set_irq(io, 18, 0);
	ioapic_eoi(io, 0x70);
	rte_write(18, (1u << 16) | (1u << 15) | 0x70);
	assert_false(routes[nroute - 1].enabled);
}

static void test_garbage(void **state)
{
	(void)state;
	uint32_t x = 777;
	for (unsigned i = 0; i < 100000; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		uint8_t data[8];
		for (unsigned b = 0; b < 8; b++)
			data[b] = (uint8_t)(x >> (b * 3));
		unsigned size = 1u << (x % 4);
		uint64_t off = (x >> 4) % 0x1000;
		if (off + size > 0x1000)
			off = 0x1000 - size;
		if ((x >> 16) % 4 == 0)
			off = (x >> 18) % 2 ? 0x10 : 0x00; /* hit the real registers often */
		mmio(off, (x >> 20) & 1, data, size);
		ioapic_set_irq(io, (x >> 8) % 40, (x >> 24) & 1);
		if ((x >> 28) == 0)
			ioapic_eoi(io, (uint8_t)(x >> 4));
	}
	/* Still answers correctly. */
	assert_int_equal(reg_read(0x01), 0x00170020u);
}

/* ---- snapshot section ------------------------------------------------------- */

/* Entries of each kind (edge, level in service with its input high, masked,
 * a destination), ID, IOREGSEL and the input lines save, load into a fresh
 * IOAPIC that answers every register the same, has the same routes in
 * libzhv and delivers the same on the next EOI and edge. */
static void test_snapshot(void **state)
{
	(void)state;
	struct vm *va = &test_vm;
	struct ioapic *ia = io;
	reg_write(0x00, 0x0A000000);
	rte_write(4, 0x31 | (uint64_t)3 << 56);
	rte_write(9, 0x41 | IOAPIC_RTE_LEVEL | IOAPIC_RTE_POLARITY);
	rte_write(10, 0x51 | IOAPIC_RTE_LEVEL | IOAPIC_RTE_MASKED | IOAPIC_RTE_DESTMODE);
	va->irq_sources[9] = 1u << 3;
	ioapic_set_irq(ia, 9, 1); /* delivered: Remote-IRR */
	assert_int_equal(nmsi, 1);
	mmio_w32(0x00, 0x23); /* IOREGSEL left on pin 9's high dword */
	assert_true(rte_read(9) & IOAPIC_RTE_REMOTE_IRR);
	mmio_w32(0x00, 0x23);

	struct snap_writer w;
	snapt_save(va, "ioapic", &w);
	assert_int_equal(w.len, 12 + 8 * VM_IOAPIC_PINS + 4 * VM_IOAPIC_PINS);
	setup(NULL);
	struct vm *vb = &test_vm;
	struct ioapic *ib = io;
	snapt_check_bad_lengths(vb, "ioapic", w.buf, w.len, 0);
	snapt_check_bad_byte(vb, "ioapic", w.buf, w.len, 1, 0x01, 0);  /* IOREGSEL > 0xFF */
	snapt_check_bad_byte(vb, "ioapic", w.buf, w.len, 4, 0x01, 0);  /* ID low bits */
	snapt_check_bad_byte(vb, "ioapic", w.buf, w.len, 11, 0x01, 0); /* line 24 */
	snapt_check_bad_byte(vb, "ioapic", w.buf, w.len, 12 + 8 * 4 + 1, 0x10, 0); /* DELIVS */
	snapt_check_bad_byte(vb, "ioapic", w.buf, w.len, 12 + 8 * 4 + 1, 0x40, 0); /* edge IRR */
	snapt_check_bad_byte(vb, "ioapic", w.buf, w.len, 12 + 8 * 4 + 3, 0x01, 0); /* reserved */
	snapt_check_bad_byte(vb, "ioapic", w.buf, w.len, 12 + 8 * 4 + 4, 0x01, 0); /* high RO */
	assert_int_equal(nroute, 0);
	assert_int_equal(snapt_load(vb, "ioapic", w.buf, w.len), 0);
	snap_writer_free(&w);
	/* libzhv has the routes of pins 4 and 9 (unmasked), no other. */
	assert_int_equal(nroute, 2);
	assert_int_equal(routes[0].pin, 4);
	assert_int_equal(routes[1].pin, 9);
	assert_memory_equal(ib->route, ia->route, sizeof(ia->route));
	assert_int_equal(vb->irq_sources[9], 1u << 3);
	struct vm *m[2] = {va, vb};
	uint32_t v[2][4 + 2 * VM_IOAPIC_PINS];
	unsigned first[2], count[2];
	for (unsigned n = 0; n < 2; n++) {
		nvms = (unsigned)(m[n] - vms) + 1;
		v[n][0] = mmio_r32(0x10); /* through the saved IOREGSEL */
		v[n][1] = mmio_r32(0x00);
		for (uint32_t reg = 0; reg < 2; reg++)
			v[n][2 + reg] = reg_read(reg);
		for (unsigned pin = 0; pin < VM_IOAPIC_PINS; pin++) {
			uint64_t e = rte_read(pin);
			v[n][4 + 2 * pin] = (uint32_t)e;
			v[n][5 + 2 * pin] = (uint32_t)(e >> 32);
		}
		first[n] = nmsi;
		ioapic_eoi(m[n]->ioapic, 0x41); /* input still high: again */
		ioapic_set_irq(m[n]->ioapic, 4, 1);
		count[n] = nmsi - first[n];
	}
	assert_memory_equal(v[0], v[1], sizeof(v[0]));
	assert_int_equal(v[1][0], 0);
	assert_int_equal(v[1][2], 0x0A000000);
	assert_int_equal(count[0], 2);
	assert_int_equal(count[1], 2);
	assert_memory_equal(&msis[first[0]], &msis[first[1]], 2 * sizeof(msis[0]));
	nvms = (unsigned)(vb - vms) + 1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_registration_and_ids, setup),
		cmocka_unit_test_setup(test_redirection_read_write, setup),
		cmocka_unit_test_setup(test_masked_does_not_deliver, setup),
		cmocka_unit_test_setup(test_edge_delivers_one_msi, setup),
		cmocka_unit_test_setup(test_level_remote_irr_and_eoi, setup),
		cmocka_unit_test_setup(test_unmask_level_with_line_high, setup),
		cmocka_unit_test_setup(test_reset, setup),
		cmocka_unit_test_setup(test_isa_irq0_is_pin2, setup),
		cmocka_unit_test_setup(test_out_of_range_and_shutdown, setup),
		cmocka_unit_test_setup(test_routes_follow_entries, setup),
		cmocka_unit_test_setup(test_route_failure_retried, setup),
		cmocka_unit_test_setup(test_lapic_eoi_redelivers_while_high, setup),
		cmocka_unit_test_setup(test_lapic_eoi_all_pins_of_vector, setup),
		cmocka_unit_test_setup(test_masked_in_service, setup),
		cmocka_unit_test_setup(test_garbage, setup),
		cmocka_unit_test_setup(test_snapshot, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
