/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "notify-mode.h"

int notify_socket_mode_from_string(const char *s, NotifySocketMode *ret) {
        if (strcmp(s, "auto") == 0)
                *ret = NOTIFY_SOCKET_AUTO;
        else if (strcmp(s, "abstract") == 0)
                *ret = NOTIFY_SOCKET_ABSTRACT;
        else if (strcmp(s, "path") == 0)
                *ret = NOTIFY_SOCKET_PATH;
        else
                return -EINVAL;
        return 0;
}

const char *notify_socket_mode_to_string(NotifySocketMode m) {
        return m == NOTIFY_SOCKET_ABSTRACT ? "abstract" : m == NOTIFY_SOCKET_PATH ? "path" : "auto";
}

int notify_access_from_string(const char *s, NotifyAccess *ret) {
        if (strcmp(s, "main") == 0)
                *ret = NOTIFY_ACCESS_MAIN;
        else if (strcmp(s, "all") == 0)
                *ret = NOTIFY_ACCESS_ALL;
        else
                return -EINVAL;
        return 0;
}

const char *notify_access_to_string(NotifyAccess a) {
        return a == NOTIFY_ACCESS_ALL ? "all" : "main";
}
