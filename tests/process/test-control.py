#!/usr/bin/python3
"""handoffctl reload / handoffctl status (the client the shipped units run;
"handoff reload" and "handoff status" are the same code, tested by
test-cli.py and the reload tests) against a running handoff, in the mode
HANDOFF_TEST_MODE names: exit codes, what status shows, concurrent and
overlapping requests, bad requests and another uid."""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

from control_socket import connect_control
from handofftest.handoff import FIXTURE, HANDOFF, HANDOFFCTL, Handoff, MODE, fixture_cmd, set_args
from handofftest.load import Load
from handofftest.net import free_port, serving_pid
from handofftest.notify import FakeSystemd
from handofftest.procs import stat_fields
from handofftest.runner import Skip, run
from handofftest.wait import check, wait_for


def start(tmp, *extra, args=("--init-delay", "100")):
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, *args)
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}=web", f"--mode={MODE}", *extra], fixture_cmd(args_file),
                notify=fake)
    h.port, h.args_file = port, args_file
    h.wait_ready(1)
    return h



def ctl(*args, pid=None, env=None, timeout=60):
    cmd = [HANDOFFCTL, *args] + ([f"--pid={pid}"] if pid else [])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def ctl_status_json(h):
    p = ctl("status", "--json", pid=h.main_pid())
    check(p.returncode == 0, f"status: {p.returncode} {p.stderr}")
    return json.loads(p.stdout)


