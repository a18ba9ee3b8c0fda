#!/usr/bin/python3
"""handoff as PID 1 of a container (a new PID namespace, as podman run
--sdnotify=container or Kubernetes give it), with NOTIFY_SOCKET set:
reloads keep the process (supervise mode, never a handover that would end
the container), and orphans reparented to it leave no zombie."""

import os
import shutil
import signal
import socket
import subprocess

from harness import (FIXTURE, HANDOFF, FakeSystemd, Load, Skip, TestFailure, check, children_of, free_port, run,
                     serving_pid, wait_for, wait_new_pid)
from handofftest.wait import WaitTimeout


def need_pid_namespace():
    if os.geteuid() != 0:
        raise Skip("a new PID namespace needs root (unshare -p)")
    if not shutil.which("unshare"):
        raise Skip("unshare(1) is not installed (util-linux)")
    p = subprocess.run(["unshare", "-fp", "--mount-proc", "true"], capture_output=True, text=True, timeout=10)
    if p.returncode != 0:
        raise Skip(f"cannot create a PID namespace here: {p.stderr.strip()}")


def zombies_of(pid):
    out = []
    for c in children_of(pid):
        try:
            with open(f"/proc/{c}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    out.append(c)
        except FileNotFoundError:
            pass
    return out


def test_pid1_supervises_and_reaps_orphans(tmp):
    need_pid_namespace()
    port = free_port()
    fake = FakeSystemd(tmp)
    logpath = os.path.join(tmp, "handoff.log")
    # Every generation leaves an orphan behind: a subshell starts a short
    # sleep in the background and exits, so the sleep is reparented to PID 1.
    server = f"(sleep 0.3 &); exec {FIXTURE} --init-delay 50"
    env = dict(os.environ, NOTIFY_SOCKET=fake.path)
    with open(logpath, "w") as log:
        unshare = subprocess.Popen(["unshare", "-fp", "--mount-proc", HANDOFF, "-l", f"127.0.0.1:{port}", "--",
                                    "/bin/sh", "-c", server], stdout=log, stderr=subprocess.STDOUT, env=env)
    pid1 = None
    try:
        pid1 = wait_for(lambda: children_of(unshare.pid), 10, "handoff started as PID 1")[0]
        # Failed once in a full run (not since, nor in 8 runs alone): say
        # whether handoff still ran, and what it logged.
        try:
            wait_for(lambda: fake.count("READY") >= 1, 10, "READY=1")
        except WaitTimeout as e:
            raise TestFailure(f"{e}; unshare {'runs' if unshare.poll() is None else 'exited %d' % unshare.returncode}"
                              f"; log:\n{open(logpath).read()}")
        check("Running as PID 1" in open(logpath).read(), open(logpath).read())
        check("/proc is not this pid namespace's" not in open(logpath).read(), open(logpath).read())
        load = Load(f"127.0.0.1:{port}", tmp)
        for n in range(2, 12):
            old = serving_pid(port)
            os.kill(pid1, signal.SIGHUP)
            wait_for(lambda: fake.count("READY") >= n, 20, f"reload {n - 1}; log:\n{open(logpath).read()}")
            wait_new_pid(port, old)
        res = load.stop()
        check(res["failed"] == 0, f"requests failed: {res}")
        check(unshare.poll() is None, "the container still runs")
        # Inside the container ("docker exec"), nothing sets $MAINPID: pid 1,
        # a handoff, is the one asked.
        if shutil.which("nsenter"):
            env = {k: v for k, v in os.environ.items() if k != "MAINPID"}
            p = subprocess.run(["nsenter", "-t", str(pid1), "-p", "-m", HANDOFF, "status"], capture_output=True,
                               text=True, timeout=30, env=env)
            check(p.returncode == 0 and "generation 11" in p.stdout, f"status inside: {p.returncode} {p.stderr}")
        check(fake.count("MAINPID") == 0, "no handover as PID 1")
        check(all(m.pid == fake.snapshot()[0].pid for m in fake.snapshot()), "one process spoke to systemd")
        # Eleven orphans have exited by now; none may stay a zombie.
        wait_for(lambda: not zombies_of(pid1), 10, f"zombies of PID 1 reaped: {zombies_of(pid1)}")
        os.kill(pid1, signal.SIGTERM)
        check(unshare.wait(timeout=30) == 0, open(logpath).read())
    finally:
        stop_pid1(unshare, pid1)
        fake.close()


def test_pid1_refuses_handover_mode(tmp):
    need_pid_namespace()
    p = subprocess.run(["unshare", "-fp", "--mount-proc", HANDOFF, "-l", f"127.0.0.1:{free_port()}", "--mode=handover", "--",
                        "true"], capture_output=True, text=True, timeout=20)
    check(p.returncode == 2 and "--mode=handover cannot work as PID 1" in p.stdout + p.stderr,
          f"{p.returncode} {p.stdout} {p.stderr}")


def start_pid1(args, command, env, logpath, prelude=None, mount_proc=True):
    """handoff as PID 1 of a new PID namespace (and mount namespace:
    --mount-proc, unless mount_proc is false); returns (unshare, handoff's
    pid as seen from here). prelude: a shell command run first, as PID 1,
    which then execs handoff."""
    argv = [HANDOFF, *args, "--", *command]
    if prelude:
        argv = ["/bin/sh", "-c", f'{prelude} && exec "$@"', "sh", *argv]
    with open(logpath, "w") as log:
        unshare = subprocess.Popen(["unshare", "-fp", *(["--mount-proc"] if mount_proc else []), *argv],
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
    return unshare, wait_for(lambda: children_of(unshare.pid), 10, "handoff started as PID 1")[0]


def stop_pid1(unshare, pid1):
    """Teardown, passed or failed: SIGKILL to PID 1 ends its whole
    namespace; killing unshare alone left it running (a failed test left
    a container behind, whose control socket then held the name the next
    run's PID 1 needs)."""
    if unshare.poll() is None:
        if pid1:
            try:
                os.kill(pid1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        unshare.kill()
        unshare.wait()


def test_pid1_two_namespaces_share_runtime_dir(tmp):
    """Two containers whose handoff is PID 1 of each, sharing one runtime
    directory (systemd services with PrivatePIDs=yes and no
    RuntimeDirectory=, a runtime directory bind-mounted into containers, or
    two test runs side by side): both are pid 1, so both would name their
    generation 1's socket notify.1/1. The second must not take over the
    first's live socket: the first's READY=1 would go to it and be dropped,
    and the first container would end at its start timeout."""
    need_pid_namespace()
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime, 0o700)
    gate = os.path.join(tmp, "gate")
    os.mkfifo(gate)
    fake_a, fake_b = FakeSystemd(tmp, "notify-a.sock"), FakeSystemd(tmp, "notify-b.sock")
    log_a, log_b = os.path.join(tmp, "a.log"), os.path.join(tmp, "b.log")
    env = dict(os.environ, RUNTIME_DIRECTORY=runtime)
    # A's first generation has its socket bound, and waits at the gate
    # before it sends READY=1; B starts meanwhile.
    a = b = None
    try:
        a = start_pid1(["-l", f"127.0.0.1:{free_port()}", "--notify-socket=path", "--start-timeout=20s"],
                       ["/bin/sh", "-c", f"read x < {gate}; exec {FIXTURE}"],
                       dict(env, NOTIFY_SOCKET=fake_a.path), log_a)
        wait_for(lambda: os.path.exists(os.path.join(runtime, "notify.1", "1")), 10, "A's notify socket")
        b = start_pid1(["-l", f"127.0.0.1:{free_port()}", "--start-timeout=20s"], [FIXTURE],
                       dict(env, NOTIFY_SOCKET=fake_b.path), log_b)
        fake_b.wait_count("READY", 1, timeout=10)
        with open(gate, "w") as f:
            f.write("go\n")
        try:
            fake_a.wait_count("READY", 1, timeout=10)
        except WaitTimeout as e:
            raise TestFailure(f"{e}\nA's log:\n{open(log_a).read()}\nB's log:\n{open(log_b).read()}")
        for unshare, pid1 in (a, b):
            os.kill(pid1, signal.SIGTERM)
            check(unshare.wait(timeout=30) == 0, f"A:\n{open(log_a).read()}\nB:\n{open(log_b).read()}")
    finally:
        for x in (a, b):
            if x:
                stop_pid1(*x)
        fake_a.close()
        fake_b.close()


def dgram_path_state(path):
    """"live" (a process has it bound), "stale" (a socket nobody has bound)
    or None (no such file)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(path)
            return "live"
        except ConnectionRefusedError:
            return "stale"
        except FileNotFoundError:
            return None


def traced_by(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("TracerPid:"))


def test_pid1_exit_leaves_another_namespaces_socket(tmp):
    """A handoff removes its notify socket's name while the socket is still
    bound, and closes it after. The other way round, a handoff of another
    pid namespace with the same pid, sharing the directory, could take the
    name in between (a socket nobody has bound is replaced), and lose it to
    our unlink(): its generation's READY=1 would find no socket. strace
    holds each unlink() of A's for 2 s, so that B binds in that window."""
    need_pid_namespace()
    if not shutil.which("strace"):
        raise Skip("strace(1) is not installed")
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime, 0o700)
    env = dict(os.environ, RUNTIME_DIRECTORY=runtime)
    fake_a, fake_b = FakeSystemd(tmp, "notify-a.sock"), FakeSystemd(tmp, "notify-b.sock")
    log_a, log_b = os.path.join(tmp, "a.log"), os.path.join(tmp, "b.log")
    a = b = strace = None
    try:
        # B's generation 1 has notify.1/1; A's has an abstract one, its
        # generation 2 notify.1/2.
        b = start_pid1(["-l", f"127.0.0.1:{free_port()}"], [FIXTURE], dict(env, NOTIFY_SOCKET=fake_b.path), log_b)
        fake_b.wait_count("READY", 1, timeout=10)
        # LeakSanitizer cannot run under ptrace: in the sanitizer build, A
        # (traced at its exit) checks no leaks (it aborted, or hung).
        asan = ":".join(x for x in (os.environ.get("ASAN_OPTIONS"), "detect_leaks=0") if x)
        a = start_pid1(["-l", f"127.0.0.1:{free_port()}"], [FIXTURE],
                       dict(env, NOTIFY_SOCKET=fake_a.path, ASAN_OPTIONS=asan), log_a)
        fake_a.wait_count("READY", 1, timeout=10)
        os.kill(a[1], signal.SIGHUP)
        fake_a.wait_count("READY", 2, timeout=10)
        name = os.path.join(runtime, "notify.1", "2")
        wait_for(lambda: dgram_path_state(name) == "live", 10, "A's generation 2 at notify.1/2")
        strace = subprocess.Popen(["strace", "-qq", "-o", "/dev/null", "-p", str(a[1]), "-e", "trace=unlink,unlinkat",
                                   "-e", "inject=unlink,unlinkat:delay_enter=2000000"])
        wait_for(lambda: traced_by(a[1]) != 0, 10, "strace attached to A")
        os.kill(a[1], signal.SIGTERM)
        # Before the fix: A closed it first, and held at its unlink() the
        # name stays there unbound, for B to take.
        wait_for(lambda: dgram_path_state(name) != "live", 20, "A's generation 2 gone")
        os.kill(b[1], signal.SIGHUP)
        fake_b.wait_count("READY", 2, timeout=10)
        check(a[0].wait(timeout=30) == 0, open(log_a).read())
        state = dgram_path_state(name)
        check(state == "live", f"B's generation 2's notify socket after A's exit: {state}\nA:\n{open(log_a).read()}"
                               f"\nB:\n{open(log_b).read()}")
        os.kill(b[1], signal.SIGTERM)
        check(b[0].wait(timeout=30) == 0, open(log_b).read())
    finally:
        if strace:
            strace.kill()
            strace.wait()
        for x in (a, b):
            if x:
                stop_pid1(*x)
        fake_a.close()
        fake_b.close()


def process_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_pid1_stop_wakes_a_stopped_generation(tmp):
    """docker stop is SIGTERM, then SIGKILL 10 s later. A generation that is
    stopped (SIGSTOP from someone debugging it; a server that read its tty
    with docker run -it, being in a background process group: SIGTTIN) must
    still get to act on the stop signal: handoff sends SIGCONT after it, as
    systemd does, and the container stops cleanly (0) at once, not at the
    drain deadline with 137. Likewise at a reload: the retiring generation
    is not held to its deadline."""
    need_pid_namespace()
    port = free_port()
    fake = FakeSystemd(tmp)
    logpath = os.path.join(tmp, "handoff.log")
    unshare, pid1 = start_pid1(["-l", f"127.0.0.1:{port}", "--drain-timeout=60s"], [FIXTURE],
                               dict(os.environ, NOTIFY_SOCKET=fake.path), logpath)
    try:
        fake.wait_count("READY", 1, timeout=10)
        # A reload whose old generation is stopped.
        old = serving_pid(port)
        gen1 = children_of(pid1)[0]
        os.kill(gen1, signal.SIGSTOP)
        wait_for(lambda: process_state(gen1) == "T", 10, "generation 1 stopped")
        os.kill(pid1, signal.SIGHUP)
        fake.wait_count("READY", 2, timeout=10)
        wait_new_pid(port, old)
        try:
            wait_for(lambda: "Retired generation 1" in open(logpath).read(), 10,
                     "the stopped retiring generation woken and gone")
        except WaitTimeout as e:
            raise TestFailure(f"{e}; log:\n{open(logpath).read()}")
        # The stop of the container, its generation stopped.
        gen2 = [c for c in children_of(pid1) if c != gen1][0]
        os.kill(gen2, signal.SIGSTOP)
        wait_for(lambda: process_state(gen2) == "T", 10, "generation 2 stopped")
        os.kill(pid1, signal.SIGTERM)
        try:
            status = unshare.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"still running 10s after SIGTERM (docker stop would SIGKILL it now); log:\n"
                              f"{open(logpath).read()}")
        check(status == 0, f"exit status {status}; log:\n{open(logpath).read()}")
    finally:
        stop_pid1(unshare, pid1)
        fake.close()


