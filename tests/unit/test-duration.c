/* SPDX-License-Identifier: MIT */
/* parse_duration() and format_duration() from time-util.c. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "event-util.h"
#include "time-util.h"
#include "unit.h"

#define MSEC USEC_PER_MSEC
#define SEC USEC_PER_SEC
#define MIN (60 * USEC_PER_SEC)
#define HOUR (3600 * USEC_PER_SEC)
#define DAY (86400 * USEC_PER_SEC)

static void assert_parses(const char *s, usec_t expected) {
        usec_t u = 12345; /* poison: must be overwritten */
        int r = parse_duration(s, &u);
        ck_assert_msg(r == 0, "parse_duration(\"%s\") = %d, expected 0", s, r);
        ck_assert_msg(u == expected, "parse_duration(\"%s\") gave %llu, expected %llu", s, (unsigned long long) u,
                      (unsigned long long) expected);
}

static void assert_fails(const char *s, int expected_error) {
        usec_t u = 12345;
        int r = parse_duration(s, &u);
        ck_assert_msg(r == expected_error, "parse_duration(\"%s\") = %d, expected %d", s, r, expected_error);
        ck_assert_msg(u == 12345, "parse_duration(\"%s\") wrote the result despite failing", s);
}

START_TEST(test_parse_plain_numbers) {
        assert_parses("0", 0);
        assert_parses("90", 90 * SEC);          /* a bare number is seconds */
        assert_parses("1", SEC);
        assert_parses("  30", 30 * SEC);        /* leading blanks */
        assert_parses("30  ", 30 * SEC);        /* trailing blanks */
}
END_TEST

START_TEST(test_parse_units) {
        assert_parses("500ms", 500 * MSEC);
        assert_parses("500msec", 500 * MSEC);
        assert_parses("7us", 7);
        assert_parses("7usec", 7);
        assert_parses("7µs", 7);
        assert_parses("3s", 3 * SEC);
        assert_parses("3sec", 3 * SEC);
        assert_parses("3second", 3 * SEC);
        assert_parses("3seconds", 3 * SEC);
        assert_parses("2m", 2 * MIN);
        assert_parses("2min", 2 * MIN);
        assert_parses("2minute", 2 * MIN);
        assert_parses("2minutes", 2 * MIN);
        assert_parses("1h", HOUR);
        assert_parses("1hr", HOUR);
        assert_parses("1hour", HOUR);
        assert_parses("2hours", 2 * HOUR);
        assert_parses("1d", DAY);
        assert_parses("1day", DAY);
        assert_parses("2days", 2 * DAY);
        assert_parses("30 s", 30 * SEC);        /* blank between number and unit */
        assert_parses("0ms", 0);
}
END_TEST

START_TEST(test_parse_compound) {
        assert_parses("2min 30s", 2 * MIN + 30 * SEC);
        assert_parses("2min30s", 2 * MIN + 30 * SEC);
        assert_parses("1h 2min 3s 4ms 5us", HOUR + 2 * MIN + 3 * SEC + 4 * MSEC + 5);
        assert_parses("1s 500ms", 1500 * MSEC);
}
END_TEST

START_TEST(test_parse_fractions) {
        assert_parses("1.5s", 1500 * MSEC);
        assert_parses("1.5", 1500 * MSEC);      /* seconds */
        assert_parses("0.25s", 250 * MSEC);
        assert_parses("2.5ms", 2500);
        assert_parses("1.5h", HOUR + 30 * MIN);
        assert_parses("0.5d", 12 * HOUR);
        assert_parses("0.000001s", 1);
        assert_parses("0.0000001s", 0);         /* below the resolution */
        assert_parses("1.0000000001s", SEC);    /* digits past the 9th are ignored */
}
END_TEST

START_TEST(test_parse_fraction_of_large_unit) {
        /* 0.999999999 days = 86399.999913600 s. frac * mult must not
         * overflow 64 bits on the way (999999999 * 86400000000 > 2^64). */
        assert_parses("0.999999999d", 86399999913ULL);
        assert_parses("0.5days", 12 * HOUR);
        assert_parses("0.999999999h", 3599999996ULL);
}
END_TEST

