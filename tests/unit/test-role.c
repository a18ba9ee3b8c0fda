/* SPDX-License-Identifier: MIT */
/* The role machine (role.c): every role x event, and what each role may do. */
#include <check.h>
#include <stdlib.h>

#include "role.h"
#include "unit.h"

/* The whole table, written out: expected[role][event]. */
static const Role expected[_ROLE_MAX][_ROLE_EV_MAX] = {
        /*                          mainpid-sent   takeover-sent     took-over                 predecessor-gone  named
         *                          mainpid-reclaimed  unnamed */
        [ROLE_MAIN] =               { ROLE_YIELDED, ROLE_HANDED_OFF, ROLE_MAIN,                ROLE_MAIN,        ROLE_MAIN,
                                      ROLE_MAIN,         ROLE_MAIN },
        [ROLE_CANDIDATE] =          { ROLE_CANDIDATE, ROLE_CANDIDATE, ROLE_MAIN_AFTER_TAKEOVER, ROLE_ABANDONED,  ROLE_NAMED,
                                      ROLE_CANDIDATE,    ROLE_CANDIDATE },
        [ROLE_MAIN_AFTER_TAKEOVER] = { ROLE_YIELDED, ROLE_HANDED_OFF, ROLE_MAIN_AFTER_TAKEOVER, ROLE_MAIN,
                                       ROLE_MAIN_AFTER_TAKEOVER, ROLE_MAIN_AFTER_TAKEOVER, ROLE_MAIN_AFTER_TAKEOVER },
        [ROLE_ABANDONED] =          { ROLE_ABANDONED, ROLE_ABANDONED, ROLE_ABANDONED,          ROLE_ABANDONED,   ROLE_ABANDONED,
                                      ROLE_ABANDONED,    ROLE_ABANDONED },
        [ROLE_YIELDED] =            { ROLE_YIELDED, ROLE_HANDED_OFF, ROLE_YIELDED,             ROLE_YIELDED,     ROLE_YIELDED,
                                      ROLE_MAIN,         ROLE_YIELDED },
        [ROLE_HANDED_OFF] =         { ROLE_HANDED_OFF, ROLE_HANDED_OFF, ROLE_HANDED_OFF,       ROLE_HANDED_OFF,  ROLE_HANDED_OFF,
                                      ROLE_HANDED_OFF,   ROLE_HANDED_OFF },
        [ROLE_NAMED] =              { ROLE_NAMED, ROLE_NAMED,         ROLE_MAIN_AFTER_TAKEOVER, ROLE_MAIN,        ROLE_NAMED,
                                      ROLE_NAMED,        ROLE_CANDIDATE },
};

START_TEST(test_every_role_and_event) {
        for (Role r = 0; r < _ROLE_MAX; r++)
                for (RoleEvent ev = 0; ev < _ROLE_EV_MAX; ev++)
                        ck_assert_msg(role_step(r, ev) == expected[r][ev], "%s + %s -> %s, expected %s",
                                      role_to_string(r), role_event_to_string(ev), role_to_string(role_step(r, ev)),
                                      role_to_string(expected[r][ev]));
}
END_TEST

START_TEST(test_out_of_range_is_ignored) {
        ck_assert_int_eq(role_step(ROLE_MAIN, _ROLE_EV_MAX), ROLE_MAIN);
        ck_assert_int_eq(role_step(_ROLE_MAX, ROLE_EV_TOOK_OVER), _ROLE_MAX);
        ck_assert_str_eq(role_to_string(_ROLE_MAX), "invalid");
        ck_assert_str_eq(role_event_to_string(_ROLE_EV_MAX), "invalid");
}
END_TEST

typedef struct {
        Role role;
        bool speaks, awaits, ignores_stop, handed_off, owns_files;
} Powers;

static const Powers powers[] = {
        { ROLE_MAIN,                1, 0, 0, 0, 1 },
        { ROLE_CANDIDATE,           0, 1, 0, 0, 0 },
        { ROLE_MAIN_AFTER_TAKEOVER, 1, 0, 0, 0, 1 },
        { ROLE_ABANDONED,           0, 0, 0, 0, 0 },
        { ROLE_YIELDED,             0, 0, 1, 0, 1 },
        { ROLE_HANDED_OFF,          0, 0, 1, 1, 0 },
        { ROLE_NAMED,               0, 1, 0, 0, 0 },
};

