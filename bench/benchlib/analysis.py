"""From raw data to figures.

Inputs of one segment (one start, load and stop of a contender): loadgen's
--csv (one line per request: start_us,latency_us,result,pid; CLOCK_MONOTONIC,
sorted by start), the reload trigger times (same clock), and the generations
the server shim reported (exec time, exit time, pid). A row of the report
merges the segments of one contender, load mode and interval, which run
interleaved with the other rows so that a busy moment of the machine does
not land on one contender only.

Definitions (also in bench/README.md):
- "near reloads": requests that started within +-1 s of a trigger.
- For a trigger at t, its new generation is the first generation started at
  or after t that answered a request. "-> started" is that generation's start
  (the shim's exec) minus t: the part of the reload latency that is not the
  server's own initialisation, since once started the server accepts on the
  shared socket by itself. "-> first response" is the end of its first
  successful request minus t. "-> old gone" is the exit of the last
  generation that was alive at t and had started before it, minus t.
- A trigger is lost when no generation started after it. A generation that
  started in time to serve (initialisation + 0.5 s before the load ended)
  but never answered a request is counted apart ("never served").
- Overlapping starts: consecutive generations started less than the
  server's initialisation delay apart, i.e. a new one was started while the
  previous one could not be ready yet (two reloads in parallel, or a restart
  that killed a server still starting).
"""

import bisect
from collections import Counter

RESULTS = ("ok", "refused", "reset", "timeout", "non2xx", "other")
WINDOW_US = 1_000_000


def percentile(sorted_vals, p):
    """Nearest rank, as loadgen computes it."""
    n = len(sorted_vals)
    if n == 0:
        return None
    rank = int(p * n + 0.999999)
    return sorted_vals[max(rank, 1) - 1]


def spread(vals):
    """n, median, p95 and max of a list of numbers (None when empty)."""
    s = sorted(v for v in vals if v is not None)
    if not s:
        return None
    return {"n": len(s), "median": percentile(s, 0.5), "p95": percentile(s, 0.95), "max": s[-1]}


def hist_summary(hist):
    """p50 / p99 / max of a Counter {latency_us: count} (nearest rank)."""
    n = sum(hist.values())
    if n == 0:
        return None
    out = {"n": n, "max": max(hist)}
    want = [("p50", int(0.50 * n + 0.999999)), ("p99", int(0.99 * n + 0.999999))]
    seen = 0
    for v in sorted(hist):
        seen += hist[v]
        while want and seen >= max(want[0][1], 1):
            out[want.pop(0)[0]] = v
        if not want:
            break
    return out


def merged_windows(triggers, half=WINDOW_US):
    out = []
    for t in sorted(triggers):
        lo, hi = t - half, t + half
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def read_requests(csv_path, triggers):
    """One pass over the CSV: counts, latency histograms (all / near
    reloads), the first successful response per pid, the failures."""
    counts = dict.fromkeys(RESULTS, 0)
    lat_all, lat_near = [], []
    first_ok = {}
    failures = []
    windows = merged_windows(triggers)
    wi, nw = 0, len(windows)
    first_start = last_end = None
    with open(csv_path) as f:
        for line in f:
            s, l, r, p = line.rstrip("\n").split(",")
            start, lat = int(s), int(l)
            counts[r] += 1
            lat_all.append(lat)
            while wi < nw and windows[wi][1] < start:
                wi += 1
            if wi < nw and windows[wi][0] <= start:
                lat_near.append(lat)
            end = start + lat
            if first_start is None:
                first_start = start
            if last_end is None or end > last_end:
                last_end = end
            if r == "ok":
                pid = int(p)
                if end < first_ok.get(pid, 1 << 62):
                    first_ok[pid] = end
            else:
                failures.append((start, r, int(p)))
    return {"counts": counts, "hist_all": Counter(lat_all), "hist_near": Counter(lat_near),
            "first_ok": first_ok, "failures": failures,
            "span_us": (last_end - first_start) if first_start is not None else 0,
            "end_us": last_end or 0}


