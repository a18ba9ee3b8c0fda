/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "close-async.h"
#include "outbox.h"
#include "util.h"

typedef struct Queued {
        unsigned key;
        char *msg;
        int fds[OUTBOX_MAX_FDS];        /* copies, closed once sent or dropped */
        size_t n_fds;
} Queued;

struct Outbox {
        int fd;                         /* watched: a copy owned by source, or the caller's (watch_copy) */
        sd_event_source *source;        /* EPOLLOUT, on while anything is queued */
        Queued *queue;                  /* a ring, grown as needed: most of the time empty */
        size_t head;                    /* where the oldest is */
        size_t n, allocated, max, max_message;
};

static void queued_done(Queued *q) {
        free(q->msg);
        /* A copy may be the last reference to a file a server gave us, its
         * fd store entry removed since. */
        close_many_nonblocking(q->fds, q->n_fds);
}

/* The i-th oldest. */
static Queued *at(const Outbox *o, size_t i) {
        return &o->queue[(o->head + i) % o->allocated];
}

static void drop_first(Outbox *o) {
        queued_done(at(o, 0));
        o->head = --o->n == 0 ? 0 : (o->head + 1) % o->allocated;
}

static void drop_all(Outbox *o) {
        while (o->n > 0)
                drop_first(o);
}

static int send_one(int fd, const char *msg, const int *fds, size_t n_fds) {
        struct iovec iov = { .iov_base = (char *) msg, .iov_len = strlen(msg) };
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int) * OUTBOX_MAX_FDS)];
        } control = {};
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (n_fds > 0)
                msghdr_put_fds(&mh, &control, fds, n_fds);
        ssize_t k;
        /* To a service manager, the kernel attaches our credentials: systemd
         * sets SO_PASSCRED on its socket. */
        while ((k = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR)
                ;
        return k < 0 ? -errno : 0;
}

static bool peer_gone(int r) {
        /* A datagram socket whose peer closed says ECONNREFUSED once, and
         * ENOTCONN from then on. */
        return r == -EPIPE || r == -ECONNRESET || r == -ECONNREFUSED || r == -ENOTCONN;
}

/* Sends what is queued, oldest first, until the socket is full. Returns
 * -EPIPE, -ECONNRESET, -ECONNREFUSED or -ENOTCONN when the peer is gone (the queue is
 * dropped); a message the kernel refuses for itself (too big, say) is
 * dropped alone, as its send now would have been. */
static int flush(Outbox *o) {
        int r = 0;
        while (o->n > 0) {
                const Queued *q = at(o, 0);
                r = send_one(o->fd, q->msg, q->fds, q->n_fds);
                if (r == -EAGAIN)
                        break;
                if (peer_gone(r)) {
                        drop_all(o);
                        break;
                }
                drop_first(o);
        }
        if (o->n == 0 && o->allocated > 8) {
                /* Grown for a manager that did not read for long: given
                 * back, as it may not happen again. */
                free(o->queue);
                o->queue = NULL;
                o->allocated = 0;
        }
        if (o->source)
                (void) sd_event_source_set_enabled(o->source, o->n > 0 ? SD_EVENT_ON : SD_EVENT_OFF);
        return peer_gone(r) ? r : 0;
}

static int on_writable(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        (void) flush(userdata);
        return 0;
}

int outbox_new(sd_event *e, int fd, bool watch_copy, size_t max_queued, size_t max_message, Outbox **ret) {
        /* A second io source on the same fd is refused by epoll (EEXIST)
         * while the caller watches it for input: that caller's outbox
         * watches a copy. */
        if (!e && watch_copy)
                return -EINVAL;
        int w = watch_copy ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : fd;
        if (w < 0)
                return -errno;
        Outbox *o = calloc(1, sizeof *o);
        int r = !o ? -ENOMEM : e ? sd_event_add_io(e, &o->source, w, EPOLLOUT, on_writable, o) : 0;
        if (r >= 0 && watch_copy && (r = sd_event_source_set_io_fd_own(o->source, true)) < 0)
                o->source = sd_event_source_disable_unref(o->source);
        if (r < 0) {
                if (watch_copy)
                        safe_close(w);
                free(o);
                return r;
        }
        /* A copy is owned by the source from here on. */
        o->fd = w;
        o->max = max_queued;
        o->max_message = max_message;
        if (o->source && (r = sd_event_source_set_enabled(o->source, SD_EVENT_OFF)) < 0) {
                outbox_free(o);
                return r;
        }
        *ret = o;
        return 0;
}

