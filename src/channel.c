/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel.h"
#include "close-async.h"
#include "util.h"

int parse_pid(const char *s, pid_t *ret) {
        /* Strictly decimal: no sign, no space, no leading zero (strtol
         * alone would take " 5", "+5" and "05"). */
        if (!s || s[0] < '1' || s[0] > '9' || strspn(s, "0123456789") != strlen(s) || strlen(s) > 7)
                return -EINVAL;
        long v = strtol(s, NULL, 10);
        if (v > 4194304)
                return -EINVAL;
        *ret = (pid_t) v;
        return 0;
}

/* Its six fields: decimal, no sign, no leading zero, one space apart.
 * More may follow, after a space: a cgroup leaf ("gen-N" or "gen-N.K"),
 * and a later version's, ignored. */
static int parse_named(const char *s, ChannelNamed *ret) {
        uint64_t v[6];
        for (size_t i = 0; i < ELEMENTSOF(v); i++) {
                char digits[21];
                size_t n = strspn(s, "0123456789");
                if (n == 0 || n >= sizeof digits || (n > 1 && s[0] == '0'))
                        return -EINVAL;
                memcpy(digits, s, n);
                digits[n] = '\0';
                if (safe_atou64(digits, &v[i]) < 0)
                        return -EINVAL;
                s += n;
                if (i + 1 < ELEMENTSOF(v) && *s++ != ' ')
                        return -EINVAL;
        }
        if ((*s && (*s != ' ' || !s[1])) || v[0] < 1 || v[0] > 64 || v[2] > UINT_MAX || v[5] > 4194304)
                return -EINVAL;
        *ret = (ChannelNamed) {
                .stop_signal = (int) v[0],
                .drain_timeout = v[1],
                .number = (unsigned) v[2],
                .started = v[3],
                .ready = v[4],
                .group = (pid_t) v[5],
        };
        /* A leaf's name, or none: never a path. */
        if (*s == ' ' && strncmp(++s, "gen-", 4) == 0) {
                size_t n = strcspn(s, " ");
                const char *d = s + 4 + strspn(s + 4, "0123456789");
                if (d > s + 4 && *d == '.' && d[1] >= '0' && d[1] <= '9')
                        d += 1 + strspn(d + 1, "0123456789");
                if (d > s + 4 && d == s + n && n < sizeof ret->cgroup)
                        memcpy(ret->cgroup, s, n);
        }
        return 0;
}

/* A decimal field (no sign, no leading zero) and the space after it. */
static int parse_field(const char **s, uint64_t *ret) {
        char digits[21];
        size_t n = strspn(*s, "0123456789");
        if (n == 0 || n >= sizeof digits || (n > 1 && (*s)[0] == '0') || (*s)[n] != ' ')
                return -EINVAL;
        memcpy(digits, *s, n);
        digits[n] = '\0';
        if (safe_atou64(digits, ret) < 0)
                return -EINVAL;
        *s += n + 1;
        return 0;
}

int channel_parse_unlink(const char *entry, ChannelUnlink *ret) {
        ChannelUnlink u = {};
        if (parse_field(&entry, &u.dev) < 0 || parse_field(&entry, &u.ino) < 0 || *entry != '/')
                return -EINVAL;
        u.path = entry;
        *ret = u;
        return 0;
}

int channel_parse(const char *buf, ChannelMessage *ret) {
        ChannelMessage m = {};
        if (strncmp(buf, "PID ", 4) == 0 && parse_pid(buf + 4, &m.pid) == 0)
                m.kind = CHANNEL_PID;
        else if (strncmp(buf, "APP ", 4) == 0 && parse_pid(buf + 4, &m.pid) == 0)
                m.kind = CHANNEL_APP;
        else if (strcmp(buf, "READY") == 0)
                m.kind = CHANNEL_READY;
        else if (strncmp(buf, "FAILED ", 7) == 0)
                m.kind = CHANNEL_FAILED, m.text = buf + 7;
        else if (strncmp(buf, "STATUS ", 7) == 0)
                m.kind = CHANNEL_STATUS, m.text = buf + 7;
        else if (strncmp(buf, "EXTEND ", 7) == 0 && safe_atou64(buf + 7, &m.usec) == 0)
                m.kind = CHANNEL_EXTEND;
        else if (strncmp(buf, "UNLINK /", 8) == 0)
                m.kind = CHANNEL_UNLINK, m.text = buf + 7;
        else if (strcmp(buf, "TAKEOVER 0") == 0 || strcmp(buf, "TAKEOVER 1") == 0)
                m.kind = CHANNEL_TAKEOVER, m.reload_pending = buf[9] == '1';
        else if (strncmp(buf, "FEATURES ", 9) == 0)
                m.kind = CHANNEL_FEATURES, m.text = buf + 9;
        else if (strcmp(buf, "STOP") == 0)
                m.kind = CHANNEL_STOP;
        else if (strcmp(buf, "DRAINED") == 0)
                m.kind = CHANNEL_DRAINED;
        else if (strncmp(buf, "NAMED ", 6) == 0 && parse_named(buf + 6, &m.named) == 0)
                m.kind = CHANNEL_NAMED;
        else if (strcmp(buf, "UNNAMED") == 0)
                m.kind = CHANNEL_UNNAMED;
        else if (strcmp(buf, "UNLINKS") == 0)
                m.kind = CHANNEL_UNLINKS;
        else
                return -EBADMSG;
        *ret = m;
        return 0;
}

