/* outq.h: console output that never blocks its producer: a bounded ring
 * drained into a file descriptor by a writer thread of its own, started
 * the first time a write cannot go out at once. */
#ifndef ZHV_VMM_OUTQ_H
#define ZHV_VMM_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OUTQ_DEFAULT_SIZE (64u << 10)

struct outq;

/* outq_create: a ring of (size) bytes written to (out). While the ring is
 * empty, a write to a non-blocking descriptor (below) goes out at once on
 * the caller's thread as far as the descriptor takes it; the rest, and
 * every write to a regular file, block device or shared blocking
 * descriptor, goes through the ring to a writer thread, started on the
 * first such write. The writer works on its own descriptor: for a pipe, FIFO or terminal a
 * fresh non-blocking open of the same object (the O_NONBLOCK flag then
 * is not shared with other users of (out), a shell for instance), else a
 * dup. A stream without a descriptor (a memory stream) is written at
 * once, under the queue's lock, without a thread; a closed descriptor
 * takes nothing (every byte is discarded, as a failed write would).
 * Returns NULL with errno set on failure. */
struct outq *outq_create(FILE *out, size_t size);

/* outq_write: queue (len) bytes; never blocks on the output. What does not
 * fit is dropped and counted, as a UART overruns. Returns the bytes
 * queued. Any thread. */
size_t outq_write(struct outq *q, const void *buf, size_t len);

/* outq_dropped: bytes dropped so far (ring full, or left unwritten by
 * outq_stop). */
uint64_t outq_dropped(struct outq *q);

/* outq_stop: let the writer drain the ring for up to (timeout_ms) (less
 * if it gets no byte out for 50 ms: the reader is stalled), then
 * stop it (a writer blocked on a stalled reader gives up at once) and
 * join it; bytes left count as dropped, and so does everything queued
 * later. Returns outq_dropped(). Idempotent. */
uint64_t outq_stop(struct outq *q, unsigned timeout_ms);

/* outq_destroy: outq_stop(q, OUTQ_STOP_MS) and free. NULL is a no-op. */
#define OUTQ_STOP_MS 200u
void outq_destroy(struct outq *q);

#endif /* ZHV_VMM_OUTQ_H */
