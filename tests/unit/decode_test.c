/* decode_test.c: unit tests for x86 decoding, backwards write decoding and page walks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "x86/decode.h"

#define L64 DECODE_MODE_LONG64
#define P32 DECODE_MODE_PROT32
#define R16 DECODE_MODE_REAL16

#define CR0_PE   (1ull << 0)
#define CR0_PG   (1ull << 31)
#define CR4_PSE  (1ull << 4)
#define CR4_PAE  (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)

#define P  1ull
#define RW 2ull
#define PS (1ull << 7)

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

/* An instruction as bytes (at most 15 plus room for trailing junk). */
struct bytes {
	uint8_t b[20];
	size_t n;
};

static int text_terminated(const struct decode_insn *in)
{
	return memchr(in->text, '\0', sizeof(in->text)) != NULL;
}

/* ---- decode_mode_of ------------------------------------------------------ */

static void test_mode_of(void **state)
{
	assert_int_equal(decode_mode_of(0, 0, false, false), R16);
	assert_int_equal(decode_mode_of(0x10, 0, false, true), R16); /* PE clear */
	assert_int_equal(decode_mode_of(CR0_PE, 0, false, false), R16);
	assert_int_equal(decode_mode_of(CR0_PE, 0, false, true), P32);
	assert_int_equal(decode_mode_of(CR0_PE, 0, true, false), R16); /* L without LMA */
	assert_int_equal(decode_mode_of(CR0_PE | CR0_PG, EFER_LME | EFER_LMA, true, false), L64);
	/* compatibility mode */
	assert_int_equal(decode_mode_of(CR0_PE | CR0_PG, EFER_LME | EFER_LMA, false, true), P32);
	assert_int_equal(decode_mode_of(CR0_PE | CR0_PG, EFER_LME | EFER_LMA, false, false), R16);
}

/* ---- lengths ------------------------------------------------------------- */

struct len_case {
	enum decode_mode mode;
	struct bytes in;
	unsigned len; /* expected; 0 = invalid */
};

static const struct len_case len_cases[] = {
	/* 64-bit */
	{ L64, { { 0x90 }, 1 }, 1 },
	{ L64, { { 0x89, 0x07 }, 2 }, 2 },
	{ L64, { { 0x40, 0x89, 0x07 }, 3 }, 3 },
	{ L64, { { 0xc6, 0x42, 0x08, 0x01 }, 4 }, 4 },
	{ L64, { { 0x48, 0xc7, 0x04, 0x25, 0x00, 0xf0, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00 }, 12 }, 12 },
	{ L64, { { 0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8 }, 10 }, 10 },
	{ L64, { { 0xa3, 0, 0, 0, 0, 0, 0, 0, 0x80 }, 9 }, 9 },
	{ L64, { { 0x0f, 0x05 }, 2 }, 2 },
	{ L64, { { 0xe8, 0, 0, 0, 0 }, 5 }, 5 },
	{ L64, { { 0x89, 0x05, 0x00, 0x01, 0x00, 0x00 }, 6 }, 6 },
	{ L64, { { 0x67, 0x89, 0x05, 0x00, 0x01, 0x00, 0x00 }, 7 }, 7 },
	{ L64, { { 0x65, 0x48, 0x89, 0x04, 0x25, 0x28, 0, 0, 0 }, 9 }, 9 },
	{ L64, { { 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00 }, 6 }, 6 },
	{ L64, { { 0xf3, 0x48, 0xab }, 3 }, 3 },
	{ L64, { { 0xc4, 0xe2, 0x79, 0x18, 0x07 }, 5 }, 5 },       /* vbroadcastss */
	{ L64, { { 0x62, 0xf1, 0x7c, 0x48, 0x11, 0x07 }, 6 }, 6 }, /* vmovups zmm */
	{ L64, { { 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0 }, 15 }, 15 },
	{ L64, { { 0x06 }, 1 }, 0 },                         /* push es: invalid in 64-bit */
	{ L64, { { 0x48, 0xc7, 0x04, 0x25 }, 4 }, 0 },       /* truncated */
	{ L64, { { 0xf0, 0x90 }, 2 }, 0 },                   /* lock nop */
	/* 32-bit */
	{ P32, { { 0x40, 0x89, 0x07 }, 3 }, 1 },             /* inc eax */
	{ P32, { { 0x89, 0x44, 0x8b, 0x10 }, 4 }, 4 },
	{ P32, { { 0xa3, 0x00, 0x00, 0x0b, 0x00 }, 5 }, 5 },
	{ P32, { { 0x66, 0xb8, 0x34, 0x12 }, 4 }, 4 },
	{ P32, { { 0xc7, 0x05, 0, 0, 0, 0, 1, 2, 3, 4 }, 10 }, 10 },
	{ P32, { { 0x66, 0x89, 0x03 }, 3 }, 3 },
	{ P32, { { 0x06 }, 1 }, 1 },
	/* 16-bit */
	{ R16, { { 0x89, 0x40, 0x04 }, 3 }, 3 },
	{ R16, { { 0xb8, 0x34, 0x12 }, 3 }, 3 },
	{ R16, { { 0x66, 0xb8, 0x78, 0x56, 0x34, 0x12 }, 6 }, 6 },
	{ R16, { { 0xa3, 0x00, 0x80 }, 3 }, 3 },
	{ R16, { { 0x67, 0x89, 0x03 }, 3 }, 3 },
	{ R16, { { 0xc7, 0x06, 0x00, 0x80, 0x34, 0x12 }, 6 }, 6 },
	{ R16, { { 0xea, 0x00, 0x00, 0x00, 0xf0 }, 5 }, 5 },
	{ R16, { { 0x66, 0xc7, 0x06, 0x00, 0x80, 1, 2, 3, 4 }, 9 }, 9 },
};

static void test_lengths(void **state)
{
	for (size_t i = 0; i < sizeof(len_cases) / sizeof(len_cases[0]); i++) {
		const struct len_case *c = &len_cases[i];
		struct decode_insn out;
		memset(&out, 0xa5, sizeof(out));
		bool ok = decode_one(c->in.b, c->in.n, c->mode, NULL, &out);
		if (ok != (c->len != 0) || (ok && out.length != c->len))
			fail_msg("case %zu: ok=%d len=%u, want %u", i, ok, ok ? out.length : 0, c->len);
		assert_true(text_terminated(&out));
		if (ok)
			assert_true(out.text[0] != '\0');
		else
			assert_int_equal(out.length, 0);
	}
}

/* Trailing bytes after the instruction do not change its length. */
static void test_length_with_trailing_bytes(void **state)
{
	const uint8_t b[] = { 0x89, 0x07, 0xc6, 0x42, 0x08, 0x01, 0x90, 0x90 };
	struct decode_insn out;
	assert_true(decode_one(b, sizeof(b), L64, NULL, &out));
	assert_int_equal(out.length, 2);
	assert_true(decode_one(b + 2, sizeof(b) - 2, L64, NULL, &out));
	assert_int_equal(out.length, 4);
	/* more than 15 bytes available is fine */
	uint8_t big[32];
	memset(big, 0x90, sizeof(big));
	assert_true(decode_one(big, sizeof(big), L64, NULL, &out));
	assert_int_equal(out.length, 1);
}