int outbox_attach(Outbox *o, sd_event *e, size_t max_queued) {
        if (o->source)
                return -EBUSY;
        o->max = max_queued;
        int r = sd_event_add_io(e, &o->source, o->fd, EPOLLOUT, on_writable, o);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(o->source, o->n > 0 ? SD_EVENT_ON : SD_EVENT_OFF);
}

Outbox *outbox_free(Outbox *o) {
        if (!o)
                return NULL;
        drop_all(o);
        sd_event_source_disable_unref(o->source); /* closes a copy */
        free(o->queue);
        free(o);
        return NULL;
}

/* Where a message of key goes in the queue: in place of the one of that
 * key with no OUTBOX_EVERY message behind it, if there is one. */
static Queued *replaceable(const Outbox *o, unsigned key) {
        if (key == OUTBOX_EVERY)
                return NULL;
        for (size_t i = o->n; i > 0; i--) {
                Queued *q = at(o, i - 1);
                if (q->key == OUTBOX_EVERY)
                        return NULL;
                if (q->key == key)
                        return q;
        }
        return NULL;
}

/* Room for one more at the end; false when the queue is at its bound. */
static bool make_room(Outbox *o) {
        if (o->n < o->allocated)
                return true;
        if (o->allocated >= o->max)
                return false;
        size_t m = o->allocated == 0 ? 8 : 2 * o->allocated;
        if (m > o->max)
                m = o->max;
        Queued *q = reallocarray(o->queue, m, sizeof *q);
        if (!q)
                return false;
        /* The ring was full: the oldest ones, from head to the old end,
         * move to the new end, and the newer ones stay at the front. */
        if (o->head > 0) {
                size_t oldest = o->allocated - o->head;
                memmove(q + m - oldest, q + o->head, oldest * sizeof *q);
                o->head = m - oldest;
        }
        o->queue = q;
        o->allocated = m;
        return true;
}

int outbox_put_fds(Outbox *o, unsigned key, const char *msg, const int *fds, size_t n_fds) {
        if (strlen(msg) >= o->max_message)
                return -EMSGSIZE;
        if (n_fds > OUTBOX_MAX_FDS)
                return -E2BIG;
        if (n_fds > 0)
                key = OUTBOX_EVERY; /* its fds must arrive, whatever follows */
        if (o->n == 0) {
                int r = send_one(o->fd, msg, fds, n_fds);
                if (r != -EAGAIN)
                        return r;
        }
        Queued new = { .key = key, .msg = strdup(msg) };
        int r = new.msg ? 0 : -ENOMEM;
        while (r == 0 && new.n_fds < n_fds) {
                int copy = fcntl(fds[new.n_fds], F_DUPFD_CLOEXEC, 3);
                if (copy < 0)
                        r = -errno;
                else
                        new.fds[new.n_fds++] = copy;
        }
        Queued *q = r == 0 && n_fds == 0 ? replaceable(o, key) : NULL;
        if (r < 0)
                ; /* new is dropped below */
        else if (q) {
                queued_done(q);
                *q = new;
        } else if (make_room(o)) {
                o->n++;
                *at(o, o->n - 1) = new;
        }
        else
                r = -ENOBUFS;
        if (r < 0) {
                queued_done(&new);
                return r;
        }
        /* The socket may have drained since the last wakeup: what fits
         * goes now, and the rest when it is writable. */
        r = flush(o);
        return r < 0 ? r : 1;
}

const char *outbox_queued(const Outbox *o, unsigned key) {
        const Queued *q = replaceable(o, key);
        return q ? q->msg : NULL;
}

int outbox_flush(Outbox *o) {
        int r = flush(o);
        return r < 0 ? r : (int) o->n;
}

size_t outbox_pending(const Outbox *o) {
        return o->n;
}
