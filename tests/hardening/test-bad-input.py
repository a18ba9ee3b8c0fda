#!/usr/bin/python3
"""Bad input: every case either fails at once with a clear error (an exit
code and a message naming the problem) or is dropped silently (with a -v
debug line) while handoff serves on. The table of cases is in README.md next
to this file.

Three sources of input: the command line, the environment systemd (or
anyone) starts handoff with, and the datagrams that arrive on a generation's
private NOTIFY_SOCKET (a path in a 0700 directory by default, which the test
as root can reach; with --notify-socket=abstract anyone in the network
namespace can).

Command-line and environment cases do not depend on the reload mode and run
in the supervise pass only; the notify cases run in both (meson runs this
file once per mode: in handover mode the candidate's socket belongs to a
next handoff)."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import time

from handofftest.handoff import (FIXTURE, HANDOFF, NO_SETFL_NONBLOCK, NO_STATX, Handoff, MODE, fixture_cmd, seccomp_prefix,
                                 set_args)
from handofftest.load import Load
from handofftest.net import free_port, http_get, read_all, serving_pid
from handofftest.notify import FakeSystemd
from handofftest.procs import fd_count, is_handoff
from handofftest.runner import run
from handofftest.wait import check, wait_for
from hardening import (PYTHON, Launched, alive, listening_socket, notify_socket_of, notifying_app, rss_kib, run_launched,
                       send_notify, showing_logs, under_asan)


def run_handoff(args, timeout=10, env=None):
    """handoff expected to exit at once: (status, stderr)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    e.update(env or {})
    p = subprocess.run([HANDOFF, *args], capture_output=True, text=True, timeout=timeout, env=e)
    return p.returncode, p.stdout + p.stderr


def expect_usage_error(args, message, code=2):
    status, out = run_handoff(args)
    check(status == code, f"{args}: exit {status}, expected {code}; output: {out!r}")
    check(message in out, f"{args}: {message!r} not in {out!r}")


# ---- command line ------------------------------------------------------------
# tests/process/test-lifecycle.py has: "--bogus", a command without "--",
# nothing after "--", --drain-timeout 5x, port 99999, a 120-byte unix path,
# --stop-signal NOPE, an unresolvable host, a TCP port in use, a command not
# found (127) or not executable (126). These extend them.

def test_cli_unknown_or_incomplete_options(tmp):
    port = free_port()
    listen = ["-l", f"127.0.0.1:{port}"]
    expect_usage_error(["-x", *listen, "--", "true"], "invalid option -- 'x'")
    expect_usage_error(["--listen"], "option '--listen' requires an argument")
    expect_usage_error([*listen, "--drain-timeout"], "requires an argument")
    expect_usage_error([*listen], "no command given")
    expect_usage_error([*listen, "--mode=bogus", "--", "true"], "invalid --mode: \"bogus\"")
    expect_usage_error([*listen, "--mode", "--", "true"], "invalid --mode: \"--\"")
    for ready in ("bogus", "delay:", "delay:5x", "delay:infinity", "delay"):
        expect_usage_error([*listen, f"--ready={ready}", "--", "true"], f"invalid --ready: \"{ready}\"")
    for sig in ("0", "65", "-1", "", "SIGNOPE"):
        expect_usage_error([*listen, f"--stop-signal={sig}", "--", "true"], "invalid --stop-signal")
    for n in ("abc", "-1", "", "1x", "1025", "99999999999999999999"):
        expect_usage_error([*listen, f"--fd-store-max={n}", "--", "true"], f"invalid --fd-store-max: \"{n}\"")
    expect_usage_error([*listen, "--systemd-fd-store=bogus", "--", "true"], "invalid --systemd-fd-store: \"bogus\"")
    # As --cgroup and --systemd-fd-store: yes or no, and a value is required.
    for value in ("bogus", "", "true", "1", "YES"):
        expect_usage_error([*listen, f"--non-blocking={value}", "--", "true"],
                           f"invalid --non-blocking: \"{value}\" (yes or no)")
    expect_usage_error([*listen, "--non-blocking", "--", "true"], "invalid --non-blocking: \"--\"")
    expect_usage_error([*listen, "--non-blocking"], "option '--non-blocking' requires an argument")


def test_cli_option_value_is_not_the_separator(tmp):
    """An option whose value is missing must not swallow the "--": with
    "--pid-file -- CMD" the "--" is the pid file's name and CMD comes
    without a separator, which the "--" rule exists to refuse."""
    port = free_port()
    marker = os.path.join(tmp, "ran")
    status, out = run_handoff(["-l", f"127.0.0.1:{port}", "--pid-file", "--", "/bin/sh", "-c", f"touch {marker}"])
    check(not os.path.exists(marker), f"the command ran although no \"--\" preceded it; output: {out!r}")
    check(status == 2, f"exit {status}, expected 2; output: {out!r}")


def test_cli_bad_working_directory(tmp):
    """--working-directory: not absolute, empty or too long is a usage
    error; a file, or a directory that is not there, fails generation 1
    with 200 (systemd's EXIT_CHDIR) and the cause, and the command never
    runs."""
    port = free_port()
    for value in ("", "srv/app", "./app", "~/app", "/" + "x" * 5000, "/srv/../etc", "/srv/app/.."):
        expect_usage_error(["-l", f"127.0.0.1:{port}", f"--working-directory={value}", "--", "true"],
                           f"invalid --working-directory: \"{value}\" (an absolute path, without \"..\")")
    marker = os.path.join(tmp, "ran")
    a_file = os.path.join(tmp, "a-file")
    open(a_file, "w").close()
    for wd, why in ((a_file, "Not a directory"), (os.path.join(tmp, "gone"), "No such file or directory")):
        expect_usage_error(["-l", f"127.0.0.1:{port}", f"--working-directory={wd}", "--", "/bin/sh", "-c",
                            f"touch {marker}"], f"cannot change to working directory {wd}: {why}", code=200)
    check(not os.path.exists(marker), "the command ran")


def test_cli_bad_environment_file(tmp):
    """--environment-file: not absolute is a usage error; a file that
    cannot be read, or is not valid UTF-8, fails generation 1 with the
    file and the cause, and the command never runs; "-" before a missing
    one lets it start."""
    port = free_port()
    for value in ("", "-", "env.conf", "-env.conf", "./env.conf", "~/env.conf", "/" + "x" * 5000):
        expect_usage_error(["-l", f"127.0.0.1:{port}", f"--environment-file={value}", "--", "true"],
                           f"invalid --environment-file: \"{value}\" (an absolute path, \"-\" before it if it "
                           "may be missing)")
    marker = os.path.join(tmp, "ran")
    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "wb") as f:
        f.write(b"A=1\n\nB=\xff\n")
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    gone = os.path.join(tmp, "gone.conf")
    for spec, why in ((gone, f"cannot read environment file {gone}: No such file or directory"),
                      (tmp, f"cannot read environment file {tmp}: Is a directory"),
                      (fifo, f"environment file {fifo} is neither a regular file nor a character device"),
                      (bad, f"environment file {bad}:3 is not valid UTF-8")):
        expect_usage_error(["-l", f"127.0.0.1:{port}", f"--environment-file={spec}", "--", "/bin/sh", "-c",
                            f"touch {marker}"], f"Cannot start generation 1: {why}", code=1)
    check(not os.path.exists(marker), "the command ran")
    p = subprocess.run([HANDOFF, "-l", f"127.0.0.1:{port}", f"--environment-file=-{gone}", "--", "/bin/sh", "-c",
                        f"touch {marker}"], capture_output=True, text=True, timeout=10)
    check(os.path.exists(marker), f"an optional missing file: the command did not run: {p.stderr}")


def test_cli_bad_durations(tmp):
    port = free_port()
    for opt in ("--start-timeout", "--drain-timeout"):
        for value in ("", "-1", "5x", "1.s", "s", "1e3", "0x10", "5 parsecs", "infinityx"):
            expect_usage_error(["-l", f"127.0.0.1:{port}", f"{opt}={value}", "--", "true"],
                               f"invalid duration for {opt}: \"{value}\"")
        for value in ("99999999999999999999", "99999999999h", "18446744073709551615us"):
            expect_usage_error(["-l", f"127.0.0.1:{port}", f"{opt}={value}", "--", "true"],
                               f"duration for {opt} out of range: \"{value}\" (at most 18446744073709551614us")


def test_cli_bad_addresses(tmp):
    cases = [
        ("", "port must be"),
        ("127.0.0.1:", "port must be"),
        (":8080", "empty host"),
        ("127.0.0.1:0", "port must be"),
        ("127.0.0.1:65536", "port must be"),
        ("127.0.0.1:http", "port must be"),
        ("127.0.0.1:-80", "port must be"),
        ("[::1:8080", "IPv6 address must look like [ADDR]:PORT"),
        ("::1:8080", "IPv6 address must be in brackets"),
        ("tcp:", "port must be"),
        ("udp:127.0.0.1", "port must be"),
        ("unix:relative/path", "must be absolute"),
        ("unix:", "must be absolute"),
        ("unix:@", "empty unix socket name"),
        ("unix-dgram:", "must be absolute"),
        ("127.0.0.1:8080=", "name after '='"),
        ("127.0.0.1:8080=a:b", "name after '='"),
        ("127.0.0.1:8080=x\\", "name after '='"),
        ("127.0.0.1:8080=" + "n" * 256, "name after '='"),
        ("127.0.0.1:8080=tab\there", "name after '='"),
    ]
    for spec, message in cases:
        expect_usage_error(["-l", spec, "--", "true"], message)
        _, out = run_handoff(["-l", spec, "--", "true"])
        check(f"\"{spec}\"" in out, f"the error quotes the address {spec!r}: {out!r}")


