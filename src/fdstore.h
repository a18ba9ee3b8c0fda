/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

/* The service's fd store, as systemd keeps one (sd_pid_notify_with_fds(3),
 * FDSTORE=1): fds the serving generation hands in with a name, given to every
 * later generation after the listening sockets, named in LISTEN_FDNAMES. */

typedef struct FdStoreEntry {
        int fd;
        char *name;              /* several fds may share a name */
        bool poll;               /* dropped when it hangs up (no FDPOLL=0) */
        sd_event_source *watch;  /* its io source, or NULL */
} FdStoreEntry;

typedef struct FdStore {
        FdStoreEntry *entries;   /* in the order stored */
        size_t n;
        size_t max;
        sd_event *event;   /* where the fds with poll are watched (fdstore_watch()) */
} FdStore;

/* Takes fd (closed on failure, and when it is a duplicate). As systemd's
 * store: every fd is kept, after those stored before it, whatever its name;
 * only an fd that is the same open file as one already stored is dropped.
 * With poll, it is dropped (closed, with a log line) when it reports
 * EPOLLHUP or EPOLLERR while the store is watched, as systemd drops a
 * stored fd unless FDPOLL=0 came with it. Returns 1 when stored, 0 for a
 * duplicate, or -ENOSPC when the store is full, -EINVAL for a name systemd
 * would refuse, -ENOMEM. */
int fdstore_add(FdStore *s, const char *name, int fd, bool poll);

/* Watches the fds with poll in event (and those stored later); NULL stops
 * watching, as it must before event goes. */
void fdstore_watch(FdStore *s, sd_event *event);

/* Removes (and closes) every entry named name; returns how many. */
size_t fdstore_remove(FdStore *s, const char *name);

void fdstore_done(FdStore *s);

/* Whether a and b are the same open file, as systemd's same_fd() decides
 * which stored fds are duplicates. */
bool fd_same_file(int a, int b);
/* Its fallback where kcmp(2) is not available (exposed for the tests). */
bool fd_same_file_by_stat(int a, int b);

/* A regular file, by the type the kernel has cached, or one whose type
 * cannot be told: never offered to epoll, ours nor systemd's (on FUSE its
 * poll waits for the file system's server). */
bool fd_maybe_regular_file(int fd);
