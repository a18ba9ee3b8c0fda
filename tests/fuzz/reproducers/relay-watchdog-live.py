#!/usr/bin/python3
"""Live reproducer for reproducers/fuzz-notify/watchdog-dropped-behind-long-number:
the real handoff (supervise mode, a fake systemd) and a server that sends
READY=1, then one 4,096-byte datagram "WATCHDOG=1\\nSTATUS=x\\n
EXTEND_TIMEOUT_USEC=<4,056 digits>", then STATUS=after. Expected: systemd
gets a WATCHDOG=1 relayed from the second datagram. Actual (while the bug
is there): nothing of that datagram is relayed, because
notify_relay_text() runs out of on_gen_message()'s 4,096-byte buffer.

    HANDOFF_BIN=build/src/handoff PYTHONPATH=tests/lib python3 tests/fuzz/reproducers/relay-watchdog-live.py

Exits 0 when the ping got through, 1 when it was lost. Not a meson test:
the failing regression test is fuzz-notify-reproducers (-Dfuzz=true)."""

import os
import sys
import tempfile

from handofftest.handoff import Handoff
from handofftest.net import free_port
from handofftest.notify import FakeSystemd
from handofftest.wait import wait_for

SERVER = r'''
import os, socket, time
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(addr)
s.send(b"READY=1")
head = b"WATCHDOG=1\nSTATUS=x\nEXTEND_TIMEOUT_USEC="
s.send(head + b"1" * (4096 - len(head)))
s.send(b"STATUS=after")
time.sleep(60)
'''

with tempfile.TemporaryDirectory(prefix="handoff-repro-") as tmp:
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{free_port()}", "--mode=supervise"], [sys.executable, "-c", SERVER],
                notify=fake)
    try:
        wait_for(lambda: any(m.fields.get("STATUS", "").endswith("app: after") for m in fake.snapshot()), 10,
                 "the server's last STATUS= relayed")
        pings = [m for m in fake.snapshot() if m.fields.get("WATCHDOG") == "1"]
        print("datagrams systemd got:")
        for m in fake.snapshot():
            print(f"  {m.text[:100]!r}")
        if pings:
            print("ok: WATCHDOG=1 was relayed")
            sys.exit(0)
        print("BUG: WATCHDOG=1 from the serving generation was not relayed")
        sys.exit(1)
    finally:
        h.kill_all()
        fake.close()
