/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "channel.h"
#include "close-async.h"
#include "env.h"
#include "event-util.h"
#include "log.h"
#include "next-handoff.h"
#include "proc-stat.h"
#include "reaper.h"
#include "runtime-files.h"
#include "signal-util.h"
#include "spawn.h"
#include "standby.h"

extern char **environ;

/* How long the exit status of a next handoff that has exited is waited for
 * (see exit_status_pending()), and how often it is looked for meanwhile. */
#define EXIT_STATUS_WAIT (1 * USEC_PER_SEC)
#define EXIT_STATUS_POLL (10 * USEC_PER_MSEC)

struct NextHandoff {
        unsigned number;            /* its candidate generation's number */
        pid_t pid;
        pid_t app_pid;
        char app_cgroup[32];        /* next_handoff_app_cgroup() */
        CgroupRoot *cgroup;         /* NextHandoffConfig */
        usec_t started;
        usec_t kill_at;             /* after an abort: its SIGKILL (CLOCK_MONOTONIC); USEC_INFINITY: none */
        int app_stop_signal;        /* how its generation retires (NextHandoffConfig) */
        usec_t app_drain_timeout;
        usec_t ready_at;            /* its READY (CLOCK_MONOTONIC); 0: none yet */
        bool failed;                /* reported failed (by itself, or we gave up on it) */
        bool gave_up;               /* it said FAILED: it is stopping by itself */
        bool taken_over;
        bool unlinks_sent;          /* UNLINKS (or UNLINK): with NAMED, or else with TAKEOVER */
        bool named;                 /* NAMED went */
        bool takes_stop;            /* FEATURES said "stop" */
        bool takes_unlinks;         /* FEATURES said "unlinks" */
        bool channel_closed;        /* its end of file came: its exit is waited for (EXIT_STATUS_WAIT) */
        usec_t exit_wait_until;     /* its status is waited for until then */

        int pidfd;
        int app_pidfd;
        int channel;
        sd_event_source *channel_source;
        sd_event_source *pidfd_source;
        sd_event_source *timer_source;
        sd_event_source *exit_source; /* the wait for its exit status */

        const NextHandoffCallbacks *cb;
        void *userdata;
};

pid_t next_handoff_pid(const NextHandoff *n) {
        return n->pid;
}

bool next_handoff_takes_stop(const NextHandoff *n) {
        return n->takes_stop;
}

bool next_handoff_named(const NextHandoff *n) {
        return n->named;
}

bool next_handoff_exited(const NextHandoff *n) {
        if (!n->pidfd_source)
                return true; /* its exit was seen */
        /* Readable once it has exited, a zombie not yet reaped included. */
        struct pollfd p = { .fd = n->pidfd, .events = POLLIN };
        return poll(&p, 1, 0) > 0;
}

int next_handoff_pidfd_dup(const NextHandoff *n) {
        int fd = fcntl(n->pidfd, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? -errno : fd;
}

pid_t next_handoff_app_pid(const NextHandoff *n) {
        return n->app_pid;
}

const char *next_handoff_app_cgroup(const NextHandoff *n) {
        return n->app_cgroup;
}

void next_handoff_status(const NextHandoff *n, const char *role, usec_t started, usec_t now,
                         StatusGeneration *ret) {
        *ret = (StatusGeneration) {
                .number = n->number,
                .pid = n->pid,
                .role = role,
                .age = now > started ? now - started : 0,
                .started = started,
                .kill_in = status_time_left(n->kill_at, now),
                .processes = 1,
                .memory = UINT64_MAX,
        };
}

bool next_handoff_failed(const NextHandoff *n) {
        return n->failed;
}

usec_t next_handoff_started(const NextHandoff *n) {
        return n->started;
}

unsigned next_handoff_number(const NextHandoff *n) {
        return n->number;
}

static void fail(NextHandoff *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(NextHandoff *n, const char *fmt, ...) {
        _cleanup_free_ char *why = NULL;
        if (n->failed || n->taken_over)
                return;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&why, fmt, ap) < 0)
                why = NULL;
        va_end(ap);
        n->failed = true;
        n->timer_source = sd_event_source_disable_unref(n->timer_source);
        n->cb->failed(n, why ? why : "out of memory", n->userdata);
}