START_TEST(test_parse_infinity) {
        assert_parses("infinity", USEC_INFINITY);
        assert_parses("  infinity", USEC_INFINITY);
        assert_parses("infinity  ", USEC_INFINITY); /* trailing blanks, as systemd's parse_time() */
        assert_parses(" infinity\t", USEC_INFINITY);
}
END_TEST

/* What systemd's parse_time() takes beyond the units handoff writes: a
 * fraction without its whole number, and the units of format_timespan()
 * (systemctl show prints "1w 2d", "1month"). */
START_TEST(test_parse_as_systemd) {
        assert_parses(".5s", 500 * MSEC);
        assert_parses(".25", 250 * MSEC);
        assert_parses("1min .5s", MIN + 500 * MSEC);
        assert_parses("1w", 7 * DAY);
        assert_parses("2weeks", 14 * DAY);
        assert_parses("1week 2d", 9 * DAY);
        assert_parses("1M", 2629800 * SEC);
        assert_parses("1month", 2629800 * SEC);
        assert_parses("2months", 2 * 2629800 * SEC);
        assert_parses("1y", 31557600 * SEC);
        assert_parses("1year", 31557600 * SEC);
        assert_parses("2years", 2 * 31557600 * SEC);
        assert_parses("5\xce\xbcs", 5);       /* U+03BC, beside U+00B5 */
        assert_parses("1y 1M 1w 1d 1h 1m 1s 1ms 1us",
                      31557600 * SEC + 2629800 * SEC + 7 * DAY + DAY + HOUR + MIN + SEC + MSEC + 1);
}
END_TEST

START_TEST(test_parse_errors) {
        assert_fails("", -EINVAL);
        assert_fails("   ", -EINVAL);
        assert_fails("abc", -EINVAL);
        assert_fails("-1", -EINVAL);
        assert_fails("-1s", -EINVAL);
        assert_fails("5x", -EINVAL);
        assert_fails("5 x", -EINVAL);
        assert_fails("5sx", -EINVAL);           /* unit followed by letters */
        assert_fails("5mss", -EINVAL);
        assert_fails("1..2s", -EINVAL);
        assert_fails("1.s", -EINVAL);
        assert_fails(".s", -EINVAL);
        /* A bare fraction starts a term after a blank or a unit only, as
         * systemd's parse_time() takes "12.34 .56" and "12.34s.56" but not
         * "12.34.56". */
        assert_fails("12.34.56", -EINVAL);
        assert_fails("1.5.5s", -EINVAL);
        assert_parses("12.34 .56", 12900 * MSEC);
        assert_parses("12.34s.56", 12900 * MSEC);
        assert_fails(".", -EINVAL);
        assert_fails("infinity 5s", -EINVAL);
        assert_fails("5Months", -EINVAL);
        assert_fails("1s,2s", -EINVAL);
        assert_fails("infinityx", -EINVAL);
        assert_fails("Infinity", -EINVAL);
        assert_fails(NULL, -EINVAL);
}
END_TEST

START_TEST(test_parse_overflow) {
        assert_fails("99999999999999999999d", -ERANGE);
        assert_fails("99999999999999999999", -ERANGE);
        assert_fails("18446744073709551615us", -ERANGE);  /* UINT64_MAX is "infinity", not a number */
        assert_parses("18446744073709551614us", UINT64_MAX - 1); /* the whole number's last digits */
        assert_fails("18446744073709551616us", -ERANGE);
        assert_fails("213503982335d", -ERANGE);           /* whole * unit overflows */
        assert_fails("18446744073710s", -ERANGE);
        assert_parses("18446744073709s", 18446744073709ULL * SEC); /* just below */
        /* The whole number fits, its fraction takes it past: it wrapped
         * around to 0.448s and to 16 hours. */
        assert_fails("18446744073709.999999s", -ERANGE);
        assert_fails("213503982.999999999d", -ERANGE);
        assert_parses("18446744073709.551614s", UINT64_MAX - 1);
        assert_fails("18446744073709.551615s", -ERANGE);
        /* The sum of terms overflows, or would reach "infinity". */
        assert_fails("150000000d 150000000d", -ERANGE);
        assert_fails("18446744073709551609us 6us", -ERANGE);
        assert_parses("18446744073709551609us 5us", UINT64_MAX - 1);
}
END_TEST

