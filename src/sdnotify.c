/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "log.h"
#include "notify.h"
#include "outbox.h"
#include "sdnotify.h"
#include "util.h"

/* Room kept for handoff's own control messages (RELOADING=1, READY=1,
 * STOPPING=1, the barrier): the latest-only kinds below may not take the
 * last RESERVED_FOR_CONTROL places, and the fd store and anything else that
 * must arrive whole not the last RESERVED_FOR_CONTROL +
 * RESERVED_FOR_LATEST, so that the latest STATUS= still waits when a
 * server's fd store has filled its share. */

/* Only the latest of each of these matters, each waiting in a message of
 * its own. A message handoff relays from a server is made of such fields
 * only (notify_relay_text()), and systemd's service_notify_message() acts
 * on each field of a datagram on its own: what must wait is split into one
 * message per field, each replaced by the next of its kind. */
enum {
        KEY_STATUS = 1,       /* a STATUS= text */
        KEY_WATCHDOG,         /* WATCHDOG=1, a ping */
        KEY_WATCHDOG_TRIGGER, /* WATCHDOG=trigger: one fires the watchdog as well as many */
        KEY_WATCHDOG_USEC,    /* WATCHDOG_USEC=: the latest timeout is the one that counts */
        KEY_EXTEND,           /* EXTEND_TIMEOUT_USEC=: the largest waits (extends_less()) */
        KEY_ERRNO,            /* ERRNO=: systemd keeps the last one */
};

static struct {
        struct sockaddr_un sa;
        socklen_t len;   /* 0: no manager */
        bool enabled;
        int fd;
        char text[sizeof(((struct sockaddr_un *) 0)->sun_path) + 1];
        sd_event *event; /* with it, what does not fit is sent from outbox */
        size_t max_queued;
        Outbox *outbox;  /* before the event, it waits there for it */
} m = { .fd = -EBADF, .max_queued = SDNOTIFY_EARLY_MAX };

int sdnotify_setup(void) {
        const char *e = getenv("NOTIFY_SOCKET");
        size_t n = e ? strlen(e) : 0;
        m.len = 0;
        /* Path and abstract ("@name") addresses, as sd_notify(3) takes them;
         * anything else (vsock, too long) is as good as none here. */
        if (n > 1 && n < sizeof m.sa.sun_path && (e[0] == '/' || e[0] == '@')) {
                m.sa.sun_family = AF_UNIX;
                memcpy(m.sa.sun_path, e, n);
                if (e[0] == '@')
                        m.sa.sun_path[0] = '\0';
                m.len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + (e[0] == '/'));
                snprintf(m.text, sizeof m.text, "%s", e);
        }
        unsetenv("NOTIFY_SOCKET");
        m.enabled = m.len > 0;
        if (n > 0 && m.len == 0)
                return -EAFNOSUPPORT;
        return m.len > 0;
}

const char *sdnotify_address(void) {
        return m.len > 0 ? m.text : "";
}

void sdnotify_enable(int on) {
        m.enabled = on && m.len > 0;
}

/* Connected once: a send then names no address, and the kernel does not
 * look the path up again for every message (a tenth of a reload's CPU on
 * the path of each of its two messages). */
static int manager_connect(void) {
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) &m.sa, m.len) < 0) {
                int r = -errno;
                safe_close(fd);
                return r;
        }
        m.fd = fd;
        return 0;
}

void sdnotify_attach(sd_event *e, size_t max_queued) {
        m.event = sd_event_ref(e);
        m.max_queued = max_queued;
        int r = m.outbox ? outbox_attach(m.outbox, e, max_queued) : 0;
        if (r < 0)
                log_warning_errno(r, "Failed to watch the service manager's socket for room, %zu message%s wait "
                                  "for the next one sent: %m", outbox_pending(m.outbox),
                                  outbox_pending(m.outbox) == 1 ? "" : "s");
}

void sdnotify_detach(void) {
        /* The socket may have room by now: a last STOPPING=1, say. */
        int k = m.outbox ? outbox_flush(m.outbox) : 0;
        size_t n = k > 0 ? (size_t) k : 0;
        if (n > 0)
                log_warning("The service manager did not read its last %zu message%s from handoff.", n,
                            n == 1 ? "" : "s");
        m.outbox = outbox_free(m.outbox);
        m.event = sd_event_unref(m.event);
}

