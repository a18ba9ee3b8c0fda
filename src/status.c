/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "status.h"

void socket_describe(int fd, char *buf, size_t size) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int type = 0;
        socklen_t tlen = sizeof type;
        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0) {
                snprintf(buf, size, "unknown");
                return;
        }
        bool dgram = type == SOCK_DGRAM;
        char host[INET6_ADDRSTRLEN];
        if (ss.ss_family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *) &ss;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
                snprintf(buf, size, "%s %s:%u", dgram ? "udp" : "tcp", host, ntohs(in->sin_port));
        } else if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
                snprintf(buf, size, "%s [%s]:%u", dgram ? "udp" : "tcp", host, ntohs(in6->sin6_port));
        } else if (ss.ss_family == AF_UNIX) {
                struct sockaddr_un *un = (struct sockaddr_un *) &ss;
                size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
                const char *kind = dgram ? "unix-dgram" : "unix";
                if (n > 0 && un->sun_path[0] == '\0')
                        snprintf(buf, size, "%s @%.*s", kind, (int) (n - 1), un->sun_path + 1);
                else
                        snprintf(buf, size, "%s %.*s", kind, (int) strnlen(un->sun_path, n), un->sun_path);
        } else
                snprintf(buf, size, "family %d", ss.ss_family);
}

/* An appender that never overruns and remembers that it had to cut. */
typedef struct Out {
        char *buf;
        size_t size, n;
        bool truncated;
} Out;

static void put(Out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Out *o, const char *fmt, ...) {
        if (o->n >= o->size)
                return;
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(o->buf + o->n, o->size - o->n, fmt, ap);
        va_end(ap);
        if (k < 0 || (size_t) k >= o->size - o->n) {
                o->truncated = true;
                o->n = o->size;
        } else
                o->n += (size_t) k;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void put_json_string(Out *o, const char *s) {
        put(o, "\"");
        for (; s && *s; s++) {
                unsigned char c = (unsigned char) *s;
                if (c == '"' || c == '\\')
                        put(o, "\\%c", c);
                else if (c < 0x20)
                        put(o, "\\u%04x", c);
                else
                        put(o, "%c", c);
        }
        put(o, "\"");
}

int status_format_text(const ServiceStatus *st, char *buf, size_t size) {
        Out o = { buf, size, 0, false };
        char d1[32], d2[32];
        put(&o, "handoff %s, pid %d, %s mode, %s\n", st->version, (int) st->pid, st->mode, st->state);
        if (st->handed_over_to)
                put(&o, "handed over to handoff pid %d\n", (int) st->handed_over_to);
        if (st->predecessor_draining)
                put(&o, "previous handoff still draining\n");
        for (size_t i = 0; i < st->n_gens; i++) {
                const StatusGeneration *g = &st->gens[i];
                put(&o, "%-9s generation %u, pid %d%s, for %s, %u process%s", g->role, g->number, (int) g->pid,
                    g->main_exited ? " (exited)" : "", format_duration(d1, sizeof d1, g->age), g->processes,
                    g->processes == 1 ? "" : "es");
                if (g->memory != UINT64_MAX)
                        put(&o, ", %.1f MiB", (double) g->memory / (1024.0 * 1024.0));
                if (g->kill_in != USEC_INFINITY)
                        put(&o, ", SIGKILL in %s", format_duration(d2, sizeof d2, g->kill_in));
                put(&o, "\n");
        }
        for (size_t i = 0; i < st->n_sockets; i++)
                put(&o, "socket    fd %d, name %s, %s\n", st->sockets[i].fd, st->sockets[i].name,
                    st->sockets[i].address);
        put(&o, "reloads   %u ok, %u failed%s%s", st->reloads_ok, st->reloads_failed,
            st->last_result && *st->last_result ? "; last: " : "", st->last_result ? st->last_result : "");
        if (o.n > 0 && o.n < o.size && buf[o.n - 1] == '\n')
                buf[--o.n] = '\0';
        return o.truncated ? -ENOBUFS : (int) o.n;
}

int status_format_json(const ServiceStatus *st, char *buf, size_t size) {
        Out o = { buf, size, 0, false };
        put(&o, "{\"pid\":%d,\"version\":", (int) st->pid);
        put_json_string(&o, st->version);
        put(&o, ",\"mode\":");
        put_json_string(&o, st->mode);
        put(&o, ",\"state\":");
        put_json_string(&o, st->state);
        put(&o, ",\"handed_over_to\":%d,\"predecessor_draining\":%s,\"generations\":[", (int) st->handed_over_to,
            st->predecessor_draining ? "true" : "false");
        for (size_t i = 0; i < st->n_gens; i++) {
                const StatusGeneration *g = &st->gens[i];
                put(&o, "%s{\"number\":%u,\"pid\":%d,\"role\":", i ? "," : "", g->number, (int) g->pid);
                put_json_string(&o, g->role);
                put(&o, ",\"age_ms\":%llu,\"main_exited\":%s,\"processes\":%u", (unsigned long long) (g->age / USEC_PER_MSEC),
                    g->main_exited ? "true" : "false", g->processes);
                if (g->memory != UINT64_MAX)
                        put(&o, ",\"memory_bytes\":%llu", (unsigned long long) g->memory);
                if (g->kill_in != USEC_INFINITY)
                        put(&o, ",\"kill_in_ms\":%llu", (unsigned long long) (g->kill_in / USEC_PER_MSEC));
                put(&o, "}");
        }
        put(&o, "],\"sockets\":[");
        for (size_t i = 0; i < st->n_sockets; i++) {
                put(&o, "%s{\"fd\":%d,\"name\":", i ? "," : "", st->sockets[i].fd);
                put_json_string(&o, st->sockets[i].name);
                put(&o, ",\"address\":");
                put_json_string(&o, st->sockets[i].address);
                put(&o, "}");
        }
        put(&o, "],\"reloads_ok\":%u,\"reloads_failed\":%u,\"last_result\":", st->reloads_ok, st->reloads_failed);
        put_json_string(&o, st->last_result ? st->last_result : "");
        put(&o, "}");
        return o.truncated ? -ENOBUFS : (int) o.n;
}

int status_format_alloc(const ServiceStatus *st, bool json, char **ret) {
        for (size_t size = 4096;; size *= 2) {
                char *buf = malloc(size);
                if (!buf)
                        return -ENOMEM;
                int n = json ? status_format_json(st, buf, size) : status_format_text(st, buf, size);
                if (n >= 0) {
                        *ret = buf;
                        return n;
                }
                free(buf);
                if (n != -ENOBUFS || size > 64 * 1024 * 1024)
                        return n == -ENOBUFS ? -ENOMEM : n;
        }
}