/* ---- memory operands ----------------------------------------------------- */

struct mem_case {
	enum decode_mode mode;
	struct bytes in;
	bool has_mem, rd, wr;
	unsigned size;
};

static const struct mem_case mem_cases[] = {
	{ L64, { { 0x89, 0x07 }, 2 }, true, false, true, 4 },               /* mov [rdi], eax */
	{ L64, { { 0x8b, 0x07 }, 2 }, true, true, false, 4 },               /* mov eax, [rdi] */
	{ L64, { { 0x48, 0x8b, 0x07 }, 3 }, true, true, false, 8 },         /* mov rax, [rdi] */
	{ L64, { { 0x66, 0x89, 0x07 }, 3 }, true, false, true, 2 },         /* mov [rdi], ax */
	{ L64, { { 0xc6, 0x42, 0x08, 0x01 }, 4 }, true, false, true, 1 },   /* mov byte [rdx+8], 1 */
	{ L64, { { 0x00, 0x00 }, 2 }, true, true, true, 1 },                /* add [rax], al */
	{ L64, { { 0x48, 0x83, 0x00, 0x01 }, 4 }, true, true, true, 8 },    /* add qword [rax], 1 */
	{ L64, { { 0x80, 0x38, 0x01 }, 3 }, true, true, false, 1 },         /* cmp byte [rax], 1 */
	{ L64, { { 0xa4 }, 1 }, true, true, true, 1 },                      /* movsb */
	{ L64, { { 0x48, 0xa5 }, 2 }, true, true, true, 8 },                /* movsq */
	{ L64, { { 0xab }, 1 }, true, false, true, 4 },                     /* stosd */
	{ L64, { { 0xf3, 0xaa }, 2 }, true, false, true, 1 },               /* rep stosb */
	{ L64, { { 0xac }, 1 }, true, true, false, 1 },                     /* lodsb */
	{ L64, { { 0xff, 0x30 }, 2 }, true, true, false, 8 },               /* push qword [rax] */
	{ L64, { { 0x8f, 0x00 }, 2 }, true, false, true, 8 },               /* pop qword [rax] */
	{ L64, { { 0x50 }, 1 }, false, false, false, 0 },                   /* push rax */
	{ L64, { { 0xe8, 0, 0, 0, 0 }, 5 }, false, false, false, 0 },       /* call */
	{ L64, { { 0xc3 }, 1 }, false, false, false, 0 },                   /* ret */
	{ L64, { { 0x48, 0x8d, 0x04, 0x08 }, 4 }, false, false, false, 0 }, /* lea */
	{ L64, { { 0x48, 0x89, 0xc7 }, 3 }, false, false, false, 0 },       /* mov rdi, rax */
	{ L64, { { 0x87, 0x07 }, 2 }, true, true, true, 4 },                /* xchg [rdi], eax */
	{ L64, { { 0xf0, 0x0f, 0xb1, 0x0f }, 4 }, true, true, true, 4 },    /* lock cmpxchg */
	{ L64, { { 0x0f, 0x11, 0x07 }, 3 }, true, false, true, 16 },        /* movups [rdi], xmm0 */
	{ L64, { { 0x62, 0xf1, 0x7c, 0x48, 0x11, 0x07 }, 6 }, true, false, true, 64 },
	{ L64, { { 0x66, 0x0f, 0xf7, 0xc1 }, 4 }, true, false, true, 16 },  /* maskmovdqu */
	{ L64, { { 0x48, 0x89, 0x44, 0x24, 0x08 }, 5 }, true, false, true, 8 }, /* mov [rsp+8], rax */
	{ P32, { { 0x0f, 0xb6, 0x03 }, 3 }, true, true, false, 1 },         /* movzx eax, byte [ebx] */
	{ P32, { { 0x89, 0x44, 0x8b, 0x10 }, 4 }, true, false, true, 4 },
	{ P32, { { 0xff, 0x35, 0, 0x10, 0, 0 }, 6 }, true, true, false, 4 },/* push dword [0x1000] */
	{ R16, { { 0x89, 0x40, 0x04 }, 3 }, true, false, true, 2 },
	{ R16, { { 0x66, 0x89, 0x40, 0x04 }, 4 }, true, false, true, 4 },
	{ R16, { { 0x8a, 0x07 }, 2 }, true, true, false, 1 },               /* mov al, [bx] */
};

static void test_mem_access(void **state)
{
	for (size_t i = 0; i < sizeof(mem_cases) / sizeof(mem_cases[0]); i++) {
		const struct mem_case *c = &mem_cases[i];
		struct decode_insn out;
		if (!decode_one(c->in.b, c->in.n, c->mode, NULL, &out))
			fail_msg("case %zu: did not decode", i);
		assert_int_equal(out.length, c->in.n);
		if (out.has_mem != c->has_mem || out.mem_read != c->rd || out.mem_write != c->wr ||
		    out.mem_size != c->size)
			fail_msg("case %zu (%s): mem=%d r=%d w=%d size=%u", i, out.text, out.has_mem,
			         out.mem_read, out.mem_write, out.mem_size);
		assert_false(out.ea_valid); /* no registers given */
	}
}

/* A memory operand too big for mem_size reads as unknown, not truncated. */
static void test_mem_size_large(void **state)
{
	const uint8_t fxsave[] = { 0x0f, 0xae, 0x00 }; /* fxsave [rax]: 512 bytes */
	struct decode_insn out;
	assert_true(decode_one(fxsave, sizeof(fxsave), L64, NULL, &out));
	assert_true(out.has_mem);
	assert_true(out.mem_write);
	assert_int_equal(out.mem_size, 0);
}

/* ---- effective addresses ------------------------------------------------- */

static uint64_t ea_of(const uint8_t *b, size_t n, enum decode_mode mode,
                      const struct decode_regs *regs)
{
	struct decode_insn out;
	assert_true(decode_one(b, n, mode, regs, &out));
	assert_true(out.has_mem);
	assert_true(out.ea_valid);
	return out.ea;
}

