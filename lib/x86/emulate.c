/* emulate.c: libzhv's fallback instruction emulator (see emulate.h). The
 * core (emu_fetch, emu_step) is pure: KVM is reached only by the glue at
 * the end of the file (exit_fallback_emulate, zhv__emulate_at_rip). */
#include "emulate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "zhv_priv.h"
#include "zhv_test_hooks.h"

/* clang-format off */
#define CR0_PE   (1ull << 0)
#define CR0_MP   (1ull << 1)
#define CR0_TS   (1ull << 3)
#define CR0_NE   (1ull << 5)
#define CR0_WP   (1ull << 16)
#define CR0_PG   (1ull << 31)
#define CR4_TSD  (1ull << 2)
#define CR4_PSE  (1ull << 4)
#define CR4_PAE  (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define CR4_PCIDE (1ull << 17)
#define CR4_OSXSAVE (1ull << 18)
#define CR4_SMEP (1ull << 20)
#define CR4_SMAP (1ull << 21)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)
#define RFL_CF   (1ull << 0)
#define RFL_PF   (1ull << 2)
#define RFL_AF   (1ull << 4)
#define RFL_ZF   (1ull << 6)
#define RFL_SF   (1ull << 7)
#define RFL_OF   (1ull << 11)
#define RFL_NT   (1ull << 14)
#define RFL_RF   (1ull << 16)
#define RFL_VM   (1ull << 17)
#define RFL_AC   (1ull << 18)

#define PTE_P    (1ull << 0)
#define PTE_RW   (1ull << 1)
#define PTE_US   (1ull << 2)
#define PTE_A    (1ull << 5)
#define PTE_D    (1ull << 6)
#define PTE_PS   (1ull << 7)
#define PTE_XD   (1ull << 63)

#define PF_P     (1u << 0)
#define PF_W     (1u << 1)
#define PF_U     (1u << 2)
#define PF_RSVD  (1u << 3)
#define PF_I     (1u << 4)

#define VEC_DE 0
#define VEC_BP 3
#define VEC_UD 6
#define VEC_NM 7
#define VEC_SS 12
#define VEC_GP 13
#define VEC_PF 14
#define VEC_MF 16
/* clang-format on */

void emu_cpuid(const struct emu_env *env, uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
	out[0] = out[1] = out[2] = out[3] = 0;
	for (uint32_t i = 0; env->cpuid && i < env->ncpuid; i++) {
		const struct kvm_cpuid_entry2 *e = &env->cpuid[i];
		if (e->function != leaf)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != subleaf)
			continue;
		out[0] = e->eax;
		out[1] = e->ebx;
		out[2] = e->ecx;
		out[3] = e->edx;
		return;
	}
}

/* CPUID feature bit: (leaf, subleaf), register 0..3 = eax..edx, bit. */
static bool has_feature(const struct emu_env *env, uint32_t leaf, uint32_t sub, int reg, int bit)
{
	uint32_t r[4];
	emu_cpuid(env, leaf & 0x80000000u, 0, r);
	if (r[0] < leaf)
		return false;
	emu_cpuid(env, leaf, sub, r);
	return (r[reg] >> bit) & 1;
}

/* ---- results ------------------------------------------------------------------ */

static void set_fault(struct emu_result *res, uint8_t vector, bool has_ec, uint32_t ec)
{
	res->outcome = EMU_FAULT;
	res->vector = vector;
	res->has_error_code = has_ec;
	res->error_code = has_ec ? ec : 0;
}

static void set_unhandled(struct emu_result *res, const char *why)
{
	res->outcome = EMU_UNHANDLED;
	snprintf(res->why, sizeof(res->why), "%s", why);
}

/* ---- modes ------------------------------------------------------------------- */

static bool long64(const struct emu_state *st)
{
	return (st->efer & EFER_LMA) && st->seg[EMU_CS].l;
}

static bool vm86(const struct emu_state *st)
{
	return (st->cr0 & CR0_PE) && (st->rflags & RFL_VM);
}

static unsigned cpl(const struct emu_state *st)
{
	if (!(st->cr0 & CR0_PE))
		return 0;
	if (st->rflags & RFL_VM)
		return 3;
	return st->seg[EMU_SS].dpl;
}

/* Default operand and address size in bytes (2 or 4). */
static unsigned default_size(const struct emu_state *st)
{
	if (long64(st))
		return 4;
	if (!(st->cr0 & CR0_PE) || vm86(st) || !st->seg[EMU_CS].db)
		return 2;
	return 4;
}

static unsigned vaddr_bits(const struct emu_state *st)
{
	return (st->cr4 & CR4_LA57) ? 57 : 48;
}

static bool canonical(const struct emu_state *st, uint64_t la)
{
	unsigned b = vaddr_bits(st);
	int64_t s = (int64_t)(la << (64 - b)) >> (64 - b);
	return (uint64_t)s == la;
}

/* ---- page walk ---------------------------------------------------------------- */

enum access { ACC_READ, ACC_WRITE, ACC_FETCH };

static unsigned maxphyaddr(const struct emu_env *env)
{
	uint32_t r[4];
	emu_cpuid(env, 0x80000000u, 0, r);
	if (r[0] >= 0x80000008u) {
		emu_cpuid(env, 0x80000008u, 0, r);
		if ((r[0] & 0xff) >= 32 && (r[0] & 0xff) <= 52)
			return r[0] & 0xff;
	}
	return 36;
}

/* Translate (la) for one access. Returns EMU_DONE with (*gpa), EMU_FAULT
 * with the #PF in (res), or EMU_UNHANDLED (a table outside RAM). Sets
 * accessed bits (and the dirty bit for a write) on success. */
