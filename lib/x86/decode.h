/* decode.h: x86 instruction decoding for MEM packets and diagnostics
 * (internal; built on Zydis). */
#ifndef ZHV_X86_DECODE_H
#define ZHV_X86_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CPU mode of the code being decoded. */
enum decode_mode {
	DECODE_MODE_REAL16 = 0, /* real mode or 16-bit protected mode */
	DECODE_MODE_PROT32 = 1, /* 32-bit protected or compatibility mode */
	DECODE_MODE_LONG64 = 2, /* 64-bit mode */
};

/* decode_mode_of: the mode from CR0.PE, EFER.LMA, CS.L and CS.D. */
enum decode_mode decode_mode_of(uint64_t cr0, uint64_t efer, bool cs_l, bool cs_db);

/* The general registers needed to compute an effective address, indexed
 * in the hardware encoding order: rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi,
 * r8..r15. */
struct decode_regs {
	uint64_t gpr[16];
	uint64_t rip; /* address of the instruction being decoded */
	uint64_t fs_base, gs_base;
	/* Bases of the other segments; used only outside 64-bit mode (leave
	 * them zero for flat segments). Real mode: the selector * 16. */
	uint64_t es_base, cs_base, ss_base, ds_base;
};

struct decode_insn {
	uint8_t length;          /* 1..15 */
	bool has_mem;            /* it has an explicit memory operand */
	bool mem_read, mem_write; /* operand actions on that memory operand */
	uint8_t mem_size;        /* bytes accessed through it (0 if unknown) */
	bool ea_valid;           /* effective address computed */
	uint64_t ea;             /* linear address of the memory operand */
	char text[96];           /* AT&T-free Intel syntax, e.g. "mov qword ptr [0xFFF000], 0x0" */
};

/* decode_one: decode the instruction at the start of (bytes) (up to (len)
 * bytes available) in (mode). (regs) may be NULL (no effective address).
 * Returns true and fills (out) if a valid instruction was decoded.
 * Memory operands considered are the data operands, explicit or implicit
 * (string instructions, MASKMOVDQU), but not the stack accesses of PUSH,
 * POP, CALL and the like, nor LEA-style address generation. mem_read and
 * mem_write cover all of them (MOVS reads and writes); mem_size and ea
 * describe the written one if any, else the first read one. The effective
 * address is the linear address: offset truncated to the address size,
 * plus the segment base (fs/gs always, the others outside 64-bit mode),
 * RIP-relative operands taken relative to the next instruction. */
bool decode_one(const uint8_t *bytes, size_t len, enum decode_mode mode,
                const struct decode_regs *regs, struct decode_insn *out);

/* decode_backwards_write: KVM reports an MMIO write after the instruction
 * completed, with RIP already past it. Given (bytes) = the (len) <= 15 bytes
 * that precede that RIP (bytes[len - 1] is the last byte of the
 * instruction), find the instruction that ends exactly at RIP and writes
 * (access_size) bytes to memory: try every start, keep the candidates whose
 * decoded length reaches RIP exactly and whose memory operand is written
 * with that size; prefer one whose effective address (computed from (regs)
 * with regs->rip set to the candidate's start), translated by (xlate), is
 * (gpa); among equals prefer the longest. (regs) holds the registers after
 * the instruction (regs->rip is the RIP just past bytes[len - 1]); it may
 * be NULL (then the address check is skipped). For string stores (STOS,
 * MOVS) the address check also accepts rdi -/+ (access_size), since rdi has
 * already been stepped. (xlate) maps a linear address to
 * a guest-physical one (returns false if unmapped); it may be NULL (then
 * the address check is skipped). Returns the instruction length (1..15) and
 * fills (out), or 0 if nothing fits. */
typedef bool (*decode_xlate_fn)(void *opaque, uint64_t linear, uint64_t *gpa);
unsigned decode_backwards_write(const uint8_t *bytes, size_t len, enum decode_mode mode,
                                const struct decode_regs *regs, uint64_t gpa,
                                unsigned access_size, decode_xlate_fn xlate, void *opaque,
                                struct decode_insn *out);
/* decode_backwards_write_fits: the same, also giving in *fits (may be
 * NULL) the candidates: bit L set when the L bytes before RIP decode to a
 * store of (access_size) bytes ending exactly at RIP. The bytes, the mode
 * and the size alone decide this set; the registers and (gpa) only choose
 * among several (decode_backwards_write_pick). */
