"""Helpers for the hardening tests (bad input, faults, security), on top of
the test library (tests/lib/handofftest):

- Launched: handoff started the way systemd starts it, with sockets (or
  anything else) at fd 3, 4, ... and LISTEN_PID set to handoff's own pid;
  optionally as another user or with another umask.
- notify_socket_of(pid) and send_notify(): talk to a generation's private
  NOTIFY_SOCKET as an outsider (the test process, or another uid).
- notifying_app(): a generation whose main process first sends datagrams of
  the test's choosing and then execs the fixture server (same pid), so that
  they come from the generation's main process itself.
- HoldingSystemd (from handofftest.notify, where test-handover.py uses it
  too): a fake systemd that can hold BARRIER=1 unanswered, which parks a
  handover-mode reload between "next handoff ready, MAINPID= sent" and the
  commit (TAKEOVER): a stage that is otherwise a few microseconds long.

Every wait is bounded; nothing sleeps to synchronise."""

import array
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time

from handofftest.handoff import FIXTURE, HANDOFF, Handoff, set_args
from handofftest.notify import HoldingSystemd  # noqa: F401 (for the tests; it lives in the library)
from handofftest.procs import environ_of, exe_of, fd_links, pid_alive, proc_status  # noqa: F401 (fd_links: for the tests)
from handofftest.runner import Skip
from handofftest.wait import TestFailure, check, wait_for

PYTHON = sys.executable or "/usr/bin/python3"
NOBODY = 65534

# Runs as the future handoff process: moves the fds named on the command line
# to 3, 4, ..., sets LISTEN_PID to its own pid when asked (LISTEN_PID=self),
# and execs handoff, which keeps the pid. (subprocess cannot do this: the
# child's pid is unknown when its environment is built.)
_LAUNCHER = r'''
import fcntl, os, sys
n = int(sys.argv[1])
src = [int(x) for x in sys.argv[2:2 + n]]
argv = sys.argv[2 + n:]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 200) for fd in src]
for fd in src:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i, inheritable=True)
    os.close(fd)
if os.environ.get("LISTEN_PID") == "self":
    os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(argv[0], argv)
'''


class Launched(Handoff):
    """A handoff started with fds at 3.. (LISTEN_FDS is the caller's to set),
    optionally behind a command prefix (setpriv), with a umask, or from
    another path (exe: where a handover-mode next handoff is started from)."""

    def __init__(self, tmpdir, args, command, fds=(), env=None, notify=None, prefix=(), umask=-1, exe=HANDOFF):
        self.tmpdir = tmpdir
        self.logpath = os.path.join(tmpdir, f"handoff-{time.monotonic_ns()}.log")
        self.notify = notify
        self.argv = [*prefix, PYTHON, "-c", _LAUNCHER, str(len(fds)), *map(str, fds), exe, *args, "--", *command]
        with open(self.logpath, "w") as log:
            os.chmod(self.logpath, 0o644)
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.environment(notify, env), pass_fds=fds,
                                         start_new_session=True, umask=umask)
        self.track()
        _tracked.append(self)

    def wait_started(self, what=""):
        """Ready ("is ready" logged) within 10 s and running: a start that
        exits instead fails at once, with its status and log."""
        wait_for(lambda: "is ready" in self.log() or self.proc.poll() is not None, 10, "ready or exit")
        check("is ready" in self.log() and self.proc.poll() is None,
              f"{what}exit {self.proc.poll()}; log:\n{self.log()}")


def run_launched(tmp, args, command, fds=(), env=None, timeout=10):
    """A handoff that is expected to exit at once: (exit status, log)."""
    h = Launched(tmp, args, command, fds=fds, env=env)
    try:
        code = h.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TestFailure(f"handoff did not exit within {timeout}s; log:\n{h.log()}")
    finally:
        h.kill_all()
    return code, h.log()


def listening_socket():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


# ---- a generation's private notify socket ----------------------------------

def notify_socket_of(pid):
    """The NOTIFY_SOCKET handoff gave the generation whose main pid is pid,
    as an address for socket.sendto(): a path (--notify-socket=path, the
    default where a runtime directory exists) in a private 0700 directory,
    or an abstract name (a leading NUL)."""
    ns = environ_of(pid)["NOTIFY_SOCKET"]
    if ns.startswith("/"):
        d = os.stat(os.path.dirname(ns))
        check(re.fullmatch(r".*/notify\.\d+/\d+", ns) and stat.S_IMODE(d.st_mode) == 0o700,
              f"a path socket in a private directory: {ns} (directory mode {stat.S_IMODE(d.st_mode):03o})")
        return ns
    check(ns.startswith("@handoff/"), f"a private abstract socket: {ns}")
    return "\0" + ns[1:]


def send_notify(address, data, fds=()):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        if fds:
            s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))], 0, address)
        else:
            s.sendto(data, address)


