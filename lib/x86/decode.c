/* decode.c: x86 instruction decoding (on Zydis) and guest page-table walks. */
#include "decode.h"

#include "zhv.h"

#include <assert.h>
#if ZHV_ZYDIS_DLOPEN
#include <dlfcn.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <Zydis/Zydis.h>

#include "solib.h"
#include "zhv_priv.h"

/* ---- Zydis, loaded on first use ----------------------------------------------
 * Most programs never decode an instruction (only MEM traps and crash
 * reports do), so libzhv loads Zydis the first time it needs it instead of
 * at process start: measured on zhv run, linking it costs 80-130 us of
 * start-up and about 170 KiB of resident memory. The shared libzhv loads
 * it with the C library's dlopen(); the static libzhv.a, which statically
 * linked programs such as zhv use (dlopen() would map a second C library
 * there), with libzhv's own minimal loader (solib.h). */
static struct {
	__typeof__(ZydisDecoderInit) *DecoderInit;
	__typeof__(ZydisDecoderDecodeFull) *DecoderDecodeFull;
	__typeof__(ZydisFormatterInit) *FormatterInit;
	__typeof__(ZydisFormatterSetProperty) *FormatterSetProperty;
	__typeof__(ZydisFormatterFormatInstruction) *FormatterFormatInstruction;
	__typeof__(ZydisRegisterGetClass) *RegisterGetClass;
	__typeof__(ZydisRegisterGetId) *RegisterGetId;
} zy;
static pthread_once_t zy_once = PTHREAD_ONCE_INIT;
static bool zy_loaded;

#if !ZHV_ZYDIS_DLOPEN
void __stack_chk_fail(void); /* (the C library's; no header declares it) */

/* What Zydis takes from the C library (nm -D --undefined-only). */
static const struct solib_import zydis_imports[] = {
	{"memcpy", (void *)memcpy},
	{"memset", (void *)memset},
	{"memmove", (void *)memmove},
	{"memcmp", (void *)memcmp},
	{"strlen", (void *)strlen},
	{"__assert_fail", (void *)__assert_fail},
	{"__stack_chk_fail", (void *)__stack_chk_fail},
	{NULL, NULL},
};

/* Where Zydis is looked for: the directory the build's compiler found it
 * in (ZHV_ZYDIS_DIR), then the usual library directories; in each,
 * libZydis.so.4.0 (the ABI libzhv was built against), else libZydis.so. */
#ifndef ZHV_ZYDIS_DIR
#define ZHV_ZYDIS_DIR "/usr/lib/x86_64-linux-gnu"
#endif
static const char *const zydis_dirs[] = {
	ZHV_ZYDIS_DIR, "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64",
	"/usr/local/lib", "/usr/lib",
};
#endif
static const char *const zydis_names[] = {"libZydis.so.4.0", "libZydis.so"};

#if ZHV_ZYDIS_DLOPEN
/* The shared libzhv (always in a dynamically linked program): the C
 * library's loader. */
static void *zydis_open(void)
{
	void *dl = NULL;
	for (size_t n = 0; n < sizeof(zydis_names) / sizeof(zydis_names[0]) && !dl; n++)
		dl = dlopen(zydis_names[n], RTLD_NOW | RTLD_LOCAL);
	if (!dl)
		zhv_log(ZHV_LOG_WARN, "cannot load Zydis: %s", dlerror());
	return dl;
}
#define ZY_LOOKUP(name) dlsym(h, name)
#else
/* The static libzhv.a, which statically linked programs (zhv) use, where
 * dlopen() would map a second C library: libzhv's own loader. */
static struct solib *zydis_open(void)
{
	static struct solib lib;
	char err[256];
	for (size_t n = 0; n < sizeof(zydis_names) / sizeof(zydis_names[0]); n++)
		for (size_t d = 0; d < sizeof(zydis_dirs) / sizeof(zydis_dirs[0]); d++) {
			char path[512];
			snprintf(path, sizeof(path), "%s/%s", zydis_dirs[d], zydis_names[n]);
			if (access(path, R_OK) != 0)
				continue;
			if (solib_load(path, zydis_imports, &lib, err, sizeof(err)) == 0)
				return &lib;
			zhv_log(ZHV_LOG_WARN, "cannot load Zydis: %s", err);
		}
	return NULL;
}
#define ZY_LOOKUP(name) solib_sym(h, name)
#endif

