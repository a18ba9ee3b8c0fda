/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "spawn.h"
#include "util.h"

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

/* A relative candidate is checked from dir, where it will be exec'd. */
static int check_executable_from(const char *dir, const char *path) {
        char full[PATH_MAX];
        if (!dir || path[0] == '/')
                return check_executable(path);
        int k = snprintf(full, sizeof full, "%s/%s", dir, path);
        return k < 0 || (size_t) k >= sizeof full ? -ENAMETOOLONG : check_executable(full);
}

int find_executable(const char *name, char **ret) {
        return find_executable_from(name, NULL, ret);
}

int find_executable_from(const char *name, const char *dir, char **ret) {
        if (!*name)
                return -ENOENT;
        if (strchr(name, '/')) {
                int r = check_executable_from(dir, name);
                if (r < 0)
                        return r;
                return (*ret = strdup(name)) ? 0 : -ENOMEM;
        }

        const char *path = getenv("PATH");
        if (!path)
                path = "/usr/local/bin:/usr/bin:/bin";
        int last = -ENOENT;
        /* Candidates are built in one buffer: this runs on every reload,
         * and an allocation per PATH element was only garbage. */
        char candidate[PATH_MAX];
        for (const char *p = path; p; ) {
                const char *colon = strchr(p, ':');
                size_t l = colon ? (size_t) (colon - p) : strlen(p);
                /* An empty element means the current directory, as for execvp. */
                int k = l == 0 ? snprintf(candidate, sizeof candidate, "./%s", name)
                               : snprintf(candidate, sizeof candidate, "%.*s/%s", (int) l, p, name);
                p = colon ? colon + 1 : NULL;
                if (k < 0 || (size_t) k >= sizeof candidate)
                        continue; /* execvp skips what it cannot build, too */
                int r = check_executable_from(dir, candidate);
                if (r == 0)
                        return (*ret = strdup(candidate)) ? 0 : -ENOMEM;
                /* Like execvp: "found but not executable" beats "not found". */
                if (r == -EACCES || r == -EISDIR)
                        last = -EACCES;
        }
        return last;
}

/* ---- between clone and exec ---------------------------------------------
 *
 * The child is started with clone(CLONE_VM | CLONE_VFORK): it runs in
 * handoff's own memory, on a stack of its own, while handoff is suspended
 * until the child has exec'd or exited. That costs no copy of handoff's page
 * tables and no copy-on-write faults afterwards (a fork() did both, on every
 * reload), but it means the child must not touch anything handoff could be
 * in the middle of: no malloc, no stdio, no locks, no libc state. So
 * everything it needs is computed before the clone into a ChildPlan, and the
 * child itself makes nothing but raw system calls (syscall(2), which only
 * sets errno: handoff's, which nothing reads while it is suspended). Its
 * functions are not instrumented by ASan: they run on a stack ASan does not
 * know, and never return. */

#define CHILD_FN __attribute__((no_sanitize("address"), noinline))
/* The child's frames are small and its depth fixed (child_exec ->
 * child_report_self -> syscall): a few hundred bytes. */
#define CHILD_STACK_SIZE (16U * 1024U)

typedef struct ChildPlan {
        const SpawnParams *p;
        int *scratch;                 /* n_fds ints */
        bool restore_nofile;
        uint64_t reset_signals;       /* bit sig - 1: not SIG_DFL in handoff */
        uint64_t nofile[2];           /* struct rlimit64: cur, max */
        char *listen_pid_digits;      /* inside envp: overwritten with the child's pid */
        size_t listen_pid_width;
        char *watchdog_pid_digits;
        size_t watchdog_pid_width;
        char *grandchild_stack;       /* top of the second stack (SPAWN_ORPHAN) */
        /* Written by the child (or the intermediate) before it exits: the
         * errno of the step that failed, and which one. Read by handoff once
         * it resumes, which is after the exec or the exit. */
        volatile int err;
        volatile SpawnStep step;      /* SPAWN_FORK until the child runs */
} ChildPlan;

