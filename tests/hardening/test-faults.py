#!/usr/bin/python3
"""Faults during reloads, in the mode HANDOFF_TEST_MODE names (meson runs
this file once per mode; tests that only exist in one mode skip in the
other): SIGKILL of the candidate app and of the next handoff at each
reachable stage of a reload, SIGKILL of the old handoff while it drains, a
candidate that ignores SIGTERM, a server that daemonizes, a storm of 200
SIGHUPs, and SIGTERM at each reachable stage.

Each test ends with exactly one serving generation, no failed request under
load and no process left behind, except where the fault makes that
impossible; the test then asserts, and its docstring says, exactly what is
lost. README.md next to this file has the table.

Stages of a reload and how a test reaches each one without sleeping:
- candidate started, not ready: the fixture's --init-delay / --hang-at-start;
- (handover) next handoff running, its app not started yet: the
  next handoff is started from the path handoff came from; the test puts a
  stand-in there that waits at a gate file, then execs handoff;
- (handover) next handoff ready, MAINPID= sent, not yet told to take over:
  HoldingSystemd keeps the barrier that follows MAINPID= unanswered (up to
  handoff's own 5 s barrier timeout);
- (supervise) candidate ready but not committed: not reachable, the commit
  is done in the same event-loop iteration that reads READY=1;
- committed, the old generation draining: a slow request keeps it busy.
"""

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

from handofftest.handoff import (HANDOFF, HANDOFFCTL, Handoff, MODE, fixture_cmd, reaping_held, set_args,
                                 status_json)
from handofftest.load import Load, SlowRequest
from handofftest.net import free_port, http_get, serving_pid
from handofftest.procs import is_handoff, ppid_of, stat_fields
from handofftest.runner import Skip, run
from handofftest.tmpfs import tmpfs_dir
from handofftest.wait import check, wait_for
from hardening import (PYTHON, HoldingSystemd, Launched, alive, fd_links, fixture_processes, ignores,
                       listener_of, reap_if_child, showing_logs)

STORE_SERVER = os.environ["STORE_SERVER"]

# Long enough never to cut a drain short on a busy machine; the tests about
# the drain deadline pass a short one of their own (a later option wins).
DRAIN = "10s"
SHORT_DRAIN = "--drain-timeout=1s"
# A generation whose main exits at once at its stop signal and leaves its
# two workers serving (a pre-fork master that goes first).
WORKERS_OUTLIVE_MAIN = ("--workers", "2", "--orphan-workers", "--orphans-keep-serving")


def start(tmp, *extra, args=("--init-delay", "100"), exe=None, manager=True, env=None):
    """handoff -v in this pass's mode, with a fake systemd that answers
    barriers until told to hold them (manager=False: none, and no
    NOTIFY_SOCKET), and a fixture whose arguments the test may change before
    a reload (see harness.fixture_cmd); env: added to handoff's environment."""
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, *args)
    fake = HoldingSystemd(tmp, hold=False) if manager else None
    argv = ["-v", "-l", f"127.0.0.1:{port}", f"--mode={MODE}", f"--drain-timeout={DRAIN}", "--start-timeout=30s",
            *extra]
    if exe:
        h = Launched(tmp, argv, fixture_cmd(args_file), notify=fake, exe=exe, env=env)
    else:
        h = Handoff(tmp, argv, fixture_cmd(args_file), notify=fake, env=env)
    h.port, h.args_file = port, args_file
    if manager:
        h.wait_ready(1)
    else:
        h.wait_log_re(r"Generation 1 \(.*\) is ready", timeout=20)
    return h


def teardown(h, *loads):
    for load in loads:
        if load and load.proc.poll() is None:
            load.proc.kill()
    h.close()


def need(mode):
    if MODE != mode:
        raise Skip(f"{mode} mode only")





def next_handoff_pid(h, n):
    m = wait_for(lambda: re.search(rf"Started the next handoff: pid (\d+), for generation {n}(?: \(the standby\))?\.", h.log()), 10,
                 f"the next handoff for generation {n}")
    return int(m.group(1))


def reload_begun(h, *args):
    """SIGHUP for a reload to a generation with the fixture's args (set
    first, if any), not waited for. Returns the pid that served before it
    and the READY=1 count before it (None without a service manager)."""
    old = serving_pid(h.port)
    if args:
        set_args(h.args_file, *args)
    n = h.ready_count() if h.notify else None
    h.signal(signal.SIGHUP)
    return old, n


def next_handoff_begun(h, *args, number=2):
    """Handover mode: reload_begun(), up to the start of the next handoff
    (for generation number). Returns what reload_begun() does, and the
    next handoff's pid."""
    old, n = reload_begun(h, *args)
    return old, n, next_handoff_pid(h, number)


def channel_shim(**behaviour):
    """The environment that runs a handoff (and everything it starts)
    under tests/fixtures/channel-shim.c, which behaves as told
    (CHANNEL_SHIM_KILL_AFTER, CHANNEL_SHIM_DROP, CHANNEL_SHIM_HOLD_READ: see
    there)."""
    shim = os.environ.get("CHANNEL_SHIM_SO")
    if not shim or not os.path.exists(shim):
        raise Skip(f"no channel shim (CHANNEL_SHIM_SO={shim!r})")
    return {"LD_PRELOAD": shim, **{f"CHANNEL_SHIM_{k.upper()}": v for k, v in behaviour.items()}}


def one_serving(h):
    """Exactly one generation runs and serves, named by the last READY=1;
    in handover mode exactly one handoff (the main) is left too."""
    def one():
        pids = h.app_pids()    # once: a handoff exiting meanwhile has no exe left to tell it by
        return pids if len(pids) == 1 else None
    pid = wait_for(one, 15, f"exactly one generation left: {h.app_pids()}")[0]
    check(serving_pid(h.port) == pid, f"pid {pid} serves")
    check(f"(pid {pid})" in h.last_status(), f"the last READY=1 names pid {pid}: {h.last_status()}")
    handoffs = lambda: sorted([p for p in h.descendants(standby=False) if is_handoff(p)] +
                              ([h.pid] if alive(h.pid) else []))
    wait_for(lambda: handoffs() == [h.main_pid()], 15, f"only the main handoff {h.main_pid()} left: {handoffs()}")
    return pid


def reload_ok(h, number, args=("--init-delay", "50")):
    """One reload, to generation number (a plain one by default), succeeds."""
    set_args(h.args_file, *args)
    n = h.ready_count()
    h.signal(signal.SIGHUP)
    h.wait_ready(n + 1, timeout=20)
    check(f"reload to generation {number} ok" in h.last_status(), h.last_status())


def describe(pids):
    out = []
    for p in pids:
        try:
            out.append(f"{p} ({open(f'/proc/{p}/cmdline').read().replace(chr(0), ' ').strip()}; "
                       f"state {open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0]})")
        except OSError:
            out.append(f"{p} (gone)")
    return ", ".join(out)


def nothing_left(h):
    """No process of the service is left. (Bounded wait: a process SIGKILLed
    by a handoff that then exited may take a moment to die; handoff cannot
    reap what is not its child, e.g. a next handoff's app.)"""
    wait_for(lambda: not h.descendants(), 5, f"nothing left: {describe(h.descendants())}\n{h.log()}")


def runtime_files(h, pid):
    return [p for p in h.runtime_files(pid) if os.path.exists(p)]


def runtime_files_removed(h, pid):
    """A handoff killed hard cannot remove its control socket and notify
    directory: the handoff at the other end of its handover does (the old
    main for its next handoff, the new main for its predecessor). Its own
    line, not another handoff's sweep of the shared directory."""
    h.wait_log(f"Removed the control socket and the notify directory left in the runtime directory by pid {pid}, "
               f"which was killed.")
    check(not runtime_files(h, pid), f"the runtime files of the killed pid {pid} removed")


def stop_clean(h):
    check(h.stop() == 0, h.log())
    nothing_left(h)


def stop_adopted(h, pid):
    """SIGTERM to handoff pid, a next handoff and so not the test's child:
    it cannot be waited for with waitpid, so this waits until the reaper
    has its exit status, and checks that it is 0."""
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: h.exit_status(pid) is not None, 20, f"the stop of handoff {pid}:\n{h.log()}")
    check(h.exit_status(pid) == 0, h.log())


def no_failures(load):
    res = load.stop()
    check(res["failed"] == 0, f"failed requests: {res}")
    check(res["ok"] > 0, f"the load ran: {res}")
    return res


def reloads_and_stops(h, load, number):
    """The next reload (to generation number) works, no request failed,
    exactly one generation serves after it, and a stop leaves nothing."""
    reload_ok(h, number)
    no_failures(load)
    one_serving(h)
    stop_clean(h)


def held_at_mainpid(h):
    """Handover mode: a reload held at systemd's barrier: MAINPID= names the
    next handoff, not yet answered. Returns the next handoff's pid."""
    h.notify.hold = True
    h.signal(signal.SIGHUP)
    wait_for(h.notify.barriers.is_set, 20, "MAINPID= sent, barrier held")
    return h.main_pid()


def reload_held_at_mainpid(h, ms=1500):
    """A slow request (ms) to the serving generation, then a reload held at
    systemd's barrier (held_at_mainpid()). Returns the serving generation's
    pid, the request and the next handoff's pid."""
    old = serving_pid(h.port)
    slow = SlowRequest(h.port, ms)
    wait_for(slow.connected.is_set, 5, "slow request sent")
    return old, slow, held_at_mainpid(h)


def reload_under_slow_request(h, ms):
    """A slow request (ms) to the serving generation, then a reload, in
    either mode, up to its READY=1. Returns the serving generation's pid
    before the reload, the request, the main pid after it (in handover mode
    the next handoff's) and the READY=1 count before the reload."""
    old = serving_pid(h.port)
    slow = SlowRequest(h.port, ms)
    wait_for(slow.connected.is_set, 5, "slow request sent")
    n = h.ready_count()
    h.signal(signal.SIGHUP)
    h.wait_ready(n + 1, timeout=20)
    return old, slow, h.main_pid(), n


def handover_from(h, pid):
    """Handover mode: SIGHUP to handoff pid, the main, for a plain
    generation (--init-delay 50), up to the handover as the log says it, so
    with or without a service manager: pid's "Handed over to handoff pid
    NEW", then NEW's "Took over as the main process". Under a (fake)
    manager, MAINPID= (sent with the reload's READY=1) named NEW too.
    Returns the pid that served before the SIGHUP, and NEW."""
    old = serving_pid(h.port)
    set_args(h.args_file, "--init-delay", "50")
    os.kill(pid, signal.SIGHUP)
    new_main = int(h.wait_log_re(rf"handoff\[{pid}\]: Handed over to handoff pid (\d+)", 20).group(1))
    h.wait_log(f"handoff[{new_main}]: Took over as the main process")
    if h.notify:
        check(h.main_pid() == new_main, f"MAINPID= names {h.main_pid()}, handed over to {new_main}:\n{h.log()}")
    return old, new_main


def handed_over(h):
    """Handover mode, a service manager: a reload to a plain generation
    (--init-delay 50), up to its READY=1 and the old main's "Handed over".
    Returns the new main, which MAINPID= named."""
    _, n = reload_begun(h, "--init-delay", "50")
    h.wait_ready(n + 1, timeout=20)
    new_main = h.main_pid()
    h.wait_log(f"handoff[{h.pid}]: Handed over to handoff pid {new_main}")
    return new_main


# ---- SIGKILL of the candidate app ---------------------------------------------

def test_kill_candidate_app_before_ready(tmp):
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        old, n = reload_begun(h, "--init-delay", "5000")
        succ = h.generation_pid(2)
        os.kill(succ, signal.SIGKILL)
        h.wait_ready(n + 1, timeout=20)
        check("last: generation 2 failed: killed by signal SIGKILL" in h.last_status(), h.last_status())
        check(one_serving(h) == old, "the old generation serves on")
        if MODE == "handover":
            check(h.mains() == [h.pid], "MAINPID never moved")
        reloads_and_stops(h, load, 3)
    finally:
        teardown(h, load)


def pid_come_round_again(pid):
    """A process (sleep, a session leader, with SIGTERM blocked: one sent
    to it stays pending, for the test to see) given pid by ns_last_pid, as
    pid reuse gives it on a busy machine (pid_max 32768). Skips without
    root, or when another process took the pid first, each of a few times."""
    if os.geteuid() != 0:
        raise Skip("ns_last_pid needs root")

    def block_term():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    for _ in range(20):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        p = subprocess.Popen(["sleep", "60"], start_new_session=True, preexec_fn=block_term)
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    raise Skip(f"pid {pid} was taken by others each time")


def pending_signals(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["ShdPnd"], 16) | int(fields["SigPnd"], 16)


def test_candidate_app_pid_come_round_again_before_its_app_is_read(tmp):
    """The next handoff's app dies at once, and its pid goes to another
    process (another user's, say: a session leader) before the old main
    reads the next handoff's APP (the channel shim holds that read): the
    old main never signals that process. Before, it took the pid for the
    app, and when the next handoff exited it retired that process, as the
    dead next handoff's generation, and its process group (found by review)."""
    need("handover")
    app_read = os.path.join(tmp, "app-read")
    h = start(tmp, env=channel_shim(hold_read="APP ", until=app_read))
    other = None
    try:
        _, n = reload_begun(h, "--init-delay", "5000")
        app = h.generation_pid(2)
        os.kill(app, signal.SIGKILL)
        wait_for(lambda: stat_fields(app) is None, 10, f"the app (pid {app}) reaped")
        other = pid_come_round_again(app)
        open(app_read, "w").close()
        h.wait_ready(n + 1, timeout=20)
        wait_for(lambda: not [g for g in status_json(h.pid)["generations"] if g["role"] == "next-handoff-stopping"],
                 20, f"the next handoff's exit seen:\n{h.log()}")
        check(f"generation (pid {app})" not in h.log(), f"pid {app} not taken for the app:\n{h.log()}")
        check(not pending_signals(other.pid) & (1 << (signal.SIGTERM - 1)), "no SIGTERM to the other process")
        check(other.poll() is None, "the other process runs on")
    finally:
        if other:
            other.kill()
            other.wait()
        teardown(h)


def test_next_handoff_dead_before_its_app_is_read(tmp):
    """The next handoff (started cold: no service manager, no standby) says
    FEATURES and APP and is SIGKILLed (and reaped) before the old main reads
    either (the channel shim holds its read of the PID report before them):
    the old main, which sees its exit with both still queued, retires its
    app all the same (found by review). Before, it read one message (FEATURES),
    then took the exit, and the app, never known, served on for good."""
    need("handover")
    pid_read = os.path.join(tmp, "pid-read")
    h = start(tmp, manager=False, env=channel_shim(hold_read="PID ", until=pid_read))
    try:
        reload_begun(h, "--init-delay", "5000")
        m = h.wait_log_re(r"handoff\[(\d+)\]: Started generation 2: pid (\d+)", 20)
        succ, app = int(m.group(1)), int(m.group(2))
        h.wait_log(f"handoff[{succ}]: Control socket:")  # after its APP went
        os.kill(succ, signal.SIGKILL)
        wait_for(lambda: stat_fields(succ) is None, 10, f"the next handoff (pid {succ}) reaped")
        open(pid_read, "w").close()
        h.wait_log(f"handoff[{h.pid}]: Reload failed", 20)
        h.wait_log(f"Retiring the dead next handoff's generation (pid {app})", 10)
        wait_for(lambda: not alive(app), 10, f"its app (pid {app}) retired")
    finally:
        teardown(h)

def test_kill_candidate_app_after_ready_before_commit(tmp):
    """Handover mode, MAINPID= already sent: systemd's main process is now
    the next handoff, so when its app dies the service cannot go back
    to the old main (NotifyAccess=main hears only the new one). The
    next handoff exits with the app's status (137: Restart=on-failure restarts
    the service); the old main retires its generation, which finishes what
    it has in flight, and exits. Lost: nothing in flight; new connections
    are refused once the last listener copy is closed (under systemd a
    .socket unit keeps them queued for the restart)."""
    need("handover")
    h = start(tmp)
    try:
        old, slow, succ = reload_held_at_mainpid(h)
        app = h.generation_pid(2)
        os.kill(app, signal.SIGKILL)
        check(h.wait_exit() == 128 + signal.SIGKILL, f"the new main exits 137:\n{h.log()}")
        check(h.proc.wait(timeout=20) == 0, h.log())
        slow.join(timeout=20)
        check(slow.error is None and slow.status == 200 and slow.pid == old, f"in flight on the old generation: "
              f"{slow.status} {slow.pid} {slow.error}")
        nothing_left(h)
        check(h.exit_status(succ) == 137, "systemd would see its main exit 137")
        # The old main gave up, drained and exited: no death to take over after.
        check("(killed?)" not in h.log() and "taking over by itself" not in h.log(), h.log())
    finally:
        teardown(h)


