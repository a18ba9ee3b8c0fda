/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* A --listen argument: what to open, parsed but not yet resolved. */
typedef enum {
        ADDR_TCP,
        ADDR_UDP,
        ADDR_UNIX_STREAM,
        ADDR_UNIX_DGRAM,
} AddressKind;

typedef struct ListenAddress {
        AddressKind kind;
        char *host;     /* inet: NULL means "any" (dual-stack [::] where possible) */
        char *port;     /* inet: decimal 1..65535 */
        char *path;     /* unix: filesystem path, or the abstract name without '@' */
        bool abstract;  /* unix: abstract namespace */
        char *name;     /* the LISTEN_FDNAMES entry */
} ListenAddress;

void listen_address_done(ListenAddress *a);

/* Parses "[tcp:|udp:]HOST:PORT", "[::1]:PORT", "PORT", "unix:/path",
 * "unix:@name", "unix-dgram:/path" with an optional "=NAME" suffix.
 * Returns 0, or -EINVAL with *ret_error naming what is wrong. */
int listen_address_parse(const char *s, ListenAddress *ret, const char **ret_error);

/* fd names as systemd accepts them: up to 255 printable ASCII, no ':', the
 * empty name included; and no '\\', which LISTEN_FDNAMES' readers unescape. */
bool fdname_is_valid(const char *s);

/* Opens, binds and (for stream sockets) listens with a SOMAXCONN backlog.
 * The fd is CLOEXEC. *ret_created_path is set to a copy of a unix path this
 * call created (for unlinking at final stop), NULL otherwise.
 * Errors are logged here, with the address, because only here is it known
 * which step failed. */
int listen_address_open(const ListenAddress *a, const char *spec, int *ret_fd, char **ret_created_path);

/* Whether fd, a socket a previous handoff opened for a --listen (and put
 * into systemd's fd store), is what a asks for now: of its type, bound to
 * its path, abstract name, or port and numeric host; a host name is not
 * looked up (its port and type decide). */
bool listen_address_matches(const ListenAddress *a, int fd);