/* Called by the child, too: it exits with it. */
CHILD_FN int spawn_exit_status(SpawnStep step, int error) {
        switch (step) {
        case SPAWN_CHDIR:
                return 200; /* EXIT_CHDIR */
        case SPAWN_FDS:
                return 202; /* EXIT_FDS */
        case SPAWN_LIMITS:
                return 205; /* EXIT_LIMITS */
        case SPAWN_CGROUP:
                return 219; /* EXIT_CGROUP */
        case SPAWN_EXEC:
                return error == ENOENT || error == ENOTDIR ? 127 : 126;
        case SPAWN_FORK:
        case SPAWN_DEATHSIG:
        case SPAWN_REPORT:
                break;
        }
        return EXIT_FAILURE;
}

int exec_error_exit_code(int error) {
        return spawn_exit_status(SPAWN_EXEC, error);
}

CHILD_FN _Noreturn static void child_exit(int status) {
        for (;;)
                (void) syscall(SYS_exit_group, status);
}

/* Writes a decimal number and a NUL into at most width + 1 bytes. */
CHILD_FN static void child_fill_pid(char *dst, size_t width, long pid) {
        char tmp[24];
        size_t n = 0;
        unsigned long v = (unsigned long) pid;
        do
                tmp[n++] = (char) ('0' + v % 10);
        while ((v /= 10) && n < sizeof tmp);
        if (!dst || n > width)
                return;
        for (size_t i = 0; i < n; i++)
                dst[i] = tmp[n - 1 - i];
        dst[n] = '\0';
}

/* A child that is not ours tells the process that started it who it is:
 * "PID <n>" with a pidfd of itself (a process that is not our child cannot
 * be waited for, but its pidfd can be polled), as the first message on the
 * report fd, before anything it runs can say anything else. */
CHILD_FN static long child_report_self(int fd, long pid) {
        char msg[32] = "PID ";
        char digits[24];
        child_fill_pid(digits, sizeof digits - 1, pid);
        size_t len = 4;
        for (size_t i = 0; digits[i] && len < sizeof msg; i++)
                msg[len++] = digits[i];
        long pidfd = syscall(SYS_pidfd_open, pid, 0);
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov = { .iov_base = msg, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (pidfd >= 0) {
                mh.msg_control = &control;
                mh.msg_controllen = sizeof control;
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                *(int *) (void *) CMSG_DATA(c) = (int) pidfd;
        }
        long r = syscall(SYS_sendmsg, fd, &mh, MSG_NOSIGNAL);
        int error = errno;
        if (pidfd >= 0)
                (void) syscall(SYS_close, pidfd);
        errno = error;
        return r;
}

/* Closes every fd from `from` up. close_range() may be missing (Linux
 * before 5.9) or refused by a container runtime whose seccomp profile
 * predates it (EPERM): then what /proc/self/fd lists (each number read is
 * past the directory's position, so closing it does not disturb the
 * listing), or without /proc every number below the fd limit. handoff's own
 * fds are all CLOEXEC: this is for fds it inherited that are not. */
CHILD_FN static void child_close_from(int from) {
        if (syscall(SYS_close_range, from, ~0U, 0) >= 0)
                return;
        int dir = (int) syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir >= 0) {
                _Alignas(struct dirent64) char buf[2048];
                long n;
                while ((n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0)
                        for (long off = 0; off < n;) {
                                const struct dirent64 *d = (const struct dirent64 *) (void *) (buf + off);
                                long fd = 0;
                                const char *q = d->d_name;
                                for (; *q >= '0' && *q <= '9' && fd <= INT_MAX / 10; q++)
                                        fd = fd * 10 + (*q - '0');
                                if (q != d->d_name && *q == '\0' && fd >= from && fd != dir)
                                        (void) syscall(SYS_close, fd);
                                off += d->d_reclen;
                        }
                (void) syscall(SYS_close, dir);
                if (n == 0)
                        return;
        }
        uint64_t nofile[2]; /* struct rlimit64: cur, max */
        if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, nofile) < 0)
                return;
        for (uint64_t fd = (uint64_t) from; fd < nofile[0] && fd <= INT_MAX; fd++)
                (void) syscall(SYS_close, (long) fd);
}

