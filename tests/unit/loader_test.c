/* loader_test.c: the kernel loaders on a fake guest RAM: every format, every bad file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every pread of the loader is counted (the loader's reads, whatever its
 * version: the work a crafted file costs, not the time it takes). */
static unsigned long long preads;
static ssize_t counted_pread(int fd, void *buf, size_t n, off_t off)
{
	preads++;
	return pread(fd, buf, n, off);
}
#define pread counted_pread

/* The loader itself, compiled into this test (its statics included). */
#include "../../vmm/loader/elf.c"
#include "../../vmm/loader/flat.c"
#include "../../vmm/loader/linux.c"
#include "../../vmm/loader/loader.c"
#include "../../vmm/loader/multiboot.c"

/* ---- fake machine ----------------------------------------------------------- */

#define MIB (1ull << 20)
#define RAM_SIZE (64 * MIB)
#define RAM_FILL 0xAA

static struct vm test_vm;
static enum kernel_format want_format; /* KERNEL_AUTO but where a test asks */
/* Whether the kernel under test leaves the preferred boot-data addresses
 * free (then GDT 0x1000, page tables 0x2000, stack top 0x9000), as every
 * kernel but the placement tests' does. */
static bool std_layout;

/* The core's accessor, over a malloc'd RAM: [0, low_ram) then 4 GiB up. */
void *vm_gpa(struct vm *vm, uint64_t gpa, uint64_t len)
{
	uint64_t end;
	if (!vm->ram || __builtin_add_overflow(gpa, len, &end))
		return NULL;
	if (end <= vm->low_ram)
		return vm->ram + gpa;
	uint64_t high = vm->ram_size - vm->low_ram;
	if (gpa >= VM_HIGH_RAM_BASE && end - VM_HIGH_RAM_BASE <= high)
		return vm->ram + vm->low_ram + (gpa - VM_HIGH_RAM_BASE);
	return NULL;
}

static void *ram(uint64_t gpa, uint64_t len)
{
	void *p = vm_gpa(&test_vm, gpa, len);
	assert_non_null(p);
	return p;
}

static uint32_t ram32(uint64_t gpa)
{
	return ld32(ram(gpa, 4));
}

static uint64_t ram64(uint64_t gpa)
{
	return ld64(ram(gpa, 8));
}

static const char *ram_str(uint64_t gpa)
{
	const char *s = ram(gpa, 1);
	assert_non_null(memchr(s, 0, test_vm.low_ram - gpa));
	return s;
}

static void vm_with_ram(uint64_t size)
{
	free(test_vm.ram);
	memset(&test_vm, 0, sizeof(test_vm));
	test_vm.ram = malloc(size);
	assert_non_null(test_vm.ram);
	memset(test_vm.ram, RAM_FILL, size);
	test_vm.ram_size = size;
	test_vm.low_ram = size < VM_LOW_RAM_MAX ? size : VM_LOW_RAM_MAX;
}

/* ---- temporary files ---------------------------------------------------------- */

static char tmpdir[64];
static char paths[64][128];
static unsigned npaths;

static const char *tpath(const char *name)
{
	char *p = paths[npaths++ % 64];
	snprintf(p, 128, "%s/%s", tmpdir, name);
	return p;
}

static const char *write_file(const char *name, const void *data, size_t len)
{
	const char *p = tpath(name);
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	if (len)
		assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return p;
}

/* A file of (size) zero bytes that takes no disk space. */
static const char *sparse_file(const char *name, uint64_t size)
{
	const char *p = write_file(name, "", 0);
	assert_int_equal(truncate(p, (off_t)size), 0);
	return p;
}

