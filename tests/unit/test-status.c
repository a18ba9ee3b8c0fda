/* SPDX-License-Identifier: MIT */
/* status.c: the whole status, of any size (issue 18: it was cut at the
 * control reply's 4088 bytes). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "util.h"
#include "unit.h"

static char names[STATUS_MAX_SOCKETS][256];

static void fill(ServiceStatus *st) {
        *st = (ServiceStatus) { .pid = 42, .version = "1", .mode = "supervise", .state = "serving",
                                .last_result = "ok \"quoted\"\n" };
        for (size_t i = 0; i < STATUS_MAX_GENS; i++)
                st->gens[st->n_gens++] = (StatusGeneration) { .number = (unsigned) i + 1, .pid = 100 + (pid_t) i,
                                                              .role = "retiring", .kill_in = USEC_INFINITY };
        for (size_t i = 0; i < STATUS_MAX_SOCKETS; i++) {
                memset(names[i], 'n', 255);
                names[i][255] = '\0';
                names[i][0] = (char) ('a' + i);
                StatusSocket *k = &st->sockets[st->n_sockets++];
                k->fd = 3 + (int) i;
                k->name = names[i];
                snprintf(k->address, sizeof k->address, "unix /run/%0100zu", i);
        }
}

START_TEST(test_alloc_json_whole) {
        ServiceStatus st;
        fill(&st);
        char small[4088];
        ck_assert_int_eq(status_format_json(&st, small, sizeof small), -ENOBUFS);

        _cleanup_free_ char *s = NULL;
        int n = status_format_alloc(&st, true, &s);
        ck_assert_int_gt(n, 4096);
        ck_assert_uint_eq(strlen(s), (size_t) n);
        ck_assert_int_eq(s[0], '{');
        ck_assert_int_eq(s[n - 1], '}');
        /* Every socket's name, and what comes after the last one. */
        for (size_t i = 0; i < STATUS_MAX_SOCKETS; i++)
                ck_assert_ptr_nonnull(strstr(s, names[i]));
        ck_assert_ptr_nonnull(strstr(s, "\"last_result\":\"ok \\\"quoted\\\"\\u000a\"}"));
        /* Exactly what a large enough buffer gives. */
        char *big = malloc((size_t) n + 1);
        ck_assert_int_eq(status_format_json(&st, big, (size_t) n + 1), n);
        ck_assert_str_eq(big, s);
        free(big);
}
END_TEST

START_TEST(test_alloc_text_whole) {
        ServiceStatus st;
        fill(&st);
        _cleanup_free_ char *s = NULL;
        int n = status_format_alloc(&st, false, &s);
        ck_assert_int_gt(n, 4096);
        ck_assert_ptr_nonnull(strstr(s, "\nreloads   0 ok, 0 failed; last: ok"));
}
END_TEST

START_TEST(test_alloc_small) {
        ServiceStatus st = { .pid = 1, .version = "1", .mode = "handover", .state = "serving" };
        _cleanup_free_ char *s = NULL;
        int n = status_format_alloc(&st, true, &s);
        ck_assert_int_gt(n, 0);
        ck_assert_str_eq(s, "{\"pid\":1,\"version\":\"1\",\"mode\":\"handover\",\"state\":\"serving\",\"handed_over_to\":0,"
                            "\"predecessor_draining\":false,\"generations\":[],\"sockets\":[],\"reloads_ok\":0,"
                            "\"reloads_failed\":0,\"last_result\":\"\"}");
}
END_TEST

static Suite *status_suite(void) {
        Suite *s = suite_create("status");
        TCase *tc = tcase_create("format");
        tcase_add_test(tc, test_alloc_json_whole);
        tcase_add_test(tc, test_alloc_text_whole);
        tcase_add_test(tc, test_alloc_small);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(status_suite());
}
