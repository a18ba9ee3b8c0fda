/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "time-util.h"

/* Handover mode: the successor of a reload is a whole new handoff process.
 *
 * The old main starts it (double-forked, so the service manager is its
 * parent) with the listening fds, then the stored fds (how many: in
 * HANDOFF_FDSTORE), and one end of a SOCK_SEQPACKET control channel after
 * them, announced in HANDOFF_CONTROL_FD. Over the channel:
 *
 *   successor    -> old:  "PID <n>" with a pidfd of itself, first of all
 *                         (sent between fork and exec)
 *   successor    -> old:  "APP <pid>"      its app generation's main pid
 *                         "READY"          the app is ready; commit me
 *                         "FAILED <why>"   the app failed; I am exiting
 *   old -> successor:     "UNLINK <path>"  a unix socket file the service
 *                                           created: remove it at the final stop
 *                         "TAKEOVER <0|1>" you are main now (1: a reload
 *                                           was asked for meanwhile: run it)
 *
 * End of file on either side before TAKEOVER means "abort". */

#define HANDOFF_CONTROL_FD_ENV "HANDOFF_CONTROL_FD"

/* ---- the old main's side -------------------------------------------- */

typedef struct Successor Successor;

typedef struct SuccessorCallbacks {
        void (*ready)(Successor *s, void *userdata);
        void (*failed)(Successor *s, void *userdata);   /* s->why says why */
        void (*exited)(Successor *s, void *userdata);   /* the process is gone */
} SuccessorCallbacks;

typedef struct SuccessorConfig {
        const char *exe;            /* handoff's own path, resolved at start-up */
        char *const *argv;          /* handoff's own argv */
        const int *fds;             /* listening sockets, then stored fds */
        size_t n_fds;
        size_t n_stored;            /* how many of fds (at the end) are stored */
        const char *fdnames;
        const char *notify_socket;  /* systemd's, for after the takeover */
        uint64_t watchdog_usec;
        const char *stats;          /* HANDOFF_STATS: "reloads failed reload-start-usec" */
        usec_t timeout;             /* how long it may take to say READY */
} SuccessorConfig;

struct Successor {
        unsigned number;            /* the generation number of its app */
        pid_t pid;
        pid_t app_pid;
        bool ready;
        bool failed;
        bool exited;
        bool taken_over;
        bool released;              /* main to systemd: not ours to wait for */
        char why[192];

        int pidfd;
        int app_pidfd;
        int channel;
        sd_event_source *channel_source;
        sd_event_source *pidfd_source;
        sd_event_source *timer_source;

        const SuccessorCallbacks *cb;
        void *userdata;
};

/* Starts the successor handoff. On failure it is logged and nothing runs. */
int successor_start(sd_event *e, const SuccessorConfig *c, unsigned number, const SuccessorCallbacks *cb,
                    void *userdata, Successor **ret);

/* Commit: passes on the unix socket files to remove at the final stop, then
 * tells it to take over (it is systemd's now). */
int successor_takeover(Successor *s, char *const *unlink_paths, size_t n_paths, bool reload_pending);

/* Rollback: SIGTERM to the successor (which stops its own app), SIGKILL to
 * both after drain_timeout. The exited callback reports the end. */
void successor_abort(Successor *s, int sig, usec_t drain_timeout);

Successor *successor_free(Successor *s);

/* ---- the successor's side -------------------------------------------- */

/* Takes the channel announced in HANDOFF_CONTROL_FD (and removes that from
 * the environment). Returns 1 with *ret_fd when this handoff is a successor,
 * 0 when it is not, negative on a bad value. */
int takeover_channel_from_env(int *ret_fd);

/* Sends one message ("APP 123", "READY", "FAILED ..."). */
int takeover_send(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads one message: 1 for TAKEOVER (with *ret_reload_pending), 2 for
 * UNLINK (the path in path_buf), 0 at end of file (abort), -EAGAIN for
 * nothing, -EBADMSG for anything else. */
int takeover_receive(int fd, bool *ret_reload_pending, char *path_buf, size_t path_size);
