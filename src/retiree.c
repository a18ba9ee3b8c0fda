/* SPDX-License-Identifier: MIT */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cgroup.h"
#include "event-util.h"
#include "log.h"
#include "signal-util.h"
#include "proc-stat.h"
#include "retiree.h"
#include "util.h"

struct Retiree {
        pid_t pid;
        int pidfd;
        Cgroup *cgroup;                 /* its generation's, with a delegated cgroup; NULL: none */
        sd_event *event;
        sd_event_source *exit_source;   /* the pidfd: readable once the process has exited */
        sd_event_source *timer_source;  /* the drain deadline */
        sd_event_source *reread_source; /* cgroup.events unreadable: read again */
        RetireeOf of;
        bool held;                      /* no stop signal of ours: its own handoff retires it */
        bool main_exited;               /* ... while processes of its cgroup (or group) still run */
        /* Without a cgroup: its process group (spawn.c), which outlives its
         * main while a member lives (its workers): waited for, polled, and
         * SIGKILLed at the deadline (see retiree_start()). */
        bool group;
        pid_t running;                  /* of its group, seen running at the last poll: asked first; 0: none */
        bool killed;                    /* SIGKILL sent: what is left of it is dying */
        RetireeGone gone;
        void *userdata;
};

/* Whose generation it is, in a log line: "the %s handoff's generation". */
static const char *whose(RetireeOf of) {
        return of == RETIREE_ORPHAN ? "dead next" : "previous";
}

int pidfd_get_pid(int pidfd, pid_t *ret) {
        char path[64], line[128];
        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        int r = -EINVAL;
        long v;
        while (r == -EINVAL && fgets(line, sizeof line, f))
                if (sscanf(line, "Pid: %ld", &v) == 1)
                        /* -1: reaped; 0: not in our pid namespace. */
                        r = v <= 0 || v > 4194304 ? -ESRCH : 0;
        fclose(f);
        if (r == 0)
                *ret = (pid_t) v;
        return r;
}

void retiree_status(const Retiree *r, usec_t now, StatusGeneration *ret) {
        *ret = (StatusGeneration) {
                .pid = r->pid,
                .role = "retiring",
                .previous_handoff = r->of == RETIREE_PREVIOUS,
                .orphaned = r->of == RETIREE_ORPHAN,
                .kill_in = status_time_left(event_timer_time(r->timer_source), now),
                .main_exited = r->main_exited,
                .processes = r->cgroup ? cgroup_count(r->cgroup) : 1,
                .memory = r->cgroup ? cgroup_memory(r->cgroup) : UINT64_MAX,
        };
}

/* Whether process group id, that of a generation whose main (pid id) may
 * be gone, has a member still (one of another uid included, and a zombie).
 * While one does, the id is not reused, and the group may be signalled.
 * A process of that pid while the main is reaped (main_reaped) is another
 * one, then: the group emptied, the pid came round again, and the group
 * of that id is that process's (a setsid() of anyone's), not ours. */
static bool group_of_id_exists(pid_t id, bool main_reaped) {
        if (kill(-id, 0) < 0 && errno != EPERM)
                return false;
        return !main_reaped || (kill(id, 0) < 0 && errno == ESRCH);
}

static bool group_exists(const Retiree *r) {
        return group_of_id_exists(r->pid, pidfd_signal(r->pidfd, 0) == -ESRCH);
}

/* Whether a process of its group still runs. A zombie is a member until
 * it is reaped, and runs nothing: its main, whose parent is not us and
 * may never reap it (a handover without a service manager, under an
 * ancestor that does not reap), or a worker its live parent has not
 * reaped yet. /proc is walked only while the group exists; a walk that
 * cannot tell (no member seen: the group emptied meanwhile, or hidepid=
 * hides them) counts as running, and the next poll asks again. */
static bool group_running(Retiree *r) {
        return group_exists(r) && process_group_running(r->pid, &r->running) != 0;
}

/* Its cgroup, whole, with one; and its process group: the generation's own
 * (spawn.c), whose id stays its main's while the main lives, which the
 * pidfd tells us. (Checked, then killed: the main reaped and its pid
 * reused as a group id in between would take microseconds against a pid
 * space's wrap-around.) */
