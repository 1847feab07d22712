/* uart16550.c: 16550A UART (COM1-COM4): registers, a receive buffer fed by the console, output through a bounded queue (dev/outq.c) and IRQ 4/3 through vm_irq_set. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "../devices.h"
#include "../vm.h"
#include "outq.h"

/* clang-format off */
/* Register offsets (TI PC16550D datasheet, Table 2 "Register Summary"). */
#define UART_RBR 0 /* read, DLAB=0: receiver buffer */
#define UART_THR 0 /* write, DLAB=0: transmitter holding */
#define UART_DLL 0 /* DLAB=1: divisor latch LSB */
#define UART_IER 1 /* DLAB=0: interrupt enable */
#define UART_DLM 1 /* DLAB=1: divisor latch MSB */
#define UART_IIR 2 /* read: interrupt identification */
#define UART_FCR 2 /* write: FIFO control */
#define UART_LCR 3 /* line control */
#define UART_MCR 4 /* modem control */
#define UART_LSR 5 /* line status */
#define UART_MSR 6 /* modem status */
#define UART_SCR 7 /* scratch */
#define UART_NREGS 8

#define UART_IER_RDI  0x01 /* received data available */
#define UART_IER_THRI 0x02 /* transmitter holding register empty */
#define UART_IER_RLSI 0x04 /* receiver line status */
#define UART_IER_MSI  0x08 /* modem status */
#define UART_IER_MASK 0x0F /* bits 4-7 read 0 on a 16550A */

/* IIR bits 3-0, highest priority first (datasheet Table 4). */
#define UART_IIR_NO_INT 0x01
#define UART_IIR_RLSI   0x06
#define UART_IIR_RDI    0x04
#define UART_IIR_THRI   0x02
#define UART_IIR_MSI    0x00
#define UART_IIR_ID     0x0F
#define UART_IIR_FIFO   0xC0 /* bits 7-6: FIFOs enabled (FCR bit 0) */

#define UART_FCR_ENABLE   0x01
#define UART_FCR_CLEAR_RX 0x02
#define UART_FCR_CLEAR_TX 0x04
#define UART_FCR_KEEP     0xC9 /* enable, DMA mode, RX trigger level */

#define UART_LCR_DLAB 0x80 /* divisor latch access */

#define UART_MCR_DTR  0x01
#define UART_MCR_RTS  0x02
#define UART_MCR_OUT1 0x04
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10
#define UART_MCR_MASK 0x1F

#define UART_LSR_DR   0x01 /* data ready */
#define UART_LSR_OE   0x02 /* overrun error */
#define UART_LSR_THRE 0x20 /* THR empty */
#define UART_LSR_TEMT 0x40 /* transmitter empty */

#define UART_MSR_DCTS 0x01
#define UART_MSR_DDSR 0x02
#define UART_MSR_TERI 0x04
#define UART_MSR_DDCD 0x08
#define UART_MSR_CTS  0x10
#define UART_MSR_DSR  0x20
#define UART_MSR_RI   0x40
#define UART_MSR_DCD  0x80

#define UART_RX_SIZE 1024u /* host-side receive buffer */
/* clang-format on */

struct uart {
	pthread_mutex_t lock; /* everything below; vCPU threads and the console thread */
	struct vm *vm;
	struct outq *out; /* transmitted bytes (NULL: discarded) */
	unsigned irq;
	unsigned source; /* our input on the shared line (vm_irq_set_shared) */
	char name[8];

	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	uint8_t msr_lines; /* MSR bits 7-4 as last computed */
	uint8_t msr_delta; /* MSR bits 3-0, cleared by reading MSR */
	bool overrun;      /* LSR OE, cleared by reading LSR */
	bool thr_ipending; /* THRE interrupt latched (cleared by IIR read or THR write) */
	int irq_level;     /* what we last drove on the line */

	uint8_t rx[UART_RX_SIZE];
	unsigned rx_head, rx_count;
};

/* clang-format off */
static const struct { uint16_t base; unsigned irq; } uart_ports[4] = {
	{ 0x3F8, 4 }, /* COM1 */
	{ 0x2F8, 3 }, /* COM2 */
	{ 0x3E8, 4 }, /* COM3 */
	{ 0x2E8, 3 }, /* COM4 */
};
/* clang-format on */

