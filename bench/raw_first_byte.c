/* raw_first_byte.c: the raw-KVM baseline of bench/vmm_startup.sh, a
 * minimal VMM written with plain KVM ioctls (no libzhv) that boots the same
 * tiny guest as `zhv run` and QEMU, the same way: a multiboot v1 ELF32
 * entered in 32-bit protected mode with paging off.
 *
 * Usage: raw_first_byte [--split-irqchip] [--memory MIB] KERNEL.elf
 *        raw_first_byte --hold
 *
 * It does what a VMM must do for that guest and nothing more:
 *   read the ELF, check it is an x86 ELF32 executable;
 *   open /dev/kvm, KVM_GET_VCPU_MMAP_SIZE, KVM_CREATE_VM (bench/raw_kvm.c);
 *   mmap the guest RAM (MAP_NORESERVE, 16 MiB by default, as `zhv run
 *   --memory 16M` and `qemu -m 16`; --memory MIB changes it), copy the
 *   PT_LOAD segments in (fresh anonymous memory: .bss is zero already),
 *   KVM_SET_USER_MEMORY_REGION;
 *   KVM_CREATE_VCPU, mmap kvm_run;
 *   KVM_GET_SREGS, KVM_SET_SREGS (flat 4 GiB 32-bit code and data
 *   segments, CR0 = PE|ET, as multiboot 3.2 asks), KVM_SET_REGS (EIP = the
 *   ELF entry, EAX = the multiboot magic 0x2BADB002, EFLAGS = 2);
 *   KVM_RUN until the guest's `out` to COM1 (0x3f8): the byte goes to
 *   stdout with write(2) at once;
 *   KVM_RUN on until the `out` to the debug-exit port 0xf4 and exit with
 *   (value << 1) | 1, as zhv and QEMU's isa-debug-exit do (33 for the tiny
 *   guest). The kernel closes the VM and frees its memory at exit.
 * No CPUID (a 32-bit guest without paging needs none), no multiboot
 * information structure (EBX = 0: the tiny guest reads nothing), no
 * devices, no threads, no GDT in guest memory (the guest never reloads a
 * segment register). Ports other than 0x3f8 and 0xf4 are ignored (reads
 * give all-ones), HLT ends the run with status 0, anything else is an error
 * (status 1, reason on stderr).
 *
 * --split-irqchip adds KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP) after
 * KVM_CREATE_VM, so that the vCPU has KVM's in-kernel local APIC as
 * libzhv's do. It is a diagnostic variant: without an in-kernel LAPIC,
 * KVM_CREATE_VCPU flips the kernel-wide static key kvm_has_noapic_vcpu when
 * no other such vCPU exists on the host, which patches kernel text and
 * costs about 0.2 ms here (see create_destroy.c); libzhv never pays that.
 *
 * --hold (used by vmm_startup.sh around the whole benchmark) creates a VM
 * and one vCPU without an in-kernel LAPIC and sleeps until killed (or its
 * parent dies, or an hour passes): while it lives the static key stays on,
 * so no contender pays for flipping it, as in create_destroy's "holder".
 *
 * Guest CPL0 code is emulated on this machine's KVM (kvm_pvm), about 1 us
 * per instruction; the tiny guest runs two instructions before its first
 * `out`. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raw_kvm.h"

#define COM1 0x3f8
#define DEBUG_EXIT 0xf4
#define MB_BOOT_MAGIC 0x2BADB002u

/* ELF32 (System V gABI), little-endian x86: only what a loader needs. */
struct elf32_ehdr {
	uint8_t ident[16];
	uint16_t type, machine;
	uint32_t version, entry, phoff, shoff, flags;
	uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
struct elf32_phdr {
	uint32_t type, offset, vaddr, paddr, filesz, memsz, flags, align;
};
#define PT_LOAD 1
#define EM_386 3
#define ET_EXEC 2

static void die(const char *fmt, const char *arg)
{
	fputs("raw_first_byte: ", stderr);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

/* Read the whole (small) kernel file. */
static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		die("%s: cannot open", path);
	if (st.st_size <= 0 || st.st_size > (64 << 20))
		die("%s: empty or larger than 64 MiB", path);
	uint8_t *buf = malloc((size_t)st.st_size);
	if (!buf)
		die("%s: out of memory", path);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("%s: read error", path);
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return buf;
}

/* Copy the PT_LOAD segments into guest RAM (physical = p_paddr, as
 * multiboot loaders do); returns the entry point. */
static uint32_t load_elf32(const char *path, const uint8_t *f, size_t len, uint8_t *ram,
                           uint64_t ram_size)
{
	const struct elf32_ehdr *eh = (const void *)f;
	if (len < sizeof(*eh) || memcmp(eh->ident, "\177ELF", 4) != 0 || eh->ident[4] != 1 ||
	    eh->ident[5] != 1 || eh->machine != EM_386 || eh->type != ET_EXEC ||
	    eh->phentsize != sizeof(struct elf32_phdr))
		die("%s: not a little-endian x86 ELF32 executable", path);
	if ((uint64_t)eh->phoff + (uint64_t)eh->phnum * sizeof(struct elf32_phdr) > len)
		die("%s: truncated program headers", path);
	unsigned loaded = 0;
	for (unsigned i = 0; i < eh->phnum; i++) {
		struct elf32_phdr ph;
		memcpy(&ph, f + eh->phoff + i * sizeof(ph), sizeof(ph));
		if (ph.type != PT_LOAD || ph.memsz == 0)
			continue;
		if (ph.filesz > ph.memsz || (uint64_t)ph.offset + ph.filesz > len ||
		    (uint64_t)ph.paddr + ph.memsz > ram_size)
			die("%s: a PT_LOAD segment does not fit the file or guest RAM", path);
		memcpy(ram + ph.paddr, f + ph.offset, ph.filesz);
		/* (fresh anonymous memory is zero already: no memset for .bss) */
		loaded++;
	}
	if (!loaded)
		die("%s: no PT_LOAD segment", path);
	return eh->entry;
}

static void seg_flat32(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->db = 1;
	s->g = 1;
}

/* --hold: keep a no-LAPIC vCPU alive (see the top of this file). */
static int hold(void)
{
	struct raw_vm vm;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (raw_vm_open(&vm) < 0 || raw_vcpu_create(&vm) < 0)
		return 1;
	alarm(3600);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	uint64_t ram_mib = 16;
	int split = 0, i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--hold") && argc == 2)
			return hold();
		if (!strcmp(argv[i], "--split-irqchip"))
			split = 1;
		else if (!strcmp(argv[i], "--memory") && i + 1 < argc)
			ram_mib = strtoull(argv[++i], NULL, 0);
		else
			break;
	}
	if (i + 1 != argc || ram_mib < 2 || ram_mib > 3072) {
		fputs("usage: raw_first_byte [--split-irqchip] [--memory MIB] KERNEL.elf\n"
		      "       raw_first_byte --hold\n", stderr);
		return 2;
	}
	const char *path = argv[i];
	uint64_t ram_size = ram_mib << 20;

