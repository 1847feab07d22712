/* guest.h: the bundled default guest's own parts. Everything else (entry,
 * console, port and MMIO access, fw_cfg, ACPI, AP start-up, PCI and
 * virtio) is the shared runtime in rt/ (rt.h). */
#ifndef ZHV_GUEST_H
#define ZHV_GUEST_H

#include "rt.h"

/* smp.c: start APIC IDs 0..ncpus-1 but this CPU's, one at a time; (page)
 * is a free page below 1 MiB for the real-mode trampoline. Each AP prints
 * "cpu N up". Returns how many APs came up. */
unsigned smp_start_aps(unsigned ncpus, uint32_t page);

/* virtio_blk.c: find a virtio-blk PCI device, read sector 0 and print its
 * first 16 bytes ("disk: ...") or "no disk". */
void virtio_blk_probe(void);

#endif /* ZHV_GUEST_H */