static void test_ea_64(void **state)
{
	struct decode_regs r;
	memset(&r, 0, sizeof(r));
	for (int i = 0; i < 16; i++)
		r.gpr[i] = 0x1000ull * (uint64_t)(i + 1);
	r.rip = 0x401000;
	r.fs_base = 0x7f0000000000ull;
	r.gs_base = 0xffff888000000000ull;
	r.ds_base = 0x55555; /* ignored in 64-bit mode */

	const uint8_t absq[] = { 0x48, 0xc7, 0x04, 0x25, 0x00, 0xf0, 0xff, 0x00, 0, 0, 0, 0 };
	assert_int_equal(ea_of(absq, sizeof(absq), L64, &r), 0xfff000);
	const uint8_t sib[] = { 0x48, 0x89, 0x44, 0xcb, 0x10 }; /* mov [rbx+rcx*8+0x10], rax */
	assert_int_equal(ea_of(sib, sizeof(sib), L64, &r), r.gpr[RBX] + r.gpr[RCX] * 8 + 0x10);
	const uint8_t rex[] = { 0x43, 0x89, 0x44, 0x6c, 0xf8 }; /* mov [r12+r13*2-8], eax */
	assert_int_equal(ea_of(rex, sizeof(rex), L64, &r), r.gpr[R12] + r.gpr[R13] * 2 - 8);
	const uint8_t rdi[] = { 0x89, 0x07 };
	assert_int_equal(ea_of(rdi, sizeof(rdi), L64, &r), r.gpr[RDI]);
	const uint8_t rsp[] = { 0x48, 0x89, 0x44, 0x24, 0x08 };
	assert_int_equal(ea_of(rsp, sizeof(rsp), L64, &r), r.gpr[RSP] + 8);
	const uint8_t rbp[] = { 0x89, 0x45, 0xfc }; /* mov [rbp-4], eax */
	assert_int_equal(ea_of(rbp, sizeof(rbp), L64, &r), r.gpr[RBP] - 4);

	/* RIP-relative: relative to the next instruction */
	const uint8_t riprel[] = { 0x89, 0x05, 0x00, 0x01, 0x00, 0x00 };
	assert_int_equal(ea_of(riprel, sizeof(riprel), L64, &r), 0x401006 + 0x100);
	const uint8_t ripneg[] = { 0xc7, 0x05, 0xf0, 0xff, 0xff, 0xff, 1, 0, 0, 0 };
	assert_int_equal(ea_of(ripneg, sizeof(ripneg), L64, &r), 0x40100a - 0x10);
	/* EIP-relative (0x67): truncated to 32 bits */
	r.rip = 0xfffffff0;
	const uint8_t eiprel[] = { 0x67, 0x89, 0x05, 0x00, 0x01, 0x00, 0x00 };
	assert_int_equal(ea_of(eiprel, sizeof(eiprel), L64, &r), (0xfffffff7ull + 0x100) & 0xffffffff);
	r.rip = 0x401000;

	/* segment overrides */
	const uint8_t gs[] = { 0x65, 0x48, 0x89, 0x04, 0x25, 0x28, 0, 0, 0 };
	assert_int_equal(ea_of(gs, sizeof(gs), L64, &r), r.gs_base + 0x28);
	const uint8_t fs[] = { 0x64, 0x8b, 0x04, 0x25, 0x10, 0, 0, 0 };
	assert_int_equal(ea_of(fs, sizeof(fs), L64, &r), r.fs_base + 0x10);
	const uint8_t fsrax[] = { 0x64, 0x89, 0x18 }; /* mov fs:[rax], ebx */
	assert_int_equal(ea_of(fsrax, sizeof(fsrax), L64, &r), r.fs_base + r.gpr[RAX]);
	const uint8_t es[] = { 0x26, 0x89, 0x18 }; /* es ignored in 64-bit mode */
	assert_int_equal(ea_of(es, sizeof(es), L64, &r), r.gpr[RAX]);

	/* moffs64 */
	const uint8_t moffs[] = { 0xa3, 0x00, 0x10, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x80 };
	assert_int_equal(ea_of(moffs, sizeof(moffs), L64, &r), 0x80000000fee01000ull);

	/* 32-bit address size in 64-bit mode */
	r.gpr[RBX] = 0x100000010ull;
	const uint8_t a32[] = { 0x67, 0x89, 0x03 };
	assert_int_equal(ea_of(a32, sizeof(a32), L64, &r), 0x10);

	/* string instructions: es:[rdi] is the written one */
	const uint8_t movsb[] = { 0xa4 };
	assert_int_equal(ea_of(movsb, sizeof(movsb), L64, &r), r.gpr[RDI]);
	const uint8_t lodsb[] = { 0xac };
	assert_int_equal(ea_of(lodsb, sizeof(lodsb), L64, &r), r.gpr[RSI]);
	/* push [rax] reports [rax], not the stack slot */
	const uint8_t push[] = { 0xff, 0x30 };
	assert_int_equal(ea_of(push, sizeof(push), L64, &r), r.gpr[RAX]);

	/* 64-bit wrap-around */
	r.gpr[RAX] = ~0ull;
	const uint8_t wrap[] = { 0x89, 0x58, 0x02 }; /* mov [rax+2], ebx */
	assert_int_equal(ea_of(wrap, sizeof(wrap), L64, &r), 1);
}

static void test_ea_32(void **state)
{
	struct decode_regs r;
	memset(&r, 0, sizeof(r));
	r.gpr[RBX] = 0x1000;
	r.gpr[RCX] = 3;
	r.gpr[RSI] = 0xffffffff00002000ull; /* upper half ignored */
	r.rip = 0x8000;

	const uint8_t sib[] = { 0x89, 0x44, 0x8b, 0x10 }; /* mov [ebx+ecx*4+0x10], eax */
	assert_int_equal(ea_of(sib, sizeof(sib), P32, &r), 0x1000 + 12 + 0x10);
	const uint8_t esi[] = { 0x89, 0x06 };
	assert_int_equal(ea_of(esi, sizeof(esi), P32, &r), 0x2000);
	const uint8_t moffs[] = { 0xa3, 0x00, 0x00, 0x0b, 0x00 };
	assert_int_equal(ea_of(moffs, sizeof(moffs), P32, &r), 0xb0000);
	/* disp32 is absolute in 32-bit mode, not EIP-relative */
	const uint8_t abs32[] = { 0x89, 0x05, 0x00, 0x01, 0x00, 0x00 };
	assert_int_equal(ea_of(abs32, sizeof(abs32), P32, &r), 0x100);
	/* wrap at 4 GiB */
	r.gpr[RBX] = 0xfffffff0;
	const uint8_t wrap[] = { 0x89, 0x43, 0x20 }; /* mov [ebx+0x20], eax */
	assert_int_equal(ea_of(wrap, sizeof(wrap), P32, &r), 0x10);
	/* segment bases */
	r.gpr[RBX] = 0x100;
	r.ds_base = 0x10000;
	r.fs_base = 0x20000;
	r.ss_base = 0x30000;
	r.gpr[RBP] = 0x40;
	const uint8_t ds[] = { 0x89, 0x03 };
	assert_int_equal(ea_of(ds, sizeof(ds), P32, &r), 0x10100);
	const uint8_t fs[] = { 0x64, 0x89, 0x03 };
	assert_int_equal(ea_of(fs, sizeof(fs), P32, &r), 0x20100);
	const uint8_t ss[] = { 0x89, 0x45, 0x08 }; /* [ebp+8] defaults to ss */
	assert_int_equal(ea_of(ss, sizeof(ss), P32, &r), 0x30048);
}

