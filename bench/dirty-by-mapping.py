#!/usr/bin/python3
"""Where an idle supervising handoff's Private_Dirty goes, by mapping.

    bench/dirty-by-mapping.py [--cgroup] [HANDOFF [FIXTURE [RELOADS]]]

Starts HANDOFF (build/src/handoff) --mode=supervise with the fixture server
as floor.py does (--init-delay 0 --grace-ms 0, a $RUNTIME_DIRECTORY of its
own), and reads /proc/PID/smaps once it has settled (one generation, its loop
in epoll_wait), at the start, after 10 reloads and after RELOADS (1000).
Prints kB per mapping: a library's or handoff's RELRO (the r--p part its
relocations wrote), its .data and its .bss (the anonymous mapping that
follows), the heap, the stack and other anonymous memory.

--cgroup (root, cgroup2 mounted): handoff --cgroup=yes in a cgroup of its
own made for the run, as Delegate=yes gives one in handoff@.service (the
bench's other figures run without).
"""

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def smaps(pid):
    """{label: Private_Dirty kB}, in the order of the mappings."""
    out = collections.OrderedDict()
    label, last_file = None, None
    for line in open("/proc/%d/smaps" % pid):
        f = line.split()
        if not f[0].endswith(":"):
            path = f[5] if len(f) > 5 else ""
            name = os.path.basename(path) if path.startswith("/") else path
            if path.startswith("/"):
                kind = {"r--p": "relro", "rw-p": "data"}.get(f[1], f[1])
                label, last_file = "%s %s" % (name, kind), name
            elif not path and last_file and f[1] == "rw-p":
                label, last_file = "%s bss" % last_file, None
            else:
                label, last_file = path or "other anonymous", None
            out.setdefault(label, 0)
        elif f[0] == "Private_Dirty:":
            out[label] += int(f[1])
    return out


def make_cgroup():
    """A new cgroup2 directory of our own, or exit saying why not."""
    for mnt in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.exists(os.path.join(mnt, "cgroup.procs")) and \
                open("/proc/self/mountinfo").read().count(" %s " % mnt):
            cg = tempfile.mkdtemp(prefix="handoff-dirty.", dir=mnt)
            return cg
    sys.exit("no cgroup2 hierarchy mounted")


def remove_cgroup(cg):
    for d, _dirs, _files in sorted(os.walk(cg), key=lambda t: -t[0].count("/")):
        try:
            os.rmdir(d)
        except OSError:
            pass


def main():
    args = sys.argv[1:]
    cg = make_cgroup() if args[:1] == ["--cgroup"] else None
    args = args[1:] if cg else args
    handoff = args[0] if len(args) > 0 else os.path.join(ROOT, "build", "src", "handoff")
    fixture = args[1] if len(args) > 1 else os.path.join(ROOT, "build", "tests", "fixtures", "fixture-server")
    reloads = int(args[2]) if len(args) > 2 else 1000
    tmp = tempfile.mkdtemp(prefix="dirty.")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(tmp, "notify"))
    sock.settimeout(10)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.sync()  # a binary just built is dirty page cache until written back
    env = dict(os.environ, NOTIFY_SOCKET=os.path.join(tmp, "notify"), RUNTIME_DIRECTORY=tmp)
    with open(os.path.join(tmp, "log"), "w") as log:
        def enter():
            with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                f.write("0")
        proc = subprocess.Popen([handoff, "--mode=supervise", "--listen=127.0.0.1:%d" % port]
                                + (["--cgroup=yes"] if cg else []) + ["--", fixture,
                                "--init-delay", "0", "--grace-ms", "0"], env=env, stderr=log,
                                preexec_fn=enter if cg else None)
    pid = proc.pid

    def ready():
        while "READY=1" not in sock.recv(4096).decode().split("\n"):
            pass

    def settled():
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                kids = f.read().split()
            with open("/proc/%d/syscall" % pid) as f:
                nr = f.read().split()[0]
            if len(kids) == 1 and nr in ("232", "281"):  # epoll_wait, epoll_pwait
                return
            time.sleep(0.0002)

    try:
        ready()
        settled()
        samples = [smaps(pid)]
        for i in range(reloads):
            os.kill(pid, signal.SIGHUP)
            ready()
            if i + 1 in (10, reloads):
                settled()
                samples.append(smaps(pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        shutil.rmtree(tmp)
        if cg:
            remove_cgroup(cg)
    labels = list(dict.fromkeys(k for s in samples for k in s))
    points = ["start"] + ["after %d" % n for n in sorted({10, reloads}) if n <= reloads]
    print("| mapping | %s |" % " | ".join(points))
    print("|---|" + "--:|" * len(points))
    for k in labels:
        v = [s.get(k, 0) for s in samples]
        if any(v):
            print("| %s | %s |" % (k, " | ".join(str(x) for x in v)))
    print("| **total** | %s |" % " | ".join(str(sum(s.values())) for s in samples))


if __name__ == "__main__":
    main()
