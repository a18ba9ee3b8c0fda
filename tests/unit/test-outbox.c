/* SPDX-License-Identifier: MIT */
/* The sending side of the handover channel and of the service manager's
 * socket (outbox.c), and the next handoff's reports through it
 * (takeover.c): a peer that does not read fills the socket, and what must
 * arrive waits, in order and with its fds, until it does. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "channel.h"
#include "outbox.h"
#include "takeover.h"
#include "unit.h"
#include "util.h"

#define FILLER "filler"

/* A channel as the handover's, with a small buffer: pair[0] sends. */
static void channel_pair(int pair[2]) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
        int size = 4096;
        ck_assert_int_eq(setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
}

/* Each test's set-up: a channel as the handover's (pair[0] sends), a loop,
 * and an outbox on pair[0]. */
typedef struct Box {
        int pair[2];
        sd_event *e;
        Outbox *o;
} Box;

static Box box_open(void) {
        Box b;
        channel_pair(b.pair);
        ck_assert_int_ge(sd_event_new(&b.e), 0);
        ck_assert_int_eq(outbox_new(b.e, b.pair[0], true, CHANNEL_MAX_QUEUED, CHANNEL_MAX_MESSAGE, &b.o), 0);
        return b;
}

/* All of it, but what the test closed itself (an fd set to -1, the outbox
 * to NULL). */
static void box_close(Box *b) {
        outbox_free(b->o);
        sd_event_unref(b->e);
        for (int i = 0; i < 2; i++)
                if (b->pair[i] >= 0)
                        close(b->pair[i]);
}

