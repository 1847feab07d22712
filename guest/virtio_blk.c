/* virtio_blk.c: find a virtio-blk device on PCI bus 0 and read sector 0
 * with one polled request on one split virtqueue (virtio 1.1: PCI transport
 * 4.1, initialization 3.1.1, split virtqueues 2.6, block device 5.2). */
#include "guest.h"

/* ---- PCI configuration mechanism #1 ---------------------------------------- */
#define PCI_ADDR 0xCF8
#define PCI_DATA 0xCFC

static uint32_t pci_read32(unsigned slot, unsigned off)
{
	outl(PCI_ADDR, 0x80000000u | slot << 11 | (off & 0xFC));
	return inl(PCI_DATA);
}

static void pci_write32(unsigned slot, unsigned off, uint32_t v)
{
	outl(PCI_ADDR, 0x80000000u | slot << 11 | (off & 0xFC));
	outl(PCI_DATA, v);
}

static uint8_t pci_read8(unsigned slot, unsigned off)
{
	return (uint8_t)(pci_read32(slot, off) >> (8 * (off & 3)));
}

/* ---- virtio over PCI --------------------------------------------------------- */
/* clang-format off */
#define VIRTIO_VENDOR          0x1AF4
#define VIRTIO_BLK_MODERN      0x1042
#define PCI_CAP_VENDOR         0x09
#define VIRTIO_PCI_CAP_COMMON  1
#define VIRTIO_PCI_CAP_NOTIFY  2
#define VIRTIO_PCI_CAP_DEVICE  4

/* common configuration structure (4.1.4.3) */
#define CC_DFSELECT   0x00
#define CC_DF         0x04
#define CC_GFSELECT   0x08
#define CC_GF         0x0C
#define CC_STATUS     0x14
#define CC_Q_SELECT   0x16
#define CC_Q_SIZE     0x18
#define CC_Q_ENABLE   0x1C
#define CC_Q_NOTIFY   0x1E
#define CC_Q_DESC     0x20
#define CC_Q_DRIVER   0x28
#define CC_Q_DEVICE   0x30

#define ST_ACKNOWLEDGE 1
#define ST_DRIVER      2
#define ST_DRIVER_OK   4
#define ST_FEATURES_OK 8

#define VIRTIO_F_VERSION_1_HI 1u /* feature bit 32 */
#define VRING_DESC_F_NEXT     1
#define VRING_DESC_F_WRITE    2
#define VIRTIO_BLK_T_IN       0
#define QUEUE_SIZE            8
/* clang-format on */

struct vring_desc {
	uint32_t addr_lo, addr_hi;
	uint32_t len;
	uint16_t flags, next;
};

/* One page: descriptors, the driver (avail) ring and the device (used)
 * ring, each suitably aligned (2.6: 16, 2 and 4 bytes). */
static struct {
	struct vring_desc desc[QUEUE_SIZE];
	uint8_t pad0[0x400 - QUEUE_SIZE * sizeof(struct vring_desc)];
	struct {
		uint16_t flags, idx, ring[QUEUE_SIZE], used_event;
	} avail;
	uint8_t pad1[0x400 - 2 * (QUEUE_SIZE + 3)];
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[QUEUE_SIZE];
		uint16_t avail_event;
	} used;
} vq __attribute__((aligned(4096)));

static struct {
	uint32_t type, reserved;
	uint32_t sector_lo, sector_hi;
} req_header;
static uint8_t req_data[512] __attribute__((aligned(512)));
static volatile uint8_t req_status;

struct virtio_dev {
	unsigned slot;
	uintptr_t common, notify, device;
	uint32_t notify_mult;
};

static uintptr_t bar_address(unsigned slot, unsigned bar)
{
	if (bar > 5)
		return 0;
	uint32_t lo = pci_read32(slot, 0x10 + 4 * bar);
	if (lo & 1)
		return 0; /* an I/O BAR: not for modern virtio structures */
	if (((lo >> 1) & 3) == 2 && (bar == 5 || pci_read32(slot, 0x14 + 4 * bar) != 0))
		return 0; /* 64-bit BAR above 4 GiB: out of a 32-bit guest's reach */
	return lo & ~0xFu;
}

/* Walk the capability list for the virtio structures (4.1.4). */
static bool find_structures(struct virtio_dev *d)
{
	if (!(pci_read32(d->slot, 0x04) & (1u << 20))) /* status: capability list */
		return false;
	unsigned ptr = pci_read8(d->slot, 0x34) & 0xFC;
	for (unsigned guard = 0; ptr && guard < 48; guard++) {
		uint32_t head = pci_read32(d->slot, ptr);
		if ((head & 0xFF) == PCI_CAP_VENDOR) {
			unsigned type = (head >> 24) & 0xFF;
			uintptr_t base = bar_address(d->slot, pci_read8(d->slot, ptr + 4));
			uintptr_t addr = base ? base + pci_read32(d->slot, ptr + 8) : 0;
			if (type == VIRTIO_PCI_CAP_COMMON && !d->common)
				d->common = addr;
			else if (type == VIRTIO_PCI_CAP_NOTIFY && !d->notify) {
				d->notify = addr;
				d->notify_mult = pci_read32(d->slot, ptr + 16);
			} else if (type == VIRTIO_PCI_CAP_DEVICE && !d->device)
				d->device = addr;
		}
		ptr = (head >> 8) & 0xFC;
	}
	return d->common && d->notify;
}

