/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "unix-path.h"
#include "util.h"

static int probe_connect(const struct sockaddr_un *sa, socklen_t len, int type) {
        _cleanup_close_ int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sa, len) >= 0 || errno == EAGAIN || errno == EINPROGRESS ||
            errno == EPROTOTYPE)
                return 0;
        return errno == ECONNREFUSED ? 1 : -errno;
}

int unix_path_probe(const struct sockaddr_un *sa, socklen_t len, int type) {
        struct stat st;
        if (lstat(sa->sun_path, &st) < 0)
                return -errno;
        if (!S_ISSOCK(st.st_mode))
                return -ENOTSOCK;
        return probe_connect(sa, len, type);
}

/* unix_path_probe() of name in directory dfd: the file is opened once
 * (O_PATH, not through a symlink) and connected to through its fd, so the
 * file probed is the one looked at, wherever its path leads meanwhile. */
static int probe_at(int dfd, const char *name, int type) {
        _cleanup_close_ int file = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (file < 0 || fstat(file, &st) < 0)
                return -errno;
        if (!S_ISSOCK(st.st_mode))
                return -ENOTSOCK;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d", file);
        return probe_connect(&sa, sizeof sa, type);
}

int unix_path_bind(int fd, const struct sockaddr_un *sa, socklen_t len, int type, int *ret_probe) {
        if (bind(fd, (const struct sockaddr *) sa, len) >= 0)
                return 0;
        if (errno != EADDRINUSE)
                return -errno;
        /* The file in the way is probed and removed through its directory,
         * opened once: each call by path would resolve it anew, and who may
         * rename a directory on the way, or swap a symlink there, could make
         * the file removed a same-named one elsewhere, not the stale socket
         * probed. (Who may write the directory itself can replace the file
         * in between, but could as well remove it.) The bind stays by path:
         * the path is the socket's name, which getsockname() reads back. A
         * swap before it can put the socket's new file elsewhere, but bind()
         * replaces no file there. */
        const char *path = sa->sun_path, *slash = strrchr(path, '/');
        const char *name = slash ? slash + 1 : path;
        _cleanup_free_ char *dir = slash ? strndup(path, slash > path ? (size_t) (slash - path) : 1) : strdup(".");
        if (!dir)
                return -ENOMEM;
        _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int r = dfd < 0 ? -errno : probe_at(dfd, name, type);
        if (ret_probe)
                *ret_probe = r;
        if (r <= 0)
                return -EADDRINUSE;
        if (unlinkat(dfd, name, 0) < 0 || bind(fd, (const struct sockaddr *) sa, len) < 0)
                return -errno;
        return 1;
}

/* The process umask, asked once: handoff changes it only around a bind()
 * below, which puts it back. */
static mode_t process_umask(void) {
        static bool known;
        static mode_t mask;
        if (!known) {
                mask = umask(0);
                umask(mask);
                known = true;
        }
        return mask;
}

int unix_path_bind_mode(int fd, const struct sockaddr_un *sa, socklen_t len, int type, mode_t mode, int *ret_probe) {
        /* bind() makes the file the socket's own mode & ~umask. fchmod() of
         * the unbound socket sets that mode in one call; only a umask that
         * takes some of mode's bits (never systemd's 0022 from 0600) needs
         * a umask() around the bind, two more. No chmod() after the bind:
         * until it the file would have other bits than mode, and by path it
         * could reach another file. The closer threads (close-async.c)
         * share the umask but create no files. */
        mode &= 0777;
        if (fchmod(fd, mode) < 0)
                return -errno;
        bool set_umask = process_umask() & mode;
        mode_t old_umask = set_umask ? umask(~mode & 0777) : 0;
        int r = unix_path_bind(fd, sa, len, type, ret_probe);
        if (set_umask)
                umask(old_umask);
        return r;
}
