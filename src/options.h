/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cgroup-mode.h"
#include "notify-mode.h"
#include "sdstore.h"
#include "time-util.h"

typedef enum {
        MODE_AUTO,
        MODE_SUPERVISE,
        MODE_HANDOVER,
} RunMode;

typedef struct Options {
        char **listen;           /* --listen specs, in order */
        size_t n_listen;
        bool ready_by_delay;
        usec_t ready_delay;
        usec_t start_timeout;
        usec_t drain_timeout;
        usec_t bake;             /* --bake: 0 for none */
        int stop_signal;
        RunMode mode;
        char *pid_file;
        char *working_directory; /* --working-directory: each generation starts there; NULL: in ours */
        char **environment_files; /* --environment-file specs, in order, read at each start; NULL: none */
        size_t n_environment_files;
        size_t fd_store_max;     /* --fd-store-max */
        SdStoreMode systemd_fd_store; /* --systemd-fd-store */
        NotifySocketMode notify_socket; /* --notify-socket */
        NotifyAccess notify_access;     /* --notify-access */
        CgroupMode cgroup;       /* --cgroup */
        bool non_blocking;       /* --non-blocking: O_NONBLOCK on the --listen sockets */
        bool verbose;
        char **command;          /* points into argv, NULL-terminated */
} Options;

/* --fd-store-max's upper bound. */
#define FD_STORE_MAX_LIMIT 1024

#define OPTIONS_DEFAULT                                         \
        ((Options) {                                            \
                .start_timeout = 90 * USEC_PER_SEC,             \
                .drain_timeout = 30 * USEC_PER_SEC,             \
                .stop_signal = 15 /* SIGTERM */,                \
                .fd_store_max = 16,                             \
        })

/* Parses argv. Returns 1 to run, 0 when --help/--version was printed, or
 * -EINVAL after printing what is wrong (exit 2, as systemd's tools do). */
int options_parse(int argc, char **argv, Options *o);

/* The first word of the parser's messages on stderr: "handoff", unless the
 * reload client (client_main()), which checks a new command line with it,
 * runs as handoffctl. */
void options_set_program(const char *name);
void options_done(Options *o);

/* "notify" or "delay:DUR". */
int parse_ready(const char *s, bool *ret_by_delay, usec_t *ret_delay);
