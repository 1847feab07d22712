/* virtio_dev.h: the driver side of the virtio device targets
 * (fuzz/virtio_*.c). The input is
 *   byte 0: number of operations N; byte 1: device flags (per target);
 *   N operations of 8 bytes: kind, size, le16 offset, le32 value;
 *   the rest: guest RAM at GPA 0 (vm_gpa beyond it is NULL).
 * Operations (kind % 7):
 *   0 BAR0 write, 1 BAR0 read: (offset & 0x3fff), 1 << (size & 3) bytes,
 *     through the transport's bar_access (common config, ISR, device
 *     config, notify, MSI-X table and PBA);
 *   2 config-space write at (offset & 0xff), stored then the device's
 *     config_write hook (as pci.c does);
 *   3 a device event (fuzz_dev_event: receive a frame, type input...);
 *   4 notify queue (value);
 *   5 driver set-up: reset, ACKNOWLEDGE | DRIVER, driver features (value)
 *     | VERSION_1 (unless size bit 0), masked with the device's offer
 *     (unless size bit 1), FEATURES_OK;
 *   6 queue set-up: queue (size & 7), Queue Size 1 << (size >> 3 & 15),
 *     rings packed from GPA (offset) (descriptors, driver area aligned 2,
 *     device area aligned 4), enabled.
 * The device is created for each input and freed after it. */
#ifndef ZHV_FUZZ_VIRTIO_DEV_H
#define ZHV_FUZZ_VIRTIO_DEV_H

#include "fuzz.h"

#include "../vmm/dev/virtqueue.c"
#include "../vmm/dev/virtio_pci.c"
#include "virtio_stubs.h"

/* ---- stubs of the VMM core ------------------------------------------------ */

static struct vm fuzz_vm;
static struct pci_device *fuzz_dev;

void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	(void)vm;
	if (gpa > fuzz_mem_size || len > fuzz_mem_size - gpa)
		return NULL;
	return fuzz_mem + gpa;
}

void vm_irq_set_shared(struct vm *vm, unsigned gsi, unsigned source, int level)
{
	(void)vm, (void)gsi, (void)source, (void)level;
}

void vm_irq_set(struct vm *vm, unsigned gsi, int level)
{
	(void)vm, (void)gsi, (void)level;
}

zhv_status_t zhv_guest_signal_msi(zhv_guest_t *guest, uint64_t address, uint32_t data)
{
	(void)guest, (void)address, (void)data;
	return ZHV_OK;
}

int pci_add(struct vm *vm, struct pci_device *dev)
{
	(void)vm;
	fuzz_dev = dev;
	dev->irq_pin_gsi = 16;
	dev->slot = 1;
	dev->bar_addr[0] = VM_PCI_MMIO_BASE;
	return 0;
}

/* ---- what each target provides -------------------------------------------- */

/* Create the device (flags: byte 1 of the input); 0 or -errno. */
static int fuzz_dev_create(uint8_t flags);
/* Free everything fuzz_dev_create made. */
/* Operation 3. */
static void fuzz_dev_event(uint8_t size, uint16_t offset, uint32_t value);

/* ---- the driver ------------------------------------------------------------ */

/* An access to BAR0 at (off); [0x2000, 0x3000) (BAR0's notify region
 * before doorbells had a BAR of their own, and unused in BAR0 since) goes
 * to the doorbell BAR, so that inputs keep their meaning. Then what the
 * device thread would do: serve the doorbells. */
static void fuzz_bar(uint64_t off, bool write, uint64_t v, unsigned size)
{
	struct virtio_pci *vp = fuzz_dev->opaque;
	uint8_t data[8];
	int bar = VIRTIO_PCI_BAR;

	for (unsigned i = 0; i < 8; i++)
		data[i] = (uint8_t)(v >> (8 * i));
	if (off >= 0x2000 && off < 0x3000) {
		bar = VIRTIO_PCI_NOTIFY_BAR;
		off -= 0x2000;
	}
	fuzz_dev->ops->bar_access(fuzz_dev, bar, off, write, data, size);
	pthread_mutex_lock(&vp->lock);
	virtio_pci_serve_pending(vp);
	pthread_mutex_unlock(&vp->lock);
}

static void fuzz_cfg_write(uint32_t off, uint32_t v, unsigned size)
{
	for (unsigned i = 0; i < size && off + i < sizeof(fuzz_dev->cfg); i++)
		fuzz_dev->cfg[off + i] = (uint8_t)(v >> (8 * i));
	fuzz_dev->ops->config_write(fuzz_dev, off, v, size);
}

