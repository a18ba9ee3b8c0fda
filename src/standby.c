/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "channel.h"
#include "env.h"
#include "log.h"
#include "proc-stat.h"
#include "spawn.h"
#include "standby.h"
#include "util.h"

extern char **environ;

struct Standby {
        pid_t pid;
        int pidfd;
        int channel;
        char *argv;     /* the command line it was started with, encoded */
        size_t argv_size;
        dev_t exe_dev;  /* the file at handoff's path when it was started */
        ino_t exe_ino;
};

/* ---- the old main's side ------------------------------------------------ */

pid_t standby_pid(const Standby *s) {
        return s->pid;
}

int standby_start(const char *exe, char *const *argv, Standby **ret) {
        /* Before the exec: a file put there after this is one it may not
         * run, and then it is not used. */
        struct stat st;
        if (stat(exe, &st) < 0)
                return -errno;
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        _cleanup_close_ int mine = pair[0], theirs = pair[1];

        /* handoff's environment but for what belongs to one process's
         * contract with its manager; the one it runs with comes with GO. */
        size_t n = 0;
        for (char **e = environ; *e; e++)
                n++;
        _cleanup_free_ char **envp = calloc(n + 2, sizeof(char *));
        if (!envp)
                return -ENOMEM;
        size_t k = 0;
        for (char **e = environ; *e; e++)
                if (!env_is_scrubbed(*e) && strncmp(*e, STANDBY_ENV "=", strlen(STANDBY_ENV) + 1) != 0)
                        envp[k++] = *e;
        envp[k++] = (char *) STANDBY_ENV "=3";

        SpawnParams sp = {
                .path = exe,
                .argv = argv,
                .envp = envp,
                .fds = &theirs,
                .n_fds = 1,
                .as = SPAWN_SIBLING,
                .report_index = 0,
        };
        pid_t unused;
        int r = spawn_generation(&sp, &unused, NULL);
        theirs = safe_close(theirs);
        if (r < 0)
                return r;

        pid_t pid;
        int pidfd;
        if ((r = channel_receive_pid(mine, &pid, &pidfd)) < 0)
                return r;
        Standby *s = malloc(sizeof *s);
        if (!s) {
                (void) pidfd_signal(pidfd, SIGKILL);
                safe_close(pidfd);
                return -ENOMEM;
        }
        *s = (Standby) { .pid = pid, .pidfd = pidfd, .channel = TAKE_FD(mine), .exe_dev = st.st_dev,
                         .exe_ino = st.st_ino };
        char *none[] = { NULL };
        if (standby_encode(argv, none, &s->argv, &s->argv_size) < 0) {
                standby_free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

/* A pidfd turns readable once its process has exited, zombie or not. */
static bool alive(const Standby *s) {
        struct pollfd p = { .fd = s->pidfd, .events = POLLIN };
        return poll(&p, 1, 0) == 0;
}

/* A mapping of a file that has been deleted since: a library (or handoff
 * itself) replaced by an upgrade after the standby loaded it. */
static bool maps_deleted_file(pid_t pid) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/maps", (int) pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return true; /* cannot tell: do not use it */
        /* In one or two reads, on the reload's way: stdio would take the
         * file's 1 KiB blocks, seven reads for a handoff's 7 KiB. */
        char buf[16384];
        (void) setvbuf(f, buf, _IOFBF, sizeof buf);
        char line[4352];
        bool deleted = false;
        while (!deleted && fgets(line, sizeof line, f)) {
                const char *file = strchr(line, '/');
                size_t l = strlen(line);
                deleted = file && l > 11 && strcmp(line + l - 11, " (deleted)\n") == 0;
        }
        fclose(f);
        return deleted;
}

/* SIGSTOP, or a debugger's stop: it would not read GO until continued,
 * and the reload would wait for it to its start timeout. */
static bool stopped(pid_t pid) {
        ProcStat st;
        return proc_stat_read(pid, &st) >= 0 && (st.state == 'T' || st.state == 't');
}

/* Whether argv is the command line it was started with, which ps and
 * /proc/PID/cmdline go on showing. */
static bool same_argv(const Standby *s, char *const *argv) {
        char *none[] = { NULL };
        _cleanup_free_ char *enc = NULL;
        size_t size;
        return standby_encode(argv, none, &enc, &size) >= 0 && size == s->argv_size &&
               memcmp(enc, s->argv, size) == 0;
}

/* The file at handoff's path is compared with the one there when the
 * standby was started, not with its /proc/PID/exe: the path may hold a
 * wrapper script that execs handoff. What that runs, replaced since, shows
 * as a deleted mapping. */
bool standby_usable(const Standby *s, const char *exe, char *const *argv, const char **ret_why) {
        struct stat now;
        if (!alive(s))
                *ret_why = "it has exited";
        else if (!same_argv(s, argv))
                *ret_why = "the reload brings a new command line";
        else if (stat(exe, &now) < 0 || now.st_dev != s->exe_dev || now.st_ino != s->exe_ino)
                *ret_why = "handoff's file has changed since it started";
        else if (maps_deleted_file(s->pid))
                *ret_why = "a library it loaded has been replaced since";
        else if (stopped(s->pid))
                *ret_why = "it is stopped";
        /* The pid was its own for every read above. */
        else if (!alive(s))
                *ret_why = "it has exited";
        else
                return true;
        return false;
}

int standby_encode(char *const *argv, char *const *envp, char **ret, size_t *ret_size) {
        size_t argc = strv_length(argv), envc = strv_length(envp);
        char head[64];
        int hl = snprintf(head, sizeof head, "GO %zu %zu", argc, envc);
        size_t size = (size_t) hl + 1;
        for (size_t i = 0; i < argc; i++)
                size += strlen(argv[i]) + 1;
        for (size_t i = 0; i < envc; i++)
                size += strlen(envp[i]) + 1;
        if (size > STANDBY_MAX_GO)
                return -E2BIG;
        char *msg = malloc(size);
        if (!msg)
                return -ENOMEM;
        char *w = stpcpy(msg, head) + 1;
        for (size_t i = 0; i < argc; i++)
                w = stpcpy(w, argv[i]) + 1;
        for (size_t i = 0; i < envc; i++)
                w = stpcpy(w, envp[i]) + 1;
        *ret = msg;
        *ret_size = size;
        return 0;
}

int standby_go(Standby **sp, char *const *argv, char **envp, char *listen_pid_entry, char *watchdog_pid_entry,
               const int *fds, size_t n_fds, pid_t *ret_pid, int *ret_pidfd, int *ret_channel) {
        Standby *s = TAKE_PTR(*sp);
        if (n_fds > STANDBY_MAX_FDS) {
                standby_free(s);
                return -E2BIG;
        }
        env_fill_pid(listen_pid_entry, s->pid);
        if (watchdog_pid_entry)
                env_fill_pid(watchdog_pid_entry, s->pid);

        _cleanup_free_ char *msg = NULL;
        size_t size;
        int r = standby_encode(argv, envp, &msg, &size);
        if (r < 0) {
                standby_free(s);
                return r;
        }

        _cleanup_free_ char *control = n_fds > 0 ? calloc(1, CMSG_SPACE(sizeof(int) * n_fds)) : NULL;
        struct iovec iov = { .iov_base = msg, .iov_len = size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (n_fds > 0) {
                if (!control) {
                        standby_free(s);
                        return -ENOMEM;
                }
                msghdr_put_fds(&mh, control, fds, n_fds);
        }
        if (sendmsg(s->channel, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t) size) {
                r = errno ? -errno : -EIO;
                standby_free(s);
                return r;
        }
        *ret_pid = s->pid;
        *ret_pidfd = TAKE_FD(s->pidfd);
        *ret_channel = TAKE_FD(s->channel);
        free(s->argv);
        free(s);
        return 0;
}

Standby *standby_free(Standby *s) {
        if (!s)
                return NULL;
        /* It holds nothing but its end of the channel. */
        if (s->pidfd >= 0)
                (void) pidfd_signal(s->pidfd, SIGKILL);
        safe_close(s->channel);
        safe_close(s->pidfd);
        free(s->argv);
        free(s);
        return NULL;
}

Standby *standby_stop(Standby *s) {
        if (!s)
                return NULL;
        if (pidfd_signal(s->pidfd, SIGKILL) == 0) {
                struct pollfd p = { .fd = s->pidfd, .events = POLLIN };
                if (poll(&p, 1, 1000) == 0)
                        log_warning("The standby handoff (pid %d) did not exit within 1s of SIGKILL.", (int) s->pid);
        }
        return standby_free(s);
}

/* ---- the standby's side ------------------------------------------------- */

static _Noreturn void give_up(const char *what) {
        log_error("Standby: %s; exiting.", what);
        _exit(EXIT_FAILURE);
}

/* Splits count strings, each ending in a NUL, from *at (before end);
 * NULL when they do not fit. */
static char **split(char **at, const char *end, size_t count) {
        char **v = calloc(count + 1, sizeof(char *));
        if (!v)
                return NULL;
        for (size_t i = 0; i < count; i++) {
                char *nul = *at < end ? memchr(*at, '\0', (size_t) (end - *at)) : NULL;
                if (!nul) {
                        free(v);
                        return NULL;
                }
                v[i] = *at;
                *at = nul + 1;
        }
        return v;
}

int standby_parse(char *buf, size_t n, char ***ret_argv, char ***ret_envp) {
        char *end = buf + n, *at = memchr(buf, '\0', n);
        if (!at)
                return -EBADMSG;
        /* "GO <argc> <envc>": plain decimal numbers, argc at least 1, and
         * each at most the number of bytes there are. */
        uint64_t argc, envc;
        char *sp1 = strchr(buf, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (strncmp(buf, "GO ", 3) != 0 || sp1 != buf + 2 || !sp2)
                return -EBADMSG;
        *sp2 = '\0';
        int r = safe_atou64(sp1 + 1, &argc);
        *sp2 = ' ';
        if (r < 0 || safe_atou64(sp2 + 1, &envc) < 0 || argc == 0 || argc > n || envc > n)
                return -EBADMSG;
        at++;
        char **argv = split(&at, end, (size_t) argc);
        char **envp = argv ? split(&at, end, (size_t) envc) : NULL;
        if (!envp || at != end) {
                free(argv);
                free(envp);
                return -EBADMSG;
        }
        *ret_argv = argv;
        *ret_envp = envp;
        return 0;
}

/* fds[0..n) to 3..3+n-1 and the channel to 3+n, as exec would have left
 * them (no FD_CLOEXEC), and nothing else above 2: in two passes, so that
 * none is overwritten before it has been copied. */
static int lay_out(int channel, const int *fds, size_t n) {
        int high[STANDBY_MAX_FDS + 1];
        int top = 3 + (int) n + 1;
        for (size_t i = 0; i <= n; i++)
                if ((high[i] = fcntl(i < n ? fds[i] : channel, F_DUPFD_CLOEXEC, top)) < 0)
                        return -errno;
        for (size_t i = 0; i <= n; i++)
                if (dup3(high[i], 3 + (int) i, 0) < 0)
                        return -errno;
        return close_from(top);
}

int standby_wait(int *ret_argc, char ***ret_argv) {
        const char *e = getenv(STANDBY_ENV);
        if (!e)
                return 0;
        if (strcmp(e, "3") != 0)
                give_up("$" STANDBY_ENV " is not 3");
        int channel = 3;
        /* "handoff-standby" in ps -o comm and /proc/PID/comm while it waits;
         * the name exec gave it again once it runs. */
        char comm[17] = "";
        (void) prctl(PR_GET_NAME, comm);
        (void) prctl(PR_SET_NAME, "handoff-standby");

        /* Room for the fds it receives and their copies in lay_out(): the
         * limit it was started with is put back before main() runs, which
         * takes it as the one to give the generations. For n fds that is
         * 2n + 5 numbers below the hard limit (n at 4 and up, n + 1 copies
         * above 3 + n + 1), fewer than a cold start takes under the same
         * limit: its copies are made in a copy of the old main's fd table,
         * which holds the n fds, both ends of the channel and the old
         * main's own. So a limit this does not fit fails that too, and
         * there is nothing to fall back to. */
        struct rlimit nofile, raised;
        bool restore = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max;
        if (restore) {
                raised = (struct rlimit) { .rlim_cur = nofile.rlim_max, .rlim_max = nofile.rlim_max };
                restore = setrlimit(RLIMIT_NOFILE, &raised) == 0;
        }
        /* Its size first: the buffer holds argv and environ for the life
         * of the process, so it is no bigger than the message. */
        ssize_t n;
        char one;
        while ((n = recv(channel, &one, 1, MSG_PEEK | MSG_TRUNC)) < 0 && errno == EINTR)
                ;
        if (n == 0)
                _exit(EXIT_SUCCESS); /* no reload came: the service stopped, or it was replaced */
        if (n < 0)
                give_up("failed to receive the start");
        if (n > STANDBY_MAX_GO)
                give_up("the start did not fit");
        char *buf = malloc((size_t) n + 1);
        if (!buf)
                give_up("out of memory");
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int) * STANDBY_MAX_FDS)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = (size_t) n };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control };
        while ((n = recvmsg(channel, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
                ;
        if (n <= 0)
                give_up("failed to receive the start");
        if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
                give_up("the start did not fit");
        int fds[STANDBY_MAX_FDS];
        size_t n_fds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        if (n_fds + k > STANDBY_MAX_FDS)
                                give_up("too many fds");
                        memcpy(fds + n_fds, CMSG_DATA(c), k * sizeof(int));
                        n_fds += k;
                }

        char **argv, **envp;
        if (standby_parse(buf, (size_t) n, &argv, &envp) < 0)
                give_up("a malformed start message");
        if (lay_out(channel, fds, n_fds) < 0)
                give_up("failed to place the fds");
        if (restore && setrlimit(RLIMIT_NOFILE, &nofile) < 0)
                give_up("failed to restore RLIMIT_NOFILE");
        environ = envp;
        (void) prctl(PR_SET_NAME, comm);
        *ret_argc = (int) strv_length(argv);
        *ret_argv = argv;
        return 1;
}
