/* SPDX-License-Identifier: MIT */
/* The supervisor: the one owner of the service's state. It turns signals,
 * readiness, exits and control requests into events for the reload machine
 * (fsm.h) and the role machine (role.h), and carries out their actions with
 * the modules below it; none of them calls back into this file except
 * through the callbacks it gives them. */
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "close-async.h"
#include "control.h"
#include "event-util.h"
#include "fsm.h"
#include "generation.h"
#include "handover.h"
#include "log.h"
#include "next-handoff.h"
#include "proc-stat.h"
#include "progress.h"
#include "reaper.h"
#include "reload-config.h"
#include "results.h"
#include "retiree.h"
#include "role.h"
#include "runtime-files.h"
#include "sdnotify.h"
#include "service-store.h"
#include "signal-util.h"
#include "standby-policy.h"
#include "status.h"
#include "supervisor.h"
#include "takeover.h"

#include <systemd/sd-daemon.h>

#ifndef HANDOFF_VERSION
#define HANDOFF_VERSION "unknown"
#endif

typedef struct Supervisor Supervisor;

/* The generation of a next handoff that died before it stopped it: ours to
 * retire (retiree.h), and to wait for before we exit. */
typedef struct Orphan {
        Supervisor *s;
        Retiree *retiree;
        unsigned number;
        usec_t started;          /* its reload's start: when it was started, near enough */
        usec_t ready;            /* its next handoff's READY; 0: none */
        struct Orphan *next;
} Orphan;

/* What a start (the first, or a reload) starts: in supervise mode and at
 * the first start an app generation, in handover mode's reloads the next
 * handoff. Both are reached through this table, so the reload path has no
 * "if handover" in it. */
typedef struct CandidateOps {
        /* Starts number; *ret_code: the exit code should it fail at once,
         * and why its cause, when it names one. */
        int (*start)(Supervisor *s, unsigned number, int *ret_code, char *why, size_t why_size);
        /* Rollback: stop what start started, if it still runs. */
        void (*stop)(Supervisor *s);
        /* A second stop request: kill it now. */
        void (*kill)(Supervisor *s);
} CandidateOps;

struct Supervisor {
        sd_event *event;
        const SupervisorParams *p;
        const Options *opt;      /* the serving generation's: current's, or p->opt */
        ReloadConfig *current;   /* a command line a reload brought in; NULL: p->argv */
        ReloadConfig *trying;    /* the one the reload in progress starts with */
        ReloadConfig *pending;   /* a request's, for the next reload to start with */
        GenerationConfig config;
        Machine machine;
        Role role;
        const CandidateOps *reload_ops; /* what a reload starts */

        Generation *gens;        /* every app generation with a live process */
        Generation *serving;
        Generation *candidate;   /* the candidate generation, while it starts */
        NextHandoff *next;       /* handover mode: the next handoff, until it takes over */
        NextHandoff **aborted;   /* ... and those told to stop (a failed reload's), until they
                                  * exit: a reload may start the next one meanwhile */
        size_t n_aborted;
        Standby *standby;        /* handover mode: the next one, started ahead (standby.h) */
        StandbyPolicy standby_policy; /* ... whether to keep, start or stop it (standby-policy.h) */
        sd_event_source *standby_timer; /* ... and the delay it asks for before a start */
        unsigned last_number;

        Event queue[8];          /* events raised while dispatching */
        unsigned n_queued;
        bool dispatching;

        usec_t started;          /* this handoff process, for "handoff status" */
        usec_t reload_started;
        bool candidate_reloads;  /* the candidate was started by a reload, not as the service's first */
        usec_t inherited_reload_started; /* started as the next handoff: when the reload began */
        Results results;
        int exit_code;
        bool serving_died;       /* the serving generation exited on its own: its status is
                                  * the service's, whatever a candidate does then */
        bool stop_requested;     /* SIGTERM/SIGINT/SIGPWR came: a second one kills everything */
        bool stop_by_predecessor; /* ... came from our predecessor (STOP): the next
                                  * signal is the service manager's, not a second one */
        bool ready_announced;    /* our predecessor's MAINPID datagram said READY=1 for
                                  * the generation committed at our takeover */

        sd_event_source *bake_timer; /* --bake: the ready candidate's time beside the old one */
        Progress progress;       /* a starting candidate's STATUS= lines */
        Handover *handover;      /* old main: MAINPID= waiting to be sent, or sent and awaiting systemd's barrier */
        Results handed_results;  /* ... ours once it is sent; then ours before it, for hand_back() */
        pid_t naming;            /* ... the next handoff it names, until TAKEOVER (it may be freed
                                  * meanwhile: see hand_back()) */
        bool next_lost;          /* ... which failed before systemd's barrier came */
        bool mainpid_unconfirmed; /* ... sent, and the barrier not answered: systemd may name us main
                                  * still (exit_as_next_handoff()) */
        bool stop_while_yielded; /* ... an operator's stop, ignored as an old main's meanwhile */
        pid_t handed_to;         /* old main: the next handoff, once it took over */
        int handed_pidfd;        /* ... and a pidfd of it: a SIGHUP passed on reaches it or nobody */
        int handed_channel;      /* old main: our end of its channel, open until we exit */
        /* Old main: the service manager's stop reached us after MAINPID= (it
         * may not have taken it: systemd 252 ignores MAINPID= once stopping,
         * and KillMode=mixed signals only the main it knows). Passed on as
         * STOP; we then exit only after the next handoff, so that whichever
         * of us systemd waits for goes last (see stop_next_handoff()). */
        bool pass_stop;          /* to send STOP once the next handoff took over */
        bool next_takes_stop;    /* it understands STOP (an older one does not) */
        bool awaits_next;        /* STOP sent: until the next handoff exits */
        bool stop_sent;          /* ... and for good: its exit is that stop's */
        bool drained_sent;       /* DRAINED sent: our generations are gone */
        sd_event_source *next_exit;      /* its end of file on handed_channel */
        Takeover *takeover;      /* started as the next handoff: the predecessor's channel */
        bool predecessor_drained; /* ... and it said DRAINED: it waits for our end of file */
        pid_t predecessor;       /* ... and its pid (kept once it has exited: "OUTCOME <pid> <start time>") */
        uint64_t predecessor_start_time; /* ... and its start time, which tells it from a later
                                          * process of that pid (0: unknown, OUTCOME refused) */
        /* ... after NAMED: a pidfd of its serving generation's main, and
         * that generation and how it retires, for us to retire it should
         * the predecessor die before TAKEOVER, or hold it after; then the
         * retirement (or hold) itself. */
        int left_pidfd;
        pid_t left_group;       /* its process group, as NAMED told it; 0: none */
        ChannelNamed left;
        Retiree *retiree;
        sd_event_source *predecessor_exit;
        Orphan *orphans;
        char **inherited_names;  /* ... and its store, for the resync at takeover */
        char *environment_keys;  /* config.environment_keys points here */

        Control *control;        /* "handoff reload", "handoff status" */
        ServiceStore store;
        usec_t notify_warned;    /* the last "Failed to notify service manager" warning */
        unsigned notify_unwarned; /* ... and the failures since, not logged */
        int notify_failed;       /* the manager unreachable: the error logged, until a message gets through */
        Reaper *reaper;          /* SIGCHLD: every child, every generation's whole tree */
        CgroupRoot *cgroup;      /* with a delegated cgroup: where generations get theirs */
};

static void dispatch(Supervisor *s, Event ev);
static void standby_update(Supervisor *s);

/* Started as the next handoff of a handover: our first generation is a
 * reload's, whichever way we came to be main. */
static bool started_as_next(const Supervisor *s) {
        return s->p->takeover_channel >= 0;
}

#define NOTIFY_WARN_INTERVAL (10 * USEC_PER_SEC)

/* Sends buf, a message made already, and says what failed. */
static void notify_systemd_text(Supervisor *s, const char *buf) {
        /* Silent unless main: after MAINPID= named the next handoff, nothing
         * we could say is true any more, and before our takeover it is our
         * predecessor who speaks. */
        if (!role_speaks_to_systemd(s->role))
                return;
        int r = sdnotify_send(buf, NULL, 0);
        if (r > 0 && s->notify_failed != 0) {
                log_info("The service manager is reachable again (%u failed message%s not logged).",
                         s->notify_unwarned, s->notify_unwarned == 1 ? "" : "s");
                s->notify_failed = 0;
                s->notify_unwarned = 0;
        }
        if (r >= 0)
                return;
        bool ready = strncmp(buf, "READY=1", 7) == 0;
        bool control = ready || strncmp(buf, "RELOADING=1", 11) == 0 || strncmp(buf, "STOPPING=1", 10) == 0 ||
                       strncmp(buf, "MAINPID=", 8) == 0;
        int level = ready ? LOG_ERR : LOG_WARNING;
        usec_t now = now_monotonic();
        /* A manager whose queue is full fails some messages: a server that
         * keeps talking while the manager does not read would fill the
         * journal, so of the rest, one warning every NOTIFY_WARN_INTERVAL,
         * saying how many went unlogged. A manager that cannot be reached
         * (its socket gone, as a container runtime's may be) fails every
         * message alike: that is said once, until one gets through again. */
        bool full = r == -ENOBUFS || r == -EAGAIN;
        bool said = full ? !control && s->notify_warned > 0 && now < s->notify_warned + NOTIFY_WARN_INTERVAL
                         : r == s->notify_failed;
        if (said) {
                log_debug_errno(r, "Failed to notify service manager: %m");
                s->notify_unwarned++;
                return;
        }
        const char *once = full ? "" : "; not logged again until a message gets through";
        if (s->notify_unwarned > 0)
                log_full_errno(level, r,
                               "Failed to notify service manager: %m (and %u more times since the last warning)%s",
                               s->notify_unwarned, once);
        else
                log_full_errno(level, r, "Failed to notify service manager: %m%s", once);
        s->notify_warned = now;
        s->notify_unwarned = 0;
        if (!full)
                s->notify_failed = r;
}

static void notify_systemd(Supervisor *s, const char *fmt, ...) _printf_(2, 3);
static void notify_systemd(Supervisor *s, const char *fmt, ...) {
        if (!role_speaks_to_systemd(s->role))
                return;
        /* On the heap, not in this frame: it is called at the bottom of a
         * reload's deepest calls, and every stack page those ever touched
         * stays dirty for handoff's life. */
        _cleanup_free_ char *text = NULL;
        char small[128];
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&text, fmt, ap);
        va_end(ap);
        if (r < 0) {
                /* Out of memory: what fits here, cut, rather than nothing
                 * (READY=1 above all). */
                text = NULL;
                va_start(ap, fmt);
                (void) vsnprintf(small, sizeof small, fmt, ap);
                va_end(ap);
        }
        notify_systemd_text(s, text ? text : small);
}

static void set_role(Supervisor *s, RoleEvent ev) {
        Role before = s->role;
        s->role = role_step(s->role, ev);
        log_debug("role %s + %s -> %s", role_to_string(before), role_event_to_string(ev), role_to_string(s->role));
}

/* The options the candidate runs under: a reload's new ones, if it brought any. */
static const Options *candidate_opt(const Supervisor *s) {
        return s->trying ? &s->trying->opt : s->opt;
}

static bool mirroring(Supervisor *s) {
        return s->p->mirror_store && role_speaks_to_systemd(s->role);
}

/* Started as a next handoff: our predecessor runs, and drains, until its
 * end of file or its DRAINED. Not the role's to say: once we hand over in
 * turn (yielded, handed-off) it may still drain. */
static bool predecessor_draining(const Supervisor *s) {
        return s->takeover && !s->predecessor_drained;
}

/* All that we wait for before we exit, but the next handoff we passed a
 * stop on to (which waits for our DRAINED, then we for its exit). Once
 * MAINPID= names the next handoff it is systemd's to wait for, not ours.
 * A new main that stops right after a reload waits for the old one, still
 * draining, so that systemd does not kill what it serves; and so does one
 * that has handed over in turn since. */
static bool drained(const Supervisor *s) {
        return !s->gens && (!s->next || s->role == ROLE_YIELDED) && s->n_aborted == 0 &&
               !predecessor_draining(s) && !s->retiree && !s->orphans;
}

static bool all_gone(Supervisor *s) {
        return drained(s) && !s->awaits_next;
}

static void next_stop_progress(Supervisor *s);

