/* SPDX-License-Identifier: MIT */
#pragma once

/* The end of every unit test's main(): run the suite, exit 0 only when
 * every check passed. */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Kills and reaps our children, and theirs as they come to us. */
static inline void unit_kill_children(void) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%d/children", (int) getpid());
        for (;;) {
                char pids[4096];
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                ssize_t n = fd < 0 ? -1 : read(fd, pids, sizeof pids - 1);
                if (fd >= 0)
                        close(fd);
                pids[n > 0 ? n : 0] = '\0';
                for (char *p = pids, *end; (end = strchr(p, ' ')); p = end + 1)
                        (void) kill((pid_t) atoi(p), SIGKILL);
                if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
                        return;
        }
}

static inline int unit_run_here(SRunner *sr) {
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* The suite runs in a child, under us as its subreaper: what its tests
 * orphan is reaped at once, as init would, and what a test that failed
 * half-way left running is killed at the end, not left behind. (The runner
 * is made before the fork and freed on both sides: LeakSanitizer looks at
 * both.) */
static inline int unit_run(Suite *s) {
        SRunner *sr = srunner_create(s);
        pid_t runner = -1;
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 || (runner = fork()) < 0)
                return unit_run_here(sr);
        if (runner == 0)
                exit(unit_run_here(sr)); /* exit(): LeakSanitizer runs in it */
        srunner_free(sr);
        int status = 0;
        for (pid_t pid; (pid = waitpid(-1, &status, 0)) != runner;)
                if (pid < 0 && errno != EINTR)
                        return EXIT_FAILURE;
        unit_kill_children();
        return WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_FAILURE;
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
