/* gdb_rsp_test: GDB remote protocol framing and encodings (vmm/gdb/rsp.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../vmm/gdb/rsp.c"

#include <stdlib.h>

static struct rsp_rx *rx_new(void)
{
	struct rsp_rx *rx = malloc(sizeof(*rx));
	assert_non_null(rx);
	rsp_rx_init(rx);
	return rx;
}

/* Feed (s); returns the last event other than NONE (NONE if none). */
static enum rsp_event feed(struct rsp_rx *rx, const char *s, size_t n)
{
	enum rsp_event last = RSP_EV_NONE;
	for (size_t i = 0; i < n; i++) {
		enum rsp_event e = rsp_rx_byte(rx, (uint8_t)s[i]);
		if (e != RSP_EV_NONE)
			last = e;
	}
	return last;
}

static void test_frame_checksum(void **state)
{
	(void)state;
	char out[64];
	/* "OK": 'O' + 'K' = 0x4f + 0x4b = 0x9a */
	size_t n = rsp_frame("OK", 2, out, sizeof(out));
	assert_int_equal(n, 6);
	assert_memory_equal(out, "$OK#9a", 6);
	n = rsp_frame("", 0, out, sizeof(out));
	assert_memory_equal(out, "$#00", n);
	/* '#', '$', '}' and '*' are escaped as '}' then c ^ 0x20 */
	n = rsp_frame("a#$}*", 5, out, sizeof(out));
	assert_int_equal(n, 1 + 1 + 8 + 3);
	assert_memory_equal(out, "$a}\x03}\x04}]}\x0a#", 11);
	/* too small: 0, never past cap */
	assert_int_equal(rsp_frame("OK", 2, out, 5), 0);
	assert_int_equal(rsp_frame("OK", 2, out, 3), 0);
}

static void test_rx_packets(void **state)
{
	(void)state;
	struct rsp_rx *rx = rx_new();
	assert_int_equal(feed(rx, "$OK#9a", 6), RSP_EV_PACKET);
	assert_int_equal(rx->len, 2);
	assert_string_equal(rx->buf, "OK");
	/* upper-case checksum digits are accepted */
	assert_int_equal(feed(rx, "$OK#9A", 6), RSP_EV_PACKET);
	/* a bad checksum, a bad digit */
	assert_int_equal(feed(rx, "$OK#9b", 6), RSP_EV_BAD);
	assert_int_equal(feed(rx, "$OK#x0", 5), RSP_EV_BAD);
	assert_int_equal(rx->state, RSP_IDLE);
	assert_int_equal(feed(rx, "$OK#9z", 6), RSP_EV_BAD);
	/* acks, Ctrl-C and noise between packets */
	assert_int_equal(rsp_rx_byte(rx, '+'), RSP_EV_ACK);
	assert_int_equal(rsp_rx_byte(rx, '-'), RSP_EV_NAK);
	assert_int_equal(rsp_rx_byte(rx, 0x03), RSP_EV_INTERRUPT);
	assert_int_equal(feed(rx, "garbage\xff\x00", 9), RSP_EV_NONE);
	/* 0x03 inside a packet is data */
	char p[] = "$a\x03#00";
	p[4] = "0123456789abcdef"[(('a' + 3) >> 4) & 15];
	p[5] = "0123456789abcdef"[('a' + 3) & 15];
	assert_int_equal(feed(rx, p, 6), RSP_EV_PACKET);
	assert_int_equal(rx->len, 2);
	/* a '$' inside a packet starts over */
	assert_int_equal(feed(rx, "$junk$OK#9a", 11), RSP_EV_PACKET);
	assert_string_equal(rx->buf, "OK");
	free(rx);
}

static void test_rx_too_long(void **state)
{
	(void)state;
	struct rsp_rx *rx = rx_new();
	size_t n = RSP_PACKET_MAX + 10;
	char *big = malloc(n + 4);
	assert_non_null(big);
	uint8_t sum = 0;
	big[0] = '$';
	for (size_t i = 1; i <= n; i++) {
		big[i] = 'A';
		sum = (uint8_t)(sum + 'A');
	}
	big[n + 1] = '#';
	big[n + 2] = "0123456789abcdef"[sum >> 4];
	big[n + 3] = "0123456789abcdef"[sum & 15];
	assert_int_equal(feed(rx, big, n + 4), RSP_EV_TOO_LONG);
	assert_int_equal(rx->len, 0);
	/* exactly RSP_PACKET_MAX fits */
	n = RSP_PACKET_MAX;
	sum = 0;
	for (size_t i = 1; i <= n; i++)
		sum = (uint8_t)(sum + 'A');
	big[n + 1] = '#';
	big[n + 2] = "0123456789abcdef"[sum >> 4];
	big[n + 3] = "0123456789abcdef"[sum & 15];
	assert_int_equal(feed(rx, big, n + 4), RSP_EV_PACKET);
	assert_int_equal(rx->len, RSP_PACKET_MAX);
	/* and the parser goes on afterwards */
	assert_int_equal(feed(rx, "$OK#9a", 6), RSP_EV_PACKET);
	free(big);
	free(rx);
}

static void test_hex(void **state)
{
	(void)state;
	uint8_t b[4];
	char h[9] = "";
	assert_int_equal(rsp_hex_decode("00fFa5", 3, b), 0);
	assert_int_equal(b[0], 0x00);
	assert_int_equal(b[1], 0xff);
	assert_int_equal(b[2], 0xa5);
	assert_int_equal(rsp_hex_decode("0g", 1, b), -1);
	assert_int_equal(rsp_hex_decode("0", 1, b), -1); /* NUL is not a digit */
	rsp_hex_encode("\x12\xab", 2, h);
	h[4] = '\0';
	assert_string_equal(h, "12ab");

	uint64_t v;
	const char *p = "ffffffffffffffff,";
	assert_int_equal(rsp_parse_u64(&p, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(*p, ',');
	p = "10000000000000000"; /* 17 digits */
	assert_int_equal(rsp_parse_u64(&p, &v), -1);
	p = ",1";
	assert_int_equal(rsp_parse_u64(&p, &v), -1);
	assert_int_equal(*p, ',');
	p = "0001x";
	assert_int_equal(rsp_parse_u64(&p, &v), 0);
	assert_true(v == 1);
}

static void test_unescape(void **state)
{
	(void)state;
	uint8_t out[8];
	assert_int_equal(rsp_unescape("a}\x03}]b", 6, out, sizeof(out)), 4);
	assert_memory_equal(out, "a#}b", 4);
	assert_int_equal(rsp_unescape("ab}", 3, out, sizeof(out)), -1); /* trailing escape */
	assert_int_equal(rsp_unescape("abc", 3, out, 2), -1);            /* too long */
	assert_int_equal(rsp_unescape("", 0, out, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_checksum),
		cmocka_unit_test(test_rx_packets),
		cmocka_unit_test(test_rx_too_long),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_unescape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
