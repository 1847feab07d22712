/* virtio_blk_test.c: virtio-blk over the virtio PCI transport, driven like a guest driver through config space, BAR0 and the doorbell BAR against a temp image (no KVM). Doorbells reach the device thread as they do in zhv run (a port; the BELL trap itself is libzhv's), requests go through io_uring: each access here waits until the device is idle again. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../vmm/dev/virtqueue.c"
#include "../../vmm/dev/virtio_pci.c"
#include "../../vmm/dev/virtio_blk.c"
#include "snap_util.h"

/* ---- stubs of the VMM core --------------------------------------------- */

/* Guest RAM: rings and small buffers in the first MiB, then room for
 * the large-request tests (allocated lazily: untouched pages cost
 * nothing). */
#define MEM_SIZE (32u << 20)
#define SMALL_MEM (1u << 20)
#define GSI 11

static uint8_t *mem;
static struct vm fake_vm;
static struct pci_device *added;
static int irq_level, irq_changes;
static struct {
	uint64_t addr;
	uint32_t data;
} msi_log[64];
static unsigned msi_count;

void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	if (gpa > MEM_SIZE || len > MEM_SIZE - gpa)
		return NULL;
	return mem + gpa;
}

void vm_irq_set(struct vm *vm, unsigned gsi, int level)
{
	assert_int_equal(gsi, GSI);
	irq_level = level;
	irq_changes++;
}

/* The device drives a shared line; one device per test: same as vm_irq_set. */
void vm_irq_set_shared(struct vm *vm, unsigned gsi, unsigned source, int level)
{
	(void)source;
	vm_irq_set(vm, gsi, level);
}

zhv_status_t zhv_guest_signal_msi(zhv_guest_t *guest, uint64_t address, uint32_t data)
{
	if (msi_count < sizeof(msi_log) / sizeof(msi_log[0])) {
		msi_log[msi_count].addr = address;
		msi_log[msi_count].data = data;
	}
	msi_count++;
	return ZHV_OK;
}

int pci_add(struct vm *vm, struct pci_device *dev)
{
	added = dev;
	dev->irq_pin_gsi = GSI;
	dev->bar_addr[0] = VM_PCI_MMIO_BASE;
	dev->bar_addr[VIRTIO_PCI_NOTIFY_BAR] = VM_PCI_MMIO_BASE + VM_PCI_MMIO_SIZE - 0x1000;
	dev->cfg[0x04] |= 0x02; /* memory decoding on, as pci_add does */
	return 0;
}

/* The BELL trap is libzhv's (tests/conformance); here doorbells come in
 * through the notify BAR's MEM path, which queues the same work. */
static unsigned bell_traps;
zhv_status_t zhv_guest_set_trap(zhv_guest_t *guest, uint32_t kind, uint64_t addr, uint64_t size,
                                zhv_port_t *port, uint64_t key)
{
	assert_int_equal(kind, ZHV_TRAP_BELL);
	assert_int_equal(addr % 4096, 0);
	assert_int_equal(size, 4096);
	assert_non_null(port);
	bell_traps++;
	return ZHV_OK;
}

/* vm.c's accounting for snapshots: device work and I/O in flight. */
static int dev_busy;
void vm_device_work_begin(struct vm *vm)
{
	__atomic_add_fetch(&dev_busy, 1, __ATOMIC_SEQ_CST);
}
void vm_device_io_add(struct vm *vm, int n)
{
	__atomic_add_fetch(&dev_busy, n, __ATOMIC_SEQ_CST);
}
void vm_device_work_end(struct vm *vm)
{
	vm_device_io_add(vm, -1);
}

/* ---- the guest driver's side ------------------------------------------- */

#define SECTORS 64
#define QSIZE 16
#define DESC 0x1000u
#define AVAIL 0x2000u
#define USED 0x3000u
#define TABLE 0x4000u
#define HDR 0x5000u
#define STATUS 0x5100u
#define DATA 0x10000u

static char image_path[] = "/tmp/zhv-blk-test-XXXXXX";
static int image_fd = -1;
static uint16_t drv_avail;
static struct pci_device *dev;
static struct virtio_blk *blk;

/* Wait until the device thread has served every notification and no
 * request is in flight (the lock then orders its writes before ours). */
static void settle(void)
{
	for (unsigned ms = 0; ms < 120000; ms++) {
		struct virtio_pci *vp = &blk->vp;
		pthread_mutex_lock(&vp->lock);
		bool idle = vp->notify_pending == 0 && blk->inflight == 0;
		pthread_mutex_unlock(&vp->lock);
		if (idle && __atomic_load_n(&dev_busy, __ATOMIC_SEQ_CST) == 0)
			return;
		usleep(100);
	}
	fail_msg("the device did not become idle");
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + i / 512);
}

static uint64_t bar_read(uint64_t off, unsigned size)
{
	uint8_t data[8];
	uint64_t v = 0;

	dev->ops->bar_access(dev, 0, off, false, data, size);
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)data[i] << (8 * i);
	return v;
}

static void bar_write(uint64_t off, uint64_t v, unsigned size)
{
	uint8_t data[8];

	for (unsigned i = 0; i < size; i++)
		data[i] = (uint8_t)(v >> (8 * i));
	dev->ops->bar_access(dev, 0, off, true, data, size);
	settle();
}

/* What pci.c does on a config write: store, then call the hook. */
static void cfg_write(uint32_t off, uint32_t v, unsigned size)
{
	for (unsigned i = 0; i < size && off + i < 256; i++)
		dev->cfg[off + i] = (uint8_t)(v >> (8 * i));
	dev->ops->config_write(dev, off, v, size);
}

