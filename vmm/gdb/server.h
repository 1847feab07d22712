/* server.h: zhv run --gdb tcp:HOST:PORT [--gdb-wait]: a GDB remote
 * serial protocol server for the VM's vCPUs (one GDB thread each), one
 * connection at a time, on a thread of its own (README "Debugging a guest
 * with GDB"). */
#ifndef ZHV_VMM_GDB_SERVER_H
#define ZHV_VMM_GDB_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "vcpu_thread.h"
#include "vm.h"

struct gdb_server;

/* gdb_server_create: parse (spec) ("tcp:HOST:PORT", "tcp::PORT" or
 * "tcp:PORT": host 127.0.0.1; IPv6 as [ADDR]), bind and listen. Set-up,
 * before the sandbox. Returns NULL with a reason in (err); (*usage) tells
 * a malformed spec from a failure to listen. */
struct gdb_server *gdb_server_create(const char *spec, bool *usage, char *err, size_t errlen);

/* gdb_server_attach: before vcpus_start: the debug hook of (v), every
 * vCPU held before the guest's first instruction with (wait) until GDB
 * attaches. Returns 0 or -ENOMEM. */
int gdb_server_attach(struct gdb_server *s, struct vm *vm, struct vcpus *v, bool wait);

/* gdb_server_start: after vcpus_start, before the sandbox: serve on a
 * thread of its own. Returns 0 or a negative errno-style value. */
int gdb_server_start(struct gdb_server *s);

/* gdb_server_stop: the run ended with (status): a connected GDB is told
 * so, the thread ends, and (s) is freed. Before vcpus_stop. NULL: no-op. */
void gdb_server_stop(struct gdb_server *s, int status);

#endif