static enum emu_outcome translate(const struct emu_env *env, const struct emu_state *st,
                                  uint64_t la, enum access acc, uint64_t *gpa,
                                  struct emu_result *res)
{
	bool user = cpl(st) == 3;
	if (!(st->cr0 & CR0_PG)) {
		*gpa = (st->efer & EFER_LMA) ? la : (la & 0xffffffffull);
		return EMU_DONE;
	}
	bool lm = st->efer & EFER_LMA;
	bool pae = lm || (st->cr4 & CR4_PAE);
	bool nxe = pae && (st->efer & EFER_NXE);
	uint64_t rsvd_hi = pae ? (~0ull << maxphyaddr(env)) & ((1ull << 52) - 1) : 0;
	if (pae && !nxe)
		rsvd_hi |= PTE_XD;
	bool gb_pages = has_feature(env, 0x80000001u, 0, 3, 26);
	uint32_t ec = (acc == ACC_WRITE ? PF_W : 0) | (user ? PF_U : 0);
	if (acc == ACC_FETCH && (nxe || (st->cr4 & CR4_SMEP)))
		ec |= PF_I;
	if (!lm)
		la &= 0xffffffffull;

	/* Entries of the walk, to set accessed/dirty bits afterwards. */
	uint64_t ent_gpa[5], ent_val[5];
	unsigned nent = 0;
	bool rw = true, us = true, xd = false;
	uint64_t table, frame = 0, offset_mask = 0;
	int levels;
	unsigned esize = pae ? 8 : 4;
	if (lm) {
		levels = (st->cr4 & CR4_LA57) ? 5 : 4;
		table = st->cr3 & 0x000ffffffffff000ull;
	} else if (pae) {
		/* The PDPTEs: read from memory (the processor caches them at
		 * the CR3 load; a guest that changes them without reloading
		 * CR3 sees a difference). */
		uint64_t pdpte;
		uint64_t a = (st->cr3 & 0xffffffe0ull) + ((la >> 30) & 3) * 8;
		if (!env->read_phys(env->opaque, a, &pdpte, 8))
			return EMU_UNHANDLED;
		if (!(pdpte & PTE_P))
			goto not_present;
		if (pdpte & (rsvd_hi | 0x1e6ull | PTE_XD)) {
			ec |= PF_RSVD | PF_P;
			goto fault;
		}
		table = pdpte & 0x000ffffffffff000ull;
		levels = 2;
	} else {
		table = st->cr3 & 0xfffff000ull;
		levels = 2;
	}
	for (int lvl = levels; lvl >= 1; lvl--) {
		unsigned shift = pae ? 12 + 9 * (lvl - 1) : 12 + 10 * (lvl - 1);
		uint64_t idx = pae ? (la >> shift) & 0x1ff : (la >> shift) & 0x3ff;
		uint64_t a = table + idx * esize, e = 0;
		if (!env->read_phys(env->opaque, a, &e, esize))
			return EMU_UNHANDLED;
		if (!(e & PTE_P))
			goto not_present;
		bool leaf = lvl == 1 || (e & PTE_PS);
		uint64_t rsvd = rsvd_hi;
		if ((e & PTE_PS) && lvl == 2 && !pae && !(st->cr4 & CR4_PSE)) {
			leaf = false; /* without CR4.PSE the bit is ignored */
		} else if (e & PTE_PS) {
			if (lvl >= 4 || (lvl == 3 && !gb_pages))
				leaf = false, rsvd |= PTE_PS;
			else if (pae)
				rsvd |= ((1ull << shift) - 1) & ~0x1fffull; /* bits shift-1..13 */
			else
				rsvd |= 1ull << 21; /* 4 MiB page: bit 21 reserved */
		}
		if (!pae && !leaf)
			rsvd = 0;
		if (e & rsvd) {
			ec |= PF_RSVD | PF_P;
			goto fault;
		}
		rw = rw && (e & PTE_RW);
		us = us && (e & PTE_US);
		xd = xd || (nxe && (e & PTE_XD));
		ent_gpa[nent] = a;
		ent_val[nent++] = e;
		if (leaf) {
			offset_mask = (1ull << shift) - 1;
			if (pae) {
				frame = e & 0x000fffffffffffffull & ~offset_mask & ~PTE_XD;
			} else if (lvl == 2) { /* 4 MiB page, PSE-36 high bits */
				frame = (e & 0xffc00000ull) | (((e >> 13) & 0xffull) << 32);
			} else {
				frame = e & 0xfffff000ull;
			}
			break;
		}
		table = pae ? e & 0x000ffffffffff000ull : e & 0xfffff000ull;
	}
	/* Permissions (SDM vol. 3, 4.6). */
	bool ok = true;
	if (acc == ACC_FETCH) {
		if (xd || (user && !us) || (!user && us && (st->cr4 & CR4_SMEP)))
			ok = false;
	} else {
		if (user && !us)
			ok = false;
		if (acc == ACC_WRITE && !rw && (user || (st->cr0 & CR0_WP)))
			ok = false;
		if (!user && us && (st->cr4 & CR4_SMAP) && !(st->rflags & RFL_AC))
			ok = false;
	}
	if (!ok) {
		ec |= PF_P;
		goto fault;
	}
	for (unsigned i = 0; i < nent; i++) {
		uint64_t e = ent_val[i] | PTE_A;
		if (i == nent - 1 && acc == ACC_WRITE)
			e |= PTE_D;
		if (e != ent_val[i] && env->write_phys &&
		    !env->write_phys(env->opaque, ent_gpa[i], &e, esize))
			return EMU_UNHANDLED;
	}
	*gpa = frame | (la & offset_mask);
	return EMU_DONE;
not_present:
fault:
	set_fault(res, VEC_PF, true, ec);
	res->cr2 = la;
	return EMU_FAULT;
}

/* ---- memory operands ------------------------------------------------------------ */

/* The linear address of (seg):(off) for an access of (size) bytes, with the
 * segment checks of the mode: canonical in 64-bit mode, limit and
 * usability outside. Faults are #SS(0) for SS, #GP(0) otherwise. */
