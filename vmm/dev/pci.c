/* pci.c: PCI bus 0: i440FX host bridge, configuration mechanism #1 (0xcf8/0xcfc), reset control 0xcf9, one MMIO window routing memory BAR accesses and one port window routing I/O BAR accesses. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../devices.h"
#include "../vm.h"
#include "pci.h"

/* clang-format off */
#define PCI_CONF_PORT      0xCF8u /* 0xcf8 CONFIG_ADDRESS, 0xcf9 RCR, 0xcfc-0xcff CONFIG_DATA */
#define PCI_CONF_LEN       8u
#define PCI_CONF_DATA_OFF  4u
#define PCI_RCR_OFF        1u     /* 0xcf9 */

/* CONFIG_ADDRESS (PCI Local Bus 3.0 §3.2.2.3.2). */
#define PCI_ADDR_ENABLE    0x80000000u
#define PCI_ADDR_MASK      0x80FFFFFCu /* enable, bus, device, function, register */
#define PCI_ADDR_BUS(a)    (((a) >> 16) & 0xFF)
#define PCI_ADDR_SLOT(a)   (((a) >> 11) & 0x1F)
#define PCI_ADDR_FUNC(a)   (((a) >> 8) & 7)
#define PCI_ADDR_REG(a)    ((a) & 0xFC)

/* Reset control register (Intel PIIX3 datasheet §4.1.17 "RC"). */
#define PCI_RCR_SYS_RST    0x02
#define PCI_RCR_RST_CPU    0x04 /* writing 1 resets */
#define PCI_RCR_FULL_RST   0x08

/* Type 0 header (PCI Local Bus 3.0 §6.1). */
#define PCI_VENDOR_ID      0x00
#define PCI_DEVICE_ID      0x02
#define PCI_COMMAND        0x04
#define PCI_REVISION_ID    0x08
#define PCI_CLASS_PROG     0x09
#define PCI_CACHE_LINE     0x0C
#define PCI_BAR0           0x10
#define PCI_BAR_END        0x28
#define PCI_SUBSYS_VENDOR  0x2C
#define PCI_SUBSYS_ID      0x2E
#define PCI_INTERRUPT_LINE 0x3C
#define PCI_INTERRUPT_PIN  0x3D
#define PCI_DEVICE_SPECIFIC 0x40

#define PCI_CMD_IO         0x0001
#define PCI_CMD_MEMORY     0x0002
#define PCI_CMD_WMASK      0x00000547u /* I/O, memory, master, parity, SERR, INTx disable */
#define PCI_BAR_IO         0x01
#define PCI_BAR_TYPE_MASK  0x06
#define PCI_BAR_TYPE_64    0x04
#define PCI_BAR_FLAGS      0x0F
#define PCI_IO_BAR_MIN     4u    /* I/O BARs: 4 to 256 ports (PCI 3.0 §6.2.5.1) */
#define PCI_IO_BAR_MAX     256u

/* i440FX host bridge (Intel 82441FX datasheet; QEMU's "i440FX"). */
#define PCI_I440FX_VENDOR  0x8086
#define PCI_I440FX_DEVICE  0x1237
#define PCI_I440FX_REV     0x02
#define PCI_CLASS_HOST     0x060000u /* bridge, host bridge */
#define PCI_SUBSYS_QEMU    0x1AF4    /* Red Hat / virtio vendor, as QEMU's boards */
#define PCI_SUBSYS_DEV     0x1100
/* clang-format on */

struct pci_host {
	pthread_mutex_t lock; /* address, RCR, every device's cfg and BAR addresses */
	struct vm *vm;
	uint32_t address;
	uint8_t rcr;
	uint64_t mmio_next; /* next free address in the BAR window */
	uint64_t bell_next; /* next free page of the doorbell window */
	uint64_t io_next;   /* next free port in the I/O BAR window */
	bool io_window;     /* the I/O BAR window is registered (at the first I/O BAR) */
	struct pci_device bridge;
	struct pci_device *slots[PCI_MAX_DEVICES];
};

