/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "supervisor-internal.h"


void notify_systemd(Supervisor *s, const char *fmt, ...) {
        char buf[NOTIFY_MAX_LEN];
        va_list ap;
        /* After MAINPID= names the successor, we are not main: systemd would
         * drop what we say, and nothing we say could be true any more. */
        if (s->mainpid_sent)
                return;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        /* A no-op without NOTIFY_SOCKET (and for a successor until it takes
         * over), so handoff speaks the same way everywhere. */
        int r = sd_notify(0, buf);
        if (r < 0)
                log_warning_errno(r, "Failed to notify service manager: %m");
}

/* handoff's STATUS= always says what serves and how reloads went; the
 * server's own STATUS= is shown after it rather than in its place. */
const char *status_text(Supervisor *s, unsigned number, pid_t pid, char *buf, size_t size) {
        if (number == 0)
                snprintf(buf, size, "No generation serving.");
        else
                snprintf(buf, size, "Serving generation %u (pid %d); %u reloads, %u failed%s%s%s%.256s", number,
                         (int) pid, s->reloads_ok, s->reloads_failed, s->last_result[0] ? "; last: " : "",
                         s->last_result, s->app_status_gen == number ? "; app: " : "",
                         s->app_status_gen == number ? s->app_status : "");
        return buf;
}

bool all_gone(Supervisor *s) {
        /* A new main that stops right after a reload waits for the old one,
         * still draining, so that systemd does not kill what it serves. */
        return !s->gens && (!s->next_main || s->next_main->released) && !s->predecessor_alive;
}

