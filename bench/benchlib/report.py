"""The markdown report and the target checks."""

import statistics

from . import floor as F

RSS_LIMIT_KIB = 3 * 1024
ANON_LIMIT_KIB = 512
P99_FACTOR = 1.10
BEYOND_INIT_LIMIT_US = 5000
THROUGHPUT_MIN = 0.98
RELOADS_MIN = 1000

MODE_NAME = {"new": "new conn.", "keepalive": "keep-alive"}


def ms(us):
    if us is None:
        return "–"
    v = us / 1000
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def triple(lat):
    if not lat:
        return "–"
    return "%s / %s / %s" % (ms(lat["p50"]), ms(lat["p99"]), ms(lat["max"]))


def spread_txt(s, keys=("median", "max")):
    if not s:
        return "–"
    return " / ".join(ms(s[k]) for k in keys)


def interval_txt(r):
    return "%d ms" % r["interval_ms"] if r["interval_ms"] else "none"


def failed_txt(r):
    c = r["counts"]
    if not r["failed"]:
        return "**0**"
    return "**%d** (%d / %d / %d / %d / %d)" % (r["failed"], c["refused"], c["reset"], c["timeout"],
                                              c["non2xx"], c["other"])


def mem_txt(m):
    if not m:
        return "–"
    return "%d / %d KiB" % (m["rss_kib"], m["anon_kib"])


def seg_txt(r):
    v = r.get("p99_segments") or []
    return "–" if not v else ", ".join(ms(x) for x in v)


def foreign_txt(f):
    if not f:
        return "–"
    return "%.2f" % f["cores"]


class Check:
    def __init__(self, target, what, measured, ok, counted, note=""):
        self.target, self.what, self.measured, self.ok = target, what, measured, ok
        self.counted, self.note = counted, note

    def verdict(self):
        if self.ok is None:
            return "n/a"
        v = "met" if self.ok else "**MISSED**"
        return v if self.counted else v + " (info)"


def baseline_for(runs, mode):
    for r in runs:
        if r["contender"] == "direct" and r["mode"] == mode:
            return r
    return None


