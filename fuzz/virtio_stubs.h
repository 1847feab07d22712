/* virtio_stubs.h: what vmm/dev/virtio_pci.c and virtio_blk.c call of libzhv and
 * vm.c, for targets that compile them in without libzhv. The targets set
 * vm.no_device_threads: no port, trap or device thread is made, and the
 * target serves notifications itself (virtio_pci_serve_pending). */
#ifndef ZHV_FUZZ_VIRTIO_STUBS_H
#define ZHV_FUZZ_VIRTIO_STUBS_H

zhv_status_t zhv_port_create(uint32_t max_user_packets, zhv_port_t **port)
{
	(void)max_user_packets, (void)port;
	abort(); /* never: no_device_threads */
}

void zhv_port_destroy(zhv_port_t *port)
{
	if (port)
		abort();
}

zhv_status_t zhv_port_queue(zhv_port_t *port, const zhv_packet_t *packet)
{
	(void)port, (void)packet;
	abort();
}

zhv_status_t zhv_port_wait(zhv_port_t *port, zhv_time_t deadline, zhv_packet_t *packet)
{
	(void)port, (void)deadline, (void)packet;
	abort();
}

zhv_status_t zhv_guest_set_trap(zhv_guest_t *guest, uint32_t kind, uint64_t addr, uint64_t size,
                                zhv_port_t *port, uint64_t key)
{
	(void)guest, (void)kind, (void)addr, (void)size, (void)port, (void)key;
	abort();
}

const char *zhv_status_string(zhv_status_t status)
{
	(void)status;
	return "?";
}

void vm_device_work_begin(struct vm *vm)
{
	(void)vm;
}

void vm_device_work_end(struct vm *vm)
{
	(void)vm;
}

void vm_device_io_add(struct vm *vm, int n)
{
	(void)vm, (void)n;
}

#endif
