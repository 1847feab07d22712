/* virtio_blk.c: read sector 0 of the first virtio-blk disk with one polled
 * request on one split virtqueue, through the runtime's virtio driver
 * (rt/virtio.h; virtio 1.2 block device §5.2). */
#include "guest.h"
#include "pci.h"
#include "virtio.h"

#define QUEUE_SIZE 8
#define VIRTIO_BLK_T_IN 0
#define REQUEST_US 5000000u

static uint8_t qmem[RT_VIRTQ_MEM_SIZE(QUEUE_SIZE)] __attribute__((aligned(4096)));
static struct {
	uint32_t type, reserved;
	uint32_t sector_lo, sector_hi;
} req_header;
static uint8_t req_data[512] __attribute__((aligned(512)));
static volatile uint8_t req_status;

static const char *blk_read_sector0(struct rt_virtio_dev *d)
{
	struct rt_virtq vq;
	if (rt_virtio_init(d, 0) < 0)
		return "device lacks VIRTIO_F_VERSION_1 or refused the features";
	if (rt_virtq_setup(d, &vq, 0, QUEUE_SIZE, qmem) < 0)
		return "no request queue";
	rt_virtio_driver_ok(d);

	/* One request: header (device reads), data and status (it writes). */
	req_header.type = VIRTIO_BLK_T_IN;
	req_header.sector_lo = req_header.sector_hi = 0;
	req_status = 0xFF;
	struct rt_vbuf out[] = {{&req_header, sizeof(req_header)}};
	struct rt_vbuf in[] = {{req_data, sizeof(req_data)}, {(void *)&req_status, 1}};
	if (rt_virtq_add(&vq, out, 1, in, 2) < 0)
		return "no room in the queue";
	rt_virtq_kick(&vq);
	if (!rt_virtq_wait(&vq, NULL, NULL, REQUEST_US))
		return "no answer from the device";
	if (req_status != 0)
		return "the read failed";
	return NULL;
}

void virtio_blk_probe(void)
{
	struct rt_virtio_dev d;
	int slot = rt_pci_find(RT_VIRTIO_PCI_VENDOR, RT_VIRTIO_PCI_DEVICE(RT_VIRTIO_ID_BLOCK), 0);
	if (slot < 0) {
		rt_printf("no disk\n");
		return;
	}
	const char *err = rt_virtio_find(RT_VIRTIO_ID_BLOCK, 0, &d) ?
	                  blk_read_sector0(&d) : "no virtio structures in reach";
	if (err) {
		rt_printf("zhv guest: virtio-blk at 00:%x.0: %s\n", (unsigned)slot, err);
		return;
	}
	char text[17];
	for (int i = 0; i < 16; i++) {
		uint8_t c = req_data[i];
		text[i] = c >= 0x20 && c < 0x7F ? (char)c : '.';
	}
	text[16] = '\0';
	rt_printf("disk: %s\n", text);
}