static void zydis_load(void)
{
	__typeof__(zydis_open()) h = zydis_open();
	if (!h)
		return;
	/* POSIX's way to store a function pointer from a void pointer. */
#define ZY_SYM(f)                                                  \
	do {                                                       \
		*(void **)&zy.f = ZY_LOOKUP("Zydis" #f);          \
		if (!zy.f)                                         \
			return;                                    \
	} while (0)
	ZY_SYM(DecoderInit);
	ZY_SYM(DecoderDecodeFull);
	ZY_SYM(FormatterInit);
	ZY_SYM(FormatterSetProperty);
	ZY_SYM(FormatterFormatInstruction);
	ZY_SYM(RegisterGetClass);
	ZY_SYM(RegisterGetId);
#undef ZY_SYM
	zy_loaded = true;
}

static bool zydis_available(void)
{
	pthread_once(&zy_once, zydis_load);
	return zy_loaded;
}

zhv_status_t zhv_preload(void)
{
	return zydis_available() ? ZHV_OK : ZHV_ERR_NOT_SUPPORTED;
}

#define ZydisDecoderInit zy.DecoderInit
#define ZydisDecoderDecodeFull zy.DecoderDecodeFull
#define ZydisFormatterInit zy.FormatterInit
#define ZydisFormatterSetProperty zy.FormatterSetProperty
#define ZydisFormatterFormatInstruction zy.FormatterFormatInstruction
#define ZydisRegisterGetClass zy.RegisterGetClass
#define ZydisRegisterGetId zy.RegisterGetId

#define CR0_PE   (1ull << 0)
#define CR0_PG   (1ull << 31)
#define CR4_PSE  (1ull << 4)
#define CR4_PAE  (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LMA (1ull << 10)

#define PTE_P    (1ull << 0)
#define PTE_PS   (1ull << 7)
#define PTE_ADDR 0x000ffffffffff000ull /* bits 12..51 */

#define MAX_INSN_LEN 15

/* ---- decoding ------------------------------------------------------------ */

/* The result of one Zydis decode plus the memory operand we report on. */
struct decoded {
	ZydisDecodedInstruction insn;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	const ZydisDecodedOperand *primary; /* NULL if no data memory operand */
	bool primary_rdi;                   /* implicit es:[rdi] (string store) */
};

enum decode_mode decode_mode_of(uint64_t cr0, uint64_t efer, bool cs_l, bool cs_db)
{
	if (!(cr0 & CR0_PE))
		return DECODE_MODE_REAL16;
	if ((efer & EFER_LMA) && cs_l)
		return DECODE_MODE_LONG64;
	return cs_db ? DECODE_MODE_PROT32 : DECODE_MODE_REAL16;
}

static bool decoder_init(ZydisDecoder *dec, enum decode_mode mode)
{
	ZydisMachineMode mm;
	ZydisStackWidth sw;

	if (!zydis_available())
		return false;
	switch (mode) {
	case DECODE_MODE_REAL16:
		mm = ZYDIS_MACHINE_MODE_LEGACY_16;
		sw = ZYDIS_STACK_WIDTH_16;
		break;
	case DECODE_MODE_PROT32:
		mm = ZYDIS_MACHINE_MODE_LEGACY_32;
		sw = ZYDIS_STACK_WIDTH_32;
		break;
	case DECODE_MODE_LONG64:
		mm = ZYDIS_MACHINE_MODE_LONG_64;
		sw = ZYDIS_STACK_WIDTH_64;
		break;
	default:
		return false;
	}
	return ZYAN_SUCCESS(ZydisDecoderInit(dec, mm, sw));
}

/* is_data_mem: a memory operand that really accesses data: not LEA-style
 * address generation and not the hidden stack slot of PUSH/POP/CALL/RET. */
static bool is_data_mem(const ZydisDecodedOperand *op)
{
	if (op->type != ZYDIS_OPERAND_TYPE_MEMORY)
		return false;
	if (op->mem.type != ZYDIS_MEMOP_TYPE_MEM && op->mem.type != ZYDIS_MEMOP_TYPE_VSIB &&
	    op->mem.type != ZYDIS_MEMOP_TYPE_MIB)
		return false;
	if (op->visibility == ZYDIS_OPERAND_VISIBILITY_HIDDEN &&
	    op->mem.segment == ZYDIS_REGISTER_SS)
		return false;
	return true;
}

/* gpr_index: the hardware number (0..15) of a general register, or -1. */
static int gpr_index(ZydisRegister reg)
{
	ZydisRegisterClass cls = ZydisRegisterGetClass(reg);
	if (cls != ZYDIS_REGCLASS_GPR16 && cls != ZYDIS_REGCLASS_GPR32 &&
	    cls != ZYDIS_REGCLASS_GPR64)
		return -1;
	int id = ZydisRegisterGetId(reg);
	return id >= 0 && id < 16 ? id : -1;
}

/* reg_value: the value of an address register (base or index), with the
 * instruction pointer reading as (next_ip). */
static bool reg_value(const struct decode_regs *regs, ZydisRegister reg, uint64_t next_ip,
                      uint64_t *val)
{
	if (reg == ZYDIS_REGISTER_NONE) {
		*val = 0;
		return true;
	}
	if (reg == ZYDIS_REGISTER_AL) { /* XLAT */
		*val = regs->gpr[0] & 0xff;
		return true;
	}
	switch (ZydisRegisterGetClass(reg)) {
	case ZYDIS_REGCLASS_IP:
		*val = next_ip;
		return true;
	case ZYDIS_REGCLASS_GPR16:
	case ZYDIS_REGCLASS_GPR32:
	case ZYDIS_REGCLASS_GPR64: {
		int id = gpr_index(reg);
		if (id < 0)
			return false;
		*val = regs->gpr[id];
		return true;
	}
	default:
		return false;
	}
}

static uint64_t segment_base(const struct decode_regs *regs, ZydisRegister seg,
                             enum decode_mode mode)
{
	switch (seg) {
	case ZYDIS_REGISTER_FS:
		return regs->fs_base;
	case ZYDIS_REGISTER_GS:
		return regs->gs_base;
	default:
		break;
	}
	if (mode == DECODE_MODE_LONG64)
		return 0;
	switch (seg) {
	case ZYDIS_REGISTER_ES:
		return regs->es_base;
	case ZYDIS_REGISTER_CS:
		return regs->cs_base;
	case ZYDIS_REGISTER_SS:
		return regs->ss_base;
	case ZYDIS_REGISTER_DS:
		return regs->ds_base;
	default:
		return 0;
	}
}

static uint64_t width_mask(unsigned bits)
{
	return bits >= 64 ? ~0ull : (1ull << bits) - 1;
}

/* compute_ea: linear address of memory operand (op); base + index * scale +
 * disp truncated to the address size, plus the segment base. */
static bool compute_ea(const struct decoded *d, const ZydisDecodedOperand *op,
                       enum decode_mode mode, const struct decode_regs *regs, uint64_t *ea)
{
	if (op->mem.type != ZYDIS_MEMOP_TYPE_MEM)
		return false; /* VSIB (vector index) and MIB have no single address */

	uint64_t next_ip = regs->rip + d->insn.length;
	uint64_t base, index;
	if (!reg_value(regs, op->mem.base, next_ip, &base) ||
	    !reg_value(regs, op->mem.index, next_ip, &index))
		return false;

	unsigned scale = op->mem.scale ? op->mem.scale : 1;
	uint64_t off = base + index * scale;
	if (op->mem.disp.has_displacement)
		off += (uint64_t)op->mem.disp.value;
	off &= width_mask(d->insn.address_width);

	uint64_t la = off + segment_base(regs, op->mem.segment, mode);
	if (mode != DECODE_MODE_LONG64)
		la &= 0xffffffffull;
	*ea = la;
	return true;
}

static void format_insn(const struct decoded *d, const struct decode_regs *regs,
                        char *text, size_t size)
{
	ZydisFormatter fmt;
	text[0] = '\0';
	if (!ZYAN_SUCCESS(ZydisFormatterInit(&fmt, ZYDIS_FORMATTER_STYLE_INTEL)))
		return;
	ZydisFormatterSetProperty(&fmt, ZYDIS_FORMATTER_PROP_ADDR_PADDING_ABSOLUTE,
	                          ZYDIS_PADDING_DISABLED);
	ZydisFormatterSetProperty(&fmt, ZYDIS_FORMATTER_PROP_ADDR_PADDING_RELATIVE,
	                          ZYDIS_PADDING_DISABLED);
	ZydisFormatterSetProperty(&fmt, ZYDIS_FORMATTER_PROP_DISP_PADDING, ZYDIS_PADDING_DISABLED);
	ZydisFormatterSetProperty(&fmt, ZYDIS_FORMATTER_PROP_IMM_PADDING, ZYDIS_PADDING_DISABLED);

	ZyanU64 runtime = regs ? regs->rip : ZYDIS_RUNTIME_ADDRESS_NONE;
	if (!ZYAN_SUCCESS(ZydisFormatterFormatInstruction(&fmt, &d->insn, d->ops,
	                                                  d->insn.operand_count_visible, text,
	                                                  size, runtime, NULL)))
		text[0] = '\0';
	text[size - 1] = '\0';
}

/* decode_core: decode_one, also returning the Zydis result in (d); formats
 * the text only if (format). */
static bool decode_core(const uint8_t *bytes, size_t len, enum decode_mode mode,
                        const struct decode_regs *regs, bool format, struct decoded *d,
                        struct decode_insn *out)
{
	ZydisDecoder dec;

	memset(out, 0, sizeof(*out));
	memset(d, 0, sizeof(*d));
	if (!bytes || len == 0 || !decoder_init(&dec, mode))
		return false;
	if (len > MAX_INSN_LEN)
		len = MAX_INSN_LEN;
	if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, bytes, len, &d->insn, d->ops)))
		return false;
	if (d->insn.length == 0 || d->insn.length > MAX_INSN_LEN)
		return false;
	out->length = d->insn.length;

	const ZydisDecodedOperand *first = NULL, *written = NULL;
	for (unsigned i = 0; i < d->insn.operand_count && i < ZYDIS_MAX_OPERAND_COUNT; i++) {
		const ZydisDecodedOperand *op = &d->ops[i];
		if (!is_data_mem(op))
			continue;
		out->has_mem = true;
		if (!first)
			first = op;
		if (op->actions & ZYDIS_OPERAND_ACTION_MASK_READ)
			out->mem_read = true;
		if (op->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) {
			out->mem_write = true;
			if (!written)
				written = op;
		}
	}
	d->primary = written ? written : first;

	if (d->primary) {
		const ZydisDecodedOperand *op = d->primary;
		unsigned bytes_acc = op->size / 8u;
		out->mem_size = bytes_acc <= UINT8_MAX ? (uint8_t)bytes_acc : 0;
		d->primary_rdi = op->visibility != ZYDIS_OPERAND_VISIBILITY_EXPLICIT &&
		                 gpr_index(op->mem.base) == 7;
		if (regs && compute_ea(d, op, mode, regs, &out->ea))
			out->ea_valid = true;
	}
	if (format)
		format_insn(d, regs, out->text, sizeof(out->text));
	return true;
}