static void check_all_gone(Supervisor *s) {
        next_stop_progress(s);
        if (s->machine.state == STATE_STOPPING && all_gone(s))
                dispatch(s, EV_ALL_GONE);
}

static void write_pid(Supervisor *s, pid_t pid) {
        if (!s->opt->pid_file)
                return;
        int r = write_pid_file(s->opt->pid_file, pid);
        if (r < 0)
                log_warning_errno(r, "Failed to write pid file %s: %m", s->opt->pid_file);
}

static void list_remove(Supervisor *s, Generation *g) {
        for (Generation **p = &s->gens; *p; p = &(*p)->next)
                if (*p == g) {
                        *p = g->next;
                        break;
                }
        if (s->serving == g)
                s->serving = NULL;
        if (s->candidate == g)
                s->candidate = NULL;
        generation_free(g);
        /* A generation's memory (its environment, event sources, process
         * tree) is freed here, but glibc keeps freed heap pages dirty below
         * its trim threshold: after a burst of reloads with several
         * generations alive at once, handoff kept ~70 kB more private dirty
         * memory for good. Hand the free pages back whenever one is gone,
         * but leave 16 KiB at the top of the heap: the next generation's
         * allocations fit there without moving the break. Trimmed to
         * nothing, the heap shrank and grew again by brk() at every
         * reload. */
        (void) malloc_trim(16 * 1024);
}

static void record_failure(Supervisor *s, unsigned number, const char *why, int code) {
        results_failed(&s->results, number, why);
        if (!s->serving_died)
                s->exit_code = code == 0 ? 1 : code;
        /* Started as the next handoff: tell the predecessor why, before we go. */
        if (role_awaits_takeover(s->role))
                takeover_report_failed(s->takeover, s->results.last_result ? s->results.last_result : why);
}

/* ---- progress of a starting candidate ---------------------------------- */

static void send_progress(const char *line, void *userdata) {
        char esc[STATUS_ESCAPED_MAX];
        notify_escape(line, esc, sizeof esc);
        notify_systemd(userdata, "STATUS=%s", esc);
}

/* A starting generation's STATUS= line: what handoff knows, then the
 * generation's own text (at most 1024 bytes of it). */
static void progress_text(Supervisor *s, char *buf, size_t size, unsigned number, pid_t pid, usec_t started,
                          const char *app_status) {
        char d[32];
        format_duration(d, sizeof d, (now_monotonic() - started) / USEC_PER_MSEC * USEC_PER_MSEC);
        if (s->machine.state == STATE_STARTING)
                snprintf(buf, size, "Starting generation %u (pid %d, %s)%s%.*s", number, (int) pid, d,
                         app_status[0] ? ": " : "", (int) utf8_prefix(app_status, 1024), app_status);
        else
                snprintf(buf, size, "Reloading: generation %u %s (pid %d, %s)%s%.*s", number,
                         s->machine.state == STATE_BAKING ? "baking" : "starting", (int) pid, d,
                         app_status[0] ? ": " : "", (int) utf8_prefix(app_status, 1024), app_status);
}

/* ... to systemctl status (progress.h), at most every PROGRESS_INTERVAL. */
static void show_progress(Supervisor *s, unsigned number, pid_t pid, usec_t started, const char *app_status) {
        char line[PROGRESS_LINE_MAX];
        progress_text(s, line, sizeof line, number, pid, started, app_status);
        progress_update(&s->progress, line);
}

/* ---- callbacks from app generations ------------------------------------ */

/* How long a generation took from its start to READY=1, in whole ms. */
static const char *ready_after(const Generation *g, char *buf, size_t size) {
        return format_duration(buf, size, (g->ready_usec - g->started_usec) / USEC_PER_MSEC * USEC_PER_MSEC);
}

static void on_gen_ready(Generation *g, const char *status, void *userdata) {
        Supervisor *s = userdata;
        if (g != s->candidate)
                return;
        /* Said with READY=1: the text it serves with, in our READY=1 line
         * already, as systemd shows both at once. As the next handoff, we
         * report it before READY: our predecessor's MAINPID= datagram has
         * it (the channel carries them apart, so a progress line with it
         * comes first). */
        if (status)
                results_candidate_status(&s->results, g->number, status);
        if (role_awaits_takeover(s->role)) {
                char d[32];
                log_info("Generation %u (%s) is ready after %s.", g->number, generation_describe(g),
                         ready_after(g, d, sizeof d));
                /* Our predecessor commits, then tells us. The pid file names
                 * us before the commit message is sent. */
                write_pid(s, getpid());
                if (status)
                        takeover_report_status(s->takeover, status);
                takeover_report_ready(s->takeover);
                return;
        }
        dispatch(s, EV_READY);
        /* --bake: it is the candidate still, and its text the progress line's. */
        if (status && g == s->candidate && s->machine.state == STATE_BAKING)
                show_progress(s, g->number, g->pid, g->started_usec, status);
}

static void on_gen_start_timeout(Generation *g, void *userdata) {
        Supervisor *s = userdata;
        char d[32], why[64];
        if (g != s->candidate)
                return;
        /* Its EXTEND_TIMEOUT_USEC= may have moved the deadline: then say how long it had. */
        usec_t had = g->start_extended ? (now_monotonic() - g->started_usec) / USEC_PER_MSEC * USEC_PER_MSEC
                                       : candidate_opt(s)->start_timeout;
        const char *hint = generation_unheard_hint(g);
        log_error("Generation %u (%s) did not become ready within %s%s.", g->number, generation_describe(g),
                  format_duration(d, sizeof d, had), hint ? hint : "");
        snprintf(why, sizeof why, "not ready within %s", d);
        record_failure(s, g->number, why, 1);
        dispatch(s, EV_FAILED);
}

static void on_gen_exited(Generation *g, void *userdata) {
        Supervisor *s = userdata;
        char how[64];
        /* Copied now: a rollback dispatched below frees the candidate's
         * options (and a command line adopted during a bake, s->opt). */
        const Options *o = g == s->candidate ? candidate_opt(s) : s->opt;
        int stop_signal = o->stop_signal;
        usec_t drain_timeout = o->drain_timeout;
        exit_info_describe(&g->exit_info, how, sizeof how);

        if (g == s->candidate && s->machine.state == STATE_BAKING) {
                char why[96];
                log_error("Generation %u (%s) %s within the bake time; rolling back.", g->number, generation_describe(g),
                          how);
                snprintf(why, sizeof why, "%s within the bake time", how);
                record_failure(s, g->number, why, exit_info_code(&g->exit_info));
                dispatch(s, EV_FAILED);
        } else if (g == s->candidate) {
                log_error("Generation %u (%s) failed to start: %s.", g->number, generation_describe(g), how);
                record_failure(s, g->number, how, exit_info_code(&g->exit_info));
                dispatch(s, EV_FAILED);
        } else if (g == s->serving && !s->stop_requested) {
                /* The service ends with it; a clean exit is no error (systemd
                 * logs a main process's success at info level, too). */
                bool clean = g->exit_info.si_code == CLD_EXITED && g->exit_info.si_status == 0;
                log_full_errno(clean ? LOG_NOTICE : LOG_ERR, 0, "Serving generation %u (%s) %s.", g->number,
                         generation_describe(g), how);
                s->exit_code = exit_info_code(&g->exit_info);
                s->serving_died = true;
                s->serving = NULL;
                dispatch(s, EV_SERVING_EXITED);
        } else if (g == s->serving) {
                /* Our own stop: the signal we sent, or a clean exit, is success. */
                bool clean = (g->exit_info.si_code == CLD_EXITED && g->exit_info.si_status == 0) ||
                             (g->exit_info.si_code == CLD_KILLED && g->exit_info.si_status == g->stop_signal);
                s->exit_code = clean ? 0 : exit_info_code(&g->exit_info);
                log_info("Generation %u (%s) %s.", g->number, generation_describe(g), how);
        } else
                log_info("Retired generation %u (%s) %s.", g->number, generation_describe(g), how);

        /* The main is gone; the rest of the generation may not be. It stays
         * in s->gens (a stop waits for it) until on_gen_gone(), and gets
         * the drain deadline if it has none yet. */
        if (s->serving == g)
                s->serving = NULL;
        if (s->candidate == g)
                s->candidate = NULL;
        generation_retire(g, stop_signal, drain_timeout);
}

static void on_gen_gone(Generation *g, void *userdata) {
        Supervisor *s = userdata;
        list_remove(s, g);
        check_all_gone(s);
}

static void on_gen_message(Generation *g, const NotifyMessage *m, int *fds, size_t n_fds, void *userdata) {
        Supervisor *s = userdata;
        /* The serving generation speaks for the service; so does the first one
         * while it starts (its EXTEND_TIMEOUT_USEC matters then). A candidate
         * beside a serving generation is staged; retiring ones are ignored;
         * and nothing once MAINPID= names the next handoff. */
        bool relay = g == s->serving || (g == s->candidate && !s->serving && s->machine.state == STATE_STARTING);
        bool speaks = relay && !role_ignores_stop(s->role);
        /* A candidate's stores count once it serves: staged, also when the
         * serving generation died while it started (and none serves). So
         * do the serving generation's once MAINPID= names the next handoff:
         * should that one die before it takes over, ours serves on
         * (hand_back()). */
        bool staged = g == s->candidate || (relay && s->role == ROLE_YIELDED);
        StorePolicy policy = speaks ? STORE_APPLY : staged ? STORE_STAGE : STORE_REFUSE;
        service_store_message(&s->store, policy, mirroring(s), g->number, m, fds, n_fds);
        /* The store may have grown past what a standby can take, or shrunk back. */
        standby_update(s);
        if (m->mainpid || m->reloading || m->stopping)
                log_debug("Ignored MAINPID/RELOADING/STOPPING from generation %u: those are handoff's to say.",
                          g->number);
        if (g == s->candidate && m->status) {
                /* Started as the next handoff: our predecessor shows it. */
                if (role_awaits_takeover(s->role))
                        takeover_report_status(s->takeover, m->status);
                else if (!speaks) {
                        show_progress(s, g->number, g->pid, g->started_usec, m->status);
                        results_candidate_status(&s->results, g->number, m->status);
                }
        }
        if (g == s->candidate && !g->ready && m->extend_timeout_usec) {
                /* A reload's candidate, starting: systemd times the reload
                 * with TimeoutStartSec=, which its EXTEND_TIMEOUT_USEC=
                 * extends as it did its own start deadline. Started as the
                 * next handoff, our predecessor relays it (and waits for
                 * us that much longer). */
                NotifyMessage out = { .extend_timeout_usec = m->extend_timeout_usec };
                char buf[64];
                uint64_t usec;
                if (role_awaits_takeover(s->role)) {
                        if (notify_parse_usec(m->extend_timeout_usec, &usec) >= 0 && timestamp_is_set(usec))
                                takeover_report_extend(s->takeover, usec);
                } else if (!speaks && notify_relay_text(&out, buf, sizeof buf) > 0)
                        notify_systemd(s, "%s", buf);
        }
        if (!speaks)
                return;
        uint64_t wd;
        if (notify_watchdog_usec(m, &wd)) {
                /* Relayed below: systemd's watchdog timeout from now on, and
                 * so the one later generations are started with. 0 and
                 * infinity turn it off: they are started without one. */
                if (role_speaks_to_systemd(s->role))
                        s->config.watchdog_usec = wd == USEC_INFINITY ? 0 : wd;
        } else if (m->watchdog_usec)
                log_warning("Generation %u sent WATCHDOG_USEC=%.*s, not a number of microseconds; ignoring.",
                            g->number, (int) printable_prefix(m->watchdog_usec, 32), m->watchdog_usec);
        NotifyMessage out = *m;
        char st[NOTIFY_MAX_LEN / 2], buf[NOTIFY_MAX_LEN];
        if (m->status && g == s->candidate) {
                /* The first generation, starting (STATE_STARTING): not
                 * "Serving" before READY=1. */
                progress_text(s, st, sizeof st, g->number, g->pid, g->started_usec, m->status);
                results_app_status(&s->results, g->number, m->status);
                out.status = st;
        } else if (m->status) {
                results_app_status(&s->results, g->number, m->status);
                out.status = results_status_line(&s->results, g->number, g->pid, st, sizeof st);
        }
        if (notify_relay_text(&out, buf, sizeof buf) > 0)
                notify_systemd(s, "%s", buf);
}