static bool is_field(const char *text, const char *prefix) {
        return strncmp(text, prefix, strlen(prefix)) == 0;
}

/* The line at text, len bytes: is it field=value, exactly? */
static bool line_is(const char *text, size_t len, const char *field) {
        return len == strlen(field) && strncmp(text, field, len) == 0;
}

typedef enum Kind {
        KIND_LATEST,  /* latest-only fields alone: split, each replaced by the next */
        KIND_CONTROL, /* READY=, RELOADING=, STOPPING=, MAINPID=, BARRIER=: handoff's own, whole */
        KIND_STORE,   /* the fd store, whole */
        KIND_OTHER,   /* anything else, whole */
} Kind;

/* The key of one line (len bytes, no line end), 0 when it is not a
 * latest-only field. */
static unsigned key_of_line(const char *text, size_t len) {
        if (is_field(text, "STATUS="))
                return KEY_STATUS;
        if (line_is(text, len, "WATCHDOG=1"))
                return KEY_WATCHDOG;
        if (line_is(text, len, "WATCHDOG=trigger"))
                return KEY_WATCHDOG_TRIGGER;
        if (is_field(text, "WATCHDOG_USEC="))
                return KEY_WATCHDOG_USEC;
        if (is_field(text, "EXTEND_TIMEOUT_USEC="))
                return KEY_EXTEND;
        if (is_field(text, "ERRNO="))
                return KEY_ERRNO;
        return 0;
}

/* The end of the line that starts at text, as systemd splits a datagram
 * (notify_parse()): at an unescaped \n or \r; a backslash takes the
 * character after it into the line. */
static const char *line_end(const char *text) {
        const char *p = text;
        for (; *p && *p != '\n' && *p != '\r'; p++)
                if (*p == '\\' && p[1])
                        p++;
        return p;
}

static Kind kind_of(const char *text) {
        Kind kind = KIND_LATEST;
        for (const char *p = text; *p;) {
                const char *e = line_end(p);
                size_t len = (size_t) (e - p);
                if (len == 0)
                        ;
                else if (is_field(p, "READY=") || is_field(p, "RELOADING=") || is_field(p, "STOPPING=") ||
                         is_field(p, "MAINPID=") || is_field(p, "BARRIER="))
                        return KIND_CONTROL;
                else if (is_field(p, "FDSTORE"))
                        kind = KIND_STORE;
                else if (kind == KIND_LATEST && key_of_line(p, len) == 0)
                        kind = KIND_OTHER;
                p = *e ? e + 1 : e;
        }
        return kind;
}

