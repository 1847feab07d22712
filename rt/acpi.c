/* acpi.c: just enough ACPI to find a table, count CPUs (MADT) and power
 * off (FADT's PM1a control block, SLP_TYP from the DSDT's \_S5 package).
 * ACPI 6.x: RSDP 5.2.5, XSDT 5.2.8, FADT 5.2.9 (Table 5.9), MADT 5.2.12,
 * AML 20.2. See rt.h. */
#include "rt.h"

#define SDT_HEADER_LEN 36

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	__builtin_memcpy(&v, p, 4);
	return v;
}

static uint8_t checksum(const uint8_t *p, uint32_t len)
{
	uint8_t sum = 0;
	for (uint32_t i = 0; i < len; i++)
		sum += p[i];
	return sum;
}

/* The RSDP lies on a 16-byte boundary in the BIOS area 0xE0000-0xFFFFF. */
const uint8_t *rt_acpi_find_rsdp(void)
{
	for (uintptr_t a = 0xE0000; a < 0x100000; a += 16) {
		const uint8_t *p = (const uint8_t *)a;
		if (p[0] == 'R' && memcmp(p, "RSD PTR ", 8) == 0 && checksum(p, 20) == 0)
			return p;
	}
	return NULL;
}

/* A 64-bit physical address this 32-bit, paging-off guest can reach. */
static const uint8_t *phys(uint32_t lo, uint32_t hi)
{
	return hi ? NULL : (const uint8_t *)(uintptr_t)lo;
}

const uint8_t *rt_acpi_find_table(const char sig[4])
{
	const uint8_t *rsdp = rt_acpi_find_rsdp();
	if (!rsdp)
		return NULL;
	const uint8_t *root;
	unsigned entry_size;
	if (rsdp[15] >= 2 && (root = phys(rd32(rsdp + 24), rd32(rsdp + 28))) != NULL) {
		entry_size = 8; /* XSDT */
	} else {
		root = phys(rd32(rsdp + 16), 0);
		entry_size = 4; /* RSDT */
	}
	if (!root)
		return NULL;
	uint32_t len = rd32(root + 4);
	if (len < SDT_HEADER_LEN || len > 0x10000)
		return NULL;
	for (uint32_t off = SDT_HEADER_LEN; off + entry_size <= len; off += entry_size) {
		const uint8_t *t = phys(rd32(root + off), entry_size == 8 ? rd32(root + off + 4) : 0);
		if (t && memcmp(t, sig, 4) == 0)
			return t;
	}
	return NULL;
}

unsigned rt_acpi_count_cpus(void)
{
	const uint8_t *madt = rt_acpi_find_table("APIC");
	if (!madt)
		return 0;
	uint32_t len = rd32(madt + 4);
	unsigned n = 0;
	/* Entries follow the header, the local APIC address and flags. */
	for (uint32_t off = SDT_HEADER_LEN + 8; off + 2 <= len;) {
		uint8_t type = madt[off], elen = madt[off + 1];
		if (elen < 2)
			break;
		if (type == 0 && elen >= 8 && (rd32(madt + off + 4) & 1)) /* enabled LAPIC */
			n++;
		off += elen;
	}
	return n;
}

/* SLP_TYPa of \_S5: NameOp "_S5_" PackageOp PkgLength NumElements, then
 * the first element (BytePrefix n, ZeroOp, OneOp). 5 when not found. */
static unsigned s5_slp_typ(const uint8_t *dsdt)
{
	if (!dsdt || memcmp(dsdt, "DSDT", 4) != 0)
		return 5;
	uint32_t len = rd32(dsdt + 4);
	if (len > 0x100000)
		return 5;
	for (uint32_t i = SDT_HEADER_LEN; i + 8 < len; i++) {
		if (dsdt[i] != '_' || memcmp(dsdt + i, "_S5_", 4) != 0)
			continue;
		const uint8_t *p = dsdt + i + 4;
		if (*p++ != 0x12) /* PackageOp */
			continue;
		p += 1 + (*p >> 6); /* PkgLength: lead byte + follow bytes */
		p++;                /* NumElements */
		if (p >= dsdt + len)
			break;
		if (*p == 0x0A) /* BytePrefix */
			return p[1] & 7;
		if (*p <= 1) /* ZeroOp, OneOp */
			return *p;
		return 5;
	}
	return 5;
}

const char *rt_acpi_poweroff(void)
{
	const uint8_t *fadt = rt_acpi_find_table("FACP");
	if (!fadt)
		return "no ACPI FADT";
	uint32_t len = rd32(fadt + 4);
	uint32_t pm1a = len >= 68 ? rd32(fadt + 64) : 0; /* PM1a_CNT_BLK */
	if (!pm1a && len >= 184 && fadt[172] == 1)     /* X_PM1a_CNT_BLK in I/O space */
		pm1a = rd32(fadt + 176);
	const uint8_t *dsdt = len >= 44 ? phys(rd32(fadt + 40), 0) : NULL;
	if (!dsdt && len >= 148)
		dsdt = phys(rd32(fadt + 140), rd32(fadt + 144)); /* X_DSDT */
	if (!pm1a || pm1a > 0xFFFF)
		return "the FADT has no PM1a control block";
	unsigned slp_typ = s5_slp_typ(dsdt);
	outw((uint16_t)pm1a, (uint16_t)(slp_typ << 10 | 1u << 13)); /* SLP_TYP | SLP_EN */
	return "still running after SLP_EN";
}
