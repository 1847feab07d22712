/* port.c: ports, FIFO queues of user and trap packets (Zircon's PortDispatcher). */
#include <errno.h>
#include <limits.h>
#include <linux/kvm.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include "port_priv.h"

/* One queued packet. User packets are malloc'd one by one; trap packets
 * come from their trap's arena, so that a vCPU never allocates memory to
 * deliver a BELL write and a trap can have only so many in flight. */
struct port_node {
	struct port_node *next;
	struct port_arena *arena; /* NULL: a user packet, freed on dequeue */
	zhv_packet_t packet;
};

/* A doorbell address of a BELL trap that KVM signals through an ioeventfd
 * (port_arena_add_doorbell): the guest's write stays in the kernel, and
 * the port turns the eventfd's count into packets when a waiter looks. */
struct port_doorbell {
	struct port_doorbell *next; /* the arena's doorbells */
	struct port_arena *arena;
	uint64_t addr;
	uint64_t owed; /* writes read from the eventfd, packets not yet queued */
	uint64_t id;   /* its epoll data: unique in the port, never reused */
	int fd;        /* eventfd, registered with KVM and in the port's epoll set */
};

struct port_arena {
	zhv_port_t *port;
	/* Doorbells (all under the port's lock): the VM they are registered
	 * with, the trap's key, the guest's bell_packets counter, and the
	 * writes read from eventfds but waiting for a free node (sum of the
	 * doorbells' owed). */
	struct port_doorbell *bells;
	int vm_fd;
	uint64_t key;
	_Atomic uint64_t *bell_stat;
	uint64_t owed;
	/* An eventfd a failed registration left, reused by the next one:
	 * closing it is left to the arena's destroyer, because
	 * port_arena_add_doorbell runs on vCPU threads, which zhv run's
	 * sandbox does not let close descriptors. */
	int spare_fd;
	struct port_arena *prev, *next; /* the port's arenas (port lock) */
	/* The rest is guarded by the port's lock: a node moves between the
	 * free list and the port's queue, so one lock covers both. */
	struct port_node *free;
	uint32_t in_flight;
	uint32_t waiters;
	pthread_cond_t cond; /* a node came back, or the port closed */
	struct port_node nodes[PORT_ARENA_PACKETS];
};

struct zhv_port {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a packet was queued */
	struct port_node *head, *tail;
	uint32_t max_user, user_count;
	bool closed;
	struct port_arena *arenas;
	/* Doorbells of every arena here (port_arena_add_doorbell): an epoll
	 * set of their eventfds plus (wakefd), created with the first one. A
	 * waiter drains ready eventfds into packets; one waiter at a time
	 * (polling) sleeps in epoll_wait, the others on (cond); whoever queues
	 * a packet while one polls writes (wakefd). */
	int epfd, wakefd;
	uint32_t nbells;
	uint64_t next_bell_id; /* 0 is the wakefd's */
	bool polling;
	uint32_t cond_waiters;
	/* The owner's reference plus one per trap that points here. Atomic so
	 * that dropping one needs no lock that the last drop would free. */
	atomic_uint refs;
};

static void port_free(zhv_port_t *port)
{
	struct port_node *node = port->head;

	/* The owner closed the port (draining the queue) and every trap
	 * destroyed its arena before dropping its reference, so there is
	 * nothing left to free here but the port itself. Be thorough anyway
	 * about user packets: they are ours. */
	while (node) {
		struct port_node *next = node->next;

		if (!node->arena)
			free(node);
		node = next;
	}
	if (port->epfd >= 0)
		close(port->epfd);
	if (port->wakefd >= 0)
		close(port->wakefd);
	pthread_cond_destroy(&port->cond);
	pthread_mutex_destroy(&port->lock);
	free(port);
}

void port_ref(zhv_port_t *port)
{
	atomic_fetch_add_explicit(&port->refs, 1, memory_order_relaxed);
}

void port_unref(zhv_port_t *port)
{
	if (!port)
		return;
	/* acq_rel: every use of the port by other holders happens before the
	 * free done by whoever drops the last reference. */
	if (atomic_fetch_sub_explicit(&port->refs, 1, memory_order_acq_rel) == 1)
		port_free(port);
}

