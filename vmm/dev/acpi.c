/* acpi.c: ACPI tables in guest RAM (RSDP, XSDT/RSDT, FADT, FACS, MADT, DSDT with \_S3, \_S5 and the PCI root bridge) and the PM1/PM timer fixed hardware at 0x600: S5 powers off, S3 suspends to RAM until the RTC alarm wakes the machine. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../devices.h"
#include "../vm.h"
#include "acpi.h"
#include "pci.h"

/* clang-format off */
#define ACPI_OEM_ID        "ZHV   "   /* 6 bytes */
#define ACPI_OEM_TABLE_ID  "ZHVPC   " /* 8 bytes */
#define ACPI_CREATOR_ID    "ZHV "     /* 4 bytes */
#define ACPI_HDR_LEN       36u        /* ACPI 6.4 §5.2.6 */

/* Table sizes and revisions (ACPI 6.4 §5.2.5, §5.2.8, §5.2.9, §5.2.10,
 * §5.2.12). */
#define ACPI_RSDP_LEN      36u
#define ACPI_RSDP_REV      2
#define ACPI_FADT_LEN      276u
#define ACPI_FADT_REV      6
#define ACPI_FADT_MINOR    4
#define ACPI_FACS_LEN      64u
#define ACPI_FACS_VERSION  2
#define ACPI_MADT_REV      5
#define ACPI_DSDT_REV      2 /* 64-bit integers */

/* FACS fields (ACPI 6.4 §5.2.10, Table 5.14). */
#define FACS_WAKING_VECTOR   12
#define FACS_X_WAKING_VECTOR 24
#define FACS_OSPM_FLAGS      36

/* FADT field offsets (ACPI 6.4 Table 5.9). */
#define FADT_FIRMWARE_CTRL 36
#define FADT_DSDT          40
#define FADT_SCI_INT       46
#define FADT_PM1A_EVT_BLK  56
#define FADT_PM1A_CNT_BLK  64
#define FADT_PM_TMR_BLK    76
#define FADT_PM1_EVT_LEN   88
#define FADT_PM1_CNT_LEN   89
#define FADT_PM_TMR_LEN    91
#define FADT_P_LVL2_LAT    96
#define FADT_P_LVL3_LAT    98
#define FADT_CENTURY       108
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS         112
#define FADT_RESET_REG     116
#define FADT_RESET_VALUE   128
#define FADT_MINOR_VERSION 131
#define FADT_X_DSDT        140
#define FADT_X_PM1A_EVT    148
#define FADT_X_PM1A_CNT    172
#define FADT_X_PM_TMR      208
#define FADT_HYPERVISOR_ID 268

/* IAPC_BOOT_ARCH (ACPI 6.4 Table 5.11). */
#define FADT_BOOT_LEGACY_DEVICES 0x0001
#define FADT_BOOT_8042           0x0002
#define FADT_BOOT_NO_VGA         0x0004
/* FADT flags (ACPI 6.4 Table 5.10). */
#define FADT_F_WBINVD        (1u << 0)
#define FADT_F_PROC_C1       (1u << 2)
#define FADT_F_PWR_BUTTON    (1u << 4) /* 1: no fixed-feature power button */
#define FADT_F_SLP_BUTTON    (1u << 5)
#define FADT_F_FIX_RTC       (1u << 6) /* left clear: RTC_STS/RTC_EN exist */
#define FADT_F_TMR_VAL_EXT   (1u << 8) /* 32-bit PM timer */
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED    (1u << 20) /* left clear: full fixed hardware */

/* Generic Address Structure (ACPI 6.4 §5.2.3.2). */
#define GAS_SYSTEM_IO      1
#define GAS_ACCESS_BYTE    1

/* MADT (ACPI 6.4 §5.2.12). */
#define MADT_PCAT_COMPAT   0x1
#define MADT_LAPIC         0  /* Processor Local APIC, 8 bytes */
#define MADT_IOAPIC        1  /* 12 bytes */
#define MADT_ISO           2  /* Interrupt Source Override, 10 bytes */
#define MADT_LAPIC_NMI     4  /* 6 bytes */
#define MADT_X2APIC        9  /* Processor Local x2APIC, 16 bytes */
#define MADT_X2APIC_NMI    10 /* 12 bytes */
#define MADT_ENABLED       0x1
#define MADT_MAX_XAPIC_ID  254 /* 0xFF is the broadcast ID: x2APIC entries from 255 on */
#define MPS_INTI_HIGH_LEVEL 0x000D /* polarity 01 active high, trigger 11 level */

/* PM1 registers (ACPI 6.4 §4.8.3.1, §4.8.3.2). */
#define PM1_STS_RTC        0x0400 /* the RTC alarm fired */
#define PM1_STS_WAK        0x8000 /* set on waking from a sleeping state */
#define PM1_EN_RTC         0x0400 /* RTC_STS wakes the machine / raises the SCI */
#define PM1_CNT_SCI_EN     0x0001
#define PM1_CNT_BM_RLD     0x0002
#define PM1_CNT_SLP_TYP    0x1C00
#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SLP_EN     0x2000
#define PM1_STS_IMPL       (PM1_STS_RTC | PM1_STS_WAK) /* status bits zhv sets */
#define PM_TIMER_HZ        3579545ull /* ACPI 6.4 §4.8.3.3 */

