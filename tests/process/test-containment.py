#!/usr/bin/python3
"""Containment, in the mode HANDOFF_TEST_MODE names: a generation is every
process it started, not only its main. Servers that leave processes behind
(a shell wrapper that does not exec, workers that outlive their master, a
double-forked daemon in a session of its own) are reloaded under load; after
the drain deadline no process of the old generation may exist, no request
may have failed, and no zombie may be left with a handoff as its parent.

Each test marks its handoff's environment with a unique token, which every
process of every generation inherits, so "the processes of generation N"
is read from /proc without mistaking anyone else's for ours."""

import os
import re
import shlex
import shutil
import signal
import subprocess
import uuid

from harness import (FIXTURE, HANDOFF, MODE, FakeSystemd, Handoff, Load, Skip, check, free_port, http_get, pid_alive,
                     ppid_of, run, status_json, wait_for, is_handoff)
from handofftest.procs import all_pids

DRAIN = 2  # seconds: --drain-timeout of every test here


def environ_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
    except OSError:
        return None


def stat_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cmdline_of(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def marked(token):
    """{pid: generation} for every live process carrying token, handoffs aside."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        env = environ_of(pid)
        st = stat_of(pid)
        if not env or not st or st[0] == "Z" or env.get(b"CONTAIN_TEST") != token.encode():
            continue
        if is_handoff(pid) or b"HANDOFF_GENERATION" not in env:
            continue
        out[pid] = int(env[b"HANDOFF_GENERATION"])
    return out


def generation_pids(token, n):
    return sorted(p for p, g in marked(token).items() if g == n)


def zombies_of(parents):
    """Zombies whose parent is one of the given pids."""
    out = []
    for d in os.listdir("/proc"):
        st = stat_of(d) if d.isdigit() else None
        if st and st[0] == "Z" and int(st[1]) in parents:
            out.append(int(d))
    return out


def close(h):
    """Teardown, passed or failed: the harness kills handoff's session; a
    daemon in a session of its own is found by the token."""
    h.close()
    for pid in marked(h.token):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start(tmp, command, *extra):
    token = uuid.uuid4().hex
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}", f"--drain-timeout={DRAIN}s", *extra], command,
                notify=FakeSystemd(tmp), env={"CONTAIN_TEST": token})
    h.port, h.token = port, token
    h.wait_ready(1)
    return h


def reload_leaves_nothing(tmp, command, expect_old, *extra, load=True):
    """Reloads once under load; the old generation (expect_old processes of
    it at first) must be gone after the drain deadline, and nothing may fail."""
    h = start(tmp, command, *extra)
    traffic = Load(f"127.0.0.1:{h.port}", tmp, mode="new", concurrency=4) if load else None
    try:
        old = wait_for(lambda: (lambda p: p if len(p) >= expect_old else None)(generation_pids(h.token, 1)), 10,
                       f"{expect_old} processes of generation 1")
        gen1 = status_json(h.pid)["generations"][0]
        check(gen1["number"] == 1 and gen1["processes"] == expect_old,
              f"status counts the whole generation: {gen1}, expected {expect_old} processes ({old})")
        handoffs = {h.pid}
        h.signal(signal.SIGHUP)
        h.wait_ready(2, timeout=20)
        handoffs.add(h.main_pid())
        wait_for(lambda: http_get(h.port)[2] not in old, 10, "the new generation to answer")
        # Some of the old processes outlive their main: the deadline is
        # theirs too, and then they are gone.
        wait_for(lambda: not generation_pids(h.token, 1), DRAIN + 10,
                 f"every process of generation 1 to be gone; left: {generation_pids(h.token, 1)}; log:\n{h.log()}")
        wait_for(lambda: not zombies_of(handoffs), 5, f"no zombie under handoff: {zombies_of(handoffs)}")
        if traffic:
            res = traffic.stop()
            check(res["failed"] == 0, f"failed requests: {res}")
            check(res["ok"] > 50, f"load ran: {res}")
        new = generation_pids(h.token, 2)
        check(len(new) >= expect_old, f"generation 2 runs whole: {new}")
        check(h.stop() == 0, h.log())
        check(not marked(h.token), f"nothing left after the stop: {marked(h.token)}")
        check(not zombies_of(handoffs), f"no zombie after the stop: {zombies_of(handoffs)}")
        return h
    finally:
        if traffic and traffic.proc.poll() is None:
            traffic.proc.kill()
        close(h)


def test_shell_wrapper_that_does_not_exec(tmp):
    # sh is the main; SIGTERM ends it at once and the server, its child,
    # drains on its parent's death but then lingers: only the deadline ends it.
    h = reload_leaves_nothing(tmp, ["/bin/sh", "-c", f"{FIXTURE} --any-listen-pid --pdeath-drain --linger; echo done"], 2,
                              "--ready=delay:300ms")
    check("drained, lingering" in h.log(), f"the server lingered (the test tests something):\n{h.log()}")


def test_workers_outlive_their_master(tmp):
    h = reload_leaves_nothing(tmp, [FIXTURE, "--workers", "2", "--orphan-workers", "--linger"], 3)
    check("leaving 2 workers" in h.log() and "drained, lingering" in h.log(), h.log())


def test_double_forked_daemon(tmp):
    h = reload_leaves_nothing(tmp, [FIXTURE, "--spawn-daemon", "--linger"], 2)
    check("daemon: main process exited" in h.log() and "left its process group" in h.log(), h.log())


def test_orphans_that_keep_serving_are_killed_at_the_deadline(tmp):
    # Workers whose master is gone and that never stop accepting: old code
    # answers until the deadline, never after it.
    # A drain of 6 s, not DRAIN: the status must be read in it, after the
    # master's exit is reaped (its log line comes first; a slow handoff, as
    # under ASan, reaped it after a single read).
    drain = 6
    h = start(tmp, [FIXTURE, "--workers", "2", "--orphan-workers", "--orphans-keep-serving"],
              f"--drain-timeout={drain}s")
    try:
        old = wait_for(lambda: (lambda p: p if len(p) >= 3 else None)(generation_pids(h.token, 1)), 10,
                       "generation 1's master and workers")
        h.signal(signal.SIGHUP)
        h.wait_ready(2, timeout=20)
        wait_for(lambda: "leaving 2 workers" in h.log(), 10, "the master gone")

        def orphaned():
            st = status_json(h.pid)  # in handover mode the old handoff drains it
            retiring = [g for g in st["generations"] if g["number"] == 1]
            return st if retiring and retiring[0]["main_exited"] and retiring[0]["processes"] == 2 else None
        st = wait_for(orphaned, drain - 1, "status to show the master reaped and its 2 workers")
        check(next(g for g in st["generations"] if g["number"] == 1)["kill_in_ms"] is not None,
              f"status shows the orphaned workers with their deadline: {st}")
        wait_for(lambda: not generation_pids(h.token, 1), drain + 10, f"old workers killed; log:\n{h.log()}")
        for _ in range(20):
            check(http_get(h.port)[2] not in old, "no old process answers after the deadline")
        check(h.stop() == 0, h.log())
        check(not marked(h.token), f"nothing left: {marked(h.token)}")
    finally:
        close(h)


def test_stop_takes_the_whole_generation(tmp):
    # Supervise mode's promise when handoff stops: no orphan serves on.
    h = start(tmp, [FIXTURE, "--workers", "2", "--orphan-workers", "--orphans-keep-serving"])
    try:
        wait_for(lambda: len(generation_pids(h.token, 1)) >= 3, 10, "master and workers")
        check(h.stop(timeout=DRAIN + 20) == 0, h.log())
        check(not marked(h.token), f"nothing left after the stop: {marked(h.token)}")
    finally:
        close(h)


def test_crash_stops_what_the_main_left(tmp):
    # The master crashes; its workers serve on. handoff exits with the
    # crash's status (for Restart=), but first asks the orphans to stop,
    # at once, not only at a (here long) drain deadline.
    token = uuid.uuid4().hex
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}", "--drain-timeout=60s"],
                [FIXTURE, "--workers", "2", "--orphan-workers", "--orphans-keep-serving"],
                notify=FakeSystemd(tmp), env={"CONTAIN_TEST": token})
    h.token = token
    try:
        h.wait_ready(1)
        master = h.generation_pid(1)
        wait_for(lambda: len(generation_pids(token, 1)) >= 3, 10, "master and workers")
        os.kill(master, signal.SIGKILL)
        check(h.wait_exit(timeout=20) == 137, h.log())
        check(not marked(token), f"nothing left: {marked(token)}")
    finally:
        close(h)


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def test_an_orphan_we_cannot_place_does_not_hold_the_stop(tmp):
    """A process that left the group and cleared its environment is reaped
    but neither counted nor killed (handoff(1)). One found running when
    handoff looked was taken for a process in the middle of its exit, and
    until it was reaped no generation could be called gone: nothing looked
    at it again, and handoff's stop never ended (found by a reviewer). The
    stop ends now."""
    pidfile = os.path.join(tmp, "spinner.pid")
    spin = f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile} && exec env -i nice -n 19 /bin/sh -c 'while :; do :; done'"
    h = start(tmp, ["/bin/sh", "-c", f"(setsid /bin/sh -c {shlex.quote(spin)} &); exec {FIXTURE}"])
    spinner = None
    try:
        spinner = wait_for(lambda: read_pid(pidfile), 10, "the spinner's pid")
        wait_for(lambda: environ_of(spinner) == {}, 10, "the spinner, its environment cleared")
        check(h.stop(timeout=DRAIN + 20) == 0, h.log())
        # Not checked: that it outlives the stop. Looked at before its exec
        # (a scan at any SIGCHLD, as a handover mode's standby gives one),
        # it still carried HANDOFF_GENERATION and was rightly taken for the
        # generation's and stopped with it (a fresh-clone CI run did that).
    finally:
        if spinner and pid_alive(spinner):
            os.kill(spinner, signal.SIGKILL)
        close(h)


def test_daemons_caught_in_an_execve_are_placed(tmp):
    """Daemons that left the group (setsid) and exec themselves over and
    over: one caught in the middle of an execve() has no environment to read
    yet. It is looked at again until it has one, and is the generation's.
    Looked at once, it was taken for a process of no generation, neither
    counted nor killed, and outlived handoff's stop (found by a reviewer:
    one of 30 survived, three runs of three). Likely, not certain, to catch
    one here; never a false failure."""
    loop = 'exec /bin/sh -c "$0" "$0"'
    n = 20
    h = start(tmp, ["/bin/sh", "-c", f"for i in $(seq {n}); do (setsid /bin/sh -c {shlex.quote(loop)} "
                                     f"{shlex.quote(loop)} &); done; exec {FIXTURE}"])
    try:
        wait_for(lambda: len(generation_pids(h.token, 1)) >= n + 1, 10, "the main and its looping daemons")
        check(h.stop(timeout=DRAIN + 20) == 0, h.log())
        left = set()
        for _ in range(50):  # a survivor is itself between two execs now and then
            left |= set(marked(h.token))
        check(not left, f"nothing left after the stop: {sorted(left)}; log:\n{h.log()}")
    finally:
        close(h)


def test_daemon_whose_main_thread_exited_is_placed(tmp):
    """A daemon (setsid) whose main thread called pthread_exit() while
    another thread runs: its leader is a zombie with no memory to read, and
    its SIGCHLD comes only with the last thread. Its generation is read
    through the live thread, and the stop takes it; it was pending for good,
    and handoff's stop never ended (found by a reviewer)."""
    pidfile = os.path.join(tmp, "daemon.pid")
    prog = ("import ctypes, os, threading, time\n"
            f"open({pidfile!r} + '.tmp', 'w').write(str(os.getpid()))\n"
            f"os.rename({pidfile!r} + '.tmp', {pidfile!r})\n"
            "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
            "ctypes.CDLL(None).pthread_exit(None)\n")
    h = start(tmp, ["/bin/sh", "-c", f"(setsid /usr/bin/python3 -c {shlex.quote(prog)} &); exec {FIXTURE}"])
    daemon = None
    try:
        daemon = wait_for(lambda: read_pid(pidfile), 10, "the daemon's pid")
        wait_for(lambda: (stat_of(daemon) or ["?"])[0] == "Z" and len(os.listdir(f"/proc/{daemon}/task")) > 1, 10,
                 "its main thread gone, another thread running")
        check(h.stop(timeout=DRAIN + 20) == 0, h.log())
        wait_for(lambda: not pid_alive(daemon), 10, "the daemon stopped with its generation")
    finally:
        if daemon and pid_alive(daemon):
            os.kill(daemon, signal.SIGKILL)
        close(h)