/* The modem inputs: in loopback the outputs are wired back (datasheet
 * "Loopback": RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD); otherwise a
 * connected, ready peer (DCD, DSR, CTS). */
static uint8_t uart_msr_inputs(const struct uart *u)
{
	if (!(u->mcr & UART_MCR_LOOP))
		return UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
	uint8_t v = 0;
	if (u->mcr & UART_MCR_RTS)
		v |= UART_MSR_CTS;
	if (u->mcr & UART_MCR_DTR)
		v |= UART_MSR_DSR;
	if (u->mcr & UART_MCR_OUT1)
		v |= UART_MSR_RI;
	if (u->mcr & UART_MCR_OUT2)
		v |= UART_MSR_DCD;
	return v;
}

static void uart_update_msr(struct uart *u)
{
	uint8_t now = uart_msr_inputs(u);
	uint8_t changed = now ^ u->msr_lines;
	if (changed & UART_MSR_CTS)
		u->msr_delta |= UART_MSR_DCTS;
	if (changed & UART_MSR_DSR)
		u->msr_delta |= UART_MSR_DDSR;
	if ((changed & UART_MSR_RI) && !(now & UART_MSR_RI)) /* trailing edge */
		u->msr_delta |= UART_MSR_TERI;
	if (changed & UART_MSR_DCD)
		u->msr_delta |= UART_MSR_DDCD;
	u->msr_lines = now;
}

/* IIR in priority order (datasheet Table 4). */
static uint8_t uart_iir(const struct uart *u)
{
	uint8_t id = UART_IIR_NO_INT;
	if ((u->ier & UART_IER_RLSI) && u->overrun)
		id = UART_IIR_RLSI;
	else if ((u->ier & UART_IER_RDI) && u->rx_count)
		id = UART_IIR_RDI;
	else if ((u->ier & UART_IER_THRI) && u->thr_ipending)
		id = UART_IIR_THRI;
	else if ((u->ier & UART_IER_MSI) && u->msr_delta)
		id = UART_IIR_MSI;
	return id | ((u->fcr & UART_FCR_ENABLE) ? UART_IIR_FIFO : 0);
}

/* Drive the line to "an interrupt is pending". Called with the lock held,
 * so that level changes reach the IOAPIC in the order they happened (lock
 * order: uart -> ioapic). Not gated by MCR OUT2, as in QEMU. */
static int uart_snap_save(void *opaque, struct snap_writer *w);
static int uart_snap_load(void *opaque, struct snap_reader *r);

static void uart_update_irq(struct uart *u)
{
	int level = (uart_iir(u) & UART_IIR_NO_INT) ? 0 : 1;
	if (level != u->irq_level) {
		u->irq_level = level;
		vm_irq_set_shared(u->vm, u->irq, u->source, level);
	}
}

static void uart_rx_push(struct uart *u, uint8_t byte)
{
	if (u->rx_count == UART_RX_SIZE) {
		u->overrun = true; /* the byte is lost, as in a full FIFO */
		return;
	}
	u->rx[(u->rx_head + u->rx_count) % UART_RX_SIZE] = byte;
	u->rx_count++;
}

static uint8_t uart_rx_pop(struct uart *u)
{
	if (!u->rx_count)
		return 0;
	uint8_t byte = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_RX_SIZE;
	u->rx_count--;
	return byte;
}

/* The transmitter is infinitely fast: THR and the shift register are empty
 * again at once, which latches the THRE interrupt. The byte joins the
 * output queue, which never blocks: when the host does not read the
 * output fast enough, bytes are dropped and counted, as a real UART
 * overruns its peer (so no vCPU waits on a stalled terminal or pipe). */
static void uart_transmit(struct uart *u, uint8_t byte)
{
	if (u->mcr & UART_MCR_LOOP)
		uart_rx_push(u, byte);
	else if (u->out)
		outq_write(u->out, &byte, 1);
	u->thr_ipending = true;
}

