/* SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "address.h"
#include "listeners.h"
#include "log.h"

char *fdnames_join(char *const *names, size_t n) {
        size_t len = 1;
        for (size_t i = 0; i < n; i++)
                len += strlen(names[i]) + 1;
        char *s = malloc(len), *p = s;
        if (!s)
                return NULL;
        *p = '\0';
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        *p++ = ':';
                p = stpcpy(p, names[i]);
        }
        return s;
}

static int listeners_add(Listeners *l, int fd, char *name) {
        int *fds = realloc(l->fds, sizeof(int) * (l->n + 1));
        if (fds)
                l->fds = fds;
        char **names = realloc(l->names, sizeof(char *) * (l->n + 2));
        if (names)
                l->names = names;
        if (!fds || !names || !name) {
                free(name);
                return -ENOMEM;
        }
        l->fds[l->n] = fd;
        l->names[l->n++] = name;
        l->names[l->n] = NULL;
        return 0;
}

int listeners_from_systemd(Listeners *l, size_t n_stored, FdStore *store) {
        char **names = NULL;
        /* unset_environment=1: LISTEN_* were for us, not for anything we run. */
        int n = sd_listen_fds_with_names(1, &names);
        if (n < 0)
                return log_error_errno(n, "Invalid socket passing environment (LISTEN_FDS/LISTEN_FDNAMES): %m");
        if (n == 0) {
                strv_free(names);
                return 0;
        }

        int r = 0;
        if (n_stored > (size_t) n)
                n_stored = (size_t) n;
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                if ((size_t) i >= (size_t) n - n_stored) {
                        /* A stored fd may be anything: a memfd, a connection. */
                        (void) fd_cloexec(fd, true);
                        if ((r = fdstore_add(store, names[i], fd)) < 0) {
                                log_warning_errno(r, "Failed to keep stored fd %d (%s): %m", fd, names[i]);
                                r = 0;
                        }
                        continue;
                }
                struct stat st;
                if (fstat(fd, &st) < 0) {
                        r = log_error_errno(errno, "Passed fd %d (%s) is not open: %m", fd, names[i]);
                        break;
                }
                if (!S_ISSOCK(st.st_mode)) {
                        r = log_error_errno(ENOTSOCK, "Passed fd %d (%s) is not a socket.", fd, names[i]);
                        break;
                }
                if ((r = listeners_add(l, fd, TAKE_PTR(names[i]))) < 0) {
                        log_error_errno(r, "Out of memory");
                        break;
                }
        }
        /* Not strv_free(): the names taken above left NULL holes. */
        for (int i = 0; i < n; i++)
                free(names[i]);
        free(names);
        if (r < 0)
                return r;
        l->from_systemd = true;
        if (!(l->fdnames = fdnames_join(l->names, l->n)))
                return log_error_errno(ENOMEM, "Out of memory");
        return (int) l->n;
}

static int created_path_add(Listeners *l, char *path) {
        char **p = path ? realloc(l->created_paths, sizeof(char *) * (l->n_created + 1)) : NULL;
        if (!p) {
                free(path);
                return -ENOMEM;
        }
        l->created_paths = p;
        l->created_paths[l->n_created++] = path;
        return 0;
}

int listeners_add_created_path(Listeners *l, const char *path) {
        return created_path_add(l, strdup(path));
}

int listeners_open(Listeners *l, char *const *specs, size_t n_specs) {
        for (size_t i = 0; i < n_specs; i++) {
                ListenAddress a;
                const char *err = NULL;
                int r = listen_address_parse(specs[i], &a, &err);
                if (r < 0) {
                        log_error("Invalid --listen address \"%s\": %s.", specs[i], err);
                        return r;
                }
                int fd = -EBADF;
                char *created = NULL;
                r = listen_address_open(&a, specs[i], &fd, &created);
                if (r >= 0 && created)
                        r = created_path_add(l, created);
                if (r >= 0)
                        r = listeners_add(l, fd, TAKE_PTR(a.name));
                listen_address_done(&a);
                if (r < 0)
                        return r == -ENOMEM ? log_error_errno(r, "Out of memory") : r;
                log_info("Listening on %s (fd %d, name %s).", specs[i], fd, l->names[l->n - 1]);
        }
        if (!(l->fdnames = fdnames_join(l->names, l->n)))
                return log_error_errno(ENOMEM, "Out of memory");
        return 0;
}

void listeners_done(Listeners *l, bool unlink_paths) {
        for (size_t i = 0; i < l->n; i++)
                safe_close(l->fds[i]);
        for (size_t i = 0; i < l->n_created; i++) {
                if (unlink_paths && unlink(l->created_paths[i]) < 0 && errno != ENOENT)
                        log_warning_errno(errno, "Failed to remove %s: %m", l->created_paths[i]);
                free(l->created_paths[i]);
        }
        free(l->fds);
        strv_free(l->names);
        free(l->fdnames);
        free(l->created_paths);
        *l = (Listeners) {};
}
