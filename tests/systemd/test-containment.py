#!/usr/bin/python3
"""Containment under a real `systemd --user` manager, with the shipped demo
units (units/handoff-demo.*: Delegate=yes, --cgroup=yes): a generation is
its cgroup. The three servers of tests/process/test-containment.py (a shell
wrapper that does not exec, workers that outlive their master, a
double-forked daemon in a session of its own; each lingers after its drain)
are reloaded under load: after the drain deadline no process of the old
generation exists and its cgroup is gone, 0 requests failed, MainPID is
where the mode says, and nothing is left after the stop. A generation that
moves a worker into a sub-cgroup of its own cgroup is still all of it: the
worker is counted, gets the stop signal a generation whose main exited gets
in all its processes, and its cgroup is removed with the generation's.
Cgroups left in the delegated root by handoffs and generations that are gone
(made by the test, with a `sleep` of its own moved into some): the next
handoff of a handover removes the empty ones with their sub-cgroups and
leaves the populated ones whole; an empty gen-N is reused for generation N;
beside a populated one, left alone, that generation starts in gen-N.1 (at a
reload, or at the start of the service after a restart). After a handover
whose old main is killed while it drains, the new main holds the old
generation to its deadline as its cgroup: a daemon of it in a session of
its own is killed too.

Exit status: 0 ok, 1 failure, 77 skipped (no user manager, or no cgroup2)."""

import json
import os
import re
import subprocess
import sys
import threading
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from usermanager import UserManager, run_tests, Skip, wait_for, free_port, pid_alive, WaitTimeout  # noqa: E402,F401,E501
from handofftest.units import built, render  # noqa: E402
from handofftest.procs import stat_fields  # noqa: E402

HANDOFF = built("HANDOFF_BIN", "src/handoff")
FIXTURE = built("FIXTURE_SERVER", "tests/fixtures/fixture-server")
LOADGEN = built("LOADGEN", "tests/fixtures/loadgen")
DEMO, DEMO_SOCKET = "handoff-demo.service", "handoff-demo.socket"
DRAIN = 2


