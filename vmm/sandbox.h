/* sandbox.h: zhv run's seccomp sandbox (on by default; --no-sandbox).
 *
 * Once set-up is done (files, disks, TAP devices and the terminal opened,
 * guest memory mapped, vCPUs created, the console thread started), every
 * thread of zhv runs under an allowlist of system calls, ioctl requests and
 * arguments, in two layers:
 *
 *   - the VMM filter, installed by the main thread on every thread of the
 *     process at once (SECCOMP_FILTER_FLAG_TSYNC): file I/O on descriptors
 *     already open, memory management without PROT_EXEC, thread creation,
 *     futexes, clocks and sleeps, signals within zhv, the KVM and terminal
 *     ioctls used at run time. Threads started later (a device's timer
 *     thread starts on the guest's first use) inherit it from the thread
 *     that creates them.
 *   - the vCPU filter, which each vCPU thread adds for itself before the
 *     guest's first instruction: the VMM filter minus what only the main
 *     thread needs (close, at shutdown; seccomp, which lets vCPU threads
 *     add this filter). Threads a vCPU thread creates inherit both.
 *
 * Nothing may open a file, execve, create a socket, ptrace, or mmap
 * executable memory after set-up. A forbidden call kills the process: its
 * SIGSYS handler writes "zhv: sandbox: forbidden system call NAME ..." to
 * stderr and exits with ZHV_EXIT_SANDBOX (10). Sanitizer builds (ASan,
 * UBSan, LSan, TSan) run a wider filter: sandbox.c says what and why.
 */
#ifndef ZHV_VMM_SANDBOX_H
#define ZHV_VMM_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/* sandbox_enable: the main thread, once set-up is done and before the
 * guest runs (the vCPU threads wait in sandbox_vcpu_enter until this
 * returns). With (on): installs the SIGSYS handler and the VMM filter on
 * every thread, then lets the vCPU threads install theirs and run.
 * (on_violation), if not NULL, runs in the SIGSYS handler before the
 * message (it must be async-signal-safe; zhv restores the terminal).
 * Without (on): only lets the vCPU threads run. Returns 0, or -1 with a
 * message in (err) (the vCPU threads are then told not to run). */
int sandbox_enable(bool on, void (*on_violation)(void), char *err, size_t errlen);

/* sandbox_allow_control: zhv run --control: before sandbox_enable, widen
 * the VMM filter (not the vCPU filter) for the control thread: accept on
 * its socket, and the file calls a snapshot makes (open, mkdir, rename,
 * unlink, rmdir) plus KVM_GET_CLOCK (sandbox.c lists them with reasons). */
void sandbox_allow_control(void);

/* sandbox_allow_gdb: zhv run --gdb: before sandbox_enable. The gdb
 * thread accepts connections on its listening socket (VMM filter; its
 * replies go out with send, allowed already), and every vCPU thread sets
 * its guest-debug state (KVM_SET_GUEST_DEBUG, both filters). */
void sandbox_allow_gdb(void);

/* sandbox_vcpu_enter: a vCPU thread, before it first enters the guest.
 * Waits for sandbox_enable, then adds the vCPU filter on this thread.
 * Returns false if the guest must not run (the sandbox could not be set up;
 * the main thread reports why). */
bool sandbox_vcpu_enter(unsigned vcpu_id);

#endif