def test_kill_candidate_app_after_commit(tmp):
    """The new generation dies while the old one still drains: it was the
    serving one, so handoff exits with its status (137) once the old one
    has finished, and Restart= takes over. Lost: what the killed generation
    had in flight (here one slow request: reset); the old generation's slow
    request completes."""
    h = start(tmp)
    try:
        old, old_slow, _, _ = reload_under_slow_request(h, 1500)
        new = h.generation_pid(2)
        listener = listener_of(new)
        wait_for(lambda: listener not in fd_links(old), 10, "the old generation closed its listener copy")
        new_slow = SlowRequest(h.port, 5000)
        wait_for(new_slow.connected.is_set, 5, "slow request on the new generation")
        wait_for(lambda: [l for l in fd_links(new) if l.startswith("socket:") and l != listener], 10,
                 "the new generation accepted it")
        os.kill(new, signal.SIGKILL)
        check(h.wait_exit() == 128 + signal.SIGKILL, h.log())
        old_slow.join(timeout=20)
        check(old_slow.status == 200 and old_slow.pid == old, f"the old generation's request completed: "
              f"{old_slow.status} {old_slow.pid} {old_slow.error}")
        new_slow.join(timeout=20)
        check(new_slow.status is None and new_slow.error,
              f"the request on the killed generation is lost: {new_slow.status} {new_slow.pid} {new_slow.error}")
        if MODE == "handover":
            check(h.proc.poll() is not None, "the old handoff had exited before the new main did")
        nothing_left(h)
    finally:
        teardown(h)


# ---- SIGKILL of the next handoff (handover mode) ---------------------------

def put(exe, script=None, **fields):
    """At exe, the path next handoffs are started from (renamed into place,
    so never half written): script, formatted with real= the real handoff
    and fields, or the real handoff itself."""
    if script is None:
        shutil.copy(HANDOFF, exe + ".new")
    else:
        with open(exe + ".new", "w") as f:
            f.write(script.format(real=os.path.abspath(HANDOFF), **fields))
        os.chmod(exe + ".new", 0o755)
    os.rename(exe + ".new", exe)


GATE_SCRIPT = """#!/bin/sh
# Stands in for handoff at the path a next handoff is started from: says it
# runs, waits at the gate, then becomes the real handoff (same pid).
# A standby (the next handoff started ahead) goes straight through: it
# waits for its reload by itself.
[ -n "$HANDOFF_STANDBY" ] && exec {real} "$@"
touch {reached}
while [ ! -e {gate} ]; do sleep 0.01; done
exec {real} "$@"
"""


def test_kill_next_handoff_before_its_app(tmp):
    """The next handoff runs but has not started its app yet."""
    need("handover")
    exe = os.path.join(tmp, "handoff")
    put(exe)
    h = start(tmp, exe=exe)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        reached, gate = os.path.join(tmp, "reached"), os.path.join(tmp, "gate")
        put(exe, GATE_SCRIPT, reached=reached, gate=gate)
        old, n, succ = next_handoff_begun(h)
        wait_for(lambda: os.path.exists(reached), 10, "the next handoff is at the gate")
        os.kill(succ, signal.SIGKILL)
        h.wait_ready(n + 1, timeout=20)
        # Whichever the old main notices first: the pidfd or the channel.
        check(f"generation 2 failed: next handoff (pid {succ}) exited" in h.last_status()
              or f"generation 2 failed: next handoff (pid {succ}) closed its channel" in h.last_status(),
              h.last_status())
        check("Started generation 2" not in h.log(), "no app was started")
        check(one_serving(h) == old, "the old generation serves on")
        put(exe)
        reloads_and_stops(h, load, 3)
    finally:
        open(os.path.join(tmp, "gate"), "w").close()
        teardown(h, load)


DYING_SCRIPT = """#!/bin/sh
# Stands in for handoff at the path a next handoff is started from, and dies
# in what would be its set-up, before it says anything on its channel. A
# standby goes on to the real handoff.
[ -n "$HANDOFF_STANDBY" ] && exec {real} "$@"
{death}
"""


def pidfd_gives_exit_status():
    """Whether a pidfd gives the status of its reaped process
    (PIDFD_GET_INFO, _IOWR(0xFF, 11, 64 bytes), with PIDFD_INFO_EXIT: Linux
    6.15)."""
    p = subprocess.Popen(["true"])
    fd = os.pidfd_open(p.pid)
    try:
        p.wait()
        info = bytearray(64)
        struct.pack_into("Q", info, 0, 1 << 3)
        fcntl.ioctl(fd, 0xC040FF0B, info)
        return bool(struct.unpack_from("Q", info, 0)[0] & (1 << 3))
    except OSError:
        return False
    finally:
        os.close(fd)


def test_next_handoff_dying_in_its_set_up_says_how(tmp):
    """A next handoff that dies before it reports anything: the reload's
    result gives its exit status, with what handoff's own status means, or
    the signal that killed it (from its pidfd once its parent has reaped it,
    Linux 6.15). Before: "exited" or "closed its channel", whichever the old
    main noticed first."""
    need("handover")
    if not pidfd_gives_exit_status():
        raise Skip("a pidfd gives no exit status here (PIDFD_INFO_EXIT: Linux 6.15)")
    exe = os.path.join(tmp, "handoff")
    put(exe)
    h = start(tmp, exe=exe)
    try:
        old = serving_pid(h.port)
        for number, (death, how) in enumerate(
                (("exit 2", "exited with status 2 (invalid arguments or configuration)"),
                 ("exit 1", "exited with status 1 (a failure of handoff itself; its log says which)"),
                 ("exit 7", "exited with status 7"),
                 ("kill -KILL $$", "exited: killed by signal SIGKILL")), start=2):
            put(exe, DYING_SCRIPT, death=death)
            _, n, succ = next_handoff_begun(h, number=number)
            h.wait_ready(n + 1, timeout=20)
            want = f"generation {number} failed: next handoff (pid {succ}) {how}"
            check(want in h.last_status(), f"{want!r} not in {h.last_status()!r}")
            check(one_serving(h) == old, "the old generation serves on")
        put(exe)
        reload_ok(h, 6)
        one_serving(h)
        stop_clean(h)
    finally:
        teardown(h)


CLOSING_SCRIPT = """#!/bin/sh
# Stands in for handoff at the path a next handoff is started from: it
# closes its end of the channel and runs on a while (its pid reported by
# the spawn before exec). A standby goes on to the real handoff.
[ -n "$HANDOFF_STANDBY" ] && exec {real} "$@"
eval "exec $HANDOFF_CONTROL_FD>&-"
exec sleep 0.9
"""


def test_next_handoff_closing_its_channel_fails_at_once(tmp):
    """A next handoff that closes its channel but runs on has no exit status
    to wait for: the reload fails at once, "closed its channel", and the
    next handoff is stopped. Before, the old main waited up to 1 s for its
    pidfd; the stand-in, which exits by itself 0.9 s after it closed the
    channel, is the clock: waited for, it was "exited with status 0".
    (A duration after all: the old main must see the end of file within
    0.9 s, which it does in milliseconds.)"""
    need("handover")
    exe = os.path.join(tmp, "handoff")
    put(exe)
    h = start(tmp, exe=exe)
    try:
        put(exe, CLOSING_SCRIPT)
        old, n, succ = next_handoff_begun(h)
        h.wait_ready(n + 1, timeout=20)
        want = f"generation 2 failed: next handoff (pid {succ}) closed its channel"
        check(want in h.last_status(), f"{want!r} not in {h.last_status()!r}")
        check(f"Reload failed: next handoff (pid {succ}) closed its channel." in h.log(), h.log())
        check(one_serving(h) == old, "the old generation serves on")
        put(exe)
        reload_ok(h, 3)
        one_serving(h)
        stop_clean(h)
    finally:
        teardown(h)


def test_kill_next_handoff_before_ready(tmp):
    need("handover")
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        old, n, succ = next_handoff_begun(h, "--init-delay", "5000")
        app = h.generation_pid(2)
        wait_for(lambda: len(runtime_files(h, succ)) == 2, 10, "premise: the next handoff's runtime files")
        os.kill(succ, signal.SIGKILL)
        h.wait_ready(n + 1, timeout=20)
        runtime_files_removed(h, succ)
        check(f"generation 2 failed: next handoff (pid {succ}) exited" in h.last_status()
              or "closed its channel" in h.last_status(), h.last_status())
        wait_for(lambda: not alive(app), 10, "the next handoff's app is killed with it")
        check(one_serving(h) == old, "the old generation serves on")
        reloads_and_stops(h, load, 3)
    finally:
        teardown(h, load)


def handed_back(h, succ):
    """The old main named itself main again once its next handoff (succ)
    had died: its log line, then its MAINPID= as the manager read it. Not
    wait_ready(): while the last MAINPID= read names the dead next handoff,
    that returns at once (a main that is gone may have handed over), and
    what is checked after it raced the old main's MAINPID=."""
    h.wait_log(f"handoff[{h.pid}]: The next handoff (pid {succ}) exited after MAINPID= named it, before it took "
               "over; naming this process main again.")
    h.notify.wait_count("MAINPID", 1, value=str(h.pid))


def test_kill_next_handoff_after_ready_before_commit(tmp):
    """MAINPID= names the next handoff, systemd's barrier is not back yet,
    and the next handoff is SIGKILLed. systemd refuses MAINPID= for a pid
    that no longer runs: had it read ours after the kill, the old main
    would be its main still, and the old main's exit after a handover would
    end the service, cleanly (no Restart=). The old main cannot tell, so it
    retires the next handoff's app, removes its runtime files, names itself
    main again (MAINPID=<itself>, which systemd refuses if it did take the
    next handoff: then that main's death fails the service, as before) and
    rolls back: generation 1 finishes its slow request and serves on, and
    the next reload works. Before, it retired generation 1 and exited 0
    whatever systemd had done *(found by this round's channel shim)*."""
    need("handover")
    h = start(tmp)
    try:
        old, slow, succ = reload_held_at_mainpid(h)
        app = h.generation_pid(2)
        check(len(runtime_files(h, succ)) == 2, "premise: the next handoff's runtime files")
        n = h.ready_count()
        os.kill(succ, signal.SIGKILL)
        wait_for(lambda: not alive(app), 10, "the next handoff's app is retired by the old main")
        runtime_files_removed(h, succ)
        h.notify.release()
        handed_back(h, succ)
        h.wait_ready(n + 1, timeout=20)
        check(h.mains()[-2:] == [succ, h.pid], f"MAINPID= named the old main again: {h.mains()}")
        check(f"last: generation 2 failed: next handoff (pid {succ}) exited before it took over" in h.last_status(),
              h.last_status())
        check(f"handoff[{h.pid}]: Handed over" not in h.log(), "no TAKEOVER went")
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == old, f"{slow.status} {slow.pid} {slow.error}")
        check(one_serving(h) == old, "the old generation serves on")
        reload_ok(h, 3)
        stop_clean(h)
    finally:
        teardown(h)


def test_store_after_mainpid_kept_when_handed_back(tmp):
    """MAINPID= names the next handoff (barrier held) and the serving
    generation stores an fd (FDSTORE=1); then the next handoff is SIGKILLed
    and the old main names itself main again. Generation 1 serves on, and
    what it stored meanwhile is in the store: the next generation inherits
    it. Before, the old main closed the fd (once MAINPID= had gone it no
    longer spoke for the service) and the store had lost it."""
    need("handover")
    port = free_port()
    h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{port}=web", f"--mode={MODE}", f"--drain-timeout={DRAIN}"],
                [STORE_SERVER, "--store-on-usr1", "late"], notify=HoldingSystemd(tmp, hold=False))
    try:
        h.wait_ready(1)
        gen1 = h.generation_pid(1)
        succ = held_at_mainpid(h)
        os.kill(gen1, signal.SIGUSR1)
        h.wait_log(f'handoff[{h.pid}]: Staged fd "late" from generation 1, until it speaks for the service.')
        n = h.ready_count()
        os.kill(succ, signal.SIGKILL)
        # Released once the old main has seen it gone: before, the barrier
        # back first, it would hand over to it (systemd took it, alive).
        h.wait_log(f"handoff[{h.pid}]: Retiring the dead next handoff's generation")
        h.notify.release()
        handed_back(h, succ)
        h.wait_ready(n + 1, timeout=20)
        check(serving_pid(port) == gen1, "generation 1 serves on")
        h.signal(signal.SIGHUP)
        h.wait_ready(n + 2, timeout=20)
        body = wait_for(lambda: (lambda b: b if "gen=3 " in b else None)(http_get(port)[1]), 10, "generation 3")
        f = dict(kv.split("=", 1) for kv in body.split())
        stored = dict(zip(f["names"].split(","), f["values"].split(",")))
        check(stored.get("late") == "late.1", f"generation 3 inherited what generation 1 stored: {body}")
        check(h.stop() == 0, h.log())
    finally:
        teardown(h)


def hand_back_with_a_stop(tmp, by_manager):
    """As test_kill_next_handoff_after_ready_before_commit, with a second
    reload asked for and a stop that came while the barrier was held (the
    manager's, or an operator's the old main ignored then): named main
    again, the old main stops, as the stop asked, without starting the
    pending reload (no next handoff for generation 3, no RELOADING=1 for
    it); generation 1 answers its slow request; exit 0, nothing left."""
    need("handover")
    h = start(tmp)
    try:
        old, slow, succ = reload_held_at_mainpid(h)
        # To the old main: MAINPID= already names the next handoff.
        os.kill(h.pid, signal.SIGHUP)
        h.wait_log_re(rf"handoff\[{h.pid}\]: Reload requested \(SIGHUP.*\n(.*\n)*.*handoff\[{h.pid}\]: Reload "
                      r"requested \(SIGHUP", 10)
        if by_manager:
            os.kill(h.pid, signal.SIGTERM)
            h.wait_log(f"handoff[{h.pid}]: Stop requested (SIGTERM) by the service manager after MAINPID=")
        else:
            subprocess.run(["kill", "-TERM", str(h.pid)], check=True, timeout=10)
            h.wait_log(f"handoff[{h.pid}]: Ignoring SIGTERM")
        os.kill(succ, signal.SIGKILL)
        runtime_files_removed(h, succ)
        h.notify.release()
        handed_back(h, succ)
        check(h.proc.wait(timeout=20) == 0, h.log())
        log = h.log()
        check("for generation 3" not in log, f"the pending reload did not start:\n{log}")
        reloading = [m for m in h.notify.snapshot() if m.fields.get("RELOADING") == "1"]
        check(len(reloading) == 1, f"one RELOADING=1, the first reload's: {len(reloading)}")
        check(h.mains()[-1] == h.pid, f"MAINPID= named the old main again: {h.mains()}")
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == old, f"{slow.status} {slow.pid} {slow.error}")
        nothing_left(h)
    finally:
        teardown(h)


def test_hand_back_then_the_managers_stop(tmp):
    hand_back_with_a_stop(tmp, by_manager=True)


def test_hand_back_then_an_operators_stop(tmp):
    hand_back_with_a_stop(tmp, by_manager=False)


def next_handoff_killed_at_its_ready(h, number, *args):
    """A reload, with the fixture's args, whose next handoff the channel
    shim (kill_after="READY") SIGKILLs right after its READY; systemd's
    barrier is held until it is gone (the case where systemd would have
    read MAINPID= too late). Returns the next handoff's pid and its
    generation's."""
    set_args(h.args_file, "--init-delay", "50", *args)
    h.notify.hold = True
    h.signal(signal.SIGHUP)
    succ = next_handoff_pid(h, number)
    app = h.generation_pid(number)
    wait_for(lambda: not alive(succ), 10, f"the next handoff (pid {succ}) dies at its READY")
    h.notify.release()
    return succ, app


