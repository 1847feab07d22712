/* board.c: builds the PC: guest RAM below 3 GiB and above 4 GiB, the
 * devices in dependency order, firmware tables, the unclaimed-port
 * catch-all, then the kernel. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "board.h"
#include "dev/pci.h"
#include "devices.h"

#define IO_KEY_BASE 0x10000u
#define MMIO_KEY_BASE 0x20000u
#define IO_SPACE_END 0xFFFFu /* libzhv IO traps end at or below 0xFFFF */

struct io_gap {
	struct vm *vm;
	uint64_t base;
};

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Devices that take nothing but the machine, in creation order. The
 * interrupt controllers come first (others wire IRQs to them), the PCI
 * host bridge before any PCI device. */
struct board_dev {
	const char *name;
	int (*create)(struct vm *vm);
};

/* clang-format off */
static const struct board_dev early_devices[] = {
	{ "pic",     pic_create },
	{ "ioapic",  ioapic_create },
	{ "pci",     pci_init },
};
static const struct board_dev legacy_devices[] = {
	{ "i8042",        i8042_create },
	{ "pit",          pit_create },
	{ "rtc",          rtc_create },
	{ "fw_cfg",       fw_cfg_create },
	{ "legacy_ports", legacy_ports_create },
};
static const struct board_dev debug_exit_device = { "debug_exit", debug_exit_create };
static const struct board_dev pc_testdev_device = { "pc-testdev", pc_testdev_create };
static const struct board_dev pci_testdev_device = { "pci-testdev", pci_testdev_create };
static const struct board_dev table_devices[] = {
	{ "acpi",    acpi_create },    /* after every device: the MADT/DSDT list them */
	{ "mptable", mptable_create },
};
/* clang-format on */