/* AML opcodes (ACPI 6.4 §20.2). */
#define AML_ZERO           0x00
#define AML_ONE            0x01
#define AML_NAME           0x08
#define AML_BYTE           0x0A
#define AML_WORD           0x0B
#define AML_DWORD          0x0C
#define AML_QWORD          0x0E
#define AML_SCOPE          0x10
#define AML_BUFFER         0x11
#define AML_PACKAGE        0x12
#define AML_EXT            0x5B
#define AML_EXT_DEVICE     0x82
#define AML_ROOT           0x5C /* '\' */

/* Resource descriptors (ACPI 6.4 §6.4). */
#define RES_IO             0x47 /* small, I/O port, 7 bytes */
#define RES_END            0x79 /* small, end tag, 1 byte */
#define RES_DWORD_ADDR     0x87 /* large, DWord address space */
#define RES_WORD_ADDR      0x88 /* large, Word address space */
#define RES_TYPE_MEM       0
#define RES_TYPE_IO        1
#define RES_TYPE_BUS       2
#define RES_FLAGS_FIXED    0x0C /* producer, positive decode, _MIF and _MAF fixed */
#define RES_IO_ENTIRE      0x03 /* _RNG: ISA and non-ISA ranges */
#define RES_MEM_RW         0x01 /* non-cacheable, read-write */

#define ACPI_DSDT_MAX      8192u
/* clang-format on */

/* ---- the fixed hardware ---------------------------------------------- */

struct acpi_pm {
	pthread_mutex_t lock;
	struct vm *vm;
	uint16_t sts, en, cnt;
	int64_t base_ns;
	uint32_t facs;  /* GPA of the FACS */
	bool sleeping;  /* in S3: an enabled wake event resumes the machine */
	int sci_level;
};

/* The SCI (ACPI 6.4 §4.8.3.1): level, high while an enabled fixed event's
 * status bit is set and SCI_EN (always set here) is. Lock held. */
static void acpi_pm_update_sci(struct acpi_pm *pm)
{
	int level = !pm->sleeping && (pm->sts & pm->en & PM1_EN_RTC) != 0;
	if (level != pm->sci_level) {
		pm->sci_level = level;
		vm_irq_set(pm->vm, ACPI_SCI_IRQ, level);
	}
}

/* Where the BSP resumes (ACPI 6.4 §5.2.10): a nonzero
 * X_Firmware_Waking_Vector in 32-bit flat protected mode with paging off
 * (zhv does not offer the 64-bit environment: 64BIT_WAKE_SUPPORTED_F is
 * clear, so 64BIT_WAKE_F is ignored); else the Firmware_Waking_Vector in
 * real mode. False if the guest left neither (or one zhv cannot reach:
 * above 4 GiB). */
static bool acpi_wake_target(struct acpi_pm *pm, struct vm_wake_target *t)
{
	const uint8_t *f = vm_gpa(pm->vm, pm->facs, ACPI_FACS_LEN);
	if (!f)
		return false;
	uint32_t v32 = 0;
	uint64_t v64 = 0;
	for (unsigned i = 0; i < 4; i++)
		v32 |= (uint32_t)f[FACS_WAKING_VECTOR + i] << (8 * i);
	for (unsigned i = 0; i < 8; i++)
		v64 |= (uint64_t)f[FACS_X_WAKING_VECTOR + i] << (8 * i);
	if (v64) {
		t->mode = VM_WAKE_PM32;
		t->addr = (uint32_t)v64;
		return v64 <= 0xFFFFFFFFull;
	}
	t->mode = VM_WAKE_REAL;
	t->addr = v32;
	return v32 != 0 && v32 < 0x100000; /* real mode reaches the first MiB */
}

/* An enabled wake event while asleep: WAK_STS, and the machine resumes
 * (ACPI 6.4 §4.8.3.1.1, §16.3). Lock held; (*t) is where, and false means
 * the guest gave no usable waking vector (the machine resets, as a PC
 * BIOS does then). */
static bool acpi_pm_wake(struct acpi_pm *pm, struct vm_wake_target *t)
{
	pm->sleeping = false;
	pm->sts |= PM1_STS_WAK;
	return acpi_wake_target(pm, t);
}

/* Outside the lock: resume, or reset if there is no vector. */
static void acpi_pm_resume(struct acpi_pm *pm, bool ok, const struct vm_wake_target *t)
{
	if (ok) {
		vm_wake(pm->vm, t);
		return;
	}
	fprintf(stderr, "zhv: resume from S3: no usable waking vector in the FACS; resetting\n");
	vm_request_exit(pm->vm, VM_EXIT_POWEROFF, 0);
}