static void test_ea_16(void **state)
{
	struct decode_regs r;
	memset(&r, 0, sizeof(r));
	r.gpr[RBX] = 0x10;
	r.gpr[RSI] = 0x20;
	r.gpr[RBP] = 0x100;
	r.gpr[RDI] = 0x1234;
	r.ds_base = 0xb8000;
	r.es_base = 0xa0000;
	r.ss_base = 0x7000;

	const uint8_t bxsi[] = { 0x89, 0x40, 0x04 }; /* mov [bx+si+4], ax */
	assert_int_equal(ea_of(bxsi, sizeof(bxsi), R16, &r), 0xb8034);
	const uint8_t bp[] = { 0x89, 0x46, 0xfe }; /* mov [bp-2], ax: ss */
	assert_int_equal(ea_of(bp, sizeof(bp), R16, &r), 0x70fe);
	const uint8_t esbp[] = { 0x26, 0x89, 0x46, 0xfe };
	assert_int_equal(ea_of(esbp, sizeof(esbp), R16, &r), 0xa00fe);
	const uint8_t moffs[] = { 0xa3, 0x00, 0x80 };
	assert_int_equal(ea_of(moffs, sizeof(moffs), R16, &r), 0xc0000);
	/* offset wraps at 64 KiB before the segment base is added */
	r.gpr[RBX] = 0xfffe;
	assert_int_equal(ea_of(bxsi, sizeof(bxsi), R16, &r), 0xb8000 + 0x22);
	/* stosb writes es:[di] */
	const uint8_t stosb[] = { 0xaa };
	assert_int_equal(ea_of(stosb, sizeof(stosb), R16, &r), 0xa1234);
	/* 0x67: 32-bit addressing in 16-bit mode */
	r.gpr[RBX] = 0x12345;
	const uint8_t a32[] = { 0x67, 0x89, 0x03 };
	assert_int_equal(ea_of(a32, sizeof(a32), R16, &r), 0xb8000 + 0x12345);
}

static void test_text(void **state)
{
	struct decode_regs r;
	struct decode_insn out;
	memset(&r, 0, sizeof(r));
	r.rip = 0x401000;

	const uint8_t absq[] = { 0x48, 0xc7, 0x04, 0x25, 0x00, 0xf0, 0xff, 0x00, 0, 0, 0, 0 };
	assert_true(decode_one(absq, sizeof(absq), L64, NULL, &out));
	assert_string_equal(out.text, "mov qword ptr [0xFFF000], 0x0");
	const uint8_t bxsi[] = { 0x89, 0x40, 0x04 };
	assert_true(decode_one(bxsi, sizeof(bxsi), R16, NULL, &out));
	assert_non_null(strstr(out.text, "bx"));
	assert_non_null(strstr(out.text, "si"));
	/* rip-relative: absolute with registers, relative without */
	const uint8_t riprel[] = { 0x89, 0x05, 0x00, 0x01, 0x00, 0x00 };
	assert_true(decode_one(riprel, sizeof(riprel), L64, &r, &out));
	assert_non_null(strstr(out.text, "0x401106"));
	assert_true(decode_one(riprel, sizeof(riprel), L64, NULL, &out));
	assert_non_null(strstr(out.text, "rip"));
	/* a long AVX-512 form still fits and is terminated */
	const uint8_t evex[] = { 0x62, 0xf2, 0xfd, 0xcf, 0x92, 0x8c, 0xc8, 0x00, 0x10, 0x00, 0x00 };
	struct decode_insn big;
	memset(&big, 0x41, sizeof(big));
	if (decode_one(evex, sizeof(evex), L64, &r, &big))
		assert_true(text_terminated(&big));
	/* out may be NULL */
	assert_true(decode_one(absq, sizeof(absq), L64, &r, NULL));
}

/* ---- garbage ------------------------------------------------------------- */

static void test_garbage(void **state)
{
	struct decode_insn out;
	const uint8_t ff[15] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t prefixes[20];
	memset(prefixes, 0x66, sizeof(prefixes));
	prefixes[19] = 0x90;

	assert_false(decode_one(ff, 0, L64, NULL, &out));
	assert_false(decode_one(NULL, 4, L64, NULL, &out));
	assert_false(decode_one(ff, sizeof(ff), L64, NULL, &out));
	assert_int_equal(out.length, 0);
	assert_true(text_terminated(&out));
	assert_false(decode_one(prefixes, sizeof(prefixes), L64, NULL, &out)); /* > 15 bytes */
	assert_false(decode_one(ff, 3, (enum decode_mode)7, NULL, &out));

	/* pseudo-random bytes: never crash, sane results */
	uint32_t seed = 12345;
	for (int iter = 0; iter < 20000; iter++) {
		uint8_t b[15];
		for (size_t i = 0; i < sizeof(b); i++) {
			seed = seed * 1103515245u + 12345u;
			b[i] = (uint8_t)(seed >> 16);
		}
		size_t n = 1 + (seed >> 8) % 15;
		enum decode_mode mode = (enum decode_mode)(iter % 3);
		struct decode_regs r;
		memset(&r, (int)(seed & 0xff), sizeof(r));
		if (decode_one(b, n, mode, (iter & 4) ? &r : NULL, &out)) {
			assert_in_range(out.length, 1, n);
			if (out.mem_size)
				assert_true(out.has_mem);
		}
		assert_true(text_terminated(&out));
		unsigned len = decode_backwards_write(b, n, mode, &r, r.gpr[0], 1u << (iter % 4),
		                                      NULL, NULL, &out);
		assert_in_range(len, 0, n);
		if (len)
			assert_true(out.mem_write);
	}
}

/* ---- backwards write ----------------------------------------------------- */

static bool identity_xlate(void *opaque, uint64_t linear, uint64_t *gpa)
{
	*gpa = linear;
	return true;
}

/* Maps linear [0xffff800000000000, +4 GiB) to guest-physical 0. */
static bool kernel_xlate(void *opaque, uint64_t linear, uint64_t *gpa)
{
	uint64_t base = 0xffff800000000000ull;
	if (linear - base >= 0x100000000ull)
		return false;
	*gpa = linear - base;
	return true;
}

static void test_bw_movq_abs(void **state)
{
	/* movq $0, 0xFFF000: the trailing "00 00" also decodes (add [rax], al) */
	const uint8_t b[] = { 0x48, 0xc7, 0x04, 0x25, 0x00, 0xf0, 0xff, 0x00, 0, 0, 0, 0 };
	struct decode_regs r;
	struct decode_insn out;
	memset(&r, 0, sizeof(r));
	r.rip = 0x40100c;

	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0xfff000, 8, identity_xlate,
	                                        NULL, &out), 12);
	assert_int_equal(out.length, 12);
	assert_true(out.mem_write);
	assert_int_equal(out.mem_size, 8);
	assert_true(out.ea_valid);
	assert_int_equal(out.ea, 0xfff000);
	assert_string_equal(out.text, "mov qword ptr [0xFFF000], 0x0");

	/* no address check: still the longest fitting one */
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, NULL, 0xfff000, 8, NULL, NULL,
	                                        &out), 12);

	/* preceded by unrelated code, using all 15 bytes */
	const uint8_t c[] = { 0x00, 0x00, 0x00, 0x48, 0xc7, 0x04, 0x25, 0x00, 0xf0, 0xff, 0x00,
	                      0, 0, 0, 0 };
	assert_int_equal(decode_backwards_write(c, sizeof(c), L64, &r, 0xfff000, 8, identity_xlate,
	                                        NULL, &out), 12);
	const uint8_t d[] = { 0x90, 0x90, 0x90, 0x48, 0xc7, 0x04, 0x25, 0x00, 0xf0, 0xff, 0x00,
	                      0, 0, 0, 0 };
	assert_int_equal(decode_backwards_write(d, sizeof(d), L64, &r, 0xfff000, 8, identity_xlate,
	                                        NULL, &out), 12);

	/* the one-byte write at [rax] is the "00 00": rax points at the MMIO */
	r.gpr[RAX] = 0xfee000b0;
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0xfee000b0, 1,
	                                        identity_xlate, NULL, &out), 2);
	assert_true(out.mem_read && out.mem_write);
	/* wrong size for anything here */
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0xfff000, 2, identity_xlate,
	                                        NULL, &out), 0);
	assert_int_equal(out.length, 0);
}

