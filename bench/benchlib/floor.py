"""The cost of a reload on an idle machine, against its floors.

Everything here is timed by bench/spawn-floor.c (built into the temp dir),
so that each figure and the floor it is compared with are measured the same
way: the same clock, the same notify socket, no Python in between. The app
is the fixture server itself (no server-shim), ready at once
(--init-delay 0) and gone at once when stopped (--grace-ms 0):

- floor: vfork + exec of the app with a listener at fd 3, until its READY=1,
  back to back, the previous one sent SIGTERM after each READY=1 (as handoff
  retires the old generation);
- supervise: handoff --mode=supervise, back to back: SIGHUP -> READY=1, and
  handoff's CPU time, smaps_rollup (Private_Dirty, Pss) and fd count over
  the run. The two are paired (spawn-floor paired): 20 blocks of reloads,
  each after a block of bare starts, and the targets are on the median
  block, so that the machine's drift over the run (on this kind of VM the
  same run twice can differ by half) moves both sides of each ratio alike;
- relay: in the same blocks, as many reloads of the least supervisor that
  stays in the middle (spawn-floor relay: a signalfd, one notify socket
  for all generations, no logging, no bookkeeping): what of supervise's
  excess over the floor any such supervisor pays on this machine, and what
  is handoff's own;
- handover: handoff --mode=handover, spawn-floor being the service manager
  (a child subreaper answering BARRIER=1): SIGHUP -> MAINPID=;
- start: vfork + exec of `handoff --version` until it exits (one process
  start of handoff: what a handover may add), of /bin/true (a process
  start with libc only), to show what loading libsystemd costs, and of
  `handoffctl --version` (the reload client, libc only: what each
  `systemctl reload` starts);
- wake: what waking a process asleep in recv() costs on this machine (half
  a round trip between two processes, 2 ms apart): a supervisor in the
  middle adds two wake-ups to a reload, which says how much of the relay's
  excess they are (little of it when it has one; what else it is:
  bench/README.md).
"""

import json
import os
import shutil
import statistics
import subprocess
import tempfile

try:
    from handofftest.net import free_port
except ImportError:         # run alone (see the end of this file)
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "tests", "lib"))
    from handofftest.net import free_port
from handofftest.tmpfs import fs_type, tmpfs_dir

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# reloads: in 20 blocks, each after 3 bare starts per 10 reloads (at least 3).
PLANS = {
    "full": {"reloads": 1000, "handover": 40, "start": 200, "wake": 1000},
    "quick": {"reloads": 100, "handover": 6, "start": 20, "wake": 100},
}

# Issue 17's targets (ratios from one run).
SUPERVISE_VS_FLOOR = 1.05
HANDOVER_EXCESS_STARTS = 1.2
RELOADS_PER_S_MIN = 200
CPU_PER_RELOAD_MS_MAX = 0.4
PRIVATE_DIRTY_MAX_KB = 300
PRIVATE_DIRTY_FLAT_KB = 16
SYSTEMCTL_VS_TRUE = 1.3


def build(tmpdir):
    tool = os.path.join(tmpdir, "spawn-floor")
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", tool,
                    os.path.join(HERE, "spawn-floor.c")], check=True, timeout=120)
    return tool


