/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "fdstore.h"
#include "listeners.h"
#include "options.h"

typedef struct SupervisorParams {
        const Options *opt;
        Listeners *listeners;     /* a successor adds the socket files it inherits */
        FdStore *store;           /* the server's stored fds (FDSTORE=1) */
        bool mirror_store;        /* ... mirrored into systemd's fd store */
        const char *exe;          /* handoff's own path, for a successor */
        char *const *argv;        /* handoff's own argv, for a successor */
        bool handover;            /* the successor of a reload is a new handoff */
        int takeover_channel;     /* >= 0: we are a successor; our predecessor's channel */
} SupervisorParams;

/* Runs the service until it stops: starts the first generation, turns
 * signals, readiness and exits into state machine events, carries out the
 * machine's actions, and talks to systemd. Returns the exit code for main();
 * *ret_final tells that the service stopped for good with this process as
 * its main (so the pid file and unix socket files are ours to remove) rather
 * than living on in a successor or in the predecessor we never replaced. */
int supervisor_run(const SupervisorParams *p, bool *ret_final);