def test_cli_addresses_not_on_this_host(tmp):
    # (An unresolvable name: tests/process/test-lifecycle.py.) A valid
    # address that is not this host's (TEST-NET-1, TEST-NET-3, the IPv6
    # documentation prefix): no name lookup, so no network needed.
    expect_usage_error(["-l", "192.0.2.1:8080", "--", "true"], "Failed to bind 192.0.2.1:8080: Cannot assign")
    expect_usage_error(["-l", "udp:203.0.113.7:53", "--", "true"], "Failed to bind udp:203.0.113.7:53: Cannot assign")
    expect_usage_error(["-l", "[2001:db8::1]:8080", "--", "true"], "Failed to bind [2001:db8::1]:8080")


def test_cli_ports_in_use(tmp):
    # UDP
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        expect_usage_error(["-l", f"udp:127.0.0.1:{port}", "--", "true"],
                           f"Failed to bind udp:127.0.0.1:{port}: Address already in use")
    # The same address twice: the second --listen fails, nothing is left open.
    port = free_port()
    expect_usage_error(["-l", f"127.0.0.1:{port}", "-l", f"127.0.0.1:{port}=again", "--", "true"],
                       f"Failed to bind 127.0.0.1:{port}=again: Address already in use")
    with socket.socket() as s:  # the first one was closed again
        s.bind(("127.0.0.1", port))
    # The dual-stack wildcard while 127.0.0.1 holds the port.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        expect_usage_error(["-l", str(port), "--", "true"], "Address already in use")


def test_cli_unix_paths(tmp):
    # 107 bytes is the longest path sun_path holds (with its NUL); 108 is not.
    base = os.path.join(tmp, "s")
    ok = base + "x" * (107 - len(base))
    expect_usage_error(["-l", f"unix:{ok}x", "--", "true"], "unix socket path too long (at most 107 bytes)")
    expect_usage_error(["-l", f"unix:@{'a' * 108}", "--", "true"], "too long")
    h = Handoff(tmp, ["-l", f"unix:{ok}"], fixture_cmd())
    try:
        h.wait_log("is ready")
        check(os.path.exists(ok), "a 107-byte path works")
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()
    # A directory that does not exist.
    expect_usage_error(["-l", f"unix:{tmp}/no/such/dir/s", "--", "true"], "No such file or directory")
    # A regular file in the way is an error, and is never removed.
    path = os.path.join(tmp, "regular")
    with open(path, "w") as f:
        f.write("keep me")
    expect_usage_error(["-l", f"unix:{path}", "--", "true"], f"Failed to bind unix:{path}: Address already in use")
    check(open(path).read() == "keep me", "a regular file at the path is left alone")
    # A live socket in the way: an error, and it keeps working.
    live = os.path.join(tmp, "live")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(live)
        s.listen()
        expect_usage_error(["-l", f"unix:{live}", "--", "true"], "Address already in use")
        check(os.path.exists(live), "a live socket's file is not removed")
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(live)
    # A live socket of the other type: said to be live, not "not a stale
    # socket: Protocol wrong type" (as before).
    live = os.path.join(tmp, "live-dgram")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(live)
        expect_usage_error(["-l", f"unix:{live}", "--", "true"], "a live socket: another process listens on it")
        check(os.path.exists(live), "a live socket's file is not removed")
    # A stale socket file (its server crashed) is replaced.
    stale = os.path.join(tmp, "stale")
    s = socket.socket(socket.AF_UNIX)
    s.bind(stale)
    s.close()
    h = Handoff(tmp, ["-l", f"unix:{stale}"], fixture_cmd())
    try:
        h.wait_log("is ready")
        check("Removing stale socket file" in h.log(), h.log())
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()


def test_cli_command_not_runnable(tmp):
    port = free_port()
    listen = ["-l", f"127.0.0.1:{port}"]
    os.mkdir(os.path.join(tmp, "adir"))
    garbage = os.path.join(tmp, "garbage")
    with open(garbage, "wb") as f:
        f.write(b"\x7fELF but not really\n")
    os.chmod(garbage, 0o755)
    noexec_dir = os.path.join(tmp, "bin")
    os.mkdir(noexec_dir)
    with open(os.path.join(noexec_dir, "tool"), "w") as f:
        f.write("#!/bin/sh\n")
    cases = [
        # (command, exit code, words the message must contain)
        ([os.path.join(tmp, "adir")], 126, ["adir"]),
        ([garbage], 126, ["garbage", "Exec format error"]),
        (["/etc/passwd/x"], 127, ["/etc/passwd/x"]),
        ([os.path.join(tmp, "missing")], 127, ["missing", "No such file"]),
        ([""], 127, []),
    ]
    for command, code, words in cases:
        status, out = run_handoff([*listen, "--", *command])
        check(status == code, f"{command}: exit {status}, expected {code}: {out!r}")
        for w in words:
            check(w in out, f"{command}: {w!r} not in {out!r}")
    # Found in $PATH but not executable: 126, as a shell says.
    status, out = run_handoff([*listen, "--", "tool"], env={"PATH": noexec_dir})
    check(status == 126 and "tool" in out, f"exit {status}: {out!r}")


# ---- environment -------------------------------------------------------------

def test_env_listen_fds_garbage_or_huge(tmp):
    s, _ = listening_socket()
    try:
        for value in ("abc", "1x", "", "-1", "0", "99999", "2147483647", "2147483648",
                      "99999999999999999999"):
            code, log = run_launched(tmp, [], [FIXTURE], fds=[s.fileno()],
                                     env={"LISTEN_FDS": value, "LISTEN_PID": "self"})
            check(code == 2, f"LISTEN_FDS={value!r}: exit {code}; log: {log}")
            check("LISTEN_FDS" in log and "Started generation" not in log, f"LISTEN_FDS={value!r}: {log}")
        # Two announced, one passed.
        code, log = run_launched(tmp, [], [FIXTURE], fds=[s.fileno()], env={"LISTEN_FDS": "2", "LISTEN_PID": "self"})
        check(code == 2 and "LISTEN_FDS" in log, f"exit {code}: {log}")
    finally:
        s.close()


def test_env_listen_pid_garbage(tmp):
    s, _ = listening_socket()
    try:
        for value in ("abc", "-5", "0", ""):
            code, log = run_launched(tmp, [], [FIXTURE], fds=[s.fileno()], env={"LISTEN_FDS": "1", "LISTEN_PID": value})
            check(code == 2, f"LISTEN_PID={value!r}: exit {code}; log: {log}")
            # The message must name what is wrong: LISTEN_PID, not
            # "LISTEN_FDS/LISTEN_FDNAMES".
            check("LISTEN_PID" in log, f"LISTEN_PID={value!r}: the message does not name LISTEN_PID: {log}")
    finally:
        s.close()


def test_env_listen_pid_of_another_process(tmp):
    """The fds were meant for someone else: ignored. With --listen handoff
    serves on that; without, it has no socket (exit 2). Either way no
    LISTEN_* of ours reaches the generation."""
    s, _ = listening_socket()
    try:
        code, log = run_launched(tmp, [], [FIXTURE], fds=[s.fileno()], env={"LISTEN_FDS": "1", "LISTEN_PID": "1"})
        check(code == 2 and "No sockets to serve" in log, f"exit {code}: {log}")
        port = free_port()
        out = os.path.join(tmp, "env")
        h = Launched(tmp, ["-l", f"127.0.0.1:{port}"], ["/bin/sh", "-c", f"env > {out}; exec {FIXTURE}"],
                     fds=[s.fileno()], env={"LISTEN_FDS": "1", "LISTEN_PID": "1", "LISTEN_FDNAMES": "theirs"})
        try:
            h.wait_log("is ready")
            check(http_get(port)[0] == 200, "serves on --listen")
            env = open(out).read()
            check("LISTEN_FDNAMES=unknown\n" in env and "theirs" not in env, env)
            check("ignoring --listen" not in h.log(), h.log())
            check(h.stop() == 0, h.log())
        finally:
            h.kill_all()
    finally:
        s.close()


def test_env_listen_fds_without_listen_pid(tmp):
    """LISTEN_FDS without any LISTEN_PID: not ours, as sd_listen_fds(3)
    takes it. The log says it is unset, not that pid 0 is another process."""
    s, _ = listening_socket()
    try:
        code, log = run_launched(tmp, [], [FIXTURE], fds=[s.fileno()], env={"LISTEN_FDS": "1"})
        check(code == 2 and "No sockets to serve" in log, f"exit {code}: {log}")
        check("Ignoring LISTEN_FDS: no LISTEN_PID says whom they are for." in log, log)
    finally:
        s.close()


def test_env_fdnames_count_mismatch(tmp):
    a, _ = listening_socket()
    b, _ = listening_socket()
    try:
        for fds, names in (([a], "one:two"), ([a, b], "one"), ([a, b], "one:two:three"), ([a], "a::b")):
            code, log = run_launched(tmp, [], [FIXTURE], fds=[x.fileno() for x in fds],
                                     env={"LISTEN_FDS": str(len(fds)), "LISTEN_PID": "self", "LISTEN_FDNAMES": names})
            check(code == 2, f"{len(fds)} fds, names {names!r}: exit {code}; log: {log}")
            check("LISTEN_FDNAMES" in log and "Started generation" not in log, log)
    finally:
        a.close()
        b.close()


def test_env_systemd_sockets_and_names_are_used(tmp):
    """The good case beside the bad ones: systemd's fds and names are used
    (and --listen is then ignored, with a log line)."""
    a, port_a = listening_socket()
    b, port_b = listening_socket()
    h = Launched(tmp, ["-l", f"127.0.0.1:{free_port()}"], [FIXTURE], fds=[a.fileno(), b.fileno()],
                 env={"LISTEN_FDS": "2", "LISTEN_PID": "self", "LISTEN_FDNAMES": "web:admin"})
    a.close()
    b.close()
    try:
        h.wait_log("is ready")
        # The fixture logs what it got just after its READY=1: wait for it.
        h.wait_log("fds=2 names=web,admin")
        check("systemd passed 2 socket(s); ignoring --listen" in h.log(), h.log())
        check(http_get(port_a)[0] == 200 and http_get(port_b)[0] == 200, "both sockets served")
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()