/* Its candidate generation, if it has one still running: alive (or not yet
 * reaped) by its pidfd, its pid and so its group id are still its own. */
static void kill_app(NextHandoff *n) {
        if (pidfd_signal(n->app_pidfd, 0) == 0) {
                (void) kill(-n->app_pid, SIGKILL);
                (void) pidfd_signal(n->app_pidfd, SIGKILL);
        }
        /* Not to be handed on as still running (exited). */
        n->app_pidfd = safe_close(n->app_pidfd);
}

void next_handoff_app_retirement(const NextHandoff *n, int *ret_signal, usec_t *ret_drain_timeout) {
        /* Also after an abort, which its death may have caused (its
         * channel's end of file comes first, now and then): whether the
         * dead handoff had signalled its generation, nothing says. So the
         * stop signal goes again, with a whole drain timeout. */
        *ret_signal = n->app_stop_signal;
        *ret_drain_timeout = n->app_drain_timeout;
}

usec_t next_handoff_ready_at(const NextHandoff *n) {
        return n->ready_at;
}

/* Its generation's start deadline moved to at least now + usec: so does
 * ours for it (never sooner), with the margin it had over --start-timeout. */
static void extend_timeout(NextHandoff *n, uint64_t usec) {
        int r = event_timer_extend(&n->timer_source, usec_add(usec, NEXT_HANDOFF_START_MARGIN));
        if (r < 0)
                log_warning_errno(r, "Failed to extend the next handoff's start timeout: %m");
}

/* Whether w is one of the space-separated words. */
static bool words_contain(const char *words, const char *w) {
        size_t n = strlen(w);
        for (const char *p = words; *(p += strspn(p, " "));) {
                size_t k = strcspn(p, " ");
                if (k == n && strncmp(p, w, n) == 0)
                        return true;
                p += k;
        }
        return false;
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata);

/* Exited, or on its way (in do_exit(), its fds closed before its pidfd
 * turns readable). /proc is read first: a process it shows there whose
 * pidfd is not readable after is still ours. One we cannot read there is
 * taken for exiting. */
static bool exiting(const NextHandoff *n) {
        ProcStat st;
        int r = proc_stat_read(n->pid, &st);
        return r < 0 || proc_stat_exiting(&st) || next_handoff_exited(n);
}

/* APP: its generation's main, and the pidfd that comes with it, opened
 * before the app could be reaped: by now its pid may be another process's.
 * Only from an older next handoff, which sends none, the pid. */
static void take_app(NextHandoff *n, pid_t pid, int *passed) {
        n->app_pid = pid;
        safe_close(n->app_pidfd);
        n->app_pidfd = *passed >= 0 ? TAKE_FD(*passed) : pidfd_open_pid(pid);
        /* Its cgroup, which holds its workers once its main is gone
         * (retiree.h): read while the pidfd says the pid is its own. */
        if (!n->cgroup || cgroup_generation_of(n->cgroup, pid, n->app_cgroup, sizeof n->app_cgroup) <= 0 ||
            pidfd_signal(n->app_pidfd, 0) < 0)
                n->app_cgroup[0] = '\0';
}

/* Its APP, should it be queued still at its exit (a message is read a
 * wakeup, and its exit may be seen with several queued): an app we do not
 * know of would be retired by nobody. The rest is of no use from a dead one. */
static void read_app_left(NextHandoff *n) {
        if (n->channel < 0 || !n->channel_source)
                return;
        for (;;) {
                char buf[CHANNEL_MAX_MESSAGE];
                ChannelMessage m;
                int passed = -EBADF;
                int r = channel_read_fd(n->channel, buf, sizeof buf, &m, &passed);
                if (r == 0 || r == -EAGAIN)
                        return;
                if (r == 1 && m.kind == CHANNEL_APP)
                        take_app(n, m.pid, &passed);
                if (passed >= 0)
                        close_nonblocking(passed);
        }
}

