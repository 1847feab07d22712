/* solib_test: libzhv's loader of Zydis (lib/solib.c): the real library
 * loads and decodes; what is not a loadable library is refused with a
 * message, leaving nothing mapped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <Zydis/Zydis.h>

#include "solib.h"

void __stack_chk_fail(void);

static const struct solib_import imports[] = {
	{"memcpy", (void *)memcpy}, {"memset", (void *)memset}, {"strlen", (void *)strlen},
	{"__assert_fail", (void *)__assert_fail}, {"__stack_chk_fail", (void *)__stack_chk_fail},
	{NULL, NULL},
};

static const char *zydis_path(void)
{
	static const char *const paths[] = {"/usr/lib/x86_64-linux-gnu/libZydis.so.4.0",
	                                    "/usr/lib64/libZydis.so.4.0", "/usr/lib/libZydis.so.4.0"};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], R_OK) == 0)
			return paths[i];
	return NULL;
}

/* Zydis loads and decodes `mov rax, [rbx+8]` (48 8b 43 08). */
static void test_zydis_loads_and_decodes(void **state)
{
	(void)state;
	const char *path = zydis_path();
	if (!path)
		skip(); /* (the build needs Zydis's headers, not necessarily its library here) */
	struct solib lib;
	char err[256] = "";
	if (solib_load(path, imports, &lib, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	__typeof__(ZydisDecoderInit) *init;
	__typeof__(ZydisDecoderDecodeFull) *decode;
	*(void **)&init = solib_sym(&lib, "ZydisDecoderInit");
	*(void **)&decode = solib_sym(&lib, "ZydisDecoderDecodeFull");
	assert_non_null(init);
	assert_non_null(decode);
	assert_null(solib_sym(&lib, "ZydisNoSuchFunction"));
	ZydisDecoder dec;
	assert_true(ZYAN_SUCCESS(init(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)));
	static const uint8_t code[] = {0x48, 0x8b, 0x43, 0x08};
	ZydisDecodedInstruction insn;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	assert_true(ZYAN_SUCCESS(decode(&dec, code, sizeof(code), &insn, ops)));
	assert_int_equal(insn.length, 4);
	assert_int_equal(insn.mnemonic, ZYDIS_MNEMONIC_MOV);
	assert_int_equal(ops[1].mem.disp.value, 8);
}

/* A library that needs a C function the caller does not provide. */
static void test_missing_import_refused(void **state)
{
	(void)state;
	const char *path = zydis_path();
	if (!path)
		skip();
	static const struct solib_import none[] = {{NULL, NULL}};
	struct solib lib;
	char err[256] = "";
	assert_int_equal(solib_load(path, none, &lib, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "needs symbol"));
	assert_null(lib.base);
}

/* Not a shared library: a text file, an empty file, a truncated ELF
 * header, a missing file. */
static void test_bad_files_refused(void **state)
{
	(void)state;
	char dir[] = "/tmp/solib_test.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64];
	struct solib lib;
	char err[256];
	static const struct {
		const char *data;
		size_t len;
	} cases[] = {
		{"not an ELF file\n", 16},
		{"", 0},
		{"\177ELF\2\1\1", 7},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(path, sizeof(path), "%s/f%zu", dir, i);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, cases[i].data, cases[i].len), (ssize_t)cases[i].len);
		close(fd);
		err[0] = '\0';
		assert_int_equal(solib_load(path, imports, &lib, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "not an x86-64 ELF shared library"));
		assert_null(lib.base);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(solib_load(path, imports, &lib, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	/* An executable (ET_EXEC or a PIE with an interpreter) is no library. */
	assert_int_equal(solib_load("/proc/self/exe", imports, &lib, err, sizeof(err)), -1);
	assert_null(lib.base);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zydis_loads_and_decodes),
		cmocka_unit_test(test_missing_import_refused),
		cmocka_unit_test(test_bad_files_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
