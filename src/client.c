/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "client.h"
#include "control.h"
#include "time-util.h"
#include "util.h"

/* How often a reply may send us on to another handoff (a handover during
 * the reload): more would mean a loop. */
#define MAX_HOPS 8

static void help(const char *verb) {
        if (strcmp(verb, "reload") == 0)
                printf("Usage: handoff reload [--pid PID] [--timeout DUR]\n"
                       "\n"
                       "Ask the handoff whose main PID is PID (default: $MAINPID, as systemd sets it\n"
                       "for ExecReload=) to reload, and wait until a reload that started after this\n"
                       "request has ended.\n"
                       "\n"
                       "Exit status: 0 reloaded; 1 the reload failed (the old generation serves on);\n"
                       "2 invalid arguments; 3 handoff could not be reached or refused the request;\n"
                       "4 timed out (the reload may still complete).\n");
        else
                printf("Usage: handoff status [--pid PID] [--json] [--timeout DUR]\n"
                       "\n"
                       "Show the generations, sockets and reloads of the handoff whose main PID is\n"
                       "PID (default: $MAINPID). Exit status: 0, or 2, 3 and 4 as for reload.\n");
}

static int parse_pid(const char *s, pid_t *ret) {
        char *end;
        errno = 0;
        long v = s ? strtol(s, &end, 10) : 0;
        if (!s || !*s || *end || errno || v <= 0 || v > 4194304)
                return -EINVAL;
        *ret = (pid_t) v;
        return 0;
}

static int connect_to(pid_t pid) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int k = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, CONTROL_ADDRESS_FMT, (int) pid);
        socklen_t len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + (size_t) k);
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, len) < 0) {
                int r = -errno;
                safe_close(fd);
                return r;
        }
        /* The name is predictable: whoever bound it first answers. Only the
         * process we asked for, of our uid or root's, is handoff. */
        struct ucred uc;
        socklen_t ul = sizeof uc;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 || uc.pid != pid ||
            (uc.uid != getuid() && uc.uid != 0)) {
                safe_close(fd);
                return -EPERM;
        }
        return fd;
}

/* SIGTERM is what systemd sends to ExecReload= when the service stops during
 * a reload: the stop decides the reload's fate, and a reload command killed
 * by a signal would mark the unit failed. So it ends the wait with 0.
 * SIGINT (Ctrl-C) ends it as a shell reports it, 130. */
_Noreturn static void interrupted(int sigfd) {
        struct signalfd_siginfo si;
        if (read(sigfd, &si, sizeof si) != sizeof si)
                exit(EXIT_CLIENT_UNREACHABLE);
        if (si.ssi_signo == SIGTERM) {
                fprintf(stderr, "handoff: stopped waiting (SIGTERM); the service is probably stopping.\n");
                exit(0);
        }
        exit(128 + (int) si.ssi_signo);
}

/* Sends one request to pid and waits for its one reply until deadline. */
static int ask(pid_t pid, const char *request, usec_t deadline, int sigfd, char *reply, size_t size) {
        _cleanup_close_ int fd = connect_to(pid);
        if (fd < 0) {
                fprintf(stderr, "handoff: cannot reach handoff pid %d: %s (is it running, and is %d its main PID?)\n",
                        (int) pid, strerror(-fd), (int) pid);
                return EXIT_CLIENT_UNREACHABLE;
        }
        if (send(fd, request, strlen(request), MSG_NOSIGNAL) < 0) {
                fprintf(stderr, "handoff: cannot send to handoff pid %d: %m\n", (int) pid);
                return EXIT_CLIENT_UNREACHABLE;
        }
        for (;;) {
                usec_t now = now_monotonic();
                int ms = deadline == USEC_INFINITY ? -1
                         : now >= deadline         ? 0
                                                   : (int) ((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC);
                struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = sigfd, .events = POLLIN } };
                int r = poll(p, 2, ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r > 0 && (p[1].revents & POLLIN))
                        interrupted(sigfd);
                if (r == 0) {
                        fprintf(stderr, "handoff: no answer from handoff pid %d in time; the reload may still "
                                        "complete.\n", (int) pid);
                        return EXIT_CLIENT_TIMEOUT;
                }
                ssize_t n = recv(fd, reply, size - 1, 0);
                if (n <= 0) {
                        fprintf(stderr, "handoff: handoff pid %d closed the connection without an answer.\n",
                                (int) pid);
                        return EXIT_CLIENT_UNREACHABLE;
                }
                reply[n] = '\0';
                return 0;
        }
}

