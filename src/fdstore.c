/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "address.h"
#include "fdstore.h"
#include "util.h"

int fdstore_add(FdStore *s, const char *name, int fd) {
        if (!fdname_is_valid(name)) {
                close_nonblocking(fd);
                return -EINVAL;
        }
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->names[i], name) == 0) {
                        close_nonblocking(s->fds[i]);
                        s->fds[i] = fd;
                        return 0;
                }
        if (s->n >= s->max) {
                close_nonblocking(fd);
                return -ENOSPC;
        }
        int *fds = realloc(s->fds, sizeof(int) * (s->n + 1));
        if (fds)
                s->fds = fds;
        char **names = realloc(s->names, sizeof(char *) * (s->n + 1));
        if (names)
                s->names = names;
        char *copy = strdup(name);
        if (!fds || !names || !copy) {
                free(copy);
                close_nonblocking(fd);
                return -ENOMEM;
        }
        s->fds[s->n] = fd;
        s->names[s->n++] = copy;
        return 0;
}

size_t fdstore_remove(FdStore *s, const char *name) {
        size_t removed = 0, k = 0;
        for (size_t i = 0; i < s->n; i++) {
                if (strcmp(s->names[i], name) == 0) {
                        close_nonblocking(s->fds[i]);
                        free(s->names[i]);
                        removed++;
                        continue;
                }
                s->fds[k] = s->fds[i];
                s->names[k++] = s->names[i];
        }
        s->n = k;
        return removed;
}

void fdstore_done(FdStore *s) {
        for (size_t i = 0; i < s->n; i++) {
                close_nonblocking(s->fds[i]);
                free(s->names[i]);
        }
        free(s->fds);
        free(s->names);
        s->fds = NULL;
        s->names = NULL;
        s->n = 0;
}