static uint32_t pci_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void pci_put32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void pci_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static bool pci_bar_is_io(const struct pci_device *dev, unsigned bar)
{
	return dev->cfg[PCI_BAR0 + 4 * bar] & PCI_BAR_IO;
}

static bool pci_bar_is64(const struct pci_device *dev, unsigned bar)
{
	return !pci_bar_is_io(dev, bar) &&
	       (dev->cfg[PCI_BAR0 + 4 * bar] & PCI_BAR_TYPE_MASK) == PCI_BAR_TYPE_64;
}

/* The device CONFIG_ADDRESS selects: bus 0, function 0 of an occupied
 * slot. Anything else reads all-ones (PCI 3.0 §6.1: master abort). */
static struct pci_device *pci_target(struct pci_host *h)
{
	uint32_t a = h->address;
	if (!(a & PCI_ADDR_ENABLE) || PCI_ADDR_BUS(a) != 0 || PCI_ADDR_FUNC(a) != 0)
		return NULL;
	return h->slots[PCI_ADDR_SLOT(a)];
}

/* A BAR register write: the address bits the size allows, the flag bits
 * fixed. Writing all-ones reads back the size mask (PCI 3.0 §6.2.5.1).
 * The upper half of a 64-bit BAR is plain storage. */
static void pci_bar_write(struct pci_device *dev, unsigned bar, uint32_t v)
{
	uint8_t *reg = &dev->cfg[PCI_BAR0 + 4 * bar];
	if (dev->bar_size[bar]) {
		uint32_t mask = ~(dev->bar_size[bar] - 1);
		/* An I/O BAR's flags are bit 0 alone: its bits 2-3 are address. */
		uint8_t flags = pci_bar_is_io(dev, bar) ? PCI_BAR_IO : (reg[0] & PCI_BAR_FLAGS);
		uint32_t lo = (v & mask) | flags;
		pci_put32(reg, lo);
		dev->bar_addr[bar] = (dev->bar_addr[bar] & ~0xFFFFFFFFull) | (lo & mask);
	} else if (bar > 0 && dev->bar_size[bar - 1] && pci_bar_is64(dev, bar - 1)) {
		pci_put32(reg, v);
		dev->bar_addr[bar - 1] = (dev->bar_addr[bar - 1] & 0xFFFFFFFFull) | (uint64_t)v << 32;
	}
	/* else: an unimplemented BAR stays 0 */
}

/* Writable bits of the dword at (reg) outside the BARs. */
static uint32_t pci_wmask(unsigned reg)
{
	if (reg >= PCI_DEVICE_SPECIFIC)
		return 0xFFFFFFFFu; /* capabilities: the device's config_write hook polices them */
	switch (reg) {
	case PCI_COMMAND:
		return PCI_CMD_WMASK; /* status (upper half): read-only */
	case PCI_CACHE_LINE:
		return 0x0000FFFFu; /* cache line size, latency timer */
	case PCI_INTERRUPT_LINE:
		return 0x000000FFu;
	default: /* IDs, class, header type, subsystem, ROM BAR (no ROM), cap pointer */
		return 0;
	}
}

/* Store (n) bytes at (reg) (within one dword) and tell the device. Lock held. */
static void pci_config_write(struct pci_device *dev, unsigned reg, const uint8_t *data,
                             unsigned n)
{
	unsigned dw = reg & ~3u;
	uint8_t merged[4];
	memcpy(merged, &dev->cfg[dw], 4);
	memcpy(&merged[reg - dw], data, n);
	uint32_t v = pci_get32(merged);
	if (dw >= PCI_BAR0 && dw < PCI_BAR_END) {
		pci_bar_write(dev, (dw - PCI_BAR0) / 4, v);
	} else {
		uint32_t wmask = pci_wmask(dw), old = pci_get32(&dev->cfg[dw]);
		pci_put32(&dev->cfg[dw], (old & ~wmask) | (v & wmask));
	}
	if (dev->ops && dev->ops->config_write) {
		uint32_t value = 0;
		for (unsigned i = 0; i < n; i++)
			value |= (uint32_t)data[i] << (8 * i);
		dev->ops->config_write(dev, reg, value, n);
	}
}

