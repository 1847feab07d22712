/* legacy_devices_test.c: unit tests of the PC legacy devices (dev/pit.c, rtc.c, pic.c, i8042.c, debug_exit.c, legacy_ports.c), without KVM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../vmm/dev/debug_exit.c"
#include "../../vmm/dev/i8042.c"
#include "../../vmm/dev/legacy_ports.c"
#include "../../vmm/dev/pic.c"
#include "../../vmm/dev/pit.c"
#include "../../vmm/dev/rtc.c"
#include "fake_bus.h"
#include "snap_util.h"

/* ---- stubs (the PIT and RTC threads call in concurrently) --------------------- */

static atomic_int irq_level[VM_IOAPIC_PINS];
static atomic_int irq_rises[VM_IOAPIC_PINS];
static atomic_int irq_pulses[VM_IOAPIC_PINS];
static int exit_calls, exit_kind_seen, exit_status_seen;

void vm_irq_set(struct vm *vm, unsigned gsi, int level)
{
	(void)vm;
	if (gsi >= VM_IOAPIC_PINS)
		return;
	if (level && !atomic_exchange(&irq_level[gsi], 1))
		atomic_fetch_add(&irq_rises[gsi], 1);
	if (!level)
		atomic_store(&irq_level[gsi], 0);
}

void vm_irq_pulse(struct vm *vm, unsigned gsi)
{
	(void)vm;
	if (gsi < VM_IOAPIC_PINS)
		atomic_fetch_add(&irq_pulses[gsi], 1);
}

/* The RTC's alarm output to the ACPI fixed hardware (dev/acpi.c): counted
 * for one machine (the RTCs of earlier tests keep running). */
static atomic_int rtc_alarm_calls;
static struct vm *_Atomic rtc_alarm_vm;
void acpi_rtc_alarm(struct vm *vm)
{
	if (vm == atomic_load(&rtc_alarm_vm))
		atomic_fetch_add(&rtc_alarm_calls, 1);
}

void vm_request_exit(struct vm *vm, enum vm_exit_kind kind, int status)
{
	(void)vm;
	exit_calls++;
	exit_kind_seen = kind;
	exit_status_seen = status;
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
	test_vm.ncpus = 2;
	test_vm.ram_size = test_vm.low_ram = 256u << 20;
	for (unsigned i = 0; i < VM_IOAPIC_PINS; i++) {
		atomic_store(&irq_level[i], 0);
		atomic_store(&irq_rises[i], 0);
		atomic_store(&irq_pulses[i], 0);
	}
	exit_calls = 0;
	return 0;
}

static uint32_t io(uint16_t port, bool write, uint32_t v, unsigned size)
{
	const struct bus *bus = &test_vm.io_bus;
	for (unsigned i = 0; i < bus->count; i++) {
		const struct bus_range *r = &bus->ranges[i];
		if (port < r->base || port >= r->base + r->len)
			continue;
		uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
		r->fn(r->opaque, port - r->base, write, d, size);
		uint32_t out = 0;
		for (unsigned b = 0; b < size; b++)
			out |= (uint32_t)d[b] << (8 * b);
		return out;
	}
	fail_msg("port %#x not registered", port);
	return 0;
}

static void outb(uint16_t port, uint8_t v)
{
	io(port, true, v, 1);
}

static uint8_t inb(uint16_t port)
{
	return (uint8_t)io(port, false, 0, 1);
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts))
		;
}

/* ---- PIT -------------------------------------------------------------------- */

static uint16_t pit_read_ch2(void)
{
	uint8_t lo = inb(0x42);
	return (uint16_t)(lo | inb(0x42) << 8);
}

static void test_pit_channel2_calibration(void **state)
{
	(void)state;
	assert_int_equal(pit_create(&test_vm), 0);
	/* Linux's quick_pit_calibrate(): gate high, speaker off, mode 0. */
	outb(0x61, (uint8_t)((inb(0x61) & ~0x02) | 0x01));
	outb(0x43, 0xB0);
	outb(0x42, 0xFF);
	outb(0x42, 0xFF);
	uint16_t a = pit_read_ch2();
	assert_int_equal(inb(0x61) & 0x20, 0); /* OUT low while counting */
	sleep_ms(5);
	uint16_t b = pit_read_ch2();
	unsigned elapsed = (uint16_t)(a - b);
	assert_true(elapsed >= 5900);  /* 5 ms = 5966 ticks */
	assert_true(elapsed < 60000);  /* a slow host, but not a stopped counter */
	/* A short count reaches terminal count: OUT (port 0x61 bit 5) goes high. */
	outb(0x43, 0xB0);
	outb(0x42, 0x00);
	outb(0x42, 0x01); /* 256 ticks, 215 us */
	sleep_ms(2);
	assert_int_not_equal(inb(0x61) & 0x20, 0);
	/* Gate low freezes the count. */
	outb(0x43, 0xB0);
	outb(0x42, 0xFF);
	outb(0x42, 0xFF);
	outb(0x61, 0x00);
	uint16_t c = pit_read_ch2();
	sleep_ms(2);
	assert_int_equal(pit_read_ch2(), c);
	outb(0x61, 0x01);
	sleep_ms(2);
	assert_true(pit_read_ch2() < c);
}

