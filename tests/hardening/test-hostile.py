#!/usr/bin/python3
"""Hostile input (issue 18): each attack runs as another, unprivileged uid
(65534, "nobody", through setpriv(1); the tests skip with 77 when that is
impossible) while a load client runs, and the test then asserts that
handoff still reloads within 1 s ("handoff reload" exit 0), that its memory
stayed bounded and that no request failed.

- freeze: a TCP socket with SO_LINGER set and unsent data, passed with
  SCM_RIGHTS (and its sender's copy closed) to the control socket and to a
  generation's notify socket; the same socket queued inside a unix socket
  that is passed instead (nobody can clear its SO_LINGER: its release
  waits in whichever task drops the unix socket), to a generation's notify
  socket and to the spare one; there, handoff must also answer within 1 s
  and stop within 10 s, while the sockets linger for 60 s;
- saturate: nested lingering sockets holding every closer thread, their
  queue filled, then more lingering sockets: handoff stops reading the
  notify socket rather than close them in its loop; status answers
  throughout, and once the attacker is gone, a reload works; the same
  through the control socket where the kernel lets fds in: handoff stops
  accepting rather than hold every connection it refuses;
- starve: 900 idle connections to the control socket;
- squat: binding the name the next handoff would use (the runtime
  directory is 0700: impossible), and a runtime directory others can write
  is refused; the abstract name handoff takes then, bound first: it takes
  another; where getrandom() fails, neither that name nor a notify
  socket's is the pid with the clock or with a stack address;
- fds 0-2 closed at start: they end up on /dev/null, no log line goes into
  a socket;
- a unix --listen path whose live owner's backlog is full: start-up fails
  at once with a clear message;
- a unix --listen path whose directory is swapped for another between
  the stale socket probe and its removal, or right after the bind: the
  other's file of that name is not removed, then or at the stop;
- the abstract control name of handoff before 0.2 with a full backlog:
  the reload/status client does not hang on it; nor on a control socket
  path under a FUSE file system that never answers a lookup;
- status --json larger than the old 4088-byte cut is valid JSON;
- EMFILE: out of fds, handoff neither spins nor stops answering for good.
- a compromised generation (not another uid) stores a file on a FUSE file
  system whose server never answers a poll: handoff does not poll it;
  where kcmp(2) fails, one whose server never answers a getattr: handoff
  does not fstat() it; nor when systemd passes such a file at start; nor
  does it look up the path of a socket such a server stored under
  handoff's name, bound inside such a file system.

The control socket is in a 0700 directory, so another uid cannot even
connect to it. To test the layers behind that (the peer check at accept,
SO_PASSRIGHTS), the freeze and starve tests put it in a directory of their
own ($RUNTIME_DIRECTORY, 0755) and open the socket file to everyone, as a
careless RuntimeDirectoryMode= and a chmod would."""

import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import time

import harness
from control_socket import connect_control, control_socket_path
from harness import (FIXTURE, HANDOFF, MODE, FakeSystemd, Handoff, Load, Skip, check, children_of, fixture_cmd,
                     free_port, http_get, run, serving_pid, set_args, wait_for)
from handofftest.procs import pid_alive, stat_fields
from handofftest.handoff import NO_KCMP, NO_STATX, seccomp_prefix
from fusefs import HangingPollFs
from hardening import (NOBODY, PYTHON, Launched, listening_socket, notify_socket_of, notifying_app, rss_kib,
                       showing_logs, under_asan)

SETPRIV = shutil.which("setpriv")
RELOAD_WITHIN = 1.0
RSS_GROWTH_KIB = 4096


def need_root_and_setpriv():
    if os.getuid() != 0:
        raise Skip("needs root: attacks as another uid (65534)")
    if not SETPRIV:
        raise Skip("setpriv(1) (util-linux) is not installed")