def unified_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.startswith("cgroup2 "):
                return left.split()[4]
    return None


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def marked(token):
    """{pid: (generation, unified cgroup)} of live processes carrying token."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        env = read("/proc/%s/environ" % d)
        stat = read("/proc/%s/stat" % d)
        if not env or not stat or stat.rsplit(b")", 1)[1].split()[0] == b"Z":
            continue
        fields = dict(e.split(b"=", 1) for e in env.split(b"\0") if b"=" in e)
        if fields.get(b"CONTAIN_TEST") != token.encode() or b"HANDOFF_GENERATION" not in fields:
            continue
        exe = os.path.basename(os.readlink("/proc/%s/exe" % d)) if os.path.exists("/proc/%s/exe" % d) else ""
        if exe.startswith("handoff"):
            continue
        cg = b""
        for line in (read("/proc/%s/cgroup" % d) or b"").splitlines():
            if line.startswith(b"0::"):
                cg = line[3:]
        out[int(d)] = (int(fields[b"HANDOFF_GENERATION"]), cg.decode())
    return out


def cgroup_of(pid):
    for line in (read("/proc/%d/cgroup" % pid) or b"").splitlines():
        if line.startswith(b"0::"):
            return line[3:].decode()
    return None


def http_pid(port, timeout=10):
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    m = re.search(rb"pid=(\d+) gen=(\S+)", data)
    assert data.startswith(b"HTTP/1.1 200") and m, data
    return int(m.group(1))


def start_demo(um, wrapper, port, log, token, more_opts, env=""):
    """The shipped demo unit (it delegates) and its socket on port, with
    wrapper as the server, more_opts after handoff's own, output to log and
    CONTAIN_TEST=token (and env, more NAME=VALUE) in the environment:
    started, and answering."""
    unit = render(DEMO, {"HANDOFF": HANDOFF, "DEMO_SERVER": wrapper})
    assert re.search(r"(?m)^Delegate=yes$", unit) and "--cgroup=yes" in unit, "the shipped unit delegates"
    sock = re.sub(r"(?m)^ListenStream=.*$", "ListenStream=127.0.0.1:%d" % port, render(DEMO_SOCKET, {}))
    um.install_unit(DEMO_SOCKET, sock, reload=False)
    um.install_unit(DEMO, unit, reload=False)
    m = re.search(r"(?m)^ExecStart=(\S+) (.*) -- (.*)$", unit)
    opts = m.group(2) + more_opts
    d = os.path.join(um.unit_dir, DEMO + ".d")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "50-test.conf"), "w") as f:
        f.write("[Service]\nStandardOutput=append:%s\nStandardError=append:%s\nEnvironment=CONTAIN_TEST=%s %s\n"
                "ExecStart=\nExecStart=%s %s -- %s\n" % (log, log, token, env, m.group(1), opts, m.group(3)))
    um.systemctl("daemon-reload")
    um.systemctl("start", DEMO_SOCKET)
    um.wait_state(DEMO_SOCKET, "active", sub_state="listening")
    http_pid(port, timeout=15)
    um.wait_state(DEMO, "active", sub_state="running")


def contained_reload(um, command, expect_old, extra="", mode=None):
    if not unified_mount():
        raise Skip("no cgroup2 (unified) hierarchy mounted")
    token = uuid.uuid4().hex
    port = free_port()
    log = um.path("demo.log")
    wrapper = um.write_file("demo-server", "#!/bin/sh\nexec %s\n" % command, 0o755)
    start_demo(um, wrapper, port, log, token,
               " --drain-timeout=%ds %s%s" % (DRAIN, extra, " --mode=" + mode if mode else ""))

    def gen(n):
        return {p: cg for p, (g, cg) in marked(token).items() if g == n}

    old = wait_for(lambda: (lambda g: g if len(g) >= expect_old else None)(gen(1)), 10,
                   "%d processes of generation 1" % expect_old)
    cgs = set(old.values())
    assert len(cgs) == 1 and next(iter(cgs)).endswith("/gen-1"), "generation 1 in its own cgroup: %s" % old
    gen1_dir = unified_mount() + next(iter(cgs))
    main1 = um.main_pid(DEMO)
    assert cgroup_of(main1).rsplit("/", 1)[1] == "handoff.%d" % main1, \
        "handoff in a leaf of its own: %s" % cgroup_of(main1)
    st = json.loads(subprocess.run([HANDOFF, "status", "--pid", str(main1), "--json"], capture_output=True,
                                   text=True, timeout=10).stdout)
    assert st["generations"][0]["processes"] == expect_old, st

    until, pids_file = um.path("stop-load"), um.path("load-pids")
    load = subprocess.Popen([LOADGEN, "--connect", "127.0.0.1:%d" % port, "--mode", "new", "--concurrency", "4",
                             "--until-file", until, "--timeout-ms", "10000", "--pids-file", pids_file],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def load_reached(pids):
        """Which of pids have answered the load (loadgen --pids-file)."""
        with open(pids_file) as f:
            return {int(p) for p in f.read().split()} & set(pids)
    try:
        # "0 failed" is to hold across the reload: the load is answered by
        # generation 1 before it, and by generation 2 after.
        wait_for(lambda: load_reached(old), 10, "the load answered by generation 1")
        um.systemctl("reload", DEMO, timeout=60)
        wait_for(lambda: um.show(DEMO, "StatusText")["StatusText"].startswith("Serving generation 2"), 20,
                 "generation 2 serving")
        main2 = um.main_pid(DEMO)
        if (mode or "handover") == "handover":
            assert main2 != main1 and cgroup_of(main2).endswith("/handoff.%d" % main2), \
                "MainPID moved to the next handoff, in its own leaf: %d %s" % (main2, cgroup_of(main2))
        else:
            assert main2 == main1, "MainPID stays in supervise mode"
        wait_for(lambda: load_reached(gen(2)), 10, "the load answered by generation 2")
        wait_for(lambda: not gen(1), DRAIN + 10, "generation 1 gone entirely; left %s" % gen(1))
        wait_for(lambda: not os.path.exists(gen1_dir), 5, "its cgroup removed")
        if main2 != main1:
            # The old main exits once its generation is gone; the new one
            # removes its leaf then.
            leaf1 = os.path.join(os.path.dirname(gen1_dir), "handoff.%d" % main1)
            wait_for(lambda: not os.path.exists(leaf1), 10, "the old main's leaf %s removed" % leaf1)
        open(until, "w").close()
        out, err = load.communicate(timeout=30)
        res = json.loads(out)
        assert res["failed"] == 0 and res["ok"] > 0, "load: %s" % res
        new = gen(2)
        assert len(new) >= expect_old and all(cg.endswith("/gen-2") for cg in new.values()), new
        with open(log) as f:
            text = f.read()
        assert "lingering" in text, "the old processes lingered (the test tests something):\n" + text[-3000:]
    finally:
        if load.poll() is None:
            load.kill()
    um.systemctl("stop", DEMO, DEMO_SOCKET)
    um.wait_state(DEMO, "inactive", timeout=DRAIN + 20)
    assert not marked(token), "nothing left after the stop: %s" % marked(token)


def sub_cgroup_reload(um, mode=None):
    """A server may make cgroups below its generation's and move workers
    there (a container runtime, a server that puts its workers in cgroups of
    their own). Here the wrapper starts a worker (a fixture server that just
    serves), moves it into gen-N/workers and execs the main; the worker
    drains when the main exits (PR_SET_PDEATHSIG). Generation 2's main
    fails to start instead, and its worker, which does not follow its
    parent, stays: it is the generation's to stop, with the stop signal to
    each of its processes (its main is gone) and with SIGKILL only at the
    30 s drain deadline. Checked: a worker in a sub-cgroup is counted in
    "handoff status", gets that stop signal (it is gone well before the
    deadline), and no gen-N or gen-N/workers is left once its generation
    is gone."""
    mnt = unified_mount()
    if not mnt:
        raise Skip("no cgroup2 (unified) hierarchy mounted")
    token = uuid.uuid4().hex
    port = free_port()
    log = um.path("demo.log")
    wrapper = um.write_file("demo-server", """#!/bin/sh
