#!/usr/bin/python3
"""Reloads, in the mode HANDOFF_TEST_MODE names (meson runs this file once
per mode): the exact conversation with (a fake) systemd, zero failed
requests under load, rollback of failing and hanging candidates,
coalescing, and abort by SIGTERM."""

import fcntl
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess

from handofftest.handoff import (FIXTURE, HANDOFFCTL, NO_CLOSE_RANGE, Handoff, MODE, fixture_cmd, set_args,
                                 seccomp_prefix, status_json)
from handofftest.load import Load, SlowRequest
from handofftest.net import free_port, serving_pid, wait_new_pid
from handofftest.notify import FakeSystemd
from handofftest.procs import children_of, is_handoff, pid_alive, stat_fields
from handofftest.runner import Skip, run
from handofftest.wait import check, wait_for


def start(tmp, *extra, args=("--init-delay", "100"), fake=True):
    """handoff with a fixture whose arguments live in a file, so a test can
    make the next generation behave differently (as a config change would)."""
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, *args)
    notify = FakeSystemd(tmp) if fake else None
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}", *extra], fixture_cmd(args_file), notify=notify)
    h.port, h.args_file = port, args_file
    if notify:
        h.wait_ready(1)
    return h


def reload_and_wait(h, n_ready):
    h.signal(signal.SIGHUP)
    h.wait_ready(n_ready, timeout=20)



def test_exact_notify_sequence(tmp):
    h = start(tmp, args=("--init-delay", "100", "--status", "fixture-up"))
    try:
        first = serving_pid(h.port)
        reload_and_wait(h, 2)
        second = wait_new_pid(h.port, first)
        check(h.stop() == 0, h.log())
        msgs = h.notify.snapshot()
        mains = h.mains()
        # Every datagram systemd got came from whoever was main, never a child.
        check(all(m.pid in mains for m in msgs), f"senders {[m.pid for m in msgs]}, mains {mains}")
        kinds = []
        for m in msgs:
            f = m.fields
            if "MAINPID" in f:
                check(f.get("READY") == "1" and "STATUS" in f, f"MAINPID with READY=1 and STATUS: {m}")
                kinds.append("MAINPID+READY")
            elif "READY" in f:
                kinds.append("READY")
            elif "RELOADING" in f:
                check(re.fullmatch(r"\d+", f.get("MONOTONIC_USEC", "")), f"RELOADING without MONOTONIC_USEC: {m}")
                kinds.append("RELOADING")
            elif "BARRIER" in f:
                check(m.nfds == 1, f"BARRIER=1 comes with one fd: {m}")
                kinds.append("BARRIER")
            elif "STOPPING" in f:
                kinds.append("STOPPING")
            elif f.get("STATUS", "").startswith("Serving generation "):
                kinds.append("serving-status")
            elif f.get("STATUS", "").startswith("Reloading: generation 2 starting"):
                kinds.append("progress")
            elif "STATUS" in f:
                kinds.append("status")
        # The server says READY=1 and STATUS= in one datagram: handoff's
        # READY=1 line has its text, and nothing says it again.
        if MODE == "supervise":
            expect = ["status", "READY", "RELOADING", "READY", "STOPPING"]
            check(mains == [h.pid], f"no MAINPID in supervise mode: {msgs}")
        else:
            # The next handoff reports the text, then READY: the old main
            # shows it as progress, then in the MAINPID= datagram. The new
            # main starts speaking only after the barrier, with its own
            # status line.
            expect = ["status", "READY", "RELOADING", "progress", "MAINPID+READY", "BARRIER",
                      "serving-status", "STOPPING"]
            check(len(mains) == 2, f"one MAINPID per reload: {mains}")
            after = msgs[kinds.index("BARRIER") + 1:]
            check(all(m.pid == mains[1] for m in after), f"after the barrier only the new main speaks: {after}")
            before = msgs[:kinds.index("BARRIER") + 1]
            check(all(m.pid == h.pid for m in before), f"before it only the old main: {before}")
        check(kinds == expect, f"sequence {kinds}, expected {expect}: {msgs}")
        ready = [m for m in msgs if m.fields.get("READY") == "1"]
        check(all(m.fields["STATUS"].endswith("; app: fixture-up") for m in ready + [m for m in msgs if
                  m.fields.get("STATUS", "").startswith("Serving generation ")]), f"the server's text: {msgs}")
        check(f"Serving generation 1 (pid {first})" in ready[0].fields["STATUS"], ready[0])
        check(f"Serving generation 2 (pid {second})" in ready[1].fields["STATUS"], ready[1])
        check("reload to generation 2 ok" in ready[1].fields["STATUS"], ready[1])
        check(not h.descendants(), "no generation left after stop")
    finally:
        h.close()


