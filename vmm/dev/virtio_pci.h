/* virtio_pci.h: the virtio 1.x PCI transport (virtio 1.2 §4.1) shared by the virtio device models. */
#ifndef ZHV_VMM_VIRTIO_PCI_H
#define ZHV_VMM_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pci.h"
#include "virtqueue.h"
#include "zhv.h"

struct vm;
struct snap_writer;
struct snap_reader;

/* clang-format off */
/* Device status bits (virtio 1.2 §2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE   0x01u
#define VIRTIO_STATUS_DRIVER        0x02u
#define VIRTIO_STATUS_DRIVER_OK     0x04u
#define VIRTIO_STATUS_FEATURES_OK   0x08u
#define VIRTIO_STATUS_NEEDS_RESET   0x40u
#define VIRTIO_STATUS_FAILED        0x80u

/* Reserved feature bits (virtio 1.2 §6). */
#define VIRTIO_F_INDIRECT_DESC  28
#define VIRTIO_F_EVENT_IDX      29 /* never offered */
#define VIRTIO_F_VERSION_1      32

/* Device types (virtio 1.2 §5); PCI device ID = 0x1040 + type (§4.1.2). */
#define VIRTIO_ID_NET      1
#define VIRTIO_ID_BLOCK    2
#define VIRTIO_ID_CONSOLE  3
#define VIRTIO_ID_RNG      4

#define VIRTIO_PCI_MAX_QUEUES   8
#define VIRTIO_PCI_MAX_VECTORS  (VIRTIO_PCI_MAX_QUEUES + 1)
#define VIRTIO_PCI_CONFIG_MAX   256 /* bytes of device-specific config */
#define VIRTIO_MSI_NO_VECTOR    0xffffu /* virtio 1.2 §4.1.5.1.2 */

/* Layout of the one memory BAR (BAR0, 32-bit, 16 KiB). */
#define VIRTIO_PCI_BAR           0
#define VIRTIO_PCI_BAR_SIZE      0x4000u
#define VIRTIO_PCI_COMMON_OFF    0x0000u
#define VIRTIO_PCI_COMMON_LEN    0x0040u
#define VIRTIO_PCI_ISR_OFF       0x0800u
#define VIRTIO_PCI_ISR_LEN       0x0004u
#define VIRTIO_PCI_DEVICE_OFF    0x1000u
#define VIRTIO_PCI_NOTIFY_MULT   4u
/* The doorbells (notify region) have a BAR of their own, one page, that
 * pci.c puts in its doorbell window: a libzhv BELL trap covers it. */
#define VIRTIO_PCI_NOTIFY_BAR    2
#define VIRTIO_PCI_NOTIFY_OFF    0x0000u
#define VIRTIO_PCI_MSIX_TBL_OFF  0x3000u
#define VIRTIO_PCI_MSIX_PBA_OFF  0x3800u
/* clang-format on */

struct virtio_pci;

/* What a device model plugs into the transport. Every hook runs with the
 * device's lock (virtio_pci.lock) held.
 *
 * Doorbells: the notify region is a BELL trap delivering to the device's
 * port (virtio_pci.port); the device's own thread ("virtio-<name>") waits
 * on that port and calls queue_notify, so the vCPU that rang goes on
 * running the guest while the device serves the queue. queue_notify thus
 * runs on the device thread, never on a vCPU thread. */
struct virtio_dev_ops {
	/* Buffers may be waiting on queue (q): the driver notified it, or
	 * DRIVER_OK was just set (then every enabled queue gets a call). Only
	 * called while virtio_pci_running(). */
	void (*queue_notify)(struct virtio_pci *vp, unsigned q);
	/* The driver reset the device (status 0); the transport has already
	 * reset its queues and interrupt state. Optional. */
	void (*reset)(struct virtio_pci *vp);
	/* The machine is being destroyed (vm_destroy; no vCPU runs): stop the
	 * model's threads, close its files, call virtio_pci_fini(vp) and free
	 * the memory that holds (vp). Required. Called without the lock, once,
	 * for a device virtio_pci_init() accepted. */
	void (*destroy)(struct virtio_pci *vp);
	/* Snapshot (vmm/snapshot.h), optional: the model's own state, which
	 * follows the transport's in the device's section. snap_save appends
	 * it; returns 0, -EBUSY (not now: work in flight) or -ENOTSUP (never,
	 * e.g. a TAP), having said why on stderr for -ENOTSUP. snap_load reads
	 * it: with (commit) false it only checks it; with (commit) true (the
	 * same bytes, after a check passed) it takes it. Returns 0 or -EINVAL.
	 * Both with the lock held. Without them the model has no state of its
	 * own. */
	int (*snap_save)(struct virtio_pci *vp, struct snap_writer *w);
	int (*snap_load)(struct virtio_pci *vp, struct snap_reader *r, bool commit);
};

/* How a device model describes itself to virtio_pci_init(). */
struct virtio_pci_info {
	const char *name;          /* "blk", "net", ...: for error messages */
	uint16_t device_type;      /* VIRTIO_ID_* */
	uint32_t class_code;       /* PCI class << 16 | subclass << 8 | prog-if */
	uint64_t features;         /* offered; VERSION_1 and INDIRECT_DESC added */
	unsigned num_queues;       /* 1 .. VIRTIO_PCI_MAX_QUEUES */
	uint16_t queue_size;       /* power of 2, at most VQ_MAX_SIZE */
	const void *config;        /* device-specific config (§4.1.4.6) */
	size_t config_len;         /* at most VIRTIO_PCI_CONFIG_MAX */
	const struct virtio_dev_ops *ops;
	void *opaque;              /* the device model's state */
};

