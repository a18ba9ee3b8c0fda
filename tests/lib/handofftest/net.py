"""Traffic on 127.0.0.1: free ports, a request on a new connection, and the
fixture server's answer ("pid=N gen=G")."""

import socket
import time

from .wait import wait_for


# Ports this process has been given: the kernel may hand the same free port
# to two bind(0)s in a row, and a test that asks for several (16 listeners,
# say) then passes one twice and handoff rightly refuses to start.
_given = set()


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago, never one this process was
    given before."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port


def read_all(s, deadline=None):
    """Everything the peer sends until it closes, bounded by the socket's
    timeout per read, or by deadline (a time.monotonic() value) in all."""
    data = b""
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no end of the answer by the deadline (%d bytes read)" % len(data))
            s.settimeout(left)
        b = s.recv(65536)
        if not b:
            return data
        data += b


def tcp_request(port, data=b"", host="127.0.0.1", timeout=5.0):
    """Connect, send data (if any), read until the peer closes, all within
    timeout seconds; returns the bytes."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        return read_all(s, deadline)


def http_get(port, path="/", timeout=5.0, host="127.0.0.1"):
    """One request on a new connection, answered within timeout seconds.
    Returns (status, body, pid): pid from the fixture's "pid=N", else None."""
    data = tcp_request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
                       host=host, timeout=timeout)
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
