/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "cgroup-mode.h"
#include "time-util.h"

/* A delegated cgroup (Delegate=yes), on the unified hierarchy of a pure
 * cgroup v2 or a hybrid host. handoff moves itself into a leaf of its own
 * (R/handoff.PID), so that the delegated root R never holds a process (the
 * no-internal-process rule), and starts each generation in a cgroup of its
 * own (R/gen-N; R/gen-N.K beside a gen-N where processes of an earlier
 * life of the service still run). A generation is then exactly its
 * cgroup: cgroup.kill ends all of it, and cgroup.events says when it is
 * empty, whatever its processes did (setsid, double fork, a cleared
 * environment).
 *
 * Its server may make cgroups below R/gen-N and move processes there (a
 * container runtime, workers in cgroups of their own). They are the
 * generation's too: signalled, counted and removed with it, as systemd
 * treats a unit's subtree (cg_kill_recursive(), cg_trim()). cgroup.events,
 * cgroup.kill and memory.current cover them in the kernel already;
 * cgroup.procs lists only a cgroup's own processes, so that file is read in
 * each cgroup of the subtree (cgroup-walk.h). */

typedef struct CgroupRoot CgroupRoot;
typedef struct Cgroup Cgroup;

/* Finds the delegated root (our own cgroup, or its parent when we are in
 * the leaf of a previous handoff, as the next handoff of a handover is),
 * and moves us into our leaf. 0 with *ret NULL when not used (logged at
 * debug, or as a warning when the cgroup looked delegated but failed);
 * -errno only with CGROUP_YES. */
int cgroup_root_setup(CgroupMode mode, CgroupRoot **ret);
CgroupRoot *cgroup_root_free(CgroupRoot *r);
/* Removes R/handoff.PID, the leaf of a handoff that has exited (our
 * predecessor after a handover), if nothing runs in it. */
void cgroup_root_remove_leaf(CgroupRoot *r, pid_t pid);

/* Creates R/gen-N (or gen-N.1 up to gen-N.16, beside a populated leftover
 * gen-N) and opens its cgroup.procs for the child to write "0" to before
 * exec (spawn.c), so that everything it runs starts inside. */
int cgroup_new_generation(CgroupRoot *r, unsigned number, Cgroup **ret, int *ret_procs_fd);
/* The generation cgroup (R/gen-N or R/gen-N.K) that pid runs in, or in a
 * cgroup below one: after a handover, a generation of the previous handoff
 * (retiree.h). 0 with *ret NULL when pid runs in none (or is gone). Like
 * our own, it is removed by cgroup_free() once empty. */
int cgroup_open_generation_of(CgroupRoot *r, pid_t pid, Cgroup **ret);
/* Only its name ("gen-2") into name (size bytes), nothing opened (nor
 * removed): 1; 0 when pid runs in none (or is gone), or it does not fit. */
int cgroup_generation_of(CgroupRoot *r, pid_t pid, char *name, size_t size);
/* The same, by the generation cgroup's name ("gen-1", as NAMED tells it,
 * channel.h): 0 with *ret NULL for a name that is none. */
int cgroup_open_generation(CgroupRoot *r, const char *name, Cgroup **ret);
/* Calls changed() whenever cgroup.events changes (inotify: no polling). */
int cgroup_watch(Cgroup *c, sd_event *e, void (*changed)(void *userdata), void *userdata);
/* 1, 0, or -errno when cgroup.events cannot be read now (cgroup-walk.h). */
int cgroup_populated(Cgroup *c);
/* How soon a cgroup.events that could not be read (out of fds, say) is
 * read again: no change of it would wake us. */
#define CGROUP_REREAD_INTERVAL (100 * USEC_PER_MSEC)
/* Sends sig to every process; SIGKILL through cgroup.kill where the kernel
 * has it (5.14), which also catches processes forked meanwhile. */
void cgroup_signal(Cgroup *c, int sig);
unsigned cgroup_count(Cgroup *c);
uint64_t cgroup_memory(Cgroup *c); /* memory.current, or UINT64_MAX */
/* Whether pid runs in the cgroup, or in one below it (as systemd finds a
 * sender's unit). False for a pid that is gone. */
bool cgroup_has_pid(Cgroup *c, pid_t pid);
const char *cgroup_path(Cgroup *c);
/* Removes the cgroup, and the cgroups below it (children first), if no
 * process runs in any of them. */
Cgroup *cgroup_free(Cgroup *c);
