/* SPDX-License-Identifier: MIT */
/* handoff's own messages to the service manager (sdnotify.c) when its
 * socket is full: what must arrive waits in order, of STATUS= only the
 * latest, the fd store never takes the last places (READY=1 needs them),
 * and MAINPID= is never queued. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"
#include "unit.h"

#define MAX_QUEUED 80 /* 64 of them kept for what is not the fd store */

/* A manager's socket at an abstract address, not read until the test says
 * so, its queue filled by another sender; NOTIFY_SOCKET names it. */
static int manager(void) {
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        char name[64];
        snprintf(name, sizeof name, "handoff-test-sdnotify-%d", (int) getpid());
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        memcpy(sa.sun_path + 1, name, strlen(name));
        socklen_t len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, len), 0);
        char env[80];
        snprintf(env, sizeof env, "@%s", name);
        ck_assert_int_eq(setenv("NOTIFY_SOCKET", env, 1), 0);
        /* Fresh senders until one cannot send its first datagram. */
        for (bool sent = true; sent;) {
                int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                ck_assert_int_eq(connect(s, (struct sockaddr *) &sa, len), 0);
                sent = false;
                while (send(s, "X_FILLER=1", 10, 0) > 0)
                        sent = true;
                ck_assert_int_eq(errno, EAGAIN);
                close(s);
        }
        return fd;
}

/* Reads what has arrived, fillers left out; the loop sends what waits. */
static size_t drain(sd_event *e, int fd, char msgs[][128], size_t max) {
        size_t n = 0;
        for (int i = 0; i < 200; i++) {
                char buf[4096];
                ssize_t k;
                while ((k = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0) {
                        buf[k] = '\0';
                        if (strncmp(buf, "X_FILLER=", 9) != 0 && n < max)
                                snprintf(msgs[n++], 128, "%.127s", buf);
                }
                if (sd_event_run(e, 10 * 1000) == 0 && i > 2)
                        break;
        }
        return n;
}

START_TEST(test_full_manager_socket) {
        int fd = manager();
        ck_assert_int_eq(sdnotify_setup(), 1);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        sdnotify_attach(e, MAX_QUEUED);

        ck_assert_int_eq(sdnotify_send("STATUS=Starting.", NULL, 0), 1);
        /* The fd store fills the queue up to the places kept for the rest. */
        int pipefd[2];
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        size_t stored = 0;
        int r;
        while ((r = sdnotify_send("FDSTORE=1\nFDNAME=state", &pipefd[0], 1)) == 1)
                stored++;
        ck_assert_int_eq(r, -ENOBUFS);
        ck_assert_uint_eq(stored, MAX_QUEUED - 64 - 1);
        ck_assert_int_eq(sdnotify_send("FDSTOREREMOVE=1\nFDNAME=state", NULL, 0), -ENOBUFS);
        /* What is not the fd store still waits, in order. */
        ck_assert_int_eq(sdnotify_send("READY=1\nSTATUS=Serving.", NULL, 0), 1);
        ck_assert_int_eq(sdnotify_send("STATUS=one\n", NULL, 0), 1);
        ck_assert_int_eq(sdnotify_send("STATUS=two", NULL, 0), 1); /* in one's place */
        ck_assert_int_eq(sdnotify_send("WATCHDOG=1\n", NULL, 0), 1);
        ck_assert_int_eq(sdnotify_send("WATCHDOG=1", NULL, 0), 1);
        ck_assert_int_eq(sdnotify_send("RELOADING=1", NULL, 0), 1);
        /* MAINPID= would overtake them: never queued. */
        ck_assert_int_eq(sdnotify_send_now("MAINPID=1\nREADY=1", NULL, 0), -EAGAIN);

        char msgs[128][128];
        size_t n = drain(e, fd, msgs, 128);
        ck_assert_uint_eq(n, 1 + stored + 4);
        ck_assert_str_eq(msgs[0], "STATUS=Starting.");
        for (size_t i = 1; i <= stored; i++)
                ck_assert_str_eq(msgs[i], "FDSTORE=1\nFDNAME=state");
        ck_assert_str_eq(msgs[stored + 1], "READY=1\nSTATUS=Serving.");
        ck_assert_str_eq(msgs[stored + 2], "STATUS=two");
        ck_assert_str_eq(msgs[stored + 3], "WATCHDOG=1");
        ck_assert_str_eq(msgs[stored + 4], "RELOADING=1");
        /* Read: MAINPID= goes now, and the fd store again. */
        ck_assert_int_eq(sdnotify_send_now("MAINPID=1\nREADY=1", NULL, 0), 1);
        ck_assert_int_eq(sdnotify_send("FDSTOREREMOVE=1\nFDNAME=state", NULL, 0), 1);
        sdnotify_detach();
        sd_event_unref(e);
        close(pipefd[0]);
        close(pipefd[1]);
        close(fd);
}
END_TEST

static Suite *sdnotify_suite(void) {
        Suite *s = suite_create("sdnotify");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_full_manager_socket);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(sdnotify_suite());
}