/* The generation's main (or the next handoff) from clone to exec. No
 * handler of handoff's can run in this copy of its memory: it has none, or
 * it blocked everything around the clone (as it always does for a double
 * fork). */
CHILD_FN _Noreturn static void child_exec(ChildPlan *c) {
        const SpawnParams *p = c->p;
        int n = (int) p->n_fds;

        (void) syscall(SYS_setpgid, 0, 0);
        c->step = SPAWN_DEATHSIG;
        if (p->die_with_parent) {
                if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
                        goto fail;
                /* handoff died before the prctl: nobody would send the
                 * signal. Unlike a failed step, nothing goes into c->err:
                 * nobody is left to read it, and the status is
                 * spawn_exit_status(SPAWN_DEATHSIG, ...) all the same. Only
                 * a SPAWN_CHILD asks for this (spawn.h): its parent is
                 * handoff. */
                if (syscall(SYS_getppid) != p->parent_pid)
                        child_exit(EXIT_FAILURE);
        }
        c->step = SPAWN_CGROUP;
        if (p->into_cgroup && syscall(SYS_write, p->cgroup_procs_fd, "0", 1) < 0)
                goto fail;

        /* Handlers, dispositions set to SIG_IGN and the blocked mask: a
         * server must start with the defaults, as under systemd. An all-zero
         * kernel sigaction is SIG_DFL, no flags, an empty mask. The mask is
         * emptied last, once no handler of handoff's is left to run. */
        unsigned long dfl[8] = { 0 };
        for (int sig = 1; sig < _NSIG && sig <= 64; sig++)
                if ((c->reset_signals & (UINT64_C(1) << (sig - 1))) && sig != SIGKILL && sig != SIGSTOP)
                        (void) syscall(SYS_rt_sigaction, sig, dfl, NULL, (_NSIG - 1) / 8);

        /* Two passes, so that a source fd already inside 3..3+n-1 is not
         * overwritten before it has been copied. dup3() onto a different
         * number gives a copy without FD_CLOEXEC: exactly these are inherited
         * (scratch[i] >= 3 + n, so never the same number). An fd already at
         * its number (systemd passes them there, and --listen opens them
         * first) only loses FD_CLOEXEC: one system call instead of two, while
         * the reload waits for the exec; neither pass writes that number. */
        c->step = SPAWN_FDS;
        for (int i = 0; i < n; i++)
                if (p->fds[i] != 3 + i &&
                    (c->scratch[i] = (int) syscall(SYS_fcntl, p->fds[i], F_DUPFD_CLOEXEC, 3 + n)) < 0)
                        goto fail;
        for (int i = 0; i < n; i++)
                if ((p->fds[i] == 3 + i ? syscall(SYS_fcntl, 3 + i, F_SETFD, 0)
                                        : syscall(SYS_dup3, c->scratch[i], 3 + i, 0)) < 0)
                        goto fail;
        /* Every other fd goes; no error pipe is needed (c->err is shared). */
        child_close_from(3 + n);

        /* Before the file limit goes back down: passing an fd (the pidfd)
         * fails with ETOOMANYREFS once the fds its user has in flight on
         * unix sockets outnumber the sender's RLIMIT_NOFILE, and a user's
         * server may keep more than 1024 there; handoff's raised limit is
         * the one to count against. Unsent, handoff could not follow the
         * process: it is not started. */
        long pid = syscall(SYS_getpid);
        c->step = SPAWN_REPORT;
        if (p->as != SPAWN_CHILD && child_report_self(3 + (int) p->report_index, pid) < 0)
                goto fail;

        /* handoff raised its own soft RLIMIT_NOFILE to the hard limit; the
         * server gets the one handoff was started with, as under systemd
         * (select() breaks on fds above 1023). After the fds are placed:
         * lowering the limit closes nothing, but it would refuse a dup above
         * it. */
        c->step = SPAWN_LIMITS;
        if (c->restore_nofile && syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, c->nofile, NULL) < 0)
                goto fail;

        /* Looked up now, at each start: a deploy that switched a symlink
         * there since the last one is followed. */
        c->step = SPAWN_CHDIR;
        if (p->working_directory && syscall(SYS_chdir, p->working_directory) < 0)
                goto fail;

        child_fill_pid(c->listen_pid_digits, c->listen_pid_width, pid);
        child_fill_pid(c->watchdog_pid_digits, c->watchdog_pid_width, pid);

        uint64_t none = 0;
        (void) syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
        c->step = SPAWN_EXEC;
        (void) syscall(SYS_execve, p->path, p->argv, p->envp);
