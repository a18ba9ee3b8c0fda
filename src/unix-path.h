/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

/* A unix socket path left over from a crashed run (or a killed process)
 * refuses bind() with EADDRINUSE. Only when nothing answers on it is it
 * stale and safe to remove: removing a live socket is the "socket file
 * deleted while in use" failure.
 *
 * The probe never waits: a blocking connect() to a live socket whose owner
 * does not accept (its backlog full) would hang handoff's start for as long
 * as that lasts. Nonblocking, a unix connect() answers at once: ECONNREFUSED
 * when nobody listens (stale), EAGAIN when the backlog is full (alive),
 * EPROTOTYPE when a socket of another type is bound there (alive too: the
 * kernel answers so only after finding a live socket at the path).
 * Returns 1 when stale, 0 when alive, -errno when it cannot tell. */
struct sockaddr_un;
int unix_path_probe(const struct sockaddr_un *sa, socklen_t len, int type);

/* Binds fd, a unix socket of type, to the path in sa (NUL-terminated).
 * When the path is taken by a stale socket file (as unix_path_probe()
 * tells), removes that file and binds again. Returns 0 when bound, 1 when
 * bound after removing a stale socket file, or -errno. Where the path was
 * taken, *ret_probe (unless NULL) is the probe's answer: 1 stale, 0 a
 * live socket (kept), -errno when it cannot tell (kept). */
int unix_path_bind(int fd, const struct sockaddr_un *sa, socklen_t len, int type, int *ret_probe);

/* unix_path_bind(), the socket's file mode (0600, say) from its bind() on,
 * whatever the umask: never wider, for another uid to connect to, nor
 * narrower, for us not to. */
int unix_path_bind_mode(int fd, const struct sockaddr_un *sa, socklen_t len, int type, mode_t mode, int *ret_probe);
