/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cgroup-walk.h"

typedef struct Walk {
        char path[PATH_MAX];     /* the directory being visited, extended in place */
        CgroupWalkOrder order;
        void (*visit)(const char *path, void *userdata);
        void *userdata;
        unsigned dirs;
        bool cut;
} Walk;

/* Recursive, but never more than CGROUP_WALK_MAX_DEPTH frames deep, each
 * holding one open directory. */
static void walk(Walk *w, size_t len, unsigned depth) {
        w->dirs++;
        if (w->order == CGROUP_WALK_PARENTS_FIRST)
                w->visit(w->path, w->userdata);
        /* NULL with ENOENT: gone meanwhile, and nothing is below it. */
        DIR *d = opendir(w->path);
        if (!d && errno != ENOENT)
                w->cut = true; /* out of fds, say: what is below it is not visited */
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (depth >= CGROUP_WALK_MAX_DEPTH || w->dirs >= CGROUP_WALK_MAX_DIRS) {
                        w->cut = true;
                        break;
                }
                size_t n = strlen(de->d_name);
                /* Room left for the visitor's "/cgroup.procs" and the like. */
                if (len + 1 + n + CGROUP_WALK_FILE_MAX >= sizeof w->path) {
                        w->cut = true;
                        continue;
                }
                w->path[len] = '/';
                memcpy(w->path + len + 1, de->d_name, n + 1);
                walk(w, len + 1 + n, depth + 1);
                w->path[len] = '\0';
        }
        if (d)
                closedir(d);
        if (w->order == CGROUP_WALK_CHILDREN_FIRST)
                w->visit(w->path, w->userdata);
}

int cgroup_walk(const char *top, CgroupWalkOrder order, void (*visit)(const char *path, void *userdata),
                void *userdata) {
        Walk w = { .order = order, .visit = visit, .userdata = userdata };
        size_t len = strlen(top);
        if (len + CGROUP_WALK_FILE_MAX >= sizeof w.path)
                return -ENAMETOOLONG;
        memcpy(w.path, top, len + 1);
        walk(&w, len, 0);
        return w.cut ? -E2BIG : 0;
}

int cgroup_tree_populated(const char *top) {
        char path[PATH_MAX], buf[256];
        if (snprintf(path, sizeof path, "%s/cgroup.events", top) >= (int) sizeof path)
                return -ENAMETOOLONG;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        ssize_t n;
        size_t have = 0;
        while (have < sizeof buf - 1 && (n = read(fd, buf + have, sizeof buf - 1 - have)) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
                have += (size_t) n;
        }
        close(fd);
        buf[have] = '\0';
        const char *p = strstr(buf, "populated ");
        if (!p)
                return -EBADMSG;
        return p[10] != '0';
}