def test_next_handoff_killed_right_after_its_ready(tmp):
    """The next handoff dies right after it sent READY (the channel shim
    SIGKILLs it then), a window of microseconds otherwise. The old main sees
    it gone before it sends MAINPID= (then it names nobody), or after
    (then, as in the test above, it names itself main again). The fake
    manager answers the barrier only once the next handoff is gone: the
    case where systemd would have read MAINPID= too late, and refused it.
    Either way the old main rolls back, twice in a row; generation 1 serves
    on, nobody is handed over to. Before, the old main named it, told it to
    take over, retired generation 1 and exited 0: with systemd, the service
    ended; here, nothing served any more *(found by this round's channel
    shim, fixed)*. The dead next handoff's generation was ready, so
    accepting: the old main retires it as a failed candidate, by its stop
    signal, and it finishes what it accepted. No request fails. (Before,
    the old main SIGKILLed it: 0 to 3 requests lost per run.)"""
    need("handover")
    h = start(tmp, env=channel_shim(kill_after="READY"))
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        old = serving_pid(h.port)
        for number in (2, 3):
            succ, app = next_handoff_killed_at_its_ready(h, number)
            wait_for(lambda: f"generation {number} failed: next handoff (pid {succ}) exited before it" in
                     h.last_status(), 10, f"the rollback's READY=1:\n{h.log()}")
            check(h.main_pid() == h.pid, f"the old main is main: {h.mains()}")
            check(f"handoff[{h.pid}]: Handed over" not in h.log(), "no TAKEOVER went")
            h.wait_log(f"Retiring the dead next handoff's generation (pid {app}): sent SIGTERM.")
            h.wait_log(f"fixture-server: pid={app} got Terminated")
            h.wait_log(f"The dead next handoff's generation (pid {app}) has exited.")
            check(alive(h.pid) and one_serving(h) == old, "the old generation serves on")
        no_failures(load)
        check("did not exit in time" not in h.log(), "no SIGKILL")
        stop_clean(h)
    finally:
        teardown(h, load)


def test_dead_next_handoffs_generation_held_to_its_drain_deadline(tmp):
    """The dead next handoff's generation (as above) ignores its stop
    signal: "handoff status" shows it retiring, orphaned, with the time to
    its SIGKILL; at --drain-timeout it gets SIGKILL, and the old generation
    serves on. A stop meanwhile would wait for it (drained())."""
    need("handover")
    # The status below is read right after the SIGTERM's log line and must
    # find the generation still there: 10 s to the deadline, as long as
    # this file's waits, since a loaded machine can take 3 s to read it.
    drain = 10
    h = start(tmp, f"--drain-timeout={drain}s", env=channel_shim(kill_after="READY"))
    try:
        old = serving_pid(h.port)
        asked = time.monotonic_ns() // 1000
        _, app = next_handoff_killed_at_its_ready(h, 2, "--ignore-sigterm")
        h.wait_log(f"Retiring the dead next handoff's generation (pid {app}): sent SIGTERM.")
        st = status_json(h.pid)
        gens = [g for g in st["generations"] if g["pid"] == app]
        check(len(gens) == 1, f"status shows it: {gens}")
        g = gens[0]
        check(g["role"] == "retiring" and g["orphaned"] and not g["previous_handoff"] and g["number"] == 2,
              f"retiring, orphaned, generation 2: {g}")
        check(g["ready"] and g["ready_timestamp_monotonic"] >= g["start_timestamp_monotonic"],
              f"ready when its handoff died: {g}")
        # The deadline: the drain timeout from the retirement, which came
        # after the SIGHUP and before the snapshot (both CLOCK_MONOTONIC).
        since = st["timestamp_monotonic"] - asked
        check(g["kill_in_ms"] is not None and (drain * 1000000 - since) // 1000 <= g["kill_in_ms"] <= drain * 1000,
              f"SIGKILL {drain} s after the retirement, {since} us after the SIGHUP: {g}")
        deadline = st["timestamp_monotonic"] + g["kill_in_ms"] * 1000
        check(alive(app), "it ignores its SIGTERM")
        h.wait_log(f"The dead next handoff's generation (pid {app}) did not exit in time; sending SIGKILL.",
                   timeout=drain + 10)
        # Seen at the deadline or after (never before: it is seen late if
        # at all), so not sent before it.
        seen = time.monotonic_ns() // 1000
        check(seen >= deadline, f"SIGKILL {deadline - seen} us before the deadline status showed")
        wait_for(lambda: not alive(app), 10, f"generation 2 (pid {app}) killed")
        h.wait_log(f"The dead next handoff's generation (pid {app}) has exited.")
        check(one_serving(h) == old, "the old generation serves on")
        check(not [g for g in status_json(h.pid)["generations"] if g["orphaned"]], "and status shows no orphan")
        stop_clean(h)
    finally:
        teardown(h)


def process_group(pid):
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[2])
    except OSError:
        return None


def test_dead_next_handoffs_generation_workers_held_to_its_drain_deadline(tmp):
    """The dead next handoff's generation (as above), without a cgroup: its
    main exits at once at its stop signal and leaves its workers serving.
    Nobody else tracks them: the old main holds its process group to the
    drain deadline, SIGKILLs what is left of it then, and only then counts
    the generation as ended. Before, the old main counted it ended with its
    main, and the workers served on with the failed reload's code for good
    (before the graceful retirement, they died with the group's SIGKILL)
    *(found by review, fixed)*."""
    need("handover")
    h = start(tmp, "--drain-timeout=2s", env=channel_shim(kill_after="READY"))
    try:
        old = serving_pid(h.port)
        _, app = next_handoff_killed_at_its_ready(h, 2, *WORKERS_OUTLIVE_MAIN)
        h.wait_log(f"Retiring the dead next handoff's generation (pid {app}): sent SIGTERM.")
        wait_for(lambda: not alive(app), 10, f"its main (pid {app}) exits at once")
        workers = lambda: [p for p in h.descendants() if process_group(p) == app]
        check(workers(), "its workers run on")
        g = wait_for(lambda: [g for g in status_json(h.pid)["generations"] if g["orphaned"] and g["main_exited"]],
                     5, "status shows it, its main exited")[0]
        check(g["pid"] == app and g["role"] == "retiring", f"retiring, generation 2: {g}")
        h.wait_log(f"The dead next handoff's generation (pid {app}, exited) did not exit in time; sending SIGKILL.")
        h.wait_log(f"The dead next handoff's generation (pid {app}) has exited.")
        wait_for(lambda: not workers(), 5, f"its workers killed: {describe(workers())}")
        check(one_serving(h) == old, "the old generation serves on")
        stop_clean(h)
    finally:
        teardown(h)


def next_handoff_killed_at_its_failure(h, *args, held_by="process group", app_read=None):
    """A reload to generation 2 (started with WORKERS_OUTLIVE_MAIN and
    args) whose main exits (--exit-after) once it is ready, while systemd's
    barrier is held: its next handoff reaps that main, says FAILED, and the
    channel shim (kill_after="FAILED") SIGKILLs it before it stops the
    workers. Returns the generation's main's pid and a function listing its
    workers alive now. held_by: what the old main retires them by, its
    process group (or with --cgroup=yes "cgroup of pid"). app_read: the
    channel shim's until= file, made once the next handoff has died (its
    hold_read="APP ": the old main reads APP only then)."""
    set_args(h.args_file, "--init-delay", "50", "--exit-after", "300", *WORKERS_OUTLIVE_MAIN, *args)
    h.notify.hold = True
    h.signal(signal.SIGHUP)
    succ = next_handoff_pid(h, 2)
    app = h.generation_pid(2)
    wait_for(lambda: not alive(succ), 10, f"the next handoff (pid {succ}) dies at its FAILED")
    if app_read:
        open(app_read, "w").close()
    h.notify.release()
    check(stat_fields(app) is None, f"generation 2's main (pid {app}) reaped by its next handoff")
    workers = lambda: [p for p in h.descendants() if process_group(p) == app]
    check(len(workers()) == 2, "its two workers run on")
    h.wait_log(f"Retiring the dead next handoff's generation (its main gone, {held_by} {app}): sent SIGTERM.", 10)
    return app, workers


def test_dead_next_handoffs_workers_retired_after_its_main_exited(tmp):
    """The dead next handoff's generation (as above) had left its workers
    serving: the old main retires them by its process group, they drain at
    the SIGTERM, and the old generation serves on; no request fails.
    Before, the old main handed on the app only while its main lived: the
    workers served the failed reload's code for good *(found by review,
    fixed)*."""
    need("handover")
    h = start(tmp, env=channel_shim(kill_after="FAILED"))
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        old = serving_pid(h.port)
        app, workers = next_handoff_killed_at_its_failure(h)
        wait_for(lambda: not workers(), 10, f"its workers drain and exit: {describe(workers())}")
        h.wait_log(f"The dead next handoff's generation (pid {app}) has exited.")
        check(alive(h.pid) and one_serving(h) == old, "the old generation serves on")
        no_failures(load)
        check("did not exit in time" not in h.log(), "no SIGKILL")
        stop_clean(h)
    finally:
        teardown(h, load)


def test_dead_next_handoffs_workers_held_to_its_drain_deadline_after_its_main_exited(tmp):
    """As above, with workers that ignore SIGTERM: the old main SIGKILLs
    them at the drain deadline, and the old generation serves on."""
    need("handover")
    h = start(tmp, "--drain-timeout=2s", env=channel_shim(kill_after="FAILED"))
    try:
        old = serving_pid(h.port)
        app, workers = next_handoff_killed_at_its_failure(h, "--ignore-sigterm")
        check(len(workers()) == 2, "its workers ignore SIGTERM")
        h.wait_log(f"The dead next handoff's generation (pid {app}, exited) did not exit in time; sending SIGKILL.",
                   10)
        wait_for(lambda: not workers(), 5, f"its workers killed: {describe(workers())}")
        h.wait_log(f"The dead next handoff's generation (pid {app}) has exited.")
        check(one_serving(h) == old, "the old generation serves on")
        stop_clean(h)
    finally:
        teardown(h)


def test_dead_next_handoffs_workers_held_to_its_drain_deadline_after_its_main_exited_cgroup(tmp):
    """As above, with a delegated cgroup (--cgroup=yes): generation 2's
    workers are retired as its gen-2 cgroup, which the old main read off
    its main at APP, and SIGKILLed at the drain deadline. Before, the old
    main knew no cgroup of the dead next handoff's generation once its main
    had gone, retired nothing, and the workers served the failed reload's
    code for good *(found by review, fixed)*."""
    need("handover")
    with private_cgroup() as cg:
        h = start(tmp, "--cgroup=yes", "--drain-timeout=2s", env=channel_shim(kill_after="FAILED"))
        try:
            old = serving_pid(h.port)
            app, workers = next_handoff_killed_at_its_failure(h, "--ignore-sigterm", held_by="cgroup of pid")
            check(len(workers()) == 2, "its workers ignore SIGTERM")
            h.wait_log(f"The dead next handoff's generation (pid {app}) runs in {cg}/gen-2.")
            h.wait_log(f"The dead next handoff's generation (pid {app}, exited) did not exit in time; sending SIGKILL "
                       f"to its cgroup {cg}/gen-2.", 10)
            wait_for(lambda: not workers(), 5, f"its workers killed: {describe(workers())}")
            h.wait_log(f"The dead next handoff's generation (pid {app}) has exited.")
            check(one_serving(h) == old, "the old generation serves on")
            stop_clean(h)
        finally:
            teardown(h)


def test_dead_next_handoffs_workers_retired_after_its_app_read_late_cgroup(tmp):
    """As above, with the old main reading the next handoff's APP only once
    the generation's main has been reaped (the channel shim holds the read
    until the next handoff has died), as on a loaded machine: no cgroup of
    the generation known, the old main retires its workers by process
    group, as without a cgroup, and they drain at the SIGTERM. Before, with
    a cgroup it looked for them only in a cgroup named, retired nothing,
    and they served the failed reload's code for good *(found by review,
    fixed)*."""
    need("handover")
    app_read = os.path.join(tmp, "app-read")
    with private_cgroup():
        h = start(tmp, "--cgroup=yes", env=channel_shim(kill_after="FAILED", hold_read="APP ", until=app_read))
        try:
            old = serving_pid(h.port)
            app, workers = next_handoff_killed_at_its_failure(h, app_read=app_read)
            wait_for(lambda: not workers(), 10, f"its workers drain and exit: {describe(workers())}")
            h.wait_log(f"The dead next handoff's generation (pid {app}) has exited.")
            check(one_serving(h) == old, "the old generation serves on")
            check("did not exit in time" not in h.log(), "no SIGKILL")
            stop_clean(h)
        finally:
            teardown(h)


def test_stop_waits_for_a_dead_next_handoffs_generation(tmp):
    """The dead next handoff's generation (as above) ignores its stop
    signal: a stop meanwhile waits for it (it is shown retiring, orphaned,
    while the old main stops); a second stop SIGKILLs it, and handoff
    exits."""
    need("handover")
    h = start(tmp, "--drain-timeout=30s", env=channel_shim(kill_after="READY"))
    try:
        _, app = next_handoff_killed_at_its_ready(h, 2, "--ignore-sigterm")
        h.wait_log(f"Retiring the dead next handoff's generation (pid {app}): sent SIGTERM.")
        os.kill(h.pid, signal.SIGTERM)
        wait_for(lambda: status_json(h.pid)["state"] == "stopping" and
                 [g["pid"] for g in status_json(h.pid)["generations"]] == [app], 10,
                 "stopping, generation 1 gone, generation 2 left")
        check(alive(h.pid) and alive(app), "handoff waits for it")
        os.kill(h.pid, signal.SIGTERM)
        h.wait_log("Second stop request: killing every generation now.")
        check(h.wait_exit(10) is not None, f"handoff exits:\n{h.log()}")
        check(not alive(app), f"generation 2 (pid {app}) killed")
        nothing_left(h)
    finally:
        teardown(h)

def test_kill_new_main_after_commit(tmp):
    """The next handoff, now the main process, is SIGKILLed while the
    old main drains. systemd sees its main process killed: Restart=
    applies, and KillMode= (control-group or mixed) kills everything left
    in the cgroup. Outside systemd nothing does: the old main finishes its
    drain and exits 0, but the new generation, orphaned, keeps serving on
    the shared socket (reparented to the subreaper: here the test). handoff
    does not make a generation die with its handoff (no PR_SET_PDEATHSIG)."""
    need("handover")
    h = start(tmp)
    try:
        old, slow, new_main, _ = reload_under_slow_request(h, 1500)
        wait_for(lambda: "Took over as the main process" in h.log(), 10, "takeover")
        app = h.generation_pid(2)
        os.kill(new_main, signal.SIGKILL)
        check(h.proc.wait(timeout=20) == 0, "the old main finished its drain")
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == old, f"{slow.status} {slow.pid} {slow.error}")
        check(alive(app) and ppid_of(app) == os.getpid(), f"the orphaned generation {app} runs on")
        check(http_get(h.port)[2] == app, "and serves")
        check(h.app_pids() == [app], f"it is the only process left: {h.descendants()}")
    finally:
        teardown(h)


