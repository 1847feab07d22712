/* ioapic.c: the I/O APIC at VM_IOAPIC_BASE (version 0x20, 24 pins): redirection entries turn input edges into MSIs to KVM's local APICs.
 * Each entry's message is also given to libzhv as the pin's route
 * (zhv_guest_set_irq_route), so that KVM reports local-APIC EOIs of its
 * level-triggered vectors (vcpu_thread.c -> ioapic_eoi), as a PC's EOI
 * broadcast reaches its IOAPICs. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../devices.h"
#include "../vm.h"

/* clang-format off */
#define IOAPIC_MMIO_LEN   0x1000u /* one page (libzhv MEM traps are page-granular) */

/* Direct registers (Intel 82093AA datasheet §3.1; EOI register as in the
 * version 0x20 IOAPICs of ICH chipsets). */
#define IOAPIC_IOREGSEL   0x00
#define IOAPIC_IOWIN      0x10
#define IOAPIC_EOI        0x40

/* Indirect registers (82093AA §3.2). */
#define IOAPIC_REG_ID     0x00 /* bits 27-24: APIC ID */
#define IOAPIC_REG_VER    0x01
#define IOAPIC_REG_ARB    0x02
#define IOAPIC_REG_REDIR  0x10 /* 0x10 + 2 * pin: low dword, +1: high dword */
#define IOAPIC_VERSION    (0x20u | (VM_IOAPIC_PINS - 1u) << 16) /* 0x00170020 */
#define IOAPIC_ID_MASK    0x0F000000u

/* Redirection table entry (82093AA §3.2.4). */
#define IOAPIC_RTE_VECTOR       0x000000FFull
#define IOAPIC_RTE_DELMODE(e)   (((e) >> 8) & 7)
#define IOAPIC_RTE_DESTMODE     (1ull << 11) /* 1: logical */
#define IOAPIC_RTE_DELIVS       (1ull << 12) /* delivery status (RO) */
#define IOAPIC_RTE_POLARITY     (1ull << 13) /* 1: active low (recorded) */
#define IOAPIC_RTE_REMOTE_IRR   (1ull << 14) /* RO: level interrupt in service */
#define IOAPIC_RTE_LEVEL        (1ull << 15)
#define IOAPIC_RTE_MASKED       (1ull << 16)
#define IOAPIC_RTE_RO           (IOAPIC_RTE_DELIVS | IOAPIC_RTE_REMOTE_IRR)
#define IOAPIC_RTE_LOW_RW       0x0001AFFFull /* vector..mask less the RO bits */
#define IOAPIC_RTE_HIGH_RW      0xFFFE0000u   /* dest 63:56, extended dest 55:49 */
#define IOAPIC_RTE_DEST(e)      ((uint32_t)((e) >> 56))
#define IOAPIC_RTE_EXT_DEST(e)  ((uint32_t)((e) >> 49) & 0x7F)

/* MSI format (Intel SDM Vol. 3 §11.11.1, §11.11.2). */
#define IOAPIC_MSI_ADDR_BASE    0xFEE00000ull
#define IOAPIC_MSI_ADDR_DEST(d) ((uint64_t)(d) << 12)
#define IOAPIC_MSI_ADDR_EXT(d)  ((uint64_t)(d) << 5) /* virt_destid_8_14 (KVM ext dest ID) */
#define IOAPIC_MSI_ADDR_LOGICAL (1ull << 2)
#define IOAPIC_MSI_DATA_LEVEL   (1u << 15)           /* trigger mode */
#define IOAPIC_MSI_DATA_ASSERT  (1u << 14)

/* ISA IRQ 0 is wired to pin 2 (MADT Interrupt Source Override, MP table
 * I/O interrupt entry), as on every PC with an IOAPIC. */
#define IOAPIC_ISA_TIMER_PIN    2u
/* clang-format on */

/* The route libzhv has for a pin (what zhv_guest_set_irq_route was last
 * told successfully). */
