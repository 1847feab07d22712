/* solib.c: a minimal loader for one self-contained shared library (see
 * solib.h). */
#include "solib.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096ull
#define PAGE_DOWN(x) ((x) & ~(PAGE - 1))
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))
#define MAX_PHDRS 32
#define MAX_SHDRS 128

static int fail(char *err, size_t errlen, const char *path, const char *what)
{
	snprintf(err, errlen, "%s: %s", path, what);
	return -1;
}

static int prot_of(uint32_t flags)
{
	return (flags & PF_R ? PROT_READ : 0) | (flags & PF_W ? PROT_WRITE : 0) |
	       (flags & PF_X ? PROT_EXEC : 0);
}

/* Map the PT_LOAD segments of (fd) into one reservation. */
static int map_segments(int fd, const Elf64_Phdr *ph, unsigned n, uint64_t file_size,
                        struct solib *lib, char *err, size_t errlen, const char *path)
{
	uint64_t span = 0;
	for (unsigned i = 0; i < n; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		uint64_t end;
		if (ph[i].p_filesz > ph[i].p_memsz || ph[i].p_offset > file_size ||
		    ph[i].p_filesz > file_size - ph[i].p_offset ||
		    (ph[i].p_vaddr - ph[i].p_offset) % PAGE ||
		    __builtin_add_overflow(ph[i].p_vaddr, ph[i].p_memsz, &end) ||
		    end > (1ull << 32))
			return fail(err, errlen, path, "bad PT_LOAD segment");
		if (PAGE_UP(end) > span)
			span = PAGE_UP(end);
	}
	if (!span)
		return fail(err, errlen, path, "no PT_LOAD segment");
	uint8_t *base = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return fail(err, errlen, path, strerror(errno));
	lib->base = base;
	lib->span = span;
	for (unsigned i = 0; i < n; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_type != PT_LOAD || !p->p_memsz)
			continue;
		/* (PT_GNU_RELRO, in the writable segment, goes read-only once
		 * relocated.) */
		int prot = prot_of(p->p_flags);
		uint64_t start = PAGE_DOWN(p->p_vaddr);
		uint64_t file_end = p->p_vaddr + p->p_filesz;
		if (p->p_filesz &&
		    mmap(base + start, PAGE_UP(file_end) - start, prot, MAP_PRIVATE | MAP_FIXED, fd,
		         (off_t)PAGE_DOWN(p->p_offset)) == MAP_FAILED)
			return fail(err, errlen, path, strerror(errno));
		uint64_t mem_end = PAGE_UP(p->p_vaddr + p->p_memsz);
		if (p->p_memsz > p->p_filesz) {
			/* .bss: the rest of the file's last page, then zero pages. */
			if (!(p->p_flags & PF_W))
				return fail(err, errlen, path, "bss in a read-only segment");
			if (p->p_filesz && PAGE_UP(file_end) > file_end)
				memset(base + file_end, 0, PAGE_UP(file_end) - file_end);
			uint64_t zero_start = p->p_filesz ? PAGE_UP(file_end) : start;
			if (mem_end > zero_start &&
			    mmap(base + zero_start, mem_end - zero_start, prot,
			         MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
				return fail(err, errlen, path, strerror(errno));
		}
	}
	return 0;
}

/* (off, len) lies within the image. */
static bool in_image(const struct solib *lib, uint64_t off, uint64_t len)
{
	return off <= lib->span && len <= lib->span - off;
}

static int apply_relocs(struct solib *lib, const Elf64_Rela *r, size_t n,
                        const struct solib_import *imports, char *err, size_t errlen,
                        const char *path)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t type = ELF64_R_TYPE(r[i].r_info);
		uint32_t symi = ELF64_R_SYM(r[i].r_info);
		if (type == R_X86_64_NONE)
			continue;
		if (!in_image(lib, r[i].r_offset, 8))
			return fail(err, errlen, path, "relocation outside the image");
		/* (A relocated field may be unaligned: packed tables.) */
		uint8_t *where = lib->base + r[i].r_offset;
		uint64_t value = 0;
		if (type == R_X86_64_RELATIVE) {
			value = (uint64_t)(uintptr_t)lib->base + (uint64_t)r[i].r_addend;
			memcpy(where, &value, sizeof(value));
			continue;
		}
		if (type != R_X86_64_64 && type != R_X86_64_GLOB_DAT && type != R_X86_64_JUMP_SLOT)
			return fail(err, errlen, path, "unsupported relocation type");
		if (symi >= lib->nsyms)
			return fail(err, errlen, path, "relocation with a bad symbol index");
		const Elf64_Sym *s = &lib->dynsym[symi];
		if (s->st_shndx != SHN_UNDEF) {
			value = (uint64_t)(uintptr_t)lib->base + s->st_value;
		} else {
			const char *name = s->st_name < lib->strsz ? lib->dynstr + s->st_name : "";
			const struct solib_import *im = imports;
			while (im->name && strcmp(im->name, name) != 0)
				im++;
			if (im->name) {
				value = (uint64_t)(uintptr_t)im->addr;
			} else if (ELF64_ST_BIND(s->st_info) != STB_WEAK) {
				snprintf(err, errlen, "%s: needs symbol %s, which libzhv does not provide",
				         path, name);
				return -1;
			}
		}
		value += type == R_X86_64_64 ? (uint64_t)r[i].r_addend : 0;
		memcpy(where, &value, sizeof(value));
	}
	return 0;
}