/* One MSI-X table entry (PCI Local Bus 3.0 §6.8.2.6). */
struct virtio_msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

/* The transport state of one virtio PCI function. Device models embed it
 * in their state. (lock) guards everything here and the device model's
 * own queue processing: vCPU threads enter through BAR and config-space
 * accesses concurrently, device threads (network receive, console input)
 * take it before touching a queue. */
struct virtio_pci {
	struct pci_device pci;
	struct vm *vm;
	pthread_mutex_t lock;
	const char *name;
	const struct virtio_dev_ops *ops;
	void *opaque;
	uint16_t device_type;
	uint32_t class_code;

	/* Common configuration (virtio 1.2 §4.1.4.3). */
	uint64_t device_features;
	uint64_t driver_features;
	uint32_t device_feature_sel;
	uint32_t driver_feature_sel;
	uint16_t config_vector;
	uint16_t queue_sel;
	uint8_t status;
	uint8_t config_generation;
	uint8_t isr;                  /* §4.1.4.5: bit 0 queue, bit 1 config */
	bool intx_level;              /* what we last drove on the INTx line */
	bool error_logged;

	unsigned num_queues;
	struct vq queues[VIRTIO_PCI_MAX_QUEUES];
	uint16_t queue_vector[VIRTIO_PCI_MAX_QUEUES];

	uint8_t config[VIRTIO_PCI_CONFIG_MAX];
	uint32_t config_len;

	/* MSI-X (cached from config space by the config_write hook). */
	unsigned nvectors;
	bool msix_enabled;
	bool msix_func_masked;
	uint32_t msix_pending;        /* PBA bits */
	struct virtio_msix_entry msix[VIRTIO_PCI_MAX_VECTORS];

	/* The device thread and its doorbells. */
	zhv_port_t *port;             /* BELL packets and the VMM's own notifications */
	uint64_t bell_gpa;            /* where the BELL trap is (0: none) */
	pthread_t thread;
	bool thread_started;
	bool stopping;                /* virtio_pci_stop: no more user packets */
	uint32_t notify_pending;      /* queues to serve, sent as one user packet */
	uint64_t notifies;            /* queue_notify calls made (on the device thread) */
};

/* virtio_pci_init: set up (vp) from (info) (config space with the virtio
 * capabilities and MSI-X, BAR0, queues) and put it on the PCI bus with
 * pci_add(). Registers the device's snapshot section, "virtio-<name><n>"
 * (n: 0 for the first device of that name, in creation order). (vp) stays allocated until vm_destroy() calls the model's
 * destroy hook. Returns 0 or -errno (then the caller frees (vp); a device
 * already on the PCI bus stays there, unused, until vm_destroy()). */
int virtio_pci_init(struct virtio_pci *vp, struct vm *vm, const struct virtio_pci_info *info);

/* virtio_pci_stop: stop and join the device thread (no queue_notify call
 * runs after it returns). vm_destroy's teardown calls it before the model's
 * destroy hook; idempotent. Called without the lock. */
void virtio_pci_stop(struct virtio_pci *vp);

/* virtio_pci_fini: release the transport's own state (its lock); the
 * last step of a device model's destroy hook before it frees (vp). */
void virtio_pci_fini(struct virtio_pci *vp);

/* The rest is for device models, with (vp)->lock held. */

/* virtio_pci_running: DRIVER_OK set and no DEVICE_NEEDS_RESET: the
 * device may consume buffers (virtio 1.2 §2.1.2, §3.1.2). */
bool virtio_pci_running(const struct virtio_pci *vp);
/* virtio_pci_queue: queue (q) if it is enabled and the device running,
 * else NULL. */
struct vq *virtio_pci_queue(struct virtio_pci *vp, unsigned q);
/* virtio_pci_notify_thread: have the device thread call queue_notify for
 * each queue in (mask) (bit q: queue q), as a doorbell would: after a
 * restore, or a doorbell reaching the device through the MEM trap. */
void virtio_pci_notify_thread(struct virtio_pci *vp, uint32_t mask);
/* virtio_pci_serve_pending: serve, on this thread, the notifications
 * recorded for the device thread (vm.no_device_threads: a harness). */
void virtio_pci_serve_pending(struct virtio_pci *vp);
/* virtio_pci_on_device_thread: whether the caller is (vp)'s device thread. */
bool virtio_pci_on_device_thread(const struct virtio_pci *vp);
/* virtio_pci_has_feature: feature (bit) offered and accepted. */
bool virtio_pci_has_feature(const struct virtio_pci *vp, unsigned bit);
/* virtio_pci_queue_interrupt: send the used-buffer notification of queue
 * (q) if the driver wants one (vq_notify_needed), by MSI-X or INTx. */
void virtio_pci_queue_interrupt(struct virtio_pci *vp, unsigned q);
/* virtio_pci_device_error: the driver broke the protocol (vq_pop failed,
 * a malformed request): set DEVICE_NEEDS_RESET, stop processing and send
 * a configuration change notification (virtio 1.2 §2.1.2). (why) is
 * logged once per device. */
void virtio_pci_device_error(struct virtio_pci *vp, const char *why);

/* virtio_console_input: feed (len) bytes typed on the host to the virtio
 * console (dev/virtio_console.c; the last one virtio_console_create made).
 * Bytes wait in a 4 KiB buffer until the guest posts receive buffers and
 * are dropped when it is full or no console exists. Any thread (the VMM's
 * console input thread, beside uart16550_input). */
void virtio_console_input(const uint8_t *buf, size_t len);

#endif /* ZHV_VMM_VIRTIO_PCI_H */
