"""The contenders: one way each to run the fixture server and reload it.

Every contender runs the same command (`server_cmd`): bench/server-shim,
which reports the generation's start and execs the fixture server with
--init-delay. Each has start(port) (returns once a request was answered),
trigger() (asks for one reload without waiting for it), supervisor_pids()
(the process whose memory is reported), stop() and finish() (problems
found, e.g. a failed `systemctl` call)."""

import contextlib
import os
import re
import signal
import subprocess

from handofftest.units import render as render_unit

from . import procs as P

SYSTEMCTL = "/usr/bin/systemctl"
START_SERVER = "/usr/bin/start_server"
SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"

DEMO_SOCKET = "handoff-demo.socket"
DEMO = "handoff-demo.service"
STATUS_RE = re.compile(r"Serving generation (\d+) \(pid (\d+)\); (\d+) reloads, (\d+) failed")


class Context:
    """Paths and shared state of one benchmark invocation."""

    def __init__(self, root, tmpdir, handoff, fixture, loadgen, shim, init_delay_ms,
                 processes, generations, user_manager=None):
        self.root, self.tmpdir = root, tmpdir
        self.handoff, self.fixture, self.loadgen, self.shim = handoff, fixture, loadgen, shim
        self.init_delay_ms = init_delay_ms
        self.procs, self.gens, self.um = processes, generations, user_manager

    def our_roots(self):
        """Processes whose descendants are the benchmark's."""
        return [os.getpid()] + ([self.um.pid] if self.um else [])

    def server_cmd(self, *shim_opts, init_delay_ms=None, fixture_opts=()):
        delay = self.init_delay_ms if init_delay_ms is None else init_delay_ms
        return [self.shim, "--events", self.gens.path, *shim_opts, "--",
                self.fixture, "--init-delay", str(delay), *fixture_opts]

    def logfile(self, name):
        return open(os.path.join(self.tmpdir, name), "ab")


def is_handoff_daemon(argv):
    """handoff [OPTIONS] -- COMMAND: not `handoff reload`, not a systemctl."""
    return bool(argv) and os.path.basename(argv[0]) == "handoff" and "--" in argv \
        and argv[1:2] not in (["reload"], ["status"])


def clean_env(**extra):
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC",
              "WATCHDOG_PID", "HANDOFF_GENERATION", "SERVER_STARTER_PORT"):
        env.pop(k, None)
    env.update(extra)
    return env


class Contender:
    key = label = ""
    handoff = False        # one of ours: the targets apply
    reloads = True         # False: the no-reload baseline
    supervisor = None      # name of the supervising process, for the memory columns
    needs_systemd = False

    def __init__(self, ctx):
        self.ctx = ctx
        self.problems = []

    def start(self, port):
        raise NotImplementedError

    def trigger(self):
        raise NotImplementedError

    def supervisor_pids(self):
        return []

    @staticmethod
    def is_supervisor(argv):
        """argv is the supervising process itself (see MemorySampler)."""
        return False

    def stop(self):
        raise NotImplementedError

    def finish(self):
        return self.problems


