/* dev_rtc.c: the MC146818 RTC from the guest side: the time registers
 * (valid BCD, the century, the host's date: the script passes
 * "ymd=0xYYYYMMDD hm=0xHHMM" from `date -u`), status registers A-D,
 * binary and 12-hour formats, setting the time under B.SET, the
 * update-ended and alarm interrupts, and the periodic interrupt on IRQ 8
 * (I/O APIC pin 8), which stays asserted until register C is read. */
#include "apic.h"
#include "group.h"

#define RTC_INDEX 0x70
#define RTC_DATA 0x71
#define SEC 0x00
#define SEC_ALARM 0x01
#define MIN 0x02
#define MIN_ALARM 0x03
#define HOUR 0x04
#define HOUR_ALARM 0x05
#define DOW 0x06
#define DOM 0x07
#define MONTH 0x08
#define YEAR 0x09
#define REG_A 0x0A
#define REG_B 0x0B
#define REG_C 0x0C
#define REG_D 0x0D
#define CENTURY 0x32
#define A_UIP 0x80
#define B_SET 0x80
#define B_PIE 0x40
#define B_AIE 0x20
#define B_UIE 0x10
#define B_DM 0x04
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40
#define C_AF 0x20
#define C_UF 0x10
#define D_VRT 0x80

#define RTC_PIN 8
#define VEC_RTC 0x38

static uint8_t rd(uint8_t reg)
{
	outb(RTC_INDEX, reg);
	return inb(RTC_DATA);
}

static void wr(uint8_t reg, uint8_t v)
{
	outb(RTC_INDEX, reg);
	outb(RTC_DATA, v);
}

static bool bcd_ok(uint8_t v)
{
	return (v & 0x0F) <= 9 && (v >> 4) <= 9;
}

static unsigned bcd(uint8_t v)
{
	return (v >> 4) * 10u + (v & 0x0Fu);
}

struct rtc_time {
	uint8_t sec, min, hour, dow, dom, month, year, century;
};

/* A consistent snapshot: wait for UIP to clear, read, and read again
 * until two reads agree (an update may fall between). */
static void read_time(struct rtc_time *t)
{
	struct rtc_time a, b;
	for (unsigned tries = 0; tries < 10; tries++) {
		uint32_t t0 = rt_pmtimer();
		while ((rd(REG_A) & A_UIP) && rt_us_since(t0) < 10000)
			rt_pause();
		a = (struct rtc_time){rd(SEC), rd(MIN), rd(HOUR), rd(DOW), rd(DOM), rd(MONTH), rd(YEAR),
		                      rd(CENTURY)};
		b = (struct rtc_time){rd(SEC), rd(MIN), rd(HOUR), rd(DOW), rd(DOM), rd(MONTH), rd(YEAR),
		                      rd(CENTURY)};
		if (!memcmp(&a, &b, sizeof(a)))
			break;
	}
	*t = a;
}

/* Day of the week, 1 = Sunday (Sakamoto's method). */
static unsigned weekday(unsigned y, unsigned m, unsigned d)
{
	static const unsigned off[12] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
	if (m < 3)
		y--;
	return (y + y / 4 - y / 100 + y / 400 + off[m - 1] + d) % 7 + 1;
}

static volatile uint32_t irqs;
static volatile uint8_t last_c;
static volatile bool read_c_in_handler = true;

static void on_rtc(struct rt_frame *f)
{
	(void)f;
	if (read_c_in_handler)
		last_c = rd(REG_C);
	irqs++;
	rt_lapic_eoi();
}

