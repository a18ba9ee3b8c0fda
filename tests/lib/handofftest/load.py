"""Load on a server: the C load client (tests/fixtures/loadgen) running until
told to stop, and one slow request in a thread."""

import json
import os
import socket
import subprocess
import threading
import time

from .net import read_all
from .runner import after_each_test
from .wait import TestFailure, wait_for

LOADGEN = os.environ.get("LOADGEN", "build/tests/fixtures/loadgen")

# Load clients still running. One runs until told to stop, so a test that
# fails before stop() would leave it loading the machine for good: the
# runner kills what is left after every test.
_running = set()


@after_each_test
def kill_leftovers():
    for load in list(_running):
        load.kill()


class Load:
    """Continuous load from the C load client until stop(). target is
    "HOST:PORT" or a unix socket path; the stop file, and the file where
    the client says which pids answer it, go into tmpdir."""

    def __init__(self, target, tmpdir, mode="new", concurrency=4, path="/", timeout_ms=10000, stop_timeout=30):
        self.stop_timeout = stop_timeout
        self.until = os.path.join(tmpdir, f"stop-load-{time.monotonic_ns()}")
        self.pids_file = os.path.join(tmpdir, f"load-pids-{time.monotonic_ns()}")
        self.proc = subprocess.Popen(
            [LOADGEN, "--connect", target, "--mode", mode, "--concurrency", str(concurrency),
             "--path", path, "--until-file", self.until, "--timeout-ms", str(timeout_ms),
             "--pids-file", self.pids_file],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _running.add(self)

    def stop(self, timeout=None):
        """Tells the client to stop and returns its summary (a dict with
        "ok", "failed", ...); fails if it does not stop within timeout
        (default: the stop_timeout given at the start)."""
        timeout = timeout or self.stop_timeout
        open(self.until, "w").close()
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestFailure(f"loadgen did not stop within {timeout}s")
        _running.discard(self)
        try:
            self.result = json.loads(out)
        except ValueError:
            raise TestFailure(f"loadgen printed no summary: {out!r} {err!r}")
        return self.result

    def wait_answered_by(self, pid, timeout=10):
        """Waits until pid has answered a request of the load."""
        def answered():
            try:
                with open(self.pids_file) as f:
                    return str(pid) in f.read().split()
            except FileNotFoundError:
                return False
        wait_for(answered, timeout, f"a request of the load answered by pid {pid}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _running.discard(self)


class SlowRequest(threading.Thread):
    """GET /slow/MS (or path, e.g. the fixture's /hold) on a connection of
    its own, started now and answered later: .status, .pid, .body, or
    .error; .connected is set once the request is sent (or it failed)."""

    def __init__(self, port, ms, timeout=30, path=None):
        super().__init__(daemon=True)
        self.port, self.ms, self.timeout = port, ms, timeout
        self.path = path or f"/slow/{ms}"
        self.status = self.pid = self.body = self.error = None
        self.connected = threading.Event()
        self.start()

    def run(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout) as s:
                s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                self.connected.set()
                data = read_all(s)
            head, _, body = data.partition(b"\r\n\r\n")
            self.status = int(head.split(b" ", 2)[1])
            self.body = body.decode()
            self.pid = int(self.body.split()[0][4:])
        except Exception as e:  # recorded, asserted by the test
            self.error = repr(e)
        finally:
            self.connected.set()