static void test_pit_latch_and_readback(void **state)
{
	(void)state;
	assert_int_equal(pit_create(&test_vm), 0);
	outb(0x61, 0x01);
	outb(0x43, 0xB0); /* ch2, lo/hi, mode 0 */
	outb(0x42, 0xFF);
	outb(0x42, 0xFF);
	outb(0x43, 0x80); /* latch ch2 */
	sleep_ms(2);
	uint16_t latched = pit_read_ch2();
	outb(0x43, 0x80);
	uint16_t again = pit_read_ch2();
	assert_true(again < latched); /* the latch was released by the full read */
	/* Read-back, status only, ch2: OUT low, rw = 3, mode 0. */
	outb(0x43, 0xE8);
	assert_int_equal(inb(0x42), 0x30);
	/* Read-back status after a control word: null count set. */
	outb(0x43, 0x96); /* ch2, lsb only, mode 3 */
	outb(0x43, 0xE8);
	assert_int_equal(inb(0x42) & 0x7F, 0x40 | 0x10 | 0x06);
	/* Modes 6 and 7 are 2 and 3. */
	outb(0x43, 0x8E);
	outb(0x43, 0xE8);
	assert_int_equal(inb(0x42) & 0x0E, 0x06);
}

static void test_pit_channel0_irq(void **state)
{
	(void)state;
	assert_int_equal(pit_create(&test_vm), 0);
	int64_t t0 = mono_ns();
	outb(0x43, 0x34); /* ch0, lo/hi, mode 2 */
	outb(0x40, 1193 & 0xFF);
	outb(0x40, 1193 >> 8); /* 1 kHz */
	sleep_ms(50);
	int n = atomic_load(&irq_pulses[0]);
	/* 50 at 1 kHz. A loaded host drops ticks, never adds: never more than
	 * one per millisecond that really passed (the sleep may last longer). */
	int64_t us = (mono_ns() - t0) / 1000;
	assert_true(n >= 10);
	assert_true(n <= us / 1000 + 1);
	/* Mode 0: one interrupt, then silence. */
	outb(0x43, 0x30);
	int before = atomic_load(&irq_pulses[0]);
	outb(0x40, 1193 & 0xFF);
	outb(0x40, 1193 >> 8);
	for (unsigned i = 0; i < 1000 && atomic_load(&irq_pulses[0]) == before; i++)
		sleep_ms(1);
	sleep_ms(20);
	assert_int_equal(atomic_load(&irq_pulses[0]), before + 1);
	/* A hostile count of 2 in mode 2 is clamped to 100 us periods. */
	outb(0x43, 0x34);
	before = atomic_load(&irq_pulses[0]);
	t0 = mono_ns();
	outb(0x40, 2);
	outb(0x40, 0);
	sleep_ms(20);
	n = atomic_load(&irq_pulses[0]) - before;
	us = (mono_ns() - t0) / 1000;
	assert_true(n > 10);
	assert_true(n <= us / 100 + 1); /* 200 in 20 ms, at most one per 100 us */
	/* A control word without a count stops the interrupts. */
	outb(0x43, 0x34);
	sleep_ms(2);
	before = atomic_load(&irq_pulses[0]);
	sleep_ms(10);
	assert_int_equal(atomic_load(&irq_pulses[0]), before);
	assert_int_equal(atomic_load(&irq_pulses[2]), 0);
}

/* ---- RTC -------------------------------------------------------------------- */

static uint8_t cmos_read(uint8_t idx)
{
	outb(0x70, idx);
	return inb(0x71);
}

static void cmos_write(uint8_t idx, uint8_t v)
{
	outb(0x70, idx);
	outb(0x71, v);
}

static int bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 0xF);
}

/* The RTC's date in seconds since the epoch (BCD, 24-hour mode). */
static time_t rtc_time_bcd(void)
{
	struct tm tm = {0};
	tm.tm_sec = bcd(cmos_read(0x00));
	tm.tm_min = bcd(cmos_read(0x02));
	tm.tm_hour = bcd(cmos_read(0x04));
	tm.tm_mday = bcd(cmos_read(0x07));
	tm.tm_mon = bcd(cmos_read(0x08)) - 1;
	tm.tm_year = bcd(cmos_read(0x32)) * 100 + bcd(cmos_read(0x09)) - 1900;
	return timegm(&tm);
}

static void test_rtc_registers_and_time(void **state)
{
	(void)state;
	assert_int_equal(rtc_create(&test_vm), 0);
	assert_int_equal(cmos_read(0x0D), 0x80);
	assert_int_equal(cmos_read(0x0B), 0x02); /* 24 h, BCD */
	assert_int_equal(cmos_read(0x0A) & 0x7F, 0x26);
	time_t host = time(NULL);
	time_t rtc = rtc_time_bcd();
	assert_true(rtc >= host - 1 && rtc <= host + 2);
	/* Day of week: 1 = Sunday. */
	struct tm tm;
	gmtime_r(&rtc, &tm);
	uint8_t wday = cmos_read(0x06);
	assert_true(wday >= 1 && wday <= 7);
	/* Binary mode. */
	cmos_write(0x0B, 0x06);
	uint8_t min = cmos_read(0x02);
	assert_true(min < 60);
	assert_int_equal(cmos_read(0x32), 20 + (tm.tm_year >= 200));
	/* 12-hour BCD mode: bit 7 is PM. */
	cmos_write(0x0B, 0x00);
	uint8_t h12 = cmos_read(0x04);
	int h = bcd(h12 & 0x7F);
	assert_true(h >= 1 && h <= 12);
	/* CMOS RAM, with the NMI-mask bit in the index. */
	cmos_write(0x40, 0x5A);
	assert_int_equal(cmos_read(0xC0), 0x5A);
	assert_int_equal(cmos_read(0x5F), 1); /* CPUs - 1 */
	/* D and C are read-only. */
	cmos_write(0x0D, 0x00);
	assert_int_equal(cmos_read(0x0D), 0x80);
}

