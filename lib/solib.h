/* solib.h: a minimal loader for one self-contained shared library.
 *
 * libzhv loads Zydis with it rather than with dlopen(): zhv run is linked
 * statically (no dynamic loader, no shared C library to map and relocate at
 * every start), and dlopen() in a static program would map a second C
 * library. Zydis needs only a few C library functions, which the caller
 * provides (solib_import). What it handles: an x86-64 ET_DYN file without
 * an interpreter or thread-local storage; PT_LOAD segments (bss included),
 * RELA relocations of types RELATIVE, 64, GLOB_DAT and JUMP_SLOT against the
 * library's own symbols or the imports (an unknown weak symbol is 0, an
 * unknown strong one an error), PT_GNU_RELRO, DT_INIT and DT_INIT_ARRAY. A
 * library is never unloaded. Not thread-safe: callers serialize. */
#ifndef ZHV_LIB_SOLIB_H
#define ZHV_LIB_SOLIB_H

#include <elf.h>
#include <stddef.h>
#include <stdint.h>

struct solib_import {
	const char *name; /* NULL ends the list */
	void *addr;
};

struct solib {
	uint8_t *base;
	size_t span;
	const Elf64_Sym *dynsym;
	size_t nsyms;
	const char *dynstr;
	size_t strsz;
};

/* solib_load: map, relocate and initialize (path). Returns 0, or -1 with a
 * message in (err) (nothing stays mapped). */
int solib_load(const char *path, const struct solib_import *imports, struct solib *lib,
               char *err, size_t errlen);

/* solib_sym: the address of the library's function (name), or NULL. */
void *solib_sym(const struct solib *lib, const char *name);

#endif