void acpi_rtc_alarm(struct vm *vm)
{
	if (!vm)
		return;
	pthread_mutex_lock(&vm->pm_lock);
	struct acpi_pm *pm = vm->acpi;
	bool wake = false, ok = false;
	struct vm_wake_target t = {0};
	if (pm) {
		pthread_mutex_lock(&pm->lock);
		pm->sts |= PM1_STS_RTC;
		if (pm->sleeping && (pm->en & PM1_EN_RTC)) {
			wake = true;
			ok = acpi_pm_wake(pm, &t);
		}
		acpi_pm_update_sci(pm);
		pthread_mutex_unlock(&pm->lock);
	}
	pthread_mutex_unlock(&vm->pm_lock);
	if (wake)
		acpi_pm_resume(pm, ok, &t);
}

static uint32_t acpi_pm_timer(const struct acpi_pm *pm)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - pm->base_ns;
	if (ns < 0)
		ns = 0;
	uint64_t s = (uint64_t)ns / 1000000000u, r = (uint64_t)ns % 1000000000u;
	return (uint32_t)(s * PM_TIMER_HZ + r * PM_TIMER_HZ / 1000000000u);
}

/* Registers at 0x600 as bytes: PM1_STS, PM1_EN, PM1_CNT, a reserved
 * word, PM_TMR. Byte-wise so any access width works. */
static void acpi_pm_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                           unsigned size)
{
	struct acpi_pm *pm = opaque;
	bool poweroff = false, suspend = false, wake_now = false, ok = false;
	struct vm_wake_target t = {0};
	pthread_mutex_lock(&pm->lock);
	if (!write) {
		uint8_t img[ACPI_PM_IO_LEN];
		uint32_t tmr = acpi_pm_timer(pm);
		img[0] = (uint8_t)pm->sts;
		img[1] = (uint8_t)(pm->sts >> 8);
		img[2] = (uint8_t)pm->en;
		img[3] = (uint8_t)(pm->en >> 8);
		img[4] = (uint8_t)pm->cnt; /* SLP_EN reads 0 */
		img[5] = (uint8_t)(pm->cnt >> 8);
		img[6] = img[7] = 0xFF;
		for (unsigned i = 0; i < 4; i++)
			img[8 + i] = (uint8_t)(tmr >> (8 * i));
		for (unsigned i = 0; i < size; i++)
			data[i] = offset + i < ACPI_PM_IO_LEN ? img[offset + i] : 0xFF;
	} else {
		uint16_t cnt = pm->cnt;
		bool cnt_written = false;
		for (unsigned i = 0; i < size; i++) {
			uint64_t reg = offset + i;
			unsigned shift = 8 * (unsigned)(reg & 1);
			uint16_t byte = (uint16_t)(data[i] << shift), keep = (uint16_t)~(0xFFu << shift);
			if (reg < 2) /* PM1_STS: write 1 to clear */
				pm->sts &= (uint16_t)~byte;
			else if (reg < 4)
				pm->en = (pm->en & keep) | byte;
			else if (reg < 6) {
				cnt = (cnt & keep) | byte;
				cnt_written = true;
			}
			/* reserved word and PM_TMR: read-only */
		}
		if (cnt_written) {
			unsigned typ = (cnt & PM1_CNT_SLP_TYP) >> PM1_CNT_SLP_TYP_SHIFT;
			poweroff = (cnt & PM1_CNT_SLP_EN) && typ == ACPI_SLP_TYP_S5;
			suspend = (cnt & PM1_CNT_SLP_EN) && typ == ACPI_SLP_TYP_S3 && !pm->sleeping;
			pm->cnt = (cnt & (PM1_CNT_SLP_TYP | PM1_CNT_BM_RLD)) | PM1_CNT_SCI_EN;
		}
		if (suspend) {
			pm->sleeping = true;
			/* A wake event already pending wakes at once, as on
			 * hardware (the OS clears the status bits first). */
			if (pm->sts & pm->en & PM1_EN_RTC) {
				wake_now = true;
				ok = acpi_pm_wake(pm, &t);
			}
		}
		acpi_pm_update_sci(pm);
	}
	pthread_mutex_unlock(&pm->lock);
	if (poweroff) /* outside the lock: vm_request_exit kicks every vCPU */
		vm_request_exit(pm->vm, VM_EXIT_POWEROFF, 0);
	if (suspend) /* every vCPU parks before it enters the guest again */
		vm_sleep(pm->vm);
	if (wake_now)
		acpi_pm_resume(pm, ok, &t);
}

/* ---- snapshot (snapshot.h): section "acpi", version 1 --------------------
 * PM1_STS PM1_EN PM1_CNT (u16 each) and the PM timer's count as the ns it
 * has run (u64, a guest-time count: the timer continues from there). The
 * tables are in guest RAM, saved with it; the FACS address is fixed at
 * creation. A machine asleep in S3 cannot be saved (-EBUSY): its parked
 * vCPUs and waking vector are machine state outside this device. The SCI's
 * level follows from the registers (the line is the IOAPIC's section's). */