static uint8_t rd8(uintptr_t a) { return *(volatile uint8_t *)a; }
static uint16_t rd16(uintptr_t a) { return *(volatile uint16_t *)a; }
static void wr8(uintptr_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static void wr16(uintptr_t a, uint16_t v) { *(volatile uint16_t *)a = v; }

static const char *blk_read_sector0(struct virtio_dev *d)
{
	uintptr_t cc = d->common;
	wr8(cc + CC_STATUS, 0); /* reset */
	for (unsigned i = 0; i < 1000 && rd8(cc + CC_STATUS); i++)
		cpu_relax();
	wr8(cc + CC_STATUS, ST_ACKNOWLEDGE);
	wr8(cc + CC_STATUS, ST_ACKNOWLEDGE | ST_DRIVER);
	mmio_write32(cc + CC_DFSELECT, 1);
	if (!(mmio_read32(cc + CC_DF) & VIRTIO_F_VERSION_1_HI))
		return "device lacks VIRTIO_F_VERSION_1";
	mmio_write32(cc + CC_GFSELECT, 0);
	mmio_write32(cc + CC_GF, 0);
	mmio_write32(cc + CC_GFSELECT, 1);
	mmio_write32(cc + CC_GF, VIRTIO_F_VERSION_1_HI);
	wr8(cc + CC_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK);
	if (!(rd8(cc + CC_STATUS) & ST_FEATURES_OK))
		return "features not accepted";

	wr16(cc + CC_Q_SELECT, 0);
	uint16_t max = rd16(cc + CC_Q_SIZE);
	if (max == 0)
		return "no request queue";
	if (max > QUEUE_SIZE)
		wr16(cc + CC_Q_SIZE, QUEUE_SIZE);
	mmio_write32(cc + CC_Q_DESC, (uint32_t)(uintptr_t)vq.desc);
	mmio_write32(cc + CC_Q_DESC + 4, 0);
	mmio_write32(cc + CC_Q_DRIVER, (uint32_t)(uintptr_t)&vq.avail);
	mmio_write32(cc + CC_Q_DRIVER + 4, 0);
	mmio_write32(cc + CC_Q_DEVICE, (uint32_t)(uintptr_t)&vq.used);
	mmio_write32(cc + CC_Q_DEVICE + 4, 0);
	uint16_t notify_off = rd16(cc + CC_Q_NOTIFY);
	wr16(cc + CC_Q_ENABLE, 1);
	wr8(cc + CC_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);

	/* One request: header (device reads), data and status (it writes). */
	req_header.type = VIRTIO_BLK_T_IN;
	req_header.sector_lo = req_header.sector_hi = 0;
	req_status = 0xFF;
	vq.desc[0] = (struct vring_desc){(uint32_t)(uintptr_t)&req_header, 0, sizeof(req_header),
	                                 VRING_DESC_F_NEXT, 1};
	vq.desc[1] = (struct vring_desc){(uint32_t)(uintptr_t)req_data, 0, sizeof(req_data),
	                                 VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2};
	vq.desc[2] = (struct vring_desc){(uint32_t)(uintptr_t)&req_status, 0, 1,
	                                 VRING_DESC_F_WRITE, 0};
	vq.avail.ring[0] = 0;
	barrier();
	*(volatile uint16_t *)&vq.avail.idx = 1;
	barrier();
	wr16(d->notify + (uintptr_t)notify_off * d->notify_mult, 0);

	for (unsigned i = 0; i < 500000 && *(volatile uint16_t *)&vq.used.idx == 0; i++)
		cpu_relax();
	if (*(volatile uint16_t *)&vq.used.idx == 0)
		return "no answer from the device";
	if (req_status != 0)
		return "the read failed";
	return NULL;
}

void virtio_blk_probe(void)
{
	for (unsigned slot = 0; slot < 32; slot++) {
		uint32_t id = pci_read32(slot, 0);
		if ((id & 0xFFFF) != VIRTIO_VENDOR || (id >> 16) != VIRTIO_BLK_MODERN)
			continue;
		struct virtio_dev d = {.slot = slot};
		/* Memory space and bus mastering on (firmware may have done so). */
		pci_write32(slot, 0x04, (pci_read32(slot, 0x04) & 0xFFFF) | 0x6);
		const char *err = find_structures(&d) ? blk_read_sector0(&d)
		                                      : "no virtio structures in reach";
		if (err) {
			console_printf("zhv guest: virtio-blk at 00:%x.0: %s\n", slot, err);
			return;
		}
		char text[17];
		for (int i = 0; i < 16; i++) {
			uint8_t c = req_data[i];
			text[i] = c >= 0x20 && c < 0x7F ? (char)c : '.';
		}
		text[16] = '\0';
		console_printf("disk: %s\n", text);
		return;
	}
	console_printf("no disk\n");
}
