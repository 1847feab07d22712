/* cpuid.c: the CPUID policy (spec 3.3): KVM's supported table with
 * Zircon's overrides, installed per vCPU with its APIC ID. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zhv_priv.h"

#define BIT(n) (1u << (n))

static void apply_zircon_overrides(struct kvm_cpuid_entry2 *e)
{
	switch (e->function) {
	case 0x1:
		/* HYPERVISOR, X2APIC and TSC_DEADLINE set; VMX, PDCM,
		 * MONITOR, TM2 clear; SEP set; TM, ACPI clear. */
		e->ecx |= BIT(31) | BIT(21) | BIT(24);
		e->ecx &= ~(BIT(5) | BIT(15) | BIT(3) | BIT(8));
		e->edx |= BIT(11);
		e->edx &= ~(BIT(29) | BIT(22));
		break;
	case 0x5: /* no MONITOR/MWAIT */
		e->eax = e->ebx = e->ecx = e->edx = 0;
		break;
	case 0x6: /* no thermal/power management */
		e->eax &= ~(BIT(0) | BIT(1) | BIT(4) | BIT(6) | BIT(7) | BIT(8) | BIT(9) | BIT(10) |
		            BIT(14));
		e->ecx &= ~(BIT(0) | BIT(3));
		break;
	case 0x7: /* no TSC_ADJUST, PT, AVX-512, speculation-control MSRs */
		e->ebx &= ~(BIT(1) | BIT(25) | BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) |
		            BIT(28) | BIT(30) | BIT(31));
		e->ecx &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14));
		e->edx &= ~(BIT(2) | BIT(3) | BIT(26) | BIT(27) | BIT(28) | BIT(29) | BIT(31));
		break;
	case 0xa: /* no architectural performance monitoring */
		e->eax = 0;
		e->ebx = 0x7f;
		e->ecx = e->edx = 0;
		break;
	case 0xd:
		if (e->index == 1)
			e->eax &= ~BIT(3); /* no XSAVES */
		break;
	case 0x40000000: /* "KVMKVMKVM": the PV clock is KVM's */
		e->eax = 0x40000001;
		e->ebx = 0x4b4d564b;
		e->ecx = 0x564b4d56;
		e->edx = 0x4d;
		break;
	case 0x40000001: /* CLOCKSOURCE | NOP_IO_DELAY | CLOCKSOURCE2 */
		e->eax = 0x0b;
		e->ebx = e->ecx = e->edx = 0;
		break;
	}
}

/* KVM's supported table does not change while a process runs, and asking
 * for it costs a CPUID instruction per leaf in the host (~0.25 ms where the
 * host is itself a guest): it is read once per process and copied for
 * each guest. */
static struct {
	pthread_mutex_t lock;
	struct kvm_cpuid2 *table;
} policy_cache = {PTHREAD_MUTEX_INITIALIZER, NULL};

static size_t cpuid_size(const struct kvm_cpuid2 *c)
{
	return sizeof(*c) + c->nent * sizeof(c->entries[0]);
}

static zhv_status_t build_policy(int kvm_fd, struct kvm_cpuid2 **out);

zhv_status_t cpuid_build_policy(int kvm_fd, struct kvm_cpuid2 **out)
{
	zhv_status_t st = ZHV_OK;
	pthread_mutex_lock(&policy_cache.lock);
	if (!policy_cache.table)
		st = build_policy(kvm_fd, &policy_cache.table);
	if (st == ZHV_OK) {
		*out = malloc(cpuid_size(policy_cache.table));
		if (*out)
			memcpy(*out, policy_cache.table, cpuid_size(policy_cache.table));
		else
			st = ZHV_ERR_NO_MEMORY;
	}
	pthread_mutex_unlock(&policy_cache.lock);
	return st;
}

static zhv_status_t build_policy(int kvm_fd, struct kvm_cpuid2 **out)
{
	for (uint32_t n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return ZHV_ERR_NO_MEMORY;
		c->nent = n;
		int e = zhv_ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
		if (e == -E2BIG) {
			free(c);
			continue;
		}
		if (e < 0) {
			free(c);
			zhv_log(ZHV_LOG_ERROR, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-e));
			return ZHV_ERR_NOT_SUPPORTED;
		}
		for (uint32_t i = 0; i < c->nent; i++)
			apply_zircon_overrides(&c->entries[i]);
		*out = c;
		return ZHV_OK;
	}
	return ZHV_ERR_NOT_SUPPORTED;
}

zhv_status_t cpuid_set_vcpu(const struct kvm_cpuid2 *policy, int vcpu_fd, uint32_t apic_id)
{
	size_t sz = cpuid_size(policy);
	struct kvm_cpuid2 *c = malloc(sz);
	if (!c)
		return ZHV_ERR_NO_MEMORY;
	memcpy(c, policy, sz);
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == 0x1)
			e->ebx = (e->ebx & 0x00ffffffu) | ((apic_id & 0xffu) << 24);
		else if (e->function == 0xb || e->function == 0x1f)
			e->edx = apic_id; /* Zircon: EAX = EBX = ECX = 0 for 0xB */
		if (e->function == 0xb)
			e->eax = e->ebx = e->ecx = 0;
	}
	int e = zhv_ioctl(vcpu_fd, KVM_SET_CPUID2, c);
	free(c);
	if (e < 0) {
		zhv_log(ZHV_LOG_ERROR, "KVM_SET_CPUID2: %s", strerror(-e));
		return ZHV_ERR_IO;
	}
	return ZHV_OK;
}

uint64_t cpuid_xcr0_supported(const struct kvm_cpuid2 *c)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0xd && c->entries[i].index == 0)
			return c->entries[i].eax | ((uint64_t)c->entries[i].edx << 32);
	return 0;
}