static void pci_conf_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                            unsigned size)
{
	struct pci_host *h = opaque;
	bool reset = false;
	pthread_mutex_lock(&h->lock);
	if (offset >= PCI_CONF_DATA_OFF) {
		unsigned port = (unsigned)(offset - PCI_CONF_DATA_OFF);
		unsigned n = port + size > 4 ? 4 - port : size;
		struct pci_device *dev = pci_target(h);
		unsigned reg = PCI_ADDR_REG(h->address) + port;
		if (write) {
			if (dev)
				pci_config_write(dev, reg, data, n);
		} else {
			for (unsigned i = 0; i < size; i++)
				data[i] = dev && i < n ? dev->cfg[reg + i] : 0xFF;
		}
	} else if (offset == 0 && size == 4) { /* CONFIG_ADDRESS: dword accesses only */
		if (write)
			h->address = pci_get32(data) & PCI_ADDR_MASK;
		else
			pci_put32(data, h->address);
	} else if (offset == PCI_RCR_OFF && size == 1) {
		if (write) {
			reset = data[0] & PCI_RCR_RST_CPU;
			h->rcr = data[0] & (PCI_RCR_SYS_RST | PCI_RCR_FULL_RST);
		} else {
			data[0] = h->rcr;
		}
	} else if (!write) {
		memset(data, 0xFF, size);
	}
	pthread_mutex_unlock(&h->lock);
	if (reset) /* outside the lock: vm_request_exit kicks every vCPU */
		vm_request_exit(h->vm, VM_EXIT_POWEROFF, 0);
}

/* Find the BAR of space (io) holding [addr, addr + size) among devices
 * that decode that space. Lock held. */
static struct pci_device *pci_find_bar(struct pci_host *h, bool io, uint64_t addr,
                                       unsigned size, int *bar_out)
{
	uint8_t enable = io ? PCI_CMD_IO : PCI_CMD_MEMORY;
	for (unsigned s = 1; s < PCI_MAX_DEVICES; s++) {
		struct pci_device *dev = h->slots[s];
		if (!dev || !(dev->cfg[PCI_COMMAND] & enable))
			continue;
		for (int b = 0; b < PCI_BARS; b++) {
			uint64_t base = dev->bar_addr[b], len = dev->bar_size[b];
			if (len && pci_bar_is_io(dev, (unsigned)b) == io && addr >= base &&
			    addr - base < len && size <= len - (addr - base)) {
				*bar_out = b;
				return dev;
			}
		}
	}
	return NULL;
}

/* Each window is one trap; accesses go to the BAR that currently holds
 * the address. A BAR the guest moves outside its window is not reachable
 * (documented limitation: bus_register has no unregister). */
static void pci_bar_dispatch(struct pci_host *h, bool io, uint64_t addr, bool write,
                             uint8_t *data, unsigned size)
{
	int bar = -1;
	pthread_mutex_lock(&h->lock);
	struct pci_device *dev = pci_find_bar(h, io, addr, size, &bar);
	uint64_t base = dev ? dev->bar_addr[bar] : 0;
	pthread_mutex_unlock(&h->lock);
	/* Devices are never removed, so (dev) stays valid; it locks itself. */
	if (dev && dev->ops && dev->ops->bar_access) {
		dev->ops->bar_access(dev, bar, addr - base, write, data, size);
		return;
	}
	if (!write)
		memset(data, 0xFF, size);
	vm_log_unclaimed(h->vm, io ? "port" : "mmio", addr, write, size);
}

