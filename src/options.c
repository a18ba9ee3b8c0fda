/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "options.h"
#include "signal-util.h"
#include "util.h"

#ifndef HANDOFF_VERSION
#define HANDOFF_VERSION "unknown"
#endif

/* The first word of our messages (options_set_program()). */
static const char *program = "handoff";

#define say(fmt, ...) fprintf(stderr, "%s: " fmt, program, ##__VA_ARGS__)

void options_set_program(const char *name) {
        program = name;
}

static void help(void) {
        printf("Usage: handoff [OPTIONS] -- COMMAND [ARG...]\n"
               "       handoff reload [--pid PID] [--timeout DUR] [-- [OPTIONS] -- COMMAND [ARG...]]\n"
               "       handoff status [--pid PID] [--json] [--timeout DUR]\n"
               "\n"
               "Run COMMAND as a socket server that reloads without downtime: on SIGHUP\n"
               "a new generation starts beside the serving one and takes over once it\n"
               "sends READY=1; one that fails to start is rolled back.\n"
               "\n"
               "  -l --listen=ADDR[=NAME]  Open a listening socket when systemd passed none:\n"
               "                           HOST:PORT, [V6]:PORT, PORT, tcp:…, udp:…,\n"
               "                           unix:/path, unix:@name, unix-dgram:…\n"
               "     --non-blocking=yes|no Set O_NONBLOCK on the sockets --listen opens, as\n"
               "                           systemd's NonBlocking= (default no)\n"
               "     --ready=notify|delay:DUR\n"
               "                           Ready on READY=1 (default), or after DUR\n"
               "     --start-timeout=DUR   Give up on a starting generation (default 90s)\n"
               "     --stop-signal=SIG     Signal that retires a generation (default TERM)\n"
               "     --drain-timeout=DUR   SIGKILL a retiring generation after DUR (default 30s)\n"
               "     --bake=DUR            Keep the old generation until a ready new one has\n"
               "                           lived DUR beside it; if it dies sooner, roll back\n"
               "                           (default 0: commit at READY=1)\n"
               "     --mode=auto|supervise|handover\n"
               "                           What a reload replaces: handover starts a new\n"
               "                           handoff and moves systemd's MainPID to it;\n"
               "                           supervise keeps this process (default auto:\n"
               "                           handover under systemd's NOTIFY_SOCKET, else\n"
               "                           supervise)\n"
               "     --notify-socket=auto|path|abstract\n"
               "                           Each generation's NOTIFY_SOCKET: a path in a\n"
               "                           private runtime directory, or an abstract name\n"
               "                           (default auto: path when a runtime directory\n"
               "                           exists)\n"
               "     --notify-access=main|all\n"
               "                           Accept READY=1 and the rest from the main process\n"
               "                           only (default), or from any process of the\n"
               "                           generation (its cgroup, else its process group)\n"
               "     --working-directory=DIR\n"
               "                           Start each generation in DIR, looked up at each\n"
               "                           start (a symlink a deploy switched is followed)\n"
               "     --environment-file=[-]PATH\n"
               "                           Read PATH (systemd's EnvironmentFile= syntax) at\n"
               "                           each start: a generation gets its variables as\n"
               "                           they are then (\"-\": it may be missing)\n"
               "     --pid-file=PATH       Write handoff's pid here (atomically)\n"
               "     --fd-store-max=N      Keep at most N fds the server stores with\n"
               "                           FDSTORE=1 for its next generations (default 16)\n"
               "     --systemd-fd-store=auto|yes|no\n"
               "                           Also keep --listen sockets and stored fds in\n"
               "                           systemd's fd store, for a crash or restart\n"
               "                           (default auto: when $FDSTORE says the unit has\n"
               "                           one)\n"
               "     --cgroup=auto|yes|no  Run each generation in a cgroup of its own below\n"
               "                           handoff's delegated one, Delegate=yes (default\n"
               "                           auto: when systemd marked it delegated)\n"
               "  -v --verbose             Log debug messages\n"
               "  -h --help                Show this help\n"
               "     --version             Show the version\n"
               "\n"
               "Durations take systemd's syntax: 500ms, 30s, 2min, infinity.\n"
               "\"handoff reload\" asks the handoff whose main PID is PID (default $MAINPID)\n"
               "to reload and waits for the outcome; \"handoff status\" shows its state.\n"
               "See handoff(1).\n");
}

