/* virtio_net.c: virtio network device (virtio 1.2 §5.1) on a host TAP interface: a receive thread, transmit on notify. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <net/if.h>
#include <linux/if_tun.h>

#include "../devices.h"
#include "virtio_pci.h"
#include "thread.h"

/* clang-format off */
/* Feature bits (virtio 1.2 §5.1.3). No offloads, no control queue. */
#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16

/* Configuration (virtio 1.2 §5.1.4). */
#define NET_CFG_MAC        0 /* u8[6] */
#define NET_CFG_STATUS     6 /* le16 */
#define NET_CFG_MAX_PAIRS  8 /* le16, meaningful with VIRTIO_NET_F_MQ only */
#define NET_CFG_LEN        24 /* through supported_hash_types; 0 past max_pairs */
#define VIRTIO_NET_S_LINK_UP 1

/* struct virtio_net_hdr_v1 (virtio 1.2 §5.1.6): flags, gso_type, hdr_len,
 * gso_size, csum_start, csum_offset, num_buffers. Always 12 bytes with
 * VIRTIO_F_VERSION_1; the TAP device uses the same size (TUNSETVNETHDRSZ). */
#define NET_HDR_LEN           12
#define NET_HDR_NUM_BUFFERS   10

#define NET_RXQ         0
#define NET_TXQ         1
#define NET_QUEUE_SIZE  256
#define NET_MAX_PACKET  (NET_HDR_LEN + 65536) /* what one tap read can return */
/* clang-format on */

static const uint8_t net_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

struct virtio_net {
	struct virtio_pci vp;
	int tap_fd;
	int stop_fd;          /* eventfd: net_destroy wakes the receive thread's poll */
	pthread_t rx_thread;
	bool rx_started;
	bool stopping;        /* under vp.lock: the receive thread returns */
	/* With vp.lock: signalled when receive buffers may have arrived. */
	pthread_cond_t rx_cond;
	/* Under vp.lock. rx_kicks counts receive-queue notifications (new
	 * buffers), rx_resets device resets. */
	struct vq_chain rx_first, rx_next, tx_chain;
	unsigned rx_kicks, rx_resets;
	struct iovec tx_iov[1 + VQ_MAX_CHAIN];
	/* The receive thread's own. */
	uint8_t rx_packet[NET_MAX_PACKET];
};

/* The header we hand to the tap for every transmitted frame, and to the
 * guest for every received one: no checksum or GSO offload was negotiated,
 * so flags and gso_type must be 0 (§5.1.6.2.1, §5.1.6.4.1) whatever the
 * other side wrote. */
static uint8_t zero_hdr[NET_HDR_LEN];

/* ---- receive --------------------------------------------------------------- */

static bool rx_can_receive(struct virtio_net *n)
{
	struct vq *vq = virtio_pci_queue(&n->vp, NET_RXQ);

	return vq && vq_has_avail(vq);
}

/* Copy a frame from the tap (its 12-byte header included) into receive
 * buffers: one with VIRTIO_NET_F_MRG_RXBUF off, as many as it takes with
 * it on, all published at once with num_buffers in the first header
 * (§5.1.6.4). Returns false, taking no buffer, when the frame needs more
 * mergeable buffers than the guest has posted so far: the caller keeps it
 * until the driver adds some (as a frame waits in the tap while no buffer
 * is posted at all). Returns true when the frame is done with: delivered,
 * or dropped (device not running, buffer too small without MRG_RXBUF,
 * larger than the whole ring, broken ring). Lock held. */
