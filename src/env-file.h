/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

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

/* What a start reads at most, so that a file made by mistake (or by
 * someone else) cannot stall handoff's loop for long: each lookup by name
 * is a scan, and systemd itself reads no more than an environment may
 * hold. Far above what a server's configuration needs. */
#define ENV_FILE_MAX_SIZE (1024 * 1024)
#define ENV_FILE_MAX_ENTRIES 1024

/* Called for an assignment that is skipped, with why ("not a valid
 * variable name"). */
typedef void (*EnvFileSkipped)(const char *key, unsigned line, const char *why, void *userdata);

/* Parses one file's text as systemd's load_env_file() does: KEY=VALUE
 * lines; blanks around the key and the value dropped; '#' or ';' starts a
 * comment line; 'single' and "double" quoted values (a backslash in double
 * quotes escapes " \ ` $ and a newline, and stays before anything else);
 * outside quotes a backslash takes the next character as it is and joins
 * lines. The text ends at its first NUL. Each assignment is put in *l
 * ("KEY=VALUE", *n entries, NULL-terminated): one of a KEY already there
 * replaces it in its place. One whose name is not a shell variable name is
 * skipped (skipped() says so; may be NULL). Returns 0; -EILSEQ with
 * *ret_line when a key or value is not valid UTF-8 (systemd refuses the
 * whole file then), -E2BIG with *ret_line when *l would get more than
 * ENV_FILE_MAX_ENTRIES entries; -ENOMEM. */
int env_file_parse(const char *text, size_t len, char ***l, size_t *n, EnvFileSkipped skipped, void *userdata,
                   unsigned *ret_line);

/* Reads specs in order ("PATH", or "-PATH" for one that may be missing or
 * unreadable; a PATH may be a glob, whose files are read in sorted order)
 * into *ret, later assignments replacing earlier ones. An assignment of a
 * variable handoff sets for each generation (env_is_scrubbed(): LISTEN_FDS,
 * NOTIFY_SOCKET...) is skipped with a warning. Returns 0, or -errno with
 * *ret_failed the file that could not be read (a new string) and *ret_line
 * its bad line (0 for none): -EILSEQ and -E2BIG as above, -EFBIG for one
 * larger than ENV_FILE_MAX_SIZE, -EBADFD for one that is neither a regular
 * file nor a character device (/dev/null; a FIFO would block handoff's
 * loop), -EISDIR. */
int env_files_read(char *const *specs, char ***ret, char **ret_failed, unsigned *ret_line);

/* The names of the assignments l, each after a ':' (":A:B"): the form in
 * which handoff keeps the names the files had at their first read, and
 * passes them to the next handoff (HANDOFF_ENVIRONMENT_KEYS). NULL when out
 * of memory. */
char *env_file_names(char *const *l);

/* Whether s is names as env_file_names() writes them (":A:B", or ""). */
bool env_file_names_valid(const char *s);
