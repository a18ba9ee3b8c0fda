#!/usr/bin/python3
"""Handover mode against a fake systemd: MAINPID moves to a new handoff
process that systemd (here: the test, a child subreaper) adopts; the old one
drains and exits; every way a next handoff can fail leaves the old main serving
and nothing behind. The reload tests in test-reload.py also run in this mode."""

import os
import re
import shutil
import signal
import subprocess
import time

from handofftest.handoff import FIXTURE, HANDOFF, Handoff, fixture_cmd, set_args, status_json, unprivileged
from handofftest.load import Load
from handofftest.net import free_port, serving_pid, wait_new_pid
from handofftest.notify import FakeSystemd, HoldingSystemd
from handofftest.procs import all_pids, environ_of, is_handoff, is_standby, pid_alive, ppid_of, stat_fields
from handofftest.runner import Skip, run
from handofftest.wait import check, wait_for

HANDOFF_NEXT = os.environ.get("HANDOFF_NEXT_BIN", "build/src/handoff-next")
STORE_SERVER = os.environ.get("STORE_SERVER", "build/tests/fixtures/store-server")


def start(tmp, *extra, args=("--init-delay", "100"), env=None):
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, *args)
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=handover", *extra], fixture_cmd(args_file), notify=fake,
                env=env)
    h.port, h.args_file = port, args_file
    h.wait_ready(1)
    return h


def reload_and_wait(h, n_ready):
    h.signal(signal.SIGHUP)
    h.wait_ready(n_ready, timeout=20)



def test_mainpid_moves_to_adopted_next_handoff(tmp):
    h = start(tmp)
    try:
        old_app = serving_pid(h.port)
        reload_and_wait(h, 2)
        mains = h.mains()
        check(len(mains) == 2, f"one MAINPID: {mains}")
        new = mains[1]
        check(is_handoff(new), f"MAINPID {new} is a handoff process")
        check(ppid_of(new) == os.getpid(), f"its parent is the service manager ({os.getpid()}), not the old "
                                           f"handoff: {ppid_of(new)}")
        msg = [m for m in h.notify.snapshot() if "MAINPID" in m.fields][0]
        check(msg.pid == h.pid, "the old main sent MAINPID=, while it was still main")
        check(h.proc.wait(timeout=20) == 0, "the old handoff exits 0")
        check("Retired generation 1" in h.log(), "after its app drained")
        check(not pid_alive(old_app), "the old app is gone")
        wait_new_pid(h.port, old_app)
        check(h.stop() == 0, h.log())
        check(not h.descendants(), f"nothing left: {h.descendants()}")
    finally:
        h.close()


def test_five_reloads_each_move_mainpid(tmp):
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        for i in range(5):
            reload_and_wait(h, i + 2)
            wait_for(lambda: not pid_alive(h.mains()[-2]), 10, "the previous main exits")
        mains = h.mains()
        check(len(set(mains)) == 6, f"six distinct mains: {mains}")
        check([pid_alive(p) for p in mains] == [False] * 5 + [True], "only the newest is alive")
        res = load.stop()
        check(res["failed"] == 0, f"no failed request: {res}")
        check(h.stop() == 0, h.log())
    finally:
        if load.proc.poll() is None:
            load.proc.kill()
        h.close()


def test_listen_named_like_an_entry_of_systemds_fd_store(tmp):
    """A --listen named handoff.store.x (or a unit's socket with that
    FileDescriptorName=): the next handoff took its predecessor's socket
    of that name for an entry of systemd's fd store, kept it as a stored
    fd, bound the address anew and failed the reload ("Address already in
    use"). A next handoff's sockets are all its predecessor's listeners."""
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, "--init-delay", "100")
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}=handoff.store.x", "--mode=handover"], fixture_cmd(args_file),
                notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1)
        old_app = serving_pid(port)
        h.signal(signal.SIGHUP)
        wait_for(lambda: "Took over as the main process" in h.log() or "Reload failed" in h.log(), 20,
                 f"the reload's end; log:\n{h.log()}")
        check("Reload failed" not in h.log() and "Recovered stored fd" not in h.log(), h.log())
        new_app = wait_new_pid(port, old_app)
        check(environ_of(new_app).get("LISTEN_FDNAMES") == "handoff.store.x", environ_of(new_app))
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def next_handoff_pid(h, number):
    m = wait_for(lambda: re.search(rf"Started the next handoff: pid (\d+), for generation {number}(?: \(the standby\))?\.", h.log()), 10,
                 f"the next handoff for generation {number}")
    return int(m.group(1))


