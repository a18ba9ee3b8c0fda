/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* handoff's own messages to the service manager ($NOTIFY_SOCKET), as
 * sd_notify(3) sends them but on one socket connected once, and never
 * blocking: a manager that does not read its socket must not stop our
 * event loop (a lost STATUS= is fine; the caller logs a lost READY=1 or
 * MAINPID=). The address is taken from the environment once, by
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

/* Sends text (and fds, if any) in one datagram. Returns 1 when sent, 0 when
 * there is no manager or sending is disabled, -errno on failure (-EAGAIN
 * when the manager's queue is full). */
int sdnotify_send(const char *text, const int *fds, size_t n_fds);
