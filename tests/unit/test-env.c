/* SPDX-License-Identifier: MIT */
/* env.c: the environment a generation gets. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "util.h"
#include "unit.h"

/* How many entries of l are exactly "NAME=..." for this NAME. */
static size_t count_var(char *const *l, const char *name) {
        size_t n = 0, k = strlen(name);
        for (; l && *l; l++)
                if (strncmp(*l, name, k) == 0 && (*l)[k] == '=')
                        n++;
        return n;
}

static const char *get_var(char *const *l, const char *name) {
        size_t k = strlen(name);
        for (; l && *l; l++)
                if (strncmp(*l, name, k) == 0 && (*l)[k] == '=')
                        return *l + k + 1;
        return NULL;
}

static bool contains(char *const *l, const char *entry) {
        for (; l && *l; l++)
                if (strcmp(*l, entry) == 0)
                        return true;
        return false;
}

static const char *const scrubbed_names[] = {
        "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "LISTEN_PIDFDID", "NOTIFY_SOCKET", "WATCHDOG_USEC",
        "WATCHDOG_PID", "SYSTEMD_EXEC_PID", "FDSTORE", "HANDOFF_GENERATION", "MAINPID", "MANAGERPID",
        /* between an old handoff and the next one */
        "HANDOFF_CONTROL_FD", "HANDOFF_STATS", "HANDOFF_ENVIRONMENT_KEYS",
};

START_TEST(test_is_scrubbed) {
        char entry[128];
        for (size_t i = 0; i < sizeof scrubbed_names / sizeof scrubbed_names[0]; i++) {
                snprintf(entry, sizeof entry, "%s=1", scrubbed_names[i]);
                ck_assert_msg(env_is_scrubbed(entry), "%s not scrubbed", entry);
                snprintf(entry, sizeof entry, "%s=", scrubbed_names[i]);
                ck_assert_msg(env_is_scrubbed(entry), "%s not scrubbed", entry);
                ck_assert_msg(env_is_scrubbed(scrubbed_names[i]), "bare %s not scrubbed", scrubbed_names[i]);
        }
        /* Whole names only. */
        ck_assert(!env_is_scrubbed("LISTEN_FDSX=1"));
        ck_assert(!env_is_scrubbed("XLISTEN_FDS=1"));
        ck_assert(!env_is_scrubbed("LISTEN_FD=1"));
        ck_assert(!env_is_scrubbed("LISTEN=1"));
        ck_assert(!env_is_scrubbed("NOTIFY_SOCKETS=1"));
        ck_assert(!env_is_scrubbed("listen_fds=1"));
        ck_assert(!env_is_scrubbed("PATH=/bin"));
        ck_assert(!env_is_scrubbed("HOME=/root"));
        ck_assert(!env_is_scrubbed("WATCHDOG=1"));
        ck_assert(!env_is_scrubbed(""));
        ck_assert(!env_is_scrubbed("=LISTEN_FDS"));
        /* The value does not matter, only the name. */
        ck_assert(!env_is_scrubbed("FOO=LISTEN_FDS"));
}
END_TEST

static char *const parent_env[] = {
        (char *) "PATH=/usr/bin:/bin",
        (char *) "LISTEN_FDS=3",
        (char *) "HOME=/home/x",
        (char *) "LISTEN_PID=1234",
        (char *) "LISTEN_FDNAMES=a:b:c",
        (char *) "LISTEN_PIDFDID=99",
        (char *) "NOTIFY_SOCKET=/run/systemd/notify",
        (char *) "WATCHDOG_USEC=1000000",
        (char *) "WATCHDOG_PID=1234",
        (char *) "SYSTEMD_EXEC_PID=1234",
        (char *) "FDSTORE=1",
        (char *) "HANDOFF_GENERATION=41",
        (char *) "LISTEN_FDSX=1",
        (char *) "LANG=C.UTF-8",
        (char *) "EMPTY=",
        (char *) "WITH_EQUALS=a=b",
        NULL,
};

