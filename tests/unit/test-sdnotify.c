/* SPDX-License-Identifier: MIT */
/* handoff's own messages to the service manager (sdnotify.c) when its
 * socket is full: what must arrive waits in order; of STATUS=, WATCHDOG=,
 * WATCHDOG_USEC=, EXTEND_TIMEOUT_USEC= and ERRNO= only the latest, also
 * when a relayed message holds several of them; neither those nor the fd
 * store take the last places (READY=1 needs them); and MAINPID= is never
 * queued. */
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

#define MAX_QUEUED 100
#define CONTROL_ONLY 64 /* the last places, kept for READY=1, RELOADING=1, STOPPING=1 */
#define NOT_STORE 16    /* and before them, for the latest STATUS= and the like */

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
        ck_assert_uint_eq(stored, MAX_QUEUED - CONTROL_ONLY - NOT_STORE - 1);
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

/* The socket, the loop and sdnotify attached to it, for one test. */
static int setup(sd_event **e) {
        int fd = manager();
        ck_assert_int_eq(sdnotify_setup(), 1);
        ck_assert_int_ge(sd_event_new(e), 0);
        sdnotify_attach(*e, MAX_QUEUED);
        return fd;
}

static void teardown(sd_event *e, int fd) {
        sdnotify_detach();
        sd_event_unref(e);
        close(fd);
}

START_TEST(test_relayed_flood_waits_latest_only) {
        /* A server's STATUS= with WATCHDOG=1 in one datagram, as many
         * sd_notify users send them, far more than may wait: each field
         * waits alone, the latest of it; READY=1 behind them still waits. */
        sd_event *e;
        int fd = setup(&e);
        char text[128];
        for (int i = 0; i < 2500; i++) {
                snprintf(text, sizeof text, "STATUS=busy %d\nWATCHDOG=1\n", i);
                ck_assert_int_eq(sdnotify_send(text, NULL, 0), 1);
        }
        ck_assert_int_eq(sdnotify_send("RELOADING=1\nSTATUS=Reloading.", NULL, 0), 1);
        for (int i = 0; i < 2200; i++) {
                snprintf(text, sizeof text, "ERRNO=%d\n", i % 100 + 1);
                ck_assert_int_eq(sdnotify_send(text, NULL, 0), 1);
                snprintf(text, sizeof text, "STATUS=two\\\nlines %d\nWATCHDOG_USEC=%d\nEXTEND_TIMEOUT_USEC=%d\n", i,
                         1000000 + i, 2000000 + i);
                ck_assert_int_eq(sdnotify_send(text, NULL, 0), 1);
                ck_assert_int_eq(sdnotify_send("WATCHDOG=trigger\n", NULL, 0), 1);
        }
        ck_assert_int_eq(sdnotify_send("READY=1\nSTATUS=Serving.", NULL, 0), 1);
        /* As systemd, the first line of a field counts. */
        ck_assert_int_eq(sdnotify_send("STATUS=first\nSTATUS=second\nWATCHDOG=1\nWATCHDOG=trigger\n", NULL, 0), 1);

        char msgs[128][128];
        size_t n = drain(e, fd, msgs, 128);
        const char *want[] = {
                "STATUS=busy 2499", "WATCHDOG=1", "RELOADING=1\nSTATUS=Reloading.", "ERRNO=100",
                "STATUS=two\\\nlines 2199", "WATCHDOG_USEC=1002199", "EXTEND_TIMEOUT_USEC=2002199", "WATCHDOG=trigger",
                "READY=1\nSTATUS=Serving.", "STATUS=first", "WATCHDOG=1",
        };
        ck_assert_uint_eq(n, sizeof want / sizeof *want);
        for (size_t i = 0; i < n; i++)
                ck_assert_str_eq(msgs[i], want[i]);
        /* Read: nothing waits, and a datagram goes whole again. */
        ck_assert_int_eq(sdnotify_send("STATUS=idle\nWATCHDOG=1\n", NULL, 0), 1);
        char buf[128];
        ssize_t k = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
        ck_assert_int_gt(k, 0);
        buf[k] = '\0';
        ck_assert_str_eq(buf, "STATUS=idle\nWATCHDOG=1\n");
        teardown(e, fd);
}
END_TEST

