/* board.h: the PC the VMM builds: guest RAM, every device in order, the
 * unclaimed-port catch-all and the loaded kernel. */
#ifndef ZHV_VMM_BOARD_H
#define ZHV_VMM_BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "loader/loader.h"
#include "vm.h"

#define BOARD_MIN_MEMORY (2ull << 20)

struct board_disk {
	const char *path;
	bool read_only;
};

struct board_config {
	unsigned ncpus;     /* 1..255 */
	uint64_t mem_size;  /* bytes, page multiple, >= BOARD_MIN_MEMORY */
	FILE *serial;       /* COM1 output; NULL: discarded */
	bool debug_io;      /* log unclaimed port I/O and MMIO */
	bool debug_exit;    /* isa-debug-exit at port 0xf4 (else the port is unclaimed) */
	bool pc_testdev;    /* QEMU's pc-testdev (else its ports and MMIO are unclaimed) */
	bool pci_testdev;   /* QEMU's pci-testdev on PCI bus 0 */
	FILE *virtio_console; /* --console virtio: a virtio console (hvc0) writing here; NULL: none */
	const struct board_disk *disks;
	size_t ndisks;
	const char *const *net_taps;
	size_t nnets;
	struct boot_request boot;
	bool no_kernel;     /* zhv run --restore: RAM comes from a snapshot, no loader */
};

struct io_gap; /* board.c: one unclaimed port range */

struct board {
	struct vm vm;
	struct uart *com1;
	struct boot_state boot; /* the BSP's initial state (loader_load) */
	struct io_gap *gaps;
	size_t ngaps;
	bool load_error; /* board_create failed on an input: kernel, initrd, module, disk */
};

/* board_create: build the machine (cfg) describes into (b): guest, RAM,
 * devices, tables, port catch-all, kernel. Returns 0, or a negative
 * errno-style value with a one-line reason in (err). Either way (b) is
 * then released with board_destroy. */
int board_create(struct board *b, const struct board_config *cfg, char *err, size_t errlen);

/* board_destroy: the inverse of board_create, also after it failed part-
 * way: every device's destroy path runs, last created first (PIT, RTC and
 * virtio-net threads stopped and joined, disk images and taps closed, all
 * memory freed), then the libzhv guest is destroyed and guest RAM
 * unmapped. Call after vcpus_stop() and console_stop() (nothing may run in
 * the machine any more); (cfg)'s serial FILE stays the caller's. (b) is left
 * zeroed. */
void board_destroy(struct board *b);

#endif /* ZHV_VMM_BOARD_H */
