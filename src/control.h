/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

/* The control interface behind "handoff reload" and "handoff status".
 *
 * Every handoff process listens on a SOCK_SEQPACKET socket at
 * <dir>/control.<pid>, where <dir> is the first entry of $RUNTIME_DIRECTORY
 * (systemd's RuntimeDirectory=), else /run/handoff as root, else
 * $XDG_RUNTIME_DIR/handoff. The directory must belong to handoff's uid and
 * be writable by nobody else (handoff creates the last two 0700), so no
 * other user can bind the name first, and pid namespaces that share a
 * network namespace cannot collide (an abstract name could). The file is
 * removed when the process exits. A client that knows the PID ($MAINPID
 * under ExecReload=) finds the socket among that process's own fds, in
 * whatever mount namespace it runs (client.c).
 *
 * Only root and handoff's own uid may use it: others are closed at accept
 * (SO_PEERCRED), before they hold a slot; each uid has its own share of the
 * slots; the socket takes no fds (SO_PASSRIGHTS=0 where the kernel has it,
 * else any that arrive are closed without blocking).
 *
 * One request, one reply per connection:
 *   "RELOAD"       reload; the reply comes when a reload that started after
 *                  this request has ended: "OK <what>" or "FAIL <why>"
 *   "RELOAD\0ARG\0ARG..."
 *                  the same, with a new command line for the reload to start
 *                  (reload-config.h)
 *   "JOIN"         wait for the reload in progress (or the next one)
 *   "STATUS" / "STATUS json"
 *                  "OK <status text>"
 *   "ERROR <why>"  the request itself was refused (unknown, too long,
 *                  another user)
 * Replies that send the client elsewhere:
 *   "FOLLOW <pid>" this handoff handed over: ask <pid> instead
 *   "JOIN <pid>"   your reload was passed on to <pid>: join it there */

/* Room for a command line: a longer one is refused, not cut. */
#define CONTROL_MAX_REQUEST (64 * 1024)
/* What replies used to be cut at. A reply may now be of any size (one
 * SOCK_SEQPACKET message, as large as it takes); kept until the supervisor's
 * status reply uses status_format_alloc(). */
#define CONTROL_MAX_REPLY 4096

typedef struct Control Control;
typedef struct ControlConn ControlConn;

typedef enum {
        REQUEST_RELOAD,
        REQUEST_JOIN,
        REQUEST_STATUS,
        REQUEST_STATUS_JSON,
} RequestKind;

typedef struct ControlRequest {
        RequestKind kind;
        const char *args;  /* RELOAD with a command line: each argument after a NUL */
        size_t args_len;   /* 0: none */
} ControlRequest;

/* The supervisor answers through control_reply() at once, or queues the
 * connection with control_wait() for a reload's outcome. */
typedef void (*ControlRequestFn)(Control *c, ControlConn *conn, const ControlRequest *req, void *userdata);

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