struct ioapic_route {
	bool enabled;
	uint64_t addr;
	uint32_t data;
};

struct ioapic {
	pthread_mutex_t lock; /* everything below; MSIs are sent with it held */
	struct vm *vm;
	uint32_t ioregsel;
	uint32_t id;
	uint32_t lines; /* input levels, bit per pin */
	bool shut_down;
	uint64_t rte[VM_IOAPIC_PINS];
	struct ioapic_route route[VM_IOAPIC_PINS];
};

/* The MSI that entry (e) sends. */
static void ioapic_msi(uint64_t e, uint64_t *addr, uint32_t *data)
{
	*addr = IOAPIC_MSI_ADDR_BASE | IOAPIC_MSI_ADDR_DEST(IOAPIC_RTE_DEST(e)) |
	        IOAPIC_MSI_ADDR_EXT(IOAPIC_RTE_EXT_DEST(e)) |
	        ((e & IOAPIC_RTE_DESTMODE) ? IOAPIC_MSI_ADDR_LOGICAL : 0);
	*data = (uint32_t)(e & IOAPIC_RTE_VECTOR) | IOAPIC_RTE_DELMODE(e) << 8;
	if (e & IOAPIC_RTE_LEVEL)
		*data |= IOAPIC_MSI_DATA_LEVEL | IOAPIC_MSI_DATA_ASSERT;
}

/* Tell libzhv pin (pin)'s message after its entry changed, if the route
 * changes. The route is enabled while the entry is unmasked, and also
 * while a masked level entry is still in service (Remote-IRR set): a guest
 * may mask an entry before it EOIs (Linux does so for oneshot interrupts),
 * and without the route that EOI would not reach ioapic_eoi, leaving
 * Remote-IRR set for good. Lock held. */
static void ioapic_sync_route(struct ioapic *io, unsigned pin)
{
	uint64_t e = io->rte[pin];
	struct ioapic_route r = {0};
	r.enabled = !(e & IOAPIC_RTE_MASKED) ||
	            ((e & IOAPIC_RTE_LEVEL) && (e & IOAPIC_RTE_REMOTE_IRR));
	if (r.enabled)
		ioapic_msi(e, &r.addr, &r.data);
	struct ioapic_route *cur = &io->route[pin];
	if (cur->enabled == r.enabled && cur->addr == r.addr && cur->data == r.data)
		return;
	if (io->shut_down || !io->vm->guest)
		return;
	/* On failure (logged by libzhv) the old route stays and is retried
	 * at the entry's next change; interrupts are still delivered, only
	 * the EOI of a level one may go unreported. */
	if (zhv_guest_set_irq_route(io->vm->guest, pin, r.addr, r.data, r.enabled) == ZHV_OK)
		*cur = r;
}

/* Send pin (pin)'s interrupt as its entry describes. Lock held. */
static void ioapic_deliver(struct ioapic *io, unsigned pin)
{
	uint64_t addr;
	uint32_t data;
	ioapic_msi(io->rte[pin], &addr, &data);
	if (io->rte[pin] & IOAPIC_RTE_LEVEL)
		io->rte[pin] |= IOAPIC_RTE_REMOTE_IRR;
	if (io->shut_down || !io->vm->guest)
		return;
	/* A failed MSI is a lost interrupt, as on a bus error: nothing to do. */
	zhv_status_t st = zhv_guest_signal_msi(io->vm->guest, addr, data);
	(void)st;
}

