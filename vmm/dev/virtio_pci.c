/* virtio_pci.c: virtio 1.x "modern" PCI transport (virtio 1.2 §4.1): config space, BAR0 registers, MSI-X and INTx. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "../vm.h"
#include "pci.h"
#include "virtio_pci.h"
#include "thread.h"

/* clang-format off */
/* PCI configuration header (PCI Local Bus 3.0 §6.1). */
#define PCI_VENDOR_ID       0x00
#define PCI_DEVICE_ID       0x02
#define PCI_STATUS          0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_REVISION_ID     0x08
#define PCI_CLASS_PROG      0x09
#define PCI_HEADER_TYPE     0x0e
#define PCI_SUBSYS_VENDOR   0x2c
#define PCI_SUBSYS_ID       0x2e
#define PCI_CAP_PTR         0x34
#define PCI_INTERRUPT_PIN   0x3d
#define PCI_CAP_ID_VNDR     0x09
#define PCI_CAP_ID_MSIX     0x11

#define VIRTIO_PCI_VENDOR   0x1af4 /* virtio 1.2 §4.1.2 */
#define VIRTIO_PCI_DEVICE0  0x1040 /* + device type: modern-only IDs */
#define VIRTIO_PCI_REVISION 1      /* §4.1.2.1: non-transitional */

/* virtio_pci_cap cfg_type values (virtio 1.2 §4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG    3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

/* Where our capabilities sit in config space (a fixed list). */
#define CAP_COMMON  0x40 /* struct virtio_pci_cap, 16 bytes */
#define CAP_NOTIFY  0x50 /* struct virtio_pci_notify_cap, 20 bytes */
#define CAP_ISR     0x64
#define CAP_DEVICE  0x74
#define CAP_MSIX    0x84 /* MSI-X capability, 12 bytes */
#define CAP_END     0x90 /* the rest of config space reads 0 */

/* MSI-X message control (PCI Local Bus 3.0 §6.8.2.3). */
#define MSIX_CTRL           (CAP_MSIX + 2)
#define MSIX_CTRL_ENABLE    0x8000u
#define MSIX_CTRL_MASKALL   0x4000u
#define MSIX_ENTRY_MASKED   1u /* vector control bit 0 (§6.8.2.9) */

/* Common configuration registers (virtio 1.2 §4.1.4.3). */
#define COMMON_DFSELECT   0x00
#define COMMON_DF         0x04
#define COMMON_GFSELECT   0x08
#define COMMON_GF         0x0c
#define COMMON_MSIX       0x10
#define COMMON_NUMQ       0x12
#define COMMON_STATUS     0x14
#define COMMON_CFGGEN     0x15
#define COMMON_Q_SELECT   0x16
#define COMMON_Q_SIZE     0x18
#define COMMON_Q_MSIX     0x1a
#define COMMON_Q_ENABLE   0x1c
#define COMMON_Q_NOFF     0x1e
#define COMMON_Q_DESCLO   0x20
#define COMMON_Q_DESCHI   0x24
#define COMMON_Q_AVAILLO  0x28
#define COMMON_Q_AVAILHI  0x2c
#define COMMON_Q_USEDLO   0x30
#define COMMON_Q_USEDHI   0x34

/* ISR status bits (virtio 1.2 §4.1.4.5). */
#define VIRTIO_ISR_QUEUE  1u
#define VIRTIO_ISR_CONFIG 2u
/* clang-format on */

_Static_assert(VIRTIO_PCI_MAX_VECTORS <= 32, "PBA kept in one word");
_Static_assert(VIRTIO_PCI_MAX_VECTORS * 16 <= VIRTIO_PCI_MSIX_PBA_OFF - VIRTIO_PCI_MSIX_TBL_OFF,
               "MSI-X table fits before the PBA");
_Static_assert(VIRTIO_PCI_MAX_QUEUES * VIRTIO_PCI_NOTIFY_MULT <= 0x1000, "notify region");

/* User packets on a device's port (BELL packets carry the trap's key). */
#define VP_KEY_BELL   1u /* the BELL trap's key */
#define VP_KEY_NOTIFY 2u /* serve the queues in notify_pending */
#define VP_KEY_STOP   3u /* virtio_pci_stop: the thread ends */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint64_t get_le(const uint8_t *data, unsigned size)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)data[i] << (8 * i);
	return v;
}

/* Copy bytes [off, off + size) of the (len)-byte image (img) to (data);
 * bytes past the image read as 0. */
static void read_image(const uint8_t *img, size_t len, uint64_t off, uint8_t *data,
                       unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		data[i] = off + i < len ? img[off + i] : 0;
}

/* ---- interrupts ---------------------------------------------------------- */

static void intx_update(struct virtio_pci *vp)
{
	/* Level-triggered INTx follows ISR (§4.1.4.5.1); with MSI-X enabled
	 * the function must not use INTx. */
	bool level = !vp->msix_enabled && vp->isr != 0;

	if (level != vp->intx_level) {
		vp->intx_level = level;
		/* INTx lines are shared between slots: one source per slot. */
		vm_irq_set_shared(vp->vm, vp->pci.irq_pin_gsi, vp->pci.slot & 31, level);
	}
}

static bool msix_masked(const struct virtio_pci *vp, unsigned v)
{
	return vp->msix_func_masked || (vp->msix[v].ctrl & MSIX_ENTRY_MASKED);
}