cg=%s$(sed -n 's/^0:://p' /proc/self/cgroup)
if [ "$HANDOFF_GENERATION" = 2 ]; then follow=; else follow=--pdeath-drain; fi
%s --any-listen-pid --no-notify $follow &
mkdir "$cg/workers" && echo $! > "$cg/workers/cgroup.procs" || exit 1
echo "generation $HANDOFF_GENERATION: worker $! in $cg/workers"
[ "$HANDOFF_GENERATION" = 2 ] && exit 3
exec %s
""" % (mnt, FIXTURE, FIXTURE), 0o755)
    start_demo(um, wrapper, port, log, token, " --drain-timeout=30s" + (" --mode=" + mode if mode else ""))

    def worker(n):
        with open(log) as f:
            found = re.search(r"(?m)^generation %d: worker (\d+) in (\S+)/workers$" % n, f.read())
        return found and (int(found.group(1)), found.group(2))

    def processes(n):
        st = json.loads(subprocess.run([HANDOFF, "status", "--pid", str(um.main_pid(DEMO)), "--json"],
                                       capture_output=True, text=True, timeout=10).stdout)
        return [g["processes"] for g in st["generations"] if g["number"] == n]

    worker1, gen1_dir = wait_for(lambda: worker(1), 10, "generation 1's worker in gen-1/workers")
    assert processes(1) == [2], "the main and the worker in gen-1/workers: %s" % processes(1)

    r = um.systemctl("reload", DEMO, check=False, timeout=60)
    assert r.returncode != 0, "generation 2 failed to start: the reload fails"
    worker2, gen2_dir = wait_for(lambda: worker(2), 10, "generation 2's worker in gen-2/workers")
    wait_for(lambda: not pid_alive(worker2), 10,
             "generation 2's worker in gen-2/workers to exit on the stop signal (the drain deadline is 30 s)")
    wait_for(lambda: not os.path.exists(gen2_dir), 5, "%s and its workers cgroup removed" % gen2_dir)
    assert um.show(DEMO, "StatusText")["StatusText"].startswith("Serving generation 1"), "generation 1 serves on"

    um.systemctl("reload", DEMO, timeout=60)
    wait_for(lambda: um.show(DEMO, "StatusText")["StatusText"].startswith("Serving generation 3"), 20,
             "generation 3 serving")
    wait_for(lambda: not pid_alive(worker1), 10, "generation 1's worker to drain after its main")
    wait_for(lambda: not os.path.exists(gen1_dir), 5, "%s and its workers cgroup removed" % gen1_dir)
    wait_for(lambda: worker(3), 10, "generation 3's worker in gen-3/workers")
    assert processes(3) == [2], "the main and the worker in gen-3/workers: %s" % processes(3)
    um.systemctl("stop", DEMO, DEMO_SOCKET)
    um.wait_state(DEMO, "inactive", timeout=20)
    assert not marked(token), "nothing left after the stop: %s" % marked(token)


def test_sub_cgroup_worker(um):
    sub_cgroup_reload(um)


def test_sub_cgroup_worker_supervise(um):
    sub_cgroup_reload(um, mode="supervise")


def test_shell_wrapper(um):
    contained_reload(um, "/bin/sh -c '%s --any-listen-pid --pdeath-drain --linger; echo done'" % FIXTURE, 2,
                     extra="--ready=delay:300ms")


def test_workers_outlive_master(um):
    contained_reload(um, "%s --workers 2 --orphan-workers --linger" % FIXTURE, 3)


def test_double_forked_daemon(um):
    contained_reload(um, "%s --spawn-daemon --linger" % FIXTURE, 2)


def test_double_forked_daemon_supervise(um):
    contained_reload(um, "%s --spawn-daemon --linger" % FIXTURE, 2, mode="supervise")


def test_notify_access_all_is_the_cgroup(um):
    """--notify-access=all hears any process of the generation's cgroup, as
    systemd's NotifyAccess=all hears the unit's: here a worker in a session
    of its own (setsid) says READY=1 for a main process that never does.
    With process groups alone it could not be placed, and the generation
    never became ready. Once at the start and once at a reload (in handover
    mode the next handoff places it)."""
    if not unified_mount():
        raise Skip("no cgroup2 (unified) hierarchy mounted")
    notify = subprocess.run(["sh", "-c", "command -v systemd-notify"], capture_output=True, text=True).stdout.strip()
    if not notify:
        raise Skip("systemd-notify is not installed")
    port = free_port()
    log = um.path("demo.log")
    # systemd-notify waits for the barrier: it lives until handoff has read
    # its READY=1, and so can be placed. --pid=self: by default it sends as
    # its parent (the main process), which the kernel lets a sender with
    # CAP_SYS_ADMIN claim; the worker must speak as itself.
    wrapper = um.write_file("demo-server", "#!/bin/sh\nsetsid %s --ready --pid=self &\nexec %s --no-notify\n"
                            % (notify, FIXTURE), 0o755)
    unit = render(DEMO, {"HANDOFF": HANDOFF, "DEMO_SERVER": wrapper})
    sock = re.sub(r"(?m)^ListenStream=.*$", "ListenStream=127.0.0.1:%d" % port, render(DEMO_SOCKET, {}))
    um.install_unit(DEMO_SOCKET, sock, reload=False)
    um.install_unit(DEMO, unit, reload=False)
    m = re.search(r"(?m)^ExecStart=(\S+) (.*) -- (.*)$", unit)
    d = os.path.join(um.unit_dir, DEMO + ".d")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "50-test.conf"), "w") as f:
        f.write("[Service]\nStandardOutput=append:%s\nStandardError=append:%s\nTimeoutStartSec=30s\n"
                "ExecStart=\nExecStart=%s %s --notify-access=all --start-timeout=10s -- %s\n"
                % (log, log, m.group(1), m.group(2), m.group(3)))
    um.systemctl("daemon-reload")
    um.systemctl("start", DEMO_SOCKET)
    um.wait_state(DEMO_SOCKET, "active", sub_state="listening")
    r = um.systemctl("start", DEMO, check=False, timeout=60)
    with open(log) as f:
        text = f.read()
    assert r.returncode == 0, "the start failed (%s):\n%s" % (r.stderr.strip(), text[-3000:])
    um.wait_state(DEMO, "active", sub_state="running")
    assert "ignored READY=1" not in text, text[-3000:]
    app1 = http_pid(port)
    main1 = um.main_pid(DEMO)
    assert cgroup_of(app1).endswith("/gen-1"), cgroup_of(app1)

    um.systemctl("reload", DEMO, timeout=60)
    p = um.show(DEMO, "StatusText", "ReloadResult", "MainPID")
    assert p["StatusText"].startswith("Serving generation 2") and p["ReloadResult"] == "success", p
    wait_for(lambda: http_pid(port) != app1, 10, "generation 2 answers")
    with open(log) as f:
        text = f.read()
    assert "ignored READY=1" not in text, text[-3000:]
    print("# the setsid worker's READY=1 was heard at the start and at the reload (MainPID %d -> %s)"
          % (main1, p["MainPID"]), flush=True)
    um.systemctl("stop", DEMO, DEMO_SOCKET)
    um.wait_state(DEMO, "inactive", timeout=DRAIN + 40)


# ---- leftover cgroups (src/cgroup.c: remove_stale(), cgroup_new_generation())

class Leftovers:
    """Cgroups (and processes parked in them) that a test leaves in the
    delegated root R, as an earlier handoff or an earlier life of the
    service would have: made with mkdir, a process moved in by writing its
    pid to cgroup.procs. cleanup(), at the end of a `with`, kills the
    processes it started and removes every cgroup it made that is still
    there, children first."""

    def __init__(self, root):
        self.root = root
        self.dirs = []
        self.procs = []

    def path(self, rel):
        return os.path.join(self.root, rel)

    def make(self, rel):
        """R/rel and the cgroups on the way to it; returns its path. The
        top one must be new: not a live generation's, nor a handoff's."""
        parts = rel.split("/")
        for i in range(len(parts)):
            p = self.path("/".join(parts[:i + 1]))
            if i == 0 and not any(d == p for d, _ in self.dirs):
                assert not os.path.exists(p), "%s is not there yet" % p
            if not os.path.isdir(p):
                os.mkdir(p)
                self.dirs.append((p, ino(p)))
        return self.path(rel)

    def park(self, rel):
        """A `sleep` of ours, moved into R/rel (made if needed): a process
        that is not this run's. Returns its pid."""
        d = self.make(rel)
        p = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write(str(p.pid))
        assert cgroup_of(p.pid) == self.rel(rel), (cgroup_of(p.pid), rel)
        return p.pid

    def rel(self, rel):
        """R/rel as /proc/PID/cgroup names it."""
        return "/" + os.path.relpath(self.path(rel), unified_mount())

    def untouched(self, pid, rel):
        """pid lives, not stopped, still in R/rel."""
        fields = stat_fields(pid)
        return fields is not None and fields[0] not in ("Z", "X", "T", "t") and cgroup_of(pid) == self.rel(rel)

    def cleanup(self):
        errors = []
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        for d, made in sorted(self.dirs, key=lambda d: d[0].count("/"), reverse=True):
            def gone(d=d):
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    pass
                return True   # an EBUSY (a killed sleep still leaving) raises: tried again
            # Only ours: a cgroup handoff made anew at the same path (a
            # reused gen-N) is its own (a cgroup's inode is its unique id).
            if ino(d) == made:
                try:
                    wait_for(gone, 5, "%s removed" % d)
                except WaitTimeout as e:
                    errors.append(str(e))
        if errors:
            raise AssertionError("cleanup: " + "; ".join(errors))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        """cleanup(), whose own failure does not hide the test's."""
        try:
            self.cleanup()
        except Exception as e:  # noqa: BLE001
            if exc_type is None:
                raise
            sys.stderr.write("%s\n" % e)
        return False


