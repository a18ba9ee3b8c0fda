/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "fdstore.h"

/* The listening sockets of the service: held by handoff for its whole life
 * and handed to every generation. Never shut down, and O_NONBLOCK is only
 * ever set (--non-blocking=yes) on a --listen socket handoff has just
 * opened, before anyone else has it: the generations share the flag. */

typedef struct Listeners {
        int *fds;
        char **names;
        size_t n;
        char *fdnames;          /* names joined with ':' for LISTEN_FDNAMES */
        char **created_paths;   /* unix socket files handoff made itself */
        dev_t *created_devs;    /* ... and which files they are (lstat() when recorded) */
        ino_t *created_inos;
        size_t n_created;
        bool from_systemd;
        /* --listen sockets a previous handoff put into systemd's fd store,
         * by the --listen index they were stored for (-EBADF where none) */
        int *recovered;
        size_t n_recovered;
} Listeners;

/* What becomes of the entries a previous handoff put into systemd's fd
 * store, in systemd's store, once they are taken. */
typedef enum {
        SDSTORE_ENTRIES_LEAVE,  /* the fds are a predecessor's, not systemd's: none is one */
        SDSTORE_ENTRIES_MIRROR, /* --systemd-fd-store: those dropped here are removed */
        SDSTORE_ENTRIES_REMOVE, /* without it: every one is removed */
} SdStoreEntries;

/* Takes the fds systemd passed (LISTEN_FDS for our pid), names kept, and
 * removes LISTEN_* from our environment. Returns how many listening sockets
 * (0: none passed), or a negative errno after logging what is wrong. The last
 * n_stored of them are a predecessor's stored fds, not sockets: they go into
 * store, watched unless their character in fdpoll (NULL: all watched) is '0';
 * so do entries of systemd's fd store named "handoff.store.NAME", unwatched,
 * while "handoff.listen.N" are kept as l->recovered[N]. Those entries are
 * then removed from systemd's store as entries says. */
int listeners_from_systemd(Listeners *l, size_t n_stored, const char *fdpoll, FdStore *store,
                           SdStoreEntries entries);

/* Opens each "--listen" spec, or reuses the socket recovered from systemd's
 * fd store that is bound where it says, whatever index it was stored for;
 * the recovered sockets no spec asks for are closed first. With mirror,
 * puts each newly opened one, and each reused one whose index changed, into
 * systemd's fd store under its index. Logs and returns a negative errno on
 * the first one that fails; what was opened is kept in l for
 * listeners_done(). With nonblock, sets O_NONBLOCK on each it opens;
 * one reused from systemd's fd store keeps the flag it has. */
int listeners_open(Listeners *l, char *const *specs, size_t n_specs, bool mirror, bool nonblock);

/* Lets go of every socket recovered from systemd's fd store, when systemd
 * passed the unit's own sockets: --listen is then ignored, and nothing
 * would serve them (clients there would wait in their backlog for ever).
 * As for a --listen that no longer asks for one, each is shut down and
 * closed, its file left; with mirror, it is removed from systemd's store. */
void listeners_release_recovered(Listeners *l, bool mirror);

/* Records a unix socket file the service created (the next handoff learns them
 * from its predecessor), to be removed at the final stop: the file dev/ino,
 * as the predecessor found it when it bound it, if it is still at path then. */
int listeners_add_created_file(Listeners *l, const char *path, dev_t dev, ino_t ino);
/* ... the file that is at path now (an older predecessor did not say which). */
int listeners_add_created_path(Listeners *l, const char *path);

/* Forgets the created files that are no longer at their paths (removed, or
 * replaced by someone else's), so that they are neither removed nor passed on;
 * a warning says so once for each. */
void listeners_forget_replaced(Listeners *l);

/* Final stop: unlinks the unix socket files handoff created and that are
 * still there (never those systemd passed) and closes everything. */
void listeners_done(Listeners *l, bool unlink_paths);

/* Joins names with ':' (exactly n of them). */
char *fdnames_join(char *const *names, size_t n);