void retiree_kill(Retiree *r) {
        if (!r)
                return;
        r->killed = true;
        if (r->cgroup)
                cgroup_signal(r->cgroup, SIGKILL);
        /* Its main exited (reaped, even) before that was dispatched counts
         * as exited: the group, which check_gone() no longer waits for once
         * killed, is killed all the same. */
        bool exited = r->main_exited || pidfd_signal(r->pidfd, 0) < 0;
        if (exited && r->group && group_exists(r))
                (void) kill(-r->pid, SIGKILL);
        if (exited)
                return;
        (void) kill(-r->pid, SIGKILL);
        (void) pidfd_signal(r->pidfd, SIGKILL);
}

static void done(Retiree *r) {
        /* Held only (its own handoff retires it): every handover's, not news. */
        log_full_errno(r->held ? LOG_DEBUG : LOG_INFO, 0, "The %s handoff's generation (pid %d) has exited.",
                       whose(r->of), (int) r->pid);
        r->exit_source = sd_event_source_disable_unref(r->exit_source);
        r->timer_source = sd_event_source_disable_unref(r->timer_source);
        r->reread_source = sd_event_source_disable_unref(r->reread_source);
        r->gone(r->userdata);
}

static void check_gone(Retiree *r);

static int on_reread(sd_event_source *src, uint64_t usec, void *userdata) {
        Retiree *r = userdata;
        r->reread_source = sd_event_source_disable_unref(r->reread_source);
        check_gone(r);
        return 0;
}

/* Whether a process of it runs besides its main: 1, 0, or (a cgroup.events
 * that cannot be read) -errno. Its process group: no event says when it is
 * empty. Zombies do not count (a main whose parent is not ours may stay one
 * for good). Once SIGKILLed, what is left of it is as good as gone. */
static int populated(Retiree *r) {
        return r->cgroup ? cgroup_populated(r->cgroup) : (r->group && !r->killed && group_running(r));
}

/* Gone once its main has exited and, with a cgroup, that is empty (gone
 * too: cgroup-walk.h reads that as empty). A cgroup.events that cannot be
 * read now (out of fds, say) is not empty: it is read again, and the
 * deadline holds meanwhile. k: populated(), as just read. */
static void settle(Retiree *r, int k) {
        if (k > 0 && r->group) {
                if (r->reread_source)
                        return;
                int e = event_add_time_relative(r->event, &r->reread_source, CGROUP_REREAD_INTERVAL, 0, on_reread, r);
                if (e < 0) {
                        log_warning_errno(e, "Failed to watch the process group of the %s handoff's generation "
                                          "(pid %d); killing what is left of it: %m", whose(r->of), (int) r->pid);
                        retiree_kill(r);
                        done(r);
                }
                return;
        }
        if (k == 0) {
                done(r);
                return;
        }
        if (k > 0 || r->reread_source)
                return;
        log_debug_errno(k, "Cannot read %s/cgroup.events; reading it again: %m", cgroup_path(r->cgroup));
        int e = event_add_time_relative(r->event, &r->reread_source, CGROUP_REREAD_INTERVAL, 0, on_reread, r);
        if (e < 0) {
                /* Not to wait for ever: its main, then, as without a cgroup. */
                log_warning_errno(e, "Failed to read %s again; the %s handoff's generation counts as ended: %m",
                                  cgroup_path(r->cgroup), whose(r->of));
                done(r);
        }
}

static void check_gone(Retiree *r) {
        if (r->main_exited)
                settle(r, populated(r));
}

static void on_cgroup_changed(void *userdata) {
        check_gone(userdata);
}

static int on_retiree_exit(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Retiree *r = userdata;
        r->main_exited = true;
        r->exit_source = sd_event_source_disable_unref(r->exit_source);
        /* Read once, for this line and for settle(): a process group is a
         * walk of /proc. */
        int k = populated(r);
        if (k > 0)
                log_debug("The %s handoff's generation's main (pid %d) has exited; other processes of it run on "
                          "in %s.", whose(r->of), (int) r->pid, r->cgroup ? cgroup_path(r->cgroup) : "its process group");
        settle(r, k);
        return 0;
}

static int on_deadline(sd_event_source *src, uint64_t usec, void *userdata) {
        Retiree *r = userdata;
        r->timer_source = sd_event_source_disable_unref(r->timer_source);
        log_warning("The %s handoff's generation (pid %d%s) did not exit in time; sending SIGKILL%s%s.",
                    whose(r->of), (int) r->pid, r->main_exited ? ", exited" : "", r->cgroup ? " to its cgroup " : "",
                    r->cgroup ? cgroup_path(r->cgroup) : "");
        retiree_kill(r);
        return 0;
}

