/* SPDX-License-Identifier: MIT */
/* reaper.c's side of a generation that is a process group (no cgroup):
 * what it may take for the group's id once the group has emptied. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc-stat.h"
#include "reaper-unit.h"
#include "unit.h"
#include "util.h"

/* Reads one pid from fd, waiting at most 5 s. */
static pid_t read_pid(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        pid_t pid;
        ck_assert_int_eq(read(fd, &pid, sizeof pid), sizeof pid);
        return pid;
}

static void write_pid(int fd, pid_t pid) {
        if (write(fd, &pid, sizeof pid) != sizeof pid)
                _exit(1);
}

/* A child of pid want (clone3's set_tid: root only), leader of a group of
 * its own that waits for signals; -errno when it cannot be had. */
static pid_t fork_with_pid(pid_t want, int report) {
        struct clone_args args = { .exit_signal = SIGCHLD, .set_tid = (uint64_t) (uintptr_t) &want,
                                   .set_tid_size = 1 };
        long pid = syscall(SYS_clone3, &args, sizeof args);
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                setpgid(0, 0);
                write_pid(report, getpid());
                for (;;)
                        pause();
        }
        return (pid_t) pid;
}

/* Tracks main_pid, in a group of its own, as generation number's. */
static ProcTree *track(Loop *l, pid_t main_pid, unsigned number) {
        setpgid(main_pid, main_pid);
        ProcTree *t;
        ck_assert_int_ge(reaper_track(l->r, main_pid, number, NULL, &callbacks, NULL, &t), 0);
        return t;
}

/* A main, in a group of its own, whose worker starts a process and leaves
 * the group (setsid(); its environment says no generation), and which
 * exits then: the group's last member is the worker's child. Once gate is
 * written, the worker kills that child and reaps it, so that we hear
 * nothing, and writes its own pid to info. With leave_at_gate, the worker
 * leaves the group only once gate is written, and the main exits at once,
 * after writing the worker's pid to info: until the gate the worker,
 * adopted, is in the group. */
static pid_t fork_group_left_to_orphan(int gate, int info, bool leave_at_gate) {
        int left[2];
        ck_assert_int_eq(pipe(left), 0);
        pid_t main_pid = fork();
        ck_assert_int_ge(main_pid, 0);
        if (main_pid == 0) {
                setpgid(0, 0);
                pid_t worker = fork();
                if (worker == 0) {
                        pid_t inner = fork();
                        if (inner == 0)
                                for (;;)
                                        pause();
                        if (!leave_at_gate) {
                                setsid();
                                write_pid(left[1], getpid());
                        }
                        char c;
                        if (read(gate, &c, 1) != 1)
                                _exit(1);
                        if (leave_at_gate)
                                setsid();
                        kill(inner, SIGKILL);
                        waitpid(inner, NULL, 0);
                        write_pid(info, getpid());
                        for (;;)
                                pause();
                }
                if (leave_at_gate) {
                        write_pid(info, worker);
                        _exit(0);
                }
                /* Exits once the worker has left the group. */
                _exit(read_pid(left[0]) == worker ? 0 : 1);
        }
        close(left[0]);
        close(left[1]);
        return main_pid;
}

/* A main, in a group of its own, whose daemon leaves the group (setsid())
 * and runs "test-reaper what" with env (or nothing) for environment; the
 * main writes the daemon's pid to info, and exits once gate is written. */
static pid_t fork_main_with_daemon(const char *what, char *env, int gate, int info) {
        pid_t main_pid = fork();
        ck_assert_int_ge(main_pid, 0);
        if (main_pid == 0) {
                setpgid(0, 0);
                pid_t daemon = fork();
                if (daemon == 0) {
                        char *argv[] = { "test-reaper", (char *) what, NULL }, *envp[] = { env, NULL };
                        setsid();
                        execve("/proc/self/exe", argv, envp);
                        _exit(1);
                }
                write_pid(info, daemon);
                char c;
                _exit(read(gate, &c, 1) == 1 ? 0 : 1);
        }
        return main_pid;
}

