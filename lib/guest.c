/* guest.c: guests (KVM VMs), their address space calls, traps and stats. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "port_priv.h"
#include "zhv_priv.h"

static zhv_status_t enable_cap(int vm_fd, uint32_t cap, uint64_t arg0, const char *name)
{
	struct kvm_enable_cap c = {.cap = cap, .args = {arg0}};
	int e = zhv_ioctl(vm_fd, KVM_ENABLE_CAP, &c);
	if (e < 0) {
		zhv_log(ZHV_LOG_ERROR, "KVM_ENABLE_CAP(%s): %s", name, strerror(-e));
		return ZHV_ERR_NOT_SUPPORTED;
	}
	return ZHV_OK;
}

/* memory.c's hook around a multi-ioctl slot change (DESIGN decision 9). */
static void memory_hold_vcpus(void *opaque, bool hold)
{
	if (hold)
		guest_hold_vcpus(opaque);
	else
		guest_release_vcpus(opaque);
}

static zhv_status_t vm_setup(zhv_guest_t *g)
{
	g->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (g->kvm_fd < 0)
		return ZHV_ERR_NOT_SUPPORTED;
	if (zhv_ioctl(g->kvm_fd, KVM_GET_API_VERSION, NULL) != KVM_API_VERSION)
		return ZHV_ERR_NOT_SUPPORTED;
	int sz = zhv_ioctl(g->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL);
	if (sz <= 0)
		return ZHV_ERR_NOT_SUPPORTED;
	g->run_size = (size_t)sz;

	int fd;
	do
		fd = ioctl(g->kvm_fd, KVM_CREATE_VM, 0);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		zhv_log(ZHV_LOG_ERROR, "KVM_CREATE_VM: %s", strerror(errno));
		return zhv_status_from_errno(errno);
	}
	g->vm_fd = fd;

	zhv_status_t st = enable_cap(fd, KVM_CAP_SPLIT_IRQCHIP, SPLIT_IRQCHIP_PINS, "SPLIT_IRQCHIP");
	if (st == ZHV_OK)
		st = enable_cap(fd, KVM_CAP_X2APIC_API,
		                KVM_X2APIC_API_USE_32BIT_IDS |
		                        KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK,
		                "X2APIC_API");
	/* MSRs KVM does not know come to us (msr.c), where Zircon's policy
	 * answers or the guest gets #GP. */
	if (st == ZHV_OK)
		st = enable_cap(fd, KVM_CAP_X86_USER_SPACE_MSR,
		                KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_FILTER,
		                "X86_USER_SPACE_MSR");
	return st;
}

