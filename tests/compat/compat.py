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


def reload_under_load(tmp, name, command, args=(), env=None, path="/", drain_s=20, reloads=RELOADS,
                      start_timeout_s=30, clean_exit=True, known_resets=0, known_sigkills=0):
    """Runs the scenario; returns a one-line summary (also printed).
    known_resets: how many connection resets a server's own documented race
    may cause in the whole run (only uWSGI has one; see its test). Every
    other failure, and any reset beyond that, fails the case. known_sigkills:
    how many old generations may need the drain deadline's SIGKILL (again
    only uWSGI); none may be left after it either way."""
    port = free_port()
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
        if "--notify-socket=abstract" not in args:
            sock = os.path.join(runtime, f"notify.{h.pid}", "1")
            check(os.path.exists(sock), f"{name}: the path notify socket {sock} exists: {os.listdir(runtime)}")
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
        check(resets <= known_resets, f"{name}: {resets} connection resets (known race allows {known_resets}): "
                                      f"{results}")
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
                   f"{st['reloads_ok']}/{reloads} reloads committed, {sigkills} old generations needed SIGKILL")
        print(summary, flush=True)
        return summary
    finally:
        for load in loads:
            if load.proc.poll() is None:
                load.proc.kill()
                load.proc.wait()
        h.close()