START_TEST(test_what_each_role_may_do) {
        ck_assert_uint_eq(sizeof powers / sizeof powers[0], _ROLE_MAX);
        for (size_t i = 0; i < _ROLE_MAX; i++) {
                const Powers *p = &powers[i];
                const char *n = role_to_string(p->role);
                ck_assert_msg(role_speaks_to_systemd(p->role) == p->speaks, "%s speaks", n);
                ck_assert_msg(role_awaits_takeover(p->role) == p->awaits, "%s awaits takeover", n);
                ck_assert_msg(role_ignores_stop(p->role) == p->ignores_stop, "%s ignores stop", n);
                ck_assert_msg(role_handed_off(p->role) == p->handed_off, "%s handed off", n);
                ck_assert_msg(role_owns_files(p->role) == p->owns_files, "%s owns files", n);
        }
}
END_TEST

/* The two lives a handoff process can have, end to end. */
START_TEST(test_lives) {
        Role r = ROLE_MAIN;
        r = role_step(r, ROLE_EV_MAINPID_SENT);
        ck_assert_int_eq(r, ROLE_YIELDED);
        r = role_step(r, ROLE_EV_TAKEOVER_SENT);
        ck_assert_int_eq(r, ROLE_HANDED_OFF);

        r = ROLE_CANDIDATE;
        r = role_step(r, ROLE_EV_TOOK_OVER);
        ck_assert_int_eq(r, ROLE_MAIN_AFTER_TAKEOVER);
        /* A reload before the predecessor has finished draining. */
        ck_assert_int_eq(role_step(r, ROLE_EV_MAINPID_SENT), ROLE_YIELDED);
        r = role_step(r, ROLE_EV_PREDECESSOR_GONE);
        ck_assert_int_eq(r, ROLE_MAIN);
        /* A second TAKEOVER (a confused predecessor) changes nothing. */
        ck_assert_int_eq(role_step(r, ROLE_EV_TOOK_OVER), ROLE_MAIN);

        /* Named main by MAINPID=, then told to take over, as usual ... */
        r = role_step(ROLE_CANDIDATE, ROLE_EV_NAMED);
        ck_assert_int_eq(r, ROLE_NAMED);
        ck_assert_int_eq(role_step(r, ROLE_EV_TOOK_OVER), ROLE_MAIN_AFTER_TAKEOVER);
        /* ... or the predecessor died in between: main, not abandoned, and
         * with no predecessor left to wait for. */
        r = role_step(r, ROLE_EV_PREDECESSOR_GONE);
        ck_assert_int_eq(r, ROLE_MAIN);
        ck_assert(role_speaks_to_systemd(r) && !role_awaits_takeover(r) && role_owns_files(r));
        /* ... or MAINPID= could not be sent after NAMED: a candidate again,
         * whose predecessor's end of file is an abort. */
        r = role_step(role_step(ROLE_CANDIDATE, ROLE_EV_NAMED), ROLE_EV_UNNAMED);
        ck_assert_int_eq(r, ROLE_CANDIDATE);
        ck_assert_int_eq(role_step(r, ROLE_EV_PREDECESSOR_GONE), ROLE_ABANDONED);
        /* The next handoff MAINPID= named exited before TAKEOVER: the old
         * main names itself main again, and speaks for the service. */
        r = role_step(ROLE_MAIN, ROLE_EV_MAINPID_SENT);
        ck_assert(!role_speaks_to_systemd(r) && role_ignores_stop(r));
        r = role_step(r, ROLE_EV_MAINPID_RECLAIMED);
        ck_assert_int_eq(r, ROLE_MAIN);
        ck_assert(role_speaks_to_systemd(r) && !role_ignores_stop(r) && !role_handed_off(r));
}
END_TEST

int main(void) {
        Suite *s = suite_create("role");
        TCase *tc = tcase_create("table");
        tcase_add_test(tc, test_every_role_and_event);
        tcase_add_test(tc, test_out_of_range_is_ignored);
        tcase_add_test(tc, test_what_each_role_may_do);
        tcase_add_test(tc, test_lives);
        suite_add_tcase(s, tc);
        return unit_run(s);
}