fail:
        c->err = errno ? errno : EIO;
        child_exit(spawn_exit_status(c->step, c->err));
}

CHILD_FN static int child_main(void *userdata) {
        child_exec(userdata);
}

/* The intermediate of a double fork (SPAWN_ORPHAN): start the real child
 * (again with vfork semantics, so this returns once it has exec'd) and go,
 * so that whoever adopts orphans becomes its parent. */
CHILD_FN static int intermediate_main(void *userdata) {
        ChildPlan *c = userdata;
        if (clone(child_main, c->grandchild_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, c) < 0) {
                c->err = errno;
                child_exit(EXIT_FAILURE);
        }
        child_exit(EXIT_SUCCESS);
}

/* ---- handoff's side ----------------------------------------------------- */

/* What the child must undo of handoff's signal setup, read once, at the
 * first spawn, from /proc/self/status (a sigaction() per signal would be 64
 * system calls on a next handoff's way to its first generation): handoff
 * sets its dispositions at start-up (SIGPIPE ignored; the rest it takes
 * through a signalfd, at SIG_DFL) and never after. Without /proc: all of
 * them, and handlers assumed. */
typedef struct SignalSetup {
        uint64_t not_default;   /* bit sig - 1: ignored or caught, to be set back to SIG_DFL */
        bool handlers;          /* any signal caught by a handler (ASan's, say) */
} SignalSetup;

static unsigned parse_sigmask(const char *text, const char *key, uint64_t *mask) {
        const char *at = strstr(text, key);
        if (!at)
                return 0;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(at + strlen(key), &end, 16);
        if (errno != 0 || end == at + strlen(key))
                return 0;
        *mask |= (uint64_t) v;
        return 1;
}

static const SignalSetup *signal_setup(void) {
        static bool known;
        static SignalSetup setup;
        if (known)
                return &setup;
        char text[4096];
        ssize_t n = -1;
        _cleanup_close_ int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
                n = read(fd, text, sizeof text - 1);
        text[n > 0 ? n : 0] = '\0';
        uint64_t ignored = 0, caught = 0;
        if (parse_sigmask(text, "\nSigIgn:", &ignored) + parse_sigmask(text, "\nSigCgt:", &caught) == 2)
                setup = (SignalSetup) { .not_default = ignored | caught, .handlers = caught != 0 };
        else
                setup = (SignalSetup) { .not_default = UINT64_MAX, .handlers = true };
        known = true;
        return &setup;
}

static void pid_placeholder(char *entry, char **ret_digits, size_t *ret_width) {
        char *eq = entry ? strchr(entry, '=') : NULL;
        *ret_digits = eq ? eq + 1 : NULL;
        *ret_width = eq ? strlen(eq + 1) : 0;
}