class Supervise(Contender):
    key, label, handoff, supervisor = "supervise", "handoff, supervise mode (`--listen`)", True, "handoff"

    def start(self, port, extra_env=None, init_delay_ms=None, fixture_opts=()):
        self.log = self.ctx.logfile("handoff-supervise.log")
        argv = [self.ctx.handoff, "--mode=supervise", "--listen=127.0.0.1:%d" % port, "--",
                *self.ctx.server_cmd(init_delay_ms=init_delay_ms, fixture_opts=fixture_opts)]
        self.proc = self.ctx.procs.spawn(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                         env=clean_env(**(extra_env or {})))
        P.wait_serving(port)

    def trigger(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def supervisor_pids(self):
        return [self.proc.pid]

    is_supervisor = staticmethod(is_handoff_daemon)

    def stop(self):
        rc = self.ctx.procs.stop(self.proc, timeout=40)
        self.log.close()
        if rc != 0:
            self.problems.append("handoff exited with status %s" % rc)


class ServerStarter(Contender):
    """Server::Starter's start_server as its documentation describes a
    graceful restart: SIGHUP to the superdaemon (what `start_server
    --restart` sends), which starts a new worker, waits --interval seconds
    (default 1; must exceed the server's start-up, 200 ms here) and then sends
    --signal-on-hup (default TERM) to the old workers. --pid-file and
    --status-file as `start_server --restart` needs them."""

    key, label, supervisor = "start_server", "Server::Starter `start_server`", "start_server"

    def start(self, port):
        self.log = self.ctx.logfile("start_server.log")
        d = self.ctx.tmpdir
        argv = [START_SERVER, "--port=127.0.0.1:%d" % port, "--interval=1",
                "--signal-on-hup=TERM", "--signal-on-term=TERM",
                "--pid-file=%s/start_server.pid" % d, "--status-file=%s/start_server.status" % d,
                "--", *self.ctx.server_cmd("--from-server-starter")]
        self.proc = self.ctx.procs.spawn(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                         env=clean_env())
        P.wait_serving(port)

    def trigger(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def supervisor_pids(self):
        return [self.proc.pid]

    @staticmethod
    def is_supervisor(argv):
        return any(os.path.basename(a) == "start_server" for a in argv[:2]) and "--restart" not in argv

    def stop(self):
        rc = self.ctx.procs.stop(self.proc, timeout=40)
        self.log.close()
        if rc not in (0, None):
            self.problems.append("start_server exited with status %s" % rc)


class Direct(Contender):
    """The fixture alone on a socket from systemd-socket-activate (which
    execs it: same pid, LISTEN_FDS=1). No reloads: the baseline."""

    key, label, reloads = "direct", "fixture alone (no reloads)", False

    def start(self, port):
        self.log = self.ctx.logfile("direct.log")
        argv = [SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % port, *self.ctx.server_cmd()]
        self.proc = self.ctx.procs.spawn(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                         env=clean_env())
        P.wait_serving(port)

    def trigger(self):
        raise RuntimeError("the baseline is never reloaded")

    def stop(self):
        rc = self.ctx.procs.stop(self.proc, timeout=40)
        self.log.close()
        if rc != 0:
            self.problems.append("fixture exited with status %s" % rc)


class SuperviseCloseAtStop(Supervise):
    """Supervise mode with a server that closes its idle keep-alive
    connections at once on SIGTERM (--grace-ms 0)."""
    key, label = "supervise_close", "handoff, supervise mode; server closes idle connections at SIGTERM"

    def start(self, port):
        super().start(port, fixture_opts=("--grace-ms", "0"))


class SelfReexec(Contender):
    """The same server handing its listener over in-process, with no
    supervisor (the fixture's --self-reexec): on SIGHUP it forks and execs
    a new copy of itself (through the shim) with the listener, waits for
    the copy's "ready" on a pipe, then stops as on SIGTERM, closing its
    idle connections at once (--grace-ms 0). What tableflip or goagain do
    inside a Go server. Started by systemd-socket-activate, as the
    baseline; the newest copy gets the SIGHUP."""

    key, label = "self_reexec", "in-process handover (the server re-executes itself); closes idle connections at stop"

    def start(self, port):
        self.log = self.ctx.logfile("self-reexec.log")
        argv = [SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % port,
                *self.ctx.server_cmd(fixture_opts=("--grace-ms", "0", "--self-reexec"))]
        self.proc = self.ctx.procs.spawn(argv, stdout=self.log, stderr=subprocess.STDOUT, env=clean_env())
        P.wait_serving(port)

    def trigger(self):
        alive = self.ctx.gens.alive(self.since_us)
        if alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(max(alive, key=lambda g: g.exec_us).pid, signal.SIGHUP)

    def stop(self):
        # Each copy is the child of the one before, which has exited: only
        # the first is ours to reap; the others are signalled by pid (they
        # are alive: their pidfds have not fired).
        for g in self.ctx.gens.alive(self.since_us):
            with contextlib.suppress(ProcessLookupError):
                os.kill(g.pid, signal.SIGTERM)
        self.ctx.gens.wait_all_gone(self.since_us, keep=0, timeout=15)
        left = self.ctx.gens.alive(self.since_us)
        if left:
            self.problems.append("copies still alive after SIGTERM: %s" % [g.pid for g in left])
        self.ctx.procs.stop(self.proc, timeout=5)
        self.log.close()


# ---- under a real systemd --user manager ------------------------------------

def set_listen(text, address):
    text, n = re.subn(r"(?m)^ListenStream=.*$", "ListenStream=" + address, text)
    if n != 1:
        raise RuntimeError("expected one ListenStream= line, found %d" % n)
    return text


class SystemdDemo(Contender):
    """handoff-demo.socket + handoff-demo.service from units/, with build-tree
    paths; @DEMO_SERVER@ becomes the common server command. A drop-in only
    adds log files (no journald here) and whatever the subclass needs."""

    needs_systemd = True
    verb = None
    dropin = ""
    init_delay_ms = None    # the server's; None: the benchmark's --init-delay

    def start(self, port):
        um = self.ctx.um
        self.logpath = os.path.join(self.ctx.tmpdir, "%s.log" % self.key)
        server = " ".join(self.ctx.server_cmd(init_delay_ms=self.init_delay_ms))
        subs = {"HANDOFF": self.ctx.handoff, "DEMO_SERVER": server}
        self.unit_text = render_unit(DEMO, subs)
        m = re.search(r"(?m)^ExecReload=.*$", self.unit_text)
        self.exec_reload = re.sub(r"=\S*/(handoff(ctl)?) ", r"=\1 ", m.group(0)) if m else None
        um.install_unit(DEMO_SOCKET, set_listen(render_unit(DEMO_SOCKET, {}),
                                                "127.0.0.1:%d" % port), reload=False)
        um.install_unit(DEMO, self.unit_text, reload=False)
        d = os.path.join(um.unit_dir, DEMO + ".d")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "50-bench.conf"), "w") as f:
            f.write("[Service]\nStandardOutput=append:%s\nStandardError=append:%s\n%s"
                    % (self.logpath, self.logpath, self.dropin_text(server)))
        um.systemctl("daemon-reload")
        um.systemctl("start", DEMO_SOCKET)
        um.wait_state(DEMO_SOCKET, "active", sub_state="listening")
        P.wait_serving(port)          # the first connection starts the service
        um.wait_state(DEMO, "active", timeout=15, sub_state="running")
        self.calls = []
        self.errlog = self.ctx.logfile("%s-systemctl.log" % self.key)

    def dropin_text(self, server):
        return ""

    def trigger(self):
        um = self.ctx.um
        p = self.ctx.procs.spawn([SYSTEMCTL, "--user", "--no-pager", self.verb, DEMO],
                                 env=um.env(), stdout=subprocess.DEVNULL, stderr=self.errlog)
        self.calls.append(p)

    def stop(self):
        um = self.ctx.um
        failed = 0
        for p in self.calls:              # every trigger's systemctl, bounded
            try:
                rc = p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.ctx.procs.stop(p, timeout=1)
                rc = "timeout"
            if rc != 0:
                failed += 1
        self.ctx.procs.reap_finished()
        self.errlog.close()
        if failed:
            with open(os.path.join(self.ctx.tmpdir, "%s-systemctl.log" % self.key), errors="replace") as f:
                first = (f.read().strip().splitlines() or ["(no message)"])[-1]
            why = [line.strip() for line in um.manager_log().splitlines()
                   if DEMO in line and ("fail" in line.lower() or "error" in line.lower())]
            self.problems.append("%d of %d `systemctl %s` calls failed (last message: %s; manager log: %s)"
                                 % (failed, len(self.calls), self.verb, first,
                                    " / ".join(why[-3:]) or "nothing about it"))
        self.final = um.show(DEMO, "MainPID", "StatusText", "ActiveState", "SubState",
                             "NRestarts", "Result")
        self.check_final(self.final)
        um.systemctl("stop", DEMO, DEMO_SOCKET, timeout=60)
        with contextlib.suppress(Exception):
            um.wait_state(DEMO, "inactive", timeout=50)

    def check_final(self, props):
        if props.get("ActiveState") != "active":
            self.problems.append("service not active at the end: %s" % props)