START_TEST(test_build_scrubs_and_adds) {
        EnvParams p = {
                .n_fds = 2,
                .fdnames = "web:admin",
                .notify_socket = "@handoff/1/abc",
                .generation = 7,
                .watchdog_usec = 0,
        };
        char **l = NULL, *listen_pid = NULL, *watchdog_pid = (char *) "poison";
        ck_assert_int_eq(env_build(parent_env, &p, &l, &listen_pid, &watchdog_pid), 0);
        ck_assert_ptr_nonnull(l);

        /* Kept, unchanged. */
        ck_assert(contains(l, "PATH=/usr/bin:/bin"));
        ck_assert(contains(l, "HOME=/home/x"));
        ck_assert(contains(l, "LANG=C.UTF-8"));
        ck_assert(contains(l, "LISTEN_FDSX=1"));
        ck_assert(contains(l, "EMPTY="));
        ck_assert(contains(l, "WITH_EQUALS=a=b"));

        /* Scrubbed, or replaced by exactly one of ours. */
        ck_assert_uint_eq(count_var(l, "LISTEN_FDS"), 1);
        ck_assert_str_eq(get_var(l, "LISTEN_FDS"), "2");
        ck_assert_uint_eq(count_var(l, "LISTEN_FDNAMES"), 1);
        ck_assert_str_eq(get_var(l, "LISTEN_FDNAMES"), "web:admin");
        ck_assert_uint_eq(count_var(l, "LISTEN_PID"), 1);
        ck_assert_str_eq(get_var(l, "LISTEN_PID"), ENV_PID_PLACEHOLDER);
        ck_assert_uint_eq(count_var(l, "NOTIFY_SOCKET"), 1);
        ck_assert_str_eq(get_var(l, "NOTIFY_SOCKET"), "@handoff/1/abc");
        ck_assert_uint_eq(count_var(l, "HANDOFF_GENERATION"), 1);
        ck_assert_str_eq(get_var(l, "HANDOFF_GENERATION"), "7");
        ck_assert_uint_eq(count_var(l, "LISTEN_PIDFDID"), 0);
        ck_assert_uint_eq(count_var(l, "WATCHDOG_USEC"), 0);
        ck_assert_uint_eq(count_var(l, "WATCHDOG_PID"), 0);
        ck_assert_uint_eq(count_var(l, "SYSTEMD_EXEC_PID"), 0);
        ck_assert_uint_eq(count_var(l, "FDSTORE"), 0);

        /* 6 kept from the parent + 5 of ours, nothing else. */
        ck_assert_uint_eq(strv_length(l), 11);

        /* listen_pid points at the entry inside the list. */
        bool found = false;
        for (char **e = l; *e; e++)
                found = found || *e == listen_pid;
        ck_assert_msg(found, "ret_listen_pid does not point into the list");
        ck_assert_ptr_null(watchdog_pid);

        env_fill_pid(listen_pid, 4321);
        ck_assert_str_eq(get_var(l, "LISTEN_PID"), "4321");
        free(l);
}
END_TEST

START_TEST(test_build_with_watchdog) {
        EnvParams p = {
                .n_fds = 1,
                .fdnames = "x",
                .notify_socket = "@n",
                .generation = 1,
                .watchdog_usec = 3000000,
        };
        char **l = NULL, *listen_pid = NULL, *watchdog_pid = NULL;
        ck_assert_int_eq(env_build(parent_env, &p, &l, &listen_pid, &watchdog_pid), 0);
        ck_assert_uint_eq(count_var(l, "WATCHDOG_USEC"), 1);
        ck_assert_str_eq(get_var(l, "WATCHDOG_USEC"), "3000000");
        ck_assert_uint_eq(count_var(l, "WATCHDOG_PID"), 1);
        ck_assert_ptr_nonnull(watchdog_pid);
        ck_assert_ptr_ne(watchdog_pid, listen_pid);
        ck_assert_str_eq(watchdog_pid, "WATCHDOG_PID=" ENV_PID_PLACEHOLDER);
        ck_assert_str_eq(listen_pid, "LISTEN_PID=" ENV_PID_PLACEHOLDER);
        ck_assert_uint_eq(strv_length(l), 13);

        env_fill_pid(watchdog_pid, 77);
        env_fill_pid(listen_pid, 77);
        ck_assert_str_eq(get_var(l, "WATCHDOG_PID"), "77");
        ck_assert_str_eq(get_var(l, "LISTEN_PID"), "77");
        free(l);
}
END_TEST