static int load_fd(int fd, const char *path, const struct solib_import *imports,
                   struct solib *lib, char *err, size_t errlen)
{
	struct stat st;
	Elf64_Ehdr eh;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return fail(err, errlen, path, "not a regular file");
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_type != ET_DYN ||
	    eh.e_machine != EM_X86_64 || eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    eh.e_phnum == 0 || eh.e_phnum > MAX_PHDRS || eh.e_shentsize != sizeof(Elf64_Shdr) ||
	    eh.e_shnum == 0 || eh.e_shnum > MAX_SHDRS)
		return fail(err, errlen, path, "not an x86-64 ELF shared library");
	Elf64_Phdr ph[MAX_PHDRS];
	Elf64_Shdr sh[MAX_SHDRS];
	size_t phlen = eh.e_phnum * sizeof(ph[0]), shlen = eh.e_shnum * sizeof(sh[0]);
	if (pread(fd, ph, phlen, (off_t)eh.e_phoff) != (ssize_t)phlen ||
	    pread(fd, sh, shlen, (off_t)eh.e_shoff) != (ssize_t)shlen)
		return fail(err, errlen, path, "truncated headers");
	const Elf64_Phdr *dyn_ph = NULL, *relro = NULL;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_DYNAMIC)
			dyn_ph = &ph[i];
		else if (ph[i].p_type == PT_GNU_RELRO)
			relro = &ph[i];
		else if (ph[i].p_type == PT_TLS || ph[i].p_type == PT_INTERP)
			return fail(err, errlen, path, "thread-local storage or an interpreter");
	}
	if (!dyn_ph)
		return fail(err, errlen, path, "no PT_DYNAMIC");
	if (map_segments(fd, ph, eh.e_phnum, (uint64_t)st.st_size, lib, err, errlen, path) < 0)
		return -1;
	if (!in_image(lib, dyn_ph->p_vaddr, dyn_ph->p_memsz))
		return fail(err, errlen, path, "PT_DYNAMIC outside the image");

	/* The dynamic section. */
	const Elf64_Dyn *dyn = (const Elf64_Dyn *)(const void *)(lib->base + dyn_ph->p_vaddr);
	size_t ndyn = dyn_ph->p_memsz / sizeof(*dyn);
	uint64_t rela = 0, relasz = 0, jmprel = 0, pltrelsz = 0, symtab = 0, strtab = 0;
	uint64_t init = 0, init_array = 0, init_arraysz = 0;
	for (size_t i = 0; i < ndyn && dyn[i].d_tag != DT_NULL; i++) {
		uint64_t v = dyn[i].d_un.d_val;
		switch (dyn[i].d_tag) {
		case DT_RELA: rela = v; break;
		case DT_RELASZ: relasz = v; break;
		case DT_JMPREL: jmprel = v; break;
		case DT_PLTRELSZ: pltrelsz = v; break;
		case DT_SYMTAB: symtab = v; break;
		case DT_STRTAB: strtab = v; break;
		case DT_STRSZ: lib->strsz = v; break;
		case DT_INIT: init = v; break;
		case DT_INIT_ARRAY: init_array = v; break;
		case DT_INIT_ARRAYSZ: init_arraysz = v; break;
		case DT_PLTREL:
			if (v != DT_RELA)
				return fail(err, errlen, path, "PLT relocations are not RELA");
			break;
		case DT_REL: case DT_TEXTREL:
			return fail(err, errlen, path, "REL or text relocations");
		case DT_FLAGS:
			if (v & DF_TEXTREL)
				return fail(err, errlen, path, "text relocations");
			break;
		}
	}
	/* The symbol count: the .dynsym section's size. */
	for (unsigned i = 0; i < eh.e_shnum; i++)
		if (sh[i].sh_type == SHT_DYNSYM && sh[i].sh_entsize == sizeof(Elf64_Sym) &&
		    sh[i].sh_addr == symtab)
			lib->nsyms = sh[i].sh_size / sizeof(Elf64_Sym);
	if (!symtab || !strtab || !lib->nsyms || !in_image(lib, symtab, lib->nsyms * sizeof(Elf64_Sym)) ||
	    !in_image(lib, strtab, lib->strsz) || !in_image(lib, rela, relasz) ||
	    !in_image(lib, jmprel, pltrelsz) || !in_image(lib, init_array, init_arraysz) ||
	    (init && !in_image(lib, init, 1)) || (lib->strsz && lib->base[strtab + lib->strsz - 1]))
		return fail(err, errlen, path, "bad dynamic section");
	lib->dynsym = (const Elf64_Sym *)(const void *)(lib->base + symtab);
	lib->dynstr = (const char *)(lib->base + strtab);

	if (apply_relocs(lib, (const Elf64_Rela *)(const void *)(lib->base + rela),
	                 relasz / sizeof(Elf64_Rela), imports, err, errlen, path) < 0 ||
	    apply_relocs(lib, (const Elf64_Rela *)(const void *)(lib->base + jmprel),
	                 pltrelsz / sizeof(Elf64_Rela), imports, err, errlen, path) < 0)
		return -1;
	if (relro && relro->p_memsz) {
		uint64_t start = PAGE_DOWN(relro->p_vaddr);
		uint64_t end = PAGE_DOWN(relro->p_vaddr + relro->p_memsz);
		if (end > start && in_image(lib, start, end - start) &&
		    mprotect(lib->base + start, end - start, PROT_READ) < 0)
			return fail(err, errlen, path, strerror(errno));
	}
	/* Its initializers, as the dynamic loader runs them (it is never
	 * unloaded: no finalizer runs). */
	if (init)
		((void (*)(void))(void *)(lib->base + init))();
	for (size_t i = 0; i < init_arraysz / sizeof(uint64_t); i++) {
		uint64_t fn;
		memcpy(&fn, lib->base + init_array + i * sizeof(fn), sizeof(fn));
		if (fn && fn != UINT64_MAX)
			((void (*)(void))(uintptr_t)fn)();
	}
	return 0;
}

int solib_load(const char *path, const struct solib_import *imports, struct solib *lib,
               char *err, size_t errlen)
{
	memset(lib, 0, sizeof(*lib));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	int ret = load_fd(fd, path, imports, lib, err, errlen);
	close(fd);
	if (ret < 0 && lib->base) {
		munmap(lib->base, lib->span);
		memset(lib, 0, sizeof(*lib));
	}
	return ret;
}

void *solib_sym(const struct solib *lib, const char *name)
{
	for (size_t i = 1; i < lib->nsyms; i++) {
		const Elf64_Sym *s = &lib->dynsym[i];
		if (s->st_shndx == SHN_UNDEF || s->st_name >= lib->strsz ||
		    ELF64_ST_TYPE(s->st_info) != STT_FUNC ||
		    (ELF64_ST_BIND(s->st_info) != STB_GLOBAL && ELF64_ST_BIND(s->st_info) != STB_WEAK) ||
		    strcmp(lib->dynstr + s->st_name, name) != 0 || !in_image(lib, s->st_value, 1))
			continue;
		return lib->base + s->st_value;
	}
	return NULL;
}