def test_manager_socket_bound_anew(tmp):
    """handoff keeps one socket to the manager, connected once. When the
    manager's socket is closed and another is bound at its address (a
    manager started anew), what handoff says next reaches the new one."""
    h = start(tmp)
    try:
        first = serving_pid(h.port)
        h.notify.close()
        h.notify = FakeSystemd(tmp)
        reload_and_wait(h, 1)
        wait_new_pid(h.port, first)
        check(h.notify.count("RELOADING") == 1 and all(m.pid in h.mains() for m in h.notify.snapshot()),
              f"the reload told to the new socket: {h.notify.snapshot()}")
        check(h.stop() == 0, h.log())
        check(h.notify.count("STOPPING") == 1, h.notify.snapshot())
    finally:
        h.close()


def test_manager_that_does_not_read_gets_ready_and_reload_in_order(tmp):
    """A service manager busy elsewhere (or a socket any user has flooded:
    systemd's is open to all) does not read: handoff's READY=1 and
    RELOADING=1 find its queue full. They wait in order and arrive once it
    reads again; of the server's 2,200 STATUS= lines only the latest waits.
    handoff serves and answers meanwhile. In handover mode MAINPID= is never
    queued (it must not be sent later than now): the old main waits for
    room, then sends it, and the reload completes."""
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    # More STATUS= lines than may wait: only the latest does.
    set_args(args_file, "--init-delay", "100", "--status", "fixture-up", "--status-burst", "2200")
    notify = FakeSystemd(tmp)
    notify.pause()
    filled = notify.fill()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}"], fixture_cmd(args_file), notify=notify)
    try:
        h.wait_log("Listening on", timeout=10)
        first = serving_pid(port, timeout=10)
        st = status_json(h.pid)
        check(st["state"] == "serving" and [g["role"] for g in st["generations"]] == ["serving"], st)
        h.signal(signal.SIGHUP)
        if MODE == "supervise":
            second = wait_new_pid(port, first)
        else:
            h.wait_log("MAINPID= waits for room", timeout=20)
            check(status_json(h.pid)["state"] == "handing-over", "the reload waits, handoff answers")
        check("Failed to notify service manager" not in h.log(), h.log())
        notify.resume()
        h.wait_ready(2, timeout=20)
        if MODE == "handover":
            second = wait_new_pid(port, first)
            check(len(h.mains()) == 2, f"one MAINPID=: {notify.snapshot()}")
            h.wait_log("MAINPID= is sent", timeout=5)
        msgs = [m for m in notify.snapshot() if "X_FILLER" not in m.fields]
        check(len(notify.snapshot()) - len(msgs) == filled, f"the {filled} fillers first")
        kinds = [k for m in msgs for k in ("READY", "RELOADING") if k in m.fields]
        check(kinds[:3] == ["READY", "RELOADING", "READY"], f"in order: {msgs}")
        check(all(m.pid == h.pid for m in msgs[:msgs.index([m for m in msgs if "READY" in m.fields][1]) + 1]),
              f"up to the reload's READY=1, all from the first handoff: {msgs}")
        bursts = [m for m in msgs if "burst" in m.fields.get("STATUS", "")]
        check(len(bursts) <= 4, f"{len(bursts)} of the server's STATUS= lines waited, not only the latest")
        ready = [m for m in msgs if "READY" in m.fields]
        check("Serving generation 1" in ready[0].fields["STATUS"], ready[0])
        check(f"Serving generation 2 (pid {second})" in ready[1].fields["STATUS"], ready[1])
        check(h.stop() == 0, h.log())
        check(h.notify.count("STOPPING") == 1, h.notify.snapshot())
    finally:
        notify.resume()
        h.close()


