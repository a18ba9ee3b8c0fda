/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by supervisor.c (the event loop and the state machine's actions),
 * supervisor-handover.c (handover mode, both sides) and supervisor-control.c
 * (the control requests); not for any other module. */

#include <stdbool.h>

#include "control.h"
#include "fsm.h"
#include "generation.h"
#include "handover.h"
#include "supervisor.h"

typedef struct StoreOp {
        char *name;
        int fd;          /* -EBADF: remove name */
} StoreOp;

typedef struct Supervisor {
        sd_event *event;
        const SupervisorParams *p;
        const Options *opt;
        GenerationConfig config;
        Machine machine;

        Generation *gens;        /* every app generation with a live process */
        Generation *serving;
        Generation *successor;   /* the app generation starting */
        Successor *next_main;    /* handover mode: the successor handoff */
        unsigned last_number;

        Event queue[8];          /* events raised while dispatching */
        unsigned n_queued;
        bool dispatching;

        usec_t reload_started;
        unsigned reloads_ok, reloads_failed;
        char last_result[192];  /* for STATUS=: "reload to generation 3 ok in 120ms" */
        char last_reply[192];   /* for "handoff reload": "reloaded: generation 3, pid 12, 120ms" */
        bool last_result_ok;
        bool current_failed;     /* last_result is the failure of the reload running now */
        bool stop_requested;
        bool handed_over;
        bool mainpid_sent;       /* systemd was told a successor is main */
        int exit_code;

        /* handover mode */
        char notify_socket[256]; /* systemd's; for a successor, used after takeover */
        sd_event_source *barrier_source;
        sd_event_source *barrier_timer;
        bool is_successor;       /* started by a reload in handover mode */
        bool took_over;          /* ... and then became the main process */
        bool quiet_ready;        /* our predecessor's MAINPID datagram said READY=1 */
        bool predecessor_alive;  /* after takeover: the old main still drains */
        usec_t inherited_reload_started;
        int handed_channel;      /* old main after handover: held open until we exit */
        char app_status[256];    /* a generation's own STATUS= ... */
        unsigned app_status_gen; /* ... and which generation said it */
        int takeover_channel;    /* our predecessor's channel, until TAKEOVER */
        sd_event_source *takeover_source;
        pid_t handed_to;         /* old main: the handoff that took over */

        Control *control;        /* "handoff reload", "handoff status" */

        /* A reload successor's FDSTORE=1/FDSTOREREMOVE=1, applied in order
         * when it commits and dropped if it fails: a failed reload leaves
         * the store as it was. */
        StoreOp *staged;
        size_t n_staged;
        char **inherited_names;  /* a successor: its predecessor's store, for the resync */

        /* What the next generation inherits: the listening sockets, then the
         * stored fds; rebuilt before each start, as the store changes. */
        int *gen_fds;
        char *gen_fdnames;
} Supervisor;

void dispatch(Supervisor *s, Event ev);
void notify_systemd(Supervisor *s, const char *fmt, ...) _printf_(2, 3);
const char *status_text(Supervisor *s, unsigned number, pid_t pid, char *buf, size_t size);
bool all_gone(Supervisor *s);
bool awaiting_takeover(Supervisor *s);
void record_failure(Supervisor *s, unsigned number, const char *why, int code);

/* supervisor-store.c */
void store_from_generation(Supervisor *s, Generation *g, const NotifyMessage *m, int *fds, size_t n_fds);
void store_commit_staged(Supervisor *s);
void store_drop_staged(Supervisor *s);
void store_resync(Supervisor *s, char *const *old_names, size_t n_old);
int build_inheritance(Supervisor *s);

/* supervisor-handover.c */
int start_successor_handoff(Supervisor *s, unsigned number);
void hand_over(Supervisor *s);
void take_over_done(Supervisor *s, bool pass_reload);
int watch_takeover(Supervisor *s);
void inherit_state(Supervisor *s);

/* supervisor-control.c */
int control_setup(Supervisor *s);
void control_on_reload_start(Supervisor *s);  /* a reload began */
void control_on_reload_end(Supervisor *s);    /* it ended: last_result_ok says how */
void control_on_handed_over(Supervisor *s);   /* old main: handed_to took over */