bool awaiting_takeover(Supervisor *s) {
        return s->takeover_channel >= 0 && !s->took_over;
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

void record_failure(Supervisor *s, unsigned number, const char *why, int code) {
        snprintf(s->last_result, sizeof s->last_result, "generation %u failed: %s", number, why);
        s->last_result_ok = false;
        s->current_failed = true;
        s->exit_code = code == 0 ? 1 : code;
        /* A successor handoff tells its predecessor why, before it goes. */
        if (awaiting_takeover(s))
                (void) takeover_send(s->takeover_channel, "FAILED %s", s->last_result);
}

/* ---- callbacks from app generations ------------------------------------ */

static void on_gen_ready(Generation *g, void *userdata) {
        Supervisor *s = userdata;
        if (g != s->successor)
                return;
        log_info("Generation %u (pid %d) is ready after %" PRIu64 "ms.", g->number, (int) g->pid,
                 (g->ready_usec - g->started_usec) / USEC_PER_MSEC);
        if (awaiting_takeover(s)) {
                /* A successor handoff: our predecessor commits, then tells us.
                 * The pid file names us before the commit message is sent. */
                if (s->opt->pid_file) {
                        int r = write_pid_file(s->opt->pid_file, getpid());
                        if (r < 0)
                                log_warning_errno(r, "Failed to write pid file %s: %m", s->opt->pid_file);
                }
                (void) takeover_send(s->takeover_channel, "READY");
                return;
        }
        dispatch(s, EV_READY);
}

static void on_gen_start_timeout(Generation *g, void *userdata) {
        Supervisor *s = userdata;
        char d[32], why[64];
        if (g != s->successor)
                return;
        log_error("Generation %u (pid %d) did not become ready within %s.", g->number, (int) g->pid,
                  format_duration(d, sizeof d, s->opt->start_timeout));
        snprintf(why, sizeof why, "not ready within %s", d);
        record_failure(s, g->number, why, 1);
        dispatch(s, EV_FAILED);
}

static void on_gen_exited(Generation *g, void *userdata) {
        Supervisor *s = userdata;
        char how[64];
        exit_info_describe(&g->exit_info, how, sizeof how);

        if (g == s->successor) {
                log_error("Generation %u (pid %d) failed to start: %s.", g->number, (int) g->pid, how);
                record_failure(s, g->number, how, exit_info_code(&g->exit_info));
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
        if (s->machine.state == STATE_STOPPING && all_gone(s))
                dispatch(s, EV_ALL_GONE);
}

static void on_gen_message(Generation *g, const NotifyMessage *m, int *fds, size_t n_fds, void *userdata) {
        Supervisor *s = userdata;
        /* The serving generation speaks for the service; so does the first one
         * while it starts (its EXTEND_TIMEOUT_USEC matters then). A successor
         * and retiring generations are not relayed, and may not store. */
        bool relay = g == s->serving || (g == s->successor && !s->serving && s->machine.state == STATE_STARTING);
        store_from_generation(s, g, m, fds, n_fds);
        if (m->mainpid || m->reloading || m->stopping)
                log_debug("Ignored MAINPID/RELOADING/STOPPING from generation %u: those are handoff's to say.",
                          g->number);
        if (!relay || s->handed_over)
                return;
        NotifyMessage out = *m;
        char st[NOTIFY_MAX_LEN / 2], buf[NOTIFY_MAX_LEN];
        if (m->status) {
                snprintf(s->app_status, sizeof s->app_status, "%s", m->status);
                s->app_status_gen = g->number;
                out.status = status_text(s, g->number, g->pid, st, sizeof st);
        }
        if (notify_relay_text(&out, buf, sizeof buf) > 0)
                notify_systemd(s, "%s", buf);
}

static const GenerationCallbacks gen_callbacks = {
        .ready = on_gen_ready,
        .start_timeout = on_gen_start_timeout,
        .exited = on_gen_exited,
        .message = on_gen_message,
};

/* ---- actions ------------------------------------------------------------ */

static void start_successor(Supervisor *s) {
        unsigned number = ++s->last_number;
        int code = 1, r;
        s->reload_started = now_monotonic();
        s->current_failed = false;

        store_drop_staged(s);
        if (build_inheritance(s) < 0) {
                log_error_errno(ENOMEM, "Out of memory");
                record_failure(s, number, "could not be started", 1);
                dispatch(s, EV_FAILED);
                return;
        }

        if (s->machine.handover && s->machine.state == STATE_RELOADING)
                r = start_successor_handoff(s, number);
        else {
                Generation *g = NULL;
                r = generation_start(s->event, &s->config, number, &gen_callbacks, s, &g, &code);
                if (r >= 0) {
                        g->next = s->gens;
                        s->gens = g;
                        s->successor = g;
                        if (awaiting_takeover(s))
                                (void) takeover_send(s->takeover_channel, "APP %d", (int) g->pid);
                }
        }
        if (r < 0) {
                record_failure(s, number, "could not be started", code);
                dispatch(s, EV_FAILED);
        }
}

static void rollback(Supervisor *s) {
        store_drop_staged(s);
        if (s->successor) /* still running (hung): stop it like a retiring one */
                generation_retire(s->successor, s->opt->stop_signal, s->opt->drain_timeout);
        s->successor = NULL;
        if (s->next_main) {
                /* Once MAINPID= names it, the successor is main to systemd:
                 * it must outlive us. We only tell it to stop and let go of
                 * it; it waits for our end of file, which comes when we
                 * exit, and stops its own app. */
                bool its_systemds = s->mainpid_sent;
                if (its_systemds)
                        s->handed_channel = TAKE_FD(s->next_main->channel);
                successor_abort(s->next_main, s->opt->stop_signal, s->opt->drain_timeout);
                s->next_main->released = its_systemds;
                /* It may have written the pid file before it failed. */
                if (s->opt->pid_file)
                        (void) write_pid_file(s->opt->pid_file, getpid());
        }
        /* A reload that failed; not a first start, nor an abort by a stop. */
        if (s->machine.state != STATE_STOPPING)
                s->reloads_failed++;
}

static void commit(Supervisor *s) {
        Generation *old = s->serving, *g = s->successor;
        char d[32];
        s->serving = g;
        s->successor = NULL;
        g->role = GEN_SERVING;
        store_commit_staged(s);
        if (!old && !s->is_successor)
                return; /* the very first generation of the service */
        if (s->inherited_reload_started) {
                /* A successor: the reload began in the old main. */
                s->reload_started = s->inherited_reload_started;
                s->inherited_reload_started = 0;
        }
        s->reloads_ok++;
        format_duration(d, sizeof d, g->ready_usec - s->reload_started);
        snprintf(s->last_result, sizeof s->last_result, "reload to generation %u ok in %s", g->number, d);
        snprintf(s->last_reply, sizeof s->last_reply, "reloaded: generation %u, pid %d, %s", g->number, (int) g->pid, d);
        s->last_result_ok = true;
        if (old) {
                log_info("Generation %u (pid %d) serves; retiring generation %u (pid %d).", g->number, (int) g->pid,
                         old->number, (int) old->pid);
                generation_retire(old, s->opt->stop_signal, s->opt->drain_timeout);
        }
}

static void run_actions(Supervisor *s, unsigned a) {
        char st[NOTIFY_MAX_LEN / 2];
        if (a & ACT_ROLLBACK) {
                rollback(s);
                control_on_reload_end(s);
        }
        if (a & ACT_COMMIT) {
                commit(s);
                control_on_reload_end(s);
        }
        if (a & ACT_NOTIFY_READY) {
                status_text(s, s->serving ? s->serving->number : 0, s->serving ? s->serving->pid : 0, st, sizeof st);
                notify_systemd(s, "%sSTATUS=%s", s->quiet_ready ? "" : "READY=1\n", st);
                s->quiet_ready = false;
        }
        if (a & ACT_HANDOVER)
                hand_over(s);
        if (a & ACT_TAKEOVER) {
                take_over_done(s, a & ACT_PASS_RELOAD);
                control_on_handed_over(s);
        }
        if ((a & ACT_RETIRE_SERVING) && s->serving)
                generation_retire(s->serving, s->opt->stop_signal, s->opt->drain_timeout);
        if ((a & ACT_NOTIFY_STOPPING) && !s->handed_over)
                notify_systemd(s, "STOPPING=1\nSTATUS=Stopping.");
        if (a & ACT_START_SUCCESSOR) {
                if (a & ACT_NOTIFY_RELOADING)
                        notify_systemd(s, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Reloading: starting generation %u.",
                                       now_monotonic(), s->last_number + 1);
                control_on_reload_start(s);
                start_successor(s);
        }
        if (a & ACT_EXIT)
                sd_event_exit(s->event, s->exit_code);
}

/* Events raised by actions (a spawn that fails at once) are queued, not
 * recursed into, so every transition completes before the next begins. */
void dispatch(Supervisor *s, Event ev) {
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
                log_debug("%s + %s -> %s (actions 0x%03x)", state_to_string(before), event_to_string(s->queue[i]),
                          state_to_string(s->machine.state), a);
                run_actions(s, a);
                if (s->machine.state == STATE_STOPPING && all_gone(s) && s->n_queued < ELEMENTSOF(s->queue))
                        s->queue[s->n_queued++] = EV_ALL_GONE;
        }
        s->n_queued = 0;
        s->dispatching = false;
}

/* ---- signals ------------------------------------------------------------ */

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        Supervisor *s = userdata;
        int sig = (int) si->ssi_signo;
        (void) src;

        switch (sig) {
        case SIGHUP:
                if (s->handed_over) {
                        /* A stale $MAINPID: the service lives on there. */
                        log_info("Passing SIGHUP on to the main handoff, pid %d.", (int) s->handed_to);
                        if (kill(s->handed_to, SIGHUP) < 0)
                                log_warning_errno(errno, "Failed to pass SIGHUP on to pid %d: %m", (int) s->handed_to);
                        break;
                }
                log_info("Reload requested (SIGHUP from pid %u).", si->ssi_pid);
                dispatch(s, EV_RELOAD);
                break;
        case SIGTERM:
        case SIGINT:
                if (s->handed_over || s->mainpid_sent) {
                        /* Not main any more (systemd was told MAINPID=), and
                         * already retiring within the drain deadline;
                         * KillMode=control-group signals us too. */
                        log_info("Ignoring SIG%s: already retiring after the handover.", sigabbrev_np(sig));
                        break;
                }
                if (s->stop_requested) {
                        log_warning("Second stop request: killing every generation now.");
                        for (Generation *g = s->gens; g; g = g->next)
                                generation_kill(g);
                        if (s->next_main)
                                successor_abort(s->next_main, SIGKILL, 0);
                        break;
                }
                log_info("Stop requested (SIG%s).%s", sigabbrev_np(sig),
                         s->predecessor_alive ? " Waiting for the previous handoff to finish draining too." : "");
                /* A successor not yet main: its predecessor need not wait
                 * for a READY that will not come. */
                if (awaiting_takeover(s))
                        (void) takeover_send(s->takeover_channel, "FAILED stopped by SIG%s", sigabbrev_np(sig));
                s->stop_requested = true;
                /* A stop of nothing serving is clean, unless a failure is
                 * already taking us down: its status stands. */
                if (!s->serving && s->machine.state != STATE_STOPPING)
                        s->exit_code = 0;
                dispatch(s, EV_STOP);
                break;
        default:
                if (s->serving && !s->handed_over) {
                        log_debug("Forwarding SIG%s to generation %u (pid %d).", sigabbrev_np(sig), s->serving->number,
                                  (int) s->serving->pid);
                        (void) generation_signal(s->serving, sig);
                }
        }
        return 0;
}