static bool rx_deliver(struct virtio_net *n, const uint8_t *pkt, size_t len)
{
	struct virtio_pci *vp = &n->vp;
	struct vq *vq = virtio_pci_queue(vp, NET_RXQ);
	bool mrg = virtio_pci_has_feature(vp, VIRTIO_NET_F_MRG_RXBUF);
	const uint8_t *payload = pkt + NET_HDR_LEN;
	size_t plen, copied;
	uint8_t hdr[NET_HDR_LEN];
	uint16_t nbufs = 1;
	int r;

	if (!vq || len < NET_HDR_LEN)
		return true;
	plen = len - NET_HDR_LEN;
	r = vq_pop(vq, &n->rx_first);
	if (r == 0)
		return false; /* none posted (any more): wait for some */
	if (r < 0)
		goto pop_failed;
	if (n->rx_first.in_len < NET_HDR_LEN) {
		virtio_pci_device_error(vp, "receive buffer smaller than its header");
		return true;
	}
	copied = vq_iov_write(n->rx_first.iov + n->rx_first.nr_out, n->rx_first.nr_in,
	                      NET_HDR_LEN, payload, plen);
	vq_fill(vq, 0, n->rx_first.head, (uint32_t)(NET_HDR_LEN + copied));
	while (copied < plen) {
		struct vq_chain *c = &n->rx_next;
		size_t got;

		if (!mrg) {
			vq_unpop(vq, nbufs); /* frame larger than the buffer: drop */
			return true;
		}
		r = vq_pop(vq, c);
		if (r == 0) {
			/* Every posted buffer is taken and the frame is not
			 * in yet: give them back, and wait for more unless
			 * the whole ring was posted. */
			vq_unpop(vq, nbufs);
			return nbufs >= vq->size;
		}
		if (r < 0)
			goto pop_failed;
		got = vq_iov_write(c->iov + c->nr_out, c->nr_in, 0, payload + copied,
		                   plen - copied);
		if (got == 0) {
			virtio_pci_device_error(vp, "empty receive buffer");
			return true;
		}
		vq_fill(vq, nbufs, c->head, (uint32_t)got);
		nbufs++;
		copied += got;
	}
	memcpy(hdr, zero_hdr, sizeof(hdr));
	hdr[NET_HDR_NUM_BUFFERS] = (uint8_t)nbufs;
	hdr[NET_HDR_NUM_BUFFERS + 1] = (uint8_t)(nbufs >> 8);
	vq_iov_write(n->rx_first.iov + n->rx_first.nr_out, n->rx_first.nr_in, 0, hdr,
	             sizeof(hdr));
	vq_flush(vq, nbufs);
	virtio_pci_queue_interrupt(vp, NET_RXQ);
	return true;

pop_failed:
	virtio_pci_device_error(vp, "bad descriptor chain");
	return true;
}

/* The receive thread: wait for guest buffers, then for a frame on the tap,
 * then deliver it. Frames wait in the tap's queue (the kernel drops beyond
 * its length) while the guest has no buffers; a frame already read waits
 * in rx_packet while the guest has too few (until a notification brings
 * more; a device reset drops it). */
static void *rx_thread(void *arg)
{
	struct virtio_net *n = arg;
	size_t pending = 0; /* bytes of a frame in rx_packet waiting for buffers */
	unsigned kicks = 0, resets = 0;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = n->tap_fd, .events = POLLIN },
			{ .fd = n->stop_fd, .events = POLLIN },
		};
		ssize_t len;

		pthread_mutex_lock(&n->vp.lock);
		for (;;) {
			if (n->stopping) {
				pthread_mutex_unlock(&n->vp.lock);
				return NULL;
			}
			if (pending && n->rx_resets != resets)
				pending = 0; /* the driver reset the device */
			if (rx_can_receive(n) && (!pending || n->rx_kicks != kicks))
				break;
			pthread_cond_wait(&n->rx_cond, &n->vp.lock);
		}
		if (pending) {
			kicks = n->rx_kicks;
			if (rx_deliver(n, n->rx_packet, pending))
				pending = 0;
			pthread_mutex_unlock(&n->vp.lock);
			continue;
		}
		pthread_mutex_unlock(&n->vp.lock);

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			continue; /* net_destroy: the loop test returns */
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			errno = EIO;
			break;
		}
		len = read(n->tap_fd, n->rx_packet, sizeof(n->rx_packet));
		if (len < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			break;
		}
		pthread_mutex_lock(&n->vp.lock);
		kicks = n->rx_kicks;
		resets = n->rx_resets;
		if (!rx_deliver(n, n->rx_packet, (size_t)len))
			pending = (size_t)len;
		pthread_mutex_unlock(&n->vp.lock);
	}
	fprintf(stderr, "zhv: virtio-net: tap read failed (%s): receive stopped\n",
	        strerror(errno));
	return NULL;
}

/* ---- transmit -------------------------------------------------------------- */

