#!/usr/bin/python3
"""uvicorn (Debian package uvicorn, 0.17.6): the common ASGI server, with a
plain ASGI app. It reads no LISTEN_FDS: --fd 3 names the socket handoff
passes. It has no sd_notify, so readiness is --ready=delay:DUR (the socket
already listens: connections that arrive before it accepts wait in the
backlog). SIGTERM is its graceful stop: it stops accepting, closes idle
keep-alive connections (their clients retry, as loadgen does), lets the
requests in progress finish and exits.

Known limit, inside uvicorn (Server.shutdown() and H11Protocol.shutdown()
in 0.17.6, unchanged upstream: Kludex/uvicorn discussion #2315, issue
#2757): the shutdown closes, in the same loop iteration in which it stops
accepting, every connection with no request in progress, and a connection
it accepted a moment earlier whose request it has not read yet is one. Its
client sees the connection reset before any byte of an answer. handoff
cannot close that window from outside, and how often it is hit depends on
the machine's load (1 in 10 reloads in a first run here). So no count is
allowed in advance: uvicorn runs under uvicorn-counting.py, which counts
each connection its shutdown closes before reading a request on it, and
the case allows that many resets and no more. The README does not claim 0
failed for uvicorn."""

import errno
import os
import signal
import socket
import sys

import recipes
from compat import group_members, reload_under_load
from harness import FakeSystemd, Handoff, SlowRequest, check, free_port, run, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))

# The recipe's app, plus GET /hold: answered once the test has opened the
# fifo $HOLD_FIFO for writing and closed it again (a fifo that never had a
# writer does not poll readable; its last writer's close makes it so).
HOLD_APP = recipes.ASGI_APP.replace("async def app(scope, receive, send):\n", '''import asyncio
async def hold():
    loop = asyncio.get_running_loop()
    fd = os.open(os.environ["HOLD_FIFO"], os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    released = loop.create_future()
    loop.add_reader(fd, lambda: released.done() or released.set_result(None))
    try:
        await released
    finally:
        loop.remove_reader(fd)
        os.close(fd)
async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/hold":
        await hold()
''')


def open_writer(fifo):
    """An fd writing to fifo once a reader has it open, else None."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ENXIO:
            return None
        raise


def get_keep_alive(conn):
    """GET / on conn, kept open; the body of the answer."""
    conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        check(chunk, f"an answer on the keep-alive connection: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.lower().split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields[b"content-length"])
    while len(body) < length:
        chunk = conn.recv(4096)
        check(chunk, f"the whole body: {body!r}")
        body += chunk
    return body.decode()


def test_uvicorn(tmp):
    log = os.path.join(tmp, "uvicorn-unanswered.log")
    # The hook counts what h11's protocol does: --http h11 keeps uvicorn
    # from choosing httptools where that is installed.
    command = [sys.executable, os.path.join(HERE, "uvicorn-counting.py"), *recipes.uvicorn(tmp), "--http", "h11"]
    reload_under_load(tmp, "uvicorn", command, args=recipes.OPTIONS["uvicorn"], env={"UVICORN_UNANSWERED_LOG": log},
                      unanswered_log=log)



def test_uvicorn_stop_finishes_a_request_and_closes_idle_keep_alive(tmp):
    """What uvicorn's SIGTERM does to the old generation's connections: a
    request in progress is answered, by that generation, after the stop;
    an idle keep-alive connection is closed at the stop (an end of stream,
    not a reset, and no answer), so its client's next request goes to a
    new connection. --timeout-keep-alive is raised so that the stop, not
    uvicorn's 5 s idle timeout, is what closes it."""
    command = [*recipes.uvicorn(tmp), "--timeout-keep-alive", "300"]
    recipes.write(tmp, "asgiapp.py", HOLD_APP)
    fifo = os.path.join(tmp, "hold")
    os.mkfifo(fifo)
    port = free_port()
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise", "--drain-timeout=60s",
                      *recipes.OPTIONS["uvicorn"]], command, notify=fake, env={"HOLD_FIFO": fifo})
    writer = -1
    try:
        h.wait_ready(1, timeout=35)
        first = h.generation_pid(1)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as idle:
            check(get_keep_alive(idle) == f"pid={first}\n", "generation 1 answers on the keep-alive connection")
            held = SlowRequest(port, 0, path="/hold")
            writer = wait_for(lambda: open_writer(fifo), 30, "generation 1 to hold GET /hold")
            h.signal(signal.SIGHUP)
            h.wait_ready(2, timeout=35)
            h.wait_log("Waiting for connections to close", timeout=30)
            check(idle.recv(1) == b"", "the idle keep-alive connection ends at the stop, unanswered")
        check(group_members(first), "generation 1 runs on while it holds a request")
        os.close(writer)
        writer = -1
        held.join(30)
        check(held.status == 200 and held.pid == first, f"the held request answered by generation 1: {held.error}")
        wait_for(lambda: not group_members(first), 30, f"generation 1 to be gone; log:\n{h.log()}")
        check("did not exit in time" not in h.log(), h.log())
        print("uvicorn: a held request answered by the stopped generation, its idle keep-alive connection closed",
              flush=True)
        check(h.stop() == 0, h.log())
    finally:
        if writer >= 0:
            os.close(writer)
        h.close()
        fake.close()


if __name__ == "__main__":
    run([test_uvicorn, test_uvicorn_stop_finishes_a_request_and_closes_idle_keep_alive])
