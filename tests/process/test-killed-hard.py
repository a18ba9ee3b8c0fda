#!/usr/bin/python3
"""handoff killed hard (SIGKILL) in supervise mode: its generation does not
serve on as an orphan, so a restarted handoff can take the port at once."""

import os
import signal

from harness import FakeSystemd, Handoff, check, fixture_cmd, free_port, pid_alive, run, serving_pid, wait_for


def test_generation_dies_with_handoff(tmp):
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise"], fixture_cmd(None, "--workers", "2"),
                notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1)
        app = serving_pid(port)
        main = h.generation_pid(1)
        os.kill(h.pid, signal.SIGKILL)
        h.proc.wait(timeout=10)
        wait_for(lambda: not pid_alive(main), 10, f"generation 1's main {main} dies with handoff")
        wait_for(lambda: not pid_alive(app), 10, f"its worker {app} too")
        second = os.path.join(tmp, "restarted")
        os.mkdir(second)
        again = Handoff(second, ["-l", f"127.0.0.1:{port}", "--mode=supervise"], fixture_cmd(None),
                        notify=FakeSystemd(second))
        try:
            again.wait_ready(1)
            check(serving_pid(port) not in (main, app), "a restarted handoff serves on the same port")
            check(again.stop() == 0, again.log())
        finally:
            again.close()
    finally:
        h.close()


if __name__ == "__main__":
    run([test_generation_dies_with_handoff])
