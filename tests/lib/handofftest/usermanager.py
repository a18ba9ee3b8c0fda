"""Run tests against a real, private systemd *user* manager.

Usage (stdlib only, run with /usr/bin/python3):

    from handofftest.usermanager import UserManager, run_tests

    def test_something(um):            # gets a fresh UserManager
        um.install_unit("x.service", "...")
        um.systemctl("start", "x.service")
        um.wait_for(lambda: um.show("x.service", "ActiveState")["ActiveState"]
                    == "active", 5, "x.service active")

    run_tests([test_something])        # exits 0 / 1 / 77 (skip)

Environment knobs:
    HANDOFF_TEST_KEEP=1     keep the temp dir (logs, unit files, ...) after
                            the test instead of deleting it.
    HANDOFF_TEST_VERBOSE=1  print every systemctl / systemd-run command line.
    HANDOFF_TEST_SYSTEMD_LOG_LEVEL=debug   manager log level (default info).
    HANDOFF_TEST_CONSOLE=1  don't capture the manager log (see below).

XDG_RUNTIME_DIR is a temp dir of its own on tmpfs (handofftest.tmpfs), as
/run/user/UID is. UserManager(uid=N) runs the manager and every systemctl as
that user instead, as a user's own manager runs: no privileges, its cgroup
delegated, /run/user/N a tmpfs of its own, /run a mount point (skips if
/run/user/N exists already, unless a UserManager killed with SIGKILL left
it: that it removes, with the manager that may still run there).  Files in
the temp dir (um.tmpdir): config/ (XDG_CONFIG_HOME; units in
config/systemd/user), data/ state/ cache/, console.log (the manager's own
log), manager.log (its stdout/stderr: generators, early start-up errors).
um.log_tail() prints both and is shown automatically when a test fails;
um.manager_log() returns console.log.

API (see the docstrings): UserManager with .pid .proc .tmpdir .cgroup
.unit_dir .runtime_dir, env(), path(), write_file(), install_unit(),
systemctl(), systemd_run(), show(), state(), main_pid(), unit_pids(),
wait_for(), wait_state(), cgroup_pids(), leftover_pids(), log_tail(),
manager_log(); run_tests(), wait_retrying(). The helpers that need no manager (wait_for,
free_port, tcp_request, pid_alive, proc_descendants, proc_cmdline, Skip,
WaitTimeout, AbortWait) are the library's own (wait.py, net.py, procs.py,
runner.py).

QUIRKS found on the development machine (Debian 12, systemd 252.39, kernel
6.18, PID 1 is not systemd, cgroup *hybrid* layout: v1 name=systemd at
/sys/fs/cgroup/systemd + cgroup2 at /sys/fs/cgroup/unified, running as
root).  Evidence: tests/systemd/experiment-quirks.py (prints FACT lines).

 * Recipe works: `/run/systemd/system` must exist, XDG_RUNTIME_DIR a fresh
   0700 dir; `systemd --user` is "running" after ~0.1-0.3 s (failed units
   make it "degraded" -- both count as up).

 * DANGER, cgroups: started from the root cgroup (where every process on such
   a machine lives) the manager takes "/" as its own cgroup root and MIGRATES
   EVERY PROCESS OF THE ROOT CGROUP (PID 1, the sandbox agents, your shell)
   into /init.scope in all hierarchies (name=systemd, unified, pids, memory,
   cpu).  Therefore this class mkdirs a private cgroup
   `/handoff-um-<pid>-<rand>` in the name=systemd and unified hierarchies (or
   in /sys/fs/cgroup on a pure cgroup2 host) and moves the manager into it
   (preexec_fn) before exec; the manager then uses it as its root
   (`/handoff-um-X/init.scope`, `/handoff-um-X/app.slice/foo.service`) and
   touches nothing else.  If that cgroup cannot be created we raise Skip
   rather than run the manager in the root cgroup.
   With that, cgroups work normally: each unit has its own cgroup
   (ControlGroup= property), unit_pids() reads its cgroup.procs.

 * KillMode= works: control-group (default) and mixed kill forked and
   double-forked (setsid) children on stop; KillMode=process leaves them
   running (still in the unit's cgroup -- teardown kills them).
   The manager is a child subreaper: orphans are reparented to it.

 * Logging: there is no journald, and a user manager logs ONLY to
   /dev/console (it opens it itself and wants a tty), never to its stderr;
   SYSTEMD_LOG_TARGET=console does not change that, a plain file
   bind-mounted over /dev/console is refused (not a tty).  So (if `unshare`
   and `mount` exist) the manager runs in a private mount namespace
   (`unshare --mount --propagation private`, exec keeps the pid) in which a
   pty slave is bind-mounted over /dev/console; a thread copies the pty
   master to console.log.  Useful lines there, e.g. "Got notification
   message from PID X, but reception only permitted for main PID Y",
   "Watchdog timeout (limit 1s)!", "Main process exited, code=...".
   Without the wrapper the log would go to the machine's real console.

 * Service output: default StandardOutput=journal fails ("Failed to connect
   stdout to the journal socket, ignoring") and output is lost.  Use
   StandardOutput=append:FILE / StandardError=append:FILE (works, file is
   created).  `systemctl status` shows no log lines.

 * D-Bus is NOT needed for systemctl --user / plain systemd-run --user: they
   use the manager's private socket $XDG_RUNTIME_DIR/systemd/private.
   `systemd-run --user --wait` (and --pty/--pipe) need a real bus: that works
   too, because the stock dbus.socket user unit listens on
   $XDG_RUNTIME_DIR/bus and socket-activates a dbus-daemon inside the
   manager.  env() pins DBUS_SESSION_BUS_ADDRESS=unix:path=$XDG_RUNTIME_DIR/bus
   so an inherited address never points at a foreign bus.
   systemd-run with --socket-property prints "Running socket as unit:
   X.socket" / "Will run service as unit: X.service"; we parse both.

 * The stock user units from /usr/lib/systemd/user are loaded (gpg-agent*,
   dirmngr, dbus, pk-debconf-helper sockets, listening in our private
   runtime dir).  Harmless.  Our units live in the private
   $XDG_CONFIG_HOME/systemd/user; XDG_DATA_HOME/STATE/CACHE are private too,
   so the real ~/.config/systemd/user is never read or written.

 * Every service inherits the manager's start environment (show-environment).
   We start it with a minimal one (PATH, HOME, LANG, XDG_*, SYSTEMD_LOG_*);
   the manager adds DBUS_SESSION_BUS_ADDRESS and QT_ACCESSIBILITY=1
   (/etc/environment.d).

 * sd_notify: Type=notify, READY=1, STATUS= (-> StatusText), RELOADING=1,
   WATCHDOG=1, FDSTORE=1 all work with a plain AF_UNIX/SOCK_DGRAM socket;
   NOTIFY_SOCKET is a filesystem path ($XDG_RUNTIME_DIR/systemd/notify).

 * MAINPID= with NotifyAccess=main (also the Type=notify default): HONOURED.
   The main process forks a new main process and sends MAINPID=<child>; MainPID
   switches, the old main may then exit without the service leaving
   active/running (Result stays success, no restart).  From then on only the
   new main PID may notify; the old one's messages are dropped ("reception
   only permitted for main PID").  A non-main child sending MAINPID=<self>
   is ignored the same way.  The manager logs "Supervising process N which
   is not our child. We'll most likely not notice when it exits." but, being
   a subreaper, it DOES notice: SIGKILL of the new main -> failed/signal.

 * WatchdogSec= WORKS: READY=1 but never WATCHDOG=1 -> after WatchdogSec the
   manager logs "Watchdog timeout", kills with SIGABRT, Result=watchdog,
   ActiveState=failed.  A service pinging every 0.2 s with WatchdogSec=1 stays
   up.  WATCHDOG_USEC and WATCHDOG_PID (= initial main pid) are in the env;
   after a MAINPID= handoff the new main's WATCHDOG=1 pings keep it alive.

 * Reload: systemd 252 has no Type=notify-reload (253+).  `systemctl --user
   reload` with ExecReload=/bin/kill -HUP $MAINPID works, and RELOADING=1 ..
   READY=1 shows as ActiveState=reloading/SubState=reload, BUT whether
   `systemctl reload` waits for READY=1 is RACY: in ~10 of 12 runs it
   returned after READY=1, in ~2 it returned right after `kill` exited, with
   the unit still "reloading".  Tests must poll (wait_state(unit, "active"),
   StatusText, MainPID) instead of trusting `systemctl reload` to block.

 * Restart=on-failure works (NRestarts increments, new MainPID).
   FileDescriptorStoreMax= + FDSTORE=1/FDNAME= works: after a crash+restart
   the stored listening socket comes back in LISTEN_FDS/LISTEN_FDNAMES and
   keeps accepting on the same port.

 * SIGTERM to the manager runs exit.target: it stops all units and exits
   (0.02-1.5 s).  Teardown: stop tracked units (bounded), SIGTERM, SIGKILL
   after stop_timeout, then kill anything left in its cgroup (cgroup.kill on
   cgroup2, plus per-pid SIGKILL) or its /proc process tree, rmdir the
   cgroups (also in v1 controller hierarchies), close the console pty, and
   delete the temp dir.  Verified also after SIGKILL of the manager itself.

 * Two managers can run at the same time (separate cgroups / runtime dirs).
"""