static int on_channel(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        NextHandoff *n = userdata;
        char buf[CHANNEL_MAX_MESSAGE];
        ChannelMessage m;
        int passed = -EBADF; /* with a message of ours only (APP's) */

        int r = channel_read_fd(fd, buf, sizeof buf, &m, &passed);
        if (r == -EAGAIN)
                return 0;
        if (r == 0) {
                n->channel_source = sd_event_source_disable_unref(n->channel_source);
                if (n->failed || n->taken_over || n->exit_source)
                        return 0;
                /* At its exit its channel closes a moment before its pidfd
                 * turns readable, which says how it ended: that is waited
                 * for, a while (unless its exit was seen already). One
                 * that is not exiting closed it and runs on: there is no
                 * status to wait for. */
                n->channel_closed = true;
                n->timer_source = sd_event_source_disable_unref(n->timer_source);
                if (!exiting(n) ||
                    event_add_time_relative(sd_event_source_get_event(n->pidfd_source), &n->timer_source,
                                            EXIT_STATUS_WAIT, 1000, on_timer, n) < 0)
                        fail(n, "next handoff (pid %d) closed its channel", (int) n->pid);
                return 0;
        }
        if (r < 0) {
                log_debug("Ignored a message from the next handoff: %.64s", buf);
                return 0;
        }
        switch (m.kind) {
        case CHANNEL_APP:
                take_app(n, m.pid, &passed);
                break;
        case CHANNEL_READY:
                if (n->ready_at || n->failed)
                        break;
                n->ready_at = now_monotonic();
                n->timer_source = sd_event_source_disable_unref(n->timer_source);
                n->cb->ready(n, n->userdata);
                break;
        case CHANNEL_FAILED:
                n->gave_up = true;
                fail(n, "%s", m.text);
                break;
        case CHANNEL_STATUS:
                if (!n->ready_at && !n->failed)
                        n->cb->status(n, m.text, n->userdata);
                break;
        case CHANNEL_FEATURES:
                n->takes_stop = words_contain(m.text, "stop");
                n->takes_unlinks = words_contain(m.text, "unlinks");
                break;
        case CHANNEL_EXTEND:
                if (!n->ready_at && !n->failed) {
                        extend_timeout(n, m.usec);
                        n->cb->extend(n, m.usec, n->userdata);
                }
                break;
        default:
                log_debug("Ignored a message from the next handoff: %.64s", buf);
        }
        if (passed >= 0)
                close_nonblocking(passed);
        return 0;
}

/* What handoff's own exit statuses say (handoff(1), EXIT STATUS), for a
 * next handoff that exited before it reported anything; NULL for the
 * statuses of a generation, which it would have reported. */
static const char *exit_status_meaning(int status) {
        switch (status) {
        case EXIT_FAILURE:
                return "a failure of handoff itself; its log says which";
        case 2:
                return "invalid arguments or configuration";
        default:
                return NULL;
        }
}

static void describe_exit(int status, char *buf, size_t size) {
        const char *meaning = WIFEXITED(status) ? exit_status_meaning(WEXITSTATUS(status)) : NULL;
        if (WIFEXITED(status))
                snprintf(buf, size, "exited with status %d%s%s%s", WEXITSTATUS(status), meaning ? " (" : "",
                         meaning ? meaning : "", meaning ? ")" : "");
        else
                snprintf(buf, size, "exited: %skilled by signal %s", WCOREDUMP(status) ? "dumped core, " : "",
                         SIGNAL_NAME(WTERMSIG(status)));
}

static void report_exit(NextHandoff *n) {
        n->pidfd_source = sd_event_source_disable_unref(n->pidfd_source);
        n->exit_source = sd_event_source_disable_unref(n->exit_source);
        n->timer_source = sd_event_source_disable_unref(n->timer_source);
        read_app_left(n);
        /* Killed before it could stop its app: the app, which may be
         * accepting, is the caller's to retire, its main exited or not (its
         * workers may run on in its process group); its runtime files are
         * ours to remove (the service may go on for months). */
        int app = TAKE_FD(n->app_pidfd);
        runtime_files_remove_stale(n->pid);
        char how[96] = "exited";
        int status;
        if (!n->failed && !n->taken_over && pidfd_exit_status(n->pidfd, &status) >= 0)
                describe_exit(status, how, sizeof how);
        fail(n, "next handoff (pid %d) %s", (int) n->pid, how);
        n->cb->exited(n, app, n->userdata);
}