static void fill_pattern(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int group_setup(void **state)
{
	strcpy(tmpdir, "/tmp/loader_test.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	char p[400];
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
	free(test_vm.ram);
	test_vm.ram = NULL;
	return 0;
}

static int test_setup(void **state)
{
	vm_with_ram(RAM_SIZE);
	want_format = KERNEL_AUTO;
	std_layout = true;
	return 0;
}

/* ---- building test kernels ------------------------------------------------------ */

struct tseg {
	uint32_t type;
	uint64_t paddr, vaddr, memsz;
	const void *data;
	uint64_t filesz;
};

#define IMG_MAX (256 * 1024)
#define SEG_DATA 0x200 /* first segment's file offset */

/* An ELF of (cls) with (n) program headers right after the ELF header and
 * their data from SEG_DATA on; (sect_note), if given, becomes a SHT_NOTE
 * section with a section header table at the end. */
static uint8_t *make_elf(int cls, uint16_t machine, uint64_t entry, const struct tseg *s,
                         size_t n, const void *sect_note, size_t note_len, size_t *len)
{
	uint8_t *b = calloc(1, IMG_MAX);
	bool is64 = cls == ELF_CLASS64;
	size_t ehsize = is64 ? 64 : 52, phsize = is64 ? 56 : 32;
	size_t off = SEG_DATA;

	assert_non_null(b);
	memcpy(b, "\177ELF", 4);
	b[4] = (uint8_t)cls;
	b[5] = 1;
	b[6] = 1;
	st16(b + 16, 2); /* ET_EXEC */
	st16(b + 18, machine);
	st32(b + 20, 1);
	if (is64) {
		st64(b + 24, entry);
		st64(b + 32, ehsize);
		st16(b + 52, (uint16_t)ehsize);
		st16(b + 54, (uint16_t)phsize);
		st16(b + 56, (uint16_t)n);
	} else {
		st32(b + 24, (uint32_t)entry);
		st32(b + 28, (uint32_t)ehsize);
		st16(b + 40, (uint16_t)ehsize);
		st16(b + 42, (uint16_t)phsize);
		st16(b + 44, (uint16_t)n);
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = b + ehsize + i * phsize;
		if (s[i].filesz)
			memcpy(b + off, s[i].data, s[i].filesz);
		if (is64) {
			st32(p, s[i].type);
			st32(p + 4, 7);
			st64(p + 8, off);
			st64(p + 16, s[i].vaddr);
			st64(p + 24, s[i].paddr);
			st64(p + 32, s[i].filesz);
			st64(p + 40, s[i].memsz);
			st64(p + 48, 0x1000);
		} else {
			st32(p, s[i].type);
			st32(p + 4, (uint32_t)off);
			st32(p + 8, (uint32_t)s[i].vaddr);
			st32(p + 12, (uint32_t)s[i].paddr);
			st32(p + 16, (uint32_t)s[i].filesz);
			st32(p + 20, (uint32_t)s[i].memsz);
			st32(p + 24, 7);
			st32(p + 28, 0x1000);
		}
		off = align_up(off + s[i].filesz, 16);
	}
	if (sect_note) {
		assert_true(is64);
		size_t note_off = off;
		memcpy(b + off, sect_note, note_len);
		off = align_up(off + note_len, 16);
		st64(b + 40, off); /* e_shoff */
		st16(b + 58, 64);
		st16(b + 60, 2);
		uint8_t *sh = b + off + 64; /* [0] null, [1] the note */
		st32(sh + 4, ELF_SHT_NOTE);
		st64(sh + 24, note_off);
		st64(sh + 32, note_len);
		off += 128;
	}
	assert_true(off <= IMG_MAX);
	*len = off;
	return b;
}

/* ELF64 program header (i) field at (field_off) of an image from make_elf. */
static uint8_t *phdr64(uint8_t *img, size_t i, size_t field_off)
{
	return img + 64 + 56 * i + field_off;
}

/* A multiboot header (spec 3.1.1) with a valid checksum. */
static void mb_header(uint8_t *p, uint32_t flags, uint32_t header_addr, uint32_t load_addr,
                      uint32_t load_end, uint32_t bss_end, uint32_t entry)
{
	st32(p, MB_HEADER_MAGIC);
	st32(p + 4, flags);
	st32(p + 8, (uint32_t)(0u - MB_HEADER_MAGIC - flags));
	st32(p + 12, header_addr);
	st32(p + 16, load_addr);
	st32(p + 20, load_end);
	st32(p + 24, bss_end);
	st32(p + 28, entry);
}

/* Xen PHYS32_ENTRY note, optionally after a GNU note to be skipped. */
static size_t pvh_note(uint8_t *p, uint64_t entry, size_t descsz, bool gnu_first)
{
	size_t n = 0;
	if (gnu_first) {
		st32(p, 4);
		st32(p + 4, 20);
		st32(p + 8, 3); /* NT_GNU_BUILD_ID */
		memcpy(p + 12, "GNU", 4);
		memset(p + 16, 0x5A, 20);
		n = 36;
	}
	st32(p + n, 4);
	st32(p + n + 4, (uint32_t)descsz);
	st32(p + n + 8, 18);
	memcpy(p + n + 12, "Xen", 4);
	if (descsz == 8)
		st64(p + n + 16, entry);
	else
		st32(p + n + 16, (uint32_t)entry);
	return n + 16 + align_up(descsz, 4);
}

/* ---- running the loader ----------------------------------------------------------- */

static struct boot_state bs;
static char err[512];

static int load(const char *kernel, const char *cmdline, const char *initrd,
                const struct boot_module *mods, size_t nmods)
{
	struct boot_request req = {
		.kernel_path = kernel, .cmdline = cmdline, .initrd_path = initrd,
		.modules = mods, .nmodules = nmods, .format = want_format,
	};
	memset(&bs, 0x5C, sizeof(bs));
	err[0] = '\0';
	return loader_load(&test_vm, &req, &bs, err, sizeof(err));
}

static void load_ok(const char *kernel, const char *cmdline, const char *initrd,
                    const struct boot_module *mods, size_t nmods)
{
	int ret = load(kernel, cmdline, initrd, mods, nmods);
	if (ret != 0)
		print_error("loader_load: %d: %s\n", ret, err);
	assert_int_equal(ret, 0);
	assert_string_equal(err, "");
}

/* A bad input: an error, a message containing (what), no crash. */
static void load_fails(const char *kernel, const char *initrd, const struct boot_module *mods,
                       size_t nmods, const char *what)
{
	int ret = load(kernel, "x", initrd, mods, nmods);
	if (ret >= 0 || !strstr(err, what))
		print_error("loader_load: %d: \"%s\" (want \"%s\")\n", ret, err, what);
	assert_true(ret < 0);
	assert_non_null(strstr(err, what));
	if (getenv("LOADER_TEST_VERBOSE")) /* to read every message */
		fprintf(stderr, "# %d: %s\n", ret, err);
}

static void check_seg(const zhv_segment_t *s, uint16_t sel, uint8_t type, int l, int db)
{
	assert_int_equal(s->selector, sel);
	assert_int_equal(s->type, type);
	assert_int_equal(s->base, 0);
	assert_int_equal(s->limit, 0xFFFFFFFF);
	assert_int_equal(s->present, 1);
	assert_int_equal(s->s, 1);
	assert_int_equal(s->g, 1);
	assert_int_equal(s->dpl, 0);
	assert_int_equal(s->l, l);
	assert_int_equal(s->db, db);
}

static void check_common(void)
{
	assert_int_equal(bs.regs.rflags, 0x2);
	assert_int_equal(bs.sregs.idt.limit, 0);
	if (std_layout)
		assert_int_equal(bs.sregs.gdt.base, LOADER_GDT);
	assert_int_equal(bs.sregs.gdt.base % LOADER_PAGE, 0);
	assert_true(bs.sregs.gdt.base >= LOADER_PAGE);
	assert_int_equal(bs.regs.rsp % LOADER_PAGE, 0);
	assert_true(bs.regs.rsp >= 2 * LOADER_PAGE);
	assert_int_equal(bs.sregs.tr.type, 11);
	assert_int_equal(bs.sregs.tr.present, 1);
	assert_int_equal(bs.sregs.apic_base, 0xFEE00900);
	assert_int_equal(bs.sregs.cr2, 0);
	assert_int_equal(bs.sregs.cr8, 0);
}

/* 32-bit protected mode, paging off, GDT code 0x08 / data 0x10. */
static void check_prot32(uint64_t eip)
{
	check_common();
	assert_int_equal(bs.regs.rip, eip);
	check_seg(&bs.sregs.cs, 0x08, 0xB, 0, 1);
	check_seg(&bs.sregs.ds, 0x10, 0x3, 0, 1);
	check_seg(&bs.sregs.es, 0x10, 0x3, 0, 1);
	check_seg(&bs.sregs.fs, 0x10, 0x3, 0, 1);
	check_seg(&bs.sregs.gs, 0x10, 0x3, 0, 1);
	check_seg(&bs.sregs.ss, 0x10, 0x3, 0, 1);
	assert_int_equal(bs.sregs.cr0 & (CR0_PE | CR0_PG), CR0_PE);
	assert_int_equal(bs.sregs.cr4, 0);
	assert_int_equal(bs.sregs.efer, 0);
	assert_int_equal(bs.sregs.gdt.limit, 23);
	uint64_t gdt = bs.sregs.gdt.base;
	assert_int_equal(ram64(gdt), 0);
	assert_int_equal(ram64(gdt + 8), 0x00CF9B000000FFFFull);
	assert_int_equal(ram64(gdt + 16), 0x00CF93000000FFFFull);
}

/* Walk the guest's page tables from CR3 (4-level, 2 MiB leaves). */
static uint64_t translate(uint64_t va)
{
	uint64_t pml4e = ram64((bs.sregs.cr3 & ~0xFFFull) + 8 * ((va >> 39) & 511));
	assert_true(pml4e & 1);
	uint64_t pdpte = ram64((pml4e & 0xFFFFFFFFF000ull) + 8 * ((va >> 30) & 511));
	assert_true(pdpte & 1);
	assert_false(pdpte & 0x80); /* no 1 GiB pages on this KVM */
	uint64_t pde = ram64((pdpte & 0xFFFFFFFFF000ull) + 8 * ((va >> 21) & 511));
	assert_true(pde & 1);
	assert_true(pde & 0x80);
	assert_true(pde & 2);
	return (pde & 0xFFFFFFE00000ull) | (va & 0x1FFFFF);
}

/* 64-bit mode, code 0x10 / data 0x18, identity map of the first 4 GiB. */
static void check_long(uint64_t rip, bool linux)
{
	check_common();
	assert_int_equal(bs.regs.rip, rip);
	check_seg(&bs.sregs.cs, 0x10, 0xB, 1, 0);
	check_seg(&bs.sregs.ds, 0x18, 0x3, 0, 1);
	check_seg(&bs.sregs.es, 0x18, 0x3, 0, 1);
	check_seg(&bs.sregs.ss, 0x18, 0x3, 0, 1);
	uint64_t cr0 = CR0_PE | CR0_PG | CR0_ET;
	assert_int_equal(bs.sregs.cr0 & cr0, cr0);
	assert_true(bs.sregs.cr4 & CR4_PAE);
	assert_int_equal(bs.sregs.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
	if (linux) {
		assert_int_equal(bs.sregs.cr4, CR4_PAE);
		assert_int_equal(bs.sregs.efer, EFER_LME | EFER_LMA);
	}
	if (std_layout) {
		assert_int_equal(bs.sregs.cr3, LOADER_PML4);
		assert_int_equal(bs.regs.rsp, LOADER_STACK_TOP);
	}
	assert_int_equal(bs.sregs.cr3 % LOADER_PAGE, 0);
	assert_int_equal(bs.sregs.gdt.limit, 31);
	uint64_t gdt = bs.sregs.gdt.base;
	assert_int_equal(ram64(gdt + 16), 0x00AF9B000000FFFFull);
	assert_int_equal(ram64(gdt + 24), 0x00CF93000000FFFFull);
	uint64_t probes[] = {0, 0x1000, rip, 0x1234567, test_vm.low_ram - 1, 0xFEE00000,
	                     0xFFFFFFFF};
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		assert_int_equal(translate(probes[i]), probes[i]);
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* ---- e820 ---------------------------------------------------------------------------- */

static void test_memory_map(void **state)
{
	struct e820_entry m[8];
	struct vm v = {.low_ram = 64 * MIB, .ram_size = 64 * MIB};

	assert_int_equal(loader_memory_map(&v, m, 8), 3);
	assert_int_equal(m[0].addr, 0);
	assert_int_equal(m[0].size, 0x9FC00);
	assert_int_equal(m[0].type, E820_RAM);
	assert_int_equal(m[1].addr, 0x9FC00);
	assert_int_equal(m[1].size, 0x100000 - 0x9FC00);
	assert_int_equal(m[1].type, E820_RESERVED);
	assert_int_equal(m[2].addr, 0x100000);
	assert_int_equal(m[2].size, 63 * MIB);
	assert_int_equal(m[2].type, E820_RAM);

	v.ram_size = 8192 * MIB; /* 3 GiB low, 5 GiB from 4 GiB */
	v.low_ram = VM_LOW_RAM_MAX;
	assert_int_equal(loader_memory_map(&v, m, 8), 4);
	assert_int_equal(m[2].size, VM_LOW_RAM_MAX - 0x100000);
	assert_int_equal(m[3].addr, 0x100000000ull);
	assert_int_equal(m[3].size, 5120 * MIB);
	assert_int_equal(m[3].type, E820_RAM);
	assert_int_equal(loader_memory_map(&v, m, 2), 2);
	assert_int_equal(m[1].type, E820_RESERVED);
}

/* ---- multiboot ------------------------------------------------------------------------- */

#define MB_KBASE 0x100000u
#define MB_KFILE 0x300u
#define MB_KMEM 0x3000u
#define MB_ENTRY (MB_KBASE + 0x40)

/* The multiboot information: flags, memory, cmdline, mmap; returns its
 * address after checking it lies in RAM, outside page 0 and (kernel). */
static uint64_t check_mbi(const char *want_cmdline, uint64_t kbase, uint64_t kmem)
{
	assert_int_equal(bs.format, KERNEL_MULTIBOOT);
	assert_int_equal(bs.regs.rax, 0x2BADB002);
	uint64_t mbi = bs.regs.rbx;
	assert_true(mbi >= 0x1000);
	assert_false(overlaps(mbi, MBI_SIZE, kbase, kmem));
	assert_false(overlaps(mbi, MBI_SIZE, LOADER_BIOS, LOADER_1M - LOADER_BIOS));
	uint32_t flags = ram32(mbi);
	uint32_t want = MBI_MEM | MBI_CMDLINE | MBI_MODS | MBI_MMAP;
	assert_int_equal(flags & want, want);
	assert_int_equal(ram32(mbi + 4), 639);
	assert_int_equal(ram32(mbi + 8), (RAM_SIZE - MIB) / 1024);
	uint32_t cl = ram32(mbi + 16);
	assert_true(cl >= 0x1000);
	assert_false(overlaps(cl, strlen(want_cmdline) + 1, kbase, kmem));
	assert_string_equal(ram_str(cl), want_cmdline);

	struct e820_entry m[8];
	size_t n = loader_memory_map(&test_vm, m, 8);
	assert_int_equal(ram32(mbi + 44), n * 24);
	uint64_t mm = ram32(mbi + 48);
	assert_false(overlaps(mm, n * 24, kbase, kmem));
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(ram32(mm + 24 * i), 20);
		assert_int_equal(ram64(mm + 24 * i + 4), m[i].addr);
		assert_int_equal(ram64(mm + 24 * i + 12), m[i].size);
		assert_int_equal(ram32(mm + 24 * i + 20), m[i].type);
	}
	assert_string_equal(ram_str(ram32(mbi + 64)), "zhv");
	return mbi;
}

static void check_mb_image(const uint8_t *code)
{
	assert_memory_equal(ram(MB_KBASE, MB_KFILE), code, MB_KFILE);
	const uint8_t *bss = ram(MB_KBASE + MB_KFILE, MB_KMEM - MB_KFILE);
	for (size_t i = 0; i < MB_KMEM - MB_KFILE; i++)
		assert_int_equal(bss[i], 0);
}

static void test_multiboot_elf32(void **state)
{
	uint8_t code[MB_KFILE], m1[5000], m2[10];
	fill_pattern(code, sizeof(code), 1);
	fill_pattern(m1, sizeof(m1), 2);
	fill_pattern(m2, sizeof(m2), 3);
	mb_header(code, MB_FLAG_ALIGN | MB_FLAG_MEMINFO, 0, 0, 0, 0, 0);
	struct tseg s = {ELF_PT_LOAD, MB_KBASE, MB_KBASE, MB_KMEM, code, MB_KFILE};
	size_t len;
	uint8_t *img = make_elf(ELF_CLASS32, ELF_EM_386, MB_ENTRY, &s, 1, NULL, 0, &len);
	const char *k = write_file("mb32.elf", img, len);
	free(img);
	const char *p1 = write_file("mod1.bin", m1, sizeof(m1));
	const char *p2 = write_file("mod2.bin", m2, sizeof(m2));
	struct boot_module mods[] = {{p1, "a b"}, {p2, NULL}};

	load_ok(k, "console=ttyS0 x", NULL, mods, 2);
	check_prot32(MB_ENTRY);
	check_mb_image(code);
	char want[256];
	snprintf(want, sizeof(want), "%s console=ttyS0 x", k);
	uint64_t mbi = check_mbi(want, MB_KBASE, MB_KMEM);

	assert_int_equal(ram32(mbi + 20), 2);
	uint64_t ml = ram32(mbi + 24);
	uint32_t s0 = ram32(ml), e0 = ram32(ml + 4), s1 = ram32(ml + 16), e1 = ram32(ml + 20);
	assert_int_equal(s0 % 4096, 0);
	assert_true(s0 >= MB_KBASE + MB_KMEM);
	assert_int_equal(e0 - s0, sizeof(m1));
	assert_int_equal(s1 % 4096, 0);
	assert_true(s1 >= e0);
	assert_int_equal(e1 - s1, sizeof(m2));
	assert_memory_equal(ram(s0, sizeof(m1)), m1, sizeof(m1));
	assert_memory_equal(ram(s1, sizeof(m2)), m2, sizeof(m2));
	snprintf(want, sizeof(want), "%s a b", p1);
	assert_string_equal(ram_str(ram32(ml + 8)), want);
	assert_string_equal(ram_str(ram32(ml + 24)), p2);
	/* The information block overlaps neither module. */
	assert_false(overlaps(mbi, MBI_SIZE, s0, e1 - s0));
	assert_false(overlaps(ml, 32, s0, e1 - s0));
	assert_false(overlaps(ml, 32, MB_KBASE, MB_KMEM));
}

/* Same kernel with the address fields (flag 16): the a.out kludge path
 * loads it the same way; no cmdline: the command line is the path alone. */
static void test_multiboot_elf32_address_fields(void **state)
{
	uint8_t code[MB_KFILE];
	fill_pattern(code, sizeof(code), 4);
	/* Header at the segment's start: header_addr == load_addr. */
	mb_header(code, MB_FLAG_ALIGN | MB_FLAG_MEMINFO | MB_FLAG_AOUT, MB_KBASE, MB_KBASE,
	          MB_KBASE + MB_KFILE, MB_KBASE + MB_KMEM, MB_ENTRY);
	struct tseg s = {ELF_PT_LOAD, MB_KBASE, MB_KBASE, MB_KMEM, code, MB_KFILE};
	size_t len;
	uint8_t *img = make_elf(ELF_CLASS32, ELF_EM_386, MB_ENTRY, &s, 1, NULL, 0, &len);
	const char *k = write_file("mb32a.elf", img, len);
	free(img);

	load_ok(k, NULL, NULL, NULL, 0);
	check_prot32(MB_ENTRY);
	check_mb_image(code);
	uint64_t mbi = check_mbi(k, MB_KBASE, MB_KMEM);
	assert_int_equal(ram32(mbi + 20), 0); /* no modules */
	/* Low memory was free: the information sits in the low area. */
	assert_true(mbi >= LOADER_INFO && mbi < LOADER_BIOS);
}

/* A raw image with the a.out kludge: header at file offset 0x40. */
static void test_multiboot_aout_kludge(void **state)
{
	static uint8_t img[0x1000];
	const uint32_t base = 0x200000;
	fill_pattern(img, sizeof(img), 5);
	mb_header(img + 0x40, MB_FLAG_MEMINFO | MB_FLAG_AOUT, base + 0x40, base, 0, base + 0x10000,
	          base + 0x80);
	const char *k = write_file("aout.bin", img, sizeof(img));

	load_ok(k, "hello", NULL, NULL, 0);
	check_prot32(base + 0x80);
	assert_memory_equal(ram(base, sizeof(img)), img, sizeof(img));
	const uint8_t *bss = ram(base + sizeof(img), 0x10000 - sizeof(img));
	for (size_t i = 0; i < 0x10000 - sizeof(img); i++)
		assert_int_equal(bss[i], 0);
	char want[256];
	snprintf(want, sizeof(want), "%s hello", k);
	check_mbi(want, base, 0x10000);

	/* load_end_addr bounds the copy; the rest up to bss_end is zeroed. */
	vm_with_ram(RAM_SIZE);
	mb_header(img, MB_FLAG_AOUT, base, base, base + 0x800, base + 0x2000, base + 0x100);
	k = write_file("aout2.bin", img, sizeof(img));
	load_ok(k, NULL, NULL, NULL, 0);
	check_prot32(base + 0x100);
	assert_memory_equal(ram(base, 0x800), img, 0x800);
	assert_int_equal(ram32(base + 0x800), 0);
	assert_int_equal(ram32(base + 0x1FFC), 0);
	assert_int_equal(*(uint8_t *)ram(base + 0x2000, 1), RAM_FILL);
}

/* An ELF64 multiboot kernel: still loaded by program headers, entered in
 * 32-bit protected mode (its own trampoline switches to long mode). */
static void test_multiboot_elf64(void **state)
{
	uint8_t code[MB_KFILE];
	fill_pattern(code, sizeof(code), 6);
	mb_header(code, MB_FLAG_ALIGN | MB_FLAG_MEMINFO, 0, 0, 0, 0, 0);
	struct tseg s = {ELF_PT_LOAD, MB_KBASE, 0xFFFFFFFF80000000ull, MB_KMEM, code, MB_KFILE};
	size_t len;
	/* e_entry is virtual: translated through the segment to physical. */
	uint8_t *img = make_elf(ELF_CLASS64, ELF_EM_X86_64, 0xFFFFFFFF80000040ull, &s, 1, NULL,
	                        0, &len);
	const char *k = write_file("mb64.elf", img, len);
	free(img);

	load_ok(k, "a", NULL, NULL, 0);
	check_prot32(MB_ENTRY);
	check_mb_image(code);
}

/* A kernel that occupies the preferred boot-information area: the
 * information then goes into free low memory below it; modules start at
 * 1 MiB. */
static void test_multiboot_low_kernel(void **state)
{
	static uint8_t code[0x17000];
	uint8_t m1[100];
	fill_pattern(code, sizeof(code), 7);
	fill_pattern(m1, sizeof(m1), 8);
	mb_header(code, MB_FLAG_AOUT, 0x9000, 0x9000, 0, 0x20000, 0x9100);
	const char *k = write_file("low.bin", code, sizeof(code));
	const char *p1 = write_file("lowmod.bin", m1, sizeof(m1));
	struct boot_module mods[] = {{p1, "x"}};

	load_ok(k, NULL, NULL, mods, 1);
	check_prot32(0x9100);
	uint64_t mbi = check_mbi(k, 0x9000, 0x17000);
	uint64_t ml = ram32(mbi + 24);
	uint32_t s0 = ram32(ml), e0 = ram32(ml + 4);
	assert_int_equal(s0, LOADER_1M); /* modules start at 1 MiB at the lowest */
	assert_int_equal(e0, LOADER_1M + sizeof(m1));
	assert_true(mbi >= 0x1000 && mbi < 0x9000);
	assert_memory_equal(ram(0x9000, sizeof(code)), code, sizeof(code));
}

/* A real multiboot kernel built by the toolchain (skipped without one). */
static void test_multiboot_real_kernel(void **state)
{
	static const char src[] =
		".section .multiboot, \"a\"\n.align 4\n"
		".long 0x1BADB002\n.long 0x3\n.long -(0x1BADB002 + 0x3)\n"
		".text\n.globl _start\n_start:\n"
		"cmpl $0x2BADB002, %eax\njne 1f\nmovl 16(%ebx), %esi\n"
		"1: movw $0xf4, %dx\nmovb $0x31, %al\noutb %al, %dx\ncli\nhlt\n"
		".bss\n.align 16\nstack: .skip 8192\n";
	static const char lds[] =
		"ENTRY(_start)\nSECTIONS {\n . = 0x100000;\n"
		" .text : { *(.multiboot) *(.text*) }\n .data : { *(.data*) *(.rodata*) }\n"
		" .bss : { *(.bss*) *(COMMON) }\n /DISCARD/ : { *(.note*) *(.comment) }\n}\n";
	const char *s = write_file("real.S", src, strlen(src));
	const char *ld = write_file("real.ld", lds, strlen(lds));
	const char *k = tpath("real.elf");
	char cmd[768];
	snprintf(cmd, sizeof(cmd), "cc -m32 -ffreestanding -nostdlib -static -no-pie "
	         "-Wl,--build-id=none -Wl,-T,%s -o %s %s >/dev/null 2>&1", ld, k, s);
	if (system(cmd) != 0) {
		skip(); /* no 32-bit-capable toolchain here */
		return;
	}
	load_ok(k, "root=x", NULL, NULL, 0);
	assert_int_equal(bs.format, KERNEL_MULTIBOOT);
	assert_true(bs.regs.rip >= 0x100000 && bs.regs.rip < 0x101000);
	assert_int_equal(ram32(0x100000), 0x1BADB002);
	char want[256];
	snprintf(want, sizeof(want), "%s root=x", k);
	check_prot32(bs.regs.rip);
	check_mbi(want, 0x100000, 0x3000);
}

/* ---- bzImage ----------------------------------------------------------------------------- */

#define BZ_SETUP 4
#define BZ_PM 0x3000

struct bz_opts {
	uint8_t setup_sects; /* in the header (0 means 4) */
	uint16_t version;
	uint16_t xloadflags;
	uint8_t relocatable;
	uint32_t init_size;
	uint64_t pref;
	size_t truncate; /* file length if non-zero */
};

static const char *make_bzimage(const char *name, const struct bz_opts *o, uint8_t *pm)
{
	size_t setup = ((o->setup_sects ? o->setup_sects : 4) + 1) * 512u;
	size_t len = setup + BZ_PM;
	uint8_t *b = calloc(1, len);
	assert_non_null(b);
	fill_pattern(b, 0x1F1, 9);
	b[BZ_SETUP_SECTS] = o->setup_sects;
	st16(b + BZ_BOOT_FLAG, 0xAA55);
	b[BZ_JUMP] = 0xEB;
	b[BZ_JUMP + 1] = 0x6A; /* header ends at 0x26C */
	memcpy(b + BZ_HEADER, "HdrS", 4);
	st16(b + BZ_VERSION, o->version);
	b[BZ_LOADFLAGS] = BZ_LOADED_HIGH;
	st32(b + BZ_INITRD_ADDR_MAX, 0x37FFFFFF);
	st32(b + BZ_KERNEL_ALIGN, 0x200000);
	b[BZ_RELOCATABLE] = o->relocatable;
	st16(b + BZ_XLOADFLAGS, o->xloadflags);
	st32(b + BZ_CMDLINE_SIZE, 2047);
	st64(b + BZ_PREF_ADDRESS, o->pref);
	st32(b + BZ_INIT_SIZE, o->init_size);
	fill_pattern(b + setup, BZ_PM, 10);
	if (pm)
		memcpy(pm, b + setup, BZ_PM);
	const char *p = write_file(name, b, o->truncate ? o->truncate : len);
	free(b);
	return p;
}

static const struct bz_opts bz_default = {
	.setup_sects = BZ_SETUP, .version = 0x020F, .xloadflags = 3, .relocatable = 1,
	.init_size = 0x800000, .pref = 0x1000000,
};

static void check_zero_page(uint64_t bp, const char *cmdline)
{
	assert_true(bp >= 0x1000);
	const uint8_t *z = ram(bp, 0x1000);
	assert_memory_equal(z + BZ_HEADER, "HdrS", 4);
	assert_int_equal(ld16(z + BZ_VERSION), 0x020F);
	assert_int_equal(z[BZ_TYPE_OF_LOADER], 0xFF);
	assert_int_equal(z[BZ_LOADFLAGS], BZ_LOADED_HIGH | BZ_CAN_USE_HEAP);
	assert_int_equal(ld16(z + BZ_HEAP_END_PTR), 0xFE00);
	assert_int_equal(z[0x1EF], 0); /* sentinel */
	for (size_t i = 0; i < 0x1E8; i++)
		assert_int_equal(z[i], 0);
	assert_string_equal(ram_str(ld32(z + BZ_CMD_LINE_PTR)), cmdline);

	struct e820_entry m[8];
	size_t n = loader_memory_map(&test_vm, m, 8);
	assert_int_equal(z[BP_E820_ENTRIES], n);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *e = z + BP_E820_TABLE + 20 * i;
		assert_int_equal(ld64(e), m[i].addr);
		assert_int_equal(ld64(e + 8), m[i].size);
		assert_int_equal(ld32(e + 16), m[i].type);
	}
}

static void test_bzimage(void **state)
{
	uint8_t pm[BZ_PM], rd[20000];
	fill_pattern(rd, sizeof(rd), 11);
	const char *k = make_bzimage("bz", &bz_default, pm);
	const char *initrd = write_file("initrd.img", rd, sizeof(rd));

	load_ok(k, "console=ttyS0 root=/dev/vda", initrd, NULL, 0);
	assert_int_equal(bs.format, KERNEL_BZIMAGE);
	/* Relocatable, pref_address aligned and fitting: loaded there. */
	check_long(0x1000000 + 0x200, true);
	assert_memory_equal(ram(0x1000000, BZ_PM), pm, BZ_PM);
	uint64_t bp = bs.regs.rsi;
	check_zero_page(bp, "console=ttyS0 root=/dev/vda");
	const uint8_t *z = ram(bp, 0x1000);
	uint32_t rdi = ld32(z + BZ_RAMDISK_IMAGE), rds = ld32(z + BZ_RAMDISK_SIZE);
	assert_int_equal(rds, sizeof(rd));
	assert_int_equal(rdi % 4096, 0);
	assert_true(rdi >= 0x1000000 + 0x800000); /* above init_size */
	assert_true(rdi + rds <= RAM_SIZE);
	assert_true(rdi + rds > RAM_SIZE - 4096); /* as high as possible */
	assert_memory_equal(ram(rdi, rds), rd, rds);
	assert_false(overlaps(bp, 0x1000, LOADER_GDT, LOADER_STACK_TOP - LOADER_GDT));
}

/* Not relocatable, setup_sects 0 (= 4), no initrd: at 1 MiB. */
static void test_bzimage_fixed(void **state)
{
	uint8_t pm[BZ_PM];
	struct bz_opts o = bz_default;
	o.relocatable = 0;
	o.setup_sects = 0;
	const char *k = make_bzimage("bzfixed", &o, pm);

	load_ok(k, NULL, NULL, NULL, 0);
	check_long(0x100000 + 0x200, true);
	assert_memory_equal(ram(0x100000, BZ_PM), pm, BZ_PM);
	check_zero_page(bs.regs.rsi, "");
	assert_int_equal(ram32(bs.regs.rsi + BZ_RAMDISK_IMAGE), 0);
}

static void test_bzimage_bad(void **state)
{
	struct bz_opts o = bz_default;
	o.version = 0x0204;
	load_fails(make_bzimage("bzold", &o, NULL), NULL, NULL, 0, "too old");
	o = bz_default;
	o.version = 0x020B; /* before xloadflags */
	load_fails(make_bzimage("bz211", &o, NULL), NULL, NULL, 0, "no 64-bit entry");
	o = bz_default;
	o.xloadflags = 2;
	load_fails(make_bzimage("bz32", &o, NULL), NULL, NULL, 0, "XLF_KERNEL_64");
	o = bz_default;
	o.truncate = 0x240;
	load_fails(make_bzimage("bztrunc", &o, NULL), NULL, NULL, 0, "truncated header");
	o = bz_default;
	o.truncate = 5 * 512; /* setup only */
	load_fails(make_bzimage("bznopm", &o, NULL), NULL, NULL, 0, "no protected-mode kernel");
	o = bz_default;
	o.init_size = 0x8000000; /* 128 MiB in 64 */
	load_fails(make_bzimage("bzbig", &o, NULL), NULL, NULL, 0, "does not fit in guest RAM");

	const char *k = make_bzimage("bzok", &bz_default, NULL);
	load_fails(k, tpath("no-such-initrd"), NULL, 0, "No such file");
	load_fails(k, tpath("no-such-initrd"), NULL, 0, "no-such-initrd");
	struct boot_module mods[] = {{k, NULL}};
	load_fails(k, NULL, mods, 1, "multiboot");
	const char *bigrd = sparse_file("bigrd", 48 * MIB);
	load_fails(k, bigrd, NULL, 0, "initrd of 0x3000000 bytes does not fit");
	unlink(bigrd);

	char cl[3000];
	memset(cl, 'a', sizeof(cl) - 1);
	cl[sizeof(cl) - 1] = 0;
	assert_true(load(k, cl, NULL, NULL, 0) < 0);
	assert_non_null(strstr(err, "cmdline_size"));
}

/* ---- PVH ------------------------------------------------------------------------------------ */

#define PVH_KBASE 0x1000000ull
#define PVH_ENTRY (PVH_KBASE + 0x100)

static void check_pvh(const char *cmdline, const uint8_t *rd, size_t rdlen)
{
	assert_int_equal(bs.format, KERNEL_PVH);
	check_prot32(PVH_ENTRY);
	uint64_t si = bs.regs.rbx;
	assert_true(si >= 0x1000);
	assert_int_equal(ram32(si), 0x336ec578);
	assert_int_equal(ram32(si + 4), 1);
	assert_int_equal(ram32(si + 8), 0);
	assert_string_equal(ram_str(ram64(si + 24)), cmdline);
	assert_int_equal(ram64(si + 32), 0); /* rsdp: the kernel scans */
	struct e820_entry m[8];
	size_t n = loader_memory_map(&test_vm, m, 8);
	assert_int_equal(ram32(si + 48), n);
	uint64_t mm = ram64(si + 40);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(ram64(mm + 24 * i), m[i].addr);
		assert_int_equal(ram64(mm + 24 * i + 8), m[i].size);
		assert_int_equal(ram32(mm + 24 * i + 16), m[i].type);
		assert_int_equal(ram32(mm + 24 * i + 20), 0);
	}
	assert_int_equal(ram32(si + 12), rd ? 1 : 0);
	if (rd) {
		uint64_t ml = ram64(si + 16);
		uint64_t at = ram64(ml), size = ram64(ml + 8);
		assert_int_equal(size, rdlen);
		assert_int_equal(at % 4096, 0);
		assert_true(at >= PVH_KBASE + 0x10000);
		assert_memory_equal(ram(at, size), rd, size);
		assert_int_equal(ram64(ml + 16), 0);
	}
}

static void test_pvh_phdr_note(void **state)
{
	uint8_t code[0x400], note[128], rd[3000];
	fill_pattern(code, sizeof(code), 12);
	fill_pattern(rd, sizeof(rd), 13);
	size_t nlen = pvh_note(note, PVH_ENTRY, 4, true);
	struct tseg s[] = {
		{ELF_PT_LOAD, PVH_KBASE, 0xFFFFFFFF81000000ull, 0x10000, code, sizeof(code)},
		{ELF_PT_NOTE, 0, 0, 0, note, nlen},
	};
	size_t len;
	uint8_t *img = make_elf(ELF_CLASS64, ELF_EM_X86_64, 0xFFFFFFFF81000000ull, s, 2, NULL, 0,
	                        &len);
	const char *k = write_file("vmlinux", img, len);
	free(img);
	const char *initrd = write_file("pvh-initrd", rd, sizeof(rd));

	load_ok(k, "console=hvc0", initrd, NULL, 0);
	check_pvh("console=hvc0", rd, sizeof(rd));
	assert_memory_equal(ram(PVH_KBASE, sizeof(code)), code, sizeof(code));
	assert_int_equal(ram32(PVH_KBASE + sizeof(code)), 0);
	assert_int_equal(ram32(PVH_KBASE + 0x10000 - 4), 0);
}

/* Linux's 8-byte note value, only in a .note section (no PT_NOTE). */
static void test_pvh_section_note(void **state)
{
	uint8_t code[0x400], note[128];
	fill_pattern(code, sizeof(code), 14);
	size_t nlen = pvh_note(note, PVH_ENTRY, 8, false);
	struct tseg s[] = {{ELF_PT_LOAD, PVH_KBASE, PVH_KBASE, 0x10000, code, sizeof(code)}};
	size_t len;
	uint8_t *img = make_elf(ELF_CLASS64, ELF_EM_X86_64, PVH_KBASE, s, 1, note, nlen, &len);
	const char *k = write_file("vmlinux-sect", img, len);

	load_ok(k, NULL, NULL, NULL, 0);
	check_pvh("", NULL, 0);

	/* The same file cut before its section headers: a clear error. */
	const char *cut = write_file("vmlinux-cut", img, len - 64);
	load_fails(cut, NULL, NULL, 0, "section header table");
	/* A bad note value size. */
	st32(img + (len - 128 - align_up(nlen, 16)) + 4, 2);
	const char *badn = write_file("vmlinux-badnote", img, len);
	load_fails(badn, NULL, NULL, 0, "PVH entry note");
	free(img);

	/* Entry outside every segment. */
	nlen = pvh_note(note, 0x5000000, 4, false);
	struct tseg s2[] = {
		{ELF_PT_LOAD, PVH_KBASE, PVH_KBASE, 0x10000, code, sizeof(code)},
		{ELF_PT_NOTE, 0, 0, 0, note, nlen},
	};
	img = make_elf(ELF_CLASS64, ELF_EM_X86_64, PVH_KBASE, s2, 2, NULL, 0, &len);
	load_fails(write_file("vmlinux-badentry", img, len), NULL, NULL, 0,
	           "outside every loadable segment");
	free(img);
}

/* ---- ELF64 and flat ------------------------------------------------------------------------- */

static void test_elf64(void **state)
{
	uint8_t code[0x180];
	fill_pattern(code, sizeof(code), 15);
	struct tseg s[] = {
		{ELF_PT_LOAD, 0x200000, 0x200000, 0x1000, code, sizeof(code)},
		{ELF_PT_LOAD, 0x400000, 0x400000, 0x2000, code, 0x80},
		{6 /* PT_PHDR: ignored */, 0, 0, 0, NULL, 0},
	};
	size_t len;
	uint8_t *img = make_elf(ELF_CLASS64, ELF_EM_X86_64, 0x200010, s, 3, NULL, 0, &len);
	const char *k = write_file("k64.elf", img, len);
	free(img);

	load_ok(k, "ignored", NULL, NULL, 0);
	assert_int_equal(bs.format, KERNEL_ELF64);
	check_long(0x200010, false);
	assert_int_equal(bs.regs.rsi, 0);
	assert_int_equal(bs.regs.rdi, 0);
	assert_int_equal(bs.regs.rax, 0);
	assert_true(bs.sregs.cr4 & CR4_OSFXSR);
	assert_memory_equal(ram(0x200000, sizeof(code)), code, sizeof(code));
	assert_int_equal(ram32(0x200000 + sizeof(code)), 0);
	assert_memory_equal(ram(0x400000, 0x80), code, 0x80);
	assert_int_equal(ram64(0x400000 + 0x1FF8), 0);
	assert_int_equal(*(uint8_t *)ram(0x402000, 1), RAM_FILL);
	/* The page tables are user-accessible (a kernel may drop to CPL3). */
	assert_true(ram64(bs.sregs.cr3 + 2 * LOADER_PAGE) & 4);
}

static void test_flat(void **state)
{
	uint8_t code[] = {0xb0, 0x01, 0xe6, 0xf4, 0xf4};
	const char *k = write_file("flat.bin", code, sizeof(code));

	/* Not without asking: raw bytes are no known format. */
	load_fails(k, NULL, NULL, 0, "not a kernel format zhv knows");
	want_format = KERNEL_FLAT;
	load_ok(k, NULL, NULL, NULL, 0);
	assert_int_equal(bs.format, KERNEL_FLAT);
	check_long(LOADER_FLAT_BASE, false);
	assert_memory_equal(ram(LOADER_FLAT_BASE, sizeof(code)), code, sizeof(code));

	load_fails(k, k, NULL, 0, "takes no initrd");
	const char *bigk = sparse_file("bigflat", 70 * MIB);
	load_fails(bigk, NULL, NULL, 0, "does not fit in guest RAM of 64 MiB");
	unlink(bigk);
}

/* ---- bad inputs --------------------------------------------------------------------------- */

static const char *elf64_file(const char *name, uint64_t paddr, uint64_t memsz,
                              void (*patch)(uint8_t *img, size_t *len))
{
	uint8_t code[0x100];
	fill_pattern(code, sizeof(code), 16);
	struct tseg s = {ELF_PT_LOAD, paddr, paddr, memsz, code, sizeof(code)};
	size_t len;
	uint8_t *img = make_elf(ELF_CLASS64, ELF_EM_X86_64, paddr, &s, 1, NULL, 0, &len);
	if (patch)
		patch(img, &len);
	const char *p = write_file(name, img, len);
	free(img);
	return p;
}

static void patch_phoff(uint8_t *img, size_t *len)
{
	st64(img + 32, *len - 20); /* table runs past the end */
}

static void patch_phnum(uint8_t *img, size_t *len)
{
	st16(img + 56, 0xFFFE);
}

static void patch_memsz_huge(uint8_t *img, size_t *len)
{
	st64(phdr64(img, 0, 40), 0xFFFFFFFFFFFFF000ull);
}

static void patch_filesz_big(uint8_t *img, size_t *len)
{
	st64(phdr64(img, 0, 32), 0x2000); /* > memsz */
}

static void patch_offset(uint8_t *img, size_t *len)
{
	st64(phdr64(img, 0, 8), 0xFFFFFFFFFFFFFF80ull);
}

static void patch_no_load(uint8_t *img, size_t *len)
{
	st32(phdr64(img, 0, 0), 6);
}

static void patch_entry(uint8_t *img, size_t *len)
{
	st64(img + 24, 0x7000000);
}

static void patch_machine(uint8_t *img, size_t *len)
{
	st16(img + 18, 183); /* EM_AARCH64 */
}

/* ---- formats asked for, files of no format ------------------------------------------------ */

static void test_formats(void **state)
{
	assert_int_equal(loader_format_parse("auto"), KERNEL_AUTO);
	assert_int_equal(loader_format_parse("multiboot"), KERNEL_MULTIBOOT);
	assert_int_equal(loader_format_parse("linux"), KERNEL_BZIMAGE);
	assert_int_equal(loader_format_parse("pvh"), KERNEL_PVH);
	assert_int_equal(loader_format_parse("elf"), KERNEL_ELF64);
	assert_int_equal(loader_format_parse("flat"), KERNEL_FLAT);
	assert_int_equal(loader_format_parse("bzimage"), -1);
	assert_int_equal(loader_format_parse(""), -1);
	assert_int_equal(loader_format_parse(NULL), -1);

	/* 100 random bytes: refused, naming the formats zhv knows. */
	uint8_t junk[100];
	srand(7);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rand();
	junk[0] = 0x90; /* not "\177ELF" */
	const char *k = write_file("junk.bin", junk, sizeof(junk));
	load_fails(k, NULL, NULL, 0, "not a kernel format zhv knows (multiboot v1, Linux "
	           "bzImage, PVH or x86-64 ELF64; a flat binary needs --format flat)");

	/* A plain ELF64 asked to be something else: refused; as "elf": loaded. */
	const char *elf = elf64_file("fmt.elf", 0x200000, 0x1000, NULL);
	want_format = KERNEL_MULTIBOOT;
	load_fails(elf, NULL, NULL, 0, "not a multiboot kernel");
	want_format = KERNEL_BZIMAGE;
	load_fails(elf, NULL, NULL, 0, "not a Linux bzImage");
	want_format = KERNEL_PVH;
	load_fails(elf, NULL, NULL, 0, "not a PVH kernel");
	want_format = KERNEL_ELF64;
	load_ok(elf, NULL, NULL, NULL, 0);
	assert_int_equal(bs.format, KERNEL_ELF64);
	want_format = KERNEL_PVH;
	load_fails(k, NULL, NULL, 0, "not an ELF file");
	/* Any file as flat, when asked. */
	want_format = KERNEL_FLAT;
	load_ok(elf, NULL, NULL, NULL, 0);
	assert_int_equal(bs.format, KERNEL_FLAT);

	/* A PVH vmlinux: PVH by default and as "pvh", plain ELF64 as "elf". */
	uint8_t code[0x100], note[64];
	fill_pattern(code, sizeof(code), 3);
	size_t nlen = pvh_note(note, 0x200010, 4, false), len;
	struct tseg p[] = {
		{ELF_PT_LOAD, 0x200000, 0x200000, 0x1000, code, sizeof(code)},
		{ELF_PT_NOTE, 0, 0, 0, note, nlen},
	};
	uint8_t *img = make_elf(ELF_CLASS64, ELF_EM_X86_64, 0x200000, p, 2, NULL, 0, &len);
	const char *pvh = write_file("fmt-pvh.elf", img, len);
	free(img);
	want_format = KERNEL_AUTO;
	load_ok(pvh, NULL, NULL, NULL, 0);
	assert_int_equal(bs.format, KERNEL_PVH);
	want_format = KERNEL_PVH;
	load_ok(pvh, NULL, NULL, NULL, 0);
	assert_int_equal(bs.format, KERNEL_PVH);
	want_format = KERNEL_ELF64;
	load_ok(pvh, NULL, NULL, NULL, 0);
	assert_int_equal(bs.format, KERNEL_ELF64);
	assert_int_equal(bs.regs.rip, 0x200000);
}

/* ---- what is not a regular file ----------------------------------------------------------- */

/* A FIFO as kernel, initrd or module: refused at once, never waited on
 * (a blocking open would wait for a writer forever: the alarm fails it). */
static void test_fifo(void **state)
{
	int fds = count_fds();
	const char *fifo = tpath("fifo");
	unlink(fifo);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	alarm(20);
	load_fails(fifo, NULL, NULL, 0, "not a regular file (a FIFO)");
	uint8_t code[MB_KFILE] = {0};
	mb_header(code, MB_FLAG_MEMINFO, 0, 0, 0, 0, 0);
	struct tseg sg = {ELF_PT_LOAD, MB_KBASE, MB_KBASE, MB_KMEM, code, MB_KFILE};
	size_t len;
	uint8_t *img = make_elf(ELF_CLASS32, ELF_EM_386, MB_ENTRY, &sg, 1, NULL, 0, &len);
	const char *mb = write_file("fifo-mb.elf", img, len);
	free(img);
	struct boot_module mods[] = {{fifo, "x"}};
	load_fails(mb, NULL, mods, 1, "not a regular file (a FIFO)");
	load_fails(mb, fifo, NULL, 0, "not a regular file (a FIFO)");
	load_fails(tmpdir, NULL, NULL, 0, "not a regular file (a directory)");
	load_fails("/dev/null", NULL, NULL, 0, "not a regular file (a character device)");
	alarm(0);
	unlink(fifo);
	assert_int_equal(count_fds(), fds);
}

/* ---- files crafted to cost work ----------------------------------------------------------- */

#define MANY 65534u /* the most program headers an ELF can number (0xFFFF: PN_XNUM) */

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* An ELF64 of MANY program headers, filled in by (ph) for each index; a
 * 16-byte code blob at (code_off); the file is (size) bytes (sparse). */
static const char *many_phdrs(const char *name, uint64_t size, uint64_t code_off,
                              void (*ph)(uint8_t *p, size_t i, uint64_t code_off))
{
	size_t hlen = 64 + 56 * (size_t)MANY;
	uint8_t *b = calloc(1, hlen);
	assert_non_null(b);
	memcpy(b, "\177ELF", 4);
	b[4] = ELF_CLASS64;
	b[5] = 1;
	b[6] = 1;
	st16(b + 16, 2);
	st16(b + 18, ELF_EM_X86_64);
	st32(b + 20, 1);
	st64(b + 24, 0x200000); /* entry */
	st64(b + 32, 64);
	st16(b + 52, 64);
	st16(b + 54, 56);
	st16(b + 56, (uint16_t)MANY);
	for (size_t i = 0; i < MANY; i++)
		ph(b + 64 + 56 * i, i, code_off);
	const char *p = write_file(name, b, hlen);
	free(b);
	assert_int_equal(truncate(p, (off_t)size), 0);
	FILE *f = fopen(p, "r+b");
	assert_non_null(f);
	static const uint8_t code[16] = {0xf4, 0xeb, 0xfd};
	assert_int_equal(fseek(f, (long)code_off, SEEK_SET), 0);
	assert_int_equal(fwrite(code, 1, sizeof(code), f), sizeof(code));
	assert_int_equal(fclose(f), 0);
	return p;
}

static void ph_set(uint8_t *p, uint32_t type, uint64_t off, uint64_t paddr, uint64_t filesz,
                   uint64_t memsz)
{
	st32(p, type);
	st32(p + 4, 7);
	st64(p + 8, off);
	st64(p + 16, paddr);
	st64(p + 24, paddr);
	st64(p + 32, filesz);
	st64(p + 40, memsz);
	st64(p + 48, 0x1000);
}

#define NOTE_OFF (4 * MIB)
#define NOTE_LEN (8 * MIB) /* of zeros: 699050 empty notes */
#define CODE_OFF (12 * MIB)

/* Header 0 the code segment, the others PT_NOTE over one 8 MiB region. */
static void ph_same_notes(uint8_t *p, size_t i, uint64_t code_off)
{
	if (i == 0)
		ph_set(p, ELF_PT_LOAD, code_off, 0x200000, 16, 0x1000);
	else
		ph_set(p, ELF_PT_NOTE, NOTE_OFF, 0, NOTE_LEN, 0);
}

/* The same, each note region 4 bytes further: no two alike. */
static void ph_shifted_notes(uint8_t *p, size_t i, uint64_t code_off)
{
	if (i == 0)
		ph_set(p, ELF_PT_LOAD, code_off, 0x200000, 16, 0x1000);
	else
		ph_set(p, ELF_PT_NOTE, NOTE_OFF + 4 * i, 0, NOTE_LEN - 4 * MANY, 0);
}

/* MANY small segments side by side: a legal, if odd, kernel. */
static void ph_many_loads(uint8_t *p, size_t i, uint64_t code_off)
{
	ph_set(p, ELF_PT_LOAD, code_off, 0x200000 + 0x100 * i, 16, 0x100);
}

/* MANY segments, each 8 MiB, all at the same address. */
static void ph_stacked_loads(uint8_t *p, size_t i, uint64_t code_off)
{
	ph_set(p, ELF_PT_LOAD, code_off, 0x200000, 16, 8 * MIB);
}

/* load() with the pread count and the CPU time it took, printed. */
static int load_measured(const char *what, const char *kernel)
{
	preads = 0;
	double t0 = cpu_seconds();
	int ret = load(kernel, NULL, NULL, NULL, 0);
	double t = cpu_seconds() - t0;
	print_message("# %s: %s in %.3f s of CPU, %llu preads (%s)\n", what,
	              ret == 0 ? "loaded" : "refused", t, preads, ret == 0 ? "" : err);
	return ret;
}

static void test_crafted_elf_work(void **state)
{
	int fds = count_fds();
	alarm(120); /* the loader before this test: an hour for the first file */

	/* 65533 PT_NOTE headers over one 8 MiB region: read and walked once. */
	const char *k = many_phdrs("notes-same.elf", CODE_OFF + 16, CODE_OFF, ph_same_notes);
	assert_int_equal(load_measured("65533 PT_NOTE over one 8 MiB region", k), 0);
	assert_int_equal(bs.format, KERNEL_ELF64);
	assert_true(preads <= 8); /* header, program headers, notes, segment */

	/* All different: the note budget refuses the file after 16 MiB. */
	k = many_phdrs("notes-shifted.elf", CODE_OFF + 16, CODE_OFF, ph_shifted_notes);
	assert_true(load_measured("65533 PT_NOTE, each 4 bytes further", k) < 0);
	assert_non_null(strstr(err, "ELF notes of more than 16 MiB in all"));
	assert_true(preads <= 8);

	/* 65534 PT_LOAD: placed in n log n, each segment read once. */
	k = many_phdrs("loads.elf", CODE_OFF + 16, CODE_OFF, ph_many_loads);
	assert_int_equal(load_measured("65534 PT_LOAD side by side", k), 0);
	assert_true(preads <= MANY + 4);
	assert_int_equal(*(uint8_t *)ram(0x200000 + 0x100 * (MANY - 1), 1), 0xf4);
	/* Each claim compares with the few fixed ranges and ~17 sorted
	 * segments (binary search), not with every segment before it. */
	assert_true(loader_work.compares < 64ull * MANY);

	/* 65534 PT_LOAD stacked on one 8 MiB range: 512 GiB of copying. */
	k = many_phdrs("stacked.elf", CODE_OFF + 16, CODE_OFF, ph_stacked_loads);
	assert_true(load_measured("65534 PT_LOAD of 8 MiB at one address", k) < 0);
	assert_non_null(strstr(err, "overlap each other by more than 16 MiB"));
	assert_true(preads <= 4);
	alarm(0);

	/* Two segments sharing bytes are still fine (linkers share pages). */
	uint8_t code[0x100];
	fill_pattern(code, sizeof(code), 5);
	struct tseg two[] = {
		{ELF_PT_LOAD, 0x200000, 0x200000, 0x1000, code, sizeof(code)},
		{ELF_PT_LOAD, 0x200800, 0x200800, 0x1000, code, sizeof(code)},
	};
	size_t len;
	uint8_t *img = make_elf(ELF_CLASS64, ELF_EM_X86_64, 0x200000, two, 2, NULL, 0, &len);
	load_ok(write_file("shared.elf", img, len), NULL, NULL, NULL, 0);
	free(img);
	assert_memory_equal(ram(0x200800, sizeof(code)), code, sizeof(code));
	assert_int_equal(count_fds(), fds);
}

static void test_bad_elf(void **state)
{
	int fds = count_fds();
	load_fails(write_file("empty", "", 0), NULL, NULL, 0, "empty file");
	load_fails(tpath("does-not-exist"), NULL, NULL, 0, "No such file");
	load_fails(tmpdir, NULL, NULL, 0, "not a regular file");
	load_fails(write_file("trunc.elf", "\177ELF\2\1\1\0\0\0\0\0\0\0\0\0\2\0>\0", 20), NULL,
	           NULL, 0, "truncated header");
	load_fails(elf64_file("phoff.elf", 0x200000, 0x1000, patch_phoff), NULL, NULL, 0,
	           "program header table");
	load_fails(elf64_file("phnum.elf", 0x200000, 0x1000, patch_phnum), NULL, NULL, 0,
	           "outside file");
	load_fails(elf64_file("beyond.elf", 0x8000000, 0x1000, NULL), NULL, NULL, 0,
	           "segment 0 at 0x8000000-0x8001000 does not fit in guest RAM of 64 MiB");
	load_fails(elf64_file("huge.elf", 0x200000, 0x1000, patch_memsz_huge), NULL, NULL, 0,
	           "overflows");
	load_fails(elf64_file("filesz.elf", 0x200000, 0x1000, patch_filesz_big), NULL, NULL, 0,
	           "exceeds p_memsz");
	load_fails(elf64_file("offset.elf", 0x200000, 0x1000, patch_offset), NULL, NULL, 0,
	           "outside file");
	load_fails(elf64_file("noload.elf", 0x200000, 0x1000, patch_no_load), NULL, NULL, 0,
	           "no loadable segment");
	load_fails(elf64_file("entry.elf", 0x200000, 0x1000, patch_entry), NULL, NULL, 0,
	           "outside every loadable segment");
	load_fails(elf64_file("arm.elf", 0x200000, 0x1000, patch_machine), NULL, NULL, 0,
	           "not a bootable ELF");
	load_fails(elf64_file("page0.elf", 0x800, 0x100, NULL), NULL, NULL, 0, "overlaps page 0");
	load_fails(elf64_file("bios.elf", 0xE0000, 0x100, NULL), NULL, NULL, 0,
	           "reserved BIOS area");
	load_fails(elf64_file("hole.elf", 0xC0000000ull, 0x100, NULL), NULL, NULL, 0,
	           "does not fit in guest RAM");
	const char *ok = elf64_file("ok.elf", 0x200000, 0x1000, NULL);
	load_fails(ok, ok, NULL, 0, "takes no initrd");

	/* A 32-bit ELF is only bootable with a multiboot header. */
	uint8_t code[16] = {0};
	struct tseg s = {ELF_PT_LOAD, 0x100000, 0x100000, 0x100, code, sizeof(code)};
	size_t len;
	uint8_t *img = make_elf(ELF_CLASS32, ELF_EM_386, 0x100000, &s, 1, NULL, 0, &len);
	load_fails(write_file("k32.elf", img, len), NULL, NULL, 0, "ELF32 without a multiboot");
	want_format = KERNEL_PVH;
	load_fails(tpath("k32.elf"), NULL, NULL, 0, "not a PVH kernel: ELF32 (needs x86-64 ELF64)");
	want_format = KERNEL_ELF64;
	load_fails(tpath("k32.elf"), NULL, NULL, 0, "not an ELF64 kernel: ELF32");
	want_format = KERNEL_AUTO;
	free(img);
	assert_int_equal(count_fds(), fds); /* every error path closed its files */
}

static void test_bad_multiboot(void **state)
{
	int fds = count_fds();
	uint8_t code[MB_KFILE] = {0};
	struct tseg s = {ELF_PT_LOAD, MB_KBASE, MB_KBASE, MB_KMEM, code, MB_KFILE};
	size_t len;
	uint8_t *img;

	/* Bad checksum. */
	mb_header(code, MB_FLAG_MEMINFO, 0, 0, 0, 0, 0);
	st32(code + 8, ld32(code + 8) + 1);
	img = make_elf(ELF_CLASS32, ELF_EM_386, MB_ENTRY, &s, 1, NULL, 0, &len);
	load_fails(write_file("mbsum.elf", img, len), NULL, NULL, 0, "bad checksum");
	free(img);

	/* A required flag we do not know. */
	mb_header(code, MB_FLAG_MEMINFO | (1u << 5), 0, 0, 0, 0, 0);
	img = make_elf(ELF_CLASS32, ELF_EM_386, MB_ENTRY, &s, 1, NULL, 0, &len);
	load_fails(write_file("mbflag.elf", img, len), NULL, NULL, 0, "unsupported required flags");
	free(img);

	/* Missing module file. */
	mb_header(code, MB_FLAG_MEMINFO, 0, 0, 0, 0, 0);
	img = make_elf(ELF_CLASS32, ELF_EM_386, MB_ENTRY, &s, 1, NULL, 0, &len);
	const char *k = write_file("mbok.elf", img, len);
	free(img);
	struct boot_module mods[] = {{tpath("no-module"), "x"}};
	load_fails(k, NULL, mods, 1, "no-module: No such file");
	load_fails(k, tpath("no-initrd"), NULL, 0, "no-initrd: No such file");

	/* Segment over page 0. */
	struct tseg low = {ELF_PT_LOAD, 0x800, 0x800, 0x400, code, MB_KFILE};
	img = make_elf(ELF_CLASS32, ELF_EM_386, 0x840, &low, 1, NULL, 0, &len);
	load_fails(write_file("mbpage0.elf", img, len), NULL, NULL, 0, "overlaps page 0");
	free(img);

	/* Not ELF and no address fields. */
	uint8_t raw[64] = {0};
	mb_header(raw, MB_FLAG_MEMINFO, 0, 0, 0, 0, 0);
	load_fails(write_file("mbraw.bin", raw, sizeof(raw)), NULL, NULL, 0, "no address fields");

	/* a.out kludge: truncated header, inconsistent addresses. */
	mb_header(raw, MB_FLAG_AOUT, 0x100000, 0x100000, 0, 0, 0x100000);
	load_fails(write_file("mbshort.bin", raw, 16), NULL, NULL, 0, "truncated header");
	mb_header(raw, MB_FLAG_AOUT, 0x100000, 0x100100, 0, 0, 0x100100);
	load_fails(write_file("mbaddr.bin", raw, sizeof(raw)), NULL, NULL, 0, "header_addr");
	mb_header(raw, MB_FLAG_AOUT, 0x100000, 0x100000, 0x0FFFFF, 0, 0x100000);
	load_fails(write_file("mbend.bin", raw, sizeof(raw)), NULL, NULL, 0, "below load_addr");
	mb_header(raw, MB_FLAG_AOUT, 0x100000, 0x100000, 0x200000, 0, 0x100000);
	load_fails(write_file("mbpast.bin", raw, sizeof(raw)), NULL, NULL, 0, "past the end");
	mb_header(raw, MB_FLAG_AOUT, 0x100000, 0x100000, 0, 0x100010, 0x100000);
	load_fails(write_file("mbbss.bin", raw, sizeof(raw)), NULL, NULL, 0, "bss_end_addr");
	mb_header(raw, MB_FLAG_AOUT, 0x100000, 0x100000, 0, 0, 0x300000);
	load_fails(write_file("mbentry.bin", raw, sizeof(raw)), NULL, NULL, 0, "entry_addr");
	mb_header(raw, MB_FLAG_AOUT, 0x8000000, 0x8000000, 0, 0, 0x8000000);
	load_fails(write_file("mbram.bin", raw, sizeof(raw)), NULL, NULL, 0,
	           "does not fit in guest RAM of 64 MiB");
	assert_int_equal(count_fds(), fds);
}

/* Corrupted headers of every format: an error or a load, never a crash
 * (ASan/UBSan builds), always a message on error, no file left open. */
static void mutate_and_load(const uint8_t *img, size_t len, size_t span, unsigned seed)
{
	uint8_t *m = malloc(len);
	assert_non_null(m);
	srand(seed);
	for (int iter = 0; iter < 150; iter++) {
		memcpy(m, img, len);
		int flips = 1 + rand() % 4;
		for (int f = 0; f < flips; f++) {
			size_t at = (size_t)rand() % (span < len ? span : len);
			m[at] = rand() % 3 ? (uint8_t)rand() : (uint8_t)(m[at] ^ 0x80);
		}
		const char *k = write_file("mutant", m, len);
		int ret = load(k, "c", NULL, NULL, 0);
		if (ret < 0)
			assert_true(err[0] != '\0');
		else
			assert_int_equal(bs.regs.rflags, 0x2);
	}
	free(m);
}

static void test_mutations(void **state)
{
	int fds = count_fds();
	uint8_t code[MB_KFILE], note[128];
	size_t len;
	uint8_t *img;

	fill_pattern(code, sizeof(code), 17);
	mb_header(code, MB_FLAG_MEMINFO, 0, 0, 0, 0, 0);
	struct tseg s = {ELF_PT_LOAD, MB_KBASE, MB_KBASE, MB_KMEM, code, MB_KFILE};
	img = make_elf(ELF_CLASS32, ELF_EM_386, MB_ENTRY, &s, 1, NULL, 0, &len);
	mutate_and_load(img, len, 0x220, 1);
	free(img);

	mb_header(code, MB_FLAG_AOUT, MB_KBASE, MB_KBASE, 0, MB_KBASE + MB_KMEM, MB_ENTRY);
	mutate_and_load(code, sizeof(code), 32, 2);

	size_t nlen = pvh_note(note, PVH_ENTRY, 4, true);
	struct tseg p[] = {
		{ELF_PT_LOAD, PVH_KBASE, PVH_KBASE, 0x10000, code, sizeof(code)},
		{ELF_PT_NOTE, 0, 0, 0, note, nlen},
	};
	img = make_elf(ELF_CLASS64, ELF_EM_X86_64, PVH_KBASE, p, 2, note, nlen, &len);
	mutate_and_load(img, len, len, 3);
	free(img);

	const char *bz = make_bzimage("bzmut", &bz_default, NULL);
	FILE *f = fopen(bz, "rb");
	assert_non_null(f);
	static uint8_t bzimg[5 * 512 + BZ_PM];
	assert_int_equal(fread(bzimg, 1, sizeof(bzimg), f), sizeof(bzimg));
	fclose(f);
	mutate_and_load(bzimg, sizeof(bzimg), 0x270, 4);
	assert_int_equal(count_fds(), fds);
}

/* ---- placement of the boot data ------------------------------------------------------------ */

struct range {
	uint64_t start, len;
	const char *what;
};

#define MAX_RANGES 64

static void add_range(struct range *r, size_t *n, uint64_t start, uint64_t len, const char *what)
{
	assert_true(*n < MAX_RANGES);
	r[(*n)++] = (struct range){start, len, what};
}

/* Everything the loader wrote for the boot (GDT, stack, page tables, boot
 * information and the strings and tables it points to) from the entry
 * state; the modules it placed go to (taken). */
static size_t boot_data(struct range *b, struct range *taken, size_t *ntaken)
{
	size_t n = 0;
	add_range(b, &n, bs.sregs.gdt.base, LOADER_PAGE, "GDT");
	add_range(b, &n, bs.regs.rsp - LOADER_PAGE, LOADER_PAGE, "stack");
	if (bs.sregs.cr0 & CR0_PG)
		add_range(b, &n, bs.sregs.cr3, LOADER_PT_PAGES * LOADER_PAGE, "page tables");
	if (bs.format == KERNEL_MULTIBOOT) {
		uint64_t mbi = bs.regs.rbx;
		add_range(b, &n, mbi, MBI_SIZE, "mbi");
		add_range(b, &n, ram32(mbi + 48), ram32(mbi + 44), "mmap");
		uint32_t cl = ram32(mbi + 16), ln = ram32(mbi + 64);
		add_range(b, &n, cl, strlen(ram_str(cl)) + 1, "cmdline");
		add_range(b, &n, ln, strlen(ram_str(ln)) + 1, "loader name");
		uint32_t cnt = ram32(mbi + 20), ml = ram32(mbi + 24);
		if (cnt)
			add_range(b, &n, ml, cnt * 16, "module list");
		for (uint32_t i = 0; i < cnt; i++) {
			uint32_t s = ram32(ml + 16 * i), e = ram32(ml + 16 * i + 4);
			uint32_t str = ram32(ml + 16 * i + 8);
			add_range(b, &n, str, strlen(ram_str(str)) + 1, "module string");
			add_range(taken, ntaken, s, e - s, "module");
		}
	} else if (bs.format == KERNEL_PVH) {
		uint64_t si = bs.regs.rbx;
		add_range(b, &n, si, 56, "start_info");
		uint64_t cl = ram64(si + 24);
		add_range(b, &n, cl, strlen(ram_str(cl)) + 1, "cmdline");
		add_range(b, &n, ram64(si + 40), ram32(si + 48) * 24ull, "memmap");
		uint32_t cnt = ram32(si + 12);
		uint64_t ml = ram64(si + 16);
		if (cnt)
			add_range(b, &n, ml, cnt * 32ull, "module list");
		for (uint32_t i = 0; i < cnt; i++) {
			add_range(taken, ntaken, ram64(ml + 32 * i), ram64(ml + 32 * i + 8), "module");
			uint64_t mcl = ram64(ml + 32 * i + 16);
			if (mcl)
				add_range(b, &n, mcl, strlen(ram_str(mcl)) + 1, "module cmdline");
		}
	} else if (bs.format == KERNEL_BZIMAGE) {
		uint64_t bp = bs.regs.rsi;
		add_range(b, &n, bp, 0x1000, "zero page");
		uint32_t cl = ram32(bp + BZ_CMD_LINE_PTR);
		add_range(b, &n, cl, strlen(ram_str(cl)) + 1, "cmdline");
		if (ram32(bp + BZ_RAMDISK_SIZE))
			add_range(taken, ntaken, ram32(bp + BZ_RAMDISK_IMAGE),
			          ram32(bp + BZ_RAMDISK_SIZE), "initrd");
	}
	return n;
}

/* The boot data lies in RAM below 4 GiB, outside page 0 and the BIOS
 * area, overlapping neither itself nor the kernel's ranges (taken) nor the
 * modules. */
static void check_placement(const struct range *kernel, size_t nkernel)
{
	struct range b[MAX_RANGES], taken[MAX_RANGES];
	size_t ntaken = 0;
	for (size_t i = 0; i < nkernel; i++)
		add_range(taken, &ntaken, kernel[i].start, kernel[i].len, kernel[i].what);
	size_t n = boot_data(b, taken, &ntaken);
	uint64_t top = test_vm.low_ram < LOADER_4G ? test_vm.low_ram : LOADER_4G;
	for (size_t i = 0; i < n; i++) {
		bool bad = b[i].start < LOADER_PAGE || b[i].start + b[i].len > top ||
		           overlaps(b[i].start, b[i].len, LOADER_BIOS, LOADER_1M - LOADER_BIOS);
		for (size_t j = 0; j < ntaken; j++)
			if (overlaps(b[i].start, b[i].len, taken[j].start, taken[j].len)) {
				print_error("%s at 0x%llx overlaps %s at 0x%llx\n", b[i].what,
				            (unsigned long long)b[i].start, taken[j].what,
				            (unsigned long long)taken[j].start);
				bad = true;
			}
		for (size_t j = 0; j < i; j++)
			if (overlaps(b[i].start, b[i].len, b[j].start, b[j].len)) {
				print_error("%s overlaps %s\n", b[i].what, b[j].what);
				bad = true;
			}
		if (bad)
			print_error("bad placement: %s at 0x%llx+0x%llx\n", b[i].what,
			            (unsigned long long)b[i].start, (unsigned long long)b[i].len);
		assert_false(bad);
	}
}

/* A multiboot a.out-kludge image at (base) of (file) bytes loaded and
 * (mem) in memory, header at offset 0, entry at base + 0x40. */
static const char *mb_raw(const char *name, uint32_t base, size_t file, uint32_t mem)
{
	uint8_t *img = calloc(1, file);
	assert_non_null(img);
	fill_pattern(img, file, 21);
	mb_header(img, MB_FLAG_AOUT | MB_FLAG_MEMINFO, base, base, 0, base + mem, base + 0x40);
	const char *k = write_file(name, img, file);
	free(img);
	return k;
}

/* Issue 8's image: ELF32 multiboot linked at 0x8000, 0x286c bytes, using
 * the addresses of the preferred stack and boot information. */
static void test_place_image_at_0x8000(void **state)
{
	uint8_t code[0x400], m1[3000];
	fill_pattern(code, sizeof(code), 22);
	fill_pattern(m1, sizeof(m1), 23);
	mb_header(code, MB_FLAG_ALIGN | MB_FLAG_MEMINFO, 0, 0, 0, 0, 0);
	struct tseg s = {ELF_PT_LOAD, 0x8000, 0x8000, 0x286c, code, sizeof(code)};
	size_t len;
	uint8_t *img = make_elf(ELF_CLASS32, ELF_EM_386, 0x8040, &s, 1, NULL, 0, &len);
	const char *k = write_file("mb8000.elf", img, len);
	free(img);
	const char *p1 = write_file("mb8000mod", m1, sizeof(m1));
	struct boot_module mods[] = {{p1, "arg"}};

	std_layout = false;
	load_ok(k, "x=1", NULL, mods, 1);
	check_prot32(0x8040);
	assert_memory_equal(ram(0x8000, sizeof(code)), code, sizeof(code));
	assert_int_equal(ram32(0xa868), 0); /* bss */
	struct range kr[] = {{0x8000, 0x286c, "kernel"}};
	check_placement(kr, 1);
	/* All of it in low memory: GDT where it always is, the stack and the
	 * information below the image. */
	assert_int_equal(bs.sregs.gdt.base, LOADER_GDT);
	assert_true(bs.regs.rsp <= 0x8000);
	assert_true(bs.regs.rbx < 0x8000);
	char want[256];
	snprintf(want, sizeof(want), "%s x=1", k);
	check_mbi(want, 0x8000, 0x286c);
	/* The module keeps its place at 1 MiB. */
	assert_int_equal(ram32(ram32(bs.regs.rbx + 24)), LOADER_1M);
}

/* Images at 0x1000 (where the GDT goes) and over the page tables: the
 * boot data moves, in every format that has it. */
static void test_place_image_at_0x1000(void **state)
{
	std_layout = false;
	const char *k = mb_raw("mb1000.bin", 0x1000, 0x200, 0x1000);
	load_ok(k, NULL, NULL, NULL, 0);
	check_prot32(0x1040);
	struct range kr[] = {{0x1000, 0x1000, "kernel"}};
	check_placement(kr, 1);
	assert_int_equal(bs.sregs.gdt.base, 0x2000);

	load_ok(elf64_file("gdt.elf", 0x1000, 0x100, NULL), NULL, NULL, NULL, 0);
	check_long(0x1000, false);
	struct range kr2[] = {{0x1000, 0x100, "kernel"}};
	check_placement(kr2, 1);

	load_ok(elf64_file("pt.elf", 0x4000, 0x1000, NULL), NULL, NULL, NULL, 0);
	check_long(0x4000, false);
	struct range kr3[] = {{0x4000, 0x1000, "kernel"}};
	check_placement(kr3, 1);
	assert_true(bs.sregs.cr3 >= 0x5000);

	/* Flat binaries stay at 1 MiB: the standard layout. */
	std_layout = true;
	uint8_t code[] = {0xf4};
	want_format = KERNEL_FLAT;
	load_ok(write_file("flat1.bin", code, 1), NULL, NULL, NULL, 0);
	check_long(LOADER_FLAT_BASE, false);
}

/* An image over all of low memory: the boot data goes above 1 MiB, after
 * the modules (which start at 1 MiB) and never into them. */
static void test_place_image_covers_low(void **state)
{
	uint8_t m1[5000], m2[100];
	fill_pattern(m1, sizeof(m1), 24);
	fill_pattern(m2, sizeof(m2), 25);
	const char *p1 = write_file("covmod1", m1, sizeof(m1));
	const char *p2 = write_file("covmod2", m2, sizeof(m2));
	struct boot_module mods[] = {{p1, "one"}, {p2, NULL}};
	const uint32_t span = (uint32_t)(LOADER_BIOS - 0x1000);

	std_layout = false;
	const char *k = mb_raw("cover.bin", 0x1000, 0x1000, span);
	load_ok(k, "c", NULL, mods, 2);
	check_prot32(0x1040);
	struct range kr[] = {{0x1000, span, "kernel"}};
	check_placement(kr, 1);
	assert_true(bs.sregs.gdt.base >= LOADER_1M);
	assert_true(bs.regs.rbx >= LOADER_1M);
	uint64_t ml = ram32(bs.regs.rbx + 24);
	assert_int_equal(ram32(ml), LOADER_1M);
	assert_memory_equal(ram(ram32(ml), sizeof(m1)), m1, sizeof(m1));
	assert_memory_equal(ram(ram32(ml + 16), sizeof(m2)), m2, sizeof(m2));

	/* ELF64 over low memory: the page tables go above 1 MiB. */
	load_ok(elf64_file("cover64.elf", 0x1000, span, NULL), NULL, NULL, NULL, 0);
	check_long(0x1000, false);
	struct range kr2[] = {{0x1000, span, "kernel"}};
	check_placement(kr2, 1);
	assert_true(bs.sregs.cr3 >= LOADER_1M);

	/* PVH over low memory with an initrd from the top down. */
	uint8_t code[0x100], note[64];
	fill_pattern(code, sizeof(code), 26);
	size_t nlen = pvh_note(note, 0x1040, 4, false);
	struct tseg s[] = {
		{ELF_PT_LOAD, 0x1000, 0x1000, span, code, sizeof(code)},
		{ELF_PT_NOTE, 0, 0, 0, note, nlen},
	};
	size_t len;
	uint8_t *img = make_elf(ELF_CLASS64, ELF_EM_X86_64, 0x1040, s, 2, NULL, 0, &len);
	const char *pk = write_file("pvhcover", img, len);
	free(img);
	struct boot_module pm[] = {{p2, "m2 args"}};
	load_ok(pk, "pvh", p1, pm, 1);
	assert_int_equal(bs.format, KERNEL_PVH);
	check_placement(kr2, 1);
	assert_int_equal(ram32(bs.regs.rbx + 12), 2);
	assert_true(bs.regs.rbx >= LOADER_1M);
}

/* Segments leave holes in low memory: each piece of boot data takes the
 * lowest hole it fits in; a long command line skips the small holes. */
static void test_place_fragmented(void **state)
{
	uint8_t code[0x100];
	fill_pattern(code, sizeof(code), 27);
	mb_header(code, MB_FLAG_MEMINFO, 0, 0, 0, 0, 0);
	/* Holes: 0x2000-0x3000 (one page), 0x5000-0x6000, 0x20000 up. */
	struct tseg s[] = {
		{ELF_PT_LOAD, 0x1000, 0x1000, 0x1000, code, sizeof(code)},
		{ELF_PT_LOAD, 0x3000, 0x3000, 0x2000, NULL, 0},
		{ELF_PT_LOAD, 0x6000, 0x6000, 0x1A000, NULL, 0},
	};
	size_t len;
	uint8_t *img = make_elf(ELF_CLASS32, ELF_EM_386, 0x1040, s, 3, NULL, 0, &len);
	const char *k = write_file("frag.elf", img, len);
	free(img);
	char cl[6000];
	memset(cl, 'q', sizeof(cl) - 1);
	cl[sizeof(cl) - 1] = 0;

	std_layout = false;
	load_ok(k, cl, NULL, NULL, 0);
	check_prot32(0x1040);
	struct range kr[] = {{0x1000, 0x1000, "s0"}, {0x3000, 0x2000, "s1"},
	                     {0x6000, 0x1A000, "s2"}};
	check_placement(kr, 3);
	assert_int_equal(bs.sregs.gdt.base, 0x2000);
	assert_int_equal(bs.regs.rsp, 0x6000);
	assert_int_equal(bs.regs.rbx, 0x20000);
}

/* Random low-memory images (and modules) in 64 MiB: there is always room,
 * so every load succeeds and its boot data avoids everything. */
static void test_place_random(void **state)
{
	uint8_t code[0x100];
	fill_pattern(code, sizeof(code), 28);
	mb_header(code, MB_FLAG_MEMINFO, 0, 0, 0, 0, 0);
	uint8_t m1[777];
	fill_pattern(m1, sizeof(m1), 29);
	const char *p1 = write_file("randmod", m1, sizeof(m1));
	struct boot_module mods[] = {{p1, "r"}};
	std_layout = false;
	srand(8);
	for (int iter = 0; iter < 300; iter++) {
		struct tseg s[4];
		struct range kr[4];
		size_t n = 1 + (size_t)rand() % 4;
		for (size_t i = 0; i < n; i++) {
			uint64_t at = 0x1000 + (uint64_t)(rand() % 0x9E) * 0x1000;
			uint64_t room = LOADER_BIOS - at;
			uint64_t memsz = 0x100 + (uint64_t)rand() % 0x20000;
			if (memsz > room)
				memsz = room;
			s[i] = (struct tseg){ELF_PT_LOAD, at, at, memsz, i ? NULL : code,
			                     i ? 0 : (memsz < sizeof(code) ? memsz : sizeof(code))};
			kr[i] = (struct range){at, memsz, "segment"};
		}
		bool is64 = rand() % 2;
		size_t len;
		uint8_t *img = make_elf(is64 ? ELF_CLASS64 : ELF_CLASS32,
		                        is64 ? ELF_EM_X86_64 : ELF_EM_386, s[0].paddr, s, n, NULL,
		                        0, &len);
		if (is64) /* a plain ELF64 with page tables, or a multiboot one */
			memset(img + SEG_DATA, 0, 12);
		const char *k = write_file("rand.elf", img, len);
		free(img);
		load_ok(k, "r", NULL, is64 ? NULL : mods, is64 ? 0 : 1);
		check_placement(kr, n);
	}
}

/* Nothing fits: a clear refusal naming what found no room. */
static void test_place_no_room(void **state)
{
	const uint32_t span = (uint32_t)(LOADER_BIOS - 0x1000);

	/* 1 MiB of RAM, all of low memory taken by the image. */
	vm_with_ram(MIB);
	load_fails(mb_raw("full.bin", 0x1000, 0x100, span), NULL, NULL, 0,
	           "no room for the GDT (0x1000 bytes): guest RAM below 4 GiB");
	load_fails(elf64_file("full64.elf", 0x1000, span, NULL), NULL, NULL, 0,
	           "no room for the GDT");

	/* 2 MiB: a module over all of [1 MiB, 2 MiB). */
	vm_with_ram(2 * MIB);
	const char *big = sparse_file("bigmod", MIB);
	struct boot_module mods[] = {{big, NULL}};
	load_fails(mb_raw("full2.bin", 0x1000, 0x100, span), NULL, mods, 1, "no room for");
	/* A module of 1 MiB minus a page leaves room for the GDT only. */
	assert_int_equal(truncate(big, (off_t)(MIB - 0x1000)), 0);
	load_fails(mb_raw("full3.bin", 0x1000, 0x100, span), NULL, mods, 1,
	           "no room for the boot stack");
	/* Minus three pages: room for GDT, stack and information. */
	assert_int_equal(truncate(big, (off_t)(MIB - 0x3000)), 0);
	std_layout = false;
	load_ok(mb_raw("full4.bin", 0x1000, 0x100, span), NULL, NULL, mods, 1);
	struct range kr[] = {{0x1000, span, "kernel"}};
	check_placement(kr, 1);
	assert_int_equal(bs.regs.rbx, 2 * MIB - 0x1000);
	unlink(big);
}

/* Error text lands in a short buffer without overflow; no buffer is fine. */
static void test_error_buffer(void **state)
{
	char small[8];
	struct boot_request req = {.kernel_path = tpath("missing")};
	assert_int_equal(loader_load(&test_vm, &req, &bs, small, sizeof(small)), -ENOENT);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_int_equal(loader_load(&test_vm, &req, &bs, NULL, 0), -ENOENT);
	req.kernel_path = NULL;
	assert_int_equal(loader_load(&test_vm, &req, &bs, small, sizeof(small)), -EINVAL);
}

#define T(fn) cmocka_unit_test_setup(fn, test_setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_memory_map),
		T(test_multiboot_elf32),
		T(test_multiboot_elf32_address_fields),
		T(test_multiboot_aout_kludge),
		T(test_multiboot_elf64),
		T(test_multiboot_low_kernel),
		T(test_multiboot_real_kernel),
		T(test_bzimage),
		T(test_bzimage_fixed),
		T(test_bzimage_bad),
		T(test_pvh_phdr_note),
		T(test_pvh_section_note),
		T(test_elf64),
		T(test_flat),
		T(test_formats),
		T(test_fifo),
		T(test_crafted_elf_work),
		T(test_bad_elf),
		T(test_bad_multiboot),
		T(test_mutations),
		T(test_place_image_at_0x8000),
		T(test_place_image_at_0x1000),
		T(test_place_image_covers_low),
		T(test_place_fragmented),
		T(test_place_random),
		T(test_place_no_room),
		T(test_error_buffer),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
