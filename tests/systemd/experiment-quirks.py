#!/usr/bin/python3
"""Experiments behind the quirk list at the top of
tests/lib/handofftest/usermanager.py.

Not a pass/fail test of handoff: each check prints one `FACT name: ...` line
(or a failure via run_tests).  Rerun on a new machine / systemd version to
re-validate the quirk list.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from handofftest.net import free_port, tcp_request  # noqa: E402
from handofftest.procs import pid_alive  # noqa: E402
from handofftest.usermanager import UserManager, run_tests  # noqa: E402
from handofftest.wait import WaitTimeout  # noqa: E402

SVC = r'''
import array, os, signal, socket, sys, time

MODE = sys.argv[1]
OUT = sys.argv[2]

def log(*a):
    with open(OUT, "a") as f:
        f.write(" ".join(str(x) for x in a) + "\n")

def notify(msg, fds=()):
    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        anc = []
        if fds:
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                    array.array("i", fds))]
        s.sendmsg([msg.encode()], anc, 0, addr)

def sleep_forever():
    while True:
        time.sleep(3600)

log("start", MODE, os.getpid(), "WATCHDOG_USEC=%s" % os.environ.get("WATCHDOG_USEC"),
    "WATCHDOG_PID=%s" % os.environ.get("WATCHDOG_PID"),
    "LISTEN_FDS=%s" % os.environ.get("LISTEN_FDS"),
    "LISTEN_FDNAMES=%s" % os.environ.get("LISTEN_FDNAMES"))

if MODE == "ready-sleep":
    notify("READY=1")
    sleep_forever()

elif MODE == "ready-ping":
    notify("READY=1")
    while True:
        notify("WATCHDOG=1")
        time.sleep(0.2)

elif MODE == "fork-children":
    os.system("sleep 1000 & setsid sleep 1001 &")
    notify("READY=1")
    sleep_forever()

elif MODE == "reload":
    n = [0]
    def hup(*_):
        n[0] += 1
        notify("RELOADING=1\nSTATUS=reloading %d" % n[0])
        log("reload", n[0])
        time.sleep(0.5)
        notify("READY=1\nSTATUS=reloaded %d" % n[0])
    signal.signal(signal.SIGHUP, hup)
    notify("READY=1\nSTATUS=initial")
    sleep_forever()

elif MODE == "handoff":
    # On SIGHUP: fork a new main process, declare it MAINPID, exit.
    def hup(*_):
        pid = os.fork()
        if pid == 0:
            time.sleep(0.5)               # let the manager switch MainPID
            me = os.getpid()
            notify("STATUS=new main %d" % me)
            log("child sent status", me)
            wd = os.environ.get("WATCHDOG_USEC")
            while True:
                if wd:
                    notify("WATCHDOG=1")
                time.sleep(0.2)
        log("old main", os.getpid(), "sends MAINPID", pid)
        notify("MAINPID=%d" % pid)
        time.sleep(1.0)
        notify("STATUS=old main still talking")  # must be ignored
        log("old main exits")
        os._exit(0)
    signal.signal(signal.SIGHUP, hup)
    notify("READY=1\nSTATUS=old main %d" % os.getpid())
    wd = os.environ.get("WATCHDOG_USEC")
    while True:
        if wd:
            notify("WATCHDOG=1")
        time.sleep(0.2)

elif MODE == "child-claims-main":
    # A child tries to declare itself main under NotifyAccess=main.
    pid = os.fork()
    if pid == 0:
        time.sleep(0.3)
        notify("MAINPID=%d\nSTATUS=child claims" % os.getpid())
        sleep_forever()
    notify("READY=1\nSTATUS=parent")
    sleep_forever()

elif MODE == "fail":
    time.sleep(0.2)
    sys.exit(1)

elif MODE == "fdstore":
    names = (os.environ.get("LISTEN_FDNAMES") or "").split(":")
    nfds = int(os.environ.get("LISTEN_FDS") or 0)
    if "kept" in names:
        fd = 3 + names.index("kept")
        log("got stored fd", fd)
        s = socket.socket(fileno=fd)
    else:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(sys.argv[3])))
        s.listen()
        notify("FDSTORE=1\nFDNAME=kept", [s.fileno()])
        log("stored fd")
    notify("READY=1\nSTATUS=fds=%s pid=%d" % (":".join(names), os.getpid()))
    signal.signal(signal.SIGHUP, lambda *_: os._exit(1))
    while True:
        c, _ = s.accept()
        c.sendall(b"pid %d\n" % os.getpid())
        c.close()
'''


def fact(name, text):
    print("FACT %s: %s" % (name, text), flush=True)


def setup(um):
    return um.write_file("svc.py", SVC, 0o755), um.path("svc.log")


def unit(script, out, mode, extra="", args=""):
    return """\
