#!/usr/bin/python3
"""Start, serve, stop: sockets handoff opens, what a generation inherits,
and the exit codes handoff reports."""

import os
import signal
import socket
import subprocess

from handofftest.handoff import FIXTURE, HANDOFF, Handoff, fixture_cmd, status_json
from handofftest.net import free_port, http_get
from handofftest.notify import FakeSystemd
from handofftest.runner import run
from handofftest.wait import check


def test_serves_on_tcp_and_unix_with_names(tmp):
    port = free_port()
    path = os.path.join(tmp, "web.sock")
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}=public", "-l", f"unix:{path}=admin"], fixture_cmd())
    try:
        h.wait_log("is ready")
        status, body, pid = http_get(port)
        check(status == 200, f"status {status}")
        check(pid in h.descendants(), f"pid {pid} is not handoff's generation {h.descendants()}")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            check(b"pid=%d" % pid in s.recv(4096), "unix socket served by the same generation")
        # The fixture saw fds and names in order (it logs them just after
        # its READY=1, so the line may come after handoff's "is ready").
        h.wait_log("fds=2 names=public,admin")
        check(h.stop() == 0, "clean stop exits 0")
        check(not os.path.exists(path), "unix socket handoff created is removed at final stop")
        check(not h.descendants(), f"no process left: {h.descendants()}")
    finally:
        h.kill_all()


def test_generation_environment(tmp):
    """LISTEN_PID is the child's own pid, fds sit at 3..3+N-1 with nothing
    else open, manager variables are scrubbed, HANDOFF_GENERATION is set."""
    port = free_port()
    out = os.path.join(tmp, "env")
    script = (f'ls /proc/$$/fd > {out}.fds; env > {out}.env; echo $$ > {out}.pid; '
              f'exec {FIXTURE}')
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "-l", f"udp:127.0.0.1:{port}=dns"], ["/bin/sh", "-c", script],
                env={"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1", "SYSTEMD_EXEC_PID": "1", "FDSTORE": "1", "KEEP_ME": "yes",
                     "LISTEN_PIDFDID": "5"})
    try:
        h.wait_log("is ready")
        env = dict(l.split("=", 1) for l in open(out + ".env").read().splitlines() if "=" in l)
        pid = int(open(out + ".pid").read())
        check(env["LISTEN_PID"] == str(pid), f"LISTEN_PID {env['LISTEN_PID']} != child pid {pid}")
        check(env["LISTEN_FDS"] == "2", env["LISTEN_FDS"])
        check(env["LISTEN_FDNAMES"] == "unknown:dns", env["LISTEN_FDNAMES"])
        # A path socket by default (--notify-socket=auto) where a runtime
        # directory exists: /run/handoff for root, $XDG_RUNTIME_DIR/handoff.
        runtime = "/run/handoff" if os.geteuid() == 0 else os.environ.get("XDG_RUNTIME_DIR", "") + "/handoff"
        want = f"{runtime}/notify.{h.pid}/1" if runtime != "/handoff" else "@handoff/"
        check(env["NOTIFY_SOCKET"].startswith(want), f"NOTIFY_SOCKET={env['NOTIFY_SOCKET']}, expected {want}")
        check(env["HANDOFF_GENERATION"] == "1", env.get("HANDOFF_GENERATION"))
        check(env["KEEP_ME"] == "yes", "ordinary variables are kept")
        for k in ("WATCHDOG_USEC", "WATCHDOG_PID", "SYSTEMD_EXEC_PID", "FDSTORE", "LISTEN_PIDFDID"):
            check(k not in env, f"{k} leaked into the generation")
        fds = sorted(int(x) for x in open(out + ".fds").read().split())
        # ls itself opens one directory fd while listing.
        check(fds[:5] == [0, 1, 2, 3, 4] and len(fds) <= 6, f"fds in the child: {fds}")
        check(h.stop() == 0, "clean stop")
    finally:
        h.kill_all()


