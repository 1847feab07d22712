/* raw_kvm.c: see raw_kvm.h. */
#include "raw_kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

uint8_t *bench_guest_ram(const uint8_t *code, size_t len)
{
	uint8_t *ram = mmap(NULL, BENCH_RAM_SIZE, PROT_READ | PROT_WRITE,
	                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED) {
		perror("mmap guest RAM");
		exit(1);
	}
	memset(ram, 0, BENCH_RAM_SIZE); /* populate: no host faults in the timed part */
	uint64_t *pml4 = (uint64_t *)ram, *pdpt = (uint64_t *)(ram + 0x1000),
	         *pd = (uint64_t *)(ram + 0x2000);
	pml4[0] = 0x1000 | 0x3; /* P | RW */
	pdpt[0] = 0x2000 | 0x3;
	pd[0] = 0x000000 | 0x83; /* P | RW | PS: 2 MiB page */
	pd[1] = 0x200000 | 0x83;
	memcpy(ram + BENCH_CODE_GPA, code, len);
	return ram;
}

static int fail(const char *what)
{
	int e = errno;
	fprintf(stderr, "raw KVM: %s: %s\n", what, strerror(e));
	return -e;
}

int raw_vm_open(struct raw_vm *r)
{
	memset(r, 0, sizeof(*r));
	r->kvm_fd = r->vm_fd = r->vcpu_fd = -1;
	r->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (r->kvm_fd < 0)
		return fail("open /dev/kvm");
	int sz = ioctl(r->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0)
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	r->run_size = (size_t)sz;
	do
		r->vm_fd = ioctl(r->kvm_fd, KVM_CREATE_VM, 0);
	while (r->vm_fd < 0 && errno == EINTR);
	if (r->vm_fd < 0)
		return fail("KVM_CREATE_VM");
	return 0;
}

int raw_vm_split_irqchip(struct raw_vm *r)
{
	struct kvm_enable_cap c = {.cap = KVM_CAP_SPLIT_IRQCHIP, .args = {24}};
	if (ioctl(r->vm_fd, KVM_ENABLE_CAP, &c) < 0)
		return fail("KVM_ENABLE_CAP(SPLIT_IRQCHIP)");
	return 0;
}

int raw_vm_map(struct raw_vm *r, uint32_t slot, uint64_t gpa, void *host, uint64_t size)
{
	struct kvm_userspace_memory_region m = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)host,
	};
	if (ioctl(r->vm_fd, KVM_SET_USER_MEMORY_REGION, &m) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	return 0;
}

int raw_vcpu_create(struct raw_vm *r)
{
	r->vcpu_fd = ioctl(r->vm_fd, KVM_CREATE_VCPU, 0UL);
	if (r->vcpu_fd < 0)
		return fail("KVM_CREATE_VCPU");
	void *p = mmap(NULL, r->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->vcpu_fd, 0);
	if (p == MAP_FAILED)
		return fail("mmap kvm_run");
	r->run = p;
	return 0;
}

int raw_vcpu_cpuid(struct raw_vm *r)
{
	for (uint32_t n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = n;
		if (ioctl(r->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
			int e = errno;
			free(c);
			if (e == E2BIG)
				continue;
			errno = e;
			return fail("KVM_GET_SUPPORTED_CPUID");
		}
		free(r->cpuid);
		r->cpuid = c;
		if (ioctl(r->vcpu_fd, KVM_SET_CPUID2, c) < 0)
			return fail("KVM_SET_CPUID2");
		return 0;
	}
	errno = E2BIG;
	return fail("KVM_GET_SUPPORTED_CPUID");
}

static const struct kvm_cpuid_entry2 *cpuid_leaf(const struct kvm_cpuid2 *c, uint32_t fn)
{
	for (uint32_t i = 0; c && i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == 0)
			return &c->entries[i];
	return NULL;
}

static void seg_flat16(struct kvm_segment *s, uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffff;
	s->type = type;
	s->present = 1;
	s->s = 1;
}

int raw_vcpu_long_mode(struct raw_vm *r, uint64_t rip, bool xcr0)
{
	struct kvm_sregs sr;
	if (ioctl(r->vcpu_fd, KVM_GET_SREGS, &sr) < 0)
		return fail("KVM_GET_SREGS");
	const struct kvm_cpuid_entry2 *l1 = cpuid_leaf(r->cpuid, 1), *l7 = cpuid_leaf(r->cpuid, 7);
	uint64_t cr4 = (1u << 5) | (1u << 7) | (1u << 9); /* PAE | PGE | OSFXSR */
	if (l1 && (l1->ecx & (1u << 26)))
		cr4 |= 1u << 18; /* OSXSAVE */
	if (l7 && (l7->ebx & 1u))
		cr4 |= 1u << 16; /* FSGSBASE */
	seg_flat16(&sr.cs, 0xf);
	sr.cs.l = 1;
	seg_flat16(&sr.ds, 0x3);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	memset(&sr.tr, 0, sizeof(sr.tr));
	sr.tr.limit = 0xffff;
	sr.tr.type = 11;
	sr.tr.present = 1;
	memset(&sr.ldt, 0, sizeof(sr.ldt));
	sr.ldt.limit = 0xffff;
	sr.ldt.type = 2;
	sr.ldt.present = 1;
	sr.gdt.base = sr.idt.base = 0;
	sr.gdt.limit = sr.idt.limit = 0xffff;
	sr.cr0 = (1u << 0) | (1u << 4) | (1u << 16) | (1u << 31); /* PE | ET | WP | PG */
	sr.cr2 = sr.cr3 = sr.cr8 = 0;
	sr.cr4 = cr4;
	sr.efer = (1u << 0) | (1u << 8) | (1u << 10) | (1u << 11); /* SCE | LME | LMA | NXE */
	if (ioctl(r->vcpu_fd, KVM_SET_SREGS, &sr) < 0) {
		sr.cr4 &= ~(uint64_t)((1u << 18) | (1u << 16));
		if (ioctl(r->vcpu_fd, KVM_SET_SREGS, &sr) < 0)
			return fail("KVM_SET_SREGS");
	}
	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = rip;
	regs.rflags = 0x2;
	if (ioctl(r->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return fail("KVM_SET_REGS");
	if (xcr0) {
		const struct kvm_cpuid_entry2 *d = cpuid_leaf(r->cpuid, 0xd);
		uint64_t v = d ? (d->eax & 0x7) : 0;
		if (v & 1) {
			struct kvm_xcrs x;
			memset(&x, 0, sizeof(x));
			x.nr_xcrs = 1;
			x.xcrs[0].xcr = 0;
			x.xcrs[0].value = v;
			(void)ioctl(r->vcpu_fd, KVM_SET_XCRS, &x); /* libzhv ignores a refusal too */
		}
	}
	return 0;
}

void raw_vm_close(struct raw_vm *r)
{
	if (r->run)
		munmap(r->run, r->run_size);
	if (r->vcpu_fd >= 0)
		close(r->vcpu_fd);
	if (r->vm_fd >= 0)
		close(r->vm_fd);
	if (r->kvm_fd >= 0)
		close(r->kvm_fd);
	free(r->cpuid);
	memset(r, 0, sizeof(*r));
	r->kvm_fd = r->vm_fd = r->vcpu_fd = -1;
}

const char *raw_exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_IO: return "IO";
	case KVM_EXIT_MMIO: return "MMIO";
	case KVM_EXIT_HLT: return "HLT";
	case KVM_EXIT_SHUTDOWN: return "SHUTDOWN";
	case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
	case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
	case KVM_EXIT_INTR: return "INTR";
	default: return "other";
	}
}
