/* exit_status.h: zhv run's exit statuses.
 *
 * With the debug-exit device on (--debug-exit), a guest that writes V to
 * port 0xf4 ends the run with status (V << 1) | 1: always odd. zhv's own
 * outcomes therefore use even statuses, which no guest-written value can
 * produce. A run ended by a signal (SIGTERM, SIGINT, SIGHUP) ends by that
 * signal, after cleaning up (the terminal restored), so that a parent sees
 * WIFSIGNALED, which no exit status can forge either. */
#ifndef ZHV_VMM_EXIT_STATUS_H
#define ZHV_VMM_EXIT_STATUS_H

#define ZHV_EXIT_OK          0  /* the guest powered off or reset; Ctrl-A x */
#define ZHV_EXIT_USAGE       2  /* bad command line */
#define ZHV_EXIT_LOAD        4  /* a kernel, initrd, module or disk could not be loaded or opened */
#define ZHV_EXIT_GUEST_CRASH 6  /* triple fault, emulation failure, a vCPU the guest wedged */
#define ZHV_EXIT_FATAL       8  /* a host-side error at run time (KVM, memory, a device) */
#define ZHV_EXIT_SANDBOX     10 /* the seccomp sandbox stopped a forbidden system call */

#endif
