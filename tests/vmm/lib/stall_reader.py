#!/usr/bin/env python3
"""stall_reader.py: the reader of a FIFO that stops reading.

usage: stall_reader.py FIFO TEXT STATUS_FILE
Opens FIFO for reading, shrinks the pipe to one page, reads until TEXT has
been seen, then never reads again. Once the pipe is full (it holds a page
and nothing moves for half a second) it writes "full" to STATUS_FILE, then
sleeps until killed (keeping the pipe open, so the writer never sees EPIPE).
"""
import fcntl
import os
import sys
import termios
import time

F_SETPIPE_SZ = 1031


def main():
    fifo, text, status_file = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
    fd = os.open(fifo, os.O_RDONLY)
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, 4096)
    except OSError:
        pass
    seen = b""
    while text not in seen:
        chunk = os.read(fd, 4096)
        if not chunk:
            return 1
        seen = (seen + chunk)[-4096:]
    last, since = -1, time.monotonic()
    while True:
        buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
        n = int.from_bytes(buf, sys.byteorder)
        if n != last:
            last, since = n, time.monotonic()
        elif n >= 2048 and time.monotonic() - since > 0.5:
            break
        time.sleep(0.05)
    with open(status_file, "w") as f:
        f.write("full %d\n" % last)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    sys.exit(main())
