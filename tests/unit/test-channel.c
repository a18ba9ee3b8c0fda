/* SPDX-License-Identifier: MIT */
/* The handover channel's messages (channel.c), and the inherited state a
 * handoff started as the next one reads from its environment (takeover.c). */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel.h"
#include "takeover.h"
#include "unit.h"

START_TEST(test_parse_good) {
        ChannelMessage m;
        ck_assert_int_eq(channel_parse("PID 42", &m), 0);
        ck_assert_int_eq(m.kind, CHANNEL_PID);
        ck_assert_int_eq(m.pid, 42);
        ck_assert_int_eq(channel_parse("APP 4194304", &m), 0);
        ck_assert_int_eq(m.kind, CHANNEL_APP);
        ck_assert_int_eq(m.pid, 4194304);
        ck_assert_int_eq(channel_parse("READY", &m), 0);
        ck_assert_int_eq(m.kind, CHANNEL_READY);
        ck_assert_int_eq(channel_parse("FAILED generation 3 failed: exited with status 1", &m), 0);
        ck_assert_int_eq(m.kind, CHANNEL_FAILED);
        ck_assert_str_eq(m.text, "generation 3 failed: exited with status 1");
        ck_assert_int_eq(channel_parse("STATUS warming up: 40%", &m), 0);
        ck_assert_int_eq(m.kind, CHANNEL_STATUS);
        ck_assert_str_eq(m.text, "warming up: 40%");
        ck_assert_int_eq(channel_parse("EXTEND 30000000", &m), 0);
        ck_assert_int_eq(m.kind, CHANNEL_EXTEND);
        ck_assert_uint_eq(m.usec, 30000000);
        ck_assert_int_eq(channel_parse("EXTEND 18446744073709551615", &m), 0);
        ck_assert_uint_eq(m.usec, UINT64_MAX);
        ck_assert_int_eq(channel_parse("UNLINK /run/x.sock", &m), 0);
        ck_assert_int_eq(m.kind, CHANNEL_UNLINK);
        ck_assert_str_eq(m.text, "/run/x.sock");
        ck_assert_int_eq(channel_parse("UNLINKS", &m), 0);
        ck_assert_int_eq(m.kind, CHANNEL_UNLINKS);
        ck_assert_int_eq(channel_parse("TAKEOVER 0", &m), 0);
        ck_assert_int_eq(m.kind, CHANNEL_TAKEOVER);
        ck_assert(!m.reload_pending);
        ck_assert_int_eq(channel_parse("TAKEOVER 1", &m), 0);
        ck_assert(m.reload_pending);
        ck_assert_int_eq(channel_parse("NAMED 15 30000000 3 1250000 1450000 4242", &m), 0);
        ck_assert_int_eq(m.kind, CHANNEL_NAMED);
        ck_assert_int_eq(m.named.stop_signal, 15);
        ck_assert_uint_eq(m.named.drain_timeout, 30000000);
        ck_assert_uint_eq(m.named.number, 3);
        ck_assert_uint_eq(m.named.started, 1250000);
        ck_assert_uint_eq(m.named.ready, 1450000);
        ck_assert_int_eq(m.named.group, 4242);
        /* A later version's fields after these are ignored. */
        ck_assert_int_eq(channel_parse("NAMED 15 30000000 3 1250000 1450000 4242 7 x", &m), 0);
        ck_assert_int_eq(m.kind, CHANNEL_NAMED);
        ck_assert_uint_eq(m.named.ready, 1450000);
        ck_assert_int_eq(m.named.group, 4242);
        ck_assert_str_eq(m.named.cgroup, "");
        /* Its cgroup's leaf, then: a name, never a path; and a later
         * version's fields after it. */
        ck_assert_int_eq(channel_parse("NAMED 15 30000000 3 1250000 1450000 4242 gen-3 x", &m), 0);
        ck_assert_str_eq(m.named.cgroup, "gen-3");
        ck_assert_int_eq(channel_parse("NAMED 15 30000000 3 1250000 1450000 4242 gen-3.16", &m), 0);
        ck_assert_str_eq(m.named.cgroup, "gen-3.16");
        static const char *const not_leaves[] = { "gen-", "gen-x", "gen-3.", "gen-3/..", "gen-3.1.2", "../gen-3",
                                                  "gen", "gen-1234567890123456789012345678" };
        for (size_t i = 0; i < sizeof not_leaves / sizeof *not_leaves; i++) {
                char msg[128];
                snprintf(msg, sizeof msg, "NAMED 15 30000000 3 1250000 1450000 4242 %s", not_leaves[i]);
                ck_assert_int_eq(channel_parse(msg, &m), 0);
                ck_assert_msg(strcmp(m.named.cgroup, "") == 0, "%s", msg);
        }
        /* --drain-timeout=infinity: never; the largest number. */
        ck_assert_int_eq(channel_parse("NAMED 64 18446744073709551615 4294967295 18446744073709551615 "
                                       "18446744073709551615 4194304", &m), 0);
        ck_assert_int_eq(m.named.stop_signal, 64);
        ck_assert_uint_eq(m.named.drain_timeout, UINT64_MAX);
        ck_assert_uint_eq(m.named.number, UINT_MAX);
        ck_assert_uint_eq(m.named.ready, UINT64_MAX);
        ck_assert_int_eq(m.named.group, 4194304);
        /* No serving generation: all 0. */
        ck_assert_int_eq(channel_parse("UNNAMED", &m), 0);
        ck_assert_int_eq(m.kind, CHANNEL_UNNAMED);
        ck_assert_int_eq(channel_parse("NAMED 1 0 0 0 0 0", &m), 0);
        ck_assert_int_eq(m.named.stop_signal, 1);
        ck_assert_uint_eq(m.named.drain_timeout, 0);
        ck_assert_uint_eq(m.named.number, 0);
        ck_assert_int_eq(m.named.group, 0);
        /* What channel_send_named() sends reads back the same. */
        int sv[2], fd = -1;
        char buf[128];
        ChannelNamed sent = { .stop_signal = 3, .drain_timeout = 7, .number = 12, .started = 99, .ready = 100,
                              .group = 98, .cgroup = "gen-12" };
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(channel_send_named(sv[0], -EBADF, &sent), 0);
        ck_assert_int_eq(channel_read_fd(sv[1], buf, sizeof buf, &m, &fd), 1);
        ck_assert_str_eq(buf, "NAMED 3 7 12 99 100 98 gen-12");
        ck_assert(m.named.stop_signal == sent.stop_signal && m.named.drain_timeout == sent.drain_timeout &&
                  m.named.number == sent.number && m.named.started == sent.started && m.named.ready == sent.ready &&
                  m.named.group == sent.group && strcmp(m.named.cgroup, sent.cgroup) == 0);
        close(sv[0]);
        close(sv[1]);
}
END_TEST

