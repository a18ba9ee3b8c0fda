/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "cgroup.h"
#include "event-util.h"
#include "log.h"
#include "proc-stat.h"
#include "reaper.h"
#include "time-util.h"
#include "util.h"

struct ProcTree {
        Reaper *reaper;
        unsigned number;
        pid_t main;              /* also the process group id, ... */
        bool main_exited;
        bool group_gone;         /* ... until the group was seen empty: then
                                  * main may name another process's group */
        bool doomed;             /* SIGKILL sent: whatever turns up gets it too */
        int stopping;            /* a stop signal sent to all of it: so does this */
        bool reported_empty;
        unsigned unreadable;     /* cgroup.events reads that failed in a row ... */
        bool unreadable_said;    /* ... and that was logged as a warning */
        pid_t *strays;           /* our adopted children: left the group, or may */
        size_t n_strays;
        Cgroup *cgroup;
        const ProcTreeCallbacks *cb;
        void *userdata;
        ProcTree *next;
};

struct Reaper {
        sd_event *event;
        sd_event_source *sigchld;
        ProcTree *trees;
        /* Children we adopted that belong to no generation we know (their
         * environment says nothing): reaped when they exit, nothing more.
         * Remembered so their environ is read once. */
        pid_t *unknown;
        size_t n_unknown;
        /* Children caught exiting before we could read whose they are (a
         * double fork's intermediate): until they are reaped, and their
         * orphans looked at, no generation is called empty. */
        pid_t *pending;
        size_t n_pending;
        /* Children alive but with nothing to read yet: caught in the middle
         * of an execve() (the new program's environment is not set up), or
         * with an empty environment for good. Looked at again every
         * RESCAN_INTERVAL; after RESCAN_TRIES looks, of no generation. Until
         * then, as pending ones, they hold back a generation's end. */
        struct { pid_t pid; unsigned tries; } *unread;
        size_t n_unread;
        sd_event_source *rescan; /* for those, and for a cgroup.events that could not be read */
        bool sweeping;
        int children_fd;         /* /proc/self/task/<pid>/children, read again from 0 */
};

static bool pid_list_remove(pid_t *l, size_t *n, pid_t pid) {
        for (size_t i = 0; i < *n; i++)
                if (l[i] == pid) {
                        l[i] = l[--*n];
                        return true;
                }
        return false;
}

static bool pid_list_has(const pid_t *l, size_t n, pid_t pid) {
        for (size_t i = 0; i < n; i++)
                if (l[i] == pid)
                        return true;
        return false;
}

static int pid_list_add(pid_t **l, size_t *n, pid_t pid) {
        pid_t *m = realloc(*l, (*n + 1) * sizeof **l);
        if (!m)
                return -ENOMEM;
        m[(*n)++] = pid;
        *l = m;
        return 0;
}

bool reaper_pause_subreaper(void) {
        int was = 0;
        if (prctl(PR_GET_CHILD_SUBREAPER, &was, 0, 0, 0) < 0 || !was)
                return false;
        (void) prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
        return true;
}

void reaper_resume_subreaper(bool was) {
        if (was)
                (void) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

/* pid's process group from /proc/PID/stat; -errno when it is gone. */
static int read_pgrp(pid_t pid, pid_t *ret) {
        ProcStat s;
        int r = proc_stat_read(pid, &s);
        if (r < 0)
                return r;
        *ret = s.pgrp;
        return 0;
}

/* Out of fds or memory: what could not be read now may be later. */
static bool passes(int k) {
        return k == -EMFILE || k == -ENFILE || k == -ENOMEM;
}

/* The generation number a process was started with (HANDOFF_GENERATION= in
 * /proc/PID/environ, which every process of a generation inherits unless it
 * cleared its environment); 0 when it has none, -1 when nothing can be read
 * (a process that is exiting has no memory left to read it from, one in an
 * execve() none set up yet), -EACCES when we may not read it, an error that
 * passes() when we cannot now. path: the environ file (of the process, or
 * of one of its threads). */
static int read_generation_at(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == EACCES || errno == EPERM ? -EACCES : passes(-errno) ? -errno : -1;
        static const char key[] = "HANDOFF_GENERATION=";
        /* The environment a process was started with; 64 KiB is plenty for
         * any sane one (a longer one is read only as far). */
        _cleanup_free_ char *buf = malloc(65536);
        if (!buf)
                return -ENOMEM;
        size_t have = 0;
        ssize_t n = 0;
        while (have < 65535 && (n = read(fd, buf + have, 65535 - have)) > 0)
                have += (size_t) n;
        buf[have] = '\0';
        if (have == 0)
                return n < 0 && (errno == EACCES || errno == EPERM) ? -EACCES : -1;
        for (size_t i = 0; i < have; i += strlen(buf + i) + 1)
                if (strncmp(buf + i, key, sizeof key - 1) == 0)
                        return (int) strtoul(buf + i + sizeof key - 1, NULL, 10);
        return 0;
}

static int read_generation(pid_t pid) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/environ", (int) pid);
        return read_generation_at(path);
}