static bool seg_linear(const struct emu_state *st, int seg, uint64_t off, unsigned size,
                       bool write, uint64_t *la, struct emu_result *res)
{
	uint8_t vec = seg == EMU_SS ? VEC_SS : VEC_GP;
	if (long64(st)) {
		uint64_t base = (seg == EMU_FS || seg == EMU_GS) ? st->seg[seg].base : 0;
		*la = base + off;
		if (!canonical(st, *la) || !canonical(st, *la + size - 1)) {
			set_fault(res, vec, true, 0);
			return false;
		}
		return true;
	}
	const struct emu_seg *s = &st->seg[seg];
	if (st->cr0 & CR0_PE && !vm86(st)) {
		if (s->unusable || !s->present) {
			set_fault(res, vec, true, 0);
			return false;
		}
		bool code = s->s && (s->type & 8);
		/* Data writes need a writable data segment; code segments
		 * are read only if readable. */
		if ((write && (code || !(s->type & 2))) || (!write && code && !(s->type & 2))) {
			set_fault(res, vec, true, 0);
			return false;
		}
		uint64_t last = off + size - 1;
		if (!code && (s->type & 4)) { /* expand-down */
			uint64_t top = s->db ? 0xffffffffull : 0xffffull;
			if (off <= s->limit || last > top) {
				set_fault(res, vec, true, 0);
				return false;
			}
		} else if (last > s->limit) {
			set_fault(res, vec, true, 0);
			return false;
		}
	} else if (off + size - 1 > s->limit) {
		set_fault(res, vec, true, 0);
		return false;
	}
	*la = (s->base + off) & 0xffffffffull;
	return true;
}

/* Access (size) <= 16 bytes at linear (la): every page is translated (and
 * may fault) before any byte moves. */
static enum emu_outcome access_linear(const struct emu_env *env, const struct emu_state *st,
                                      uint64_t la, void *buf, unsigned size, enum access acc,
                                      bool perform, struct emu_result *res)
{
	uint64_t gpa[2];
	unsigned len[2], n = 0;
	uint64_t mask = (st->efer & EFER_LMA) ? ~0ull : 0xffffffffull;
	for (unsigned done = 0; done < size; n++) {
		uint64_t a = (la + done) & mask;
		unsigned chunk = 4096 - (unsigned)(a & 4095);
		if (chunk > size - done)
			chunk = size - done;
		enum emu_outcome o = translate(env, st, a, acc, &gpa[n], res);
		if (o == EMU_UNHANDLED)
			set_unhandled(res, "a guest page table is outside RAM");
		if (o != EMU_DONE)
			return o;
		len[n] = chunk;
		done += chunk;
	}
	if (!perform)
		return EMU_DONE;
	uint8_t *p = buf;
	for (unsigned i = 0; i < n; p += len[i], i++) {
		bool ok = acc == ACC_WRITE ? env->write_phys && env->write_phys(env->opaque, gpa[i], p, len[i])
		                           : env->read_phys(env->opaque, gpa[i], p, len[i]);
		if (!ok) {
			set_unhandled(res, "the memory operand is not guest RAM");
			return EMU_UNHANDLED;
		}
	}
	return EMU_DONE;
}

/* ---- decoding -------------------------------------------------------------------- */

struct insn {
	const uint8_t *b;
	size_t n;        /* bytes available */
	unsigned pos;    /* next byte */
	bool truncated, too_long;
	bool lock, rep /* F3 */, repne /* F2 */, opsize /* 66 */, adsize /* 67 */;
	int seg;         /* override, or -1 */
	uint8_t rex;
	unsigned opsz, adsz; /* effective sizes in bytes */
	/* ModRM */
	uint8_t mod, reg, rm;
	bool mem;
	int mem_seg;
	uint64_t ea; /* offset within the segment */
};

static bool next(struct insn *d, uint8_t *out)
{
	if (d->pos >= EMU_MAX_INSN) {
		d->too_long = true;
		return false;
	}
	if (d->pos >= d->n) {
		d->truncated = true;
		return false;
	}
	*out = d->b[d->pos++];
	return true;
}

static bool next_n(struct insn *d, unsigned k, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < k; i++) {
		uint8_t x;
		if (!next(d, &x))
			return false;
		v |= (uint64_t)x << (8 * i);
	}
	*out = v;
	return true;
}

static void prefixes(struct insn *d, const struct emu_state *st)
{
	d->seg = -1;
	for (;;) {
		uint8_t x;
		if (d->pos >= d->n || d->pos >= EMU_MAX_INSN)
			break;
		x = d->b[d->pos];
		switch (x) {
		case 0xf0: d->lock = true; break;
		case 0xf2: d->repne = true, d->rep = false; break;
		case 0xf3: d->rep = true, d->repne = false; break;
		case 0x66: d->opsize = true; break;
		case 0x67: d->adsize = true; break;
		case 0x26: d->seg = EMU_ES; break;
		case 0x2e: d->seg = EMU_CS; break;
		case 0x36: d->seg = EMU_SS; break;
		case 0x3e: d->seg = EMU_DS; break;
		case 0x64: d->seg = EMU_FS; break;
		case 0x65: d->seg = EMU_GS; break;
		default:
			goto rex;
		}
		d->pos++;
		d->rex = 0; /* a REX before a legacy prefix is ignored */
		continue;
	rex:
		if (long64(st) && (x & 0xf0) == 0x40) {
			d->rex = x;
			d->pos++;
			continue;
		}
		break;
	}
	unsigned def = default_size(st);
	if (long64(st)) {
		d->opsz = (d->rex & 8) ? 8 : d->opsize ? 2 : 4;
		d->adsz = d->adsize ? 4 : 8;
	} else {
		d->opsz = d->opsize ? 6 - def : def;
		d->adsz = d->adsize ? 6 - def : def;
	}
}

static uint64_t trunc_addr(uint64_t v, unsigned size)
{
	return size == 8 ? v : size == 4 ? (uint32_t)v : (uint16_t)v;
}

/* Decode ModRM and, for a memory form, SIB/displacement into d->ea and
 * d->mem_seg. */