def handoff_client(*args, env=None):
    """handoff reload/status run from here (this pid and network namespace)."""
    return subprocess.run([HANDOFF, *args], capture_output=True, text=True, timeout=30,
                          env={k: v for k, v in (env or os.environ).items() if k != "MAINPID"})


def test_pid1_read_only_run_listens_on_an_abstract_name(tmp):
    """docker run --read-only: /run is read-only, so handoff cannot make
    /run/handoff nor bind its control socket there. It says so once and
    listens on an abstract name instead, which handoff reload and handoff
    status find among its fds, from the host as from inside."""
    need_pid_namespace()
    port = free_port()
    fake = FakeSystemd(tmp)
    logpath = os.path.join(tmp, "handoff.log")
    env = {k: v for k, v in os.environ.items() if k not in ("RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR")}
    unshare, pid1 = start_pid1(["-l", f"127.0.0.1:{port}"], [FIXTURE], dict(env, NOTIFY_SOCKET=fake.path), logpath,
                               prelude="mount -t tmpfs -o ro tmpfs /run")
    log = lambda: open(logpath).read()  # noqa: E731
    try:
        fake.wait_count("READY", 1, timeout=10)
        p = handoff_client("status", f"--pid={pid1}")
        check(p.returncode == 0 and "generation 1" in p.stdout, f"status: {p.returncode} {p.stderr}\n{log()}")
        check("listening on @handoff/control/1/" in log(), log())
        p = handoff_client("reload", f"--pid={pid1}")
        check(p.returncode == 0 and fake.count("READY") == 2, f"reload: {p.returncode} {p.stderr}\n{log()}")
        if shutil.which("nsenter"):
            p = subprocess.run(["nsenter", "-t", str(pid1), "-p", "-m", HANDOFF, "status"], capture_output=True,
                               text=True, timeout=30, env={k: v for k, v in env.items() if k != "MAINPID"})
            check(p.returncode == 0 and "generation 2" in p.stdout, f"status inside: {p.returncode} {p.stderr}")
        check(log().count("No control socket") == 1, log())
        # Nor is the notify socket's fallback said at every reload.
        check(log().count("No path notify socket") == 1, log())
        os.kill(pid1, signal.SIGTERM)
        check(unshare.wait(timeout=30) == 0, log())
    finally:
        stop_pid1(unshare, pid1)
        fake.close()


