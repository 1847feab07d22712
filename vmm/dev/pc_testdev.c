/* pc_testdev.c: QEMU's pc-testdev (hw/misc/pc-testdev.c), the x86 test
 * device kvm-unit-tests style kernels use. Opt-in (--test-device
 * pc-testdev); without it none of these ranges is claimed.
 *
 *   port 0xe0-0xe3   a 32-bit scratch register: an access of any width at
 *                    0xe0 + n reads/writes its bytes n.. (little-endian
 *                    byte lanes), so "rep outsb" then "inb" reads back the
 *                    last byte written (kvm-unit-tests' emulator test)
 *   port 0xe4-0xe7   flush page: a 4-byte write of a guest-physical
 *                    address. QEMU mprotect()s the host page behind it to
 *                    PROT_NONE and back, which makes KVM drop and re-fault
 *                    its mapping of that page; nothing the guest can see
 *                    changes (the page keeps its contents and stays
 *                    readable and writable). zhv accepts the write and does
 *                    nothing: every later guest access sees exactly what it
 *                    would have seen after the round trip, so this is
 *                    correct for a guest; only the host-side re-fault that
 *                    QEMU provokes is not reproduced. Other widths are
 *                    ignored, as QEMU's valid sizes (4 only) say.
 *   port 0xe8-0xeb   the same register as 0xe0, which QEMU implements one
 *                    byte at a time (the result is the same)
 *   port 0x2000+n    IRQ line n (n = 0..23, one byte wide): writing V sets
 *                    ISA interrupt line n to (V != 0). zhv routes ISA lines
 *                    through the I/O APIC (line 0 to pin 2, as the PIT's;
 *                    zhv's 8259 pair delivers nothing), on a source of its
 *                    own, wired-OR with other devices on the line. Lines
 *                    16-23 are not ISA lines: QEMU aborts on them, zhv
 *                    ignores the write. Wider writes are ignored (QEMU's
 *                    valid size is 1).
 *   MMIO 0xff000000  64 KiB of plain storage (IOMEM_LEN 0x10000): reads
 *                    return what was written, at any width and offset.
 *
 * Reads of the write-only ports (flush page, IRQ lines) return all-ones,
 * as an undecoded ISA port. Accesses that run past the end of a register
 * or window keep the bytes inside it (the rest read all-ones, are
 * dropped on write). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../devices.h"
#include "../vm.h"

/* clang-format off */
#define TESTDEV_IOPORT      0xE0u
#define TESTDEV_FLUSH       0xE4u
#define TESTDEV_IOPORT_BYTE 0xE8u
#define TESTDEV_REG_LEN     4u
#define TESTDEV_IRQ_BASE    0x2000u
#define TESTDEV_IRQ_LINES   24u      /* QEMU's region; ISA lines are 0-15 */
#define TESTDEV_ISA_IRQS    16u
#define TESTDEV_IOMEM_BASE  0xFF000000ull
#define TESTDEV_IOMEM_LEN   0x10000u
/* Our input on a shared ISA line (vm_irq_set_shared): the UARTs use 1-4,
 * PCI INTx sources are on GSIs 16-23 only. */
#define TESTDEV_IRQ_SOURCE  30u
/* clang-format on */

struct pc_testdev {
	struct vm *vm;
	pthread_mutex_t lock; /* ioport, iomem, lines */
	uint8_t ioport[TESTDEV_REG_LEN]; /* the 0xe0/0xe8 register, little-endian */
	uint32_t lines;                  /* bit n: line n driven high by us */
	uint8_t iomem[TESTDEV_IOMEM_LEN];
};

/* Copy bytes of the access that fall inside a (len)-byte store. */
static void store_access(uint8_t *store, uint64_t len, uint64_t offset, bool write,
                         uint8_t *data, unsigned size)
{
	for (unsigned i = 0; i < size; i++) {
		bool inside = offset < len && i < len - offset;
		if (write) {
			if (inside)
				store[offset + i] = data[i];
		} else {
			data[i] = inside ? store[offset + i] : 0xFF;
		}
	}
}

static void ioport_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                          unsigned size)
{
	struct pc_testdev *t = opaque;
	pthread_mutex_lock(&t->lock);
	store_access(t->ioport, TESTDEV_REG_LEN, offset, write, data, size);
	pthread_mutex_unlock(&t->lock);
}