/* Its status while it is to be reported: the kernel keeps it with the
 * pidfd once its parent (the service manager, or init) has reaped it,
 * which is at once; looked for every EXIT_STATUS_POLL until then, at most
 * EXIT_STATUS_WAIT, and only where the kernel has it to give. */
static bool exit_status_pending(NextHandoff *n, usec_t now) {
        int status;
        return !n->failed && !n->taken_over && now < n->exit_wait_until &&
               pidfd_exit_status(n->pidfd, &status) == -ENODATA;
}

static int on_exit_status(sd_event_source *src, uint64_t usec, void *userdata) {
        NextHandoff *n = userdata;
        if (exit_status_pending(n, usec) && sd_event_source_set_time_relative(src, EXIT_STATUS_POLL) >= 0 &&
            sd_event_source_set_enabled(src, SD_EVENT_ONESHOT) >= 0)
                return 0;
        report_exit(n);
        return 0;
}

static int on_pidfd(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        NextHandoff *n = userdata;
        usec_t now = now_monotonic();
        n->exit_wait_until = usec_add(now, EXIT_STATUS_WAIT);
        /* Not to be dispatched again meanwhile; still there: it has exited,
         * but it is not reported yet (next_handoff_abort()). */
        (void) sd_event_source_set_enabled(src, SD_EVENT_OFF);
        n->timer_source = sd_event_source_disable_unref(n->timer_source);
        if (exit_status_pending(n, now) &&
            event_add_time_relative(sd_event_source_get_event(src), &n->exit_source, EXIT_STATUS_POLL, 1000,
                                    on_exit_status, n) >= 0)
                return 0;
        report_exit(n);
        return 0;
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        NextHandoff *n = userdata;
        n->timer_source = sd_event_source_disable_unref(n->timer_source);
        if (n->failed) {
                /* Drain deadline of an abort. */
                log_warning("Next handoff (pid %d) did not exit in time; sending SIGKILL.", (int) n->pid);
                next_handoff_kill(n);
        } else
                fail(n, n->channel_closed ? "next handoff (pid %d) closed its channel"
                                          : "next handoff (pid %d) did not report ready in time",
                     (int) n->pid);
        return 0;
}

/* What exec gives the next handoff: its environment and fds, the
 * channel's end last. */
typedef struct NextExec {
        char *control, *stored, *fdpoll, *stats, *keys;
        char **envp;
        char *listen_pid, *watchdog_pid;
        int *fds;
        size_t n_fds;
} NextExec;

static void next_exec_done(NextExec *x) {
        free(x->control);
        free(x->stored);
        free(x->fdpoll);
        free(x->stats);
        free(x->keys);
        free(x->envp);
        free(x->fds);
}

/* An environment string the kernel takes (MAX_ARG_STRLEN is 128 KiB), and
 * the standby's GO message. Beyond it the next handoff takes the names at
 * its own first read instead. */
#define ENVIRONMENT_KEYS_MAX (16 * 1024)

static bool keys_too_long(const NextHandoffConfig *c) {
        return c->environment_keys && strlen(c->environment_keys) > ENVIRONMENT_KEYS_MAX;
}

/* Silent: a start says what it leaves out (next_handoff_start()), and a
 * standby's check of its GO builds this as well. */
static int next_exec_build(const NextHandoffConfig *c, int channel_child, unsigned number, NextExec *x) {
        const char *keys = keys_too_long(c) ? NULL : c->environment_keys;
        if (asprintf(&x->control, HANDOFF_CONTROL_FD_ENV "=%zu", 3 + c->n_fds) < 0 ||
            asprintf(&x->stored, "HANDOFF_FDSTORE=%zu", c->n_stored) < 0 ||
            !(x->fdpoll = strjoin2("HANDOFF_FDPOLL=", c->fdpoll ? c->fdpoll : "")) ||
            !(x->stats = strjoin2("HANDOFF_STATS=", c->stats)) ||
            (keys && !(x->keys = strjoin2("HANDOFF_ENVIRONMENT_KEYS=", keys))))
                return -ENOMEM;
        char *extra[] = { x->control, x->stored, x->fdpoll, x->stats, x->keys, NULL };
        EnvParams ep = {
                .n_fds = c->n_fds,
                .fdnames = c->fdnames,
                .notify_socket = c->notify_socket,
                .generation = number,
                .watchdog_usec = c->watchdog_usec,
                .extra = extra,
        };
        int r = env_build(environ, &ep, &x->envp, &x->listen_pid, &x->watchdog_pid);
        if (r < 0)
                return r;
        if (!(x->fds = calloc(c->n_fds + 1, sizeof(int))))
                return -ENOMEM;
        memcpy(x->fds, c->fds, sizeof(int) * c->n_fds);
        x->fds[c->n_fds] = channel_child;
        x->n_fds = c->n_fds + 1;
        return 0;
}

