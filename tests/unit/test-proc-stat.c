/* SPDX-License-Identifier: MIT */
/* Reading /proc/PID/stat (proc-stat.c): the fields after a command name
 * that holds ")" and spaces, a zombie against a live process, a zombie
 * leader whose other threads run, and whether a process group has a
 * member that runs; the start time, which tells a process from a later
 * one given its pid, and a pidfd opened by pid and start. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc-stat.h"
#include "time-util.h"
#include "unit.h"

static void lead_a_group(void *name) {
        setpgid(0, 0);
        prctl(PR_SET_NAME, name);
}

/* A child that leads a process group of its own, named name; returns once
 * it has set up its name and group. */
static pid_t group_leader(const char *name) {
        return unit_fork_paused(lead_a_group, (void *) name);
}

/* Waits for pid, our child, to exit, and leaves it a zombie. */
static void wait_zombie(pid_t pid) {
        siginfo_t si = {};
        ck_assert_int_eq(waitid(P_PID, (id_t) pid, &si, WEXITED | WNOWAIT), 0);
        ck_assert_int_eq(si.si_pid, pid);
}

START_TEST(test_name_with_parentheses) {
        pid_t pid = group_leader(") S 1 2 (x) ");
        ProcStat s;
        ck_assert_int_eq(proc_stat_read(pid, &s), 0);
        ck_assert(s.state == 'S' || s.state == 'R');
        ck_assert_int_eq(s.pgrp, pid);
        ck_assert_int_eq(s.threads, 1);
        ck_assert(proc_stat_running(&s));
        ck_assert(!proc_stat_exiting(&s));
        ck_assert_int_eq(process_group_running(pid, NULL), 1);
        /* Its start time (field 22): not before ours, and its zombie's too. */
        ProcStat self;
        ck_assert_int_eq(proc_stat_read(getpid(), &self), 0);
        ck_assert_uint_gt(self.start_time, 0);
        ck_assert_uint_ge(s.start_time, self.start_time);
        uint64_t since = s.start_time;

        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        wait_zombie(pid);
        ck_assert_int_eq(proc_stat_read(pid, &s), 0);
        ck_assert_int_eq(s.state, 'Z');
        ck_assert_uint_eq(s.start_time, since);
        ck_assert_int_eq(s.pgrp, pid);
        ck_assert(!proc_stat_running(&s));
        ck_assert(proc_stat_exiting(&s));
        /* A member still (kill() says so), but none that runs. */
        ck_assert_int_eq(kill(-pid, 0), 0);
        ck_assert_int_eq(process_group_running(pid, NULL), 0);

        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        ck_assert_int_eq(proc_stat_read(pid, &s), -ENOENT);
        ck_assert_int_eq(process_group_running(pid, NULL), -ENOENT);
}
END_TEST

static int leader_gone[2];

static void *join_leader(void *leader) {
        (void) pthread_join(*(pthread_t *) leader, NULL);
        (void) !write(leader_gone[1], "x", 1);
        for (;;)
                pause();
        return NULL;
}

/* A leader thread that exited while another thread of it runs shows as a
 * zombie ("Zl"): it runs all the same. */
START_TEST(test_zombie_leader_with_threads_runs) {
        char c;
        ck_assert_int_eq(pipe2(leader_gone, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                setpgid(0, 0);
                static pthread_t leader, t;
                leader = pthread_self();
                if (pthread_create(&t, NULL, join_leader, &leader) != 0)
                        _exit(1);
                pthread_exit(NULL);
        }
        close(leader_gone[1]);
        ck_assert_int_eq(read(leader_gone[0], &c, 1), 1);
        close(leader_gone[0]);
        /* The join returns as the leader's exit clears its thread id, a
         * moment before it is a zombie, which no event tells: polled, to a
         * deadline. */
        ProcStat s = {};
        usec_t end = now_monotonic() + 5 * USEC_PER_SEC;
        while (proc_stat_read(pid, &s) == 0 && s.state != 'Z' && now_monotonic() < end)
                sched_yield();
        ck_assert_int_eq(s.state, 'Z');
        ck_assert_int_ge(s.threads, 2);
        ck_assert(proc_stat_running(&s));
        ck_assert_int_eq(process_group_running(pid, NULL), 1);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}
END_TEST

/* A zombie leader with a live member of its group: the group runs. */
START_TEST(test_live_member_beside_a_zombie_leader) {
        int p[2];
        pid_t member;
        /* The member, orphaned, is ours to reap (each test runs in a
         * process of its own). */
        ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                setpgid(0, 0);
                member = fork();
                if (member == 0)
                        for (;;)
                                pause();
                (void) !write(p[1], &member, sizeof member);
                _exit(0);
        }
        close(p[1]);
        ck_assert_int_eq(read(p[0], &member, sizeof member), (ssize_t) sizeof member);
        close(p[0]);
        wait_zombie(pid);
        ck_assert_int_eq(process_group_running(pid, NULL), 1);
        /* The member found running is the hint, asked first the next
         * time; once it runs no more, the walk finds none that does. */
        pid_t hint = 0;
        ck_assert_int_eq(process_group_running(pid, &hint), 1);
        ck_assert_int_eq(hint, member);
        ck_assert_int_eq(process_group_running(pid, &hint), 1);
        ck_assert_int_eq(hint, member);
        ck_assert_int_eq(kill(member, SIGKILL), 0);
        wait_zombie(member);
        ck_assert_int_eq(process_group_running(pid, &hint), 0);
        ck_assert_int_eq(hint, 0);
        /* A hint that is no member (our own pid) is not believed. */
        hint = getpid();
        ck_assert_int_eq(process_group_running(pid, &hint), 0);
        ck_assert_int_eq(hint, 0);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        ck_assert_int_eq(waitpid(member, NULL, 0), member);
}
END_TEST

/* A pidfd by pid, for a process that started by a given time
 * (CLOCK_MONOTONIC), a zombie too: not for one that started after it (the
 * pid given out again), nor for one reaped. */
START_TEST(test_pidfd_open_started_by) {
        pid_t pid = group_leader("started");
        usec_t after = now_monotonic();
        int pidfd = pidfd_open_started_by(pid, after);
        ck_assert_int_ge(pidfd, 0);
        close(pidfd);
        ck_assert_int_eq(pidfd_open_started_by(pid, 0), -ESRCH);
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        wait_zombie(pid);
        ck_assert_int_ge(pidfd = pidfd_open_started_by(pid, after), 0);
        close(pidfd);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        ck_assert_int_lt(pidfd_open_started_by(pid, after), 0);
}
END_TEST

int main(void) {
        Suite *s = suite_create("proc-stat");
        TCase *tc = tcase_create("proc-stat");
        tcase_add_test(tc, test_name_with_parentheses);
        tcase_add_test(tc, test_zombie_leader_with_threads_runs);
        tcase_add_test(tc, test_live_member_beside_a_zombie_leader);
        tcase_add_test(tc, test_pidfd_open_started_by);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
