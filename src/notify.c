/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "abstract-name.h"
#include "close-async.h"
#include "notify.h"
#include "runtime-dir.h"
#include "unix-path.h"
#include "util.h"

static bool startswith_value(const char *line, const char *key, const char **ret_value) {
        size_t l = strlen(key);
        if (strncmp(line, key, l) != 0 || line[l] != '=')
                return false;
        *ret_value = line + l + 1;
        return true;
}

/* READY=1, RELOADING=1 or STOPPING=1: the state a line names, the last
 * one counting (the other values name none). */
static void set_state(NotifyMessage *m, const char *v, bool *state) {
        if (strcmp(v, "1") != 0)
                return;
        m->ready = m->reloading = m->stopping = false;
        *state = true;
}

/* As systemd 252's service_notify_message() reads the lines: of READY=1,
 * RELOADING=1 and STOPPING=1 the last one counts (STRV_FOREACH_BACKWARDS),
 * so "READY=1\nSTOPPING=1" is not ready; WATCHDOG= and a key with a value,
 * the first line with that key (strv_find_startswith()), so
 * "WATCHDOG=x\nWATCHDOG=1" is no ping; BARRIER=1, FDSTORE=1,
 * FDSTOREREMOVE=1 and FDPOLL=0, any line (strv_contains()). */
#define FIRST(field, v) ((field) = (field) ? (field) : (v))
static void parse_line(const char *line, NotifyMessage *m, const char **watchdog) {
        const char *v;
        if (startswith_value(line, "READY", &v))
                set_state(m, v, &m->ready);
        else if (startswith_value(line, "RELOADING", &v))
                set_state(m, v, &m->reloading);
        else if (startswith_value(line, "STOPPING", &v))
                set_state(m, v, &m->stopping);
        else if (startswith_value(line, "WATCHDOG", &v))
                FIRST(*watchdog, v);
        else if (startswith_value(line, "WATCHDOG_USEC", &v))
                FIRST(m->watchdog_usec, v);
        else if (startswith_value(line, "BARRIER", &v))
                m->barrier |= strcmp(v, "1") == 0;
        else if (startswith_value(line, "FDSTORE", &v))
                m->fdstore |= strcmp(v, "1") == 0;
        else if (startswith_value(line, "FDSTOREREMOVE", &v))
                m->fdstoreremove |= strcmp(v, "1") == 0;
        else if (startswith_value(line, "FDPOLL", &v))
                m->fdpoll_off |= strcmp(v, "0") == 0;
        else if (startswith_value(line, "FDNAME", &v))
                FIRST(m->fdname, v);
        else if (startswith_value(line, "STATUS", &v))
                FIRST(m->status, v);
        else if (startswith_value(line, "EXTEND_TIMEOUT_USEC", &v))
                FIRST(m->extend_timeout_usec, v);
        else if (startswith_value(line, "ERRNO", &v))
                FIRST(m->errno_value, v);
        else if (startswith_value(line, "MAINPID", &v))
                FIRST(m->mainpid, v);
        else
                m->n_unknown++;
}
#undef FIRST

static bool is_line_end(char c) {
        return c == '\n' || c == '\r';
}

int notify_parse(char *buf, size_t len, NotifyMessage *ret) {
        if (len > NOTIFY_MAX_LEN)
                return -EBADMSG;
        if (len > 0 && buf[len - 1] == '\0')
                len--; /* one trailing NUL, as systemd permits */
        if (memchr(buf, '\0', len))
                return -EBADMSG;
        buf[len] = '\0';

        /* Each line is unescaped in place: it is written at w, which never
         * passes r, the next byte to read, and ends with a NUL written where
         * its escapes or line end were. */
        NotifyMessage m = {};
        const char *watchdog = NULL;
        char *w = buf;
        const char *r = buf, *end = buf + len;
        while (r < end) {
                if (is_line_end(*r)) {
                        r++;
                        continue;
                }
                char *line = w;
                for (; r < end && !is_line_end(*r); r++) {
                        if (*r == '\\' && ++r == end)
                                return -EBADMSG;
                        *w++ = *r;
                }
                if (r < end)
                        r++;
                *w++ = '\0';
                parse_line(line, &m, &watchdog);
                m.n_lines++;
        }
        if (m.status && !utf8_is_valid(m.status)) {
                m.status += strlen(m.status); /* "", still in buf */
                m.status_not_utf8 = true;
        }
        m.watchdog = watchdog && strcmp(watchdog, "1") == 0;
        m.watchdog_trigger = watchdog && strcmp(watchdog, "trigger") == 0;
        *ret = m;
        return 0;
}