static void test_bw_mov_rdi(void **state)
{
	/* mov rax, [rbp-8]; mov [rdi], eax */
	const uint8_t b[] = { 0x48, 0x8b, 0x45, 0xf8, 0x89, 0x07 };
	struct decode_regs r;
	struct decode_insn out;
	memset(&r, 0, sizeof(r));
	r.gpr[RDI] = 0xffff8000fee00300ull;
	r.rip = 0xffffffff81000106ull;

	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0xfee00300, 4, kernel_xlate,
	                                        NULL, &out), 2);
	assert_int_equal(out.ea, r.gpr[RDI]);
	/* only the last two bytes given */
	assert_int_equal(decode_backwards_write(b + 4, 2, L64, &r, 0xfee00300, 4, kernel_xlate,
	                                        NULL, &out), 2);
	/* wrong size: a 4-byte store is not an 8-byte access */
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0xfee00300, 8, kernel_xlate,
	                                        NULL, &out), 0);
	/* address not matching still accepts the only candidate */
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0x1234, 4, kernel_xlate,
	                                        NULL, &out), 2);
}

static void test_bw_mov_byte_rdx(void **state)
{
	/* mov byte [rdx+8], 1: its tail "08 01" is "or [rcx], al" and "42 08 01"
	 * is the same with a REX prefix; all write one byte. */
	const uint8_t b[] = { 0x31, 0xc0, 0xc6, 0x42, 0x08, 0x01 };
	struct decode_regs r;
	struct decode_insn out;
	memset(&r, 0, sizeof(r));
	r.rip = 0x2006;
	r.gpr[RDX] = 0xd0000000;
	r.gpr[RCX] = 0x5000;

	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0xd0000008, 1,
	                                        identity_xlate, NULL, &out), 4);
	assert_int_equal(out.ea, 0xd0000008);
	assert_non_null(strstr(out.text, "rdx"));
	/* when it is rcx that points at the MMIO, the address decides */
	r.gpr[RCX] = 0xd0000008;
	r.gpr[RDX] = 0x5000;
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0xd0000008, 1,
	                                        identity_xlate, NULL, &out), 3);
	assert_non_null(strstr(out.text, "rcx"));
	/* both match: the longest wins */
	r.gpr[RDX] = 0xd0000000;
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0xd0000008, 1,
	                                        identity_xlate, NULL, &out), 4);
	/* untranslatable addresses: longest */
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0xd0000008, 1, kernel_xlate,
	                                        NULL, &out), 4);
}

static void test_bw_ambiguous_shorter(void **state)
{
	/* c6 40 88 07 = mov byte [rax-0x78], 7; 40 88 07 / 88 07 = mov [rdi], al */
	const uint8_t b[] = { 0xc6, 0x40, 0x88, 0x07 };
	struct decode_regs r;
	struct decode_insn out;
	memset(&r, 0, sizeof(r));
	r.rip = 0x1004;
	r.gpr[RAX] = 0x10078;
	r.gpr[RDI] = 0x20000;

	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0x10000, 1, identity_xlate,
	                                        NULL, &out), 4);
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0x20000, 1, identity_xlate,
	                                        NULL, &out), 3);
	assert_int_equal(out.ea, 0x20000);
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, NULL, 0x20000, 1, identity_xlate,
	                                        NULL, &out), 4);
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0x20000, 1, NULL, NULL,
	                                        &out), 4);
	/* page-offset exact: same page, other offset does not match */
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0x20001, 1, identity_xlate,
	                                        NULL, &out), 4);
}

static void test_bw_riprel(void **state)
{
	/* mov [rip+0x100], eax; its tail "01 00 00" / "00 00" write other sizes */
	const uint8_t b[] = { 0x89, 0x05, 0x00, 0x01, 0x00, 0x00 };
	struct decode_regs r;
	struct decode_insn out;
	memset(&r, 0, sizeof(r));
	r.rip = 0x401006; /* after the instruction */
	r.gpr[RAX] = 0x401106;

	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0x401106, 4, identity_xlate,
	                                        NULL, &out), 6);
	assert_true(out.ea_valid);
	assert_int_equal(out.ea, 0x401106);
	assert_non_null(strstr(out.text, "0x401106"));

	/* mov qword [rip-0x20], 0 preceded by other bytes */
	const uint8_t c[] = { 0x0f, 0x1f, 0x00, 0x48, 0xc7, 0x05, 0xe0, 0xff, 0xff, 0xff, 0, 0, 0,
	                      0 };
	r.rip = 0x7000;
	assert_int_equal(decode_backwards_write(c, sizeof(c), L64, &r, 0x7000 - 0x20, 8,
	                                        identity_xlate, NULL, &out), 11);
	assert_int_equal(out.ea, 0x7000 - 0x20);
}

static void test_bw_16_32(void **state)
{
	struct decode_regs r;
	struct decode_insn out;

	/* 16-bit: mov [bx+si+4], ax with ds = 0xb800 */
	const uint8_t b16[] = { 0xb8, 0x41, 0x07, 0x89, 0x40, 0x04 };
	memset(&r, 0, sizeof(r));
	r.gpr[RBX] = 0x10;
	r.gpr[RSI] = 0x20;
	r.ds_base = 0xb8000;
	r.rip = 0x7c06;
	assert_int_equal(decode_backwards_write(b16, sizeof(b16), R16, &r, 0xb8034, 2,
	                                        identity_xlate, NULL, &out), 3);
	assert_int_equal(out.ea, 0xb8034);
	/* in 64-bit mode the tail is mov [rax+4], eax: no 2-byte store */
	assert_int_equal(decode_backwards_write(b16, sizeof(b16), L64, &r, 0xb8034, 2,
	                                        identity_xlate, NULL, &out), 0);
	/* 16-bit: mov word [0x8000], 0x1234 */
	const uint8_t imm16[] = { 0xc7, 0x06, 0x00, 0x80, 0x34, 0x12 };
	assert_int_equal(decode_backwards_write(imm16, sizeof(imm16), R16, &r, 0xc0000, 2,
	                                        identity_xlate, NULL, &out), 6);

	/* 32-bit: mov [ebx+ecx*4+0x10], eax after a nop */
	const uint8_t b32[] = { 0x90, 0x89, 0x44, 0x8b, 0x10 };
	memset(&r, 0, sizeof(r));
	r.gpr[RBX] = 0xfec00000;
	r.gpr[RCX] = 4;
	r.rip = 0x100005;
	assert_int_equal(decode_backwards_write(b32, sizeof(b32), P32, &r, 0xfec00020, 4,
	                                        identity_xlate, NULL, &out), 4);
	/* 32-bit: mov [0xb0000], eax */
	const uint8_t moffs[] = { 0xa3, 0x00, 0x00, 0x0b, 0x00 };
	assert_int_equal(decode_backwards_write(moffs, sizeof(moffs), P32, &r, 0xb0000, 4,
	                                        identity_xlate, NULL, &out), 5);
	/* 32-bit: mov word [esi], ax */
	const uint8_t w[] = { 0x66, 0x89, 0x06 };
	r.gpr[RSI] = 0xa0000;
	assert_int_equal(decode_backwards_write(w, sizeof(w), P32, &r, 0xa0000, 2, identity_xlate,
	                                        NULL, &out), 3);
}

