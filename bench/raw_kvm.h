/* raw_kvm.h: the raw-KVM side of the libzhv benchmarks. Plain KVM ioctls
 * (linux/kvm.h), no libzhv, so that each benchmark can compare libzhv with
 * what a hand-written minimal VMM does for the same guest code.
 *
 * It also holds the guest memory layout both sides use: identity page
 * tables with the PML4 at GPA 0 (libzhv's BSP starts in 64-bit mode with
 * CR3 = 0), PDPT at 0x1000, one page directory at 0x2000 with 2 MiB pages
 * for [0, 4 MiB), and the code at BENCH_CODE_GPA. */
#ifndef BENCH_RAW_KVM_H
#define BENCH_RAW_KVM_H

#include <errno.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_RAM_SIZE (2u << 20)  /* 2 MiB of guest RAM at GPA 0 */
#define BENCH_CODE_GPA 0x10000u
#define BENCH_TRAP_GPA 0x200000u   /* just above RAM, mapped by the page tables */

/* bench_guest_ram: mmap BENCH_RAM_SIZE bytes, write the page tables and
 * (code) at BENCH_CODE_GPA, touch every page. Exits on failure. */
uint8_t *bench_guest_ram(const uint8_t *code, size_t len);

struct raw_vm {
	int kvm_fd;
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, kept for CR4/XCR0 */
};

/* All functions return 0 or -errno and print what failed to stderr. */

/* raw_vm_open: open /dev/kvm, KVM_GET_VCPU_MMAP_SIZE, KVM_CREATE_VM. */
int raw_vm_open(struct raw_vm *r);
/* raw_vm_split_irqchip: KVM_ENABLE_CAP(SPLIT_IRQCHIP, 24) (diagnostics
 * only: what libzhv does, to tell KVM's cost from libzhv's own). */
int raw_vm_split_irqchip(struct raw_vm *r);
/* raw_vm_map: KVM_SET_USER_MEMORY_REGION (slot, gpa, host, size). */
int raw_vm_map(struct raw_vm *r, uint32_t slot, uint64_t gpa, void *host, uint64_t size);
/* raw_vcpu_create: KVM_CREATE_VCPU(0) and mmap its kvm_run. */
int raw_vcpu_create(struct raw_vm *r);
/* raw_vcpu_cpuid: KVM_GET_SUPPORTED_CPUID and KVM_SET_CPUID2 with it as is
 * (a long-mode guest needs LM in its CPUID, or KVM refuses EFER.LME). */
int raw_vcpu_cpuid(struct raw_vm *r);
/* raw_vcpu_long_mode: KVM_GET_SREGS, then KVM_SET_SREGS and KVM_SET_REGS
 * with the same state libzhv gives its BSP (spec 2.2): 64-bit mode at
 * (rip), CR3 = 0, CR0 = PE|ET|WP|PG, CR4 = PAE|PGE|OSFXSR (+OSXSAVE and
 * FSGSBASE when the CPUID has them), EFER = SCE|LME|LMA|NXE, flat segments
 * with selector 0 and 16-bit limits, GDTR/IDTR base 0 limit 0xffff,
 * RFLAGS = 2. With (xcr0) also KVM_SET_XCRS as libzhv does. Needs
 * raw_vcpu_cpuid first. */
int raw_vcpu_long_mode(struct raw_vm *r, uint64_t rip, bool xcr0);
/* raw_vm_close: munmap the kvm_run, close vCPU, VM and /dev/kvm. */
void raw_vm_close(struct raw_vm *r);

/* raw_run: KVM_RUN; returns 0 or -errno (EINTR included). */
static inline int raw_run(struct raw_vm *r)
{
	return ioctl(r->vcpu_fd, KVM_RUN, 0) < 0 ? -errno : 0;
}

/* raw_exit_name: a short name of a KVM exit reason for error messages. */
const char *raw_exit_name(uint32_t reason);

#endif
