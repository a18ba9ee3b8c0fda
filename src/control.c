/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "abstract-name.h"
#include "close-async.h"
#include "control.h"
#include "event-util.h"
#include "log.h"
#include "runtime-dir.h"
#include "time-util.h"
#include "unix-path.h"

/* A client that connects and never writes is dropped after this, and at most
 * this many are served at once (the rest wait in the listen backlog): a stuck
 * or hostile client cannot make handoff hold fds without bound. Waiting for a
 * reload has no deadline of its own: the reload's start timeout bounds it. */
#define REQUEST_TIMEOUT (5 * USEC_PER_SEC)
#define MAX_CONNECTIONS 64
/* When root and handoff's own (other) uid may both connect, each gets half
 * the slots: a flood from one cannot keep the other out. */
#define MAX_PER_UID (MAX_CONNECTIONS / 2)
/* Out of fds: how long the listening socket rests when even the spare fd
 * could not be had back. */
#define EMFILE_BACKOFF (250 * USEC_PER_MSEC)
/* What is read of a message only to be thrown away (SOCK_SEQPACKET drops
 * the rest of it). */
#define DISCARD_SIZE 256
/* Fds a sender may attach to one message (the kernel's SCM_MAX_FD). */
#define MAX_PASSED_FDS 253

/* Linux >= 6.16: a unix socket can refuse SCM_RIGHTS; the sender's
 * sendmsg() then fails with EPERM and nothing reaches us. */
#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS 83
#endif

struct ControlConn {
        Control *control;
        int fd;
        bool waiting;
        bool root;              /* counted against root's share, not ours */
        bool resend;            /* carried a command line: passed on, it is sent again, not joined */
        WaitFor wait_for;
        sd_event_source *io;
        sd_event_source *timer;
        ControlConn *next;
};

struct Control {
        sd_event *event;
        int fd;
        sd_event_source *listen_source;
        sd_event_source *backoff_timer; /* out of fds: listening paused */
        CloseAsyncWaiter closers;       /* closers saturated: listening paused */
        ControlConn *conns;
        unsigned n_conns;
        unsigned n_root;                /* of n_conns, root's (when we are not root) */
        int spare_fd;                   /* given up to accept-and-refuse when out of fds */
        bool takes_fds;                 /* no SO_PASSRIGHTS: fds may arrive, close them safely */
        bool out_of_fds;                /* logged; cleared by the next normal accept */
        unsigned n_refused;             /* connections from other uids, for the log */
        char *path;                     /* the socket file, removed by control_free(); or "@" and an abstract name */
        pid_t owner;                    /* the process that bound it (a fork must not unlink) */
        ControlRequestFn fn;
        void *userdata;
};

/* A number of 1 to max decimal digits at *p, before end: digits only, no
 * NUL, sign or blank that the number's parser would stop at or take. *p is
 * moved past them. */
static int parse_digits(const char **p, const char *end, size_t max, uint64_t *ret) {
        char digits[24];
        size_t n = 0;
        while (*p + n < end && n <= max && (*p)[n] >= '0' && (*p)[n] <= '9')
                n++;
        if (n == 0 || n > max)
                return -EBADMSG;
        memcpy(digits, *p, n);
        digits[n] = '\0';
        *p += n;
        return safe_atou64(digits, ret) < 0 ? -EBADMSG : 0;
}