/* The group emptied without a SIGCHLD of ours (its last member was the
 * child of a process that had left the group: a daemon's setsid() after
 * its fork), and another process got the main's pid as the id of a group
 * of its own (anyone's setsid(), or a shell's job), before the reaper
 * looked again. That group is not the generation's: it gets no signal, and
 * the generation is gone once the process that left is. Before, the
 * deadline's SIGKILL went to that group, and the generation was never
 * reported gone while it lived. */
START_TEST(test_group_id_come_round_again_is_not_ours) {
        Loop l = loop_new();

        /* The worker, adopted, is in the group until the gate; then it
         * leaves, and the one it started, left in it, exits, reaped by it,
         * not by us. */
        int gate[2], info[2];
        ck_assert_int_eq(pipe(gate), 0);
        ck_assert_int_eq(pipe(info), 0);
        pid_t main_pid = fork_group_left_to_orphan(gate[0], info[1], true);
        ProcTree *t = track(&l, main_pid, 1);
        pid_t worker = read_pid(info[0]);
        run_until(l.e, &seen.exited, 1);
        ck_assert(proc_tree_has(t, worker));

        ck_assert_int_eq(write(gate[1], "x", 1), 1);
        (void) read_pid(info[0]);

        /* Not our child, as another user's would not be. */
        pid_t middle = fork();
        ck_assert_int_ge(middle, 0);
        if (middle == 0) {
                pid_t k = fork_with_pid(main_pid, info[1]);
                if (k < 0)
                        write_pid(info[1], k);
                for (;;)
                        pause();
        }
        pid_t stranger = read_pid(info[0]);
        if (stranger == -EPERM || stranger == -EEXIST) {
                printf("test_group_id_come_round_again_is_not_ours: skipped (clone3 set_tid: %s)\n",
                       strerror(-stranger));
                kill(worker, SIGKILL);
                kill(middle, SIGKILL);
                goto done;
        }
        ck_assert_int_eq(stranger, main_pid);
        ck_assert_int_eq(getpgid(stranger), stranger);

        /* The drain deadline. */
        proc_tree_kill(t, SIGKILL);
        run_until(l.e, &seen.empty, 1);
        ProcStat st;
        ck_assert_int_eq(proc_stat_read(stranger, &st), 0);
        ck_assert_msg(proc_stat_running(&st), "the stranger's group got the SIGKILL");

        kill(stranger, SIGKILL);
        kill(middle, SIGKILL);
done:
        proc_tree_free(t);
        loop_free(&l);
}
END_TEST

static void *wait_forever(void *userdata) {
        for (;;)
                pause();
        return NULL;
}

/* Run as "zombie-leader", with an empty environment: the main thread
 * exits, another runs on. */
static int zombie_leader(void) {
        pthread_t th;
        if (pthread_create(&th, NULL, wait_forever, NULL) != 0)
                return 1;
        pthread_exit(NULL);
}

/* A process adopted when its main thread had exited while another ran on
 * (a zombie leader, "Zl"), started with an empty environment: nothing says
 * whose it is, and it is not about to be reaped (that waits for its last
 * thread). It is looked at a few times, as a live process with nothing to
 * read, and then counted as of no generation; the generation it was left
 * by is gone. Before, it was taken for one caught exiting: waited for
 * until reaped, and meanwhile no generation was ever reported gone (a
 * stop never ended). */