def test_env_systemd_sockets_without_statx(tmp):
    """The same where statx(2) fails with EPERM, as under a container
    runtime whose seccomp profile predates it (a sandbox may answer
    ENOSYS): handoff, which tells a passed fd's type by statx(), exited 2
    with "Passed fd 3 (web) is not open: Operation not permitted". It
    asks the socket layer (getsockopt()), and serves."""
    prefix = seccomp_prefix(NO_STATX)
    a, port_a = listening_socket()
    h = Launched(tmp, [], [FIXTURE], fds=[a.fileno()], prefix=prefix,
                 env={"LISTEN_FDS": "1", "LISTEN_PID": "self", "LISTEN_FDNAMES": "web"})
    a.close()
    try:
        h.wait_started()
        check(http_get(port_a)[0] == 200, h.log())
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()


def test_env_recovered_listen_socket_reused(tmp):
    """The good case beside the one below: a stored socket bound where its
    --listen says is reused, never closed."""
    a, port_a = listening_socket()
    h = Launched(tmp, ["-l", f"localhost:{port_a}"], [FIXTURE], fds=[a.fileno()],
                 env={"LISTEN_FDS": "1", "LISTEN_PID": "self", "LISTEN_FDNAMES": "handoff.listen.0"})
    a.close()
    try:
        h.wait_log("is ready")
        check(f"Reusing localhost:{port_a} from the service manager's fd store" in h.log(), h.log())
        check(http_get(port_a)[0] == 200, h.log())
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()


def test_env_recovered_listen_socket_of_another_address(tmp):
    """A --listen socket a previous handoff put into systemd's fd store
    (handoff.listen.N) is reused only for the address it is bound to: after
    the unit's --listen changed (a restart with FileDescriptorStorePreserve=,
    or a crash after a daemon-reload), the new address is opened and the old
    socket closed, not served in its place."""
    a, port_a = listening_socket()
    port_b = free_port()
    h = Launched(tmp, ["-l", f"127.0.0.1:{port_b}"], [FIXTURE], fds=[a.fileno()],
                 env={"LISTEN_FDS": "1", "LISTEN_PID": "self", "LISTEN_FDNAMES": "handoff.listen.0"})
    a.close()
    try:
        h.wait_log("is ready")
        check(http_get(port_b)[0] == 200, f"the new address is served; log:\n{h.log()}")
        check(f"Reusing 127.0.0.1:{port_b}" not in h.log(), h.log())
        try:
            socket.create_connection(("127.0.0.1", port_a), timeout=2).close()
            check(False, f"the old address is still served; log:\n{h.log()}")
        except ConnectionRefusedError:
            pass
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()


def test_env_recovered_listen_socket_of_another_address_still_stored(tmp):
    """As above, with the service manager's own copy of the stale socket
    still open, as it is in its fd store until FDSTOREREMOVE=1: the new
    address takes the same port on a narrower host (--listen PORT, then
    --listen 127.0.0.1:PORT), and binds all the same; the stale socket
    takes no more connections from anyone's copy."""
    a = socket.socket()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    a.bind(("0.0.0.0", 0))
    a.listen()
    port = a.getsockname()[1]
    h = Launched(tmp, ["-l", f"127.0.0.1:{port}"], [FIXTURE], fds=[a.fileno()],
                 env={"LISTEN_FDS": "1", "LISTEN_PID": "self", "LISTEN_FDNAMES": "handoff.listen.0"})
    try:
        h.wait_started()
        check(http_get(port)[0] == 200, f"the new address is served; log:\n{h.log()}")
        check(f"Reusing 127.0.0.1:{port}" not in h.log(), h.log())
        check(h.stop() == 0, h.log())
    finally:
        a.close()
        h.kill_all()


