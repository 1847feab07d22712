#!/usr/bin/env python3
"""pty_run.py: run a command on a fresh pseudo-terminal, feed it keystrokes
and report what a console test needs: the output, the exit status and
whether the terminal settings came back unchanged.

usage: pty_run.py [--wait TEXT] [--stall S] [--send BYTES] [--signal SIG] [--timeout S] -- CMD...
  --wait TEXT   wait until TEXT appears in the output before acting
  --stall S     then stop reading the terminal for good (a stalled
                terminal), and act once its buffer is full (nothing more
                arrives for half a second), or after S seconds at most
  --send BYTES  then write BYTES (Python escapes, e.g. 'ab\\x01x')
  --signal SIG  then send signal SIG (e.g. TERM) to the command
Prints the output, then a last line "pty_run: status N termios same|changed
after S" (S: seconds from the action to the command's exit).
"""
import argparse
import fcntl
import os
import pty
import select
import signal
import sys
import termios
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wait", default="")
    ap.add_argument("--send", default="")
    ap.add_argument("--signal", default="")
    ap.add_argument("--stall", type=float, default=None)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd

    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.close(master)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        os.execvp(cmd[0], cmd)
    out = b""
    acted = False
    deadline = time.monotonic() + a.timeout
    status = None
    exited_at = None
    stalled_at = None
    acted_at = None
    while time.monotonic() < deadline:
        if not acted and a.wait.encode() in out:
            if a.stall is not None and stalled_at is None:
                stalled_at = time.monotonic()
                unread, unread_since = -1, stalled_at
            full = False
            if stalled_at is not None:
                n = int.from_bytes(fcntl.ioctl(master, termios.FIONREAD, b"\0\0\0\0"),
                                   sys.byteorder)
                if n != unread:
                    unread, unread_since = n, time.monotonic()
                full = n > 0 and time.monotonic() - unread_since >= 0.5
            if stalled_at is None or full or time.monotonic() >= stalled_at + a.stall:
                if stalled_at is not None:
                    print("pty_run: stalled, %d bytes unread" % unread, file=sys.stderr)
                acted = True
                acted_at = time.monotonic()
                if a.send:
                    os.write(master, a.send.encode().decode("unicode_escape").encode("latin-1"))
                if a.signal:
                    os.kill(pid, getattr(signal, "SIG" + a.signal))
        if stalled_at is not None:
            time.sleep(0.01)
            r = None
        else:
            r, _, _ = select.select([master], [], [], 0.05)
        if r:
            try:
                out += os.read(master, 4096)
            except OSError:
                pass
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            exited_at = time.monotonic()
            break
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status = "timeout"
    time.sleep(0.05)
    while select.select([master], [], [], 0)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    after = termios.tcgetattr(slave)
    sys.stdout.write(out.decode("utf-8", "replace").replace("\r", ""))
    after_s = "%.3f" % (exited_at - acted_at) if acted_at is not None and status != "timeout" else "none"
    print("\npty_run: status %s termios %s after %s" %
          (status, "same" if before == after else "changed", after_s))


if __name__ == "__main__":
    main()
