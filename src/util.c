/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "util.h"

void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}

size_t strv_length(char *const *l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

/* Appends s (taking ownership) to the strv *l holding *n entries. On failure s
 * is freed, so callers can pass a freshly allocated string without a leak. */
int strv_push(char ***l, size_t *n, char *s) {
        if (!s)
                return -ENOMEM;
        char **m = realloc(*l, sizeof(char *) * (*n + 2));
        if (!m) {
                free(s);
                return -ENOMEM;
        }
        m[(*n)++] = s;
        m[*n] = NULL;
        *l = m;
        return 0;
}

char *strjoin2(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        char *s = malloc(la + lb + 1);
        if (s) {
                memcpy(s, a, la);
                memcpy(s + la, b, lb + 1);
        }
        return s;
}

int pidfd_signal(int pidfd, int sig) {
        if (pidfd < 0)
                return -ESRCH;
        return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

int pidfd_open_pid(pid_t pid) {
        int fd = (int) syscall(SYS_pidfd_open, pid, 0);
        return fd < 0 ? -errno : fd;
}

/* struct pidfd_info as first published (<linux/pidfd.h> of older headers
 * lacks it; its size is part of the ioctl's number). */
struct pidfd_info_v0 {
        uint64_t mask;
        uint64_t cgroupid;
        uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
        int32_t exit_code;
};
#define PIDFD_GET_INFO_V0 _IOWR(0xFF, 11, struct pidfd_info_v0)
#define PIDFD_INFO_EXIT_V0 (UINT64_C(1) << 3)

int pidfd_exit_status(int pidfd, int *ret_status) {
        struct pidfd_info_v0 info = { .mask = PIDFD_INFO_EXIT_V0 };
        if (ioctl(pidfd, PIDFD_GET_INFO_V0, &info) < 0)
                return -errno;
        if (!(info.mask & PIDFD_INFO_EXIT_V0))
                return -ENODATA;
        *ret_status = info.exit_code;
        return 0;
}

void msghdr_put_fds(struct msghdr *mh, void *control, const int *fds, size_t n) {
        mh->msg_control = control;
        mh->msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
}

int fd_cloexec(int fd, int cloexec) {
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0)
                return -errno;
        int nflags = cloexec ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
        if (nflags != flags && fcntl(fd, F_SETFD, nflags) < 0)
                return -errno;
        return 0;
}

/* Moves fd to a number >= min (CLOEXEC), closing the original. Used so that
 * handoff's own fds never sit in the 3..3+N-1 range the listeners take. */
int fd_move_above(int fd, int min) {
        if (fd >= min)
                return fd;
        int nfd = fcntl(fd, F_DUPFD_CLOEXEC, min);
        if (nfd < 0)
                return -errno;
        safe_close(fd);
        return nfd;
}

int close_listed(const char *dir, int from, int keep) {
        DIR *d = opendir(dir);
        if (!d)
                return -errno;
        /* Each entry read is past the directory's position: closing it does
         * not disturb the listing. */
        for (struct dirent *de; (de = readdir(d));) {
                uint64_t fd;
                if (safe_atou64(de->d_name, &fd) >= 0 && fd >= (uint64_t) from && fd <= INT_MAX &&
                    (int) fd != keep && (int) fd != dirfd(d))
                        (void) close((int) fd);
        }
        closedir(d);
        return 0;
}

int close_from(int from) {
        if (close_range((unsigned) from, ~0U, 0) >= 0)
                return 0;
        return close_listed("/proc/self/fd", from, -1);
}

pid_t handoff_pid(void) {
        static pid_t pid;
        return pid ? pid : (pid = getpid());
}

int write_pid_file(const char *path, pid_t pid) {
        char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0)
                return -ENOMEM;
        int r = 0, fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                free(tmp);
                return r;
        }
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%d\n", (int) pid);
        if (write(fd, buf, (size_t) n) != n || fchmod(fd, 0644) < 0 || rename(tmp, path) < 0) {
                r = -errno;
                (void) unlink(tmp);
        }
        safe_close(fd);
        free(tmp);
        return r;
}

int safe_atou64(const char *s, uint64_t *ret) {
        if (!s || !*s || strspn(s, "0123456789") != strlen(s))
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(s, NULL, 10);
        if (errno)
                return -EINVAL;
        *ret = v;
        return 0;
}

size_t utf8_trim_partial(const char *s, size_t n) {
        /* Back over the continuation bytes (at most 3) to the first byte of
         * the last sequence, which says how long the sequence is. */
        size_t i = n;
        while (i > 0 && n - i < 3 && ((unsigned char) s[i - 1] & 0xc0) == 0x80)
                i--;
        if (i == 0)
                return n;
        unsigned char c = (unsigned char) s[i - 1];
        size_t want = c >= 0xc0 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf7 ? 4 : 0;
        return want > n - i + 1 ? i - 1 : n;
}

bool utf8_is_valid(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p;) {
                if (*p < 0x80) {
                        p++;
                        continue;
                }
                /* The lead byte says the length (up to 6, as systemd reads
                 * it) and gives the top bits of the character. */
                size_t len = (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 :
                             (*p & 0xfc) == 0xf8 ? 5 : (*p & 0xfe) == 0xfc ? 6 : 0;
                if (len == 0)
                        return false;
                uint32_t c = *p & (0x7fu >> len);
                for (size_t i = 1; i < len; i++) {
                        if ((p[i] & 0xc0) != 0x80) /* the NUL too */
                                return false;
                        c = c << 6 | (p[i] & 0x3f);
                }
                size_t shortest = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : c < 0x200000 ? 4 : c < 0x4000000 ? 5 : 6;
                if (len != shortest || c >= 0x110000 || (c & 0xfffff800) == 0xd800 || (c >= 0xfdd0 && c <= 0xfdef) ||
                    (c & 0xfffe) == 0xfffe)
                        return false;
                p += len;
        }
        return true;
}

size_t printable_prefix(const char *s, size_t max) {
        size_t n = 0;
        while (n < max && s[n] && (unsigned char) s[n] >= 0x20 && s[n] != 0x7f)
                n++;
        return n;
}

size_t utf8_prefix(const char *s, size_t max) {
        size_t n = strnlen(s, max);
        return s[n] == '\0' ? n : utf8_trim_partial(s, n);
}

int std_fds_ensure_open(void) {
        for (int fd = 0; fd <= 2; fd++) {
                if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
                        continue;
                /* open() returns the lowest free number: this very fd. No
                 * CLOEXEC: 0-2 are what every child is meant to inherit. */
                int k = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
                if (k < 0)
                        return -errno;
                if (k != fd) {
                        /* Cannot happen while fd is the lowest free one. */
                        safe_close(k);
                        return -EBADF;
                }
        }
        return 0;
}

static struct rlimit original_nofile;
static bool have_original_nofile;

int rlimit_nofile_raise(void) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -errno;
        original_nofile = rl;
        have_original_nofile = true;
        if (rl.rlim_cur == rl.rlim_max)
                return 0;
        struct rlimit raised = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };
        if (setrlimit(RLIMIT_NOFILE, &raised) < 0)
                return -errno;
        return 0;
}

int rlimit_nofile_original(struct rlimit *ret) {
        if (!have_original_nofile)
                return -ENODATA;
        *ret = original_nofile;
        return 0;
}
