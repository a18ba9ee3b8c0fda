/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include "env.h"
#include "generation.h"
#include "log.h"
#include "spawn.h"

/* How many datagrams one wake-up reads at most, so that a flood from one
 * generation cannot starve signals, timers and the other generations. */
#define NOTIFY_BURST 64

extern char **environ;

int exit_info_code(const siginfo_t *si) {
        if (si->si_code == CLD_EXITED)
                return si->si_status;
        return 128 + si->si_status;
}

const char *exit_info_describe(const siginfo_t *si, char *buf, size_t size) {
        if (si->si_code == CLD_EXITED)
                snprintf(buf, size, "exited with status %d", si->si_status);
        else {
                const char *name = sigabbrev_np(si->si_status);
                snprintf(buf, size, "%s by signal %s%s", si->si_code == CLD_DUMPED ? "dumped core, killed" : "killed",
                         name ? "SIG" : "", name ? name : "?");
        }
        return buf;
}

static void on_main_exited(ProcTree *t, const siginfo_t *si, void *userdata) {
        Generation *g = userdata;
        g->exited = true;
        g->exit_info = *si;
        /* The drain deadline stays: it is the whole generation's. */
        if (!g->stop_signal)
                g->timer_source = sd_event_source_disable_unref(g->timer_source);
        g->notify_source = sd_event_source_disable_unref(g->notify_source);
        g->cb->exited(g, g->userdata);
}

static void on_tree_empty(ProcTree *t, void *userdata) {
        Generation *g = userdata;
        g->timer_source = sd_event_source_disable_unref(g->timer_source);
        g->cb->gone(g, g->userdata);
}

static const ProcTreeCallbacks tree_callbacks = {
        .main_exited = on_main_exited,
        .empty = on_tree_empty,
};

static void mark_ready(Generation *g) {
        if (g->ready || g->stop_signal)
                return;
        g->ready = true;
        g->ready_usec = now_monotonic();
        g->timer_source = sd_event_source_disable_unref(g->timer_source);
        g->cb->ready(g, g->userdata);
}

static void close_all(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                safe_close(fds[i]);
}

static void handle_datagram(Generation *g, char *buf, size_t len, pid_t sender, int *fds, size_t n_fds) {
        NotifyMessage m;
        if (notify_parse(buf, len, &m) < 0) {
                log_debug("Dropped malformed notify message from pid %d (generation %u).", (int) sender, g->number);
                close_all(fds, n_fds);
                return;
        }
        /* As with systemd's NotifyAccess=main: only the generation's main
         * process speaks for it. */
        if (sender != g->pid) {
                log_debug("Dropped notify message from pid %d: not the main process %d of generation %u.",
                          (int) sender, (int) g->pid, g->number);
                close_all(fds, n_fds);
                return;
        }
        if (m.ready && !g->ready_by_delay)
                mark_ready(g);
        g->cb->message(g, &m, fds, n_fds, g->userdata);
}

static int on_notify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Generation *g = userdata;
        char buf[NOTIFY_MAX_LEN + 2];
        int fds[NOTIFY_MAX_FDS];
        size_t n_fds = 0;

        for (int i = 0; i < NOTIFY_BURST && !g->exited; i++) {
                pid_t sender = 0;
                const char *reason = NULL;
                int n = notify_receive(fd, buf, sizeof buf, &sender, &reason, fds, &n_fds);
                if (n == -EAGAIN)
                        break;
                if (n == -EBADMSG) {
                        log_debug("Dropped notify message on generation %u's socket: %s.", g->number, reason);
                        continue;
                }
                if (n < 0) {
                        log_warning_errno(n, "Failed to receive notify message: %m");
                        break;
                }
                handle_datagram(g, buf, (size_t) n, sender, fds, n_fds);
        }
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Generation *g = userdata;
        g->timer_source = sd_event_source_disable_unref(g->timer_source);

        if (g->stop_signal) {
                /* Drain deadline: the whole group, workers included. */
                log_warning("Generation %u (pid %d) did not exit in time; sending SIGKILL.", g->number, (int) g->pid);
                generation_kill(g);
        } else if (g->ready_by_delay)
                mark_ready(g);
        else
                g->cb->start_timeout(g, g->userdata);
        return 0;
}

static int arm_timer(Generation *g, usec_t timeout) {
        g->timer_source = sd_event_source_disable_unref(g->timer_source);
        if (timeout == USEC_INFINITY)
                return 0;
        return sd_event_add_time_relative(g->event, &g->timer_source, CLOCK_MONOTONIC, timeout, 1000, on_timer, g);
}

