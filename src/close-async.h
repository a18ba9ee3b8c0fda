/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Closing fds of foreign origin: fds that someone else sent us (SCM_RIGHTS)
 * and that we do not want, or no longer want (a refused or removed fd-store
 * entry), and sockets anyone may have queued fds on (the notify sockets).
 * Their close must never stop handoff's event loop, whatever the sender
 * built them to do.
 *
 * close_nonblocking() closes fd at once where its close cannot wait (see
 * close_is_immediate()), and otherwise hands it to a closer thread, which
 * drops the last reference outside the loop. Always returns -EBADF, like
 * safe_close(); fd is no longer ours either way. */
int close_nonblocking(int fd);
void close_many_nonblocking(const int *fds, size_t n);

/* Opens the closers' queue (two fds, kept until exit) now rather than at the
 * first fd that needs it, so that handoff's fd count does not change while
 * it runs. Optional: without it (or when it fails), the first such fd opens
 * it. Returns 0 or -errno. */
int close_async_setup(void);

/* Whether a close() of fd, as the last reference to its open file, returns
 * without waiting for anything outside the kernel: an IP socket of a known
 * protocol (once its SO_LINGER is cleared, which close_nonblocking() does),
 * a netlink socket, a pipe or FIFO, a tmpfs or hugetlbfs file (a memfd), an
 * anonymous inode (eventfd, timerfd, signalfd, epoll, pidfd...). false for
 * everything else, unknown included: a unix socket (the fds queued on it are
 * released with it), a file on FUSE or NFS (its flush waits for the server),
 * a device. Asks nothing of a filesystem (see close-async.c). */
bool close_is_immediate(int fd);
