/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "handover.h"
#include "log.h"
#include "notify.h"
#include "sdnotify.h"
#include "time-util.h"

/* How long to wait for systemd to answer BARRIER=1, as
 * sd_notify_barrier()'s default. */
#define BARRIER_TIMEOUT (5 * USEC_PER_SEC)

struct Handover {
        sd_event_source *barrier;
        sd_event_source *timer;
        HandoverDoneFn done;
        void *userdata;
};

Handover *handover_free(Handover *h) {
        if (!h)
                return NULL;
        sd_event_source_disable_unref(h->barrier);
        sd_event_source_disable_unref(h->timer);
        free(h);
        return NULL;
}

static void finish(Handover *h) {
        h->barrier = sd_event_source_disable_unref(h->barrier);
        h->timer = sd_event_source_disable_unref(h->timer);
        h->done(h->userdata);
}

static int on_barrier(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        finish(userdata);
        return 0;
}

static int on_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        log_warning("The service manager did not answer BARRIER=1 in time; handing over anyway.");
        finish(userdata);
        return 0;
}

int handover_announce(sd_event *e, pid_t next_pid, const char *status, HandoverDoneFn done, void *userdata,
                      Handover **ret) {
        char msg[NOTIFY_MAX_LEN], esc[STATUS_ESCAPED_MAX];
        notify_escape(status, esc, sizeof esc);
        snprintf(msg, sizeof msg, "MAINPID=%d\nREADY=1\nSTATUS=%s", (int) next_pid, esc);
        /* Now or never: a MAINPID= still queued when this process exits
         * would be lost, and the service with it. */
        int r = sdnotify_send_now(msg, NULL, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to tell the service manager MAINPID=%d: %m", (int) next_pid);
        if (r == 0)
                return 0;

        /* After MAINPID= we must say nothing more as main: the barrier is
         * the last thing we send, and the pipe it carries is how we learn
         * that systemd has read everything before it. */
        Handover *h = calloc(1, sizeof *h);
        int pipefd[2] = { -EBADF, -EBADF };
        if (!h)
                r = -ENOMEM;
        else if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
                r = -errno;
        else {
                *h = (Handover) { .done = done, .userdata = userdata };
                r = sdnotify_send("BARRIER=1", &pipefd[1], 1);
                pipefd[1] = safe_close(pipefd[1]);
                if (r >= 0)
                        r = sd_event_add_io(e, &h->barrier, pipefd[0], EPOLLHUP, on_barrier, h);
                if (r >= 0) {
                        pipefd[0] = -EBADF;
                        (void) sd_event_source_set_io_fd_own(h->barrier, true);
                        r = sd_event_add_time_relative(e, &h->timer, CLOCK_MONOTONIC, BARRIER_TIMEOUT, 1000,
                                                       on_timeout, h);
                }
        }
        safe_close(pipefd[0]);
        if (r < 0) {
                handover_free(h);
                log_warning_errno(r, "Failed to wait for the service manager's barrier, handing over anyway: %m");
                return 0;
        }
        *ret = h;
        return 1;
}
