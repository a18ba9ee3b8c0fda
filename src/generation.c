/* SPDX-License-Identifier: MIT */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "close-async.h"
#include "env-file.h"
#include "env-files.h"
#include "env.h"
#include "event-util.h"
#include "generation.h"
#include "log.h"
#include "signal-util.h"
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
                snprintf(buf, size, "%s by signal %s", si->si_code == CLD_DUMPED ? "dumped core, killed" : "killed",
                         SIGNAL_NAME(si->si_status));
        }
        return buf;
}

void generation_command_summary(char *const *argv, char *buf, size_t size) {
        static const char ellipsis[] = "…";
        if (size < sizeof ellipsis + 1) {
                if (size > 0)
                        buf[0] = '\0';
                return;
        }
        size_t limit = size - sizeof ellipsis;
        if (limit > GENERATION_COMMAND_MAX)
                limit = GENERATION_COMMAND_MAX;

        size_t n = 0, first_word = 0;
        bool cut = false;
        for (size_t i = 0; argv && argv[i] && !cut; i++) {
                const char *a = argv[i];
                if (i == 0) {
                        const char *slash = strrchr(a, '/');
                        if (slash && slash[1])
                                a = slash + 1;
                } else if (n < limit)
                        buf[n++] = ' ';
                else
                        cut = true;
                for (; *a && !cut; a++) {
                        if (n == limit) {
                                cut = true;
                                break;
                        }
                        /* A log line is one line: no control characters. */
                        buf[n++] = (unsigned char) *a < 0x20 || *a == 0x7f ? '?' : *a;
                }
                if (i == 0)
                        first_word = n;
        }
        if (cut) {
                /* Cut after the last whole argument, unless that would
                 * leave less than half of what fits (one long argument). */
                size_t keep = n;
                while (keep > first_word && buf[keep - 1] != ' ')
                        keep--;
                n = keep > limit / 2 ? keep : limit;
                memcpy(buf + n, ellipsis, sizeof ellipsis);
        } else
                buf[n] = '\0';
}

const char *generation_describe(const Generation *g) {
        return g->description;
}

static void on_main_exited(ProcTree *t, const siginfo_t *si, void *userdata) {
        Generation *g = userdata;
        g->exited = true;
        g->exit_info = *si;
        /* The drain deadline stays: it is the whole generation's. The
         * notify socket is read on: on_notify() drops what comes now. */
        if (!g->stop_signal)
                g->timer_source = sd_event_source_disable_unref(g->timer_source);
        g->cb->exited(g, g->userdata);
}

static void on_tree_empty(ProcTree *t, void *userdata) {
        Generation *g = userdata;
        g->gone = true;
        g->timer_source = sd_event_source_disable_unref(g->timer_source);
        g->cb->gone(g, g->userdata);
}

static const ProcTreeCallbacks tree_callbacks = {
        .main_exited = on_main_exited,
        .empty = on_tree_empty,
};

/* Whether it became ready now (and the callback took status). */
static bool mark_ready(Generation *g, const char *status) {
        if (g->ready || g->stop_signal)
                return false;
        g->ready = true;
        g->ready_usec = now_monotonic();
        g->timer_source = sd_event_source_disable_unref(g->timer_source);
        g->cb->ready(g, status, g->userdata);
        return true;
}

/* Not the main process's: anyone who can reach the socket may have sent
 * them, built to make a plain close() wait. */
static void close_all(int *fds, size_t n) {
        close_many_nonblocking(fds, n);
}

/* Whether sender is one of the generation's processes, as its stop finds
 * them (reaper.h): in its cgroup, where it has one, as systemd places a
 * sender by its cgroup; else in its process group, led by the main
 * process, or one of its strays. (A sender that has already exited cannot
 * be placed and is not one.) */
static bool in_generation(const Generation *g, pid_t sender) {
        return sender == g->pid || (g->tree && proc_tree_has(g->tree, sender));
}

/* As systemd's NotifyAccess=: with "main" only the generation's main process
 * speaks for it, with "all" any process of the generation does. */
static bool sender_accepted(const Generation *g, pid_t sender) {
        return sender == g->pid || (g->notify_access == NOTIFY_ACCESS_ALL && in_generation(g, sender));
}

/* Every drop has its debug line (so -v shows each datagram read). A refused
 * READY=1 is the one drop a user needs to hear about (a pre-fork server
 * whose worker reports readiness never becomes ready): once per generation
 * at notice level, with what would accept it. */