def floor_checks(fl, perf_counted):
    """Issue 17's targets, from the idle measurements of benchlib/floor.py."""
    if not fl:
        return []
    d = F.derived(fl)
    sv, ho = fl["supervise"], fl["handover"]
    out = []
    bl = d["blocks"]
    nb = len(sv["blocks"])

    def spread(k, fmt):
        return ("blocks %s–%s, the run pooled %s" % (fmt % bl[k]["min"], fmt % bl[k]["max"], fmt % bl[k]["pooled"]))

    out.append(Check("supervise SIGHUP → READY=1 ≤ %.2f × a bare vfork+exec+READY=1 of the same app (median "
                     "of %d paired blocks)" % (F.SUPERVISE_VS_FLOOR, nb), "idle, app ready at once",
                     "×%.3f (%s); p50 %s ms vs floor %s ms; the least relay ×%.3f"
                     % (d["supervise_vs_floor"], spread("ratio", "×%.3f"), ms(sv["sighup_to_ready"]["p50_us"]),
                        ms(fl["floor"]["p50_us"]), d["relay_vs_floor"]),
                     d["supervise_vs_floor"] <= F.SUPERVISE_VS_FLOOR, perf_counted))
    start = fl["start_handoff"]["start_to_exit"]["p50_us"]
    out.append(Check("handover SIGHUP → MAINPID= ≤ supervise SIGHUP → READY=1 + %.1f × one start of "
                     "`handoff --version` (medians)" % F.HANDOVER_EXCESS_STARTS, "idle, app ready at once",
                     "%s ms = supervise %s ms + %s ms; one start %s ms: excess ×%.2f of a start"
                     % (ms(ho["sighup_to_mainpid"]["p50_us"]), ms(sv["sighup_to_ready"]["p50_us"]),
                        ms(d["handover_excess_us"]), ms(start), d["handover_excess_starts"]),
                     d["handover_excess_starts"] <= F.HANDOVER_EXCESS_STARTS, perf_counted))
    out.append(Check("back-to-back reloads ≥ %d/s (idle; median of %d blocks)" % (F.RELOADS_PER_S_MIN, nb),
                     "supervise, idle",
                     "%.0f/s (%s; %d reloads in %.2f s)%s" % (d["per_s"], spread("per_s", "%.0f/s"),
                                                               sv["sighup_to_ready"]["n"], sv["seconds"],
                                                               "; in the same blocks the floor's bare starts "
                                                               "%.0f/s, the least relay %.0f/s"
                                                               % (d["floor_per_s"], d["relay_per_s"])
                                                               if d.get("floor_per_s") else ""),
                     d["per_s"] >= F.RELOADS_PER_S_MIN, perf_counted))
    out.append(Check("handoff CPU per reload ≤ %.1f ms (median of %d blocks)" % (F.CPU_PER_RELOAD_MS_MAX, nb),
                     "supervise, idle",
                     "%.3f ms (/proc/PID/schedstat; %s); a bare spawner's own CPU per start: %.3f ms, the "
                     "least relay's per reload: %.3f ms"
                     % (d["cpu_ms_per_reload"], spread("cpu_ms", "%.3f ms"), d["floor_cpu_ms"], d["relay_cpu_ms"]),
                     d["cpu_ms_per_reload"] <= F.CPU_PER_RELOAD_MS_MAX, perf_counted))
    pd = d["private_dirty"]
    out.append(Check("Private_Dirty ≤ %d kB and flat (±%d kB) across the reloads"
                     % (F.PRIVATE_DIRTY_MAX_KB, F.PRIVATE_DIRTY_FLAT_KB), "supervise, idle",
                     "%d kB at start, %d after 10 reloads, %d after %d; Pss %d / %d / %d kB; fds %d / %d / %d"
                     % (pd[0], pd[1], pd[2], sv["sighup_to_ready"]["n"], *d["pss"], *d["fds"]),
                     max(pd) <= F.PRIVATE_DIRTY_MAX_KB and abs(pd[2] - pd[0]) <= F.PRIVATE_DIRTY_FLAT_KB
                     and d["fds"][1] == d["fds"][2], perf_counted))
    kac = fl.get("keepalive_close")
    if kac:
        ours, theirs = kac["rows"]["supervise_close"], kac["rows"]["self_reexec"]
        probs = ours["problems"] + theirs["problems"]
        out.append(Check("keep-alive read errors, server closing idle connections at its stop, reload every %d ms: "
                         "handoff ≤ the same server handing its listener over in-process" % kac["interval_ms"],
                         "keep-alive, %g s each" % kac["seconds"],
                         "handoff %d failed of %d (%d reloads); in-process %d of %d (%d reloads)%s"
                         % (ours["failed"], ours["requests"], ours["reloads"], theirs["failed"], theirs["requests"],
                            theirs["reloads"], "; " + "; ".join(probs) if probs else ""),
                         ours["failed"] <= theirs["failed"] and not probs, perf_counted))
    sc = fl.get("systemctl")
    if sc and sc["handoff"] and sc["true"]:
        ratio = sc["handoff"]["median"] / sc["true"]["median"]
        out.append(Check("`systemctl reload` ≤ %.1f × the same units with `ExecReload=/bin/true` (median)"
                         % F.SYSTEMCTL_VS_TRUE, "handover, idle, server ready at once",
                         "%s ms vs %s ms (×%.2f), %d reloads each%s%s"
                         % (ms(sc["handoff"]["median"]), ms(sc["true"]["median"]), ratio, sc["handoff"]["n"],
                            ", interleaved ABBA" if sc.get("paired") else "",
                            "; " + "; ".join(sc["problems"]) if sc["problems"] else ""),
                         ratio <= F.SYSTEMCTL_VS_TRUE and not sc["problems"], perf_counted))
    return out


