/* virtio_net.c: libFuzzer target of the virtio network device
 * (vmm/dev/virtio_net.c) behind the virtio PCI transport
 * (fuzz/virtio_dev.h describes the input): transmit on notify, and
 * receive (event: a frame of (value & 0xffff) bytes, header included, of
 * a fixed pattern, delivered as the receive thread does). The TAP device
 * is /dev/null and the receive thread is not started: the device's own
 * code is compiled here with open, ioctl and pthread_create/detach/join
 * redirected. */
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include "virtio_dev.h"

static int fake_tap_open(const char *path, int flags)
{
	(void)path;
	return open("/dev/null", flags);
}

static int fake_ioctl(int fd, unsigned long req, ...)
{
	(void)fd, (void)req;
	return 0;
}

static int fake_thread_start(pthread_t *t, size_t stack, void *(*fn)(void *), void *arg)
{
	(void)stack, (void)fn, (void)arg;
	memset(t, 0, sizeof(*t));
	return 0;
}

#define open(path, flags) fake_tap_open(path, flags)
#define ioctl fake_ioctl
#include "thread.h"
#define vmm_thread_start fake_thread_start
#define pthread_detach(t) ((void)(t), 0)
#define pthread_join(t, r) ((void)(t), (void)(r), 0)
#include "../vmm/dev/virtio_net.c"
#undef open
#undef ioctl
#undef vmm_thread_start
#undef pthread_detach
#undef pthread_join

static int fuzz_dev_create(uint8_t flags)
{
	(void)flags;
	return virtio_net_create(&fuzz_vm, "fuzz0");
}

static void fuzz_dev_event(uint8_t size, uint16_t offset, uint32_t value)
{
	struct virtio_pci *vp = fuzz_dev->opaque;
	struct virtio_net *n = vp->opaque;
	static uint8_t frame[NET_MAX_PACKET];
	static bool filled;
	size_t len = value & 0xffff;

	/* What the frame holds does not matter to the device: a fixed pattern
	 * (filling it for each input would cost more than the device). */
	(void)size, (void)offset;
	if (!filled) {
		for (size_t i = 0; i < sizeof(frame); i++)
			frame[i] = (uint8_t)(i * 7);
		filled = true;
	}
	pthread_mutex_lock(&vp->lock);
	rx_deliver(n, frame, len);
	pthread_mutex_unlock(&vp->lock);
}
