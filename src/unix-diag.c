/* SPDX-License-Identifier: MIT */
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <string.h>
#include <sys/socket.h>

#include "unix-diag.h"
#include "util.h"

int unix_diag_attr(uint32_t ino, uint32_t show, uint16_t type, void *ret, size_t size) {
        _cleanup_close_ int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (nl < 0)
                return -errno;
        /* Any state; a cookie of all ones (INET_DIAG_NOCOOKIE) is none to
         * check: whichever socket has that inode. */
        struct {
                struct nlmsghdr h;
                struct unix_diag_req r;
        } req = {
                .h = { .nlmsg_len = sizeof req, .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_flags = NLM_F_REQUEST },
                .r = { .sdiag_family = AF_UNIX, .udiag_states = UINT32_MAX, .udiag_ino = ino, .udiag_show = show,
                       .udiag_cookie = { UINT32_MAX, UINT32_MAX } },
        };
        if (send(nl, &req, sizeof req, 0) < 0)
                return -errno;
        /* Answered within send(): the kernel handles sock_diag requests
         * in the sender's context. */
        union {
                struct nlmsghdr h;
                char raw[4096];
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
        if (ans.h.nlmsg_type != SOCK_DIAG_BY_FAMILY || ans.h.nlmsg_len < NLMSG_LENGTH(sizeof *m) || m->udiag_ino != ino)
                return -EBADMSG;
        size_t off = NLMSG_LENGTH(NLMSG_ALIGN(sizeof *m));
        while (off + NLA_HDRLEN <= ans.h.nlmsg_len) {
                const struct nlattr *a = (const struct nlattr *) (ans.raw + off);
                if (a->nla_len < NLA_HDRLEN || off + a->nla_len > ans.h.nlmsg_len)
                        return -EBADMSG;
                if (a->nla_type == type) {
                        size_t len = a->nla_len - NLA_HDRLEN;
                        if (len > size)
                                len = size;
                        memcpy(ret, (const char *) a + NLA_HDRLEN, len);
                        return (int) len;
                }
                off += NLA_ALIGN(a->nla_len);
        }
        return 0;
}
