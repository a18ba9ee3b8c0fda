"""What /proc says about a process. Every helper is safe against a process
that vanishes while it is read (it answers as for a process that is gone)."""

import os
import signal

from .wait import WaitTimeout, wait_for


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name: [0] state,
    [1] ppid, [2] pgrp, [3] session, ... [11] utime, [12] stime; None when
    the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def start_time(pid):
    """When pid started (clock ticks since boot), or None when it is gone.
    With the pid it names one process: pids are reused, here within seconds
    when the machine is busy (pid_max 32768)."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def signal_process(pid, sig, is_it):
    """Sends sig to pid if is_it() says pid is still the process meant;
    returns whether it did. pids are reused (within seconds here): the
    pidfd taken before is_it() names the process that had the pid then, so
    the signal goes to the process is_it() saw, or to none if that one died
    since."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone (ESRCH), or a thread's id (EINVAL)
        return False
    try:
        if not is_it():
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


def ppid_of(pid):
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children_of(pid):
    """Direct children of pid (any state, zombies included)."""
    return [p for p in all_pids() if ppid_of(p) == pid]


def proc_descendants(pid):
    """Every descendant of pid (any state), following ppid links."""
    children = {}
    for p in all_pids():
        pp = ppid_of(p)
        if pp is not None:
            children.setdefault(pp, []).append(p)
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def session_members(sid):
    """(pid, state, ppid) of every process in session sid, zombies included."""
    out = []
    for p in all_pids():
        fields = stat_fields(p)
        if fields and int(fields[3]) == sid:
            out.append((p, fields[0], int(fields[1])))
    return out


def exe_of(pid):
    """The executable's path, or None."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def is_standby(pid):
    """An idle standby: a handoff started ahead, named "handoff-standby"
    until a reload starts it."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "handoff-standby"
    except OSError:
        return False


def is_handoff(pid):
    """The process runs a binary named handoff* (handoff, handoff-next ...)."""
    return os.path.basename(exe_of(pid) or "").startswith("handoff")


def cmdline(pid):
    """The argument vector as a list ([] when gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
    except OSError:
        return []


def proc_cmdline(pid):
    """The command line as one string, "?" when gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_links(pid):
    """What pid's fds point at ("socket:[123]", paths, ...)."""
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                out.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass
    except OSError:
        pass
    return out


def environ_of(pid, timeout=5.0):
    """pid's environment at its exec. A process caught inside execve() (its
    parent, handoff, resumes once the new image is mapped, before the
    kernel has set up its environment) shows an empty one for a moment:
    read again until it is there, the process is gone, or the deadline."""
    def read():
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
        fields = stat_fields(pid)
        return (data,) if data or fields is None or fields[0] in ("Z", "X") else None
    try:
        data, = wait_for(read, timeout, f"pid {pid}'s environment", interval=0.001)
    except WaitTimeout:
        data = b""
    return dict(e.decode(errors="replace").split("=", 1) for e in data.split(b"\0") if b"=" in e)


def proc_status(pid, keys=("VmRSS", "RssAnon", "RssFile", "VmData")):
    """The numeric /proc/PID/status lines named in keys (kB for memory).
    Raises OSError when the process is gone; a zombie has no memory lines."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in keys:
                out[k] = int(v.split()[0])
    return out
