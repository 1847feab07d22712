/* rt.c: the runtime's core: start-up, IDT, COM1 output, exits, the
 * spinlock and the few C library routines freestanding code needs. */
#include "rt.h"

void rt_start(uint32_t magic, const struct rt_mbi *mbi);
void rt_isr_dispatch(struct rt_frame *frame);
extern const uint8_t rt_isr_stubs_start[];

static const struct rt_mbi *boot_mbi;
uint32_t rt_boot_magic;
static rt_handler_fn handlers[256];
volatile uint32_t rt_spurious;

/* ---- C library ----------------------------------------------------------- */

void *memset(void *dst, int c, size_t n)
{
	uint8_t *d = dst;
	while (n--)
		*d++ = (uint8_t)c;
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	while (n--)
		*d++ = *s++;
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	for (; n; n--, x++, y++) {
		if (*x != *y)
			return *x - *y;
	}
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* ---- output ------------------------------------------------------------------ */

void rt_spin_lock(volatile uint32_t *lock)
{
	for (;;) {
		uint32_t v = 1;
		__asm__ volatile("lock xchgl %0, %1" : "+r"(v), "+m"(*lock) : : "memory");
		if (!v)
			return;
		while (*lock)
			rt_pause();
	}
}

void rt_spin_unlock(volatile uint32_t *lock)
{
	__asm__ volatile("" ::: "memory");
	*lock = 0;
}

static volatile uint32_t out_lock;

static void uart_putc(char c)
{
	for (unsigned i = 0; i < 100000 && !(inb(RT_COM1 + 5) & 0x20); i++)
		rt_pause();
	outb(RT_COM1, (uint8_t)c);
}

struct buf {
	char p[192];
	size_t len;
};

static void put(struct buf *b, char c)
{
	if (b->len + 1 < sizeof(b->p))
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
			if (v < 0)
				put(b, '-');
			put_uint(b, v < 0 ? 0u - (uint32_t)v : (uint32_t)v, 10);
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

static void emit(const struct buf *b)
{
	rt_spin_lock(&out_lock);
	for (size_t i = 0; i < b->len; i++)
		uart_putc(b->p[i]);
	rt_spin_unlock(&out_lock);
}

void rt_printf(const char *fmt, ...)
{
	struct buf b = {.len = 0};
	va_list ap;
	va_start(ap, fmt);
	format(&b, fmt, ap);
	va_end(ap);
	emit(&b);
}

void rt_puts(const char *s)
{
	rt_printf("%s\n", s);
}

/* ---- exits ----------------------------------------------------------------------- */

void rt_exit(uint32_t code)
{
	outl(RT_DEBUG_EXIT_PORT, code);
	rt_halt_forever(); /* no debug-exit device: stop here */
}

void rt_pass(void)
{
	rt_puts("PASS");
	rt_exit(RT_PASS);
}

void rt_fail(const char *fmt, ...)
{
	struct buf b = {.len = 0};
	const char *p = "FAIL: ";
	while (*p)
		put(&b, *p++);
	va_list ap;
	va_start(ap, fmt);
	format(&b, fmt, ap);
	va_end(ap);
	put(&b, '\n');
	emit(&b);
	rt_exit(RT_FAIL);
}

/* ---- command line ------------------------------------------------------------------ */

const char *rt_cmdline(void)
{
	if (!boot_mbi || !(boot_mbi->flags & RT_MB_CMDLINE) || !boot_mbi->cmdline)
		return "";
	return (const char *)(uintptr_t)boot_mbi->cmdline;
}

uint32_t rt_cmdline_uint(const char *key, uint32_t def)
{
	const char *s = rt_cmdline();
	size_t klen = strlen(key);
	for (; *s; s++) {
		if ((s != rt_cmdline() && s[-1] != ' ') || memcmp(s, key, klen) || s[klen] != '=')
			continue;
		s += klen + 1;
		uint32_t v = 0, base = 10;
		if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
			base = 16;
			s += 2;
		}
		for (;; s++) {
			unsigned d;
			if (*s >= '0' && *s <= '9')
				d = (unsigned)(*s - '0');
			else if (base == 16 && *s >= 'a' && *s <= 'f')
				d = (unsigned)(*s - 'a' + 10);
			else if (base == 16 && *s >= 'A' && *s <= 'F')
				d = (unsigned)(*s - 'A' + 10);
			else
				break;
			v = v * base + d;
		}
		return v;
	}
	return def;
}

/* ---- interrupts ---------------------------------------------------------------------- */

struct idt_gate {
	uint16_t offset_lo, selector;
	uint8_t zero, type;
	uint16_t offset_hi;
};
static struct idt_gate idt[256] __attribute__((aligned(8)));

void rt_set_handler(unsigned vector, rt_handler_fn fn)
{
	if (vector < 256)
		handlers[vector] = fn;
}

void rt_isr_dispatch(struct rt_frame *f)
{
	rt_handler_fn fn = f->vector < 256 ? handlers[f->vector] : 0;
	if (fn) {
		fn(f);
		return;
	}
	if (f->vector < 32) {
		rt_printf("rt: exception %u (error %x) at eip %x\n", f->vector, f->error, f->eip);
		rt_exit(RT_EXIT_EXCEPTION);
	}
	rt_spurious++;
}

static void idt_init(void)
{
	for (unsigned v = 0; v < 256; v++) {
		uint32_t addr = (uint32_t)(uintptr_t)(rt_isr_stubs_start + 16 * v);
		idt[v] = (struct idt_gate){
			.offset_lo = (uint16_t)addr,
			.selector = 0x08,
			.type = 0x8E, /* present, DPL 0, 32-bit interrupt gate */
			.offset_hi = (uint16_t)(addr >> 16),
		};
	}
	struct {
		uint16_t limit;
		uint32_t base;
	} __attribute__((packed)) desc = {sizeof(idt) - 1, (uint32_t)(uintptr_t)idt};
	__asm__ volatile("lidt %0" : : "m"(desc));
}

void rt_start(uint32_t magic, const struct rt_mbi *mbi)
{
	rt_boot_magic = magic;
	boot_mbi = magic == RT_MB_MAGIC ? mbi : 0;
	idt_init();
	rt_exit((uint32_t)test_main(boot_mbi));
}

void rt_load_idt(void)
{
	struct {
		uint16_t limit;
		uint32_t base;
	} __attribute__((packed)) desc = {sizeof(idt) - 1, (uint32_t)(uintptr_t)idt};
	__asm__ volatile("lidt %0" : : "m"(desc));
}
