"""Process-test harness for handoff: the built binary, the fixture server, a
fake systemd notify socket that records every datagram with its sender pid,
real traffic on 127.0.0.1, and bounded waits.

Every wait here has a deadline; nothing sleeps to synchronise. Polling loops
poll for an observable event (a datagram, a response, a process gone)."""

import array
import ctypes
import json
import re
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HANDOFF = os.environ.get("HANDOFF_BIN", "build/src/handoff")
FIXTURE = os.environ.get("FIXTURE_SERVER", "build/tests/fixtures/fixture-server")
LOADGEN = os.environ.get("LOADGEN", "build/tests/fixtures/loadgen")

SKIP = 77
MODE = os.environ.get("HANDOFF_TEST_MODE", "supervise")  # or "handover"


# In handover mode a successor handoff is double-forked so that the service
# manager, a child subreaper, adopts it. The test process plays that part:
# it becomes a subreaper and reaps the adopted processes, keeping their exit
# statuses. Only processes of a handoff session under test are reaped:
# Popen reaps its own children, and taking one from it would lose the status.
_adopted_status = {}
_sessions = set()


def _reaper():
    me = os.getpid()
    while True:
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            pid = int(d)
            if pid in _sessions:
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == me and int(fields[3]) in _sessions:
                try:
                    _, status = os.waitpid(pid, os.WNOHANG)
                    _adopted_status[pid] = os.waitstatus_to_exitcode(status)
                except ChildProcessError:
                    pass
        time.sleep(0.02)


ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
threading.Thread(target=_reaper, daemon=True).start()


class TestFailure(AssertionError):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def wait_for(pred, timeout, what, interval=0.01):
    """Polls pred() until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TestFailure(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def ppid_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except FileNotFoundError:
        return None


def children_of(pid):
    """Direct children of pid (any state), from /proc."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and ppid_of(int(d)) == pid:
            out.append(int(d))
    return out


def is_handoff(pid):
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("handoff")
    except OSError:
        return False


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---- HTTP --------------------------------------------------------------