def test_watchdog_passed_on_with_child_pid(tmp):
    """systemd's watchdog for handoff becomes the generation's, with
    WATCHDOG_PID naming the generation (its pings are relayed)."""
    port = free_port()
    out = os.path.join(tmp, "env")
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}"], ["/bin/sh", "-c", f"env > {out}; echo $$ > {out}.pid; exec {FIXTURE}"],
                env={"WATCHDOG_USEC": "30000000"})
    try:
        h.wait_log("is ready")
        env = dict(l.split("=", 1) for l in open(out).read().splitlines() if "=" in l)
        check(env.get("WATCHDOG_USEC") == "30000000", env.get("WATCHDOG_USEC"))
        check(env.get("WATCHDOG_PID") == open(out + ".pid").read().strip(), env.get("WATCHDOG_PID"))
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()


def test_no_sockets_is_a_usage_error(tmp):
    p = subprocess.run([HANDOFF, "--", "true"], capture_output=True, text=True, timeout=10)
    check(p.returncode == 2, f"exit {p.returncode}")
    check("--listen" in p.stderr and "socket" in p.stderr, p.stderr)


def test_usage_errors(tmp):
    port = free_port()
    cases = [
        (["-l", f"127.0.0.1:{port}", "true"], "expected \"--\""),
        (["-l", f"127.0.0.1:{port}", "--"], "no command"),
        (["--drain-timeout", "5x", "-l", f"127.0.0.1:{port}", "--", "true"], "invalid duration"),
        (["--bogus", "--", "true"], "unrecognized option"),
        (["-l", "127.0.0.1:99999", "--", "true"], "port must be"),
        (["-l", "unix:" + "/x" * 60, "--", "true"], "too long"),
        (["--stop-signal", "NOPE", "-l", f"127.0.0.1:{port}", "--", "true"], "stop-signal"),
        (["-l", "no.such.host.invalid:80", "--", "true"], "resolve"),
        (["--working-directory=srv/app", "-l", f"127.0.0.1:{port}", "--", "true"], "an absolute path, without"),
    ]
    for args, msg in cases:
        p = subprocess.run([HANDOFF, *args], capture_output=True, text=True, timeout=10)
        check(p.returncode == 2, f"{args}: exit {p.returncode}, stderr {p.stderr}")
        check(msg in p.stderr, f"{args}: {msg!r} not in {p.stderr!r}")


def test_port_in_use(tmp):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run([HANDOFF, "-l", f"127.0.0.1:{port}", "--", "true"], capture_output=True, text=True,
                           timeout=10)
    check(p.returncode == 2, f"exit {p.returncode}")
    check("Address already in use" in p.stderr, p.stderr)


def test_command_not_found_or_not_executable(tmp):
    port = free_port()
    p = subprocess.run([HANDOFF, "-l", f"127.0.0.1:{port}", "--", "no-such-command-xyz"], capture_output=True,
                       text=True, timeout=10)
    check(p.returncode == 127, f"exit {p.returncode}: {p.stderr}")
    check("no-such-command-xyz" in p.stderr and "No such file" in p.stderr, p.stderr)
    noexec = os.path.join(tmp, "noexec")
    open(noexec, "w").close()
    p = subprocess.run([HANDOFF, "-l", f"127.0.0.1:{port}", "--", noexec], capture_output=True, text=True,
                       timeout=10)
    check(p.returncode == 126, f"exit {p.returncode}: {p.stderr}")


def test_working_directory_missing(tmp):
    """The first generation cannot change to --working-directory: exit
    status 200, systemd's EXIT_CHDIR, and the log names the directory."""
    port = free_port()
    gone = os.path.join(tmp, "no-such-release")
    p = subprocess.run([HANDOFF, "-l", f"127.0.0.1:{port}", f"--working-directory={gone}", "--", "true"],
                       capture_output=True, text=True, timeout=10)
    check(p.returncode == 200, f"exit {p.returncode}: {p.stderr}")
    check(f"cannot change to working directory {gone}: No such file or directory" in p.stderr, p.stderr)


