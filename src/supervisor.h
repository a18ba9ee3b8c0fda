/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include "fdstore.h"
#include "listeners.h"
#include "options.h"

typedef struct SupervisorParams {
        const Options *opt;
        Listeners *listeners;     /* a handoff started as the next one adds the socket files it inherits */
        FdStore *store;           /* the server's stored fds (FDSTORE=1) */
        bool mirror_store;        /* ... mirrored into systemd's fd store */
        const char *exe;          /* handoff's own path, for the next handoff */
        char *const *argv;        /* handoff's own argv, for the next handoff */
        bool handover;            /* a reload starts the next handoff, not a generation */
        int takeover_channel;     /* >= 0: started as the next handoff; the predecessor's channel (taken) */
} SupervisorParams;

/* Runs the service until it stops: starts the first generation, turns
 * signals, readiness and exits into state machine events, carries out the
 * machine's actions, and talks to systemd. Returns 0 with the service's exit
 * status in *ret_status, or -errno when the supervisor itself could not run
 * (logged). *ret_final tells that the service stopped for good with this
 * process as its main (so the pid file and unix socket files are ours to
 * remove) rather than living on in the next handoff or in the predecessor
 * we never replaced. */
int supervisor_run(const SupervisorParams *p, int *ret_status, bool *ret_final);

/* Blocks the signals the supervisor watches (SIGCHLD and those it turns
 * into events). Called first thing, so that one arriving before the loop
 * waits for it: as PID 1 of a PID namespace, a signal with no handler and
 * not blocked is dropped, and a stop sent meanwhile would be lost. */
int supervisor_block_signals(void);