def test_env_recovered_listen_socket_of_a_dropped_listen_before(tmp):
    """Stored sockets for -l A -l B, the unit now -l B: B is bound anew
    (before: the start failed, exit 2, "Address already in use", on the
    stored socket of the second --listen, not yet let go of)."""
    socks = [listening_socket()[0] for _ in range(2)]
    port_b = socks[1].getsockname()[1]
    h = Launched(tmp, ["-l", f"127.0.0.1:{port_b}"], [FIXTURE], fds=[x.fileno() for x in socks],
                 env={"LISTEN_FDS": "2", "LISTEN_PID": "self", "LISTEN_FDNAMES": "handoff.listen.0:handoff.listen.1"})
    try:
        h.wait_started()
        check(http_get(port_b)[0] == 200, f"B is served; log:\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        for x in socks:
            x.close()
        h.kill_all()


class StoreModel(FakeSystemd):
    """A fake manager that keeps, as systemd's fd store would, which sockets
    (by inode) each FDNAME holds: store starts as initial, and every
    FDSTOREREMOVE=1 and FDSTORE=1 that arrives is applied in order."""

    def __init__(self, tmpdir, initial):
        self.store = {name: list(inos) for name, inos in initial.items()}
        super().__init__(tmpdir)

    def _keep_fds(self, text, fds):
        m = self.messages[-1]
        name = m.fields.get("FDNAME")
        if m.fields.get("FDSTOREREMOVE") == "1":
            self.store.pop(name, None)
        elif m.fields.get("FDSTORE") == "1":
            self.store.setdefault(name, []).extend(os.fstat(fd).st_ino for fd in fds)
        return fds

    def entries(self):
        with self.lock:
            return {name: list(inos) for name, inos in self.store.items() if inos}


def test_env_recovered_listen_sockets_moved(tmp):
    """Stored sockets for -l A -l B (handoff.listen.0 and .1), a client
    connected to B while handoff was down, and the unit's --listen edited so
    that B only moved: -l B -l A, -l B, -l B -l C. B is found by what it
    is, not by its place: reused, and the client queued on it answered
    (before: B was shut down and bound anew, the client reset). systemd's
    store ends up naming each socket for its new place, and no socket still
    asked for is removed from it (-l B -l C: C's put, as handoff.listen.1,
    removes what was stored under that name first)."""
    port_c = free_port()
    for layout in ("BA", "B", "BC"):
        socks = [listening_socket()[0] for _ in range(2)]
        ports = {"A": socks[0].getsockname()[1], "B": socks[1].getsockname()[1], "C": port_c}
        ino = {"A": os.fstat(socks[0].fileno()).st_ino, "B": os.fstat(socks[1].fileno()).st_ino}
        client = socket.create_connection(("127.0.0.1", ports["B"]), timeout=5)
        fake = StoreModel(tmp, {"handoff.listen.0": [ino["A"]], "handoff.listen.1": [ino["B"]]})
        args = [x for k in layout for x in ("-l", f"127.0.0.1:{ports[k]}")]
        h = Launched(tmp, ["--systemd-fd-store=yes", *args], [FIXTURE], fds=[x.fileno() for x in socks],
                     env={"LISTEN_FDS": "2", "LISTEN_PID": "self",
                          "LISTEN_FDNAMES": "handoff.listen.0:handoff.listen.1"}, notify=fake)
        try:
            h.wait_started(f"{layout}: ")
            try:
                client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = read_all(client, time.monotonic() + 5)
            except OSError as e:
                answer = repr(e).encode()
            check(answer.startswith(b"HTTP/1.1 200"),
                  f"{layout}: the client queued on B is answered: {answer!r}; log:\n{h.log()}")
            check(f"Reusing 127.0.0.1:{ports['B']} from the service manager's fd store" in h.log(), h.log())
            for k in layout:
                check(http_get(ports[k])[0] == 200, f"{layout}: {k} served; log:\n{h.log()}")
            # READY=1 comes after every message about the --listen sockets.
            fake.wait_count("READY", 1)
            stored = fake.entries()
            check(sorted(stored) == [f"handoff.listen.{i}" for i in range(len(layout))] and
                  stored["handoff.listen.0"] == [ino["B"]],
                  f"{layout}: B stored as handoff.listen.0, one socket per --listen: {stored}; {fake.snapshot()}")
            if layout == "BA":
                check(stored["handoff.listen.1"] == [ino["A"]], f"A stored as handoff.listen.1: {stored}")
            elif layout == "BC":
                c = stored["handoff.listen.1"]
                check(len(c) == 1 and c[0] not in ino.values(), f"C alone stored as handoff.listen.1: {stored}")
            check(h.stop() == 0, h.log())
        finally:
            client.close()
            for x in socks:  # the service manager's copies, open until now
                x.close()
            h.kill_all()
            fake.close()


def test_env_recovered_stored_fds_beyond_the_bound(tmp):
    """Stored fds a previous handoff put into systemd's fd store
    (handoff.store.NAME), more than --fd-store-max now (lowered before the
    restart): those beyond it are closed, and removed from systemd's store
    too, the ones kept under the same name put back (before: systemd kept
    them all for good, and passed them again at every start)."""
    memfds = [os.memfd_create(n) for n in ("x1", "y", "x2")]
    ino = [os.fstat(fd).st_ino for fd in memfds]
    fake = StoreModel(tmp, {"handoff.store.x": [ino[0], ino[2]], "handoff.store.y": [ino[1]]})
    h = Launched(tmp, ["--systemd-fd-store=yes", "--fd-store-max=1", "-l", f"127.0.0.1:{free_port()}"],
                 [os.environ["STORE_SERVER"]], fds=memfds,
                 env={"LISTEN_FDS": "3", "LISTEN_PID": "self",
                      "LISTEN_FDNAMES": "handoff.store.x:handoff.store.y:handoff.store.x"}, notify=fake)
    try:
        # READY=1 comes after what handoff sends as it starts.
        fake.wait_count("READY", 1)
        stored = {k: v for k, v in fake.entries().items() if k.startswith("handoff.store.")}
        check(stored == {"handoff.store.x": [ino[0]]},
              f"only the first x left in systemd's store: {stored}; {fake.snapshot()}")
        check('fd store full (--fd-store-max=1): dropped fd "y" recovered' in h.log(), h.log())
        check(h.stop() == 0, h.log())
    finally:
        for fd in memfds:  # the service manager's copies, open until now
            os.close(fd)
        h.kill_all()
        fake.close()


def fd_store_requests(fake, key):
    """The FDNAMEs of the datagrams that came to fake with KEY=1, in order."""
    return [m.fields.get("FDNAME") for m in fake.snapshot() if m.fields.get(key) == "1"]


def test_env_recovered_listen_entries_of_no_index_removed(tmp):
    """With --systemd-fd-store, handoff.listen.NAME entries whose NAME is no
    --listen index handoff gives (not a number, 1024 or more, not as
    handoff writes it: "01") are closed and removed from systemd's store,
    once each, nothing put back; handoff.listen.0 is reused and stays.
    Before: closed, silently, but left in systemd's store, which passed
    them again at every start."""
    a, port = listening_socket()
    bad = ["handoff.listen.x", "handoff.listen.1024", "handoff.listen.01", "handoff.listen.", "handoff.listen.x"]
    others = [listening_socket()[0] for _ in bad]
    initial = {"handoff.listen.0": [os.fstat(a.fileno()).st_ino]}
    for name, x in zip(bad, others):
        initial.setdefault(name, []).append(os.fstat(x.fileno()).st_ino)
    fake = StoreModel(tmp, initial)
    h = Launched(tmp, ["--systemd-fd-store=yes", "-l", f"127.0.0.1:{port}"], [FIXTURE],
                 fds=[a.fileno(), *(x.fileno() for x in others)],
                 env={"LISTEN_FDS": str(1 + len(bad)), "LISTEN_PID": "self",
                      "LISTEN_FDNAMES": ":".join(["handoff.listen.0", *bad])}, notify=fake)
    try:
        h.wait_started()
        check(f"Reusing 127.0.0.1:{port} from the service manager's fd store" in h.log(), h.log())
        # READY=1 comes after what handoff sends as it starts.
        fake.wait_count("READY", 1)
        removed = fd_store_requests(fake, "FDSTOREREMOVE")
        check(sorted(removed) == sorted(set(bad)), f"each bad name removed once: {removed}; {fake.snapshot()}")
        check(not fd_store_requests(fake, "FDSTORE") and list(fake.entries()) == ["handoff.listen.0"],
              f"handoff.listen.0 alone left, nothing put: {fake.entries()}; {fake.snapshot()}")
        for name in set(bad):
            check(f"Closing {name} passed from the service manager's fd store: no --listen index" in h.log(),
                  h.log())
        check(http_get(port)[0] == 200, h.log())
        check(h.stop() == 0, h.log())
    finally:
        for x in [a, *others]:  # the service manager's copies, open until now
            x.close()
        h.kill_all()
        fake.close()


def test_env_recovered_listen_socket_keeps_its_non_blocking_flag(tmp):
    """A --listen socket recovered from systemd's fd store (handoff.listen.0)
    keeps the O_NONBLOCK flag it has, whatever this start's --non-blocking
    says: a process of an earlier generation may hold it still (a crash
    leaves what KillMode= leaves), and the flag belongs to the open file
    description it shares. Blocking stays blocking with =yes; non-blocking
    stays so without the option. systemd's copy (ours here) shows it. The
    command leaves the flag alone (the fixture server sets it).

    A blocking one under =yes is warned about, once: the server that asked
    for non-blocking listeners gets a blocking one, and `systemctl restart`
    keeps systemd's fd store, so a restart that changed the option has no
    effect on it (before: nothing said). Not one that is non-blocking
    already, nor one without the option (a server may set the flag)."""
    waiter = [PYTHON, "-c", "import signal; signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM]); "
              "signal.sigwait([signal.SIGTERM])"]
    warning = "stays blocking despite --non-blocking=yes"
    for opts, blocking in ((["--non-blocking=yes"], True), ([], False), (["--non-blocking=yes"], False)):
        a, port = listening_socket()
        a.setblocking(blocking)  # the other way than the option would open one, and as it would
        fake = StoreModel(tmp, {"handoff.listen.0": [os.fstat(a.fileno()).st_ino]})
        h = Launched(tmp, ["--systemd-fd-store=yes", "--ready=delay:50ms", *opts, "-l", f"127.0.0.1:{port}"],
                     waiter, fds=[a.fileno()],
                     env={"LISTEN_FDS": "1", "LISTEN_PID": "self", "LISTEN_FDNAMES": "handoff.listen.0"},
                     notify=fake)
        try:
            h.wait_started()
            check(f"Reusing 127.0.0.1:{port} from the service manager's fd store" in h.log(), h.log())
            check(os.get_blocking(a.fileno()) == blocking,
                  f"{opts}: the recovered socket should stay {'blocking' if blocking else 'non-blocking'}; "
                  f"log:\n{h.log()}")
            warned = opts and blocking
            check(h.log().count(warning) == (1 if warned else 0),
                  f"{opts}, {'blocking' if blocking else 'non-blocking'}: "
                  f"{'one warning' if warned else 'no warning'} expected; log:\n{h.log()}")
            check(h.stop() == 0, h.log())
        finally:
            a.close()
            h.kill_all()
            fake.close()


def test_listen_non_blocking_that_cannot_be_set_fails_the_start(tmp):
    """--non-blocking=yes where fcntl(F_SETFL) cannot set O_NONBLOCK (EPERM,
    a seccomp filter): the start fails as for a --listen that cannot be
    bound, exit 2 with the reason, and the socket file is removed. With
    --systemd-fd-store=yes, the socket is not put into systemd's fd store:
    the flag is set before that (before: it was stored first, blocking, and
    a Restart= took it back and kept it blocking)."""
    prefix = seccomp_prefix(NO_SETFL_NONBLOCK)
    path = os.path.join(tmp, "app.sock")
    for opts in ([], ["--systemd-fd-store=yes"]):
        fake = StoreModel(tmp, {})
        listen = ["-l", f"unix:{path}"] if not opts else ["-l", f"127.0.0.1:{free_port()}"]
        h = Launched(tmp, [*opts, "--non-blocking=yes", *listen], [FIXTURE], prefix=prefix, notify=fake)
        try:
            code = h.proc.wait(timeout=10)
            check(code == 2, f"{opts}: exit {code}, expected 2; log:\n{h.log()}")
            check("Failed to set O_NONBLOCK on " in h.log(), h.log())
            check(not os.path.exists(path), f"{opts}: {path} is left behind")
            # Whatever handoff sent came before its exit: read it all.
            fake.sync()
            check(fake.entries() == {}, f"{opts}: systemd's store holds {fake.entries()}; log:\n{h.log()}")
        finally:
            h.kill_all()
            fake.close()


def test_env_recovered_listen_socket_stored_twice(tmp):
    """With --systemd-fd-store, two sockets under one name,
    handoff.listen.0 (a server's, NotifyAccess=all): at port A, which
    --listen asks for, then at port B. The one passed last is kept; the
    other was closed, not shut down, while systemd's copy listened on: A
    could not be bound anew (the start failed), and systemd kept both for
    good. Now it is shut down, and systemd's store holds one socket under
    that name: the one handoff serves A on."""
    a, port = listening_socket()
    b, port_b = listening_socket()
    fake = StoreModel(tmp, {"handoff.listen.0": [os.fstat(a.fileno()).st_ino, os.fstat(b.fileno()).st_ino]})
    h = Launched(tmp, ["--systemd-fd-store=yes", "-l", f"127.0.0.1:{port}"], [FIXTURE], fds=[a.fileno(), b.fileno()],
                 env={"LISTEN_FDS": "2", "LISTEN_PID": "self", "LISTEN_FDNAMES": "handoff.listen.0:handoff.listen.0"},
                 notify=fake)
    try:
        h.wait_started()
        fake.wait_count("READY", 1)
        check("Closing a socket passed from the service manager's fd store as handoff.listen.0: another one "
              "follows under that name." in h.log(), h.log())
        check(http_get(port)[0] == 200, h.log())
        try:
            socket.create_connection(("127.0.0.1", port_b), timeout=5).close()
            check(False, f"a client of B is queued where nobody serves it; log:\n{h.log()}")
        except ConnectionRefusedError:
            pass
        stored = fake.entries()
        check(list(stored) == ["handoff.listen.0"] and len(stored["handoff.listen.0"]) == 1,
              f"one socket left under handoff.listen.0: {stored}; {fake.snapshot()}")
        check(h.stop() == 0, h.log())
    finally:
        a.close()  # the service manager's copies, open until now
        b.close()
        h.kill_all()
        fake.close()


def test_env_recovered_entries_removed_without_mirror(tmp):
    """The unit switched from --systemd-fd-store=yes to =no: systemd still
    holds what the previous handoff put into its store (handoff.listen.N,
    handoff.store.NAME) and passes it. At this start it is used once (the
    socket reused, the client queued on it answered, the stored fds given
    to the server), and every name is removed from systemd's store, once,
    and nothing put back. Before, systemd kept them for good: every later
    start got them again, the server its first stored state."""
    a, port = listening_socket()
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    memfds = [os.memfd_create(n) for n in ("state", "x1", "x2")]
    os.write(memfds[0], b"41")
    ino = [os.fstat(fd).st_ino for fd in memfds]
    fake = StoreModel(tmp, {"handoff.listen.0": [os.fstat(a.fileno()).st_ino], "handoff.store.state": [ino[0]],
                            "handoff.store.x": ino[1:]})
    h = Launched(tmp, ["--systemd-fd-store=no", "-l", f"127.0.0.1:{port}"], [os.environ["STORE_SERVER"]],
                 fds=[a.fileno(), *memfds],
                 env={"LISTEN_FDS": "4", "LISTEN_PID": "self",
                      "LISTEN_FDNAMES": "handoff.listen.0:handoff.store.state:handoff.store.x:handoff.store.x"},
                 notify=fake)
    try:
        # READY=1 comes after what handoff sends as it starts.
        fake.wait_count("READY", 1)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_all(client, time.monotonic() + 5)
        check(b" state=42 " in answer and b",state,x,x values=" in answer,
              f"the queued client answered by a server with the stored fds: {answer!r}; log:\n{h.log()}")
        removed = fd_store_requests(fake, "FDSTOREREMOVE")
        check(sorted(removed) == ["handoff.listen.0", "handoff.store.state", "handoff.store.x"],
              f"each name removed once: {removed}; {fake.snapshot()}")
        check(not fd_store_requests(fake, "FDSTORE") and not fake.entries(),
              f"nothing left in or put into systemd's store: {fake.entries()}; {fake.snapshot()}")
        for name in removed:
            check(f"Removed {name} from the service manager's fd store" in h.log(), h.log())
        check(h.stop() == 0, h.log())
    finally:
        client.close()
        a.close()  # the service manager's copies, open until now
        for fd in memfds:
            os.close(fd)
        h.kill_all()
        fake.close()


def test_env_recovered_entries_removed_beside_the_units_sockets(tmp):
    """As above, with a socket of the unit's own (a .socket unit's, named
    web) passed too: it is served, and only handoff's entries are removed
    from systemd's store, the socket stored for a --listen (which a unit
    socket overrides) among them."""
    web, port = listening_socket()
    a, _ = listening_socket()
    memfd = os.memfd_create("state")
    fake = StoreModel(tmp, {"handoff.listen.0": [os.fstat(a.fileno()).st_ino],
                            "handoff.store.state": [os.fstat(memfd).st_ino]})
    h = Launched(tmp, ["--systemd-fd-store=no"], [os.environ["STORE_SERVER"]],
                 fds=[web.fileno(), a.fileno(), memfd],
                 env={"LISTEN_FDS": "3", "LISTEN_PID": "self",
                      "LISTEN_FDNAMES": "web:handoff.listen.0:handoff.store.state"}, notify=fake)
    try:
        fake.wait_count("READY", 1)
        check(http_get(port)[0] == 200, f"the unit's socket served; log:\n{h.log()}")
        removed = fd_store_requests(fake, "FDSTOREREMOVE")
        check(sorted(removed) == ["handoff.listen.0", "handoff.store.state"],
              f"handoff's names removed, once each, web not: {removed}; {fake.snapshot()}")
        check(h.stop() == 0, h.log())
    finally:
        for x in (web, a):
            x.close()
        os.close(memfd)
        h.kill_all()
        fake.close()


def test_env_recovered_listen_socket_beside_the_units_sockets_released(tmp):
    """A socket stored for a --listen (handoff.listen.0, bound to port A),
    passed beside a socket of the unit's own (web), with or without
    --systemd-fd-store: --listen is ignored, so nothing serves A, and the
    stored socket is let go of at the start (shut down: the service
    manager's copy stays open until it reads the removal). A client
    connecting to A is refused, and handoff.listen.0 is removed from
    systemd's store, once. Before, handoff held A open for its whole life
    unserved: a client connecting there was queued in its backlog, never
    answered, and with mirroring systemd kept it for good."""
    for mirror in ("yes", "no"):
        web, port = listening_socket()
        a, port_a = listening_socket()
        fake = StoreModel(tmp, {"handoff.listen.0": [os.fstat(a.fileno()).st_ino]})
        h = Launched(tmp, [f"--systemd-fd-store={mirror}", "-l", f"127.0.0.1:{port_a}"], [FIXTURE],
                     fds=[web.fileno(), a.fileno()],
                     env={"LISTEN_FDS": "2", "LISTEN_PID": "self", "LISTEN_FDNAMES": "web:handoff.listen.0"},
                     notify=fake)
        try:
            # READY=1 comes after what handoff sends as it starts.
            fake.wait_count("READY", 1)
            check(http_get(port)[0] == 200, f"{mirror}: the unit's socket served; log:\n{h.log()}")
            try:
                socket.create_connection(("127.0.0.1", port_a), timeout=5).close()
                check(False, f"{mirror}: a client of A is queued where nobody serves it; log:\n{h.log()}")
            except ConnectionRefusedError:
                pass
            check("Closing the socket the service manager's fd store holds for --listen 1: systemd passed the "
                  "unit's own sockets, and --listen is ignored." in h.log(), h.log())
            removed = fd_store_requests(fake, "FDSTOREREMOVE")
            check(removed == ["handoff.listen.0"] and not fake.entries(),
                  f"{mirror}: handoff.listen.0 removed, once: {removed}; {fake.snapshot()}")
            check(h.stop() == 0, h.log())
        finally:
            for x in (web, a):  # the service manager's copies, open until now
                x.close()
            h.kill_all()
            fake.close()


def test_env_recovered_listen_socket_that_is_the_units_own_released(tmp):
    """As above, the socket stored as handoff.listen.0 being the unit's own
    (web), as a server with NotifyAccess=all can store it: handoff's copy
    is closed and the name removed from systemd's store, but the socket is
    not shut down: web is served still (not only a shut down socket
    refuses, a closed copy of it must not)."""
    web, port = listening_socket()
    copy = web.dup()
    fake = StoreModel(tmp, {"handoff.listen.0": [os.fstat(web.fileno()).st_ino]})
    h = Launched(tmp, ["--systemd-fd-store=yes"], [FIXTURE], fds=[web.fileno(), copy.fileno()],
                 env={"LISTEN_FDS": "2", "LISTEN_PID": "self", "LISTEN_FDNAMES": "web:handoff.listen.0"},
                 notify=fake)
    try:
        fake.wait_count("READY", 1)
        check("Closing the socket the service manager's fd store holds for --listen 1" in h.log(), h.log())
        removed = fd_store_requests(fake, "FDSTOREREMOVE")
        check(removed == ["handoff.listen.0"], f"handoff.listen.0 removed: {removed}; {fake.snapshot()}")
        check(http_get(port)[0] == 200, f"web served still; log:\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        for x in (web, copy):  # the service manager's copies, open until now
            x.close()
        h.kill_all()
        fake.close()


def stored_unix_sockets(tmp, *names):
    """Listening unix stream sockets as a previous handoff's --listen made
    them, and the service manager's store holds them: paths and sockets."""
    paths, socks = [os.path.join(tmp, n) for n in names], []
    for path in paths:
        socks.append(socket.socket(socket.AF_UNIX))
        socks[-1].bind(path)
        socks[-1].listen()
    env = {"LISTEN_FDS": str(len(socks)), "LISTEN_PID": "self",
           "LISTEN_FDNAMES": ":".join(f"handoff.listen.{i}" for i in range(len(socks)))}
    return paths, socks, env


def path_bound_by_another(path):
    """The socket file at path removed, and path bound by another socket,
    not listening (as another user may, between its bind() and its
    listen()): that socket, and its file's inode."""
    os.unlink(path)
    other = socket.socket(socket.AF_UNIX)
    other.bind(path)
    return other, os.stat(path).st_ino


@contextlib.contextmanager
def launched_with_stored(tmp, args, socks, env, others=()):
    """handoff launched with args, and the stored sockets socks as its
    LISTEN_FDS (env); at the end those sockets (the service manager's
    copies) and others are closed, and whatever is left is killed."""
    h = Launched(tmp, args, [FIXTURE], fds=[x.fileno() for x in socks], env=env)
    try:
        yield h
    finally:
        for x in [*socks, *others]:
            x.close()
        h.kill_all()


def test_env_recovered_unix_socket_no_longer_listened_on(tmp):
    """A stored unix socket whose --listen is gone (the unit's second --listen
    removed before a restart that kept systemd's store): its path is no
    --listen's, so it is not looked up and its file is left, which handoff
    says (a server's own socket stored under handoff's name may be bound
    where a lookup waits for ever: test-hostile's
    test_stored_listen_socket_whose_path_lookup_hangs); the first is
    reused."""
    (a, b), socks, env = stored_unix_sockets(tmp, "a.sock", "b.sock")
    with launched_with_stored(tmp, ["-l", f"unix:{a}"], socks, env) as h:
        h.wait_log("is ready")
        check(f"Reusing unix:{a}" in h.log(), h.log())
        check(f"Not removing {b}, the file of that socket: no --listen names that path now." in h.log(), h.log())
        check(os.path.exists(b), f"the dropped socket's file is left; log:\n{h.log()}")
        check(h.stop() == 0, h.log())


def test_env_recovered_unix_socket_path_taken_by_another_listen(tmp):
    """Stored unix stream sockets at a and b (-l unix:a -l unix:b), the unit
    now -l unix-dgram:b, the service manager's copies still open: the stored
    sockets are let go of before anything is bound, so b is bound anew as a
    datagram socket (before: the start failed, exit 2, on the stored socket
    at b, "not a stale socket: Protocol wrong type"; the same with -l unix:b
    alone, "a live socket"). a's file is left: no --listen names it."""
    (a, b), socks, env = stored_unix_sockets(tmp, "a.sock", "b.sock")
    with launched_with_stored(tmp, ["-l", f"unix-dgram:{b}"], socks, env) as h:
        h.wait_started()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
            c.connect(b)
        check(os.path.exists(a), f"a's file is left; log:\n{h.log()}")
        check(h.stop() == 0, h.log())
        check(not os.path.exists(b), f"b, bound by handoff, is removed at the final stop; log:\n{h.log()}")


def test_env_recovered_unix_socket_file_replaced(tmp):
    """A stored unix socket whose --listen is gone, its file removed since
    and the path bound again by another socket, not listening yet (as
    another user may, between its bind() and its listen()): that file is
    left (before: a connect() refused made it a stale one, and it was
    removed); no --listen names its path, which is not even looked up."""
    (a, b), socks, env = stored_unix_sockets(tmp, "a.sock", "b.sock")
    other, ino = path_bound_by_another(b)
    with launched_with_stored(tmp, ["-l", f"unix:{a}"], socks, env, others=[other]) as h:
        h.wait_log("is ready")
        check(f"Not removing {b}, the file of that socket: no --listen names that path now." in h.log(), h.log())
        check(os.path.exists(b) and os.stat(b).st_ino == ino,
              f"the other socket's file is left; log:\n{h.log()}")
        check(h.stop() == 0, h.log())


def test_env_recovered_unix_socket_file_replaced_before_the_start(tmp):
    """A stored unix socket still asked for, its file removed and the path
    bound again by another socket before handoff starts: the stored socket
    is reused, handoff warns as a reload would, and the final stop leaves
    the other's file (before: the file at the path at the start was taken
    for the socket's own, and removed). No --systemd-fd-store here: with
    it, socket files are left at every stop anyway."""
    (a,), socks, env = stored_unix_sockets(tmp, "a.sock")
    other, ino = path_bound_by_another(a)
    with launched_with_stored(tmp, ["-l", f"unix:{a}"], socks, env, others=[other]) as h:
        h.wait_log("is ready")
        check(f"Reusing unix:{a} from the service manager's fd store" in h.log(), h.log())
        check(f"{a} is no longer the file of handoff's socket (removed or replaced since)" in h.log(), h.log())
        check(h.stop() == 0, h.log())
        check(os.path.exists(a) and os.stat(a).st_ino == ino, f"the other socket's file is left; log:\n{h.log()}")


def test_env_recovered_unix_socket_file_removed_before_the_start(tmp):
    """A stored unix socket still asked for, its file removed before
    handoff starts and nothing put back: the stored socket is reused, and
    handoff warns that clients there do not reach it, as a reload would
    (before: a debug line only); the stop leaves nothing at the path."""
    (a,), socks, env = stored_unix_sockets(tmp, "a.sock")
    os.unlink(a)
    with launched_with_stored(tmp, ["-l", f"unix:{a}"], socks, env) as h:
        h.wait_log("is ready")
        check(f"Reusing unix:{a} from the service manager's fd store" in h.log(), h.log())
        check(f"{a} is no longer the file of handoff's socket (removed or replaced since)" in h.log(), h.log())
        check(h.stop() == 0, h.log())
        check(not os.path.exists(a), f"nothing at {a} after the stop; log:\n{h.log()}")


def test_env_recovered_unix_dgram_socket_path_taken_by_another_listen(tmp):
    """A stored unix datagram socket at d whose --listen is now -l unix:d, a
    stream socket: its own file is removed, and d bound anew (before 10e7363:
    left, since a datagram socket shut down takes a connect() as a live one
    would, and the stale socket probe was all there was to tell; the bind
    failed)."""
    path = os.path.join(tmp, "d.sock")
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(path)
    ino = os.stat(path).st_ino
    (a,), socks, env = stored_unix_sockets(tmp, "a.sock")
    socks.append(dgram)
    env.update(LISTEN_FDS="2", LISTEN_FDNAMES="handoff.listen.0:handoff.listen.1")
    with launched_with_stored(tmp, ["-l", f"unix:{a}", "-l", f"unix:{path}"], socks, env) as h:
        h.wait_started()
        check(f"Removed {path}, the file of that socket." in h.log(), h.log())
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(path)
        check(os.stat(path).st_ino != ino, f"{path} bound anew; log:\n{h.log()}")
        check(h.stop() == 0, h.log())


def test_env_inherited_fd_not_a_socket(tmp):
    r, w = os.pipe()
    s, _ = listening_socket()
    try:
        code, log = run_launched(tmp, [], [FIXTURE], fds=[r], env={"LISTEN_FDS": "1", "LISTEN_PID": "self"})
        check(code == 2 and "Passed fd 3 (unknown) is not a socket" in log, f"exit {code}: {log}")
        # The second of two, with its name in the message.
        code, log = run_launched(tmp, [], [FIXTURE], fds=[s.fileno(), r],
                                 env={"LISTEN_FDS": "2", "LISTEN_PID": "self", "LISTEN_FDNAMES": "web:pipe"})
        check(code == 2 and "Passed fd 4 (pipe) is not a socket" in log, f"exit {code}: {log}")
        # A regular file.
        fd = os.open(os.path.join(tmp, "file"), os.O_RDWR | os.O_CREAT)
        code, log = run_launched(tmp, [], [FIXTURE], fds=[fd], env={"LISTEN_FDS": "1", "LISTEN_PID": "self"})
        os.close(fd)
        check(code == 2 and "is not a socket" in log, f"exit {code}: {log}")
    finally:
        os.close(r)
        os.close(w)
        s.close()


def test_env_bad_handoff_control_fd(tmp):
    """HANDOFF_CONTROL_FD is how a next handoff finds its predecessor: a value
    that names no handover channel refuses to start."""
    port = free_port()
    for value in ("abc", "1", "2", "99", "-3", ""):
        status, out = run_handoff(["-l", f"127.0.0.1:{port}", "--", "true"], env={"HANDOFF_CONTROL_FD": value})
        check(status == 2 and "Invalid HANDOFF_CONTROL_FD" in out, f"HANDOFF_CONTROL_FD={value!r}: {status} {out!r}")


# ---- notify datagrams -----------------------------------------------------------

# Long: a dropped READY=1 is shown by what handoff logs, and the reload is
# then ended by killing the candidate, not by waiting for this.
START_TIMEOUT = "30s"


def start(tmp, *extra, verbose=True):
    """handoff -v in this pass's mode whose generations are notifying_app()s:
    each generation's main process first sends whatever datagrams the test
    set for its generation number, then becomes the fixture server."""
    port = free_port()
    fake = FakeSystemd(tmp)
    command, args_file, set_datagrams = notifying_app(tmp)
    set_args(args_file, "--init-delay", "50")
    h = Handoff(tmp, [*(["-v"] if verbose else []), "-l", f"127.0.0.1:{port}", f"--mode={MODE}",
                      f"--start-timeout={START_TIMEOUT}", "--drain-timeout=5s", *extra], command, notify=fake)
    h.port, h.args_file, h.set_datagrams = port, args_file, set_datagrams
    h.wait_ready(1)
    return h






def reload_with(h, number, dgrams, *fixture_args):
    """Reloads to generation number, whose main process sends dgrams and
    then runs the fixture with fixture_args. Returns (its pid, committed)."""
    h.set_datagrams(number, dgrams)
    set_args(h.args_file, *fixture_args)
    n = h.ready_count()
    h.signal(signal.SIGHUP)
    h.wait_ready(n + 1, timeout=20)
    return h.generation_pid(number), f"reload to generation {number} ok" in h.last_status()


def still_serving(h, number):
    """Serving, and the next reload (to generation number) works."""
    old = serving_pid(h.port)
    pid, ok = reload_with(h, number, [], "--init-delay", "50")
    check(ok, f"a plain reload afterwards works: {h.last_status()}")
    # The old generation answers during its close-grace; then it is gone.
    wait_for(lambda: not alive(old), 10, f"generation pid {old} retired")
    check(serving_pid(h.port) == pid, "the new generation serves")


def check_dropped(h, number, dgrams, lines):
    """Reloads to a generation whose main process sends dgrams (each of
    which would make it ready, were it accepted) and then hangs. Once handoff
    has logged every line in lines ({pid} and {n} filled in; each must
    appear as often as listed), the datagrams have all been read, in order:
    nothing made the generation ready. The test then kills it, which ends
    the reload, and the old generation serves on."""
    old = serving_pid(h.port)
    h.set_datagrams(number, dgrams)
    set_args(h.args_file, "--hang-at-start")
    n = h.ready_count()
    h.signal(signal.SIGHUP)
    pid = h.generation_pid(number)
    for line, times in lines:
        line = line.format(pid=pid, n=number)
        wait_for(lambda: h.log().count(line) >= times, 10, f"{times} x debug line {line!r}:\n{h.log()}")
        check(h.log().count(line) == times, f"{line!r} logged more often than {times}:\n{h.log()}")
    check(not re.search(rf"Generation {number} \(.*pid {pid}\) is ready", h.log()), h.log())
    check(h.ready_count() == n, f"no READY=1 to systemd: {h.notify.snapshot()}")
    os.kill(pid, signal.SIGKILL)
    h.wait_ready(n + 1, timeout=20)
    check(f"generation {number} failed: killed by signal SIGKILL" in h.last_status(), h.last_status())
    wait_for(lambda: not alive(pid), 10, f"the failed generation {pid} is gone")
    check(serving_pid(h.port) == old, "the old generation serves on")


def test_notify_embedded_nul_dropped(tmp):
    """A NUL inside a datagram drops it, as systemd does; one at its end
    is allowed (test_notify_trailing_nul_accepted)."""
    h = start(tmp)
    try:
        check_dropped(h, 2, [b"READY=1\0X=1", b"\0READY=1", b"READY=1\0\0"],
                      [("Dropped malformed notify message from pid {pid} (generation {n}).", 3)])
        still_serving(h, 3)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_notify_trailing_nul_accepted(tmp):
    """A server that counts the terminator in (sendto(fd, "READY=1",
    sizeof "READY=1", ...)) is ready, as systemd takes it."""
    h = start(tmp)
    try:
        pid, ok = reload_with(h, 2, [b"STATUS=counted\0", b"READY=1\0"], "--no-notify")
        check(ok, f"READY=1 with a trailing NUL counts: {h.last_status()}\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_notify_oversized_dropped(tmp):
    """Over 4096 bytes: dropped, whether the kernel truncated it for us
    (much longer) or it fits the buffer but not the limit (4097)."""
    h = start(tmp)
    try:
        huge = b"READY=1\nX=" + b"a" * 70000
        just_over = b"READY=1\nX=" + b"a" * (4097 - 10)
        check(len(just_over) == 4097, len(just_over))
        check_dropped(h, 2, [huge, just_over], [
            ("Dropped notify message on generation {n}'s socket: message too long.", 1),
            ("Dropped malformed notify message from pid {pid} (generation {n}).", 1)])
        still_serving(h, 3)
    finally:
        h.close()


def test_notify_4096_bytes_accepted(tmp):
    h = start(tmp)
    try:
        exactly = b"READY=1\nX=" + b"a" * (4096 - 10)
        check(len(exactly) == 4096, len(exactly))
        pid, ok = reload_with(h, 2, [exactly], "--no-notify")
        check(ok, f"a 4096-byte READY=1 is accepted: {h.last_status()}\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_notify_line_without_equals_ignored(tmp):
    """As systemd: a line without '=' is skipped, the rest of the datagram
    counts."""
    h = start(tmp)
    try:
        pid, ok = reload_with(h, 2, [b"garbage\nREADY=1\nSTATUS x"], "--no-notify")
        check(ok, f"READY=1 beside a line without '=' counts: {h.last_status()}\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_notify_trailing_backslash_drops_datagram(tmp):
    """A datagram that ends in a lone backslash is dropped whole, its
    READY=1 included, as systemd drops it (its escape has no character)."""
    h = start(tmp)
    try:
        check_dropped(h, 2, [b"READY=1\nSTATUS=x\\", b"READY=1\\"],
                      [("Dropped malformed notify message from pid {pid} (generation {n}).", 2)])
        still_serving(h, 3)
    finally:
        h.close()


def test_notify_lines_count_as_systemd_counts_them(tmp):
    """As systemd 252's service_notify_message(): of READY=1 and STOPPING=1
    the last line counts, so "READY=1\\nSTOPPING=1" is not ready; and
    beside BARRIER=1 nothing counts (manager_process_barrier_fd()), so
    neither is "BARRIER=1\\nREADY=1"."""
    h = start(tmp)
    try:
        check_dropped(h, 2, [b"READY=1\nSTOPPING=1", b"BARRIER=1\nREADY=1"],
                      [("Answered BARRIER=1 from pid {pid} (generation {n}); ignored the rest of its datagram, "
                        "as systemd does.", 1)])
        still_serving(h, 3)
    finally:
        h.close()


def test_notify_status_not_utf8_or_empty(tmp):
    """As systemd: an empty STATUS= clears the server's text, and so does
    one that is not valid UTF-8 (systemd ignores its text and clears the
    status), with one warning; its text never reaches systemd, which would
    clear handoff's whole status line for it."""
    h = start(tmp)

    def last_status_line():
        mains = set(h.mains())
        return [m.fields["STATUS"] for m in h.notify.snapshot() if m.pid in mains and "STATUS" in m.fields][-1]

    try:
        for n, last in ((2, b"STATUS=caf\xe9\nREADY=1"), (3, b"STATUS=\nREADY=1")):
            pid, ok = reload_with(h, n, [b"STATUS=before", last], "--no-notify")
            check(ok, f"ready: {h.last_status()}\n{h.log()}")
            wait_for(lambda: last_status_line().startswith(f"Serving generation {n}") and
                     "app:" not in last_status_line(),
                     10, f"{last!r} clears the server's text: {h.notify.snapshot()}")
        check(h.log().count("sent a STATUS= that is not valid UTF-8") == 1, h.log())
        check(not any("\ufffd" in m.text for m in h.notify.snapshot()), f"not UTF-8 to systemd: {h.notify.snapshot()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_notify_read_as_systemd_reads_it(tmp):
    """Lines end at \\r too, and a backslash escapes the character after
    it: a server that works under systemd works under handoff. Its text
    reaches systemd as systemd would have read it from the server, in every
    STATUS= handoff sends: escaped again where needed, and never cut inside
    an escape. (The "app:" part keeps 255 bytes; cut there, the 256 raw
    bytes of generation 1's status once left a lone backslash at the end of
    handoff's READY=1 datagram, which systemd drops whole: the service never
    started.)"""
    port = free_port()
    fake = FakeSystemd(tmp)
    command, args_file, set_datagrams = notifying_app(tmp)
    set_args(args_file, "--no-notify")
    cut = "y" * 254 + "\\"
    set_datagrams(1, [b"STATUS=" + cut.replace("\\", "\\\\").encode(), b"READY=1"])
    set_datagrams(2, [b"STATUS=C:\\s\\\\rv\\\\ one\\\ntwo\r\nREADY=1\r\n"])
    h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{port}", f"--mode={MODE}"], command, notify=fake)
    try:
        h.wait_ready(1)
        check(h.last_status().endswith("; app: " + cut), repr(h.last_status()))
        n = h.ready_count()
        h.signal(signal.SIGHUP)
        h.wait_ready(n + 1, timeout=20)
        check("reload to generation 2 ok" in h.last_status(), f"READY=1 ending in \\r\\n counts: {h.last_status()}")
        app = "; app: C:s\\rv\\ one\ntwo"
        wait_for(lambda: any(m.fields.get("STATUS", "").endswith(app) for m in fake.snapshot()), 10,
                 f"generation 2's STATUS= relayed as {app!r}: {fake.snapshot()}")
        dropped = [m for m in fake.snapshot() if m.dropped]
        check(not dropped, f"handoff sent datagrams systemd drops: {dropped}")
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()
        fake.close()


def test_notify_unknown_keys_ignored(tmp):
    h = start(tmp)
    try:
        pid, ok = reload_with(h, 2, [b"FOO=bar\nX_CUSTOM_KEY=1\nREADY=1\nNOTIFYACCESS=all\nBUSERROR=x"], "--no-notify")
        check(ok, f"READY=1 among unknown keys counts: {h.last_status()}")
        for m in h.notify.snapshot():
            for k in ("FOO", "X_CUSTOM_KEY", "NOTIFYACCESS", "BUSERROR"):
                check(k not in m.fields, f"{k} reached systemd: {m}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_notify_keys_handoff_owns_are_not_relayed(tmp):
    """The first generation (whose messages are relayed while it starts)
    sends MAINPID=, RELOADING=, STOPPING= and malformed numbers: none of
    them reaches systemd; its STATUS= does, after handoff's own."""
    port = free_port()
    fake = FakeSystemd(tmp)
    command, args_file, set_datagrams = notifying_app(tmp)
    set_args(args_file, "--no-notify")
    # The last two as a server would slip its own lines into handoff's: a
    # "\r" ends a line for systemd, raw or (once unescaped) in a STATUS=.
    set_datagrams(1, [b"MAINPID=1\nRELOADING=1\nSTOPPING=1\nEXTEND_TIMEOUT_USEC=5s\nERRNO=5\nX=\nSTATUS=hello\nREADY=1",
                      b"EXTEND_TIMEOUT_USEC=1\nMAINPID=1\nERRNO=2\nSTATUS=two",
                      b"STATUS=three\rSTOPPING=1\rMAINPID=1\rERRNO=EIO",
                      b"STATUS=four\\\rRELOADING=1\\\nMAINPID=1"])
    h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{port}", f"--mode={MODE}"], command, notify=fake)
    try:
        h.wait_ready(1)
        wait_for(lambda: any(m.fields.get("STATUS", "").endswith("; app: two") for m in fake.snapshot()), 10,
                 f"the second STATUS= relayed: {fake.snapshot()}")
        last = "; app: four\rRELOADING=1\nMAINPID=1"
        wait_for(lambda: any(m.fields.get("STATUS", "").endswith(last) for m in fake.snapshot()), 10,
                 f"the last STATUS= relayed whole, as one line: {fake.snapshot()}")
        msgs = fake.snapshot()
        check(not any(k in m.fields for m in msgs for k in ("MAINPID", "RELOADING", "STOPPING")),
              f"a generation's MAINPID/RELOADING/STOPPING reached systemd: {msgs}")
        check(not any(m.fields.get("EXTEND_TIMEOUT_USEC") == "5s" for m in msgs), f"a non-number relayed: {msgs}")
        check(any(m.fields.get("EXTEND_TIMEOUT_USEC") == "1" for m in msgs), f"a number is relayed: {msgs}")
        check(any(m.fields.get("ERRNO") == "2" for m in msgs), msgs)
        check(any(m.fields.get("ERRNO") == "EIO" for m in msgs), f"an errno name is relayed: {msgs}")
        check(all(m.pid == h.pid for m in msgs), f"only handoff speaks to systemd: {msgs}")
        check("Ignored MAINPID/RELOADING/STOPPING from generation 1" in h.log(), h.log())
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()
        fake.close()


def test_notify_attached_fds_are_closed(tmp):
    """fds sent along with a datagram, by an outsider or by the main
    process itself with its READY=1, are closed at once: handoff's fd count
    does not grow and no handoff process holds one."""
    marker = os.path.join(tmp, "passed-fd-marker")
    open(marker, "w").close()

    def holders():
        out = []
        for pid in [h.pid, *[p for p in h.descendants() if is_handoff(p)]]:
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == marker:
                        out.append((pid, int(fd)))
            except OSError:
                pass
        return out

    h = start(tmp)
    fds = [os.open(marker, os.O_RDONLY) for _ in range(250)]
    try:
        app = serving_pid(h.port)
        address = notify_socket_of(app)
        before = fd_count(h.pid)
        for i in range(40):
            send_notify(address, b"STATUS=with fds %d" % i, fds=fds)
        wait_for(lambda: h.log().count(f"Dropped notify message from pid {os.getpid()}: not the main process") >= 40,
                 10, "the 40 datagrams were read")
        check(fd_count(h.pid) == before, f"fd count {before} -> {fd_count(h.pid)}")
        check(not holders(), f"passed fds still open: {holders()}")
        # From the main process itself, with its READY=1; a malformed
        # datagram last, whose drop line shows that all were read.
        pid, ok = reload_with(h, 2, [(b"STATUS=fds\nREADY=1", 250, marker)] * 4 + [b"end-of-test-datagrams\\"],
                              "--no-notify")
        check(ok, f"its READY=1 counts, fds or not: {h.last_status()}")
        wait_for(lambda: f"Dropped malformed notify message from pid {pid}" in h.log(), 10, "all datagrams read")
        check(not holders(), f"passed fds still open: {holders()}")
        if MODE == "supervise":
            # Once generation 1 has gone, handoff holds what it did before.
            wait_for(lambda: not alive(app), 10, "generation 1 retired")
            wait_for(lambda: fd_count(h.pid) == before, 5, f"fd count back to {before}: {fd_count(h.pid)}")
        check(h.stop() == 0, h.log())
    finally:
        for fd in fds:
            os.close(fd)
        h.close()


def test_notify_fdstore_from_starting_candidate_is_bounded(tmp):
    """The fd store (FDSTORE=1 with FDNAME= and fds) is bounded by
    --fd-store-max, one entry per fd, as systemd's is. That must hold for a
    reload's candidate too, whose stores wait for its commit: 20 datagrams of 250 fds under one name, sent before
    it is ready, may not make handoff hold thousands of fds (with systemd's
    default soft RLIMIT_NOFILE of 1024 it would run out). Outsiders' FDSTORE=1
    is dropped with its fds."""
    marker = os.path.join(tmp, "stored-fd-marker")
    open(marker, "w").close()
    h = start(tmp)
    try:
        # An outsider first: dropped, fds closed.
        address = notify_socket_of(serving_pid(h.port))
        before = fd_count(h.pid)
        fds = [os.open(marker, os.O_RDONLY) for _ in range(250)]
        try:
            for _ in range(4):
                send_notify(address, b"FDSTORE=1\nFDNAME=outsider", fds=fds)
        finally:
            for fd in fds:
                os.close(fd)
        line = f"Dropped notify message from pid {os.getpid()}: not the main process"
        wait_for(lambda: h.log().count(line) == 4, 10, f"4 x {line!r}")
        # The drop is logged before its fds are closed: the last 250 may
        # still be going.
        wait_for(lambda: fd_count(h.pid) == before, 10, f"outsider's fds closed: {before} -> {fd_count(h.pid)}")
        # The candidate's own main process. A malformed datagram last: its
        # drop line means all before it were read.
        h.set_datagrams(2, [(b"FDSTORE=1\nFDNAME=conn", 250, marker)] * 20 + [b"end-of-test-datagrams\\"])
        set_args(h.args_file, "--hang-at-start")
        n = h.ready_count()
        h.signal(signal.SIGHUP)
        pid = h.generation_pid(2)
        wait_for(lambda: f"Dropped malformed notify message from pid {pid}" in h.log(), 20, "all datagrams read")
        holders = [h.pid] + ([next_handoff_pid(h, 2)] if MODE == "handover" else [])
        counts = {p: fd_count(p) for p in holders}
        check(all(c <= before + 16 + 4 for c in counts.values()),
              f"fds held after 20 x 250 stored fds under one name: {counts} (before: {before}; "
              f"--fd-store-max is 16)")
        os.kill(pid, signal.SIGKILL)
        h.wait_ready(n + 1, timeout=20)
        wait_for(lambda: fd_count(h.pid) == before, 10, f"back to {before} fds after the rollback")
    finally:
        h.close()


def test_notify_fdstoreremove_flood_from_starting_candidate_is_bounded(tmp):
    """FDSTOREREMOVE=1 from a candidate waits for its commit like FDSTORE=1:
    60,000 of them under distinct names may not grow handoff's memory (it
    once staged every one: 241 MB), and the bound is logged once, not once
    per request."""
    h = start(tmp)
    try:
        h.set_datagrams(2, [f"FDSTOREREMOVE=1\nFDNAME=n{i}".encode() for i in range(60000)]
                        + [b"end-of-test-datagrams\\"])
        set_args(h.args_file, "--hang-at-start")
        n = h.ready_count()
        holders = [h.pid]
        rss_before = rss_kib(h.pid)
        h.signal(signal.SIGHUP)
        pid = h.generation_pid(2)
        if MODE == "handover":
            holders.append(next_handoff_pid(h, 2))
        wait_for(lambda: f"Dropped malformed notify message from pid {pid}" in h.log(), 120, "all datagrams read")
        grown = {p: rss_kib(p) - rss_before for p in holders}
        check(all(g < 1024 for g in grown.values()) or under_asan(h.pid),
              f"RSS grew by {grown} KiB for 60,000 staged removals")
        # In handover mode the next handoff applies its own generation's
        # requests to its own store at once (nothing to stage, nothing grows).
        if MODE == "supervise":
            check(h.log().count("Too many fd store requests from starting generation 2") == 1,
                  f"the bound logged once: {h.log().count('Too many fd store requests')} lines")
        os.kill(pid, signal.SIGKILL)
        h.wait_ready(n + 1, timeout=20)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def next_handoff_pid(h, n):
    m = wait_for(lambda: re.search(rf"Started the next handoff: pid (\d+), for generation {n}(?: \(the standby\))?\.", h.log()), 10,
                 f"the next handoff for generation {n}")
    return int(m.group(1))


def test_notify_ready_from_other_pid_does_not_commit(tmp):
    """During a reload the test process (not the candidate's main process)
    sends READY=1 to the candidate's socket: dropped, the candidate is not
    committed; the test then kills it and the old generation serves on."""
    h = start(tmp)
    try:
        old = serving_pid(h.port)
        set_args(h.args_file, "--hang-at-start")
        n = h.ready_count()
        h.signal(signal.SIGHUP)
        succ = h.generation_pid(2)
        address = notify_socket_of(succ)
        for msg in (b"READY=1", b"READY=1\nMAINPID=%d" % succ, b"READY=1\nSTATUS=from a stranger"):
            send_notify(address, msg)
        line = f"Dropped notify message from pid {os.getpid()}: not the main process {succ} of generation 2."
        wait_for(lambda: h.log().count(line) == 3, 10, f"3 x {line!r}:\n{h.log()}")
        check(h.ready_count() == n, f"no READY=1 to systemd: {h.notify.snapshot()}")
        check(not re.search(rf"Generation 2 \(.*pid {succ}\) is ready", h.log()), h.log())
        os.kill(succ, signal.SIGKILL)
        h.wait_ready(n + 1, timeout=20)
        check("1 failed; last: generation 2 failed: killed by signal SIGKILL" in h.last_status(), h.last_status())
        check(serving_pid(h.port) == old, "the old generation serves on")
        still_serving(h, 3)
    finally:
        h.close()


def test_notify_flood(tmp):
    """100,000 datagrams from an outsider to the serving generation's
    socket, under load: handoff keeps serving, its fds and memory stay flat,
    and reloads during and after a flood work. (Without -v: a debug line per
    dropped datagram would measure the log file instead.) The flooder's
    sends block while the socket's queue is full, so when it has sent them
    all, handoff has read all but a queue's worth."""
    h = start(tmp, verbose=False)
    load = Load(f"127.0.0.1:{h.port}", tmp, concurrency=2)
    try:
        app = serving_pid(h.port)
        address = notify_socket_of(app)
        fds0, rss0 = fd_count(h.pid), rss_kib(h.pid)
        flood = subprocess.run([PYTHON, "-c", FLOODER, address.encode().hex(), "100000"], capture_output=True, text=True,
                               timeout=120)
        check(flood.returncode == 0 and flood.stdout.split()[-1] == "100000", f"all sent: {flood.stdout} {flood.stderr}")
        check(http_get(h.port)[0] == 200, "serving")
        fds1, rss1 = fd_count(h.pid), rss_kib(h.pid)
        check(fds1 == fds0, f"fd count {fds0} -> {fds1}")
        check(rss1 - rss0 < 1024 or under_asan(h.pid), f"RSS {rss0} -> {rss1} KiB")
        # A reload while a flood runs: it ends when generation 1's socket
        # goes away with it.
        flooder = subprocess.Popen([PYTHON, "-c", FLOODER, address.encode().hex(), "10000000"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        check(flooder.stdout.readline().strip() == "flooding", "the second flood started")
        n = h.ready_count()
        h.signal(signal.SIGHUP)
        h.wait_ready(n + 1, timeout=30)
        check("reload to generation 2 ok" in h.last_status(), h.last_status())
        out, err = flooder.communicate(timeout=60)
        check(flooder.returncode == 0 and int(out.split()[-1]) < 10000000, f"the flood ended with generation 1: {out} {err}")
        # And after it.
        still_serving(h, 3)
        res = load.stop()
        check(res["failed"] == 0, f"failed requests during the flood: {res}")
        check(h.stop() == 0, h.log()[-3000:])
    finally:
        if load.proc.poll() is None:
            load.proc.kill()
        h.close()


# Sends argv[2] datagrams to the socket argv[1] (its address in hex) as fast as the
# receiver takes them (blocking), a mix of valid and malformed ones; prints
# how many went out. Stops early when the socket goes away.
FLOODER = r'''
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
addr, n = bytes.fromhex(sys.argv[1]).decode(), int(sys.argv[2])
kinds = [b"READY=1", b"WATCHDOG=1", b"STATUS=flood", b"garbage", b"READY=1\0x", b"X=" + b"y" * 5000]
sent = 0
try:
    for i in range(n):
        if i == 1000:
            print("flooding", flush=True)
        s.sendto(kinds[i % len(kinds)], addr)
        sent += 1
except OSError as e:
    print(sent)
    print(e, file=sys.stderr)
    sys.exit(0)
print(sent)
'''


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_")]
    if MODE != "supervise":
        tests = [t for t in tests if t.__name__.startswith("test_notify_")]
    run([showing_logs(t) for t in tests])
