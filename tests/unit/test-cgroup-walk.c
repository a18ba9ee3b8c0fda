/* SPDX-License-Identifier: MIT */
/* cgroup_walk() on a plain directory tree: what cgroup.c signals, counts
 * and removes below a generation's cgroup (the cgroupfs side, under a real
 * user manager: tests/systemd/test-containment.py test_sub_cgroup_worker). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup-walk.h"
#include "unit.h"

static char top[64];

typedef struct Seen {
        char paths[2048][256];
        unsigned n;
        const char *remove_on_visit; /* a directory that vanishes when visited */
} Seen;

static Seen seen;

static void record(const char *path, void *userdata) {
        Seen *s = userdata;
        ck_assert_uint_lt(s->n, sizeof s->paths / sizeof s->paths[0]);
        snprintf(s->paths[s->n++], sizeof s->paths[0], "%s", path + strlen(top));
        if (s->remove_on_visit && strcmp(path + strlen(top), s->remove_on_visit) == 0)
                ck_assert_int_eq(rmdir(path), 0);
}

static void remove_dir(const char *path, void *userdata) {
        ck_assert_int_eq(rmdir(path), 0);
}

static int position(const char *rel) {
        for (unsigned i = 0; i < seen.n; i++)
                if (strcmp(seen.paths[i], rel) == 0)
                        return (int) i;
        return -1;
}

static void make(const char *rel) {
        char p[512];
        snprintf(p, sizeof p, "%s%s", top, rel);
        ck_assert_msg(mkdir(p, 0755) == 0, "mkdir %s: %s", p, strerror(errno));
}

static void setup(void) {
        snprintf(top, sizeof top, "/tmp/test-cgroup-walk.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(top));
        memset(&seen, 0, sizeof seen);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void teardown(void) {
        ck_assert_int_eq(nftw(top, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* gen-N/{a/{b},c} with a cgroup.procs file and a symlink beside them. */
static void make_tree(void) {
        make("/a");
        make("/a/b");
        make("/c");
        char p[512];
        snprintf(p, sizeof p, "%s/cgroup.procs", top);
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        close(fd);
        snprintf(p, sizeof p, "%s/link", top);
        ck_assert_int_eq(symlink("a", p), 0);
}

START_TEST(test_parents_first) {
        make_tree();
        ck_assert_int_eq(cgroup_walk(top, CGROUP_WALK_PARENTS_FIRST, record, &seen), 0);
        ck_assert_uint_eq(seen.n, 4); /* no file, no symlink followed */
        ck_assert_int_eq(position(""), 0);
        ck_assert_int_gt(position("/a/b"), position("/a"));
        ck_assert_int_gt(position("/c"), 0);
}
END_TEST

START_TEST(test_children_first_removes_the_tree) {
        make("/a");
        make("/a/b");
        make("/a/b/c");
        make("/d");
        ck_assert_int_eq(cgroup_walk(top, CGROUP_WALK_CHILDREN_FIRST, record, &seen), 0);
        ck_assert_uint_eq(seen.n, 5);
        ck_assert_int_lt(position("/a/b/c"), position("/a/b"));
        ck_assert_int_lt(position("/a/b"), position("/a"));
        ck_assert_int_eq(position(""), 4);
        ck_assert_int_eq(cgroup_walk(top, CGROUP_WALK_CHILDREN_FIRST, remove_dir, NULL), 0);
        ck_assert_int_eq(access(top, F_OK), -1);
        ck_assert_int_eq(errno, ENOENT);
        ck_assert_int_eq(mkdir(top, 0700), 0); /* for the teardown */
}
END_TEST

START_TEST(test_vanishing_directory) {
        /* Removed by its owner between readdir() and opendir(). */
        make("/a");
        make("/b");
        make("/b/c");
        seen.remove_on_visit = "/a";
        ck_assert_int_eq(cgroup_walk(top, CGROUP_WALK_PARENTS_FIRST, record, &seen), 0);
        ck_assert_uint_eq(seen.n, 4);
        ck_assert_int_ge(position("/b/c"), 0);
        /* A top that is gone already: visited (the visitor finds it gone), no error. */
        memset(&seen, 0, sizeof seen);
        char gone[128];
        snprintf(gone, sizeof gone, "%s/gone", top);
        ck_assert_int_eq(cgroup_walk(gone, CGROUP_WALK_CHILDREN_FIRST, record, &seen), 0);
        ck_assert_uint_eq(seen.n, 1);
}
END_TEST

START_TEST(test_depth_bound) {
        char rel[512] = "";
        for (int i = 0; i < CGROUP_WALK_MAX_DEPTH + 3; i++) {
                strcat(rel, "/d");
                make(rel);
        }
        ck_assert_int_eq(cgroup_walk(top, CGROUP_WALK_PARENTS_FIRST, record, &seen), -E2BIG);
        ck_assert_uint_eq(seen.n, CGROUP_WALK_MAX_DEPTH + 1); /* top and 32 levels below */
}
END_TEST

START_TEST(test_work_bound) {
        for (int i = 0; i < CGROUP_WALK_MAX_DIRS + 10; i++) {
                char rel[32];
                snprintf(rel, sizeof rel, "/w%d", i);
                make(rel);
        }
        ck_assert_int_eq(cgroup_walk(top, CGROUP_WALK_PARENTS_FIRST, record, &seen), -E2BIG);
        ck_assert_uint_eq(seen.n, CGROUP_WALK_MAX_DIRS);
}
END_TEST

static void write_events(const char *text) {
        char p[512];
        snprintf(p, sizeof p, "%s/cgroup.events", top);
        FILE *f = fopen(p, "we");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_ge(fputs(text, f), 0);
        ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_populated) {
        /* No cgroup.events: the cgroup is gone (or never was one). */
        ck_assert_int_eq(cgroup_tree_populated(top), 0);
        write_events("populated 0\nfrozen 0\n");
        ck_assert_int_eq(cgroup_tree_populated(top), 0);
        write_events("populated 1\nfrozen 0\n");
        ck_assert_int_eq(cgroup_tree_populated(top), 1);
        write_events("frozen 0\n");
        ck_assert_int_eq(cgroup_tree_populated(top), -EBADMSG);
}
END_TEST

START_TEST(test_populated_when_unreadable) {
        /* Out of fds as the generation's main exits: an error, never
         * "empty", while its strays may live on. */
        write_events("populated 0\nfrozen 0\n");
        int next = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(next, 0);
        close(next);
        struct rlimit old, low;
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
        low = (struct rlimit) { .rlim_cur = (rlim_t) next, .rlim_max = old.rlim_max };
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
        int populated = cgroup_tree_populated(top);
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
        ck_assert_int_eq(populated, -EMFILE);
        /* A read that fails: a cgroup.events that is no file. */
        char p[512];
        snprintf(p, sizeof p, "%s/cgroup.events", top);
        ck_assert_int_eq(unlink(p), 0);
        make("/cgroup.events");
        ck_assert_int_eq(cgroup_tree_populated(top), -EISDIR);
        ck_assert_int_eq(rmdir(p), 0);
        ck_assert_int_eq(cgroup_tree_populated(top), 0);
}
END_TEST

int main(void) {
        Suite *s = suite_create("cgroup-walk");
        TCase *tc = tcase_create("core");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_parents_first);
        tcase_add_test(tc, test_children_first_removes_the_tree);
        tcase_add_test(tc, test_vanishing_directory);
        tcase_add_test(tc, test_depth_bound);
        tcase_add_test(tc, test_work_bound);
        tcase_add_test(tc, test_populated);
        tcase_add_test(tc, test_populated_when_unreadable);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