# A generation whose main process, before it becomes the fixture, floods
# its NOTIFY_SOCKET with a plan's datagrams ("<when> <count> <text>", text
# a %-format of the message number, if it has a %): "before-ready" at once, "after-ready"
# after its own READY=1 and a SIGUSR1 (its pid is in <plan>.pid). It then
# sends BARRIER=1, as sd_notify_barrier(3) does: once handoff answers it,
# handoff has read the whole flood, and <plan>.done appears.
_FLOODING_APP = r"""
import array, os, signal, socket, sys
fixture, args_file, base = sys.argv[1:4]
plan = base + "." + os.environ["HANDOFF_GENERATION"]
if os.path.exists(plan):
    when, count, text = open(plan).read().split(" ", 2)
    addr = os.environ["NOTIFY_SOCKET"]
    addr = "\0" + addr[1:] if addr.startswith("@") else addr
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if when == "after-ready":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        with open(plan + ".pid", "w") as f:
            f.write(str(os.getpid()))
        s.sendto(b"READY=1", addr)
        signal.sigwait({signal.SIGUSR1})
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    for i in range(int(count)):
        s.sendto((text % i if "%" in text else text).encode(), addr)
    r, w = os.pipe()
    s.sendmsg([b"BARRIER=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))], 0, addr)
    os.close(w)
    os.read(r, 1)
    os.close(r)
    s.close()
    open(plan + ".done", "w").close()
os.execv(fixture, [fixture, *open(args_file).read().split()])
"""


def flooding(tmp, generation, when, count, text):
    """The command of generations of which this one floods as
    _FLOODING_APP says, and the plan's path."""
    base = os.path.join(tmp, "flood")
    plan = f"{base}.{generation}"
    with open(plan, "w") as f:
        f.write(f"{when} {count} {text}")
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, "--init-delay", "50")
    return ["/usr/bin/env", "python3", "-c", _FLOODING_APP, FIXTURE, args_file, base], plan


def test_relayed_flood_does_not_crowd_out_the_reload(tmp):
    """The serving generation sends 2,500 STATUS= lines, each with
    WATCHDOG=1 in the same datagram (the common sd_notify pattern), while
    the manager does not read. Of those only the latest STATUS= and
    WATCHDOG=1 wait, each alone: the reload's RELOADING=1 and READY=1 still
    find room, and arrive in order once the manager reads again (before,
    every one of those datagrams waited, the outbox filled, and the reload
    was never reported done: under systemd it hangs until
    TimeoutStartSec=)."""
    port = free_port()
    cmd, plan = flooding(tmp, 1, "after-ready", 2500, "STATUS=busy %d\nWATCHDOG=1")
    notify = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}"], cmd, notify=notify)
    try:
        h.wait_ready(1)
        first = int(open(plan + ".pid").read())
        first_ready = notify.wait_count("READY", 1)
        notify.pause()
        filled = notify.fill()
        os.kill(first, signal.SIGUSR1)
        wait_for(lambda: os.path.exists(plan + ".done"), 30, "the flood read by handoff")
        wait_for(lambda: serving_pid(port) == first, 10, "generation 1 serving")
        h.signal(signal.SIGHUP)
        if MODE == "supervise":
            h.wait_log("serves; retiring generation 1", timeout=20)
        else:
            h.wait_log("MAINPID= waits for room", timeout=20)
        check("Failed to notify service manager" not in h.log(), h.log()[-3000:])
        notify.resume()
        h.wait_ready(2, timeout=20)
        if MODE == "handover":
            h.wait_log("MAINPID= is sent", timeout=5)
        msgs = [m for m in notify.snapshot() if "X_FILLER" not in m.fields]
        check(len(notify.snapshot()) - len(msgs) == filled, f"the {filled} fillers first")
        msgs = msgs[msgs.index(first_ready) + 1:]
        kinds = [k for m in msgs for k in ("READY", "RELOADING") if k in m.fields]
        check(kinds == ["RELOADING", "READY"], f"the reload's RELOADING=1, then READY=1: {kinds}")
        busy = [m for m in msgs if "busy" in m.fields.get("STATUS", "")]
        watchdog = [m for m in msgs if "WATCHDOG" in m.fields]
        check(len(busy) <= 2 and len(watchdog) <= 2, f"only the latest waited: {len(busy)} STATUS=, "
              f"{len(watchdog)} WATCHDOG= of 2,500")
        check(any("busy 2499" in m.fields.get("STATUS", "") for m in msgs), f"the latest STATUS= arrived: {msgs}")
        check(h.stop() == 0, h.log())
    finally:
        notify.resume()
        h.close()


