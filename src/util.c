/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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