bool decode_one(const uint8_t *bytes, size_t len, enum decode_mode mode,
                const struct decode_regs *regs, struct decode_insn *out)
{
	struct decoded d;
	struct decode_insn tmp;
	return decode_core(bytes, len, mode, regs, true, &d, out ? out : &tmp);
}

static bool xlate_is(decode_xlate_fn xlate, void *opaque, uint64_t linear, uint64_t gpa)
{
	uint64_t got;
	return xlate(opaque, linear, &got) && got == gpa;
}

/* address_matches: the candidate's memory operand translates to (gpa). */
static bool address_matches(const struct decoded *d, const struct decode_insn *c,
                            enum decode_mode mode, uint64_t gpa, unsigned access_size,
                            decode_xlate_fn xlate, void *opaque)
{
	if (!xlate || !c->ea_valid)
		return false;
	if (xlate_is(xlate, opaque, c->ea, gpa))
		return true;
	if (!d->primary_rdi)
		return false;
	/* STOS/MOVS/INS already stepped rdi by the element size (either way,
	 * depending on EFLAGS.DF). */
	uint64_t mask = mode == DECODE_MODE_LONG64 ? ~0ull : 0xffffffffull;
	return xlate_is(xlate, opaque, (c->ea - access_size) & mask, gpa) ||
	       xlate_is(xlate, opaque, (c->ea + access_size) & mask, gpa);
}