int parse_ready(const char *s, bool *ret_by_delay, usec_t *ret_delay) {
        if (strcmp(s, "notify") == 0) {
                *ret_by_delay = false;
                *ret_delay = 0;
                return 0;
        }
        if (strncmp(s, "delay:", 6) != 0)
                return -EINVAL;
        /* A delay that never ends is a generation never ready (with a
         * delay, no start timeout applies). So is one whose end, counted
         * from now, is past the 64-bit clock: no timer is armed for it
         * (event_add_time_relative()), as for --bake. */
        usec_t d;
        if (parse_duration(s + 6, &d) < 0 || usec_add(now_monotonic(), d) == USEC_INFINITY)
                return -EINVAL;
        *ret_by_delay = true;
        *ret_delay = d;
        return 0;
}

static int parse_duration_arg(const char *opt, const char *s, usec_t *ret) {
        int r = parse_duration(s, ret);
        if (r == -ERANGE) {
                say("duration for --%s out of range: \"%s\" (at most 18446744073709551614us, about "
                    "584,542 years; infinity for none)\n", opt, s);
                return -EINVAL;
        }
        if (r < 0) {
                say("invalid duration for --%s: \"%s\" (try 500ms, 30s, 2min, infinity)\n", opt, s);
                return -EINVAL;
        }
        /* As systemd's TimeoutStartSec=0 and TimeoutStopSec=0: no timeout. */
        if (*ret == 0)
                *ret = USEC_INFINITY;
        return 0;
}

enum {
        ARG_READY = 0x100,
        ARG_START_TIMEOUT,
        ARG_STOP_SIGNAL,
        ARG_DRAIN_TIMEOUT,
        ARG_BAKE,
        ARG_MODE,
        ARG_PID_FILE,
        ARG_WORKING_DIRECTORY,
        ARG_ENVIRONMENT_FILE,
        ARG_FD_STORE_MAX,
        ARG_SYSTEMD_FD_STORE,
        ARG_NOTIFY_SOCKET,
        ARG_NOTIFY_ACCESS,
        ARG_CGROUP,
        ARG_NON_BLOCKING,
        ARG_VERSION,
};

