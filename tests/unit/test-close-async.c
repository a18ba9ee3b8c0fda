/* SPDX-License-Identifier: MIT */
/* close-async.c: which fds are closed at once, and that the others (a unix
 * socket with a lingering TCP socket queued inside, the nested case) never
 * make the caller wait, are closed all the same, and leave nothing of the
 * caller's in the closer's fd table; and that a spare notify socket
 * (generation.c) written to while the closers are saturated is given up,
 * not read again at every iteration of the loop. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "close-async.h"
#include "generation.h"
#include "reaper.h"
#include "time-util.h"
#include "util.h"
#include "unit.h"

/* A TCP connection whose peer does not read, its send queue full, with
 * SO_LINGER on for linger seconds: a plain close() of it waits. */
static int lingering_socket(int linger, int *ret_peer, size_t *ret_queued) {
        int srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(srv, 0);
        int small = 4096;
        ck_assert_int_eq(setsockopt(srv, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof sa;
        ck_assert_int_eq(bind(srv, (struct sockaddr *) &sa, sizeof sa), 0);
        ck_assert_int_eq(listen(srv, 1), 0);
        ck_assert_int_eq(getsockname(srv, (struct sockaddr *) &sa, &len), 0);

        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(c, 0);
        ck_assert_int_eq(setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
        ck_assert_int_eq(connect(c, (struct sockaddr *) &sa, sizeof sa), 0);
        int peer = accept4(srv, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(peer, 0);
        close(srv);

        struct linger l = { .l_onoff = 1, .l_linger = linger };
        ck_assert_int_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
        char buf[65536];
        memset(buf, 'x', sizeof buf);
        size_t queued = 0;
        for (;;) {
                ssize_t n = send(c, buf, sizeof buf, MSG_DONTWAIT);
                if (n < 0)
                        break;
                queued += (size_t) n;
        }
        ck_assert_uint_gt(queued, 0);
        *ret_peer = peer;
        *ret_queued = queued;
        return c;
}

START_TEST(test_close_nonblocking_does_not_wait_and_delivers) {
        int peer;
        size_t queued;
        int c = lingering_socket(30, &peer, &queued);
        usec_t t0 = now_monotonic();
        ck_assert_int_eq(close_nonblocking(c), -EBADF);
        usec_t took = now_monotonic() - t0;
        ck_assert_msg(took < 500 * USEC_PER_MSEC, "close took %llu us", (unsigned long long) took);

        /* Not a reset: the data still arrives, then the end of file. */
        char buf[65536];
        size_t got = 0;
        for (;;) {
                ssize_t n = read(peer, buf, sizeof buf);
                ck_assert_int_ge(n, 0);
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        ck_assert_uint_eq(got, queued);
        close(peer);
}
END_TEST

START_TEST(test_close_nonblocking_other_fds) {
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(close_nonblocking(p[0]), -EBADF);
        ck_assert_int_eq(fcntl(p[0], F_GETFD), -1);
        int fds[2] = { p[1], -EBADF };
        close_many_nonblocking(fds, 2);
        ck_assert_int_eq(fcntl(p[1], F_GETFD), -1);
        ck_assert_int_eq(close_nonblocking(-EBADF), -EBADF);
}
END_TEST

/* Sends fd over a (from a unix socketpair) and closes our copy of it: the
 * message queued on b holds the last reference. */
static void queue_inside(int a, int fd) {
        char byte = 0;
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int))];
        } control;
        msghdr_put_fds(&mh, &control, &fd, 1);
        ck_assert_int_eq(sendmsg(a, &mh, 0), 1);
        close(fd);
}

/* A unix socket with a pipe's write end queued inside it: closing the
 * socket closes that end, and *ret_reader, the read end, sees the end of
 * file. Returns the socket. */
static int pipe_inside_socket(int *ret_reader) {
        int p[2], sp[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        queue_inside(sp[0], p[1]);
        close(sp[0]);
        *ret_reader = p[0];
        return sp[1];
}

/* A unix socket whose queue holds the last reference of a TCP socket
 * lingering for linger seconds: the attack, in one process. */
static int nested_lingering_socket(int linger, int *ret_peer) {
        size_t queued;
        int c = lingering_socket(linger, ret_peer, &queued);
        int sp[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        queue_inside(sp[0], c);
        close(sp[0]);
        return sp[1];
}

static void assert_immediate(int fd, bool expected, const char *what) {
        ck_assert_int_ge(fd, 0);
        ck_assert_msg(close_is_immediate(fd) == expected, "%s: expected %s", what, expected ? "immediate" : "not");
        close(fd);
}

START_TEST(test_close_is_immediate) {
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        assert_immediate(p[0], true, "pipe");
        assert_immediate(p[1], true, "pipe (write end)");
        assert_immediate(eventfd(0, EFD_CLOEXEC), true, "eventfd");
        assert_immediate(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC), true, "timerfd");
        assert_immediate(pidfd_open_pid(getpid()), true, "pidfd");
        assert_immediate(memfd_create("test", MFD_CLOEXEC), true, "memfd");
        assert_immediate(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), true, "TCP");
        assert_immediate(socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0), true, "UDP");
        assert_immediate(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), true, "netlink");

        /* What may carry fds, what may wait for a server, and what we do
         * not know. */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, p), 0);
        assert_immediate(p[0], false, "unix socket");
        assert_immediate(p[1], false, "unix socket");
        assert_immediate(open("/dev/null", O_RDONLY | O_CLOEXEC), false, "a device");
        assert_immediate(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), false, "a directory on /");

        /* errno is left alone. */
        errno = 4242;
        ck_assert(!close_is_immediate(1000000));
        ck_assert_int_eq(errno, 4242);
}
END_TEST

