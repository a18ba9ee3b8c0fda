/* SPDX-License-Identifier: MIT */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "log.h"
#include "retiree.h"
#include "util.h"

struct Retiree {
        pid_t pid;
        int pidfd;
        sd_event_source *exit_source;   /* the pidfd: readable once the process has exited */
        sd_event_source *timer_source;  /* the drain deadline */
        bool held;                      /* no stop signal of ours: its own handoff retires it */
        RetireeGone gone;
        void *userdata;
};

int pidfd_get_pid(int pidfd, pid_t *ret) {
        char path[64], line[128];
        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        int r = -EINVAL;
        long v;
        while (r == -EINVAL && fgets(line, sizeof line, f))
                if (sscanf(line, "Pid: %ld", &v) == 1)
                        /* -1: reaped; 0: not in our pid namespace. */
                        r = v <= 0 || v > 4194304 ? -ESRCH : 0;
        fclose(f);
        if (r == 0)
                *ret = (pid_t) v;
        return r;
}

pid_t retiree_pid(const Retiree *r) {
        return r->pid;
}

usec_t retiree_kill_at(const Retiree *r) {
        uint64_t t;
        if (!r->timer_source || sd_event_source_get_time(r->timer_source, &t) < 0)
                return USEC_INFINITY;
        return t;
}

/* Its process group too: the generation's own (spawn.c), whose id stays
 * its main's while the main lives, which the pidfd tells us. (Checked,
 * then killed: the main reaped and its pid reused as a group id in
 * between would take microseconds against a pid space's wrap-around.) */
void retiree_kill(Retiree *r) {
        if (!r || pidfd_signal(r->pidfd, 0) < 0)
                return;
        (void) kill(-r->pid, SIGKILL);
        (void) pidfd_signal(r->pidfd, SIGKILL);
}

static int on_retiree_exit(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Retiree *r = userdata;
        /* Held only (its own handoff retires it): every handover's, not news. */
        log_full_errno(r->held ? LOG_DEBUG : LOG_INFO, 0, "The previous handoff's generation (pid %d) has exited.",
                       (int) r->pid);
        r->exit_source = sd_event_source_disable_unref(r->exit_source);
        r->timer_source = sd_event_source_disable_unref(r->timer_source);
        r->gone(r->userdata);
        return 0;
}

static int on_deadline(sd_event_source *src, uint64_t usec, void *userdata) {
        Retiree *r = userdata;
        r->timer_source = sd_event_source_disable_unref(r->timer_source);
        log_warning("The previous handoff's generation (pid %d) did not exit in time; sending SIGKILL.", (int) r->pid);
        retiree_kill(r);
        return 0;
}

int retiree_start(sd_event *e, int pidfd, int sig, usec_t drain_timeout, RetireeGone gone, void *userdata,
                  Retiree **ret) {
        _cleanup_close_ int fd = pidfd;
        pid_t pid;
        int r = pidfd_get_pid(fd, &pid);
        if (r == -ESRCH) {
                *ret = NULL;
                return 0;
        }
        if (r < 0)
                return log_warning_errno(r, "Failed to %s the previous handoff's generation: no pidfd of it: %m",
                                         sig != 0 ? "retire" : "hold");
        r = pidfd_signal(fd, sig);
        if (r == -ESRCH) {
                *ret = NULL;
                return 0;
        }
        if (r < 0)
                return log_warning_errno(r, "Failed to %s the previous handoff's generation (pid %d): %m",
                                         sig != 0 ? "signal" : "hold", (int) pid);
        if (sig != 0)
                log_info("Retiring the previous handoff's generation (pid %d): sent SIG%s.", (int) pid,
                         sigabbrev_np(sig) ?: "?");
        else
                log_debug("Holding the previous handoff's generation (pid %d) to its drain deadline.", (int) pid);

        Retiree *t = calloc(1, sizeof *t);
        if (!t)
                return log_warning_errno(ENOMEM, "Out of memory; the previous handoff's generation (pid %d) has no "
                                         "drain deadline.", (int) pid);
        *t = (Retiree) { .pid = pid, .pidfd = TAKE_FD(fd), .held = sig == 0, .gone = gone, .userdata = userdata };
        r = sd_event_add_io(e, &t->exit_source, t->pidfd, EPOLLIN, on_retiree_exit, t);
        if (r >= 0 && drain_timeout != USEC_INFINITY)
                r = sd_event_add_time_relative(e, &t->timer_source, CLOCK_MONOTONIC, drain_timeout, 1000,
                                               on_deadline, t);
        if (r < 0) {
                retiree_free(t);
                return log_warning_errno(r, "Failed to watch the previous handoff's generation (pid %d); it has no "
                                         "drain deadline: %m", (int) pid);
        }
        *ret = t;
        return 0;
}

Retiree *retiree_free(Retiree *r) {
        if (!r)
                return NULL;
        sd_event_source_disable_unref(r->exit_source);
        sd_event_source_disable_unref(r->timer_source);
        safe_close(r->pidfd);
        free(r);
        return NULL;
}
