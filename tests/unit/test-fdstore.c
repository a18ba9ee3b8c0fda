/* SPDX-License-Identifier: MIT */
/* fdstore.c and the staging in service-store.c: the store keeps fds as
 * systemd's does (sd_notify(3), FDSTORE=1): every fd, several under one
 * name, in the order stored; a duplicate (the same open file) once; a
 * removal takes every fd of its name; --fd-store-max bounds it. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fdstore.h"
#include "log.h"
#include "notify.h"
#include "service-store.h"
#include "unit.h"

static bool is_open(int fd) {
        return fcntl(fd, F_GETFD) >= 0;
}

static int memfd(void) {
        int fd = memfd_create("test-fdstore", MFD_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        return fd;
}

static void assert_names(const FdStore *s, const char *const *names, size_t n) {
        ck_assert_uint_eq(s->n, n);
        for (size_t i = 0; i < n; i++)
                ck_assert_str_eq(s->entries[i].name, names[i]);
}

START_TEST(test_two_fds_one_name_are_both_kept) {
        FdStore s = { .max = 16 };
        int a = memfd(), b = memfd(), c = memfd();
        ck_assert_int_eq(fdstore_add(&s, "conn", a, true), 1);
        ck_assert_int_eq(fdstore_add(&s, "state", b, true), 1);
        ck_assert_int_eq(fdstore_add(&s, "conn", c, true), 1);
        assert_names(&s, (const char *[]) { "conn", "state", "conn" }, 3);
        /* In the order stored, none replaced. */
        ck_assert_int_eq(s.entries[0].fd, a);
        ck_assert_int_eq(s.entries[1].fd, b);
        ck_assert_int_eq(s.entries[2].fd, c);
        ck_assert(is_open(a) && is_open(b) && is_open(c));
        fdstore_done(&s);
        ck_assert(!is_open(a) && !is_open(b) && !is_open(c));
}
END_TEST

START_TEST(test_the_same_open_file_is_kept_once) {
        FdStore s = { .max = 16 };
        int a = memfd();
        int again = dup(a), other_name = dup(a);
        ck_assert_int_ge(again, 0);
        ck_assert_int_ge(other_name, 0);
        ck_assert_int_eq(fdstore_add(&s, "state", a, true), 1);
        /* A second copy of the same open file, as a second datagram with
         * it brings: dropped and closed, whatever its name (systemd compares
         * with every stored fd). */
        ck_assert_int_eq(fdstore_add(&s, "state", again, true), 0);
        ck_assert(!is_open(again));
        ck_assert_int_eq(fdstore_add(&s, "other", other_name, true), 0);
        ck_assert(!is_open(other_name));
        assert_names(&s, (const char *[]) { "state" }, 1);
        ck_assert(is_open(a));
        fdstore_done(&s);
}
END_TEST

START_TEST(test_two_opens_of_one_file_are_two_fds) {
        FdStore s = { .max = 16 };
        int a = open("/dev/null", O_RDONLY | O_CLOEXEC), b = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(a, 0);
        ck_assert_int_ge(b, 0);
        ck_assert_int_eq(fdstore_add(&s, "null", a, true), 1);
        ck_assert_int_eq(fdstore_add(&s, "null", b, true), 1);
        assert_names(&s, (const char *[]) { "null", "null" }, 2);
        fdstore_done(&s);
}
END_TEST

START_TEST(test_same_file_fallback) {
        int m = memfd(), d = dup(m), m2 = memfd();
        ck_assert(fd_same_file_by_stat(m, d));
        ck_assert(!fd_same_file_by_stat(m, m2));
        /* The ends of a pipe share an inode, not an access mode. */
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert(!fd_same_file_by_stat(p[0], p[1]));
        ck_assert(fd_same_file(p[0], p[0]));
        ck_assert(!fd_same_file(p[0], p[1]));
        /* Two opens of a device node may be two different contexts. */
        int n1 = open("/dev/null", O_RDONLY | O_CLOEXEC), n2 = dup(n1);
        ck_assert_int_ge(n1, 0);
        ck_assert(!fd_same_file_by_stat(n1, n2));
        ck_assert(fd_same_file(m, d));
        ck_assert(!fd_same_file(m, m2));
        int fds[] = { m, d, m2, p[0], p[1], n1, n2 };
        for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
                close(fds[i]);
}
END_TEST

