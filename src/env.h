/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The environment of one generation, built in the parent before fork. The
 * child's own pid is not known until after fork, so LISTEN_PID (and
 * WATCHDOG_PID) are written as fixed-width placeholders that env_fill_pid()
 * overwrites in the child without allocating. */

#define ENV_PID_PLACEHOLDER "0000000000"

typedef struct EnvParams {
        size_t n_fds;
        const char *fdnames;        /* "a:b:c", exactly n_fds names */
        const char *notify_socket;  /* the generation's private socket */
        unsigned generation;        /* HANDOFF_GENERATION */
        uint64_t watchdog_usec;     /* 0: no watchdog passed on */
        char *const *extra;         /* further "KEY=VALUE" entries, NULL-terminated */
        /* --environment-file: "KEY=VALUE" entries that replace the parent's
         * of the same name, and the names (":A:B") of the parent's that
         * are left out. */
        char *const *environment;
        const char *drop;
} EnvParams;

/* True for variables that belong to one process's contract with its manager
 * and so must never leak from handoff's environment into a generation. */
int env_is_scrubbed(const char *entry);

/* The length of entry's name: "NAME=VALUE", or a bare NAME. */
size_t env_name_length(const char *entry);

/* The index in l (NULL-terminated, or NULL) of the entry of entry's name,
 * or -1. */
ssize_t env_find(char *const *l, const char *entry);

/* Whether entry ("NAME=...", or a bare NAME) is one of names (":A:B"). */
bool env_names_contain(const char *names, const char *entry);

/* Builds the child environment from parent (a NULL-terminated array). On
 * success *ret is a new NULL-terminated array in ONE allocation with its
 * strings (release it with free(), not strv_free()); *ret_listen_pid and
 * *ret_watchdog_pid point at the placeholder entries inside it (the latter
 * NULL without a watchdog). */
int env_build(char *const *parent, const EnvParams *p, char ***ret, char **ret_listen_pid, char **ret_watchdog_pid);

/* Writes pid over the placeholder digits of an entry such as
 * "LISTEN_PID=0000000000". Async-signal-safe: used between fork and exec. */
void env_fill_pid(char *entry, pid_t pid);
