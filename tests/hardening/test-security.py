#!/usr/bin/python3
"""Security: a generation's private NOTIFY_SOCKET is by default a path in a
0700 directory that no other uid can reach; with --notify-socket=abstract it
is an abstract socket that anyone in the network namespace can send to, so
handoff drops another uid's datagram unless the generation's own process
sent it (placed by its pid, as systemd places a sender: a server that
switched to another user is heard). The uid tests use the abstract socket,
where that check is what stands in the way. And nothing handoff creates on
disk is world-writable.

The uid tests send as uid 65534 through setpriv(1) and need root (they skip
otherwise). The tests that depend on what a candidate is run in both modes
(meson runs this file once per mode); the others in the supervise pass."""

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess

from handofftest.handoff import FIXTURE, HANDOFF, Handoff, MODE, set_args
from handofftest.net import free_port, serving_pid
from handofftest.notify import FakeSystemd
from handofftest.runner import Skip, run
from handofftest.wait import check, wait_for
from hardening import (NOBODY, PYTHON, Launched, alive, environ_of, notify_socket_of, send_notify, send_notify_as,
                       showing_logs)

SETPRIV = shutil.which("setpriv")


def need_root_and_setpriv():
    if os.getuid() != 0:
        raise Skip("needs root: sends as another uid")
    if not SETPRIV:
        raise Skip("setpriv(1) (util-linux) is not installed")


def start(tmp, *extra):
    """handoff -v in this pass's mode; a generation runs the fixture with the
    arguments in fixture.args behind the command prefix in prefix (empty,
    or setpriv to run it as another user)."""
    port = free_port()
    args_file = os.path.join(tmp, "fixture.args")
    prefix_file = os.path.join(tmp, "prefix")
    set_args(args_file, "--init-delay", "50")
    set_args(prefix_file)
    fake = FakeSystemd(tmp)
    command = ["/bin/sh", "-c", f"exec $(cat {prefix_file}) {FIXTURE} $(cat {args_file})"]
    h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{port}", f"--mode={MODE}", "--start-timeout=30s",
                      "--notify-socket=abstract", *extra], command, notify=fake)
    h.port, h.args_file, h.prefix_file = port, args_file, prefix_file
    h.wait_ready(1)
    return h






def end_reload_by_killing(h, pid, n_ready, number):
    os.kill(pid, signal.SIGKILL)
    h.wait_ready(n_ready + 1, timeout=20)
    check(f"generation {number} failed: killed by signal SIGKILL" in h.last_status(), h.last_status())
    wait_for(lambda: not alive(pid), 10, f"generation {number} gone")


OTHER_UID_LINE = "Dropped notify message on generation {n}'s socket: sender has another uid."


def outsider_ready_is_dropped(h, number, msgs=(b"READY=1",)):
    """Generation number hangs at its start, and an outsider running as uid
    65534 sends it msgs (each a READY=1): each is dropped for its uid, the
    candidate is never committed, and its reload ends when it is killed."""
    set_args(h.args_file, "--hang-at-start")
    n = h.ready_count()
    h.signal(signal.SIGHUP)
    pid = h.generation_pid(number)
    address = notify_socket_of(pid)
    for msg in msgs:
        send_notify_as(NOBODY, address, msg)
    line = OTHER_UID_LINE.format(n=number)
    wait_for(lambda: h.log().count(line) == len(msgs), 10, f"{len(msgs)} x {line!r}:\n{h.log()}")
    check(not re.search(rf"Generation {number} \(.*pid {pid}\) is ready", h.log()), h.log())
    check(h.ready_count() == n, f"no READY=1 to systemd: {h.notify.snapshot()}")
    end_reload_by_killing(h, pid, n, number)


