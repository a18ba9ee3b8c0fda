"""Running things: one contender under load with periodic reloads, the
throughput comparison, and back-to-back reloads."""

import json
import os
import re
import signal
import subprocess
import time

from handofftest.net import free_port

from . import analysis
from . import procs as P
from .contenders import (DEMO, SYSTEMCTL, Direct, PairedReload, SelfReexec, Supervise, SuperviseCloseAtStop)

LOAD_TIMEOUT_MS = 5000      # loadgen's per-request limit: slower is a "timeout"
WARMUP_S = 0.5              # load before the first reload


def sleep_until_us(t_us):
    left = (t_us - P.now_us()) / 1e6
    if left > 0:
        time.sleep(left)


def start_load(ctx, port, mode, concurrency, duration_s, csv_path=None):
    argv = [ctx.loadgen, "--connect", "127.0.0.1:%d" % port, "--mode", mode,
            "--concurrency", str(concurrency), "--duration", str(int(duration_s * 1000)),
            "--timeout-ms", str(LOAD_TIMEOUT_MS)]
    if csv_path:
        argv += ["--csv", csv_path]
    return ctx.procs.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_load(ctx, proc, duration_s):
    try:
        out, err = proc.communicate(timeout=duration_s + LOAD_TIMEOUT_MS / 1000 + 30)
    except subprocess.TimeoutExpired:
        ctx.procs.stop(proc, timeout=1)
        raise RuntimeError("loadgen did not finish in time")
    ctx.procs.reap_finished()
    try:
        return json.loads(out)
    except ValueError:
        raise RuntimeError("loadgen printed no summary: %r %r" % (out[-300:], err[-300:]))