static const GenerationCallbacks gen_callbacks = {
        .ready = on_gen_ready,
        .start_timeout = on_gen_start_timeout,
        .exited = on_gen_exited,
        .gone = on_gen_gone,
        .message = on_gen_message,
};

/* ---- the candidate generation ------------------------------------------ */

static int generation_ops_start(Supervisor *s, unsigned number, int *ret_code, char *why, size_t why_size) {
        Generation *g = NULL;
        int r = generation_start(s->event, &s->config, number, &gen_callbacks, s, &g, ret_code, why, why_size);
        if (r < 0)
                return r;
        g->next = s->gens;
        s->gens = g;
        s->candidate = g;
        if (role_awaits_takeover(s->role))
                takeover_report_app(s->takeover, g->pid);
        return 0;
}

static void generation_ops_stop(Supervisor *s) {
        /* Still running (hung): stop it like a retiring one. */
        if (s->candidate)
                generation_retire(s->candidate, candidate_opt(s)->stop_signal, candidate_opt(s)->drain_timeout);
        s->candidate = NULL;
}

static void generation_ops_kill(Supervisor *s) {
        for (Generation *g = s->gens; g; g = g->next)
                generation_kill(g);
}

static const CandidateOps generation_ops = {
        .start = generation_ops_start,
        .stop = generation_ops_stop,
        .kill = generation_ops_kill,
};

/* ---- the next handoff (handover mode) ----------------------------------- */

static void on_next_ready(NextHandoff *n, void *userdata) {
        Supervisor *s = userdata;
        log_info("The next handoff (pid %d) is ready with generation %u (pid %d).", (int) next_handoff_pid(n),
                 next_handoff_number(n), (int) next_handoff_app_pid(n));
        dispatch(s, EV_READY);
}

static void on_next_status(NextHandoff *n, const char *text, void *userdata) {
        Supervisor *s = userdata;
        if (s->machine.state == STATE_RELOADING || s->machine.state == STATE_BAKING) {
                show_progress(s, next_handoff_number(n), next_handoff_app_pid(n), next_handoff_started(n), text);
                results_candidate_status(&s->results, next_handoff_number(n), text);
        }
}

static void on_next_extend(NextHandoff *n, uint64_t usec, void *userdata) {
        Supervisor *s = userdata;
        /* As a starting candidate's in supervise mode (on_gen_message()). */
        if (s->machine.state == STATE_RELOADING)
                notify_systemd(s, "EXTEND_TIMEOUT_USEC=%" PRIu64, usec);
}

static void on_next_failed(NextHandoff *n, const char *why, void *userdata) {
        Supervisor *s = userdata;
        if (s->machine.state != STATE_RELOADING && s->machine.state != STATE_BAKING &&
            s->machine.state != STATE_HANDING_OVER)
                return; /* an abort we asked for */
        log_error("Reload failed: %s.", why);
        if (!s->serving_died)
                s->exit_code = 1; /* if the serving generation is gone too, we exit with this */
        results_failed_text(&s->results, next_handoff_number(n), why);
        if (s->machine.state == STATE_HANDING_OVER && s->handover && !handover_sent(s->handover)) {
                /* Its MAINPID= still waits for room: systemd names us main,
                 * and ours serves on, as after any reload that failed. */
                s->handover = handover_free(s->handover);
                dispatch(s, EV_NOT_HANDED_OVER);
                return;
        }
        if (s->machine.state == STATE_HANDING_OVER && s->handover) {
                /* MAINPID= is out, systemd's barrier not back: whether
                 * systemd took it (see hand_back()) is known only then. */
                s->next_lost = true;
                return;
        }
        dispatch(s, EV_FAILED); /* the rollback stops it */
}

static Orphan *orphan_free(Orphan *o) {
        if (o)
                retiree_free(o->retiree);
        free(o);
        return NULL;
}

static void on_orphan_gone(void *userdata) {
        Orphan *o = userdata;
        Supervisor *s = o->s;
        for (Orphan **p = &s->orphans; *p; p = &(*p)->next)
                if (*p == o) {
                        *p = o->next;
                        break;
                }
        orphan_free(o);
        check_all_gone(s);
}

/* Its app may have been ready, so accepting: retired as our failed
 * candidate would be (stop signal, drain deadline), not killed with what
 * it was answering. Its cgroup, or else its process group (whose id is its
 * main's pid, spawn.c), too, once its main has exited and left its
 * workers: whether that id is still the app's, retiree_start_group() asks. */
static void retire_orphan(Supervisor *s, NextHandoff *n, int app_pidfd) {
        Orphan *o = calloc(1, sizeof *o);
        int sig;
        usec_t drain_timeout;
        next_handoff_app_retirement(n, &sig, &drain_timeout);
        if (!o) {
                log_error_errno(ENOMEM, "Out of memory; killing the dead next handoff's generation.");
                if (pidfd_signal(app_pidfd, 0) == 0) /* its pid, and so its group id, its own still */
                        (void) kill(-next_handoff_app_pid(n), SIGKILL);
                (void) pidfd_signal(app_pidfd, SIGKILL);
                safe_close(app_pidfd);
                return;
        }
        *o = (Orphan) { .s = s, .number = next_handoff_number(n), .started = next_handoff_started(n),
                        .ready = next_handoff_ready_at(n) };
        (void) retiree_start_group(s->event, RETIREE_ORPHAN, app_pidfd, next_handoff_app_pid(n),
                                   next_handoff_app_cgroup(n), sig, drain_timeout, s->cgroup, on_orphan_gone, o,
                                   &o->retiree);
        if (!o->retiree) {
                /* Exited already, or not watched (logged): nothing to wait for. */
                free(o);
                return;
        }
        o->next = s->orphans;
        s->orphans = o;
}

static void on_next_exited(NextHandoff *n, int app_pidfd, void *userdata) {
        Supervisor *s = userdata;
        if (app_pidfd >= 0)
                retire_orphan(s, n, app_pidfd);
        if (s->next == n)
                s->next = NULL;
        else
                for (size_t i = 0; i < s->n_aborted; i++)
                        if (s->aborted[i] == n) {
                                s->aborted[i] = s->aborted[--s->n_aborted];
                                break;
                        }
        next_handoff_free(n);
        check_all_gone(s);
}

static const NextHandoffCallbacks next_callbacks = {
        .ready = on_next_ready,
        .status = on_next_status,
        .extend = on_next_extend,
        .failed = on_next_failed,
        .exited = on_next_exited,
};

/* What a next handoff started now is given; stats holds its
 * HANDOFF_STATS. */
static NextHandoffConfig next_config(Supervisor *s, char stats[static 64]) {
        snprintf(stats, 64, "%u %u %" PRIu64, s->results.reloads_ok, s->results.reloads_failed, s->reload_started);
        return (NextHandoffConfig) {
                .exe = s->p->exe,
                .argv = s->trying ? s->trying->argv : s->p->argv,
                .fds = s->config.fds,
                .n_fds = s->config.n_fds,
                .n_stored = s->p->store->n,
                .fdpoll = s->store.gen_fdpoll,
                .fdnames = s->config.fdnames,
                .notify_socket = sdnotify_address(),
                .watchdog_usec = s->config.watchdog_usec,
                .stats = stats,
                .environment_keys = s->environment_keys,
                /* It enforces the start timeout on its generation; this
                 * bounds the handoff process itself on top of that. */
                .timeout = usec_add(candidate_opt(s)->start_timeout, NEXT_HANDOFF_START_MARGIN),
                .stop_signal = candidate_opt(s)->stop_signal,
                .drain_timeout = candidate_opt(s)->drain_timeout,
                .cgroup = s->cgroup,
        };
}

static int next_ops_start(Supervisor *s, unsigned number, int *ret_code, char *why, size_t why_size) {
        char stats[64];
        NextHandoffConfig c = next_config(s, stats);
        *ret_code = 1;
        /* Its place among the aborted, should it be: no allocation in a rollback. */
        NextHandoff **a = reallocarray(s->aborted, s->n_aborted + 1, sizeof *a);
        if (!a)
                return log_error_errno(ENOMEM, "Out of memory");
        s->aborted = a;
        standby_policy_reload(&s->standby_policy);
        return next_handoff_start(s->event, &c, number, &s->standby, &next_callbacks, s, &s->next, why, why_size);
}

static void next_ops_stop(Supervisor *s) {
        if (!s->next)
                return;
        /* Once MAINPID= names it, the next handoff is main to systemd: it
         * must outlive us. We only tell it to stop and let go of it; it
         * waits for our end of file, which comes when we exit, and stops
         * its own generation. */
        bool its_systemds = s->role == ROLE_YIELDED;
        /* Not yielded: if NAMED went, MAINPID= did not. UNNAMED, so that
         * it takes our end of file for the abort it is, not our death. */
        if (!its_systemds)
                next_handoff_tell_unnamed(s->next);
        /* Then it waits for our exit, which may take our own generation's
         * drain: its end is systemd's to bound, not ours. */
        next_handoff_abort(s->next, its_systemds ? USEC_INFINITY : candidate_opt(s)->drain_timeout,
                           its_systemds ? &s->handed_channel : NULL);
        /* It may have written the pid file before it failed. */
        write_pid(s, getpid());
        if (its_systemds)
                return; /* all_gone() does not wait for it */
        /* Ours to wait for, but no longer the next handoff: a reload asked
         * for now starts another while this one stops. Its place was made
         * when it was started. */
        s->aborted[s->n_aborted++] = TAKE_PTR(s->next);
}

static void next_ops_kill(Supervisor *s) {
        if (s->next)
                next_handoff_kill(s->next);
        for (size_t i = 0; i < s->n_aborted; i++)
                next_handoff_kill(s->aborted[i]);
}

static const CandidateOps next_handoff_ops = {
        .start = next_ops_start,
        .stop = next_ops_stop,
        .kill = next_ops_kill,
};

static int on_standby_due(sd_event_source *src, uint64_t usec, void *userdata) {
        Supervisor *s = userdata;
        s->standby_timer = sd_event_source_disable_unref(s->standby_timer);
        standby_policy_due(&s->standby_policy);
        standby_update(s);
        return 0;
}

static void start_standby_if_it_fits(Supervisor *s) {
        /* Its GO must carry the command line and the environment a start
         * now passes on (a service's environment may be more than
         * STANDBY_MAX_GO). */
        char stats[64];
        NextHandoffConfig c = next_config(s, stats);
        c.argv = s->p->argv;
        if (!next_handoff_standby_fits(&c, s->last_number + 1)) {
                log_full_errno(standby_policy_unfit(&s->standby_policy) ? LOG_INFO : LOG_DEBUG, 0,
                               "No standby handoff: the command line and environment a reload passes on are more "
                               "than its start message carries (%d KiB); reloads start the next handoff cold.",
                               STANDBY_MAX_GO / 1024);
                return;
        }
        int r = standby_start(s->p->exe, s->p->argv, &s->standby);
        if (r < 0) {
                standby_policy_failed(&s->standby_policy);
                log_warning_errno(r, "Failed to start the standby handoff, the next reload starts one: %m");
        } else
                log_debug("Started the standby handoff: pid %d.", (int) standby_pid(s->standby));
}

/* Handover mode under a service manager: while one generation serves, the
 * next handoff waits started ahead, for the next reload to use
 * (standby.h). Called whenever what standby-policy.h decides on may have
 * changed; this carries out its decision. */
static void standby_update(Supervisor *s) {
        StandbyFacts f = {
                .handover = s->p->handover,
                .manager = sdnotify_address()[0],
                .role = s->role,
                .stop_requested = s->stop_requested,
                .state = s->machine.state,
                .n_fds = s->p->listeners->n + s->p->store->n,
                .running = s->standby != NULL,
                .timer_armed = s->standby_timer != NULL,
        };
        usec_t delay = 0;
        switch (standby_policy_step(&s->standby_policy, &f, &delay)) {
        case STANDBY_STOP:
                s->standby = standby_stop(s->standby);
                break;
        case STANDBY_OUTGROWN:
                log_info("The next reload passes on %zu fds (listening sockets and fd store), more than "
                         "a standby handoff can take (%d): stopping it (pid %d) until they fit.",
                         f.n_fds, STANDBY_MAX_FDS, (int) standby_pid(s->standby));
                s->standby = standby_free(s->standby);
                s->standby_timer = sd_event_source_disable_unref(s->standby_timer);
                break;
        case STANDBY_DISARM:
                s->standby_timer = sd_event_source_disable_unref(s->standby_timer);
                break;
        case STANDBY_ARM:
                if (event_add_time_relative(s->event, &s->standby_timer, delay, 1000, on_standby_due, s) < 0)
                        standby_policy_due(&s->standby_policy); /* then at the next event (the predecessor's exit) */
                break;
        case STANDBY_START:
                start_standby_if_it_fits(s);
                break;
        case STANDBY_NOTHING:
        default:
                break;
        }
}

