/* dev_blk.c: virtio-blk from the guest side, through rt/virtio.c. The
 * script gives a disk image whose sector s holds "disk sector SSS\n" 32
 * times, named blk-*.img, and passes "sectors=N ro=0|1 idlen=N" (idlen:
 * the length of the image's file name, which GET_ID returns).
 *   read/write disk: reads sectors with known content (one, several and
 *     indirect descriptors, data and status in one buffer), writes
 *     "guest wrote SSS\n" x 32 to sectors 5 and 6 (after an interim write
 *     with header and data in one buffer), reads them back, flushes; the
 *     script then checks the image.
 *   read-only disk (ro=1): the device offers VIRTIO_BLK_F_RO, a write
 *     fails with VIRTIO_BLK_S_IOERR and sectors 5-6 keep their content.
 * Both: feature negotiation, configuration space, GET_ID, requests past
 * the end and unknown types, completion interrupts by MSI-X (masking
 * included) and by INTx through the I/O APIC, and a reset followed by a
 * second initialization. */
#include "apic.h"
#include "group.h"
#include "pci.h"
#include "virtio.h"

/* virtio 1.2 §5.2 */
#define BLK_F_SEG_MAX 2
#define BLK_F_RO 5
#define BLK_F_BLK_SIZE 6
#define BLK_F_FLUSH 9
#define BLK_CFG_CAPACITY 0
#define BLK_CFG_SEG_MAX 12
#define BLK_CFG_BLK_SIZE 20
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2

#define SECTOR 512
#define QSIZE 16
#define VEC_MSIX 0x61
#define VEC_INTX 0x62

static uint8_t qmem[RT_VIRTQ_MEM_SIZE(QSIZE)] __attribute__((aligned(4096)));
static struct rt_virtio_dev dev;
static struct rt_virtq vq;
static struct {
	uint32_t type, reserved, sector_lo, sector_hi;
} hdr;
static volatile uint8_t status;
static uint8_t buf[4 * SECTOR] __attribute__((aligned(16)));
static uint8_t wbuf[2 * SECTOR] __attribute__((aligned(16)));

static volatile uint32_t msix_irqs, intx_irqs;
static volatile uint8_t last_isr;

static void on_msix(struct rt_frame *f)
{
	(void)f;
	msix_irqs++;
	rt_lapic_eoi();
}

static void on_intx(struct rt_frame *f)
{
	(void)f;
	last_isr = rt_virtio_isr(&dev); /* reading ISR lowers INTx */
	intx_irqs++;
	rt_lapic_eoi();
}

/* One request: header, (n) data buffers (device-readable for a write),
 * status byte. Returns the status; *(used) gets the used length. */
static uint8_t request(uint32_t type, uint32_t sector, const struct rt_vbuf *data, unsigned n,
                       bool write, uint32_t *used)
{
	struct rt_vbuf out[4], in[5];
	unsigned no = 0, ni = 0;
	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector_lo = sector;
	hdr.sector_hi = 0;
	status = 0xEE;
	out[no++] = (struct rt_vbuf){&hdr, sizeof(hdr)};
	for (unsigned i = 0; i < n; i++) {
		if (write)
			out[no++] = data[i];
		else
			in[ni++] = data[i];
	}
	in[ni++] = (struct rt_vbuf){(void *)&status, 1};
	int head = rt_virtq_add(&vq, out, no, in, ni);
	RT_EXPECT(head >= 0, "the queue is full");
	rt_virtq_kick(&vq);
	uint32_t id = 0xFFFF, len = 0;
	RT_EXPECT(rt_virtq_wait(&vq, &id, &len, 5000000), "request type %u sector %u: no answer",
	          type, sector);
	RT_EXPECT(id == (uint32_t)head, "used id %u, submitted head %d", id, head);
	if (used)
		*used = len;
	return status;
}

/* "disk sector SSS\n" (the script's content) or "guest wrote SSS\n". */
static void fill_line(uint8_t *p, const char *prefix, unsigned s)
{
	size_t n = strlen(prefix);
	memcpy(p, prefix, n);
	p[n] = (uint8_t)('0' + s / 100 % 10);
	p[n + 1] = (uint8_t)('0' + s / 10 % 10);
	p[n + 2] = (uint8_t)('0' + s % 10);
	p[n + 3] = '\n';
}

