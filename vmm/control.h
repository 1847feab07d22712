/* control.h: zhv run --control SOCKET (the server) and zhv ctl (its
 * client): pause, resume, snapshot, stop and info over a Unix socket.
 *
 * Wire format (README "Snapshots"): a client connects, sends one request
 * line ending in "\n" (at most 4096 bytes), and reads one reply line: "ok"
 * or "ok DETAIL", or "error MESSAGE"; the server then closes the
 * connection. Requests: "pause", "resume", "info", "stop",
 * "snapshot PATH" and "snapshot-paused PATH" (PATH absolute). */
#ifndef ZHV_VMM_CONTROL_H
#define ZHV_VMM_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "snapshot_dir.h"

struct control;

/* control_create: bind and listen on (path) (a stale socket there, with
 * nobody listening, is replaced). Set-up, before the sandbox. Returns
 * NULL with a reason in (err). */
struct control *control_create(const char *path, char *err, size_t errlen);

/* control_start: serve requests on a thread of its own for (vm) and (v),
 * (m) describing the machine for snapshots (kept by the caller). Before
 * the sandbox. Returns 0 or a negative errno-style value. */
int control_start(struct control *c, struct vm *vm, struct vcpus *v,
                  const struct snapshot_machine *m);

/* control_stop: end the thread (a request in progress finishes first),
 * remove the socket and free (c). Before vcpus_stop. NULL is a no-op. */
void control_stop(struct control *c);

/* zhv ctl SOCKET COMMAND [ARGS]: returns the process's exit status. */
int control_client(int argc, char **argv);

#endif