static int parse_one(int c, const char *arg, Options *o) {
        int r;
        switch (c) {
        case 'l':
                return strv_push(&o->listen, &o->n_listen, strdup(arg));
        case ARG_READY:
                if (parse_ready(arg, &o->ready_by_delay, &o->ready_delay) < 0) {
                        say("invalid --ready: \"%s\" (expected notify or delay:DUR; not infinity, nor so long "
                            "that it would end past the clock)\n", arg);
                        return -EINVAL;
                }
                return 0;
        case ARG_START_TIMEOUT:
                return parse_duration_arg("start-timeout", arg, &o->start_timeout);
        case ARG_DRAIN_TIMEOUT:
                return parse_duration_arg("drain-timeout", arg, &o->drain_timeout);
        case ARG_BAKE:
                /* A bake that never ends is a reload that never ends. So is
                 * one whose end, counted from now, is past the 64-bit clock:
                 * systemd's usec_add() makes that infinity, and so do our
                 * timers (event_add_time_relative()). */
                if (parse_duration(arg, &o->bake) < 0 || usec_add(now_monotonic(), o->bake) == USEC_INFINITY) {
                        say("invalid duration for --bake: \"%s\" (try 2s, 500ms; 0 for none; not infinity, "
                            "nor so long that it would end past the clock)\n", arg);
                        return -EINVAL;
                }
                return 0;
        case ARG_STOP_SIGNAL:
                if ((r = signal_from_string(arg)) < 0) {
                        say("invalid --stop-signal: \"%s\" (a name as TERM or SIGQUIT, RTMIN+N or RTMAX-N for N "
                            "from 0 to %d, or a number from 1 to %d)\n", arg, SIGRTMAX - SIGRTMIN, _NSIG - 1);
                        return -EINVAL;
                }
                o->stop_signal = r;
                return 0;
        case ARG_MODE:
                if (strcmp(arg, "auto") == 0)
                        o->mode = MODE_AUTO;
                else if (strcmp(arg, "supervise") == 0)
                        o->mode = MODE_SUPERVISE;
                else if (strcmp(arg, "handover") == 0)
                        o->mode = MODE_HANDOVER;
                else {
                        say("invalid --mode: \"%s\" (expected auto, supervise or handover)\n", arg);
                        return -EINVAL;
                }
                return 0;
        case ARG_FD_STORE_MAX: {
                char *end;
                errno = 0;
                unsigned long v = strtoul(arg, &end, 10);
                if (!*arg || *end || errno || v > FD_STORE_MAX_LIMIT || arg[0] == '-') {
                        say("invalid --fd-store-max: \"%s\" (a number from 0 to %d)\n", arg, FD_STORE_MAX_LIMIT);
                        return -EINVAL;
                }
                o->fd_store_max = v;
                return 0;
        }
        case ARG_SYSTEMD_FD_STORE:
                if (strcmp(arg, "auto") == 0)
                        o->systemd_fd_store = SDSTORE_AUTO;
                else if (strcmp(arg, "yes") == 0)
                        o->systemd_fd_store = SDSTORE_YES;
                else if (strcmp(arg, "no") == 0)
                        o->systemd_fd_store = SDSTORE_NO;
                else {
                        say("invalid --systemd-fd-store: \"%s\" (auto, yes or no)\n", arg);
                        return -EINVAL;
                }
                return 0;
        case ARG_NOTIFY_SOCKET:
                if (notify_socket_mode_from_string(arg, &o->notify_socket) < 0) {
                        say("invalid --notify-socket: \"%s\" (auto, path or abstract)\n", arg);
                        return -EINVAL;
                }
                return 0;
        case ARG_NOTIFY_ACCESS:
                if (notify_access_from_string(arg, &o->notify_access) < 0) {
                        say("invalid --notify-access: \"%s\" (main or all)\n", arg);
                        return -EINVAL;
                }
                return 0;
        case ARG_CGROUP:
                if (strcmp(arg, "auto") == 0)
                        o->cgroup = CGROUP_AUTO;
                else if (strcmp(arg, "yes") == 0)
                        o->cgroup = CGROUP_YES;
                else if (strcmp(arg, "no") == 0)
                        o->cgroup = CGROUP_NO;
                else {
                        say("invalid --cgroup: \"%s\" (auto, yes or no)\n", arg);
                        return -EINVAL;
                }
                return 0;
        case ARG_NON_BLOCKING:
                /* yes or no only, as --cgroup and --systemd-fd-store take
                 * them: a value is required (no bare --non-blocking), so
                 * that a unit's command line always says which. */
                if (strcmp(arg, "yes") == 0)
                        o->non_blocking = true;
                else if (strcmp(arg, "no") == 0)
                        o->non_blocking = false;
                else {
                        say("invalid --non-blocking: \"%s\" (yes or no)\n", arg);
                        return -EINVAL;
                }
                return 0;
        case ARG_PID_FILE:
                if (!*arg) {
                        say("invalid --pid-file: an empty path\n");
                        return -EINVAL;
                }
                free(o->pid_file);
                return (o->pid_file = strdup(arg)) ? 0 : -ENOMEM;
        case ARG_WORKING_DIRECTORY:
                /* As systemd's WorkingDirectory=: an absolute path, no ".."
                 * in it (path_is_normalized()). */
                if (arg[0] != '/' || strlen(arg) >= PATH_MAX || strstr(arg, "/../") ||
                    (strlen(arg) >= 3 && strcmp(arg + strlen(arg) - 3, "/..") == 0)) {
                        say("invalid --working-directory: \"%s\" (an absolute path, without \"..\")\n", arg);
                        return -EINVAL;
                }
                free(o->working_directory);
                return (o->working_directory = strdup(arg)) ? 0 : -ENOMEM;
        case ARG_ENVIRONMENT_FILE:
                /* As systemd's EnvironmentFile=: an absolute path (or glob),
                 * "-" before it for one that may be missing. */
                if ((arg[0] == '-' ? arg[1] : arg[0]) != '/' || strlen(arg) >= PATH_MAX) {
                        say("invalid --environment-file: \"%s\" (an absolute path, \"-\" before it if it may be missing)\n",
                            arg);
                        return -EINVAL;
                }
                return strv_push(&o->environment_files, &o->n_environment_files, strdup(arg));
        case 'v':
                o->verbose = true;
                return 0;
        default:
                fprintf(stderr, "Try 'handoff --help' for more information.\n");
                return -EINVAL;
        }
}

