/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "channel.h"
#include "outbox.h"
#include "util.h"

typedef struct Queued {
        unsigned key;
        char *msg;
} Queued;

struct Outbox {
        int fd;                         /* the duplicate, owned by source */
        sd_event_source *source;        /* EPOLLOUT, on while anything is queued */
        Queued queue[OUTBOX_MAX_QUEUED];
        size_t n;
};

static void drop_first(Outbox *o) {
        free(o->queue[0].msg);
        memmove(o->queue, o->queue + 1, --o->n * sizeof o->queue[0]);
}

static void drop_all(Outbox *o) {
        while (o->n > 0)
                drop_first(o);
}

static int send_one(int fd, const char *msg) {
        ssize_t k;
        while ((k = send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR)
                ;
        return k < 0 ? -errno : 0;
}

/* Sends what is queued, oldest first, until the channel is full. Returns
 * -EPIPE or -ECONNRESET when the peer is gone (the queue is dropped); a
 * message the kernel refuses for itself (too big, say) is dropped alone,
 * as its send now would have been. */
static int flush(Outbox *o) {
        int r = 0;
        while (o->n > 0) {
                r = send_one(o->fd, o->queue[0].msg);
                if (r == -EAGAIN)
                        break;
                if (r == -EPIPE || r == -ECONNRESET) {
                        drop_all(o);
                        break;
                }
                drop_first(o);
        }
        (void) sd_event_source_set_enabled(o->source, o->n > 0 ? SD_EVENT_ON : SD_EVENT_OFF);
        return r == -EPIPE || r == -ECONNRESET ? r : 0;
}

static int on_writable(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        (void) flush(userdata);
        return 0;
}

int outbox_new(sd_event *e, int fd, Outbox **ret) {
        /* A second io source on the same fd is refused by epoll (EEXIST)
         * while the caller watches it for input: this one watches a copy. */
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return -errno;
        Outbox *o = calloc(1, sizeof *o);
        if (!o) {
                safe_close(copy);
                return -ENOMEM;
        }
        o->fd = copy;
        int r = sd_event_add_io(e, &o->source, copy, EPOLLOUT, on_writable, o);
        if (r >= 0 && (r = sd_event_source_set_io_fd_own(o->source, true)) < 0)
                o->source = sd_event_source_disable_unref(o->source);
        if (r < 0) {
                safe_close(copy);
                free(o);
                return r;
        }
        /* Owned by the source from here on. */
        if ((r = sd_event_source_set_enabled(o->source, SD_EVENT_OFF)) < 0) {
                outbox_free(o);
                return r;
        }
        *ret = o;
        return 0;
}

Outbox *outbox_free(Outbox *o) {
        if (!o)
                return NULL;
        drop_all(o);
        sd_event_source_disable_unref(o->source); /* closes the copy */
        free(o);
        return NULL;
}

/* Where a message of key goes in the queue: in place of the one of that
 * key with no OUTBOX_EVERY message behind it, if there is one. */
static Queued *replaceable(const Outbox *o, unsigned key) {
        if (key == OUTBOX_EVERY)
                return NULL;
        for (size_t i = o->n; i > 0; i--) {
                if (o->queue[i - 1].key == OUTBOX_EVERY)
                        return NULL;
                if (o->queue[i - 1].key == key)
                        return (Queued *) &o->queue[i - 1];
        }
        return NULL;
}

int outbox_put(Outbox *o, unsigned key, const char *msg) {
        if (strlen(msg) >= CHANNEL_MAX_MESSAGE)
                return -EMSGSIZE;
        if (o->n == 0) {
                int r = send_one(o->fd, msg);
                if (r != -EAGAIN)
                        return r;
        }
        char *copy = strdup(msg);
        if (!copy)
                return -ENOMEM;
        Queued *q = replaceable(o, key);
        if (q) {
                free(q->msg);
                q->msg = copy;
        } else if (o->n < OUTBOX_MAX_QUEUED)
                o->queue[o->n++] = (Queued) { .key = key, .msg = copy };
        else {
                free(copy);
                return -ENOBUFS;
        }
        /* The channel may have drained since the last wakeup: what fits
         * goes now, and the rest when it is writable. */
        int r = flush(o);
        return r < 0 ? r : 1;
}

const char *outbox_queued(const Outbox *o, unsigned key) {
        const Queued *q = replaceable(o, key);
        return q ? q->msg : NULL;
}

size_t outbox_pending(const Outbox *o) {
        return o->n;
}
