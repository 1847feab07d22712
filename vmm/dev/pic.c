/* pic.c: the 8259A pair at 0x20/0xa0 and ELCR 0x4d0: register-level only (init sequence, masks, EOI, IRR/ISR reads); interrupts go through the IOAPIC. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../devices.h"
#include "../vm.h"

/* Why no delivery: libzhv runs KVM's local APIC in split-irqchip mode and
 * the IOAPIC (dev/ioapic.c) is the only path into it; the MADT and MP
 * table announce the IOAPIC and the PIC starts fully masked. Guests (Linux)
 * still probe and program the PIC, so its registers must behave: a mask
 * written reads back, the ICW sequence is accepted, EOIs and OCW3 reads
 * work. IRR and ISR stay 0 because no input ever reaches it. */

/* clang-format off */
#define PIC_MASTER_PORT 0x20u
#define PIC_SLAVE_PORT  0xA0u
#define PIC_ELCR_PORT   0x4D0u /* 0x4d0 master, 0x4d1 slave (PIIX/ICH ELCR) */

/* Intel 8259A datasheet, "Programming the 8259A". */
#define PIC_ICW1        0x10 /* A0=0, D4=1: ICW1 starts initialization */
#define PIC_ICW1_IC4    0x01 /* ICW4 needed */
#define PIC_ICW1_SNGL   0x02 /* single: no ICW3 */
#define PIC_OCW3        0x08 /* A0=0, D4=0, D3=1: OCW3; D3=0: OCW2 */
#define PIC_OCW3_RIS    0x01 /* read ISR (else IRR) */
#define PIC_OCW3_RR     0x02 /* read register command */
#define PIC_OCW3_POLL   0x04
#define PIC_OCW3_ESMM   0x40 /* enable special mask mode change */
#define PIC_OCW3_SMM    0x20
#define PIC_OCW2_EOI    0x20
#define PIC_OCW2_SL     0x40 /* specific (level in bits 2-0) */
#define PIC_OCW2_R      0x80 /* rotate */
#define PIC_ICW4_AEOI   0x02

/* ELCR bits that can be level: not IRQ 0, 1, 2, 8, 13 (PIIX4 datasheet). */
#define PIC_ELCR_MASK_MASTER 0xF8
#define PIC_ELCR_MASK_SLAVE  0xDE
/* clang-format on */

enum pic_init_step { PIC_READY, PIC_WANT_ICW2, PIC_WANT_ICW3, PIC_WANT_ICW4 };

struct pic_chip {
	uint8_t irr, isr, imr;
	uint8_t vector_base;
	uint8_t icw3;
	uint8_t elcr, elcr_mask;
	uint8_t priority_add; /* lowest priority after rotation */
	enum pic_init_step step;
	bool icw4_needed, single, auto_eoi, special_mask, rotate_on_aeoi;
	bool read_isr, poll;
};

struct pic {
	pthread_mutex_t lock;
	struct vm *vm;
	struct pic_chip chip[2]; /* 0 master, 1 slave */
};

/* Highest-priority bit of (bits) under the chip's rotation, or -1. */
static int pic_highest(const struct pic_chip *c, uint8_t bits)
{
	for (unsigned i = 0; i < 8; i++) {
		unsigned irq = (i + c->priority_add) & 7;
		if (bits & (1u << irq))
			return (int)irq;
	}
	return -1;
}

