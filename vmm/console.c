/* console.c: stdin in raw mode and the input thread that feeds COM1. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "console.h"
#include "devices.h"
#include "vm.h"

static struct termios saved_termios;
static volatile sig_atomic_t raw_active;
static bool is_tty;

static struct {
	pthread_t thread;
	bool running;
	int stop_pipe[2];
	struct vm *vm;
	struct uart *com1;
} input;

void console_restore(void)
{
	if (raw_active) {
		raw_active = 0;
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_termios);
	}
}

static void restore_at_exit(void)
{
	console_restore();
}

bool console_init(void)
{
	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_termios) < 0)
		return false;
	is_tty = true;
	struct termios t = saved_termios;
	/* cfmakeraw(), except OPOST: keep "\n" -> "\r\n" as QEMU's stdio does. */
	t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
	t.c_cflag |= CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	atexit(restore_at_exit);
	if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0)
		raw_active = 1;
	return true;
}

/* Copy (buf) to the UART, acting on Ctrl-A sequences when on a terminal.
 * Returns false once the user asked to quit. */
static bool forward(const uint8_t *buf, size_t len, bool *escape)
{
	uint8_t out[256];
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = buf[i];
		if (is_tty && *escape) {
			*escape = false;
			if (c == 'x' || c == 'X') {
				if (n)
					uart16550_input(input.com1, out, n);
				fprintf(stderr, "\nzhv: terminated by user\n");
				vm_request_exit(input.vm, VM_EXIT_POWEROFF, 0);
				return false;
			}
			if (c != CONSOLE_ESCAPE)
				out[n++] = CONSOLE_ESCAPE; /* not a command: pass both */
		} else if (is_tty && c == CONSOLE_ESCAPE) {
			*escape = true;
			continue;
		}
		out[n++] = c;
		if (n >= sizeof(out) - 1) {
			uart16550_input(input.com1, out, n);
			n = 0;
		}
	}
	if (n)
		uart16550_input(input.com1, out, n);
	return true;
}

static void *input_thread(void *arg)
{
	(void)arg;
	bool escape = false;
	struct pollfd fds[2] = {
		{.fd = STDIN_FILENO, .events = POLLIN},
		{.fd = input.stop_pipe[0], .events = POLLIN},
	};
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[1].revents)
			break;
		if (!fds[0].revents)
			continue;
		uint8_t buf[128];
		ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break; /* end of input: the guest keeps running */
		if (!forward(buf, (size_t)r, &escape))
			break;
	}
	return NULL;
}

/* Is there anything to read on stdin? A terminal, pipe, socket or file
 * is; a character device that is not a terminal (/dev/null) is not, and
 * then no input thread is started (it costs a thread at start-up). */
static bool stdin_has_input(void)
{
	struct stat st;
	if (fstat(STDIN_FILENO, &st) < 0)
		return false;
	return !S_ISCHR(st.st_mode) || isatty(STDIN_FILENO);
}

int console_start(struct vm *vm, struct uart *com1)
{
	if (input.running || !com1 || !stdin_has_input())
		return 0;
	input.vm = vm;
	input.com1 = com1;
	if (pipe(input.stop_pipe) < 0)
		return -errno;
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	int e = pthread_create(&input.thread, NULL, input_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		close(input.stop_pipe[0]);
		close(input.stop_pipe[1]);
		return -e;
	}
	pthread_setname_np(input.thread, "console");
	input.running = true;
	return 0;
}

void console_stop(void)
{
	if (!input.running)
		return;
	ssize_t r = write(input.stop_pipe[1], "", 1);
	(void)r;
	pthread_join(input.thread, NULL);
	close(input.stop_pipe[0]);
	close(input.stop_pipe[1]);
	input.running = false;
}
