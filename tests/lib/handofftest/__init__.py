"""One test library for every layer that runs handoff: the process tests
(tests/process), the hardening and leak tests, the real-systemd suite
(tests/systemd) and the benchmark (bench/reload-under-load).

    wait.py         wait_for() with a deadline; TestFailure (the one failure
                    type), WaitTimeout, AbortWait, check()
    net.py          free_port(), read_all(), tcp_request(), http_get(),
                    serving_pid(), wait_new_pid()
    procs.py        /proc: pid_alive(), ppid_of(), children_of(),
                    proc_descendants(), session_members(), is_handoff(),
                    exe_of(), cmdline(), fd_count(), fd_links(), environ_of(),
                    proc_status()
    notify.py       FakeSystemd: a NOTIFY_SOCKET that records every datagram
                    with its sender's pid and arrival time, answers BARRIER=1
    load.py         Load (the C load client until stop()), SlowRequest
    handoff.py      Handoff (the built binary under test, in its own session,
                    with the test process as child subreaper), fixture_cmd(),
                    unprivileged() (65534 behind setpriv, for prlimit tests)
    usermanager.py  UserManager: a private `systemd --user`; run_tests(),
                    wait_retrying() (wait_for taking any exception for "not yet")
    runner.py       run(): one line per test, "N passed, N failed, N skipped",
                    exit 0 / 1 / 77; Skip

Importing the package imports nothing else: handoff.py makes the test
process a child subreaper, which only the process tests want.

Every wait has a deadline; nothing sleeps to synchronise."""
