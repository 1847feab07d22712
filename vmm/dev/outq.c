/* outq.c: bounded console output ring and its writer thread (see outq.h).
 *
 * The writer thread starts on the first write that cannot go out at once:
 * while the ring is empty, a non-blocking descriptor (a pipe, FIFO or
 * terminal opened again with O_NONBLOCK, or a socket) is written directly
 * by the producer, which then never waits and keeps the bytes' order (an
 * empty ring means the writer has nothing in flight). A run whose output
 * is never held up starts no thread at all. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "outq.h"
#include "thread.h"

#define OUTQ_CHUNK 4096u /* bytes per write(); PIPE_BUF on Linux */
#define OUTQ_STALL_MS 50L
#define OUTQ_STACK_SIZE (256u << 10) /* outq_stop: no progress for this long: give up */

/* How the writer's descriptor behaves. */
enum outq_mode {
	OUTQ_STREAM,   /* no descriptor: fwrite under the lock, no thread */
	OUTQ_PLAIN,    /* regular file or block device: plain writes */
	OUTQ_NONBLOCK, /* our own O_NONBLOCK open: EAGAIN, then poll */
	OUTQ_SOCKET,   /* send(MSG_DONTWAIT) */
	OUTQ_POLL,     /* shared blocking descriptor: poll, then a chunk */
};

struct outq {
	pthread_mutex_t lock;   /* everything below */
	pthread_cond_t more;    /* bytes queued, or stopping */
	pthread_cond_t drained; /* the writer consumed bytes or ended */
	enum outq_mode mode;
	FILE *stream;           /* OUTQ_STREAM */
	int fd;                 /* the writer's descriptor, else -1 */
	int stop_pipe[2];       /* wakes a writer waiting for room */
	pthread_t thread;
	bool thread_started;
	bool stopping;          /* the writer ends now */
	bool writer_done;       /* ... and has */
	bool stopped;           /* outq_stop ran: queue nothing more */
	bool dead;              /* the output failed: bytes go nowhere */
	uint8_t *ring;
	size_t size, head, count; /* bytes [head, head + count) wait, mod size */
	uint64_t dropped;
};

enum { WRITE_OK, WRITE_STOPPED, WRITE_FAILED };

/* Write (len) bytes on the writer's descriptor, waiting for room with the
 * stop pipe watched. *(done) gets the bytes written. */
