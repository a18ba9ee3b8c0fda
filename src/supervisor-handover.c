/* SPDX-License-Identifier: MIT */
/* Handover mode, both sides: the old main starting a successor handoff and
 * handing systemd over to it, and the successor taking over. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "supervisor-internal.h"

/* How long the old main waits for systemd to answer BARRIER=1 after
 * MAINPID=, as sd_notify_barrier()'s default. */
#define BARRIER_TIMEOUT (5 * USEC_PER_SEC)

/* ---- the old main: callbacks from its successor handoff ------------------- */

static void on_next_ready(Successor *n, void *userdata) {
        Supervisor *s = userdata;
        log_info("Successor handoff (pid %d) is ready with generation %u (pid %d).", (int) n->pid, n->number,
                 (int) n->app_pid);
        dispatch(s, EV_READY);
}

static void on_next_failed(Successor *n, void *userdata) {
        Supervisor *s = userdata;
        if (s->machine.state != STATE_RELOADING && s->machine.state != STATE_HANDING_OVER)
                return; /* an abort we asked for */
        log_error("Reload failed: %s.", n->why);
        s->exit_code = 1; /* if the serving generation is gone too, we exit with this */
        /* The successor's own words carry "generation N failed: ..." */
        if (strncmp(n->why, "generation ", 11) == 0)
                snprintf(s->last_result, sizeof s->last_result, "%s", n->why);
        else
                snprintf(s->last_result, sizeof s->last_result, "generation %u failed: %.140s", n->number, n->why);
        s->last_result_ok = false;
        s->current_failed = true;
        dispatch(s, EV_FAILED); /* the rollback stops it */
}

static void on_next_exited(Successor *n, void *userdata) {
        Supervisor *s = userdata;
        if (s->next_main != n)
                return;
        s->next_main = successor_free(n);
        if (s->machine.state == STATE_STOPPING && all_gone(s))
                dispatch(s, EV_ALL_GONE);
}

static const SuccessorCallbacks next_callbacks = {
        .ready = on_next_ready,
        .failed = on_next_failed,
        .exited = on_next_exited,
};

int start_successor_handoff(Supervisor *s, unsigned number) {
        char stats[64];
        snprintf(stats, sizeof stats, "%u %u %" PRIu64, s->reloads_ok, s->reloads_failed, s->reload_started);
        SuccessorConfig c = {
                .exe = s->p->exe,
                .argv = s->p->argv,
                .fds = s->config.fds,
                .n_fds = s->config.n_fds,
                .n_stored = s->p->store->n,
                .fdnames = s->config.fdnames,
                .notify_socket = s->notify_socket,
                .watchdog_usec = s->config.watchdog_usec,
                .stats = stats,
                /* It enforces the start timeout on its app; this bounds the
                 * handoff process itself on top of that. */
                .timeout = s->opt->start_timeout == USEC_INFINITY ? USEC_INFINITY
                                                                  : s->opt->start_timeout + 5 * USEC_PER_SEC,
        };
        return successor_start(s->event, &c, number, &next_callbacks, s, &s->next_main);
}

static int on_barrier(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Supervisor *s = userdata;
        (void) src;
        (void) fd;
        (void) revents;
        s->barrier_source = sd_event_source_disable_unref(s->barrier_source);
        s->barrier_timer = sd_event_source_disable_unref(s->barrier_timer);
        dispatch(s, EV_HANDED_OVER);
        return 0;
}

static int on_barrier_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        Supervisor *s = userdata;
        (void) usec;
        (void) src;
        log_warning("The service manager did not answer BARRIER=1 in time; handing over anyway.");
        return on_barrier(NULL, -1, 0, s);
}

/* The commit of handover mode: while still the main PID, tell systemd who is
 * main now and that the reload is done, in one datagram (MAINPID= is applied
 * before READY=1), then wait until systemd has read it before letting go. */
void hand_over(Supervisor *s) {
        Successor *n = s->next_main;
        char st[NOTIFY_MAX_LEN / 2], d[32];
        s->reloads_ok++;
        format_duration(d, sizeof d, now_monotonic() - s->reload_started);
        snprintf(s->last_result, sizeof s->last_result, "reload to generation %u ok in %s", n->number, d);
        snprintf(s->last_reply, sizeof s->last_reply, "reloaded: generation %u, pid %d, %s (handoff pid %d)", n->number,
                 (int) n->app_pid, d, (int) n->pid);
        s->last_result_ok = true;
        if (!getenv("NOTIFY_SOCKET")) {
                dispatch(s, EV_HANDED_OVER);
                return;
        }
        notify_systemd(s, "MAINPID=%d\nREADY=1\nSTATUS=%s", (int) n->pid,
                       status_text(s, n->number, n->app_pid, st, sizeof st));
        s->mainpid_sent = true;

        int pipefd[2];
        int r = pipe2(pipefd, O_CLOEXEC | O_NONBLOCK);
        if (r >= 0) {
                r = sd_pid_notify_with_fds(0, 0, "BARRIER=1", &pipefd[1], 1);
                safe_close(pipefd[1]);
                if (r >= 0)
                        r = sd_event_add_io(s->event, &s->barrier_source, pipefd[0], EPOLLHUP, on_barrier, s);
                if (r >= 0) {
                        (void) sd_event_source_set_io_fd_own(s->barrier_source, true);
                        r = sd_event_add_time_relative(s->event, &s->barrier_timer, CLOCK_MONOTONIC, BARRIER_TIMEOUT,
                                                       1000, on_barrier_timeout, s);
                } else
                        safe_close(pipefd[0]);
        } else
                r = -errno;
        if (r < 0) {
                log_warning_errno(r, "Failed to wait for the service manager's barrier, handing over anyway: %m");
                dispatch(s, EV_HANDED_OVER);
        }
}

