/* port.c: ports, FIFO queues of user and trap packets (Zircon's PortDispatcher). */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

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

struct port_arena {
	zhv_port_t *port;
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
	atomic_init(&p->refs, 1);
	*port = p;
	return ZHV_OK;
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
	while (!port->head) {
		/* The queue is checked before the deadline, so a deadline in
		 * the past (0 included) polls, and a waiter that timed out
		 * just as a packet arrived still takes it. */
		if (deadline <= 0 || (deadline != ZHV_TIME_INFINITE &&
				      zhv_clock_monotonic() >= deadline)) {
			pthread_mutex_unlock(&port->lock);
			return ZHV_ERR_TIMED_OUT;
		}
		if (deadline == ZHV_TIME_INFINITE)
			pthread_cond_wait(&port->cond, &port->lock);
		else
			pthread_cond_timedwait(&port->cond, &port->lock, &ts);
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

	if (arena->prev)
		arena->prev->next = arena->next;
	else
		port->arenas = arena->next;
	if (arena->next)
		arena->next->prev = arena->prev;
	pthread_mutex_unlock(&port->lock);

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
