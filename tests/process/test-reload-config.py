#!/usr/bin/python3
"""A reload that brings a new command line (`handoffctl reload -- OPTIONS --
COMMAND`, what the template unit's ExecReload= sends with the unit's
current environment; `handoff reload` alike), in the mode HANDOFF_TEST_MODE names: the candidate
runs the new command with the new options, they stay in effect for later
reloads (SIGHUP too), each generation stops the way its own command line
says, and a bad new command line fails the reload with a reason while the
old generation serves on."""

import os
import re
import signal
import socket
import subprocess

from handofftest.handoff import FIXTURE, HANDOFF, HANDOFFCTL, MODE, Handoff
from handofftest.net import free_port, serving_pid
from handofftest.procs import environ_of
from handofftest.notify import FakeSystemd
from handofftest.runner import run
from handofftest.wait import check, wait_for


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[:-1]


class Service:
    """handoff started as a unit would start it: OPTIONS -- COMMAND."""

    def __init__(self, tmp, options, command, env=None):
        self.port = free_port()
        self.fixed = ["-l", f"127.0.0.1:{self.port}", f"--mode={MODE}"]
        self.h = Handoff(tmp, [*self.fixed, *options], command, notify=FakeSystemd(tmp), env=env)
        self.h.wait_ready(1)

    def reload(self, options, command, fixed=None, client=HANDOFFCTL):
        """What ExecReload= runs: handoffctl reload -- OPTIONS -- COMMAND."""
        args = [client, "reload", f"--pid={self.h.main_pid()}", "--",
                *(self.fixed if fixed is None else fixed), *options, "--", *command]
        return subprocess.run(args, capture_output=True, text=True, timeout=60)

    def serving(self, number, timeout=10):
        """The pid that generation number serves with, once it answers."""
        pid = self.h.generation_pid(number)
        wait_for(lambda: serving_pid(self.port) == pid, timeout, f"generation {number} (pid {pid}) answers")
        return pid


def test_new_command_line_serves_and_stays(tmp):
    s = Service(tmp, ["--drain-timeout=20s"], [FIXTURE, "--status=one"])
    h = s.h
    try:
        check(b"--status=one" in cmdline(s.serving(1)), "generation 1 runs the first command")
        p = s.reload(["--drain-timeout=20s"], [FIXTURE, "--status=two"])
        check(p.returncode == 0, f"reload with a new command line: exit {p.returncode}: {p.stderr}")
        check(p.stdout.startswith("reloaded: generation 2"), p.stdout)
        h.wait_ready(2)
        check(cmdline(s.serving(2))[1:] == [b"--status=two"], f"generation 2 runs the new command: "
                                                                f"{cmdline(h.generation_pid(2))}")
        if MODE == "handover":
            # The next handoff itself was started with the new command line,
            # not the standby, whose /proc/PID/cmdline would show the old one.
            check(cmdline(h.main_pid())[-2:] == [FIXTURE.encode(), b"--status=two"],
                  f"the next handoff's own argv: {cmdline(h.main_pid())}")
            check("): the reload brings a new command line." in h.log(), h.log())
        # A later reload, even by signal, starts the adopted command again.
        h.signal(signal.SIGHUP)
        h.wait_ready(3)
        check(cmdline(s.serving(3))[1:] == [b"--status=two"], "generation 3 (SIGHUP) runs the adopted command")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_each_generation_stops_as_its_command_line_says(tmp):
    s = Service(tmp, [], [FIXTURE])
    h = s.h
    try:
        first = s.serving(1)
        p = s.reload(["--stop-signal=INT"], [FIXTURE, "--grace-ms=50"], client=HANDOFF)
        check(p.returncode == 0, f"exit {p.returncode}: {p.stderr}")
        second = s.serving(2)
        # Generation 1 was started under the old options: SIGTERM.
        h.wait_log(f"pid={first} got Terminated", 15)
        h.signal(signal.SIGHUP)
        h.wait_ready(3)
        # Generation 2 under the new ones: SIGINT.
        h.wait_log(f"pid={second} got Interrupt", 15)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_new_working_directory(tmp):
    """--working-directory belongs to a generation: a reload's new command
    line may set it, and later reloads keep it."""
    where = os.path.join(tmp, "srv")
    os.mkdir(where)
    s = Service(tmp, [], [FIXTURE])
    h = s.h
    try:
        check(os.readlink(f"/proc/{s.serving(1)}/cwd") == os.getcwd(), "generation 1 runs in handoff's own")
        p = s.reload([f"--working-directory={where}"], [FIXTURE])
        check(p.returncode == 0, f"exit {p.returncode}: {p.stderr}")
        check(os.readlink(f"/proc/{s.serving(2)}/cwd") == os.path.realpath(where), "generation 2 runs in it")
        h.signal(signal.SIGHUP)
        h.wait_ready(3)
        check(os.readlink(f"/proc/{s.serving(3)}/cwd") == os.path.realpath(where), "generation 3 too")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def picked(env, *names):
    return {k: env[k] for k in names if k in env}