def http_get(port, path="/", timeout=5.0, host="127.0.0.1"):
    """One request on a new connection. Returns (status, body, pid)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    pid = None
    for tok in body.decode().split():
        if tok.startswith("pid="):
            pid = int(tok[4:])
    return status, body.decode(), pid


def serving_pid(port, timeout=5.0):
    return http_get(port, timeout=timeout)[2]


def wait_new_pid(port, old, timeout=10):
    """After a reload the retiring generation may answer during its short
    close-grace; wait until a request is answered by another process."""
    return wait_for(lambda: (lambda p: p if p != old else None)(serving_pid(port)), timeout,
                    f"a generation other than pid {old} to answer")


class SlowRequest(threading.Thread):
    """A request started now that completes later; result in .status/.pid."""

    def __init__(self, port, ms):
        super().__init__(daemon=True)
        self.port, self.ms = port, ms
        self.status = self.pid = self.error = None
        self.connected = threading.Event()
        self.start()

    def run(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
                s.sendall(f"GET /slow/{self.ms} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                self.connected.set()
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            self.status = int(head.split(b" ", 2)[1])
            self.pid = int(body.decode().split()[0][4:])
        except Exception as e:  # recorded, asserted by the test
            self.error = repr(e)
            self.connected.set()


class Load:
    """Continuous load from the C load client until stop()."""

    def __init__(self, target, tmpdir, mode="new", concurrency=4, path="/"):
        self.until = os.path.join(tmpdir, f"stop-load-{time.monotonic_ns()}")
        self.proc = subprocess.Popen(
            [LOADGEN, "--connect", target, "--mode", mode, "--concurrency", str(concurrency),
             "--path", path, "--until-file", self.until, "--timeout-ms", "10000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self, timeout=30):
        open(self.until, "w").close()
        out, err = self.proc.communicate(timeout=timeout)
        try:
            self.result = json.loads(out)
        except ValueError:
            raise TestFailure(f"loadgen printed no summary: {out!r} {err!r}")
        return self.result


# ---- fake systemd --------------------------------------------------------

class Datagram:
    def __init__(self, pid, text, nfds):
        self.pid, self.text, self.nfds = pid, text, nfds
        self.fields = {}
        for line in text.split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                self.fields[k] = v

    def __repr__(self):
        return f"<{self.pid}: {self.text!r}>"


class FakeSystemd:
    """A NOTIFY_SOCKET that records every datagram with its sender's pid and
    answers BARRIER=1 by closing the fd that came with it, as systemd does."""

    def __init__(self, tmpdir):
        self.path = os.path.join(tmpdir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.1)
        self.messages = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        fdsize = array.array("i").itemsize
        while self.running:
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(64 * fdsize))
            except socket.timeout:
                continue
            except OSError:
                return
            pid, fds = None, []
            for level, typ, payload in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(payload[0:4], sys.byteorder)
                elif level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(payload[: len(payload) - len(payload) % fdsize])
                    fds.extend(a)
            text = data.decode(errors="replace")
            with self.lock:
                self.messages.append(Datagram(pid, text, len(fds)))
                fds = self._keep_fds(text, fds)
            for fd in fds:  # answering BARRIER=1 (and dropping anything else)
                os.close(fd)

    def _keep_fds(self, text, fds):
        """Which of a datagram's fds not to close yet (called with the lock
        held); returns the ones to close. A subclass may hold a barrier."""
        return fds

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def count(self, key, value=None):
        return sum(1 for m in self.snapshot() if key in m.fields and (value is None or m.fields[key] == value))

    def wait_count(self, key, n, timeout=10, value="1"):
        return wait_for(lambda: self.count(key, value) >= n, timeout, f"{n} x {key}={value} (have {self.snapshot()})")

    def close(self):
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


# ---- handoff ---------------------------------------------------------------

class Handoff:
    """A handoff process under test, with its log in a file."""

    def __init__(self, tmpdir, args, command, notify=None, env=None):
        self.tmpdir = tmpdir
        self.logpath = os.path.join(tmpdir, f"handoff-{time.monotonic_ns()}.log")
        e = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID"):
            e.pop(k, None)
        if notify:
            e["NOTIFY_SOCKET"] = notify.path
        e.update(env or {})
        self.notify = notify
        self.argv = [HANDOFF, *args, "--", *command]
        with open(self.logpath, "w") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=e,
                                         start_new_session=True)
        self.pid = self.proc.pid
        _sessions.add(self.pid)

    def mains(self):
        """Every pid that has been main: the first, then each MAINPID=."""
        out = [self.pid]
        if self.notify:
            out += [int(m.fields["MAINPID"]) for m in self.notify.snapshot() if "MAINPID" in m.fields]
        return out

    def main_pid(self):
        return self.mains()[-1]

    def log(self):
        with open(self.logpath) as f:
            return f.read()

    def wait_log(self, text, timeout=10):
        return wait_for(lambda: text in self.log(), timeout, f"log line {text!r}; log:\n{self.log()}")

    def wait_ready(self, n=1, timeout=10):
        """The n-th READY=1 from handoff itself (first start = 1, +1 per reload)."""
        check(self.notify is not None, "wait_ready needs a FakeSystemd")
        count = self.ready_count
        # A main that is gone may have just handed over: read once more.
        return wait_for(lambda: count() >= n or (not pid_alive(self.main_pid()) and
                                                 (count() >= n or not pid_alive(self.main_pid()))),
                        timeout, f"READY=1 #{n}; log:\n{self.log()}")

    def ready_count(self):
        """READY=1 datagrams from whoever was main: 1 at start, +1 per reload."""
        mains = set(self.mains())
        return sum(1 for m in self.notify.snapshot() if m.pid in mains and m.fields.get("READY") == "1")

    def last_status(self):
        """The STATUS= of the last READY=1."""
        return [m for m in self.notify.snapshot() if m.fields.get("READY") == "1"][-1].fields["STATUS"]

    def generation_pid(self, n):
        m = wait_for(lambda: re.search(rf"Started generation {n}: pid (\d+)", self.log()), 10,
                     f"generation {n} started")
        return int(m.group(1))

    def close(self):
        """Teardown after a test, passed or failed: nothing may outlive it."""
        self.kill_all()
        if self.notify:
            self.notify.close()

    def signal(self, sig):
        os.kill(self.main_pid(), sig)

    def exit_status(self, pid):
        if pid == self.pid:
            return self.proc.poll()
        return _adopted_status.get(pid)

    def wait_exit(self, timeout=40):
        """Waits for the current main handoff to exit; returns its status."""
        main = self.main_pid()
        if main == self.pid:
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise TestFailure(f"handoff did not exit within {timeout}s; log:\n{self.log()}")
        wait_for(lambda: main in _adopted_status, timeout, f"main handoff {main} to exit; log:\n{self.log()}")
        return _adopted_status[main]

    def stop(self, timeout=40):
        if pid_alive(self.main_pid()):
            self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def app_pids(self):
        """Live processes of the service that are not handoff itself."""
        return [p for p in self.descendants() if not is_handoff(p)]

    def descendants(self):
        """Every live process in handoff's session except the first handoff:
        generations, workers and successor handoffs."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.pid and int(d) != self.pid and fields[0] != "Z":
                out.append(int(d))
        return out

    def kill_all(self):
        """Teardown after a failed test: nothing may outlive it."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in self.descendants():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        # Pids wrap: a later process must not be taken for one of ours.
        _sessions.discard(self.pid)


def fixture_cmd(args_file=None, *args):
    """The fixture server. With args_file, its arguments are read from that
    file at every start, so a test can change what the next generation does
    (as a config change before a reload would)."""
    if args_file is None:
        return [FIXTURE, *args]
    return ["/bin/sh", "-c", f'exec {shlex.quote(FIXTURE)} $(cat {shlex.quote(args_file)})']


def set_args(args_file, *args):
    tmp = args_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(" ".join(args))
    os.rename(tmp, args_file)


# ---- running --------------------------------------------------------------

def run(tests):
    """Runs test functions, each with a fresh temp dir; prints one line per
    test and exits 0, 1 on any failure, or 77 when every test skipped."""
    failed = skipped = 0
    for fn in tests:
        with tempfile.TemporaryDirectory(prefix="handoff-test-") as tmp:
            t0 = time.monotonic()
            try:
                fn(tmp)
                print(f"ok {fn.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
            except Skip as e:
                skipped += 1
                print(f"skip {fn.__name__}: {e}", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {fn.__name__}:\n{traceback.format_exc()}", flush=True)
    print(f"{len(tests) - failed - skipped} passed, {failed} failed, {skipped} skipped")
    if failed:
        sys.exit(1)
    if skipped == len(tests):
        sys.exit(SKIP)
    sys.exit(0)


class Skip(Exception):
    pass
