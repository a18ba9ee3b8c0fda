/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "handover.h"
#include "listeners.h"
#include "log.h"
#include "options.h"
#include "spawn.h"
#include "supervisor.h"

/* Exit codes of handoff itself (the app's own status is passed through):
 * 0 success, 1 failure, 2 invalid arguments or configuration (as systemd's
 * LSB-style EXIT_INVALIDARGUMENT). */
#define EXIT_INVALID 2

/* The path a successor is started from, resolved now: a package upgrade that
 * replaces the file there takes effect at the next reload. Kept unresolved
 * through symlinks on purpose (a "current" release link may move). */
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

static int open_sockets(const Options *o, Listeners *l, bool successor, FdStore *store, bool mirror) {
        /* A successor's stored fds follow its listening sockets. */
        size_t n_stored = 0;
        const char *e = successor ? getenv("HANDOFF_FDSTORE") : NULL;
        if (e)
                n_stored = strtoul(e, NULL, 10);
        unsetenv("HANDOFF_FDSTORE");
        int r = listeners_from_systemd(l, n_stored, store);
        if (r < 0)
                return r;
        /* A successor's sockets come from its predecessor, not from systemd. */
        if (r > 0 && o->n_listen > 0 && !successor)
                log_info("systemd passed %d socket(s); ignoring --listen.", r);
        if (r > 0)
                return 0;
        if (o->n_listen == 0)
                return log_error_errno(EINVAL, "No sockets to serve: systemd passed none (no LISTEN_FDS for this pid) "
                                               "and no --listen was given. Use a .socket unit, or e.g. "
                                               "--listen 127.0.0.1:8080.");
        return listeners_open(l, o->listen, o->n_listen, mirror);
}

static int run(int argc, char **argv) {
        Options o = OPTIONS_DEFAULT;
        Listeners l = {};
        FdStore store = {};
        _cleanup_free_ char *exe = NULL;
        int channel = -EBADF, r;
        bool final = true, mirror = false;

        log_setup();
        r = rlimit_nofile_raise();
        if (r < 0)
                log_debug_errno(r, "Failed to raise the soft RLIMIT_NOFILE to the hard limit: %m");
        r = options_parse(argc, argv, &o);
        if (r <= 0) {
                options_done(&o);
                return r == 0 ? 0 : EXIT_INVALID;
        }
        if (o.verbose)
                log_set_max_level(LOG_DEBUG);
        store.max = o.fd_store_max;

        /* Before the sockets: the channel sits right after them and must not
         * be mistaken for anything else. */
        r = takeover_channel_from_env(&channel);
        if (r < 0) {
                log_error("Invalid " HANDOFF_CONTROL_FD_ENV "; refusing to start.");
                r = EXIT_INVALID;
                goto finish;
        }
        /* A successor that fails early leaves its predecessor's files alone. */
        final = channel < 0;
        /* A successor mirrors nothing before it is main; its predecessor's
         * entries are in systemd's store already. */
        mirror = sdstore_enabled(o.systemd_fd_store);
        if (open_sockets(&o, &l, channel >= 0, &store, mirror && channel < 0) < 0) {
                r = EXIT_INVALID;
                goto finish;
        }
        if (!(exe = resolve_self(argv[0]))) {
                log_error_errno(ENOMEM, "Out of memory");
                r = 1;
                goto finish;
        }

        /* A successor writes the pid file once it is ready, before its
         * predecessor commits; the first main writes it now. */
        if (o.pid_file && channel < 0 && (r = write_pid_file(o.pid_file, getpid())) < 0) {
                log_error_errno(r, "Failed to write pid file %s: %m", o.pid_file);
                r = 1;
                goto finish;
        }

        SupervisorParams p = {
                .opt = &o,
                .listeners = &l,
                .store = &store,
                .mirror_store = mirror,
                .exe = exe,
                .argv = argv,
                .handover = o.mode == MODE_HANDOVER || (o.mode == MODE_AUTO && getenv("NOTIFY_SOCKET")),
                .takeover_channel = channel,
        };
        log_debug("Reload mode: %s.", p.handover ? "handover" : "supervise");
        if (o.mode == MODE_HANDOVER && !getenv("NOTIFY_SOCKET") && channel < 0)
                log_warning("--mode=handover without a service manager (no NOTIFY_SOCKET): after a reload the "
                            "service runs on in a process that is nobody's child but init's.");
        r = supervisor_run(&p, &final);

        /* What the service created is removed when it stops for good, never
         * when it lives on in a successor. */
        if (o.pid_file && final)
                (void) unlink(o.pid_file);
finish:
        /* With the socket in systemd's fd store, a Restart= brings it back:
         * its file must stay (a stale one is replaced at the next bind). */
        listeners_done(&l, final && !mirror);
        fdstore_done(&store);
        options_done(&o);
        return r;
}

int main(int argc, char **argv) {
        /* Before anything opens an fd: a closed 0-2 would be reused by a
         * socket, and log lines would go into it. */
        if (std_fds_ensure_open() < 0)
                return EXIT_FAILURE;
        /* "handoff reload" and "handoff status" talk to a running handoff; a
         * server named like that is still run with "handoff -- reload". */
        if (argc > 1 && (strcmp(argv[1], "reload") == 0 || strcmp(argv[1], "status") == 0))
                return client_main(argc - 1, argv + 1);
        return run(argc, argv);
}