static void log_refused(Generation *g, const NotifyMessage *m, pid_t sender) {
        if (g->notify_access == NOTIFY_ACCESS_MAIN)
                log_debug("Dropped notify message from pid %d: not the main process %d of generation %u.",
                          (int) sender, (int) g->pid, g->number);
        else
                log_debug("Dropped notify message from pid %d: not a process of generation %u.", (int) sender,
                          g->number);
        if (!m->ready || g->refused_ready_logged)
                return;
        g->refused_ready_logged = true;
        if (in_generation(g, sender))
                log_notice("Generation %u (%s): ignored READY=1 from pid %d, a process of the generation but not "
                           "its main one; --notify-access=all would accept it.",
                           g->number, generation_describe(g), (int) sender);
        else if (kill(sender, 0) < 0 && errno == ESRCH)
                /* As under systemd: a sender is placed when its message is
                 * read, and one gone by then is nobody's. */
                log_notice("Generation %u (%s): ignored READY=1 from pid %d, which had exited before handoff read "
                           "it, so it cannot be placed in the generation; a process that reports readiness must "
                           "live until the report is read (sd_notify_barrier(3)).",
                           g->number, generation_describe(g), (int) sender);
        else
                log_notice("Generation %u (%s): ignored READY=1 from pid %d, which is not a process of the "
                           "generation (%s); no --notify-access accepts it.",
                           g->number, generation_describe(g), (int) sender,
                           proc_tree_has_cgroup(g->tree) ? "its cgroup" : "its process group");
}

/* EXTEND_TIMEOUT_USEC=usec while the generation starts: as systemd does
 * with TimeoutStartSec=, its start deadline becomes at least now + usec (it
 * is never brought forward). Nothing to extend with --ready=delay, once it
 * is ready or retiring, or without a start timeout. */
static void extend_start_timeout(Generation *g, const char *value) {
        uint64_t usec;
        if (notify_parse_usec(value, &usec) < 0) {
                log_warning("Generation %u sent EXTEND_TIMEOUT_USEC=%.*s, not a number of microseconds; ignoring.",
                            g->number, (int) printable_prefix(value, 32), value);
                return;
        }
        /* As systemd's service_extend_timeout(): 0 and infinity extend
         * nothing (infinity is not "wait for ever"). */
        if (!timestamp_is_set(usec) || g->ready || g->ready_by_delay || g->stop_signal)
                return;
        int r = event_timer_extend(&g->timer_source, usec);
        if (r < 0)
                log_warning_errno(r, "Failed to extend generation %u's start timeout: %m", g->number);
        else if (r > 0) {
                char d[32];
                g->start_extended = true;
                log_debug("Generation %u extended its start timeout: %s from now.", g->number,
                          format_duration(d, sizeof d, usec));
        }
}

/* ... but a READY=1 from a process of the generation (a worker that
 * switched users, with --notify-access=main) still gets its notice, once,
 * as the same from our uid does. */
static void refused_other_uid(Generation *g, char *buf, size_t len, pid_t sender) {
        NotifyMessage m;
        if (!g->refused_ready_logged && notify_parse(buf, len, &m) >= 0 && m.ready && !m.barrier &&
            in_generation(g, sender))
                log_refused(g, &m, sender);
}

static void handle_datagram(Generation *g, char *buf, size_t len, pid_t sender, int *fds, size_t n_fds) {
        NotifyMessage m;
        /* Fds are closed before the drop is logged: once the line is out,
         * nothing of the datagram is held any more. */
        if (notify_parse(buf, len, &m) < 0) {
                g->dropped = true;
                close_all(fds, n_fds);
                log_debug("Dropped malformed notify message from pid %d (generation %u).", (int) sender, g->number);
                return;
        }
        if (m.barrier) {
                /* As systemd's manager_process_barrier_fd(), whoever sent
                 * it (before any NotifyAccess= check): closing the fd
                 * answers it, and nothing beside BARRIER=1 counts. */
                close_all(fds, n_fds);
                log_debug("Answered BARRIER=1 from pid %d (generation %u)%s.", (int) sender, g->number,
                          m.n_lines > 1 ? "; ignored the rest of its datagram, as systemd does" : "");
                return;
        }
        if (!sender_accepted(g, sender)) {
                g->dropped = true;
                close_all(fds, n_fds);
                log_refused(g, &m, sender);
                return;
        }
        if (m.status_not_utf8 && !g->status_not_utf8_logged) {
                g->status_not_utf8_logged = true;
                log_warning("Generation %u (%s) sent a STATUS= that is not valid UTF-8; it clears the status, as an "
                            "empty one, as with the service manager (logged once).", g->number, generation_describe(g));
        }
        if (m.extend_timeout_usec)
                extend_start_timeout(g, m.extend_timeout_usec);
        if (m.ready && !g->ready_by_delay && mark_ready(g, m.status))
                m.status = NULL; /* said with READY=1: the ready callback's */
        g->cb->message(g, &m, fds, n_fds, g->userdata);
}

