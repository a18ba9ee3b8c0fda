/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "listeners.h"
#include "log.h"
#include "options.h"
#include "proc-stat.h"
#include "sdnotify.h"
#include "spawn.h"
#include "standby.h"
#include "supervisor.h"
#include "channel.h"
#include "close-async.h"
#include "takeover.h"

/* Exit codes of handoff itself (the app's own status is passed through):
 * 0 success, 1 failure, 2 invalid arguments or configuration (as systemd's
 * LSB-style EXIT_INVALIDARGUMENT). */
#define EXIT_INVALID 2

/* What run() sets up, torn down in one place. */
typedef struct Context {
        Options opt;
        Listeners listeners;
        FdStore store;
        char *exe;
        int channel;   /* started as the next handoff: the predecessor's channel */
        bool mirror;   /* --systemd-fd-store in effect */
        bool final;    /* the service ends with us: its files are ours to remove */
} Context;

static void context_done(Context *c) {
        /* What the service created is removed when it stops for good, never
         * when it lives on in the next handoff. With the socket in systemd's
         * fd store, a Restart= brings it back: its file must stay (a stale
         * one is replaced at the next bind). */
        if (c->opt.pid_file && c->final)
                (void) unlink(c->opt.pid_file);
        listeners_done(&c->listeners, c->final && !c->mirror);
        fdstore_done(&c->store);
        options_done(&c->opt);
        safe_close(c->channel);
        free(c->exe);
}

/* The path the next handoff is started from, resolved now: a package
 * upgrade that replaces the file there takes effect at the next reload.
 * Kept unresolved through symlinks on purpose (a "current" release link may
 * move). */
static char *resolve_self(const char *argv0) {
        char *path = NULL;
        if (argv0[0] == '/')
                return strdup(argv0);
        if (strchr(argv0, '/')) {
                char cwd[4096];
                if (!getcwd(cwd, sizeof cwd))
                        return strdup("/proc/self/exe");
                return asprintf(&path, "%s/%s", cwd, argv0) < 0 ? NULL : path;
        }
        if (find_executable(argv0, &path) >= 0 && path[0] == '/')
                return path;
        free(path);
        return strdup("/proc/self/exe");
}

static int open_sockets(Context *c) {
        bool next = c->channel >= 0;
        /* Started as the next handoff: stored fds follow the listening sockets. */
        uint64_t n_stored = 0;
        const char *e = next ? getenv("HANDOFF_FDSTORE") : NULL;
        if (e && safe_atou64(e, &n_stored) < 0) {
                log_error("Invalid HANDOFF_FDSTORE=%s; refusing to start.", e);
                return -EINVAL;
        }
        unsetenv("HANDOFF_FDSTORE");
        /* Which of them came with FDPOLL=0 (from an earlier version: none). */
        e = next ? getenv("HANDOFF_FDPOLL") : NULL;
        _cleanup_free_ char *fdpoll = e ? strdup(e) : NULL;
        unsetenv("HANDOFF_FDPOLL");
        SdStoreEntries entries = next ? SDSTORE_ENTRIES_LEAVE
                                 : c->mirror ? SDSTORE_ENTRIES_MIRROR
                                 : SDSTORE_ENTRIES_REMOVE;
        int r = listeners_from_systemd(&c->listeners, (size_t) n_stored, fdpoll, &c->store, entries);
        if (r < 0)
                return -EINVAL;
        /* The next handoff's sockets come from its predecessor, not from
         * systemd: nothing of its predecessor's is let go of. */
        if (r > 0 && !next) {
                if (c->opt.n_listen > 0)
                        log_info("systemd passed %d socket(s); ignoring --listen.", r);
                listeners_release_recovered(&c->listeners, c->mirror);
        }
        if (r > 0)
                return 0;
        if (c->opt.n_listen == 0) {
                log_error("No sockets to serve: systemd passed none (no LISTEN_FDS for this pid) and no --listen was "
                          "given. Use a .socket unit, or e.g. --listen 127.0.0.1:8080.");
                return -EINVAL;
        }
        /* The next handoff mirrors nothing before it is main; its
         * predecessor's entries are in systemd's store already. */
        if (listeners_open(&c->listeners, c->opt.listen, c->opt.n_listen, c->mirror && !next,
                           c->opt.non_blocking) < 0)
                return -EINVAL;
        return 0;
}

