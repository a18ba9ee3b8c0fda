/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>

#include "fdstore.h"
#include "log.h"
#include "sdnotify.h"
#include "sdstore.h"

bool sdstore_enabled(SdStoreMode mode) {
        if (mode != SDSTORE_AUTO)
                return mode == SDSTORE_YES;
        /* systemd >= 254 tells a service its FileDescriptorStoreMax= here;
         * 252 tells nothing, so there it has to be asked for. */
        uint64_t n;
        return safe_atou64(getenv("FDSTORE"), &n) == 0 && n > 0;
}

/* prefix+name into full, or -ENAMETOOLONG when that is longer than systemd
 * takes (fdname_is_valid(): 255 characters; the name itself was checked
 * when it was stored). */
static int full_name(char full[static 256], const char *prefix, const char *name) {
        int k = snprintf(full, 256, "%s%s", prefix, name);
        return k < 0 || k > 255 ? -ENAMETOOLONG : 0;
}

int sdstore_remove_name(const char *full) {
        char msg[320];
        if (snprintf(msg, sizeof msg, "FDSTOREREMOVE=1\nFDNAME=%s", full) >= (int) sizeof msg)
                return 0; /* no name systemd takes, nor passes */
        int r = sdnotify_send(msg, NULL, 0);
        if (r < 0)
                log_warning_errno(r, "Failed to remove %s from the service manager's fd store: %m", full);
        return r;
}

int sdstore_remove(const char *prefix, const char *name) {
        char full[256];
        if (full_name(full, prefix, name) < 0)
                return 0; /* never put there (sdstore_put()) */
        return sdstore_remove_name(full);
}

int sdstore_put(const char *prefix, const char *name, int fd, bool poll) {
        char full[256], msg[320];
        /* A longer FDNAME= is invalid to systemd, and 252 stores the fd as
         * "stored": no later handoff would know it for its own, nor could
         * it remove it. */
        int r = full_name(full, prefix, name);
        if (r < 0)
                return r;
        /* systemd watches what comes without FDPOLL=0 (epoll_ctl() in
         * service_add_fd_store()): on FUSE that asks the file system's
         * server, and PID 1 waits for its answer. handoff keeps a regular
         * file unwatched, and so may systemd. */
        if (fd_maybe_regular_file(fd))
                poll = false;
        snprintf(msg, sizeof msg, "FDSTORE=1\nFDNAME=%s%s", full, poll ? "" : "\nFDPOLL=0");
        r = sdnotify_send(msg, &fd, 1);
        if (r < 0)
                log_warning_errno(r, "Failed to put %s into the service manager's fd store: %m", full);
        return r;
}
