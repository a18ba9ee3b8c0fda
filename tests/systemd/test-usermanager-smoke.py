#!/usr/bin/python3
"""Smoke test: a private systemd --user manager can run socket-activated
Type=notify services on this machine, and the harness cleans up after itself.

Exit status: 0 ok, 1 failure, 77 skipped (not root / no systemd / no cgroups).
"""

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from handofftest import usermanager  # noqa: E402
from handofftest.net import free_port, tcp_request  # noqa: E402
from handofftest.procs import pid_alive  # noqa: E402
from handofftest.runner import Skip  # noqa: E402
from handofftest.usermanager import UserManager, run_tests  # noqa: E402

# Tiny socket-activated server: fd 3 from LISTEN_FDS, sd_notify by hand.
HELLO_SERVER = r'''
import os, socket, sys

def notify(msg):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(msg.encode())

if os.environ.get("LISTEN_PID") != str(os.getpid()) or \
        int(os.environ.get("LISTEN_FDS", "0")) < 1:
    sys.exit("not socket activated: LISTEN_PID=%r LISTEN_FDS=%r"
             % (os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")))
lsock = socket.socket(fileno=3)
word = sys.argv[1] if len(sys.argv) > 1 else "hello"
notify("READY=1\nSTATUS=serving %s on %s" % (word, lsock.getsockname()))
print("ready pid=%d" % os.getpid(), flush=True)
while True:
    conn, _ = lsock.accept()
    with conn:
        conn.sendall((word + "\n").encode())
'''


def _install_server(um):
    return um.write_file("hello-server.py", HELLO_SERVER, 0o755)


def test_manager_starts(um):
    assert um.systemctl("is-system-running", check=False).stdout.strip() in (
        "running", "degraded")
    assert pid_alive(um.pid)
    # The manager must live in our private cgroup, not the root one.
    with open("/proc/%d/cgroup" % um.pid) as f:
        cg = f.read()
    assert um.cgroup + "/init.scope" in cg, cg
    # ... and must not have touched PID 1's cgroup.
    with open("/proc/1/cgroup") as f:
        assert "init.scope" not in f.read(), "PID 1 was migrated"


def _check_hello_service(um, service, port, word):
    um.wait_state(service, "active", timeout=10, sub_state="running")
    props = um.show(service, "MainPID", "ActiveState", "SubState",
                    "StatusText", "Type", "ControlGroup")
    assert props["ActiveState"] == "active", props
    assert props["SubState"] == "running", props
    assert props["Type"] == "notify", props
    assert props["StatusText"].startswith("serving " + word), props
    main = int(props["MainPID"])
    assert main > 0 and pid_alive(main), props
    assert props["ControlGroup"].startswith(um.cgroup + "/"), props
    assert main in um.unit_pids(service), (main, um.unit_pids(service))
    return main


def test_socket_activated_notify_service(um):
    server = _install_server(um)
    port = free_port()
    out = um.path("hello.log")
    um.install_unit("hello.socket", """\
[Unit]
Description=handoff smoke socket

[Socket]
ListenStream=127.0.0.1:%d
ReusePort=no
""" % port)
    um.install_unit("hello.service", """\
[Unit]
Description=handoff smoke service

[Service]
Type=notify
ExecStart=/usr/bin/python3 %s hello
StandardOutput=append:%s
StandardError=append:%s
""" % (server, out, out))
    um.systemctl("start", "hello.socket")
    um.wait_state("hello.socket", "active", sub_state="listening")
    # Service is not running until the first connection arrives.
    assert um.state("hello.service")[0] == "inactive"
    reply = um.wait_for(lambda: tcp_request(port, timeout=5), 10,
                        "reply on port %d" % port)
    assert reply == b"hello\n", reply
    main = _check_hello_service(um, "hello.service", port, "hello")
    assert tcp_request(port) == b"hello\n"
    assert um.main_pid("hello.service") == main

    um.systemctl("stop", "hello.service", "hello.socket")
    um.wait_state("hello.service", "inactive")
    um.wait_for(lambda: not pid_alive(main), 5, "pid %d to exit" % main)
    with open(out) as f:
        assert "ready pid=%d" % main in f.read()


