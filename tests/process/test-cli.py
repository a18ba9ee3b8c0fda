#!/usr/bin/python3
"""The command line as a person types it: a misspelt verb is a typo, not a
server to run; every message on stderr starts with "handoff:", whatever the
path handoff was run by; durations in log lines are printed the way systemd
does; handoffctl is "handoff reload" / "handoff status" without libsystemd."""

import os
import re
import resource
import shutil
import signal
import socket
import subprocess

from harness import HANDOFF, FakeSystemd, Handoff, Skip, TestFailure, check, fixture_cmd, free_port, run, set_args, wait_for
from handofftest.handoff import HANDOFFCTL, unprivileged



# For a handoff whose limits are cut (fds, processes) or that runs under
# ptrace: LeakSanitizer (the sanitizer build) needs fds, a process and
# /proc/PID/task of its own at exit, and fails the exit without them.
NO_LSAN = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "detect_leaks=0"]))}

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


def test_failed_start_names_its_cause(tmp):
    # A generation that could not be started at all: "handoff reload" (so
    # systemctl reload's journal) and STATUS= say why, as the log does, not
    # only "could not be started". In handover mode the next handoff's
    # generation: the next handoff passes the cause on.
    for mode in ("supervise", "handover"):
        failed_start_names_its_cause(os.path.join(tmp, mode), mode)


def failed_start_names_its_cause(tmp, mode):
    os.mkdir(tmp)
    port = free_port()
    opts = ["-l", f"127.0.0.1:{port}", f"--mode={mode}"]
    h = Handoff(tmp, opts, fixture_cmd(), notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1, timeout=20)
        for number, (extra, cause) in enumerate(
                ((["--", "/nonexistent/server"], "/nonexistent/server: No such file or directory"),
                 ([f"--working-directory={tmp}/none", "--", *fixture_cmd()],
                  f"cannot change to working directory {tmp}/none: No such file or directory"),
                 ([f"--environment-file={tmp}/none.conf", "--", *fixture_cmd()],
                  f"cannot read environment file {tmp}/none.conf: No such file or directory")), start=2):
            p = handoff("reload", f"--pid={h.main_pid()}", "--", *opts, *extra)
            want = f"handoff: reload failed: generation {number} failed: could not be started: {cause}\n"
            check(p.returncode == 1 and p.stderr == want, f"{p.returncode} {p.stderr!r}, not {want!r}")
            h.wait_log(f"Cannot start generation {number}: {cause}")
        wait_for(lambda: f"could not be started: {cause}" in (h.last_status() or ""), 10, "the cause in STATUS=")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_failed_notify_socket_names_its_cause(tmp):
    # --notify-socket=path and no usable private directory at a reload: the
    # reload's result says why, as for the other causes above.
    port = free_port()
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime, 0o700)
    opts = ["-l", f"127.0.0.1:{port}", "--mode=supervise", "--notify-socket=path"]
    h = Handoff(tmp, opts, fixture_cmd(), notify=FakeSystemd(tmp), env=dict(os.environ, RUNTIME_DIRECTORY=runtime))
    try:
        h.wait_ready(1, timeout=20)
        private = os.path.join(runtime, f"notify.{h.main_pid()}")
        os.rename(private, private + ".aside")
        open(private, "w").close()  # not a directory of ours: refused
        p = handoff("reload", f"--pid={h.main_pid()}")
        want = ("handoff: reload failed: generation 2 failed: could not be started: no path notify socket "
                "(--notify-socket=path): Operation not permitted\n")
        check(p.returncode == 1 and p.stderr == want, f"{p.returncode} {p.stderr!r}, not {want!r}")
        os.unlink(private)
        os.rename(private + ".aside", private)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_failed_fork_names_its_cause(tmp):
    # No process can be made (RLIMIT_NPROC here; a cgroup's pids.max): the
    # reload's result says so, and does not blame the command as before
    # ("/path/to/server: Resource temporarily unavailable", status 126).
    # RLIMIT_NPROC binds no root process, and another uid's limit takes
    # CAP_SYS_RESOURCE to change: as root, handoff and prlimit(1) run as 65534.
    as_handoff, prlimit, runtime = unprivileged(tmp)
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise"], fixture_cmd(), wrapper=as_handoff,
                env={"RUNTIME_DIRECTORY": runtime, **NO_LSAN})
    try:
        h.wait_log_re(r"Generation 1 \(.*\) is ready", 20)
        # The soft limit only: 1 process of handoff's uid, which has more.
        subprocess.run([*as_handoff, prlimit, f"--pid={h.pid}", "--nproc=1:"], check=True, timeout=10)
        p = handoff("reload", f"--pid={h.pid}")
        want = ("handoff: reload failed: generation 2 failed: could not be started: cannot fork: Resource "
                "temporarily unavailable\n")
        check(p.returncode == 1 and p.stderr == want, f"{p.returncode} {p.stderr!r}, not {want!r}")
        h.wait_log("Cannot start generation 2: cannot fork: Resource temporarily unavailable")
        os.kill(h.pid, signal.SIGTERM)
        check(h.proc.wait(timeout=30) == 0, h.log())
    finally:
        h.close()