def reload_lists(triggers, gens, first_ok, init_delay_us, load_end_us):
    """Per-trigger latencies and the counts of one segment."""
    gens = sorted(gens, key=lambda g: g.exec_us)
    all_exec = [g.exec_us for g in gens]
    served = [g for g in gens if g.pid in first_ok]
    served_exec = [g.exec_us for g in served]
    out = {"to_exec": [], "to_first": [], "beyond_nominal": [], "to_old_gone": [],
           "triggers": len(triggers), "generations": len(gens), "served": len(served),
           "completed": max(len(served) - 1, 0), "lost": 0, "old_unknown": 0}
    for t in triggers:
        if bisect.bisect_left(all_exec, t) == len(gens):
            out["lost"] += 1               # nothing started after it
            continue
        i = bisect.bisect_left(served_exec, t)
        if i < len(served):
            g = served[i]
            out["to_exec"].append(g.exec_us - t)
            out["to_first"].append(first_ok[g.pid] - t)
            out["beyond_nominal"].append(first_ok[g.pid] - t - init_delay_us)
        old = [o for o in gens if o.exec_us < t and (o.exit_us is None or o.exit_us > t)]
        if any(o.exit_us is None for o in old):
            out["old_unknown"] += 1
        elif old:
            out["to_old_gone"].append(max(o.exit_us for o in old) - t)
    gaps = [b.exec_us - a.exec_us for a, b in zip(gens, gens[1:])]
    out["overlapping_starts"] = sum(1 for gap in gaps if gap < init_delay_us)
    out["min_start_gap_us"] = min(gaps) if gaps else None
    out["never_served"] = sum(1 for g in gens if g.pid not in first_ok
                              and g.exec_us + init_delay_us + 500_000 < load_end_us)
    return out


def failure_attribution(failures, triggers, gens, limit=5):
    """Where failures come from: the first few, with the time to the nearest
    trigger and the answering pid's generation (if any answered)."""
    ts = sorted(triggers)
    by_pid = {g.pid: g for g in gens}
    out = []
    for start, result, pid in failures[:limit]:
        near = None
        if ts:
            i = bisect.bisect_left(ts, start)
            cands = [ts[j] for j in (i - 1, i) if 0 <= j < len(ts)]
            near = min((start - c for c in cands), key=abs)
        g = by_pid.get(pid)
        out.append({"result": result, "ms_from_nearest_trigger": None if near is None else near / 1000,
                    "generation": g.gen if g else None})
    return out


def analyse_segment(csv_path, triggers, gens, init_delay_us):
    req = read_requests(csv_path, triggers)
    return {
        "counts": req["counts"], "hist_all": req["hist_all"], "hist_near": req["hist_near"],
        "span_us": req["span_us"],
        "failures": failure_attribution(req["failures"], triggers, gens),
        "reloads": reload_lists(triggers, gens, req["first_ok"], init_delay_us, req["end_us"]),
    }


def merge(segments):
    """One row's figures from its segments."""
    counts = dict.fromkeys(RESULTS, 0)
    hist_all, hist_near = Counter(), Counter()
    span = 0
    failures = []
    rl = {"to_exec": [], "to_first": [], "beyond_nominal": [], "to_old_gone": []}
    sums = dict.fromkeys(("triggers", "generations", "served", "completed", "lost", "old_unknown",
                          "overlapping_starts", "never_served"), 0)
    gaps = []
    for s in segments:
        for k in RESULTS:
            counts[k] += s["counts"][k]
        hist_all.update(s["hist_all"])
        hist_near.update(s["hist_near"])
        span += s["span_us"]
        failures += s["failures"]
        for k in rl:
            rl[k] += s["reloads"][k]
        for k in sums:
            sums[k] += s["reloads"][k]
        if s["reloads"]["min_start_gap_us"] is not None:
            gaps.append(s["reloads"]["min_start_gap_us"])
    total = sum(counts.values())
    reloads = dict(sums)
    reloads.update({k: spread(v) for k, v in rl.items()})
    reloads["min_start_gap_us"] = min(gaps) if gaps else None
    return {
        "requests": total, "failed": total - counts["ok"], "counts": counts,
        "latency_all": hist_summary(hist_all),
        "latency_near": hist_summary(hist_near) if reloads["triggers"] else None,
        "rate": total / (span / 1e6) if span else 0.0,
        "failures": failures[:5],
        "reloads": reloads,
        "segments": len(segments),
    }