def test_next_handoff_killed_rolls_back(tmp):
    h = start(tmp)
    try:
        old = serving_pid(h.port)
        set_args(h.args_file, "--init-delay", "3000")
        h.signal(signal.SIGHUP)
        succ = next_handoff_pid(h, 2)
        h.wait_log("Started generation 2")
        left = h.runtime_files(succ)
        wait_for(lambda: all(os.path.exists(p) for p in left), 10, f"premise: {left} exist")
        os.kill(succ, signal.SIGKILL)
        h.wait_ready(2)
        # Killed, it could not remove its runtime files: the old main does.
        h.wait_log(f"Removed the control socket and the notify directory left in the runtime directory by "
                   f"pid {succ}, which was killed.")
        check(not any(os.path.exists(p) for p in left), f"{left} removed")
        check("next handoff (pid %d) exited" % succ in h.log() or "closed its channel" in h.log(), h.log())
        check(h.mains() == [h.pid], "MAINPID never moved")
        check(serving_pid(h.port) == old, "the old generation serves")
        last = [m for m in h.notify.snapshot() if m.fields.get("READY") == "1"][-1]
        check("1 failed; last: generation 2 failed: " in last.fields["STATUS"], last)
        wait_for(lambda: h.descendants(standby=False) == [old], 10, f"the next handoff's app was killed too: {h.descendants()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_old_main_killed_after_mainpid_before_takeover(tmp):
    """The old main is killed (SIGKILL, the OOM killer) after MAINPID= named
    the next handoff and before it told it to take over: systemd names the
    next handoff main already (it applies a dead sender's MAINPID= before
    its SIGCHLD), so an abort would end the service. The next handoff takes
    over by itself (NAMED came before the end of file), says READY=1,
    retires the old generation (stop signal, through the pidfd the old main
    passed) and serves on; no request fails and the next reload works. The
    unix socket file the old main made is removed at the final stop: its
    path came before NAMED."""
    port = free_port()
    sock = os.path.join(tmp, "app.sock")
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, "--init-delay", "100")
    fake = HoldingSystemd(tmp, hold=False)
    h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{port}", "-l", f"unix:{sock}", "--mode=handover",
                      "--drain-timeout=20s"], fixture_cmd(args_file), notify=fake)
    h.port = port
    load = None
    try:
        h.wait_ready(1)
        old_app = serving_pid(port)
        load = Load(f"127.0.0.1:{port}", tmp)
        fake.hold = True
        h.signal(signal.SIGHUP)
        # The barrier follows MAINPID= and NAMED: the old main waits for it.
        wait_for(fake.barriers.is_set, 20, f"MAINPID= sent, barrier held; log:\n{h.log()}")
        succ = h.main_pid()
        check(succ != h.pid, f"MAINPID= names the next handoff: {h.mains()}")
        os.kill(h.pid, signal.SIGKILL)
        check(h.proc.wait(timeout=10) == -signal.SIGKILL, "the old main is killed")
        fake.release()
        h.wait_log(f"handoff[{succ}]: The previous handoff is gone after it had named this one main", 10)
        # READY=1 of its own, once it has taken over, and the reload counted.
        ready = wait_for(lambda: [m for m in fake.snapshot() if m.pid == succ and m.fields.get("READY") == "1"], 10,
                         f"READY=1 from the next handoff {succ}; log:\n{h.log()}")[0]
        check(re.match(r"Serving generation 2 \(pid \d+\); 1 reloads, 0 failed", ready.fields.get("STATUS", "")),
              f"its READY=1 says what serves: {ready}")
        check(pid_alive(succ), f"the next handoff serves on; log:\n{h.log()}")
        st = status_json(succ)
        own = [g for g in st["generations"] if not g["previous_handoff"]]
        check(st["state"] == "serving" and [g["role"] for g in own] == ["serving"] and own[0]["number"] == 2,
              f"it is main, generation 2 serves: {st}")
        h.wait_log(f"handoff[{succ}]: Retiring the previous handoff's generation (pid {old_app}): sent SIGTERM.")
        # While it retires it, it shows it: exited already, or retiring.
        left = [(g["role"], g["number"], g["pid"]) for g in st["generations"] if g["previous_handoff"]]
        check(left in ([], [("retiring", 1, old_app)]), f"the old generation, retiring: {st}")
        wait_for(lambda: not pid_alive(old_app), 20, f"the old generation {old_app} exits; log:\n{h.log()}")
        h.wait_log(f"handoff[{succ}]: The previous handoff's generation (pid {old_app}) has exited.")
        res = load.stop()
        check(res["failed"] == 0 and res["ok"] > 0, f"no failed request: {res}")
        n = h.ready_count()
        h.signal(signal.SIGHUP)
        h.wait_ready(n + 1, timeout=20)
        check(h.main_pid() not in (h.pid, succ), f"a further reload hands over: {h.mains()}")
        check(os.path.exists(sock), "premise: the socket file serves on")
        check(h.stop() == 0, h.log())
        check(not os.path.exists(sock), f"the socket file is removed at the final stop; log:\n{h.log()}")
    finally:
        if load:
            load.kill()
        h.close()


def test_old_main_killed_before_takeover_stubborn_generation_killed(tmp):
    """As above, but the old generation ignores its stop signal: the next
    handoff that took over by itself SIGKILLs it at the drain deadline the
    old main passed on (3 s here), as the old main would have. Meanwhile
    `handoff status` says something still drains, and a stop would wait."""
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, "--init-delay", "50", "--ignore-sigterm")
    fake = HoldingSystemd(tmp, hold=False)
    h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{port}", "--mode=handover", "--drain-timeout=3s"],
                fixture_cmd(args_file), notify=fake)
    try:
        h.wait_ready(1)
        old_app = serving_pid(port)
        set_args(args_file, "--init-delay", "50")
        fake.hold = True
        h.signal(signal.SIGHUP)
        wait_for(fake.barriers.is_set, 20, f"MAINPID= sent, barrier held; log:\n{h.log()}")
        succ = h.main_pid()
        os.kill(h.pid, signal.SIGKILL)
        fake.release()
        h.wait_log(f"handoff[{succ}]: Retiring the previous handoff's generation (pid {old_app}): sent SIGTERM.")
        st = status_json(succ)
        check(st["predecessor_draining"] and pid_alive(old_app), f"status says it drains: {st}")
        h.wait_log(f"handoff[{succ}]: The previous handoff's generation (pid {old_app}) did not exit in time; "
                   f"sending SIGKILL.", 10)
        wait_for(lambda: not pid_alive(old_app), 10, f"the old generation {old_app} is killed; log:\n{h.log()}")
        check(serving_pid(port) != old_app, "the new generation serves")
        check(h.stop() == 0, h.log())
        check(not h.descendants(), f"nothing left: {h.descendants()}")
    finally:
        h.close()


def reload_to_a_slow_generation(h):
    """A reload to a generation that takes 1 s to start, up to its next
    handoff's start (RELOADING=1 said). Returns the serving generation's
    pid and the next handoff's."""
    old = serving_pid(h.port)
    set_args(h.args_file, "--init-delay", "1000")
    h.signal(signal.SIGHUP)
    h.notify.wait_count("RELOADING", 1)
    return old, next_handoff_pid(h, 2)