def test_reload_success_prints_one_line(tmp):
    h = start(tmp)
    try:
        p = ctl("reload", pid=h.main_pid())
        check(p.returncode == 0, f"exit {p.returncode}: {p.stderr}")
        line = p.stdout.strip()
        check(line.startswith("reloaded: generation 2, pid ") and line.count("\n") == 0, line)
        new_app = int(line.split("pid ")[1].split(",")[0])
        # It returned once the new generation serves: the next answer is its.
        wait_for(lambda: serving_pid(h.port) == new_app, 5, f"generation 2 (pid {new_app}) answers")
        if MODE == "handover":
            check(len(h.mains()) == 2, "MAINPID moved")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_reload_failure_exit_1_old_serves(tmp):
    h = start(tmp)
    try:
        old = serving_pid(h.port)
        set_args(h.args_file, "--fail-at-start")
        p = ctl("reload", pid=h.main_pid())
        check(p.returncode == 1, f"exit {p.returncode}: {p.stdout} {p.stderr}")
        check("generation 2 failed: exited with status 3" in p.stderr, p.stderr)
        check(serving_pid(h.port) == old, "the old generation serves on")
        set_args(h.args_file, "--init-delay", "50")
        check(ctl("reload", pid=h.main_pid()).returncode == 0, "the next reload works")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_reload_cut_short_by_stop_is_not_a_failure(tmp):
    h = start(tmp)
    try:
        set_args(h.args_file, "--fail-at-start")
        check(ctl("reload", pid=h.main_pid()).returncode == 1, "a first reload fails")
        set_args(h.args_file, "--hang-at-start")
        p = subprocess.Popen([HANDOFFCTL, "reload", f"--pid={h.main_pid()}"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        h.wait_log("Started generation 3")
        h.signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        # Overtaken by a stop is not a failure (systemctl stop during a
        # reload must not leave the unit failed), and the client says so.
        check(p.returncode == 0 and "overtaken by the stop" in out, f"{p.returncode} {out} {err}")
        check("generation 2" not in out + err, f"the older failure is not this reload's: {out} {err}")
        check(h.wait_exit() == 0, h.log())
    finally:
        h.close()


def test_unreachable_timeout_and_usage(tmp):
    p = ctl("reload", pid=os.getpid())  # a live process that is no handoff
    check(p.returncode == 3 and "cannot reach handoff" in p.stderr, f"{p.returncode} {p.stderr}")
    # A process that has exited and is not yet reaped (a handoff that failed
    # to start, its parent not done with it): said as such.
    zombie = subprocess.Popen(["true"])
    try:
        wait_for(lambda: stat_fields(zombie.pid)[0] == "Z", 10, "the child a zombie")
        p = ctl("reload", pid=zombie.pid)
        check(p.returncode == 3 and f"pid {zombie.pid} has exited" in p.stderr, f"{p.returncode} {p.stderr}")
    finally:
        zombie.wait()
    env = {k: v for k, v in os.environ.items() if k != "MAINPID"}
    p = ctl("reload", env=env)
    check(p.returncode == 2 and "MAINPID" in p.stderr, f"no pid: {p.returncode} {p.stderr}")
    for bad in (["reload", "--pid=abc"], ["reload", "--timeout=5x", "--pid=1"], ["reload", "extra", "--pid=1"],
                ["status", "--bogus"]):
        p = ctl(*bad)
        check(p.returncode == 2, f"{bad}: {p.returncode} {p.stderr}")
    h = start(tmp, "--start-timeout=20s")
    try:
        set_args(h.args_file, "--hang-at-start")
        t0 = time.monotonic()
        p = ctl("reload", "--timeout=400ms", pid=h.main_pid())
        check(p.returncode == 4 and "no answer" in p.stderr, f"timeout: {p.returncode} {p.stderr}")
        check(time.monotonic() - t0 < 5, "returned at its deadline")
        # $MAINPID is what systemd sets for ExecReload=.
        p = ctl("status", env=dict(os.environ, MAINPID=str(h.main_pid())))
        check(p.returncode == 0 and "mode, reloading" in p.stdout and
              ("starting " in p.stdout or "next-handoff " in p.stdout), p.stdout)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_reload_with_a_huge_timeout_waits(tmp):
    """A --timeout far in the future (but short of "infinity") waits for the
    answer: the deadline saturates, it does not wrap around to one long past
    (which gave up at once, exit 4, with the reload still running)."""
    h = start(tmp)
    try:
        p = ctl("reload", "--timeout=18446744073709s", pid=h.main_pid())
        check(p.returncode == 0 and "reloaded: generation 2" in p.stdout, f"{p.returncode} {p.stdout} {p.stderr}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_status_before_during_after(tmp):
    h = start(tmp, "--drain-timeout=20s")
    try:
        st = ctl_status_json(h)
        check(st["mode"] == MODE and st["state"] == "serving", st)
        check([g["role"] for g in st["generations"]] == ["serving"], st)
        check(st["sockets"] == [{"fd": 3, "name": "web", "address": f"tcp 127.0.0.1:{h.port}"}], st)
        check(st["reloads_ok"] == 0 and st["reloads_failed"] == 0, st)

        set_args(h.args_file, "--init-delay", "1500")
        h.signal(signal.SIGHUP)
        during = wait_for(lambda: (lambda s: s if s["state"] == "reloading" else None)(ctl_status_json(h)), 5,
                          "status during the reload")
        roles = [g["role"] for g in during["generations"]]
        check("serving" in roles and ("starting" in roles or "next-handoff" in roles), during)

        h.wait_ready(2, timeout=20)
        wait_for(lambda: ctl_status_json(h)["reloads_ok"] == 1, 5, "reload counted")
        after = ctl_status_json(h)
        check(after["last_result"].startswith("reload to generation 2 ok in "), after)
        check(after["generations"][0]["role"] == "serving" and after["generations"][0]["number"] == 2, after)
        text = ctl("status", pid=h.main_pid()).stdout
        check("mode, serving" in text and "name web, tcp 127.0.0.1" in text and "1 ok, 0 failed" in text, text)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_retiring_generation_shown_with_deadline(tmp):
    h = start(tmp, "--drain-timeout=20s", "--mode=supervise", args=("--init-delay", "50", "--ignore-sigterm"))
    try:
        check(ctl("reload", pid=h.main_pid()).returncode == 0, h.log())
        st = ctl_status_json(h)
        retiring = [g for g in st["generations"] if g["role"] == "retiring"]
        check(len(retiring) == 1 and retiring[0]["number"] == 1 and 0 < retiring[0]["kill_in_ms"] <= 20000, st)
        h.kill_all()
    finally:
        h.close()


def connections_waiting(pid):
    """Connections to pid's control socket that it has not accepted yet:
    /proc/net/unix lists each with the listener's path and no inode."""
    n = 0
    with open(f"/proc/{pid}/net/unix") as f:
        for line in f:
            fields = line.split()
            if len(fields) == 8 and fields[6] == "0" and os.path.basename(fields[7]) == f"control.{pid}":
                n += 1
    return n


def test_concurrent_requests_all_answered(tmp):
    """Five clients at once: every one is answered by a reload that started
    after it asked, reloads never run in parallel, and they coalesce."""
    # Five `handoff reload` processes started together reach handoff within
    # a few ms on an idle machine, but seconds apart when it is saturated.
    # So handoff is stopped until all five are connected, however late each
    # started: then it reads their requests one after another, the first
    # starts a reload, and the other four come while it runs (a generation
    # takes 1.5 s to be ready).
    h = start(tmp, args=("--init-delay", "1500"))
    load = Load(f"127.0.0.1:{h.port}", tmp)
    main = h.main_pid()
    stopped = False
    try:
        # Five requests at once, to the pid that is main now, as five
        # operators would send them. (A request to an old main that has
        # already exited cannot be followed: there is no one to ask.)
        results = []

        def one():
            results.append(ctl("reload", pid=main))
        threads = [threading.Thread(target=one) for _ in range(5)]
        os.kill(main, signal.SIGSTOP)
        stopped = True
        for t in threads:
            t.start()
        wait_for(lambda: connections_waiting(main) == 5, 30, "five clients connected")
        os.kill(main, signal.SIGCONT)
        stopped = False
        for t in threads:
            t.join(timeout=60)
        check(len(results) == 5 and all(p.returncode == 0 for p in results),
              [(p.returncode, p.stdout, p.stderr) for p in results])
        # The first request starts a reload; the other four, read while it
        # runs, are answered by the next one, and by that one only.
        started = h.log().count("Started generation") - 1
        check(started == 2, f"coalesced into two reloads, not {started}:\n{h.log()}")
        res = load.stop()
        check(res["failed"] == 0, res)
        check(h.stop() == 0, h.log())
    finally:
        if stopped:
            os.kill(main, signal.SIGCONT)
        if load.proc.poll() is None:
            load.proc.kill()
        h.close()


def test_request_during_reload_waits_for_the_next(tmp):
    """A request that arrives while a reload runs is answered by the next
    reload: whatever it changed was not in the running one."""
    h = start(tmp, args=("--init-delay", "600"))
    try:
        h.signal(signal.SIGHUP)
        h.wait_log("Started generation 2")
        p = ctl("reload", pid=h.main_pid())
        check(p.returncode == 0 and "generation 3" in p.stdout, f"{p.returncode} {p.stdout} {p.stderr}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def raw(pid, payload, read=True, timeout=10):
    s = connect_control(pid, timeout)
    if payload is not None:
        s.send(payload)
    if not read:
        return s
    try:
        return s.recv(8192).decode()
    finally:
        s.close()


def test_reload_answered_after_a_half_close(tmp):
    """A client that shuts its sending side after the request (as
    "echo RELOAD | socat - UNIX-CONNECT:..." does) still gets its answer;
    it was dropped at the shutdown, and read end of file (found by a
    reviewer). One that closes while waiting is dropped, and the reload
    goes on."""
    h = start(tmp)
    try:
        s = raw(h.main_pid(), b"RELOAD", read=False)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(30)
        answer = s.recv(8192).decode()
        s.close()
        check(answer.startswith("OK ") and "generation 2" in answer, f"answer: {answer!r}")
        gone = raw(h.main_pid(), b"RELOAD", read=False)
        gone.close()
        p = ctl("reload", pid=h.main_pid())
        check(p.returncode == 0 and "generation 4" in p.stdout, f"{p.returncode} {p.stdout} {p.stderr}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_bad_requests_never_disturb(tmp):
    h = start(tmp)
    load = Load(f"127.0.0.1:{h.port}", tmp)
    try:
        pid = h.main_pid()
        check(raw(pid, b"garbage") == "ERROR unknown request", "garbage")
        # After a NUL comes a new command line (reload-config.h): a bad one
        # is refused with the reason, and nothing is started.
        check(raw(pid, b"RELOAD\x00x").startswith("FAIL Refused: the new command line is invalid"), "bad args")
        check(raw(pid, b"RELOAD" + b"\x00--bogus" * 6000).startswith("FAIL Refused"), "60 KB of bad args")
        check(raw(pid, b"RELOADX") == "ERROR unknown request", "no NUL")
        check(raw(pid, b"R" * 70000) == "ERROR request too long", "oversized")
        check(h.ready_count() == 1, "no reload was started by a refused request")
        check(raw(pid, b"") in ("ERROR unknown request", ""), "empty")
        # A client that connects and never writes is dropped after 5 s.
        silent = raw(pid, None, read=False)
        t0 = time.monotonic()
        check(silent.recv(100) == b"" and 4 < time.monotonic() - t0 < 8, "silent client dropped")
        silent.close()
        # 70 silent clients at once: 64 are served (and dropped after 5 s),
        # the rest wait in the backlog; a real request is answered once the
        # silent ones are gone, and the service never noticed.
        many = [raw(pid, None, read=False) for _ in range(70)]
        t0 = time.monotonic()
        check(raw(pid, b"STATUS", timeout=20).startswith("OK "), "answered after the flood")
        check(time.monotonic() - t0 < 15, "within a bounded time")
        for s in many:
            s.close()
        check(ctl("reload", pid=pid).returncode == 0, "a reload still works")
        res = load.stop()
        check(res["failed"] == 0, res)
        check(h.stop() == 0, h.log())
    finally:
        if load.proc.poll() is None:
            load.proc.kill()
        h.close()


def start_time(pid):
    """Field 22 of /proc/<pid>/stat, in clock ticks after boot: with the
    pid, which process it is."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def test_outcome_answered_only_for_its_own_predecessor(tmp):
    """"OUTCOME <pid> <start time>" (what handoffctl reload asks of every
    handoff in its runtime directory once the main it waited on has died) is
    answered only by the next handoff that pid started, as the reload that
    started it ended; every other handoff refuses it at once, so that the
    client hears no other reload's outcome: a first handoff, and a next
    handoff asked about another pid, or about its predecessor's pid with
    another start time (a later process given that pid: another service's
    main, whose client asks too; before, the pid alone was asked about, and
    that next handoff answered for it). A pid or a start time that is not
    one is an unknown request."""
    h = start(tmp)
    try:
        first = h.pid
        since = start_time(first)
        refused = "ERROR this handoff is not the next handoff of pid %d"
        check(raw(first, f"OUTCOME {first} {since}".encode()) == refused % first, "a first handoff")
        for bad in (b"OUTCOME 0 1", b"OUTCOME -1 1", b"OUTCOME +1 1", b"OUTCOME 1", b"OUTCOME 1 2 3",
                    b"OUTCOME 1  2", b"OUTCOME 1 +2", b"OUTCOME 1 -2", b"OUTCOME 1 ", b"OUTCOME  1 2",
                    b"OUTCOME 2147483648 1", b"OUTCOME 12345678901 1", b"OUTCOME 1 123456789012345678901",
                    b"OUTCOME 1 18446744073709551616", b"OUTCOME ", b"OUTCOME 1\x00", b"OUTCOME 1 2\x00",
                    b"OUTCOME 1\x002"):
            check(raw(first, bad) == "ERROR unknown request", f"{bad!r}")
        if MODE == "handover":
            p = ctl("reload", pid=first)
            check(p.returncode == 0, f"{p.returncode} {p.stdout} {p.stderr}")
            main = h.main_pid()
            check(main != first, f"MAINPID moved: {h.mains()}")
            check(raw(main, f"OUTCOME {first} {since + 1}".encode()) == refused % first,
                  "its predecessor's pid, another start time")
            answer = raw(main, f"OUTCOME {first} {since}".encode())
            check(answer.startswith("OK ") and "generation 2" in answer, f"its predecessor's: {answer!r}")
            check(raw(main, f"OUTCOME {first} 18446744073709551615".encode()) == refused % first, "the largest")
            check(raw(main, f"OUTCOME {os.getpid()} {start_time(os.getpid())}".encode()) == refused % os.getpid(),
                  "another pid")
            check(raw(main, f"OUTCOME {main} {start_time(main)}".encode()) == refused % main, "its own pid")
        check(h.ready_count() == (2 if MODE == "handover" else 1), "no reload was started by OUTCOME")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_refused_command_line_says_why(tmp):
    # A new command line that handoff refuses as invalid (one no client
    # checked: a newer client's option after an upgrade, say) is refused
    # with the option parser's reason, in the reply, which the client prints
    # after "FAIL", and once in the log. Before: "the new command line is
    # invalid (handoff's log says why)", and the parser's line alone in the log.
    h = start(tmp)
    try:
        pid = h.main_pid()
        for args, reason in (
                ([b"--mode=bogus", b"--", b"app"], 'invalid --mode: "bogus" (expected auto, supervise or handover)'),
                ([b"--no-such-option", b"--", b"app"], "unrecognized option '--no-such-option'"),
                ([b"app"], 'expected "--" before the command "app"'),
                # What the terminal would take for its own is cut off.
                ([b"--mode=x\x1b[2Jy", b"--", b"app"], 'invalid --mode: "x')):
            want = f"FAIL Refused: the new command line is invalid: {reason}; generation 1 serves on"
            got = raw(pid, b"RELOAD" + b"".join(b"\0" + a for a in args))
            check(got == want, f"{got!r}, not {want!r}")
            h.wait_log(f"Refused a reload: the new command line is invalid: {reason}.")
        check("handoff: invalid --mode" not in h.log(), h.log())
        # The client checks a new command line before it sends it, and
        # says the same.
        p = subprocess.run([HANDOFFCTL, "reload", f"--pid={pid}", "--", "--mode=bogus", "--", "app"],
                           capture_output=True, text=True, timeout=60)
        want = ('handoffctl: the new command line is invalid: invalid --mode: "bogus" (expected auto, supervise '
                'or handover)\n')
        check(p.returncode == 2 and p.stderr == want, f"{p.returncode} {p.stderr!r}, not {want!r}")
        check(h.ready_count() == 1, "nothing was started")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_help_in_a_new_command_line_prints_nothing(tmp):
    # --help or --version in a new command line that reaches handoff (no
    # client checked it) is refused with the reason, and the old generation
    # serves on. Before: the help text or the version went to handoff's
    # stdout, the service's log, as well. The client says the same and
    # prints no help either.
    h = start(tmp)
    try:
        pid = h.main_pid()
        first = h.generation_pid(1)
        for opt in (b"--help", b"-h", b"-vh", b"--version"):
            want = "FAIL Refused: the new command line asks for --help or --version; generation 1 serves on"
            got = raw(pid, b"RELOAD\0" + opt + b"\0--\0app")
            check(got == want, f"{opt}: {got!r}, not {want!r}")
        check(h.main_pid() == pid and serving_pid(h.port) == first and h.ready_count() == 1,
              "handoff runs on, generation 1 serves, nothing was started")
        for opt in ("--help", "--version"):
            p = subprocess.run([HANDOFFCTL, "reload", f"--pid={pid}", "--", opt, "--", "app"], capture_output=True,
                               text=True, timeout=60)
            check(p.returncode == 2 and p.stdout == "" and "asks for --help or --version; nothing was reloaded"
                  in p.stderr, f"handoffctl reload -- {opt}: {p.returncode} {p.stdout!r} {p.stderr!r}")
        check(h.ready_count() == 1, "nothing was started")
        # handoff's stdout is written at its exit (a file's stdio buffer).
        check(h.stop() == 0, h.log())
        version = subprocess.run([HANDOFF, "--version"], capture_output=True, text=True, timeout=10).stdout
        check("Usage:" not in h.log() and version not in h.log(), f"nothing printed:\n{h.log()}")
    finally:
        h.close()


def test_other_uid_refused(tmp):
    if os.getuid() != 0 or not shutil.which("setpriv"):
        raise Skip("needs root and setpriv to act as another uid")
    h = start(tmp)
    try:
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", HANDOFFCTL, "reload",
                            f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=30)
        check(p.returncode == 3 and "permission denied" in p.stderr, f"{p.returncode} {p.stderr}")
        check("Started generation 2" not in h.log(), "no reload happened")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_squatted_name_is_not_trusted(tmp):
    """The control socket's name is predictable; a process that binds the
    name of another pid first (here root, who can write the 0700 runtime
    directory) must not be taken for that pid's handoff: the client uses
    only a socket the pid itself listens on."""
    if os.getuid() != 0:
        raise Skip("needs root to write the runtime directory")
    victim = subprocess.Popen(["sleep", "60"])
    squat = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    path = f"/run/handoff/control.{victim.pid}"
    try:
        os.makedirs("/run/handoff", mode=0o700, exist_ok=True)
        # Left by a handoff killed hard that had this pid once: stale.
        if os.path.exists(path):
            os.unlink(path)
        squat.bind(path)
        squat.listen(4)
        p = ctl("reload", pid=victim.pid, timeout=20)
        check(p.returncode == 3 and "cannot reach handoff" in p.stderr and "no handoff control socket" in p.stderr,
              f"{p.returncode} {p.stderr}")
        # The abstract name of handoff before 0.2, which the client still
        # tries for a handoff of that age: anyone may bind it, so it is
        # used only if the pid asked for listens there itself.
        legacy = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        legacy.bind(f"\0handoff/control/{victim.pid}")
        legacy.listen(4)
        p = ctl("reload", pid=victim.pid, timeout=20)
        legacy.close()
        check(p.returncode == 3 and "no handoff control socket" in p.stderr, f"{p.returncode} {p.stderr}")
        # Nor the abstract name of a handoff that could not bind its path.
        abstract = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        abstract.bind(f"\0handoff/control/{victim.pid}/0123456789abcdef")
        abstract.listen(4)
        p = ctl("reload", pid=victim.pid, timeout=20)
        abstract.close()
        check(p.returncode == 3 and "no handoff control socket" in p.stderr, f"{p.returncode} {p.stderr}")
    finally:
        squat.close()
        os.unlink(path)
        victim.kill()
        victim.wait()


NOBODY_IN_RUN = r'''
import errno, os, socket, sys
# As uid 65534: enter its own runtime directory, and reach handoff's sockets.
service, control, notify = sys.argv[1:]
def attempt(what, f):
    try:
        f()
        print(what, "ok")
    except OSError as e:
        print(what, errno.errorcode[e.errno])
attempt("service", lambda: open(os.path.join(service, "file"), "w").close())
attempt("control", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).connect(control))
attempt("notify", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", notify))
'''


def test_run_handoff_made_by_hand_lets_a_services_user_in(tmp):
    """A root handoff run by hand (no $RUNTIME_DIRECTORY) makes a missing
    /run/handoff 0755, as systemd makes the missing parent of handoff@NAME's
    RuntimeDirectory=handoff/NAME and leaves an existing one as it is: that
    service's User= (uid 65534 here) must enter its /run/handoff/NAME.
    Made 0700, it could not. What handoff keeps there stays its own: that
    uid cannot connect to its control socket nor send to its notify socket.
    In a mount namespace whose /run is an empty tmpfs, under umask 027,
    which would take the others' bits from a mkdir() alone."""
    if MODE != "supervise":
        raise Skip("the runtime directory is made alike in both modes")
    if os.geteuid() != 0 or not all(shutil.which(x) for x in ("unshare", "nsenter", "setpriv")):
        raise Skip("needs root, unshare(1), nsenter(1) and setpriv(1): a mount namespace with an empty /run, "
                   "and another uid")
    port, logpath = free_port(), os.path.join(tmp, "handoff.log")
    env = {k: v for k, v in os.environ.items() if k not in ("RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR", "NOTIFY_SOCKET")}
    with open(logpath, "w") as log:
        p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                              'mount -t tmpfs -o mode=0755 tmpfs /run && umask 027 && exec "$@"', "sh",
                              HANDOFF, "-l", f"127.0.0.1:{port}", "--", FIXTURE],
                             stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: "is ready" in open(logpath).read(), 10, "generation 1 ready")
        run = f"/proc/{p.pid}/root/run/handoff"
        st = os.stat(run)
        check(st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755, f"/run/handoff: uid {st.st_uid} "
              f"mode {stat.S_IMODE(st.st_mode):o}")
        control = f"/run/handoff/control.{p.pid}"
        st = os.stat(f"/proc/{p.pid}/root{control}")
        check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, f"{control}: {st.st_mode:o}")
        with open(f"/proc/{serving_pid(port)}/environ", "rb") as f:
            notify = dict(x.split(b"=", 1) for x in f.read().split(b"\0") if b"=" in x)[b"NOTIFY_SOCKET"].decode()
        st = os.stat(f"/proc/{p.pid}/root{os.path.dirname(notify)}")
        check(notify.startswith("/run/handoff/notify.") and stat.S_IMODE(st.st_mode) == 0o700,
              f"NOTIFY_SOCKET={notify}, its directory {st.st_mode:o}")
        # As systemd makes RuntimeDirectory=handoff/app for User=65534.
        os.mkdir(f"{run}/app", 0o755)
        os.chown(f"{run}/app", 65534, 65534)
        r = subprocess.run(["nsenter", "-t", str(p.pid), "-m", "setpriv", "--reuid=65534", "--regid=65534",
                            "--clear-groups", "/usr/bin/python3", "-c", NOBODY_IN_RUN, "/run/handoff/app", control,
                            notify], capture_output=True, text=True, timeout=30)
        check(r.stdout.split("\n") == ["service ok", "control EACCES", "notify EACCES", ""],
              f"as uid 65534: {r.stdout} {r.stderr}")
        check("another uid" not in open(logpath).read(), open(logpath).read())
        p.terminate()
        check(p.wait(timeout=30) == 0, open(logpath).read())
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


LEGACY_HANDOFF = r'''
import os, socket, sys
# A handoff from before 0.2: its control socket is the abstract name
# @handoff/control/<its pid>. With a uid in argv[1], it listens as that
# (effective) uid and then runs as uid + 1: its socket is not its uid's.
if len(sys.argv) > 1:
    os.seteuid(int(sys.argv[1]))
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(f"\0handoff/control/{os.getpid()}")
s.listen(4)
if len(sys.argv) > 1:
    os.seteuid(0)
    os.setresuid(int(sys.argv[1]) + 1, int(sys.argv[1]) + 1, int(sys.argv[1]) + 1)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    if c.recv(4096).startswith(b"STATUS"):
        c.send(b"OK a handoff from before 0.2")
    c.close()
'''


def test_legacy_abstract_name(tmp):
    """A handoff from before 0.2 (listening on @handoff/control/<pid>) is
    still reached, as ExecReload= after a package upgrade needs; but only if
    it listens as its own uid or root: one that listens as another uid
    is refused."""
    for uid in (None, 65533):
        if uid is not None and os.getuid() != 0:
            raise Skip("needs root to listen as another uid")
        old = subprocess.Popen([sys.executable, "-c", LEGACY_HANDOFF, *([str(uid)] if uid else [])],
                               stdout=subprocess.PIPE, text=True)
        try:
            check(old.stdout.readline().strip() == "listening", "the legacy listener started")
            p = ctl("status", "--timeout=10s", pid=old.pid, timeout=20)
            if uid is None:
                check(p.returncode == 0 and p.stdout.strip() == "a handoff from before 0.2",
                      f"{p.returncode} {p.stdout} {p.stderr}")
            else:
                check(p.returncode == 3 and f"it listens as uid {uid}, not as its uid {uid + 1} or root" in p.stderr,
                      f"{p.returncode} {p.stderr}")
        finally:
            old.kill()
            old.wait()


FAKE_HANDOFF = r'''
import os, socket, sys
# A process that answers every request with argv[1], listening where a
# handoff from before 0.2 would (@handoff/control/<its pid>), or, given a
# runtime directory in argv[2], where a next handoff does (DIR/control.<pid>).
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(f"{sys.argv[2]}/control.{os.getpid()}" if len(sys.argv) > 2 else f"\0handoff/control/{os.getpid()}")
s.listen(4)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.send(sys.argv[1].encode())
    c.close()
'''

# A main that takes one request, says so, and never answers it.
SILENT_HANDOFF = r'''
import os, socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(f"\0handoff/control/{os.getpid()}")
s.listen(4)
print("listening", flush=True)
c, _ = s.accept()
c.recv(4096)
print("asked", flush=True)
time.sleep(60)
'''


def test_follow_to_another_uid_is_refused(tmp):
    """A FOLLOW names the next handoff by its pid alone; should that pid
    be another user's process by the time the client connects (the next
    handoff died and its pid was reused), the client must not take that
    process's answer: it follows only to a process of the uid of the
    handoff that sent it there, or root. Here a root handoff sends the
    client on to a uid 65534 process that answers OK."""
    if os.getuid() != 0 or not shutil.which("setpriv"):
        raise Skip("needs root and setpriv to act as another uid")
    procs = []
    try:
        other = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                                  "-c", FAKE_HANDOFF, "OK reloaded: not by handoff"], stdout=subprocess.PIPE,
                                 text=True)
        procs.append(other)
        check(other.stdout.readline().strip() == "listening", "the other uid's listener started")
        main = subprocess.Popen([sys.executable, "-c", FAKE_HANDOFF, f"FOLLOW {other.pid}"], stdout=subprocess.PIPE,
                                text=True)
        procs.append(main)
        check(main.stdout.readline().strip() == "listening", "the root listener started")
        p = ctl("reload", "--timeout=10s", pid=main.pid, timeout=20)
        check(p.returncode == 3 and "not by handoff" not in p.stdout
              and f"pid {other.pid} runs as uid 65534" in p.stderr, f"{p.returncode} {p.stdout} {p.stderr}")
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def spawn_with_pid(pid, cmd):
    """cmd started as pid (free now), by setting the last pid given out;
    None when another process took pid first."""
    for _ in range(20):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        proc = subprocess.Popen(cmd)
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
        if os.path.exists(f"/proc/{pid}"):
            return None
    return None