START_TEST(test_remove_by_name_removes_all) {
        FdStore s = { .max = 16 };
        int a = memfd(), b = memfd(), c = memfd(), d = memfd();
        ck_assert_int_eq(fdstore_add(&s, "conn", a, true), 1);
        ck_assert_int_eq(fdstore_add(&s, "state", b, true), 1);
        ck_assert_int_eq(fdstore_add(&s, "conn", c, true), 1);
        ck_assert_int_eq(fdstore_add(&s, "multi", d, true), 1);
        ck_assert_uint_eq(fdstore_remove(&s, "conn"), 2);
        ck_assert(!is_open(a) && !is_open(c));
        assert_names(&s, (const char *[]) { "state", "multi" }, 2);
        ck_assert_int_eq(s.entries[0].fd, b);
        ck_assert_int_eq(s.entries[1].fd, d);
        ck_assert_uint_eq(fdstore_remove(&s, "conn"), 0);
        fdstore_done(&s);
}
END_TEST

START_TEST(test_limit) {
        FdStore s = { .max = 2 };
        int a = memfd(), b = memfd(), c = memfd(), d = memfd();
        ck_assert_int_eq(fdstore_add(&s, "conn", a, true), 1);
        ck_assert_int_eq(fdstore_add(&s, "conn", b, true), 1);
        /* Full: a third fd is refused and closed, under any name. */
        ck_assert_int_eq(fdstore_add(&s, "conn", c, true), -ENOSPC);
        ck_assert(!is_open(c));
        ck_assert_int_eq(fdstore_add(&s, "other", d, true), -ENOSPC);
        ck_assert(!is_open(d));
        assert_names(&s, (const char *[]) { "conn", "conn" }, 2);
        /* A removal makes room again. */
        ck_assert_uint_eq(fdstore_remove(&s, "conn"), 2);
        ck_assert_int_eq(fdstore_add(&s, "conn", memfd(), true), 1);
        ck_assert_int_eq(fdstore_add(&s, "bad:name", memfd(), true), -EINVAL);
        assert_names(&s, (const char *[]) { "conn" }, 1);
        fdstore_done(&s);
}
END_TEST

/* Runs the loop until the store has n entries, for at most 5 s. */
static void run_until(sd_event *e, const FdStore *s, size_t n) {
        for (int i = 0; i < 50 && s->n != n; i++)
                ck_assert_int_ge(sd_event_run(e, 100 * 1000), 0);
        ck_assert_uint_eq(s->n, n);
}

