/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>

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

int sdstore_remove(const char *prefix, const char *name) {
        char msg[320];
        snprintf(msg, sizeof msg, "FDSTOREREMOVE=1\nFDNAME=%s%s", prefix, name);
        int r = sdnotify_send(msg, NULL, 0);
        if (r < 0)
                log_warning_errno(r, "Failed to remove %s%s from the service manager's fd store: %m", prefix, name);
        return r;
}

int sdstore_put(const char *prefix, const char *name, int fd) {
        char msg[320];
        snprintf(msg, sizeof msg, "FDSTORE=1\nFDNAME=%s%s", prefix, name);
        int r = sdnotify_send(msg, &fd, 1);
        if (r < 0)
                log_warning_errno(r, "Failed to put %s%s into the service manager's fd store: %m", prefix, name);
        return r;
}