bool decode_length(const uint8_t *bytes, size_t len, enum decode_mode mode, unsigned *length)
{
	struct decoded d;
	struct decode_insn tmp;
	if (!decode_core(bytes, len, mode, NULL, false, &d, &tmp))
		return false;
	if (length)
		*length = tmp.length;
	return true;
}

unsigned decode_backwards_write(const uint8_t *bytes, size_t len, enum decode_mode mode,
                                const struct decode_regs *regs, uint64_t gpa,
                                unsigned access_size, decode_xlate_fn xlate, void *opaque,
                                struct decode_insn *out)
{
	return decode_backwards_write_fits(bytes, len, mode, regs, gpa, access_size, xlate, opaque,
	                                   out, NULL);
}

/* Try the candidates of (mask) (bit L: the L bytes before RIP), longest
 * first: the first whose address matches wins, else the longest. */
static unsigned pick(const uint8_t *bytes, size_t len, enum decode_mode mode,
                     const struct decode_regs *regs, uint64_t gpa, unsigned access_size,
                     decode_xlate_fn xlate, void *opaque, uint16_t mask, bool check_fit)
{
	unsigned best_len = 0;
	for (unsigned l = (unsigned)len; l >= 1; l--) {
		if (!(mask & (1u << l)))
			continue;
		size_t start = len - l;
		struct decode_regs r;
		const struct decode_regs *rp = NULL;
		if (regs) {
			r = *regs;
			r.rip = regs->rip - l;
			rp = &r;
		}
		struct decoded d;
		struct decode_insn c;
		if (!decode_core(bytes + start, l, mode, rp, false, &d, &c))
			continue;
		if (check_fit && (c.length != l || !c.mem_write || c.mem_size != access_size))
			continue;
		if (address_matches(&d, &c, mode, gpa, access_size, xlate, opaque))
			return l;
		if (!best_len)
			best_len = l;
	}
	return best_len;
}