static bool modrm(struct insn *d, const struct emu_state *st)
{
	uint8_t m;
	if (!next(d, &m))
		return false;
	d->mod = m >> 6;
	d->reg = ((m >> 3) & 7) | ((d->rex & 4) << 1);
	d->rm = m & 7;
	d->mem = d->mod != 3;
	if (!d->mem) {
		d->rm |= (d->rex & 1) << 3;
		return true;
	}
	const uint64_t *g = st->gpr;
	uint64_t ea = 0, disp = 0;
	int seg = EMU_DS;
	bool riprel = false;
	if (d->adsz == 2) {
		static const int8_t b1[8] = {3, 3, 5, 5, 6, 7, 5, 3}; /* bx bx bp bp si di bp bx */
		static const int8_t b2[8] = {6, 7, 6, 7, -1, -1, -1, -1};
		if (d->mod == 0 && d->rm == 6) {
			if (!next_n(d, 2, &disp))
				return false;
		} else {
			ea = g[b1[d->rm]] + (b2[d->rm] >= 0 ? g[b2[d->rm]] : 0);
			if (d->rm == 2 || d->rm == 3 || d->rm == 6)
				seg = EMU_SS;
			if (d->mod == 1 && !next_n(d, 1, &disp))
				return false;
			if (d->mod == 2 && !next_n(d, 2, &disp))
				return false;
			disp = d->mod == 1 ? (uint64_t)(int64_t)(int8_t)disp : (uint64_t)(int64_t)(int16_t)disp;
		}
		ea += disp;
	} else {
		unsigned rm = d->rm;
		if (rm == 4) {
			uint8_t sib;
			if (!next(d, &sib))
				return false;
			unsigned scale = sib >> 6;
			unsigned index = ((sib >> 3) & 7) | ((d->rex & 2) << 2);
			unsigned base = (sib & 7) | ((d->rex & 1) << 3);
			if (index != 4)
				ea += g[index] << scale;
			if ((sib & 7) == 5 && d->mod == 0) {
				if (!next_n(d, 4, &disp))
					return false;
				disp = (uint64_t)(int64_t)(int32_t)disp;
			} else {
				ea += g[base];
				if ((base & 7) == 4 || (base & 7) == 5)
					seg = EMU_SS;
			}
		} else if (rm == 5 && d->mod == 0) {
			if (!next_n(d, 4, &disp))
				return false;
			disp = (uint64_t)(int64_t)(int32_t)disp;
			riprel = long64(st);
		} else {
			unsigned base = rm | ((d->rex & 1) << 3);
			ea += g[base];
			if (rm == 5)
				seg = EMU_SS;
		}
		if (d->mod == 1) {
			if (!next_n(d, 1, &disp))
				return false;
			disp = (uint64_t)(int64_t)(int8_t)disp;
		} else if (d->mod == 2) {
			if (!next_n(d, 4, &disp))
				return false;
			disp = (uint64_t)(int64_t)(int32_t)disp;
		}
		ea += disp;
	}
	/* RIP-relative: relative to the next instruction, added once the
	 * length is known (emu_step); marked by mem_seg's high bit. */
	d->ea = ea;
	d->mem_seg = d->seg >= 0 ? d->seg : seg;
	if (riprel)
		d->mem_seg |= 0x100;
	return true;
}

/* After the whole instruction is decoded: the final offset. */
static void finish_ea(struct insn *d, const struct emu_state *st)
{
	if (d->mem_seg & 0x100) {
		d->mem_seg &= 0xff;
		d->ea += st->rip + d->pos;
	}
	d->ea = trunc_addr(d->ea, d->adsz);
}

/* ---- instructions ------------------------------------------------------------------ */

struct ctx {
	const struct emu_env *env;
	struct emu_state *st; /* the working copy */
	struct insn *d;
	struct emu_result *res;
};

static void set_reg(struct emu_state *st, unsigned r, unsigned size, uint64_t v)
{
	if (size == 2)
		st->gpr[r] = (st->gpr[r] & ~0xffffull) | (v & 0xffff);
	else if (size == 4)
		st->gpr[r] = (uint32_t)v;
	else
		st->gpr[r] = v;
}

static uint64_t bswap_n(uint64_t v, unsigned size)
{
	uint64_t r = 0;
	for (unsigned i = 0; i < size; i++)
		r |= ((v >> (8 * i)) & 0xff) << (8 * (size - 1 - i));
	return r;
}

/* Read/write the memory operand: segment checks, then the walk. */
static bool mem_access(struct ctx *c, void *buf, unsigned size, enum access acc, bool perform)
{
	uint64_t la;
	if (!seg_linear(c->st, c->d->mem_seg, c->d->ea, size, acc == ACC_WRITE, &la, c->res))
		return false;
	return access_linear(c->env, c->st, la, buf, size, acc, perform, c->res) == EMU_DONE;
}

static bool ud(struct ctx *c)
{
	set_fault(c->res, VEC_UD, false, 0);
	return false;
}

static bool gp0(struct ctx *c)
{
	set_fault(c->res, VEC_GP, true, 0);
	return false;
}

static bool any_simd_prefix(const struct insn *d)
{
	return d->opsize || d->rep || d->repne;
}

/* XGETBV (SDM vol. 2C). */
static bool do_xgetbv(struct ctx *c)
{
	struct emu_state *st = c->st;
	if (c->d->lock || any_simd_prefix(c->d) || !has_feature(c->env, 1, 0, 2, 26) ||
	    !(st->cr4 & CR4_OSXSAVE))
		return ud(c);
	uint32_t ecx = (uint32_t)st->gpr[1];
	uint64_t xcr0, inuse = ~0ull;
	if (ecx > 1 || (ecx == 1 && !has_feature(c->env, 0xd, 1, 0, 2)))
		return gp0(c);
	if (!c->env->query || !c->env->query(c->env->opaque, EMU_Q_XCR0, &xcr0) ||
	    (ecx == 1 && !c->env->query(c->env->opaque, EMU_Q_XINUSE, &inuse))) {
		set_unhandled(c->res, "XCR0 or XINUSE is unavailable");
		return false;
	}
	uint64_t v = xcr0 & inuse;
	st->gpr[0] = (uint32_t)v;
	st->gpr[2] = v >> 32;
	return true;
}

/* RDPRU (AMD APM vol. 3). */
static bool do_rdpru(struct ctx *c)
{
	struct emu_state *st = c->st;
	if (c->d->lock || any_simd_prefix(c->d) || !has_feature(c->env, 0x80000008u, 0, 1, 4))
		return ud(c);
	if (cpl(st) > 0 && (st->cr4 & CR4_TSD))
		return ud(c);
	uint32_t r[4];
	emu_cpuid(c->env, 0x80000008u, 0, r);
	uint32_t max = r[3] >> 16, ecx = (uint32_t)st->gpr[1];
	uint64_t v = 0;
	bool valid = ecx <= max && ecx <= 1;
	if (valid && (!c->env->query ||
	              !c->env->query(c->env->opaque, ecx == 0 ? EMU_Q_MPERF : EMU_Q_APERF, &v))) {
		set_unhandled(c->res, "MPERF/APERF are unavailable");
		return false;
	}
	st->gpr[0] = (uint32_t)v;
	st->gpr[2] = v >> 32;
	st->rflags &= ~(RFL_CF | RFL_PF | RFL_AF | RFL_ZF | RFL_SF | RFL_OF);
	if (valid)
		st->rflags |= RFL_CF;
	return true;
}

