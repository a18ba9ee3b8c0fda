/* SPDX-License-Identifier: MIT */
/* util.c: the helpers issue 18 added (fds 0-2, RLIMIT_NOFILE), and cutting
 * UTF-8 text between characters. (Closing an unwanted received fd without
 * blocking: test-close-async.c.) */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "random-util.h"
#include "util.h"
#include "unit.h"

static void assert_dev_null(int fd) {
        char link[64], target[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        ck_assert_int_gt(n, 0);
        target[n] = '\0';
        ck_assert_str_eq(target, "/dev/null");
}

START_TEST(test_std_fds_reopened) {
        /* Check runs each test in its own process: closing 0-2 is ours. */
        for (int closed = 0; closed < 8; closed++) {
                for (int fd = 0; fd <= 2; fd++)
                        if (closed & (1 << fd))
                                close(fd);
                ck_assert_int_eq(std_fds_ensure_open(), 0);
                for (int fd = 0; fd <= 2; fd++) {
                        ck_assert_int_ge(fcntl(fd, F_GETFD), 0);
                        if (closed & (1 << fd)) {
                                assert_dev_null(fd);
                                /* Inherited on purpose, like any 0-2. */
                                ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
                        }
                }
                /* The next fd opened is not one of them. */
                int k = open("/dev/null", O_RDONLY | O_CLOEXEC);
                ck_assert_int_gt(k, 2);
                close(k);
        }
}
END_TEST

START_TEST(test_rlimit_nofile_raise) {
        struct rlimit rl, orig;
        ck_assert_int_eq(rlimit_nofile_original(&orig), -ENODATA);
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_max < 2048)
                return; /* nothing to raise here */
        struct rlimit low = { .rlim_cur = 512, .rlim_max = rl.rlim_max };
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
        ck_assert_int_eq(rlimit_nofile_raise(), 0);
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        ck_assert_uint_eq(rl.rlim_cur, rl.rlim_max);
        ck_assert_int_eq(rlimit_nofile_original(&orig), 0);
        ck_assert_uint_eq(orig.rlim_cur, 512);
        ck_assert_uint_eq(orig.rlim_max, rl.rlim_max);
}
END_TEST

START_TEST(test_utf8_trim_partial) {
        /* "aé€😀": 1 + 2 + 3 + 4 bytes. */
        const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
        static const size_t want[] = { 0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10 };
        for (size_t n = 0; n <= 10; n++)
                ck_assert_uint_eq(utf8_trim_partial(s, n), want[n]);
        /* What is not UTF-8 anyway is not ours to mend. */
        ck_assert_uint_eq(utf8_trim_partial("\x80\x80", 2), 2);            /* continuation bytes alone */
        ck_assert_uint_eq(utf8_trim_partial("a\x80\x80\x80\x80", 5), 5);  /* more than a sequence has */
        ck_assert_uint_eq(utf8_trim_partial("\xc3\xa9\xa9", 3), 3);        /* too long for its first byte */
        ck_assert_uint_eq(utf8_trim_partial("a\xff", 2), 2);
        ck_assert_uint_eq(utf8_trim_partial("a\xf8\x80", 3), 3);
        ck_assert_uint_eq(utf8_trim_partial("abc", 3), 3);
}
END_TEST

/* A server's value in a log line: cut at a line end (or any control
 * character), so that it can neither end the line nor begin another. */
START_TEST(test_printable_prefix) {
        ck_assert_uint_eq(printable_prefix("5s", 32), 2);
        ck_assert_uint_eq(printable_prefix("1\nhandoff[1]: forged", 32), 1);
        ck_assert_uint_eq(printable_prefix("1\r2", 32), 1);
        ck_assert_uint_eq(printable_prefix("\x1b[31mred", 32), 0);
        ck_assert_uint_eq(printable_prefix("a\x7f", 32), 1);
        ck_assert_uint_eq(printable_prefix("0123456789", 4), 4);
        ck_assert_uint_eq(printable_prefix("\xc3\xa9t\xc3\xa9", 32), 5); /* UTF-8 is printable */
        ck_assert_uint_eq(printable_prefix("", 32), 0);
}
END_TEST