NAMES = ("A", "REMOVED", "ADDED", "UNIT_ONLY", "HANDOFF_ENVIRONMENT_KEYS")


def test_environment_file_read_at_each_start(tmp):
    """--environment-file is read at each generation's start: a changed
    variable changes, a removed one goes, a new one comes, and one that the
    file never named stays as handoff got it. handoff is started as
    systemd starts the template unit: its environment already has the
    file's variables. In handover mode the third generation is started by
    the second next handoff, which must still know what the file named at
    the first read. A reload that drops the option gives the fourth
    handoff's environment as it is."""
    conf = os.path.join(tmp, "app.conf")
    with open(conf, "w") as f:
        f.write("A=1\nREMOVED=x\n")
    s = Service(tmp, [f"--environment-file={conf}"], [FIXTURE],
                env={"A": "1", "REMOVED": "x", "UNIT_ONLY": "u"})
    h = s.h
    try:
        first = environ_of(s.serving(1))
        check(picked(first, *NAMES) == {"A": "1", "REMOVED": "x", "UNIT_ONLY": "u"}, f"generation 1: {first}")

        with open(conf, "w") as f:
            f.write("# edited\nA=2\nADDED=\"two words\"\n")
        h.signal(signal.SIGHUP)
        h.wait_ready(2)
        second = environ_of(s.serving(2))
        check(picked(second, *NAMES) == {"A": "2", "ADDED": "two words", "UNIT_ONLY": "u"},
              f"generation 2: {picked(second, *NAMES)}")

        with open(conf, "w") as f:
            f.write("ADDED=3\n")
        p = s.reload([f"--environment-file={conf}"], [FIXTURE])
        check(p.returncode == 0, f"exit {p.returncode}: {p.stderr}")
        third = environ_of(s.serving(3))
        check(picked(third, *NAMES) == {"ADDED": "3", "UNIT_ONLY": "u"}, f"generation 3: {picked(third, *NAMES)}")
        # A reload without the option: handoff's whole environment again.
        p = s.reload([], [FIXTURE])
        check(p.returncode == 0, f"exit {p.returncode}: {p.stderr}")
        fourth = environ_of(s.serving(4))
        check(picked(fourth, *NAMES) == {"A": "1", "REMOVED": "x", "UNIT_ONLY": "u"},
              f"generation 4: {picked(fourth, *NAMES)}")
        # handoff's own environment is the one it was started with.
        check(picked(environ_of(h.main_pid()), "A", "REMOVED") == {"A": "1", "REMOVED": "x"},
              f"handoff's own: {picked(environ_of(h.main_pid()), *NAMES)}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_environment_file_that_cannot_be_read_fails_the_reload(tmp):
    """An environment file that cannot be read fails the reload, with the
    file and why, and the old generation serves on with its environment; a
    reload that adds the option, or an optional file that is missing,
    starts."""
    conf = os.path.join(tmp, "app.conf")
    with open(conf, "w") as f:
        f.write("A=2\n")
    s = Service(tmp, [], [FIXTURE], env={"A": "1"})
    h = s.h
    try:
        first = s.serving(1)
        p = s.reload([f"--environment-file={conf}"], [FIXTURE])
        check(p.returncode == 0, f"exit {p.returncode}: {p.stderr}")
        second = s.serving(2)
        check(environ_of(second)["A"] == "2", "a reload that adds --environment-file")
        h.wait_log("Retired generation 1 ")

        with open(conf, "wb") as f:
            f.write(b"A=3\nB=\xc3\n")
        h.signal(signal.SIGHUP)
        h.wait_log(f"Cannot start generation 3: environment file {conf}:2 is not valid UTF-8.")
        check(serving_pid(s.port) == second, "generation 2 serves on")

        # A NUL, which systemd refuses too (read_full_file()).
        with open(conf, "wb") as f:
            f.write(b"A=3\n\0B=4\n")
        h.signal(signal.SIGHUP)
        h.wait_log(f"Cannot start generation 4: environment file {conf}:2 holds a NUL byte.")
        check(serving_pid(s.port) == second, "generation 2 serves on")

        gone = os.path.join(tmp, "gone.conf")
        p = s.reload([f"--environment-file={gone}"], [FIXTURE])
        check(p.returncode == 1 and "failed" in p.stderr, f"a missing file: {p.returncode} {p.stderr}")
        check(f"cannot read environment file {gone}: No such file or directory" in h.log(), h.log())
        check(serving_pid(s.port) == second, "generation 2 serves on")

        # Optional and missing: nothing from it. A= is still left out of
        # handoff's own: a file named it at the first read.
        p = s.reload([f"--environment-file=-{gone}"], [FIXTURE])
        check(p.returncode == 0, f"exit {p.returncode}: {p.stderr}")
        check("A" not in environ_of(s.serving(6)), "an optional missing file adds nothing")
        check(first != second and h.stop() == 0, h.log())
    finally:
        h.close()


def test_bad_new_command_lines_fail_and_old_serves(tmp):
    s = Service(tmp, [], [FIXTURE, "--status=one"])
    h = s.h
    try:
        first = s.serving(1)

        # A typo is caught by the client: exit 2, nothing asked of handoff.
        p = s.reload(["--drain-timout=5s"], [FIXTURE])
        check(p.returncode == 2 and p.stderr.startswith("handoffctl: ") and "drain-timout" in p.stderr,
              f"unknown option: {p.returncode} {p.stderr}")
        p = subprocess.run([HANDOFF, "reload", f"--pid={h.main_pid()}", "--"], capture_output=True, text=True,
                           timeout=10)
        check(p.returncode == 2 and "nothing after" in p.stderr, f"empty command line: {p.returncode} {p.stderr}")
        # --help or --version in it: no reload, and no success to tell
        # ExecReload= (before: exit 0); nothing printed on stdout.
        for opt in ("--help", "--version"):
            p = s.reload([opt], [FIXTURE])
            check(p.returncode == 2 and "nothing was reloaded" in p.stderr, f"{opt}: {p.returncode} {p.stderr}")

        # What only a restart can change fails the reload and says which option.
        other = free_port()
        p = s.reload([], [FIXTURE], fixed=["-l", f"127.0.0.1:{other}", f"--mode={MODE}"])
        check(p.returncode == 1 and "changes --listen" in p.stderr and "restart" in p.stderr,
              f"a new --listen: {p.returncode} {p.stderr}")
        p = s.reload(["--cgroup=no"], [FIXTURE])
        check(p.returncode == 1 and "changes --cgroup" in p.stderr, f"a new --cgroup: {p.returncode} {p.stderr}")
        check(h.ready_count() == 1, "no reload was started for a refused command line")

        # A command that cannot start: a failed reload, the old generation serves on.
        p = s.reload([], ["/nonexistent/server"])
        check(p.returncode == 1 and "failed" in p.stderr, f"a command that cannot start: {p.returncode} {p.stderr}")
        check(serving_pid(s.port) == first, "generation 1 still serves")
        check(h.main_pid() == h.mains()[0], "handoff main unchanged")

        # The failed command line was not adopted: SIGHUP starts the old one.
        h.signal(signal.SIGHUP)
        h.wait_ready(2)
        check(cmdline(s.serving(3))[1:] == [b"--status=one"],
              f"the next reload runs the serving command line:\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


# A generation that leaves its sockets' flags as they are (the fixture
# server sets O_NONBLOCK itself) and exits 0 on SIGTERM.
WAITER = ["python3", "-c", "import signal; signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM]); "
          "signal.sigwait([signal.SIGTERM])"]


def nonblocking(pid, fd=3):
    """Whether fd of pid has O_NONBLOCK (the octal flags: of /proc/PID/fdinfo/FD)."""
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        flags = int(re.search(r"^flags:\s*([0-7]+)$", f.read(), re.M).group(1), 8)
    return bool(flags & os.O_NONBLOCK)


def test_non_blocking_sets_the_flag_of_listen_sockets(tmp):
    """--non-blocking=yes: each generation's fd 3, the --listen socket, has
    O_NONBLOCK, after reloads too (by signal and by a new command line);
    without it (or =no), it has not. A new command line that changes it
    is refused: the flag is the socket's, shared with the serving
    generation."""
    for opts, want in ((["--non-blocking=yes"], True), ([], False), (["--non-blocking=no"], False)):
        options = ["--ready=delay:100ms", *opts]
        s = Service(tmp, options, WAITER)
        h = s.h
        try:
            check(nonblocking(h.generation_pid(1)) == want, f"{opts}: generation 1's fd 3; log:\n{h.log()}")
            h.signal(signal.SIGHUP)
            h.wait_ready(2)
            check(nonblocking(h.generation_pid(2)) == want, f"{opts}: generation 2's fd 3 (SIGHUP)")
            p = s.reload(options, WAITER)
            check(p.returncode == 0, f"{opts}: reload with the same command line: {p.returncode} {p.stderr}")
            h.wait_ready(3)
            check(nonblocking(h.generation_pid(3)) == want, f"{opts}: generation 3's fd 3 (a command line)")
            other = "--non-blocking=no" if want else "--non-blocking=yes"
            p = s.reload(["--ready=delay:100ms", other], WAITER)
            check(p.returncode == 1 and "changes --non-blocking" in p.stderr and "restart" in p.stderr,
                  f"{opts}: {other} at a reload: {p.returncode} {p.stderr}")
            check(nonblocking(h.generation_pid(3)) == want, f"{opts}: the refused reload changed nothing")
            check(h.ready_count() == 3, "no reload was started for a refused command line")
            check(h.stop() == 0, h.log())
        finally:
            h.close()


def test_candidate_of_a_new_command_line_exiting_rolls_back(tmp):
    """The candidate runs the new command line and exits before it is ready:
    the rollback frees that command line while handoff still handles the
    exit (under AddressSanitizer a use after free, found by a reviewer)."""
    s = Service(tmp, [], [FIXTURE, "--status=one"])
    h = s.h
    try:
        first = s.serving(1)
        p = s.reload(["--drain-timeout=7s"], [FIXTURE, "--fail-at-start"])
        check(p.returncode == 1 and "failed" in p.stderr, f"a candidate that exits: {p.returncode} {p.stderr}")
        check(serving_pid(s.port) == first, "generation 1 still serves")
        check(h.main_pid() == h.mains()[0], "handoff main unchanged")
        h.signal(signal.SIGHUP)
        h.wait_ready(2)
        check(cmdline(s.serving(3))[1:] == [b"--status=one"], f"the next reload runs the old command line:\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_socket_file_replaced_meanwhile_is_not_removed(tmp):
    """A --listen unix socket file removed, and the path bound by someone
    else, before a reload: the reload warns that clients there no longer
    reach the service (before: nothing said, in supervise mode until the
    stop), and the final stop leaves that file alone (before: it removed
    the other's socket file, which its server could never get back); the
    file handoff made is removed as before."""
    path, kept = os.path.join(tmp, "app.sock"), os.path.join(tmp, "kept.sock")
    unix = ["-l", f"unix:{path}", "-l", f"unix:{kept}"]
    s = Service(tmp, unix, [FIXTURE])
    h = s.h
    other = socket.socket(socket.AF_UNIX)
    try:
        os.unlink(path)
        other.bind(path)
        other.listen()
        p = s.reload(unix, [FIXTURE])
        check(p.returncode == 0, f"exit {p.returncode}: {p.stderr}")
        check(f"{path} is no longer the file of handoff's socket (removed or replaced since): clients there do "
              "not reach the service until handoff binds the path anew" in h.log(), f"the reload says so:\n{h.log()}")
        check(h.stop() == 0, h.log())
        check(os.path.exists(path), f"the other socket's file is still there; log:\n{h.log()}")
        check(h.log().count(f"{path} is no longer") == 1, f"said once:\n{h.log()}")
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        client.close()
        check(not os.path.exists(kept), f"handoff's own socket file is removed at the final stop; log:\n{h.log()}")
    finally:
        other.close()
        h.close()


if __name__ == "__main__":
    run([test_new_command_line_serves_and_stays, test_each_generation_stops_as_its_command_line_says,
         test_new_working_directory, test_environment_file_read_at_each_start,
         test_environment_file_that_cannot_be_read_fails_the_reload,
         test_bad_new_command_lines_fail_and_old_serves, test_candidate_of_a_new_command_line_exiting_rolls_back,
         test_socket_file_replaced_meanwhile_is_not_removed, test_non_blocking_sets_the_flag_of_listen_sockets])