zhv_status_t zhv_guest_create(const zhv_guest_config_t *config, zhv_guest_t **out)
{
	if (!out || (config && config->options != 0))
		return ZHV_ERR_INVALID_ARGS;

	zhv_guest_t *g = calloc(1, sizeof(*g));
	if (!g)
		return ZHV_ERR_NO_MEMORY;
	g->kvm_fd = g->vm_fd = -1;
	atomic_init(&g->refs, 1);
	pthread_mutex_init(&g->vcpu_lock, NULL);
	pthread_mutex_init(&g->route_lock, NULL);
	pthread_mutex_init(&g->gate_lock, NULL);
	pthread_mutex_init(&g->bell_lock, NULL);
	pthread_cond_init(&g->gate_cond, NULL);
	trap_map_init(&g->traps);

	zhv_status_t st = vm_setup(g);
	if (st != ZHV_OK)
		goto err;

	int max = zhv_ioctl(g->kvm_fd, KVM_CHECK_EXTENSION, (void *)(uintptr_t)KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = zhv_ioctl(g->kvm_fd, KVM_CHECK_EXTENSION, (void *)(uintptr_t)KVM_CAP_NR_VCPUS);
	if (max <= 0)
		max = 1;
	g->max_vcpus = (uint32_t)max;
	/* BELL doorbells on ioeventfds need wildcard-length matching: a
	 * doorbell is rung by a write of any size. ZHV_BELL_EVENTFD=0 turns
	 * them off (every BELL write exits, as before). */
	const char *bell_env = getenv("ZHV_BELL_EVENTFD");
	bool bell_fast =
		zhv_ioctl(g->kvm_fd, KVM_CHECK_EXTENSION, (void *)(uintptr_t)KVM_CAP_IOEVENTFD) > 0 &&
		zhv_ioctl(g->kvm_fd, KVM_CHECK_EXTENSION,
		          (void *)(uintptr_t)KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0 &&
		!(bell_env && strcmp(bell_env, "0") == 0);
	atomic_init(&g->bell_fast, bell_fast);
	if (config && config->max_vcpus && config->max_vcpus < g->max_vcpus)
		g->max_vcpus = config->max_vcpus;

	int slots = zhv_ioctl(g->kvm_fd, KVM_CHECK_EXTENSION, (void *)(uintptr_t)KVM_CAP_NR_MEMSLOTS);
	if (slots <= 0)
		slots = 32;
	st = memory_init(&g->mem, g->vm_fd, (uint32_t)slots);
	if (st != ZHV_OK)
		goto err;
	g->mem.hold = memory_hold_vcpus;
	g->mem.hold_opaque = g;
	st = id_alloc_init(&g->ids, 1, g->max_vcpus + 1);
	if (st != ZHV_OK)
		goto err_mem;
	g->kvm_vcpus = calloc(g->max_vcpus, sizeof(*g->kvm_vcpus));
	if (!g->kvm_vcpus) {
		st = ZHV_ERR_NO_MEMORY;
		goto err_ids;
	}
	st = cpuid_build_policy(g->kvm_fd, &g->cpuid);
	if (st != ZHV_OK)
		goto err_vcpus;
	g->xcr0 = cpuid_xcr0_supported(g->cpuid) & 0x7; /* x87 | SSE | AVX, as Zircon */
	*out = g;
	return ZHV_OK;

err_vcpus:
	free(g->kvm_vcpus);
err_ids:
	id_alloc_destroy(&g->ids);
err_mem:
	memory_destroy(&g->mem);
err:
	if (g->vm_fd >= 0)
		close(g->vm_fd);
	if (g->kvm_fd >= 0)
		close(g->kvm_fd);
	trap_map_destroy(&g->traps);
	pthread_cond_destroy(&g->gate_cond);
	pthread_mutex_destroy(&g->gate_lock);
	pthread_mutex_destroy(&g->bell_lock);
	pthread_mutex_destroy(&g->route_lock);
	pthread_mutex_destroy(&g->vcpu_lock);
	free(g);
	return st;
}

void guest_ref(zhv_guest_t *g)
{
	atomic_fetch_add(&g->refs, 1);
}

void guest_unref(zhv_guest_t *g)
{
	if (atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	/* Traps cancel their own queued packets first (spec 1.3). */
	trap_map_release_ports(&g->traps);
	trap_map_destroy(&g->traps);
	for (uint32_t i = 0; i < g->max_vcpus; i++) {
		struct kvm_vcpu_slot *s = g->kvm_vcpus[i];
		if (!s)
			continue;
		if (s->run)
			munmap(s->run, g->run_size);
		close(s->fd);
		free(s->obj);
		free(s);
	}
	free(g->kvm_vcpus);
	close(g->vm_fd);
	close(g->kvm_fd);
	memory_destroy(&g->mem);
	id_alloc_destroy(&g->ids);
	free(g->cpuid);
	pthread_cond_destroy(&g->gate_cond);
	pthread_mutex_destroy(&g->gate_lock);
	pthread_mutex_destroy(&g->bell_lock);
	pthread_mutex_destroy(&g->route_lock);
	pthread_mutex_destroy(&g->vcpu_lock);
	free(g);
}

void zhv_guest_destroy(zhv_guest_t *g)
{
	if (g)
		guest_unref(g);
}

zhv_status_t zhv_guest_map(zhv_guest_t *g, uint64_t gpa, void *host, uint64_t size, uint32_t flags)
{
	if (!g)
		return ZHV_ERR_INVALID_ARGS;
	if (flags & ZHV_MAP_CACHE_MASK)
		return ZHV_ERR_NOT_SUPPORTED; /* KVM maps RAM write-back only (zhv.h) */
	return memory_map(&g->mem, gpa, host, size, flags);
}

zhv_status_t zhv_guest_unmap(zhv_guest_t *g, uint64_t gpa, uint64_t size)
{
	if (!g)
		return ZHV_ERR_INVALID_ARGS;
	return memory_unmap(&g->mem, gpa, size);
}

zhv_status_t zhv_guest_protect(zhv_guest_t *g, uint64_t gpa, uint64_t size, uint32_t flags)
{
	if (!g)
		return ZHV_ERR_INVALID_ARGS;
	return memory_protect(&g->mem, gpa, size, flags);
}

zhv_status_t zhv_guest_query(zhv_guest_t *g, uint64_t gpa, uint32_t *flags)
{
	if (!g || !flags)
		return ZHV_ERR_INVALID_ARGS;
	uint32_t f;
	if (!memory_lookup(&g->mem, gpa & ~(ZHV_PAGE_SIZE - 1), 1, &f))
		return ZHV_ERR_NOT_FOUND;
	*flags = f;
	return ZHV_OK;
}

zhv_status_t zhv_guest_host_addr(zhv_guest_t *g, uint64_t gpa, uint64_t len, void **host)
{
	if (!g || !host || len == 0 || gpa + len < gpa)
		return ZHV_ERR_INVALID_ARGS;
	void *p = memory_lookup(&g->mem, gpa, len, NULL);
	if (!p)
		return ZHV_ERR_NOT_FOUND;
	*host = p;
	return ZHV_OK;
}

zhv_status_t zhv_guest_set_trap(zhv_guest_t *g, uint32_t kind, uint64_t addr, uint64_t size,
                                zhv_port_t *port, uint64_t key)
{
	if (!g)
		return ZHV_ERR_INVALID_ARGS;
	switch (kind) {
	case ZHV_TRAP_MEM:
		if (port)
			return ZHV_ERR_INVALID_ARGS;
		break;
	case ZHV_TRAP_BELL:
		if (!port)
			return ZHV_ERR_INVALID_ARGS;
		break;
	case ZHV_TRAP_IO:
		if (port)
			return ZHV_ERR_INVALID_ARGS;
		return trap_map_insert(&g->traps, kind, addr, size, NULL, key);
	default:
		return ZHV_ERR_INVALID_ARGS;
	}
	if ((addr | size) & (ZHV_PAGE_SIZE - 1))
		return ZHV_ERR_INVALID_ARGS;
	/* As in Zircon, RAM under the range goes first, even if the insertion
	 * then fails (spec 1.3 step 4). */
	zhv_status_t st = memory_unmap(&g->mem, addr, size);
	if (st != ZHV_OK)
		return st;
	st = trap_map_insert(&g->traps, kind, addr, size, port, key);
	if (st == ZHV_OK && kind == ZHV_TRAP_MEM)
		__atomic_store_n(&g->sync_regs, true, __ATOMIC_RELAXED);
	if (st == ZHV_OK && kind == ZHV_TRAP_BELL) {
		const struct trap *t = trap_map_find(&g->traps, ZHV_TRAP_MEM, addr);
		port_arena_bind(t->arena, g->vm_fd, key, &g->stats.bell_packets);
		/* The trap's first address rings without an exit from the
		 * start; the others get theirs at their first write. */
		guest_bell_attach(g, t, addr);
	}
	return st;
}

void guest_bell_attach(zhv_guest_t *g, const struct trap *t, uint64_t addr)
{
	if (!atomic_load_explicit(&g->bell_fast, memory_order_relaxed) ||
	    atomic_load_explicit(&g->bell_count, memory_order_relaxed) >=
	                             ZHV_GUEST_MAX_DOORBELLS)
		return;
	pthread_mutex_lock(&g->bell_lock);
	uint32_t n = atomic_load_explicit(&g->bell_count, memory_order_relaxed);
	bool known = false;
	for (uint32_t i = 0; i < n && !known; i++)
		known = g->bell_addrs[i] == addr;
	if (atomic_load_explicit(&g->bell_fast, memory_order_relaxed) && !known && n < ZHV_GUEST_MAX_DOORBELLS) {
		zhv_status_t st = port_arena_add_doorbell(t->arena, addr);
		if (st == ZHV_OK) {
			g->bell_addrs[n] = addr;
			atomic_store_explicit(&g->bell_count, n + 1, memory_order_relaxed);
		} else if (st != ZHV_ERR_BAD_STATE) {
			/* KVM (or the process) is out of room: the exit path
			 * serves every doorbell from now on. */
			zhv_log(ZHV_LOG_WARN,
			        "BELL doorbell %#llx: no ioeventfd (%s); BELL writes exit from now on",
			        (unsigned long long)addr, zhv_status_string(st));
			atomic_store_explicit(&g->bell_fast, false, memory_order_relaxed);
		}
	}
	pthread_mutex_unlock(&g->bell_lock);
}

zhv_status_t zhv_guest_get_stats(zhv_guest_t *g, zhv_guest_stats_t *s)
{
	if (!g || !s)
		return ZHV_ERR_INVALID_ARGS;
#define LOAD(f) s->f = atomic_load_explicit(&g->stats.f, memory_order_relaxed)
	LOAD(vm_entries);
	LOAD(vm_exits);
	LOAD(interrupts);
	LOAD(kicks);
	LOAD(signal_exits);
	LOAD(io_exits);
	LOAD(mmio_exits);
	LOAD(bell_packets);
	LOAD(rdmsr_exits);
	LOAD(wrmsr_exits);
	LOAD(msr_gp_injected);
	LOAD(hlt_exits);
	LOAD(shutdown_exits);
	LOAD(emulation_failures);
	LOAD(emulated_by_libzhv);
	LOAD(other_exits);
	LOAD(eoi_exits);
#undef LOAD
	return ZHV_OK;
}

/* An MSI address as zhv.h describes it: 0xFEE in bits 31:20; with 32-bit
 * x2APIC IDs (KVM_X2APIC_API_USE_32BIT_IDS) destination bits 31:8 in
 * bits 63:40, and bits 39:32 zero (KVM refuses anything else there). */
static bool msi_address_ok(uint64_t address)
{
	return ((uint32_t)address >> 20) == 0xfee && ((address >> 32) & 0xff) == 0;
}

zhv_status_t zhv_guest_signal_msi(zhv_guest_t *g, uint64_t address, uint32_t data)
{
	if (!g || !msi_address_ok(address))
		return ZHV_ERR_INVALID_ARGS;
	struct kvm_msi msi = {
		.address_lo = (uint32_t)address,
		.address_hi = (uint32_t)(address >> 32),
		.data = data,
	};
	STAT_INC(g, interrupts);
	int r = zhv_ioctl(g->vm_fd, KVM_SIGNAL_MSI, &msi);
	/* KVM returns the number of APICs that took it, or -1 (EPERM) when
	 * none did: a message nobody accepts is dropped, as on hardware. */
	if (r == -EPERM)
		return ZHV_OK;
	return r < 0 ? zhv_status_from_errno(r) : ZHV_OK;
}

/* KVM's GSI routing table for split irqchip: one MSI route per enabled pin,
 * GSI = pin. KVM (kvm_scan_ioapic_routes) walks the routes of GSIs below
 * the reserved pin count and, for those with level trigger mode (MSI data
 * bit 15), marks the vector in the ioapic_handled_vectors bitmap of every
 * vCPU the destination matches; an EOI of a marked vector then exits with
 * KVM_EXIT_IOAPIC_EOI (x86/exit.c: ZHV_PKT_TYPE_GUEST_EOI). Nothing is ever
 * delivered through these routes (libzhv sends MSIs with KVM_SIGNAL_MSI). */
zhv_status_t zhv_guest_set_irq_route(zhv_guest_t *g, uint32_t pin, uint64_t address,
                                     uint32_t data, bool enabled)
{
	if (!g || pin >= SPLIT_IRQCHIP_PINS || (enabled && !msi_address_ok(address)))
		return ZHV_ERR_INVALID_ARGS;
	union {
		struct kvm_irq_routing hdr;
		uint8_t bytes[sizeof(struct kvm_irq_routing) +
		              SPLIT_IRQCHIP_PINS * sizeof(struct kvm_irq_routing_entry)];
	} table;
	memset(&table, 0, sizeof(table));

	pthread_mutex_lock(&g->route_lock);
	struct irq_route routes[SPLIT_IRQCHIP_PINS];
	memcpy(routes, g->routes, sizeof(routes));
	routes[pin] = (struct irq_route){enabled, enabled ? address : 0, enabled ? data : 0};
	uint32_t n = 0;
	for (uint32_t i = 0; i < SPLIT_IRQCHIP_PINS; i++) {
		if (!routes[i].enabled)
			continue;
		struct kvm_irq_routing_entry *e = &table.hdr.entries[n++];
		e->gsi = i;
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = (uint32_t)routes[i].address;
		e->u.msi.address_hi = (uint32_t)(routes[i].address >> 32);
		e->u.msi.data = routes[i].data;
	}
	table.hdr.nr = n;
	int r = zhv_ioctl(g->vm_fd, KVM_SET_GSI_ROUTING, &table.hdr);
	if (r == 0)
		memcpy(g->routes, routes, sizeof(routes));
	pthread_mutex_unlock(&g->route_lock);
	if (r < 0) {
		zhv_log(ZHV_LOG_ERROR, "KVM_SET_GSI_ROUTING (pin %u, %u routes): %s", pin, n,
		        strerror(-r));
		return ZHV_ERR_IO;
	}
	return ZHV_OK;
}