def checks(runs, tp, b2b, params, quick, skipped, fl=None):
    """One Check per target and run. In --quick only "no request lost" (and
    no reload lost or run in parallel) is counted; the performance targets
    are shown but, on runs of a few seconds, informational."""
    out = []
    perf_counted = not quick
    ours = [r for r in runs if r["handoff"]]
    for r in ours:
        rl = r["reloads"]
        ok = r["failed"] == 0 and rl["lost"] == 0 and rl["overlapping_starts"] == 0 and rl["completed"] > 0 \
            and rl["never_served"] == 0 and not r["problems"]
        out.append(Check("0 failed requests; reloads never lost, never in parallel",
                         "%s, %s, reload every %s" % (r["contender"], MODE_NAME[r["mode"]], interval_txt(r)),
                         "%d failed of %d; %d reloads, %d lost, %d overlapping starts, %d never served%s"
                         % (r["failed"], r["requests"], rl["completed"], rl["lost"], rl["overlapping_starts"],
                            rl["never_served"],
                            "; " + "; ".join(r["problems"]) if r["problems"] else ""),
                         ok, True))
    for b in b2b:
        ok = b["load"]["failed"] == 0 and not b["problems"] and b["reloads"] > 0
        out.append(Check("0 failed requests; reloads never lost, never in parallel",
                         "supervise, back-to-back, %s" % MODE_NAME[b["mode"]],
                         "%d failed of %d; %d reloads" % (b["load"]["failed"], b["load"]["requests"], b["reloads"]),
                         ok, True))
    total = sum(r["reloads"]["completed"] for r in ours)
    modes = {(r["contender"], r["mode"]) for r in ours}
    out.append(Check("at least 1,000 reloads (handoff rows, both modes, both loads, both intervals)",
                     "total", "%d reloads over %d runs (%d mode × load pairs)" % (total, len(ours), len(modes)),
                     total >= RELOADS_MIN, perf_counted))
    for r in ours:
        base = baseline_for(runs, r["mode"])
        near = r["latency_near"]
        if not base or not near:
            continue
        limit = base["latency_all"]["p99"] * P99_FACTOR
        out.append(Check("p99 within ±1 s of reloads ≤ 1.10 × no-reload baseline",
                         "%s, %s, reload every %s" % (r["contender"], MODE_NAME[r["mode"]], interval_txt(r)),
                         "%s ms vs baseline %s ms (×%.2f); p99 per segment: this row %s, baseline %s"
                         % (ms(near["p99"]), ms(base["latency_all"]["p99"]), near["p99"] / base["latency_all"]["p99"],
                            seg_txt(r), seg_txt(base)),
                         near["p99"] <= limit, perf_counted))
    for r in ours:
        if r["interval_ms"] != params["interval"]:
            continue            # with reloads piling up the latency includes the queue
        rl = r["reloads"]
        if not rl["to_exec"]:
            continue
        out.append(Check("reload latency beyond the server's initialisation ≤ 5 ms median",
                         "%s, %s, reload every %s" % (r["contender"], MODE_NAME[r["mode"]], interval_txt(r)),
                         "%s ms median trigger → server started (→ first response %s ms, i.e. %s ms beyond "
                         "the nominal %d ms)" % (ms(rl["to_exec"]["median"]), ms(rl["to_first"]["median"]),
                                                ms(rl["beyond_nominal"]["median"]), params["init_delay"]),
                         rl["to_exec"]["median"] <= BEYOND_INIT_LIMIT_US, perf_counted))
    for key in ("supervise", "handover"):
        mems = [r["memory"] for r in ours if r["contender"].startswith(key) and r["memory"]]
        mems += [b["memory"] for b in b2b if key == "supervise" and b["memory"]]
        if not mems:
            continue
        rss = max(m["rss_kib"] for m in mems)
        anon = max(m["anon_kib"] for m in mems)
        out.append(Check("handoff resident ≤ 3 MiB, anonymous ≤ 512 KiB", key,
                         "max %d KiB resident, %d KiB anonymous (%d samples)"
                         % (rss, anon, sum(m["samples"] for m in mems)),
                         rss <= RSS_LIMIT_KIB and anon <= ANON_LIMIT_KIB, perf_counted))
    if tp:
        cpu = tp["cpu_us_per_request"]
        out.append(Check("throughput through handoff ≥ 0.98 × direct", "wrk keep-alive, alternating",
                         "%.3f median of %d rounds (per round %s); server CPU per request %.1f µs behind "
                         "handoff vs %.1f µs alone (×%.3f); handoff's own CPU %.3f s"
                         % (tp["ratio"], tp["rounds"], ", ".join("%.2f" % x for x in tp["pair_ratios"]),
                            cpu["handoff"], cpu["direct"], cpu["handoff"] / cpu["direct"], tp["handoff_cpu_s"]),
                         tp["ratio"] >= THROUGHPUT_MIN, perf_counted))
    out += floor_checks(fl, perf_counted)
    others = sorted({r["contender"] for r in runs if not r["handoff"] and r["contender"] != "direct"})
    out.append(Check("the other contenders measured beside ours", ", ".join(others) or "none",
                     "skipped: " + "; ".join(skipped) if skipped else "all ran", None, False))
    return out