def test_next_handoff_killed_after_the_barrier_timed_out(tmp):
    """MAINPID= names the next handoff and systemd does not answer the
    barrier (held past handoff's 5 s): the old main hands over anyway, and
    the next handoff, main now, is SIGKILLed while the old main drains.
    systemd may not have read MAINPID= yet; it refuses it then for a
    process that no longer runs, and the old main is its main still, whose
    exit is the service's. Generation 1 had its stop signal at the
    takeover and cannot serve again: the old main finishes its drain (the
    held request is answered) and exits with the status systemd would have
    had from the next handoff (137: killed by SIGKILL; 1 where the kernel
    cannot say, before Linux 6.15), so that Restart=on-failure restarts the
    service. Before, it exited 0: the service ended cleanly, not restarted,
    with the dead next handoff's generation serving on unsupervised."""
    need("handover")
    fifo = os.path.join(tmp, "hold")
    os.mkfifo(fifo)
    h = start(tmp, args=("--init-delay", "100", "--hold-fifo", fifo))
    try:
        old = serving_pid(h.port)
        # GET /hold: in flight until the fifo is opened and closed, so the
        # old main drains for as long as the test needs.
        held = SlowRequest(h.port, 0, path="/hold")
        wait_for(lambda: fifo in fd_links(old), 10, "generation 1 holds the request")
        set_args(h.args_file, "--init-delay", "50")
        succ = held_at_mainpid(h)
        h.wait_log(f"handoff[{h.pid}]: The service manager did not answer BARRIER=1 in time; handing over anyway.",
                   timeout=20)
        h.wait_log(f"handoff[{succ}]: Took over as the main process")
        app = h.generation_pid(2)
        os.kill(succ, signal.SIGKILL)
        wait_for(lambda: h.exit_status(succ) is not None, 10, f"the next handoff (pid {succ}) reaped")
        check(alive(h.pid), f"premise: the old main still drains:\n{h.log()}")
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        held.join(timeout=20)
        check(held.status == 200 and held.pid == old, f"{held.status} {held.pid} {held.error}")
        how, status = ("killed by signal SIGKILL", 128 + signal.SIGKILL) if pidfd_gives_exit_status() else \
            ("its status unknown", 1)
        code = h.proc.wait(timeout=20)
        check(code == status, f"the old main exits {status}, not {code}:\n{h.log()}")
        h.wait_log(f"handoff[{h.pid}]: The next handoff (pid {succ}) exited ({how}) before this process, and the "
                   f"service manager did not confirm MAINPID= naming it; exiting with status {status}.")
        check(alive(app), f"premise: the dead next handoff's generation (pid {app}) runs on, for the manager to stop")
    finally:
        teardown(h)


# ---- handover: a next handoff's start racing its death, a chain of reloads, -----
# ---- and the gap between MAINPID= and NAMED ----------------------------------

def armed_shim(tmp, **behaviour):
    """The channel shim (channel_shim()), armed by arm() for one kill."""
    return channel_shim(armed=os.path.join(tmp, "shim.armed"), **behaviour)


def arm(tmp):
    open(os.path.join(tmp, "shim.armed"), "w").close()


def fired(tmp):
    return not os.path.exists(os.path.join(tmp, "shim.armed"))


def serves_on(h, load, old, number):
    """After a reload that failed: the old main is main (MAINPID= never
    moved, or named it again), generation 1 (old) serves on, the main
    answers "handoff status", the next reload (to generation number)
    works, no request failed, and a stop leaves nothing."""
    check(h.main_pid() == h.pid and alive(h.pid), f"the old main is main: {h.mains()}\n{h.log()}")
    check(one_serving(h) == old, "the old generation serves on")
    check(status_json(h.pid)["state"] == "serving", "the main answers handoff status")
    reloads_and_stops(h, load, number)


def next_handoff_killed_after(tmp, prefix, cold):
    """A reload whose next handoff the channel shim SIGKILLs right after it
    sent its first message of prefix: "FEATURES " (its first report once
    it runs handoff's code: started cold, the standby being unusable after
    an upgrade, or the standby told GO) or "APP " (its generation starts).
    (Right after its "PID", before it runs handoff's code:
    test_kill_next_handoff_before_its_app; that message is sent by a raw
    system call the shim cannot see.) The old main sees it gone (its pidfd,
    or its channel's end of file, whichever first) and rolls back; what the
    dead one started is retired; generation 1 serves throughout."""
    need("handover")
    exe = os.path.join(tmp, "handoff")
    put(exe)
    h = start(tmp, exe=exe, env=armed_shim(tmp, kill_after=prefix))
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        sb = wait_for(lambda: [p for p in h.standbys() if (stat_fields(p) or "?")[0] == "S"], 10,
                      "the standby, waiting")[0]
        if cold:
            # An upgrade: the standby runs a file no longer at the path.
            put(exe)
        arm(tmp)
        old, n, succ = next_handoff_begun(h, "--init-delay", "300")
        check((succ == sb) != cold, f"the next handoff {succ} is {'not ' if cold else ''}the standby {sb}")
        wait_for(lambda: fired(tmp) and not alive(succ), 10, f"the next handoff {succ} killed after {prefix!r}")
        h.wait_ready(n + 1, timeout=20)
        check(f"generation 2 failed: next handoff (pid {succ}) exited" in h.last_status()
              or f"generation 2 failed: next handoff (pid {succ}) closed its channel" in h.last_status(),
              h.last_status())
        if prefix == "APP ":
            app = h.generation_pid(2)
            wait_for(lambda: not alive(app), 10, f"its generation (pid {app}) retired")
        else:
            check("Started generation 2" not in h.log(), "no app was started")
        serves_on(h, load, old, 3)
    finally:
        teardown(h, load)


def test_next_handoff_started_cold_killed_at_its_first_report(tmp):
    next_handoff_killed_after(tmp, "FEATURES ", cold=True)


def test_next_handoff_from_the_standby_killed_at_its_first_report(tmp):
    next_handoff_killed_after(tmp, "FEATURES ", cold=False)


def test_next_handoff_killed_right_after_it_started_its_generation(tmp):
    next_handoff_killed_after(tmp, "APP ", cold=False)


def mainpid_waiting_for_room(h):
    """Handover mode: the manager's socket filled and not read, a reload
    whose next handoff is ready and whose MAINPID= waits for room. Returns
    the old generation's pid, the reload's generation number, the next
    handoff's pid and how many fillers were sent."""
    h.notify.pause()
    filled = h.notify.fill()
    old, n, succ = next_handoff_begun(h, "--init-delay", "50")
    h.wait_log("MAINPID= waits for room", timeout=20)
    check(f"The next handoff (pid {succ}) is ready" in h.log(), "premise: its READY came")
    return old, n, succ, filled


def test_next_handoff_killed_while_mainpid_waits_for_room(tmp):
    """Its generation ready (READY on the channel), MAINPID= not sent yet:
    the manager's socket is full, so it waits for room. The next handoff
    is SIGKILLed then: MAINPID= never goes out, the old main rolls back,
    and generation 1 serves on under load. (Without load:
    test_next_handoff_dies_while_mainpid_waits_for_room, test-reload.py.)"""
    need("handover")
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        old, n, succ, filled = mainpid_waiting_for_room(h)
        os.kill(succ, signal.SIGKILL)
        h.wait_log(f"Reload failed: next handoff (pid {succ})", timeout=10)
        h.notify.resume()
        wait_for(lambda: h.notify.count("X_FILLER") >= filled, 10, "the fillers read")
        h.wait_ready(n + 1, timeout=20)
        check(h.notify.count("MAINPID") == 0, f"no MAINPID=: {h.mains()}")
        serves_on(h, load, old, 3)
    finally:
        h.notify.resume()
        teardown(h, load)


def test_next_handoff_dead_unreaped_while_mainpid_waits_for_room(tmp):
    """As test_next_handoff_killed_while_mainpid_waits_for_room, but the
    manager reads again while the dead next handoff is still a zombie (the
    test, its parent, holds its reaping): its exit is seen, its status not
    there yet, and the old main waits up to 1 s for that status before it
    reports the exit. The room that comes meanwhile must not send MAINPID=
    naming it. Before, it did, and only the barrier's answer named the old
    main again (hand_back())."""
    need("handover")
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        old, n, succ, filled = mainpid_waiting_for_room(h)
        with reaping_held(succ):
            os.kill(succ, signal.SIGKILL)
            wait_for(lambda: (stat_fields(succ) or "?")[0] == "Z", 10, f"the next handoff {succ} a zombie")
            h.notify.resume()
            wait_for(lambda: h.notify.count("X_FILLER") >= filled, 10, "the fillers read")
            h.wait_ready(n + 1, timeout=20)
            check(h.notify.count("MAINPID") == 0, f"no MAINPID=: {h.mains()}\n{h.log()}")
            check(f"generation 2 failed: next handoff (pid {succ}) exited before it was named main"
                  in h.last_status(), h.last_status())
        serves_on(h, load, old, 3)
    finally:
        h.notify.resume()
        teardown(h, load)


def test_chain_middle_next_handoff_killed_before_it_is_named(tmp):
    """Two reloads back to back, A to B to C: the second is asked for while
    B's generation starts (coalesced in A), and B is SIGKILLed then. A rolls
    back, then runs the reload it had pending: C takes over, its generation
    serves, and the chain goes on from there."""
    need("handover")
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        old, n, b = next_handoff_begun(h, "--init-delay", "5000")
        app = h.generation_pid(2)
        set_args(h.args_file, "--init-delay", "50")
        h.signal(signal.SIGHUP)
        h.wait_log_re(rf"handoff\[{h.pid}\]: Reload requested \(SIGHUP.*\n(.*\n)*.*handoff\[{h.pid}\]: Reload "
                      r"requested \(SIGHUP", 10)
        os.kill(b, signal.SIGKILL)
        c = next_handoff_pid(h, 3)
        h.wait_log(f"handoff[{h.pid}]: Handed over to handoff pid {c}", 20)
        h.wait_log(f"handoff[{c}]: Took over as the main process")
        h.wait_ready(n + 2, timeout=20)
        check(h.mains() == [h.pid, c], f"MAINPID= named C only: {h.mains()}")
        check(f"handoff[{h.pid}]: Reload failed: next handoff (pid {b})" in h.log(), "the first reload failed")
        wait_for(lambda: not alive(app), 10, f"B's generation (pid {app}) retired")
        gen3 = one_serving(h)
        check(gen3 == h.generation_pid(3) != old, f"generation 3 serves: {gen3}")
        check(status_json(c)["state"] == "serving", "C answers handoff status")
        reloads_and_stops(h, load, 4)
    finally:
        teardown(h, load)


def test_chain_middle_next_handoff_killed_after_it_was_named(tmp):
    """A to B to C again, B SIGKILLed after MAINPID= named it (systemd's
    barrier held), with the second reload asked of A meanwhile: A names
    itself main again (hand_back), rolls back, and runs the pending reload:
    C takes over, generation 1 having served throughout."""
    need("handover")
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        set_args(h.args_file, "--init-delay", "50")
        n = h.ready_count()
        b = held_at_mainpid(h)
        check(b != h.pid, f"MAINPID= names B: {h.mains()}")
        app = h.generation_pid(2)
        os.kill(h.pid, signal.SIGHUP)
        h.wait_log_re(rf"handoff\[{h.pid}\]: Reload requested \(SIGHUP.*\n(.*\n)*.*handoff\[{h.pid}\]: Reload "
                      r"requested \(SIGHUP", 10)
        os.kill(b, signal.SIGKILL)
        wait_for(lambda: not alive(app), 10, "B's generation is retired by A")
        h.notify.release()
        handed_back(h, b)
        c = next_handoff_pid(h, 3)
        h.wait_log(f"handoff[{h.pid}]: Handed over to handoff pid {c}", 20)
        h.wait_log(f"handoff[{c}]: Took over as the main process")
        h.wait_ready(n + 2, timeout=20)
        check(h.mains() == [h.pid, b, h.pid, c], f"MAINPID= named B, A again, then C: {h.mains()}")
        gen3 = one_serving(h)
        check(gen3 == h.generation_pid(3), f"generation 3 serves: {gen3}")
        check(status_json(c)["state"] == "serving", "C answers handoff status")
        reloads_and_stops(h, load, 4)
    finally:
        teardown(h, load)


def test_next_handoff_killed_between_mainpid_and_named(tmp):
    """MAINPID= names the next handoff, and the shim SIGKILLs it right
    after; systemd's barrier is answered once it is gone, so systemd may
    have refused it. As after a kill with the barrier held
    (test_kill_next_handoff_after_ready_before_commit): the old main names
    itself main again and rolls back; generation 1 serves on."""
    need("handover")
    h = start(tmp, env=armed_shim(tmp, kill_at_mainpid="named"))
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        old = serving_pid(h.port)
        set_args(h.args_file, "--init-delay", "50")
        n = h.ready_count()
        arm(tmp)
        succ = held_at_mainpid(h)
        check(fired(tmp), "the shim killed")
        wait_for(lambda: not alive(succ), 10, f"the next handoff (pid {succ}) killed at MAINPID=")
        h.notify.release()
        handed_back(h, succ)
        h.wait_ready(n + 1, timeout=20)
        check(f"last: generation 2 failed: next handoff (pid {succ}) exited before it took over" in h.last_status(),
              h.last_status())
        check(f"handoff[{h.pid}]: Handed over" not in h.log(), "no TAKEOVER went")
        serves_on(h, load, old, 3)
    finally:
        teardown(h, load)


def test_kill_old_main_between_mainpid_and_named(tmp):
    """The old main is SIGKILLed right after its MAINPID= went to the
    service manager (the shim): systemd names the next handoff main (it
    applies a dead sender's MAINPID= before its SIGCHLD), which has not
    been told TAKEOVER. It takes over by itself, retires generation 1 and
    serves on, and answers status and the next reload; no request fails.
    Before, NAMED came after MAINPID=: the next handoff had heard neither,
    took the end of file for an abort and stopped (exit 1: under systemd
    its main's death, a restart, generation 1 killed) *(found by this
    test, fixed)*."""
    need("handover")
    h = start(tmp, env=armed_shim(tmp, kill_at_mainpid="self"))
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        arm(tmp)
        old, _, succ = next_handoff_begun(h, "--init-delay", "50")
        check(h.proc.wait(timeout=20) == -signal.SIGKILL, f"the old main killed at MAINPID=:\n{h.log()}")
        h.notify.wait_count("MAINPID", 1, value=str(succ))
        check(h.mains() == [h.pid, succ], f"MAINPID= named the next handoff: {h.mains()}")
        check(f"handoff[{h.pid}]: Handed over" not in h.log(), "premise: no TAKEOVER went")
        h.wait_log(f"handoff[{succ}]: Retiring the previous handoff's generation (pid {old}): sent SIGTERM.", 10)
        wait_for(lambda: not alive(old), 10, f"generation 1 (pid {old}) exits:\n{h.log()}")
        check(alive(succ), f"the next handoff serves on:\n{h.log()}")
        gen2 = h.generation_pid(2)
        check(one_serving(h) == gen2, "generation 2 serves")
        check(status_json(succ)["state"] == "serving", "the new main answers handoff status")
        reloads_and_stops(h, load, 3)
        runtime_files_removed(h, h.pid)
    finally:
        teardown(h, load)


def test_kill_old_main_at_mainpid_during_handoffctl_reload(tmp):
    """As test_kill_old_main_between_mainpid_and_named, with the reload
    asked for by "handoffctl reload" (systemd's ExecReload=): its connection
    to the old main closes without an answer, so it asks the old main's next
    handoff ("OUTCOME <pid> <start time>"), which answers once it has taken
    over by itself: the reload succeeded, exit 0, with the generation that
    serves.
    Before, the client said the old main closed the connection without an
    answer and exited 3, and "systemctl reload" failed for a reload that
    had succeeded."""
    need("handover")
    h = start(tmp, env=armed_shim(tmp, kill_at_mainpid="self"))
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        set_args(h.args_file, "--init-delay", "50")
        arm(tmp)
        p = subprocess.run([HANDOFFCTL, "reload", f"--pid={h.pid}", "--timeout=30s"], capture_output=True,
                           text=True, timeout=60)
        succ = next_handoff_pid(h, 2)
        check(h.proc.wait(timeout=20) == -signal.SIGKILL, f"the old main killed at MAINPID=:\n{h.log()}")
        check(h.mains() == [h.pid, succ], f"MAINPID= named the next handoff: {h.mains()}")
        gen2 = h.generation_pid(2)
        check(p.returncode == 0, f"handoffctl reload: exit {p.returncode}: {p.stderr}\n{h.log()}")
        check(p.stdout.startswith(f"reloaded: generation 2, pid {gen2}, "), p.stdout)
        check(f"handoff pid {h.pid} exited before it answered; the reload ended in its next handoff, pid {succ}."
              in p.stderr, p.stderr)
        check(one_serving(h) == gen2, "generation 2 serves")
        reload_ok(h, 3)
        no_failures(load)
        stop_clean(h)
    finally:
        teardown(h, load)


