/* rtc.c: MC146818 CMOS RTC at 0x70/0x71: host UTC time of day, status A-D, 128 bytes of CMOS, update/alarm/periodic interrupts on IRQ 8. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../devices.h"
#include "../vm.h"
#include "thread.h"

/* clang-format off */
#define RTC_PORT     0x70u /* 0x70 index (bit 7: NMI mask), 0x71 data */
#define RTC_IRQ      8u
#define RTC_NS       1000000000ll
#define RTC_CMOS_SIZE 128u

/* Registers (Motorola MC146818A datasheet, "Address Map"). */
#define RTC_SECONDS       0x00
#define RTC_SECONDS_ALARM 0x01
#define RTC_MINUTES       0x02
#define RTC_MINUTES_ALARM 0x03
#define RTC_HOURS         0x04
#define RTC_HOURS_ALARM   0x05
#define RTC_DAY_OF_WEEK   0x06 /* 1 = Sunday */
#define RTC_DAY_OF_MONTH  0x07
#define RTC_MONTH         0x08
#define RTC_YEAR          0x09
#define RTC_REG_A         0x0A
#define RTC_REG_B         0x0B
#define RTC_REG_C         0x0C
#define RTC_REG_D         0x0D
#define RTC_CENTURY       0x32 /* IBM PC convention; the FADT's CENTURY field */

#define RTC_A_UIP   0x80 /* update in progress */
#define RTC_A_DV    0x70 /* divider; 010 = 32.768 kHz time base */
#define RTC_A_RS    0x0F /* periodic rate select */
#define RTC_B_SET   0x80 /* halt updates while the time is written */
#define RTC_B_PIE   0x40
#define RTC_B_AIE   0x20
#define RTC_B_UIE   0x10
#define RTC_B_DM    0x04 /* 1: binary, 0: BCD */
#define RTC_B_24H   0x02
#define RTC_C_IRQF  0x80
#define RTC_C_PF    0x40
#define RTC_C_AF    0x20
#define RTC_C_UF    0x10
#define RTC_D_VRT   0x80 /* valid RAM and time */
#define RTC_ALARM_ANY 0xC0 /* an alarm byte >= 0xC0 matches anything */
#define RTC_UIP_NS  244000 /* UIP is set 244 us before the update */
/* clang-format on */

struct rtc {
	pthread_mutex_t lock; /* everything below */
	pthread_cond_t cond;  /* wakes the thread when A, B or C change */
	struct vm *vm;
	uint8_t cmos[RTC_CMOS_SIZE]; /* A-D and CMOS RAM; time registers are computed */
	uint8_t index;
	int64_t offset_s;    /* guest time = host CLOCK_REALTIME + offset_s */
	struct tm shadow;    /* the time while B.SET holds updates */
	int64_t last_sec;    /* guest second of the last update cycle */
	int64_t periodic_next; /* CLOCK_MONOTONIC of the next periodic flag */
	int irq_level;
	bool alarm_out;      /* an alarm interrupt fired: tell the ACPI hardware */
	pthread_t thread;
	bool thread_started; /* the thread starts when B first enables an interrupt */
	bool stopping;       /* rtc_destroy: the thread returns */
};

static int64_t rtc_clock(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * RTC_NS + ts.tv_nsec;
}

static int64_t rtc_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Periodic rate (datasheet Table 5, 32.768 kHz base): RS 1-2 are 256 and
 * 128 Hz, RS n >= 3 is 65536 >> n Hz. 0: none. Fastest: 122 us. */
static int64_t rtc_period_ns(const struct rtc *r)
{
	unsigned rs = r->cmos[RTC_REG_A] & RTC_A_RS;
	if (rs == 0)
		return 0;
	if (rs < 3)
		rs += 7;
	return (int64_t)(1u << (rs - 1)) * RTC_NS / 32768;
}

static uint8_t rtc_to_reg(const struct rtc *r, int v)
{
	if (v < 0)
		v = 0;
	if (r->cmos[RTC_REG_B] & RTC_B_DM)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) % 10) << 4 | v % 10);
}

static int rtc_from_reg(const struct rtc *r, uint8_t v)
{
	if (r->cmos[RTC_REG_B] & RTC_B_DM)
		return v;
	return (v >> 4) * 10 + (v & 0x0F);
}

