/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "env.h"
#include "handover.h"
#include "log.h"
#include "spawn.h"

extern char **environ;

static int pidfd_open_(pid_t pid) {
        return (int) syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int pidfd, int sig) {
        if (pidfd < 0)
                return -ESRCH;
        return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

static void fail(Successor *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(Successor *s, const char *fmt, ...) {
        if (s->failed || s->taken_over)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->why, sizeof s->why, fmt, ap);
        va_end(ap);
        s->failed = true;
        s->timer_source = sd_event_source_disable_unref(s->timer_source);
        s->cb->failed(s, s->userdata);
}

/* Receives one message, taking a pidfd that may come with it. */
static ssize_t receive(int fd, char *buf, size_t size, int *ret_fd) {
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int) * 4)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control };
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0)
                return -errno;
        *ret_fd = -EBADF;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                int k;
                                memcpy(&k, CMSG_DATA(c) + i * sizeof(int), sizeof k);
                                if (*ret_fd < 0)
                                        *ret_fd = k;
                                else
                                        close_nonblocking(k);
                        }
        buf[n] = '\0';
        return n;
}

static int on_channel(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Successor *s = userdata;
        char buf[256];
        int extra = -EBADF;
        (void) src;

        ssize_t n = receive(fd, buf, sizeof buf, &extra);
        close_nonblocking(extra);
        if (n == -EAGAIN)
                return 0;
        if (n <= 0) {
                s->channel_source = sd_event_source_disable_unref(s->channel_source);
                fail(s, "successor handoff (pid %d) closed its channel", (int) s->pid);
                return 0;
        }
        pid_t app;
        if (sscanf(buf, "APP %d", &app) == 1 && app > 0) {
                s->app_pid = app;
                safe_close(s->app_pidfd);
                s->app_pidfd = pidfd_open_(app);
        } else if (strcmp(buf, "READY") == 0 && !s->ready && !s->failed) {
                s->ready = true;
                s->timer_source = sd_event_source_disable_unref(s->timer_source);
                s->cb->ready(s, s->userdata);
        } else if (strncmp(buf, "FAILED ", 7) == 0)
                fail(s, "%s", buf + 7);
        else
                log_debug("Ignored message from successor handoff: %.64s", buf);
        return 0;
}

static int on_pidfd(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Successor *s = userdata;
        (void) src;
        (void) fd;
        s->exited = true;
        s->pidfd_source = sd_event_source_disable_unref(s->pidfd_source);
        s->timer_source = sd_event_source_disable_unref(s->timer_source);
        /* Killed before it could stop its app: do not leave the app behind.
         * Its pidfd is still open, so its group id cannot have been reused. */
        if (pidfd_signal(s->app_pidfd, 0) == 0) {
                (void) kill(-s->app_pid, SIGKILL);
                (void) pidfd_signal(s->app_pidfd, SIGKILL);
        }
        fail(s, "successor handoff (pid %d) exited", (int) s->pid);
        s->cb->exited(s, s->userdata);
        return 0;
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        Successor *s = userdata;
        (void) src;
        (void) usec;
        s->timer_source = sd_event_source_disable_unref(s->timer_source);
        if (s->failed) {
                /* Drain deadline of an abort. */
                log_warning("Successor handoff (pid %d) did not exit in time; sending SIGKILL.", (int) s->pid);
                (void) pidfd_signal(s->pidfd, SIGKILL);
                if (pidfd_signal(s->app_pidfd, 0) == 0)
                        (void) kill(-s->app_pid, SIGKILL);
        } else
                fail(s, "successor handoff (pid %d) did not report ready in time", (int) s->pid);
        return 0;
}

