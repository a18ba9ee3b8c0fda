/* SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "sdnotify.h"
#include "util.h"

static struct {
        struct sockaddr_un sa;
        socklen_t len;   /* 0: no manager */
        bool enabled;
        int fd;
        char text[sizeof(((struct sockaddr_un *) 0)->sun_path) + 1];
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

int sdnotify_send(const char *text, const int *fds, size_t n_fds) {
        if (!m.enabled)
                return 0;
        struct iovec iov = { .iov_base = (char *) text, .iov_len = strlen(text) };
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int) * 8)];
        } control = {};
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (n_fds > 0) {
                if (n_fds > 8)
                        return -E2BIG;
                msghdr_put_fds(&mh, &control, fds, n_fds);
        }
        for (bool again = false;; again = true) {
                int r = m.fd < 0 ? manager_connect() : 0;
                if (r < 0)
                        return r;
                /* The kernel attaches our credentials: systemd sets SO_PASSCRED. */
                if (sendmsg(m.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
                        return 1;
                r = -errno;
                /* The socket we connected to is closed (another may be bound
                 * at the address by now, as a manager restarted would):
                 * connected anew, once, as an unconnected send would find it. */
                if (again || (r != -ECONNREFUSED && r != -ENOTCONN && r != -ECONNRESET))
                        return r;
                m.fd = safe_close(m.fd);
        }
}
