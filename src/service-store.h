/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "fdstore.h"
#include "notify.h"

/* The service's fd store as the supervisor uses it: FDSTORE=1 and
 * FDSTOREREMOVE=1 applied at once for whoever speaks for the service,
 * staged for a candidate generation until it commits (and dropped if it
 * fails, so a failed reload leaves the store as it was), mirrored into
 * systemd's store while this process is main; and the fds the next
 * generation inherits. */

typedef struct StoreOp {
        char *name;
        int fd;          /* -EBADF: remove name */
        bool poll;       /* no FDPOLL=0 came with it */
        unsigned number; /* the generation that sent it, for the log at the commit */
} StoreOp;

typedef struct ServiceStore {
        FdStore *store;
        StoreOp *staged;
        size_t n_staged;         /* at most 2 * store->max (see stage()) */
        bool overflow_logged;    /* a request beyond that bound was logged (once per candidate) */
        /* What the next generation inherits: the listening sockets, then
         * the stored fds; rebuilt before each start, as the store changes. */
        int *gen_fds;
        size_t n_gen_fds;
        char *gen_fdnames;
        char *gen_fdpoll;        /* per stored fd: '1', or '0' for FDPOLL=0 (for a next handoff) */
} ServiceStore;

typedef enum {
        STORE_APPLY,   /* it speaks for the service */
        STORE_STAGE,   /* a candidate generation beside a serving one */
        STORE_REFUSE,  /* retiring, or not ours to listen to */
} StorePolicy;

/* Takes a message's store requests; the fds are ours to keep or close. */
void service_store_message(ServiceStore *s, StorePolicy policy, bool mirroring, unsigned number,
                           const NotifyMessage *m, int *fds, size_t n_fds);
void service_store_commit_staged(ServiceStore *s, bool mirroring);
void service_store_drop_staged(ServiceStore *s);

/* Rebuilds gen_fds/gen_fdnames/gen_fdpoll from the listening sockets and the store. */
int service_store_build_inheritance(ServiceStore *s, const int *listen_fds, char *const *listen_names, size_t n_listen);

/* A handoff that took over: systemd's store holds what its predecessor
 * put there (old_names); make it hold ours. */
void service_store_resync(ServiceStore *s, char *const *old_names, size_t n_old);

void service_store_done(ServiceStore *s);