/* Returns 0 with the service's exit status, or -errno: -EINVAL for bad
 * arguments or configuration (logged), 1 for --help/--version. */
/* Whether MAINPID= would name what the service manager sees. systemd (248
 * and later) tells a process it starts that process's pid, as systemd sees
 * it, in SYSTEMD_EXEC_PID: equal to ours, it shares our pids. Without it, a
 * container= variable (set by podman, which relays sd_notify out of a
 * container with --sdnotify=container) says that the manager is outside,
 * where our pids mean nothing, and the container's init (catatonit, tini)
 * ends the container when its first child, this process, exits. */
static bool manager_shares_our_pids(void) {
        const char *e = getenv("SYSTEMD_EXEC_PID");
        uint64_t pid;
        if (e)
                return safe_atou64(e, &pid) >= 0 && pid == (uint64_t) getpid();
        return !getenv("container");
}

static int run(int argc, char **argv, int *ret_status) {
        _cleanup_(context_done) Context c = { .opt = OPTIONS_DEFAULT, .channel = -EBADF };
        int r;

        log_setup();
        /* Before anything that takes time: a stop that comes meanwhile
         * waits for the loop (as PID 1 it would be dropped, and docker stop
         * end in its SIGKILL). Children get an empty mask (spawn.c). */
        r = supervisor_block_signals();
        if (r < 0)
                return r;
        /* Like systemd for itself: the fd store and many listeners need
         * room; each generation gets the limit we were started with. */
        r = rlimit_nofile_raise();
        if (r < 0)
                log_debug_errno(r, "Failed to raise the soft RLIMIT_NOFILE to the hard limit: %m");
        r = options_parse(argc, argv, &c.opt);
        if (r <= 0)
                return r == 0 ? 1 : -EINVAL;
        if (c.opt.verbose)
                log_set_max_level(LOG_DEBUG);
        c.store.max = c.opt.fd_store_max;
        const char *notify_env = getenv("NOTIFY_SOCKET");
        _cleanup_free_ char *notify_was = notify_env ? strdup(notify_env) : NULL;
        r = sdnotify_setup();
        if (r == -EAFNOSUPPORT)
                log_warning("NOTIFY_SOCKET=%s is no address handoff can send to (only a /path or an @abstract "
                            "name); it runs as if no service manager were there.", notify_was ? notify_was : "");
        bool manager = r > 0;
        /* As PID 1 (a container) there is no one to hand the service to: a
         * next handoff would be PID 1's child, and PID 1 exiting ends the
         * container. */
        bool pid1 = getpid() == 1;
        if (pid1 && c.opt.mode == MODE_HANDOVER) {
                log_error("--mode=handover cannot work as PID 1: the next handoff could never become PID 1, and "
                          "this process exiting would end the container. Use --mode=supervise (or auto).");
                return -EINVAL;
        }


        /* Before the sockets: the channel sits right after them and must not
         * be mistaken for anything else. */
        r = takeover_channel_from_env(&c.channel);
        if (r < 0) {
                log_error("Invalid " HANDOFF_CONTROL_FD_ENV "; refusing to start.");
                return -EINVAL;
        }
        /* Started as the next handoff: silent towards systemd until we take
         * over, and a failure leaves the predecessor's files alone. */
        sdnotify_enable(c.channel < 0);
        c.final = c.channel < 0;
        c.mirror = sdstore_enabled(c.opt.systemd_fd_store);
        if ((r = open_sockets(&c)) < 0)
                return r;
        /* After the sockets, which have their places: handoff's own fds
         * come after them. */
        r = close_async_setup();
        if (r < 0)
                log_debug_errno(r, "Failed to open the queue of the closer threads, trying again when needed: %m");
        if (!(c.exe = resolve_self(argv[0])))
                return log_error_errno(ENOMEM, "Out of memory");

        /* The next handoff writes the pid file once it is ready, before its
         * predecessor commits; the first main writes it now. */
        if (c.opt.pid_file && c.channel < 0 && (r = write_pid_file(c.opt.pid_file, getpid())) < 0)
                return log_error_errno(r, "Failed to write pid file %s: %m", c.opt.pid_file);

        /* A next handoff exists only in handover mode. */
        bool shares = c.channel >= 0 || manager_shares_our_pids();
        SupervisorParams p = {
                .opt = &c.opt,
                .listeners = &c.listeners,
                .store = &c.store,
                .mirror_store = c.mirror,
                .exe = c.exe,
                .argv = argv,
                .handover = c.opt.mode == MODE_HANDOVER || (c.opt.mode == MODE_AUTO && manager && !pid1 && shares),
                .takeover_channel = TAKE_FD(c.channel),
        };
        log_debug("Reload mode: %s.", p.handover ? "handover" : "supervise");
        if (pid1)
                log_info("Running as PID 1: reloads keep this process (supervise mode), and every orphan is reaped here.");
        else if (c.opt.mode == MODE_AUTO && manager && !shares)
                log_info("The service manager does not see this process's pid (%s): reloads keep this process "
                         "(supervise mode).",
                         getenv("SYSTEMD_EXEC_PID") ? "SYSTEMD_EXEC_PID names another" : "in a container");
        /* A pid from waitid() or a peer's credentials is ours; the reaper
         * reads /proc/PID of an adopted orphan to place it in its
         * generation, and in another namespace's /proc that is another
         * process. Nothing to fall back on: said once, by the first
         * handoff of the service (a next handoff shares its /proc). */
        if (p.takeover_channel < 0 && (r = proc_shows_our_pids()) <= 0)
                log_warning("/proc is not this pid namespace's (%s): an orphan that leaves its generation's process "
                            "group (setsid()) is not known as that generation's, and is neither stopped nor killed "
                            "with it. Mount this namespace's own /proc (unshare --pid --fork --mount-proc).",
                            r == 0 ? "it shows this process under another pid" : strerror(-r));
        if (c.opt.mode == MODE_HANDOVER && !manager && p.takeover_channel < 0)
                log_warning("--mode=handover without a service manager (no NOTIFY_SOCKET): after a reload the "
                            "service runs on in a process that is nobody's child but init's.");
        return supervisor_run(&p, ret_status, &c.final);
}


