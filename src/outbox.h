/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

/* The sending side of a handover channel (channel.h) whose peer may not read
 * for a while: a process stopped, starved of CPU or throttled. Its socket
 * buffer fills (a few hundred messages of the next handoff's STATUS= lines
 * do it), and a send that fails with EAGAIN must not lose what changes the
 * outcome of a reload: READY, FAILED, APP. What does not fit is queued, in
 * order, and sent once the channel is writable again, from an io source
 * that is enabled only while something is queued.
 *
 * Each message has a key. Key OUTBOX_EVERY: every one must arrive. Another
 * key: only the latest matters (a STATUS= text, say): while one of that key
 * is queued with no OUTBOX_EVERY message behind it, a new one replaces it
 * in its place, so that the peer gets the latest text, and still before a
 * READY put after it. The queue is bounded: the messages that must arrive
 * are a few per reload. */

#define OUTBOX_EVERY 0U
#define OUTBOX_MAX_QUEUED 32

typedef struct Outbox Outbox;

/* Sends on fd, which stays the caller's: the outbox watches a duplicate of
 * it, closed by outbox_free() (which drops whatever is still queued). */
int outbox_new(sd_event *e, int fd, Outbox **ret);
Outbox *outbox_free(Outbox *o);

/* Sends msg (at most CHANNEL_MAX_MESSAGE bytes, no NUL), or queues it
 * behind those queued already. Returns 0 when sent, 1 when it had to wait
 * (it may have gone since, with what was queued before it),
 * -ENOBUFS when the queue is full, -EPIPE or -ECONNRESET when the peer is
 * gone (everything queued is dropped then: nobody will read it), another
 * -errno when msg could not be sent at all. */
int outbox_put(Outbox *o, unsigned key, const char *msg);

/* The message of key queued still, one that a new one of that key would
 * replace; NULL when there is none. */
const char *outbox_queued(const Outbox *o, unsigned key);

/* How many messages wait for the channel to be writable. */
size_t outbox_pending(const Outbox *o);