def delegated_root(um):
    """R: the unit's delegated cgroup, the parent of handoff's own leaf."""
    main = um.main_pid(DEMO)
    cg = cgroup_of(main)
    assert cg and cg.rsplit("/", 1)[1] == "handoff.%d" % main, "handoff in a leaf of its own: %s" % cg
    return unified_mount() + cg.rsplit("/", 1)[0]


def ino(path):
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def log_text(log):
    with open(log, errors="replace") as f:
        return f.read()


def leftover_demo(um, mode, dropin=None):
    """The demo unit with the fixture server in mode; dropin: more [Service]
    lines. Returns (port, log)."""
    if not unified_mount():
        raise Skip("no cgroup2 (unified) hierarchy mounted")
    port = free_port()
    log = um.path("demo.log")
    wrapper = um.write_file("demo-server", "#!/bin/sh\nexec %s\n" % FIXTURE, 0o755)
    if dropin:
        d = os.path.join(um.unit_dir, DEMO + ".d")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "60-leftover.conf"), "w") as f:
            f.write("[Service]\n%s\n" % dropin)
    start_demo(um, wrapper, port, log, uuid.uuid4().hex, " --mode=" + mode)
    return port, log


def serving(um, port, n, leaf=None):
    """Generation n serves (StatusText) and answers on port, from R/gen-n
    (or R/leaf)."""
    leaf = leaf or "gen-%d" % n
    wait_for(lambda: um.show(DEMO, "StatusText")["StatusText"].startswith("Serving generation %d" % n), 20,
             "generation %d serving" % n)
    app = wait_for(lambda: (lambda p: p if cgroup_of(p).endswith("/" + leaf) else None)(http_pid(port)), 10,
                   "an answer from generation %d's server in %s" % (n, leaf))
    return app


