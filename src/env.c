/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "env.h"
#include "util.h"

static const char *const scrubbed[] = {
        "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "LISTEN_PIDFDID",
        "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "SYSTEMD_EXEC_PID",
        "FDSTORE", "MAINPID", "MANAGERPID", "HANDOFF_GENERATION",
        /* handoff's own, between an old main and the next handoff */
        "HANDOFF_CONTROL_FD", "HANDOFF_STATS", "HANDOFF_FDSTORE",
};

int env_is_scrubbed(const char *entry) {
        const char *eq = strchr(entry, '=');
        size_t l = eq ? (size_t) (eq - entry) : strlen(entry);
        for (size_t i = 0; i < ELEMENTSOF(scrubbed); i++)
                if (strlen(scrubbed[i]) == l && strncmp(entry, scrubbed[i], l) == 0)
                        return true;
        return false;
}

static char *format(const char *fmt, ...) _printf_(1, 2);
static char *format(const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        return s;
}

int env_build(char *const *parent, const EnvParams *p, char ***ret, char **ret_listen_pid, char **ret_watchdog_pid) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        int r;

        for (char *const *e = parent; e && *e; e++)
                if (!env_is_scrubbed(*e) && (r = strv_push(&l, &n, strdup(*e))) < 0)
                        return r;

        if ((r = strv_push(&l, &n, format("LISTEN_FDS=%zu", p->n_fds))) < 0 ||
            (r = strv_push(&l, &n, format("LISTEN_FDNAMES=%s", p->fdnames))) < 0 ||
            (r = strv_push(&l, &n, strdup("LISTEN_PID=" ENV_PID_PLACEHOLDER))) < 0)
                return r;
        size_t listen_pid = n - 1;

        if ((r = strv_push(&l, &n, format("NOTIFY_SOCKET=%s", p->notify_socket))) < 0 ||
            (r = strv_push(&l, &n, format("HANDOFF_GENERATION=%u", p->generation))) < 0)
                return r;

        size_t watchdog_pid = SIZE_MAX;
        if (p->watchdog_usec > 0) {
                if ((r = strv_push(&l, &n, format("WATCHDOG_USEC=%llu", (unsigned long long) p->watchdog_usec))) < 0 ||
                    (r = strv_push(&l, &n, strdup("WATCHDOG_PID=" ENV_PID_PLACEHOLDER))) < 0)
                        return r;
                watchdog_pid = n - 1;
        }

        for (char *const *x = p->extra; x && *x; x++)
                if ((r = strv_push(&l, &n, strdup(*x))) < 0)
                        return r;

        *ret_listen_pid = l[listen_pid];
        *ret_watchdog_pid = watchdog_pid == SIZE_MAX ? NULL : l[watchdog_pid];
        *ret = TAKE_PTR(l);
        return 0;
}

void env_fill_pid(char *entry, pid_t pid) {
        /* Right-align the digits in the placeholder, then shift them left so
         * there are no leading zeros (a leading zero is still a valid number to
         * sd_listen_fds, but not to every hand-written parser). */
        char *digits = strchr(entry, '=');
        if (!digits)
                return;
        digits++;
        size_t w = strlen(digits);
        char tmp[sizeof ENV_PID_PLACEHOLDER];
        size_t i = sizeof tmp - 1;
        tmp[i] = '\0';
        unsigned long v = (unsigned long) pid;
        do {
                tmp[--i] = (char) ('0' + v % 10);
                v /= 10;
        } while (v && i > 0);
        size_t len = sizeof tmp - 1 - i;
        if (len > w)
                return;
        memcpy(digits, tmp + i, len + 1);
}