static void flush_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                         unsigned size)
{
	(void)opaque, (void)offset;
	/* A write (of 4 bytes at 0xe4) needs nothing: see the top of the file. */
	if (!write)
		memset(data, 0xFF, size);
}

static void irq_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                       unsigned size)
{
	struct pc_testdev *t = opaque;
	if (!write) {
		memset(data, 0xFF, size);
		return;
	}
	if (size != 1 || offset >= TESTDEV_ISA_IRQS)
		return;
	unsigned line = (unsigned)offset;
	int level = data[0] != 0;
	/* The lock orders our view with the controller's: two vCPUs moving
	 * one line reach the IOAPIC in the order they changed (lines). */
	pthread_mutex_lock(&t->lock);
	t->lines = level ? (t->lines | 1u << line) : (t->lines & ~(1u << line));
	vm_irq_set_shared(t->vm, line, TESTDEV_IRQ_SOURCE, level);
	pthread_mutex_unlock(&t->lock);
}

static void iomem_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                         unsigned size)
{
	struct pc_testdev *t = opaque;
	pthread_mutex_lock(&t->lock);
	store_access(t->iomem, TESTDEV_IOMEM_LEN, offset, write, data, size);
	pthread_mutex_unlock(&t->lock);
}

/* ---- snapshot (snapshot.h): section "pc-testdev", version 1 --------------
 * The scratch register (4 bytes), the lines we drive high (u32, ISA lines
 * 0-15 only; the lines themselves are restored with the IOAPIC's section),
 * and the 64 KiB of iomem. */

static int pc_testdev_snap_save(void *opaque, struct snap_writer *w)
{
	struct pc_testdev *t = opaque;
	pthread_mutex_lock(&t->lock);
	snap_put(w, t->ioport, sizeof(t->ioport));
	snap_put_u32(w, t->lines);
	snap_put(w, t->iomem, sizeof(t->iomem));
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static int pc_testdev_snap_load(void *opaque, struct snap_reader *r)
{
	struct pc_testdev *t = opaque;
	uint8_t ioport[TESTDEV_REG_LEN];
	snap_get(r, ioport, sizeof(ioport));
	uint32_t lines = snap_get_u32(r);
	if (lines >> TESTDEV_ISA_IRQS)
		snap_bad(r);
	if (r->err)
		return snap_reader_end(r);
	/* The last field is the large one: check the length before taking it. */
	if (r->len - r->off != TESTDEV_IOMEM_LEN)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	memcpy(t->ioport, ioport, sizeof(ioport));
	t->lines = lines;
	snap_get(r, t->iomem, sizeof(t->iomem));
	pthread_mutex_unlock(&t->lock);
	return snap_reader_end(r);
}

static void pc_testdev_destroy(void *opaque)
{
	struct pc_testdev *t = opaque;
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int pc_testdev_create(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	struct pc_testdev *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->vm = vm;
	pthread_mutex_init(&t->lock, NULL);
	int ret = vm_add_teardown(vm, pc_testdev_destroy, t);
	if (ret < 0) {
		pc_testdev_destroy(t);
		return ret;
	}
	/* From here the machine owns (t); a failure below leaves it to
	 * vm_destroy. */
	struct {
		struct bus *bus;
		uint64_t base, len;
		bus_access_fn fn;
		const char *name;
	} ranges[] = {
		{&vm->io_bus, TESTDEV_IOPORT, TESTDEV_REG_LEN, ioport_access, "pc-testdev-ioport"},
		{&vm->io_bus, TESTDEV_FLUSH, TESTDEV_REG_LEN, flush_access, "pc-testdev-flush-page"},
		{&vm->io_bus, TESTDEV_IOPORT_BYTE, TESTDEV_REG_LEN, ioport_access,
		 "pc-testdev-ioport-byte"},
		{&vm->io_bus, TESTDEV_IRQ_BASE, TESTDEV_IRQ_LINES, irq_access, "pc-testdev-irq-line"},
		{&vm->mmio_bus, TESTDEV_IOMEM_BASE, TESTDEV_IOMEM_LEN, iomem_access,
		 "pc-testdev-iomem"},
	};
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]) && ret == 0; i++)
		ret = bus_register(ranges[i].bus, vm->guest, ranges[i].base, ranges[i].len,
		                   ranges[i].fn, t, ranges[i].name);
	if (ret == 0)
		ret = vm_add_snapshot(vm, "pc-testdev", 1, pc_testdev_snap_save,
		                      pc_testdev_snap_load, t);
	return ret;
}
