/* console.h: the terminal side of COM1: raw mode on stdin (restored on
 * every exit path), and a thread that feeds stdin to the guest's UART
 * with Ctrl-A x to quit. */
#ifndef ZHV_VMM_CONSOLE_H
#define ZHV_VMM_CONSOLE_H

#include <stdbool.h>

struct vm;
struct uart;

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A */

/* console_init: if stdin is a terminal, put it in raw mode (no echo, no
 * line editing, no signals from ^C/^Z; output processing stays on so a
 * guest's "\n" still starts a new line) and restore it at exit(). Returns
 * true if stdin is a terminal (and now raw). Main thread, once. */
bool console_init(void);

/* console_restore: put the terminal back as console_init found it.
 * Idempotent and async-signal-safe (signal handlers call it). */
void console_restore(void);

/* console_start: start the thread that copies stdin to (com1). On a
 * terminal, Ctrl-A x ends the run (status 0, "zhv: terminated by user")
 * and Ctrl-A Ctrl-A sends one Ctrl-A; other input passes unchanged. At
 * end of input the thread stops (the guest keeps running). Returns 0 or
 * a negative errno-style value. */
int console_start(struct vm *vm, struct uart *com1);

/* console_to_virtio: send input to the virtio console (virtio_console_input,
 * --console virtio) instead of COM1. Main thread, before console_start. */
void console_to_virtio(bool on);

/* console_stop: stop and join the input thread (no-op if not started). */
void console_stop(void);

/* console_message: print a message on stderr without ever blocking for
 * long: if stderr is a terminal, pipe or FIFO (as console_init found it)
 * that nobody reads, the message is dropped after 100 ms. Any thread. */
void console_message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* console_destroy: console_stop, give the terminal back (console_restore)
 * and close what console_init opened. The console can be set up again
 * with console_init. */
void console_destroy(void);

#endif /* ZHV_VMM_CONSOLE_H */
