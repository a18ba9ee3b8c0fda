/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "close-async.h"
#include "log.h"
#include "util.h"

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

/* Why a received fd needs care: when ours is the last reference, close()
 * releases the file, in our thread, and some releases wait for the world
 * outside. A TCP (or SCTP) socket with SO_LINGER on and unsent data waits
 * until the data is acknowledged or the linger time is up; a unix socket
 * releases the fds queued on it, one of which may be such a TCP socket (the
 * kernel drops them in our thread too). A sender passes such an fd and
 * closes its own copy: a plain close() would stall the whole event loop, for
 * as long as the sender likes (signals come through a signalfd and do not
 * interrupt it).
 *
 * So an fd whose close cannot wait (close_is_immediate()) is closed here,
 * and every other goes to a closer thread: the last reference is dropped
 * there, and only that thread waits.
 *
 * Not so a file whose flush waits: every close() of an fd flushes the file
 * (filp_close()), the last reference or not, and on FUSE that waits for its
 * server (on NFS, for written data), uninterruptibly: our own close() of an
 * fd we sent to a closer waits as long. Only an fd that never comes into
 * our table is safe from that, and so the fds of a sender who may not pass
 * them stay out of it: a closer takes the datagram that brought them off
 * its socket, into its own table (close_async_drop_datagram(),
 * notify_receive()). What comes in all the same is from a sender trusted
 * with it: a generation's stored fds, and what root or our own uid sends
 * (a control connection of another uid goes to a closer unread).
 *
 * The threads never share handoff's fd table. A closer that dropped the
 * last reference of an fd of the shared table would race with spawn.c's
 * vfork child, which copies the table at clone() and closes what it does
 * not pass on: a copy taken just before the closer's close() would be the
 * last reference then, closed by the child, and handoff stays suspended
 * until its child has exec'd. So the fds travel to the closers inside a
 * unix socket (the queue), as SCM_RIGHTS: sent there, our copy is closed at
 * once (the queued message holds the file), and nothing of it is left in
 * our table for a child to copy. Each closer first gives itself a table of
 * its own holding the queue alone (close_range(CLOSE_RANGE_UNSHARE)), and
 * receives into that. handoff's table then holds none of the closers' fds:
 * when handoff exits, its listening sockets are closed with it even while a
 * closer waits. exit_group() kills the closers, and a lingering socket's
 * wait ends with them; a wait the kernel lets no signal end (a closer's
 * FUSE flush) holds that thread's own table only, though the process is
 * reaped only once it returns.
 *
 * Threads rather than systemd's asynchronous_close() child (clone() with
 * CLONE_FILES): a child shares the fd table (the race above, and a blocked
 * one keeps the listening sockets open after handoff has exited), and it
 * would be one more child for reaper.c, which looks at every child handoff
 * has and reaps them all. A closer touches nothing of handoff's but the
 * queue and the counters below, under a mutex, and glibc's own thread
 * bookkeeping at its start and end; spawn.c's vfork child, which runs in our
 * memory while the main thread is suspended, makes raw system calls only,
 * on a stack of its own, and takes neither. (The closers are not suspended
 * with the main thread, so nothing they hold stays held.) Every signal is
 * blocked in them, as in the main thread, so that every signal still
 * reaches handoff's signalfd.
 *
 * Bounds: at most CLOSERS_MAX threads, and at most QUEUED_FDS_MAX fds
 * waiting in the queue (fewer when the queue's socket buffer fills first).
 * Reaching one takes that many closes that wait at once, all chosen by a
 * sender. An fd is then held ("parked") in our table, never closed here.
 * When a closer takes a batch off the queue (or exits) while we wait for
 * that, it sends a byte back along the queue; the event loop, watching for
 * it, queues what is held, and once nothing is, calls back the readers
 * that paused (close_async_wait()). What is held is bounded by those
 * readers: each reads no further message once the closers are saturated,
 * so at most the fds of the message it was reading when they became so
 * (253) are added, and the kernel keeps the rest on the sender's side. The
 * fds that handoff's own code closes (a refused fd store entry, a control
 * connection) are held the same way; they were in our table already. Only
 * where no closer is left and none can be started is an fd closed here,
 * with SO_LINGER cleared, as before the closers existed (a warning says
 * so, once). */

