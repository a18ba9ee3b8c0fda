/* SPDX-License-Identifier: MIT */
/* The reload state machine (fsm.c), driven as the pure function it is. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.h"
#include "unit.h"

#define ROLLBACK ACT_ROLLBACK
#define COMMIT ACT_COMMIT
#define READY ACT_NOTIFY_READY
#define RETIRE ACT_RETIRE_SERVING
#define STOPPING ACT_NOTIFY_STOPPING
#define START ACT_START_CANDIDATE
#define RELOADING ACT_NOTIFY_RELOADING
#define EXIT ACT_EXIT
#define HANDOVER ACT_HANDOVER
#define TAKEOVER ACT_TAKEOVER
#define PASS ACT_PASS_RELOAD
#define BAKE ACT_BAKE

static const char *actions_to_string(unsigned a, char *buf, size_t size) {
        static const char *const names[] = { "ROLLBACK",         "COMMIT",           "NOTIFY_READY", "RETIRE_SERVING",
                                             "NOTIFY_STOPPING",  "START_CANDIDATE",  "NOTIFY_RELOADING",
                                             "EXIT",             "HANDOVER",         "TAKEOVER",     "PASS_RELOAD",
                                             "BAKE" };
        size_t n = 0;
        buf[0] = '\0';
        for (unsigned i = 0; i < 12; i++)
                if (a & (1U << i))
                        n += (size_t) snprintf(buf + n, size - n, "%s%s", n ? "|" : "", names[i]);
        if (a >> 12)
                snprintf(buf + n, size - n, "%s0x%x", n ? "|" : "", a & ~0xfffU);
        if (!buf[0])
                snprintf(buf, size, "0");
        return buf;
}

/* ---- the full transition table ---------------------------------------- */

typedef struct {
        Machine from;
        Event ev;
        State to;
        unsigned actions;
        bool pending_after;
        bool alive_after;
} Transition;

#define M(s, p, a) ((Machine) { .state = (s), .reload_pending = (p), .serving_alive = (a) })
#define H(s, p, a) ((Machine) { .state = (s), .reload_pending = (p), .serving_alive = (a), .handover = true })
#define B(s, p, a) ((Machine) { .state = (s), .reload_pending = (p), .serving_alive = (a), .bake = true })
#define HB(s, p, a) ((Machine) { .state = (s), .reload_pending = (p), .serving_alive = (a), .handover = true, .bake = true })

