#!/usr/bin/python3
"""uWSGI (Debian packages uwsgi, uwsgi-plugin-python3): a pre-fork server
whose master process takes LISTEN_FDS by itself ("SystemD socket activation
detected") and sends READY=1 from the master.

What it needs: --protocol=http, because an inherited socket speaks uwsgi's
own protocol by default (an --http-socket of the same address is not
matched to it); and a graceful stop signal. uWSGI 2.0's SIGTERM is a
"brutal reload", --die-on-term turns it into "kill the workers now" (cutting
requests off), SIGINT/SIGQUIT kill at once. The documented recipe
--hook-master-start "unix_signal:15 gracefully_kill_them_all" makes SIGTERM
a graceful shutdown: workers finish their requests and exit.

Known limit, inside uWSGI 2.0: a worker's graceful-stop handler exits at
once when the worker is not "in a request", and a worker only counts as in
one after it has read the request (wsgi_req_recv sets in_request), not
right after accept(). A connection accepted in that instant is closed
unanswered: measured here at about 1 reset per 10-30 reloads under heavy
load, with or without --threads. handoff cannot close that window from
outside, so this case allows at most 1 reset in its 10 reloads, and the
README does not claim 0 failed for uWSGI.

A second one, with --threads: now and then a worker never runs its
graceful-stop handler (uWSGI's "Gracefully killing worker N" line is missing
for it) and the old generation hangs until handoff's drain deadline kills it
(seen once in 10 reloads). The case allows one such SIGKILL and uses a 5 s
drain deadline so that it costs 5 s, not 30; still no process may be left."""

import os

from compat import need, reload_under_load
from harness import Skip, run

WSGI_APP = '''
import os
def application(environ, start_response):
    body = b"pid=%d\\n" % os.getppid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def test_uwsgi(tmp):
    uwsgi = need("uwsgi", "uwsgi")
    if not os.path.exists("/usr/lib/uwsgi/plugins/python3_plugin.so"):
        raise Skip("uWSGI's python3 plugin is not installed (Debian package uwsgi-plugin-python3)")
    app = os.path.join(tmp, "app.py")
    with open(app, "w") as f:
        f.write(WSGI_APP)
    reload_under_load(tmp, "uwsgi", [uwsgi, "--plugin", "python3", "--master", "--workers", "2", "--threads", "2", "--protocol", "http",
                                     "--wsgi-file", app, "--hook-master-start",
                                     "unix_signal:15 gracefully_kill_them_all", "--disable-logging"],
                      known_resets=1, known_sigkills=1, drain_s=5)


if __name__ == "__main__":
    run([test_uwsgi])
