/* SPDX-License-Identifier: MIT */
/* What handoff says about reloads (results.c): STATUS= and reload replies. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "results.h"
#include "unit.h"

START_TEST(test_ok_and_status_line) {
        Results r = {};
        char buf[512];
        ck_assert_str_eq(results_status_line(&r, 0, 0, buf, sizeof buf), "No generation serving.");
        ck_assert_str_eq(results_status_line(&r, 1, 10, buf, sizeof buf), "Serving generation 1 (pid 10); 0 reloads, 0 failed");
        results_begin(&r);
        results_ok(&r, 2, 20, 120 * USEC_PER_MSEC, 0);
        ck_assert_str_eq(results_status_line(&r, 2, 20, buf, sizeof buf),
                         "Serving generation 2 (pid 20); 1 reloads, 0 failed; last: reload to generation 2 ok in 120ms");
        ck_assert_str_eq(results_reply(&r, END_SERVING, buf, sizeof buf), "OK reloaded: generation 2, pid 20, 120ms");
        results_ok(&r, 3, 30, 2 * USEC_PER_SEC, 99);
        ck_assert_str_eq(results_reply(&r, END_SERVING, buf, sizeof buf),
                         "OK reloaded: generation 3, pid 30, 2s (handoff pid 99)");
        results_app_status(&r, 3, "warm");
        ck_assert(strstr(results_status_line(&r, 3, 30, buf, sizeof buf), "; app: warm"));
        /* Only the generation that said it. */
        ck_assert(!strstr(results_status_line(&r, 4, 40, buf, sizeof buf), "app:"));
        /* An empty STATUS= clears it, as in systemd. */
        results_app_status(&r, 3, "");
        ck_assert(!strstr(results_status_line(&r, 3, 30, buf, sizeof buf), "app:"));
        results_done(&r);
}
END_TEST

/* A candidate's STATUS= waits: the serving generation keeps its own text
 * until the candidate serves, and then the candidate's is shown. */
START_TEST(test_candidate_status) {
        Results r = {};
        char buf[512];
        results_app_status(&r, 3, "serving three");
        results_candidate_status(&r, 4, "warming four");
        ck_assert(strstr(results_status_line(&r, 3, 30, buf, sizeof buf), "; app: serving three"));
        /* A candidate that failed: another one serves, its text is not shown. */
        results_app_serves(&r, 5);
        ck_assert(!strstr(results_status_line(&r, 5, 50, buf, sizeof buf), "app:"));
        results_app_serves(&r, 4);
        ck_assert(strstr(results_status_line(&r, 4, 40, buf, sizeof buf), "; app: warming four"));
        /* Once only: a later text of the serving generation wins. */
        results_app_status(&r, 4, "serving four");
        results_app_serves(&r, 4);
        ck_assert(strstr(results_status_line(&r, 4, 40, buf, sizeof buf), "; app: serving four"));
        /* A generation's own text after its candidate text wins at the
         * commit too (a next handoff's, between READY=1 and the takeover). */
        results_candidate_status(&r, 6, "ready six");
        results_app_status(&r, 6, "later six");
        results_app_serves(&r, 6);
        ck_assert(strstr(results_status_line(&r, 6, 60, buf, sizeof buf), "; app: later six"));
}
END_TEST

START_TEST(test_failures) {
        Results r = {};
        char buf[512];
        results_begin(&r);
        results_failed(&r, 4, "exited with status 3");
        results_rolled_back(&r);
        ck_assert_uint_eq(r.reloads_failed, 1);
        ck_assert_str_eq(results_reply(&r, END_SERVING, buf, sizeof buf),
                         "FAIL reload failed: generation 4 failed: exited with status 3");
        ck_assert_str_eq(results_reply(&r, END_STOPPING, buf, sizeof buf),
                         "FAIL generation 4 failed: exited with status 3; the service is stopping");
        /* The next handoff's own words are kept when they name the generation. */
        results_failed_text(&r, 5, "generation 5 failed: not ready within 1s");
        ck_assert_str_eq(r.last_result, "generation 5 failed: not ready within 1s");
        results_failed_text(&r, 6, "next handoff (pid 7) exited");
        ck_assert_str_eq(r.last_result, "generation 6 failed: next handoff (pid 7) exited");
        ck_assert(strncmp(results_reply(&r, END_GAVE_UP, buf, sizeof buf), "FAIL generation 6 failed", 24) == 0);
        results_done(&r);
}
END_TEST

/* The app's status is cut to 255 bytes, between characters: systemd drops
 * a STATUS= that is not valid UTF-8. */
START_TEST(test_app_status_cut_between_characters) {
        Results r = {};
        char text[400], buf[1024];
        memset(text, 'x', 254);
        strcpy(text + 254, "\xe2\x82\xac and more"); /* "€" at bytes 254-256 */
        results_app_status(&r, 1, text);
        ck_assert_uint_eq(strlen(r.app_status), 254);
        ck_assert(strspn(r.app_status, "x") == 254);
        memset(text, 'x', 252);
        strcpy(text + 252, "\xe2\x82\xac and more"); /* ends at byte 255: kept */
        results_app_status(&r, 1, text);
        ck_assert_uint_eq(strlen(r.app_status), 255);
        ck_assert(strstr(results_status_line(&r, 1, 10, buf, sizeof buf), "x\xe2\x82\xac"));
        results_done(&r);
}
END_TEST

