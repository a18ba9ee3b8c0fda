#!/usr/bin/python3
"""The fd store, in the mode HANDOFF_TEST_MODE names: a server keeps a memfd
with state and a connected socket across reloads with the calls it would make
to systemd (FDSTORE=1, FDNAME=, FDSTOREREMOVE=1); as in systemd's store,
every fd is kept, several under one name, a duplicate once, a removal takes
every fd of its name; the store is bounded, and a retiring generation's
stores are ignored."""

import os
import signal
import socket
import struct

from handofftest.handoff import NO_STATX, Handoff, MODE, seccomp_prefix, set_args
from handofftest.net import free_port, http_get
from handofftest.notify import FakeSystemd
from handofftest.runner import run
from handofftest.wait import check, wait_for

STORE_SERVER = os.environ.get("STORE_SERVER", "build/tests/fixtures/store-server")


def start(tmp, *args, extra=(), wrapper=()):
    port = free_port()
    args_file = os.path.join(tmp, "store.args")
    set_args(args_file, *args)
    fake = FakeSystemd(tmp)
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}=web", f"--mode={MODE}", "-v", *extra],
                ["/bin/sh", "-c", f"exec {STORE_SERVER} $(cat {args_file})"], notify=fake, wrapper=wrapper)
    h.port, h.args_file = port, args_file
    h.wait_ready(1)
    return h


def answer(h):
    """{"pid": .., "gen": .., "state": .., "names": [...], "values": [...]}
    from the server; values: what each fd it inherited holds ("-": not a
    memfd)."""
    body = http_get(h.port)[1]
    f = dict(kv.split("=", 1) for kv in body.split())
    f["names"] = f["names"].split(",")
    f["values"] = f["values"].split(",")
    return f


def reload(h, n):
    h.signal(signal.SIGHUP)
    h.wait_ready(n, timeout=20)
    return wait_for(lambda: (lambda a: a if a["gen"] == str(n) else None)(answer(h)), 10, f"generation {n}")



def test_state_survives_reloads(tmp):
    h = start(tmp)
    try:
        a = answer(h)
        check(a["state"] == "1" and a["names"] == ["web"], a)
        for n in (2, 3, 4):
            a = reload(h, n)
            check(a["state"] == str(n), f"the memfd's counter went on: {a}")
            # Removed and stored again by the server: one "state" after the socket.
            check(a["names"] == ["web", "state"], a)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_connection_survives_reloads(tmp):
    peer = socket.socket()
    peer.bind(("127.0.0.1", 0))
    peer.listen(8)
    peer.settimeout(10)
    h = start(tmp, "--conn", f"127.0.0.1:{peer.getsockname()[1]}")
    try:
        conn, _ = peer.accept()
        conn.settimeout(10)
        lines = []
        buf = b""

        def read_lines(n):
            nonlocal buf
            while len(lines) < n:
                chunk = conn.recv(4096)
                check(chunk, f"the stored connection closed after {lines}")
                buf += chunk
                *done, buf = buf.split(b"\n")
                lines.extend(l.decode() for l in done)
        read_lines(1)
        reload(h, 2)
        reload(h, 3)
        read_lines(3)
        check([l.split()[1] for l in lines] == ["1", "2", "3"], f"every generation spoke on it: {lines}")
        check(len({l.split()[3] for l in lines}) == 3, "three different processes")
        peer.settimeout(0.5)
        try:
            peer.accept()
            check(False, "a second connection was opened")
        except socket.timeout:
            pass
        check(h.stop() == 0, h.log())
        conn.close()
    finally:
        peer.close()
        h.close()