def test_first_generation_fails(tmp):
    port = free_port()
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}"], fixture_cmd(None, "--fail-at-start"), notify=fake)
    try:
        check(h.wait_exit() == 3, "handoff exits with the failed generation's status")
        check("failed to start: exited with status 3" in h.log(), h.log())
        check(fake.count("READY") == 0, "never READY when nothing became ready")
    finally:
        h.kill_all()
        fake.close()


def test_first_generation_hangs(tmp):
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--start-timeout", "500ms"], fixture_cmd(None, "--hang-at-start"))
    try:
        check(h.wait_exit() == 1, "timeout exits 1")
        check("did not become ready within 500ms" in h.log(), h.log())
        check(not h.descendants(), "the hung generation is gone too")
    finally:
        h.kill_all()


def test_serving_generation_crash_passes_status(tmp):
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}"], fixture_cmd(None, "--exit-after", "300"))
    try:
        check(h.wait_exit() == 7, "exit status of the generation that died on its own")
        check("Serving generation 1" in h.log() and "exited with status 7" in h.log(), h.log())
    finally:
        h.kill_all()


def test_forwarded_signal_and_signal_exit_code(tmp):
    """USR1 is forwarded; the fixture does not handle it, so it dies of it
    and handoff reports 128+SIGUSR1, as a shell would."""
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}"], fixture_cmd())
    try:
        h.wait_log("is ready")
        h.signal(signal.SIGUSR1)
        check(h.wait_exit() == 128 + signal.SIGUSR1, h.log())
        check("killed by signal SIGUSR1" in h.log(), h.log())
    finally:
        h.kill_all()


def test_drain_timeout_kills_stubborn_generation(tmp):
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--drain-timeout", "300ms"], fixture_cmd(None, "--ignore-sigterm"))
    try:
        h.wait_log("is ready")
        check(h.stop() == 128 + 9, "a generation that needed SIGKILL is not a clean exit")
        check("did not exit in time; sending SIGKILL" in h.log(), h.log())
        check(not h.descendants(), "nothing left")
    finally:
        h.kill_all()


def test_stop_signal_option(tmp):
    port = free_port()
    """The stop signal is the one given; dying of it is a clean stop."""
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--stop-signal", "SIGKILL"], fixture_cmd())
    try:
        h.wait_log("is ready")
        check(h.stop() == 0, h.log())
        check("Generation 1" in h.log() and "killed by signal SIGKILL" in h.log(), h.log())
    finally:
        h.kill_all()


def test_ready_by_delay(tmp):
    port = free_port()
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--ready=delay:300ms"], fixture_cmd(None, "--no-notify"),
                notify=fake)
    try:
        h.wait_ready(1)
        check(http_get(port)[0] == 200, "serving")
        h.signal(signal.SIGHUP)
        h.wait_ready(2)
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()
        fake.close()


def test_journal_level_prefixes(tmp):
    """With stderr connected to the journal (JOURNAL_STREAM names it), every
    line carries an sd-daemon <N> priority; otherwise none does."""
    port = free_port()
    logpath = os.path.join(tmp, "journal.log")
    open(logpath, "w").close()
    st = os.stat(logpath)
    with open(logpath, "a") as log:
        env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        p = subprocess.Popen([HANDOFF, "-l", f"127.0.0.1:{port}", "--", "no-such-command-xyz"], stderr=log, env=env)
        check(p.wait(timeout=10) == 127, "command not found")
    lines = [l for l in open(logpath).read().splitlines() if l]
    check(lines and all(l.startswith(("<6>handoff[", "<3>handoff[")) for l in lines), lines)
    check(any(l.startswith("<3>") and "No such file" in l for l in lines), "the error at LOG_ERR")
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}"], ["no-such-command-xyz"], env={"JOURNAL_STREAM": "1:2"})
    h.wait_exit()
    check(all(l.startswith("handoff[") for l in h.log().splitlines() if l), "plain when it is not the journal")


