/* legacy_ports.c: the PC ports Linux probes that no device model owns, one commented line each: reads all-ones (or a fixed value), writes ignored. */
#include <errno.h>
#include <string.h>

#include "../devices.h"
#include "../vm.h"

struct legacy_port {
	uint16_t base, len;
	uint8_t read_value;
	const char *name;
};

/* Ports owned elsewhere, deliberately absent here: 0x20-0x21/0xa0-0xa1
 * and 0x4d0-0x4d1 (pic.c), 0x40-0x43 and 0x61 (pit.c), 0x60/0x64
 * (i8042.c), 0x70-0x71 (rtc.c), 0xf4-0xf7 (debug_exit.c), COM ports
 * (uart16550.c), 0x510-0x511 (fw_cfg.c), 0x600-0x60b (acpi.c), 0xcf8-0xcff
 * (pci.c). Everything else unclaimed is the board's catch-all. */
/* clang-format off */
static const struct legacy_port legacy_ports[] = {
	{ 0x000, 0x20, 0xFF, "dma1" },       /* 8237 DMA controller 1 (channels 0-3) */
	{ 0x080, 0x01, 0xFF, "post" },       /* POST code; Linux's io_delay writes it */
	{ 0x081, 0x0F, 0xFF, "dma-page" },   /* 74LS612 DMA page registers (0x87 ...) */
	{ 0x092, 0x01, 0x02, "port-a" },     /* system control port A: A20 on, no reset */
	{ 0x0C0, 0x20, 0xFF, "dma2" },       /* 8237 DMA controller 2 (channels 4-7) */
	{ 0x0ED, 0x01, 0xFF, "io-delay" },   /* Linux io_delay=0xed alternative */
	{ 0x0F0, 0x02, 0xFF, "fpu-error" },  /* 80387 error latch (clear busy, reset) */
	{ 0x170, 0x08, 0xFF, "ide2" },       /* secondary IDE command block: probe fails */
	{ 0x1F0, 0x08, 0xFF, "ide1" },       /* primary IDE command block: probe fails */
	{ 0x278, 0x03, 0xFF, "lpt2" },       /* parallel port 2 */
	{ 0x376, 0x01, 0xFF, "ide2-ctl" },   /* secondary IDE control block */
	{ 0x378, 0x03, 0xFF, "lpt1" },       /* parallel port 1 */
	{ 0x3B0, 0x10, 0xFF, "mda-lpt3" },   /* MDA registers and parallel port 3 (0x3bc) */
	{ 0x3C0, 0x20, 0xFF, "vga" },        /* VGA registers */
	{ 0x3F0, 0x08, 0xFF, "fdc" },        /* floppy controller (0x3f6: IDE1 control) */
};
/* clang-format on */

static void legacy_port_access(void *opaque, uint64_t offset, bool write, uint8_t *data,
                               unsigned size)
{
	const struct legacy_port *p = opaque;
	(void)offset;
	if (!write)
		memset(data, p->read_value, size);
}

/* Call after every other device: a range someone else already owns
 * (-EEXIST) is left to its owner. */
int legacy_ports_create(struct vm *vm)
{
	if (!vm)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(legacy_ports) / sizeof(legacy_ports[0]); i++) {
		const struct legacy_port *p = &legacy_ports[i];
		int ret = bus_register(&vm->io_bus, vm->guest, p->base, p->len, legacy_port_access,
		                       (void *)p, p->name);
		if (ret < 0 && ret != -EEXIST)
			return ret;
	}
	return 0;
}