/* ---- started as the next handoff: callbacks from our predecessor -------- */

static void on_unlink_file(const ChannelUnlink *u, void *userdata) {
        Supervisor *s = userdata;
        /* Ours to remove at the final stop, if we become main: the file
         * our predecessor bound, not one put at its path since. */
        if (listeners_add_created_file(s->p->listeners, u->path, (dev_t) u->dev, (ino_t) u->ino) < 0)
                log_warning("Out of memory; %s will not be removed at stop.", u->path);
}

static void on_unlink_path(const char *path, void *userdata) {
        Supervisor *s = userdata;
        /* The same from an older predecessor, which did not say which file:
         * the one there now. */
        if (listeners_add_created_path(s->p->listeners, path) < 0)
                log_warning("Out of memory; %s will not be removed at stop.", path);
}

/* As a next handoff about to be main: whether its generation is ready and
 * nothing asked it to stop (or else it failed). */
static bool can_serve(const Supervisor *s) {
        return !s->stop_requested && s->candidate && s->candidate->ready;
}

/* Main now (the role says so already): speak to systemd, and serve the
 * candidate, or stop. ready_announced: the predecessor's MAINPID= datagram
 * said READY=1 for it, and we know systemd has read it. */
static void become_main(Supervisor *s, bool reload_pending, bool ready_announced) {
        sdnotify_enable(true);
        if (mirroring(s))
                service_store_resync(&s->store, s->inherited_names, strv_length(s->inherited_names));
        if (!can_serve(s)) {
                /* Told to stop between MAINPID= and this: systemd already names
                 * us main, so ours is the service's stop. It ends after our
                 * predecessor's, whose requests are still draining. */
                log_info("Took over as the main process while stopping%s.",
                         predecessor_draining(s) ? "; waiting for the previous handoff" : "");
                notify_systemd(s, "STOPPING=1\nSTATUS=Stopping.");
                if (!s->stop_requested) {
                        s->stop_requested = true;
                        dispatch(s, EV_STOP);
                }
                return;
        }
        log_info("Took over as the main process%s.", reload_pending ? "; a reload is pending" : "");
        s->ready_announced = ready_announced;
        if (reload_pending)
                dispatch(s, EV_RELOAD);
        dispatch(s, EV_READY);
}

static void on_retiree_gone(void *userdata) {
        Supervisor *s = userdata;
        s->retiree = retiree_free(s->retiree);
        check_all_gone(s);
}

/* The predecessor's serving generation, which it would have retired after
 * TAKEOVER: ours to retire now, as it would have, bounded by its drain
 * deadline. */
static void retire_left_generation(Supervisor *s) {
        if (s->left_pidfd < 0) {
                /* It had none serving (its main had exited), or no pidfd of it (logged there). */
                log_debug("The previous handoff passed no pidfd of a serving generation; none is retired.");
                return;
        }
        (void) retiree_start_group(s->event, RETIREE_PREVIOUS, TAKE_FD(s->left_pidfd), s->left_group,
                                   s->left.cgroup, s->left.stop_signal, s->left.drain_timeout, s->cgroup,
                                   on_retiree_gone, s, &s->retiree);
}

/* The predecessor died (SIGKILL, the OOM killer) after it told systemd
 * MAINPID=<us>, and before TAKEOVER. systemd names us main: with no
 * predecessor left to hand the service back to, an abort would end the
 * service, so we take over as TAKEOVER 0 would have made us. READY=1 is
 * said again: the predecessor's went with MAINPID=, but nothing tells us
 * that systemd has read it; a second one changes nothing. */
static void take_over_alone(Supervisor *s) {
        /* One that gave up the handover after MAINPID= (this one failed,
         * or was told to stop) exits too, once it has drained: we are
         * stopping then, and systemd's main all the same. */
        /* Without a service manager, NAMED came right before TAKEOVER. */
        const char *how = sdnotify_address()[0] ? " to the service manager (MAINPID=)" : " (NAMED)";
        if (!can_serve(s))
                log_info("The previous handoff is gone after it had named this one main%s; stopping as the main "
                         "process.", how);
        else
                log_warning("The previous handoff is gone after it had named this one main%s, without telling it "
                            "to take over (killed?); taking over by itself.", how);
        retire_left_generation(s);
        become_main(s, false, false);
}

/* TAKEOVER: the predecessor retires the generation NAMED told us of, from
 * now on. Should it be killed while that generation drains, nobody would
 * hold it to its drain deadline, and one that ignores its stop signal
 * would go on accepting with the old code until the service stopped. So
 * we hold it to that deadline too, whatever becomes of the predecessor or
 * of us (a handed-off handoff waits for it before it exits), a little
 * after, so that the predecessor's own SIGKILL comes first while it
 * lives. Without a deadline there is nothing to hold. */
#define HOLD_GRACE USEC_PER_SEC

static void hold_left_generation(Supervisor *s) {
        if (s->left_pidfd < 0)
                return;
        if (s->left.drain_timeout == USEC_INFINITY) {
                s->left_pidfd = safe_close(s->left_pidfd);
                return;
        }
        (void) retiree_start_group(s->event, RETIREE_PREVIOUS, TAKE_FD(s->left_pidfd), s->left_group,
                                   s->left.cgroup, 0, usec_add(s->left.drain_timeout, HOLD_GRACE), s->cgroup,
                                   on_retiree_gone, s, &s->retiree);
}

static void on_predecessor_gone(void *userdata) {
        Supervisor *s = userdata;
        Role before = s->role;
        s->takeover = takeover_free(s->takeover);
        set_role(s, ROLE_EV_PREDECESSOR_GONE);
        if (s->role == ROLE_ABANDONED && !s->stop_requested) {
                log_info("The previous handoff aborted the handover; stopping.");
                s->stop_requested = true;
                dispatch(s, EV_STOP);
                return;
        }
        if (before == ROLE_NAMED && s->role == ROLE_MAIN)
                take_over_alone(s);
        check_all_gone(s);
        standby_update(s);
}

/* NAMED numbered a serving generation, whose pidfd the predecessor sent
 * with it, but none came: the kernel dropped it on its way (MSG_CTRUNC:
 * we were out of fds, say). Without one we would neither retire that
 * generation, should the predecessor die before TAKEOVER, nor hold it
 * after, and one of old code would serve on. Its main's pid is the
 * process group NAMED names (spawn.c), while its main leads it; a process
 * of that pid that started after the generation was ready is another, the
 * main reaped meanwhile (it was not when NAMED went, after that). Not after
 * the generation's start: that is taken before the spawn, and a main
 * forked a clock tick later would be taken for another. */
static int open_left_pidfd(const ChannelNamed *g) {
        int pidfd = g->group > 0 ? pidfd_open_started_by(g->group, g->ready) : -ESRCH;
        if (pidfd < 0)
                log_warning_errno(pidfd, "NAMED came without the pidfd of the previous handoff's generation %u (the "
                                  "kernel dropped it: out of fds?), nor could one of its main be opened; should the "
                                  "previous handoff die before it has retired it, this one cannot: %m", g->number);
        else
                log_warning("NAMED came without the pidfd of the previous handoff's generation %u (the kernel dropped "
                            "it: out of fds?); opened one of its main, pid %d, instead.", g->number, (int) g->group);
        return pidfd;
}

static void on_named(const ChannelNamed *g, int pidfd, void *userdata) {
        Supervisor *s = userdata;
        set_role(s, ROLE_EV_NAMED);
        if (pidfd < 0 && g->number > 0)
                pidfd = open_left_pidfd(g);
        safe_close(s->left_pidfd);
        s->left_pidfd = pidfd;
        s->left = *g;
        /* Its process group, as the predecessor read it off its child: the
         * main may exit at once at the stop signal that comes before
         * TAKEOVER, leaving its workers, and be reaped before we read
         * NAMED, let alone look at the group ourselves. Whether the id is
         * still that group's, retiree_start_group() asks. */
        s->left_group = pidfd >= 0 ? g->group : 0;
}

static void on_unnamed(void *userdata) {
        Supervisor *s = userdata;
        set_role(s, ROLE_EV_UNNAMED);
        s->left_pidfd = safe_close(s->left_pidfd);
        s->left_group = 0;
}

static void on_took_over(bool reload_pending, void *userdata) {
        Supervisor *s = userdata;
        set_role(s, ROLE_EV_TOOK_OVER);
        hold_left_generation(s);
        become_main(s, reload_pending, true);
}

/* The service manager's stop reached our predecessor, not us: it is ours
 * all the same. A SIGTERM of the manager's that follows is the same stop,
 * not a second one. */
static void pass_stop_on(Supervisor *s);
static void request_stop(Supervisor *s);

static void on_predecessor_stop(void *userdata) {
        Supervisor *s = userdata;
        if (role_ignores_stop(s->role)) {
                /* We have handed over in turn: ours to pass on, as the
                 * manager's signal would be. */
                log_info("Stop requested by the previous handoff; passing it on.");
                pass_stop_on(s);
                return;
        }
        if (s->stop_requested)
                return;
        log_info("Stop requested by the previous handoff (the service manager's stop reached it); it exits after "
                 "this one.");
        s->stop_by_predecessor = true;
        request_stop(s);
}

/* ... and it has drained: it waits for our end, we no longer for its. */
static void on_predecessor_drained(void *userdata) {
        Supervisor *s = userdata;
        log_debug("The previous handoff has drained its generations and waits for this one.");
        s->predecessor_drained = true;
        set_role(s, ROLE_EV_PREDECESSOR_GONE);
        check_all_gone(s);
}

static const TakeoverCallbacks takeover_callbacks = {
        .took_over = on_took_over,
        .named = on_named,
        .unnamed = on_unnamed,
        .unlink_file = on_unlink_file,
        .unlink_path = on_unlink_path,
        .predecessor_gone = on_predecessor_gone,
        .stop = on_predecessor_stop,
        .predecessor_drained = on_predecessor_drained,
};

/* ---- control requests ---------------------------------------------------- */

static void add_generation(ServiceStatus *st, const Generation *g, const char *role, usec_t now) {
        StatusGeneration *k = status_add_generation(st);
        if (k)
                generation_status(g, role, now, k);
}

static void add_next_handoff(ServiceStatus *st, const NextHandoff *n, const char *role, usec_t started,
                             usec_t now) {
        StatusGeneration *k = status_add_generation(st);
        if (k)
                next_handoff_status(n, role, started, now, k);
}

/* Old main: whether the next handoff we handed over to still runs, as its
 * pidfd says. Once it has exited its pid may be another process's (in a
 * shared runtime directory, another service's handoff): nobody is sent
 * there, and without a pidfd nobody is either. */
static bool handed_runs(const Supervisor *s) {
        struct pollfd p = { .fd = s->handed_pidfd, .events = POLLIN };
        return s->handed_pidfd >= 0 && poll(&p, 1, 0) == 0;
}

/* ... and why not, for a log line or a reply. */
static const char *handed_lost(const Supervisor *s) {
        return s->handed_pidfd < 0 ? "cannot be watched" : "has exited";
}

/* Another handoff's generation, which we hold or retire (retiree.h): the
 * previous handoff's serving one, or a dead next handoff's. */
static void add_retiree(ServiceStatus *st, const Retiree *r, unsigned number, usec_t started, usec_t ready,
                        usec_t now) {
        StatusGeneration *k = status_add_generation(st);
        if (!k)
                return;
        retiree_status(r, now, k);
        k->number = number;
        k->started = started;
        k->ready = ready;
        k->age = now > started ? now - started : 0;
}