def test_systemd_run_socket(um):
    server = _install_server(um)
    port = free_port()
    out = um.path("run.log")
    r = um.systemd_run(
        "--unit=hello-run",
        "--socket-property=ListenStream=127.0.0.1:%d" % port,
        "-p", "Type=notify",
        "-p", "StandardOutput=append:%s" % out,
        "-p", "StandardError=append:%s" % out,
        "/usr/bin/python3", server, "howdy")
    um.wait_state("hello-run.socket", "active", sub_state="listening")
    reply = um.wait_for(lambda: tcp_request(port, timeout=5), 10,
                        "reply on port %d (systemd-run: %s)"
                        % (port, r.stderr.strip()))
    assert reply == b"howdy\n", reply
    main = _check_hello_service(um, "hello-run.service", port, "howdy")
    um.systemctl("stop", "hello-run.service", "hello-run.socket")
    um.wait_for(lambda: not pid_alive(main), 5, "pid %d to exit" % main)


def test_teardown_leaves_nothing():
    """Outside any manager: start one, leave services running, tear down."""
    um = UserManager()
    with um:
        server = _install_server(um)
        port = free_port()
        um.install_unit("left.socket",
                        "[Socket]\nListenStream=127.0.0.1:%d\n" % port)
        um.install_unit("left.service", "[Service]\nType=notify\n"
                        "ExecStart=/usr/bin/python3 %s left\n" % server)
        um.systemctl("start", "left.socket")
        assert um.wait_for(lambda: tcp_request(port), 10, "left reply") \
            == b"left\n"
        # A stray double-forked daemon that escapes the process tree
        # (KillMode=process so systemd itself leaves it behind on stop).
        um.systemd_run("--unit=stray", "-p", "KillMode=process", "/bin/sh",
                       "-c", "setsid sleep 1000 & sleep 1000")
        um.wait_state("stray.service", "active")
        cg = um.cgroup
        mpid = um.pid
        # python server, 2 sleeps, sh, ...: the shell forks its sleeps
        # after the unit is active, so wait for them.
        def all_started():
            pids = um.leftover_pids()
            return pids if len(pids) >= 4 else None
        pids = um.wait_for(all_started, 10, "the server, the shell and its two sleeps")
    # Everything gone: manager, services, strays, cgroup dirs, temp dir.
    assert not pid_alive(mpid), "manager %d still alive" % mpid
    alive = [p for p in pids if pid_alive(p)]
    assert not alive, "leftover processes: %s" % alive
    for h in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified",
              "/sys/fs/cgroup"):
        assert not os.path.exists(h + cg), "cgroup %s%s left" % (h, cg)
    assert not os.path.exists(um.tmpdir), um.tmpdir
    try:
        tcp_request(port, timeout=1)
    except OSError:
        pass
    else:
        raise AssertionError("port %d still answers" % port)


def test_teardown_on_failure():
    """__exit__ must clean up when the test body raises."""
    um = UserManager()
    try:
        with um:
            um.systemd_run("--unit=doomed", "/bin/sleep", "1000")
            um.wait_state("doomed.service", "active")
            pids = um.leftover_pids()
            raise ValueError("deliberate")
    except ValueError:
        pass
    alive = [p for p in pids | {um.pid} if pid_alive(p)]
    assert not alive, alive
    assert not os.path.exists(um.tmpdir)


# Opens a UserManager(uid) and never closes it; prints its manager's pid
# and cgroup.
HOLDER = r'''
import sys
from handofftest.usermanager import UserManager
um = UserManager(uid=int(sys.argv[1])).__enter__()
print(um.pid, um.cgroup, flush=True)
sys.stdin.read()
'''


def test_leftover_of_a_killed_run_is_reclaimed():
    """A test process killed with SIGKILL while its UserManager(uid=65534)
    runs leaves its tmpfs on /run/user/65534, and the manager in its
    cgroup: the next UserManager(uid=65534) removes them and starts
    (before: it skipped, "/run/user/65534 exists")."""
    rd = "/run/user/65534"
    if os.geteuid() != 0:
        raise Skip("must run as root")
    if os.path.exists(rd):
        raise Skip("%s exists (a session, or another run)" % rd)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "65534"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(
                                  os.path.abspath(__file__)), "..", "lib")))
    try:
        if not select.select([holder.stdout], [], [], 60)[0]:
            raise AssertionError("the holder did not start a manager within 60s")
        line = holder.stdout.readline().split()
        if not line:
            raise Skip("the holder could not start a manager (exit %s)" % holder.wait())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    manager, cgroup = int(line[0]), line[1]
    assert os.path.ismount(rd) and pid_alive(manager), "the leftover: %s mounted, manager %d" % (rd, manager)
    try:
        with UserManager(uid=65534) as um:
            assert um.state("default.target")[0] == "active", um.state("default.target")
            assert not pid_alive(manager), "the leftover manager %d still runs" % manager
            for h in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
                assert not os.path.exists(h + cgroup), "cgroup %s%s left" % (h, cgroup)
    except Skip as e:
        raise AssertionError("the next UserManager skipped: %s" % e)
    assert not os.path.exists(rd), rd