static void spare_socket_written(void);

static void resume_notify(void *userdata) {
        Generation *g = userdata;
        log_debug("Reading generation %u's notify socket again.", g->number);
        (void) sd_event_source_set_enabled(g->notify_source, SD_EVENT_ON);
}

/* An abstract socket, which anyone in the network namespace can send fds
 * to, is not read while the closers are saturated (close-async.h): the
 * fds of each datagram would be held in handoff, without bound; nor while
 * a closer is yet to take a datagram whose fds may not come in off it
 * (notify_receive()): it would be read again. The kernel
 * keeps them meanwhile: a sender's sendmsg() blocks or fails with EAGAIN
 * once the socket's queue is full, the generation's own READY=1 included,
 * which is read once a closer is free (its start timeout may run out
 * first). A path socket sits in a directory only our uid and root may
 * enter, and is read on. */
static bool pause_for_closers(Generation *g) {
        if (g->notify_address[0] != '@' || !close_async_saturated())
                return false;
        log_debug("Not reading generation %u's notify socket until a closer thread is free.", g->number);
        (void) sd_event_source_set_enabled(g->notify_source, SD_EVENT_OFF);
        close_async_wait(&g->notify_waiter, resume_notify, g);
        return true;
}

/* Who may pass fds to a generation's abstract notify socket, which anyone in
 * the network namespace can reach: our uid and root, and the senders
 * --notify-access accepts while its main process lives. Another's fds never
 * come in (notify_receive()). A path socket's senders reached a directory
 * only our uid may enter: no need to ask. */
static bool may_pass_fds(pid_t sender, uid_t uid, void *userdata) {
        Generation *g = userdata;
        return notify_uid_is_ours(uid) || (!g->exited && sender_accepted(g, sender));
}

static int on_notify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Generation *g = userdata;
        char buf[NOTIFY_MAX_LEN + 2];
        int fds[NOTIFY_MAX_FDS];
        size_t n_fds = 0;

        if (!g) {
                spare_socket_written();
                return 0;
        }

        for (int i = 0; i < NOTIFY_BURST && !pause_for_closers(g); i++) {
                pid_t sender = 0;
                uid_t uid = (uid_t) -1; /* not ours, unless told */
                const char *reason = NULL;
                int n = notify_receive(fd, g->notify_address[0] == '@' ? may_pass_fds : NULL, g, buf, sizeof buf,
                                       &sender, &uid, &reason, fds, &n_fds);
                if (n == -EAGAIN)
                        break;
                if (n >= 0 && !g->exited && !notify_uid_is_ours(uid) && !sender_accepted(g, sender)) {
                        /* As systemd places a sender by its pid, whatever its
                         * uid (a server may drop its privileges before
                         * READY=1), so does --notify-access; another uid's
                         * datagram that it does not accept goes unparsed. */
                        close_all(fds, n_fds);
                        refused_other_uid(g, buf, (size_t) n, sender);
                        n = -EBADMSG;
                        reason = "sender has another uid";
                }
                if (n == -EBADMSG) {
                        g->dropped = true;
                        log_debug("Dropped notify message on generation %u's socket: %s.", g->number, reason);
                        continue;
                }
                if (n < 0) {
                        log_warning_errno(n, "Failed to receive notify message: %m");
                        break;
                }
                if (g->exited) {
                        /* Its main process is gone, and nobody speaks for the
                         * generation any more; as systemd reads and drops
                         * what no main process sent. Left unread, a worker
                         * still sending (WATCHDOG=1, STATUS=) with the usual
                         * blocking sd_notify() would hang on the full queue
                         * until the drain deadline killed it. */
                        g->dropped = true;
                        close_all(fds, n_fds);
                        log_debug("Dropped notify message from pid %d: generation %u's main process has exited.",
                                  (int) sender, g->number);
                        continue;
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
                log_warning("Generation %u (%s) did not exit in time; sending SIGKILL.", g->number,
                            generation_describe(g));
                generation_kill(g);
        } else if (g->ready_by_delay)
                mark_ready(g, NULL);
        else
                g->cb->start_timeout(g, g->userdata);
        return 0;
}

