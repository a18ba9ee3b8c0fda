"""A fake systemd notify socket (NOTIFY_SOCKET) for handoff under test."""

import array
import os
import socket
import subprocess
import sys
import threading
import time

from .procs import start_time
from .wait import WaitTimeout


def split_lines(text):
    """The lines of a datagram as systemd 252's manager reads them
    (strv_split_newlines(): extract_first_word() with separators "\\n\\r"
    and no flags): lines end at \\n or \\r, empty ones are skipped, a
    backslash takes the next character as it is. None when the text ends in
    a lone backslash: systemd drops such a datagram whole."""
    lines, line, escaped = [], None, False
    for ch in text:
        if escaped:
            line.append(ch)
            escaped = False
        elif ch in "\n\r":
            if line is not None:
                lines.append("".join(line))
            line = None
        else:
            if line is None:
                line = []
            if ch == "\\":
                escaped = True
            else:
                line.append(ch)
    if escaped:
        return None
    if line is not None:
        lines.append("".join(line))
    return lines


class Datagram:
    """One datagram: sender pid (SCM_CREDENTIALS), text, number of fds that
    came with it, arrival time (CLOCK_MONOTONIC µs) and its KEY=VALUE lines,
    read as systemd reads them (the first line of a key counts). A datagram
    systemd would drop (.dropped) has no fields. .main_started is the start
    time of the process MAINPID= names, read as the datagram is made (on
    arrival): later that pid may be another process's."""

    def __init__(self, pid, text, nfds, t_us=None):
        self.pid, self.text, self.nfds, self.t_us = pid, text, nfds, t_us
        self.fields = {}
        body = text[:-1] if text.endswith("\0") else text  # one trailing NUL is allowed
        lines = None if "\0" in body else split_lines(body)
        self.dropped = lines is None
        for line in ([] if self.dropped else lines):
            if "=" in line:
                k, v = line.split("=", 1)
                self.fields.setdefault(k, v)
        main = self.fields.get("MAINPID", "")
        self.main_started = start_time(int(main)) if main.isdigit() else None

    def __repr__(self):
        return f"<{self.pid}: {self.text!r}{' (dropped)' if self.dropped else ''}>"


# Sends from fresh sockets until one cannot send its first datagram, and
# prints how many it sent (FakeSystemd.fill()).
_FILL = r'''
import socket, sys
n = 0
while True:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(sys.argv[1])
    s.setblocking(False)
    sent = 0
    try:
        while True:
            s.send(b"X_FILLER=1")
            sent += 1
    except BlockingIOError:
        pass
    s.close()
    n += sent
    if sent == 0:
        break
print(n)
'''


# The start of a datagram FakeSystemd.sync() sends to itself.
_SYNC = "X_FAKE_SYSTEMD_SYNC="