static void net_transmit(struct virtio_net *n)
{
	struct virtio_pci *vp = &n->vp;
	struct vq *vq = virtio_pci_queue(vp, NET_TXQ);
	bool pushed = false;

	if (!vq)
		return;
	for (unsigned i = 0; i < vq->size; i++) {
		struct vq_chain *c = &n->tx_chain;
		unsigned cnt;
		int r = vq_pop(vq, c);

		if (r == 0)
			break;
		if (r < 0) {
			virtio_pci_device_error(vp, "bad descriptor chain");
			break;
		}
		/* Header then frame (§5.1.6.2); a chain too short for the
		 * header is dropped, and so is one longer than any frame the
		 * tap takes (no GSO offered: 64 KiB), so that one notify
		 * copies at most a ring of frames, and whatever the tap
		 * refuses. */
		if (c->out_len > NET_HDR_LEN && c->out_len <= NET_MAX_PACKET) {
			n->tx_iov[0].iov_base = zero_hdr;
			n->tx_iov[0].iov_len = NET_HDR_LEN;
			cnt = 1 + vq_iov_slice(c->iov, c->nr_out, NET_HDR_LEN, c->out_len - NET_HDR_LEN,
			                       n->tx_iov + 1, VQ_MAX_CHAIN, NULL);
			while (writev(n->tap_fd, n->tx_iov, (int)cnt) < 0 && errno == EINTR)
				;
		}
		vq_push(vq, c->head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_pci_queue_interrupt(vp, NET_TXQ);
}

static void net_queue_notify(struct virtio_pci *vp, unsigned q)
{
	struct virtio_net *n = vp->opaque;

	if (q == NET_RXQ) {
		n->rx_kicks++;
		pthread_cond_signal(&n->rx_cond);
	} else {
		net_transmit(n);
	}
}

static void net_reset(struct virtio_pci *vp)
{
	struct virtio_net *n = vp->opaque;

	n->rx_resets++;
}

/* vm_destroy: stop and join the receive thread (it leaves its condition
 * wait through (stopping) and its poll through (stop_fd)), close the tap. */
static void net_destroy(struct virtio_pci *vp)
{
	struct virtio_net *n = vp->opaque;
	uint64_t one = 1;

	pthread_mutex_lock(&vp->lock);
	n->stopping = true;
	pthread_cond_broadcast(&n->rx_cond);
	pthread_mutex_unlock(&vp->lock);
	if (n->rx_started) {
		while (write(n->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
		pthread_join(n->rx_thread, NULL);
	}
	close(n->stop_fd);
	close(n->tap_fd);
	pthread_cond_destroy(&n->rx_cond);
	virtio_pci_fini(vp);
	free(n);
}

/* Snapshot: a virtio-net device is backed by a TAP, whose host-side state
 * (the interface, packets in flight in the kernel) a snapshot cannot hold:
 * a machine with one is not saved. */
static int net_snap_save(struct virtio_pci *vp, struct snap_writer *w)
{
	(void)w;
	fprintf(stderr, "zhv: virtio-%s: a TAP network device cannot be saved in a snapshot\n",
	        vp->name);
	return -ENOTSUP;
}

static int net_snap_load(struct virtio_pci *vp, struct snap_reader *r, bool commit)
{
	(void)vp, (void)r, (void)commit;
	return -EINVAL; /* never saved: see net_snap_save */
}

static const struct virtio_dev_ops net_ops = {
	.queue_notify = net_queue_notify,
	.reset = net_reset,
	.destroy = net_destroy,
	.snap_save = net_snap_save,
	.snap_load = net_snap_load,
};

/* Open (name) (NULL or "": the kernel picks tapN) as a TAP interface with
 * 12-byte virtio headers and no offloads. Returns the fd or -errno. */
static int tap_open(const char *name)
{
	struct ifreq ifr;
	int fd, hdr_len = NET_HDR_LEN, r;

	memset(&ifr, 0, sizeof(ifr));
	if (name && strlen(name) >= IFNAMSIZ)
		return -EINVAL;
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (name)
		memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0 ||
	    ioctl(fd, TUNSETOFFLOAD, 0) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int virtio_net_create(struct vm *vm, const char *tap_name)
{
	uint8_t cfg[NET_CFG_LEN] = { 0 };
	struct virtio_pci_info info = {
		.name = "net",
		.device_type = VIRTIO_ID_NET,
		.class_code = 0x020000, /* network controller, Ethernet */
		.features = 1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_MRG_RXBUF |
		            1ull << VIRTIO_NET_F_STATUS,
		.num_queues = 2, /* receiveq1, transmitq1 (§5.1.2) */
		.queue_size = NET_QUEUE_SIZE,
		.config = cfg,
		.config_len = sizeof(cfg),
		.ops = &net_ops,
	};
	struct virtio_net *n;
	int fd, r;

	fd = tap_open(tap_name);
	if (fd < 0)
		return fd;
	n = calloc(1, sizeof(*n));
	if (!n) {
		r = -ENOMEM;
		goto err_close;
	}
	n->tap_fd = fd;
	n->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (n->stop_fd < 0) {
		r = -errno;
		goto err_free;
	}
	r = pthread_cond_init(&n->rx_cond, NULL);
	if (r) {
		r = -r;
		goto err_stop_fd;
	}
	memcpy(cfg + NET_CFG_MAC, net_mac, sizeof(net_mac));
	cfg[NET_CFG_STATUS] = VIRTIO_NET_S_LINK_UP;
	cfg[NET_CFG_MAX_PAIRS] = 1;
	info.opaque = n;
	r = virtio_pci_init(&n->vp, vm, &info);
	if (r < 0)
		goto err_cond;
	/* From here the machine owns the device: vm_destroy frees it (also
	 * when the thread cannot start). */
	r = vmm_thread_start(&n->rx_thread, 0, rx_thread, n);
	if (r < 0)
		return r;
	n->rx_started = true;
	return 0;

err_cond:
	pthread_cond_destroy(&n->rx_cond);
err_stop_fd:
	close(n->stop_fd);
err_free:
	free(n);
err_close:
	close(fd);
	return r;
}
