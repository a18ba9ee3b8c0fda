/* SPDX-License-Identifier: MIT */
/* Retiring a generation known only by a pidfd (retiree.c): the stop signal,
 * then SIGKILL at the drain deadline; and reading a pidfd's pid. With a
 * cgroup, one whose cgroup.events says what the test sets: the generation
 * has ended once its main has exited and the cgroup is empty, a cgroup
 * that cannot be read is read again, and the deadline's SIGKILL goes to
 * the cgroup. This file defines the cgroup.h functions retiree.c calls,
 * so the linker takes no cgroup.c from libhandoff (the real one needs a
 * delegated cgroup: tests/systemd/test-containment.py). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "proc-stat.h"
#include "retiree.h"
#include "unit.h"
#include "util.h"

struct Cgroup {
        int populated;          /* what cgroup_populated() answers */
        unsigned reads, kills, opened;
        void (*changed)(void *userdata);
        void *userdata;
};

static Cgroup fake;

int cgroup_open_generation_of(CgroupRoot *r, pid_t pid, Cgroup **ret) {
        fake.opened++;
        *ret = &fake;
        return 0;
}
int cgroup_open_generation(CgroupRoot *r, const char *name, Cgroup **ret) {
        fake.opened++;
        *ret = strcmp(name, "gen-1") == 0 ? &fake : NULL;
        return 0;
}
int cgroup_watch(Cgroup *c, sd_event *e, void (*changed)(void *userdata), void *userdata) {
        c->changed = changed;
        c->userdata = userdata;
        return 0;
}
int cgroup_populated(Cgroup *c) {
        c->reads++;
        return c->populated;
}
void cgroup_signal(Cgroup *c, int sig) {
        if (sig == SIGKILL)
                c->kills++;
}
unsigned cgroup_count(Cgroup *c) {
        return 2;
}
uint64_t cgroup_memory(Cgroup *c) {
        return 4096;
}
const char *cgroup_path(Cgroup *c) {
        return "/sys/fs/cgroup/test/gen-1";
}
Cgroup *cgroup_free(Cgroup *c) {
        return NULL;
}