def test_pid1_second_namespace_sharing_runtime_dir_listens_on_an_abstract_name(tmp):
    """Two containers whose handoff is PID 1 of each, sharing one runtime
    directory: the first has control.1 there, the second finds it live and
    listens on an abstract name instead; both answer handoff status, and the
    second's exit leaves the first's socket alone."""
    need_pid_namespace()
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime, 0o700)
    env = dict(os.environ, RUNTIME_DIRECTORY=runtime)
    fake_a, fake_b = FakeSystemd(tmp, "notify-a.sock"), FakeSystemd(tmp, "notify-b.sock")
    log_a, log_b = os.path.join(tmp, "a.log"), os.path.join(tmp, "b.log")
    a = b = None
    try:
        a = start_pid1(["-l", f"127.0.0.1:{free_port()}"], [FIXTURE], dict(env, NOTIFY_SOCKET=fake_a.path), log_a)
        fake_a.wait_count("READY", 1, timeout=10)
        wait_for(lambda: os.path.exists(os.path.join(runtime, "control.1")), 10, "A's control socket")
        b = start_pid1(["-l", f"127.0.0.1:{free_port()}"], [FIXTURE], dict(env, NOTIFY_SOCKET=fake_b.path), log_b)
        fake_b.wait_count("READY", 1, timeout=10)
        for (unshare, pid1), fake, which in ((a, fake_a, "A"), (b, fake_b, "B")):
            p = handoff_client("reload", f"--pid={pid1}", env=env)
            check(p.returncode == 0 and fake.count("READY") == 2, f"{which}: {p.returncode} {p.stderr}\n"
                  f"A:\n{open(log_a).read()}\nB:\n{open(log_b).read()}")
        check("listening on @handoff/control/1/" in open(log_b).read(), open(log_b).read())
        os.kill(b[1], signal.SIGTERM)
        check(b[0].wait(timeout=30) == 0, open(log_b).read())
        p = handoff_client("status", f"--pid={a[1]}", env=env)
        check(p.returncode == 0, f"A after B's exit: {p.returncode} {p.stderr}")
        os.kill(a[1], signal.SIGTERM)
        check(a[0].wait(timeout=30) == 0, open(log_a).read())
    finally:
        for x in (a, b):
            if x:
                stop_pid1(*x)
        fake_a.close()
        fake_b.close()