def test_outcome_asked_when_the_dead_mains_pid_is_reused(tmp):
    """The main closes a reload's connection without an answer and dies;
    before the client looks, its pid is another uid's process. The client
    must still ask the next handoffs ("OUTCOME <pid> <start time>"): the
    pid is not the main's any more (its start time is another), so the main
    is gone. Before, the client took the new process for the main, alive,
    and exited 3 ("closed the connection without an answer") for a reload
    its next handoff answers OK: another user could fail "systemctl reload"
    this way."""
    if os.getuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/proc/sys/kernel/ns_last_pid"):
        raise Skip("needs root, setpriv and ns_last_pid to give the main's pid to another uid")
    rundir = os.path.join(tmp, "run")
    os.mkdir(rundir, 0o700)
    procs, client = [], None
    try:
        main = subprocess.Popen([sys.executable, "-c", SILENT_HANDOFF], stdout=subprocess.PIPE, text=True)
        procs.append(main)
        check(main.stdout.readline().strip() == "listening", "the main listens")
        nxt = subprocess.Popen([sys.executable, "-c", FAKE_HANDOFF, "OK reloaded: by the next handoff", rundir],
                               stdout=subprocess.PIPE, text=True)
        procs.append(nxt)
        check(nxt.stdout.readline().strip() == "listening", "the next handoff listens")
        client = subprocess.Popen([HANDOFFCTL, "reload", f"--pid={main.pid}", "--timeout=20s"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "RUNTIME_DIRECTORY": rundir})
        check(main.stdout.readline().strip() == "asked", "the client asked the main")
        # The client, between the main's close and its look at the pid.
        os.kill(client.pid, signal.SIGSTOP)
        main.kill()
        main.wait()
        other = spawn_with_pid(main.pid, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                          "sleep", "60"])
        os.kill(client.pid, signal.SIGCONT)
        if other is None:
            raise Skip(f"pid {main.pid} was taken by another process first")
        procs.append(other)
        out, err = client.communicate(timeout=30)
        check(client.returncode == 0 and out.strip() == "reloaded: by the next handoff",
              f"{client.returncode} {out} {err}")
    finally:
        if client and client.returncode is None:
            os.kill(client.pid, signal.SIGCONT)
            client.kill()
            client.wait()
        for proc in procs:
            proc.kill()
            proc.wait()