def test_failed_child_step_names_its_cause(tmp):
    # A step on the child's way to exec that fails is named, with its errno,
    # in the log, the reload's reply and "handoff status": here setting
    # RLIMIT_NOFILE back to handoff's original, whose hard limit was lowered
    # since. Before, the command was blamed ("/path/to/server: Operation not
    # permitted", status 126). Raising a hard limit takes CAP_SYS_RESOURCE:
    # as root, handoff runs as 65534 (tests/unit/test-spawn.c fails each step).
    # In handover mode (no manager, so no standby) the next handoff's start
    # fails so.
    for mode in ("supervise", "handover"):
        failed_child_step_names_its_cause(os.path.join(tmp, mode), mode)


def failed_child_step_names_its_cause(tmp, mode):
    os.mkdir(tmp)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 256 or hard == resource.RLIM_INFINITY:
        raise Skip(f"a hard RLIMIT_NOFILE of {hard}: nothing to lower it to")
    as_handoff, prlimit, runtime = unprivileged(tmp)
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={mode}"], fixture_cmd(), wrapper=as_handoff,
                env={"RUNTIME_DIRECTORY": runtime, **NO_LSAN})
    try:
        h.wait_log_re(r"Generation 1 \(.*\) is ready", 20)
        subprocess.run([*as_handoff, prlimit, f"--pid={h.pid}", f"--nofile={hard // 2}:{hard // 2}"], check=True,
                       timeout=10)
        if mode == "supervise":
            cause = f"cannot set RLIMIT_NOFILE back to handoff's original {soft}:{hard}: Operation not permitted"
        else:
            cause = (f"cannot start the next handoff {HANDOFF}: cannot set RLIMIT_NOFILE back to handoff's "
                     f"original: Operation not permitted")
        p = handoff("reload", f"--pid={h.pid}")
        # The cause is whole, with the path of the next handoff (results.c
        # cut it at 140 bytes).
        want = f"handoff: reload failed: generation 2 failed: could not be started: {cause}\n"
        check(p.returncode == 1 and p.stderr == want, f"{p.returncode} {p.stderr!r}, not {want!r}")
        if mode == "supervise":
            h.wait_log(f"Cannot start generation 2: {cause}")
        else:
            h.wait_log(f"Failed to start the next handoff {cause[len('cannot start the next handoff '):]}")
        p = handoff("status", f"--pid={h.pid}")
        check(p.returncode == 0 and f"could not be started: {cause}" in p.stdout, f"{p.returncode} {p.stdout!r}")
        os.kill(h.pid, signal.SIGTERM)
        check(h.proc.wait(timeout=30) == 0, h.log())
    finally:
        h.close()


