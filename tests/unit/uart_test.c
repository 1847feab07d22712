/* uart_test.c: unit tests of the 16550A UART model (dev/uart16550.c): registers, DLAB, IIR priorities, receive buffer, interrupt line, garbage, output to a stalled reader (dev/outq.c). */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../vmm/dev/outq.c"
#include "../../vmm/dev/uart16550.c"
#include "fake_bus.h"
#include "snap_util.h"

/* ---- stubs ------------------------------------------------------------------ */

static int irq_level[VM_IOAPIC_PINS];
static int irq_changes[VM_IOAPIC_PINS];

void vm_irq_set(struct vm *vm, unsigned gsi, int level)
{
	(void)vm;
	assert_true(gsi < VM_IOAPIC_PINS);
	assert_true(level == 0 || level == 1);
	assert_int_not_equal(irq_level[gsi], level); /* the UART only reports changes */
	irq_level[gsi] = level;
	irq_changes[gsi]++;
}

/* The device drives a shared line; one device per test: same as vm_irq_set. */
void vm_irq_set_shared(struct vm *vm, unsigned gsi, unsigned source, int level)
{
	(void)source;
	vm_irq_set(vm, gsi, level);
}

/* ---- helpers ---------------------------------------------------------------- */

/* Every machine stays reachable (devices have no destroy call), so that
 * LeakSanitizer under `make sanitize` sees no leak. */
static struct vm vms[32];
static unsigned nvms;
#define test_vm (vms[nvms - 1])
static char *out_buf;
static size_t out_len;
static FILE *out;

static struct uart *setup_com(unsigned index)
{
	assert_true(nvms < sizeof(vms) / sizeof(vms[0]));
	nvms++;
	memset(irq_level, 0, sizeof(irq_level));
	memset(irq_changes, 0, sizeof(irq_changes));
	test_vm.io_bus.kind = ZHV_TRAP_IO;
	if (out)
		fclose(out);
	free(out_buf);
	out_buf = NULL;
	out = open_memstream(&out_buf, &out_len);
	assert_non_null(out);
	struct uart *u = uart16550_create(&test_vm, index, out);
	assert_non_null(u);
	return u;
}

static uint8_t rd(uint16_t reg)
{
	const struct bus_range *r = &test_vm.io_bus.ranges[0];
	uint8_t v = 0x5A;
	r->fn(r->opaque, reg, false, &v, 1);
	return v;
}