static void fill_sector(uint8_t *p, const char *prefix, unsigned s)
{
	for (unsigned i = 0; i < SECTOR; i += 16)
		fill_line(p + i, prefix, s);
}

static bool sector_is(const uint8_t *p, const char *prefix, unsigned s)
{
	uint8_t line[16];
	fill_line(line, prefix, s);
	for (unsigned i = 0; i < SECTOR; i += 16)
		if (memcmp(p + i, line, 16))
			return false;
	return true;
}

static void read_sectors(uint32_t sector, unsigned count)
{
	struct rt_vbuf d = {buf, count * SECTOR};
	uint32_t len = 0;
	memset(buf, 0, sizeof(buf));
	uint8_t st = request(T_IN, sector, &d, 1, false, &len);
	RT_EXPECT(st == S_OK, "read of %u sectors at %u: status %u", count, sector, st);
	RT_EXPECT(len == count * SECTOR + 1, "read: used length %u, want %u", len,
	          count * SECTOR + 1);
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	unsigned sectors = rt_cmdline_uint("sectors", 0), ro = rt_cmdline_uint("ro", 0);
	if (!sectors)
		rt_fail("need sectors=N on the command line");

	/* ---- PCI function and virtio structures ---- */
	RT_EXPECT(rt_virtio_find(RT_VIRTIO_ID_BLOCK, 0, &dev), "no virtio-blk device on PCI bus 0");
	RT_EXPECT(!rt_virtio_find(RT_VIRTIO_ID_BLOCK, 1, &dev), "a second virtio-blk device");
	RT_EXPECT(rt_virtio_find(RT_VIRTIO_ID_BLOCK, 0, &dev), "virtio-blk vanished");
	uint32_t class_rev = rt_pci_read32(dev.slot, 0x08);
	RT_EXPECT(class_rev >> 8 == 0x010000 && (class_rev & 0xFF) == 1,
	          "class/revision %x, want mass storage 0x010000, revision 1", class_rev);
	RT_EXPECT(rt_pci_read16(dev.slot, 0x2C) == 0x1AF4, "subsystem vendor %x",
	          rt_pci_read16(dev.slot, 0x2C));
	RT_EXPECT(rt_pci_read8(dev.slot, 0x3D) == 1, "interrupt pin %u, want INTA",
	          rt_pci_read8(dev.slot, 0x3D));
	RT_EXPECT(dev.irq_line >= 16 && dev.irq_line < 24, "interrupt line %u, want a PCI GSI",
	          dev.irq_line);
	RT_EXPECT(dev.device && dev.device_len >= 24, "device configuration missing (%u bytes)",
	          dev.device_len);
	RT_EXPECT(dev.msix_cap && dev.msix_entries >= 2, "MSI-X: cap %x, %u entries", dev.msix_cap,
	          dev.msix_entries);
	rt_printf("blk: 00:%x.0, INTA on GSI %u, %u MSI-X entries\n", dev.slot, dev.irq_line,
	          dev.msix_entries);
	RT_GROUP_OK("blk-pci");

	/* ---- features ---- */
	/* Without VERSION_1 the device must refuse FEATURES_OK. */
	RT_EXPECT(rt_virtio_init_features(&dev, RT_VIRTIO_BIT(BLK_F_FLUSH)) < 0,
	          "FEATURES_OK accepted without VERSION_1");
	/* Neither may it accept a feature it did not offer. */
	RT_EXPECT(!(dev.offered & RT_VIRTIO_BIT(20)), "offers feature 20");
	RT_EXPECT(rt_virtio_init_features(&dev, RT_VIRTIO_BIT(RT_VIRTIO_F_VERSION_1) |
	                                            RT_VIRTIO_BIT(20)) < 0,
	          "FEATURES_OK accepted with a feature never offered");
	uint64_t want = RT_VIRTIO_BIT(BLK_F_RO) | RT_VIRTIO_BIT(BLK_F_BLK_SIZE) |
	                RT_VIRTIO_BIT(BLK_F_SEG_MAX) | RT_VIRTIO_BIT(BLK_F_FLUSH) |
	                RT_VIRTIO_BIT(RT_VIRTIO_F_INDIRECT_DESC);
	RT_EXPECT(rt_virtio_init(&dev, want) == 0, "FEATURES_OK refused (offered %x:%x)",
	          (uint32_t)(dev.offered >> 32), (uint32_t)dev.offered);
	RT_EXPECT(!(dev.offered & RT_VIRTIO_BIT(RT_VIRTIO_F_EVENT_IDX)), "EVENT_IDX offered");
	bool dev_ro = (dev.features & RT_VIRTIO_BIT(BLK_F_RO)) != 0;
	RT_EXPECT(dev_ro == (ro != 0), "VIRTIO_BLK_F_RO is %u for ro=%u", dev_ro, ro);
	RT_EXPECT(dev.features & RT_VIRTIO_BIT(BLK_F_FLUSH), "no VIRTIO_BLK_F_FLUSH");
	RT_EXPECT(dev.features & RT_VIRTIO_BIT(RT_VIRTIO_F_INDIRECT_DESC), "no INDIRECT_DESC");
	uint64_t cap = rt_virtio_cfg64(&dev, BLK_CFG_CAPACITY);
	RT_EXPECT(cap == sectors, "capacity %u sectors, the image has %u", (uint32_t)cap, sectors);
	RT_EXPECT(rt_virtio_cfg32(&dev, BLK_CFG_BLK_SIZE) == SECTOR, "blk_size %u",
	          rt_virtio_cfg32(&dev, BLK_CFG_BLK_SIZE));
	RT_EXPECT(rt_virtio_cfg32(&dev, BLK_CFG_SEG_MAX) >= 4, "seg_max %u",
	          rt_virtio_cfg32(&dev, BLK_CFG_SEG_MAX));
	RT_EXPECT(rt_virtio_num_queues(&dev) == 1, "%u queues", rt_virtio_num_queues(&dev));
	RT_EXPECT(rt_virtq_setup(&dev, &vq, 0, QSIZE, qmem) == 0, "queue 0 setup failed");
	rt_virtio_driver_ok(&dev);
	RT_EXPECT(rt_virtio_status(&dev) == (RT_VIRTIO_ST_ACKNOWLEDGE | RT_VIRTIO_ST_DRIVER |
	                                     RT_VIRTIO_ST_FEATURES_OK | RT_VIRTIO_ST_DRIVER_OK),
	          "status %x after DRIVER_OK", rt_virtio_status(&dev));
	RT_GROUP_OK("blk-features");

	/* ---- reads of known content ---- */
	read_sectors(2, 2);
	RT_EXPECT(sector_is(buf, "disk sector ", 2) && sector_is(buf + SECTOR, "disk sector ", 3),
	          "sectors 2-3 read '%c%c%c%c...'", buf[0], buf[1], buf[2], buf[3]);
	/* One sector spread over three descriptors. */
	memset(buf, 0, sizeof(buf));
	struct rt_vbuf parts[3] = {{buf, 100}, {buf + 100, 12}, {buf + 112, SECTOR - 112}};
	uint32_t len = 0;
	uint8_t st = request(T_IN, 0, parts, 3, false, &len);
	RT_EXPECT(st == S_OK && len == SECTOR + 1, "scattered read: status %u, length %u", st, len);
	RT_EXPECT(sector_is(buf, "disk sector ", 0), "scattered read of sector 0 is wrong");
	read_sectors(sectors - 1, 1);
	RT_EXPECT(sector_is(buf, "disk sector ", sectors - 1), "the last sector reads wrong");
	/* Sectors 8-9 through an indirect descriptor table (§2.7.5.3). */
	static struct rt_vring_desc table[4] __attribute__((aligned(16)));
	memset(buf, 0, sizeof(buf));
	hdr = (__typeof__(hdr)){T_IN, 0, 8, 0};
	status = 0xEE;
	struct rt_vbuf iout = {&hdr, sizeof(hdr)};
	struct rt_vbuf iin[3] = {{buf, SECTOR}, {buf + SECTOR, SECTOR}, {(void *)&status, 1}};
	int head = rt_virtq_add_indirect(&vq, table, &iout, 1, iin, 3);
	rt_virtq_kick(&vq);
	uint32_t id = 0xFFFF;
	RT_EXPECT(rt_virtq_wait(&vq, &id, &len, 5000000) && id == (uint32_t)head,
	          "indirect read: no answer (id %u, head %d)", id, head);
	RT_EXPECT(status == S_OK && len == 2 * SECTOR + 1, "indirect read: status %u length %u",
	          status, len);
	RT_EXPECT(sector_is(buf, "disk sector ", 8) && sector_is(buf + SECTOR, "disk sector ", 9),
	          "indirect read of sectors 8-9 is wrong");
	/* Any framing (§2.6.4): data and status in one writable buffer. */
	static uint8_t combo[16 + SECTOR + 1] __attribute__((aligned(16)));
	memset(combo, 0xEE, sizeof(combo));
	hdr = (__typeof__(hdr)){T_IN, 0, 11, 0};
	struct rt_vbuf cin = {combo, SECTOR + 1};
	head = rt_virtq_add(&vq, &iout, 1, &cin, 1);
	rt_virtq_kick(&vq);
	RT_EXPECT(rt_virtq_wait(&vq, &id, &len, 5000000) && id == (uint32_t)head,
	          "framed read: no answer");
	RT_EXPECT(combo[SECTOR] == S_OK && len == SECTOR + 1, "framed read: status %u length %u",
	          combo[SECTOR], len);
	RT_EXPECT(sector_is(combo, "disk sector ", 11), "framed read of sector 11 is wrong");
	RT_EXPECT(vq.num_free == vq.size, "%u of %u descriptors free when idle", vq.num_free,
	          vq.size);
	RT_GROUP_OK("blk-read");

	/* ---- writes ---- */
	if (!ro) {
		/* Header and data in one readable buffer: sector 6 gets an
		 * interim content, overwritten below. */
		struct {
			uint32_t type, reserved, sector_lo, sector_hi;
		} *h = (void *)combo;
		*h = (__typeof__(*h)){T_OUT, 0, 6, 0};
		fill_sector(combo + 16, "framed write", 6);
		status = 0xEE;
		struct rt_vbuf wout = {combo, 16 + SECTOR}, win = {(void *)&status, 1};
		head = rt_virtq_add(&vq, &wout, 1, &win, 1);
		rt_virtq_kick(&vq);
		RT_EXPECT(rt_virtq_wait(&vq, &id, &len, 5000000) && id == (uint32_t)head,
		          "framed write: no answer");
		RT_EXPECT(status == S_OK, "framed write: status %u", status);
		read_sectors(6, 1);
		RT_EXPECT(sector_is(buf, "framed write", 6), "framed write: sector 6 reads '%c%c%c'",
		          buf[0], buf[1], buf[2]);
	}
	fill_sector(wbuf, "guest wrote ", 5);
	fill_sector(wbuf + SECTOR, "guest wrote ", 6);
	struct rt_vbuf wd = {wbuf, 2 * SECTOR};
	st = request(T_OUT, 5, &wd, 1, true, &len);
	if (!ro) {
		RT_EXPECT(st == S_OK && len == 1, "write: status %u, used length %u", st, len);
		read_sectors(5, 2);
		RT_EXPECT(!memcmp(buf, wbuf, 2 * SECTOR), "sectors 5-6 do not read back as written");
		read_sectors(4, 1);
		RT_EXPECT(sector_is(buf, "disk sector ", 4), "sector 4 changed by the write to 5-6");
		read_sectors(7, 1);
		RT_EXPECT(sector_is(buf, "disk sector ", 7), "sector 7 changed by the write to 5-6");
		st = request(T_FLUSH, 0, NULL, 0, false, &len);
		RT_EXPECT(st == S_OK, "flush: status %u", st);
		RT_GROUP_OK("blk-write");
	} else {
		RT_EXPECT(st == S_IOERR, "write to a read-only disk: status %u, want IOERR (1)", st);
		read_sectors(5, 2);
		RT_EXPECT(sector_is(buf, "disk sector ", 5) && sector_is(buf + SECTOR, "disk sector ", 6),
		          "sectors 5-6 of the read-only disk changed");
		RT_GROUP_OK("blk-ro-write-fails");
	}

	/* ---- GET_ID, errors ---- */
	static char id_str[21];
	struct rt_vbuf idb = {id_str, 20};
	st = request(T_GET_ID, 0, &idb, 1, false, &len);
	unsigned id_len = rt_cmdline_uint("idlen", 0);
	RT_EXPECT(st == S_OK, "GET_ID: status %u", st);
	RT_EXPECT(id_len == 0 || (strlen(id_str) == id_len && !memcmp(id_str, "blk", 3)),
	          "GET_ID '%s', want the image's name (%u bytes)", id_str, id_len);
	struct rt_vbuf one = {buf, SECTOR}, two = {buf, 2 * SECTOR}, odd = {buf, 100};
	st = request(T_IN, sectors, &one, 1, false, NULL);
	RT_EXPECT(st == S_IOERR, "read at the capacity: status %u", st);
	st = request(T_IN, sectors - 1, &two, 1, false, NULL);
	RT_EXPECT(st == S_IOERR, "read across the end: status %u", st);
	st = request(T_IN, 0, &odd, 1, false, NULL);
	RT_EXPECT(st == S_IOERR, "read of 100 bytes: status %u", st);
	st = request(0x99, 0, &one, 1, false, NULL);
	RT_EXPECT(st == S_UNSUPP, "request type 0x99: status %u, want UNSUPP (2)", st);
	RT_EXPECT(!(rt_virtio_status(&dev) & RT_VIRTIO_ST_NEEDS_RESET), "the device needs a reset");
	RT_GROUP_OK("blk-errors");

	/* ---- completion interrupts: MSI-X, then INTx ---- */
	rt_lapic_enable();
	rt_set_handler(VEC_MSIX, on_msix);
	rt_set_handler(VEC_INTX, on_intx);
	rt_sti();
	RT_EXPECT(rt_virtio_msix_enable(&dev, true), "cannot enable MSI-X");
	rt_virtio_msix_route(&dev, 1, 0, VEC_MSIX);
	RT_EXPECT(rt_virtq_set_vector(&vq, 1) == 1, "queue MSI-X vector does not read back");
	read_sectors(1, 1);
	RT_EXPECT(rt_wait_count(&msix_irqs, 1, 1000000), "no MSI-X interrupt for a read");
	read_sectors(1, 1);
	RT_EXPECT(rt_wait_count(&msix_irqs, 2, 1000000), "no MSI-X interrupt for a second read");
	/* A masked entry holds the interrupt until unmasked. */
	rt_virtio_msix_mask(&dev, 1, true);
	read_sectors(1, 1);
	rt_delay_us(10000);
	RT_EXPECT(msix_irqs == 2, "a masked MSI-X entry interrupted");
	rt_virtio_msix_mask(&dev, 1, false);
	RT_EXPECT(rt_wait_count(&msix_irqs, 3, 1000000), "the pending MSI-X did not come on unmask");
	RT_EXPECT(intx_irqs == 0, "INTx with MSI-X enabled");
	RT_GROUP_OK("blk-msix");

	RT_EXPECT(rt_virtio_msix_enable(&dev, false), "cannot disable MSI-X");
	rt_ioapic_route(dev.irq_line, VEC_INTX, 0, RT_RTE_LEVEL | RT_RTE_ACTIVE_LOW);
	for (uint32_t i = 1; i <= 2; i++) {
		read_sectors(1, 1);
		RT_EXPECT(rt_wait_count(&intx_irqs, i, 1000000), "INTx: %u interrupts for %u reads",
		          intx_irqs, i);
		RT_EXPECT(last_isr & 1, "INTx: ISR %x lacks the queue bit", last_isr);
	}
	/* Once every interrupt raised so far has reached the handler (an
	 * interrupt may still be on its way when the used ring shows the
	 * completion), ISR reads 0: the handler's read cleared it. */
	rt_delay_us(10000);
	RT_EXPECT(rt_virtio_isr(&dev) == 0, "ISR %x not cleared by the handler's read",
	          rt_virtio_isr(&dev));
	RT_EXPECT(msix_irqs == 3, "MSI-X after disabling it");
	rt_ioapic_mask(dev.irq_line, true);
	RT_GROUP_OK("blk-intx");

	/* Reset, then initialize and use the device again from scratch. */
	rt_virtio_reset(&dev);
	RT_EXPECT(rt_virtio_status(&dev) == 0, "status %x after reset", rt_virtio_status(&dev));
	RT_EXPECT(rt_virtio_init(&dev, want) == 0, "second initialization refused");
	RT_EXPECT(rt_virtq_setup(&dev, &vq, 0, 8, qmem) == 0, "queue 0 after reset");
	rt_virtio_driver_ok(&dev);
	read_sectors(sectors - 2, 1);
	RT_EXPECT(sector_is(buf, "disk sector ", sectors - 2), "read after reset is wrong");
	rt_virtio_reset(&dev);
	RT_GROUP_OK("blk-reset");
	rt_pass();
}