/* A leader that exited before its other threads is a zombie with no memory
 * of its own, and its SIGCHLD comes only with the last thread's exit: the
 * generation is read through a thread still running (they share their
 * memory). -1 when no other thread is there. */
static int read_generation_of_threads(pid_t pid) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task", (int) pid);
        DIR *d = opendir(path);
        if (!d)
                return -1;
        int number = -1;
        struct dirent *de;
        while (number == -1 && (de = readdir(d))) {
                char *end;
                long tid = strtol(de->d_name, &end, 10);
                if (*end || tid <= 0 || tid == pid)
                        continue;
                char env[96];
                snprintf(env, sizeof env, "/proc/%d/task/%ld/environ", (int) pid, tid);
                number = read_generation_at(env);
        }
        closedir(d);
        return number;
}

static ProcTree *find_number(Reaper *r, unsigned number) {
        for (ProcTree *t = r->trees; t; t = t->next)
                if (t->number == number)
                        return t;
        return NULL;
}

static int arm_rescan(Reaper *r, usec_t interval);

/* Whether the tree's process group is gone for good. Its id is its main's
 * pid, which cannot be given out again while the main is unreaped or the
 * group has a member; once the group was seen empty, that number may be
 * another process's pid and group (a later generation's main, after a pid
 * wrap-around during a long drain), and must never be signalled again.
 * The group may also empty unseen (its last member the child of a process
 * that left it, which reaps it, not us) and its id come round again before
 * we look: a process of the main's pid, once the main is reaped, is another
 * one, and a group of that id its own (as retiree.c's group_of_id_exists()). */
static bool group_gone(ProcTree *t) {
        if (!t->group_gone && t->main_exited &&
            ((kill(-t->main, 0) < 0 && errno == ESRCH) || kill(t->main, 0) >= 0 || errno != ESRCH)) {
                t->group_gone = true;
                /* Seen outside sweep() (a retire, the drain deadline: they
                 * then neither arm the deadline nor kill), with no SIGCHLD
                 * of ours to come when the group emptied unseen: the tree's
                 * end is looked for from the loop. */
                if (!t->reaper->sweeping)
                        (void) arm_rescan(t->reaper, 0);
        }
        return t->group_gone;
}

static bool in_group(const ProcTree *t, pid_t pgid) {
        return pgid == t->main && !t->group_gone;
}

/* The tree whose process group pgid is. */
static ProcTree *find_group(Reaper *r, pid_t pgid) {
        for (ProcTree *t = r->trees; t; t = t->next)
                if (in_group(t, pgid))
                        return t;
        return NULL;
}

/* The tree whose main pid is, while it lives (a tree whose main exited may
 * have its pid given to another process). */
static ProcTree *find_main(Reaper *r, pid_t pid) {
        for (ProcTree *t = r->trees; t; t = t->next)
                if (t->main == pid && !t->main_exited)
                        return t;
        return NULL;
}

#define RESCAN_INTERVAL (5 * USEC_PER_MSEC)
#define RESCAN_TRIES 40 /* 200 ms: an execve() takes well under 1 ms */
/* A cgroup.events that could not be read is read again every
 * CGROUP_REREAD_INTERVAL (and at every change of ours), and the failure
 * logged as a warning after this many reads when it may pass by itself. */
#define UNREADABLE_WARN_AFTER 10

static void unread_remove(Reaper *r, pid_t pid) {
        for (size_t i = 0; i < r->n_unread; i++)
                if (r->unread[i].pid == pid) {
                        r->unread[i] = r->unread[--r->n_unread];
                        return;
                }
}

static void scan_children(Reaper *r);
static void sweep(Reaper *r);

static int on_rescan(sd_event_source *src, uint64_t usec, void *userdata) {
        Reaper *r = userdata;
        r->rescan = sd_event_source_disable_unref(r->rescan);
        scan_children(r);
        sweep(r);
        return 0;
}