import contextlib
import errno
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import tty

from . import inaccessible
from .procs import is_standby, pid_alive, proc_cmdline, proc_descendants, stat_fields
from .runner import Skip, run
from .tmpfs import tmpfs_dir
from .wait import AbortWait, TestFailure, WaitTimeout, wait_for

SYSTEMD = "/usr/lib/systemd/systemd"
SYSTEMCTL = shutil.which("systemctl") or "/usr/bin/systemctl"
SYSTEMD_RUN = shutil.which("systemd-run") or "/usr/bin/systemd-run"
CGROUP_ROOT = "/sys/fs/cgroup"

VERBOSE = os.environ.get("HANDOFF_TEST_VERBOSE") == "1"


def _cgroup_layout():
    """Return list of hierarchy mount dirs in which we create our cgroup.

    The first entry is the one systemd uses to find its own cgroup root.
    """
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        return [CGROUP_ROOT]                                   # pure cgroup2
    dirs = []
    if os.path.exists(os.path.join(CGROUP_ROOT, "systemd", "cgroup.procs")):
        dirs.append(os.path.join(CGROUP_ROOT, "systemd"))      # v1 name=systemd
    if os.path.exists(os.path.join(CGROUP_ROOT, "unified", "cgroup.procs")):
        dirs.append(os.path.join(CGROUP_ROOT, "unified"))      # hybrid cgroup2
    return dirs


