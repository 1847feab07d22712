/* thread.h: how zhv run starts a thread of its own (vCPUs, devices, the
 * console, the control and gdb servers). */
#ifndef ZHV_VMM_THREAD_H
#define ZHV_VMM_THREAD_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>

/* The stack of a thread of zhv run: well below 2 MiB, because glibc's
 * default (RLIMIT_STACK, usually 8 MiB) can be backed by a transparent huge
 * page on first touch, 2 MiB of resident memory for a thread that uses a
 * few KiB (issue 11). Only the pages a thread touches are resident. */
#define VMM_THREAD_STACK (1u << 20)

/* vmm_thread_start: start fn(arg) on a new thread with a stack of (stack)
 * bytes (0: VMM_THREAD_STACK) and SIGINT, SIGTERM and SIGHUP blocked: they
 * are the main thread's (a thread started by one that has them blocked
 * inherits that anyway). Any thread. Returns 0 or a negative errno. */
static inline int vmm_thread_start(pthread_t *thread, size_t stack, void *(*fn)(void *),
                                   void *arg)
{
	pthread_attr_t attr;
	sigset_t block, old;
	int e = pthread_attr_init(&attr);
	if (e)
		return -e;
	e = pthread_attr_setstacksize(&attr, stack ? stack : VMM_THREAD_STACK);
	if (e) {
		pthread_attr_destroy(&attr);
		return -e;
	}
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	e = pthread_create(thread, &attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return -e;
}

#endif /* ZHV_VMM_THREAD_H */