unsigned decode_backwards_write_fits(const uint8_t *bytes, size_t len, enum decode_mode mode,
                                     const struct decode_regs *regs, uint64_t gpa,
                                     unsigned access_size, decode_xlate_fn xlate, void *opaque,
                                     struct decode_insn *out, uint16_t *fits)
{
	if (fits)
		*fits = 0;
	if (out)
		memset(out, 0, sizeof(*out));
	if (!bytes || len == 0 || access_size == 0)
		return 0;
	if (len > MAX_INSN_LEN) {
		bytes += len - MAX_INSN_LEN;
		len = MAX_INSN_LEN;
	}

	/* Every start that decodes to a store of (access_size) bytes ending
	 * exactly at RIP: a candidate (bytes alone decide this). */
	uint16_t mask = 0;
	for (size_t start = 0; start < len; start++) {
		size_t avail = len - start;
		struct decoded d;
		struct decode_insn c;
		if (!decode_core(bytes + start, avail, mode, NULL, false, &d, &c))
			continue;
		if (c.length != avail || !c.mem_write || c.mem_size != access_size)
			continue;
		mask |= (uint16_t)(1u << avail);
	}
	if (fits)
		*fits = mask;
	if (!mask)
		return 0;
	/* One candidate needs no address check; several are told apart by
	 * the address each would write (registers after the instruction). */
	unsigned best_len = (mask & (mask - 1)) == 0
	                            ? (unsigned)__builtin_ctz(mask)
	                            : pick(bytes, len, mode, regs, gpa, access_size, xlate,
	                                   opaque, mask, false);

	if (out) {
		struct decode_regs r;
		const struct decode_regs *rp = NULL;
		struct decoded d;
		if (regs) {
			r = *regs;
			r.rip = regs->rip - best_len;
			rp = &r;
		}
		decode_core(bytes + (len - best_len), best_len, mode, rp, true, &d, out);
	}
	return best_len;
}

unsigned decode_backwards_write_pick(const uint8_t *bytes, size_t len, enum decode_mode mode,
                                     const struct decode_regs *regs, uint64_t gpa,
                                     unsigned access_size, decode_xlate_fn xlate, void *opaque,
                                     uint16_t fits)
{
	if (!bytes || len == 0 || len > MAX_INSN_LEN || !fits)
		return 0;
	if ((fits & (fits - 1)) == 0)
		return (unsigned)__builtin_ctz(fits) <= len ? (unsigned)__builtin_ctz(fits) : 0;
	return pick(bytes, len, mode, regs, gpa, access_size, xlate, opaque, fits, false);
}

