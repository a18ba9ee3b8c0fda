#!/usr/bin/python3
"""--bake=DUR, in the mode HANDOFF_TEST_MODE names: a candidate that says
READY=1 and dies within the bake time is rolled back with nothing lost; one
that lives through it is committed only then."""

import os
import re
import subprocess
import time

from handofftest.procs import pid_alive
from harness import (HANDOFF, MODE, FakeSystemd, Handoff, Load, Skip, check, fixture_cmd, free_port, run, serving_pid,
                     set_args, wait_for, wait_new_pid)


def start(tmp, *extra):
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, "--init-delay", "50")
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}", "--drain-timeout=5s", *extra],
                fixture_cmd(args_file), notify=FakeSystemd(tmp))
    h.port, h.args_file = port, args_file
    h.wait_ready(1)
    return h


def reload(h):
    return subprocess.run([HANDOFF, "reload", f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=60)


def test_candidate_dying_within_bake_time_is_rolled_back(tmp):
    h = start(tmp, "--bake=1s")
    try:
        old = serving_pid(h.port)
        load = Load(f"127.0.0.1:{h.port}", tmp)
        # Ready after 50 ms, failing 500 ms later (after a clean drain, so
        # that the requests it took are answered): inside the 1 s bake time.
        set_args(h.args_file, "--init-delay", "50", "--fail-after", "500")
        p = reload(h)
        check(p.returncode == 1, f"reload reported failure: {p.returncode} {p.stdout} {p.stderr}")
        check("generation 2 failed: exited with status 7" in p.stderr, p.stderr)
        res = load.stop()
        check(res["failed"] == 0, f"requests failed: {res}")
        check(serving_pid(h.port) == old, "the old generation still serves")
        log = h.log()
        check("it serves beside generation 1 for the bake time (1s)" in log, log)
        check(not re.search(r"retiring generation 1 ", log), f"generation 1 was never retired:\n{log}")
        check(re.search(r"1 failed; last: generation 2 failed: exited with status 7", h.last_status()),
              h.last_status())
        # The next reload, with a healthy candidate, commits after the bake time.
        set_args(h.args_file, "--init-delay", "50")
        p = reload(h)
        check(p.returncode == 0, f"{p.returncode} {p.stdout} {p.stderr}")
        wait_new_pid(h.port, old)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_old_generation_stays_until_the_bake_time_is_over(tmp):
    h = start(tmp, "--bake=600ms")
    try:
        load = Load(f"127.0.0.1:{h.port}", tmp)
        p = reload(h)
        check(p.returncode == 0, f"{p.returncode} {p.stdout} {p.stderr}")
        log = h.log()
        baking = log.find("for the bake time (600ms)")
        baked = log.find("outlived the bake time")
        check(0 <= baking < baked, f"the bake time was kept before the commit:\n{log}")
        # The commit (and with it the old generation's stop signal) comes
        # after the bake: in this process or, in handover mode, in the old main.
        retire = max(log.find("retiring generation 1"), log.find("Handed over to handoff pid"))
        check(retire > baked, f"generation 1 retired only after the bake:\n{log}")
        res = load.stop()
        check(res["failed"] == 0, f"requests failed: {res}")
        check(len(res["pids"]) == 2, f"both generations answered while the candidate baked: {res['pids']}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


# The last finite usec_t (UINT64_MAX is infinity).
LAST_USEC = 2**64 - 2


def test_bake_time_past_the_clock_is_refused(tmp):
    """A bake time that, counted from now, would end past the 64-bit clock
    (584,542 years from boot) is refused, as infinity is: systemd's
    usec_add() makes such a deadline infinity, a bake without end. Before,
    it was taken, and every reload baked until the stop."""
    if MODE != "supervise":
        raise Skip("mode-independent: runs in the supervise pass")
    p = subprocess.run([HANDOFF, "-l", "127.0.0.1:1", "--bake=18446744073709551609us", "--", "true"],
                       capture_output=True, text=True, timeout=10)
    check(p.returncode == 2 and "past the clock" in p.stderr, f"{p.returncode} {p.stderr}")


def test_bake_time_that_came_past_the_clock_fails_the_reload(tmp):
    """A bake time taken at the start but past the clock by the reload
    (the clock went on meanwhile) is one without end, which --bake refuses
    by then: the reload fails, and the old generation serves on. In
    handover mode the next handoff, reading the options at the reload,
    refuses it; before, supervise mode baked until the stop."""
    margin = 3.0
    start_at = time.monotonic()
    bake = LAST_USEC - int((start_at + margin) * 10**6)
    h = start(tmp, f"--bake={bake}us")
    try:
        if time.monotonic() > start_at + margin:
            raise Skip(f"handoff took over {margin}s to start: its options may have been read past the mark")
        old = serving_pid(h.port)
        # The reload must come after the mark: a wait for the clock itself.
        wait_for(lambda: time.monotonic() > start_at + margin, margin + 1, "the clock past the mark")
        r = reload(h)
        check(r.returncode == 1, f"the reload failed: {r.returncode} {r.stdout} {r.stderr}\n{h.log()}")
        check("past the clock" in h.log(), h.log())
        # In supervise mode generation 2 was started, and is stopped by
        # now, but may accept in its grace period (slowly, under a
        # sanitizer): the question waits until it is gone.
        cand = re.search(r"Started generation 2: pid (\d+)", h.log())
        if cand:
            wait_for(lambda: not pid_alive(int(cand.group(1))), 10, "generation 2 gone")
        check(serving_pid(h.port) == old, "the old generation serves on")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_bad_bake_values_are_refused(tmp):
    for bad in ("infinity", "-1s", "soon", ""):
        p = subprocess.run([HANDOFF, "-l", "127.0.0.1:1", f"--bake={bad}", "--", "true"], capture_output=True,
                           text=True, timeout=10)
        check(p.returncode == 2 and "--bake" in p.stderr, f"{bad!r}: {p.returncode} {p.stderr}")


if __name__ == "__main__":
    run([test_candidate_dying_within_bake_time_is_rolled_back, test_old_generation_stays_until_the_bake_time_is_over,
         test_bake_time_past_the_clock_is_refused, test_bake_time_that_came_past_the_clock_fails_the_reload,
         test_bad_bake_values_are_refused])
