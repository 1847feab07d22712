#!/usr/bin/env python3
"""gdb_hostile.py PORT: a hostile GDB remote-protocol client for
tests/vmm/gdb.sh. Sends garbage, bad checksums, a packet past PacketSize,
huge and malformed lengths, bad hex and unknown packets to zhv run --gdb,
checks that each gets a NAK, an error reply or an empty reply, that the
stub still answers real requests afterwards, then detaches (the guest runs
on). Prints one "ok"/"FAIL" line per check; exits 1 on any failure."""
import socket
import sys

failed = False


def report(ok, what):
    global failed
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failed = True


def frame(payload: bytes) -> bytes:
    return b"$" + payload + b"#" + b"%02x" % (sum(payload) & 0xFF)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def byte(self):
        while not self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def ack(self):
        """The next '+' or '-' (skipping nothing else)."""
        return self.byte()

    def packet(self):
        """The next packet's payload (checksum checked), acknowledged."""
        while self.byte() != b"$":
            pass
        data = b""
        while True:
            c = self.byte()
            if c == b"#":
                break
            data += c
        cs = self.byte() + self.byte()
        if int(cs, 16) != sum(data) & 0xFF:
            raise ValueError("bad checksum from the stub")
        self.s.sendall(b"+")
        return data

    def ask(self, payload: bytes):
        self.s.sendall(frame(payload))
        a = self.ack()
        if a != b"+":
            raise ValueError("no ack for %r: %r" % (payload[:40], a))
        return self.packet()


def main():
    c = Conn(int(sys.argv[1]))
    report(c.ask(b"?").startswith(b"T05"), "'?' answers a stop (T05)")
    c.s.sendall(b"\x01\x02garbage\xff\xfe###+++")
    report(c.ask(b"qC") == b"QC1", "garbage between packets is ignored")
    c.s.sendall(b"$g#00")
    report(c.ack() == b"-", "a bad checksum gets '-'")
    c.s.sendall(b"$g#zz")
    report(c.ack() == b"-", "bad checksum digits get '-'")
    big = b"m" + b"0" * 100000
    c.s.sendall(frame(big))
    report(c.ack() == b"+" and c.packet().startswith(b"E"),
           "a 100 kB packet (past PacketSize) gets an error")
    r = c.ask(b"m0,ffffffffffffffff")
    report(r.startswith(b"E") or len(r) <= 2 * 16384, "m with a huge length: capped or an error")
    report(c.ask(b"m10000000000000000000,1").startswith(b"E"), "m with a 20-digit address: error")
    report(c.ask(b"mffffffffffff0000,10").startswith(b"E"), "m of an unmapped address: error")
    report(c.ask(b"Mzz,1:00").startswith(b"E"), "M with bad hex: error")
    report(c.ask(b"M100000,4:0").startswith(b"E"), "M with too few digits: error")
    report(c.ask(b"X100000,ffffffff:ab").startswith(b"E"), "X with a huge length: error")
    report(c.ask(b"G00").startswith(b"E"), "G of the wrong size: error")
    report(c.ask(b"Z0,,").startswith(b"E"), "Z0 without address: error")
    report(c.ask(b"Hg99") .startswith(b"E"), "Hg of no such thread: error")
    report(c.ask(b"vCont;s:ff;c").startswith(b"E"), "vCont on no such thread: error")
    report(c.ask(b"qXfer:features:read:../../etc/passwd:0,100").startswith(b"E"),
           "qXfer of another annex: error")
    report(c.ask(b"\x80\x81unknown") == b"", "an unknown packet gets an empty reply")
    # still a working stub
    report(len(c.ask(b"g")) > 100, "g still answers")
    report(c.ask(b"qfThreadInfo").startswith(b"m1"), "qfThreadInfo still answers")
    report(c.ask(b"D") == b"OK", "D detaches")
    c.s.close()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
