"""The built handoff under test: started in a session of its own with its log
in a file, talking to a FakeSystemd, and the fixture server it runs.

Importing this module makes the test process a child subreaper (see below)."""

import contextlib
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time

from .procs import (all_pids, is_handoff, is_standby, pid_alive, session_members, signal_process, start_time,
                    stat_fields)
from .runner import Skip
from .wait import TestFailure, check, wait_for

HANDOFF = os.environ.get("HANDOFF_BIN", "build/src/handoff")
# The reload client alone (libc only), as the shipped units run it.
HANDOFFCTL = os.environ.get("HANDOFFCTL_BIN", os.path.join(os.path.dirname(HANDOFF), "handoffctl"))
FIXTURE = os.environ.get("FIXTURE_SERVER", "build/tests/fixtures/fixture-server")
# Run a command where close_range(2), statx(2) or kcmp(2) fails, or
# fcntl(F_SETFL) setting O_NONBLOCK (tests/fixtures/no-syscall.c).
NO_CLOSE_RANGE = os.environ.get("NO_CLOSE_RANGE", os.path.join(os.path.dirname(FIXTURE), "no-close-range"))
NO_STATX = os.environ.get("NO_STATX", os.path.join(os.path.dirname(FIXTURE), "no-statx"))
NO_KCMP = os.environ.get("NO_KCMP", os.path.join(os.path.dirname(FIXTURE), "no-kcmp"))
NO_SETFL_NONBLOCK = os.environ.get("NO_SETFL_NONBLOCK", os.path.join(os.path.dirname(FIXTURE), "no-setfl-nonblock"))
MODE = os.environ.get("HANDOFF_TEST_MODE", "supervise")  # or "handover"


def seccomp_prefix(*wrappers):
    """The command prefix that runs a command where each wrapper's system
    call is refused (NO_STATX, NO_KCMP, NO_CLOSE_RANGE); Skip where a
    wrapper is not built or no seccomp filter can be installed here (not
    x86_64 nor aarch64: the wrapper exits 77)."""
    for w in wrappers:
        if not os.path.exists(w):
            raise Skip(f"{w} is not built")
    if subprocess.run([*wrappers, "true"]).returncode != 0:
        raise Skip("cannot install a seccomp filter here (or not x86_64 nor aarch64)")
    return list(wrappers)


# In handover mode a next handoff is started as handoff's sibling
# (CLONE_PARENT), so that the service manager is its parent. The test process
# plays that part: it reaps those processes, keeping their exit statuses, and
# is a subreaper, as systemd is, for what a handoff killed hard leaves. Only processes of a handoff session under test are reaped:
# Popen reaps its own children, and taking one from it would lose the status.
_adopted_status = {}
_adopted_lock = threading.Lock()
_sessions = set()
_unreaped = set()   # left zombies (reaping_held())


def _reaper():
    me = os.getpid()
    while True:
        for pid in all_pids():
            if pid in _sessions or pid in _unreaped:
                continue
            fields = stat_fields(pid)
            if fields and fields[0] == "Z" and int(fields[1]) == me and int(fields[3]) in _sessions:
                with _adopted_lock:
                    try:
                        _, status = os.waitpid(pid, os.WNOHANG)
                        _adopted_status[pid] = os.waitstatus_to_exitcode(status)
                    except ChildProcessError:
                        pass
        time.sleep(0.02)  # a polling period, not a synchronisation


def _is_process(pid):
    """Whether pid is a process now, alive or a zombie (not a thread of
    another: /proc/TID is there too, unlisted)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.split() == ["Tgid:", str(pid)] for line in f)
    except OSError:
        return False


def adopted_status(pid):
    """The exit status of an adopted process pid once the reaper has reaped
    it, else None. pids are reused (pid_max is 32768 on many machines, and
    one test file starts thousands of processes): a status kept for a pid
    that is a process again was an earlier process's, and is dropped. Under
    the reaper's lock a process there has not been reaped since."""
    with _adopted_lock:
        if _is_process(pid):
            _adopted_status.pop(pid, None)
            return None
        return _adopted_status.get(pid)


@contextlib.contextmanager
def reaping_held(pid):
    """While in it, the adopted process pid is left a zombie when it exits,
    as by a service manager slow to reap: its pidfd says it has exited, its
    exit status is not there yet."""
    _unreaped.add(pid)
    try:
        yield
    finally:
        _unreaped.discard(pid)


ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
threading.Thread(target=_reaper, name="reaper", daemon=True).start()


def default_runtime():
    """Where a handoff of ours keeps its control socket and notify sockets
    without $RUNTIME_DIRECTORY (handoff(1))."""
    if os.geteuid() == 0:
        return "/run/handoff"
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"), "handoff")


