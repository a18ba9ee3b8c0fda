"""Runs uvicorn (argv[1], its script; the rest, its arguments) with one
addition for tests/compat/test-uvicorn.py: each connection that uvicorn's
graceful shutdown closes before it has read a whole request on it is
counted, as "<pid> 1" appended to $UVICORN_UNANSWERED_LOG.

That is uvicorn's own race (see test-uvicorn.py): its shutdown closes every
connection that has no request in progress, and a connection it accepted a
moment earlier, whose request has not been read yet, is among them. Its
client sees the connection reset or closed before any byte of an answer.
An idle keep-alive connection that has served requests is not counted: its
client retries a request it loses there (loadgen's "stale_retried"). Only
the h11 protocol is counted, so the test runs uvicorn with --http h11."""

import os
import runpy
import sys

from uvicorn.protocols.http import h11_impl

LOG = os.environ["UVICORN_UNANSWERED_LOG"]
shutdown = h11_impl.H11Protocol.shutdown


def counting_shutdown(self):
    # h11 learns the peer's HTTP version from its first whole request, and
    # keeps it for the connection's later requests.
    if self.cycle is None and self.conn.their_http_version is None:
        with open(LOG, "a") as f:
            f.write(f"{os.getpid()} 1\n")
    shutdown(self)


h11_impl.H11Protocol.shutdown = counting_shutdown
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