static int create_all(struct vm *vm, const struct board_dev *devs, size_t n, char *err,
                      size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int ret = devs[i].create(vm);
		if (ret < 0) {
			fail(err, errlen, "%s: %s", devs[i].name, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* ---- guest RAM --------------------------------------------------------- */

static int ram_create(struct vm *vm, uint64_t size, char *err, size_t errlen)
{
	void *ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ram == MAP_FAILED) {
		int e = errno;
		fail(err, errlen, "cannot allocate %" PRIu64 " MiB of guest RAM: %s", size >> 20,
		     strerror(e));
		return -e;
	}
	vm->ram = ram;
	vm->ram_size = size;
	vm->low_ram = size < VM_LOW_RAM_MAX ? size : VM_LOW_RAM_MAX;
	/* [0, low_ram) is RAM throughout, the legacy 0xA0000-0x100000 area
	 * included: the ACPI and MP tables live there and e820 reserves it. */
	zhv_status_t st = zhv_guest_map(vm->guest, 0, vm->ram, vm->low_ram, ZHV_MAP_RWX);
	if (st == ZHV_OK && size > vm->low_ram)
		st = zhv_guest_map(vm->guest, VM_HIGH_RAM_BASE, vm->ram + vm->low_ram,
		                   size - vm->low_ram, ZHV_MAP_RWX);
	if (st != ZHV_OK) {
		fail(err, errlen, "cannot map guest RAM: %s", zhv_status_string(st));
		return -ENOMEM;
	}
	return 0;
}

/* ---- unclaimed ports ----------------------------------------------------- */

/* As on a PC, a port nobody decodes reads all-ones and ignores writes. */
static void io_gap_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                          unsigned size)
{
	struct io_gap *gap = opaque;
	if (!write)
		memset(data, 0xff, size);
	vm_log_unclaimed(gap->vm, "port", gap->base + offset, write, size);
}

static int cmp_range(const void *a, const void *b)
{
	const struct bus_range *x = a, *y = b;
	return x->base < y->base ? -1 : x->base > y->base;
}

/* Trap every port in [0, 0xFFFF) that no device registered, so that no
 * port access ends zhv_vcpu_enter() with NOT_FOUND. (Port 0xFFFF itself
 * cannot be trapped through libzhv, which makes it read all-ones itself.) */
static int fill_io_gaps(struct board *b, char *err, size_t errlen)
{
	struct vm *vm = &b->vm;
	unsigned n = vm->io_bus.count;
	struct bus_range *sorted = malloc(sizeof(*sorted) * (n ? n : 1));
	b->gaps = calloc(n + 1, sizeof(*b->gaps));
	if (!sorted || !b->gaps) {
		free(sorted);
		fail(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(sorted, vm->io_bus.ranges, sizeof(*sorted) * n);
	qsort(sorted, n, sizeof(*sorted), cmp_range);

	int ret = 0;
	uint64_t next = 0;
	for (unsigned i = 0; i <= n && next < IO_SPACE_END; i++) {
		uint64_t end = i < n ? sorted[i].base : IO_SPACE_END;
		if (end > IO_SPACE_END)
			end = IO_SPACE_END;
		if (end > next) {
			struct io_gap *gap = &b->gaps[b->ngaps];
			gap->vm = vm;
			gap->base = next;
			ret = bus_register(&vm->io_bus, vm->guest, next, end - next, io_gap_access, gap,
			                   "unclaimed");
			if (ret < 0) {
				fail(err, errlen, "unclaimed ports %#" PRIx64 "-%#" PRIx64 ": %s", next,
				     end - 1, strerror(-ret));
				break;
			}
			b->ngaps++;
		}
		if (i < n && sorted[i].base + sorted[i].len > next)
			next = sorted[i].base + sorted[i].len;
	}
	free(sorted);
	return ret;
}

/* ---- the board ------------------------------------------------------------- */

static void uart_teardown(void *opaque)
{
	uart16550_destroy(opaque);
}

/* Why a disk image cannot be used, in a user's words. */
static void disk_error(const char *path, int ret, char *err, size_t errlen)
{
	struct stat st;
	const char *kind = "not a regular file";
	if (ret == -EBUSY) {
		fail(err, errlen, "disk %s: the image is in use (locked by another zhv, or given "
		     "twice): a writable disk needs it alone, read-only (,ro) disks may share it",
		     path);
	} else if (ret == -ENOTBLK) {
		if (stat(path, &st) == 0) /* (for the message only) */
			kind = S_ISDIR(st.st_mode)  ? "a directory" :
			       S_ISFIFO(st.st_mode) ? "a FIFO" :
			       S_ISSOCK(st.st_mode) ? "a socket" :
			       S_ISCHR(st.st_mode)  ? "a character device" : kind;
		fail(err, errlen, "disk %s: not a disk image (%s; a disk is a regular file or a "
		     "block device)", path, kind);
	} else {
		fail(err, errlen, "disk %s: %s", path, strerror(-ret));
	}
}

static int devices_create(struct board *b, const struct board_config *cfg, char *err,
                          size_t errlen)
{
	struct vm *vm = &b->vm;
	int ret = create_all(vm, early_devices, sizeof(early_devices) / sizeof(early_devices[0]),
	                     err, errlen);
	if (ret < 0)
		return ret;
	/* COM1 talks to the console; COM2-4 exist (Linux probes them) but
	 * their output goes nowhere. */
	for (unsigned i = 0; i < 4; i++) {
		struct uart *u = uart16550_create(vm, i, i == 0 ? cfg->serial : NULL);
		if (!u) {
			fail(err, errlen, "uart16550 COM%u: cannot create", i + 1);
			return -EIO;
		}
		ret = vm_add_teardown(vm, uart_teardown, u);
		if (ret < 0) {
			uart16550_destroy(u);
			fail(err, errlen, "uart16550 COM%u: %s", i + 1, strerror(-ret));
			return ret;
		}
		if (i == 0)
			b->com1 = u;
	}
	ret = create_all(vm, legacy_devices, sizeof(legacy_devices) / sizeof(legacy_devices[0]),
	                 err, errlen);
	if (ret == 0 && cfg->debug_exit) /* opt-in: else port 0xf4 is unclaimed */
		ret = create_all(vm, &debug_exit_device, 1, err, errlen);
	if (ret == 0 && cfg->pc_testdev) /* opt-in, as QEMU's -device pc-testdev */
		ret = create_all(vm, &pc_testdev_device, 1, err, errlen);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < cfg->ndisks; i++) {
		ret = virtio_blk_create(vm, cfg->disks[i].path, cfg->disks[i].read_only, NULL);
		if (ret < 0) {
			disk_error(cfg->disks[i].path, ret, err, errlen);
			b->load_error = true;
			return ret;
		}
	}
	for (size_t i = 0; i < cfg->nnets; i++) {
		ret = virtio_net_create(vm, cfg->net_taps[i]);
		if (ret < 0) {
			fail(err, errlen, "net tap=%s: %s", cfg->net_taps[i], strerror(-ret));
			return ret;
		}
	}
	ret = virtio_rng_create(vm);
	if (ret < 0) {
		fail(err, errlen, "virtio-rng: %s", strerror(-ret));
		return ret;
	}
	/* Opt-in, after the others: their slots stay where they were. */
	if (cfg->virtio_console && (ret = virtio_console_create(vm, cfg->virtio_console)) < 0) {
		fail(err, errlen, "virtio-console: %s", strerror(-ret));
		return ret;
	}
	/* After the virtio functions, whose slots stay where they were. */
	if (cfg->pci_testdev && (ret = create_all(vm, &pci_testdev_device, 1, err, errlen)) < 0)
		return ret;
	return create_all(vm, table_devices, sizeof(table_devices) / sizeof(table_devices[0]), err,
	                  errlen);
}

int board_create(struct board *b, const struct board_config *cfg, char *err, size_t errlen)
{
	memset(b, 0, sizeof(*b));
	struct vm *vm = &b->vm;
	pthread_mutex_init(&vm->exit_lock, NULL);
	pthread_mutex_init(&vm->irq_lock, NULL);
	pthread_mutex_init(&vm->sleep_lock, NULL);
	pthread_cond_init(&vm->sleep_cond, NULL);
	pthread_mutex_init(&vm->pm_lock, NULL);
	pthread_mutex_init(&vm->dev_lock, NULL);
	pthread_cond_init(&vm->dev_cond, NULL);
	atomic_init(&vm->sleep_gen, 0);
	atomic_init(&vm->exit_kind, VM_EXIT_NONE);
	vm->ncpus = cfg->ncpus;
	vm->debug_io = cfg->debug_io;
	vm->io_bus.kind = ZHV_TRAP_IO;
	vm->io_bus.key_base = IO_KEY_BASE;
	vm->mmio_bus.kind = ZHV_TRAP_MEM;
	vm->mmio_bus.key_base = MMIO_KEY_BASE;

	zhv_guest_config_t gcfg = {.options = 0, .max_vcpus = cfg->ncpus};
	zhv_status_t st = zhv_guest_create(&gcfg, &vm->guest);
	if (st != ZHV_OK) {
		if (st == ZHV_ERR_NOT_SUPPORTED)
			fail(err, errlen, "no usable /dev/kvm (missing, not accessible, or without "
			                  "split irqchip / user-space MSR exits)");
		else
			fail(err, errlen, "cannot create the guest: %s", zhv_status_string(st));
		return -ENODEV;
	}
	int ret = ram_create(vm, cfg->mem_size, err, errlen);
	if (ret == 0)
		ret = devices_create(b, cfg, err, errlen);
	if (ret == 0)
		ret = fill_io_gaps(b, err, errlen);
	if (ret == 0 && !cfg->no_kernel) {
		char why[256] = "";
		ret = loader_load(vm, &cfg->boot, &b->boot, why, sizeof(why));
		if (ret < 0) {
			fail(err, errlen, "%s", why[0] ? why : strerror(-ret));
			b->load_error = true;
		}
	}
	return ret; /* on error the caller calls board_destroy */
}

void board_destroy(struct board *b)
{
	if (!b)
		return;
	/* The unclaimed-port ranges refer to (gaps): the buses go first. */
	vm_destroy(&b->vm);
	free(b->gaps);
	memset(b, 0, sizeof(*b));
}
