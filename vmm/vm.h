/* vm.h: the VMM's machine: guest RAM, buses, interrupt wiring and the run
 * state every device and loader shares. Only vmm/ includes it. */
#ifndef ZHV_VMM_VM_H
#define ZHV_VMM_VM_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "snapshot.h"
#include "zhv.h"

struct vcpus;
struct acpi_pm;

/* Guest-physical layout (a PC). RAM is [0, min(mem, 3 GiB)) plus
 * [4 GiB, ...) for the rest; the hole holds the MMIO windows below. */
#define VM_LOW_RAM_MAX 0xC0000000ull   /* 3 GiB */
#define VM_HIGH_RAM_BASE 0x100000000ull /* 4 GiB */
#define VM_PCI_MMIO_BASE 0xC0000000ull  /* BARs of PCI devices */
#define VM_PCI_MMIO_SIZE 0x10000000ull
#define VM_PCI_IO_BASE 0xC000u          /* I/O BARs of PCI devices (ports) */
#define VM_PCI_IO_SIZE 0x1000u
#define VM_IOAPIC_BASE 0xFEC00000ull
#define VM_LAPIC_BASE 0xFEE00000ull     /* KVM's, not trapped */
#define VM_IOAPIC_PINS 24

/* How a run ends (vm_request_exit). */
enum vm_exit_kind {
	VM_EXIT_NONE = 0,
	VM_EXIT_POWEROFF, /* ACPI S5, i8042 reset, guest reboot: status 0 */
	VM_EXIT_DEBUG,    /* port 0xf4: status (value << 1) | 1 */
	VM_EXIT_ERROR,    /* guest crash, host error: an even status (exit_status.h) */
};

/* Where the BSP resumes from ACPI S3 (dev/acpi.c reads it from the FACS;
 * vcpu_thread.c puts the vCPUs there). */
enum vm_wake_mode {
	VM_WAKE_REAL,  /* real mode at CS:IP = addr >> 4 : addr & 0xF */
	VM_WAKE_PM32,  /* 32-bit protected mode, flat, paging off, EIP = addr */
};
struct vm_wake_target {
	enum vm_wake_mode mode;
	uint32_t addr;
};

/* One device's destroy path (vm_add_teardown). */
struct vm_teardown {
	void (*fn)(void *opaque);
	void *opaque;
};

/* At most one entry per device: 3 controllers, 4 UARTs, 6 legacy devices,
 * 31 PCI functions, 2 table devices, with room to spare. */
#define VM_MAX_TEARDOWNS 64

struct vm {
	zhv_guest_t *guest;
	uint8_t *ram;         /* host mapping of all RAM (low part first) */
	uint64_t ram_size;    /* bytes of RAM in all */
	uint64_t low_ram;     /* bytes at GPA 0 */
	uint32_t ncpus;
	struct bus io_bus;    /* keys [0x10000, ...) */
	struct bus mmio_bus;  /* keys [0x20000, ...) */
	struct ioapic *ioapic;
	struct pic *pic;
	struct pci_host *pci; /* dev/pci.c: bus 0 (set by pci_init) */
	bool debug_io;        /* log unclaimed port I/O and MMIO */
	/* Set before devices are created by a harness that drives them
	 * directly (fuzz/): virtio devices start no thread and set no
	 * doorbell trap, disks do their I/O synchronously; the harness serves
	 * the queues with virtio_pci_serve_pending. */
	bool no_device_threads;

	pthread_mutex_t irq_lock;
	uint32_t irq_sources[VM_IOAPIC_PINS]; /* bit s: source s drives the pin high */

	pthread_mutex_t exit_lock;
	atomic_int exit_kind; /* enum vm_exit_kind */
	int exit_status;
	void (*on_exit)(struct vm *vm); /* kicks every vCPU (set by the VMM) */

	/* ACPI S3 (vm_sleep, vm_wake, vm_sleep_park): sleep_lock guards
	 * everything here; sleep_cond wakes parked vCPU threads. */
	pthread_mutex_t sleep_lock;
	pthread_cond_t sleep_cond;
	atomic_uint sleep_gen;   /* +1 at each S3 entry */
	bool asleep;             /* between vm_sleep and vm_wake */
	unsigned sleep_resumed;  /* vCPUs put back in place for this wake */
	struct vm_wake_target wake;
	void (*kick_vcpus)(struct vm *vm); /* set by vcpu_thread.c */
	struct vcpus *vcpus;
	/* dev/acpi.c's fixed hardware while it exists: the RTC's alarm line
	 * reaches it through acpi_rtc_alarm() under pm_lock. */
	pthread_mutex_t pm_lock;
	struct acpi_pm *acpi;

	/* Device threads and snapshots (vm_devices_quiesce): dev_lock guards
	 * dev_quiesced and dev_busy (device work running or I/O in flight). */
	pthread_mutex_t dev_lock;
	pthread_cond_t dev_cond;
	bool dev_quiesced;
	unsigned dev_busy;

	/* Destroy paths of the devices created so far, in creation order
	 * (vm_add_teardown); vm_destroy runs them last to first. */
	struct vm_teardown teardowns[VM_MAX_TEARDOWNS];
	unsigned nteardowns;

	/* Device state sections of a snapshot (vm_add_snapshot, snapshot.h),
	 * in creation order. */
	struct snap_section snapshots[VM_MAX_TEARDOWNS];
	unsigned nsnapshots;
};

/* vm_gpa: host pointer to guest-physical [gpa, gpa + len) if it is RAM,
 * else NULL (the one checked accessor for devices and loaders). */
void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len);

/* vm_irq_set: drive IOAPIC/PIC input (gsi) to (level) (0 or 1). An edge
 * (0 -> 1) delivers the interrupt the IOAPIC entry describes. Any thread. */
