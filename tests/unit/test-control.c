/* SPDX-License-Identifier: MIT */
/* One request on the control socket (control_parse_request()): the plain
 * ones, and "OUTCOME <pid> <start time>", whose two numbers are decimal
 * digits only. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "control.h"
#include "unit.h"

static int parse(const char *text, size_t len, ControlRequest *req) {
        *req = (ControlRequest) { .kind = (RequestKind) 0x5a5a };
        return control_parse_request(text, len, req);
}

#define PARSE(text, req) parse(text, sizeof text - 1, req)

START_TEST(test_plain_requests) {
        ControlRequest req;
        ck_assert_int_eq(PARSE("RELOAD", &req), 0);
        ck_assert_int_eq(req.kind, REQUEST_RELOAD);
        ck_assert_int_eq(PARSE("STATUS json\n", &req), 0);
        ck_assert_int_eq(req.kind, REQUEST_STATUS_JSON);
        ck_assert_int_eq(PARSE("JOIN", &req), 0);
        ck_assert_int_eq(req.kind, REQUEST_JOIN);
        ck_assert_int_eq(PARSE("STATUS\n\n", &req), -EBADMSG);
        ck_assert_int_eq(req.kind, (RequestKind) 0x5a5a);
}
END_TEST

START_TEST(test_outcome) {
        ControlRequest req;
        ck_assert_int_eq(PARSE("OUTCOME 1234 5678", &req), 0);
        ck_assert_int_eq(req.kind, REQUEST_OUTCOME);
        ck_assert_int_eq(req.pid, 1234);
        ck_assert_uint_eq(req.start_time, 5678);
        ck_assert_uint_eq(req.args_len, 0);
        ck_assert_int_eq(PARSE("OUTCOME 2147483647 18446744073709551615\n", &req), 0);
        ck_assert_int_eq(req.pid, 2147483647);
        ck_assert_uint_eq(req.start_time, UINT64_MAX);
        ck_assert_int_eq(PARSE("OUTCOME 1 0", &req), 0);
        ck_assert_uint_eq(req.start_time, 0);
}
END_TEST

START_TEST(test_outcome_refused) {
        static const char *const bad[] = {
                "OUTCOME ",
                "OUTCOME 1",      /* the pid alone: before the start time */
                "OUTCOME 1 ",
                "OUTCOME  1 2",
                "OUTCOME 1  2",
                "OUTCOME 1 2 ",
                "OUTCOME 1 2 3",
                "OUTCOME 0 2",
                "OUTCOME -1 2",
                "OUTCOME +1 2",
                "OUTCOME 1 +2",
                "OUTCOME 1 -2",
                "OUTCOME 1 0x2",
                "OUTCOME 2147483648 2",
                "OUTCOME 12345678901 2",
                "OUTCOME 1 18446744073709551616",
                "OUTCOME 1 000000000000000000001",
                "OUTCOME 1 2\n\n",
                "OUTCOME 1\t2",
        };
        ControlRequest req;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                ck_assert_msg(parse(bad[i], strlen(bad[i]), &req) == -EBADMSG, "\"%s\" taken", bad[i]);
                ck_assert_int_eq(req.kind, (RequestKind) 0x5a5a);
        }
        /* A NUL anywhere: the number's parser would stop at it. */
        ck_assert_int_eq(PARSE("OUTCOME 123\0", &req), -EBADMSG);
        ck_assert_int_eq(PARSE("OUTCOME 1\0 2", &req), -EBADMSG);
        ck_assert_int_eq(PARSE("OUTCOME 1 2\0", &req), -EBADMSG);
        ck_assert_int_eq(PARSE("OUTCOME 1 2\0003", &req), -EBADMSG);
}
END_TEST

int main(void) {
        Suite *s = suite_create("control");
        TCase *tc = tcase_create("parse");
        tcase_add_test(tc, test_plain_requests);
        tcase_add_test(tc, test_outcome);
        tcase_add_test(tc, test_outcome_refused);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