def test_ready_from_another_uid_does_not_commit(tmp):
    """An outsider running as uid 65534 sends READY=1 to a starting
    candidate's socket: dropped for its uid; the candidate is not committed."""
    need_root_and_setpriv()
    h = start(tmp)
    try:
        old = serving_pid(h.port)
        outsider_ready_is_dropped(h, 2, (b"READY=1", b"READY=1\nSTATUS=from nobody"))
        check(serving_pid(h.port) == old, "the old generation serves on")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_main_process_under_another_uid_is_heard(tmp):
    """As systemd places a sender by its pid, whatever its uid: a server that
    switches to another uid before it sends READY=1 is heard, through the
    abstract socket (a path socket's 0700 directory keeps it out), and its
    reload commits. An outsider of that uid is still dropped, also with
    --notify-access=all."""
    need_root_and_setpriv()
    for access in ("main", "all"):
        h = start(tmp, f"--notify-access={access}")
        try:
            old = serving_pid(h.port)
            set_args(h.prefix_file, SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
            set_args(h.args_file, "--init-delay", "50")
            n = h.ready_count()
            h.signal(signal.SIGHUP)
            succ = h.generation_pid(2)
            h.wait_ready(n + 1, timeout=20)
            # READY=1 goes to systemd before the line is logged: wait for it.
            h.wait_log_re(rf"Generation 2 \(.*pid {succ}\) is ready")
            check("reload to generation 2 ok" in h.last_status(), h.last_status())
            check(os.stat(f"/proc/{succ}").st_uid == NOBODY, "it runs as nobody")
            check(OTHER_UID_LINE.format(n=2) not in h.log(), h.log())
            wait_for(lambda: serving_pid(h.port) == succ and not alive(old), 10, "generation 2 serves alone")

            # Generation 3 hangs; an outsider of the same uid says READY=1 for it.
            set_args(h.prefix_file)
            outsider_ready_is_dropped(h, 3)
            check(serving_pid(h.port) == succ, "generation 2 serves on")
            check(h.stop() == 0, h.log())
        finally:
            h.close()


def test_main_process_under_another_uid_and_a_path_socket(tmp):
    """The default path socket sits in a directory only handoff's uid can
    enter: a server that switches users cannot reach it, and the start
    timeout says so and what lets it be heard."""
    need_root_and_setpriv()
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--start-timeout=2s"],
                [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", FIXTURE],
                notify=FakeSystemd(tmp))
    try:
        check(h.wait_exit(timeout=20) == 1, h.log())
        check("did not become ready within 2s; its main process runs as another user, which cannot reach the path "
              "notify socket in handoff's private directory: --notify-socket=abstract lets it be heard." in h.log(),
              h.log())
    finally:
        h.close()


# A worker's READY=1, then BARRIER=1: it exits once handoff has read both.
WORKER = r'''
import array, os, socket
a = os.environ["NOTIFY_SOCKET"]
a = "\0" + a[1:] if a.startswith("@") else a
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1", a)
r, w = os.pipe()
s.sendmsg([b"BARRIER=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))], 0, a)
os.close(w)
os.read(r, 1)
'''


def test_worker_under_another_uid(tmp):
    """A generation whose main never notifies and whose worker, switched
    to uid 65534, says READY=1: with --notify-access=all it is ready (the
    worker is placed by its pid); with main it is not, and the refusal gets
    its notice, naming the option, as a same-uid worker's does."""
    need_root_and_setpriv()
    os.chmod(tmp, 0o755)
    worker = os.path.join(tmp, "worker.py")
    with open(worker, "w") as f:
        f.write(WORKER)
    os.chmod(worker, 0o644)
    command = ["/bin/sh", "-c", f"{SETPRIV} --reuid={NOBODY} --regid={NOBODY} --clear-groups {PYTHON} {worker} "
                                f"&& exec {FIXTURE} --no-notify"]
    for access in ("all", "main"):
        port = free_port()
        h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{port}", f"--mode={MODE}", "--notify-socket=abstract",
                          f"--notify-access={access}", "--start-timeout=3s"], command, notify=FakeSystemd(tmp))
        try:
            if access == "all":
                h.wait_ready(1, timeout=20)
                check(serving_pid(port) == h.generation_pid(1), "the generation serves")
                check("ignored READY=1" not in h.log(), h.log())
                check(h.stop() == 0, h.log())
            else:
                main = h.generation_pid(1)
                h.wait_log("--notify-access=all would accept it.")
                line = re.search(r".*ignored READY=1 from pid (\d+), a process of the generation but not its main.*",
                                 h.log())
                check(line and int(line.group(1)) != main, f"the refusal names the worker: {h.log()}")
                check(h.wait_exit(timeout=20) != 0, h.log())
                check(h.ready_count() == 0, f"no READY=1 to systemd: {h.notify.snapshot()}")
        finally:
            h.close()