static const Transition table[] = {
        /* Starting, nothing serves yet. */
        { M(STATE_STARTING, 0, 0), EV_READY, STATE_SERVING, COMMIT | READY, 0, 1 },
        { M(STATE_STARTING, 0, 0), EV_FAILED, STATE_STOPPING, ROLLBACK, 0, 0 },
        { M(STATE_STARTING, 0, 0), EV_SERVING_EXITED, STATE_STARTING, 0, 0, 0 },
        { M(STATE_STARTING, 0, 0), EV_RELOAD, STATE_STARTING, 0, 1, 0 },
        { M(STATE_STARTING, 0, 0), EV_STOP, STATE_STOPPING, ROLLBACK | STOPPING, 0, 0 },
        { M(STATE_STARTING, 0, 0), EV_ALL_GONE, STATE_STARTING, 0, 0, 0 },
        { M(STATE_STARTING, 0, 0), EV_HANDED_OVER, STATE_STARTING, 0, 0, 0 },
        /* Starting with a reload asked for meanwhile. */
        { M(STATE_STARTING, 1, 0), EV_READY, STATE_RELOADING, COMMIT | READY | START | RELOADING, 0, 1 },
        { M(STATE_STARTING, 1, 0), EV_FAILED, STATE_STOPPING, ROLLBACK, 0, 0 },
        { M(STATE_STARTING, 1, 0), EV_SERVING_EXITED, STATE_STARTING, 0, 1, 0 },
        { M(STATE_STARTING, 1, 0), EV_RELOAD, STATE_STARTING, 0, 1, 0 },
        { M(STATE_STARTING, 1, 0), EV_STOP, STATE_STOPPING, ROLLBACK | STOPPING, 0, 0 },
        { M(STATE_STARTING, 1, 0), EV_ALL_GONE, STATE_STARTING, 0, 1, 0 },
        /* Handover mode starts its first generation the same way. */
        { H(STATE_STARTING, 0, 0), EV_READY, STATE_SERVING, COMMIT | READY, 0, 1 },
        { H(STATE_STARTING, 1, 0), EV_READY, STATE_RELOADING, COMMIT | READY | START | RELOADING, 0, 1 },

        /* Serving. */
        { M(STATE_SERVING, 0, 1), EV_READY, STATE_SERVING, 0, 0, 1 },
        { M(STATE_SERVING, 0, 1), EV_FAILED, STATE_SERVING, 0, 0, 1 },
        { M(STATE_SERVING, 0, 1), EV_SERVING_EXITED, STATE_STOPPING, STOPPING, 0, 1 },
        { M(STATE_SERVING, 0, 1), EV_RELOAD, STATE_RELOADING, START | RELOADING, 0, 1 },
        { M(STATE_SERVING, 0, 1), EV_STOP, STATE_STOPPING, RETIRE | STOPPING, 0, 1 },
        { M(STATE_SERVING, 0, 1), EV_ALL_GONE, STATE_SERVING, 0, 0, 1 },
        { M(STATE_SERVING, 0, 1), EV_HANDED_OVER, STATE_SERVING, 0, 0, 1 },
        { H(STATE_SERVING, 0, 1), EV_RELOAD, STATE_RELOADING, START | RELOADING, 0, 1 },
        { H(STATE_SERVING, 0, 1), EV_HANDED_OVER, STATE_SERVING, 0, 0, 1 },

        /* Reloading, the old generation alive. */
        { M(STATE_RELOADING, 0, 1), EV_READY, STATE_SERVING, COMMIT | READY, 0, 1 },
        { M(STATE_RELOADING, 0, 1), EV_FAILED, STATE_SERVING, ROLLBACK | READY, 0, 1 },
        { M(STATE_RELOADING, 0, 1), EV_SERVING_EXITED, STATE_RELOADING, 0, 0, 0 },
        { M(STATE_RELOADING, 0, 1), EV_RELOAD, STATE_RELOADING, 0, 1, 1 },
        { M(STATE_RELOADING, 0, 1), EV_STOP, STATE_STOPPING, ROLLBACK | RETIRE | STOPPING, 0, 1 },
        { M(STATE_RELOADING, 0, 1), EV_ALL_GONE, STATE_RELOADING, 0, 0, 1 },
        { M(STATE_RELOADING, 0, 1), EV_HANDED_OVER, STATE_RELOADING, 0, 0, 1 },
        /* Reloading, the old generation alive, another reload pending. */
        { M(STATE_RELOADING, 1, 1), EV_READY, STATE_RELOADING, COMMIT | READY | START | RELOADING, 0, 1 },
        { M(STATE_RELOADING, 1, 1), EV_FAILED, STATE_RELOADING, ROLLBACK | READY | START | RELOADING, 0, 1 },
        { M(STATE_RELOADING, 1, 1), EV_SERVING_EXITED, STATE_RELOADING, 0, 1, 0 },
        { M(STATE_RELOADING, 1, 1), EV_RELOAD, STATE_RELOADING, 0, 1, 1 },
        { M(STATE_RELOADING, 1, 1), EV_STOP, STATE_STOPPING, ROLLBACK | RETIRE | STOPPING, 0, 1 },
        { M(STATE_RELOADING, 1, 1), EV_ALL_GONE, STATE_RELOADING, 0, 1, 1 },
        /* Reloading after the old generation died. */
        { M(STATE_RELOADING, 0, 0), EV_READY, STATE_SERVING, COMMIT | READY, 0, 1 },
        { M(STATE_RELOADING, 0, 0), EV_FAILED, STATE_STOPPING, ROLLBACK | STOPPING, 0, 0 },
        { M(STATE_RELOADING, 0, 0), EV_SERVING_EXITED, STATE_RELOADING, 0, 0, 0 },
        { M(STATE_RELOADING, 0, 0), EV_RELOAD, STATE_RELOADING, 0, 1, 0 },
        { M(STATE_RELOADING, 0, 0), EV_STOP, STATE_STOPPING, ROLLBACK | STOPPING, 0, 0 },
        { M(STATE_RELOADING, 0, 0), EV_ALL_GONE, STATE_RELOADING, 0, 0, 0 },
        /* ... and with a reload pending. */
        { M(STATE_RELOADING, 1, 0), EV_READY, STATE_RELOADING, COMMIT | READY | START | RELOADING, 0, 1 },
        { M(STATE_RELOADING, 1, 0), EV_FAILED, STATE_STOPPING, ROLLBACK | STOPPING, 0, 0 },
        { M(STATE_RELOADING, 1, 0), EV_STOP, STATE_STOPPING, ROLLBACK | STOPPING, 0, 0 },

        /* Handover mode: a ready candidate is handed the service instead of
         * being committed; a failed one is rolled back as in supervise mode. */
        { H(STATE_RELOADING, 0, 1), EV_READY, STATE_HANDING_OVER, HANDOVER, 0, 1 },
        { H(STATE_RELOADING, 1, 1), EV_READY, STATE_HANDING_OVER, HANDOVER, 1, 1 },
        { H(STATE_RELOADING, 0, 0), EV_READY, STATE_HANDING_OVER, HANDOVER, 0, 0 },
        { H(STATE_RELOADING, 0, 1), EV_FAILED, STATE_SERVING, ROLLBACK | READY, 0, 1 },
        { H(STATE_RELOADING, 1, 1), EV_FAILED, STATE_RELOADING, ROLLBACK | READY | START | RELOADING, 0, 1 },
        { H(STATE_RELOADING, 0, 0), EV_FAILED, STATE_STOPPING, ROLLBACK | STOPPING, 0, 0 },
        { H(STATE_RELOADING, 0, 1), EV_SERVING_EXITED, STATE_RELOADING, 0, 0, 0 },
        { H(STATE_RELOADING, 0, 1), EV_RELOAD, STATE_RELOADING, 0, 1, 1 },
        { H(STATE_RELOADING, 0, 1), EV_STOP, STATE_STOPPING, ROLLBACK | RETIRE | STOPPING, 0, 1 },
        { H(STATE_RELOADING, 0, 1), EV_HANDED_OVER, STATE_RELOADING, 0, 0, 1 },

        /* Handing over: MAINPID= sent, waiting for systemd's barrier. */
        { H(STATE_HANDING_OVER, 0, 1), EV_READY, STATE_HANDING_OVER, 0, 0, 1 },
        { H(STATE_HANDING_OVER, 0, 1), EV_FAILED, STATE_STOPPING, ROLLBACK | RETIRE | STOPPING, 0, 1 },
        { H(STATE_HANDING_OVER, 0, 1), EV_SERVING_EXITED, STATE_HANDING_OVER, 0, 0, 0 },
        { H(STATE_HANDING_OVER, 0, 1), EV_RELOAD, STATE_HANDING_OVER, 0, 1, 1 },
        { H(STATE_HANDING_OVER, 0, 1), EV_STOP, STATE_STOPPING, ROLLBACK | RETIRE | STOPPING, 0, 1 },
        { H(STATE_HANDING_OVER, 0, 1), EV_ALL_GONE, STATE_HANDING_OVER, 0, 0, 1 },
        { H(STATE_HANDING_OVER, 0, 1), EV_HANDED_OVER, STATE_STOPPING, TAKEOVER, 0, 1 },
        { H(STATE_HANDING_OVER, 1, 1), EV_HANDED_OVER, STATE_STOPPING, TAKEOVER | PASS, 0, 1 },
        { H(STATE_HANDING_OVER, 1, 1), EV_FAILED, STATE_STOPPING, ROLLBACK | RETIRE | STOPPING, 0, 1 },
        { H(STATE_HANDING_OVER, 1, 1), EV_STOP, STATE_STOPPING, ROLLBACK | RETIRE | STOPPING, 0, 1 },
        { H(STATE_HANDING_OVER, 0, 0), EV_FAILED, STATE_STOPPING, ROLLBACK | STOPPING, 0, 0 },
        { H(STATE_HANDING_OVER, 0, 0), EV_STOP, STATE_STOPPING, ROLLBACK | STOPPING, 0, 0 },
        { H(STATE_HANDING_OVER, 0, 0), EV_HANDED_OVER, STATE_STOPPING, TAKEOVER, 0, 0 },
        /* ... or MAINPID= could not be sent: a failed reload, we stay main. */
        { H(STATE_HANDING_OVER, 0, 1), EV_NOT_HANDED_OVER, STATE_SERVING, ROLLBACK | READY, 0, 1 },
        { H(STATE_HANDING_OVER, 1, 1), EV_NOT_HANDED_OVER, STATE_RELOADING, ROLLBACK | READY | START | RELOADING, 0, 1 },
        { H(STATE_HANDING_OVER, 0, 0), EV_NOT_HANDED_OVER, STATE_STOPPING, ROLLBACK | STOPPING, 0, 0 },
        /* Anywhere else it cannot come: nothing happens. */
        { M(STATE_STARTING, 0, 0), EV_NOT_HANDED_OVER, STATE_STARTING, 0, 0, 0 },
        { H(STATE_SERVING, 0, 1), EV_NOT_HANDED_OVER, STATE_SERVING, 0, 0, 1 },
        { H(STATE_RELOADING, 0, 1), EV_NOT_HANDED_OVER, STATE_RELOADING, 0, 0, 1 },
        { HB(STATE_BAKING, 0, 1), EV_NOT_HANDED_OVER, STATE_BAKING, 0, 0, 1 },
        { H(STATE_STOPPING, 0, 1), EV_NOT_HANDED_OVER, STATE_STOPPING, 0, 0, 1 },
        { M(STATE_DONE, 0, 1), EV_NOT_HANDED_OVER, STATE_DONE, 0, 0, 1 },

        /* Stopping: only the last reaped process moves on. */
        { M(STATE_STOPPING, 0, 1), EV_READY, STATE_STOPPING, 0, 0, 1 },
        { M(STATE_STOPPING, 0, 1), EV_FAILED, STATE_STOPPING, 0, 0, 1 },
        { M(STATE_STOPPING, 0, 1), EV_SERVING_EXITED, STATE_STOPPING, 0, 0, 1 },
        { M(STATE_STOPPING, 0, 1), EV_RELOAD, STATE_STOPPING, 0, 0, 1 },
        { M(STATE_STOPPING, 0, 1), EV_STOP, STATE_STOPPING, 0, 0, 1 },
        { M(STATE_STOPPING, 0, 1), EV_ALL_GONE, STATE_DONE, EXIT, 0, 1 },
        { M(STATE_STOPPING, 0, 1), EV_HANDED_OVER, STATE_STOPPING, 0, 0, 1 },
        { H(STATE_STOPPING, 0, 1), EV_RELOAD, STATE_STOPPING, 0, 0, 1 },
        { H(STATE_STOPPING, 0, 1), EV_HANDED_OVER, STATE_STOPPING, 0, 0, 1 },
        { H(STATE_STOPPING, 0, 1), EV_ALL_GONE, STATE_DONE, EXIT, 0, 1 },

        /* Done: inert. */
        { M(STATE_DONE, 0, 1), EV_READY, STATE_DONE, 0, 0, 1 },
        { M(STATE_DONE, 0, 1), EV_FAILED, STATE_DONE, 0, 0, 1 },
        { M(STATE_DONE, 0, 1), EV_SERVING_EXITED, STATE_DONE, 0, 0, 1 },
        { M(STATE_DONE, 0, 1), EV_RELOAD, STATE_DONE, 0, 0, 1 },
        { M(STATE_DONE, 0, 1), EV_STOP, STATE_DONE, 0, 0, 1 },
        { M(STATE_DONE, 0, 1), EV_ALL_GONE, STATE_DONE, 0, 0, 1 },
        { M(STATE_DONE, 0, 1), EV_HANDED_OVER, STATE_DONE, 0, 0, 1 },
        /* --bake: a ready candidate serves beside the old generation first. */
        { B(STATE_RELOADING, 0, 1), EV_READY, STATE_BAKING, BAKE, 0, 1 },
        { HB(STATE_RELOADING, 0, 1), EV_READY, STATE_BAKING, BAKE, 0, 1 },
        /* ... not when nothing is left to fall back to, nor at the first start. */
        { B(STATE_RELOADING, 0, 0), EV_READY, STATE_SERVING, COMMIT | READY, 0, 1 },
        { B(STATE_STARTING, 0, 0), EV_READY, STATE_SERVING, COMMIT | READY, 0, 1 },
        { B(STATE_BAKING, 0, 1), EV_BAKED, STATE_SERVING, COMMIT | READY, 0, 1 },
        { B(STATE_BAKING, 1, 1), EV_BAKED, STATE_RELOADING, COMMIT | READY | START | RELOADING, 0, 1 },
        { HB(STATE_BAKING, 0, 1), EV_BAKED, STATE_HANDING_OVER, HANDOVER, 0, 1 },
        { B(STATE_BAKING, 0, 1), EV_FAILED, STATE_SERVING, ROLLBACK | READY, 0, 1 },
        { B(STATE_BAKING, 1, 1), EV_FAILED, STATE_RELOADING, ROLLBACK | READY | START | RELOADING, 0, 1 },
        { HB(STATE_BAKING, 0, 1), EV_FAILED, STATE_SERVING, ROLLBACK | READY, 0, 1 },
        { B(STATE_BAKING, 0, 1), EV_SERVING_EXITED, STATE_SERVING, COMMIT | READY, 0, 1 },
        { HB(STATE_BAKING, 0, 1), EV_SERVING_EXITED, STATE_HANDING_OVER, HANDOVER, 0, 0 },
        { B(STATE_BAKING, 0, 1), EV_RELOAD, STATE_BAKING, 0, 1, 1 },
        { B(STATE_BAKING, 0, 1), EV_STOP, STATE_STOPPING, ROLLBACK | RETIRE | STOPPING, 0, 1 },
        { B(STATE_BAKING, 1, 1), EV_STOP, STATE_STOPPING, ROLLBACK | RETIRE | STOPPING, 0, 1 },
        { B(STATE_BAKING, 0, 1), EV_ALL_GONE, STATE_BAKING, 0, 0, 1 },
        { B(STATE_BAKING, 0, 1), EV_HANDED_OVER, STATE_BAKING, 0, 0, 1 },
        { B(STATE_BAKING, 0, 1), EV_READY, STATE_BAKING, 0, 0, 1 },
        /* EV_BAKED anywhere else is a stale timer: nothing happens. */
        { B(STATE_STARTING, 0, 0), EV_BAKED, STATE_STARTING, 0, 0, 0 },
        { B(STATE_SERVING, 0, 1), EV_BAKED, STATE_SERVING, 0, 0, 1 },
        { B(STATE_RELOADING, 0, 1), EV_BAKED, STATE_RELOADING, 0, 0, 1 },
        { HB(STATE_HANDING_OVER, 0, 1), EV_BAKED, STATE_HANDING_OVER, 0, 0, 1 },
        { B(STATE_STOPPING, 0, 1), EV_BAKED, STATE_STOPPING, 0, 0, 1 },
        { B(STATE_DONE, 0, 1), EV_BAKED, STATE_DONE, 0, 0, 1 },
};

