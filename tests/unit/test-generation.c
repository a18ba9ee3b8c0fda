/* SPDX-License-Identifier: MIT */
/* How log lines name a generation (generation.c): the command, shortened;
 * a start that cannot be watched or timed fails, leaving no process; and a
 * retirement whose drain deadline cannot be armed kills at once, which
 * handoff's own loop spares it. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "event-util.h"
#include "generation.h"
#include "unit.h"

/* The loop's calls, failed on demand: these take the place of libc's for
 * libsystemd too (an executable's symbols come first). */
static int fail_timerfd; /* errno for timerfd_create(); 0: none */
static int fail_epoll_add; /* errno for epoll_ctl(EPOLL_CTL_ADD); 0: none */

int timerfd_create(int clockid, int flags) {
        if (fail_timerfd) {
                errno = fail_timerfd;
                return -1;
        }
        return (int) syscall(SYS_timerfd_create, clockid, flags);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
        if (fail_epoll_add && op == EPOLL_CTL_ADD) {
                errno = fail_epoll_add;
                return -1;
        }
        return (int) syscall(SYS_epoll_ctl, epfd, op, fd, ev);
}

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

static void no_callback(Generation *g, void *userdata) {
        ck_abort_msg("no callback runs: the loop is not run");
}

static void no_ready(Generation *g, const char *status, void *userdata) {
        no_callback(g, userdata);
}

static void no_message(Generation *g, const NotifyMessage *m, int *fds, size_t n_fds, void *userdata) {
        no_callback(g, userdata);
}

static const GenerationCallbacks callbacks = {
        .ready = no_ready, .start_timeout = no_callback, .exited = no_callback, .gone = no_callback,
        .message = no_message,
};

/* Starts generation 1 (sleep 30) in a new loop, with the failure the
 * caller set up; the start must fail, with why, and leave no child. */
static void start_fails(const char *want_why) {
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &ss, NULL), 0);
        sd_event *e;
        Reaper *reaper;
        int saved_timerfd = fail_timerfd, saved_epoll = fail_epoll_add;
        fail_timerfd = fail_epoll_add = 0;
        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_ge(reaper_new(e, &reaper), 0);
        fail_timerfd = saved_timerfd;
        fail_epoll_add = saved_epoll;

        GenerationConfig c = {
                .argv = (char *const[]) { "sleep", "30", NULL },
                .start_timeout = 5 * USEC_PER_SEC,
                .notify_socket = NOTIFY_SOCKET_ABSTRACT,
                .notify_access = NOTIFY_ACCESS_MAIN,
                .die_with_parent = true, /* should it start after all: gone with this test */
                .reaper = reaper,
        };
        Generation *g = NULL;
        int code = 0;
        char why[256] = "";
        int r = generation_start(e, &c, 1, &callbacks, NULL, &g, &code, why, sizeof why);
        fail_timerfd = fail_epoll_add = 0;
        ck_assert_msg(r < 0, "generation 1 started (pid %d) without %s", g ? (int) g->pid : 0, want_why);
        ck_assert_ptr_null(g);
        ck_assert_int_eq(code, 1);
        ck_assert_str_eq(why, want_why);
        ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
        ck_assert_int_eq(errno, ECHILD);
        reaper_free(reaper);
        sd_event_unref(e);
}

/* The first timer of a clock in a loop takes an fd (a timerfd): out of
 * fds, a generation started with no start deadline, and a reload to it
 * never ended; no READY=1 after RELOADING=1, no answer to "handoff reload". */
START_TEST(test_start_without_a_start_timer_fails) {
        fail_timerfd = EMFILE;
        start_fails("cannot arm its start timer: Too many open files");
}
END_TEST

/* The same for a generation whose READY=1 would never be read. */
START_TEST(test_start_without_a_watched_notify_socket_fails) {
        fail_epoll_add = ENOMEM;
        start_fails("cannot watch its notify socket: Cannot allocate memory");
}
END_TEST

