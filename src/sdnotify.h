/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

/* handoff's own messages to the service manager ($NOTIFY_SOCKET), as
 * sd_notify(3) sends them but on one socket connected once, and never
 * blocking: a manager that does not read its socket must not stop our
 * event loop. Nor may it lose what the manager must hear (READY=1 after a
 * start or a reload, RELOADING=1, the fd store): once attached to the
 * event loop, what finds the manager's queue full waits in order in an
 * outbox (outbox.h) until it has room. Of STATUS= lines (handoff's own and
 * those it relays from its generations), WATCHDOG=1 pings, WATCHDOG=trigger,
 * WATCHDOG_USEC=, EXTEND_TIMEOUT_USEC= and ERRNO= only the latest of each
 * waits, each in a message of its own (a relayed datagram holding several
 * is split, as systemd acts on each field alone); those never take the
 * last 64 places, nor the fd store the 16 before them: a server that keeps
 * talking cannot crowd out READY=1, RELOADING=1, STOPPING=1 or the
 * barrier. Any local user can fill systemd's queue: /run/systemd/notify is
 * open to all, and a datagram from an unknown pid is only dropped once
 * read. The address is taken from the environment once, by
 * sdnotify_setup(), which also removes NOTIFY_SOCKET from it. The socket is
 * connected once; it reaches whatever is bound at the address again only
 * when the one it reached has closed (ECONNREFUSED). systemd keeps its
 * notify socket open across daemon-reexec and switch-root, so this is the
 * same socket an unconnected send would reach. */

/* Reads and unsets NOTIFY_SOCKET. Returns 1 when there is a manager, 0 when
 * not, -EAFNOSUPPORT when NOTIFY_SOCKET is set to something else than a
 * path or an abstract name (a vsock: address of systemd 253 and later),
 * which counts as no manager. Later sends go nowhere until
 * sdnotify_enable(). */
int sdnotify_setup(void);

/* The manager's address as it was in the environment; "" without one. */
const char *sdnotify_address(void);

/* Whether sends reach the manager. A next handoff stays silent until it
 * takes over; sdnotify_setup() leaves sending enabled when there is an
 * address. */
void sdnotify_enable(int on);

/* Places of the queue kept for handoff's own control messages (READY=1,
 * RELOADING=1, STOPPING=1, MAINPID=, the barrier), which the latest-only
 * kinds (STATUS=, WATCHDOG=, ...) may not take; and, before those, places
 * for the latest-only kinds, which the fd store and anything else that
 * must arrive whole may not take. A bound for n messages that must arrive
 * whole is n + SDNOTIFY_RESERVED. */
#define RESERVED_FOR_CONTROL 64
#define RESERVED_FOR_LATEST 16
#define SDNOTIFY_RESERVED (RESERVED_FOR_CONTROL + RESERVED_FOR_LATEST)

/* What does not fit before sdnotify_attach() waits for it: at most this
 * many (the --listen sockets put into systemd's fd store as handoff starts,
 * a removal and a put for each). */
#define SDNOTIFY_EARLY_MAX (2 * 1024 + SDNOTIFY_RESERVED)

/* From now on, what does not fit (and what waits already) is sent from e,
 * up to max_queued messages (past it, the caller logs what was lost).
 * detach() drops what still waits, with a warning that says how much. */
void sdnotify_attach(sd_event *e, size_t max_queued);
void sdnotify_detach(void);

/* Sends text (and fds, up to 8, which stay the caller's) in one datagram,
 * or queues it behind what waits (before sdnotify_attach(), to be sent
 * once attached): whole, but for one made of
 * the latest-only fields above alone, which waits as one message per
 * field. Returns 1 when sent or queued, 0 when there is no manager or
 * sending is disabled, -errno on failure (-EAGAIN when the manager's queue
 * is full and no queue could be set up, -ENOBUFS when the outbox has no place
 * left for it, or not for all of its fields). */
int sdnotify_send(const char *text, const int *fds, size_t n_fds);

/* The same, but never queued: -EAGAIN when it cannot go to the kernel now,
 * behind nothing. For MAINPID=, which the manager must have read before
 * the process that sent it exits: the caller waits for room itself
 * (sdnotify_fd()), where it can still give up. */
int sdnotify_send_now(const char *text, const int *fds, size_t n_fds);

/* The socket connected to the manager, or -EBADF before the first send:
 * to wait for room on it (EPOLLOUT). Stays sdnotify's. */
int sdnotify_fd(void);