def periodic(fire, first, last, step):
    """Call fire() at first, first + step, ... up to last (CLOCK_MONOTONIC
    us); return the times it was called. A wake-up late by more than a step
    (a starved machine) skips the missed slots instead of firing a burst, and
    nothing fires after last, so the last reload has time to finish under load."""
    fired = []
    t = first
    while t <= last:
        sleep_until_us(t)
        now = P.now_us()
        if now > last:
            break
        fired.append(now)
        fire()
        t += step
        if t <= now:
            t = first + ((now - first) // step + 1) * step
    return fired


def tail_us(ctx):
    """No trigger this close to the end of the load: time for the last
    reload, queued behind one that just started, to finish and be seen."""
    return int(0.5e6 + 2 * ctx.init_delay_ms * 1000)


def run_segment(ctx, contender, mode, interval_ms, duration_s, concurrency, keep_csv=False):
    """Start contender, load it for duration_s, reload every interval_ms
    (from WARMUP_S until tail_us() before the end), stop it, and return the
    segment's figures (analysis.analyse_segment) plus memory, other
    processes' CPU and problems."""
    port = free_port()
    since = P.now_us()
    contender.since_us = since
    contender.start(port)
    sampler = P.MemorySampler(contender.supervisor_pids, contender.is_supervisor) if contender.supervisor else None
    foreign = P.ForeignCPU(ctx.our_roots())
    csv_path = os.path.join(ctx.tmpdir, "%s-%s-%s-%d.csv" % (contender.key, mode, interval_ms or 0, since))
    load = start_load(ctx, port, mode, concurrency, duration_s, csv_path)
    load_t0 = P.now_us()
    triggers = []
    try:
        if interval_ms:
            first = load_t0 + int(WARMUP_S * 1e6)
            last = load_t0 + int(duration_s * 1e6) - tail_us(ctx)
            with P.realtime():
                triggers = periodic(contender.trigger, first, last, interval_ms * 1000)
        summary = finish_load(ctx, load, duration_s)
        # The newest generation keeps serving; every older one must be gone
        # (its drain is bounded by the fixture's grace and read timeout).
        ctx.gens.wait_all_gone(since, keep=1, timeout=10)
    finally:
        memory = sampler.stop() if sampler else None
        others = foreign.stop()
        contender.stop()
    problems = contender.finish()
    gens = ctx.gens.snapshot(since)
    seg = analysis.analyse_segment(csv_path, triggers, gens, ctx.init_delay_ms * 1000)
    if not keep_csv:
        os.unlink(csv_path)
    n = sum(seg["counts"].values())
    failed = n - seg["counts"]["ok"]
    if n != summary["requests"] or failed != summary["failed"]:
        problems.append("CSV and loadgen summary disagree: %s vs %s" % (
            (n, failed), (summary["requests"], summary["failed"])))
    seg.update({"memory": memory, "foreign_cpu": others, "problems": problems,
                "first_error": summary.get("first_error", ""),
                "status": getattr(contender, "status", None), "seconds": duration_s,
                "exec_reload": getattr(contender, "exec_reload", None) if contender.handoff else None})
    return seg


def merge_row(key, cls, mode, interval_ms, concurrency, segs):
    """One report row from the segments of (contender, mode, interval)."""
    row = analysis.merge(segs)
    row["p99_segments"] = [analysis.hist_summary(s["hist_all"])["p99"] for s in segs if s["hist_all"]]
    mems = [s["memory"] for s in segs if s["memory"]]
    memory = None
    if mems:
        memory = {"rss_kib": max(m["rss_kib"] for m in mems), "anon_kib": max(m["anon_kib"] for m in mems),
                  "samples": sum(m["samples"] for m in mems), "processes": sum(m["processes"] for m in mems)}
    secs = sum(s["seconds"] for s in segs)
    top = {}
    for s in segs:
        for name, cores in s["foreign_cpu"]["top"]:
            top[name] = top.get(name, 0) + cores * s["seconds"] / secs
    statuses = [s["status"] for s in segs if s["status"]]
    row.update({
        "contender": key, "label": cls.label, "handoff": cls.handoff, "supervisor": cls.supervisor,
        "mode": mode, "interval_ms": interval_ms, "duration_s": secs, "concurrency": concurrency,
        "memory": memory,
        "foreign_cpu": {"cores": sum(s["foreign_cpu"]["cores"] * s["seconds"] for s in segs) / secs,
                        "top": sorted(top.items(), key=lambda kv: -kv[1])[:3]},
        "problems": [p for s in segs for p in s["problems"]],
        "first_error": next((s["first_error"] for s in segs if s["first_error"]), ""),
        # handoff's own account (handover: StatusText): reloads ok, failed
        "status": (sum(st[2] for st in statuses), sum(st[3] for st in statuses)) if statuses else None,
        "exec_reload": next((s["exec_reload"] for s in segs if s.get("exec_reload")), None),
    })
    return row


# ---- throughput -------------------------------------------------------------

WRK_RE = re.compile(r"Requests/sec:\s+([\d.]+)")


def wrk_start(ctx, port, seconds, connections):
    argv = ["/usr/bin/wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "http://127.0.0.1:%d/" % port]
    return ctx.procs.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wrk_finish(ctx, p, seconds):
    """(requests/s, requests, socket errors, non-2xx) from wrk's report."""
    try:
        out, err = p.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        ctx.procs.stop(p, timeout=1)
        raise RuntimeError("wrk did not finish in time")
    ctx.procs.reap_finished()
    m = WRK_RE.search(out)
    total = re.search(r"(\d+) requests in", out)
    if not m or not total:
        raise RuntimeError("wrk printed no rate: %r %r" % (out[-300:], err[-300:]))
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (float(m.group(1)), int(total.group(1)), errors.group(1) if errors else None,
            int(non2xx.group(1)) if non2xx else 0)


def cpu_seconds(pid):
    """utime + stime of a whole process (all its threads, live and gone)."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def throughput(ctx, rounds, seconds, connections):
    """wrk (keep-alive, -t1 -cN, fixed duration) against the fixture alone
    (systemd-socket-activate) and the fixture behind handoff (supervise), both
    running throughout, in alternating rounds (ABBA...). The ratio is the
    median of the rounds' ratios: on a shared machine one round is easily 30 %
    off. Also the server's CPU time per request on each side and handoff's
    own CPU time, which scheduling noise does not move: what a request costs
    the server is the capacity, and handoff is not in the data path."""
    direct, ours = Direct(ctx), Supervise(ctx)
    pd, ph = free_port(), free_port()
    since = P.now_us()
    rates = {"direct": [], "handoff": []}
    cpu = {"direct": [0.0, 0], "handoff": [0.0, 0]}      # server CPU seconds, requests
    notes = []
    direct.start(pd)
    try:
        ours.start(ph)
        try:
            server = {"direct": direct.proc.pid,
                      "handoff": max(ctx.gens.snapshot(since), key=lambda g: g.exec_us).pid}
            handoff_cpu0 = cpu_seconds(ours.proc.pid)
            for i in range(rounds):
                order = (("direct", pd), ("handoff", ph)) if i % 2 == 0 else (("handoff", ph), ("direct", pd))
                for name, port in order:
                    c0 = cpu_seconds(server[name])
                    rate, total, errors, non2xx = wrk_finish(ctx, wrk_start(ctx, port, seconds, connections), seconds)
                    cpu[name][0] += cpu_seconds(server[name]) - c0
                    cpu[name][1] += total
                    rates[name].append(rate)
                    if errors or non2xx:
                        notes.append("%s: socket errors %s, non-2xx %d" % (name, errors, non2xx))
            handoff_cpu = cpu_seconds(ours.proc.pid) - handoff_cpu0
        finally:
            ours.stop()
    finally:
        direct.stop()
    pair = sorted(h / d for h, d in zip(rates["handoff"], rates["direct"]))
    mid = len(pair) // 2
    ratio = pair[mid] if len(pair) % 2 else (pair[mid - 1] + pair[mid]) / 2
    us_per_req = {k: 1e6 * v[0] / v[1] if v[1] else None for k, v in cpu.items()}
    return {"rates": rates, "ratio": ratio, "sum_ratio": sum(rates["handoff"]) / sum(rates["direct"]),
            "pair_ratios": pair, "rounds": rounds, "seconds": seconds, "connections": connections,
            "cpu_us_per_request": us_per_req, "handoff_cpu_s": handoff_cpu,
            "notes": notes + ours.problems + direct.problems}


# ---- back to back -------------------------------------------------------------

def back_to_back(ctx, seconds, mode, concurrency):
    """handoff --mode=supervise with a fake NOTIFY_SOCKET and a server that is
    ready at once (--init-delay 0): SIGHUP, wait for handoff's next READY=1,
    SIGHUP again, for `seconds`, under load."""
    notify = P.fake_notify(ctx.tmpdir, "notify-b2b-%s.sock" % mode)
    ours = Supervise(ctx)
    port = free_port()
    since = P.now_us()
    try:
        ours.start(port, extra_env={"NOTIFY_SOCKET": notify.path}, init_delay_ms=0)
        notify.wait_count("READY", 1, timeout=10)
        sampler = P.MemorySampler(ours.supervisor_pids, ours.is_supervisor)
        load = start_load(ctx, port, mode, concurrency, seconds + 1.0)
        time.sleep(0.3)
        per_reload = []
        n = 1
        t_end = time.monotonic() + seconds
        t_start = time.monotonic()
        with P.realtime():
            while time.monotonic() < t_end:
                t = P.now_us()
                os.kill(ours.proc.pid, signal.SIGHUP)
                n += 1
                done = notify.wait_count("READY", n, timeout=10).t_us
                per_reload.append(done - t)
        elapsed = time.monotonic() - t_start
        summary = finish_load(ctx, load, seconds + 1.0)
        ctx.gens.wait_all_gone(since, keep=1, timeout=10)
        memory = sampler.stop()
    finally:
        ours.stop()
        notify.close()
    gens = ctx.gens.snapshot(since)
    return {"reloads": len(per_reload), "seconds": elapsed, "per_s": len(per_reload) / elapsed,
            "per_reload": analysis.spread(per_reload), "generations": len(gens),
            "mode": mode, "concurrency": concurrency, "load": summary, "memory": memory,
            "problems": ours.problems}


# ---- keep-alive with a server that closes idle connections at its stop -------

def keepalive_close_at_stop(ctx, interval_ms, seconds, concurrency, rounds):
    """Keep-alive load on a server that closes its idle connections at once
    when told to stop (--grace-ms 0), reloaded every interval_ms: handoff
    (supervise mode) against the same server handing its listener over
    in-process (SelfReexec). A client whose idle connection is closed just
    as it sends a request sees a read error: how many, and whether handoff
    adds any of its own, is the question. Rounds alternate the two."""
    out = {}
    for _ in range(rounds):
        for cls in (SuperviseCloseAtStop, SelfReexec):
            seg = run_segment(ctx, cls(ctx), "keepalive", interval_ms, seconds, concurrency)
            o = out.setdefault(cls.key, {"label": cls.label, "requests": 0, "failed": 0, "reloads": 0,
                                         "triggers": 0, "problems": []})
            o["requests"] += sum(seg["counts"].values())
            o["failed"] += sum(seg["counts"].values()) - seg["counts"]["ok"]
            o["reloads"] += seg["reloads"]["completed"]
            o["triggers"] += seg["reloads"]["triggers"]
            o["problems"] += seg["problems"]
    return {"interval_ms": interval_ms, "seconds": seconds * rounds, "rows": out}


# ---- systemctl reload against its baseline ------------------------------------

def settled(ctx, handoffctl):
    """The demo service idle in handover mode: one serving generation, no
    predecessor still draining, its standby started ahead and waiting."""
    main = ctx.um.show(DEMO, "MainPID").get("MainPID", "0")
    r = subprocess.run([handoffctl, "status", "--json", "--pid", main], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        return False
    st = json.loads(r.stdout)
    return (st["state"] == "serving" and not st["predecessor_draining"] and st["standby_pid"] is not None
            and [g["role"] for g in st["generations"]] == ["serving"])


def systemctl_reload(ctx, n):
    """`systemctl --user reload` of the shipped units on an idle service
    (server ready at once), timed from the start of systemctl to its exit,
    n times with ExecReload= as shipped (handoffctl reload) and n times
    with /bin/true in its place, which is what systemd's reload job costs by
    itself. Paired: one service, its ExecReload= program a symlink pointed
    at one or the other before each reload, in the order ABBA, so that
    both sides share the machine's drift. Each reload starts from a settled
    service (settled()): what a handover reload leaves to do after systemctl
    has returned (the old generation's and the old main's exits, the new
    main's standby) is then never in the next reload's time, whichever side
    that is, and every handoffctl reload finds its standby waiting."""
    times = {"handoff": [], "true": []}
    problems = []
    c = PairedReload(ctx)
    c.start(free_port())
    try:
        for i in range(n):
            order = (("handoff", c.shipped), ("true", "/bin/true"))
            for key, target in (order if i % 2 == 0 else order[::-1]):
                c.point(target)
                P.wait_for(lambda: settled(ctx, c.shipped), 30, "the service to settle before a reload", 0.01)
                t0 = P.now_us()
                r = subprocess.run([SYSTEMCTL, "--user", "--no-pager", "reload", DEMO], env=ctx.um.env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60)
                times[key].append(P.now_us() - t0)
                c.expected += key == "handoff"
                if r.returncode != 0:
                    problems.append("%s: systemctl reload exited %d: %s" % (key, r.returncode,
                                                                             r.stderr.strip()[-200:]))
    finally:
        c.stop()
    problems += c.finish()
    return {"n": n, "handoff": analysis.spread(times["handoff"]), "true": analysis.spread(times["true"]),
            "paired": True, "problems": problems}
