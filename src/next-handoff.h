/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "cgroup.h"
#include "channel.h"
#include "listeners.h"
#include "standby.h"
#include "status.h"
#include "time-util.h"

/* The old main's side of a handover reload: the *next handoff* is a whole
 * new handoff process, started from handoff's own path, as a sibling
 * (CLONE_PARENT) so that the service manager is its parent (double-forked
 * for init to adopt when there is none). It starts its own candidate
 * generation and reports over the handover channel (channel.h). */

typedef struct NextHandoff NextHandoff;

typedef struct NextHandoffCallbacks {
        void (*ready)(NextHandoff *n, void *userdata);
        /* Its candidate generation's own STATUS=, while it starts. */
        void (*status)(NextHandoff *n, const char *text, void *userdata);
        /* Its candidate generation's EXTEND_TIMEOUT_USEC=, while it starts
         * (its own deadline for READY is extended already). */
        void (*extend)(NextHandoff *n, uint64_t usec, void *userdata);
        void (*failed)(NextHandoff *n, const char *why, void *userdata);
        /* The process is gone. app_pidfd: a pidfd of its generation's
         * main (next_handoff_app_pid()), unless we killed it, for the
         * callee to retire (next_handoff_app_retirement()), main and
         * process group, should either still run (it died before it
         * stopped them), and to close; else -EBADF. */
        void (*exited)(NextHandoff *n, int app_pidfd, void *userdata);
} NextHandoffCallbacks;

typedef struct NextHandoffConfig {
        const char *exe;            /* handoff's own path, resolved at start-up */
        char *const *argv;          /* handoff's own argv */
        const int *fds;             /* listening sockets, then stored fds */
        size_t n_fds;
        size_t n_stored;            /* how many of fds (at the end) are stored */
        const char *fdpoll;         /* per stored fd: '1' watched, '0' FDPOLL=0 */
        const char *fdnames;
        const char *notify_socket;  /* systemd's, for after the takeover */
        uint64_t watchdog_usec;
        const char *stats;          /* HANDOFF_STATS: "reloads failed reload-start-usec" */
        const char *environment_keys; /* HANDOFF_ENVIRONMENT_KEYS (GenerationConfig); NULL: none */
        usec_t timeout;             /* how long it may take to say READY */
        int stop_signal;            /* how its generation retires (--stop-signal, --drain-timeout), */
        usec_t drain_timeout;       /* should the next handoff die before it stops it */
        CgroupRoot *cgroup;         /* our delegated cgroup root, where its generation runs; NULL: none */
} NextHandoffConfig;

/* What a next handoff may take beyond its generation's start timeout to say
 * READY (its own start, its report): its timeout is --start-timeout plus
 * this, and an EXTEND_TIMEOUT_USEC= from its generation moves it as far. */
#define NEXT_HANDOFF_START_MARGIN (5 * USEC_PER_SEC)

/* Starts the next handoff: the standby, if *standby is one still usable
 * (standby.h), else a new process. The standby is used up or stopped either
 * way (*standby is NULL after). On failure it is logged and nothing runs;
 * why then holds the cause for the reload's result ("cannot start the next
 * handoff /usr/bin/handoff: Exec format error"), or is left as it was. */
int next_handoff_start(sd_event *e, const NextHandoffConfig *c, unsigned number, Standby **standby,
                       const NextHandoffCallbacks *cb, void *userdata, NextHandoff **ret, char *why,
                       size_t why_size);

/* Whether a standby's GO (standby.h) could carry the command line and the
 * environment a start with c as generation number passes on: at most
 * STANDBY_MAX_GO bytes, where exec takes far more. Where it cannot, a
 * standby would only be stopped at the reload. */
bool next_handoff_standby_fits(const NextHandoffConfig *c, unsigned number);

pid_t next_handoff_pid(const NextHandoff *n);
/* Whether it understands STOP and DRAINED (channel.h): an older one does not. */
bool next_handoff_takes_stop(const NextHandoff *n);
/* A pidfd of it, the caller's to close; -errno. */
int next_handoff_pidfd_dup(const NextHandoff *n);
pid_t next_handoff_app_pid(const NextHandoff *n);   /* its candidate generation's main, 0 before */
/* That generation's cgroup, its leaf's name below the root ("gen-2"), read
 * while its main ran; "": none, or not known. */
const char *next_handoff_app_cgroup(const NextHandoff *n);
usec_t next_handoff_started(const NextHandoff *n);  /* CLOCK_MONOTONIC */
unsigned next_handoff_number(const NextHandoff *n); /* that generation's number */
/* What "handoff status" shows of it: role, and since when (the reload's
 * start for one at work, its own for one stopping). Its processes count 1:
 * its own generation is its to count. "SIGKILL in" counts to the kill
 * after next_handoff_abort(). */
void next_handoff_status(const NextHandoff *n, const char *role, usec_t started, usec_t now,
                         StatusGeneration *ret);
/* It failed, or was told to stop: it is stopping. */
bool next_handoff_failed(const NextHandoff *n);
/* How its generation retires (NextHandoffConfig), for the exited callback. */
void next_handoff_app_retirement(const NextHandoff *n, int *ret_signal, usec_t *ret_drain_timeout);
/* When it said READY (CLOCK_MONOTONIC); 0: it did not. */
usec_t next_handoff_ready_at(const NextHandoff *n);

/* MAINPID= naming it goes to the service manager next (or, with none, it
 * is about to be told TAKEOVER): the unix socket files to remove at the final
 * stop (l's created ones), then NAMED (channel.h), with a pidfd of our serving generation's
 * main (-EBADF: none), that generation and what it retires with, for it to
 * serve on and retire that generation should we die before we tell it to
 * take over, and to hold it to its drain deadline should we die after.
 * Logged if it cannot be sent. */
void next_handoff_tell_named(NextHandoff *n, const Listeners *l, int gen_pidfd, const ChannelNamed *g);

/* Whether next_handoff_tell_named() has been called (and not
 * next_handoff_tell_unnamed() since). */
bool next_handoff_named(const NextHandoff *n);

/* MAINPID= could not be sent after NAMED: UNNAMED, before the abort, so
 * that it takes that for one and not for our death. */
void next_handoff_tell_unnamed(NextHandoff *n);

/* Whether it has exited (a zombie counts: to the service manager, which
 * refuses MAINPID= for a pid that "does not exist or is a zombie", it is
 * gone), whether or not its exit has been dispatched yet. */
bool next_handoff_exited(const NextHandoff *n);

/* Commit: passes on the unix socket files to remove at the final stop
 * (l's created ones, unless NAMED did), tells it to take over, and returns our end of the channel, which the
 * caller holds open until it exits (the next handoff waits for that end of
 * file before a stop of its own completes). */
int next_handoff_take_over(NextHandoff *n, const Listeners *l, bool reload_pending, int *ret_channel);

/* Rollback: SIGTERM (unless it already gave up by itself, and is exiting:
 * a second signal would read as a second stop request), end of file on the
 * channel, and SIGKILL to it and its generation if it has not exited a
 * little after drain_timeout, the deadline it gives its generation itself
 * (USEC_INFINITY: never).
 * The failed callback is not called (it is the caller's abort); the exited
 * callback reports the end; what it left in the runtime
 * directory if it was killed is removed then. With ret_channel, our end is
 * returned in *ret_channel instead of closed. */
void next_handoff_abort(NextHandoff *n, usec_t drain_timeout, int *ret_channel);

/* Kill it and its generation now (a second stop request). */
void next_handoff_kill(NextHandoff *n);

NextHandoff *next_handoff_free(NextHandoff *n);