def _all_hierarchies():
    """Every mounted cgroup hierarchy (systemd may mkdir in v1 controllers)."""
    out = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if parts[2] in ("cgroup", "cgroup2"):
                    out.append(parts[1])
    except OSError:
        pass
    return out


def _start_time(pid):
    """pid's start time (clock ticks after boot), None when it is gone: with
    the pid, it names one process, not one that got the same pid later."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields and fields[0] not in ("Z", "X") else None


def _is_tmpfs_mount(path):
    """Whether a tmpfs is mounted on path (in our mount namespace)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[4] == path and fields[sep + 1] == "tmpfs":
                return True
    return False


# --------------------------------------------------------------------------

class UserManager:
    """A private `systemd --user` instance; use as a context manager."""

    def __init__(self, start_timeout=20.0, stop_timeout=10.0,
                 call_timeout=30.0, name="handoff-um", uid=None):
        """uid: run the manager (and systemctl) as that user instead of root,
        as a user's own `systemctl --user` runs: no privileges, the cgroup
        delegated to it (owned by it), XDG_RUNTIME_DIR /run/user/UID as
        logind makes it (the manager derives paths from that name)."""
        self.uid = uid
        self._runtime_mounted = False
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.call_timeout = call_timeout
        self.name = name
        self.proc = None
        self.pid = None
        self.tmpdir = None
        self._runtime_dir = None
        self.cgroup = None          # e.g. "/handoff-um-123-abcd"
        self._cg_dirs = []          # hierarchy dirs we created it in
        self._units = []            # units to stop at teardown (ordered)
        self._log_fp = None
        self._pty = None
        self._pty_thread = None
        self.keep = os.environ.get("HANDOFF_TEST_KEEP") == "1"

    # ---- paths ------------------------------------------------------------
    def path(self, *parts):
        """A path inside the private temp dir."""
        return os.path.join(self.tmpdir, *parts)

    @property
    def runtime_dir(self):
        return self._runtime_dir

    @property
    def config_home(self):
        return self.path("config")

    @property
    def unit_dir(self):
        return self.path("config", "systemd", "user")

    @property
    def log_path(self):
        return self.path("manager.log")

    @property
    def console_path(self):
        return self.path("console.log")

    # ---- lifecycle ----------------------------------------------------------
    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        tail = self.log_tail() if self.tmpdir else "(empty)"
        if exc_type is not None and exc_type is not Skip and tail != "(empty)":
            sys.stderr.write("--- manager log tail (%s) ---\n%s\n"
                             % (self.log_path, tail))
        self._teardown()
        return False

    def _check_prereqs(self):
        if os.geteuid() != 0:
            raise Skip("must run as root (euid %d)" % os.geteuid())
        if self.uid is not None:
            if not shutil.which("setpriv"):
                raise Skip("setpriv not found: cannot run a manager as uid %d" % self.uid)
            if os.path.exists("/run/user/%d" % self.uid):
                self._reclaim_leftover("/run/user/%d" % self.uid)
        if not os.access(SYSTEMD, os.X_OK):
            raise Skip("%s not found" % SYSTEMD)
        for tool in (SYSTEMCTL, SYSTEMD_RUN):
            if not os.access(tool, os.X_OK):
                raise Skip("%s not found" % tool)
        if not _cgroup_layout():
            raise Skip("no usable cgroup hierarchy under %s" % CGROUP_ROOT)

    def _start(self):
        self._check_prereqs()
        try:
            os.makedirs("/run/systemd/system", exist_ok=True)
        except OSError as e:
            raise Skip("cannot create /run/systemd/system: %s" % e)
        # The sandboxed units bind-mount these over what they hide; without
        # them (PID 1 is not systemd) every such unit fails at NAMESPACE.
        inaccessible.ensure()

        self.tmpdir = tempfile.mkdtemp(prefix="handoff-um.")
        os.chmod(self.tmpdir, 0o700)
        for d in ("config", "data", "state", "cache"):
            os.mkdir(self.path(d), 0o700)
        # Before the runtime directory: its marker names the cgroup.
        self._make_cgroup()
        # XDG_RUNTIME_DIR on tmpfs, as logind's /run/user/UID is (0700).
        if self.uid is None:
            self._runtime_dir = tempfile.mkdtemp(prefix="handoff-um-runtime.", dir=tmpfs_dir())
        else:
            os.makedirs("/run/user", mode=0o755, exist_ok=True)
            os.mkdir("/run/user/%d" % self.uid, 0o700)
            self._runtime_dir = "/run/user/%d" % self.uid     # ours: removed at teardown
            # A tmpfs of its own, as logind mounts it: the sandboxing of a
            # service takes mount points along into its namespace, and on a
            # machine whose /run is no mount point a plain directory there
            # can vanish from it (see tests/meson.build).
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700,uid=%d,gid=%d,size=16m"
                                % (self.uid, self.uid), "tmpfs", self._runtime_dir],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise Skip("cannot mount a tmpfs on %s: %s" % (self._runtime_dir, r.stderr.strip()))
            self._runtime_mounted = True
            self._write_marker()
        os.makedirs(self.unit_dir)
        if self.uid is not None:
            os.mkdir(self.path("home"), 0o700)      # the user's $HOME

        if self.uid is not None:
            # What logind and user@.service do for a user: its runtime dir
            # (the tmpfs is the user's from its mount options; the marker
            # in it stays root's), its files, and its cgroup delegated (the
            # directory and the files in it, cgroup.procs and
            # cgroup.subtree_control among them, owned by the user). Files
            # written here later by root (units, scripts) are 0644,
            # readable by the user.
            for top in [self.tmpdir] + [os.path.join(d, self.cgroup.lstrip("/")) for d in self._cg_dirs]:
                for root, dirs, files in os.walk(top):
                    for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                        os.chown(n, self.uid, self.uid)

        menv = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.environ.get("HOME", "/root") if self.uid is None else self.path("home"),
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": self.runtime_dir,
            "XDG_CONFIG_HOME": self.config_home,
            "XDG_DATA_HOME": self.path("data"),
            "XDG_STATE_HOME": self.path("state"),
            "XDG_CACHE_HOME": self.path("cache"),
            # There is no journald: make the manager log to stderr, i.e.
            # to manager.log (otherwise its messages are simply lost).
            "SYSTEMD_LOG_TARGET": "console",
            "SYSTEMD_LOG_LEVEL": os.environ.get("HANDOFF_TEST_SYSTEMD_LOG_LEVEL",
                                                "info"),
            "SYSTEMD_LOG_COLOR": "0",
        }
        cg_procs = [os.path.join(d, self.cgroup.lstrip("/"), "cgroup.procs")
                    for d in self._cg_dirs]

        def preexec():
            # Runs in the child between fork and exec: join our private
            # cgroup so the manager never sees (and migrates) the root cgroup.
            for p in cg_procs:
                with open(p, "w") as f:
                    f.write(str(os.getpid()))

        argv = self.as_user([SYSTEMD, "--user"])
        unshare, mount = shutil.which("unshare"), shutil.which("mount")
        if unshare and mount and os.environ.get("HANDOFF_TEST_CONSOLE") != "1":
            # A user manager logs only to /dev/console (a tty), never to
            # stderr (see the quirks above).  Give it a private mount
            # namespace in which /dev/console is a pty whose other end we
            # copy into console.log.  exec keeps the pid.
            slave = self._start_console_pty()
            if self.uid is not None:
                os.chown(slave, self.uid, self.uid)
            # A user's manager (uid) also gets /run as a mount point, as on
            # every host that boots with systemd. Where it is none (as on
            # this kind of machine), systemd 252 mounts an empty tmpfs over
            # /run in a sandboxed service whose /proc it cannot mount itself
            # (ProtectProc= with PrivateUsers=), hiding $XDG_RUNTIME_DIR and
            # the manager's notify socket in it.
            run_mount = " && mount --rbind /run /run" if self.uid is not None else ""
            argv = [unshare, "--mount", "--propagation", "private", "--",
                    "/bin/sh", "-c",
                    'mount --bind "$0" /dev/console%s && exec "$@"' % run_mount,
                    slave] + argv
        self._log_fp = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                argv, env=menv, cwd=self.tmpdir,
                stdin=subprocess.DEVNULL, stdout=self._log_fp,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=preexec, close_fds=True)
        except (OSError, subprocess.SubprocessError) as e:
            raise Skip("cannot start %s --user: %s" % (SYSTEMD, e))
        self.pid = self.proc.pid

        deadline = time.monotonic() + self.start_timeout
        last = ""
        while True:
            if self.proc.poll() is not None:
                raise Skip("systemd --user exited with %s during startup; log:\n%s"
                           % (self.proc.returncode, self.log_tail()))
            try:
                r = subprocess.run(self.as_user([SYSTEMCTL, "--user", "is-system-running"]),
                                   env=self.env(), capture_output=True,
                                   text=True, timeout=2)
                last = (r.stdout + r.stderr).strip()
                if r.stdout.strip() in ("running", "degraded"):
                    break
            except subprocess.TimeoutExpired:
                last = "is-system-running timed out"
            if time.monotonic() >= deadline:
                raise Skip("systemd --user did not come up within %.0fs "
                           "(last: %r); log:\n%s"
                           % (self.start_timeout, last, self.log_tail()))
            time.sleep(0.05)

    def _start_console_pty(self):
        master, slave = os.openpty()
        tty.setraw(slave)                  # no \n -> \r\n, no echo
        self._pty = (master, slave)
        out = open(self.console_path, "ab", buffering=0)

        def pump():
            with out:
                while True:
                    try:
                        b = os.read(master, 65536)
                    except OSError:        # EIO: no writer left / closed
                        return
                    if not b:
                        return
                    out.write(b)
        self._pty_thread = threading.Thread(target=pump, daemon=True,
                                            name="console-pty")
        self._pty_thread.start()
        return os.ttyname(slave)

    def _stop_console_pty(self):
        if not self._pty:
            return
        master, slave = self._pty
        self._pty = None
        os.close(slave)
        # Once every writer is gone the master read() returns EIO; bound it.
        self._pty_thread.join(2)
        os.close(master)
        self._pty_thread.join(1)

    def _make_cgroup(self):
        name = "/%s-%d-%04x" % (self.name, os.getpid(), random.getrandbits(16))
        created = []
        try:
            for d in _cgroup_layout():
                os.mkdir(os.path.join(d, name.lstrip("/")))
                created.append(d)
        except OSError as e:
            for d in created:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(d, name.lstrip("/")))
            raise Skip("cannot create private cgroup %s: %s (refusing to run "
                       "the manager in the root cgroup: it would migrate "
                       "every process on the machine)" % (name, e))
        self.cgroup = name
        self._cg_dirs = created

    # ---- a leftover of a run that was killed -----------------------------------
    # A test process killed with SIGKILL tears nothing down: its tmpfs stays
    # on /run/user/UID (and its manager may live on, in its cgroup), and
    # every later UserManager(uid=UID) would skip. The marker, root's, in
    # that tmpfs, says whose it is: the test process (pid and start time,
    # as a pid can come round again) and the manager's cgroup.
    MARKER = ".handoff-usermanager"

    def _write_marker(self):
        with open(os.path.join(self._runtime_dir, self.MARKER), "x") as f:
            json.dump({"pid": os.getpid(), "start": _start_time(os.getpid()), "cgroup": self.cgroup}, f)

    def _reclaim_leftover(self, rd):
        """rd exists: when it is the tmpfs of a UserManager whose process is
        gone, kills what is left in its cgroup and removes it all; else
        skips (a user's own, or a live run's)."""
        marker = os.path.join(rd, self.MARKER)
        left = None
        try:
            # Only a file of root's is read: the user could have made a
            # fifo there, or a marker of its own. Checked by the fd that
            # is read, not by name: the directory is the user's, who can
            # swap the name for a fifo (an open that waits for good) or a
            # symlink between a check and an open.
            with open(os.open(marker, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)) as f:
                st = os.fstat(f.fileno())
                if stat.S_ISREG(st.st_mode) and st.st_uid == 0 and _is_tmpfs_mount(rd):
                    left = json.loads(f.read(4096))
                    owner, start, cgroup = int(left["pid"]), left["start"], str(left["cgroup"])
        except (OSError, ValueError, KeyError, TypeError):
            left = None
        if left is None or not re.fullmatch(r"/%s-\d+-[0-9a-f]{4}" % re.escape(self.name), cgroup):
            raise Skip("%s exists (a session of that uid?): not taking it over" % rd)
        if _start_time(owner) == start:
            raise Skip("%s is in use by the UserManager of pid %d" % (rd, owner))
        sys.stderr.write("usermanager: %s and cgroup %s are left from pid %d, which is gone: removing them\n"
                         % (rd, cgroup, owner))
        self.cgroup, self._cg_dirs = cgroup, _cgroup_layout()
        self._kill_leftovers()
        self._remove_cgroup()
        self._cg_dirs = []
        r = subprocess.run(["umount", rd], capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip("cannot unmount the leftover %s: %s" % (rd, r.stderr.strip()))
        os.rmdir(rd)

    # ---- teardown ------------------------------------------------------------
    def _teardown(self):
        # Don't let a test deadline (SIGALRM) or SIGTERM/SIGINT abort the
        # cleanup half-way; they are delivered when we unblock at the end.
        blocked = signal.pthread_sigmask(
            signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM, signal.SIGINT})
        try:
            self._teardown_steps()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _teardown_steps(self):
        errors = []
        try:
            if self.proc is not None and self.proc.poll() is None:
                self._stop_units()
        except Exception as e:  # noqa: BLE001
            errors.append("stopping units: %s" % e)
        try:
            self._stop_manager()
        except Exception as e:  # noqa: BLE001
            errors.append("stopping manager: %s" % e)
        try:
            self._kill_leftovers()
        except Exception as e:  # noqa: BLE001
            errors.append("killing leftovers: %s" % e)
        try:
            self._remove_cgroup()
        except Exception as e:  # noqa: BLE001
            errors.append("removing cgroup: %s" % e)
        try:
            self._stop_console_pty()
        except Exception as e:  # noqa: BLE001
            errors.append("closing console pty: %s" % e)
        if self._log_fp:
            self._log_fp.close()
            self._log_fp = None
        if self.tmpdir:
            if self.keep:
                sys.stderr.write("keeping %s and %s\n" % (self.tmpdir, self._runtime_dir))
            else:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
        if self._runtime_mounted:
            r = subprocess.run(["umount", "--lazy", self._runtime_dir], capture_output=True, text=True)
            if r.returncode != 0:
                sys.stderr.write("usermanager teardown: umount %s: %s\n" % (self._runtime_dir, r.stderr.strip()))
            self._runtime_mounted = False
        if self._runtime_dir and (not self.keep or self.uid is not None):
            # /run/user/UID goes even with HANDOFF_TEST_KEEP: a next run
            # would skip while it is there.
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
        for e in errors:
            sys.stderr.write("usermanager teardown: %s\n" % e)

    def _stop_units(self):
        units = list(dict.fromkeys(reversed(self._units)))
        if not units:
            return
        # Bounded: --no-block queues the jobs, then we wait for them to go.
        self.systemctl("stop", "--no-block", *units, check=False,
                       timeout=self.stop_timeout)

        def all_down():
            r = self.systemctl("is-active", *units, check=False, timeout=5)
            states = r.stdout.split()
            return all(s in ("inactive", "failed", "unknown") for s in states)
        with contextlib.suppress(WaitTimeout):
            wait_retrying(all_down, self.stop_timeout, "units to stop",
                          interval=0.1)

    def _stop_manager(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                sys.stderr.write("systemd --user pid %d ignored SIGTERM for "
                                 "%.0fs, sending SIGKILL\n"
                                 % (self.pid, self.stop_timeout))
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def cgroup_pids(self):
        """PIDs anywhere in the manager's cgroup subtree (all hierarchies)."""
        pids = set()
        if not self.cgroup:
            return pids
        for d in self._cg_dirs:
            top = os.path.join(d, self.cgroup.lstrip("/"))
            for root, _dirs, files in os.walk(top):
                if "cgroup.procs" in files:
                    with contextlib.suppress(OSError):
                        with open(os.path.join(root, "cgroup.procs")) as f:
                            pids.update(int(x) for x in f.read().split())
        return {p for p in pids if pid_alive(p)}

    def leftover_pids(self):
        """Live processes in our cgroup or below the manager, minus manager."""
        pids = self.cgroup_pids()
        # Only while the manager is not reaped: its pid is ours until then,
        # and may be another process's after.
        if self.proc is not None and self.proc.returncode is None and pid_alive(self.pid):
            pids.update(proc_descendants(self.pid))
        pids.discard(self.pid)
        pids.discard(os.getpid())
        return {p for p in pids if pid_alive(p)}

    def _kill_leftovers(self):
        deadline = time.monotonic() + self.stop_timeout
        # cgroup2 has cgroup.kill (kernel >= 5.14): kills the whole subtree.
        for d in self._cg_dirs:
            ck = os.path.join(d, (self.cgroup or "").lstrip("/"), "cgroup.kill")
            if self.cgroup and os.path.exists(ck):
                with contextlib.suppress(OSError):
                    with open(ck, "w") as f:
                        f.write("1")
        while True:
            left = self.leftover_pids()
            if not left:
                return
            for p in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p, signal.SIGKILL)
            if time.monotonic() >= deadline:
                raise RuntimeError("processes survived SIGKILL: %s" % ", ".join(
                    "%d(%s)" % (p, proc_cmdline(p)) for p in sorted(left)))
            time.sleep(0.05)

    def _remove_cgroup(self):
        if not self.cgroup:
            return
        rel = self.cgroup.lstrip("/")
        # systemd may have created the same path in v1 controller hierarchies.
        hier = list(dict.fromkeys(self._cg_dirs + _all_hierarchies()))
        deadline = time.monotonic() + 5
        failed = []
        for d in hier:
            top = os.path.join(d, rel)
            if not os.path.isdir(top):
                continue
            while True:
                try:
                    for root, dirs, _files in os.walk(top, topdown=False):
                        for sub in dirs:
                            with contextlib.suppress(FileNotFoundError):
                                os.rmdir(os.path.join(root, sub))
                    os.rmdir(top)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    # EBUSY while the last killed tasks are still exiting
                    if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                        failed.append("%s: %s" % (top, e))
                        break
                    time.sleep(0.05)
        self.cgroup = None if not failed else self.cgroup
        if failed:
            raise RuntimeError("; ".join(failed))

    # ---- client API --------------------------------------------------------
    def as_user(self, argv):
        """argv as the manager's user runs it (unchanged for root's)."""
        if self.uid is None:
            return list(argv)
        return ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.uid, "--clear-groups"] + list(argv)

    def env(self):
        """Environment for systemctl --user / systemd-run --user calls."""
        e = dict(os.environ)
        e["XDG_RUNTIME_DIR"] = self.runtime_dir
        e["XDG_CONFIG_HOME"] = self.config_home
        e["XDG_DATA_HOME"] = self.path("data")
        e["XDG_STATE_HOME"] = self.path("state")
        e["XDG_CACHE_HOME"] = self.path("cache")
        # Only used by systemd-run --wait/--pty/--pipe; the stock dbus.socket
        # unit in our manager listens here.  Never talk to a foreign bus.
        e["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=%s/bus" % self.runtime_dir
        e["SYSTEMD_PAGER"] = ""
        e["SYSTEMD_COLORS"] = "0"
        e.pop("SYSTEMD_UNIT_PATH", None)
        return e

    def _run(self, argv, check, timeout):
        if VERBOSE:
            sys.stderr.write("+ %s\n" % " ".join(argv))
        try:
            r = subprocess.run(self.as_user(argv), env=self.env(), capture_output=True,
                               text=True, stdin=subprocess.DEVNULL,
                               timeout=timeout or self.call_timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s timed out after %.0fs"
                                 % (" ".join(argv), timeout or self.call_timeout))
        if check and r.returncode != 0:
            raise TestFailure("%s failed (rc=%d): %s"
                                 % (" ".join(argv), r.returncode,
                                    (r.stderr or r.stdout).strip()))
        return r

    def systemctl(self, *args, check=True, timeout=None):
        """Run `systemctl --user ARGS`; returns CompletedProcess (text).

        Units named in start/restart/reload-or-restart/enable --now are
        remembered and stopped at teardown.
        """
        args = [str(a) for a in args]
        verbs = ("start", "restart", "try-restart", "reload-or-restart",
                 "try-reload-or-restart", "enable")
        if args and args[0] in verbs:
            self._units.extend(a for a in args[1:] if not a.startswith("-"))
        return self._run([SYSTEMCTL, "--user", "--no-pager"] + args,
                         check, timeout)

    def show(self, unit, *props):
        """`systemctl --user show -p P1,P2 UNIT` as a dict (all if no props)."""
        args = ["show", unit]
        if props:
            args[1:1] = ["-p", ",".join(props)]
        r = self.systemctl(*args)
        out = {}
        for line in r.stdout.splitlines():
            k, sep, v = line.partition("=")
            if sep:
                out[k] = v
        return out

    def state(self, unit):
        """(ActiveState, SubState, Result) of unit."""
        s = self.show(unit, "ActiveState", "SubState", "Result")
        return s.get("ActiveState"), s.get("SubState"), s.get("Result")

    def main_pid(self, unit):
        return int(self.show(unit, "MainPID")["MainPID"] or 0)

    def unit_pids(self, unit, standby=True):
        """Live PIDs in the unit's cgroup (reads cgroup.procs directly);
        with standby=False, not handover mode's standby (the next handoff
        started ahead and idle)."""
        cg = self.show(unit, "ControlGroup").get("ControlGroup", "")
        if not cg:
            return set()
        pids = set()
        d = os.path.join(self._cg_dirs[0], cg.lstrip("/"))
        for root, _dirs, files in os.walk(d):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    with open(os.path.join(root, "cgroup.procs")) as f:
                        pids.update(int(x) for x in f.read().split())
        return {p for p in pids if pid_alive(p) and (standby or not is_standby(p))}

    def install_unit(self, name, text, reload=True):
        """Write a unit file into the private unit dir and daemon-reload.

        The unit is stopped at teardown.  reload=False skips daemon-reload
        (call um.systemctl("daemon-reload") after the last of several).
        """
        if not text.endswith("\n"):
            text += "\n"
        p = os.path.join(self.unit_dir, name)
        with open(p, "w") as f:
            f.write(text)
        self._units.append(name)
        if reload:
            self.systemctl("daemon-reload")
        return p

    def write_file(self, relpath, text, mode=0o644):
        """Write a helper file (script, config) into the temp dir."""
        p = self.path(relpath)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def systemd_run(self, *args, check=True, timeout=None):
        """Run `systemd-run --user ARGS`; returns CompletedProcess.

        The units it created (parsed from "... as unit: X", also in r.units;
        r.unit is the last one, i.e. the service) are stopped at teardown.
        """
        args = [str(a) for a in args]
        r = self._run([SYSTEMD_RUN, "--user"] + args, check, timeout)
        # "Running as unit: X", "Running socket as unit: X.socket",
        # "Will run service as unit: X.service", "Running timer as unit: ..."
        r.units = re.findall(r"as unit: ([^\s;]+?)\.?(?:;|$)",
                             r.stderr + r.stdout, re.M)
        r.unit = r.units[-1] if r.units else None
        self._units.extend(r.units)
        for a in args:
            if a.startswith("--unit="):
                u = a[len("--unit="):]
                if "." in u:
                    self._units.append(u)
                else:
                    self._units.extend([u + ".service", u + ".socket"])
        return r

    def wait_for(self, predicate, timeout, what, interval=0.05):
        """Poll predicate until truthy; raise WaitTimeout naming WHAT.

        As wait_retrying(): an exception from predicate means "not yet".
        Fails early with the manager log if the manager itself died.
        """
        def pred():
            if self.proc.poll() is not None:
                raise _ManagerDied("systemd --user died (rc=%s)"
                                   % self.proc.returncode)
            return predicate()
        try:
            return wait_retrying(pred, timeout, what, interval)
        except _ManagerDied as e:
            raise WaitTimeout("waiting for %s: %s; log:\n%s"
                              % (what, e, self.log_tail()))
        except WaitTimeout as e:
            if self.proc.poll() is not None:
                raise WaitTimeout("%s; systemd --user is dead: %s"
                                  % (e, self.log_tail()))
            raise

    def wait_state(self, unit, active_state, timeout=10, sub_state=None):
        """Wait until unit's ActiveState (and optionally SubState) match."""
        def pred():
            a, s, _ = self.state(unit)
            return a == active_state and (sub_state is None or s == sub_state)
        return self.wait_for(pred, timeout, "%s to be %s%s" % (
            unit, active_state, "/" + sub_state if sub_state else ""))

    def log_tail(self, n=40):
        """Last n lines of the manager's own log (console.log) and of its
        stdout/stderr (manager.log: generators, early errors)."""
        parts = []
        for p in (self.console_path, self.log_path):
            try:
                with open(p, errors="replace") as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            if lines:
                parts.append("[%s]\n%s" % (os.path.basename(p),
                                           "\n".join(lines[-n:])))
        return "\n".join(parts) or "(empty)"

    def manager_log(self):
        """Full text of the manager's own log (console.log)."""
        try:
            with open(self.console_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class _ManagerDied(AbortWait):
    pass


def wait_retrying(predicate, timeout, what, interval=0.05):
    """wait.wait_for() as the systemd tests have always waited: any
    exception from predicate (a port not open yet, a unit not loaded yet)
    means "not yet", and the last one is named on timeout."""
    return wait_for(predicate, timeout, what, interval, retry=Exception)


def run_tests(fn_list, per_test_timeout=120):
    """runner.run() for tests against a user manager: a function with one
    parameter gets a fresh, started UserManager (torn down after it, even on
    failure); one without parameters manages its own. A manager that cannot
    start here skips every test that needs one (exit 77 if none ran). Each
    test has a deadline of per_test_timeout seconds."""
    run(fn_list, fixture=UserManager, per_test_timeout=per_test_timeout)
