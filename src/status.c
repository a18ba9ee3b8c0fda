/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "status.h"

StatusGeneration *status_add_generation(ServiceStatus *st) {
        return st->n_gens < STATUS_MAX_GENS ? &st->gens[st->n_gens++] : NULL;
}

usec_t status_time_left(usec_t deadline, usec_t now) {
        return deadline == USEC_INFINITY ? USEC_INFINITY : deadline > now ? deadline - now : 0;
}

static const char *family_name(int family) {
        switch (family) {
        case AF_INET:
                return "inet";
        case AF_INET6:
                return "inet6";
        case AF_UNIX:
                return "unix";
        default:
                return "unknown";
        }
}

static const char *type_name(int type) {
        switch (type) {
        case SOCK_STREAM:
                return "stream";
        case SOCK_DGRAM:
                return "dgram";
        case SOCK_SEQPACKET:
                return "seqpacket";
        default:
                return "unknown";
        }
}

void status_socket_from_sockaddr(StatusSocket *k, const struct sockaddr *sa, socklen_t len, int type) {
        bool dgram = type == SOCK_DGRAM;
        k->family = sa->sa_family;
        k->type = type;
        k->host[0] = k->path[0] = '\0';
        k->port = 0;
        k->path_len = 0;
        k->abstract = false;
        if (sa->sa_family == AF_INET && len >= (socklen_t) sizeof(struct sockaddr_in)) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                inet_ntop(AF_INET, &in->sin_addr, k->host, sizeof k->host);
                k->port = ntohs(in->sin_port);
                snprintf(k->address, sizeof k->address, "%s %s:%u", dgram ? "udp" : "tcp", k->host, k->port);
        } else if (sa->sa_family == AF_INET6 && len >= (socklen_t) sizeof(struct sockaddr_in6)) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, k->host, sizeof k->host);
                k->port = ntohs(in6->sin6_port);
                snprintf(k->address, sizeof k->address, "%s [%s]:%u", dgram ? "udp" : "tcp", k->host, k->port);
        } else if (sa->sa_family == AF_UNIX) {
                const struct sockaddr_un *un = (const struct sockaddr_un *) sa;
                size_t off = offsetof(struct sockaddr_un, sun_path);
                size_t n = (size_t) len > off ? (size_t) len - off : 0;
                if (n > sizeof un->sun_path)
                        n = sizeof un->sun_path;
                const char *kind = dgram ? "unix-dgram" : "unix";
                if (n > 0 && un->sun_path[0] == '\0') {
                        /* Abstract: the name is every byte after the NUL,
                         * NULs included. */
                        k->abstract = true;
                        k->path_len = n - 1;
                        memcpy(k->path, un->sun_path + 1, k->path_len);
                        snprintf(k->address, sizeof k->address, "%s @%.*s", kind, (int) (n - 1), un->sun_path + 1);
                } else {
                        k->path_len = strnlen(un->sun_path, n);
                        memcpy(k->path, un->sun_path, k->path_len);
                        snprintf(k->address, sizeof k->address, "%s %.*s", kind, (int) k->path_len, un->sun_path);
                }
                k->path[k->path_len] = '\0';
        } else {
                k->family = 0; /* or an inet address cut short: nothing to take apart */
                snprintf(k->address, sizeof k->address, "family %d", sa->sa_family);
        }
}

void socket_inspect(int fd, StatusSocket *k) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int type = 0;
        socklen_t tlen = sizeof type;
        if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0) {
                k->family = k->type = 0;
                k->host[0] = k->path[0] = '\0';
                k->port = 0;
                k->path_len = 0;
                k->abstract = false;
                snprintf(k->address, sizeof k->address, "unknown");
                return;
        }
        status_socket_from_sockaddr(k, (struct sockaddr *) &ss, len, type);
}

