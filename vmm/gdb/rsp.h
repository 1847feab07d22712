/* rsp.h: the framing of GDB's remote serial protocol ("$payload#cs",
 * acknowledgements, Ctrl-C) and its encodings (hex, the binary escape of
 * X packets, reply escaping). Pure functions on buffers: no I/O, no state
 * beyond struct rsp_rx, so that the parser can be unit-tested and fuzzed
 * (tests/unit/gdb_rsp_test.c, fuzz/gdb_rsp.c). */
#ifndef ZHV_VMM_GDB_RSP_H
#define ZHV_VMM_GDB_RSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest packet payload accepted or sent (what qSupported announces
 * as PacketSize): a longer incoming packet is dropped whole. */
#define RSP_PACKET_MAX 16384u

enum rsp_state { RSP_IDLE, RSP_DATA, RSP_CSUM1, RSP_CSUM2 };

struct rsp_rx {
	enum rsp_state state;
	size_t len;     /* payload bytes in buf (not counting the NUL) */
	bool overflow;  /* the current packet outgrew buf: dropped */
	uint8_t sum;    /* running checksum of the payload */
	uint8_t csum;   /* the checksum received */
	char buf[RSP_PACKET_MAX + 1]; /* payload, NUL-terminated */
};

enum rsp_event {
	RSP_EV_NONE,      /* byte consumed, nothing complete */
	RSP_EV_PACKET,    /* a packet with a good checksum: buf[0..len) */
	RSP_EV_BAD,       /* a packet with a bad checksum or bad checksum digits: NAK it */
	RSP_EV_TOO_LONG,  /* a packet longer than RSP_PACKET_MAX: dropped */
	RSP_EV_INTERRUPT, /* 0x03 outside a packet (Ctrl-C) */
	RSP_EV_ACK,       /* '+' outside a packet */
	RSP_EV_NAK,       /* '-' outside a packet */
};

void rsp_rx_init(struct rsp_rx *rx);
/* rsp_rx_byte: feed one received byte. Anything outside a packet but the
 * events above is ignored; a '$' inside a packet starts a new one. */
enum rsp_event rsp_rx_byte(struct rsp_rx *rx, uint8_t c);

/* rsp_frame: "$" + payload (escaping '#', '$', '}' and '*') + "#cs" into
 * out. Returns the framed length, or 0 if it does not fit in cap. */
size_t rsp_frame(const void *payload, size_t len, char *out, size_t cap);

/* Hex: rsp_hexval is 0..15 or -1. rsp_hex_encode writes 2 * n digits (no
 * NUL). rsp_hex_decode reads exactly 2 * n digits; -1 on a bad digit. */
int rsp_hexval(char c);
void rsp_hex_encode(const void *data, size_t n, char *out);
int rsp_hex_decode(const char *hex, size_t n, void *out);

/* rsp_parse_u64: a hex number of 1 to 16 digits at *p, advancing *p past
 * it. Returns -1 (and leaves *p) when there is no digit or more than 16. */
int rsp_parse_u64(const char **p, uint64_t *v);

/* rsp_unescape: X packets' binary data (0x7d then byte ^ 0x20) from
 * in[0..n) into out (at most cap bytes). Returns the decoded length, or
 * -1 (a trailing escape, or more than cap bytes). */
long rsp_unescape(const char *in, size_t n, uint8_t *out, size_t cap);

#endif