class Handoff:
    """A handoff process under test, with its log in a file."""

    def __init__(self, tmpdir, args, command, notify=None, env=None, cwd=None, wrapper=(), pass_fds=()):
        """wrapper: a command that execs handoff (its pid is handoff's);
        pass_fds: fds handoff inherits."""
        self.tmpdir = tmpdir
        self.logpath = os.path.join(tmpdir, f"handoff-{time.monotonic_ns()}.log")
        self.notify = notify
        self.argv = [*wrapper, HANDOFF, *args, "--", *command]
        self.runtime = (env or {}).get("RUNTIME_DIRECTORY", "").split(":")[0] or None
        with open(self.logpath, "w") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.environment(notify, env), start_new_session=True, cwd=cwd,
                                         pass_fds=pass_fds)
        self.track()

    @staticmethod
    def environment(notify, env):
        """Ours, minus what systemd would have set, plus NOTIFY_SOCKET (of
        notify, a FakeSystemd) and env."""
        e = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID",
                  "SYSTEMD_EXEC_PID", "container"):
            e.pop(k, None)
        if notify:
            e["NOTIFY_SOCKET"] = notify.path
        e.update(env or {})
        return e

    def track(self):
        """Called once self.proc runs: its session is ours to reap."""
        self.pid = self.proc.pid
        self.started = start_time(self.pid)
        _sessions.add(self.pid)

    def session_gone(self):
        """Whether handoff's session, whose id is the first handoff's pid, is
        gone and that pid another process's: once that handoff is reaped and
        no process is left in its session, the pid is free, and a process
        that takes it (pid_max is 32768 here, and other test runs share the
        machine) leads a process group and a session of its own.
        While the pid is ours, or held by a member of the session as its
        id, no other process has it."""
        now, started = start_time(self.pid), getattr(self, "started", None)
        return None not in (now, started) and now != started

    def mains(self):
        """Every pid that has been main: the first, then each MAINPID=."""
        out = [self.pid]
        if self.notify:
            out += [int(m.fields["MAINPID"]) for m in self.notify.snapshot() if "MAINPID" in m.fields]
        return out

    def main_pid(self):
        return self.mains()[-1]

    def main(self):
        """(pid, start time) of the current main: the first handoff, or the
        last MAINPID= with the start time its pid had as it arrived."""
        named = [m for m in self.notify.snapshot() if "MAINPID" in m.fields] if self.notify else []
        if named:
            return int(named[-1].fields["MAINPID"]), named[-1].main_started
        return self.pid, self.started

    def log(self):
        with open(self.logpath) as f:
            return f.read()

    def wait_log(self, text, timeout=10):
        """Waits until the log contains text."""
        return wait_for(lambda: text in self.log(), timeout, f"log line {text!r}; log:\n{self.log()}")

    def wait_log_re(self, pattern, timeout=10):
        """Waits until a log line matches pattern; returns the match."""
        return wait_for(lambda: re.search(pattern, self.log(), re.M), timeout,
                        f"a log line matching {pattern!r}; log:\n{self.log()}")

    def wait_ready(self, n=1, timeout=10):
        """Waits for the n-th READY=1 from handoff itself (first start = 1,
        +1 per reload); fails at the deadline, or as soon as every process
        that was main has exited without sending it."""
        check(self.notify is not None, "wait_ready needs a FakeSystemd")
        count = self.ready_count

        def settled():
            if count() >= n:
                return True
            # Waiting on is pointless once no process that was main runs:
            # none is left to send it. What they sent before they exited
            # is read first (a MAINPID= naming another main, too).
            if any(pid_alive(p) for p in set(self.mains())):
                return False
            self.notify.sync()
            return count() >= n or not any(pid_alive(p) for p in set(self.mains()))

        wait_for(settled, timeout, f"READY=1 #{n}; log:\n{self.log()}")
        # Every main gone without it: a handoff that exited (0 too: a
        # reload taken for a stop, say) is no reload that succeeded.
        check(count() >= n, f"every main handoff ({self.mains()}) exited before READY=1 #{n} (the first with "
                            f"status {self.proc.poll()}); log:\n{self.log()}")
        return True

    def ready_count(self):
        """READY=1 datagrams from whoever was main: 1 at start, +1 per reload."""
        mains = set(self.mains())
        return sum(1 for m in self.notify.snapshot() if m.pid in mains and m.fields.get("READY") == "1")

    def last_status(self):
        """The STATUS= of the last READY=1."""
        return [m for m in self.notify.snapshot() if m.fields.get("READY") == "1"][-1].fields["STATUS"]

    def generation_pid(self, n):
        m = wait_for(lambda: re.search(rf"Started generation {n}: pid (\d+)", self.log()), 10,
                     f"generation {n} started")
        return int(m.group(1))

    def close(self):
        """Teardown after a test, passed or failed: nothing may outlive it."""
        self.kill_all()
        if self.notify:
            self.notify.close()

    def signal(self, sig):
        """Sends sig to the current main; ProcessLookupError once it has
        exited: its pid may be another process's then (another test's
        handoff, say), which is left alone."""
        pid, started = self.main()
        if not signal_process(pid, sig, lambda: start_time(pid) == started):
            raise ProcessLookupError(f"main handoff {pid} is gone")

    def exit_status(self, pid):
        if pid == self.pid:
            return self.proc.poll()
        return adopted_status(pid)

    def wait_exit(self, timeout=40):
        """Waits for the current main handoff to exit; returns its status."""
        main = self.main_pid()
        if main == self.pid:
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise TestFailure(f"handoff did not exit within {timeout}s; log:\n{self.log()}")
        status = []  # read once: the pid may be another process's by a second read
        wait_for(lambda: status.append(adopted_status(main)) or status[-1] is not None, timeout,
                 f"main handoff {main} to exit; log:\n{self.log()}")
        return status[-1]

    def stop(self, timeout=40):
        with contextlib.suppress(ProcessLookupError):  # exited already
            self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def app_pids(self):
        """Live processes of the service that are not handoff itself."""
        return [p for p in self.descendants() if not is_handoff(p)]

    def descendants(self, standby=True):
        """Every live process in handoff's session except the first handoff:
        generations, workers and next handoffs; with standby=False, not the
        standby (handover mode's next handoff, started ahead and idle)."""
        if self.session_gone():
            return []
        return [p for p, state, _ in session_members(self.pid)
                if p != self.pid and state != "Z" and (standby or not is_standby(p))]

    def standbys(self):
        """The idle standbys in handoff's session (handover mode, under a
        manager: at most one)."""
        return [p for p in self.descendants() if is_standby(p)]

    def runtime_files(self, pid):
        """The files handoff process pid keeps in the runtime directory: its
        control socket and its private notify directory. (Subclasses that
        start handoff their own way have no .runtime.)"""
        runtime = getattr(self, "runtime", None) or default_runtime()
        return os.path.join(runtime, f"control.{pid}"), os.path.join(runtime, f"notify.{pid}")

    def kill_all(self):
        """Teardown after a failed test: nothing may outlive it, and nothing
        of what it killed is left in the runtime directory (a handoff
        killed hard leaves its control socket and notify directory; left
        there, one could be taken for a later process's with that pid)."""
        # The main only while its pid is still that process: waiting for
        # another's to die would take the full 5 s below.
        main, started = self.main()
        live = {self.pid, *([main] if start_time(main) == started else []),
                *[p for p in self.descendants() if is_handoff(p)]}
        if self.session_gone():
            live.discard(self.pid)
        handoffs = {*live, *self.mains()}
        try:
            if not self.session_gone():
                os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in self.descendants():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        # Pids wrap: a later process must not be taken for one of ours.
        _sessions.discard(self.pid)
        for pid in handoffs:
            # SIGKILLed a moment ago, it may still be on its way out. (An
            # earlier main's pid may be another process's by now.)
            try:
                wait_for(lambda: not pid_alive(pid), 5 if pid in live else 0, f"handoff {pid} to die")
            except TestFailure:
                continue
            control, notify = self.runtime_files(pid)
            try:
                os.unlink(control)
            except OSError:
                pass
            shutil.rmtree(notify, ignore_errors=True)


