/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime-dir.h"

int runtime_dir_path(char *ret, size_t size, bool *ret_made_by_us) {
        const char *rd = getenv("RUNTIME_DIRECTORY"), *xdg = getenv("XDG_RUNTIME_DIR");
        int k;
        *ret_made_by_us = true;
        if (rd && rd[0] == '/') {
                k = snprintf(ret, size, "%.*s", (int) strcspn(rd, ":"), rd);
                *ret_made_by_us = false;
        } else if (geteuid() == 0)
                k = snprintf(ret, size, "/run/handoff");
        else if (xdg && xdg[0] == '/')
                k = snprintf(ret, size, "%s/handoff", xdg);
        else
                return -ENOENT;
        return k < 0 || (size_t) k >= size ? -ENAMETOOLONG : 0;
}

bool runtime_dir_private(const struct stat *st, uid_t uid) {
        return S_ISDIR(st->st_mode) && st->st_uid == uid && !(st->st_mode & 0022);
}