static int spawn_next(const NextHandoffConfig *c, int channel_child, unsigned number, SpawnStep *ret_step) {
        _cleanup_(next_exec_done) NextExec x = {};
        int r = next_exec_build(c, channel_child, number, &x);
        if (r < 0)
                return r;

        /* The binary may have been upgraded or removed since we started:
         * prefer the path we were started from, else our own image. */
        const char *exe = access(c->exe, X_OK) == 0 ? c->exe : "/proc/self/exe";
        if (exe != c->exe)
                log_warning("%s is gone; starting the next handoff from /proc/self/exe.", c->exe);

        /* Under a service manager (our parent) the next handoff becomes its
         * child; without one (--mode=handover forced), init's or the
         * closest subreaper's, as a daemon's would. */
        bool manager = c->notify_socket && c->notify_socket[0];
        SpawnParams sp = {
                .path = exe,
                .argv = c->argv,
                .envp = x.envp,
                .listen_pid_entry = x.listen_pid,
                .watchdog_pid_entry = x.watchdog_pid,
                .fds = x.fds,
                .n_fds = x.n_fds,
                .as = manager ? SPAWN_SIBLING : SPAWN_ORPHAN,
                .report_index = c->n_fds,
        };
        /* Its pid and pidfd come in its first message on the channel. As an
         * orphan it must go to whoever adopts orphans above us, not to us:
         * our subreaper flag is off while the intermediate exits. */
        pid_t unused;
        bool subreaper = !manager && reaper_pause_subreaper();
        r = spawn_generation(&sp, &unused, ret_step);
        reaper_resume_subreaper(subreaper);
        return r;
}

/* Cold: a new process, which reports its pid and pidfd first thing. */
static int start_cold(const NextHandoffConfig *c, unsigned number, pid_t *ret_pid, int *ret_pidfd, int *ret_channel,
                      char *why, size_t why_size) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return log_error_errno(errno, "Failed to create handover channel: %m");
        _cleanup_close_ int mine = pair[0], theirs = pair[1];

        SpawnStep step = SPAWN_EXEC;
        int r = spawn_next(c, theirs, number, &step);
        theirs = safe_close(theirs);
        if (r < 0) {
                /* A broken binary after an upgrade (ENOEXEC), RLIMIT_NPROC, or
                 * a step on its way to exec (as for a generation): for the
                 * reload's result. */
                const char *at = step == SPAWN_FORK     ? "cannot fork: "
                                 : step == SPAWN_FDS    ? "cannot place its fds at 3 and up: "
                                 : step == SPAWN_REPORT ? "cannot pass this handoff its pid and pidfd: "
                                 : step == SPAWN_LIMITS ? "cannot set RLIMIT_NOFILE back to handoff's original: "
                                                        : "";
                snprintf(why, why_size, "cannot start the next handoff %s: %s%s", c->exe, at, strerror(-r));
                return log_error_errno(r, "Failed to start the next handoff %s: %s%m", c->exe, at);
        }

        if (channel_receive_pid(mine, ret_pid, ret_pidfd) < 0)
                return log_error_errno(EPROTO, "The next handoff did not report its pid.");
        *ret_channel = TAKE_FD(mine);
        return 0;
}

/* Warm: the standby is told to go, with what exec would have given it
 * (its end of the channel is the one it has). */