def test_relayed_flood_does_not_crowd_out_the_start(tmp):
    """The first generation sends 2,200 ERRNO=1 before it is ready while the
    manager does not read (more than may wait): only the latest waits, and
    the start's READY=1 arrives once the manager reads again (before, it
    found the outbox full and was dropped: under systemd the start fails
    at TimeoutStartSec=)."""
    port = free_port()
    cmd, plan = flooding(tmp, 1, "before-ready", 2200, "ERRNO=1")
    notify = FakeSystemd(tmp)
    notify.pause()
    filled = notify.fill()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}"], cmd, notify=notify)
    try:
        wait_for(lambda: os.path.exists(plan + ".done"), 30, "the flood read by handoff")
        h.wait_log("Generation 1 (", timeout=20)
        h.wait_log(") is ready after", timeout=20)
        check("Failed to notify service manager" not in h.log(), h.log()[-3000:])
        notify.resume()
        h.wait_ready(1, timeout=20)
        msgs = [m for m in notify.snapshot() if "X_FILLER" not in m.fields]
        check(len(notify.snapshot()) - len(msgs) == filled, f"the {filled} fillers first")
        check(sum("ERRNO" in m.fields for m in msgs) <= 1, f"only the latest ERRNO= waited: {msgs[:10]}")
        check(h.stop() == 0, h.log())
    finally:
        notify.resume()
        h.close()


def test_stop_while_mainpid_waits_for_room(tmp):
    """A stop while MAINPID= waits for room on the manager's socket: the
    next handoff is stopped with the rest, and the MAINPID= that would name
    it never goes out, not even when the manager reads again while handoff
    still stops."""
    if MODE != "handover":
        raise Skip("MAINPID= is handover mode's")
    port = free_port()
    notify = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}"], fixture_cmd(None, "--init-delay", "50", "--grace-ms", "300"),
                notify=notify)
    try:
        h.wait_ready(1)
        notify.pause()
        filled = notify.fill()
        h.signal(signal.SIGHUP)
        h.wait_log("MAINPID= waits for room", timeout=20)
        h.signal(signal.SIGTERM)
        h.wait_log("Stop requested", timeout=10)
        # The manager reads again while the generations drain (300 ms).
        notify.resume()
        rc = h.wait_exit()
        check(rc == 0, f"exit {rc}: {h.log()}")
        check(not h.descendants(), "the next handoff and both generations are gone")
        wait_for(lambda: notify.count("X_FILLER") >= filled, 10, "the fillers read")
        # Behind anything handoff ever sent: once it is read, all of that is.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            probe.sendto(b"X_PROBE=1", notify.path)
        notify.wait_count("X_PROBE", 1)
        check(notify.count("MAINPID") == 0, f"no MAINPID=: {notify.snapshot()}")
    finally:
        notify.resume()
        h.close()


def test_next_handoff_dies_while_mainpid_waits_for_room(tmp):
    """The next handoff dies while its MAINPID= waits for room: systemd
    names the old main still, so this is a reload that failed like any
    other. Generation 1 serves on (it was retired, and handoff exited 0,
    before), MAINPID= never goes out, and the next reload succeeds."""
    if MODE != "handover":
        raise Skip("MAINPID= is handover mode's")
    port = free_port()
    notify = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}"], fixture_cmd(None, "--init-delay", "50"),
                notify=notify)
    try:
        h.wait_ready(1)
        first = serving_pid(port)
        notify.pause()
        filled = notify.fill()
        h.signal(signal.SIGHUP)
        h.wait_log("MAINPID= waits for room", timeout=20)
        nexts = [p for p in h.descendants(standby=False) if is_handoff(p)]
        check(len(nexts) == 1, f"one next handoff: {nexts}")
        os.kill(nexts[0], signal.SIGKILL)
        h.wait_log("Reload failed: ", timeout=10)
        wait_for(lambda: h.descendants(standby=False) == [first], 20, "only generation 1 left")
        check(h.proc.poll() is None and serving_pid(port) == first, "handoff and generation 1 serve on")
        notify.resume()
        wait_for(lambda: notify.count("X_FILLER") >= filled, 10, "the fillers read")
        h.wait_ready(2, timeout=10)
        check("failed" in h.last_status(), h.last_status())
        check(notify.count("MAINPID") == 0, f"no MAINPID=: {notify.snapshot()}")
        h.signal(signal.SIGHUP)
        h.wait_ready(3, timeout=20)
        wait_new_pid(port, first)
        check(len(h.mains()) == 2, f"the next reload hands over: {notify.snapshot()}")
        check(h.stop() == 0, h.log())
    finally:
        notify.resume()
        h.close()