static void test_bw_string(void **state)
{
	/* stosd after "xor eax, eax": rdi has already moved on by 4 */
	const uint8_t b[] = { 0x31, 0xc0, 0xab };
	struct decode_regs r;
	struct decode_insn out;
	memset(&r, 0, sizeof(r));
	r.rip = 0x1003;
	r.gpr[RDI] = 0xfee00014;
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0xfee00010, 4,
	                                        identity_xlate, NULL, &out), 1);
	assert_true(out.mem_write);
	/* "c7 00 11 22 33 ab" is mov dword [rax], 0xab332211 and ends with
	 * stosd: the stepped rdi decides against the longer candidate */
	const uint8_t amb[] = { 0xc7, 0x00, 0x11, 0x22, 0x33, 0xab };
	r.rip = 0x1006;
	r.gpr[RAX] = 0x5000;
	assert_int_equal(decode_backwards_write(amb, sizeof(amb), L64, &r, 0xfee00010, 4,
	                                        identity_xlate, NULL, &out), 1);
	r.gpr[RAX] = 0xfee00010;
	r.gpr[RDI] = 0x9000;
	assert_int_equal(decode_backwards_write(amb, sizeof(amb), L64, &r, 0xfee00010, 4,
	                                        identity_xlate, NULL, &out), 6);
	/* movsb: the write through es:[rdi] counts (DF=1: rdi went down) */
	const uint8_t m[] = { 0x90, 0xa4 };
	r.gpr[RDI] = 0xfee00007;
	assert_int_equal(decode_backwards_write(m, sizeof(m), L64, &r, 0xfee00008, 1,
	                                        identity_xlate, NULL, &out), 1);
	/* rep movsq */
	const uint8_t rm[] = { 0xf3, 0x48, 0xa5 };
	assert_int_equal(decode_backwards_write(rm, sizeof(rm), L64, &r, 0xfee00008, 8,
	                                        identity_xlate, NULL, &out), 3);
	/* a load is never a write candidate */
	const uint8_t ld[] = { 0x8b, 0x07 };
	assert_int_equal(decode_backwards_write(ld, sizeof(ld), L64, &r, 0, 4, identity_xlate,
	                                        NULL, &out), 0);
	/* push is not a memory write candidate (stack slot ignored) */
	const uint8_t push[] = { 0xff, 0x30 };
	assert_int_equal(decode_backwards_write(push, sizeof(push), L64, &r, 0, 8, NULL, NULL,
	                                        &out), 0);
}

static void test_bw_edges(void **state)
{
	const uint8_t ff[15] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	struct decode_insn out;
	struct decode_regs r;
	memset(&r, 0, sizeof(r));

	assert_int_equal(decode_backwards_write(ff, 0, L64, &r, 0, 4, NULL, NULL, &out), 0);
	assert_int_equal(decode_backwards_write(NULL, 4, L64, &r, 0, 4, NULL, NULL, &out), 0);
	assert_int_equal(decode_backwards_write(ff, sizeof(ff), L64, &r, 0, 4, NULL, NULL, &out), 0);
	assert_int_equal(decode_backwards_write(ff, sizeof(ff), L64, &r, 0, 0, NULL, NULL, &out), 0);
	/* out may be NULL */
	const uint8_t b[] = { 0x89, 0x07 };
	assert_int_equal(decode_backwards_write(b, sizeof(b), L64, &r, 0, 4, NULL, NULL, NULL), 2);
	/* more than 15 bytes: only the last 15 count */
	uint8_t long_buf[20];
	memset(long_buf, 0x90, sizeof(long_buf));
	long_buf[18] = 0x89;
	long_buf[19] = 0x07;
	assert_int_equal(decode_backwards_write(long_buf, sizeof(long_buf), L64, &r, 0, 4, NULL,
	                                        NULL, &out), 2);
}

/* ---- page walks ---------------------------------------------------------- */

#define GMEM_SIZE (16u << 20)

struct gmem {
	uint8_t *mem;
	size_t size;
};

static bool gmem_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
	struct gmem *g = opaque;
	if (gpa > g->size || len > g->size - gpa)
		return false;
	memcpy(buf, g->mem + gpa, len);
	return true;
}

static void put64(struct gmem *g, uint64_t gpa, uint64_t v)
{
	assert_true(gpa + 8 <= g->size);
	memcpy(g->mem + gpa, &v, 8);
}

static void put32(struct gmem *g, uint64_t gpa, uint32_t v)
{
	assert_true(gpa + 4 <= g->size);
	memcpy(g->mem + gpa, &v, 4);
}

static int gmem_setup(void **state)
{
	struct gmem *g = calloc(1, sizeof(*g));
	if (!g)
		return -1;
	g->size = GMEM_SIZE;
	g->mem = calloc(1, g->size);
	if (!g->mem) {
		free(g);
		return -1;
	}
	*state = g;
	return 0;
}

static int gmem_teardown(void **state)
{
	struct gmem *g = *state;
	free(g->mem);
	free(g);
	return 0;
}

static uint64_t la4(unsigned l4, unsigned l3, unsigned l2, unsigned l1, unsigned off)
{
	return ((uint64_t)l4 << 39) | ((uint64_t)l3 << 30) | ((uint64_t)l2 << 21) |
	       ((uint64_t)l1 << 12) | off;
}

static bool xl(const struct pagewalk_ctx *ctx, uint64_t la, uint64_t *gpa)
{
	*gpa = 0xdeadbeef;
	return pagewalk_translate(ctx, la, gpa);
}

