#!/usr/bin/python3
"""lighttpd (Debian package lighttpd): takes the socket from LISTEN_FDS with
server.systemd-socket-activation = "enable" (its server.bind/server.port
must name the same address), runs in the foreground with -D. It has no
sd_notify support, so readiness is --ready=delay:DUR: the socket already
listens, so connections that arrive before it accepts wait in the backlog.
Its graceful stop is SIGINT (stop accepting, finish requests, exit);
SIGTERM stops at once and cuts requests off, so --stop-signal=INT."""

import os

import recipes
from compat import reload_under_load
from harness import run


def test_lighttpd(tmp):
    command = recipes.lighttpd(tmp, errorlog=os.path.join(tmp, "lighttpd-error.log"))
    reload_under_load(tmp, "lighttpd", command, args=recipes.OPTIONS["lighttpd"])


if __name__ == "__main__":
    run([test_lighttpd])
