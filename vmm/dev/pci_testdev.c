/* pci_testdev.c: QEMU's pci-testdev (hw/misc/pci-testdev.c), the PCI
 * function kvm-unit-tests' pci_testdev() (lib/pci-testdev.c) and vmexit
 * tests look for. Opt-in (--test-device pci-testdev).
 *
 * Config space: vendor 0x1b36 (Red Hat), device 0x0005, revision 0, class
 * 0xff0000 (unassigned class), subsystem 0x1af4:0x1100 (QEMU's default),
 * no interrupt pin. BAR0: 4 KiB of memory, BAR1: 256 I/O ports.
 *
 * Six tests, three per BAR (i = 0-2 through BAR0 "mmio", 3-5 through BAR1
 * "portio"), each described by a header the guest reads through either
 * BAR, byte by byte:
 *     0  u8  test     its number i
 *     1  u8  width    1: the access width of the test
 *     4  u32 offset   where to write: 2048 + i (mmio), 128 + i (portio)
 *     8  u8  data     the value to write: 0xfa, or 0xce for wildcard tests
 *    12  u32 count    writes counted since the test was selected
 *    16  char name[]  "mmio-no-eventfd", "mmio-wildcard-eventfd",
 *                     "mmio-datamatch-eventfd", "portio-..."
 * Writing n to byte 0 of a BAR selects test (BAR0: n, BAR1: 3 + n) and
 * zeroes its count; n >= 3 selects none (the header then reads 0). While a
 * test is selected, a byte written at its offset through its BAR counts one
 * hit: any value for the wildcard tests, only (data) for the others. As in
 * QEMU, which implements the BARs one byte at a time, wider accesses act
 * as their bytes in order.
 *
 * In QEMU the "eventfd" tests are KVM ioeventfds that never reach the
 * device, so their count stays 0; zhv has no such fast path here and
 * counts every matching write. kvm-unit-tests accepts both (a count of 0,
 * or one hit per write). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../devices.h"
#include "../vm.h"
#include "pci.h"

/* clang-format off */
#define PT_VENDOR          0x1B36u /* PCI_VENDOR_ID_REDHAT */
#define PT_DEVICE          0x0005u /* PCI_DEVICE_ID_REDHAT_TEST */
#define PT_SUBSYS_VENDOR   0x1AF4u /* QEMU's default subsystem */
#define PT_SUBSYS_ID       0x1100u
#define PT_CLASS_OTHERS    0xFFu   /* base class 0xff, subclass 0, prog-if 0 */
#define PT_MEMSIZE         2048u   /* IOTEST_MEMSIZE: BAR0 is twice this */
#define PT_IOSIZE          128u    /* IOTEST_IOSIZE: BAR1 is twice this */
#define PT_TESTS_PER_BAR   3u
#define PT_TESTS           6u
#define PT_DATAMATCH       0xFAu
#define PT_NOMATCH         0xCEu
#define PT_HDR_TEST        0u
#define PT_HDR_WIDTH       1u
#define PT_HDR_OFFSET      4u
#define PT_HDR_DATA        8u
#define PT_HDR_COUNT       12u
#define PT_HDR_NAME        16u
#define PT_NAME_MAX        24u     /* "portio-datamatch-eventfd" is 24 */
/* clang-format on */

struct pt_test {
	uint8_t hdr[PT_HDR_NAME + PT_NAME_MAX + 1];
	unsigned bufsize; /* header + name + NUL */
	uint32_t offset;  /* where a hit is written */
	uint8_t data;
	bool match_data;
};

struct pci_testdev {
	struct pci_device pci; /* first: the bus hands us &pci */
	pthread_mutex_t lock;  /* current, every test's count */
	int current;           /* selected test, or -1 */
	struct pt_test tests[PT_TESTS];
};

static void pt_put32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t pt_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One byte written at (addr) of the BAR of (type) (0 mmio, 1 portio). Lock held. */
static void pt_write_byte(struct pci_testdev *d, unsigned type, uint64_t addr, uint8_t val)
{
	if (addr == PT_HDR_TEST) {
		d->current = -1;
		if (val >= PT_TESTS_PER_BAR)
			return;
		d->current = (int)(type * PT_TESTS_PER_BAR + val);
		pt_put32(&d->tests[d->current].hdr[PT_HDR_COUNT], 0);
		return;
	}
	if (d->current < 0)
		return;
	struct pt_test *t = &d->tests[d->current];
	/* The offset of a test lies in its own BAR only: the other BAR's
	 * offsets (2048+ vs 128+) differ, as in QEMU, where both BARs share
	 * one write path. */
	if (addr != t->offset || (t->match_data && val != t->data))
		return;
	uint8_t *count = &t->hdr[PT_HDR_COUNT];
	pt_put32(count, pt_get32(count) + 1);
}

/* One byte read at (addr): the selected test's header, 0 past it (QEMU
 * returns 0 from the last byte on, the name's NUL). Lock held. */
static uint8_t pt_read_byte(const struct pci_testdev *d, uint64_t addr)
{
	if (d->current < 0)
		return 0;
	const struct pt_test *t = &d->tests[d->current];
	if (addr + 1 >= t->bufsize)
		return 0;
	return t->hdr[addr];
}

