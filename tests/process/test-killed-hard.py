#!/usr/bin/python3
"""handoff killed hard (SIGKILL) in supervise mode: its generation does not
serve on as an orphan, so a restarted handoff can take the port at once, and
removes the runtime files the killed one left (and nothing live)."""

import os
import signal
import socket

from harness import FakeSystemd, Handoff, check, fixture_cmd, free_port, pid_alive, run, serving_pid, wait_for


def live_decoys(runtime):
    """What a live handoff of another pid namespace sharing the directory
    would have there (its pids mean nothing here): a control socket that
    listens, a notify socket that is bound. And names that are not ours."""
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ctl.bind(os.path.join(runtime, "control.999999"))
    ctl.listen()
    os.mkdir(os.path.join(runtime, "notify.999999"), 0o700)
    note = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    note.bind(os.path.join(runtime, "notify.999999", "1"))
    for name in ("control.12x", "notify.", "other"):
        open(os.path.join(runtime, name), "w").close()
    return ctl, note


def test_generation_dies_with_handoff(tmp):
    port = free_port()
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime, 0o700)
    env = {"RUNTIME_DIRECTORY": runtime}
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise"], fixture_cmd(None, "--workers", "2"),
                notify=FakeSystemd(tmp), env=env)
    decoys = live_decoys(runtime)
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
        again = Handoff(second, ["-l", f"127.0.0.1:{port}", "--mode=supervise"], fixture_cmd(None),
                        notify=FakeSystemd(second), env=env)
        try:
            again.wait_ready(1)
            check(serving_pid(port) not in (main, app), "a restarted handoff serves on the same port")
            # The restarted one sweeps what the killed one left, and only that.
            again.wait_log(f"Removed 2 runtime files left in {runtime} by handoff processes that were killed.")
            names = set(os.listdir(runtime))
            check(not left & names, f"{left} removed: {names}")
            check({"control.999999", "notify.999999", "control.12x", "notify.", "other"} <= names,
                  f"the live sockets and names not ours are kept: {names}")
            check(os.listdir(os.path.join(runtime, "notify.999999")) == ["1"], "the bound notify socket is kept")
            check(again.stop() == 0, again.log())
        finally:
            again.close()
    finally:
        for d in decoys:
            d.close()
        h.close()


if __name__ == "__main__":
    run([test_generation_dies_with_handoff])