static int arm_timer(Generation *g, usec_t timeout) {
        g->timer_source = sd_event_source_disable_unref(g->timer_source);
        return event_add_time_relative(g->event, &g->timer_source, timeout, 1000, on_timer, g);
}

const char *generation_unheard_hint(const Generation *g) {
        char proc[32];
        struct stat st;
        if (close_async_waiting(&g->notify_waiter))
                return "; its notify socket was not read meanwhile: the closer threads were saturated (see the "
                       "warning about them), most likely by fds another user sent";
        snprintf(proc, sizeof proc, "/proc/%d", (int) g->pid);
        /* /proc/PID belongs to the process's effective uid. */
        if (g->exited || g->notify_address[0] == '@' || stat(proc, &st) < 0 || notify_uid_is_ours(st.st_uid))
                return NULL;
        return "; its main process runs as another user, which cannot reach the path notify socket in handoff's "
               "private directory: --notify-socket=abstract lets it be heard";
}

/* Why a start failed, for the reload's result (generation_start()'s why).
 * Allocated only then: a buffer for it in every generation was 512 bytes of
 * each one, and freed generations wait in malloc's cache for their size
 * (seven of them), on pages that stay dirty. */
static void keep_start_error(Generation *g, const char *fmt, va_list ap) _printf_(2, 0);
static void keep_start_error(Generation *g, const char *fmt, va_list ap) {
        free(g->start_error);
        if (vasprintf(&g->start_error, fmt, ap) < 0)
                g->start_error = NULL;
}

static void start_error(Generation *g, const char *fmt, ...) _printf_(2, 3);
static void start_error(Generation *g, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        keep_start_error(g, fmt, ap);
        va_end(ap);
}

/* A start that failed: logged ("Cannot start generation N: WHY"), and WHY
 * kept, so that "handoff reload" and STATUS= say what the log says. */
static int start_failed(Generation *g, int error, const char *fmt, ...) _printf_(3, 4);
static int start_failed(Generation *g, int error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        keep_start_error(g, fmt, ap);
        va_end(ap);
        return log_error_errno(error, "Cannot start generation %u: %s", g->number,
                               g->start_error ? g->start_error : "out of memory");
}

static int cannot_start(Generation *g, const char *wd, const char *path, int error, int *ret_exit_code) {
        /* execve() says EACCES for a directory; say what it is (a bare name
         * was looked up in $PATH, which told already): the lookup, from
         * where it was exec'd, tells a directory apart. */
        _cleanup_free_ char *unused = NULL;
        if (error == -EACCES && strchr(path, '/') && find_executable_from(path, wd, &unused) == -EISDIR)
                error = -EISDIR;
        *ret_exit_code = exec_error_exit_code(-error);
        return start_failed(g, error, "%s: %s", path, strerror(abs(error)));
}

/* The environment files as they are now. The names they had at the first
 * read are the ones systemd put in our environment from them (when the
 * unit's EnvironmentFile= is the same), kept out of every generation's so
 * that a variable removed from a file goes. */
static int read_environment(Generation *g, const GenerationConfig *c, char ***ret) {
        _cleanup_free_ char *failed = NULL;
        unsigned line;
        int r = env_files_read(c->environment_files, ret, &failed, &line);
        if (r == -EILSEQ)
                return start_failed(g, r, "environment file %s:%u is not valid UTF-8.", failed, line);
        if (r == -EBADMSG)
                return start_failed(g, r, "environment file %s:%u holds a NUL byte.", failed, line);
        if (r == -E2BIG && line > 0)
                return start_failed(g, r, "environment file %s:%u: more than %d variables.", failed, line,
                                    ENV_FILE_MAX_ENTRIES);
        if (r == -E2BIG)
                return start_failed(g, r, "environment file %s: more than %d variables.", failed, ENV_FILE_MAX_ENTRIES);
        if (r == -EFBIG)
                return start_failed(g, r, "environment file %s: the files are larger than %d bytes.", failed,
                                    ENV_FILE_MAX_SIZE);
        if (r == -EBADFD)
                return start_failed(g, r, "environment file %s is neither a regular file nor a character device.",
                                    failed);
        if (r < 0 && failed)
                return start_failed(g, r, "cannot read environment file %s: %s", failed, strerror(abs(r)));
        if (r < 0)
                return log_error_errno(r, "Cannot start generation %u: %m", g->number);
        if (c->environment_keys && !*c->environment_keys && !(*c->environment_keys = env_file_names(*ret)))
                return log_error_errno(ENOMEM, "Cannot start generation %u: %m", g->number);
        return 0;
}

