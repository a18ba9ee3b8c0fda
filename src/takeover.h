/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "channel.h"
#include "time-util.h"

/* A handoff started as the next handoff of a handover reload: its side of
 * the handover channel (channel.h) and what it inherits from its
 * predecessor. It reports its candidate generation to the predecessor and
 * learns when to take over and when the predecessor is gone. */

typedef struct Takeover Takeover;

typedef struct TakeoverCallbacks {
        /* TAKEOVER: we are main now; reload_pending: a reload was asked for
         * meanwhile, and is ours to run. */
        void (*took_over)(bool reload_pending, void *userdata);
        /* UNLINKS, an entry each: a unix socket file of the service, ours to
         * remove at the final stop if it is still the file u says then. */
        void (*unlink_file)(const ChannelUnlink *u, void *userdata);
        /* UNLINK, from an older predecessor: the file at path, the same. */
        void (*unlink_path)(const char *path, void *userdata);
        /* End of file: the predecessor exited, or aborted before TAKEOVER
         * (or, after NAMED, died: see channel.h). */
        void (*predecessor_gone)(void *userdata);
        /* After TAKEOVER, STOP: the service stops (the manager's stop
         * reached the predecessor); DRAINED: the predecessor has nothing
         * left and waits for our exit, not we for its. */
        void (*stop)(void *userdata);
        void (*predecessor_drained)(void *userdata);
        /* Before TAKEOVER, NAMED: the service manager is being told
         * MAINPID=<us> (or, with none, TAKEOVER follows). pidfd: of the predecessor's
         * serving generation's main process (ours to close; -EBADF: none
         * came); g: that generation, and what it retires with. */
        void (*named)(const ChannelNamed *g, int pidfd, void *userdata);
        /* After NAMED, UNNAMED: MAINPID= could not be sent after all; the
         * predecessor is main still, and aborts the handover. */
        void (*unnamed)(void *userdata);
} TakeoverCallbacks;

/* What the predecessor passed on in the environment (and is removed from
 * it), so that numbering and counters continue. */
typedef struct Inheritance {
        unsigned last_number;     /* the predecessor's serving generation */
        unsigned reloads_ok;
        unsigned reloads_failed;
        usec_t reload_started;    /* when the reload that started us began */
        char *environment_keys;   /* GenerationConfig's (owned); NULL: none */
} Inheritance;

/* Takes the channel announced in HANDOFF_CONTROL_FD (and removes that from
 * the environment). Returns 1 with *ret_fd for a handoff started as the
 * next handoff, 0 for one that was not, -EBADF on a bad value. */
int takeover_channel_from_env(int *ret_fd);

/* Reads HANDOFF_GENERATION, HANDOFF_STATS and HANDOFF_ENVIRONMENT_KEYS (and
 * removes them). Values that do not parse are left at 0 (NULL). */
void takeover_inherit_from_env(Inheritance *ret);

/* Watches the channel (owned from here on). */
int takeover_new(sd_event *e, int channel, const TakeoverCallbacks *cb, void *userdata, Takeover **ret);
Takeover *takeover_free(Takeover *t);

/* Reports to the predecessor: sent at once, or, while it does not read,
 * queued in order and sent when it does (outbox.h): APP, READY and FAILED
 * always arrive, STATUS and EXTEND as the latest one. Silent no-ops once
 * the channel is closed. */
void takeover_report_app(Takeover *t, pid_t pid);
void takeover_report_status(Takeover *t, const char *status);
void takeover_report_extend(Takeover *t, uint64_t usec);
void takeover_report_ready(Takeover *t);
void takeover_report_failed(Takeover *t, const char *why);
