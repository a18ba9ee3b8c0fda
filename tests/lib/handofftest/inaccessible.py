"""systemd's "inaccessible" nodes in /run/systemd, as PID 1 creates them at
boot on every systemd host (see tests/systemd/prepare.py for why a
root-run user manager needs them on a machine whose PID 1 is not systemd).
UserManager creates them before it starts; prepare.py before every test of
the systemd suite."""

import os
import stat

BASE = "/run/systemd/inaccessible"
NODES = (
    ("reg", stat.S_IFREG, None),
    ("dir", stat.S_IFDIR, None),
    ("fifo", stat.S_IFIFO, None),
    ("sock", stat.S_IFSOCK, None),
    ("chr", stat.S_IFCHR, (0, 0)),
    ("blk", stat.S_IFBLK, (0, 0)),
)


def ensure():
    """Create the missing nodes; returns the names created ([] on a systemd
    host or when not root: the tests then skip or fail with systemd's own
    message)."""
    if os.geteuid() != 0 or not os.path.isdir("/run"):
        return []   # only root may, and only root-run tests need them
    made = []
    os.makedirs(BASE, mode=0o755, exist_ok=True)
    old = os.umask(0o777)   # every node mode 0000, as systemd makes them
    try:
        for name, kind, dev in NODES:
            p = os.path.join(BASE, name)
            if os.path.lexists(p):
                continue
            try:
                if kind == stat.S_IFDIR:
                    os.mkdir(p, 0)
                else:
                    os.mknod(p, kind, os.makedev(*dev) if dev else 0)
                made.append(name)
            except OSError:
                # chr/blk 0:0 may be refused (a container without mknod);
                # systemd falls back the same way.
                pass
    finally:
        os.umask(old)
    return made
