#!/usr/bin/python3
"""gunicorn (Debian package gunicorn): a pre-fork WSGI server. It takes the
socket from LISTEN_FDS/LISTEN_PID by itself, its arbiter sends READY=1, and
SIGTERM is its graceful stop (workers finish their requests within
--graceful-timeout)."""

import os

from compat import need, reload_under_load
from harness import run

WSGI_APP = '''
import os
def app(environ, start_response):
    body = b"pid=%d\\n" % os.getppid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def test_gunicorn(tmp):
    gunicorn = need("gunicorn", "gunicorn")
    with open(os.path.join(tmp, "wsgiapp.py"), "w") as f:
        f.write(WSGI_APP)
    reload_under_load(tmp, "gunicorn", [gunicorn, "--workers", "2", "--chdir", tmp, "--graceful-timeout", "10",
                                        "wsgiapp:app"])


if __name__ == "__main__":
    run([test_gunicorn])
