/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "fsm.h"
#include "generation.h"
#include "log.h"
#include "supervisor.h"

typedef struct Supervisor {
        sd_event *event;
        const Options *opt;
        GenerationConfig config;
        Machine machine;

        Generation *gens;        /* every generation with a live process */
        Generation *serving;
        Generation *successor;   /* the one starting (the first, or a reload's) */
        unsigned last_number;

        Event queue[8];          /* events raised while dispatching */
        unsigned n_queued;
        bool dispatching;

        usec_t reload_started;
        unsigned reloads_ok, reloads_failed;
        char last_result[192];
        bool stop_requested;
        int exit_code;
} Supervisor;

static void dispatch(Supervisor *s, Event ev);

static void notify_systemd(const char *fmt, ...) _printf_(1, 2);
static void notify_systemd(const char *fmt, ...) {
        char buf[NOTIFY_MAX_LEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        /* A no-op without NOTIFY_SOCKET, so handoff speaks the same way under
         * systemd and anywhere else. */
        int r = sd_notify(0, buf);
        if (r < 0)
                log_warning_errno(r, "Failed to notify service manager: %m");
}

static const char *status_text(Supervisor *s, char *buf, size_t size) {
        if (!s->serving) {
                snprintf(buf, size, "No generation serving.");
                return buf;
        }
        snprintf(buf, size, "Serving generation %u (pid %d); %u reloads, %u failed%s%s", s->serving->number,
                 (int) s->serving->pid, s->reloads_ok, s->reloads_failed, s->last_result[0] ? "; last: " : "",
                 s->last_result);
        return buf;
}

static void list_remove(Supervisor *s, Generation *g) {
        for (Generation **p = &s->gens; *p; p = &(*p)->next)
                if (*p == g) {
                        *p = g->next;
                        break;
                }
        if (s->serving == g)
                s->serving = NULL;
        if (s->successor == g)
                s->successor = NULL;
        generation_free(g);
}

/* ---- callbacks from generations -------------------------------------- */

static void on_gen_ready(Generation *g, void *userdata) {
        Supervisor *s = userdata;
        if (g != s->successor)
                return;
        log_info("Generation %u (pid %d) is ready after %" PRIu64 "ms.", g->number, (int) g->pid,
                 (g->ready_usec - g->started_usec) / USEC_PER_MSEC);
        dispatch(s, EV_READY);
}

static void on_gen_start_timeout(Generation *g, void *userdata) {
        Supervisor *s = userdata;
        char d[32];
        if (g != s->successor)
                return;
        log_error("Generation %u (pid %d) did not become ready within %s.", g->number, (int) g->pid,
                  format_duration(d, sizeof d, s->opt->start_timeout));
        snprintf(s->last_result, sizeof s->last_result, "generation %u failed: not ready within %s", g->number, d);
        s->exit_code = 1;
        dispatch(s, EV_FAILED);
}

static void on_gen_exited(Generation *g, void *userdata) {
        Supervisor *s = userdata;
        char how[64];
        exit_info_describe(&g->exit_info, how, sizeof how);

        if (g == s->successor) {
                log_error("Generation %u (pid %d) failed to start: %s.", g->number, (int) g->pid, how);
                snprintf(s->last_result, sizeof s->last_result, "generation %u failed: %s", g->number, how);
                int code = exit_info_code(&g->exit_info);
                s->exit_code = code == 0 ? 1 : code;
                dispatch(s, EV_FAILED);
        } else if (g == s->serving && !s->stop_requested) {
                log_error("Serving generation %u (pid %d) %s.", g->number, (int) g->pid, how);
                s->exit_code = exit_info_code(&g->exit_info);
                s->serving = NULL;
                dispatch(s, EV_SERVING_EXITED);
        } else if (g == s->serving) {
                /* Our own stop: the signal we sent, or a clean exit, is success. */
                bool clean = (g->exit_info.si_code == CLD_EXITED && g->exit_info.si_status == 0) ||
                             (g->exit_info.si_code == CLD_KILLED && g->exit_info.si_status == g->stop_signal);
                s->exit_code = clean ? 0 : exit_info_code(&g->exit_info);
                log_info("Generation %u (pid %d) %s.", g->number, (int) g->pid, how);
        } else
                log_info("Retired generation %u (pid %d) %s.", g->number, (int) g->pid, how);

        list_remove(s, g);
        if (s->machine.state == STATE_STOPPING && !s->gens)
                dispatch(s, EV_ALL_GONE);
}

static void on_gen_message(Generation *g, const NotifyMessage *m, void *userdata) {
        Supervisor *s = userdata;
        /* The serving generation speaks for the service; so does the first one
         * while it starts (its EXTEND_TIMEOUT_USEC matters then). A successor
         * and retiring generations are not relayed. */
        bool relay = g == s->serving || (g == s->successor && !s->serving && s->machine.state == STATE_STARTING);
        if (m->mainpid || m->reloading || m->stopping)
                log_debug("Ignored MAINPID/RELOADING/STOPPING from generation %u: those are handoff's to say.",
                          g->number);
        if (!relay)
                return;
        char buf[NOTIFY_MAX_LEN];
        int n = notify_relay_text(m, buf, sizeof buf);
        if (n > 0)
                notify_systemd("%s", buf);
}

static const GenerationCallbacks callbacks = {
        .ready = on_gen_ready,
        .start_timeout = on_gen_start_timeout,
        .exited = on_gen_exited,
        .message = on_gen_message,
};

/* ---- actions ---------------------------------------------------------- */

static void start_successor(Supervisor *s) {
        Generation *g = NULL;
        int code;
        unsigned number = ++s->last_number;
        s->reload_started = now_monotonic();
        if (generation_start(s->event, &s->config, number, &callbacks, s, &g, &code) < 0) {
                snprintf(s->last_result, sizeof s->last_result, "generation %u failed: could not be started",
                         number);
                s->exit_code = code;
                dispatch(s, EV_FAILED);
                return;
        }
        g->next = s->gens;
        s->gens = g;
        s->successor = g;
}

static void rollback(Supervisor *s) {
        Generation *g = s->successor;
        s->successor = NULL;
        if (g) /* still running (hung): stop it like any retiring generation */
                generation_retire(g, s->opt->stop_signal, s->opt->drain_timeout);
        if (s->last_number > 1 || s->serving)
                s->reloads_failed++;
}

static void commit(Supervisor *s) {
        Generation *old = s->serving, *g = s->successor;
        char d[32];
        s->serving = g;
        s->successor = NULL;
        g->role = GEN_SERVING;
        if (g->number == 1)
                return;
        s->reloads_ok++;
        snprintf(s->last_result, sizeof s->last_result, "reload to generation %u ok in %s", g->number,
                 format_duration(d, sizeof d, g->ready_usec - s->reload_started));
        if (old) {
                log_info("Generation %u (pid %d) serves; retiring generation %u (pid %d).", g->number, (int) g->pid,
                         old->number, (int) old->pid);
                generation_retire(old, s->opt->stop_signal, s->opt->drain_timeout);
        } else
                log_info("Generation %u (pid %d) serves; the previous one had already exited.", g->number,
                         (int) g->pid);
}

static void run_actions(Supervisor *s, unsigned a) {
        char st[NOTIFY_MAX_LEN / 2];
        if (a & ACT_ROLLBACK)
                rollback(s);
        if (a & ACT_COMMIT)
                commit(s);
        if (a & ACT_NOTIFY_READY)
                notify_systemd("READY=1\nSTATUS=%s", status_text(s, st, sizeof st));
        if ((a & ACT_RETIRE_SERVING) && s->serving)
                generation_retire(s->serving, s->opt->stop_signal, s->opt->drain_timeout);
        if (a & ACT_NOTIFY_STOPPING)
                notify_systemd("STOPPING=1\nSTATUS=Stopping.");
        if (a & ACT_START_SUCCESSOR) {
                if (a & ACT_NOTIFY_RELOADING)
                        notify_systemd("RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Reloading: starting generation %u.",
                                       now_monotonic(), s->last_number + 1);
                start_successor(s);
        }
        if (a & ACT_EXIT)
                sd_event_exit(s->event, s->exit_code);
}

/* Events raised by actions (a spawn that fails at once) are queued, not
 * recursed into, so every transition completes before the next begins. */
static void dispatch(Supervisor *s, Event ev) {
        if (s->n_queued < ELEMENTSOF(s->queue))
                s->queue[s->n_queued++] = ev;
        else
                log_error("Internal error: event queue full, dropped event %s.", event_to_string(ev));
        if (s->dispatching)
                return;
        s->dispatching = true;
        for (unsigned i = 0; i < s->n_queued; i++) {
                State before = s->machine.state;
                unsigned a = machine_step(&s->machine, s->queue[i]);
                log_debug("%s + %s -> %s (actions 0x%02x)", state_to_string(before), event_to_string(s->queue[i]),
                          state_to_string(s->machine.state), a);
                run_actions(s, a);
                if (s->machine.state == STATE_STOPPING && !s->gens && s->n_queued < ELEMENTSOF(s->queue))
                        s->queue[s->n_queued++] = EV_ALL_GONE;
        }
        s->n_queued = 0;
        s->dispatching = false;
}

/* ---- signals ---------------------------------------------------------- */

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        Supervisor *s = userdata;
        int sig = (int) si->ssi_signo;
        (void) src;

        switch (sig) {
        case SIGHUP:
                log_info("Reload requested (SIGHUP from pid %u).", si->ssi_pid);
                dispatch(s, EV_RELOAD);
                break;
        case SIGTERM:
        case SIGINT:
                if (s->stop_requested) {
                        log_warning("Second stop request: killing every generation now.");
                        for (Generation *g = s->gens; g; g = g->next)
                                generation_kill(g);
                        break;
                }
                log_info("Stop requested (SIG%s).", sigabbrev_np(sig));
                s->stop_requested = true;
                dispatch(s, EV_STOP);
                break;
        default:
                if (s->serving) {
                        log_debug("Forwarding SIG%s to generation %u (pid %d).", sigabbrev_np(sig), s->serving->number,
                                  (int) s->serving->pid);
                        (void) generation_signal(s->serving, sig);
                }
        }
        return 0;
}

