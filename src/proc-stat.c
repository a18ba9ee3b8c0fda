/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proc-stat.h"
#include "util.h"

#define PF_EXITING 0x00000004 /* include/linux/sched.h: the task is in do_exit() */

int proc_stat_read(pid_t pid, ProcStat *ret) {
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n <= 0)
                return n < 0 ? -errno : -EIO;
        buf[n] = '\0';
        /* The command name may hold anything, ")" and spaces included: the
         * fields after the last ")" are "state ppid pgrp session tty_nr
         * tpgid flags", six counters and times, four more (cutime cstime
         * priority nice), then num_threads, itrealvalue and starttime
         * (proc(5)). */
        const char *p = strrchr(buf, ')');
        ProcStat s = {};
        if (!p || sscanf(p + 1, " %c %*d %d %*d %*d %*d %u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %ld %*d %" SCNu64,
                         &s.state, &s.pgrp, &s.flags, &s.threads, &s.start_time) != 5)
                return -EIO;
        *ret = s;
        return 0;
}

static uint64_t clock_usec(clockid_t id) {
        struct timespec ts;
        (void) clock_gettime(id, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

int pidfd_open_started_by(pid_t pid, uint64_t started) {
        _cleanup_close_ int pidfd = pidfd_open_pid(pid);
        if (pidfd < 0)
                return pidfd;
        /* Read with the pidfd open, which says after that the process read
         * is the one it holds: not yet reaped. */
        ProcStat st;
        int r = proc_stat_read(pid, &st);
        if (r < 0 || pidfd_signal(pidfd, 0) < 0)
                return -ESRCH;
        /* Its start counts ticks of CLOCK_BOOTTIME, which leads
         * CLOCK_MONOTONIC by the time suspended since boot. That lead only
         * grows, and today's (CLOCK_MONOTONIC read first: the larger) puts
         * the start at or before the real one, never after. */
        long hz = sysconf(_SC_CLK_TCK);
        uint64_t mono = clock_usec(CLOCK_MONOTONIC), lead = clock_usec(CLOCK_BOOTTIME) - mono;
        if (hz <= 0 || st.start_time * 1000000 / (uint64_t) hz > started + lead)
                return -ESRCH;
        return TAKE_FD(pidfd);
}

bool proc_stat_exiting(const ProcStat *s) {
        return s->state == 'Z' || s->state == 'X' || (s->flags & PF_EXITING);
}

bool proc_stat_running(const ProcStat *s) {
        /* A leader that exited before its other threads shows as a zombie
         * until the last of them has exited; its thread count says they
         * run (a zombie alone counts 1). */
        return (s->state != 'Z' && s->state != 'X') || s->threads > 1;
}

int process_group_running(pid_t pgid, pid_t *hint) {
        /* The member that ran at the last call first: a process whose stat
         * names the group is a member (a group's id is not given to
         * another while the group has one), and one that runs on spares
         * the walk, a read for each process of the host below it. */
        ProcStat h;
        if (hint && *hint > 0 && proc_stat_read(*hint, &h) == 0 && h.pgrp == pgid && proc_stat_running(&h))
                return 1;
        if (hint)
                *hint = 0;
        DIR *d = opendir("/proc");
        if (!d)
                return -errno;
        /* /proc lists processes in the order of their pids, and a process
         * started meanwhile gets the pid after the last one given out,
         * higher than any live one's short of a wrap-around of the pid
         * space: a member that forks and exits while we walk leaves its
         * child ahead of us, where we see it. */
        bool seen = false;
        int r = 0;
        struct dirent *de;
        while (r == 0 && (de = readdir(d))) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                ProcStat s;
                if (*end || pid <= 0 || proc_stat_read((pid_t) pid, &s) < 0 || s.pgrp != pgid)
                        continue;
                seen = true;
                r = proc_stat_running(&s);
                if (r && hint)
                        *hint = (pid_t) pid;
        }
        closedir(d);
        return r > 0 ? 1 : seen ? 0 : -ENOENT;
}

int proc_shows_our_pids(void) {
        char buf[32];
        ssize_t n = readlink("/proc/self", buf, sizeof buf - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        uint64_t pid;
        if (safe_atou64(buf, &pid) < 0)
                return -EIO;
        return pid == (uint64_t) getpid();
}