static int spawn_successor(const SuccessorConfig *c, int channel_child, unsigned number) {
        _cleanup_free_ char *control = NULL;
        if (asprintf(&control, HANDOFF_CONTROL_FD_ENV "=%zu", 3 + c->n_fds) < 0)
                return -ENOMEM;
        _cleanup_free_ char *stats = strjoin2("HANDOFF_STATS=", c->stats);
        _cleanup_free_ char *stored = NULL;
        if (asprintf(&stored, "HANDOFF_FDSTORE=%zu", c->n_stored) < 0)
                return -ENOMEM;
        char *extra[] = { control, stored, stats, NULL };

        EnvParams ep = {
                .n_fds = c->n_fds,
                .fdnames = c->fdnames,
                .notify_socket = c->notify_socket,
                .generation = number,
                .watchdog_usec = c->watchdog_usec,
                .extra = extra,
        };
        _cleanup_strv_free_ char **envp = NULL;
        char *listen_pid, *watchdog_pid;
        int r = env_build(environ, &ep, &envp, &listen_pid, &watchdog_pid);
        if (r < 0)
                return r;

        _cleanup_free_ int *fds = calloc(c->n_fds + 1, sizeof(int));
        if (!fds)
                return -ENOMEM;
        memcpy(fds, c->fds, sizeof(int) * c->n_fds);
        fds[c->n_fds] = channel_child;

        /* The binary may have been upgraded or removed since we started:
         * prefer the path we were started from, else our own image. */
        const char *exe = access(c->exe, X_OK) == 0 ? c->exe : "/proc/self/exe";
        if (exe != c->exe)
                log_warning("%s is gone; starting the successor from /proc/self/exe.", c->exe);

        SpawnParams sp = {
                .path = exe,
                .argv = c->argv,
                .envp = envp,
                .listen_pid_entry = listen_pid,
                .watchdog_pid_entry = watchdog_pid,
                .fds = fds,
                .n_fds = c->n_fds + 1,
                .double_fork = true,
                .report_index = c->n_fds,
        };
        pid_t unused;
        return spawn_generation(&sp, &unused);
}

int successor_start(sd_event *e, const SuccessorConfig *c, unsigned number, const SuccessorCallbacks *cb,
                    void *userdata, Successor **ret) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return log_error_errno(errno, "Failed to create handover channel: %m");
        _cleanup_close_ int mine = pair[0], theirs = pair[1];

        int r = spawn_successor(c, theirs, number);
        theirs = safe_close(theirs);
        if (r < 0)
                return log_error_errno(r, "Failed to start successor handoff %s: %m", c->exe);

        /* The successor has exec'd: its "PID" message, sent before that, is
         * the first in the queue. */
        char buf[64];
        int pidfd = -EBADF;
        pid_t pid = 0;
        ssize_t n = receive(mine, buf, sizeof buf, &pidfd);
        if (n <= 0 || sscanf(buf, "PID %d", &pid) != 1 || pidfd < 0) {
                safe_close(pidfd);
                return log_error_errno(EPROTO, "Successor handoff did not report its pid.");
        }

        Successor *s = calloc(1, sizeof *s);
        if (!s) {
                (void) pidfd_signal(pidfd, SIGKILL);
                safe_close(pidfd);
                return log_error_errno(ENOMEM, "Out of memory");
        }
        *s = (Successor) { .number = number, .pid = pid, .pidfd = pidfd, .app_pidfd = -EBADF, .channel = TAKE_FD(mine),
                           .cb = cb, .userdata = userdata };
        if ((r = sd_event_add_io(e, &s->pidfd_source, s->pidfd, EPOLLIN, on_pidfd, s)) < 0 ||
            (r = sd_event_add_io(e, &s->channel_source, s->channel, EPOLLIN, on_channel, s)) < 0 ||
            (c->timeout != USEC_INFINITY &&
             (r = sd_event_add_time_relative(e, &s->timer_source, CLOCK_MONOTONIC, c->timeout, 1000, on_timer, s)) < 0)) {
                (void) pidfd_signal(s->pidfd, SIGKILL);
                successor_free(s);
                return log_error_errno(r, "Failed to watch successor handoff: %m");
        }
        log_info("Started successor handoff: pid %d, for generation %u.", (int) pid, number);
        *ret = s;
        return 0;
}

