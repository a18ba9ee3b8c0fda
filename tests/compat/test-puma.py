#!/usr/bin/python3
"""puma (Debian packages puma, ruby-sd-notify): a Ruby/Rack server whose
sd_notify library speaks only to path sockets. Puma 5.6 sends READY=1
through the sd_notify gem 0.1.1, which connects with
Addrinfo.unix(ENV["NOTIFY_SOCKET"]): "@name" is taken as a file name, so
with an abstract NOTIFY_SOCKET puma raises Errno::ENOENT at boot and exits.
With handoff's default (a path socket in a private runtime directory) it
becomes ready. It takes the socket with --bind-to-activated-sockets only;
SIGTERM is its graceful stop (it finishes requests, then re-raises SIGTERM,
which handoff counts as a clean exit)."""

import os
import re
import subprocess

import recipes
from compat import reload_under_load
from harness import check, free_port, run


def test_puma_default_notify_socket(tmp):
    reload_under_load(tmp, "puma", recipes.puma(tmp))


def test_puma_cannot_reach_an_abstract_socket(tmp):
    """Why the default is a path: the same puma, given an abstract socket,
    never becomes ready (its sd_notify raises ENOENT). If this fails, the
    library learnt abstract sockets: update the recipe."""
    port = free_port()
    r = subprocess.run([os.environ.get("HANDOFF_BIN", "build/src/handoff"), "-l", f"127.0.0.1:{port}",
                        "--mode=supervise", "--notify-socket=abstract", "--start-timeout=30s", "--",
                        *recipes.puma(tmp)], capture_output=True, text=True, timeout=60)
    check(r.returncode != 0, f"puma with an abstract NOTIFY_SOCKET: exit {r.returncode}\n{r.stderr}")
    check("No such file or directory - connect(2) for UNIX @handoff/" in r.stderr, r.stderr)
    check(re.search(r"Generation 1 \(.*pid \d+\) failed to start", r.stderr), r.stderr)


if __name__ == "__main__":
    run([test_puma_default_notify_socket, test_puma_cannot_reach_an_abstract_socket])