static int recipe_reg(ZydisRegister reg)
{
	if (reg == ZYDIS_REGISTER_NONE)
		return DECODE_EA_NONE;
	if (ZydisRegisterGetClass(reg) == ZYDIS_REGCLASS_IP)
		return DECODE_EA_RIP;
	if (reg == ZYDIS_REGISTER_AL)
		return -2; /* XLAT: not representable */
	int id = gpr_index(reg);
	return id >= 0 ? id : -2;
}

bool decode_store_ea(const uint8_t *bytes, size_t len, enum decode_mode mode,
                     struct decode_ea *out)
{
	struct decoded d;
	struct decode_insn c;
	memset(out, 0, sizeof(*out));
	if (!decode_core(bytes, len, mode, NULL, false, &d, &c) || c.length != len ||
	    !c.mem_write || !d.primary)
		return false;
	const ZydisDecodedOperand *op = d.primary;
	if (op->mem.type != ZYDIS_MEMOP_TYPE_MEM || !(op->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE))
		return false;
	int base = recipe_reg(op->mem.base), index = recipe_reg(op->mem.index);
	if (base == -2 || index == -2 || index == DECODE_EA_RIP)
		return false;
	uint8_t seg;
	switch (op->mem.segment) {
	case ZYDIS_REGISTER_ES: seg = DECODE_SEG_ES; break;
	case ZYDIS_REGISTER_CS: seg = DECODE_SEG_CS; break;
	case ZYDIS_REGISTER_SS: seg = DECODE_SEG_SS; break;
	case ZYDIS_REGISTER_DS: seg = DECODE_SEG_DS; break;
	case ZYDIS_REGISTER_FS: seg = DECODE_SEG_FS; break;
	case ZYDIS_REGISTER_GS: seg = DECODE_SEG_GS; break;
	default: seg = DECODE_SEG_NONE; break;
	}
	out->base = (int8_t)base;
	out->index = (int8_t)index;
	out->scale = op->mem.scale ? op->mem.scale : 1;
	out->addr_bits = (uint8_t)d.insn.address_width;
	out->seg = seg;
	out->length = (uint8_t)len;
	out->disp = op->mem.disp.has_displacement ? op->mem.disp.value : 0;
	out->rdi_stepped = d.primary_rdi;
	out->valid = true;
	return true;
}

static uint64_t recipe_base(const struct decode_ea *ea, enum decode_mode mode,
                            const struct decode_regs *r)
{
	switch (ea->seg) {
	case DECODE_SEG_FS: return r->fs_base;
	case DECODE_SEG_GS: return r->gs_base;
	default: break;
	}
	if (mode == DECODE_MODE_LONG64)
		return 0;
	switch (ea->seg) {
	case DECODE_SEG_ES: return r->es_base;
	case DECODE_SEG_CS: return r->cs_base;
	case DECODE_SEG_SS: return r->ss_base;
	case DECODE_SEG_DS: return r->ds_base;
	default: return 0;
	}
}

bool decode_ea_matches(const struct decode_ea *ea, enum decode_mode mode,
                       const struct decode_regs *regs, uint64_t gpa, unsigned access_size,
                       decode_xlate_fn xlate, void *opaque)
{
	if (!ea || !ea->valid || !regs || !xlate)
		return false;
	/* regs->rip is past the instruction: the next instruction's address. */
	uint64_t base = ea->base == DECODE_EA_NONE  ? 0
	                : ea->base == DECODE_EA_RIP ? regs->rip
	                                            : regs->gpr[ea->base];
	uint64_t index = ea->index == DECODE_EA_NONE ? 0 : regs->gpr[ea->index];
	uint64_t off = (base + index * ea->scale + (uint64_t)ea->disp) & width_mask(ea->addr_bits);
	uint64_t la = off + recipe_base(ea, mode, regs);
	if (mode != DECODE_MODE_LONG64)
		la &= 0xffffffffull;
	if (xlate_is(xlate, opaque, la, gpa))
		return true;
	if (!ea->rdi_stepped)
		return false;
	uint64_t mask = mode == DECODE_MODE_LONG64 ? ~0ull : 0xffffffffull;
	return xlate_is(xlate, opaque, (la - access_size) & mask, gpa) ||
	       xlate_is(xlate, opaque, (la + access_size) & mask, gpa);
}