def test_failed_start_out_of_fds_names_its_cause(tmp):
    # A start that fails where handoff names no cause of its own (here out
    # of fds: a soft RLIMIT_NOFILE of 3, below every fd it has but 0-2): the
    # reload's result gives the error, not "could not be started" alone.
    prlimit = shutil.which("prlimit")
    if not prlimit:
        raise Skip("needs prlimit(1) (util-linux)")
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise"], fixture_cmd(), notify=FakeSystemd(tmp),
                env=NO_LSAN)
    try:
        h.wait_ready(1, timeout=20)
        subprocess.run([prlimit, f"--pid={h.pid}", "--nofile=3:"], check=True, timeout=10)
        os.kill(h.pid, signal.SIGHUP)
        h.wait_ready(2, timeout=20)
        check("generation 2 failed: could not be started: Too many open files" in h.last_status(), h.log())
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_ready_time_is_a_systemd_duration(tmp):
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}"], fixture_cmd(None, "--init-delay", "1100"), notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1, timeout=20)
        # READY=1 goes to systemd before the line is logged: wait for it.
        # At least the 1.1 s the fixture waits; on a loaded machine more
        # than 2 s may have passed.
        h.wait_log_re(r"Generation 1 \(.*pid \d+\) is ready after [1-9]\.\d{3}s\.")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def handoffctl(*args):
    return subprocess.run([HANDOFFCTL, *args], capture_output=True, text=True, timeout=10)