static int channel_vsend(int fd, int passed, const char *fmt, va_list ap) _printf_(3, 0);
static int channel_vsend(int fd, int passed, const char *fmt, va_list ap) {
        char buf[CHANNEL_MAX_MESSAGE];
        int n = vsnprintf(buf, sizeof buf, fmt, ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t) n >= sizeof buf)
                return -ENAMETOOLONG;
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = buf, .iov_len = (size_t) n };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (passed >= 0)
                msghdr_put_fds(&mh, &control, &passed, 1);
        return sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -errno : 0;
}

int channel_send(int fd, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = channel_vsend(fd, -EBADF, fmt, ap);
        va_end(ap);
        return r;
}

int channel_send_fd(int fd, int passed, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = channel_vsend(fd, passed, fmt, ap);
        va_end(ap);
        return r;
}

int channel_send_unlinks(int fd, char *const *paths, const dev_t *devs, const ino_t *inos, size_t n) {
        _cleanup_close_ int m = memfd_create("handoff-unlinks", MFD_CLOEXEC);
        if (m < 0)
                return -errno;
        int copy = fcntl(m, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return -errno;
        FILE *f = fdopen(copy, "w");
        if (!f) {
                int r = -errno;
                safe_close(copy);
                return r;
        }
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%" PRIu64 " %" PRIu64 " %s%c", (uint64_t) devs[i], (uint64_t) inos[i], paths[i], '\0');
        int r = ferror(f) ? -EIO : 0;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        return r < 0 ? r : channel_send_fd(fd, m, "UNLINKS");
}

int channel_read_unlinks(int fd, void (*cb)(const ChannelUnlink *u, void *userdata), void *userdata) {
        /* A regular file only: anything else may block a read. Read from
         * its start on a copy: the sender's writes left the offset, which
         * we share, at its end. */
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return -errno;
        FILE *f = lseek(copy, 0, SEEK_SET) == 0 ? fdopen(copy, "r") : NULL;
        if (!f) {
                int r = -errno;
                safe_close(copy);
                return r;
        }
        char *entry = NULL;
        size_t size = 0;
        ssize_t k;
        ChannelUnlink u;
        while ((k = getdelim(&entry, &size, '\0', f)) > 0)
                /* The last one, if it lacks its NUL, is cut short. */
                if (entry[k - 1] == '\0' && channel_parse_unlink(entry, &u) == 0)
                        cb(&u, userdata);
        int r = ferror(f) ? -EIO : 0;
        free(entry);
        fclose(f);
        return r;
}

int channel_send_named(int fd, int pidfd, const ChannelNamed *n) {
        return channel_send_fd(fd, pidfd, "NAMED %d %" PRIu64 " %u %" PRIu64 " %" PRIu64 " %d%s%s", n->stop_signal,
                               n->drain_timeout, n->number, n->started, n->ready, (int) n->group,
                               n->cgroup[0] ? " " : "", n->cgroup);
}

/* A read of nothing: the peer's end of file, or a message of no bytes,
 * which only a buggy peer sends. msg_flags and MSG_PEEK say the same of
 * both; the peer has shut down (POLLRDHUP; poll() reports no POLLIN,
 * not asked for) with no message of some bytes queued (SIOCINQ: the bytes
 * of all messages queued) in the first case only. Empty
 * messages with nothing else after them before the peer's end of file
 * read as that, a moment early. */
static bool end_of_file(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLRDHUP };
        int queued = 0;
        return poll(&p, 1, 0) != 0 && (ioctl(fd, SIOCINQ, &queued) < 0 || queued == 0);
}

ssize_t channel_receive(int fd, char *buf, size_t size, int *ret_fd) {
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int) * 4)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control };
        *ret_fd = -EBADF;
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0)
                return errno == EAGAIN ? -EAGAIN : -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                int k;
                                memcpy(&k, CMSG_DATA(c) + i * sizeof(int), sizeof k);
                                if (*ret_fd < 0)
                                        *ret_fd = k;
                                else
                                        close_nonblocking(k);
                        }
        buf[n] = '\0';
        if (n == 0 && !CMSG_FIRSTHDR(&mh) && end_of_file(fd))
                return 0;
        /* A message with a NUL inside, or none at all, is not one of ours. */
        if (n == 0 || strlen(buf) != (size_t) n) {
                *ret_fd = close_nonblocking(*ret_fd);
                buf[0] = '\0';
                return -EBADMSG;
        }
        return n;
}

int channel_receive_pid(int fd, pid_t *ret_pid, int *ret_pidfd) {
        char buf[64];
        int pidfd = -EBADF;
        ChannelMessage m;
        ssize_t k = channel_receive(fd, buf, sizeof buf, &pidfd);
        if (k <= 0 || channel_parse(buf, &m) < 0 || m.kind != CHANNEL_PID || pidfd < 0) {
                safe_close(pidfd);
                return -EPROTO;
        }
        *ret_pid = m.pid;
        *ret_pidfd = pidfd;
        return 0;
}

int channel_read_fd(int fd, char *buf, size_t size, ChannelMessage *ret, int *ret_fd) {
        int extra = -EBADF;
        ssize_t n = channel_receive(fd, buf, size, &extra);
        int r = n == -EAGAIN || n == -EBADMSG ? (int) n : n <= 0 ? 0 : channel_parse(buf, ret) < 0 ? -EBADMSG : 1;
        if (r == 1)
                *ret_fd = extra;
        else
                close_nonblocking(extra);
        return r;
}

int channel_read(int fd, char *buf, size_t size, ChannelMessage *ret) {
        int extra = -EBADF;
        int r = channel_read_fd(fd, buf, size, ret, &extra);
        if (r == 1)
                close_nonblocking(extra);
        return r;
}
