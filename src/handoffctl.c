/* SPDX-License-Identifier: MIT */
/* handoffctl: "handoff reload" and "handoff status" as a program of their
 * own, linked with libc alone. systemd starts ExecReload= for every
 * `systemctl reload`, and loading libsystemd and the six libraries behind
 * it is most of handoff's own start (about 2 ms of 4 on the machine the
 * bench ran on); the reload client needs none of it. The requests, replies
 * and exit codes are client_main()'s, the same as handoff's. */
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "util.h"

#ifndef HANDOFF_VERSION
#define HANDOFF_VERSION "unknown"
#endif

static void help(FILE *f) {
        fprintf(f,
                "Usage: handoffctl reload [--pid PID] [--timeout DUR] [-- [OPTIONS] -- COMMAND [ARG...]]\n"
                "       handoffctl status [--pid PID] [--json] [--timeout DUR]\n"
                "\n"
                "Ask a running handoff (its main PID: --pid, else $MAINPID) to reload, or for its\n"
                "status; the same as \"handoff reload\" and \"handoff status\". For a unit:\n"
                "  handoffctl status --pid \"$(systemctl show -p MainPID --value UNIT)\"\n"
                "(systemctl reload UNIT runs its ExecReload=, handoffctl reload). See\n"
                "'handoffctl reload --help', 'handoffctl status --help' and handoff(1).\n");
}

int main(int argc, char **argv) {
        if (std_fds_ensure_open() < 0)
                return EXIT_FAILURE;
        if (argc > 1 && client_is_verb(argv[1]))
                return client_main("handoffctl", argc - 1, argv + 1);
        if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
                help(stdout);
                return 0;
        }
        if (argc > 1 && strcmp(argv[1], "--version") == 0) {
                printf("handoffctl %s\n", HANDOFF_VERSION);
                return 0;
        }
        const char *near = argc > 1 ? client_verb_near(argv[1]) : NULL;
        if (near)
                fprintf(stderr, "handoffctl: unknown command \"%s\"; did you mean \"handoffctl %s\"?\n", argv[1], near);
        else if (argc > 1)
                fprintf(stderr, "handoffctl: unknown command \"%s\" (expected reload or status).\n", argv[1]);
        else
                help(stderr);
        return EXIT_CLIENT_USAGE;
}