/* Generation 1 (sleep 30), started with no start deadline in loop e (so
 * that no timer of the clock exists yet), then retired with SIGWINCH,
 * which sleep ignores, as a server that goes on draining: a stop or a
 * reload waits for its drain deadline. With fail_timerfd set, that
 * deadline is the loop's first timer and cannot be armed. */
static Generation *retired(sd_event *e, Reaper *reaper, int fail, int *ret_pidfd) {
        GenerationConfig c = {
                .argv = (char *const[]) { "sleep", "30", NULL },
                .start_timeout = USEC_INFINITY,
                .notify_socket = NOTIFY_SOCKET_ABSTRACT,
                .notify_access = NOTIFY_ACCESS_MAIN,
                .die_with_parent = true, /* gone with this test, should it fail */
                .reaper = reaper,
        };
        Generation *g = NULL;
        int code = 0;
        char why[256] = "";
        ck_assert_int_eq(generation_start(e, &c, 1, &callbacks, NULL, &g, &code, why, sizeof why), 0);
        *ret_pidfd = (int) syscall(SYS_pidfd_open, g->pid, 0);
        ck_assert_int_ge(*ret_pidfd, 0);
        fail_timerfd = fail;
        generation_retire(g, SIGWINCH, 60 * USEC_PER_SEC);
        fail_timerfd = 0;
        return g;
}

static void block_sigchld(void) {
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &ss, NULL), 0);
}

/* Out of fds for the loop's first timer of its clock (a next handoff
 * started with --start-timeout=infinity), the drain deadline could not be
 * armed, and a server that ignores its stop signal held the stop or the
 * reload for ever: it is killed at once instead. */
START_TEST(test_retire_without_a_drain_timer_kills) {
        block_sigchld();
        sd_event *e;
        Reaper *reaper;
        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_ge(reaper_new(e, &reaper), 0);
        int pidfd;
        Generation *g = retired(e, reaper, EMFILE, &pidfd);
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        ck_assert_msg(poll(&p, 1, 2000) == 1, "generation 1 (pid %d) has no drain deadline and was not killed",
                      (int) g->pid);
        siginfo_t si = {};
        ck_assert_int_eq(waitid(P_PID, (id_t) g->pid, &si, WEXITED), 0);
        ck_assert_int_eq(si.si_code, CLD_KILLED);
        ck_assert_int_eq(si.si_status, SIGKILL);
        close(pidfd);
        generation_free(g);
        reaper_free(reaper);
        sd_event_unref(e);
}
END_TEST

/* The same in a loop made as handoff makes its own (event_new()): its
 * timers need no fd, so the deadline is armed and the generation drains. */
START_TEST(test_retire_in_handoffs_loop_arms_the_drain_timer) {
        block_sigchld();
        sd_event *e;
        Reaper *reaper;
        ck_assert_int_ge(event_new(&e), 0);
        ck_assert_int_ge(reaper_new(e, &reaper), 0);
        int pidfd;
        Generation *g = retired(e, reaper, EMFILE, &pidfd);
        StatusGeneration st;
        generation_status(g, "retiring", now_monotonic(), &st);
        ck_assert_msg(st.kill_in > 50 * USEC_PER_SEC && st.kill_in <= 60 * USEC_PER_SEC,
                      "generation 1 has no drain deadline (SIGKILL in %" PRIu64 " us)", st.kill_in);
        ck_assert(!g->killed);
        generation_kill(g);
        siginfo_t si = {};
        ck_assert_int_eq(waitid(P_PID, (id_t) g->pid, &si, WEXITED), 0);
        close(pidfd);
        generation_free(g);
        reaper_free(reaper);
        sd_event_unref(e);
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
        tc = tcase_create("start");
        tcase_add_test(tc, test_start_without_a_start_timer_fails);
        tcase_add_test(tc, test_start_without_a_watched_notify_socket_fails);
        suite_add_tcase(s, tc);
        tc = tcase_create("retire");
        tcase_add_test(tc, test_retire_without_a_drain_timer_kills);
        tcase_add_test(tc, test_retire_in_handoffs_loop_arms_the_drain_timer);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
