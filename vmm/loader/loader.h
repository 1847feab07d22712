/* loader.h: guest kernel formats. loader_load() detects the format of the
 * kernel file, places it and its boot information in guest RAM and says
 * how the BSP starts. */
#ifndef ZHV_VMM_LOADER_H
#define ZHV_VMM_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "zhv.h"

struct vm;

/* Formats. With KERNEL_AUTO (the default) the file's contents say which,
 * tested in this order:
 *  - multiboot v1 (0x1BADB002 + valid checksum, 4-aligned, first 8 KiB):
 *    ELF32/ELF64 by program headers, or the a.out kludge when flag 16 is
 *    set (as GRUB 2 and QEMU). 32-bit protected mode, paging off, CS 0x08
 *    and data 0x10 flat, EAX 0x2BADB002, EBX the multiboot information
 *    (MEM, CMDLINE "kernel_path cmdline", MODS "path args", MMAP, loader
 *    name). The initrd, if given, becomes module 0, then the modules.
 *  - bzImage ("HdrS" at 0x202, protocol >= 2.06, XLF_KERNEL_64): 64-bit
 *    boot protocol; kernel at pref_address if relocatable and it fits,
 *    else 1 MiB; RIP = load + 0x200, RSI = zero page; one initrd, placed
 *    high below initrd_addr_max.
 *  - PVH (ELF64 with the Xen PHYS32_ENTRY note in a PT_NOTE or .note
 *    section): segments at p_paddr, 32-bit protected mode at the note's
 *    entry, EBX = hvm_start_info (version 1, e820 memmap, initrd = module
 *    0, further modules after it, rsdp_paddr 0).
 *  - plain ELF64 (x86-64): segments at p_paddr, 64-bit mode at e_entry.
 *  - anything else is refused (a file of no known format is never run).
 * A flat binary is loaded only when asked (KERNEL_FLAT): the whole file at
 * 0x100000, entered in 64-bit mode at 0x100000 (LOADER_FLAT_BASE). Asking
 * for another format loads the file as that format or refuses it (e.g.
 * KERNEL_ELF64 boots a PVH vmlinux as a plain ELF64, at e_entry).
 * Every kernel, initrd and module must be a regular file: a FIFO, device
 * or directory is refused without blocking. The loader's work is linear
 * in the file (or n log n in its program headers): each header table is
 * read once, notes are read once per distinct region and at most
 * LOADER_NOTE_BUDGET bytes in all, and segments may overlap each other by
 * at most LOADER_SEGMENT_OVERLAP bytes in all.
 * ELF64 and flat take no initrd or modules (error) and ignore cmdline.
 * 64-bit entries run on identity page tables mapping [0, 4 GiB) with
 * 2 MiB pages (U/S set, 3-4 GiB uncached), GDT code64 0x10 / data 0x18,
 * RSP the top of the boot stack; ELF64/flat also get CR4.OSFXSR and
 * EFER.SCE|NXE.
 *
 * Guest-physical layout. The kernel's segments are placed first, at the
 * addresses the file gives (checked against RAM, page 0, the BIOS area and
 * each other), then its modules:
 *   multiboot: one after the other, page-aligned, from max(kernel end, 1 MiB);
 *   bzImage initrd and PVH modules: from the top of low RAM down, page-aligned.
 * Then zhv's own boot data goes where none of that is, each piece at its
 * preferred address when that is free, else at the lowest free address of
 * guest RAM below 4 GiB from 0x1000 up (free low memory first, then above
 * 1 MiB); a load is refused only when no free range can hold a piece:
 *   0x0000-0x0FFF  page 0 (IVT, BDA; kernels put AP trampolines there):
 *                  never written, and no kernel segment may lie there
 *   0x1000         GDT (one page)
 *   0x2000-0x7FFF  page tables (PML4, PDPT, 4 PDs; 64-bit formats only)
 *   0x8000-0x8FFF  boot stack (RSP/ESP = its top, 0x9000)
 *   0x9000-        boot information, each piece after the previous one:
 *                  zero page and command line (bzImage); start_info,
 *                  cmdline, memmap, module list, module strings (PVH);
 *                  the multiboot information with its memory map, module
 *                  list and strings (one block)
 *   0x9FC00-0xFFFFF reserved BIOS area (ACPI, MP table): never written
 * So a kernel linked at 0x8000 (or 0x1000, or over all of low memory) gets
 * its stack and information below or above its image, never inside it. */
#define LOADER_FLAT_BASE 0x100000ull

#define LOADER_NOTE_BUDGET (16ull << 20)
#define LOADER_SEGMENT_OVERLAP (16ull << 20)

enum kernel_format {
	KERNEL_AUTO = 0,      /* detect: multiboot, bzImage, PVH or ELF64 (not flat) */
	KERNEL_MULTIBOOT = 1, /* multiboot v1: ELF32, ELF64 or a.out kludge */
	KERNEL_BZIMAGE,       /* Linux bzImage, 64-bit boot protocol */
	KERNEL_PVH,           /* ELF vmlinux with a Xen PVH entry note */
	KERNEL_ELF64,         /* plain ELF64: 64-bit mode at e_entry */
	KERNEL_FLAT,          /* only when asked: flat binary at LOADER_FLAT_BASE */
};

/* The --format names: "auto", "multiboot", "linux", "pvh", "elf", "flat". */
#define LOADER_FORMAT_NAMES "auto, multiboot, linux, pvh, elf or flat"
/* loader_format_parse: the format called (name), or -1. */
int loader_format_parse(const char *name);

struct boot_module {
	const char *path;
	const char *args; /* may be NULL */
};

struct boot_request {
	const char *kernel_path;
	const char *cmdline;    /* may be NULL */
	const char *initrd_path; /* may be NULL */
	const struct boot_module *modules;
	size_t nmodules;
	enum kernel_format format; /* KERNEL_AUTO (0): detect */
};

/* The BSP's initial state: loaders fill every field; the VMM writes them
 * with zhv_vcpu_write_state(ZHV_VCPU_SREGS / ZHV_VCPU_REGS), SREGS first.
 * sregs.apic_base is the power-on value 0xFEE00900 (xAPIC enabled, BSP);
 * a VMM that keeps another APIC mode copies its own value in first. */
struct boot_state {
	enum kernel_format format;
	zhv_vcpu_sregs_t sregs;
	zhv_vcpu_regs_t regs;
};

/* One entry of the guest's physical memory map (e820 types). */
#define E820_RAM 1
#define E820_RESERVED 2
struct e820_entry {
	uint64_t addr, size;
	uint32_t type;
};

/* loader_memory_map: the machine's e820 map from vm->low_ram/ram_size
 * (RAM below 0x9FC00, reserved BIOS area 0x9FC00-0x100000 which holds the
 * ACPI and MP tables, RAM from 1 MiB, RAM above 4 GiB). Returns the
 * number of entries written (at most max). */
size_t loader_memory_map(const struct vm *vm, struct e820_entry *out, size_t max);

/* loader_load: load (req) into (vm)'s RAM and fill (out). On error returns
 * a negative errno-style value and writes a one-line reason to (err) (e.g.
 * "kernel.elf: truncated program header table"). Never trusts the file:
 * every offset and size is checked against the file and guest RAM. */
int loader_load(struct vm *vm, const struct boot_request *req, struct boot_state *out,
                char *err, size_t errlen);

#endif /* ZHV_VMM_LOADER_H */