START_TEST(test_transition_table) {
        const Transition *t = &table[_i];
        Machine m = t->from;
        unsigned a = machine_step(&m, t->ev);
        char got[160], want[160];
        ck_assert_msg(m.state == t->to && a == t->actions,
                      "%s(pending=%d, alive=%d, handover=%d) + %s: got %s / %s, expected %s / %s",
                      state_to_string(t->from.state), t->from.reload_pending, t->from.serving_alive,
                      t->from.handover, event_to_string(t->ev), state_to_string(m.state),
                      actions_to_string(a, got, sizeof got), state_to_string(t->to),
                      actions_to_string(t->actions, want, sizeof want));
        ck_assert_msg(m.reload_pending == t->pending_after, "%s + %s: reload_pending %d, expected %d",
                      state_to_string(t->from.state), event_to_string(t->ev), m.reload_pending, t->pending_after);
        ck_assert(m.handover == t->from.handover); /* the mode never changes */
        /* serving_alive only matters while something serves; check it there. */
        if (m.state == STATE_RELOADING || m.state == STATE_SERVING || m.state == STATE_HANDING_OVER ||
            m.state == STATE_BAKING)
                ck_assert_msg(m.serving_alive == t->alive_after, "%s + %s: serving_alive %d, expected %d",
                              state_to_string(t->from.state), event_to_string(t->ev), m.serving_alive,
                              t->alive_after);
}
END_TEST

