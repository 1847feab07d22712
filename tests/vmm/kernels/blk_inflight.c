/* blk_inflight.c: virtio-blk with many requests in flight, served off the
 * vCPU thread, and a hostile driver. The script gives a disk image of
 * blocks=N 4 KiB blocks whose block b holds "block BBBBB dat\n" 256 times
 * (zhv run --debug-io: the script also checks zhv's own account of where
 * the requests were started).
 *   blk-inflight-read: 128 reads of 4 KiB at scattered blocks, offered
 *     together behind one doorbell (indirect descriptors, 256-entry
 *     queue), completions by MSI-X; every block's bytes are checked.
 *   blk-inflight-write: 64 writes of "wrote BBBBB now\n" x 256 to blocks
 *     512-575 behind one doorbell, then 64 reads of them in flight (the
 *     script checks the image too).
 *   blk-hostile: a descriptor outside RAM (the device needs a reset and
 *     says so by a configuration interrupt), a reset while 64 reads of
 *     256 KiB are in flight (the reset completes, nothing of them is
 *     published afterwards), doorbells of a reset device and of queues it
 *     does not have (ignored); after each the device is initialized again
 *     and reads correctly.
 * Prints how many of the 128 reads had completed when the doorbell write
 * returned (information only: with the device thread, usually few). */
#include "apic.h"
#include "group.h"
#include "pci.h"
#include "virtio.h"

#define BLK_F_FLUSH 9
#define T_IN 0
#define T_OUT 1
#define S_OK 0
#define BLOCK 4096u
#define QSIZE 256
#define NREAD 128
#define NWRITE 64
#define WBASE 512
#define NBIG 64
#define BIG (256u * 1024)
#define VEC_Q 0x61
#define VEC_CFG 0x62

static uint8_t qmem[RT_VIRTQ_MEM_SIZE(QSIZE)] __attribute__((aligned(4096)));
static struct rt_virtio_dev dev;
static struct rt_virtq vq;
struct hdr {
	uint32_t type, reserved, sector_lo, sector_hi;
};
static struct hdr hdrs[NREAD];
static volatile uint8_t status[NREAD];
static struct rt_vring_desc tables[NREAD][3] __attribute__((aligned(16)));
static uint8_t bufs[NREAD][BLOCK] __attribute__((aligned(4096)));
static uint8_t big[BIG] __attribute__((aligned(4096)));
static volatile uint32_t q_irqs, cfg_irqs;
static int heads[NREAD];

static void on_q(struct rt_frame *f)
{
	(void)f;
	q_irqs++;
	rt_lapic_eoi();
}

static void on_cfg(struct rt_frame *f)
{
	(void)f;
	cfg_irqs++;
	rt_lapic_eoi();
}

/* "PPPPPP BBBBB SSS\n"-style 16-byte lines: (prefix) 6 bytes, the block
 * number in 5 digits, (suffix) 4 bytes with the newline. */
static void fill_line(uint8_t *p, const char *prefix, unsigned b, const char *suffix)
{
	memcpy(p, prefix, 6);
	for (unsigned i = 0, d = 10000; i < 5; i++, d /= 10)
		p[6 + i] = (uint8_t)('0' + b / d % 10);
	memcpy(p + 11, suffix, 5);
}

static bool block_is(const uint8_t *p, const char *prefix, unsigned b, const char *suffix)
{
	uint8_t line[16];
	fill_line(line, prefix, b, suffix);
	for (unsigned i = 0; i < BLOCK; i += 16)
		if (memcmp(p + i, line, 16))
			return false;
	return true;
}

/* Offer request (i): header, (len) bytes at (data) (device-writable for a
 * read), status; through an indirect table: one ring entry each. */
static void offer(unsigned i, uint32_t type, uint32_t block, void *data, uint32_t len)
{
	hdrs[i] = (struct hdr){type, 0, block * (BLOCK / 512), 0};
	status[i] = 0xEE;
	struct rt_vbuf out[2] = {{&hdrs[i], sizeof(hdrs[i])}, {data, len}};
	struct rt_vbuf in[2] = {{data, len}, {(void *)&status[i], 1}};
	if (type == T_OUT)
		heads[i] = rt_virtq_add_indirect(&vq, tables[i], out, 2, &in[1], 1);
	else
		heads[i] = rt_virtq_add_indirect(&vq, tables[i], out, 1, in, 2);
	RT_EXPECT(heads[i] >= 0, "request %u: the queue is full", i);
}

