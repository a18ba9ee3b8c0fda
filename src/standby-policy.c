/* SPDX-License-Identifier: MIT */
#include "standby-policy.h"
#include "standby.h"

StandbyAction standby_policy_step(StandbyPolicy *p, const StandbyFacts *f, usec_t *ret_delay) {
        /* Kept by a main in handover mode under a service manager: it is
         * stopped when a stop comes, or when this process stops being the
         * one to reload (MAINPID= names the next handoff). */
        bool keep = f->handover && f->manager && !f->stop_requested &&
                    (f->role == ROLE_MAIN || f->role == ROLE_MAIN_AFTER_TAKEOVER);
        if (!keep)
                return f->running ? STANDBY_STOP : STANDBY_NOTHING;

        /* A GO carries at most STANDBY_MAX_FDS fds: the listening sockets
         * and the fd store as they are now, which the serving generation
         * fills and empties at will (not as they were at its start). A
         * standby that cannot carry them is not kept for the reload to
         * find so and start the next handoff cold all the same; it is
         * started again once they have fit for STANDBY_REFIT_DELAY, counted
         * from the last time they did not. */
        if (f->n_fds > STANDBY_MAX_FDS) {
                if (f->running) {
                        p->dropped = true;
                        p->due = false;
                        return STANDBY_OUTGROWN;
                }
                /* None was stopped: a delay after a takeover runs on,
                 * and none starts before the fds fit. */
                if (!p->dropped)
                        return STANDBY_NOTHING;
                p->due = false;
                return f->timer_armed ? STANDBY_DISARM : STANDBY_NOTHING;
        }

        if (f->running || p->failed || f->state != STATE_SERVING)
                return STANDBY_NOTHING;
        /* After a stop for too many fds, or a takeover, a start waits for
         * its delay (standby-policy.h); the refit delay, the longer, when
         * both apply. */
        if ((p->dropped || f->role == ROLE_MAIN_AFTER_TAKEOVER) && !p->due) {
                if (f->timer_armed)
                        return STANDBY_NOTHING;
                *ret_delay = p->dropped ? STANDBY_REFIT_DELAY : STANDBY_DELAY;
                return STANDBY_ARM;
        }
        return STANDBY_START;
}

void standby_policy_due(StandbyPolicy *p) {
        p->due = true;
}

void standby_policy_failed(StandbyPolicy *p) {
        p->failed = true;
}

bool standby_policy_unfit(StandbyPolicy *p) {
        /* Each reload would stop such a standby and start the next handoff
         * cold, which takes what exec takes. Said once: not by each new
         * main, nor again after each failed reload (which tries anew). */
        bool say = !p->unfit_said;
        p->failed = true;
        p->unfit_said = true;
        return say;
}

void standby_policy_reload(StandbyPolicy *p) {
        p->failed = false;
}

const char *standby_action_to_string(StandbyAction a) {
        static const char *const names[_STANDBY_ACTION_MAX] = {
                [STANDBY_NOTHING] = "nothing",   [STANDBY_STOP] = "stop", [STANDBY_OUTGROWN] = "outgrown",
                [STANDBY_DISARM] = "disarm",     [STANDBY_ARM] = "arm",   [STANDBY_START] = "start",
        };
        return (unsigned) a < _STANDBY_ACTION_MAX ? names[a] : "invalid";
}
