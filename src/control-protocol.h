/* SPDX-License-Identifier: MIT */
#pragma once

/* The control interface behind "handoff reload" and "handoff status".
 *
 * Every handoff process listens on a SOCK_SEQPACKET socket at
 * <dir>/control.<pid>, where <dir> is the first entry of $RUNTIME_DIRECTORY
 * (systemd's RuntimeDirectory=), else /run/handoff as root, else
 * $XDG_RUNTIME_DIR/handoff. The directory must belong to handoff's uid and
 * be writable by nobody else (handoff creates the last two 0700), so no
 * other user can bind the name first, and pid namespaces that share a
 * network namespace cannot collide (an abstract name could). The file is
 * removed when the process exits. Where no path can be bound (no such
 * directory, a read-only one, our name held by a live process of another
 * pid namespace), it listens on an abstract name instead
 * (CONTROL_ABSTRACT_PREFIX below), reachable from its network namespace
 * only. A client that knows the PID ($MAINPID
 * under ExecReload=) tries the path its own environment gives (a socket
 * there counts only if PID listens on it), else finds the socket among
 * that process's own fds, in whatever mount namespace it runs (client.c).
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
 *   "OUTCOME <pid> <start time>"
 *                  handoff <pid> died during a reload without answering
 *                  (killed after MAINPID= named its next handoff): asked
 *                  of that next handoff, how the reload ended, "OK ..."
 *                  or "FAIL ..." as for RELOAD; other handoffs reply
 *                  "ERROR". The start time, field 22 of /proc/<pid>/stat
 *                  (decimal clock ticks after boot) read while it lived,
 *                  tells it from a later process given its pid: only
 *                  the next handoff of the process with both answers
 *   "ERROR <why>"  the request itself was refused (unknown, too long,
 *                  another user)
 * Replies that send the client elsewhere:
 *   "FOLLOW <pid>" this handoff handed over: ask <pid> instead (only while
 *                  <pid> runs; once it has exited, "FAIL ...")
 *   "JOIN <pid>"   your reload was passed on to <pid>: join it there */

/* The abstract name a handoff listens on where it cannot bind the path
 * (control.c): this, its pid, "/" and 16 hex digits. */
#define CONTROL_ABSTRACT_PREFIX "handoff/control/"

/* Room for a command line: a longer one is refused, not cut. A reply may
 * be of any size (one SOCK_SEQPACKET message, as large as it takes). */
#define CONTROL_MAX_REQUEST (64 * 1024)
