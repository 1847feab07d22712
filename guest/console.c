/* console.c: output on COM1 (16550 at 0x3f8), one formatted line at a time
 * under a spinlock so that CPUs never interleave within a line. */
#include "guest.h"

#define COM1 0x3f8
#define UART_LSR 5
#define UART_LSR_THRE 0x20

static volatile uint32_t console_lock;

static void uart_putc(char c)
{
	/* Wait for room in the transmitter, but not forever. */
	for (unsigned i = 0; i < 100000 && !(inb(COM1 + UART_LSR) & UART_LSR_THRE); i++)
		cpu_relax();
	outb(COM1, (uint8_t)c);
}

struct buf {
	char *p;
	size_t len, cap;
};

static void put(struct buf *b, char c)
{
	if (b->len + 1 < b->cap)
		b->p[b->len++] = c;
}

static void put_uint(struct buf *b, uint32_t v, unsigned base)
{
	char tmp[12];
	int n = 0;
	do {
		unsigned d = v % base;
		tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	while (n)
		put(b, tmp[--n]);
}

static void format(struct buf *b, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(b, *fmt);
			continue;
		}
		switch (*++fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			while (s && *s)
				put(b, *s++);
			break;
		}
		case 'c':
			put(b, (char)va_arg(ap, int));
			break;
		case 'd': {
			int v = va_arg(ap, int);
			if (v < 0) {
				put(b, '-');
				put_uint(b, 0u - (uint32_t)v, 10);
			} else {
				put_uint(b, (uint32_t)v, 10);
			}
			break;
		}
		case 'u':
			put_uint(b, va_arg(ap, unsigned), 10);
			break;
		case 'x':
			put_uint(b, va_arg(ap, unsigned), 16);
			break;
		case '%':
			put(b, '%');
			break;
		case '\0':
			return;
		default:
			put(b, '%');
			put(b, *fmt);
			break;
		}
	}
}

void console_printf(const char *fmt, ...)
{
	char line[160];
	struct buf b = {line, 0, sizeof(line)};
	va_list ap;
	va_start(ap, fmt);
	format(&b, fmt, ap);
	va_end(ap);
	spin_lock(&console_lock);
	for (size_t i = 0; i < b.len; i++)
		uart_putc(line[i]);
	spin_unlock(&console_lock);
}