static void msix_send(struct virtio_pci *vp, unsigned v)
{
	const struct virtio_msix_entry *e = &vp->msix[v];
	uint64_t addr = (uint64_t)e->addr_hi << 32 | e->addr_lo;
	zhv_status_t st = zhv_guest_signal_msi(vp->vm->guest, addr, e->data);

	if (st != ZHV_OK && !vp->error_logged) {
		vp->error_logged = true;
		fprintf(stderr, "zhv: virtio-%s: MSI-X vector %u (address %#llx data %#x) failed\n",
		        vp->name, v, (unsigned long long)addr, e->data);
	}
}

/* Deliver what became deliverable: MSI-X enabled, function and vector
 * unmasked (PCI Local Bus 3.0 §6.8.3.4: the pending bit is sent on
 * unmask). */
static void msix_flush_pending(struct virtio_pci *vp)
{
	if (!vp->msix_enabled || vp->msix_func_masked)
		return;
	for (unsigned v = 0; v < vp->nvectors; v++) {
		if ((vp->msix_pending & (1u << v)) && !msix_masked(vp, v)) {
			vp->msix_pending &= ~(1u << v);
			msix_send(vp, v);
		}
	}
}

static void interrupt(struct virtio_pci *vp, uint16_t vector, uint8_t isr_bit)
{
	if (!vp->msix_enabled) {
		vp->isr |= isr_bit;
		intx_update(vp);
		return;
	}
	if (vector >= vp->nvectors)
		return; /* NO_VECTOR: the driver asked for no interrupt */
	if (msix_masked(vp, vector))
		vp->msix_pending |= 1u << vector;
	else
		msix_send(vp, vector);
}

/* ---- API for device models ---------------------------------------------- */

bool virtio_pci_running(const struct virtio_pci *vp)
{
	uint8_t need = VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK;

	return (vp->status & need) == need && !(vp->status & VIRTIO_STATUS_NEEDS_RESET);
}

struct vq *virtio_pci_queue(struct virtio_pci *vp, unsigned q)
{
	if (q >= vp->num_queues || !vp->queues[q].ready || !virtio_pci_running(vp))
		return NULL;
	return &vp->queues[q];
}

bool virtio_pci_has_feature(const struct virtio_pci *vp, unsigned bit)
{
	uint64_t m = bit < 64 ? 1ull << bit : 0;

	return (vp->device_features & vp->driver_features & m) != 0;
}

void virtio_pci_queue_interrupt(struct virtio_pci *vp, unsigned q)
{
	if (q >= vp->num_queues || !vq_notify_needed(&vp->queues[q]))
		return;
	interrupt(vp, vp->queue_vector[q], VIRTIO_ISR_QUEUE);
}

void virtio_pci_device_error(struct virtio_pci *vp, const char *why)
{
	if (vp->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	vp->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (!vp->error_logged) {
		vp->error_logged = true;
		fprintf(stderr, "zhv: virtio-%s: %s: device needs reset\n", vp->name, why);
	}
	/* §2.1.2: after DRIVER_OK, NEEDS_RESET comes with a configuration
	 * change notification. */
	if (vp->status & VIRTIO_STATUS_DRIVER_OK) {
		vp->config_generation++;
		interrupt(vp, vp->config_vector, VIRTIO_ISR_CONFIG);
	}
}

/* ---- common configuration ------------------------------------------------ */

static void device_reset(struct virtio_pci *vp)
{
	for (unsigned q = 0; q < vp->num_queues; q++) {
		vq_reset(&vp->queues[q]);
		vp->queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
	}
	vp->driver_features = 0;
	vp->device_feature_sel = 0;
	vp->driver_feature_sel = 0;
	vp->config_vector = VIRTIO_MSI_NO_VECTOR;
	vp->queue_sel = 0;
	vp->status = 0;
	vp->isr = 0;
	vp->msix_pending = 0;
	intx_update(vp);
	if (vp->ops->reset)
		vp->ops->reset(vp);
}

static void status_write(struct virtio_pci *vp, uint8_t v)
{
	uint8_t old = vp->status;

	if (v == 0) {
		device_reset(vp);
		return;
	}
	/* §3.1.1: FEATURES_OK sticks only for a subset of what we offer
	 * that includes VERSION_1 (no legacy interface here). */
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
	    ((vp->driver_features & ~vp->device_features) ||
	     !(vp->driver_features & (1ull << VIRTIO_F_VERSION_1))))
		v &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	/* NEEDS_RESET is the device's to set; only a reset clears it. */
	v = (uint8_t)((v & ~VIRTIO_STATUS_NEEDS_RESET) | (old & VIRTIO_STATUS_NEEDS_RESET));
	vp->status = v;
	if (!(old & VIRTIO_STATUS_DRIVER_OK) && virtio_pci_running(vp)) {
		uint32_t mask = 0;

		for (unsigned q = 0; q < vp->num_queues; q++)
			if (vp->queues[q].ready)
				mask |= 1u << q;
		virtio_pci_notify_thread(vp, mask);
	}
}

static struct vq *selected_queue(struct virtio_pci *vp)
{
	return vp->queue_sel < vp->num_queues ? &vp->queues[vp->queue_sel] : NULL;
}

