/* pci.h: PCI configuration space of bus 0 for test kernels, through
 * configuration mechanism #1 (ports 0xcf8/0xcfc; PCI Local Bus 3.0
 * §3.2.2.3.2). Function 0 of each slot only, as zhv's board has. */
#ifndef ZHV_TEST_RT_PCI_H
#define ZHV_TEST_RT_PCI_H

#include "rt.h"

#define RT_PCI_SLOTS 32
#define RT_PCI_CAP_PTR 0x34
#define RT_PCI_COMMAND 0x04
#define RT_PCI_CMD_IO 0x0001
#define RT_PCI_CMD_MEMORY 0x0002
#define RT_PCI_CMD_MASTER 0x0004
#define RT_PCI_STATUS_CAP_LIST (1u << 20) /* in the COMMAND/STATUS dword */
#define RT_PCI_INTERRUPT_LINE 0x3C

/* Dword, word and byte reads and writes at (off) of 00:(slot).0. Reads of
 * an empty slot return all-ones. Narrow accesses use the byte lanes
 * 0xcfc + (off & 3), as drivers do. */
uint32_t rt_pci_read32(unsigned slot, unsigned off);
uint16_t rt_pci_read16(unsigned slot, unsigned off);
uint8_t rt_pci_read8(unsigned slot, unsigned off);
void rt_pci_write32(unsigned slot, unsigned off, uint32_t v);
void rt_pci_write16(unsigned slot, unsigned off, uint16_t v);
void rt_pci_write8(unsigned slot, unsigned off, uint8_t v);

/* rt_pci_find: the (index)th slot (0 = first) whose vendor and device ID
 * match, or -1. */
int rt_pci_find(uint16_t vendor, uint16_t device, unsigned index);
/* rt_pci_bar: the memory address BAR (bar) decodes (a 64-bit BAR's upper
 * half must be 0), or 0 for an I/O or unreachable BAR. */
uintptr_t rt_pci_bar(unsigned slot, unsigned bar);
/* rt_pci_find_cap: config offset of the (index)th capability with ID
 * (cap_id), or 0. */
unsigned rt_pci_find_cap(unsigned slot, uint8_t cap_id, unsigned index);

#endif /* ZHV_TEST_RT_PCI_H */
