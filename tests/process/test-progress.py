#!/usr/bin/python3
"""What systemctl status shows while a generation starts, in the mode
HANDOFF_TEST_MODE names: the starting generation's own STATUS=, prefixed
with what handoff knows; never "Serving" before READY=1."""

import os
import re
import signal

from harness import MODE, FakeSystemd, Handoff, check, fixture_cmd, free_port, run, set_args, wait_for


def statuses(h):
    """(STATUS=, READY=1?) of every datagram from whoever was main, in order."""
    mains = set(h.mains())
    return [(m.fields["STATUS"], m.fields.get("READY") == "1") for m in h.notify.snapshot()
            if m.pid in mains and "STATUS" in m.fields]


def test_progress_while_starting_and_reloading(tmp):
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, "--init-delay", "400", "--starting-status", "warming-up")
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}"], fixture_cmd(args_file), notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1)
        first = statuses(h)
        ready_at = next(i for i, (_, r) in enumerate(first) if r)
        check(any(re.fullmatch(r"Starting generation 1 \(pid \d+, [\d.]+m?s\): warming-up", st) for st, _ in
                  first[:ready_at]), f"the first generation's own STATUS= shown while it starts: {first}")
        check(not any(st.startswith("Serving") for st, _ in first[:ready_at]), f"no 'Serving' before READY=1: {first}")
        check(first[ready_at][0].startswith("Serving generation 1"), first)
        # What it said before READY=1 stays its text, as under systemd.
        check(first[ready_at][0].endswith("; app: warming-up"), first)

        h.signal(signal.SIGHUP)
        h.wait_ready(2, timeout=20)
        after = statuses(h)[len(first):]
        ready_at = next(i for i, (_, r) in enumerate(after) if r)
        check(any(re.fullmatch(r"Reloading: generation 2 starting \(pid \d+, [\d.]+m?s\): warming-up", st)
                  for st, _ in after[:ready_at]), f"the candidate's STATUS= shown as progress: {after}")
        check(after[ready_at][0].startswith("Serving generation 2"), after)
        check(after[ready_at][0].endswith("; app: warming-up"), f"the candidate's STATUS= once it serves: {after}")
        if MODE == "handover":
            # The new main's own first status line, after the takeover, too.
            main = h.main_pid()
            own = wait_for(lambda: [m.fields["STATUS"] for m in h.notify.snapshot()
                                    if m.pid == main and "STATUS" in m.fields], 10,
                           f"a STATUS= from the new main {main}")
            check(own[0].endswith("; app: warming-up"), own)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_status_said_with_ready(tmp):
    """READY=1 and STATUS= in one datagram (sd_notify(3)'s own example):
    systemd shows both at once, so handoff's READY=1 line (in handover mode
    the MAINPID= datagram) already has the text, and no line after it
    lacks it or says it again."""
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, "--status", "serving-one")
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={MODE}"], fixture_cmd(args_file), notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1)
        first = statuses(h)
        ready_at = next(i for i, (_, r) in enumerate(first) if r)
        check(re.fullmatch(r"Serving generation 1 \(pid \d+\); 0 reloads, 0 failed; app: serving-one",
                           first[ready_at][0]), f"the READY=1 line has the text said with READY=1: {first}")

        set_args(args_file, "--status", "serving-two")
        h.signal(signal.SIGHUP)
        h.wait_ready(2, timeout=20)
        if MODE == "handover":
            main = h.main_pid()
            wait_for(lambda: any(m.pid == main and "STATUS" in m.fields for m in h.notify.snapshot()), 10,
                     f"a STATUS= from the new main {main}")
        after = statuses(h)[len(first):]
        ready_at = next(i for i, (_, r) in enumerate(after) if r)
        check(re.fullmatch(r"Serving generation 2 \(pid \d+\); 1 reloads, 0 failed; last: reload to generation 2 "
                           r"ok in [\d.]+m?s; app: serving-two", after[ready_at][0]),
              f"the reload's READY=1 line has the candidate's text: {after}")
        later = [st for st, _ in after[ready_at + 1:]]
        check(all(st.endswith("; app: serving-two") for st in later), f"no later line without it: {after}")
        if MODE == "supervise":
            check(later == [], f"nothing said twice: {after}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


if __name__ == "__main__":
    run([test_progress_while_starting_and_reloading, test_status_said_with_ready])