/* STAC / CLAC (SDM vol. 2). */
static bool do_stac_clac(struct ctx *c, bool set)
{
	struct emu_state *st = c->st;
	if (c->d->lock || any_simd_prefix(c->d) || !has_feature(c->env, 7, 0, 1, 20) || vm86(st) ||
	    cpl(st) > 0)
		return ud(c);
	if (set)
		st->rflags |= RFL_AC;
	else
		st->rflags &= ~RFL_AC;
	return true;
}

/* CLWB / CLFLUSHOPT: the permission checks and faults of a byte load, no
 * other effect (guest memory is coherent: nothing to write back). */
static bool do_cacheline(struct ctx *c, int bit)
{
	if (c->d->lock || !has_feature(c->env, 7, 0, 1, bit))
		return ud(c);
	uint8_t dummy;
	uint64_t la;
	/* Allowed on execute-only code segments (SDM, CLFLUSH): read
	 * permission of the segment is not checked. */
	const struct emu_seg *s = &c->st->seg[c->d->mem_seg];
	if (!long64(c->st) && s->s && (s->type & 8) && !(s->type & 2)) {
		if (c->d->ea > s->limit) {
			set_fault(c->res, VEC_GP, true, 0);
			return false;
		}
		la = (s->base + c->d->ea) & 0xffffffffull;
	} else if (!seg_linear(c->st, c->d->mem_seg, c->d->ea, 1, false, &la, c->res)) {
		return false;
	}
	return access_linear(c->env, c->st, la, &dummy, 1, ACC_READ, false, c->res) == EMU_DONE;
}

/* MOVBE (SDM vol. 2B). */
static bool do_movbe(struct ctx *c, bool store)
{
	struct insn *d = c->d;
	if (d->lock || d->rep || !has_feature(c->env, 1, 0, 2, 22) || !d->mem)
		return ud(c);
	unsigned size = d->opsz;
	uint64_t v = 0;
	if (store) {
		v = bswap_n(c->st->gpr[d->reg], size);
		return mem_access(c, &v, size, ACC_WRITE, true);
	}
	if (!mem_access(c, &v, size, ACC_READ, true))
		return false;
	set_reg(c->st, d->reg, size, bswap_n(v, size));
	return true;
}

/* INVPCID (SDM vol. 2A). */
static bool do_invpcid(struct ctx *c)
{
	struct insn *d = c->d;
	struct emu_state *st = c->st;
	if (d->lock || d->rep || d->repne || !has_feature(c->env, 7, 0, 1, 10) || !d->mem ||
	    vm86(st))
		return ud(c);
	if (cpl(st) > 0)
		return gp0(c);
	uint64_t type = long64(st) ? st->gpr[d->reg] : (uint32_t)st->gpr[d->reg];
	if (type > 3)
		return gp0(c);
	uint64_t desc[2];
	if (!mem_access(c, desc, 16, ACC_READ, true))
		return false;
	uint16_t pcid = desc[0] & 0xfff;
	if (desc[0] >> 12)
		return gp0(c);
	if (type <= 1 && pcid && !(st->cr4 & CR4_PCIDE))
		return gp0(c);
	if (type == 0 && !canonical(st, desc[1]))
		return gp0(c);
	static const enum emu_flush kinds[4] = {EMU_FLUSH_ADDR, EMU_FLUSH_PCID, EMU_FLUSH_ALL,
	                                        EMU_FLUSH_ALL_NONGLOBAL};
	c->res->flush = kinds[type];
	c->res->flush_pcid = pcid;
	c->res->flush_addr = desc[1];
	return true;
}

/* FWAIT (SDM vol. 2A, WAIT/FWAIT). */
static bool do_fwait(struct ctx *c)
{
	struct emu_state *st = c->st;
	if ((st->cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS)) {
		set_fault(c->res, VEC_NM, false, 0);
		return false;
	}
	uint64_t fsw = 0;
	if (!c->env->query || !c->env->query(c->env->opaque, EMU_Q_FSW, &fsw)) {
		set_unhandled(c->res, "the x87 status word is unavailable");
		return false;
	}
	if (fsw & 0x80) { /* ES: an unmasked x87 exception is pending */
		if (!(st->cr0 & CR0_NE)) {
			set_unhandled(c->res, "x87 error reporting through FERR# (CR0.NE=0)");
			return false;
		}
		set_fault(c->res, VEC_MF, false, 0);
		return false;
	}
	return true;
}

/* INT3 / INT n: the gate's DPL is checked against CPL in protected mode
 * (an interrupt gate of a lower DPL gives #GP(vector * 8 + 2)); KVM
 * delivers the event through the IDT after the instruction. */
static bool do_int(struct ctx *c, uint8_t vector, bool int3)
{
	struct emu_state *st = c->st;
	if (c->d->lock)
		return ud(c);
	if (vm86(st) && !int3 && ((st->rflags >> 12) & 3) < 3)
		return gp0(c);
	if ((st->cr0 & CR0_PE) && !vm86(st) && cpl(st) > 0) {
		unsigned gsize = (st->efer & EFER_LMA) ? 16 : 8;
		uint32_t ec = vector * 8u + 2;
		uint64_t gate[2] = {0, 0};
		uint64_t off = (uint64_t)vector * gsize;
		if (off + gsize - 1 > st->idt_limit) {
			set_fault(c->res, VEC_GP, true, ec);
			return false;
		}
		/* The IDT read is a supervisor access. */
		struct emu_state sup = *st;
		sup.seg[EMU_SS].dpl = 0;
		sup.rflags |= RFL_AC;
		if (access_linear(c->env, &sup, st->idt_base + off, gate, 8, ACC_READ, true,
		                  c->res) != EMU_DONE)
			return false;
		unsigned dpl = (gate[0] >> 45) & 3;
		if (dpl < cpl(st)) {
			set_fault(c->res, VEC_GP, true, ec);
			return false;
		}
	}
	c->res->event = true;
	c->res->event_vector = vector;
	return true;
}