def test_stale_cgroups_removed_at_handover(um):
    """remove_stale(): the next handoff of a handover, once in its own
    leaf, removes the leaves of handoffs and generations that are gone
    (R/handoff.<pid>, R/gen-N) when they are empty, with the cgroups below
    them, children first; a populated one stays whole (its sub-cgroups
    too), and its processes are not touched. Cgroups with other names are
    not its business, nor are names that only start like a generation's
    (gen-cache). The service serves on, from gen-2."""
    port, log = leftover_demo(um, "handover")
    root = delegated_root(um)
    main1 = um.main_pid(DEMO)
    with Leftovers(root) as left:
        empty = ["gen-7/sub/deeper", "handoff.99999/sub", "gen-6.1/sub"]
        for rel in empty:
            left.make(rel)
        stay = ["gen-8/sub", "gen-9/sub", "handoff.x1/sub", "other/sub", "gen-cache/sub", "gen-5.x/sub"]
        for rel in stay:
            left.make(rel)
        sleep8 = left.park("gen-8")             # in the leftover itself
        sleep9 = left.park("gen-9/sub/deeper")  # only below it
        um.systemctl("reload", DEMO, timeout=60)
        serving(um, port, 2)
        assert um.main_pid(DEMO) != main1, "a handover: the next handoff ran remove_stale()"
        for rel in empty:
            top = left.path(rel.split("/")[0])
            wait_for(lambda: not os.path.exists(top), 5, "the empty leftover %s removed, with %s" % (top, rel))
        for rel in stay + ["gen-9/sub/deeper"]:
            assert os.path.isdir(left.path(rel)), "%s is still there" % left.path(rel)
        assert left.untouched(sleep8, "gen-8") and left.untouched(sleep9, "gen-9/sub/deeper"), \
            "the processes in the populated leftovers live on where they were"
        http_pid(port)
    um.systemctl("stop", DEMO, DEMO_SOCKET)
    um.wait_state(DEMO, "inactive", timeout=DRAIN + 40)