static int arm_rescan(Reaper *r, usec_t interval) {
        if (r->rescan)
                return 0;
        return event_add_time_relative(r->event, &r->rescan, interval, USEC_PER_MSEC, on_rescan, r);
}

/* pid had nothing to read: true while it is to be looked at again (the
 * rescan is armed), false once it has had its tries. Out of fds or memory
 * (count false), a look is no try: it holds back every generation's end
 * until it can be made. */
static bool unread_again(Reaper *r, pid_t pid, bool count) {
        size_t i = 0;
        while (i < r->n_unread && r->unread[i].pid != pid)
                i++;
        if (i == r->n_unread) {
                void *m = realloc(r->unread, (r->n_unread + 1) * sizeof *r->unread);
                if (!m)
                        return false;
                r->unread = m;
                r->unread[r->n_unread++] = (typeof(*r->unread)) { .pid = pid };
        }
        if (count && ++r->unread[i].tries > RESCAN_TRIES)
                return false;
        /* Out of fds, as a cgroup.events that cannot be read: not so often. */
        return arm_rescan(r, count ? RESCAN_INTERVAL : CGROUP_REREAD_INTERVAL) >= 0;
}

/* A child of ours that is no generation's main: adopted. Find out whose it
 * is, once. */
static void adopt(Reaper *r, pid_t pid) {
        if (pid_list_has(r->unknown, r->n_unknown, pid))
                return;
        for (ProcTree *t = r->trees; t; t = t->next)
                if (pid_list_has(t->strays, t->n_strays, pid))
                        return;
        pid_t pgid = 0;
        int k = read_pgrp(pid, &pgid);
        if (k < 0) {
                /* Exited meanwhile, and the next SIGCHLD reaps it; or
                 * whose it is cannot be known now (out of fds), and its
                 * generation, whichever, is not called gone without it. */
                if (passes(k)) {
                        log_debug_errno(k, "Cannot read /proc/%d/stat, looked at again: %m", (int) pid);
                        (void) unread_again(r, pid, false);
                }
                return;
        }
        ProcTree *t = find_group(r, pgid);
        /* Still in its generation's group, it is that generation's; it is
         * tracked all the same, since it may leave the group in a moment (a
         * daemon's setsid() right after its parent exited), where kill(-pgid)
         * and the group's emptiness no longer see it. */
        bool in_group = t && !t->cgroup;
        if (!in_group) {
                int number = read_generation(pid);
                if (passes(number)) {
                        log_debug_errno(number, "Cannot read /proc/%d/environ, looked at again: %m", (int) pid);
                        (void) unread_again(r, pid, false);
                        return;
                }
                bool pending = pid_list_has(r->pending, r->n_pending, pid);
                /* Whether it is exiting is read after its environment: an
                 * exit that began before that read failed shows then (read
                 * before, a double fork's intermediate caught in between
                 * was taken for a live process, and its generation called
                 * gone before the daemon it left was looked at). It is our
                 * child, so it cannot be gone before we reap it. */
                bool exiting = false;
                if (number == -1) {
                        ProcStat st;
                        if (proc_stat_read(pid, &st) >= 0 && proc_stat_exiting(&st)) {
                                number = read_generation_of_threads(pid);
                                /* A zombie leader whose other threads run
                                 * on is reaped when the last of them exits,
                                 * which may be never: a live process, to be
                                 * looked at again as one. */
                                exiting = st.state != 'Z' || st.threads <= 1;
                        }
                }
                if (number == -1 && exiting) {
                        /* Its memory is gone before we could read whose it
                         * was: it is reaped at its SIGCHLD, soon. */
                        unread_remove(r, pid);
                        if (!pending && pid_list_add(&r->pending, &r->n_pending, pid) < 0)
                                log_debug("Out of memory; pid %d is not waited for.", (int) pid);
                        return;
                }
                if (pending)
                        pid_list_remove(r->pending, &r->n_pending, pid);
                /* Alive, nothing to read: in an execve(), as a daemon may
                 * well be right after its setsid(), and placed once that is
                 * done; or with an empty environment for good, and then of
                 * no generation (looked at once only, it held back its
                 * generation's end for good, or left it out for good). */
                if (number == -1 && unread_again(r, pid, true))
                        return;
                unread_remove(r, pid);
                if (number < -1)
                        log_debug("Adopted pid %d, whose environment we may not read: of no generation.", (int) pid);
                t = number > 0 ? find_number(r, (unsigned) number) : NULL;
                if (!t) {
                        log_debug("Adopted pid %d, of no generation of ours; it is reaped when it exits.", (int) pid);
                        if (pid_list_add(&r->unknown, &r->n_unknown, pid) < 0)
                                log_debug("Out of memory; pid %d may be looked at again.", (int) pid);
                        return;
                }
                if (t->cgroup)
                        return; /* the cgroup holds it */
        }
        unread_remove(r, pid); /* looked at while out of fds, say */
        if (pid_list_add(&t->strays, &t->n_strays, pid) < 0) {
                log_warning("Out of memory; pid %d of generation %u is not tracked.", (int) pid, t->number);
                return;
        }
        log_debug("Adopted pid %d of generation %u (%s its process group).", (int) pid, t->number,
                  in_group ? "still in" : "left");
        if (t->doomed)
                (void) kill(pid, SIGKILL);
        else if (t->stopping) {
                (void) kill(pid, t->stopping);
                if (signal_wants_cont(t->stopping))
                        (void) kill(pid, SIGCONT);
        }
}

