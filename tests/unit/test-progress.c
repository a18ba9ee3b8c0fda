/* SPDX-License-Identifier: MIT */
/* A starting candidate's STATUS= lines (progress.c): one at once, then at
 * most one per PROGRESS_INTERVAL, the latest winning; a cancelled line is
 * never sent. With a real event loop and clock. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "progress.h"
#include "unit.h"

typedef struct Sent {
        unsigned n;
        char last[PROGRESS_LINE_MAX];
        usec_t at;
} Sent;

static void record(const char *line, void *userdata) {
        Sent *s = userdata;
        s->n++;
        snprintf(s->last, sizeof s->last, "%s", line);
        s->at = now_monotonic();
}

/* Runs the loop until n lines were sent, or fails after 5 s. */
static void run_until_sent(sd_event *e, const Sent *s, unsigned n) {
        usec_t deadline = now_monotonic() + 5 * USEC_PER_SEC;
        while (s->n < n) {
                ck_assert_msg(now_monotonic() < deadline, "line %u not sent within 5 s", n);
                ck_assert_int_ge(sd_event_run(e, 100 * USEC_PER_MSEC), 0);
        }
}

START_TEST(test_first_line_at_once) {
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Sent sent = { 0 };
        Progress p;
        progress_init(&p, e, record, &sent);
        progress_update(&p, "Starting generation 2");
        ck_assert_uint_eq(sent.n, 1);
        ck_assert_str_eq(sent.last, "Starting generation 2");
        ck_assert_ptr_null(p.timer);
        progress_cancel(&p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_latest_wins_at_the_end_of_the_interval) {
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Sent sent = { 0 };
        Progress p;
        progress_init(&p, e, record, &sent);
        progress_update(&p, "one");
        usec_t first = sent.at;
        progress_update(&p, "two");
        progress_update(&p, "three");
        ck_assert_uint_eq(sent.n, 1); /* both wait */
        ck_assert_ptr_nonnull(p.timer);
        run_until_sent(e, &sent, 2);
        ck_assert_str_eq(sent.last, "three");
        ck_assert_uint_ge(sent.at - first, PROGRESS_INTERVAL);
        ck_assert_ptr_null(p.timer);
        /* Nothing else waits: no third line, whatever the loop does. */
        ck_assert_str_eq(p.line, "");
        progress_cancel(&p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_after_the_interval_at_once) {
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Sent sent = { 0 };
        Progress p;
        progress_init(&p, e, record, &sent);
        progress_update(&p, "one");
        p.sent -= PROGRESS_INTERVAL; /* as if the interval had passed */
        progress_update(&p, "two");
        ck_assert_uint_eq(sent.n, 2);
        ck_assert_str_eq(sent.last, "two");
        progress_cancel(&p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_cancel_drops_the_waiting_line) {
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Sent sent = { 0 };
        Progress p;
        progress_init(&p, e, record, &sent);
        progress_update(&p, "one");
        progress_update(&p, "two");
        progress_cancel(&p);
        ck_assert_ptr_null(p.timer);
        ck_assert_str_eq(p.line, "");
        /* The next line after a cancel still keeps to the interval. */
        progress_update(&p, "three");
        ck_assert_uint_eq(sent.n, 1);
        run_until_sent(e, &sent, 2);
        ck_assert_str_eq(sent.last, "three");
        progress_cancel(&p);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_long_line_is_cut_to_fit) {
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Sent sent = { 0 };
        Progress p;
        progress_init(&p, e, record, &sent);
        static char line[PROGRESS_LINE_MAX * 2];
        memset(line, 'x', sizeof line - 1);
        progress_update(&p, line);
        ck_assert_uint_eq(sent.n, 1);
        ck_assert_uint_eq(strlen(sent.last), PROGRESS_LINE_MAX - 1);
        progress_cancel(&p);
        sd_event_unref(e);
}
END_TEST

static Suite *progress_suite(void) {
        Suite *s = suite_create("progress");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_first_line_at_once);
        tcase_add_test(tc, test_latest_wins_at_the_end_of_the_interval);
        tcase_add_test(tc, test_after_the_interval_at_once);
        tcase_add_test(tc, test_cancel_drops_the_waiting_line);
        tcase_add_test(tc, test_long_line_is_cut_to_fit);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(progress_suite());
}
