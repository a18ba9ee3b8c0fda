/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Cleanup helpers in the style of systemd's fd-util.h: every fd starts at
 * -EBADF, is closed exactly once, and ownership is handed out with TAKE_FD. */

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define TAKE_FD(fd)                   \
        ({                            \
                int _fd_ = (fd);      \
                (fd) = -EBADF;        \
                _fd_;                 \
        })

#define TAKE_PTR(p)                          \
        ({                                   \
                __typeof__(p) _p_ = (p);     \
                (p) = NULL;                  \
                _p_;                         \
        })

static inline int safe_close(int fd) {
        /* close() may return EINTR on Linux, but the fd is gone regardless,
         * so retrying would close somebody else's fd. */
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd) {
        safe_close(*fd);
}

static inline void freep(void *p) {
        free(*(void **) p);
}

#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_free_ _cleanup_(freep)

/* strv: NULL-terminated string arrays, owned. */
void strv_free(char **l);
static inline void strv_freep(char ***l) {
        strv_free(*l);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)
size_t strv_length(char *const *l);
int strv_push(char ***l, size_t *n, char *s);

/* a followed by b, newly allocated; NULL when out of memory. */
char *strjoin2(const char *a, const char *b);

/* This process's pid, read once: handoff never forks anything that goes on
 * running its code without an exec. (What must notice a fork, such as the
 * control socket's owner check, calls getpid() itself.) */
pid_t handoff_pid(void);

/* Writes "pid\n" to path through a temporary file and rename(), so that a
 * reader never sees a partial or empty file. */
int write_pid_file(const char *path, pid_t pid);

/* Parses a whole decimal number: digits only (no sign, no space), no more
 * than fits. Returns 0 or -EINVAL; *ret is untouched on failure. */
int safe_atou64(const char *s, uint64_t *ret);

/* A text cut to n bytes may end inside a UTF-8 character, and systemd drops
 * a STATUS= that is not valid UTF-8 as a whole. utf8_trim_partial() returns
 * the length of s[0..n) without an incomplete sequence at its end (a
 * complete one, and bytes that are not UTF-8 anyway, are left alone).
 * utf8_prefix() is the length of s cut to at most max bytes that way, for
 * "%.*s": s itself when it is not longer. */
size_t utf8_trim_partial(const char *s, size_t n);
size_t utf8_prefix(const char *s, size_t max);

/* Whether s is valid UTF-8 as systemd's utf8_is_valid() has it: no
 * truncated or overlong sequence, and no character above U+10FFFF, UTF-16
 * surrogate or noncharacter (U+FDD0..U+FDEF, U+xxFFFE, U+xxFFFF). The
 * service manager ignores a STATUS= that is not. */
bool utf8_is_valid(const char *s);

/* The length of s cut at its first control character, and to at most max
 * bytes: for "%.*s" of a server's value in a log line, which may then
 * neither end the line nor start another. */
size_t printable_prefix(const char *s, size_t max);

int fd_cloexec(int fd, int cloexec);
int fd_move_above(int fd, int min);
/* Closes every fd from `from` up: close_range(), else (Linux before 5.9,
 * or a seccomp profile that refuses it) each one /proc/self/fd lists.
 * Returns 0, or -errno when neither worked. */
int close_from(int from);
/* Closes every fd from `from` up that dir (/proc/self/fd, or
 * /proc/thread-self/fd in a thread with a table of its own) lists, except
 * keep (-1: none). Returns 0, or -errno when dir cannot be read. */
int close_listed(const char *dir, int from, int keep);

/* Sends sig to the process behind pidfd (0: only checks that it exists,
 * a zombie included). Returns 0, or -errno (-ESRCH for no pidfd). */
int pidfd_signal(int pidfd, int sig);
/* pidfd_open(2): a pidfd (close-on-exec), or -errno. */
int pidfd_open_pid(pid_t pid);
/* The wait status (as waitpid() gives it) of the process behind pidfd, which
 * need not be our child (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15).
 * Returns 0, -ENODATA while it runs or is not yet reaped by its parent (the
 * kernel keeps the status with the pidfd only then), or -errno where the
 * kernel cannot tell (-ENOTTY, -EINVAL before 6.13; -ESRCH once reaped
 * before 6.15). */
int pidfd_exit_status(int pidfd, int *ret_status);

/* Attaches n fds to mh as one SCM_RIGHTS message, in control, which has
 * room for CMSG_SPACE(sizeof(int) * n) bytes and is suitably aligned. */
struct msghdr;
void msghdr_put_fds(struct msghdr *mh, void *control, const int *fds, size_t n);

/* Makes sure fds 0, 1 and 2 are open, on /dev/null where they were closed,
 * so that nothing handoff opens later lands there and receives its log
 * lines. Call first thing in main(). Returns 0 or -errno. */
int std_fds_ensure_open(void);

/* Raises the soft RLIMIT_NOFILE to the hard limit for handoff itself and
 * remembers the soft limit handoff was started with, which every generation
 * gets back before exec (as systemd does for its services: a server that
 * uses select() must not see fds above 1023 by surprise). Returns 0, or
 * -errno when the limit could not be read or raised (nothing changed). */
int rlimit_nofile_raise(void);
/* The soft and hard limits handoff was started with; -ENODATA before (or
 * without) rlimit_nofile_raise(). */
struct rlimit;
int rlimit_nofile_original(struct rlimit *ret);

/* Whether sig, sent to end a process, is to be followed by SIGCONT, as
 * systemd does: a stopped process (SIGSTOP, or SIGTTIN from a terminal it
 * is in the background of) acts on it only once continued, and would
 * otherwise wait for the SIGKILL at the deadline. */
static inline bool signal_wants_cont(int sig) {
        return sig != 0 && sig != SIGKILL && sig != SIGCONT && sig != SIGSTOP;
}