/* Our children, from /proc/self/task/TID/children (only the main thread
 * starts children, close-async.c's closers never do; the list is exact for
 * a thread that is not running fork() meanwhile, and that thread is us). */
static int open_children(Reaper *r) {
        if (r->children_fd >= 0)
                return 0;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%d/children", (int) getpid());
        r->children_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r->children_fd < 0)
                return log_debug_errno(errno, "Cannot list our children (%s): %m", path);
        return 0;
}

static void scan_children(Reaper *r) {
        /* Kept open (from reaper_new()): the file is made anew at each read
         * from offset 0, and an open of it by path cost more than the reads. */
        if (open_children(r) < 0)
                return;
        /* Static: this runs a few times per reload, and a heap buffer this
         * size went back to the kernel and was faulted in again each time.
         * Only the pages a long list touches are ever dirty. */
        static char buf[65536];
        size_t size = sizeof buf, have = 0;
        ssize_t n;
        /* The file is a seq_file: a read fills its page-sized buffer with
         * whole records ("PID ") while there are more, so a read that
         * returns clearly less than a page has them all, and the read that
         * would say end of file is not made (two system calls per reload). */
        while (have < size - 1 && (n = pread(r->children_fd, buf + have, size - 1 - have, (off_t) have)) > 0) {
                have += (size_t) n;
                if (n < 4096 - 64)
                        break;
        }
        buf[have] = '\0';
        for (char *p = buf, *end;; p = end) {
                long pid = strtol(p, &end, 10);
                if (end == p)
                        break;
                if (pid > 0 && !find_main(r, (pid_t) pid))
                        adopt(r, (pid_t) pid);
        }
}

static bool tree_alive(ProcTree *t) {
        if (!t->main_exited)
                return true;
        if (t->cgroup) {
                int k = cgroup_populated(t->cgroup);
                if (k >= 0) {
                        t->unreadable = 0;
                        t->unreadable_said = false;
                        return k > 0;
                }
                /* Out of fds or memory, say: read again shortly, as the
                 * change that brought us here will not come again. Said
                 * once, at once when it will not pass by itself. */
                bool passing = k == -EMFILE || k == -ENFILE || k == -ENOMEM || k == -ENODEV;
                int level = LOG_DEBUG;
                if (!t->unreadable_said && (!passing || ++t->unreadable >= UNREADABLE_WARN_AFTER)) {
                        t->unreadable_said = true;
                        level = LOG_WARNING;
                }
                log_full_errno(level, k, "Cannot read %s/cgroup.events; generation %u counts as running until it can: %m",
                               cgroup_path(t->cgroup), t->number);
                int r = arm_rescan(t->reaper, CGROUP_REREAD_INTERVAL);
                if (r < 0)
                        log_warning_errno(r, "Failed to arm a timer to read %s/cgroup.events again: %m",
                                          cgroup_path(t->cgroup));
                return true;
        }
        /* The group first, even with strays, so that it is seen empty as
         * soon as it is. Zombies count until reaped; those whose parent is
         * us were reaped just before, the others have a live parent in the
         * group, or one that left it. EPERM: someone is there that we may
         * not signal. */
        if (group_gone(t))
                return t->n_strays > 0;
        /* Killed, its last members may be children of a process that left
         * the group and is not ours to know (of no generation, or a stray's
         * child): no SIGCHLD tells us of their end, so look again. */
        if (t->doomed)
                (void) arm_rescan(t->reaper, CGROUP_REREAD_INTERVAL);
        return true;
}

