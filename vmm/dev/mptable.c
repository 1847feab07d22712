/* mptable.c: an Intel MP 1.4 floating pointer and configuration table at 0xF0000 (CPUs, PCI and ISA buses, the IOAPIC, interrupt routing) for kernels booted without ACPI. */
#include <errno.h>
#include <string.h>

#include "../devices.h"
#include "../vm.h"
#include "acpi.h"
#include "pci.h"

/* clang-format off */
/* Intel MultiProcessor Specification 1.4, chapter 4. */
#define MP_FLOAT_LEN       16u  /* §4.1 floating pointer structure */
#define MP_HDR_LEN         44u  /* §4.2 configuration table header */
#define MP_SPEC_REV        4    /* version 1.4 */
#define MP_PROC_LEN        20u  /* §4.3.1 */
#define MP_ENTRY_LEN       8u   /* bus, I/O APIC, interrupt entries */

#define MP_ENTRY_PROC      0
#define MP_ENTRY_BUS       1
#define MP_ENTRY_IOAPIC    2
#define MP_ENTRY_IOINT     3
#define MP_ENTRY_LOCALINT  4

#define MP_CPU_EN          0x01
#define MP_CPU_BP          0x02
#define MP_LAPIC_VERSION   0x14 /* KVM's local APIC */
#define MP_CPU_SIGNATURE   0x0600 /* family 6 (informational) */
#define MP_CPU_FEATURES    0x0201 /* FPU, APIC on chip (CPUID.1:EDX bits 0, 9) */
#define MP_IOAPIC_VERSION  0x20   /* dev/ioapic.c */
#define MP_IOAPIC_ID       0      /* dev/ioapic.c's reset ID, as in the MADT */
#define MP_IOAPIC_EN       0x01

#define MP_INT             0 /* §4.3.4 interrupt types */
#define MP_NMI             1
#define MP_EXTINT          3
#define MP_FLAGS_CONFORM   0x0000
#define MP_FLAGS_PCI       0x000F /* polarity 11 active low, trigger 11 level */

#define MP_BUS_PCI_ID      0 /* Linux numbers PCI buses in table order: PCI bus 0 */
#define MP_BUS_ISA_ID      1
#define MP_MAX_CPUS        255 /* 8-bit APIC IDs, 0xFF is broadcast */
#define MP_ISA_IRQS        16
#define MP_ISA_CASCADE     2 /* no ISA device: pin 2 carries IRQ 0 */
/* clang-format on */

static void mp_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void mp_put32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void mp_checksum(uint8_t *p, size_t len, size_t at)
{
	uint8_t s = 0;
	p[at] = 0;
	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	p[at] = (uint8_t)(0u - s);
}

static uint8_t *mp_intr(uint8_t *p, uint8_t type, uint8_t kind, uint16_t flags, uint8_t bus,
                        uint8_t bus_irq, uint8_t dest, uint8_t dest_pin)
{
	p[0] = type;
	p[1] = kind;
	mp_put16(p + 2, flags);
	p[4] = bus;
	p[5] = bus_irq;
	p[6] = dest;
	p[7] = dest_pin;
	return p + MP_ENTRY_LEN;
}