#define CLOSERS_MAX 16U
#define QUEUED_FDS_MAX 4096U
#define BATCH_MAX 253U /* SCM_MAX_FD: the most fds one message carries */
#define QUEUE_BUFFER (4 * 1024 * 1024)
/* A closer's frames are small (a batch of fds and a message header); ASan
 * needs more than that, and this is address space, touched only as used. */
#define CLOSER_STACK_SIZE (256U * 1024U)

static struct {
        pthread_mutex_t lock;
        int queue[2];           /* [0]: the closers receive; [1]: we send */
        unsigned n_threads;
        unsigned n_busy;        /* of n_threads: not (about to be) waiting for the queue */
        size_t n_queued;        /* fds sent and not yet received */
        unsigned n_drops;       /* datagrams to drop, asked and not yet dropped */
        bool main_waits;        /* fds are parked: wake us when there is room */
        bool fallback_logged;
} closers = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .queue = { -EBADF, -EBADF },
};

/* The main thread's alone: fds no closer could take yet, and who waits for
 * them to be taken. */
static struct {
        int *fds;
        size_t n, size;
        CloseAsyncWaiter *waiters;
        unsigned episodes;      /* times the closers became saturated */
        bool drop_refused;      /* a drop found the queue full: wait for room */
} parked;

/* What a message on the queue asks of a closer: to close its fds, or to
 * drop the datagram at the head of its one socket's queue. */
enum {
        BATCH_CLOSE,
        BATCH_DROP,
};

/* ---- which close cannot wait ---------------------------------------------
 *
 * Decided without asking any filesystem: fstat() or fstatfs() on a FUSE file
 * may send a request to its server (when handoff may use the mount: its own
 * uid's, or one with allow_other), and on NFS to the server, which is the
 * very wait we are avoiding. getsockopt() and the fcntl()s below look at the
 * open file only; statx() with AT_STATX_DONT_SYNC takes what the kernel has
 * cached (and FUSE refuses a process it does not allow, at once). Where a
 * seccomp filter refuses statx(), an anonymous inode is not told (no
 * fstat() fallback here, as fdstore.c has: fstat() of an fd that may be on
 * FUSE is the very wait), and its close is left to a closer thread, as any
 * close we cannot tell. */

static bool socket_is_immediate(int fd, int domain) {
        if (domain == AF_NETLINK)
                return true;
        if (domain != AF_INET && domain != AF_INET6)
                return false; /* AF_UNIX, and what we do not know */
        int type, protocol;
        socklen_t len = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return false;
        len = sizeof protocol;
        if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) < 0)
                return false;
        if (type == SOCK_RAW)
                return true;
        switch (protocol) {
        /* These wait in close() only for SO_LINGER, which close_now()
         * clears. (IPPROTO_SMC, say, waits for its peer without it.) */
        case IPPROTO_TCP:
        case IPPROTO_MPTCP:
        case IPPROTO_SCTP:
        case IPPROTO_UDP:
        case IPPROTO_UDPLITE:
        case IPPROTO_ICMP:
        case IPPROTO_ICMPV6:
                return true;
        default:
                return false;
        }
}

typedef struct PseudoFs {
        bool known;
        unsigned major, minor;
} PseudoFs;

static void learn_device(PseudoFs *fs, int fd) {
        struct statx stx;
        if (fd >= 0 && statx(fd, "", AT_EMPTY_PATH, STATX_TYPE, &stx) >= 0)
                *fs = (PseudoFs) { true, stx.stx_dev_major, stx.stx_dev_minor };
        safe_close(fd);
}

static bool on(const PseudoFs *fs, const struct statx *stx) {
        return fs->known && stx->stx_dev_major == fs->major && stx->stx_dev_minor == fs->minor;
}