static void sweep(Reaper *r) {
        if (r->sweeping || r->n_pending > 0 || r->n_unread > 0)
                return;
        /* A tree's empty() may free other trees' owners' state but never
         * another tree: restart after each callback all the same. */
        r->sweeping = true;
        for (bool again = true; again;) {
                again = false;
                for (ProcTree *t = r->trees; t; t = t->next)
                        if (!t->reported_empty && !tree_alive(t)) {
                                t->reported_empty = true;
                                t->cb->empty(t, t->userdata);
                                again = true;
                                break;
                        }
        }
        r->sweeping = false;
}

/* Returns true when it has just looked at our children. */
static bool reaped(Reaper *r, const siginfo_t *si) {
        pid_t pid = si->si_pid;
        ProcTree *t = find_main(r, pid);
        if (t) {
                /* What the main left that left its group is ours by now:
                 * know it before the owner decides what to do. */
                scan_children(r);
                t->main_exited = true;
                t->cb->main_exited(t, si, t->userdata);
                return true;
        }
        unread_remove(r, pid);
        if (pid_list_remove(r->pending, &r->n_pending, pid))
                log_debug("Reaped pid %d, exited before we knew whose it was.", (int) pid);
        if (pid_list_remove(r->unknown, &r->n_unknown, pid)) {
                log_debug("Reaped adopted pid %d.", (int) pid);
                return false;
        }
        for (t = r->trees; t; t = t->next)
                if (pid_list_remove(t->strays, &t->n_strays, pid)) {
                        log_debug("Reaped pid %d of generation %u.", (int) pid, t->number);
                        return false;
                }
        log_debug("Reaped pid %d.", (int) pid);
        return false;
}

static int on_sigchld(sd_event_source *s, const struct signalfd_siginfo *ssi, void *userdata) {
        Reaper *r = userdata;
        /* SIGCHLDs coalesce: reap until none is left. */
        bool scanned = false;
        for (;;) {
                siginfo_t si = {};
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != ECHILD)
                                log_warning_errno(errno, "waitid() failed: %m");
                        break;
                }
                if (si.si_pid == 0)
                        break;
                scanned = reaped(r, &si);
        }
        /* Children reparented to us say nothing when they arrive; when one
         * of their ancestors exits we hear of it, so look now (unless the
         * last exit reaped was a main's, which looked already). */
        if (!scanned)
                scan_children(r);
        sweep(r);
        return 0;
}

int reaper_new(sd_event *e, Reaper **ret) {
        Reaper *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->event = e;
        r->children_fd = -EBADF;
        int k = sd_event_add_signal(e, &r->sigchld, SIGCHLD, on_sigchld, r);
        if (k < 0) {
                free(r);
                return k;
        }
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                log_warning_errno(errno, "Failed to become a child subreaper; a generation's orphans will not be "
                                  "reaped or killed with it: %m");
        (void) open_children(r);
        *ret = r;
        return 0;
}

Reaper *reaper_free(Reaper *r) {
        if (!r)
                return NULL;
        while (r->trees)
                proc_tree_free(r->trees);
        sd_event_source_disable_unref(r->sigchld);
        free(r->unknown);
        free(r->pending);
        free(r->unread);
        sd_event_source_disable_unref(r->rescan);
        safe_close(r->children_fd);
        free(r);
        return NULL;
}

static void on_cgroup_changed(void *userdata) {
        ProcTree *t = userdata;
        sweep(t->reaper);
}

int reaper_track(Reaper *r, pid_t main, unsigned number, Cgroup *cg, const ProcTreeCallbacks *cb, void *userdata,
                 ProcTree **ret) {
        ProcTree *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        *t = (ProcTree) { .reaper = r, .number = number, .main = main, .cgroup = cg, .cb = cb, .userdata = userdata,
                          .next = r->trees };
        /* main got the pid of an older tree's main: that one's group was
         * empty when the number was given out. */
        for (ProcTree *o = r->trees; o; o = o->next)
                if (o->main == main)
                        o->group_gone = true;
        r->trees = t;
        if (cg) {
                int k = cgroup_watch(cg, r->event, on_cgroup_changed, t);
                if (k < 0)
                        log_warning_errno(k, "Failed to watch %s/cgroup.events; generation %u is known to be gone "
                                          "only at the next SIGCHLD: %m", cgroup_path(cg), number);
        }
        *ret = t;
        return 0;
}