/* Its generation's cgroup, read while the pidfd says the main lives: the
 * pid is still its own then. */
static Cgroup *generation_cgroup(CgroupRoot *root, RetireeOf of, int pidfd, pid_t pid) {
        Cgroup *c = NULL;
        int r = cgroup_open_generation_of(root, pid, &c);
        if (r < 0)
                log_debug_errno(r, "Cannot find the cgroup of the %s handoff's generation (pid %d): %m", whose(of),
                                (int) pid);
        if (c && pidfd_signal(pidfd, 0) < 0)
                c = cgroup_free(c);
        return c;
}

int retiree_start(sd_event *e, RetireeOf of, int pidfd, int sig, usec_t drain_timeout, CgroupRoot *root,
                  RetireeGone gone, void *userdata, Retiree **ret) {
        return retiree_start_group(e, of, pidfd, 0, NULL, sig, drain_timeout, root, gone, userdata, ret);
}

/* The generation cgroup of that name, while it is populated; else NULL. */
static Cgroup *populated_generation(CgroupRoot *root, const char *name) {
        Cgroup *c = NULL;
        if (!name || !name[0] || cgroup_open_generation(root, name, &c) < 0 || !c)
                return NULL;
        if (cgroup_populated(c) <= 0)
                c = cgroup_free(c);
        return c;
}