static void take_signals(void *ignore_term) {
        sigset_t none;
        sigemptyset(&none);
        signal(SIGTERM, ignore_term ? SIG_IGN : SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
}

/* A child that waits for signals; with ignore_term, SIGTERM does not end
 * it. Returns once it has set up its dispositions (Check's own handlers
 * are inherited until then). */
static pid_t child(bool ignore_term) {
        return unit_fork_paused(take_signals, ignore_term ? &ignore_term : NULL);
}

/* A pidfd of our child pid, which is then killed and reaped: its pid may
 * be anyone's from now on. */
static int reaped_with_pidfd(pid_t pid) {
        int pidfd = pidfd_open_pid(pid);
        ck_assert_int_ge(pidfd, 0);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        return pidfd;
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
        ck_assert_int_eq(retiree_start(e, RETIREE_PREVIOUS, pidfd, SIGTERM, drain_timeout, NULL, on_gone, e, &r), 0);
        ck_assert_ptr_nonnull(r);
        StatusGeneration g;
        retiree_status(r, now_monotonic(), &g);
        ck_assert_int_eq(g.pid, pid);
        ck_assert_str_eq(g.role, "retiring");
        ck_assert(g.previous_handoff);
        /* The deadline just armed: at most drain_timeout left, and not 0. */
        ck_assert(g.kill_in > 0 && g.kill_in <= drain_timeout);
        ck_assert_uint_eq(g.processes, 1);
        ck_assert_uint_eq(g.memory, UINT64_MAX);
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
        int pidfd = reaped_with_pidfd(pid);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Retiree *r = (Retiree *) 1;
        ck_assert_int_eq(retiree_start(e, RETIREE_PREVIOUS, pidfd, SIGTERM, USEC_INFINITY, NULL, on_gone, e, &r), 0);
        ck_assert_ptr_null(r);
        /* Not a pidfd: refused (and closed). */
        ck_assert_int_lt(retiree_start(e, RETIREE_PREVIOUS, eventfd(0, EFD_CLOEXEC), SIGTERM, USEC_INFINITY, NULL, on_gone, e, &r), 0);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_stop_signal_out_of_fds) {
        /* Out of fds (its pid, read from the pidfd's fdinfo, cannot be):
         * it is not watched, but it gets its stop signal all the same, as
         * retiree.h says. Not to be left serving for good. */
        pid_t pid = child(false);
        int pidfd = pidfd_open_pid(pid), watch = pidfd_open_pid(pid);
        ck_assert_int_ge(pidfd, 0);
        ck_assert_int_ge(watch, 0);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        struct rlimit low = { .rlim_cur = 64, .rlim_max = 64 };
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
        int fill[64];
        size_t n = 0;
        while (n < 64 && (fill[n] = dup(0)) >= 0)
                n++;
        ck_assert_int_eq(errno, EMFILE);
        Retiree *r = (Retiree *) 1;
        int k = retiree_start(e, RETIREE_ORPHAN, pidfd, SIGTERM, USEC_INFINITY, NULL, on_gone, e, &r);
        for (size_t i = 0; i < n; i++)
                close(fill[i]);
        ck_assert_int_eq(k, -EMFILE);
        ck_assert_ptr_null(r);
        struct pollfd p = { .fd = watch, .events = POLLIN };
        int exited = poll(&p, 1, 5000);
        (void) kill(pid, SIGKILL);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_int_eq(exited, 1);
        ck_assert(WIFSIGNALED(status));
        ck_assert_int_eq(WTERMSIG(status), SIGTERM);
        close(watch);
        sd_event_unref(e);
}
END_TEST

/* timerfd_create(), failed on demand (libsystemd's calls too: an
 * executable's symbols come first); 0: it is not. */
static int fail_timerfd;

int timerfd_create(int clockid, int flags) {
        if (fail_timerfd) {
                errno = fail_timerfd;
                return -1;
        }
        return (int) syscall(SYS_timerfd_create, clockid, flags);
}

START_TEST(test_sigkill_without_a_drain_timer) {
        /* Its drain deadline, the loop's first timer here, cannot be
         * armed: one we retire that ignores its stop signal is killed at
         * once, not left to drain (and accept) for ever. */
        pid_t pid = child(true);
        int watch = pidfd_open_pid(pid);
        ck_assert_int_ge(watch, 0);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Retiree *r = (Retiree *) 1;
        fail_timerfd = EMFILE;
        int k = retiree_start(e, RETIREE_ORPHAN, pidfd_open_pid(pid), SIGTERM, 60 * USEC_PER_SEC, NULL, on_gone, e,
                              &r);
        fail_timerfd = 0;
        ck_assert_int_eq(k, -EMFILE);
        ck_assert_ptr_null(r);
        struct pollfd p = { .fd = watch, .events = POLLIN };
        int exited = poll(&p, 1, 2000);
        (void) kill(pid, SIGKILL);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(exited == 1, "pid %d has no drain deadline and was not killed", (int) pid);
        ck_assert(WIFSIGNALED(status));
        ck_assert_int_eq(WTERMSIG(status), SIGKILL);
        close(watch);
        sd_event_unref(e);
}
END_TEST

static unsigned gone_calls;
static usec_t gone_at; /* when the last one came */

static void count_gone(void *userdata) {
        gone_calls++;
        gone_at = now_monotonic();
}

/* The time e's deadlines added now count from (a loop caches its time
 * between iterations). */
static usec_t loop_now(sd_event *e) {
        uint64_t now;
        ck_assert_int_ge(sd_event_now(e, CLOCK_MONOTONIC, &now), 0);
        return now;
}

/* The generation ended at its deadline, not before: said by when it
 * ended, not by a window in which nothing happened, as a loaded machine
 * can run the loop too late for such a window to end before the deadline. */
static void assert_ended_at(usec_t deadline) {
        ck_assert_uint_eq(gone_calls, 1);
        ck_assert_msg(gone_at >= deadline, "ended %llu us before its deadline",
                      (unsigned long long) (deadline - gone_at));
}

/* Runs the loop until *what reaches n (or, n 0, for about ms), for at most 5 s. */
static void run_until(sd_event *e, const unsigned *what, unsigned n, unsigned ms) {
        usec_t end = now_monotonic() + (n ? 5 * USEC_PER_SEC : ms * USEC_PER_MSEC);
        while ((n == 0 || *what < n) && now_monotonic() < end)
                ck_assert_int_ge(sd_event_run(e, 20 * USEC_PER_MSEC), 0);
        if (n)
                ck_assert_uint_ge(*what, n);
}

/* A retiree of pid, without a cgroup, on a new loop *ret_e, its end
 * counted in gone_calls. */
static usec_t retired_at; /* by retire_group(): its deadline counts from then */

static Retiree *retire_group(sd_event **ret_e, RetireeOf of, pid_t pid, usec_t drain_timeout) {
        ck_assert_int_ge(sd_event_new(ret_e), 0);
        gone_calls = 0;
        retired_at = loop_now(*ret_e);
        Retiree *r = NULL;
        ck_assert_int_eq(retiree_start(*ret_e, of, pidfd_open_pid(pid), SIGTERM, drain_timeout, NULL, count_gone, NULL,
                                       &r), 0);
        ck_assert_ptr_nonnull(r);
        return r;
}

/* A retiree of a child that ends on SIGTERM, in the fake cgroup, which is
 * populated; once its main has exited. */
static bool main_exited(const Retiree *r) {
        StatusGeneration g;
        retiree_status(r, now_monotonic(), &g);
        return g.main_exited;
}

static Retiree *retire_in_cgroup(sd_event *e, usec_t drain_timeout, pid_t *ret_pid) {
        static char root; /* any CgroupRoot: the fake cgroup does not look */
        fake = (Cgroup) { .populated = 1 };
        gone_calls = 0;
        pid_t pid = child(false);
        Retiree *r = NULL;
        ck_assert_int_eq(retiree_start(e, RETIREE_PREVIOUS, pidfd_open_pid(pid), SIGTERM, drain_timeout, (CgroupRoot *) &root,
                                       count_gone, NULL, &r), 0);
        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(fake.opened, 1);
        ck_assert_ptr_nonnull(fake.changed);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
        while (!main_exited(r) && gone_calls == 0)
                ck_assert_int_ge(sd_event_run(e, 100 * USEC_PER_MSEC), 0);
        *ret_pid = pid;
        return r;
}

/* Its main has exited, but the cgroup is not empty: not gone. A read that
 * fails (out of fds) is not "empty": read again, until it says so. */
START_TEST(test_cgroup_ends_the_generation) {
        sd_event *e;
        pid_t pid;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Retiree *r = retire_in_cgroup(e, 5 * USEC_PER_SEC, &pid);
        ck_assert(main_exited(r));
        ck_assert_uint_eq(gone_calls, 0);
        StatusGeneration g;
        retiree_status(r, now_monotonic(), &g);
        ck_assert_uint_eq(g.processes, 2);
        ck_assert_uint_eq(g.memory, 4096);
        fake.populated = -EMFILE;
        unsigned reads = fake.reads;
        fake.changed(fake.userdata);
        run_until(e, NULL, 0, 350);
        ck_assert_uint_eq(gone_calls, 0);
        ck_assert_uint_ge(fake.reads, reads + 3); /* read again, every 100 ms */
        fake.populated = 0;
        run_until(e, &gone_calls, 1, 0);
        ck_assert_uint_eq(fake.kills, 0);
        retiree_free(r);
        sd_event_unref(e);
}
END_TEST

/* The deadline's SIGKILL goes to the cgroup, also once the main has
 * exited; the generation has ended when the cgroup is empty. */
START_TEST(test_deadline_kills_the_cgroup) {
        sd_event *e;
        pid_t pid;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Retiree *r = retire_in_cgroup(e, 200 * USEC_PER_MSEC, &pid);
        run_until(e, &fake.kills, 1, 0);
        ck_assert_uint_eq(gone_calls, 0);
        StatusGeneration g;
        retiree_status(r, now_monotonic(), &g);
        ck_assert_uint_eq(g.kill_in, USEC_INFINITY);
        fake.populated = 0;
        fake.changed(fake.userdata);
        ck_assert_uint_eq(gone_calls, 1);
        retiree_free(r);
        sd_event_unref(e);
}
END_TEST

/* Its main exited and reaped before we look (it exits at once at the stop
 * signal its handoff sent before TAKEOVER), its workers in its cgroup: the
 * cgroup NAMED told of is held all the same, and killed at the deadline.
 * A name that is not a generation cgroup's holds nothing. */
START_TEST(test_cgroup_held_after_its_main_is_gone) {
        static char root;
        fake = (Cgroup) { .populated = 1 };
        gone_calls = 0;
        pid_t pid = child(false);
        int pidfd = reaped_with_pidfd(pid);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Retiree *r = (Retiree *) 1;
        ck_assert_int_eq(retiree_start_group(e, RETIREE_PREVIOUS, fcntl(pidfd, F_DUPFD_CLOEXEC, 3), pid, "../x", 0,
                                             200 * USEC_PER_MSEC, (CgroupRoot *) &root, count_gone, NULL, &r), 0);
        ck_assert_ptr_null(r);
        ck_assert_int_eq(retiree_start_group(e, RETIREE_PREVIOUS, pidfd, pid, "gen-1", 0, 200 * USEC_PER_MSEC,
                                             (CgroupRoot *) &root, count_gone, NULL, &r), 0);
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_nonnull(fake.changed);
        StatusGeneration g;
        retiree_status(r, now_monotonic(), &g);
        ck_assert_uint_eq(g.processes, 2);
        run_until(e, &fake.kills, 1, 0);
        ck_assert_uint_eq(gone_calls, 0);
        fake.populated = 0;
        fake.changed(fake.userdata);
        ck_assert_uint_eq(gone_calls, 1);
        retiree_free(r);
        sd_event_unref(e);
}
END_TEST

/* A main in a process group of its own (as spawn.c makes a generation's)
 * with a worker in it that ignores SIGTERM unless worker_ends_on_term; with
 * main_ignores_term the main ignores it too. Returns the main's pid, the
 * worker's in *ret_worker, once both have set up their dispositions. */
static pid_t group_of(bool main_ignores_term, bool worker_ends_on_term, pid_t *ret_worker) {
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                setpgid(0, 0);
                pid_t w = fork();
                if (w == 0) {
                        signal(SIGTERM, worker_ends_on_term ? SIG_DFL : SIG_IGN);
                        sigprocmask(SIG_SETMASK, &none, NULL);
                        /* Its own word: a signal before this would find
                         * the test runner's handler. */
                        w = getpid();
                        (void) !write(p[1], &w, sizeof w);
                        for (;;)
                                pause();
                }
                signal(SIGTERM, main_ignores_term ? SIG_IGN : SIG_DFL);
                sigprocmask(SIG_SETMASK, &none, NULL);
                (void) !write(p[1], &w, sizeof w);
                for (;;)
                        pause();
        }
        close(p[1]);
        /* The worker's pid twice: from the main and from the worker, each
         * once its dispositions are set. */
        pid_t said[2];
        for (int i = 0; i < 2; i++)
                ck_assert_int_eq(read(p[0], &said[i], sizeof said[i]), (ssize_t) sizeof said[i]);
        ck_assert_int_eq(said[0], said[1]);
        *ret_worker = said[0];
        close(p[0]);
        return pid;
}