void ioapic_set_irq(struct ioapic *io, unsigned irq, int level)
{
	if (!io)
		return;
	unsigned pin = irq == 0 ? IOAPIC_ISA_TIMER_PIN : irq;
	if (pin >= VM_IOAPIC_PINS)
		return;
	uint32_t bit = 1u << pin;
	pthread_mutex_lock(&io->lock);
	bool was = io->lines & bit;
	if (level)
		io->lines |= bit;
	else
		io->lines &= ~bit;
	/* Edge-like for both trigger modes: a rising input delivers. A level
	 * entry also sets Remote-IRR, and the local APIC's EOI (ioapic_eoi)
	 * clears it and delivers again while the input stays high; a new
	 * rising edge does not wait for that EOI. That keeps interrupts
	 * coming where KVM reports the EOI late: kvm_pvm EOIs an interrupt
	 * when it injects it, and reports that EOI only at the vCPU's next
	 * pass through KVM's entry path, not while the vCPU is halted. */
	if (level && !was && !(io->rte[pin] & IOAPIC_RTE_MASKED))
		ioapic_deliver(io, pin);
	pthread_mutex_unlock(&io->lock);
}

void ioapic_shutdown(struct ioapic *io)
{
	if (!io)
		return;
	pthread_mutex_lock(&io->lock);
	io->shut_down = true;
	pthread_mutex_unlock(&io->lock);
}

/* EOI register write or a local APIC's EOI broadcast for (vector): every
 * entry with that vector and Remote-IRR set (only level entries set it)
 * clears it and, if its input is still high and the entry unmasked,
 * delivers again. Lock held. */
static void ioapic_eoi_locked(struct ioapic *io, uint8_t vector)
{
	for (unsigned pin = 0; pin < VM_IOAPIC_PINS; pin++) {
		uint64_t e = io->rte[pin];
		if (!(e & IOAPIC_RTE_REMOTE_IRR) || (e & IOAPIC_RTE_VECTOR) != vector)
			continue;
		io->rte[pin] &= ~IOAPIC_RTE_REMOTE_IRR;
		if ((e & IOAPIC_RTE_LEVEL) && !(e & IOAPIC_RTE_MASKED) && (io->lines & (1u << pin)))
			ioapic_deliver(io, pin);
		ioapic_sync_route(io, pin); /* a masked entry left service */
	}
}

void ioapic_eoi(struct ioapic *io, uint8_t vector)
{
	if (!io)
		return;
	pthread_mutex_lock(&io->lock);
	ioapic_eoi_locked(io, vector);
	pthread_mutex_unlock(&io->lock);
}

void ioapic_reset(struct ioapic *io)
{
	if (!io)
		return;
	pthread_mutex_lock(&io->lock);
	io->id = 0;
	io->ioregsel = 0;
	for (unsigned pin = 0; pin < VM_IOAPIC_PINS; pin++) {
		io->rte[pin] = IOAPIC_RTE_MASKED; /* 82093AA: masked after reset */
		ioapic_sync_route(io, pin);
	}
	pthread_mutex_unlock(&io->lock);
}

static uint32_t ioapic_read_indirect(const struct ioapic *io, uint32_t reg)
{
	switch (reg) {
	case IOAPIC_REG_ID:
		return io->id;
	case IOAPIC_REG_VER:
		return IOAPIC_VERSION;
	case IOAPIC_REG_ARB:
		return io->id; /* arbitration ID = APIC ID after reset */
	default:
		break;
	}
	if (reg >= IOAPIC_REG_REDIR && reg < IOAPIC_REG_REDIR + 2 * VM_IOAPIC_PINS) {
		uint64_t e = io->rte[(reg - IOAPIC_REG_REDIR) / 2];
		return (reg & 1) ? (uint32_t)(e >> 32) : (uint32_t)e;
	}
	return 0;
}

