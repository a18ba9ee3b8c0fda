"""The compatibility suite's one scenario, for servers nobody here wrote:
run the server behind `handoff --listen 127.0.0.1:PORT --mode=supervise`,
reload it RELOADS times under load (new connections and keep-alive), and
assert what a user of handoff is promised:

- 0 failed requests in either load (stale keep-alive connections a client
  retries before any byte of a response are reported by loadgen, not failed);
- every reload committed: handoff's READY=1 with "reload to generation N ok",
  and `handoff status --json` counting RELOADS ok and 0 failed at the end;
- every old generation gone on its own after its stop signal: its whole
  process group exits before the drain deadline (no SIGKILL in the log);
- a clean stop: exit 0, nothing of the service left, and the private notify
  directory removed from $RUNTIME_DIRECTORY.

Each server's files and command line are in recipes.py. A server whose
Debian package is not installed skips (exit 77) and says which package to
install. Every wait has a deadline; nothing sleeps."""

import os
import signal

from harness import FakeSystemd, Handoff, Load, check, free_port, status_json, wait_for

RELOADS = int(os.environ.get("COMPAT_RELOADS", "10"))


def group_members(pgid):
    """Live processes in process group pgid: a generation's main process
    leads one, and its workers stay in it."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(d))
    return out


def connections_exited_holding(log):
    """How many accepted TCP connections the server's processes held when
    they exited, from exit-conn-shim's log: each is a client the server
    itself left unanswered."""
    with open(log) as f:
        return sum(int(line.split()[1]) for line in f)


def reload_under_load(tmp, name, command, args=(), env=None, path="/", drain_s=20, reloads=RELOADS,
                      start_timeout_s=30, clean_exit=True, server_resets=False, known_sigkills=0, cut_per_sigkill=0,
                      unanswered_log=None, port=None, each_generation=None):
    """Runs the scenario; returns a one-line summary (also printed).
    port: the one the command's configuration names (else a free one).
    each_generation(h, port, n): checks on generation n, called once it
    serves alone (generation 1 once ready, each next one once its
    predecessor is gone).
    server_resets: the server has a documented race of its own in which a
    process exits holding a connection it accepted (only uWSGI; see its
    test). The server then runs under exit-conn-shim, which counts those
    connections, and the case allows that many resets, no more. Every other
    failure fails the case, and without server_resets so does any reset.
    known_sigkills: how many old generations may need the drain deadline's
    SIGKILL (again only uWSGI); none may be left after it either way.
    cut_per_sigkill: how many connections a generation's processes can hold
    at most when that SIGKILL comes (the shim cannot count those): one per
    single-threaded worker; each such generation allows that many resets.
    unanswered_log: a file where the server, through a hook of the test's,
    counts in the shim's format the connections it closed itself before
    reading a request on them (only uvicorn: see its test); the case allows
    that many resets as well."""
    exit_log = os.path.join(tmp, "exit-conn.log")
    if server_resets:
        command = ["/usr/bin/env", f"LD_PRELOAD={os.environ['EXIT_CONN_SHIM_SO']}",
                   f"EXIT_CONN_SHIM_LOG={exit_log}", *command]
    port = port or free_port()
    runtime = os.path.join(tmp, "runtime")
    os.mkdir(runtime)
    fake = FakeSystemd(tmp)
    e = {"RUNTIME_DIRECTORY": runtime, "PORT": str(port)}
    e.update(env or {})
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=supervise", f"--start-timeout={start_timeout_s}s",
                      f"--drain-timeout={drain_s}s", *args], command, notify=fake, env=e)
    loads = []
    try:
        h.wait_ready(1, timeout=start_timeout_s + 5)
        first = h.generation_pid(1)
        if server_resets:  # the shim creates its log as it loads
            check(os.path.exists(exit_log), f"{name}: the server runs under exit-conn-shim ({exit_log})")
        if "--notify-socket=abstract" not in args:
            sock = os.path.join(runtime, f"notify.{h.pid}", "1")
            check(os.path.exists(sock), f"{name}: the path notify socket {sock} exists: {os.listdir(runtime)}")
        if each_generation:
            each_generation(h, port, 1)
        loads = [Load(f"127.0.0.1:{port}", tmp, mode="new", concurrency=2, path=path),
                 Load(f"127.0.0.1:{port}", tmp, mode="keepalive", concurrency=2, path=path)]
        old = first
        for i in range(reloads):
            h.signal(signal.SIGHUP)
            h.wait_ready(i + 2, timeout=start_timeout_s + 5)
            check(f"reload to generation {i + 2} ok" in h.last_status(), f"{name}: reload {i + 1}: {h.last_status()}")
            # The old generation drains and exits by itself, workers and all.
            wait_for(lambda: not group_members(old), drain_s + 10,
                     f"{name}: generation {i + 1} (process group {old}) to be gone; log:\n{h.log()}")
            old = h.generation_pid(i + 2)
            if each_generation:
                each_generation(h, port, i + 2)
        results = [load.stop() for load in loads]
        loads = []
        st = status_json(h.pid)
        check(st["reloads_ok"] == reloads and st["reloads_failed"] == 0, f"{name}: handoff status: {st}")
        log = h.log()
        sigkills = log.count("did not exit in time")
        check(sigkills <= known_sigkills, f"{name}: {sigkills} generations needed SIGKILL (known race allows "
                                          f"{known_sigkills}):\n{log}")
        check(log.count("serves; retiring generation") == reloads, f"{name}: {reloads} commits in the log:\n{log}")
        for mode, res in zip(("new", "keepalive"), results):
            check(res["failed"] == res["reset"], f"{name}: {mode}-connection load had failed requests: {res}")
            check(res["ok"] > 0, f"{name}: {mode}-connection load got answers: {res}")
        resets = sum(r["reset"] for r in results)
        held = connections_exited_holding(exit_log) if server_resets else 0
        # The server creates that file at its first such connection only.
        unanswered = (connections_exited_holding(unanswered_log)
                      if unanswered_log and os.path.exists(unanswered_log) else 0)
        killed = sigkills * cut_per_sigkill
        check(resets <= held + killed + unanswered,
              f"{name}: {resets} connection resets, where the server's processes exited "
              f"holding {held} connections, closed {unanswered} before reading a request on them, and "
              f"{sigkills} generations were SIGKILLed (at most {cut_per_sigkill} connections each): {results}")
        code = h.stop()
        if clean_exit:
            check(code == 0, f"{name}: handoff exit status {code}; log:\n{h.log()}")
        wait_for(lambda: not h.descendants(), 10, f"{name}: nothing left after the stop: {h.descendants()}")
        check(os.listdir(runtime) == [], f"{name}: notify directory removed: {os.listdir(runtime)}")
        total = sum(r["requests"] for r in results)
        failed = sum(r["failed"] for r in results)
        stale = sum(r.get("stale_retried", 0) for r in results)
        summary = (f"{name}: {total} requests ({results[0]['requests']} new-connection, {results[1]['requests']} "
                   f"keep-alive), {failed} failed, {stale} stale keep-alive retried, "
                   f"{st['reloads_ok']}/{reloads} reloads committed, {sigkills} old generations needed SIGKILL"
                   + (f", connections held by exiting server processes: {held}" if server_resets else "")
                   + (f", connections the server closed before reading a request: {unanswered}"
                      if unanswered_log else ""))
        print(summary, flush=True)
        return summary
    finally:
        for load in loads:
            if load.proc.poll() is None:
                load.proc.kill()
                load.proc.wait()
        h.close()
