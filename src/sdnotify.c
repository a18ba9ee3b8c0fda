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

int sdnotify_send(const char *text, const int *fds, size_t n_fds) {
        if (!m.enabled)
                return 0;
        if (m.fd < 0) {
                m.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (m.fd < 0)
                        return -errno;
        }
        struct iovec iov = { .iov_base = (char *) text, .iov_len = strlen(text) };
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int) * 8)];
        } control = {};
        struct msghdr mh = { .msg_name = &m.sa, .msg_namelen = m.len, .msg_iov = &iov, .msg_iovlen = 1 };
        if (n_fds > 0) {
                if (n_fds > 8)
                        return -E2BIG;
                msghdr_put_fds(&mh, &control, fds, n_fds);
        }
        /* The kernel attaches our credentials: systemd sets SO_PASSCRED. */
        return sendmsg(m.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? -errno : 1;
}