static void test_rtc_set_time(void **state)
{
	(void)state;
	assert_int_equal(rtc_create(&test_vm), 0);
	cmos_write(0x0B, 0x82); /* SET, 24 h, BCD */
	cmos_write(0x00, 0x30);
	cmos_write(0x02, 0x45);
	cmos_write(0x04, 0x23);
	cmos_write(0x07, 0x31);
	cmos_write(0x08, 0x12);
	cmos_write(0x09, 0x99);
	cmos_write(0x32, 0x19);
	assert_int_equal(cmos_read(0x09), 0x99); /* frozen while SET */
	cmos_write(0x0B, 0x02);
	time_t t = rtc_time_bcd();
	struct tm want = {.tm_sec = 30, .tm_min = 45, .tm_hour = 23, .tm_mday = 31,
	                  .tm_mon = 11, .tm_year = 99};
	time_t w = timegm(&want);
	assert_true(t >= w && t <= w + 2);
	/* Garbage fields do not break it. */
	cmos_write(0x08, 0xFF);
	cmos_write(0x07, 0x00);
	cmos_write(0x04, 0xFF);
	cmos_write(0x0B, 0xFF);
	for (unsigned i = 0; i < 0x100; i++)
		cmos_write((uint8_t)i, (uint8_t)(i * 13));
	cmos_write(0x0B, 0x02);
	assert_true(bcd(cmos_read(0x02)) < 60);
}

static void test_rtc_periodic_irq(void **state)
{
	(void)state;
	assert_int_equal(rtc_create(&test_vm), 0);
	cmos_read(0x0C);
	cmos_write(0x0A, 0x26);        /* 1024 Hz */
	cmos_write(0x0B, 0x02 | 0x40); /* PIE */
	for (unsigned i = 0; i < 1000 && !atomic_load(&irq_level[8]); i++)
		sleep_ms(1);
	assert_int_equal(atomic_load(&irq_level[8]), 1);
	int64_t t0 = mono_ns();
	uint8_t c = cmos_read(0x0C);
	assert_int_equal(c & 0xC0, 0xC0); /* IRQF | PF */
	int level = atomic_load(&irq_level[8]);
	/* Reading C lowers IRQ 8, unless the next period (976 us) already
	 * raised it again (a loaded host can stall this thread that long). */
	if (mono_ns() - t0 < 900000)
		assert_int_equal(level, 0);
	for (unsigned i = 0; i < 1000 && atomic_load(&irq_rises[8]) < 2; i++)
		sleep_ms(1);
	assert_true(atomic_load(&irq_rises[8]) >= 2);
	/* Off: no more interrupts after C is read. */
	cmos_write(0x0B, 0x02);
	cmos_read(0x0C);
	int rises = atomic_load(&irq_rises[8]);
	sleep_ms(10);
	assert_int_equal(atomic_load(&irq_rises[8]), rises);
}

static void test_rtc_update_and_alarm_irq(void **state)
{
	(void)state;
	assert_int_equal(rtc_create(&test_vm), 0);
	/* Periodic rate 0: PF is set at the periodic rate whether or not PIE
	 * is on, so the default 1024 Hz would put PF in every read of C. */
	cmos_write(0x0A, 0x20);
	/* Alarm "any second, any minute, any hour": AF with every update. */
	cmos_write(0x01, 0xC0);
	cmos_write(0x03, 0xC0);
	cmos_write(0x05, 0xC0);
	cmos_read(0x0C);
	atomic_store(&rtc_alarm_vm, &test_vm);
	atomic_store(&rtc_alarm_calls, 0);
	cmos_write(0x0B, 0x02 | 0x10 | 0x20); /* UIE | AIE */
	for (unsigned i = 0; i < 1500 && !atomic_load(&irq_level[8]); i++)
		sleep_ms(1);
	assert_int_equal(atomic_load(&irq_level[8]), 1);
	/* The alarm interrupt also reached the ACPI hardware (RTC_STS). */
	assert_true(atomic_load(&rtc_alarm_calls) >= 1);
	int64_t before = rtc_clock(CLOCK_REALTIME) / RTC_NS;
	uint8_t c = cmos_read(0x0C);
	assert_int_equal(c & 0xB0, 0xB0); /* IRQF | AF | UF */
	assert_int_equal(atomic_load(&irq_level[8]), 0);
	/* Read clears: the next read is 0, unless a new second began between
	 * the two reads (a new update cycle then sets UF and AF again). */
	c = cmos_read(0x0C);
	if (rtc_clock(CLOCK_REALTIME) / RTC_NS == before)
		assert_int_equal(c, 0);
	else
		assert_int_equal(c & 0x4F, 0); /* never PF, never the reserved bits */
}

/* An update interrupt without AIE is no alarm: the ACPI hardware (RTC_STS,
 * the S3 wake) does not see it; nor does an alarm that matches while AIE
 * is off. */
