#!/usr/bin/python3
"""HAProxy (Debian package haproxy, 2.6 in Debian 12) in master-worker mode
(-Ws). Its configuration takes the listening socket with "bind fd@3" (it
does not read LISTEN_FDS) and answers by itself ("http-request return"), so
no backend is needed. The master sends READY=1 from its own pid through
libsystemd, so the default --notify-access=main hears it, on a path or an
abstract socket alike. SIGUSR1 is HAProxy's soft stop (the master passes it
to its worker, which stops accepting, finishes its connections and exits,
and the master exits after it); SIGTERM is its hard stop, so
--stop-signal=USR1."""

import os
import signal
import socket
import time

import recipes
from compat import group_members, reload_under_load
from harness import FakeSystemd, Handoff, check, free_port, run, wait_for


def test_haproxy(tmp):
    reload_under_load(tmp, "haproxy", recipes.haproxy(tmp), args=recipes.OPTIONS["haproxy"])


def test_haproxy_abstract_notify_socket(tmp):
    """libsystemd's sd_notify, which HAProxy's master uses, reaches an
    abstract socket too: the generation becomes ready, and SIGUSR1 at the
    stop ends it cleanly."""
    reload_under_load(tmp, "haproxy (abstract notify socket)", recipes.haproxy(tmp), reloads=2,
                      args=[*recipes.OPTIONS["haproxy"], "--notify-socket=abstract"])


def get_keepalive(s, timeout=10):
    """One GET on the open connection s; returns (status, headers as a
    lower-case dict, body), or None when the server closed s instead of
    answering (what a client that does not retry on a reused connection
    reports as a failure)."""
    deadline = time.monotonic() + timeout
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < length(data):
            s.settimeout(max(deadline - time.monotonic(), 0.001))
            b = s.recv(65536)
            if not b:
                return None
            data += b
    except (ConnectionResetError, BrokenPipeError):
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict((k.strip().lower(), v.strip().lower()) for k, _, v in (h.partition(":") for h in lines[1:]))
    return int(lines[0].split()[1]), headers, body.decode()


def length(data):
    """The Content-Length of the response head in data (0 until it is all
    there)."""
    head = data.partition(b"\r\n\r\n")[0].decode().lower()
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return int(line.split(":", 1)[1])
    return 0


def test_haproxy_idle_keepalive_answered_after_reload(tmp):
    """Keep-alive connections idle when their generation is retired: the
    recipe's "option idle-close-on-response" keeps them open through
    HAProxy's soft stop, so a client's next request is still answered, by
    the old worker with "Connection: close"; one that stays silent holds
    the old generation until "timeout http-keep-alive" (5 s) closes it, and
    then the generation exits by itself, long before the drain deadline.
    Without the option the old worker closes idle connections as it
    soft-stops, and a client that does not retry a request on a reused
    connection fails."""
    port = free_port()
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime)
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise", "--drain-timeout=20s",
                      *recipes.OPTIONS["haproxy"]], recipes.haproxy(tmp), notify=fake,
                env={"RUNTIME_DIRECTORY": runtime})
    try:
        h.wait_ready(1, timeout=35)
        first = h.generation_pid(1)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as asks, \
                socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
            workers = set()
            for s in (asks, silent):
                res = get_keepalive(s)
                check(res and res[0] == 200 and res[1].get("connection") != "close", f"first answer: {res}")
                workers.add(int(res[2].split("pid=")[1]))
            silent_since = time.monotonic()
            check(len(workers) == 1, f"one worker answered both: {workers}")
            worker = workers.pop()
            listener = os.readlink(f"/proc/{worker}/fd/3")

            def has_listener():
                try:
                    return any(os.readlink(f"/proc/{worker}/fd/{fd}") == listener
                               for fd in os.listdir(f"/proc/{worker}/fd"))
                except FileNotFoundError:
                    return False

            h.signal(signal.SIGHUP)
            h.wait_ready(2, timeout=35)
            # The old worker has taken the soft stop once it closed its copy
            # of the listener.
            wait_for(lambda: not has_listener(), 10, f"the old worker {worker} to close the listener")
            res = get_keepalive(asks)
            check(res is not None, "the idle connection was closed at the soft stop, not answered")
            check(res[0] == 200 and res[1].get("connection") == "close" and res[2] == f"pid={worker}\n",
                  f"answered by the old worker {worker} with Connection: close: {res}")
            check(worker in group_members(first), f"the old worker {worker} still runs for the silent connection")
            # Its close is the event that tells the option from its absence:
            # without it the soft stop closes the connection at once, not
            # after the 5 s of "timeout http-keep-alive" from its last
            # answer (4.5 s leaves room for the clocks' granularity).
            silent.settimeout(15)
            check(silent.recv(1) == b"", "the silent connection is closed without an answer")
            idle = time.monotonic() - silent_since
            check(idle >= 4.5, f"the silent connection was closed after {idle:.1f}s idle, not the 5 s of "
                               "timeout http-keep-alive: closed at the soft stop")
            wait_for(lambda: not group_members(first), 10, f"generation 1 (process group {first}) to be gone")
        check("did not exit in time" not in h.log(), f"no SIGKILL at the drain deadline:\n{h.log()}")
        print("haproxy: an idle keep-alive connection is answered after the reload, with Connection: close; "
              "a silent one is closed after timeout http-keep-alive", flush=True)
        check(h.stop() == 0, h.log())
    finally:
        h.close()
        fake.close()


if __name__ == "__main__":
    run([test_haproxy, test_haproxy_abstract_notify_socket, test_haproxy_idle_keepalive_answered_after_reload])
