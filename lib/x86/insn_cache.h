/* insn_cache.h: a per-vCPU memo of decoded instruction lengths for MEM
 * packets (internal, KVM-free).
 *
 * Decoding the instruction behind a MEM exit with Zydis (backwards from RIP
 * for a write: every possible start) costs more than the exit itself. A
 * guest's MMIO accesses come from few instructions, so each vCPU keeps the
 * last results, keyed by the instruction's linear address, the CPU mode,
 * the direction and the access size, together with the instruction bytes
 * that produced them. Every exit still reads the current bytes through a
 * fresh page walk, and an entry is used only if those bytes are identical:
 * the decoded length is a function of the bytes and the mode alone, so a
 * guest (or host) that rewrites its code, remaps it or switches page tables
 * gets a miss and a full decode, never a stale length. Nothing needs to be
 * invalidated. For a read the memo is the instruction's length; for a
 * write it is the set of candidate instructions that end at RIP with the
 * access size (decode_backwards_write_fits), which the bytes alone decide:
 * with one candidate that is the answer, with several the current
 * registers and page tables choose among them exactly as the full decode
 * would (decode_backwards_write_pick), decoding only those candidates. */
#ifndef ZHV_X86_INSN_CACHE_H
#define ZHV_X86_INSN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "x86/decode.h"

#define INSN_CACHE_SLOTS 16u /* direct-mapped, power of two */
#define INSN_CACHE_BYTES 15u

struct insn_cache_entry {
	uint64_t la;    /* read: linear RIP; write: linear end (RIP after it) */
	uint8_t valid, mode, write, access_size;
	uint8_t nbytes; /* bytes compared: the instruction (read) or window (write) */
	uint16_t value; /* read: the length; write: the candidate set */
	/* write with several candidates: the longest one's address recipe,
	 * checked first (it is the answer whenever its address matches) */
	struct decode_ea ea;
	uint8_t bytes[INSN_CACHE_BYTES];
};

struct insn_cache {
	struct insn_cache_entry e[INSN_CACHE_SLOTS];
	uint64_t hits, misses; /* for tests and diagnostics */
};

/* insn_cache_lookup: the entry for (la, mode, write, access_size) if its
 * bytes equal the first nbytes of (bytes) (n of them available; a write
 * entry also needs n == nbytes), else NULL. Counts a hit or a miss. */
const struct insn_cache_entry *insn_cache_lookup(struct insn_cache *c, uint64_t la, unsigned mode, bool write,
                           unsigned access_size, const uint8_t *bytes, size_t n);

/* insn_cache_store: remember (value) for that key and the first (nbytes)
 * of (bytes) (nbytes 1..INSN_CACHE_BYTES, value not 0; else nothing is
 * stored: NULL). Replaces the slot's previous entry; its ea is cleared
 * (invalid) for the caller to fill. */
struct insn_cache_entry *insn_cache_store(struct insn_cache *c, uint64_t la, unsigned mode, bool write,
                      unsigned access_size, const uint8_t *bytes, size_t nbytes,
                      uint16_t value);

#endif /* ZHV_X86_INSN_CACHE_H */