def keepalive_errors(runs, fast):
    """Keep-alive failed requests with reloads every `fast` ms, next to the
    no-reload baseline: (label, failed, requests) per row."""
    return [(r["label"] + (", reload every %s" % interval_txt(r) if r["interval_ms"] else ", no reloads"),
             r["failed"], r["requests"])
            for r in runs if r["mode"] == "keepalive" and r["interval_ms"] in (0, fast)]


def render_floor(fl, runs, params, add):
    d = F.derived(fl)
    sv, ho = fl["supervise"], fl["handover"]
    sh, st = fl["start_handoff"]["start_to_exit"], fl["start_true"]["start_to_exit"]

    def pm(s):
        return "%s / %s" % (ms(s["p50_us"]), ms(s["p99_us"]))
    add("## Reload cost on an idle machine, against its floors")
    add("")
    add("Timed by `bench/spawn-floor.c` (one C program for both sides of each comparison). App: "
        "`fixture-server --init-delay 0 --grace-ms 0` (ready at once, no server-shim). Their stderr (handoff's log, "
        "the app's) goes to a file, as with the units' `StandardOutput=append:`. p50 / p99 in ms.")
    add("")
    add("| what | runs | p50 / p99 | per second |")
    add("|---|---|---|---|")
    add("| floor: bare vfork+exec of the app → its READY=1 (in %d blocks, each before a block of the supervise "
        "reloads) | %d | %s | |" % (len(sv["blocks"]), fl["floor"]["n"], pm(fl["floor"])))
    add("| supervise: SIGHUP → handoff's READY=1, back to back | %d | %s | %.0f reloads/s pooled, **%.0f** in "
        "the median block |" % (sv["sighup_to_ready"]["n"], pm(sv["sighup_to_ready"]), sv["per_s"], d["per_s"]))
    add("| relay: the least supervisor (`spawn-floor relay`: signalfd, one notify socket, no logging), SIGHUP → its "
        "READY=1, in the same blocks | %d | %s | |" % (sv["relay"]["n"], pm(sv["relay"])))
    add("| handover: SIGHUP → the old main's MAINPID= (next reload once the old main has exited and the standby waits) | %d | %s | |"
        % (ho["sighup_to_mainpid"]["n"], pm(ho["sighup_to_mainpid"])))
    add("| one start of handoff: vfork+exec of `handoff --version` until it exits | %d | %s | |" % (sh["n"], pm(sh)))
    add("| one start of `/bin/true` (libc only) | %d | %s | |" % (st["n"], pm(st)))
    if fl.get("start_handoffctl"):
        cs = fl["start_handoffctl"]["start_to_exit"]
        add("| one start of `handoffctl --version` (the reload client, libc only) | %d | %s | |" % (cs["n"], pm(cs)))
    sc = fl.get("systemctl")
    if sc and sc["handoff"] and sc["true"]:
        for k, what in (("handoff", "`systemctl --user reload`, shipped units (`ExecReload=handoffctl reload`), "
                                    "handover"),
                        ("true", "`systemctl --user reload`, the same units with `ExecReload=/bin/true` "
                                 "(interleaved with the above, ABBA)")):
            add("| %s | %d | %s / %s (p95) | |" % (what, sc[k]["n"], ms(sc[k]["median"]), ms(sc[k]["p95"])))
    add("")
    pd, pss = d["private_dirty"], d["pss"]
    wakes, excess = 2 * d["wake_up_us"], d["relay_excess_us"]
    if excess <= 0:
        of_excess = "%.0f µs; the relay was no slower than the floor in this run" % wakes
    elif excess <= wakes:
        of_excess = "%.0f µs, about its whole ~%.0f µs excess" % (wakes, excess)
    else:
        of_excess = ("%.0f µs of its ~%.0f µs excess (what the rest may be: `bench/README.md`)"
                     % (wakes, excess))
    add("What any supervisor in the middle pays (the relay, median block): ×%.3f the floor, %.3f ms CPU per "
        "reload; handoff / relay: ×%.3f (blocks ×%.3f–×%.3f). One wake-up of a sleeping process here (`spawn-floor "
        "wake`, p50): %.1f µs; the relay's two more per reload than the floor: %s."
        % (d["relay_vs_floor"], d["relay_cpu_ms"], d["supervise_vs_relay"], d["blocks"]["vs_relay"]["min"],
           d["blocks"]["vs_relay"]["max"], d["wake_up_us"], of_excess))
    add("")
    add("supervise / floor: **×%.3f** (the median of the paired blocks' ratios). Handover excess over supervise: %s ms = **×%.2f** one start of handoff. "
        "handoff CPU per reload (`/proc/PID/schedstat`, median block): **%.3f ms** (the bare spawner's own, per start: %.3f ms). handoff `Private_Dirty` (smaps_rollup): %d kB at "
        "start, %d after 10 reloads, %d after %d; `Pss` %d / %d / %d kB; open fds %d / %d / %d (each once handoff has settled: one generation, its loop idle). "
        "`handoff --version` − `/bin/true`: %s ms (dynamic loading of libsystemd and its libraries, and "
        "handoff's own start). handoff's runtime directory (its notify sockets): %s."
        % (d["supervise_vs_floor"], ms(d["handover_excess_us"]), d["handover_excess_starts"],
           d["cpu_ms_per_reload"], d["floor_cpu_ms"], pd[0], pd[1], pd[2], sv["sighup_to_ready"]["n"], *pss, *d["fds"],
           ms(d["libs_us"]), fl.get("runtime_dir", "?")))
    if d.get("standby_private_dirty") is not None:
        add("Handover mode keeps one more process besides, idle: the standby (the next handoff started ahead), "
            "`Private_Dirty` %d kB, `Pss` %d kB at the end of the handover run."
            % (d["standby_private_dirty"], d["standby_pss"]))
    add("")
    kac = fl.get("keepalive_close")
    if kac:
        add("Keep-alive failed requests with a server that closes its idle connections at once when told to stop "
            "(`--grace-ms 0`), reload every %d ms: %s." % (kac["interval_ms"], "; ".join(
                "%s: **%d** of %d (%d reloads)" % (r["label"], r["failed"], r["requests"], r["reloads"])
                for r in kac["rows"].values())))
        add("")
    ka = keepalive_errors(runs, params.get("fast_interval"))
    if ka:
        add("Keep-alive failed requests (read errors) with reloads every %s ms, next to the no-reload "
            "baseline: %s." % (params.get("fast_interval"),
                               "; ".join("%s: **%d** of %d" % row for row in ka)))
        add("")