def test_timeout_zero_is_no_timeout(tmp):
    """--timeout=0 waits without a limit, as handoff's own --start-timeout=0
    and --drain-timeout=0 do, and as systemd's TimeoutSec=0 and
    systemd-networkd-wait-online --timeout=0. It gave up right after the
    request (exit 4, "no answer ... in time"), so a unit with
    ExecReload=handoffctl reload --timeout=0 failed every reload."""
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise"], fixture_cmd(None, "--init-delay", "300"),
                notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1, timeout=20)
        for prog in (handoff, handoffctl):
            p = prog("reload", f"--pid={h.main_pid()}", "--timeout=0")
            check(p.returncode == 0 and p.stdout.startswith("reloaded: generation "), f"{p.returncode} {p.stderr!r}")
            p = prog("status", f"--pid={h.main_pid()}", "--timeout=0")
            check(p.returncode == 0 and p.stdout.startswith("handoff "), f"{p.returncode} {p.stderr!r}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_handoffctl_command_line(tmp):
    """Its own usage errors (exit 2, messages starting "handoffctl:"), its
    help and version; the verbs' errors as handoff's, under its name."""
    version = handoff("--version")
    p = handoffctl("--version")
    check(p.returncode == 0 and version.returncode == 0 and p.stdout == version.stdout.replace("handoff ", "handoffctl ", 1),
          f"{p.returncode} {p.stdout!r} vs {version.stdout!r}")
    p = handoffctl("--help")
    check(p.returncode == 0 and "handoffctl reload" in p.stdout and "handoffctl status" in p.stdout, p.stdout)
    # handoff --help shows the verbs' usage as handoffctl --help does (it
    # once left out status's --timeout and reload's new command line).
    usage = [line.split("handoffctl ", 1)[1] for line in p.stdout.splitlines()[:2]]
    own = handoff("--help")
    check(own.returncode == 0 and all(f"handoff {u}" in own.stdout for u in usage), f"{usage} in {own.stdout!r}")
    p = handoffctl()
    check(p.returncode == 2 and "Usage: handoffctl" in p.stderr, f"{p.returncode} {p.stderr!r}")
    for args in (["bogus"], ["--bogus"], ["--", "reload"], ["--pid=1", "status"]):
        p = handoffctl(*args)
        check(p.returncode == 2 and p.stderr.startswith("handoffctl: unknown command") and "did you mean" not in p.stderr,
              f"{args}: {p.returncode} {p.stderr!r}")
    p = handoffctl("relaod")
    check(p.returncode == 2 and 'did you mean "handoffctl reload"?' in p.stderr, f"{p.returncode} {p.stderr!r}")
    for args in (["reload", "--bogus"], ["status", "--timeout"], ["reload", "--pid=abc"], ["status", "extra", "--pid=1"],
                 ["reload", "--"]):
        p = handoffctl(*args)
        lines = p.stderr.splitlines()
        check(p.returncode == 2 and lines and all(line.startswith(("handoffctl: ", "Try 'handoffctl ")) for line in lines),
              f"{args}: {p.returncode} {p.stderr!r}")
    p = handoffctl("reload", "--help")
    check(p.returncode == 0 and p.stdout.startswith("Usage: handoffctl reload"), p.stdout)
    # A new command line is checked by handoff's own option parser, here too,
    # whose messages then start with handoffctl's name (its hint is about
    # handoff's options: "Try 'handoff --help'").
    for new in (["--drain-timeout=5x", "--", "app"], ["--bogus", "--", "app"], ["app"], ["--mode=x", "--"]):
        p = handoffctl("reload", "--pid=1", "--", *new)
        lines = p.stderr.splitlines()
        check(p.returncode == 2 and lines and lines[0].startswith("handoffctl: ")
              and all(line.startswith(("handoffctl: ", "Try 'handoff --help'")) for line in lines),
              f"{new}: {p.returncode} {p.stderr!r}")


def test_handoffctl_loads_no_libsystemd(tmp):
    """Its point: a client waiting for its reload has libc mapped and no
    libsystemd, where "handoff reload" has both (so the check can fail);
    both get the same answers."""
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise"], fixture_cmd(args_file), notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1, timeout=20)
        a = handoff("status", f"--pid={h.main_pid()}")
        b = handoffctl("status", f"--pid={h.main_pid()}")
        same = [re.sub(r"for [^,]+,", "for T,", x.stdout) for x in (a, b)]  # how long it has served
        check(a.returncode == b.returncode == 0 and same[0] == same[1] and "serving" in same[0], f"{a!r} {b!r}")
        # Each reload waits 3 s for its generation: the client's maps are
        # read while it waits for the answer.
        set_args(args_file, "--init-delay", "3000")
        libs = {}
        for n, client in ((2, HANDOFFCTL), (3, HANDOFF)):
            p = subprocess.Popen([client, "reload", f"--pid={h.main_pid()}"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            wait_for(lambda: h.log().count("Reload requested (control socket)") == n - 1, 10, "request %d" % n)
            with open(f"/proc/{p.pid}/maps") as f:
                libs[client] = set(re.findall(r"/(lib[a-z0-9_+-]+)\.so", f.read()))
            out, err = p.communicate(timeout=30)
            check(p.returncode == 0 and out.startswith(f"reloaded: generation {n}, ") and not err,
                  f"{client}: {p.returncode} {out!r} {err!r}")
        check("libc" in libs[HANDOFFCTL] and "libsystemd" not in libs[HANDOFFCTL], libs[HANDOFFCTL])
        check("libsystemd" in libs[HANDOFF], libs[HANDOFF])
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def start_in_runtime_dir(tmp):
    """A handoff with its own $RUNTIME_DIRECTORY, as systemd's
    RuntimeDirectory= gives a service (and its ExecReload=)."""
    rd = os.path.join(tmp, "rd")
    os.mkdir(rd, 0o700)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{free_port()}", "--mode=supervise"], fixture_cmd(),
                notify=FakeSystemd(tmp), env={"RUNTIME_DIRECTORY": rd})
    h.wait_ready(1, timeout=20)
    return h, rd


def decoy_listener(tmp, pid, backlog):
    """A listener of the test's, at the conventional path of pid's control
    socket in a directory the client is then pointed at."""
    d = os.path.join(tmp, "decoy")
    os.mkdir(d, 0o700)
    decoy = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    decoy.bind(os.path.join(d, f"control.{pid}"))
    decoy.listen(backlog)
    return d, decoy


def status_through(h, runtime_dir):
    p = subprocess.run([HANDOFFCTL, "status", f"--pid={h.main_pid()}", "--timeout=5s"], capture_output=True,
                       text=True, timeout=20, env=dict(os.environ, RUNTIME_DIRECTORY=runtime_dir))
    check(p.returncode == 0 and p.stdout.startswith("handoff ") and f", pid {h.main_pid()}, " in p.stdout,
          f"{p.returncode} {p.stdout!r} {p.stderr!r}")


def test_decoy_at_the_conventional_path(tmp):
    """The client first tries the socket where a handoff with its own
    environment would bind it. What listens there counts only if it is the
    pid asked for: a socket of another process at that name (here the
    test's, named for handoff's pid) gets a connection, no request, and the
    client finds the real one by searching pid's fds. In a directory others
    may write, nothing is tried."""
    h, rd = start_in_runtime_dir(tmp)
    d, decoy = decoy_listener(tmp, h.main_pid(), 8)
    try:
        status_through(h, d)
        decoy.settimeout(0)
        try:
            conn, _ = decoy.accept()
        except BlockingIOError:
            raise TestFailure("the client never tried the conventional path")
        with conn:
            conn.settimeout(5)
            check(conn.recv(4096) == b"", "the decoy was sent nothing")
        # A directory others may write is not even tried: as the server
        # binds only in one nobody else may write, the client trusts no other.
        os.chmod(d, 0o777)
        status_through(h, d)
        try:
            decoy.accept()[0].close()
            raise TestFailure("the client connected in a directory others may write")
        except BlockingIOError:
            pass
        check(h.stop() == 0, h.log())
    finally:
        decoy.close()
        h.close()


def test_full_backlog_at_the_conventional_path(tmp):
    """A listener at the conventional path whose backlog is full would hold
    a blocking connect() for good, before any check, with SIGTERM blocked
    and --timeout not yet running: the client does not wait there, and
    searches."""
    h, rd = start_in_runtime_dir(tmp)
    d, decoy = decoy_listener(tmp, h.main_pid(), 0)
    held = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        held.connect(os.path.join(d, f"control.{h.main_pid()}"))  # fills a backlog of 0
        status_through(h, d)
        check(h.stop() == 0, h.log())
    finally:
        held.close()
        decoy.close()
        h.close()


def test_control_socket_found_without_a_search(tmp):
    """With the environment handoff has, the client connects to the
    conventional path at once: it opens nothing under /proc/PID but its
    status (not /proc/PID/net/unix, /proc/PID/fd or /proc/PID/root: the
    search over pid's fds, some thirty system calls, which a busy host's
    socket churn could make miss). With another environment it searches,
    and still finds it."""
    strace = shutil.which("strace")
    if not strace:
        raise Skip("needs strace (scripts/install-deps.sh test installs it)")
    h, rd = start_in_runtime_dir(tmp)
    try:
        traces = {}
        for what, dir_ in (("same", rd), ("other", os.path.join(tmp, "elsewhere"))):
            trace = os.path.join(tmp, f"trace.{what}")
            env = dict(os.environ, RUNTIME_DIRECTORY=dir_, **NO_LSAN)
            p = subprocess.run([strace, "-qq", "-o", trace, "-e", "trace=openat,connect", HANDOFFCTL, "status",
                                f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=30, env=env)
            check(p.returncode == 0 and f", pid {h.main_pid()}, " in p.stdout, f"{what}: {p.returncode} {p.stderr!r}")
            with open(trace) as f:
                traces[what] = f.read()
        same, other = traces["same"], traces["other"]
        pid = h.main_pid()
        check(re.search(rf'openat\(AT_FDCWD, "{re.escape(rd)}", [^)]*O_DIRECTORY', same)
              and re.search(rf'connect\(\d+, {{sa_family=AF_UNIX, sun_path="/proc/self/fd/\d+/control\.{pid}"}}, '
                            rf'\d+\) = 0', same), f"a connect to the conventional path: {same}")
        check(not any(f"/proc/{pid}/{x}" in same for x in ("net/unix", "fd", "root")),
              f"no search with the same environment: {same}")
        check(f"/proc/{pid}/net/unix" in other, f"a search with another: {other}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


if __name__ == "__main__":
    run([test_misspelt_verbs_are_suggested, test_one_message_prefix, test_failed_reload_message,
         test_failed_start_names_its_cause, test_failed_notify_socket_names_its_cause,
         test_failed_start_out_of_fds_names_its_cause, test_failed_fork_names_its_cause,
         test_failed_child_step_names_its_cause,
         test_ready_time_is_a_systemd_duration, test_timeout_zero_is_no_timeout, test_handoffctl_command_line, test_handoffctl_loads_no_libsystemd,
         test_decoy_at_the_conventional_path, test_full_backlog_at_the_conventional_path,
         test_control_socket_found_without_a_search])