START_TEST(test_close_nonblocking_nested_does_not_wait) {
        int peer;
        int b = nested_lingering_socket(30, &peer);
        ck_assert(!close_is_immediate(b));
        usec_t t0 = now_monotonic();
        ck_assert_int_eq(close_nonblocking(b), -EBADF);
        usec_t took = now_monotonic() - t0;
        ck_assert_msg(took < 500 * USEC_PER_MSEC, "close took %llu us", (unsigned long long) took);
        /* Gone from our table at once. */
        ck_assert_int_eq(fcntl(b, F_GETFD), -1);
        close(peer);
}
END_TEST

/* The closers' tasks: /proc/self/task/TID with comm "handoff-close". */
static size_t closer_tids(pid_t *tids, size_t max) {
        DIR *d = opendir("/proc/self/task");
        ck_assert_ptr_nonnull(d);
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)) && n < max) {
                char path[300], comm[32] = "";
                snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
                FILE *f = fopen(path, "re");
                if (!f)
                        continue;
                if (fgets(comm, sizeof comm, f) && strcmp(comm, "handoff-close\n") == 0)
                        tids[n++] = (pid_t) atoi(de->d_name);
                fclose(f);
        }
        closedir(d);
        return n;
}

static size_t count_fds(pid_t tid) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%d/fd", (int) tid);
        DIR *d = opendir(path);
        ck_assert_ptr_nonnull(d);
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

START_TEST(test_closer_holds_none_of_our_fds) {
        /* A closer held in a 30 s linger, while we hold a dozen fds. */
        int peer;
        int b = nested_lingering_socket(30, &peer);
        int mine[12];
        for (size_t i = 0; i < ELEMENTSOF(mine); i++)
                ck_assert_int_ge(mine[i] = eventfd(0, EFD_CLOEXEC), 0);
        close_nonblocking(b);

        pid_t tids[32];
        size_t n = 0;
        usec_t deadline = now_monotonic() + 5 * USEC_PER_SEC;
        while ((n = closer_tids(tids, ELEMENTSOF(tids))) == 0 && now_monotonic() < deadline)
                (void) poll(NULL, 0, 10);
        ck_assert_uint_ge(n, 1);
        /* Its table holds the queue it reads from, and nothing of ours
         * (the fd it closes has left every table: a close() in progress),
         * once it has made the table its own (its name comes first). */
        for (size_t i = 0; i < n; i++) {
                while (count_fds(tids[i]) > 1 && now_monotonic() < deadline)
                        (void) poll(NULL, 0, 10);
                ck_assert_uint_le(count_fds(tids[i]), 1);
        }
        ck_assert_uint_gt(count_fds(getpid()), ELEMENTSOF(mine));
        for (size_t i = 0; i < ELEMENTSOF(mine); i++)
                close(mine[i]);
        close(peer);
}
END_TEST

/* The slow path closes what it is given: each write end of a pipe, queued
 * inside a unix socket that goes to a closer, is closed, and the read end
 * sees the end of file. More than one message's worth, through
 * close_many_nonblocking(). */
START_TEST(test_close_many_nonblocking_closes_everything) {
        enum { N = 300 };
        int readers[N], sockets[N + 1];
        for (int i = 0; i < N; i++)
                sockets[i] = pipe_inside_socket(&readers[i]);
        sockets[N] = -EBADF;
        close_many_nonblocking(sockets, N + 1);
        for (int i = 0; i < N; i++) {
                struct pollfd pfd = { .fd = readers[i], .events = POLLIN };
                ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
                char c;
                ck_assert_int_eq(read(readers[i], &c, 1), 0);
                close(readers[i]);
        }
}
END_TEST