static pid_t group_with_worker(bool main_ignores_term, pid_t *ret_worker) {
        return group_of(main_ignores_term, false, ret_worker);
}

/* A dead next handoff's generation without a cgroup: its main exits at
 * SIGTERM and leaves a worker in its process group that ignores it. The
 * generation has not ended with its main: the deadline's SIGKILL goes to
 * the group, and it has ended then. */
START_TEST(test_orphan_process_group_held_to_the_deadline) {
        pid_t worker, pid = group_with_worker(false, &worker);
        sd_event *e;
        Retiree *r = retire_group(&e, RETIREE_ORPHAN, pid, 400 * USEC_PER_MSEC);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
        /* Its main has exited; its worker runs on, and so does it, to the
         * deadline: SIGKILL to the group, and it has ended. */
        run_until(e, &gone_calls, 1, 0);
        assert_ended_at(retired_at + 400 * USEC_PER_MSEC);
        ck_assert(main_exited(r));
        usec_t end = now_monotonic() + 2 * USEC_PER_SEC;
        while (kill(-pid, 0) == 0 && now_monotonic() < end)
                usleep(10 * 1000);
        ck_assert_int_eq(kill(-pid, 0), -1);
        retiree_free(r);
        sd_event_unref(e);
}
END_TEST

/* A group_of() whose main has been killed and reaped, its worker left,
 * which ends on SIGTERM with worker_ends_on_term (ours to reap: we are a
 * subreaper); the main's pidfd in *ret_pidfd, a new loop in *ret_e. */
