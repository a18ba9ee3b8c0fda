/* SPDX-License-Identifier: MIT */
#pragma once

/* The end of every unit test's main(): run the suite, exit 0 only when
 * every check passed. */

#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static inline int unit_run(Suite *s) {
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* A child that runs setup(arg), then waits for signals; returns its pid
 * once setup has run (what it set up, dispositions say, holds by then). */
static inline pid_t unit_fork_paused(void (*setup)(void *), void *arg) {
        int p[2];
        char c;
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                setup(arg);
                (void) !write(p[1], "x", 1);
                for (;;)
                        pause();
        }
        close(p[1]);
        ck_assert_int_eq(read(p[0], &c, 1), 1);
        close(p[0]);
        return pid;
}
