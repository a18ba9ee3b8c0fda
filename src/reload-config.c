/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reload-config.h"
#include "util.h"

#define REQUEST "RELOAD"

int reload_config_encode(char *const *args, size_t n, char **ret, size_t *ret_len) {
        size_t len = strlen(REQUEST);
        for (size_t i = 0; i < n; i++)
                len += 1 + strlen(args[i]);
        char *buf = malloc(len + 1);
        if (!buf)
                return -ENOMEM;
        char *p = stpcpy(buf, REQUEST);
        for (size_t i = 0; i < n; i++) {
                *p++ = '\0';
                p = stpcpy(p, args[i]);
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}

ReloadConfig *reload_config_free(ReloadConfig *c) {
        if (!c)
                return NULL;
        options_done(&c->opt);
        strv_free(c->argv);
        free(c);
        return NULL;
}

/* options_parse() with what it prints on stderr (its own messages and
 * getopt's) caught instead: its first line, without the program's name
 * before it, goes into why, so that the reply "handoff reload" prints says
 * what is wrong, and handoff's caller logs it once. What it prints on
 * stdout (--help, --version) is caught too and dropped: handoff's stdout
 * is the service's log. glibc's stderr and stdout are variables a program
 * may set, and getopt and printf() write to them; handoff's log writes to
 * fd 2 itself, so no other thread's line is caught. Without the memory for
 * it, the messages go out as they would. */
static int parse_options(int argc, char **argv, Options *o, char *why, size_t why_size) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *saved = stderr, *saved_out = stdout, *caught = open_memstream(&text, &size);
        if (caught)
                stderr = stdout = caught;
        int r = options_parse(argc, argv, o);
        stderr = saved;
        stdout = saved_out;
        if (caught)
                fclose(caught);
        if (r == 0)
                snprintf(why, why_size, "the new command line asks for --help or --version");
        if (r >= 0)
                return r;
        if (r == -ENOMEM) {
                snprintf(why, why_size, "out of memory");
                return r;
        }

        /* The first line, which may hold any byte of the request but NUL:
         * up to its first control character, and cut between characters. */
        const char *head = "the new command line is invalid", *line = text ? text : "";
        const char *sep = strstr(line, ": "); /* after "handoff" */
        if (sep && (size_t) (sep - line) < strcspn(line, "\n"))
                line = sep + 2;
        size_t room = why_size > strlen(head) + 3 ? why_size - strlen(head) - 3 : 0;
        size_t k = utf8_trim_partial(line, printable_prefix(line, room));
        if (k > 0)
                snprintf(why, why_size, "%s: %.*s", head, (int) k, line);
        else
                snprintf(why, why_size, "%s", head);
        return r;
}

int reload_config_parse(const char *argv0, const char *args, size_t len, ReloadConfig **ret, char *why,
                        size_t why_size) {
        ReloadConfig *c = calloc(1, sizeof *c);
        size_t n = 0;
        if (!c || strv_push(&c->argv, &n, strdup(argv0)) < 0)
                goto oom;
        /* Each argument comes after a NUL; the last one ends with the message. */
        for (size_t i = 0; i < len;) {
                if (args[i] != '\0') {
                        snprintf(why, why_size, "malformed reload request");
                        reload_config_free(c);
                        return -EINVAL;
                }
                const char *a = args + i + 1;
                const char *end = memchr(a, '\0', len - i - 1);
                size_t k = end ? (size_t) (end - a) : len - i - 1;
                if (strv_push(&c->argv, &n, strndup(a, k)) < 0)
                        goto oom;
                i += 1 + k;
        }
        c->opt = OPTIONS_DEFAULT;
        int r = parse_options((int) n, c->argv, &c->opt, why, why_size);
        if (r <= 0) {
                reload_config_free(c);
                return r == 0 ? -ECANCELED : r == -ENOMEM ? r : -EINVAL;
        }
        *ret = c;
        return 0;
oom:
        snprintf(why, why_size, "out of memory");
        reload_config_free(c);
        return -ENOMEM;
}

static bool streq_null(const char *a, const char *b) {
        return a == b || (a && b && strcmp(a, b) == 0);
}

const char *reload_config_fixed_change(const Options *cur, const Options *next) {
        if (cur->n_listen != next->n_listen)
                return "--listen";
        for (size_t i = 0; i < cur->n_listen; i++)
                if (strcmp(cur->listen[i], next->listen[i]) != 0)
                        return "--listen";
        if (cur->mode != next->mode)
                return "--mode";
        if (cur->cgroup != next->cgroup)
                return "--cgroup";
        if (!streq_null(cur->pid_file, next->pid_file))
                return "--pid-file";
        if (cur->notify_socket != next->notify_socket)
                return "--notify-socket";
        if (cur->fd_store_max != next->fd_store_max)
                return "--fd-store-max";
        if (cur->systemd_fd_store != next->systemd_fd_store)
                return "--systemd-fd-store";
        /* The flag is the sockets' own, shared with the serving generation:
         * a reload that set it would change it under that one. */
        if (cur->non_blocking != next->non_blocking)
                return "--non-blocking";
        return NULL;
}
