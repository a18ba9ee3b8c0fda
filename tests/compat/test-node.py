#!/usr/bin/python3
"""Node.js (Debian package nodejs): server.listen({fd: 3}) takes the socket
handoff passes; READY=1 comes from systemd-notify --ready, a child of the
server, accepted with --notify-access=all. A SIGTERM handler is needed:
without one Node dies at once and cuts requests off (see node-server.js)."""

import os

from compat import need, reload_under_load
from harness import run

HERE = os.path.dirname(os.path.abspath(__file__))


def test_node(tmp):
    node = need("node", "nodejs")
    need("systemd-notify", "systemd")
    reload_under_load(tmp, "node", [node, os.path.join(HERE, "node-server.js")], args=["--notify-access=all"])


if __name__ == "__main__":
    run([test_node])