static void test_rtc_alarm_needs_aie(void **state)
{
	(void)state;
	assert_int_equal(rtc_create(&test_vm), 0);
	cmos_write(0x0A, 0x20);
	cmos_write(0x01, 0xC0);
	cmos_write(0x03, 0xC0);
	cmos_write(0x05, 0xC0);
	cmos_read(0x0C);
	atomic_store(&rtc_alarm_vm, &test_vm);
	atomic_store(&rtc_alarm_calls, 0);
	cmos_write(0x0B, 0x02 | 0x10); /* UIE only */
	for (unsigned i = 0; i < 1500 && !atomic_load(&irq_level[8]); i++)
		sleep_ms(1);
	assert_int_equal(atomic_load(&irq_level[8]), 1);
	assert_int_equal(cmos_read(0x0C) & 0x30, 0x30); /* UF, and AF matched too */
	assert_int_equal(atomic_load(&rtc_alarm_calls), 0);
	cmos_write(0x0B, 0x02);
}

/* ---- PIC -------------------------------------------------------------------- */

static void test_pic_probe_and_init(void **state)
{
	(void)state;
	assert_int_equal(pic_create(&test_vm), 0);
	assert_non_null(test_vm.pic);
	assert_int_equal(inb(0x21), 0xFF); /* masked at reset */
	assert_int_equal(inb(0xA1), 0xFF);
	/* Linux's probe_8259A(). */
	outb(0xA1, 0xFF);
	outb(0x21, 0xFB);
	assert_int_equal(inb(0x21), 0xFB);
	/* Linux's init_8259A(). */
	outb(0x21, 0xFF);
	outb(0x20, 0x11);
	outb(0x21, 0x30);
	outb(0x21, 0x04);
	outb(0x21, 0x01);
	outb(0xA0, 0x11);
	outb(0xA1, 0x38);
	outb(0xA1, 0x02);
	outb(0xA1, 0x01);
	assert_int_equal(inb(0x21), 0x00); /* ICW1 cleared the mask */
	outb(0x21, 0xFB);
	outb(0xA1, 0xFF);
	assert_int_equal(inb(0x21), 0xFB);
	assert_int_equal(inb(0xA1), 0xFF);
	outb(0x20, 0x0A); /* OCW3: read IRR */
	assert_int_equal(inb(0x20), 0);
	outb(0x20, 0x0B); /* OCW3: read ISR */
	assert_int_equal(inb(0x20), 0);
	outb(0x20, 0x20); /* non-specific EOI */
	outb(0x20, 0x0C); /* poll: nothing pending */
	assert_int_equal(inb(0x20), 0);
	/* ELCR: IRQ 0-2 and 8, 13 cannot be level. */
	outb(0x4D0, 0xFF);
	outb(0x4D1, 0xFF);
	assert_int_equal(inb(0x4D0), 0xF8);
	assert_int_equal(inb(0x4D1), 0xDE);
}

/* ---- i8042 -------------------------------------------------------------------- */

static uint8_t kbc_read_data(void)
{
	assert_int_not_equal(inb(0x64) & 0x01, 0);
	return inb(0x60);
}

static void test_i8042(void **state)
{
	(void)state;
	assert_int_equal(i8042_create(&test_vm), 0);
	assert_int_equal(inb(0x64), 0x1C); /* SYS, CMD, not inhibited, no data */
	outb(0x64, 0x20);
	assert_int_equal(kbc_read_data(), 0x65);
	outb(0x64, 0x60);
	outb(0x60, 0x44); /* interrupts off */
	outb(0x64, 0x20);
	assert_int_equal(kbc_read_data(), 0x44);
	outb(0x64, 0xAA);
	assert_int_equal(kbc_read_data(), 0x55);
	outb(0x64, 0xAB);
	assert_int_equal(kbc_read_data(), 0x00);
	assert_int_equal(inb(0x64) & 0x01, 0);
	/* No AUX port: enabling it leaves AUXDIS set (i8042_toggle_aux). */
	outb(0x64, 0xA7);
	outb(0x64, 0xA8);
	outb(0x64, 0x20);
	assert_int_not_equal(kbc_read_data() & 0x20, 0);
	/* The AUX loop answers with AUX data. */
	outb(0x64, 0xD3);
	outb(0x60, 0x5A);
	assert_int_not_equal(inb(0x64) & 0x20, 0);
	assert_int_equal(kbc_read_data(), 0x5A);
	/* Keyboard GET ID with interrupts on: each byte is its own IRQ 1 edge. */
	outb(0x64, 0x60);
	outb(0x60, 0x45); /* XLATE, SYS, KBDINT */
	int rises = atomic_load(&irq_rises[1]); /* the default CTR had KBDINT too */
	outb(0x60, 0xF2);
	assert_int_equal(atomic_load(&irq_level[1]), 1);
	assert_int_equal(kbc_read_data(), 0xFA);
	assert_int_equal(kbc_read_data(), 0xAB);
	assert_int_equal(kbc_read_data(), 0x41);
	assert_int_equal(atomic_load(&irq_level[1]), 0);
	assert_int_equal(atomic_load(&irq_rises[1]) - rises, 3);
	assert_int_equal(atomic_load(&irq_rises[12]), 0);
	/* Output port write with bit 0 set: no reset; clear: reset. */
	outb(0x64, 0xD1);
	outb(0x60, 0x03);
	assert_int_equal(exit_calls, 0);
	outb(0x64, 0xD1);
	outb(0x60, 0x02);
	assert_int_equal(exit_calls, 1);
	/* The classic reboot. */
	outb(0x64, 0xFE);
	assert_int_equal(exit_calls, 2);
	assert_int_equal(exit_kind_seen, VM_EXIT_POWEROFF);
	assert_int_equal(exit_status_seen, 0);
	/* Garbage: every command byte and data byte, no crash, no unbounded queue. */
	exit_calls = 0;
	for (unsigned c = 0; c < 0xF0; c++) {
		outb(0x64, (uint8_t)c);
		outb(0x60, (uint8_t)(c * 7));
		io(0x60, false, 0, 4);
	}
	for (unsigned i = 0; i < 64; i++)
		inb(0x60);
	assert_int_equal(inb(0x64) & 0x01, 0);
}

