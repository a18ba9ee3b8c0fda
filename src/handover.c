/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "event-util.h"
#include "handover.h"
#include "log.h"
#include "notify.h"
#include "sdnotify.h"
#include "time-util.h"
#include "util.h"

/* How long to wait for systemd to answer BARRIER=1, as
 * sd_notify_barrier()'s default; and as long for room on its socket. */
#define BARRIER_TIMEOUT (5 * USEC_PER_SEC)
#define HANDOVER_SEND_TIMEOUT (5 * USEC_PER_SEC)

struct Handover {
        sd_event *event;
        sd_event_source *room;    /* EPOLLOUT on the manager's socket, while MAINPID= waits */
        sd_event_source *barrier;
        sd_event_source *timer;   /* of the phase we are in */
        const HandoverCallbacks *cb;
        void *userdata;
        bool sent;
        pid_t next_pid;
        char msg[NOTIFY_MAX_LEN];
};

Handover *handover_free(Handover *h) {
        if (!h)
                return NULL;
        sd_event_source_disable_unref(h->room);
        sd_event_source_disable_unref(h->barrier);
        sd_event_source_disable_unref(h->timer);
        sd_event_unref(h->event);
        free(h);
        return NULL;
}

bool handover_sent(const Handover *h) {
        return h && h->sent;
}

static void stop_sources(Handover *h) {
        h->room = sd_event_source_disable_unref(h->room);
        h->barrier = sd_event_source_disable_unref(h->barrier);
        h->timer = sd_event_source_disable_unref(h->timer);
}

static int on_barrier(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Handover *h = userdata;
        stop_sources(h);
        h->cb->done(true, h->userdata);
        return 0;
}

static int on_barrier_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        Handover *h = userdata;
        log_warning("The service manager did not answer BARRIER=1 in time; handing over anyway.");
        stop_sources(h);
        h->cb->done(false, h->userdata);
        return 0;
}

/* After MAINPID= we must say nothing more as main: the barrier is the last
 * thing we send, and the pipe it carries is how we learn that systemd has
 * read everything before it. Returns 1 when armed, 0 when there is nothing
 * to wait for. */
static int arm_barrier(Handover *h) {
        int pipefd[2] = { -EBADF, -EBADF };
        int r = pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0 ? -errno : 0;
        if (r >= 0) {
                r = sdnotify_send("BARRIER=1", &pipefd[1], 1);
                pipefd[1] = safe_close(pipefd[1]);
        }
        if (r >= 0)
                r = sd_event_add_io(h->event, &h->barrier, pipefd[0], EPOLLHUP, on_barrier, h);
        if (r >= 0) {
                pipefd[0] = -EBADF;
                (void) sd_event_source_set_io_fd_own(h->barrier, true);
                r = event_add_time_relative(h->event, &h->timer, BARRIER_TIMEOUT, 1000, on_barrier_timeout, h);
        }
        safe_close(pipefd[0]);
        if (r < 0) {
                stop_sources(h);
                log_warning_errno(r, "Failed to wait for the service manager's barrier, handing over anyway: %m");
                return 0;
        }
        return 1;
}

/* One try. Returns 2 when sent, 1 when there is no manager to send to
 * (nor a barrier to wait for), 0 when it must wait for room, -errno when
 * it cannot be sent. */
static int try_send(Handover *h) {
        int r = sdnotify_send_now(h->msg, NULL, 0);
        if (r == -EAGAIN)
                return 0;
        if (r < 0)
                return r;
        h->sent = true;
        return r == 0 ? 1 : 2;
}

static int watch_room(Handover *h);

static int on_room(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Handover *h = userdata;
        /* While it waited, the process it names may have exited, its exit
         * not reported yet (next-handoff.c waits up to 1 s for its status
         * then): a dead process is never named. */
        if (h->cb->gone(h->userdata)) {
                stop_sources(h);
                h->cb->failed(-ESRCH, h->userdata);
                return 0;
        }
        int r = try_send(h);
        if (r == 0) {
                /* Filled again meanwhile: the next wakeup. Watched anew, on
                 * the socket sdnotify has now: the send may have connected
                 * another (a manager started anew), and the old one, its
                 * peer gone, would be writable for ever. */
                h->room = sd_event_source_disable_unref(h->room);
                r = watch_room(h);
                if (r >= 0)
                        return 0;
        }
        stop_sources(h);
        if (r < 0) {
                log_error_errno(r, "Failed to tell the service manager MAINPID=%d: %m", (int) h->next_pid);
                h->cb->failed(r, h->userdata);
                return 0;
        }
        if (r == 2)
                log_info("The service manager's socket had room again; MAINPID= is sent.");
        h->cb->sent(h->userdata);
        if (r == 1 || arm_barrier(h) == 0)
                h->cb->done(false, h->userdata);
        return 0;
}

static int on_room_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        Handover *h = userdata;
        char d[32];
        log_error("The service manager did not read its socket for %s; MAINPID= is not sent.",
                  format_duration(d, sizeof d, HANDOVER_SEND_TIMEOUT));
        stop_sources(h);
        h->cb->failed(-ETIMEDOUT, h->userdata);
        return 0;
}

static int watch_room(Handover *h) {
        int fd = sdnotify_fd();
        int copy = fd < 0 ? -EBADF : fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return fd < 0 ? -ENOTCONN : -errno;
        /* A copy: the outbox watches the socket itself, and epoll takes
         * one source per fd. */
        int r = sd_event_add_io(h->event, &h->room, copy, EPOLLOUT, on_room, h);
        if (r < 0) {
                safe_close(copy);
                return r;
        }
        (void) sd_event_source_set_io_fd_own(h->room, true);
        return 0;
}

/* The manager's socket is full, or what we said before still waits for it
 * to read: MAINPID= waits for room, behind it. */
static int wait_for_room(Handover *h) {
        int r = watch_room(h);
        if (r < 0)
                return r;
        r = event_add_time_relative(h->event, &h->timer, HANDOVER_SEND_TIMEOUT, 1000, on_room_timeout, h);
        if (r < 0)
                return r;
        char d[32];
        log_info("The service manager's socket is full or has not read our last messages yet; MAINPID= waits "
                 "for room (at most %s).", format_duration(d, sizeof d, HANDOVER_SEND_TIMEOUT));
        return 0;
}

int handover_announce(sd_event *e, pid_t next_pid, const char *status, const HandoverCallbacks *cb,
                      void *userdata, Handover **ret) {
        Handover *h = calloc(1, sizeof *h);
        if (!h)
                return log_error_errno(ENOMEM, "Out of memory");
        *h = (Handover) { .event = sd_event_ref(e), .cb = cb, .userdata = userdata, .next_pid = next_pid };
        char esc[STATUS_ESCAPED_MAX];
        notify_escape(status, esc, sizeof esc);
        snprintf(h->msg, sizeof h->msg, "MAINPID=%d\nREADY=1\nSTATUS=%s", (int) next_pid, esc);

        int r = try_send(h);
        if (r == 0 && (r = wait_for_room(h)) >= 0) {
                *ret = h;
                return 1;
        }
        if (r < 0) {
                log_error_errno(r, "Failed to tell the service manager MAINPID=%d: %m", (int) next_pid);
                handover_free(h);
                return r;
        }
        cb->sent(userdata);
        if (r == 1 || arm_barrier(h) == 0) {
                handover_free(h);
                return 0;
        }
        *ret = h;
        return 1;
}
