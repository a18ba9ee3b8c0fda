"""Compatibility: the process-test names as they were before the one test
library (tests/lib/handofftest/). New code imports from handofftest.*."""

from handofftest.handoff import (FIXTURE, HANDOFF, MODE, Handoff, _adopted_status, _sessions,  # noqa: F401
                                 fixture_cmd, set_args, status_json)
from handofftest.load import LOADGEN, Load, SlowRequest  # noqa: F401
from handofftest.net import free_port, http_get, serving_pid, wait_new_pid  # noqa: F401
from handofftest.notify import Datagram, FakeSystemd  # noqa: F401
from handofftest.procs import children_of, fd_count, is_handoff, pid_alive, ppid_of  # noqa: F401
from handofftest.runner import SKIP, Skip, run  # noqa: F401
from handofftest.wait import TestFailure, check, wait_for  # noqa: F401