static int acpi_snap_save(void *opaque, struct snap_writer *w)
{
	struct acpi_pm *pm = opaque;
	pthread_mutex_lock(&pm->lock);
	if (pm->sleeping) {
		pthread_mutex_unlock(&pm->lock);
		fprintf(stderr, "zhv: acpi: the machine is asleep (S3): snapshot it awake\n");
		return -EBUSY;
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t ran = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - pm->base_ns;
	snap_put_u16(w, pm->sts);
	snap_put_u16(w, pm->en);
	snap_put_u16(w, pm->cnt);
	snap_put_u64(w, (uint64_t)(ran > 0 ? ran : 0));
	pthread_mutex_unlock(&pm->lock);
	return 0;
}

static int acpi_snap_load(void *opaque, struct snap_reader *r)
{
	struct acpi_pm *pm = opaque;
	uint16_t sts = snap_get_u16(r), en = snap_get_u16(r), cnt = snap_get_u16(r);
	uint64_t ran = snap_get_u64(r);
	if ((sts & ~PM1_STS_IMPL) || (cnt & ~(PM1_CNT_SLP_TYP | PM1_CNT_BM_RLD | PM1_CNT_SCI_EN)) ||
	    !(cnt & PM1_CNT_SCI_EN) || ran >= (1ull << 62))
		snap_bad(r);
	int ret = snap_reader_end(r);
	if (ret < 0)
		return ret;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&pm->lock);
	pm->sts = sts;
	pm->en = en;
	pm->cnt = cnt;
	pm->base_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - (int64_t)ran;
	pm->sleeping = false;
	pm->sci_level = (pm->sts & pm->en & PM1_EN_RTC) != 0;
	pthread_mutex_unlock(&pm->lock);
	return 0;
}

/* ---- table helpers ------------------------------------------------------ */

static void acpi_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void acpi_put32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void acpi_put64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t acpi_sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;
	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* Set byte (at) so that [p, p + len) sums to 0. */
static void acpi_checksum(uint8_t *p, size_t len, size_t at)
{
	p[at] = 0;
	p[at] = (uint8_t)(0u - acpi_sum(p, len));
}

static void acpi_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	acpi_put32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, ACPI_OEM_ID, 6);
	memcpy(t + 16, ACPI_OEM_TABLE_ID, 8);
	acpi_put32(t + 24, 1); /* OEM revision */
	memcpy(t + 28, ACPI_CREATOR_ID, 4);
	acpi_put32(t + 32, 1); /* creator revision */
}

static void acpi_gas(uint8_t *p, uint8_t space, uint8_t bit_width, uint8_t access,
                     uint64_t addr)
{
	p[0] = space;
	p[1] = bit_width;
	p[2] = 0; /* bit offset */
	p[3] = access;
	acpi_put64(p + 4, addr);
}

/* ---- AML ------------------------------------------------------------------ */

struct aml {
	uint8_t *buf;
	size_t len, cap;
	bool overflow;
};

static void aml_byte(struct aml *a, uint8_t b)
{
	if (a->len < a->cap)
		a->buf[a->len++] = b;
	else
		a->overflow = true;
}

static void aml_bytes(struct aml *a, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		aml_byte(a, ((const uint8_t *)p)[i]);
}

static void aml_le(struct aml *a, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		aml_byte(a, (uint8_t)(v >> (8 * i)));
}

/* An integer in the shortest encoding (ACPI 6.4 §20.2.3 ComputationalData). */
static void aml_int(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO);
	} else if (v == 1) {
		aml_byte(a, AML_ONE);
	} else if (v <= 0xFF) {
		aml_byte(a, AML_BYTE);
		aml_le(a, v, 1);
	} else if (v <= 0xFFFF) {
		aml_byte(a, AML_WORD);
		aml_le(a, v, 2);
	} else if (v <= 0xFFFFFFFF) {
		aml_byte(a, AML_DWORD);
		aml_le(a, v, 4);
	} else {
		aml_byte(a, AML_QWORD);
		aml_le(a, v, 8);
	}
}

/* Open a PkgLength: reserve its maximum of 4 bytes; aml_close encodes it
 * (ACPI 6.4 §20.2.4) and slides the body down to the real length. */
static size_t aml_open(struct aml *a)
{
	size_t at = a->len;
	aml_le(a, 0, 4);
	return at;
}

