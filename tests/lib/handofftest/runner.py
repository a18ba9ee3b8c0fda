"""Running a file of test functions: one line per test, a summary line
"N passed, N failed, N skipped" (scripts/summarize.py adds them up) and the
exit status meson expects: 0, 1 on any failure, 77 when nothing could run."""

import contextlib
import inspect
import signal
import sys
import tempfile
import time
import traceback

from .wait import TestFailure

SKIP = 77


class Skip(Exception):
    """The test cannot run here; the message says why."""


class TestTimeout(TestFailure):
    """A test ran past its own deadline (run(per_test_timeout=...))."""


_after_each = []


def after_each_test(fn):
    """Registers fn() to run after every test, passed or failed (a library
    module's own cleanup, e.g. load clients a failed test left running)."""
    _after_each.append(fn)
    return fn


@contextlib.contextmanager
def temp_dir():
    """The default fixture: a fresh temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="handoff-test-") as tmp:
        yield tmp


def run(tests, fixture=temp_dir, per_test_timeout=None):
    """Runs each test function and exits.

    A function with a parameter gets what the context manager fixture()
    yields (by default a fresh temp dir; the systemd suite passes a started
    UserManager), torn down after it, passed or failed; a function without
    one is called as it is. Skip raised by the test skips that test; Skip
    raised by fixture() skips it and every later test that needs the
    fixture, with the same reason (a user manager that cannot start here
    will not start for the next test either).

    per_test_timeout (seconds) bounds each test with SIGALRM. SIGTERM and
    SIGINT (meson's timeout, ^C) become an exception, so that teardown still
    runs, and end the run as failed.

    Test names on the command line run only those (a name that is no test
    of the file is an error, exit 2)."""
    wanted = sys.argv[1:]
    if wanted:
        names = {fn.__name__ for fn in tests}
        unknown = [w for w in wanted if w not in names]
        if unknown:
            print(f"no such test: {' '.join(unknown)}", file=sys.stderr)
            sys.exit(2)
        tests = [fn for fn in tests if fn.__name__ in wanted]

    def on_alarm(signum, frame):
        raise TestTimeout(f"test exceeded {per_test_timeout}s")

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    passed = failed = skipped = 0
    fixture_skip = None
    for fn in tests:
        name = fn.__name__
        wants_fixture = len(inspect.signature(fn).parameters) >= 1
        t0 = time.monotonic()
        try:
            if wants_fixture and fixture_skip:
                raise Skip(fixture_skip)
            if per_test_timeout:
                signal.alarm(per_test_timeout)
            try:
                if wants_fixture:
                    try:
                        ctx = fixture()
                        value = ctx.__enter__()
                    except Skip as e:
                        fixture_skip = str(e)
                        raise
                    with contextlib.ExitStack() as stack:
                        stack.push(ctx)
                        fn(value)
                else:
                    fn()
            finally:
                signal.alarm(0)
                for cleanup in _after_each:
                    cleanup()
        except Skip as e:
            skipped += 1
            print(f"skip {name}: {e}", flush=True)
        except KeyboardInterrupt as e:
            failed += 1
            print(f"FAIL {name}: interrupted ({e})", flush=True)
            break
        except BaseException as e:  # noqa: BLE001 - reported, counted
            failed += 1
            first = (str(e).strip().splitlines() or [""])[0]
            print(f"FAIL {name}: {type(e).__name__}{': ' + first if first else ''}\n{traceback.format_exc()}",
                  flush=True)
        else:
            passed += 1
            print(f"ok {name} ({time.monotonic() - t0:.1f}s)", flush=True)
    not_run = len(tests) - passed - failed - skipped
    print(f"{passed} passed, {failed + not_run} failed, {skipped} skipped", flush=True)
    if failed or not_run:
        sys.exit(1)
    if skipped and not passed:
        sys.exit(SKIP)
    sys.exit(0)
