/* acpi.h: where the firmware tables (dev/acpi.c, dev/mptable.c) live in
 * guest RAM and which I/O ports the ACPI fixed hardware uses. */
#ifndef ZHV_VMM_ACPI_H
#define ZHV_VMM_ACPI_H

/* clang-format off */
/* The BIOS area [0xE0000, 0x100000): the e820 map must mark it reserved.
 * ACPI tables (RSDP first, at ACPI_RSDP_ADDR: ACPI 6.4 §5.2.5.1 requires
 * the RSDP on a 16-byte boundary in 0xE0000-0xFFFFF) fill the lower half,
 * the MP table (MP spec 1.4 §4: floating pointer in 0xF0000-0xFFFFF) the
 * upper half. */
#define BIOS_AREA_BASE      0xE0000u
#define BIOS_AREA_SIZE      0x20000u
#define ACPI_REGION_BASE    0xE0000u
#define ACPI_REGION_SIZE    0x10000u
#define ACPI_RSDP_ADDR      ACPI_REGION_BASE
#define MPTABLE_REGION_BASE 0xF0000u
#define MPTABLE_REGION_SIZE 0x10000u

/* ACPI fixed hardware ports (the FADT names them; ACPI 6.4 §4.8). */
#define ACPI_PM_IO_BASE     0x600u
#define ACPI_PM1A_EVT_PORT  0x600u /* PM1_STS (2 bytes) + PM1_EN (2 bytes) */
#define ACPI_PM1A_CNT_PORT  0x604u /* PM1_CNT, 2 bytes */
#define ACPI_PM_TMR_PORT    0x608u /* PM_TMR, 4 bytes (32-bit, TMR_VAL_EXT) */
#define ACPI_PM_IO_LEN      12u
#define ACPI_SCI_IRQ        9u
#define ACPI_SLP_TYP_S3     3u     /* the DSDT's \_S3 package value */
#define ACPI_SLP_TYP_S5     5u     /* the DSDT's \_S5 package value */
#define ACPI_RESET_PORT     0xCF9u /* FADT RESET_REG (dev/pci.c owns it) */
#define ACPI_RESET_VALUE    0x06u
/* clang-format on */

#endif /* ZHV_VMM_ACPI_H */
