#!/usr/bin/python3
"""lighttpd (Debian package lighttpd): takes the socket from LISTEN_FDS with
server.systemd-socket-activation = "enable" (its server.bind/server.port
must name the same address), runs in the foreground with -D. It has no
sd_notify support, so readiness is --ready=delay:DUR: the socket already
listens, so connections that arrive before it accepts wait in the backlog.
Its graceful stop is SIGINT (stop accepting, finish requests, exit);
SIGTERM stops at once and cuts requests off, so --stop-signal=INT."""

import os

from compat import need, reload_under_load
from harness import run

CONF = '''
server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = env.PORT
server.systemd-socket-activation = "enable"
server.errorlog = "{tmp}/lighttpd-error.log"
index-file.names = ("index.html")
'''


def test_lighttpd(tmp):
    lighttpd = need("lighttpd", "lighttpd")
    root = os.path.join(tmp, "www")
    os.mkdir(root)
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("lighttpd\n")
    conf = os.path.join(tmp, "lighttpd.conf")
    with open(conf, "w") as f:
        f.write(CONF.format(root=root, tmp=tmp))
    reload_under_load(tmp, "lighttpd", [lighttpd, "-D", "-f", conf], args=["--ready=delay:500ms", "--stop-signal=INT"])


if __name__ == "__main__":
    run([test_lighttpd])