static void irq_setup(void)
{
	rt_lapic_enable();
	rt_set_handler(VEC_RTC, on_rtc);
	rt_ioapic_route(RTC_PIN, VEC_RTC, 0, 0);
	rt_sti();
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	uint32_t ymd = rt_cmdline_uint("ymd", 0), hm = rt_cmdline_uint("hm", 0xFFFF);
	if (!ymd || hm == 0xFFFF)
		rt_fail("no ymd=0xYYYYMMDD hm=0xHHMM on the command line");

	/* ---- status registers after power-on ---- */
	uint8_t a = rd(REG_A), b = rd(REG_B), d = rd(REG_D);
	RT_EXPECT((a & 0x7F) == 0x26, "register A %x, want 0x26 (32 kHz, 1024 Hz)", a);
	RT_EXPECT(b == B_24H, "register B %x, want 0x02 (24-hour, BCD)", b);
	RT_EXPECT(d == D_VRT, "register D %x, want 0x80 (valid RAM and time)", d);
	uint8_t c = rd(REG_C);
	RT_EXPECT(!(c & C_IRQF), "register C %x: IRQF with no interrupt enabled", c);
	wr(REG_D, 0);
	RT_EXPECT(rd(REG_D) == D_VRT, "register D is writable");
	outb(RTC_INDEX, 0x80 | 0x40); /* bit 7 of the index masks NMI: still CMOS 0x40 */
	outb(RTC_DATA, 0x5A);
	RT_EXPECT(rd(0x40) == 0x5A, "CMOS byte 0x40 (written with NMI-mask index) reads %x",
	          rd(0x40));
	RT_GROUP_OK("rtc-status");

	/* ---- CMOS contents a BIOS leaves (memory sizes, CPUs, checksum) ---- */
	unsigned mem_mib = rt_cmdline_uint("mem", 0), cpus = rt_cmdline_uint("cpus", 1);
	unsigned sum = 0;
	for (uint8_t i = 0x10; i <= 0x2D; i++)
		sum += rd(i);
	unsigned stored = (unsigned)rd(0x2E) << 8 | rd(0x2F);
	RT_EXPECT(sum == stored, "CMOS checksum %x, bytes 0x10-0x2d sum to %x", stored, sum);
	unsigned base_kib = rd(0x15) | (unsigned)rd(0x16) << 8;
	RT_EXPECT(base_kib == 640, "base memory %u KiB", base_kib);
	if (mem_mib) {
		unsigned ext = rd(0x17) | (unsigned)rd(0x18) << 8;
		unsigned ext16 = rd(0x34) | (unsigned)rd(0x35) << 8;
		unsigned want = (mem_mib - 1) * 1024;
		RT_EXPECT(ext == (want > 0xFFFF ? 0xFFFF : want), "extended memory %u KiB for %u MiB",
		          ext, mem_mib);
		RT_EXPECT(ext16 == (mem_mib - 16) * 16, "memory above 16 MiB: %u x 64 KiB", ext16);
	}
	RT_EXPECT(rd(0x5F) == cpus - 1, "CMOS 0x5f (CPUs - 1) is %u for %u CPUs", rd(0x5F), cpus);
	RT_GROUP_OK("rtc-cmos");

	/* ---- the time registers ---- */
	struct rtc_time t;
	read_time(&t);
	rt_printf("rtc: %x%x-%x-%x %x:%x:%x dow %x; host %x %x\n", t.century, t.year, t.month, t.dom,
	          t.hour, t.min, t.sec, t.dow, ymd, hm);
	const uint8_t *f = &t.sec;
	for (unsigned i = 0; i < sizeof(t); i++)
		RT_EXPECT(bcd_ok(f[i]), "field %u is %x: not BCD", i, f[i]);
	RT_EXPECT(bcd(t.sec) < 60 && bcd(t.min) < 60 && bcd(t.hour) < 24, "time %x:%x:%x", t.hour,
	          t.min, t.sec);
	RT_EXPECT(bcd(t.month) >= 1 && bcd(t.month) <= 12 && bcd(t.dom) >= 1 && bcd(t.dom) <= 31,
	          "date %x-%x", t.month, t.dom);
	RT_EXPECT(t.century == 0x20, "century %x, want 0x20", t.century);
	uint32_t rtc_ymd = (uint32_t)t.century << 24 | (uint32_t)t.year << 16 |
	                   (uint32_t)t.month << 8 | t.dom;
	unsigned rtc_min = bcd(t.hour) * 60 + bcd(t.min);
	unsigned host_min = bcd((uint8_t)(hm >> 8)) * 60 + bcd((uint8_t)hm);
	unsigned diff = (rtc_min + 1440 - host_min) % 1440;
	RT_EXPECT(diff <= 2, "RTC time %x:%x is %u min from the host's %x", t.hour, t.min, diff, hm);
	/* The date matches, unless midnight passed since the host's clock. */
	RT_EXPECT(rtc_ymd == ymd || (host_min >= 1438 && rtc_min < 2),
	          "RTC date %x, host date %x", rtc_ymd, ymd);
	unsigned year = bcd(t.century) * 100 + bcd(t.year);
	RT_EXPECT(bcd(t.dow) == weekday(year, bcd(t.month), bcd(t.dom)),
	          "day of week %x for %u-%u-%u", t.dow, year, bcd(t.month), bcd(t.dom));
	RT_GROUP_OK("rtc-time");

	/* ---- binary and 12-hour modes ---- */
	wr(REG_B, B_24H | B_DM);
	struct rtc_time tb;
	read_time(&tb);
	RT_EXPECT(tb.century == 20 && tb.year == bcd(t.year) && tb.month == bcd(t.month),
	          "binary mode: %u %u %u", tb.century, tb.year, tb.month);
	RT_EXPECT(tb.sec < 60 && tb.min < 60 && tb.hour < 24, "binary time %u:%u:%u", tb.hour,
	          tb.min, tb.sec);
	wr(REG_B, B_DM); /* 12-hour, binary */
	uint8_t h12 = rd(HOUR);
	wr(REG_B, B_DM | B_24H);
	uint8_t h24 = rd(HOUR);
	unsigned h = (h12 & 0x7F) % 12 + ((h12 & 0x80) ? 12 : 0);
	RT_EXPECT((h12 & 0x7F) >= 1 && (h12 & 0x7F) <= 12, "12-hour mode hour %x", h12);
	RT_EXPECT(h == h24 || (h + 1) % 24 == h24, "12-hour %x is not 24-hour %u", h12, h24);
	wr(REG_B, B_24H);
	RT_GROUP_OK("rtc-formats");

	/* ---- setting the time under SET ---- */
	wr(REG_B, B_24H | B_SET);
	wr(SEC, 0x30);
	wr(MIN, 0x45);
	wr(HOUR, 0x12);
	wr(DOW, 0x07);
	wr(DOM, 0x15);
	wr(MONTH, 0x06);
	wr(YEAR, 0x24);
	wr(CENTURY, 0x20);
	read_time(&t);
	RT_EXPECT(t.sec == 0x30 && t.min == 0x45 && t.hour == 0x12 && t.dom == 0x15 &&
	              t.month == 0x06 && t.year == 0x24 && t.century == 0x20,
	          "under SET: %x%x-%x-%x %x:%x:%x", t.century, t.year, t.month, t.dom, t.hour, t.min,
	          t.sec);
	RT_EXPECT(t.dow == 7, "2024-06-15 is a Saturday (7), DOW reads %x", t.dow);
	rt_delay_us(1100000);
	RT_EXPECT(rd(SEC) == 0x30, "the clock ran while SET was on: %x", rd(SEC));
	/* Run from 12:45:30 with the update-ended and alarm interrupts on
	 * (alarm bytes >= 0xc0 match any time): both flag at the next second. */
	irq_setup();
	wr(SEC_ALARM, 0xFF);
	wr(MIN_ALARM, 0xC0);
	wr(HOUR_ALARM, 0xC0);
	(void)rd(REG_C);
	uint32_t t_run = rt_pmtimer();
	wr(REG_B, B_24H | B_UIE | B_AIE);
	bool uie = rt_wait_count(&irqs, 1, 3000000);
	wr(REG_B, B_24H);
	uint8_t c_uie = last_c;
	(void)rd(REG_C);
	RT_EXPECT(uie, "no update-ended/alarm interrupt in 3 s");
	RT_EXPECT((c_uie & (C_IRQF | C_UF | C_AF)) == (C_IRQF | C_UF | C_AF),
	          "C read %x at the update interrupt, want IRQF|UF|AF", c_uie);
	while (rt_us_since(t_run) < 1100000)
		rt_pause();
	read_time(&t);
	RT_EXPECT(t.min == 0x45 && t.hour == 0x12 && t.sec >= 0x31 && t.sec <= 0x35,
	          "1.1 s after SET cleared: %x:%x:%x, want 12:45:31 or a little later", t.hour,
	          t.min, t.sec);
	RT_GROUP_OK("rtc-set");
	RT_GROUP_OK("rtc-update-alarm-irq8");

	/* ---- periodic interrupt, 128 Hz ---- */
	irqs = 0;
	wr(REG_A, 0x29); /* RS = 9: 128 Hz, 7.8 ms */
	(void)rd(REG_C);
	uint32_t t0 = rt_pmtimer();
	wr(REG_B, B_24H | B_PIE);
	bool got = rt_wait_count(&irqs, 10, 5000000);
	uint32_t us = rt_us_since(t0);
	RT_EXPECT(got, "periodic: %u interrupts in 5 s", irqs);
	RT_EXPECT(us >= 50000, "periodic: 10 interrupts at 128 Hz after only %u us", us);
	RT_EXPECT((last_c & (C_IRQF | C_PF)) == (C_IRQF | C_PF), "periodic: C read %x in the handler",
	          last_c);
	rt_printf("rtc: 10 periodic interrupts in %u ms\n", us / 1000);
	RT_GROUP_OK("rtc-periodic-irq8");

	/* ---- without reading C, IRQ 8 stays asserted: no new edge ---- */
	read_c_in_handler = false;
	wr(REG_B, B_24H); /* PIE off while switching */
	(void)rd(REG_C);
	irqs = 0;
	wr(REG_B, B_24H | B_PIE);
	RT_EXPECT(rt_wait_count(&irqs, 1, 2000000), "periodic: no interrupt with PIE set");
	rt_delay_us(100000);
	RT_EXPECT(irqs == 1, "periodic: %u interrupts while C was never read", irqs);
	c = rd(REG_C);
	RT_EXPECT((c & (C_IRQF | C_PF)) == (C_IRQF | C_PF), "C reads %x, want IRQF|PF", c);
	RT_EXPECT(rt_wait_count(&irqs, 2, 2000000), "reading C did not re-arm the interrupt");
	wr(REG_B, B_24H);
	wr(REG_A, 0x20); /* no periodic rate */
	(void)rd(REG_C);
	c = rd(REG_C);
	RT_EXPECT(!(c & (C_IRQF | C_PF)), "C reads %x right after a read", c);
	uint32_t before = irqs;
	rt_delay_us(30000);
	RT_EXPECT(irqs == before && !(rd(REG_C) & (C_IRQF | C_PF)), "flags or interrupts with PIE off");
	wr(REG_A, 0x26);
	RT_GROUP_OK("rtc-reg-c-clears");
	rt_pass();
}
