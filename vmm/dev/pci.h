/* pci.h: PCI configuration space (mechanism #1, ports 0xcf8/0xcfc) on bus
 * 0, and the device interface PCI device models (virtio) implement. */
#ifndef ZHV_VMM_PCI_H
#define ZHV_VMM_PCI_H

#include <stdbool.h>
#include <stdint.h>

struct vm;

#define PCI_MAX_DEVICES 32 /* slots on bus 0; slot 0 is the host bridge */
#define PCI_BARS 6

/* INTx wiring: pin (pin) (0 = INTA .. 3 = INTD) of slot (slot) drives
 * IOAPIC GSI 16-23, rotating per slot as on PC boards. pci.c, the DSDT's
 * _PRT (dev/acpi.c) and the MP table (dev/mptable.c) all use this. */
#define PCI_INTX_GSI(slot, pin) (16u + (((unsigned)(slot) + (unsigned)(pin)) & 7u))

struct pci_device;

/* Device callbacks. Config space is kept by pci.c in (cfg); these hooks
 * see writes after pci.c applied them (BARs, command register handled by
 * pci.c: a BAR move re-registers its MMIO range). */
struct pci_device_ops {
	/* A config-space write at (offset) of (size) bytes, after storing. */
	void (*config_write)(struct pci_device *dev, uint32_t offset, uint32_t value,
	                     unsigned size);
	/* Access inside BAR (bar) (memory or I/O) at (offset). */
	void (*bar_access)(struct pci_device *dev, int bar, uint64_t offset, bool write,
	                   uint8_t *data, unsigned size);
};

struct pci_device {
	uint8_t cfg[256];              /* header type 0; little-endian */
	uint32_t bar_size[PCI_BARS];   /* 0: unused; a memory BAR: power of 2 >= 4096; an
	                                * I/O BAR (bit 0 of its cfg register set by the
	                                * device): power of 2 from 4 to 256 */
	uint64_t bar_addr[PCI_BARS];   /* assigned guest-physical address */
	unsigned irq_pin_gsi;          /* IOAPIC input for INTx (set by pci.c) */
	const struct pci_device_ops *ops;
	void *opaque;
	struct vm *vm;
	unsigned slot;
	uint8_t bar_bell;              /* bit b: BAR b (4 KiB, memory) holds only doorbells */
};

/* Doorbell BARs (pci_device.bar_bell) are placed in the top
 * PCI_BELL_WINDOW_SIZE bytes of the MMIO window, which the window's MEM
 * trap does not cover: their device sets a libzhv BELL trap there (a
 * guest write then queues a packet on the device's port, no vCPU exit to
 * the VMM). A doorbell BAR the guest moves into the rest of the window is
 * served through the MEM trap (bar_access) like any BAR; any BAR the guest
 * moves into the doorbell window is unreachable there (unclaimed MMIO). */
#define PCI_BELL_WINDOW_SIZE 0x100000ull

/* pci_init: the host bridge at 00:00.0 and the config ports. Returns 0 or
 * -errno. */
int pci_init(struct vm *vm);
/* pci_add: put (dev) on bus 0 in the next free slot: assigns its memory
 * BARs in [VM_PCI_MMIO_BASE, +VM_PCI_MMIO_SIZE) and its I/O BARs in ports
 * [VM_PCI_IO_BASE, +VM_PCI_IO_SIZE) (firmware-style, already enabled, so a
 * guest that never reprograms them works), routes them (the port window is
 * trapped at the first I/O BAR of the board) and sets interrupt line/pin.
 * Doorbell BARs (bar_bell) go to the doorbell window, one page each.
 * Returns 0 or -errno. */
int pci_add(struct vm *vm, struct pci_device *dev);

#endif /* ZHV_VMM_PCI_H */