static int spawn(Generation *g, const GenerationConfig *c, int cgroup_procs_fd, int *ret_exit_code) {
        _cleanup_free_ char *path = NULL;
        int r = find_executable(c->argv[0], &path);
        if (r < 0) {
                *ret_exit_code = exec_error_exit_code(-r);
                return log_error_errno(r, "Cannot start generation %u: %s: %m", g->number, c->argv[0]);
        }

        EnvParams ep = {
                .n_fds = c->n_fds,
                .fdnames = c->fdnames,
                .notify_socket = g->notify_address,
                .generation = g->number,
                .watchdog_usec = c->watchdog_usec,
        };
        _cleanup_strv_free_ char **envp = NULL;
        char *listen_pid, *watchdog_pid;
        r = env_build(environ, &ep, &envp, &listen_pid, &watchdog_pid);
        if (r < 0)
                return log_error_errno(r, "Failed to build environment: %m");

        SpawnParams sp = {
                .path = path,
                .argv = c->argv,
                .envp = envp,
                .listen_pid_entry = listen_pid,
                .watchdog_pid_entry = watchdog_pid,
                .fds = c->fds,
                .n_fds = c->n_fds,
                .into_cgroup = cgroup_procs_fd >= 0,
                .cgroup_procs_fd = cgroup_procs_fd,
        };
        r = spawn_generation(&sp, &g->pid);
        if (r < 0) {
                *ret_exit_code = exec_error_exit_code(-r);
                return log_error_errno(r, "Failed to execute %s for generation %u: %m", path, g->number);
        }
        return 0;
}

int generation_start(sd_event *e, const GenerationConfig *c, unsigned number, const GenerationCallbacks *cb,
                     void *userdata, Generation **ret, int *ret_exit_code) {
        Generation *g = calloc(1, sizeof *g);
        if (!g)
                return log_error_errno(ENOMEM, "Out of memory");
        *g = (Generation) {
                .number = number,
                .event = e,
                .ready_by_delay = c->ready_by_delay,
                .notify_fd = -EBADF,
                .cb = cb,
                .userdata = userdata,
        };
        *ret_exit_code = 1;

        int r = notify_socket_open(3 + (int) c->n_fds, g->notify_address, sizeof g->notify_address, &g->notify_fd);
        if (r < 0) {
                log_error_errno(r, "Failed to create notify socket: %m");
                goto fail;
        }
        g->started_usec = now_monotonic();
        Cgroup *cg = NULL;
        _cleanup_close_ int procs_fd = -EBADF;
        if (c->cgroup && (r = cgroup_new_generation(c->cgroup, number, &cg, &procs_fd)) < 0) {
                log_error_errno(r, "Failed to create a cgroup for generation %u: %m", number);
                goto fail;
        }
        r = spawn(g, c, procs_fd, ret_exit_code);
        if (r < 0) {
                cgroup_free(cg);
                goto fail;
        }

        /* From here on the process exists: every failure below must still let
         * the reaper reap it, so only the tracking can fail. */
        r = reaper_track(c->reaper, g->pid, number, cg, &tree_callbacks, g, &g->tree);
        if (r < 0) {
                cgroup_free(cg);
                (void) kill(-g->pid, SIGKILL);
                (void) waitpid(g->pid, NULL, 0);
                log_error_errno(r, "Failed to watch generation %u: %m", number);
                goto fail;
        }
        /* Even with --ready=delay the socket is read: the server's STATUS=
         * and WATCHDOG=1 are relayed all the same. */
        if ((r = sd_event_add_io(e, &g->notify_source, g->notify_fd, EPOLLIN, on_notify, g)) < 0)
                log_warning_errno(r, "Failed to watch notify socket: %m");
        r = arm_timer(g, c->ready_by_delay ? c->ready_delay : c->start_timeout);
        if (r < 0)
                log_warning_errno(r, "Failed to arm start timer: %m");

        log_info("Started generation %u: pid %d, %s.", number, (int) g->pid, c->argv[0]);
        *ret = g;
        return 0;
fail:
        generation_free(g);
        return r;
}

int generation_retire(Generation *g, int sig, usec_t drain_timeout) {
        if (g->stop_signal || proc_tree_empty(g->tree))
                return 0;
        g->stop_signal = sig;
        /* A main that exited on its own (a crash, a failed start) was never
         * asked to stop: what it left behind is, now. (A main that exits
         * after this leaves the rest of its generation to the deadline.) */
        int r = 0;
        if (g->exited)
                proc_tree_kill(g->tree, sig);
        else
                r = generation_signal(g, sig);
        if (r < 0)
                log_warning_errno(r, "Failed to send SIG%s to pid %d: %m", sigabbrev_np(sig) ?: "?", (int) g->pid);
        proc_tree_warn_strays(g->tree);
        r = arm_timer(g, drain_timeout);
        if (r < 0)
                return log_error_errno(r, "Failed to arm drain timer: %m");
        return 0;
}

int generation_signal(Generation *g, int sig) {
        if (g->exited)
                return -ESRCH;
        /* Our child, and only we reap it: its pid is not recycled yet. */
        return kill(g->pid, sig) < 0 ? -errno : 0;
}

void generation_kill(Generation *g) {
        if (proc_tree_empty(g->tree))
                return;
        g->killed = true;
        proc_tree_kill(g->tree, SIGKILL);
}

Generation *generation_free(Generation *g) {
        if (!g)
                return NULL;
        sd_event_source_disable_unref(g->timer_source);
        sd_event_source_disable_unref(g->notify_source);
        proc_tree_free(g->tree);
        safe_close(g->notify_fd);
        free(g);
        return NULL;
}