def render(runs, tp, b2b, chk, params, meta, notes, fl=None):
    L = []
    add = L.append
    add("# reload-under-load results%s" % (" (--quick)" if params["quick"] else ""))
    add("")
    add("Command: `%s` · %s · %s cores (`nproc`) · %s · %s · handoff %s · %.0f s"
        % (meta["command"], meta["date"], meta["nproc"], meta["kernel"], meta["systemd"],
           meta["commit"], meta["elapsed"]))
    add("")
    add("Server: `tests/fixtures/fixture-server --init-delay %d` (grace %d ms with `Connection: close`, then "
        "drain) through `bench/server-shim`, the same for every contender. Load: `loadgen` on 127.0.0.1, "
        "closed loop, %d connections in new-connection mode and %d in keep-alive mode, per-request timeout %d ms. Reload every R ms from "
        "0.5 s into the load until %.1f s before its end. Each row is %d segment(s) (start, load, stop), run "
        "interleaved with the other rows of the same load mode."
        % (params["init_delay"], 100, params["concurrency"]["new"], params["concurrency"]["keepalive"],
           params["load_timeout_ms"], params["tail_s"],
           params["rounds"]))
    add("")
    secs = sum(r["duration_s"] for r in runs if r.get("foreign_cpu"))
    if secs:
        top = {}
        for r in runs:
            for name, cores in (r.get("foreign_cpu") or {}).get("top", []):
                top[name] = top.get(name, 0) + cores * r["duration_s"] / secs
        avg = sum(r["foreign_cpu"]["cores"] * r["duration_s"] for r in runs if r.get("foreign_cpu")) / secs
        add("Other processes on the machine (not the benchmark's) used **%.2f of %s cores** on average during "
            "the load runs (most: %s); every latency and rate below shares the machine with them."
            % (avg, meta["nproc"], ", ".join("%s %.2f" % kv for kv in sorted(top.items(), key=lambda kv: -kv[1])[:4])))
        add("")
    add("## Targets")
    add("")
    add("| target | run | measured | verdict |")
    add("|---|---|---|---|")
    for c in chk:
        add("| %s | %s | %s | %s |" % (c.target, c.what, c.measured, c.verdict()))
    add("")
    counted = [c for c in chk if c.counted]
    add("%d passed, %d failed (counted: %s)" % (
        sum(1 for c in counted if c.ok), sum(1 for c in counted if not c.ok),
        "no request or reload lost" if params["quick"] else "every target"))
    add("")
    ours = [r for r in runs if r["handoff"]]
    if ours:
        parts = ["%s/%s/%s: %d" % (r["contender"], MODE_NAME[r["mode"]], interval_txt(r),
                                   r["reloads"]["completed"]) for r in ours]
        add("handoff reloads completed: %s = **%d** in total; failed requests in those runs: **%d**."
            % (" + ".join(parts), sum(r["reloads"]["completed"] for r in ours),
               sum(r["failed"] for r in ours)))
        add("")
    add("## Requests while reloading")
    add("")
    add("Latency p50 / p99 / max in ms (whole run, and requests started within ±1 s of a trigger); p99 of "
        "each segment alone, to show the machine's noise. Failed: total (refused / reset / timed out / "
        "non-2xx / other). Others' CPU: cores used meanwhile by processes that are not the benchmark's.")
    add("")
    add("| contender | load | reload every | duration | requests | req/s | failed | whole run | ±1 s of reloads "
        "| p99 per segment | others' CPU |")
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        add("| %s | %s | %s | %.0f s | %d | %.0f | %s | %s | %s | %s | %s |" % (
            r["label"], MODE_NAME[r["mode"]], interval_txt(r), r["duration_s"], r["requests"], r["rate"],
            failed_txt(r), triple(r["latency_all"]), triple(r["latency_near"]), seg_txt(r),
            foreign_txt(r.get("foreign_cpu"))))
    add("")
    add("## Reloads")
    add("")
    add("Latencies in ms from the trigger (SIGHUP sent, or `systemctl` started): to the start of the new "
        "generation (the server's exec; from then on the server's own initialisation, since it accepts on the "
        "shared socket by itself; median / max), to its first response (median / p95 / max), that minus the "
        "nominal %d ms (median), and to the exit of the generation(s) it replaces (median / max). With R "
        "shorter than the initialisation a trigger waits for the running reload (coalesced), which these "
        "latencies include. Overlapping starts: a generation started while the previous one was still "
        "initialising (reloads in parallel, or a restart killing a server still starting). Never served: "
        "started in time but never answered. Memory: max VmRSS / RssAnon of the supervising process(es), "
        "sampled every 50 ms." % params["init_delay"])
    add("")
    add("| contender | load | reload every | triggers | reloads done | lost | overlapping starts | never served "
        "| → started | → first response | − %d ms | → old gone | supervisor memory |" % params["init_delay"])
    add("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        if not r["interval_ms"]:
            continue
        rl = r["reloads"]
        add("| %s | %s | %s | %d | %d | %d | %d | %d | %s | %s | %s | %s | %s |" % (
            r["label"], MODE_NAME[r["mode"]], interval_txt(r), rl["triggers"], rl["completed"], rl["lost"],
            rl["overlapping_starts"], rl["never_served"], spread_txt(rl["to_exec"]),
            spread_txt(rl["to_first"], ("median", "p95", "max")),
            spread_txt(rl["beyond_nominal"], ("median",)), spread_txt(rl["to_old_gone"]),
            mem_txt(r["memory"]) if r["supervisor"] else "– (systemd)"))
    add("")
    if tp:
        cpu = tp["cpu_us_per_request"]
        add("## Throughput")
        add("")
        add("`wrk -t1 -c%d -d%ds` (keep-alive) against the fixture alone (systemd-socket-activate) and the "
            "fixture behind handoff (supervise), both running throughout, %d rounds alternating (ABBA). handoff "
            "is not in the data path (the server accepts on the shared socket itself)."
            % (tp["connections"], tp["seconds"], tp["rounds"]))
        add("")
        add("| | req/s per round | mean | server CPU per request |")
        add("|---|---|---|---|")
        for k in ("direct", "handoff"):
            add("| %s | %s | %.0f | %.1f µs |" % (k, ", ".join("%.0f" % x for x in tp["rates"][k]),
                                                 statistics.mean(tp["rates"][k]), cpu[k]))
        add("")
        add("Ratio handoff / direct: **%.3f** (median of the rounds; ratio of the sums %.3f); per round: %s. "
            "Server CPU time per request behind handoff / alone: %.3f. handoff's own CPU time over all "
            "rounds: %.3f s." % (tp["ratio"], tp["sum_ratio"], ", ".join("%.3f" % x for x in tp["pair_ratios"]),
                                 cpu["handoff"] / cpu["direct"], tp["handoff_cpu_s"]))
        add("")
    if b2b:
        add("## Back-to-back reloads")
        add("")
        add("handoff `--mode=supervise` with a fake `NOTIFY_SOCKET`, server `--init-delay 0`: SIGHUP, wait "
            "for handoff's next `READY=1`, SIGHUP again; under load.")
        add("")
        add("| load | reloads | seconds | reloads/s | SIGHUP → READY=1 (median / p95 / max, ms) | requests | "
            "failed | handoff memory |")
        add("|---|---|---|---|---|---|---|---|")
        for b in b2b:
            add("| %s | %d | %.1f | **%.0f** | %s | %d | %d | %s |" % (
                MODE_NAME[b["mode"]], b["reloads"], b["seconds"], b["per_s"],
                spread_txt(b["per_reload"], ("median", "p95", "max")), b["load"]["requests"],
                b["load"]["failed"], mem_txt(b["memory"])))
        add("")
    if fl:
        render_floor(fl, runs, params, add)
    if notes:
        add("## Notes")
        add("")
        for n in notes:
            add("- " + n)
        add("")
    return "\n".join(L)
