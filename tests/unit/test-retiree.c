/* SPDX-License-Identifier: MIT */
/* Retiring a generation known only by a pidfd (retiree.c): the stop signal,
 * then SIGKILL at the drain deadline; and reading a pidfd's pid. */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "retiree.h"
#include "unit.h"
#include "util.h"

/* A child that waits for signals; with ignore_term, SIGTERM does not end
 * it. Returns once it has set up its dispositions (Check's own handlers
 * are inherited until then). */
static pid_t child(bool ignore_term) {
        int p[2];
        char c;
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                signal(SIGTERM, ignore_term ? SIG_IGN : SIG_DFL);
                sigprocmask(SIG_SETMASK, &none, NULL);
                (void) !write(p[1], "x", 1);
                for (;;)
                        pause();
        }
        close(p[1]);
        ck_assert_int_eq(read(p[0], &c, 1), 1);
        close(p[0]);
        return pid;
}

static void on_gone(void *userdata) {
        sd_event *e = userdata;
        sd_event_exit(e, 0);
}

/* Runs the retirement of a child to its end; returns how it ended. */
static int retire(bool ignore_term, usec_t drain_timeout) {
        pid_t pid = child(ignore_term);
        int pidfd = pidfd_open_pid(pid);
        ck_assert_int_ge(pidfd, 0);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Retiree *r = NULL;
        ck_assert_int_eq(retiree_start(e, pidfd, SIGTERM, drain_timeout, NULL, on_gone, e, &r), 0);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(retiree_pid(r), pid);
        ck_assert_int_eq(sd_event_loop(e), 0);
        retiree_free(r);
        sd_event_unref(e);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status));
        return WTERMSIG(status);
}

START_TEST(test_stop_signal) {
        ck_assert_int_eq(retire(false, 30 * USEC_PER_SEC), SIGTERM);
}
END_TEST

START_TEST(test_sigkill_at_the_deadline) {
        ck_assert_int_eq(retire(true, 100 * USEC_PER_MSEC), SIGKILL);
}
END_TEST

START_TEST(test_nothing_to_retire) {
        /* Exited and reaped: its pidfd says so, and there is nothing to do. */
        pid_t pid = child(false);
        int pidfd = pidfd_open_pid(pid);
        ck_assert_int_ge(pidfd, 0);
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Retiree *r = (Retiree *) 1;
        ck_assert_int_eq(retiree_start(e, pidfd, SIGTERM, USEC_INFINITY, NULL, on_gone, e, &r), 0);
        ck_assert_ptr_null(r);
        /* Not a pidfd: refused (and closed). */
        ck_assert_int_lt(retiree_start(e, eventfd(0, EFD_CLOEXEC), SIGTERM, USEC_INFINITY, NULL, on_gone, e, &r), 0);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_pidfd_get_pid) {
        pid_t pid;
        int fd = pidfd_open_pid(getpid());
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(pidfd_get_pid(fd, &pid), 0);
        ck_assert_int_eq(pid, getpid());
        close(fd);
        fd = eventfd(0, EFD_CLOEXEC);
        ck_assert_int_eq(pidfd_get_pid(fd, &pid), -EINVAL);
        close(fd);
        ck_assert_int_eq(pidfd_get_pid(-1, &pid), -ENOENT);
}
END_TEST

int main(void) {
        Suite *s = suite_create("retiree");
        TCase *tc = tcase_create("retiree");
        tcase_add_test(tc, test_stop_signal);
        tcase_add_test(tc, test_sigkill_at_the_deadline);
        tcase_add_test(tc, test_nothing_to_retire);
        tcase_add_test(tc, test_pidfd_get_pid);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