def test_twenty_reloads_under_load(tmp):
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp, mode="new", concurrency=4)
    try:
        wait_for(lambda: os.path.exists(h.logpath), 5, "log")
        pid = serving_pid(h.port)
        pids = {pid}
        # Each reload is asked for once the load reaches the generation
        # serving: every one of them is reloaded under load, however slowly
        # the load runs beside it.
        load.wait_answered_by(pid)
        for i in range(20):
            reload_and_wait(h, i + 2)
            pid = wait_new_pid(h.port, pid)
            pids.add(pid)
            load.wait_answered_by(pid)
        res = load.stop()
        check(res["failed"] == 0, f"failed requests during reloads: {res}")
        check(res["ok"] > 100, f"load actually ran: {res}")
        check(len(pids) == 21, f"21 generations served: {pids}")
        check({int(p) for p in res["pids"]} == pids, f"load saw every generation: {res['pids']} {pids}")
        check(h.stop() == 0, h.log())
        check(not h.descendants(), "nothing left")
    finally:
        if load.proc.poll() is None:
            load.proc.kill()
        h.close()


def test_keepalive_load_across_reloads(tmp):
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp, mode="keepalive", concurrency=4)
    try:
        for i in range(10):
            reload_and_wait(h, i + 2)
        res = load.stop()
        check(res["failed"] == 0, f"failed keep-alive requests: {res}")
        check(len(res["pids"]) >= 5, f"keep-alive clients moved to new generations: {res['pids']}")
    finally:
        if load.proc.poll() is None:
            load.proc.kill()
        h.close()


def test_slow_request_survives_reload(tmp):
    h = start(tmp)
    try:
        old = serving_pid(h.port)
        slow = SlowRequest(h.port, 1500)
        wait_for(slow.connected.is_set, 5, "slow request connected")
        reload_and_wait(h, 2)
        wait_new_pid(h.port, old)
        slow.join(timeout=20)
        check(slow.error is None, f"slow request failed: {slow.error}")
        check(slow.status == 200 and slow.pid == old, f"completed by the old generation: {slow.status} {slow.pid}")
        wait_for(lambda: "Retired generation 1" in h.log(), 10, "old generation exits after draining")
    finally:
        h.close()


def check_rollback(h, cause, load):
    old = serving_pid(h.port)
    n_ready = h.notify.count("READY")
    h.signal(signal.SIGHUP)
    h.wait_ready(n_ready + 1, timeout=20)
    res = load.stop()
    check(res["failed"] == 0, f"requests failed during a failed reload: {res}")
    check(serving_pid(h.port) == old, "the old generation still serves")
    check(list(res["pids"]) == [str(old)], f"only the old generation ever answered: {res['pids']}")
    log = h.log()
    check(cause in log, f"cause {cause!r} not logged:\n{log}")
    last_ready = [m for m in h.notify.snapshot() if "READY" in m.fields][-1]
    st = last_ready.fields["STATUS"]
    check(re.search(r"\d+ failed; last: generation \d+ failed: ", st) and not st.endswith(" 0 failed"),
          f"STATUS names the failure: {last_ready}")
    wait_for(lambda: h.descendants(standby=False) == [old], 10, f"only the old generation runs: {h.descendants()}")
    return old