class Handover(SystemdDemo):
    key, label, handoff, supervisor = ("handover", "handoff, handover mode (systemd units, "
                                       "`systemctl --user reload`)", True, "handoff")
    verb = "reload"

    def supervisor_pids(self):
        # Every handoff process that started a generation (its parent); each
        # lives from its reload until its own generation has drained.
        since = getattr(self, "since_us", 0)
        return {g.ppid for g in self.ctx.gens.snapshot(since)}

    is_supervisor = staticmethod(is_handoff_daemon)

    def check_final(self, props):
        super().check_final(props)
        m = STATUS_RE.search(props.get("StatusText", ""))
        self.status = m and tuple(int(x) for x in m.groups())
        if not m:
            self.problems.append("unexpected StatusText %r" % props.get("StatusText"))
        elif self.status[3]:
            self.problems.append("handoff reports %d failed reloads" % self.status[3])


class HandoverSighup(Handover):
    """Diagnostic: the same as Handover, but the trigger is SIGHUP sent by
    the benchmark straight to the newest handoff process (what `kill -HUP
    $MAINPID` does), without systemctl and the reload job: it shows which
    part of the handover reload latency is handoff's own."""

    key = "handover-sighup"
    label = "handoff, handover mode (systemd units, SIGHUP to the main handoff; diagnostic)"

    def trigger(self):
        gens = self.ctx.gens.snapshot(getattr(self, "since_us", 0))
        newest = max(gens, key=lambda g: g.exec_us)
        os.kill(newest.ppid, signal.SIGHUP)