static void snapshot(Supervisor *s, ServiceStatus *st) {
        usec_t now = now_monotonic();
        const Listeners *l = s->p->listeners;
        *st = (ServiceStatus) {
                .pid = getpid(),
                .version = HANDOFF_VERSION,
                .now = now,
                .now_realtime = now_realtime(),
                .started = s->started,
                .mode = s->machine.handover ? "handover" : "supervise",
                .state = state_to_string(s->machine.state),
                .reloads_ok = s->results.reloads_ok,
                .reloads_failed = s->results.reloads_failed,
                .last_result = s->results.last_result,
                .last_reload_generation = s->results.last_gen,
                .last_reload_ok = s->results.last_gen_ok,
                .last_reload_ended = s->results.last_ended,
                .last_reload_duration = s->results.last_took,
                .handed_over_to = s->handed_to,
                .handed_over_exited = s->handed_to > 0 && s->handed_pidfd >= 0 && !handed_runs(s),
                /* ... or, gone, left its generation to us to retire. */
                .predecessor_draining = predecessor_draining(s) || s->retiree,
                .standby = s->standby ? standby_pid(s->standby) : 0,
        };
        if (s->serving)
                add_generation(st, s->serving, "serving", now);
        if (s->candidate)
                add_generation(st, s->candidate, s->machine.state == STATE_BAKING ? "baking" : "starting", now);
        for (Generation *g = s->gens; g; g = g->next)
                if (g != s->serving && g != s->candidate)
                        add_generation(st, g, g->stop_signal ? "retiring" : "starting", now);
        if (s->retiree)
                add_retiree(st, s->retiree, s->left.number, s->left.started, s->left.ready, now);
        for (const Orphan *o = s->orphans; o; o = o->next)
                add_retiree(st, o->retiree, o->number, o->started, o->ready, now);
        /* One told to stop after it became systemd's main stays s->next
         * (we do not wait for it; it waits for us). */
        if (s->next && next_handoff_failed(s->next))
                add_next_handoff(st, s->next, "next-handoff-stopping", next_handoff_started(s->next), now);
        else if (s->next)
                add_next_handoff(st, s->next, "next-handoff", s->reload_started, now);
        /* Those of failed reloads, until they have stopped: we wait for them. */
        for (size_t i = 0; i < s->n_aborted; i++)
                add_next_handoff(st, s->aborted[i], "next-handoff-stopping", next_handoff_started(s->aborted[i]),
                                 now);
        for (size_t i = 0; i < l->n && st->n_sockets < STATUS_MAX_SOCKETS; i++) {
                StatusSocket *k = &st->sockets[st->n_sockets++];
                k->fd = 3 + (int) i; /* where every generation finds it */
                k->name = l->names[i];
                socket_inspect(l->fds[i], k);
        }
}

static void reply_status(Supervisor *s, ControlConn *conn, bool json) {
        ServiceStatus st;
        _cleanup_free_ char *text = NULL;
        snapshot(s, &st);
        if (status_format_alloc(&st, json, &text) < 0) {
                control_reply(s->control, conn, "ERROR out of memory");
                return;
        }
        control_reply(s->control, conn, "OK %s", text);
}

/* A reload request's new command line, for the next reload to start with.
 * The latest one wins: earlier requests still waiting are answered by the
 * reload that starts with it. One that is invalid, or would change what
 * only a restart can, fails the request at once; nothing is started. */
static int stage_command_line(Supervisor *s, Control *c, ControlConn *conn, const ControlRequest *req) {
        char why[320]; /* the option parser's message: --stop-signal's is 150 bytes and the value */
        ReloadConfig *rc = NULL;
        int r = reload_config_parse(s->p->argv[0], req->args, req->args_len, &rc, why, sizeof why);
        if (r < 0) {
                log_error("Refused a reload: %s.", why);
                control_reply(c, conn, "FAIL Refused: %s; generation %u serves on", why,
                              s->serving ? s->serving->number : 0);
                return r;
        }
        const char *fixed = reload_config_fixed_change(s->opt, &rc->opt);
        if (fixed) {
                log_error("Refused a reload: its command line changes %s, which only a restart can change.", fixed);
                control_reply(c, conn,
                              "FAIL Refused: the new command line changes %s, which belongs to the service, not to "
                              "a generation: repeat it as the service was started, or restart the service to "
                              "change it (generation %u serves on)",
                              fixed, s->serving ? s->serving->number : 0);
                reload_config_free(rc);
                return -EINVAL;
        }
        char cmd[GENERATION_COMMAND_MAX + 8];
        generation_command_summary(rc->opt.command, cmd, sizeof cmd);
        log_info("The next reload starts: %s.", cmd);
        reload_config_free(s->pending);
        s->pending = rc;
        control_mark_resend(conn);
        return 0;
}

/* "OUTCOME <pid> <start time>": our predecessor pid died during the reload
 * that started us, without answering its clients (killed right after its
 * MAINPID= named us, say). That reload ends with us: with our first
 * generation's commit once we take over (by ourselves then), or with our
 * stop if we do not. The start time tells our predecessor from a later
 * process given its pid, another service's main, whose client asks too:
 * we live on long after our predecessor, and its pid is given out again. */
static void reply_outcome(Supervisor *s, Control *c, ControlConn *conn, pid_t pid, uint64_t start_time) {
        char reply[RESULTS_REPLY_MAX];
        if (!started_as_next(s) || pid != s->predecessor || s->predecessor_start_time == 0 ||
            start_time != s->predecessor_start_time) {
                control_reply(c, conn, "ERROR this handoff is not the next handoff of pid %d", (int) pid);
                return;
        }
        if (s->machine.state == STATE_STARTING) {
                control_wait(c, conn, WAIT_CURRENT);
                return;
        }
        bool stopped = s->machine.state == STATE_STOPPING || s->machine.state == STATE_DONE;
        if (stopped && role_handed_off(s->role))
                stopped = false; /* after our own handover: we had taken over */
        bool gave_up = role_awaits_takeover(s->role) || s->role == ROLE_ABANDONED;
        control_reply(c, conn, "%s", results_reply(&s->results, !stopped ? END_SERVING : gave_up ? END_GAVE_UP :
                                                   END_STOPPING, reply, sizeof reply));
}

/* Which reload answers a request: one that starts after it arrived, since
 * whatever the client changed (a config file, a binary) must be in it. So a
 * request joins the next reload, and asks for one; a reload already running
 * when it arrives does not count. */
static void on_request(Control *c, ControlConn *conn, const ControlRequest *req, void *userdata) {
        Supervisor *s = userdata;
        RequestKind kind = req->kind;
        char reply[RESULTS_REPLY_MAX];

        if (kind == REQUEST_STATUS || kind == REQUEST_STATUS_JSON) {
                reply_status(s, conn, kind == REQUEST_STATUS_JSON);
                return;
        }
        if (kind == REQUEST_OUTCOME) {
                reply_outcome(s, c, conn, req->pid, req->start_time);
                return;
        }
        if (role_handed_off(s->role) && handed_runs(s)) {
                /* A client with a stale pid: the service lives on there. */
                control_reply(c, conn, "FOLLOW %d", (int) s->handed_to);
                return;
        }
        if (role_handed_off(s->role)) {
                /* The service's main has exited: it stops, or another
                 * handoff we do not know took over from it. */
                control_reply(c, conn, "FAIL the main handoff this one handed over to, pid %d, %s; nothing was "
                              "reloaded", (int) s->handed_to, handed_lost(s));
                return;
        }
        if (s->machine.state == STATE_STOPPING || s->machine.state == STATE_DONE) {
                control_reply(c, conn, "FAIL the service is stopping");
                return;
        }
        if (kind == REQUEST_JOIN) {
                /* Sent on by a predecessor that passed our reload along: ours
                 * is running (or, before our takeover, about to). */
                if (s->machine.state == STATE_SERVING)
                        control_reply(c, conn, "%s", results_reply(&s->results, END_SERVING, reply, sizeof reply));
                else
                        control_wait(c, conn, s->machine.state == STATE_STARTING ? WAIT_NEXT : WAIT_CURRENT);
                return;
        }
        if (req->args_len > 0 && stage_command_line(s, c, conn, req) < 0)
                return;
        log_info("Reload requested (control socket)%s.", req->args_len > 0 ? " with a new command line" : "");
        control_wait(c, conn, WAIT_NEXT);
        dispatch(s, EV_RELOAD);
}

static void control_on_reload_end(Supervisor *s) {
        char reply[RESULTS_REPLY_MAX];
        if (!s->control)
                return;
        if (s->machine.state != STATE_STOPPING && s->machine.state != STATE_DONE) {
                control_reload_ended(s->control, results_reply(&s->results, END_SERVING, reply, sizeof reply));
                return;
        }
        /* Those waiting for the next reload get the same answer: it will
         * not come. */
        bool gave_up = role_awaits_takeover(s->role) || s->role == ROLE_ABANDONED;
        results_reply(&s->results, gave_up ? END_GAVE_UP : END_STOPPING, reply, sizeof reply);
        control_reload_ended(s->control, reply);
        control_answer_next(s->control, reply);
}

static void control_on_handed_over(Supervisor *s) {
        char reply[RESULTS_REPLY_MAX];
        if (!s->control)
                return;
        /* We are stopping now, but the reload succeeded: it is the service
         * that lives on, in the next handoff. */
        control_reload_ended(s->control, results_reply(&s->results, END_SERVING, reply, sizeof reply));
        /* A reload asked for meanwhile was passed on: it ends there. A
         * new command line is ours alone; its client sends it there. */
        control_pass_on(s->control, s->handed_to);
}

/* ---- actions ------------------------------------------------------------ */

/* What a generation gets from the options it runs under. */
static void configure_generation(Supervisor *s, const Options *o) {
        s->config.argv = o->command;
        s->config.working_directory = o->working_directory;
        s->config.environment_files = o->environment_files;
        s->config.ready_by_delay = o->ready_by_delay;
        s->config.ready_delay = o->ready_delay;
        s->config.start_timeout = o->start_timeout;
        s->config.notify_access = o->notify_access;
        s->machine.bake = o->bake > 0;
}

static void start_candidate(Supervisor *s) {
        bool reload = s->machine.state == STATE_RELOADING;
        const CandidateOps *ops = reload ? s->reload_ops : &generation_ops;
        unsigned number = ++s->last_number;
        char why[RESULTS_CAUSE_MAX + 1] = "";
        int code = 1, r;
        s->reload_started = now_monotonic();
        s->candidate_reloads = reload;
        results_begin(&s->results);
        if (reload) {
                reload_config_free(s->trying);
                s->trying = TAKE_PTR(s->pending);
                /* A reload is when someone looks: a socket file gone since
                 * is said now, not at the stop. */
                listeners_forget_replaced(s->p->listeners);
        }
        configure_generation(s, candidate_opt(s));

        service_store_drop_staged(&s->store);
        r = service_store_build_inheritance(&s->store, s->p->listeners->fds, s->p->listeners->names,
                                            s->p->listeners->n);
        if (r < 0)
                log_error_errno(r, "Failed to start generation %u: %m", number);
        else {
                s->config.fds = s->store.gen_fds;
                s->config.n_fds = s->store.n_gen_fds;
                s->config.fdnames = s->store.gen_fdnames;
                r = ops->start(s, number, &code, why, sizeof why);
        }
        if (r < 0) {
                /* With the cause: the client's "reload failed: …" and
                 * STATUS= say it. One the start did not name is its errno
                 * (out of memory, say), which the log line gave too. */
                if (!why[0])
                        snprintf(why, sizeof why, "%s", strerror(-r));
                char text[sizeof why + 32];
                snprintf(text, sizeof text, "could not be started: %s", why);
                record_failure(s, number, text, code);
                dispatch(s, EV_FAILED);
        }
}

static void rollback(Supervisor *s) {
        service_store_drop_staged(&s->store);
        /* A MAINPID= still waiting to be sent names a next handoff that is
         * stopped now: it must never go out. */
        if (s->handover && !handover_sent(s->handover))
                s->handover = handover_free(s->handover);
        /* The first start's candidate is always a generation; a second
         * stop of the same kind finds nothing left to stop. */
        generation_ops.stop(s);
        s->reload_ops->stop(s);
        /* A reload that failed; not a first start, nor an abort by a stop. */
        if (s->machine.state != STATE_STOPPING)
                results_rolled_back(&s->results);
        /* Its command line goes with it: the next reload starts the serving one. */
        if (s->trying)
                log_info("The new command line was not adopted; reloads start the serving one.");
        s->trying = reload_config_free(s->trying);
        configure_generation(s, s->opt);
}

/* The candidate serves: the command line it started with is ours now. */
static void adopt_command_line(Supervisor *s) {
        if (!s->trying)
                return;
        reload_config_free(s->current);
        s->current = TAKE_PTR(s->trying);
        s->opt = &s->current->opt;
        log_set_max_level(s->opt->verbose ? LOG_DEBUG : LOG_INFO);
}