static int write_out(struct outq *q, const uint8_t *p, size_t len, size_t *done)
{
	struct pollfd fds[2] = {
		{ .fd = q->fd, .events = POLLOUT },
		{ .fd = q->stop_pipe[0], .events = POLLIN },
	};

	*done = 0;
	while (*done < len) {
		ssize_t r;

		if (q->mode == OUTQ_POLL) {
			/* Blocking descriptor shared with others: write only
			 * what poll says fits (a pipe takes PIPE_BUF then). */
			if (poll(fds, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				return WRITE_FAILED;
			}
			if (fds[1].revents)
				return WRITE_STOPPED;
			if (!fds[0].revents)
				continue;
		}
		if (q->mode == OUTQ_SOCKET)
			r = send(q->fd, p + *done, len - *done, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			r = write(q->fd, p + *done, len - *done);
		if (r > 0) {
			*done += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && q->mode != OUTQ_PLAIN) {
			if (poll(fds, 2, -1) < 0 && errno != EINTR)
				return WRITE_FAILED;
			if (fds[1].revents)
				return WRITE_STOPPED;
			continue;
		}
		return WRITE_FAILED; /* closed reader, full disk, ...: output ends */
	}
	return WRITE_OK;
}

static void *outq_writer(void *arg)
{
	struct outq *q = arg;
	uint8_t chunk[OUTQ_CHUNK];

	/* Named by itself: naming another thread opens a /proc file, which
	 * the sandbox forbids once the guest runs. */
	pthread_setname_np(pthread_self(), "console-out");
	pthread_mutex_lock(&q->lock);
	for (;;) {
		size_t n, done;
		int r;

		while (!q->count && !q->stopping)
			pthread_cond_wait(&q->more, &q->lock);
		if (q->stopping)
			break;
		/* Copy a chunk out; its bytes stay queued (and take room)
		 * until written. */
		n = q->size - q->head;
		if (n > q->count)
			n = q->count;
		if (n > sizeof(chunk))
			n = sizeof(chunk);
		memcpy(chunk, q->ring + q->head, n);
		pthread_mutex_unlock(&q->lock);
		r = write_out(q, chunk, n, &done);
		pthread_mutex_lock(&q->lock);
		if (r == WRITE_FAILED) {
			q->dead = true; /* nobody can read it any more: not an overrun */
			done = n;
		}
		q->head = (q->head + done) % q->size;
		q->count -= done;
		if (q->dead)
			q->count = 0;
		pthread_cond_broadcast(&q->drained);
		if (r == WRITE_STOPPED)
			break;
	}
	/* Given up: what is left is lost. */
	q->dropped += q->count;
	q->count = 0;
	q->writer_done = true;
	pthread_cond_broadcast(&q->drained);
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* The writer's own descriptor for (fd) and how to use it. */
static int writer_fd(int fd, enum outq_mode *mode)
{
	struct stat st;
	char path[64];
	int nfd;

	if (fstat(fd, &st) < 0)
		return -1;
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
		*mode = OUTQ_PLAIN;
		return fcntl(fd, F_DUPFD_CLOEXEC, 3);
	}
	if (S_ISSOCK(st.st_mode)) {
		*mode = OUTQ_SOCKET;
		return fcntl(fd, F_DUPFD_CLOEXEC, 3);
	}
	/* A pipe, FIFO or terminal: open it again, non-blocking, so that the
	 * flag stays ours (setting it on a shared terminal would hand the
	 * shell a non-blocking terminal). */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (nfd >= 0) {
		struct stat nst;

		if (fstat(nfd, &nst) == 0 && nst.st_dev == st.st_dev && nst.st_ino == st.st_ino) {
			*mode = OUTQ_NONBLOCK;
			return nfd;
		}
		close(nfd);
	}
	*mode = OUTQ_POLL;
	return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

struct outq *outq_create(FILE *out, size_t size)
{
	struct outq *q;
	pthread_condattr_t ca;
	int fd, e;

	if (!out || size == 0) {
		errno = EINVAL;
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->fd = q->stop_pipe[0] = q->stop_pipe[1] = -1;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->more, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->drained, &ca);
	pthread_condattr_destroy(&ca);
	fd = fileno(out);
	if (fd < 0) {
		q->mode = OUTQ_STREAM; /* a memory stream: never blocks */
		q->stream = out;
		return q;
	}
	q->ring = malloc(size);
	q->size = size;
	if (!q->ring)
		goto fail;
	fflush(out);
	q->fd = writer_fd(fd, &q->mode);
	if (q->fd < 0 && errno == EBADF) {
		q->mode = OUTQ_PLAIN;
		q->dead = true; /* a closed stdout: the output goes nowhere */
		return q;
	}
	/* (The stop pipe now: the sandbox allows no pipe later.) */
	if (q->fd < 0 || pipe2(q->stop_pipe, O_CLOEXEC) < 0)
		goto fail;
	return q; /* the writer starts when first needed (start_writer) */

fail:
	e = errno;
	outq_destroy(q);
	errno = e;
	return NULL;
}

/* Start the writer thread (q->lock held). Returns false if it cannot be. */
static bool start_writer(struct outq *q)
{
	if (q->thread_started)
		return true;
	/* A small stack: it holds one chunk. */
	if (vmm_thread_start(&q->thread, OUTQ_STACK_SIZE, outq_writer, q) < 0)
		return false;
	q->thread_started = true;
	return true;
}

/* Write what goes out at once on a non-blocking descriptor while nothing
 * is queued (q->lock held). Returns the bytes written. */
static size_t write_direct(struct outq *q, const uint8_t *p, size_t len)
{
	size_t done = 0;

	if (q->count || q->stopped || (q->mode != OUTQ_NONBLOCK && q->mode != OUTQ_SOCKET))
		return 0;
	while (done < len) {
		ssize_t r;

		if (q->mode == OUTQ_SOCKET)
			r = send(q->fd, p + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			r = write(q->fd, p + done, len - done);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break; /* the rest waits for the writer */
		q->dead = true; /* closed reader, ...: output ends, as in the writer */
		return len;
	}
	return done;
}

size_t outq_write(struct outq *q, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t n, first, direct;

	if (!q || !len)
		return 0;
	pthread_mutex_lock(&q->lock);
	if (q->mode == OUTQ_STREAM) {
		n = q->stopped ? 0 : fwrite(buf, 1, len, q->stream);
		fflush(q->stream);
		pthread_mutex_unlock(&q->lock);
		return n;
	}
	if (q->dead) {
		pthread_mutex_unlock(&q->lock);
		return 0;
	}
	direct = write_direct(q, p, len);
	if (direct == len) {
		pthread_mutex_unlock(&q->lock);
		return len;
	}
	p += direct;
	len -= direct;
	n = q->stopped ? 0 : q->size - q->count;
	if (n > len)
		n = len;
	if (n && !start_writer(q))
		n = 0; /* no thread to write them: the bytes are lost */
	q->dropped += len - n;
	if (n) {
		size_t tail = (q->head + q->count) % q->size;

		first = q->size - tail < n ? q->size - tail : n;
		memcpy(q->ring + tail, p, first);
		memcpy(q->ring, p + first, n - first);
		if (q->count == 0)
			pthread_cond_signal(&q->more);
		q->count += n;
	}
	pthread_mutex_unlock(&q->lock);
	return direct + n;
}

uint64_t outq_dropped(struct outq *q)
{
	uint64_t v;

	if (!q)
		return 0;
	pthread_mutex_lock(&q->lock);
	v = q->dropped;
	pthread_mutex_unlock(&q->lock);
	return v;
}

uint64_t outq_stop(struct outq *q, unsigned timeout_ms)
{
	uint64_t dropped;
	bool join = false;

	if (!q)
		return 0;
	pthread_mutex_lock(&q->lock);
	if (q->thread_started && !q->stopping) {
		struct timespec deadline;

		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		/* Until drained, the deadline, or a stalled reader: 50 ms
		 * without the writer getting a byte out. */
		while (q->count && !q->writer_done) {
			size_t before = q->count;
			struct timespec step;

			clock_gettime(CLOCK_MONOTONIC, &step);
			step.tv_nsec += OUTQ_STALL_MS * 1000000L;
			if (step.tv_nsec >= 1000000000L) {
				step.tv_sec++;
				step.tv_nsec -= 1000000000L;
			}
			if (step.tv_sec > deadline.tv_sec ||
			    (step.tv_sec == deadline.tv_sec && step.tv_nsec > deadline.tv_nsec))
				step = deadline;
			if (pthread_cond_timedwait(&q->drained, &q->lock, &step) == ETIMEDOUT &&
			    (q->count == before || (step.tv_sec == deadline.tv_sec &&
			                            step.tv_nsec == deadline.tv_nsec)))
				break;
		}
		q->stopping = true;
		pthread_cond_signal(&q->more);
		join = true;
	}
	q->stopped = true;
	pthread_mutex_unlock(&q->lock);
	if (join) {
		ssize_t r = write(q->stop_pipe[1], "", 1);

		(void)r;
		pthread_join(q->thread, NULL);
	}
	pthread_mutex_lock(&q->lock);
	dropped = q->dropped;
	pthread_mutex_unlock(&q->lock);
	return dropped;
}

void outq_destroy(struct outq *q)
{
	if (!q)
		return;
	outq_stop(q, OUTQ_STOP_MS);
	if (q->fd >= 0)
		close(q->fd);
	if (q->stop_pipe[0] >= 0) {
		close(q->stop_pipe[0]);
		close(q->stop_pipe[1]);
	}
	pthread_cond_destroy(&q->more);
	pthread_cond_destroy(&q->drained);
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q);
}