int control_parse_request(const char *buf, size_t len, ControlRequest *ret) {
        static const struct {
                const char *text;
                RequestKind kind;
        } requests[] = {
                { "RELOAD", REQUEST_RELOAD },
                { "JOIN", REQUEST_JOIN },
                { "STATUS", REQUEST_STATUS },
                { "STATUS json", REQUEST_STATUS_JSON },
        };
        /* A new command line: what follows is checked where it is parsed. */
        static const char reload_args[] = "RELOAD";
        if (len > sizeof reload_args && memcmp(buf, reload_args, sizeof reload_args) == 0) {
                *ret = (ControlRequest) { REQUEST_RELOAD, buf + sizeof reload_args - 1,
                                          len - (sizeof reload_args - 1) };
                return 0;
        }
        /* One trailing newline is tolerated, for "echo RELOAD | socat". */
        if (len > 0 && buf[len - 1] == '\n')
                len--;
        static const char outcome[] = "OUTCOME ";
        size_t head = sizeof outcome - 1;
        if (len > head && memcmp(buf, outcome, head) == 0) {
                uint64_t pid, start_time;
                const char *p = buf + head, *end = buf + len;
                if (parse_digits(&p, end, 10, &pid) < 0 || p == end || *p++ != ' ' ||
                    parse_digits(&p, end, 20, &start_time) < 0 || p != end || pid == 0 || pid > INT32_MAX)
                        return -EBADMSG;
                *ret = (ControlRequest) { .kind = REQUEST_OUTCOME, .pid = (pid_t) pid, .start_time = start_time };
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(requests); i++)
                if (strlen(requests[i].text) == len && memcmp(buf, requests[i].text, len) == 0) {
                        *ret = (ControlRequest) { .kind = requests[i].kind };
                        return 0;
                }
        return -EBADMSG;
}

/* Receives one message, closing any fds that came with it without blocking
 * (only possible on kernels without SO_PASSRIGHTS). The control buffer has
 * room for as many fds as one message can carry: fds that do not fit are
 * closed by the kernel, in our thread, with a plain close. */
static ssize_t recv_no_fds(int fd, void *buf, size_t size, int flags) {
        union {
                struct cmsghdr align;
                char raw[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control };
        ssize_t n = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
        if (n < 0)
                return -errno;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                        for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                int k;
                                memcpy(&k, CMSG_DATA(cm) + i * sizeof(int), sizeof k);
                                close_nonblocking(k);
                        }
        return n;
}

/* Closes a connection. Where fds can arrive, the shutdown comes first, so
 * that nothing more can be queued (the sender's sendmsg() then fails with
 * EPIPE). A foreign connection (another uid's, or one we could not look at)
 * then goes to a closer unread (close-async.h): the closer's close releases
 * the fds queued on it, in its thread. Read here, they would come into our
 * fd table, and any close() of an fd of a FUSE file there waits for its
 * server. One of root or our own uid is read to the end and closed here,
 * saving a reload's connection the closer: closing it with messages queued
 * would release their fds in our thread, where the last reference of a
 * lingering socket waits out its SO_LINGER. The reading is bounded, and
 * after a shutdown an empty message reads as the end of the queue. */
static void close_conn_fd(Control *c, int fd, bool foreign) {
        char buf[DISCARD_SIZE];
        bool unread = foreign;
        if (c->takes_fds)
                (void) shutdown(fd, SHUT_RDWR);
        /* While the closers are saturated, fds read here would be held in
         * handoff (close-async.h), up to 4096 messages' worth: the socket
         * goes to a closer unread instead, one fd held. */
        for (int i = 0; c->takes_fds && !foreign && i < 4096; i++) {
                if (close_async_saturated()) {
                        unread = true;
                        break;
                }
                if (recv_no_fds(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0)
                        break;
        }
        if (c->takes_fds && unread)
                close_nonblocking(fd);
        else
                safe_close(fd);
}

/* Listening resumes once nothing pauses it: a full house, a shortage of
 * fds, saturated closers. */
static void resume_listening(Control *c) {
        if (c->n_conns < MAX_CONNECTIONS && !c->backoff_timer && !close_async_waiting(&c->closers))
                (void) sd_event_source_set_enabled(c->listen_source, SD_EVENT_ON);
}

static unsigned max_for(const Control *c, bool root) {
        (void) root;
        return getuid() == 0 ? MAX_CONNECTIONS : MAX_PER_UID;
}

static unsigned count_for(const Control *c, bool root) {
        return root ? c->n_root : c->n_conns - c->n_root;
}

static void conn_free(ControlConn *k) {
        Control *c = k->control;
        for (ControlConn **p = &c->conns; *p; p = &(*p)->next)
                if (*p == k) {
                        *p = k->next;
                        break;
                }
        if (c->n_conns-- == MAX_CONNECTIONS)
                resume_listening(c);
        if (k->root)
                c->n_root--;
        sd_event_source_disable_unref(k->io);
        sd_event_source_disable_unref(k->timer);
        close_conn_fd(c, k->fd, false);
        free(k);
}

/* Sends one reply message of any size. A SOCK_SEQPACKET message must fit
 * the socket's send buffer; a large one (a status with many sockets) gets a
 * larger buffer first. */
static int send_reply(int fd, const char *buf, size_t n) {
        int sndbuf = 0;
        socklen_t l = sizeof sndbuf;
        if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &l) >= 0 && (size_t) sndbuf < n + 4096) {
                int want = n + 4096 > INT32_MAX / 2 ? INT32_MAX / 2 : (int) (n + 4096);
                if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want) < 0)
                        (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
        }
        /* Nonblocking: a client that does not read loses its answer, not us. */
        if (send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                return -errno;
        return 0;
}

