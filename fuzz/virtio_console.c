/* virtio_console.c: libFuzzer target of the virtio console
 * (vmm/dev/virtio_console.c) behind the virtio PCI transport
 * (fuzz/virtio_dev.h describes the input). Event: (value & 0x1fff) bytes
 * typed on the host (a fixed pattern). Output goes to /dev/null. */
#include "virtio_dev.h"

#include "../vmm/dev/outq.c"
#include "../vmm/dev/virtio_console.c"

static FILE *console_out;

static int fuzz_dev_create(uint8_t flags)
{
	(void)flags;
	/* A memory stream (no descriptor): the output ring then writes it
	 * directly, without a writer thread per input (vmm/dev/outq.c). */
	static char sink[1 << 16];
	if (!console_out)
		console_out = fmemopen(sink, sizeof(sink), "w");
	else
		rewind(console_out);
	if (!console_out)
		return -1;
	return virtio_console_create(&fuzz_vm, console_out);
}

static void fuzz_dev_event(uint8_t size, uint16_t offset, uint32_t value)
{
	static uint8_t typed[8192 + 256];
	static bool filled;

	(void)size;
	if (!filled) {
		for (size_t i = 0; i < sizeof(typed); i++)
			typed[i] = (uint8_t)i;
		filled = true;
	}
	virtio_console_input(typed + (offset & 0xff), value & 0x1fff);
}
