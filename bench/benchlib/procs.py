"""The processes of a benchmark run: every generation of the server (reported
by bench/server-shim before it execs the fixture) with its exit time (watched
through a pidfd), the supervising process's memory, and cleanup. Waiting,
ports, requests, /proc and the fake NOTIFY_SOCKET come from the test
library (tests/lib/handofftest), as in the tests.

Every wait here has a deadline. Timestamps are CLOCK_MONOTONIC microseconds,
the clock of loadgen's --csv and of the shim's datagrams."""

import contextlib
import os
import select
import signal
import socket
import subprocess
import threading
import time

from handofftest.net import http_get
from handofftest.notify import FakeSystemd
from handofftest.procs import cmdline, proc_status
from handofftest.wait import WaitTimeout, wait_for


def now_us():
    return time.monotonic_ns() // 1000


def wait_serving(port, timeout=15.0):
    """Waits for a 200 answer on 127.0.0.1:port; returns its body."""
    def answer():
        status, body, _ = http_get(port, timeout=2.0)
        return body if status == 200 else None
    return wait_for(answer, timeout, "an answer on 127.0.0.1:%d" % port, 0.02, retry=Exception)


def set_realtime(on=True):
    """Make the calling thread SCHED_FIFO (priority 1, reset on fork, so
    nothing it starts inherits it), or SCHED_OTHER again. Only the
    benchmark's own timing threads use it (trigger loop, exit watcher,
    samplers), so that a saturated machine delays the contenders, not the
    stopwatch. Returns False when not permitted (not root)."""
    try:
        if on:
            os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(1))
        else:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return True
    except (PermissionError, OSError, AttributeError):
        return False


@contextlib.contextmanager
def realtime():
    ok = set_realtime(True)
    try:
        yield ok
    finally:
        if ok:
            set_realtime(False)


def _proc_table():
    """{pid: (ppid, utime+stime in clock ticks, comm)} of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()
        out[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]), comm)
    return out


class ForeignCPU:
    """CPU used during a run by processes that are not the benchmark's (not
    descendants of this process or of the user manager): other work on a
    shared machine, which disturbs every latency figure. Counts processes
    alive at both ends of the run."""

    def __init__(self, our_roots):
        self.roots = set(our_roots)
        self.t0 = time.monotonic()
        self.before = _proc_table()

    def _ours(self, table):
        children = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        ours, todo = set(), list(self.roots)
        while todo:
            p = todo.pop()
            if p in ours:
                continue
            ours.add(p)
            todo.extend(children.get(p, []))
        return ours

    def stop(self):
        after = _proc_table()
        secs = time.monotonic() - self.t0
        ours = self._ours(after) | self._ours(self.before)
        hz = os.sysconf("SC_CLK_TCK")
        use = {}
        for pid, (_, ticks, comm) in after.items():
            if pid in ours or pid not in self.before or self.before[pid][2] != comm:
                continue
            d = ticks - self.before[pid][1]
            if d > 0:
                use[comm] = use.get(comm, 0) + d / hz
        total = sum(use.values())
        top = sorted(use.items(), key=lambda kv: -kv[1])[:3]
        return {"cores": total / secs if secs > 0 else 0.0,
                "top": [(name, cpu / secs) for name, cpu in top]}


class Generation:
    """One server process: pid, its parent (the supervisor), exec and exit time."""

    __slots__ = ("pid", "ppid", "exec_us", "gen", "exit_us")

    def __init__(self, pid, ppid, exec_us, gen):
        self.pid, self.ppid, self.exec_us, self.gen = pid, ppid, exec_us, gen
        self.exit_us = None

    def __repr__(self):
        return "<gen %s pid %d exec %d exit %s>" % (self.gen, self.pid, self.exec_us, self.exit_us)


class Generations:
    """Receives the shim's "exec pid=P ppid=Q t=US gen=G" datagrams on an
    AF_UNIX socket and records each generation's exit through a pidfd."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.setblocking(False)
        self.lock = threading.Lock()
        self._gens = []
        self._pidfds = {}            # pidfd -> Generation
        self._poller = select.poll()
        self._poller.register(self.sock.fileno(), select.POLLIN)
        self._running = True
        self.thread = threading.Thread(target=self._loop, name="generations", daemon=True)
        self.thread.start()

    def _loop(self):
        set_realtime(True)
        while self._running:
            for fd, _ev in self._poller.poll(200):
                t = now_us()
                if fd == self.sock.fileno():
                    self._receive()
                    continue
                with self.lock:
                    g = self._pidfds.pop(fd, None)
                    if g is None:
                        continue
                    g.exit_us = t
                    self._poller.unregister(fd)
                    os.close(fd)

    def _receive(self):
        while True:
            try:
                data = self.sock.recv(512)
            except (BlockingIOError, InterruptedError):
                return
            try:
                f = dict(kv.split("=", 1) for kv in data.decode().split()[1:])
                g = Generation(int(f["pid"]), int(f["ppid"]), int(f["t"]), f.get("gen", "-"))
            except (ValueError, KeyError):
                continue
            with self.lock:
                try:
                    fd = os.pidfd_open(g.pid)
                except ProcessLookupError:
                    g.exit_us = now_us()         # gone already: an upper bound
                else:
                    self._pidfds[fd] = g
                    self._poller.register(fd, select.POLLIN)
                self._gens.append(g)

    def snapshot(self, since_us=0):
        with self.lock:
            return [g for g in self._gens if g.exec_us >= since_us]

    def alive(self, since_us=0):
        return [g for g in self.snapshot(since_us) if g.exit_us is None]

    def wait_all_gone(self, since_us, keep, timeout):
        """Wait until every generation since since_us but the `keep` newest has exited."""
        def done():
            live = [g for g in self.alive(since_us)]
            return len(live) <= keep
        with contextlib.suppress(WaitTimeout):
            wait_for(done, timeout, "retired generations to exit", 0.02)

    def kill_all(self):
        """SIGKILL every generation still alive (pidfds: no pid-reuse risk)."""
        with self.lock:
            for fd in list(self._pidfds):
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)

    def close(self):
        self._running = False
        self.thread.join(2)
        with self.lock:
            for fd in list(self._pidfds):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._pidfds.clear()
        self.sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def read_memory(pid):
    """(VmRSS, RssAnon) of pid in KiB, or None if it is gone."""
    try:
        vals = proc_status(pid, ("VmRSS", "RssAnon"))
    except OSError:
        return None
    if len(vals) != 2:
        return None       # a zombie has no memory lines
    return vals["VmRSS"], vals["RssAnon"]