/* The candidate serves. What it replaces is retired by after_commit(),
 * once systemd has heard READY=1: the reload's latency is systemd's, and
 * the old generation waking up to exit would only delay it. */
static Generation *commit(Supervisor *s) {
        Generation *old = s->serving, *g = s->candidate;
        s->serving = g;
        s->candidate = NULL;
        s->serving_died = false;
        results_app_serves(&s->results, g->number);
        service_store_commit_staged(&s->store, mirroring(s));
        /* The very first generation of the service is no reload. (Not "no
         * old one": the serving generation may have exited while a reload's
         * candidate started, and that reload still succeeds.) */
        if (!s->candidate_reloads && !started_as_next(s))
                return old;
        if (s->inherited_reload_started) {
                /* Started as the next handoff: the reload began in the old main. */
                s->reload_started = s->inherited_reload_started;
                s->inherited_reload_started = 0;
        }
        results_ok(&s->results, g->number, g->pid, g->ready_usec - s->reload_started, 0);
        return old;
}

static void after_commit(Supervisor *s, Generation *old) {
        Generation *g = s->serving;
        char d[32];
        if (old) {
                /* It stops as the command line it was started with says. */
                generation_retire(old, s->opt->stop_signal, s->opt->drain_timeout);
                log_info("Generation %u (%s) is ready after %s and serves; retiring generation %u (pid %d).",
                         g->number, generation_describe(g), ready_after(g, d, sizeof d), old->number, (int) old->pid);
        } else if (!started_as_next(s) && g)
                /* The first generation (a next handoff's said so before the takeover). */
                log_info("Generation %u (%s) is ready after %s.", g->number, generation_describe(g),
                         ready_after(g, d, sizeof d));
        adopt_command_line(s);
}

static int on_bake_done(sd_event_source *src, uint64_t usec, void *userdata) {
        Supervisor *s = userdata;
        s->bake_timer = sd_event_source_disable_unref(s->bake_timer);
        log_info("Generation %u outlived the bake time.", s->last_number);
        dispatch(s, EV_BAKED);
        return 0;
}

/* --bake: the ready candidate serves beside the old generation, which
 * stays until the candidate has lived that long (EV_BAKED), or rolls back
 * if it dies sooner (EV_FAILED). */
static void start_bake(Supervisor *s) {
        char d[32];
        char ra[32];
        log_info("Generation %u is ready after %s; it serves beside generation %u for the bake time (%s).",
                 s->last_number, s->candidate ? ready_after(s->candidate, ra, sizeof ra) : "?",
                 s->serving ? s->serving->number : 0, format_duration(d, sizeof d, candidate_opt(s)->bake));
        s->bake_timer = sd_event_source_disable_unref(s->bake_timer);
        int r = event_add_time_relative(s->event, &s->bake_timer, candidate_opt(s)->bake, 1000, on_bake_done, s);
        if (r >= 0 && !s->bake_timer) {
                /* No timer: the bake would end past the clock, a bake
                 * without end. The options took it when the clock was
                 * further from its end; read now, they refuse it, as a next
                 * handoff does in handover mode: the reload fails. */
                log_error("Generation %u's bake time would end past the clock (a bake without end, which --bake "
                          "refuses now); rolling back.", s->last_number);
                record_failure(s, s->last_number, "its bake time would end past the clock", 1);
                dispatch(s, EV_FAILED);
                return;
        }
        if (r < 0) {
                log_warning_errno(r, "Failed to arm the bake timer, committing now: %m");
                dispatch(s, EV_BAKED);
        }
}

/* The next handoff is about to be main to systemd, MAINPID= going next
 * (or, with no service manager, TAKEOVER): it must know, to take over by itself should
 * we die before we tell it to (channel.h, NAMED); and with what to retire
 * our serving generation then, as we would have, or hold it to its drain
 * deadline, should we die while it drains. */
static void tell_next_named(Supervisor *s) {
        _cleanup_close_ int pidfd = -EBADF;
        const Generation *g = s->serving && !s->serving->exited ? s->serving : NULL;
        ChannelNamed named = { .stop_signal = s->opt->stop_signal, .drain_timeout = s->opt->drain_timeout };
        /* Our child, not reaped yet: its pid is its own still. */
        if (g && (pidfd = pidfd_open_pid(g->pid)) < 0)
                log_warning_errno(pidfd, "Failed to open a pidfd of generation %u (pid %d); should this handoff "
                                  "die before the takeover, the next one cannot retire it: %m", g->number,
                                  (int) g->pid);
        if (pidfd >= 0) {
                named.number = g->number;
                named.started = g->started_usec;
                named.ready = g->ready_usec;
                /* Its own (spawn.c), unless its main has left it. */
                named.group = getpgid(g->pid) == g->pid ? g->pid : 0;
                /* And its cgroup, for the same reason: the main may be gone
                 * by the time the next handoff looks. */
                const char *path = proc_tree_cgroup_path(g->tree);
                const char *leaf = path ? strrchr(path, '/') : NULL;
                if (leaf)
                        snprintf(named.cgroup, sizeof named.cgroup, "%s", leaf + 1);
        }
        listeners_forget_replaced(s->p->listeners);
        next_handoff_tell_named(s->next, s->p->listeners, pidfd, &named);
}

/* MAINPID= is out: the reload is done, as its STATUS= said. */
static void on_mainpid_sent(void *userdata) {
        Supervisor *s = userdata;
        Results before = s->results;
        s->results = s->handed_results;
        s->handed_results = before;
        if (role_speaks_to_systemd(s->role) && sdnotify_address()[0]) {
                set_role(s, ROLE_EV_MAINPID_SENT);
                s->mainpid_unconfirmed = true; /* until the barrier comes back */
        }
}

/* The next handoff MAINPID= named has exited before we told it to take
 * over. systemd refuses MAINPID= for a pid that "does not exist or is a
 * zombie": if it read ours after that exit, we are its main still, and our
 * exit, after the handover, would end the service (cleanly: no Restart=).
 * We cannot tell which, so we name ourselves main again and roll back.
 * Had systemd taken the next handoff, it refuses ours (NotifyAccess=main:
 * we are not its main) and its main's death fails the service, as before;
 * had it not, it changes nothing, and we serve on. */
static void hand_back(Supervisor *s) {
        char why[96];
        pid_t pid = s->naming;
        log_warning("The next handoff (pid %d) exited after MAINPID= named it, before it took over; naming this "
                    "process main again.", (int) pid);
        set_role(s, ROLE_EV_MAINPID_RECLAIMED);
        results_copy(&s->results, &s->handed_results); /* as before MAINPID=, which counted the reload done */
        notify_systemd(s, "MAINPID=%d", (int) getpid());
        /* What our generation stored meanwhile (on_gen_message()). */
        service_store_commit_staged(&s->store, mirroring(s));
        write_pid(s, getpid()); /* it wrote the pid file when it was ready */
        snprintf(why, sizeof why, "next handoff (pid %d) exited before it took over", (int) pid);
        record_failure(s, s->last_number, why, 1);
        /* A stop that came meanwhile (the manager's, or an operator's we
         * ignored as the old main's) is the service's: the reload ends in
         * it, and one asked for meanwhile does not start. */
        bool stop = s->pass_stop || s->stop_while_yielded;
        s->pass_stop = s->stop_while_yielded = false;
        if (stop)
                request_stop(s);
        else
                dispatch(s, EV_NOT_HANDED_OVER);
}

/* systemd's barrier after MAINPID=: it has read it (or did not answer in
 * time). A next handoff still running then was taken as main; one that has
 * exited (and may be freed already, on_next_exited()) may not have been. */
static void on_handover_done(bool answered, void *userdata) {
        Supervisor *s = userdata;
        s->handover = handover_free(s->handover);
        if (answered)
                s->mainpid_unconfirmed = false;
        bool lost = s->next_lost;
        s->next_lost = false;
        if (s->machine.state == STATE_HANDING_OVER && (!s->next || next_handoff_exited(s->next)))
                hand_back(s);
        else
                dispatch(s, lost ? EV_FAILED : EV_HANDED_OVER);
}

/* No MAINPID= named the next handoff (it could not be sent, or the next
 * handoff is gone): systemd knows us as main still, and would take our
 * exit for the service's end. The reload fails, for why; the next handoff
 * is stopped. */
static void not_handed_over(Supervisor *s, const char *why) {
        record_failure(s, next_handoff_number(s->next), why, 1);
        dispatch(s, EV_NOT_HANDED_OVER);
}

/* Not sent (the manager's socket stayed full, nobody bound); logged. */
static void mainpid_not_sent(Supervisor *s, int error) {
        char why[128];
        snprintf(why, sizeof why, "the service manager could not be told MAINPID=: %s", strerror(-error));
        not_handed_over(s, why);
}

/* Ready, then gone (its exit not reported yet): naming it would leave
 * nobody main once we retire (without a manager, nobody serving). We are
 * main still; the reload fails. */
static void next_exited_unnamed(Supervisor *s) {
        char why[96];
        snprintf(why, sizeof why, "next handoff (pid %d) exited before it was named main",
                 (int) (s->next ? next_handoff_pid(s->next) : s->naming));
        log_error("Reload failed: %s.", why);
        not_handed_over(s, why);
}

static void on_handover_failed(int error, void *userdata) {
        Supervisor *s = userdata;
        s->handover = handover_free(s->handover);
        if (error == -ESRCH)
                next_exited_unnamed(s);
        else
                mainpid_not_sent(s, error);
}

static bool on_handover_gone(void *userdata) {
        Supervisor *s = userdata;
        return !s->next || next_handoff_exited(s->next);
}

static const HandoverCallbacks handover_callbacks = {
        .sent = on_mainpid_sent,
        .done = on_handover_done,
        .failed = on_handover_failed,
        .gone = on_handover_gone,
};

/* The commit of handover mode: MAINPID= and READY=1, then systemd's barrier. */
static void hand_over(Supervisor *s) {
        NextHandoff *n = s->next;
        char st[NOTIFY_MAX_LEN / 2];
        if (next_handoff_exited(n)) {
                next_exited_unnamed(s);
                return;
        }
        s->naming = next_handoff_pid(n);
        /* The STATUS= that goes with MAINPID= counts this reload as done;
         * so do our results once it is sent (on_mainpid_sent()). */
        Results *r = &s->handed_results;
        results_copy(r, &s->results);
        results_ok(r, next_handoff_number(n), next_handoff_app_pid(n), now_monotonic() - s->reload_started,
                   next_handoff_pid(n));
        results_app_serves(r, next_handoff_number(n));
        results_status_line(r, next_handoff_number(n), next_handoff_app_pid(n), st, sizeof st);
        /* NAMED first: killed right after MAINPID=, we would leave systemd
         * naming a next handoff that takes our end of file for an abort,
         * and the service would end with it. Should MAINPID= not go after
         * all, UNNAMED precedes the abort (next_ops_stop()). */
        if (sdnotify_address()[0])
                tell_next_named(s);
        int k = handover_announce(s->event, next_handoff_pid(n), st, &handover_callbacks, s, &s->handover);
        if (k < 0)
                mainpid_not_sent(s, k);
        else if (k == 0)
                dispatch(s, EV_HANDED_OVER);
}

/* ---- old main: the service manager's stop after MAINPID= ---------------- */

static void next_wait_over(Supervisor *s) {
        s->next_exit = sd_event_source_disable_unref(s->next_exit);
        s->awaits_next = false;
        check_all_gone(s);
}

static int on_next_exit(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Supervisor *s = userdata;
        log_debug("The next handoff (pid %d) has exited.", (int) s->handed_to);
        next_wait_over(s);
        return 0;
}

/* All we wait for but the next handoff is gone (our generations, the one
 * we hold, and our own predecessor, who says DRAINED to us first): DRAINED,
 * so that the next handoff does not wait for our end of file while we wait
 * for its. Its own stop is bounded by its drain deadline (its options',
 * which a reload may have changed). */
static void next_stop_progress(Supervisor *s) {
        if (!s->awaits_next || s->drained_sent || !drained(s))
                return;
        s->drained_sent = true;
        int r = channel_send(s->handed_channel, "DRAINED");
        if (r < 0) {
                log_debug_errno(r, "Failed to tell the next handoff that we have drained: %m");
                next_wait_over(s);
        }
}

