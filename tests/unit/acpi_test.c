/* acpi_test.c: unit tests of the ACPI tables, the PM1/PM timer registers and the MP table (dev/acpi.c, dev/mptable.c), without KVM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../vmm/dev/acpi.c"
#include "../../vmm/dev/mptable.c"
#include "fake_bus.h"
#include "snap_util.h"

/* ---- stubs for what the devices call -------------------------------------- */

#define TEST_RAM_SIZE (1u << 20)
static uint8_t test_ram[TEST_RAM_SIZE];
static int exit_calls, exit_kind_seen, exit_status_seen;

void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	uint64_t limit = vm->low_ram < TEST_RAM_SIZE ? vm->low_ram : TEST_RAM_SIZE;
	if (gpa > limit || len > limit - gpa)
		return NULL;
	return test_ram + gpa;
}

void vm_request_exit(struct vm *vm, enum vm_exit_kind kind, int status)
{
	(void)vm;
	exit_calls++;
	exit_kind_seen = kind;
	exit_status_seen = status;
}

static int sci_line, sci_changes;
void vm_irq_set(struct vm *vm, unsigned gsi, int level)
{
	(void)vm;
	if (gsi == ACPI_SCI_IRQ) {
		sci_changes += level != sci_line;
		sci_line = level;
	}
}

/* S3: what dev/acpi.c asks of the machine. */
static int sleep_calls, wake_calls;
static struct vm_wake_target wake_seen;
bool vm_sleep(struct vm *vm)
{
	(void)vm;
	sleep_calls++;
	return true;
}

void vm_wake(struct vm *vm, const struct vm_wake_target *target)
{
	(void)vm;
	wake_calls++;
	wake_seen = *target;
}

void vm_irq_pulse(struct vm *vm, unsigned gsi)
{
	(void)vm, (void)gsi;
}

void vm_log_unclaimed(struct vm *vm, const char *space, uint64_t addr, bool write,
                      unsigned size)
{
	(void)vm, (void)space, (void)addr, (void)write, (void)size;
}

/* ---- helpers ---------------------------------------------------------------- */

/* Every machine stays reachable (devices have no destroy call), so that
 * LeakSanitizer under `make sanitize` sees no leak. */
static struct vm vms[32];
static unsigned nvms;
#define test_vm (vms[nvms - 1])

static void make_vm(uint32_t ncpus)
{
	assert_true(nvms < sizeof(vms) / sizeof(vms[0]));
	nvms++;
	memset(test_ram, 0xA5, sizeof(test_ram)); /* garbage the tables must overwrite */
	test_vm.ncpus = ncpus;
	test_vm.ram_size = TEST_RAM_SIZE;
	test_vm.low_ram = TEST_RAM_SIZE;
	test_vm.io_bus.kind = ZHV_TRAP_IO;
	test_vm.mmio_bus.kind = ZHV_TRAP_MEM;
	pthread_mutex_init(&test_vm.pm_lock, NULL);
	exit_calls = 0;
	sleep_calls = wake_calls = 0;
	sci_line = sci_changes = 0;
	memset(&wake_seen, 0, sizeof(wake_seen));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;
	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

static const uint8_t *gpa(uint64_t addr)
{
	assert_true(addr < TEST_RAM_SIZE);
	return test_ram + addr;
}

/* A table at (addr): signature, whole-table checksum, inside the region. */
static const uint8_t *table(uint64_t addr, const char *sig)
{
	const uint8_t *t = gpa(addr);
	assert_memory_equal(t, sig, 4);
	uint32_t len = get32(t + 4);
	assert_true(len >= 36);
	assert_true(addr >= ACPI_REGION_BASE && addr + len <= ACPI_REGION_BASE + ACPI_REGION_SIZE);
	assert_int_equal(sum(t, len), 0);
	return t;
}

static const uint8_t *rsdp(void)
{
	const uint8_t *r = gpa(ACPI_RSDP_ADDR);
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(sum(r, 20), 0);
	assert_int_equal(r[15], 2);
	assert_int_equal(get32(r + 20), 36);
	assert_int_equal(sum(r, 36), 0);
	return r;
}

/* The table with (sig) listed in the XSDT. */
static const uint8_t *xsdt_find(const char *sig)
{
	const uint8_t *x = table(get64(rsdp() + 24), "XSDT");
	uint32_t n = (get32(x + 4) - 36) / 8;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *t = gpa(get64(x + 36 + 8 * i));
		if (!memcmp(t, sig, 4))
			return table(get64(x + 36 + 8 * i), sig);
	}
	fail_msg("%s not in the XSDT", sig);
	return NULL;
}

