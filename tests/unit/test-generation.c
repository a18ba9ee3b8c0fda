/* SPDX-License-Identifier: MIT */
/* How log lines name a generation (generation.c): the command, shortened. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "generation.h"
#include "unit.h"

static const char *summary(char *const *argv) {
        static char buf[GENERATION_COMMAND_MAX + 8];
        memset(buf, 'Z', sizeof buf);
        generation_command_summary(argv, buf, sizeof buf);
        return buf;
}

#define SUMMARY(...) summary((char *const[]) { __VA_ARGS__, NULL })

START_TEST(test_short_commands_whole) {
        ck_assert_str_eq(SUMMARY("/usr/bin/gunicorn", "app:app"), "gunicorn app:app");
        ck_assert_str_eq(SUMMARY("node"), "node");
        ck_assert_str_eq(SUMMARY("./server", "-p", "80"), "server -p 80");
        /* A trailing slash leaves argv[0] as it is rather than empty. */
        ck_assert_str_eq(SUMMARY("/weird/"), "/weird/");
}
END_TEST

START_TEST(test_long_commands_cut_at_an_argument) {
        const char *s = SUMMARY("/usr/bin/uwsgi", "--plugin", "python3", "--master", "--workers", "2", "--protocol",
                                "http");
        ck_assert_str_eq(s, "uwsgi --plugin python3 --master …");
        ck_assert_uint_le(strlen(s), GENERATION_COMMAND_MAX + strlen("…"));
        /* One argument longer than the limit: cut inside it. */
        char longarg[100];
        memset(longarg, 'a', sizeof longarg - 1);
        longarg[sizeof longarg - 1] = '\0';
        s = SUMMARY("sh", longarg);
        ck_assert_uint_eq(strlen(s), GENERATION_COMMAND_MAX + strlen("…"));
        ck_assert(strncmp(s, "sh aaaa", 7) == 0);
        ck_assert_str_eq(s + GENERATION_COMMAND_MAX, "…");
        /* And an argv[0] longer than the limit. */
        s = SUMMARY(longarg);
        ck_assert_uint_eq(strlen(s), GENERATION_COMMAND_MAX + strlen("…"));
}
END_TEST

START_TEST(test_one_line) {
        ck_assert_str_eq(SUMMARY("sh", "-c", "a\nb\tc"), "sh -c a?b?c");
}
END_TEST

START_TEST(test_small_buffers) {
        char buf[4] = "xyz";
        generation_command_summary((char *const[]) { "gunicorn", NULL }, buf, sizeof buf);
        ck_assert_str_eq(buf, "");
        char nine[9];
        generation_command_summary((char *const[]) { "gunicorn", NULL }, nine, sizeof nine);
        ck_assert_str_eq(nine, "gunic…");
        generation_command_summary((char *const[]) { "gunicorn", NULL }, nine, 0); /* no write */
}
END_TEST

int main(void) {
        Suite *s = suite_create("generation");
        TCase *tc = tcase_create("describe");
        tcase_add_test(tc, test_short_commands_whole);
        tcase_add_test(tc, test_long_commands_cut_at_an_argument);
        tcase_add_test(tc, test_one_line);
        tcase_add_test(tc, test_small_buffers);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