/* IRET in 32-bit protected mode returning to the same code segment at
 * CPL0 (SDM vol. 2, IRET, "PROTECTED-MODE RETURN: same privilege level"):
 * an interrupt handler of a 32-bit kernel returning to it. KVM's emulator
 * handles only real-mode IRET. */
static bool do_iret32(struct ctx *c)
{
	struct emu_state *st = c->st;
	struct insn *d = c->d;
	if (d->lock)
		return ud(c);
	if (long64(st) || !(st->cr0 & CR0_PE) || vm86(st) || d->opsz != 4 || cpl(st) != 0 ||
	    (st->rflags & RFL_NT)) {
		set_unhandled(c->res, "IRET other than 32-bit, CPL0, same code segment");
		return false;
	}
	const struct emu_seg *ss = &st->seg[EMU_SS];
	uint64_t esp = ss->db ? (uint32_t)st->gpr[4] : (uint16_t)st->gpr[4];
	uint32_t frame[3]; /* EIP, CS, EFLAGS */
	uint64_t la;
	if (!seg_linear(st, EMU_SS, esp, sizeof(frame), false, &la, c->res) ||
	    access_linear(c->env, st, la, frame, sizeof(frame), ACC_READ, true, c->res) != EMU_DONE)
		return false;
	if ((uint16_t)frame[1] != st->seg[EMU_CS].selector || (frame[2] & RFL_VM)) {
		set_unhandled(c->res, "IRET to another code segment or to virtual-8086 mode");
		return false;
	}
	if (frame[0] > st->seg[EMU_CS].limit)
		return gp0(c);
	st->rip = frame[0];
	/* At CPL0 every flag IRET can load changes, except VM, VIF, VIP. */
	st->rflags = (frame[2] & 0x257fd7u) | 0x2;
	esp += sizeof(frame);
	st->gpr[4] = ss->db ? (uint32_t)esp : ((st->gpr[4] & ~0xffffull) | (esp & 0xffff));
	c->res->end_nmi_blocking = true;
	return true;
}

size_t emu_fetch(const struct emu_env *env, const struct emu_state *st,
                 uint8_t bytes[EMU_MAX_INSN], struct emu_result *fault)
{
	memset(fault, 0, sizeof(*fault));
	fault->outcome = EMU_DONE;
	uint64_t la = st->rip;
	if (!long64(st))
		la = (st->seg[EMU_CS].base + (uint32_t)la) & 0xffffffffull;
	size_t n = 0;
	while (n < EMU_MAX_INSN) {
		uint64_t a = la + n, gpa;
		if (long64(st) && !canonical(st, a)) {
			set_fault(fault, VEC_GP, true, 0);
			break;
		}
		size_t chunk = 4096 - (a & 4095);
		if (chunk > EMU_MAX_INSN - n)
			chunk = EMU_MAX_INSN - n;
		enum emu_outcome o = translate(env, st, a, ACC_FETCH, &gpa, fault);
		if (o == EMU_UNHANDLED)
			set_unhandled(fault, "a guest page table is outside RAM");
		if (o != EMU_DONE || !env->read_phys(env->opaque, gpa, bytes + n, chunk))
			break;
		n += chunk;
	}
	return n;
}

void emu_step(const struct emu_env *env, struct emu_state *st_io, const uint8_t *bytes, size_t n,
              const struct emu_result *fetch_fault, struct emu_result *res)
{
	memset(res, 0, sizeof(*res));
	res->name = "";
	struct emu_state st = *st_io;
	struct insn d = {.b = bytes, .n = n};
	struct ctx c = {.env = env, .st = &st, .d = &d, .res = res};
	prefixes(&d, &st);
	uint8_t op[3] = {0, 0, 0};
	bool ok = false, known = true;
	enum { I_NONE, I_XGETBV, I_RDPRU, I_STAC, I_CLAC, I_CLWB, I_CLFLUSHOPT, I_MOVBE_LD,
	       I_MOVBE_ST, I_INVPCID, I_FWAIT, I_INT3, I_INTN, I_IRET } which = I_NONE;
	uint8_t imm = 0;
	if (!next(&d, &op[0]))
		goto short_or_long;
	if (op[0] == 0x9b) {
		which = I_FWAIT;
	} else if (op[0] == 0xcc) {
		which = I_INT3;
	} else if (op[0] == 0xcd) {
		which = I_INTN;
		if (!next(&d, &imm))
			goto short_or_long;
	} else if (op[0] == 0xcf) {
		which = I_IRET;
	} else if (op[0] == 0x0f) {
		if (!next(&d, &op[1]))
			goto short_or_long;
		if (op[1] == 0x01) {
			if (!next(&d, &op[2]))
				goto short_or_long;
			which = op[2] == 0xd0 ? I_XGETBV : op[2] == 0xfd ? I_RDPRU
			      : op[2] == 0xcb ? I_STAC : op[2] == 0xca ? I_CLAC : I_NONE;
		} else if (op[1] == 0xae) {
			/* 66 0F AE /6 and /7 with a memory operand; F2/F3
			 * make other instructions. */
			if (!modrm(&d, &st))
				goto short_or_long;
			if (d.opsize && !d.rep && !d.repne && d.mem && (d.reg & 7) >= 6)
				which = (d.reg & 7) == 6 ? I_CLWB : I_CLFLUSHOPT;
		} else if (op[1] == 0x38) {
			if (!next(&d, &op[2]))
				goto short_or_long;
			if ((op[2] == 0xf0 || op[2] == 0xf1) && !d.repne) {
				if (!modrm(&d, &st))
					goto short_or_long;
				which = op[2] == 0xf0 ? I_MOVBE_LD : I_MOVBE_ST;
			} else if (op[2] == 0x82 && d.opsize) {
				/* INVPCID: the register is 64-bit in 64-bit
				 * mode, 32-bit outside, whatever the prefixes. */
				if (!modrm(&d, &st))
					goto short_or_long;
				which = I_INVPCID;
			}
		}
	}
	if (which == I_NONE) {
		known = false;
		set_unhandled(res, "not an instruction libzhv emulates");
		goto out;
	}
	res->length = (uint8_t)d.pos;
	if (d.mem)
		finish_ea(&d, &st);
	switch (which) {
	case I_XGETBV: res->name = "xgetbv"; ok = do_xgetbv(&c); break;
	case I_RDPRU: res->name = "rdpru"; ok = do_rdpru(&c); break;
	case I_STAC: res->name = "stac"; ok = do_stac_clac(&c, true); break;
	case I_CLAC: res->name = "clac"; ok = do_stac_clac(&c, false); break;
	case I_CLWB: res->name = "clwb"; ok = do_cacheline(&c, 24); break;
	case I_CLFLUSHOPT: res->name = "clflushopt"; ok = do_cacheline(&c, 23); break;
	case I_MOVBE_LD:
	case I_MOVBE_ST: res->name = "movbe"; ok = do_movbe(&c, which == I_MOVBE_ST); break;
	case I_INVPCID: res->name = "invpcid"; ok = do_invpcid(&c); break;
	case I_FWAIT: res->name = "fwait"; ok = do_fwait(&c); break;
	case I_INT3: res->name = "int3"; ok = do_int(&c, VEC_BP, true); break;
	case I_INTN: res->name = "int"; ok = do_int(&c, imm, false); break;
	case I_IRET: res->name = "iret"; ok = do_iret32(&c); break;
	case I_NONE: break;
	}
	if (!ok)
		goto out;
	if (which != I_IRET) {
		uint64_t next_ip = st.rip + d.pos;
		st.rip = long64(&st) ? next_ip : default_size(&st) == 4 ? (uint32_t)next_ip
		                                                         : (uint16_t)next_ip;
	}
	st.rflags &= ~RFL_RF;
	res->outcome = EMU_DONE;
	*st_io = st;
	return;
short_or_long:
	if (d.too_long) { /* more than 15 bytes: #GP(0) */
		set_fault(res, VEC_GP, true, 0);
		goto out;
	}
	if (fetch_fault && fetch_fault->outcome == EMU_FAULT) {
		*res = *fetch_fault;
		res->name = "";
		goto out;
	}
	set_unhandled(res, "the instruction bytes are truncated");
out:
	(void)known;
	if (res->outcome == EMU_FAULT)
		res->event = false, res->flush = EMU_FLUSH_NONE;
}

