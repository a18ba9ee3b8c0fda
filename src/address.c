/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "address.h"
#include "log.h"
#include "unix-path.h"

void listen_address_done(ListenAddress *a) {
        free(a->host);
        free(a->port);
        free(a->path);
        free(a->name);
        *a = (ListenAddress) {};
}

/* systemd's rule (fdname_is_valid() in its fd-util.c): printable ASCII but
 * ':', the LISTEN_FDNAMES separator, at most 255 characters, and the empty
 * name "explicitly allowed": FDSTORE=1 with FDNAME= stores under "". A
 * --listen name must not be empty (listen_address_parse()).
 *
 * One more byte is refused: the backslash. sd_listen_fds_with_names() reads
 * it as an escape (systemd's extract_first_word()), so a generation would
 * find a name a<backslash>b as "ab", and a name ending in one makes it fail
 * for every later generation and for a next handoff. (A datagram's
 * escapes are gone by then: notify_parse() unescapes as systemd does, so
 * FDNAME=a<backslash>b is "ab"; only a name sent as a doubled backslash
 * still holds one, and is stored as "stored", with a warning, where
 * systemd stores it as it is.) */
bool fdname_is_valid(const char *s) {
        size_t n = 0;
        for (; s[n]; n++)
                if (s[n] < ' ' || s[n] > '~' || s[n] == ':' || s[n] == '\\')
                        return false;
        return n <= 255;
}

static bool port_is_valid(const char *p) {
        if (!*p || strlen(p) > 5)
                return false;
        unsigned long v = 0;
        for (const char *c = p; *c; c++) {
                if (*c < '0' || *c > '9')
                        return false;
                v = v * 10 + (unsigned long) (*c - '0');
        }
        return v >= 1 && v <= 65535;
}

/* "sctp:…", "http:…": letters (and '-') up to the first ':', one of them
 * no hex digit, so that it cannot begin an IPv6 address ("dead::1"). */
static bool looks_like_a_type(const char *s) {
        bool hex_only = true;
        const char *c = s;
        for (; *c && *c != ':'; c++) {
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '-'))
                        return false;
                if (!strchr("abcdefABCDEF", *c))
                        hex_only = false;
        }
        return c > s && *c == ':' && !hex_only;
}

/* Splits "HOST:PORT", "[V6]:PORT" or "PORT" into host (NULL for any) and port. */
static int parse_inet(const char *s, ListenAddress *a, const char **ret_error) {
        const char *colon;
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':') {
                        *ret_error = "IPv6 address must look like [ADDR]:PORT";
                        return -EINVAL;
                }
                a->host = strndup(s + 1, (size_t) (close - s - 1));
                colon = close + 1;
        } else if ((colon = strrchr(s, ':'))) {
                if (memchr(s, ':', (size_t) (colon - s))) {
                        *ret_error = looks_like_a_type(s) ? "unknown address type before the first ':' (expected "
                                                            "tcp:, udp:, unix: or unix-dgram:)"
                                                          : "IPv6 address must be in brackets: [ADDR]:PORT";
                        return -EINVAL;
                }
                a->host = strndup(s, (size_t) (colon - s));
        } else
                colon = s - 1; /* bare port */

        if (a->host && a->host[0] == '\0') {
                *ret_error = "empty host";
                return -EINVAL;
        }
        if (!port_is_valid(colon + 1)) {
                *ret_error = "port must be a number from 1 to 65535";
                return -EINVAL;
        }
        a->port = strdup(colon + 1);
        return 0;
}

static int parse_unix(const char *s, ListenAddress *a, const char **ret_error) {
        if (s[0] == '@') {
                a->abstract = true;
                s++;
        } else if (s[0] != '/') {
                *ret_error = "unix socket path must be absolute, or @name for an abstract socket";
                return -EINVAL;
        }
        /* sun_path holds 108 bytes: a path needs its NUL, an abstract name its
         * leading NUL. */
        if (*s == '\0' || strlen(s) + 1 > sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
                *ret_error = *s ? "unix socket path too long (at most 107 bytes)" : "empty unix socket name";
                return -EINVAL;
        }
        a->path = strdup(s);
        return 0;
}

