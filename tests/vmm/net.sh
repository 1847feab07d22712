#!/usr/bin/env bash
# net.sh: virtio-net frames through a TAP device in a network namespace the
# test creates. The guest (tests/vmm/kernels/net_ping.c) drives zhv's
# virtio-net over modern virtio-pci and talks to the namespace's kernel on
# zt0 (10.0.2.1/24): guest -> host, an ARP request and an ICMP echo request,
# whose replies the host kernel sends back; host -> guest, the host resolves
# 10.0.2.15 by ARP (the guest answers) and sends it a 1300-byte UDP
# datagram (spanning many mergeable receive buffers; the guest, after a
# device reset, posts only 4 of them until the datagram has had time to
# arrive, so it must wait in the device, not be dropped), then "quit". The TAP
# counters must have moved both ways. A second run points the guest at an
# address nobody has and must fail. Needs root and /dev/net/tun (else SKIP).
. "$(dirname "$0")/lib/common.sh"
K=$KERNELS/net_ping.elf
need_binaries "$ZHV" "$K"

NAME="virtio-net frames through a TAP device in a network namespace"
if [ "$(id -u)" -ne 0 ]; then
	skip "$NAME" "not root (a network namespace and a TAP device need root)"
	finish
fi
if [ ! -c /dev/net/tun ]; then
	skip "$NAME" "no /dev/net/tun"
	finish
fi
if ! command -v ip >/dev/null; then
	skip "$NAME" "no ip command (iproute2)"
	finish
fi
if ! kvm_or_skip "$NAME"; then
	finish
fi

