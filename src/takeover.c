/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "channel.h"
#include "env-files.h"
#include "log.h"
#include "outbox.h"
#include "takeover.h"

/* What the predecessor needs only the latest of (outbox.h); APP, READY and
 * FAILED must all arrive. */
enum {
        REPORT_STATUS = OUTBOX_EVERY + 1,
        REPORT_EXTEND,
};

struct Takeover {
        int channel;
        bool took_over;
        bool named;             /* NAMED came */
        sd_event_source *source;
        Outbox *outbox;         /* our reports, while the predecessor does not read */
        const TakeoverCallbacks *cb;
        void *userdata;
};

int takeover_channel_from_env(int *ret_fd) {
        const char *e = getenv(HANDOFF_CONTROL_FD_ENV);
        if (!e)
                return 0;
        char *end;
        errno = 0;
        long fd = strtol(e, &end, 10);
        int type = 0;
        socklen_t len = sizeof type;
        bool ok = !errno && end != e && !*end && fd >= 3 && fd <= 65535 &&
                  getsockopt((int) fd, SOL_SOCKET, SO_TYPE, &type, &len) >= 0 && type == SOCK_SEQPACKET;
        unsetenv(HANDOFF_CONTROL_FD_ENV);
        if (!ok)
                return -EBADF;
        (void) fd_cloexec((int) fd, true);
        (void) fcntl((int) fd, F_SETFL, fcntl((int) fd, F_GETFL) | O_NONBLOCK);
        *ret_fd = (int) fd;
        return 1;
}

void takeover_inherit_from_env(Inheritance *ret) {
        Inheritance in = {};
        uint64_t v[3];
        const char *e = getenv("HANDOFF_GENERATION");
        if (e && safe_atou64(e, &v[0]) == 0 && v[0] >= 1 && v[0] <= UINT32_MAX)
                in.last_number = (unsigned) v[0] - 1;
        /* "reloads failed reload-start-usec", three decimal numbers. */
        if ((e = getenv("HANDOFF_STATS"))) {
                char buf[96], *save = NULL, *tok;
                size_t i = 0;
                snprintf(buf, sizeof buf, "%s", e);
                for (tok = strtok_r(buf, " ", &save); tok && i < 3; tok = strtok_r(NULL, " ", &save))
                        if (safe_atou64(tok, &v[i]) == 0)
                                i++;
                        else
                                break;
                if (i == 3 && !tok && v[0] <= UINT32_MAX && v[1] <= UINT32_MAX) {
                        in.reloads_ok = (unsigned) v[0];
                        in.reloads_failed = (unsigned) v[1];
                        in.reload_started = v[2];
                }
        }
        /* The names its environment files had when first read: ours are
         * the same variables (inherited from it), to be left out as it did. */
        if ((e = getenv("HANDOFF_ENVIRONMENT_KEYS")) && env_file_names_valid(e))
                in.environment_keys = strdup(e);
        else if (e)
                log_warning("Ignoring an invalid HANDOFF_ENVIRONMENT_KEYS; the environment files' names are taken "
                            "at their next read.");
        unsetenv("HANDOFF_GENERATION");
        unsetenv("HANDOFF_STATS");
        unsetenv("HANDOFF_ENVIRONMENT_KEYS");
        *ret = in;
}

static int on_channel(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Takeover *t = userdata;
        char buf[CHANNEL_MAX_MESSAGE];
        ChannelMessage m;
        _cleanup_close_ int passed = -EBADF;

        int r = channel_read_fd(fd, buf, sizeof buf, &m, &passed);
        if (r == -EAGAIN)
                return 0;
        if (r == 0) {
                t->source = sd_event_source_disable_unref(t->source);
                t->outbox = outbox_free(t->outbox);
                t->channel = safe_close(t->channel);
                log_debug("The previous handoff has exited.");
                t->cb->predecessor_gone(t->userdata);
                return 0;
        }
        if (r < 0) {
                log_debug("Ignored a message from the previous handoff: %.64s", buf);
                return 0;
        }
        if (m.kind == CHANNEL_UNLINK && !t->took_over)
                t->cb->unlink_path(m.text, t->userdata);
        else if (m.kind == CHANNEL_UNLINKS && !t->took_over && passed >= 0) {
                r = channel_read_unlinks(passed, t->cb->unlink_file, t->userdata);
                if (r < 0)
                        log_warning_errno(r, "Failed to read the unix socket files to remove at the final stop: %m");
        } else if (m.kind == CHANNEL_NAMED && !t->took_over && !t->named && t->cb->named) {
                t->named = true;
                t->cb->named(&m.named, TAKE_FD(passed), t->userdata);
        } else if (m.kind == CHANNEL_UNNAMED && !t->took_over && t->named && t->cb->unnamed) {
                t->named = false;
                t->cb->unnamed(t->userdata);
        } else if (m.kind == CHANNEL_TAKEOVER && !t->took_over) {
                t->took_over = true;
                t->cb->took_over(m.reload_pending, t->userdata);
        } else if (m.kind == CHANNEL_STOP && t->took_over)
                t->cb->stop(t->userdata);
        else if (m.kind == CHANNEL_DRAINED && t->took_over)
                t->cb->predecessor_drained(t->userdata);
        else
                log_debug("Ignored a message from the previous handoff: %.64s", buf);
        return 0;
}