def as_nobody():
    return [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def dir_for_all(tmp, name, mode):
    """The set-up of an attack that does not depend on the mode: it runs in
    the supervise pass only, as root with setpriv. Returns a new directory
    in tmp with mode (past the umask), which others may write: as
    $RUNTIME_DIRECTORY, one handoff refuses for its control socket."""
    need_root_and_setpriv()
    if MODE != "supervise":
        raise Skip("mode-independent: runs in the supervise pass")
    d = os.path.join(tmp, name)
    os.mkdir(d)
    os.chmod(d, mode)
    return d


class Attacker:
    """A python script run as uid 65534. It prints one line when its attack
    is in place and then holds everything open until stop()."""

    def __init__(self, script, *args, timeout=20):
        self.proc = subprocess.Popen([*as_nobody(), PYTHON, "-c", script, *map(str, args)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.stop()
            raise harness.TestFailure(f"attacker did not report within {timeout}s")
        self.line = self.proc.stdout.readline().strip()
        check(self.line, f"attacker failed: {self.proc.stderr.read() if self.proc.poll() is not None else ''}")

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(tmp, *extra, env=None, args=("--init-delay", "50"), verbose=True, measure=True):
    """handoff in this pass's mode (with -v unless verbose is False: the
    tests that count warnings need the debug lines out of the way)."""
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, *args)
    fake = FakeSystemd(tmp)
    v = ["-v"] if verbose else []
    h = Handoff(tmp, [*v, "-l", f"127.0.0.1:{port}", f"--mode={MODE}", "--drain-timeout=5s", *extra],
                fixture_cmd(args_file), notify=fake, env=env)
    h.port = port
    h.wait_ready(1)
    if measure:
        baseline(h)
    return h


def baseline(h, settle=False):
    """One reload before the attack, to know what a reload costs now. With
    settle, also waits until what it retired is gone (and its fds with it)."""
    t0 = time.monotonic()
    p = subprocess.run([HANDOFF, "reload", f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, f"baseline reload: {p.returncode} {p.stderr}")
    _baseline.append(time.monotonic() - t0)
    if MODE == "handover":
        wait_for(lambda: "Took over as the main process" in h.log() or not h.log(), 10, "the takeover")
    if settle:
        gone = "The previous handoff has exited" if MODE == "handover" else "Retired generation 1 ("
        wait_for(lambda: gone in h.log(), 20, f"{gone!r}")


def open_runtime_dir(tmp):
    """A runtime directory another uid can reach (0755 as RuntimeDirectory=
    makes it by default) for a handoff whose socket file is then opened to
    everyone (open_socket_file)."""
    d = os.path.join(tmp, "rt")
    os.mkdir(d, 0o755)
    os.chmod(tmp, 0o755)
    return d


def open_socket_file(h):
    """Opens handoff's socket file to everyone; returns its plain path (the
    /proc/PID/root view is for root and handoff's own uid only)."""
    path = wait_for(lambda: control_socket_path(h.main_pid()), 10, "the control socket")
    os.chmod(path, 0o666)
    return re.sub(r"^/proc/\d+/root", "", path)


# The same reload without an attack, on this machine now: on a loaded
# machine (2 shared cores, sanitizers) a plain reload alone can take more
# than a second. The limit is then the 1 s plus twice that time; an attack
# that works costs far more (the linger time, 60 s; the request timeout, 5 s
# per 64 connections; forever).
_baseline = []


# A reload slower than the limit but faster than this is retried (twice at
# most) before the test fails: on a machine shared by several test runs a
# single reload can be late by chance, while a working attack makes every
# reload late (the attacker holds on) and most of them far later than this.
NOISE = 5.0


def reload_within(h, limit=RELOAD_WITHIN, takeover_logged=True):
    """handoff reload exits 0 within limit (see _baseline and NOISE)."""
    if _baseline and _baseline[-1] > limit / 2:
        limit += 2 * _baseline[-1]
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        p = subprocess.run([HANDOFF, "reload", f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
        times.append(took)
        check(p.returncode == 0, f"reload: exit {p.returncode}: {p.stderr}\n{h.log()[-3000:]}")
        if MODE == "handover" and takeover_logged:
            h.wait_log(f"handoff[{h.main_pid()}]: Took over as the main process")
        if took < limit or took >= NOISE:
            break
    check(took < limit, f"reload took {', '.join(f'{t:.2f}' for t in times)} s (limit {limit:.2f} s)")
    print(f"  reload: {' '.join(f'{t * 1000:.0f}' for t in times)} ms" +
          (f" (without the attack: {_baseline[-1] * 1000:.0f} ms)" if _baseline else ""))
    return took


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class UnderLoad(contextlib.ExitStack):
    """The scene of an attack: h, serving, with a load client on port (h's
    by default) and rss0, handoff's RSS as the attack starts. Leaving the
    with-block, pass or fail, stops the attackers started by attack() (and
    whatever else a test gave to callback()), kills the load client if it
    still runs and closes h."""

    def __init__(self, h, tmp, port=None):
        super().__init__()
        self.h = h
        self.callback(h.close)
        try:
            self.load = Load(f"127.0.0.1:{port or h.port}", tmp)
        except BaseException:
            self.close()
            raise
        self.callback(lambda: self.load.proc.poll() is None and self.load.proc.kill())
        self.rss0 = None

    def __enter__(self):
        super().__enter__()
        try:
            self.rss0 = rss_kib(self.h.main_pid())
        except BaseException:
            self.close()
            raise
        return self

    def attack(self, script, *args, **kw):
        a = Attacker(script, *args, **kw)
        self.callback(a.stop)
        return a

    def finish(self, stop_within=40):
        """No failed request, handoff's RSS bounded, a clean stop within
        stop_within s; returns how long the stop took."""
        res = self.load.stop()
        check(res["failed"] == 0, f"failed requests: {res}")
        check(res["ok"] > 0, f"the load client was served: {res}")
        pid = self.h.main_pid()
        rss = rss_kib(pid)
        check(rss - self.rss0 < RSS_GROWTH_KIB or under_asan(pid),
              f"handoff's RSS grew from {self.rss0} to {rss} KiB")
        t0 = time.monotonic()
        check(self.h.stop(timeout=stop_within) == 0, self.h.log())
        return time.monotonic() - t0


# ---- (a) freeze --------------------------------------------------------------

# A TCP connection whose peer never reads, its send queue full, SO_LINGER 60 s:
# the close() that drops its last reference waits until the data is sent or
# 60 s pass. The attacker passes it and closes its own copy, so that the
# receiver's close is that last one. argv: kind (seqpacket|dgram), address.
FREEZE = r'''
import array, os, socket, struct, sys
kind, addr = sys.argv[1], sys.argv[2]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
srv.bind(("127.0.0.1", 0))
srv.listen(1)
c = socket.socket()
c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
c.connect(srv.getsockname())
peer, _ = srv.accept()
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 60))
c.setblocking(False)
queued = 0
try:
    while True:
        queued += c.send(b"x" * 65536)
except BlockingIOError:
    pass
typ = socket.SOCK_SEQPACKET if kind == "seqpacket" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_UNIX, typ)
try:
    s.connect(addr)
    if kind == "dgram":
        # Junk first, so that handoff is still busy when we close our copy
        # below: its close is then the last one, the one that waits.
        s.setblocking(False)
        try:
            for _ in range(300):
                s.send(b"STATUS=junk")
        except BlockingIOError:
            pass
        s.setblocking(True)
    s.sendmsg([b"RELOAD" if kind == "seqpacket" else b"READY=1"],
              [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [c.fileno()]))])
    result = "sent"
except OSError as e:
    result = f"refused:{e.errno}"
    # Not passed: our close is the last one, and would wait.
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 0, 0))
# Our close is the last one, and waits for the linger time, if handoff let
# go of the fd before it without reading it (closing the connection with
# the message queued: the kernel releases the fd, and had we closed first,
# handoff's close would have waited). Say "dropped" then, at once, rather
# than hang here for 60 s: the test fails on it.
import threading
closer = threading.Thread(target=c.close, daemon=True)
closer.start()
closer.join(5)
print("dropped" if result == "sent" and closer.is_alive() else result, queued, flush=True)
sys.stdin.read()
'''


def test_freeze_notify_socket(tmp):
    """A lingering socket passed to the serving generation's notify socket
    by uid 65534: dropped for its uid, its fd closed without waiting."""
    need_root_and_setpriv()
    h = start(tmp, "--notify-socket=abstract")  # a path socket sits in a 0700 dir: out of reach
    with UnderLoad(h, tmp) as scene:
        address = notify_socket_of(h.generation_pid(2))  # the serving one, since the baseline reload
        for _ in range(3):
            a = scene.attack(FREEZE, "dgram", "@" + address[1:])
            check(a.line.startswith("sent "), f"the attacker passed its socket: {a.line}")
            check(int(a.line.split()[1]) > 0, f"with unsent data: {a.line}")
        wait_for(lambda: h.log().count("sender has another uid") >= 3, 10, "the datagrams dropped")
        took = reload_within(h)
        print(f"  reload after 3 lingering sockets on the notify socket: {took * 1000:.0f} ms")
        scene.finish()


# An fd of a file on a FUSE file system whose server never answers
# FUSE_FLUSH (uid 65534 may mount one of its own: fusermount3). Every close()
# of an fd of it waits for that answer, the last reference or not, and
# uninterruptibly: a closer thread cannot take that wait off the closing
# thread. The attacker keeps its own copy (closing it would wait too).
# argv: kind (seqpacket|dgram), address, path. Prints "sent".
FLUSH = r"""
import array, os, socket, sys
kind, addr, path = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open(path, os.O_RDONLY)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET if kind == "seqpacket" else socket.SOCK_DGRAM)
s.connect("\0" + addr[1:] if addr.startswith("@") else addr)
s.sendmsg([b"RELOAD" if kind == "seqpacket" else b"READY=1"],
          [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
print("sent", flush=True)
sys.stdin.read()
"""


def hanging_fs(mnt, **holds):
    """HangingPollFs(mnt, **holds), mounted on the directory mnt; Skip where
    none can be (not root, no /dev/fuse, the mount refused)."""
    if os.getuid() != 0 or not os.path.exists("/dev/fuse"):
        raise Skip("needs root and /dev/fuse: mounts a FUSE file system")
    try:
        return HangingPollFs(mnt, **holds)
    except OSError as e:
        raise Skip(f"cannot mount a FUSE file system here: {e}")


def hanging_flush_fs(tmp):
    """A FUSE file system whose server holds every FUSE_FLUSH, that uid
    65534 may use: (fs, the path of its file)."""
    need_root_and_setpriv()
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    os.chmod(tmp, 0o755)  # for uid 65534 to reach the mount
    return hanging_fs(mnt, hold_flush=True, allow_other=True), os.path.join(mnt, "f")


def test_freeze_notify_socket_fuse_flush(tmp):
    """uid 65534 passes an fd of a FUSE file whose server never answers
    FUSE_FLUSH to the serving generation's abstract notify socket. Taken
    into handoff's fd table and closed there, its close() waited for that
    answer, closer thread or not: no status, no reload, no stop. A sender
    that may not pass fds has none taken in: a closer thread drops its
    datagram, and the flush waits there."""
    fs, path = hanging_flush_fs(tmp)
    try:
        h = start(tmp, "--notify-socket=abstract")  # a path socket sits in a 0700 dir: out of reach
    except BaseException:
        fs.stop()
        raise
    with UnderLoad(h, tmp) as scene:
        # Answers the flushes held before handoff or the attacker is
        # stopped: neither could be, in a close that waits for one.
        scene.callback(fs.stop)
        address = notify_socket_of(h.generation_pid(2))  # the serving one, since the baseline reload
        scene.attack(FLUSH, "dgram", "@" + address[1:], path)
        scene.callback(fs.stop)
        status_within(h, "after the FUSE file was passed")
        wait_for(lambda: "sender has another uid" in h.log(), 10, "the datagram dropped")
        check(h.main_pid() not in fs.flushers, f"handoff's main thread flushed the FUSE file: {fs.flushers}")
        reload_within(h)
        # The closer that flushes waits until the server answers (no signal
        # ends that wait), and the process is reaped only once it returns:
        # not covered (README, Security).
        fs.stop()
        scene.finish()


# What the closers' attackers share (a prefix of their scripts): keep,
# which holds what must stay open until exit; rights(), SCM_RIGHTS for a
# list of fds; unix_address(), "@name" as an abstract address; lingering(S),
# a TCP socket with SO_LINGER S seconds and a full send queue towards a
# peer that never reads (its exit resets it), and how much it queued.
_LINGERING = r"""
import array, socket, struct, sys
keep = []
def rights(fds):
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
def unix_address(a):
    return "\0" + a[1:] if a.startswith("@") else a
def lingering(seconds):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    c.connect(srv.getsockname())
    peer, _ = srv.accept()
    keep.extend([srv, peer])  # the peer never reads; its exit resets c
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, seconds))
    c.setblocking(False)
    queued = 0
    try:
        while True:
            queued += c.send(b"x" * 65536)
    except BlockingIOError:
        pass
    return c, queued
"""

# The same socket one level down: queued inside a unix socket (a, b) whose
# other end b is passed and closed. The lingering socket was never received,
# so nobody can clear its SO_LINGER: the close of b that drops b's last
# reference releases the queue, and with it the lingering socket, in the
# closing task. With "direct", a second datagram passes a lingering socket
# itself; it is still queued when the first makes handoff drop the socket
# (the spare socket is dropped after one datagram), and goes with it.
# argv: address, "nested" or "nested+direct". Prints "sent QUEUED".
NESTED = _LINGERING + r"""
addr, what = unix_address(sys.argv[1]), sys.argv[2]
c, queued = lingering(60)
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
a.sendmsg([b"x"], rights([c.fileno()]))
c.close()  # b's queue holds it now
a.close()
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(addr)
s.sendmsg([b"READY=1"], rights([b.fileno()]))
b.close()  # the datagram holds it now: handoff is stopped, it has not read
if what == "nested+direct":
    c2, _ = lingering(60)
    s.sendmsg([b"READY=1"], rights([c2.fileno()]))
    c2.close()
print("sent", queued, flush=True)
sys.stdin.read()
"""

# Far below the linger time (60 s), far above a stop's usual few ms.
STOP_WITHIN = 10.0


@contextlib.contextmanager
def stopped(pid):
    """handoff (pid) stopped by SIGSTOP while the body runs, and continued
    after it whatever happens: what an attacker connects and sends
    meanwhile is queued before handoff reads or accepts it."""
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: (stat_fields(pid) or ["?"])[0] == "T", 5, "handoff stopped")
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def attack_stopped(scene, address, what, n=1):
    """Runs n NESTED attackers against address while handoff is stopped
    (SIGSTOP), so that every copy the attacker had is closed before handoff
    reads: handoff's is the last reference then, as an attacker racing it
    would get sooner or later."""
    with stopped(scene.h.main_pid()):
        for _ in range(n):
            a = scene.attack(NESTED, address, what)
            check(a.line.startswith("sent ") and int(a.line.split()[1]) > 0, f"the attacker passed its socket: {a.line}")


def answers_and_stops_promptly(scene):
    """handoff status and a reload answer within far less than the linger
    time, and handoff exits promptly at its stop, closers waiting or not."""
    h = scene.h
    t0 = time.monotonic()
    p = subprocess.run([HANDOFF, "status", f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    check(p.returncode == 0 and took < RELOAD_WITHIN + 2 * (_baseline[-1] if _baseline else 0),
          f"status: exit {p.returncode} after {took:.2f} s: {p.stderr}\n{h.log()[-3000:]}")
    print(f"  status: {took * 1000:.0f} ms")
    reload_within(h)
    print(f"  stop: {scene.finish(STOP_WITHIN) * 1000:.0f} ms")


def test_freeze_notify_socket_nested(tmp):
    """A lingering socket queued inside a unix socket, which uid 65534
    passes to the serving generation's abstract notify socket: the datagram
    is dropped for its uid and the unix socket goes to a closer, which waits
    out the linger time while the loop answers."""
    need_root_and_setpriv()
    h = start(tmp, "--notify-socket=abstract")
    with UnderLoad(h, tmp) as scene:
        address = notify_socket_of(h.generation_pid(2))  # the serving one, since the baseline reload
        attack_stopped(scene, "@" + address[1:], "nested", n=3)
        # A loop that waits out each linger time logs one in 60 s.
        wait_for(lambda: h.log().count("sender has another uid") >= 3, 10, "the 3 datagrams dropped")
        answers_and_stops_promptly(scene)


# Saturating the closers: lingering sockets nested in unix sockets (as
# NESTED, lingering for ~68 years) to hold every closer thread, then
# harmless unix sockets, 253 a datagram, to fill their queue, then more
# nested lingering sockets. Each datagram is sent without blocking, and the
# attacker stops at the first one the socket does not take (within a
# second: handoff no longer reads it). Its own copy of each unix socket is
# closed right after the send, before handoff reads as a rule, so that
# handoff's close is the last one, the one that waits; where it is not,
# SIGALRM ends the attacker's wait after 0.2 s (a linger's wait ends at any
# signal: handoff is not stopped as attack_stopped() does it, since SIGSTOP
# would end every closer's wait). With "nested+filler", 252 harmless unix
# sockets come before the nested one in each datagram: a handoff that
# closes them itself, one by one, comes to the lingering socket after the
# attacker has let go of its copy. argv: address, "nested", "filler" or
# "nested+filler", how many. Prints "sent K".
SATURATE = _LINGERING + r"""
import select, signal
signal.signal(signal.SIGALRM, lambda *_: None)
addr, what, n = unix_address(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(addr)
s.setblocking(False)
def send(fds):
    while True:
        try:
            s.sendmsg([b"X=1"], rights(fds))
            return True
        except BlockingIOError:
            if not select.select([], [s], [], 1.0)[1]:
                return False
sent = 0
for _ in range(n):
    if what.startswith("nested"):
        c, _ = lingering(2**31 - 1)
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.sendmsg([b"x"], rights([c.fileno()]))
        c.close(); a.close()
        pairs = [socket.socketpair() for _ in range(252 if what == "nested+filler" else 0)]
        ok = send([p[0].fileno() for p in pairs] + [b.fileno()])
        for p in pairs:
            p[0].close(); p[1].close()
        if ok:
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            b.close()
            signal.setitimer(signal.ITIMER_REAL, 0)
        else:
            keep.append(b)  # ours is the last: let go at exit, which does not linger
    else:
        pairs = [socket.socketpair() for _ in range(253)]
        ok = send([p[0].fileno() for p in pairs])
        for p in pairs:
            p[0].close(); p[1].close()
    if not ok:
        break
    sent += 1
print("sent", sent, flush=True)
sys.stdin.read()
"""

CLOSERS_MAX = 16  # close-async.c


def closer_threads(pid):
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                n += f.read().strip() == "handoff-close"
        except OSError:
            pass
    return n


def status_within(h, what):
    """handoff status answers within far less than its timeout."""
    limit = RELOAD_WITHIN + 2 * (_baseline[-1] if _baseline else 0)
    t0 = time.monotonic()
    p = subprocess.run([HANDOFF, "status", f"--pid={h.main_pid()}", "--timeout=5s"], capture_output=True, text=True,
                       timeout=60)
    took = time.monotonic() - t0
    check(p.returncode == 0 and took < limit,
          f"status {what}: exit {p.returncode} after {took:.2f} s (limit {limit:.2f} s): {p.stderr}\n{h.log()[-3000:]}")
    print(f"  status {what}: {took * 1000:.0f} ms")


def test_saturate_closers(tmp):
    """uid 65534 holds every closer thread with nested lingering sockets and
    sends more, behind 252 harmless unix sockets each: their datagrams wait
    in the abstract notify socket for a closer to take them off, rather than
    come into handoff's loop, which stops reading that socket; status
    answers throughout, and once the attacker is gone the socket is read
    again and a reload works. (No fd of a sender that may not pass fds
    comes into handoff's table, or into the closers' queue: the queue
    cannot be filled from a notify socket any more.)"""
    need_root_and_setpriv()
    h = start(tmp, "--notify-socket=abstract", "--start-timeout=3s")
    attackers = []

    def attack(what, n):
        a = scene.attack(SATURATE, address, what, n, timeout=60)
        attackers.append(a)
        check(a.line.startswith("sent "), f"the attacker: {a.line}")
        return int(a.line.split()[1])

    with UnderLoad(h, tmp) as scene:
        address = "@" + notify_socket_of(h.generation_pid(2))[1:]  # the serving one, since the baseline reload
        # Every closer held (the attacker's own close is the last one now
        # and then: then its closer is not), and the datagrams after that
        # wait in the socket.
        for tries in range(4, 0, -1):
            check(attack("nested", 2 * CLOSERS_MAX) > 0, "nested sockets sent")
            try:
                wait_for(lambda: closer_threads(h.main_pid()) == CLOSERS_MAX, 2 if tries > 1 else 10,
                         f"{CLOSERS_MAX} closers held")
                break
            except harness.TestFailure:
                if tries == 1:
                    raise
        status_within(h, f"with {CLOSERS_MAX} closers held")
        # More lingering sockets: before, the loop took them in, and closed
        # them itself once the closers' queue was full.
        n = attack("nested+filler", 30)
        print(f"  {n} more nested lingering sockets queued on the notify socket")
        h.wait_log("Closer threads saturated", 10)
        status_within(h, "after more lingering sockets")
        h.wait_log("Not reading generation 2's notify socket until a closer thread is free", 5)
        status_within(h, "with the notify socket paused")
        if MODE == "supervise":
            # The price: a new generation's abstract socket is not read
            # either, and its start times out. (In handover mode the next
            # handoff has closers of its own.)
            p = subprocess.run([HANDOFF, "reload", f"--pid={h.main_pid()}"], capture_output=True, text=True,
                               timeout=60)
            check(p.returncode != 0, f"a reload while the closers are saturated: exit {p.returncode}")
            h.wait_log("the closer threads were saturated", 10)
            print(f"  reload while saturated: exit {p.returncode}, {p.stderr.strip()}")
            status_within(h, "after that reload")
        # The attacker gone, its lingering sockets are reset: the closers
        # finish, and the socket is read again.
        for a in attackers:
            a.stop()
        wait_for(lambda: closer_threads(h.main_pid()) == 0, 30, "the closers done")
        h.wait_log("Reading generation 2's notify socket again", 10)
        reload_within(h)
        scene.finish()


def test_freeze_spare_notify_socket(tmp):
    """The same, and a lingering socket passed directly behind it, sent to
    the spare notify socket (a gone generation's, kept for the next one): it
    is dropped after the first datagram, and the second is still queued on
    it. Supervise mode: in handover mode the spare leaves with the old
    handoff."""
    need_root_and_setpriv()
    if MODE != "supervise":
        raise Skip("the spare notify socket stays in one handoff process in supervise mode only")
    h = start(tmp, "--notify-socket=abstract", measure=False)
    with UnderLoad(h, tmp) as scene:
        address = notify_socket_of(h.generation_pid(1))
        baseline(h, settle=True)  # generation 1 gone: its socket is the spare
        scene.rss0 = rss_kib(h.main_pid())
        name = "@" + address[1:]
        with open("/proc/net/unix") as f:
            check(any(line.split()[-1] == name for line in f if len(line.split()) >= 8),
                  f"{name} is kept as the spare")
        attack_stopped(scene, name, "nested+direct")
        h.wait_log("Not reusing notify socket", 10)
        answers_and_stops_promptly(scene)


def test_freeze_control_socket(tmp):
    """The same on the control socket (opened up to uid 65534): the kernel
    refuses the fd (SO_PASSRIGHTS=0, Linux >= 6.16), or handoff closes it
    without waiting; the connection is closed at accept either way."""
    need_root_and_setpriv()
    h = start(tmp, env={"RUNTIME_DIRECTORY": open_runtime_dir(tmp)}, verbose=False)
    attackers = []
    with UnderLoad(h, tmp) as scene:
        path = open_socket_file(h)
        for _ in range(3):
            a = scene.attack(FREEZE, "seqpacket", path)
            attackers.append(a)
            # EPERM: the kernel refused the fd (SO_PASSRIGHTS); EPIPE or
            # ECONNRESET: handoff had closed the connection at accept.
            check(a.line.startswith(("sent ", "refused:1 ", "refused:32 ", "refused:104 ")),
                  f"sent, or refused (\"dropped\": handoff let go of the fd unread): {a.line}")
        print(f"  attacker's sendmsg: {[a.line.split()[0] for a in attackers]} (refused:1 = EPERM, SO_PASSRIGHTS; "
              f"32 = EPIPE, closed at accept)")
        wait_for(lambda: "Refused a control connection from pid" in h.log(), 5, "the attacker refused at accept")
        check(h.log().count("Refused a control connection") == 1, "logged once, not per connection")
        took = reload_within(h)
        print(f"  reload after 3 lingering sockets on the control socket: {took * 1000:.0f} ms")
        scene.finish()


def test_freeze_control_socket_kernel_without_passrights(tmp):
    """The same where the kernel lets fds in (older than 6.16; forced here
    with HANDOFF_TEST_PASS_RIGHTS=1): the fds are read off the connection
    and closed without waiting before it is closed."""
    need_root_and_setpriv()
    h = start(tmp, env={"RUNTIME_DIRECTORY": open_runtime_dir(tmp), "HANDOFF_TEST_PASS_RIGHTS": "1"}, verbose=False)
    attackers = []
    with UnderLoad(h, tmp) as scene:
        path = open_socket_file(h)
        # handoff refuses the attacker's uid at accept and shuts the
        # connection down at once, so an attacker that sends after that
        # gets EPIPE and no fd reaches handoff. To be sure the fds do get
        # through, handoff is stopped while the attackers connect and send
        # (a unix connect completes in the listener's backlog, before any
        # accept): the fds wait in queued messages, then handoff runs on.
        with stopped(h.main_pid()):
            for _ in range(3):
                a = scene.attack(FREEZE, "seqpacket", path)
                attackers.append(a)
                check(a.line.startswith("sent "), f"the attacker passed its socket: {a.line}")
                check(int(a.line.split()[1]) > 0, f"with unsent data: {a.line}")
        wait_for(lambda: "Refused a control connection from pid" in h.log(), 5, "the attacker refused at accept")
        took = reload_within(h)
        print(f"  fds let in: {[a.line.split()[0] for a in attackers]}; reload {took * 1000:.0f} ms")
        scene.finish()


def test_freeze_control_socket_fuse_flush_kernel_without_passrights(tmp):
    """The FUSE file of test_freeze_notify_socket_fuse_flush, passed by uid
    65534 on a connection to the control socket where the kernel lets fds
    in (older than 6.16; forced with HANDOFF_TEST_PASS_RIGHTS=1). Refused
    at accept, the connection's messages were read first, the fd taken into
    handoff's table and closed there: that close() waited for the server.
    A refused connection is now closed by a closer unread, and the kernel
    releases what is queued on it there, flushing nothing."""
    fs, path = hanging_flush_fs(tmp)
    try:
        h = start(tmp, env={"RUNTIME_DIRECTORY": open_runtime_dir(tmp), "HANDOFF_TEST_PASS_RIGHTS": "1"},
                  verbose=False)
    except BaseException:
        fs.stop()
        raise
    with UnderLoad(h, tmp) as scene:
        scene.callback(fs.stop)  # before handoff or the attacker is stopped (see above)
        socket_path = open_socket_file(h)
        # Stopped while the attacker connects and sends, so that its message
        # is queued before the accept (see the test above).
        with stopped(h.main_pid()):
            scene.attack(FLUSH, "seqpacket", socket_path, path)
        scene.callback(fs.stop)
        wait_for(lambda: "Refused a control connection from pid" in h.log(), 5, "the attacker refused at accept")
        status_within(h, "after the FUSE file was passed")
        check(not fs.flushes, f"handoff flushed the FUSE file: {len(fs.flushes)} flush(es) by {fs.flushers}")
        reload_within(h)
        scene.finish()


# The closers saturated through the control socket itself, where the kernel
# lets fds in: connections each carrying a nested lingering socket (as
# NESTED), to hold every closer thread; argv: path, "nested", how many.
# Then connections that carry nothing, connected and closed as fast as the
# kernel takes them; argv: path, "flood", how many, giving up after 2 s of
# a full backlog. Prints "connected K".
SATURATE_CONTROL = _LINGERING + r"""
import errno, select, time
path, what, n = unix_address(sys.argv[1]), sys.argv[2], int(sys.argv[3])
connected, full_since = 0, None
while connected < n:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if what == "nested":
        s.connect(path)
        c, _ = lingering(2**31 - 1)
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.sendmsg([b"x"], rights([c.fileno()]))
        c.close(); a.close()
        s.sendmsg([b"STATUS"], rights([b.fileno()]))
        b.close()  # the message holds it now: handoff is stopped, it has not read
        keep.append(s)
        connected += 1
        continue
    s.setblocking(False)
    try:
        s.connect(path)
        connected += 1
        full_since = None
    except OSError as e:
        if e.errno != errno.EAGAIN:
            raise
        full_since = full_since or time.monotonic()
        if time.monotonic() - full_since > 2:
            break
        select.select([], [], [], 0.001)
    s.close()
print("connected", connected, flush=True)
sys.stdin.read()
"""


def test_saturated_closers_hold_no_refused_connections_kernel_without_passrights(tmp):
    """Where the kernel lets fds in (older than 6.16; forced with
    HANDOFF_TEST_PASS_RIGHTS=1), uid 65534 holds every closer thread with
    connections to the control socket (opened to everyone for the test)
    that carry nested lingering sockets, then connects and closes 6,000
    times. Each refused connection goes to a closer unread; the closers
    saturated, each the closers' queue (4,096 fds) could not take was held
    in handoff's fd table instead, without bound: handoff held some 1,900
    fds after the 6,000 connections. It now stops accepting until a closer is
    free (the rest wait in the backlog, where the kernel bounds them), and
    accepts again once the attacker is gone."""
    need_root_and_setpriv()
    h = start(tmp, env={"RUNTIME_DIRECTORY": open_runtime_dir(tmp), "HANDOFF_TEST_PASS_RIGHTS": "1"})
    with UnderLoad(h, tmp) as scene:
        path = open_socket_file(h)
        pid = h.main_pid()
        # Stopped while the attacker connects and sends, so that its close
        # of each nested socket is not the last (see attack_stopped()).
        with stopped(pid):
            nested = scene.attack(SATURATE_CONTROL, path, "nested", 2 * CLOSERS_MAX, timeout=60)
        check(nested.line == f"connected {2 * CLOSERS_MAX}", f"the attacker's nested sockets: {nested.line}")
        wait_for(lambda: closer_threads(pid) == CLOSERS_MAX, 10, f"{CLOSERS_MAX} closers held")
        fds0 = harness.fd_count(pid)
        a = scene.attack(SATURATE_CONTROL, path, "flood", 6000, timeout=120)
        # The closers' queue takes 4,096 fds; past that, each connection
        # was held in handoff.
        wait_for(lambda: harness.fd_count(pid) > fds0 + 256 or
                 "Not accepting control connections until a closer thread is free" in h.log(), 30,
                 "handoff's fds to grow, or it to stop accepting")
        fds = harness.fd_count(pid)
        print(f"  {a.line} while the closers were saturated: handoff holds {fds} fds (was {fds0})")
        check(fds <= fds0 + 256, f"handoff holds {fds} fds, {fds0} before the flood")
        # The attackers gone, their lingering sockets are reset: the
        # closers finish, and handoff accepts again.
        nested.stop()
        a.stop()
        wait_for(lambda: closer_threads(pid) == 0, 30, "the closers done")
        reload_within(h)
        scene.finish()


# ---- (b) starve --------------------------------------------------------------

STARVE = r'''
import socket, sys
path, n = sys.argv[1], int(sys.argv[2])
if path.startswith("@"):
    path = "\0" + path[1:]
held, failed = [], 0
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.setblocking(False)
    try:
        s.connect(path)
        held.append(s)
    except OSError:
        failed += 1
        s.close()
print(len(held), failed, flush=True)
sys.stdin.read()
'''


def test_starve_control_socket(tmp):
    """900 idle connections from uid 65534 take no slot: each is closed at
    accept; root's reload is answered at once."""
    need_root_and_setpriv()
    h = start(tmp, env={"RUNTIME_DIRECTORY": open_runtime_dir(tmp)}, verbose=False)
    with UnderLoad(h, tmp) as scene:
        path = open_socket_file(h)
        a = scene.attack(STARVE, path, 900)
        held = int(a.line.split()[0])
        check(held >= 800, f"the attacker got its connections: {a.line}")
        fds = harness.fd_count(h.main_pid())
        check(fds < 64, f"handoff holds {fds} fds with {held} hostile connections open")
        took = reload_within(h)
        print(f"  {held} idle connections from uid {NOBODY}: handoff holds {fds} fds; reload {took * 1000:.0f} ms")
        check(h.log().count("Refused a control connection") == 1, "one warning, the rest at debug level")
        scene.finish()


# ---- the service manager's socket --------------------------------------------

def test_flood_the_managers_socket(tmp):
    """systemd's notify socket is open to every user, and reads a datagram
    before it drops one from an unknown pid: uid 65534 can fill its queue
    while the manager is busy. handoff's READY=1 and RELOADING=1 then wait
    in its outbox and arrive, in order, once the manager reads again; its
    loop serves meanwhile. In handover mode MAINPID= waits for room at most
    5 s and is never queued: the manager not reading for longer, the reload
    fails cleanly, and the next one succeeds."""
    need_root_and_setpriv()
    h = start(tmp, verbose=False)
    with UnderLoad(h, tmp) as scene:
        scene.callback(h.notify.resume)
        os.chmod(tmp, 0o755)
        os.chmod(h.notify.path, 0o777)  # as /run/systemd/notify is
        h.notify.pause()
        n0 = len(h.notify.snapshot())
        filled = h.notify.fill(runner=[*as_nobody(), PYTHON])
        check(filled > 0, "the attacker filled the queue")
        if MODE == "supervise":
            took = reload_within(h)
            print(f"  reload with the manager's queue full ({filled} datagrams from uid {NOBODY}): "
                  f"{took * 1000:.0f} ms")
        else:
            p = subprocess.run([HANDOFF, "reload", f"--pid={h.main_pid()}"], capture_output=True, text=True,
                               timeout=60)
            check(p.returncode != 0 and "MAINPID=" in p.stdout + p.stderr, f"reload: {p.returncode} {p.stderr}")
            check("did not read its socket for 5s; MAINPID= is not sent" in h.log(), h.log()[-2000:])
        ready = h.notify.count("READY")
        h.notify.resume()
        h.notify.wait_count("READY", ready + 1, timeout=20)
        msgs = [m for m in h.notify.snapshot()[n0:] if "X_FILLER" not in m.fields]
        kinds = [k for m in msgs for k in ("READY", "RELOADING") if k in m.fields]
        check(kinds == ["RELOADING", "READY"], f"in order: {msgs}")
        if MODE == "handover":
            reload_within(h)
        scene.finish()


# ---- root and a service user ------------------------------------------------------

# Runs its arguments in a new mount namespace where RT is a fresh tmpfs (so
# the socket file exists only there), as uid 65534.
_SERVICE_USER = r'''
set -e
mount -t tmpfs -o mode=0700,uid=65534,gid=65534 tmpfs "$RT"
exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
'''

HOLD = r'''
import socket, sys
path, n = sys.argv[1], int(sys.argv[2])
held, answers = [], []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    held.append(s)
import select, time
# Whatever handoff answers at accept arrives within this window; the held
# ones are only dropped after 5 s.
deadline = time.monotonic() + 1.0
answered = {}
while time.monotonic() < deadline:
    r, _, _ = select.select([s for s in held if s not in answered], [], [], max(0, deadline - time.monotonic()))
    for s in r:
        answered[s] = s.recv(200).decode() or "closed"
print(len(held) - len(answered), sum(a.startswith("ERROR too many") for a in answered.values()), flush=True)
sys.stdin.read()
'''


def test_root_reaches_a_service_user_handoff(tmp):
    """handoff as uid 65534 in its own mount namespace, its runtime
    directory a tmpfs that exists only there: root's reload and status reach
    it (through /proc/PID/root); a third uid is refused; 40 idle
    connections of handoff's own uid get only their 32 slots, and root is
    still answered at once."""
    need_root_and_setpriv()
    if not shutil.which("unshare"):
        raise Skip("unshare(1) (util-linux) is not installed")
    os.chmod(tmp, 0o755)
    rt = os.path.join(tmp, "svc")
    os.mkdir(rt)
    fake = FakeSystemd(tmp)
    os.chmod(fake.path, 0o666)
    port = free_port()
    h = Launched(tmp, ["-v", "-l", f"127.0.0.1:{port}", f"--mode={MODE}", "--drain-timeout=5s"], [FIXTURE],
                 notify=fake, env={"RUNTIME_DIRECTORY": rt, "RT": rt},
                 prefix=["unshare", "-m", "--propagation", "private", "sh", "-c", _SERVICE_USER, "sh"])
    try:
        h.port = port
        h.wait_ready(1)
        check(os.stat(f"/proc/{h.pid}").st_uid == NOBODY, "handoff runs as 65534")
        baseline(h)
        check(os.listdir(rt) == [], "the socket is not in this mount namespace")
        path = control_socket_path(h.main_pid())
        check(path == f"/proc/{h.main_pid()}/root{rt}/control.{h.main_pid()}", path)
    except BaseException:
        h.close()
        raise
    with UnderLoad(h, tmp) as scene:
        p = subprocess.run([HANDOFF, "status", f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=30)
        check(p.returncode == 0 and "serving" in p.stdout, f"root's status: {p.returncode} {p.stderr}")
        reload_within(h)
        p = subprocess.run([SETPRIV, "--reuid=1", "--regid=1", "--clear-groups", HANDOFF, "status",
                            f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=30)
        check(p.returncode == 3 and "permission denied" in p.stderr, f"uid 1: {p.returncode} {p.stderr}")
        # handoff's own uid floods: 32 held, 8 refused with an answer.
        a = scene.attack(HOLD, control_socket_path(h.main_pid()), 40)
        held, refused = map(int, a.line.split())
        check((held, refused) == (32, 8), f"held {held}, refused {refused}")
        took = reload_within(h)
        print(f"  root -> handoff as 65534 in another mount namespace: reload {took * 1000:.0f} ms with its own "
              f"uid holding {held} connections ({refused} refused)")
        a.stop()
        scene.finish()


# ---- (c) squat ---------------------------------------------------------------

SQUAT = r'''
import errno, socket, sys
d = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
out = []
for pid in sys.argv[2:]:
    try:
        s.bind(f"{d}/control.{pid}")
        out.append("bound")
        break
    except OSError as e:
        out.append(errno.errorcode[e.errno])
print(" ".join(out), flush=True)
sys.stdin.read()
'''


def test_squat_the_next_name(tmp):
    """uid 65534 tries to bind the control socket names of the next pids
    before a handoff starts: the directory is root's and nobody else may
    write it (0755 as handoff or systemd makes it), so it cannot; the
    handoff then starts with its own socket, and reload works."""
    need_root_and_setpriv()
    os.makedirs("/run/handoff", 0o755, exist_ok=True)
    st = os.stat("/run/handoff")
    check(st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH),
          f"/run/handoff: uid {st.st_uid} {st.st_mode:o}")
    with open("/proc/sys/kernel/ns_last_pid") as f:
        last = int(f.read())
    a = Attacker(SQUAT, "/run/handoff", *range(last + 1, last + 40))
    try:
        check(set(a.line.split()) == {"EACCES"}, f"every bind refused: {a.line}")
        h = start(tmp)
        with UnderLoad(h, tmp) as scene:
            check(control_socket_path(h.main_pid()) == f"/proc/{h.main_pid()}/root/run/handoff/control.{h.main_pid()}",
                  control_socket_path(h.main_pid()))
            reload_within(h)
            scene.finish()
    finally:
        a.stop()


def check_status_answers(h):
    """handoff status reaches h (where it has no path: on its abstract name,
    found among its fds)."""
    p = subprocess.run([HANDOFF, "status", f"--pid={h.pid}"], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0 and "generation 1" in p.stdout, f"{p.returncode} {p.stderr}\n{h.log()}")


def test_runtime_dir_others_can_write_is_refused(tmp):
    """A $RUNTIME_DIRECTORY that others may write (where anyone could have
    bound the name first) is not used: handoff serves, says why, and listens
    on an abstract name instead, which the client finds among its fds."""
    if MODE != "supervise":
        raise Skip("mode-independent: runs in the supervise pass")
    d = os.path.join(tmp, "open")
    os.mkdir(d)
    os.chmod(d, 0o777)
    h = start(tmp, env={"RUNTIME_DIRECTORY": d}, measure=False)
    try:
        h.wait_log(f"No control socket in the runtime directory (refusing {d}")
        check(control_socket_path(h.pid) is None and os.listdir(d) == [], "no control socket in it")
        check_status_answers(h)
        check(http_get(h.port)[0] == 200, "serving")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


# Binds an abstract name that /proc/net/unix shows as two lines, the second
# a listening socket with the inode of pid's control socket and a path of
# our choosing, as anyone in the network namespace can: the kernel writes a
# name as it is, newline and all.
FORGE_LINE = r'''
import socket, sys
pid = sys.argv[1]
ino = [line.split()[6] for line in open("/proc/net/unix")
       if len(line.split()) > 7 and line.split()[7].startswith(f"@handoff/control/{pid}/")][0]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(f"\0x\n0000000000000000: 00000002 00000000 00010000 0005 01 {ino} /x/control.1".encode())
s.listen()
print(ino, flush=True)
sys.stdin.read()
'''


def test_forged_socket_table_line_is_not_trusted(tmp):
    """uid 65534 binds a name that reads as a line of /proc/net/unix giving
    the inode of handoff's abstract control socket another name: the
    client asks the kernel which name that socket has, and reaches handoff
    all the same (before: "cannot open /x/control.1")."""
    d = dir_for_all(tmp, "open", 0o777)
    h = start(tmp, env={"RUNTIME_DIRECTORY": d}, measure=False)
    a = None
    try:
        h.wait_log("listening on @handoff/control/")
        a = Attacker(FORGE_LINE, h.pid)
        forged = [line for line in open("/proc/net/unix") if "/x/control.1" in line]
        check(forged and forged[0].split()[6] == a.line, f"the forged line is there: {forged}")
        check_status_answers(h)
        check(h.stop() == 0, h.log())
    finally:
        if a:
            a.stop()
        h.close()


def control_shim(**behaviour):
    """The environment that puts tests/fixtures/control-shim.c under
    handoff (CONTROL_SHIM_NO_GETRANDOM, CONTROL_SHIM_PAUSE, CONTROL_SHIM_PAUSE_PREFIX:
    see there)."""
    shim = os.environ.get("CONTROL_SHIM_SO")
    if not shim or not os.path.exists(shim):
        raise Skip(f"no control shim (CONTROL_SHIM_SO={shim!r})")
    return {"LD_PRELOAD": shim, **{f"CONTROL_SHIM_{k.upper()}": v for k, v in behaviour.items()}}


# Binds the abstract name given with a socket of the type given (as
# anyone in the network namespace can), and listens on it if it can.
SQUAT_ABSTRACT = r'''
import socket, sys
s = socket.socket(socket.AF_UNIX, getattr(socket, sys.argv[2]))
s.bind(b"\0" + sys.argv[1].encode())
if s.type != socket.SOCK_DGRAM:
    s.listen()
print("bound", flush=True)
sys.stdin.read()
'''


@contextlib.contextmanager
def squatting_first_name(tmp, sock_type, prefix=None):
    """Runs handoff under the shim with CONTROL_SHIM_PAUSE (see
    control-shim.c): yields (env, squat), and squat() has uid 65534 bind
    the first abstract name handoff is about to bind, with a socket of
    sock_type, and returns that name once handoff goes on."""
    told = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    told.bind(os.path.join(tmp, "pause.sock"))
    told.listen()
    told.settimeout(10)
    env = control_shim(pause=os.path.join(tmp, "pause.sock"), **({"pause_prefix": prefix} if prefix else {}))
    attackers = []

    def squat():
        conn, _ = told.accept()
        with conn:
            name = conn.recv(256).decode()
            attackers.append(Attacker(SQUAT_ABSTRACT, name, sock_type))
            conn.send(b"1")
        return name

    try:
        yield env, squat
    finally:
        for a in attackers:
            a.stop()
        told.close()


def test_squatted_abstract_name_is_given_up(tmp):
    """uid 65534 binds the abstract control name a handoff would take
    first (the shim tells it which, as a guess could where getrandom()
    fails): handoff takes another, and handoff status reaches it (before:
    no control socket, "Address already in use")."""
    d = dir_for_all(tmp, "open", 0o777)
    with squatting_first_name(tmp, "SOCK_SEQPACKET") as (env, squat):
        h = Handoff(tmp, ["-l", f"127.0.0.1:{free_port()}"], [FIXTURE], notify=FakeSystemd(tmp),
                    env={"RUNTIME_DIRECTORY": d, **env})
        try:
            name = squat()
            check(name.startswith(f"handoff/control/{h.pid}/"), f"the name handoff would take: {name!r}")
            h.wait_ready(1)
            h.wait_log(f"@{name} is taken by another process; trying another.")
            taken = h.wait_log_re(r"listening on @(handoff/control/\S+) instead").group(1)
            check(taken != name, f"another name than the squatted one: {taken}")
            check_status_answers(h)
            check(h.stop() == 0, h.log())
        finally:
            h.close()


def test_squatted_abstract_notify_name_is_given_up(tmp):
    """uid 65534 binds the abstract name generation 1's notify socket
    would have (--notify-socket=abstract; the shim tells it which, as a
    guess could where getrandom() fails): handoff takes another, and the
    generation starts on it (before: "Failed to create notify socket:
    Address already in use", and handoff exited)."""
    need_root_and_setpriv()
    if MODE != "supervise":
        raise Skip("mode-independent: runs in the supervise pass")
    with squatting_first_name(tmp, "SOCK_DGRAM", prefix="handoff/") as (env, squat):
        h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{free_port()}", "--notify-socket=abstract"], [FIXTURE],
                    notify=FakeSystemd(tmp), env=env)
        try:
            name = squat()
            check(re.fullmatch(rf"handoff/{h.pid}/[0-9a-f]{{16}}", name), f"the name handoff would take: {name!r}")
            h.wait_ready(1)
            h.wait_log(f"@{name} is taken by another process; trying another.")
            taken = h.wait_log_re(r"Generation 1's NOTIFY_SOCKET is @(handoff/\S+) ").group(1)
            check(taken != name, f"another name than the squatted one: {taken}")
            check(h.stop() == 0, h.log())
        finally:
            h.close()


def test_abstract_name_without_getrandom_is_not_pid_and_clock(tmp):
    """Where getrandom() fails, the random part of the abstract control
    name is still none that another user can work out: before, it was the
    pid shifted by 32 bits XOR CLOCK_MONOTONIC in microseconds, and
    whoever bound the likely ones first left handoff without a control
    socket."""
    d = dir_for_all(tmp, "open", 0o777)
    h = start(tmp, env={"RUNTIME_DIRECTORY": d, **control_shim(no_getrandom="1")}, measure=False)
    try:
        m = h.wait_log_re(r"listening on @handoff/control/(\d+)/([0-9a-f]{16}) instead")
        clock = int(m.group(2), 16) ^ int(m.group(1)) << 32
        now = time.monotonic_ns() // 1000
        check(not 0 <= now - clock < 60 * 10**6, f"the name is the pid and the clock: {m.group(0)}")
        check_status_answers(h)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_notify_name_without_getrandom_shows_no_address(tmp):
    """Where getrandom() fails, the random part of a generation's abstract
    notify socket name gives nothing of handoff's memory away: before, it
    was the pid shifted by 32 bits XOR the address of a local variable,
    which every user reads in /proc/net/unix: where ASLR put the stack."""
    if MODE != "supervise":
        raise Skip("mode-independent: runs in the supervise pass")
    h = start(tmp, "--notify-socket=abstract", env=control_shim(no_getrandom="1"), measure=False)
    try:
        m = h.wait_log_re(r"NOTIFY_SOCKET is @handoff/(\d+)/([0-9a-f]{16})")
        rest = int(m.group(2), 16) ^ int(m.group(1)) << 32
        check(rest >> 40 != 0x7f, f"the name is the pid and a stack address (0x{rest:x}): {m.group(0)}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


# Connects to an abstract name and prints the first line of the answer to
# STATUS, or the error.
ASK_STATUS = r'''
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
try:
    s.connect(b"\0" + sys.argv[1].encode())
    s.send(b"STATUS")
    print(s.recv(65536).decode().splitlines()[0])
except OSError as e:
    print(e)
'''


def test_overflow_uid_gets_no_abstract_name(tmp):
    """handoff as uid 65534 in a user namespace that maps only its own uid
    (PrivateUsers= of a nobody user's manager, a rootless container's
    nobody): every user it does not map reaches it as uid 65534 too, its
    own. With no room for a path it gets no abstract name then, and says
    why (before: uid 1000 was served STATUS, and could have reloaded it)."""
    d = dir_for_all(tmp, "open", 0o777)
    if not shutil.which("unshare"):
        raise Skip("unshare(1) (util-linux) is not installed")
    log = os.path.join(tmp, "userns.log")
    with open(log, "w") as out:
        p = subprocess.Popen([*as_nobody(), "unshare", "--user", "--map-current-user", HANDOFF, "-l",
                              f"127.0.0.1:{free_port()}", "--", "sleep", "1000"],
                             env={**os.environ, "RUNTIME_DIRECTORY": d}, stdout=out, stderr=subprocess.STDOUT)
    try:
        text = wait_for(lambda: "control socket" in open(log).read() and open(log).read(), 10,
                        "the control socket's line")
        name = re.search(r"@(handoff/control/\S+?) instead", text)
        if name:
            asked = subprocess.run([SETPRIV, "--reuid=1000", "--regid=1000", "--clear-groups", PYTHON, "-c",
                                    ASK_STATUS, name.group(1)], capture_output=True, text=True, timeout=10)
            check(False, f"uid 1000 reached it: {asked.stdout} {asked.stderr}")
        check("those it does not would pass for our uid 65534" in text, text)
    finally:
        p.terminate()
        p.wait(timeout=10)


# ---- (d) fds 0-2 closed --------------------------------------------------------

_CLOSED_STDIO = r'''
import os, sys
for fd in (0, 1, 2):
    os.close(fd)
os.execv(sys.argv[1], sys.argv[1:])
'''


class ClosedStdio(Handoff):
    """handoff started with fds 0, 1 and 2 closed (no log file: whatever it
    writes goes where those fds point)."""

    def __init__(self, tmpdir, args, command, notify):
        self.tmpdir, self.notify = tmpdir, notify
        self.logpath = os.path.join(tmpdir, "no-log")
        open(self.logpath, "w").close()
        e = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_"))}
        e["NOTIFY_SOCKET"] = notify.path
        self.argv = [PYTHON, "-c", _CLOSED_STDIO, HANDOFF, *args, "--", *command]
        self.proc = subprocess.Popen(self.argv, env=e, start_new_session=True, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.track()


def test_closed_stdio_goes_to_dev_null(tmp):
    """Started with fds 0-2 closed and -v: they are /dev/null in handoff and
    in its generations, and neither control replies nor HTTP responses
    carry a log line."""
    port = free_port()
    fake = FakeSystemd(tmp)
    h = ClosedStdio(tmp, ["-v", "-l", f"127.0.0.1:{port}", f"--mode={MODE}"], [FIXTURE], fake)
    h.port = port
    h.wait_ready(1)
    # Generation 1 alone serves now (nothing retiring yet).
    for pid in (h.main_pid(), serving_pid(port)):
        for fd in (0, 1, 2):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            check(target == "/dev/null", f"pid {pid} fd {fd} -> {target}")
    baseline(h)
    with UnderLoad(h, tmp, port) as scene:
        took = reload_within(h, takeover_logged=False)
        p = wait_for(lambda: (lambda q: q if q.returncode == 0 and "serving" in q.stdout else None)(
            subprocess.run([HANDOFF, "status", f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=30)),
            10, "status from the main handoff")
        check(p.returncode == 0 and p.stdout.startswith("handoff ") and "handoff[" not in p.stdout,
              f"a clean status reply: {p.stdout!r}")
        status, body, _ = http_get(port)
        check(status == 200 and "handoff[" not in body, f"a clean response: {body!r}")
        for fd in (0, 1, 2):
            target = os.readlink(f"/proc/{h.main_pid()}/fd/{fd}")
            check(target == "/dev/null", f"after the reload: fd {fd} -> {target}")
        print(f"  fds 0-2 of handoff and its generation: /dev/null; reload {took * 1000:.0f} ms")
        scene.finish()


# ---- (e) unix listen on a live socket with a full backlog ----------------------

# A unix socket that listens and never accepts, its backlog filled with its
# own connections. argv: "stream" or "seqpacket", and a path or "@" and an
# abstract name, where "{pid}" stands for the attacker's own pid. Prints its
# pid and how many connections wait.
FULL_BACKLOG = r'''
import os, socket, sys
kind = {"stream": socket.SOCK_STREAM, "seqpacket": socket.SOCK_SEQPACKET}[sys.argv[1]]
addr = sys.argv[2].replace("{pid}", str(os.getpid()))
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, kind)
s.bind(addr)
s.listen(0)
queued = []
while True:
    c = socket.socket(socket.AF_UNIX, kind)
    c.setblocking(False)
    try:
        c.connect(addr)
        queued.append(c)
    except BlockingIOError:
        c.close()
        break
print(os.getpid(), len(queued), flush=True)
sys.stdin.read()
'''


def test_unix_listen_on_a_full_live_socket(tmp):
    """uid 65534 owns a live unix socket and never accepts (its backlog is
    full): a handoff told to listen there fails at once, and says that a
    live process owns it (a blocking probe hung start-up)."""
    d = dir_for_all(tmp, "shared", 0o1777)
    os.chmod(tmp, 0o755)
    path = os.path.join(d, "app.sock")
    a = Attacker(FULL_BACKLOG, "stream", path)
    try:
        check(int(a.line.split()[1]) >= 1, f"the backlog is full: {a.line}")
        t0 = time.monotonic()
        p = subprocess.run([HANDOFF, "-l", f"unix:{path}", "--", FIXTURE], capture_output=True, text=True,
                           timeout=30)
        took = time.monotonic() - t0
        check(p.returncode == 2, f"exit {p.returncode}: {p.stderr}")
        check("a live socket: another process listens on it" in p.stderr, p.stderr)
        # A probe that waits for room hangs start-up for as long as the
        # owner does not accept: here for ever (subprocess.run gives up at
        # 30 s). A probe that does not fails it in ms. 5 s is far from
        # both, so no loaded machine makes the one look like the other.
        check(took < 5.0, f"took {took:.2f}s")
        check(os.path.exists(path), "the live socket file is left alone")
        print(f"  start-up against a full live socket: exit 2 in {took * 1000:.0f} ms")
    finally:
        a.stop()


# uid 65534's side of the next tests: in her directory argv[1], a symlink
# run -> real (and with argv[3] "stale", a stale socket file real/app.sock);
# given a line on stdin, she points run at the directory argv[2] (by a
# rename, as one racing a privileged process would).
SWAP_DIR = r'''
import os, socket, sys
d, other, stale = sys.argv[1:4]
os.mkdir(f"{d}/real")
if stale:
    s = socket.socket(socket.AF_UNIX)
    s.bind(f"{d}/real/app.sock")
    s.close()
os.symlink("real", f"{d}/run")
print("ready", flush=True)
sys.stdin.readline()
os.symlink(other, f"{d}/run.new")
os.rename(f"{d}/run.new", f"{d}/run")
print("swapped", flush=True)
sys.stdin.read()
'''

# Where strace holds handoff (the first such call of each process; a
# minute, in effect until the test kills strace, which lets handoff go on):
# entering unlink(2) or unlinkat(2), or leaving bind(2); and what
# /proc/PID/syscall shows meanwhile.
HOLDS = {"unlink": "inject=/^unlink(at)?$:delay_enter=60000000:when=1",
         "bind": "inject=bind:delay_exit=60000000:when=1"}
SYSCALLS = {"x86_64": {"unlink": {"87", "263"}, "bind": {"49"}},
            "aarch64": {"unlink": {"35"}, "bind": {"200"}}}


def syscall_of(pid):
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split()[0]
    except (OSError, IndexError):
        return None


@contextlib.contextmanager
def directory_swapped_while_held(tmp, at, stale):
    """uid 65534's directory with the symlink run -> real (and a stale
    socket file there, if stale), a root handoff told to --listen
    unix:<hers>/run/app.sock, held by strace at `at`; while it is held, she
    points run at another directory, where app.sock is a file of root's,
    and then handoff goes on. Yields (handoff, its pid, her directory,
    root's file)."""
    d = dir_for_all(tmp, "shared", 0o755)
    os.chown(d, NOBODY, NOBODY)
    os.chmod(tmp, 0o755)
    strace, syscalls = shutil.which("strace"), SYSCALLS.get(os.uname().machine, {}).get(at)
    if not strace or not syscalls:
        raise Skip(f"needs strace(1) and the syscall numbers of {os.uname().machine}")
    other = os.path.join(tmp, "other")
    os.mkdir(other)
    victim = os.path.join(other, "app.sock")
    with open(victim, "w") as f:
        f.write("not a socket\n")
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime, 0o700)
    a = Attacker(SWAP_DIR, d, other, "stale" if stale else "")
    h = Handoff(tmp, ["-v", "-l", f"unix:{d}/run/app.sock"], fixture_cmd(), env={"RUNTIME_DIRECTORY": runtime},
                wrapper=[strace, "-f", "-o", "/dev/null", "-e", HOLDS[at]])
    try:
        def held():
            if h.proc.poll() is not None and "ptrace" in h.log():
                raise Skip(f"strace cannot trace here: {h.log()}")
            check(h.proc.poll() is None, f"strace exited: {h.log()}")
            with contextlib.suppress(OSError):
                with open(f"/proc/{h.pid}/task/{h.pid}/children") as f:
                    pid = int(f.read().split()[0])
                return pid if syscall_of(pid) in syscalls else None
        pid = wait_for(held, 10, f"handoff held at {at} by strace", retry=(IndexError, ValueError))
        a.proc.stdin.write("go\n")
        a.proc.stdin.flush()
        check(select.select([a.proc.stdout], [], [], 10)[0] and a.proc.stdout.readline().strip() == "swapped",
              "the attacker swapped the symlink")
        check(syscall_of(pid) in syscalls, f"handoff still held at {at}")
        h.proc.kill()
        h.proc.wait()
        yield h, pid, d, victim
    finally:
        a.stop()
        h.close()


def intact(victim, outcome):
    check(os.path.isfile(victim), f"the other directory's app.sock is still a file ({outcome})")
    with open(victim) as f:
        check(f.read() == "not a socket\n", "and holds what it held")


def test_unix_listen_directory_swapped_before_the_unlink(tmp):
    """A --listen path through a symlink in a directory uid 65534 may
    write, to a directory of hers with a stale socket file in it: handoff
    (root) probes that file, and she points the symlink at another
    directory before handoff removes it. handoff removes the stale socket
    it probed, not the file of the same name in the other directory, and
    then fails to bind there, that file being in the way."""
    with directory_swapped_while_held(tmp, "unlink", stale=True) as (h, _, d, victim):
        outcome = wait_for(lambda: re.search(r"Failed to bind .*|Listening on unix:.*", h.log()), 10,
                           f"handoff past the bind; log:\n{h.log()}").group(0)
        intact(victim, outcome)
        check(os.listdir(os.path.join(d, "real")) == [], "the stale socket probed was removed")
        check("Address already in use" in outcome, outcome)
        print(f"  directory swapped before the unlink: {outcome}")


def test_unix_listen_directory_swapped_after_the_bind(tmp):
    """The same symlink, swapped as handoff has just bound its socket
    (there is no stale file): handoff must not take the file of the same
    name in the other directory for its socket's, which it would remove at
    its stop. It asks the kernel which file its socket is bound to."""
    with directory_swapped_while_held(tmp, "bind", stale=False) as (h, pid, d, victim):
        h.wait_log("is ready")
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(pid), 20, f"handoff to stop; log:\n{h.log()}")
        intact(victim, "after the stop")
        check("is no longer the file of handoff's socket" in h.log(), h.log())
        print("  directory swapped after the bind: the other file is left at the stop")


# The abstract control name of a handoff from before 0.2.
LEGACY_NAME = "@handoff/control/{pid}"


def signals_blocked(pid, sig):
    """Whether pid blocks sig (SigBlk in /proc/pid/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            blk = next(l for l in f if l.startswith("SigBlk:"))
    except (FileNotFoundError, StopIteration):
        return False
    return bool(int(blk.split()[1], 16) & (1 << (sig - 1)))


def test_client_against_a_full_legacy_backlog(tmp):
    """uid 65534 listens on the abstract control name of handoff before 0.2
    and fills its backlog. For another pid's name, the client does not use
    it (pid does not listen there) and exits 3 at once; for its own (as a
    frozen handoff of that age would be), the client waits for room no
    longer than --timeout (exit 4), and SIGTERM (exit 0) or SIGINT (130)
    ends the wait. Before, a blocking connect() hung until the squatter
    exited, with both signals blocked."""
    need_root_and_setpriv()
    if MODE != "supervise":
        raise Skip("mode-independent: runs in the supervise pass")
    victim = subprocess.Popen([PYTHON, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    squatters = []
    try:
        other = Attacker(FULL_BACKLOG, "seqpacket", LEGACY_NAME.format(pid=victim.pid))
        squatters.append(other)
        # Its own name, as a frozen handoff of that age holds it.
        own = Attacker(FULL_BACKLOG, "seqpacket", LEGACY_NAME)
        squatters.append(own)
        for a in squatters:
            check(int(a.line.split()[1]) >= 1, f"the backlog is full: {a.line}")
        frozen = int(own.line.split()[0])

        t0 = time.monotonic()
        p = subprocess.run([HANDOFF, "status", f"--pid={victim.pid}", "--timeout=5s"], capture_output=True,
                           text=True, timeout=30)
        took = time.monotonic() - t0
        check(p.returncode == 3 and "no handoff control socket" in p.stderr, f"exit {p.returncode}: {p.stderr}")
        # A client that tried the squatted name would wait there for room
        # for its --timeout, 5 s (before: for ever); one that does not try
        # it answers in ms. 2.5 s: half the wait it would take.
        check(took < 2.5, f"another pid's name: took {took:.2f}s")

        t0 = time.monotonic()
        p = subprocess.run([HANDOFF, "status", f"--pid={frozen}", "--timeout=1s"], capture_output=True, text=True,
                           timeout=30)
        took = time.monotonic() - t0
        check(p.returncode == 4 and "did not take the connection in time" in p.stderr,
              f"exit {p.returncode}: {p.stderr}")
        check(1.0 <= took < 2.5, f"--timeout=1s: took {took:.2f}s")
        print(f"  a full legacy backlog: exit 3 for another pid's name, exit 4 after {took * 1000:.0f} ms")

        for sig, code, said in ((signal.SIGTERM, 0, "stopped waiting (SIGTERM)"), (signal.SIGINT, 130, "")):
            c = subprocess.Popen([HANDOFF, "status", f"--pid={frozen}", "--timeout=60s"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            try:
                # Once the client blocks the signal it takes it from its
                # signalfd; the connect comes after.
                wait_for(lambda: signals_blocked(c.pid, sig) or c.poll() is not None, 10, f"{sig.name} blocked")
                t0 = time.monotonic()
                c.send_signal(sig)
                out, err = c.communicate(timeout=10)
                took = time.monotonic() - t0
            finally:
                if c.poll() is None:
                    c.kill()
                    c.wait()
            check(c.returncode == code and said in err, f"{sig.name}: exit {c.returncode}: {err}")
            # A client deaf to the signal waits on to its --timeout, 60 s
            # (communicate() gives up at 10 s); one that takes it exits in
            # ms. 5 s: half of what communicate() allows.
            check(took < 5.0, f"{sig.name}: took {took:.2f}s")
    finally:
        for a in squatters:
            a.stop()
        victim.stdin.close()
        victim.wait()


# Listens on a unix SOCK_SEQPACKET socket at the path given (named as a
# control socket is, for the client to find among its fds) and prints its
# pid.
LISTEN_AT = r'''
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(sys.argv[1])
s.listen()
print(os.getpid(), flush=True)
sys.stdin.read()
'''


def test_client_against_a_hanging_lookup(tmp):
    """uid 65534 listens on ".../control.N", and a FUSE file system that
    never answers a lookup is mounted over that directory (by root here; by
    uid 65534 itself where fusermount3 allows allow_other, or in a mount
    namespace of its own). Root's client, given that pid (a stale $MAINPID
    reused, a typo), looks the path up through /proc/PID/root: it exits at
    its --timeout (4), at SIGTERM (0) or at SIGINT (130) all the same. Before,
    it waited in open() for the file system, past its --timeout and deaf to
    both signals (it takes them from a signalfd)."""
    d = dir_for_all(tmp, "svc", 0o777)
    os.chmod(tmp, 0o755)
    cases = [(None, 4, "did not take the connection in time"), (signal.SIGTERM, 0, "stopped waiting (SIGTERM)"),
             (signal.SIGINT, 130, "")]
    # One name each: a second lookup of a name waits for the first.
    attackers = [Attacker(LISTEN_AT, os.path.join(d, f"control.{i}")) for i in range(len(cases))]
    fs, clients, helpers = None, [], []
    try:
        fs = hanging_fs(d, hold_lookup=True)
        for (sig, code, said), a in zip(cases, attackers):
            what = sig.name if sig else "--timeout=1s"
            held = len(fs.lookups)
            t0 = time.monotonic()
            c = subprocess.Popen([HANDOFF, "status", f"--pid={a.line}", "--timeout=60s" if sig else "--timeout=1s"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            clients.append(c)
            wait_for(lambda: len(fs.lookups) > held or c.poll() is not None, 10, f"{what}: the lookup held")
            if len(fs.lookups) == held:
                raise harness.TestFailure(f"{what}: the client exited before its lookup: {c.communicate()}")
            # Whoever waits in the lookup: the client, or a child of its.
            helpers += children_of(c.pid)
            if sig:
                t0 = time.monotonic()
                c.send_signal(sig)
            try:
                out, err = c.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                raise harness.TestFailure(f"{what}: the client still waits in the lookup after 10 s")
            took = time.monotonic() - t0
            check(c.returncode == code and said in err, f"{what}: exit {c.returncode}: {err}")
            # As for a full backlog above: 2.5 s for a 1 s timeout, and
            # 5 s (half of what communicate() allows) for a signal.
            check(took < (5.0 if sig else 2.5), f"{what}: took {took:.2f}s")
            print(f"  {what}: exit {code} after {took * 1000:.0f} ms, the lookup still unanswered")
    finally:
        if fs:
            fs.stop()  # what waits in a lookup goes on, or dies if killed
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
        # The clients' children died with them (once answered), and were
        # reparented to us, the subreaper.
        for pid in helpers:
            wait_for(lambda: reaped(pid), 10, f"the lookup's process {pid} gone")
        for a in attackers:
            a.stop()


def reaped(pid):
    """Reaps pid if it is a child of ours that has exited: whether it is
    gone (or not ours to reap)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


# ---- (f) a large status ----------------------------------------------------------

def test_large_status_json_is_valid(tmp):
    """16 sockets with 255-character names make a status of more than 4 KiB
    (the old reply was cut at 4088 bytes): JSON and text come whole."""
    ports = [free_port() for _ in range(16)]
    names = [f"{i:02d}" + "n" * 253 for i in range(16)]
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, "--init-delay", "50")
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, [*sum((["-l", f"127.0.0.1:{p}={n}"] for p, n in zip(ports, names)), []), f"--mode={MODE}"],
                fixture_cmd(args_file), notify=fake)
    h.port = ports[0]
    h.wait_ready(1)
    baseline(h)
    with UnderLoad(h, tmp) as scene:
        p = subprocess.run([HANDOFF, "status", "--json", f"--pid={h.main_pid()}"], capture_output=True, text=True,
                           timeout=30)
        check(p.returncode == 0, f"{p.returncode} {p.stderr}")
        st = json.loads(p.stdout)
        check(len(p.stdout) > 4096, f"a status of {len(p.stdout)} bytes")
        check([s["name"] for s in st["sockets"]] == names, "every socket, whole")
        t = subprocess.run([HANDOFF, "status", f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=30)
        check(t.returncode == 0 and t.stdout.rstrip().split("\n")[-1].startswith("reloads "),
              f"the text ends with its last line: {t.stdout[-200:]!r}")
        print(f"  status --json: {len(p.stdout)} bytes, valid")
        reload_within(h)
        scene.finish()


# ---- (g) EMFILE ----------------------------------------------------------------

def prlimit_nofile(pid, soft, hard):
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={soft}:{hard}"], check=True, timeout=10)


def nofile_of(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                v = line.split()[3:5]
                return tuple(int(x) if x != "unlimited" else -1 for x in v)
    raise harness.TestFailure("no Max open files line")


def test_out_of_fds_no_spin(tmp):
    """With RLIMIT_NOFILE lowered to what handoff holds plus 3 and more
    clients queued than it has fds for: it accepts what it can, refuses the
    rest with an answer, uses (almost) no CPU meanwhile, logs once, and
    answers again once fds are free."""
    if not shutil.which("prlimit"):
        raise Skip("prlimit(1) (util-linux) is not installed")
    # The reload before is waited out: a generation that retires frees fds
    # by itself.
    h = start(tmp, measure=False)
    baseline(h, settle=True)
    held = []
    with UnderLoad(h, tmp) as scene:
        scene.callback(lambda: [s.close() for s in held])
        pid = h.main_pid()
        old = nofile_of(pid)
        prlimit_nofile(pid, harness.fd_count(pid) + 3, old[1] if old[1] > 0 else 1 << 20)
        # Idle authorised clients: three take the last fds, the rest queue.
        for _ in range(20):
            held.append(connect_control(pid))
        h.wait_log("Out of file descriptors: control requests are refused")
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        wait_for(lambda: time.monotonic() - t0 > 1.5, 3, "a 1.5 s window")
        cpu = cpu_seconds(pid) - cpu0
        check(cpu < 0.2, f"handoff used {cpu:.2f}s of CPU in 1.5 s out of fds")
        check(h.log().count("Out of file descriptors") == 1, "logged once")
        answers = []
        for s in held:
            s.settimeout(0.2)
            try:
                answers.append(s.recv(200))
            except (socket.timeout, OSError):
                answers.append(None)
        refused = sum(1 for a in answers if a == b"ERROR handoff is out of file descriptors")
        check(refused >= 10, f"the clients it had no fd for were told why: {answers}")
        for s in held:
            s.close()
        held = []
        # Once fds are free again, it answers.
        p = wait_for(lambda: (lambda q: q if q.returncode == 0 else None)(
            subprocess.run([HANDOFF, "status", f"--pid={pid}", "--timeout=2s"], capture_output=True, text=True)),
            10, "a status answer once fds are free")
        check(p.stdout.startswith("handoff "), p.stdout)
        print(f"  out of fds: {cpu * 1000:.0f} ms CPU in 1.5 s, {refused} clients refused with an answer")
        prlimit_nofile(pid, *old)
        reload_within(h)
        scene.finish()


# ---- limits ----------------------------------------------------------------------

def test_stored_fuse_file_whose_poll_hangs(tmp):
    """A compromised server (the generation itself, not another uid) stores
    (FDSTORE=1) a file on a FUSE file system whose server never answers a
    poll. Watched for a hang-up with epoll, as a socket is, the epoll_ctl()
    waited in handoff's loop for that answer: no READY=1, no status, no
    stop but SIGKILL. Kept unwatched, as a regular file elsewhere is (epoll
    refuses one), handoff starts and stops as usual."""
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    fs = hanging_fs(mnt)
    fake = FakeSystemd(tmp)
    cmd, args_file, set_datagrams = notifying_app(tmp)
    set_datagrams(1, [(b"FDSTORE=1\nFDNAME=fuse", 1, os.path.join(mnt, "f"))])
    h = Handoff(tmp, ["-l", f"127.0.0.1:{free_port()}", f"--mode={MODE}", "-v"], cmd, notify=fake)
    try:
        h.wait_ready(1)
        check('Stored fd "fuse" from generation 1' in h.log(), h.log())
        check(not fs.polls, f"handoff polled the FUSE file: {len(fs.polls)} poll(s) unanswered")
        check(h.stop() == 0, h.log())
    finally:
        fs.stop()  # a handoff stuck in the poll can be stopped now
        h.close()


def test_stored_fuse_file_whose_getattr_hangs_without_kcmp(tmp):
    """The same server stores a file, then one on a FUSE file system
    whose server does not answer FUSE_GETATTR, to a handoff where kcmp(2)
    fails: telling a duplicate by the inode, the fstat() of the FUSE file
    waited in handoff's loop for that answer. The inode the kernel has
    cached does not ask the server."""
    prefix = seccomp_prefix(NO_KCMP)
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    fs = hanging_fs(mnt, hold_getattr=True)
    fake = FakeSystemd(tmp)
    cmd, args_file, set_datagrams = notifying_app(tmp)
    set_datagrams(1, [(b"FDSTORE=1\nFDNAME=exe", 1, "/proc/self/exe"),
                      (b"FDSTORE=1\nFDNAME=fuse", 1, os.path.join(mnt, "f"))])
    h = Handoff(tmp, ["-l", f"127.0.0.1:{free_port()}", f"--mode={MODE}", "-v"], cmd, notify=fake,
                wrapper=prefix)
    try:
        h.wait_ready(1)
        check('Stored fd "fuse" from generation 1' in h.log(), h.log())
        check(not fs.getattrs, f"handoff asked the FUSE server: {len(fs.getattrs)} getattr(s) unanswered")
        check(h.stop() == 0, h.log())
    finally:
        fs.stop()  # a handoff stuck in the fstat() can be stopped now
        h.close()


def passed_fuse_file_whose_getattr_hangs(tmp, prefix=()):
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    fs = hanging_fs(mnt, hold_getattr=True)
    fd = os.open(os.path.join(mnt, "f"), os.O_RDONLY | os.O_CLOEXEC)
    h = Launched(tmp, [], [FIXTURE], fds=[fd], prefix=list(prefix),
                 env={"LISTEN_FDS": "1", "LISTEN_PID": "self", "LISTEN_FDNAMES": "fuse"})
    try:
        wait_for(lambda: h.proc.poll() is not None, 10, f"handoff exits; log:\n{h.log()}")
        check(h.proc.returncode == 2 and "Passed fd 3 (fuse) is not a socket." in h.log(),
              f"exit {h.proc.returncode}; log:\n{h.log()}")
        check(not fs.getattrs, f"handoff asked the FUSE server: {len(fs.getattrs)} getattr(s) unanswered")
    finally:
        os.close(fd)
        fs.stop()  # a handoff stuck in the fstat() can be stopped now
        h.kill_all()


def test_passed_fuse_file_whose_getattr_hangs(tmp):
    """A server with NotifyAccess=all stores a file on a FUSE file system
    whose server does not answer FUSE_GETATTR into systemd's own fd store,
    which passes it to the next handoff it starts, among its sockets. To
    tell whether it was a socket, handoff's fstat() waited for that
    answer: it neither started nor exited. The socket layer does not ask
    the server: it is refused at once, as any other file."""
    passed_fuse_file_whose_getattr_hangs(tmp)


def test_passed_fuse_file_whose_getattr_hangs_without_statx(tmp):
    """The same where statx(2) is refused (a seccomp profile older than
    it): falling back to fstat() there brought the wait back."""
    passed_fuse_file_whose_getattr_hangs(tmp, seccomp_prefix(NO_STATX))


def test_fuse_file_stored_as_listen_socket_beside_the_units_sockets(tmp):
    """A server with NotifyAccess=all stores a file on a FUSE file system
    whose server does not answer FUSE_GETATTR into systemd's fd store
    under handoff's name for a --listen socket; systemd then passes it
    beside the unit's own socket. Letting go of it, handoff tells whether
    it is a copy of the unit's socket (not to shut that one down) by
    kcmp(), not by the fstat() that would wait for that answer."""
    fuse_file_stored_as_listen_socket_beside_the_units_sockets(tmp)


def test_fuse_file_stored_as_listen_socket_beside_the_units_sockets_without_statx_or_kcmp(tmp):
    """The same where kcmp(2) and statx(2) are both refused (Docker's
    default seccomp profile before 18.04): the inode that tells a copy
    without kcmp() came from the fstat() that statx() falls back to, and
    waited for that answer. A file is no copy of a socket: it is not
    asked."""
    fuse_file_stored_as_listen_socket_beside_the_units_sockets(tmp, seccomp_prefix(NO_KCMP, NO_STATX))


def fuse_file_stored_as_listen_socket_beside_the_units_sockets(tmp, prefix=()):
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    fs = hanging_fs(mnt, hold_getattr=True)
    web, port = listening_socket()
    fd = os.open(os.path.join(mnt, "f"), os.O_RDONLY | os.O_CLOEXEC)
    h = Launched(tmp, [], [FIXTURE], fds=[web.fileno(), fd], prefix=list(prefix),
                 env={"LISTEN_FDS": "2", "LISTEN_PID": "self", "LISTEN_FDNAMES": "web:handoff.listen.0"})
    web.close()
    try:
        h.wait_started()
        check(http_get(port)[0] == 200, h.log())
        check(not fs.getattrs, f"handoff asked the FUSE server: {len(fs.getattrs)} getattr(s) unanswered")
        check(h.stop() == 0, h.log())
    finally:
        os.close(fd)
        fs.stop()  # a handoff stuck in the fstat() can be stopped now
        h.kill_all()


def test_stored_listen_socket_whose_path_lookup_hangs(tmp):
    """A server with NotifyAccess=all stores a unix socket of its own into
    systemd's fd store as handoff.listen.1, bound in a directory on which
    it then mounts a FUSE file system whose server never answers a lookup.
    At the next start no --listen asks for that socket: to remove its file,
    handoff looked up the path the socket names, and waited for that
    answer: it neither started nor exited. The path is no --listen's:
    handoff lets go of the socket without looking it up."""
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    forged = socket.socket(socket.AF_UNIX)
    forged.bind(os.path.join(mnt, "s"))
    forged.listen()
    try:
        fs = hanging_fs(mnt, hold_lookup=True)
    except Skip:
        forged.close()
        raise
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    port = tcp.getsockname()[1]
    h = Launched(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}"], [FIXTURE], fds=[tcp.fileno(), forged.fileno()],
                 env={"LISTEN_FDS": "2", "LISTEN_PID": "self",
                      "LISTEN_FDNAMES": "handoff.listen.0:handoff.listen.1"})
    try:
        h.wait_started()
        check(f"Reusing 127.0.0.1:{port}" in h.log(), h.log())
        check(not fs.lookups, f"handoff looked the path up: {len(fs.lookups)} lookup(s) unanswered")
        check(f"Not removing {mnt}/s, the file of that socket: no --listen names that path now." in h.log(),
              h.log())
        check(h.stop() == 0, h.log())
    finally:
        fs.stop()  # a handoff stuck in the lookup can be stopped now
        h.kill_all()
        forged.close()
        tcp.close()


def test_nofile_raised_for_handoff_not_for_generations(tmp):
    """handoff raises its own soft RLIMIT_NOFILE to the hard limit; each
    generation gets the soft limit handoff was started with."""
    port = free_port()
    fake = FakeSystemd(tmp)
    h = Launched(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}"], [FIXTURE], notify=fake,
                 prefix=["prlimit", "--nofile=1000:4096"])
    try:
        h.port = port
        h.wait_ready(1)
        for n in (1, 2):
            gen = h.generation_pid(n)
            check(nofile_of(h.main_pid()) == (4096, 4096), f"handoff: {nofile_of(h.main_pid())}")
            check(nofile_of(gen) == (1000, 4096), f"generation {n}: {nofile_of(gen)}")
            if n == 1:
                reload_within(h, 5)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


MODE_INDEPENDENT = {"test_runtime_dir_others_can_write_is_refused", "test_forged_socket_table_line_is_not_trusted",
                    "test_overflow_uid_gets_no_abstract_name", "test_unix_listen_on_a_full_live_socket",
                    "test_unix_listen_directory_swapped_before_the_unlink",
                    "test_unix_listen_directory_swapped_after_the_bind"}

if __name__ == "__main__":
    def fresh(fn):
        def wrapper(tmp):
            del _baseline[:]
            return fn(tmp)
        wrapper.__name__ = fn.__name__
        return wrapper

    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_")]
    run([showing_logs(fresh(t)) for t in tests])
