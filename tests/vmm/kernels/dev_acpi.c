/* dev_acpi.c: the firmware tables and ACPI fixed hardware as a guest OS
 * finds them: the RSDP in 0xE0000-0xFFFFF, checksums of the RSDP (both),
 * RSDT, XSDT, FADT, FACS, MADT and DSDT, the MADT's CPUs (exactly cpus=N
 * enabled local APICs), I/O APIC and IRQ 0 -> GSI 2 override, the FADT's
 * PM blocks, the PM timer and PM1 registers, the Intel MP table, and
 * finally power-off through \_S5 (zhv exits with status 0; a sleep type
 * other than S5 must not), or with "reset=1" a reset through the FADT's
 * reset register (also status 0). Command line: cpus=N [reset=1]. */
#include "apic.h"
#include "group.h"

#define HDR 36u /* ACPI 6.4 §5.2.6 */

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint8_t sum(const uint8_t *p, uint32_t len)
{
	uint8_t s = 0;
	for (uint32_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* A system description table at (addr): signature, sane length, checksum. */
static const uint8_t *sdt(uint32_t addr, const char *sig)
{
	const uint8_t *t = (const uint8_t *)(uintptr_t)addr;
	RT_EXPECT(addr >= 0xE0000 && addr < 0x100000, "%s at %x, outside the BIOS area", sig, addr);
	RT_EXPECT(!memcmp(t, sig, 4), "table at %x is not %s", addr, sig);
	uint32_t len = rd32(t + 4);
	RT_EXPECT(len >= HDR && len < 0x10000, "%s length %u", sig, len);
	RT_EXPECT(sum(t, len) == 0, "%s checksum: sum %x", sig, sum(t, len));
	return t;
}

static const uint8_t *find_rsdp(void)
{
	for (uintptr_t a = 0xE0000; a < 0x100000; a += 16) {
		const uint8_t *p = (const uint8_t *)a;
		if (p[0] == 'R' && !memcmp(p, "RSD PTR ", 8))
			return p;
	}
	return NULL;
}

/* The root table's entry with signature (sig): 8-byte (XSDT) or 4-byte
 * (RSDT) entries. */
static uint32_t root_find(const uint8_t *root, unsigned esize, const char *sig, unsigned *count)
{
	uint32_t len = rd32(root + 4), found = 0;
	unsigned n = 0;
	for (uint32_t off = HDR; off + esize <= len; off += esize, n++) {
		if (esize == 8)
			RT_EXPECT(rd32(root + off + 4) == 0, "XSDT entry %u above 4 GiB", n);
		const uint8_t *t = (const uint8_t *)(uintptr_t)rd32(root + off);
		if (!memcmp(t, sig, 4))
			found = rd32(root + off);
	}
	if (count)
		*count = n;
	return found;
}

/* SLP_TYPa of \_S5: "_S5_" PackageOp PkgLength NumElements, first element. */
static int s5_slp_typ(const uint8_t *dsdt)
{
	uint32_t len = rd32(dsdt + 4);
	for (uint32_t i = HDR; i + 8 < len; i++) {
		if (memcmp(dsdt + i, "_S5_", 4) || dsdt[i - 1] != 0x08 /* NameOp */)
			continue;
		const uint8_t *p = dsdt + i + 4;
		if (*p++ != 0x12) /* PackageOp */
			return -1;
		p += 1 + (*p >> 6);
		if (*p++ < 1)
			return -1;
		if (*p == 0x0A)
			return p[1];
		if (*p <= 1)
			return *p;
		return -1;
	}
	return -1;
}

static bool contains(const uint8_t *t, uint32_t len, const char *s)
{
	size_t n = strlen(s);
	for (uint32_t i = 0; i + n <= len; i++)
		if (!memcmp(t + i, s, n))
			return true;
	return false;
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	unsigned cpus = rt_cmdline_uint("cpus", 1);

	/* ---- RSDP ---- */
	const uint8_t *rsdp = find_rsdp();
	RT_EXPECT(rsdp, "no RSDP in 0xE0000-0xFFFFF");
	RT_EXPECT(sum(rsdp, 20) == 0, "RSDP checksum (20 bytes): sum %x", sum(rsdp, 20));
	RT_EXPECT(rsdp[15] >= 2, "RSDP revision %u: no XSDT", rsdp[15]);
	RT_EXPECT(rd32(rsdp + 20) == 36, "RSDP length %u", rd32(rsdp + 20));
	RT_EXPECT(sum(rsdp, 36) == 0, "RSDP extended checksum: sum %x", sum(rsdp, 36));
	RT_EXPECT(rd32(rsdp + 28) == 0, "XSDT above 4 GiB");
	rt_printf("acpi: RSDP at %x, RSDT %x, XSDT %x\n", (unsigned)(uintptr_t)rsdp, rd32(rsdp + 16),
	          rd32(rsdp + 24));
	RT_GROUP_OK("acpi-rsdp");

	/* ---- XSDT and RSDT ---- */
	const uint8_t *xsdt = sdt(rd32(rsdp + 24), "XSDT");
	const uint8_t *rsdt = sdt(rd32(rsdp + 16), "RSDT");
	unsigned nx, nr;
	uint32_t fadt_a = root_find(xsdt, 8, "FACP", &nx);
	uint32_t madt_a = root_find(xsdt, 8, "APIC", NULL);
	RT_EXPECT(fadt_a && madt_a, "XSDT lacks FACP (%x) or APIC (%x)", fadt_a, madt_a);
	RT_EXPECT(root_find(rsdt, 4, "FACP", &nr) == fadt_a && root_find(rsdt, 4, "APIC", NULL) == madt_a,
	          "RSDT and XSDT disagree");
	RT_EXPECT(nx == nr, "XSDT has %u entries, RSDT %u", nx, nr);
	RT_GROUP_OK("acpi-xsdt");

	/* ---- FADT, FACS, DSDT ---- */
	const uint8_t *fadt = sdt(fadt_a, "FACP");
	uint32_t flen = rd32(fadt + 4);
	RT_EXPECT(flen >= 244, "FADT length %u (ACPI 2.0+ has 244 or more)", flen);
	uint32_t pm1a_evt = rd32(fadt + 56), pm1a_cnt = rd32(fadt + 64), pm_tmr = rd32(fadt + 76);
	RT_EXPECT(pm1a_cnt == 0x604 && fadt[89] == 2, "PM1a_CNT_BLK %x length %u", pm1a_cnt,
	          fadt[89]);
	RT_EXPECT(pm1a_evt == 0x600 && fadt[88] == 4, "PM1a_EVT_BLK %x length %u", pm1a_evt,
	          fadt[88]);
	RT_EXPECT(pm_tmr == RT_PM_TMR_PORT && fadt[91] == 4, "PM_TMR_BLK %x length %u", pm_tmr,
	          fadt[91]);
	RT_EXPECT(fadt[172] == 1 && rd32(fadt + 176) == pm1a_cnt && rd32(fadt + 180) == 0,
	          "X_PM1a_CNT_BLK (space %u, address %x) disagrees", fadt[172], rd32(fadt + 176));
	RT_EXPECT(rd16(fadt + 46) == 9, "SCI_INT %u", rd16(fadt + 46));
	RT_EXPECT(fadt[108] == 0x32, "CENTURY index %x, want 0x32", fadt[108]);
	RT_EXPECT(rd32(fadt + 112) & (1u << 8), "flags %x lack TMR_VAL_EXT (32-bit PM timer)",
	          rd32(fadt + 112));
	RT_EXPECT(!(rd32(fadt + 112) & (1u << 20)), "HW_REDUCED_ACPI set with fixed hardware");
	uint32_t dsdt_a = rd32(fadt + 40);
	RT_EXPECT(rd32(fadt + 140) == dsdt_a && rd32(fadt + 144) == 0, "DSDT %x and X_DSDT %x differ",
	          dsdt_a, rd32(fadt + 140));
	const uint8_t *facs = (const uint8_t *)(uintptr_t)rd32(fadt + 36);
	RT_EXPECT(!memcmp(facs, "FACS", 4) && rd32(facs + 4) >= 64, "no FACS at %x",
	          rd32(fadt + 36));
	RT_EXPECT(((uintptr_t)facs & 63) == 0, "FACS at %x not 64-byte aligned",
	          (unsigned)(uintptr_t)facs);
	RT_GROUP_OK("acpi-fadt");

	const uint8_t *dsdt = sdt(dsdt_a, "DSDT");
	int s5 = s5_slp_typ(dsdt);
	RT_EXPECT(s5 >= 0 && s5 < 8, "no \\_S5 package in the DSDT");
	RT_EXPECT(contains(dsdt, rd32(dsdt + 4), "PCI0") && contains(dsdt, rd32(dsdt + 4), "_PRT"),
	          "the DSDT has no PCI0 with a _PRT");
	RT_GROUP_OK("acpi-dsdt");

	/* ---- MADT ---- */
	const uint8_t *madt = sdt(madt_a, "APIC");
	RT_EXPECT(rd32(madt + 36) == RT_LAPIC_BASE, "local APIC address %x", rd32(madt + 36));
	RT_EXPECT(rd32(madt + 40) & 1, "PCAT_COMPAT clear");
	uint32_t mlen = rd32(madt + 4);
	unsigned lapics = 0, enabled = 0, ioapics = 0, irq0_gsi = 0xFFFF, isos = 0;
	uint32_t ids_seen[RT_MAX_CPUS / 32] = {0};
	for (uint32_t off = HDR + 8; off < mlen;) {
		const uint8_t *e = madt + off;
		RT_EXPECT(e[1] >= 2 && off + e[1] <= mlen, "MADT entry at %u has length %u", off, e[1]);
		switch (e[0]) {
		case 0: /* Processor Local APIC */
			lapics++;
			if (rd32(e + 4) & 1) {
				enabled++;
				unsigned id = e[3];
				RT_EXPECT(!((ids_seen[id / 32] >> (id % 32)) & 1), "APIC ID %u twice", id);
				ids_seen[id / 32] |= 1u << (id % 32);
				RT_EXPECT(id < cpus, "APIC ID %u with %u CPUs", id, cpus);
			}
			break;
		case 1: /* I/O APIC */
			ioapics++;
			RT_EXPECT(rd32(e + 4) == RT_IOAPIC_BASE, "I/O APIC at %x", rd32(e + 4));
			RT_EXPECT(rd32(e + 8) == 0, "I/O APIC GSI base %u", rd32(e + 8));
			RT_EXPECT(e[2] == rt_ioapic_read(RT_IOAPIC_REG_ID) >> 24,
			          "MADT I/O APIC ID %u, the register says %u", e[2],
			          rt_ioapic_read(RT_IOAPIC_REG_ID) >> 24);
			break;
		case 2: /* Interrupt Source Override */
			isos++;
			RT_EXPECT(e[2] == 0, "override on bus %u", e[2]);
			if (e[3] == 0)
				irq0_gsi = rd32(e + 4);
			break;
		default:
			break;
		}
		off += e[1];
	}
	rt_printf("acpi: MADT: %u local APICs (%u enabled), %u I/O APIC, %u overrides\n", lapics,
	          enabled, ioapics, isos);
	RT_EXPECT(enabled == cpus, "%u enabled local APICs for %u CPUs", enabled, cpus);
	RT_EXPECT(rt_lapic_id() < cpus && ((ids_seen[0] >> rt_lapic_id()) & 1),
	          "the BSP's APIC ID %u is not listed", rt_lapic_id());
	RT_EXPECT(ioapics == 1, "%u I/O APICs", ioapics);
	RT_EXPECT(irq0_gsi == 2, "ISA IRQ 0 overridden to GSI %u, want 2", irq0_gsi);
	RT_GROUP_OK("acpi-madt");

	/* ---- MP table (MP spec 1.4 §4) ---- */
	const uint8_t *mpf = NULL;
	for (uintptr_t a = 0xF0000; a < 0x100000 && !mpf; a += 16)
		if (!memcmp((const uint8_t *)a, "_MP_", 4))
			mpf = (const uint8_t *)a;
	RT_EXPECT(mpf, "no MP floating pointer in 0xF0000-0xFFFFF");
	RT_EXPECT(mpf[8] == 1 && sum(mpf, 16) == 0, "MP floating pointer length %u, sum %x", mpf[8],
	          sum(mpf, 16));
	const uint8_t *mpc = (const uint8_t *)(uintptr_t)rd32(mpf + 4);
	RT_EXPECT(!memcmp(mpc, "PCMP", 4), "no PCMP table at %x", rd32(mpf + 4));
	uint16_t mpc_len = rd16(mpc + 4), mpc_n = rd16(mpc + 34);
	RT_EXPECT(sum(mpc, mpc_len) == 0, "MP configuration table checksum");
	RT_EXPECT(rd32(mpc + 36) == RT_LAPIC_BASE, "MP local APIC address %x", rd32(mpc + 36));
	const uint8_t *e = mpc + 44;
	unsigned mp_cpus = 0, mp_bsp = 0, mp_ioapic = 0, mp_irq0_pin = 0xFF, isa_bus = 0x100;
	for (unsigned i = 0; i < mpc_n; i++) {
		RT_EXPECT(e < mpc + mpc_len, "MP entry %u past the table", i);
		if (e[0] == 0) {
			if (e[3] & 1)
				mp_cpus++;
			if (e[3] & 2)
				mp_bsp = e[1] + 1u;
			e += 20;
			continue;
		}
		if (e[0] == 1 && !memcmp(e + 2, "ISA", 3))
			isa_bus = e[1];
		if (e[0] == 2 && rd32(e + 4) == RT_IOAPIC_BASE)
			mp_ioapic++;
		if (e[0] == 3 && e[1] == 0 /* INT */ && e[4] == isa_bus && e[5] == 0)
			mp_irq0_pin = e[7];
		e += 8;
	}
	RT_EXPECT(mp_cpus == cpus, "MP table: %u enabled CPUs for %u", mp_cpus, cpus);
	RT_EXPECT(mp_bsp == 1, "MP table: the BSP is APIC ID %u, want 0", mp_bsp - 1);
	RT_EXPECT(mp_ioapic == 1, "MP table: %u I/O APICs at 0xfec00000", mp_ioapic);
	RT_EXPECT(mp_irq0_pin == 2, "MP table: ISA IRQ 0 on pin %u, want 2", mp_irq0_pin);
	RT_GROUP_OK("mptable");

	/* ---- PM timer and PM1 registers ---- */
	uint32_t a = rt_pmtimer();
	rt_delay_us(2000);
	uint32_t b = rt_pmtimer();
	RT_EXPECT(b - a >= 2 * RT_PM_TMR_HZ / 1000 && b - a < 60 * RT_PM_TMR_HZ,
	          "PM timer went from %x to %x over 2 ms", a, b);
	uint16_t cnt = inw((uint16_t)pm1a_cnt);
	RT_EXPECT(cnt & 1, "PM1_CNT %x: SCI_EN clear", cnt);
	outw((uint16_t)(pm1a_evt + 2), 0x0120); /* PM1_EN: power button, RTC */
	RT_EXPECT(inw((uint16_t)(pm1a_evt + 2)) == 0x0120, "PM1_EN reads %x",
	          inw((uint16_t)(pm1a_evt + 2)));
	outw((uint16_t)(pm1a_evt + 2), 0);
	outw((uint16_t)pm1a_evt, 0xFFFF); /* PM1_STS: write 1 to clear */
	RT_EXPECT(inw((uint16_t)pm1a_evt) == 0, "PM1_STS %x after clearing",
	          inw((uint16_t)pm1a_evt));
	/* SLP_EN with a sleep type other than S5 (S1 = 1) does not power off. */
	outw((uint16_t)pm1a_cnt, (uint16_t)(1u << 10 | 1u << 13));
	rt_delay_us(1000);
	RT_EXPECT(!(inw((uint16_t)pm1a_cnt) & (1u << 13)), "SLP_EN reads back set");
	RT_GROUP_OK("acpi-pm-regs");

	if (rt_cmdline_uint("reset", 0)) {
		/* The FADT's RESET_REG (ACPI 6.4 §4.8.3.6): a byte to an I/O port. */
		RT_EXPECT(rd32(fadt + 112) & (1u << 10), "RESET_REG_SUP clear");
		RT_EXPECT(fadt[116] == 1 && fadt[117] == 8, "RESET_REG space %u width %u", fadt[116],
		          fadt[117]);
		uint32_t port = rd32(fadt + 120);
		rt_printf("acpi: resetting through port %x with %x\n", port, fadt[128]);
		outb((uint16_t)port, fadt[128]);
		rt_delay_us(100000);
		rt_fail("still running 100 ms after the reset register write");
	}
	rt_printf("acpi: powering off (SLP_TYP %u)\n", (unsigned)s5);
	outw((uint16_t)pm1a_cnt, (uint16_t)((unsigned)s5 << 10 | 1u << 13));
	rt_delay_us(100000);
	rt_fail("still running 100 ms after the S5 write");
}