def test_empty_leftover_generation_reused(um):
    """cgroup_new_generation(): an empty R/gen-N that is already there (left
    by an earlier life of the service; numbers start at 1 again) is removed
    with its empty sub-cgroups, children first, and made anew for
    generation N. In supervise mode no next handoff runs remove_stale()
    first: the reload reaches gen-2 as it is."""
    port, log = leftover_demo(um, "supervise")
    root = delegated_root(um)
    with Leftovers(root) as left:
        left.make("gen-2/sub/deeper")
        left.make("gen-2/other")
        before = ino(left.path("gen-2"))
        um.systemctl("reload", DEMO, timeout=60)
        app2 = serving(um, port, 2)
        assert ino(left.path("gen-2")) not in (None, before), "gen-2 removed and made anew"
        assert sorted(e for e in os.listdir(left.path("gen-2")) if os.path.isdir(left.path("gen-2/" + e))) == [], \
            "no leftover sub-cgroup in the new gen-2: %s" % os.listdir(left.path("gen-2"))
        assert cgroup_of(app2) == left.rel("gen-2"), cgroup_of(app2)
        assert "exists and is not empty" not in log_text(log), log_text(log)[-3000:]
    um.systemctl("stop", DEMO, DEMO_SOCKET)
    um.wait_state(DEMO, "inactive", timeout=DRAIN + 40)


def leftover_line(left, leaf):
    return ("Cgroup %s exists and is not empty: processes of an earlier handoff run there; leaving them alone."
            % left.path(leaf))


def populated_leftover_generation(um, mode):
    """cgroup_new_generation(): a populated R/gen-2 is not reused: what runs
    there is not generation 2's. Generation 2 starts beside it, in
    R/gen-2.1, with a warning that names both; the leftover stays whole with
    its process untouched, and the next reload goes on to gen-3."""
    port, log = leftover_demo(um, mode)
    root = delegated_root(um)
    with Leftovers(root) as left:
        left.make("gen-2/sub")
        sleeper = left.park("gen-2")
        um.systemctl("reload", DEMO, timeout=60)
        app2 = serving(um, port, 2, "gen-2.1")
        assert cgroup_of(app2) == left.rel("gen-2.1"), cgroup_of(app2)
        wait_for(lambda: leftover_line(left, "gen-2") in log_text(log), 10, "the log line: " + leftover_line(left, "gen-2"))
        assert "Generation 2 runs in cgroup %s." % left.path("gen-2.1") in log_text(log), log_text(log)[-3000:]
        assert left.untouched(sleeper, "gen-2") and os.path.isdir(left.path("gen-2/sub")), \
            "the populated gen-2 stays whole, its process untouched"

        um.systemctl("reload", DEMO, timeout=60)
        serving(um, port, 3)
        wait_for(lambda: not os.path.exists(left.path("gen-2.1")), DRAIN + 10, "generation 2's gen-2.1 removed")
        assert left.untouched(sleeper, "gen-2") and os.path.isdir(left.path("gen-2/sub"))
    um.systemctl("stop", DEMO, DEMO_SOCKET)
    um.wait_state(DEMO, "inactive", timeout=DRAIN + 40)


def test_populated_leftover_generation(um):
    populated_leftover_generation(um, "handover")


def test_populated_leftover_generation_supervise(um):
    populated_leftover_generation(um, "supervise")