def send_notify_as(uid, address, data):
    """Sends one datagram from a process running as uid (and gid), with no
    supplementary groups, through setpriv(1). Needs root."""
    if os.getuid() != 0:
        raise Skip("sending as another uid needs root")
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise Skip("setpriv(1) is not installed (util-linux)")
    code = ("import socket, sys, os\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            "s.sendto(bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[1]).decode())\n"
            "print(os.getuid(), os.getpid())\n")
    p = subprocess.run([setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", PYTHON, "-c", code,
                        address.encode().hex(), data.hex()], capture_output=True, text=True, timeout=10)
    check(p.returncode == 0, f"sender as uid {uid} failed: {p.stderr}")
    sent_uid, sent_pid = map(int, p.stdout.split())
    check(sent_uid == uid, f"the sender ran as uid {sent_uid}")
    return sent_pid


# The main process of a generation sends the datagrams listed in
# DGRAMS.<generation> to its NOTIFY_SOCKET, then execs the fixture server with
# the arguments in ARGS_FILE: the datagrams come from the generation's main
# process, as a server's own would. One datagram per line: its bytes in hex,
# optionally ",N,PATH" to attach N fds open on PATH (SCM_RIGHTS).
_NOTIFYING_APP = r'''
import array, os, socket, sys
dgrams, args_file, fixture = sys.argv[1:4]
path = dgrams + "." + os.environ["HANDOFF_GENERATION"]
if os.path.exists(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    for line in open(path).read().split("\n"):
        if not line:
            continue
        data, _, rest = line.partition(",")
        if rest:
            n, fdpath = rest.split(",", 1)
            fds = [os.open(fdpath, os.O_RDONLY) for _ in range(int(n))]
            s.sendmsg([bytes.fromhex(data)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))], 0, addr)
            for fd in fds:
                os.close(fd)
        else:
            s.sendto(bytes.fromhex(data), addr)
    s.close()
args = open(args_file).read().split()
os.execv(fixture, [fixture, *args])
'''


def notifying_app(tmp):
    """(command, args_file, set_datagrams) for generations whose main
    process sends datagrams before it becomes the fixture (whose arguments
    are in args_file, see set_args). set_datagrams(generation,
    [bytes or (bytes, n_fds, path), ...])."""
    base = os.path.join(tmp, "dgrams")
    args_file = os.path.join(tmp, "fixture.args")
    if not os.path.exists(args_file):
        set_args(args_file)

    def set_datagrams(generation, dgrams):
        with open(f"{base}.{generation}", "w") as f:
            for d in dgrams:
                if isinstance(d, tuple):
                    f.write(f"{d[0].hex()},{d[1]},{d[2]}\n")
                else:
                    f.write(d.hex() + "\n")

    return [PYTHON, "-c", _NOTIFYING_APP, base, args_file, FIXTURE], args_file, set_datagrams


# ---- process observations ----------------------------------------------------

def rss_kib(pid):
    return proc_status(pid, ("VmRSS",)).get("VmRSS", 0)


def under_asan(pid):
    """Whether pid runs AddressSanitizer's runtime (the CI's sanitizer
    job): its quarantine keeps freed memory for a while, so RSS grows
    with the allocations an attack causes, not with what is kept; there
    LeakSanitizer, not RSS, tells what is kept."""
    with open(f"/proc/{pid}/maps") as f:
        if "libasan" in f.read():
            return True
    with open(f"/proc/{pid}/exe", "rb") as f:  # linked in statically (clang)
        return b"__asan_init" in f.read()


def fixture_processes():
    """Every live fixture server on the machine, wherever it is (a server
    that daemonized has left handoff's session)."""
    want = os.path.realpath(FIXTURE)
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and exe_of(int(d)) == want
            and pid_alive(int(d))]


def reap_if_child(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def listener_of(pid):
    """The first listening socket a generation inherited (its fd 3)."""
    return os.readlink(f"/proc/{pid}/fd/3")


# pid_alive() also answers for a process that vanishes mid-read (ESRCH).
alive = pid_alive


# ---- logs of failed tests ------------------------------------------------------

# Every handoff a test starts (harness.Handoff or Launched) is remembered,
# so that a failing test shows their logs.
_tracked = []
_handoff_init = Handoff.__init__


def _tracking_init(self, *args, **kwargs):
    _handoff_init(self, *args, **kwargs)
    _tracked.append(self)


Handoff.__init__ = _tracking_init


def showing_logs(fn):
    """Wraps a test function: when it fails, the logs of the handoffs it
    tracked are printed after the traceback (tail only)."""
    import functools

    @functools.wraps(fn)
    def wrapper(tmp):
        del _tracked[:]
        try:
            return fn(tmp)
        except Skip:
            raise
        except BaseException:
            for h in _tracked:
                try:
                    lines = [l for l in h.log().splitlines() if " conn" not in l]
                    print(f"---- log of handoff {h.pid} (last 60 lines) ----\n" + "\n".join(lines[-60:]), flush=True)
                except OSError:
                    pass
            raise
    return wrapper


def ignores(pid, sig):
    """True once pid has set sig to SIG_IGN (SigIgn in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    except OSError:
        pass
    return False
