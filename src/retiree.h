/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "cgroup.h"
#include "status.h"
#include "time-util.h"

/* A generation of another handoff's, known by a pidfd of its main
 * process: it is neither our child nor in our process tree.
 *
 * The previous handoff's serving generation (channel.h, NAMED): retired by
 * us when that handoff was killed between MAINPID= and TAKEOVER: the stop
 * signal now (to its main), and SIGKILL if it has not ended by the drain
 * timeout. Held by us after TAKEOVER, while that handoff retires it: no
 * signal, only the same SIGKILL a little after the same deadline, which
 * then still comes if that handoff is killed while it drains.
 *
 * The generation of a next handoff that died before it stopped it (killed,
 * the OOM killer), which may have been accepting already: retired by us as
 * a failed candidate of ours is, by its stop signal and drain deadline.
 *
 * Without a cgroup it has ended once its main has exited and no process
 * of its process group runs (polled: its workers may outlive its main;
 * zombies do not count, its main among them, which a parent that is not
 * us may never reap), and the deadline's SIGKILL goes to that group, main
 * exited or not: one we retire has nobody else to end its workers, and
 * one we hold has none once its handoff is killed while they drain.
 *
 * With a delegated cgroup (cgroup.h) the generation is its cgroup, as it
 * is to that handoff: it has ended once its main has exited and the
 * cgroup is empty, and SIGKILL goes to the whole cgroup. Without one it
 * is its main, and SIGKILL goes to the main and its process group; other
 * processes of it are the service manager's to end (KillMode=). */

typedef struct Retiree Retiree;

typedef enum RetireeOf {
        RETIREE_PREVIOUS,       /* the previous handoff's serving generation */
        RETIREE_ORPHAN,         /* the generation of a next handoff that died */
} RetireeOf;

/* Called once it has ended. */
typedef void (*RetireeGone)(void *userdata);

/* Sends the stop signal (none with sig 0: it had it already) and arms the
 * drain deadline. Takes pidfd (closed on failure too); root: our
 * delegated cgroup root, or NULL. Logs what it does. Returns 0 with *ret;
 * 0 with *ret NULL when there is nothing to retire (its main has exited
 * already); or -errno (logged) when it cannot be watched: then it had the
 * stop signal, but its drain deadline is not enforced. One retired (sig)
 * whose pidfd's watch or drain deadline could not be set up (out of
 * memory) has had SIGKILL too: no deadline is worse than a short one. */
int retiree_start(sd_event *e, RetireeOf of, int pidfd, int sig, usec_t drain_timeout, CgroupRoot *root,
                  RetireeGone gone, void *userdata, Retiree **ret);

/* The same, for a generation whose process group (its main's pid) was read
 * while its main ran (0: unknown), and, with root, whose cgroup (its leaf's
 * name below root, "gen-1"; NULL or "": unknown): if its main has exited by
 * now (it exits at once at the stop signal its handoff sent, before we
 * could look), that cgroup while it is populated, or else (without root,
 * or with no such cgroup) that group while it has members (its workers),
 * is retired or held all the same, its main counted as exited. */
int retiree_start_group(sd_event *e, RetireeOf of, int pidfd, pid_t group, const char *cgroup, int sig,
                        usec_t drain_timeout, CgroupRoot *root, RetireeGone gone, void *userdata, Retiree **ret);

/* What "handoff status" shows of it, as a "retiring" generation of the
 * previous handoff's, or an orphaned one: its main's pid; its processes and memory, its
 * cgroup's (without one: 1, its main, and not known); whether its main
 * has exited while others of its cgroup run on; and the time left to its
 * SIGKILL (USEC_INFINITY: no deadline, or sent). Its number and its
 * times (which NAMED told, channel.h) are the caller's to fill in. */
void retiree_status(const Retiree *r, usec_t now, StatusGeneration *ret);

/* SIGKILL now (a second stop request). */
void retiree_kill(Retiree *r);

Retiree *retiree_free(Retiree *r);

/* The pid a pidfd refers to (its fdinfo's "Pid:"), or -errno: -EINVAL for
 * an fd that is no pidfd, -ESRCH for a process that has been reaped. */
int pidfd_get_pid(int pidfd, pid_t *ret);