static void pci_mmio_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                            unsigned size)
{
	pci_bar_dispatch(opaque, false, VM_PCI_MMIO_BASE + offset, write, data, size);
}

static void pci_io_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                          unsigned size)
{
	pci_bar_dispatch(opaque, true, VM_PCI_IO_BASE + offset, write, data, size);
}

static void pci_bridge_init(struct pci_device *br, struct vm *vm)
{
	memset(br, 0, sizeof(*br));
	pci_put16(&br->cfg[PCI_VENDOR_ID], PCI_I440FX_VENDOR);
	pci_put16(&br->cfg[PCI_DEVICE_ID], PCI_I440FX_DEVICE);
	pci_put16(&br->cfg[PCI_COMMAND], 0x0006); /* memory, bus master */
	br->cfg[PCI_REVISION_ID] = PCI_I440FX_REV;
	br->cfg[PCI_CLASS_PROG] = (uint8_t)PCI_CLASS_HOST;
	br->cfg[PCI_CLASS_PROG + 1] = (uint8_t)(PCI_CLASS_HOST >> 8);
	br->cfg[PCI_CLASS_PROG + 2] = (uint8_t)(PCI_CLASS_HOST >> 16);
	pci_put16(&br->cfg[PCI_SUBSYS_VENDOR], PCI_SUBSYS_QEMU);
	pci_put16(&br->cfg[PCI_SUBSYS_ID], PCI_SUBSYS_DEV);
	br->vm = vm;
	br->slot = 0;
}

/* ---- snapshot (snapshot.h): section "pci", version 1 ---------------------
 * CONFIG_ADDRESS (u32), RCR (u8), then for each of the 32 slots whether a
 * function is there (bool) and, if so, its 256 bytes of config space (the
 * BARs, command, interrupt line, the capabilities). A snapshot loads into
 * a machine with the same functions in the same slots; every byte below
 * 0x40 must be one a guest could have written (read-only bits as the
 * device has them, BARs within their sizes), and the BAR addresses follow
 * from the registers. Bytes from 0x40 on are the device's: a device with a
 * config_write hook is told of them, as of a guest write, and polices them
 * (virtio restores its capabilities; its own section then sets MSI-X). */