zhv_status_t zhv_port_create(uint32_t max_user_packets, zhv_port_t **port)
{
	pthread_condattr_t attr;
	zhv_port_t *p;

	if (!port)
		return ZHV_ERR_INVALID_ARGS;
	p = calloc(1, sizeof(*p));
	if (!p)
		return ZHV_ERR_NO_MEMORY;
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p);
		return ZHV_ERR_NO_MEMORY;
	}
	/* zhv_port_wait deadlines are CLOCK_MONOTONIC. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (pthread_cond_init(&p->cond, &attr) != 0) {
		pthread_condattr_destroy(&attr);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return ZHV_ERR_NO_MEMORY;
	}
	pthread_condattr_destroy(&attr);
	p->max_user = max_user_packets ? max_user_packets : ZHV_PORT_DEFAULT_MAX_USER_PACKETS;
	p->epfd = p->wakefd = -1;
	atomic_init(&p->refs, 1);
	*port = p;
	return ZHV_OK;
}

static void enqueue_locked(zhv_port_t *port, struct port_node *node);

/* Queue packets for the arena's doorbell writes already read from their
 * eventfds, as long as it has free nodes (a trap's 256 in flight hold
 * here too: the rest waits in (owed) until the consumer returns nodes). */
static void arena_fill_locked(struct port_arena *arena)
{
	for (struct port_doorbell *b = arena->bells; b && arena->owed && arena->free; b = b->next) {
		while (b->owed && arena->free) {
			struct port_node *node = arena->free;
			arena->free = node->next;
			arena->in_flight++;
			b->owed--;
			arena->owed--;
			node->packet = (zhv_packet_t){.key = arena->key,
			                              .type = ZHV_PKT_TYPE_GUEST_BELL};
			node->packet.guest_bell.addr = b->addr;
			enqueue_locked(arena->port, node);
			if (arena->bell_stat)
				atomic_fetch_add_explicit(arena->bell_stat, 1, memory_order_relaxed);
		}
	}
}

/* Give an arena node back and wake one thread waiting for it. */
static void arena_put_locked(struct port_node *node)
{
	struct port_arena *arena = node->arena;

	node->next = arena->free;
	arena->free = node;
	arena->in_flight--;
	if (arena->waiters)
		pthread_cond_signal(&arena->cond);
	else if (arena->owed && !arena->port->closed)
		arena_fill_locked(arena);
}

/* Unregister a doorbell from KVM and the port's epoll set and free it.
 * The VM is alive: its guest destroys its traps' arenas (which unlinks them
 * from the port under the port's lock) before it closes the VM. */
static void doorbell_free_locked(zhv_port_t *port, struct port_doorbell *b)
{
	struct kvm_ioeventfd io = {
		.addr = b->addr, .len = 0, .fd = b->fd, .flags = KVM_IOEVENTFD_FLAG_DEASSIGN};
	if (port->epfd >= 0)
		(void)epoll_ctl(port->epfd, EPOLL_CTL_DEL, b->fd, NULL);
	(void)ioctl(b->arena->vm_fd, KVM_IOEVENTFD, &io);
	close(b->fd);
	port->nbells--;
	free(b);
}

static void arena_drop_doorbells_locked(struct port_arena *arena)
{
	while (arena->bells) {
		struct port_doorbell *b = arena->bells;
		arena->bells = b->next;
		doorbell_free_locked(arena->port, b);
	}
	arena->owed = 0;
}

/* One ready descriptor of the port's epoll set, by its id: read its count
 * into packets. The id, not a pointer, travels through epoll, so an event
 * of a doorbell freed meanwhile (its id is never reused) is ignored. */
static void handle_ready_locked(zhv_port_t *port, uint64_t id)
{
	uint64_t count;
	if (id == 0) {
		(void)!read(port->wakefd, &count, sizeof(count));
		return;
	}
	for (struct port_arena *a = port->arenas; a; a = a->next) {
		for (struct port_doorbell *b = a->bells; b; b = b->next) {
			if (b->id != id)
				continue;
			if (read(b->fd, &count, sizeof(count)) == sizeof(count)) {
				b->owed += count;
				a->owed += count;
				arena_fill_locked(a);
			}
			return;
		}
	}
}

/* Read every ready doorbell eventfd into packets (never blocks). */
static void drain_locked(zhv_port_t *port)
{
	struct epoll_event ev[32];
	int n;

	if (!port->nbells || port->epfd < 0)
		return;
	do {
		n = epoll_wait(port->epfd, ev, 32, 0);
		for (int i = 0; i < n; i++)
			handle_ready_locked(port, ev[i].data.u64);
	} while (n == 32);
}