int mptable_create(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	uint32_t ncpus = vm->ncpus ? vm->ncpus : 1;
	if (ncpus > MP_MAX_CPUS)
		ncpus = MP_MAX_CPUS; /* the rest need x2APIC: ACPI only */
	uint32_t nisa = MP_ISA_IRQS - 1, npci = (PCI_MAX_DEVICES - 1) * 4;
	uint32_t nentries = ncpus + 2 + 1 + nisa + npci + 2;
	uint32_t len = MP_HDR_LEN + ncpus * MP_PROC_LEN + (nentries - ncpus) * MP_ENTRY_LEN;
	if (MP_FLOAT_LEN + len > MPTABLE_REGION_SIZE)
		return -ENOSPC;
	uint8_t *mem = vm_gpa(vm, MPTABLE_REGION_BASE, MP_FLOAT_LEN + len);
	if (!mem)
		return -EFAULT;
	memset(mem, 0, MP_FLOAT_LEN + len);

	/* Floating pointer (§4.1), configuration table right after it. */
	uint8_t *fp = mem, *t = mem + MP_FLOAT_LEN;
	memcpy(fp, "_MP_", 4);
	mp_put32(fp + 4, MPTABLE_REGION_BASE + MP_FLOAT_LEN);
	fp[8] = 1; /* length in 16-byte units */
	fp[9] = MP_SPEC_REV;
	/* feature bytes 0: a configuration table exists; IMCRP clear */
	mp_checksum(fp, MP_FLOAT_LEN, 10);

	memcpy(t, "PCMP", 4);
	mp_put16(t + 4, (uint16_t)len);
	t[6] = MP_SPEC_REV;
	memcpy(t + 8, "ZHV     ", 8);
	memcpy(t + 16, "ZHV PC      ", 12);
	mp_put16(t + 34, (uint16_t)nentries);
	mp_put32(t + 36, (uint32_t)VM_LAPIC_BASE);

	uint8_t *p = t + MP_HDR_LEN;
	for (uint32_t i = 0; i < ncpus; i++) { /* §4.3.1: APIC ID = vCPU index */
		p[0] = MP_ENTRY_PROC;
		p[1] = (uint8_t)i;
		p[2] = MP_LAPIC_VERSION;
		p[3] = MP_CPU_EN | (i == 0 ? MP_CPU_BP : 0);
		mp_put32(p + 4, MP_CPU_SIGNATURE);
		mp_put32(p + 8, MP_CPU_FEATURES);
		p += MP_PROC_LEN;
	}
	/* Buses (§4.3.2). */
	p[0] = MP_ENTRY_BUS;
	p[1] = MP_BUS_PCI_ID;
	memcpy(p + 2, "PCI   ", 6);
	p += MP_ENTRY_LEN;
	p[0] = MP_ENTRY_BUS;
	p[1] = MP_BUS_ISA_ID;
	memcpy(p + 2, "ISA   ", 6);
	p += MP_ENTRY_LEN;
	/* The I/O APIC (§4.3.3). */
	p[0] = MP_ENTRY_IOAPIC;
	p[1] = MP_IOAPIC_ID;
	p[2] = MP_IOAPIC_VERSION;
	p[3] = MP_IOAPIC_EN;
	mp_put32(p + 4, (uint32_t)VM_IOAPIC_BASE);
	p += MP_ENTRY_LEN;
	/* ISA IRQs (§4.3.4): identity, except IRQ 0 on pin 2 (the MADT's
	 * override, dev/ioapic.c's wiring); the cascade IRQ 2 has no entry. */
	for (uint8_t irq = 0; irq < MP_ISA_IRQS; irq++) {
		if (irq == MP_ISA_CASCADE)
			continue;
		p = mp_intr(p, MP_ENTRY_IOINT, MP_INT, MP_FLAGS_CONFORM, MP_BUS_ISA_ID, irq,
		            MP_IOAPIC_ID, irq == 0 ? MP_ISA_CASCADE : irq);
	}
	/* PCI INTx (§D.3: source IRQ = slot << 2 | pin), level, active low. */
	for (uint8_t slot = 1; slot < PCI_MAX_DEVICES; slot++)
		for (uint8_t pin = 0; pin < 4; pin++)
			p = mp_intr(p, MP_ENTRY_IOINT, MP_INT, MP_FLAGS_PCI, MP_BUS_PCI_ID,
			            (uint8_t)(slot << 2 | pin), MP_IOAPIC_ID,
			            (uint8_t)PCI_INTX_GSI(slot, pin));
	/* Local interrupts (§4.3.5): ExtINT on the BSP's LINT0, NMI on LINT1. */
	p = mp_intr(p, MP_ENTRY_LOCALINT, MP_EXTINT, MP_FLAGS_CONFORM, MP_BUS_ISA_ID, 0, 0, 0);
	p = mp_intr(p, MP_ENTRY_LOCALINT, MP_NMI, MP_FLAGS_CONFORM, MP_BUS_ISA_ID, 0, 0xFF, 1);
	mp_checksum(t, len, 7);
	return 0;
}