def test_a_clean_exit_of_the_serving_generation_is_no_error(tmp):
    """The service ends when its serving generation exits on its own; that
    is logged at LOG_ERR when it failed, at LOG_NOTICE when it exited 0."""
    for code, level in ((0, "<5>"), (3, "<3>")):
        port = free_port()
        logpath = os.path.join(tmp, f"journal.{code}.log")
        open(logpath, "w").close()
        st = os.stat(logpath)
        # sh is the main; the server, its child, says READY=1 (heard with
        # --notify-access=all) and exits by itself.
        cmd = ["/bin/sh", "-c", f"{FIXTURE} --any-listen-pid --exit-after 200; exit {code}"]
        with open(logpath, "a") as log:
            p = subprocess.Popen([HANDOFF, "-l", f"127.0.0.1:{port}", "--notify-access=all", "--", *cmd], stderr=log,
                                 env=dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"))
            check(p.wait(timeout=20) == code, f"handoff exits with the generation's status {code}")
        lines = [l for l in open(logpath).read().splitlines() if "Serving generation 1" in l]
        check(len(lines) == 1 and lines[0].startswith(level) and f"exited with status {code}" in lines[0],
              f"exit {code} at {level}: {open(logpath).read()}")


def test_notify_socket_it_cannot_use_is_named(tmp):
    """NOTIFY_SOCKET of a kind handoff cannot send to (vsock:, as systemd
    253 and later set it in VMs) is said in a warning; handoff serves as
    without a manager (supervise mode) instead of staying silent."""
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}"], [FIXTURE], env={"NOTIFY_SOCKET": "vsock:2:1234"})
    try:
        h.wait_log("NOTIFY_SOCKET=vsock:2:1234 is no address handoff can send to", 10)
        # Ready: the control socket is set up after the first spawn.
        h.wait_log_re(r"Generation 1 \(.*\) is ready after ", 10)
        # Asked, not read from the log: the mode is said there only with -v.
        mode = status_json(h.pid)["mode"]
        check(mode == "supervise", f"mode {mode}; log:\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()


def test_auto_mode_in_a_container(tmp):
    """--mode=auto: handover only where MAINPID= names what the manager
    sees. In a container whose manager relays sd_notify from outside (podman
    --sdnotify=container sets container=; its init, catatonit, ends the
    container when handoff exits) a reload keeps this process; where systemd
    says our pid in SYSTEMD_EXEC_PID, it is handover, container or not."""
    cases = [({"container": "podman"}, (), "supervise"),
             ({"container": "podman"}, ["/bin/sh", "-c", 'SYSTEMD_EXEC_PID=$$ exec "$@"', "sh"], "handover"),
             ({"SYSTEMD_EXEC_PID": "1"}, (), "supervise"),
             ({}, (), "handover")]
    for i, (env, wrapper, mode) in enumerate(cases):
        port = free_port()
        d = os.path.join(tmp, str(i))
        os.mkdir(d)
        notify = FakeSystemd(d)
        h = Handoff(d, ["-l", f"127.0.0.1:{port}", "-v"], [FIXTURE, "--init-delay", "0"], notify=notify, env=env,
                    wrapper=wrapper)
        try:
            h.wait_ready(1)
            check(f"Reload mode: {mode}." in h.log(), f"{env} {wrapper}: {mode} expected; log:\n{h.log()}")
            if mode == "supervise" and env.get("container"):
                check("does not see this process's pid (in a container)" in h.log(), h.log())
            h.signal(signal.SIGHUP)
            h.wait_ready(2, timeout=20)
            moved = any("MAINPID" in m.fields for m in notify.snapshot())
            check(moved == (mode == "handover"), f"{env}: MAINPID= sent: {moved}; log:\n{h.log()}")
            check(h.stop() == 0, h.log())
        finally:
            h.kill_all()


def test_help_and_version(tmp):
    p = subprocess.run([HANDOFF, "--help"], capture_output=True, text=True, timeout=10)
    check(p.returncode == 0 and "--listen" in p.stdout and "--drain-timeout" in p.stdout, p.stdout)
    p = subprocess.run([HANDOFF, "--version"], capture_output=True, text=True, timeout=10)
    check(p.returncode == 0 and p.stdout.startswith("handoff "), p.stdout)


if __name__ == "__main__":
    run([v for k, v in sorted(globals().items()) if k.startswith("test_")])
