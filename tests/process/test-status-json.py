#!/usr/bin/python3
"""handoff status --json, in the mode HANDOFF_TEST_MODE names, read the way a
tool reads it: json.loads, then every member handoff(1) documents, with its
type, checked against the real processes and sockets, before, during and
after a reload that succeeds and one that fails."""

import datetime
import json
import os
import re
import signal
import socket
import subprocess
import time

from handofftest.handoff import HANDOFF, Handoff, MODE, fixture_cmd, set_args
from handofftest.load import SlowRequest
from handofftest.net import free_port, serving_pid, wait_new_pid
from handofftest.notify import FakeSystemd
from handofftest.procs import pid_alive
from handofftest.runner import Skip, run
from handofftest.wait import check, wait_for

INT, STR, BOOL, NULL = int, str, bool, type(None)

# The members of handoff(1)'s table, and their types.
TOP = {
    "schema_version": INT, "version": STR, "pid": INT, "mode": STR, "state": STR,
    "timestamp": STR, "timestamp_monotonic": INT,
    "start_timestamp": STR, "start_timestamp_monotonic": INT,
    "handed_over_to": INT, "handed_over_to_exited": (BOOL, NULL), "predecessor_draining": BOOL, "standby_pid": (INT, NULL),
    "generations": list, "listeners": list, "sockets": list,
    "reloads_ok": INT, "reloads_failed": INT, "last_result": STR, "last_reload": (dict, NULL),
}
GENERATION = {
    "number": INT, "role": STR, "pid": INT, "ready": BOOL, "main_exited": BOOL, "previous_handoff": BOOL,
    "orphaned": BOOL, "processes": INT,
    "memory_bytes": (INT, NULL),
    "start_timestamp": (STR, NULL), "start_timestamp_monotonic": (INT, NULL),
    "ready_timestamp": (STR, NULL), "ready_timestamp_monotonic": (INT, NULL),
    "age_ms": INT, "kill_in_ms": (INT, NULL),
}
LISTENER = {
    "fd": INT, "name": STR, "family": STR, "type": STR, "address": (STR, NULL), "port": (INT, NULL),
    "path": (STR, NULL), "abstract": (BOOL, NULL),
}
SOCKET = {"fd": INT, "name": STR, "address": STR}
LAST_RELOAD = {
    "generation": INT, "result": STR, "end_timestamp": STR, "end_timestamp_monotonic": INT, "duration_usec": INT,
}
ROLES = {"serving", "starting", "baking", "retiring", "next-handoff", "next-handoff-stopping"}
STATES = {"starting", "serving", "reloading", "baking", "handing-over", "stopping"}


def check_members(obj, spec, what):
    """Exactly the documented members, each of its type (bool is no int here)."""
    check(isinstance(obj, dict), f"{what}: an object: {obj!r}")
    check(set(obj) == set(spec), f"{what}: members {sorted(obj)} != {sorted(spec)}")
    for k, t in spec.items():
        types = t if isinstance(t, tuple) else (t,)
        v = obj[k]
        ok = any(isinstance(v, ty) and not (ty is int and isinstance(v, bool)) for ty in types)
        check(ok, f"{what}.{k}: {v!r} is not {types}")


def iso(s):
    """An ISO 8601 UTC date as handoff writes it: ...T...Z, microseconds."""
    check(s.endswith("Z") and "T" in s and len(s) == len("2026-12-04T13:16:45.123456Z"), f"ISO 8601 UTC: {s!r}")
    return datetime.datetime.fromisoformat(s[:-1] + "+00:00")


def check_clock_pair(obj, name, st):
    """NAME and NAME_monotonic say the same time: their distances from the
    snapshot's own pair agree to the microsecond."""
    mono, real = obj[f"{name}_monotonic"], obj[name]
    check((mono is None) == (real is None), f"{name}: both or neither: {obj}")
    if mono is None:
        return None
    check(0 < mono <= st["timestamp_monotonic"], f"{name}_monotonic {mono} not after the snapshot: {st}")
    d_real = (iso(st["timestamp"]) - iso(real)).total_seconds() * 1e6
    d_mono = st["timestamp_monotonic"] - mono
    check(abs(d_real - d_mono) <= 2, f"{name}: realtime and monotonic disagree ({d_real} vs {d_mono})")
    return mono