static const char *fmt(usec_t u) {
        static char buf[64];
        return format_duration(buf, sizeof buf, u);
}

START_TEST(test_format_exact) {
        ck_assert_str_eq(fmt(0), "0");
        ck_assert_str_eq(fmt(999), "999us");
        ck_assert_str_eq(fmt(180 * MSEC), "180ms");
        ck_assert_str_eq(fmt(SEC), "1s");
        ck_assert_str_eq(fmt(30 * SEC), "30s");
        ck_assert_str_eq(fmt(59 * SEC), "59s");
        ck_assert_str_eq(fmt(60 * SEC), "1min");
        ck_assert_str_eq(fmt(90 * SEC), "1min 30s");
        ck_assert_str_eq(fmt(3 * MIN + 5 * SEC), "3min 5s");
        ck_assert_str_eq(fmt(HOUR), "1h");
        /* As systemd's format_timespan(..., USEC_PER_MSEC) prints them. */
        ck_assert_str_eq(fmt(1200 * MSEC), "1.200s");
        ck_assert_str_eq(fmt(350 * MSEC + 999), "350ms");
        ck_assert_str_eq(fmt(90 * SEC + 500 * MSEC), "1min 30.500s");
        ck_assert_str_eq(fmt(HOUR + 2 * MIN + 5 * SEC + 250 * MSEC + 7), "1h 2min 5.250s");
        ck_assert_str_eq(fmt(2 * DAY + 3 * HOUR), "2d 3h");
        ck_assert_str_eq(fmt(DAY + MSEC), "1d 1ms");
        ck_assert_str_eq(fmt(USEC_INFINITY), "infinity");
}
END_TEST

START_TEST(test_format_returns_buf_and_truncates) {
        char buf[4];
        ck_assert_ptr_eq(format_duration(buf, sizeof buf, 90 * SEC), buf);
        ck_assert_str_eq(buf, "1mi"); /* snprintf truncation, always terminated */
}
END_TEST

START_TEST(test_format_roundtrip) {
        /* Values format_duration represents exactly: below 1ms whole us,
         * above whole ms. */
        static const usec_t values[] = {
                0, 1, 999, MSEC, 180 * MSEC, 999 * MSEC, SEC, 1500 * MSEC, 2500 * MSEC, 10 * SEC + 1 * MSEC,
                30 * SEC, 59 * SEC + 999 * MSEC, 60 * SEC, 90 * SEC, 5 * MIN, 3 * MIN + 5 * SEC, HOUR,
                HOUR + 1 * SEC, DAY, 7 * DAY + 3 * SEC, 90 * SEC + 500 * MSEC, DAY + MSEC,
                HOUR + 2 * MIN + 5 * SEC + 250 * MSEC, USEC_INFINITY,
        };
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
                char buf[64];
                usec_t back = 0;
                format_duration(buf, sizeof buf, values[i]);
                int r = parse_duration(buf, &back);
                ck_assert_msg(r == 0, "format_duration(%llu) = \"%s\" does not parse: %d",
                              (unsigned long long) values[i], buf, r);
                ck_assert_msg(back == values[i], "\"%s\" parses to %llu, not %llu", buf, (unsigned long long) back,
                              (unsigned long long) values[i]);
        }
}
END_TEST

START_TEST(test_now_monotonic) {
        usec_t a = now_monotonic(), b = now_monotonic();
        ck_assert_uint_gt(a, 0);
        ck_assert_uint_le(a, b);
}
END_TEST

START_TEST(test_usec_add_saturates) {
        ck_assert_uint_eq(usec_add(1, 2), 3);
        ck_assert_uint_eq(usec_add(USEC_INFINITY, 1), USEC_INFINITY);
        ck_assert_uint_eq(usec_add(5 * USEC_PER_SEC, USEC_INFINITY), USEC_INFINITY);
        ck_assert_uint_eq(usec_add(USEC_INFINITY - 1, 2), USEC_INFINITY);
        ck_assert_uint_eq(usec_add(USEC_INFINITY - 2, 1), USEC_INFINITY - 1);
}
END_TEST

