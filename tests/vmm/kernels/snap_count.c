/* snap_count.c: a guest to be snapshotted mid-computation (tests/vmm/
 * snapshot.sh). The BSP counts "ticks": each waits for its local APIC
 * timer (one-shot, so a restored guest's timer must fire), folds the tick
 * into a running sum, lets every AP fold it into its own sum (the APs
 * spin on shared memory), prints "tick N sum S" on COM1 and, with disk=1,
 * writes that line into sector N of a virtio-blk disk. At the end it
 * reads every sector back ("disk ok"), prints "result S" and exits PASS.
 * Everything printed and written depends on the tick count only, so an
 * uninterrupted run and a run saved and restored print the same.
 * Command line: cpus=N (1..8), ticks=N (default 40), delay=COUNT (the
 * APIC timer's initial count, divide by 16; default 0x300000: about
 * 50 ms a tick on KVM, whose APIC timer counts at 1 GHz), disk=0|1. */
#include "apic.h"
#include "group.h"
#include "virtio.h"

#define VEC_TIMER 0x40
#define LVT_TIMER 0x320
#define TIMER_INIT 0x380
#define TIMER_DIV 0x3E0
#define MAX_CPUS 8
#define MAX_TICKS 200
#define SECTOR 512
#define QSIZE 16
#define T_IN 0
#define T_OUT 1

static volatile uint32_t timer_irqs;
static volatile uint32_t go_tick;               /* ticks the APs may fold */
static volatile uint32_t ap_done[MAX_CPUS];     /* ticks each AP folded */
static volatile uint32_t ap_sum[MAX_CPUS];

static uint8_t qmem[RT_VIRTQ_MEM_SIZE(QSIZE)] __attribute__((aligned(4096)));
static struct rt_virtio_dev dev;
static struct rt_virtq vq;
static struct {
	uint32_t type, reserved, sector_lo, sector_hi;
} hdr;
static volatile uint8_t status;
static uint8_t sec[SECTOR] __attribute__((aligned(16)));

static uint32_t fold(uint32_t s, uint32_t tick, uint32_t who)
{
	for (uint32_t i = 0; i < 1000; i++)
		s = (s ^ (tick * 2654435761u + who + i)) * 16777619u;
	return s;
}

static void on_timer(struct rt_frame *f)
{
	(void)f;
	timer_irqs++;
	rt_lapic_eoi();
}

static void ap_main(unsigned apic_id)
{
	uint32_t s = apic_id;
	for (uint32_t t = 0;; t++) {
		while (go_tick <= t)
			rt_pause();
		s = fold(s, t, apic_id);
		ap_sum[apic_id] = s;
		__asm__ volatile("" ::: "memory");
		ap_done[apic_id] = t + 1;
	}
}

static void blk_request(uint32_t type, uint32_t sector)
{
	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector_lo = sector;
	hdr.sector_hi = 0;
	status = 0xEE;
	struct rt_vbuf out[2], in[2];
	unsigned no = 0, ni = 0;
	out[no++] = (struct rt_vbuf){&hdr, sizeof(hdr)};
	if (type == T_OUT)
		out[no++] = (struct rt_vbuf){sec, SECTOR};
	else
		in[ni++] = (struct rt_vbuf){sec, SECTOR};
	in[ni++] = (struct rt_vbuf){(void *)&status, 1};
	int head = rt_virtq_add(&vq, out, no, in, ni);
	RT_EXPECT(head >= 0, "the queue is full");
	rt_virtq_kick(&vq);
	uint32_t id = 0xFFFF, len = 0;
	RT_EXPECT(rt_virtq_wait(&vq, &id, &len, 30000000), "sector %u: no answer", sector);
	RT_EXPECT(id == (uint32_t)head && status == 0, "sector %u: id %u status %u", sector, id,
	          status);
}

/* "tick NNN sum XXXXXXXX\n" padded with dots to a sector. */
static unsigned line(char *p, uint32_t t, uint32_t s)
{
	static const char hex[] = "0123456789abcdef";
	unsigned n = 0;
	memcpy(p, "tick ", 5);
	n = 5;
	p[n++] = (char)('0' + t / 100 % 10);
	p[n++] = (char)('0' + t / 10 % 10);
	p[n++] = (char)('0' + t % 10);
	memcpy(p + n, " sum ", 5);
	n += 5;
	for (int i = 7; i >= 0; i--)
		p[n++] = hex[(s >> (4 * i)) & 0xF];
	p[n++] = '\n';
	return n;
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	uint32_t ncpus = rt_cmdline_uint("cpus", 1);
	uint32_t ticks = rt_cmdline_uint("ticks", 40);
	uint32_t delay = rt_cmdline_uint("delay", 0x300000);
	bool disk = rt_cmdline_uint("disk", 0) != 0;
	RT_EXPECT(ncpus >= 1 && ncpus <= MAX_CPUS && (!disk || ticks <= MAX_TICKS), "bad command line");

	rt_set_handler(VEC_TIMER, on_timer);
	rt_lapic_enable();
	for (unsigned id = 1; id < ncpus; id++)
		RT_EXPECT(rt_start_ap(id, ap_main, 10000000), "AP %u did not start", id);
	if (disk) {
		RT_EXPECT(rt_virtio_find(RT_VIRTIO_ID_BLOCK, 0, &dev), "no virtio-blk device");
		RT_EXPECT(rt_virtio_init(&dev, 0) == 0, "FEATURES_OK refused");
		RT_EXPECT(rt_virtq_setup(&dev, &vq, 0, QSIZE, qmem) == 0, "queue 0 setup failed");
		rt_virtio_driver_ok(&dev);
	}
	rt_puts("snap_count: counting");
	rt_lapic_write(TIMER_DIV, 0x3); /* divide by 16 */
	rt_lapic_write(LVT_TIMER, VEC_TIMER); /* one-shot */
	uint32_t sum = 0;
	char text[40];
	for (uint32_t t = 0; t < ticks; t++) {
		uint32_t want = timer_irqs + 1;
		rt_lapic_write(TIMER_INIT, delay);
		while (timer_irqs < want) {
			__asm__ volatile("sti; hlt; cli" ::: "memory");
		}
		sum = fold(sum, t, 0);
		go_tick = t + 1;
		for (unsigned id = 1; id < ncpus; id++)
			while (ap_done[id] <= t)
				rt_pause();
		uint32_t all = sum;
		for (unsigned id = 1; id < ncpus; id++)
			all ^= ap_sum[id];
		unsigned n = line(text, t, all);
		text[n] = '\0';
		rt_printf("%s", text);
		if (disk) {
			memset(sec, '.', SECTOR);
			memcpy(sec, text, n);
			blk_request(T_OUT, t);
		}
		sum = all;
	}
	if (disk) {
		for (uint32_t t = 0; t < ticks; t++) {
			blk_request(T_IN, t);
			RT_EXPECT(!memcmp(sec, "tick ", 5) && sec[5] == '0' + t / 100 % 10 &&
			          sec[6] == '0' + t / 10 % 10 && sec[7] == '0' + t % 10,
			          "sector %u does not hold tick %u", t, t);
		}
		rt_puts("disk ok");
	}
	unsigned n = line(text, ticks, sum); /* "tick NNN sum XXXXXXXX" */
	text[n - 1] = '\0';
	rt_printf("result%s\n", text + 8);
	rt_pass();
}