static int parse_argv(int argc, char **argv, Options *o) {
        static const struct option longopts[] = {
                { "listen", required_argument, NULL, 'l' },
                { "ready", required_argument, NULL, ARG_READY },
                { "start-timeout", required_argument, NULL, ARG_START_TIMEOUT },
                { "stop-signal", required_argument, NULL, ARG_STOP_SIGNAL },
                { "drain-timeout", required_argument, NULL, ARG_DRAIN_TIMEOUT },
                { "bake", required_argument, NULL, ARG_BAKE },
                { "mode", required_argument, NULL, ARG_MODE },
                { "pid-file", required_argument, NULL, ARG_PID_FILE },
                { "working-directory", required_argument, NULL, ARG_WORKING_DIRECTORY },
                { "environment-file", required_argument, NULL, ARG_ENVIRONMENT_FILE },
                { "fd-store-max", required_argument, NULL, ARG_FD_STORE_MAX },
                { "systemd-fd-store", required_argument, NULL, ARG_SYSTEMD_FD_STORE },
                { "notify-socket", required_argument, NULL, ARG_NOTIFY_SOCKET },
                { "notify-access", required_argument, NULL, ARG_NOTIFY_ACCESS },
                { "cgroup", required_argument, NULL, ARG_CGROUP },
                { "non-blocking", required_argument, NULL, ARG_NON_BLOCKING },
                { "verbose", no_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c, r;
        const char *last_value = NULL;

        /* "+": stop at the first non-option, so that nothing of COMMAND's own
         * arguments is ever taken as ours. */
        optind = 0;
        while ((c = getopt_long(argc, argv, "+l:vh", longopts, NULL)) >= 0) {
                last_value = optarg;
                if (c == 'h') {
                        help();
                        return 0;
                }
                if (c == ARG_VERSION) {
                        printf("handoff %s\n", HANDOFF_VERSION);
                        return 0;
                }
                if ((r = parse_one(c, optarg, o)) < 0)
                        return r == -ENOMEM ? (say("out of memory\n"), r) : r;
        }

        /* getopt consumed a "--" if there was one; require it, so that a
         * misspelt option is never run as the command. A "--" that was an
         * option's value ("--pid-file --") is no separator. */
        if (optind == 0 || optind > argc || strcmp(argv[optind - 1], "--") != 0 || argv[optind - 1] == last_value) {
                if (optind < argc)
                        say("expected \"--\" before the command \"%s\"\n", argv[optind]);
                else
                        say("no command given; usage: handoff [OPTIONS] -- COMMAND [ARG...]\n");
                return -EINVAL;
        }
        if (optind >= argc) {
                say("no command after \"--\"; usage: handoff [OPTIONS] -- COMMAND [ARG...]\n");
                return -EINVAL;
        }
        o->command = argv + optind;
        return 1;
}

int options_parse(int argc, char **argv, Options *o) {
        /* getopt's own messages ("unrecognized option") start with argv[0]:
         * make that our program's name, as ours, not the path it was run by.
         * argv[0] is restored: the next handoff is started from it. */
        if (argc < 1)
                return parse_argv(argc, argv, o);
        char *argv0 = argv[0];
        argv[0] = (char *) program;
        int r = parse_argv(argc, argv, o);
        argv[0] = argv0;
        return r;
}

void options_done(Options *o) {
        strv_free(o->listen);
        free(o->pid_file);
        free(o->working_directory);
        strv_free(o->environment_files);
        *o = (Options) {};
}
