/* virtio.c: virtio 1.x over PCI with split virtqueues, for test kernels
 * (see virtio.h). */
#include "virtio.h"

#include "apic.h"
#include "pci.h"

/* clang-format off */
#define PCI_CAP_ID_VNDR  0x09
#define PCI_CAP_ID_MSIX  0x11
/* virtio_pci_cap (virtio 1.2 §4.1.4): cfg_type at +3, bar +4, offset +8,
 * length +12; the notify cap's multiplier at +16. */
#define CAP_COMMON  1
#define CAP_NOTIFY  2
#define CAP_ISR     3
#define CAP_DEVICE  4

/* Common configuration (§4.1.4.3). */
#define CC_DFSELECT  0x00
#define CC_DF        0x04
#define CC_GFSELECT  0x08
#define CC_GF        0x0C
#define CC_MSIX      0x10
#define CC_NUMQ      0x12
#define CC_STATUS    0x14
#define CC_Q_SELECT  0x16
#define CC_Q_SIZE    0x18
#define CC_Q_MSIX    0x1A
#define CC_Q_ENABLE  0x1C
#define CC_Q_NOFF    0x1E
#define CC_Q_DESC    0x20
#define CC_Q_DRIVER  0x28
#define CC_Q_DEVICE  0x30

/* MSI-X (PCI Local Bus 3.0 §6.8.2). */
#define MSIX_CTRL_ENABLE  0x8000u
#define MSIX_CTRL_MASKALL 0x4000u
#define MSIX_ENTRY_MASKED 1u
/* clang-format on */

static inline uint8_t rd8(uintptr_t a)
{
	return *(volatile uint8_t *)a;
}
static inline uint16_t rd16(uintptr_t a)
{
	return *(volatile uint16_t *)a;
}
static inline uint32_t rd32(uintptr_t a)
{
	return *(volatile uint32_t *)a;
}
static inline void wr8(uintptr_t a, uint8_t v)
{
	*(volatile uint8_t *)a = v;
}
static inline void wr16(uintptr_t a, uint16_t v)
{
	*(volatile uint16_t *)a = v;
}
static inline void wr32(uintptr_t a, uint32_t v)
{
	*(volatile uint32_t *)a = v;
}
static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

bool rt_virtio_find(unsigned type, unsigned index, struct rt_virtio_dev *d)
{
	memset(d, 0, sizeof(*d));
	uint16_t device_id = (uint16_t)(type >= 0x1040 ? type : RT_VIRTIO_PCI_DEVICE(type));
	int slot = rt_pci_find(RT_VIRTIO_PCI_VENDOR, device_id, index);
	if (slot < 0)
		return false;
	d->slot = (unsigned)slot;
	d->device_id = device_id;
	d->irq_line = rt_pci_read8(d->slot, RT_PCI_INTERRUPT_LINE);
	uint16_t cmd = rt_pci_read16(d->slot, RT_PCI_COMMAND);
	rt_pci_write16(d->slot, RT_PCI_COMMAND, cmd | RT_PCI_CMD_MEMORY | RT_PCI_CMD_MASTER);

	for (unsigned i = 0;; i++) {
		unsigned cap = rt_pci_find_cap(d->slot, PCI_CAP_ID_VNDR, i);
		if (!cap)
			break;
		uint8_t cfg_type = rt_pci_read8(d->slot, cap + 3);
		uintptr_t base = rt_pci_bar(d->slot, rt_pci_read8(d->slot, cap + 4));
		if (!base)
			continue;
		uintptr_t addr = base + rt_pci_read32(d->slot, cap + 8);
		uint32_t len = rt_pci_read32(d->slot, cap + 12);
		if (cfg_type == CAP_COMMON && !d->common) {
			d->common = addr;
		} else if (cfg_type == CAP_NOTIFY && !d->notify) {
			d->notify = addr;
			d->notify_mult = rt_pci_read32(d->slot, cap + 16);
		} else if (cfg_type == CAP_ISR && !d->isr) {
			d->isr = addr;
		} else if (cfg_type == CAP_DEVICE && !d->device) {
			d->device = addr;
			d->device_len = len;
		}
	}
	d->msix_cap = rt_pci_find_cap(d->slot, PCI_CAP_ID_MSIX, 0);
	if (d->msix_cap) {
		uint16_t ctrl = rt_pci_read16(d->slot, d->msix_cap + 2);
		uint32_t table = rt_pci_read32(d->slot, d->msix_cap + 4);
		uintptr_t base = rt_pci_bar(d->slot, table & 7);
		d->msix_entries = (ctrl & 0x7FFu) + 1;
		d->msix_table = base ? base + (table & ~7u) : 0;
		if (!d->msix_table)
			d->msix_cap = 0;
	}
	return d->common && d->notify && d->isr;
}