void control_reply(Control *c, ControlConn *k, const char *fmt, ...) {
        _cleanup_free_ char *buf = NULL;
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&buf, fmt, ap);
        va_end(ap);
        (void) c;
        int r = n < 0 ? -ENOMEM : send_reply(k->fd, buf, (size_t) n);
        if (r < 0)
                log_debug_errno(r, "Failed to answer control client: %m");
        conn_free(k);
}

static int on_conn_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        ControlConn *k = userdata;
        (void) s;
        (void) usec;
        log_debug("Dropped control client: no request within %llus.",
                  (unsigned long long) (REQUEST_TIMEOUT / USEC_PER_SEC));
        conn_free(k);
        return 0;
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ControlConn *k = userdata;
        Control *c = k->control;
        /* One loop, one request at a time: static spares the stack 64 KiB. */
        static char buf[CONTROL_MAX_REQUEST + 1];

        if (k->waiting) {
                /* The only thing a waiting client can say is goodbye: a
                 * close (HUP), not a shutdown(SHUT_WR) after its request,
                 * as "echo RELOAD | socat" does. That one still gets its
                 * answer, and is no longer read (a closed side reads as
                 * readable for ever); HUP and ERR come all the same. */
                char discard[DISCARD_SIZE];
                ssize_t n = 0;
                if (revents & (EPOLLHUP | EPOLLERR))
                        conn_free(k);
                else if ((revents & EPOLLRDHUP) || (n = recv_no_fds(fd, discard, sizeof discard, MSG_DONTWAIT)) == 0)
                        (void) sd_event_source_set_io_events(s, 0);
                else if (n < 0 && n != -EAGAIN && n != -EINTR)
                        conn_free(k);
                return 0;
        }

        ssize_t n = recv_no_fds(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
        if (n == -EAGAIN || n == -EINTR)
                return 0;
        if (n <= 0) {
                conn_free(k);
                return 0;
        }
        if ((size_t) n > CONTROL_MAX_REQUEST) {
                log_debug("Dropped control request of %zd bytes.", n);
                control_reply(c, k, "ERROR request too long");
                return 0;
        }
        ControlRequest req;
        if (control_parse_request(buf, (size_t) n, &req) < 0) {
                log_debug("Dropped unknown control request.");
                control_reply(c, k, "ERROR unknown request");
                return 0;
        }
        k->timer = sd_event_source_disable_unref(k->timer);
        c->fn(c, k, &req, c->userdata);
        return 0;
}

/* Out of fds, accept() fails with EMFILE while the connection stays queued:
 * the listening socket stays readable and the loop would spin on it. So
 * the spare fd is given up to take the connection off the queue, answer it
 * and close it, and taken back; if it cannot be had back, listening rests
 * for a moment. Logged once per shortage. */
static int on_backoff(sd_event_source *s, uint64_t usec, void *userdata) {
        Control *c = userdata;
        (void) s;
        (void) usec;
        c->backoff_timer = sd_event_source_disable_unref(c->backoff_timer);
        resume_listening(c);
        return 0;
}

static void on_closers_free(void *userdata) {
        Control *c = userdata;
        log_debug("Closer threads have room again: accepting control connections again.");
        resume_listening(c);
}

/* Another uid's connection goes to a closer unread (close_conn_fd()); while
 * the closers are saturated it is held in handoff instead (close-async.h),
 * and so would be every one after it, without bound: listening rests until
 * a closer is free, and the rest wait in the listen backlog, which the
 * kernel bounds. */
