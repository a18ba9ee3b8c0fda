/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "control.h"
#include "log.h"
#include "time-util.h"

/* A client that connects and never writes is dropped after this, and at most
 * this many are served at once (the rest wait in the listen backlog): a stuck
 * or hostile client cannot make handoff hold fds without bound. Waiting for a
 * reload has no deadline of its own: the reload's start timeout bounds it. */
#define REQUEST_TIMEOUT (5 * USEC_PER_SEC)
#define MAX_CONNECTIONS 64

struct ControlConn {
        Control *control;
        int fd;
        bool waiting;
        bool allowed;           /* our uid or root (SO_PEERCRED at accept) */
        WaitFor wait_for;
        sd_event_source *io;
        sd_event_source *timer;
        ControlConn *next;
};

struct Control {
        sd_event *event;
        int fd;
        sd_event_source *listen_source;
        ControlConn *conns;
        unsigned n_conns;
        ControlRequestFn fn;
        void *userdata;
};

int control_parse_request(const char *buf, size_t len, RequestKind *ret) {
        static const struct {
                const char *text;
                RequestKind kind;
        } requests[] = {
                { "RELOAD", REQUEST_RELOAD },
                { "JOIN", REQUEST_JOIN },
                { "STATUS", REQUEST_STATUS },
                { "STATUS json", REQUEST_STATUS_JSON },
        };
        /* One trailing newline is tolerated, for "echo RELOAD | socat". */
        if (len > 0 && buf[len - 1] == '\n')
                len--;
        for (size_t i = 0; i < ELEMENTSOF(requests); i++)
                if (strlen(requests[i].text) == len && memcmp(buf, requests[i].text, len) == 0) {
                        *ret = requests[i].kind;
                        return 0;
                }
        return -EBADMSG;
}

static void conn_free(ControlConn *k) {
        Control *c = k->control;
        for (ControlConn **p = &c->conns; *p; p = &(*p)->next)
                if (*p == k) {
                        *p = k->next;
                        break;
                }
        if (c->n_conns-- == MAX_CONNECTIONS)
                (void) sd_event_source_set_enabled(c->listen_source, SD_EVENT_ON);
        sd_event_source_disable_unref(k->io);
        sd_event_source_disable_unref(k->timer);
        safe_close(k->fd);
        free(k);
}

void control_reply(Control *c, ControlConn *k, const char *fmt, ...) {
        char buf[CONTROL_MAX_REPLY];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        (void) c;
        if (n < 0)
                n = 0;
        if ((size_t) n >= sizeof buf)
                n = sizeof buf - 1;
        /* Nonblocking: a client that does not read loses its answer, not us. */
        if (send(k->fd, buf, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                log_debug_errno(errno, "Failed to answer control client: %m");
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
        char buf[CONTROL_MAX_REQUEST + 1];
        (void) s;

        if (k->waiting) {
                /* The only thing a waiting client can say is goodbye. */
                if (revents & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
                        conn_free(k);
                else if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0)
                        conn_free(k);
                return 0;
        }

        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
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
        /* Refused only now that the request is read: closing a connection
         * with unread data resets it, and the client would never see why. */
        if (!k->allowed) {
                log_warning("Refused a control request from another user.");
                control_reply(c, k, "ERROR permission denied");
                return 0;
        }
        RequestKind kind;
        if (control_parse_request(buf, (size_t) n, &kind) < 0) {
                log_debug("Dropped unknown control request.");
                control_reply(c, k, "ERROR unknown request");
                return 0;
        }
        k->timer = sd_event_source_disable_unref(k->timer);
        c->fn(c, k, kind, c->userdata);
        return 0;
}

static bool peer_allowed(int fd) {
        struct ucred uc;
        socklen_t len = sizeof uc;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
                return false;
        return uc.uid == getuid() || uc.uid == 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Control *c = userdata;
        (void) s;
        (void) revents;

        _cleanup_close_ int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        log_debug_errno(errno, "Failed to accept control connection: %m");
                return 0;
        }
        ControlConn *k = calloc(1, sizeof *k);
        if (!k)
                return 0;
        *k = (ControlConn) { .control = c, .fd = TAKE_FD(cfd), .allowed = false, .next = c->conns };
        k->allowed = peer_allowed(k->fd);
        c->conns = k;
        if (++c->n_conns == MAX_CONNECTIONS) {
                log_warning("%d control clients connected; the next ones wait.", MAX_CONNECTIONS);
                (void) sd_event_source_set_enabled(c->listen_source, SD_EVENT_OFF);
        }
        if (sd_event_add_io(c->event, &k->io, k->fd, EPOLLIN | EPOLLRDHUP, on_conn_io, k) < 0 ||
            sd_event_add_time_relative(c->event, &k->timer, CLOCK_MONOTONIC, REQUEST_TIMEOUT, USEC_PER_MSEC,
                                       on_conn_timeout, k) < 0)
                conn_free(k);
        return 0;
}

int control_new(sd_event *e, int min_fd, ControlRequestFn fn, void *userdata, Control **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int k = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, CONTROL_ADDRESS_FMT, (int) getpid());
        socklen_t len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + (size_t) k);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, len) < 0 || listen(fd, SOMAXCONN) < 0)
                return -errno;
        int r = fd_move_above(fd, min_fd);
        if (r < 0)
                return r;
        fd = r;

        Control *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (Control) { .event = e, .fd = TAKE_FD(fd), .fn = fn, .userdata = userdata };
        r = sd_event_add_io(e, &c->listen_source, c->fd, EPOLLIN, on_accept, c);
        if (r < 0) {
                control_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

Control *control_free(Control *c) {
        if (!c)
                return NULL;
        while (c->conns)
                conn_free(c->conns);
        sd_event_source_disable_unref(c->listen_source);
        safe_close(c->fd);
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