static void common_read(struct virtio_pci *vp, uint64_t off, uint8_t *data, unsigned size)
{
	uint8_t img[VIRTIO_PCI_COMMON_LEN] = { 0 };
	struct vq *vq = selected_queue(vp);
	uint32_t df = 0, gf = 0;

	if (vp->device_feature_sel < 2)
		df = (uint32_t)(vp->device_features >> (32 * vp->device_feature_sel));
	if (vp->driver_feature_sel < 2)
		gf = (uint32_t)(vp->driver_features >> (32 * vp->driver_feature_sel));
	put32(img + COMMON_DFSELECT, vp->device_feature_sel);
	put32(img + COMMON_DF, df);
	put32(img + COMMON_GFSELECT, vp->driver_feature_sel);
	put32(img + COMMON_GF, gf);
	put16(img + COMMON_MSIX, vp->config_vector);
	put16(img + COMMON_NUMQ, (uint16_t)vp->num_queues);
	img[COMMON_STATUS] = vp->status;
	img[COMMON_CFGGEN] = vp->config_generation;
	put16(img + COMMON_Q_SELECT, vp->queue_sel);
	if (vq) {
		/* An unselectable queue reads Queue Size 0 (§4.1.4.3.2). */
		put16(img + COMMON_Q_SIZE, vq->size);
		put16(img + COMMON_Q_MSIX, vp->queue_vector[vp->queue_sel]);
		put16(img + COMMON_Q_ENABLE, vq->ready);
		put16(img + COMMON_Q_NOFF, vp->queue_sel);
		put64(img + COMMON_Q_DESCLO, vq->desc_gpa);
		put64(img + COMMON_Q_AVAILLO, vq->avail_gpa);
		put64(img + COMMON_Q_USEDLO, vq->used_gpa);
	}
	read_image(img, sizeof(img), off, data, size);
}

/* Set the (size)-byte half or whole at (off) of a 64-bit address pair
 * starting at (base). */
static void set_addr(uint64_t *addr, uint64_t off, uint64_t base, uint64_t v, unsigned size)
{
	if (off == base && size == 8)
		*addr = v;
	else if (off == base && size == 4)
		*addr = (*addr & ~0xffffffffull) | (v & 0xffffffffull);
	else if (off == base + 4 && size == 4)
		*addr = (*addr & 0xffffffffull) | v << 32;
}