static uint8_t uart_read(struct uart *u, unsigned reg)
{
	uint8_t v;
	switch (reg) {
	case UART_RBR:
		if (u->lcr & UART_LCR_DLAB)
			return u->dll;
		return uart_rx_pop(u);
	case UART_IER:
		if (u->lcr & UART_LCR_DLAB)
			return u->dlm;
		return u->ier;
	case UART_IIR:
		v = uart_iir(u);
		if ((v & UART_IIR_ID) == UART_IIR_THRI) /* reading IIR clears THRE */
			u->thr_ipending = false;
		return v;
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		v = UART_LSR_THRE | UART_LSR_TEMT;
		if (u->rx_count)
			v |= UART_LSR_DR;
		if (u->overrun)
			v |= UART_LSR_OE;
		u->overrun = false;
		return v;
	case UART_MSR:
		v = u->msr_lines | u->msr_delta;
		u->msr_delta = 0;
		return v;
	case UART_SCR:
		return u->scr;
	default:
		return 0xFF;
	}
}

static void uart_write(struct uart *u, unsigned reg, uint8_t v)
{
	uint8_t old;
	switch (reg) {
	case UART_THR:
		if (u->lcr & UART_LCR_DLAB) {
			u->dll = v;
			break;
		}
		/* Writing THR clears the THRE interrupt (datasheet Table 4)
		 * and the byte leaving sets it again at once: drop the line
		 * in between, so that an edge-triggered IOAPIC input sees a
		 * new interrupt for every byte even when the driver never
		 * reads IIR (QEMU's serial does the same). */
		u->thr_ipending = false;
		uart_update_irq(u);
		uart_transmit(u, v);
		break;
	case UART_IER:
		if (u->lcr & UART_LCR_DLAB) {
			u->dlm = v;
			break;
		}
		old = u->ier;
		u->ier = v & UART_IER_MASK;
		/* Enabling ETBEI while THR is empty (always, here) raises THRE:
		 * Linux's UART_BUG_THRE probe depends on it. */
		if ((u->ier & UART_IER_THRI) && !(old & UART_IER_THRI))
			u->thr_ipending = true;
		break;
	case UART_FCR:
		/* Toggling the FIFO enable clears both FIFOs (datasheet, FCR0). */
		if ((v ^ u->fcr) & UART_FCR_ENABLE)
			v |= UART_FCR_CLEAR_RX;
		if (v & UART_FCR_CLEAR_RX)
			u->rx_head = u->rx_count = 0;
		u->fcr = v & UART_FCR_KEEP;
		break;
	case UART_LCR:
		u->lcr = v;
		break;
	case UART_MCR:
		u->mcr = v & UART_MCR_MASK;
		uart_update_msr(u);
		break;
	case UART_SCR:
		u->scr = v;
		break;
	default: /* LSR and MSR are read-only (factory test writes ignored) */
		break;
	}
}

/* Wider accesses split into byte cycles on consecutive ports, as on the
 * ISA bus; bytes beyond the eight registers read all-ones. */
