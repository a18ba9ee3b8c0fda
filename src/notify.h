/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The sd_notify(3) datagram protocol, both directions:
 *  - parsing what a generation sends to its private NOTIFY_SOCKET (untrusted);
 *  - the receiving socket itself, credential-checked;
 *  - building what handoff relays to systemd. */

#define NOTIFY_MAX_LEN 4096

typedef struct NotifyMessage {
        bool ready;
        bool reloading;
        bool stopping;
        bool watchdog;          /* WATCHDOG=1 */
        bool watchdog_trigger;  /* WATCHDOG=trigger */
        bool barrier;           /* BARRIER=1 */
        bool fdstore;           /* FDSTORE=1: keep the fds sent along */
        bool fdstoreremove;     /* FDSTOREREMOVE=1: drop the ones named FDNAME */
        const char *fdname;     /* FDNAME= */
        const char *status;     /* STATUS=, points into the parsed buffer */
        const char *extend_timeout_usec;
        const char *errno_value;
        const char *mainpid;
        unsigned n_unknown;     /* assignments we do not act on */
} NotifyMessage;

/* Parses one datagram of len bytes in buf (which must have room for a NUL at
 * buf[len]; lines are split in place). Rejects embedded NULs, empty and
 * oversized messages, and lines that are not KEY=VALUE with -EBADMSG. */
int notify_parse(char *buf, size_t len, NotifyMessage *ret);

/* Builds the text handoff forwards to systemd for a message from the serving
 * generation: STATUS, WATCHDOG, EXTEND_TIMEOUT_USEC and ERRNO only; READY,
 * RELOADING, STOPPING and MAINPID are handoff's own to say. Returns the
 * length written (0 when nothing is to be relayed) or -ENOBUFS. */
int notify_relay_text(const NotifyMessage *m, char *buf, size_t size);

/* Creates the private notify socket for one generation: AF_UNIX SOCK_DGRAM
 * with SO_PASSCRED, bound to a unique abstract name, nonblocking, CLOEXEC and
 * placed at an fd >= min_fd. ret_address gets the "@name" for NOTIFY_SOCKET. */
int notify_socket_open(int min_fd, char *ret_address, size_t size, int *ret_fd);

/* Receives one datagram. Returns its length with the sender's credentials
 * and the fds that came with it (the caller keeps or closes them), -EAGAIN
 * when there is nothing to read, or -EBADMSG when the datagram was dropped (no
 * credentials, another uid than ours or root's, truncated): *reason then
 * names why, and its fds are closed. */
#define NOTIFY_MAX_FDS 253
int notify_receive(int fd, char *buf, size_t size, pid_t *ret_pid, const char **reason, int *ret_fds,
                   size_t *ret_n_fds);