def validate(st):
    """Everything handoff(1) promises about one answer."""
    check_members(st, TOP, "status")
    check(st["schema_version"] == 1, st)
    check(st["mode"] == MODE and st["state"] in STATES, st)
    check(st["timestamp_monotonic"] <= monotonic_us(), "the snapshot is not from the future")
    started = check_clock_pair(st, "start_timestamp", st)
    check(pid_alive(st["pid"]), st)
    for g in st["generations"]:
        check_members(g, GENERATION, "generation")
        check(g["role"] in ROLES and g["number"] >= 1 and g["pid"] > 0 and g["processes"] >= 1, g)
        start = check_clock_pair(g, "start_timestamp", st)
        ready = check_clock_pair(g, "ready_timestamp", st)
        check(start is not None, f"every generation has a start: {g}")
        check(g["ready"] == (ready is not None), g)
        if ready is not None:
            check(start <= ready, f"start <= ready: {g}")
        # A next handoff counts from the start of the reload, in its
        # predecessor; a generation from when this handoff started it, or
        # its predecessor (which a new main holds after a handover: retiring).
        if g["previous_handoff"]:
            check(st["mode"] == "handover" and g["role"] == "retiring" and st["predecessor_draining"], g)
        elif g["orphaned"]:   # a dead next handoff's (test-faults)
            check(st["mode"] == "handover" and g["role"] == "retiring" and not g["previous_handoff"], g)
        elif g["role"] != "next-handoff":
            check(started <= start, f"started after this handoff: {g} {st}")
        check(abs(g["age_ms"] - (st["timestamp_monotonic"] - start) // 1000) <= 1, g)
        # A deadline: every retiring generation's here, and an aborted next
        # handoff's; nobody else's.
        check(g["kill_in_ms"] is None or g["role"] in ("retiring", "next-handoff-stopping"), g)
        check(g["role"] != "retiring" or g["kill_in_ms"] is not None, g)
        if g["role"] == "serving":
            check(g["ready"], g)
    serving = [g for g in st["generations"] if g["role"] == "serving"]
    check(len(serving) <= 1, st)
    check(st["standby_pid"] is None or st["mode"] == "handover", f"a standby only in handover mode: {st}")
    for k in st["listeners"]:
        check_members(k, LISTENER, "listener")
    for k in st["sockets"]:
        check_members(k, SOCKET, "socket")
    check([(k["fd"], k["name"]) for k in st["listeners"]] == [(k["fd"], k["name"]) for k in st["sockets"]], st)
    if st["last_reload"] is not None:
        check_members(st["last_reload"], LAST_RELOAD, "last_reload")
        check(st["last_reload"]["result"] in ("ok", "failed"), st)
        check_clock_pair(st["last_reload"], "end_timestamp", st)
    return st


def monotonic_us():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def status(h):
    p = subprocess.run([HANDOFF, "status", "--json", f"--pid={h.main_pid()}"], capture_output=True, text=True,
                       timeout=30)
    check(p.returncode == 0 and p.stdout.count("\n") == 1, f"status: {p.returncode} {p.stdout!r} {p.stderr}")
    return validate(json.loads(p.stdout))


def free_port6():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_status_json_across_reloads(tmp):
    port = free_port()
    port6 = free_port6() if ipv6_loopback() else None
    path = os.path.join(tmp, "admin.sock")
    abstract = f"handoff-test-{os.getpid()}-{port}"
    listen = ["-l", f"127.0.0.1:{port}=web", "-l", f"unix:{path}=admin", "-l", f"unix:@{abstract}=abs"]
    if port6:
        listen += ["-l", f"[::1]:{port6}=web6"]
    args_file = os.path.join(tmp, "fixture.args")
    set_args(args_file, "--init-delay", "50")
    h = Handoff(tmp, [*listen, f"--mode={MODE}", "--drain-timeout=20s"], fixture_cmd(args_file),
                notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1)
        st = status(h)
        check(st["state"] == "serving" and st["last_reload"] is None and st["reloads_ok"] == 0, st)
        gens = st["generations"]
        check([g["role"] for g in gens] == ["serving"] and gens[0]["number"] == 1, st)
        app1 = serving_pid(port)
        check(gens[0]["pid"] == app1, f"the serving pid is the one that answers ({app1}): {st}")

        # The listeners, each of its family, as they were asked for.
        by_name = {k["name"]: k for k in st["listeners"]}
        check(by_name["web"] == {"fd": 3, "name": "web", "family": "inet", "type": "stream",
                                 "address": "127.0.0.1", "port": port, "path": None, "abstract": None}, by_name)
        check(by_name["admin"] == {"fd": 4, "name": "admin", "family": "unix", "type": "stream",
                                   "address": None, "port": None, "path": path, "abstract": False}, by_name)
        check(by_name["abs"] == {"fd": 5, "name": "abs", "family": "unix", "type": "stream",
                                 "address": None, "port": None, "path": abstract, "abstract": True}, by_name)
        if port6:
            check(by_name["web6"] == {"fd": 6, "name": "web6", "family": "inet6", "type": "stream",
                                      "address": "::1", "port": port6, "path": None, "abstract": None}, by_name)

        # During a reload: the candidate (or the next handoff) is not ready,
        # and the serving generation still is.
        set_args(args_file, "--init-delay", "1500")
        h.signal(signal.SIGHUP)
        during = wait_for(lambda: (lambda s: s if s["state"] == "reloading" and len(s["generations"]) == 2 else None)(
            status(h)), 10, "status during the reload")
        roles = {g["role"]: g for g in during["generations"]}
        check(roles["serving"]["pid"] == app1, during)
        cand = roles.get("starting") or roles.get("next-handoff")
        check(cand is not None and not cand["ready"] and cand["ready_timestamp"] is None and cand["number"] == 2,
              during)
        h.wait_ready(2, timeout=30)
        app2 = wait_new_pid(port, app1)

        after = wait_for(lambda: (lambda s: s if s["reloads_ok"] == 1 and s["state"] == "serving" else None)(
            status(h)), 10, "the reload counted, at the main handoff")
        serving = [g for g in after["generations"] if g["role"] == "serving"]
        check(len(serving) == 1 and serving[0]["number"] == 2 and serving[0]["pid"] == app2, after)
        last = after["last_reload"]
        check(last["generation"] == 2 and last["result"] == "ok" and last["duration_usec"] > 0, after)
        check(serving[0]["ready_timestamp_monotonic"] <= last["end_timestamp_monotonic"], after)
        if MODE == "supervise":
            retiring = [g for g in after["generations"] if g["role"] == "retiring"]
            check(all(g["number"] == 1 and g["pid"] == app1 for g in retiring), after)
        else:
            # The old main has handed over: it says so, and the new main
            # knows its predecessor drains (until it is gone).
            check(after["pid"] == h.main_pid() and after["pid"] != h.pid, after)

        # A failed reload.
        set_args(args_file, "--fail-at-start")
        p = subprocess.run([HANDOFF, "reload", f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=60)
        check(p.returncode == 1, f"{p.returncode} {p.stdout} {p.stderr}")
        failed = status(h)
        last = failed["last_reload"]
        check(last["generation"] == 3 and last["result"] == "failed" and failed["reloads_failed"] == 1, failed)
        check(last["end_timestamp_monotonic"] >= after["last_reload"]["end_timestamp_monotonic"], failed)
        check([g["pid"] for g in failed["generations"] if g["role"] == "serving"] == [app2], failed)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_new_main_shows_the_previous_handoffs_generation(tmp):
    """Handover mode: the new main holds the old main's generation to its
    drain deadline (handoff(1)), and shows it as retiring, marked as the
    previous handoff's, with the deadline a second after the old main's,
    until it is gone: a tool that waits for no retiring generation waits at
    the new main for the old code to be gone too."""
    if MODE != "handover":
        raise Skip("handover mode only")
    port = free_port()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", "--mode=handover", "--drain-timeout=20s"], fixture_cmd(),
                notify=FakeSystemd(tmp))
    try:
        h.wait_ready(1)
        first = status(h)
        app1 = serving_pid(port)
        slow = SlowRequest(port, 4000)
        wait_for(slow.connected.is_set, 5, "slow request sent")
        asked = monotonic_us()
        h.signal(signal.SIGHUP)
        h.wait_ready(2, timeout=30)
        wait_new_pid(port, app1)
        st = wait_for(lambda: (lambda s: s if s["pid"] == h.main_pid() and s["state"] == "serving" else None)(
            status(h)), 10, "the new main's status")
        held = [g for g in st["generations"] if g["previous_handoff"]]
        check(len(held) == 1, f"one generation of the previous handoff: {st}")
        g = held[0]
        old = first["generations"][0]
        check(g["role"] == "retiring" and g["number"] == 1 and g["pid"] == app1 and g["ready"], g)
        check(g["start_timestamp_monotonic"] == old["start_timestamp_monotonic"] and
              g["ready_timestamp_monotonic"] == old["ready_timestamp_monotonic"], f"{g} vs {old}")
        # The hold's deadline: the drain timeout and a second, from the
        # takeover, which came after the SIGHUP and before the snapshot.
        since = st["timestamp_monotonic"] - asked
        check((21000000 - since) // 1000 <= g["kill_in_ms"] <= 21000, f"{since} us after the SIGHUP: {g}")
        # ... and its line in the text form.
        p = subprocess.run([HANDOFF, "status", f"--pid={h.main_pid()}"], capture_output=True, text=True, timeout=30)
        check(p.returncode == 0 and re.search(rf"(?m)^retiring +generation 1 \(the previous handoff's\), "
                                              rf"pid {app1}, for .*, 1 process, SIGKILL in ", p.stdout),
              f"the text form's line: {p.returncode} {p.stdout!r} {p.stderr}")
        check(pid_alive(app1), "premise: the old generation still drains")
        slow.join(timeout=20)
        check(slow.status == 200 and slow.pid == app1, f"{slow.status} {slow.pid} {slow.error}")
        after = wait_for(lambda: (lambda s: s if not s["predecessor_draining"] else None)(status(h)), 20,
                         "the old generation gone")
        check(not [g for g in after["generations"] if g["role"] == "retiring"], after)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


if __name__ == "__main__":
    run([test_status_json_across_reloads, test_new_main_shows_the_previous_handoffs_generation])