static uint32_t fuzz_bar_read32(uint64_t off)
{
	uint8_t data[4];

	fuzz_dev->ops->bar_access(fuzz_dev, VIRTIO_PCI_BAR, off, false, data, 4);
	return (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
	       (uint32_t)data[3] << 24;
}

static void fuzz_driver_setup(uint32_t features, uint8_t how)
{
	uint32_t hi = (how & 1) ? 0 : 1; /* bit 32: VERSION_1 */

	fuzz_bar(COMMON_STATUS, true, 0, 1);
	fuzz_bar(COMMON_STATUS, true, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	if (!(how & 2)) {
		fuzz_bar(COMMON_DFSELECT, true, 0, 4);
		features &= fuzz_bar_read32(COMMON_DF);
	}
	fuzz_bar(COMMON_GFSELECT, true, 0, 4);
	fuzz_bar(COMMON_GF, true, features, 4);
	fuzz_bar(COMMON_GFSELECT, true, 1, 4);
	fuzz_bar(COMMON_GF, true, hi, 4);
	fuzz_bar(COMMON_STATUS, true,
	         VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK, 1);
}

static void fuzz_queue_setup(unsigned q, unsigned size, uint64_t base)
{
	uint64_t avail = base + VQ_DESC_BYTES(size);
	uint64_t used = (avail + VQ_AVAIL_BYTES(size) + 3) & ~3ull;

	fuzz_bar(COMMON_Q_SELECT, true, q, 2);
	fuzz_bar(COMMON_Q_SIZE, true, size, 2);
	fuzz_bar(COMMON_Q_DESCLO, true, base, 8);
	fuzz_bar(COMMON_Q_AVAILLO, true, avail, 8);
	fuzz_bar(COMMON_Q_USEDLO, true, used, 8);
	fuzz_bar(COMMON_Q_ENABLE, true, 1, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader r = { data, size };
	unsigned nops = fz8(&r);
	uint8_t flags = fz8(&r);
	size_t oplen = (size_t)nops * 8;
	struct fuzz_reader ops;

	if (oplen > r.n)
		oplen = r.n;
	ops = (struct fuzz_reader){ r.p, oplen };
	fuzz_mem_set(r.p + oplen, r.n - oplen);
	memset(&fuzz_vm, 0, sizeof(fuzz_vm));
	fuzz_vm.no_device_threads = true;
	fuzz_vm.ram = fuzz_mem;
	fuzz_vm.ram_size = fuzz_vm.low_ram = fuzz_mem_size;
	fuzz_dev = NULL;
	if (fuzz_dev_create(flags) < 0)
		abort(); /* the harness itself is broken */
	FUZZ_CHECK(fuzz_dev != NULL);
	/* The transport logs the first protocol error of each device; every
	 * input makes a new one, and the log would drown the fuzzer's. */
	((struct virtio_pci *)fuzz_dev->opaque)->error_logged = true;

	while (ops.n) {
		uint8_t kind = fz8(&ops), sz = fz8(&ops);
		uint16_t off = fz16(&ops);
		uint32_t v = fz32(&ops);
		unsigned width = 1u << (sz & 3);

		switch (kind % 7) {
		case 0:
			fuzz_bar(off & (VIRTIO_PCI_BAR_SIZE - 1), true, v, width);
			break;
		case 1:
			fuzz_bar(off & (VIRTIO_PCI_BAR_SIZE - 1), false, 0, width);
			break;
		case 2:
			fuzz_cfg_write(off & 0xff, v, width > 4 ? 4 : width);
			break;
		case 3:
			fuzz_dev_event(sz, off, v);
			break;
		case 4:
			fuzz_bar(0x2000 + VIRTIO_PCI_NOTIFY_OFF + (v % VIRTIO_PCI_MAX_QUEUES) *
			                                              VIRTIO_PCI_NOTIFY_MULT,
			         true, 0, 2);
			break;
		case 5:
			fuzz_driver_setup(v, sz);
			break;
		case 6:
			fuzz_queue_setup(sz & 7, 1u << ((sz >> 3) & 15), off);
			break;
		}
	}
	if (fuzz_verbose()) {
		struct virtio_pci *vp = fuzz_dev->opaque;

		fprintf(stderr, "virtio-%s: status %#x isr %#x msi-x pending %#x", vp->name,
		        vp->status, vp->isr, vp->msix_pending);
		for (unsigned q = 0; q < vp->num_queues; q++)
			fprintf(stderr, " q%u: ready %d used %u", q, vp->queues[q].ready,
			        vp->queues[q].used_idx);
		fprintf(stderr, "\n");
	}
	/* The device's own destroy path, as vm_destroy runs it. */
	while (fuzz_vm.nteardowns) {
		struct vm_teardown *t = &fuzz_vm.teardowns[--fuzz_vm.nteardowns];
		t->fn(t->opaque);
	}
	return 0;
}

#endif /* ZHV_FUZZ_VIRTIO_DEV_H */
