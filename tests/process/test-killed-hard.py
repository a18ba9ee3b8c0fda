#!/usr/bin/python3
"""handoff killed hard (SIGKILL) in supervise mode: its generation does not
serve on as an orphan, so a restarted handoff can take the port at once, and
removes the runtime files the killed one left (and nothing live)."""

import os
import signal
import socket
import threading

from harness import FakeSystemd, Handoff, check, fixture_cmd, free_port, pid_alive, run, serving_pid, wait_for


def dead_pids(n):
    """n pids that no process has here now."""
    out, pid = [], 4_000_000
    while len(out) < n:
        pid -= 1
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            out.append(pid)
        except PermissionError:
            pass
    return out


def starting_handoff(runtime, pid):
    """What a handoff with that pid has there for a moment while it starts:
    a control socket bound but not listening yet, a notify directory with no
    socket bound in it yet. Nobody listens on either."""
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ctl.bind(os.path.join(runtime, f"control.{pid}"))
    os.mkdir(os.path.join(runtime, f"notify.{pid}"), 0o700)
    return ctl


def decoys(runtime, live, fresh):
    """What the sweep must keep. A live handoff of another pid namespace
    sharing the directory (its pid means nothing here): a control socket
    that listens, a notify socket that is bound. A handoff starting with a
    pid that is alive here (ours stands in), and names that are not ours.
    (The starting handoff of another namespace, whose files are new, comes
    below.)"""
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ctl.bind(os.path.join(runtime, f"control.{live}"))
    ctl.listen()
    os.mkdir(os.path.join(runtime, f"notify.{live}"), 0o700)
    note = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    note.bind(os.path.join(runtime, f"notify.{live}", "1"))
    for name in ("control.12x", "notify.", "other"):
        open(os.path.join(runtime, name), "w").close()
    return [ctl, note, starting_handoff(runtime, os.getpid())]


def test_generation_dies_with_handoff(tmp):
    port = free_port()
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime, 0o700)
    env = {"RUNTIME_DIRECTORY": runtime}
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise"], fixture_cmd(None, "--workers", "2"),
                notify=FakeSystemd(tmp), env=env)
    live, fresh = dead_pids(2)
    kept = decoys(runtime, live, fresh)
    try:
        h.wait_ready(1)
        app = serving_pid(port)
        main = h.generation_pid(1)
        left = {f"control.{h.pid}", f"notify.{h.pid}"}
        wait_for(lambda: left <= set(os.listdir(runtime)), 10, f"premise: {left} in {os.listdir(runtime)}")
        os.kill(h.pid, signal.SIGKILL)
        h.proc.wait(timeout=10)
        wait_for(lambda: not pid_alive(main), 10, f"generation 1's main {main} dies with handoff")
        wait_for(lambda: not pid_alive(app), 10, f"its worker {app} too")
        check(left <= set(os.listdir(runtime)), "killed, it could not remove its runtime files")
        second = os.path.join(tmp, "restarted")
        os.mkdir(second)
        again = Handoff(second, ["-v", "-l", f"127.0.0.1:{port}", "--mode=supervise"], fixture_cmd(None),
                        notify=FakeSystemd(second), env=env)
        try:
            again.wait_ready(1)
            check(serving_pid(port) not in (main, app), "a restarted handoff serves on the same port")
            # A handoff of another pid namespace, starting: its files are
            # new. Kept new (their ctime) until the sweep has run, which
            # leaves what changed in the last RUNTIME_FILES_MIN_AGE (5 s).
            kept.append(starting_handoff(runtime, fresh))
            swept = threading.Event()

            def keep_fresh():
                while not swept.wait(0.1):
                    for kind in ("control", "notify"):
                        os.chmod(os.path.join(runtime, f"{kind}.{fresh}"), 0o700)
            toucher = threading.Thread(target=keep_fresh, daemon=True)
            toucher.start()
            # The restarted one sweeps what the killed one left, and only that.
            try:
                again.wait_log(f"Removed 2 runtime files left in {runtime} by handoff processes that were killed.",
                               timeout=20)
            finally:
                swept.set()
                toucher.join()
            names = set(os.listdir(runtime))
            check(not left & names, f"{left} removed: {names}")
            ours = {f"{kind}.{pid}" for kind in ("control", "notify") for pid in (live, fresh, os.getpid())}
            check(ours | {"control.12x", "notify.", "other"} <= names,
                  f"the live sockets, the starting handoffs' and names not ours are kept: {names}")
            check(os.listdir(os.path.join(runtime, f"notify.{live}")) == ["1"], "the bound notify socket is kept")
            check(again.stop() == 0, again.log())
        finally:
            again.close()
    finally:
        for k in kept:
            k.close()
        h.close()


if __name__ == "__main__":
    run([test_generation_dies_with_handoff])