uint8_t rt_virtio_status(struct rt_virtio_dev *d)
{
	return rd8(d->common + CC_STATUS);
}

void rt_virtio_set_status(struct rt_virtio_dev *d, uint8_t status)
{
	wr8(d->common + CC_STATUS, status);
}

void rt_virtio_reset(struct rt_virtio_dev *d)
{
	rt_virtio_set_status(d, 0);
	for (unsigned i = 0; i < 1000 && rt_virtio_status(d); i++)
		rt_pause();
}

uint16_t rt_virtio_num_queues(struct rt_virtio_dev *d)
{
	return rd16(d->common + CC_NUMQ);
}

static uint64_t read_features(uintptr_t cc, unsigned sel_reg, unsigned val_reg)
{
	wr32(cc + sel_reg, 0);
	uint32_t lo = rd32(cc + val_reg);
	wr32(cc + sel_reg, 1);
	uint32_t hi = rd32(cc + val_reg);
	return (uint64_t)hi << 32 | lo;
}

int rt_virtio_init_features(struct rt_virtio_dev *d, uint64_t features)
{
	uintptr_t cc = d->common;
	rt_virtio_reset(d);
	rt_virtio_set_status(d, RT_VIRTIO_ST_ACKNOWLEDGE);
	rt_virtio_set_status(d, RT_VIRTIO_ST_ACKNOWLEDGE | RT_VIRTIO_ST_DRIVER);
	d->offered = read_features(cc, CC_DFSELECT, CC_DF);
	wr32(cc + CC_GFSELECT, 0);
	wr32(cc + CC_GF, (uint32_t)features);
	wr32(cc + CC_GFSELECT, 1);
	wr32(cc + CC_GF, (uint32_t)(features >> 32));
	d->features = features;
	rt_virtio_set_status(d, RT_VIRTIO_ST_ACKNOWLEDGE | RT_VIRTIO_ST_DRIVER |
	                            RT_VIRTIO_ST_FEATURES_OK);
	if (!(rt_virtio_status(d) & RT_VIRTIO_ST_FEATURES_OK)) {
		rt_virtio_set_status(d, rt_virtio_status(d) | RT_VIRTIO_ST_FAILED);
		return -1;
	}
	return 0;
}

int rt_virtio_init(struct rt_virtio_dev *d, uint64_t wanted)
{
	uintptr_t cc = d->common;
	rt_virtio_reset(d);
	uint64_t offered = read_features(cc, CC_DFSELECT, CC_DF);
	if (!(offered & RT_VIRTIO_BIT(RT_VIRTIO_F_VERSION_1))) {
		rt_virtio_set_status(d, RT_VIRTIO_ST_FAILED);
		d->offered = offered;
		return -1;
	}
	return rt_virtio_init_features(d, (wanted | RT_VIRTIO_BIT(RT_VIRTIO_F_VERSION_1)) & offered);
}

void rt_virtio_driver_ok(struct rt_virtio_dev *d)
{
	rt_virtio_set_status(d, rt_virtio_status(d) | RT_VIRTIO_ST_DRIVER_OK);
}

uint8_t rt_virtio_cfg8(struct rt_virtio_dev *d, unsigned off)
{
	return rd8(d->device + off);
}

uint16_t rt_virtio_cfg16(struct rt_virtio_dev *d, unsigned off)
{
	return rd16(d->device + off);
}

uint32_t rt_virtio_cfg32(struct rt_virtio_dev *d, unsigned off)
{
	return rd32(d->device + off);
}

/* §4.1.3.1: a 64-bit field is read as two 32-bit halves; retry if the
 * configuration generation changed in between (§2.5.1). */
uint64_t rt_virtio_cfg64(struct rt_virtio_dev *d, unsigned off)
{
	for (;;) {
		uint8_t gen = rd8(d->common + 0x15);
		uint32_t lo = rd32(d->device + off), hi = rd32(d->device + off + 4);
		if (rd8(d->common + 0x15) == gen)
			return (uint64_t)hi << 32 | lo;
	}
}

