/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* Environment files, as systemd's EnvironmentFile= reads them, read again
 * at each generation's start (--environment-file).
 *
 * systemd reads a unit's EnvironmentFile= when it starts a process: for
 * handoff, once, at the service's start. A reload starts a new server
 * process, but without this it would inherit that environment, so an edited
 * DATABASE_URL= reached the server only at a restart. With it, a generation
 * gets handoff's environment without the variables the files named when
 * they were first read (systemd put those there), and then the files as
 * they are now: a changed variable changes, a removed one goes, a new one
 * comes. */

/* Reads specs in order ("PATH", or "-PATH" for one that may fail: then it
 * is skipped, a missing one silently, any other with a warning; a PATH with
 * a wildcard is a glob, whose files are read in sorted order) into *ret,
 * later assignments replacing earlier ones. An assignment of a variable
 * handoff sets for each generation (env_is_scrubbed(): LISTEN_FDS,
 * NOTIFY_SOCKET...) is skipped with a warning. Returns 0, or -errno with
 * *ret_failed the file that could not be read (a new string) and *ret_line
 * its bad line (0 for none): -EBADMSG, -EILSEQ and -E2BIG as
 * env_file_parse() says, -EFBIG when all files together are larger than
 * ENV_FILE_MAX_SIZE, -EBADFD for one that is neither a regular file nor a
 * character device (/dev/null; a FIFO would block handoff's loop), -EISDIR. */
int env_files_read(char *const *specs, char ***ret, char **ret_failed, unsigned *ret_line);

/* The names of the entries l, each after a ':' (":A:B"): the form in which
 * handoff keeps the names the files had at their first read, and passes
 * them to the next handoff (HANDOFF_ENVIRONMENT_KEYS). NULL when out of
 * memory. */
char *env_file_names(char *const *l);

/* Whether s is names as env_file_names() writes them (":A:B", or ""). */
bool env_file_names_valid(const char *s);