static const struct bus_range *find_range(struct bus *bus, uint64_t addr)
{
	for (unsigned i = 0; i < bus->count; i++)
		if (addr >= bus->ranges[i].base && addr < bus->ranges[i].base + bus->ranges[i].len)
			return &bus->ranges[i];
	return NULL;
}

static uint32_t io(uint16_t port, bool write, uint32_t value, unsigned size)
{
	const struct bus_range *r = find_range(&test_vm.io_bus, port);
	assert_non_null(r);
	uint8_t data[4];
	for (unsigned i = 0; i < 4; i++)
		data[i] = (uint8_t)(value >> (8 * i));
	r->fn(r->opaque, port - r->base, write, data, size);
	uint32_t v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)data[i] << (8 * i);
	return v;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_rsdp_and_checksums(void **state)
{
	(void)state;
	make_vm(1);
	assert_int_equal(acpi_create(&test_vm), 0);
	const uint8_t *r = rsdp();
	assert_true(ACPI_RSDP_ADDR >= 0xE0000 && ACPI_RSDP_ADDR < 0x100000);
	assert_int_equal(ACPI_RSDP_ADDR % 16, 0);
	/* RSDT and XSDT list the same tables. */
	const uint8_t *rs = table(get32(r + 16), "RSDT");
	const uint8_t *xs = table(get64(r + 24), "XSDT");
	uint32_t n = (get32(xs + 4) - 36) / 8;
	assert_int_equal(n, 2);
	assert_int_equal((get32(rs + 4) - 36) / 4, n);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(get32(rs + 36 + 4 * i), get64(xs + 36 + 8 * i));
	xsdt_find("FACP");
	xsdt_find("APIC");
}

static void test_fadt_fields(void **state)
{
	(void)state;
	make_vm(2);
	assert_int_equal(acpi_create(&test_vm), 0);
	const uint8_t *f = xsdt_find("FACP");
	assert_int_equal(get32(f + 4), 276);
	assert_int_equal(f[8], 6);
	assert_int_equal(get16(f + 46), 9);          /* SCI_INT */
	assert_int_equal(get32(f + 56), 0x600);      /* PM1a_EVT_BLK */
	assert_int_equal(get32(f + 64), 0x604);      /* PM1a_CNT_BLK */
	assert_int_equal(get32(f + 76), 0x608);      /* PM_TMR_BLK */
	assert_int_equal(f[88], 4);
	assert_int_equal(f[89], 2);
	assert_int_equal(f[91], 4);
	uint32_t flags = get32(f + 112);
	assert_int_equal(flags & (1u << 20), 0);     /* not HW_REDUCED */
	assert_int_not_equal(flags & (1u << 8), 0);  /* 32-bit timer */
	assert_int_equal(flags & (1u << 6), 0);      /* FIX_RTC clear: RTC_STS exists */
	assert_int_not_equal(get16(f + 109) & 2, 0); /* 8042 present */
	/* X_ fields agree with the 32-bit ones. */
	assert_int_equal(f[148], 1);
	assert_int_equal(get64(f + 152), 0x600);
	assert_int_equal(get64(f + 176), 0x604);
	assert_int_equal(get64(f + 212), 0x608);
	assert_int_equal(get64(f + 140), get32(f + 40)); /* X_DSDT = DSDT */
	/* Reset register: I/O port 0xcf9, value 6. */
	assert_int_equal(f[116], 1);
	assert_int_equal(get64(f + 120), 0xCF9);
	assert_int_equal(f[128], 6);
	/* FACS: 64-byte aligned, signature, length. */
	uint32_t facs = get32(f + 36);
	assert_int_equal(facs % 64, 0);
	assert_memory_equal(gpa(facs), "FACS", 4);
	assert_int_equal(get32(gpa(facs) + 4), 64);
}