int takeover_new(sd_event *e, int channel, const TakeoverCallbacks *cb, void *userdata, Takeover **ret) {
        Takeover *t = calloc(1, sizeof *t);
        if (!t) {
                safe_close(channel);
                return log_error_errno(ENOMEM, "Out of memory");
        }
        *t = (Takeover) { .channel = channel, .cb = cb, .userdata = userdata };
        int r = sd_event_add_io(e, &t->source, t->channel, EPOLLIN, on_channel, t);
        if (r >= 0)
                r = outbox_new(e, t->channel, true, CHANNEL_MAX_QUEUED, CHANNEL_MAX_MESSAGE, &t->outbox);
        /* Before anything else of ours: an older predecessor ignores it. */
        if (r >= 0 && outbox_put(t->outbox, OUTBOX_EVERY, "FEATURES stop unlinks") < 0)
                log_debug("Failed to tell the previous handoff what this one understands.");
        if (r < 0) {
                takeover_free(t);
                return log_error_errno(r, "Failed to watch the handover channel: %m");
        }
        *ret = t;
        return 0;
}

Takeover *takeover_free(Takeover *t) {
        if (!t)
                return NULL;
        sd_event_source_disable_unref(t->source);
        outbox_free(t->outbox);
        safe_close(t->channel);
        free(t);
        return NULL;
}

/* Sent now, or once the predecessor reads again: one stopped or starved
 * for a moment must still get READY, however many STATUS= lines our
 * generation said meanwhile. */
static void report_fd(Takeover *t, unsigned key, const char *what, const char *arg, int fd) {
        if (!t || t->channel < 0 || t->took_over)
                return;
        char buf[CHANNEL_MAX_MESSAGE];
        snprintf(buf, sizeof buf, "%s%s%.*s", what, arg ? " " : "", arg ? (int) utf8_prefix(arg, 1024) : 0,
                 arg ? arg : "");
        int r = outbox_put_fds(t->outbox, key, buf, &fd, fd >= 0 ? 1 : 0);
        if (fd >= 0 && (r == -EMFILE || r == -ENFILE || r == -ETOOMANYREFS))
                r = outbox_put(t->outbox, key, buf); /* queued, its fd could not be copied: without it */
        if (r == 1 && key == OUTBOX_EVERY)
                log_debug("The previous handoff is not reading; %s waits until it does.", what);
        else if (r == -ENOBUFS && key == OUTBOX_EVERY)
                log_warning_errno(r, "Failed to report %s to the previous handoff, which has not read for too "
                                  "long: %m", what);
        else if (r < 0)
                log_debug_errno(r, "Failed to report %s to the previous handoff: %m", what);
}

static void report(Takeover *t, unsigned key, const char *what, const char *arg) {
        report_fd(t, key, what, arg, -EBADF);
}

void takeover_report_app(Takeover *t, pid_t pid) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", (int) pid);
        /* With a pidfd of it, opened while it is our child not yet reaped:
         * the predecessor may read this after it has died, been reaped and
         * its pid given to another process. */
        _cleanup_close_ int pidfd = pidfd_open_pid(pid);
        report_fd(t, OUTBOX_EVERY, "APP", buf, pidfd);
}

void takeover_report_status(Takeover *t, const char *status) {
        report(t, REPORT_STATUS, "STATUS", status);
}

void takeover_report_extend(Takeover *t, uint64_t usec) {
        /* One still queued said "at least that long from when it arrives"
         * too: the longer of the two keeps both promises. */
        uint64_t queued;
        const char *q = t && t->outbox ? outbox_queued(t->outbox, REPORT_EXTEND) : NULL;
        if (q && safe_atou64(q + strlen("EXTEND "), &queued) >= 0 && queued > usec)
                usec = queued;
        char buf[24];
        snprintf(buf, sizeof buf, "%" PRIu64, usec);
        report(t, REPORT_EXTEND, "EXTEND", buf);
}

void takeover_report_ready(Takeover *t) {
        report(t, OUTBOX_EVERY, "READY", NULL);
}

void takeover_report_failed(Takeover *t, const char *why) {
        report(t, OUTBOX_EVERY, "FAILED", why);
}