def test_failing_candidate_rolls_back(tmp):
    h = start(tmp)
    try:
        load = Load(f"127.0.0.1:{h.port}", tmp)
        set_args(h.args_file, "--init-delay", "100", "--fail-at-start")
        check_rollback(h, "Generation 2 (", load)
        check("failed to start: exited with status 3" in h.log(), h.log())
        # A good reload afterwards works.
        set_args(h.args_file, "--init-delay", "50")
        old = serving_pid(h.port)
        reload_and_wait(h, h.notify.count("READY") + 1)
        wait_new_pid(h.port, old)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_hanging_candidate_rolls_back(tmp):
    h = start(tmp, "--start-timeout", "700ms", "--drain-timeout", "500ms")
    try:
        load = Load(f"127.0.0.1:{h.port}", tmp)
        set_args(h.args_file, "--hang-at-start", "--ignore-sigterm")
        check_rollback(h, "did not become ready within 700ms", load)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_missing_executable_rolls_back(tmp):
    """The binary vanished during a deploy: the reload fails with a clear
    cause and the old generation serves on."""
    port = free_port()
    app = os.path.join(tmp, "app")
    os.symlink(FIXTURE, app)
    notify = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}"], [app], notify=notify)
    h.port = port
    try:
        h.wait_ready(1)
        load = Load(f"127.0.0.1:{port}", tmp)
        os.unlink(app)
        check_rollback(h, f"Cannot start generation 2: {app}: No such file or directory", load)
        os.symlink(FIXTURE, app)
        reload_and_wait(h, 3)
        check("reload to generation 3 ok" in [m for m in notify.snapshot() if "READY" in m.fields][-1].text,
              "the next reload, with the binary back, succeeds")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_without_close_range(tmp):
    """Where close_range(2) fails (Linux before 5.9, or a container runtime
    whose seccomp profile predates it: EPERM), every start still closes what
    the server must not inherit: a fd handoff inherited without CLOEXEC is
    not the server's, the first generation's nor a reload's (in handover
    mode started by the standby, which lays out its fds the same way)."""
    prefix = seccomp_prefix(NO_CLOSE_RANGE)
    port = free_port()
    out = os.path.join(tmp, "fds")
    script = f'ls /proc/$$/fd > {out}.$HANDOFF_GENERATION; exec {shlex.quote(FIXTURE)} --init-delay 0'
    opened = os.open(os.path.join(tmp, "stray"), os.O_WRONLY | os.O_CREAT)
    stray = fcntl.fcntl(opened, fcntl.F_DUPFD_CLOEXEC, 40)
    os.close(opened)
    notify = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}"], ["/bin/sh", "-c", script], notify=notify,
                wrapper=prefix, pass_fds=[stray])
    os.close(stray)
    h.port = port
    try:
        h.wait_ready(1)
        check(str(stray) in os.listdir(f"/proc/{h.pid}/fd"), f"handoff inherited fd {stray}")
        if MODE == "handover":
            wait_for(lambda: [p for p in h.standbys() if (stat_fields(p) or "?")[0] == "S"], 10,
                     f"the standby, waiting; log:\n{h.log()}")
        reload_and_wait(h, 2)
        if MODE == "handover":
            check("for generation 2 (the standby)." in h.log(), f"started by the standby; log:\n{h.log()}")
        for n in (1, 2):
            fds = sorted(int(x) for x in open(f"{out}.{n}").read().split())
            # ls itself opens one directory while listing.
            check(fds[:4] == [0, 1, 2, 3] and len(fds) <= 5 and stray not in fds,
                  f"fds in generation {n}: {fds} (fd {stray} is handoff's stray)")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_working_directory_followed_at_each_start(tmp):
    """A deploy with release directories: --working-directory names the
    symlink a deploy switches, and each generation starts in what it
    points to then, running that release's own ./server, also once the
    release handoff started in is deleted. When it points nowhere, the
    reload fails with the cause named and the serving release serves on."""
    releases, current = os.path.join(tmp, "releases"), os.path.join(tmp, "current")
    for name in ("a", "b"):
        os.makedirs(os.path.join(releases, name))
        server = os.path.join(releases, name, "server")
        with open(server, "w") as f:
            f.write(f"#!/bin/sh\nexec {shlex.quote(FIXTURE)} --init-delay 50 --status release-{name}\n")
        os.chmod(server, 0o755)

    def deploy(name):
        new = current + ".new"
        os.symlink(os.path.join(releases, name), new)
        os.rename(new, current)

    def serves(name, old=None):
        pid = wait_new_pid(h.port, old) if old else serving_pid(h.port)
        cwd = os.readlink(f"/proc/{pid}/cwd")
        check(cwd == os.path.realpath(os.path.join(releases, name)), f"generation pid {pid} runs in {cwd}, not {name}")
        st = [m for m in h.notify.snapshot() if "READY" in m.fields][-1].fields["STATUS"]
        check(st.endswith(f"; app: release-{name}"), f"release {name}'s own ./server: {st}")
        return pid

    deploy("a")
    # Started in release a, as systemd's WorkingDirectory= would start it.
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}", f"--working-directory={current}"],
                ["./server"], notify=FakeSystemd(tmp), cwd=os.path.join(releases, "a"))
    h.port = port
    try:
        h.wait_ready(1)
        a = serves("a")
        deploy("b")
        shutil.rmtree(os.path.join(releases, "a"))
        reload_and_wait(h, 2)
        b = serves("b", old=a)
        wait_for(lambda: not pid_alive(a), 10, f"release a's generation {a} to exit")
        # (check_rollback() counts the processes of a first handoff's session.)
        before = h.descendants(standby=False)
        load = Load(f"127.0.0.1:{h.port}", tmp)
        deploy("c")
        reload_and_wait(h, 3)
        res = load.stop()
        check(res["failed"] == 0 and list(res["pids"]) == [str(b)], f"only release b answered, always: {res}")
        check(f"Cannot start generation 3: cannot change to working directory {current}: No such file or directory"
              in h.log(), h.log())
        st = [m for m in h.notify.snapshot() if "READY" in m.fields][-1].fields["STATUS"]
        check("1 failed; last: generation 3 failed: " in st and st.endswith("; app: release-b"), st)
        # (The previous handoff of handover mode may exit meanwhile.)
        wait_for(lambda: set(h.descendants(standby=False)) <= set(before), 10, "nothing left of generation 3")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_bad_config_candidate_rolls_back(tmp):
    h = start(tmp)
    try:
        load = Load(f"127.0.0.1:{h.port}", tmp)
        set_args(h.args_file, "--init-delay")  # the fixture rejects a missing value
        check_rollback(h, "Generation 2", load)
        check("failed to start: exited with status 1" in h.log(), h.log())
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_timeouts_past_the_clock_are_none(tmp):
    """--start-timeout and --drain-timeout of 584,542 years (finite; so that
    with the next handoff's 5 s margin too it stays below infinity) run
    past the 64-bit clock from any now: no deadline, as systemd's
    usec_add() makes it infinity. Arming the timers failed with EOVERFLOW:
    a handover reload failed at once ("Failed to watch the next handoff"),
    and each start and stop logged the failure."""
    huge = "18446744073704551614us"  # UINT64_MAX - 5 s - 1 us
    h = start(tmp, f"--start-timeout={huge}", f"--drain-timeout={huge}")
    try:
        old = serving_pid(h.port)
        set_args(h.args_file, "--init-delay", "1000")
        reload_and_wait(h, 2)
        wait_new_pid(h.port, old)
        check("reload to generation 2 ok" in h.last_status(), f"{h.last_status()}; log:\n{h.log()}")
        check(h.stop() == 0, h.log())
        check("Value too large" not in h.log(), h.log())
    finally:
        h.close()


