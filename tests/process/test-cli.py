#!/usr/bin/python3
"""The command line as a person types it: a misspelt verb is a typo, not a
server to run; every message on stderr starts with "handoff:", whatever the
path handoff was run by; durations in log lines are printed the way systemd
does."""

import re
import subprocess

from harness import HANDOFF, FakeSystemd, Handoff, check, fixture_cmd, free_port, run


def handoff(*args):
    return subprocess.run([HANDOFF, *args], capture_output=True, text=True, timeout=10)


def test_misspelt_verbs_are_suggested(tmp):
    for typo, verb in (("relaod", "reload"), ("reloda", "reload"), ("stauts", "status"), ("stats", "status")):
        p = handoff(typo)
        check(p.returncode == 2 and f'did you mean "handoff {verb}"?' in p.stderr and f"-- {typo}" in p.stderr,
              f"{typo}: {p.returncode} {p.stderr}")
    # Far from every verb, or a path: no suggestion (the usual usage error).
    for other in ("python3", "./reload", "gunicorn"):
        p = handoff(other)
        check(p.returncode == 2 and "did you mean" not in p.stderr, f"{other}: {p.returncode} {p.stderr}")


def test_one_message_prefix(tmp):
    # HANDOFF is a path: getopt's own messages named it, or the verb.
    check("/" in HANDOFF, HANDOFF)
    for args in (["--bogus", "--", "x"], ["--start-timeout"], ["reload", "--bogus"], ["status", "--timeout"],
                 ["status", "-x"], ["reload", "--pid=abc"], ["status", "extra", "--pid=1"], ["x"]):
        p = handoff(*args)
        lines = p.stderr.splitlines()
        check(p.returncode == 2 and lines and lines[0].startswith("handoff: "), f"{args}: {p.returncode} {p.stderr!r}")
        check(all(line.startswith("handoff: ") or line.startswith("Try 'handoff ") for line in lines),
              f"{args}: {p.stderr!r}")


def test_failed_reload_message(tmp):
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise"],
                ["/bin/sh", "-c", f'test -e {tmp}/fail && exit 3; exec "$0" "$@"', fixture_cmd()[0]],
                notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1, timeout=20)
        open(f"{tmp}/fail", "w").close()
        p = handoff("reload", f"--pid={h.main_pid()}")
        check(p.returncode == 1 and p.stderr == "handoff: reload failed: generation 2 failed: exited with status 3\n",
              f"{p.returncode} {p.stderr!r}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_ready_time_is_a_systemd_duration(tmp):
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}"], fixture_cmd(None, "--init-delay", "1100"), notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1, timeout=20)
        check(re.search(r"Generation 1 \(.*pid \d+\) is ready after 1\.\d{3}s\.", h.log()), h.log())
        check(h.stop() == 0, h.log())
    finally:
        h.close()


if __name__ == "__main__":
    run([test_misspelt_verbs_are_suggested, test_one_message_prefix, test_failed_reload_message,
         test_ready_time_is_a_systemd_duration])
