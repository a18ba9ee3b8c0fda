/* SPDX-License-Identifier: MIT */
/* Which file a unix socket is bound to (socket-file.c): told by the kernel
 * to root (SIOCUNIXFILE) and to anyone else (sock_diag). */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "socket-file.h"
#include "unit.h"

static int bound(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        if (path[0] == '@')
                sa.sun_path[0] = '\0';
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        return fd;
}

/* A socket's own file, one bound at its path since, and none. */
static void check_files(bool unprivileged) {
        char dir[] = "/tmp/test-socket-file-XXXXXX", path[64];
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/s", dir);
        struct stat mine, theirs;
        int fd = bound(path);
        ck_assert_int_eq(lstat(path, &mine), 0);
        ck_assert_int_eq(unlink(path), 0);
        int other = bound(path);
        ck_assert_int_eq(lstat(path, &theirs), 0);
        int unbound = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        char abstract[64];
        snprintf(abstract, sizeof abstract, "@test-socket-file-%d", (int) getpid());
        int anon = bound(abstract);
        /* The files go, their inodes stay, held by the sockets. */
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(rmdir(dir), 0);

        if (unprivileged && geteuid() == 0)
                ck_assert_int_eq(setresuid(65534, 65534, 65534), 0);
        int r = socket_file_is(fd, &mine);
        if (r < 0) {
                fprintf(stderr, "check_files: the kernel does not tell a socket's file here: %s\n", strerror(-r));
        } else {
                ck_assert_int_eq(r, 1);
                ck_assert_int_eq(socket_file_is(fd, &theirs), 0);
                ck_assert_int_eq(socket_file_is(other, &theirs), 1);
                ck_assert_int_eq(socket_file_is(other, &mine), 0);
                ck_assert_int_eq(socket_file_is(unbound, &mine), 0);
                ck_assert_int_eq(socket_file_is(anon, &theirs), 0);
        }
        close(fd);
        close(other);
        close(unbound);
        close(anon);
}

START_TEST(test_socket_file) {
        check_files(false);
}
END_TEST

/* Checked in a process of its own (Check forks for each test). */
START_TEST(test_socket_file_unprivileged) {
        check_files(true);
}
END_TEST

int main(void) {
        Suite *s = suite_create("socket-file");
        TCase *tc = tcase_create("socket-file");
        tcase_add_test(tc, test_socket_file);
        tcase_add_test(tc, test_socket_file_unprivileged);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
