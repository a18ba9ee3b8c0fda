#!/usr/bin/python3
"""examples/ansible/rolling-reload.yml, run by Debian's ansible-playbook
against three local instances of the shipped template (handoff@a, @b, @c)
under a real `systemd --user` manager, with connection local and one
inventory host per instance. Each host gets a new config; the second one's
is broken (its COMMAND= cannot start). Asserted: the play fails; @a serves
its new config, installed 0600, nothing else left in the config directory;
@b's reload failed and it serves its old generation (same pid, old argv),
its old config is back on disk, and a restart starts that; @c was never
reloaded (same main and generation, no reload counted by handoff status),
and its new config file was never installed either.

Exit status: 0 ok, 1 failure, 77 skipped (no ansible-playbook, not root, no
user manager)."""

import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from usermanager import run_tests, Skip, free_port  # noqa: E402,F401
from handofftest import net  # noqa: E402
from handofftest.units import SRC_ROOT, built, render  # noqa: E402

HANDOFF = built("HANDOFF_BIN", "src/handoff")
FIXTURE = built("FIXTURE_SERVER", "tests/fixtures/fixture-server")
PLAYBOOK = os.path.join(SRC_ROOT, "examples", "ansible", "rolling-reload.yml")
INSTANCES = ("a", "b", "c")


