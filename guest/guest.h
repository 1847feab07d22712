/* guest.h: the bundled default guest's shared declarations: port and MMIO
 * access, the console, and each bring-up step (fw_cfg, ACPI, SMP, disk). */
#ifndef ZHV_GUEST_H
#define ZHV_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- multiboot v1 (Multiboot Specification 0.6.96, section 3.3) ---------- */
#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_INFO_CMDLINE (1u << 2)
#define MB_INFO_MODS (1u << 3)
#define MB_INFO_MMAP (1u << 6)
#define MB_INFO_LOADER_NAME (1u << 9)

struct mb_info {
	uint32_t flags;
	uint32_t mem_lower, mem_upper;
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods_count, mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length, mmap_addr;
	uint32_t drives_length, drives_addr;
	uint32_t config_table;
	uint32_t boot_loader_name;
};

struct mb_module {
	uint32_t mod_start, mod_end;
	uint32_t string;
	uint32_t reserved;
};

/* ---- CPU primitives ------------------------------------------------------ */
static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}
static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}
static inline __attribute__((noreturn)) void halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}
static inline uint32_t mmio_read32(uintptr_t addr)
{
	return *(volatile uint32_t *)addr;
}
static inline void mmio_write32(uintptr_t addr, uint32_t v)
{
	*(volatile uint32_t *)addr = v;
}

/* lib.c: what the compiler may call even in freestanding code. */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* spinlock (lib.c): "lock xchg" and "pause" both work in KVM's emulator. */
void spin_lock(volatile uint32_t *lock);
void spin_unlock(volatile uint32_t *lock);

/* console.c: COM1, one whole line per call under a lock (any CPU). Formats:
 * %s %c %d %u %x and %%. */
void console_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* fw_cfg.c: QEMU's fw_cfg (ports 0x510/0x511); 0 when absent. */
unsigned fw_cfg_ncpus(void);

/* acpi.c: the number of enabled CPUs in the MADT (0 if none found), and the
 * S5 power-off through the FADT's PM1a control block (returns on failure). */
unsigned acpi_count_cpus(void);
void acpi_poweroff(void);

/* smp.c: start APIC IDs 1..ncpus-1 with INIT/SIPI through the xAPIC, one at
 * a time; (page) is a free page below 1 MiB for the real-mode trampoline.
 * Returns how many APs came up. */
unsigned smp_start_aps(unsigned ncpus, uint32_t page);
/* ap_main: where each AP's C code starts (from boot.S), on its own stack. */
void ap_main(uint32_t apic_id);

/* virtio_blk.c: find a virtio-blk PCI device, read sector 0 and print its
 * first 16 bytes ("disk: ...") or "no disk". */
void virtio_blk_probe(void);

/* boot.S */
extern const uint8_t ap_trampoline[], ap_trampoline_end[];
void guest_main(uint32_t magic, const struct mb_info *mbi);

#endif /* ZHV_GUEST_H */