static void test_walk_long(void **state)
{
	struct gmem *g = *state;
	struct pagewalk_ctx ctx = {
		.cr0 = CR0_PE | CR0_PG, .cr3 = 0x1000, .cr4 = CR4_PAE,
		.efer = EFER_LME | EFER_LMA, .read_gpa = gmem_read, .opaque = g,
	};
	uint64_t gpa;

	put64(g, 0x1000 + 1 * 8, 0x2000 | P | RW);              /* PML4[1] */
	put64(g, 0x1000 + 511 * 8, 0x2000 | P);                 /* PML4[511] */
	put64(g, 0x2000 + 2 * 8, 0x3000 | P | RW);              /* PDPT[2] */
	put64(g, 0x2000 + 3 * 8, 0x80000000 | P | PS);          /* PDPT[3]: 1 GiB */
	put64(g, 0x2000 + 4 * 8, 0x40000000 | PS);              /* not present */
	put64(g, 0x3000 + 3 * 8, 0x4000 | P);                   /* PD[3] */
	put64(g, 0x3000 + 5 * 8, 0x600000 | P | PS);            /* PD[5]: 2 MiB */
	put64(g, 0x3000 + 9 * 8, 0xa00000 | (1ull << 12) | P | PS); /* 2 MiB, PAT bit */
	put64(g, 0x3000 + 10 * 8, 0x0000fffffffff000ull | P);   /* PT beyond RAM */
	put64(g, 0x4000 + 4 * 8, 0x123000 | P);                 /* PT[4] */
	put64(g, 0x4000 + 6 * 8, (1ull << 63) | (0x7ffull << 52) | 0x155000 | P); /* NX etc */
	put64(g, 0x4000 + 7 * 8, 0x156000 | RW);                /* not present */
	put64(g, 0x4000 + 8 * 8, 0x0000123456789000ull | P);    /* high physical */

	assert_true(xl(&ctx, la4(1, 2, 3, 4, 0x567), &gpa));
	assert_int_equal(gpa, 0x123567);
	assert_true(xl(&ctx, la4(1, 2, 5, 0, 0) + 0x12345, &gpa));
	assert_int_equal(gpa, 0x612345);
	assert_true(xl(&ctx, la4(1, 3, 0, 0, 0) + 0x1234567, &gpa));
	assert_int_equal(gpa, 0x81234567);
	assert_true(xl(&ctx, la4(1, 2, 9, 0, 0) + 0x1abcd, &gpa));
	assert_int_equal(gpa, 0xa1abcd);
	assert_true(xl(&ctx, la4(1, 2, 3, 6, 0xfff), &gpa));
	assert_int_equal(gpa, 0x155fff);
	assert_true(xl(&ctx, la4(1, 2, 3, 8, 0x10), &gpa));
	assert_int_equal(gpa, 0x123456789010ull);
	/* upper half: PML4[511] shares the PDPT */
	assert_true(xl(&ctx, 0xffff000000000000ull | la4(511, 2, 3, 4, 0x10), &gpa));
	assert_int_equal(gpa, 0x123010);

	/* not present at each level */
	assert_false(xl(&ctx, la4(0, 2, 3, 4, 0), &gpa));   /* PML4 */
	assert_false(xl(&ctx, la4(1, 0, 3, 4, 0), &gpa));   /* PDPT */
	assert_false(xl(&ctx, la4(1, 4, 0, 0, 0), &gpa));   /* 1 GiB without P */
	assert_false(xl(&ctx, la4(1, 2, 0, 0, 0), &gpa));   /* PD */
	assert_false(xl(&ctx, la4(1, 2, 3, 7, 0), &gpa));   /* PT */
	assert_false(xl(&ctx, la4(1, 2, 3, 5, 0), &gpa));   /* empty PTE */
	assert_false(xl(&ctx, la4(1, 2, 10, 0, 0), &gpa));  /* table not in RAM */

	/* 5-level paging: PML5[0] -> the same PML4 */
	put64(g, 0x6000, 0x1000 | P);
	ctx.cr3 = 0x6000;
	ctx.cr4 |= CR4_LA57;
	assert_true(xl(&ctx, la4(1, 2, 3, 4, 0x567), &gpa));
	assert_int_equal(gpa, 0x123567);
	assert_false(xl(&ctx, (1ull << 48) | la4(1, 2, 3, 4, 0x567), &gpa));

	/* CR3 low flag bits (PCD/PWT/PCID) are ignored */
	ctx.cr4 &= ~CR4_LA57;
	ctx.cr3 = 0x1000 | 0x18 | 0x5;
	assert_true(xl(&ctx, la4(1, 2, 3, 4, 0x567), &gpa));
	assert_int_equal(gpa, 0x123567);
}

static void test_walk_pae32(void **state)
{
	struct gmem *g = *state;
	struct pagewalk_ctx ctx = {
		.cr0 = CR0_PE | CR0_PG, .cr3 = 0x7020, .cr4 = CR4_PAE,
		.read_gpa = gmem_read, .opaque = g,
	};
	uint64_t gpa;

	put64(g, 0x7020 + 1 * 8, 0x8000 | P);                   /* PDPTE[1] */
	put64(g, 0x7020 + 2 * 8, 0x8000);                       /* not present */
	put64(g, 0x8000 + 2 * 8, 0x9000 | P | RW);              /* PD[2] */
	put64(g, 0x8000 + 4 * 8, 0x400000 | P | PS);            /* PD[4]: 2 MiB */
	put64(g, 0x9000 + 3 * 8, (1ull << 63) | 0x1ab000 | P);  /* PT[3] (NX) */
	put64(g, 0x9000 + 5 * 8, 0x2000000000ull | P);          /* above 4 GiB */

	uint64_t la = (1u << 30) | (2u << 21) | (3u << 12) | 0x456;
	assert_true(xl(&ctx, la, &gpa));
	assert_int_equal(gpa, 0x1ab456);
	assert_true(xl(&ctx, la | (1ull << 40), &gpa)); /* linear is 32 bits */
	assert_int_equal(gpa, 0x1ab456);
	assert_true(xl(&ctx, (1u << 30) | (4u << 21) | 0x1234, &gpa));
	assert_int_equal(gpa, 0x401234);
	assert_true(xl(&ctx, (1u << 30) | (2u << 21) | (5u << 12) | 1, &gpa));
	assert_int_equal(gpa, 0x2000000001ull);
	assert_false(xl(&ctx, (0u << 30) | (2u << 21) | (3u << 12), &gpa)); /* PDPTE[0] */
	assert_false(xl(&ctx, (2u << 30) | (2u << 21) | (3u << 12), &gpa)); /* PDPTE[2] */
	assert_false(xl(&ctx, (1u << 30) | (3u << 21), &gpa));              /* PDE */
	assert_false(xl(&ctx, (1u << 30) | (2u << 21) | (4u << 12), &gpa)); /* PTE */

	/* LMA clear: PAE even with EFER.LME set (paging not yet active in LM) */
	ctx.efer = EFER_LME;
	assert_true(xl(&ctx, la, &gpa));
	assert_int_equal(gpa, 0x1ab456);
}