/* A start that failed on the child's way to exec: the step that failed and
 * its errno, as systemd's "Failed at step CGROUP spawning …" names them, and
 * the exit status systemd gives that step. */
static int child_failed(Generation *g, const GenerationConfig *c, const char *path, SpawnStep step, int error,
                        int *ret_exit_code) {
        *ret_exit_code = spawn_exit_status(step, -error);
        switch (step) {
        case SPAWN_FORK:
                /* No child at all (RLIMIT_NPROC, a cgroup's pids.max): the
                 * command is not to blame. */
                return start_failed(g, error, "cannot fork: %s", strerror(-error));
        case SPAWN_DEATHSIG:
                return start_failed(g, error, "cannot set its parent-death signal (PR_SET_PDEATHSIG): %s",
                                    strerror(-error));
        case SPAWN_CGROUP:
                return start_failed(g, error, "cannot move into its cgroup (cgroup.procs): %s", strerror(-error));
        case SPAWN_FDS:
                return start_failed(g, error, "cannot place its %zu fds at 3 and up: %s", c->n_fds,
                                    strerror(-error));
        case SPAWN_LIMITS: {
                struct rlimit nofile = {};
                (void) rlimit_nofile_original(&nofile);
                return start_failed(g, error, "cannot set RLIMIT_NOFILE back to handoff's original %llu:%llu: %s",
                                    (unsigned long long) nofile.rlim_cur, (unsigned long long) nofile.rlim_max,
                                    strerror(-error));
        }
        case SPAWN_CHDIR:
                return start_failed(g, error, "cannot change to working directory %s: %s", c->working_directory,
                                    strerror(-error));
        case SPAWN_REPORT: /* only for a process that is not ours */
        case SPAWN_EXEC:
                break;
        }
        return cannot_start(g, c->working_directory, path, error, ret_exit_code);
}

static int spawn(Generation *g, const GenerationConfig *c, int cgroup_procs_fd, int *ret_exit_code) {
        /* A command with a slash is exec'd as it is, and what is wrong with
         * it is execve()'s errno, which the child hands back: a check before
         * it cost two system calls on every reload. A bare name is looked up
         * in $PATH each time, as execvp() would. */
        _cleanup_free_ char *found = NULL;
        const char *path = c->argv[0];
        int r;
        if (!strchr(path, '/')) {
                r = find_executable_from(path, c->working_directory, &found);
                if (r < 0)
                        return cannot_start(g, c->working_directory, path, r, ret_exit_code);
                path = found;
        }

        _cleanup_strv_free_ char **environment = NULL;
        if (c->environment_files && (r = read_environment(g, c, &environment)) < 0) {
                *ret_exit_code = EXIT_FAILURE;
                return r;
        }

        EnvParams ep = {
                .n_fds = c->n_fds,
                .fdnames = c->fdnames,
                .notify_socket = g->notify_address,
                .generation = g->number,
                .watchdog_usec = c->watchdog_usec,
                .environment = environment,
                .drop = environment && c->environment_keys ? *c->environment_keys : NULL,
        };
        _cleanup_free_ char **envp = NULL;
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
                /* handoff outlives every generation it runs; if it is
                 * killed hard, its server must not serve on as an orphan. */
                .die_with_parent = c->die_with_parent,
                .parent_pid = handoff_pid(),
                .into_cgroup = cgroup_procs_fd >= 0,
                .cgroup_procs_fd = cgroup_procs_fd,
                .working_directory = c->working_directory,
        };
        SpawnStep step = SPAWN_FORK;
        r = spawn_generation(&sp, &g->pid, &step);
        if (r < 0)
                return child_failed(g, c, path, step, r, ret_exit_code);
        return 0;
}

/* The notify socket of a generation that has gone, kept for the next one to
 * start: a fresh one cost socket(), setsockopt(), fchmod() and bind() on the
 * reload's way and close() and unlink() after it, an eighth of handoff's CPU
 * per reload. It is kept only once no process of its generation is left and
 * if no datagram to it was ever dropped (someone else wrote to it). It stays
 * watched, with its event source (no epoll_ctl() on either side): a
 * datagram that comes while it is spare means someone else writes to it,
 * and it is dropped then (a flood blocked on the full queue is let go with
 * it). One that comes after it is handed on is the new generation's to
 * judge: a generation's datagrams count only from its own processes. It
 * keeps its name (the number of the generation that made it). */
static struct {
        int fd;
        sd_event_source *source; /* on_notify() without a generation */
        char address[sizeof ((Generation *) NULL)->notify_address];
} spare = { .fd = -EBADF };