class FakeSystemd:
    """A NOTIFY_SOCKET that records every datagram with its sender's pid and
    answers BARRIER=1 by closing the fd that came with it, as systemd does
    (every other fd that arrives is closed too).

    The socket is tmpdir/name. thread_setup, if given, runs first in the
    receiving thread (the benchmark makes it a real-time thread there)."""

    def __init__(self, tmpdir, name="notify.sock", thread_setup=None):
        self.path = os.path.join(tmpdir, name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.1)
        self.messages = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)   # notified on every datagram
        self.running = True
        self._reading = threading.Event()   # cleared: the queue fills, as a busy manager's does
        self._reading.set()
        self._paused = threading.Event()    # the loop has seen _reading cleared
        self._thread_setup = thread_setup
        self._synced = set()   # sync() tokens read, kept out of .messages
        self.thread = threading.Thread(target=self._loop, name="fake-systemd", daemon=True)
        self.thread.start()

    def _loop(self):
        if self._thread_setup:
            self._thread_setup()
        fdsize = array.array("i").itemsize
        while self.running:
            if not self._reading.is_set():
                self._paused.set()
                self._reading.wait(0.1)
                continue
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(64 * fdsize))
            except socket.timeout:
                continue
            except OSError:
                return
            t_us = time.monotonic_ns() // 1000
            pid, fds = None, []
            for level, typ, payload in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(payload[0:4], sys.byteorder)
                elif level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(payload[: len(payload) - len(payload) % fdsize])
                    fds.extend(a)
            text = data.decode(errors="replace")
            if pid == os.getpid() and text.startswith(_SYNC):
                for fd in fds:
                    os.close(fd)
                with self.lock:
                    self._synced.add(text)
                    self.arrived.notify_all()
                continue
            datagram = Datagram(pid, text, len(fds), t_us)
            with self.lock:
                self.messages.append(datagram)
                fds = self._keep_fds(text, fds)
                self.arrived.notify_all()
            for fd in fds:  # answering BARRIER=1 (and dropping anything else)
                os.close(fd)

    def pause(self, timeout=5):
        """Stops reading, as a manager busy elsewhere does; returns once the
        receiving thread has stopped."""
        self._paused.clear()
        self._reading.clear()
        if not self._paused.wait(timeout):
            raise WaitTimeout("the fake manager's thread did not pause")

    def resume(self):
        self._reading.set()

    def fill(self, runner=None):
        """Fills the socket's queue (paused first) until a fresh sender's
        first datagram gets EAGAIN; returns how many datagrams it took.
        One sender is not enough where net.unix.max_dgram_qlen is 512 (as
        systemd sets it): its own send buffer fills first. The senders are
        a python process that runner starts (a command prefix ending in a
        python interpreter; default: this one), as another uid, say: what
        they sent stays queued after they exit."""
        p = subprocess.run([*(runner or [sys.executable]), "-c", _FILL, self.path], capture_output=True,
                           text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"filling {self.path} failed: {p.stderr}")
        return int(p.stdout)

    def _keep_fds(self, text, fds):
        """Which of a datagram's fds not to close yet (called with the lock
        held); returns the ones to close. A subclass may hold a barrier."""
        return fds

    def sync(self, timeout=10):
        """Returns once every datagram sent here before the call has been
        read: a datagram of our own, sent now, queues behind them (kept out
        of .messages). Does nothing while the queue is not read (pause())
        or the socket is gone (close())."""
        if not self.running or not self._reading.is_set():
            return
        token = f"{_SYNC}{time.monotonic_ns()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            try:
                s.sendto(token.encode(), self.path)
            except OSError:
                return
        deadline = time.monotonic() + timeout
        with self.arrived:
            while token not in self._synced:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(f"timed out after {timeout}s waiting for the fake manager to read its queue")
                self.arrived.wait(left)
            self._synced.discard(token)

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def _matching(self, key, value):
        return [m for m in self.messages if key in m.fields and (value is None or m.fields[key] == value)]

    def count(self, key, value=None):
        with self.lock:
            return len(self._matching(key, value))

    def wait_count(self, key, n, timeout=10, value="1"):
        """Waits until n datagrams carry KEY=value (any value: value=None);
        returns the n-th, whose .t_us is its arrival time."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = self._matching(key, value)
                if len(found) >= n:
                    return found[n - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(f"timed out after {timeout}s waiting for {n} x {key}={value} "
                                      f"(have {self.messages})")
                self.arrived.wait(left)

    def close(self):
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class HoldingSystemd(FakeSystemd):
    """FakeSystemd that, while hold is set, keeps the fd of a BARRIER=1
    datagram open (systemd answers a barrier by closing it) until release().
    That parks a handover-mode reload between MAINPID= and TAKEOVER (up to
    handoff's own 5 s barrier timeout); .barriers is set once one is held."""

    def __init__(self, tmpdir, hold=True):
        self.hold = hold
        self.held = []
        self.barriers = threading.Event()
        super().__init__(tmpdir)

    def _keep_fds(self, text, fds):
        if self.hold and "BARRIER=1" in text.split("\n"):
            self.held.extend(fds)
            self.barriers.set()
            return []
        return fds

    def release(self):
        with self.lock:
            self.hold = False
            held, self.held = self.held, []
        for fd in held:
            os.close(fd)

    def close(self):
        self.release()
        super().close()
