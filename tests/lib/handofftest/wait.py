"""Waiting with a deadline, and the failure type every test raises."""

import time


class TestFailure(AssertionError):
    """A test's expectation did not hold (the one failure type)."""


class WaitTimeout(TestFailure):
    """wait_for() reached its deadline."""


class AbortWait(Exception):
    """Raised by a wait_for() predicate to stop waiting at once."""


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def wait_for(pred, timeout, what, interval=0.01, retry=()):
    """Calls pred() until it returns a true value, and returns that value.

    The deadline is timeout seconds from now. pred() is called at least once,
    and once more at the deadline (the last sleep is cut short), so a
    condition that became true just in time is seen. Past the deadline:
    WaitTimeout("timed out after Ns waiting for WHAT").

    An exception from pred() fails the wait at once, unless it is an
    instance of `retry` (a class or a tuple; e.g. OSError while a port is not
    yet open, or Exception): then it means "not yet" and the last one is
    named in the timeout message. AbortWait always passes through."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = pred()
            if value:
                return value
        except AbortWait:
            raise
        except retry as e:
            last = "%s: %s" % (type(e).__name__, e)
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout("timed out after %gs waiting for %s%s"
                              % (timeout, what, " (last: %s)" % last if last else ""))
        time.sleep(min(interval, left))
