#!/usr/bin/python3
"""Go (Debian packages golang-go, golang-github-coreos-go-systemd-dev): a
net/http server using go-systemd's activation.Listeners() and
daemon.SdNotify(READY=1), built here offline from Debian's Go library tree
(GO111MODULE=off, GOPATH=/usr/share/gocode). SIGTERM: http.Server.Shutdown
after a 100 ms close-grace (see goserver/main.go)."""

import os
import subprocess

from compat import need, reload_under_load
from harness import Skip, check, run

HERE = os.path.dirname(os.path.abspath(__file__))
GOSYSTEMD = "/usr/share/gocode/src/github.com/coreos/go-systemd/activation"


def build(tmp):
    go = need("go", "golang-go")
    if not os.path.isdir(GOSYSTEMD):
        raise Skip(f"{GOSYSTEMD} is missing (Debian package golang-github-coreos-go-systemd-dev)")
    out = os.path.join(tmp, "goserver")
    # A cache that outlives the test, so that only the first run compiles.
    cache = os.environ.get("GOCACHE") or os.path.join(os.environ.get("MESON_BUILD_ROOT", tmp), "go-cache")
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOCACHE=cache, GOFLAGS="",
               CGO_ENABLED="0")
    r = subprocess.run([go, "build", "-o", out, os.path.join(HERE, "goserver", "main.go")], env=env,
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"go build failed: {r.stdout} {r.stderr}")
    return out


def test_go(tmp):
    reload_under_load(tmp, "go", [build(tmp)])


if __name__ == "__main__":
    run([test_go])