def test_populated_leftover_generation_at_restart(um):
    """An earlier life of the service left a process in gen-1 (KillMode=
    process: systemd stops only handoff, which stops its own generations,
    not a stranger's process that joined one, here in gen-1/sub): the
    restarted handoff, numbering from 1 again, starts generation 1 beside
    it, in gen-1.1, as systemd starts a unit beside left-over processes.
    The service starts (before, it failed, and with the shipped
    Restart=on-failure went on failing until the start limit, its socket
    with it); the leftover stays whole and its process untouched. (systemd
    trims the stopped unit's cgroup once it is empty, so only a populated
    leftover survives a restart: remove_stale() and the reuse of an empty
    gen-N are tested above, with the unit running.)"""
    port, log = leftover_demo(um, "handover", dropin="KillMode=process")
    um.systemctl("reload", DEMO, timeout=60)
    serving(um, port, 2)
    root = delegated_root(um)
    wait_for(lambda: not os.path.exists(root + "/gen-1"), DRAIN + 10, "generation 1's cgroup removed")
    with Leftovers(root) as left:
        # In gen-1/sub: systemd trims the unit's empty cgroups at the stop.
        sleeper = left.park("gen-1/sub")
        made = ino(left.path("gen-1"))
        um.systemctl("restart", DEMO, timeout=60)
        app = serving(um, port, 1, "gen-1.1")
        assert cgroup_of(app) == left.rel("gen-1.1"), cgroup_of(app)
        assert leftover_line(left, "gen-1") in log_text(log), \
            "the log says why: %s\n%s" % (leftover_line(left, "gen-1"), log_text(log)[-3000:])
        assert ino(left.path("gen-1")) == made and left.untouched(sleeper, "gen-1/sub"), \
            "the populated gen-1 stays whole, its process untouched"
        p = um.show(DEMO, "NRestarts", "ActiveState")
        assert p == {"NRestarts": "0", "ActiveState": "active"}, p
    um.systemctl("stop", DEMO, DEMO_SOCKET)
    um.wait_state(DEMO, "inactive", timeout=DRAIN + 40)


def test_held_generation_killed_as_its_cgroup(um):
    """Handover mode: the new main holds the old main's generation to its
    drain deadline (retiree.h), and with a delegated cgroup that generation
    is its cgroup, for the new main as for the old. Generation 1 here
    ignores SIGTERM and has a double-forked daemon in a session of its own
    that serves until killed; the old main is SIGKILLed right after the
    takeover (by the channel shim, as it sends TAKEOVER: a kill by the test
    could come after the old main's own deadline on a loaded machine).
    At the deadline the new main kills generation 1's cgroup, daemon
    included. (Before, it killed the main and its process group only: the
    daemon served the old code until the service stopped.) Its status shows
    the generation with both processes meanwhile (before the deadline:
    6 s here, for a test process short of CPU)."""
    if not unified_mount():
        raise Skip("no cgroup2 (unified) hierarchy mounted")
    shim = os.environ.get("CHANNEL_SHIM_SO")
    if not shim or not os.path.exists(shim):
        raise Skip("no channel shim (CHANNEL_SHIM_SO=%r)" % shim)
    drain = 6
    token = uuid.uuid4().hex
    port = free_port()
    log = um.path("demo.log")
    # Generation 2 is a plain one, so that the stop ends well.
    wrapper = um.write_file("demo-server", "#!/bin/sh\n[ \"$HANDOFF_GENERATION\" = 1 ] && exec %s --ignore-sigterm "
                            "--spawn-daemon --orphans-keep-serving\nexec %s\n" % (FIXTURE, FIXTURE), 0o755)
    # Only the old main sends TAKEOVER, once: the shim kills it there.
    start_demo(um, wrapper, port, log, token, " --drain-timeout=%ds --mode=handover" % drain,
               env="LD_PRELOAD=%s CHANNEL_SHIM_KILL_AFTER=TAKEOVER" % shim)

    def gen(n):
        return {p: cg for p, (g, cg) in marked(token).items() if g == n}

    old = wait_for(lambda: (lambda g: g if len(g) == 2 else None)(gen(1)), 10, "generation 1's main and daemon")
    assert all(cg.endswith("/gen-1") for cg in old.values()), old
    main1 = um.main_pid(DEMO)
    um.systemctl("reload", DEMO, timeout=60)
    main2 = um.main_pid(DEMO)
    assert main2 != main1, "MainPID moved to the next handoff"
    # No request first, which generation 1 and its daemon, both accepting
    # until then, may take for seconds.
    wait_for(lambda: "handoff[%d]: Took over as the main process" % main2 in log_text(log), 10, "the takeover")
    wait_for(lambda: not pid_alive(main1), 10, "the old main %d killed by the shim" % main1)
    st = json.loads(subprocess.run([HANDOFF, "status", "--pid", str(main2), "--json"], capture_output=True,
                                   text=True, timeout=10).stdout)
    held = [g for g in st["generations"] if g["previous_handoff"]]
    assert len(held) == 1 and held[0]["number"] == 1 and held[0]["processes"] == 2, st
    # The old main's deadline, a second more, and time to spare.
    wait_for(lambda: not gen(1), drain + 10, "generation 1 gone entirely; left %s\n%s" % (gen(1), log_text(log)[-3000:]))
    serving(um, port, 2)
    assert re.search(r"handoff\[%d\]: The previous handoff's generation \(pid \d+(, exited)?\) did not exit in "
                     r"time; sending SIGKILL to its cgroup \S+/gen-1\." % main2, log_text(log)), log_text(log)[-3000:]
    um.systemctl("stop", DEMO, DEMO_SOCKET)
    um.wait_state(DEMO, "inactive", timeout=DRAIN + 20)
    assert not marked(token), "nothing left after the stop: %s" % marked(token)