static uint8_t rtc_hour_to_reg(const struct rtc *r, int hour)
{
	if (r->cmos[RTC_REG_B] & RTC_B_24H)
		return rtc_to_reg(r, hour);
	int h = hour % 12;
	return (uint8_t)(rtc_to_reg(r, h ? h : 12) | (hour >= 12 ? 0x80 : 0));
}

static int rtc_hour_from_reg(const struct rtc *r, uint8_t v)
{
	if (r->cmos[RTC_REG_B] & RTC_B_24H)
		return rtc_from_reg(r, v);
	int h = rtc_from_reg(r, v & 0x7F) % 12;
	return (v & 0x80) ? h + 12 : h;
}

/* The guest's time of day. */
static void rtc_now_tm(const struct rtc *r, int64_t real_ns, struct tm *tm)
{
	if (r->cmos[RTC_REG_B] & RTC_B_SET) {
		*tm = r->shadow;
		return;
	}
	time_t t = (time_t)(rtc_floor_div(real_ns, RTC_NS) + r->offset_s);
	if (!gmtime_r(&t, tm))
		memset(tm, 0, sizeof(*tm));
}

static uint8_t rtc_time_reg(const struct rtc *r, unsigned idx, const struct tm *tm)
{
	switch (idx) {
	case RTC_SECONDS:
		return rtc_to_reg(r, tm->tm_sec);
	case RTC_MINUTES:
		return rtc_to_reg(r, tm->tm_min);
	case RTC_HOURS:
		return rtc_hour_to_reg(r, tm->tm_hour);
	case RTC_DAY_OF_WEEK:
		return rtc_to_reg(r, tm->tm_wday + 1);
	case RTC_DAY_OF_MONTH:
		return rtc_to_reg(r, tm->tm_mday);
	case RTC_MONTH:
		return rtc_to_reg(r, tm->tm_mon + 1);
	case RTC_YEAR:
		return rtc_to_reg(r, (tm->tm_year + 1900) % 100);
	default: /* RTC_CENTURY */
		return rtc_to_reg(r, (tm->tm_year + 1900) / 100);
	}
}

static bool rtc_is_time_reg(unsigned idx)
{
	return idx == RTC_SECONDS || idx == RTC_MINUTES || idx == RTC_HOURS ||
	       (idx >= RTC_DAY_OF_WEEK && idx <= RTC_YEAR) || idx == RTC_CENTURY;
}

/* The guest writes one field of the date: with B.SET it lands in the
 * frozen shadow (applied when SET clears), else the offset moves now. */
static void rtc_write_time(struct rtc *r, unsigned idx, uint8_t v, int64_t real_ns)
{
	struct tm tm;
	rtc_now_tm(r, real_ns, &tm);
	int year = tm.tm_year + 1900;
	switch (idx) {
	case RTC_SECONDS:
		tm.tm_sec = rtc_from_reg(r, v);
		break;
	case RTC_MINUTES:
		tm.tm_min = rtc_from_reg(r, v);
		break;
	case RTC_HOURS:
		tm.tm_hour = rtc_hour_from_reg(r, v);
		break;
	case RTC_DAY_OF_WEEK:
		return; /* derived from the date */
	case RTC_DAY_OF_MONTH:
		tm.tm_mday = rtc_from_reg(r, v);
		break;
	case RTC_MONTH:
		tm.tm_mon = rtc_from_reg(r, v) - 1;
		break;
	case RTC_YEAR:
		tm.tm_year = year - year % 100 + rtc_from_reg(r, v) % 100 - 1900;
		break;
	default: /* RTC_CENTURY */
		tm.tm_year = rtc_from_reg(r, v) * 100 + year % 100 - 1900;
		break;
	}
	tm.tm_isdst = 0;
	if (r->cmos[RTC_REG_B] & RTC_B_SET) {
		/* The day of the week follows the date here too, not only
		 * once SET clears; the other fields stay as written (the
		 * guest may be half-way through a date). */
		struct tm norm = tm;
		if (timegm(&norm) != (time_t)-1)
			tm.tm_wday = norm.tm_wday;
		r->shadow = tm;
		return;
	}
	time_t t = timegm(&tm); /* normalizes garbage fields */
	if (t == (time_t)-1)
		return;
	r->offset_s = (int64_t)t - rtc_floor_div(real_ns, RTC_NS);
}