static void test_dsdt_contents(void **state)
{
	(void)state;
	make_vm(1);
	assert_int_equal(acpi_create(&test_vm), 0);
	const uint8_t *f = xsdt_find("FACP");
	const uint8_t *d = table(get64(f + 140), "DSDT");
	uint32_t len = get32(d + 4);
	assert_int_equal(d[8], 2);
	/* Name (_S3_, Package (4) { 3, 3, 0, 0 }) and the same for _S5_ at
	 * the start of the body. */
	const uint8_t s3[] = {0x08, '_', 'S', '3', '_', 0x12, 0x08, 0x04,
	                      0x0A, 0x03, 0x0A, 0x03, 0x00, 0x00};
	const uint8_t s5[] = {0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04,
	                      0x0A, 0x05, 0x0A, 0x05, 0x00, 0x00};
	assert_memory_equal(d + 36, s3, sizeof(s3));
	assert_memory_equal(d + 36 + sizeof(s3), s5, sizeof(s5));
	/* The root bridge: Device (PCI0) with EISAID PNP0A03. */
	const uint8_t hid[] = {0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x0A, 0x03};
	bool found_hid = false, found_prt = false;
	for (uint32_t i = 36; i + sizeof(hid) <= len; i++) {
		if (!memcmp(d + i, hid, sizeof(hid)))
			found_hid = true;
		if (!memcmp(d + i, "_PRT", 4))
			found_prt = true;
	}
	assert_true(found_hid);
	assert_true(found_prt);
}

/* MADT entries: (type 0 count, type 9 count), IDs = index, flags enabled. */
static void check_madt(uint32_t ncpus)
{
	make_vm(ncpus);
	assert_int_equal(acpi_create(&test_vm), 0);
	const uint8_t *m = xsdt_find("APIC");
	uint32_t len = get32(m + 4);
	assert_int_equal(get32(m + 36), 0xFEE00000u);
	assert_int_equal(get32(m + 40) & 1, 1); /* PCAT_COMPAT */
	uint32_t nlapic = 0, nx2apic = 0, nioapic = 0, niso = 0;
	bool irq0_to_2 = false, sci_level = false;
	uint64_t seen_ids = 0; /* IDs below 64 */
	for (uint32_t off = 44; off < len;) {
		const uint8_t *e = m + off;
		assert_true(e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], e[3]); /* UID = APIC ID */
			assert_int_equal(e[3], nlapic);
			assert_int_equal(get32(e + 4) & 1, 1);
			if (e[3] < 64)
				seen_ids |= 1ull << e[3];
			nlapic++;
			break;
		case 9:
			assert_int_equal(e[1], 16);
			assert_int_equal(get32(e + 4), 255 + nx2apic);
			assert_true(get32(e + 4) >= 255);
			assert_int_equal(get32(e + 8) & 1, 1);
			assert_int_equal(get32(e + 12), get32(e + 4));
			nx2apic++;
			break;
		case 1:
			assert_int_equal(e[1], 12);
			assert_int_equal(get32(e + 4), 0xFEC00000u);
			assert_int_equal(get32(e + 8), 0);
			nioapic++;
			break;
		case 2:
			assert_int_equal(e[1], 10);
			if (e[3] == 0 && get32(e + 4) == 2)
				irq0_to_2 = true;
			if (e[3] == 9 && get32(e + 4) == 9 && get16(e + 8) == 0x000D)
				sci_level = true;
			niso++;
			break;
		default:
			break;
		}
		off += e[1];
	}
	uint32_t want_lapic = ncpus < 255 ? ncpus : 255;
	assert_int_equal(nlapic, want_lapic);
	assert_int_equal(nx2apic, ncpus - want_lapic);
	assert_int_equal(nioapic, 1);
	assert_int_equal(niso, 2);
	assert_true(irq0_to_2);
	assert_true(sci_level);
	uint32_t low = ncpus < 64 ? ncpus : 64;
	assert_int_equal(seen_ids, low == 64 ? ~0ull : (1ull << low) - 1);
}

static void test_madt_1_cpu(void **state)
{
	(void)state;
	check_madt(1);
}

static void test_madt_4_cpus(void **state)
{
	(void)state;
	check_madt(4);
}

static void test_madt_300_cpus(void **state)
{
	(void)state;
	check_madt(300);
}

