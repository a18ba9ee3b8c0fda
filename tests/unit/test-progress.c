/* SPDX-License-Identifier: MIT */
/* A starting candidate's STATUS= lines (progress.c): one at once, then at
 * most one per PROGRESS_INTERVAL, the latest winning; a cancelled line is
 * never f.sent. With a real event loop and clock. */
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

/* Each test's loop, its record of what was sent, and the limiter on it. */
typedef struct Fixture {
        sd_event *e;
        Sent sent;
        Progress p;
} Fixture;

static void setup(Fixture *f) {
        *f = (Fixture) { 0 };
        ck_assert_int_ge(sd_event_new(&f->e), 0);
        progress_init(&f->p, f->e, record, &f->sent);
}

static void teardown(Fixture *f) {
        progress_cancel(&f->p);
        sd_event_unref(f->e);
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
        Fixture f;
        setup(&f);
        progress_update(&f.p, "Starting generation 2");
        ck_assert_uint_eq(f.sent.n, 1);
        ck_assert_str_eq(f.sent.last, "Starting generation 2");
        ck_assert_ptr_null(f.p.timer);
        teardown(&f);
}
END_TEST

START_TEST(test_latest_wins_at_the_end_of_the_interval) {
        Fixture f;
        setup(&f);
        progress_update(&f.p, "one");
        usec_t first = f.sent.at;
        progress_update(&f.p, "two");
        progress_update(&f.p, "three");
        ck_assert_uint_eq(f.sent.n, 1); /* both wait */
        ck_assert_ptr_nonnull(f.p.timer);
        run_until_sent(f.e, &f.sent, 2);
        ck_assert_str_eq(f.sent.last, "three");
        ck_assert_uint_ge(f.sent.at - first, PROGRESS_INTERVAL);
        ck_assert_ptr_null(f.p.timer);
        /* Nothing else waits: no third line, whatever the loop does. */
        ck_assert_str_eq(f.p.line, "");
        teardown(&f);
}
END_TEST

START_TEST(test_after_the_interval_at_once) {
        Fixture f;
        setup(&f);
        progress_update(&f.p, "one");
        f.p.sent -= PROGRESS_INTERVAL; /* as if the interval had passed */
        progress_update(&f.p, "two");
        ck_assert_uint_eq(f.sent.n, 2);
        ck_assert_str_eq(f.sent.last, "two");
        teardown(&f);
}
END_TEST

START_TEST(test_cancel_drops_the_waiting_line) {
        Fixture f;
        setup(&f);
        progress_update(&f.p, "one");
        progress_update(&f.p, "two");
        progress_cancel(&f.p);
        ck_assert_ptr_null(f.p.timer);
        ck_assert_str_eq(f.p.line, "");
        /* The next line after a cancel still keeps to the interval. */
        progress_update(&f.p, "three");
        ck_assert_uint_eq(f.sent.n, 1);
        run_until_sent(f.e, &f.sent, 2);
        ck_assert_str_eq(f.sent.last, "three");
        teardown(&f);
}
END_TEST

START_TEST(test_long_line_is_cut_to_fit) {
        Fixture f;
        setup(&f);
        static char line[PROGRESS_LINE_MAX * 2];
        memset(line, 'x', sizeof line - 1);
        progress_update(&f.p, line);
        ck_assert_uint_eq(f.sent.n, 1);
        ck_assert_uint_eq(strlen(f.sent.last), PROGRESS_LINE_MAX - 1);
        teardown(&f);
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