static const int handled_signals[] = {
        SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGWINCH, SIGQUIT, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU,
};

static int setup_signals(Supervisor *s) {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        for (size_t i = 0; i < ELEMENTSOF(handled_signals); i++)
                sigaddset(&mask, handled_signals[i]);
        /* sd-event's signal and child sources need the signals blocked. */
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        /* A client that hangs up on a relay must not kill handoff. */
        signal(SIGPIPE, SIG_IGN);
        for (size_t i = 0; i < ELEMENTSOF(handled_signals); i++) {
                int r = sd_event_add_signal(s->event, NULL, handled_signals[i], on_signal, s);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch SIG%s: %m", sigabbrev_np(handled_signals[i]));
        }
        return 0;
}

int supervisor_run(const Options *o, const Listeners *l) {
        Supervisor s = {
                .opt = o,
                .machine = MACHINE_INIT,
                .config = {
                        .argv = o->command,
                        .fds = l->fds,
                        .n_fds = l->n,
                        .fdnames = l->fdnames,
                        .ready_by_delay = o->ready_by_delay,
                        .ready_delay = o->ready_delay,
                        .start_timeout = o->start_timeout,
                },
                .exit_code = 1,
        };
        uint64_t wd = 0;
        if (sd_watchdog_enabled(0, &wd) > 0)
                s.config.watchdog_usec = wd;

        int r = sd_event_new(&s.event);
        if (r < 0)
                return log_error_errno(r, "Failed to create event loop: %m"), 1;
        if (setup_signals(&s) < 0) {
                sd_event_unref(s.event);
                return 1;
        }

        notify_systemd("STATUS=Starting generation 1.");
        start_successor(&s);
        r = s.machine.state == STATE_DONE ? s.exit_code : sd_event_loop(s.event);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                r = 1;
        }
        while (s.gens) /* only after an event loop failure */
                list_remove(&s, s.gens);
        sd_event_unref(s.event);
        return r;
}
