/* vm.c: the machine's shared services: the checked guest-memory accessor,
 * interrupt lines into the IOAPIC, the run's end and unclaimed-access log. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "devices.h"
#include "vm.h"

void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	uint64_t end;
	if (!vm->ram || __builtin_add_overflow(gpa, len, &end))
		return NULL;
	/* Low RAM: [0, low_ram) at the start of the host mapping. */
	if (end <= vm->low_ram)
		return vm->ram + gpa;
	/* High RAM: [4 GiB, 4 GiB + ram_size - low_ram) right after it. */
	uint64_t high = vm->ram_size - vm->low_ram;
	if (gpa >= VM_HIGH_RAM_BASE && end - VM_HIGH_RAM_BASE <= high)
		return vm->ram + vm->low_ram + (gpa - VM_HIGH_RAM_BASE);
	return NULL;
}

void vm_irq_set_shared(struct vm *vm, unsigned gsi, unsigned source, int level)
{
	if (!vm->ioapic || gsi >= VM_IOAPIC_PINS || source > 31)
		return;
	/* The lock keeps the IOAPIC's view in the order the sources moved. */
	pthread_mutex_lock(&vm->irq_lock);
	uint32_t *m = &vm->irq_sources[gsi];
	*m = level ? (*m | 1u << source) : (*m & ~(1u << source));
	ioapic_set_irq(vm->ioapic, gsi, *m != 0);
	pthread_mutex_unlock(&vm->irq_lock);
}

void vm_irq_set(struct vm *vm, unsigned gsi, int level)
{
	vm_irq_set_shared(vm, gsi, 0, level);
}

void vm_device_work_begin(struct vm *vm)
{
	pthread_mutex_lock(&vm->dev_lock);
	while (vm->dev_quiesced)
		pthread_cond_wait(&vm->dev_cond, &vm->dev_lock);
	vm->dev_busy++;
	pthread_mutex_unlock(&vm->dev_lock);
}

void vm_device_io_add(struct vm *vm, int n)
{
	pthread_mutex_lock(&vm->dev_lock);
	vm->dev_busy = (unsigned)((int)vm->dev_busy + n);
	if (vm->dev_busy == 0)
		pthread_cond_broadcast(&vm->dev_cond);
	pthread_mutex_unlock(&vm->dev_lock);
}

void vm_device_work_end(struct vm *vm)
{
	vm_device_io_add(vm, -1);
}

void vm_devices_quiesce(struct vm *vm)
{
	pthread_mutex_lock(&vm->dev_lock);
	vm->dev_quiesced = true;
	while (vm->dev_busy)
		pthread_cond_wait(&vm->dev_cond, &vm->dev_lock);
	pthread_mutex_unlock(&vm->dev_lock);
}

void vm_devices_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->dev_lock);
	vm->dev_quiesced = false;
	pthread_cond_broadcast(&vm->dev_cond);
	pthread_mutex_unlock(&vm->dev_lock);
}

void vm_irq_pulse(struct vm *vm, unsigned gsi)
{
	vm_irq_set(vm, gsi, 1);
	vm_irq_set(vm, gsi, 0);
}

void vm_request_exit(struct vm *vm, enum vm_exit_kind kind, int status)
{
	bool first = false;
	pthread_mutex_lock(&vm->exit_lock);
	if (atomic_load(&vm->exit_kind) == VM_EXIT_NONE && kind != VM_EXIT_NONE) {
		/* The status first: a vCPU that sees exit_kind set may stop at
		 * once, and the main thread reads the status after joining. */
		vm->exit_status = status;
		atomic_store(&vm->exit_kind, kind);
		first = true;
	}
	pthread_mutex_unlock(&vm->exit_lock);
	/* Outside the lock: on_exit kicks vCPUs and may take other locks. */
	if (first && vm->on_exit)
		vm->on_exit(vm);
	/* vCPU threads parked in S3 look at exit_kind again. */
	if (first) {
		pthread_mutex_lock(&vm->sleep_lock);
		pthread_cond_broadcast(&vm->sleep_cond);
		pthread_mutex_unlock(&vm->sleep_lock);
	}
}