START_TEST(test_parse_bad) {
        static const char *const bad[] = {
                "", "PID", "PID ", "PID -1", "PID 0", "PID 4194305", "PID 12x", "PID +5", "PID  5", "PID 05", "PID \t5", "PID 5 ",
                "APP 99999999999999999999", "READY ", "ready", "UNLINK relative", "UNLINK ", "TAKEOVER",
                "TAKEOVER 2", "TAKEOVER 1 ", "TAKEOVER 01", "HELLO", "EXTEND", "EXTEND ", "EXTEND 5s", "EXTEND -1",
                "EXTEND 18446744073709551616",
                "NAMED", "NAMED ", "NAMED 15", "NAMED 15 ", "NAMED 15 1", "NAMED 15 1 2 3", "NAMED 15 1 2 3 4",
                "NAMED 15 1 2 3 4 ", "NAMED 15 1 2 3 4 5 ", "NAMED 15 1 2 3 4 5x", "NAMED 15 1 2 3 4 5\t6",
                "NAMED 0 1 2 3 4 5", "NAMED 65 1 2 3 4 5", "NAMED 015 1 2 3 4 5",
                "NAMED -15 1 2 3 4 5", "NAMED 15  1 2 3 4 5", "NAMED 15 1s 2 3 4 5", "NAMED 15 -1 2 3 4 5",
                "NAMED 15 18446744073709551616 2 3 4 5", "NAMED 15 1 4294967296 3 4 5", "NAMED 15 01 2 3 4 5",
                "NAMED 15 1 2 3 04 5", "NAMED 15 1 2 3 +4 5", "NAMED 15 1 2 3 4 5\t", "NAMED TERM 1 2 3 4 5",
                "NAMED  15 1 2 3 4 5", "NAMED 150 1 2 3 4 5", "NAMED 15 1 2 3 123456789012345678901 5",
                "NAMED 15 1 2 3 4 4194305", "NAMED 15 1 2 3 4 05", "NAMED 15 1 2 3 4 -5",
                "UNNAMED ", "UNNAMED 1", "unnamed", "UNLINKS ", "UNLINKS /run/x.sock", "unlinks",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                ChannelMessage m = { .kind = CHANNEL_READY, .pid = 7 };
                ck_assert_msg(channel_parse(bad[i], &m) == -EBADMSG, "accepted \"%s\"", bad[i]);
                ck_assert_int_eq(m.pid, 7); /* untouched on failure */
        }
}
END_TEST

