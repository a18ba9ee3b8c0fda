/* SPDX-License-Identifier: MIT */
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

/* Room kept for what is not the fd store: RELOADING=1, READY=1, STOPPING=1
 * and the latest of each kind below, for as many reloads as a manager that
 * does not read sees anyway. */
#define RESERVED_FOR_CONTROL 64

/* Only the latest of these matters, each alone in its message. */
enum {
        KEY_STATUS = 1,  /* a STATUS= text */
        KEY_WATCHDOG,    /* WATCHDOG=1, a ping */
        KEY_EXTEND,      /* EXTEND_TIMEOUT_USEC=: systemd keeps the last one anyway */
};

static struct {
        struct sockaddr_un sa;
        socklen_t len;   /* 0: no manager */
        bool enabled;
        int fd;
        char text[sizeof(((struct sockaddr_un *) 0)->sun_path) + 1];
        sd_event *event; /* with it, what does not fit waits in outbox */
        size_t max_queued;
        Outbox *outbox;
} m = { .fd = -EBADF };

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

static unsigned key_of(const char *text) {
        /* A relayed message ends each of its lines with a newline. */
        const char *nl = strchr(text, '\n');
        if (nl && nl[1] != '\0')
                return OUTBOX_EVERY; /* several fields: all of them must arrive */
        if (is_field(text, "STATUS="))
                return KEY_STATUS;
        if (is_field(text, "WATCHDOG=1") && (text[10] == '\0' || text[10] == '\n'))
                return KEY_WATCHDOG;
        if (is_field(text, "EXTEND_TIMEOUT_USEC="))
                return KEY_EXTEND;
        return OUTBOX_EVERY;
}

/* One try on the socket connected now: queued behind what waits, when
 * queueing is allowed and there is a loop to send it from. */
static int send_once(const char *text, const int *fds, size_t n_fds, bool may_wait) {
        if (m.event && !m.outbox) {
                int r = outbox_new(m.event, m.fd, false, m.max_queued, NOTIFY_MAX_LEN + 1, &m.outbox);
                if (r < 0)
                        log_debug_errno(r, "Failed to set up a queue for the service manager: %m");
        }
        if (m.outbox && may_wait) {
                /* A server that replaces its fd-store entries while the
                 * manager does not read would fill the queue with them: they
                 * may not take the last places, which READY=1 needs. */
                if (is_field(text, "FDSTORE") && outbox_pending(m.outbox) + RESERVED_FOR_CONTROL >= m.max_queued)
                        return -ENOBUFS;
                return outbox_put_fds(m.outbox, key_of(text), text, fds, n_fds);
        }
        if (m.outbox) {
                int r = outbox_flush(m.outbox);
                if (r != 0)
                        return r < 0 ? r : -EAGAIN; /* it would overtake what waits */
        }
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