/* Runs one request, following FOLLOW/JOIN replies across a handover. */
static int request(pid_t pid, const char *what, usec_t deadline, char *reply, size_t size) {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return EXIT_CLIENT_UNREACHABLE;
        _cleanup_close_ int sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (sigfd < 0)
                return EXIT_CLIENT_UNREACHABLE;
        for (int hop = 0; hop < MAX_HOPS; hop++) {
                int r = ask(pid, what, deadline, sigfd, reply, size);
                if (r != 0)
                        return r;
                pid_t next;
                if (strncmp(reply, "FOLLOW ", 7) == 0 && parse_pid(reply + 7, &next) == 0)
                        pid = next;
                else if (strncmp(reply, "JOIN ", 5) == 0 && parse_pid(reply + 5, &next) == 0) {
                        pid = next;
                        what = "JOIN";
                } else
                        return 0;
        }
        fprintf(stderr, "handoff: sent on more than %d times; giving up.\n", MAX_HOPS);
        return EXIT_CLIENT_UNREACHABLE;
}

int client_main(int argc, char **argv) {
        static const struct option longopts[] = {
                { "pid", required_argument, NULL, 'p' },
                { "timeout", required_argument, NULL, 't' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *verb = argv[0];
        bool reload = strcmp(verb, "reload") == 0, json = false;
        const char *pid_arg = getenv("MAINPID");
        usec_t timeout = 120 * USEC_PER_SEC;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) >= 0)
                switch (c) {
                case 'p':
                        pid_arg = optarg;
                        break;
                case 't':
                        if (parse_duration(optarg, &timeout) < 0) {
                                fprintf(stderr, "handoff: invalid --timeout: \"%s\"\n", optarg);
                                return EXIT_CLIENT_USAGE;
                        }
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        help(verb);
                        return 0;
                default:
                        fprintf(stderr, "Try 'handoff %s --help'.\n", verb);
                        return EXIT_CLIENT_USAGE;
                }
        if (optind < argc || (json && reload)) {
                fprintf(stderr, "handoff: unexpected argument \"%s\"; try 'handoff %s --help'.\n",
                        optind < argc ? argv[optind] : "--json", verb);
                return EXIT_CLIENT_USAGE;
        }
        pid_t pid;
        if (parse_pid(pid_arg, &pid) < 0) {
                fprintf(stderr, pid_arg ? "handoff: invalid pid \"%s\".\n"
                                        : "handoff: no --pid given and no $MAINPID set%s.\n",
                        pid_arg ? pid_arg : "");
                return EXIT_CLIENT_USAGE;
        }

        char reply[CONTROL_MAX_REPLY + 1];
        usec_t deadline = timeout == USEC_INFINITY ? USEC_INFINITY : now_monotonic() + timeout;
        int r = request(pid, reload ? "RELOAD" : json ? "STATUS json" : "STATUS", deadline, reply, sizeof reply);
        if (r != 0)
                return r;
        if (strncmp(reply, "OK ", 3) == 0) {
                printf("%s\n", reply + 3);
                return 0;
        }
        if (strncmp(reply, "FAIL ", 5) == 0) {
                fprintf(stderr, "%s\n", reply + 5);
                return EXIT_CLIENT_FAILED;
        }
        fprintf(stderr, "handoff: %s\n", strncmp(reply, "ERROR ", 6) == 0 ? reply + 6 : reply);
        return EXIT_CLIENT_UNREACHABLE;
}