/* Sends filler messages until the channel is full; returns how many. */
static size_t fill(int fd) {
        char msg[1000];
        memset(msg, 'f', sizeof msg);
        memcpy(msg, FILLER, strlen(FILLER));
        size_t n = 0;
        while (send(fd, msg, sizeof msg, MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
                n++;
        ck_assert_int_eq(errno, EAGAIN);
        ck_assert_uint_gt(n, 0);
        return n;
}

typedef struct Received {
        char msgs[64][CHANNEL_MAX_MESSAGE];
        size_t n, fillers;
} Received;

/* Reads what has arrived, fillers counted apart. */
static void receive(int fd, Received *r) {
        char buf[CHANNEL_MAX_MESSAGE];
        ssize_t k;
        while ((k = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0) {
                buf[k] = '\0';
                if (strncmp(buf, FILLER, strlen(FILLER)) == 0)
                        r->fillers++;
                else {
                        ck_assert_uint_lt(r->n, 64);
                        snprintf(r->msgs[r->n++], CHANNEL_MAX_MESSAGE, "%s", buf);
                }
        }
}

/* The peer reads again: run the loop until nothing waits. */
static void drain(sd_event *e, Outbox *o, int peer, Received *r) {
        for (int i = 0; i < 100 && (outbox_pending(o) > 0 || i == 0); i++) {
                receive(peer, r);
                ck_assert_int_ge(sd_event_run(e, 100 * 1000), 0);
        }
        receive(peer, r);
        ck_assert_uint_eq(outbox_pending(o), 0);
        /* Nothing left to send: its source is off, the loop idles. */
        ck_assert_int_eq(sd_event_run(e, 0), 0);
}

START_TEST(test_sends_at_once_when_writable) {
        Box b = box_open();
        ck_assert_int_eq(outbox_put(b.o, OUTBOX_EVERY, "APP 42"), 0);
        ck_assert_int_eq(outbox_put(b.o, 1, "STATUS one"), 0);
        ck_assert_int_eq(outbox_put(b.o, 1, "STATUS two"), 0);
        ck_assert_uint_eq(outbox_pending(b.o), 0);
        Received r = {};
        receive(b.pair[1], &r);
        ck_assert_uint_eq(r.n, 3);
        ck_assert_str_eq(r.msgs[0], "APP 42");
        ck_assert_str_eq(r.msgs[1], "STATUS one");
        ck_assert_str_eq(r.msgs[2], "STATUS two");
        ck_assert_int_eq(sd_event_run(b.e, 0), 0);
        box_close(&b);
}
END_TEST

START_TEST(test_full_channel_keeps_order_and_latest) {
        Box b = box_open();
        size_t fillers = fill(b.pair[0]);

        ck_assert_int_eq(outbox_put(b.o, OUTBOX_EVERY, "APP 42"), 1);
        ck_assert_int_eq(outbox_put(b.o, 1, "STATUS a"), 1);
        ck_assert_int_eq(outbox_put(b.o, 2, "EXTEND 5"), 1);
        ck_assert_int_eq(outbox_put(b.o, 1, "STATUS b"), 1); /* replaces a, in its place */
        ck_assert_str_eq(outbox_queued(b.o, 1), "STATUS b");
        ck_assert_int_eq(outbox_put(b.o, OUTBOX_EVERY, "READY"), 1);
        ck_assert_ptr_null(outbox_queued(b.o, 1)); /* READY is behind b: b stays before it */
        ck_assert_int_eq(outbox_put(b.o, 1, "STATUS c"), 1);
        ck_assert_int_eq(outbox_put(b.o, 1, "STATUS d"), 1);
        ck_assert_uint_eq(outbox_pending(b.o), 5);

        Received r = {};
        drain(b.e, b.o, b.pair[1], &r);
        ck_assert_uint_eq(r.fillers, fillers);
        ck_assert_uint_eq(r.n, 5);
        ck_assert_str_eq(r.msgs[0], "APP 42");
        ck_assert_str_eq(r.msgs[1], "STATUS b");
        ck_assert_str_eq(r.msgs[2], "EXTEND 5");
        ck_assert_str_eq(r.msgs[3], "READY");
        ck_assert_str_eq(r.msgs[4], "STATUS d");

        /* Writable again: straight through. */
        ck_assert_int_eq(outbox_put(b.o, OUTBOX_EVERY, "FAILED late"), 0);
        box_close(&b);
}
END_TEST

START_TEST(test_queue_is_bounded) {
        Box b = box_open();
        fill(b.pair[0]);
        char msg[32];
        for (int i = 0; i < CHANNEL_MAX_QUEUED; i++) {
                snprintf(msg, sizeof msg, "APP %d", i + 1);
                ck_assert_int_eq(outbox_put(b.o, OUTBOX_EVERY, msg), 1);
        }
        ck_assert_int_eq(outbox_put(b.o, OUTBOX_EVERY, "READY"), -ENOBUFS);
        ck_assert_int_eq(outbox_put(b.o, 1, "STATUS x"), -ENOBUFS);
        ck_assert_uint_eq(outbox_pending(b.o), CHANNEL_MAX_QUEUED);
        /* Every queued one still arrives, in order. */
        Received r = {};
        drain(b.e, b.o, b.pair[1], &r);
        ck_assert_uint_eq(r.n, CHANNEL_MAX_QUEUED);
        for (int i = 0; i < CHANNEL_MAX_QUEUED; i++) {
                snprintf(msg, sizeof msg, "APP %d", i + 1);
                ck_assert_str_eq(r.msgs[i], msg);
        }
        box_close(&b);
}
END_TEST

/* The queue is a ring: after some went, new ones wrap round to the front,
 * and a ring grown while wrapped keeps its order: doubled (8 to 16 to 32)
 * or to its bound (8 to 12). */
static void wrap_and_grow(size_t max) {
        Box b = box_open();
        b.o = outbox_free(b.o);
        ck_assert_int_eq(outbox_new(b.e, b.pair[0], true, max, CHANNEL_MAX_MESSAGE, &b.o), 0);
        fill(b.pair[0]);
        char msg[32];
        int put = 0;
        for (; put < 8; put++) {
                snprintf(msg, sizeof msg, "APP %d", put);
                ck_assert_int_eq(outbox_put(b.o, OUTBOX_EVERY, msg), 1);
        }
        /* Room for a few: the oldest go, the ring's start moves on. */
        Received r = {};
        char buf[CHANNEL_MAX_MESSAGE];
        while (outbox_pending(b.o) == 8) {
                ck_assert_int_gt(recv(b.pair[1], buf, sizeof buf, MSG_DONTWAIT), 0);
                ck_assert_int_ge(outbox_flush(b.o), 0);
        }
        ck_assert_uint_gt(outbox_pending(b.o), 0);
        /* Full again, wrapped round; then grown while wrapped, to the
         * bound. */
        for (; outbox_pending(b.o) < max - 1; put++) {
                snprintf(msg, sizeof msg, "APP %d", put);
                ck_assert_int_eq(outbox_put(b.o, OUTBOX_EVERY, msg), 1);
        }
        ck_assert_int_eq(outbox_put(b.o, 1, "STATUS x"), 1);
        ck_assert_int_eq(outbox_put(b.o, 1, "STATUS y"), 1); /* found at the ring's end */
        ck_assert_str_eq(outbox_queued(b.o, 1), "STATUS y");
        ck_assert_int_eq(outbox_put(b.o, OUTBOX_EVERY, "READY"), -ENOBUFS);
        drain(b.e, b.o, b.pair[1], &r);
        ck_assert_uint_eq(r.n, (size_t) put + 1);
        for (int i = 0; i < put; i++) {
                snprintf(msg, sizeof msg, "APP %d", i);
                ck_assert_str_eq(r.msgs[i], msg);
        }
        ck_assert_str_eq(r.msgs[put], "STATUS y");
        box_close(&b);
}

START_TEST(test_order_kept_across_wrap_and_growth) {
        wrap_and_grow(CHANNEL_MAX_QUEUED);
        wrap_and_grow(12);
}
END_TEST

START_TEST(test_peer_gone_drops_the_queue) {
        Box b = box_open();
        fill(b.pair[0]);
        ck_assert_int_eq(outbox_put(b.o, OUTBOX_EVERY, "READY"), 1);
        b.pair[1] = safe_close(b.pair[1]);
        /* Woken by the hangup, it finds nobody to send to. */
        ck_assert_int_gt(sd_event_run(b.e, 1000 * 1000), 0);
        ck_assert_uint_eq(outbox_pending(b.o), 0);
        ck_assert_int_eq(sd_event_run(b.e, 0), 0);
        ck_assert_int_eq(outbox_put(b.o, OUTBOX_EVERY, "FAILED x"), -EPIPE);
        box_close(&b);
}
END_TEST

START_TEST(test_outbox_free_closes_its_copy) {
        Box b = box_open();
        fill(b.pair[0]);
        ck_assert_int_eq(outbox_put(b.o, OUTBOX_EVERY, "READY"), 1);
        b.o = outbox_free(b.o);
        b.pair[0] = safe_close(b.pair[0]);
        /* No copy of the sending end is left open: the peer sees the end. */
        Received r = {};
        receive(b.pair[1], &r);
        ck_assert_uint_eq(r.n, 0);
        char c;
        ck_assert_int_eq(recv(b.pair[1], &c, 1, MSG_DONTWAIT), 0);
        box_close(&b);
}
END_TEST

/* Reads one message and the fd that came with it (-1: none). */
static ssize_t receive_with_fd(int fd, char *buf, size_t size, int *ret_fd) {
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int) * OUTBOX_MAX_FDS)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof control };
        ssize_t k = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        *ret_fd = -1;
        if (k < 0)
                return k;
        buf[k] = '\0';
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        if (c && c->cmsg_type == SCM_RIGHTS) {
                ck_assert_uint_eq(c->cmsg_len, CMSG_LEN(sizeof(int)));
                memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
        }
        return k;
}

