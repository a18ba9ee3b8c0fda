#!/usr/bin/python3
"""Node.js (Debian package nodejs): server.listen({fd: 3}) takes the socket
handoff passes; READY=1 comes from systemd-notify --ready, a child of the
server, accepted with --notify-access=all. A SIGTERM handler is needed:
without one Node dies at once and cuts requests off (see node-server.js)."""

import recipes
from compat import reload_under_load
from harness import run


def test_node(tmp):
    reload_under_load(tmp, "node", recipes.node(tmp), args=recipes.OPTIONS["node"])


if __name__ == "__main__":
    run([test_node])
