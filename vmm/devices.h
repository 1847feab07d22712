/* devices.h: constructors of every device model (one file each under
 * vmm/dev/). The board (vmm/board.c) calls them in order; each returns 0
 * or a negative errno-style value and registers its own ranges on the
 * buses. */
#ifndef ZHV_VMM_DEVICES_H
#define ZHV_VMM_DEVICES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct vm;
struct ioapic;

/* Interrupt controllers (dev/ioapic.c, dev/pic.c). The IOAPIC turns
 * vm_irq_set() edges into MSIs (zhv_guest_signal_msi) per its redirection
 * entries, and gives each entry's message to libzhv as the pin's route
 * (zhv_guest_set_irq_route) so that local-APIC EOIs of level-triggered
 * vectors come back as EOI packets; the PIC pair answers Linux's probes
 * and stays masked. */
int ioapic_create(struct vm *vm);
int pic_create(struct vm *vm);
/* ioapic_set_irq: called by vm_irq_set(). (pin) is an ISA IRQ (0-15) or
 * a GSI (16-23): they are the same input except ISA IRQ 0 (the PIT),
 * which is wired to pin 2 as the MADT's Interrupt Source Override and the
 * MP table say. A rising (level) delivers the entry's MSI. NULL (io) is a
 * no-op. Any thread. */
void ioapic_set_irq(struct ioapic *io, unsigned pin, int level);
/* ioapic_eoi: a local APIC's EOI of (vector) (a ZHV_PKT_TYPE_GUEST_EOI
 * packet), which a PC broadcasts to its IOAPICs: every level-triggered
 * entry with that vector and Remote-IRR set clears Remote-IRR and, if its
 * input is still high and the entry unmasked, delivers again. Entries of
 * other vectors, or not in service, are left alone. NULL (io) is a no-op.
 * Any thread. */
void ioapic_eoi(struct ioapic *io, uint8_t vector);
/* ioapic_shutdown: deliver nothing from now on. When it returns no MSI
 * from the IOAPIC is in flight, so zhv_guest_destroy() may follow (device
 * threads such as the PIT's keep running until the process exits). */
void ioapic_shutdown(struct ioapic *io);
/* ioapic_reset: the power-on state (every entry masked, ID 0), as after a
 * resume from ACPI S3; the input levels stay the devices'. NULL (io) is a
 * no-op. Any thread. */
void ioapic_reset(struct ioapic *io);

/* dev/uart16550.c: COM1..COM4 at 0x3f8/0x2f8/0x3e8/0x2e8, IRQ 4/3/4/3.
 * (out) receives transmitted bytes (NULL: discarded); uart_input() feeds
 * received bytes (from the console thread). */
struct uart;
struct uart *uart16550_create(struct vm *vm, unsigned index, FILE *out);
void uart16550_input(struct uart *u, const uint8_t *buf, size_t len);
/* Output never blocks a vCPU: transmitted bytes wait in a 64 KiB ring
 * that a writer thread of the UART drains into (out); when the ring is
 * full they are dropped and counted. uart16550_stop_output: let the
 * writer drain for up to (timeout_ms), then stop it (bytes not written by
 * then are dropped too); returns the count of dropped bytes (later bytes
 * are dropped and counted). uart16550_destroy: the same
 * with a 200 ms bound, then free (after the vCPUs and console input have
 * stopped; the I/O bus registration goes with the VM; (out) stays open,
 * the caller's). board_destroy calls it in the machine's teardown order.
 * NULL: no-op. */
uint64_t uart16550_stop_output(struct uart *u, unsigned timeout_ms);
void uart16550_destroy(struct uart *u);

/* dev/i8042.c: ports 0x60/0x64; writing 0xfe to 0x64 resets the machine
 * (vm_request_exit POWEROFF, status 0). */
int i8042_create(struct vm *vm);
/* dev/debug_exit.c: port 0xf4 (iosize 4; QEMU's isa-debug-exit as
 * kvm-unit-tests configures it): a write of V ends the run with status
 * (V << 1) | 1, synchronously at the write. */
int debug_exit_create(struct vm *vm);
/* QEMU's test devices, opt-in (--test-device). dev/pc_testdev.c:
 * pc-testdev: ports 0xe0-0xeb (scratch register, flush page), IRQ-line
 * ports 0x2000-0x2017 and 64 KiB of MMIO storage at 0xff000000.
 * dev/pci_testdev.c: pci-testdev (1b36:0005) on PCI bus 0, a 4 KiB memory
 * BAR and a 256-port I/O BAR with kvm-unit-tests' hit-counting tests. */
int pc_testdev_create(struct vm *vm);
int pci_testdev_create(struct vm *vm);
/* dev/pit.c: 8254 at 0x40-0x43 (modes 0, 2, 3; channel 0 on IRQ 0),
 * port 0x61 speaker gate for channel 2. */
int pit_create(struct vm *vm);
/* dev/rtc.c: CMOS RTC at 0x70/0x71 (time of day, status A-D, IRQ 8). */
int rtc_create(struct vm *vm);
/* dev/fw_cfg.c: QEMU's fw_cfg I/O interface (selector 0x510, data 0x511):
 * signature, NB_CPUS (0x05), RAM_SIZE (0x03); unknown keys read 0. */
int fw_cfg_create(struct vm *vm);
/* dev/legacy_ports.c: claims the PC ports Linux probes that no device
 * above owns (one line per port range): reads all-ones, writes ignored. */
int legacy_ports_create(struct vm *vm);
/* dev/acpi.c: ACPI tables (RSDP at 0xE0000, XSDT, FADT, MADT, DSDT) and the
 * PM1a control/event registers their FADT names (S5 = power off, S3 =
 * suspend to RAM, vm_sleep), written into guest RAM. acpi_rtc_alarm: the
 * RTC's alarm interrupt (dev/rtc.c): RTC_STS, and with RTC_EN the wake
 * from S3 (or the SCI while awake). Any thread; a no-op without ACPI. dev/mptable.c: an Intel MP table (for MP-aware kernels
 * without ACPI). Both need vm->ncpus. */
int acpi_create(struct vm *vm);
void acpi_rtc_alarm(struct vm *vm);
int mptable_create(struct vm *vm);
/* dev/pci.c: see dev/pci.h. */

/* virtio 1.x over PCI (dev/virtio_pci.c transport + one file per device). */
/* dev/virtio_blk.c: a disk on the raw image (path). Requests are served on
 * the notifying vCPU thread up to a bound per notify (1 MiB of data, one
 * ring of chains); a worker thread of the device finishes the rest. The
 * device is stored in *(out) if (out) is not NULL. virtio_blk_destroy:
 * stop and join the worker (within one bounded pass), close the image and
 * free the device; only once no vCPU can reach it (the PCI bus keeps no
 * reference that is used after that). NULL is a no-op. */
struct virtio_blk;
int virtio_blk_create(struct vm *vm, const char *path, bool read_only, struct virtio_blk **out);
void virtio_blk_destroy(struct virtio_blk *b);
int virtio_net_create(struct vm *vm, const char *tap_name);
int virtio_console_create(struct vm *vm, FILE *out);
int virtio_rng_create(struct vm *vm);

#endif /* ZHV_VMM_DEVICES_H */
