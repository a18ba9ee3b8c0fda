/* SPDX-License-Identifier: MIT */
/* The standby's policy (standby-policy.c), driven as the pure function it
 * is, through what the standby tests of test-handover.py exercise. */
#include <check.h>
#include <stdlib.h>

#include "standby-policy.h"
#include "standby.h"
#include "unit.h"

/* A first main serving in handover mode under a manager, with a listener
 * and one stored fd, no standby yet. */
static StandbyFacts serving(void) {
        return (StandbyFacts) {
                .handover = true,
                .manager = true,
                .role = ROLE_MAIN,
                .state = STATE_SERVING,
                .n_fds = 2,
        };
}

/* One step: the action, and the delay for STANDBY_ARM. */
static void expect(StandbyPolicy *p, const StandbyFacts *f, StandbyAction want, usec_t want_delay) {
        usec_t delay = 0;
        StandbyAction a = standby_policy_step(p, f, &delay);
        ck_assert_msg(a == want, "%s, expected %s", standby_action_to_string(a), standby_action_to_string(want));
        if (want == STANDBY_ARM)
                ck_assert_uint_eq(delay, want_delay);
}

START_TEST(test_first_main_starts_one_at_once) {
        StandbyPolicy p = STANDBY_POLICY_INIT(false);
        StandbyFacts f = serving();
        /* Not while the first generation starts. */
        f.state = STATE_STARTING;
        expect(&p, &f, STANDBY_NOTHING, 0);
        f.state = STATE_SERVING;
        expect(&p, &f, STANDBY_START, 0);
        f.running = true;
        expect(&p, &f, STANDBY_NOTHING, 0);
        /* Kept through a reload, which uses it or stops it. */
        f.state = STATE_RELOADING;
        expect(&p, &f, STANDBY_NOTHING, 0);
        standby_policy_reload(&p);
        f.running = false;
        expect(&p, &f, STANDBY_NOTHING, 0);
        /* A failed reload: the first main serves on and starts another. */
        f.state = STATE_SERVING;
        expect(&p, &f, STANDBY_START, 0);
}
END_TEST

/* test_reload_starts_the_standby: the new main waits STANDBY_DELAY (or
 * its predecessor's exit) before its own. */
START_TEST(test_after_a_takeover_the_short_delay) {
        ck_assert_uint_eq(STANDBY_DELAY, 20 * USEC_PER_MSEC);
        StandbyPolicy p = STANDBY_POLICY_INIT(true);
        StandbyFacts f = serving();
        f.role = ROLE_CANDIDATE;
        expect(&p, &f, STANDBY_NOTHING, 0);
        f.role = ROLE_MAIN_AFTER_TAKEOVER;
        expect(&p, &f, STANDBY_ARM, STANDBY_DELAY);
        f.timer_armed = true;
        expect(&p, &f, STANDBY_NOTHING, 0);
        standby_policy_due(&p);
        f.timer_armed = false;
        expect(&p, &f, STANDBY_START, 0);

        /* The predecessor exits first: main, and no waiting any longer
         * (the timer, still armed, then changes nothing). */
        p = STANDBY_POLICY_INIT(true);
        f.role = ROLE_MAIN_AFTER_TAKEOVER;
        expect(&p, &f, STANDBY_ARM, STANDBY_DELAY);
        f.timer_armed = true;
        f.role = ROLE_MAIN;
        expect(&p, &f, STANDBY_START, 0);
        f.running = true;
        standby_policy_due(&p);
        f.timer_armed = false;
        expect(&p, &f, STANDBY_NOTHING, 0);

        /* A timer that could not be armed: due at once, started at the
         * next step. */
        p = STANDBY_POLICY_INIT(true);
        f = serving();
        f.role = ROLE_MAIN_AFTER_TAKEOVER;
        expect(&p, &f, STANDBY_ARM, STANDBY_DELAY);
        standby_policy_due(&p);
        expect(&p, &f, STANDBY_START, 0);
}
END_TEST

/* test_standby_stopped_while_the_fds_do_not_fit_started_again_when_they_do
 * and test_a_store_that_swings_across_the_limit_does_not_start_a_standby_at_each_swing. */
