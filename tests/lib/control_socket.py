"""Where a handoff's control socket is, found the way `handoff reload`
finds it: among the process's own fds (/proc/PID/fd), named in its network
namespace's /proc/PID/net/unix, reached through /proc/PID/root."""

import os
import socket


def control_socket_path(pid):
    """The path (as seen from this mount namespace) of pid's listening
    control socket, or None when it has none."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    # The kernel makes the file a page per read, each resuming at an index
    # into its socket table: a socket closed meanwhile (by a test running
    # beside this one) can make a pass skip the line. As the client does
    # (src/client.c), a pass that misses is made again, four in all.
    for _ in range(4 if inodes else 0):
        with open(f"/proc/{pid}/net/unix") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) < 8:
                    continue
                flags, typ, inode, path = int(fields[3], 16), int(fields[4], 16), int(fields[6]), fields[7]
                if flags & 0x10000 and typ == socket.SOCK_SEQPACKET and inode in inodes and \
                        os.path.basename(path).startswith("control."):
                    return f"/proc/{pid}/root{path}"
    return None


def connect_control(pid, timeout=10):
    path = control_socket_path(pid)
    if path is None:
        raise FileNotFoundError(f"pid {pid} has no control socket")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError:
        s.close()
        raise
    return s