int listen_address_parse(const char *spec, ListenAddress *ret, const char **ret_error) {
        ListenAddress a = {};
        const char *err = NULL;
        _cleanup_free_ char *s = strdup(spec);
        if (!s)
                return -ENOMEM;

        char *eq = strrchr(s, '=');
        if (eq) {
                *eq = '\0';
                if (!eq[1] || !fdname_is_valid(eq + 1)) {
                        *ret_error = "name after '=' must be 1-255 printable characters without ':' or '\\'";
                        return -EINVAL;
                }
                a.name = strdup(eq + 1);
        } else
                a.name = strdup("unknown"); /* what sd_listen_fds_with_names() reports for unnamed fds */

        static const struct {
                const char *prefix;
                AddressKind kind;
        } prefixes[] = {
                { "tcp:", ADDR_TCP },
                { "udp:", ADDR_UDP },
                { "unix-dgram:", ADDR_UNIX_DGRAM },
                { "unix:", ADDR_UNIX_STREAM },
        };
        const char *rest = s;
        a.kind = ADDR_TCP;
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(s, prefixes[i].prefix, strlen(prefixes[i].prefix)) == 0) {
                        a.kind = prefixes[i].kind;
                        rest = s + strlen(prefixes[i].prefix);
                        break;
                }
        /* As systemd's ListenStream=: a path or an @name without a prefix is
         * a unix stream socket (no host name starts with either). */
        if (rest == s && (s[0] == '/' || s[0] == '@'))
                a.kind = ADDR_UNIX_STREAM;

        int r = (a.kind == ADDR_TCP || a.kind == ADDR_UDP) ? parse_inet(rest, &a, &err) : parse_unix(rest, &a, &err);
        if (r >= 0 && (!a.name || ((a.kind == ADDR_TCP || a.kind == ADDR_UDP) ? !a.port : !a.path)))
                r = -ENOMEM, err = "out of memory";
        if (r < 0) {
                listen_address_done(&a);
                *ret_error = err;
                return r;
        }
        *ret = a;
        return 0;
}

static int socket_type(const ListenAddress *a) {
        return (a->kind == ADDR_UDP || a->kind == ADDR_UNIX_DGRAM) ? SOCK_DGRAM : SOCK_STREAM;
}

static int open_unix(const ListenAddress *a, const char *spec, int *ret_fd, char **ret_created) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t l = strlen(a->path);
        socklen_t len;
        if (a->abstract) {
                memcpy(sa.sun_path + 1, a->path, l);
                len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + l);
        } else {
                memcpy(sa.sun_path, a->path, l + 1);
                len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + l + 1);
        }

        int type = socket_type(a);
        _cleanup_close_ int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create socket for %s: %m", spec);

        int probe = 1;
        int r = a->abstract ? (bind(fd, (struct sockaddr *) &sa, len) < 0 ? -errno : 0)
                            : unix_path_bind(fd, &sa, len, type, &probe);
        if (r == -EADDRINUSE && probe == 0)
                return log_error_errno(r, "Failed to bind %s: %m (a live socket: another process listens on it)",
                                       spec);
        if (r == -EADDRINUSE && probe < 0)
                return log_error_errno(r, "Failed to bind %s: %m (and it is not a stale socket: %s)", spec,
                                       strerror(-probe));
        if (r < 0)
                return log_error_errno(r, "Failed to bind %s: %m", spec);
        if (r > 0)
                log_info("Removing stale socket file %s (nothing listens on it).", a->path);
        if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)
                return log_error_errno(errno, "Failed to listen on %s: %m", spec);

        *ret_created = NULL;
        if (!a->abstract && !(*ret_created = strdup(a->path)))
                return log_error_errno(ENOMEM, "Out of memory");
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Opens one listening socket of the given family. Silent: on failure
 * *ret_step names what failed ("resolve", "bind", ...), so the caller logs
 * once, knowing whether a fallback follows. */