	size_t flen;
	uint8_t *file = read_file(path, &flen);

	struct raw_vm vm;
	if (raw_vm_open(&vm) < 0)
		return 1;
	if (split && raw_vm_split_irqchip(&vm) < 0)
		return 1;
	uint8_t *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
	                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ram == MAP_FAILED)
		die("mmap guest RAM: %s", strerror(errno));
	uint32_t entry = load_elf32(path, file, flen, ram, ram_size);
	free(file);
	if (raw_vm_map(&vm, 0, 0, ram, ram_size) < 0 || raw_vcpu_create(&vm) < 0)
		return 1;

	struct kvm_sregs sr;
	if (ioctl(vm.vcpu_fd, KVM_GET_SREGS, &sr) < 0)
		die("KVM_GET_SREGS: %s", strerror(errno));
	seg_flat32(&sr.cs, 0x08, 0xb); /* code, execute/read, accessed */
	seg_flat32(&sr.ds, 0x10, 0x3); /* data, read/write, accessed */
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	sr.cr0 = (1u << 0) | (1u << 4); /* PE | ET; paging off */
	sr.cr3 = sr.cr4 = sr.efer = 0;
	if (ioctl(vm.vcpu_fd, KVM_SET_SREGS, &sr) < 0)
		die("KVM_SET_SREGS: %s", strerror(errno));
	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rax = MB_BOOT_MAGIC;
	regs.rflags = 0x2;
	if (ioctl(vm.vcpu_fd, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS: %s", strerror(errno));

	struct kvm_run *run = vm.run;
	for (;;) {
		int ret = raw_run(&vm);
		if (ret == -EINTR || ret == -EAGAIN)
			continue;
		if (ret < 0)
			die("KVM_RUN: %s", strerror(-ret));
		switch (run->exit_reason) {
		case KVM_EXIT_IO: {
			uint8_t *data = (uint8_t *)run + run->io.data_offset;
			size_t n = (size_t)run->io.size * run->io.count;
			if (run->io.direction == KVM_EXIT_IO_IN) {
				memset(data, 0xff, n);
			} else if (run->io.port == COM1) {
				for (uint32_t k = 0; k < run->io.count; k++) {
					ssize_t w = write(STDOUT_FILENO, data + (size_t)k * run->io.size, 1);
					(void)w; /* a closed stdout must not stop the guest */
				}
			} else if (run->io.port == DEBUG_EXIT) {
				uint32_t v = 0;
				memcpy(&v, data, run->io.size <= 4 ? run->io.size : 4);
				return (int)(((v << 1) | 1) & 0xff); /* as isa-debug-exit */
			}
			break;
		}
		case KVM_EXIT_HLT:
			return 0;
		default:
			die("unexpected exit %s", raw_exit_name(run->exit_reason));
		}
	}
}