/* ---- page-table walks ---------------------------------------------------- */

static bool read_entry(const struct pagewalk_ctx *ctx, uint64_t addr, unsigned size,
                       uint64_t *entry)
{
	uint8_t b[8];
	if (!ctx->read_gpa(ctx->opaque, addr, b, size))
		return false;
	uint64_t v = 0;
	for (unsigned i = size; i-- > 0;)
		v = (v << 8) | b[i];
	*entry = v;
	return true;
}

/* walk_64: walk 8-byte-entry tables from (level) down to 1 (the 4 KiB
 * level), starting at (table). Large pages at levels 2 (2 MiB) and 3
 * (1 GiB). */
static bool walk_64(const struct pagewalk_ctx *ctx, uint64_t table, int level, uint64_t la,
                    uint64_t *gpa)
{
	for (; level >= 1; level--) {
		unsigned shift = 12 + 9 * (unsigned)(level - 1);
		uint64_t entry;
		if (!read_entry(ctx, table + ((la >> shift) & 0x1ff) * 8, 8, &entry))
			return false;
		if (!(entry & PTE_P))
			return false;
		if (level == 1 || ((level == 2 || level == 3) && (entry & PTE_PS))) {
			uint64_t off_mask = (1ull << shift) - 1;
			*gpa = (entry & PTE_ADDR & ~off_mask) | (la & off_mask);
			return true;
		}
		table = entry & PTE_ADDR;
	}
	return false;
}

static bool walk_pae32(const struct pagewalk_ctx *ctx, uint32_t la, uint64_t *gpa)
{
	uint64_t pdpte;
	uint64_t addr = (ctx->cr3 & 0xffffffe0ull) + ((la >> 30) & 3) * 8;
	if (!read_entry(ctx, addr, 8, &pdpte) || !(pdpte & PTE_P))
		return false;
	return walk_64(ctx, pdpte & PTE_ADDR, 2, la, gpa);
}

static bool walk_legacy32(const struct pagewalk_ctx *ctx, uint32_t la, uint64_t *gpa)
{
	uint64_t pde, pte;
	if (!read_entry(ctx, (ctx->cr3 & 0xfffff000ull) + (la >> 22) * 4, 4, &pde) ||
	    !(pde & PTE_P))
		return false;
	if ((pde & PTE_PS) && (ctx->cr4 & CR4_PSE)) {
		/* 4 MiB page; PDE bits 13..20 are physical bits 32..39 (PSE-36). */
		*gpa = (pde & 0xffc00000ull) | (((pde >> 13) & 0xff) << 32) | (la & 0x3fffff);
		return true;
	}
	if (!read_entry(ctx, (pde & 0xfffff000ull) + ((la >> 12) & 0x3ff) * 4, 4, &pte) ||
	    !(pte & PTE_P))
		return false;
	*gpa = (pte & 0xfffff000ull) | (la & 0xfff);
	return true;
}

bool pagewalk_translate(const struct pagewalk_ctx *ctx, uint64_t la, uint64_t *gpa)
{
	if (!ctx || !gpa)
		return false;
	if (!(ctx->cr0 & CR0_PG)) {
		*gpa = la;
		return true;
	}
	if (!ctx->read_gpa)
		return false;
	if ((ctx->cr4 & CR4_PAE) && (ctx->efer & EFER_LMA))
		return walk_64(ctx, ctx->cr3 & PTE_ADDR, (ctx->cr4 & CR4_LA57) ? 5 : 4, la, gpa);
	if (ctx->cr4 & CR4_PAE)
		return walk_pae32(ctx, (uint32_t)la, gpa);
	return walk_legacy32(ctx, (uint32_t)la, gpa);
}

size_t pagewalk_read(const struct pagewalk_ctx *ctx, uint64_t la, void *buf, size_t len)
{
	uint8_t *dst = buf;
	size_t done = 0;

	if (!ctx || !ctx->read_gpa || (!buf && len))
		return 0;
	while (done < len) {
		uint64_t cur = la + done, gpa;
		size_t chunk = 4096 - (size_t)(cur & 0xfff);
		if (chunk > len - done)
			chunk = len - done;
		if (!pagewalk_translate(ctx, cur, &gpa))
			break;
		if (!ctx->read_gpa(ctx->opaque, gpa, dst + done, chunk))
			break;
		done += chunk;
	}
	return done;
}