static bool rtc_alarm_match(const struct rtc *r, const struct tm *tm)
{
	static const struct {
		uint8_t alarm, time;
	} pairs[3] = {
		{RTC_SECONDS_ALARM, RTC_SECONDS},
		{RTC_MINUTES_ALARM, RTC_MINUTES},
		{RTC_HOURS_ALARM, RTC_HOURS},
	};
	for (unsigned i = 0; i < 3; i++) {
		uint8_t a = r->cmos[pairs[i].alarm];
		if ((a & RTC_ALARM_ANY) != RTC_ALARM_ANY && a != rtc_time_reg(r, pairs[i].time, tm))
			return false;
	}
	return true;
}

/* Bring the flags in C up to (now): an update cycle at each new second
 * (UF, AF on a match), PF at each period. Computed lazily; the thread
 * only calls this when an interrupt is enabled. */
static void rtc_catch_up(struct rtc *r, int64_t real_ns, int64_t mono_ns)
{
	uint8_t *c = &r->cmos[RTC_REG_C];
	if (!(r->cmos[RTC_REG_B] & RTC_B_SET)) {
		int64_t sec = rtc_floor_div(real_ns, RTC_NS) + r->offset_s;
		if (sec != r->last_sec) {
			struct tm tm;
			rtc_now_tm(r, real_ns, &tm);
			r->last_sec = sec;
			*c |= RTC_C_UF;
			if (rtc_alarm_match(r, &tm)) {
				*c |= RTC_C_AF;
				if (r->cmos[RTC_REG_B] & RTC_B_AIE)
					r->alarm_out = true;
			}
		}
	}
	int64_t period = rtc_period_ns(r);
	if (period && mono_ns >= r->periodic_next) {
		*c |= RTC_C_PF;
		r->periodic_next += period * ((mono_ns - r->periodic_next) / period + 1);
	}
	uint8_t b = r->cmos[RTC_REG_B];
	if (((*c & RTC_C_PF) && (b & RTC_B_PIE)) || ((*c & RTC_C_AF) && (b & RTC_B_AIE)) ||
	    ((*c & RTC_C_UF) && (b & RTC_B_UIE)))
		*c |= RTC_C_IRQF;
}

/* Catch up, then drive IRQ 8 to IRQF. An alarm interrupt also reaches
 * the ACPI fixed hardware (RTC_STS; the wake from S3), as the chipset sees
 * the RTC's interrupt output on a PC. */
static void rtc_update(struct rtc *r, int64_t real_ns, int64_t mono_ns)
{
	rtc_catch_up(r, real_ns, mono_ns);
	if (r->alarm_out) {
		r->alarm_out = false;
		acpi_rtc_alarm(r->vm);
	}
	int level = (r->cmos[RTC_REG_C] & RTC_C_IRQF) ? 1 : 0;
	if (level != r->irq_level) {
		r->irq_level = level;
		vm_irq_set(r->vm, RTC_IRQ, level);
	}
}

static uint8_t rtc_read(struct rtc *r, unsigned idx, int64_t real_ns, int64_t mono_ns)
{
	if (rtc_is_time_reg(idx)) {
		struct tm tm;
		rtc_now_tm(r, real_ns, &tm);
		return rtc_time_reg(r, idx, &tm);
	}
	uint8_t v;
	switch (idx) {
	case RTC_REG_A:
		v = r->cmos[RTC_REG_A] & (uint8_t)~RTC_A_UIP;
		if (!(r->cmos[RTC_REG_B] & RTC_B_SET) &&
		    (real_ns % RTC_NS + RTC_NS) % RTC_NS >= RTC_NS - RTC_UIP_NS)
			v |= RTC_A_UIP;
		return v;
	case RTC_REG_C: /* reading C clears the flags and the interrupt */
		rtc_catch_up(r, real_ns, mono_ns); /* no edge for what is read now */
		v = r->cmos[RTC_REG_C];
		r->cmos[RTC_REG_C] = 0;
		rtc_update(r, real_ns, mono_ns);
		pthread_cond_signal(&r->cond);
		return v;
	case RTC_REG_D:
		return RTC_D_VRT;
	default:
		return r->cmos[idx];
	}
}

static void *rtc_thread(void *arg);

/* The interrupt thread starts the first time the guest enables one (a
 * guest that only reads the clock costs no thread). Lock held. */
