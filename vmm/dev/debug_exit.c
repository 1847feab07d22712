/* debug_exit.c: QEMU's isa-debug-exit at port 0xf4 (iosize 4): a write of V
 * ends the run with status (V << 1) | 1, always odd, so that it never
 * equals one of zhv's own (even) statuses (exit_status.h). Opt-in, as
 * QEMU's -device isa-debug-exit: the board creates it only with
 * --debug-exit; without it port 0xf4 is unclaimed like any other.
 * QEMU's own defaults are iobase 0x501, iosize 2; 0xf4/4 is what
 * kvm-unit-tests passes (-device isa-debug-exit,iobase=0xf4,iosize=0x4)
 * and what kernels written for it expect. As in QEMU, a write of 1, 2 or
 * 4 bytes to any of the four ports exits with the value as wide as the
 * access; the process keeps the low 8 bits of the status, as QEMU's
 * exit() does. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../devices.h"
#include "../vm.h"

/* clang-format off */
#define DEBUG_EXIT_PORT 0xF4u /* isa-debug-exit,iobase=0xf4 */
#define DEBUG_EXIT_LEN  4u    /* isa-debug-exit,iosize=0x4 */
/* clang-format on */

/* Stateless, so no lock: vm_request_exit serializes (first request wins).
 * The VMM core stops the vCPU right after this returns (it checks
 * vm->exit_kind after every packet). */
static void debug_exit_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                              unsigned size)
{
	struct vm *vm = opaque;
	(void)offset;
	if (!write) {
		memset(data, 0xff, size);
		return;
	}
	uint64_t v = 0;
	for (unsigned i = 0; i < size && i < 8; i++)
		v |= (uint64_t)data[i] << (8 * i);
	/* QEMU: exit((val << 1) | 1) with val as wide as the access. Only the
	 * low bits of a process exit status survive; keep it a positive int. */
	uint64_t status = ((v << 1) | 1) & (uint64_t)INT_MAX;
	vm_request_exit(vm, VM_EXIT_DEBUG, (int)status);
}

int debug_exit_create(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	return bus_register(&vm->io_bus, vm->guest, DEBUG_EXIT_PORT, DEBUG_EXIT_LEN,
	                    debug_exit_access, vm, "debug-exit");
}