def test_unprivileged_handoff_hears_own_uid_and_root_only(tmp):
    """handoff itself as uid 65534: its generation (same uid) is heard; root
    passes the uid check (and is then dropped as not the main process);
    a third uid is dropped for its uid."""
    need_root_and_setpriv()
    port = free_port()
    h = Launched(tmp, ["-v", "-l", f"127.0.0.1:{port}", "--notify-socket=abstract"], [FIXTURE],
                 prefix=[SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"])
    try:
        h.wait_log("is ready")
        check(os.stat(f"/proc/{h.pid}").st_uid == NOBODY, "handoff runs as nobody")
        app = serving_pid(port)
        address = notify_socket_of(app)
        send_notify(address, b"READY=1")  # root, not the main process
        wait_for(lambda: f"Dropped notify message from pid {os.getpid()}: not the main process {app}" in h.log(), 10,
                 f"root passes the uid check:\n{h.log()}")
        send_notify_as(1, address, b"READY=1")  # daemon
        line = OTHER_UID_LINE.format(n=1)
        wait_for(lambda: line in h.log(), 10, f"{line!r}:\n{h.log()}")
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()


def test_path_notify_socket_is_closed_to_other_uids(tmp):
    """The default path socket: the socket file is 0600 in a 0700 directory
    owned by handoff's uid, so another uid cannot even send (EACCES) and
    handoff never sees its datagram."""
    need_root_and_setpriv()
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime, 0o755)
    port = free_port()
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-v", "-l", f"127.0.0.1:{port}", "--mode=supervise"], [FIXTURE], notify=fake,
                env={"RUNTIME_DIRECTORY": runtime})
    try:
        h.wait_ready(1)
        address = notify_socket_of(serving_pid(port))
        check(address.startswith(runtime + "/"), f"a path socket: {address!r}")
        d, f = os.stat(os.path.dirname(address)), os.stat(address)
        check(stat.S_IMODE(d.st_mode) == 0o700 and d.st_uid == os.getuid(), f"directory {oct(d.st_mode)}")
        check(stat.S_ISSOCK(f.st_mode) and stat.S_IMODE(f.st_mode) == 0o600, f"socket file {oct(f.st_mode)}")
        code = ("import socket, sys\n"
                "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
                "try:\n"
                "    s.sendto(b'READY=1', sys.argv[1])\n"
                "except PermissionError:\n"
                "    sys.exit(13)\n")
        p = subprocess.run([SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "/usr/bin/python3",
                            "-c", code, address], capture_output=True, text=True, timeout=10)
        check(p.returncode == 13, f"uid {NOBODY} could send: exit {p.returncode} {p.stderr}")
        check("another uid" not in h.log(), h.log())
        check(h.stop() == 0, h.log())
        check(os.listdir(runtime) == [], f"removed at stop: {os.listdir(runtime)}")
    finally:
        h.kill_all()
        fake.close()


# ---- files on disk ---------------------------------------------------------------

def world_writable(path):
    return bool(os.lstat(path).st_mode & stat.S_IWOTH)