static void pic_write_cmd(struct pic_chip *c, uint8_t v)
{
	if (v & PIC_ICW1) {
		c->step = PIC_WANT_ICW2;
		c->icw4_needed = v & PIC_ICW1_IC4;
		c->single = v & PIC_ICW1_SNGL;
		c->imr = c->isr = c->irr = 0; /* 8259A: ICW1 clears the mask */
		c->priority_add = 0;
		c->auto_eoi = c->special_mask = c->read_isr = c->poll = false;
		return;
	}
	if (v & PIC_OCW3) {
		if (v & PIC_OCW3_POLL)
			c->poll = true;
		if (v & PIC_OCW3_RR)
			c->read_isr = v & PIC_OCW3_RIS;
		if (v & PIC_OCW3_ESMM)
			c->special_mask = v & PIC_OCW3_SMM;
		return;
	}
	/* OCW2 (datasheet Table "OCW2"): R, SL, EOI in bits 7-5. */
	int irq;
	switch (v & (PIC_OCW2_R | PIC_OCW2_SL | PIC_OCW2_EOI)) {
	case PIC_OCW2_EOI: /* non-specific EOI */
	case PIC_OCW2_R | PIC_OCW2_EOI: /* rotate on non-specific EOI */
		irq = pic_highest(c, c->isr);
		if (irq >= 0) {
			c->isr &= (uint8_t)~(1u << irq);
			if (v & PIC_OCW2_R)
				c->priority_add = (uint8_t)((irq + 1) & 7);
		}
		break;
	case PIC_OCW2_SL | PIC_OCW2_EOI: /* specific EOI */
		c->isr &= (uint8_t)~(1u << (v & 7));
		break;
	case PIC_OCW2_R | PIC_OCW2_SL | PIC_OCW2_EOI: /* rotate on specific EOI */
		c->isr &= (uint8_t)~(1u << (v & 7));
		c->priority_add = (uint8_t)((v + 1) & 7);
		break;
	case PIC_OCW2_R: /* set rotate in automatic EOI mode */
		c->rotate_on_aeoi = true;
		break;
	case 0: /* clear rotate in automatic EOI mode */
		c->rotate_on_aeoi = false;
		break;
	case PIC_OCW2_R | PIC_OCW2_SL: /* set priority */
		c->priority_add = (uint8_t)((v + 1) & 7);
		break;
	default: /* SL alone: no operation */
		break;
	}
}

static void pic_write_data(struct pic_chip *c, uint8_t v)
{
	switch (c->step) {
	case PIC_WANT_ICW2:
		c->vector_base = v & 0xF8;
		c->step = c->single ? (c->icw4_needed ? PIC_WANT_ICW4 : PIC_READY) : PIC_WANT_ICW3;
		break;
	case PIC_WANT_ICW3:
		c->icw3 = v;
		c->step = c->icw4_needed ? PIC_WANT_ICW4 : PIC_READY;
		break;
	case PIC_WANT_ICW4:
		c->auto_eoi = v & PIC_ICW4_AEOI;
		c->step = PIC_READY;
		break;
	default: /* OCW1: the mask */
		c->imr = v;
		break;
	}
}

static uint8_t pic_read(struct pic_chip *c, bool data_port)
{
	if (c->poll) { /* poll: bit 7 set with the level if one is pending */
		c->poll = false;
		int irq = pic_highest(c, c->irr & (uint8_t)~c->imr);
		return irq < 0 ? 0 : (uint8_t)(0x80 | irq);
	}
	if (data_port)
		return c->imr;
	return c->read_isr ? c->isr : c->irr;
}

static void pic_chip_access(struct pic *p, unsigned n, uint64_t offset, bool write,
                            uint8_t *data, unsigned size)
{
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < size; i++) {
		uint64_t reg = offset + i;
		if (reg > 1) {
			if (!write)
				data[i] = 0xFF;
			continue;
		}
		if (write && reg == 0)
			pic_write_cmd(&p->chip[n], data[i]);
		else if (write)
			pic_write_data(&p->chip[n], data[i]);
		else
			data[i] = pic_read(&p->chip[n], reg == 1);
	}
	pthread_mutex_unlock(&p->lock);
}

static void pic_master_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                              unsigned size)
{
	pic_chip_access(opaque, 0, offset, write, data, size);
}

static void pic_slave_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                             unsigned size)
{
	pic_chip_access(opaque, 1, offset, write, data, size);
}

static void pic_elcr_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                            unsigned size)
{
	struct pic *p = opaque;
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < size; i++) {
		uint64_t reg = offset + i;
		if (reg > 1) {
			if (!write)
				data[i] = 0xFF;
			continue;
		}
		struct pic_chip *c = &p->chip[reg];
		if (write)
			c->elcr = data[i] & c->elcr_mask;
		else
			data[i] = c->elcr;
	}
	pthread_mutex_unlock(&p->lock);
}

/* ---- snapshot (snapshot.h): section "pic", version 1 ---------------------
 * Master then slave: irr isr imr vector_base icw3 elcr priority_add step
 * (u8 each), then icw4_needed single auto_eoi special_mask rotate_on_aeoi
 * read_isr poll (bool each). */

