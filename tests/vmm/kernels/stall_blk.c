/* stall_blk.c: a hostile virtio-blk driver. One indirect table of 127
 * reads of 16 MiB each (every descriptor over the same 16 MiB buffer at
 * 16 MiB: run with -m 64M or more and a disk of at least 2032 MiB, sparse
 * is fine), offered 256 times (every entry of a 256-entry ring names it),
 * then the doorbell rung in a loop forever: 500 GiB of copies queued, and
 * a notify every few microseconds. Prints "stall_blk: ringing" once the
 * ring is full; never exits by itself (the script sends SIGTERM). */
#include "group.h"
#include "virtio.h"

#define T_IN 0
#define NDATA 127
#define SEG (16u << 20)
#define BUF_ADDR (16u << 20)
#define QSIZE 256

static uint8_t qmem[RT_VIRTQ_MEM_SIZE(QSIZE)] __attribute__((aligned(4096)));
static struct rt_vring_desc table[NDATA + 2] __attribute__((aligned(16)));
static struct rt_virtio_dev dev;
static struct rt_virtq vq;
static struct {
	uint32_t type, reserved, sector_lo, sector_hi;
} hdr = {T_IN, 0, 0, 0};
static volatile uint8_t status = 0xEE;

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	struct rt_vbuf out = {&hdr, sizeof(hdr)};
	static struct rt_vbuf in[NDATA + 1];

	RT_EXPECT(rt_virtio_find(RT_VIRTIO_ID_BLOCK, 0, &dev), "no virtio-blk device");
	RT_EXPECT(rt_virtio_init(&dev, RT_VIRTIO_BIT(RT_VIRTIO_F_INDIRECT_DESC)) == 0,
	          "FEATURES_OK refused");
	RT_EXPECT(dev.features & RT_VIRTIO_BIT(RT_VIRTIO_F_INDIRECT_DESC), "no INDIRECT_DESC");
	RT_EXPECT(rt_virtq_setup(&dev, &vq, 0, QSIZE, qmem) == 0, "queue 0 setup failed");
	RT_EXPECT(vq.size == QSIZE, "queue size %u, want %u", vq.size, QSIZE);
	rt_virtio_driver_ok(&dev);

	for (unsigned i = 0; i < NDATA; i++)
		in[i] = (struct rt_vbuf){(void *)(uintptr_t)BUF_ADDR, SEG};
	in[NDATA] = (struct rt_vbuf){(void *)&status, 1};
	int head = rt_virtq_add_indirect(&vq, table, &out, 1, in, NDATA + 1);
	RT_EXPECT(head >= 0, "cannot add the indirect chain");
	/* The other 255 entries name the same chain. */
	for (unsigned i = 1; i < QSIZE; i++)
		vq.avail[2 + i] = (uint16_t)head;
	__asm__ volatile("" ::: "memory");
	vq.avail_idx = QSIZE;
	vq.avail[1] = QSIZE;
	rt_printf("stall_blk: ringing\n");
	for (;;)
		rt_virtq_kick(&vq);
}