START_TEST(test_build_extra) {
        char *const parent[] = { (char *) "HANDOFF_CONTROL_FD=9", (char *) "HANDOFF_STATS=1 2",
                                 (char *) "KEEP=1", NULL };
        char *const extra[] = { (char *) "HANDOFF_CONTROL_FD=5", (char *) "HANDOFF_STATS=3 4", NULL };
        EnvParams p = {
                .n_fds = 2,
                .fdnames = "a:b",
                .notify_socket = "@n",
                .generation = 3,
                .extra = extra,
        };
        char **l = NULL, *listen_pid = NULL, *watchdog_pid = NULL;
        ck_assert_int_eq(env_build(parent, &p, &l, &listen_pid, &watchdog_pid), 0);
        /* The parent's copies are scrubbed, the extra ones added once. */
        ck_assert_uint_eq(count_var(l, "HANDOFF_CONTROL_FD"), 1);
        ck_assert_str_eq(get_var(l, "HANDOFF_CONTROL_FD"), "5");
        ck_assert_uint_eq(count_var(l, "HANDOFF_STATS"), 1);
        ck_assert_str_eq(get_var(l, "HANDOFF_STATS"), "3 4");
        ck_assert(contains(l, "KEEP=1"));
        ck_assert_uint_eq(strv_length(l), 1 + 5 + 2);
        ck_assert_str_eq(listen_pid, "LISTEN_PID=" ENV_PID_PLACEHOLDER);
        ck_assert_ptr_null(watchdog_pid);
        free(l);
}
END_TEST

START_TEST(test_build_empty_parent) {
        EnvParams p = { .n_fds = 0, .fdnames = "", .notify_socket = "@n", .generation = 0 };
        char **l = NULL, *listen_pid = NULL, *watchdog_pid = NULL;
        ck_assert_int_eq(env_build(NULL, &p, &l, &listen_pid, &watchdog_pid), 0);
        ck_assert_uint_eq(strv_length(l), 5);
        ck_assert_str_eq(l[0], "LISTEN_FDS=0");
        ck_assert_str_eq(get_var(l, "LISTEN_FDNAMES"), "");
        ck_assert_str_eq(get_var(l, "HANDOFF_GENERATION"), "0");
        free(l);

        char *const empty[] = { NULL };
        ck_assert_int_eq(env_build(empty, &p, &l, &listen_pid, &watchdog_pid), 0);
        ck_assert_uint_eq(strv_length(l), 5);
        free(l);
}
END_TEST

START_TEST(test_build_does_not_alias_parent) {
        char a[] = "FOO=bar";
        char *const parent[] = { a, NULL };
        EnvParams p = { .n_fds = 1, .fdnames = "x", .notify_socket = "@n", .generation = 2 };
        char **l = NULL, *listen_pid = NULL, *watchdog_pid = NULL;
        ck_assert_int_eq(env_build(parent, &p, &l, &listen_pid, &watchdog_pid), 0);
        ck_assert_ptr_ne(l[0], a);
        a[4] = 'X';
        ck_assert_str_eq(l[0], "FOO=bar");
        free(l);
}
END_TEST

static void check_fill(pid_t pid, const char *expected) {
        char entry[] = "LISTEN_PID=" ENV_PID_PLACEHOLDER;
        env_fill_pid(entry, pid);
        ck_assert_msg(strcmp(entry, expected) == 0, "env_fill_pid(%d) gave \"%s\", expected \"%s\"", (int) pid, entry,
                      expected);
}

START_TEST(test_fill_pid) {
        check_fill(1, "LISTEN_PID=1");
        check_fill(9, "LISTEN_PID=9");
        check_fill(10, "LISTEN_PID=10");
        check_fill(100, "LISTEN_PID=100");
        check_fill(4321, "LISTEN_PID=4321");
        check_fill(4194304, "LISTEN_PID=4194304"); /* PID_MAX_LIMIT */
        check_fill(2147483647, "LISTEN_PID=2147483647");
        check_fill(0, "LISTEN_PID=0");

        char w[] = "WATCHDOG_PID=" ENV_PID_PLACEHOLDER;
        env_fill_pid(w, 123);
        ck_assert_str_eq(w, "WATCHDOG_PID=123");
}
END_TEST

