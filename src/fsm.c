/* SPDX-License-Identifier: MIT */
#include "fsm.h"

/* After a reload has ended (either way): if another was asked for meanwhile,
 * it starts now, once, however many requests came in. */
static unsigned end_reload(Machine *m, unsigned actions) {
        m->state = STATE_SERVING;
        m->serving_alive = true;
        if (m->reload_pending) {
                m->reload_pending = false;
                m->state = STATE_RELOADING;
                actions |= ACT_START_CANDIDATE | ACT_NOTIFY_RELOADING;
        }
        return actions;
}

/* A stop, or a failure that leaves nothing to serve, while a candidate
 * starts: stop it and whatever still serves, and go down. */
static unsigned abort_and_stop(Machine *m) {
        m->state = STATE_STOPPING;
        m->reload_pending = false;
        return ACT_ROLLBACK | (m->serving_alive ? ACT_RETIRE_SERVING : 0) | ACT_NOTIFY_STOPPING;
}

static unsigned on_starting(Machine *m, Event ev) {
        switch (ev) {
        case EV_READY:
                return end_reload(m, ACT_COMMIT | ACT_NOTIFY_READY);
        case EV_FAILED:
                /* Stopping first, then exiting: a candidate that timed out
                 * still runs and must be gone before handoff is. */
                m->state = STATE_STOPPING;
                m->reload_pending = false;
                return ACT_ROLLBACK;
        case EV_RELOAD:
                m->reload_pending = true;
                return 0;
        case EV_STOP:
                return abort_and_stop(m); /* serving_alive is false: nothing serves yet */
        default:
                return 0;
        }
}

static unsigned on_serving(Machine *m, Event ev) {
        switch (ev) {
        case EV_RELOAD:
                m->state = STATE_RELOADING;
                return ACT_START_CANDIDATE | ACT_NOTIFY_RELOADING;
        case EV_SERVING_EXITED:
                /* Generations still draining from earlier reloads finish
                 * before handoff exits with the dead one's status. */
                m->state = STATE_STOPPING;
                return ACT_NOTIFY_STOPPING;
        case EV_STOP:
                m->state = STATE_STOPPING;
                return ACT_RETIRE_SERVING | ACT_NOTIFY_STOPPING;
        default:
                return 0;
        }
}

/* The ready candidate is the one to serve: hand over, or commit. */
static unsigned accept_candidate(Machine *m) {
        if (m->handover) {
                m->state = STATE_HANDING_OVER;
                return ACT_HANDOVER;
        }
        /* Also when the old generation died meanwhile: the service
         * recovered. READY=1 always ends a RELOADING=1. */
        return end_reload(m, ACT_COMMIT | ACT_NOTIFY_READY);
}

static unsigned on_reloading(Machine *m, Event ev) {
        switch (ev) {
        case EV_READY:
                if (m->bake && m->serving_alive) {
                        /* Ready is not yet proven: it serves beside the old
                         * generation, which stays until the bake time ends. */
                        m->state = STATE_BAKING;
                        return ACT_BAKE;
                }
                return accept_candidate(m);
        case EV_FAILED:
                if (!m->serving_alive)
                        return abort_and_stop(m); /* both generations failed */
                return end_reload(m, ACT_ROLLBACK | ACT_NOTIFY_READY);
        case EV_SERVING_EXITED:
                m->serving_alive = false;
                return 0;
        case EV_RELOAD:
                m->reload_pending = true;
                return 0;
        case EV_STOP:
                return abort_and_stop(m);
        default:
                return 0;
        }
}

static unsigned on_baking(Machine *m, Event ev) {
        switch (ev) {
        case EV_BAKED:
                return accept_candidate(m);
        case EV_SERVING_EXITED:
                /* Nothing left to fall back to: the candidate serves now. */
                m->serving_alive = false;
                return accept_candidate(m);
        case EV_FAILED:
                /* It died within the bake time: a rollback, as while starting. */
                return end_reload(m, ACT_ROLLBACK | ACT_NOTIFY_READY);
        case EV_RELOAD:
                m->reload_pending = true;
                return 0;
        case EV_STOP:
                return abort_and_stop(m);
        default:
                return 0;
        }
}

static unsigned on_handing_over(Machine *m, Event ev) {
        switch (ev) {
        case EV_HANDED_OVER: {
                /* A reload asked for meanwhile is the new main's to run. */
                unsigned a = ACT_TAKEOVER | (m->reload_pending ? ACT_PASS_RELOAD : 0);
                m->reload_pending = false;
                m->state = STATE_STOPPING;
                return a;
        }
        case EV_RELOAD:
                m->reload_pending = true;
                return 0;
        case EV_SERVING_EXITED:
                m->serving_alive = false;
                return 0;
        case EV_NOT_HANDED_OVER:
                /* systemd was not told: we are its main still, and a reload
                 * that failed leaves the old generation serving, if it does. */
                if (!m->serving_alive)
                        return abort_and_stop(m);
                return end_reload(m, ACT_ROLLBACK | ACT_NOTIFY_READY);
        case EV_FAILED:
        case EV_STOP:
                /* The next handoff died before taking over, after MAINPID=
                 * named it (before, the supervisor makes its failure
                 * EV_NOT_HANDED_OVER), or we are told to stop: the service
                 * goes down with both. */
                return abort_and_stop(m);
        default:
                return 0;
        }
}

static unsigned on_stopping(Machine *m, Event ev) {
        if (ev == EV_ALL_GONE) {
                m->state = STATE_DONE;
                return ACT_EXIT;
        }
        return 0;
}

unsigned machine_step(Machine *m, Event ev) {
        switch (m->state) {
        case STATE_STARTING:
                return on_starting(m, ev);
        case STATE_SERVING:
                return on_serving(m, ev);
        case STATE_RELOADING:
                return on_reloading(m, ev);
        case STATE_BAKING:
                return on_baking(m, ev);
        case STATE_HANDING_OVER:
                return on_handing_over(m, ev);
        case STATE_STOPPING:
                return on_stopping(m, ev);
        default:
                return 0;
        }
}

const char *state_to_string(State s) {
        static const char *const names[_STATE_MAX] = {
                [STATE_STARTING] = "starting",
                [STATE_SERVING] = "serving",
                [STATE_RELOADING] = "reloading",
                [STATE_BAKING] = "baking",
                [STATE_HANDING_OVER] = "handing-over",
                [STATE_STOPPING] = "stopping",
                [STATE_DONE] = "done",
        };
        return (unsigned) s < _STATE_MAX ? names[s] : "invalid";
}

const char *event_to_string(Event e) {
        static const char *const names[_EV_MAX] = {
                [EV_READY] = "ready",
                [EV_FAILED] = "failed",
                [EV_SERVING_EXITED] = "serving-exited",
                [EV_RELOAD] = "reload",
                [EV_STOP] = "stop",
                [EV_ALL_GONE] = "all-gone",
                [EV_HANDED_OVER] = "handed-over",
                [EV_BAKED] = "baked",
                [EV_NOT_HANDED_OVER] = "not-handed-over",
        };
        return (unsigned) e < _EV_MAX ? names[e] : "invalid";
}