/* ---- ACPI S3 ---------------------------------------------------------------
 * vm_sleep starts a generation and kicks every vCPU out of the guest; each
 * vCPU thread, seeing the new generation before it enters again, parks on
 * sleep_cond (no vCPU runs, no thread spins). vm_wake publishes where the
 * BSP resumes; every thread resets its vCPU, and the BSP enters the guest
 * only once all have, so that no INIT/SIPI of the resumed guest can reach
 * an AP that is still being reset. */

bool vm_sleep(struct vm *vm)
{
	pthread_mutex_lock(&vm->sleep_lock);
	bool start = !vm->asleep;
	if (start) {
		vm->asleep = true;
		vm->sleep_resumed = 0;
		atomic_fetch_add(&vm->sleep_gen, 1);
	}
	pthread_mutex_unlock(&vm->sleep_lock);
	if (start && vm->kick_vcpus)
		vm->kick_vcpus(vm);
	return start;
}

void vm_wake(struct vm *vm, const struct vm_wake_target *target)
{
	pthread_mutex_lock(&vm->sleep_lock);
	if (vm->asleep) {
		vm->wake = *target;
		vm->asleep = false;
		pthread_cond_broadcast(&vm->sleep_cond);
	}
	pthread_mutex_unlock(&vm->sleep_lock);
}

bool vm_sleep_park(struct vm *vm, unsigned *gen, struct vm_wake_target *target)
{
	pthread_mutex_lock(&vm->sleep_lock);
	while (vm->asleep && atomic_load(&vm->exit_kind) == VM_EXIT_NONE)
		pthread_cond_wait(&vm->sleep_cond, &vm->sleep_lock);
	bool woke = atomic_load(&vm->exit_kind) == VM_EXIT_NONE;
	*gen = atomic_load(&vm->sleep_gen);
	*target = vm->wake;
	pthread_mutex_unlock(&vm->sleep_lock);
	return woke;
}

void vm_sleep_resumed(struct vm *vm, bool bsp)
{
	pthread_mutex_lock(&vm->sleep_lock);
	vm->sleep_resumed++;
	pthread_cond_broadcast(&vm->sleep_cond);
	while (bsp && vm->sleep_resumed < vm->ncpus &&
	       atomic_load(&vm->exit_kind) == VM_EXIT_NONE)
		pthread_cond_wait(&vm->sleep_cond, &vm->sleep_lock);
	pthread_mutex_unlock(&vm->sleep_lock);
}

void vm_log_unclaimed(struct vm *vm, const char *space, uint64_t addr, bool write,
                      unsigned size)
{
	if (!vm->debug_io)
		return;
	if (size)
		fprintf(stderr, "zhv: unclaimed %s %s at %#" PRIx64 " (%u bytes)\n", space,
		        write ? "write" : "read", addr, size);
	else /* libzhv does not say which access an unclaimed MMIO exit was */
		fprintf(stderr, "zhv: unclaimed %s access at %#" PRIx64 "\n", space, addr);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	/* No access can reach a device from here on (no vCPU runs anyway). */
	bus_destroy(&vm->io_bus);
	bus_destroy(&vm->mmio_bus);
	/* Last created first: a device's threads stop before anything they
	 * signal (the IOAPIC, the PCI host) goes. */
	while (vm->nteardowns > 0) {
		struct vm_teardown *t = &vm->teardowns[--vm->nteardowns];
		t->fn(t->opaque);
	}
	/* No device thread is left to signal an MSI or read guest memory:
	 * the guest (its memslots, traps and KVM fds) and then its RAM go. */
	zhv_guest_destroy(vm->guest);
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	pthread_mutex_destroy(&vm->irq_lock);
	pthread_mutex_destroy(&vm->exit_lock);
	pthread_mutex_destroy(&vm->sleep_lock);
	pthread_cond_destroy(&vm->sleep_cond);
	pthread_mutex_destroy(&vm->pm_lock);
	pthread_mutex_destroy(&vm->dev_lock);
	pthread_cond_destroy(&vm->dev_cond);
	memset(vm, 0, sizeof(*vm));
}