static pid_t group_after_its_main(bool worker_ends_on_term, pid_t *ret_worker, int *ret_pidfd, sd_event **ret_e) {
        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
        pid_t pid = group_of(false, worker_ends_on_term, ret_worker);
        *ret_pidfd = reaped_with_pidfd(pid);
        ck_assert_int_ge(sd_event_new(ret_e), 0);
        gone_calls = 0;
        return pid;
}

/* A generation a new main holds, whose main exited at the stop signal sent
 * before TAKEOVER and was reaped before the hold began, leaving a worker:
 * its process group, read at NAMED while the main led it, is held to the
 * deadline all the same. Without it, nothing was held, and the worker
 * served on for good once its handoff was killed. */
START_TEST(test_group_held_after_its_main_is_gone) {
        pid_t worker;
        int pidfd;
        sd_event *e;
        pid_t pid = group_after_its_main(false, &worker, &pidfd, &e);
        Retiree *r = NULL;
        /* Without the group: nothing to hold. */
        ck_assert_int_eq(retiree_start(e, RETIREE_PREVIOUS, fcntl(pidfd, F_DUPFD_CLOEXEC, 3), 0, 300 * USEC_PER_MSEC,
                                       NULL, count_gone, NULL, &r), 0);
        ck_assert_ptr_null(r);
        usec_t held_at = loop_now(e);
        ck_assert_int_eq(retiree_start_group(e, RETIREE_PREVIOUS, pidfd, pid, NULL, 0, 300 * USEC_PER_MSEC, NULL,
                                             count_gone, NULL, &r), 0);
        ck_assert_ptr_nonnull(r);
        /* Held to the deadline: SIGKILL to the group. */
        run_until(e, &gone_calls, 1, 0);
        assert_ended_at(held_at + 300 * USEC_PER_MSEC);
        ck_assert(main_exited(r));
        int st;
        ck_assert_int_eq(waitpid(worker, &st, 0), worker);
        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        retiree_free(r);
        sd_event_unref(e);
}
END_TEST