void vm_irq_set(struct vm *vm, unsigned gsi, int level);
/* vm_irq_set_shared: drive the input of (source) on a line several devices
 * share (COM1 and COM3 on IRQ 4, PCI slots on one INTx GSI): the line is
 * the wired-OR of its sources, so one device lowering its output does not
 * hide another's. (source) is 1..31 and unique per device on the line;
 * vm_irq_set() is source 0. Any thread. */
void vm_irq_set_shared(struct vm *vm, unsigned gsi, unsigned source, int level);
/* Device threads (virtio's, vmm/dev/virtio_pci.c) against snapshots:
 * vm_device_work_begin before serving guest work (waits while the devices
 * are quiesced) and vm_device_work_end after; vm_device_io_add(n) counts
 * (n) requests put in flight (n < 0: completed) by work begun. Each device
 * finishes its requests in flight on its own. vm_devices_quiesce waits
 * until no device work runs and nothing is in flight, and holds new work
 * back until vm_devices_resume: a snapshot then sees devices and guest
 * memory at rest. Any thread but a device's. */
void vm_device_work_begin(struct vm *vm);
void vm_device_work_end(struct vm *vm);
void vm_device_io_add(struct vm *vm, int n);
void vm_devices_quiesce(struct vm *vm);
void vm_devices_resume(struct vm *vm);
/* vm_irq_pulse: raise then lower (gsi): an edge-triggered event. */
void vm_irq_pulse(struct vm *vm, unsigned gsi);

/* vm_request_exit: end the run (first request wins) with (kind) and
 * (status) as zhv's exit status. Any thread. */
void vm_request_exit(struct vm *vm, enum vm_exit_kind kind, int status);

/* vm_sleep: the machine enters S3: every vCPU leaves the guest and parks
 * (vm_sleep_park) until vm_wake or the end of the run. Guest RAM stays.
 * Any thread. Returns false (and does nothing) if it sleeps already. */
bool vm_sleep(struct vm *vm);
/* vm_wake: leave S3: the vCPU threads put their vCPUs in their reset
 * state, the BSP at (target). Any thread; no-op when awake. */
void vm_wake(struct vm *vm, const struct vm_wake_target *target);
/* vm_sleep_park: on a vCPU thread whose last seen generation (*gen)
 * differs from vm->sleep_gen: wait until the machine wakes (true, with the
 * target in *target; the thread then resets its vCPU and calls
 * vm_sleep_resumed) or the run ends (false). */
bool vm_sleep_park(struct vm *vm, unsigned *gen, struct vm_wake_target *target);
/* vm_sleep_resumed: this vCPU is in its wake state. With (bsp), also wait
 * until every vCPU is (so that the BSP's first INIT/SIPI finds the APs
 * waiting for it). */
void vm_sleep_resumed(struct vm *vm, bool bsp);

/* vm_add_teardown: have vm_destroy call (fn)(opaque), before the teardowns
 * of devices created earlier (so that a device with a thread is stopped
 * before the interrupt controllers it signals go) and after those created
 * later. A device registers it as the last step of its creation, once
 * nothing can fail any more; if this fails the device destroys itself and
 * fails. Returns 0, or -ENOSPC when the table is full. Set-up thread only.
 * (Inline: device models and their unit tests need no vm.c for it.) */
static inline int vm_add_teardown(struct vm *vm, void (*fn)(void *opaque), void *opaque)
{
	if (!vm || !fn)
		return -EINVAL;
	if (vm->nteardowns >= VM_MAX_TEARDOWNS)
		return -ENOSPC;
	vm->teardowns[vm->nteardowns++] = (struct vm_teardown){fn, opaque};
	return 0;
}

/* vm_add_snapshot: register a device's state section (snapshot.h): name
 * (unique in the machine, at most 31 bytes), the version of its layout,
 * and its save and load calls on (opaque). A device registers it at its
 * creation, next to vm_add_teardown. Returns 0, -EINVAL (bad arguments, a
 * name taken) or -ENOSPC. Set-up thread only. */
static inline int vm_add_snapshot(struct vm *vm, const char *name, uint32_t version,
                                  int (*save)(void *opaque, struct snap_writer *w),
                                  int (*load)(void *opaque, struct snap_reader *r),
                                  void *opaque)
{
	if (!vm || !name || !save || !load || strlen(name) >= sizeof(vm->snapshots[0].name))
		return -EINVAL;
	for (unsigned i = 0; i < vm->nsnapshots; i++)
		if (!strcmp(vm->snapshots[i].name, name))
			return -EINVAL;
	if (vm->nsnapshots >= VM_MAX_TEARDOWNS)
		return -ENOSPC;
	struct snap_section *s = &vm->snapshots[vm->nsnapshots++];
	memset(s, 0, sizeof(*s));
	memcpy(s->name, name, strlen(name) + 1);
	s->version = version;
	s->save = save;
	s->load = load;
	s->opaque = opaque;
	return 0;
}

/* vm_destroy: the inverse of the machine's creation (board_create): run
 * every teardown, last first (device threads stopped and joined, files
 * closed, memory freed), destroy the libzhv guest, unmap guest RAM and
 * release the locks. Every vCPU must be stopped and destroyed first
 * (vcpus_stop), and nothing may use (vm) afterwards. Safe on a machine
 * whose creation failed part-way; (vm) is left zeroed. */
void vm_destroy(struct vm *vm);

/* vm_log_unclaimed: note an access nobody claimed (only with --debug-io). */
void vm_log_unclaimed(struct vm *vm, const char *space, uint64_t addr, bool write,
                      unsigned size);

#endif /* ZHV_VMM_VM_H */
