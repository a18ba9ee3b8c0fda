#!/usr/bin/python3
"""Go (Debian packages golang-go, golang-github-coreos-go-systemd-dev): a
net/http server using go-systemd's activation.Listeners() and
daemon.SdNotify(READY=1), built here offline from Debian's Go library tree
(recipes.go). SIGTERM: http.Server.Shutdown after a 100 ms close-grace (see
goserver/main.go)."""

import recipes
from compat import reload_under_load
from harness import run


def test_go(tmp):
    reload_under_load(tmp, "go", recipes.go(tmp))


if __name__ == "__main__":
    run([test_go])