def test_next_handoff_heard_past_a_handoff_that_never_answers(tmp):
    """As test_kill_old_main_at_mainpid_during_handoffctl_reload, with more
    control sockets in the runtime directory whose processes take the
    connection and never answer (a handoff stopped or frozen, another
    service's where several share /run/handoff): the client asks the
    handoffs there at once, so the next handoff's answer ends its wait, exit
    0. Before, it asked them one by one, and a silent one listed before the
    next handoff held it until --timeout: exit 4. (On tmpfs a directory is
    listed in the order its files were made, or the reverse: one silent
    socket is made before the next handoff's, one after.)"""
    need("handover")
    base = tmpfs_dir()
    if base is None:
        raise Skip("needs a tmpfs (/run or /dev/shm): a runtime directory listed in the order it was filled")
    runtime = tempfile.mkdtemp(prefix="handoff-test-", dir=base)
    before = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    before.bind(os.path.join(runtime, f"control.{os.getpid()}"))
    before.listen(8)
    after = None
    h = start(tmp, env={**armed_shim(tmp, kill_at_mainpid="self"), "RUNTIME_DIRECTORY": runtime})
    try:
        set_args(h.args_file, "--init-delay", "1500")
        arm(tmp)
        p = subprocess.Popen([HANDOFFCTL, "reload", f"--pid={h.pid}", "--timeout=30s"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "RUNTIME_DIRECTORY": runtime})
        succ = next_handoff_pid(h, 2)
        wait_for(lambda: os.path.exists(os.path.join(runtime, f"control.{succ}")), 10, "the next handoff's socket")
        listen = ("import os, socket, sys; s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); "
                  "s.bind(sys.argv[1] + '/control.%d' % os.getpid()); s.listen(8); print(flush=True); sys.stdin.read()")
        after = subprocess.Popen([PYTHON, "-c", listen, runtime], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        after.stdout.readline()
        check(not fired(tmp), f"the silent socket is made before the old main is killed:\n{h.log()}")
        out, err = p.communicate(timeout=60)
        check(h.proc.wait(timeout=20) == -signal.SIGKILL, f"the old main killed at MAINPID=:\n{h.log()}")
        check(p.returncode == 0, f"handoffctl reload: exit {p.returncode}: {err}\n{h.log()}")
        check(f"the reload ended in its next handoff, pid {succ}." in err, err)
        check(out.startswith(f"reloaded: generation 2, pid {h.generation_pid(2)}, "), out)
        stop_clean(h)
    finally:
        teardown(h)
        if after:
            after.kill()
            after.wait()
        before.close()
        shutil.rmtree(runtime, ignore_errors=True)


def test_main_killed_while_its_reload_starts_during_handoffctl_reload(tmp):
    """"handoffctl reload", and the main SIGKILLed while the reload's new
    generation starts: nothing serves for the service after that (under
    systemd, a restart). In handover mode the client asks the next handoff
    ("OUTCOME <pid> <start time>"), which never was named main: it gives up,
    and so the reload failed (exit 1, with why). In supervise mode there is
    none to ask: as before, the main closed the connection without an answer
    (exit 3). Before, handover mode said that too. (Generation 2 ignores
    SIGTERM, so that the next handoff, stopping, is still there to be asked
    until its drain deadline: one that has exited answers nothing, exit 3.)"""
    h = start(tmp)
    try:
        set_args(h.args_file, "--init-delay", "60000", "--ignore-sigterm")
        p = subprocess.Popen([HANDOFFCTL, "reload", f"--pid={h.pid}", "--timeout=30s"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        h.wait_log(f"handoff[{h.pid}]: Reload requested (control socket).")
        succ = next_handoff_pid(h, 2) if MODE == "handover" else None
        gen2 = h.generation_pid(2)
        wait_for(lambda: ignores(gen2, signal.SIGTERM), 10, f"generation 2 (pid {gen2}) ignores SIGTERM")
        os.kill(h.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        if MODE == "handover":
            check(p.returncode == 1, f"handoffctl reload: exit {p.returncode}: {err}\n{h.log()}")
            check(err == f"handoffctl: handoff pid {h.pid} exited before it answered; the reload ended in its next "
                  f"handoff, pid {succ}.\nhandoffctl: this handoff gave up before it took over\n", err)
        else:
            check(p.returncode == 3, f"handoffctl reload: exit {p.returncode}: {err}\n{h.log()}")
            check(err == f"handoffctl: handoff pid {h.pid} closed the connection without an answer.\n", err)
        check(out == "", out)
    finally:
        teardown(h)


# ---- many --listen unix sockets: what the old main says on the channel ---------

def unix_listens_paths(tmp, n):
    return [os.path.join(tmp, "u", f"{i:04d}") for i in range(n)]


def unix_listens(tmp, n):
    """n --listen unix: sockets in tmp, and their paths."""
    os.mkdir(os.path.join(tmp, "u"))
    paths = unix_listens_paths(tmp, n)
    return [a for p in paths for a in ("-l", f"unix:{p}")], paths


def channel_holds(message):
    """How many messages as long as message the handover channel (a
    SOCK_SEQPACKET pair with the default buffer) holds while its reader
    reads nothing."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        a.setblocking(False)
        n = 0
        while True:
            try:
                a.send(message.encode())
            except BlockingIOError:
                return n
            n += 1


def unlink_message(tmp):
    """What the old main used to send for each of unix_listens()'s paths."""
    return "UNLINK " + os.path.join(tmp, "u", "0000")


def old_main_killed_at_mainpid_with_many_unix_sockets(tmp, older):
    """The old main SIGKILLed right after MAINPID=, as in
    test_kill_old_main_between_mainpid_and_named, with more --listen unix
    sockets than the channel holds UNLINK messages of, and a next handoff
    that reads nothing more until the old main is dead (as one starved of
    CPU would). It takes over by itself all the same. older: the next
    handoff seems of a version that takes no UNLINKS (the shim drops its
    FEATURES): it is told of the first CHANNEL_MAX_UNLINK files only, and
    leaves the rest at its final stop. Returns the socket files left
    after that stop, and their number."""
    need("handover")
    n = channel_holds(unlink_message(tmp)) + 50
    listens, paths = unix_listens(tmp, n)
    released = os.path.join(tmp, "released")
    shim = armed_shim(tmp, kill_at_mainpid="self", hold_read="UNLINK", until=released,
                      **({"drop": "FEATURES "} if older else {}))
    h = start(tmp, *listens, env=shim)
    try:
        arm(tmp)
        old, _, succ = next_handoff_begun(h, "--init-delay", "50")
        check(h.proc.wait(timeout=20) == -signal.SIGKILL, f"the old main killed at MAINPID=:\n{h.log()}")
        check(h.mains() == [h.pid, succ], f"MAINPID= named the next handoff: {h.mains()}")
        open(released, "w").close()
        h.wait_log(f"handoff[{succ}]: Retiring the previous handoff's generation (pid {old}): sent SIGTERM.", 10)
        wait_for(lambda: not alive(old), 10, f"generation 1 (pid {old}) exits:\n{h.log()}")
        check(one_serving(h) == h.generation_pid(2), "generation 2 serves")
        check(all(os.path.exists(p) for p in paths), "premise: the socket files serve on")
        check(("of a version that takes a message for each unix socket file" in h.log()) == older,
              f"a warning for an older next handoff only:\n{h.log()}")
        stop_clean(h)
        return [p for p in paths if os.path.exists(p)], n
    finally:
        teardown(h)


def test_kill_old_main_at_mainpid_with_many_unix_sockets(tmp):
    """old_main_killed_at_mainpid_with_many_unix_sockets(): the next
    handoff removes every socket file at the final stop. Before, each path
    went in a message of its own, without waiting: they filled the
    channel's buffer, the rest were lost (EAGAIN), and so was NAMED after
    them; the next handoff took the end of file for an abort and stopped,
    with systemd naming it main: the service ended *(found by review)*."""
    left, n = old_main_killed_at_mainpid_with_many_unix_sockets(tmp, older=False)
    check(not left, f"{len(left)} of {n} socket files left after the final stop: {left[:3]}...")


def test_kill_old_main_at_mainpid_with_many_unix_sockets_older_next_handoff(tmp):
    """As above, with a next handoff of a version before UNLINKS: it gets a
    message for each of the first 64 paths (CHANNEL_MAX_UNLINK), which leave
    room for NAMED, so it takes over all the same; it removes those files
    at the final stop, and leaves the others, as the old main warned."""
    left, n = old_main_killed_at_mainpid_with_many_unix_sockets(tmp, older=True)
    check(left == unix_listens_paths(tmp, n)[64:], f"{len(left)} of {n} socket files left, the first at "
          f"{left[:1]}; the first 64 removed")


def test_mainpid_not_sent_with_many_unix_sockets(tmp):
    """MAINPID= cannot be sent (nobody is bound to the manager's socket)
    after NAMED went, with as many --listen unix sockets as leaves NAMED the
    last message the channel's buffer took in the old protocol, a path a
    message, while the next handoff read nothing: UNNAMED still reaches
    it, so it takes the old main's abort for one, not for its death. The
    old main serves on as the only main, generation 1 with it. Before,
    UNNAMED was lost (EAGAIN): the next handoff took over by itself and
    retired generation 1 while the old main served on as main *(found by
    review)*."""
    need("handover")
    n = channel_holds(unlink_message(tmp)) - 1
    listens, paths = unix_listens(tmp, n)
    released = os.path.join(tmp, "released")
    h = start(tmp, *listens, env=channel_shim(hold_sent="READY", until=released))
    try:
        old, _, succ = next_handoff_begun(h, "--init-delay", "1000")
        h.notify.wait_count("RELOADING", 1)
        h.notify.close()
        h.wait_log(f"Failed to tell the service manager MAINPID={succ}", 20)
        # Answered in a later turn of its loop than the rollback's UNNAMED.
        wait_for(lambda: status_json(h.pid)["reloads_failed"] == 1, 10, f"the reload failed:\n{h.log()}")
        open(released, "w").close()
        wait_for(lambda: not alive(succ), 20, f"the next handoff {succ} stops:\n{h.log()}")
        log = h.log()
        check(f"handoff[{succ}]: Retiring the previous handoff's generation" not in log and
              f"handoff[{succ}]: The previous handoff is gone after it had named this one main" not in log,
              f"the next handoff took the abort for one:\n{log}")
        check(alive(h.pid) and h.proc.poll() is None, f"the old main runs on:\n{log}")
        check(alive(old) and serving_pid(h.port) == old, f"generation 1 serves on:\n{log}")
        h.notify = HoldingSystemd(tmp, hold=False)
        set_args(h.args_file, "--init-delay", "50")
        h.signal(signal.SIGHUP)
        h.wait_ready(1, timeout=20)
        check(h.main_pid() not in (h.pid, succ), f"the next reload hands over: {h.mains()}")
        stop_clean(h)
        check(not any(os.path.exists(p) for p in paths), "the socket files are removed at the final stop")
    finally:
        teardown(h)


# ---- SIGKILL of the old handoff while it drains (handover mode) ------------------

def test_kill_old_main_while_draining(tmp):
    """After the takeover the old handoff is SIGKILLed while its generation
    drains a slow request. The generation had its SIGTERM already: it
    finishes the request and exits on its own (reaped by the subreaper:
    systemd, here the test). The new main notices the end of file on the
    channel and serves on. No request fails."""
    need("handover")
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        old, slow, _, _ = reload_under_slow_request(h, 1500)
        h.wait_log("Handed over to handoff pid")
        # The line comes just before the SIGTERM is sent: a SIGKILL at once
        # could land between the two. Its arrival, as the fixture says it.
        h.wait_log(f"fixture-server: pid={old} got Terminated")
        check(alive(old), "the old generation still drains")
        check(len(runtime_files(h, h.pid)) == 2, "premise: the old main's runtime files")
        os.kill(h.pid, signal.SIGKILL)
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == old, f"{slow.status} {slow.pid} {slow.error}")
        wait_for(lambda: not alive(old), 10, "the orphaned old generation exits after its drain")
        wait_for(lambda: "The previous handoff has exited." in h.log(), 10, "the new main saw it go")
        # ... and, once it has exited, removed what it could not.
        runtime_files_removed(h, h.pid)
        reloads_and_stops(h, load, 3)
    finally:
        teardown(h, load)


def test_kill_old_main_while_a_stubborn_generation_drains(tmp):
    """As above, but the old generation ignores SIGTERM: its drain deadline
    was the old handoff's to enforce. The new main holds it to that deadline
    too, from the takeover, through the pidfd that came with NAMED, and
    SIGKILLs it a second after the deadline once the old handoff is no
    longer there to. Before, it went on accepting with the old code until
    someone killed it: outside systemd, forever (it outlived even the new
    main's stop); under systemd, until the service stopped."""
    need("handover")
    h = start(tmp, SHORT_DRAIN, args=("--ignore-sigterm",))
    try:
        old, new_main = handover_from(h, h.pid)
        os.kill(h.pid, signal.SIGKILL)
        wait_for(lambda: not alive(old), 10, "the stubborn old generation killed at its drain deadline")
        check(f"handoff[{new_main}]: The previous handoff's generation (pid {old}) did not exit in time; sending "
              "SIGKILL." in h.log(), h.log())
        check(http_get(h.port)[2] != old, "no longer served by the old code")
        check(h.stop() == 0, h.log())
        check(h.app_pids() == [], f"nothing left: {h.descendants()}")
    finally:
        teardown(h)


def test_kill_old_main_without_a_service_manager_while_a_stubborn_generation_drains(tmp):
    """As above, with no service manager (forced --mode=handover, no
    NOTIFY_SOCKET): no MAINPID= goes out, so NAMED and its pidfd go right
    before TAKEOVER, and the new main holds the old generation to its drain
    deadline all the same. Before, nothing came: the stubborn generation
    went on accepting with the old code, and outlived even the new main's
    stop."""
    need("handover")
    h = start(tmp, SHORT_DRAIN, args=("--ignore-sigterm",), manager=False)
    try:
        old, new_main = handover_from(h, h.pid)
        os.kill(h.pid, signal.SIGKILL)
        wait_for(lambda: not alive(old), 10, f"the stubborn old generation killed at its drain deadline:\n{h.log()}")
        check(f"handoff[{new_main}]: The previous handoff's generation (pid {old}) did not exit in time; sending "
              "SIGKILL." in h.log(), h.log())
        check(http_get(h.port)[2] != old, "no longer served by the old code")
        stop_adopted(h, new_main)
        check(h.app_pids() == [], f"nothing left: {h.descendants()}")
    finally:
        # teardown() kills the new main too, and removes its runtime files.
        teardown(h)


def test_kill_old_main_between_named_and_takeover(tmp):
    """With no service manager, the old main dies right after NAMED, before
    TAKEOVER (an LD_PRELOAD shim, tests/fixtures/channel-shim.c, SIGKILLs
    it as soon as NAMED is sent): the next handoff, named main but never
    told to take over, takes over by itself, says so, retires the old
    generation through the pidfd that came with NAMED, removes the runtime
    files the old main passed on before NAMED, and serves generation 2; its
    stop then leaves nothing behind."""
    need("handover")
    # Every process in the session inherits the shim: the generations and
    # the next handoff too. Harmless: only an old main sends NAMED, and only
    # the first handoff is ever one here.
    h = start(tmp, manager=False, env=channel_shim(kill_after="NAMED "))
    try:
        old, _, new_main = next_handoff_begun(h, "--init-delay", "50")
        wait_for(lambda: h.proc.poll() is not None, 20, f"the old main's death at NAMED:\n{h.log()}")
        check(h.proc.returncode == -signal.SIGKILL, f"the old main killed at NAMED ({h.proc.returncode}):\n{h.log()}")
        check(f"handoff[{h.pid}]: Handed over to handoff pid" not in h.log(), "premise: no TAKEOVER went")
        h.wait_log(f"handoff[{new_main}]: The previous handoff is gone after it had named this one main (NAMED), "
                   "without telling it to take over (killed?); taking over by itself.", 10)
        h.wait_log(f"handoff[{new_main}]: Retiring the previous handoff's generation (pid {old}): sent SIGTERM.", 10)
        wait_for(lambda: not alive(old), 10, f"the old generation (pid {old}) exits:\n{h.log()}")
        gen2 = h.generation_pid(2)
        status, _, pid = http_get(h.port)
        check(status == 200 and pid == gen2 != old, f"generation 2 (pid {gen2}) answers, not pid {pid}:\n{h.log()}")
        stop_adopted(h, new_main)
        check(h.app_pids() == [], f"nothing left: {h.descendants()}")
        # The old main passed its own runtime files on before NAMED.
        runtime_files_removed(h, h.pid)
    finally:
        # The new main is in the first handoff's session: teardown kills it
        # and removes its runtime files.
        teardown(h)


def test_kill_old_main_between_named_and_takeover_pidfd_dropped(tmp):
    """As above, with NAMED's pidfd dropped on its way (the shim's recvmsg
    closes it and says MSG_CTRUNC, as the kernel does to a receiver out of
    fds): the next handoff warns, opens a pidfd of
    generation 1's main by the pid NAMED names (its process group), a
    process that started by generation 1's start as NAMED tells it, and
    retires it all the same. Before, it took NAMED for one of no serving generation,
    silently, and generation 1 served the old code on beside generation 2
    until the service stopped *(found by review, fixed)*."""
    pidfd_dropped_retired(tmp)


def test_kill_old_main_between_named_and_takeover_pidfd_dropped_late_fork(tmp):
    """As above, with every clone() 30 ms late (the shim: a spawner starved
    of CPU): generation 1's main started after the start time NAMED tells,
    by more than the clock tick /proc counts a start in, but before it was
    ready, which NAMED tells too and which came before NAMED. Before, its
    pidfd was opened only for a main that started by its generation's
    start, taken before the spawn: a main that forked in a later tick (any
    of them, here) was taken for another process of its pid, and
    generation 1 served on *(found by review, fixed)*."""
    pidfd_dropped_retired(tmp, clone_delay_ms="30")


def pidfd_dropped_retired(tmp, **shim):
    need("handover")
    h = start(tmp, manager=False, env=channel_shim(kill_after="NAMED ", drop_fd="NAMED ", **shim))
    try:
        old, _, new_main = next_handoff_begun(h, "--init-delay", "50")
        wait_for(lambda: h.proc.poll() is not None, 20, f"the old main's death at NAMED:\n{h.log()}")
        h.wait_log(f"handoff[{new_main}]: NAMED came without the pidfd of the previous handoff's generation 1 "
                   f"(the kernel dropped it: out of fds?); opened one of its main, pid {old}, instead.", 10)
        h.wait_log(f"handoff[{new_main}]: Retiring the previous handoff's generation (pid {old}): sent SIGTERM.", 10)
        wait_for(lambda: not alive(old), 10, f"the old generation (pid {old}) exits:\n{h.log()}")
        check(http_get(h.port)[2] == h.generation_pid(2), "generation 2 serves")
        stop_adopted(h, new_main)
        check(h.app_pids() == [], f"nothing left: {h.descendants()}")
    finally:
        teardown(h)


# Runs the command it is given (handoff) as its child, in a process group of
# its own in this session, as a child subreaper, as a supervisor that does
# not setsid() its services would; says how each child it reaps ended.
SESSION_SUBREAPER = r'''
import ctypes, os, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
if os.fork() == 0:
    os.setpgid(0, 0)
    os.execv(sys.argv[1], sys.argv[1:])
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    print(f"subreaper: pid {pid} exited {os.waitstatus_to_exitcode(status)}", flush=True)
'''


def test_kill_old_main_between_named_and_takeover_stopped_generation_continued(tmp):
    """As above, with generation 1 stopped before the reload (kill -STOP of
    its process group, as a debugger does; SIGTTIN stops it too): the new
    main follows the stop signal with SIGCONT to its main and its process
    group, so its main acts on it at once and passes it on to its workers,
    and it exits long before its drain deadline (60 s), not SIGKILLed
    there. handoff runs under a subreaper of its own session: under one of
    another session (systemd, the test process), the old main's death
    orphans generation 1's process group, and the kernel itself sends a
    group that is orphaned with a stopped member SIGHUP and SIGCONT (POSIX
    job control), racing the new main's stop signal."""
    need("handover")
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, "--init-delay", "100", "--workers", "2")
    h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{port}", f"--mode={MODE}", "--drain-timeout=60s"],
                fixture_cmd(args_file), env=channel_shim(kill_after="NAMED "),
                wrapper=[PYTHON, "-c", SESSION_SUBREAPER])
    try:
        first = int(h.wait_log_re(r"handoff\[(\d+)\]: Generation 1 \(.*\) is ready", 20).group(1))
        old = h.generation_pid(1)
        group = lambda: [p for p in h.descendants() if process_group(p) == old]
        wait_for(lambda: len(group()) == 3, 10, "generation 1's main and its two workers")
        os.killpg(old, signal.SIGSTOP)
        wait_for(lambda: all(stat_fields(p)[0] == "T" for p in group()), 10, "generation 1 stopped")
        set_args(args_file, "--init-delay", "50")
        os.kill(first, signal.SIGHUP)
        new_main = next_handoff_pid(h, 2)
        h.wait_log(f"subreaper: pid {first} exited -{int(signal.SIGKILL)}", 20)
        h.wait_log(f"handoff[{new_main}]: Retiring the previous handoff's generation (pid {old}): sent SIGTERM.", 10)
        h.wait_log(f"fixture-server: pid={old} got Terminated, forwarding SIGTERM to 2 workers", 10)
        h.wait_log(f"handoff[{new_main}]: The previous handoff's generation (pid {old}) has exited.", 10)
        check("did not exit in time" not in h.log(), f"nothing was SIGKILLed:\n{h.log()}")
        check(http_get(port)[2] == h.generation_pid(2), "generation 2 serves")
        os.kill(new_main, signal.SIGTERM)
        h.wait_log(f"subreaper: pid {new_main} exited 0", 20)
        check(h.proc.wait(timeout=10) == 0 and not h.descendants(), f"nothing left: {describe(h.descendants())}")
    finally:
        teardown(h)


def generation_1_with_workers(h):
    """Generation 1 (started with WORKERS_OUTLIVE_MAIN) and its workers: its
    main's pid, and a function listing the workers alive now."""
    old = h.generation_pid(1)
    workers = lambda: [p for p in h.descendants() if process_group(p) == old and p != old]
    wait_for(lambda: len(workers()) == 2, 10, "generation 1's two workers")
    return old, workers


def previous_workers_killed(h, new_main, old, workers):
    """The new main SIGKILLs what is left of the previous handoff's
    generation (its main exited) at the deadline; generation 2 serves; the
    new main's stop leaves nothing."""
    h.wait_log(f"handoff[{new_main}]: The previous handoff's generation (pid {old}, exited) did not exit in time; "
               "sending SIGKILL.", 10)
    wait_for(lambda: not workers(), 5, f"its workers killed: {describe(workers())}")
    h.wait_log(f"handoff[{new_main}]: The previous handoff's generation (pid {old}) has exited.", 10)
    check(http_get(h.port)[2] == h.generation_pid(2), "generation 2 serves")
    stop_adopted(h, new_main)
    check(h.app_pids() == [], f"nothing left: {h.descendants()}")


def old_main_killed_while_its_workers_drain(h, new_main, old, workers):
    """Generation 1's main exits at its stop signal, its workers drain on;
    the old main is SIGKILLed then, and the new main holds them to the
    deadline (previous_workers_killed())."""
    wait_for(lambda: not alive(old), 10, f"generation 1's main (pid {old}) exits at once")
    check(workers(), "its workers drain on")
    os.kill(h.pid, signal.SIGKILL)
    previous_workers_killed(h, new_main, old, workers)


def test_kill_old_main_between_named_and_takeover_workers_retired(tmp):
    """As above, with an old generation whose main exits at once at its
    stop signal and leaves its workers serving, no cgroup: the new main,
    which retires that generation itself, holds its process group to the
    drain deadline and SIGKILLs what is left of it then. Before, it counted
    the generation ended with its main: the workers, nobody's any more,
    served the old code for good *(found by review, fixed)*."""
    need("handover")
    h = start(tmp, "--drain-timeout=2s", manager=False, env=channel_shim(kill_after="NAMED "),
              args=("--init-delay", "100", *WORKERS_OUTLIVE_MAIN))
    try:
        old, workers = generation_1_with_workers(h)
        _, _, new_main = next_handoff_begun(h, "--init-delay", "50")
        wait_for(lambda: h.proc.poll() is not None, 20, f"the old main's death at NAMED:\n{h.log()}")
        h.wait_log(f"handoff[{new_main}]: Retiring the previous handoff's generation (pid {old}): sent SIGTERM.", 10)
        wait_for(lambda: not alive(old), 10, f"its main (pid {old}) exits at once")
        check(workers(), "its workers run on")
        previous_workers_killed(h, new_main, old, workers)
    finally:
        teardown(h)


def test_kill_old_main_while_draining_workers_held(tmp):
    """After a takeover the old main is SIGKILLed while its generation
    drains; that generation's main has exited at its stop signal and left
    its workers serving, no cgroup. The new main, which holds the
    generation to its drain deadline, SIGKILLs what is left of its process
    group a second after that deadline. Before, it held the main alone:
    with the old main dead, the workers served the old code for good."""
    need("handover")
    h = start(tmp, "--drain-timeout=2s", args=("--init-delay", "100", *WORKERS_OUTLIVE_MAIN))
    try:
        old, workers = generation_1_with_workers(h)
        new_main = handed_over(h)
        old_main_killed_while_its_workers_drain(h, new_main, old, workers)
    finally:
        teardown(h)


def test_kill_old_main_while_draining_workers_held_pidfd_dropped(tmp):
    """As above, with NAMED's pidfd dropped on its way (the channel shim,
    as the kernel does to a receiver out of fds; the old main held after
    NAMED until the next handoff has read it): the next handoff opens a
    pidfd of generation 1's main by its pid, with a warning, and holds the
    generation all the same. Before, it held nothing, silently, and the
    workers served the old code for good."""
    need("handover")
    named_read = os.path.join(tmp, "named-read")
    h = start(tmp, "--drain-timeout=2s", args=("--init-delay", "100", *WORKERS_OUTLIVE_MAIN),
              env=channel_shim(drop_fd="NAMED ", hold_sent="NAMED ", until=named_read))
    try:
        old, workers = generation_1_with_workers(h)
        _, n, new_main = next_handoff_begun(h, "--init-delay", "50")
        h.wait_log(f"handoff[{new_main}]: NAMED came without the pidfd of the previous handoff's generation 1 "
                   f"(the kernel dropped it: out of fds?); opened one of its main, pid {old}, instead.", 20)
        open(named_read, "w").close()
        h.wait_ready(n + 1, timeout=20)
        h.wait_log(f"handoff[{h.pid}]: Handed over to handoff pid {new_main}")
        old_main_killed_while_its_workers_drain(h, new_main, old, workers)
    finally:
        teardown(h)


def start_with_named_read_held(tmp, *opts):
    """Handover mode, generation 1 a main with workers that outlive it; the
    next handoff's read of NAMED held until the returned file exists."""
    named_read = os.path.join(tmp, "named-read")
    h = start(tmp, *opts, "--drain-timeout=2s", args=("--init-delay", "100", *WORKERS_OUTLIVE_MAIN),
              env=channel_shim(hold_read="NAMED ", until=named_read))
    return h, named_read


def old_main_killed_after_named_read_late(h, named_read):
    """A reload handed over; the old main retires generation 1 and reaps
    its main, whose workers drain on; then NAMED is read, and the old main
    is SIGKILLed. Returns generation 1's main, its workers, the new main."""
    old, workers = generation_1_with_workers(h)
    new_main = handed_over(h)
    wait_for(lambda: stat_fields(old) is None, 10, f"generation 1's main (pid {old}) reaped by the old main")
    check(workers(), "its workers drain on")
    open(named_read, "w").close()
    os.kill(h.pid, signal.SIGKILL)
    return old, workers, new_main


def test_kill_old_main_while_draining_workers_held_named_read_late(tmp):
    """As above, with the new main reading NAMED only once the old main has
    retired generation 1 and reaped its main (the channel shim holds the
    read until then), as on a loaded machine: NAMED says which process
    group to hold, so the new main holds the workers all the same. Before,
    it read the group off its main at NAMED, found that main gone, held
    nothing, and the workers served the old code for good (the test above
    failed so once under load)."""
    need("handover")
    h, named_read = start_with_named_read_held(tmp)
    try:
        old, workers, new_main = old_main_killed_after_named_read_late(h, named_read)
        previous_workers_killed(h, new_main, old, workers)
    finally:
        teardown(h)


@contextlib.contextmanager
def private_cgroup():
    """As root: this test process, and so the handoff it starts, in a cgroup
    of its own on the unified hierarchy (pure cgroup v2 or hybrid), the
    stand-in for a delegated one (--cgroup=yes); moved back, and what is
    left in it killed and removed, after. Yields its path."""
    if os.geteuid() != 0:
        raise Skip("making a cgroup needs root")
    with open("/proc/self/mountinfo") as f:
        mounts = [l.split(" - ")[0].split()[4] for l in f if " - cgroup2 " in l]
    with open("/proc/self/cgroup") as f:
        own = [l[3:].strip() for l in f if l.startswith("0::")]
    if not mounts or not own:
        raise Skip("no cgroup2 (unified) hierarchy")
    path = os.path.join(mounts[0], f"handoff-test-faults-{os.getpid()}")
    try:
        os.mkdir(path)
    except OSError as e:
        raise Skip(f"cannot make a cgroup: {e}")
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write("0")
        yield path
    finally:
        with open(os.path.join(mounts[0] + own[0].rstrip("/"), "cgroup.procs"), "w") as f:
            f.write("0")
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
        for d in sorted((d for d, _, _ in os.walk(path)), key=len, reverse=True):
            wait_for(lambda: _rmdir(d), 5, f"{d} removed")


def _rmdir(d):
    try:
        os.rmdir(d)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def test_kill_old_main_while_draining_workers_held_in_their_cgroup(tmp):
    """As above, with a delegated cgroup (--cgroup=yes): the new main holds
    generation 1, whose main it did not see alive, as the cgroup NAMED
    named, and SIGKILLs that cgroup at the deadline. Before NAMED named it,
    with a cgroup nothing was held, and the workers served the old code in
    gen-1 for good. (test-containment's systemd test does the same under a
    real manager, with Delegate=yes.)"""
    need("handover")
    with private_cgroup() as cg:
        h, named_read = start_with_named_read_held(tmp, "--cgroup=yes")
        try:
            old, workers, new_main = old_main_killed_after_named_read_late(h, named_read)
            h.wait_log(f"handoff[{new_main}]: The previous handoff's generation (pid {old}) runs in {cg}/gen-1.")
            h.wait_log(f"handoff[{new_main}]: The previous handoff's generation (pid {old}, exited) did not exit in "
                       f"time; sending SIGKILL to its cgroup {cg}/gen-1.", 10)
            wait_for(lambda: not workers(), 5, f"its workers killed: {describe(workers())}")
            h.wait_log(f"handoff[{new_main}]: The previous handoff's generation (pid {old}) has exited.", 10)
            check(http_get(h.port)[2] == h.generation_pid(2), "generation 2 serves")
            stop_adopted(h, new_main)
            check(h.app_pids() == [], f"nothing left: {h.descendants()}")
        finally:
            teardown(h)


def test_unix_socket_file_replaced_before_the_next_handoff_reads_unlinks(tmp):
    """A handover with --listen unix:PATH, whose file is replaced (removed,
    and another socket bound there) after the old main passed it on in
    UNLINKS and before the new main reads that (the channel shim holds the
    read): the replacement is not handoff's, and is left at the final stop.
    Before, the new main took whatever file was at PATH when it read
    UNLINKS for the one the old main had bound, and removed it."""
    need("handover")
    path, unlinks_read = os.path.join(tmp, "s.sock"), os.path.join(tmp, "unlinks-read")
    h = start(tmp, "-l", f"unix:{path}", env=channel_shim(hold_read="UNLINKS", until=unlinks_read))
    other = socket.socket(socket.AF_UNIX)
    try:
        new_main = handed_over(h)
        os.unlink(path)
        other.bind(path)
        ino = os.stat(path).st_ino
        open(unlinks_read, "w").close()
        h.wait_log(f"handoff[{new_main}]: role candidate + named -> named")  # NAMED, read after UNLINKS
        stop_clean(h)
        check(os.path.exists(path) and os.stat(path).st_ino == ino,
              f"the replacement is left at the final stop:\n{h.log()}")
    finally:
        other.close()
        teardown(h)


def two_handovers_from_a_stubborn_generation(h):
    """From generation 1, started with --ignore-sigterm, a reload to B (with
    a generation that stops on SIGTERM) and B's own reload to C, each taken
    over. Returns (generation 1's pid, B, C)."""
    old, b = handover_from(h, h.pid)
    _, c = handover_from(h, b)
    return old, b, c


def test_kill_old_main_right_after_takeover(tmp):
    """The old main dies right after it sent TAKEOVER (the channel shim
    SIGKILLs it then): its generation had its stop signal before, so it
    stops accepting, answers its slow request and exits, inside the
    deadline the new main holds it to; nothing is SIGKILLed. Before, it
    was retired after TAKEOVER: killed in between, it was never told to
    stop, kept accepting with the old code, and was SIGKILLed at the
    deadline with its request in flight (found by review)."""
    need("handover")
    h = start(tmp, "--drain-timeout=4s", env=channel_shim(kill_after="TAKEOVER "))
    try:
        old = serving_pid(h.port)
        slow = SlowRequest(h.port, 1500)
        wait_for(slow.connected.is_set, 5, "slow request sent")
        set_args(h.args_file, "--init-delay", "50")
        h.signal(signal.SIGHUP)
        wait_for(lambda: h.proc.poll() is not None, 20, f"the old main's death at TAKEOVER:\n{h.log()}")
        check(h.proc.returncode == -signal.SIGKILL, f"killed at TAKEOVER ({h.proc.returncode}):\n{h.log()}")
        new_main = h.main_pid()
        h.wait_log(f"fixture-server: pid={old} got Terminated", 10)
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == old, f"{slow.status} {slow.pid} {slow.error}")
        wait_for(lambda: not alive(old), 10, f"generation 1 exits:\n{h.log()}")
        check("SIGKILL" not in h.log(), f"nothing was killed:\n{h.log()}")
        check(http_get(h.port)[2] != old, "the new generation serves")
        stop_adopted(h, new_main)
        nothing_left(h)
    finally:
        teardown(h)