static void pause_for_closers(Control *c) {
        if (!c->takes_fds || !close_async_saturated())
                return;
        log_debug("Not accepting control connections until a closer thread is free.");
        (void) sd_event_source_set_enabled(c->listen_source, SD_EVENT_OFF);
        close_async_wait(&c->closers, on_closers_free, c);
}

static int open_spare(int min_fd) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = fd_move_above(fd, min_fd);
        return r < 0 ? fd : r; /* a low spare is still a spare */
}

static void refuse_for_lack_of_fds(Control *c, int error) {
        if (!c->out_of_fds)
                log_warning_errno(error, "Out of file descriptors: control requests are refused until some are "
                                         "free: %m");
        c->out_of_fds = true;

        if (c->spare_fd >= 0) {
                c->spare_fd = safe_close(c->spare_fd);
                int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd >= 0) {
                        static const char msg[] = "ERROR handoff is out of file descriptors";
                        char buf[DISCARD_SIZE];
                        /* Read the request first: a close with unread
                         * data resets the connection, reply and all. */
                        (void) recv_no_fds(fd, buf, sizeof buf, MSG_DONTWAIT);
                        (void) send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                        close_conn_fd(c, fd, true);
                }
                int r = open_spare(0);
                if (r >= 0) {
                        c->spare_fd = r;
                        return;
                }
        }
        /* No spare: rest, and try again. */
        (void) sd_event_source_set_enabled(c->listen_source, SD_EVENT_OFF);
        if (!c->backoff_timer &&
            event_add_time_relative(c->event, &c->backoff_timer, EMFILE_BACKOFF, 10 * USEC_PER_MSEC, on_backoff, c) < 0)
                c->backoff_timer = NULL;
        if (c->spare_fd < 0) {
                int r = open_spare(0);
                if (r >= 0)
                        c->spare_fd = r;
        }
}

static void refuse_peer(Control *c, const struct ucred *uc, const char *why) {
        /* The first one is worth a warning; a flood is not worth a log flood. */
        log_full_errno(c->n_refused++ == 0 ? LOG_WARNING : LOG_DEBUG, 0,
                       "Refused a control connection from pid %d, uid %u: %s.", (int) uc->pid, (unsigned) uc->uid,
                       why);
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Control *c = userdata;
        (void) s;
        (void) revents;

        int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                        refuse_for_lack_of_fds(c, errno);
                else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_debug_errno(errno, "Failed to accept control connection: %m");
                return 0;
        }
        if (c->out_of_fds) {
                log_info("File descriptors are available again: control requests are served.");
                c->out_of_fds = false;
        }
        if (c->spare_fd < 0) {
                int r = open_spare(0);
                if (r >= 0)
                        c->spare_fd = r;
        }

        /* Who it is decides before it costs a slot: another user's
         * connection is closed at once, so a flood of them takes no slot
         * of root's or ours. (Where that close has to wait for a free
         * closer, listening rests meanwhile, and root and we wait in the
         * backlog with the rest: pause_for_closers().) */
        struct ucred uc = { .pid = 0, .uid = (uid_t) -1 };
        socklen_t len = sizeof uc;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 || (uc.uid != 0 && uc.uid != getuid())) {
                refuse_peer(c, &uc, "only root and handoff's own uid may use the control socket");
                close_conn_fd(c, cfd, true);
                pause_for_closers(c);
                return 0;
        }
        bool root = uc.uid == 0 && getuid() != 0;
        if (count_for(c, root) >= max_for(c, root)) {
                refuse_peer(c, &uc, "too many control connections from this uid");
                char buf[DISCARD_SIZE];
                (void) recv_no_fds(cfd, buf, sizeof buf, MSG_DONTWAIT);
                static const char msg[] = "ERROR too many control connections from your uid";
                (void) send(cfd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                close_conn_fd(c, cfd, false);
                return 0;
        }

        ControlConn *k = calloc(1, sizeof *k);
        if (!k) {
                close_conn_fd(c, cfd, false);
                return 0;
        }
        *k = (ControlConn) { .control = c, .fd = cfd, .root = root, .next = c->conns };
        c->conns = k;
        c->n_root += root;
        if (++c->n_conns == MAX_CONNECTIONS) {
                log_warning("%d control clients connected; the next ones wait.", MAX_CONNECTIONS);
                (void) sd_event_source_set_enabled(c->listen_source, SD_EVENT_OFF);
        }
        if (sd_event_add_io(c->event, &k->io, k->fd, EPOLLIN | EPOLLRDHUP, on_conn_io, k) < 0 ||
            event_add_time_relative(c->event, &k->timer, REQUEST_TIMEOUT, USEC_PER_MSEC, on_conn_timeout, k) < 0)
                conn_free(k);
        return 0;
}