int main(int argc, char **argv) {
        /* Before anything opens an fd: a closed 0-2 would be reused by a
         * socket, and log lines would go into it. */
        if (std_fds_ensure_open() < 0)
                return EXIT_FAILURE;
        /* A standby (standby.h) starts here once a reload needs it, with the
         * command line, environment and fds it would have been exec'd with. */
        if (standby_wait(&argc, &argv) < 0)
                return EXIT_FAILURE;
        /* "handoff reload" and "handoff status" talk to a running handoff; a
         * server named like that is still run with "handoff -- reload". */
        if (argc > 1) {
                if (client_is_verb(argv[1]))
                        return client_main("handoff", argc - 1, argv + 1);
                /* "handoff relaod" is a typo, not a server to run. */
                const char *verb = client_verb_near(argv[1]);
                if (verb) {
                        fprintf(stderr,
                                "handoff: unknown command \"%s\"; did you mean \"handoff %s\"? "
                                "(To run a program of that name: handoff [OPTIONS] -- %s)\n",
                                argv[1], verb, argv[1]);
                        return EXIT_INVALID;
                }
        }

        int status = EXIT_FAILURE;
        int r = run(argc, argv, &status);
        if (r == -EINVAL)
                return EXIT_INVALID;
        if (r < 0)
                return EXIT_FAILURE;
        return r == 1 ? EXIT_SUCCESS : status;
}