int retiree_start_group(sd_event *e, RetireeOf of, int pidfd, pid_t group, const char *cgroup, int sig,
                        usec_t drain_timeout, CgroupRoot *root, RetireeGone gone, void *userdata, Retiree **ret) {
        _cleanup_close_ int fd = pidfd;
        pid_t pid;
        *ret = NULL;
        int r = pidfd_get_pid(fd, &pid);
        if (r < 0 && r != -ESRCH) {
                /* Out of fds (its fdinfo), say: not watched, but stopped
                 * all the same, not left serving. */
                if (sig != 0)
                        (void) pidfd_signal(fd, sig);
                return log_warning_errno(r, "Failed to %s the %s handoff's generation: no pidfd of it: %m",
                                         sig != 0 ? "watch" : "hold", whose(of));
        }
        if (r >= 0 && (r = pidfd_signal(fd, 0)) < 0 && r != -ESRCH)
                return log_warning_errno(r, "Failed to %s the %s handoff's generation (pid %d): %m",
                                         sig != 0 ? "signal" : "hold", whose(of), (int) pid);
        bool led = false, by_cgroup = false;
        Cgroup *left = NULL;
        if (r == -ESRCH) {
                /* Its main has exited. Its cgroup, or its group, known from
                 * when the main led it, may hold its workers still: while
                 * the group has a member, its id is given to no one else.
                 * The group also with a cgroup root, when no cgroup of it
                 * is known (an APP read after its main was reaped, a NAMED
                 * from an older handoff) or it holds nothing. */
                if (root)
                        left = populated_generation(root, cgroup);
                if (!left && (group <= 0 || !group_of_id_exists(group, true)))
                        return 0;
                led = true;
                by_cgroup = left;
                pid = group;
                log_debug("The %s handoff's generation's main (pid %d) has exited already; its %s has members "
                          "still.", whose(of), (int) pid, left ? "cgroup" : "process group");
        }

        Retiree *t = calloc(1, sizeof *t);
        if (!t) {
                if (sig != 0 && left)
                        cgroup_signal(left, sig);
                else if (sig != 0)
                        (void) (led ? kill(-pid, sig) : pidfd_signal(fd, sig));
                cgroup_free(left);
                return log_warning_errno(ENOMEM, "Out of memory; the %s handoff's generation (pid %d) has no "
                                         "drain deadline.", whose(of), (int) pid);
        }
        *t = (Retiree) { .pid = pid, .pidfd = TAKE_FD(fd), .event = e, .of = of, .held = sig == 0, .gone = gone,
                         .userdata = userdata };
        /* Its cgroup before the stop signal: a main that exits at once on
         * it, and is reaped, could no longer tell us. Its main gone
         * already (led), only the cgroup named: the pid may be another
         * process's by now. */
        if (root && (t->cgroup = left ? left : led ? NULL : generation_cgroup(root, of, t->pidfd, pid)))
                log_debug("The %s handoff's generation (pid %d) runs in %s.", whose(of), (int) pid,
                          cgroup_path(t->cgroup));
        if (t->cgroup && (r = cgroup_watch(t->cgroup, e, on_cgroup_changed, t)) < 0) {
                /* Its main, then, as without a cgroup. */
                log_debug_errno(r, "Cannot watch %s: %m", cgroup_path(t->cgroup));
                t->cgroup = cgroup_free(t->cgroup);
        }
        /* Its process group: the processes its main leaves behind. Retired
         * (its handoff is dead), it has nobody else to end them; held, its
         * handoff, alive, does, unless it is killed while they drain. Only
         * while its main leads it (spawn.c): a main that moved to another
         * group leaves nothing to hold its id once it is reaped, and a
         * stranger's group could take that id. Read while the pidfd says
         * the pid is its own. */
        t->group = !t->cgroup && (led ? !by_cgroup : getpgid(pid) == pid && pidfd_signal(t->pidfd, 0) == 0);
        if (sig != 0) {
                r = led ? -ESRCH : pidfd_signal(t->pidfd, sig);
                bool to_group = r == -ESRCH && (t->group || (by_cgroup && t->cgroup));
                if (to_group && t->cgroup) {
                        cgroup_signal(t->cgroup, sig); /* the same, to its cgroup */
                        r = 0;
                } else if (to_group)
                        /* Its main has exited and left its group: nobody
                         * passes the stop signal on to what is left of it,
                         * so the group gets it, as generation_retire()
                         * sends it to a main's strays. (The group's id is
                         * no one else's while it has a member.) */
                        r = kill(-pid, sig) < 0 ? -errno : 0;
                if (r >= 0 && signal_wants_cont(sig)) {
                        /* A stopped main acts on it once continued; its
                         * workers, stopped with it (SIGTTIN stops the
                         * group), on what it passes on to them. */
                        if (!to_group)
                                (void) pidfd_signal(t->pidfd, SIGCONT);
                        if (t->cgroup)
                                cgroup_signal(t->cgroup, SIGCONT);
                        else if (t->group)
                                (void) kill(-pid, SIGCONT);
                }
                if (r == -ESRCH) /* its main has exited meanwhile: its exit comes next */
                        log_debug("The %s handoff's generation's main (pid %d) has exited before its stop "
                                  "signal.", whose(of), (int) pid);
                else if (r < 0)
                        log_warning_errno(r, "Failed to signal the %s handoff's generation (pid %d): %m",
                                          whose(of), (int) pid);
                else
                        log_info("Retiring the %s handoff's generation (%s %d): sent %s.", whose(of),
                                 !to_group   ? "pid"
                                 : t->cgroup ? "its main gone, cgroup of pid"
                                             : "its main gone, process group",
                                 (int) pid, SIGNAL_NAME(sig));
        } else
                log_debug("Holding the %s handoff's generation (pid %d) to its drain deadline.", whose(of),
                          (int) pid);
        r = sd_event_add_io(e, &t->exit_source, t->pidfd, EPOLLIN, on_retiree_exit, t);
        if (r >= 0)
                r = event_add_time_relative(e, &t->timer_source, drain_timeout, 1000, on_deadline, t);
        if (r < 0) {
                /* One we retire could drain for ever, and accept meanwhile:
                 * no deadline is worse than none to drain in, as for a
                 * generation of ours (generation_retire()). One we hold
                 * has its own handoff's deadline. */
                bool held = t->held;
                if (!held)
                        retiree_kill(t);
                retiree_free(t);
                return log_warning_errno(r, "Failed to watch the %s handoff's generation (pid %d); %s: %m",
                                         whose(of), (int) pid,
                                         held ? "it has no drain deadline" : "sending SIGKILL now");
        }
        *ret = t;
        return 0;
}

Retiree *retiree_free(Retiree *r) {
        if (!r)
                return NULL;
        sd_event_source_disable_unref(r->exit_source);
        sd_event_source_disable_unref(r->timer_source);
        sd_event_source_disable_unref(r->reread_source);
        cgroup_free(r->cgroup);
        safe_close(r->pidfd);
        free(r);
        return NULL;
}