/* A generation a new main retires (its handoff was killed before TAKEOVER)
 * whose main has exited and been reaped already, leaving a worker it never
 * passed a stop signal to: the stop signal goes to the process group, and
 * the worker ends on it, long before the deadline. Before, only the main
 * was signalled (ESRCH), and the worker served on to the deadline. */
START_TEST(test_retired_group_after_its_main_is_gone_gets_the_stop_signal) {
        pid_t worker;
        int pidfd;
        sd_event *e;
        pid_t pid = group_after_its_main(true, &worker, &pidfd, &e);
        Retiree *r = NULL;
        ck_assert_int_eq(retiree_start_group(e, RETIREE_PREVIOUS, pidfd, pid, NULL, SIGTERM, 60 * USEC_PER_SEC, NULL,
                                             count_gone, NULL, &r), 0);
        ck_assert_ptr_nonnull(r);
        run_until(e, &gone_calls, 1, 0);
        int st;
        ck_assert_int_eq(waitpid(worker, &st, 0), worker);
        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
        retiree_free(r);
        sd_event_unref(e);
}
END_TEST

/* With a delegated cgroup but no cgroup name of the generation (an orphan's
 * APP read after its main was reaped, a NAMED from an older handoff), its
 * main reaped: its process group, as without a cgroup. A retired one gets
 * the stop signal, a held one the deadline's SIGKILL. Before, it was neither
 * retired nor held: the worker served old code on for good. */
START_TEST(test_group_after_its_main_is_gone_without_a_cgroup_name) {
        static char root;
        for (int held = 0; held < 2; held++) {
                fake = (Cgroup) {};
                pid_t worker;
                int pidfd;
                sd_event *e;
                pid_t pid = group_after_its_main(!held, &worker, &pidfd, &e);
                usec_t timeout = held ? 300 * USEC_PER_MSEC : 60 * USEC_PER_SEC, at = loop_now(e);
                Retiree *r = NULL;
                ck_assert_int_eq(retiree_start_group(e, held ? RETIREE_PREVIOUS : RETIREE_ORPHAN, pidfd, pid, NULL,
                                                     held ? 0 : SIGTERM, timeout, (CgroupRoot *) &root, count_gone,
                                                     NULL, &r), 0);
                ck_assert_ptr_nonnull(r);
                run_until(e, &gone_calls, 1, 0);
                if (held)
                        assert_ended_at(at + timeout);
                int st;
                ck_assert_int_eq(waitpid(worker, &st, 0), worker);
                ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == (held ? SIGKILL : SIGTERM));
                ck_assert_uint_eq(fake.opened, 0);
                retiree_free(r);
                sd_event_unref(e);
        }
}
END_TEST

/* A process made with the pid wanted (clone3()'s set_tid: CAP_SYS_ADMIN)
 * that leads a process group of its own and waits to be killed; -errno
 * where it cannot be made. */