/* ---- debug-exit and legacy ports --------------------------------------------- */

static void test_debug_exit(void **state)
{
	(void)state;
	assert_int_equal(debug_exit_create(&test_vm), 0);
	io(0xF4, true, 0x10, 4);
	assert_int_equal(exit_calls, 1);
	assert_int_equal(exit_kind_seen, VM_EXIT_DEBUG);
	assert_int_equal(exit_status_seen, 0x21);
	io(0xF4, true, 0, 1);
	assert_int_equal(exit_status_seen, 1);
	assert_int_equal(io(0xF4, false, 0, 1), 0xFF);
}

static void test_legacy_ports(void **state)
{
	(void)state;
	assert_int_equal(pit_create(&test_vm), 0); /* owns 0x61 */
	assert_int_equal(legacy_ports_create(&test_vm), 0);
	assert_int_equal(legacy_ports_create(&test_vm), 0); /* already owned: skipped */
	outb(0x80, 0x12);
	assert_int_equal(inb(0x80), 0xFF);
	assert_int_equal(inb(0x87), 0xFF);
	assert_int_equal(inb(0x92), 0x02);
	assert_int_equal(io(0x1F0, false, 0, 2), 0xFFFF);
	assert_int_equal(io(0x1F7, false, 0, 1), 0xFF);
	assert_int_equal(io(0x3C0, false, 0, 4), 0xFFFFFFFFu);
	assert_int_equal(inb(0xC0), 0xFF);
	assert_int_equal(inb(0x00), 0xFF);
	for (unsigned i = 0; i < test_vm.io_bus.count; i++) {
		const struct bus_range *r = &test_vm.io_bus.ranges[i];
		assert_false(r->base <= 0xCF8 && 0xCF8 < r->base + r->len);
		assert_false(r->base <= 0x3F8 && 0x3F8 < r->base + r->len);
		assert_false(r->base <= 0x2F8 && 0x2F8 < r->base + r->len);
	}
}

/* ---- teardown ------------------------------------------------------------------ */

/* ---- snapshot sections ---------------------------------------------------- */

static uint8_t inb_on(struct vm *vm, uint16_t port)
{
	return (uint8_t)snapt_io(&vm->io_bus, port, false, 0, 1);
}

static void outb_on(struct vm *vm, uint16_t port, uint8_t v)
{
	snapt_io(&vm->io_bus, port, true, v, 1);
}

/* Save (name) of (va), check that damaged copies are refused by a fresh
 * machine's (vb) (which they leave as it was), load it there and check
 * that the loaded device saves the same bytes but its last (skip). */
static void snap_transfer(struct vm *va, struct vm *vb, const char *name,
                          struct snap_writer *w, size_t skip)
{
	snapt_save(va, name, w);
	snapt_check_bad_lengths(vb, name, w->buf, w->len, skip);
	assert_int_equal(snapt_load(vb, name, w->buf, w->len), 0);
	struct snap_writer w2;
	snapt_save(vb, name, &w2);
	assert_int_equal(w2.len, w->len);
	assert_memory_equal(w2.buf, w->buf, w->len - skip);
	snap_writer_free(&w2);
}