/* Wait for (n) completions of requests 0..n-1 (any order); checks ids,
 * used lengths (want_len) and statuses. */
static void collect(unsigned n, uint32_t want_len)
{
	static bool seen[NREAD];
	memset(seen, 0, sizeof(seen));
	for (unsigned k = 0; k < n; k++) {
		uint32_t id = 0xFFFF, len = 0;
		RT_EXPECT(rt_virtq_wait(&vq, &id, &len, 20000000), "%u of %u requests completed", k,
		          n);
		unsigned i = 0;
		while (i < n && (heads[i] != (int)id || seen[i]))
			i++;
		RT_EXPECT(i < n, "used id %u is no request in flight", id);
		seen[i] = true;
		RT_EXPECT(status[i] == S_OK, "request %u: status %u", i, status[i]);
		RT_EXPECT(len == want_len, "request %u: used length %u, want %u", i, len, want_len);
	}
}

static void start_device(void)
{
	RT_EXPECT(rt_virtio_init(&dev, RT_VIRTIO_BIT(RT_VIRTIO_F_INDIRECT_DESC) |
	                                   RT_VIRTIO_BIT(BLK_F_FLUSH)) == 0,
	          "FEATURES_OK refused");
	RT_EXPECT(dev.features & RT_VIRTIO_BIT(RT_VIRTIO_F_INDIRECT_DESC), "no INDIRECT_DESC");
	RT_EXPECT(rt_virtq_setup(&dev, &vq, 0, QSIZE, qmem) == 0, "queue 0 setup failed");
	RT_EXPECT(vq.size == QSIZE, "queue size %u, want %u", vq.size, QSIZE);
	RT_EXPECT(rt_virtq_set_vector(&vq, 1) == 1, "queue MSI-X vector does not read back");
	RT_EXPECT(rt_virtio_set_config_vector(&dev, 0) == 0, "config vector does not read back");
	rt_virtio_driver_ok(&dev);
}

/* After a hostile step: a fresh start and one read that must be right. */
static void read_one_ok(unsigned block)
{
	rt_virtio_reset(&dev);
	start_device();
	memset(bufs[0], 0, BLOCK);
	offer(0, T_IN, block, bufs[0], BLOCK);
	rt_virtq_kick(&vq);
	collect(1, BLOCK + 1);
	RT_EXPECT(block_is(bufs[0], "block ", block, " dat\n"), "block %u reads wrong", block);
}

