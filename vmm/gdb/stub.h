/* stub.h: a GDB remote serial protocol session (all-stop, one GDB thread
 * per vCPU) over an abstract target: the VMM's vCPUs (vmm/gdb/server.c)
 * or a fake one in the unit tests. The session runs on one thread of its
 * own; vCPU threads report their debug stops with gdb_stub_on_stop.
 *
 * Software breakpoints (Z0) are planted (int3 written over the
 * instruction) only while the target runs and removed whenever it stops,
 * so that GDB always reads the guest's own bytes and stepping over a
 * breakpoint needs no special case beyond stepping a vCPU that sits on
 * one before the others run. Hardware breakpoints and watchpoints (Z1,
 * Z2, Z4) share the four debug registers, the same on every vCPU. */
#ifndef ZHV_VMM_GDB_STUB_H
#define ZHV_VMM_GDB_STUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zhv.h"

/* A vCPU's registers as GDB sees them: the general and segment
 * registers, and the legacy FXSAVE area (x87 and SSE). */
struct gdb_cpu_state {
	zhv_vcpu_regs_t regs;
	zhv_vcpu_sregs_t sregs;
	uint8_t fx[512];
};

/* The target. cpu is 0-based (GDB thread cpu + 1). Every call but
 * stop_all/resume/kill is made with the target stopped; calls return 0
 * or a negative errno-style value. */
struct gdb_target_ops {
	int (*get_state)(void *t, unsigned cpu, struct gdb_cpu_state *s);
	int (*set_state)(void *t, unsigned cpu, const struct gdb_cpu_state *s);
	/* guest-virtual memory through (cpu)'s paging; all or nothing */
	int (*read_mem)(void *t, unsigned cpu, uint64_t gva, void *buf, size_t n);
	int (*write_mem)(void *t, unsigned cpu, uint64_t gva, const void *buf, size_t n);
	int (*set_debug)(void *t, unsigned cpu, const zhv_vcpu_debug_t *d);
	/* stop every vCPU and wait until all are stopped: 0, or <0 when the
	 * run is ending */
	int (*stop_all)(void *t);
	/* let every vCPU run (only < 0) or vCPU (only) alone */
	void (*resume)(void *t, int only);
	/* end the run (GDB's kill) */
	void (*kill)(void *t);
};

/* What a vCPU thread does after its debug stop (gdb_stub_on_stop). */
enum gdb_stop_action {
	GDB_STOP_PARK,     /* stop: park this vCPU (the session stops the others) */
	GDB_STOP_REINJECT, /* an int3 GDB did not plant: give the guest its #BP */
	GDB_STOP_IGNORE,   /* a stale stop: run on */
};

struct gdb_stub;

/* gdb_stub_create: a session engine for (ncpus) vCPUs of target (t).
 * Set-up, before the sandbox (it makes a pipe). NULL when out of memory or
 * descriptors. */
struct gdb_stub *gdb_stub_create(const struct gdb_target_ops *ops, void *t, unsigned ncpus);
void gdb_stub_destroy(struct gdb_stub *g);

/* gdb_stub_serve: one GDB connection on (fd) until GDB detaches, kills,
 * disconnects, or gdb_stub_end is called. The target is stopped first.
 * Returns when the connection is over, with every vCPU running again and
 * the debug state cleared (unless the run ended). Does not close (fd). */
void gdb_stub_serve(struct gdb_stub *g, int fd);

/* gdb_stub_end: the run ended with (status) (any thread): a connected GDB
 * is told the guest exited ("W" reply) and gdb_stub_serve returns. */
void gdb_stub_end(struct gdb_stub *g, int status);

/* gdb_stub_on_stop: a vCPU thread got ZHV_PKT_TYPE_GUEST_DEBUG (d) for
 * vCPU (cpu). */
enum gdb_stop_action gdb_stub_on_stop(struct gdb_stub *g, unsigned cpu,
                                      const zhv_packet_guest_debug_t *d);

/* gdb_stub_target_xml: the target description of a 64-bit (long mode)
 * or a 32-bit session, malloc'd (NULL when out of memory). */
char *gdb_stub_target_xml(bool long_mode);

#endif