static void test_pm1_poweroff(void **state)
{
	(void)state;
	make_vm(1);
	assert_int_equal(acpi_create(&test_vm), 0);
	/* SCI_EN reads set; SLP_TYP without SLP_EN, or another type (S1), does
	 * nothing. */
	assert_int_equal(io(0x604, false, 0, 2) & 1, 1);
	io(0x604, true, 5 << 10, 2);
	io(0x604, true, 3 << 10, 2);
	assert_int_equal(exit_calls, 0);
	io(0x604, true, (1 << 10) | (1 << 13), 2);
	assert_int_equal(exit_calls, 0);
	assert_int_equal(sleep_calls, 0);
	assert_int_equal(io(0x604, false, 0, 2) & (1 << 13), 0); /* SLP_EN reads 0 */
	/* S5: Linux writes SLP_TYP | SLP_EN as one word. */
	io(0x604, true, (5 << 10) | (1 << 13) | 1, 2);
	assert_int_equal(exit_calls, 1);
	assert_int_equal(exit_kind_seen, VM_EXIT_POWEROFF);
	assert_int_equal(exit_status_seen, 0);
	/* PM1_STS is write-1-to-clear, PM1_EN read/write, garbage elsewhere is harmless. */
	io(0x602, true, 0x0121, 2);
	assert_int_equal(io(0x602, false, 0, 2), 0x0121);
	io(0x600, true, 0xFFFF, 2);
	assert_int_equal(io(0x600, false, 0, 2), 0);
	io(0x606, true, 0xFFFFFFFF, 4);
	io(0x608, true, 0xFFFFFFFF, 4);
}

/* ---- S3 ----------------------------------------------------------------------- */

#define PM1_WAK 0x8000
#define PM1_RTC 0x0400
#define S3_SLEEP ((3 << 10) | (1 << 13))

