#!/usr/bin/python3
"""The README's recipes for real servers (tests/compat/recipes.py) under the
shipped, hardened handoff@.service, as a user runs them: in the user's own
`systemd --user` (uid 65534: no privileges, the --user copy of the unit with
PrivateUsers=yes), NAME.conf with the recipe's COMMAND= and
HANDOFF_OPTIONS=, ListenStream= in a drop-in of handoff@NAME.socket, the
app's files in a directory the user can read (not /tmp, which PrivateTmp=
hides), and in a drop-in only the relaxations the unit's own comments call
for (RELAX below, each with its reason; the README's recipes table says the
same), each shown to be needed first: without it the server fails as
recorded. Then the socket starts, and 3 reloads under new-connection and
keep-alive load commit, each moving MainPID to a new handoff and the
generation on, with 0 failed requests (uWSGI: its known accept race, as in
tests/compat/test-uwsgi.py), every old process gone by itself, and the
sandbox in force on the server; then a clean stop.

A server whose Debian package is not installed skips and names it (exit 77
if none ran). Exit status: 0 ok, 1 failure, 77 skipped (not root, no
systemd --user).
"""

import functools
import os
import re
import shutil
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "compat"))

import recipes  # noqa: E402
from handofftest.load import Load  # noqa: E402
from handofftest.net import free_port, http_get  # noqa: E402
from handofftest.procs import exe_of, pid_alive  # noqa: E402
from handofftest.runner import run  # noqa: E402
from handofftest.units import built, check_sandboxed, render, serving  # noqa: E402
from handofftest.usermanager import UserManager  # noqa: E402

HANDOFF = built("HANDOFF_BIN", "src/handoff")
USER_UID = 65534
RELOADS = 3

# What a server needs in a drop-in of handoff@NAME.service beyond the
# recipe, each line as the unit's comment on it says, and what the server
# says without it: each case first checks that it still fails so (else the
# relaxation is no longer needed: update this and the README's table).
RELAX = {
    # V8's JIT makes its code pages executable with mprotect(): refused by
    # MemoryDenyWriteExecute=yes (EPERM, where V8 allows only ENOMEM), so
    # node aborts ("# Check failed: 12 == (*__errno_location ())." in
    # v8::base::OS::SetPermissions) with SIGTRAP, at once.
    "node": ("MemoryDenyWriteExecute=no\n", "v8::base::OS::SetPermissions"),
}

# A failure a server causes itself, as in tests/compat (see
# tests/compat/test-uwsgi.py): uWSGI's accept race, a worker that exits
# holding a connection it accepted, as often as the machine's load makes
# it: the server runs under exit-conn-shim, which counts those connections,
# and that many resets are allowed; and a generation retired right after
# READY=1 that needs the drain deadline, 5 s there and here, at which its 2
# single-threaded workers may cut off a connection each.
KNOWN = {"uwsgi": {"server_resets": True, "sigkills": 1, "cut_per_sigkill": 2, "options": ["--drain-timeout=5s"]}}
# uvicorn's own race, as in tests/compat/test-uvicorn.py: its shutdown
# closes a connection it accepted but has not read a request on. It runs
# under uvicorn-counting.py (copied next to the app, which the service
# can read), which counts those connections; they are added to what the
# shim counts ("held" below), and that many resets are allowed.
KNOWN["uvicorn"] = {"unanswered_hook": os.path.join(HERE, "..", "compat", "uvicorn-counting.py")}
EXIT_CONN_SHIM = built("EXIT_CONN_SHIM_SO", "tests/fixtures/exit-conn-shim.so")


def log(msg):
    print("# " + msg, flush=True)


def quote(argv):
    """COMMAND='s words: one with blanks in "double quotes" (handoff@.service)."""
    return " ".join('"%s"' % a if re.search(r"\s", a) else a for a in argv)


def write_dropin(um, unit, name, text):
    d = os.path.join(um.unit_dir, unit + ".d")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "w") as f:
        f.write(text)


