/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* The service's fd store, as systemd keeps one (sd_pid_notify_with_fds(3),
 * FDSTORE=1): fds the serving generation hands in with a name, given to every
 * later generation after the listening sockets, named in LISTEN_FDNAMES. */


typedef struct FdStore {
        int *fds;
        char **names;
        size_t n;
        size_t max;
} FdStore;

/* Takes fd (closed on failure). An entry with the same name is replaced
 * (systemd's own store keeps both; a server that stores "state" again means
 * the new one). Returns 0, or -ENOSPC when the store is full, -EINVAL for a
 * name systemd would refuse, -ENOMEM. */
int fdstore_add(FdStore *s, const char *name, int fd);

/* Removes (and closes) every entry named name; returns how many. */
size_t fdstore_remove(FdStore *s, const char *name);

void fdstore_done(FdStore *s);
