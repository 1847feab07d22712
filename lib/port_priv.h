/* port_priv.h: what traps need from ports (internal). */
#ifndef ZHV_PORT_PRIV_H
#define ZHV_PORT_PRIV_H

#include <stdint.h>

#include "zhv.h"

#define PORT_ARENA_PACKETS 256u

/* A trap's arena of preallocated packets (Zircon: 256 per trap). Trap
 * packets never count against the port's user-packet limit. */
struct port_arena;

/* port_ref / port_unref: reference counting; zhv_port_destroy drops the
 * owner's reference and closes the port; the memory goes with the last. */
void port_ref(zhv_port_t *port);
void port_unref(zhv_port_t *port);

/* port_arena_create: an arena of PORT_ARENA_PACKETS packets for (port).
 * The arena takes no port reference: its owner (the trap) holds one for as
 * long as the arena exists. Returns NULL on allocation failure. */
struct port_arena *port_arena_create(zhv_port_t *port);

/* port_arena_destroy: remove the arena's packets still queued on its port
 * (user packets with the same key stay) and free it. No thread may be in
 * port_queue_trap_packet() on (arena) (the guest's vCPUs are gone by then).
 * NULL is a no-op. */
void port_arena_destroy(struct port_arena *arena);

/* port_queue_trap_packet: queue (packet) from (arena) on its port. If all
 * the arena's packets are in flight, wait until one is dequeued. Returns
 * ZHV_OK, or BAD_STATE if the port has been closed by zhv_port_destroy. */
zhv_status_t port_queue_trap_packet(struct port_arena *arena, const zhv_packet_t *packet);

/* port_arena_in_flight: how many of the arena's packets are queued (not yet
 * dequeued). port_arena_waiters: how many threads are blocked in
 * port_queue_trap_packet() on it. Snapshots, for diagnostics and tests. */
uint32_t port_arena_in_flight(struct port_arena *arena);
uint32_t port_arena_waiters(struct port_arena *arena);

/* Doorbells: BELL trap addresses that KVM signals through ioeventfds, so
 * that the guest's write never leaves the kernel.
 *
 * port_arena_bind: the VM (vm_fd) doorbells of (arena) are registered
 * with, the trap's (key), and the guest's bell_packets counter (may be
 * NULL). Before port_arena_add_doorbell.
 *
 * port_arena_add_doorbell: create an eventfd, register it with KVM as an
 * MMIO ioeventfd on exactly (addr), any length, no data match, and attach
 * it to the arena's port: from then on a guest write there is counted by
 * KVM and becomes a BELL packet {key, addr} when a zhv_port_wait() caller
 * drains it (one packet per write; at most the arena's 256 in flight, the
 * rest stays counted until nodes come back). Returns ZHV_OK, BAD_STATE
 * (the port is closed), ALREADY_EXISTS (KVM has that address), NO_RESOURCES
 * (out of fds or of KVM's MMIO bus slots), NOT_SUPPORTED or NO_MEMORY.
 * Doorbells go with the arena (port_arena_destroy) or when the port is
 * closed (zhv_port_destroy deregisters them, so later writes take the
 * exit path and see the closed port). Any thread. */
void port_arena_bind(struct port_arena *arena, int vm_fd, uint64_t key,
                     _Atomic uint64_t *bell_stat);
zhv_status_t port_arena_add_doorbell(struct port_arena *arena, uint64_t addr);

/* port_doorbells: how many doorbells are attached to (port) (tests). */
uint32_t port_doorbells(zhv_port_t *port);

#endif /* ZHV_PORT_PRIV_H */