def fails_without(um, name, port, out, says):
    """handoff@NAME started without its relaxation: the server fails, its
    output saying says."""
    um.systemctl("start", "handoff@%s.socket" % name)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass        # a connection starts the service
    um.wait_for(lambda: says in read(out), 30,
                "%s to fail without %s, saying %r" % (name, RELAX[name][0].strip(), says))
    um.systemctl("stop", "handoff@%s.socket" % name, "handoff@%s.service" % name)
    um.systemctl("reset-failed", "handoff@%s.socket" % name, "handoff@%s.service" % name, check=False)
    log("%s without %s: %r" % (name, RELAX[name][0].strip(), says))
    os.rename(out, out + ".without")


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def connections_exited_holding(log):
    """How many accepted TCP connections the server's processes held when
    they exited, from exit-conn-shim's log (as tests/compat/compat.py)."""
    with open(log) as f:
        return sum(int(line.split()[1]) for line in f)


def answered(port):
    status, body, _ = http_get(port, timeout=10)
    assert status == 200, (status, body)
    return body


def run_template(um, name, recipe):
    """The recipe NAME under handoff@NAME.service, reloaded under load."""
    app_dir = um.path("app")
    os.mkdir(app_dir, 0o755)
    port = free_port()
    # The unit's RuntimeDirectory=: where the sandbox lets the server write.
    runtime = os.path.join(um.runtime_dir, "handoff", name)
    if name == "nginx":
        # Its listen directive names the socket's address, and its pid file
        # and temporary directories go under -p, where it may write.
        argv = recipe(app_dir, port, prefix=runtime)
    else:
        argv = recipe(app_dir)
    known = KNOWN.get(name, {})
    exit_log = os.path.join(runtime, "exit-conn.log")
    if known.get("server_resets"):
        argv = ["/usr/bin/env", "LD_PRELOAD=" + EXIT_CONN_SHIM, "EXIT_CONN_SHIM_LOG=" + exit_log, *argv]
    unanswered_log = os.path.join(runtime, "uvicorn-unanswered.log")
    if known.get("unanswered_hook"):
        hook = os.path.join(app_dir, os.path.basename(known["unanswered_hook"]))
        shutil.copyfile(known["unanswered_hook"], hook)
        os.chmod(hook, 0o644)
        argv = ["/usr/bin/python3", hook, *argv, "--http", "h11"]
    um.install_unit("handoff@.socket", render("handoff@.socket", {}), reload=False)
    um.install_unit("handoff@.service", render("handoff@.service", {"HANDOFF": HANDOFF}), reload=False)
    os.makedirs(os.path.join(um.config_home, "handoff"), exist_ok=True)
    conf = "COMMAND=%s\nHANDOFF_OPTIONS=%s\n" % (quote(argv), " ".join(recipes.OPTIONS.get(name, [])
                                                                        + known.get("options", [])))
    if name == "lighttpd":
        # Its server.port = env.PORT must name the socket's. (Its errors go
        # to stderr: a server.errorlog file must be one the service may
        # write, else lighttpd exits at start, "Read-only file system".)
        conf += "PORT=%d\n" % port
    if known.get("unanswered_hook"):
        conf += "UVICORN_UNANSWERED_LOG=%s\n" % unanswered_log
    with open(os.path.join(um.config_home, "handoff", name + ".conf"), "w") as f:
        f.write(conf)
    unit = "handoff@%s.service" % name
    write_dropin(um, "handoff@%s.socket" % name, "override.conf", "[Socket]\nListenStream=127.0.0.1:%d\n" % port)
    # Test plumbing only (there is no journald here): the output to a file.
    out = um.path(name + ".log")
    write_dropin(um, unit, "50-log.conf", "[Service]\nStandardOutput=append:%s\nStandardError=append:%s\n"
                 % (out, out))
    um.systemctl("daemon-reload")
    try:
        if name in RELAX:
            fails_without(um, name, port, out, RELAX[name][1])
            write_dropin(um, unit, "override.conf", "[Service]\n" + RELAX[name][0])
            um.systemctl("daemon-reload")
        um.systemctl("start", "handoff@%s.socket" % name)
        um.wait_for(lambda: answered(port), 30, "%s to answer" % name)
        main, app, _ = um.wait_for(lambda: serving(um, unit, 1), 10, "generation 1 serving")
        check_sandboxed(app, name)
        if known.get("server_resets"):  # the shim creates its log as it loads
            assert os.path.exists(exit_log), "%s runs under exit-conn-shim (%s)" % (name, exit_log)
        loads = [Load("127.0.0.1:%d" % port, um.path(), mode=mode, concurrency=2) for mode in ("new", "keepalive")]
        try:
            for gen in range(2, RELOADS + 2):
                old = um.unit_pids(unit, standby=False)
                r = um.systemctl("reload", unit, check=False)
                assert r.returncode == 0, "reload to generation %d: %s" % (gen, r.stderr)
                new_main, new_app, p = um.wait_for(lambda: serving(um, unit, gen), 40, "generation %d serving" % gen)
                assert p["ReloadResult"] == "success", p
                assert new_main != main and exe_of(new_main) == os.path.realpath(HANDOFF), \
                    "MainPID %d -> %d (%s) at reload %d" % (main, new_main, exe_of(new_main), gen)
                assert new_app != app, "the server's pid %d did not change at reload %d" % (app, gen)
                check_sandboxed(new_app, name)
                # The standby, sampled with the old generation while it was
                # just starting (not yet named handoff-standby), may be the
                # new main now: it is not the old generation's.
                old -= {new_main, new_app}
                um.wait_for(lambda: not any(pid_alive(x) for x in old), 40,
                            "generation %d (%s) to be gone" % (gen - 1, sorted(old)))
                main, app = new_main, new_app
            results = [load.stop() for load in loads]
        finally:
            for load in loads:
                load.kill()
        for mode, res in zip(("new", "keepalive"), results):
            assert res["ok"] > 0 and res["failed"] == res["reset"], "%s-connection load: %s" % (mode, res)
        sigkills = read(out).count("did not exit in time")
        assert sigkills <= known.get("sigkills", 0), "%d generations needed SIGKILL" % sigkills
        resets = sum(res["reset"] for res in results)
        held = connections_exited_holding(exit_log) if known.get("server_resets") else 0
        # The hook creates its log at the first such connection only.
        if known.get("unanswered_hook") and os.path.exists(unanswered_log):
            held += connections_exited_holding(unanswered_log)
        killed = sigkills * known.get("cut_per_sigkill", 0)
        assert resets <= held + killed, "%d connection resets, where the server's processes exited holding %d " \
            "connections and %d generations were SIGKILLed (at most %d connections each): %s" % (
                resets, held, sigkills, known.get("cut_per_sigkill", 0), results)
        if name == "nginx":
            # Each generation's nginx took systemd's socket from NGINX, and
            # bound none of its own; the wrapper made the socket
            # non-blocking (see tests/compat/test-nginx.py).
            said = read(out).count('using inherited sockets from "3;"')
            assert said == RELOADS + 1 and "bind()" not in read(out), \
                "%d of %d generations of nginx took the socket, or one called bind()" % (said, RELOADS + 1)
            with open("/proc/%d/fdinfo/3" % app) as f:
                flags = int(re.search(r"^flags:\s*([0-7]+)$", f.read(), re.M).group(1), 8)
            assert flags & os.O_NONBLOCK, "nginx's socket is blocking: flags %o" % flags
        um.systemctl("stop", "handoff@%s.socket" % name, unit)
        assert um.state(unit)[0] == "inactive" and not um.unit_pids(unit), (um.state(unit), um.unit_pids(unit))
        log("%s under handoff@.service%s: %d reloads, %d requests (%d new-connection, %d keep-alive), "
            "%d failed, %d needed SIGKILL%s" % (name, " with " + RELAX[name][0].strip() if name in RELAX else "",
                                                RELOADS, sum(res["requests"] for res in results),
                                                results[0]["requests"], results[1]["requests"],
                                                sum(res["failed"] for res in results), sigkills,
                                                ", connections held by exiting server processes: %d" % held
                                                if known.get("server_resets") or known.get("unanswered_hook") else ""))
    except BaseException:
        if os.path.exists(out):
            sys.stderr.write("--- %s (tail) ---\n%s\n" % (out, "\n".join(read(out).splitlines()[-30:])))
        raise


def case(name):
    def test(um):
        run_template(um, name, getattr(recipes, name))
    test.__name__ = "test_" + name
    return test


if __name__ == "__main__":
    run([case(n) for n in ("gunicorn", "uwsgi", "lighttpd", "nginx", "node", "go", "puma", "haproxy", "uvicorn")],
        fixture=functools.partial(UserManager, uid=USER_UID), per_test_timeout=120)