static void test_pic_snapshot(void **state)
{
	(void)state;
	struct vm *va = &test_vm;
	assert_int_equal(pic_create(va), 0);
	static const uint16_t seq[][2] = {
		{0x20, 0x11}, {0x21, 0x20}, {0x21, 0x04}, {0x21, 0x01}, /* master: ICW1-4 */
		{0x21, 0xFB}, {0x20, 0x0B}, {0x20, 0xC3},               /* mask, read ISR, priority */
		{0xA0, 0x11}, {0xA1, 0x28}, {0xA1, 0x02},               /* slave: waits for ICW4 */
		{0x4D0, 0x20}, {0x4D1, 0x0C},
	};
	for (unsigned i = 0; i < sizeof(seq) / sizeof(seq[0]); i++)
		outb_on(va, seq[i][0], (uint8_t)seq[i][1]);
	setup(NULL);
	struct vm *vb = &test_vm;
	assert_int_equal(pic_create(vb), 0);
	struct snap_writer w;
	snap_transfer(va, vb, "pic", &w, 0);
	snapt_check_bad_byte(vb, "pic", w.buf, w.len, 3, 0x21, 0);  /* vector base */
	snapt_check_bad_byte(vb, "pic", w.buf, w.len, 5, 0x01, 0);  /* ELCR of IRQ 0 */
	snapt_check_bad_byte(vb, "pic", w.buf, w.len, 6, 8, 0);     /* priority */
	snapt_check_bad_byte(vb, "pic", w.buf, w.len, 15 + 7, 4, 0); /* slave's init step */
	snapt_check_bad_byte(vb, "pic", w.buf, w.len, 8, 2, 0);     /* a bool */
	snap_writer_free(&w);
	/* The same answers, and the same for what comes next: the slave's
	 * ICW4, a poll. */
	struct vm *m[2] = {va, vb};
	uint8_t v[2][8];
	for (unsigned n = 0; n < 2; n++) {
		v[n][0] = inb_on(m[n], 0x20);
		v[n][1] = inb_on(m[n], 0x21);
		v[n][2] = inb_on(m[n], 0x4D0);
		v[n][3] = inb_on(m[n], 0x4D1);
		outb_on(m[n], 0xA1, 0x01); /* ICW4: now OCW1 */
		outb_on(m[n], 0xA1, 0x5A);
		v[n][4] = inb_on(m[n], 0xA1);
		outb_on(m[n], 0x20, 0x0C); /* poll */
		v[n][5] = inb_on(m[n], 0x20);
		v[n][6] = inb_on(m[n], 0x20);
		v[n][7] = inb_on(m[n], 0xA0);
	}
	assert_memory_equal(v[0], v[1], sizeof(v[0]));
	assert_int_equal(v[1][1], 0xFB);
	assert_int_equal(v[1][3], 0x0C);
	assert_int_equal(v[1][4], 0x5A);
}

static void test_pit_snapshot(void **state)
{
	(void)state;
	struct vm *va = &test_vm;
	assert_int_equal(pit_create(va), 0);
	outb_on(va, 0x43, 0x34); /* ch0: mode 2, count 0x2000: the thread pulses */
	outb_on(va, 0x40, 0x00);
	outb_on(va, 0x40, 0x20);
	outb_on(va, 0x43, 0x72); /* ch1: lo/hi, mode 1, only the low byte written */
	outb_on(va, 0x41, 0x34);
	outb_on(va, 0x61, 0x03); /* ch2: gate high, speaker */
	outb_on(va, 0x43, 0xB0); /* ch2: lo/hi, mode 0 */
	outb_on(va, 0x42, 0xFF);
	outb_on(va, 0x42, 0xFF);
	sleep_ms(2);
	outb_on(va, 0x61, 0x02); /* gate low: ch2 holds its count */
	outb_on(va, 0x43, 0xE4); /* read-back: latch ch1's status */
	inb_on(va, 0x42);        /* ch2: LSB read, MSB next */
	setup(NULL);
	struct vm *vb = &test_vm;
	assert_int_equal(pit_create(vb), 0);
	struct snap_writer w;
	/* The save of the running channel 0 moves on: compare up to it. */
	snapt_save(va, "pit", &w);
	snapt_check_bad_lengths(vb, "pit", w.buf, w.len, 0);
	snapt_check_bad_byte(vb, "pit", w.buf, w.len, 2, 0x02, 0);      /* count > 0x10000 */
	snapt_check_bad_byte(vb, "pit", w.buf, w.len, 4, 6, 0);         /* mode */
	snapt_check_bad_byte(vb, "pit", w.buf, w.len, 5, 4, 0);         /* rw */
	snapt_check_bad_byte(vb, "pit", w.buf, w.len, 7, 0, 0);         /* ch0's gate is high */
	snapt_check_bad_byte(vb, "pit", w.buf, w.len, 35 + 17, 0x40, 0); /* elapsed 2^62 */
	snapt_check_bad_byte(vb, "pit", w.buf, w.len, 105, 0x10, 0);    /* port B */
	snapt_check_bad_byte(vb, "pit", w.buf, w.len, 105, 0x03, 0);    /* gate vs ch2 */
	snapt_check_bad_byte(vb, "pit", w.buf, w.len, 113, 0x01, 0);    /* period > 55 ms */
	snapt_check_bad_byte(vb, "pit", w.buf, w.len, 107, 2, 0);       /* a bool */
	assert_int_equal(snapt_load(vb, "pit", w.buf, w.len), 0);
	snap_writer_free(&w);
	struct pit *pa = va->io_bus.ranges[0].opaque, *pb = vb->io_bus.ranges[0].opaque;
	assert_true(pb->thread_started && pb->armed && pb->periodic);
	assert_int_equal(pb->period_ns, pa->period_ns);
	/* The timer thread of the loaded PIT runs: IRQ 0 pulses (the first
	 * PIT's channel 0 stops: the pulses are the loaded one's). */
	outb_on(va, 0x43, 0x30);
	sleep_ms(10);
	int pulses = atomic_load(&irq_pulses[0]);
	int64_t t0 = mono_ns();
	while (atomic_load(&irq_pulses[0]) < pulses + 4 && mono_ns() - t0 < 5000000000ll)
		sleep_ms(1);
	assert_true(atomic_load(&irq_pulses[0]) >= pulses + 4);
	struct vm *m[2] = {va, vb};
	uint8_t v[2][8];
	for (unsigned n = 0; n < 2; n++) {
		v[n][0] = inb_on(m[n], 0x41); /* ch1's latched status */
		v[n][1] = inb_on(m[n], 0x42); /* ch2's MSB (held: the gate is low) */
		v[n][2] = inb_on(m[n], 0x42);
		v[n][3] = inb_on(m[n], 0x42);
		v[n][4] = inb_on(m[n], 0x61) & 0x0F;
		outb_on(m[n], 0x41, 0x00);    /* ch1's MSB: it counts, 0x0034 */
		outb_on(m[n], 0x43, 0xE4);
		v[n][5] = inb_on(m[n], 0x41) & 0x7F;
		outb_on(m[n], 0x43, 0xE8);
		v[n][6] = inb_on(m[n], 0x42);
		v[n][7] = (uint8_t)pit_value(&pa->ch[2], 0) == (uint8_t)pit_value(&pb->ch[2], 0);
	}
	assert_memory_equal(v[0], v[1], sizeof(v[0]));
	assert_int_equal(v[1][0] & 0x3F, 0x32);
	assert_int_equal(v[1][4], 0x02);
	assert_int_equal(v[1][7], 1);
	assert_true(v[1][1] != 0xFF || v[1][2] != 0xFF); /* it had counted */
	/* Channel 0 stopped by a control word (the timer disarmed, its last
	 * mode periodic): that saves and loads too. */
	snapt_save(va, "pit", &w);
	assert_false(pa->armed);
	assert_int_equal(snapt_load(vb, "pit", w.buf, w.len), 0);
	assert_false(pb->armed);
	snap_writer_free(&w);
}

