/* loader.c: libFuzzer target of the kernel loaders (vmm/loader/: format
 * detection, multiboot v1 with ELF32/ELF64/a.out-kludge, bzImage, PVH,
 * plain ELF64, flat) through loader_load(), on guest RAM of 16 MiB. The
 * input is one byte of options, then the kernel file:
 *   bit 0: an initrd (4 KiB); bit 1: one module, bit 2: a second one (with
 *   arguments); bit 3: a command line; bits 4-5: RAM of 16, 8, 2 or 1 MiB
 *   (the same buffer: only the VM's idea of its size changes).
 * Every load must end in success (with a format and an entry point in
 * RAM) or an error with a message. */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

#include "../vmm/loader/elf.c"
#include "../vmm/loader/flat.c"
#include "../vmm/loader/linux.c"
#include "../vmm/loader/loader.c"
#include "../vmm/loader/multiboot.c"

#define RAM_MAX (16u << 20)

static struct vm fuzz_vm;

/* As the VMM's: [0, low_ram) then from 4 GiB (no high RAM here). */
void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	uint64_t end;

	if (!vm->ram || __builtin_add_overflow(gpa, len, &end) || end > vm->low_ram)
		return NULL;
	return vm->ram + gpa;
}

/* A file only this process sees, named by /proc/self/fd/N. */
static int memfile(const char *name, char *path, size_t pathlen)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		abort();
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char kernel_path[64], initrd_path[64], mod_path[64];
	static int kernel_fd = -1;
	static const uint64_t ram_sizes[4] = { RAM_MAX, 8u << 20, 2u << 20, 1u << 20 };
	struct fuzz_reader r = { data, size };
	uint8_t opt = fz8(&r);
	char err[256];
	struct boot_state out;

	if (kernel_fd < 0) {
		static uint8_t blob[4096];
		int fd;

		kernel_fd = memfile("kernel", kernel_path, sizeof(kernel_path));
		memset(blob, 0x5a, sizeof(blob));
		fd = memfile("initrd", initrd_path, sizeof(initrd_path));
		if (write(fd, blob, sizeof(blob)) != (ssize_t)sizeof(blob))
			abort();
		fd = memfile("module", mod_path, sizeof(mod_path));
		if (write(fd, blob, 100) != 100)
			abort();
		fuzz_vm.ram = malloc(RAM_MAX);
		if (!fuzz_vm.ram)
			abort();
	}
	if (ftruncate(kernel_fd, 0) < 0 ||
	    (r.n && pwrite(kernel_fd, r.p, r.n, 0) != (ssize_t)r.n))
		abort();
	fuzz_vm.ram_size = fuzz_vm.low_ram = ram_sizes[(opt >> 4) & 3];

	struct boot_module mods[2] = { { mod_path, NULL }, { mod_path, "arg1 arg2" } };
	struct boot_request req = {
		.kernel_path = kernel_path,
		.cmdline = (opt & 8) ? "console=ttyS0 root=/dev/vda" : NULL,
		.initrd_path = (opt & 1) ? initrd_path : NULL,
		.modules = mods,
		.nmodules = (opt & 4) ? 2 : (opt & 2) ? 1 : 0,
	};
	err[0] = 'x';
	int ret = loader_load(&fuzz_vm, &req, &out, err, sizeof(err));
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (fuzz_verbose())
		fprintf(stderr, "loader: %d format %d rip %#llx: %s\n", ret, (int)out.format,
		        (unsigned long long)out.regs.rip, err);
	if (ret < 0) {
		FUZZ_CHECK(err[0] != '\0');
	} else {
		FUZZ_CHECK(ret == 0 && out.format >= KERNEL_MULTIBOOT && out.format <= KERNEL_FLAT);
		FUZZ_CHECK(out.regs.rip < fuzz_vm.low_ram);
	}
	return 0;
}