/* A failure's cause is kept whole up to RESULTS_CAUSE_MAX bytes (a long path
 * and an errno: it was cut at 140), in the reply and STATUS= too; one longer
 * still is cut between characters. */
START_TEST(test_long_cause_kept_whole) {
        Results r = {}, copy = {};
        char cause[RESULTS_CAUSE_MAX + 16], buf[RESULTS_REPLY_MAX], line[2048];
        memset(cause, 'p', 400);
        strcpy(cause + 400, ": Operation not permitted");
        results_begin(&r);
        results_failed(&r, 2, cause);
        ck_assert(strstr(r.last_result, cause));
        ck_assert(strstr(results_reply(&r, END_SERVING, buf, sizeof buf), cause));
        ck_assert(strstr(results_reply(&r, END_STOPPING, buf, sizeof buf), "permitted; the service is stopping"));
        ck_assert(strstr(results_reply(&r, END_GAVE_UP, buf, sizeof buf), "permitted; this handoff gave up"));
        ck_assert(strstr(results_status_line(&r, 1, 10, line, sizeof line), cause));
        /* As the next handoff's words ("generation 2 failed: ..."). */
        results_copy(&copy, &r);
        results_failed_text(&r, 3, "x");
        results_failed_text(&r, 2, copy.last_result);
        ck_assert_str_eq(r.last_result, copy.last_result);
        /* Too long: cut between characters. */
        memset(cause, 'y', RESULTS_CAUSE_MAX - 1);
        strcpy(cause + RESULTS_CAUSE_MAX - 1, "\xc3\xa9");
        results_failed(&r, 2, cause);
        ck_assert_uint_eq(strlen(r.last_result), strlen("generation 2 failed: ") + RESULTS_CAUSE_MAX - 1);
        /* The copy is its own. */
        ck_assert(strstr(copy.last_result, ": Operation not permitted"));
        results_done(&copy);
        results_done(&r);
        ck_assert_ptr_null(r.last_result);
}
END_TEST

/* A reload overtaken by a stop did not fail (systemctl stop during a
 * reload must not leave the unit "failed"). */
START_TEST(test_overtaken_by_stop_is_not_a_failure) {
        Results r = {};
        char buf[512];
        results_begin(&r);
        ck_assert(strncmp(results_reply(&r, END_STOPPING, buf, sizeof buf), "OK ", 3) == 0);
        ck_assert(strstr(buf, "overtaken by the stop"));
        /* A failure of an earlier reload does not count against this one. */
        results_failed(&r, 2, "exited with status 1");
        results_begin(&r);
        ck_assert(strncmp(results_reply(&r, END_STOPPING, buf, sizeof buf), "OK ", 3) == 0);
        results_done(&r);
}
END_TEST

/* A next handoff that gives up before it took over says only that: its
 * predecessor may serve on (it aborted the handover), or be dead (killed
 * before it named it main: then the service ends). */
START_TEST(test_gave_up_claims_no_predecessor) {
        Results r = {};
        char buf[512];
        results_begin(&r);
        ck_assert_str_eq(results_reply(&r, END_GAVE_UP, buf, sizeof buf),
                         "FAIL this handoff gave up before it took over");
        results_failed(&r, 2, "exited with status 1");
        ck_assert_str_eq(results_reply(&r, END_GAVE_UP, buf, sizeof buf),
                         "FAIL generation 2 failed: exited with status 1; this handoff gave up before it took over");
        results_done(&r);
}
END_TEST

/* What "handoff status --json" shows as last_reload. */
START_TEST(test_last_reload_stamps) {
        Results r = {};
        ck_assert_uint_eq(r.last_ended, 0);
        results_begin(&r); /* the first start: no reload */
        ck_assert_uint_gt(r.began, 0);
        results_begin(&r);
        results_ok(&r, 2, 20, 120 * USEC_PER_MSEC, 0);
        ck_assert_uint_eq(r.last_gen, 2);
        ck_assert(r.last_gen_ok);
        ck_assert_uint_eq(r.last_took, 120 * USEC_PER_MSEC);
        ck_assert_uint_ge(r.last_ended, r.began);
        usec_t ok_ended = r.last_ended;
        results_begin(&r);
        results_failed(&r, 3, "exited with status 3");
        /* Not ended until rolled back (a stop may overtake it). */
        ck_assert_uint_eq(r.last_gen, 2);
        results_rolled_back(&r);
        ck_assert_uint_eq(r.last_gen, 3);
        ck_assert(!r.last_gen_ok);
        ck_assert_uint_ge(r.last_ended, ok_ended);
        ck_assert_uint_le(r.last_took, r.last_ended - r.began);
        results_done(&r);
}
END_TEST

int main(void) {
        Suite *s = suite_create("results");
        TCase *tc = tcase_create("results");
        tcase_add_test(tc, test_ok_and_status_line);
        tcase_add_test(tc, test_candidate_status);
        tcase_add_test(tc, test_failures);
        tcase_add_test(tc, test_app_status_cut_between_characters);
        tcase_add_test(tc, test_long_cause_kept_whole);
        tcase_add_test(tc, test_overtaken_by_stop_is_not_a_failure);
        tcase_add_test(tc, test_gave_up_claims_no_predecessor);
        tcase_add_test(tc, test_last_reload_stamps);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