def test_unix_socket_files_take_their_mode_from_the_umask(tmp):
    """Socket files handoff creates for --listen unix:/unix-dgram: get
    0777 & ~umask, as bind(2) makes them (and as systemd's SocketMode= is
    explicit, so is the umask): with any usual umask nobody else may write."""
    for umask in (0o022, 0o027, 0o077, 0o002):
        d = os.path.join(tmp, f"umask-{umask:03o}")
        os.mkdir(d)
        stream, dgram = os.path.join(d, "stream.sock"), os.path.join(d, "dgram.sock")
        h = Launched(tmp, ["-l", f"unix:{stream}", "-l", f"unix-dgram:{dgram}"], [FIXTURE], umask=umask)
        try:
            h.wait_log("is ready")
            for path in (stream, dgram):
                st = os.lstat(path)
                check(stat.S_ISSOCK(st.st_mode), f"{path} is a socket")
                check(stat.S_IMODE(st.st_mode) == 0o777 & ~umask,
                      f"umask {umask:03o}: {path} has mode {stat.S_IMODE(st.st_mode):03o}")
                check(not world_writable(path), f"umask {umask:03o}: {path} is world-writable")
            check(h.stop() == 0, h.log())
            check(os.listdir(d) == [], f"removed at stop: {os.listdir(d)}")
        finally:
            h.kill_all()


def test_control_socket_file_is_0600_from_its_bind(tmp):
    """The control socket file is 0600 from its bind(), whatever the umask:
    in /run/handoff, 0755 as systemd makes it, another uid could otherwise
    connect until a chmod() after it (to be refused at accept(), as ever),
    and under a umask that takes the owner's bits (0277) we could not. strace
    holds any chmod() of handoff's for 3 s while the test looks at the
    file: 0600 must come from the bind itself."""
    if not shutil.which("strace"):
        raise Skip("strace(1) is not installed")
    # LeakSanitizer cannot run under ptrace (the sanitizer build).
    asan = ":".join(x for x in (os.environ.get("ASAN_OPTIONS"), "detect_leaks=0") if x)
    for umask in ("000", "277"):
        runtime = os.path.join(tmp, f"runtime-{umask}")
        os.mkdir(runtime, 0o755)
        port, logpath = free_port(), os.path.join(tmp, f"handoff-{umask}.log")
        env = dict(os.environ, RUNTIME_DIRECTORY=runtime, ASAN_OPTIONS=asan)
        env.pop("NOTIFY_SOCKET", None)
        with open(logpath, "w") as log:
            p = subprocess.Popen(["strace", "-qq", "-o", "/dev/null", "-e", "trace=chmod,fchmodat",
                                  "-e", "inject=chmod,fchmodat:delay_enter=3000000", "/bin/sh", "-c",
                                  f'umask {umask} && exec "$@"', "sh", HANDOFF, "-l", f"127.0.0.1:{port}", "--",
                                  FIXTURE], stdout=log, stderr=subprocess.STDOUT, env=env)
        pid = None
        try:
            name = wait_for(lambda: next((n for n in os.listdir(runtime) if n.startswith("control.")), None), 10,
                            "the control socket bound")
            pid = int(name.split(".")[1])
            mode = stat.S_IMODE(os.lstat(os.path.join(runtime, name)).st_mode)
            check(mode == 0o600, f"umask {umask}: {name} has mode {mode:03o} before any chmod()")
            wait_for(lambda: "is ready" in open(logpath).read(), 20, "generation 1 ready")
            os.kill(pid, signal.SIGTERM)
            check(p.wait(timeout=30) == 0, open(logpath).read())
        finally:
            if p.poll() is None:
                if pid and alive(pid):
                    os.kill(pid, signal.SIGKILL)
                p.kill()
                p.wait()