void zhv_port_destroy(zhv_port_t *port)
{
	struct port_node *node, *user = NULL;

	if (!port)
		return;
	pthread_mutex_lock(&port->lock);
	port->closed = true;
	node = port->head;
	while (node) {
		struct port_node *next = node->next;

		if (node->arena) {
			arena_put_locked(node);
		} else {
			node->next = user;
			user = node;
		}
		node = next;
	}
	port->head = port->tail = NULL;
	port->user_count = 0;
	/* Doorbells go back to the exit path, so that the next write of one
	 * fails its vCPU's enter with BAD_STATE, as a write of a BELL trap
	 * whose port is closed does (zhv.h). Writes already counted are
	 * dropped with the queue. */
	for (struct port_arena *a = port->arenas; a; a = a->next)
		arena_drop_doorbells_locked(a);
	/* No one can dequeue from a closed port, so a vCPU blocked for an
	 * arena slot must wake now and see BAD_STATE. Returning the nodes
	 * above signalled one waiter per node; broadcast so that every
	 * waiter wakes, however many there are. */
	for (struct port_arena *a = port->arenas; a; a = a->next)
		pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&port->lock);

	while (user) {
		node = user->next;
		free(user);
		user = node;
	}
	port_unref(port);
}

static void enqueue_locked(zhv_port_t *port, struct port_node *node)
{
	node->next = NULL;
	if (port->tail)
		port->tail->next = node;
	else
		port->head = node;
	port->tail = node;
	pthread_cond_signal(&port->cond);
	if (port->polling) {
		uint64_t one = 1;
		(void)!write(port->wakefd, &one, sizeof(one));
	}
}

zhv_status_t zhv_port_queue(zhv_port_t *port, const zhv_packet_t *packet)
{
	struct port_node *node;
	zhv_status_t status = ZHV_OK;

	if (!port || !packet)
		return ZHV_ERR_INVALID_ARGS;
	/* Allocate before taking the lock: waiters and vCPUs queueing BELL
	 * packets should not wait for malloc. */
	node = malloc(sizeof(*node));
	if (!node)
		return ZHV_ERR_NO_MEMORY;
	node->arena = NULL;
	node->packet = *packet;
	node->packet.type = ZHV_PKT_TYPE_USER;

	pthread_mutex_lock(&port->lock);
	if (port->closed) {
		status = ZHV_ERR_BAD_STATE;
	} else if (port->user_count >= port->max_user) {
		status = ZHV_ERR_SHOULD_WAIT;
	} else {
		port->user_count++;
		enqueue_locked(port, node);
		node = NULL;
	}
	pthread_mutex_unlock(&port->lock);
	free(node);
	return status;
}

/* Sleep in epoll_wait on the port's doorbells and wakefd until one is
 * ready or (deadline) passes, then turn what is ready into packets. Called
 * and returns with the lock held. */
static void poll_doorbells_locked(zhv_port_t *port, zhv_time_t deadline)
{
	int timeout = -1;
	if (deadline != ZHV_TIME_INFINITE) {
		zhv_time_t left = deadline - zhv_clock_monotonic();
		if (left <= 0)
			return;
		zhv_time_t ms = (left + 999999) / 1000000;
		timeout = ms > INT_MAX ? INT_MAX : (int)ms;
	}
	struct epoll_event ev[32];
	port->polling = true;
	pthread_mutex_unlock(&port->lock);
	int n = epoll_wait(port->epfd, ev, 32, timeout);
	pthread_mutex_lock(&port->lock);
	port->polling = false;
	for (int i = 0; i < n; i++)
		handle_ready_locked(port, ev[i].data.u64);
	if (n == 32)
		drain_locked(port);
}