/* Only digits, and no more than a 64-bit number has: a relayed number must
 * not smuggle in a second line, nor crowd out the WATCHDOG=1 beside it. No
 * leading zero either: systemd reads numbers with strtoull()'s base 0, to
 * which "010" is octal 8, where handoff would read 10. (It also takes a
 * leading space or '+', "0x..": no server sends those, and handoff ignores
 * them, with a warning where it uses the value.) */
static bool is_number(const char *s) {
        size_t n = 0;
        for (; s[n]; n++)
                if (s[n] < '0' || s[n] > '9')
                        return false;
        return n > 0 && n <= 20 && (s[0] != '0' || n == 1);
}

/* An errno name, as systemd's parse_errno() takes one before a number
 * ("ERRNO=ENOENT"): 'E' and capitals or digits, as long as the longest
 * there is. (One systemd does not know it ignores, as it would the
 * server's.) */
static bool is_errno_name(const char *s) {
        size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
        return s[0] == 'E' && n >= 2 && n <= 20 && s[n] == '\0';
}

int notify_parse_usec(const char *s, uint64_t *ret) {
        return s && is_number(s) ? safe_atou64(s, ret) : -EINVAL;
}

bool notify_watchdog_usec(const NotifyMessage *m, uint64_t *ret) {
        return notify_parse_usec(m->watchdog_usec, ret) >= 0;
}

/* notify_escape(); *ret_cut says whether all of text fitted. */
static size_t escape(const char *text, char *buf, size_t size, bool *ret_cut) {
        size_t n = 0;
        const char *p = text;
        for (; *p; p++) {
                bool esc = *p == '\\' || is_line_end(*p);
                if (n + esc + 1 >= size)
                        break;
                if (esc)
                        buf[n++] = '\\';
                buf[n++] = *p;
        }
        /* A cut may have left the first bytes of a UTF-8 character: the
         * manager ignores a STATUS= that is not valid UTF-8. */
        *ret_cut = *p != '\0';
        if (*ret_cut)
                n = utf8_trim_partial(buf, n);
        buf[n] = '\0';
        return n;
}

size_t notify_escape(const char *text, char *buf, size_t size) {
        bool cut;
        return escape(text, buf, size, &cut);
}

int notify_relay_text(const NotifyMessage *m, char *buf, size_t size) {
        size_t n = 0;
        buf[0] = '\0';
#define APPEND(...)                                                         \
        do {                                                                \
                int _k = snprintf(buf + n, size - n, __VA_ARGS__);          \
                if (_k < 0 || (size_t) _k >= size - n)                      \
                        return -ENOBUFS;                                    \
                n += (size_t) _k;                                           \
        } while (0)
        if (m->status) {
                bool cut;
                APPEND("STATUS=");
                n += escape(m->status, buf + n, size - n, &cut);
                if (cut) /* it would not say what the server said */
                        return -ENOBUFS;
                APPEND("\n");
        }
        if (m->watchdog)
                APPEND("WATCHDOG=1\n");
        if (m->watchdog_trigger)
                APPEND("WATCHDOG=trigger\n");
        uint64_t wd;
        if (notify_watchdog_usec(m, &wd))
                APPEND("WATCHDOG_USEC=%" PRIu64 "\n", wd);
        uint64_t ext;
        if (notify_parse_usec(m->extend_timeout_usec, &ext) >= 0)
                APPEND("EXTEND_TIMEOUT_USEC=%" PRIu64 "\n", ext);
        if (m->errno_value && (is_number(m->errno_value) || is_errno_name(m->errno_value)))
                APPEND("ERRNO=%s\n", m->errno_value);
#undef APPEND
        return (int) n;
}

/* Room a socket name needs inside a base directory: "/notify.<pid>/<number>". */
#define NOTIFY_NAME_ROOM (sizeof "/notify.4294967295/4294967295" - 1)

