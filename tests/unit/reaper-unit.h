/* SPDX-License-Identifier: MIT */
#pragma once

/* What the reaper's unit tests share: a loop with its reaper, what its
 * callbacks have seen, and running the loop until they have seen enough. */

#include <check.h>
#include <signal.h>

#include "reaper.h"
#include "time-util.h"

static struct {
        unsigned exited, empty;
} seen;

static void on_main_exited(ProcTree *t, const siginfo_t *si, void *userdata) {
        seen.exited++;
}

static void on_empty(ProcTree *t, void *userdata) {
        seen.empty++;
}

static const ProcTreeCallbacks callbacks = { .main_exited = on_main_exited, .empty = on_empty };

typedef struct {
        sd_event *e;
        Reaper *r;
} Loop;

/* SIGCHLD blocked (the reaper takes it from the loop), a loop and its
 * reaper. */
static inline Loop loop_new(void) {
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &ss, NULL), 0);
        Loop l;
        ck_assert_int_ge(sd_event_new(&l.e), 0);
        ck_assert_int_ge(reaper_new(l.e, &l.r), 0);
        return l;
}

static inline void loop_free(Loop *l) {
        reaper_free(l->r);
        sd_event_unref(l->e);
}

/* Runs the loop until *what reaches n, for at most 5 s. */
static inline void run_until_(sd_event *e, const unsigned *what, unsigned n, const char *name) {
        usec_t end = now_monotonic() + 5 * USEC_PER_SEC;
        while (*what < n && now_monotonic() < end)
                ck_assert_int_ge(sd_event_run(e, 100 * USEC_PER_MSEC), 0);
        ck_assert_msg(*what >= n, "%s is %u after 5 s, not %u", name, *what, n);
}
#define run_until(e, what, n) run_until_(e, what, n, #what)
