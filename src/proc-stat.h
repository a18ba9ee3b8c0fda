/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A process as /proc/PID/stat shows it, and the process groups read from
 * there: the reaper's and the retiree's view of processes that are not
 * (or no longer) their children. */

typedef struct ProcStat {
        char state;             /* R, S, D, ...; Z a zombie, X dead */
        pid_t pgrp;
        unsigned flags;         /* the kernel's PF_* */
        long threads;           /* of its thread group, its leader included */
        uint64_t start_time;    /* in clock ticks after boot: with the pid, which
                                 * process it is (a pid is given out again) */
} ProcStat;

/* Reads pid's stat; -errno when it is gone (or cannot be read), -EIO when
 * the line cannot be parsed. */
int proc_stat_read(pid_t pid, ProcStat *ret);

/* A pidfd of pid, if the process of that pid started by started
 * (CLOCK_MONOTONIC usec), a zombie too: one that started later got the pid
 * of one reaped meanwhile, and is another. -ESRCH when it is another, or
 * gone. */
int pidfd_open_started_by(pid_t pid, uint64_t started);

/* Exiting: in do_exit(), or a zombie. */
bool proc_stat_exiting(const ProcStat *s);

/* Whether a thread of it still runs: not a zombie, or a zombie leader
 * whose other threads run on (ps(1)'s "Zl"). */
bool proc_stat_running(const ProcStat *s);

/* Whether a member of process group pgid still runs, by a walk of /proc:
 * 1; 0 when every member seen is a zombie; -ENOENT when none was seen
 * (the group emptied meanwhile, or its members are hidden from us:
 * hidepid=, another pid namespace's /proc); other -errno when /proc
 * cannot be read. kill(-pgid, 0) cannot tell: a zombie is a member until
 * it is reaped. hint (NULL: none) holds a member that ran at an earlier
 * call, or 0: it is asked first, and set to the running member found (0
 * when none), so that a caller that polls walks /proc only when that
 * member has stopped running. */
int process_group_running(pid_t pgid, pid_t *hint);

/* Whether /proc shows this pid namespace: 1 when its "self" names this
 * process by our own pid; 0 when by another (the parent namespace's
 * /proc, as unshare --pid --fork leaves it without --mount-proc); -errno
 * when it names none (-ENOENT: no /proc, or one of a namespace we are not
 * in). */
int proc_shows_our_pids(void);
