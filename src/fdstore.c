/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#if __has_include(<linux/kcmp.h>)
#include <linux/kcmp.h>
#endif

#include "address.h"
#include "fdstore.h"
#include "log.h"
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

static void entry_free(FdStore *s, size_t i) {
        /* The watch first: epoll forgets an fd only when every copy of its
         * open file is closed, and the generations hold copies. */
        s->watches[i] = sd_event_source_disable_unref(s->watches[i]);
        close_nonblocking(s->fds[i]);
        free(s->names[i]);
}

static void remove_at(FdStore *s, size_t i) {
        entry_free(s, i);
        s->n--;
        memmove(s->fds + i, s->fds + i + 1, sizeof(int) * (s->n - i));
        memmove(s->names + i, s->names + i + 1, sizeof(char *) * (s->n - i));
        memmove(s->poll + i, s->poll + i + 1, sizeof(bool) * (s->n - i));
        memmove(s->watches + i, s->watches + i + 1, sizeof(sd_event_source *) * (s->n - i));
}

static int on_hangup(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        FdStore *s = userdata;
        for (size_t i = 0; i < s->n; i++)
                if (s->watches[i] == source) {
                        log_info("Dropped stored fd \"%s\": %s on it (its other end is gone), as systemd "
                                 "would (FDPOLL=0 keeps such an fd).", s->names[i],
                                 revents & EPOLLERR ? "EPOLLERR" : "EPOLLHUP");
                        remove_at(s, i);
                        break;
                }
        return 0;
}

/* As systemd's service_add_fd_store(): an io source for no events, as
 * epoll reports EPOLLHUP and EPOLLERR always. An fd epoll cannot watch (a
 * regular file, a memfd: EPERM) is kept unwatched, as there. */
static void watch(FdStore *s, size_t i) {
        if (!s->event || !s->poll[i] || s->watches[i])
                return;
        int r = sd_event_add_io(s->event, &s->watches[i], s->fds[i], 0, on_hangup, s);
        if (r < 0 && r != -EPERM)
                log_debug_errno(r, "Failed to watch stored fd \"%s\", keeping it unwatched: %m", s->names[i]);
}

void fdstore_watch(FdStore *s, sd_event *event) {
        for (size_t i = 0; i < s->n; i++)
                s->watches[i] = sd_event_source_disable_unref(s->watches[i]);
        s->event = event;
        for (size_t i = 0; i < s->n; i++)
                watch(s, i);
}

int fdstore_add(FdStore *s, const char *name, int fd, bool poll) {
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
        bool *polls = realloc(s->poll, sizeof(bool) * (s->n + 1));
        if (polls)
                s->poll = polls;
        sd_event_source **watches = realloc(s->watches, sizeof(sd_event_source *) * (s->n + 1));
        if (watches)
                s->watches = watches;
        char *copy = strdup(name);
        if (!fds || !names || !polls || !watches || !copy) {
                free(copy);
                close_nonblocking(fd);
                return -ENOMEM;
        }
        s->fds[s->n] = fd;
        s->names[s->n] = copy;
        s->poll[s->n] = poll;
        s->watches[s->n] = NULL;
        watch(s, s->n++);
        return 1;
}

size_t fdstore_remove(FdStore *s, const char *name) {
        size_t removed = 0;
        for (size_t i = s->n; i-- > 0;)
                if (strcmp(s->names[i], name) == 0) {
                        remove_at(s, i);
                        removed++;
                }
        return removed;
}

void fdstore_done(FdStore *s) {
        for (size_t i = 0; i < s->n; i++)
                entry_free(s, i);
        free(s->fds);
        free(s->names);
        free(s->poll);
        free(s->watches);
        s->fds = NULL;
        s->names = NULL;
        s->poll = NULL;
        s->watches = NULL;
        s->n = 0;
        s->event = NULL;
}
