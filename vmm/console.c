/* console.c: stdin in raw mode, the input thread that feeds COM1, and
 * messages to stderr that a stalled terminal cannot block. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "dev/virtio_pci.h"
#include "devices.h"
#include "vm.h"
#include "thread.h"

/* How long a message waits for a stalled stderr before it is dropped. */
#define MESSAGE_WAIT_MS 100

static struct termios saved_termios;
/* A non-blocking descriptor of our own on stderr's terminal, pipe or
 * FIFO (console_init), or -1: messages then go to stderr as usual. */
static int message_fd = -1;
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

void console_message(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1, done = 0;
	if (message_fd < 0) {
		fputs(buf, stderr);
		return;
	}
	fflush(stderr);
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (done < len) {
		ssize_t r = write(message_fd, buf + done, len - done);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= MESSAGE_WAIT_MS)
			return; /* nobody reads: the message is lost, zhv goes on */
		struct pollfd pfd = {.fd = message_fd, .events = POLLOUT};
		poll(&pfd, 1, (int)(MESSAGE_WAIT_MS - ms));
	}
}

/* Open stderr again, non-blocking, if it is a terminal, pipe or FIFO (the
 * flag must not be set on the shared descriptor: the shell would get a
 * non-blocking terminal back). */
static void open_message_fd(void)
{
	struct stat st, nst;
	if (message_fd >= 0 || fstat(STDERR_FILENO, &st) < 0 ||
	    !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)))
		return;
	int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &nst) < 0 || nst.st_dev != st.st_dev || nst.st_ino != st.st_ino) {
		close(fd);
		return;
	}
	message_fd = fd;
}

bool console_init(void)
{
	open_message_fd();
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

/* --console virtio: input goes to the virtio console, not COM1. */
static bool input_to_virtio;

void console_to_virtio(bool on)
{
	input_to_virtio = on;
}

static void deliver(const uint8_t *buf, size_t n)
{
	if (input_to_virtio)
		virtio_console_input(buf, n);
	else
		uart16550_input(input.com1, buf, n);
}

/* Copy (buf) to the guest's console, acting on Ctrl-A sequences when on a terminal.
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
					deliver(out, n);
				/* The exit first: a stalled terminal may drop
				 * the message but cannot hold the quit. */
				vm_request_exit(input.vm, VM_EXIT_POWEROFF, 0);
				console_message("\nzhv: terminated by user\n");
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
			deliver(out, n);
			n = 0;
		}
	}
	if (n)
		deliver(out, n);
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
	int e = vmm_thread_start(&input.thread, 0, input_thread, NULL);
	if (e < 0) {
		close(input.stop_pipe[0]);
		close(input.stop_pipe[1]);
		return e;
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

void console_destroy(void)
{
	console_stop();
	console_restore();
	if (message_fd >= 0) {
		close(message_fd);
		message_fd = -1;
	}
	is_tty = false;
}