def test_remove_by_name(tmp):
    h = start(tmp)
    try:
        set_args(h.args_file, "--remove", "state")
        a = reload(h, 2)
        check(a["state"] == "2", a)  # it read generation 1's, stored its own, then removed it
        set_args(h.args_file)
        a = reload(h, 3)
        check(a["state"] == "1" and a["names"] == ["web"], f"nothing named state any more: {a}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_every_fd_under_a_name_is_passed_on(tmp):
    """Two fds stored as "job" in two datagrams, two as "multi" in one, one
    as "dup" twice: the next generations get all five fds, in the order
    stored, each under its name, the duplicate once (systemd's LISTEN_FDS
    would be 6 with the socket; handoff used to keep one fd per name)."""
    h = start(tmp, "--store-twice", "job", "--store-pair", "multi", "--store-dup", "dup")
    try:
        set_args(h.args_file)
        a = reload(h, 2)
        check(a["names"] == ["web", "state", "job", "job", "multi", "multi", "dup"], f"generation 2 got {a}")
        check(a["values"] == ["-", "1", "job.1", "job.2", "multi.1", "multi.2", "dup.1"], a)
        # Generation 2 removed "state" and stored its own: now the last.
        a = reload(h, 3)
        check(a["names"] == ["web", "job", "job", "multi", "multi", "dup", "state"], f"generation 3 got {a}")
        check(a["values"] == ["-", "job.1", "job.2", "multi.1", "multi.2", "dup.1", "2"], a)
        # A removal takes every fd of its name; FDSTOREREMOVE=1 without
        # FDNAME= removes nothing (systemd ignores it, with a warning).
        set_args(h.args_file, "--remove", "multi", "--remove-unnamed")
        reload(h, 4)
        h.wait_log("Ignored FDSTOREREMOVE=1 from generation 4: it needs FDNAME=")
        set_args(h.args_file)
        a = reload(h, 5)
        check(a["names"] == ["web", "job", "job", "dup", "state"], f"both multi fds removed, no more: {a}")
        check(a["values"] == ["-", "job.1", "job.2", "dup.1", "4"], a)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_empty_name_is_a_name(tmp):
    """FDNAME= (empty) is a name to systemd (its fdname_is_valid() allows
    ""): the fd is stored under "", reaches the next generations in its
    place in LISTEN_FDNAMES ("web:state:"), and FDSTOREREMOVE=1 with an
    empty FDNAME= removes it. handoff stored it as "stored", with a
    warning."""
    h = start(tmp, "--store-empty-name")
    try:
        set_args(h.args_file)
        a = reload(h, 2)
        check(a["names"] == ["web", "state", ""], f"generation 2 got {a}")
        check(a["values"] == ["-", "1", "empty.1"], a)
        check("invalid FDNAME" not in h.log(), h.log())
        set_args(h.args_file, "--remove-empty-name")
        a = reload(h, 3)
        check(a["names"] == ["web", "", "state"], f"generation 3 got {a}")
        set_args(h.args_file)
        a = reload(h, 4)
        check(a["names"] == ["web", "state"], f"the empty name removed, no more: {a}")
        check(a["values"] == ["-", "3"], a)
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_mirror_keeps_every_fd_of_a_name(tmp):
    """With --systemd-fd-store=yes each stored fd is put into systemd's
    store beside the others of its name (it once removed the name before
    each put, so systemd kept only the last); a removal is mirrored."""
    h = start(tmp, "--store-twice", "job", extra=("--systemd-fd-store=yes",))

    def sent(key):
        return [m for m in h.notify.snapshot()
                if m.fields.get(key) == "1" and m.fields.get("FDNAME") == "handoff.store.job"]
    try:
        wait_for(lambda: len(sent("FDSTORE")) == 2, 10, f"two puts of handoff.store.job: {h.notify.snapshot()}")
        check(all(m.nfds == 1 for m in sent("FDSTORE")), sent("FDSTORE"))
        check(not sent("FDSTOREREMOVE"), f"no removal before a put: {h.notify.snapshot()}")
        set_args(h.args_file, "--remove", "job")
        reload(h, 2)
        wait_for(lambda: sent("FDSTOREREMOVE"), 10, f"the removal mirrored: {h.notify.snapshot()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_stored_file_is_mirrored_unwatched(tmp):
    """A regular file (here the server's memfd) is put into systemd's store
    with FDPOLL=0: systemd would watch it (service_add_fd_store()), and on
    FUSE epoll_ctl() asks the file system's server, whose owner may be the
    server's, and waits in PID 1's loop for an answer it may never give.
    handoff does not watch such a file either: both keep it."""
    h = start(tmp, extra=("--systemd-fd-store=yes",))

    def puts():
        return [m for m in h.notify.snapshot()
                if m.fields.get("FDSTORE") == "1" and m.fields.get("FDNAME") == "handoff.store.state"]
    try:
        wait_for(puts, 10, f"state mirrored: {h.notify.snapshot()}")
        check(all(m.fields.get("FDPOLL") == "0" for m in puts()), f"FDPOLL=0 with a file: {puts()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_listener_mirrored_when_the_manager_is_busy_at_start(tmp):
    """The listening socket is put into systemd's store as handoff starts,
    before its event loop runs: a manager whose socket is full then (busy,
    as at boot, or filled by any local user) still gets it once it reads
    again, or a restart of the service would bind it anew."""
    port = free_port()
    args_file = os.path.join(tmp, "store.args")
    set_args(args_file)
    fake = FakeSystemd(tmp)
    fake.pause()
    fake.fill()
    h = Handoff(tmp, ["-l", f"127.0.0.1:{port}=web", f"--mode={MODE}", "-v", "--systemd-fd-store=yes"],
                ["/bin/sh", "-c", f"exec {STORE_SERVER} $(cat {args_file})"], notify=fake)

    def puts():
        return [m for m in fake.snapshot()
                if m.fields.get("FDSTORE") == "1" and m.fields.get("FDNAME") == "handoff.listen.0"]
    try:
        h.wait_log("Listening on 127.0.0.1")
        fake.resume()
        h.wait_ready(1)
        wait_for(puts, 10, f"the listener mirrored: {fake.snapshot()[-8:]}\n{h.log()}")
        check(all(m.nfds == 1 for m in puts()), puts())
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_name_too_long_to_mirror_is_kept_and_said(tmp):
    """An FDNAME= of 242 to 255 characters is valid, but with the prefix
    handoff.store. longer than systemd takes (fdname_is_valid(): 255):
    systemd 252 would store such a mirror as "stored", which no later
    handoff knows for its own, and never remove it. It is kept in handoff's
    store and passed on, not put into systemd's, and a warning says so."""
    name = "n" * 250
    h = start(tmp, "--store-twice", name, extra=("--systemd-fd-store=yes",))

    def too_long():
        return [m for m in h.notify.snapshot() if len(m.fields.get("FDNAME", "")) > 255]
    try:
        h.wait_log(f'Not putting fd "{name}" into the service manager\'s fd store')
        set_args(h.args_file)
        a = reload(h, 2)
        check(a["names"] == ["web", "state", name, name], f"both kept and passed on: {a}")
        # Said once per fd, when stored: not again when a next handoff
        # puts the store it took over into systemd's.
        said = h.log().count(f'Not putting fd "{name}"')
        check(said == 2, f"said {said} times, once per fd:\n{h.log()}")
        set_args(h.args_file, "--remove", name)
        reload(h, 3)
        set_args(h.args_file)
        a = reload(h, 4)
        check(a["names"] == ["web", "state"], f"and removed: {a}")
        check(not too_long(), f"no FDNAME= systemd refuses: {too_long()}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def stored_connection_that_hangs_up(tmp, wrapper=()):
    peer = socket.socket()
    peer.bind(("127.0.0.1", 0))
    peer.listen(8)
    peer.settimeout(10)
    addr = f"127.0.0.1:{peer.getsockname()[1]}"
    h = start(tmp, "--conn", addr, "--conn-nopoll", addr, extra=("--systemd-fd-store=yes",), wrapper=wrapper)

    def puts(name):
        return [m for m in h.notify.snapshot()
                if m.fields.get("FDSTORE") == "1" and m.fields.get("FDNAME") == "handoff.store." + name]
    try:
        conns = [peer.accept()[0] for _ in range(2)]
        set_args(h.args_file)
        a = reload(h, 2)
        check(sorted(a["names"]) == ["conn", "nopoll", "state", "web"], f"both connections passed on: {a}")
        wait_for(lambda: puts("conn") and puts("nopoll"), 10, f"both mirrored: {h.notify.snapshot()}")
        check(all(m.fields.get("FDPOLL") == "0" for m in puts("nopoll")), f"FDPOLL=0 mirrored: {puts('nopoll')}")
        check(not any("FDPOLL" in m.fields for m in puts("conn")), f"conn watched by systemd: {puts('conn')}")
        for c in conns:  # a reset: EPOLLHUP and EPOLLERR on handoff's end
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        # The main's own line: in handover mode an old main still draining
        # watches the same open file and may say it first.
        h.wait_log(f'handoff[{h.main_pid()}]: Dropped stored fd "conn": ')
        a = reload(h, 3)
        check(sorted(a["names"]) == ["nopoll", "state", "web"], f"conn dropped, nopoll kept: {a}")
        check(h.stop() == 0, h.log())
    finally:
        peer.close()
        h.close()


def test_stored_connection_that_hangs_up_is_dropped(tmp):
    """As systemd's store (service_add_fd_store(), on_fd_store_io()): a
    stored fd that reports EPOLLHUP or EPOLLERR, here a connection its peer
    reset, is dropped and not passed on, unless FDPOLL=0 came with it. In
    handover mode the next handoff watches the store it took over, and
    knows which fds came with FDPOLL=0; the mirror in systemd's store says
    FDPOLL=0 for those too."""
    stored_connection_that_hangs_up(tmp)


def test_stored_connection_that_hangs_up_is_dropped_without_statx(tmp):
    """The same where statx(2) fails with EPERM, as under a container
    runtime whose seccomp profile predates it: handoff, which tells a
    regular file (never watched) by statx(), took every stored fd for one,
    watched none and told systemd FDPOLL=0 for each. It falls back to
    fstat()."""
    stored_connection_that_hangs_up(tmp, wrapper=seccomp_prefix(NO_STATX))


def test_failed_reload_leaves_the_store_alone(tmp):
    h = start(tmp)
    try:
        set_args(h.args_file, "--fail-after-store")
        n = h.notify.count("READY")
        h.signal(signal.SIGHUP)
        h.wait_ready(n + 1, timeout=20)
        h.wait_log("failed to start: exited with status 3")
        set_args(h.args_file)
        a = reload(h, 3)
        check(a["state"] == "2", f"generation 3 read generation 1's state, not the failed one's: {a}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_candidate_stores_when_the_serving_one_died(tmp):
    """The serving generation dies while a reload's candidate starts; the
    candidate stores its state before its READY=1, and the next generation
    gets it. Its stores were refused while nothing served (found by a
    reviewer), so generation 3 read generation 1's state."""
    h = start(tmp)
    try:
        first = int(answer(h)["pid"])
        set_args(h.args_file, "--store-after-usr1")
        n = h.notify.count("READY")
        h.signal(signal.SIGHUP)
        m = h.wait_log_re(r"Started generation 2: pid (\d+)")
        candidate = int(m.group(1))
        wait_for(lambda: any("waiting for SIGUSR1" in d.fields.get("STATUS", "") for d in h.notify.snapshot()), 10,
                 "the candidate waiting")
        os.kill(first, signal.SIGKILL)
        h.wait_log_re(r"[Gg]eneration 1 .*killed by signal")
        os.kill(candidate, signal.SIGUSR1)
        h.wait_ready(n + 1, timeout=20)
        set_args(h.args_file)
        a = reload(h, 3)
        check(a["state"] == "3", f"generation 3 read generation 2's state: {a}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_store_is_bounded(tmp):
    h = start(tmp, "--store-many", "5", extra=("--fd-store-max=3",))
    try:
        wait_for(lambda: h.log().count("fd store full (--fd-store-max=3)") == 3, 10,
                 f"three refusals logged (state + 2 extras kept): {h.log()}")
        set_args(h.args_file)
        a = reload(h, 2)
        check(a["names"] == ["web", "state", "extra0", "extra1"], f"three stored fds passed on: {a}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_store_full_at_the_commit_names_the_generation(tmp):
    """A reload's new generation stores "state" anew and one more "extra0"
    than a store of 2 has room for. In supervise mode its requests are
    staged and applied at the commit, where the refusal is logged: it names
    generation 2, as a refusal on arrival would (it said "generation 0")."""
    h = start(tmp, "--store-many", "1", extra=("--fd-store-max=2",))
    try:
        check("fd store full" not in h.log(), h.log())
        reload(h, 2)
        h.wait_log('fd store full (--fd-store-max=2): dropped fd "extra0" from generation 2.')
        check("from generation 0" not in h.log(), h.log())
        check(h.stop() == 0, h.log())
    finally:
        h.close()


def test_retiring_generation_cannot_store(tmp):
    h = start(tmp, "--store-on-term", "late")
    try:
        set_args(h.args_file)
        reload(h, 2)
        wait_for(lambda: "Retired generation 1" in h.log(), 10, "generation 1 retired")
        a = reload(h, 3)
        check("late" not in a["names"], f"a retiring generation's store is ignored: {a}")
        check(h.stop() == 0, h.log())
    finally:
        h.close()


if __name__ == "__main__":
    run([v for k, v in sorted(globals().items()) if k.startswith("test_")])