def test_path_notify_socket_of_a_user_under_a_umask_that_takes_the_owners_bits(tmp):
    """handoff as a user that is not root, under umask 0277 (a unit's
    UMask=0277): its private notify directory is 0700 all the same, so the
    path notify socket can be bound in it (--notify-socket=path) and the
    generation is ready. Before, the directory was 0500, the bind was
    refused (EACCES) and the start failed ("Failed to create a path notify
    socket for generation 1 ...: Permission denied")."""
    need_root_and_setpriv()
    os.chmod(tmp, 0o755)  # for uid 65534 to reach its runtime directory
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime, 0o700)
    os.chown(runtime, NOBODY, NOBODY)
    h = Launched(tmp, ["--notify-socket=path", "-l", f"127.0.0.1:{free_port()}"], [FIXTURE],
                 env={"RUNTIME_DIRECTORY": runtime}, umask=0o277,
                 prefix=[SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"])
    try:
        h.wait_started("under umask 0277: ")
        check(h.stop() == 0, h.log())
        check(os.listdir(runtime) == [], f"removed at stop: {os.listdir(runtime)}")
    finally:
        h.kill_all()


@contextlib.contextmanager
def overlay_over_another_fs(tmp):
    """An overlayfs at tmp/mnt whose upper layer is a tmpfs of its own
    (xino=off): stat(2) gives its files the tmpfs' device, while the kernel
    names them by the overlay's (sock_diag), as it does a btrfs
    subvolume's."""
    upper, lower, mnt = (os.path.join(tmp, d) for d in ("upper", "lower", "mnt"))
    for d in (upper, lower, mnt):
        os.mkdir(d)
    mounted = []
    try:
        for argv in (["mount", "-t", "tmpfs", "tmpfs", upper],
                     ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper}/u,"
                      f"workdir={upper}/w,xino=off", mnt]):
            if argv[-1] == mnt:
                os.mkdir(f"{upper}/u")
                os.mkdir(f"{upper}/w")
            p = subprocess.run(argv, capture_output=True, text=True)
            if p.returncode != 0:
                raise Skip(f"cannot mount {argv[3]} here: {p.stderr.strip()}")
            mounted.append(argv[-1])
        yield mnt
    finally:
        for m in reversed(mounted):
            subprocess.run(["umount", m], check=True)


def test_unix_socket_file_on_overlayfs_removed_at_stop_without_net_admin(tmp):
    """A --listen unix socket's file on a file system whose files stat(2)
    shows on another device than the kernel names them by (overlayfs over
    another file system, a btrfs subvolume), handoff without CAP_NET_ADMIN
    (a unit's User=, CapabilityBoundingSet=), which asks sock_diag which
    file its socket is bound to: the file it has just bound is its own, and
    is removed at the stop. Before, the devices differing, handoff warned
    that it was no longer its socket's file, and left it behind."""
    need_root_and_setpriv()
    with overlay_over_another_fs(tmp) as mnt:
        sock = os.path.join(mnt, "app.sock")
        h = Launched(tmp, ["-l", f"unix:{sock}"], [FIXTURE], prefix=[SETPRIV, "--bounding-set=-net_admin", "--"])
        try:
            h.wait_log("is ready")
            if os.lstat(sock).st_dev == os.lstat(mnt).st_dev:
                raise Skip("overlayfs shows its own device for its files here")
            check("is no longer the file of handoff's socket" not in h.log(), h.log())
            check(h.stop() == 0, h.log())
            check(os.listdir(mnt) == [], f"removed at stop: {os.listdir(mnt)}")
        finally:
            h.kill_all()


def test_pid_file_is_0644_whatever_the_umask(tmp):
    for umask in (0o000, 0o077):
        d = os.path.join(tmp, f"umask-{umask:03o}")
        os.mkdir(d)
        pidfile = os.path.join(d, "handoff.pid")
        h = Launched(tmp, ["-l", f"127.0.0.1:{free_port()}", f"--pid-file={pidfile}"], [FIXTURE], umask=umask)
        try:
            h.wait_log("is ready")
            mode = stat.S_IMODE(os.lstat(pidfile).st_mode)
            check(mode == 0o644, f"umask {umask:03o}: pid file mode {mode:03o}")
            check(os.listdir(d) == ["handoff.pid"], f"no temporary file left: {os.listdir(d)}")
            check(int(open(pidfile).read()) == h.pid, "names handoff")
            check(h.stop() == 0, h.log())
            check(os.listdir(d) == [], f"removed at stop: {os.listdir(d)}")
        finally:
            h.kill_all()