def test_held_generation_whose_main_was_reaped_before_takeover(um):
    """As above, with a generation 1 whose master exits at once at its stop
    signal and leaves its two workers serving, and a new main that reads
    TAKEOVER only once the old main has reaped that master (the channel
    shim holds the read): the new main holds generation 1's cgroup all the
    same, which NAMED names, and kills what is left of it at the deadline
    once the old main has been killed. Before, with the master gone it held
    nothing, and the workers served the old code until the service stopped
    (found by review)."""
    if not unified_mount():
        raise Skip("no cgroup2 (unified) hierarchy mounted")
    shim = os.environ.get("CHANNEL_SHIM_SO")
    if not shim or not os.path.exists(shim):
        raise Skip("no channel shim (CHANNEL_SHIM_SO=%r)" % shim)
    token = uuid.uuid4().hex
    port = free_port()
    log = um.path("demo.log")
    release = um.path("takeover-read")
    # The shim for handoff only: the servers run without it.
    wrapper = um.write_file("demo-server", "#!/bin/sh\nunset LD_PRELOAD\n[ \"$HANDOFF_GENERATION\" = 1 ] && exec %s "
                            "--workers 2 --orphan-workers --orphans-keep-serving\nexec %s\n" % (FIXTURE, FIXTURE),
                            0o755)
    d = os.path.join(um.unit_dir, DEMO + ".d")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "60-shim.conf"), "w") as f:
        f.write("[Service]\nEnvironment=LD_PRELOAD=%s CHANNEL_SHIM_HOLD_READ=TAKEOVER CHANNEL_SHIM_UNTIL=%s\n"
                % (shim, release))
    start_demo(um, wrapper, port, log, token, " --drain-timeout=%ds --mode=handover" % DRAIN)

    def gen(n):
        return {p: cg for p, (g, cg) in marked(token).items() if g == n}

    old = wait_for(lambda: (lambda g: g if len(g) == 3 else None)(gen(1)), 10, "generation 1's master and workers")
    master = min(old)  # forked first
    main1 = um.main_pid(DEMO)
    reload = threading.Thread(target=lambda: um.systemctl("reload", DEMO, timeout=60, check=False))
    reload.start()
    try:
        wait_for(lambda: stat_fields(master) is None, 20, "generation 1's master reaped by the old main")
    finally:
        open(release, "w").close()
        reload.join(60)
    main2 = um.main_pid(DEMO)
    assert main2 != main1, "MainPID moved to the next handoff"
    wait_for(lambda: "handoff[%d]: Took over as the main process" % main2 in log_text(log), 10, "the takeover")
    os.kill(main1, 9)
    st = json.loads(subprocess.run([HANDOFF, "status", "--pid", str(main2), "--json"], capture_output=True,
                                   text=True, timeout=10).stdout)
    held = [g for g in st["generations"] if g["previous_handoff"]]
    assert len(held) == 1 and held[0]["processes"] == 2, "%s\n%s" % (st, log_text(log)[-3000:])
    wait_for(lambda: not gen(1), DRAIN + 10, "generation 1 gone entirely; left %s\n%s" % (gen(1), log_text(log)[-3000:]))
    serving(um, port, 2)
    um.systemctl("stop", DEMO, DEMO_SOCKET)
    um.wait_state(DEMO, "inactive", timeout=DRAIN + 20)
    assert not marked(token), "nothing left after the stop: %s" % marked(token)

if __name__ == "__main__":
    run_tests([test_shell_wrapper, test_workers_outlive_master, test_double_forked_daemon,
               test_double_forked_daemon_supervise, test_notify_access_all_is_the_cgroup, test_sub_cgroup_worker,
               test_sub_cgroup_worker_supervise, test_stale_cgroups_removed_at_handover,
               test_empty_leftover_generation_reused, test_populated_leftover_generation,
               test_populated_leftover_generation_supervise, test_populated_leftover_generation_at_restart,
               test_held_generation_killed_as_its_cgroup,
               test_held_generation_whose_main_was_reaped_before_takeover])