START_TEST(test_watched_fd_that_hangs_up_is_dropped) {
        sd_event *e = NULL;
        ck_assert_int_ge(sd_event_new(&e), 0);
        FdStore s = { .max = 16 };
        int watched[2], kept[2], later[2];
        ck_assert_int_eq(pipe2(watched, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(kept, O_CLOEXEC), 0);
        /* Stored before there is a loop (a next handoff's, from its
         * predecessor): watched from fdstore_watch() on. A memfd cannot be
         * watched (EPERM) and is kept; so is an fd stored with FDPOLL=0. */
        ck_assert_int_eq(fdstore_add(&s, "watched", watched[0], true), 1);
        ck_assert_int_eq(fdstore_add(&s, "nopoll", kept[0], false), 1);
        ck_assert_int_eq(fdstore_add(&s, "state", memfd(), true), 1);
        fdstore_watch(&s, e);
        close(watched[1]);
        close(kept[1]);
        run_until(e, &s, 2);
        assert_names(&s, (const char *[]) { "nopoll", "state" }, 2);
        ck_assert(!is_open(watched[0]) && is_open(kept[0]));

        /* Stored while watched: watched at once. A removed fd's watch goes
         * with it, or its number, taken again, could not be watched. */
        ck_assert_uint_eq(fdstore_remove(&s, "nopoll"), 1);
        ck_assert_int_eq(pipe2(later, O_CLOEXEC), 0);
        ck_assert_int_eq(fdstore_add(&s, "later", later[0], true), 1);
        close(later[1]);
        run_until(e, &s, 1);
        assert_names(&s, (const char *[]) { "state" }, 1);

        /* Unwatched, a hang-up drops nothing. */
        fdstore_watch(&s, NULL);
        ck_assert_int_eq(pipe2(later, O_CLOEXEC), 0);
        ck_assert_int_eq(fdstore_add(&s, "later", later[0], true), 1);
        close(later[1]);
        ck_assert_int_eq(sd_event_run(e, 0), 0);
        ck_assert_uint_eq(s.n, 2);
        fdstore_done(&s);
        sd_event_unref(e);
}
END_TEST

/* What a message from a generation brings: its fields, and fds. */
static void send_to(ServiceStore *ss, StorePolicy policy, bool store, bool remove, const char *name, int *fds,
                    size_t n) {
        NotifyMessage m = { .fdstore = store, .fdstoreremove = remove, .fdname = name };
        service_store_message(ss, policy, false, 2, &m, fds, n);
}

START_TEST(test_staged_like_applied) {
        FdStore st = { .max = 16 };
        ServiceStore ss = { .store = &st };
        int old = memfd();
        ck_assert_int_eq(fdstore_add(&st, "state", old, true), 1);
        /* A candidate's requests wait for its commit, then apply in order:
         * two fds under one name in two messages, two in one message, the
         * same open file again, a removal of the old state. */
        int c1 = memfd(), c2 = memfd(), multi[] = { memfd(), memfd() };
        int again = dup(c1);
        send_to(&ss, STORE_STAGE, true, false, "conn", &c1, 1);
        send_to(&ss, STORE_STAGE, true, false, "conn", &c2, 1);
        send_to(&ss, STORE_STAGE, true, false, "multi", multi, 2);
        send_to(&ss, STORE_STAGE, true, false, "conn", &again, 1);
        ck_assert(!is_open(again));
        send_to(&ss, STORE_STAGE, false, true, "state", NULL, 0);
        assert_names(&st, (const char *[]) { "state" }, 1);
        service_store_commit_staged(&ss, false);
        assert_names(&st, (const char *[]) { "conn", "conn", "multi", "multi" }, 4);
        ck_assert(!is_open(old));
        ck_assert_int_eq(st.entries[0].fd, c1);
        ck_assert_int_eq(st.entries[1].fd, c2);
        ck_assert_int_eq(st.entries[2].fd, multi[0]);
        ck_assert_int_eq(st.entries[3].fd, multi[1]);

        /* A removal staged after fds of its name takes them too; fds staged
         * after it stay. */
        int x = memfd(), y = memfd();
        send_to(&ss, STORE_STAGE, true, false, "conn", &x, 1);
        send_to(&ss, STORE_STAGE, false, true, "conn", NULL, 0);
        ck_assert(!is_open(x));
        send_to(&ss, STORE_STAGE, true, false, "conn", &y, 1);
        service_store_commit_staged(&ss, false);
        assert_names(&st, (const char *[]) { "multi", "multi", "conn" }, 3);
        ck_assert_int_eq(st.entries[2].fd, y);
        service_store_done(&ss);
        fdstore_done(&st);
}
END_TEST

START_TEST(test_remove_needs_a_name) {
        FdStore st = { .max = 16 };
        ServiceStore ss = { .store = &st };
        int a = memfd();
        /* Stored without FDNAME=: named "stored". */
        send_to(&ss, STORE_APPLY, true, false, NULL, &a, 1);
        assert_names(&st, (const char *[]) { "stored" }, 1);
        /* systemd ignores FDSTOREREMOVE=1 without FDNAME= (with a warning). */
        send_to(&ss, STORE_APPLY, false, true, NULL, NULL, 0);
        send_to(&ss, STORE_STAGE, false, true, NULL, NULL, 0);
        service_store_commit_staged(&ss, false);
        assert_names(&st, (const char *[]) { "stored" }, 1);
        ck_assert(is_open(a));
        send_to(&ss, STORE_APPLY, false, true, "stored", NULL, 0);
        ck_assert_uint_eq(st.n, 0);
        ck_assert(!is_open(a));
        service_store_done(&ss);
        fdstore_done(&st);
}
END_TEST

START_TEST(test_staging_is_bounded) {
        FdStore st = { .max = 3 };
        ServiceStore ss = { .store = &st };
        /* More fds than the store could take had they been applied on
         * arrival: only --fd-store-max wait, the others are closed now. */
        int fds[5];
        for (size_t i = 0; i < 5; i++)
                fds[i] = memfd();
        send_to(&ss, STORE_STAGE, true, false, "conn", fds, 5);
        ck_assert_uint_eq(ss.n_staged, 3);
        ck_assert(is_open(fds[2]) && !is_open(fds[3]) && !is_open(fds[4]));
        /* Removals of distinct names: at most 2 * --fd-store-max requests. */
        char name[16];
        for (int i = 0; i < 10; i++) {
                snprintf(name, sizeof name, "n%d", i);
                send_to(&ss, STORE_STAGE, false, true, name, NULL, 0);
        }
        ck_assert_uint_eq(ss.n_staged, 6);
        service_store_commit_staged(&ss, false);
        assert_names(&st, (const char *[]) { "conn", "conn", "conn" }, 3);
        service_store_done(&ss);
        fdstore_done(&st);
}
END_TEST

START_TEST(test_remove_wins_over_store) {
        FdStore st = { .max = 16 };
        ServiceStore ss = { .store = &st };
        int a = memfd(), b = memfd(), c = memfd(), d = memfd();
        send_to(&ss, STORE_APPLY, true, false, "conn", &a, 1);
        /* As systemd 252: FDSTORE=1 beside FDSTOREREMOVE=1 only removes,
         * and the fds that came with it are closed, not stored. */
        send_to(&ss, STORE_APPLY, true, true, "conn", &b, 1);
        ck_assert_uint_eq(st.n, 0);
        ck_assert(!is_open(a) && !is_open(b));
        /* Staged alike. */
        send_to(&ss, STORE_APPLY, true, false, "conn", &c, 1);
        send_to(&ss, STORE_STAGE, true, true, "conn", &d, 1);
        ck_assert(!is_open(d));
        service_store_commit_staged(&ss, false);
        ck_assert_uint_eq(st.n, 0);
        ck_assert(!is_open(c));
        service_store_done(&ss);
        fdstore_done(&st);
}
END_TEST

START_TEST(test_invalid_name_is_stored_as_stored) {
        FdStore st = { .max = 16 };
        ServiceStore ss = { .store = &st };
        char long_name[257];
        memset(long_name, 'n', 256);
        long_name[256] = '\0';
        int a = memfd(), b = memfd();
        /* As systemd 252: an invalid FDNAME= with FDSTORE=1 is ignored
         * (with a warning), and the fd kept under the default name. */
        send_to(&ss, STORE_APPLY, true, false, "bad:name", &a, 1);
        send_to(&ss, STORE_STAGE, true, false, long_name, &b, 1);
        /* A backslash too: a generation's sd_listen_fds_with_names() would
         * take it for an escape (and fail on a trailing one). */
        int c = memfd();
        send_to(&ss, STORE_APPLY, true, false, "x\\", &c, 1);
        service_store_commit_staged(&ss, false);
        assert_names(&st, (const char *[]) { "stored", "stored", "stored" }, 3);
        ck_assert(is_open(a) && is_open(b) && is_open(c));
        service_store_done(&ss);
        fdstore_done(&st);
}
END_TEST

START_TEST(test_empty_name_is_a_name) {
        FdStore st = { .max = 16 };
        ServiceStore ss = { .store = &st };
        int a = memfd(), b = memfd(), c = memfd();
        /* systemd's fdname_is_valid() allows "": FDSTORE=1 with FDNAME=
         * stores under the empty name (not "stored", no warning), and
         * FDSTOREREMOVE=1 with FDNAME= removes what is stored so. */
        send_to(&ss, STORE_APPLY, true, false, "", &a, 1);
        send_to(&ss, STORE_STAGE, true, false, "", &b, 1);
        send_to(&ss, STORE_APPLY, true, false, NULL, &c, 1);
        service_store_commit_staged(&ss, false);
        assert_names(&st, (const char *[]) { "", "stored", "" }, 3);
        /* The next generation's LISTEN_FDNAMES keeps the empty names in
         * their places (sd_listen_fds_with_names() splits without
         * coalescing). */
        int listen_fd = memfd();
        char *listen_names[] = { (char *) "http" };
        ck_assert_int_eq(service_store_build_inheritance(&ss, &listen_fd, listen_names, 1), 0);
        ck_assert_str_eq(ss.gen_fdnames, "http::stored:");
        send_to(&ss, STORE_STAGE, false, true, "", NULL, 0);
        ck_assert_uint_eq(st.n, 3);
        service_store_commit_staged(&ss, false);
        assert_names(&st, (const char *[]) { "stored" }, 1);
        ck_assert(!is_open(a) && !is_open(b) && is_open(c));
        service_store_done(&ss);
        fdstore_done(&st);
        close(listen_fd);
}
END_TEST

START_TEST(test_fdpoll_0_stays_with_its_fd) {
        FdStore st = { .max = 16 };
        ServiceStore ss = { .store = &st };
        int a = memfd(), b = memfd(), c = memfd();
        /* FDPOLL=0 is the fd's, applied or staged, and a next handoff
         * learns it (HANDOFF_FDPOLL). */
        NotifyMessage m = { .fdstore = true, .fdname = "x", .fdpoll_off = true };
        service_store_message(&ss, STORE_APPLY, false, 2, &m, &a, 1);
        service_store_message(&ss, STORE_STAGE, false, 2, &m, &b, 1);
        send_to(&ss, STORE_STAGE, true, false, "y", &c, 1);
        service_store_commit_staged(&ss, false);
        assert_names(&st, (const char *[]) { "x", "x", "y" }, 3);
        ck_assert(!st.entries[0].poll && !st.entries[1].poll && st.entries[2].poll);
        ck_assert_int_eq(service_store_build_inheritance(&ss, NULL, NULL, 0), 0);
        ck_assert_str_eq(ss.gen_fdpoll, "001");
        service_store_done(&ss);
        fdstore_done(&st);
}
END_TEST

static Suite *fdstore_suite(void) {
        Suite *s = suite_create("fdstore");
        TCase *tc = tcase_create("store");
        tcase_add_test(tc, test_two_fds_one_name_are_both_kept);
        tcase_add_test(tc, test_the_same_open_file_is_kept_once);
        tcase_add_test(tc, test_two_opens_of_one_file_are_two_fds);
        tcase_add_test(tc, test_same_file_fallback);
        tcase_add_test(tc, test_remove_by_name_removes_all);
        tcase_add_test(tc, test_limit);
        tcase_add_test(tc, test_watched_fd_that_hangs_up_is_dropped);
        suite_add_tcase(s, tc);
        tc = tcase_create("staging");
        tcase_add_test(tc, test_staged_like_applied);
        tcase_add_test(tc, test_remove_needs_a_name);
        tcase_add_test(tc, test_staging_is_bounded);
        tcase_add_test(tc, test_remove_wins_over_store);
        tcase_add_test(tc, test_invalid_name_is_stored_as_stored);
        tcase_add_test(tc, test_empty_name_is_a_name);
        tcase_add_test(tc, test_fdpoll_0_stays_with_its_fd);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        log_set_max_level(LOG_ERR);
        return unit_run(fdstore_suite());
}