static int never(sd_event_source *s, uint64_t usec, void *userdata) {
        return 0;
}

START_TEST(test_event_timer_extend) {
        sd_event *e = NULL;
        sd_event_source *t = NULL;
        usec_t at, now = now_monotonic();
        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_ge(sd_event_add_time(e, &t, CLOCK_MONOTONIC, now + 10 * USEC_PER_SEC, 0, never, NULL), 0);
        /* Never sooner. */
        ck_assert_int_eq(event_timer_extend(&t, USEC_PER_SEC), 0);
        ck_assert_int_ge(sd_event_source_get_time(t, &at), 0);
        ck_assert_uint_eq(at, now + 10 * USEC_PER_SEC);
        /* Later: at least now + usec. */
        ck_assert_int_eq(event_timer_extend(&t, 20 * USEC_PER_SEC), 1);
        ck_assert_int_ge(sd_event_source_get_time(t, &at), 0);
        ck_assert_uint_ge(at, now + 20 * USEC_PER_SEC);
        /* Infinity: no deadline at all. */
        ck_assert_int_eq(event_timer_extend(&t, USEC_INFINITY), 1);
        ck_assert_ptr_null(t);
        ck_assert_int_eq(event_timer_extend(&t, USEC_PER_SEC), 0);
        sd_event_unref(e);
}
END_TEST

/* A deadline past the clock's range is none, not an error: libsystemd's
 * sd_event_add_time_relative() refuses now + usec past 64 bits. */
START_TEST(test_event_add_time_relative_saturates) {
        sd_event *e = NULL;
        sd_event_source *t = NULL;
        uint64_t at, now;
        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_ge(sd_event_now(e, CLOCK_MONOTONIC, &now), 0);
        /* Finite (584,542 years), past the clock's range from any now > 1 us. */
        usec_t huge = USEC_INFINITY - 1;
        ck_assert_int_eq(sd_event_add_time_relative(e, &t, CLOCK_MONOTONIC, huge, 0, never, NULL), -EOVERFLOW);
        t = (sd_event_source *) 1;
        ck_assert_int_eq(event_add_time_relative(e, &t, huge, 0, never, NULL), 0);
        ck_assert_ptr_null(t);
        ck_assert_int_eq(event_add_time_relative(e, &t, USEC_INFINITY, 0, never, NULL), 0);
        ck_assert_ptr_null(t);
        ck_assert_int_eq(event_add_time_relative(e, NULL, huge, 0, never, NULL), 0);
        /* Within it: armed, as sd_event_add_time_relative() would. */
        ck_assert_int_ge(event_add_time_relative(e, &t, 10 * USEC_PER_SEC, 0, never, NULL), 0);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_ge(sd_event_source_get_time(t, &at), 0);
        ck_assert_uint_ge(at, now + 10 * USEC_PER_SEC);
        ck_assert_uint_lt(at, now + 20 * USEC_PER_SEC);
        sd_event_source_unref(t);
        sd_event_unref(e);
}
END_TEST

static Suite *duration_suite(void) {
        Suite *s = suite_create("duration");
        TCase *tc = tcase_create("parse");
        tcase_add_test(tc, test_parse_plain_numbers);
        tcase_add_test(tc, test_parse_units);
        tcase_add_test(tc, test_parse_as_systemd);
        tcase_add_test(tc, test_parse_compound);
        tcase_add_test(tc, test_parse_fractions);
        tcase_add_test(tc, test_parse_fraction_of_large_unit);
        tcase_add_test(tc, test_parse_infinity);
        tcase_add_test(tc, test_parse_errors);
        tcase_add_test(tc, test_parse_overflow);
        suite_add_tcase(s, tc);

        tc = tcase_create("format");
        tcase_add_test(tc, test_format_exact);
        tcase_add_test(tc, test_format_returns_buf_and_truncates);
        tcase_add_test(tc, test_format_roundtrip);
        tcase_add_test(tc, test_now_monotonic);
        tcase_add_test(tc, test_usec_add_saturates);
        tcase_add_test(tc, test_event_timer_extend);
        tcase_add_test(tc, test_event_add_time_relative_saturates);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(duration_suite());
}
