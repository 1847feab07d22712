/* exit.c: what happens after KVM_RUN returns (spec 3.2) and before the next
 * entry (spec 4): the exit table, traps to packets, MSR policy, exception
 * injection with Zircon's priorities, and diagnostics. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "port_priv.h"
#include "x86/decode.h"
#include "x86/insn_cache.h"
#include "zhv_priv.h"

#define EFER_LMA (1ull << 10)
#define RFLAGS_IF (1ull << 9)

/* ---- names for diagnostics ------------------------------------------------- */

/* clang-format off */
static const char *const exit_names[] = {
	[KVM_EXIT_UNKNOWN] = "UNKNOWN", [KVM_EXIT_EXCEPTION] = "EXCEPTION",
	[KVM_EXIT_IO] = "IO", [KVM_EXIT_HYPERCALL] = "HYPERCALL", [KVM_EXIT_DEBUG] = "DEBUG",
	[KVM_EXIT_HLT] = "HLT", [KVM_EXIT_MMIO] = "MMIO",
	[KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN", [KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
	[KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY", [KVM_EXIT_INTR] = "INTR",
	[KVM_EXIT_SET_TPR] = "SET_TPR", [KVM_EXIT_TPR_ACCESS] = "TPR_ACCESS",
	[KVM_EXIT_NMI] = "NMI", [KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
	[KVM_EXIT_OSI] = "OSI", [KVM_EXIT_PAPR_HCALL] = "PAPR_HCALL",
	[KVM_EXIT_WATCHDOG] = "WATCHDOG", [KVM_EXIT_EPR] = "EPR",
	[KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT", [KVM_EXIT_IOAPIC_EOI] = "IOAPIC_EOI",
	[KVM_EXIT_HYPERV] = "HYPERV", [KVM_EXIT_X86_RDMSR] = "X86_RDMSR",
	[KVM_EXIT_X86_WRMSR] = "X86_WRMSR", [KVM_EXIT_DIRTY_RING_FULL] = "DIRTY_RING_FULL",
	[KVM_EXIT_X86_BUS_LOCK] = "X86_BUS_LOCK",
};
/* clang-format on */

static const char *exit_name(uint32_t reason)
{
	if (reason < sizeof(exit_names) / sizeof(exit_names[0]) && exit_names[reason])
		return exit_names[reason];
	return "?";
}

/* ---- guest memory access for the decoder ----------------------------------- */

static bool read_gpa(void *opaque, uint64_t gpa, void *buf, size_t len)
{
	return memory_read(opaque, gpa, buf, len);
}

struct insn_ctx {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct pagewalk_ctx walk;
	struct decode_regs dregs;
	enum decode_mode mode;
};

static bool xlate(void *opaque, uint64_t linear, uint64_t *gpa)
{
	return pagewalk_translate(opaque, linear, gpa);
}

/* Registers at the exit: from sync_regs if KVM_RUN returned them, else by
 * ioctl (each costs about as much as an exit on some hosts). */
static zhv_status_t insn_ctx_load(zhv_vcpu_t *v, struct insn_ctx *c)
{
	const uint64_t both = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
	if ((v->run->kvm_valid_regs & both) == both) {
		c->regs = v->run->s.regs.regs;
		c->sregs = v->run->s.regs.sregs;
	} else if (zhv_ioctl(v->fd, KVM_GET_REGS, &c->regs) < 0 ||
	           zhv_ioctl(v->fd, KVM_GET_SREGS, &c->sregs) < 0) {
		return ZHV_ERR_IO;
	}
	const struct kvm_sregs *s = &c->sregs;
	c->walk = (struct pagewalk_ctx){
		.cr0 = s->cr0, .cr3 = s->cr3, .cr4 = s->cr4, .efer = s->efer,
		.read_gpa = read_gpa, .opaque = &v->guest->mem,
	};
	c->mode = decode_mode_of(s->cr0, s->efer, s->cs.l, s->cs.db);
	const struct kvm_regs *r = &c->regs;
	struct decode_regs *d = &c->dregs;
	memset(d, 0, sizeof(*d));
	uint64_t g[16] = {r->rax, r->rcx, r->rdx, r->rbx, r->rsp, r->rbp, r->rsi, r->rdi,
	                  r->r8,  r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15};
	memcpy(d->gpr, g, sizeof(g));
	d->rip = r->rip;
	d->fs_base = s->fs.base;
	d->gs_base = s->gs.base;
	d->es_base = s->es.base;
	d->cs_base = s->cs.base;
	d->ss_base = s->ss.base;
	d->ds_base = s->ds.base;
	return ZHV_OK;
}

/* The linear address of RIP (CS base counts outside 64-bit mode). */
static uint64_t linear_rip(const struct insn_ctx *c)
{
	if (c->mode == DECODE_MODE_LONG64)
		return c->regs.rip;
	return (c->sregs.cs.base + c->regs.rip) & 0xffffffffull;
}

static bool decode_at_rip(const struct insn_ctx *c, struct decode_insn *insn, uint8_t *bytes,
                          size_t *nbytes)
{
	uint8_t buf[15];
	size_t n = pagewalk_read(&c->walk, linear_rip(c), buf, sizeof(buf));
	if (bytes) {
		memcpy(bytes, buf, n);
		*nbytes = n;
	}
	return n > 0 && decode_one(buf, n, c->mode, &c->dregs, insn);
}

/* ---- diagnostics -------------------------------------------------------------- */

void exit_dump(zhv_vcpu_t *v, zhv_log_level_t level, const char *why)
{
	if (!zhv_log_enabled(level))
		return;
	struct insn_ctx c;
	if (insn_ctx_load(v, &c) != ZHV_OK) {
		zhv_log(level, "vcpu %u: %s (registers unavailable)", v->id, why);
		return;
	}
	struct decode_insn insn;
	uint8_t bytes[15];
	size_t n = 0;
	bool ok = decode_at_rip(&c, &insn, bytes, &n);
	char hex[15 * 3 + 1] = "";
	for (size_t i = 0; i < n && i < (ok ? insn.length : n); i++)
		snprintf(hex + 3 * i, sizeof(hex) - 3 * i, "%02x ", bytes[i]);
	const struct kvm_regs *r = &c.regs;
	const struct kvm_sregs *s = &c.sregs;
	zhv_log(level,
	        "vcpu %u: %s\n"
	        "  rip %016llx  insn: %s [%s]\n"
	        "  rax %016llx rbx %016llx rcx %016llx rdx %016llx\n"
	        "  rsi %016llx rdi %016llx rsp %016llx rbp %016llx\n"
	        "  r8  %016llx r9  %016llx r10 %016llx r11 %016llx\n"
	        "  r12 %016llx r13 %016llx r14 %016llx r15 %016llx\n"
	        "  rflags %08llx cs %04x (base %llx l=%u db=%u dpl=%u) ss %04x\n"
	        "  cr0 %08llx cr2 %016llx cr3 %016llx cr4 %08llx efer %llx",
	        v->id, why, (unsigned long long)r->rip, ok ? insn.text : "(undecodable)", hex,
	        (unsigned long long)r->rax, (unsigned long long)r->rbx, (unsigned long long)r->rcx,
	        (unsigned long long)r->rdx, (unsigned long long)r->rsi, (unsigned long long)r->rdi,
	        (unsigned long long)r->rsp, (unsigned long long)r->rbp, (unsigned long long)r->r8,
	        (unsigned long long)r->r9, (unsigned long long)r->r10, (unsigned long long)r->r11,
	        (unsigned long long)r->r12, (unsigned long long)r->r13, (unsigned long long)r->r14,
	        (unsigned long long)r->r15, (unsigned long long)r->rflags, s->cs.selector,
	        (unsigned long long)s->cs.base, s->cs.l, s->cs.db, s->cs.dpl, s->ss.selector,
	        (unsigned long long)s->cr0, (unsigned long long)s->cr2, (unsigned long long)s->cr3,
	        (unsigned long long)s->cr4, (unsigned long long)s->efer);
}

/* ---- port I/O ------------------------------------------------------------------- */

/* The IO packet for element (i) of the current I/O exit. */
static void io_packet(zhv_vcpu_t *v, zhv_packet_t *pkt, uint64_t key, uint32_t i)
{
	struct kvm_run *run = v->run;
	const uint8_t *data = (const uint8_t *)run + run->io.data_offset + (size_t)i * run->io.size;
	bool in = run->io.direction == KVM_EXIT_IO_IN;
	memset(pkt, 0, sizeof(*pkt));
	pkt->key = key;
	pkt->type = ZHV_PKT_TYPE_GUEST_IO;
	pkt->guest_io.port = run->io.port;
	pkt->guest_io.access_size = run->io.size;
	pkt->guest_io.input = in;
	if (!in)
		memcpy(pkt->guest_io.data, data, run->io.size > 4 ? 4 : run->io.size);
}

static int handle_io(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool in = run->io.direction == KVM_EXIT_IO_IN;
	size_t bytes = (size_t)run->io.size * run->io.count;
	STAT_INC(v->guest, io_exits);

	v->pending = in ? PENDING_IO_IN : PENDING_IO_OUT;
	v->rep_index = v->rep_count = 0;
	const struct trap *t = trap_map_find(&v->guest->traps, ZHV_TRAP_IO, run->io.port);
	if (!t || run->io.size > 4 || bytes > 4096) {
		/* Nobody's port: reads see all-ones, as on a PC bus. */
		if (in && bytes <= 4096)
			memset(data, 0xff, bytes);
		v->last_exit = ZHV_EXIT_UNHANDLED_IO;
		v->last_exit_addr = run->io.port;
		zhv_log(ZHV_LOG_DEBUG, "vcpu %u: %s of port %#x (size %u) has no IO trap", v->id,
		        in ? "IN" : "OUT", run->io.port, run->io.size);
		return ZHV_ERR_NOT_FOUND;
	}
	if (in) /* an IN the caller does not answer reads 0 */
		memset(data, 0, bytes);
	if (run->io.count > 1) {
		/* INS/OUTS: KVM batched the elements; one packet each. */
		v->rep_count = run->io.count;
		v->rep_key = t->key;
	}
	io_packet(v, pkt, t->key, 0);
	return EXIT_DELIVER;
}

bool exit_io_next_element(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	if (v->rep_index + 1 >= v->rep_count) {
		v->rep_index = v->rep_count = 0;
		return false;
	}
	v->rep_index++;
	io_packet(v, pkt, v->rep_key, v->rep_index);
	return true;
}

/* ---- MMIO: MEM and BELL traps ----------------------------------------------------- */

/* Fill Zircon's fields of a MEM packet. KVM reports a read before the
 * instruction ran (RIP at it) and a write after (RIP past it), so a write's
 * instruction is found by decoding backwards from RIP. The bytes are read
 * through a fresh page walk at every exit; the vCPU's insn_cache spares the
 * decode when they are the bytes it decoded before (x86/insn_cache.h). */
static void mem_packet_insn(zhv_vcpu_t *v, zhv_packet_guest_mem_t *m, bool write)
{
	struct insn_ctx c;
	if (insn_ctx_load(v, &c) != ZHV_OK)
		return;
	const struct kvm_sregs *s = &c.sregs;
	m->cr3 = s->cr3;
	m->default_operand_size = ((s->efer & EFER_LMA) && s->cs.l) ? 4 : s->cs.db ? 4 : 2;
	uint8_t buf[15];
	if (!write) {
		m->rip = c.regs.rip;
		uint64_t la = linear_rip(&c);
		size_t n = pagewalk_read(&c.walk, la, buf, sizeof(buf));
		const struct insn_cache_entry *e =
			insn_cache_lookup(&v->icache, la, c.mode, false, m->access_size, buf, n);
		unsigned len = e ? e->value : 0;
		if (!len && n > 0 && decode_length(buf, n, c.mode, &len))
			insn_cache_store(&v->icache, la, c.mode, false, m->access_size, buf, len,
			                 (uint16_t)len);
		m->instruction_size = (uint8_t)len;
		return;
	}
	uint64_t end = linear_rip(&c);
	for (size_t k = sizeof(buf); k > 0; k--) {
		if (end < k || pagewalk_read(&c.walk, end - k, buf, k) != k)
			continue;
		const struct insn_cache_entry *e =
			insn_cache_lookup(&v->icache, end, c.mode, true, m->access_size, buf, k);
		unsigned len;
		if (e && (e->value & (e->value - 1)) == 0) {
			len = (unsigned)__builtin_ctz(e->value); /* one candidate */
		} else if (e && decode_ea_matches(&e->ea, c.mode, &c.dregs, m->addr, m->access_size,
		                                  xlate, &c.walk)) {
			len = e->ea.length; /* the longest, and its address matches */
		} else if (e) {
			len = decode_backwards_write_pick(buf, k, c.mode, &c.dregs, m->addr,
			                                  m->access_size, xlate, &c.walk, e->value);
		} else {
			uint16_t fits = 0;
			len = decode_backwards_write_fits(buf, k, c.mode, &c.dregs, m->addr,
			                                  m->access_size, xlate, &c.walk, NULL,
			                                  &fits);
			struct insn_cache_entry *ne = insn_cache_store(
				&v->icache, end, c.mode, true, m->access_size, buf, k, fits);
			if (ne && (fits & (fits - 1))) {
				unsigned longest = 31u - (unsigned)__builtin_clz(fits);
				(void)decode_store_ea(buf + k - longest, longest, c.mode, &ne->ea);
			}
		}
		if (len) {
			m->instruction_size = (uint8_t)len;
			m->rip = c.regs.rip - len;
			return;
		}
		break;
	}
	m->rip = c.regs.rip;
	zhv_log(ZHV_LOG_WARN, "vcpu %u: cannot decode the write to %#llx before rip %#llx", v->id,
	        (unsigned long long)m->addr, (unsigned long long)c.regs.rip);
}

static int handle_mmio(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	struct kvm_run *run = v->run;
	zhv_guest_t *g = v->guest;
	uint64_t gpa = run->mmio.phys_addr;
	uint32_t len = run->mmio.len;
	bool write = run->mmio.is_write;
	STAT_INC(g, mmio_exits);

	v->pending = write ? PENDING_MMIO_WRITE : PENDING_MMIO_READ;
	if (!write)
		memset(run->mmio.data, 0, sizeof(run->mmio.data));

	const struct trap *t = trap_map_find(&g->traps, ZHV_TRAP_MEM, gpa);
	if (t && t->kind == ZHV_TRAP_BELL) {
		if (!write) {
			v->last_exit = ZHV_EXIT_UNHANDLED_MEM;
			v->last_exit_addr = gpa;
			exit_dump(v, ZHV_LOG_ERROR, "read of a BELL trap");
			return ZHV_ERR_NOT_SUPPORTED;
		}
		zhv_packet_t bell = {.key = t->key, .type = ZHV_PKT_TYPE_GUEST_BELL};
		bell.guest_bell.addr = gpa;
		zhv_status_t st = port_queue_trap_packet(t->arena, &bell);
		if (st != ZHV_OK) {
			v->last_exit = ZHV_EXIT_ERROR;
			v->last_exit_addr = gpa;
			return st;
		}
		STAT_INC(g, bell_packets);
		/* The next writes of this address stay in the kernel. */
		guest_bell_attach(g, t, gpa);
		return EXIT_CONTINUE;
	}
	if (t) {
		pkt->key = t->key;
		pkt->type = ZHV_PKT_TYPE_GUEST_MEM;
		zhv_packet_guest_mem_t *m = &pkt->guest_mem;
		m->addr = gpa;
		m->access_size = (uint8_t)len;
		m->write = write;
		if (write)
			memcpy(&m->data, run->mmio.data, len > 8 ? 8 : len);
		mem_packet_insn(v, m, write);
		return EXIT_DELIVER;
	}

	v->last_exit_addr = gpa;
	if (!write) /* what a read of nothing returns, as on a PC bus */
		memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
	if (gpa >= ZHV_GUEST_PHYS_SIZE) {
		v->last_exit = ZHV_EXIT_UNHANDLED_MEM;
		return ZHV_ERR_OUT_OF_RANGE;
	}
	uint32_t flags;
	uint8_t *host = memory_lookup(&g->mem, gpa, len, &flags);
	if (host && write && !(flags & ZHV_MAP_WRITE)) {
		v->last_exit = ZHV_EXIT_UNHANDLED_MEM;
		exit_dump(v, ZHV_LOG_ERROR, "write to read-only guest memory");
		return ZHV_ERR_ACCESS_DENIED;
	}
	if (host && (flags & (ZHV_MAP_READ | ZHV_MAP_WRITE))) {
		/* RAM without a KVM slot (memory.c: KVM refused to put a
		 * slot back after a failed change): do the access here, the
		 * guest never notices. */
		if (write)
			memcpy(host, run->mmio.data, len);
		else
			memcpy(run->mmio.data, host, len);
		return EXIT_CONTINUE;
	}
	v->last_exit = ZHV_EXIT_UNHANDLED_MEM;
	zhv_log(ZHV_LOG_DEBUG, "vcpu %u: %s of %u bytes at %#llx: no RAM and no trap", v->id,
	        write ? "write" : "read", len, (unsigned long long)gpa);
	return host ? ZHV_ERR_ACCESS_DENIED : ZHV_ERR_NOT_FOUND;
}

/* ---- MSRs ----------------------------------------------------------------------- */

static int handle_msr(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	struct kvm_run *run = v->run;
	bool rd = run->exit_reason == KVM_EXIT_X86_RDMSR;
	bool ok;
	(void)pkt;
	if (rd) {
		STAT_INC(v->guest, rdmsr_exits);
		uint64_t val = 0;
		ok = msr_policy_read(run->msr.index, &val);
		run->msr.data = val;
	} else {
		STAT_INC(v->guest, wrmsr_exits);
		ok = msr_policy_write(run->msr.index, run->msr.data);
	}
	run->msr.error = ok ? 0 : 1; /* 1: KVM injects #GP */
	if (!ok) {
		STAT_INC(v->guest, msr_gp_injected);
		zhv_log(ZHV_LOG_WARN, "vcpu %u: %s of unhandled MSR %#x: #GP", v->id,
		        rd ? "rdmsr" : "wrmsr", run->msr.index);
	}
	return EXIT_CONTINUE;
}

/* ---- fatal and quiet exits --------------------------------------------------------- */

static int handle_shutdown(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	(void)pkt;
	STAT_INC(v->guest, shutdown_exits);
	v->last_exit = ZHV_EXIT_SHUTDOWN;
	exit_dump(v, ZHV_LOG_ERROR, "triple fault (shutdown)");
	return ZHV_ERR_NOT_SUPPORTED;
}

int exit_emulation_failure(zhv_vcpu_t *v, zhv_packet_t *pkt, char *why, size_t whylen)
{
	/* Guest debugging: an int3 stops, and so does a step over an
	 * instruction libzhv emulates (x86/debug.c). */
	int stop = debug_emulation_failure(v, pkt);
	if (stop)
		return stop;
	if (emulate_fallback(v, why, whylen))
		return debug_after_emulation(v, pkt);
	return 0;
}

static int handle_internal_error(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	struct kvm_run *run = v->run;
	char why[200], reason[120] = "";
	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
		int out = exit_emulation_failure(v, pkt, reason, sizeof(reason));
		if (out)
			return out;
	}
	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
		STAT_INC(v->guest, emulation_failures);
		v->last_exit = ZHV_EXIT_EMULATION;
		snprintf(why, sizeof(why), "KVM cannot emulate this instruction (libzhv: %s)", reason);
	} else {
		STAT_INC(v->guest, other_exits);
		v->last_exit = ZHV_EXIT_ERROR;
		snprintf(why, sizeof(why), "KVM internal error, suberror %u", run->internal.suberror);
	}
	exit_dump(v, ZHV_LOG_ERROR, why);
	return ZHV_ERR_NOT_SUPPORTED;
}

static int handle_fail_entry(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	(void)pkt;
	STAT_INC(v->guest, other_exits);
	v->last_exit = ZHV_EXIT_ERROR;
	char why[96];
	snprintf(why, sizeof(why), "KVM refused to enter the guest (hardware reason %#llx)",
	         (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
	exit_dump(v, ZHV_LOG_ERROR, why);
	return ZHV_ERR_BAD_STATE;
}

static int handle_system_event(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	(void)pkt;
	STAT_INC(v->guest, other_exits);
	v->last_exit = ZHV_EXIT_SHUTDOWN;
	zhv_log(ZHV_LOG_ERROR, "vcpu %u: system event %u", v->id, v->run->system_event.type);
	return ZHV_ERR_NOT_SUPPORTED;
}

static int handle_hlt(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	(void)pkt;
	STAT_INC(v->guest, hlt_exits);
	return EXIT_CONTINUE;
}

static int handle_quiet(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	(void)pkt;
	STAT_INC(v->guest, other_exits);
	return EXIT_CONTINUE;
}

/* The local APIC took an EOI of a vector a level-triggered route names
 * (zhv_guest_set_irq_route): KVM has done the EOI; the caller's IOAPIC
 * clears Remote-IRR and samples its line (a PC's EOI broadcast). */
static int handle_ioapic_eoi(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	STAT_INC(v->guest, eoi_exits);
	pkt->key = 0;
	pkt->type = ZHV_PKT_TYPE_GUEST_EOI;
	pkt->guest_eoi.vector = v->run->eoi.vector;
	return EXIT_DELIVER;
}

typedef int (*exit_fn)(zhv_vcpu_t *v, zhv_packet_t *pkt);

/* clang-format off */
static const exit_fn exit_handlers[] = {
	[KVM_EXIT_IO]              = handle_io,
	[KVM_EXIT_MMIO]            = handle_mmio,
	[KVM_EXIT_X86_RDMSR]       = handle_msr,
	[KVM_EXIT_X86_WRMSR]       = handle_msr,
	[KVM_EXIT_HLT]             = handle_hlt,
	[KVM_EXIT_IRQ_WINDOW_OPEN] = handle_quiet,
	[KVM_EXIT_INTR]            = handle_quiet,
	[KVM_EXIT_IOAPIC_EOI]      = handle_ioapic_eoi,
	[KVM_EXIT_SHUTDOWN]        = handle_shutdown,
	[KVM_EXIT_INTERNAL_ERROR]  = handle_internal_error,
	[KVM_EXIT_FAIL_ENTRY]      = handle_fail_entry,
	[KVM_EXIT_SYSTEM_EVENT]    = handle_system_event,
	[KVM_EXIT_DEBUG]           = debug_exit, /* x86/debug.c */
};
/* clang-format on */

int exit_handle(zhv_vcpu_t *v, zhv_packet_t *pkt)
{
	uint32_t reason = v->run->exit_reason;
	if (reason < sizeof(exit_handlers) / sizeof(exit_handlers[0]) && exit_handlers[reason])
		return exit_handlers[reason](v, pkt);
	STAT_INC(v->guest, other_exits);
	v->last_exit = ZHV_EXIT_ERROR;
	char why[64];
	snprintf(why, sizeof(why), "unhandled KVM exit %u (%s)", reason, exit_name(reason));
	exit_dump(v, ZHV_LOG_ERROR, why);
	return ZHV_ERR_NOT_SUPPORTED;
}

/* ---- injection (spec 4) -------------------------------------------------------------- */

/* Would KVM deliver a LAPIC interrupt at this entry? True when the APIC has
 * a requested vector above its processor priority and the guest accepts
 * interrupts (IF set, no STI/MOV-SS shadow). */
static bool lapic_interrupt_deliverable(zhv_vcpu_t *v, const struct kvm_vcpu_events *ev)
{
	struct kvm_lapic_state la;
	struct kvm_regs r;
	if (ev->interrupt.shadow || zhv_ioctl(v->fd, KVM_GET_REGS, &r) < 0 ||
	    !(r.rflags & RFLAGS_IF) || zhv_ioctl(v->fd, KVM_GET_LAPIC, &la) < 0)
		return false;
	uint32_t reg;
	memcpy(&reg, &la.regs[0xf0], 4);
	if (!(reg & 0x100)) /* software-disabled */
		return false;
	int irr = -1, isr = -1;
	for (int i = 7; i >= 0 && (irr < 0 || isr < 0); i--) {
		uint32_t w;
		memcpy(&w, &la.regs[0x200 + 0x10 * i], 4);
		if (irr < 0 && w)
			irr = i * 32 + 31 - __builtin_clz(w);
		memcpy(&w, &la.regs[0x100 + 0x10 * i], 4);
		if (isr < 0 && w)
			isr = i * 32 + 31 - __builtin_clz(w);
	}
	memcpy(&reg, &la.regs[0x80], 4);
	int ppr = (int)(reg & 0xf0);
	if (isr >= 0 && (isr & 0xf0) > ppr)
		ppr = isr & 0xf0;
	return irr >= 0 && (irr & 0xf0) > ppr;
}

static bool has_error_code(int vector)
{
	switch (vector) {
	case 8: case 10: case 11: case 12: case 13: case 14: case 17:
		return true;
	}
	return false;
}

/* Zircon injects at most one event per entry: NMI first, then the highest
 * external vector, then exceptions; once anything was delivered the other
 * pending exceptions are dropped. With KVM's LAPIC delivering interrupts and
 * NMIs itself, libzhv decides here whether a tracked exception goes in or
 * loses to an event KVM is about to deliver. */
zhv_status_t exit_inject_pending(zhv_vcpu_t *v)
{
	if (!irq_tracker_pending(&v->tracker))
		return ZHV_OK;
	if (irq_tracker_try_pop(&v->tracker, 2)) {
		/* Fallback NMI (the APIC could not take it). */
		irq_tracker_discard_exceptions(&v->tracker);
		return zhv_ioctl(v->fd, KVM_NMI, NULL) < 0 ? ZHV_ERR_IO : ZHV_OK;
	}
	struct kvm_vcpu_events ev;
	if (zhv_ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return ZHV_ERR_IO;
	if (ev.exception.injected || ev.exception.pending || ev.interrupt.injected ||
	    ev.nmi.injected)
		return ZHV_OK; /* KVM is still delivering an event: next time */
	if ((ev.nmi.pending && !ev.nmi.masked) || lapic_interrupt_deliverable(v, &ev)) {
		/* That event wins; Zircon then discards pending exceptions. */
		irq_tracker_discard_exceptions(&v->tracker);
		return ZHV_OK;
	}
	int vec = irq_tracker_pop(&v->tracker);
	if (vec < 0)
		return ZHV_OK;
	ev.exception.injected = 1;
	ev.exception.pending = 0;
	ev.exception.nr = (uint8_t)vec;
	ev.exception.has_error_code = has_error_code(vec);
	ev.exception.error_code = 0;
	ev.flags = 0;
	if (zhv_ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return ZHV_ERR_IO;
	irq_tracker_discard_exceptions(&v->tracker);
	/* A halted vCPU takes the exception after its HLT. */
	struct kvm_mp_state mp;
	if (zhv_ioctl(v->fd, KVM_GET_MP_STATE, &mp) == 0 && mp.mp_state == KVM_MP_STATE_HALTED) {
		mp.mp_state = KVM_MP_STATE_RUNNABLE;
		(void)zhv_ioctl(v->fd, KVM_SET_MP_STATE, &mp);
	}
	return ZHV_OK;
}
