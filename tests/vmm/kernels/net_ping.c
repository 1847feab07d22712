/* net_ping.c: virtio-net end to end through a host TAP device (driven by
 * tests/vmm/net.sh): find the modern virtio-pci network function, negotiate
 * VERSION_1 + MAC + MRG_RXBUF, set up the receive and transmit queues, then
 *   1. ARP: ask who has host_ip (10.0.2.1), expect the host kernel's reply
 *      (opcode 2, sender host_ip, target our MAC and IP);
 *   2. ICMP: ping host_ip with a 256-byte payload and check the echo reply
 *      byte for byte (it spans several 128-byte mergeable receive buffers);
 *   3. with host_wait=N on the command line, frames the host starts: reset
 *      the device, set it up again with only 4 receive buffers posted,
 *      print "net: ready for host frames", answer the host's ARP request
 *      for our address, hold the other 60 buffers back 1-2 s more (the
 *      host's UDP datagram to port 7777, 1300 bytes from net.sh, needs 11
 *      and must wait in the device meanwhile), post them, and print every
 *      datagram (length, head and tail) until one says "quit"; each wait
 *      is bounded by N seconds.
 * Everything is polled (no interrupts: the rings ask for none); every wait
 * is bounded by seconds of the CMOS clock. Driver code is self-contained
 * and small: guest CPL0 code is emulated at about 1 us per instruction.
 *
 * Command line (all optional): host_ip=0x0a000201 guest_ip=0x0a00020f
 * timeout=5 (seconds per request/reply step) host_wait=0.
 */
#include "rt.h"

/* ---- helpers ------------------------------------------------------------- */

#define barrier() __asm__ volatile("" ::: "memory")

