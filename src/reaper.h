/* SPDX-License-Identifier: MIT */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/* Every process a generation starts, not just its main: the reaper owns
 * SIGCHLD for the whole process. handoff is a child subreaper, so what a
 * generation orphans (a wrapper's child, workers that outlive their master,
 * a daemon that double-forked) is reparented to us; the reaper reaps every
 * child that exits, tells a generation when its main process exited, and
 * tells it when the last of its processes is gone.
 *
 * A generation's processes ("its tree") are its process group (the main is
 * the leader; spawn.c puts it there) plus the children that were reparented
 * to us and left the group (setsid), recognised by the HANDOFF_GENERATION=
 * their environment was started with. A tree may also be a cgroup of its
 * own (cgroup.h); then the cgroup is the whole truth.
 *
 * Why not sd-event child sources: sd-event reaps only the pids it watches,
 * and a second reaper beside it would have to peek (WNOWAIT) at every
 * zombie without ever taking one of sd-event's. One SIGCHLD source that
 * reaps everything, and dispatches the tracked pids itself, is simpler and
 * is also what PID 1 needs. */

typedef struct Reaper Reaper;
typedef struct ProcTree ProcTree;
typedef struct Cgroup Cgroup;

typedef struct ProcTreeCallbacks {
        /* The main process exited (already reaped: si is its status). */
        void (*main_exited)(ProcTree *t, const siginfo_t *si, void *userdata);
        /* The main has exited and no process of the tree is left. Called
         * once; the owner may free the tree from here. */
        void (*empty)(ProcTree *t, void *userdata);
} ProcTreeCallbacks;

/* Becomes a child subreaper and watches SIGCHLD (which must be blocked). */
int reaper_new(sd_event *e, Reaper **ret);
Reaper *reaper_free(Reaper *r);

/* While a double fork's intermediate exits, its child must go to whoever
 * adopts orphans above us, not to us: pause around it. Returns whether we
 * were a subreaper, for resume. */
bool reaper_pause_subreaper(void);
void reaper_resume_subreaper(bool was);

/* Starts tracking main, a fresh child, leader of its own process group, as
 * generation number; with cg (owned from then on), the tree is that cgroup. */
int reaper_track(Reaper *r, pid_t main, unsigned number, Cgroup *cg, const ProcTreeCallbacks *cb, void *userdata,
                 ProcTree **ret);

/* Sends sig to every process of the tree. A process found later (one
 * reparented to us when its parent died, e.g. the server a daemon's double
 * fork left) gets the same signal at once: SIGKILL (the tree is doomed), or
 * the stop signal. A stop signal is followed by SIGCONT (see
 * signal_wants_cont(), util.h). */
void proc_tree_kill(ProcTree *t, int sig);
/* SIGCONT to every process of the tree, and nothing else: after a stop
 * signal sent to the main alone, a stopped process group (SIGTTIN stops all
 * of it) acts on it, its workers on what their main sends them. */
void proc_tree_continue(ProcTree *t);
/* Names the processes that left the process group (a warning), at retire. */
void proc_tree_warn_strays(ProcTree *t);
/* Whether pid is a process of the tree: in its cgroup, or else in its
 * process group or one of its strays. False for a pid that is gone. */
bool proc_tree_has(ProcTree *t, pid_t pid);
bool proc_tree_has_cgroup(ProcTree *t);
/* Its cgroup's path (cgroup.h), or NULL: it has none. */
const char *proc_tree_cgroup_path(ProcTree *t);
/* For "handoff status": how many processes; memory in bytes, or
 * UINT64_MAX when not known (no cgroup). */
unsigned proc_tree_count(ProcTree *t);
uint64_t proc_tree_memory(ProcTree *t);
bool proc_tree_empty(ProcTree *t);
ProcTree *proc_tree_free(ProcTree *t);