static const int handled_signals[] = {
        SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGWINCH, SIGQUIT, SIGCONT,
        /* systemd's WatchdogSignal=: the hung server should dump core, not us. */
        SIGABRT,
        /* Not TSTP/TTIN/TTOU: job control stops handoff itself, as a shell
         * user expects, rather than only the server behind it. */
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
        /* A peer that hangs up on a relay must not kill handoff. */
        signal(SIGPIPE, SIG_IGN);
        for (size_t i = 0; i < ELEMENTSOF(handled_signals); i++) {
                int r = sd_event_add_signal(s->event, NULL, handled_signals[i], on_signal, s);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch SIG%s: %m", sigabbrev_np(handled_signals[i]));
        }
        return 0;
}

int supervisor_run(const SupervisorParams *p, bool *ret_final) {
        const Options *o = p->opt;
        Supervisor s = {
                .p = p,
                .opt = o,
                .machine = MACHINE_INIT(p->handover),
                .config = {
                        .argv = o->command,
                        .fds = p->listeners->fds,
                        .n_fds = p->listeners->n,
                        .fdnames = p->listeners->fdnames,
                        .ready_by_delay = o->ready_by_delay,
                        .ready_delay = o->ready_delay,
                        .start_timeout = o->start_timeout,
                        /* --notify-socket, --notify-access (issue 14, compat branch) */
                        .notify_socket = o->notify_socket,
                        .notify_access = o->notify_access,
                },
                .exit_code = 1,
                .takeover_channel = p->takeover_channel,
                .is_successor = p->takeover_channel >= 0,
                .handed_channel = -EBADF,
        };
        *ret_final = false;
        uint64_t wd = 0;
        if (sd_watchdog_enabled(0, &wd) > 0)
                s.config.watchdog_usec = wd;
        inherit_state(&s);

        int r = sd_event_new(&s.event);
        if (r < 0)
                return log_error_errno(r, "Failed to create event loop: %m"), 1;
        if ((r = setup_signals(&s)) < 0)
                goto finish;
        if ((r = watch_takeover(&s)) < 0 || (r = control_setup(&s)) < 0)
                goto finish;

        notify_systemd(&s, "STATUS=Starting generation %u.", s.last_number + 1);
        start_successor(&s);
        r = s.machine.state == STATE_DONE ? s.exit_code : sd_event_loop(s.event);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                r = 1;
        }
finish:
        while (s.gens) /* only after a failure of the loop itself */
                list_remove(&s, s.gens);
        successor_free(s.next_main);
        sd_event_source_disable_unref(s.barrier_source);
        sd_event_source_disable_unref(s.barrier_timer);
        sd_event_source_disable_unref(s.takeover_source);
        safe_close(s.takeover_channel);
        safe_close(s.handed_channel);
        control_free(s.control);
        store_drop_staged(&s);
        strv_free(s.inherited_names);
        free(s.gen_fds);
        free(s.gen_fdnames);
        sd_event_unref(s.event);
        *ret_final = !s.handed_over && (!s.is_successor || s.took_over);
        return r < 0 ? 1 : r;
}
