/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

/* The sending side of a connected datagram socket whose peer may not read
 * for a while: the handover channel (channel.h) to a predecessor stopped,
 * starved of CPU or throttled, or $NOTIFY_SOCKET to a service manager busy
 * elsewhere (sdnotify.h). Its queue fills, and a send that fails with
 * EAGAIN must not lose what changes the outcome: READY, FAILED, APP to a
 * predecessor; READY=1, RELOADING=1, the fd store to systemd. What does not
 * fit is queued, in order, and sent once the socket is writable again, from
 * an io source that is enabled only while something is queued.
 *
 * Each message has a key. Key OUTBOX_EVERY: every one must arrive. Another
 * key: only the latest matters (a STATUS= text, say): while one of that key
 * is queued with no OUTBOX_EVERY message behind it, a new one replaces it
 * in its place, so that the peer gets the latest text, and still before a
 * READY put after it. A message with fds is always OUTBOX_EVERY. The queue
 * is bounded by its creator. */

#define OUTBOX_EVERY 0U
#define OUTBOX_MAX_FDS 8

typedef struct Outbox Outbox;

/* Sends on fd, which stays the caller's. The outbox watches it for room:
 * a copy of it with watch_copy (the caller watches fd itself, and epoll
 * takes one source per fd), closed by outbox_free(); else fd itself, which
 * must then outlive the outbox. outbox_free() drops whatever is still
 * queued, and closes the fds queued with it. At most max_queued messages
 * wait, each shorter than max_message bytes. */
int outbox_new(sd_event *e, int fd, bool watch_copy, size_t max_queued, size_t max_message, Outbox **ret);
Outbox *outbox_free(Outbox *o);

/* Without e (and without watch_copy), what does not fit waits until
 * outbox_attach() watches fd in e, then bounded by max_queued. */
int outbox_attach(Outbox *o, sd_event *e, size_t max_queued);

/* Sends msg (no NUL) with fds (up to OUTBOX_MAX_FDS, which stay the
 * caller's: a queued message holds copies), or queues it behind those
 * queued already. Returns 0 when sent, 1 when it had to wait (it may have
 * gone since, with what was queued before it), -ENOBUFS when the queue is
 * full, -EPIPE, -ECONNRESET, -ECONNREFUSED or -ENOTCONN when the peer is gone
 * (everything queued is dropped then: nobody will read it), another -errno
 * when msg could not be sent at all. */
int outbox_put_fds(Outbox *o, unsigned key, const char *msg, const int *fds, size_t n_fds);
static inline int outbox_put(Outbox *o, unsigned key, const char *msg) {
        return outbox_put_fds(o, key, msg, NULL, 0);
}

/* The message of key queued still, one that a new one of that key would
 * replace; NULL when there is none. */
const char *outbox_queued(const Outbox *o, unsigned key);

/* Sends what waits, as far as the socket takes it now (the loop may not
 * have run since it had room). Returns how many messages still wait, or
 * the peer's -errno when it is gone (see outbox_put_fds()). */
int outbox_flush(Outbox *o);

/* How many messages wait for the socket to be writable. */
size_t outbox_pending(const Outbox *o);