static void ioapic_write_indirect(struct ioapic *io, uint32_t reg, uint32_t v)
{
	if (reg == IOAPIC_REG_ID) {
		io->id = v & IOAPIC_ID_MASK;
		return;
	}
	if (reg < IOAPIC_REG_REDIR || reg >= IOAPIC_REG_REDIR + 2 * VM_IOAPIC_PINS)
		return; /* version, arbitration, reserved: read-only */
	unsigned pin = (reg - IOAPIC_REG_REDIR) / 2;
	uint64_t old = io->rte[pin];
	if (reg & 1) {
		io->rte[pin] = (old & 0xFFFFFFFFull) | (uint64_t)(v & IOAPIC_RTE_HIGH_RW) << 32;
		ioapic_sync_route(io, pin);
		return;
	}
	uint64_t e = (old & ~0xFFFFFFFFull) | (old & IOAPIC_RTE_RO) | (v & IOAPIC_RTE_LOW_RW);
	if (!(e & IOAPIC_RTE_LEVEL)) /* reprogrammed to edge: no level in service */
		e &= ~IOAPIC_RTE_REMOTE_IRR;
	io->rte[pin] = e;
	ioapic_sync_route(io, pin);
	/* Unmasking a level entry whose input is high and not in service
	 * delivers it (82093AA: the level is sampled, not its edge). */
	if ((old & IOAPIC_RTE_MASKED) && !(e & IOAPIC_RTE_MASKED) && (e & IOAPIC_RTE_LEVEL) &&
	    !(e & IOAPIC_RTE_REMOTE_IRR) && (io->lines & (1u << pin)))
		ioapic_deliver(io, pin);
}

static uint32_t ioapic_read_direct(const struct ioapic *io, uint64_t reg)
{
	switch (reg) {
	case IOAPIC_IOREGSEL:
		return io->ioregsel;
	case IOAPIC_IOWIN:
		return ioapic_read_indirect(io, io->ioregsel);
	default: /* EOI is write-only; the rest is reserved */
		return 0;
	}
}

static void ioapic_write_direct(struct ioapic *io, uint64_t reg, uint32_t v)
{
	switch (reg) {
	case IOAPIC_IOREGSEL:
		io->ioregsel = v & 0xFF;
		break;
	case IOAPIC_IOWIN:
		ioapic_write_indirect(io, io->ioregsel, v);
		break;
	default: /* EOI is handled by the caller; the rest is reserved */
		break;
	}
}

/* The registers are 32 bits wide at 16-byte strides. Narrower accesses
 * see or change their bytes of the dword (a write merges with the current
 * value); an 8-byte access covers two dwords. */
static void ioapic_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                          unsigned size)
{
	struct ioapic *io = opaque;
	pthread_mutex_lock(&io->lock);
	unsigned i = 0;
	while (i < size) {
		uint64_t off = offset + i;
		uint64_t reg = off & ~3ull;
		unsigned shift = (unsigned)(off & 3);
		unsigned n = 4 - shift;
		if (n > size - i)
			n = size - i;
		uint32_t cur = ioapic_read_direct(io, reg);
		if (write && reg == IOAPIC_EOI) {
			if (shift == 0) /* the vector is the low byte written */
				ioapic_eoi_locked(io, data[i]);
		} else if (write) {
			uint32_t v = cur;
			for (unsigned b = 0; b < n; b++) {
				unsigned pos = 8 * (shift + b);
				v = (v & ~(0xFFu << pos)) | (uint32_t)data[i + b] << pos;
			}
			ioapic_write_direct(io, reg, v);
		} else {
			for (unsigned b = 0; b < n; b++)
				data[i + b] = (uint8_t)(cur >> (8 * (shift + b)));
		}
		i += n;
	}
	pthread_mutex_unlock(&io->lock);
}

/* ---- snapshot (snapshot.h): section "ioapic", version 1 ------------------
 * ioregsel id lines (u32), the 24 redirection entries (u64, Remote-IRR
 * included), then the machine's interrupt wiring in front of the IOAPIC:
 * for each of the 24 inputs, the mask of the sources driving it high
 * (vm->irq_sources, u32). Devices restore their own view of their line
 * without driving it; this section restores the lines. Load tells libzhv
 * each unmasked pin's route again (ioapic_sync_route). */