static void rtc_start_thread(struct rtc *r)
{
	if (vmm_thread_start(&r->thread, 0, rtc_thread, r) < 0) {
		fprintf(stderr, "zhv: rtc: cannot start the interrupt thread\n");
		return;
	}
	r->thread_started = true;
}

static void rtc_write(struct rtc *r, unsigned idx, uint8_t v, int64_t real_ns, int64_t mono_ns)
{
	if (rtc_is_time_reg(idx)) {
		rtc_write_time(r, idx, v, real_ns);
		return;
	}
	switch (idx) {
	case RTC_REG_A: {
		uint8_t old = r->cmos[RTC_REG_A];
		r->cmos[RTC_REG_A] = v & (uint8_t)~RTC_A_UIP;
		if ((old ^ v) & RTC_A_RS)
			r->periodic_next = mono_ns + rtc_period_ns(r);
		break;
	}
	case RTC_REG_B: {
		uint8_t old = r->cmos[RTC_REG_B];
		if ((v & RTC_B_SET) && !(old & RTC_B_SET)) {
			rtc_now_tm(r, real_ns, &r->shadow); /* freeze */
			v &= (uint8_t)~RTC_B_UIE;         /* datasheet: SET clears UIE */
		}
		if (!(v & RTC_B_SET) && (old & RTC_B_SET)) {
			time_t t = timegm(&r->shadow);
			if (t != (time_t)-1)
				r->offset_s = (int64_t)t - rtc_floor_div(real_ns, RTC_NS);
			r->last_sec = rtc_floor_div(real_ns, RTC_NS) + r->offset_s;
		}
		if ((v & RTC_B_PIE) && !(old & RTC_B_PIE))
			r->periodic_next = mono_ns + rtc_period_ns(r);
		r->cmos[RTC_REG_B] = v;
		if ((v & (RTC_B_PIE | RTC_B_AIE | RTC_B_UIE)) && !r->thread_started)
			rtc_start_thread(r);
		break;
	}
	case RTC_REG_C:
	case RTC_REG_D:
		return; /* read-only */
	default:
		r->cmos[idx] = v;
		return;
	}
	rtc_update(r, real_ns, mono_ns);
	pthread_cond_signal(&r->cond);
}