static int open_inet_family(const ListenAddress *a, int family, int *ret_fd, const char **ret_step, int *ret_gai) {
        int type = socket_type(a);
        struct addrinfo hints = {
                .ai_family = family,
                .ai_socktype = type,
                .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
        }, *res = NULL;

        *ret_step = "resolve";
        int r = *ret_gai = getaddrinfo(a->host, a->port, &hints, &res);
        if (r != 0)
                return r == EAI_SYSTEM ? -errno : r == EAI_FAMILY || r == EAI_ADDRFAMILY ? -EAFNOSUPPORT : -EADDRNOTAVAIL;

        r = 0;
        *ret_step = "create socket for";
        _cleanup_close_ int fd = socket(res->ai_family, type | SOCK_CLOEXEC, 0);
        if (fd < 0)
                r = -errno;
        else {
                int one = 1;
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                if (bind(fd, res->ai_addr, res->ai_addrlen) < 0)
                        *ret_step = "bind", r = -errno;
                else if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)
                        *ret_step = "listen on", r = -errno;
        }
        freeaddrinfo(res);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int open_inet(const ListenAddress *a, const char *spec, int *ret_fd) {
        const char *step;
        int r, gai = 0;
        if (a->host)
                r = open_inet_family(a, AF_UNSPEC, ret_fd, &step, &gai);
        else {
                /* No host: the IPv6 wildcard, which also takes IPv4 clients
                 * when the kernel's bindv6only is off, as systemd's
                 * ListenStream=PORT does; the IPv4 wildcard on a kernel
                 * without IPv6. */
                r = open_inet_family(a, AF_INET6, ret_fd, &step, &gai);
                if (r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL) {
                        log_debug_errno(r, "No IPv6 for %s (%s: %m); using IPv4.", spec, step);
                        r = open_inet_family(a, AF_INET, ret_fd, &step, &gai);
                }
        }
        if (r < 0 && gai != 0 && gai != EAI_SYSTEM) {
                log_error("Failed to resolve %s: %s", spec, gai_strerror(gai));
                return r;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to %s %s: %m", step, spec);
        return 0;
}

/* Whether the bound address sa (len bytes) is one that a->host (NULL: the
 * wildcard) resolves to. */
static bool inet_address_matches(const ListenAddress *a, const struct sockaddr *sa, socklen_t len) {
        if (sa->sa_family == AF_INET && len >= (socklen_t) sizeof(struct sockaddr_in)) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                if (!a->host)
                        return in->sin_addr.s_addr == htonl(INADDR_ANY);
        } else if (sa->sa_family == AF_INET6 && len >= (socklen_t) sizeof(struct sockaddr_in6)) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                if (!a->host)
                        return IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
        } else
                return false;
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC, /* a numeric host of the other family resolves, and does not match */
                .ai_socktype = socket_type(a),
                .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST,
        }, *res = NULL;
        /* A name is not looked up: the type and port matched, and a restart
         * must not wait for DNS (seconds per server that does not answer,
         * clients queueing meanwhile), nor drop a good socket, its queue
         * with it, because the name resolves elsewhere now. */
        if (getaddrinfo(a->host, a->port, &hints, &res) != 0)
                return true;
        bool found = false;
        for (const struct addrinfo *i = res; i && !found; i = i->ai_next) {
                if (i->ai_family != sa->sa_family)
                        continue;
                if (sa->sa_family == AF_INET)
                        found = memcmp(&((const struct sockaddr_in *) i->ai_addr)->sin_addr,
                                       &((const struct sockaddr_in *) sa)->sin_addr, sizeof(struct in_addr)) == 0;
                else
                        found = memcmp(&((const struct sockaddr_in6 *) i->ai_addr)->sin6_addr,
                                       &((const struct sockaddr_in6 *) sa)->sin6_addr, sizeof(struct in6_addr)) == 0;
        }
        freeaddrinfo(res);
        return found;
}

bool listen_address_matches(const ListenAddress *a, int fd) {
        int type = 0;
        socklen_t tlen = sizeof type;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != socket_type(a) ||
            getsockname(fd, (struct sockaddr *) &ss, &len) < 0)
                return false;
        const struct sockaddr *sa = (const struct sockaddr *) &ss;
        if (a->kind == ADDR_UNIX_STREAM || a->kind == ADDR_UNIX_DGRAM) {
                const struct sockaddr_un *un = (const struct sockaddr_un *) &ss;
                size_t off = offsetof(struct sockaddr_un, sun_path), l = strlen(a->path);
                if (sa->sa_family != AF_UNIX || len <= off)
                        return false;
                size_t n = (size_t) len - off;
                if (a->abstract)
                        return n == l + 1 && un->sun_path[0] == '\0' && memcmp(un->sun_path + 1, a->path, l) == 0;
                return strnlen(un->sun_path, n) == l && memcmp(un->sun_path, a->path, l) == 0;
        }
        uint16_t port = sa->sa_family == AF_INET ? ntohs(((const struct sockaddr_in *) sa)->sin_port)
                      : sa->sa_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *) sa)->sin6_port)
                      : 0;
        if (port == 0 || port != (uint16_t) atoi(a->port))
                return false;
        return inet_address_matches(a, sa, len);
}

int listen_address_open(const ListenAddress *a, const char *spec, int *ret_fd, char **ret_created_path) {
        *ret_created_path = NULL;
        if (a->kind == ADDR_UNIX_STREAM || a->kind == ADDR_UNIX_DGRAM)
                return open_unix(a, spec, ret_fd, ret_created_path);
        return open_inet(a, spec, ret_fd);
}