static void test_walk_legacy32(void **state)
{
	struct gmem *g = *state;
	struct pagewalk_ctx ctx = {
		.cr0 = CR0_PE | CR0_PG, .cr3 = 0xa000, .cr4 = CR4_PSE,
		.read_gpa = gmem_read, .opaque = g,
	};
	uint64_t gpa;

	put32(g, 0xa000 + 1 * 4, 0xb000 | P | RW);              /* PDE[1] */
	put32(g, 0xa000 + 3 * 4, 0x00c00000 | P | PS);          /* PDE[3]: 4 MiB */
	put32(g, 0xa000 + 5 * 4, 0x01000000 | (3u << 13) | P | PS); /* PSE-36 */
	put32(g, 0xa000 + 6 * 4, 0x00c00000 | PS);              /* not present */
	put32(g, 0xa000 + 1023 * 4, 0xc000 | P);                /* PDE[1023] */
	put32(g, 0xb000 + 2 * 4, 0x1cd000 | P);                 /* PTE[2] */
	put32(g, 0xb000 + 4 * 4, 0x1ce000);                     /* not present */
	put32(g, 0xc000 + 1023 * 4, 0xfffff000 | P);            /* top page */

	assert_true(xl(&ctx, (1u << 22) | (2u << 12) | 0x789, &gpa));
	assert_int_equal(gpa, 0x1cd789);
	assert_true(xl(&ctx, (3u << 22) | 0x12345, &gpa));
	assert_int_equal(gpa, 0xc12345);
	assert_true(xl(&ctx, (5u << 22) | 0x3ffffe, &gpa));
	assert_int_equal(gpa, 0x3013ffffeull);
	assert_true(xl(&ctx, 0xffffffff, &gpa));
	assert_int_equal(gpa, 0xffffffff);
	assert_false(xl(&ctx, (0u << 22), &gpa));
	assert_false(xl(&ctx, (6u << 22), &gpa));
	assert_false(xl(&ctx, (1u << 22) | (4u << 12), &gpa));
	assert_false(xl(&ctx, (1u << 22) | (3u << 12), &gpa));

	/* without CR4.PSE the PS bit is ignored: PDE[3] names a page table
	 * at 0xc00000, which is empty */
	ctx.cr4 = 0;
	assert_false(xl(&ctx, (3u << 22) | 0x12345, &gpa));
	put32(g, 0xc00000 + 0x12 * 4, 0x777000 | P);
	assert_true(xl(&ctx, (3u << 22) | 0x12345, &gpa));
	assert_int_equal(gpa, 0x777345);
}

static void test_walk_paging_off(void **state)
{
	struct pagewalk_ctx ctx = { .cr0 = CR0_PE, .cr4 = CR4_PAE };
	uint64_t gpa;
	assert_true(xl(&ctx, 0xb8000, &gpa));
	assert_int_equal(gpa, 0xb8000);
	ctx.cr0 = 0;
	assert_true(xl(&ctx, 0xfffffff0, &gpa));
	assert_int_equal(gpa, 0xfffffff0);
	/* paging on without a reader: nothing translates */
	ctx.cr0 = CR0_PE | CR0_PG;
	assert_false(xl(&ctx, 0, &gpa));
}

static void test_walk_read(void **state)
{
	struct gmem *g = *state;
	struct pagewalk_ctx ctx = {
		.cr0 = CR0_PE | CR0_PG, .cr3 = 0x1000, .cr4 = CR4_PAE,
		.efer = EFER_LME | EFER_LMA, .read_gpa = gmem_read, .opaque = g,
	};
	const uint64_t va = la4(0, 0, 0, 16, 0); /* 0x10000 */
	uint8_t buf[0x3000];

	put64(g, 0x1000, 0x2000 | P);
	put64(g, 0x2000, 0x3000 | P);
	put64(g, 0x3000, 0x4000 | P);
	put64(g, 0x3000 + 8, 0x800000 | P | PS);        /* 2 MiB at va 0x200000 */
	put64(g, 0x4000 + 16 * 8, 0x150000 | P);        /* va 0x10000 -> 0x150000 */
	put64(g, 0x4000 + 17 * 8, 0x120000 | P);        /* va 0x11000 -> 0x120000 */
	put64(g, 0x4000 + 19 * 8, 0x2000000 | P);       /* va 0x13000 -> not RAM */
	memset(g->mem + 0x150000, 0xaa, 0x1000);
	memset(g->mem + 0x120000, 0xbb, 0x1000);
	for (unsigned i = 0; i < 0x2000; i++)
		g->mem[0x800000 + i] = (uint8_t)i;

	/* crossing into a physically lower, non-contiguous page */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(pagewalk_read(&ctx, va + 0xf80, buf, 0x100), 0x100);
	for (unsigned i = 0; i < 0x80; i++)
		assert_int_equal(buf[i], 0xaa);
	for (unsigned i = 0x80; i < 0x100; i++)
		assert_int_equal(buf[i], 0xbb);

	/* stops at the unmapped page va 0x12000 */
	assert_int_equal(pagewalk_read(&ctx, va + 0x800, buf, 0x3000), 0x1800);
	assert_int_equal(buf[0], 0xaa);
	assert_int_equal(buf[0x17ff], 0xbb);
	assert_int_equal(pagewalk_read(&ctx, va + 0x2000, buf, 16), 0);
	/* stops where the page is mapped but not RAM */
	assert_int_equal(pagewalk_read(&ctx, va + 0x3000, buf, 16), 0);
	/* exact page, zero length */
	assert_int_equal(pagewalk_read(&ctx, va, buf, 0x1000), 0x1000);
	assert_int_equal(pagewalk_read(&ctx, va, buf, 0), 0);

	/* inside a 2 MiB page across a 4 KiB boundary */
	assert_int_equal(pagewalk_read(&ctx, 0x200ff0, buf, 0x20), 0x20);
	for (unsigned i = 0; i < 0x20; i++)
		assert_int_equal(buf[i], (uint8_t)(0xff0 + i));

	/* paging off: straight physical reads, stopping at the end of RAM */
	ctx.cr0 = CR0_PE;
	assert_int_equal(pagewalk_read(&ctx, 0x150ff0, buf, 0x20), 0x20);
	assert_int_equal(buf[0], 0xaa);
	assert_int_equal(buf[0x10], 0);
	assert_int_equal(pagewalk_read(&ctx, GMEM_SIZE - 0x800, buf, 0x1000), 0x800);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mode_of),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_length_with_trailing_bytes),
		cmocka_unit_test(test_mem_access),
		cmocka_unit_test(test_mem_size_large),
		cmocka_unit_test(test_ea_64),
		cmocka_unit_test(test_ea_32),
		cmocka_unit_test(test_ea_16),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_bw_movq_abs),
		cmocka_unit_test(test_bw_mov_rdi),
		cmocka_unit_test(test_bw_mov_byte_rdx),
		cmocka_unit_test(test_bw_ambiguous_shorter),
		cmocka_unit_test(test_bw_riprel),
		cmocka_unit_test(test_bw_16_32),
		cmocka_unit_test(test_bw_string),
		cmocka_unit_test(test_bw_edges),
		cmocka_unit_test_setup_teardown(test_walk_long, gmem_setup, gmem_teardown),
		cmocka_unit_test_setup_teardown(test_walk_pae32, gmem_setup, gmem_teardown),
		cmocka_unit_test_setup_teardown(test_walk_legacy32, gmem_setup, gmem_teardown),
		cmocka_unit_test(test_walk_paging_off),
		cmocka_unit_test_setup_teardown(test_walk_read, gmem_setup, gmem_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