int spawn_generation(const SpawnParams *p, pid_t *ret_pid, SpawnStep *ret_step) {
        _cleanup_free_ int *scratch = calloc(p->n_fds + 1, sizeof(int));
        if (!scratch)
                return -ENOMEM;

        const SignalSetup *sig = signal_setup();
        ChildPlan plan = { .p = p, .scratch = scratch, .reset_signals = sig->not_default, .step = SPAWN_FORK };
        struct rlimit nofile;
        if (rlimit_nofile_original(&nofile) >= 0) {
                plan.restore_nofile = true;
                plan.nofile[0] = (uint64_t) nofile.rlim_cur;
                plan.nofile[1] = (uint64_t) nofile.rlim_max;
        }
        pid_placeholder(p->listen_pid_entry, &plan.listen_pid_digits, &plan.listen_pid_width);
        pid_placeholder(p->watchdog_pid_entry, &plan.watchdog_pid_digits, &plan.watchdog_pid_width);

        /* The child's stack (and its own child's, for SPAWN_ORPHAN): we are
         * suspended until it has exec'd, and it never returns into anything
         * of ours, so one pair serves every spawn (only the main thread
         * spawns, the closers of close-async.c never do, and a spawn does
         * not nest). A mapping per spawn cost four system
         * calls and fresh page faults on every reload. Static, not in this
         * frame: there the child's page moved with the depth of the call
         * that spawned, and the first reload (deeper than the start) made
         * one or two more stack pages dirty for good; here they are the same
         * pages every time. Stacks grow down: each starts at the last 4 KiB
         * boundary below its top, so that the child's few hundred bytes
         * dirty one page, not the ends of two (aligning the buffers
         * themselves to a page moved other static variables off the page
         * they share with .data). */
        static _Alignas(16) char stack_buf[CHILD_STACK_SIZE], grandchild_stack_buf[CHILD_STACK_SIZE];
        char *stack = (char *) ((uintptr_t) (stack_buf + sizeof stack_buf) & ~(uintptr_t) 4095);
        plan.grandchild_stack = (char *) ((uintptr_t) (grandchild_stack_buf + sizeof grandchild_stack_buf) &
                                          ~(uintptr_t) 4095);

        /* No handler of ours may run in the child, which shares our memory:
         * where there are any, block everything across the clone (the child
         * empties its mask right before exec, once its dispositions are the
         * defaults). handoff itself has none, so a reload saves the two
         * calls: a signal the child gets before exec finds the defaults, as
         * it would after, and if it dies of one we resume and reap it as a
         * generation that exited. Not so an orphan's intermediate, which
         * never execs: killed while it waits, it would let us resume while
         * its child, not yet exec'd, still reads the plan in this frame (and
         * the scratch fds and environment we free on return) and runs on the
         * grandchild stack; so a double fork always blocks everything (only
         * SIGKILL is left, as for any process). */
        bool block = sig->handlers || p->as == SPAWN_ORPHAN;
        sigset_t all, saved;
        sigfillset(&all);
        if (block)
                (void) sigprocmask(SIG_SETMASK, &all, &saved);
        /* A sibling is our parent's child (CLONE_PARENT), at no more cost
         * than our own; an orphan takes an intermediate process that starts
         * it and exits. */
        pid_t pid = clone(p->as == SPAWN_ORPHAN ? intermediate_main : child_main, stack,
                          CLONE_VM | CLONE_VFORK | (p->as == SPAWN_SIBLING ? CLONE_PARENT : 0) | SIGCHLD, &plan);
        int clone_errno = errno;
        if (block)
                (void) sigprocmask(SIG_SETMASK, &saved, NULL);
        if (pid < 0) {
                if (ret_step)
                        *ret_step = SPAWN_FORK;
                return -clone_errno;
        }

        /* CLONE_VFORK: we run again only once the child has exec'd or
         * exited (an orphan's intermediate: once it has exited, which it
         * does after its own child has exec'd or failed). So plan.err is
         * final here, and the exec status costs no read and no wait in the
         * event loop. The child made its own process group before exec, so
         * the group exists before anyone can signal it. A child that is not
         * ours and failed is its parent's to reap. */
        if (p->as == SPAWN_ORPHAN || (p->as == SPAWN_CHILD && plan.err != 0))
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        if (plan.err != 0) {
                if (ret_step)
                        *ret_step = plan.step;
                return -plan.err;
        }
        if (p->as != SPAWN_ORPHAN)
                *ret_pid = pid;
        return 0;
}
