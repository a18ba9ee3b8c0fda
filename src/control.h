/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "control-protocol.h"

/* The control socket of a handoff process: its listener, connections and
 * replies (the protocol and where the socket lives: control-protocol.h). */

typedef struct Control Control;
typedef struct ControlConn ControlConn;

typedef enum {
        REQUEST_RELOAD,
        REQUEST_JOIN,
        REQUEST_STATUS,
        REQUEST_STATUS_JSON,
        REQUEST_OUTCOME,
} RequestKind;

typedef struct ControlRequest {
        RequestKind kind;
        const char *args;    /* RELOAD with a command line: each argument after a NUL */
        size_t args_len;     /* 0: none */
        pid_t pid;           /* OUTCOME: the handoff that died during a reload */
        uint64_t start_time; /* ... and its start time, /proc/<pid>/stat's field 22 */
} ControlRequest;

/* The supervisor answers through control_reply() at once, or queues the
 * connection with control_wait() for a reload's outcome. */
typedef void (*ControlRequestFn)(Control *c, ControlConn *conn, const ControlRequest *req, void *userdata);

/* Listens at <runtime dir>/control.<pid>, else on an abstract name
 * (control-protocol.h), the fd above min_fd. Logs why when it uses the
 * abstract name, or fails. */
int control_new(sd_event *e, int min_fd, ControlRequestFn fn, void *userdata, Control **ret);
Control *control_free(Control *c);

void control_reply(Control *c, ControlConn *conn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

typedef enum {
        WAIT_CURRENT, /* the reload running now covers the request */
        WAIT_NEXT,    /* only the next reload does */
} WaitFor;

void control_wait(Control *c, ControlConn *conn, WaitFor w);

/* A reload started: those waiting for the next one now wait for this one. */
void control_reload_started(Control *c);
/* The current reload ended: answer everyone waiting for it. */
void control_reload_ended(Control *c, const char *reply);
/* Answer those waiting for the next reload (it was passed on to the next handoff,
 * or the service stops). */
void control_answer_next(Control *c, const char *reply);

/* The request carried a command line (reload-config.h) that only this
 * handoff has: if the reload is passed on, the client must send it again. */
void control_mark_resend(ControlConn *conn);
/* The next reload was passed on to the next handoff, pid: those waiting for
 * it join it there ("JOIN <pid>"), or send their command line again
 * ("FOLLOW <pid>"). */
void control_pass_on(Control *c, pid_t pid);

/* The directory the control socket of a handoff running here (as this uid,
 * with this environment) lives in (runtime_dir_path()); newly allocated.
 * -ENXIO when there is none to have. */
int control_runtime_dir(char **ret);

/* Removes the control socket that a handoff of ours with this pid left
 * behind when it was killed, if nobody listens on it (the pid may have been
 * reused by a live one). Returns whether it removed one. */
bool control_remove_stale(pid_t pid);

/* Parses a request; exposed for the unit tests and the fuzzer. */
int control_parse_request(const char *buf, size_t len, ControlRequest *ret);