static uint8_t *facs_of_test_vm(void)
{
	const uint8_t *f = xsdt_find("FACP");
	return test_ram + get32(f + 36);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The RTC alarm wakes the machine from S3 when RTC_EN is set: WAK_STS and
 * RTC_STS set (write 1 to clear, each on its own), the BSP resumes in real
 * mode at the FACS's Firmware_Waking_Vector, and the SCI follows
 * RTC_STS & RTC_EN once awake. */
static void test_s3_rtc_wake(void **state)
{
	(void)state;
	make_vm(2);
	assert_int_equal(acpi_create(&test_vm), 0);
	put32(facs_of_test_vm() + 12, 0x8008);
	io(0x602, true, PM1_RTC, 2); /* RTC_EN */
	io(0x604, true, S3_SLEEP | 1, 2);
	assert_int_equal(sleep_calls, 1);
	assert_int_equal(exit_calls, 0);
	assert_int_equal(io(0x604, false, 0, 2) & (1 << 13), 0); /* SLP_EN reads 0 */
	assert_int_equal(io(0x600, false, 0, 2), 0);              /* nothing yet */
	acpi_rtc_alarm(&test_vm);
	assert_int_equal(wake_calls, 1);
	assert_int_equal(wake_seen.mode, VM_WAKE_REAL);
	assert_int_equal(wake_seen.addr, 0x8008);
	assert_int_equal(io(0x600, false, 0, 2), PM1_WAK | PM1_RTC);
	assert_int_equal(sci_line, 1); /* awake, RTC_STS & RTC_EN */
	io(0x600, true, PM1_WAK, 2);
	assert_int_equal(io(0x600, false, 0, 2), PM1_RTC);
	assert_int_equal(sci_line, 1);
	io(0x601, true, PM1_RTC >> 8, 1); /* byte access to the high half */
	assert_int_equal(io(0x600, false, 0, 2), 0);
	assert_int_equal(sci_line, 0);
	/* A second alarm while awake: RTC_STS and the SCI, no wake. */
	acpi_rtc_alarm(&test_vm);
	assert_int_equal(wake_calls, 1);
	assert_int_equal(io(0x600, false, 0, 2), PM1_RTC);
	assert_int_equal(sci_line, 1);
	/* SLP_TYP keeps what was written (it lives in the resume well, as
	 * QEMU keeps it); SLP_EN reads 0. */
	assert_int_equal(io(0x604, false, 0, 2), (3 << 10) | 1);
	io(0x600, true, 0xFFFF, 2);
	assert_int_equal(sci_line, 0);
	/* And S3 can be entered again. */
	io(0x604, true, S3_SLEEP, 2);
	assert_int_equal(sleep_calls, 2);
	acpi_rtc_alarm(&test_vm);
	assert_int_equal(wake_calls, 2);
}

/* Without RTC_EN the alarm sets RTC_STS but neither wakes the machine nor
 * sets WAK_STS, nor raises the SCI (ACPI 6.4 §4.8.3.1.1). */
static void test_s3_alarm_without_rtc_en(void **state)
{
	(void)state;
	make_vm(1);
	assert_int_equal(acpi_create(&test_vm), 0);
	put32(facs_of_test_vm() + 12, 0x8000);
	io(0x604, true, S3_SLEEP, 2);
	assert_int_equal(sleep_calls, 1);
	acpi_rtc_alarm(&test_vm);
	assert_int_equal(wake_calls, 0);
	assert_int_equal(io(0x600, false, 0, 2), PM1_RTC);
	assert_int_equal(sci_changes, 0);
	/* A write of SLP_EN while asleep does not start a second sleep. */
	io(0x604, true, S3_SLEEP, 2);
	assert_int_equal(sleep_calls, 1);
}

/* RTC_STS & RTC_EN already set when the OS enters S3: the machine wakes
 * at once, as hardware does. */
static void test_s3_pending_wake_event(void **state)
{
	(void)state;
	make_vm(1);
	assert_int_equal(acpi_create(&test_vm), 0);
	put32(facs_of_test_vm() + 12, 0x9000);
	io(0x602, true, PM1_RTC, 2);
	acpi_rtc_alarm(&test_vm); /* awake: SCI */
	assert_int_equal(sci_line, 1);
	io(0x604, true, S3_SLEEP, 2);
	assert_int_equal(sleep_calls, 1);
	assert_int_equal(wake_calls, 1);
	assert_int_equal(wake_seen.addr, 0x9000);
	assert_int_equal(io(0x600, false, 0, 2), PM1_WAK | PM1_RTC);
}

/* X_Firmware_Waking_Vector, when set, wins: 32-bit protected mode (the
 * 64-bit environment is not offered: the FACS flags say so and the OSPM
 * flag is ignored). No vector, or one out of reach, resets the machine. */
static void test_s3_waking_vectors(void **state)
{
	(void)state;
	make_vm(1);
	assert_int_equal(acpi_create(&test_vm), 0);
	uint8_t *facs = facs_of_test_vm();
	assert_int_equal(get32(facs + 8), 0); /* no S4BIOS, no 64BIT_WAKE_SUPPORTED */
	assert_int_equal(facs[32], 2);        /* version 2: X field present */
	put32(facs + 12, 0x8000);
	put32(facs + 24, 0x123450);
	put32(facs + 36, 1); /* 64BIT_WAKE_F: not supported, ignored */
	io(0x602, true, PM1_RTC, 2);
	io(0x604, true, S3_SLEEP, 2);
	acpi_rtc_alarm(&test_vm);
	assert_int_equal(wake_calls, 1);
	assert_int_equal(wake_seen.mode, VM_WAKE_PM32);
	assert_int_equal(wake_seen.addr, 0x123450);
	assert_int_equal(exit_calls, 0);

	/* Above 4 GiB: out of reach of 32-bit protected mode: reset. */
	io(0x600, true, 0xFFFF, 2);
	put32(facs + 28, 1);
	io(0x604, true, S3_SLEEP, 2);
	acpi_rtc_alarm(&test_vm);
	assert_int_equal(wake_calls, 1);
	assert_int_equal(exit_calls, 1);
	assert_int_equal(exit_kind_seen, VM_EXIT_POWEROFF);
	assert_int_equal(exit_status_seen, 0);

	/* Neither vector: reset. */
	make_vm(1);
	assert_int_equal(acpi_create(&test_vm), 0);
	io(0x602, true, PM1_RTC, 2);
	io(0x604, true, S3_SLEEP, 2);
	acpi_rtc_alarm(&test_vm);
	assert_int_equal(wake_calls, 0);
	assert_int_equal(exit_calls, 1);
	assert_int_equal(exit_kind_seen, VM_EXIT_POWEROFF);
}

/* Without the ACPI hardware (before it exists, after its teardown) the
 * RTC's alarm goes nowhere. */
static void test_rtc_alarm_without_acpi(void **state)
{
	(void)state;
	make_vm(1);
	acpi_rtc_alarm(&test_vm);
	acpi_rtc_alarm(NULL);
	assert_int_equal(wake_calls + sci_changes, 0);
}

static void test_pm_timer(void **state)
{
	(void)state;
	make_vm(1);
	assert_int_equal(acpi_create(&test_vm), 0);
	uint32_t t0 = io(0x608, false, 0, 4);
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
	uint32_t t1 = io(0x608, false, 0, 4);
	uint32_t d = t1 - t0; /* 20 ms at 3.579545 MHz: 71591 ticks, allow a slow host */
	assert_true(d >= 71000);
	assert_true(d < 71591 * 20);
}

static void test_no_room(void **state)
{
	(void)state;
	make_vm(1);
	test_vm.ncpus = 5000; /* MADT beyond 64 KiB */
	assert_int_equal(acpi_create(&test_vm), -ENOSPC);
	/* 512 KiB of RAM: no BIOS area to write the tables into. */
	make_vm(1);
	test_vm.low_ram = test_vm.ram_size = 0x80000;
	assert_int_equal(acpi_create(&test_vm), -EFAULT);
	assert_int_equal(mptable_create(&test_vm), -EFAULT);
	assert_int_equal(test_vm.io_bus.count, 0);
}

static void test_mptable(void **state)
{
	(void)state;
	make_vm(4);
	assert_int_equal(mptable_create(&test_vm), 0);
	/* The floating pointer at the start of the upper BIOS half. */
	const uint8_t *fp = gpa(MPTABLE_REGION_BASE);
	assert_memory_equal(fp, "_MP_", 4);
	assert_int_equal(fp[8], 1);
	assert_int_equal(fp[9], 4);
	assert_int_equal(sum(fp, 16), 0);
	uint32_t cfg = get32(fp + 4);
	assert_true(cfg >= MPTABLE_REGION_BASE && cfg < 0x100000);
	const uint8_t *t = gpa(cfg);
	assert_memory_equal(t, "PCMP", 4);
	uint16_t len = get16(t + 4);
	assert_int_equal(sum(t, len), 0);
	assert_true(cfg + len <= MPTABLE_REGION_BASE + MPTABLE_REGION_SIZE);
	assert_int_equal(get32(t + 36), 0xFEE00000u);
	uint16_t n = get16(t + 34);
	unsigned cpus = 0, bps = 0, ioapics = 0;
	int irq0_pin = -1, irq4_pin = -1, slot1_inta = -1;
	const uint8_t *e = t + 44;
	for (uint16_t i = 0; i < n; i++) {
		assert_true(e < t + len);
		if (e[0] == 0) {
			assert_int_equal(e[1], cpus);
			assert_int_not_equal(e[3] & 1, 0);
			bps += (e[3] & 2) != 0;
			cpus++;
			e += 20;
			continue;
		}
		if (e[0] == 2) {
			assert_int_equal(get32(e + 4), 0xFEC00000u);
			ioapics++;
		}
		if (e[0] == 3 && e[4] == 1 && e[5] == 0)
			irq0_pin = e[7];
		if (e[0] == 3 && e[4] == 1 && e[5] == 4)
			irq4_pin = e[7];
		if (e[0] == 3 && e[4] == 0 && e[5] == (1 << 2 | 0))
			slot1_inta = e[7];
		e += 8;
	}
	assert_ptr_equal(e, t + len);
	assert_int_equal(cpus, 4);
	assert_int_equal(bps, 1);
	assert_int_equal(ioapics, 1);
	assert_int_equal(irq0_pin, 2);
	assert_int_equal(irq4_pin, 4);
	assert_int_equal(slot1_inta, PCI_INTX_GSI(1, 0));
	/* ACPI and MP tables side by side: neither overwrote the other. */
	assert_int_equal(acpi_create(&test_vm), 0);
	rsdp();
	assert_memory_equal(gpa(MPTABLE_REGION_BASE), "_MP_", 4);
}

/* ---- snapshot section ------------------------------------------------------- */

/* PM1 registers and the PM timer save and load into a fresh machine's,
 * which reads the same and whose timer continues from the saved count;
 * damaged sections are refused; a machine in S3 is not saved. */
static void test_snapshot(void **state)
{
	(void)state;
	make_vm(1);
	struct vm *va = &test_vm;
	assert_int_equal(acpi_create(va), 0);
	io(0x602, true, PM1_RTC, 2);
	acpi_rtc_alarm(va); /* RTC_STS, the SCI */
	io(0x604, true, (5 << 10) | 2, 2); /* SLP_TYP 5 without SLP_EN, BM_RLD */
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
	struct snap_writer w;
	snapt_save(va, "acpi", &w);
	assert_int_equal(w.len, 14);
	uint64_t ran = 0;
	for (unsigned i = 0; i < 8; i++)
		ran |= (uint64_t)w.buf[6 + i] << (8 * i);
	assert_true(ran >= 20 * 1000 * 1000);
	make_vm(1);
	struct vm *vb = &test_vm;
	assert_int_equal(acpi_create(vb), 0);
	/* The fresh one's timer runs: compare all but it. */
	snapt_check_bad_lengths(vb, "acpi", w.buf, w.len, 8);
	snapt_check_bad_byte(vb, "acpi", w.buf, w.len, 0, 0x01, 8); /* PM1_STS bit 0 */
	snapt_check_bad_byte(vb, "acpi", w.buf, w.len, 4, 0x00, 8); /* SCI_EN clear */
	snapt_check_bad_byte(vb, "acpi", w.buf, w.len, 5, 0x24, 8); /* SLP_EN */
	snapt_check_bad_byte(vb, "acpi", w.buf, w.len, 13, 0x40, 8); /* 2^62 ns */
	assert_int_equal(snapt_load(vb, "acpi", w.buf, w.len), 0);
	snap_writer_free(&w);
	uint32_t tb = io(0x608, false, 0, 4);
	nvms = (unsigned)(va - vms) + 1;
	uint32_t ta = io(0x608, false, 0, 4);
	uint32_t ra[3], rb[3];
	for (unsigned i = 0; i < 3; i++)
		ra[i] = io((uint16_t)(0x600 + 2 * i), false, 0, 2);
	nvms = (unsigned)(vb - vms) + 1;
	for (unsigned i = 0; i < 3; i++)
		rb[i] = io((uint16_t)(0x600 + 2 * i), false, 0, 2);
	assert_memory_equal(ra, rb, sizeof(ra));
	assert_int_equal(rb[0], PM1_RTC);
	assert_int_equal(rb[2], (5 << 10) | 3);
	/* The loaded timer continued from the saved count, not from zero. */
	assert_true(tb >= (uint32_t)(ran / 1000 * PM_TIMER_HZ / 1000000));
	assert_true(tb <= ta);
	struct acpi_pm *pb = vb->acpi;
	assert_int_equal(pb->sci_level, 1);
	sci_line = 1;
	io(0x600, true, PM1_RTC, 2);
	assert_int_equal(sci_line, 0);
	/* Asleep in S3: refused, for now. */
	io(0x604, true, S3_SLEEP, 2);
	struct snap_section *s = snapt_find(vb, "acpi");
	w = (struct snap_writer){0};
	assert_int_equal(s->save(s->opaque, &w), -EBUSY);
	snap_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsdp_and_checksums),
		cmocka_unit_test(test_fadt_fields),
		cmocka_unit_test(test_dsdt_contents),
		cmocka_unit_test(test_madt_1_cpu),
		cmocka_unit_test(test_madt_4_cpus),
		cmocka_unit_test(test_madt_300_cpus),
		cmocka_unit_test(test_pm1_poweroff),
		cmocka_unit_test(test_pm_timer),
		cmocka_unit_test(test_s3_rtc_wake),
		cmocka_unit_test(test_s3_alarm_without_rtc_en),
		cmocka_unit_test(test_s3_pending_wake_event),
		cmocka_unit_test(test_s3_waking_vectors),
		cmocka_unit_test(test_rtc_alarm_without_acpi),
		cmocka_unit_test(test_no_room),
		cmocka_unit_test(test_mptable),
		cmocka_unit_test(test_snapshot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