def test_stale_pid_follows_the_main(tmp):
    """Handover: a client holding the old main's pid is sent on to the new
    one while the old one still drains."""
    if MODE != "handover":
        raise Skip("only handover mode moves the main PID")
    h = start(tmp, "--drain-timeout=20s", args=("--init-delay", "50", "--ignore-sigterm"))
    try:
        check(ctl("reload", pid=h.pid).returncode == 0, h.log())
        check(h.main_pid() != h.pid, "MAINPID moved")
        p = ctl("reload", pid=h.pid)  # the old pid, still draining
        check(p.returncode == 0 and "generation 3" in p.stdout, f"{p.returncode} {p.stdout} {p.stderr}")
        st = json.loads(ctl("status", "--json", pid=h.pid).stdout)
        check(st["handed_over_to"] == h.mains()[1], st)
        h.kill_all()
    finally:
        h.close()


def test_stale_pid_is_not_sent_to_a_dead_main(tmp):
    """Handover: the new main dies while the old one still drains. The old
    main must not send a client on to the dead main's pid, which may be
    another process's by then (another service's handoff, in a shared
    /run/handoff): it answers that the main has exited, and the reload
    fails (exit 1); its status marks that main exited, and a SIGHUP is not
    passed on. Before, it answered FOLLOW with that pid."""
    if MODE != "handover":
        raise Skip("only handover mode moves the main PID")
    h = start(tmp, "--drain-timeout=20s", args=("--init-delay", "50", "--ignore-sigterm"))
    try:
        check(ctl("reload", pid=h.pid).returncode == 0, h.log())
        new = h.main_pid()
        check(new != h.pid, "MAINPID moved")
        os.kill(new, signal.SIGKILL)
        wait_for(lambda: h.exit_status(new) is not None, 10, f"the new main {new} to be reaped")
        answer = raw(h.pid, b"RELOAD")
        check(answer == f"FAIL the main handoff this one handed over to, pid {new}, has exited; nothing was "
              "reloaded", f"answer: {answer!r}")
        p = ctl("reload", "--timeout=10s", pid=h.pid)
        check(p.returncode == 1 and f"pid {new}, has exited" in p.stderr, f"{p.returncode} {p.stdout} {p.stderr}")
        # Its status says so, and a SIGHUP (a stale $MAINPID) is not passed on.
        st = json.loads(ctl("status", "--json", pid=h.pid).stdout)
        check(st["handed_over_to"] == new and st["handed_over_to_exited"] is True, st)
        p = ctl("status", pid=h.pid)
        check(f"handed over to handoff pid {new} (exited)\n" in p.stdout, p.stdout)
        os.kill(h.pid, signal.SIGHUP)
        h.wait_log(f"Ignored SIGHUP: the main handoff this one handed over to, pid {new}, has exited.")
        h.kill_all()
    finally:
        h.close()


if __name__ == "__main__":
    run([v for k, v in sorted(globals().items()) if k.startswith("test_")])
