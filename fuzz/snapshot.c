/* snapshot.c: libFuzzer target of the devices' snapshot sections
 * (vmm/snapshot.h): every device of vmm/dev/ with state on one machine,
 * created once; of the virtio devices the entropy device (the transport
 * alone) and the console (the transport and its input buffer): the block
 * device's own part is a path and a size, and a TAP is never saved. The input is byte 0, which section (modulo their count), then the
 * section's bytes, given to its load. A refused section must leave the
 * device as it was (its save unchanged, but for the sections that hold
 * running times); an accepted one must save again, and what it saves must
 * load again. */
#include "fuzz.h"

#include "../vmm/dev/outq.c"
#include "../vmm/dev/uart16550.c"
#include "../vmm/dev/pic.c"
#include "../vmm/dev/ioapic.c"
#include "../vmm/dev/pit.c"
#include "../vmm/dev/rtc.c"
#include "../vmm/dev/i8042.c"
#include "../vmm/dev/fw_cfg.c"
#include "../vmm/dev/pc_testdev.c"
#include "../vmm/dev/pci.c"
#include "../vmm/dev/pci_testdev.c"
#include "../vmm/dev/acpi.c"
/* pci.c's names for these config-space offsets, virtio_pci.c's too. */
#undef PCI_SUBSYS_VENDOR
#undef PCI_SUBSYS_ID
#undef PCI_INTERRUPT_PIN
#include "../vmm/dev/virtqueue.c"
#include "../vmm/dev/virtio_pci.c"
#include "virtio_stubs.h"
#include "../vmm/dev/virtio_rng.c"
#include "../vmm/dev/virtio_console.c"

/* ---- the machine's services, as far as the devices need them ------------ */

#define SNAP_RAM (2u << 20) /* room for the ACPI tables */
static uint8_t snap_ram[SNAP_RAM];

void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	(void)vm;
	if (gpa > SNAP_RAM || len > SNAP_RAM - gpa)
		return NULL;
	return snap_ram + gpa;
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

void vm_irq_set_shared(struct vm *vm, unsigned gsi, unsigned source, int level)
{
	(void)vm, (void)gsi, (void)source, (void)level;
}

void vm_irq_set(struct vm *vm, unsigned gsi, int level)
{
	(void)vm, (void)gsi, (void)level;
}

void vm_irq_pulse(struct vm *vm, unsigned gsi)
{
	(void)vm, (void)gsi;
}

void vm_request_exit(struct vm *vm, enum vm_exit_kind kind, int status)
{
	(void)vm, (void)kind, (void)status;
}

void vm_log_unclaimed(struct vm *vm, const char *space, uint64_t addr, bool write,
                      unsigned size)
{
	(void)vm, (void)space, (void)addr, (void)write, (void)size;
}

bool vm_sleep(struct vm *vm)
{
	(void)vm;
	return true;
}

void vm_wake(struct vm *vm, const struct vm_wake_target *target)
{
	(void)vm, (void)target;
}

zhv_status_t zhv_guest_signal_msi(zhv_guest_t *guest, uint64_t address, uint32_t data)
{
	(void)guest, (void)address, (void)data;
	return ZHV_OK;
}

zhv_status_t zhv_guest_set_irq_route(zhv_guest_t *guest, uint32_t pin, uint64_t msi_address,
                                     uint32_t msi_data, bool enabled)
{
	(void)guest, (void)pin, (void)msi_address, (void)msi_data, (void)enabled;
	return ZHV_OK;
}

/* ---- the target ----------------------------------------------------------- */

static struct vm snap_vm;

static void snap_machine(void)
{
	struct vm *vm = &snap_vm;

	vm->no_device_threads = true;
	vm->io_bus.kind = ZHV_TRAP_IO;
	vm->mmio_bus.kind = ZHV_TRAP_MEM;
	vm->ncpus = 2;
	vm->ram = snap_ram;
	vm->ram_size = vm->low_ram = SNAP_RAM;
	pthread_mutex_init(&vm->irq_lock, NULL);
	pthread_mutex_init(&vm->pm_lock, NULL);
	if (ioapic_create(vm) || pic_create(vm) || pit_create(vm) || rtc_create(vm) ||
	    i8042_create(vm) || fw_cfg_create(vm) || pc_testdev_create(vm) || pci_init(vm) ||
	    pci_testdev_create(vm) || acpi_create(vm))
		abort();
	for (unsigned i = 0; i < 4; i++)
		if (!uart16550_create(vm, i, NULL))
			abort();
	if (virtio_rng_create(vm) || virtio_console_create(vm, NULL))
		abort();
}

/* Sections whose save holds a time that runs on (a remainder or a count). */
static bool snap_timed(const char *name)
{
	return !strcmp(name, "pit") || !strcmp(name, "rtc") || !strcmp(name, "acpi");
}

static void snap_save_ok(struct snap_section *s, struct snap_writer *w)
{
	*w = (struct snap_writer){ 0 };
	FUZZ_CHECK(s->save(s->opaque, w) == 0 && w->err == 0);
}

static int snap_load_copy(struct snap_section *s, const uint8_t *p, size_t n)
{
	/* An exact copy: AddressSanitizer sees any read past the end. */
	uint8_t *copy = malloc(n ? n : 1);

	if (!copy)
		abort();
	if (n)
		memcpy(copy, p, n);
	struct snap_reader r = { .p = copy, .len = n };
	int ret = s->load(s->opaque, &r);
	free(copy);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!snap_vm.nsnapshots)
		snap_machine();
	if (!size)
		return 0;
	struct snap_section *s = &snap_vm.snapshots[data[0] % snap_vm.nsnapshots];
	struct snap_writer before, after;

	snap_save_ok(s, &before);
	int ret = snap_load_copy(s, data + 1, size - 1);
	FUZZ_CHECK(ret == 0 || ret == -EINVAL);
	if (fuzz_verbose())
		fprintf(stderr, "%s: %zu bytes: %d\n", s->name, size - 1, ret);
	snap_save_ok(s, &after);
	if (ret < 0 && !snap_timed(s->name))
		FUZZ_CHECK(after.len == before.len && !memcmp(after.buf, before.buf, after.len));
	if (ret == 0) {
		FUZZ_CHECK(snap_load_copy(s, after.buf, after.len) == 0);
		if (!snap_timed(s->name)) {
			struct snap_writer again;

			snap_save_ok(s, &again);
			FUZZ_CHECK(again.len == after.len && !memcmp(again.buf, after.buf, after.len));
			snap_writer_free(&again);
		}
	}
	snap_writer_free(&before);
	snap_writer_free(&after);
	return 0;
}