static unsigned scattered(unsigned i, unsigned blocks)
{
	return (i * 37u + 11u) % blocks;
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	unsigned blocks = rt_cmdline_uint("blocks", 0);
	if (blocks < WBASE + NWRITE)
		rt_fail("need blocks=N (at least 576) on the command line");
	RT_EXPECT(rt_virtio_find(RT_VIRTIO_ID_BLOCK, 0, &dev), "no virtio-blk device");
	RT_EXPECT(dev.msix_cap && dev.msix_entries >= 2, "no MSI-X");
	rt_lapic_enable();
	rt_set_handler(VEC_Q, on_q);
	rt_set_handler(VEC_CFG, on_cfg);
	rt_sti();
	RT_EXPECT(rt_virtio_msix_enable(&dev, true), "cannot enable MSI-X");
	rt_virtio_msix_route(&dev, 0, 0, VEC_CFG);
	rt_virtio_msix_route(&dev, 1, 0, VEC_Q);
	start_device();

	/* ---- 128 reads behind one doorbell ---- */
	for (unsigned i = 0; i < NREAD; i++) {
		memset(bufs[i], 0, BLOCK);
		offer(i, T_IN, scattered(i, blocks), bufs[i], BLOCK);
	}
	rt_virtq_kick(&vq);
	uint16_t at_kick = rt_virtq_used_idx(&vq);
	collect(NREAD, BLOCK + 1);
	for (unsigned i = 0; i < NREAD; i++)
		RT_EXPECT(block_is(bufs[i], "block ", scattered(i, blocks), " dat\n"),
		          "read %u (block %u) is wrong: '%c%c%c%c%c%c%c%c%c%c%c'", i,
		          scattered(i, blocks), bufs[i][0], bufs[i][1], bufs[i][2], bufs[i][3],
		          bufs[i][4], bufs[i][5], bufs[i][6], bufs[i][7], bufs[i][8], bufs[i][9],
		          bufs[i][10]);
	RT_EXPECT(rt_wait_count(&q_irqs, 1, 1000000), "no MSI-X completion interrupt");
	rt_printf("inflight: %u of %u reads done when the doorbell write returned, %u MSI-X "
	          "interrupts\n", at_kick, NREAD, q_irqs);
	RT_GROUP_OK("blk-inflight-read");

	/* ---- 64 writes, then 64 reads of them, each batch behind one doorbell ---- */
	for (unsigned i = 0; i < NWRITE; i++) {
		for (unsigned o = 0; o < BLOCK; o += 16)
			fill_line(bufs[i] + o, "wrote ", WBASE + i, " now\n");
		offer(i, T_OUT, WBASE + i, bufs[i], BLOCK);
	}
	rt_virtq_kick(&vq);
	collect(NWRITE, 1);
	for (unsigned i = 0; i < NWRITE; i++) {
		memset(bufs[i], 0, BLOCK);
		offer(i, T_IN, WBASE + i, bufs[i], BLOCK);
	}
	rt_virtq_kick(&vq);
	collect(NWRITE, BLOCK + 1);
	for (unsigned i = 0; i < NWRITE; i++)
		RT_EXPECT(block_is(bufs[i], "wrote ", WBASE + i, " now\n"),
		          "block %u does not read back as written", WBASE + i);
	RT_GROUP_OK("blk-inflight-write");

	/* ---- hostile: a descriptor outside RAM ---- */
	uint32_t cfg_before = cfg_irqs;
	hdrs[0] = (struct hdr){T_IN, 0, 0, 0};
	struct rt_vbuf hout = {&hdrs[0], sizeof(hdrs[0])};
	struct rt_vbuf hin[2] = {{(void *)0xF0000000u, BLOCK}, {(void *)&status[0], 1}};
	status[0] = 0xEE;
	RT_EXPECT(rt_virtq_add(&vq, &hout, 1, hin, 2) >= 0, "queue full");
	rt_virtq_kick(&vq);
	RT_EXPECT(rt_wait_count(&cfg_irqs, cfg_before + 1, 5000000),
	          "no configuration interrupt for a descriptor outside RAM (status %x)",
	          rt_virtio_status(&dev));
	RT_EXPECT(rt_virtio_status(&dev) & RT_VIRTIO_ST_NEEDS_RESET,
	          "a descriptor outside RAM: status %x lacks NEEDS_RESET", rt_virtio_status(&dev));
	RT_EXPECT(status[0] == 0xEE, "the bad request got a status");
	read_one_ok(3);

	/* ---- hostile: a reset with 64 reads of 256 KiB in flight ---- */
	for (unsigned i = 0; i < NBIG; i++)
		offer(i, T_IN, 0, big, BIG);
	rt_virtq_kick(&vq);
	rt_virtio_reset(&dev); /* waits until the status reads 0 */
	uint16_t used_at_reset = rt_virtq_used_idx(&vq);
	rt_delay_us(20000);
	RT_EXPECT(rt_virtq_used_idx(&vq) == used_at_reset,
	          "the used index moved from %u to %u after the reset", used_at_reset,
	          rt_virtq_used_idx(&vq));
	rt_printf("reset: %u of %u large reads had completed\n", used_at_reset, NBIG);
	read_one_ok(5);

	/* ---- hostile: doorbells of a reset device, of queues it lacks ---- */
	rt_virtio_reset(&dev);
	mmio_write32(dev.notify, 0);
	for (unsigned q = 1; q < 8; q++)
		*(volatile uint16_t *)(dev.notify + q * dev.notify_mult) = (uint16_t)q;
	*(volatile uint32_t *)(dev.notify + 4092) = 0xFFFFFFFFu;
	rt_delay_us(10000);
	RT_EXPECT(rt_virtio_status(&dev) == 0, "status %x after doorbells of a reset device",
	          rt_virtio_status(&dev));
	read_one_ok(7);
	RT_GROUP_OK("blk-hostile");
	rt_virtio_reset(&dev);
	rt_pass();
}
