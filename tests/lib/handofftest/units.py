"""The shipped units (units/) and the built programs, as the tests under a
real user manager find them: from the environment meson sets, else from the
source tree and its build/ directory."""

import os
import re

SRC_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
UNITS_DIR = os.environ.get("HANDOFF_UNITS_DIR") or os.path.join(SRC_ROOT, "units")


def built(var, rel):
    """$var, else build/REL in the source tree; absolute either way."""
    return os.path.abspath(os.environ.get(var) or os.path.join(SRC_ROOT, "build", rel))


def render(name, subs):
    """The shipped unit NAME (NAME.in if that exists) with @VAR@ replaced;
    every @VAR@ must be. @HANDOFFCTL@ defaults to $HANDOFFCTL_BIN, else the
    handoffctl beside @HANDOFF@ (meson builds and installs them side by
    side). @PRIVATE_USERS@ defaults to the --user copy's line
    (units/meson.build): every test here runs a --user manager."""
    subs = dict({"PRIVATE_USERS": "PrivateUsers=yes"}, **subs)
    if "HANDOFF" in subs and "HANDOFFCTL" not in subs:
        ctl = os.environ.get("HANDOFFCTL_BIN") or os.path.join(os.path.dirname(subs["HANDOFF"]), "handoffctl")
        subs = dict(subs, HANDOFFCTL=os.path.abspath(ctl))
    path = os.path.join(UNITS_DIR, name)
    if os.path.exists(path + ".in"):
        path += ".in"
    with open(path) as f:
        text = f.read()
    for k, v in subs.items():
        text = text.replace("@%s@" % k, v)
    left = re.findall(r"@[A-Z_]+@", text)
    assert not left, "%s: unsubstituted %s" % (path, left)
    return text


# ---- a service of the shipped template, as a running test sees it -----------

STATUS_RE = re.compile(r"Serving generation (\d+) \(pid (\d+)\)")


def serving(um, unit, gen):
    """(MainPID, the server's pid, the properties) once generation gen of
    unit serves; else AssertionError saying what it is (um.wait_for()
    retries, and names the last one)."""
    p = um.show(unit, "MainPID", "StatusText", "ActiveState", "ReloadResult")
    m = STATUS_RE.search(p["StatusText"])
    if p["ActiveState"] == "active" and m and int(m.group(1)) == gen:
        return int(p["MainPID"]), int(m.group(2)), p
    raise AssertionError("not serving generation %d yet: %s" % (gen, p))


def check_sandboxed(pid, what):
    """The sandbox of handoff@.service is in force on pid (not skipped, as
    systemd 252 skips its mount options without PrivateUsers= in a user's
    manager): no new privileges, a seccomp filter, no capability, / read-only."""
    with open("/proc/%d/status" % pid) as f:
        st = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    assert st.get("NoNewPrivs") == "1", "%s %d: NoNewPrivs=%s" % (what, pid, st.get("NoNewPrivs"))
    assert st.get("Seccomp") == "2", "%s %d: no seccomp filter (Seccomp=%s)" % (what, pid, st.get("Seccomp"))
    assert int(st.get("CapBnd", "1"), 16) == 0, "%s %d: CapBnd=%s" % (what, pid, st.get("CapBnd"))
    with open("/proc/%d/mountinfo" % pid) as f:
        root = [line.split() for line in f if line.split()[4] == "/"][-1]
    assert "ro" in root[5].split(","), "%s %d: / is writable (ProtectSystem=strict)" % (what, pid)