/* An entry of UNLINKS's file: the file's dev and ino, then its path; a
 * plain path (UNLINK's, which says no file) is not one. */
START_TEST(test_parse_unlink) {
        static const char entry[] = "65024 18446744073709551615 /run/x 1 2.sock";
        ChannelUnlink u;
        ck_assert_int_eq(channel_parse_unlink(entry, &u), 0);
        ck_assert_uint_eq(u.dev, 65024);
        ck_assert_uint_eq(u.ino, UINT64_MAX);
        ck_assert_ptr_eq(u.path, entry + 27);
        ck_assert_str_eq(u.path, "/run/x 1 2.sock");
        ck_assert_int_eq(channel_parse_unlink("0 0 /x", &u), 0);
        ck_assert(u.dev == 0 && u.ino == 0);
        ck_assert_str_eq(u.path, "/x");

        static const char *const bad[] = {
                "", "/run/x.sock", "relative", "1 2", "1 2 ", "1 2 x", "1 /x", "01 2 /x", "1 02 /x", "1 -2 /x",
                "1  2 /x", "1 2  /x", "1 18446744073709551616 /x", "18446744073709551616 1 /x", "+1 2 /x", " /x",
                " 1 2 /x", "1\t2 /x", "1 2 3 /x", "x 2 /x",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                u = (ChannelUnlink) { .dev = 7 };
                ck_assert_msg(channel_parse_unlink(bad[i], &u) == -EINVAL, "accepted \"%s\"", bad[i]);
                ck_assert_uint_eq(u.dev, 7); /* untouched on failure */
        }
}
END_TEST

START_TEST(test_send_receive) {
        int sv[2], fd = -1;
        char buf[64];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(channel_receive(sv[1], buf, sizeof buf, &fd), -EAGAIN);
        ck_assert_int_eq(channel_send(sv[0], "APP %d", 17), 0);
        ck_assert_int_eq(channel_receive(sv[1], buf, sizeof buf, &fd), 6);
        ck_assert_str_eq(buf, "APP 17");
        ck_assert_int_lt(fd, 0);
        /* A message with a NUL inside is refused. */
        ck_assert_int_eq(send(sv[0], "READY\0x", 7, 0), 7);
        ck_assert_int_eq(channel_receive(sv[1], buf, sizeof buf, &fd), -EBADMSG);
        close(sv[0]);
        ck_assert_int_eq(channel_receive(sv[1], buf, sizeof buf, &fd), 0);
        close(sv[1]);
}
END_TEST

/* A message of no bytes, which only a buggy peer sends, is none of ours,
 * not the end of file, which reads alike: while the peer is open, and
 * after its end with a message behind it. */
