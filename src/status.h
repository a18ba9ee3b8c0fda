/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "time-util.h"

/* What "handoff status" shows: a snapshot the supervisor fills in, and its
 * text and JSON forms (pure functions, for the unit tests). */

#define STATUS_MAX_GENS 16
#define STATUS_MAX_SOCKETS 16

/* The JSON's schema: raised when a member is removed or changes its meaning
 * or type; adding members does not raise it. */
#define STATUS_SCHEMA_VERSION 1

typedef struct StatusGeneration {
        unsigned number;
        pid_t pid;
        const char *role;       /* "serving", "starting", "baking", "retiring", "next-handoff",
                                 * "next-handoff-stopping" */
        usec_t age;
        usec_t started;         /* CLOCK_MONOTONIC; 0: not known */
        usec_t ready;           /* CLOCK_MONOTONIC; 0: not ready (yet) */
        usec_t kill_in;         /* retiring: time left before SIGKILL; USEC_INFINITY: none */
        bool main_exited;       /* its main is gone, other processes of it are not */
        bool previous_handoff;  /* the previous handoff's, held or retired by this one (retiree.h):
                                 * only its main is known here */
        bool orphaned;          /* of a next handoff that died before it stopped it, retired by this
                                 * one (retiree.h); as previous_handoff, only its main is known */
        unsigned processes;     /* every process of the generation, main included */
        uint64_t memory;        /* bytes (its cgroup's memory.current); UINT64_MAX: not known */
} StatusGeneration;

typedef struct StatusSocket {
        int fd;
        const char *name;
        char address[128];      /* "tcp 127.0.0.1:8080", "unix /run/x.sock", ... */
        /* The same, taken apart (socket_inspect()): */
        int family;             /* AF_INET, AF_INET6, AF_UNIX; 0: not known */
        int type;               /* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET; 0: not known */
        char host[64];          /* inet: "127.0.0.1", "::" */
        unsigned port;          /* inet */
        char path[110];         /* unix: the path, or an abstract name without its NUL */
        size_t path_len;        /* unix: bytes of path (an abstract name may hold NULs) */
        bool abstract;          /* unix: abstract namespace */
} StatusSocket;

typedef struct ServiceStatus {
        pid_t pid;
        const char *version;
        usec_t now;             /* when the snapshot was taken: CLOCK_MONOTONIC ... */
        usec_t now_realtime;    /* ... and CLOCK_REALTIME, to show the others as dates */
        usec_t started;         /* this handoff process, CLOCK_MONOTONIC; 0: not known */
        const char *mode;       /* "supervise", "handover" */
        const char *state;      /* the state machine's */
        StatusGeneration gens[STATUS_MAX_GENS];
        size_t n_gens;
        StatusSocket sockets[STATUS_MAX_SOCKETS];
        size_t n_sockets;
        unsigned reloads_ok;
        unsigned reloads_failed;
        const char *last_result;
        /* The last reload that ended, or none (last_reload_ended 0): */
        unsigned last_reload_generation;
        bool last_reload_ok;
        usec_t last_reload_ended;    /* CLOCK_MONOTONIC */
        usec_t last_reload_duration; /* as STATUS= says it: start to ready, or to the failure */
        pid_t handed_over_to;   /* 0, or the handoff that is main now */
        bool handed_over_exited; /* ... which has exited since (its pid may be another's) */
        bool predecessor_draining;
        pid_t standby;          /* 0, or the next handoff started ahead (standby.h) */
} ServiceStatus;

/* The next free generation slot of st, NULL when all STATUS_MAX_GENS are
 * taken (the rest is not shown). */
StatusGeneration *status_add_generation(ServiceStatus *st);
/* What "SIGKILL in" shows: the time left to deadline (CLOCK_MONOTONIC),
 * 0 once past; USEC_INFINITY for none. */
usec_t status_time_left(usec_t deadline, usec_t now);

/* Describes a listening socket from getsockname(): k's address ("tcp
 * 127.0.0.1:8080"), and family, type, host, port and path (fd and name are
 * the caller's). Unknown parts stay 0/empty. */
void socket_inspect(int fd, StatusSocket *k);
/* The same from a socket address and type (exposed for the unit tests). */
void status_socket_from_sockaddr(StatusSocket *k, const struct sockaddr *sa, socklen_t len, int type);

/* "2026-12-04T13:16:45.123456Z": the CLOCK_MONOTONIC time mono as a UTC
 * date, by its distance from now (taken on both clocks). */
const char *status_format_timestamp(char *buf, size_t size, usec_t mono, usec_t now, usec_t now_realtime);

/* Both return the length written, or -ENOBUFS when buf was too small (it
 * then holds a cut, invalid text). */
int status_format_text(const ServiceStatus *st, char *buf, size_t size);
int status_format_json(const ServiceStatus *st, char *buf, size_t size);
/* Either form, whole, in a buffer as large as it takes (for the control
 * reply, which has no size limit). Returns the length or -ENOMEM. */
int status_format_alloc(const ServiceStatus *st, bool json, char **ret);