def test_mainpid_not_delivered_rolls_back(tmp):
    """systemd cannot be told MAINPID= (here nobody is bound to its socket;
    a full queue alike): it knows the old handoff as its main still, and
    would take that handoff's exit for the service's end. So there is no
    handover: the reload fails, the next handoff is stopped and the old
    generation serves on (it handed over and exited before)."""
    h = start(tmp)
    try:
        old, succ = reload_to_a_slow_generation(h)
        h.notify.close()
        h.wait_log(f"Failed to tell the service manager MAINPID={succ}", 20)
        wait_for(lambda: not pid_alive(succ), 20, f"the next handoff stopped; log:\n{h.log()}")
        check(pid_alive(h.pid) and h.proc.poll() is None, f"the old main runs on:\n{h.log()}")
        check(serving_pid(h.port) == old, "the old generation serves")
        st = status_json(h.pid)
        check(st["reloads_failed"] == 1 and st["reloads_ok"] == 0 and "MAINPID=" in st["last_result"],
              f"a failed reload, and why: {st}")
        # systemd answers again: the next reload hands over.
        h.notify = FakeSystemd(tmp)
        set_args(h.args_file, "--init-delay", "100")
        h.signal(signal.SIGHUP)
        h.wait_ready(1, timeout=20)
        check(len(h.mains()) == 2 and h.mains()[1] != succ, f"MAINPID moved now: {h.mains()}")
        check(h.proc.wait(timeout=20) == 0, "the old handoff exits 0 after the handover")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_mainpid_not_delivered_with_a_reload_pending(tmp):
    """As above, with a second reload asked for meanwhile: the failed
    handover's rollback starts it at once, and aborting the failed next
    handoff is no second failure. Before, the abort reported itself as a
    failure of the reload running by then, the pending one, which was
    rolled back as soon as it started (its waiting client told it failed),
    and the failed one counted twice (found by review)."""
    h = start(tmp)
    try:
        old, succ = reload_to_a_slow_generation(h)
        h.signal(signal.SIGHUP)
        h.wait_log_re(rf"handoff\[{h.pid}\]: Reload requested \(SIGHUP.*\n(.*\n)*.*Reload requested \(SIGHUP", 10)
        h.notify.close()
        h.wait_log(f"Failed to tell the service manager MAINPID={succ}", 20)
        h.notify = FakeSystemd(tmp)
        third = next_handoff_pid(h, 3)
        h.wait_ready(1, timeout=20)
        check(h.mains()[1:] == [third], f"the pending reload handed over to {third}: {h.mains()}")
        log = h.log()
        check("reload aborted" not in log, f"no failure of the abort:\n{log}")
        st = status_json(third)
        check(st["reloads_failed"] == 1 and st["reloads_ok"] == 1, f"one failed, one ok: {st}")
        check(h.proc.wait(timeout=20) == 0, "the old handoff exits 0 after the handover")
        check(serving_pid(h.port) != old, "generation 3 serves")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_reload_while_the_failed_next_handoff_stops(tmp):
    """A reload asked for while the previous reload's next handoff is still
    stopping starts another beside it; the old main keeps watching the
    stopping one, shows it in its status, and does not exit before it (it
    would leave it unbounded)."""
    h = start(tmp, "--start-timeout=1s", "--drain-timeout=8s")
    try:
        set_args(h.args_file, "--hang-at-start", "--ignore-sigterm")
        h.signal(signal.SIGHUP)
        failed = next_handoff_pid(h, 2)
        h.wait_log("Reload failed")
        # Its generation ignores SIGTERM: it stops for up to 8 s, and status
        # shows it doing so, with its deadline (8 s + 5 s).
        st = status_json(h.main_pid())
        stopping = [g for g in st["generations"] if g["role"] == "next-handoff-stopping"]
        check(len(stopping) == 1 and stopping[0]["pid"] == failed and stopping[0]["number"] == 2
              and isinstance(stopping[0]["kill_in_ms"], int) and 0 < stopping[0]["kill_in_ms"] <= 13000,
              f"status while it stops: {st}")
        text = subprocess.run([HANDOFF, "status", f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=10)
        check(re.search(rf"(?m)^next-handoff-stopping generation 2, pid {failed}, .*SIGKILL in ", text.stdout),
              text.stdout)
        set_args(h.args_file, "--init-delay", "100")
        h.signal(signal.SIGHUP)
        h.wait_log("Handed over to handoff pid")
        check(pid_alive(failed), f"premise: the failed next handoff {failed} still stops; log:\n{h.log()}")
        check(h.proc.wait(timeout=20) == 0, h.log())
        check(not pid_alive(failed), f"the old main exited before the next handoff it aborted ({failed})")
        check(h.stop() == 0, h.log())
        check(not h.descendants(), f"nothing left: {h.descendants()}")
    finally:
        h.close()


def test_sighup_to_next_handoff_before_commit_runs_after(tmp):
    """MAINPID may point at the next handoff before it has been told to take
    over, so `kill -HUP $MAINPID` can reach it early: it runs after."""
    h = start(tmp, args=("--init-delay", "400"))
    try:
        h.signal(signal.SIGHUP)
        succ = next_handoff_pid(h, 2)
        h.wait_log("Started generation 2")
        os.kill(succ, signal.SIGHUP)
        h.wait_ready(3, timeout=20)
        log = h.log()
        check(f"handoff[{succ}]: Took over as the main process" in log, log)
        check("Started the next handoff" in log and "for generation 3" in log, log)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_ready_reaches_an_old_main_that_stalled(tmp):
    """The old main does not read its channel for a while (stopped, starved
    of CPU, throttled) while the candidate says many STATUS= lines: they
    fill the channel, and READY, said after them, must still arrive once it
    reads again, with the candidate's last text in the MAINPID= datagram.
    Lost, the old main waited out --start-timeout + 5 s and rolled back a
    generation that was ready."""
    h = start(tmp, "-v", "--start-timeout=3s")
    try:
        set_args(h.args_file, "--init-delay", "1000", "--status-burst", "120")
        h.signal(signal.SIGHUP)
        succ = next_handoff_pid(h, 2)
        h.wait_log(f"handoff[{succ}]: Started generation 2")
        os.kill(h.pid, signal.SIGSTOP)
        try:
            h.wait_log_re(rf"handoff\[{succ}\]: Generation 2 \(.*\) is ready after", 20)
            # Premise: the channel was full when READY was said.
            h.wait_log_re(rf"handoff\[{succ}\]: (The previous handoff is not reading; READY waits|"
                          rf"Failed to report READY)", 10)
        finally:
            os.kill(h.pid, signal.SIGCONT)
        wait_for(lambda: len(h.mains()) == 2 or "Reload failed" in h.log(), 20,
                 f"MAINPID= or a failed reload; log:\n{h.log()}")
        log = h.log()
        check("did not report ready in time" not in log and "Reload failed" not in log, log)
        mains = h.mains()
        check(mains[1:] == [succ], f"MAINPID= names the next handoff {succ}: {mains}")
        msg = [m for m in h.notify.snapshot() if "MAINPID" in m.fields][0]
        check(msg.fields.get("READY") == "1" and "app: burst 120/120 " in msg.fields.get("STATUS", ""),
              f"the MAINPID= datagram has the app's last STATUS=: {msg}")
        check(h.proc.wait(timeout=20) == 0, f"the old handoff exits 0; log:\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        try:
            os.kill(h.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        h.close()


def start_from_copy(tmp, name, where=None):
    """handoff started from a copy of the binary in tmp (or where), which a
    test may then replace or remove, as a package upgrade or a deploy
    would."""
    exe = os.path.join(where or tmp, "handoff")
    shutil.copy(HANDOFF, exe)
    port = free_port()
    fake = FakeSystemd(tmp)
    logpath = os.path.join(tmp, name + ".log")
    env = dict(os.environ, NOTIFY_SOCKET=fake.path)
    with open(logpath, "w") as log:
        p = subprocess.Popen([exe, "-l", f"127.0.0.1:{port}", "--", FIXTURE], env=env, stdout=log,
                             stderr=subprocess.STDOUT)
    return exe, port, fake, logpath, p


def test_broken_handoff_binary_rolls_back(tmp):
    exe, port, fake, logpath, p = start_from_copy(tmp, "broken")
    try:
        wait_for(lambda: fake.count("READY") >= 1, 10, "first start")
        old = serving_pid(port)
        with open(exe + ".new", "w") as f:
            f.write("#!/bin/sh\necho broken handoff >&2\nexit 1\n")
        os.chmod(exe + ".new", 0o755)
        os.rename(exe + ".new", exe)
        os.kill(p.pid, signal.SIGHUP)
        wait_for(lambda: fake.count("READY") >= 2, 20, "the reload ends")
        log = open(logpath).read()
        check("broken handoff" in log and "Reload failed" in log, log)
        check(serving_pid(port) == old, "the old generation serves")
        check(fake.count("MAINPID") == 0, "MAINPID never moved")
        os.kill(p.pid, signal.SIGTERM)
        check(p.wait(timeout=30) == 0, open(logpath).read())
    finally:
        if p.poll() is None:
            p.kill()
        fake.close()


def test_unstartable_handoff_binary_names_its_cause(tmp):
    """A binary left unexecutable by an upgrade (here empty: execve() says
    ENOEXEC): the next handoff cannot be started at all, and the reload's
    result says why, as the log does, not only "could not be started". A
    long path is kept whole (it was cut at 140 bytes)."""
    where = os.path.join(tmp, "opt-" + "a" * 60, "releases", "2026-12-07T07.30.00Z-" + "b" * 100)
    os.makedirs(where)
    exe, port, fake, logpath, p = start_from_copy(tmp, "unstartable", where)
    old = None
    try:
        wait_for(lambda: fake.count("READY") >= 1, 10, "first start")
        old = serving_pid(port)
        open(exe + ".new", "w").close()
        os.chmod(exe + ".new", 0o755)
        os.rename(exe + ".new", exe)
        os.kill(p.pid, signal.SIGHUP)
        wait_for(lambda: fake.count("READY") >= 2, 20, "the reload ends")
        cause = f"cannot start the next handoff {exe}: Exec format error"
        status = [m for m in fake.snapshot() if m.fields.get("READY") == "1"][-1].fields["STATUS"]
        check(f"generation 2 failed: could not be started: {cause}" in status, f"STATUS={status}")
        check(f"Failed to start the next handoff {exe}: Exec format error" in open(logpath).read(),
              open(logpath).read())
        check(serving_pid(port) == old and fake.count("MAINPID") == 0, "the old generation serves on")
        os.kill(p.pid, signal.SIGTERM)
        check(p.wait(timeout=30) == 0, open(logpath).read())
    finally:
        if p.poll() is None:
            p.kill()
        # In handover mode a generation does not die with its handoff.
        if old and pid_alive(old):
            os.kill(old, signal.SIGKILL)
        fake.close()


def test_self_upgrade_on_reload(tmp):
    """The next handoff runs whatever binary now sits at the path handoff was
    started from: a package upgrade takes effect at the next reload, also
    when the standby was started from the old one."""
    exe, port, fake, logpath, p = start_from_copy(tmp, "upgrade")
    try:
        wait_for(lambda: fake.count("READY") >= 1, 10, "first start")
        sb = wait_for(lambda: [q for q in all_pids() if is_standby(q) and (stat_fields(q) or "?")[0] == "S"
                               and ppid_of(q) == os.getpid()], 10, f"the standby; log:\n{open(logpath).read()}")[0]
        before = subprocess.run([f"/proc/{p.pid}/exe", "--version"], capture_output=True, text=True).stdout
        shutil.copy(HANDOFF_NEXT, exe + ".new")
        os.rename(exe + ".new", exe)  # as dpkg replaces a file
        os.kill(p.pid, signal.SIGHUP)
        wait_for(lambda: fake.count("MAINPID") >= 1, 20, "handover")
        new = int([m for m in fake.snapshot() if "MAINPID" in m.fields][0].fields["MAINPID"])
        after = subprocess.run([f"/proc/{new}/exe", "--version"], capture_output=True, text=True).stdout
        check(before.strip() != after.strip() and after.strip().endswith("+next"), f"{before!r} -> {after!r}")
        check(f"Not using the standby handoff (pid {sb}): handoff's file has changed since it started." in
              open(logpath).read(), open(logpath).read())
        os.kill(new, signal.SIGTERM)
        wait_for(lambda: not pid_alive(new), 30, "new main stops")
    finally:
        if p.poll() is None:
            p.kill()
        fake.close()


def test_missing_binary_falls_back_to_proc_self_exe(tmp):
    exe, port, fake, logpath, p = start_from_copy(tmp, "missing")
    try:
        wait_for(lambda: fake.count("READY") >= 1, 10, "first start")
        os.unlink(exe)
        os.kill(p.pid, signal.SIGHUP)
        wait_for(lambda: fake.count("MAINPID") >= 1, 20, "handover despite the missing binary")
        check("is gone; starting the next handoff from /proc/self/exe" in open(logpath).read(), open(logpath).read())
        new = int([m for m in fake.snapshot() if "MAINPID" in m.fields][0].fields["MAINPID"])
        os.kill(new, signal.SIGTERM)
        wait_for(lambda: not pid_alive(new), 30, "new main stops")
    finally:
        if p.poll() is None:
            p.kill()
        fake.close()


def test_stop_right_after_reload_lets_old_generation_drain(tmp):
    """A stop just after a handover: the new main waits for the old handoff,
    still draining a slow request, before it exits (under systemd, whatever
    is left when the main exits is killed)."""
    from harness import SlowRequest
    h = start(tmp)
    try:
        old_app = serving_pid(h.port)
        slow = SlowRequest(h.port, 1500)
        wait_for(slow.connected.is_set, 5, "slow request sent")
        reload_and_wait(h, 2)
        check(pid_alive(h.pid), "the old handoff still drains")
        h.signal(signal.SIGTERM)
        wait_for(lambda: "Waiting for the previous handoff" in h.log(), 5, "the new main waits")
        check(h.wait_exit() == 0, h.log())
        slow.join(timeout=20)
        check(slow.error is None and slow.status == 200 and slow.pid == old_app,
              f"the slow request was answered by the old generation: {slow.status} {slow.pid} {slow.error}")
        # When the new main has exited, the old one must be gone already.
        check(h.proc.poll() == 0, "the old handoff exited (0) before the new main did")
        check(not h.descendants(), f"nothing left: {h.descendants()}")
    finally:
        h.close()


def test_sighup_to_a_stale_main_is_passed_on(tmp):
    """A SIGHUP to the old main while it drains (a stale $MAINPID or pid
    file) is passed on to the new main, which reloads. Once that one has
    exited, the old main passes nothing on: it holds a pidfd of it, so a pid
    given out again meanwhile is never signalled. (The second main, handed
    off, would wait for the first's generation: it holds it to its drain
    deadline too. Here it is killed, as it might be.)"""
    from harness import SlowRequest
    h = start(tmp)
    try:
        slow = SlowRequest(h.port, 3000)
        wait_for(slow.connected.is_set, 5, "slow request sent")
        reload_and_wait(h, 2)
        new = h.mains()[1]
        check(pid_alive(h.pid), "the old handoff still drains")
        # What keeps a reused pid out of reach: a pidfd of the new main.
        infos = [open(f"/proc/{h.pid}/fdinfo/{fd}").read() for fd in os.listdir(f"/proc/{h.pid}/fdinfo")]
        check(any(re.search(rf"^Pid:\s+{new}$", i, re.M) for i in infos), f"the old main holds a pidfd of {new}")
        os.kill(h.pid, signal.SIGHUP)
        h.wait_log(f"handoff[{h.pid}]: Passing SIGHUP on to the main handoff, pid {new}.")
        h.wait_ready(3, timeout=20)
        newest = h.mains()[-1]
        check(newest != new, f"the new main ran the reload and handed over: {h.mains()}")
        h.wait_log(f"handoff[{new}]: Handed over to handoff pid {newest}")
        os.kill(new, signal.SIGKILL)
        check(pid_alive(h.pid), "the first handoff still drains")
        # Reaped here (a zombie still takes signals), as systemd reaps it.
        wait_for(lambda: not os.path.exists(f"/proc/{new}"), 10, "the second main reaped")
        os.kill(h.pid, signal.SIGHUP)
        h.wait_log(f"handoff[{h.pid}]: Ignored SIGHUP: the main handoff this one handed over to, pid {new}, "
                   "has exited.")
        slow.join(timeout=20)
        check(slow.status == 200, f"the slow request was answered: {slow.status} {slow.error}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_pid_file_names_the_main(tmp):
    pidfile = os.path.join(tmp, "handoff.pid")
    h = start(tmp, f"--pid-file={pidfile}")
    try:
        read = lambda: int(open(pidfile).read())
        check(read() == h.pid, "the first main")
        reload_and_wait(h, 2)
        check(read() == h.mains()[-1], f"the new main after a reload: {read()} vs {h.mains()}")
        set_args(h.args_file, "--fail-at-start")
        reload_and_wait(h, 3)
        check(read() == h.mains()[-1], "still the main after a failed reload")
        check(h.stop() == 0, h.log())
        check(not os.path.exists(pidfile), "removed at the final stop")
    finally:
        h.close()


def test_unix_socket_kept_across_handover_removed_at_stop(tmp):
    path = os.path.join(tmp, "app.sock")
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"unix:{path}", "--mode=handover"], fixture_cmd(), notify=fake)
    try:
        h.wait_ready(1)
        reload_and_wait(h, 2)
        wait_for(lambda: not pid_alive(h.pid), 10, "old main exits")
        check(os.path.exists(path), "the socket file survives the old main's exit")
        check(h.stop() == 0, h.log())
        check(not os.path.exists(path), "the last main removes it")
    finally:
        h.close()


def test_sigterm_to_next_handoff_is_not_a_second_stop(tmp):
    """One SIGTERM to the next handoff before it takes over: it gives up and
    stops its generation gracefully. The old main's rollback must not send
    it a second stop signal, which it would take for a second stop request
    and SIGKILL its generation with requests in flight."""
    h = start(tmp, "--drain-timeout=10s")
    try:
        old = serving_pid(h.port)
        load = Load(f"127.0.0.1:{h.port}", tmp)
        set_args(h.args_file, "--init-delay", "1500")
        h.signal(signal.SIGHUP)
        succ = next_handoff_pid(h, 2)
        h.wait_log("Started generation 2")
        os.kill(succ, signal.SIGTERM)
        wait_for(lambda: not pid_alive(succ), 20, f"the next handoff exits; log:\n{h.log()}")
        log = h.log()
        check("Second stop request" not in log, f"a rollback counted as a second stop:\n{log}")
        check(re.search(rf"handoff\[{succ}\]: .*[Gg]eneration 2 \(.*pid \d+\) (exited with status 0|killed by signal SIGTERM)",
                        log), f"its generation stopped on the stop signal, not SIGKILL:\n{log}")
        check(serving_pid(h.port) == old, "the old generation serves on")
        res = load.stop()
        check(res["failed"] == 0, f"requests failed: {res}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_without_manager_next_handoff_goes_to_the_adopter(tmp):
    """Forced --mode=handover with no NOTIFY_SOCKET: no service manager is
    handoff's parent, so the next handoff is not made its parent's child (a
    parent that never reaps, here a wrapper, would keep zombies): it goes to
    whoever adopts orphans, here this process, a child subreaper as systemd
    is. The handoff that was started exits 0 at the reload; the pid file
    names the one serving."""
    port, pid_file, log = free_port(), os.path.join(tmp, "handoff.pid"), os.path.join(tmp, "handoff.log")
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID")}
    # The wrapper starts handoff, says its pid and sleeps, never reaping.
    wrapper = subprocess.Popen(
        ["python3", "-c", "import subprocess, sys, time\n"
         "print(subprocess.Popen(sys.argv[1:]).pid, flush=True)\ntime.sleep(600)",
         HANDOFF, "-l", f"127.0.0.1:{port}", "--mode=handover", f"--pid-file={pid_file}", "--", *fixture_cmd()],
        stdout=subprocess.PIPE, stderr=open(log, "ab"), env=env, start_new_session=True)
    first = new = None
    try:
        first = int(wrapper.stdout.readline())
        wait_for(lambda: serving_pid(port), 20, f"the first generation serves; log:\n{open(log).read()}",
                 retry=OSError)
        old_app = serving_pid(port)
        os.kill(first, signal.SIGHUP)

        def next_serving():
            try:
                with open(pid_file) as f:
                    pid = int(f.read())
            except (OSError, ValueError):
                return None
            return pid if pid != first else None
        new = wait_for(next_serving, 20, f"the pid file to name the next handoff; log:\n{open(log).read()}")
        check(is_handoff(new), f"pid file names {new}, a handoff process")
        check(ppid_of(new) == os.getpid(), f"the next handoff's parent is the adopter ({os.getpid()}), not the "
                                           f"wrapper ({wrapper.pid}): {ppid_of(new)}")
        wait_for(lambda: not pid_alive(first), 20, f"the first handoff exits; log:\n{open(log).read()}")
        wait_new_pid(port, old_app)
    finally:
        if new:
            os.kill(new, signal.SIGTERM)
            if ppid_of(new) == os.getpid():
                check(os.waitpid(new, 0)[1] == 0, f"the next handoff exits 0 on SIGTERM; log:\n{open(log).read()}")
        if first and pid_alive(first):
            os.kill(first, signal.SIGTERM)
        wrapper.kill()
        wrapper.wait()
        # The first handoff, the wrapper's child, is ours once the wrapper
        # is gone: reap it.
        if first:
            wait_for(lambda: os.waitpid(first, os.WNOHANG)[0] == first, 20, "the first handoff to be reaped here")


FDS_IN_FLIGHT = r"""
import os, resource, socket, sys
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
a, b = socket.socketpair()
fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(200)]
for _ in range(8):
    socket.send_fds(a, [b"x"], fds)
print("ready", flush=True)
sys.stdin.read()
"""


def test_reload_with_many_fds_in_flight_of_its_user(tmp):
    """Passing an fd fails (ETOOMANYREFS) once the fds its sender's user
    has in flight on unix sockets outnumber the sender's RLIMIT_NOFILE. The
    next handoff reports its pidfd to handoff just before exec; it did so
    after its file limit went back to the one handoff was started with (1024
    here), so with a server of the same user keeping more in flight (1,600
    here), the report failed unnoticed and every reload failed ("The next
    handoff did not report its pid"). The limit binds no process with
    CAP_SYS_ADMIN: as root, handoff and the holder run as 65534."""
    import resource
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4096:
        raise Skip("the hard RLIMIT_NOFILE is below 4096: no room for 1,600 fds in flight")
    as_user, prlimit, runtime = unprivileged(tmp)
    holder = subprocess.Popen([*as_user, "/usr/bin/python3", "-c", FDS_IN_FLIGHT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    h = None
    try:
        check(holder.stdout.readline().strip() == "ready", "the holder has 1,600 fds in flight")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID")}
        env["RUNTIME_DIRECTORY"] = runtime
        h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=handover"], fixture_cmd(),
                    wrapper=(*as_user, prlimit, "--nofile=1024:"), env=env)
        h.wait_log_re(r"Generation 1 \(.*\) is ready", 20)
        old_app = serving_pid(port)
        os.kill(h.pid, signal.SIGHUP)
        h.wait_log_re(rf"handoff\[{h.pid}\]: Handed over to handoff pid \d+", 20)
        check("did not report its pid" not in h.log(), h.log())
        wait_new_pid(port, old_app)
    finally:
        if h:
            h.close()
        holder.kill()
        holder.wait()


# ---- the standby: the next handoff started ahead --------------------------

def wait_standby(h, but=()):
    """The standby, once started and waiting (and not one of but)."""
    return wait_for(lambda: [p for p in h.standbys() if p not in but and (stat_fields(p) or "?")[0] == "S"], 10,
                    f"a standby handoff, asleep; processes: {h.descendants()}; log:\n{h.log()}")[0]


def test_reload_starts_the_standby(tmp):
    """Between reloads the next handoff waits started ahead, the service
    manager's child; the reload makes it the next main, and that one starts
    a standby of its own. Nothing is left at the stop."""
    h = start(tmp, args=("--init-delay", "0"))
    try:
        sb = wait_standby(h)
        check(ppid_of(sb) == os.getpid(), f"the standby is the manager's child: {ppid_of(sb)}")
        check(is_handoff(sb), f"{sb} runs handoff")
        old_app = serving_pid(h.port)
        reload_and_wait(h, 2)
        check(h.mains()[1] == sb, f"MAINPID names the standby {sb}: {h.mains()}")
        check(f"Started the next handoff: pid {sb}, for generation 2 (the standby)." in h.log(), h.log())
        check(not is_standby(sb), f"{sb} is named handoff again")
        wait_new_pid(h.port, old_app)
        check(h.proc.wait(timeout=20) == 0, "the old main exits 0")
        sb2 = wait_standby(h, but=(sb,))
        check(ppid_of(sb2) == os.getpid(), f"the new main's standby is the manager's child too: {ppid_of(sb2)}")
        st = status_json(sb)
        check(st["standby_pid"] == sb2, f"handoff status names the standby {sb2}: {st}")
        check(h.stop() == 0, h.log())
        check(not h.descendants(), f"nothing left, the standby neither: {h.descendants()}")
    finally:
        h.close()


def test_dead_standby_means_a_cold_start(tmp):
    h = start(tmp, args=("--init-delay", "0"))
    try:
        sb = wait_standby(h)
        os.kill(sb, signal.SIGKILL)
        wait_for(lambda: not pid_alive(sb), 10, "the standby is gone")
        reload_and_wait(h, 2)
        check(f"Not using the standby handoff (pid {sb}): it has exited." in h.log(), h.log())
        check(h.mains()[1] != sb and is_handoff(h.mains()[1]), f"a new next handoff: {h.mains()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_stopped_standby_means_a_cold_start(tmp):
    """A standby stopped (SIGSTOP) would not read its GO until continued:
    the reload starts the next handoff cold, and the stopped one is killed.
    Before, the reload sent it GO and waited for it to the next handoff's
    start timeout (--start-timeout and 5 s), then failed (found by review)."""
    h = start(tmp, args=("--init-delay", "0"))
    try:
        sb = wait_standby(h)
        os.kill(sb, signal.SIGSTOP)
        wait_for(lambda: (stat_fields(sb) or "?")[0] == "T", 10, f"the standby {sb} stopped")
        reload_and_wait(h, 2)
        check(f"Not using the standby handoff (pid {sb}): it is stopped." in h.log(), h.log())
        check(h.mains()[1] != sb and is_handoff(h.mains()[1]), f"a new next handoff: {h.mains()}")
        wait_for(lambda: not pid_alive(sb), 10, "the stopped standby is killed")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_standby_stopped_while_the_fds_do_not_fit_started_again_when_they_do(tmp):
    """A GO carries at most 253 fds (the kernel's SCM_MAX_FD); a reload
    passes on the listeners and the fd store, which the server fills and
    empties while it serves. With 255 to pass on, the standby is stopped
    at once, with one line that says why, not kept for the reload to find
    it cannot be used; the reload starts the next handoff cold, once, which
    takes them all, and not one connection fails. That one keeps no standby
    either; once the server has removed what it stored, it starts one, and
    the next reload uses it. Before, the standby was kept: the reload
    warned "Failed to start the standby handoff, starting one cold", and a
    store that shrank got no standby until a reload had gone cold."""
    port = free_port()
    args_file = os.path.join(tmp, "store.args")
    set_args(args_file, "--store-many", "253", "--many-on-usr1")
    h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{port}", "--mode=handover", "--fd-store-max=254"],
                ["/bin/sh", "-c", f"exec {STORE_SERVER} $(cat {args_file})"], notify=FakeSystemd(tmp))
    load = None
    try:
        h.wait_ready(1)
        sb = wait_standby(h)
        first = h.generation_pid(1)
        load = Load(f"127.0.0.1:{port}", tmp)
        load.wait_answered_by(first)
        # The listener, "state" and 253 more: stored after the standby started.
        os.kill(first, signal.SIGUSR1)
        h.wait_log('Stored fd "extra252" from generation 1.')
        wait_for(lambda: not pid_alive(sb), 10, f"the standby {sb} is stopped; log:\n{h.log()}")
        # Once, as the store passes 253 (at 254), not at each fd stored after.
        stopping = re.findall(r".*more than a standby handoff can take.*", h.log())
        check(stopping == [f"handoff[{h.pid}]: The next reload passes on 254 fds (listening sockets and fd store), "
                           f"more than a standby handoff can take (253): stopping it (pid {sb}) until they fit."],
              f"said once: {stopping}")
        reload_and_wait(h, 2)
        check("Failed to start the standby handoff" not in h.log(), h.log())
        mains = h.mains()
        check(len(mains) == 2, f"MAINPID moved: {mains}; log:\n{h.log()}")
        new = mains[1]
        check(new != sb and is_handoff(new), f"a next handoff started cold: {mains}, the standby was {sb}")
        started = re.findall(r"Started the next handoff: pid \d+, for generation 2.*", h.log())
        check(started == [f"Started the next handoff: pid {new}, for generation 2."], f"started once: {started}")
        second = h.generation_pid(2)
        check(environ_of(second).get("LISTEN_FDS") == "255", f"generation 2 inherits 255 fds: {environ_of(second)}")
        load.wait_answered_by(second)
        res = load.stop()
        load = None
        check(res["failed"] == 0, f"no failed request: {res}")
        # The extras removed: 2 fds to pass on, and a standby again. It
        # starts as soon as they fit, at the second of 253 removals: the
        # reload below must not overtake the others.
        os.kill(second, signal.SIGUSR2)
        h.wait_log('Removed 1 fd(s) named "extra252" from the store.')
        sb2 = wait_standby(h, but=(sb,))
        check(re.search(rf"handoff\[{new}\]: Started the standby handoff: pid {sb2}\.", h.log()), h.log())
        check(len(re.findall(r"Started the standby handoff", h.log())) == 2, f"two standbys in all:\n{h.log()}")
        reload_and_wait(h, 3)
        check(f"Started the next handoff: pid {sb2}, for generation 3 (the standby)." in h.log(), h.log())
        check(environ_of(h.generation_pid(3)).get("LISTEN_FDS") == "2", "generation 3 inherits 2 fds")
        check(h.stop() == 0, h.log())
        check(not h.descendants(), f"nothing left, no standby either: {h.descendants()}")
    finally:
        if load:
            load.kill()
        h.close()


def test_a_store_that_swings_across_the_limit_does_not_start_a_standby_at_each_swing(tmp):
    """A server whose store swings around the 253 fds a standby can take
    (one that stores its connections, say) passes the limit up and down
    again and again. Each time up stops the standby; a new one is started
    only once the fds have fit for a second, not at each time down: one
    process start per swing, and its stop's line, would cost the service
    more than the standby saves a reload. Once the store stays within the
    limit, a standby comes again and the next reload uses it."""
    port = free_port()
    args_file = os.path.join(tmp, "store.args")
    # The listener, "state" and 252 more: 254 at the top, 253 once one goes.
    set_args(args_file, "--store-many", "252", "--many-on-usr1")
    h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{port}", "--mode=handover", "--fd-store-max=253"],
                ["/bin/sh", "-c", f"exec {STORE_SERVER} $(cat {args_file})"], notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1)
        sb = wait_standby(h)
        first = h.generation_pid(1)
        swings = 10
        began = time.monotonic()
        for i in range(1, swings + 1):
            os.kill(first, signal.SIGUSR1)
            wait_for(lambda: h.log().count('Stored fd "extra251" from generation 1.') == i, 10,
                     f"swing {i} up; log:\n{h.log()}")
            os.kill(first, signal.SIGUSR2)
            wait_for(lambda: h.log().count('Removed 1 fd(s) named "extra251" from the store.') == i, 10,
                     f"swing {i} down; log:\n{h.log()}")
        elapsed = time.monotonic() - began
        # The first swing stops the standby started with the service; a
        # start after that needs a second of fitting, hence at most one per
        # second of swinging (and one more at its end).
        starts = len(re.findall(r"Started the standby handoff", h.log())) - 1
        stops = len(re.findall(r"more than a standby handoff can take", h.log()))
        check(stops <= starts + 1 and starts <= elapsed + 1,
              f"{starts} standbys started and {stops} stopped over {swings} swings in {elapsed:.1f}s:\n{h.log()}")
        # Within the limit now: a standby again, which the reload uses.
        sb2 = wait_standby(h, but=(sb,))
        reload_and_wait(h, 2)
        check(f"Started the next handoff: pid {sb2}, for generation 2 (the standby)." in h.log(), h.log())
        check(h.stop() == 0, h.log())
        check(not h.descendants(), f"nothing left, no standby either: {h.descendants()}")
    finally:
        h.close()


def test_no_standby_for_an_environment_its_start_message_cannot_carry(tmp):
    """A standby's GO carries the command line and environment of the start
    in at most 64 KiB; exec takes far more. With a 70 kB variable in the
    service's environment, no standby is started, said once at info level
    by the first main and at debug level by each later one; the reloads
    start the next handoff cold, without a warning. Before, every main
    started a standby, and every reload warned "Failed to start the standby
    handoff, starting one cold: Argument list too long" and stopped it."""
    h = start(tmp, "-v", args=("--init-delay", "0"), env=dict(os.environ, HANDOFF_TEST_BIG="x" * 70000))
    try:
        said = "No standby handoff: the command line and environment a reload passes on are more than its start " \
               "message carries (64 KiB); reloads start the next handoff cold."
        for n in (2, 3):
            reload_and_wait(h, n)
            check("Failed to start the standby handoff" not in h.log(), h.log())
            main = h.mains()[-1]
            check(re.search(rf"Started the next handoff: pid {main}, for generation {n}\.$", h.log(), re.M), h.log())
            h.wait_log(f"handoff[{main}]: {said}")
        check(f"handoff[{h.pid}]: {said}" in h.log(), h.log())
        check("Started the standby handoff" not in h.log(), h.log())
        check(h.log().count(said) == 3, f"once by each main:\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_no_standby_for_a_large_environment_said_once_though_a_reload_fails(tmp):
    """The line that says no standby fits a 70 kB environment comes once
    at info level, at the start: a failed reload leaves the first main
    serving, and it does not say it again (nor at each failed reload
    after)."""
    h = start(tmp, args=("--init-delay", "0"), env=dict(os.environ, HANDOFF_TEST_BIG="x" * 70000))
    try:
        said = "No standby handoff: the command line and environment a reload passes on are more than its start " \
               "message carries (64 KiB); reloads start the next handoff cold."
        h.wait_log(said)
        set_args(h.args_file, "--fail-at-start")
        reload_and_wait(h, 2)
        check(h.mains() == [h.pid], f"the reload failed, the first main serves: {h.mains()}")
        set_args(h.args_file, "--init-delay", "0")
        reload_and_wait(h, 3)
        check(len(h.mains()) == 2, f"the next reload succeeded: {h.mains()}")
        check(h.log().count(said) == 1, f"said once at info level:\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_environment_file_names_too_long_to_pass_on_said_once_per_reload(tmp):
    """The names of an --environment-file's variables go to the next
    handoff in its environment, up to 16 KiB; beyond that it takes them at
    its own first read, and the reload says so with a warning. Once per
    reload: not also when a main starts its standby, whose check of what
    its GO would carry builds that environment as well."""
    conf = os.path.join(tmp, "many.conf")
    with open(conf, "w") as f:
        f.writelines(f"HANDOFF_TEST_VARIABLE_{i:04}=1\n" for i in range(1000))
    h = start(tmp, f"--environment-file={conf}")
    line = "The environment files' names are too long to pass on"
    try:
        sb = wait_standby(h)
        check(line not in h.log(), f"no warning before any reload:\n{h.log()}")
        reload_and_wait(h, 2)
        check(f"Started the next handoff: pid {sb}, for generation 2 (the standby)." in h.log(), h.log())
        wait_standby(h, but=(sb,))
        check(h.log().count(line) == 1, f"said once, by the reload:\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_standby_with_a_replaced_library_is_not_used(tmp):
    """A library upgraded after the standby started: the standby maps a
    deleted file, so the reload starts the next handoff cold, which loads
    the new one. (Its own binary replaced: test_self_upgrade_on_reload.)"""
    if not shutil.which("ldd"):
        raise Skip("needs ldd to find a library of handoff's")
    out = subprocess.run(["ldd", HANDOFF], capture_output=True, text=True).stdout
    # libcap: loaded by libsystemd here (systemd 252), and by nothing else.
    m = re.search(r"(libcap\.so\.\S+) => (\S+)", out)
    if not m:
        raise Skip(f"handoff does not load libcap here: {out}")
    libdir = os.path.join(tmp, "lib")
    os.mkdir(libdir)
    lib = os.path.join(libdir, m.group(1))
    shutil.copy(m.group(2), lib)
    h = start(tmp, args=("--init-delay", "0"), env={"LD_LIBRARY_PATH": libdir})
    try:
        sb = wait_standby(h)
        with open(f"/proc/{sb}/maps") as f:
            check(lib in f.read(), f"the standby maps {lib}")
        shutil.copy(m.group(2), lib + ".new")
        os.rename(lib + ".new", lib)  # as dpkg replaces a file
        reload_and_wait(h, 2)
        check(f"Not using the standby handoff (pid {sb}): a library it loaded has been replaced since." in h.log(),
              h.log())
        check(h.mains()[1] != sb, f"a new next handoff: {h.mains()}")
        wait_for(lambda: not pid_alive(sb), 10, "the stale standby is stopped")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def reload_under_nofile(tmp, n, limit, cold, load=False):
    """A handoff with n unix --listen sockets under a hard (and soft)
    RLIMIT_NOFILE of limit, reloaded once: through its standby or, that
    killed first, a next handoff started cold. Returns (whether MAINPID
    moved, the log, the load's result with load, else None), or (False,
    the log, None) when the first start did not fit."""
    tmp = os.path.join(tmp, f"{limit}-{'cold' if cold else 'standby'}")
    os.mkdir(tmp)
    socks = [os.path.join(tmp, f"s{i}") for i in range(n)]
    h = Handoff(tmp, [*(a for s in socks for a in ("-l", f"unix:{s}")), "--mode=handover"], fixture_cmd(),
                notify=FakeSystemd(tmp), wrapper=(shutil.which("prlimit"), f"--nofile={limit}:{limit}"))
    running = None
    try:
        wait_for(lambda: h.ready_count() >= 1 or h.proc.poll() is not None, 10, f"the start; log:\n{h.log()}")
        if h.ready_count() < 1:
            return False, h.log(), None
        # At a low limit the standby may not start ("Failed to start the
        # standby handoff"): then every reload starts one cold.
        sb = wait_for(lambda: [p for p in h.standbys() if (stat_fields(p) or "?")[0] == "S"] or
                      "Failed to start the standby handoff" in h.log(), 10, f"the standby; log:\n{h.log()}")
        if cold and sb is not True:
            os.kill(sb[0], signal.SIGKILL)
            wait_for(lambda: not pid_alive(sb[0]), 10, "the standby is gone")
        running = load and Load(f"unix:{socks[0]}", tmp)
        if running:
            running.wait_answered_by(h.generation_pid(1))
        h.signal(signal.SIGHUP)
        h.wait_ready(2, timeout=20)
        moved = len(h.mains()) == 2
        if running and moved:
            running.wait_answered_by(h.generation_pid(2))
        return moved, h.log(), running.stop() if running else None
    finally:
        if running and running.proc.poll() is None:
            running.kill()
        h.close()


def test_standby_fits_the_lowest_file_limit_a_cold_start_does(tmp):
    """The standby's GO takes 2n + 5 fd numbers below the hard
    RLIMIT_NOFILE (n fds received at 4 and up, copied above 3 + n + 1
    to be laid out); a cold start copies them in a copy of the old main's
    fd table, which holds them and the old main's own fds besides. So at
    the lowest limit at which a reload with a cold start works (16
    listeners here), the reload through the standby works too, no request
    failing: the standby is never why a reload at a low limit fails, and
    needs no fallback for it (a reviewer's doubt, measured)."""
    if not shutil.which("prlimit"):
        raise Skip("needs prlimit(1) (util-linux)")
    n = 16
    limit = None
    for at in range(2 * n + 5, 2 * n + 64):
        if reload_under_nofile(tmp, n, at, cold=True)[0]:
            limit = at
            break
    check(limit, f"a cold start fits below a hard limit of {2 * n + 64}")
    ok, log, res = reload_under_nofile(tmp, n, limit, cold=False, load=True)
    check(ok, f"the reload through the standby works at {limit}, the cold start's lowest; log:\n{log}")
    check(re.search(r"Started the next handoff: pid \d+, for generation 2 \(the standby\)\.", log), log)
    check(res["failed"] == 0, f"no failed request: {res}")


if __name__ == "__main__":
    run([v for k, v in sorted(globals().items()) if k.startswith("test_")])