static int ioapic_snap_save(void *opaque, struct snap_writer *w)
{
	struct ioapic *io = opaque;
	/* Lock order as in vm_irq_set_shared: irq_lock, then the IOAPIC. */
	pthread_mutex_lock(&io->vm->irq_lock);
	pthread_mutex_lock(&io->lock);
	snap_put_u32(w, io->ioregsel);
	snap_put_u32(w, io->id);
	snap_put_u32(w, io->lines);
	for (unsigned pin = 0; pin < VM_IOAPIC_PINS; pin++)
		snap_put_u64(w, io->rte[pin]);
	for (unsigned pin = 0; pin < VM_IOAPIC_PINS; pin++)
		snap_put_u32(w, io->vm->irq_sources[pin]);
	pthread_mutex_unlock(&io->lock);
	pthread_mutex_unlock(&io->vm->irq_lock);
	return 0;
}

static int ioapic_snap_load(void *opaque, struct snap_reader *r)
{
	struct ioapic *io = opaque;
	uint32_t ioregsel = snap_get_u32(r), id = snap_get_u32(r), lines = snap_get_u32(r);
	uint64_t rte[VM_IOAPIC_PINS];
	uint32_t sources[VM_IOAPIC_PINS];
	if (ioregsel > 0xFF || (id & ~IOAPIC_ID_MASK) || (lines >> VM_IOAPIC_PINS))
		snap_bad(r);
	for (unsigned pin = 0; pin < VM_IOAPIC_PINS; pin++) {
		uint64_t e = rte[pin] = snap_get_u64(r);
		if ((e & 0xFFFFFFFFull & ~(IOAPIC_RTE_LOW_RW | IOAPIC_RTE_REMOTE_IRR)) ||
		    ((e >> 32) & ~(uint64_t)IOAPIC_RTE_HIGH_RW) ||
		    ((e & IOAPIC_RTE_REMOTE_IRR) && !(e & IOAPIC_RTE_LEVEL)))
			snap_bad(r);
	}
	for (unsigned pin = 0; pin < VM_IOAPIC_PINS; pin++)
		sources[pin] = snap_get_u32(r);
	int ret = snap_reader_end(r);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&io->vm->irq_lock);
	pthread_mutex_lock(&io->lock);
	io->ioregsel = ioregsel;
	io->id = id;
	io->lines = lines;
	memcpy(io->vm->irq_sources, sources, sizeof(sources));
	for (unsigned pin = 0; pin < VM_IOAPIC_PINS; pin++) {
		io->rte[pin] = rte[pin];
		ioapic_sync_route(io, pin);
	}
	pthread_mutex_unlock(&io->lock);
	pthread_mutex_unlock(&io->vm->irq_lock);
	return 0;
}

/* vm_destroy: every device that raises interrupts was destroyed before
 * (they were created after the IOAPIC) and no vCPU runs. */
static void ioapic_destroy(void *opaque)
{
	struct ioapic *io = opaque;
	if (io->vm->ioapic == io)
		io->vm->ioapic = NULL;
	pthread_mutex_destroy(&io->lock);
	free(io);
}

int ioapic_create(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	struct ioapic *io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	pthread_mutex_init(&io->lock, NULL);
	io->vm = vm;
	for (unsigned pin = 0; pin < VM_IOAPIC_PINS; pin++)
		io->rte[pin] = IOAPIC_RTE_MASKED; /* 82093AA: masked after reset */
	/* From here the machine owns (io): vm_destroy frees it, also after a
	 * failure below. */
	int ret = vm_add_teardown(vm, ioapic_destroy, io);
	if (ret < 0) {
		pthread_mutex_destroy(&io->lock);
		free(io);
		return ret;
	}
	ret = bus_register(&vm->mmio_bus, vm->guest, VM_IOAPIC_BASE, IOAPIC_MMIO_LEN,
	                   ioapic_access, io, "ioapic");
	if (ret < 0)
		return ret;
	ret = vm_add_snapshot(vm, "ioapic", 1, ioapic_snap_save, ioapic_snap_load, io);
	if (ret < 0)
		return ret;
	vm->ioapic = io;
	return 0;
}