enum { CLOSERS = 16, FILL = 17 * 253 };

/* Room for the fds saturating the closers takes (the soft limit raised
 * to the hard one): false where there is none. */
static bool room_to_saturate(void) {
        struct rlimit rl;
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_max < FILL + 512) {
                fprintf(stderr, "note: a hard RLIMIT_NOFILE of %llu, below %d: saturated closers not tested\n",
                        (unsigned long long) rl.rlim_max, FILL + 512);
                return false;
        }
        rl.rlim_cur = rl.rlim_max;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
        return true;
}

/* Every closer held, in the close of a socket that lingers an hour with a
 * peer (peers[i]) that reads nothing. */
static void hold_every_closer(int *peers) {
        for (int i = 0; i < CLOSERS; i++)
                close_nonblocking(nested_lingering_socket(3600, &peers[i]));
        pid_t tids[64];
        usec_t deadline = now_monotonic() + 10 * USEC_PER_SEC;
        while (closer_tids(tids, ELEMENTSOF(tids)) < CLOSERS && now_monotonic() < deadline)
                (void) poll(NULL, 0, 10);
        ck_assert_uint_eq(closer_tids(tids, ELEMENTSOF(tids)), CLOSERS);
}

/* The queue filled, and more, with closes that would not wait. */
static void fill_queue(void) {
        for (int i = 0; i < FILL; i++) {
                int sp[2];
                ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
                close(sp[1]);
                close_nonblocking(sp[0]);
        }
}

static void set_flag(void *userdata) {
        *(bool *) userdata = true;
}

/* Saturated: every closer held by a lingering socket nested in a unix
 * socket, and their queue full of harmless unix sockets. What comes then is
 * held, not closed by the caller, which never waits; a waiter hears once
 * the closers have room again, from the loop close_async_attach() was
 * given, and what was held is closed then. */
START_TEST(test_saturated_holds_and_wakes) {
        enum { HELD_PIPES = 3 };
        if (!room_to_saturate())
                return;

        sd_event *e = NULL;
        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_ge(close_async_attach(e), 0);

        int peers[CLOSERS + 1];
        hold_every_closer(peers);
        ck_assert(!close_async_saturated());

        /* The queue filled, and more: nothing waits. */
        usec_t t0 = now_monotonic();
        fill_queue();
        ck_assert(close_async_saturated());
        CloseAsyncWaiter w = {};
        bool woken = false;
        close_async_wait(&w, set_flag, &woken);
        ck_assert(close_async_waiting(&w));
        /* Held too: more lingering sockets, and pipes' write ends inside
         * unix sockets, which tell when they are closed. */
        close_nonblocking(nested_lingering_socket(3600, &peers[CLOSERS]));
        int readers[HELD_PIPES];
        for (int i = 0; i < HELD_PIPES; i++)
                close_nonblocking(pipe_inside_socket(&readers[i]));
        usec_t took = now_monotonic() - t0;
        ck_assert_msg(took < 2 * USEC_PER_SEC, "closing took %llu us", (unsigned long long) took);
        ck_assert(close_async_saturated());
        ck_assert_int_ge(sd_event_run(e, 0), 0);
        ck_assert(!woken);

        /* The lingering sockets reset: the closers are free. */
        for (int i = 0; i <= CLOSERS; i++)
                close(peers[i]);
        usec_t deadline = now_monotonic() + 10 * USEC_PER_SEC;
        while (!woken && now_monotonic() < deadline)
                ck_assert_int_ge(sd_event_run(e, 100 * USEC_PER_MSEC), 0);
        ck_assert(woken);
        ck_assert(!close_async_saturated());
        ck_assert(!close_async_waiting(&w));
        for (int i = 0; i < HELD_PIPES; i++) {
                struct pollfd pfd = { .fd = readers[i], .events = POLLIN };
                ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
                char c;
                ck_assert_int_eq(read(readers[i], &c, 1), 0);
                close(readers[i]);
        }

        /* A waiter cancelled is not called. */
        close_async_wait(&w, set_flag, &woken);
        close_async_wait_cancel(&w);
        ck_assert(!close_async_waiting(&w));
        sd_event_unref(e);
}
END_TEST

static void on_gone(Generation *g, void *userdata) {
        *(bool *) userdata = true;
}

static void gone_only(Generation *g, void *userdata) {
}

static void no_message(Generation *g, const NotifyMessage *m, int *fds, size_t n_fds, void *userdata) {
}

static void no_ready(Generation *g, const char *status, void *userdata) {
}