/* The anonymous inodes (eventfd, timerfd, signalfd, epoll, inotify, ...)
 * and pidfs (pidfds since Linux 6.9): their superblocks' devices, learned
 * from an fd of each that we open once. */
static bool on_anon_inode_fs(int fd) {
        static PseudoFs anon, pidfs;
        static bool learned;
        if (!learned) {
                learned = true;
                learn_device(&anon, eventfd(0, EFD_CLOEXEC));
                learn_device(&pidfs, pidfd_open_pid(getpid()));
        }
        struct statx stx;
        if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &stx) < 0)
                return false;
        return on(&anon, &stx) || on(&pidfs, &stx);
}

bool close_is_immediate(int fd) {
        int saved = errno, domain;
        socklen_t len = sizeof domain;
        bool r;
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) >= 0)
                r = socket_is_immediate(fd, domain);
        else if (errno != ENOTSOCK)
                r = false;
        else
                /* A pipe or FIFO (a FIFO's file operations are the pipe's,
                 * on any filesystem); a tmpfs or hugetlbfs file, which is
                 * what takes seals; an anonymous inode. */
                r = fcntl(fd, F_GETPIPE_SZ) >= 0 || fcntl(fd, F_GET_SEALS) >= 0 || on_anon_inode_fs(fd);
        errno = saved;
        return r;
}

/* SO_LINGER is cleared (l_onoff = 0): the close returns at once while the
 * kernel still sends the data and the FIN in the background, the ordinary
 * close of a socket nobody configured. {l_onoff = 1, l_linger = 0} would
 * not wait either, but it resets the connection and throws the data away:
 * the socket may still be shared with whoever sent it, whose peer would see
 * an RST for our sake. Not a socket: ENOTSOCK, nothing to do. */
static void close_now(int fd) {
        struct linger l = { .l_onoff = 0, .l_linger = 0 };
        (void) setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        safe_close(fd);
}

/* ---- the closers ---------------------------------------------------------- */

/* The closer's own fd table, with the queue alone in it: unshared, copying
 * only the fds up to the queue's, and those closed but the queue. The copies
 * are never the last references: handoff holds them. Where close_range() is
 * refused (a seccomp filter; Linux before 5.9), the whole table is copied by
 * unshare() and closed one by one as /proc/thread-self/fd lists it (a
 * thread's own table: /proc/self/fd is the main thread's). Where neither way
 * of unsharing is allowed, the closer works in the shared table: only the
 * rare race with a vfork child described above is then possible again. */
static void own_table(int q) {
        if (syscall(SYS_close_range, (unsigned) q + 1, ~0U, CLOSE_RANGE_UNSHARE) >= 0) {
                if (q > 0)
                        (void) syscall(SYS_close_range, 0U, (unsigned) q - 1, 0);
                return;
        }
        if (unshare(CLONE_FILES) >= 0)
                (void) close_listed("/proc/thread-self/fd", 0, q);
}

/* One message off socket q (the queue, or a notify socket: room for its
 * credentials too), its fds into fds: false when there is none. */