def _run(tool, mode, n, cmd, timeout, env=None):
    """Runs spawn-floor; its JSON comes back on stdout. The stderr of the
    processes it times (handoff's log, the fixture's) goes to a file beside
    the tool, as the real-manager runs use StandardOutput=append:FILE: a
    pipe read by this Python process woke it for each line, and on a
    2-CPU machine that waking competed with the very reloads being timed
    (handoff's three lines per reload on top of the app's own)."""
    log_path = os.path.join(os.path.dirname(tool), "spawn-floor.%s.log" % mode)
    with open(log_path, "a") as err:
        p = subprocess.run([tool, mode, str(n), "--", *cmd], stdout=subprocess.PIPE, stderr=err, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    if p.returncode != 0:
        with open(log_path, errors="replace") as f:
            tail = f.read()[-500:]
        raise RuntimeError("spawn-floor %s failed (%d); the end of %s: %s" % (mode, p.returncode, log_path, tail))
    return json.loads(p.stdout)


def runtime_dir():
    """Where handoff makes its notify sockets: under systemd, /run, which
    systemd mounts as tmpfs. Where /run is on a disk filesystem (this kind
    of VM: ext4), handoff's bind() and unlink() of a generation's socket cost
    a journaled inode each (12% of its CPU per reload under perf), which no
    host running systemd pays: the bench then gives handoff a
    $RUNTIME_DIRECTORY on tmpfs, as systemd's RuntimeDirectory= would.
    Returns (dir or None, what it is, said for the report)."""
    run, where = fs_type("/run"), tmpfs_dir()
    if run == "tmpfs":
        return None, "its default (/run is tmpfs)"
    if not where:
        return None, "its default, on %s (no tmpfs here to stand in for /run)" % run
    return (tempfile.mkdtemp(prefix="handoff-bench.", dir=where),
            "tmpfs: a $RUNTIME_DIRECTORY under %s, as this machine's /run is on %s" % (where, run))


def measure(tool, handoff, fixture, quick, log):
    plan = PLANS["quick" if quick else "full"]
    app = [fixture, "--init-delay", "0", "--grace-ms", "0"]
    out = {"plan": plan}
    # A binary just built has dirty page-cache pages until writeback, and
    # smaps counts them in the Private_Dirty of the one process mapping
    # them (+128 kB for handoff right after a build): write them out first.
    os.sync()
    log("floor: handoff --version, /bin/true and handoffctl --version, %d starts each" % plan["start"])
    out["start_handoff"] = _run(tool, "start", plan["start"], [handoff, "--version"], 120)
    out["start_true"] = _run(tool, "start", plan["start"], ["/bin/true"], 120)
    ctl = os.path.join(os.path.dirname(handoff), "handoffctl")
    if os.path.exists(ctl):  # an older build to compare has none
        out["start_handoffctl"] = _run(tool, "start", plan["start"], [ctl, "--version"], 120)
    log("floor: %d wake-ups of a sleeping process (round trips between two)" % plan["wake"])
    out["wake"] = _run(tool, "wake", plan["wake"], ["-"], 60)
    log("floor: %d supervise reloads (and as many of the least relay) in 20 blocks, each after a block of bare "
        "vfork+exec+READY=1 of the fixture" % plan["reloads"])
    rundir, out["runtime_dir"] = runtime_dir()
    env = dict(os.environ, RUNTIME_DIRECTORY=rundir) if rundir else None
    try:
        out["supervise"] = _run(tool, "paired", plan["reloads"],
                                [handoff, "--mode=supervise", "--listen=127.0.0.1:%d" % free_port(), "--", *app],
                                300, env)
        log("floor: %d handover reloads" % plan["handover"])
        out["handover"] = _run(tool, "handover", plan["handover"],
                               [handoff, "--mode=handover", "--listen=127.0.0.1:%d" % free_port(), "--", *app],
                               300, env)
    finally:
        if rundir:
            shutil.rmtree(rundir, ignore_errors=True)
    out["floor"] = out["supervise"]["floor"]
    return out


def blocks(f):
    """The paired blocks' figures: for each, its median over the blocks (what
    the targets are checked on), its range, and the run pooled as one."""
    sv = f["supervise"]
    b = [dict(x, vs_relay=x["reload_p50_us"] / x["relay_p50_us"]) for x in sv["blocks"]]
    pooled = {
        "ratio": sv["sighup_to_ready"]["p50_us"] / sv["floor"]["p50_us"],
        "cpu_ms": 1000 * (sv["end"]["cpu_s"] - sv["start"]["cpu_s"]) / sv["sighup_to_ready"]["n"],
        "per_s": sv["per_s"],
        "floor_cpu_ms": None,
        "relay_ratio": sv["relay"]["p50_us"] / sv["floor"]["p50_us"],
        "relay_cpu_ms": 1000 * sv["relay_cpu_s"] / sv["relay"]["n"],
        "vs_relay": sv["sighup_to_ready"]["p50_us"] / sv["relay"]["p50_us"],
    }
    keys = ["ratio", "cpu_ms", "per_s", "floor_cpu_ms", "relay_ratio", "relay_cpu_ms", "vs_relay"]
    # The rate of the floor's bare starts and of the relay's reloads in the
    # same blocks (a result file from before they were measured has none):
    # a rate the floor itself does not reach, no supervisor can.
    if all("floor_per_s" in x for x in b):
        pooled["floor_per_s"] = len(b) / sum(1 / x["floor_per_s"] for x in b)
        pooled["relay_per_s"] = len(b) / sum(1 / x["relay_per_s"] for x in b)
        keys += ["floor_per_s", "relay_per_s"]
    return {k: {"median": statistics.median(x[k] for x in b), "min": min(x[k] for x in b), "max": max(x[k] for x in b),
                "pooled": pooled[k]}
            for k in keys}


def derived(f):
    """The figures the targets are about."""
    sv, ho = f["supervise"], f["handover"]
    bl = blocks(f)
    start_us = f["start_handoff"]["start_to_exit"]["p50_us"]
    excess_us = ho["sighup_to_mainpid"]["p50_us"] - sv["sighup_to_ready"]["p50_us"]
    return {
        "supervise_vs_floor": bl["ratio"]["median"],
        "handover_excess_us": excess_us,
        "handover_excess_starts": excess_us / start_us,
        "cpu_ms_per_reload": bl["cpu_ms"]["median"],
        "per_s": bl["per_s"]["median"],
        "floor_per_s": bl.get("floor_per_s", {}).get("median"),
        "relay_per_s": bl.get("relay_per_s", {}).get("median"),
        "private_dirty": (sv["start"]["private_dirty_kb"], sv["after10"]["private_dirty_kb"],
                          sv["end"]["private_dirty_kb"]),
        "pss": (sv["start"]["pss_kb"], sv["after10"]["pss_kb"], sv["end"]["pss_kb"]),
        # Each sample waits until handoff has settled (one generation, its
        # loop idle in epoll_wait), so the three see the same state.
        "fds": (sv["start"]["fds"], sv["after10"]["fds"], sv["end"]["fds"]),
        "floor_cpu_ms": bl["floor_cpu_ms"]["median"],
        # The least any supervisor in the middle does (spawn-floor relay),
        # reloaded in the same blocks: what of the excess is handoff's own.
        "relay_vs_floor": bl["relay_ratio"]["median"],
        "relay_cpu_ms": bl["relay_cpu_ms"]["median"],
        "supervise_vs_relay": bl["vs_relay"]["median"],
        # What two wake-ups (the signal, the relayed READY=1) are of the
        # relay's excess over the floor.
        "wake_up_us": f["wake"]["one_wake_up"]["p50_us"],
        "relay_excess_us": (bl["relay_ratio"]["median"] - 1) * sv["floor"]["p50_us"],
        "blocks": bl,
        # Handover mode's idle standby (the next handoff started ahead): its
        # own memory, besides the main's; None without one.
        "standby_private_dirty": ho.get("standby", {}).get("private_dirty_kb"),
        "standby_pss": ho.get("standby", {}).get("pss_kb"),
        "libs_us": start_us - f["start_true"]["start_to_exit"]["p50_us"],
    }


if __name__ == "__main__":
    # Alone, e.g. to compare two builds of handoff:
    #   python3 bench/benchlib/floor.py [--quick] HANDOFF FIXTURE [TMPDIR]
    # (the tool is built into TMPDIR, by default build/bench/tmp).
    import sys
    import time
    quick = "--quick" in sys.argv
    a = [x for x in sys.argv[1:] if x != "--quick"]
    tmp = a[2] if len(a) > 2 else os.path.join(os.path.dirname(HERE), "build", "bench", "tmp")
    os.makedirs(tmp, exist_ok=True)
    res = measure(build(tmp), os.path.abspath(a[0]), os.path.abspath(a[1]), quick,
                  lambda m: sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), m)))
    print(json.dumps({"derived": derived(res), "figures": res}, indent=1))
