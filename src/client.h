/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* "handoff reload" and "handoff status": one request over the control
 * socket of the main handoff, one answer. */

enum {
        EXIT_CLIENT_FAILED = 1,      /* the reload failed; the old generation serves */
        EXIT_CLIENT_USAGE = 2,
        EXIT_CLIENT_UNREACHABLE = 3, /* no handoff there, or it refused */
        EXIT_CLIENT_TIMEOUT = 4,     /* no answer in time; the reload may complete */
};

/* "reload" or "status". */
bool client_is_verb(const char *word);
/* The verb word is a typo of (two edits at most: "relaod"), else NULL; never
 * for an option or a path. */
const char *client_verb_near(const char *word);

/* argv[0] is the verb ("reload" or "status"); program is what the user ran
 * ("handoff" or "handoffctl"), for messages. Returns the exit code. Needs
 * libc only: handoffctl, which systemd runs for ExecReload=, is linked
 * without libsystemd and starts in a fraction of handoff's time. */
int client_main(const char *program, int argc, char **argv);