[Service]
Type=notify
ExecStart=/usr/bin/python3 %s %s %s %s
StandardOutput=append:%s
StandardError=append:%s
%s
""" % (script, mode, out, args, out, out, extra)


def test_cgroup_and_killmode(um):
    script, out = setup(um)
    res = {}
    for km in ("control-group", "mixed", "process"):
        name = "km-%s.service" % km
        um.install_unit(name, unit(script, out, "fork-children",
                                   "KillMode=%s" % km))
        um.systemctl("start", name)
        pids = um.wait_for(lambda: len(um.unit_pids(name)) >= 3 and
                           um.unit_pids(name), 5, "3 pids in %s" % name)
        cg = um.show(name, "ControlGroup")["ControlGroup"]
        um.systemctl("stop", name)
        time.sleep(0.3)
        res[km] = "%d procs in %s, alive after stop: %d" % (
            len(pids), cg, sum(pid_alive(p) for p in pids))
        for p in pids:                      # clean for the next round
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)
    for k, v in res.items():
        fact("KillMode=" + k, v)
    assert res["control-group"].endswith(": 0")
    assert not res["process"].endswith(": 0")


def test_reload(um):
    script, out = setup(um)
    um.install_unit("rl.service", unit(script, out, "reload",
                                       "ExecReload=/bin/kill -HUP $MAINPID"))
    um.systemctl("start", "rl.service")
    main = um.main_pid("rl.service")
    t = time.monotonic()
    um.systemctl("reload", "rl.service", timeout=20)
    dt = time.monotonic() - t
    st = um.show("rl.service", "StatusText", "ActiveState", "SubState",
                 "MainPID")
    fact("systemctl reload", "rc=0 after %.2fs (service sleeps 0.5s between "
         "RELOADING=1 and READY=1); afterwards %s" % (dt, st))
    # is the state visible as 'reloading' in between?
    um.systemctl("kill", "-s", "HUP", "rl.service")
    seen = set()
    end = time.monotonic() + 2
    while time.monotonic() < end:
        a, s, _ = um.state("rl.service")
        seen.add("%s/%s" % (a, s))
        time.sleep(0.02)
    fact("RELOADING=1 via kill -HUP", "states seen within 2s: %s"
         % sorted(seen))
    assert um.main_pid("rl.service") == main


def _handoff(um, extra, name):
    script, out = setup(um)
    um.install_unit(name, unit(script, out, "handoff", extra))
    um.systemctl("start", name)
    old = um.main_pid(name)
    um.systemctl("kill", "-s", "HUP", "--kill-who=main", name)
    try:
        um.wait_for(lambda: um.main_pid(name) not in (old, 0), 5,
                    "MainPID to change")
    except WaitTimeout as e:
        with open(out) as f:
            return old, None, str(e) + "\n" + f.read()
    new = um.main_pid(name)
    um.wait_for(lambda: not pid_alive(old), 5, "old main to exit")
    time.sleep(1.5)   # old main's late STATUS= and a few watchdog periods
    st = um.show(name, "MainPID", "ActiveState", "SubState", "StatusText",
                 "Result", "NRestarts")
    with open(out) as f:
        log = f.read()
    return old, new, "%s; log: %s" % (st, log.strip().replace("\n", " | "))


def test_mainpid_notifyaccess_main(um):
    old, new, info = _handoff(um, "NotifyAccess=main", "ho.service")
    fact("NotifyAccess=main + MAINPID= from main", "old=%s new=%s %s"
         % (old, new, info))
    assert new is not None, info
    st = um.show("ho.service", "MainPID", "ActiveState", "StatusText")
    assert int(st["MainPID"]) == new and st["ActiveState"] == "active", st
    assert st["StatusText"] == "new main %d" % new, st
    # The manager logs "Supervising process N which is not our child. We'll
    # most likely not notice when it exits." -- but it is a child subreaper,
    # so once the old main is gone the new one is its child.  Check:
    with open("/proc/%d/stat" % new) as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    os.kill(new, signal.SIGKILL)
    um.wait_for(lambda: um.state("ho.service")[0] in ("failed", "inactive"),
                5, "manager to notice the death of the new main pid")
    fact("new main (ppid=%d, manager=%d) SIGKILLed" % (ppid, um.pid),
         "manager noticed: %s" % (um.state("ho.service"),))
    assert "reception only permitted for main PID %d" % new in \
        um.manager_log(), um.log_tail()


def test_mainpid_with_watchdog(um):
    old, new, info = _handoff(um, "NotifyAccess=main\nWatchdogSec=1",
                              "howd.service")
    fact("MAINPID= handoff with WatchdogSec=1 (new main pings)",
         "old=%s new=%s %s" % (old, new, info))
    assert new is not None
    assert um.state("howd.service")[0] == "active"


def test_child_cannot_claim_main(um):
    script, out = setup(um)
    um.install_unit("claim.service", unit(script, out, "child-claims-main",
                                          "NotifyAccess=main"))
    um.systemctl("start", "claim.service")
    main = um.main_pid("claim.service")
    time.sleep(1)
    st = um.show("claim.service", "MainPID", "StatusText")
    fact("NotifyAccess=main, child sends MAINPID=self",
         "main before=%d, after=%s (ignored=%s)"
         % (main, st, int(st["MainPID"]) == main))


def test_watchdog(um):
    script, out = setup(um)
    um.install_unit("wd.service", unit(script, out, "ready-sleep",
                                       "WatchdogSec=1"))
    um.install_unit("wdok.service", unit(script, out, "ready-ping",
                                         "WatchdogSec=1"))
    t = time.monotonic()
    um.systemctl("start", "wd.service", "wdok.service")
    main = um.main_pid("wd.service")
    um.wait_for(lambda: um.state("wd.service")[0] in ("failed", "inactive"),
                10, "watchdog to kill wd.service")
    dt = time.monotonic() - t
    st = um.show("wd.service", "ActiveState", "Result", "ExecMainStatus",
                 "ExecMainCode", "WatchdogUSec")
    fact("WatchdogSec=1, never pings", "stopped after %.1fs, %s, pid %d "
         "alive=%s" % (dt, st, main, pid_alive(main)))
    assert st["Result"] == "watchdog", st
    time.sleep(1.5)
    fact("WatchdogSec=1, pings every 0.2s", "after %.1fs: %s" % (
        time.monotonic() - t, um.state("wdok.service")))
    assert um.state("wdok.service")[0] == "active"
    with open(out) as f:
        fact("watchdog env", [l for l in f.read().splitlines()
                              if "ready-sleep" in l][0])


def test_restart_on_failure(um):
    script, out = setup(um)
    um.install_unit("rs.service", unit(script, out, "fail",
                                       "Restart=on-failure\nRestartSec=100ms",
                                       ).replace("Type=notify", "Type=simple"))
    um.systemctl("start", "rs.service")
    n = um.wait_for(lambda: int(um.show("rs.service", "NRestarts")
                                ["NRestarts"]) >= 2 and um.show(
        "rs.service", "NRestarts")["NRestarts"], 10, "2 restarts")
    fact("Restart=on-failure", "NRestarts=%s after a few seconds" % n)
    um.systemctl("stop", "rs.service")


def test_fdstore(um):
    script, out = setup(um)
    port = free_port()
    um.install_unit("fds.service", unit(
        script, out, "fdstore",
        "FileDescriptorStoreMax=4\nRestart=on-failure\nRestartSec=100ms",
        args=str(port)))
    um.systemctl("start", "fds.service")
    first = um.main_pid("fds.service")
    a = tcp_request(port)
    n = um.show("fds.service", "NFileDescriptorStore")
    um.systemctl("kill", "-s", "HUP", "fds.service")
    um.wait_for(lambda: um.main_pid("fds.service") not in (0, first)
                and um.state("fds.service")[0] == "active", 10,
                "restart with stored fd")
    b = tcp_request(port)
    st = um.show("fds.service", "StatusText", "NRestarts")
    fact("FDSTORE=1 + Restart", "first %r %s, after crash/restart %r %s"
         % (a, n, b, st))
    assert b"pid %d" % um.main_pid("fds.service") in b


def test_systemd_run_wait(um):
    r = um.systemd_run("--wait", "-p", "StandardOutput=append:%s"
                       % um.path("w.out"), "/bin/echo", "hi")
    with open(um.path("w.out")) as f:
        fact("systemd-run --wait", "rc=%d out=%r via %s" % (
            r.returncode, f.read(), um.env()["DBUS_SESSION_BUS_ADDRESS"]))


def test_two_managers():
    with UserManager() as a, UserManager() as b:
        fact("two managers", "pids %d, %d cgroups %s %s both running: %s" % (
            a.pid, b.pid, a.cgroup, b.cgroup,
            [m.systemctl("is-system-running", check=False).stdout.strip()
             for m in (a, b)]))


def test_manager_sigterm():
    um = UserManager()
    with um:
        um.systemd_run("--unit=s1", "/bin/sleep", "1000")
        t = time.monotonic()
        os.kill(um.pid, signal.SIGTERM)
        um.proc.wait(timeout=15)
        fact("SIGTERM to manager", "exited rc=%s after %.2fs, leftovers %s"
             % (um.proc.returncode, time.monotonic() - t, um.leftover_pids()))


if __name__ == "__main__":
    run_tests([
        test_cgroup_and_killmode,
        test_reload,
        test_mainpid_notifyaccess_main,
        test_mainpid_with_watchdog,
        test_child_cannot_claim_main,
        test_watchdog,
        test_restart_on_failure,
        test_fdstore,
        test_systemd_run_wait,
        test_two_managers,
        test_manager_sigterm,
    ])
