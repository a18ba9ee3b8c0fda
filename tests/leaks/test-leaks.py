#!/usr/bin/python3
"""Leaks and growth over many reloads: the main handoff's fd count and
memory stay flat, and no zombie or stray process is left behind.

Two passes, each against a fake systemd notify socket:
  - supervise mode, 1,000 reloads: one handoff process for the whole run;
    its fds, VmRSS and RssAnon after reload 1,000 are compared with those
    after reload 100 (the first 100 warm up malloc's arenas, sd-event's
    tables and the pages of code a reload touches);
  - handover mode, 200 reloads: every reload makes a new handoff process
    the main one (MAINPID=), so what could grow is what one main passes to
    the next (fds, environment, state); the main after reload 200 is
    compared with the main after reload 20 (RssAnon and VmData only: the
    file-backed part of VmRSS differs by up to ~150 KiB between two fresh
    processes running the same code).

Allowed growth, and why: fds +0 (an fd is never legitimately kept per
reload), for handoff and for the serving generation; VmRSS, RssAnon and
VmData +64 KiB (16 pages). Resident memory is counted in whole pages
and glibc's malloc keeps freed chunks and touches new pages in steps, so a
few pages come and go between two measurements of a process that does not
leak; a leak of 100 bytes per reload is 88 KiB over 900 reloads and
fails (checked by injecting one with an LD_PRELOAD shim: 40 bytes on each
of the three AF_UNIX datagram sockets a reload opens failed too). Smaller
leaks are valgrind-reloads' job.

Every wait has a deadline; the whole file takes well under 3 minutes (it
fails if a pass exceeds its own time budget)."""

import os
import re
import signal
import time

from handofftest.handoff import HANDOFF, Handoff, fixture_cmd
from handofftest.net import free_port
from handofftest.notify import FakeSystemd
from handofftest.procs import (children_of, fd_count, is_handoff, is_standby, pid_alive, proc_status, session_members,
                               start_time, stat_fields)
from handofftest.runner import run
from handofftest.wait import check, wait_for

RSS_SLACK_KIB = 64
FD_SLACK = 0


def asan_instrumented(path):
    """An ASan build keeps freed memory in quarantine (RSS grows by design)."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def fd_targets(pid):
    out = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            out.append(f"{fd}->{os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            pass
    return out


class ReadyCounter:
    """Counts READY=1 and follows MAINPID= in a FakeSystemd's datagrams,
    reading only what arrived since the last call."""

    def __init__(self, notify, first_main):
        self.notify, self.seen, self.ready = notify, 0, 0
        self.mains = [first_main]
        # (pid, start time) of each main, read while it runs: a pid alone
        # does not name one process here, where pids wrap within seconds.
        self.identities = [(first_main, start_time(first_main))]
        self.last_status = ""

    def poll(self):
        with self.notify.lock:
            new = self.notify.messages[self.seen:]
        self.seen += len(new)
        for m in new:
            if m.pid not in self.mains:
                continue  # only what a main handoff says counts
            if "MAINPID" in m.fields:
                self.mains.append(int(m.fields["MAINPID"]))
                self.identities.append((self.mains[-1], start_time(self.mains[-1])))
            if m.fields.get("READY") == "1":
                self.ready += 1
            if "STATUS" in m.fields:
                self.last_status = m.fields["STATUS"]
        return self.ready

    def wait_ready(self, n, timeout, log):
        def done():
            if self.poll() >= n:
                return True
            if pid_alive(self.mains[-1]):
                return False
            # In handover mode the main may have sent MAINPID=, handed over
            # and exited since the poll above: read again before deciding
            # that it died.
            return self.poll() >= n or not pid_alive(self.mains[-1])

        wait_for(done, timeout, f"READY=1 #{n}; log tail:\n{log()[-3000:]}", interval=0.002)
        check(self.ready >= n, f"main handoff {self.mains[-1]} died before READY=1 #{n}; log tail:\n{log()[-3000:]}")


def settle(h, rc, what):
    """Waits until the service is at rest: exactly the main handoff and one
    app process (its child) alive in the session, and no zombie in it; in
    handover mode also the standby, loaded and waiting. Returns the main's
    pid."""
    sid = h.pid

    def at_rest():
        rc.poll()
        h.proc.poll()  # the first handoff, once it handed over, is ours to reap
        main = rc.mains[-1]
        procs = session_members(sid)
        live = [p for p, state, _ in procs if state != "Z" and not is_standby(p)]
        zombies = [p for p, state, _ in procs if state == "Z"]
        standbys = [p for p, state, _ in procs if state == "S" and is_standby(p)]
        kids = children_of(main)
        if zombies or len(live) != 2 or main not in live or len(kids) != 1 or kids[0] not in live:
            return None
        if len(standbys) != (1 if "--mode=handover" in h.argv else 0):
            return None
        if stat_fields(kids[0])[0] == "Z":
            return None
        return main

    try:
        return wait_for(at_rest, 15, what, interval=0.005)
    except AssertionError:
        main = rc.mains[-1]
        raise AssertionError(
            f"not at rest ({what}): session processes (pid, state, ppid) {session_members(sid)}, "
            f"main {main}, its children {children_of(main)}; log tail:\n{h.log()[-3000:]}")


def measure(main):
    st = proc_status(main)
    st["fds"] = fd_count(main)
    st["fd_list"] = fd_targets(main)
    # What the serving generation got: its listener(s) and stdio only, at
    # every reload (an fd of handoff's leaking into generations shows here).
    app = children_of(main)[0]
    st["app_fds"] = fd_count(app)
    st["app_fd_list"] = fd_targets(app)
    return st


def reload_loop(h, rc, n_reloads, checkpoints, budget):
    """Reloads one after the other (the next SIGHUP as soon as the previous
    reload's READY=1 arrived), measuring at rest at each checkpoint."""
    t0 = time.monotonic()
    samples = {}
    for i in range(1, n_reloads + 1):
        os.kill(rc.mains[-1], signal.SIGHUP)
        rc.wait_ready(i + 1, timeout=20, log=h.log)
        if i in checkpoints:
            main = settle(h, rc, f"after reload {i}")
            samples[i] = measure(main)
            s = samples[i]
            print(f"  after reload {i:4d} ({time.monotonic() - t0:5.1f}s): main {main} fds {s['fds']} "
                  f"VmRSS {s['VmRSS']} kB RssAnon {s['RssAnon']} kB RssFile {s['RssFile']} kB "
                  f"VmData {s['VmData']} kB; app fds {s['app_fds']}", flush=True)
        check(time.monotonic() - t0 < budget, f"{i} reloads took over the {budget}s budget")
    return samples, time.monotonic() - t0


def check_flat(samples, a, b, rss=True, same_process=True):
    sa, sb = samples[a], samples[b]
    check(sb["fds"] <= sa["fds"] + FD_SLACK,
          f"fds grew from {sa['fds']} (reload {a}) to {sb['fds']} (reload {b}):\n{sa['fd_list']}\n{sb['fd_list']}")
    check(sb["app_fds"] <= sa["app_fds"] + FD_SLACK,
          f"the serving generation's fds grew from {sa['app_fds']} to {sb['app_fds']}:\n"
          f"{sa['app_fd_list']}\n{sb['app_fd_list']}")
    if not rss:
        return
    # VmRSS also counts file-backed pages (libraries), which differ by up to
    # ~150 KiB between two fresh processes running the same code (fault-
    # around of shared pages): compared only within one process.
    for k in ("VmRSS", "RssAnon", "VmData") if same_process else ("RssAnon", "VmData"):
        check(sb[k] <= sa[k] + RSS_SLACK_KIB,
              f"{k} grew from {sa[k]} kB (reload {a}) to {sb[k]} kB (reload {b}), over the {RSS_SLACK_KIB} KiB slack")


def stop_and_check_nothing_left(h, rc):
    """SIGTERM to the main handoff: it exits 0 and leaves nothing behind."""
    check(h.main_pid() == rc.mains[-1], f"harness and test agree on the main: {h.main_pid()} {rc.mains[-1]}")
    h.signal(signal.SIGTERM)
    code = h.wait_exit(timeout=40)
    check(code == 0, f"exit status {code}; log tail:\n{h.log()[-3000:]}")
    h.proc.poll()
    wait_for(lambda: not session_members(h.pid), 10,
             f"every process of the session to be gone and reaped: {session_members(h.pid)}")


def start(tmp, mode):
    port = free_port()
    notify = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}", f"--mode={mode}", "--start-timeout=20s", "--drain-timeout=10s"],
                fixture_cmd(None, "--init-delay", "0", "--grace-ms", "0"), notify=notify)
    rc = ReadyCounter(notify, h.pid)
    rc.wait_ready(1, timeout=20, log=h.log)
    return h, rc



