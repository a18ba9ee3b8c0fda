#!/usr/bin/python3
"""Prepare this machine the way a systemd host is, for the real-manager
tests, then run the test given. Two things (and a check: a build under /tmp
cannot run the sandboxed units, and the test is skipped, 77, saying so):

1. The directory for the test's temp files, $TMPDIR, is created
   (tests/meson.build points it into the build directory). The private user
   manager keeps its $XDG_RUNTIME_DIR -- with its notify socket -- in a temp
   dir; in /tmp a unit with PrivateTmp=yes (the shipped ones) could not reach
   it and its READY=1 would never arrive. A real user manager's runtime dir is
   /run/user/UID, outside /tmp. /run itself is no good on a machine where
   /run is not a mount point (this VM): systemd 252 then mounts a new tmpfs on
   /run for every sandboxed service (ProtectKernelTunables=, ProtectProc=...
   imply MountAPIVFS=), hiding everything the test put there.

2. systemd's "inaccessible" nodes in /run/systemd, as PID 1 creates them at
   boot on every systemd host.

Why 2: the sandboxing in the shipped units (ProtectKernelTunables=,
ProtectKernelLogs=, InaccessiblePaths=, ...) hides files by bind-mounting
/run/systemd/inaccessible/{reg,dir,chr,...} over them. On a machine whose
PID 1 is not systemd (a container, this CI VM) nobody made those nodes, and a
root-run `systemd --user` manager (tests/systemd/usermanager.py) uses
/run/systemd too, so every hardened unit fails at start:

    Failed to mount /run/systemd/inaccessible/reg to
      /run/systemd/unit-root/proc/kallsyms: No such file or directory
    handoff@web.service: Failed at step NAMESPACE ... status=226/NAMESPACE

(seen on systemd 252.39 here). The nodes are what systemd's own
make_inaccessible_nodes() creates: mode 0000 file, directory, fifo, socket,
and char/block devices 0:0. Only as root and only what is missing; a real
systemd host already has them all, and then this does nothing.

Usage: prepare.py SCRIPT [ARG...]   (runs SCRIPT with this python)
"""

import os
import sys

from handofftest.inaccessible import BASE, ensure  # PYTHONPATH: tests/lib (tests/meson.build)


def make_tmpdir():
    """Create $TMPDIR if missing (without it Python's tempfile would fall
    back to /tmp). 0711: a manager of another uid (test-install) must reach
    its own temp dir inside (0700, its own); nobody else can list it."""
    d = os.environ.get("TMPDIR", "")
    if d:
        os.makedirs(d, mode=0o711, exist_ok=True)
        if os.stat(d).st_uid == os.geteuid():   # else not ours to change (root's, run as a user: they skip)
            os.chmod(d, 0o711)


def check_not_in_tmp():
    """The shipped units have PrivateTmp=yes: a handoff or fixture built
    under /tmp or /var/tmp is invisible to them (status=203/EXEC). Such a
    checkout cannot run these tests: say so and skip (77)."""
    for var in ("HANDOFF_BIN", "FIXTURE_SERVER", "HANDOFF_BUILD_ROOT"):
        p = os.path.realpath(os.environ.get(var, ""))
        if p and any(p == d or p.startswith(d + "/") for d in ("/tmp", "/var/tmp")):
            print("skip: %s=%s is under /tmp or /var/tmp, which the shipped units' "
                  "PrivateTmp=yes hides from them; build outside /tmp to run the "
                  "systemd suite" % (var, p), flush=True)
            sys.exit(77)


if __name__ == "__main__":
    check_not_in_tmp()
    make_tmpdir()
    made = ensure()
    if made:
        print("# created %s/{%s} (PID 1 is not systemd here)" % (BASE, ",".join(made)), flush=True)
    os.execv(sys.executable, [sys.executable] + sys.argv[1:])