START_TEST(test_table_covers_every_pair) {
        bool seen[_STATE_MAX][_EV_MAX] = {};
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
                seen[table[i].from.state][table[i].ev] = true;
        for (int s = 0; s < _STATE_MAX; s++)
                for (int e = 0; e < _EV_MAX; e++)
                        ck_assert_msg(seen[s][e], "no table row for %s + %s", state_to_string((State) s),
                                      event_to_string((Event) e));
}
END_TEST

START_TEST(test_init) {
        Machine m = MACHINE_INIT(false, false);
        ck_assert_int_eq(m.state, STATE_STARTING);
        ck_assert(!m.reload_pending);
        ck_assert(!m.serving_alive);
        ck_assert(!m.handover);
        m = MACHINE_INIT(true, false);
        ck_assert_int_eq(m.state, STATE_STARTING);
        ck_assert(!m.reload_pending);
        ck_assert(!m.serving_alive);
        ck_assert(m.handover);
}
END_TEST

/* ---- scenarios -------------------------------------------------------- */

/* Steps and checks the resulting state and actions. */
#define STEP(m, ev, want_state, want_actions)                                                                   \
        do {                                                                                                    \
                unsigned _a = machine_step(&(m), (ev));                                                        \
                char _g[160], _w[160];                                                                          \
                ck_assert_msg((m).state == (want_state) && _a == (unsigned) (want_actions),                    \
                              "line %d: %s: got %s / %s, expected %s / %s", __LINE__, event_to_string(ev),      \
                              state_to_string((m).state), actions_to_string(_a, _g, sizeof _g),                 \
                              state_to_string(want_state), actions_to_string((want_actions), _w, sizeof _w));   \
        } while (0)