def test_group_left_to_an_orphan_we_cannot_place_ends_at_the_deadline(tmp):
    """A process that left the group and cleared its environment (of no
    generation) is the parent of the group's last member, which ignores
    SIGTERM. The drain deadline's SIGKILL ends that member; its parent reaps
    it, and no SIGCHLD comes to handoff: nothing looked at the group again,
    and handoff's stop never ended (found by a reviewer). It ends now."""
    pidfile = os.path.join(tmp, "reaper.pid")
    reap = ("import os, signal\n"
            f"open({pidfile!r} + '.tmp', 'w').write(str(os.getpid()))\n"
            f"os.rename({pidfile!r} + '.tmp', {pidfile!r})\n"
            "while True:\n"
            "    try:\n"
            "        os.wait()\n"
            "    except ChildProcessError:\n"
            "        signal.pause()\n")
    left = f"(trap '' TERM; exec sleep 600) & exec setsid env -i /usr/bin/python3 -c {shlex.quote(reap)}"
    # The parent is the main's child until the main exits (not adopted
    # before its environment is cleared); the sleep, in the group, its child.
    h = start(tmp, ["/bin/sh", "-c", f"/bin/sh -c {shlex.quote(left)} & exec {FIXTURE}"])
    parent = None
    try:
        parent = wait_for(lambda: read_pid(pidfile), 10, "the reaping parent's pid")
        wait_for(lambda: environ_of(parent) == {}, 10, "the parent, its environment cleared")
        check(h.stop(timeout=DRAIN + 20) == 0, h.log())
        check("sending SIGKILL" in h.log(), f"the group lived to the deadline (the test tests something):\n{h.log()}")
    finally:
        if parent and pid_alive(parent):
            os.kill(parent, signal.SIGKILL)
        close(h)