@contextlib.contextmanager
def _forged_leftover(uid, tmpfs=True, marker_owner=0):
    """/run/user/UID as a killed UserManager leaves it, but made here: its
    marker (a process that is gone, a cgroup of UserManager's pattern) in a
    tmpfs of UID's, or, without tmpfs, in the bare directory; the marker
    marker_owner's. Yields (the directory, the marker); unmounted and
    removed after, whatever the test left of it."""
    rd = "/run/user/%d" % uid
    if os.geteuid() != 0:
        raise Skip("must run as root")
    if os.path.exists(rd):
        raise Skip("%s exists (a session?)" % rd)
    marker = os.path.join(rd, UserManager.MARKER)
    os.makedirs(rd, 0o700)
    try:
        if tmpfs:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700,uid=%d" % uid, "tmpfs", rd], check=True)
        with open(marker, "x") as f:
            json.dump({"pid": 1 << 22, "start": 0, "cgroup": "/handoff-um-1-0000"}, f)
        os.chown(marker, marker_owner, marker_owner)
        yield rd, marker
    finally:
        subprocess.run(["umount", rd], capture_output=True)
        with open("/proc/self/mountinfo") as f:
            if os.path.isdir(rd) and " %s " % rd not in f.read():
                for name in os.listdir(rd):
                    os.unlink(os.path.join(rd, name))
                os.rmdir(rd)


def test_a_runtime_dir_not_left_by_us_is_refused():
    """A /run/user/N that is no leftover of a UserManager (a directory with
    a marker but no tmpfs; a tmpfs whose marker its user wrote) is left
    alone: the UserManager skips."""
    uid = 65533
    for tmpfs, owner in ((False, 0), (True, uid)):
        with _forged_leftover(uid, tmpfs, owner) as (rd, marker):
            try:
                with UserManager(uid=uid):
                    raise AssertionError("a UserManager took %s over" % rd)
            except Skip as e:
                assert "exists" in str(e), e
            assert os.path.exists(marker) and os.path.ismount(rd) == tmpfs, "%s is as it was" % rd


def test_a_marker_swapped_after_its_check_is_not_read():
    """The user owns its runtime dir's tmpfs, so it can swap the marker's
    name for something else between a check of it by name and the open:
    for a fifo, which the open as root then waits on for good (a symlink
    would be followed to any file). Simulated at that moment (the check of
    the tmpfs comes between them): reclaiming reads the marker it checked,
    and does not wait (before: it hung until someone wrote to the fifo)."""
    uid = 65532
    real_is_tmpfs_mount = usermanager._is_tmpfs_mount
    hung = []
    with _forged_leftover(uid) as (rd, marker):
        def swap_then_check(path):
            # What the user does: the marker moved aside, a fifo of its own there.
            os.rename(marker, marker + ".moved")
            os.mkfifo(marker, 0o600)
            os.chown(marker, uid, uid)
            return real_is_tmpfs_mount(path)

        def unblock():
            # A writer that comes and goes lets a reader waiting on the fifo
            # on. Its open without blocking fails unless there is a reader:
            # a reclaim that only takes longer than the timer (a loaded
            # machine) is no hang.
            try:
                os.close(os.open(marker, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                return
            hung.append(True)

        timer = threading.Timer(5, unblock)
        try:
            usermanager._is_tmpfs_mount = swap_then_check
            timer.start()
            with contextlib.suppress(Skip):
                UserManager(uid=uid)._reclaim_leftover(rd)
            timer.cancel()
            assert not hung, "reclaiming %s waited on the user's fifo at %s" % (rd, marker)
            assert not os.path.exists(rd), "the leftover %s, its marker read, is not removed" % rd
        finally:
            timer.cancel()
            usermanager._is_tmpfs_mount = real_is_tmpfs_mount


if __name__ == "__main__":
    run_tests([
        test_manager_starts,
        test_socket_activated_notify_service,
        test_systemd_run_socket,
        test_teardown_leaves_nothing,
        test_teardown_on_failure,
        test_leftover_of_a_killed_run_is_reclaimed,
        test_a_runtime_dir_not_left_by_us_is_refused,
        test_a_marker_swapped_after_its_check_is_not_read,
    ])