static Machine serving_machine_mode(bool handover) {
        Machine m = MACHINE_INIT(handover, false);
        STEP(m, EV_READY, STATE_SERVING, COMMIT | READY);
        return m;
}

static Machine serving_machine(void) {
        return serving_machine_mode(false);
}

START_TEST(test_happy_path) {
        Machine m = serving_machine();
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_READY, STATE_SERVING, COMMIT | READY);
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_FAILED, STATE_SERVING, ROLLBACK | READY);
        STEP(m, EV_STOP, STATE_STOPPING, RETIRE | STOPPING);
        STEP(m, EV_ALL_GONE, STATE_DONE, EXIT);
}
END_TEST

START_TEST(test_reload_during_reload_after_ready) {
        Machine m = serving_machine();
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_RELOAD, STATE_RELOADING, 0);
        ck_assert(m.reload_pending);
        /* The first reload ends; the pending one starts at once... */
        STEP(m, EV_READY, STATE_RELOADING, COMMIT | READY | START | RELOADING);
        ck_assert(!m.reload_pending);
        /* ... and only once. */
        STEP(m, EV_READY, STATE_SERVING, COMMIT | READY);
        STEP(m, EV_READY, STATE_SERVING, 0);
}
END_TEST

START_TEST(test_reload_during_reload_after_failed) {
        Machine m = serving_machine();
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_RELOAD, STATE_RELOADING, 0);
        STEP(m, EV_FAILED, STATE_RELOADING, ROLLBACK | READY | START | RELOADING);
        ck_assert(!m.reload_pending);
        STEP(m, EV_FAILED, STATE_SERVING, ROLLBACK | READY);
        STEP(m, EV_FAILED, STATE_SERVING, 0);
}
END_TEST

START_TEST(test_many_reloads_coalesce) {
        Machine m = serving_machine();
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        for (int i = 0; i < 100; i++)
                STEP(m, EV_RELOAD, STATE_RELOADING, 0);
        STEP(m, EV_READY, STATE_RELOADING, COMMIT | READY | START | RELOADING);
        STEP(m, EV_READY, STATE_SERVING, COMMIT | READY);
}
END_TEST

START_TEST(test_reload_while_starting_is_deferred) {
        Machine m = MACHINE_INIT(false, false);
        STEP(m, EV_RELOAD, STATE_STARTING, 0);
        STEP(m, EV_RELOAD, STATE_STARTING, 0);
        STEP(m, EV_READY, STATE_RELOADING, COMMIT | READY | START | RELOADING);
        STEP(m, EV_READY, STATE_SERVING, COMMIT | READY);
}
END_TEST

START_TEST(test_reload_while_starting_then_failure_drops_it) {
        Machine m = MACHINE_INIT(false, false);
        STEP(m, EV_RELOAD, STATE_STARTING, 0);
        STEP(m, EV_FAILED, STATE_STOPPING, ROLLBACK);
        ck_assert(!m.reload_pending);
        STEP(m, EV_RELOAD, STATE_STOPPING, 0);
        STEP(m, EV_ALL_GONE, STATE_DONE, EXIT);
}
END_TEST

START_TEST(test_stop_during_reload) {
        Machine m = serving_machine();
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_RELOAD, STATE_RELOADING, 0);
        STEP(m, EV_STOP, STATE_STOPPING, ROLLBACK | RETIRE | STOPPING);
        ck_assert(!m.reload_pending);
        /* Late events of the dying generations change nothing. */
        STEP(m, EV_READY, STATE_STOPPING, 0);
        STEP(m, EV_SERVING_EXITED, STATE_STOPPING, 0);
        STEP(m, EV_STOP, STATE_STOPPING, 0);
        STEP(m, EV_ALL_GONE, STATE_DONE, EXIT);
        STEP(m, EV_ALL_GONE, STATE_DONE, 0);
}
END_TEST

START_TEST(test_serving_exits_then_candidate_ready) {
        Machine m = serving_machine();
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_SERVING_EXITED, STATE_RELOADING, 0);
        ck_assert(!m.serving_alive);
        STEP(m, EV_READY, STATE_SERVING, COMMIT | READY);
        ck_assert(m.serving_alive);
        /* The recovered service reloads normally again. */
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_FAILED, STATE_SERVING, ROLLBACK | READY);
}
END_TEST

START_TEST(test_serving_exits_then_candidate_fails) {
        Machine m = serving_machine();
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_RELOAD, STATE_RELOADING, 0);
        STEP(m, EV_SERVING_EXITED, STATE_RELOADING, 0);
        STEP(m, EV_FAILED, STATE_STOPPING, ROLLBACK | STOPPING);
        ck_assert(!m.reload_pending);
        STEP(m, EV_ALL_GONE, STATE_DONE, EXIT);
}
END_TEST

START_TEST(test_serving_exits_then_stop) {
        Machine m = serving_machine();
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_SERVING_EXITED, STATE_RELOADING, 0);
        /* Nothing to retire: it is gone already. */
        STEP(m, EV_STOP, STATE_STOPPING, ROLLBACK | STOPPING);
}
END_TEST

START_TEST(test_serving_exits_while_serving) {
        Machine m = serving_machine();
        STEP(m, EV_SERVING_EXITED, STATE_STOPPING, STOPPING);
        STEP(m, EV_ALL_GONE, STATE_DONE, EXIT);
}
END_TEST