static int pci_snap_save(void *opaque, struct snap_writer *w)
{
	struct pci_host *h = opaque;
	pthread_mutex_lock(&h->lock);
	snap_put_u32(w, h->address);
	snap_put_u8(w, h->rcr);
	for (unsigned s = 0; s < PCI_MAX_DEVICES; s++) {
		snap_put_bool(w, h->slots[s] != NULL);
		if (h->slots[s])
			snap_put(w, h->slots[s]->cfg, sizeof(h->slots[s]->cfg));
	}
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/* (cfg) as the function (dev) would hold it after guest writes: into (out)
 * (a copy of dev with cfg and BAR addresses taken from cfg). False if no
 * guest write could give it. */
static bool pci_snap_check(const struct pci_device *dev, const uint8_t *cfg,
                           struct pci_device *out)
{
	*out = *dev;
	for (unsigned b = 0; b < PCI_BARS; b++)
		pci_bar_write(out, b, pci_get32(cfg + PCI_BAR0 + 4 * b));
	if (memcmp(out->cfg + PCI_BAR0, cfg + PCI_BAR0, PCI_BAR_END - PCI_BAR0))
		return false;
	for (unsigned dw = 0; dw < PCI_DEVICE_SPECIFIC; dw += 4) {
		if (dw >= PCI_BAR0 && dw < PCI_BAR_END)
			continue;
		uint32_t ro = ~pci_wmask(dw);
		if ((pci_get32(cfg + dw) & ro) != (pci_get32(dev->cfg + dw) & ro))
			return false;
	}
	memcpy(out->cfg, cfg, sizeof(out->cfg));
	return true;
}

static int pci_snap_load(void *opaque, struct snap_reader *r)
{
	struct pci_host *h = opaque;
	uint32_t address = snap_get_u32(r);
	uint8_t rcr = snap_get_u8(r);
	if ((address & ~PCI_ADDR_MASK) || (rcr & ~(PCI_RCR_SYS_RST | PCI_RCR_FULL_RST)))
		snap_bad(r);
	struct pci_device *next = calloc(PCI_MAX_DEVICES, sizeof(*next));
	if (!next)
		return -ENOMEM;
	uint8_t cfg[256];
	pthread_mutex_lock(&h->lock);
	for (unsigned s = 0; s < PCI_MAX_DEVICES && !r->err; s++) {
		bool present = snap_get_bool(r);
		if (present != (h->slots[s] != NULL)) {
			snap_bad(r);
			break;
		}
		if (!present)
			continue;
		if (snap_get(r, cfg, sizeof(cfg)) && !pci_snap_check(h->slots[s], cfg, &next[s]))
			snap_bad(r);
	}
	int ret = snap_reader_end(r);
	if (ret == 0) {
		h->address = address;
		h->rcr = rcr;
		for (unsigned s = 0; s < PCI_MAX_DEVICES; s++) {
			struct pci_device *dev = h->slots[s];
			if (!dev)
				continue;
			memcpy(dev->cfg, next[s].cfg, sizeof(dev->cfg));
			memcpy(dev->bar_addr, next[s].bar_addr, sizeof(dev->bar_addr));
		}
	}
	pthread_mutex_unlock(&h->lock);
	/* The devices' hooks lock the device, which a BAR access takes after
	 * the host's lock: outside it. */
	for (unsigned s = 0; ret == 0 && s < PCI_MAX_DEVICES; s++) {
		struct pci_device *dev = h->slots[s];
		if (!dev || !dev->ops || !dev->ops->config_write)
			continue;
		for (unsigned dw = PCI_DEVICE_SPECIFIC; dw < sizeof(dev->cfg); dw += 4)
			dev->ops->config_write(dev, dw, pci_get32(next[s].cfg + dw), 4);
	}
	free(next);
	return ret;
}

/* vm_destroy: the PCI devices on the bus were created after the host and
 * are gone already; the host only forgets them. */
static void pci_destroy(void *opaque)
{
	struct pci_host *h = opaque;
	if (h->vm->pci == h)
		h->vm->pci = NULL;
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int pci_init(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	if (vm->pci)
		return -EEXIST;
	struct pci_host *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	h->vm = vm;
	h->mmio_next = VM_PCI_MMIO_BASE;
	h->bell_next = VM_PCI_MMIO_BASE + VM_PCI_MMIO_SIZE - PCI_BELL_WINDOW_SIZE;
	h->io_next = VM_PCI_IO_BASE;
	pci_bridge_init(&h->bridge, vm);
	h->slots[0] = &h->bridge;
	/* From here the machine owns (h): vm_destroy frees it, also after a
	 * failure below. */
	int ret = vm_add_teardown(vm, pci_destroy, h);
	if (ret < 0) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		return ret;
	}
	ret = bus_register(&vm->io_bus, vm->guest, PCI_CONF_PORT, PCI_CONF_LEN, pci_conf_access, h,
	                   "pci-conf");
	if (ret == 0)
		ret = bus_register(&vm->mmio_bus, vm->guest, VM_PCI_MMIO_BASE,
		                   VM_PCI_MMIO_SIZE - PCI_BELL_WINDOW_SIZE, pci_mmio_access, h,
		                   "pci-mmio");
	if (ret == 0)
		ret = vm_add_snapshot(vm, "pci", 1, pci_snap_save, pci_snap_load, h);
	if (ret == 0)
		vm->pci = h;
	return ret;
}

int pci_add(struct vm *vm, struct pci_device *dev)
{
	if (!vm || !dev)
		return -EINVAL;
	struct pci_host *h = vm->pci;
	if (!h)
		return -ENODEV;
	const uint64_t window_end = VM_PCI_MMIO_BASE + VM_PCI_MMIO_SIZE - PCI_BELL_WINDOW_SIZE;
	const uint64_t bell_end = VM_PCI_MMIO_BASE + VM_PCI_MMIO_SIZE;
	uint64_t addr[PCI_BARS] = {0};
	int ret = 0;
	pthread_mutex_lock(&h->lock);
	unsigned slot = 1;
	while (slot < PCI_MAX_DEVICES && h->slots[slot])
		slot++;
	if (slot == PCI_MAX_DEVICES) {
		ret = -ENOSPC;
		goto out;
	}
	/* Validate and place every BAR before changing anything. */
	uint64_t next = h->mmio_next, io_next = h->io_next, bell_next = h->bell_next;
	bool has_io = false;
	for (unsigned b = 0; b < PCI_BARS; b++) {
		uint32_t size = dev->bar_size[b];
		if (!size)
			continue;
		bool io = pci_bar_is_io(dev, b), is64 = pci_bar_is64(dev, b);
		uint32_t min = io ? PCI_IO_BAR_MIN : 4096;
		if (size < min || (size & (size - 1)) || (io && size > PCI_IO_BAR_MAX) ||
		    (is64 && (b == PCI_BARS - 1 || dev->bar_size[b + 1])) ||
		    ((dev->bar_bell & (1u << b)) && (io || is64 || size != 4096))) {
			ret = -EINVAL;
			goto out;
		}
		bool bell = dev->bar_bell & (1u << b);
		uint64_t *cursor = io ? &io_next : bell ? &bell_next : &next;
		uint64_t end = io ? VM_PCI_IO_BASE + VM_PCI_IO_SIZE : bell ? bell_end : window_end;
		uint64_t a = (*cursor + size - 1) & ~((uint64_t)size - 1);
		if (a + size > end) {
			ret = -ENOSPC;
			goto out;
		}
		addr[b] = a;
		*cursor = a + size;
		has_io |= io;
	}
	/* The port window is trapped only once a device has an I/O BAR: a
	 * board without one leaves those ports unclaimed. */
	if (has_io && !h->io_window) {
		ret = bus_register(&vm->io_bus, vm->guest, VM_PCI_IO_BASE, VM_PCI_IO_SIZE,
		                   pci_io_access, h, "pci-io");
		if (ret < 0)
			goto out;
		h->io_window = true;
	}
	h->mmio_next = next;
	h->io_next = io_next;
	h->bell_next = bell_next;
	for (unsigned b = 0; b < PCI_BARS; b++) {
		if (!dev->bar_size[b])
			continue;
		uint8_t *reg = &dev->cfg[PCI_BAR0 + 4 * b];
		uint8_t flags = pci_bar_is_io(dev, b) ? PCI_BAR_IO : (reg[0] & PCI_BAR_FLAGS);
		pci_put32(reg, (uint32_t)addr[b] | flags);
		if (pci_bar_is64(dev, b))
			pci_put32(reg + 4, (uint32_t)(addr[b] >> 32));
		dev->bar_addr[b] = addr[b];
	}
	/* Firmware-style: memory (and I/O) decoding on, INTA wired per
	 * PCI_INTX_GSI. */
	dev->cfg[PCI_COMMAND] |= PCI_CMD_MEMORY | (has_io ? PCI_CMD_IO : 0);
	dev->irq_pin_gsi = PCI_INTX_GSI(slot, 0);
	dev->cfg[PCI_INTERRUPT_LINE] = (uint8_t)dev->irq_pin_gsi;
	dev->cfg[PCI_INTERRUPT_PIN] = 1; /* INTA# */
	dev->vm = vm;
	dev->slot = slot;
	h->slots[slot] = dev;
out:
	pthread_mutex_unlock(&h->lock);
	return ret;
}