class MemorySampler:
    """Samples VmRSS and RssAnon of the supervising process(es) every
    `interval` seconds while a run lasts; keeps the maxima. `is_supervisor`
    vets each pid by its command line first: pids are reused quickly here
    (pid_max 32768), and a pid that belonged to a handoff a moment ago may be
    a systemctl now."""

    def __init__(self, pids_fn, is_supervisor, interval=0.05):
        self.pids_fn = pids_fn
        self.is_supervisor = is_supervisor
        self.interval = interval
        self.max_rss = self.max_anon = 0
        self.samples = 0
        self.pids = set()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="memory", daemon=True)
        self.thread.start()

    def _loop(self):
        set_realtime(True)
        while not self._stop.is_set():
            try:
                pids = set(self.pids_fn())
            except Exception:  # noqa: BLE001 - a racing /proc read; next tick
                pids = set()
            for pid in pids:
                if not self.is_supervisor(cmdline(pid)):
                    continue
                m = read_memory(pid)
                if m and self.is_supervisor(cmdline(pid)):
                    self.samples += 1
                    self.pids.add(pid)
                    self.max_rss = max(self.max_rss, m[0])
                    self.max_anon = max(self.max_anon, m[1])
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self.thread.join(2)
        if not self.samples:
            return None
        return {"rss_kib": self.max_rss, "anon_kib": self.max_anon,
                "samples": self.samples, "processes": len(self.pids)}


class Processes:
    """Every process the benchmark starts itself, so that all of them are
    stopped at exit, also on failure (see close())."""

    def __init__(self):
        self._procs = []

    def spawn(self, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(argv, **kw)
        self._procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=40):
        """Signal p, wait up to timeout, then SIGKILL its process group."""
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, sig)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        with contextlib.suppress(ValueError):
            self._procs.remove(p)
        return p.returncode

    def reap_finished(self):
        """Forget processes that have exited (e.g. systemctl calls)."""
        self._procs = [p for p in self._procs if p.poll() is None]

    def close(self):
        procs, self._procs = self._procs, []
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)


def fake_notify(tmpdir, name):
    """A FakeSystemd (the tests' fake NOTIFY_SOCKET) whose receiving thread
    runs real-time, like the benchmark's other timing threads: a READY=1's
    .t_us is its arrival time."""
    return FakeSystemd(tmpdir, name, thread_setup=set_realtime)