START_TEST(test_outgrown_then_refit_after_a_second) {
        ck_assert_uint_eq(STANDBY_REFIT_DELAY, USEC_PER_SEC);
        StandbyPolicy p = STANDBY_POLICY_INIT(false);
        StandbyFacts f = serving();
        f.running = true;
        f.n_fds = STANDBY_MAX_FDS;
        expect(&p, &f, STANDBY_NOTHING, 0);
        /* One fd more than a GO carries: stopped, once. */
        f.n_fds = STANDBY_MAX_FDS + 1;
        expect(&p, &f, STANDBY_OUTGROWN, 0);
        f.running = false;
        for (size_t n = STANDBY_MAX_FDS + 1; n <= STANDBY_MAX_FDS + 10; n++) {
                f.n_fds = n;
                expect(&p, &f, STANDBY_NOTHING, 0);
        }
        /* They fit again: a second of that first. */
        f.n_fds = STANDBY_MAX_FDS;
        expect(&p, &f, STANDBY_ARM, STANDBY_REFIT_DELAY);
        f.timer_armed = true;
        f.n_fds = 2;
        expect(&p, &f, STANDBY_NOTHING, 0);
        /* Each swing up before it passed starts the second anew. */
        for (int swing = 0; swing < 10; swing++) {
                f.n_fds = STANDBY_MAX_FDS + 1;
                expect(&p, &f, STANDBY_DISARM, 0);
                f.timer_armed = false;
                expect(&p, &f, STANDBY_NOTHING, 0);
                f.n_fds = STANDBY_MAX_FDS;
                expect(&p, &f, STANDBY_ARM, STANDBY_REFIT_DELAY);
                f.timer_armed = true;
        }
        standby_policy_due(&p);
        f.timer_armed = false;
        expect(&p, &f, STANDBY_START, 0);
        f.running = true;
        expect(&p, &f, STANDBY_NOTHING, 0);
        /* Outgrown again: stopped again, and a second again before the next. */
        f.n_fds = STANDBY_MAX_FDS + 1;
        expect(&p, &f, STANDBY_OUTGROWN, 0);
        f.running = false;
        f.n_fds = 2;
        expect(&p, &f, STANDBY_ARM, STANDBY_REFIT_DELAY);
        standby_policy_due(&p);
        f.timer_armed = false;
        expect(&p, &f, STANDBY_START, 0);
        /* A reload takes that one, and the store outgrows a GO while it
         * runs: when it has failed and they fit again, a second first. */
        f.state = STATE_RELOADING;
        standby_policy_reload(&p);
        f.running = false;
        f.n_fds = STANDBY_MAX_FDS + 1;
        expect(&p, &f, STANDBY_NOTHING, 0);
        f.state = STATE_SERVING;
        f.n_fds = 2;
        expect(&p, &f, STANDBY_ARM, STANDBY_REFIT_DELAY);
}
END_TEST

/* Without a standby to stop, too many fds change nothing: the delay after
 * a takeover runs on, and none starts before they fit. */
START_TEST(test_too_many_fds_before_any_standby) {
        StandbyPolicy p = STANDBY_POLICY_INIT(true);
        StandbyFacts f = serving();
        f.role = ROLE_MAIN_AFTER_TAKEOVER;
        f.n_fds = STANDBY_MAX_FDS + 2;
        expect(&p, &f, STANDBY_NOTHING, 0);
        f.n_fds = 2;
        expect(&p, &f, STANDBY_ARM, STANDBY_DELAY);
        f.timer_armed = true;
        f.n_fds = STANDBY_MAX_FDS + 2;
        expect(&p, &f, STANDBY_NOTHING, 0);
        standby_policy_due(&p);
        f.timer_armed = false;
        expect(&p, &f, STANDBY_NOTHING, 0);
        f.n_fds = 2;
        expect(&p, &f, STANDBY_START, 0);
}
END_TEST

/* test_no_standby_for_an_environment_its_start_message_cannot_carry and
 * test_no_standby_for_a_large_environment_said_once_though_a_reload_fails:
 * at info level once per service start, at debug level after. */