def argv_of(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")[:-1]


def serving_pid(port):
    status, body, _ = net.http_get(port, "/", timeout=10)
    assert status == 200 and body.startswith("pid="), (status, body)
    return int(body.split()[0][4:])


def status_json(um, pid):
    out = subprocess.run([HANDOFF, "status", "--json", "--pid", str(pid)], capture_output=True, text=True,
                         timeout=20, env=um.env())
    assert out.returncode == 0, out
    return json.loads(out.stdout)


def test_rolling_reload_stops_at_first_failure(um):
    if not shutil.which("ansible-playbook"):
        raise Skip("ansible-playbook is not installed (Debian package ansible-core)")
    um.install_unit("handoff@.socket", render("handoff@.socket", {}), reload=False)
    um.install_unit("handoff@.service", render("handoff@.service", {"HANDOFF": HANDOFF}), reload=False)
    conf_dir = um.path("config", "handoff")
    os.makedirs(conf_dir, exist_ok=True)
    new_dir = um.path("new-configs")
    os.makedirs(new_dir)
    ports, before = {}, {}
    for name in INSTANCES:
        ports[name] = free_port()
        with open(os.path.join(conf_dir, name + ".conf"), "w") as f:
            f.write('COMMAND=%s --status "%s old"\nHANDOFF_OPTIONS=--drain-timeout=5s\n' % (FIXTURE, name))
        broken = name == "b"
        with open(os.path.join(new_dir, name + ".conf"), "w") as f:
            f.write("COMMAND=%s\nHANDOFF_OPTIONS=--drain-timeout=5s\n" %
                    ("/nonexistent/server --broken" if broken else '%s --status "%s new"' % (FIXTURE, name)))
        d = os.path.join(um.unit_dir, "handoff@%s.socket.d" % name)
        os.makedirs(d)
        with open(os.path.join(d, "port.conf"), "w") as f:
            f.write("[Socket]\nListenStream=127.0.0.1:%d\n" % ports[name])
        d = os.path.join(um.unit_dir, "handoff@%s.service.d" % name)
        os.makedirs(d)
        with open(os.path.join(d, "log.conf"), "w") as f:
            f.write("[Service]\nStandardOutput=append:%s\nStandardError=append:%s\n"
                    % ((um.path(name + ".log"),) * 2))
    um.systemctl("daemon-reload")
    for name in INSTANCES:
        um.systemctl("start", "handoff@%s.socket" % name)
        app = um.wait_for(lambda: serving_pid(ports[name]), 15, "handoff@%s to answer" % name)
        unit = "handoff@%s.service" % name
        um.wait_state(unit, "active", sub_state="running")
        before[name] = (um.main_pid(unit), app)

    inventory = um.path("hosts.ini")
    with open(inventory, "w") as f:
        f.write("[fleet]\n")
        for name in INSTANCES:
            f.write("%s handoff_instance=%s handoff_conf_src=%s\n" % (name, name, os.path.join(new_dir, name + ".conf")))
        f.write("\n[fleet:vars]\nansible_connection=local\nansible_python_interpreter=%s\n"
                "handoff_scope=user\nhandoff_conf_dir=%s\n" % ("/usr/bin/python3", conf_dir))
    env = um.env()
    env.update({"ANSIBLE_LOCAL_TEMP": um.path("ansible-local"), "ANSIBLE_REMOTE_TEMP": um.path("ansible-remote"),
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_STDOUT_CALLBACK": "default",
                "ANSIBLE_CONFIG": um.path("ansible.cfg"), "HOME": um.path("home")})
    with open(env["ANSIBLE_CONFIG"], "w") as f:
        f.write("[defaults]\n")  # none of the host's or the user's
    os.makedirs(env["HOME"])
    r = subprocess.run(["ansible-playbook", "-i", inventory, PLAYBOOK], capture_output=True, text=True,
                       timeout=180, env=env, cwd=um.tmpdir)
    out = r.stdout + r.stderr
    assert r.returncode != 0, "the play must fail at b:\n" + out
    assert "changed: [a]" in out and "fatal: [b]" in out and "[c]" not in out, out

    # a: reloaded to its new config.
    main_a, app_a = before["a"]
    new_a = um.wait_for(lambda: (lambda p: p if p != app_a else None)(serving_pid(ports["a"])), 10,
                        "handoff@a's new generation to answer")
    assert argv_of(new_a)[1:] == [b"--status", b"a new"], argv_of(new_a)
    # b: the reload failed; the old generation serves on, old argv.
    main_b, app_b = before["b"]
    unit_b = "handoff@b.service"
    um.wait_state(unit_b, "active", sub_state="running")
    assert um.main_pid(unit_b) == main_b and serving_pid(ports["b"]) == app_b, "b serves its old generation"
    assert argv_of(app_b)[1:] == [b"--status", b"b old"], argv_of(app_b)
    st = status_json(um, main_b)
    assert st["reloads_ok"] == 0 and st["reloads_failed"] == 1, st
    # ... and its old config is back on disk, so that a restart (a reboot)
    # starts what serves now, not what just failed.
    with open(os.path.join(conf_dir, "b.conf")) as f:
        assert "b old" in f.read(), "b's failed config was left on disk"
    assert sorted(os.listdir(conf_dir)) == ["a.conf", "b.conf", "c.conf"], os.listdir(conf_dir)
    assert os.stat(os.path.join(conf_dir, "a.conf")).st_mode & 0o777 == 0o600
    um.systemctl("restart", unit_b)
    new_b = um.wait_for(lambda: (lambda p: p if p != app_b else None)(serving_pid(ports["b"])), 15,
                        "handoff@b to answer after its restart")
    assert argv_of(new_b)[1:] == [b"--status", b"b old"], argv_of(new_b)
    # c: never touched: same processes, no reload at all, old config file.
    main_c, app_c = before["c"]
    assert um.main_pid("handoff@c.service") == main_c and serving_pid(ports["c"]) == app_c
    st = status_json(um, main_c)
    assert st["reloads_ok"] == 0 and st["reloads_failed"] == 0, st
    with open(os.path.join(conf_dir, "c.conf")) as f:
        assert "c old" in f.read(), "c's config was not replaced"
    for name in INSTANCES:
        um.systemctl("stop", "handoff@%s.service" % name, "handoff@%s.socket" % name)


if __name__ == "__main__":
    run_tests([test_rolling_reload_stops_at_first_failure], per_test_timeout=300)