/* Every copy of the pipe's read end is closed: a write fails with EPIPE.
 * Closes write_end. */
static void assert_no_reader_left(int write_end) {
        signal(SIGPIPE, SIG_IGN);
        ck_assert_int_eq(write(write_end, "y", 1), -1);
        ck_assert_int_eq(errno, EPIPE);
        close(write_end);
}

/* An fd-store entry sent while the peer does not read: the message waits
 * with a copy of its fd, in its place, and the caller may close its own. */
START_TEST(test_fds_wait_with_their_message) {
        Box b = box_open();
        int pipefd[2];
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK), 0);
        size_t fillers = fill(b.pair[0]);
        ck_assert_int_eq(outbox_put(b.o, 1, "STATUS a"), 1);
        ck_assert_int_eq(outbox_put_fds(b.o, 1, "FDSTORE=1", &pipefd[0], 1), 1); /* not in a's place */
        ck_assert_int_eq(outbox_put(b.o, 1, "STATUS b"), 1);
        ck_assert_uint_eq(outbox_pending(b.o), 3);
        close(pipefd[0]);

        /* The peer reads the fillers; nothing of ours yet, until flushed. */
        char buf[CHANNEL_MAX_MESSAGE];
        int fd;
        for (size_t i = 0; i < fillers; i++)
                ck_assert_int_gt(receive_with_fd(b.pair[1], buf, sizeof buf, &fd), 0);
        ck_assert_int_eq(outbox_flush(b.o), 0);

        ck_assert_int_gt(receive_with_fd(b.pair[1], buf, sizeof buf, &fd), 0);
        ck_assert_str_eq(buf, "STATUS a");
        ck_assert_int_eq(fd, -1);
        ck_assert_int_gt(receive_with_fd(b.pair[1], buf, sizeof buf, &fd), 0);
        ck_assert_str_eq(buf, "FDSTORE=1");
        ck_assert_int_ge(fd, 0);
        /* It is the pipe's read end. */
        ck_assert_int_eq(write(pipefd[1], "x", 1), 1);
        char c;
        ck_assert_int_eq(read(fd, &c, 1), 1);
        ck_assert_int_eq(c, 'x');
        close(fd);
        ck_assert_int_gt(receive_with_fd(b.pair[1], buf, sizeof buf, &fd), 0);
        ck_assert_str_eq(buf, "STATUS b");
        /* The outbox kept no copy. */
        assert_no_reader_left(pipefd[1]);
        box_close(&b);
}
END_TEST