START_TEST(test_strings) {
        ck_assert_str_eq(state_to_string(STATE_STARTING), "starting");
        ck_assert_str_eq(state_to_string(STATE_SERVING), "serving");
        ck_assert_str_eq(state_to_string(STATE_RELOADING), "reloading");
        ck_assert_str_eq(state_to_string(STATE_HANDING_OVER), "handing-over");
        ck_assert_str_eq(state_to_string(STATE_STOPPING), "stopping");
        ck_assert_str_eq(state_to_string(STATE_DONE), "done");
        ck_assert_str_eq(state_to_string(_STATE_MAX), "invalid");
        ck_assert_str_eq(state_to_string((State) -1), "invalid");
        ck_assert_str_eq(event_to_string(EV_READY), "ready");
        ck_assert_str_eq(event_to_string(EV_FAILED), "failed");
        ck_assert_str_eq(event_to_string(EV_SERVING_EXITED), "serving-exited");
        ck_assert_str_eq(event_to_string(EV_RELOAD), "reload");
        ck_assert_str_eq(event_to_string(EV_STOP), "stop");
        ck_assert_str_eq(event_to_string(EV_ALL_GONE), "all-gone");
        ck_assert_str_eq(event_to_string(EV_HANDED_OVER), "handed-over");
        ck_assert_str_eq(event_to_string(_EV_MAX), "invalid");
        ck_assert_str_eq(event_to_string((Event) 1000), "invalid");
}
END_TEST

START_TEST(test_handover_happy_path) {
        Machine m = serving_machine_mode(true);
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        /* Ready: MAINPID=+READY=1 go out, the old main waits for the barrier. */
        STEP(m, EV_READY, STATE_HANDING_OVER, HANDOVER);
        STEP(m, EV_READY, STATE_HANDING_OVER, 0);
        /* Handed over: this process retires without STOPPING=1. */
        STEP(m, EV_HANDED_OVER, STATE_STOPPING, TAKEOVER);
        STEP(m, EV_RELOAD, STATE_STOPPING, 0);
        STEP(m, EV_ALL_GONE, STATE_DONE, EXIT);
}
END_TEST

START_TEST(test_handover_passes_pending_reload) {
        Machine m = serving_machine_mode(true);
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_RELOAD, STATE_RELOADING, 0);
        /* The pending reload is not started here... */
        STEP(m, EV_READY, STATE_HANDING_OVER, HANDOVER);
        STEP(m, EV_RELOAD, STATE_HANDING_OVER, 0);
        /* ... but passed on, once. */
        STEP(m, EV_HANDED_OVER, STATE_STOPPING, TAKEOVER | PASS);
        ck_assert(!m.reload_pending);
        STEP(m, EV_ALL_GONE, STATE_DONE, EXIT);

        /* A reload asked for only while handing over is passed on too. */
        m = serving_machine_mode(true);
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_READY, STATE_HANDING_OVER, HANDOVER);
        STEP(m, EV_RELOAD, STATE_HANDING_OVER, 0);
        STEP(m, EV_HANDED_OVER, STATE_STOPPING, TAKEOVER | PASS);
}
END_TEST

START_TEST(test_handover_candidate_dies) {
        Machine m = serving_machine_mode(true);
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_READY, STATE_HANDING_OVER, HANDOVER);
        STEP(m, EV_RELOAD, STATE_HANDING_OVER, 0);
        STEP(m, EV_FAILED, STATE_STOPPING, ROLLBACK | RETIRE | STOPPING);
        ck_assert(!m.reload_pending);
        STEP(m, EV_HANDED_OVER, STATE_STOPPING, 0); /* too late */
        STEP(m, EV_ALL_GONE, STATE_DONE, EXIT);
}
END_TEST

START_TEST(test_handover_serving_exits_meanwhile) {
        Machine m = serving_machine_mode(true);
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_READY, STATE_HANDING_OVER, HANDOVER);
        STEP(m, EV_SERVING_EXITED, STATE_HANDING_OVER, 0);
        /* Nothing left to retire on a stop. */
        STEP(m, EV_STOP, STATE_STOPPING, ROLLBACK | STOPPING);
}
END_TEST

START_TEST(test_handover_mainpid_not_sent_is_rolled_back) {
        Machine m = serving_machine_mode(true);
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_READY, STATE_HANDING_OVER, HANDOVER);
        STEP(m, EV_RELOAD, STATE_HANDING_OVER, 0);
        /* The pending reload is ours to run: we are still main. */
        STEP(m, EV_NOT_HANDED_OVER, STATE_RELOADING, ROLLBACK | READY | START | RELOADING);
        STEP(m, EV_READY, STATE_HANDING_OVER, HANDOVER);
        STEP(m, EV_HANDED_OVER, STATE_STOPPING, TAKEOVER);
}
END_TEST

START_TEST(test_handover_failed_reload_is_rolled_back) {
        Machine m = serving_machine_mode(true);
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_FAILED, STATE_SERVING, ROLLBACK | READY);
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_READY, STATE_HANDING_OVER, HANDOVER);
}
END_TEST

START_TEST(test_supervise_never_hands_over) {
        Machine m = serving_machine();
        STEP(m, EV_RELOAD, STATE_RELOADING, START | RELOADING);
        STEP(m, EV_HANDED_OVER, STATE_RELOADING, 0);
        STEP(m, EV_READY, STATE_SERVING, COMMIT | READY);
        STEP(m, EV_HANDED_OVER, STATE_SERVING, 0);
}
END_TEST

/* ---- random sequences ------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void) {
        /* xorshift64*: reproducible across libcs. */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 0x2545F4914F6CDD1DULL;
}

