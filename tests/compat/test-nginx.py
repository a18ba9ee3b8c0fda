#!/usr/bin/python3
"""nginx (Debian package nginx): no LISTEN_FDS support and no sd_notify,
but it takes listening sockets over from the environment variable NGINX
("3;4;": fd numbers, each followed by ';' or ':'), which its binary
upgrade sets, and uses an inherited socket where a listen directive names
the same address. So the recipe runs it through nginx-listen-fds, which
turns LISTEN_FDS into NGINX and execs nginx (the generation's main process
is nginx's master), in the foreground (daemon off). Readiness is
--ready=delay:DUR: the socket already listens, so connections that arrive
before nginx accepts wait in the backlog. SIGQUIT is its graceful stop
(stop accepting, finish requests, answer them with "Connection: close",
close idle keep-alive connections, exit); SIGTERM stops at once, so
--stop-signal=QUIT. The idle keep-alive connections it closes are retried
by the client before any byte of a response (loadgen reports them as
stale keep-alive retried), as with lighttpd."""

import os
import re
import subprocess

import recipes
from compat import group_members, reload_under_load
from harness import check, free_port, run


def listening_inodes():
    """{inode: local port} of every listening TCP socket (IPv4 and IPv6) in
    this network namespace."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    out[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return out


def socket_inodes(pid):
    """The inodes of pid's sockets."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if m:
            out.add(int(m.group(1)))
    return out


def fd_flags(pid, fd):
    """The file status flags (O_*) of pid's fd."""
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        return int(re.search(r"^flags:\s*([0-7]+)$", f.read(), re.M).group(1), 8)


def uses_the_inherited_socket(h, port, n):
    """Generation n's nginx took handoff's socket from NGINX and opened no
    listening socket of its own: its master (the process handoff started:
    the wrapper exec'd) said so, nothing tried to bind(), the port has one
    listening socket, handoff's, and it is the only one nginx holds. And
    the socket is non-blocking, as nginx needs it."""
    master = h.generation_pid(n)
    log = h.log()
    check(fd_flags(master, 3) & os.O_NONBLOCK, f"nginx: generation {n}'s socket (fd 3 of {master}) is O_NONBLOCK: "
          f"flags {fd_flags(master, 3):o}")
    check(os.path.realpath(f"/proc/{master}/exe") == os.path.realpath(recipes.need("nginx", "nginx")),
          f"nginx: generation {n}'s main {master} is nginx itself: {os.path.realpath(f'/proc/{master}/exe')}")
    check(f'{master}#{master}: using inherited sockets from "3;"' in log,
          f"nginx: generation {n} (pid {master}) took the socket from NGINX; log:\n{log}")
    check("bind()" not in log, f"nginx tried to bind a socket of its own; log:\n{log}")
    listening = listening_inodes()
    on_port = {inode for inode, p in listening.items() if p == port}
    check(len(on_port) == 1, f"nginx: one listening socket on port {port}: {on_port}")
    held = set()
    for pid in group_members(master):
        held |= socket_inodes(pid) & listening.keys()
    check(held == on_port, f"nginx: generation {n}'s processes listen on {held}, handoff's socket is {on_port}")


def test_nginx(tmp):
    port = free_port()
    reload_under_load(tmp, "nginx", recipes.nginx(tmp, port), args=recipes.OPTIONS["nginx"], port=port,
                      each_generation=uses_the_inherited_socket)


def test_nginx_without_the_wrapper(tmp):
    """Why the wrapper: nginx run as it is binds its listen address itself,
    which fails beside handoff's socket (it gives up after five tries), and
    the first generation never starts."""
    port = free_port()
    command = recipes.nginx(tmp, port)[1:]
    r = subprocess.run([os.environ.get("HANDOFF_BIN", "build/src/handoff"), "-l", f"127.0.0.1:{port}",
                        "--mode=supervise", "--start-timeout=30s", *recipes.OPTIONS["nginx"], "--", *command],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode != 0, f"nginx without NGINX: exit {r.returncode}\n{r.stderr}")
    check(f"bind() to 127.0.0.1:{port} failed (98: Address already in use)" in r.stderr, r.stderr)
    check(re.search(r"Generation 1 \(.*pid \d+\) failed to start", r.stderr), r.stderr)


if __name__ == "__main__":
    run([test_nginx, test_nginx_without_the_wrapper])