zhv_status_t zhv_port_wait(zhv_port_t *port, zhv_time_t deadline, zhv_packet_t *packet)
{
	struct timespec ts;
	struct port_node *node, *to_free = NULL;

	if (!port || !packet)
		return ZHV_ERR_INVALID_ARGS;
	if (deadline > 0) {
		ts.tv_sec = deadline / 1000000000;
		ts.tv_nsec = deadline % 1000000000;
	}

	pthread_mutex_lock(&port->lock);
	for (;;) {
		if (port->head)
			break;
		/* The queue is checked before the deadline, so a deadline in
		 * the past (0 included) polls, and a waiter that timed out
		 * just as a packet arrived still takes it. */
		bool expired = deadline <= 0 || (deadline != ZHV_TIME_INFINITE &&
		                                 zhv_clock_monotonic() >= deadline);
		bool can_poll = port->nbells && !port->polling;
		if (can_poll && !expired) {
			/* Doorbell writes that KVM counted become packets here;
			 * epoll_wait returns at once for any already counted, so
			 * a write done before this call is seen by it. */
			poll_doorbells_locked(port, deadline);
			continue;
		}
		if (port->nbells) {
			/* Polling, or another waiter sleeps in epoll_wait:
			 * take what is counted already, without blocking. */
			drain_locked(port);
			if (port->head)
				break;
		}
		if (expired) {
			pthread_mutex_unlock(&port->lock);
			return ZHV_ERR_TIMED_OUT;
		}
		port->cond_waiters++;
		if (deadline == ZHV_TIME_INFINITE)
			pthread_cond_wait(&port->cond, &port->lock);
		else
			pthread_cond_timedwait(&port->cond, &port->lock, &ts);
		port->cond_waiters--;
	}
	node = port->head;
	port->head = node->next;
	if (!port->head)
		port->tail = NULL;
	*packet = node->packet;
	if (node->arena) {
		arena_put_locked(node);
	} else {
		port->user_count--;
		to_free = node;
	}
	/* Someone must keep watching the doorbells: hand over to a waiter
	 * sleeping on the condition variable. */
	if (port->nbells && port->cond_waiters && !port->polling)
		pthread_cond_signal(&port->cond);
	pthread_mutex_unlock(&port->lock);
	free(to_free);
	return ZHV_OK;
}

struct port_arena *port_arena_create(zhv_port_t *port)
{
	struct port_arena *arena;

	if (!port)
		return NULL;
	arena = calloc(1, sizeof(*arena));
	if (!arena)
		return NULL;
	/* Only ever waited on without a deadline: the default clock is fine. */
	if (pthread_cond_init(&arena->cond, NULL) != 0) {
		free(arena);
		return NULL;
	}
	arena->port = port;
	arena->vm_fd = -1;
	arena->spare_fd = -1;
	for (uint32_t i = 0; i < PORT_ARENA_PACKETS; i++) {
		arena->nodes[i].arena = arena;
		arena->nodes[i].next = i + 1 < PORT_ARENA_PACKETS ? &arena->nodes[i + 1] : NULL;
	}
	arena->free = &arena->nodes[0];

	pthread_mutex_lock(&port->lock);
	arena->next = port->arenas;
	if (port->arenas)
		port->arenas->prev = arena;
	port->arenas = arena;
	pthread_mutex_unlock(&port->lock);
	return arena;
}

void port_arena_destroy(struct port_arena *arena)
{
	zhv_port_t *port;
	struct port_node **link, *prev = NULL;

	if (!arena)
		return;
	port = arena->port;
	pthread_mutex_lock(&port->lock);
	/* Cancel only this arena's packets: Zircon matches a trap's packets
	 * by their allocator, so a user packet with the trap's key stays
	 * (test GuestSetTrapWithBellAndUser). The nodes live in the arena,
	 * which is about to be freed: none may stay on the queue. */
	link = &port->head;
	while (*link) {
		struct port_node *node = *link;

		if (node->arena == arena) {
			*link = node->next;
			arena->in_flight--;
		} else {
			prev = node;
			link = &node->next;
		}
	}
	port->tail = prev;
	arena_drop_doorbells_locked(arena);

	if (arena->prev)
		arena->prev->next = arena->next;
	else
		port->arenas = arena->next;
	if (arena->next)
		arena->next->prev = arena->prev;
	pthread_mutex_unlock(&port->lock);

	if (arena->spare_fd >= 0)
		close(arena->spare_fd);
	pthread_cond_destroy(&arena->cond);
	free(arena);
}

zhv_status_t port_queue_trap_packet(struct port_arena *arena, const zhv_packet_t *packet)
{
	zhv_port_t *port = arena->port;
	struct port_node *node;

	pthread_mutex_lock(&port->lock);
	/* Zircon's counting semaphore of 256: a trap that has all its packets
	 * in flight makes the vCPU wait for the consumer rather than drop a
	 * doorbell or allocate without bound. */
	while (!port->closed && !arena->free) {
		arena->waiters++;
		pthread_cond_wait(&arena->cond, &port->lock);
		arena->waiters--;
	}
	if (port->closed) {
		pthread_mutex_unlock(&port->lock);
		return ZHV_ERR_BAD_STATE;
	}
	node = arena->free;
	arena->free = node->next;
	arena->in_flight++;
	node->packet = *packet;
	enqueue_locked(port, node);
	pthread_mutex_unlock(&port->lock);
	return ZHV_OK;
}

uint32_t port_arena_in_flight(struct port_arena *arena)
{
	uint32_t n;

	pthread_mutex_lock(&arena->port->lock);
	n = arena->in_flight;
	pthread_mutex_unlock(&arena->port->lock);
	return n;
}