int rt_virtq_setup(struct rt_virtio_dev *d, struct rt_virtq *vq, unsigned q, unsigned size,
                   void *mem)
{
	uintptr_t cc = d->common;
	wr16(cc + CC_Q_SELECT, (uint16_t)q);
	unsigned max = rd16(cc + CC_Q_SIZE);
	if (max == 0 || size == 0)
		return -1;
	if (size > max)
		size = max;
	if (size > RT_VIRTQ_MAX)
		size = RT_VIRTQ_MAX;
	while (size & (size - 1)) /* a power of 2 */
		size &= size - 1;
	memset(mem, 0, RT_VIRTQ_MEM_SIZE(size));
	uintptr_t base = (uintptr_t)mem;
	vq->dev = d;
	vq->index = (uint16_t)q;
	vq->size = (uint16_t)size;
	vq->desc = (volatile struct rt_vring_desc *)base;
	vq->avail = (volatile uint16_t *)(base + RT_VIRTQ_AVAIL_OFF(size));
	vq->used = (volatile uint16_t *)(base + RT_VIRTQ_USED_OFF(size));
	for (unsigned i = 0; i < size; i++)
		vq->desc[i].next = (uint16_t)(i + 1);
	vq->free_head = 0;
	vq->num_free = (uint16_t)size;
	vq->avail_idx = vq->last_used = 0;

	wr16(cc + CC_Q_SIZE, (uint16_t)size);
	wr32(cc + CC_Q_DESC, (uint32_t)base);
	wr32(cc + CC_Q_DESC + 4, 0);
	wr32(cc + CC_Q_DRIVER, (uint32_t)(base + RT_VIRTQ_AVAIL_OFF(size)));
	wr32(cc + CC_Q_DRIVER + 4, 0);
	wr32(cc + CC_Q_DEVICE, (uint32_t)(base + RT_VIRTQ_USED_OFF(size)));
	wr32(cc + CC_Q_DEVICE + 4, 0);
	vq->notify_addr = d->notify + (uintptr_t)rd16(cc + CC_Q_NOFF) * d->notify_mult;
	wr16(cc + CC_Q_ENABLE, 1);
	return rd16(cc + CC_Q_ENABLE) == 1 ? 0 : -1;
}

/* Make chain (head) available to the device (2.7.13). */
static int publish(struct rt_virtq *vq, uint16_t head)
{
	vq->avail[2 + (vq->avail_idx & (vq->size - 1))] = head;
	barrier();
	vq->avail_idx++;
	vq->avail[1] = vq->avail_idx;
	barrier();
	return head;
}

int rt_virtq_add(struct rt_virtq *vq, const struct rt_vbuf *out, unsigned nout,
                 const struct rt_vbuf *in, unsigned nin)
{
	unsigned n = nout + nin;
	if (n == 0 || n > vq->num_free)
		return -1;
	uint16_t head = vq->free_head, idx = head;
	for (unsigned i = 0; i < n; i++) {
		const struct rt_vbuf *b = i < nout ? &out[i] : &in[i - nout];
		volatile struct rt_vring_desc *dsc = &vq->desc[idx];
		dsc->addr = (uint32_t)(uintptr_t)b->addr;
		dsc->len = b->len;
		dsc->flags = (uint16_t)((i < nout ? 0 : RT_VRING_DESC_F_WRITE) |
		                        (i + 1 < n ? RT_VRING_DESC_F_NEXT : 0));
		idx = dsc->next; /* the free list is chained through next */
	}
	vq->free_head = idx;
	vq->num_free = (uint16_t)(vq->num_free - n);
	return publish(vq, head);
}

int rt_virtq_add_indirect(struct rt_virtq *vq, struct rt_vring_desc *table,
                          const struct rt_vbuf *out, unsigned nout, const struct rt_vbuf *in,
                          unsigned nin)
{
	unsigned n = nout + nin;
	if (n == 0 || vq->num_free < 1)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		const struct rt_vbuf *b = i < nout ? &out[i] : &in[i - nout];
		table[i].addr = (uint32_t)(uintptr_t)b->addr;
		table[i].len = b->len;
		table[i].flags = (uint16_t)((i < nout ? 0 : RT_VRING_DESC_F_WRITE) |
		                            (i + 1 < n ? RT_VRING_DESC_F_NEXT : 0));
		table[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
	}
	uint16_t head = vq->free_head;
	volatile struct rt_vring_desc *dsc = &vq->desc[head];
	vq->free_head = dsc->next;
	vq->num_free--;
	dsc->addr = (uint32_t)(uintptr_t)table;
	dsc->len = n * (uint32_t)sizeof(struct rt_vring_desc);
	dsc->flags = RT_VRING_DESC_F_INDIRECT;
	return publish(vq, head);
}