static inline uint16_t mmio_read16(uintptr_t a)
{
	return *(volatile uint16_t *)a;
}
static inline void mmio_write16(uintptr_t a, uint16_t v)
{
	*(volatile uint16_t *)a = v;
}
static inline uint8_t mmio_read8(uintptr_t a)
{
	return *(volatile uint8_t *)a;
}
static inline void mmio_write8(uintptr_t a, uint8_t v)
{
	*(volatile uint8_t *)a = v;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

/* Internet checksum (RFC 1071) of (len) bytes. */
static uint16_t inet_csum(const uint8_t *p, unsigned len)
{
	uint32_t sum = 0;
	for (unsigned i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* "aa:bb:cc:dd:ee:ff" into (out), 18 bytes. */
static const char *mac_str(const uint8_t *m, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 6; i++) {
		out[3 * i] = hex[m[i] >> 4];
		out[3 * i + 1] = hex[m[i] & 15];
		out[3 * i + 2] = i == 5 ? '\0' : ':';
	}
	return out;
}

/* "a.b.c.d" into (out), 16 bytes. */
static const char *ip_str(uint32_t ip, char *out)
{
	char *p = out;
	for (int s = 24; s >= 0; s -= 8) {
		unsigned v = (ip >> s) & 0xff;
		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
		*p++ = s ? '.' : '\0';
	}
	return out;
}

/* ---- time: seconds of the CMOS clock ------------------------------------- */

static uint8_t rtc_seconds(void)
{
	outb(0x70, 0x00);
	return inb(0x71);
}

/* A wait of about (seconds) (counted as changes of the RTC seconds
 * register: (seconds) - 1 to (seconds) of wall time). The register is
 * read every 64 polls to keep the exits down. */
struct deadline {
	uint8_t last;
	unsigned left, polls;
};
static void deadline_start(struct deadline *d, unsigned seconds)
{
	d->last = rtc_seconds();
	d->left = seconds;
	d->polls = 0;
}
/* deadline_tick: true once per elapsed second (and then d->left drops). */
static bool deadline_tick(struct deadline *d)
{
	if (++d->polls % 64)
		return false;
	uint8_t s = rtc_seconds();
	if (s == d->last)
		return false;
	d->last = s;
	if (d->left)
		d->left--;
	return true;
}

/* ---- PCI and the virtio-pci transport (virtio 1.2 §4.1) ------------------ */

static uint32_t pci_addr(unsigned slot, unsigned off)
{
	return 0x80000000u | slot << 11 | (off & 0xfc);
}
static uint32_t pci_read32(unsigned slot, unsigned off)
{
	outl(0xcf8, pci_addr(slot, off));
	return inl(0xcfc);
}
static uint8_t pci_read8(unsigned slot, unsigned off)
{
	outl(0xcf8, pci_addr(slot, off));
	return inb((uint16_t)(0xcfc + (off & 3)));
}

/* Common configuration (virtio 1.2 §4.1.4.3). */
#define VC_DFSELECT 0x00
#define VC_DF 0x04
#define VC_GFSELECT 0x08
#define VC_GF 0x0c
#define VC_NUMQ 0x12
#define VC_STATUS 0x14
#define VC_Q_SELECT 0x16
#define VC_Q_SIZE 0x18
#define VC_Q_MSIX 0x1a
#define VC_Q_ENABLE 0x1c
#define VC_Q_NOFF 0x1e
#define VC_Q_DESC 0x20
#define VC_Q_AVAIL 0x28
#define VC_Q_USED 0x30

#define S_ACK 1u
#define S_DRIVER 2u
#define S_DRIVER_OK 4u
#define S_FEATURES_OK 8u
#define S_NEEDS_RESET 0x40u

#define F_NET_MAC 5
#define F_NET_MRG_RXBUF 15
#define F_VERSION_1 32

static struct {
	unsigned slot;
	uintptr_t common, notify, device;
	uint32_t notify_mult;
} dev;

/* Split virtqueue (virtio 1.2 §2.7) with (N) entries. */
#define RXQ 0
#define TXQ 1
#define RX_N 64
#define RX_BUF 128 /* small on purpose: larger frames use several (MRG_RXBUF) */
#define TX_N 8
#define NET_HDR 12 /* struct virtio_net_hdr_v1 */

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
#define D_NEXT 1
#define D_WRITE 2

struct used_elem {
	uint32_t id, len;
};

static struct desc rx_desc[RX_N] __attribute__((aligned(16)));
static struct {
	uint16_t flags, idx, ring[RX_N], event;
} rx_avail __attribute__((aligned(2)));
static struct {
	uint16_t flags, idx;
	struct used_elem ring[RX_N];
	uint16_t event;
} rx_used __attribute__((aligned(4)));
static uint8_t rx_bufs[RX_N][RX_BUF];

static struct desc tx_desc[TX_N] __attribute__((aligned(16)));
static struct {
	uint16_t flags, idx, ring[TX_N], event;
} tx_avail __attribute__((aligned(2)));
static struct {
	uint16_t flags, idx;
	struct used_elem ring[TX_N];
	uint16_t event;
} tx_used __attribute__((aligned(4)));
static uint8_t tx_hdr[NET_HDR];
static uint8_t tx_frame[1514];

static uint16_t rx_last_used, rx_avail_idx, tx_avail_idx, tx_last_used;
static uint16_t rx_noff, tx_noff;
static unsigned rx_unposted; /* buffers rx_unposted .. RX_N-1 not yet on the ring */
static unsigned tx_total;

static void vstatus_or(uint8_t bits)
{
	mmio_write8(dev.common + VC_STATUS, (uint8_t)(mmio_read8(dev.common + VC_STATUS) | bits));
}

static void notify(uint16_t noff, uint16_t q)
{
	barrier();
	mmio_write16(dev.notify + (uintptr_t)noff * dev.notify_mult, q);
}

static bool find_device(void)
{
	for (unsigned slot = 0; slot < 32; slot++) {
		uint32_t id = pci_read32(slot, 0);
		if (id != (0x1041u << 16 | 0x1af4u))
			continue;
		dev.slot = slot;
		/* Walk the capability list for the virtio structures. */
		unsigned cap = pci_read8(slot, 0x34), guard = 0;
		while (cap && guard++ < 48) {
			if (pci_read8(slot, cap) == 0x09) { /* vendor: struct virtio_pci_cap */
				uint8_t type = pci_read8(slot, cap + 3), bar = pci_read8(slot, cap + 4);
				uint32_t off = pci_read32(slot, cap + 8);
				if (bar > 5)
					rt_fail("virtio cap type %u in BAR %u", type, bar);
				/* Memory BARs below 4 GiB: the low dword is the address. */
				uint32_t bv = pci_read32(slot, 0x10 + 4u * bar);
				if (bv & 1)
					rt_fail("virtio-net BAR%u is an I/O BAR (%x)", bar, bv);
				uintptr_t base = bv & ~0xfu;
				if (type == 1)
					dev.common = base + off;
				else if (type == 2) {
					dev.notify = base + off;
					dev.notify_mult = pci_read32(slot, cap + 16);
				} else if (type == 4)
					dev.device = base + off;
			}
			cap = pci_read8(slot, cap + 1);
		}
		if (!dev.common || !dev.notify || !dev.device)
			rt_fail("virtio-net at slot %u lacks common/notify/device capabilities", slot);
		return true;
	}
	return false;
}

static void setup_queue(uint16_t q, uint16_t n, const void *d, const void *a, const void *u,
                        uint16_t *noff)
{
	mmio_write16(dev.common + VC_Q_SELECT, q);
	uint16_t max = mmio_read16(dev.common + VC_Q_SIZE);
	if (max < n)
		rt_fail("queue %u: device offers %u entries, need %u", q, max, n);
	mmio_write16(dev.common + VC_Q_SIZE, n);
	mmio_write16(dev.common + VC_Q_MSIX, 0xffff); /* no vector: we poll */
	mmio_write32(dev.common + VC_Q_DESC, (uint32_t)(uintptr_t)d);
	mmio_write32(dev.common + VC_Q_DESC + 4, 0);
	mmio_write32(dev.common + VC_Q_AVAIL, (uint32_t)(uintptr_t)a);
	mmio_write32(dev.common + VC_Q_AVAIL + 4, 0);
	mmio_write32(dev.common + VC_Q_USED, (uint32_t)(uintptr_t)u);
	mmio_write32(dev.common + VC_Q_USED + 4, 0);
	*noff = mmio_read16(dev.common + VC_Q_NOFF);
	mmio_write16(dev.common + VC_Q_ENABLE, 1);
	if (mmio_read16(dev.common + VC_Q_ENABLE) != 1)
		rt_fail("queue %u did not enable", q);
}

static uint8_t mac[6];

/* Reset and set up the device with the first (rx_posted) receive buffers
 * on the ring (the rest can follow with rx_post_rest). */
static void virtio_net_init(unsigned rx_posted)
{
	uintptr_t c = dev.common;

	mmio_write8(c + VC_STATUS, 0); /* reset */
	if (mmio_read8(c + VC_STATUS) != 0)
		rt_fail("device status not 0 after reset");
	vstatus_or(S_ACK);
	vstatus_or(S_DRIVER);
	mmio_write32(c + VC_DFSELECT, 0);
	uint32_t f_lo = mmio_read32(c + VC_DF);
	mmio_write32(c + VC_DFSELECT, 1);
	uint32_t f_hi = mmio_read32(c + VC_DF);
	if (!(f_hi & 1u << (F_VERSION_1 - 32)) || !(f_lo & 1u << F_NET_MAC) ||
	    !(f_lo & 1u << F_NET_MRG_RXBUF))
		rt_fail("device features %x:%x lack VERSION_1, MAC or MRG_RXBUF", f_hi, f_lo);
	mmio_write32(c + VC_GFSELECT, 0);
	mmio_write32(c + VC_GF, 1u << F_NET_MAC | 1u << F_NET_MRG_RXBUF);
	mmio_write32(c + VC_GFSELECT, 1);
	mmio_write32(c + VC_GF, 1u << (F_VERSION_1 - 32));
	vstatus_or(S_FEATURES_OK);
	if (!(mmio_read8(c + VC_STATUS) & S_FEATURES_OK))
		rt_fail("device refused features VERSION_1|MAC|MRG_RXBUF");
	if (mmio_read16(c + VC_NUMQ) < 2)
		rt_fail("device has %u queues", mmio_read16(c + VC_NUMQ));

	/* Receive: RX_N one-descriptor, device-writable buffers. */
	memset(&rx_avail, 0, sizeof(rx_avail));
	memset(&rx_used, 0, sizeof(rx_used));
	for (unsigned i = 0; i < RX_N; i++) {
		rx_desc[i] = (struct desc){
			.addr = (uint32_t)(uintptr_t)rx_bufs[i], .len = RX_BUF, .flags = D_WRITE};
		if (i < rx_posted)
			rx_avail.ring[i] = (uint16_t)i;
	}
	rx_avail.flags = 1; /* VIRTQ_AVAIL_F_NO_INTERRUPT: we poll */
	rx_avail_idx = (uint16_t)rx_posted;
	rx_unposted = rx_posted;
	rx_avail.idx = rx_avail_idx;
	rx_last_used = 0;
	/* Transmit: one frame at a time, header and frame in two chained
	 * descriptors. */
	memset(&tx_avail, 0, sizeof(tx_avail));
	memset(&tx_used, 0, sizeof(tx_used));
	memset(tx_hdr, 0, sizeof(tx_hdr));
	tx_avail.flags = 1;
	tx_avail_idx = tx_last_used = 0;

	setup_queue(RXQ, RX_N, rx_desc, &rx_avail, &rx_used, &rx_noff);
	setup_queue(TXQ, TX_N, tx_desc, &tx_avail, &tx_used, &tx_noff);
	for (int i = 0; i < 6; i++)
		mac[i] = mmio_read8(dev.device + (uintptr_t)i);
	vstatus_or(S_DRIVER_OK);
	uint8_t st = mmio_read8(c + VC_STATUS);
	if (st & S_NEEDS_RESET)
		rt_fail("device needs reset right after DRIVER_OK (status %x)", st);
	notify(rx_noff, RXQ);
}

/* ---- frames ----------------------------------------------------------------- */

static uint32_t guest_ip, host_ip;
static const uint8_t want_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t zero_mac[6];

/* What the receive side saw. */
static uint8_t host_mac[6];
static bool got_arp_reply, got_echo_reply, got_udp;
static uint16_t ping_seq;
static char udp_text[72];
static unsigned udp_len;
static uint32_t udp_src_ip;
static uint16_t udp_src_port;
static unsigned rx_frames, rx_ignored, rx_max_bufs, arp_answered;

/* Send tx_frame[0 .. len) (len >= 14). zhv completes a transmit inside
 * the notify, but wait a bounded while anyway. */
static void transmit(unsigned len)
{
	if (len < 60) { /* Ethernet minimum, without the FCS */
		memset(tx_frame + len, 0, 60 - len);
		len = 60;
	}
	uint16_t head = (uint16_t)(tx_avail_idx % (TX_N / 2) * 2);
	tx_desc[head] = (struct desc){ .addr = (uint32_t)(uintptr_t)tx_hdr,
	                               .len = NET_HDR,
	                               .flags = D_NEXT,
	                               .next = (uint16_t)(head + 1) };
	tx_desc[head + 1] = (struct desc){ .addr = (uint32_t)(uintptr_t)tx_frame, .len = len };
	tx_avail.ring[tx_avail_idx % TX_N] = head;
	barrier();
	tx_avail.idx = ++tx_avail_idx;
	notify(tx_noff, TXQ);
	for (unsigned i = 0; i < 10000; i++) {
		if (*(volatile uint16_t *)&tx_used.idx == tx_avail_idx)
			break;
		rt_pause();
	}
	barrier();
	if (tx_used.idx != tx_avail_idx)
		rt_fail("transmit: used idx %u after %u frames", tx_used.idx, tx_avail_idx);
	struct used_elem e = tx_used.ring[tx_last_used % TX_N];
	if (e.id != head)
		rt_fail("transmit: used id %u, expected %u", e.id, head);
	tx_last_used = tx_avail_idx;
	tx_total++;
}

static void eth_header(const uint8_t *dst, uint16_t type)
{
	memcpy(tx_frame, dst, 6);
	memcpy(tx_frame + 6, mac, 6);
	put_be16(tx_frame + 12, type);
}

static void send_arp(uint16_t op, const uint8_t *dst_mac, const uint8_t *tha, uint32_t tpa)
{
	uint8_t *a = tx_frame + 14;
	eth_header(dst_mac, 0x0806);
	put_be16(a, 1);          /* Ethernet */
	put_be16(a + 2, 0x0800); /* IPv4 */
	a[4] = 6;
	a[5] = 4;
	put_be16(a + 6, op);
	memcpy(a + 8, mac, 6);
	put_be32(a + 14, guest_ip);
	memcpy(a + 18, tha, 6);
	put_be32(a + 24, tpa);
	transmit(14 + 28);
}

#define PING_ID 0x7a68
#define PING_LEN 256 /* reply: 12 + 14 + 20 + 8 + 256 = 310 bytes, 3 buffers */

static uint8_t ping_byte(unsigned i)
{
	return (uint8_t)(i * 7 + 3);
}

static void send_ping(void)
{
	static uint16_t ident = 0x100;
	uint8_t *ip = tx_frame + 14, *icmp = ip + 20;

	eth_header(host_mac, 0x0800);
	ip[0] = 0x45;
	ip[1] = 0;
	put_be16(ip + 2, 20 + 8 + PING_LEN);
	put_be16(ip + 4, ident++);
	put_be16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = 1; /* ICMP */
	put_be16(ip + 10, 0);
	put_be32(ip + 12, guest_ip);
	put_be32(ip + 16, host_ip);
	put_be16(ip + 10, inet_csum(ip, 20));
	icmp[0] = 8; /* echo request */
	icmp[1] = 0;
	put_be16(icmp + 2, 0);
	put_be16(icmp + 4, PING_ID);
	put_be16(icmp + 6, ++ping_seq);
	for (unsigned i = 0; i < PING_LEN; i++)
		icmp[8 + i] = ping_byte(i);
	put_be16(icmp + 2, inet_csum(icmp, 8 + PING_LEN));
	transmit(14 + 20 + 8 + PING_LEN);
}

/* ---- receive ---------------------------------------------------------------- */

static uint8_t rx_frame[2048];

static void rx_repost(uint16_t id)
{
	rx_avail.ring[rx_avail_idx % RX_N] = id;
	rx_avail_idx++;
}

/* Take one frame off the receive ring into rx_frame: its first buffer
 * starts with the 12-byte header whose num_buffers says how many buffers
 * the frame spans (§5.1.6.4); zhv publishes them together. The buffers go
 * straight back to the device. Returns the frame length, 0 if none. */
static unsigned receive(void)
{
	uint16_t used = *(volatile uint16_t *)&rx_used.idx;
	if (used == rx_last_used)
		return 0;
	barrier();
	uint16_t ready = (uint16_t)(used - rx_last_used), nbufs = 0;
	unsigned len = 0;
	for (uint16_t k = 0; k == 0 || k < nbufs; k++) {
		if (k >= ready)
			rt_fail("receive: frame of %u buffers, only %u published", nbufs, ready);
		struct used_elem e = rx_used.ring[(uint16_t)(rx_last_used + k) % RX_N];
		if (e.id >= RX_N || e.len > RX_BUF)
			rt_fail("receive: used element id %u len %u", e.id, e.len);
		const uint8_t *b = rx_bufs[e.id];
		unsigned skip = 0;
		if (k == 0) {
			if (e.len < NET_HDR)
				rt_fail("receive: first buffer holds %u bytes, less than the header", e.len);
			nbufs = (uint16_t)(b[10] | b[11] << 8);
			if (nbufs == 0 || nbufs > RX_N)
				rt_fail("receive: num_buffers %u", nbufs);
			if (b[0] || b[1])
				rt_fail("receive: header flags %x gso_type %x without offloads", b[0], b[1]);
			skip = NET_HDR;
		}
		if (len + e.len - skip > sizeof(rx_frame))
			rt_fail("receive: frame longer than %u bytes", (unsigned)sizeof(rx_frame));
		memcpy(rx_frame + len, b + skip, e.len - skip);
		len += e.len - skip;
		rx_repost((uint16_t)e.id);
	}
	rx_last_used = (uint16_t)(rx_last_used + nbufs);
	barrier();
	rx_avail.idx = rx_avail_idx;
	notify(rx_noff, RXQ);
	rx_frames++;
	if (nbufs > rx_max_bufs)
		rx_max_bufs = nbufs;
	return len;
}

static void handle_arp(const uint8_t *a, unsigned len)
{
	if (len < 28 || be16(a) != 1 || be16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4) {
		rx_ignored++;
		return;
	}
	uint16_t op = be16(a + 6);
	uint32_t spa = be32(a + 14), tpa = be32(a + 24);
	char s1[18], s2[16];
	if (op == 1 && tpa == guest_ip) { /* who has us: answer */
		send_arp(2, a + 8, a + 8, spa);
		arp_answered++;
		rt_printf("net: answered ARP request from %s (%s)\n", ip_str(spa, s2), mac_str(a + 8, s1));
		return;
	}
	if (op == 2 && spa == host_ip && !got_arp_reply) {
		if (memcmp(a + 18, mac, 6) || tpa != guest_ip)
			rt_fail("ARP reply from the host to %s / %s, not to us",
			        mac_str(a + 18, s1), ip_str(tpa, s2));
		memcpy(host_mac, a + 8, 6);
		got_arp_reply = true;
		return;
	}
	rx_ignored++;
}

static void handle_icmp(const uint8_t *icmp, unsigned len, uint32_t src)
{
	if (len < 8 || icmp[0] != 0 || be16(icmp + 4) != PING_ID || src != host_ip) {
		rx_ignored++;
		return;
	}
	uint16_t seq = be16(icmp + 6);
	if (icmp[1] != 0 || seq == 0 || seq > ping_seq)
		rt_fail("ICMP echo reply with code %u seq %u (sent up to %u)", icmp[1], seq, ping_seq);
	if (inet_csum(icmp, len) != 0)
		rt_fail("ICMP echo reply: bad checksum");
	if (len != 8 + PING_LEN)
		rt_fail("ICMP echo reply: %u bytes of payload, sent %u", len - 8, PING_LEN);
	for (unsigned i = 0; i < PING_LEN; i++)
		if (icmp[8 + i] != ping_byte(i))
			rt_fail("ICMP echo reply: payload byte %u is %x, sent %x", i, icmp[8 + i],
			        ping_byte(i));
	got_echo_reply = true;
}

static void handle_udp(const uint8_t *ip, const uint8_t *udp, unsigned len, uint32_t src)
{
	if (len < 8 || be16(udp + 2) != 7777 || src != host_ip) {
		rx_ignored++;
		return;
	}
	unsigned ulen = be16(udp + 4);
	if (ulen < 8 || ulen > len)
		rt_fail("UDP length %u in a %u-byte datagram", ulen, len);
	if (be16(udp + 6)) { /* checksum over the pseudo-header and the datagram */
		uint8_t pseudo[12];
		memcpy(pseudo, ip + 12, 8);
		pseudo[8] = 0;
		pseudo[9] = 17;
		put_be16(pseudo + 10, (uint16_t)ulen);
		uint32_t sum = (uint16_t)~inet_csum(pseudo, 12);
		sum += (uint16_t)~inet_csum(udp, ulen);
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		if (sum != 0xffff)
			rt_fail("UDP datagram from the host: bad checksum");
	}
	/* Keep the first 40 and the last 24 payload bytes, printable. */
	unsigned plen = ulen - 8, n = 0;
	for (unsigned i = 0; i < plen; i++) {
		if (i == 40 && plen > 64) {
			memcpy(udp_text + n, "...", 3);
			n += 3;
			i = plen - 24;
		}
		uint8_t c = udp[8 + i];
		udp_text[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	udp_text[n] = '\0';
	udp_len = plen;
	udp_src_ip = src;
	udp_src_port = be16(udp);
	got_udp = true;
}

static void handle_frame(unsigned len)
{
	const uint8_t *f = rx_frame;
	if (len < 14) {
		rx_ignored++;
		return;
	}
	/* Ours or broadcast only: the tap hands us everything the host sends
	 * on the link (IPv6 router solicitations, multicast reports). */
	if (memcmp(f, mac, 6) && memcmp(f, bcast, 6)) {
		rx_ignored++;
		return;
	}
	uint16_t type = be16(f + 12);
	if (type == 0x0806) {
		handle_arp(f + 14, len - 14);
		return;
	}
	if (type != 0x0800 || len < 34) {
		rx_ignored++;
		return;
	}
	const uint8_t *ip = f + 14;
	unsigned ihl = (ip[0] & 15u) * 4, tot = be16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl || 14 + tot > len ||
	    be32(ip + 16) != guest_ip) {
		rx_ignored++;
		return;
	}
	if (inet_csum(ip, ihl) != 0)
		rt_fail("IPv4 header checksum wrong in a frame from %s", mac_str(f + 6, (char[18]){ 0 }));
	if (ip[9] == 1)
		handle_icmp(ip + ihl, tot - ihl, be32(ip + 12));
	else if (ip[9] == 17)
		handle_udp(ip, ip + ihl, tot - ihl, be32(ip + 12));
	else
		rx_ignored++;
}

/* Post the buffers virtio_net_init held back, and tell the device. */
static void rx_post_rest(void)
{
	for (; rx_unposted < RX_N; rx_unposted++)
		rx_repost((uint16_t)rx_unposted);
	barrier();
	rx_avail.idx = rx_avail_idx;
	notify(rx_noff, RXQ);
}

static void poll_once(void)
{
	unsigned len = receive();
	if (len)
		handle_frame(len);
	else
		rt_pause();
}

/* ---- the test ---------------------------------------------------------------- */

int test_main(const struct rt_mbi *mbi)
{
	(void)mbi;
	char s1[18], s2[16];
	struct deadline d;

	host_ip = rt_cmdline_uint("host_ip", 0x0a000201);
	guest_ip = rt_cmdline_uint("guest_ip", 0x0a00020f);
	unsigned timeout = rt_cmdline_uint("timeout", 5);
	unsigned host_wait = rt_cmdline_uint("host_wait", 0);

	if (!find_device())
		rt_fail("no virtio-net device (1af4:1041) on PCI bus 0");
	virtio_net_init(RX_N);
	rt_printf("net: virtio-net at slot %u: VERSION_1 MAC MRG_RXBUF, mac %s\n", dev.slot,
	          mac_str(mac, s1));
	if (memcmp(mac, want_mac, 6))
		rt_fail("device MAC %s, expected 52:54:00:12:34:56", s1);

	/* 1. ARP, once a second until the host answers. */
	rt_printf("net: ARP who-has %s tell %s\n", ip_str(host_ip, s2), ip_str(guest_ip, (char[16]){ 0 }));
	send_arp(1, bcast, zero_mac, host_ip);
	deadline_start(&d, timeout);
	while (!got_arp_reply) {
		poll_once();
		if (deadline_tick(&d)) {
			if (!d.left)
				rt_fail("no ARP reply from %s in %u s", ip_str(host_ip, s2), timeout);
			send_arp(1, bcast, zero_mac, host_ip);
		}
	}
	rt_printf("net: ARP reply: %s is at %s\n", ip_str(host_ip, s2), mac_str(host_mac, s1));

	/* 2. ICMP echo, once a second until the reply comes back intact. */
	send_ping();
	deadline_start(&d, timeout);
	while (!got_echo_reply) {
		poll_once();
		if (deadline_tick(&d)) {
			if (!d.left)
				rt_fail("no ICMP echo reply from %s in %u s", ip_str(host_ip, s2), timeout);
			send_ping();
		}
	}
	rt_printf("net: ICMP echo reply from %s: %u payload bytes match\n", ip_str(host_ip, s2),
	          PING_LEN);

	/* 3. Frames the host starts: a 1300-byte UDP datagram to port 7777
	 * (the host resolves us by ARP first), then "quit". Reset the device
	 * first and post only 4 receive buffers; once the host's ARP request
	 * is answered, hold them back for 1-2 s more: the datagram, which
	 * needs 11, arrives meanwhile and must wait in the device for the
	 * rest of the buffers, not be dropped. */
	if (host_wait) {
		virtio_net_init(4);
		rt_puts("net: device reset, 4 receive buffers posted");
		rt_puts("net: ready for host frames");
		unsigned answered = arp_answered;
		deadline_start(&d, host_wait);
		while (arp_answered == answered) {
			poll_once();
			if (deadline_tick(&d) && !d.left)
				rt_fail("no ARP request from the host in %u s", host_wait);
		}
		deadline_start(&d, 2);
		while (d.left && !got_udp) {
			poll_once();
			deadline_tick(&d);
		}
		if (got_udp)
			rt_fail("a %u-byte datagram came through 4 128-byte buffers", udp_len);
		rt_printf("net: posting the other %u receive buffers\n", RX_N - rx_unposted);
		rx_post_rest();
		unsigned datagrams = 0;
		deadline_start(&d, host_wait);
		for (;;) {
			poll_once();
			if (got_udp) {
				got_udp = false;
				rt_printf("net: UDP from %s port %u, %u bytes: '%s'\n",
				          ip_str(udp_src_ip, s2), udp_src_port, udp_len, udp_text);
				if (!memcmp(udp_text, "quit", 5)) {
					if (!datagrams)
						rt_fail("'quit' came, the datagram before it did not");
					break;
				}
				datagrams++;
			}
			if (deadline_tick(&d) && !d.left)
				rt_fail("no 'quit' datagram from the host in %u s", host_wait);
		}
	}
	rt_printf("net: %u frames received (%u ignored, largest in %u buffers), %u sent, "
	          "%u ARP requests answered\n",
	          rx_frames, rx_ignored, rx_max_bufs, tx_total, arp_answered);
	rt_pass();
}