def test_kill_old_main_after_a_second_reload_while_a_stubborn_generation_drains(tmp):
    """As above, but the new main B has reloaded again, and handed over to C,
    before the old main A is killed: B is no longer main, C never heard of
    generation 1, and only B holds its pidfd. B holds it to the deadline
    that began at the first takeover all the same, and waits for it before
    it exits. (Found by the last reader of the round: generation 1 outlived
    every deadline.)"""
    need("handover")
    h = start(tmp, "--drain-timeout=6s", args=("--ignore-sigterm",))
    try:
        old, b, _ = two_handovers_from_a_stubborn_generation(h)
        check(alive(h.pid) and alive(old), "premise: A still drains the stubborn generation 1")
        os.kill(h.pid, signal.SIGKILL)
        wait_for(lambda: not alive(old), 15, f"generation 1 (pid {old}) killed at its drain deadline:\n{h.log()}")
        check(f"handoff[{b}]: The previous handoff's generation (pid {old}) did not exit in time; sending SIGKILL."
              in h.log(), h.log())
        wait_for(lambda: not alive(b), 20, f"B exits once generation 1 is gone:\n{h.log()}")
        check(h.stop() == 0, h.log())
        check(h.app_pids() == [], f"nothing left: {h.descendants()}")
    finally:
        teardown(h)