static void test_rtc_snapshot(void **state)
{
	(void)state;
	struct vm *va = &test_vm;
	assert_int_equal(rtc_create(va), 0);
	outb_on(va, 0x70, 0x0A);
	outb_on(va, 0x71, 0x2F); /* RS 15: 2 Hz */
	outb_on(va, 0x70, 0x0B);
	outb_on(va, 0x71, 0x26); /* 24 h, binary, alarm interrupt: the thread starts */
	outb_on(va, 0x70, 0x09);
	outb_on(va, 0x71, (uint8_t)(inb_on(va, 0x71) + 3)); /* three years on: the offset */
	static const uint8_t ram[][2] = {{0x01, 0x11}, {0x03, 0xC5}, {0x05, 0x07}, {0x40, 0x77},
	                                 {0x7F, 0x99}};
	for (unsigned i = 0; i < sizeof(ram) / sizeof(ram[0]); i++) {
		outb_on(va, 0x70, ram[i][0]);
		outb_on(va, 0x71, ram[i][1]);
	}
	outb_on(va, 0x70, 0x40);
	setup(NULL);
	struct vm *vb = &test_vm;
	assert_int_equal(rtc_create(vb), 0);
	/* The last 8 bytes are the time to the next periodic flag; the loaded
	 * RTC's thread may see a new second at once (C.UF, last_sec). */
	struct snap_writer w, w2;
	snapt_save(va, "rtc", &w);
	snapt_check_bad_lengths(vb, "rtc", w.buf, w.len, 8);
	snapt_check_bad_byte(vb, "rtc", w.buf, w.len, 0x0A, 0xA6, 8);    /* UIP in A */
	snapt_check_bad_byte(vb, "rtc", w.buf, w.len, 0x0C, 0x01, 8);    /* C low bits */
	snapt_check_bad_byte(vb, "rtc", w.buf, w.len, 128, 0x80, 8);     /* index */
	snapt_check_bad_byte(vb, "rtc", w.buf, w.len, 129 + 6, 0x01, 8); /* offset 2^48 s */
	snapt_check_bad_byte(vb, "rtc", w.buf, w.len, 145 + 24, 7, 8);   /* weekday */
	snapt_check_bad_byte(vb, "rtc", w.buf, w.len, 173 + 4, 0x01, 8); /* > one period */
	assert_int_equal(snapt_load(vb, "rtc", w.buf, w.len), 0);
	snapt_save(vb, "rtc", &w2);
	assert_int_equal(w2.len, w.len);
	assert_memory_equal(w2.buf, w.buf, 0x0C);
	assert_memory_equal(w2.buf + 0x0D, w.buf + 0x0D, 129 + 8 - 0x0D);
	assert_memory_equal(w2.buf + 145, w.buf + 145, 28);
	snap_writer_free(&w2);
	snap_writer_free(&w);
	struct rtc *ra = va->io_bus.ranges[0].opaque, *rb = vb->io_bus.ranges[0].opaque;
	assert_true(rb->thread_started);
	assert_int_equal(rb->offset_s, ra->offset_s);
	struct vm *m[2] = {va, vb};
	uint8_t v[2][RTC_CMOS_SIZE + 2];
	for (unsigned n = 0; n < 2; n++) {
		v[n][0] = inb_on(m[n], 0x71); /* the index register was kept */
		for (unsigned i = 0; i < RTC_CMOS_SIZE; i++) {
			outb_on(m[n], 0x70, (uint8_t)i);
			v[n][1 + i] = inb_on(m[n], 0x71);
		}
		outb_on(m[n], 0x70, 0x0B);
		outb_on(m[n], 0x71, 0x02); /* back to BCD, no interrupts */
		v[n][RTC_CMOS_SIZE + 1] = inb_on(m[n], 0x71);
	}
	/* The time registers and A's UIP, C's flags may move between the two. */
	static const uint8_t moving[] = {0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x0A, 0x0C, 0x32};
	for (unsigned i = 0; i < sizeof(moving); i++)
		v[0][1 + moving[i]] = v[1][1 + moving[i]] = 0;
	assert_memory_equal(v[0], v[1], sizeof(v[0]));
	assert_int_equal(v[1][0], 0x77);
	assert_int_equal(v[1][1 + 0x03], 0xC5);
}