START_TEST(test_zombie_leader_with_nothing_to_read) {
        Loop l = loop_new();

        int gate[2], info[2];
        ck_assert_int_eq(pipe2(gate, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(info, O_CLOEXEC), 0);
        pid_t main_pid = fork_main_with_daemon("zombie-leader", NULL, gate[0], info[1]);
        ProcTree *t = track(&l, main_pid, 1);
        pid_t daemon = read_pid(info[0]);
        ProcStat st = {};
        usec_t end = now_monotonic() + 5 * USEC_PER_SEC;
        while ((proc_stat_read(daemon, &st) < 0 || st.state != 'Z') && now_monotonic() < end)
                usleep(1000);
        ck_assert_msg(st.state == 'Z' && st.threads > 1, "pid %d: state %c, %ld threads", (int) daemon, st.state,
                      st.threads);

        ck_assert_int_eq(write(gate[1], "x", 1), 1);
        run_until(l.e, &seen.exited, 1);
        run_until(l.e, &seen.empty, 1);

        ck_assert_int_eq(kill(daemon, SIGKILL), 0);
        proc_tree_free(t);
        loop_free(&l);
        ck_assert_int_eq(waitpid(daemon, NULL, 0), daemon);
}
END_TEST

/* The group empties without a SIGCHLD of ours (its last member was the
 * child of a process that left the group and is of no generation), and
 * the tree is found empty by a caller (a retire, the drain deadline: they
 * then neither arm the deadline nor kill): its end is reported all the
 * same. Before, nothing came until some other child of ours exited, and a
 * stop waited for the generation for ever. */
START_TEST(test_group_emptied_unseen_is_reported) {
        Loop l = loop_new();

        int gate[2], info[2];
        ck_assert_int_eq(pipe(gate), 0);
        ck_assert_int_eq(pipe(info), 0);
        pid_t main_pid = fork_group_left_to_orphan(gate[0], info[1], false);
        ProcTree *t = track(&l, main_pid, 1);
        run_until(l.e, &seen.exited, 1);
        ck_assert(!proc_tree_empty(t));

        ck_assert_int_eq(write(gate[1], "x", 1), 1);
        pid_t worker = read_pid(info[0]);
        ck_assert(proc_tree_empty(t));
        run_until(l.e, &seen.empty, 1);

        ck_assert_int_eq(kill(worker, SIGKILL), 0);

        proc_tree_free(t);
        loop_free(&l);
}
END_TEST

/* As above, but the main's pid comes round again as a later generation's
 * main before anyone looked: the tree is known empty by then (its group
 * id is the new main's), and a caller that finds it so (the drain
 * deadline) gets its end reported all the same. */
START_TEST(test_group_emptied_unseen_then_pid_reused_is_reported) {
        Loop l = loop_new();

        int gate[2], info[2];
        ck_assert_int_eq(pipe(gate), 0);
        ck_assert_int_eq(pipe(info), 0);
        pid_t main_pid = fork_group_left_to_orphan(gate[0], info[1], false);
        ProcTree *t = track(&l, main_pid, 1);
        run_until(l.e, &seen.exited, 1);
        ck_assert_int_eq(write(gate[1], "x", 1), 1);
        pid_t worker = read_pid(info[0]);

        pid_t next = fork_with_pid(main_pid, info[1]);
        if (next == -EPERM || next == -EEXIST) {
                printf("test_group_emptied_unseen_then_pid_reused_is_reported: skipped (clone3 set_tid: %s)\n",
                       strerror(-next));
                kill(worker, SIGKILL);
                goto done;
        }
        ck_assert_int_eq(next, main_pid);
        ck_assert_int_eq(read_pid(info[0]), next);
        ProcTree *t2;
        ck_assert_int_ge(reaper_track(l.r, next, 2, NULL, &callbacks, NULL, &t2), 0);
        ck_assert(proc_tree_empty(t));
        run_until(l.e, &seen.empty, 1);

        ck_assert_int_eq(kill(worker, SIGKILL), 0);
        ck_assert_int_eq(kill(next, SIGKILL), 0);
        proc_tree_free(t2);
done:
        proc_tree_free(t);
        loop_free(&l);
}
END_TEST

/* The drain deadline's SIGKILL ends a group whose last member is the
 * child of a process that left the group and is of no generation: that
 * process reaps it, and we hear nothing. The tree's end is reported all
 * the same. Before, it was not until some other child of ours exited: a
 * stop waited for ever. */
START_TEST(test_killed_group_of_others_children_is_reported) {
        Loop l = loop_new();

        int left[2], info[2];
        ck_assert_int_eq(pipe(left), 0);
        ck_assert_int_eq(pipe(info), 0);
        pid_t main_pid = fork();
        ck_assert_int_ge(main_pid, 0);
        if (main_pid == 0) {
                setpgid(0, 0);
                pid_t worker = fork();
                if (worker == 0) {
                        /* Our environment says no generation. */
                        if (fork() == 0)
                                for (;;)
                                        pause();
                        setsid();
                        write_pid(left[1], getpid());
                        write_pid(info[1], getpid());
                        for (;;)
                                if (wait(NULL) < 0 && errno == ECHILD)
                                        pause();
                }
                _exit(read_pid(left[0]) == worker ? 0 : 1);
        }
        ProcTree *t = track(&l, main_pid, 1);
        pid_t worker = read_pid(info[0]);
        run_until(l.e, &seen.exited, 1);
        ck_assert(!proc_tree_empty(t));

        proc_tree_kill(t, SIGKILL);
        run_until(l.e, &seen.empty, 1);

        ck_assert_int_eq(kill(worker, SIGKILL), 0);

        proc_tree_free(t);
        loop_free(&l);
}
END_TEST

static int on_never(sd_event_source *s, uint64_t usec, void *userdata) {
        return 0;
}

/* Whether pid's environment says HANDOFF_GENERATION=1 (it has exec'd). */
static bool of_generation_1(pid_t pid) {
        char path[64], buf[4096];
        snprintf(path, sizeof path, "/proc/%d/environ", (int) pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
        if (fd >= 0)
                close(fd);
        return n > 0 && memmem(buf, (size_t) n, "HANDOFF_GENERATION=1", 20);
}

/* A daemon of a generation (it left the group, and says whose it is in
 * its environment) is adopted while handoff is out of fds: whose it is
 * cannot be read then, and is read again once it can, the generation held
 * meanwhile; the deadline's SIGKILL reaches it. Before, it was taken for a
 * process that had exited: the generation was reported gone at once, and
 * the daemon ran on, nobody's. */
START_TEST(test_adopted_while_out_of_fds) {
        Loop l = loop_new();
        /* handoff has its timers' fd by then (its start timeout's). */
        ck_assert_int_ge(sd_event_add_time_relative(l.e, NULL, CLOCK_MONOTONIC, 3600 * USEC_PER_SEC, 0, on_never, NULL),
                         0);

        int gate[2], info[2];
        ck_assert_int_eq(pipe2(gate, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(info, O_CLOEXEC), 0);
        pid_t main_pid = fork_main_with_daemon("pause", "HANDOFF_GENERATION=1", gate[0], info[1]);
        ProcTree *t = track(&l, main_pid, 1);
        pid_t daemon = read_pid(info[0]);
        int pidfd = pidfd_open_pid(daemon);
        ck_assert_int_ge(pidfd, 0);
        usec_t end = now_monotonic() + 5 * USEC_PER_SEC;
        while (!of_generation_1(daemon) && now_monotonic() < end)
                usleep(1000);
        ck_assert(of_generation_1(daemon));

        /* Out of fds: the lowest free one is the limit. */
        struct rlimit saved, low;
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
        int lowest = dup(0);
        ck_assert_int_ge(lowest, 0);
        close(lowest);
        low = (struct rlimit) { .rlim_cur = (rlim_t) lowest, .rlim_max = saved.rlim_max };
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
        ck_assert_int_eq(write(gate[1], "x", 1), 1);
        run_until(l.e, &seen.exited, 1);
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);

        /* The drain deadline. */
        proc_tree_kill(t, SIGKILL);
        run_until(l.e, &seen.empty, 1);
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        ck_assert_msg(poll(&p, 1, 1000) == 1, "the daemon survived its generation");

        kill(daemon, SIGKILL);
        close(pidfd);
        proc_tree_free(t);
        loop_free(&l);
}
END_TEST

int main(int argc, char *argv[]) {
        if (argc > 1 && strcmp(argv[1], "zombie-leader") == 0)
                return zombie_leader();
        if (argc > 1 && strcmp(argv[1], "pause") == 0)
                for (;;)
                        pause();
        Suite *s = suite_create("reaper");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_group_id_come_round_again_is_not_ours);
        tcase_add_test(tc, test_zombie_leader_with_nothing_to_read);
        tcase_add_test(tc, test_adopted_while_out_of_fds);
        tcase_add_test(tc, test_group_emptied_unseen_is_reported);
        tcase_add_test(tc, test_group_emptied_unseen_then_pid_reused_is_reported);
        tcase_add_test(tc, test_killed_group_of_others_children_is_reported);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