NS=zhvtest$$
zpid=
cleanup() {
	if [ -n "$zpid" ]; then
		kill "$zpid" 2>/dev/null
		wait "$zpid" 2>/dev/null
	fi
	ip netns del "$NS" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

nsx() { ip netns exec "$NS" "$@"; }

if ! ip netns add "$NS" 2>"$T/setup"; then
	skip "$NAME" "cannot create a network namespace: $(head -c 200 "$T/setup")"
	finish
fi
if ! { nsx ip tuntap add dev zt0 mode tap && nsx ip link set zt0 up &&
	nsx ip addr add 10.0.2.1/24 dev zt0; } 2>"$T/setup"; then
	skip "$NAME" "cannot set up TAP device zt0 in $NS: $(head -c 200 "$T/setup")"
	finish
fi
host_mac=$(nsx cat /sys/class/net/zt0/address)
tapstat() { nsx cat "/sys/class/net/zt0/statistics/$1"; }
rx0=$(tapstat rx_packets) tx0=$(tapstat tx_packets)

# ---- run 1: both directions ----------------------------------------------------

# The datagram the host sends: a token at the start and at the end, 1300
# bytes in all (12 + 14 + 20 + 8 + 1300 bytes: 11 of the guest's 128-byte
# receive buffers).
head="zhv-net-$$-$RANDOM:"
tail=":end-$RANDOM-$$"
payload=$head
while [ ${#payload} -lt $((1300 - ${#tail})) ]; do
	payload+="0123456789abcdefghijklmnopqrstuvwxyz"
done
payload=${payload:0:$((1300 - ${#tail}))}$tail
want_udp="1300 bytes: '${payload:0:40}...${payload: -24}'"

# send_udp TEXT: one datagram from the namespace's kernel to the guest.
send_udp() {
	nsx bash -c 'printf %s "$1" >/dev/udp/10.0.2.15/7777' _ "$1" 2>>"$T/err.send"
}
# wait_out TEXT TENTHS: until the guest printed TEXT or zhv ended.
wait_out() {
	local i
	for ((i = 0; i < $2; i++)); do
		grep -qF -- "$1" "$T/out" && return 0
		kill -0 "$zpid" 2>/dev/null || break
		sleep 0.1
	done
	grep -qF -- "$1" "$T/out"
}

last_cmd="ip netns exec $NS timeout 60 zhv run --debug-exit --memory 32M --net tap=zt0 --cmdline host_wait=10 $K"
: >"$T/out"
t0=$(date +%s.%N)
ip netns exec "$NS" timeout -k 5 60 "$ZHV" run --debug-exit --memory 32M --net tap=zt0 \
	--cmdline "host_wait=10" "$K" </dev/null >"$T/out" 2>"$T/err" &
zpid=$!

neigh="(not looked at)"
if wait_out "net: ready for host frames" 300; then
	# Forget the guest's address so the host has to ask for it.
	nsx ip neigh flush dev zt0
	# Sent once: the guest holds back buffers while it comes, and a
	# resend would hide a frame the device dropped.
	send_udp "$payload"
	wait_out "net: UDP from 10.0.2.1" 100
	neigh=$(nsx ip neigh show 10.0.2.15 dev zt0)
	for ((try = 0; try < 4; try++)); do
		send_udp quit
		wait_out "'quit'" 20 && break
	done
fi
wait "$zpid"
status=$?
zpid=
elapsed=$(echo "$t0 $(date +%s.%N)" | awk '{printf "%.3f", $2 - $1}')
rx=$(($(tapstat rx_packets) - rx0)) tx=$(($(tapstat tx_packets) - tx0))
links=$(nsx ip -s link show zt0)
snmp=$(nsx cat /proc/net/snmp)

check "status 65 and PASS (${elapsed}s)" eval 'status_is 65 && out_has PASS'
check "guest finds virtio-net, negotiates VERSION_1 MAC MRG_RXBUF, MAC 52:54:00:12:34:56" \
	out_has "VERSION_1 MAC MRG_RXBUF, mac 52:54:00:12:34:56"
check "guest -> host: ARP request answered by the host kernel with zt0's MAC ($host_mac)" \
	out_has "net: ARP reply: 10.0.2.1 is at $host_mac"
check "guest -> host: ICMP echo reply with the 256-byte payload intact" \
	out_has "net: ICMP echo reply from 10.0.2.1: 256 payload bytes match"
# icmp_stat NAME: the namespace's Icmp counter NAME.
icmp_stat() {
	echo "$snmp" | awk -v f="$1" '$1 == "Icmp:" && !h { for (i = 2; i <= NF; i++) c[$i] = i; h = 1; next }
		$1 == "Icmp:" && h { print $c[f] }'
}
check "the namespace's kernel counted the echo request and its reply" \
	eval '[ "$(icmp_stat InEchos)" -ge 1 ] && [ "$(icmp_stat OutEchoReps)" -ge 1 ]'
if out_has "answered ARP request from 10.0.2.1 ($host_mac)" &&
	[[ $neigh == *"lladdr 52:54:00:12:34:56"* ]]; then
	ok "host -> guest: guest answers the host's ARP request (neighbour: $neigh)"
else
	not_ok "host -> guest: guest answers the host's ARP request" "neighbour: $neigh" "$(last_run)"
fi
check "host -> guest: 1300-byte UDP datagram arrives intact through merged buffers" \
	out_has "$want_udp"
check "host -> guest: after a device reset, the datagram waits in the device for buffers" \
	eval 'out_has "net: device reset, 4 receive buffers posted" &&
		out_has "net: posting the other 60 receive buffers" && out_has "$want_udp"'
check "host -> guest: the guest saw a frame spanning 11 receive buffers" \
	grep -qE "largest in (1[1-9]|[2-9][0-9]) buffers" "$T/out"
sent=$(sed -n 's/.*largest in [0-9]* buffers), \([0-9]*\) sent,.*/\1/p' "$T/out")
if [ -n "$sent" ] && [ "$rx" -eq "$sent" ] && [ "$tx" -ge 5 ]; then
	ok "zt0 counters: RX +$rx (= the guest's $sent frames), TX +$tx"
else
	not_ok "zt0 counters: RX +$rx (the guest sent ${sent:-?}), TX +$tx (want >= 5)" "$links" \
		"$(last_run)"
fi
check "no device errors on stderr" eval '! err_has "virtio-net" && no_crash'

# ---- run 2: the test can fail ---------------------------------------------------
# Nobody has 10.0.2.99: no ARP reply, so the guest must fail in about 2 s.
run_zhv_ns() {
	last_cmd="ip netns exec $NS zhv $*"
	t0=$(date +%s.%N)
	ip netns exec "$NS" timeout -k 5 20 "$ZHV" "$@" </dev/null >"$T/out" 2>"$T/err"
	status=$?
	elapsed=$(echo "$t0 $(date +%s.%N)" | awk '{printf "%.3f", $2 - $1}')
}
run_zhv_ns run --debug-exit --memory 32M --net tap=zt0 --cmdline "host_ip=0x0a000263 timeout=2" "$K"
check "no host at 10.0.2.99: guest fails with status 67 (${elapsed}s)" \
	eval 'status_is 67 && out_has "FAIL: no ARP reply from 10.0.2.99 in 2 s"'

# Without --net there is no device to find.
run_zhv_ns run --debug-exit --memory 32M "$K"
check "without --net: guest finds no virtio-net device (status 67)" \
	eval 'status_is 67 && out_has "FAIL: no virtio-net device"'

finish