static pid_t fork_with_pid(pid_t want) {
        struct clone_args args = { .exit_signal = SIGCHLD, .set_tid = (uint64_t) (uintptr_t) &want,
                                   .set_tid_size = 1 };
        long pid = syscall(SYS_clone3, &args, sizeof args);
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Not the test runner's handler: SIGTERM ends it. */
                signal(SIGTERM, SIG_DFL);
                setpgid(0, 0);
                for (;;)
                        pause();
        }
        return (pid_t) pid;
}

/* A generation whose main has been reaped and whose group has emptied,
 * after which another process got the main's pid and made it a process
 * group's id (a setsid() of anyone's): that group is not the generation's,
 * and gets nothing; there is nothing to retire. Before, the "group" got the
 * stop signal, and the deadline's SIGKILL. */
START_TEST(test_group_id_come_round_again_is_not_ours) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                setpgid(0, 0);
                for (;;)
                        pause();
        }
        int pidfd = reaped_with_pidfd(pid);
        pid_t stranger = fork_with_pid(pid);
        if (stranger == -EPERM || stranger == -EEXIST) {
                /* Not root, or the pid taken meanwhile: cannot be arranged. */
                printf("test_group_id_come_round_again_is_not_ours: skipped (clone3 set_tid: %s)\n",
                       strerror(-stranger));
                safe_close(pidfd);
                return;
        }
        ck_assert_int_eq(stranger, pid);
        usec_t end = now_monotonic() + 5 * USEC_PER_SEC;
        while (getpgid(stranger) != stranger && now_monotonic() < end)
                usleep(1000);
        ck_assert_int_eq(getpgid(stranger), stranger);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Retiree *r = NULL;
        ck_assert_int_eq(retiree_start_group(e, RETIREE_PREVIOUS, pidfd, pid, NULL, SIGTERM, 60 * USEC_PER_SEC, NULL,
                                             count_gone, NULL, &r), 0);
        /* A fatal signal sets the exit status as it is sent: one sent
         * before our SIGKILL shows in the status. */
        int st;
        ck_assert_int_eq(kill(stranger, SIGKILL), 0);
        ck_assert_int_eq(waitpid(stranger, &st, 0), stranger);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the stranger's group got signal %d",
                      WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        ck_assert_ptr_null(r);
        retiree_free(r);
        sd_event_unref(e);
}
END_TEST

/* A main that has exited and been reaped before its exit was dispatched,
 * with a worker left in its process group: a second stop (retiree_kill())
 * kills the group all the same, and the generation ends with it. */
START_TEST(test_kill_after_an_undispatched_exit) {
        pid_t worker, pid = group_with_worker(true, &worker);
        sd_event *e;
        Retiree *r = retire_group(&e, RETIREE_ORPHAN, pid, USEC_INFINITY);
        /* Its main exits and is reaped (by our reaper, say) before the
         * loop has looked at its pidfd; then the second stop. */
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        retiree_kill(r);
        run_until(e, &gone_calls, 1, 0);
        usec_t end = now_monotonic() + 2 * USEC_PER_SEC;
        while (kill(worker, 0) == 0 && now_monotonic() < end)
                usleep(10 * 1000);
        bool survived = kill(worker, 0) == 0;
        (void) kill(worker, SIGKILL);
        ck_assert_msg(!survived, "the worker outlived the second stop");
        retiree_free(r);
        sd_event_unref(e);
}
END_TEST

/* A main in a process group of its own, with, with_worker, a worker in it
 * that ignores SIGTERM, whose parent is a middle process that never reaps
 * it: exited, it stays a zombie, a member of its group, as an old main
 * does under an ancestor that does not reap (a handover without a service
 * manager). Returns the main's pid once it has set up its dispositions;
 * the middle's in *ret_middle, the worker's (or 0) in *ret_worker, and in
 * *ret_go the fd that tells the middle to reap the main and write its
 * status to *ret_status. */