static void uart_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                        unsigned size)
{
	struct uart *u = opaque;
	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < size; i++) {
		uint64_t reg = offset + i;
		if (reg >= UART_NREGS) {
			if (!write)
				data[i] = 0xFF;
			continue;
		}
		if (write)
			uart_write(u, (unsigned)reg, data[i]);
		else
			data[i] = uart_read(u, (unsigned)reg);
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

struct uart *uart16550_create(struct vm *vm, unsigned index, FILE *out)
{
	if (!vm || index >= sizeof(uart_ports) / sizeof(uart_ports[0])) {
		errno = EINVAL;
		return NULL;
	}
	struct uart *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	snprintf(u->name, sizeof(u->name), "com%u", index + 1);
	if (out && !(u->out = outq_create(out, OUTQ_DEFAULT_SIZE))) {
		int e = errno;
		free(u);
		errno = e;
		return NULL;
	}
	pthread_mutex_init(&u->lock, NULL);
	u->vm = vm;
	u->irq = uart_ports[index].irq;
	u->source = 1 + index; /* COM1/COM3 and COM2/COM4 share a line */
	u->lcr = 0x03; /* 8N1, as firmware leaves it */
	u->msr_lines = uart_msr_inputs(u);
	int ret = bus_register(&vm->io_bus, vm->guest, uart_ports[index].base, UART_NREGS,
	                       uart_access, u, u->name);
	if (ret < 0) {
		outq_destroy(u->out);
		pthread_mutex_destroy(&u->lock);
		free(u);
		errno = -ret;
		return NULL;
	}
	/* The section names the UART by its index (uart0 is COM1). A failure
	 * fails the machine's creation, which then never snapshots. */
	char sname[8];
	snprintf(sname, sizeof(sname), "uart%u", index);
	ret = vm_add_snapshot(vm, sname, 1, uart_snap_save, uart_snap_load, u);
	if (ret < 0) {
		outq_destroy(u->out);
		pthread_mutex_destroy(&u->lock);
		free(u);
		errno = -ret;
		return NULL;
	}
	return u;
}

uint64_t uart16550_stop_output(struct uart *u, unsigned timeout_ms)
{
	return u ? outq_stop(u->out, timeout_ms) : 0;
}

void uart16550_destroy(struct uart *u)
{
	if (!u)
		return;
	outq_destroy(u->out);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

void uart16550_input(struct uart *u, const uint8_t *buf, size_t len)
{
	if (!u || (!buf && len))
		return;
	pthread_mutex_lock(&u->lock);
	for (size_t i = 0; i < len; i++)
		uart_rx_push(u, buf[i]);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

/* ---- snapshot (snapshot.h): section "uart<index>", version 1 -------------
 * ier lcr mcr scr dll dlm fcr msr_delta (u8 each), overrun thr_ipending
 * (bool), rx_count (u16) and the rx_count bytes waiting in the receive
 * buffer, oldest first. MSR's line bits follow from MCR, and the interrupt
 * line's level from the registers: the line itself is restored with the
 * IOAPIC's section (vm->irq_sources), so load does not drive it. The host
 * side (stdio, a file, the output queue) is not state. */

static int uart_snap_save(void *opaque, struct snap_writer *w)
{
	struct uart *u = opaque;
	pthread_mutex_lock(&u->lock);
	snap_put_u8(w, u->ier);
	snap_put_u8(w, u->lcr);
	snap_put_u8(w, u->mcr);
	snap_put_u8(w, u->scr);
	snap_put_u8(w, u->dll);
	snap_put_u8(w, u->dlm);
	snap_put_u8(w, u->fcr);
	snap_put_u8(w, u->msr_delta);
	snap_put_bool(w, u->overrun);
	snap_put_bool(w, u->thr_ipending);
	snap_put_u16(w, (uint16_t)u->rx_count);
	for (unsigned i = 0; i < u->rx_count; i++)
		snap_put_u8(w, u->rx[(u->rx_head + i) % UART_RX_SIZE]);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static int uart_snap_load(void *opaque, struct snap_reader *r)
{
	struct uart *u = opaque;
	struct uart t; /* the registers, checked before any is taken */
	memset(&t, 0, sizeof(t));
	t.ier = snap_get_u8(r);
	t.lcr = snap_get_u8(r);
	t.mcr = snap_get_u8(r);
	t.scr = snap_get_u8(r);
	t.dll = snap_get_u8(r);
	t.dlm = snap_get_u8(r);
	t.fcr = snap_get_u8(r);
	t.msr_delta = snap_get_u8(r);
	t.overrun = snap_get_bool(r);
	t.thr_ipending = snap_get_bool(r);
	t.rx_count = snap_get_u16(r);
	if ((t.ier & ~UART_IER_MASK) || (t.mcr & ~UART_MCR_MASK) || (t.fcr & ~UART_FCR_KEEP) ||
	    (t.msr_delta & 0xF0) || t.rx_count > UART_RX_SIZE)
		snap_bad(r);
	if (!r->err)
		snap_get(r, t.rx, t.rx_count);
	int ret = snap_reader_end(r);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&u->lock);
	u->ier = t.ier;
	u->lcr = t.lcr;
	u->mcr = t.mcr;
	u->scr = t.scr;
	u->dll = t.dll;
	u->dlm = t.dlm;
	u->fcr = t.fcr;
	u->msr_lines = uart_msr_inputs(u);
	u->msr_delta = t.msr_delta;
	u->overrun = t.overrun;
	u->thr_ipending = t.thr_ipending;
	memcpy(u->rx, t.rx, t.rx_count);
	u->rx_head = 0;
	u->rx_count = t.rx_count;
	u->irq_level = (uart_iir(u) & UART_IIR_NO_INT) ? 0 : 1;
	pthread_mutex_unlock(&u->lock);
	return 0;
}
