/* msr.c: Zircon's MSR policy (spec 3.6) for the MSRs KVM leaves to user
 * space (KVM_CAP_X86_USER_SPACE_MSR, reason UNKNOWN). KVM itself handles
 * the architectural MSRs, the local APIC and kvmclock; whatever neither
 * KVM nor this table knows gives the guest #GP. */
#include "zhv_priv.h"

/* Reads as 0: power, thermal, MTRR and microcode MSRs Zircon answers. */
static bool reads_zero(uint32_t i)
{
	switch (i) {
	case 0x17:  /* PLATFORM_ID */
	case 0x34:  /* SMI_COUNT */
	case 0x8b:  /* BIOS_SIGN_ID */
	case 0xfe:  /* MTRRCAP */
	case 0x179: /* MCG_CAP */
	case 0x17a: /* MCG_STATUS */
	case 0x1a2: /* TEMPERATURE_TARGET */
	case 0x250: /* MTRR_FIX64K_00000 */
	case 0x258: /* MTRR_FIX16K_80000 */
	case 0x259: /* MTRR_FIX16K_A0000 */
	case 0x2ff: /* MTRR_DEF_TYPE */
	case 0x606: /* RAPL_POWER_UNIT */
	case 0x611: /* PKG_ENERGY_STATUS */
	case 0x618: /* DRAM_POWER_LIMIT */
	case 0x619: /* DRAM_ENERGY_STATUS */
	case 0x638: /* PP0_POWER_LIMIT */
	case 0x639: /* PP0_ENERGY_STATUS */
	case 0x640: /* PP1_POWER_LIMIT */
	case 0x641: /* PP1_ENERGY_STATUS */
	case 0x64d: /* PLATFORM_ENERGY_COUNTER */
	case 0x64e: /* PPERF */
	case 0x65c: /* PLATFORM_POWER_LIMIT */
		return true;
	}
	return (i >= 0x268 && i <= 0x26f) || /* MTRR_FIX4K_* */
	       (i >= 0x200 && i <= 0x213);   /* MTRR_PHYSBASE0..PHYSMASK9 */
}

/* Writes ignored: MTRRs, microcode, power limits, speculation controls. */
static bool write_ignored(uint32_t i)
{
	switch (i) {
	case 0x48:       /* SPEC_CTRL */
	case 0x49:       /* PRED_CMD */
	case 0x8b:       /* BIOS_SIGN_ID */
	case 0xfe:       /* MTRRCAP */
	case 0x250:
	case 0x258:
	case 0x259:
	case 0x2ff:
	case 0x618:
	case 0x638:
	case 0x640:
	case 0x65c:
	case 0xc0000083: /* CSTAR */
		return true;
	}
	return (i >= 0x268 && i <= 0x26f) || (i >= 0x200 && i <= 0x213);
}

bool msr_policy_read(uint32_t index, uint64_t *value)
{
	if (!reads_zero(index))
		return false;
	*value = 0;
	return true;
}

bool msr_policy_write(uint32_t index, uint64_t value)
{
	(void)value;
	return write_ignored(index);
}
