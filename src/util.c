/* SPDX-License-Identifier: MIT */
#include <fcntl.h>

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