static void test_i8042_snapshot(void **state)
{
	(void)state;
	struct vm *va = &test_vm;
	assert_int_equal(i8042_create(va), 0);
	outb_on(va, 0x64, 0xAA); /* self test: 0x55 */
	outb_on(va, 0x64, 0xD3); /* AUX loop: an AUX byte */
	outb_on(va, 0x60, 0x42);
	outb_on(va, 0x64, 0xAB); /* keyboard test: 0x00 */
	outb_on(va, 0x64, 0x60); /* write CTR: waits for its byte */
	setup(NULL);
	struct vm *vb = &test_vm;
	assert_int_equal(i8042_create(vb), 0);
	struct snap_writer w;
	snap_transfer(va, vb, "i8042", &w, 0);
	snapt_check_bad_byte(vb, "i8042", w.buf, w.len, 2, 0x50, 0); /* pending command */
	snapt_check_bad_byte(vb, "i8042", w.buf, w.len, 3, 2, 0);    /* a bool */
	snapt_check_bad_byte(vb, "i8042", w.buf, w.len, 5, 17, 0);   /* queue length */
	snap_writer_free(&w);
	struct vm *m[2] = {va, vb};
	uint8_t v[2][9];
	for (unsigned n = 0; n < 2; n++) {
		v[n][0] = inb_on(m[n], 0x64);
		outb_on(m[n], 0x60, 0x47); /* the CTR */
		for (unsigned i = 0; i < 3; i++) {
			v[n][1 + 2 * i] = inb_on(m[n], 0x64);
			v[n][2 + 2 * i] = inb_on(m[n], 0x60);
		}
		outb_on(m[n], 0x64, 0x20);
		v[n][7] = inb_on(m[n], 0x60);
		v[n][8] = inb_on(m[n], 0x64);
	}
	assert_memory_equal(v[0], v[1], sizeof(v[0]));
	assert_int_equal(v[1][2], 0x55);
	assert_int_equal(v[1][4], 0x42);
	assert_int_equal(v[1][7], 0x47);
}

static long thread_count(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	assert_non_null(f);
	char line[256];
	long n = -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "Threads:", 8) == 0)
			n = strtol(line + 8, NULL, 10);
	fclose(f);
	return n;
}

/* Every device registers its destroy path; running them (as vm_destroy
 * does, last first) joins the PIT's and the RTC's threads while they wait
 * for their next tick, and frees everything (LeakSanitizer under SAN=1). */
static void test_teardown_joins_threads(void **state)
{
	(void)state;
	long before = thread_count();
	assert_int_equal(pic_create(&test_vm), 0);
	assert_int_equal(i8042_create(&test_vm), 0);
	assert_int_equal(debug_exit_create(&test_vm), 0);
	assert_int_equal(pit_create(&test_vm), 0);
	assert_int_equal(rtc_create(&test_vm), 0);
	assert_int_equal(legacy_ports_create(&test_vm), 0);
	/* PIC, i8042, PIT, RTC own memory; debug-exit and the legacy ports
	 * own nothing but their bus ranges. */
	assert_int_equal(test_vm.nteardowns, 4);
	outb(0x43, 0x34); /* PIT channel 0, mode 2, count 0x1000: its thread starts */
	outb(0x40, 0x00);
	outb(0x40, 0x10);
	outb(0x70, 0x0B); /* RTC: periodic interrupt on, its thread starts */
	outb(0x71, (uint8_t)(inb(0x71) | 0x40));
	assert_int_equal(thread_count(), before + 2);
	sleep_ms(20); /* both threads in their timed waits, the PIT's pulsing */
	fake_vm_teardown(&test_vm);
	assert_int_equal(thread_count(), before);
	assert_null(test_vm.pic);
	test_vm.io_bus.count = 0; /* its ranges point at freed devices now */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_pit_channel2_calibration, setup),
		cmocka_unit_test_setup(test_pit_latch_and_readback, setup),
		cmocka_unit_test_setup(test_pit_channel0_irq, setup),
		cmocka_unit_test_setup(test_rtc_registers_and_time, setup),
		cmocka_unit_test_setup(test_rtc_set_time, setup),
		cmocka_unit_test_setup(test_rtc_periodic_irq, setup),
		cmocka_unit_test_setup(test_rtc_update_and_alarm_irq, setup),
		cmocka_unit_test_setup(test_rtc_alarm_needs_aie, setup),
		cmocka_unit_test_setup(test_pic_probe_and_init, setup),
		cmocka_unit_test_setup(test_i8042, setup),
		cmocka_unit_test_setup(test_debug_exit, setup),
		cmocka_unit_test_setup(test_legacy_ports, setup),
		cmocka_unit_test_setup(test_pic_snapshot, setup),
		cmocka_unit_test_setup(test_pit_snapshot, setup),
		cmocka_unit_test_setup(test_rtc_snapshot, setup),
		cmocka_unit_test_setup(test_i8042_snapshot, setup),
		cmocka_unit_test_setup(test_teardown_joins_threads, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