START_TEST(test_last_places_are_for_control) {
        /* Each RELOADING=1 between them, a STATUS= and an ERRNO= cannot
         * replace the ones before it: they wait until only the places kept
         * for handoff's own control messages are left, which those fill. */
        sd_event *e;
        int fd = setup(&e);
        char text[64];
        size_t queued = 0;
        int r = 1;
        for (int i = 0; r == 1; i++) {
                snprintf(text, sizeof text, i % 3 == 0 ? "STATUS=%d\nERRNO=%d" : i % 3 == 1 ? "RELOADING=1" : "READY=1", i, i);
                r = sdnotify_send(text, NULL, 0);
                queued += r == 1 ? (i % 3 == 0 ? 2 : 1) : 0;
        }
        /* The STATUS= that found only the control places left. */
        ck_assert_int_eq(r, -ENOBUFS);
        ck_assert_uint_ge(queued, MAX_QUEUED - CONTROL_ONLY - 1);
        ck_assert_uint_le(queued, MAX_QUEUED - CONTROL_ONLY);
        ck_assert_int_eq(sdnotify_send("WATCHDOG=1", NULL, 0), -ENOBUFS);
        ck_assert_int_eq(sdnotify_send("STATUS=Unknown\nX_OTHER=1", NULL, 0), -ENOBUFS);
        /* RELOADING=1 and READY=1 take every place left. */
        size_t control = 0;
        while ((r = sdnotify_send(control % 2 ? "READY=1\nSTATUS=Serving." : "RELOADING=1", NULL, 0)) == 1)
                control++;
        ck_assert_int_eq(r, -ENOBUFS);
        ck_assert_uint_eq(queued + control, MAX_QUEUED);
        char msgs[128][128];
        ck_assert_uint_eq(drain(e, fd, msgs, 128), MAX_QUEUED);
        ck_assert_str_eq(msgs[MAX_QUEUED - 1], control % 2 ? "RELOADING=1" : "READY=1\nSTATUS=Serving.");
        teardown(e, fd);
}
END_TEST

START_TEST(test_extend_keeps_the_largest) {
        /* systemd never moves a deadline sooner at EXTEND_TIMEOUT_USEC=:
         * a smaller extension sent after a larger one must not take its
         * place while both wait. */
        sd_event *e;
        int fd = setup(&e);
        ck_assert_int_eq(sdnotify_send("STATUS=migrating\nEXTEND_TIMEOUT_USEC=60000000\n", NULL, 0), 1);
        ck_assert_int_eq(sdnotify_send("EXTEND_TIMEOUT_USEC=5000000\n", NULL, 0), 1);
        ck_assert_int_eq(sdnotify_send("STATUS=still migrating\nEXTEND_TIMEOUT_USEC=7000000\n", NULL, 0), 1);
        char msgs[16][128];
        ck_assert_uint_eq(drain(e, fd, msgs, 16), 2);
        ck_assert_str_eq(msgs[0], "STATUS=still migrating");
        ck_assert_str_eq(msgs[1], "EXTEND_TIMEOUT_USEC=60000000");
        teardown(e, fd);

        /* A larger one takes its place. */
        fd = setup(&e);
        ck_assert_int_eq(sdnotify_send("EXTEND_TIMEOUT_USEC=5000000", NULL, 0), 1);
        ck_assert_int_eq(sdnotify_send("EXTEND_TIMEOUT_USEC=90000000", NULL, 0), 1);
        ck_assert_uint_eq(drain(e, fd, msgs, 16), 1);
        ck_assert_str_eq(msgs[0], "EXTEND_TIMEOUT_USEC=90000000");
        teardown(e, fd);
}
END_TEST

START_TEST(test_bound_fits_a_whole_store_resync) {
        /* The supervisor's bound, 2 messages per fd-store entry plus
         * SDNOTIFY_RESERVED: a takeover's FDSTOREREMOVE=1 and FDSTORE=1 for
         * a whole store all wait while the manager does not read. */
        enum { ENTRIES = 10 };
        int fd = manager();
        ck_assert_int_eq(sdnotify_setup(), 1);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        sdnotify_attach(e, 2 * ENTRIES + SDNOTIFY_RESERVED);
        int pipefd[2];
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        char text[64];
        for (int i = 0; i < ENTRIES; i++) {
                snprintf(text, sizeof text, "FDSTOREREMOVE=1\nFDNAME=s%d", i);
                ck_assert_int_eq(sdnotify_send(text, NULL, 0), 1);
        }
        for (int i = 0; i < ENTRIES; i++) {
                snprintf(text, sizeof text, "FDSTORE=1\nFDNAME=s%d", i);
                ck_assert_int_eq(sdnotify_send(text, &pipefd[0], 1), 1);
        }
        char msgs[64][128];
        ck_assert_uint_eq(drain(e, fd, msgs, 64), 2 * ENTRIES);
        teardown(e, fd);
        close(pipefd[0]);
        close(pipefd[1]);
}
END_TEST

static Suite *sdnotify_suite(void) {
        Suite *s = suite_create("sdnotify");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_full_manager_socket);
        tcase_add_test(tc, test_relayed_flood_waits_latest_only);
        tcase_add_test(tc, test_last_places_are_for_control);
        tcase_add_test(tc, test_extend_keeps_the_largest);
        tcase_add_test(tc, test_bound_fits_a_whole_store_resync);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(sdnotify_suite());
}