/* ---- the KVM side --------------------------------------------------------------------- */

struct glue {
	zhv_vcpu_t *v;
};

static bool glue_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
	return memory_read(&((struct glue *)opaque)->v->guest->mem, gpa, buf, len);
}

static bool glue_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
	return memory_write(&((struct glue *)opaque)->v->guest->mem, gpa, buf, len);
}
static bool glue_query(void *opaque, enum emu_query q, uint64_t *val)
{
	zhv_vcpu_t *v = ((struct glue *)opaque)->v;
	switch (q) {
	case EMU_Q_XCR0: {
		struct kvm_xcrs xcrs;
		if (zhv_ioctl(v->fd, KVM_GET_XCRS, &xcrs) < 0)
			return false;
		for (uint32_t i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++) {
			if (xcrs.xcrs[i].xcr == 0) {
				*val = xcrs.xcrs[i].value;
				return true;
			}
		}
		return false;
	}
	case EMU_Q_XINUSE: {
		/* XSTATE_BV of KVM's XSAVE image: a component whose bit is
		 * clear is in its initial configuration (SDM vol. 1, 13.6),
		 * which is what XINUSE may report. */
		struct kvm_xsave *x = malloc(sizeof(*x));
		if (!x)
			return false;
		bool ok = zhv_ioctl(v->fd, KVM_GET_XSAVE, x) == 0;
		if (ok)
			memcpy(val, (const uint8_t *)x->region + 512, 8);
		free(x);
		return ok;
	}
	case EMU_Q_FSW: {
		struct kvm_fpu fpu;
		if (zhv_ioctl(v->fd, KVM_GET_FPU, &fpu) < 0)
			return false;
		*val = fpu.fsw;
		return true;
	}
	case EMU_Q_MPERF:
	case EMU_Q_APERF: {
		struct {
			struct kvm_msrs h;
			struct kvm_msr_entry e;
		} m = {.h.nmsrs = 1, .e.index = q == EMU_Q_MPERF ? 0xe7 : 0xe8};
		if (zhv_ioctl(v->fd, KVM_GET_MSRS, &m) != 1)
			return false;
		*val = m.e.data;
		return true;
	}
	}
	return false;
}

static void seg_from_kvm(struct emu_seg *d, const struct kvm_segment *s)
{
	*d = (struct emu_seg){.base = s->base, .limit = s->limit, .selector = s->selector,
	                      .type = s->type, .s = s->s, .dpl = s->dpl, .present = s->present,
	                      .db = s->db, .l = s->l, .unusable = s->unusable};
}

/* The guest's CPUID as KVM holds it for the vCPU (KVM_GET_CPUID2): some
 * KVMs rewrite the table the VMM set, and the guest sees KVM's. */