def test_files_after_reloads(tmp):
    """Across reloads (in handover mode the next handoff rewrites the pid file
    and inherits the socket file), exactly the pid file and the socket file
    exist, neither world-writable; nothing is left after the stop."""
    d = os.path.join(tmp, "run")
    os.mkdir(d)
    pidfile, sock = os.path.join(d, "handoff.pid"), os.path.join(d, "app.sock")
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"unix:{sock}", f"--pid-file={pidfile}", f"--mode={MODE}"], [FIXTURE], notify=fake)
    try:
        h.wait_ready(1)
        for i in range(3):
            h.signal(signal.SIGHUP)
            h.wait_ready(i + 2, timeout=20)
            if MODE == "handover":
                # Stopping before the takeover is test-faults.py's
                # test_sigterm_to_next_handoff_after_ready_before_commit.
                h.wait_log(f"handoff[{h.main_pid()}]: Took over as the main process")
            wait_for(lambda: int(open(pidfile).read()) == h.main_pid(), 10, "the pid file names the main")
            check(sorted(os.listdir(d)) == ["app.sock", "handoff.pid"], f"files: {os.listdir(d)}")
            check(stat.S_IMODE(os.lstat(pidfile).st_mode) == 0o644, "pid file 0644")
            check(not world_writable(sock), "socket file not world-writable")
        check(h.stop() == 0, h.log())
        check(os.listdir(d) == [], f"removed at stop: {os.listdir(d)}")
    finally:
        h.kill_all()
        fake.close()


def test_environment_file_handoff_may_not_read(tmp):
    """handoff as uid 65534 and an --environment-file that only root may
    read (a drop-in's User= under the template, whose EnvironmentFile=
    systemd reads as root): without "-" generation 1 fails, naming the file
    and EACCES; with "-" it is skipped with a warning (not silently: the
    server would not get the file's edits) and the server starts."""
    need_root_and_setpriv()
    conf_dir = os.path.join(tmp, "etc")
    os.mkdir(conf_dir)
    os.chmod(tmp, 0o755)
    conf = os.path.join(conf_dir, "web.conf")
    with open(conf, "w") as f:
        f.write("SECRET=x\n")
    os.chmod(conf, 0o600)
    port = free_port()
    as_nobody = [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    h = Launched(tmp, ["-l", f"127.0.0.1:{port}", f"--environment-file={conf}"], [FIXTURE], prefix=as_nobody)
    try:
        check(h.wait_exit() == 1, h.log())
        check(f"Cannot start generation 1: cannot read environment file {conf}: Permission denied" in h.log(),
              h.log())
    finally:
        h.kill_all()
    h = Launched(tmp, ["-l", f"127.0.0.1:{port}", f"--environment-file=-{conf}"], [FIXTURE], prefix=as_nobody)
    try:
        h.wait_log("is ready")
        check(f"Skipping environment file {conf}: Permission denied" in h.log(), h.log())
        check("SECRET" not in environ_of(serving_pid(port)), "the server got the file's variable")
        check(h.stop() == 0, h.log())
    finally:
        h.kill_all()


MODE_DEPENDENT = {"test_ready_from_another_uid_does_not_commit", "test_main_process_under_another_uid_is_heard",
                  "test_worker_under_another_uid",
                  "test_files_after_reloads"}

if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_")]
    if MODE != "supervise":
        tests = [t for t in tests if t.__name__ in MODE_DEPENDENT]
    run([showing_logs(t) for t in tests])