void generation_drop_spare_socket(void) {
        spare.source = sd_event_source_disable_unref(spare.source);
        /* Dropped because someone else wrote to it: what is still queued
         * on it may carry fds built to make a plain close() wait. (Only an
         * abstract name is reachable by others; a path socket's directory
         * is ours alone.) */
        notify_socket_unlink(spare.address); /* while still bound: see generation_free() */
        spare.fd = spare.address[0] == '@' ? close_nonblocking(spare.fd) : safe_close(spare.fd);
        spare.address[0] = '\0';
}

static bool nobody_passes_fds(pid_t sender, uid_t uid, void *userdata) {
        return false;
}

static void spare_socket_written(void) {
        char buf[NOTIFY_MAX_LEN + 2];
        int fds[NOTIFY_MAX_FDS];
        pid_t sender = 0;
        uid_t uid = (uid_t) -1;
        const char *reason = NULL;
        size_t n_fds = 0;
        /* Nobody's fds come in: the socket is dropped anyway. */
        int n = notify_receive(spare.fd, nobody_passes_fds, NULL, buf, sizeof buf, &sender, &uid, &reason, fds,
                               &n_fds);
        close_all(fds, n_fds);
        if (n >= 0)
                log_debug("Not reusing notify socket %s: pid %d wrote to it after its generation had gone.",
                          spare.address, (int) sender);
        else if (n == -EBADMSG)
                log_debug("Not reusing notify socket %s: written to after its generation had gone (%s).",
                          spare.address, reason);
        else if (n == -EAGAIN && !close_async_saturated())
                return; /* read meanwhile: nothing came */
        else if (n == -EAGAIN)
                /* A datagram with fds no closer can take off it now: left
                 * watched, it would be read again at every iteration. */
                log_debug("Not reusing notify socket %s: written to after its generation had gone, with fds no "
                          "closer thread can take now.", spare.address);
        else
                log_debug_errno(n, "Not reusing notify socket %s: %m", spare.address);
        generation_drop_spare_socket();
}

static bool take_spare_socket(Generation *g, const GenerationConfig *c, int min_fd) {
        /* A datagram that came in the same wait as the reload may not have
         * been dispatched yet: it came while the socket was spare. */
        if (spare.source && sd_event_source_get_pending(spare.source) > 0)
                spare_socket_written();
        if (spare.fd < 0)
                return false;
        /* An abstract one only where abstract is asked for: with "auto" it
         * was had for want of a runtime directory, which may be usable by
         * now. */
        bool path = spare.address[0] == '/';
        if (spare.fd < min_fd || (path && c->notify_socket == NOTIFY_SOCKET_ABSTRACT) ||
            (!path && c->notify_socket != NOTIFY_SOCKET_ABSTRACT)) {
                generation_drop_spare_socket();
                return false;
        }
        g->notify_fd = TAKE_FD(spare.fd);
        g->notify_source = TAKE_PTR(spare.source);
        memcpy(g->notify_address, spare.address, sizeof spare.address);
        spare.address[0] = '\0';
        return true;
}

/* The generation's private NOTIFY_SOCKET: a path in this process's private
 * directory (<runtime>/notify.<handoff pid>/<generation number>, so neither a
 * next handoff nor another instance can collide with it; but for one of
 * another pid namespace with our pid, whose live socket there is left
 * alone: then the abstract one), or an abstract name. "auto" takes the path
 * when it can be had and says why not at debug level when it cannot: the
 * abstract socket works as well for every library that can use it. */
