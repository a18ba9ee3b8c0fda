/* SPDX-License-Identifier: MIT */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "cgroup.h"
#include "close-async.h"
#include "notify.h"
#include "reaper.h"
#include "status.h"
#include "time-util.h"

/* One generation: one copy of COMMAND with its private notify socket, its
 * readiness deadline and, once retired, its drain deadline. It is every
 * process it starts, not just its main (reaper.h): it is gone when the last
 * of them is. The generation reports what happens to it through callbacks;
 * what that means for the service is the supervisor's business. */

typedef struct Generation Generation;

typedef struct GenerationCallbacks {
        /* status: a STATUS= in the datagram that said READY=1 (NULL: none).
         * systemd takes both at once; so the ready generation's first
         * status is that text, and message() does not get it again. */
        void (*ready)(Generation *g, const char *status, void *userdata);
        void (*start_timeout)(Generation *g, void *userdata);
        /* The main process exited; others of the generation may live on. */
        void (*exited)(Generation *g, void *userdata);
        /* The main has exited and no process of the generation is left:
         * the owner frees it (from here, or later). */
        void (*gone)(Generation *g, void *userdata);
        /* Owns fds: stores them (FDSTORE=1) or closes them. */
        void (*message)(Generation *g, const NotifyMessage *m, int *fds, size_t n_fds, void *userdata);
} GenerationCallbacks;

typedef struct GenerationConfig {
        char *const *argv;       /* argv[0] is looked up in $PATH at each start */
        const char *working_directory; /* chdir() there at each start; NULL: stay in ours */
        char *const *environment_files; /* read at each start (env-file.h); NULL: none */
        /* The names (":A:B") the environment files had when first read:
         * handoff's variables of those names are not passed on. Set at that
         * first read (the supervisor owns it); NULL until then. */
        char **environment_keys;
        const int *fds;
        size_t n_fds;
        const char *fdnames;     /* "a:b" */
        bool ready_by_delay;     /* --ready=delay:DUR instead of READY=1 */
        usec_t ready_delay;
        usec_t start_timeout;
        uint64_t watchdog_usec;  /* systemd's, passed on; 0 for none */
        NotifySocketMode notify_socket; /* --notify-socket */
        NotifyAccess notify_access;     /* --notify-access */
        bool die_with_parent;    /* PR_SET_PDEATHSIG: supervise mode, where nothing else would stop it */
        Reaper *reaper;          /* reaps and tracks every process of every generation */
        CgroupRoot *cgroup;      /* with a delegated cgroup: each generation gets one below it */
} GenerationConfig;

struct Generation {
        unsigned number;
        pid_t pid;
        bool ready;
        bool ready_by_delay;
        bool exited;             /* the main process; others may still run */
        bool killed;             /* the drain deadline passed: SIGKILL sent */
        bool gone;               /* every process of it has exited */
        bool dropped;            /* a datagram to its socket was dropped */
        bool status_not_utf8_logged;
        bool start_extended;     /* EXTEND_TIMEOUT_USEC= moved its start deadline */
        int stop_signal;         /* the signal retire() sent; non-zero: retiring */
        siginfo_t exit_info;
        usec_t started_usec;
        usec_t ready_usec;

        int notify_fd;
        char notify_address[108]; /* "@name", or a path (kept for a later generation, see generation_free()) */
        NotifyAccess notify_access;
        bool refused_ready_logged; /* a READY=1 from outside was logged (once) */
        char description[96];     /* "gunicorn app:app, pid 1234" */
        char *start_error;        /* why its start failed (generation_start()), allocated then; NULL if unknown */
        sd_event *event;
        ProcTree *tree;          /* every process of the generation */
        sd_event_source *notify_source;
        CloseAsyncWaiter notify_waiter; /* an abstract socket's reading paused for the closers */
        sd_event_source *timer_source;

        const GenerationCallbacks *cb;
        void *userdata;
        Generation *next;        /* in the supervisor's list */
};

/* The generation's command, shortened, and its main pid, for log lines:
 * "gunicorn app:app, pid 1234" (basename of argv[0] and the first arguments,
 * at most GENERATION_COMMAND_MAX characters of them, "…" where cut). Use as
 * "Generation %u (%s) …". */
#define GENERATION_COMMAND_MAX 40
const char *generation_describe(const Generation *g);

/* Why it may not have been heard, for a start that timed out: its notify
 * socket is not read while the closer threads are saturated (close-async.h),
 * or its main process runs as another user, which cannot reach a path
 * notify socket in handoff's private directory. NULL when neither is so. */
const char *generation_unheard_hint(const Generation *g);
/* What "handoff status" shows of it, in the role the caller gives it. */
void generation_status(const Generation *g, const char *role, usec_t now, StatusGeneration *ret);

/* Writes the shortened command alone into buf (exposed for the unit tests). */
void generation_command_summary(char *const *argv, char *buf, size_t size);

/* Starts a generation. On failure nothing is left running and the error is
 * logged (with the command and cause); *ret_exit_code then holds the code a
 * shell would report for the exec (127 not found, 126 not executable),
 * systemd's for a step before it (spawn_exit_status()), 1 otherwise, and
 * why the cause as the log line names it ("/srv/app/bin/server: No such file
 * or directory"), or "" when there is none to give the user. */
int generation_start(sd_event *e, const GenerationConfig *c, unsigned number, const GenerationCallbacks *cb,
                     void *userdata, Generation **ret, int *ret_exit_code, char *why, size_t why_size);

/* Sends sig (and SIGCONT, see signal_wants_cont(), util.h) to the main
 * process (if it still runs) and arms the drain deadline, after which every
 * process of the generation gets SIGKILL; at once if that deadline cannot
 * be armed (logged). Idempotent. */
void generation_retire(Generation *g, int sig, usec_t drain_timeout);

/* Forwards a signal to the main process (while it has not exited). */
int generation_signal(Generation *g, int sig);

/* Kills every process of the generation at once (second stop request). */
void generation_kill(Generation *g);

/* Frees the generation. The notify socket of one that is gone is kept for
 * the next generation to start (one at most); any other is closed and its
 * path removed. */
Generation *generation_free(Generation *g);

/* Closes the kept notify socket, if any, and removes its path (and the
 * private directory with the last one): when handoff exits. */
void generation_drop_spare_socket(void);

/* The exit code a shell or systemd would report: the status, or 128+N for a
 * signal N. */
int exit_info_code(const siginfo_t *si);
/* "exited with status 3", "killed by signal KILL", ... */
const char *exit_info_describe(const siginfo_t *si, char *buf, size_t size);