static int start_standby(const NextHandoffConfig *c, Standby **standby, unsigned number, pid_t *ret_pid,
                         int *ret_pidfd, int *ret_channel) {
        const char *why = NULL;
        if (!standby_usable(*standby, c->exe, c->argv, &why)) {
                log_info("Not using the standby handoff (pid %d): %s.", (int) standby_pid(*standby), why);
                *standby = standby_free(*standby);
                return -ESTALE;
        }
        _cleanup_(next_exec_done) NextExec x = {};
        int r = next_exec_build(c, -EBADF, number, &x);
        if (r >= 0)
                r = standby_go(standby, c->argv, x.envp, x.listen_pid, x.watchdog_pid, x.fds, c->n_fds, ret_pid,
                               ret_pidfd, ret_channel);
        if (r < 0) {
                *standby = standby_free(*standby);
                log_warning_errno(r, "Failed to start the standby handoff, starting one cold: %m");
        }
        return r;
}

bool next_handoff_standby_fits(const NextHandoffConfig *c, unsigned number) {
        _cleanup_(next_exec_done) NextExec x = {};
        _cleanup_free_ char *msg = NULL;
        size_t size;
        /* Out of memory tells nothing: the standby is tried. */
        return next_exec_build(c, -EBADF, number, &x) < 0 || standby_encode(c->argv, x.envp, &msg, &size) != -E2BIG;
}

int next_handoff_start(sd_event *e, const NextHandoffConfig *c, unsigned number, Standby **standby,
                       const NextHandoffCallbacks *cb, void *userdata, NextHandoff **ret, char *why,
                       size_t why_size) {
        pid_t pid;
        int pidfd = -EBADF, channel = -EBADF;
        if (keys_too_long(c))
                log_warning("The environment files' names are too long to pass on; the next handoff takes them at "
                            "its first read.");
        bool warm = standby && *standby;
        int r = warm ? start_standby(c, standby, number, &pid, &pidfd, &channel) : -ENOENT;
        warm = r >= 0;
        if (!warm && (r = start_cold(c, number, &pid, &pidfd, &channel, why, why_size)) < 0)
                return r;

        NextHandoff *n = calloc(1, sizeof *n);
        if (!n) {
                (void) pidfd_signal(pidfd, SIGKILL);
                safe_close(pidfd);
                safe_close(channel);
                return log_error_errno(ENOMEM, "Out of memory");
        }
        *n = (NextHandoff) { .number = number, .pid = pid, .started = now_monotonic(), .kill_at = USEC_INFINITY,
                             .app_stop_signal = c->stop_signal, .app_drain_timeout = c->drain_timeout,
                             .cgroup = c->cgroup,
                             .pidfd = pidfd, .app_pidfd = -EBADF,
                             .channel = channel, .cb = cb, .userdata = userdata };
        if ((r = sd_event_add_io(e, &n->pidfd_source, n->pidfd, EPOLLIN, on_pidfd, n)) < 0 ||
            (r = sd_event_add_io(e, &n->channel_source, n->channel, EPOLLIN, on_channel, n)) < 0 ||
            (r = event_add_time_relative(e, &n->timer_source, c->timeout, 1000, on_timer, n)) < 0) {
                (void) pidfd_signal(n->pidfd, SIGKILL);
                next_handoff_free(n);
                return log_error_errno(r, "Failed to watch the next handoff: %m");
        }
        log_info("Started the next handoff: pid %d, for generation %u%s.", (int) n->pid, number,
                 warm ? " (the standby)" : "");
        *ret = n;
        return 0;
}

/* One message, however many: the channel's buffer holds every message we
 * send with room to spare (channel.h), and so NAMED and the rest after it
 * are never lost to a full one. It says which file each is, as we bound
 * it: one put at its path since is not ours to remove. A next handoff of an
 * older version takes a message a path, and the file there when it reads
 * that: it gets as many as leave that room. */
static void send_unlink_paths(NextHandoff *n, const Listeners *l) {
        char *const *unlink_paths = l->created_paths;
        size_t n_paths = l->n_created;
        if (n->unlinks_sent)
                return;
        n->unlinks_sent = true;
        if (n->takes_unlinks) {
                int r = n_paths > 0 ? channel_send_unlinks(n->channel, unlink_paths, l->created_devs,
                                                           l->created_inos, n_paths) : 0;
                if (r < 0)
                        log_warning_errno(r, "Failed to pass on the unix socket files to remove at the final stop: %m");
                return;
        }
        for (size_t i = 0; i < n_paths && i < CHANNEL_MAX_UNLINK; i++) {
                int r = channel_send(n->channel, "UNLINK %s", unlink_paths[i]);
                if (r < 0)
                        log_warning_errno(r, "Failed to pass on %s: %m", unlink_paths[i]);
        }
        if (n_paths > CHANNEL_MAX_UNLINK)
                log_warning("The next handoff (pid %d) is of a version that takes a message for each unix socket "
                            "file; %zu of them, from %s on, are not passed on: it leaves them at its final stop.",
                            (int) n->pid, n_paths - CHANNEL_MAX_UNLINK, unlink_paths[CHANNEL_MAX_UNLINK]);
}