const char *status_format_timestamp(char *buf, size_t size, usec_t mono, usec_t now, usec_t now_realtime) {
        usec_t real = mono <= now ? (now - mono > now_realtime ? 0 : now_realtime - (now - mono))
                                  : now_realtime + (mono - now);
        time_t sec = (time_t) (real / USEC_PER_SEC);
        struct tm tm;
        char date[32];
        if (!gmtime_r(&sec, &tm) || strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                snprintf(date, sizeof date, "1970-01-01T00:00:00");
        snprintf(buf, size, "%s.%06lluZ", date, (unsigned long long) (real % USEC_PER_SEC));
        return buf;
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

/* The length of the valid UTF-8 sequence at s (at most n bytes), 0 if
 * there is none: JSON text must be UTF-8, and paths need not be. */
static size_t utf8_valid(const unsigned char *s, size_t n) {
        size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
        if (len == 0 || s[0] > 0xf4 || (s[0] & 0xfe) == 0xc0 || len > n)
                return 0;
        uint32_t cp = s[0] & (0x7f >> len);
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        /* No overlong forms, surrogates or code points past U+10FFFF. */
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

/* A JSON string of n bytes: quotes, backslashes and control characters
 * (NULs of an abstract socket name too) escaped, a byte that is not UTF-8
 * replaced by U+FFFD. */
static void put_json_bytes(Out *o, const char *s, size_t n) {
        put(o, "\"");
        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char) s[i];
                if (c == '"' || c == '\\')
                        put(o, "\\%c", c);
                else if (c < 0x20 || c == 0x7f)
                        put(o, "\\u%04x", c);
                else if (c < 0x80)
                        put(o, "%c", c);
                else {
                        size_t l = utf8_valid((const unsigned char *) s + i, n - i);
                        if (l == 0)
                                put(o, "\\ufffd");
                        else
                                put(o, "%.*s", (int) l, s + i);
                        i += l ? l : 1;
                        continue;
                }
                i++;
        }
        put(o, "\"");
}

static void put_json_string(Out *o, const char *s) {
        put_json_bytes(o, s ? s : "", s ? strlen(s) : 0);
}

/* "NAME_timestamp":"2026-...Z","NAME_timestamp_monotonic":N, both null
 * for a time not known (0), after a comma. */
static void put_json_time(Out *o, const ServiceStatus *st, const char *name, usec_t mono) {
        char d[64];
        if (mono == 0) {
                put(o, ",\"%s\":null,\"%s_monotonic\":null", name, name);
                return;
        }
        put(o, ",\"%s\":\"%s\",\"%s_monotonic\":%llu", name,
            status_format_timestamp(d, sizeof d, mono, st->now, st->now_realtime), name, (unsigned long long) mono);
}

int status_format_text(const ServiceStatus *st, char *buf, size_t size) {
        Out o = { buf, size, 0, false };
        char d1[32], d2[32];
        /* The first column: as wide as its longest entry, at least 9. */
        int w = 9;
        for (size_t i = 0; i < st->n_gens; i++)
                if (st->gens[i].role && (int) strlen(st->gens[i].role) > w)
                        w = (int) strlen(st->gens[i].role);
        put(&o, "handoff %s, pid %d, %s mode, %s\n", st->version, (int) st->pid, st->mode, st->state);
        if (st->handed_over_to)
                put(&o, "handed over to handoff pid %d%s\n", (int) st->handed_over_to,
                    st->handed_over_exited ? " (exited)" : "");
        if (st->predecessor_draining)
                put(&o, "previous handoff still draining\n");
        if (st->standby)
                put(&o, "%-*s handoff pid %d, started ahead for the next reload\n", w, "standby", (int) st->standby);
        for (size_t i = 0; i < st->n_gens; i++) {
                const StatusGeneration *g = &st->gens[i];
                put(&o, "%-*s generation %u%s, pid %d%s, for %s, %u process%s", w, g->role, g->number,
                    g->previous_handoff ? " (the previous handoff's)" : g->orphaned ? " (a dead next handoff's)" : "",
                    (int) g->pid,
                    g->main_exited ? " (exited)" : "", format_duration(d1, sizeof d1, g->age), g->processes,
                    g->processes == 1 ? "" : "es");
                if (g->memory != UINT64_MAX)
                        put(&o, ", %.1f MiB", (double) g->memory / (1024.0 * 1024.0));
                if (g->kill_in != USEC_INFINITY)
                        put(&o, ", SIGKILL in %s", format_duration(d2, sizeof d2, g->kill_in));
                put(&o, "\n");
        }
        for (size_t i = 0; i < st->n_sockets; i++)
                put(&o, "%-*s fd %d, name %s, %s\n", w, "socket", st->sockets[i].fd, st->sockets[i].name,
                    st->sockets[i].address);
        put(&o, "%-*s %u ok, %u failed%s%s", w, "reloads", st->reloads_ok, st->reloads_failed,
            st->last_result && *st->last_result ? "; last: " : "", st->last_result ? st->last_result : "");
        if (o.n > 0 && o.n < o.size && buf[o.n - 1] == '\n')
                buf[--o.n] = '\0';
        return o.truncated ? -ENOBUFS : (int) o.n;
}

static void put_json_generation(Out *o, const ServiceStatus *st, const StatusGeneration *g) {
        put(o, "{\"number\":%u,\"role\":", g->number);
        put_json_string(o, g->role);
        put(o, ",\"pid\":%d,\"ready\":%s,\"main_exited\":%s,\"previous_handoff\":%s,\"orphaned\":%s,"
            "\"processes\":%u", (int) g->pid, g->ready ? "true" : "false", g->main_exited ? "true" : "false",
            g->previous_handoff ? "true" : "false", g->orphaned ? "true" : "false", g->processes);
        if (g->memory != UINT64_MAX)
                put(o, ",\"memory_bytes\":%llu", (unsigned long long) g->memory);
        else
                put(o, ",\"memory_bytes\":null");
        put_json_time(o, st, "start_timestamp", g->started);
        put_json_time(o, st, "ready_timestamp", g->ready);
        put(o, ",\"age_ms\":%llu", (unsigned long long) (g->age / USEC_PER_MSEC));
        if (g->kill_in != USEC_INFINITY)
                put(o, ",\"kill_in_ms\":%llu}", (unsigned long long) (g->kill_in / USEC_PER_MSEC));
        else
                put(o, ",\"kill_in_ms\":null}");
}

static void put_json_listener(Out *o, const StatusSocket *k) {
        put(o, "{\"fd\":%d,\"name\":", k->fd);
        put_json_string(o, k->name);
        put(o, ",\"family\":\"%s\",\"type\":\"%s\"", family_name(k->family), type_name(k->type));
        if (k->family == AF_INET || k->family == AF_INET6) {
                put(o, ",\"address\":");
                put_json_string(o, k->host);
                put(o, ",\"port\":%u,\"path\":null,\"abstract\":null}", k->port);
        } else if (k->family == AF_UNIX) {
                put(o, ",\"address\":null,\"port\":null,\"path\":");
                put_json_bytes(o, k->path, k->path_len);
                put(o, ",\"abstract\":%s}", k->abstract ? "true" : "false");
        } else
                put(o, ",\"address\":null,\"port\":null,\"path\":null,\"abstract\":null}");
}

int status_format_json(const ServiceStatus *st, char *buf, size_t size) {
        Out o = { buf, size, 0, false };
        put(&o, "{\"schema_version\":%d,\"version\":", STATUS_SCHEMA_VERSION);
        put_json_string(&o, st->version);
        put(&o, ",\"pid\":%d,\"mode\":", (int) st->pid);
        put_json_string(&o, st->mode);
        put(&o, ",\"state\":");
        put_json_string(&o, st->state);
        put_json_time(&o, st, "timestamp", st->now);
        put_json_time(&o, st, "start_timestamp", st->started);
        put(&o, ",\"handed_over_to\":%d,\"handed_over_to_exited\":%s,\"predecessor_draining\":%s,\"standby_pid\":",
            (int) st->handed_over_to, !st->handed_over_to ? "null" : st->handed_over_exited ? "true" : "false",
            st->predecessor_draining ? "true" : "false");
        if (st->standby)
                put(&o, "%d", (int) st->standby);
        else
                put(&o, "null");
        put(&o, ",\"generations\":[");
        for (size_t i = 0; i < st->n_gens; i++) {
                put(&o, "%s", i ? "," : "");
                put_json_generation(&o, st, &st->gens[i]);
        }
        put(&o, "],\"listeners\":[");
        for (size_t i = 0; i < st->n_sockets; i++) {
                put(&o, "%s", i ? "," : "");
                put_json_listener(&o, &st->sockets[i]);
        }
        /* Schema 0's form of the listeners, kept for the tools that read it. */
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
        if (st->last_reload_ended == 0)
                put(&o, ",\"last_reload\":null");
        else {
                put(&o, ",\"last_reload\":{\"generation\":%u,\"result\":\"%s\"", st->last_reload_generation,
                    st->last_reload_ok ? "ok" : "failed");
                put_json_time(&o, st, "end_timestamp", st->last_reload_ended);
                put(&o, ",\"duration_usec\":%llu}", (unsigned long long) st->last_reload_duration);
        }
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