int notify_runtime_dir(char *ret, size_t size) {
        bool ours; /* a directory we create when it is missing */
        int r = runtime_dir_path(ret, size, &ours);
        if (r < 0)
                return r;
        if (strlen(ret) + NOTIFY_NAME_ROOM >= sizeof ((struct sockaddr_un) {}).sun_path)
                return -ENAMETOOLONG;
        if (ours && (r = runtime_dir_make(ret)) < 0)
                return r;
        /* As for the control socket: ours, and writable by nobody else, or
         * someone else could move our private directory aside and put one
         * of theirs in its place. */
        struct stat st;
        if (lstat(ret, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        if (!runtime_dir_private(&st, geteuid()))
                return -EPERM;
        if (access(ret, W_OK | X_OK) < 0)
                return -errno;
        return 0;
}

static int private_dir_path(const char *base, pid_t pid, char *ret, size_t size) {
        int k = snprintf(ret, size, "%s/notify.%d", base, (int) pid);
        return k < 0 || (size_t) k >= size ? -ENAMETOOLONG : 0;
}

/* A directory of ours, that nobody else may enter (st from lstat/fstat). */
static bool private_dir_ours(const struct stat *st) {
        return S_ISDIR(st->st_mode) && st->st_uid == geteuid() && !(st->st_mode & 0077);
}

int notify_private_dir(const char *base, pid_t pid, char *ret, size_t size) {
        int r = private_dir_path(base, pid, ret, size);
        if (r < 0)
                return r;
        /* 0700 whatever the umask: one that takes the owner's bits would
         * leave a directory we cannot bind our sockets in. The chmod() adds
         * only owner bits, in a parent nobody else may write. */
        if (mkdir(ret, 0700) >= 0)
                return chmod(ret, 0700) < 0 ? -errno : 0;
        if (errno != EEXIST)
                return -errno;
        /* Left by an earlier process with our pid (SIGKILLed): reuse it only
         * if it is ours and private, as a fresh one would be. */
        struct stat st;
        if (lstat(ret, &st) < 0)
                return -errno;
        if (!private_dir_ours(&st))
                return -EPERM;
        /* One made under a umask that took the owner's bits, by a handoff
         * that did not set the mode itself yet, is 0500: ours and private,
         * but no place to bind in. */
        if ((st.st_mode & 0700) != 0700 && chmod(ret, 0700) < 0)
                return -errno;
        return 0;
}

bool notify_private_dir_remove_stale(pid_t pid) {
        char base[sizeof ((struct sockaddr_un) {}).sun_path], dir[sizeof base];
        if (notify_runtime_dir(base, sizeof base) < 0 || private_dir_path(base, pid, dir, sizeof dir) < 0)
                return false;
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return false;
        struct stat st;
        DIR *d = fstat(fd, &st) >= 0 && private_dir_ours(&st) ? fdopendir(fd) : NULL;
        if (!d) {
                safe_close(fd);
                return false;
        }
        for (struct dirent *de; (de = readdir(d));) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                if (de->d_type != DT_SOCK ||
                    (size_t) snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, de->d_name) >= sizeof sa.sun_path)
                        continue;
                if (unix_path_probe(&sa, sizeof sa, SOCK_DGRAM) > 0) /* nobody has it bound any more */
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
        return rmdir(dir) >= 0;
}

static int open_dgram(void) {
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        int one = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
                int r = -errno;
                safe_close(fd);
                return r;
        }
        return fd;
}

/* Path sockets this process has made and not yet unlinked: its directory
 * goes with the last of them, and an rmdir() that would fail while others
 * are there is not tried on every reload. */
static unsigned n_path_sockets;

int notify_socket_open_path(const char *dir, const char *name, int min_fd, char *ret_address, size_t size,
                            int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int k = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, name);
        if (k < 0 || (size_t) k >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        if ((size_t) k + 1 > size)
                return -ENOBUFS;

        _cleanup_close_ int fd = open_dgram();
        if (fd < 0)
                return fd;
        /* 0600 whatever the umask: only our uid (and root) may send to it
         * anyway. The directory is private to this process: a file of this
         * name can only be a socket of an earlier process with our pid
         * (SIGKILLed), and is replaced; but only when nobody has it bound:
         * our pid is not ours alone where processes of other pid
         * namespaces share the directory (two containers whose handoff is
         * pid 1 of each, services with PrivatePIDs=), and their live
         * socket is not ours to take. */
        int r = unix_path_bind_mode(fd, &sa, sizeof sa, SOCK_DGRAM, 0600, NULL);
        if (r < 0)
                return r;
        r = fd_move_above(fd, min_fd);
        if (r < 0) {
                (void) unlink(sa.sun_path);
                return r;
        }
        fd = r;

        memcpy(ret_address, sa.sun_path, (size_t) k + 1);
        *ret_fd = TAKE_FD(fd);
        n_path_sockets++;
        return 0;
}

void notify_socket_unlink(const char *address) {
        if (address[0] != '/')
                return;
        (void) unlink(address);
        if (n_path_sockets > 0 && --n_path_sockets > 0)
                return;
        char dir[sizeof ((struct sockaddr_un) {}).sun_path];
        snprintf(dir, sizeof dir, "%s", address);
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return;
        *slash = '\0';
        /* The last one to go removes the directory (which fails, harmlessly,
         * if anything is left in it). */
        (void) rmdir(dir);
}

