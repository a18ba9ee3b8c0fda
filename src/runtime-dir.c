/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime-dir.h"

#define ROOT_RUNTIME_DIR "/run/handoff"

int runtime_dir_path(char *ret, size_t size, bool *ret_made_by_us) {
        const char *rd = getenv("RUNTIME_DIRECTORY"), *xdg = getenv("XDG_RUNTIME_DIR");
        int k;
        *ret_made_by_us = true;
        if (rd && rd[0] == '/') {
                k = snprintf(ret, size, "%.*s", (int) strcspn(rd, ":"), rd);
                *ret_made_by_us = false;
        } else if (geteuid() == 0)
                k = snprintf(ret, size, ROOT_RUNTIME_DIR);
        else if (xdg && xdg[0] == '/')
                k = snprintf(ret, size, "%s/handoff", xdg);
        else
                return -ENOENT;
        return k < 0 || (size_t) k >= size ? -ENAMETOOLONG : 0;
}

bool runtime_dir_private(const struct stat *st, uid_t uid) {
        return S_ISDIR(st->st_mode) && st->st_uid == uid && !(st->st_mode & 0022);
}

int runtime_dir_make(const char *path) {
        /* /run/handoff is the parent of handoff@NAME's
         * RuntimeDirectory=handoff/NAME, which systemd makes 0755 when
         * missing and leaves as it is when not: made 0700 by a handoff run
         * by hand, it would keep out the User= of every such service. What
         * handoff puts in it stays its own: its control socket is 0600, its
         * notify directories 0700. $XDG_RUNTIME_DIR is its user's alone
         * already. */
        mode_t mode = strcmp(path, ROOT_RUNTIME_DIR) == 0 ? 0755 : 0700;
        if (mkdir(path, mode) < 0)
                return errno == EEXIST ? 0 : -errno;
        /* That mode whatever the umask, as systemd's RuntimeDirectoryMode=. */
        return chmod(path, mode) < 0 ? -errno : 0;
}