static uint32_t get32_le(const uint8_t *p)
{
	return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint8_t dev_status(void)
{
	return (uint8_t)bar_read(COMMON_STATUS, 1);
}

static uint64_t dev_features(void)
{
	bar_write(COMMON_DFSELECT, 0, 4);
	uint64_t lo = bar_read(COMMON_DF, 4);
	bar_write(COMMON_DFSELECT, 1, 4);
	return lo | bar_read(COMMON_DF, 4) << 32;
}

static void set_driver_features(uint64_t f)
{
	bar_write(COMMON_GFSELECT, 0, 4);
	bar_write(COMMON_GF, (uint32_t)f, 4);
	bar_write(COMMON_GFSELECT, 1, 4);
	bar_write(COMMON_GF, f >> 32, 4);
}

static void setup_queue(void)
{
	bar_write(COMMON_Q_SELECT, 0, 2);
	bar_write(COMMON_Q_SIZE, QSIZE, 2);
	bar_write(COMMON_Q_DESCLO, DESC, 4);
	bar_write(COMMON_Q_DESCHI, 0, 4);
	bar_write(COMMON_Q_AVAILLO, AVAIL, 8);
	bar_write(COMMON_Q_USEDLO, USED, 4);
	bar_write(COMMON_Q_USEDHI, 0, 4);
	bar_write(COMMON_Q_ENABLE, 1, 2);
}

/* The virtio 1.2 §3.1.1 sequence; returns the final status. */
static uint8_t driver_init(uint64_t accept)
{
	memset(mem, 0, SMALL_MEM);
	drv_avail = 0;
	bar_write(COMMON_STATUS, 0, 1);
	assert_int_equal(dev_status(), 0);
	bar_write(COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE, 1);
	bar_write(COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	set_driver_features(dev_features() & accept);
	bar_write(COMMON_STATUS, dev_status() | VIRTIO_STATUS_FEATURES_OK, 1);
	if (!(dev_status() & VIRTIO_STATUS_FEATURES_OK))
		return dev_status();
	setup_queue();
	bar_write(COMMON_STATUS, dev_status() | VIRTIO_STATUS_DRIVER_OK, 1);
	return dev_status();
}

static void set_desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
	struct vq_desc d = { .addr = addr, .len = len, .flags = flags, .next = next };

	memcpy(mem + table + 16u * i, &d, sizeof(d));
}

static uint16_t get16_mem(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, mem + gpa, 2);
	return v;
}

static uint32_t get32_mem(uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, mem + gpa, 4);
	return v;
}

static void put_hdr(uint32_t type, uint64_t sector)
{
	memcpy(mem + HDR, &type, 4);
	memset(mem + HDR + 4, 0, 4);
	memcpy(mem + HDR + 8, &sector, 8);
	mem[STATUS] = 0xee;
}

static void avail_add(uint16_t head)
{
	uint16_t idx;

	memcpy(mem + AVAIL + 4 + 2u * (drv_avail % QSIZE), &head, 2);
	idx = ++drv_avail;
	memcpy(mem + AVAIL + 2, &idx, 2);
}

/* Ring queue 0's doorbell; kick() also waits until it is served. */
static void ring(void)
{
	uint8_t data[2] = { 0, 0 };

	dev->ops->bar_access(dev, VIRTIO_PCI_NOTIFY_BAR,
	                     VIRTIO_PCI_NOTIFY_OFF + 0 * VIRTIO_PCI_NOTIFY_MULT, true, data, 2);
}

static void kick(void)
{
	ring();
	settle();
}

/* Submit (head) and check it came back; returns the used length. */
static uint32_t submit_chain(uint16_t head)
{
	uint16_t before = get16_mem(USED + 2);
	uint16_t slot = before % QSIZE;

	avail_add(head);
	kick();
	assert_int_equal(get16_mem(USED + 2), (uint16_t)(before + 1));
	assert_int_equal(get32_mem(USED + 4 + 8u * slot), head);
	return get32_mem(USED + 8 + 8u * slot);
}

/* A three-descriptor request: header, data (device-writable for IN and
 * GET_ID), status. Returns the status byte. */
static uint8_t request(uint32_t type, uint64_t sector, uint32_t data_len, uint32_t *used_len)
{
	bool to_guest = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	uint32_t len;

	put_hdr(type, sector);
	set_desc(DESC, 0, HDR, 16, VQ_DESC_F_NEXT, data_len ? 1 : 2);
	set_desc(DESC, 1, DATA, data_len, VQ_DESC_F_NEXT | (to_guest ? VQ_DESC_F_WRITE : 0), 2);
	set_desc(DESC, 2, STATUS, 1, VQ_DESC_F_WRITE, 0);
	len = submit_chain(0);
	if (used_len)
		*used_len = len;
	return mem[STATUS];
}

static void fill_image(void)
{
	uint8_t buf[SECTORS * 512];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = pattern(i);
	assert_int_equal(pwrite(image_fd, buf, sizeof(buf), 0), sizeof(buf));
	assert_int_equal(ftruncate(image_fd, sizeof(buf)), 0);
}

static void destroy_device(void)
{
	virtio_blk_destroy(blk);
	blk = NULL;
	added = dev = NULL;
}

static void create_device(bool ro)
{
	destroy_device();
	bell_traps = 0;
	assert_int_equal(virtio_blk_create(&fake_vm, image_path, ro, &blk), 0);
	assert_int_equal(bell_traps, 1); /* the doorbell page */
	assert_non_null(blk);
	assert_non_null(added);
	assert_ptr_equal(added->opaque, &blk->vp);
	dev = added;
	irq_level = 0;
	irq_changes = 0;
	msi_count = 0;
}

static int group_setup(void **state)
{
	mem = aligned_alloc(4096, MEM_SIZE);
	if (mem)
		memset(mem, 0, SMALL_MEM);
	image_fd = mkstemp(image_path);
	return mem && image_fd >= 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	destroy_device();
	close(image_fd);
	unlink(image_path);
	free(mem);
	return 0;
}

static int setup(void **state)
{
	fill_image();
	create_device(false);
	assert_int_equal(driver_init(~0ull), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                                          VIRTIO_STATUS_FEATURES_OK |
	                                          VIRTIO_STATUS_DRIVER_OK);
	return 0;
}

static int teardown(void **state)
{
	destroy_device();
	return 0;
}

/* ---- tests --------------------------------------------------------------- */

static void test_pci_identity(void **state)
{
	uint8_t *cfg = dev->cfg;
	unsigned seen = 0, at, hops = 0;

	assert_int_equal(get16(cfg + 0), 0x1af4);
	assert_int_equal(get16(cfg + 2), 0x1042);
	assert_int_equal(cfg[8], 1);
	assert_int_equal(cfg[9] | cfg[10] << 8 | cfg[11] << 16, 0x010000);
	assert_int_equal(get16(cfg + 0x2c), 0x1af4);
	assert_true(cfg[6] & 0x10);
	assert_int_equal(cfg[0x3d], 1);
	assert_int_equal(dev->bar_size[0], 0x4000);
	assert_int_equal(dev->bar_size[2], 0x1000);
	assert_int_equal(dev->bar_bell, 1u << 2);

	for (at = cfg[0x34]; at; at = cfg[at + 1]) {
		assert_true(at >= 0x40 && at < 0xfc && ++hops < 16);
		if (cfg[at] == PCI_CAP_ID_MSIX) {
			assert_int_equal(get16(cfg + at + 2) & 0x7ff, 1); /* 2 vectors */
			assert_int_equal(get32_le(cfg + at + 4), 0x3000);
			assert_int_equal(get32_le(cfg + at + 8), 0x3800);
			seen |= 1u << 0;
			continue;
		}
		assert_int_equal(cfg[at], PCI_CAP_ID_VNDR);
		/* BAR0, but the doorbells: BAR2, a page of their own. */
		assert_int_equal(cfg[at + 4], cfg[at + 3] == VIRTIO_PCI_CAP_NOTIFY_CFG ? 2 : 0);
		seen |= 1u << cfg[at + 3];
		switch (cfg[at + 3]) {
		case VIRTIO_PCI_CAP_COMMON_CFG:
			assert_int_equal(get32_le(cfg + at + 8), 0);
			assert_true(get32_le(cfg + at + 12) >= 0x38);
			break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			assert_int_equal(cfg[at + 2], 20);
			assert_int_equal(get32_le(cfg + at + 8), 0);
			assert_int_equal(get32_le(cfg + at + 16), 4);
			break;
		case VIRTIO_PCI_CAP_ISR_CFG:
			assert_int_equal(get32_le(cfg + at + 8), 0x800);
			break;
		case VIRTIO_PCI_CAP_DEVICE_CFG:
			assert_int_equal(get32_le(cfg + at + 8), 0x1000);
			assert_true(get32_le(cfg + at + 12) >= 24);
			break;
		}
	}
	assert_int_equal(seen, 1u << 0 | 1u << 1 | 1u << 2 | 1u << 3 | 1u << 4);
}