def test_drain_deadline_after_pid_reuse(tmp):
    """A retired generation whose worker left its process group (setsid) and
    ignores SIGTERM keeps its tree after its main is reaped. When a later
    generation's main gets the old main's pid (a pid wrap-around during a
    long drain), the retired generation's deadline must SIGKILL only what is
    its own, never the group that number names now (it killed the serving
    generation, found by a reviewer). The wrap-around is made in a pid
    namespace of its own (root), by setting its ns_last_pid."""
    if MODE != "supervise":
        raise Skip("the reload that reuses the pid is handoff's own spawn in supervise mode")
    unshare, nsenter = shutil.which("unshare"), shutil.which("nsenter")
    if os.geteuid() != 0 or not unshare or not nsenter:
        raise Skip("needs root, unshare(1) and nsenter(1) for a pid namespace")
    port = free_port()
    worker = "trap '' TERM; exec sleep 600"
    script = (f'if [ "$HANDOFF_GENERATION" = 1 ]; then setsid /bin/sh -c {shlex.quote(worker)} & fi; '
              f'exec {shlex.quote(FIXTURE)} --init-delay 0 --grace-ms 0')
    logpath = os.path.join(tmp, "handoff.log")
    # sh is the namespace's init, so that handoff is an ordinary subreaper.
    inner = f'{shlex.quote(HANDOFF)} -l 127.0.0.1:{port} --drain-timeout=5s -- /bin/sh -c {shlex.quote(script)} & wait'
    # Its runtime files in a directory of the test's own: their names carry
    # pids of the namespace, which mean something else outside it.
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime, 0o700)
    with open(logpath, "w") as log:
        proc = subprocess.Popen([unshare, "--pid", "--fork", "--mount-proc", "/bin/sh", "-c", inner],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, RUNTIME_DIRECTORY=runtime))
    text = lambda: open(logpath).read()
    try:
        m = wait_for(lambda: re.search(r"Started generation 1: pid (\d+)", text()), 10, f"generation 1; log:\n{text()}")
        first = int(m.group(1))
        wait_for(lambda: "Generation 1 " in text() and "is ready" in text(), 10, f"generation 1 ready; log:\n{text()}")
        outer = wait_for(lambda: [p for p in all_pids() if is_handoff(p) and os.getsid(p) == proc.pid], 10,
                         "handoff's pid outside the namespace")[0]
        os.kill(outer, signal.SIGHUP)
        wait_for(lambda: re.search(r"Retired generation 1 .* exited", text()), 10,
                 f"generation 1's main gone, its worker left; log:\n{text()}")
        # The next pid given out in the namespace is generation 1's main's.
        subprocess.run([nsenter, "--target", str(outer), "--pid", "--mount", "/bin/sh", "-c",
                        f"echo {first - 1} > /proc/sys/kernel/ns_last_pid"], check=True, timeout=10)
        os.kill(outer, signal.SIGHUP)
        wait_for(lambda: f"Started generation 3: pid {first}," in text() or "Started generation 3:" in text(), 10,
                 f"generation 3; log:\n{text()}")
        check(f"Started generation 3: pid {first}," in text(), f"generation 3 got pid {first}; log:\n{text()}")
        wait_for(lambda: re.search(r"Generation 3 .* serves", text()), 10, f"generation 3 serves; log:\n{text()}")
        worker = wait_for(lambda: [p for p in all_pids() if ppid_of(p) == outer and cmdline_of(p) == b"sleep\x00600\x00"],
                          10, "generation 1's worker, handoff's child")[0]
        wait_for(lambda: "Generation 1 " in text() and "sending SIGKILL" in text(), 15,
                 f"generation 1's deadline; log:\n{text()}")
        wait_for(lambda: not pid_alive(worker), 10, "generation 1's worker killed at its deadline")
        check("Serving generation 3" not in text() and "killed by signal" not in text(),
              f"generation 3 was not killed; log:\n{text()}")
        check(http_get(port)[0] == 200, "generation 3 serves")
        os.kill(outer, signal.SIGTERM)
        check(proc.wait(timeout=20) == 0, f"a clean stop; log:\n{text()}")
        check(not os.listdir(runtime), f"nothing left in the runtime directory: {os.listdir(runtime)}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


if __name__ == "__main__":
    run([test_shell_wrapper_that_does_not_exec, test_workers_outlive_their_master, test_double_forked_daemon,
         test_orphans_that_keep_serving_are_killed_at_the_deadline, test_stop_takes_the_whole_generation,
         test_crash_stops_what_the_main_left, test_an_orphan_we_cannot_place_does_not_hold_the_stop,
         test_daemons_caught_in_an_execve_are_placed, test_daemon_whose_main_thread_exited_is_placed,
         test_group_left_to_an_orphan_we_cannot_place_ends_at_the_deadline, test_drain_deadline_after_pid_reuse])
