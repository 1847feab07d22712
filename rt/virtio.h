/* virtio.h: a small virtio 1.x driver for test kernels: the modern PCI
 * transport (virtio 1.2 §4.1), device initialization (§3.1.1), split
 * virtqueues (§2.7) submitted and polled by the caller, and optional
 * MSI-X or INTx interrupts.
 *
 * Usage (polled):
 *     struct rt_virtio_dev d;
 *     static uint8_t qmem[RT_VIRTQ_MEM_SIZE(16)] __attribute__((aligned(4096)));
 *     struct rt_virtq vq;
 *     if (!rt_virtio_find(RT_VIRTIO_ID_BLOCK, 0, &d)) ...
 *     if (rt_virtio_init(&d, wanted_features) < 0) ...      (FEATURES_OK)
 *     if (rt_virtq_setup(&d, &vq, 0, 16, qmem) < 0) ...
 *     rt_virtio_driver_ok(&d);
 *     struct rt_vbuf out[] = {{&hdr, 16}}, in[] = {{buf, 512}, {&status, 1}};
 *     int head = rt_virtq_add(&vq, out, 1, in, 2);
 *     rt_virtq_kick(&vq);
 *     uint32_t id, len;
 *     if (!rt_virtq_wait(&vq, &id, &len, 1000000)) ...     (id == head)
 *
 * Identity-mapped guest (paging off), so buffer addresses are physical.
 * One CPU per queue; nothing here takes locks. */
#ifndef ZHV_TEST_RT_VIRTIO_H
#define ZHV_TEST_RT_VIRTIO_H

#include "rt.h"

/* Device types (virtio 1.2 §5); PCI device ID 0x1040 + type (§4.1.2). */
#define RT_VIRTIO_ID_NET 1
#define RT_VIRTIO_ID_BLOCK 2
#define RT_VIRTIO_ID_CONSOLE 3
#define RT_VIRTIO_ID_RNG 4
#define RT_VIRTIO_PCI_VENDOR 0x1AF4
#define RT_VIRTIO_PCI_DEVICE(type) (0x1040u + (type))

/* Device status (§2.1). */
#define RT_VIRTIO_ST_ACKNOWLEDGE 0x01
#define RT_VIRTIO_ST_DRIVER 0x02
#define RT_VIRTIO_ST_DRIVER_OK 0x04
#define RT_VIRTIO_ST_FEATURES_OK 0x08
#define RT_VIRTIO_ST_NEEDS_RESET 0x40
#define RT_VIRTIO_ST_FAILED 0x80

/* Reserved feature bits (§6). */
#define RT_VIRTIO_F_INDIRECT_DESC 28
#define RT_VIRTIO_F_EVENT_IDX 29
#define RT_VIRTIO_F_VERSION_1 32
#define RT_VIRTIO_BIT(n) (1ull << (n))

#define RT_VIRTIO_NO_VECTOR 0xFFFFu

/* Split virtqueue layout (§2.7). */
#define RT_VRING_DESC_F_NEXT 1
#define RT_VRING_DESC_F_WRITE 2
#define RT_VRING_DESC_F_INDIRECT 4
struct rt_vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
struct rt_vring_used_elem {
	uint32_t id, len;
};
/* Bytes of queue memory for (n) entries: descriptor table, driver (avail)
 * ring, device (used) ring; give it 4096-byte aligned. */
#define RT_VIRTQ_AVAIL_OFF(n) (16u * (n))
#define RT_VIRTQ_USED_OFF(n) ((RT_VIRTQ_AVAIL_OFF(n) + 6u + 2u * (n) + 3u) & ~3u)
#define RT_VIRTQ_MEM_SIZE(n) (RT_VIRTQ_USED_OFF(n) + 6u + 8u * (n))
#define RT_VIRTQ_MAX 256

struct rt_virtio_dev {
	unsigned slot;          /* PCI 00:slot.0 */
	uint16_t device_id;     /* PCI device ID */
	uint8_t irq_line;       /* PCI interrupt line: the IOAPIC pin (GSI) of INTA# */
	uintptr_t common;       /* common configuration (§4.1.4.3) */
	uintptr_t notify;       /* notification area (§4.1.4.4) */
	uint32_t notify_mult;
	uintptr_t isr;          /* ISR status (§4.1.4.5) */
	uintptr_t device;       /* device-specific configuration (§4.1.4.6) */
	uint32_t device_len;
	unsigned msix_cap;      /* config offset of the MSI-X capability, 0: none */
	uintptr_t msix_table;   /* MSI-X table address */
	unsigned msix_entries;
	uint64_t offered;       /* device features (after rt_virtio_init) */
	uint64_t features;      /* negotiated features (after rt_virtio_init) */
};

struct rt_virtq {
	struct rt_virtio_dev *dev;
	uint16_t index, size;
	volatile struct rt_vring_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[size], used_event */
	volatile uint16_t *used;  /* flags, idx, then rt_vring_used_elem ring[size] */
	uintptr_t notify_addr;
	uint16_t free_head, num_free;
	uint16_t avail_idx, last_used;
};

struct rt_vbuf {
	void *addr;
	uint32_t len;
};

