#!/usr/bin/python3
"""The test library itself (tests/lib/handofftest), where a mistake makes a
test fail, or pass, for a reason other than the one it checks; and its
teardown must touch nothing but the test's own processes, as other test
runs share the machine."""

import os
import shutil
import subprocess
import sys

from handofftest.runner import Skip, run
from handofftest.wait import check

# Run in a pid namespace of its own, as its pid 1: nothing else takes pids
# there, so the session id a stopped handoff left is given to the next
# process by ns_last_pid, as pid reuse would give it on a busy machine.
_REUSE = r'''
import os, subprocess, sys
from handofftest.handoff import FIXTURE, Handoff
from handofftest.net import free_port
tmp = sys.argv[1]
runtime = os.path.join(tmp, "runtime")
os.mkdir(runtime, 0o700)
h = Handoff(tmp, ["-l", f"127.0.0.1:{free_port()}", "--mode=supervise"], [FIXTURE],
            env={"RUNTIME_DIRECTORY": runtime})
h.wait_log("is ready", timeout=20)
print("stopped", h.stop(), flush=True)
with open("/proc/sys/kernel/ns_last_pid", "w") as f:
    f.write(str(h.pid - 1))
other = subprocess.Popen(["sleep", "60"], start_new_session=True)
print("reused" if other.pid == h.pid else f"not reused: {other.pid}, not {h.pid}", flush=True)
h.close()
print("other", "alive" if other.poll() is None else f"killed ({other.returncode})", flush=True)
other.kill()
other.wait()
'''

# The same, for the pid of a main that exited (the first handoff, reaped by
# stop(); in handover mode the next handoff that MAINPID= named), given by
# ns_last_pid to a process that has SIGTERM blocked, so a SIGTERM sent to it
# stays pending, for the test to see.
_MAIN_REUSE = r'''
import os, signal, subprocess, sys
from handofftest.handoff import FIXTURE, Handoff
from handofftest.net import free_port
from handofftest.notify import FakeSystemd
tmp, mode = sys.argv[1:]
runtime = os.path.join(tmp, "runtime")
os.mkdir(runtime, 0o700)
h = Handoff(tmp, ["-l", f"127.0.0.1:{free_port()}", f"--mode={mode}"], [FIXTURE], notify=FakeSystemd(tmp),
            env={"RUNTIME_DIRECTORY": runtime})
h.wait_ready(1, timeout=20)
if mode == "handover":
    h.signal(signal.SIGHUP)
    h.wait_ready(2, timeout=20)
main = h.main_pid()
print("stopped", h.stop(), flush=True)
with open("/proc/sys/kernel/ns_last_pid", "w") as f:
    f.write(str(main - 1))
blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
other = subprocess.Popen(["sleep", "60"], start_new_session=True)
signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
print("reused" if other.pid == main else f"not reused: {other.pid}, not {main}", flush=True)
try:
    h.signal(signal.SIGTERM)
except ProcessLookupError:
    pass
with open(f"/proc/{other.pid}/status") as f:
    pending = [int(line.split()[1], 16) for line in f if line.startswith("ShdPnd:")][0]
print("other", "got SIGTERM" if pending & (1 << (signal.SIGTERM - 1)) else "left alone", flush=True)
h.close()
other.kill()
other.wait()
'''


def test_teardown_spares_a_process_that_took_the_session_id(tmp):
    """A handoff stopped, reaped, and its session empty: its pid, the
    session's id, is free, and another process takes it with a session of
    its own (another test run's handoff, say). The teardown (close()) must
    not take that one for the test's: it is left alone. Before, close()
    SIGKILLed its process group and every process of its session."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise Skip("needs root and unshare(1), for a pid namespace whose pids the test chooses")
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", _REUSE, tmp],
                       capture_output=True, text=True, timeout=60)
    if "not reused" in r.stdout:
        raise Skip(f"the pid was not given again: {r.stdout}")
    check(r.returncode == 0 and "stopped 0\nreused\n" in r.stdout, f"{r.returncode}: {r.stdout}{r.stderr}")
    check("other alive" in r.stdout, f"the process that took the session id: {r.stdout}{r.stderr}")


def signal_after_main_pid_reused(tmp, mode):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise Skip("needs root and unshare(1), for a pid namespace whose pids the test chooses")
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", _MAIN_REUSE, tmp, mode],
                       capture_output=True, text=True, timeout=60)
    if "not reused" in r.stdout:
        raise Skip(f"the pid was not given again: {r.stdout}")
    check(r.returncode == 0 and "stopped 0\nreused\n" in r.stdout, f"{r.returncode}: {r.stdout}{r.stderr}")
    check("other left alone" in r.stdout, f"the process that took the main's pid: {r.stdout}{r.stderr}")


def test_signal_spares_a_process_that_took_the_first_mains_pid(tmp):
    """signal() (and so stop()) after the first handoff, main, exited and
    was reaped: its pid may be another process's, which must not get the
    signal. Before, signal() sent it to whatever had the pid."""
    signal_after_main_pid_reused(tmp, "supervise")


def test_signal_spares_a_process_that_took_a_mainpid(tmp):
    """The same for a main that MAINPID= named (handover mode): the adopted
    next handoff exited and was reaped, and its pid is another process's."""
    signal_after_main_pid_reused(tmp, "handover")


if __name__ == "__main__":
    run([test_teardown_spares_a_process_that_took_the_session_id,
         test_signal_spares_a_process_that_took_the_first_mains_pid,
         test_signal_spares_a_process_that_took_a_mainpid])
