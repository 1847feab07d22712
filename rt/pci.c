/* pci.c: PCI configuration mechanism #1 on bus 0 (see pci.h). */
#include "pci.h"

#define PCI_ADDR_PORT 0xCF8
#define PCI_DATA_PORT 0xCFC

static void pci_select(unsigned slot, unsigned off)
{
	outl(PCI_ADDR_PORT, 0x80000000u | (slot & 31u) << 11 | (off & 0xFCu));
}

uint32_t rt_pci_read32(unsigned slot, unsigned off)
{
	pci_select(slot, off);
	return inl(PCI_DATA_PORT);
}

uint16_t rt_pci_read16(unsigned slot, unsigned off)
{
	pci_select(slot, off);
	return inw((uint16_t)(PCI_DATA_PORT + (off & 2)));
}

uint8_t rt_pci_read8(unsigned slot, unsigned off)
{
	pci_select(slot, off);
	return inb((uint16_t)(PCI_DATA_PORT + (off & 3)));
}

void rt_pci_write32(unsigned slot, unsigned off, uint32_t v)
{
	pci_select(slot, off);
	outl(PCI_DATA_PORT, v);
}

void rt_pci_write16(unsigned slot, unsigned off, uint16_t v)
{
	pci_select(slot, off);
	outw((uint16_t)(PCI_DATA_PORT + (off & 2)), v);
}

void rt_pci_write8(unsigned slot, unsigned off, uint8_t v)
{
	pci_select(slot, off);
	outb((uint16_t)(PCI_DATA_PORT + (off & 3)), v);
}

int rt_pci_find(uint16_t vendor, uint16_t device, unsigned index)
{
	uint32_t want = (uint32_t)device << 16 | vendor;
	for (unsigned slot = 0; slot < RT_PCI_SLOTS; slot++) {
		if (rt_pci_read32(slot, 0) != want)
			continue;
		if (index-- == 0)
			return (int)slot;
	}
	return -1;
}

uintptr_t rt_pci_bar(unsigned slot, unsigned bar)
{
	if (bar > 5)
		return 0;
	uint32_t lo = rt_pci_read32(slot, 0x10 + 4 * bar);
	if (lo & 1)
		return 0; /* I/O BAR */
	if (((lo >> 1) & 3) == 2 && (bar == 5 || rt_pci_read32(slot, 0x14 + 4 * bar) != 0))
		return 0; /* 64-bit BAR above 4 GiB */
	return lo & ~0xFu;
}

unsigned rt_pci_find_cap(unsigned slot, uint8_t cap_id, unsigned index)
{
	if (!(rt_pci_read32(slot, RT_PCI_COMMAND) & RT_PCI_STATUS_CAP_LIST))
		return 0;
	unsigned ptr = rt_pci_read8(slot, RT_PCI_CAP_PTR) & 0xFCu;
	for (unsigned guard = 0; ptr && guard < 48; guard++) {
		uint32_t head = rt_pci_read32(slot, ptr);
		if ((head & 0xFF) == cap_id && index-- == 0)
			return ptr;
		ptr = (head >> 8) & 0xFCu;
	}
	return 0;
}