void next_handoff_tell_named(NextHandoff *n, const Listeners *l, int gen_pidfd, const ChannelNamed *g) {
        /* Before NAMED: a next handoff that takes over by itself removes
         * them at its final stop too. */
        send_unlink_paths(n, l);
        n->named = true;
        int r = channel_send_named(n->channel, gen_pidfd, g);
        if (r < 0)
                log_warning_errno(r, "Failed to tell the next handoff (pid %d) that it is named main (NAMED): %m",
                                  (int) n->pid);
}

void next_handoff_tell_unnamed(NextHandoff *n) {
        if (!n->named)
                return;
        n->named = false;
        int r = channel_send(n->channel, "UNNAMED");
        if (r < 0)
                log_debug_errno(r, "Failed to tell the next handoff (pid %d) that it is not named main after all: %m",
                                (int) n->pid);
}

int next_handoff_take_over(NextHandoff *n, const Listeners *l, bool reload_pending, int *ret_channel) {
        int r;
        n->taken_over = true;
        n->timer_source = sd_event_source_disable_unref(n->timer_source);
        n->channel_source = sd_event_source_disable_unref(n->channel_source);
        send_unlink_paths(n, l);
        r = channel_send(n->channel, "TAKEOVER %d", reload_pending ? 1 : 0);
        *ret_channel = TAKE_FD(n->channel);
        if (r < 0)
                return log_error_errno(r, "Failed to tell the next handoff to take over: %m");
        return 0;
}

/* How much longer than its generation's drain deadline a next handoff told
 * to stop may take before it is killed: time to kill its generation, reap
 * it and remove its runtime files, on a busy machine. */
#define ABORT_MARGIN (5 * USEC_PER_SEC)

void next_handoff_abort(NextHandoff *n, usec_t drain_timeout, int *ret_channel) {
        if (!n->pidfd_source)
                return; /* exited already */
        /* Stopping now, but no failure to report: the caller aborts it. A
         * callback from here would reach a caller that may be starting the
         * next reload already, and fail that one. */
        n->failed = true;
        /* End of file alone would do; the signal makes it prompt even while
         * it is busy. SIGTERM, handoff's own stop signal, whatever its app's
         * is. Not when it gave up by itself: it is stopping already, and a
         * second signal is its "second stop request". */
        if (!n->gave_up)
                (void) pidfd_signal(n->pidfd, SIGTERM);
        n->channel_source = sd_event_source_disable_unref(n->channel_source);
        if (ret_channel)
                *ret_channel = TAKE_FD(n->channel);
        n->channel = safe_close(n->channel);
        n->timer_source = sd_event_source_disable_unref(n->timer_source);
        if (event_add_time_relative(sd_event_source_get_event(n->pidfd_source), &n->timer_source,
                                    usec_add(drain_timeout, ABORT_MARGIN), 1000, on_timer, n) >= 0)
                n->kill_at = event_timer_time(n->timer_source);
}

void next_handoff_kill(NextHandoff *n) {
        (void) pidfd_signal(n->pidfd, SIGKILL);
        kill_app(n);
        usec_t now = now_monotonic();
        if (now < n->kill_at)
                n->kill_at = now; /* sent: status shows 0 left until it is gone */
}

NextHandoff *next_handoff_free(NextHandoff *n) {
        if (!n)
                return NULL;
        sd_event_source_disable_unref(n->channel_source);
        sd_event_source_disable_unref(n->pidfd_source);
        sd_event_source_disable_unref(n->timer_source);
        sd_event_source_disable_unref(n->exit_source);
        safe_close(n->channel);
        safe_close(n->pidfd);
        safe_close(n->app_pidfd);
        free(n);
        return NULL;
}