def status_json(pid):
    """`handoff status --json` of the handoff at pid, parsed; the test fails
    unless it exits 0."""
    out = subprocess.run([HANDOFF, "status", "--pid", str(pid), "--json"], capture_output=True, text=True,
                         timeout=10)
    check(out.returncode == 0, f"handoff status --pid {pid}: {out.returncode} {out.stdout} {out.stderr}")
    return json.loads(out.stdout)


def unprivileged(tmp):
    """For a test of a limit that binds no privileged process (prlimit(1)
    lowers it): as root, handoff is to run as 65534 behind setpriv(1).
    Returns (wrapper, prlimit, runtime): the setpriv command (empty when
    not root), prlimit(1)'s path and $RUNTIME_DIRECTORY, a directory in tmp
    owned by that uid, as handoff wants its control socket's. Skips without
    prlimit(1), or as root without setpriv(1)."""
    prlimit, setpriv = shutil.which("prlimit"), shutil.which("setpriv")
    if not prlimit or (os.getuid() == 0 and not setpriv):
        raise Skip("needs prlimit(1), and as root setpriv(1) (util-linux)")
    wrapper = (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups") if os.getuid() == 0 else ()
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime, 0o700)
    if wrapper:
        os.chmod(tmp, 0o711)
        os.chown(runtime, 65534, 65534)
    return wrapper, prlimit, runtime


def fixture_cmd(args_file=None, *args):
    """The fixture server. With args_file, its arguments are read from that
    file at every start, so a test can change what the next generation does
    (as a config change before a reload would)."""
    if args_file is None:
        return [FIXTURE, *args]
    return ["/bin/sh", "-c", f'exec {shlex.quote(FIXTURE)} $(cat {shlex.quote(args_file)})']


def set_args(args_file, *args):
    tmp = args_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(" ".join(args))
    os.rename(tmp, args_file)
