/* SPDX-License-Identifier: MIT */
/* log.c: one whole line per event, written at once; %m is the error handed
 * in, not errno; a line too long is cut and still ends; the journal's level
 * prefix only where stderr is the journal's stream; no stderr, or a full
 * non-blocking one, loses the line and stops nothing. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "unit.h"

/* stderr goes into a pipe until captured() reads it back. */
static int saved_stderr = -1, pipe_r = -1;

static void capture(void) {
        int p[2];
        /* Packet mode: each write(2) is read back by its own read(2); a
         * line (2047 bytes at most) fits in a page, the least a pipe has. */
        ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_DIRECT), 0);
        saved_stderr = dup(STDERR_FILENO);
        ck_assert_int_ge(saved_stderr, 0);
        ck_assert_int_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
        close(p[1]);
        pipe_r = p[0];
}

/* What was logged since capture(), and in how many writes (the pipe is in
 * packet mode: one read per write). */
static char *captured(int *ret_writes) {
        ck_assert_int_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
        close(saved_stderr);
        static char out[16384];
        size_t n = 0;
        int writes = 0;
        for (;;) {
                ssize_t r = read(pipe_r, out + n, sizeof out - 1 - n);
                ck_assert_int_ge(r, 0);
                if (r == 0)
                        break;
                n += (size_t) r;
                writes++;
        }
        close(pipe_r);
        out[n] = '\0';
        if (ret_writes)
                *ret_writes = writes;
        return out;
}

START_TEST(test_one_line_one_write) {
        char want[64];
        snprintf(want, sizeof want, "handoff[%d]: Generation 7 is ready.\n", (int) getpid());
        capture();
        log_info("Generation %u is ready.", 7u);
        int writes;
        const char *out = captured(&writes);
        ck_assert_str_eq(out, want);
        ck_assert_int_eq(writes, 1);
}
END_TEST

START_TEST(test_percent_m_is_the_error_handed_in) {
        char want[128];
        snprintf(want, sizeof want, "handoff[%d]: Failed to bind: %s\n", (int) getpid(), strerror(EADDRINUSE));
        capture();
        errno = ENOENT;
        int r = log_error_errno(-EADDRINUSE, "Failed to bind: %m");
        ck_assert_int_eq(errno, ENOENT);
        ck_assert_int_eq(r, -EADDRINUSE);
        ck_assert_str_eq(captured(NULL), want);
}
END_TEST

START_TEST(test_below_the_level_nothing_is_written) {
        capture();
        log_set_max_level(LOG_INFO);
        ck_assert_int_eq(log_debug_errno(EIO, "not %s", "shown"), -EIO);
        int writes;
        ck_assert_str_eq(captured(&writes), "");
        ck_assert_int_eq(writes, 0);
}
END_TEST

START_TEST(test_too_long_is_cut_and_still_one_line) {
        static char big[8192];
        memset(big, 'x', sizeof big - 1);
        capture();
        log_warning("%s", big);
        int writes;
        const char *out = captured(&writes);
        size_t len = strlen(out);
        ck_assert_int_eq(writes, 1);
        /* Prefix, message and newline in the 2047 bytes of the buffer. */
        ck_assert_uint_eq(len, 2047);
        ck_assert_int_eq(out[len - 1], '\n');
        ck_assert_ptr_eq(strchr(out, '\n'), out + len - 1);
        ck_assert_int_eq(out[len - 2], 'x');
}
END_TEST

START_TEST(test_journal_prefix_only_on_its_stream) {
        capture();
        struct stat st;
        ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
        char stream[64];
        snprintf(stream, sizeof stream, "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
        ck_assert_int_eq(setenv("JOURNAL_STREAM", stream, 1), 0);
        log_setup();
        log_notice("to the journal");
        char want[64];
        snprintf(want, sizeof want, "<%d>handoff[%d]: to the journal\n", LOG_NOTICE, (int) getpid());
        ck_assert_str_eq(captured(NULL), want);

        /* The same variable, inherited by a stderr that is something else. */
        capture();
        log_setup();
        log_notice("plain");
        snprintf(want, sizeof want, "handoff[%d]: plain\n", (int) getpid());
        ck_assert_str_eq(captured(NULL), want);
}
END_TEST

/* A server sharing handoff's stderr may have closed it or made it
 * non-blocking and let it fill: a log line is then lost, and handoff goes
 * on (a blocked write would stall the loop; the test's timeout would
 * show). */
START_TEST(test_no_stderr_or_a_full_one_does_not_stop_handoff) {
        int saved = dup(STDERR_FILENO);
        ck_assert_int_ge(saved, 0);

        close(STDERR_FILENO);
        errno = EPERM;
        ck_assert_int_eq(log_info("nowhere"), 0);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);

        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        char fill[4096];
        memset(fill, 'f', sizeof fill);
        while (write(p[1], fill, sizeof fill) > 0)
                ;
        ck_assert_int_eq(errno, EAGAIN);
        ck_assert_int_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
        errno = EPERM;
        ck_assert_int_eq(log_warning_errno(EIO, "into a full pipe: %m"), -EIO);
        ck_assert_int_eq(errno, EPERM);

        ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
        close(saved);
        close(p[0]);
        close(p[1]);
}
END_TEST

int main(void) {
        Suite *s = suite_create("log");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_one_line_one_write);
        tcase_add_test(tc, test_percent_m_is_the_error_handed_in);
        tcase_add_test(tc, test_below_the_level_nothing_is_written);
        tcase_add_test(tc, test_too_long_is_cut_and_still_one_line);
        tcase_add_test(tc, test_journal_prefix_only_on_its_stream);
        tcase_add_test(tc, test_no_stderr_or_a_full_one_does_not_stop_handoff);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
