/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

/* The control interface behind "handoff reload" and "handoff status".
 *
 * Every handoff process listens on an abstract SOCK_SEQPACKET socket named
 * after its own pid (CONTROL_ADDRESS_FMT), so a client that knows the main
 * PID ($MAINPID under ExecReload=) reaches it with no unit settings and
 * nothing left on disk. Only our uid and root may connect (SO_PEERCRED).
 *
 * One request, one reply per connection:
 *   "RELOAD"       reload; the reply comes when a reload that started after
 *                  this request has ended: "OK <what>" or "FAIL <why>"
 *   "JOIN"         wait for the reload in progress (or the next one)
 *   "STATUS" / "STATUS json"
 *                  "OK <status text>"
 *   "ERROR <why>"  the request itself was refused (unknown, too long,
 *                  another user)
 * Replies that send the client elsewhere:
 *   "FOLLOW <pid>" this handoff handed over: ask <pid> instead
 *   "JOIN <pid>"   your reload was passed on to <pid>: join it there */

#define CONTROL_ADDRESS_FMT "handoff/control/%d"
#define CONTROL_MAX_REQUEST 512
#define CONTROL_MAX_REPLY 4096

typedef struct Control Control;
typedef struct ControlConn ControlConn;

typedef enum {
        REQUEST_RELOAD,
        REQUEST_JOIN,
        REQUEST_STATUS,
        REQUEST_STATUS_JSON,
} RequestKind;

/* The supervisor answers through control_reply() at once, or queues the
 * connection with control_wait() for a reload's outcome. */
typedef void (*ControlRequestFn)(Control *c, ControlConn *conn, RequestKind kind, void *userdata);

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

/* Parses a request; exposed for the unit tests and the fuzzer. */
int control_parse_request(const char *buf, size_t len, RequestKind *ret);
