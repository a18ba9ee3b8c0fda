#!/usr/bin/python3
"""gunicorn (Debian package gunicorn): a pre-fork WSGI server. It takes the
socket from LISTEN_FDS/LISTEN_PID by itself, its arbiter sends READY=1, and
SIGTERM is its graceful stop (workers finish their requests within
--graceful-timeout)."""

import os
import signal

import recipes
from compat import group_members, reload_under_load
from harness import FakeSystemd, Handoff, check, free_port, http_get, run, wait_for

GREETING_APP = '''
import os
GREETING = os.environ.get("GREETING", "(none)").encode()
def app(environ, start_response):
    body = b"pid=%d greeting=%s\\n" % (os.getppid(), GREETING)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def test_gunicorn_configured_by_an_environment_file(tmp):
    """gunicorn takes its settings from $GUNICORN_CMD_ARGS as well, and the
    app its own variables: with --environment-file, an edited file and a
    reload give the next generation the new worker count and greeting (a
    removed variable gone), as a restart would."""
    gunicorn = recipes.need("gunicorn", "gunicorn")
    with open(os.path.join(tmp, "greetapp.py"), "w") as f:
        f.write(GREETING_APP)
    conf = os.path.join(tmp, "app.conf")
    with open(conf, "w") as f:
        f.write('GUNICORN_CMD_ARGS="--workers 2"\nGREETING=hello\n')
    port = free_port()
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise", f"--environment-file={conf}"],
                [gunicorn, "--chdir", tmp, "--graceful-timeout", "10", "greetapp:app"], notify=fake)

    def answered_by(pid):
        """The greeting, once pid (an arbiter) answers."""
        def get():
            status, body, _ = http_get(port)
            return body.split("greeting=")[1].strip() if status == 200 and f"pid={pid} " in body else None
        return wait_for(get, 30, f"the arbiter {pid} to answer", retry=OSError)

    try:
        h.wait_ready(1, timeout=35)
        first = h.generation_pid(1)
        check(answered_by(first) == "hello", "generation 1's greeting")
        wait_for(lambda: len(group_members(first)) == 3, 30, "generation 1: the arbiter and 2 workers")
        with open(conf, "w") as f:
            f.write('GUNICORN_CMD_ARGS="--workers 3"\n')
        h.signal(signal.SIGHUP)
        h.wait_ready(2, timeout=35)
        second = h.generation_pid(2)
        wait_for(lambda: not group_members(first), 30, "generation 1 to be gone")
        check(answered_by(second) == "(none)", "generation 2: GREETING removed")
        wait_for(lambda: len(group_members(second)) == 4, 30, "generation 2: the arbiter and 3 workers")
        print("gunicorn: generation 2 runs 3 workers after the edit, its greeting removed", flush=True)
        check(h.stop() == 0, h.log())
    finally:
        h.close()
        fake.close()


def test_gunicorn(tmp):
    reload_under_load(tmp, "gunicorn", recipes.gunicorn(tmp))


if __name__ == "__main__":
    run([test_gunicorn, test_gunicorn_configured_by_an_environment_file])