static void aml_close(struct aml *a, size_t at)
{
	if (a->overflow)
		return;
	size_t body = a->len - at - 4;
	unsigned n = body + 1 <= 0x3F ? 1 : body + 2 <= 0xFFF ? 2 : body + 3 <= 0xFFFFF ? 3 : 4;
	size_t total = body + n;
	if (total > 0xFFFFFFF) {
		a->overflow = true;
		return;
	}
	uint8_t *p = a->buf + at;
	if (n == 1) {
		p[0] = (uint8_t)total;
	} else {
		p[0] = (uint8_t)((n - 1) << 6 | (total & 0x0F));
		for (unsigned i = 1; i < n; i++)
			p[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	memmove(p + n, p + 4, body);
	a->len -= 4 - n;
}

/* Name(seg, Package() { ints... }) */
static void aml_name_package(struct aml *a, const char *seg, const uint64_t *v, unsigned n)
{
	aml_byte(a, AML_NAME);
	aml_bytes(a, seg, 4);
	aml_byte(a, AML_PACKAGE);
	size_t pkg = aml_open(a);
	aml_byte(a, (uint8_t)n);
	for (unsigned i = 0; i < n; i++)
		aml_int(a, v[i]);
	aml_close(a, pkg);
}

static void aml_name_int(struct aml *a, const char *seg, uint64_t v)
{
	aml_byte(a, AML_NAME);
	aml_bytes(a, seg, 4);
	aml_int(a, v);
}

/* Word Address Space Descriptor (ACPI 6.4 §6.4.3.5.3). */
static void aml_res_word(struct aml *a, uint8_t type, uint8_t type_flags, uint16_t min,
                         uint16_t max)
{
	aml_byte(a, RES_WORD_ADDR);
	aml_le(a, 13, 2); /* length of the rest */
	aml_byte(a, type);
	aml_byte(a, RES_FLAGS_FIXED);
	aml_byte(a, type_flags);
	aml_le(a, 0, 2);   /* granularity */
	aml_le(a, min, 2);
	aml_le(a, max, 2);
	aml_le(a, 0, 2);   /* translation offset */
	aml_le(a, (uint32_t)max - min + 1, 2);
}

/* The root bridge's _CRS: bus 0-255, the config ports, all other I/O, and
 * the BAR window (what Linux may assign BARs from). */
static void aml_pci_crs(struct aml *a)
{
	aml_byte(a, AML_NAME);
	aml_bytes(a, "_CRS", 4);
	aml_byte(a, AML_BUFFER);
	size_t buf = aml_open(a);
	/* The buffer size operand precedes the bytes: build the bytes after
	 * a 3-byte WordConst placeholder, then fill it in. */
	size_t size_at = a->len;
	aml_byte(a, AML_WORD);
	aml_le(a, 0, 2);
	size_t start = a->len;
	aml_res_word(a, RES_TYPE_BUS, 0, 0x00, 0xFF);
	/* IO(Decode16, 0xcf8, 0xcf8, 1, 8) (§6.4.2.5) */
	const uint8_t conf_io[] = {RES_IO, 0x01, 0xF8, 0x0C, 0xF8, 0x0C, 0x01, 0x08};
	aml_bytes(a, conf_io, sizeof(conf_io));
	aml_res_word(a, RES_TYPE_IO, RES_IO_ENTIRE, 0x0000, 0x0CF7);
	aml_res_word(a, RES_TYPE_IO, RES_IO_ENTIRE, 0x0D00, 0xFFFF);
	/* DWord Memory (§6.4.3.5.2) */
	aml_byte(a, RES_DWORD_ADDR);
	aml_le(a, 23, 2);
	aml_byte(a, RES_TYPE_MEM);
	aml_byte(a, RES_FLAGS_FIXED);
	aml_byte(a, RES_MEM_RW);
	aml_le(a, 0, 4);
	aml_le(a, VM_PCI_MMIO_BASE, 4);
	aml_le(a, VM_PCI_MMIO_BASE + VM_PCI_MMIO_SIZE - 1, 4);
	aml_le(a, 0, 4);
	aml_le(a, VM_PCI_MMIO_SIZE, 4);
	aml_byte(a, RES_END);
	aml_byte(a, 0); /* checksum 0: "treated as if the checksum operation succeeded" */
	if (!a->overflow) {
		size_t n = a->len - start;
		a->buf[size_at + 1] = (uint8_t)n;
		a->buf[size_at + 2] = (uint8_t)(n >> 8);
	}
	aml_close(a, buf);
}

/* _PRT (ACPI 6.4 §6.2.13): every INTx of slots 1-31 to its GSI, with
 * Source 0 (GSI form). Must match PCI_INTX_GSI, which pci.c programs. */
static void aml_pci_prt(struct aml *a)
{
	aml_byte(a, AML_NAME);
	aml_bytes(a, "_PRT", 4);
	aml_byte(a, AML_PACKAGE);
	size_t outer = aml_open(a);
	aml_byte(a, (uint8_t)((PCI_MAX_DEVICES - 1) * 4));
	for (unsigned slot = 1; slot < PCI_MAX_DEVICES; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			aml_byte(a, AML_PACKAGE);
			size_t inner = aml_open(a);
			aml_byte(a, 4);
			aml_int(a, (uint64_t)slot << 16 | 0xFFFF); /* _ADR: any function */
			aml_int(a, pin);
			aml_int(a, 0); /* Source: none, so the next field is a GSI */
			aml_int(a, PCI_INTX_GSI(slot, pin));
			aml_close(a, inner);
		}
	}
	aml_close(a, outer);
}

/* DSDT body:
 *   Name (\_S3, Package () { 3, 3, 0, 0 })
 *   Name (\_S5, Package () { 5, 5, 0, 0 })
 *   Scope (\_SB) { Device (PCI0) { _HID PNP0A03, _UID 0, _BBN 0, _CRS, _PRT } } */
static size_t acpi_build_dsdt_aml(uint8_t *out, size_t cap)
{
	struct aml a = {.buf = out, .cap = cap};
	const uint64_t s3[4] = {ACPI_SLP_TYP_S3, ACPI_SLP_TYP_S3, 0, 0};
	const uint64_t s5[4] = {ACPI_SLP_TYP_S5, ACPI_SLP_TYP_S5, 0, 0};
	aml_name_package(&a, "_S3_", s3, 4);
	aml_name_package(&a, "_S5_", s5, 4);

	aml_byte(&a, AML_SCOPE);
	size_t scope = aml_open(&a);
	aml_byte(&a, AML_ROOT);
	aml_bytes(&a, "_SB_", 4);
	aml_byte(&a, AML_EXT);
	aml_byte(&a, AML_EXT_DEVICE);
	size_t dev = aml_open(&a);
	aml_bytes(&a, "PCI0", 4);
	/* _HID EISAID("PNP0A03"): compressed "PNP" = 0x41D0, product 0x0A03,
	 * stored big-endian in a DWord (ACPI 6.4 §19.6.35). */
	aml_byte(&a, AML_NAME);
	aml_bytes(&a, "_HID", 4);
	const uint8_t hid[] = {AML_DWORD, 0x41, 0xD0, 0x0A, 0x03};
	aml_bytes(&a, hid, sizeof(hid));
	aml_name_int(&a, "_UID", 0);
	aml_name_int(&a, "_BBN", 0);
	aml_pci_crs(&a);
	aml_pci_prt(&a);
	aml_close(&a, dev);
	aml_close(&a, scope);
	return a.overflow ? 0 : a.len;
}

/* ---- the tables ------------------------------------------------------------- */

struct acpi_region {
	uint8_t *mem;  /* host view of [ACPI_REGION_BASE, + ACPI_REGION_SIZE) */
	uint32_t used;
	bool full;
};

/* Carve (len) bytes aligned to (align) out of the region; returns the
 * offset (the GPA is ACPI_REGION_BASE + offset). */
static uint32_t acpi_alloc(struct acpi_region *r, uint32_t len, uint32_t align)
{
	uint32_t at = (r->used + align - 1) & ~(align - 1);
	if (at > ACPI_REGION_SIZE || len > ACPI_REGION_SIZE - at) {
		r->full = true;
		return 0;
	}
	r->used = at + len;
	return at;
}

static uint32_t acpi_madt_len(uint32_t ncpus)
{
	uint32_t xapic = ncpus > MADT_MAX_XAPIC_ID + 1 ? MADT_MAX_XAPIC_ID + 1 : ncpus;
	uint32_t x2apic = ncpus - xapic;
	return ACPI_HDR_LEN + 8 + xapic * 8 + x2apic * 16 + 12 + 2 * 10 + 6 + (x2apic ? 12 : 0);
}

static void acpi_build_madt(uint8_t *t, uint32_t len, uint32_t ncpus)
{
	acpi_header(t, "APIC", len, ACPI_MADT_REV);
	acpi_put32(t + 36, (uint32_t)VM_LAPIC_BASE);
	acpi_put32(t + 40, MADT_PCAT_COMPAT);
	uint8_t *p = t + 44;
	for (uint32_t i = 0; i < ncpus; i++) { /* APIC ID = UID = vCPU index */
		if (i <= MADT_MAX_XAPIC_ID) {
			p[0] = MADT_LAPIC;
			p[1] = 8;
			p[2] = (uint8_t)i;
			p[3] = (uint8_t)i;
			acpi_put32(p + 4, MADT_ENABLED);
			p += 8;
		} else {
			p[0] = MADT_X2APIC;
			p[1] = 16;
			acpi_put16(p + 2, 0);
			acpi_put32(p + 4, i);
			acpi_put32(p + 8, MADT_ENABLED);
			acpi_put32(p + 12, i);
			p += 16;
		}
	}
	p[0] = MADT_IOAPIC;
	p[1] = 12;
	p[2] = 0; /* IOAPIC ID: dev/ioapic.c's reset value */
	p[3] = 0;
	acpi_put32(p + 4, (uint32_t)VM_IOAPIC_BASE);
	acpi_put32(p + 8, 0); /* GSI base */
	p += 12;
	/* ISA IRQ 0 -> GSI 2 (dev/ioapic.c wires it so), SCI level high. */
	const struct {
		uint8_t irq;
		uint32_t gsi;
		uint16_t flags;
	} iso[2] = {{0, 2, 0}, {ACPI_SCI_IRQ, ACPI_SCI_IRQ, MPS_INTI_HIGH_LEVEL}};
	for (unsigned i = 0; i < 2; i++) {
		p[0] = MADT_ISO;
		p[1] = 10;
		p[2] = 0; /* bus: ISA */
		p[3] = iso[i].irq;
		acpi_put32(p + 4, iso[i].gsi);
		acpi_put16(p + 8, iso[i].flags);
		p += 10;
	}
	p[0] = MADT_LAPIC_NMI; /* LINT1 is NMI on every processor */
	p[1] = 6;
	p[2] = 0xFF;
	acpi_put16(p + 3, 0);
	p[5] = 1;
	p += 6;
	if (ncpus > MADT_MAX_XAPIC_ID + 1) {
		p[0] = MADT_X2APIC_NMI;
		p[1] = 12;
		acpi_put16(p + 2, 0);
		acpi_put32(p + 4, 0xFFFFFFFFu);
		p[8] = 1;
		p[9] = p[10] = p[11] = 0;
	}
	acpi_checksum(t, len, 9);
}

static void acpi_build_fadt(uint8_t *t, uint32_t facs, uint32_t dsdt)
{
	acpi_header(t, "FACP", ACPI_FADT_LEN, ACPI_FADT_REV);
	acpi_put32(t + FADT_FIRMWARE_CTRL, facs);
	acpi_put32(t + FADT_DSDT, dsdt);
	acpi_put16(t + FADT_SCI_INT, ACPI_SCI_IRQ);
	/* SMI_CMD 0: always in ACPI mode, SCI_EN reads 1. */
	acpi_put32(t + FADT_PM1A_EVT_BLK, ACPI_PM1A_EVT_PORT);
	acpi_put32(t + FADT_PM1A_CNT_BLK, ACPI_PM1A_CNT_PORT);
	acpi_put32(t + FADT_PM_TMR_BLK, ACPI_PM_TMR_PORT);
	t[FADT_PM1_EVT_LEN] = 4;
	t[FADT_PM1_CNT_LEN] = 2;
	t[FADT_PM_TMR_LEN] = 4;
	acpi_put16(t + FADT_P_LVL2_LAT, 101);  /* > 100: no C2 */
	acpi_put16(t + FADT_P_LVL3_LAT, 1001); /* > 1000: no C3 */
	t[FADT_CENTURY] = 0x32;                /* dev/rtc.c keeps the century there */
	acpi_put16(t + FADT_IAPC_BOOT_ARCH,
	           FADT_BOOT_LEGACY_DEVICES | FADT_BOOT_8042 | FADT_BOOT_NO_VGA);
	acpi_put32(t + FADT_FLAGS, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_PWR_BUTTON |
	                               FADT_F_SLP_BUTTON | FADT_F_TMR_VAL_EXT |
	                               FADT_F_RESET_REG_SUP);
	acpi_gas(t + FADT_RESET_REG, GAS_SYSTEM_IO, 8, GAS_ACCESS_BYTE, ACPI_RESET_PORT);
	t[FADT_RESET_VALUE] = ACPI_RESET_VALUE;
	t[FADT_MINOR_VERSION] = ACPI_FADT_MINOR;
	acpi_put64(t + FADT_X_DSDT, dsdt);
	acpi_gas(t + FADT_X_PM1A_EVT, GAS_SYSTEM_IO, 32, 0, ACPI_PM1A_EVT_PORT);
	acpi_gas(t + FADT_X_PM1A_CNT, GAS_SYSTEM_IO, 16, 0, ACPI_PM1A_CNT_PORT);
	acpi_gas(t + FADT_X_PM_TMR, GAS_SYSTEM_IO, 32, 0, ACPI_PM_TMR_PORT);
	memcpy(t + FADT_HYPERVISOR_ID, "ZHV", 3);
	acpi_checksum(t, ACPI_FADT_LEN, 9);
}

/* Lay every table out in the region and write it into guest RAM; the
 * FACS's address goes to *facs_gpa. */
static int acpi_build_tables(struct vm *vm, uint32_t *facs_gpa)
{
	uint8_t *mem = vm_gpa(vm, ACPI_REGION_BASE, ACPI_REGION_SIZE);
	if (!mem)
		return -EFAULT;
	uint8_t *aml = malloc(ACPI_DSDT_MAX);
	if (!aml)
		return -ENOMEM;
	size_t aml_len = acpi_build_dsdt_aml(aml, ACPI_DSDT_MAX);
	if (!aml_len) {
		free(aml);
		return -ENOSPC;
	}
	uint32_t ncpus = vm->ncpus ? vm->ncpus : 1;
	uint32_t madt_len = acpi_madt_len(ncpus);
	uint32_t dsdt_len = ACPI_HDR_LEN + (uint32_t)aml_len;
	const uint32_t ntables = 2; /* FADT, MADT */

	struct acpi_region r = {.mem = mem};
	uint32_t rsdp = acpi_alloc(&r, ACPI_RSDP_LEN, 16);
	uint32_t xsdt = acpi_alloc(&r, ACPI_HDR_LEN + 8 * ntables, 16);
	uint32_t rsdt = acpi_alloc(&r, ACPI_HDR_LEN + 4 * ntables, 16);
	uint32_t fadt = acpi_alloc(&r, ACPI_FADT_LEN, 16);
	uint32_t facs = acpi_alloc(&r, ACPI_FACS_LEN, 64); /* ACPI 6.4 §5.2.10: 64-byte aligned */
	uint32_t madt = acpi_alloc(&r, madt_len, 16);
	uint32_t dsdt = acpi_alloc(&r, dsdt_len, 16);
	if (r.full) {
		free(aml);
		return -ENOSPC;
	}
	memset(mem, 0, r.used);
#define GPA(off) (ACPI_REGION_BASE + (off))

	uint8_t *t = mem + dsdt;
	acpi_header(t, "DSDT", dsdt_len, ACPI_DSDT_REV);
	memcpy(t + ACPI_HDR_LEN, aml, aml_len);
	acpi_checksum(t, dsdt_len, 9);
	free(aml);

	t = mem + facs;
	memcpy(t, "FACS", 4);
	acpi_put32(t + 4, ACPI_FACS_LEN);
	t[32] = ACPI_FACS_VERSION;
	/* Flags 0: no S4BIOS, no 64-bit wake environment. The waking
	 * vectors start at 0 (the OS sets them before S3). */
	*facs_gpa = GPA(facs);

	acpi_build_fadt(mem + fadt, GPA(facs), GPA(dsdt));
	acpi_build_madt(mem + madt, madt_len, ncpus);

	const uint32_t tables[2] = {GPA(fadt), GPA(madt)};
	t = mem + xsdt;
	acpi_header(t, "XSDT", ACPI_HDR_LEN + 8 * ntables, 1);
	for (uint32_t i = 0; i < ntables; i++)
		acpi_put64(t + ACPI_HDR_LEN + 8 * i, tables[i]);
	acpi_checksum(t, ACPI_HDR_LEN + 8 * ntables, 9);
	t = mem + rsdt;
	acpi_header(t, "RSDT", ACPI_HDR_LEN + 4 * ntables, 1);
	for (uint32_t i = 0; i < ntables; i++)
		acpi_put32(t + ACPI_HDR_LEN + 4 * i, tables[i]);
	acpi_checksum(t, ACPI_HDR_LEN + 4 * ntables, 9);

	/* RSDP (ACPI 6.4 §5.2.5.3): checksum over the first 20 bytes, extended
	 * checksum over all 36. */
	t = mem + rsdp;
	memcpy(t, "RSD PTR ", 8);
	memcpy(t + 9, ACPI_OEM_ID, 6);
	t[15] = ACPI_RSDP_REV;
	acpi_put32(t + 16, GPA(rsdt));
	acpi_put32(t + 20, ACPI_RSDP_LEN);
	acpi_put64(t + 24, GPA(xsdt));
	acpi_checksum(t, 20, 8);
	acpi_checksum(t, ACPI_RSDP_LEN, 32);
#undef GPA
	return 0;
}

static void acpi_pm_destroy(void *opaque)
{
	struct acpi_pm *pm = opaque;
	/* The RTC's thread may still signal an alarm: not to (pm) any more. */
	pthread_mutex_lock(&pm->vm->pm_lock);
	if (pm->vm->acpi == pm)
		pm->vm->acpi = NULL;
	pthread_mutex_unlock(&pm->vm->pm_lock);
	pthread_mutex_destroy(&pm->lock);
	free(pm);
}

int acpi_create(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	uint32_t facs = 0;
	int ret = acpi_build_tables(vm, &facs);
	if (ret < 0)
		return ret;
	struct acpi_pm *pm = calloc(1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	pthread_mutex_init(&pm->lock, NULL);
	pm->vm = vm;
	pm->facs = facs;
	pm->cnt = PM1_CNT_SCI_EN;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	pm->base_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	/* From here the machine owns (pm): vm_destroy frees it, also after a
	 * failure below. */
	ret = vm_add_teardown(vm, acpi_pm_destroy, pm);
	if (ret < 0) {
		acpi_pm_destroy(pm);
		return ret;
	}
	pthread_mutex_lock(&vm->pm_lock);
	vm->acpi = pm;
	pthread_mutex_unlock(&vm->pm_lock);
	ret = bus_register(&vm->io_bus, vm->guest, ACPI_PM_IO_BASE, ACPI_PM_IO_LEN, acpi_pm_access,
	                   pm, "acpi-pm");
	if (ret < 0)
		return ret;
	return vm_add_snapshot(vm, "acpi", 1, acpi_snap_save, acpi_snap_load, pm);
}