/* A message dropped unsent closes the copies it held. */
START_TEST(test_dropped_message_closes_its_fds) {
        Box b = box_open();
        int pipefd[2];
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK), 0);
        fill(b.pair[0]);
        ck_assert_int_eq(outbox_put_fds(b.o, OUTBOX_EVERY, "FDSTORE=1", &pipefd[0], 1), 1);
        close(pipefd[0]);
        ck_assert_int_eq(write(pipefd[1], "x", 1), 1); /* the copy reads */
        b.o = outbox_free(b.o);
        assert_no_reader_left(pipefd[1]);
        box_close(&b);
}
END_TEST

/* A service manager's socket: a datagram socket we are connected to, whose
 * queue fills; its owner closing it is the end of what waits for it. */
START_TEST(test_manager_socket_closed_drops_the_queue) {
        int receiver = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(receiver, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "handoff-test-outbox-%d", (int) getpid());
        socklen_t len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1));
        ck_assert_int_eq(bind(receiver, (struct sockaddr *) &sa, len), 0);
        int sender = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(sender, 0);
        ck_assert_int_eq(connect(sender, (struct sockaddr *) &sa, len), 0);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Outbox *o;
        ck_assert_int_eq(outbox_new(e, sender, false, 64, 4097, &o), 0);
        fill(sender);
        ck_assert_int_eq(outbox_put(o, OUTBOX_EVERY, "READY=1"), 1);
        ck_assert_int_eq(outbox_flush(o), 1);
        close(receiver);
        ck_assert_int_eq(outbox_flush(o), -ECONNREFUSED);
        ck_assert_uint_eq(outbox_pending(o), 0);
        /* From then on the socket is not connected any more. */
        ck_assert_int_eq(outbox_put(o, OUTBOX_EVERY, "READY=1"), -ENOTCONN);
        outbox_free(o);
        /* It watched the socket itself, and left it open. */
        ck_assert_int_ge(fcntl(sender, F_GETFD), 0);
        sd_event_unref(e);
        close(sender);
}
END_TEST

/* Before a loop is attached (handoff's start, where its --listen sockets
 * are put into systemd's store), what does not fit waits for one, and goes
 * from it once the socket has room. */
