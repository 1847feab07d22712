/* emulate.h: libzhv's fallback instruction emulator (internal).
 *
 * Some KVMs cannot emulate a few instructions (kvm_pvm runs all guest CPL0
 * code in KVM's instruction emulator, which lacks them) and stop the vCPU
 * with KVM_EXIT_INTERNAL_ERROR / KVM_INTERNAL_ERROR_EMULATION. libzhv
 * finishes these instructions itself, as the Intel SDM / AMD APM define
 * them: STAC, CLAC, FWAIT, INT3, INT n, IRET (32-bit, same CS), XGETBV,
 * CLWB, CLFLUSHOPT, INVPCID, MOVBE and RDPRU.
 *
 * The core, emu_step(), needs no KVM: it takes the instruction bytes, a
 * register snapshot, the guest's CPUID table and callbacks to guest-physical
 * memory, and returns the new registers or the exception to inject. Memory
 * operands go through the guest's page tables with the architectural
 * permission checks (#PF with its error code and CR2, #GP/#SS for
 * non-canonical or out-of-limit addresses); accessed and dirty bits are set
 * as the processor would. */
#ifndef ZHV_X86_EMULATE_H
#define ZHV_X86_EMULATE_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum emu_seg_id { EMU_ES = 0, EMU_CS, EMU_SS, EMU_DS, EMU_FS, EMU_GS, EMU_NSEG };

struct emu_seg {
	uint64_t base;
	uint32_t limit; /* byte granular (as KVM reports it) */
	uint16_t selector;
	uint8_t type, s, dpl, present, db, l, unusable;
};

/* The vCPU state the emulator reads and (for the registers) writes. */
struct emu_state {
	uint64_t gpr[16]; /* rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15 */
	uint64_t rip, rflags;
	uint64_t cr0, cr2, cr3, cr4, efer;
	uint64_t idt_base;
	uint16_t idt_limit;
	struct emu_seg seg[EMU_NSEG];
};

/* Values the emulator asks for only when an instruction needs them. */
enum emu_query {
	EMU_Q_XCR0,   /* XCR0 */
	EMU_Q_XINUSE, /* XINUSE bitmap (state components not in init state) */
	EMU_Q_FSW,    /* x87 status word */
	EMU_Q_MPERF,  /* IA32_MPERF */
	EMU_Q_APERF,  /* IA32_APERF */
};

struct emu_env {
	/* The guest's CPUID table (what the guest's CPUID returns). */
	const struct kvm_cpuid_entry2 *cpuid;
	uint32_t ncpuid;
	/* Guest-physical RAM; false if [gpa, gpa + len) is not RAM. */
	bool (*read_phys)(void *opaque, uint64_t gpa, void *buf, size_t len);
	bool (*write_phys)(void *opaque, uint64_t gpa, const void *buf, size_t len);
	/* May be NULL; false if the value is unavailable. */
	bool (*query)(void *opaque, enum emu_query q, uint64_t *val);
	void *opaque;
};

enum emu_outcome {
	EMU_DONE,      /* the instruction completed: the state holds the result */
	EMU_FAULT,     /* inject (vector, error code); RIP stays on the instruction */
	EMU_UNHANDLED, /* not an instruction the emulator finishes (see why) */
};

/* TLB invalidation the instruction asks for (INVPCID's types). */
enum emu_flush {
	EMU_FLUSH_NONE = 0,
	EMU_FLUSH_ADDR,          /* one linear address, one PCID (type 0) */
	EMU_FLUSH_PCID,          /* one PCID, global entries kept (type 1) */
	EMU_FLUSH_ALL,           /* everything, global entries included (type 2) */
	EMU_FLUSH_ALL_NONGLOBAL, /* every PCID, global entries kept (type 3) */
};

struct emu_result {
	enum emu_outcome outcome;
	uint8_t length;      /* instruction length, when decoded */
	const char *name;    /* mnemonic, when recognized ("" if not) */
	/* EMU_FAULT: the exception. */
	uint8_t vector;
	bool has_error_code;
	uint32_t error_code;
	uint64_t cr2;        /* #PF: the faulting linear address */
	/* EMU_DONE: a vector to deliver through the IDT after the instruction
	 * (INT3, INT n): no error code, the return address past the
	 * instruction, the gate's DPL already checked. */
	bool event;
	uint8_t event_vector;
	bool end_nmi_blocking; /* IRET */
	enum emu_flush flush;
	uint16_t flush_pcid;
	uint64_t flush_addr;
	char why[96];        /* EMU_UNHANDLED: the reason */
};

#define EMU_MAX_INSN 15

/* emu_fetch: read up to 15 instruction bytes at CS:RIP through the guest's
 * page tables (as an instruction fetch). Returns the number read; if it
 * stopped short at an unmapped or non-executable page, (*fault) holds the
 * #PF (outcome EMU_FAULT), else (*fault).outcome is EMU_DONE. */
size_t emu_fetch(const struct emu_env *env, const struct emu_state *st,
                 uint8_t bytes[EMU_MAX_INSN], struct emu_result *fault);

/* emu_step: execute the instruction in (bytes) ((n) bytes available, the
 * first at CS:RIP). On EMU_DONE (*st) holds the registers after it (RIP
 * past it); on EMU_FAULT and EMU_UNHANDLED (*st) is unchanged. Guest
 * memory is written only on EMU_DONE. If (n) is short of the instruction,
 * (fetch_fault) (may be NULL) is the fault emu_fetch reported and is
 * returned; otherwise the result is EMU_UNHANDLED. */
void emu_step(const struct emu_env *env, struct emu_state *st, const uint8_t *bytes, size_t n,
              const struct emu_result *fetch_fault, struct emu_result *res);

/* emu_cpuid: the guest's CPUID (leaf, subleaf) from env's table; zeros
 * if absent. */
void emu_cpuid(const struct emu_env *env, uint32_t leaf, uint32_t subleaf, uint32_t out[4]);

#endif /* ZHV_X86_EMULATE_H */