class HandoverIdle(Handover):
    """The shipped units, a server ready at once (the base of PairedReload,
    the systemctl reload timing)."""

    key, label = "handover-idle", "handoff, handover mode (systemd units), server ready at once"
    init_delay_ms = 0


class PairedReload(HandoverIdle):
    """For the systemctl reload timing: the shipped units whose ExecReload=
    program is a symlink (self.link) the benchmark points, before each
    reload, at what the units ship (handoffctl) or at /bin/true, the
    baseline: systemd's own reload job and nothing else. The arguments are
    the shipped line's."""

    key, label = "paired-reload", "the shipped units, ExecReload= through a symlink to handoffctl or /bin/true"

    def start(self, port):
        self.link = os.path.join(self.ctx.tmpdir, "exec-reload")
        # The program and its arguments, without systemd's prefixes ("-", "+", ...).
        shipped = re.search(r"(?m)^ExecReload=[-+!@:]*(\S+)(.*)$", render_unit(DEMO, {"HANDOFF": self.ctx.handoff,
                                                                                    "DEMO_SERVER": "x"}))
        self.shipped, self.args = shipped.group(1), shipped.group(2)
        self.point(self.shipped)
        super().start(port)

    def point(self, target):
        tmp = self.link + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.rename(tmp, self.link)

    def dropin_text(self, server):
        return "ExecReload=\nExecReload=%s%s\n" % (self.link, self.args)

    expected = 0    # reloads through handoffctl: handoff must have counted as many

    def check_final(self, props):
        super().check_final(props)
        if self.status and self.status[2] != self.expected:
            self.problems.append("handoff counted %d reloads, %d were asked for" % (self.status[2], self.expected))


class Restart(SystemdDemo):
    """The same units without handoff: ExecStart= is the server itself
    (Type=notify: it says READY=1 to systemd), and `systemctl --user
    restart` stops it (SIGTERM: it drains) and starts a new one; the socket
    unit keeps the listening socket meanwhile. Start rate limiting is turned
    off (StartLimitIntervalSec=0): with it, systemd refuses the sixth restart
    within 10 s."""

    key, label = "restart", "`systemctl --user restart` (socket kept, no handoff)"
    verb = "restart"

    def dropin_text(self, server):
        return "ExecStart=\nExecStart=%s\nExecReload=\n[Unit]\nStartLimitIntervalSec=0\n" % server


ALL = {c.key: c for c in (Supervise, Handover, HandoverSighup, Restart, ServerStarter, Direct)}
