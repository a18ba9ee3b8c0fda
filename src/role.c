/* SPDX-License-Identifier: MIT */
#include "role.h"

#define N _ROLE_MAX /* "no change" in the table below */

/* transitions[role][event]: the next role, or N to stay. */
static const Role transitions[_ROLE_MAX][_ROLE_EV_MAX] = {
        [ROLE_MAIN] = {
                [ROLE_EV_MAINPID_SENT] = ROLE_YIELDED,
                /* Without a service manager there is no MAINPID= to send. */
                [ROLE_EV_TAKEOVER_SENT] = ROLE_HANDED_OFF,
                [ROLE_EV_TOOK_OVER] = N,
                [ROLE_EV_PREDECESSOR_GONE] = N,
                [ROLE_EV_NAMED] = N,
                [ROLE_EV_MAINPID_RECLAIMED] = N,
                [ROLE_EV_UNNAMED] = N,
        },
        [ROLE_CANDIDATE] = {
                [ROLE_EV_MAINPID_SENT] = N,
                [ROLE_EV_TAKEOVER_SENT] = N,
                [ROLE_EV_TOOK_OVER] = ROLE_MAIN_AFTER_TAKEOVER,
                [ROLE_EV_PREDECESSOR_GONE] = ROLE_ABANDONED,
                [ROLE_EV_NAMED] = ROLE_NAMED,
                [ROLE_EV_MAINPID_RECLAIMED] = N,
                [ROLE_EV_UNNAMED] = N,
        },
        [ROLE_MAIN_AFTER_TAKEOVER] = {
                /* A reload right after the takeover hands over again. */
                [ROLE_EV_MAINPID_SENT] = ROLE_YIELDED,
                [ROLE_EV_TAKEOVER_SENT] = ROLE_HANDED_OFF,
                [ROLE_EV_TOOK_OVER] = N,
                [ROLE_EV_PREDECESSOR_GONE] = ROLE_MAIN,
                [ROLE_EV_NAMED] = N,
                [ROLE_EV_MAINPID_RECLAIMED] = N,
                [ROLE_EV_UNNAMED] = N,
        },
        [ROLE_ABANDONED] = { N, N, N, N, N, N, N },
        [ROLE_YIELDED] = {
                [ROLE_EV_MAINPID_SENT] = N,
                [ROLE_EV_TAKEOVER_SENT] = ROLE_HANDED_OFF,
                [ROLE_EV_TOOK_OVER] = N,
                [ROLE_EV_PREDECESSOR_GONE] = N,
                [ROLE_EV_NAMED] = N,
                /* The next handoff exited before TAKEOVER: main again,
                 * if systemd had refused it (see hand_back()). */
                [ROLE_EV_MAINPID_RECLAIMED] = ROLE_MAIN,
                [ROLE_EV_UNNAMED] = N,
        },
        [ROLE_HANDED_OFF] = { N, N, N, N, N, N, N },
        [ROLE_NAMED] = {
                [ROLE_EV_MAINPID_SENT] = N,
                [ROLE_EV_TAKEOVER_SENT] = N,
                [ROLE_EV_TOOK_OVER] = ROLE_MAIN_AFTER_TAKEOVER,
                /* Killed before it told us to take over: systemd names us
                 * main, and nobody is left to hand the service back to. */
                [ROLE_EV_PREDECESSOR_GONE] = ROLE_MAIN,
                [ROLE_EV_NAMED] = N,
                [ROLE_EV_MAINPID_RECLAIMED] = N,
                /* MAINPID= could not be sent: systemd names the predecessor
                 * still, whose abort follows. */
                [ROLE_EV_UNNAMED] = ROLE_CANDIDATE,
        },
};

Role role_step(Role r, RoleEvent ev) {
        if ((unsigned) r >= _ROLE_MAX || (unsigned) ev >= _ROLE_EV_MAX)
                return r;
        Role next = transitions[r][ev];
        return next == N ? r : next;
}

bool role_speaks_to_systemd(Role r) {
        return r == ROLE_MAIN || r == ROLE_MAIN_AFTER_TAKEOVER;
}

bool role_awaits_takeover(Role r) {
        return r == ROLE_CANDIDATE || r == ROLE_NAMED;
}

bool role_ignores_stop(Role r) {
        /* Not main any more (systemd was told MAINPID=), and already
         * retiring within the drain deadline; KillMode=control-group
         * signals us too. */
        return r == ROLE_YIELDED || r == ROLE_HANDED_OFF;
}

bool role_handed_off(Role r) {
        return r == ROLE_HANDED_OFF;
}

bool role_owns_files(Role r) {
        /* YIELDED: the next handoff died before it took over, so the
         * service ends here. A candidate that never took over leaves its
         * predecessor's files alone. */
        return r == ROLE_MAIN || r == ROLE_MAIN_AFTER_TAKEOVER || r == ROLE_YIELDED;
}

const char *role_to_string(Role r) {
        static const char *const names[_ROLE_MAX] = {
                [ROLE_MAIN] = "main",
                [ROLE_CANDIDATE] = "candidate",
                [ROLE_MAIN_AFTER_TAKEOVER] = "main-after-takeover",
                [ROLE_ABANDONED] = "abandoned",
                [ROLE_YIELDED] = "yielded",
                [ROLE_HANDED_OFF] = "handed-off",
                [ROLE_NAMED] = "named",
        };
        return (unsigned) r < _ROLE_MAX ? names[r] : "invalid";
}

const char *role_event_to_string(RoleEvent ev) {
        static const char *const names[_ROLE_EV_MAX] = {
                [ROLE_EV_MAINPID_SENT] = "mainpid-sent",
                [ROLE_EV_TAKEOVER_SENT] = "takeover-sent",
                [ROLE_EV_TOOK_OVER] = "took-over",
                [ROLE_EV_PREDECESSOR_GONE] = "predecessor-gone",
                [ROLE_EV_NAMED] = "named",
                [ROLE_EV_MAINPID_RECLAIMED] = "mainpid-reclaimed",
                [ROLE_EV_UNNAMED] = "unnamed",
        };
        return (unsigned) ev < _ROLE_EV_MAX ? names[ev] : "invalid";
}
