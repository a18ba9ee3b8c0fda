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

/* argv[0] is the verb ("reload" or "status"). Returns the exit code. */
int client_main(int argc, char **argv);