static int pic_snap_save(void *opaque, struct snap_writer *w)
{
	struct pic *p = opaque;
	pthread_mutex_lock(&p->lock);
	for (unsigned n = 0; n < 2; n++) {
		const struct pic_chip *c = &p->chip[n];
		snap_put_u8(w, c->irr);
		snap_put_u8(w, c->isr);
		snap_put_u8(w, c->imr);
		snap_put_u8(w, c->vector_base);
		snap_put_u8(w, c->icw3);
		snap_put_u8(w, c->elcr);
		snap_put_u8(w, c->priority_add);
		snap_put_u8(w, (uint8_t)c->step);
		snap_put_bool(w, c->icw4_needed);
		snap_put_bool(w, c->single);
		snap_put_bool(w, c->auto_eoi);
		snap_put_bool(w, c->special_mask);
		snap_put_bool(w, c->rotate_on_aeoi);
		snap_put_bool(w, c->read_isr);
		snap_put_bool(w, c->poll);
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static int pic_snap_load(void *opaque, struct snap_reader *r)
{
	struct pic *p = opaque;
	struct pic_chip t[2];
	for (unsigned n = 0; n < 2; n++) {
		struct pic_chip *c = &t[n];
		memset(c, 0, sizeof(*c));
		c->elcr_mask = n ? PIC_ELCR_MASK_SLAVE : PIC_ELCR_MASK_MASTER;
		c->irr = snap_get_u8(r);
		c->isr = snap_get_u8(r);
		c->imr = snap_get_u8(r);
		c->vector_base = snap_get_u8(r);
		c->icw3 = snap_get_u8(r);
		c->elcr = snap_get_u8(r);
		c->priority_add = snap_get_u8(r);
		uint8_t step = snap_get_u8(r);
		c->icw4_needed = snap_get_bool(r);
		c->single = snap_get_bool(r);
		c->auto_eoi = snap_get_bool(r);
		c->special_mask = snap_get_bool(r);
		c->rotate_on_aeoi = snap_get_bool(r);
		c->read_isr = snap_get_bool(r);
		c->poll = snap_get_bool(r);
		if ((c->vector_base & 7) || (c->elcr & ~c->elcr_mask) || c->priority_add > 7 ||
		    step > PIC_WANT_ICW4)
			snap_bad(r);
		c->step = (enum pic_init_step)step;
	}
	int ret = snap_reader_end(r);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&p->lock);
	memcpy(p->chip, t, sizeof(t));
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void pic_destroy(void *opaque)
{
	struct pic *p = opaque;
	if (p->vm->pic == p)
		p->vm->pic = NULL;
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int pic_create(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	struct pic *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->vm = vm;
	for (unsigned n = 0; n < 2; n++) {
		p->chip[n].imr = 0xFF; /* everything masked: the IOAPIC is the path */
		p->chip[n].vector_base = n ? 0x70 : 0x08; /* PC BIOS defaults */
		p->chip[n].elcr_mask = n ? PIC_ELCR_MASK_SLAVE : PIC_ELCR_MASK_MASTER;
	}
	/* From here the machine owns (p): vm_destroy frees it, also after a
	 * failure below. */
	int ret = vm_add_teardown(vm, pic_destroy, p);
	if (ret < 0) {
		pthread_mutex_destroy(&p->lock);
		free(p);
		return ret;
	}
	ret = bus_register(&vm->io_bus, vm->guest, PIC_MASTER_PORT, 2, pic_master_access, p,
	                   "pic-master");
	if (ret == 0)
		ret = bus_register(&vm->io_bus, vm->guest, PIC_SLAVE_PORT, 2, pic_slave_access, p,
		                   "pic-slave");
	if (ret == 0)
		ret = bus_register(&vm->io_bus, vm->guest, PIC_ELCR_PORT, 2, pic_elcr_access, p,
		                   "pic-elcr");
	if (ret == 0)
		ret = vm_add_snapshot(vm, "pic", 1, pic_snap_save, pic_snap_load, p);
	if (ret == 0)
		vm->pic = p;
	return ret;
}
