/* SPDX-License-Identifier: MIT */
/* reaper.c's side of a generation that is a cgroup, with a cgroup whose
 * cgroup.events says what the test sets: a generation is empty only once
 * cgroup.events is read and says so. A read that fails (out of fds) is
 * tried again, from the loop, since the change that woke the reaper will
 * not come again; said as a warning once. The real cgroup.c needs a delegated cgroup:
 * tests/systemd/test-containment.py. This file defines the cgroup.h
 * functions reaper.c calls, so the linker takes no cgroup.c from
 * libhandoff. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "reaper-unit.h"
#include "unit.h"

struct Cgroup {
        int populated; /* what cgroup_populated() answers */
        unsigned reads;
};

int cgroup_populated(Cgroup *c) {
        c->reads++;
        return c->populated;
}
int cgroup_watch(Cgroup *c, sd_event *e, void (*changed)(void *userdata), void *userdata) {
        return 0;
}
void cgroup_signal(Cgroup *c, int sig) {
}
unsigned cgroup_count(Cgroup *c) {
        return 0;
}
uint64_t cgroup_memory(Cgroup *c) {
        return UINT64_MAX;
}
bool cgroup_has_pid(Cgroup *c, pid_t pid) {
        return false;
}
const char *cgroup_path(Cgroup *c) {
        return "/sys/fs/cgroup/test/gen-1";
}
Cgroup *cgroup_free(Cgroup *c) {
        return NULL;
}

/* Our stderr, where the log goes: a file, to count its warnings. */
static FILE *err;

static void capture_log(void) {
        err = tmpfile();
        ck_assert_ptr_nonnull(err);
        ck_assert_int_eq(dup2(fileno(err), STDERR_FILENO), STDERR_FILENO);
}

static int warnings(void) {
        char line[512];
        int n = 0;
        rewind(err);
        while (fgets(line, sizeof line, err))
                if (strstr(line, "Cannot read /sys/fs/cgroup/test/gen-1/cgroup.events"))
                        n++;
        return n;
}

START_TEST(test_unreadable_events_read_again) {
        capture_log();
        Loop l = loop_new();

        /* The main waits for the pipe to close, in a group of its own. */
        int gate[2];
        ck_assert_int_eq(pipe(gate), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char c;
                setpgid(0, 0);
                close(gate[1]);
                _exit(read(gate[0], &c, 1) == 0 ? 0 : 1);
        }
        close(gate[0]);
        setpgid(pid, pid);
        static Cgroup cg = { .populated = -EMFILE };
        ProcTree *t;
        ck_assert_int_ge(reaper_track(l.r, pid, 1, &cg, &callbacks, NULL, &t), 0);

        /* It exits while cgroup.events cannot be read: not empty, and read
         * again, and again; out of fds may pass, and is not a warning yet. */
        close(gate[1]);
        run_until(l.e, &seen.exited, 1);
        run_until(l.e, &cg.reads, 3);
        ck_assert_uint_eq(seen.empty, 0);
        ck_assert_int_eq(warnings(), 0);
        /* An error that will not pass: a warning at once, and once. */
        cg.populated = -EBADMSG;
        unsigned reads = cg.reads;
        run_until(l.e, &cg.reads, reads + 3);
        ck_assert_int_eq(warnings(), 1);

        /* Readable, and populated: not empty, and no more reads until
         * something changes. */
        cg.populated = 1;
        reads = cg.reads;
        run_until(l.e, &cg.reads, reads + 1);
        ck_assert_uint_eq(seen.empty, 0);
        ck_assert_int_eq(sd_event_run(l.e, 300 * USEC_PER_MSEC), 0);

        /* Unreadable again (when the next change came): out of fds for
         * long, a warning, once; then empty. */
        cg.populated = -EMFILE;
        ck_assert(!proc_tree_empty(t));
        reads = cg.reads;
        run_until(l.e, &cg.reads, reads + 12);
        ck_assert_int_eq(warnings(), 2);
        cg.populated = 0;
        run_until(l.e, &seen.empty, 1);
        ck_assert_uint_eq(seen.empty, 1);
        ck_assert_int_eq(sd_event_run(l.e, 300 * USEC_PER_MSEC), 0);

        proc_tree_free(t);
        loop_free(&l);
}
END_TEST

int main(void) {
        Suite *s = suite_create("reaper-cgroup");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_unreadable_events_read_again);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
