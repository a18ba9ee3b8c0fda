/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

/* Closing fds of foreign origin: fds that someone else sent us (SCM_RIGHTS)
 * and that we do not want, or no longer want (a refused or removed fd-store
 * entry), and sockets anyone may have queued fds on (the notify sockets).
 * Their close must never stop handoff's event loop, whatever the sender
 * built them to do.
 *
 * close_nonblocking() closes fd at once where its close cannot wait (see
 * close_is_immediate()), and otherwise hands it to a closer thread, which
 * drops the last reference outside the loop. Always returns -EBADF, like
 * safe_close(); fd is no longer ours either way.
 *
 * An fd that no closer can take now (the closers are all waiting and their
 * queue is full: a sender that built every one of those closes to wait) is
 * never closed here either: it is held, in our fd table, until a closer
 * takes something off the queue, and then queued. Meanwhile the closers are
 * saturated (close_async_saturated()): whoever reads fds from senders it
 * does not trust stops reading until they are not (close_async_wait()), so
 * that what is held stays bounded and the kernel keeps the rest, in the
 * sender's socket buffers. Only where no closer runs at all and none can be
 * started (pthread_create() fails) is an fd closed here, as before the
 * closers existed, its SO_LINGER cleared (a warning says so). */
int close_nonblocking(int fd);
void close_many_nonblocking(const int *fds, size_t n);

/* Drops the datagram at the head of the queue of socket fd (a datagram
 * socket we read from this thread only) in a closer thread, its fds
 * released there, never received into handoff's fd table: a close() of
 * any fd of a file flushes it, and FUSE waits for its server then, however
 * many references are left. fd stays ours, and the caller reads it again
 * only once close_async_saturated() is false: until the closer has dropped
 * the datagram, the one at the head is the same. Returns 0; -EAGAIN when
 * no closer can take it now (saturated, above: read it again then); or
 * another -errno when no closer runs at all, and the caller drops it itself
 * (receiving it with no room for fds). */
int close_async_drop_datagram(int fd);

/* Whether fds are held for want of a closer (above), or a datagram is still
 * to be dropped. */
bool close_async_saturated(void);

/* Called back once, from the event loop close_async_attach() was given,
 * when the closers are no longer saturated: a reader that paused for them
 * resumes. The waiter is the caller's (in its own object), registered at
 * most once at a time; close_async_wait_cancel() before it is freed. */
typedef struct CloseAsyncWaiter CloseAsyncWaiter;
struct CloseAsyncWaiter {
        CloseAsyncWaiter *next;
        CloseAsyncWaiter **prevp; /* NULL: not waiting */
        void (*fn)(void *userdata);
        void *userdata;
};
void close_async_wait(CloseAsyncWaiter *w, void (*fn)(void *userdata), void *userdata);
void close_async_wait_cancel(CloseAsyncWaiter *w);
bool close_async_waiting(const CloseAsyncWaiter *w);

/* Watches, in e, for a closer that took fds off the queue while fds are
 * held: queues what is held, and once nothing is, calls the waiters back.
 * Without it, held fds stay held. The source floats: it goes with e.
 * Returns 0 or -errno. */
int close_async_attach(sd_event *e);

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