START_TEST(test_empty_message) {
        int sv[2], fd = -1, passed = eventfd(0, EFD_CLOEXEC);
        char buf[64];
        ChannelMessage m;
        ck_assert_int_ge(passed, 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(send(sv[0], "", 0, 0), 0);
        ck_assert_int_eq(channel_read(sv[1], buf, sizeof buf, &m), -EBADMSG);
        ck_assert_str_eq(buf, "");
        ck_assert_int_eq(channel_read(sv[1], buf, sizeof buf, &m), -EAGAIN);
        /* Two, the peer still there: the first is not taken for its end of
         * file for the second queued behind it. */
        ck_assert_int_eq(send(sv[0], "", 0, 0), 0);
        ck_assert_int_eq(send(sv[0], "", 0, 0), 0);
        ck_assert_int_eq(channel_read(sv[1], buf, sizeof buf, &m), -EBADMSG);
        ck_assert_int_eq(channel_read(sv[1], buf, sizeof buf, &m), -EBADMSG);
        ck_assert_int_eq(channel_read(sv[1], buf, sizeof buf, &m), -EAGAIN);
        /* With an fd, which is not handed out. */
        ck_assert_int_eq(channel_send_fd(sv[0], passed, "%s", ""), 0);
        fd = 7;
        ck_assert_int_eq(channel_receive(sv[1], buf, sizeof buf, &fd), -EBADMSG);
        ck_assert_int_lt(fd, 0);
        ck_assert_int_eq(send(sv[0], "", 0, 0), 0);
        ck_assert_int_eq(channel_send(sv[0], "READY"), 0);
        close(sv[0]);
        ck_assert_int_eq(channel_read(sv[1], buf, sizeof buf, &m), -EBADMSG);
        ck_assert_int_eq(channel_read(sv[1], buf, sizeof buf, &m), 1);
        ck_assert_int_eq(m.kind, CHANNEL_READY);
        ck_assert_int_eq(channel_read(sv[1], buf, sizeof buf, &m), 0);
        ck_assert_int_eq(channel_read(sv[1], buf, sizeof buf, &m), 0);
        close(sv[1]);
        close(passed);
}
END_TEST

/* NAMED carries a pidfd: channel_read_fd() keeps it, channel_read() drops it. */
START_TEST(test_send_receive_fd) {
        int sv[2], fd = -1, passed = eventfd(0, EFD_CLOEXEC);
        char buf[64];
        ChannelMessage m;
        ck_assert_int_ge(passed, 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(channel_send_fd(sv[0], passed, "NAMED %d %d 2 10 20 9", 15, 5000000), 0);
        ck_assert_int_eq(channel_read_fd(sv[1], buf, sizeof buf, &m, &fd), 1);
        ck_assert_int_eq(m.kind, CHANNEL_NAMED);
        ck_assert_int_eq(m.named.stop_signal, 15);
        ck_assert_uint_eq(m.named.drain_timeout, 5000000);
        ck_assert_int_ge(fd, 0);
        struct stat a, b;
        ck_assert_int_eq(fstat(fd, &a), 0);
        ck_assert_int_eq(fstat(passed, &b), 0);
        ck_assert(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
        close(fd);
        /* Without an fd (the old main had no pidfd to pass): -EBADF. */
        ck_assert_int_eq(channel_send_fd(sv[0], -EBADF, "NAMED 15 0 0 0 0 0"), 0);
        fd = 7;
        ck_assert_int_eq(channel_read_fd(sv[1], buf, sizeof buf, &m, &fd), 1);
        ck_assert_int_lt(fd, 0);
        /* An fd with a message that is none of ours is not handed out. */
        ck_assert_int_eq(channel_send_fd(sv[0], passed, "HELLO"), 0);
        fd = -EBADF;
        ck_assert_int_eq(channel_read_fd(sv[1], buf, sizeof buf, &m, &fd), -EBADMSG);
        ck_assert_int_lt(fd, 0);
        close(sv[0]);
        ck_assert_int_eq(channel_read_fd(sv[1], buf, sizeof buf, &m, &fd), 0);
        close(sv[1]);
        close(passed);
}
END_TEST

typedef struct Paths {
        size_t n;
        char last[64];
} Paths;

/* The n-th entry: "/run/s<n>.sock", the file dev n, ino UINT64_MAX - n. */
static void count_path(const ChannelUnlink *u, void *userdata) {
        Paths *p = userdata;
        char want[64];
        ck_assert_uint_eq(u->dev, p->n);
        ck_assert_uint_eq(u->ino, UINT64_MAX - p->n);
        snprintf(want, sizeof want, "/run/s%zu.sock", p->n++);
        ck_assert_str_eq(u->path, want);
        snprintf(p->last, sizeof p->last, "%s", u->path);
}

/* What the old main says, with more unix socket files than the channel's
 * buffer holds messages: every message arrives, in order, though the
 * reader reads nothing until the writer is gone. A message a path filled
 * the buffer, and the ones after it (NAMED, UNNAMED) were lost. */
START_TEST(test_unlinks_many) {
        enum { N = 20000 };
        static char names[N][24];
        static char *paths[N];
        static dev_t devs[N];
        static ino_t inos[N];
        int sv[2], fd = -EBADF, pidfd = eventfd(0, EFD_CLOEXEC);
        char buf[CHANNEL_MAX_MESSAGE];
        ChannelMessage m;
        for (size_t i = 0; i < N; i++) {
                snprintf(names[i], sizeof names[i], "/run/s%zu.sock", i);
                paths[i] = names[i];
                devs[i] = (dev_t) i;
                inos[i] = (ino_t) (UINT64_MAX - i);
        }
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(channel_send_unlinks(sv[0], paths, devs, inos, N), 0);
        ck_assert_int_eq(channel_send_fd(sv[0], pidfd, "NAMED 15 0 0 0 0 0"), 0);
        ck_assert_int_eq(channel_send(sv[0], "UNNAMED"), 0);
        close(sv[0]);

        ck_assert_int_eq(channel_read_fd(sv[1], buf, sizeof buf, &m, &fd), 1);
        ck_assert_int_eq(m.kind, CHANNEL_UNLINKS);
        Paths p = {};
        ck_assert_int_eq(channel_read_unlinks(fd, count_path, &p), 0);
        ck_assert_uint_eq(p.n, N);
        /* Read again from its start: the offset is not the reader's to keep. */
        p = (Paths) {};
        ck_assert_int_eq(channel_read_unlinks(fd, count_path, &p), 0);
        ck_assert_uint_eq(p.n, N);
        close(fd);
        ck_assert_int_eq(channel_read(sv[1], buf, sizeof buf, &m), 1);
        ck_assert_int_eq(m.kind, CHANNEL_NAMED);
        ck_assert_int_eq(channel_read(sv[1], buf, sizeof buf, &m), 1);
        ck_assert_int_eq(m.kind, CHANNEL_UNNAMED);
        ck_assert_int_eq(channel_read(sv[1], buf, sizeof buf, &m), 0);
        close(sv[1]);
        close(pidfd);
}
END_TEST

/* An UNLINKS file is read up to an entry cut short, entries that do not
 * parse (a plain path, a relative one, a field too many) are skipped, and
 * an fd that is not a regular file is refused unread. */
START_TEST(test_unlinks_bad) {
        char tmpl[] = "/tmp/test-channel-XXXXXX";
        int f = mkstemp(tmpl);
        ck_assert_int_ge(f, 0);
        unlink(tmpl);
        static const char data[] = "0 18446744073709551615 /run/s0.sock\0" "/run/x.sock\0" "1 2 relative\0" "\0"
                                   "1 2 3 /run/x.sock\0" "1 18446744073709551614 /run/s1.sock\0"
                                   "2 18446744073709551613 /run/s2.so";
        ck_assert_int_eq(write(f, data, sizeof data - 1), (ssize_t) sizeof data - 1);
        Paths p = {};
        ck_assert_int_eq(channel_read_unlinks(f, count_path, &p), 0);
        ck_assert_uint_eq(p.n, 2);
        ck_assert_str_eq(p.last, "/run/s1.sock");
        close(f);
        int e = eventfd(0, EFD_CLOEXEC);
        p = (Paths) {};
        ck_assert_int_eq(channel_read_unlinks(e, count_path, &p), -EBADFD);
        ck_assert_uint_eq(p.n, 0);
        close(e);
}
END_TEST

START_TEST(test_inherit_from_env) {
        Inheritance in;
        setenv("HANDOFF_GENERATION", "5", 1);
        setenv("HANDOFF_STATS", "3 1 123456789", 1);
        takeover_inherit_from_env(&in);
        ck_assert_uint_eq(in.last_number, 4);
        ck_assert_uint_eq(in.reloads_ok, 3);
        ck_assert_uint_eq(in.reloads_failed, 1);
        ck_assert_uint_eq(in.reload_started, 123456789);
        ck_assert_ptr_null(getenv("HANDOFF_GENERATION"));
        ck_assert_ptr_null(getenv("HANDOFF_STATS"));

        static const char *const bad_stats[] = { "3 1", "3 1 2 4", "-3 1 2", "3 x 2", "99999999999 1 2", "" };
        for (size_t i = 0; i < sizeof bad_stats / sizeof bad_stats[0]; i++) {
                setenv("HANDOFF_GENERATION", i % 2 ? "0" : "abc", 1);
                setenv("HANDOFF_STATS", bad_stats[i], 1);
                takeover_inherit_from_env(&in);
                ck_assert_msg(in.last_number == 0 && in.reloads_ok == 0 && in.reloads_failed == 0 &&
                                      in.reload_started == 0,
                              "accepted \"%s\"", bad_stats[i]);
        }
}
END_TEST

int main(void) {
        Suite *s = suite_create("channel");
        TCase *tc = tcase_create("messages");
        tcase_add_test(tc, test_parse_good);
        tcase_add_test(tc, test_parse_bad);
        tcase_add_test(tc, test_parse_unlink);
        tcase_add_test(tc, test_send_receive);
        tcase_add_test(tc, test_send_receive_fd);
        tcase_add_test(tc, test_empty_message);
        tcase_add_test(tc, test_unlinks_many);
        tcase_add_test(tc, test_unlinks_bad);
        tcase_add_test(tc, test_inherit_from_env);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