/* The service manager's stop came to us after MAINPID= named the next
 * handoff: systemd 252 takes no MAINPID= once it is stopping, so it may
 * still wait for us, and with KillMode=mixed it signals nobody else (with
 * control-group the next handoff got it too, and STOP is no second one to
 * it). STOP makes the next handoff stop as it would at the signal, and we
 * exit after it: whichever of us systemd waits for exits last, and neither
 * generation is cut short by its final SIGKILL. */
static void stop_next_handoff(Supervisor *s) {
        s->pass_stop = false;
        if (!s->next_takes_stop) {
                /* An older handoff: as before STOP existed, the stop is the
                 * manager's to bring to it. */
                log_info("The next handoff (pid %d) is of a version that takes no STOP; not waiting for it.",
                         (int) s->handed_to);
                return;
        }
        int r = channel_send(s->handed_channel, "STOP");
        if (r >= 0)
                r = sd_event_add_io(s->event, &s->next_exit, s->handed_channel, EPOLLRDHUP, on_next_exit, s);
        if (r < 0) {
                log_warning_errno(r, "Failed to pass the stop on to the next handoff (pid %d): %m", (int) s->handed_to);
                return;
        }
        s->awaits_next = s->stop_sent = true;
        log_info("Passed the stop on to the next handoff (pid %d); exiting after it.", (int) s->handed_to);
        next_stop_progress(s);
}

/* Whether the stop is ours to pass on no more: passed, or to be once the
 * next handoff has taken over. */
static bool stop_passed_on(const Supervisor *s) {
        return s->pass_stop || s->awaits_next;
}

/* The service's stop, come to us after MAINPID= named the next handoff
 * (from the manager, or from our own predecessor): for it to stop too. */
static void pass_stop_on(Supervisor *s) {
        if (stop_passed_on(s))
                return;
        if (role_handed_off(s->role))
                stop_next_handoff(s);
        else
                s->pass_stop = true;
}

static void take_over_done(Supervisor *s, bool pass_reload) {
        /* With no service manager no MAINPID= went out, nor NAMED after it:
         * NAMED goes now, before TAKEOVER, so that the next handoff holds
         * our generation to its drain deadline all the same, should we die
         * while it drains (hold_left_generation()). */
        if (!next_handoff_named(s->next))
                tell_next_named(s);
        NextHandoff *n = TAKE_PTR(s->next);
        s->handed_to = next_handoff_pid(n);
        s->handed_pidfd = next_handoff_pidfd_dup(n);
        s->next_takes_stop = next_handoff_takes_stop(n);
        set_role(s, ROLE_EV_TAKEOVER_SENT);
        s->exit_code = 0;
        log_info("Handed over to handoff pid %d; retiring generation %u.", (int) s->handed_to,
                 s->serving ? s->serving->number : 0);
        /* Retired before TAKEOVER: should we die in between, the next
         * handoff, told NAMED but not TAKEOVER, retires it by itself, a
         * second stop signal at worst. The other way round it would only
         * hold it, and the generation, never told to stop, would accept
         * with the old code until SIGKILL at the deadline. */
        if (s->serving) {
                generation_retire(s->serving, s->opt->stop_signal, s->opt->drain_timeout);
                s->serving = NULL; /* its exit is a retired generation's now */
        }
        /* Our end is held until we exit: the next handoff waits for that end
         * of file before it exits at a stop, so nothing we still drain is
         * killed early. */
        listeners_forget_replaced(s->p->listeners);
        (void) next_handoff_take_over(n, s->p->listeners, pass_reload, &s->handed_channel);
        next_handoff_free(n);
        /* What the retired generation stored after MAINPID=: not the service's. */
        service_store_drop_staged(&s->store);
        if (s->pass_stop)
                stop_next_handoff(s);
}

/* Old main, at its exit after a takeover: had systemd not read MAINPID=
 * before the next handoff exited (its barrier did not come back, so we
 * handed over without knowing), it refused that pid, and we are its main
 * still: our exit is the service's. Our generation was told to stop at the
 * takeover, so we cannot serve again; we exit with the next handoff's
 * status, as systemd would have seen it from its main, so that a failure
 * restarts the service (Restart=on-failure) instead of ending it cleanly.
 * Had systemd taken the next handoff, its death ended the service already,
 * and our status is nobody's. One that is alive is taken, as systemd reads
 * our MAINPID= before our exit; one that stopped at our STOP, stopped. */
static void exit_as_next_handoff(Supervisor *s) {
        struct pollfd p = { .fd = s->handed_pidfd, .events = POLLIN };
        if (!role_handed_off(s->role) || !s->mainpid_unconfirmed || s->stop_sent || s->exit_code != 0 ||
            s->handed_pidfd < 0 || poll(&p, 1, 0) <= 0)
                return;
        /* Where the kernel cannot give its status (before Linux 6.15, or
         * not reaped yet), a failure: it exited as the service's main. */
        char how[64] = "its status unknown";
        int status, code = EXIT_FAILURE;
        if (pidfd_exit_status(s->handed_pidfd, &status) >= 0) {
                code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                if (WIFEXITED(status))
                        snprintf(how, sizeof how, "with status %d", code);
                else
                        snprintf(how, sizeof how, "killed by signal %s", SIGNAL_NAME(WTERMSIG(status)));
        }
        s->exit_code = code;
        log_full_errno(code == 0 ? LOG_INFO : LOG_ERR, 0,
                       "The next handoff (pid %d) exited (%s) before this process, and the service manager did not "
                       "confirm MAINPID= naming it; exiting with status %d.", (int) s->handed_to, how, code);
}

/* READY=1 (unless said already) with the status line. The message is
 * allocated to its size: a buffer for the longest one (4 KiB) made this
 * the deepest frame of a reload, called from a notify socket's handler,
 * and every stack page a reload ever touches stays dirty. The line is
 * escaped into it behind its head, not copied once more through
 * vasprintf(): a reload waits for this datagram. Out of memory, the head
 * alone goes (an empty STATUS=). */
static void notify_ready(Supervisor *s) {
        char st[NOTIFY_MAX_LEN / 2];
        results_status_line(&s->results, s->serving ? s->serving->number : 0, s->serving ? s->serving->pid : 0,
                            st, sizeof st);
        const char *head = s->ready_announced ? "STATUS=" : "READY=1\nSTATUS=";
        size_t head_len = strlen(head);
        size_t size = 2 * strlen(st) + 1; /* escaped, a character takes two at most */
        if (size > STATUS_ESCAPED_MAX)
                size = STATUS_ESCAPED_MAX;
        _cleanup_free_ char *msg = malloc(head_len + size);
        if (msg) {
                memcpy(msg, head, head_len);
                notify_escape(st, msg + head_len, size);
        }
        notify_systemd_text(s, msg ? msg : head);
        s->ready_announced = false;
}

/* The reload machine's actions, in this order: the outcome of the reload
 * that ends (rollback or commit, and READY=1), the bake timer, the handover steps, the
 * retirement and STOPPING=1 of a stop, then the start of the next reload,
 * and last the exit. */
static void run_actions(Supervisor *s, unsigned a) {
        Generation *replaced = NULL;
        if (a & ACT_ROLLBACK) {
                rollback(s);
                control_on_reload_end(s);
        }
        if (a & ACT_COMMIT)
                replaced = commit(s);
        if (a & ACT_NOTIFY_READY)
                notify_ready(s);
        if (a & ACT_COMMIT) {
                after_commit(s, replaced);
                /* After the stop signal: "handoff reload" returns once the
                 * old generation has been sent it (README). */
                control_on_reload_end(s);
        }
        if (a & ACT_BAKE)
                start_bake(s);
        if (a & (ACT_ROLLBACK | ACT_COMMIT | ACT_HANDOVER)) {
                s->bake_timer = sd_event_source_disable_unref(s->bake_timer);
                progress_cancel(&s->progress);
        }
        if (a & ACT_HANDOVER)
                hand_over(s);
        if (a & ACT_TAKEOVER) {
                take_over_done(s, a & ACT_PASS_RELOAD);
                control_on_handed_over(s);
        }
        if ((a & ACT_RETIRE_SERVING) && s->serving)
                generation_retire(s->serving, s->opt->stop_signal, s->opt->drain_timeout);
        if (a & ACT_NOTIFY_STOPPING)
                notify_systemd(s, "STOPPING=1\nSTATUS=Stopping.");
        if (a & ACT_START_CANDIDATE) {
                if (s->control)
                        control_reload_started(s->control);
                start_candidate(s);
                /* Once the candidate is on its way: RELOADING=1 still
                 * comes before any READY=1 (a failure's is queued), with
                 * the time the reload began, and the manager's wake-up
                 * runs beside the candidate's start instead of before it. */
                if (a & ACT_NOTIFY_RELOADING)
                        notify_systemd(s, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Reloading: starting generation %u.",
                                       s->reload_started, s->last_number);
        }
        if (a & ACT_EXIT) {
                exit_as_next_handoff(s);
                sd_event_exit(s->event, s->exit_code);
        }
}

/* Events raised by actions (a spawn that fails at once) are queued, not
 * recursed into, so every transition completes before the next begins. */
static void dispatch(Supervisor *s, Event ev) {
        if (s->n_queued < ELEMENTSOF(s->queue))
                s->queue[s->n_queued++] = ev;
        else
                log_error("Internal error: event queue full, dropped event %s.", event_to_string(ev));
        if (s->dispatching)
                return;
        s->dispatching = true;
        for (unsigned i = 0; i < s->n_queued; i++) {
                State before = s->machine.state;
                unsigned a = machine_step(&s->machine, s->queue[i]);
                log_debug("%s + %s -> %s (actions 0x%03x)", state_to_string(before), event_to_string(s->queue[i]),
                          state_to_string(s->machine.state), a);
                run_actions(s, a);
                if (s->machine.state == STATE_STOPPING && all_gone(s) && s->n_queued < ELEMENTSOF(s->queue))
                        s->queue[s->n_queued++] = EV_ALL_GONE;
        }
        s->n_queued = 0;
        s->dispatching = false;
        standby_update(s);
}

/* ---- signals ------------------------------------------------------------ */

static void on_stop_signal(Supervisor *s, int sig, pid_t sender) {
        if (role_ignores_stop(s->role)) {
                /* From the service manager (our parent), it is the service's
                 * stop: passed on (see stop_next_handoff()), once the next
                 * handoff took over. Anyone else's is an operator's. */
                if (sender == getppid() && !stop_passed_on(s)) {
                        log_info("Stop requested (%s) by the service manager after MAINPID= named the next "
                                 "handoff; passing it on.", SIGNAL_NAME(sig));
                        pass_stop_on(s);
                        return;
                }
                log_info("Ignoring %s: already retiring after the handover.", SIGNAL_NAME(sig));
                /* ... unless the next handoff exits before it takes over:
                 * then we are main again, and stop (hand_back()). */
                if (s->role == ROLE_YIELDED)
                        s->stop_while_yielded = true;
                return;
        }
        if (s->stop_requested && s->stop_by_predecessor) {
                /* The manager's own signal for the stop our predecessor
                 * passed on (KillMode=control-group). */
                s->stop_by_predecessor = false;
                log_info("Stop requested (%s); already stopping.", SIGNAL_NAME(sig));
                return;
        }
        if (s->stop_requested) {
                log_warning("Second stop request: killing every generation now.");
                generation_ops.kill(s);
                s->reload_ops->kill(s);
                retiree_kill(s->retiree);
                for (Orphan *o = s->orphans; o; o = o->next)
                        retiree_kill(o->retiree);
                return;
        }
        log_info("Stop requested (%s).%s", SIGNAL_NAME(sig),
                 predecessor_draining(s) ? " Waiting for the previous handoff to finish draining too." : "");
        /* Not main yet: our predecessor need not wait for a READY that
         * will not come. */
        if (role_awaits_takeover(s->role)) {
                char why[64];
                snprintf(why, sizeof why, "stopped by %s", SIGNAL_NAME(sig));
                takeover_report_failed(s->takeover, why);
        }
        request_stop(s);
}

/* The service's stop, asked for by a signal or by our predecessor. */
static void request_stop(Supervisor *s) {
        s->stop_requested = true;
        /* A stop of nothing serving is clean, unless a failure is already
         * taking us down: its status stands. */
        if (!s->serving && s->machine.state != STATE_STOPPING)
                s->exit_code = 0;
        dispatch(s, EV_STOP);
}