void rt_virtq_kick(struct rt_virtq *vq)
{
	barrier();
	wr16(vq->notify_addr, vq->index);
}

uint16_t rt_virtq_used_idx(struct rt_virtq *vq)
{
	return vq->used[1];
}

bool rt_virtq_get(struct rt_virtq *vq, uint32_t *id, uint32_t *len)
{
	if (vq->used[1] == vq->last_used)
		return false;
	barrier();
	volatile struct rt_vring_used_elem *ring =
		(volatile struct rt_vring_used_elem *)(vq->used + 2);
	volatile struct rt_vring_used_elem *e = &ring[vq->last_used & (vq->size - 1)];
	uint32_t head = e->id, l = e->len;
	vq->last_used++;
	if (id)
		*id = head;
	if (len)
		*len = l;
	if (head >= vq->size)
		return true; /* a bogus id from the device: the caller's check fails */
	/* Give the chain back: walk it to its last descriptor. */
	uint16_t i = (uint16_t)head;
	unsigned n = 1;
	while ((vq->desc[i].flags & RT_VRING_DESC_F_NEXT) && n < vq->size) {
		i = vq->desc[i].next;
		n++;
	}
	vq->desc[i].next = vq->free_head;
	vq->free_head = (uint16_t)head;
	vq->num_free = (uint16_t)(vq->num_free + n);
	return true;
}

bool rt_virtq_wait(struct rt_virtq *vq, uint32_t *id, uint32_t *len, uint32_t timeout_us)
{
	uint32_t t0 = rt_pmtimer();
	for (;;) {
		if (rt_virtq_get(vq, id, len))
			return true;
		if (rt_us_since(t0) >= timeout_us)
			return rt_virtq_get(vq, id, len);
		rt_pause();
	}
}

uint8_t rt_virtio_isr(struct rt_virtio_dev *d)
{
	return rd8(d->isr);
}

bool rt_virtio_msix_enable(struct rt_virtio_dev *d, bool enable)
{
	if (!d->msix_cap)
		return false;
	uint16_t ctrl = rt_pci_read16(d->slot, d->msix_cap + 2);
	ctrl = (uint16_t)(enable ? (ctrl | MSIX_CTRL_ENABLE) & ~MSIX_CTRL_MASKALL
	                         : ctrl & ~MSIX_CTRL_ENABLE);
	rt_pci_write16(d->slot, d->msix_cap + 2, ctrl);
	return ((rt_pci_read16(d->slot, d->msix_cap + 2) & MSIX_CTRL_ENABLE) != 0) == enable;
}

void rt_virtio_msix_route(struct rt_virtio_dev *d, unsigned entry, unsigned apic_id,
                          unsigned vector)
{
	if (!d->msix_table || entry >= d->msix_entries)
		return;
	uintptr_t e = d->msix_table + 16u * entry;
	wr32(e + 0, RT_LAPIC_BASE | (uint32_t)apic_id << 12); /* physical destination */
	wr32(e + 4, 0);
	wr32(e + 8, vector & 0xFFu); /* fixed delivery, edge */
	wr32(e + 12, 0);             /* unmasked */
}

void rt_virtio_msix_mask(struct rt_virtio_dev *d, unsigned entry, bool masked)
{
	if (!d->msix_table || entry >= d->msix_entries)
		return;
	wr32(d->msix_table + 16u * entry + 12, masked ? MSIX_ENTRY_MASKED : 0);
}

uint16_t rt_virtq_set_vector(struct rt_virtq *vq, uint16_t entry)
{
	uintptr_t cc = vq->dev->common;
	wr16(cc + CC_Q_SELECT, vq->index);
	wr16(cc + CC_Q_MSIX, entry);
	return rd16(cc + CC_Q_MSIX);
}

uint16_t rt_virtio_set_config_vector(struct rt_virtio_dev *d, uint16_t entry)
{
	wr16(d->common + CC_MSIX, entry);
	return rd16(d->common + CC_MSIX);
}