static void pt_bar_access(struct pci_device *dev, int bar, uint64_t offset, bool write,
                          uint8_t *data, unsigned size)
{
	struct pci_testdev *d = (struct pci_testdev *)dev;
	unsigned type = bar == 0 ? 0 : 1;
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < size; i++) {
		if (write)
			pt_write_byte(d, type, offset + i, data[i]);
		else
			data[i] = pt_read_byte(d, offset + i);
	}
	pthread_mutex_unlock(&d->lock);
}

static const struct pci_device_ops pt_ops = {
	.bar_access = pt_bar_access,
};

static void pt_init_test(struct pt_test *t, unsigned i)
{
	static const char *const kinds[PT_TESTS_PER_BAR] = {"no-eventfd", "wildcard-eventfd",
	                                                    "datamatch-eventfd"};
	bool mem = i < PT_TESTS_PER_BAR;
	const char *type = mem ? "mmio-" : "portio-";
	const char *kind = kinds[i % PT_TESTS_PER_BAR];
	size_t tl = strlen(type), kl = strlen(kind);
	memset(t, 0, sizeof(*t));
	memcpy(&t->hdr[PT_HDR_NAME], type, tl);
	memcpy(&t->hdr[PT_HDR_NAME + tl], kind, kl + 1);
	t->bufsize = (unsigned)(PT_HDR_NAME + tl + kl + 1);
	t->offset = (mem ? PT_MEMSIZE : PT_IOSIZE) + i;
	t->match_data = i % PT_TESTS_PER_BAR != 1; /* all but wildcard */
	t->data = t->match_data ? PT_DATAMATCH : PT_NOMATCH;
	t->hdr[PT_HDR_TEST] = (uint8_t)i;
	t->hdr[PT_HDR_WIDTH] = 1;
	pt_put32(&t->hdr[PT_HDR_OFFSET], t->offset);
	t->hdr[PT_HDR_DATA] = t->data;
}

/* ---- snapshot (snapshot.h): section "pci-testdev", version 1 -------------
 * The selected test (u8: 0-5, or 0xFF for none) and each of the six
 * tests' hit count (u32). The rest of each test is fixed; config space is
 * the PCI bus's section. */

static int pci_testdev_snap_save(void *opaque, struct snap_writer *w)
{
	struct pci_testdev *d = opaque;
	pthread_mutex_lock(&d->lock);
	snap_put_u8(w, d->current < 0 ? 0xFF : (uint8_t)d->current);
	for (unsigned i = 0; i < PT_TESTS; i++)
		snap_put_u32(w, pt_get32(&d->tests[i].hdr[PT_HDR_COUNT]));
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static int pci_testdev_snap_load(void *opaque, struct snap_reader *r)
{
	struct pci_testdev *d = opaque;
	uint8_t current = snap_get_u8(r);
	uint32_t count[PT_TESTS];
	for (unsigned i = 0; i < PT_TESTS; i++)
		count[i] = snap_get_u32(r);
	if (current >= PT_TESTS && current != 0xFF)
		snap_bad(r);
	int ret = snap_reader_end(r);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&d->lock);
	d->current = current == 0xFF ? -1 : current;
	for (unsigned i = 0; i < PT_TESTS; i++)
		pt_put32(&d->tests[i].hdr[PT_HDR_COUNT], count[i]);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static void pci_testdev_destroy(void *opaque)
{
	struct pci_testdev *d = opaque;
	pthread_mutex_destroy(&d->lock);
	free(d);
}

int pci_testdev_create(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	struct pci_testdev *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->current = -1;
	for (unsigned i = 0; i < PT_TESTS; i++)
		pt_init_test(&d->tests[i], i);
	uint8_t *cfg = d->pci.cfg;
	cfg[0x00] = (uint8_t)PT_VENDOR;
	cfg[0x01] = (uint8_t)(PT_VENDOR >> 8);
	cfg[0x02] = (uint8_t)PT_DEVICE;
	cfg[0x03] = (uint8_t)(PT_DEVICE >> 8);
	cfg[0x0B] = PT_CLASS_OTHERS;
	cfg[0x2C] = (uint8_t)PT_SUBSYS_VENDOR;
	cfg[0x2D] = (uint8_t)(PT_SUBSYS_VENDOR >> 8);
	cfg[0x2E] = (uint8_t)PT_SUBSYS_ID;
	cfg[0x2F] = (uint8_t)(PT_SUBSYS_ID >> 8);
	d->pci.bar_size[0] = 2 * PT_MEMSIZE; /* 32-bit memory */
	d->pci.bar_size[1] = 2 * PT_IOSIZE;
	cfg[0x10 + 4] = 0x01; /* BAR1: I/O space */
	d->pci.ops = &pt_ops;
	d->pci.opaque = d;
	/* The machine owns (d) from here: vm_destroy frees it, also when
	 * pci_add fails (the bus then never refers to it). */
	int ret = vm_add_teardown(vm, pci_testdev_destroy, d);
	if (ret < 0) {
		pci_testdev_destroy(d);
		return ret;
	}
	ret = pci_add(vm, &d->pci);
	if (ret < 0)
		return ret;
	/* No interrupt pin (QEMU's pci-testdev has none), so no line either:
	 * pci_add wires INTA for every function. Nothing runs in the guest
	 * yet, so the host lock is not needed. */
	cfg[0x3C] = 0;
	cfg[0x3D] = 0;
	return vm_add_snapshot(vm, "pci-testdev", 1, pci_testdev_snap_save, pci_testdev_snap_load,
	                       d);
}