/* rt_virtio_find: the (index)th virtio PCI device of (type) (RT_VIRTIO_ID_*,
 * or a PCI device ID such as 0x1041 for virtio-net): turns on its
 * memory decoding and bus mastering and locates its structures. False if
 * there is none or its capabilities are incomplete. */
bool rt_virtio_find(unsigned type, unsigned index, struct rt_virtio_dev *d);
/* rt_virtio_reset: write status 0 and wait until it reads 0. */
void rt_virtio_reset(struct rt_virtio_dev *d);
/* rt_virtio_init: reset, ACKNOWLEDGE, DRIVER, accept (wanted | VERSION_1)
 * & offered, FEATURES_OK. Returns 0, or -1 (status then has FAILED) when
 * the device lacks VERSION_1 or refuses FEATURES_OK. */
int rt_virtio_init(struct rt_virtio_dev *d, uint64_t wanted);
/* rt_virtio_init_features: the same, but accept exactly (features)
 * (VERSION_1 not added): for testing a device's feature checks. */
int rt_virtio_init_features(struct rt_virtio_dev *d, uint64_t features);
void rt_virtio_driver_ok(struct rt_virtio_dev *d);
uint8_t rt_virtio_status(struct rt_virtio_dev *d);
void rt_virtio_set_status(struct rt_virtio_dev *d, uint8_t status);
/* The common configuration's num_queues. */
uint16_t rt_virtio_num_queues(struct rt_virtio_dev *d);

/* Device-specific configuration (little-endian fields at (off)). */
uint8_t rt_virtio_cfg8(struct rt_virtio_dev *d, unsigned off);
uint16_t rt_virtio_cfg16(struct rt_virtio_dev *d, unsigned off);
uint32_t rt_virtio_cfg32(struct rt_virtio_dev *d, unsigned off);
uint64_t rt_virtio_cfg64(struct rt_virtio_dev *d, unsigned off);

/* rt_virtq_setup: queue (q) with at most (size) entries (a power of 2, at
 * most RT_VIRTQ_MAX; the device's maximum if smaller) in (mem)
 * (RT_VIRTQ_MEM_SIZE(size) bytes, 4096-aligned, zeroed here), then enable
 * it. Returns 0, or -1 if the queue does not exist. */
int rt_virtq_setup(struct rt_virtio_dev *d, struct rt_virtq *vq, unsigned q, unsigned size,
                   void *mem);
/* rt_virtq_add: make (nout) device-readable then (nin) device-writable
 * buffers one chain and offer it. Returns its head (the id the used ring
 * reports) or -1 if the queue is too full. Does not notify. */
int rt_virtq_add(struct rt_virtq *vq, const struct rt_vbuf *out, unsigned nout,
                 const struct rt_vbuf *in, unsigned nin);
/* rt_virtq_add_indirect: the same chain written into (table) (room for
 * nout + nin descriptors, 16-byte aligned, alive until the device used
 * it), offered as one ring descriptor with VRING_DESC_F_INDIRECT (needs
 * VIRTIO_F_INDIRECT_DESC negotiated). */
int rt_virtq_add_indirect(struct rt_virtq *vq, struct rt_vring_desc *table,
                          const struct rt_vbuf *out, unsigned nout, const struct rt_vbuf *in,
                          unsigned nin);
/* rt_virtq_kick: notify the device of queue (vq). */
void rt_virtq_kick(struct rt_virtq *vq);
/* rt_virtq_get: take one used element if there is one (its chain's
 * descriptors become free again). */
bool rt_virtq_get(struct rt_virtq *vq, uint32_t *id, uint32_t *len);
/* rt_virtq_wait: rt_virtq_get, polling for up to (timeout_us) (ACPI PM
 * timer). Interrupts stay as the caller set them. */
bool rt_virtq_wait(struct rt_virtq *vq, uint32_t *id, uint32_t *len, uint32_t timeout_us);
/* rt_virtq_used_idx: the device's used index as it is now. */
uint16_t rt_virtq_used_idx(struct rt_virtq *vq);

/* Interrupts. INTx: route dev->irq_line on the IOAPIC (rt/apic.h), read
 * the ISR (which clears it and lowers INTx) in the handler. MSI-X:
 * rt_virtio_msix_enable, rt_virtio_msix_route for each table entry, then
 * rt_virtq_set_vector / rt_virtio_set_config_vector (they return what the
 * device read back: RT_VIRTIO_NO_VECTOR if it refused). */
uint8_t rt_virtio_isr(struct rt_virtio_dev *d);
bool rt_virtio_msix_enable(struct rt_virtio_dev *d, bool enable);
void rt_virtio_msix_route(struct rt_virtio_dev *d, unsigned entry, unsigned apic_id,
                          unsigned vector);
void rt_virtio_msix_mask(struct rt_virtio_dev *d, unsigned entry, bool masked);
uint16_t rt_virtq_set_vector(struct rt_virtq *vq, uint16_t entry);
uint16_t rt_virtio_set_config_vector(struct rt_virtio_dev *d, uint16_t entry);

#endif /* ZHV_TEST_RT_VIRTIO_H */