static bool receive_batch(int q, int *fds, size_t *ret_n, char *ret_what) {
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * BATCH_MAX)];
        } control;
        char byte;
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control };
        if (recvmsg(q, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) < 0)
                return false;
        size_t n = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) && n < BATCH_MAX; i++)
                                memcpy(&fds[n++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        *ret_n = n;
        *ret_what = byte;
        return true;
}

/* Called with the lock held: there is room in the queue now (or one closer
 * fewer to wait for), and the main thread holds fds for want of it. */
static void wake_main(void) {
        if (!closers.main_waits)
                return;
        closers.main_waits = false;
        /* The other way along the queue: a closer's fd table holds the
         * queue alone. */
        char byte = 0;
        (void) send(closers.queue[0], &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Takes the datagram at the head of socket fd off its queue, its fds into
 * this closer's own table, tells the main thread that it may read the
 * socket again, and only then closes them: a release that waits (a
 * lingering socket's, as the last reference) would otherwise wait within
 * the recvmsg(), the main thread waiting for it. */
static void drop_datagram(int fd) {
        int fds[BATCH_MAX];
        size_t n = 0;
        char what;
        (void) receive_batch(fd, fds, &n, &what);
        pthread_mutex_lock(&closers.lock);
        closers.n_drops--;
        /* Always: the main thread waits for this one. */
        closers.main_waits = true;
        wake_main();
        pthread_mutex_unlock(&closers.lock);
        /* Our copy of the socket after that: should the main thread have
         * let go of its own meanwhile (a spare socket given up), this close
         * releases what else is queued on it, and a lingering socket there
         * waits, here, not with every abstract notify socket paused. */
        (void) close(fd);
        /* As close_nonblocking() closes them: a socket that lingers the
         * ordinary way, not as its sender configured it. */
        for (size_t i = 0; i < n; i++)
                close_now(fds[i]);
}

static void *closer_main(void *userdata) {
        int q = closers.queue[0];
        (void) prctl(PR_SET_NAME, (unsigned long) "handoff-close", 0, 0, 0);
        own_table(q);

        /* The lock is held only to take a message off the queue and to
         * count: never across a close(). */
        pthread_mutex_lock(&closers.lock);
        closers.n_busy--;
        for (;;) {
                int fds[BATCH_MAX];
                size_t n;
                char what;
                if (!receive_batch(q, fds, &n, &what))
                        break;
                closers.n_queued -= n <= closers.n_queued ? n : closers.n_queued;
                wake_main();
                closers.n_busy++;
                pthread_mutex_unlock(&closers.lock);
                if (what == BATCH_DROP && n == 1)
                        drop_datagram(fds[0]);
                else
                        for (size_t i = 0; i < n; i++)
                                (void) close(fds[i]);
                pthread_mutex_lock(&closers.lock);
                closers.n_busy--;
        }
        closers.n_threads--;
        wake_main();
        pthread_mutex_unlock(&closers.lock);
        return NULL;
}

/* Called with the lock held. The thread inherits our signal mask: every
 * signal blocked across its start, so it has them all blocked. */
static int start_closer(void) {
        pthread_attr_t attr;
        int r = pthread_attr_init(&attr);
        if (r != 0)
                return -r;
        sigset_t all, saved;
        sigfillset(&all);
        pthread_t t;
        if ((r = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)) == 0 &&
            (r = pthread_attr_setstacksize(&attr, CLOSER_STACK_SIZE)) == 0 &&
            (r = pthread_sigmask(SIG_SETMASK, &all, &saved)) == 0) {
                r = pthread_create(&t, &attr, closer_main, NULL);
                (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
        }
        if (r == 0) {
                /* Busy until it has its own table. */
                closers.n_threads++;
                closers.n_busy++;
        }
        pthread_attr_destroy(&attr);
        return -r;
}

/* Called with the lock held. */
static int open_queue(void) {
        if (closers.queue[1] >= 0)
                return 0;
        /* Tried again next time when it fails (out of fds, say). */
        if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, closers.queue) < 0)
                return -errno;
        /* Room for many messages: the buffer, not the count, is what a
         * sender of large batches would fill first. The forced size needs
         * CAP_NET_ADMIN; without it, the default (net.core.wmem_max). */
        int size = QUEUE_BUFFER;
        if (setsockopt(closers.queue[1], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
                (void) setsockopt(closers.queue[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        return 0;
}

int close_async_setup(void) {
        pthread_mutex_lock(&closers.lock);
        int r = open_queue();
        pthread_mutex_unlock(&closers.lock);
        return r;
}

static int send_batch(const int *fds, size_t n, char what) {
        char byte = what;
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int) * BATCH_MAX)];
        } control = {};
        msghdr_put_fds(&mh, &control, fds, n);
        return sendmsg(closers.queue[1], &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* Puts n (at most BATCH_MAX) fds into the queue, with a closer to take
 * them, and closes our copies (a socket to drop a datagram of stays ours):
 * 0, or -errno when they are still ours. Then *ret_wait says whether a
 * closer will wake us (wake_main()) once it has taken something off the
 * queue: false when there is no closer at all. */
static int enqueue(const int *fds, size_t n, char what, bool *ret_wait) {
        pthread_mutex_lock(&closers.lock);
        int r = open_queue();
        if (r >= 0 && closers.n_queued + n > QUEUED_FDS_MAX)
                r = -ENOBUFS;
        /* A closer takes what the queue holds and exits when it finds it
         * empty, holding the lock from its last close on: so while we hold
         * it, every closer is in a close (or starting), and this batch gets
         * one more, if we may; else the next closer to finish takes it. */
        if (r >= 0 && closers.n_busy == closers.n_threads && closers.n_threads < CLOSERS_MAX) {
                int k = start_closer();
                if (k < 0 && closers.n_threads == 0)
                        r = k; /* nobody would ever take them */
        }
        if (r >= 0 && (r = send_batch(fds, n, what)) >= 0) {
                closers.n_queued += n;
                closers.n_drops += what == BATCH_DROP;
                /* Before the lock is let go: a closer that took the message
                 * first and closed its copies would leave the last
                 * reference of each to us. */
                for (size_t i = 0; i < n && what == BATCH_CLOSE; i++)
                        safe_close(fds[i]);
        }
        /* Set in the same hold of the lock as the failure: a closer that
         * takes a batch after it sees it. */
        *ret_wait = r < 0 && closers.n_threads > 0;
        if (*ret_wait)
                closers.main_waits = true;
        /* Every closer is in a close: a datagram waits in its socket for
         * one, and the socket is not read meanwhile. */
        bool drop_waits = r >= 0 && what == BATCH_DROP && closers.n_threads == CLOSERS_MAX &&
                          closers.n_busy == CLOSERS_MAX;
        size_t threads = closers.n_threads, queued = closers.n_queued;
        pthread_mutex_unlock(&closers.lock);

        if (drop_waits)
                log_full_errno(parked.episodes++ == 0 ? LOG_WARNING : LOG_DEBUG, 0,
                               "Closer threads saturated (%zu threads, %zu fds queued): a datagram that brought "
                               "fds from a sender who may not pass them waits in its socket until a closer is free, "
                               "and the notify sockets other users can reach are not read meanwhile.", threads,
                               queued);
        else if (r < 0 && *ret_wait && parked.n == 0)
                log_full_errno(parked.episodes++ == 0 ? LOG_WARNING : LOG_DEBUG, r,
                               "Closer threads saturated (%zu threads, %zu fds queued): %m. Unwanted fds wait in "
                               "handoff until a closer is free, and the notify sockets other users can reach are "
                               "not read meanwhile.", threads, queued); /* the first time at warning level */
        else if (r < 0 && !*ret_wait && !closers.fallback_logged) {
                closers.fallback_logged = true;
                log_warning_errno(r, "Closing unwanted fds in the event loop: no closer thread can take them "
                                  "(%m). A close that waits (a lingering socket's, a hung FUSE server's) now "
                                  "stalls handoff until it returns. Logged once.");
        }
        return r;
}

/* Holds fds for a closer to take later; false when there is no room for
 * them (out of memory). */
static bool park(const int *fds, size_t n) {
        if (parked.n + n > parked.size) {
                size_t size = parked.size ? parked.size : BATCH_MAX;
                while (size < parked.n + n)
                        size *= 2;
                int *p = realloc(parked.fds, size * sizeof *p);
                if (!p)
                        return false;
                parked.fds = p;
                parked.size = size;
        }
        memcpy(parked.fds + parked.n, fds, n * sizeof *fds);
        parked.n += n;
        return true;
}

static void close_all_now(const int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                close_now(fds[i]);
}

static void hand_over(const int *fds, size_t n) {
        bool wait = true;
        /* Behind what is held already, which goes first (flush()). */
        if (parked.n == 0 && enqueue(fds, n, BATCH_CLOSE, &wait) >= 0)
                return;
        if (wait && park(fds, n))
                return;
        if (wait)
                log_warning_errno(ENOMEM, "Closing unwanted fds in the event loop: %m");
        close_all_now(fds, n);
}

/* Queues what is held, in order, while the queue takes it. */
static void flush(void) {
        if (parked.n == 0)
                return; /* nothing held (parked.fds NULL: no memmove() of it) */
        size_t done = 0;
        while (done < parked.n) {
                size_t k = parked.n - done < BATCH_MAX ? parked.n - done : BATCH_MAX;
                bool wait;
                if (enqueue(parked.fds + done, k, BATCH_CLOSE, &wait) < 0) {
                        if (wait)
                                break;
                        close_all_now(parked.fds + done, k);
                }
                done += k;
        }
        memmove(parked.fds, parked.fds + done, (parked.n - done) * sizeof *parked.fds);
        parked.n -= done;
        if (parked.n == 0) {
                free(parked.fds);
                parked.fds = NULL;
                parked.size = 0;
        }
}

static bool drops_pending(void) {
        pthread_mutex_lock(&closers.lock);
        bool r = closers.n_drops > 0;
        pthread_mutex_unlock(&closers.lock);
        return r;
}

bool close_async_saturated(void) {
        return parked.n > 0 || parked.drop_refused || drops_pending();
}

int close_async_drop_datagram(int fd) {
        bool wait;
        int r = parked.n > 0 ? -ENOBUFS : enqueue(&fd, 1, BATCH_DROP, &wait);
        if (r >= 0)
                return 0;
        if (parked.n > 0 || wait) {
                parked.drop_refused = true;
                return -EAGAIN;
        }
        return r;
}

bool close_async_waiting(const CloseAsyncWaiter *w) {
        return w->prevp != NULL;
}

void close_async_wait(CloseAsyncWaiter *w, void (*fn)(void *userdata), void *userdata) {
        w->fn = fn;
        w->userdata = userdata;
        if (w->prevp)
                return;
        w->next = parked.waiters;
        if (w->next)
                w->next->prevp = &w->next;
        w->prevp = &parked.waiters;
        parked.waiters = w;
}

void close_async_wait_cancel(CloseAsyncWaiter *w) {
        if (!w->prevp)
                return;
        *w->prevp = w->next;
        if (w->next)
                w->next->prevp = w->prevp;
        w->next = NULL;
        w->prevp = NULL;
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        char buf[64];
        while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
                ;
        flush();
        parked.drop_refused = false;
        if (close_async_saturated())
                return 0;
        if (parked.waiters)
                log_debug("Closer threads have room again: reading every notify socket again.");
        /* One at a time: a callback may cancel another waiter. */
        while (parked.waiters) {
                CloseAsyncWaiter *w = parked.waiters;
                close_async_wait_cancel(w);
                w->fn(w->userdata);
        }
        return 0;
}

int close_async_attach(sd_event *e) {
        int r = close_async_setup();
        if (r < 0)
                return r;
        return sd_event_add_io(e, NULL, closers.queue[1], EPOLLIN, on_wake, NULL);
}

void close_many_nonblocking(const int *fds, size_t n) {
        int saved = errno;
        int batch[BATCH_MAX];
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                if (fds[i] < 0)
                        continue;
                if (close_is_immediate(fds[i])) {
                        close_now(fds[i]);
                        continue;
                }
                batch[k++] = fds[i];
                if (k == BATCH_MAX) {
                        hand_over(batch, k);
                        k = 0;
                }
        }
        if (k > 0)
                hand_over(batch, k);
        errno = saved;
}

int close_nonblocking(int fd) {
        if (fd >= 0)
                close_many_nonblocking(&fd, 1);
        return -EBADF;
}