static void test_features_and_config(void **state)
{
	uint64_t f = dev_features();

	assert_true(f & 1ull << VIRTIO_F_VERSION_1);
	assert_true(f & 1ull << VIRTIO_F_INDIRECT_DESC);
	assert_true(f & 1ull << VIRTIO_BLK_F_FLUSH);
	assert_true(f & 1ull << VIRTIO_BLK_F_SEG_MAX);
	assert_true(f & 1ull << VIRTIO_BLK_F_BLK_SIZE);
	assert_false(f & 1ull << VIRTIO_BLK_F_RO);
	assert_false(f & 1ull << VIRTIO_F_EVENT_IDX);

	assert_int_equal(bar_read(VIRTIO_PCI_DEVICE_OFF + BLK_CFG_CAPACITY, 8), SECTORS);
	assert_int_equal(bar_read(VIRTIO_PCI_DEVICE_OFF + BLK_CFG_CAPACITY + 4, 4), 0);
	assert_int_equal(bar_read(VIRTIO_PCI_DEVICE_OFF + BLK_CFG_SEG_MAX, 4), 254);
	assert_int_equal(bar_read(VIRTIO_PCI_DEVICE_OFF + BLK_CFG_BLK_SIZE, 4), 512);
	assert_int_equal(bar_read(VIRTIO_PCI_DEVICE_OFF + 0x800, 4), 0);

	assert_int_equal(bar_read(COMMON_NUMQ, 2), 1);
	assert_int_equal(bar_read(COMMON_CFGGEN, 1), 0);
	bar_write(COMMON_Q_SELECT, 0, 2);
	assert_int_equal(bar_read(COMMON_Q_SIZE, 2), QSIZE);
	assert_int_equal(bar_read(COMMON_Q_ENABLE, 2), 1);
	assert_int_equal(bar_read(COMMON_Q_NOFF, 2), 0);
	assert_int_equal(bar_read(COMMON_Q_DESCLO, 8), DESC);
	assert_int_equal(bar_read(COMMON_Q_AVAILLO, 4), AVAIL);
	assert_int_equal(bar_read(COMMON_Q_USEDHI, 4), 0);
	/* Frozen while enabled (§4.1.4.3.2). */
	bar_write(COMMON_Q_SIZE, 4, 2);
	bar_write(COMMON_Q_DESCLO, 0x8000, 4);
	assert_int_equal(bar_read(COMMON_Q_SIZE, 2), QSIZE);
	assert_int_equal(bar_read(COMMON_Q_DESCLO, 4), DESC);
	/* A queue that does not exist. */
	bar_write(COMMON_Q_SELECT, 5, 2);
	assert_int_equal(bar_read(COMMON_Q_SIZE, 2), 0);
	bar_write(COMMON_Q_ENABLE, 1, 2);
	assert_int_equal(bar_read(COMMON_Q_ENABLE, 2), 0);

	/* After reset the queue offers its maximum again. */
	bar_write(COMMON_STATUS, 0, 1);
	bar_write(COMMON_Q_SELECT, 0, 2);
	assert_int_equal(bar_read(COMMON_Q_SIZE, 2), BLK_QUEUE_SIZE);
	assert_int_equal(bar_read(COMMON_Q_ENABLE, 2), 0);
	assert_int_equal(bar_read(COMMON_Q_DESCLO, 8), 0);
	assert_int_equal(bar_read(COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
}

static void test_feature_negotiation(void **state)
{
	/* No VERSION_1: legacy is not offered, FEATURES_OK does not stick. */
	assert_false(driver_init(~(1ull << VIRTIO_F_VERSION_1)) & VIRTIO_STATUS_FEATURES_OK);

	/* A bit we never offered. */
	bar_write(COMMON_STATUS, 0, 1);
	bar_write(COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	set_driver_features(1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_EVENT_IDX);
	bar_write(COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                             VIRTIO_STATUS_FEATURES_OK, 1);
	assert_false(dev_status() & VIRTIO_STATUS_FEATURES_OK);
	/* ... and DRIVER_OK without FEATURES_OK serves nothing. */
	setup_queue();
	bar_write(COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
	                             VIRTIO_STATUS_DRIVER_OK, 1);
	put_hdr(VIRTIO_BLK_T_FLUSH, 0);
	set_desc(DESC, 0, HDR, 16, VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, STATUS, 1, VQ_DESC_F_WRITE, 0);
	avail_add(0);
	kick();
	assert_int_equal(get16_mem(USED + 2), 0);

	/* Accepted subset; later feature writes are ignored. */
	assert_true(driver_init(1ull << VIRTIO_F_VERSION_1) & VIRTIO_STATUS_DRIVER_OK);
	set_driver_features(~0ull);
	bar_write(COMMON_GFSELECT, 0, 4);
	assert_int_equal(bar_read(COMMON_GF, 4), 0);
	bar_write(COMMON_GFSELECT, 1, 4);
	assert_int_equal(bar_read(COMMON_GF, 4), 1);
}

static void test_read(void **state)
{
	uint32_t used;

	assert_int_equal(request(VIRTIO_BLK_T_IN, 3, 1024, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1025);
	for (size_t i = 0; i < 1024; i++)
		assert_int_equal(mem[DATA + i], pattern(3 * 512 + i));

	/* INTx: the line is up until ISR is read, and reading clears it. */
	assert_int_equal(irq_level, 1);
	assert_int_equal(bar_read(VIRTIO_PCI_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
	assert_int_equal(irq_level, 0);
	assert_int_equal(bar_read(VIRTIO_PCI_ISR_OFF, 1), 0);

	/* The last sector of the disk. */
	assert_int_equal(request(VIRTIO_BLK_T_IN, SECTORS - 1, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(mem[DATA + 511], pattern(SECTORS * 512 - 1));
	/* Small cached reads are copied at once by the device thread where
	 * the image's file system answers RWF_NOWAIT (not tmpfs). */
	if (blk->nowait_ok)
		assert_true(blk->nowait_ops >= 2);
}

static void test_write(void **state)
{
	uint8_t back[1024];
	uint32_t used;

	for (size_t i = 0; i < sizeof(back); i++)
		mem[DATA + i] = (uint8_t)~i;
	assert_int_equal(request(VIRTIO_BLK_T_OUT, 5, 1024, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
	assert_int_equal(pread(image_fd, back, sizeof(back), 5 * 512), sizeof(back));
	assert_memory_equal(back, mem + DATA, sizeof(back));
	/* Neighbours untouched. */
	assert_int_equal(pread(image_fd, back, 1, 5 * 512 - 1), 1);
	assert_int_equal(back[0], pattern(5 * 512 - 1));
	assert_int_equal(pread(image_fd, back, 1, 7 * 512), 1);
	assert_int_equal(back[0], pattern(7 * 512));
}

static void test_flush_and_get_id(void **state)
{
	char want[VIRTIO_BLK_ID_BYTES] = { 0 };
	const char *base = strrchr(image_path, '/') + 1;
	uint32_t used;

	assert_int_equal(request(VIRTIO_BLK_T_FLUSH, 0, 0, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);

	memset(mem + DATA, 0xaa, 32);
	memcpy(want, base, strnlen(base, sizeof(want)));
	assert_int_equal(request(VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES, &used),
	                 VIRTIO_BLK_S_OK);
	assert_int_equal(used, VIRTIO_BLK_ID_BYTES + 1);
	assert_memory_equal(mem + DATA, want, sizeof(want));
	assert_int_equal(mem[DATA + VIRTIO_BLK_ID_BYTES], 0xaa);
}

static void test_out_of_range(void **state)
{
	uint8_t back[512];

	assert_int_equal(request(VIRTIO_BLK_T_IN, SECTORS, 512, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(VIRTIO_BLK_T_IN, SECTORS - 1, 1024, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(VIRTIO_BLK_T_IN, UINT64_MAX, 512, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(VIRTIO_BLK_T_IN, UINT64_MAX / 512 + 2, 512, NULL),
	                 VIRTIO_BLK_S_IOERR);
	memset(mem + DATA, 0x5a, 512);
	assert_int_equal(request(VIRTIO_BLK_T_OUT, SECTORS, 512, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(VIRTIO_BLK_T_OUT, SECTORS - 1, 1024, NULL), VIRTIO_BLK_S_IOERR);
	/* Not a whole number of sectors. */
	assert_int_equal(request(VIRTIO_BLK_T_IN, 0, 100, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(VIRTIO_BLK_T_OUT, 0, 513, NULL), VIRTIO_BLK_S_IOERR);
	/* Nothing was written, the image did not grow. */
	assert_int_equal(lseek(image_fd, 0, SEEK_END), SECTORS * 512);
	assert_int_equal(pread(image_fd, back, 512, 0), 512);
	assert_int_equal(back[0], pattern(0));
	/* The device is still fine. */
	assert_int_equal(request(VIRTIO_BLK_T_IN, 0, 512, NULL), VIRTIO_BLK_S_OK);
	assert_false(dev_status() & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_unsupported(void **state)
{
	assert_int_equal(request(11 /* DISCARD, not offered */, 0, 16, NULL),
	                 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(0xdeadbeef, 0, 0, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_false(dev_status() & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_read_only(void **state)
{
	uint8_t back[512];

	create_device(true);
	assert_true(dev_features() & 1ull << VIRTIO_BLK_F_RO);
	assert_true(driver_init(~0ull) & VIRTIO_STATUS_DRIVER_OK);
	memset(mem + DATA, 0x11, 512);
	assert_int_equal(request(VIRTIO_BLK_T_OUT, 0, 512, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(pread(image_fd, back, 512, 0), 512);
	assert_int_equal(back[0], pattern(0));
	assert_int_equal(request(VIRTIO_BLK_T_IN, 1, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(mem[DATA + 7], pattern(512 + 7));
	assert_int_equal(request(VIRTIO_BLK_T_FLUSH, 0, 0, NULL), VIRTIO_BLK_S_OK);
}

/* §2.6.4: no assumption on framing. Header split 5 + 11 bytes, data in
 * three pieces, status sharing the last descriptor with data, all in an
 * indirect table. */
static void test_odd_framing_indirect(void **state)
{
	uint32_t used;

	put_hdr(VIRTIO_BLK_T_IN, 2);
	set_desc(TABLE, 0, HDR, 5, VQ_DESC_F_NEXT, 1);
	set_desc(TABLE, 1, HDR + 5, 11, VQ_DESC_F_NEXT, 2);
	set_desc(TABLE, 2, DATA, 100, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 3);
	set_desc(TABLE, 3, DATA + 0x1000, 700, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 4);
	set_desc(TABLE, 4, DATA + 0x2000, 225, VQ_DESC_F_WRITE, 0); /* 224 data + status */
	set_desc(DESC, 3, TABLE, 5 * 16, VQ_DESC_F_INDIRECT, 0);
	used = submit_chain(3);
	assert_int_equal(used, 1025);
	assert_int_equal(mem[DATA + 0x2000 + 224], VIRTIO_BLK_S_OK);
	assert_int_equal(mem[DATA + 0], pattern(1024));
	assert_int_equal(mem[DATA + 0x1000], pattern(1024 + 100));
	assert_int_equal(mem[DATA + 0x2000 + 223], pattern(1024 + 1023));
}

static void expect_needs_reset(void)
{
	uint16_t before;

	assert_true(dev_status() & VIRTIO_STATUS_NEEDS_RESET);
	/* Configuration change notification (INTx: ISR bit 1). */
	assert_true(bar_read(VIRTIO_PCI_ISR_OFF, 1) & VIRTIO_ISR_CONFIG);
	/* Nothing more is served until the driver resets... */
	before = get16_mem(USED + 2);
	put_hdr(VIRTIO_BLK_T_FLUSH, 0);
	set_desc(DESC, 5, HDR, 16, VQ_DESC_F_NEXT, 6);
	set_desc(DESC, 6, STATUS, 1, VQ_DESC_F_WRITE, 0);
	avail_add(5);
	kick();
	assert_int_equal(get16_mem(USED + 2), before);
	/* ... and a driver writing status back cannot clear the bit. */
	bar_write(COMMON_STATUS, dev_status() & ~VIRTIO_STATUS_NEEDS_RESET, 1);
	assert_true(dev_status() & VIRTIO_STATUS_NEEDS_RESET);
	/* A reset brings it back. */
	assert_int_equal(driver_init(~0ull) & VIRTIO_STATUS_NEEDS_RESET, 0);
	assert_int_equal(request(VIRTIO_BLK_T_IN, 0, 512, NULL), VIRTIO_BLK_S_OK);
}

static void test_malformed_short_header(void **state)
{
	put_hdr(VIRTIO_BLK_T_IN, 0);
	set_desc(DESC, 0, HDR, 8, VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, STATUS, 1, VQ_DESC_F_WRITE, 0);
	avail_add(0);
	kick();
	assert_int_equal(mem[STATUS], 0xee);
	expect_needs_reset();
}

static void test_malformed_no_status(void **state)
{
	put_hdr(VIRTIO_BLK_T_OUT, 0);
	set_desc(DESC, 0, HDR, 16, VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, DATA, 512, 0, 0);
	avail_add(0);
	kick();
	expect_needs_reset();
}

static void test_malformed_loop(void **state)
{
	put_hdr(VIRTIO_BLK_T_IN, 0);
	set_desc(DESC, 0, HDR, 16, VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, DATA, 512, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 0);
	avail_add(0);
	kick();
	expect_needs_reset();
}

static void test_malformed_outside_ram(void **state)
{
	put_hdr(VIRTIO_BLK_T_IN, 0);
	set_desc(DESC, 0, HDR, 16, VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, 0xfee00000, 512, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
	set_desc(DESC, 2, STATUS, 1, VQ_DESC_F_WRITE, 0);
	avail_add(0);
	kick();
	expect_needs_reset();
}

static void test_bad_queue_setup(void **state)
{
	bar_write(COMMON_STATUS, 0, 1);
	bar_write(COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	bar_write(COMMON_Q_SELECT, 0, 2);
	bar_write(COMMON_Q_SIZE, 24, 2); /* not a power of 2 */
	bar_write(COMMON_Q_ENABLE, 1, 2);
	assert_int_equal(bar_read(COMMON_Q_ENABLE, 2), 0);
	assert_true(dev_status() & VIRTIO_STATUS_NEEDS_RESET);

	bar_write(COMMON_STATUS, 0, 1);
	bar_write(COMMON_Q_DESCLO, 0xfee00000, 4); /* rings outside RAM */
	bar_write(COMMON_Q_ENABLE, 1, 2);
	assert_int_equal(bar_read(COMMON_Q_ENABLE, 2), 0);
	assert_true(dev_status() & VIRTIO_STATUS_NEEDS_RESET);
	assert_true(driver_init(~0ull) & VIRTIO_STATUS_DRIVER_OK);
}

static void test_buffers_before_driver_ok(void **state)
{
	driver_init(~0ull);
	bar_write(COMMON_STATUS, 0, 1);
	bar_write(COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	set_driver_features(dev_features());
	bar_write(COMMON_STATUS, dev_status() | VIRTIO_STATUS_FEATURES_OK, 1);
	setup_queue();
	put_hdr(VIRTIO_BLK_T_IN, 4);
	set_desc(DESC, 0, HDR, 16, VQ_DESC_F_NEXT, 1);
	set_desc(DESC, 1, DATA, 512, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
	set_desc(DESC, 2, STATUS, 1, VQ_DESC_F_WRITE, 0);
	avail_add(0);
	kick();
	assert_int_equal(get16_mem(USED + 2), 0); /* §2.1.2: not before DRIVER_OK */
	bar_write(COMMON_STATUS, dev_status() | VIRTIO_STATUS_DRIVER_OK, 1);
	assert_int_equal(get16_mem(USED + 2), 1);
	assert_int_equal(mem[STATUS], VIRTIO_BLK_S_OK);
	assert_int_equal(mem[DATA], pattern(4 * 512));
}

static void test_reset_lowers_intx(void **state)
{
	assert_int_equal(request(VIRTIO_BLK_T_FLUSH, 0, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(irq_level, 1);
	bar_write(COMMON_STATUS, 0, 1);
	assert_int_equal(irq_level, 0);
	assert_int_equal(bar_read(VIRTIO_PCI_ISR_OFF, 1), 0);
}

static void test_no_interrupt_flag(void **state)
{
	uint16_t flags = VQ_AVAIL_F_NO_INTERRUPT;

	memcpy(mem + AVAIL, &flags, 2);
	assert_int_equal(request(VIRTIO_BLK_T_FLUSH, 0, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(irq_level, 0);
	assert_int_equal(irq_changes, 0);
}

static void msix_entry(unsigned v, uint32_t addr, uint32_t data, bool masked)
{
	uint64_t e = VIRTIO_PCI_MSIX_TBL_OFF + 16u * v;

	bar_write(e + 0, addr, 4);
	bar_write(e + 4, 0, 4);
	bar_write(e + 8, data, 4);
	bar_write(e + 12, masked, 4);
}

static void test_msix(void **state)
{
	/* The driver enables MSI-X in config space and maps vectors. */
	cfg_write(MSIX_CTRL, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL, 2);
	assert_int_equal(get16(dev->cfg + MSIX_CTRL), MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL | 1);
	msix_entry(0, 0xfee00000, 0x41, false);
	msix_entry(1, 0xfee01000, 0x42, false);
	assert_int_equal(bar_read(VIRTIO_PCI_MSIX_TBL_OFF + 16 + 8, 4), 0x42);
	assert_int_equal(bar_read(VIRTIO_PCI_MSIX_TBL_OFF + 16, 8), 0xfee01000);
	bar_write(COMMON_MSIX, 0, 2);
	assert_int_equal(bar_read(COMMON_MSIX, 2), 0);
	bar_write(COMMON_Q_SELECT, 0, 2);
	bar_write(COMMON_Q_MSIX, 7, 2); /* no such vector */
	assert_int_equal(bar_read(COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	bar_write(COMMON_Q_MSIX, 1, 2);
	assert_int_equal(bar_read(COMMON_Q_MSIX, 2), 1);

	/* Function masked: pending, delivered on unmask. */
	assert_int_equal(request(VIRTIO_BLK_T_FLUSH, 0, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(msi_count, 0);
	assert_int_equal(bar_read(VIRTIO_PCI_MSIX_PBA_OFF, 8), 2);
	cfg_write(MSIX_CTRL, MSIX_CTRL_ENABLE, 2);
	assert_int_equal(msi_count, 1);
	assert_int_equal(msi_log[0].addr, 0xfee01000);
	assert_int_equal(msi_log[0].data, 0x42);
	assert_int_equal(bar_read(VIRTIO_PCI_MSIX_PBA_OFF, 8), 0);

	/* Straight delivery; INTx and ISR stay quiet. */
	assert_int_equal(request(VIRTIO_BLK_T_IN, 0, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(msi_count, 2);
	assert_int_equal(irq_changes, 0);

	/* Vector masked: pending, then delivered on unmask. */
	bar_write(VIRTIO_PCI_MSIX_TBL_OFF + 16 + 12, 1, 4);
	assert_int_equal(request(VIRTIO_BLK_T_FLUSH, 0, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(msi_count, 2);
	assert_int_equal(bar_read(VIRTIO_PCI_MSIX_PBA_OFF, 4), 2);
	bar_write(VIRTIO_PCI_MSIX_TBL_OFF + 16 + 12, 0, 4);
	assert_int_equal(msi_count, 3);
	assert_int_equal(bar_read(VIRTIO_PCI_MSIX_PBA_OFF, 4), 0);

	/* A device error raises the config vector. */
	put_hdr(VIRTIO_BLK_T_IN, 0);
	set_desc(DESC, 0, HDR, 4, 0, 0);
	avail_add(0);
	kick();
	assert_int_equal(msi_count, 4);
	assert_int_equal(msi_log[3].data, 0x41);

	/* NO_VECTOR: no interrupt at all. */
	assert_int_equal(driver_init(~0ull) & VIRTIO_STATUS_NEEDS_RESET, 0);
	assert_int_equal(request(VIRTIO_BLK_T_FLUSH, 0, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(msi_count, 4);

	/* Disable MSI-X: back to INTx. */
	cfg_write(MSIX_CTRL, 0, 2);
	assert_int_equal(request(VIRTIO_BLK_T_FLUSH, 0, 0, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(irq_level, 1);
}

static void test_config_space_read_only(void **state)
{
	uint8_t before[256];

	memcpy(before, dev->cfg, sizeof(before));
	for (uint32_t off = 0x40; off < 0x100; off += 4)
		cfg_write(off, 0xffffffff, 4);
	cfg_write(0x00, 0, 4);
	cfg_write(0x08, 0, 4);
	cfg_write(0x34, 0, 1);
	/* Identity and capabilities survive; only MSI-X enable/mask moved. */
	assert_int_equal(get16(dev->cfg + MSIX_CTRL), MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL | 1);
	dev->cfg[MSIX_CTRL + 1] = before[MSIX_CTRL + 1];
	assert_memory_equal(dev->cfg, before, 0x34);
	assert_memory_equal(dev->cfg + 0x40, before + 0x40, 0x40);
	cfg_write(MSIX_CTRL, 0, 2);
	assert_memory_equal(dev->cfg + 0x40, before + 0x40, 0xc0);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A hostile guest writes garbage everywhere in BAR0 and config space with
 * every access size; the device must survive and work after a reset. */
static void test_garbage_registers(void **state)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	static const unsigned sizes[] = { 1, 2, 4, 8 };

	for (unsigned i = 0; i < 200000; i++) {
		uint64_t off, v;
		unsigned size;

		xorshift(&seed);
		size = sizes[seed & 3];
		off = (seed >> 8) % (VIRTIO_PCI_BAR_SIZE + 64);
		/* Mostly the interesting registers. */
		if ((seed >> 40) & 1)
			off = (seed >> 8) % VIRTIO_PCI_COMMON_LEN;
		v = seed * 0x2545f4914f6cdd1dull;
		if ((seed >> 41) & 1)
			v &= 0xff;
		if ((seed >> 42) & 1) /* keep addresses inside the fake RAM */
			v &= MEM_SIZE - 1;
		if (((seed >> 43) & 15) == 0)
			cfg_write(0x40 + (uint32_t)(seed >> 48) % 0xc0, (uint32_t)v, size > 4 ? 4 : size);
		else if ((seed >> 47) & 1)
			bar_write(off, v, size);
		else
			(void)bar_read(off, size);
		if (i % 1000 == 0) /* guest scribbles on its rings too */
			for (unsigned j = 0; j < 64; j++)
				mem[(seed >> (j % 40)) % 0x6000] = (uint8_t)(seed >> j);
	}
	cfg_write(MSIX_CTRL, 0, 2);
	fill_image();
	assert_true(driver_init(~0ull) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(request(VIRTIO_BLK_T_IN, 9, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(mem[DATA + 3], pattern(9 * 512 + 3));
}

/* A running device fed random descriptor tables, indirect tables and
 * available rings: every outcome is a completed request or a device
 * error, never a crash or a hang, and the device recovers on reset. */
static void test_garbage_rings(void **state)
{
	uint64_t seed = 0x243f6a8885a308d3ull;
	unsigned served = 0, errors = 0;

	for (unsigned round = 0; round < 3000; round++) {
		uint16_t idx;

		assert_true(driver_init(~0ull) & VIRTIO_STATUS_DRIVER_OK);
		for (uint16_t i = 0; i < QSIZE; i++) {
			/* Mostly request-shaped (header, data, status), then
			 * perturbed: any flags, next, address or length. */
			static const uint16_t shape[3] = { VQ_DESC_F_NEXT,
			                                   VQ_DESC_F_NEXT | VQ_DESC_F_WRITE,
			                                   VQ_DESC_F_WRITE };
			uint64_t r = xorshift(&seed);
			uint64_t addr = i % 3 == 0 ? HDR : DATA + (r >> 20) % 0x10000;
			uint32_t len = i % 3 == 0 ? 16 : i % 3 == 2 ? 1 : 512u << ((r >> 60) % 3);
			uint16_t flags = shape[i % 3], next = (uint16_t)((i + 1) % QSIZE);

			if ((r >> 8) % 4 == 0)
				flags = (uint16_t)(r & 7);
			if ((r >> 10) % 4 == 0)
				next = (uint16_t)((r >> 3) % (QSIZE + 2));
			if ((r >> 12) % 4 == 0)
				addr = (r >> 20) % (MEM_SIZE + 0x400);
			if ((r >> 14) % 4 == 0)
				len = (uint32_t)(r >> 44) % 0x900;
			if (flags & VQ_DESC_F_INDIRECT)
				addr = TABLE, len = (len % 8) * 16;
			set_desc(DESC, i, addr, len, flags, next);
			r = xorshift(&seed);
			set_desc(TABLE, i, (r >> 20) % MEM_SIZE, (uint32_t)(r >> 48) % 0x900,
			         (uint16_t)(r & 7), (uint16_t)((r >> 3) % 8));
			r = xorshift(&seed);
			idx = (uint16_t)((r % 4 ? 3 * (r % 6) : r) % (QSIZE + 1));
			memcpy(mem + AVAIL + 4 + 2u * i, &idx, 2);
		}
		put_hdr((uint32_t)(xorshift(&seed) % 10), xorshift(&seed) % (SECTORS + 2));
		idx = (uint16_t)(xorshift(&seed) % (QSIZE + 3));
		memcpy(mem + AVAIL + 2, &idx, 2);
		kick();
		kick();
		if (dev_status() & VIRTIO_STATUS_NEEDS_RESET)
			errors++;
		served += get16_mem(USED + 2);
	}
	/* Both paths were exercised. */
	assert_true(served > 100);
	assert_true(errors > 100);
	fill_image();
	assert_true(driver_init(~0ull) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(request(VIRTIO_BLK_T_IN, 9, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(mem[DATA + 3], pattern(9 * 512 + 3));
}

/* ---- large requests: bounded work per notify, lengths past 2 GiB --------- */

#define BIG 0x1000000u            /* 16 MiB of guest RAM for large buffers */

/* An image byte that is never 0, so that copied bytes can be counted. */
static uint8_t big_pattern(uint64_t i)
{
	return (uint8_t)(1 + (i * 13 + i / 4096) % 255);
}

/* Grow the image to (bytes): the first (filled) bytes get big_pattern,
 * the rest is a hole. Then a fresh device that sees the new capacity. */
static void big_image(uint64_t bytes, size_t filled)
{
	uint8_t *buf = malloc(filled ? filled : 1);

	assert_non_null(buf);
	for (size_t i = 0; i < filled; i++)
		buf[i] = big_pattern(i);
	assert_int_equal(pwrite(image_fd, buf, filled, 0), (ssize_t)filled);
	free(buf);
	assert_int_equal(ftruncate(image_fd, (off_t)bytes), 0);
	create_device(false);
	assert_true(driver_init(~0ull) & VIRTIO_STATUS_DRIVER_OK);
}

/* The driver's view of the used index, read under the device lock so that
 * it is ordered with the worker's writes. */
static uint16_t used_idx_locked(void)
{
	struct virtio_pci *vp = &blk->vp;
	uint16_t v;

	pthread_mutex_lock(&vp->lock);
	v = get16_mem(USED + 2);
	pthread_mutex_unlock(&vp->lock);
	return v;
}

/* Wait (polling, up to (seconds)) until the used index reaches (want);
 * false at once if the device gave up (needs reset). */
static bool wait_used(uint16_t want, unsigned seconds)
{
	for (unsigned ms = 0; ms < seconds * 1000u; ms++) {
		if (used_idx_locked() == want)
			return true;
		if (dev_status() & VIRTIO_STATUS_NEEDS_RESET)
			return false;
		usleep(1000);
	}
	return used_idx_locked() == want;
}

/* One request in the indirect table at TABLE: header, (n) writable data
 * descriptors of (seg) bytes at BIG + i * (stride), status; offered
 * (count) times (every avail entry names the same head, 0). */
static void post_big_reads(unsigned n, uint32_t seg, uint32_t stride, unsigned count)
{
	put_hdr(VIRTIO_BLK_T_IN, 0);
	set_desc(TABLE, 0, HDR, 16, VQ_DESC_F_NEXT, 1);
	for (unsigned i = 0; i < n; i++)
		set_desc(TABLE, (uint16_t)(1 + i), BIG + (uint64_t)i * stride, seg,
		         VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, (uint16_t)(2 + i));
	set_desc(TABLE, (uint16_t)(1 + n), STATUS, 1, VQ_DESC_F_WRITE, 0);
	set_desc(DESC, 0, TABLE, 16u * (n + 2), VQ_DESC_F_INDIRECT, 0);
	for (unsigned i = 0; i < count; i++)
		avail_add(0);
}

/* A full ring of 8 MiB reads behind one doorbell: the requests are in
 * flight together (one chunk each at a time), every one completes with
 * the image's bytes. */
static void test_ring_in_flight(void **state)
{
	big_image(8u << 20, 8u << 20);
	memset(mem + BIG, 0, 8u << 20);
	post_big_reads(2, 4u << 20, 4u << 20, QSIZE);
	ring();
	assert_true(wait_used(QSIZE, 60));
	settle();
	for (unsigned i = 0; i < QSIZE; i++) {
		assert_int_equal(get32_mem(USED + 4 + 8u * i), 0);
		assert_int_equal(get32_mem(USED + 8 + 8u * i), (8u << 20) + 1);
	}
	assert_int_equal(mem[STATUS], VIRTIO_BLK_S_OK);
	for (size_t i = 0; i < (8u << 20); i += 4093)
		assert_int_equal(mem[BIG + i], big_pattern(i));
	assert_int_equal(blk->requests, QSIZE);
	assert_int_equal(blk->requests_elsewhere, 0);
	if (blk->ring_ok)
		assert_true(blk->max_inflight > 1);
	assert_false(dev_status() & VIRTIO_STATUS_NEEDS_RESET);
	/* The device is idle and fine afterwards. */
	assert_int_equal(request(VIRTIO_BLK_T_IN, 1, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(mem[DATA], big_pattern(512));
}

/* A reset while requests are in flight: it returns once none is left,
 * and nothing of them reaches the used ring. */
static void test_reset_in_flight(void **state)
{
	big_image(256u << 20, 0);
	post_big_reads(64, 4u << 20, 0, QSIZE);
	ring();
	bar_write(COMMON_STATUS, 0, 1);
	assert_int_equal(blk->inflight, 0);
	uint16_t used = used_idx_locked();
	usleep(20000);
	assert_int_equal(used_idx_locked(), used);
	assert_true(driver_init(~0ull) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(request(VIRTIO_BLK_T_IN, 1, 512, NULL), VIRTIO_BLK_S_OK);
}

/* A hostile ring (16 x 3200 MiB, every descriptor over the same 16 MiB):
 * destroying the device stops its work within a chunk per request
 * instead of finishing 50 GiB of copies. */
static void test_destroy_stops_work(void **state)
{
	big_image(200ull << 24, 0);
	post_big_reads(200, 16u << 20, 0, QSIZE);
	ring();
	destroy_device();
	assert_true(get16_mem(USED + 2) < QSIZE);
}

/* A read of more than 2 GiB in one chain (129 descriptors of 16 MiB over
 * the same guest buffer) completes with its full length. */
static void test_read_over_2gib(void **state)
{
	uint64_t len = 129ull * (16u << 20);
	uint32_t used;

	big_image(len, 4096);
	post_big_reads(129, 16u << 20, 0, 1);
	mem[STATUS] = 0xee;
	ring();
	assert_true(wait_used(1, 120));
	assert_false(dev_status() & VIRTIO_STATUS_NEEDS_RESET);
	pthread_mutex_lock(&blk->vp.lock);
	used = get32_mem(USED + 8);
	assert_int_equal(mem[STATUS], VIRTIO_BLK_S_OK);
	pthread_mutex_unlock(&blk->vp.lock);
	assert_true(len + 1 > INT32_MAX);
	assert_int_equal(used, len + 1);
	/* The last descriptor's pass wrote the image's tail (a hole). */
	assert_int_equal(mem[BIG], 0);
}

/* ---- snapshot section ------------------------------------------------------ */

/* The section of the device created last. */
static struct snap_section *blk_section(void)
{
	struct snap_section *sec = &fake_vm.snapshots[fake_vm.nsnapshots - 1];

	assert_ptr_equal(sec->opaque, &blk->vp);
	assert_int_equal(strncmp(sec->name, "virtio-blk", 10), 0);
	return sec;
}

/* What the driver can read without changing anything but ISR: common
 * config, ISR, MSI-X table and PBA, config space, device config. */
static void blk_probe(uint8_t *out, size_t len)
{
	size_t k = 0;

	for (unsigned off = 0; off < VIRTIO_PCI_COMMON_LEN; off++)
		out[k++] = (uint8_t)bar_read(off, 1);
	out[k++] = (uint8_t)bar_read(VIRTIO_PCI_ISR_OFF, 1);
	for (unsigned off = 0; off < 32; off++)
		out[k++] = (uint8_t)bar_read(VIRTIO_PCI_MSIX_TBL_OFF + off, 1);
	out[k++] = (uint8_t)bar_read(VIRTIO_PCI_MSIX_PBA_OFF, 1);
	memcpy(out + k, dev->cfg, 256);
	k += 256;
	for (unsigned off = 0; off < 24; off++)
		out[k++] = (uint8_t)bar_read(VIRTIO_PCI_DEVICE_OFF + off, 1);
	assert_int_equal(k, len);
}

/* A driven device (MSI-X, a masked vector with a pending bit, requests
 * done, selectors moved) saves; a fresh device on the same image loads it,
 * reads the same everywhere and serves the next request from where the
 * first left off. Damaged sections, another disk and work in flight are
 * refused. */
static void test_snapshot(void **state)
{
	cfg_write(MSIX_CTRL, MSIX_CTRL_ENABLE, 2);
	msix_entry(0, 0xfee00000, 0x41, false);
	msix_entry(1, 0xfee01000, 0x42, true); /* masked: the next one is pending */
	bar_write(COMMON_Q_SELECT, 0, 2);
	bar_write(COMMON_Q_MSIX, 1, 2);
	assert_int_equal(request(VIRTIO_BLK_T_IN, 1, 512, NULL), VIRTIO_BLK_S_OK);
	memset(mem + DATA, 0x5A, 512);
	assert_int_equal(request(VIRTIO_BLK_T_OUT, 3, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(bar_read(VIRTIO_PCI_MSIX_PBA_OFF, 1), 2);
	bar_write(COMMON_DFSELECT, 1, 4);

	struct snap_section *sec = blk_section();
	struct snap_writer w = { 0 };
	/* Work in flight: not now. */
	blk->inflight = 1;
	assert_int_equal(sec->save(sec->opaque, &w), -EBUSY);
	blk->inflight = 0;
	snap_writer_free(&w);
	assert_int_equal(sec->save(sec->opaque, &w), 0);
	assert_int_equal(w.err, 0);
	assert_int_equal(w.len, 203 + 2 + strlen(image_path) + 8 + 1);
	uint8_t a[VIRTIO_PCI_COMMON_LEN + 1 + 32 + 1 + 256 + 24], b[sizeof(a)];
	blk_probe(a, sizeof(a));

	create_device(false);
	sec = blk_section();
	snapt_check_bad_lengths(&fake_vm, sec->name, w.buf, w.len, 0);
	static const struct {
		size_t off;
		uint8_t v;
	} bad[] = {
		{ 0, 0x01 },   /* not the features this device offers */
		{ 12, 0x00 },  /* FEATURES_OK without VERSION_1 */
		{ 24, 0x05 },  /* config vector 5 of 2 */
		{ 30, 0x04 },  /* ISR bit 2 */
		{ 36, 0x80 },  /* pending vector 31 */
		{ 37, 2 },     /* two queues */
		{ 38, 3 },     /* queue size 3 */
		{ 40, 0x08 },  /* descriptor table misaligned */
		{ 47, 0xFF },  /* rings outside RAM */
		{ 65, 2 },     /* a bool */
		{ 70, 0x07 },  /* queue vector 7 */
		{ 72, 3 },     /* three vectors */
		{ 73, 0x01 },  /* MSI-X address bits 1:0 */
		{ 85, 0x02 },  /* MSI-X vector control */
		{ 105, 95 },   /* config length */
		{ 107, 0x41 }, /* capacity: another disk size */
		{ 205, 'X' },  /* another image path */
		{ 205 + sizeof(image_path) - 1, 0x41 }, /* another image size */
		{ 205 + sizeof(image_path) - 1 + 8, 1 }, /* read-only */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		snapt_check_bad_byte(&fake_vm, sec->name, w.buf, w.len, bad[i].off, bad[i].v, 0);
	assert_int_equal(snapt_load(&fake_vm, sec->name, w.buf, w.len), 0);
	blk_probe(b, sizeof(b));
	assert_memory_equal(a, b, sizeof(a));
	/* The next request continues the ring (used index 3), its interrupt
	 * pending on the masked vector, delivered on unmask. */
	assert_int_equal(request(VIRTIO_BLK_T_IN, 3, 512, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(mem[DATA + 100], 0x5A);
	assert_int_equal(get16_mem(USED + 2), 3);
	assert_int_equal(msi_count, 0);
	bar_write(VIRTIO_PCI_MSIX_TBL_OFF + 16 + 12, 0, 4);
	assert_int_equal(msi_count, 1);
	assert_int_equal(msi_log[0].data, 0x42);

	/* A read-only device on the same image refuses the read-write one's. */
	create_device(true);
	sec = blk_section();
	assert_int_equal(snapt_load(&fake_vm, sec->name, w.buf, w.len), -EINVAL);
	snap_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pci_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_features_and_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_feature_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_and_get_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_framing_indirect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_short_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_no_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_outside_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_queue_setup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_buffers_before_driver_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_lowers_intx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_interrupt_flag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_space_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_rings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ring_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy_stops_work, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_over_2gib, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
