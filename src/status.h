/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "time-util.h"

/* What "handoff status" shows: a snapshot the supervisor fills in, and its
 * text and JSON forms (pure functions, for the unit tests). */

#define STATUS_MAX_GENS 16
#define STATUS_MAX_SOCKETS 16

typedef struct StatusGeneration {
        unsigned number;
        pid_t pid;
        const char *role;       /* "serving", "starting", "retiring" */
        usec_t age;
        usec_t kill_in;         /* retiring: time left before SIGKILL; USEC_INFINITY: none */
        bool main_exited;       /* its main is gone, other processes of it are not */
        unsigned processes;     /* every process of the generation, main included */
        uint64_t memory;        /* bytes (its cgroup's memory.current); UINT64_MAX: not known */
} StatusGeneration;

typedef struct StatusSocket {
        int fd;
        const char *name;
        char address[128];      /* "tcp 127.0.0.1:8080", "unix /run/x.sock", ... */
} StatusSocket;

typedef struct ServiceStatus {
        pid_t pid;
        const char *version;
        const char *mode;       /* "supervise", "handover" */
        const char *state;      /* the state machine's */
        StatusGeneration gens[STATUS_MAX_GENS];
        size_t n_gens;
        StatusSocket sockets[STATUS_MAX_SOCKETS];
        size_t n_sockets;
        unsigned reloads_ok;
        unsigned reloads_failed;
        const char *last_result;
        pid_t handed_over_to;   /* 0, or the handoff that is main now */
        bool predecessor_draining;
} ServiceStatus;

/* Describes a listening socket from getsockname(): "tcp 127.0.0.1:8080". */
void socket_describe(int fd, char *buf, size_t size);

/* Both return the length written, or -ENOBUFS when buf was too small (it
 * then holds a cut, invalid text). */
int status_format_text(const ServiceStatus *st, char *buf, size_t size);
int status_format_json(const ServiceStatus *st, char *buf, size_t size);
/* Either form, whole, in a buffer as large as it takes (for the control
 * reply, which has no size limit). Returns the length or -ENOMEM. */
int status_format_alloc(const ServiceStatus *st, bool json, char **ret);