static struct kvm_cpuid2 *vcpu_cpuid(zhv_vcpu_t *v)
{
	for (uint32_t n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return NULL;
		c->nent = n;
		int e = zhv_ioctl(v->fd, KVM_GET_CPUID2, c);
		if (e == 0)
			return c;
		free(c);
		if (e != -E2BIG)
			break;
	}
	/* Fall back on the policy libzhv installed. */
	const struct kvm_cpuid2 *p = v->guest->cpuid;
	if (!p)
		return NULL;
	size_t sz = sizeof(*p) + p->nent * sizeof(p->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	if (c)
		memcpy(c, p, sz);
	return c;
}

/* Invalidate the guest's TLB. KVM offers user space no per-address or
 * per-PCID invalidation, and a KVM_SET_SREGS with unchanged CR0, CR3, CR4
 * and EFER does not flush. A KVM_SET_SREGS that changes CR4 resets KVM's
 * MMU context and requests a flush of the guest's TLB (global entries
 * included): so CR4.PGE is toggled and restored, two calls, the guest never
 * runs in between. This is the architectural effect of toggling CR4.PGE
 * (SDM vol. 3, 4.10.4.1) and covers every INVPCID type (the processor may
 * always invalidate more than a type requires). */
static bool flush_guest_tlb(zhv_vcpu_t *v)
{
	struct kvm_sregs s;
	if (zhv_ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return false;
	struct kvm_sregs t = s;
	t.cr4 ^= 1ull << 7; /* PGE */
	return zhv_ioctl(v->fd, KVM_SET_SREGS, &t) == 0 && zhv_ioctl(v->fd, KVM_SET_SREGS, &s) == 0;
}

static bool inject(zhv_vcpu_t *v, bool exception, uint8_t vector, bool has_ec, uint32_t ec,
                   bool end_nmi_blocking)
{
	struct kvm_vcpu_events ev;
	if (zhv_ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return false;
	ev.flags = 0;
	if (end_nmi_blocking) {
		ev.nmi.masked = 0;
	} else if (exception) {
		ev.exception.injected = 1;
		ev.exception.nr = vector;
		ev.exception.has_error_code = has_ec;
		ev.exception.error_code = ec;
	} else {
		ev.interrupt.injected = 1;
		ev.interrupt.nr = vector;
		ev.interrupt.soft = 0;
	}
	return zhv_ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) == 0;
}

bool emulate_fallback(zhv_vcpu_t *v, char *why, size_t whylen)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	const uint64_t both = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
	if ((v->run->kvm_valid_regs & both) == both) {
		r = v->run->s.regs.regs;
		s = v->run->s.regs.sregs;
	} else if (zhv_ioctl(v->fd, KVM_GET_REGS, &r) < 0 || zhv_ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
		snprintf(why, whylen, "registers unavailable");
		return false;
	}
	struct emu_state st = {
		.gpr = {r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10,
		        r.r11, r.r12, r.r13, r.r14, r.r15},
		.rip = r.rip, .rflags = r.rflags, .cr0 = s.cr0, .cr2 = s.cr2, .cr3 = s.cr3,
		.cr4 = s.cr4, .efer = s.efer, .idt_base = s.idt.base, .idt_limit = s.idt.limit,
	};
	seg_from_kvm(&st.seg[EMU_ES], &s.es);
	seg_from_kvm(&st.seg[EMU_CS], &s.cs);
	seg_from_kvm(&st.seg[EMU_SS], &s.ss);
	seg_from_kvm(&st.seg[EMU_DS], &s.ds);
	seg_from_kvm(&st.seg[EMU_FS], &s.fs);
	seg_from_kvm(&st.seg[EMU_GS], &s.gs);
	struct kvm_cpuid2 *cpuid = vcpu_cpuid(v);
	if (!cpuid) {
		snprintf(why, whylen, "the guest's CPUID is unavailable");
		return false;
	}
	struct glue gl = {.v = v};
	struct emu_env env = {.cpuid = cpuid->entries, .ncpuid = cpuid->nent,
	                      .read_phys = glue_read, .write_phys = glue_write,
	                      .query = glue_query, .opaque = &gl};
	uint8_t bytes[EMU_MAX_INSN];
	struct emu_result ff, res;
	size_t n = emu_fetch(&env, &st, bytes, &ff);
	emu_step(&env, &st, bytes, n, &ff, &res);
	free(cpuid);
	if (res.outcome == EMU_UNHANDLED) {
		snprintf(why, whylen, "%s%s%s", res.name, res.name[0] ? ": " : "", res.why);
		return false;
	}
	if (res.outcome == EMU_FAULT) {
		if (res.vector == 14) {
			s.cr2 = res.cr2;
			if (zhv_ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
				goto io_error;
		}
		if (!inject(v, true, res.vector, res.has_error_code, res.error_code, false))
			goto io_error;
		zhv_log(ZHV_LOG_DEBUG, "vcpu %u: libzhv emulated %s at %#llx: exception %u (%#x)", v->id,
		        res.name[0] ? res.name : "the fetch", (unsigned long long)r.rip, res.vector,
		        res.error_code);
		STAT_INC(v->guest, emulated_by_libzhv);
		return true;
	}
	uint64_t *g = st.gpr;
	r.rax = g[0], r.rcx = g[1], r.rdx = g[2], r.rbx = g[3], r.rsp = g[4], r.rbp = g[5];
	r.rsi = g[6], r.rdi = g[7], r.r8 = g[8], r.r9 = g[9], r.r10 = g[10], r.r11 = g[11];
	r.r12 = g[12], r.r13 = g[13], r.r14 = g[14], r.r15 = g[15];
	r.rip = st.rip;
	r.rflags = st.rflags;
	if (zhv_ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		goto io_error;
	if (res.flush != EMU_FLUSH_NONE && !flush_guest_tlb(v))
		goto io_error;
	/* INT3 and INT n are delivered as an external-interrupt event: KVM
	 * takes the return address of an injected soft exception or soft
	 * interrupt from its own record of the last exit (SVM's NextRIP,
	 * VMX's instruction length), which belongs to another instruction
	 * here. An interrupt event pushes RIP as set above, without an error
	 * code, which is what INT3 and INT n push; the emulator has checked
	 * the gate's DPL. */
	if (res.event && !inject(v, false, res.event_vector, false, 0, false))
		goto io_error;
	if (res.end_nmi_blocking && !inject(v, false, 0, false, 0, true))
		goto io_error;
	STAT_INC(v->guest, emulated_by_libzhv);
	v->dbg.emulated = true; /* a single-step stops after it (x86/debug.c) */
	zhv_log(ZHV_LOG_DEBUG, "vcpu %u: libzhv emulated %s at %#llx", v->id, res.name,
	        (unsigned long long)(r.rip - res.length));
	return true;
io_error:
	snprintf(why, whylen, "%s: setting the vCPU's state failed", res.name);
	return false;
}

zhv_status_t zhv__emulate_at_rip(zhv_vcpu_t *v, char *why, size_t whylen)
{
	zhv_status_t st = vcpu_complete_pending(v);
	if (st != ZHV_OK)
		return st;
	return emulate_fallback(v, why, whylen) ? ZHV_OK : ZHV_ERR_NOT_SUPPORTED;
}
