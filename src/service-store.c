/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "listeners.h"
#include "log.h"
#include "sdstore.h"
#include "service-store.h"

static void apply(ServiceStore *s, bool mirroring, unsigned number, const char *name, int fd) {
        if (fd < 0) {
                log_debug("Removed %zu fd(s) named %s from the store.", fdstore_remove(s->store, name), name);
                if (mirroring)
                        (void) sdstore_remove(SDSTORE_STORE_PREFIX, name);
                return;
        }
        int r = fdstore_add(s->store, name, fd);
        if (r >= 0 && mirroring)
                (void) sdstore_put(SDSTORE_STORE_PREFIX, name, fd);
        if (r == -ENOSPC)
                log_warning("fd store full (--fd-store-max=%zu): dropped fd \"%s\" from generation %u.", s->store->max,
                            name, number);
        else if (r < 0)
                log_warning_errno(r, "Failed to store fd \"%s\" from generation %u: %m", name, number);
        else
                log_debug("Stored fd \"%s\" from generation %u.", name, number);
}

static void op_free(StoreOp *op) {
        close_nonblocking(op->fd);
        free(op->name);
}

/* Bounded like the store itself: a later request for a name replaces the
 * staged one for that name, and at most 2 * --fd-store-max requests wait
 * (every add, and a remove for each, of a full store). */
static void stage(ServiceStore *s, unsigned number, const char *name, int fd) {
        for (size_t i = 0; i < s->n_staged; i++)
                if (strcmp(s->staged[i].name, name) == 0) {
                        op_free(&s->staged[i]);
                        memmove(&s->staged[i], &s->staged[i + 1], sizeof(StoreOp) * (s->n_staged - i - 1));
                        s->n_staged--;
                        break;
                }
        if (s->n_staged >= 2 * s->store->max) {
                /* Once: a flood of requests must not become a flood of lines. */
                if (!s->overflow_logged)
                        log_warning("Too many fd store requests from starting generation %u (bound %zu): dropping "
                                    "this one (\"%s\") and any further ones until it commits.",
                                    number, 2 * s->store->max, name);
                s->overflow_logged = true;
                close_nonblocking(fd);
                return;
        }
        StoreOp *ops = realloc(s->staged, sizeof(StoreOp) * (s->n_staged + 1));
        char *copy = strdup(name);
        if (ops)
                s->staged = ops;
        if (!ops || !copy) {
                free(copy);
                close_nonblocking(fd);
                log_warning_errno(ENOMEM, "Out of memory; dropped a store request.");
                return;
        }
        s->staged[s->n_staged++] = (StoreOp) { .name = copy, .fd = fd };
}

void service_store_message(ServiceStore *s, StorePolicy policy, bool mirroring, unsigned number,
                           const NotifyMessage *m, int *fds, size_t n_fds) {
        const char *name = m->fdname ? m->fdname : "stored"; /* systemd's default name */

        if (policy != STORE_REFUSE && m->fdstoreremove && !m->fdstore) {
                if (policy == STORE_STAGE)
                        stage(s, number, name, -EBADF);
                else
                        apply(s, mirroring, number, name, -EBADF);
        }
        for (size_t i = 0; i < n_fds; i++) {
                if (policy == STORE_REFUSE || !m->fdstore) {
                        log_debug("Closed an fd from generation %u: %s.", number,
                                  m->fdstore ? "it does not speak for the service" : "no FDSTORE=1");
                        close_nonblocking(fds[i]);
                } else if (policy == STORE_STAGE)
                        stage(s, number, name, fds[i]);
                else
                        apply(s, mirroring, number, name, fds[i]);
        }
}

void service_store_commit_staged(ServiceStore *s, bool mirroring) {
        s->overflow_logged = false;
        for (size_t i = 0; i < s->n_staged; i++) {
                apply(s, mirroring, 0, s->staged[i].name, s->staged[i].fd);
                free(s->staged[i].name);
        }
        free(s->staged);
        s->staged = NULL;
        s->n_staged = 0;
}

void service_store_drop_staged(ServiceStore *s) {
        s->overflow_logged = false;
        for (size_t i = 0; i < s->n_staged; i++)
                op_free(&s->staged[i]);
        free(s->staged);
        s->staged = NULL;
        s->n_staged = 0;
}

int service_store_build_inheritance(ServiceStore *s, const int *listen_fds, char *const *listen_names, size_t n_listen) {
        const FdStore *st = s->store;
        size_t n = n_listen + st->n;
        int *fds = malloc(sizeof(int) * (n ? n : 1));
        char **names = malloc(sizeof(char *) * (n + 1));
        char *joined = NULL;
        if (fds && names) {
                for (size_t i = 0; i < n_listen; i++)
                        fds[i] = listen_fds[i], names[i] = listen_names[i];
                for (size_t i = 0; i < st->n; i++)
                        fds[n_listen + i] = st->fds[i], names[n_listen + i] = st->names[i];
                joined = fdnames_join(names, n);
        }
        free(names);
        if (!joined) {
                free(fds);
                return -ENOMEM;
        }
        free(s->gen_fds);
        free(s->gen_fdnames);
        s->gen_fds = fds;
        s->n_gen_fds = n;
        s->gen_fdnames = joined;
        return 0;
}

void service_store_resync(ServiceStore *s, char *const *old_names, size_t n_old) {
        for (size_t i = 0; i < n_old; i++)
                (void) sdstore_remove(SDSTORE_STORE_PREFIX, old_names[i]);
        for (size_t i = 0; i < s->store->n; i++)
                (void) sdstore_put(SDSTORE_STORE_PREFIX, s->store->names[i], s->store->fds[i]);
}

void service_store_done(ServiceStore *s) {
        service_store_drop_staged(s);
        free(s->gen_fds);
        free(s->gen_fdnames);
        s->gen_fds = NULL;
        s->gen_fdnames = NULL;
}