static pid_t zombie_main(bool with_worker, pid_t *ret_middle, pid_t *ret_worker, int *ret_go, int *ret_status) {
        int ready[2], go[2], status[2];
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(status, O_CLOEXEC), 0);
        pid_t middle = fork();
        ck_assert_int_ge(middle, 0);
        if (middle == 0) {
                signal(SIGCHLD, SIG_DFL); /* not SIG_IGN: that would reap it */
                pid_t pids[2] = { fork(), 0 };
                if (pids[0] == 0) {
                        sigset_t none;
                        sigemptyset(&none);
                        setpgid(0, 0);
                        pid_t w = with_worker ? fork() : 0;
                        if (w == 0 && with_worker) {
                                signal(SIGTERM, SIG_IGN);
                                sigprocmask(SIG_SETMASK, &none, NULL);
                                for (;;)
                                        pause();
                        }
                        signal(SIGTERM, SIG_DFL);
                        sigprocmask(SIG_SETMASK, &none, NULL);
                        pids[0] = getpid();
                        pids[1] = w;
                        (void) !write(ready[1], pids, sizeof pids);
                        for (;;)
                                pause();
                }
                char c;
                int st = -1;
                if (pids[0] > 0 && read(go[0], &c, 1) == 1 && waitpid(pids[0], &st, 0) != pids[0])
                        st = -1;
                (void) !write(status[1], &st, sizeof st);
                _exit(0);
        }
        close(ready[1]);
        close(go[0]);
        close(status[1]);
        pid_t pids[2];
        ck_assert_int_eq(read(ready[0], pids, sizeof pids), (ssize_t) sizeof pids);
        close(ready[0]);
        *ret_middle = middle;
        *ret_worker = pids[1];
        *ret_go = go[1];
        *ret_status = status[0];
        return pids[0];
}

/* Has the middle reap the main; returns the main's wait status. */
static int reap_zombie_main(pid_t middle, int go, int status_fd) {
        int st;
        ck_assert_int_eq(write(go, "x", 1), 1);
        ck_assert_int_eq(read(status_fd, &st, sizeof st), (ssize_t) sizeof st);
        ck_assert_int_eq(waitpid(middle, NULL, 0), middle);
        close(go);
        close(status_fd);
        return st;
}

static bool zombie(pid_t pid) {
        ProcStat s;
        return proc_stat_read(pid, &s) == 0 && s.state == 'Z';
}

/* Its main exited at SIGTERM and nobody reaps it: its process group has
 * the zombie only, which runs nothing. The generation has ended then, well
 * before its deadline and without a SIGKILL. Before, the zombie held it to
 * its deadline (for good with --drain-timeout=infinity, until a second
 * stop). */
START_TEST(test_zombie_main_ends_the_generation) {
        pid_t middle, worker;
        int go, status_fd;
        pid_t pid = zombie_main(false, &middle, &worker, &go, &status_fd);
        sd_event *e;
        Retiree *r = retire_group(&e, RETIREE_PREVIOUS, pid, 60 * USEC_PER_SEC);
        /* Polled every 100 ms: 2 s is plenty, and well within Check's
         * timeout, which would hide what failed. */
        usec_t end = now_monotonic() + 2 * USEC_PER_SEC;
        while (gone_calls == 0 && now_monotonic() < end)
                ck_assert_int_ge(sd_event_run(e, 20 * USEC_PER_MSEC), 0);
        ck_assert_msg(gone_calls == 1, "a zombie main held its generation (main exited: %d)", main_exited(r));
        ck_assert(main_exited(r));
        /* Still there, unreaped, a member of its group. */
        ck_assert(zombie(pid));
        ck_assert_int_eq(kill(-pid, 0), 0);
        int st = reap_zombie_main(middle, go, status_fd);
        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
        retiree_free(r);
        sd_event_unref(e);
}
END_TEST

/* The same zombie main with a worker that ignores SIGTERM beside it in the
 * group: the worker runs, so the generation has not ended; the deadline's
 * SIGKILL goes to the group, and it has ended then. */
START_TEST(test_zombie_main_with_a_worker_held_to_the_deadline) {
        pid_t middle, worker;
        int go, status_fd;
        /* The worker, orphaned with its main's exit, is ours to reap (each
         * test runs in a process of its own). */
        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
        pid_t pid = zombie_main(true, &middle, &worker, &go, &status_fd);
        ck_assert_int_gt(worker, 0);
        int worker_fd = pidfd_open_pid(worker);
        ck_assert_int_ge(worker_fd, 0);
        sd_event *e;
        Retiree *r = retire_group(&e, RETIREE_ORPHAN, pid, 500 * USEC_PER_MSEC);
        while (!main_exited(r))
                ck_assert_int_ge(sd_event_run(e, 100 * USEC_PER_MSEC), 0);
        ck_assert(zombie(pid));
        /* Polled every 100 ms: each poll sees the worker run, up to the
         * deadline. */
        run_until(e, &gone_calls, 1, 0);
        assert_ended_at(retired_at + 500 * USEC_PER_MSEC);
        StatusGeneration g;
        retiree_status(r, now_monotonic(), &g);
        ck_assert_uint_eq(g.kill_in, USEC_INFINITY); /* the deadline came */
        int st;
        struct pollfd p = { .fd = worker_fd, .events = POLLIN };
        ck_assert_int_eq(poll(&p, 1, 2000), 1); /* the worker has exited */
        close(worker_fd);
        ck_assert_int_eq(waitpid(worker, &st, 0), worker);
        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        st = reap_zombie_main(middle, go, status_fd);
        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
        retiree_free(r);
        sd_event_unref(e);
}
END_TEST

