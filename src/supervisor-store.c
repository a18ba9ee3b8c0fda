/* SPDX-License-Identifier: MIT */
/* The supervisor's side of the fd store: which generation may store, staging
 * a reload successor's stores until it commits, and what a new generation
 * inherits. */
#include <string.h>

#include "log.h"
#include "sdstore.h"
#include "supervisor-internal.h"

/* Mirrored only while we are the main process systemd listens to. */
static bool mirroring(Supervisor *s) {
        return s->p->mirror_store && !s->mainpid_sent && !s->handed_over && (!s->is_successor || s->took_over);
}

static void apply(Supervisor *s, Generation *g, const char *name, int fd) {
        FdStore *st = s->p->store;
        if (fd < 0) {
                log_debug("Removed %zu fd(s) named %s from the store.", fdstore_remove(st, name), name);
                if (mirroring(s))
                        (void) sdstore_remove(SDSTORE_STORE_PREFIX, name);
                return;
        }
        int r = fdstore_add(st, name, fd);
        if (r >= 0 && mirroring(s))
                (void) sdstore_put(SDSTORE_STORE_PREFIX, name, fd);
        if (r == -ENOSPC)
                log_warning("fd store full (--fd-store-max=%zu): dropped fd \"%s\" from generation %u.", st->max, name,
                            g->number);
        else if (r < 0)
                log_warning_errno(r, "Failed to store fd \"%s\" from generation %u: %m", name, g->number);
        else
                log_debug("Stored fd \"%s\" from generation %u.", name, g->number);
}

static void stage(Supervisor *s, Generation *g, const char *name, int fd) {
        /* Bounded like the store itself: a later add of a name replaces the
         * staged one, and no more adds than the store could hold. */
        size_t adds = 0;
        for (size_t i = 0; i < s->n_staged; i++) {
                if (fd >= 0 && s->staged[i].fd >= 0 && strcmp(s->staged[i].name, name) == 0) {
                        safe_close(s->staged[i].fd);
                        s->staged[i].fd = fd;
                        return;
                }
                adds += s->staged[i].fd >= 0;
        }
        if (fd >= 0 && adds >= s->p->store->max) {
                log_warning("fd store full (--fd-store-max=%zu): dropped fd \"%s\" from generation %u.",
                            s->p->store->max, name, g->number);
                safe_close(fd);
                return;
        }
        StoreOp *ops = realloc(s->staged, sizeof(StoreOp) * (s->n_staged + 1));
        char *copy = strdup(name);
        if (ops)
                s->staged = ops;
        if (!ops || !copy) {
                free(copy);
                safe_close(fd);
                log_warning_errno(ENOMEM, "Out of memory; dropped a store request.");
                return;
        }
        s->staged[s->n_staged++] = (StoreOp) { .name = copy, .fd = fd };
}

/* FDSTORE=1 / FDSTOREREMOVE=1 as systemd takes them. The fds are ours to
 * keep or close from here. Who may store: whoever speaks for the service
 * (the serving generation, the first one while it starts); a reload's
 * successor is staged until it commits; retiring generations are ignored. */
void store_from_generation(Supervisor *s, Generation *g, const NotifyMessage *m, int *fds, size_t n_fds) {
        bool speaks = !s->handed_over && !s->mainpid_sent &&
                      (g == s->serving || (g == s->successor && !s->serving && s->machine.state == STATE_STARTING));
        bool staged = !speaks && g == s->successor && s->serving;
        const char *name = m->fdname ? m->fdname : "stored"; /* systemd's default name */

        if ((speaks || staged) && m->fdstoreremove && !m->fdstore) {
                if (staged)
                        stage(s, g, name, -EBADF);
                else
                        apply(s, g, name, -EBADF);
        }
        for (size_t i = 0; i < n_fds; i++) {
                if (!(speaks || staged) || !m->fdstore) {
                        log_debug("Closed an fd from generation %u: %s.", g->number,
                                  m->fdstore ? "it does not speak for the service" : "no FDSTORE=1");
                        close_nonblocking(fds[i]);
                } else if (staged)
                        stage(s, g, name, fds[i]);
                else
                        apply(s, g, name, fds[i]);
        }
}

void store_commit_staged(Supervisor *s) {
        for (size_t i = 0; i < s->n_staged; i++) {
                apply(s, s->serving, s->staged[i].name, s->staged[i].fd);
                free(s->staged[i].name);
        }
        free(s->staged);
        s->staged = NULL;
        s->n_staged = 0;
}

void store_drop_staged(Supervisor *s) {
        for (size_t i = 0; i < s->n_staged; i++) {
                safe_close(s->staged[i].fd);
                free(s->staged[i].name);
        }
        free(s->staged);
        s->staged = NULL;
        s->n_staged = 0;
}

/* The next generation inherits the listening sockets, then the store. */
int build_inheritance(Supervisor *s) {
        const Listeners *l = s->p->listeners;
        const FdStore *st = s->p->store;
        size_t n = l->n + st->n;
        int *fds = malloc(sizeof(int) * (n ? n : 1));
        char **names = malloc(sizeof(char *) * (n + 1));
        char *joined = NULL;
        if (fds && names) {
                for (size_t i = 0; i < l->n; i++)
                        fds[i] = l->fds[i], names[i] = l->names[i];
                for (size_t i = 0; i < st->n; i++)
                        fds[l->n + i] = st->fds[i], names[l->n + i] = st->names[i];
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
        s->gen_fdnames = joined;
        s->config.fds = fds;
        s->config.n_fds = n;
        s->config.fdnames = joined;
        return 0;
}

/* A successor that took over: systemd's store holds what its predecessor
 * put there; make it hold ours (what the app changed while we started). */
void store_resync(Supervisor *s, char *const *old_names, size_t n_old) {
        if (!mirroring(s))
                return;
        for (size_t i = 0; i < n_old; i++)
                (void) sdstore_remove(SDSTORE_STORE_PREFIX, old_names[i]);
        for (size_t i = 0; i < s->p->store->n; i++)
                (void) sdstore_put(SDSTORE_STORE_PREFIX, s->p->store->names[i], s->p->store->fds[i]);
}
