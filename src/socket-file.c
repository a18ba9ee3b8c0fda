/* SPDX-License-Identifier: MIT */
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/unix_diag.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>

#include "socket-file.h"
#include "util.h"

/* From <linux/un.h>, which clashes with glibc's <sys/un.h>. */
#ifndef SIOCUNIXFILE
#define SIOCUNIXFILE (SIOCPROTOPRIVATE + 0)
#endif

/* The socket's file as sock_diag(7) names it: the low 32 bits of its inode
 * number and the kernel's own encoding of its device (major << 20 | minor).
 * Unprivileged, unlike SIOCUNIXFILE; 32 bits are enough while the socket,
 * bound to its inode, keeps that number from being reused. */
static int diag_file_is(int fd, const struct stat *st) {
        struct stat sock;
        if (fstat(fd, &sock) < 0)
                return -errno;
        _cleanup_close_ int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (nl < 0)
                return -errno;
        struct {
                struct nlmsghdr h;
                struct unix_diag_req r;
        } req = {
                .h = { .nlmsg_len = sizeof req, .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST },
                .r = { .sdiag_family = AF_UNIX, .udiag_ino = (uint32_t) sock.st_ino, .udiag_show = UDIAG_SHOW_VFS,
                       .udiag_cookie = { UINT32_MAX, UINT32_MAX } },
        };
        if (send(nl, &req, sizeof req, 0) < 0)
                return -errno;
        /* Answered within send(): the kernel handles sock_diag requests
         * in the sender's context. */
        union {
                struct nlmsghdr h;
                char raw[1024];
        } ans;
        ssize_t n = recv(nl, &ans, sizeof ans, MSG_DONTWAIT);
        if (n < 0)
                return -errno;
        if (!NLMSG_OK(&ans.h, (size_t) n))
                return -EBADMSG;
        if (ans.h.nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(&ans.h);
                return ans.h.nlmsg_len >= NLMSG_LENGTH(sizeof *e) && e->error < 0 ? e->error : -EBADMSG;
        }
        const struct unix_diag_msg *m = NLMSG_DATA(&ans.h);
        if (ans.h.nlmsg_type != SOCK_DIAG_BY_FAMILY || ans.h.nlmsg_len < NLMSG_LENGTH(sizeof *m) ||
            m->udiag_ino != (uint32_t) sock.st_ino)
                return -EBADMSG;
        size_t off = NLMSG_LENGTH(NLMSG_ALIGN(sizeof *m));
        while (off + NLA_HDRLEN <= ans.h.nlmsg_len) {
                const struct nlattr *a = (const struct nlattr *) (ans.raw + off);
                if (a->nla_len < NLA_HDRLEN || off + a->nla_len > ans.h.nlmsg_len)
                        return -EBADMSG;
                if (a->nla_type == UNIX_DIAG_VFS && a->nla_len >= NLA_HDRLEN + sizeof(struct unix_diag_vfs)) {
                        const struct unix_diag_vfs *v = (const void *) ((const char *) a + NLA_HDRLEN);
                        return v->udiag_vfs_ino == (uint32_t) st->st_ino && v->udiag_vfs_dev >> 20 == major(st->st_dev) &&
                               (v->udiag_vfs_dev & 0xfffff) == minor(st->st_dev);
                }
                off += NLA_ALIGN(a->nla_len);
        }
        return 0; /* bound to no file */
}

int socket_file_is(int fd, const struct stat *st) {
        /* Exact, and no more than an ioctl, but it asks for CAP_NET_ADMIN. */
        _cleanup_close_ int file = ioctl(fd, SIOCUNIXFILE);
        if (file >= 0) {
                struct stat f;
                if (fstat(file, &f) < 0)
                        return -errno;
                return f.st_dev == st->st_dev && f.st_ino == st->st_ino;
        }
        if (errno == ENOENT)
                return 0; /* bound to no file */
        return diag_file_is(fd, st);
}
