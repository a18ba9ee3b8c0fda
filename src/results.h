/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "time-util.h"

/* How reloads went, and the words handoff uses for it: the STATUS= line
 * systemd shows, and the replies "handoff reload" prints. No I/O; the
 * monotonic clock is read to stamp when a reload began and ended. */

/* The bytes of a failure's cause that are kept: a long path in it, and its
 * errno, fit whole ("cannot start the next handoff /long/path: ..."); one
 * longer still is cut between characters. */
#define RESULTS_CAUSE_MAX 512
/* Room for results_reply() with such a cause. */
#define RESULTS_REPLY_MAX (RESULTS_CAUSE_MAX + 192)

typedef struct Results {
        unsigned reloads_ok;
        unsigned reloads_failed;
        /* For STATUS=: "reload to generation 3 ok in 120ms", or a failure
         * with its cause; allocated to size (results_done()), NULL if none,
         * or if out of memory. */
        char *last_result;
        char last_reply[192];    /* for "handoff reload": "reloaded: generation 3, pid 12, 120ms" */
        bool last_ok;            /* last_result tells of a success */
        bool current_failed;     /* last_result is the failure of the reload running now */
        char app_status[256];    /* a generation's own STATUS= ... */
        unsigned app_status_gen; /* ... and which generation said it */
        char candidate_status[256];    /* the same of one not serving yet ... */
        unsigned candidate_status_gen; /* ... until it serves (results_app_serves()) */
        /* For "handoff status --json": the last reload that ended. */
        usec_t began;            /* CLOCK_MONOTONIC: the reload (or first start) running now */
        unsigned failed_gen;     /* the generation results_failed*() named */
        unsigned last_gen;       /* the generation the last reload started; 0: none ended yet */
        bool last_gen_ok;        /* ... and whether it serves (or served) */
        usec_t last_ended;       /* CLOCK_MONOTONIC */
        usec_t last_took;        /* start to ready (as in STATUS=), or start to rollback */
} Results;

/* Frees what r holds; results_copy() makes dst a copy of src (with its
 * own last_result), as "dst = src" would not. */
void results_done(Results *r);
void results_copy(Results *dst, const Results *src);

/* A reload (or the first start) begins: nothing has failed in it yet. */
void results_begin(Results *r);

/* Generation number is ready, took after the reload began. handoff_pid:
 * the next handoff that runs it, 0 in supervise mode. Counts a reload. */
void results_ok(Results *r, unsigned number, pid_t pid, usec_t took, pid_t handoff_pid);

/* Generation number failed; why: "exited with status 1", ... (up to
 * RESULTS_CAUSE_MAX bytes of it). Counted by
 * results_rolled_back(), since a first start that fails is no reload. */
void results_failed(Results *r, unsigned number, const char *why);
/* The same with the next handoff's own words, which may already name the
 * generation ("generation 4 failed: ..."). */
void results_failed_text(Results *r, unsigned number, const char *text);
void results_rolled_back(Results *r);

/* A generation's own STATUS= text, the "app:" part of the status line
 * while it serves. That of one not serving yet (a reload's candidate, or
 * the next handoff's generation) waits until it serves, as systemd keeps
 * what a service said before its READY=1. */
void results_app_status(Results *r, unsigned number, const char *status);
void results_candidate_status(Results *r, unsigned number, const char *status);
void results_app_serves(Results *r, unsigned number);

/* handoff's STATUS= text while generation number (pid) serves; 0: none. */
const char *results_status_line(const Results *r, unsigned number, pid_t pid, char *buf, size_t size);

typedef enum {
        END_SERVING,   /* the reload ended, and the service serves on */
        END_STOPPING,  /* the service stops (a stop request, or nothing left to serve) */
        END_GAVE_UP,   /* a handoff started as the next one gives up before taking over */
} ReloadEnd;

/* The reply to "handoff reload" ("OK ..." or "FAIL ...") for a reload that
 * ended this way. A reload overtaken by a stop did not fail. */
const char *results_reply(const Results *r, ReloadEnd how, char *buf, size_t size);