def test_no_drain_deadline_every_handoff_waits_for_its_predecessor(tmp):
    """--drain-timeout=infinity and an old generation that never ends:
    nothing holds it (there is no deadline to hold it to), but each handoff
    that has handed over still waits for its predecessor, so the newest
    main's status says predecessor_draining, and its stop waits for the
    oldest generation (systemd's TimeoutStopSec= bounds that wait; here the
    test kills generation 1 as systemd would then). One idle handoff per
    reload stays behind a generation that never ends, beside that
    generation itself. (Earlier rounds let the handed-off handoff exit at
    once, to spare that: its successor then said the old code was gone while
    it still served, and a stop under KillMode=mixed did not wait for what
    drained; found by review.)"""
    need("handover")
    h = start(tmp, "--drain-timeout=infinity", args=("--ignore-sigterm",))
    try:
        old, b, c = two_handovers_from_a_stubborn_generation(h)
        gen2, gen3 = h.generation_pid(2), h.generation_pid(3)
        wait_for(lambda: not alive(gen2), 20, f"generation 2 retired:\n{h.log()}")
        check(alive(b) and alive(h.pid) and alive(old), f"handoff 2 waits for handoff 1, which drains:\n{h.log()}")
        check(status_json(c)["predecessor_draining"], "the newest main says the old code still runs")
        os.kill(c, signal.SIGTERM)
        h.wait_log(f"handoff[{c}]: Stop requested (SIGTERM). Waiting for the previous handoff to finish draining too.")
        wait_for(lambda: not alive(gen3), 20, f"generation 3 stopped:\n{h.log()}")
        check(alive(c), "the newest main waits for its predecessors")
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: not alive(h.pid) and not alive(b) and h.exit_status(c) is not None, 20,
                 f"all three exit:\n{h.log()}")
        check(h.exit_status(c) == 0, f"{h.exit_status(c)}\n{h.log()}")
        log = h.log()
        done = [log.find(f"handoff[{p}]: stopping + all-gone") for p in (h.pid, b, c)]
        check(0 <= done[0] < done[1] < done[2], f"the oldest exited first, the newest last: {done}\n{log}")
        nothing_left(h)
    finally:
        teardown(h)


def test_second_stop_of_new_main_kills_the_held_old_generation(tmp):
    """A second stop kills every generation at once: also the old main's,
    which the new main holds to its drain deadline after a takeover. The
    slow request the old generation drains is cut, and the stop is over
    without waiting for it."""
    need("handover")
    h = start(tmp)
    try:
        old, slow, b, _ = reload_under_slow_request(h, 20000)
        h.wait_log(f"fixture-server: pid={old} got Terminated")
        os.kill(b, signal.SIGTERM)
        h.wait_log(f"handoff[{b}]: Stop requested")
        os.kill(b, signal.SIGTERM)
        h.wait_log(f"handoff[{b}]: Second stop request")
        # Well before the old main's own 10 s drain deadline.
        wait_for(lambda: not alive(old), 5, f"the old generation killed at once:\n{h.log()}")
        slow.join(timeout=10)
        check(slow.status != 200, f"the old generation's slow request was cut: {slow.status} {slow.error}")
        wait_for(lambda: not alive(b), 5, f"the new main's stop is over:\n{h.log()}")
    finally:
        teardown(h)


def test_sighup_to_old_main_after_handover_is_not_dropped(tmp):
    """A SIGHUP that reaches the old main after it handed over (a
    `kill -HUP <pid>` that read the pid a moment too early, a pid file not
    yet rewritten) asks for a reload all the same: "coalesced, never
    dropped". The old main knows who took over; the reload must happen
    there (as a control request to an old main is sent on with FOLLOW)."""
    need("handover")
    h = start(tmp)
    try:
        # The slow request keeps the old main alive, draining.
        _, slow, new_main, n = reload_under_slow_request(h, 3000)
        h.wait_log(f"handoff[{new_main}]: Took over as the main process")
        check(alive(h.pid), "the old main still drains")
        os.kill(h.pid, signal.SIGHUP)
        h.wait_log(f"handoff[{h.pid}]: Reload requested")
        wait_for(lambda: "Started generation 3" in h.log() or not alive(h.pid), 20, "a reload or the old main's exit")
        slow.join(timeout=20)
        check("Started generation 3" in h.log(), f"the SIGHUP to the old main {h.pid} was dropped:\n{h.log()}")
        h.wait_ready(n + 2, timeout=20)
        stop_clean(h)
    finally:
        teardown(h)


# ---- a candidate that ignores SIGTERM -------------------------------------------

def test_candidate_ignoring_sigterm_killed_at_drain_deadline_on_abort(tmp):
    """A stop during the reload retires the candidate too; it ignores
    SIGTERM, so the drain deadline SIGKILLs it and handoff exits."""
    h = start(tmp, SHORT_DRAIN)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        set_args(h.args_file, "--init-delay", "30000", "--ignore-sigterm")
        h.signal(signal.SIGHUP)
        succ = h.generation_pid(2)
        wait_for(lambda: ignores(succ, signal.SIGTERM), 10, "the candidate ignores SIGTERM")
        no_failures(load)
        t0 = time.monotonic()
        check(h.stop() == 0, h.log())
        check(time.monotonic() - t0 < 10, "bounded by the drain deadline")
        # Supervise: handoff's drain deadline for its generation. Handover:
        # the next handoff's for its app; the old main gives the next
        # handoff a margin beyond that before it SIGKILLs it, so that it
        # ends its app and removes its runtime files itself.
        check(re.search(rf"Generation 2 \(.*pid {succ}\) did not exit in time; sending SIGKILL", h.log()), h.log())
        check("Next handoff (pid" not in h.log(), f"the next handoff was not killed: {h.log()}")
        nothing_left(h)
    finally:
        teardown(h, load)


def test_serving_generation_ignoring_sigterm_killed_at_drain_deadline(tmp):
    """A candidate that ignores SIGTERM becomes the serving generation; the
    next reload retires it and the drain deadline SIGKILLs it. It never
    stops accepting (it ignored the signal that would make it close its
    listener), so a request it has accepted but not answered when SIGKILL
    comes is lost: the test counts them (the fixture answers in about a
    millisecond, so usually none)."""
    h = start(tmp, SHORT_DRAIN)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        reload_ok(h, 2, ("--init-delay", "50", "--ignore-sigterm"))
        stubborn = one_serving(h)
        n = h.ready_count()
        set_args(h.args_file, "--init-delay", "50")
        h.signal(signal.SIGHUP)
        h.wait_ready(n + 1, timeout=20)
        wait_for(lambda: not alive(stubborn), 10, "the stubborn generation is killed")
        # handoff logs the SIGKILL before it sends it, but the retirement
        # only once it has reaped the killed process, which may be after the
        # test saw it die: wait for that line.
        h.wait_log_re(rf"Generation 2 \(.*pid {stubborn}\) did not exit in time; sending SIGKILL")
        h.wait_log_re(rf"Retired generation 2 \(.*pid {stubborn}\) killed by signal SIGKILL")
        res = load.stop()
        check(res["failed"] <= 4, f"at most the requests in flight at the SIGKILL are lost: {res}")
        print(f"   requests lost to the SIGKILL of a generation that ignored SIGTERM: {res['failed']} of "
              f"{res['requests']} ({res['first_error']})", flush=True)
        one_serving(h)
        stop_clean(h)
    finally:
        teardown(h, load)


# ---- a server that daemonizes ---------------------------------------------------

def escaped(h):
    """Fixture servers that daemonized out of handoff's session, once
    serving. (--daemonize: the main process exits; its child calls setsid()
    and forks the server, a grandchild, which leads nothing and is
    reparented to the nearest subreaper: here the test process.)"""
    def serving(p):
        try:
            return (ppid_of(p) == os.getpid() and os.getsid(p) not in (h.pid, p)
                    and f"fixture-server: pid={p} fds=1 names=unknown ready" in h.log())
        except OSError:
            return False
    return [p for p in fixture_processes() if serving(p)]


def kill_daemons(h, pids):
    """Kills the daemons found, and whatever else left handoff's session
    under the test (a daemon's intermediate, one not yet serving)."""
    def stray(p):
        try:
            return ppid_of(p) == os.getpid() and os.getsid(p) != h.pid
        except OSError:
            return False
    for p in set(pids) | {p for p in fixture_processes() if stray(p)}:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_for(lambda: not alive(p), 10, f"daemon {p} killed")
        reap_if_child(p)


def daemons_of(h):
    """Fixture servers that left handoff's session (daemonized) and are
    children of one of this test's handoffs: contained, not yet gone."""
    def ours(p):
        try:
            return os.getsid(p) != h.pid and ppid_of(p) in set(h.mains())
        except OSError:
            return False
    return [p for p in fixture_processes() if ours(p)]


def test_daemonizing_first_generation(tmp):
    """The main process exits 0 at once: to handoff that is a generation
    that exited before it was ready, so handoff exits 1 with a clear
    message. The daemon it left (its own session and process group) is
    still the generation's: reparented to handoff, the child subreaper,
    recognised by its HANDOFF_GENERATION, and asked to stop with the rest
    of what the failed main left; handoff exits once it is gone, and
    nothing serves on after it."""
    port = free_port()
    h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{port}", f"--mode={MODE}"], fixture_cmd(None, "--daemonize"))
    daemons = []
    try:
        check(h.wait_exit(timeout=20) == 1, h.log())
        check(re.search(r"Generation 1 \(.*pid \d+\) failed to start: exited with status 0\.", h.log()), h.log())
        check(not escaped(h) and not daemons_of(h), f"no daemon escaped: {escaped(h)} {daemons_of(h)}")
        check(not h.descendants(), "nothing of handoff's own is left")
    finally:
        kill_daemons(h, daemons)
        h.kill_all()


def test_daemonizing_candidate(tmp):
    """A reload to a server that daemonizes fails (its main process exited
    before READY=1) and the old generation serves on. The daemon is the
    failed generation's (reparented to the handoff that started it): it is
    asked to stop with it, no request fails, and nothing escapes to outlive
    handoff's stop."""
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    daemons = []
    try:
        old, n = reload_begun(h, "--daemonize")
        h.wait_ready(n + 1, timeout=20)
        check("last: generation 2 failed: exited with status 0" in h.last_status(), h.last_status())
        wait_for(lambda: not daemons_of(h), 20, f"the failed generation's daemon stopped: {daemons_of(h)}")
        check(not escaped(h), f"no daemon escaped: {escaped(h)}")
        wait_for(lambda: h.app_pids() == [old], 10, f"only the old generation is left: {h.app_pids()}")
        check(f"(pid {old})" in h.last_status(), h.last_status())
        no_failures(load)
        stop_clean(h)
        check(not escaped(h), "nothing outlives handoff")
    finally:
        kill_daemons(h, daemons)
        teardown(h, load)


# ---- a reload storm ------------------------------------------------------------

def test_reload_storm(tmp):
    """200 SIGHUPs in 2 s, sent to the main process of the moment (in
    handover mode MAINPID moves: `kill -HUP $MAINPID`). Reloads coalesce:
    far fewer generations than signals, never two candidates starting at
    once, no failed request; it ends with exactly one serving generation."""
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    concurrent = []
    stop_sampling = threading.Event()

    def sample():
        # For the report: how many processes of the service ran at once
        # (generations serving, starting and draining; in handover mode also
        # old mains still draining and next handoffs). Whether two
        # candidates ever started at once is read from the log below: from
        # outside, a starting generation and a draining one look alike.
        while not stop_sampling.is_set():
            concurrent.append(len(h.descendants()) + 1)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        sampler.start()
        t0 = time.monotonic()
        for i in range(200):
            try:
                os.kill(h.main_pid(), signal.SIGHUP)
            except ProcessLookupError:
                pass
            time.sleep(max(0.0, t0 + (i + 1) * 0.01 - time.monotonic()))  # pacing the storm, not synchronising
        storm = time.monotonic() - t0
        # 2 s on an idle machine; the bound only guards against a storm so
        # slow that it would not be one.
        check(storm < 6, f"the storm took {storm:.1f}s")
        # It ends with one serving generation, named by the last READY=1.
        one_serving(h)
        stop_sampling.set()
        sampler.join()
        log = h.log()
        started = [int(x) for x in re.findall(r"Started generation (\d+):", log)]
        check(started == list(range(1, len(started) + 1)), f"generations in order: {started}")
        check(2 <= len(started) <= 60, f"coalesced: {len(started)} generations for 200 SIGHUPs")
        # Never two candidates at once: each generation is ready or failed
        # before the next one is started.
        events = re.findall(r"Started generation (\d+):|Generation (\d+) \([^\n]*?pid \d+\) (?:is ready|failed to start|"
                            r"did not become ready)", log)
        open_gen = None
        for started_n, ended_n in events:
            if started_n:
                check(open_gen is None, f"generation {started_n} started while {open_gen} was starting:\n{log}")
                open_gen = started_n
            else:
                check(ended_n == open_gen, f"generation {ended_n} ended, {open_gen} was starting:\n{log}")
                open_gen = None
        reloads = h.notify.count("RELOADING")
        check(reloads == len(started) - 1, f"{reloads} RELOADING=1 for {len(started)} generations")
        check(h.ready_count() == len(started), "each reload ended with READY=1")
        check(" 0 failed;" in h.last_status(), f"no reload failed: {h.last_status()}")
        no_failures(load)
        print(f"   200 SIGHUPs in {storm:.1f}s -> {len(started) - 1} reloads; processes of the service at once: "
              f"max {max(concurrent) if concurrent else 0}", flush=True)
        stop_clean(h)
    finally:
        stop_sampling.set()
        teardown(h, load)