/* systemd's utf8_is_valid(): what the service manager takes for STATUS=. */
START_TEST(test_utf8_is_valid) {
        static const char *const valid[] = { "", "plain ASCII, \t and \x01 too", "caf\xc3\xa9", "\xe2\x82\xac",
                                             "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbd" /* U+10FFFD */,
                                             "\xef\xb7\x8f" /* U+FDCF */ };
        static const char *const invalid[] = {
                "caf\xe9",                     /* Latin-1 */
                "\x80", "\xc3", "\xe2\x82",    /* a continuation alone, cut sequences */
                "\xc0\xaf", "\xe0\x80\xaf",    /* overlong '/' */
                "\xed\xa0\x80",               /* U+D800, a surrogate */
                "\xef\xb7\x90",               /* U+FDD0, a noncharacter */
                "\xef\xbf\xbe", "\xf4\x8f\xbf\xbf", /* U+FFFE, U+10FFFF */
                "\xf4\x90\x80\x80",           /* past U+10FFFF */
                "\xf8\x88\x80\x80\x80",       /* 5 bytes */
                "\xff",
        };
        for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
                ck_assert_msg(utf8_is_valid(valid[i]), "valid case %zu refused", i);
        for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
                ck_assert_msg(!utf8_is_valid(invalid[i]), "invalid case %zu accepted", i);
}
END_TEST

START_TEST(test_utf8_prefix) {
        const char *s = "ab\xe2\x82\xac";
        ck_assert_uint_eq(utf8_prefix(s, 100), 5);
        ck_assert_uint_eq(utf8_prefix(s, 5), 5);
        ck_assert_uint_eq(utf8_prefix(s, 4), 2);
        ck_assert_uint_eq(utf8_prefix(s, 3), 2);
        ck_assert_uint_eq(utf8_prefix(s, 2), 2);
        ck_assert_uint_eq(utf8_prefix(s, 0), 0);
        /* Not cut: left as it is, even when it ends badly itself. */
        ck_assert_uint_eq(utf8_prefix("ab\xe2", 10), 3);
        ck_assert_uint_eq(utf8_prefix("ab\xe2", 3), 3);
        ck_assert_uint_eq(utf8_prefix("", 0), 0);
}
END_TEST

/* The reference's vectors: key 00 01 .. 0f, message 00 01 .. of 0, 8, 16
 * and 24 bytes. */
START_TEST(test_siphash24) {
        const uint64_t key[2] = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL };
        const uint64_t m[3] = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL, 0x1716151413121110ULL };
        ck_assert_uint_eq(siphash24(key, m, 0), 0x726fdb47dd0e0e31ULL);
        ck_assert_uint_eq(siphash24(key, m, 1), 0x93f5f5799a932462ULL);
        ck_assert_uint_eq(siphash24(key, m, 2), 0x3f2acc7f57c29bdbULL);
        ck_assert_uint_eq(siphash24(key, m, 3), 0xb8ad50c6f649af94ULL);
}
END_TEST

/* A child's status from its pidfd: none while it runs or waits to be
 * reaped, its wait status once it is (Linux 6.15; before, the test skips). */
START_TEST(test_pidfd_exit_status) {
        int out[2];
        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char c;
                close(out[1]);
                (void) read(out[0], &c, 1);
                _exit(3);
        }
        close(out[0]);
        int pidfd = pidfd_open_pid(pid), status = -1;
        ck_assert_int_ge(pidfd, 0);
        int r = pidfd_exit_status(pidfd, &status);
        close(out[1]); /* now it exits */
        siginfo_t si;
        ck_assert_int_eq(waitid(P_PID, (id_t) pid, &si, WEXITED | WNOWAIT), 0);
        if (r == -ENODATA) /* not reaped yet: still nothing */
                ck_assert_int_eq(pidfd_exit_status(pidfd, &status), -ENODATA);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        int after = pidfd_exit_status(pidfd, &status);
        close(pidfd);
        if (r != -ENODATA || after != 0) {
                fprintf(stderr, "test_pidfd_exit_status: no exit status from a pidfd here (%s; Linux 6.15 has it)\n",
                        strerror(-(r != -ENODATA ? r : after)));
                return;
        }
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 3);
}
END_TEST

static Suite *util_suite(void) {
        Suite *s = suite_create("util");
        TCase *tc = tcase_create("process");
        tcase_add_test(tc, test_std_fds_reopened);
        tcase_add_test(tc, test_rlimit_nofile_raise);
        tcase_add_test(tc, test_pidfd_exit_status);
        suite_add_tcase(s, tc);
        tc = tcase_create("utf8");
        tcase_add_test(tc, test_utf8_trim_partial);
        tcase_add_test(tc, test_utf8_prefix);
        tcase_add_test(tc, test_printable_prefix);
        tcase_add_test(tc, test_utf8_is_valid);
        suite_add_tcase(s, tc);
        tc = tcase_create("random");
        tcase_add_test(tc, test_siphash24);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(util_suite());
}