def test_reloads_coalesce(tmp):
    """Five SIGHUPs during a reload start exactly one more generation after it."""
    h = start(tmp, args=("--init-delay", "400"))
    try:
        h.signal(signal.SIGHUP)
        h.wait_log("Started generation 2")
        for _ in range(5):
            h.signal(signal.SIGHUP)
        h.wait_ready(3, timeout=20)
        # Only once the queue has drained can "no generation 4" be asserted:
        # wait for the third READY and for generation 2's retirement.
        h.wait_log("Retired generation 2")
        log = h.log()
        check("Started generation 3" in log and "Started generation 4" not in log, log)
        check(h.notify.count("RELOADING") == 2, f"two reloads: {h.notify.snapshot()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_sigterm_during_reload_aborts(tmp):
    h = start(tmp, args=("--init-delay", "100"))
    try:
        set_args(h.args_file, "--hang-at-start")
        h.signal(signal.SIGHUP)
        h.wait_log("Started generation 2")
        check(h.stop() == 0, h.log())
        check(not h.descendants(), f"candidate and old generation both gone: {h.descendants()}")
        msgs = [m for m in h.notify.snapshot() if "STOPPING" in m.fields or "READY" in m.fields]
        check("STOPPING" in msgs[-1].fields, f"stopping last: {msgs}")
    finally:
        h.close()


def test_serving_dies_during_reload_recovers(tmp):
    """The old generation dying mid-reload does not abort the reload, and
    the reload is reported as the success it is (it was "reload failed: "
    with no reason, and ExecReload= failed with it)."""
    h = start(tmp, args=("--init-delay", "100"))
    try:
        old = serving_pid(h.port)
        set_args(h.args_file, "--init-delay", "600")
        ctl = subprocess.Popen([HANDOFFCTL, "reload", f"--pid={h.main_pid()}"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        h.wait_log("Started generation 2")
        os.kill(old, signal.SIGKILL)
        out, err = ctl.communicate(timeout=30)
        check(ctl.returncode == 0 and out.startswith("reloaded: generation 2,"),
              f"the reload succeeded: exit {ctl.returncode}, {out!r}, {err!r}\n{h.log()}")
        h.wait_ready(2, timeout=20)
        wait_new_pid(h.port, old)
        check(pid_alive(h.main_pid()), "the main handoff still runs")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_serving_dies_then_candidate_fails_exit_status(tmp):
    """The serving generation dies during a reload, and then the candidate
    fails too: the service ends, with the serving generation's status
    (128 + SIGKILL), as when it dies alone; the candidate's (3) replaced it
    (found by a reviewer)."""
    h = start(tmp, args=("--init-delay", "100"))
    try:
        old = serving_pid(h.port)
        set_args(h.args_file, "--init-delay", "600", "--fail-at-start")
        h.signal(signal.SIGHUP)
        h.wait_log("Started generation 2")
        os.kill(old, signal.SIGKILL)
        h.wait_log("failed to start: exited with status 3")
        code = h.wait_exit()
        check(code == 128 + signal.SIGKILL, f"exit {code}, the serving generation's; log:\n{h.log()}")
    finally:
        h.close()


def test_workers_are_retired_with_their_generation(tmp):
    h = start(tmp, "--drain-timeout", "2s", args=("--workers", "3"))
    try:
        before = set(h.app_pids())
        check(len(before) == 4, f"parent and 3 workers: {before}")
        reload_and_wait(h, 2)
        wait_for(lambda: not (before & set(h.app_pids())), 10, "old parent and workers gone")
        # Waited for, not sampled: a sanitizer build forks a short-lived helper
        # as an instrumented process exits.
        wait_for(lambda: len(h.app_pids()) == 4, 10, f"new parent and 3 workers: {h.app_pids()}")
        check(h.stop() == 0, h.log())
        check(not h.descendants(), "no worker left")
    finally:
        h.close()



def test_reload_continues_a_stopped_process_group(tmp):
    """SIGTTIN (a server reading the tty it is in the background of) stops
    the whole process group, workers too. The retiring generation's main
    gets the stop signal and SIGCONT; its workers must be continued too, or
    they never act on the SIGTERM their main passes on, and the main,
    waiting for them, holds the generation to its drain deadline."""
    worker = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(1000)"
    main = f"python3 -c '{worker}' & w=$!; trap 'kill -TERM $w; wait $w; exit 0' TERM; wait $w"
    h = Handoff(tmp, ["-l", f"127.0.0.1:{free_port()}", f"--mode={MODE}", "--ready=delay:300ms",
                      "--drain-timeout=60s"], ["/bin/sh", "-c", main], notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1)
        gen1 = wait_for(lambda: children_of(h.proc.pid), 10, "generation 1")[0]
        w1 = wait_for(lambda: children_of(gen1), 10, "generation 1's worker")[0]
        os.killpg(gen1, signal.SIGSTOP)
        wait_for(lambda: stat_fields(gen1)[0] == "T" and stat_fields(w1)[0] == "T", 10, "generation 1 stopped")
        reload_and_wait(h, 2)
        wait_for(lambda: not pid_alive(w1) and not pid_alive(gen1), 15,
                 "generation 1 continued and gone long before its drain deadline")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


# A server that appends each signal it gets to signals.<its generation> and
# exits 0 on any but SIGCONT (which follows the stop signal, and which
# Python may run the handler of first: it runs them in signal order).
SIGNAL_RECORDER = """
import os, signal, socket, sys
log = open(os.path.join(sys.argv[1], "signals." + os.environ["HANDOFF_GENERATION"]), "a", buffering=1)
def on(sig, frame):
    log.write(f"{sig}\\n")
    if sig != signal.SIGCONT:
        os._exit(0)
for sig in set(range(1, signal.NSIG)) - {signal.SIGKILL, signal.SIGSTOP, 32, 33}:
    signal.signal(sig, on)
addr = os.environ["NOTIFY_SOCKET"]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as n:
    n.sendto(b"READY=1", "\\0" + addr[1:] if addr.startswith("@") else addr)
while True:
    signal.pause()
"""


def test_real_time_stop_signal(tmp):
    """--stop-signal=SIGRTMIN+2, as systemd's KillSignal= takes it: glibc's
    SIGRTMIN (34) + 2, not the kernel's 32 + 2, is what a generation gets,
    replaced by a reload and at the stop."""
    def received(n):
        path = os.path.join(tmp, f"signals.{n}")
        return os.path.exists(path) and {int(l) for l in open(path).read().split()} - {signal.SIGCONT}

    h = Handoff(tmp, ["-l", f"127.0.0.1:{free_port()}", f"--mode={MODE}", "--stop-signal=SIGRTMIN+2"],
                ["/usr/bin/python3", "-c", SIGNAL_RECORDER, tmp], notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1)
        reload_and_wait(h, 2)
        got = wait_for(lambda: received(1), 10, f"generation 1's stop signal; log:\n{h.log()}")
        check(got == {signal.SIGRTMIN + 2}, f"generation 1 got {got}, not only SIGRTMIN+2; log:\n{h.log()}")
        check(h.stop() == 0, h.log())
        check(received(2) == {signal.SIGRTMIN + 2}, f"generation 2 got {received(2)}; log:\n{h.log()}")
    finally:
        h.close()


if __name__ == "__main__":
    run([v for k, v in sorted(globals().items()) if k.startswith("test_")])
