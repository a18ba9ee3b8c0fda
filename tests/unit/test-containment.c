/* SPDX-License-Identifier: MIT */
/* Containment's pure parts: --cgroup (options.c) and what "handoff status"
 * says about each generation's processes and memory (status.c). The rest
 * (reaping, process groups, cgroups) needs processes: tests/process and
 * tests/systemd test-containment.py. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "status.h"
#include "unit.h"

static int parse(Options *o, const char *arg) {
        char *argv[] = { (char *) "handoff", (char *) arg, (char *) "--", (char *) "server", NULL };
        *o = OPTIONS_DEFAULT;
        return options_parse(4, argv, o);
}

START_TEST(test_cgroup_option) {
        Options o;
        ck_assert_int_eq(parse(&o, "--verbose"), 1);
        ck_assert_int_eq(o.cgroup, CGROUP_AUTO);
        options_done(&o);
        ck_assert_int_eq(parse(&o, "--cgroup=yes"), 1);
        ck_assert_int_eq(o.cgroup, CGROUP_YES);
        options_done(&o);
        ck_assert_int_eq(parse(&o, "--cgroup=no"), 1);
        ck_assert_int_eq(o.cgroup, CGROUP_NO);
        options_done(&o);
        ck_assert_int_eq(parse(&o, "--cgroup=maybe"), -EINVAL);
        options_done(&o);
}
END_TEST

static ServiceStatus sample(void) {
        ServiceStatus st = { .pid = 10, .version = "1", .mode = "supervise", .state = "serving", .n_gens = 2 };
        st.gens[0] = (StatusGeneration) { .number = 2, .pid = 20, .role = "serving", .age = USEC_PER_SEC,
                                          .kill_in = USEC_INFINITY, .processes = 3, .memory = 3 * 1024 * 1024 };
        st.gens[1] = (StatusGeneration) { .number = 1, .pid = 11, .role = "retiring", .age = 2 * USEC_PER_SEC,
                                          .kill_in = USEC_PER_SEC, .main_exited = true, .processes = 1,
                                          .memory = UINT64_MAX };
        return st;
}

START_TEST(test_status_text) {
        ServiceStatus st = sample();
        char buf[2048];
        ck_assert_int_gt(status_format_text(&st, buf, sizeof buf), 0);
        ck_assert_msg(strstr(buf, "serving   generation 2, pid 20, for 1s, 3 processes, 3.0 MiB\n"), "%s", buf);
        ck_assert_msg(strstr(buf, "retiring  generation 1, pid 11 (exited), for 2s, 1 process, SIGKILL in 1s\n"),
                      "%s", buf);
}
END_TEST

START_TEST(test_status_json) {
        ServiceStatus st = sample();
        char buf[2048];
        ck_assert_int_gt(status_format_json(&st, buf, sizeof buf), 0);
        ck_assert_msg(strstr(buf, "\"number\":2,\"role\":\"serving\",\"pid\":20,\"ready\":false,"
                                  "\"main_exited\":false,\"previous_handoff\":false,\"orphaned\":false,\"processes\":3,\"memory_bytes\":3145728,"), "%s", buf);
        ck_assert_msg(strstr(buf, "\"age_ms\":1000,\"kill_in_ms\":null}"), "%s", buf);
        ck_assert_msg(strstr(buf, "\"main_exited\":true,\"previous_handoff\":false,\"orphaned\":false,\"processes\":1,\"memory_bytes\":null,"), "%s", buf);
        ck_assert_msg(strstr(buf, "\"age_ms\":2000,\"kill_in_ms\":1000}"), "%s", buf);
}
END_TEST

int main(void) {
        Suite *s = suite_create("containment");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_cgroup_option);
        tcase_add_test(tc, test_status_text);
        tcase_add_test(tc, test_status_json);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