static int open_notify_socket(Generation *g, const GenerationConfig *c) {
        int min_fd = 3 + (int) c->n_fds, r = 0;
        if (take_spare_socket(g, c, min_fd))
                return 0;
        if (c->notify_socket != NOTIFY_SOCKET_ABSTRACT) {
                /* The directory, once checked, stays ours: nobody else may
                 * write to its parent. Checked again (and made again) only
                 * when a bind in it fails, e.g. after its last socket went
                 * and took it along. */
                static char dir[sizeof g->notify_address];
                char base[sizeof g->notify_address], name[16];
                snprintf(name, sizeof name, "%u", g->number);
                r = dir[0] ? notify_socket_open_path(dir, name, min_fd, g->notify_address, sizeof g->notify_address,
                                                     &g->notify_fd)
                           : -ENOENT;
                if (r >= 0)
                        return 0;
                dir[0] = '\0';
                r = notify_runtime_dir(base, sizeof base);
                if (r >= 0)
                        r = notify_private_dir(base, handoff_pid(), dir, sizeof dir);
                if (r >= 0)
                        r = notify_socket_open_path(dir, name, min_fd, g->notify_address, sizeof g->notify_address,
                                                    &g->notify_fd);
                if (r >= 0)
                        return 0;
                dir[0] = '\0';
                if (c->notify_socket == NOTIFY_SOCKET_PATH) {
                        /* For the reload's result, as start_failed() keeps it. */
                        start_error(g, "no path notify socket (--notify-socket=path): %s", strerror(abs(r)));
                        return log_error_errno(r, "Failed to create a path notify socket for generation %u "
                                               "(--notify-socket=path; $RUNTIME_DIRECTORY, /run/handoff as root, "
                                               "else $XDG_RUNTIME_DIR/handoff): %m", g->number);
                }
                /* No runtime directory at all is common (a service user
                 * without RuntimeDirectory=), as is a read-only one (docker
                 * run --read-only), and said once: a server in a network
                 * namespace of its own (PrivateNetwork=) cannot reach an
                 * abstract socket. One we refuse is said each time. */
                static bool said;
                log_full_errno((r == -ENOENT || r == -EROFS) && said ? LOG_DEBUG : LOG_NOTICE, r,
                               "No path notify socket for generation %u (%m); using an abstract one, which a "
                               "server in another network namespace cannot reach (give handoff "
                               "RuntimeDirectory=, or --notify-socket=path).", g->number);
                said = true;
        }
        r = notify_socket_open(min_fd, g->notify_address, sizeof g->notify_address, &g->notify_fd);
        if (r < 0)
                return log_error_errno(r, "Failed to create notify socket: %m");
        return 0;
}

int generation_start(sd_event *e, const GenerationConfig *c, unsigned number, const GenerationCallbacks *cb,
                     void *userdata, Generation **ret, int *ret_exit_code, char *why, size_t why_size) {
        Generation *g = calloc(1, sizeof *g);
        if (!g)
                return log_error_errno(ENOMEM, "Out of memory");
        *g = (Generation) {
                .number = number,
                .event = e,
                .ready_by_delay = c->ready_by_delay,
                .notify_fd = -EBADF,
                .notify_access = c->notify_access,
                .cb = cb,
                .userdata = userdata,
        };
        *ret_exit_code = 1;
        /* Before the first goto: clang refuses a jump over a cleanup variable. */
        Cgroup *cg = NULL;
        _cleanup_close_ int procs_fd = -EBADF;

        char command[GENERATION_COMMAND_MAX + 8];
        generation_command_summary(c->argv, command, sizeof command);
        snprintf(g->description, sizeof g->description, "%s", command);

        int r = open_notify_socket(g, c);
        if (r < 0)
                goto fail;
        /* Watched, and its deadline armed, before there is a process: a
         * generation nobody hears, or with no start deadline, would keep a
         * reload from ever ending (out of memory, or out of fds for the
         * loop's first timer of its clock). Even with --ready=delay the
         * socket is read: the server's STATUS= and WATCHDOG=1 are relayed
         * all the same. (Nothing is dispatched before we return.) */
        if (g->notify_source)
                (void) sd_event_source_set_userdata(g->notify_source, g);
        else if ((r = sd_event_add_io(e, &g->notify_source, g->notify_fd, EPOLLIN, on_notify, g)) < 0) {
                start_failed(g, r, "cannot watch its notify socket: %s", strerror(-r));
                goto fail;
        }
        r = arm_timer(g, c->ready_by_delay ? c->ready_delay : c->start_timeout);
        if (r < 0) {
                start_failed(g, r, "cannot arm its start timer: %s", strerror(-r));
                goto fail;
        }
        g->started_usec = now_monotonic();
        if (c->cgroup && (r = cgroup_new_generation(c->cgroup, number, &cg, &procs_fd)) < 0) {
                start_error(g, "cannot create its cgroup: %s", strerror(abs(r)));
                log_error_errno(r, "Failed to create a cgroup for generation %u: %m", number);
                goto fail;
        }
        r = spawn(g, c, procs_fd, ret_exit_code);
        if (r < 0) {
                cgroup_free(cg);
                goto fail;
        }
        snprintf(g->description, sizeof g->description, "%s, pid %d", command, (int) g->pid);

        /* From here on the process exists: every failure below must still let
         * the reaper reap it, so only the tracking can fail. */
        r = reaper_track(c->reaper, g->pid, number, cg, &tree_callbacks, g, &g->tree);
        if (r < 0) {
                (void) kill(-g->pid, SIGKILL);
                (void) waitpid(g->pid, NULL, 0);
                cgroup_free(cg); /* emptied now, it can be removed */
                log_error_errno(r, "Failed to watch generation %u: %m", number);
                goto fail;
        }
        log_info("Started generation %u: pid %d, %s.", number, (int) g->pid, command);
        log_debug("Generation %u's NOTIFY_SOCKET is %s (--notify-access=%s).", number, g->notify_address,
                  notify_access_to_string(g->notify_access));
        *ret = g;
        return 0;
fail:
        if (why_size > 0)
                snprintf(why, why_size, "%s", g->start_error ? g->start_error : "");
        generation_free(g);
        return r;
}

