/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* The role of this handoff process towards systemd, as a pure function of
 * (role, event), beside the reload machine in fsm.h. The reload machine says
 * what the service does; the role says who speaks for it.
 *
 * Words used for the processes of a handover (see also handover.h):
 *   - the *candidate generation*: an app generation that is starting;
 *   - the *next handoff*: a new handoff process that a handover reload
 *     starts, and that starts its own candidate generation;
 *   - a handoff that *was started as* a next handoff is a candidate handoff
 *     (ROLE_CANDIDATE) until its predecessor tells it to take over.
 *
 *   MAIN ──mainpid-sent──> YIELDED ──takeover-sent──> HANDED_OFF
 *     ▲ └─────────────────takeover-sent──────────┼──────┘   (no systemd)
 *     └──────────mainpid-reclaimed───────────────┘
 *   CANDIDATE ──took-over──> MAIN_AFTER_TAKEOVER ──predecessor-gone──> MAIN
 *     │ └──predecessor-gone──> ABANDONED                                   ▲
 *     └──named──> NAMED ──took-over──> MAIN_AFTER_TAKEOVER                 │
 *                   └──────────────predecessor-gone──────────────────────┘
 *   NAMED ──unnamed──> CANDIDATE
 *
 * MAINPID-RECLAIMED: the next handoff MAINPID= named has exited before it
 * was told to take over, and the service manager may have refused it (it
 * takes no pid that has exited): the old main names itself main again.
 *
 * NAMED: the predecessor is telling the service manager MAINPID=<us>, and
 * has told us so, but not yet to take over. Its end of file then is no
 * abort: it died with systemd naming us main, and we take over by
 * ourselves. UNNAMED: MAINPID= could not be sent; a candidate again.
 */

typedef enum {
        ROLE_MAIN,                /* systemd's main process; speaks for the service */
        ROLE_CANDIDATE,           /* started as the next handoff; silent, not main yet */
        ROLE_MAIN_AFTER_TAKEOVER, /* main now; the predecessor still drains its generation */
        ROLE_ABANDONED,           /* a candidate whose predecessor gave up on it: never main */
        ROLE_YIELDED,             /* MAINPID= named the next handoff; awaiting systemd's barrier */
        ROLE_HANDED_OFF,          /* the next handoff took over; this one only drains and exits */
        ROLE_NAMED,               /* a candidate that MAINPID= named main; not told to take over yet */
        _ROLE_MAX,
} Role;

typedef enum {
        ROLE_EV_MAINPID_SENT,     /* the old main told systemd MAINPID=<next handoff> */
        ROLE_EV_TAKEOVER_SENT,    /* the old main told the next handoff to take over */
        ROLE_EV_TOOK_OVER,        /* a candidate was told to take over */
        ROLE_EV_PREDECESSOR_GONE, /* the predecessor's channel reached end of file */
        ROLE_EV_NAMED,            /* a candidate was told that MAINPID= names it */
        ROLE_EV_MAINPID_RECLAIMED, /* the old main told systemd MAINPID=<itself> again */
        ROLE_EV_UNNAMED,          /* a named candidate was told MAINPID= did not go after all */
        _ROLE_EV_MAX,
} RoleEvent;

/* The role after ev; events that do not apply leave the role as it is. */
Role role_step(Role r, RoleEvent ev);

/* What a role may do, derived rather than stored. */
bool role_speaks_to_systemd(Role r);   /* STATUS=, READY=1, STOPPING=1, the fd store mirror */
bool role_awaits_takeover(Role r);     /* reports to a predecessor instead of to systemd */
bool role_ignores_stop(Role r);        /* SIGTERM: already retiring after MAINPID= */
bool role_handed_off(Role r);          /* requests and SIGHUP belong to the next handoff */
bool role_owns_files(Role r);          /* at exit, the pid file and socket files are ours to remove */

const char *role_to_string(Role r);
const char *role_event_to_string(RoleEvent ev);