static void rtc_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                       unsigned size)
{
	struct rtc *r = opaque;
	int64_t real_ns = rtc_clock(CLOCK_REALTIME), mono_ns = rtc_clock(CLOCK_MONOTONIC);
	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < size; i++) {
		uint64_t port = offset + i;
		if (port == 0) {
			if (write)
				r->index = data[i] & 0x7F; /* bit 7 masks NMI: ignored */
			else
				data[i] = 0xFF; /* the index register is write-only */
		} else if (port == 1) {
			if (write)
				rtc_write(r, r->index, data[i], real_ns, mono_ns);
			else
				data[i] = rtc_read(r, r->index, real_ns, mono_ns);
		} else if (!write) {
			data[i] = 0xFF;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

/* Raises IRQ 8 when an enabled interrupt comes due. Sleeps while nothing
 * is enabled or IRQF is already up (nothing can change until C is read). */
static void *rtc_thread(void *arg)
{
	struct rtc *r = arg;
	/* Named by itself (prctl): naming another thread opens a /proc file,
	 * which the sandbox forbids once the guest runs (vmm/sandbox.h). */
	pthread_setname_np(pthread_self(), "zhv-rtc");
	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		uint8_t b = r->cmos[RTC_REG_B];
		int64_t real_ns = rtc_clock(CLOCK_REALTIME), mono_ns = rtc_clock(CLOCK_MONOTONIC);
		rtc_update(r, real_ns, mono_ns);
		if (!(b & (RTC_B_PIE | RTC_B_AIE | RTC_B_UIE)) || (r->cmos[RTC_REG_C] & RTC_C_IRQF)) {
			pthread_cond_wait(&r->cond, &r->lock);
			continue;
		}
		int64_t wake = INT64_MAX;
		if ((b & (RTC_B_AIE | RTC_B_UIE)) && !(b & RTC_B_SET)) /* next second boundary */
			wake = mono_ns + (RTC_NS - (real_ns % RTC_NS + RTC_NS) % RTC_NS);
		if ((b & RTC_B_PIE) && rtc_period_ns(r) && r->periodic_next < wake)
			wake = r->periodic_next;
		if (wake == INT64_MAX) {
			pthread_cond_wait(&r->cond, &r->lock);
			continue;
		}
		struct timespec ts = {.tv_sec = wake / RTC_NS, .tv_nsec = wake % RTC_NS};
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/* vm_destroy: no vCPU runs (nothing can start the thread any more); stop
 * and join the interrupt thread, which leaves every wait when signalled. */
static void rtc_destroy(void *opaque)
{
	struct rtc *r = opaque;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	if (r->thread_started)
		pthread_join(r->thread, NULL);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}

/* ---- snapshot (snapshot.h): section "rtc", version 1 ---------------------
 * The 128 CMOS bytes (registers A-D, the alarm and CMOS RAM; the time
 * registers there are unused: the time is computed), index (u8), then the
 * time as the offset of the guest's RTC from the host's wall clock
 * (offset_s, i64 seconds: guest time = host UTC + offset_s). So a restored
 * guest sees its clock continue from the host's time, with whatever offset
 * it had set, as a PC's battery-backed clock keeps running while the
 * machine is off. Then last_sec (i64: the guest second of the last update
 * cycle; the next access after a restore sees the seconds that passed as
 * one update, as after any pause), the frozen time while B.SET holds
 * updates (7 x i32: sec min hour mday mon year wday, struct tm's
 * meanings), and the ns left to the next periodic flag (u64, a guest-time
 * remainder). The line's level follows from C.IRQF and is restored with
 * the IOAPIC's section. */

#define RTC_SNAP_TM_MIN (-2000)
#define RTC_SNAP_TM_MAX 30000

static int rtc_snap_save(void *opaque, struct snap_writer *w)
{
	struct rtc *r = opaque;
	pthread_mutex_lock(&r->lock);
	int64_t mono_ns = rtc_clock(CLOCK_MONOTONIC);
	snap_put(w, r->cmos, RTC_CMOS_SIZE);
	snap_put_u8(w, r->index);
	snap_put_u64(w, (uint64_t)r->offset_s);
	snap_put_u64(w, (uint64_t)r->last_sec);
	const int f[7] = {r->shadow.tm_sec,  r->shadow.tm_min,  r->shadow.tm_hour,
	                  r->shadow.tm_mday, r->shadow.tm_mon,  r->shadow.tm_year,
	                  r->shadow.tm_wday};
	for (unsigned i = 0; i < 7; i++)
		snap_put_u32(w, (uint32_t)f[i]);
	int64_t left = r->periodic_next - mono_ns;
	int64_t period = rtc_period_ns(r);
	if (left > period)
		left = period;
	snap_put_u64(w, (uint64_t)(left > 0 ? left : 0));
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static int rtc_snap_load(void *opaque, struct snap_reader *r)
{
	struct rtc *rtc = opaque;
	struct rtc t;
	memset(&t, 0, sizeof(t));
	snap_get(r, t.cmos, RTC_CMOS_SIZE);
	t.index = snap_get_u8(r);
	t.offset_s = (int64_t)snap_get_u64(r);
	t.last_sec = (int64_t)snap_get_u64(r);
	int f[7];
	for (unsigned i = 0; i < 7; i++) {
		f[i] = (int)(int32_t)snap_get_u32(r);
		if (f[i] < RTC_SNAP_TM_MIN || f[i] > RTC_SNAP_TM_MAX)
			snap_bad(r);
	}
	uint64_t left = snap_get_u64(r);
	/* Offsets within +-2^40 s (35000 years) keep every sum in range. */
	const int64_t max_s = 1ll << 40;
	if (t.index > 0x7F || (t.cmos[RTC_REG_A] & RTC_A_UIP) || (t.cmos[RTC_REG_C] & 0x0F) ||
	    t.cmos[RTC_REG_D] != RTC_D_VRT || f[6] < 0 || f[6] > 6 || t.offset_s < -max_s ||
	    t.offset_s > max_s || t.last_sec < -2 * max_s || t.last_sec > 2 * max_s)
		snap_bad(r);
	if (left > (uint64_t)(rtc_period_ns(&t) > 0 ? rtc_period_ns(&t) : 0))
		snap_bad(r);
	int ret = snap_reader_end(r);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&rtc->lock);
	memcpy(rtc->cmos, t.cmos, RTC_CMOS_SIZE);
	rtc->index = t.index;
	rtc->offset_s = t.offset_s;
	rtc->last_sec = t.last_sec;
	memset(&rtc->shadow, 0, sizeof(rtc->shadow));
	rtc->shadow.tm_sec = f[0];
	rtc->shadow.tm_min = f[1];
	rtc->shadow.tm_hour = f[2];
	rtc->shadow.tm_mday = f[3];
	rtc->shadow.tm_mon = f[4];
	rtc->shadow.tm_year = f[5];
	rtc->shadow.tm_wday = f[6];
	rtc->periodic_next = rtc_clock(CLOCK_MONOTONIC) + (int64_t)left;
	rtc->irq_level = (rtc->cmos[RTC_REG_C] & RTC_C_IRQF) ? 1 : 0;
	rtc->alarm_out = false;
	if ((rtc->cmos[RTC_REG_B] & (RTC_B_PIE | RTC_B_AIE | RTC_B_UIE)) && !rtc->thread_started)
		rtc_start_thread(rtc);
	pthread_cond_signal(&rtc->cond);
	pthread_mutex_unlock(&rtc->lock);
	return 0;
}

static void rtc_put16(uint8_t *cmos, unsigned idx, uint64_t v)
{
	v = v > 0xFFFF ? 0xFFFF : v;
	cmos[idx] = (uint8_t)v;
	cmos[idx + 1] = (uint8_t)(v >> 8);
}

/* CMOS RAM as a PC BIOS leaves it (IBM AT CMOS map; QEMU's pc_cmos_init):
 * memory sizes, CPU count, checksum of 0x10-0x2d at 0x2e-0x2f. */
static void rtc_init_cmos(struct rtc *r)
{
	struct vm *vm = r->vm;
	uint8_t *cmos = r->cmos;
	uint64_t low = vm->low_ram, high = vm->ram_size > low ? vm->ram_size - low : 0;
	cmos[RTC_REG_A] = 0x26; /* DV = 010 (32.768 kHz), RS = 6 (1024 Hz) */
	cmos[RTC_REG_B] = RTC_B_24H;
	cmos[RTC_REG_D] = RTC_D_VRT;
	cmos[0x14] = 0x02;          /* equipment byte: math coprocessor */
	rtc_put16(cmos, 0x15, 640); /* base memory, KiB */
	/* Extended memory above 1 MiB in KiB (0x17 and again 0x30), and above
	 * 16 MiB in 64 KiB units (0x34); both saturate at 0xFFFF. */
	rtc_put16(cmos, 0x17, low > (1u << 20) ? (low >> 10) - 1024 : 0);
	rtc_put16(cmos, 0x30, low > (1u << 20) ? (low >> 10) - 1024 : 0);
	rtc_put16(cmos, 0x34, low > (16u << 20) ? (low - (16u << 20)) >> 16 : 0);
	uint64_t above4g = high >> 16;
	if (above4g > 0xFFFFFF)
		above4g = 0xFFFFFF;
	cmos[0x5B] = (uint8_t)above4g; /* QEMU/SeaBIOS: RAM above 4 GiB, 64 KiB units */
	cmos[0x5C] = (uint8_t)(above4g >> 8);
	cmos[0x5D] = (uint8_t)(above4g >> 16);
	cmos[0x5F] = (uint8_t)(vm->ncpus ? vm->ncpus - 1 : 0); /* QEMU: CPUs - 1 */
	unsigned sum = 0;
	for (unsigned i = 0x10; i <= 0x2D; i++)
		sum += cmos[i];
	cmos[0x2E] = (uint8_t)(sum >> 8);
	cmos[0x2F] = (uint8_t)sum;
}

int rtc_create(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	struct rtc *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&r->lock, NULL);
	r->vm = vm;
	rtc_init_cmos(r);
	int64_t real_ns = rtc_clock(CLOCK_REALTIME);
	r->last_sec = rtc_floor_div(real_ns, RTC_NS);
	r->periodic_next = rtc_clock(CLOCK_MONOTONIC) + rtc_period_ns(r);
	/* From here the machine owns (r): vm_destroy frees it, also after a
	 * failure below. */
	int ret = vm_add_teardown(vm, rtc_destroy, r);
	if (ret < 0) {
		rtc_destroy(r);
		return ret;
	}
	ret = bus_register(&vm->io_bus, vm->guest, RTC_PORT, 2, rtc_access, r, "rtc");
	if (ret < 0)
		return ret;
	return vm_add_snapshot(vm, "rtc", 1, rtc_snap_save, rtc_snap_load, r);
}
