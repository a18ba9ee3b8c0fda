/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#if __has_include(<linux/kcmp.h>)
#include <linux/kcmp.h>
#endif

#include "address.h"
#include "fdstore.h"
#include "util.h"

#ifndef KCMP_FILE
#define KCMP_FILE 0
#endif

bool fd_same_file_by_stat(int a, int b) {
        struct stat sa, sb;
        if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
                return false;
        if (sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino)
                return false;
        /* Two opens of one device node may be different contexts (two
         * terminals' sessions, two DRM clients): never the same. */
        if (S_ISCHR(sa.st_mode) || S_ISBLK(sa.st_mode))
                return false;
        /* The two ends of a pipe share an inode, not their access mode. */
        int fa = fcntl(a, F_GETFL), fb = fcntl(b, F_GETFL);
        return fa >= 0 && fa == fb;
}

/* kcmp(KCMP_FILE) says exactly whether two fds share one open file
 * description, which is what a dup() or a second SCM_RIGHTS copy of a stored
 * fd is, and all that makes it a duplicate: two separate opens of one file
 * have offsets and flags of their own and are both kept. systemd asks the
 * same first. Without it (a kernel without CONFIG_KCMP, a seccomp filter:
 * ENOSYS, EPERM, EACCES) the inode has to do, as in systemd's fallback, which
 * also takes two opens of one file with the same flags for one. */
bool fd_same_file(int a, int b) {
        if (a == b)
                return true;
#ifdef SYS_kcmp
        pid_t self = getpid();
        long r = syscall(SYS_kcmp, self, self, KCMP_FILE, a, b);
        if (r >= 0)
                return r == 0;
#endif
        return fd_same_file_by_stat(a, b);
}

int fdstore_add(FdStore *s, const char *name, int fd) {
        if (!fdname_is_valid(name)) {
                close_nonblocking(fd);
                return -EINVAL;
        }
        if (s->n >= s->max) {
                close_nonblocking(fd);
                return -ENOSPC;
        }
        for (size_t i = 0; i < s->n; i++)
                if (fd_same_file(s->fds[i], fd)) {
                        close_nonblocking(fd);
                        return 0;
                }
        int *fds = realloc(s->fds, sizeof(int) * (s->n + 1));
        if (fds)
                s->fds = fds;
        char **names = realloc(s->names, sizeof(char *) * (s->n + 1));
        if (names)
                s->names = names;
        char *copy = strdup(name);
        if (!fds || !names || !copy) {
                free(copy);
                close_nonblocking(fd);
                return -ENOMEM;
        }
        s->fds[s->n] = fd;
        s->names[s->n++] = copy;
        return 1;
}
size_t fdstore_remove(FdStore *s, const char *name) {
        size_t removed = 0, k = 0;
        for (size_t i = 0; i < s->n; i++) {
                if (strcmp(s->names[i], name) == 0) {
                        close_nonblocking(s->fds[i]);
                        free(s->names[i]);
                        removed++;
                        continue;
                }
                s->fds[k] = s->fds[i];
                s->names[k++] = s->names[i];
        }
        s->n = k;
        return removed;
}

void fdstore_done(FdStore *s) {
        for (size_t i = 0; i < s->n; i++) {
                close_nonblocking(s->fds[i]);
                free(s->names[i]);
        }
        free(s->fds);
        free(s->names);
        s->fds = NULL;
        s->names = NULL;
        s->n = 0;
}
