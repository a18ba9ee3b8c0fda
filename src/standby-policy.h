/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "fsm.h"
#include "role.h"
#include "time-util.h"

/* Whether a standby (standby.h) is kept, started, stopped or waited for,
 * as a pure function of what the supervisor sees: no syscalls, no clocks,
 * no logging. The supervisor calls standby_policy_step() whenever one of
 * the facts may have changed, carries out the action it returns, and
 * reports back what only it can find out (the delay passed, the GO cannot
 * carry the environment, the start failed). Unit tests drive it directly.
 *
 * A standby is kept only by a main of a handover-mode service under a
 * service manager that is not stopping, and started only while one
 * generation serves. It waits:
 *   - STANDBY_DELAY after a takeover (ROLE_MAIN_AFTER_TAKEOVER), so that
 *     its start does not compete with the end of the reload;
 *   - STANDBY_REFIT_DELAY of fitting after one was stopped because the
 *     fds outgrew its GO, so that a store swinging across the bound does
 *     not cost a start and a stop per swing.
 * A start that failed, or a GO that cannot carry the command line and the
 * environment, is not tried again until a reload. */

/* From a takeover to the start of the new main's standby: past the end of
 * the reload that made it main. Right away, its start (5 ms of CPU, most
 * of it the dynamic loader) would compete with the end of the reload,
 * "handoff reload" exiting and systemd finishing its reload job, which
 * measured 5 ms more per "systemctl reload" on 2 CPUs. The predecessor's
 * exit (ROLE_MAIN) ends the wait too, if sooner. */
#define STANDBY_DELAY (20 * USEC_PER_MSEC)

/* How long the fds must fit again before a standby follows one stopped
 * because they did not: a store that swings across the limit (a server
 * storing its connections) would otherwise cost a process start, and a
 * stop with its line, per swing. */
#define STANDBY_REFIT_DELAY (1 * USEC_PER_SEC)

typedef struct StandbyFacts {
        bool handover;       /* a reload starts the next handoff */
        bool manager;        /* a service manager's notify socket */
        Role role;
        bool stop_requested;
        State state;         /* the reload machine's */
        size_t n_fds;        /* what a reload passes on now: listening sockets and fd store */
        bool running;        /* a standby runs */
        bool timer_armed;    /* the delay asked for by STANDBY_ARM has not passed yet */
} StandbyFacts;

typedef enum {
        STANDBY_NOTHING,
        STANDBY_STOP,     /* stop it (and wait for it): this process no longer keeps one */
        STANDBY_OUTGROWN, /* the fds outgrew its GO: say so (info, with n_fds), free it, disarm the timer */
        STANDBY_DISARM,   /* the fds outgrew its GO again before the refit delay passed: disarm the timer */
        STANDBY_ARM,      /* arm the timer for the delay returned; standby_policy_due() when it passes */
        STANDBY_START,    /* check that its GO fits (else standby_policy_unfit()), then start one
                           * (on failure standby_policy_failed()) */
        _STANDBY_ACTION_MAX,
} StandbyAction;

typedef struct StandbyPolicy {
        bool failed;     /* its start failed, or its GO could not carry one: not again until a reload */
        bool due;        /* the delay has passed (or its timer could not be armed) */
        bool dropped;    /* one was stopped because the fds outgrew its GO */
        bool unfit_said; /* that its GO cannot carry the environment, at info level (by us or a predecessor) */
} StandbyPolicy;

/* A main started as the next handoff does not say again at info level
 * what its predecessor said: said once per service start. */
#define STANDBY_POLICY_INIT(started_as_next) ((StandbyPolicy) { .unfit_said = (started_as_next) })

/* What to do now; *ret_delay is set for STANDBY_ARM. */
StandbyAction standby_policy_step(StandbyPolicy *p, const StandbyFacts *f, usec_t *ret_delay);

/* The delay has passed, or its timer could not be armed (then the next
 * step starts one). */
void standby_policy_due(StandbyPolicy *p);

/* The start failed: not tried again until a reload. */
void standby_policy_failed(StandbyPolicy *p);

/* Its GO cannot carry the command line and environment: not tried again
 * until a reload. Returns whether to say so at info level (once per
 * service start) rather than at debug level. */
bool standby_policy_unfit(StandbyPolicy *p);

/* A reload starts the next handoff, with the standby or without: should
 * it fail, a standby may be started again. */
void standby_policy_reload(StandbyPolicy *p);

const char *standby_action_to_string(StandbyAction a);