int notify_socket_open(int min_fd, char *ret_address, size_t size, int *ret_fd) {
        _cleanup_close_ int fd = open_dgram();
        if (fd < 0)
                return fd;
        /* Abstract: nothing to clean up after a SIGKILL. Anyone in the network
         * namespace may connect, so every datagram's credentials are checked;
         * and bind our name first, so one taken is given up for another. */
        char prefix[32], address[sizeof ((struct sockaddr_un) {}).sun_path + 1];
        snprintf(prefix, sizeof prefix, "handoff/%d/", (int) getpid());
        int r = abstract_name_bind(fd, prefix, address, size < sizeof address ? size : sizeof address);
        if (r < 0)
                return r;
        r = fd_move_above(fd, min_fd);
        if (r < 0)
                return r;
        fd = r;

        strcpy(ret_address, address);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Collects the fds that came with a message (closing any beyond max). */
static size_t take_passed_fds(struct msghdr *mh, int *out, size_t max) {
        size_t k = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < n; i++) {
                                int fd;
                                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                                if (k < max)
                                        out[k++] = fd;
                                else
                                        close_nonblocking(fd);
                        }
                }
        return k;
}

/* handoff never changes its uid: asked once, not at every message. */
bool notify_uid_is_ours(uid_t uid) {
        static uid_t own = (uid_t) -1;
        if (own == (uid_t) -1)
                own = getuid();
        return uid == own || uid == 0;
}

static const struct ucred *find_ucred(struct msghdr *mh) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
                    c->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
                        return (const struct ucred *) CMSG_DATA(c);
        return NULL;
}

static ssize_t receive(int fd, struct msghdr *mh, size_t controllen, int flags) {
        mh->msg_controllen = controllen;
        mh->msg_flags = 0;
        ssize_t n = recvmsg(fd, mh, flags | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
        return n >= 0 ? n : errno == EINTR ? -EAGAIN : -errno;
}

int notify_receive(int fd, NotifyFdsAllowed may_pass_fds, void *userdata, char *buf, size_t size, pid_t *ret_pid,
                   uid_t *ret_uid, const char **reason, int *ret_fds, size_t *ret_n_fds) {
        /* Room for credentials and as many fds as one message may carry. */
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 253)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size - 1 };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
        };
        const size_t creds_only = CMSG_SPACE(sizeof(struct ucred));
        size_t room = sizeof control;
        bool fds_dropped = false;
        ssize_t n;

        /* The fds a message brings are put into our fd table as it is
         * received, and no close() of theirs can be made safe there: each
         * flushes the file, and on FUSE that waits for its server, however
         * many references are left. So a sender who may not pass fds has
         * its credentials looked at first, with room for them alone (a peek
         * that installs no fd), and its fds never come in: the message is
         * received with the same room, or, when fds came with it (which
         * MSG_CTRUNC tells), dropped by a closer thread, into whose own
         * table they go. Not received here with no room for them either:
         * the kernel would release them in our thread then, and the last
         * reference of a lingering socket waits. */
        if (may_pass_fds) {
                n = receive(fd, &mh, creds_only, MSG_PEEK);
                if (n < 0)
                        return (int) n;
                const struct ucred *uc = find_ucred(&mh);
                if (!uc || uc->pid <= 0 || !may_pass_fds(uc->pid, uc->uid, userdata))
                        room = creds_only;
                fds_dropped = room == creds_only && (mh.msg_flags & MSG_CTRUNC);
        }
        if (fds_dropped) {
                int r = close_async_drop_datagram(fd);
                if (r == -EAGAIN)
                        return r;
                if (r < 0 && (n = receive(fd, &mh, creds_only, 0)) < 0) /* no closer at all: here */
                        return (int) n;
        } else if ((n = receive(fd, &mh, room, 0)) < 0)
                return (int) n;

        /* Whatever the message, its fds are now ours: kept by the caller, or
         * closed here, so a misbehaving sender cannot make us leak. */
        size_t n_fds = take_passed_fds(&mh, ret_fds, NOTIFY_MAX_FDS);
        *ret_n_fds = 0;

        const struct ucred *uc = find_ucred(&mh);
        if ((mh.msg_flags & MSG_TRUNC) || (size_t) n >= size)
                *reason = "message too long";
        else if ((mh.msg_flags & MSG_CTRUNC) && !fds_dropped)
                *reason = "control data truncated";
        else if (!uc || uc->pid <= 0)
                *reason = "no sender credentials";
        else {
                *ret_pid = uc->pid;
                *ret_uid = uc->uid;
                *ret_n_fds = n_fds;
                return (int) n;
        }
        /* The fds of a sender who may pass them, with a message dropped
         * here (too long, too many fds): closed as the caller would close
         * them (close_nonblocking()). */
        close_many_nonblocking(ret_fds, n_fds);
        return -EBADMSG;
}
