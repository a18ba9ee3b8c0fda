/* SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "env.h"
#include "util.h"

/* Names with their lengths: env_is_scrubbed() runs for every variable of
 * the environment twice per generation, and strlen() of each name each time
 * was 1% of handoff's CPU per reload. */
#define NAME(n) { n, sizeof n - 1 }
static const struct {
        const char *name;
        size_t len;
} scrubbed[] = {
        NAME("LISTEN_FDS"), NAME("LISTEN_PID"), NAME("LISTEN_FDNAMES"), NAME("LISTEN_PIDFDID"),
        NAME("NOTIFY_SOCKET"), NAME("WATCHDOG_USEC"), NAME("WATCHDOG_PID"), NAME("SYSTEMD_EXEC_PID"),
        NAME("FDSTORE"), NAME("MAINPID"), NAME("MANAGERPID"), NAME("HANDOFF_GENERATION"),
        /* handoff's own, between an old main and the next handoff */
        NAME("HANDOFF_CONTROL_FD"), NAME("HANDOFF_STATS"), NAME("HANDOFF_FDSTORE"), NAME("HANDOFF_STANDBY"),
        NAME("HANDOFF_FDPOLL"), NAME("HANDOFF_ENVIRONMENT_KEYS"),
};
#undef NAME

int env_is_scrubbed(const char *entry) {
        const char *eq = strchr(entry, '=');
        size_t l = eq ? (size_t) (eq - entry) : strlen(entry);
        for (size_t i = 0; i < ELEMENTSOF(scrubbed); i++)
                if (scrubbed[i].len == l && memcmp(entry, scrubbed[i].name, l) == 0)
                        return true;
        return false;
}

size_t env_name_length(const char *entry) {
        return strcspn(entry, "=");
}

ssize_t env_find(char *const *l, const char *entry) {
        /* Without an --environment-file the list is empty: no name to measure. */
        if (!l || !*l)
                return -1;
        size_t k = env_name_length(entry);
        for (size_t i = 0; l[i]; i++)
                if (strncmp(l[i], entry, k) == 0 && (l[i][k] == '=' || l[i][k] == 0))
                        return (ssize_t) i;
        return -1;
}

bool env_names_contain(const char *names, const char *entry) {
        size_t k = env_name_length(entry);
        for (const char *p = names ? strchr(names, ':') : NULL; p; p = strchr(p + 1, ':'))
                if (strncmp(p + 1, entry, k) == 0 && (p[1 + k] == ':' || p[1 + k] == 0))
                        return true;
        return false;
}

/* Whether the parent's entry goes to the child as it is. */
static bool inherited(const char *entry, const EnvParams *p) {
        if (env_is_scrubbed(entry))
                return false;
        if (p->drop && env_names_contain(p->drop, entry))
                return false;
        return env_find(p->environment, entry) < 0;
}

/* One entry of the environment being built: a followed by b. */
typedef struct Piece {
        const char *a, *b;
} Piece;

#define N_OWN 7 /* LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID, NOTIFY_SOCKET, HANDOFF_GENERATION, WATCHDOG_* */

/* Writes a then b (if any) and a NUL at w, records it in *slot, and
 * returns where the next string goes. */
static char *put(char **slot, char *w, const char *a, const char *b) {
        *slot = w;
        w = stpcpy(w, a);
        if (b)
                w = stpcpy(w, b);
        return w + 1;
}

/* The array and every string in one allocation, built in two passes: a
 * reload then costs one malloc() and one free() here, not one per variable
 * plus a realloc() per entry. Each of those was a different size, and glibc
 * keeps a few freed chunks of every size for reuse: over a few hundred
 * reloads that kept ~40 kB more of handoff's memory dirty for good. The
 * first pass sizes it for all of the parent's entries, the few that are
 * not inherited too: asking whether each is in both passes cost a quarter
 * of the instructions of a reload's SIGHUP handler (callgrind), all of it
 * before the clone, while the reload waits. */
int env_build(char *const *parent, const EnvParams *p, char ***ret, char **ret_listen_pid, char **ret_watchdog_pid) {
        char fds[24], generation[16], watchdog[24];
        snprintf(fds, sizeof fds, "%zu", p->n_fds);
        snprintf(generation, sizeof generation, "%u", p->generation);
        snprintf(watchdog, sizeof watchdog, "%llu", (unsigned long long) p->watchdog_usec);

        Piece own[N_OWN] = {
                { "LISTEN_FDS=", fds },
                { "LISTEN_FDNAMES=", p->fdnames ? p->fdnames : "" },
                { "LISTEN_PID=" ENV_PID_PLACEHOLDER, NULL },
                { "NOTIFY_SOCKET=", p->notify_socket ? p->notify_socket : "" },
                { "HANDOFF_GENERATION=", generation },
                { "WATCHDOG_USEC=", watchdog },
                { "WATCHDOG_PID=" ENV_PID_PLACEHOLDER, NULL },
        };
        size_t n_own = p->watchdog_usec > 0 ? N_OWN : N_OWN - 2;

        size_t n = 0, bytes = 0;
        for (char *const *e = parent; e && *e; e++) {
                n++;
                bytes += strlen(*e) + 1;
        }
        for (char *const *x = p->environment; x && *x; x++)
                if (!env_is_scrubbed(*x)) {
                        n++;
                        bytes += strlen(*x) + 1;
                }
        for (size_t i = 0; i < n_own; i++) {
                n++;
                bytes += strlen(own[i].a) + (own[i].b ? strlen(own[i].b) : 0) + 1;
        }
        for (char *const *x = p->extra; x && *x; x++) {
                n++;
                bytes += strlen(*x) + 1;
        }

        char **l = malloc(sizeof(char *) * (n + 1) + bytes);
        if (!l)
                return -ENOMEM;
        char *w = (char *) (l + n + 1);
        size_t k = 0;
        for (char *const *e = parent; e && *e; e++)
                if (inherited(*e, p))
                        w = put(l + k++, w, *e, NULL);
        for (char *const *x = p->environment; x && *x; x++)
                if (!env_is_scrubbed(*x))
                        w = put(l + k++, w, *x, NULL);
        size_t listen_pid = k + 2, watchdog_pid = k + 6;
        for (size_t i = 0; i < n_own; i++)
                w = put(l + k++, w, own[i].a, own[i].b);
        for (char *const *x = p->extra; x && *x; x++)
                w = put(l + k++, w, *x, NULL);
        l[k] = NULL;

        *ret_listen_pid = l[listen_pid];
        *ret_watchdog_pid = n_own == N_OWN ? l[watchdog_pid] : NULL;
        *ret = l;
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
