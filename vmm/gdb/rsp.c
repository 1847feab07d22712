/* rsp.c: GDB remote serial protocol framing and encodings (rsp.h). */
#include <string.h>

#include "rsp.h"

void rsp_rx_init(struct rsp_rx *rx)
{
	rx->state = RSP_IDLE;
	rx->len = 0;
	rx->overflow = false;
	rx->sum = 0;
	rx->csum = 0;
	rx->buf[0] = '\0';
}

int rsp_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum rsp_event rsp_rx_byte(struct rsp_rx *rx, uint8_t c)
{
	int h;
	switch (rx->state) {
	case RSP_IDLE:
		if (c == '$') {
			rx->state = RSP_DATA;
			rx->len = 0;
			rx->sum = 0;
			rx->overflow = false;
			return RSP_EV_NONE;
		}
		if (c == 0x03)
			return RSP_EV_INTERRUPT;
		if (c == '+')
			return RSP_EV_ACK;
		if (c == '-')
			return RSP_EV_NAK;
		return RSP_EV_NONE;
	case RSP_DATA:
		if (c == '#') {
			rx->state = RSP_CSUM1;
			return RSP_EV_NONE;
		}
		if (c == '$') { /* a packet started over: the old one is lost */
			rx->len = 0;
			rx->sum = 0;
			rx->overflow = false;
			return RSP_EV_NONE;
		}
		rx->sum = (uint8_t)(rx->sum + c);
		if (rx->len < RSP_PACKET_MAX)
			rx->buf[rx->len++] = (char)c;
		else
			rx->overflow = true;
		return RSP_EV_NONE;
	case RSP_CSUM1:
		h = rsp_hexval((char)c);
		rx->csum = (uint8_t)(h < 0 ? 0 : h << 4);
		rx->state = h < 0 ? RSP_IDLE : RSP_CSUM2;
		return h < 0 ? RSP_EV_BAD : RSP_EV_NONE;
	case RSP_CSUM2:
		rx->state = RSP_IDLE;
		h = rsp_hexval((char)c);
		if (h < 0 || (uint8_t)(rx->csum | h) != rx->sum)
			return RSP_EV_BAD;
		if (rx->overflow) {
			rx->len = 0;
			rx->buf[0] = '\0';
			return RSP_EV_TOO_LONG;
		}
		rx->buf[rx->len] = '\0';
		return RSP_EV_PACKET;
	}
	rx->state = RSP_IDLE;
	return RSP_EV_NONE;
}

static const char hexdig[] = "0123456789abcdef";

size_t rsp_frame(const void *payload, size_t len, char *out, size_t cap)
{
	const uint8_t *p = payload;
	size_t o = 0;
	uint8_t sum = 0;
	if (cap < 4)
		return 0;
	out[o++] = '$';
	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];
		bool esc = c == '#' || c == '$' || c == '}' || c == '*';
		if (o + (esc ? 2 : 1) + 3 > cap)
			return 0;
		if (esc) {
			out[o++] = '}';
			sum = (uint8_t)(sum + '}');
			c ^= 0x20;
		}
		out[o++] = (char)c;
		sum = (uint8_t)(sum + c);
	}
	out[o++] = '#';
	out[o++] = hexdig[sum >> 4];
	out[o++] = hexdig[sum & 15];
	return o;
}

void rsp_hex_encode(const void *data, size_t n, char *out)
{
	const uint8_t *d = data;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[d[i] >> 4];
		out[2 * i + 1] = hexdig[d[i] & 15];
	}
}

int rsp_hex_decode(const char *hex, size_t n, void *out)
{
	uint8_t *o = out;
	for (size_t i = 0; i < n; i++) {
		int hi = rsp_hexval(hex[2 * i]), lo = hi < 0 ? -1 : rsp_hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		o[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int rsp_parse_u64(const char **p, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;
	int n = 0;
	for (int h; (h = rsp_hexval(*s)) >= 0; s++, n++) {
		if (n == 16)
			return -1;
		x = x << 4 | (uint64_t)h;
	}
	if (n == 0)
		return -1;
	*v = x;
	*p = s;
	return 0;
}

long rsp_unescape(const char *in, size_t n, uint8_t *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)in[i];
		if (c == '}') {
			if (++i == n)
				return -1;
			c = (uint8_t)in[i] ^ 0x20;
		}
		if (o == cap)
			return -1;
		out[o++] = c;
	}
	return (long)o;
}