START_TEST(test_fill_pid_never_overflows) {
        /* A placeholder too short for the number is left alone. */
        char small[] = "LISTEN_PID=000\0guard";
        env_fill_pid(small, 12345);
        ck_assert_str_eq(small, "LISTEN_PID=000");
        ck_assert_str_eq(small + sizeof "LISTEN_PID=000", "guard");

        char fits[] = "LISTEN_PID=000\0guard";
        env_fill_pid(fits, 123);
        ck_assert_str_eq(fits, "LISTEN_PID=123");
        ck_assert_str_eq(fits + sizeof "LISTEN_PID=000", "guard");

        char none[] = "LISTEN_PID";
        env_fill_pid(none, 5);
        ck_assert_str_eq(none, "LISTEN_PID");
}
END_TEST

/* --environment-file: the files' variables replace the parent's, and the
 * names they had at their first read are left out of the parent's. */
START_TEST(test_build_environment_files) {
        char *const parent[] = {
                (char *) "PATH=/bin", (char *) "A=old", (char *) "REMOVED=old", (char *) "UNIT_ONLY=1",
                (char *) "AB=not-A", NULL,
        };
        char *const files[] = { (char *) "A=new", (char *) "ADDED=x", NULL };
        EnvParams p = {
                .n_fds = 1,
                .environment = files,
                .drop = ":A:REMOVED",
        };
        char **l = NULL, *listen_pid = NULL, *watchdog_pid = NULL;
        ck_assert_int_eq(env_build(parent, &p, &l, &listen_pid, &watchdog_pid), 0);
        ck_assert_uint_eq(count_var(l, "A"), 1);
        ck_assert_str_eq(get_var(l, "A"), "new");
        ck_assert_str_eq(get_var(l, "ADDED"), "x");
        ck_assert_uint_eq(count_var(l, "REMOVED"), 0);
        ck_assert_str_eq(get_var(l, "UNIT_ONLY"), "1");
        ck_assert_str_eq(get_var(l, "AB"), "not-A");
        ck_assert_str_eq(get_var(l, "PATH"), "/bin");
        ck_assert_str_eq(listen_pid, "LISTEN_PID=" ENV_PID_PLACEHOLDER);
        /* 3 kept + 2 of the files + LISTEN_FDS/FDNAMES/PID, NOTIFY_SOCKET,
         * HANDOFF_GENERATION. */
        ck_assert_uint_eq(strv_length(l), 10);
        free(l);

        /* One of ours from the files: ours wins, never twice. */
        char *const ours[] = { (char *) "NOTIFY_SOCKET=/x", NULL };
        p.environment = ours;
        p.notify_socket = "@handoff/1/x";
        ck_assert_int_eq(env_build(parent, &p, &l, &listen_pid, &watchdog_pid), 0);
        ck_assert_uint_eq(count_var(l, "NOTIFY_SOCKET"), 1);
        ck_assert_str_eq(get_var(l, "NOTIFY_SOCKET"), "@handoff/1/x");
        free(l);
}
END_TEST

START_TEST(test_names_contain) {
        ck_assert(env_names_contain(":A:BC", "A=1"));
        ck_assert(env_names_contain(":A:BC", "BC=1"));
        ck_assert(env_names_contain(":A:BC", "BC"));
        ck_assert(!env_names_contain(":A:BC", "B=1"));
        ck_assert(!env_names_contain(":A:BC", "C=1"));
        ck_assert(!env_names_contain(":A:BC", "AB=1"));
        ck_assert(!env_names_contain(":A:BC", "BCD=1"));
        ck_assert(!env_names_contain("", "A=1"));
        ck_assert(!env_names_contain(NULL, "A=1"));
}
END_TEST

static Suite *env_suite(void) {
        Suite *s = suite_create("env");
        TCase *tc = tcase_create("env");
        tcase_add_test(tc, test_is_scrubbed);
        tcase_add_test(tc, test_build_scrubs_and_adds);
        tcase_add_test(tc, test_build_with_watchdog);
        tcase_add_test(tc, test_build_extra);
        tcase_add_test(tc, test_build_empty_parent);
        tcase_add_test(tc, test_build_does_not_alias_parent);
        tcase_add_test(tc, test_build_environment_files);
        tcase_add_test(tc, test_names_contain);
        tcase_add_test(tc, test_fill_pid);
        tcase_add_test(tc, test_fill_pid_never_overflows);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(env_suite());
}
