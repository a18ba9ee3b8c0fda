/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "options.h"

/* A reload's new command line.
 *
 * systemd does not re-run ExecStart= on a reload, so an edited
 * EnvironmentFile= (COMMAND=, HANDOFF_OPTIONS=) would never reach handoff.
 * ExecReload= does see it: systemd reads the file again for every command it
 * runs. So the unit's ExecReload= repeats ExecStart='s arguments,
 *
 *     ExecStart=handoff OPTIONS -- COMMAND
 *     ExecReload=handoff reload -- OPTIONS -- COMMAND
 *
 * and "handoff reload" sends them with its request. On the wire they follow
 * "RELOAD", each one after a NUL: "RELOAD\0--drain-timeout=5s\0--\0srv".
 *
 * The reload that starts after the request runs its candidate with the new
 * COMMAND and options; once it serves they are handoff's (the next reload,
 * also by SIGHUP, starts them again). A candidate that fails leaves the old
 * ones in place. Options that describe the service itself rather than a
 * generation (its sockets, mode, cgroup, pid file, notify socket, fd store)
 * take effect only at a restart: a reload that would change one fails at
 * once, and says which. */

typedef struct ReloadConfig {
        Options opt;
        char **argv;     /* handoff's argv[0], then the arguments; opt points into it */
} ReloadConfig;

/* The wire form of args[0..n): "RELOAD" and each one after a NUL, newly
 * allocated. */
int reload_config_encode(char *const *args, size_t n, char **ret, size_t *ret_len);

/* Parses the arguments of a request (what follows "RELOAD": each one after
 * a NUL) as handoff's own command line, argv0 first. Returns 0, or -EINVAL
 * with what is wrong in why ("the new command line is invalid: invalid
 * --mode: ..."; the option parser's message, which is not printed), or
 * -ECANCELED when it asked for --help or --version (which is not printed),
 * -ENOMEM. */
int reload_config_parse(const char *argv0, const char *args, size_t len, ReloadConfig **ret, char *why,
                        size_t why_size);

/* NULL when next may follow cur at a reload, else the option that differs
 * and would need a restart ("--listen"). */
const char *reload_config_fixed_change(const Options *cur, const Options *next);

ReloadConfig *reload_config_free(ReloadConfig *c);
