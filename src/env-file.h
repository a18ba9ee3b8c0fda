/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* systemd's EnvironmentFile= syntax: one file's text into a list of
 * "NAME=VALUE" entries. (env-files.h reads the files.) */

/* What a start reads at most, so that a file made by mistake (or by
 * someone else) cannot stall handoff's loop for long: all files together,
 * and the variables they set. Far above what a server's configuration
 * needs; systemd itself reads no more than an environment may hold. */
#define ENV_FILE_MAX_SIZE (1024 * 1024)
#define ENV_FILE_MAX_ENTRIES 1024

/* The entries read so far, each name once, with an index by name. */
typedef struct EnvList {
        char **l;         /* NULL-terminated (NULL while empty) */
        size_t n, allocated;
        uint16_t *index;  /* by name: 1 + the entry's place, 0 for none */
} EnvList;

int env_list_init(EnvList *x);
void env_list_done(EnvList *x);
/* The entries (an empty list rather than NULL; NULL when out of memory);
 * x is done. */
char **env_list_steal(EnvList *x);
/* Moves m's entries into x, each in the place of x's of the same name: all,
 * or none with -E2BIG (more than ENV_FILE_MAX_ENTRIES), or some with
 * -ENOMEM. m is done. */
int env_list_merge(EnvList *x, EnvList *m);

/* Called for an assignment that is skipped, with why ("not a valid
 * variable name"). */
typedef void (*EnvFileSkipped)(const char *key, unsigned line, const char *why, void *userdata);

/* Parses one file's text as systemd's load_env_file() does: KEY=VALUE
 * lines; blanks around the key and the value dropped; '#' or ';' starts a
 * comment line; 'single' and "double" quoted values (a backslash in double
 * quotes escapes " \ ` $ and a newline, and stays before anything else);
 * outside quotes a backslash takes the next character as it is and joins
 * lines. Each assignment goes into x: one of a name already there replaces
 * it in its place. One whose name is not a shell variable name is skipped
 * (skipped() says so; may be NULL). Returns 0; -EBADMSG with *ret_line (the
 * line of the first NUL) when the len bytes of text hold a NUL, and
 * -EILSEQ with *ret_line when a key or value is not valid UTF-8 (systemd
 * refuses the whole file then, both times), -E2BIG with *ret_line when x
 * would get more than ENV_FILE_MAX_ENTRIES entries; -ENOMEM. */
int env_file_parse(const char *text, size_t len, EnvList *x, EnvFileSkipped skipped, void *userdata,
                   unsigned *ret_line);

/* systemd's env_name_is_valid(): letters, digits and '_', not starting
 * with a digit, n > 0. */
bool env_name_is_valid_n(const char *s, size_t n);