def stops_as_pid1(tmp, sig, name):
    """handoff as PID 1, sent sig: a stop that retires the serving
    generation and exits 0 at once, not a signal the kernel drops (then
    the runtime's SIGKILL ends the container later)."""
    fake = FakeSystemd(tmp, f"notify-{name}.sock")
    logpath = os.path.join(tmp, f"handoff-{name}.log")
    unshare, pid1 = start_pid1(["-l", f"127.0.0.1:{free_port()}"], [FIXTURE],
                               dict(os.environ, NOTIFY_SOCKET=fake.path), logpath)
    log = lambda: open(logpath).read()  # noqa: E731
    try:
        fake.wait_count("READY", 1, timeout=10)
        os.kill(pid1, sig)
        try:
            status = unshare.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"still running 10s after {name}; log:\n{log()}")
        check(status == 0, f"{name}: exit status {status}; log:\n{log()}")
        check(f"Stop requested ({name})." in log() and fake.count("STOPPING") == 1, log())
    finally:
        stop_pid1(unshare, pid1)
        fake.close()


def test_pid1_sigpwr_stops_as_lxc_stop_asks(tmp):
    """lxc-stop (and so incus stop) asks a container's init to shut down
    cleanly with SIGPWR, LXC's lxc.signal.halt, and SIGKILLs it 60 s later."""
    need_pid_namespace()
    stops_as_pid1(tmp, signal.SIGPWR, "SIGPWR")