void generation_status(const Generation *g, const char *role, usec_t now, StatusGeneration *ret) {
        /* Its timer is the drain deadline once retiring, the start one before. */
        usec_t kill_at = g->stop_signal ? event_timer_time(g->timer_source) : USEC_INFINITY;
        *ret = (StatusGeneration) {
                .number = g->number,
                .pid = g->pid,
                .role = role,
                .age = now - g->started_usec,
                .started = g->started_usec,
                .ready = g->ready ? g->ready_usec : 0,
                .kill_in = status_time_left(kill_at, now),
                .main_exited = g->exited,
                .processes = proc_tree_count(g->tree),
                .memory = proc_tree_memory(g->tree),
        };
}

void generation_retire(Generation *g, int sig, usec_t drain_timeout) {
        if (g->stop_signal || proc_tree_empty(g->tree))
                return;
        g->stop_signal = sig;
        /* A main that exited on its own (a crash, a failed start) was never
         * asked to stop: what it left behind is, now. (A main that exits
         * after this leaves the rest of its generation to the deadline.) */
        int r = 0;
        if (g->exited)
                proc_tree_kill(g->tree, sig);
        else if ((r = generation_signal(g, sig)) >= 0 && signal_wants_cont(sig))
                /* A stopped main acts on the stop signal once continued, as
                 * under systemd, instead of waiting for the deadline. The
                 * whole generation is continued: SIGTTIN stops a process
                 * group, and workers left stopped would not act on the stop
                 * signal their main passes on, which it then waits for. */
                proc_tree_continue(g->tree);
        if (r < 0)
                log_warning_errno(r, "Failed to send %s to pid %d: %m", SIGNAL_NAME(sig), (int) g->pid);
        proc_tree_warn_strays(g->tree);
        r = arm_timer(g, drain_timeout);
        if (r < 0) {
                /* A generation that ignores its stop signal, or drains for
                 * ever, would hold the reload or the stop for ever: no
                 * time to drain is better than no deadline. systemd, too,
                 * goes on towards SIGKILL when it cannot arm the timer of
                 * a stop's step (service_enter_signal()). */
                log_error_errno(r, "Failed to arm generation %u's drain deadline; sending SIGKILL now: %m",
                                g->number);
                generation_kill(g);
        }
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
        proc_tree_free(g->tree);
        /* Paused for the closers: what waits on it may be anyone's. */
        bool paused = close_async_waiting(&g->notify_waiter);
        close_async_wait_cancel(&g->notify_waiter);
        /* Kept for the next generation only if nobody else ever wrote to
         * it (g->dropped: an outsider, or a worker after the main exited,
         * whose datagrams were read and dropped); otherwise such a sender
         * may send still, and a flood blocked on the full queue is let go
         * with the socket. What waits on it now is read as the spare's. */
        if (g->gone && !g->dropped && !paused && g->notify_fd >= 0 && g->notify_source && spare.fd < 0) {
                (void) sd_event_source_set_userdata(g->notify_source, NULL);
                spare.source = TAKE_PTR(g->notify_source);
                spare.fd = TAKE_FD(g->notify_fd);
                memcpy(spare.address, g->notify_address, sizeof spare.address);
        } else {
                sd_event_source_disable_unref(g->notify_source);
                /* The name goes first, while the socket is still bound: a
                 * handoff with our pid in another pid namespace sharing the
                 * directory replaces a socket nobody has bound, and one it
                 * bound between our close() and unlink() would lose its name
                 * to our unlink(). */
                notify_socket_unlink(g->notify_address);
                /* Datagrams still queued on it go with it, their fds too:
                 * anyone who could reach an abstract socket may have sent
                 * them. A path socket's directory is private to our uid, so
                 * a reload's close of one starts no closer thread. */
                if (g->notify_address[0] == '@')
                        close_nonblocking(g->notify_fd);
                else
                        safe_close(g->notify_fd);
        }
        free(g->start_error);
        free(g);
        return NULL;
}