START_TEST(test_unfit_environment_said_once) {
        StandbyPolicy p = STANDBY_POLICY_INIT(false);
        StandbyFacts f = serving();
        expect(&p, &f, STANDBY_START, 0);
        ck_assert(standby_policy_unfit(&p));
        expect(&p, &f, STANDBY_NOTHING, 0);
        f.n_fds = 3;
        expect(&p, &f, STANDBY_NOTHING, 0);
        /* A failed reload tries anew, and says it at debug level. */
        f.state = STATE_RELOADING;
        standby_policy_reload(&p);
        expect(&p, &f, STANDBY_NOTHING, 0);
        f.state = STATE_SERVING;
        expect(&p, &f, STANDBY_START, 0);
        ck_assert(!standby_policy_unfit(&p));
        expect(&p, &f, STANDBY_NOTHING, 0);

        /* Each later main, started as the next handoff: debug level. */
        p = STANDBY_POLICY_INIT(true);
        f = serving();
        expect(&p, &f, STANDBY_START, 0);
        ck_assert(!standby_policy_unfit(&p));
        expect(&p, &f, STANDBY_NOTHING, 0);
}
END_TEST

/* A start that failed is not tried again until a reload. */
START_TEST(test_failed_start_waits_for_a_reload) {
        StandbyPolicy p = STANDBY_POLICY_INIT(false);
        StandbyFacts f = serving();
        expect(&p, &f, STANDBY_START, 0);
        standby_policy_failed(&p);
        for (size_t n = 1; n < 5; n++) {
                f.n_fds = n;
                expect(&p, &f, STANDBY_NOTHING, 0);
        }
        standby_policy_due(&p);
        expect(&p, &f, STANDBY_NOTHING, 0);
        f.state = STATE_RELOADING;
        standby_policy_reload(&p);
        expect(&p, &f, STANDBY_NOTHING, 0);
        f.state = STATE_SERVING;
        expect(&p, &f, STANDBY_START, 0);
}
END_TEST

/* A stop, or no longer the one to reload: stopped, and none started. */
START_TEST(test_stopped_when_not_kept) {
        StandbyFacts f = serving();
        f.stop_requested = true;
        StandbyPolicy p = STANDBY_POLICY_INIT(false);
        expect(&p, &f, STANDBY_NOTHING, 0);
        f.running = true;
        expect(&p, &f, STANDBY_STOP, 0);
        f.state = STATE_STOPPING;
        expect(&p, &f, STANDBY_STOP, 0);
        /* Also with more fds than a GO carries: nothing to say about them. */
        f.n_fds = STANDBY_MAX_FDS + 1;
        expect(&p, &f, STANDBY_STOP, 0);

        for (Role r = 0; r < _ROLE_MAX; r++) {
                bool main = r == ROLE_MAIN || r == ROLE_MAIN_AFTER_TAKEOVER;
                f = serving();
                f.role = r;
                f.running = true;
                p = STANDBY_POLICY_INIT(false);
                expect(&p, &f, main ? STANDBY_NOTHING : STANDBY_STOP, 0);
                f.running = false;
                expect(&p, &f, main ? (r == ROLE_MAIN ? STANDBY_START : STANDBY_ARM) : STANDBY_NOTHING,
                       STANDBY_DELAY);
        }

        /* Supervise mode, or no service manager to tell MAINPID=. */
        f = serving();
        f.handover = false;
        p = STANDBY_POLICY_INIT(false);
        expect(&p, &f, STANDBY_NOTHING, 0);
        f.running = true;
        expect(&p, &f, STANDBY_STOP, 0);
        f = serving();
        f.manager = false;
        expect(&p, &f, STANDBY_NOTHING, 0);
        f.running = true;
        expect(&p, &f, STANDBY_STOP, 0);
}
END_TEST

START_TEST(test_names) {
        ck_assert_str_eq(standby_action_to_string(STANDBY_OUTGROWN), "outgrown");
        ck_assert_str_eq(standby_action_to_string(_STANDBY_ACTION_MAX), "invalid");
        for (StandbyAction a = 0; a < _STANDBY_ACTION_MAX; a++)
                ck_assert_ptr_nonnull(standby_action_to_string(a));
}
END_TEST

int main(void) {
        Suite *s = suite_create("standby-policy");
        TCase *tc = tcase_create("policy");
        tcase_add_test(tc, test_first_main_starts_one_at_once);
        tcase_add_test(tc, test_after_a_takeover_the_short_delay);
        tcase_add_test(tc, test_outgrown_then_refit_after_a_second);
        tcase_add_test(tc, test_too_many_fds_before_any_standby);
        tcase_add_test(tc, test_unfit_environment_said_once);
        tcase_add_test(tc, test_failed_start_waits_for_a_reload);
        tcase_add_test(tc, test_stopped_when_not_kept);
        tcase_add_test(tc, test_names);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
