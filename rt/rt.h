/* rt.h: zhv's freestanding runtime (rt/), shared by the end-to-end test
 * kernels (tests/vmm/kernels/) and the bundled default guest (guest/):
 * multiboot v1 entry in 32-bit protected mode (paging off), COM1 output,
 * port and MMIO access, an IDT with per-vector handlers, the few C library
 * routines freestanding code needs, fw_cfg and ACPI look-ups, and exit
 * through isa-debug-exit (port 0xf4: zhv exits with status (code << 1) | 1;
 * zhv has the device only with --debug-exit, which every run of a test
 * kernel passes). The build makes it one archive per build directory
 * (build/rt/librt.a, plus build/rt/crt0.o, the entry) linked by
 * rt/kernel.ld at 1 MiB (or at TK_BASE_NAME: vmm/build.mk).
 *
 * A program on the runtime is one file, e.g. tests/vmm/kernels/NAME.c (or
 * .S), that includes "rt.h" and defines
 *     int test_main(const struct rt_mbi *mbi);
 * The build links it with this runtime into build/tests/vmm/kernels/
 * NAME.elf. test_main's return value is the exit code. By convention a
 * test prints "PASS" or "FAIL: why" and returns RT_PASS or RT_FAIL (see
 * rt_pass/rt_fail), so a script checks both the line and the status:
 * RT_PASS gives status 65, RT_FAIL 67, an unexpected exception 0x7e (253),
 * while zhv's own statuses are even: 0 for power-off/reset, 6 for a
 * crashed guest (vmm/exit_status.h).
 *
 * Guest CPL0 code is emulated at about 1 µs per instruction on our KVM:
 * keep loops short and stick to integer code (the build forbids SSE/x87).
 *
 * More of the runtime: rt/apic.h (local APIC, I/O APIC, PM-timer clock,
 * atomics, starting APs with INIT/SIPI), rt/pci.h (configuration space of
 * bus 0), rt/virtio.h (virtio-pci with split virtqueues), rt/group.h
 * (named check groups for the scripts).
 */
#ifndef ZHV_TEST_RT_H
#define ZHV_TEST_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_PASS 0x20
#define RT_FAIL 0x21
#define RT_EXIT_EXCEPTION 0x7e
#define RT_DEBUG_EXIT_PORT 0xf4
#define RT_COM1 0x3f8

/* Multiboot v1 information (the fields tests use). */
#define RT_MB_MAGIC 0x2BADB002u
#define RT_MB_CMDLINE (1u << 2)
#define RT_MB_MODS (1u << 3)
#define RT_MB_MMAP (1u << 6)
#define RT_MB_LOADER_NAME (1u << 9)
struct rt_mbi {
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
struct rt_mb_module {
	uint32_t mod_start, mod_end, string, reserved;
};

/* The register frame an interrupt handler sees (pusha order, then the
 * vector, the error code or 0, and what the CPU pushed). */
struct rt_frame {
	uint32_t edi, esi, ebp, esp0, ebx, edx, ecx, eax;
	uint32_t vector, error;
	uint32_t eip, cs, eflags;
};
typedef void (*rt_handler_fn)(struct rt_frame *frame);

int test_main(const struct rt_mbi *mbi);
/* What the boot loader left in EAX (RT_MB_MAGIC from a multiboot loader);
 * test_main's (mbi) is NULL unless it was RT_MB_MAGIC. */
extern uint32_t rt_boot_magic;

/* rt_cmdline: the multiboot command line ("" if none). */
const char *rt_cmdline(void);
/* rt_cmdline_uint: the value of "key=N" (decimal or 0x hex) on the command
 * line, or (def). */
uint32_t rt_cmdline_uint(const char *key, uint32_t def);

/* Output on COM1 (%s %c %d %u %x %%; no widths). Lines from different CPUs
 * never interleave. */
void rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rt_puts(const char *s); /* adds "\n" */

/* Exits: rt_exit never returns. rt_pass prints "PASS"; rt_fail prints
 * "FAIL: ..." and both exit with RT_PASS / RT_FAIL. */
__attribute__((noreturn)) void rt_exit(uint32_t code);
__attribute__((noreturn)) void rt_pass(void);
__attribute__((noreturn, format(printf, 1, 2))) void rt_fail(const char *fmt, ...);
/* RT_CHECK(cond): fail with file, line and the condition if false. */
#define RT_CHECK(cond)                                                           \
	do {                                                                         \
		if (!(cond))                                                             \
			rt_fail("%s:%d: %s", __FILE__, __LINE__, #cond);                    \
	} while (0)

/* Interrupts: (fn) runs for (vector) with interrupts off; it must do its
 * own EOI. Without a handler, vectors 0-31 print the exception and exit
 * with RT_EXIT_EXCEPTION; other vectors are counted in rt_spurious. */
void rt_set_handler(unsigned vector, rt_handler_fn fn);
extern volatile uint32_t rt_spurious;
/* rt_load_idt: load the runtime's IDT on this CPU (the BSP's is loaded
 * before test_main; rt/smp.c does it for APs). */
void rt_load_idt(void);

/* rt_spin_lock / rt_spin_unlock: a test-and-set lock ("lock xchg" and
 * "pause" both work in KVM's emulator). */
void rt_spin_lock(volatile uint32_t *lock);
void rt_spin_unlock(volatile uint32_t *lock);

/* ---- firmware interfaces zhv's board has --------------------------------- */
/* rt_fw_cfg_ncpus: CPUs from QEMU's fw_cfg (ports 0x510/0x511); 0 if absent. */
unsigned rt_fw_cfg_ncpus(void);
/* ACPI (rt/acpi.c): the RSDP (0xE0000-0xFFFFF), a table by signature
 * through the XSDT (or RSDT), or NULL; enabled CPUs in the MADT (0 if no
 * MADT); S5 power-off through the FADT's PM1a control block and \_S5.
 * rt_acpi_poweroff returns only when that failed, with the reason. */
const uint8_t *rt_acpi_find_rsdp(void);
const uint8_t *rt_acpi_find_table(const char sig[4]);
unsigned rt_acpi_count_cpus(void);
const char *rt_acpi_poweroff(void);

void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

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
static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t mmio_read32(uintptr_t addr)
{
	return *(volatile uint32_t *)addr;
}
static inline void mmio_write32(uintptr_t addr, uint32_t v)
{
	*(volatile uint32_t *)addr = v;
}
static inline void rt_sti(void)
{
	__asm__ volatile("sti" ::: "memory");
}
static inline void rt_cli(void)
{
	__asm__ volatile("cli" ::: "memory");
}
static inline void rt_pause(void)
{
	__asm__ volatile("pause" ::: "memory");
}
/* rt_wait_irq: sti; hlt (one instruction of shadow, so no wakeup is lost). */
static inline void rt_wait_irq(void)
{
	__asm__ volatile("sti; hlt" ::: "memory");
}
/* rt_halt_forever: cli; hlt, for good. */
static inline __attribute__((noreturn)) void rt_halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt" ::: "memory");
}

#endif /* ZHV_TEST_RT_H */
