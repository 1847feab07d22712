/* pci.c: libFuzzer target of PCI bus 0 (vmm/dev/pci.c): configuration
 * mechanism #1 on ports 0xcf8-0xcff, the reset control register, BAR
 * sizing and moves, and the MMIO and port windows routing to the BARs of
 * two virtio devices (an entropy device and a console, vmm/dev/virtio_*.c)
 * and of pci-testdev (vmm/dev/pci_testdev.c: a memory and an I/O BAR). The
 * input is operations of 8 bytes (kind, size, le16 offset, le32 value),
 * kind % 4: 0 port write, 1 port read at 0xcf8 + (offset & 7) (with kind
 * bit 7 set: at the I/O BAR window's port (offset % its size)), 2 MMIO
 * write, 3 MMIO read at window offset (size >> 2) << 16 | offset; 1 <<
 * (size & 3) bytes of (value). Guest RAM is empty: this target is about config space and
 * routing (the virtio targets fuzz the queues). */
#include "fuzz.h"

#include "../vmm/dev/pci.c"
/* The same registers, spelt in lower case by the transport. */
#undef PCI_SUBSYS_VENDOR
#undef PCI_SUBSYS_ID
#undef PCI_INTERRUPT_PIN
#include "../vmm/dev/virtqueue.c"
#include "../vmm/dev/virtio_pci.c"
#include "virtio_stubs.h"
#include "../vmm/dev/virtio_rng.c"
#include "../vmm/dev/outq.c"
#include "../vmm/dev/virtio_console.c"
#include "../vmm/dev/pci_testdev.c"

static struct vm fuzz_vm;

void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	(void)vm, (void)gpa, (void)len;
	return NULL;
}

void vm_irq_set_shared(struct vm *vm, unsigned gsi, unsigned source, int level)
{
	(void)vm, (void)source, (void)level;
	FUZZ_CHECK(gsi >= 16 && gsi < 24);
}

zhv_status_t zhv_guest_signal_msi(zhv_guest_t *guest, uint64_t address, uint32_t data)
{
	(void)guest, (void)address, (void)data;
	return ZHV_OK;
}

int bus_register(struct bus *bus, zhv_guest_t *guest, uint64_t base, uint64_t len,
                 bus_access_fn fn, void *opaque, const char *name)
{
	(void)guest;
	if (bus->count >= BUS_MAX_RANGES)
		return -ENOSPC;
	bus->ranges[bus->count++] = (struct bus_range){ base, len, fn, opaque, name };
	return 0;
}

void vm_request_exit(struct vm *vm, enum vm_exit_kind kind, int status)
{
	(void)vm, (void)status;
	FUZZ_CHECK(kind == VM_EXIT_POWEROFF);
}

void vm_log_unclaimed(struct vm *vm, const char *space, uint64_t addr, bool write,
                      unsigned size)
{
	(void)vm, (void)space, (void)addr, (void)write, (void)size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_reader r = { data, size };
	static FILE *null_out;

	static char sink[1 << 16];
	/* A memory stream: console output needs no writer thread per input. */
	if (!null_out)
		null_out = fmemopen(sink, sizeof(sink), "w");
	else
		rewind(null_out);
	memset(&fuzz_vm, 0, sizeof(fuzz_vm));
	fuzz_vm.no_device_threads = true;
	fuzz_vm.io_bus.kind = ZHV_TRAP_IO;
	fuzz_vm.mmio_bus.kind = ZHV_TRAP_MEM;
	if (pci_init(&fuzz_vm) < 0 || virtio_rng_create(&fuzz_vm) < 0 ||
	    virtio_console_create(&fuzz_vm, null_out) < 0 || pci_testdev_create(&fuzz_vm) < 0)
		abort(); /* the harness itself is broken */
	struct pci_host *h = fuzz_vm.pci;
	const struct bus_range *conf = &fuzz_vm.io_bus.ranges[0];
	const struct bus_range *pio = &fuzz_vm.io_bus.ranges[1];
	const struct bus_range *mmio = &fuzz_vm.mmio_bus.ranges[0];
	FUZZ_CHECK(h->slots[1] && h->slots[2] && h->slots[3] && pio->base == VM_PCI_IO_BASE);
	for (unsigned s = 1; s <= 2; s++)
		((struct virtio_pci *)h->slots[s]->opaque)->error_logged = true;

	while (r.n) {
		uint8_t kind = fz8(&r), sz = fz8(&r);
		uint16_t off = fz16(&r);
		uint32_t v = fz32(&r);
		unsigned width = 1u << (sz & 3);
		uint8_t buf[8];

		for (unsigned i = 0; i < 8; i++)
			buf[i] = (uint8_t)(v >> (8 * (i % 4)));
		switch (kind % 4) {
		case 0:
		case 1:
			/* Port I/O is at most 4 bytes; an access may run past
			 * the range's end (the bus passes the vCPU's on). */
			if (width > 4)
				width = 4;
			if (kind & 0x80)
				pio->fn(pio->opaque, off % pio->len, (kind % 4) == 0, buf, width);
			else
				conf->fn(conf->opaque, off & 7u, (kind % 4) == 0, buf, width);
			break;
		default:
			mmio->fn(mmio->opaque, (uint64_t)(sz >> 2) << 16 | off, (kind % 4) == 2, buf, width);
			break;
		}
	}
	/* The devices' and the host's own destroy paths, as vm_destroy runs them. */
	while (fuzz_vm.nteardowns) {
		struct vm_teardown *t = &fuzz_vm.teardowns[--fuzz_vm.nteardowns];
		t->fn(t->opaque);
	}
	return 0;
}
