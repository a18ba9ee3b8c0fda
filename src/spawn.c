/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "env.h"
#include "spawn.h"
#include "util.h"

int exec_error_exit_code(int error) {
        return (error == ENOENT || error == ENOTDIR) ? 127 : 126;
}

static int check_executable(const char *path) {
        struct stat st;
        if (stat(path, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (access(path, X_OK) < 0)
                return -errno;
        return 0;
}

int find_executable(const char *name, char **ret) {
        if (!*name)
                return -ENOENT;
        if (strchr(name, '/')) {
                int r = check_executable(name);
                if (r < 0)
                        return r;
                return (*ret = strdup(name)) ? 0 : -ENOMEM;
        }

        const char *path = getenv("PATH");
        if (!path)
                path = "/usr/local/bin:/usr/bin:/bin";
        int last = -ENOENT;
        for (const char *p = path; p; ) {
                const char *colon = strchr(p, ':');
                size_t l = colon ? (size_t) (colon - p) : strlen(p);
                _cleanup_free_ char *candidate = NULL;
                /* An empty element means the current directory, as for execvp. */
                if (l == 0 ? asprintf(&candidate, "./%s", name) < 0
                           : asprintf(&candidate, "%.*s/%s", (int) l, p, name) < 0)
                        return -ENOMEM;
                int r = check_executable(candidate);
                if (r == 0) {
                        *ret = TAKE_PTR(candidate);
                        return 0;
                }
                /* Like execvp: "found but not executable" beats "not found". */
                if (r == -EACCES || r == -EISDIR)
                        last = -EACCES;
                p = colon ? colon + 1 : NULL;
        }
        return last;
}

static void report_self(int fd);

/* Everything between fork and exec must be async-signal-safe: no malloc, no
 * stdio, no locks. Errors travel to the parent as an errno over errfd. */
_Noreturn static void child_exec(const SpawnParams *p, const struct rlimit *nofile, int *scratch, int errfd) {
        int n = (int) p->n_fds;
        int err;

        (void) setpgid(0, 0);
        if (p->die_with_parent) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                        goto fail;
                /* Died between fork and prctl: nobody would send the signal. */
                if (getppid() != p->parent_pid)
                        _exit(EXIT_FAILURE);
        }
        if (p->into_cgroup && write(p->cgroup_procs_fd, "0", 1) < 0)
                goto fail;

        /* Dispositions set to SIG_IGN and the blocked mask survive exec; a
         * server must start with the defaults, as under systemd. */
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) sigaction(sig, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);

        /* Two passes, so that a source fd already inside 3..3+n-1 is not
         * overwritten before it has been copied. dup2() onto a different
         * number gives a copy without FD_CLOEXEC: exactly these are inherited. */
        for (int i = 0; i < n; i++)
                if ((scratch[i] = fcntl(p->fds[i], F_DUPFD_CLOEXEC, 3 + n)) < 0)
                        goto fail;
        for (int i = 0; i < n; i++)
                if (dup2(scratch[i], 3 + i) < 0)
                        goto fail;
        /* Every other fd goes, except the error pipe (CLOEXEC, gone at exec). */
        if (errfd > 3 + n && close_range((unsigned) (3 + n), (unsigned) errfd - 1, 0) < 0)
                goto fail;
        if (close_range((unsigned) errfd + 1, ~0U, 0) < 0)
                goto fail;

        /* handoff raised its own soft RLIMIT_NOFILE to the hard limit; the
         * server gets the one handoff was started with, as under systemd
         * (select() breaks on fds above 1023). After the fds are placed:
         * lowering the limit closes nothing, but it would refuse a dup above
         * it. setrlimit() is a plain system call, safe after fork. */
        if (nofile && setrlimit(RLIMIT_NOFILE, nofile) < 0)
                goto fail;

        if (p->double_fork)
                report_self(3 + (int) p->report_index);

        env_fill_pid(p->listen_pid_entry, getpid());
        if (p->watchdog_pid_entry)
                env_fill_pid(p->watchdog_pid_entry, getpid());

        execve(p->path, p->argv, p->envp);
fail:
        err = errno;
        (void) !write(errfd, &err, sizeof err);
        _exit(exec_error_exit_code(err));
}

/* Writes a decimal number without stdio (async-signal-safe). */
static size_t format_uint(char *buf, unsigned long v) {
        char tmp[24];
        size_t n = 0, i = 0;
        do
                tmp[n++] = (char) ('0' + v % 10);
        while ((v /= 10) && n < sizeof tmp);
        while (n)
                buf[i++] = tmp[--n];
        buf[i] = '\0';
        return i;
}

/* The child of a double fork tells the process that started it who it is:
 * "PID <n>" with a pidfd of itself, as the first message on the report fd,
 * before anything it runs can say anything else. */
static void report_self(int fd) {
        char msg[32] = "PID ";
        size_t len = 4 + format_uint(msg + 4, (unsigned long) getpid());
        int pidfd = (int) syscall(SYS_pidfd_open, getpid(), 0);
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = msg, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (pidfd >= 0) {
                mh.msg_control = &control;
                mh.msg_controllen = sizeof control;
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &pidfd, sizeof(int));
        }
        (void) sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (pidfd >= 0)
                (void) close(pidfd);
}

/* The intermediate of a double fork: fork the real child and go, so that the
 * service manager, as subreaper, becomes its parent. */
_Noreturn static void intermediate(const SpawnParams *p, const struct rlimit *nofile, int *scratch, int errfd) {
        pid_t pid = fork();
        if (pid < 0) {
                int err = errno;
                (void) !write(errfd, &err, sizeof err);
                _exit(1);
        }
        if (pid == 0)
                child_exec(p, nofile, scratch, errfd);
        _exit(0);
}

int spawn_generation(const SpawnParams *p, pid_t *ret_pid) {
        _cleanup_free_ int *scratch = calloc(p->n_fds + 1, sizeof(int));
        if (!scratch)
                return -ENOMEM;

        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        _cleanup_close_ int rfd = pipefd[0], wfd = pipefd[1];
        /* The child places listeners at 3..3+n-1; keep the pipe out of the way. */
        int r = fd_move_above(wfd, 3 + (int) p->n_fds);
        if (r < 0)
                return r;
        wfd = r;

        /* Read before the fork: nothing in the child may take a lock. */
        struct rlimit nofile;
        const struct rlimit *restore = rlimit_nofile_original(&nofile) >= 0 ? &nofile : NULL;

        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                if (p->double_fork)
                        intermediate(p, restore, scratch, wfd);
                child_exec(p, restore, scratch, wfd);
        }

        /* Also set the group from here: whichever of parent and child runs
         * first, the group exists before anyone signals it. */
        (void) setpgid(pid, pid);
        wfd = safe_close(wfd);

        int err = 0;
        ssize_t k;
        do
                k = read(rfd, &err, sizeof err);
        while (k < 0 && errno == EINTR);
        /* The read ends when every write end is gone: at the exec, or with a
         * double fork at the exec and the intermediate's exit. */
        if (p->double_fork)
                (void) waitpid(pid, NULL, 0);
        if (k == (ssize_t) sizeof err) {
                if (!p->double_fork)
                        (void) waitpid(pid, NULL, 0);
                return -err;
        }
        if (!p->double_fork)
                *ret_pid = pid;
        return 0;
}