int successor_takeover(Successor *s, char *const *unlink_paths, size_t n_paths, bool reload_pending) {
        char msg[32];
        s->taken_over = true;
        s->timer_source = sd_event_source_disable_unref(s->timer_source);
        /* A message each: a path may hold any byte but NUL. */
        for (size_t i = 0; i < n_paths; i++) {
                _cleanup_free_ char *m = strjoin2("UNLINK ", unlink_paths[i]);
                if (!m || send(s->channel, m, strlen(m), MSG_NOSIGNAL) < 0)
                        log_warning_errno(m ? errno : ENOMEM, "Failed to pass on %s: %m", unlink_paths[i]);
        }
        int n = snprintf(msg, sizeof msg, "TAKEOVER %d", reload_pending ? 1 : 0);
        if (send(s->channel, msg, (size_t) n, MSG_NOSIGNAL) < 0)
                return log_error_errno(errno, "Failed to tell successor handoff to take over: %m");
        return 0;
}

void successor_abort(Successor *s, int sig, usec_t drain_timeout) {
        if (s->exited)
                return;
        if (!s->failed)
                fail(s, "reload aborted");
        /* Closing the channel alone would do; the signal makes it prompt even
         * while the successor is busy. */
        (void) pidfd_signal(s->pidfd, sig);
        s->channel_source = sd_event_source_disable_unref(s->channel_source);
        s->channel = safe_close(s->channel); /* -EBADF if the caller kept it */
        s->timer_source = sd_event_source_disable_unref(s->timer_source);
        if (drain_timeout != USEC_INFINITY)
                (void) sd_event_add_time_relative(sd_event_source_get_event(s->pidfd_source), &s->timer_source,
                                                  CLOCK_MONOTONIC, drain_timeout, 1000, on_timer, s);
}

Successor *successor_free(Successor *s) {
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->channel_source);
        sd_event_source_disable_unref(s->pidfd_source);
        sd_event_source_disable_unref(s->timer_source);
        safe_close(s->channel);
        safe_close(s->pidfd);
        safe_close(s->app_pidfd);
        free(s);
        return NULL;
}

/* ---- the successor's side -------------------------------------------- */

int takeover_channel_from_env(int *ret_fd) {
        const char *e = getenv(HANDOFF_CONTROL_FD_ENV);
        if (!e)
                return 0;
        char *end;
        long fd = strtol(e, &end, 10);
        int type = 0;
        socklen_t len = sizeof type;
        if (*end || fd < 3 || fd > 65535 || getsockopt((int) fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
            type != SOCK_SEQPACKET) {
                unsetenv(HANDOFF_CONTROL_FD_ENV);
                return -EBADF;
        }
        unsetenv(HANDOFF_CONTROL_FD_ENV);
        (void) fd_cloexec((int) fd, true);
        (void) fcntl((int) fd, F_SETFL, fcntl((int) fd, F_GETFL) | O_NONBLOCK);
        *ret_fd = (int) fd;
        return 1;
}

int takeover_send(int fd, const char *fmt, ...) {
        char buf[256];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t) n >= sizeof buf)
                n = sizeof buf - 1;
        return send(fd, buf, (size_t) n, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

int takeover_receive(int fd, bool *ret_reload_pending, char *path_buf, size_t path_size) {
        char buf[4200];
        int extra = -EBADF;
        ssize_t n = receive(fd, buf, sizeof buf, &extra);
        close_nonblocking(extra);
        if (n < 0)
                return n == -EAGAIN ? -EAGAIN : 0;
        if (n == 0)
                return 0;
        if (strncmp(buf, "UNLINK /", 8) == 0 && (size_t) n - 7 < path_size) {
                memcpy(path_buf, buf + 7, (size_t) n - 7 + 1);
                return 2;
        }
        int pending;
        if (sscanf(buf, "TAKEOVER %d", &pending) != 1)
                return -EBADMSG;
        *ret_reload_pending = pending != 0;
        return 1;
}