/* What systemd and the supervisor would see, tracked from the actions alone. */
typedef struct {
        bool reloading_notified; /* RELOADING=1 sent, READY=1 not yet */
        bool candidate;          /* a generation (or next handoff) is starting */
        bool stopping_notified;
        bool handed_over;        /* MAINPID= sent: systemd's main is the next handoff */
        unsigned n_reloads, n_exits, n_pending_starts, n_handovers;
} Observer;

#define OBSERVER_INIT ((Observer) { .candidate = true }) /* the caller started the first one */

/* Carries out one step's actions in bit order, as the supervisor does. */
static void observe(Observer *o, const Machine *before, Event ev, unsigned a, const Machine *after, unsigned step) {
        char buf[200];
        /* Plain if: a passing ck_assert() records a checkpoint, too slow for
         * millions of steps. */
#define CHECK(cond, ...)                                                                                        \
        do {                                                                                                    \
                if (!(cond))                                                                                    \
                        ck_abort_msg("step %u, %s%s + %s -> %s (%s): " __VA_ARGS__, step,                       \
                                     before->handover ? "[handover] " : "", state_to_string(before->state),     \
                                     event_to_string(ev), state_to_string(after->state),                        \
                                     actions_to_string(a, buf, sizeof buf));                                     \
        } while (0)

        CHECK(a >> 12 == 0, "unknown action bits");
        CHECK(after->handover == before->handover, "the mode changed");
        CHECK(!((a & COMMIT) && (a & ROLLBACK)), "commit and rollback at once");
        CHECK(!((a & (READY | HANDOVER)) && (a & STOPPING)), "READY=1 and STOPPING=1 at once");
        CHECK(!!(a & START) == !!(a & RELOADING), "START_CANDIDATE without NOTIFY_RELOADING or vice versa");
        CHECK(!(a & (HANDOVER | TAKEOVER | PASS)) || before->handover, "handover actions in supervise mode");
        CHECK(!(a & PASS) || (a & TAKEOVER), "PASS_RELOAD without TAKEOVER");
        /* MAINPID= was never delivered: systemd's main is still us. */
        if (before->state == STATE_HANDING_OVER && ev == EV_NOT_HANDED_OVER)
                o->handed_over = false;
        if (o->handed_over)
                CHECK(!(a & (COMMIT | READY | START | RELOADING | HANDOVER)), "speaking for the service after MAINPID=");

        if (a & (ROLLBACK | COMMIT)) {
                CHECK(o->candidate, "commit/rollback without a candidate");
                o->candidate = false;
        }
        if (a & (READY | HANDOVER)) {
                CHECK(!o->stopping_notified, "READY=1 after STOPPING=1");
                o->reloading_notified = false;
        }
        if (a & HANDOVER) {
                CHECK((before->state == STATE_RELOADING && ev == EV_READY) ||
                              (before->state == STATE_BAKING && (ev == EV_BAKED || ev == EV_SERVING_EXITED)),
                      "handover other than on a ready (and baked) candidate");
                CHECK(o->candidate, "handover without a candidate");
                o->handed_over = true;
                o->n_handovers++;
        }
        if (a & TAKEOVER) {
                CHECK(before->state == STATE_HANDING_OVER && ev == EV_HANDED_OVER, "takeover out of place");
                CHECK(o->candidate, "takeover without a candidate");
                CHECK(!!(a & PASS) == before->reload_pending, "pending reload not passed on exactly when pending");
                CHECK(!(a & STOPPING), "STOPPING=1 after handing over");
                o->candidate = false;
        }
        if (a & STOPPING) {
                CHECK(!o->stopping_notified, "STOPPING=1 twice");
                o->stopping_notified = true;
        }
        if (a & START) {
                CHECK(!o->candidate, "a second candidate while one is starting");
                o->candidate = true;
                if (before->reload_pending)
                        o->n_pending_starts++;
        }
        if (a & RELOADING) {
                CHECK(!o->reloading_notified, "RELOADING=1 twice without READY=1 between");
                CHECK(!o->stopping_notified, "RELOADING=1 after STOPPING=1");
                o->reloading_notified = true;
                o->n_reloads++;
        }
        if (a & EXIT) {
                CHECK(before->state == STATE_STOPPING && ev == EV_ALL_GONE, "exit other than from stopping + all-gone");
                CHECK(a == EXIT, "exit with other actions");
                o->n_exits++;
        }
        if (before->state == STATE_STOPPING && ev == EV_ALL_GONE)
                CHECK(a & EXIT, "all-gone while stopping does not exit");

        /* The state agrees with what was said and done. */
        bool starting_something = after->state == STATE_STARTING || after->state == STATE_RELOADING ||
                                  after->state == STATE_BAKING || after->state == STATE_HANDING_OVER;
        CHECK(starting_something == o->candidate, "state and candidate disagree");
        CHECK((after->state == STATE_HANDING_OVER) == (o->handed_over && o->candidate),
              "handing over without MAINPID= sent, or vice versa");
        if (after->state == STATE_RELOADING || after->state == STATE_BAKING)
                CHECK(o->reloading_notified, "reloading without RELOADING=1");
        if (a & BAKE)
                CHECK(before->bake && before->state == STATE_RELOADING && ev == EV_READY && after->state == STATE_BAKING,
                      "bake out of place");
        if (after->state == STATE_SERVING || after->state == STATE_HANDING_OVER)
                CHECK(!o->reloading_notified, "a RELOADING=1 not ended by READY=1");
        if (after->state == STATE_DONE)
                CHECK(before->state == STATE_DONE || (a & EXIT), "done without exit");
        if (before->state == STATE_DONE)
                CHECK(a == 0, "actions after done");
        if (after->reload_pending)
                CHECK(after->state == STATE_STARTING || after->state == STATE_RELOADING ||
                              after->state == STATE_BAKING || after->state == STATE_HANDING_OVER,
                      "reload pending outside starting/reloading/baking/handing-over");
#undef CHECK
}