int control_runtime_dir(char **ret) {
        char dir[PATH_MAX];
        bool made_by_us;
        int r = runtime_dir_path(dir, sizeof dir, &made_by_us);
        if (r < 0)
                return r == -ENOENT ? -ENXIO : r;
        char *d = strdup(dir);
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

/* dir is a directory of ours that nobody else may write (created when
 * missing), or -errno with why. */
static int runtime_dir_check(const char *dir, char *why, size_t why_size) {
        struct stat st;
        int r = runtime_dir_make(dir);
        if (r < 0) {
                snprintf(why, why_size, "cannot create %s: %s", dir, strerror(-r));
                return r;
        }
        if (lstat(dir, &st) < 0) {
                r = -errno;
                snprintf(why, why_size, "cannot check %s: %s", dir, strerror(-r));
                return r;
        }
        if (!S_ISDIR(st.st_mode)) {
                snprintf(why, why_size, "%s is not a directory", dir);
                return -ENOTDIR;
        }
        if (!runtime_dir_private(&st, geteuid())) {
                snprintf(why, why_size,
                         "refusing %s: it belongs to uid %u with mode %04o; it must belong to uid %u and be "
                         "writable by nobody else",
                         dir, (unsigned) st.st_uid, (unsigned) (st.st_mode & 07777), (unsigned) geteuid());
                return -EPERM;
        }
        return 0;
}

/* Our name is taken: by a file a process of ours with our pid left behind
 * when it was killed (nobody else can write here), or, in a directory that
 * pid namespaces share, by a live handoff that has our pid in its own
 * namespace. Only the first may be removed. */
static bool socket_is_stale(const struct sockaddr_un *sa) {
        return unix_path_probe(sa, sizeof *sa, SOCK_SEQPACKET) > 0;
}

static int control_address(const char *dir, pid_t pid, struct sockaddr_un *ret) {
        *ret = (struct sockaddr_un) { .sun_family = AF_UNIX };
        int k = snprintf(ret->sun_path, sizeof ret->sun_path, "%s/control.%d", dir, (int) pid);
        return k < 0 || (size_t) k >= sizeof ret->sun_path ? -ENAMETOOLONG : 0;
}

bool control_remove_stale(pid_t pid) {
        _cleanup_free_ char *dir = NULL;
        struct sockaddr_un sa;
        struct stat st;
        /* Only in a directory nobody else may write, as at bind: else what
         * is checked is not what would be removed. */
        if (control_runtime_dir(&dir) < 0 || lstat(dir, &st) < 0 || !runtime_dir_private(&st, geteuid()) ||
            control_address(dir, pid, &sa) < 0 || !socket_is_stale(&sa))
                return false;
        if (unlink(sa.sun_path) < 0) {
                log_debug_errno(errno, "Failed to remove %s: %m", sa.sun_path);
                return false;
        }
        return true;
}

/* Binds fd at <runtime dir>/control.<pid>; or -errno with why. */
static int bind_path(int fd, char *why, size_t why_size, char **ret_path) {
        _cleanup_free_ char *dir = NULL;
        int r = control_runtime_dir(&dir);
        if (r == -ENXIO)
                snprintf(why, why_size, "neither $RUNTIME_DIRECTORY nor $XDG_RUNTIME_DIR is set; RuntimeDirectory= in "
                                        "the unit provides one");
        if (r < 0)
                return r;
        if ((r = runtime_dir_check(dir, why, why_size)) < 0)
                return r;
        struct sockaddr_un sa;
        if (control_address(dir, getpid(), &sa) < 0) {
                snprintf(why, why_size, "a path in %s is too long for a unix socket", dir);
                return -ENAMETOOLONG;
        }
        /* Root and we pass; nobody else needs to reach the file. 0600 from
         * its bind() on, in a directory others may enter (/run/handoff is
         * 0755). */
        r = unix_path_bind_mode(fd, &sa, sizeof sa, SOCK_SEQPACKET, 0600, NULL);
        if (r > 0)
                log_debug("Removing stale control socket %s.", sa.sun_path);
        if (r == -EADDRINUSE)
                snprintf(why, why_size, "%s is in use by a live process (another pid namespace sharing "
                                        "the directory?)", sa.sun_path);
        else if (r < 0)
                snprintf(why, why_size, "cannot bind %s: %s", sa.sun_path, strerror(-r));
        if (r < 0)
                return r;
        if (!(*ret_path = strdup(sa.sun_path))) {
                (void) unlink(sa.sun_path);
                return -ENOMEM;
        }
        return 0;
}

/* Where no path can be had (a read-only /run, our name held by another pid
 * namespace's handoff): an abstract name, @handoff/control/<pid>/<random>,
 * which the client finds as it finds a path, among pid's own fds. Anyone
 * in the network namespace may connect: accept checks the peer's uid as
 * for a path, and the client the pid and uid of the one it reached. The
 * random part keeps two handoffs with the same pid in one network
 * namespace apart, and others from binding our name first; one taken all
 * the same is given up for another (abstract_name_bind()). */
static int bind_abstract(int fd, char ret_name[static sizeof ((struct sockaddr_un) {}).sun_path + 1]) {
        char prefix[sizeof CONTROL_ABSTRACT_PREFIX + 16];
        snprintf(prefix, sizeof prefix, CONTROL_ABSTRACT_PREFIX "%d/", (int) getpid());
        return abstract_name_bind(fd, prefix, ret_name, sizeof ((struct sockaddr_un) {}).sun_path + 1);
}

/* Whether users our user namespace does not map would pass for us on an
 * abstract name: SO_PEERCRED gives each of them as the overflow uid, and
 * ours is that one (nobody, in a user namespace of a container or of
 * PrivateUsers= that maps only some uids). A path keeps them out by its
 * file's owner; an abstract name, open to all, would let them in. */
static bool strangers_pass_for_us(void) {
        unsigned overflow = 65534, inside, outside, count;
        FILE *f = fopen("/proc/sys/kernel/overflowuid", "re");
        if (f) {
                if (fscanf(f, "%u", &overflow) != 1)
                        overflow = 65534;
                fclose(f);
        }
        if (getuid() != overflow)
                return false;
        /* Everyone mapped: only the initial namespace's map, in practice. */
        f = fopen("/proc/self/uid_map", "re");
        if (!f)
                return true;
        bool everyone = fscanf(f, "%u %u %u", &inside, &outside, &count) == 3 && inside == 0 && count == UINT32_MAX;
        fclose(f);
        return !everyone;
}

static int failed(int r) {
        /* Reloads by signal still work: not worth refusing to serve. */
        return log_warning_errno(r, "Failed to open the control socket, \"handoff reload\" will not work: %m");
}

int control_new(sd_event *e, int min_fd, ControlRequestFn fn, void *userdata, Control **ret) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return failed(-errno);
        /* No fds on this socket at all, where the kernel can refuse them.
         * HANDOFF_TEST_PASS_RIGHTS=1 lets them in, so that the tests run the
         * path of older kernels on a newer one too. */
        int zero = 0;
        bool takes_fds = getenv("HANDOFF_TEST_PASS_RIGHTS") ||
                         setsockopt(fd, SOL_SOCKET, SO_PASSRIGHTS, &zero, sizeof zero) < 0;
        char why[PATH_MAX + 256] = "";
        int r = bind_path(fd, why, sizeof why, &path);
        if (r == -ENOMEM)
                return failed(r);
        if (r < 0 && strangers_pass_for_us())
                return log_warning_errno(r, "No control socket (%s; nor an abstract one: this user namespace does "
                                            "not map every user, and those it does not would pass for our uid %u "
                                            "there): \"handoff reload\" and \"handoff status\" will not work; "
                                            "SIGHUP still reloads.", why, (unsigned) getuid());
        if (r < 0) {
                char name[sizeof ((struct sockaddr_un) {}).sun_path + 1];
                int k = bind_abstract(fd, name);
                if (k >= 0 && !(path = strdup(name)))
                        return failed(-ENOMEM);
                if (k < 0)
                        return log_warning_errno(k, "No control socket (%s; nor an abstract one: %m): \"handoff "
                                                    "reload\" and \"handoff status\" will not work; SIGHUP still "
                                                    "reloads.", why);
                log_notice("No control socket in the runtime directory (%s): listening on %s instead, which "
                           "\"handoff reload\" and \"handoff status\" reach from this network namespace only.",
                           why, name);
        }
        bool abstract = path[0] == '@';
        if (listen(fd, SOMAXCONN) < 0 || (r = fd_move_above(fd, min_fd)) < 0) {
                r = r < 0 ? r : -errno;
                if (!abstract)
                        (void) unlink(path);
                return failed(r);
        }
        fd = r;

        Control *c = calloc(1, sizeof *c);
        if (!c) {
                if (!abstract)
                        (void) unlink(path);
                return failed(-ENOMEM);
        }
        *c = (Control) { .event = e, .fd = TAKE_FD(fd), .fn = fn, .userdata = userdata, .takes_fds = takes_fds,
                         .path = TAKE_PTR(path), .owner = getpid(), .spare_fd = open_spare(min_fd) };
        r = sd_event_add_io(e, &c->listen_source, c->fd, EPOLLIN, on_accept, c);
        if (r < 0) {
                control_free(c);
                return failed(r);
        }
        log_debug("Control socket: %s%s.", c->path, takes_fds ? " (this kernel cannot refuse fds on it)" : "");
        *ret = c;
        return 0;
}