# ---- SIGTERM at each stage ------------------------------------------------------

def test_sigterm_while_candidate_starts(tmp):
    """(Also in tests/process/test-reload.py with a hanging candidate; here
    under load, with a slow request on the old generation.) The reload is
    aborted, the old generation finishes its request, handoff exits 0."""
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        old, _ = reload_begun(h, "--init-delay", "5000")
        succ = h.generation_pid(2)
        slow = SlowRequest(h.port, 1000)
        wait_for(slow.connected.is_set, 5, "slow request sent")
        no_failures(load)
        check(h.stop() == 0, h.log())
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == old, f"{slow.status} {slow.pid} {slow.error}")
        check(not alive(succ), f"the candidate is gone: {succ}")
        nothing_left(h)
        if MODE == "handover":
            check(h.mains() == [h.pid], "MAINPID never moved")
    finally:
        teardown(h, load)


def test_sigterm_to_next_handoff_after_ready_before_commit(tmp):
    """Handover mode: `systemctl stop` right after systemd has read
    MAINPID= signals the new main before it was told to take over (a stop
    job queued behind the reload runs as soon as READY=1 arrives, before
    the barrier is even answered; so does a test that stops right after
    wait_ready()). The service stops: both handoffs and both generations go,
    nothing in flight is lost. The new main is the process systemd watches,
    and with KillMode=mixed whatever is left when it exits is SIGKILLed: so
    it must not exit before the old handoff has finished draining (as it
    does not after a takeover). And whoever exits last removes the pid file
    and the unix socket files, as at any final stop."""
    need("handover")
    sock, pidfile = os.path.join(tmp, "app.sock"), os.path.join(tmp, "handoff.pid")
    h = start(tmp, "-l", f"unix:{sock}", f"--pid-file={pidfile}")
    try:
        old, slow, succ = reload_held_at_mainpid(h, 5000)
        os.kill(succ, signal.SIGTERM)
        wait_for(lambda: not alive(succ), 20, f"the new main exits:\n{h.log()}")
        old_alive = alive(h.pid)
        h.proc.wait(timeout=20)
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == old, f"{slow.status} {slow.pid} {slow.error}")
        nothing_left(h)
        problems = []
        if old_alive:
            problems.append("the new main (systemd's main process) exited while the old handoff was still "
                            "draining: under KillMode=mixed its generation would be SIGKILLed")
        left = [f for f in (sock, pidfile) if os.path.exists(f)]
        if left:
            problems.append(f"left behind after the final stop: {left}")
        check(not problems, "; ".join(problems))
    finally:
        teardown(h)


def test_sigterm_to_next_handoff_then_commit(tmp):
    """Handover mode, MAINPID= sent, barrier not yet answered, and systemd's
    stop reaches the next handoff (its main now; its app takes 3 s to stop).
    The next handoff tells its predecessor, which gives up the handover and
    retires its own generation; the next handoff, main to systemd, exits last.
    The stop is the final one: the pid file and the unix socket file are
    removed."""
    need("handover")
    sock, pidfile = os.path.join(tmp, "app.sock"), os.path.join(tmp, "handoff.pid")
    h = start(tmp, "-l", f"unix:{sock}", f"--pid-file={pidfile}")
    try:
        set_args(h.args_file, "--init-delay", "50", "--grace-ms", "3000")
        succ = held_at_mainpid(h)
        os.kill(succ, signal.SIGTERM)
        h.wait_log(f"handoff[{succ}]: Stop requested (SIGTERM)")
        h.notify.release()
        wait_for(lambda: not alive(h.pid) and not alive(succ), 20, f"both exit:\n{h.log()}")
        log = h.log()
        old_done = log.find(f"handoff[{h.pid}]: stopping + all-gone")
        succ_done = log.find(f"handoff[{succ}]: stopping + all-gone")
        check(0 <= old_done < succ_done, f"the next handoff, systemd's main, finished last:\n{log}")
        nothing_left(h)
        left = [f for f in (sock, pidfile) if os.path.exists(f)]
        check(not left, f"left behind after the final stop: {left}")
        # The old main gave up, drained and exited: the next handoff says
        # so, and takes nothing over.
        check(f"handoff[{succ}]: The previous handoff is gone after it had named this one main to the service "
              "manager (MAINPID=); stopping as the main process." in log, log)
        check("(killed?)" not in log and "taking over by itself" not in log, log)
    finally:
        teardown(h)


def test_sigterm_to_old_main_after_ready_before_commit(tmp):
    """Handover mode, same stage, SIGTERM to the old main from an operator
    (not the service manager): systemd was told MAINPID= names the next
    handoff, so the old main is no longer the one to stop the service. It
    ignores the signal and completes the handover; the next handoff serves
    on, and the old main's slow request finishes."""
    need("handover")
    h = start(tmp)
    try:
        old, slow, succ = reload_held_at_mainpid(h)
        # From another process than the service manager (this test plays
        # it): the manager's own stop is passed on (the tests below).
        subprocess.run(["kill", "-TERM", str(h.pid)], check=True, timeout=10)
        h.wait_log(f"handoff[{h.pid}]: Ignoring SIGTERM")
        h.notify.release()
        h.wait_log(f"handoff[{h.pid}]: Handed over to handoff pid {succ}")
        check(h.proc.wait(timeout=20) == 0, h.log())
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == old, f"{slow.status} {slow.pid} {slow.error}")
        check(alive(succ), "the next handoff serves on")
        reload_ok(h, 3)
        stop_clean(h)
    finally:
        teardown(h)


def manager_stop_after_mainpid(tmp, both):
    """The service manager's stop reaches the old main after its MAINPID=
    (held barrier): systemd 252 takes no MAINPID= once stopping, and with
    KillMode=mixed signals only the old main; with control-group (both) the
    next handoff gets a SIGTERM too. The old main passes the stop on, the
    next handoff stops without taking the manager's signal for a second one,
    both generations drain (the old one's slow request is answered, nothing
    is SIGKILLed) and the old main exits last: under mixed it is the one
    systemd waits for, and its exit would SIGKILL what is left. Before, the
    old main ignored the stop, handed over and exited, and systemd's final
    SIGKILL cut the next handoff's generation short (found by a reviewer)."""
    need("handover")
    h = start(tmp)
    try:
        old, slow, succ = reload_held_at_mainpid(h)
        os.kill(h.pid, signal.SIGTERM)
        h.wait_log(f"handoff[{h.pid}]: Stop requested (SIGTERM) by the service manager after MAINPID=")
        h.notify.release()
        h.wait_log(f"handoff[{h.pid}]: Passed the stop on to the next handoff (pid {succ})")
        if both:
            # The manager's own signal, once the next handoff is main (before,
            # it is a candidate's stop: test_sigterm_to_next_handoff_then_commit).
            os.kill(succ, signal.SIGTERM)
        else:
            h.wait_log(f"handoff[{succ}]: Stop requested by the previous handoff")
        wait_for(lambda: not alive(h.pid) and not alive(succ), 20, f"both exit:\n{h.log()}")
        check(h.proc.wait(timeout=5) == 0, h.log())
        log = h.log()
        check("Second stop request" not in log, f"no stop was taken for a second one:\n{log}")
        check("SIGKILL" not in log, f"nothing was killed:\n{log}")
        old_done = log.find(f"handoff[{h.pid}]: stopping + all-gone")
        succ_done = log.find(f"handoff[{succ}]: stopping + all-gone")
        check(0 <= succ_done < old_done, f"the old main, which systemd may wait for, finished last:\n{log}")
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == old, f"{slow.status} {slow.pid} {slow.error}")
        nothing_left(h)
    finally:
        teardown(h)


def test_manager_stop_to_old_main_after_mainpid(tmp):
    manager_stop_after_mainpid(tmp, both=False)


def test_manager_stop_to_both_after_mainpid(tmp):
    manager_stop_after_mainpid(tmp, both=True)


def test_manager_stop_after_mainpid_next_handoff_of_an_older_version(tmp):
    """As test_manager_stop_to_old_main_after_mainpid, with a next handoff
    of a version before STOP (the channel shim drops its "FEATURES stop"):
    the old main sends it no STOP, which it would not understand, and says
    so; it drains its own generation (the slow request is answered) and
    exits 0 without waiting for the next handoff. That one serves on, as
    before STOP existed: the stop is the service manager's to bring to it
    (the test does, as the manager would)."""
    need("handover")
    h = start(tmp, env=channel_shim(drop="FEATURES "))
    try:
        old, slow, succ = reload_held_at_mainpid(h)
        os.kill(h.pid, signal.SIGTERM)
        h.wait_log(f"handoff[{h.pid}]: Stop requested (SIGTERM) by the service manager after MAINPID=")
        h.notify.release()
        h.wait_log(f"handoff[{h.pid}]: The next handoff (pid {succ}) is of a version that takes no STOP; not "
                   "waiting for it.")
        check(h.proc.wait(timeout=20) == 0, h.log())
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == old, f"{slow.status} {slow.pid} {slow.error}")
        log = h.log()
        check("Passed the stop on" not in log and "Stop requested by the previous handoff" not in log,
              f"no STOP went:\n{log}")
        check(alive(succ), f"the next handoff serves on:\n{log}")
        gen2 = h.generation_pid(2)
        status, _, pid = http_get(h.port)
        check(status == 200 and pid == gen2, f"generation 2 (pid {gen2}) answers, not pid {pid}:\n{log}")
        stop_adopted(h, succ)
        nothing_left(h)
    finally:
        teardown(h)


def manager_stop_down_a_chain(tmp, ms1, ms2):
    """Main 1 has handed over to 2, which has handed over to 3; generations
    1 and 2 each drain a slow request (ms1, ms2). The manager's stop
    reaches the first: it goes down the chain, each STOPs the next, and
    they exit in reverse order, the newest first, and the newest only once
    generation 1, the oldest, has stopped."""
    need("handover")
    h = start(tmp)
    try:
        gen1 = serving_pid(h.port)
        slow1 = SlowRequest(h.port, ms1)
        wait_for(slow1.connected.is_set, 5, "slow request to generation 1")
        reload_ok(h, 2)
        second = h.main_pid()
        slow2 = SlowRequest(h.port, ms2)
        wait_for(slow2.connected.is_set, 5, "slow request to generation 2")
        reload_ok(h, 3)
        third = h.main_pid()
        check(alive(h.pid) and alive(second), "the first two handoffs still drain")
        os.kill(h.pid, signal.SIGTERM)
        h.wait_log(f"handoff[{h.pid}]: Passed the stop on to the next handoff (pid {second})")
        h.wait_log(f"handoff[{second}]: Passed the stop on to the next handoff (pid {third})")
        wait_for(lambda: not alive(h.pid) and not alive(second) and not alive(third), 20,
                 f"all three exit:\n{h.log()}")
        check(h.proc.wait(timeout=5) == 0, h.log())
        log = h.log()
        done = [log.find(f"handoff[{p}]: stopping + all-gone") for p in (third, second, h.pid)]
        check(0 <= done[0] < done[1] < done[2], f"the newest exited first, the first last: {done}\n{log}")
        gen1_done = log.find(f"fixture-server: pid={gen1} stopped")
        check(0 <= gen1_done < done[0], f"the newest exited after generation 1 had stopped:\n{log}")
        check("SIGKILL" not in log, f"nothing was killed:\n{log}")
        for slow in (slow1, slow2):
            slow.join(timeout=20)
            check(slow.status == 200, f"{slow.status} {slow.error}")
        nothing_left(h)
    finally:
        teardown(h)


def test_manager_stop_passed_down_a_chain_of_handovers(tmp):
    """(found by a reviewer: the middle one stopped itself only, and the
    newest served on)"""
    manager_stop_down_a_chain(tmp, 2500, 2500)


def test_manager_stop_down_a_chain_waits_for_the_oldest_generation(tmp):
    """Generation 1's request outlasts generation 2's: the middle handoff,
    whose own generation is gone, says DRAINED to the newest only once the
    first handoff has drained too. Before, it said so at once, and the
    newest exited while generation 1 still drained: under
    KillMode=control-group with the newest as the main, systemd's final
    SIGKILL would have cut it short (found by review)."""
    manager_stop_down_a_chain(tmp, 4000, 300)


def test_a_chain_of_handovers_without_a_drain_deadline_waits_for_the_oldest(tmp):
    """--drain-timeout=infinity: nobody holds generation 1 (there is no
    deadline to hold it to). Main 1, draining generation 1's slow request,
    hands over to 2, which hands over to 3. Handoff 2, whose own generation
    is gone, still waits for handoff 1, and 3 for 2: 3's status says
    predecessor_draining until generation 1 has answered and handoff 1 has
    exited, and 2 exits after 1. Before, 2 exited as soon as its own
    generation was gone: 3 said the old code was gone while generation 1
    still served, and a stop to 3 under KillMode=mixed would have left
    systemd to SIGKILL generation 1 mid-request (found by review)."""
    need("handover")
    h = start(tmp, "--drain-timeout=infinity")
    try:
        gen1 = serving_pid(h.port)
        slow = SlowRequest(h.port, 4000)
        wait_for(slow.connected.is_set, 5, "slow request to generation 1")
        reload_ok(h, 2)
        second = h.main_pid()
        gen2 = h.generation_pid(2)
        reload_ok(h, 3)
        third = h.main_pid()
        h.wait_log(f"handoff[{second}]: Retired generation 2", 10)
        wait_for(lambda: not alive(gen2), 10, "generation 2 gone")
        check(alive(gen1) and alive(h.pid), "premise: generation 1 still drains its request")
        check(alive(second), f"handoff 2 waits for handoff 1:\n{h.log()}")
        st = status_json(third)
        check(st["predecessor_draining"], f"handoff 3 says the old code still runs: {st}")
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == gen1, f"{slow.status} {slow.pid} {slow.error}")
        wait_for(lambda: not alive(h.pid) and not alive(second), 20, f"handoffs 1 and 2 exit:\n{h.log()}")
        log = h.log()
        done = [log.find(f"handoff[{p}]: stopping + all-gone") for p in (h.pid, second)]
        check(0 <= done[0] < done[1], f"handoff 2 exited after handoff 1: {done}\n{log}")
        wait_for(lambda: not status_json(third)["predecessor_draining"], 10, "predecessor_draining false")
        stop_adopted(h, third)
        nothing_left(h)
    finally:
        teardown(h)


def test_sigterm_while_old_generation_drains(tmp):
    """After the commit, the old generation still busy: a stop retires the
    new one and waits for the old one (in handover mode the new main waits
    for the old handoff). Nothing in flight is lost; exit 0."""
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        old, slow, _, _ = reload_under_slow_request(h, 1500)
        check(alive(old), "the old generation still drains")
        no_failures(load)
        check(h.stop() == 0, h.log())
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == old, f"{slow.status} {slow.pid} {slow.error}\n{h.log()}")
        if MODE == "handover":
            check(h.proc.poll() is not None, "the old handoff exited before the new main")
        nothing_left(h)
    finally:
        teardown(h, load)


if __name__ == "__main__":
    run([showing_logs(v) for k, v in sorted(globals().items()) if k.startswith("test_")])
