#!/usr/bin/python3
"""handoff with servers that follow sd_listen_fds(3) on their own: the C
fixture (libsystemd) is everywhere else; here a stdlib Python server and
gunicorn, each reloaded under load."""

import os
import shutil
import signal

from handofftest.handoff import Handoff
from handofftest.load import Load
from handofftest.net import free_port, serving_pid, wait_new_pid
from handofftest.notify import FakeSystemd
from handofftest.runner import Skip, run
from handofftest.wait import check

HERE = os.path.dirname(os.path.abspath(__file__))
PYSERVER = os.path.join(HERE, "..", "fixtures", "pyserver.py")

WSGI_APP = '''
import os
def app(environ, start_response):
    body = ("pid=%d gen=%s\\n" % (os.getppid(), os.environ.get("HANDOFF_GENERATION", "-"))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def reload_under_load(tmp, command, reloads, what):
    port = free_port()
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise", "--start-timeout=30s"], command, notify=fake)
    load = None
    try:
        h.wait_ready(1, timeout=30)
        load = Load(f"127.0.0.1:{port}", tmp, concurrency=2)
        pid = serving_pid(port)
        for i in range(reloads):
            h.signal(signal.SIGHUP)
            h.wait_ready(i + 2, timeout=30)
            pid = wait_new_pid(port, pid)
        res = load.stop()
        check(res["failed"] == 0, f"{what}: failed requests across reloads: {res}")
        check(len(res["pids"]) >= reloads, f"{what}: every generation served: {res['pids']}")
        last = [m for m in fake.snapshot() if m.fields.get("READY") == "1"][-1].fields["STATUS"]
        check(f"{reloads} reloads, 0 failed; last: reload to generation {reloads + 1} ok" in last, last)
        check(h.stop() == 0, h.log())
        check(not h.descendants(), f"{what}: nothing left: {h.descendants()}")
    finally:
        if load and load.proc.poll() is None:
            load.proc.kill()
        h.kill_all()
        fake.close()


def test_python_server_reading_listen_fds(tmp):
    reload_under_load(tmp, ["/usr/bin/python3", PYSERVER], 5, "pyserver")


def test_gunicorn(tmp):
    gunicorn = shutil.which("gunicorn")
    if not gunicorn:
        raise Skip("gunicorn is not installed (Debian package gunicorn)")
    with open(os.path.join(tmp, "wsgiapp.py"), "w") as f:
        f.write(WSGI_APP)
    # The pid in the answer is the arbiter's (the worker's parent): that is
    # the generation's main process.
    reload_under_load(tmp, [gunicorn, "--workers", "2", "--chdir", tmp, "--graceful-timeout", "10", "wsgiapp:app"], 3,
                      "gunicorn")


if __name__ == "__main__":
    run([test_python_server_reading_listen_fds, test_gunicorn])