Control *control_free(Control *c) {
        if (!c)
                return NULL;
        while (c->conns)
                conn_free(c->conns);
        sd_event_source_disable_unref(c->listen_source);
        sd_event_source_disable_unref(c->backoff_timer);
        close_async_wait_cancel(&c->closers);
        /* Ours alone to remove: a forked child that frees its copy of the
         * loop must not take the name away from us. */
        if (c->path && c->path[0] == '/' && c->owner == getpid() && unlink(c->path) < 0 && errno != ENOENT)
                log_debug_errno(errno, "Failed to remove %s: %m", c->path);
        free(c->path);
        /* Connections still in its backlog go with it, and the messages
         * queued on them: with their fds, where fds can arrive. */
        if (c->takes_fds)
                close_nonblocking(c->fd);
        else
                safe_close(c->fd);
        safe_close(c->spare_fd);
        free(c);
        return NULL;
}

void control_wait(Control *c, ControlConn *k, WaitFor w) {
        (void) c;
        k->waiting = true;
        k->wait_for = w;
}

static void answer_waiting(Control *c, WaitFor w, const char *reply) {
        for (ControlConn *k = c->conns, *next; k; k = next) {
                next = k->next;
                if (k->waiting && k->wait_for == w)
                        control_reply(c, k, "%s", reply);
        }
}

void control_reload_started(Control *c) {
        for (ControlConn *k = c->conns; k; k = k->next)
                if (k->waiting && k->wait_for == WAIT_NEXT)
                        k->wait_for = WAIT_CURRENT;
}

void control_reload_ended(Control *c, const char *reply) {
        answer_waiting(c, WAIT_CURRENT, reply);
}

void control_answer_next(Control *c, const char *reply) {
        answer_waiting(c, WAIT_NEXT, reply);
}

void control_mark_resend(ControlConn *k) {
        k->resend = true;
}

void control_pass_on(Control *c, pid_t pid) {
        for (ControlConn *k = c->conns, *next; k; k = next) {
                next = k->next;
                if (k->waiting && k->wait_for == WAIT_NEXT)
                        control_reply(c, k, "%s %d", k->resend ? "FOLLOW" : "JOIN", (int) pid);
        }
}