/* The same saturation, and a datagram with an fd sent to the spare notify
 * socket (generation.c: a gone generation's abstract one, kept for the
 * next): nobody's fds come in off a spare, so a closer is to drop it, and
 * none can now. The spare is given up then, as for any datagram sent to
 * it. Before, it was left watched with the datagram at its head, and the
 * loop ran its callback at every iteration, without end, until a closer
 * was free. */
START_TEST(test_saturated_spare_notify_socket_not_read_in_a_loop) {
        if (!room_to_saturate())
                return;
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &ss, NULL), 0);

        sd_event *e = NULL;
        Reaper *reaper = NULL;
        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_ge(reaper_new(e, &reaper), 0);
        ck_assert_int_ge(close_async_attach(e), 0);

        /* Generation 1, gone at once: its socket is the spare. */
        bool gone = false;
        const GenerationCallbacks cb = {
                .ready = no_ready, .start_timeout = gone_only, .exited = gone_only, .gone = on_gone,
                .message = no_message,
        };
        GenerationConfig c = {
                .argv = (char *const[]) { "true", NULL },
                .start_timeout = USEC_INFINITY,
                .notify_socket = NOTIFY_SOCKET_ABSTRACT,
                .notify_access = NOTIFY_ACCESS_MAIN,
                .reaper = reaper,
        };
        Generation *g = NULL;
        int code = 0;
        char why[256] = "";
        ck_assert_int_eq(generation_start(e, &c, 1, &cb, &gone, &g, &code, why, sizeof why), 0);
        usec_t deadline = now_monotonic() + 10 * USEC_PER_SEC;
        while (!gone && now_monotonic() < deadline)
                ck_assert_int_ge(sd_event_run(e, 100 * USEC_PER_MSEC), 0);
        ck_assert(gone);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ck_assert_uint_lt(strlen(g->notify_address), sizeof sa.sun_path);
        memcpy(sa.sun_path + 1, g->notify_address + 1, strlen(g->notify_address) - 1);
        socklen_t sa_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(g->notify_address));
        generation_free(g);

        int peers[CLOSERS];
        hold_every_closer(peers);
        fill_queue();
        ck_assert(close_async_saturated());

        int sender = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(sender, 0);
        ck_assert_int_eq(connect(sender, (struct sockaddr *) &sa, sa_len), 0);
        int reader;
        int held = pipe_inside_socket(&reader);
        char text[] = "STATUS=x";
        struct iovec iov = { .iov_base = text, .iov_len = strlen(text) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int))];
        } control;
        msghdr_put_fds(&mh, &control, &held, 1);
        ck_assert_int_eq(sendmsg(sender, &mh, 0), (ssize_t) strlen(text));
        close(held);
        close(sender);

        /* The spare's callback once, not at every iteration. */
        int dispatched = 0;
        for (int i = 0; i < 100; i++) {
                int r = sd_event_run(e, 0);
                ck_assert_int_ge(r, 0);
                dispatched += r;
        }
        ck_assert_msg(dispatched <= 2, "the loop ran %d times in 100 with nothing new to do", dispatched);

        /* The closers free: the datagram's pipe end is closed by one. */
        for (int i = 0; i < CLOSERS; i++)
                close(peers[i]);
        deadline = now_monotonic() + 10 * USEC_PER_SEC;
        while (close_async_saturated() && now_monotonic() < deadline)
                ck_assert_int_ge(sd_event_run(e, 100 * USEC_PER_MSEC), 0);
        ck_assert(!close_async_saturated());
        struct pollfd pfd = { .fd = reader, .events = POLLIN };
        ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
        char ch;
        ck_assert_int_eq(read(reader, &ch, 1), 0);
        close(reader);
        generation_drop_spare_socket();
        reaper_free(reaper);
        sd_event_unref(e);
}
END_TEST

static Suite *close_async_suite(void) {
        Suite *s = suite_create("close-async");
        TCase *tc = tcase_create("close");
        tcase_set_timeout(tc, 20);
        tcase_add_test(tc, test_close_is_immediate);
        tcase_add_test(tc, test_close_nonblocking_does_not_wait_and_delivers);
        tcase_add_test(tc, test_close_nonblocking_other_fds);
        tcase_add_test(tc, test_close_nonblocking_nested_does_not_wait);
        tcase_add_test(tc, test_closer_holds_none_of_our_fds);
        tcase_add_test(tc, test_close_many_nonblocking_closes_everything);
        tcase_add_test(tc, test_saturated_holds_and_wakes);
        tcase_add_test(tc, test_saturated_spare_notify_socket_not_read_in_a_loop);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(close_async_suite());
}