static void wr(uint16_t reg, uint8_t v)
{
	const struct bus_range *r = &test_vm.io_bus.ranges[0];
	r->fn(r->opaque, reg, true, &v, 1);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_reset_state(void **state)
{
	(void)state;
	setup_com(0);
	assert_int_equal(test_vm.io_bus.count, 1);
	assert_int_equal(test_vm.io_bus.ranges[0].base, 0x3F8);
	assert_int_equal(test_vm.io_bus.ranges[0].len, 8);
	assert_int_equal(rd(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT); /* idle: 0x60 */
	assert_int_equal(rd(UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(rd(UART_IER), 0);
	assert_int_equal(rd(UART_MSR) & 0xF0, 0xB0); /* DCD, DSR, CTS */
	assert_int_equal(irq_changes[4], 0);
}

static void test_ports_and_irqs(void **state)
{
	(void)state;
	static const uint16_t base[4] = {0x3F8, 0x2F8, 0x3E8, 0x2E8};
	static const unsigned irq[4] = {4, 3, 4, 3};
	for (unsigned i = 0; i < 4; i++) {
		struct uart *u = setup_com(i);
		assert_int_equal(test_vm.io_bus.ranges[0].base, base[i]);
		assert_int_equal(u->irq, irq[i]);
	}
	assert_null(uart16550_create(&test_vm, 4, NULL));
	/* The same port twice: the bus refuses, create fails cleanly. */
	setup_com(0);
	assert_null(uart16550_create(&test_vm, 0, NULL));
}

static void test_dlab_switching(void **state)
{
	(void)state;
	setup_com(0);
	wr(UART_IER, 0x05);
	wr(UART_LCR, 0x83); /* DLAB on, 8N1 */
	wr(UART_DLL, 0x01);
	wr(UART_DLM, 0x02);
	assert_int_equal(rd(UART_DLL), 0x01);
	assert_int_equal(rd(UART_DLM), 0x02);
	assert_int_equal(out_len, 0); /* DLL write did not transmit */
	wr(UART_LCR, 0x03);
	assert_int_equal(rd(UART_LCR), 0x03);
	assert_int_equal(rd(UART_IER), 0x05); /* IER untouched by DLM */
	wr(UART_IER, 0xFF);
	assert_int_equal(rd(UART_IER), 0x0F); /* bits 7-4 read 0 */
	wr(UART_LCR, 0x80);
	assert_int_equal(rd(UART_DLL), 0x01);
	assert_int_equal(rd(UART_DLM), 0x02);
}

static void test_transmit(void **state)
{
	(void)state;
	setup_com(0);
	const char *msg = "hello\n";
	for (const char *p = msg; *p; p++) {
		assert_int_not_equal(rd(UART_LSR) & UART_LSR_THRE, 0);
		wr(UART_THR, (uint8_t)*p);
	}
	assert_int_equal(out_len, strlen(msg));
	assert_memory_equal(out_buf, msg, strlen(msg));
	assert_int_equal(rd(UART_SCR), 0);
	wr(UART_SCR, 0xA5);
	assert_int_equal(rd(UART_SCR), 0xA5);
}

static void test_rx_buffer(void **state)
{
	(void)state;
	struct uart *u = setup_com(0);
	assert_int_equal(rd(UART_LSR) & UART_LSR_DR, 0);
	uart16550_input(u, (const uint8_t *)"abc", 3);
	assert_int_not_equal(rd(UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(rd(UART_RBR), 'a');
	assert_int_equal(rd(UART_RBR), 'b');
	assert_int_equal(rd(UART_RBR), 'c');
	assert_int_equal(rd(UART_LSR) & UART_LSR_DR, 0);
	/* Overflow: 1024 bytes fit, the rest is lost and OE is reported once. */
	uint8_t big[1100];
	for (unsigned i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	uart16550_input(u, big, sizeof(big));
	uint8_t lsr = rd(UART_LSR);
	assert_int_not_equal(lsr & UART_LSR_OE, 0);
	assert_int_equal(rd(UART_LSR) & UART_LSR_OE, 0);
	unsigned n = 0;
	while (rd(UART_LSR) & UART_LSR_DR) {
		assert_int_equal(rd(UART_RBR), (uint8_t)n);
		n++;
	}
	assert_int_equal(n, UART_RX_SIZE);
	/* FCR clear-RX empties the buffer. */
	uart16550_input(u, (const uint8_t *)"xy", 2);
	wr(UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
	assert_int_equal(rd(UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(rd(UART_IIR) & 0xC0, 0xC0); /* FIFOs enabled */
	wr(UART_FCR, 0);
	assert_int_equal(rd(UART_IIR) & 0xC0, 0);
}

static void test_iir_priorities(void **state)
{
	(void)state;
	struct uart *u = setup_com(0);
	wr(UART_FCR, UART_FCR_ENABLE);
	wr(UART_IER, UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI);
	assert_int_equal(rd(UART_IIR), 0xC0 | UART_IIR_THRI); /* enabling ETBEI raised THRE */
	assert_int_equal(rd(UART_IIR), 0xC1);                 /* ...and reading IIR cleared it */
	wr(UART_THR, 'x');                                    /* transmit: THRE again */
	uint8_t fill[UART_RX_SIZE + 1] = {0};
	uart16550_input(u, fill, sizeof(fill)); /* data plus an overrun */
	assert_int_equal(rd(UART_IIR), 0xC0 | UART_IIR_RLSI);
	rd(UART_LSR); /* clears OE */
	assert_int_equal(rd(UART_IIR), 0xC0 | UART_IIR_RDI);
	wr(UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
	assert_int_equal(rd(UART_IIR), 0xC0 | UART_IIR_THRI);
	/* Modem status: in loopback, toggling RTS changes CTS. */
	wr(UART_MCR, UART_MCR_LOOP);
	rd(UART_MSR); /* entering loopback changed the inputs: clear the deltas */
	assert_int_equal(rd(UART_IIR), 0xC1); /* THRE was consumed above */
	wr(UART_MCR, UART_MCR_LOOP | UART_MCR_RTS);
	assert_int_equal(rd(UART_IIR), 0xC0 | UART_IIR_MSI);
	uint8_t msr = rd(UART_MSR);
	assert_int_equal(msr & (UART_MSR_DCTS | UART_MSR_CTS), UART_MSR_DCTS | UART_MSR_CTS);
	assert_int_equal(rd(UART_IIR), 0xC1);
}

static void test_irq_line(void **state)
{
	(void)state;
	struct uart *u = setup_com(0);
	wr(UART_IER, UART_IER_RDI);
	assert_int_equal(irq_level[4], 0);
	uart16550_input(u, (const uint8_t *)"q", 1);
	assert_int_equal(irq_level[4], 1);
	assert_int_equal(rd(UART_RBR), 'q');
	assert_int_equal(irq_level[4], 0);
	/* THRE: raised by enabling it, lowered by reading IIR, raised by THR. */
	wr(UART_IER, UART_IER_RDI | UART_IER_THRI);
	assert_int_equal(irq_level[4], 1);
	rd(UART_IIR);
	assert_int_equal(irq_level[4], 0);
	wr(UART_THR, '.');
	assert_int_equal(irq_level[4], 1);
	wr(UART_IER, 0); /* disabling the source lowers the line */
	assert_int_equal(irq_level[4], 0);
	assert_int_equal(irq_changes[4], 6);
	assert_int_equal(irq_changes[3], 0);
	/* COM2 uses IRQ 3. */
	u = setup_com(1);
	wr(UART_IER, UART_IER_RDI);
	uart16550_input(u, (const uint8_t *)"z", 1);
	assert_int_equal(irq_level[3], 1);
	assert_int_equal(irq_level[4], 0);
}

static void test_loopback(void **state)
{
	(void)state;
	setup_com(0);
	/* Linux's autoconfig check: MCR = LOOP | OUT2 | RTS gives MSR 0x90. */
	wr(UART_MCR, UART_MCR_LOOP | 0x0A);
	assert_int_equal(rd(UART_MSR) & 0xF0, 0x90);
	wr(UART_THR, 0x42);
	assert_int_equal(out_len, 0);
	assert_int_not_equal(rd(UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(rd(UART_RBR), 0x42);
	wr(UART_MCR, 0);
	assert_int_equal(rd(UART_MSR) & 0xF0, 0xB0);
	wr(UART_THR, 0x43);
	assert_int_equal(out_len, 1);
}

static void test_garbage(void **state)
{
	(void)state;
	struct uart *u = setup_com(0);
	const struct bus_range *r = &test_vm.io_bus.ranges[0];
	uint32_t x = 12345;
	for (unsigned i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		uint8_t data[8];
		for (unsigned b = 0; b < 8; b++)
			data[b] = (uint8_t)(x >> (b * 3));
		unsigned size = 1u << (x % 4);
		uint64_t off = (x >> 8) % 10; /* also past the registers */
		bool write = (x >> 12) & 1;
		if (write && off == UART_LCR)
			data[0] &= 0x7F; /* keep DLAB mostly off, so THR/RBR get exercised */
		r->fn(r->opaque, off, write, data, size);
		if ((x >> 20) % 64 == 0)
			uart16550_input(u, data, (x >> 24) % 8);
		assert_int_equal(u->ier & 0xF0, 0);
		assert_true(u->rx_count <= UART_RX_SIZE);
		assert_int_equal(irq_level[4], (uart_iir(u) & UART_IIR_NO_INT) ? 0 : 1);
	}
	/* Still a working UART afterwards. */
	wr(UART_LCR, 0x03);
	wr(UART_MCR, 0);
	assert_int_equal(rd(UART_LSR) & (UART_LSR_THRE | UART_LSR_TEMT), 0x60);
}

static void on_alarm(int sig)
{
	static const char msg[] = "uart_test: a UART write blocked on the stalled reader\n";
	ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)r;
	_exit(128 + sig);
}

/* COM1 on a pipe nobody reads: the guest's writes never block (a blocked
 * write would leave the alarm to end the test); what neither the pipe nor
 * the 64 KiB ring holds is dropped and counted, and stopping the output
 * gives up on the stalled reader instead of waiting for it. */
static void test_stalled_output(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_true(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 4096);
	size_t cap = (size_t)fcntl(p[0], F_GETPIPE_SZ);
	FILE *f = fdopen(p[1], "w");
	assert_non_null(f);
	assert_true(nvms < sizeof(vms) / sizeof(vms[0]));
	nvms++;
	test_vm.io_bus.kind = ZHV_TRAP_IO;
	memset(irq_level, 0, sizeof(irq_level));
	struct uart *u = uart16550_create(&test_vm, 0, f);
	assert_non_null(u);

	signal(SIGALRM, on_alarm);
	alarm(30);
	size_t total = cap + OUTQ_DEFAULT_SIZE + 10000;
	for (size_t i = 0; i < total; i++) {
		assert_int_not_equal(rd(UART_LSR) & UART_LSR_THRE, 0);
		wr(UART_THR, (uint8_t)(i % 251));
	}
	uint64_t dropped = uart16550_stop_output(u, 100);
	alarm(0);
	/* Bytes queued after the stop are dropped too. */
	wr(UART_THR, 'x');
	assert_int_equal(uart16550_stop_output(u, 100), dropped + 1);

	/* The pipe holds a prefix of the output, in order. */
	uint8_t *got = malloc(cap + 1);
	assert_non_null(got);
	assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	size_t n = 0;
	ssize_t r;
	while (n <= cap && (r = read(p[0], got + n, cap + 1 - n)) > 0)
		n += (size_t)r;
	assert_true(n <= cap);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(got[i], i % 251);
	assert_int_equal(n + dropped, total);
	assert_true(dropped >= total - cap - OUTQ_DEFAULT_SIZE);
	free(got);

	uart16550_destroy(u);
	fclose(f);
	close(p[0]);
}

/* A UART with output on a pipe someone reads: everything arrives, and
 * stopping the output waits for the queue to drain. */
static void test_output_drained(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	FILE *f = fdopen(p[1], "w");
	assert_non_null(f);
	assert_true(nvms < sizeof(vms) / sizeof(vms[0]));
	nvms++;
	test_vm.io_bus.kind = ZHV_TRAP_IO;
	memset(irq_level, 0, sizeof(irq_level));
	struct uart *u = uart16550_create(&test_vm, 1, f);
	assert_non_null(u);
	const char *msg = "through the ring\n";
	for (const char *c = msg; *c; c++)
		wr(UART_THR, (uint8_t)*c);
	assert_int_equal(uart16550_stop_output(u, 5000), 0);
	char buf[64] = "";
	assert_int_equal(read(p[0], buf, sizeof(buf)), (ssize_t)strlen(msg));
	assert_string_equal(buf, msg);
	uart16550_destroy(u);
	fclose(f);
	close(p[0]);
}

/* The output's writer thread starts only when a write cannot go out at
 * once: bytes a pipe takes are written by the producer itself (no thread),
 * and once the pipe is full the rest queues for a writer, which delivers
 * everything, in order, when the reader catches up. */
static void test_outq_writer_started_when_needed(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	FILE *f = fdopen(p[1], "w");
	assert_non_null(f);
	struct outq *q = outq_create(f, 1u << 20);
	assert_non_null(q);
	assert_false(q->thread_started);
	assert_int_equal(outq_write(q, "abc", 3), 3);
	assert_false(q->thread_started);
	char buf[4096];
	assert_int_equal(read(p[0], buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "abc", 3);

	/* More than the pipe holds (64 KiB by default, at most 1 MiB). */
	int pipe_size = fcntl(p[1], F_GETPIPE_SZ);
	assert_true(pipe_size > 0);
	size_t total = (size_t)pipe_size + 8192, sent = 0;
	while (sent < total) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (char)((sent + i) % 251);
		assert_int_equal(outq_write(q, buf, sizeof(buf)), sizeof(buf));
		sent += sizeof(buf);
	}
	assert_true(q->thread_started);
	size_t got = 0;
	while (got < sent) {
		ssize_t r = read(p[0], buf, sizeof(buf));
		assert_true(r > 0);
		for (ssize_t i = 0; i < r; i++)
			assert_int_equal((uint8_t)buf[i], (got + (size_t)i) % 251);
		got += (size_t)r;
	}
	assert_int_equal(outq_stop(q, 5000), 0);
	outq_destroy(q);
	fclose(f);
	close(p[0]);
}

/* Output on a closed descriptor (zhv started with stdout closed): the
 * UART still works, its bytes go nowhere, none counts as an overrun. */
static void test_output_closed(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	FILE *f = fdopen(p[1], "w");
	assert_non_null(f);
	close(p[0]);
	close(p[1]);
	assert_true(nvms < sizeof(vms) / sizeof(vms[0]));
	nvms++;
	test_vm.io_bus.kind = ZHV_TRAP_IO;
	memset(irq_level, 0, sizeof(irq_level));
	struct uart *u = uart16550_create(&test_vm, 0, f);
	assert_non_null(u);
	for (int i = 0; i < 100; i++)
		wr(UART_THR, 'z');
	assert_int_not_equal(rd(UART_LSR) & UART_LSR_THRE, 0);
	assert_int_equal(uart16550_stop_output(u, 100), 0);
	uart16550_destroy(u);
	fclose(f);
}

/* ---- snapshot section ------------------------------------------------------- */

/* The same reads, in order, on the UART of (vm) whose line starts at
 * (level): what each returned. */
static void uart_probe(struct vm *vm, struct uart *u, uint8_t *v, unsigned n)
{
	static const uint8_t regs[] = {UART_IIR, UART_LSR, UART_MSR, UART_IER, UART_LCR,
	                               UART_MCR, UART_SCR, UART_IIR, UART_RBR, UART_RBR,
	                               UART_RBR, UART_RBR, UART_IIR, UART_LSR, UART_MSR};
	unsigned k = 0;
	irq_level[u->irq] = u->irq_level;
	for (unsigned i = 0; i < sizeof(regs) && k < n; i++)
		v[k++] = (uint8_t)snapt_io(&vm->io_bus, 0x2F8 + regs[i], false, 0, 1);
	/* The next accesses: one byte through the loopback, the divisor. */
	snapt_io(&vm->io_bus, 0x2F8 + UART_THR, true, 'z', 1);
	v[k++] = (uint8_t)snapt_io(&vm->io_bus, 0x2F8 + UART_IIR, false, 0, 1);
	v[k++] = (uint8_t)snapt_io(&vm->io_bus, 0x2F8 + UART_LSR, false, 0, 1);
	v[k++] = (uint8_t)snapt_io(&vm->io_bus, 0x2F8 + UART_RBR, false, 0, 1);
	snapt_io(&vm->io_bus, 0x2F8 + UART_LCR, true, 0x9B, 1);
	v[k++] = (uint8_t)snapt_io(&vm->io_bus, 0x2F8 + UART_DLL, false, 0, 1);
	v[k++] = (uint8_t)snapt_io(&vm->io_bus, 0x2F8 + UART_DLM, false, 0, 1);
	assert_int_equal(k, n);
}

/* A UART with every kind of state (divisor, loopback, MSR deltas, bytes
 * waiting, an overrun, a pending interrupt) saves, loads into a fresh one,
 * which then answers every read as the first does. Damaged sections are
 * refused and change nothing. */
static void test_snapshot(void **state)
{
	(void)state;
	struct uart *a = setup_com(1);
	struct vm *va = &test_vm;
	assert_non_null(snapt_find(va, "uart1"));
	wr(UART_LCR, 0x83);
	wr(UART_DLL, 0x0C);
	wr(UART_DLM, 0x01);
	wr(UART_LCR, 0x1B);
	wr(UART_SCR, 0xA5);
	wr(UART_FCR, 0xC1);
	wr(UART_MCR, 0x1B); /* loopback, DTR RTS OUT2: MSR deltas */
	wr(UART_THR, 'a');
	wr(UART_THR, 'b');
	uint8_t fill[UART_RX_SIZE];
	memset(fill, 'c', sizeof(fill));
	uart16550_input(a, fill, sizeof(fill)); /* full: an overrun */
	wr(UART_IER, 0x0F);
	assert_int_equal(a->irq_level, 1);

	struct snap_writer w;
	snapt_save(va, "uart1", &w);
	assert_int_equal(w.len, 12 + UART_RX_SIZE);

	nvms++;
	struct vm *vb = &test_vm;
	vb->io_bus.kind = ZHV_TRAP_IO;
	struct uart *b = uart16550_create(vb, 1, NULL);
	assert_non_null(b);
	snapt_check_bad_lengths(vb, "uart1", w.buf, w.len, 0);
	snapt_check_bad_byte(vb, "uart1", w.buf, w.len, 0, 0x10, 0);  /* IER bit 4 */
	snapt_check_bad_byte(vb, "uart1", w.buf, w.len, 2, 0x20, 0);  /* MCR bit 5 */
	snapt_check_bad_byte(vb, "uart1", w.buf, w.len, 6, 0x03, 0);  /* FCR clear bit */
	snapt_check_bad_byte(vb, "uart1", w.buf, w.len, 7, 0x10, 0);  /* MSR delta */
	snapt_check_bad_byte(vb, "uart1", w.buf, w.len, 8, 2, 0);     /* a bool */
	snapt_check_bad_byte(vb, "uart1", w.buf, w.len, 11, 0x05, 0); /* rx_count > 1024 */
	assert_int_equal(snapt_load(vb, "uart1", w.buf, w.len), 0);
	assert_int_equal(b->irq_level, a->irq_level);
	struct snap_writer w2;
	snapt_save(vb, "uart1", &w2);
	assert_int_equal(w2.len, w.len);
	assert_memory_equal(w2.buf, w.buf, w.len);
	snap_writer_free(&w2);

	uint8_t ra[20], rb[20];
	uart_probe(va, a, ra, sizeof(ra));
	uart_probe(vb, b, rb, sizeof(rb));
	assert_memory_equal(ra, rb, sizeof(ra));
	assert_int_equal(ra[1] & (UART_LSR_DR | UART_LSR_OE), UART_LSR_DR | UART_LSR_OE);
	assert_int_equal(ra[8], 'a');
	assert_int_equal(b->irq_level, a->irq_level);
	snap_writer_free(&w);
	uart16550_destroy(b);
	vb->io_bus.count = 0;
}

static int teardown(void **state)
{
	(void)state;
	if (out)
		fclose(out);
	out = NULL;
	free(out_buf);
	out_buf = NULL;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reset_state),
		cmocka_unit_test(test_ports_and_irqs),
		cmocka_unit_test(test_dlab_switching),
		cmocka_unit_test(test_transmit),
		cmocka_unit_test(test_rx_buffer),
		cmocka_unit_test(test_iir_priorities),
		cmocka_unit_test(test_irq_line),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_stalled_output),
		cmocka_unit_test(test_outq_writer_started_when_needed),
		cmocka_unit_test(test_output_drained),
		cmocka_unit_test(test_output_closed),
		cmocka_unit_test(test_snapshot),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
