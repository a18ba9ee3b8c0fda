/* SPDX-License-Identifier: MIT */
/* The supervisor's side of "handoff reload" and "handoff status": which
 * reload answers a request, and what the status shows. */
#include <stdio.h>

#include "log.h"
#include "status.h"
#include "supervisor-internal.h"

#ifndef HANDOFF_VERSION
#define HANDOFF_VERSION "unknown"
#endif

static void add_generation(ServiceStatus *st, const Generation *g, const char *role, usec_t now) {
        if (st->n_gens >= STATUS_MAX_GENS || g->exited)
                return;
        usec_t deadline = USEC_INFINITY;
        if (g->stop_signal && g->timer_source && sd_event_source_get_time(g->timer_source, &deadline) < 0)
                deadline = USEC_INFINITY;
        st->gens[st->n_gens++] = (StatusGeneration) {
                .number = g->number,
                .pid = g->pid,
                .role = role,
                .age = now - g->started_usec,
                .kill_in = deadline == USEC_INFINITY ? USEC_INFINITY : deadline > now ? deadline - now : 0,
        };
}

static void snapshot(Supervisor *s, ServiceStatus *st) {
        usec_t now = now_monotonic();
        const Listeners *l = s->p->listeners;
        *st = (ServiceStatus) {
                .pid = getpid(),
                .version = HANDOFF_VERSION,
                .mode = s->machine.handover ? "handover" : "supervise",
                .state = state_to_string(s->machine.state),
                .reloads_ok = s->reloads_ok,
                .reloads_failed = s->reloads_failed,
                .last_result = s->last_result,
                .handed_over_to = s->handed_to,
                .predecessor_draining = s->predecessor_alive,
        };
        if (s->serving)
                add_generation(st, s->serving, "serving", now);
        if (s->successor)
                add_generation(st, s->successor, "starting", now);
        for (Generation *g = s->gens; g; g = g->next)
                if (g != s->serving && g != s->successor)
                        add_generation(st, g, g->role == GEN_RETIRING ? "retiring" : "starting", now);
        if (s->next_main && st->n_gens < STATUS_MAX_GENS)
                st->gens[st->n_gens++] = (StatusGeneration) {
                        .number = s->next_main->number,
                        .pid = s->next_main->pid,
                        .role = "successor",
                        .age = now - s->reload_started,
                        .kill_in = USEC_INFINITY,
                };
        for (size_t i = 0; i < l->n && st->n_sockets < STATUS_MAX_SOCKETS; i++) {
                StatusSocket *k = &st->sockets[st->n_sockets++];
                k->fd = 3 + (int) i; /* where every generation finds it */
                k->name = l->names[i];
                socket_describe(l->fds[i], k->address, sizeof k->address);
        }
}

static void reply_status(Supervisor *s, ControlConn *conn, bool json) {
        ServiceStatus st;
        _cleanup_free_ char *text = NULL;
        snapshot(s, &st);
        if (status_format_alloc(&st, json, &text) < 0) {
                control_reply(s->control, conn, "ERROR out of memory");
                return;
        }
        control_reply(s->control, conn, "OK %s", text);
}

/* Which reload answers a request: one that starts after it arrived, since
 * whatever the client changed (a config file, a binary) must be in it. So a
 * request joins the next reload, and asks for one; a reload already running
 * when it arrives does not count. */
static void on_request(Control *c, ControlConn *conn, RequestKind kind, void *userdata) {
        Supervisor *s = userdata;

        if (kind == REQUEST_STATUS || kind == REQUEST_STATUS_JSON) {
                reply_status(s, conn, kind == REQUEST_STATUS_JSON);
                return;
        }
        if (s->handed_to) {
                /* A client with a stale pid: the service lives on there. */
                control_reply(c, conn, "FOLLOW %d", (int) s->handed_to);
                return;
        }
        if (s->machine.state == STATE_STOPPING || s->machine.state == STATE_DONE) {
                control_reply(c, conn, "FAIL the service is stopping");
                return;
        }
        if (kind == REQUEST_JOIN) {
                /* Sent on by a predecessor that passed our reload along: ours
                 * is running (or, before our takeover, about to). */
                if (s->machine.state == STATE_SERVING)
                        control_reply(c, conn, "%s %s", s->last_result_ok ? "OK" : "FAIL reload failed:",
                                      s->last_result_ok ? s->last_reply : s->last_result);
                else
                        control_wait(c, conn, s->machine.state == STATE_STARTING ? WAIT_NEXT : WAIT_CURRENT);
                return;
        }
        log_info("Reload requested (control socket).");
        control_wait(c, conn, WAIT_NEXT);
        dispatch(s, EV_RELOAD);
}

int control_setup(Supervisor *s) {
        int r = control_new(s->event, 3 + (int) s->config.n_fds, on_request, s, &s->control);
        if (r < 0)
                /* Reloads by signal still work: not worth refusing to serve. */
                log_warning_errno(r, "Failed to open the control socket, \"handoff reload\" will not work: %m");
        return 0;
}

void control_on_reload_start(Supervisor *s) {
        if (s->control)
                control_reload_started(s->control);
}

void control_on_reload_end(Supervisor *s) {
        if (!s->control)
                return;
        if (s->machine.state == STATE_STOPPING || s->machine.state == STATE_DONE) {
                /* Only this reload's own failure is worth naming; a successor
                 * that goes down leaves its predecessor serving. */
                char why[256];
                const char *what = s->is_successor && !s->took_over ? "this handoff gave up; its predecessor serves on"
                                                                    : "the service is stopping";
                snprintf(why, sizeof why, "FAIL %s%s%s", s->current_failed ? s->last_result : "",
                         s->current_failed ? "; " : "", what);
                control_reload_ended(s->control, why);
                control_answer_next(s->control, why);
        } else if (s->last_result_ok) {
                char ok[256];
                snprintf(ok, sizeof ok, "OK %s", s->last_reply);
                control_reload_ended(s->control, ok);
        } else {
                char fail[256];
                snprintf(fail, sizeof fail, "FAIL reload failed: %s", s->last_result);
                control_reload_ended(s->control, fail);
        }
}

void control_on_handed_over(Supervisor *s) {
        if (!s->control)
                return;
        /* We are stopping now, but the reload succeeded: it is the service
         * that lives on, in the successor. */
        char ok[256];
        snprintf(ok, sizeof ok, "OK %s", s->last_reply);
        control_reload_ended(s->control, ok);
        /* A reload asked for meanwhile was passed on: it ends there. */
        char join[32];
        snprintf(join, sizeof join, "JOIN %d", (int) s->handed_to);
        control_answer_next(s->control, join);
}