uint32_t port_arena_waiters(struct port_arena *arena)
{
	uint32_t n;

	pthread_mutex_lock(&arena->port->lock);
	n = arena->waiters;
	pthread_mutex_unlock(&arena->port->lock);
	return n;
}

void port_arena_bind(struct port_arena *arena, int vm_fd, uint64_t key,
                     _Atomic uint64_t *bell_stat)
{
	pthread_mutex_lock(&arena->port->lock);
	arena->vm_fd = vm_fd;
	arena->key = key;
	arena->bell_stat = bell_stat;
	pthread_mutex_unlock(&arena->port->lock);
}

static zhv_status_t ensure_epoll_locked(zhv_port_t *port)
{
	if (port->epfd >= 0)
		return ZHV_OK;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return ZHV_ERR_NO_RESOURCES;
	int wk = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
	if (wk < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, wk, &ev) < 0) {
		if (wk >= 0)
			close(wk);
		close(ep);
		return ZHV_ERR_NO_RESOURCES;
	}
	port->epfd = ep;
	port->wakefd = wk;
	return ZHV_OK;
}

/* Keep (fd) as the arena's spare, or close it if there is one already
 * (only a thread that is not a vCPU's can get there: vCPU threads never
 * hold two). */
static void park_fd(struct port_arena *arena, int fd)
{
	pthread_mutex_lock(&arena->port->lock);
	if (arena->spare_fd < 0) {
		arena->spare_fd = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&arena->port->lock);
	if (fd >= 0)
		close(fd);
}

zhv_status_t port_arena_add_doorbell(struct port_arena *arena, uint64_t addr)
{
	zhv_port_t *port = arena->port;
	struct port_doorbell *b = calloc(1, sizeof(*b));
	if (!b)
		return ZHV_ERR_NO_MEMORY;
	b->arena = arena;
	b->addr = addr;
	int vm_fd;
	pthread_mutex_lock(&port->lock);
	vm_fd = arena->vm_fd;
	b->fd = arena->spare_fd;
	arena->spare_fd = -1;
	pthread_mutex_unlock(&port->lock);
	if (b->fd >= 0) {
		uint64_t stale; /* writes counted while it was registered before */
		(void)!read(b->fd, &stale, sizeof(stale));
	} else {
		b->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
	if (b->fd < 0) {
		free(b);
		return ZHV_ERR_NO_RESOURCES;
	}
	/* Length 0: a write of any size at exactly (addr), no data match. */
	struct kvm_ioeventfd io = {.addr = addr, .len = 0, .fd = b->fd};
	if (vm_fd < 0 || ioctl(vm_fd, KVM_IOEVENTFD, &io) < 0) {
		int e = vm_fd < 0 ? EBADF : errno;
		park_fd(arena, b->fd);
		free(b);
		return e == ENOSPC || e == ENOMEM ? ZHV_ERR_NO_RESOURCES
		       : e == EEXIST              ? ZHV_ERR_ALREADY_EXISTS
		                                  : ZHV_ERR_NOT_SUPPORTED;
	}
	zhv_status_t st = ZHV_OK;
	pthread_mutex_lock(&port->lock);
	if (port->closed)
		st = ZHV_ERR_BAD_STATE;
	else
		st = ensure_epoll_locked(port);
	if (st == ZHV_OK) {
		b->id = ++port->next_bell_id;
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = b->id};
		if (epoll_ctl(port->epfd, EPOLL_CTL_ADD, b->fd, &ev) < 0)
			st = ZHV_ERR_NO_RESOURCES;
	}
	if (st != ZHV_OK) {
		pthread_mutex_unlock(&port->lock);
		io.flags = KVM_IOEVENTFD_FLAG_DEASSIGN;
		(void)ioctl(vm_fd, KVM_IOEVENTFD, &io);
		park_fd(arena, b->fd);
		free(b);
		return st;
	}
	b->next = arena->bells;
	arena->bells = b;
	port->nbells++;
	/* Waiters asleep on the condition variable start watching it. */
	pthread_cond_broadcast(&port->cond);
	if (port->polling) {
		uint64_t one = 1;
		(void)!write(port->wakefd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&port->lock);
	return ZHV_OK;
}

uint32_t port_doorbells(zhv_port_t *port)
{
	uint32_t n;

	pthread_mutex_lock(&port->lock);
	n = port->nbells;
	pthread_mutex_unlock(&port->lock);
	return n;
}