static uint16_t valid_vector(const struct virtio_pci *vp, uint64_t v)
{
	/* §4.1.5.1.2: an unusable vector reads back as NO_VECTOR. */
	return v < vp->nvectors ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

static void queue_enable(struct virtio_pci *vp, struct vq *vq)
{
	int r = vq_enable(vq);

	if (r < 0)
		virtio_pci_device_error(vp, r == -EFAULT ? "queue rings outside RAM"
		                                         : "bad queue size or ring alignment");
}

static void common_write(struct virtio_pci *vp, uint64_t off, const uint8_t *data,
                         unsigned size)
{
	uint64_t v = get_le(data, size);
	struct vq *vq = selected_queue(vp);

	/* §4.1.3.1: fields are accessed with their natural width; anything
	 * else is ignored. Queue fields are frozen once the queue is enabled
	 * (§4.1.4.3.2). */
	switch (off) {
	case COMMON_DFSELECT:
		if (size == 4)
			vp->device_feature_sel = (uint32_t)v;
		return;
	case COMMON_GFSELECT:
		if (size == 4)
			vp->driver_feature_sel = (uint32_t)v;
		return;
	case COMMON_GF:
		if (size != 4 || vp->driver_feature_sel >= 2 ||
		    (vp->status & VIRTIO_STATUS_FEATURES_OK))
			return;
		if (vp->driver_feature_sel == 0)
			vp->driver_features = (vp->driver_features & ~0xffffffffull) | v;
		else
			vp->driver_features = (vp->driver_features & 0xffffffffull) | v << 32;
		return;
	case COMMON_MSIX:
		if (size == 2)
			vp->config_vector = valid_vector(vp, v);
		return;
	case COMMON_STATUS:
		if (size == 1)
			status_write(vp, (uint8_t)v);
		return;
	case COMMON_Q_SELECT:
		if (size == 2)
			vp->queue_sel = (uint16_t)v;
		return;
	}
	if (!vq)
		return;
	switch (off) {
	case COMMON_Q_SIZE:
		if (size == 2 && !vq->ready)
			vq->size = (uint16_t)v; /* checked at enable */
		return;
	case COMMON_Q_MSIX:
		if (size == 2)
			vp->queue_vector[vp->queue_sel] = valid_vector(vp, v);
		return;
	case COMMON_Q_ENABLE:
		/* §4.1.4.3.2: the driver only ever writes 1. */
		if (size == 2 && v == 1 && !vq->ready)
			queue_enable(vp, vq);
		return;
	}
	if (vq->ready || (size != 4 && size != 8))
		return;
	if (off >= COMMON_Q_DESCLO && off <= COMMON_Q_DESCHI)
		set_addr(&vq->desc_gpa, off, COMMON_Q_DESCLO, v, size);
	else if (off >= COMMON_Q_AVAILLO && off <= COMMON_Q_AVAILHI)
		set_addr(&vq->avail_gpa, off, COMMON_Q_AVAILLO, v, size);
	else if (off >= COMMON_Q_USEDLO && off <= COMMON_Q_USEDHI)
		set_addr(&vq->used_gpa, off, COMMON_Q_USEDLO, v, size);
}

/* ---- MSI-X table and PBA -------------------------------------------------- */

static void msix_table_read(struct virtio_pci *vp, uint64_t off, uint8_t *data,
                            unsigned size)
{
	uint8_t img[VIRTIO_PCI_MAX_VECTORS * 16];

	for (unsigned v = 0; v < vp->nvectors; v++) {
		put32(img + 16 * v + 0, vp->msix[v].addr_lo);
		put32(img + 16 * v + 4, vp->msix[v].addr_hi);
		put32(img + 16 * v + 8, vp->msix[v].data);
		put32(img + 16 * v + 12, vp->msix[v].ctrl);
	}
	read_image(img, 16ull * vp->nvectors, off, data, size);
}

static void msix_table_write_word(struct virtio_pci *vp, uint64_t off, uint32_t v)
{
	struct virtio_msix_entry *e;

	if (off / 16 >= vp->nvectors)
		return;
	e = &vp->msix[off / 16];
	switch (off % 16) {
	case 0:
		e->addr_lo = v & ~3u; /* §6.8.2.7: bits 1:0 are reserved zero */
		break;
	case 4:
		e->addr_hi = v;
		break;
	case 8:
		e->data = v;
		break;
	case 12:
		e->ctrl = v & MSIX_ENTRY_MASKED;
		msix_flush_pending(vp);
		break;
	}
}

static void msix_table_write(struct virtio_pci *vp, uint64_t off, const uint8_t *data,
                             unsigned size)
{
	uint64_t v = get_le(data, size);

	/* PCI Local Bus 3.0 §6.8.2: DWORD or aligned QWORD accesses only. */
	if (size == 4 && off % 4 == 0) {
		msix_table_write_word(vp, off, (uint32_t)v);
	} else if (size == 8 && off % 8 == 0) {
		msix_table_write_word(vp, off, (uint32_t)v);
		msix_table_write_word(vp, off + 4, (uint32_t)(v >> 32));
	}
}

/* ---- BAR0 and config space hooks ------------------------------------------ */

void virtio_pci_notify_thread(struct virtio_pci *vp, uint32_t mask)
{
	zhv_packet_t p = { .key = VP_KEY_NOTIFY };
	bool idle = vp->notify_pending == 0;

	mask &= (1u << vp->num_queues) - 1;
	if (!mask || vp->stopping)
		return;
	vp->notify_pending |= mask;
	if (!vp->port)
		return; /* no device thread: virtio_pci_serve_pending */
	/* One packet stands for every notification until the thread takes
	 * them: the port's user-packet limit is never reached. */
	if (idle && zhv_port_queue(vp->port, &p) != ZHV_OK && !vp->error_logged) {
		vp->error_logged = true;
		fprintf(stderr, "zhv: virtio-%s: cannot wake the device thread\n", vp->name);
	}
}

/* A doorbell write that came through the MEM trap: the guest moved the
 * notify BAR out of the doorbell window. The device thread serves it all
 * the same. */
static void notify_write(struct virtio_pci *vp, uint64_t off)
{
	uint64_t q = off / VIRTIO_PCI_NOTIFY_MULT;

	if (q < vp->num_queues)
		virtio_pci_notify_thread(vp, 1u << q);
}

static bool in_region(uint64_t off, unsigned size, uint64_t base, uint64_t len,
                      uint64_t *rel)
{
	if (off < base || off - base >= len || size > len - (off - base))
		return false;
	*rel = off - base;
	return true;
}

static void bar_access(struct pci_device *dev, int bar, uint64_t offset, bool write,
                       uint8_t *data, unsigned size)
{
	struct virtio_pci *vp = dev->opaque;
	uint64_t rel;

	if (size == 0 || size > 8)
		return;
	if (!write)
		memset(data, 0, size);
	if (bar == VIRTIO_PCI_NOTIFY_BAR) {
		if (write && in_region(offset, size, VIRTIO_PCI_NOTIFY_OFF,
		                       (uint64_t)vp->num_queues * VIRTIO_PCI_NOTIFY_MULT, &rel)) {
			pthread_mutex_lock(&vp->lock);
			notify_write(vp, rel);
			pthread_mutex_unlock(&vp->lock);
		}
		return;
	}
	if (bar != VIRTIO_PCI_BAR)
		return;
	pthread_mutex_lock(&vp->lock);
	if (in_region(offset, size, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN, &rel)) {
		if (write)
			common_write(vp, rel, data, size);
		else
			common_read(vp, rel, data, size);
	} else if (in_region(offset, size, VIRTIO_PCI_ISR_OFF, VIRTIO_PCI_ISR_LEN, &rel)) {
		/* §4.1.4.5: reading ISR returns and clears it, lowering INTx. */
		if (!write && rel == 0) {
			data[0] = vp->isr;
			vp->isr = 0;
			intx_update(vp);
		}
	} else if (in_region(offset, size, VIRTIO_PCI_DEVICE_OFF, VIRTIO_PCI_CONFIG_MAX, &rel)) {
		/* Device config is read-only for every device we offer. */
		if (!write)
			read_image(vp->config, vp->config_len, rel, data, size);
	} else if (in_region(offset, size, VIRTIO_PCI_MSIX_TBL_OFF, 16ull * vp->nvectors, &rel)) {
		if (write)
			msix_table_write(vp, rel, data, size);
		else
			msix_table_read(vp, rel, data, size);
	} else if (in_region(offset, size, VIRTIO_PCI_MSIX_PBA_OFF, 8, &rel)) {
		uint8_t img[8];

		put64(img, vp->msix_pending);
		if (!write)
			read_image(img, sizeof(img), rel, data, size);
	}
	pthread_mutex_unlock(&vp->lock);
}

static void put_vendor_cap(uint8_t *cfg, unsigned at, unsigned next, uint8_t len,
                           uint8_t type, uint8_t bar, uint32_t offset, uint32_t length)
{
	/* struct virtio_pci_cap (virtio 1.2 §4.1.4). */
	cfg[at + 0] = PCI_CAP_ID_VNDR;
	cfg[at + 1] = (uint8_t)next;
	cfg[at + 2] = len;
	cfg[at + 3] = type;
	cfg[at + 4] = bar;
	cfg[at + 5] = 0; /* id */
	cfg[at + 6] = cfg[at + 7] = 0;
	put32(cfg + at + 8, offset);
	put32(cfg + at + 12, length);
}

/* Write every read-only byte we own in config space: the identity fields
 * and the capability list. Called at creation and after each guest config
 * write, since pci.c stores writes as they come. */
static void config_fill(struct virtio_pci *vp)
{
	uint16_t device_type = vp->device_type;
	uint32_t class_code = vp->class_code;
	uint8_t *cfg = vp->pci.cfg;
	uint32_t dev_len = vp->config_len < 4 ? 4 : (vp->config_len + 3) & ~3u;
	uint16_t msix_ctrl = (uint16_t)(vp->nvectors - 1);

	put16(cfg + PCI_VENDOR_ID, VIRTIO_PCI_VENDOR);
	put16(cfg + PCI_DEVICE_ID, (uint16_t)(VIRTIO_PCI_DEVICE0 + device_type));
	cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	cfg[PCI_REVISION_ID] = VIRTIO_PCI_REVISION;
	cfg[PCI_CLASS_PROG] = (uint8_t)class_code;
	cfg[PCI_CLASS_PROG + 1] = (uint8_t)(class_code >> 8);
	cfg[PCI_CLASS_PROG + 2] = (uint8_t)(class_code >> 16);
	cfg[PCI_HEADER_TYPE] = 0;
	put16(cfg + PCI_SUBSYS_VENDOR, VIRTIO_PCI_VENDOR);
	put16(cfg + PCI_SUBSYS_ID, (uint16_t)(0x40 + device_type));
	cfg[PCI_CAP_PTR] = CAP_COMMON;

	put_vendor_cap(cfg, CAP_COMMON, CAP_NOTIFY, 16, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_BAR,
	               VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN);
	/* struct virtio_pci_notify_cap (§4.1.4.4): queue q's doorbell is at
	 * offset + queue_notify_off(q) * multiplier, queue_notify_off = q, in
	 * the doorbell BAR. */
	put_vendor_cap(cfg, CAP_NOTIFY, CAP_ISR, 20, VIRTIO_PCI_CAP_NOTIFY_CFG,
	               VIRTIO_PCI_NOTIFY_BAR, VIRTIO_PCI_NOTIFY_OFF,
	               vp->num_queues * VIRTIO_PCI_NOTIFY_MULT);
	put32(cfg + CAP_NOTIFY + 16, VIRTIO_PCI_NOTIFY_MULT);
	put_vendor_cap(cfg, CAP_ISR, CAP_DEVICE, 16, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_BAR,
	               VIRTIO_PCI_ISR_OFF, VIRTIO_PCI_ISR_LEN);
	put_vendor_cap(cfg, CAP_DEVICE, CAP_MSIX, 16, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_BAR,
	               VIRTIO_PCI_DEVICE_OFF, dev_len);

	/* MSI-X capability (PCI Local Bus 3.0 §6.8.2): table and PBA in BAR0. */
	if (vp->msix_enabled)
		msix_ctrl |= MSIX_CTRL_ENABLE;
	if (vp->msix_func_masked)
		msix_ctrl |= MSIX_CTRL_MASKALL;
	cfg[CAP_MSIX + 0] = PCI_CAP_ID_MSIX;
	cfg[CAP_MSIX + 1] = 0; /* end of list */
	put16(cfg + MSIX_CTRL, msix_ctrl);
	put32(cfg + CAP_MSIX + 4, VIRTIO_PCI_MSIX_TBL_OFF | VIRTIO_PCI_BAR);
	put32(cfg + CAP_MSIX + 8, VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_BAR);
	memset(cfg + CAP_END, 0, sizeof(vp->pci.cfg) - CAP_END);
}

static void config_write(struct pci_device *dev, uint32_t offset, uint32_t value,
                         unsigned size)
{
	struct virtio_pci *vp = dev->opaque;

	pthread_mutex_lock(&vp->lock);
	/* Pick up the MSI-X enable and function-mask bits if the write
	 * reached the message control word, then restore every read-only
	 * byte the write may have hit. */
	if (offset < MSIX_CTRL + 2 && offset + size > MSIX_CTRL) {
		uint16_t ctrl = get16(dev->cfg + MSIX_CTRL);

		vp->msix_enabled = (ctrl & MSIX_CTRL_ENABLE) != 0;
		vp->msix_func_masked = (ctrl & MSIX_CTRL_MASKALL) != 0;
	}
	config_fill(vp);
	intx_update(vp);
	msix_flush_pending(vp);
	pthread_mutex_unlock(&vp->lock);
}

static const struct pci_device_ops virtio_pci_ops = {
	.config_write = config_write,
	.bar_access = bar_access,
};

/* ---- snapshot (snapshot.h): section "virtio-<name><n>", version 1 ---------
 * The transport: device_features (u64, must be what the device offers),
 * driver_features (u64), device_feature_sel driver_feature_sel (u32),
 * config_vector queue_sel (u16), status config_generation isr (u8),
 * msix_enabled msix_func_masked (bool), msix_pending (u32), num_queues
 * (u8) and for each queue its state (vq_snap_save) and MSI-X vector (u16),
 * nvectors (u8) and each MSI-X table entry (addr_lo addr_hi data ctrl,
 * u32), then the device-specific config (u16 length, bytes; fixed at
 * creation, so it must be the device's: a disk of another size is
 * refused). Then the model's own part (virtio_dev_ops.snap_save). The INTx
 * level follows from ISR and MSI-X (the line is the IOAPIC's section's). */

static int virtio_pci_snap_save(void *opaque, struct snap_writer *w)
{
	struct virtio_pci *vp = opaque;
	int ret = 0;

	pthread_mutex_lock(&vp->lock);
	snap_put_u64(w, vp->device_features);
	snap_put_u64(w, vp->driver_features);
	snap_put_u32(w, vp->device_feature_sel);
	snap_put_u32(w, vp->driver_feature_sel);
	snap_put_u16(w, vp->config_vector);
	snap_put_u16(w, vp->queue_sel);
	snap_put_u8(w, vp->status);
	snap_put_u8(w, vp->config_generation);
	snap_put_u8(w, vp->isr);
	snap_put_bool(w, vp->msix_enabled);
	snap_put_bool(w, vp->msix_func_masked);
	snap_put_u32(w, vp->msix_pending);
	snap_put_u8(w, (uint8_t)vp->num_queues);
	for (unsigned q = 0; q < vp->num_queues; q++) {
		vq_snap_save(&vp->queues[q], w);
		snap_put_u16(w, vp->queue_vector[q]);
	}
	snap_put_u8(w, (uint8_t)vp->nvectors);
	for (unsigned v = 0; v < vp->nvectors; v++) {
		snap_put_u32(w, vp->msix[v].addr_lo);
		snap_put_u32(w, vp->msix[v].addr_hi);
		snap_put_u32(w, vp->msix[v].data);
		snap_put_u32(w, vp->msix[v].ctrl);
	}
	snap_put_u16(w, (uint16_t)vp->config_len);
	snap_put(w, vp->config, vp->config_len);
	if (vp->ops->snap_save)
		ret = vp->ops->snap_save(vp, w);
	pthread_mutex_unlock(&vp->lock);
	return ret;
}

/* The transport's state parsed from a section, before it is taken. */
struct virtio_pci_snap {
	uint64_t driver_features;
	uint32_t device_feature_sel, driver_feature_sel, msix_pending;
	uint16_t config_vector, queue_sel;
	uint8_t status, config_generation, isr;
	bool msix_enabled, msix_func_masked;
	struct vq queues[VIRTIO_PCI_MAX_QUEUES];
	uint16_t queue_vector[VIRTIO_PCI_MAX_QUEUES];
	struct virtio_msix_entry msix[VIRTIO_PCI_MAX_VECTORS];
};

static bool snap_vector_ok(const struct virtio_pci *vp, uint16_t v)
{
	return v < vp->nvectors || v == VIRTIO_MSI_NO_VECTOR;
}

/* Parse and check the transport's part of (r) into (t). Lock held. */
static void virtio_pci_snap_parse(const struct virtio_pci *vp, struct virtio_pci_snap *t,
                                  struct snap_reader *r)
{
	uint64_t device_features = snap_get_u64(r);

	t->driver_features = snap_get_u64(r);
	t->device_feature_sel = snap_get_u32(r);
	t->driver_feature_sel = snap_get_u32(r);
	t->config_vector = snap_get_u16(r);
	t->queue_sel = snap_get_u16(r);
	t->status = snap_get_u8(r);
	t->config_generation = snap_get_u8(r);
	t->isr = snap_get_u8(r);
	t->msix_enabled = snap_get_bool(r);
	t->msix_func_masked = snap_get_bool(r);
	t->msix_pending = snap_get_u32(r);
	if (device_features != vp->device_features || !snap_vector_ok(vp, t->config_vector) ||
	    (t->isr & ~(VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG)) ||
	    (t->msix_pending >> vp->nvectors))
		snap_bad(r);
	/* §3.1.1: FEATURES_OK only for a subset of the offer with VERSION_1. */
	if ((t->status & VIRTIO_STATUS_FEATURES_OK) &&
	    ((t->driver_features & ~vp->device_features) ||
	     !(t->driver_features & (1ull << VIRTIO_F_VERSION_1))))
		snap_bad(r);
	if (snap_get_u8(r) != vp->num_queues)
		snap_bad(r);
	for (unsigned q = 0; q < vp->num_queues && !r->err; q++) {
		t->queues[q] = vp->queues[q];
		vq_snap_load(&t->queues[q], r);
		t->queue_vector[q] = snap_get_u16(r);
		if (!snap_vector_ok(vp, t->queue_vector[q]))
			snap_bad(r);
	}
	if (snap_get_u8(r) != vp->nvectors)
		snap_bad(r);
	for (unsigned v = 0; v < vp->nvectors && !r->err; v++) {
		struct virtio_msix_entry *e = &t->msix[v];

		e->addr_lo = snap_get_u32(r);
		e->addr_hi = snap_get_u32(r);
		e->data = snap_get_u32(r);
		e->ctrl = snap_get_u32(r);
		if ((e->addr_lo & 3) || (e->ctrl & ~MSIX_ENTRY_MASKED))
			snap_bad(r);
	}
	uint8_t config[VIRTIO_PCI_CONFIG_MAX];

	if (snap_get_u16(r) != vp->config_len)
		snap_bad(r);
	if (!r->err && snap_get(r, config, vp->config_len) &&
	    memcmp(config, vp->config, vp->config_len)) {
		fprintf(stderr, "zhv: virtio-%s: the snapshot's device configuration differs\n",
		        vp->name);
		snap_bad(r);
	}
}

static int virtio_pci_snap_load(void *opaque, struct snap_reader *r)
{
	struct virtio_pci *vp = opaque;
	struct virtio_pci_snap *t = calloc(1, sizeof(*t));
	int ret;

	if (!t)
		return -ENOMEM;
	pthread_mutex_lock(&vp->lock);
	virtio_pci_snap_parse(vp, t, r);
	size_t model_at = r->off;
	if (!r->err && vp->ops->snap_load && vp->ops->snap_load(vp, r, false) < 0)
		snap_bad(r);
	ret = snap_reader_end(r);
	if (ret == 0) {
		vp->driver_features = t->driver_features;
		vp->device_feature_sel = t->device_feature_sel;
		vp->driver_feature_sel = t->driver_feature_sel;
		vp->config_vector = t->config_vector;
		vp->queue_sel = t->queue_sel;
		vp->status = t->status;
		vp->config_generation = t->config_generation;
		vp->isr = t->isr;
		vp->msix_enabled = t->msix_enabled;
		vp->msix_func_masked = t->msix_func_masked;
		vp->msix_pending = t->msix_pending;
		memcpy(vp->queues, t->queues, sizeof(vp->queues[0]) * vp->num_queues);
		memcpy(vp->queue_vector, t->queue_vector, sizeof(vp->queue_vector[0]) * vp->num_queues);
		memcpy(vp->msix, t->msix, sizeof(vp->msix[0]) * vp->nvectors);
		vp->intx_level = !vp->msix_enabled && vp->isr != 0;
		config_fill(vp);
		if (vp->ops->snap_load) {
			struct snap_reader again = { .p = r->p, .len = r->len, .off = model_at };

			ret = vp->ops->snap_load(vp, &again, true);
		}
	}
	pthread_mutex_unlock(&vp->lock);
	free(t);
	return ret;
}

/* vm_destroy's entry for one device: the model's hook frees it all. */
static void virtio_pci_teardown(void *opaque)
{
	struct virtio_pci *vp = opaque;

	virtio_pci_stop(vp);
	vp->ops->destroy(vp);
}

/* A doorbell packet: which queue (-1: none, or the notify BAR is no
 * longer decoded at the trap's address). Lock held. */
static int bell_queue(struct virtio_pci *vp, uint64_t addr)
{
	uint64_t base = vp->pci.bar_addr[VIRTIO_PCI_NOTIFY_BAR] + VIRTIO_PCI_NOTIFY_OFF;
	uint64_t off = addr - base;

	if (base != vp->bell_gpa + VIRTIO_PCI_NOTIFY_OFF || !(vp->pci.cfg[0x04] & 0x02) ||
	    addr < base || off / VIRTIO_PCI_NOTIFY_MULT >= vp->num_queues)
		return -1;
	return (int)(off / VIRTIO_PCI_NOTIFY_MULT);
}

/* Call queue_notify for the queues in (mask) that can take buffers. */
static void serve(struct virtio_pci *vp, uint32_t mask)
{
	for (unsigned q = 0; q < vp->num_queues; q++) {
		if ((mask & (1u << q)) && virtio_pci_queue(vp, q)) {
			vp->notifies++;
			vp->ops->queue_notify(vp, q);
		}
	}
}

void virtio_pci_serve_pending(struct virtio_pci *vp)
{
	uint32_t mask = vp->notify_pending;

	vp->notify_pending = 0;
	serve(vp, mask);
}

/* The device thread: waits on the port for doorbells (BELL packets) and
 * the VMM's notifications, and serves the queues. While a snapshot is
 * being taken (vm_devices_quiesce) it waits before serving. */
static void *virtio_pci_thread(void *arg)
{
	struct virtio_pci *vp = arg;

	for (;;) {
		zhv_packet_t p;
		uint32_t mask = 0;

		if (zhv_port_wait(vp->port, ZHV_TIME_INFINITE, &p) != ZHV_OK)
			continue;
		if (p.type == ZHV_PKT_TYPE_USER && p.key == VP_KEY_STOP)
			break;
		vm_device_work_begin(vp->vm);
		pthread_mutex_lock(&vp->lock);
		if (p.type == ZHV_PKT_TYPE_GUEST_BELL && p.key == VP_KEY_BELL) {
			int q = bell_queue(vp, p.guest_bell.addr);

			if (q >= 0)
				mask = 1u << q;
		} else if (p.type == ZHV_PKT_TYPE_USER && p.key == VP_KEY_NOTIFY) {
			mask = vp->notify_pending;
			vp->notify_pending = 0;
		}
		serve(vp, mask);
		pthread_mutex_unlock(&vp->lock);
		vm_device_work_end(vp->vm);
	}
	return NULL;
}

bool virtio_pci_on_device_thread(const struct virtio_pci *vp)
{
	return vp->thread_started && pthread_equal(pthread_self(), vp->thread);
}

void virtio_pci_stop(struct virtio_pci *vp)
{
	zhv_packet_t p = { .key = VP_KEY_STOP };

	pthread_mutex_lock(&vp->lock);
	bool started = vp->thread_started;
	vp->thread_started = false;
	vp->stopping = true;
	pthread_mutex_unlock(&vp->lock);
	if (!started)
		return;
	/* The STOP packet is never refused: user packets on this port are
	 * NOTIFY (at most one queued) and STOP. */
	if (zhv_port_queue(vp->port, &p) != ZHV_OK)
		abort();
	pthread_join(vp->thread, NULL);
}

/* Doorbells: the port, the BELL trap on the notify BAR and the thread. */
static int virtio_pci_start(struct virtio_pci *vp, struct vm *vm)
{
	zhv_status_t st;

	if (vm->no_device_threads)
		return 0;
	st = zhv_port_create(0, &vp->port);
	if (st != ZHV_OK)
		return -ENOMEM;
	vp->bell_gpa = vp->pci.bar_addr[VIRTIO_PCI_NOTIFY_BAR];
	st = zhv_guest_set_trap(vm->guest, ZHV_TRAP_BELL, vp->bell_gpa, ZHV_PAGE_SIZE, vp->port,
	                        VP_KEY_BELL);
	if (st != ZHV_OK) {
		fprintf(stderr, "zhv: virtio-%s: doorbell trap at %#llx: %s\n", vp->name,
		        (unsigned long long)vp->bell_gpa, zhv_status_string(st));
		return -EIO;
	}
	/* Started before any vCPU runs (and before the sandbox); termination
	 * signals go elsewhere. */
	int r = vmm_thread_start(&vp->thread, 0, virtio_pci_thread, vp);
	if (r < 0)
		return r;
	char name[16];
	snprintf(name, sizeof(name), "virtio-%s", vp->name);
	pthread_setname_np(vp->thread, name);
	vp->thread_started = true;
	return 0;
}

int virtio_pci_init(struct virtio_pci *vp, struct vm *vm, const struct virtio_pci_info *info)
{
	uint16_t qs = info->queue_size;
	int r;

	if (info->num_queues == 0 || info->num_queues > VIRTIO_PCI_MAX_QUEUES ||
	    info->config_len > VIRTIO_PCI_CONFIG_MAX || qs == 0 || qs > VQ_MAX_SIZE ||
	    (qs & (qs - 1)) || !info->ops || !info->ops->queue_notify || !info->ops->destroy)
		return -EINVAL;
	memset(vp, 0, sizeof(*vp));
	vp->vm = vm;
	vp->name = info->name;
	vp->ops = info->ops;
	vp->opaque = info->opaque;
	vp->device_type = info->device_type;
	vp->class_code = info->class_code;
	vp->device_features = info->features | 1ull << VIRTIO_F_VERSION_1 |
	                      1ull << VIRTIO_F_INDIRECT_DESC;
	vp->device_features &= ~(1ull << VIRTIO_F_EVENT_IDX);
	vp->num_queues = info->num_queues;
	vp->nvectors = info->num_queues + 1;
	vp->config_vector = VIRTIO_MSI_NO_VECTOR;
	for (unsigned q = 0; q < vp->num_queues; q++) {
		vq_init(&vp->queues[q], vm, qs);
		vp->queue_vector[q] = VIRTIO_MSI_NO_VECTOR;
	}
	for (unsigned v = 0; v < vp->nvectors; v++)
		vp->msix[v].ctrl = MSIX_ENTRY_MASKED; /* masked at reset (§6.8.2.9) */
	if (info->config_len)
		memcpy(vp->config, info->config, info->config_len);
	vp->config_len = (uint32_t)info->config_len;
	r = pthread_mutex_init(&vp->lock, NULL);
	if (r)
		return -r;

	config_fill(vp);
	vp->pci.cfg[PCI_INTERRUPT_PIN] = 1; /* INTA# */
	vp->pci.bar_size[VIRTIO_PCI_BAR] = VIRTIO_PCI_BAR_SIZE;
	vp->pci.bar_size[VIRTIO_PCI_NOTIFY_BAR] = ZHV_PAGE_SIZE;
	vp->pci.bar_bell = 1u << VIRTIO_PCI_NOTIFY_BAR;
	vp->pci.ops = &virtio_pci_ops;
	vp->pci.opaque = vp;
	vp->pci.vm = vm;
	r = pci_add(vm, &vp->pci);
	if (r == 0) {
		/* Before the teardown: after a failure here the caller frees
		 * (vp), which no teardown may then see. */
		char name[sizeof(vm->snapshots[0].name)];
		r = -ENOSPC;
		for (unsigned n = 0; n < VM_MAX_TEARDOWNS && r == -ENOSPC; n++) {
			snprintf(name, sizeof(name), "virtio-%s%u", vp->name, n);
			bool taken = false;
			for (unsigned i = 0; i < vm->nsnapshots; i++)
				taken |= !strcmp(vm->snapshots[i].name, name);
			if (!taken)
				r = vm_add_snapshot(vm, name, 1, virtio_pci_snap_save,
				                    virtio_pci_snap_load, vp);
		}
	}
	if (r == 0)
		r = virtio_pci_start(vp, vm);
	if (r == 0)
		r = vm_add_teardown(vm, virtio_pci_teardown, vp);
	if (r < 0) {
		virtio_pci_stop(vp);
		zhv_port_destroy(vp->port);
		pthread_mutex_destroy(&vp->lock);
		return r;
	}
	return 0;
}

void virtio_pci_fini(struct virtio_pci *vp)
{
	virtio_pci_stop(vp);
	zhv_port_destroy(vp->port);
	vp->port = NULL;
	pthread_mutex_destroy(&vp->lock);
}
