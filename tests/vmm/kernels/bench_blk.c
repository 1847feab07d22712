/* bench_blk.c: the virtio-blk benchmark guest of bench/virtio_blk.sh. A
 * virtio 1.x PCI driver (rt/virtio.c) that works on zhv's virtio-blk and
 * on QEMU's virtio-blk-pci (disable-legacy=on): 4 KiB random reads over
 * the first GiB of the disk, keeping qd=1 and then qd=32 requests in
 * flight for ms=N milliseconds each (default 3000), completions signalled
 * by MSI-X (the guest polls the used ring; the handler only acknowledges).
 * Time is the ACPI PM timer (3.579545 MHz, at port 0x608 on both
 * machines), read every few completions and accumulated modulo 2^24 (QEMU's
 * timer has 24 bits). Prints on COM1, per depth:
 *   bench_blk qd=Q ios=N ticks=T
 * (IOPS = N * 3579545 / T), then PASS. */
#include "apic.h"
#include "group.h"
#include "virtio.h"

#define T_IN 0
#define BLOCK 4096u
#define QSIZE 128
#define MAXQD 32
#define SPAN_BLOCKS (262144u) /* 1 GiB of 4 KiB blocks */
#define VEC_Q 0x61

static uint8_t qmem[RT_VIRTQ_MEM_SIZE(QSIZE)] __attribute__((aligned(4096)));
static struct rt_virtio_dev dev;
static struct rt_virtq vq;
static struct {
	uint32_t type, reserved, sector_lo, sector_hi;
} hdrs[MAXQD];
static volatile uint8_t status[MAXQD];
static uint8_t bufs[MAXQD][BLOCK] __attribute__((aligned(4096)));
static int head_slot[QSIZE];
static uint32_t rng = 0x12345678u;
static uint32_t elapsed, last_tmr;

static void on_q(struct rt_frame *f)
{
	(void)f;
	rt_lapic_eoi();
}

static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* Accumulate PM timer ticks (24-bit wrap). Called at least every few
 * milliseconds. */
static void tick(void)
{
	uint32_t now = rt_pmtimer();
	elapsed += (now - last_tmr) & 0xFFFFFFu;
	last_tmr = now;
}

static void submit(unsigned slot)
{
	uint32_t block = next_rand() % SPAN_BLOCKS;
	hdrs[slot].type = T_IN;
	hdrs[slot].reserved = 0;
	hdrs[slot].sector_lo = block * (BLOCK / 512);
	hdrs[slot].sector_hi = 0;
	status[slot] = 0xEE;
	struct rt_vbuf out = {&hdrs[slot], sizeof(hdrs[slot])};
	struct rt_vbuf in[2] = {{bufs[slot], BLOCK}, {(void *)&status[slot], 1}};
	int head = rt_virtq_add(&vq, &out, 1, in, 2);
	RT_EXPECT(head >= 0, "queue full");
	head_slot[head] = (int)slot;
}

static void run(unsigned qd, uint32_t ms)
{
	uint32_t ios = 0, limit = ms * (RT_PM_TMR_HZ / 1000u);
	for (unsigned s = 0; s < qd; s++)
		submit(s);
	rt_virtq_kick(&vq);
	elapsed = 0;
	last_tmr = rt_pmtimer();
	while (elapsed < limit) {
		uint32_t id, len;
		unsigned got = 0;
		while (rt_virtq_get(&vq, &id, &len)) {
			RT_EXPECT(id < QSIZE && head_slot[id] >= 0, "used id %u", id);
			unsigned slot = (unsigned)head_slot[id];
			head_slot[id] = -1;
			RT_EXPECT(status[slot] == 0 && len == BLOCK + 1, "read: status %u length %u",
			          status[slot], len);
			submit(slot);
			got++;
		}
		if (got) {
			rt_virtq_kick(&vq);
			ios += got;
			if (ios % 16 < got || qd == 1)
				tick();
		} else {
			rt_pause();
			tick();
		}
	}
	/* Drain what is still in flight (not counted). */
	for (unsigned left = qd; left;) {
		uint32_t id, len;
		if (rt_virtq_wait(&vq, &id, &len, 10000000)) {
			head_slot[id < QSIZE ? id : 0] = -1;
			left--;
		} else {
			rt_fail("qd=%u: a request did not complete", qd);
		}
	}
	rt_printf("bench_blk qd=%u ios=%u ticks=%u\n", qd, ios, elapsed);
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	uint32_t ms = rt_cmdline_uint("ms", 3000);
	for (unsigned i = 0; i < QSIZE; i++)
		head_slot[i] = -1;
	RT_EXPECT(rt_virtio_find(RT_VIRTIO_ID_BLOCK, 0, &dev), "no virtio-blk device");
	RT_EXPECT(rt_virtio_init(&dev, 0) == 0, "FEATURES_OK refused");
	uint64_t cap = rt_virtio_cfg64(&dev, 0);
	RT_EXPECT(cap >= (uint64_t)SPAN_BLOCKS * (BLOCK / 512), "disk of %u sectors: 1 GiB needed",
	          (uint32_t)cap);
	RT_EXPECT(rt_virtq_setup(&dev, &vq, 0, QSIZE, qmem) == 0, "queue 0 setup failed");
	if (dev.msix_cap && dev.msix_entries >= 2) {
		/* A firmware (QEMU's SeaBIOS) may have left the 8259s on with
		 * the timer at vector 8: mask them, only MSI-X comes in. */
		outb(0x21, 0xFF);
		outb(0xA1, 0xFF);
		rt_lapic_enable();
		rt_set_handler(VEC_Q, on_q);
		RT_EXPECT(rt_virtio_msix_enable(&dev, true), "cannot enable MSI-X");
		rt_virtio_msix_route(&dev, 1, 0, VEC_Q);
		RT_EXPECT(rt_virtq_set_vector(&vq, 1) == 1, "queue MSI-X vector refused");
		rt_sti();
	}
	rt_virtio_driver_ok(&dev);
	rt_printf("bench_blk: virtio-blk at 00:%x.0, %u sectors, %u-entry queue, %u ms per depth\n",
	          dev.slot, (uint32_t)cap, vq.size, ms);
	run(1, ms);
	run(MAXQD, ms);
	rt_virtio_reset(&dev);
	rt_pass();
}