/* Read syscalls this process has made (/proc/self/io), -1 when unknown. */
static long read_calls(void) {
        FILE *f = fopen("/proc/self/io", "re");
        char line[128];
        long n = -1;
        while (f && fgets(line, sizeof line, f))
                if (sscanf(line, "syscr: %ld", &n) == 1)
                        break;
        if (f)
                fclose(f);
        return n;
}

/* A drain of minutes, polled every 100 ms, while a worker runs on: each
 * poll must not walk the whole of /proc (a /proc/PID/stat read for each
 * process below the worker's pid, 50,000 of them on a big host, at every
 * poll, for as long as the generation drains): the member seen running
 * last is asked first. FILLERS processes below the group make a walk
 * cost at least that many reads. */
#define FILLERS 64
START_TEST(test_draining_group_is_polled_without_a_walk_each_time) {
        if (read_calls() < 0) {
                /* No task I/O accounting: nothing to count. */
                fprintf(stderr, "note: no syscr in /proc/self/io, a draining group's polls not counted\n");
                return;
        }
        pid_t fillers[FILLERS];
        for (size_t i = 0; i < FILLERS; i++) {
                fillers[i] = fork();
                ck_assert_int_ge(fillers[i], 0);
                if (fillers[i] == 0)
                        for (;;)
                                pause();
        }
        pid_t worker, pid = group_with_worker(false, &worker);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        gone_calls = 0;
        Retiree *r = NULL;
        ck_assert_int_eq(retiree_start(e, RETIREE_ORPHAN, pidfd_open_pid(pid), SIGTERM, 60 * USEC_PER_SEC, NULL,
                                       count_gone, NULL, &r), 0);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        while (!main_exited(r))
                ck_assert_int_ge(sd_event_run(e, 100 * USEC_PER_MSEC), 0);
        /* About ten polls, each of which sees the worker run. */
        long before = read_calls();
        run_until(e, &gone_calls, 0, 1000);
        long reads = read_calls() - before;
        ck_assert_uint_eq(gone_calls, 0);
        for (size_t i = 0; i < FILLERS; i++) {
                (void) kill(fillers[i], SIGKILL);
                (void) waitpid(fillers[i], NULL, 0);
        }
        (void) kill(worker, SIGKILL);
        ck_assert_msg(reads < FILLERS, "%ld reads in ten polls of a group whose worker runs", reads);
        retiree_free(r);
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
        /* Check's 4 s default is less than the tests' own waits (5 s in
         * run_until()), and a test that forks 64 processes and watches a
         * worker for 1 s can need more on a loaded machine. */
        tcase_set_timeout(tc, 20);
        tcase_add_test(tc, test_stop_signal);
        tcase_add_test(tc, test_sigkill_at_the_deadline);
        tcase_add_test(tc, test_nothing_to_retire);
        tcase_add_test(tc, test_stop_signal_out_of_fds);
        tcase_add_test(tc, test_sigkill_without_a_drain_timer);
        tcase_add_test(tc, test_pidfd_get_pid);
        tcase_add_test(tc, test_cgroup_ends_the_generation);
        tcase_add_test(tc, test_deadline_kills_the_cgroup);
        tcase_add_test(tc, test_cgroup_held_after_its_main_is_gone);
        tcase_add_test(tc, test_orphan_process_group_held_to_the_deadline);
        tcase_add_test(tc, test_kill_after_an_undispatched_exit);
        tcase_add_test(tc, test_group_held_after_its_main_is_gone);
        tcase_add_test(tc, test_retired_group_after_its_main_is_gone_gets_the_stop_signal);
        tcase_add_test(tc, test_group_after_its_main_is_gone_without_a_cgroup_name);
        tcase_add_test(tc, test_group_id_come_round_again_is_not_ours);
        tcase_add_test(tc, test_zombie_main_ends_the_generation);
        tcase_add_test(tc, test_zombie_main_with_a_worker_held_to_the_deadline);
        tcase_add_test(tc, test_draining_group_is_polled_without_a_walk_each_time);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