START_TEST(test_random_sequences) {
        static const uint64_t seeds[] = { 1, 42, 0xdeadbeef, 20240601, 7777777 };
        unsigned long visited[_STATE_MAX][_EV_MAX] = {};
        unsigned total_exits = 0, total_reloads = 0, total_pending = 0, total_handovers = 0;

        for (int mode = 0; mode < 4; mode++)
                for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
                        bool handover = mode & 1, bake = mode & 2;
                        rng_state = seeds[s];
                        Machine m = MACHINE_INIT(handover, bake);
                        Observer o = OBSERVER_INIT;
                        for (unsigned step = 0; step < 10000; step++) {
                                if (m.state == STATE_DONE && (rng() % 4 == 0)) {
                                        /* A fresh run now and then; DONE is also probed. */
                                        total_exits += o.n_exits;
                                        total_reloads += o.n_reloads;
                                        total_pending += o.n_pending_starts;
                                        total_handovers += o.n_handovers;
                                        m = MACHINE_INIT(handover, bake);
                                        o = OBSERVER_INIT;
                                }
                                /* Weighted: reloads and readiness often, the end rarely. */
                                static const Event weighted[] = {
                                        EV_READY,  EV_READY,  EV_READY,          EV_FAILED, EV_FAILED,
                                        EV_RELOAD, EV_RELOAD, EV_RELOAD,         EV_RELOAD, EV_SERVING_EXITED,
                                        EV_STOP,   EV_ALL_GONE, EV_HANDED_OVER, EV_BAKED, EV_BAKED,
                                        EV_NOT_HANDED_OVER,
                                };
                                Event ev = weighted[rng() % (sizeof weighted / sizeof weighted[0])];
                                Machine before = m;
                                unsigned a = machine_step(&m, ev);
                                visited[before.state][ev]++;
                                observe(&o, &before, ev, a, &m, step);
                        }
                        total_exits += o.n_exits;
                        total_reloads += o.n_reloads;
                        total_pending += o.n_pending_starts;
                        total_handovers += o.n_handovers;
                }
        /* The walk really went everywhere. */
        for (int st = 0; st < _STATE_MAX; st++)
                for (int e = 0; e < _EV_MAX; e++)
                        ck_assert_msg(visited[st][e] > 0, "%s + %s never visited", state_to_string((State) st),
                                      event_to_string((Event) e));
        ck_assert_uint_gt(total_exits, 100);
        ck_assert_uint_gt(total_reloads, 1000);
        ck_assert_uint_gt(total_pending, 100);
        ck_assert_uint_gt(total_handovers, 100);
}
END_TEST

START_TEST(test_exhaustive_short_sequences) {
        /* Every sequence of 6 events from MACHINE_INIT, in all four modes
         * (handover x bake): 4 * 9^6 = 2125764 runs; fast enough under ASan. */
        enum { LEN = 6 };
        for (int mode = 0; mode < 4; mode++) {
                unsigned idx[LEN] = {};
                for (;;) {
                        Machine m = MACHINE_INIT(mode & 1, mode & 2);
                        Observer o = OBSERVER_INIT;
                        for (unsigned i = 0; i < LEN; i++) {
                                Machine before = m;
                                unsigned a = machine_step(&m, (Event) idx[i]);
                                observe(&o, &before, (Event) idx[i], a, &m, i);
                        }
                        unsigned k = 0;
                        while (k < LEN && ++idx[k] == _EV_MAX)
                                idx[k++] = 0;
                        if (k == LEN)
                                break;
                }
        }
}
END_TEST

static Suite *fsm_suite(void) {
        Suite *s = suite_create("fsm");
        TCase *tc = tcase_create("table");
        tcase_add_loop_test(tc, test_transition_table, 0, (int) (sizeof table / sizeof table[0]));
        tcase_add_test(tc, test_table_covers_every_pair);
        tcase_add_test(tc, test_init);
        tcase_add_test(tc, test_strings);
        suite_add_tcase(s, tc);

        tc = tcase_create("scenarios");
        tcase_add_test(tc, test_happy_path);
        tcase_add_test(tc, test_reload_during_reload_after_ready);
        tcase_add_test(tc, test_reload_during_reload_after_failed);
        tcase_add_test(tc, test_many_reloads_coalesce);
        tcase_add_test(tc, test_reload_while_starting_is_deferred);
        tcase_add_test(tc, test_reload_while_starting_then_failure_drops_it);
        tcase_add_test(tc, test_stop_during_reload);
        tcase_add_test(tc, test_serving_exits_then_candidate_ready);
        tcase_add_test(tc, test_serving_exits_then_candidate_fails);
        tcase_add_test(tc, test_serving_exits_then_stop);
        tcase_add_test(tc, test_serving_exits_while_serving);
        tcase_add_test(tc, test_handover_happy_path);
        tcase_add_test(tc, test_handover_passes_pending_reload);
        tcase_add_test(tc, test_handover_candidate_dies);
        tcase_add_test(tc, test_handover_serving_exits_meanwhile);
        tcase_add_test(tc, test_handover_failed_reload_is_rolled_back);
        tcase_add_test(tc, test_handover_mainpid_not_sent_is_rolled_back);
        tcase_add_test(tc, test_supervise_never_hands_over);
        suite_add_tcase(s, tc);

        tc = tcase_create("random");
        tcase_set_timeout(tc, 50);
        tcase_add_test(tc, test_random_sequences);
        tcase_add_test(tc, test_exhaustive_short_sequences);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return unit_run(fsm_suite());
}
