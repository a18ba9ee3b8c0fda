"""Runtime directories on tmpfs, as on a host running systemd.

systemd mounts /run as tmpfs, and logind /run/user/UID: that is where a
service's $RUNTIME_DIRECTORY and a user manager's $XDG_RUNTIME_DIR live, with
the sockets in them. Some machines these tests run on have /run on a disk
filesystem (a VM's ext4 root), where each socket bind() and unlink() is a
journaled inode create and delete; runtime directories made here go on a
tmpfs where there is one.
"""

import os


def fs_type(path):
    """The type of the filesystem path is on (the longest mount point above it)."""
    path, best, kind = os.path.realpath(path), "", "?"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a = line.split()
            mnt, fstype = a[4], a[a.index("-") + 1]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, fstype
    return kind


def tmpfs_dir():
    """A directory on tmpfs to make runtime directories in: /run where it is
    tmpfs, else /dev/shm where that is; None (the default temp dir) if
    neither is."""
    for d in ("/run", "/dev/shm"):
        if os.path.isdir(d) and os.access(d, os.W_OK) and fs_type(d) == "tmpfs":
            return d
    return None
