/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#if __has_include(<linux/kcmp.h>)
#include <linux/kcmp.h>
#endif

#include "address.h"
#include "close-async.h"
#include "fdstore.h"
#include "log.h"
#include "util.h"

#ifndef KCMP_FILE
#define KCMP_FILE 0
#endif

/* What the kernel has cached (AT_STATX_DONT_SYNC): fstat() of a file on
 * FUSE or NFS may ask its server, and wait in our loop for an answer that a
 * hostile server never gives. A file's type and inode do not change. Where
 * statx() is refused (a seccomp profile older than it: EPERM, as Docker's
 * before 18.04; some sandboxes, or Linux before 4.11: ENOSYS), fstat(), and
 * that wait: without it, every stored fd would be taken for a regular file,
 * none watched for its hangup, and no duplicate told without kcmp. Fills
 * the type, mode, inode and device; returns 0 or -errno. */
static int stat_cached(int fd, struct statx *ret) {
        if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_INO, ret) >= 0)
                return 0;
        if (errno != ENOSYS && errno != EPERM)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        *ret = (struct statx) {
                .stx_mask = STATX_TYPE | STATX_MODE | STATX_INO,
                .stx_mode = st.st_mode,
                .stx_ino = st.st_ino,
                .stx_dev_major = major(st.st_dev),
                .stx_dev_minor = minor(st.st_dev),
        };
        return 0;
}

bool fd_same_file_by_stat(int a, int b) {
        struct statx sa, sb;
        if (stat_cached(a, &sa) < 0 || stat_cached(b, &sb) < 0)
                return false;
        if (sa.stx_dev_major != sb.stx_dev_major || sa.stx_dev_minor != sb.stx_dev_minor || sa.stx_ino != sb.stx_ino)
                return false;
        /* Two opens of one device node may be different contexts (two
         * terminals' sessions, two DRM clients): never the same. */
        if (S_ISCHR(sa.stx_mode) || S_ISBLK(sa.stx_mode))
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

static void entry_free(FdStoreEntry *e) {
        /* The watch first: epoll forgets an fd only when every copy of its
         * open file is closed, and the generations hold copies. */
        e->watch = sd_event_source_disable_unref(e->watch);
        close_nonblocking(e->fd);
        free(e->name);
}

static void remove_at(FdStore *s, size_t i) {
        entry_free(&s->entries[i]);
        s->n--;
        memmove(s->entries + i, s->entries + i + 1, sizeof *s->entries * (s->n - i));
}

static int on_hangup(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        FdStore *s = userdata;
        for (size_t i = 0; i < s->n; i++)
                if (s->entries[i].watch == source) {
                        log_info("Dropped stored fd \"%s\": %s on it (its other end is gone), as systemd "
                                 "would (FDPOLL=0 keeps such an fd).", s->entries[i].name,
                                 revents & EPOLLERR ? "EPOLLERR" : "EPOLLHUP");
                        remove_at(s, i);
                        break;
                }
        return 0;
}

bool fd_maybe_regular_file(int fd) {
        struct statx stx;
        return stat_cached(fd, &stx) < 0 || S_ISREG(stx.stx_mode);
}

/* As systemd's service_add_fd_store(): an io source for no events, as
 * epoll reports EPOLLHUP and EPOLLERR always. An fd epoll cannot watch (a
 * regular file, a memfd: EPERM) is kept unwatched, as there. A regular
 * file is not even offered to epoll: on FUSE its poll asks the file
 * system's server, and epoll_ctl() waits for the answer in our loop, for
 * ever if the server (a hostile server's own) never gives one. */
static void watch(FdStore *s, FdStoreEntry *e) {
        if (!s->event || !e->poll || e->watch || fd_maybe_regular_file(e->fd))
                return;
        int r = sd_event_add_io(s->event, &e->watch, e->fd, 0, on_hangup, s);
        if (r < 0 && r != -EPERM)
                log_debug_errno(r, "Failed to watch stored fd \"%s\", keeping it unwatched: %m", e->name);
}

void fdstore_watch(FdStore *s, sd_event *event) {
        for (size_t i = 0; i < s->n; i++)
                s->entries[i].watch = sd_event_source_disable_unref(s->entries[i].watch);
        s->event = event;
        for (size_t i = 0; i < s->n; i++)
                watch(s, &s->entries[i]);
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
                if (fd_same_file(s->entries[i].fd, fd)) {
                        close_nonblocking(fd);
                        return 0;
                }
        FdStoreEntry *entries = realloc(s->entries, sizeof *entries * (s->n + 1));
        if (entries)
                s->entries = entries;
        char *copy = strdup(name);
        if (!entries || !copy) {
                free(copy);
                close_nonblocking(fd);
                return -ENOMEM;
        }
        FdStoreEntry *e = &s->entries[s->n++];
        *e = (FdStoreEntry) { .fd = fd, .name = copy, .poll = poll };
        watch(s, e);
        return 1;
}

size_t fdstore_remove(FdStore *s, const char *name) {
        size_t removed = 0;
        for (size_t i = s->n; i-- > 0;)
                if (strcmp(s->entries[i].name, name) == 0) {
                        remove_at(s, i);
                        removed++;
                }
        return removed;
}

void fdstore_done(FdStore *s) {
        for (size_t i = 0; i < s->n; i++)
                entry_free(&s->entries[i]);
        free(s->entries);
        s->entries = NULL;
        s->n = 0;
        s->event = NULL;
}