unsigned decode_backwards_write_fits(const uint8_t *bytes, size_t len, enum decode_mode mode,
                                     const struct decode_regs *regs, uint64_t gpa,
                                     unsigned access_size, decode_xlate_fn xlate, void *opaque,
                                     struct decode_insn *out, uint16_t *fits);

/* decode_backwards_write_pick: decode_backwards_write's answer for the
 * same bytes when their candidate set (fits) is already known: only those
 * candidates are decoded (none when there is one). Returns 0 if (fits) is
 * empty. */
unsigned decode_backwards_write_pick(const uint8_t *bytes, size_t len, enum decode_mode mode,
                                     const struct decode_regs *regs, uint64_t gpa,
                                     unsigned access_size, decode_xlate_fn xlate, void *opaque,
                                     uint16_t fits);

/* The address recipe of a store's memory operand, so that the address it
 * wrote can be checked again without decoding: linear = (base + index *
 * scale + disp) truncated to addr_bits, plus the segment's base (outside
 * 64-bit mode truncated to 32 bits), as decode_one computes it. */
#define DECODE_EA_NONE (-1)
#define DECODE_EA_RIP  16 /* base is the instruction pointer (next instruction) */
enum decode_seg { DECODE_SEG_NONE, DECODE_SEG_ES, DECODE_SEG_CS, DECODE_SEG_SS, DECODE_SEG_DS,
                  DECODE_SEG_FS, DECODE_SEG_GS };
struct decode_ea {
	bool valid;
	bool rdi_stepped;   /* string store through RDI: also accept rdi -/+ size */
	int8_t base, index; /* 0..15 (rax..r15), DECODE_EA_RIP (base) or NONE */
	uint8_t scale, addr_bits, seg, length;
	int64_t disp;
};

/* decode_store_ea: the recipe of the written memory operand of the
 * instruction that is exactly (bytes, len). False (and !out->valid) when
 * there is no such operand or it has no single address. */
bool decode_store_ea(const uint8_t *bytes, size_t len, enum decode_mode mode,
                     struct decode_ea *out);

/* decode_ea_matches: the store of (ea), run with the registers (regs) (RIP
 * just past it), wrote (gpa), as decode_backwards_write's address check
 * decides it (string stores: rdi -/+ access_size too). */
bool decode_ea_matches(const struct decode_ea *ea, enum decode_mode mode,
                       const struct decode_regs *regs, uint64_t gpa, unsigned access_size,
                       decode_xlate_fn xlate, void *opaque);

/* decode_length: the length of the instruction at the start of (bytes)
 * in (mode), without formatting its text or computing addresses (the
 * cheap part of decode_one). Returns false if nothing valid decodes. */
bool decode_length(const uint8_t *bytes, size_t len, enum decode_mode mode, unsigned *length);

/* Guest page-table walk for 4-level long-mode paging (4 KiB, 2 MiB and
 * 1 GiB pages; 5-level when CR4.LA57), 32-bit PAE and non-PAE paging (4 MiB
 * pages when CR4.PSE, with PSE-36 high bits), and paging off (linear ==
 * physical). Only present bits are checked; table and frame addresses are
 * masked to 52 bits. Outside long mode (la) is truncated to 32 bits when
 * paging is on. (read_gpa) reads guest-physical memory (returns false if
 * not RAM). */
typedef bool (*pagewalk_read_fn)(void *opaque, uint64_t gpa, void *buf, size_t len);
struct pagewalk_ctx {
	uint64_t cr0, cr3, cr4, efer;
	pagewalk_read_fn read_gpa;
	void *opaque;
};
/* pagewalk_translate: linear (la) to guest-physical (*gpa). Returns false
 * if a level is not present or not readable. */
bool pagewalk_translate(const struct pagewalk_ctx *ctx, uint64_t la, uint64_t *gpa);
/* pagewalk_read: read (len) bytes of guest-linear memory at (la), crossing
 * pages as needed. Returns the number of bytes read (stops at the first
 * unmapped page). */
size_t pagewalk_read(const struct pagewalk_ctx *ctx, uint64_t la, void *buf, size_t len);

#endif /* ZHV_X86_DECODE_H */