ASAN = asan_instrumented(HANDOFF)
if ASAN:
    print("note: handoff is built with AddressSanitizer: fds and zombies are checked, RSS is not "
          "(ASan's quarantine keeps freed memory resident by design)", flush=True)


def test_supervise_1000_reloads_flat(tmp):
    h, rc = start(tmp, "supervise")
    try:
        samples, took = reload_loop(h, rc, 1000, {100, 250, 500, 750, 1000}, budget=110)
        print(f"  1000 reloads in {took:.1f}s ({took:.1f} ms per reload)", flush=True)
        check(rc.mains == [h.pid], f"supervise mode never moves MAINPID: {rc.mains[:5]}")
        check("1000 reloads, 0 failed" in rc.last_status, f"last STATUS: {rc.last_status!r}")
        check_flat(samples, 100, 1000, rss=not ASAN)
        stop_and_check_nothing_left(h, rc)
    finally:
        h.close()


def test_handover_200_reloads_flat(tmp):
    h, rc = start(tmp, "handover")
    try:
        samples, took = reload_loop(h, rc, 200, {20, 100, 200}, budget=60)
        print(f"  200 reloads in {took:.1f}s ({took * 5:.1f} ms per reload)", flush=True)
        # 201 different processes; compared by pid and start time, since on a
        # busy machine a later main can get the pid of an earlier one.
        check(len(rc.mains) == 201 and len(set(rc.identities)) == 201 and
              all(t is not None for _, t in rc.identities),
              f"each reload moved MAINPID: {len(rc.mains)} mains, {len(set(rc.identities))} different processes "
              f"({sum(t is None for _, t in rc.identities)} gone when named); last STATUS {rc.last_status!r}; log lines about "
              f"failures:\n" + "\n".join(l for l in h.log().splitlines() if re.search(r"fail|error|warn", l, re.I))[-4000:])
        check(all(is_handoff(m) for m in rc.mains[-1:]), "the last main is a handoff process")
        check("200 reloads, 0 failed" in rc.last_status, f"last STATUS: {rc.last_status!r}")
        check_flat(samples, 20, 200, rss=not ASAN, same_process=False)
        stop_and_check_nothing_left(h, rc)
    finally:
        h.close()


if __name__ == "__main__":
    run([test_supervise_1000_reloads_flat, test_handover_200_reloads_flat])