/* A send now, never queued. */
static int send_direct(const char *text, const int *fds, size_t n_fds) {
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int) * OUTBOX_MAX_FDS)];
        } control = {};
        struct iovec iov = { .iov_base = (char *) text, .iov_len = strlen(text) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (n_fds > 0)
                msghdr_put_fds(&mh, &control, fds, n_fds);
        /* The kernel attaches our credentials: systemd sets SO_PASSCRED. */
        return sendmsg(m.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0 ? 0 : -errno;
}

static bool peer_gone(int r) {
        return r == -EPIPE || r == -ECONNRESET || r == -ECONNREFUSED || r == -ENOTCONN;
}

/* Queues one message behind what waits, unless fewer than reserved
 * places are left (a message of key that would replace a queued one takes
 * none). */
static int put_within(unsigned key, size_t reserved, const char *text, const int *fds, size_t n_fds) {
        if ((key == OUTBOX_EVERY || n_fds > 0 || !outbox_queued(m.outbox, key)) &&
            outbox_pending(m.outbox) + reserved >= m.max_queued)
                return -ENOBUFS;
        return outbox_put_fds(m.outbox, key, text, fds, n_fds);
}

/* Whether line, an EXTEND_TIMEOUT_USEC=, asks for less than the one that
 * waits. systemd never moves a deadline sooner at an extension: each moves
 * it to at least its reading + usec. All that wait are read at about the
 * same time, so the largest usec is what they would have added up to; a
 * smaller one waiting in its place would shorten the deadline asked for. */
static bool extends_less(const char *line) {
        const char *q = outbox_queued(m.outbox, KEY_EXTEND);
        const char *prefix = "EXTEND_TIMEOUT_USEC=";
        if (!q || !is_field(q, prefix))
                return false;
        char *end;
        errno = 0;
        unsigned long long queued = strtoull(q + strlen(prefix), &end, 10);
        if (errno != 0 || *end != '\0')
                return false;
        unsigned long long asked = strtoull(line + strlen(prefix), &end, 10);
        return errno == 0 && *end == '\0' && asked < queued;
}

/* Latest-only fields (KIND_LATEST): the datagram goes whole when nothing
 * waits and the socket takes it; else each field waits in a message of its
 * own, in place of the one of its kind still waiting. As systemd, the first
 * line of a field counts (the first WATCHDOG= line, be it 1 or trigger). */
static int put_latest(const char *text) {
        int r = outbox_flush(m.outbox);
        if (r < 0)
                return r;
        if (r == 0 && (r = send_direct(text, NULL, 0)) != -EAGAIN)
                return r;
        r = 0;
        unsigned seen = 0;
        for (const char *p = text; *p;) {
                const char *e = line_end(p);
                size_t len = (size_t) (e - p);
                unsigned key = len > 0 ? key_of_line(p, len) : 0;
                unsigned field = key == KEY_WATCHDOG_TRIGGER ? KEY_WATCHDOG : key;
                if (key != 0 && !(seen & (1U << field))) {
                        seen |= 1U << field;
                        char line[NOTIFY_MAX_LEN + 1];
                        snprintf(line, sizeof line, "%.*s", (int) len, p);
                        if (key == KEY_EXTEND && extends_less(line)) {
                                p = *e ? e + 1 : e;
                                continue;
                        }
                        int k = put_within(key, RESERVED_FOR_CONTROL, line, NULL, 0);
                        if (peer_gone(k))
                                return k;
                        if (k < 0)
                                r = k; /* the others may still wait */
                }
                p = *e ? e + 1 : e;
        }
        return r;
}

/* One try on the socket connected now: queued behind what waits, when
 * queueing is allowed (before the loop is attached, to be sent from it). */
static int send_once(const char *text, const int *fds, size_t n_fds, bool may_wait) {
        if (!m.outbox) {
                int r = outbox_new(m.event, m.fd, false, m.max_queued, NOTIFY_MAX_LEN + 1, &m.outbox);
                if (r < 0)
                        log_debug_errno(r, "Failed to set up a queue for the service manager: %m");
        }
        if (m.outbox && may_wait) {
                Kind kind = kind_of(text);
                if (kind == KIND_CONTROL)
                        return outbox_put_fds(m.outbox, OUTBOX_EVERY, text, fds, n_fds);
                if (kind == KIND_LATEST && n_fds == 0)
                        return put_latest(text);
                /* A server that replaces its fd-store entries while the
                 * manager does not read would fill the queue with them: they
                 * may not take the last places, which READY=1 needs, nor
                 * those of the latest STATUS= after them. */
                return put_within(OUTBOX_EVERY, RESERVED_FOR_CONTROL + RESERVED_FOR_LATEST, text, fds, n_fds);
        }
        if (m.outbox) {
                int r = outbox_flush(m.outbox);
                if (r != 0)
                        return r < 0 ? r : -EAGAIN; /* it would overtake what waits */
        }
        return send_direct(text, fds, n_fds);
}

static int send_message(const char *text, const int *fds, size_t n_fds, bool may_wait) {
        if (!m.enabled)
                return 0;
        if (n_fds > OUTBOX_MAX_FDS)
                return -E2BIG;
        for (bool again = false;; again = true) {
                int r = m.fd < 0 ? manager_connect() : 0;
                if (r < 0)
                        return r;
                r = send_once(text, fds, n_fds, may_wait);
                if (r >= 0)
                        return 1;
                /* The socket we connected to is closed (another may be bound
                 * at the address by now, as a manager restarted would):
                 * connected anew, once, as an unconnected send would find it.
                 * What waited for the closed one is dropped with it. */
                if (again || (r != -ECONNREFUSED && r != -ENOTCONN && r != -ECONNRESET))
                        return r;
                m.outbox = outbox_free(m.outbox);
                m.fd = safe_close(m.fd);
        }
}

int sdnotify_send(const char *text, const int *fds, size_t n_fds) {
        return send_message(text, fds, n_fds, true);
}

int sdnotify_fd(void) {
        return m.fd;
}

int sdnotify_send_now(const char *text, const int *fds, size_t n_fds) {
        return send_message(text, fds, n_fds, false);
}
