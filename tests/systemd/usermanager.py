"""Compatibility: the user-manager names as they were before the one test
library (tests/lib/handofftest/usermanager.py). New code imports from
handofftest.*. wait_for is wait_retrying: as before, an exception from the
predicate means "not yet"."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from handofftest.net import free_port, tcp_request  # noqa: E402,F401
from handofftest.procs import pid_alive, proc_cmdline, proc_descendants  # noqa: E402,F401
from handofftest.runner import Skip  # noqa: E402,F401
from handofftest.usermanager import UserManager, run_tests  # noqa: E402,F401
from handofftest.usermanager import wait_retrying as wait_for  # noqa: E402,F401
from handofftest.wait import AbortWait, WaitTimeout  # noqa: E402,F401
