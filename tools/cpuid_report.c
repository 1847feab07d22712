/* cpuid_report.c: measures which parts of libzhv's CPUID policy the host's
 * KVM honours. It asks KVM for the policy table libzhv installs, runs a
 * 64-bit CPL0 guest that executes CPUID for each leaf, and prints, per
 * register, the bits the guest lost and the bits KVM added. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zhv_priv.h"

#define RAM (4u << 20)
#define TABLE 0x3000u
#define DONE 0x200000u

static const uint8_t code[] = {
	0x48, 0xc7, 0xc6, 0x00, 0x30, 0x00, 0x00, /* mov $TABLE, %rsi */
	0x8b, 0x0e,                               /* mov (%rsi), %ecx: count */
	0x48, 0x83, 0xc6, 0x08,                   /* add $8, %rsi */
	0x51,                                     /* 1: push %rcx */
	0x8b, 0x06, 0x8b, 0x4e, 0x04,             /* eax = leaf, ecx = subleaf */
	0x0f, 0xa2,                               /* cpuid */
	0x89, 0x46, 0x08, 0x89, 0x5e, 0x0c,       /* store eax, ebx */
	0x89, 0x4e, 0x10, 0x89, 0x56, 0x14,       /* store ecx, edx */
	0x48, 0x83, 0xc6, 0x18, 0x59,             /* next; pop %rcx */
	0xff, 0xc9, 0x75, 0xe3,                   /* dec %ecx; jnz 1b */
	0x48, 0xc7, 0x04, 0x25, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00,
};

struct row {
	uint32_t leaf, sub, r[4];
};

int main(void)
{
	int kvm = open("/dev/kvm", O_RDWR);
	struct kvm_cpuid2 *policy;
	if (kvm < 0 || cpuid_build_policy(kvm, &policy) != ZHV_OK) {
		fprintf(stderr, "cpuid_report: no usable /dev/kvm\n");
		return 1;
	}
	zhv_guest_t *g;
	zhv_vcpu_t *v;
	uint8_t *ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *pml4 = (uint64_t *)ram, *pdpt = (uint64_t *)(ram + 0x1000),
	         *pd = (uint64_t *)(ram + 0x2000);
	pml4[0] = 0x1003;
	pdpt[0] = 0x2003;
	pd[0] = 0x83;
	pd[1] = 0x200083;
	memcpy(ram + 0x10000, code, sizeof(code));
	uint32_t n = policy->nent;
	memcpy(ram + TABLE, &n, 4);
	struct row *rows = (struct row *)(ram + TABLE + 8);
	for (uint32_t i = 0; i < n; i++) {
		rows[i].leaf = policy->entries[i].function;
		rows[i].sub = policy->entries[i].index;
	}
	if (zhv_guest_create(NULL, &g) != ZHV_OK || zhv_guest_map(g, 0, ram, RAM, ZHV_MAP_RWX) ||
	    zhv_guest_set_trap(g, ZHV_TRAP_MEM, DONE, 0x1000, NULL, 1) ||
	    zhv_vcpu_create(g, 0, 0x10000, &v)) {
		fprintf(stderr, "cpuid_report: setup failed\n");
		return 1;
	}
	zhv_vcpu_state_t st = {.rsp = 0x8000};
	zhv_packet_t pkt;
	if (zhv_vcpu_write_state(v, ZHV_VCPU_STATE, &st, sizeof(st)) ||
	    zhv_vcpu_enter(v, &pkt) || pkt.type != ZHV_PKT_TYPE_GUEST_MEM) {
		fprintf(stderr, "cpuid_report: guest failed\n");
		return 1;
	}
	static const char *const reg[] = {"eax", "ebx", "ecx", "edx"};
	unsigned same = 0, differ = 0;
	printf("| leaf.sub | reg | policy (asked) | guest CPL0 sees | lost | added |\n");
	printf("|---|---|---|---|---|---|\n");
	for (uint32_t i = 0; i < n; i++) {
		const struct kvm_cpuid_entry2 *e = &policy->entries[i];
		uint32_t want[4] = {e->eax, e->ebx, e->ecx, e->edx};
		if (e->function == 1) /* APIC ID 0 for vCPU 1 (cpuid_set_vcpu) */
			want[1] &= 0x00ffffff;
		if (e->function == 0xb || e->function == 0x1f)
			want[3] = 0;
		if (e->function == 0xb)
			want[0] = want[1] = want[2] = 0;
		for (int r = 0; r < 4; r++) {
			uint32_t got = rows[i].r[r];
			if (got == want[r]) {
				same++;
				continue;
			}
			differ++;
			printf("| %#x.%u | %s | %08x | %08x | %08x | %08x |\n", e->function, e->index,
			       reg[r], want[r], got, want[r] & ~got, got & ~want[r]);
		}
	}
	printf("\n%u registers as asked, %u differ (%u leaves)\n", same, differ, n);
	zhv_vcpu_destroy(v);
	zhv_guest_destroy(g);
	free(policy);
	close(kvm);
	return 0;
}