/* systemd's halt and poweroff (SIGRTMIN+3, +4): what systemd-nspawn --boot
 * and machinectl poweroff send a container's PID 1 for a clean shutdown.
 * As PID 1 an unhandled one is dropped; elsewhere it would kill handoff
 * and leave its generations. A stop, as TERM is. Not constants in C (glibc
 * keeps the first real-time signals for itself), hence not in
 * handled_signals. */
static bool is_halt_signal(int sig) {
        return sig == SIGRTMIN + 3 || sig == SIGRTMIN + 4;
}

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        Supervisor *s = userdata;
        int sig = (int) si->ssi_signo;

        if (is_halt_signal(sig)) {
                on_stop_signal(s, sig, (pid_t) si->ssi_pid);
                return 0;
        }
        switch (sig) {
        case SIGHUP:
                if (role_handed_off(s->role) && !handed_runs(s)) {
                        log_warning("Ignored SIGHUP: the main handoff this one handed over to, pid %d, %s.",
                                    (int) s->handed_to, handed_lost(s));
                        break;
                }
                if (role_handed_off(s->role)) {
                        /* A stale $MAINPID: the service lives on there. */
                        log_info("Passing SIGHUP on to the main handoff, pid %d.", (int) s->handed_to);
                        int r = pidfd_signal(s->handed_pidfd, SIGHUP);
                        if (r < 0)
                                log_warning_errno(r, "Failed to pass SIGHUP on to pid %d: %m", (int) s->handed_to);
                        break;
                }
                log_info("Reload requested (SIGHUP from pid %u).", si->ssi_pid);
                dispatch(s, EV_RELOAD);
                break;
        case SIGTERM:
        case SIGINT:
        case SIGPWR:
                on_stop_signal(s, sig, (pid_t) si->ssi_pid);
                break;
        default:
                if (s->serving && !role_handed_off(s->role)) {
                        log_debug("Forwarding %s to generation %u (pid %d).", SIGNAL_NAME(sig), s->serving->number,
                                  (int) s->serving->pid);
                        (void) generation_signal(s->serving, sig);
                }
        }
        return 0;
}

static const int handled_signals[] = {
        SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGWINCH, SIGQUIT, SIGCONT,
        /* systemd's WatchdogSignal=: the hung server should dump core, not us. */
        SIGABRT,
        /* LXC's halt signal (lxc.signal.halt), what lxc-stop sends a
         * container's init for a clean shutdown: as PID 1 an unhandled one
         * is dropped, and the container would end only at lxc-stop's
         * SIGKILL 60 s later. A stop, as TERM is. */
        SIGPWR,
        /* Not TSTP/TTIN/TTOU: job control stops handoff itself, as a shell
         * user expects, rather than only the server behind it. */
};

int supervisor_block_signals(void) {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        for (size_t i = 0; i < ELEMENTSOF(handled_signals); i++)
                sigaddset(&mask, handled_signals[i]);
        sigaddset(&mask, SIGRTMIN + 3);
        sigaddset(&mask, SIGRTMIN + 4);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        return 0;
}

static int setup_signals(Supervisor *s) {
        /* sd-event's signal and child sources need the signals blocked
         * (main() did so already; a second time costs nothing). */
        int r = supervisor_block_signals();
        if (r < 0)
                return r;
        /* A peer that hangs up on a relay must not kill handoff. */
        signal(SIGPIPE, SIG_IGN);
        for (size_t i = 0; i < ELEMENTSOF(handled_signals); i++) {
                r = sd_event_add_signal(s->event, NULL, handled_signals[i], on_signal, s);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch %s: %m", SIGNAL_NAME(handled_signals[i]));
        }
        for (int sig = SIGRTMIN + 3; sig <= SIGRTMIN + 4; sig++) {
                r = sd_event_add_signal(s->event, NULL, sig, on_signal, s);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch %s: %m", SIGNAL_NAME(sig));
        }
        return 0;
}

/* ---- set-up and the loop ---------------------------------------------- */

/* Killed hard, our predecessor cannot remove its runtime files: we do,
 * once it has exited. Its pid is the channel's creator's (socketpair()).
 * Its cgroup leaf, which nobody removes while it lives (cgroup.h), goes
 * too. */
static int on_predecessor_exit(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Supervisor *s = userdata;
        runtime_files_remove_stale(s->predecessor);
        if (s->cgroup)
                cgroup_root_remove_leaf(s->cgroup, s->predecessor);
        s->predecessor_exit = sd_event_source_disable_unref(s->predecessor_exit);
        return 0;
}

static void watch_predecessor(Supervisor *s, int channel) {
        struct ucred uc;
        socklen_t l = sizeof uc;
        if (getsockopt(channel, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0 || uc.pid <= 0)
                return;
        int fd = pidfd_open_pid(uc.pid);
        if (fd < 0)
                return; /* gone already, or no pidfds */
        /* While it holds its end, the pid is still its own: so it was when
         * the pidfd was opened and its stat read, before. Its start time
         * tells it from a later process given its pid, in "OUTCOME". */
        ProcStat st;
        bool known = proc_stat_read(uc.pid, &st) == 0 && st.start_time > 0;
        struct pollfd pf = { .fd = channel, .events = POLLRDHUP };
        if (poll(&pf, 1, 0) != 0) {
                safe_close(fd);
                return;
        }
        s->predecessor = uc.pid;
        s->predecessor_start_time = known ? st.start_time : 0;
        int r = sd_event_add_io(s->event, &s->predecessor_exit, fd, EPOLLIN, on_predecessor_exit, s);
        if (r >= 0)
                r = sd_event_source_set_io_fd_own(s->predecessor_exit, true);
        if (r < 0) {
                s->predecessor_exit = sd_event_source_disable_unref(s->predecessor_exit);
                safe_close(fd);
        }
}

/* Started as the next handoff: continue the predecessor's numbering and
 * counters, and watch its channel. */
static int setup_takeover(Supervisor *s) {
        Inheritance in;
        if (s->p->takeover_channel < 0)
                return 0;
        takeover_inherit_from_env(&in);
        s->last_number = in.last_number;
        s->results.reloads_ok = in.reloads_ok;
        s->results.reloads_failed = in.reloads_failed;
        s->inherited_reload_started = in.reload_started;
        s->environment_keys = in.environment_keys;
        size_t n = 0;
        for (size_t i = 0; i < s->p->store->n; i++)
                if (strv_push(&s->inherited_names, &n, strdup(s->p->store->entries[i].name)) < 0)
                        log_warning("Out of memory; systemd's fd store may keep a stale entry.");
        watch_predecessor(s, s->p->takeover_channel);
        return takeover_new(s->event, s->p->takeover_channel, &takeover_callbacks, s, &s->takeover);
}

static int setup_reaper(Supervisor *s) {
        int r = reaper_new(s->event, &s->reaper);
        if (r < 0)
                return log_error_errno(r, "Failed to watch SIGCHLD: %m");
        s->config.reaper = s->reaper;
        r = cgroup_root_setup(s->opt->cgroup, &s->cgroup);
        if (r < 0)
                return r;
        s->config.cgroup = s->cgroup;
        return 0;
}

static void setup_control(Supervisor *s) {
        /* Logged there; reloads by signal still work without it. */
        (void) control_new(s->event, 3 + (int) s->p->listeners->n, on_request, s, &s->control);
}

static void supervisor_done(Supervisor *s) {
        while (s->gens) /* only after a failure of the loop itself */
                list_remove(s, s->gens);
        generation_drop_spare_socket();
        next_handoff_free(s->next);
        for (size_t i = 0; i < s->n_aborted; i++)
                next_handoff_free(s->aborted[i]);
        free(s->aborted);
        standby_stop(s->standby);
        sd_event_source_disable_unref(s->standby_timer);
        sd_event_source_disable_unref(s->bake_timer);
        progress_cancel(&s->progress);
        handover_free(s->handover);
        takeover_free(s->takeover);
        safe_close(s->left_pidfd);
        retiree_free(s->retiree);
        while (s->orphans) {
                Orphan *o = s->orphans;
                s->orphans = o->next;
                orphan_free(o);
        }
        sd_event_source_disable_unref(s->predecessor_exit);
        sd_event_source_disable_unref(s->next_exit);
        safe_close(s->handed_pidfd);
        /* s->handed_channel stays open on purpose: the kernel closes it when
         * this process exits, and only then may the next handoff (systemd's
         * main, waiting for this end of file) exit too. Closing it here
         * would let it go while we still remove files and close sockets. */
        control_free(s->control);
        sdnotify_detach();
        reaper_free(s->reaper);
        cgroup_root_free(s->cgroup);
        service_store_done(&s->store);
        fdstore_watch(s->p->store, NULL);
        strv_free(s->inherited_names);
        free(s->environment_keys);
        reload_config_free(s->pending);
        reload_config_free(s->trying);
        reload_config_free(s->current);
        results_done(&s->results);
        results_done(&s->handed_results);
        sd_event_unref(s->event);
}

int supervisor_run(const SupervisorParams *p, int *ret_status, bool *ret_final) {
        const Options *o = p->opt;
        Supervisor s = {
                .p = p,
                .opt = o,
                .machine = MACHINE_INIT(p->handover, o->bake > 0),
                .role = p->takeover_channel >= 0 ? ROLE_CANDIDATE : ROLE_MAIN,
                .reload_ops = p->handover ? &next_handoff_ops : &generation_ops,
                /* What a generation gets from the options: configure_generation(),
                 * at each start; these are the same for all of them. */
                .config = {
                        .notify_socket = o->notify_socket,
                        /* Supervise mode only: in handover mode a generation
                         * whose handoff dies goes on draining (its requests
                         * in flight finish), and systemd's KillMode= ends
                         * what is left of the service. */
                        .die_with_parent = !p->handover,
                },
                .exit_code = 1,
                .started = now_monotonic(),
                .handed_channel = -EBADF,
                .handed_pidfd = -EBADF,
                .left_pidfd = -EBADF,
                .store = { .store = p->store },
                .standby_policy = STANDBY_POLICY_INIT(p->takeover_channel >= 0),
        };
        uint64_t wd = 0;
        if (sd_watchdog_enabled(0, &wd) > 0)
                s.config.watchdog_usec = wd;

        s.config.environment_keys = &s.environment_keys;

        int r = event_new(&s.event);
        if (r < 0) {
                log_error_errno(r, "Failed to create event loop: %m");
                supervisor_done(&s);
                return r;
        }
        /* Fds held for want of a free closer thread are queued from the
         * loop, and the notify sockets paused for them resumed. */
        if ((r = close_async_attach(s.event)) < 0)
                log_warning_errno(r, "Failed to watch the closer threads: %m");
        fdstore_watch(p->store, s.event);
        progress_init(&s.progress, s.event, send_progress, &s);
        /* What may wait for a manager that does not read: at a takeover
         * the fd store is put anew (an FDSTOREREMOVE=1 and an FDSTORE=1 per
         * entry) before the new main's first STATUS=; besides, a few
         * messages per reload, and one of each kind of which only the
         * latest matters (sdnotify.h keeps room for those). */
        sdnotify_attach(s.event, 2 * FD_STORE_MAX_LIMIT + SDNOTIFY_RESERVED);
        if ((r = setup_signals(&s)) >= 0 && (r = setup_reaper(&s)) >= 0 && (r = setup_takeover(&s)) >= 0) {
                notify_systemd(&s, "STATUS=Starting generation %u.", s.last_number + 1);
                start_candidate(&s);
                /* After the spawn, while the generation starts: at a
                 * handover this is on the reload's critical path otherwise. */
                if (s.machine.state != STATE_DONE)
                        setup_control(&s);
                /* A service started anew, maybe after a crash: what killed
                 * handoffs left. (Not a next handoff: its predecessor lives.) */
                if (s.machine.state != STATE_DONE && p->takeover_channel < 0 &&
                    (r = runtime_files_sweep_later(s.event)) < 0)
                        log_debug_errno(r, "Failed to schedule the sweep of the runtime directory: %m");
                r = s.machine.state == STATE_DONE ? s.exit_code : sd_event_loop(s.event);
                if (r < 0)
                        log_error_errno(r, "Event loop failed: %m");
        }
        *ret_final = role_owns_files(s.role);
        supervisor_done(&s);
        if (r < 0)
                return r;
        *ret_status = r;
        return 0;
}
