/* SPDX-License-Identifier: MIT */
/* The standby's start message (standby.c): its encoding and parsing, and
 * what standby_wait() makes of it in a process started as a standby: the
 * fds where exec would have put them, the environment and argv sent. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "standby.h"
#include "unit.h"
#include "util.h"

extern char **environ;

START_TEST(test_round_trip) {
        char *argv[] = { "/usr/bin/handoff", "", "--", "srv", "a b", NULL };
        char *envp[] = { "A=1", "EMPTY=", "LISTEN_PID=0000000042", NULL };
        char *msg = NULL, **av = NULL, **ev = NULL;
        size_t size;
        ck_assert_int_eq(standby_encode(argv, envp, &msg, &size), 0);
        ck_assert_int_eq(standby_parse(msg, size, &av, &ev), 0);
        for (size_t i = 0; i < 5; i++)
                ck_assert_str_eq(av[i], argv[i]);
        ck_assert_ptr_null(av[5]);
        for (size_t i = 0; i < 3; i++)
                ck_assert_str_eq(ev[i], envp[i]);
        ck_assert_ptr_null(ev[3]);
        free(av);
        free(ev);
        free(msg);
}
END_TEST

START_TEST(test_too_big) {
        char *big = malloc(STANDBY_MAX_GO + 1);
        memset(big, 'x', STANDBY_MAX_GO);
        big[STANDBY_MAX_GO] = '\0';
        char *argv[] = { big, NULL }, *envp[] = { NULL }, *msg = NULL;
        size_t size;
        ck_assert_int_eq(standby_encode(argv, envp, &msg, &size), -E2BIG);
        free(big);
}
END_TEST

START_TEST(test_parse_bad) {
        static const struct {
                const char *bytes;
                size_t n;
        } bad[] = {
                { "", 0 },
                { "GO 1 0", 6 },                /* no NUL after the head */
                { "GO 1 0\0", 7 },              /* one string missing */
                { "GO 0 0\0", 7 },              /* no argv[0] */
                { "GO 1 0\0a\0b\0", 11 },       /* bytes left over */
                { "GO 1 1\0a\0b", 10 },         /* the last one without its NUL */
                { "GO 1\0a\0", 7 },
                { "GO  1 0\0a\0", 10 },
                { "GO 1 0 \0a\0", 10 },
                { "GO -1 0\0a\0", 10 },
                { "GO 1 99999999999999999999999\0a\0", 32 },
                { "go 1 0\0a\0", 9 },
                { "GO 1 0x\0a\0", 10 },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char buf[64];
                memcpy(buf, bad[i].bytes, bad[i].n);
                char **av = NULL, **ev = NULL;
                ck_assert_msg(standby_parse(buf, bad[i].n, &av, &ev) == -EBADMSG, "accepted case %zu", i);
                ck_assert_ptr_null(av);
        }
}
END_TEST

/* Forks a child that waits as a standby on its end of a channel, which
 * must end it: standby_wait() returning is exit 20. Returns its pid and
 * our end in *ret_channel. */
static pid_t fork_waiting_standby(int *ret_channel) {
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(sv[0]);
                if (dup2(sv[1], 3) != 3 || setenv("HANDOFF_STANDBY", "3", 1) < 0)
                        _exit(10);
                int argc;
                char **argv;
                (void) standby_wait(&argc, &argv);
                _exit(20); /* must not return */
        }
        close(sv[1]);
        *ret_channel = sv[0];
        return pid;
}

static int exit_status_of(pid_t pid) {
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status), "child status 0x%x", status);
        return WEXITSTATUS(status);
}

static ino_t ino_of(int fd) {
        struct stat st;
        return fstat(fd, &st) < 0 ? 0 : st.st_ino;
}

/* In a child started as a standby would be (its channel at fd 3,
 * $HANDOFF_STANDBY=3, stray fds above), standby_wait() gets a start with
 * two fds. Exits 0 when everything is where exec would have put it. */
static int child(int channel, int a, int b) {
        ino_t ia = ino_of(a), ib = ino_of(b), ic = ino_of(channel);
        if (dup2(channel, 3) != 3)
                return 10;
        int stray = fcntl(a, F_DUPFD, 40); /* inherited, not sent: must be gone */
        if (stray < 0 || setenv("HANDOFF_STANDBY", "3", 1) < 0)
                return 11;
        int argc = 0;
        char **argv = NULL;
        if (standby_wait(&argc, &argv) != 1)
                return 12;
        if (argc != 3 || strcmp(argv[0], "handoff") != 0 || strcmp(argv[1], "--") != 0 || strcmp(argv[2], "srv") != 0 ||
            argv[3])
                return 13;
        if (getenv("HANDOFF_STANDBY") || !getenv("FOO") || strcmp(getenv("FOO"), "bar") != 0 || environ[1])
                return 14;
        if (ino_of(3) != ia || ino_of(4) != ib || ino_of(5) != ic)
                return 15;
        for (int fd = 3; fd <= 5; fd++)
                if (fcntl(fd, F_GETFD) != 0)
                        return 16; /* inherited, as exec leaves them */
        for (int fd = 6; fd < 64; fd++)
                if (fcntl(fd, F_GETFD) >= 0)
                        return 17;
        return 0;
}

START_TEST(test_wait_lays_out_fds_and_environment) {
        int sv[2], pa[2], pb[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
        ck_assert_int_eq(pipe(pa), 0);
        ck_assert_int_eq(pipe(pb), 0);
        /* The child's channel moves to 3, so the fds it receives land on 4
         * and up: on the very numbers lay_out() puts things at. */
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(sv[0]);
                _exit(child(sv[1], pa[0], pb[1]));
        }
        close(sv[1]);
        char *argv[] = { "handoff", "--", "srv", NULL }, *envp[] = { "FOO=bar", NULL }, *msg = NULL;
        size_t size;
        ck_assert_int_eq(standby_encode(argv, envp, &msg, &size), 0);
        int fds[2] = { pa[0], pb[1] };
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof fds)];
        } control = {};
        struct iovec iov = { .iov_base = msg, .iov_len = size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        msghdr_put_fds(&mh, &control, fds, 2);
        ck_assert_int_eq(sendmsg(sv[0], &mh, 0), (ssize_t) size);
        ck_assert_int_eq(exit_status_of(pid), 0);
        free(msg);
}
END_TEST

START_TEST(test_wait_exits_0_at_end_of_file) {
        int channel;
        pid_t pid = fork_waiting_standby(&channel);
        close(channel);
        ck_assert_int_eq(exit_status_of(pid), 0);
}
END_TEST

START_TEST(test_wait_refuses_a_bad_start) {
        int channel;
        pid_t pid = fork_waiting_standby(&channel);
        ck_assert_int_eq(send(channel, "GO 2 0\0a\0", 9, 0), 9);
        ck_assert_int_eq(exit_status_of(pid), 1);
        close(channel);
}
END_TEST

START_TEST(test_not_a_standby) {
        unsetenv("HANDOFF_STANDBY");
        int argc = 7;
        char **argv = NULL;
        ck_assert_int_eq(standby_wait(&argc, &argv), 0);
        ck_assert_int_eq(argc, 7);
}
END_TEST

int main(void) {
        Suite *s = suite_create("standby");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_too_big);
        tcase_add_test(tc, test_parse_bad);
        tcase_add_test(tc, test_wait_lays_out_fds_and_environment);
        tcase_add_test(tc, test_wait_exits_0_at_end_of_file);
        tcase_add_test(tc, test_wait_refuses_a_bad_start);
        tcase_add_test(tc, test_not_a_standby);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
