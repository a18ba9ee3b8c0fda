/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "notify-mode.h"

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
        bool fdpoll_off;        /* FDPOLL=0: keep them even when they hang up */
        const char *fdname;     /* FDNAME= */
        const char *status;     /* STATUS=, points into the parsed buffer ... */
        bool status_not_utf8;   /* ... "" when it was not valid UTF-8 */
        const char *extend_timeout_usec;
        const char *watchdog_usec; /* WATCHDOG_USEC=, as sent (notify_watchdog_usec()) */
        const char *errno_value;
        const char *mainpid;
        unsigned n_unknown;     /* lines we do not act on */
        unsigned n_lines;       /* lines in all */
} NotifyMessage;

/* Parses one datagram of len bytes in buf (which must have room for a NUL at
 * buf[len]; lines are unescaped in place) as systemd 252's manager reads one
 * (strv_split_newlines(), that is extract_first_word() with the separators
 * "\n\r" and no flags):
 *  - one trailing NUL is allowed (a sender that counts the terminator); any
 *    other NUL, or more than NOTIFY_MAX_LEN bytes, is -EBADMSG;
 *  - lines end at \n or \r, and empty ones are skipped;
 *  - a backslash takes the character after it as it is ("\\" is one
 *    backslash, an escaped \n is part of the line), and a datagram that ends
 *    in a lone backslash is -EBADMSG, as systemd drops it;
 *  - a line without '=' is ignored (counted in n_unknown), and an empty
 *    datagram is an empty message.
 * The lines count as systemd's service_notify_message() counts them: of
 * READY=1, RELOADING=1 and STOPPING=1 the last one (at most one of ready,
 * reloading and stopping is set); of WATCHDOG= and the keys with a value,
 * the first line; BARRIER=1, FDSTORE=1, FDSTOREREMOVE=1 and FDPOLL=0 on any
 * line. Other values of a flag are ignored. A value may hold \n or \r:
 * notify_escape() makes it a line again. A STATUS= that is not valid UTF-8
 * is an empty one (status_not_utf8): the service manager ignores its text
 * and clears the status, as for an empty one. */
int notify_parse(char *buf, size_t len, NotifyMessage *ret);

/* The new watchdog timeout m asks for with WATCHDOG_USEC=: false when it has
 * none, or one that is not a number of microseconds (which systemd ignores
 * too). 0 (and infinity) turn the watchdog off, as systemd's
 * service_override_watchdog_timeout() does. */
bool notify_watchdog_usec(const NotifyMessage *m, uint64_t *ret);

/* A number of microseconds as handoff relays and uses one (EXTEND_TIMEOUT_USEC=,
 * WATCHDOG_USEC=): decimal digits without a leading zero, so that systemd
 * reads the same number; -EINVAL otherwise (or for NULL). */
int notify_parse_usec(const char *s, uint64_t *ret);

/* Builds the text handoff forwards to systemd for a message from the serving
 * generation: STATUS (escaped, notify_escape()), WATCHDOG, WATCHDOG_USEC,
 * EXTEND_TIMEOUT_USEC and ERRNO (a number, or a name such as ENOENT) only; READY, RELOADING, STOPPING and
 * MAINPID are handoff's own to say. Returns the length written (0 when
 * nothing is to be relayed) or -ENOBUFS. */
int notify_relay_text(const NotifyMessage *m, char *buf, size_t size);

/* Writes text into buf (size > 0 bytes, NUL-terminated) so that the service
 * manager (and notify_parse()) reads it back as it was: a backslash before every
 * backslash, \n and \r. What does not fit is cut, never inside an escape
 * nor inside a UTF-8 character. Returns the length written. For every value
 * handoff sends that holds text from elsewhere (a server's STATUS=). */
size_t notify_escape(const char *text, char *buf, size_t size);

/* Room for an escaped STATUS= value that leaves enough of a datagram for the
 * lines that go with it (READY=1, MAINPID=...): a cut there would split an
 * escape, and the manager drops a datagram that ends in one. */
#define STATUS_ESCAPED_MAX (NOTIFY_MAX_LEN - 64)

/* The runtime directory under which private notify directories are made
 * (runtime_dir_path(), the control socket's): /run/handoff and
 * $XDG_RUNTIME_DIR/handoff are created (0700) when missing. It must be a
 * directory of our uid that no one else may write. Returns -ENOENT when there is
 * none to be had (no $XDG_RUNTIME_DIR as a user), -EPERM when it is not ours
 * or others may write it, -ENAMETOOLONG when a socket path inside it would
 * not fit into sun_path, or another -errno. */
int notify_runtime_dir(char *ret, size_t size);

/* Makes (or checks) the private directory <base>/notify.<pid> for this
 * handoff process: a directory of ours, mode 0700, not a symlink. */
int notify_private_dir(const char *base, pid_t pid, char *ret, size_t size);

/* Removes what a handoff of ours with this pid left of its private
 * directory when it was killed: the sockets in it nobody reads (the pid may
 * have been reused by a live one, whose sockets stay), then the directory
 * if it is empty then. Returns whether the directory was removed. */
bool notify_private_dir_remove_stale(pid_t pid);

/* Creates a path notify socket <dir>/<name> (replacing a stale one of that
 * name: the directory is ours alone), with the same properties as
 * notify_socket_open(); ret_address gets the path. */
int notify_socket_open_path(const char *dir, const char *name, int min_fd, char *ret_address, size_t size,
                            int *ret_fd);

/* Removes a path notify socket, and its directory with the last of those
 * this process made. A no-op for an abstract address ("@…") or an empty
 * one. */
void notify_socket_unlink(const char *address);

/* Creates the private notify socket for one generation: AF_UNIX SOCK_DGRAM
 * with SO_PASSCRED, bound to a unique abstract name, nonblocking, CLOEXEC and
 * placed at an fd >= min_fd. ret_address gets the "@name" for NOTIFY_SOCKET. */
int notify_socket_open(int min_fd, char *ret_address, size_t size, int *ret_fd);

/* Receives one datagram. Returns its length with the sender's pid and uid
 * and the fds that came with it (the caller keeps or closes them), -EAGAIN
 * when there is nothing to read now, or -EBADMSG when the datagram was
 * dropped (no credentials, truncated): *reason then names why, and its fds
 * are closed. The uid is the caller's to judge (notify_uid_is_ours()).
 *
 * may_pass_fds, when given, says from the sender's credentials whether its
 * fds may come into handoff's fd table: where it says no, none does (a
 * close() of any fd of a FUSE file waits for its server), and a datagram
 * that brought some is dropped by a closer thread
 * (close_async_drop_datagram()); its text, pid and uid are returned as
 * usual, without fds. The caller then reads fd again only once
 * close_async_saturated() is false. It costs one more recvmsg() (a peek)
 * per datagram: for sockets anyone may send to. NULL lets every sender
 * pass fds. */
#define NOTIFY_MAX_FDS 253
typedef bool (*NotifyFdsAllowed)(pid_t pid, uid_t uid, void *userdata);
int notify_receive(int fd, NotifyFdsAllowed may_pass_fds, void *userdata, char *buf, size_t size, pid_t *ret_pid,
                   uid_t *ret_uid, const char **reason, int *ret_fds, size_t *ret_n_fds);

/* Root's or handoff's own. */
bool notify_uid_is_ours(uid_t uid);
