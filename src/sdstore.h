/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* Mirroring into systemd's own fd store (FileDescriptorStoreMax=), so that a
 * crash or restart of the whole service gets back the sockets handoff opened
 * itself and the server's stored fds: the port never closes, the state
 * survives. Entries are named so a later handoff recognises its own among the
 * fds systemd passes. */

#define SDSTORE_LISTEN_PREFIX "handoff.listen."  /* + index of the --listen */
#define SDSTORE_STORE_PREFIX "handoff.store."    /* + the server's FDNAME */

typedef enum {
        SDSTORE_AUTO, /* when $FDSTORE (systemd >= 254) says the unit has a store */
        SDSTORE_YES,
        SDSTORE_NO,
} SdStoreMode;

bool sdstore_enabled(SdStoreMode mode);

/* Puts fd into systemd's store as prefix+name, beside any fds already
 * stored under that name (as handoff's own store keeps them); without poll,
 * or for a regular file (fd_maybe_regular_file()), with FDPOLL=0. A name too long for systemd with the prefix is not put
 * there: -ENAMETOOLONG, for the caller to say (once) that the fd is only in
 * handoff's store. */
int sdstore_put(const char *prefix, const char *name, int fd, bool poll);
/* Removes every fd stored as prefix+name. Returns 1 when asked, 0 without
 * a service manager (or sending disabled), or a negative errno (logged). */
int sdstore_remove(const char *prefix, const char *name);
/* ... stored as full, a name as systemd passed it. */
int sdstore_remove_name(const char *full);