void take_over_done(Supervisor *s, bool pass_reload) {
        Successor *n = s->next_main;
        s->next_main = NULL;
        s->handed_over = true;
        s->handed_to = n->pid;
        s->exit_code = 0;
        log_info("Handed over to handoff pid %d; retiring generation %u.", (int) n->pid,
                 s->serving ? s->serving->number : 0);
        (void) successor_takeover(n, s->p->listeners->created_paths, s->p->listeners->n_created, pass_reload);
        /* Held until we exit: the successor waits for that end of file before
         * it exits at a stop, so nothing we still drain is killed early. */
        s->handed_channel = TAKE_FD(n->channel);
        successor_free(n);
        if (s->serving) {
                generation_retire(s->serving, s->opt->stop_signal, s->opt->drain_timeout);
                s->serving = NULL; /* its exit is a retired generation's now */
        }
}

/* ---- a successor handoff's side of the handover ------------------------- */

static int on_takeover(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Supervisor *s = userdata;
        bool pending = false;
        char path[4096];
        (void) src;
        (void) revents;
        int r = takeover_receive(fd, &pending, path, sizeof path);
        if (r == -EAGAIN)
                return 0;
        if (r == 2 && !s->took_over) {
                /* Ours to remove at the final stop, if we become main. */
                if (listeners_add_created_path(s->p->listeners, path) < 0)
                        log_warning("Out of memory; %s will not be removed at stop.", path);
                return 0;
        }
        if (r == 0) {
                /* End of file: our predecessor exited (its drain done), or
                 * aborted the reload before we took over. */
                s->takeover_source = sd_event_source_disable_unref(s->takeover_source);
                s->takeover_channel = safe_close(s->takeover_channel);
                s->predecessor_alive = false;
                log_debug("The previous handoff has exited.");
                if (!s->took_over && !s->stop_requested) {
                        log_info("Predecessor aborted the handover; stopping.");
                        s->stop_requested = true;
                        dispatch(s, EV_STOP);
                } else if (s->machine.state == STATE_STOPPING && all_gone(s))
                        dispatch(s, EV_ALL_GONE);
                return 0;
        }
        if (r != 1 || s->took_over)
                return 0;

        /* We are the main process now: speak to systemd from here on. */
        s->took_over = true;
        s->quiet_ready = true;
        if (s->notify_socket[0])
                setenv("NOTIFY_SOCKET", s->notify_socket, 1);
        store_resync(s, s->inherited_names, strv_length(s->inherited_names));
        if (s->stop_requested || !s->successor || !s->successor->ready) {
                /* Told to stop between MAINPID= and this: systemd already names
                 * us main, so ours is the service's stop. It ends after our
                 * predecessor's, whose requests are still draining. */
                log_info("Took over as the main process while stopping; waiting for the previous handoff.");
                notify_systemd(s, "STOPPING=1\nSTATUS=Stopping.");
                if (!s->stop_requested) {
                        s->stop_requested = true;
                        dispatch(s, EV_STOP);
                }
                return 0;
        }
        log_info("Took over as the main process%s.", pending ? "; a reload is pending" : "");
        if (pending)
                dispatch(s, EV_RELOAD);
        dispatch(s, EV_READY);
        return 0;
}

int watch_takeover(Supervisor *s) {
        if (s->takeover_channel < 0)
                return 0;
        int r = sd_event_add_io(s->event, &s->takeover_source, s->takeover_channel, EPOLLIN, on_takeover, s);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the handover channel: %m");
        return 0;
}

/* A successor continues its predecessor's numbering and counters. */
void inherit_state(Supervisor *s) {
        const char *e = getenv("NOTIFY_SOCKET");
        if (e)
                snprintf(s->notify_socket, sizeof s->notify_socket, "%s", e);
        if (s->takeover_channel < 0)
                return;
        /* Silent towards systemd until we are main. */
        unsetenv("NOTIFY_SOCKET");
        if ((e = getenv("HANDOFF_GENERATION")))
                s->last_number = (unsigned) strtoul(e, NULL, 10) - 1;
        if ((e = getenv("HANDOFF_STATS")))
                (void) sscanf(e, "%u %u %" SCNu64, &s->reloads_ok, &s->reloads_failed, &s->inherited_reload_started);
        unsetenv("HANDOFF_GENERATION");
        unsetenv("HANDOFF_STATS");
        /* Until its end of file, our predecessor may still drain: a stop of
         * ours waits for it (under systemd, what outlives the main is killed). */
        s->predecessor_alive = true;
        size_t n = 0;
        for (size_t i = 0; i < s->p->store->n; i++)
                if (strv_push(&s->inherited_names, &n, strdup(s->p->store->names[i])) < 0)
                        log_warning("Out of memory; systemd's fd store may keep a stale entry.");
}

