/* SPDX-License-Identifier: MIT */
#pragma once

/* "handoff reload" and "handoff status": one request over the control
 * socket of the main handoff, one answer. */

enum {
        EXIT_CLIENT_FAILED = 1,      /* the reload failed; the old generation serves */
        EXIT_CLIENT_USAGE = 2,
        EXIT_CLIENT_UNREACHABLE = 3, /* no handoff there, or it refused */
        EXIT_CLIENT_TIMEOUT = 4,     /* no answer in time; the reload may complete */
};

/* argv[0] is the verb ("reload" or "status"); program is what the user ran
 * ("handoff" or "handoffctl"), for messages. Returns the exit code. Needs
 * libc only: handoffctl, which systemd runs for ExecReload=, is linked
 * without libsystemd and starts in a fraction of handoff's time. */
int client_main(const char *program, int argc, char **argv);
