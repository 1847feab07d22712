/* dev_hvc.c: the virtio console (zhv run --console virtio, Linux's hvc0)
 * from the guest side, through rt/virtio.c, polled (driven by
 * tests/vmm/hvc.sh). With "absent=1" on the command line: there must be no
 * virtio console (zhv run without --console virtio). Otherwise: find the
 * modern virtio-pci console function (1af4:1043), negotiate VERSION_1
 * only (no MULTIPORT: one port, receive queue 0, transmit queue 1), post
 * receive buffers, write "hvc: hello from the guest\n" on the transmit
 * queue (in two chains, one of two buffers), then read what the host's
 * stdin sends until a "\n" and write it back as "hvc: got <line>\n".
 * Each wait is bounded (timeout=N seconds, default 20). */
#include "virtio.h"

#define QSIZE 8
#define RXBUF 16

static uint8_t rxmem[RT_VIRTQ_MEM_SIZE(QSIZE)] __attribute__((aligned(4096)));
static uint8_t txmem[RT_VIRTQ_MEM_SIZE(QSIZE)] __attribute__((aligned(4096)));
static struct rt_virtio_dev dev;
static struct rt_virtq rxq, txq;
static uint8_t rxbuf[QSIZE][RXBUF];
static char line[128];
static char msg[160];

static unsigned slen(const char *s)
{
	unsigned n = 0;
	while (s[n])
		n++;
	return n;
}

/* Write (n) buffers as one chain and wait for the device to use it. */
static void transmit(const struct rt_vbuf *b, unsigned n, uint32_t timeout_us)
{
	int head = rt_virtq_add(&txq, b, n, NULL, 0);
	RT_CHECK(head >= 0);
	rt_virtq_kick(&txq);
	uint32_t id, len;
	if (!rt_virtq_wait(&txq, &id, &len, timeout_us))
		rt_fail("transmit: no used element");
	RT_CHECK(id == (uint32_t)head);
}

static void post_rx(unsigned i)
{
	struct rt_vbuf in = {rxbuf[i], RXBUF};
	int head = rt_virtq_add(&rxq, NULL, 0, &in, 1);
	RT_CHECK(head >= 0);
}

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	uint32_t timeout_us = rt_cmdline_uint("timeout", 20) * 1000000u;
	bool found = rt_virtio_find(RT_VIRTIO_ID_CONSOLE, 0, &dev);
	if (rt_cmdline_uint("absent", 0)) {
		if (found)
			rt_fail("a virtio console without --console virtio");
		rt_puts("hvc: none, as asked");
		rt_pass();
	}
	if (!found)
		rt_fail("no virtio console (1af4:1043)");
	RT_CHECK(dev.device_id == RT_VIRTIO_PCI_DEVICE(RT_VIRTIO_ID_CONSOLE));
	RT_CHECK(rt_virtio_init(&dev, 0) == 0);
	RT_CHECK(dev.features == RT_VIRTIO_BIT(RT_VIRTIO_F_VERSION_1));
	RT_CHECK(rt_virtio_num_queues(&dev) >= 2);
	RT_CHECK(rt_virtq_setup(&dev, &rxq, 0, QSIZE, rxmem) == 0);
	RT_CHECK(rt_virtq_setup(&dev, &txq, 1, QSIZE, txmem) == 0);
	rt_virtio_driver_ok(&dev);
	RT_CHECK((rt_virtio_status(&dev) & RT_VIRTIO_ST_NEEDS_RESET) == 0);

	/* Output: one chain of one buffer, one of two. */
	static char hello1[] = "hvc: hello ";
	static char hello2[] = "from the ";
	static char hello3[] = "guest\n";
	struct rt_vbuf one = {hello1, slen(hello1)};
	transmit(&one, 1, timeout_us);
	struct rt_vbuf two[] = {{hello2, slen(hello2)}, {hello3, slen(hello3)}};
	transmit(two, 2, timeout_us);
	rt_puts("hvc: output written");

	/* Input: receive buffers of 16 bytes; a line longer than one. */
	for (unsigned i = 0; i < QSIZE; i++)
		post_rx(i);
	rt_virtq_kick(&rxq);
	unsigned n = 0;
	bool eol = false;
	while (!eol) {
		uint32_t id, len;
		if (!rt_virtq_wait(&rxq, &id, &len, timeout_us))
			rt_fail("input: nothing within the timeout (%u bytes so far)", n);
		RT_CHECK(id < QSIZE && len <= RXBUF);
		for (uint32_t i = 0; i < len && !eol; i++) {
			char c = (char)rxbuf[id][i];
			if (c == '\n')
				eol = true;
			else if (n < sizeof(line) - 1)
				line[n++] = c;
		}
		post_rx(id);
		rt_virtq_kick(&rxq);
	}
	line[n] = '\0';
	rt_printf("hvc: read %u bytes\n", n);

	static const char got[] = "hvc: got ";
	unsigned m = 0;
	for (unsigned i = 0; got[i]; i++)
		msg[m++] = got[i];
	for (unsigned i = 0; i < n; i++)
		msg[m++] = line[i];
	msg[m++] = '\n';
	struct rt_vbuf echo = {msg, m};
	transmit(&echo, 1, timeout_us);
	rt_pass();
}
