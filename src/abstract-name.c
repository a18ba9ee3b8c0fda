/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "abstract-name.h"
#include "log.h"
#include "random-util.h"

/* random_u64()'s names do not collide by chance: one that is taken was
 * taken on purpose, by a guess. A fresh name beats a squatter who guessed
 * one; one who could foresee every name would beat any number of tries. */
#define ABSTRACT_NAME_TRIES 8

int abstract_name_bind(int fd, const char *prefix, char *ret_name, size_t size) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int k = 0, r = -EADDRINUSE;
        for (unsigned i = 0; i < ABSTRACT_NAME_TRIES && r == -EADDRINUSE; i++) {
                k = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "%s%016llx", prefix,
                             (unsigned long long) random_u64());
                if (k < 0 || (size_t) k >= sizeof sa.sun_path - 1)
                        return -ENAMETOOLONG;
                if ((size_t) k + 2 > size)
                        return -ENOBUFS;
                socklen_t len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + (size_t) k);
                r = bind(fd, (struct sockaddr *) &sa, len) < 0 ? -errno : 0;
                if (r == -EADDRINUSE)
                        log_notice("The abstract name @%s is taken by another process; trying another.",
                                   sa.sun_path + 1);
        }
        if (r < 0)
                return r;
        ret_name[0] = '@';
        memcpy(ret_name + 1, sa.sun_path + 1, (size_t) k + 1);
        return 0;
}
