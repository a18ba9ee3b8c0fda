/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "close-async.h"
#include "listeners.h"
#include "log.h"
#include "sdstore.h"
#include "service-store.h"

static void apply(ServiceStore *s, bool mirroring, unsigned number, const char *name, int fd, bool poll) {
        if (fd < 0) {
                log_debug("Removed %zu fd(s) named \"%s\" from the store.", fdstore_remove(s->store, name), name);
                if (mirroring)
                        (void) sdstore_remove(SDSTORE_STORE_PREFIX, name);
                return;
        }
        int r = fdstore_add(s->store, name, fd, poll);
        if (r > 0 && mirroring && sdstore_put(SDSTORE_STORE_PREFIX, name, fd, poll) == -ENAMETOOLONG)
                log_warning("Not putting fd \"%s\" into the service manager's fd store: with the prefix %s its name "
                            "is longer than the 255 characters systemd takes. handoff keeps it, but it will not "
                            "survive a restart of the service.", name, SDSTORE_STORE_PREFIX);
        if (r == 0)
                log_debug("Dropped fd \"%s\" from generation %u: the store holds that open file already.", name,
                          number);
        else if (r == -ENOSPC)
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

/* Once per candidate: a flood of requests must not become a flood of lines. */
static void stage_overflow(ServiceStore *s, unsigned number, const char *name, int fd) {
        if (!s->overflow_logged)
                log_warning("Too many fd store requests from starting generation %u (at most %zu fds and %zu requests "
                            "wait for its commit): dropped this one (\"%s\"); further drops are not logged.",
                            number, s->store->max, 2 * s->store->max, name);
        s->overflow_logged = true;
        close_nonblocking(fd);
}

/* Drops the staged requests for name (fds and removal alike). */
static void unstage_name(ServiceStore *s, const char *name) {
        size_t k = 0;
        for (size_t i = 0; i < s->n_staged; i++) {
                if (strcmp(s->staged[i].name, name) == 0) {
                        op_free(&s->staged[i]);
                        continue;
                }
                s->staged[k++] = s->staged[i];
        }
        s->n_staged = k;
}

/* Staged requests are applied in order at the commit, as systemd applies
 * them on arrival, and bounded like the store itself: a removal takes the
 * place of the staged requests for its name (the commit would remove those
 * fds anyway); an fd that is already staged (the same open file) is closed,
 * as the store would close it; at most --fd-store-max fds wait (with that
 * many staged, the store would be full had they been applied on arrival), and
 * at most 2 * --fd-store-max requests (every fd, and a removal for each, of
 * a full store). */
static void stage(ServiceStore *s, unsigned number, const char *name, int fd, bool poll) {
        size_t n_fds = 0;
        if (fd < 0)
                unstage_name(s, name);
        else
                for (size_t i = 0; i < s->n_staged; i++) {
                        if (s->staged[i].fd < 0)
                                continue;
                        if (fd_same_file(s->staged[i].fd, fd)) {
                                log_debug("Dropped fd \"%s\" from generation %u: that open file is staged already.",
                                          name, number);
                                close_nonblocking(fd);
                                return;
                        }
                        n_fds++;
                }
        if (s->n_staged >= 2 * s->store->max || (fd >= 0 && n_fds >= s->store->max)) {
                stage_overflow(s, number, name, fd);
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
        s->staged[s->n_staged++] = (StoreOp) { .name = copy, .fd = fd, .poll = poll, .number = number };
        log_debug("Staged %s \"%s\" from generation %u, until it speaks for the service.",
                  fd >= 0 ? "fd" : "the removal of", name, number);
}

void service_store_message(ServiceStore *s, StorePolicy policy, bool mirroring, unsigned number,
                           const NotifyMessage *m, int *fds, size_t n_fds) {
        const char *name = m->fdname ? m->fdname : "stored"; /* systemd's default name */
        /* As systemd 252 (service_notify_message()): FDSTOREREMOVE=1 goes
         * first, and with it FDSTORE=1 is not looked at; the fds sent along
         * are closed. */
        bool store = m->fdstore && !m->fdstoreremove;

        if (policy != STORE_REFUSE && m->fdstoreremove) {
                /* A removal needs a valid FDNAME=. "stored" names what is
                 * stored without one; it is no default for what to remove. */
                if (!m->fdname || !fdname_is_valid(m->fdname))
                        log_warning("Ignored FDSTOREREMOVE=1 from generation %u: it needs FDNAME= with a valid name.",
                                    number);
                else if (policy == STORE_STAGE)
                        stage(s, number, name, -EBADF, false);
                else
                        apply(s, mirroring, number, name, -EBADF, false);
        }
        if (policy != STORE_REFUSE && store && m->fdname && !fdname_is_valid(m->fdname)) {
                /* As systemd: the name is ignored, not the fds. */
                log_warning("Generation %u sent FDSTORE=1 with an invalid FDNAME= (a name is at most 255 printable "
                            "ASCII characters, no ':' or '\\'); storing its fds as \"stored\", as systemd does.", number);
                name = "stored";
        }
        for (size_t i = 0; i < n_fds; i++) {
                if (policy == STORE_REFUSE || !store) {
                        log_debug("Closed an fd from generation %u: %s.", number,
                                  !m->fdstore ? "no FDSTORE=1"
                                  : policy == STORE_REFUSE ? "it does not speak for the service"
                                  : "FDSTOREREMOVE=1 came with it, and goes first");
                        close_nonblocking(fds[i]);
                } else if (policy == STORE_STAGE)
                        stage(s, number, name, fds[i], !m->fdpoll_off);
                else
                        apply(s, mirroring, number, name, fds[i], !m->fdpoll_off);
        }
}

void service_store_commit_staged(ServiceStore *s, bool mirroring) {
        s->overflow_logged = false;
        for (size_t i = 0; i < s->n_staged; i++) {
                apply(s, mirroring, s->staged[i].number, s->staged[i].name, s->staged[i].fd, s->staged[i].poll);
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
        char *joined = NULL, *poll = malloc(st->n + 1);
        if (fds && names && poll) {
                for (size_t i = 0; i < n_listen; i++)
                        fds[i] = listen_fds[i], names[i] = listen_names[i];
                for (size_t i = 0; i < st->n; i++) {
                        fds[n_listen + i] = st->entries[i].fd, names[n_listen + i] = st->entries[i].name;
                        poll[i] = st->entries[i].poll ? '1' : '0';
                }
                poll[st->n] = '\0';
                joined = fdnames_join(names, n);
        }
        free(names);
        if (!joined) {
                free(fds);
                free(poll);
                return -ENOMEM;
        }
        free(s->gen_fds);
        free(s->gen_fdnames);
        free(s->gen_fdpoll);
        s->gen_fds = fds;
        s->n_gen_fds = n;
        s->gen_fdnames = joined;
        s->gen_fdpoll = poll;
        return 0;
}

static bool seen_before(char *const *names, size_t i) {
        for (size_t k = 0; k < i; k++)
                if (strcmp(names[k], names[i]) == 0)
                        return true;
        return false;
}

void service_store_resync(ServiceStore *s, char *const *old_names, size_t n_old) {
        /* A removal takes every fd of its name: once per name is enough. */
        for (size_t i = 0; i < n_old; i++)
                if (!seen_before(old_names, i))
                        (void) sdstore_remove(SDSTORE_STORE_PREFIX, old_names[i]);
        /* One too long to put there was said so when it was stored. */
        for (size_t i = 0; i < s->store->n; i++)
                (void) sdstore_put(SDSTORE_STORE_PREFIX, s->store->entries[i].name, s->store->entries[i].fd,
                                   s->store->entries[i].poll);
}

void service_store_done(ServiceStore *s) {
        service_store_drop_staged(s);
        free(s->gen_fds);
        free(s->gen_fdnames);
        free(s->gen_fdpoll);
        s->gen_fds = NULL;
        s->gen_fdnames = NULL;
        s->gen_fdpoll = NULL;
}