START_TEST(test_waits_for_the_loop_attached_later) {
        int pair[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
        Outbox *o;
        ck_assert_int_eq(outbox_new(NULL, pair[0], true, 8, 4097, &o), -EINVAL);
        ck_assert_int_eq(outbox_new(NULL, pair[0], false, 8, 4097, &o), 0);
        fill(pair[0]);
        ck_assert_int_eq(outbox_put(o, OUTBOX_EVERY, "FDSTORE=1"), 1);
        ck_assert_uint_eq(outbox_pending(o), 1);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_eq(outbox_attach(o, e, 64), 0);
        ck_assert_int_eq(outbox_attach(o, e, 64), -EBUSY);
        char buf[64];
        for (int i = 0; i < 10000 && outbox_pending(o) > 0; i++) {
                while (recv(pair[1], buf, sizeof buf, MSG_DONTWAIT) > 0)
                        ;
                ck_assert_int_ge(sd_event_run(e, 100 * 1000), 0);
        }
        ck_assert_uint_eq(outbox_pending(o), 0);
        ssize_t n, last = -1;
        while ((n = recv(pair[1], buf, sizeof buf - 1, MSG_DONTWAIT)) > 0)
                last = n;
        ck_assert_int_eq(last, (ssize_t) strlen("FDSTORE=1"));
        outbox_free(o);
        sd_event_unref(e);
        close(pair[0]);
        close(pair[1]);
}
END_TEST

static void no_took_over(bool reload_pending, void *userdata) {
        ck_abort();
}
static void no_unlink_file(const ChannelUnlink *u, void *userdata) {
        ck_abort();
}
static void no_unlink(const char *path, void *userdata) {
        ck_abort();
}
static void no_gone(void *userdata) {
        ck_abort();
}
static const TakeoverCallbacks no_callbacks = { no_took_over, no_unlink_file, no_unlink, no_gone };

/* The next handoff's reports: a predecessor that reads late gets APP, its
 * generation's last STATUS= before READY, and the longest EXTEND. */
START_TEST(test_takeover_reports_wait_for_a_stalled_predecessor) {
        int pair[2];
        channel_pair(pair);
        sd_event *e;
        ck_assert_int_ge(sd_event_new(&e), 0);
        Takeover *t;
        int sender = pair[0];
        ck_assert_int_eq(takeover_new(e, sender, &no_callbacks, NULL, &t), 0);
        fill(sender);
        takeover_report_app(t, 42);
        takeover_report_extend(t, 30000000);
        takeover_report_extend(t, 1000000);
        for (int i = 1; i <= 200; i++) {
                char st[64];
                snprintf(st, sizeof st, "step %d", i);
                takeover_report_status(t, st);
        }
        takeover_report_ready(t);

        Received r = {};
        for (int i = 0; i < 100; i++) {
                receive(pair[1], &r);
                if (r.n >= 5)
                        break;
                ck_assert_int_ge(sd_event_run(e, 100 * 1000), 0);
        }
        /* What it understands, first (an older predecessor ignores it). */
        ck_assert_uint_eq(r.n, 5);
        ck_assert_str_eq(r.msgs[0], "FEATURES stop unlinks");
        ck_assert_str_eq(r.msgs[1], "APP 42");
        ck_assert_str_eq(r.msgs[2], "EXTEND 30000000");
        ck_assert_str_eq(r.msgs[3], "STATUS step 200");
        ck_assert_str_eq(r.msgs[4], "READY");
        takeover_free(t);
        sd_event_unref(e);
        close(pair[1]);
}
END_TEST

static Suite *outbox_suite(void) {
        Suite *s = suite_create("outbox");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_sends_at_once_when_writable);
        tcase_add_test(tc, test_full_channel_keeps_order_and_latest);
        tcase_add_test(tc, test_queue_is_bounded);
        tcase_add_test(tc, test_order_kept_across_wrap_and_growth);
        tcase_add_test(tc, test_peer_gone_drops_the_queue);
        tcase_add_test(tc, test_outbox_free_closes_its_copy);
        tcase_add_test(tc, test_fds_wait_with_their_message);
        tcase_add_test(tc, test_dropped_message_closes_its_fds);
        tcase_add_test(tc, test_manager_socket_closed_drops_the_queue);
        tcase_add_test(tc, test_waits_for_the_loop_attached_later);
        tcase_add_test(tc, test_takeover_reports_wait_for_a_stalled_predecessor);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(outbox_suite());
}