static void tree_signal(ProcTree *t, int sig) {
        if (t->cgroup) {
                cgroup_signal(t->cgroup, sig);
                return;
        }
        /* The group id stays ours while the group has a member: a pid is not
         * reused while it names a live process group. */
        if (!group_gone(t) && kill(-t->main, sig) < 0 && errno != ESRCH)
                log_debug_errno(errno, "Failed to signal process group %d: %m", (int) t->main);
        /* Our own children, unreaped: their pids cannot be reused. */
        for (size_t i = 0; i < t->n_strays; i++)
                (void) kill(t->strays[i], sig);
}

void proc_tree_kill(ProcTree *t, int sig) {
        if (sig == SIGKILL)
                t->doomed = true;
        else if (sig != 0)
                t->stopping = sig;
        tree_signal(t, sig);
        if (signal_wants_cont(sig))
                tree_signal(t, SIGCONT);
        if (t->doomed && !t->cgroup)
                (void) tree_alive(t); /* looks again while the group lives */
}

void proc_tree_continue(ProcTree *t) {
        tree_signal(t, SIGCONT);
}

static void comm_of(pid_t pid, char *buf, size_t size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/comm", (int) pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, buf, size - 1);
        if (n <= 0)
                n = 0;
        buf[n] = '\0';
        char *nl = strchr(buf, '\n');
        if (nl)
                *nl = '\0';
}

void proc_tree_warn_strays(ProcTree *t) {
        if (t->cgroup)
                return; /* nobody leaves a cgroup by setsid() */
        scan_children(t->reaper);
        (void) group_gone(t);
        for (size_t i = 0; i < t->n_strays; i++) {
                char comm[32];
                pid_t pgid;
                if (read_pgrp(t->strays[i], &pgid) < 0 || in_group(t, pgid))
                        continue; /* gone, or still in the group */
                comm_of(t->strays[i], comm, sizeof comm);
                log_warning("Generation %u: pid %d (%s) left its process group; it gets the same drain deadline.",
                            t->number, (int) t->strays[i], comm);
        }
}

unsigned proc_tree_count(ProcTree *t) {
        unsigned n = 0;
        if (t->cgroup)
                return cgroup_count(t->cgroup);
        /* A daemon reparented to us since the last SIGCHLD is ours to count. */
        scan_children(t->reaper);
        (void) group_gone(t);
        DIR *d = opendir("/proc");
        if (!d)
                return 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                pid_t pgid;
                if (*end || pid <= 0 || read_pgrp((pid_t) pid, &pgid) < 0)
                        continue;
                if (in_group(t, pgid) || pid_list_has(t->strays, t->n_strays, (pid_t) pid))
                        n++;
        }
        closedir(d);
        return n;
}

bool proc_tree_has_cgroup(ProcTree *t) {
        return t && t->cgroup;
}

const char *proc_tree_cgroup_path(ProcTree *t) {
        return t && t->cgroup ? cgroup_path(t->cgroup) : NULL;
}

bool proc_tree_has(ProcTree *t, pid_t pid) {
        if (t->cgroup)
                return cgroup_has_pid(t->cgroup, pid);
        pid_t pgid;
        (void) group_gone(t);
        return read_pgrp(pid, &pgid) >= 0 && (in_group(t, pgid) || pid_list_has(t->strays, t->n_strays, pid));
}

uint64_t proc_tree_memory(ProcTree *t) {
        return t->cgroup ? cgroup_memory(t->cgroup) : UINT64_MAX;
}

bool proc_tree_empty(ProcTree *t) {
        /* A child we could not yet attribute may be this tree's. */
        bool empty = t->reaper->n_pending == 0 && t->reaper->n_unread == 0 && !tree_alive(t);
        /* Its caller, so told, arms no deadline and kills nothing: its end
         * is reported from the loop, also when nothing else is to come
         * (its group emptied unseen, and its id is another's by now). */
        if (empty && !t->reported_empty)
                (void) arm_rescan(t->reaper, 0);
        return empty;
}

ProcTree *proc_tree_free(ProcTree *t) {
        if (!t)
                return NULL;
        for (ProcTree **p = &t->reaper->trees; *p; p = &(*p)->next)
                if (*p == t) {
                        *p = t->next;
                        break;
                }
        /* Strays we still have become plain adopted children: reaped when
         * they exit. */
        for (size_t i = 0; i < t->n_strays; i++)
                (void) pid_list_add(&t->reaper->unknown, &t->reaper->n_unknown, t->strays[i]);
        free(t->strays);
        cgroup_free(t->cgroup);
        free(t);
        return NULL;
}