def test_pid1_without_its_own_proc_says_so(tmp):
    """unshare --pid --fork without --mount-proc (a step often left out):
    /proc is still the host's, where a pid of the container names another
    process. handoff reads /proc to tell whose an adopted orphan is, and
    there it cannot: a server's daemon that left its process group with
    setsid() is not known as its generation's, and outlives the
    generation's drain deadline, serving old code. handoff cannot mount a
    proc of its own in the host's mount namespace; it says why at its
    start, and what to do."""
    need_pid_namespace()
    fake = FakeSystemd(tmp)
    logpath = os.path.join(tmp, "handoff.log")
    unshare, pid1 = start_pid1(["-l", f"127.0.0.1:{free_port()}"], [FIXTURE],
                               dict(os.environ, NOTIFY_SOCKET=fake.path), logpath, mount_proc=False)
    log = lambda: open(logpath).read()  # noqa: E731
    try:
        fake.wait_count("READY", 1, timeout=10)
        check("/proc is not this pid namespace's" in log() and "--mount-proc" in log(), log())
        os.kill(pid1, signal.SIGTERM)
        check(unshare.wait(timeout=30) == 0, log())
    finally:
        stop_pid1(unshare, pid1)
        fake.close()


def test_pid1_systemds_halt_and_poweroff_stop(tmp):
    """systemd-nspawn --boot asks its container's PID 1 to shut down with
    SIGRTMIN+3 (systemd's halt), machinectl poweroff with SIGRTMIN+4."""
    need_pid_namespace()
    for offset in (3, 4):
        stops_as_pid1(tmp, signal.SIGRTMIN + offset, f"SIGRTMIN+{offset}")


if __name__ == "__main__":
    run([test_pid1_supervises_and_reaps_orphans, test_pid1_refuses_handover_mode,
         test_pid1_two_namespaces_share_runtime_dir, test_pid1_exit_leaves_another_namespaces_socket,
         test_pid1_stop_wakes_a_stopped_generation, test_pid1_read_only_run_listens_on_an_abstract_name,
         test_pid1_second_namespace_sharing_runtime_dir_listens_on_an_abstract_name,
         test_pid1_sigpwr_stops_as_lxc_stop_asks, test_pid1_without_its_own_proc_says_so,
         test_pid1_systemds_halt_and_poweroff_stop])
