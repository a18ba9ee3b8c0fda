/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <glob.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env-file.h"
#include "env.h"
#include "log.h"
#include "util.h"

/* ---- the parser: systemd's parse_env_file_internal() as a table ---------- */

typedef enum State {
        PRE_KEY,
        KEY,
        PRE_VALUE,
        VALUE,
        VALUE_ESCAPE,
        SINGLE_QUOTED,
        DOUBLE_QUOTED,
        DOUBLE_QUOTED_ESCAPE,
        COMMENT,
        COMMENT_ESCAPE,
        N_STATES,
} State;

/* What a character is to the parser. */
typedef enum Class {
        C_LF,      /* '\n' */
        C_CR,      /* '\r': a newline too, but kept after a backslash in double quotes */
        C_BLANK,   /* ' ', '\t' */
        C_COMMENT, /* '#', ';' */
        C_EQUALS,
        C_SQUOTE,
        C_DQUOTE,
        C_BACKSLASH,
        C_SHELL,   /* '`', '$': with " and \ what a backslash escapes in double quotes */
        C_OTHER,
        N_CLASSES,
} Class;

typedef enum Action {
        A_NONE,
        A_KEY_START,     /* the key's first character */
        A_KEY,           /* a character of the key; blanks at its end are dropped */
        A_KEY_DROP,      /* a line with no '=': not an assignment */
        A_EQUALS,        /* the value begins */
        A_RAW,           /* a character of the value as it is */
        A_VALUE,         /* a character of an unquoted value; blanks at its end are dropped */
        A_ESCAPE,        /* a backslash in an unquoted value: what follows is kept */
        A_KEEP_ESCAPE,   /* a backslash in double quotes before another character: both kept */
        A_PUSH,          /* the line ends the assignment */
        A_PUSH_TRIM,     /* ... of an unquoted value, blanks at its end dropped */
} Action;

typedef struct Step {
        State next;
        Action action;
} Step;

/* table[state][class]: the next state and what to do with the character.
 * The columns are Class's: LF, CR, BLANK, COMMENT, EQUALS, SQUOTE, DQUOTE,
 * BACKSLASH, SHELL, OTHER. */
#define _(next, action) { next, A_##action }
static const Step table[N_STATES][N_CLASSES] = {
        [PRE_KEY] = {
                _(PRE_KEY, NONE), _(PRE_KEY, NONE), _(PRE_KEY, NONE), _(COMMENT, NONE),
                _(KEY, KEY_START), _(KEY, KEY_START), _(KEY, KEY_START), _(KEY, KEY_START),
                _(KEY, KEY_START), _(KEY, KEY_START) },
        [KEY] = {
                _(PRE_KEY, KEY_DROP), _(PRE_KEY, KEY_DROP), _(KEY, KEY), _(KEY, KEY),
                _(PRE_VALUE, EQUALS), _(KEY, KEY), _(KEY, KEY), _(KEY, KEY),
                _(KEY, KEY), _(KEY, KEY) },
        [PRE_VALUE] = {
                _(PRE_KEY, PUSH), _(PRE_KEY, PUSH), _(PRE_VALUE, NONE), _(VALUE, RAW),
                _(VALUE, RAW), _(SINGLE_QUOTED, NONE), _(DOUBLE_QUOTED, NONE), _(VALUE_ESCAPE, NONE),
                _(VALUE, RAW), _(VALUE, RAW) },
        [VALUE] = {
                _(PRE_KEY, PUSH_TRIM), _(PRE_KEY, PUSH_TRIM), _(VALUE, VALUE), _(VALUE, VALUE),
                _(VALUE, VALUE), _(VALUE, VALUE), _(VALUE, VALUE), _(VALUE_ESCAPE, ESCAPE),
                _(VALUE, VALUE), _(VALUE, VALUE) },
        /* An escaped newline joins the lines. */
        [VALUE_ESCAPE] = {
                _(VALUE, NONE), _(VALUE, NONE), _(VALUE, RAW), _(VALUE, RAW),
                _(VALUE, RAW), _(VALUE, RAW), _(VALUE, RAW), _(VALUE, RAW),
                _(VALUE, RAW), _(VALUE, RAW) },
        [SINGLE_QUOTED] = {
                _(SINGLE_QUOTED, RAW), _(SINGLE_QUOTED, RAW), _(SINGLE_QUOTED, RAW), _(SINGLE_QUOTED, RAW),
                _(SINGLE_QUOTED, RAW), _(PRE_VALUE, NONE), _(SINGLE_QUOTED, RAW), _(SINGLE_QUOTED, RAW),
                _(SINGLE_QUOTED, RAW), _(SINGLE_QUOTED, RAW) },
        [DOUBLE_QUOTED] = {
                _(DOUBLE_QUOTED, RAW), _(DOUBLE_QUOTED, RAW), _(DOUBLE_QUOTED, RAW), _(DOUBLE_QUOTED, RAW),
                _(DOUBLE_QUOTED, RAW), _(DOUBLE_QUOTED, RAW), _(PRE_VALUE, NONE), _(DOUBLE_QUOTED_ESCAPE, NONE),
                _(DOUBLE_QUOTED, RAW), _(DOUBLE_QUOTED, RAW) },
        /* What the shell escapes loses its backslash, a newline goes
         * (the lines join), anything else keeps it. */
        [DOUBLE_QUOTED_ESCAPE] = {
                _(DOUBLE_QUOTED, NONE), _(DOUBLE_QUOTED, KEEP_ESCAPE), _(DOUBLE_QUOTED, KEEP_ESCAPE),
                _(DOUBLE_QUOTED, KEEP_ESCAPE), _(DOUBLE_QUOTED, KEEP_ESCAPE), _(DOUBLE_QUOTED, KEEP_ESCAPE),
                _(DOUBLE_QUOTED, RAW), _(DOUBLE_QUOTED, RAW), _(DOUBLE_QUOTED, RAW),
                _(DOUBLE_QUOTED, KEEP_ESCAPE) },
        [COMMENT] = {
                _(PRE_KEY, NONE), _(PRE_KEY, NONE), _(COMMENT, NONE), _(COMMENT, NONE),
                _(COMMENT, NONE), _(COMMENT, NONE), _(COMMENT, NONE), _(COMMENT_ESCAPE, NONE),
                _(COMMENT, NONE), _(COMMENT, NONE) },
        [COMMENT_ESCAPE] = {
                _(COMMENT, NONE), _(COMMENT, NONE), _(COMMENT, NONE), _(COMMENT, NONE),
                _(COMMENT, NONE), _(COMMENT, NONE), _(COMMENT, NONE), _(COMMENT, NONE),
                _(COMMENT, NONE), _(COMMENT, NONE) },
};
#undef _

static Class classify(char c) {
        switch (c) {
        case '\n': return C_LF;
        case '\r': return C_CR;
        case ' ': case '\t': return C_BLANK;
        case '#': case ';': return C_COMMENT;
        case '=': return C_EQUALS;
        case '\'': return C_SQUOTE;
        case '"': return C_DQUOTE;
        case '\\': return C_BACKSLASH;
        case '`': case '$': return C_SHELL;
        default: return C_OTHER;
        }
}

/* systemd's env_name_is_valid(): letters, digits and '_', not starting
 * with a digit. */
static bool name_is_valid_n(const char *s, size_t n) {
        if (n == 0 || (*s >= '0' && *s <= '9'))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      s[i] == '_'))
                        return false;
        return true;
}

/* Takes e ("NAME=VALUE") into *l: in the place of an entry of the same
 * name, else at the end. Frees it when it cannot. */
static int assign(char ***l, size_t *n, char *e) {
        ssize_t i = env_find(*l, e);
        if (i >= 0) {
                free((*l)[i]);
                (*l)[i] = e;
                return 0;
        }
        if (*n >= ENV_FILE_MAX_ENTRIES) {
                free(e);
                return -E2BIG;
        }
        return strv_push(l, n, e);
}

static int put(char ***l, size_t *n, const char *key, const char *value) {
        size_t k = strlen(key), v = strlen(value);
        char *e = malloc(k + v + 2);
        if (!e)
                return -ENOMEM;
        memcpy(e, key, k);
        e[k] = '=';
        memcpy(e + k + 1, value, v + 1);
        return assign(l, n, e);
}

typedef struct Parser {
        char *key, *value;
        size_t n_key, n_value;
        size_t key_blank, value_blank; /* where trailing blanks begin; SIZE_MAX: none */
        unsigned line, key_line;
} Parser;

static int push(Parser *p, bool trim, char ***l, size_t *n, EnvFileSkipped skipped, void *userdata,
                unsigned *ret_line) {
        p->key[p->key_blank != SIZE_MAX ? p->key_blank : p->n_key] = 0;
        p->value[trim && p->value_blank != SIZE_MAX ? p->value_blank : p->n_value] = 0;
        p->n_key = p->n_value = 0;
        if (!utf8_is_valid(p->key) || !utf8_is_valid(p->value)) {
                *ret_line = p->key_line;
                return -EILSEQ;
        }
        if (!name_is_valid_n(p->key, strlen(p->key))) {
                if (skipped)
                        skipped(p->key, p->key_line, "not a valid variable name", userdata);
                return 0;
        }
        int r = put(l, n, p->key, p->value);
        if (r == -E2BIG)
                *ret_line = p->key_line;
        return r;
}

int env_file_parse(const char *text, size_t len, char ***l, size_t *n, EnvFileSkipped skipped, void *userdata,
                   unsigned *ret_line) {
        len = strnlen(text, len);
        /* Neither a key nor a value is longer than the text. */
        _cleanup_free_ char *buf = malloc(2 * (len + 1));
        if (!buf)
                return -ENOMEM;
        Parser p = { .key = buf, .value = buf + len + 1, .line = 1 };
        State s = PRE_KEY;
        int r;

        for (size_t i = 0; i < len; i++) {
                char c = text[i];
                Step step = table[s][classify(c)];
                switch (step.action) {
                case A_NONE:
                        break;
                case A_KEY_START:
                        p.key_line = p.line;
                        p.key_blank = SIZE_MAX;
                        p.key[p.n_key++] = c;
                        break;
                case A_KEY:
                        if (c != ' ' && c != '\t')
                                p.key_blank = SIZE_MAX;
                        else if (p.key_blank == SIZE_MAX)
                                p.key_blank = p.n_key;
                        p.key[p.n_key++] = c;
                        break;
                case A_KEY_DROP:
                        p.n_key = 0;
                        break;
                case A_EQUALS:
                        p.value_blank = SIZE_MAX;
                        break;
                case A_RAW:
                        p.value[p.n_value++] = c;
                        break;
                case A_VALUE:
                        if (c != ' ' && c != '\t')
                                p.value_blank = SIZE_MAX;
                        else if (p.value_blank == SIZE_MAX)
                                p.value_blank = p.n_value;
                        p.value[p.n_value++] = c;
                        break;
                case A_ESCAPE:
                        p.value_blank = SIZE_MAX;
                        break;
                case A_KEEP_ESCAPE:
                        p.value[p.n_value++] = '\\';
                        p.value[p.n_value++] = c;
                        break;
                case A_PUSH:
                case A_PUSH_TRIM:
                        if ((r = push(&p, step.action == A_PUSH_TRIM, l, n, skipped, userdata, ret_line)) < 0)
                                return r;
                        break;
                }
                if (c == '\n')
                        p.line++;
                s = step.next;
        }

        /* The last line needs no newline. */
        if (s == PRE_VALUE || s == VALUE || s == VALUE_ESCAPE || s == SINGLE_QUOTED || s == DOUBLE_QUOTED ||
            s == DOUBLE_QUOTED_ESCAPE)
                return push(&p, s == VALUE, l, n, skipped, userdata, ret_line);
        return 0;
}

/* ---- reading the files ---------------------------------------------------- */

static void warn_skipped(const char *key, unsigned line, const char *why, void *userdata) {
        size_t k = utf8_trim_partial(key, printable_prefix(key, 64));
        log_warning("%s:%u: ignoring \"%.*s\": %s.", (const char *) userdata, line, (int) k, key, why);
}

/* The whole file, as a string, read to its end: a file in /proc says it
 * has size 0. */
static int read_file(const char *path, char **ret, size_t *ret_len) {
        /* O_NONBLOCK: opening a FIFO must not wait for its writer, nor a
         * read from a device for its data. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        /* A character device: /dev/null, which systemd takes as empty. */
        if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;
        size_t size = 0, len = 0;
        _cleanup_free_ char *buf = NULL;
        for (;;) {
                if (len == size) {
                        if (size > ENV_FILE_MAX_SIZE)
                                return -EFBIG;
                        size = size ? 2 * size : (size_t) st.st_size > 0 ? (size_t) st.st_size + 1 : 4096;
                        if (size > ENV_FILE_MAX_SIZE + 1)
                                size = ENV_FILE_MAX_SIZE + 1;
                        char *b = realloc(buf, size + 1);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                }
                ssize_t k = read(fd, buf + len, size - len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                len += (size_t) k;
        }
        if (len > ENV_FILE_MAX_SIZE)
                return -EFBIG;
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static int read_one(const char *path, char ***l, size_t *n, unsigned *ret_line) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_file(path, &text, &len);
        if (r < 0)
                return r;
        return env_file_parse(text, len, l, n, warn_skipped, (void *) path, ret_line);
}

/* Moves m's entries into *l, each in the place of one of the same name. */
static int merge(char ***l, size_t *n, char **m) {
        int r = 0;
        for (char **e = m; e && *e; e++)
                if (r == 0)
                        r = assign(l, n, *e);
                else
                        free(*e);
        free(m);
        return r;
}

/* An optional file that fails: a missing one is what "-" is for; one that
 * is there but cannot be read (a drop-in's User= may not read root's file)
 * means the server does not get its edits, which is worth a warning. */
static int skip(const char *path, int error) {
        if (error == -ENOENT)
                log_debug_errno(error, "Skipping environment file %s: %m", path);
        else
                log_warning_errno(error, "Skipping environment file %s: %m", path);
        return 0;
}

static int glob_errno(int g) {
        return g == GLOB_NOMATCH ? -ENOENT : g == GLOB_NOSPACE ? -ENOMEM : -EIO;
}

/* One spec's files into *l, as systemd reads EnvironmentFile=: a file that
 * fails adds nothing, and stops the start unless the spec is optional. */
static int read_spec(const char *spec, char ***l, size_t *n, char **ret_failed, unsigned *ret_line) {
        bool optional = spec[0] == '-';
        const char *pattern = spec + optional;
        /* A path without a wildcard is opened as it is: glob() would say
         * "no match" for one in a directory we may not search, where open()
         * says EACCES. */
        bool wildcard = strpbrk(pattern, "*?[");
        char *one[] = { (char *) pattern, NULL };
        glob_t g = { .gl_pathc = 1, .gl_pathv = one };
        int r = wildcard ? glob(pattern, 0, NULL, &g) : 0;
        if (r != 0) {
                globfree(&g);
                r = glob_errno(r);
                if (optional && r != -ENOMEM)
                        return skip(pattern, r);
                *ret_failed = strdup(pattern);
                return r;
        }
        for (size_t i = 0; i < g.gl_pathc; i++) {
                /* As systemd's safe_glob(): "/x/.*" does not mean . and .. */
                const char *base = strrchr(g.gl_pathv[i], '/');
                base = base ? base + 1 : g.gl_pathv[i];
                if (wildcard && (strcmp(base, ".") == 0 || strcmp(base, "..") == 0))
                        continue;
                char **m = NULL;
                size_t k = 0;
                unsigned line = 0;
                r = read_one(g.gl_pathv[i], &m, &k, &line);
                if (r == 0)
                        r = merge(l, n, m);
                else
                        strv_free(m);
                if (r == 0)
                        continue;
                if (optional && r != -ENOMEM) {
                        r = skip(g.gl_pathv[i], r);
                        continue;
                }
                *ret_line = line;
                *ret_failed = strdup(g.gl_pathv[i]);
                break;
        }
        if (wildcard)
                globfree(&g);
        return r;
}

int env_files_read(char *const *specs, char ***ret, char **ret_failed, unsigned *ret_line) {
        char **l = NULL;
        size_t n = 0;
        *ret_failed = NULL;
        *ret_line = 0;
        for (char *const *s = specs; s && *s; s++) {
                int r = read_spec(*s, &l, &n, ret_failed, ret_line);
                if (r < 0) {
                        strv_free(l);
                        return r;
                }
        }
        /* What handoff sets for each generation is not the files' to say. */
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                if (!env_is_scrubbed(l[i])) {
                        l[k++] = l[i];
                        continue;
                }
                log_warning("Ignoring %.*s= from the environment files: handoff sets it for each generation.",
                            (int) env_name_length(l[i]), l[i]);
                free(l[i]);
        }
        if (!l && !(l = calloc(1, sizeof(char *))))
                return -ENOMEM;
        l[k] = NULL;
        *ret = l;
        return 0;
}

/* ---- the names ------------------------------------------------------------ */

char *env_file_names(char *const *l) {
        size_t size = 1;
        for (char *const *e = l; e && *e; e++)
                size += 1 + env_name_length(*e);
        char *s = malloc(size), *w = s;
        if (!s)
                return NULL;
        for (char *const *e = l; e && *e; e++) {
                *w++ = ':';
                w = mempcpy(w, *e, env_name_length(*e));
        }
        *w = 0;
        return s;
}

bool env_file_names_valid(const char *s) {
        if (!*s)
                return true;
        if (*s != ':')
                return false;
        for (const char *p = s + 1;; p++) {
                size_t k = strcspn(p, ":");
                if (!name_is_valid_n(p, k))
                        return false;
                p += k;
                if (!*p)
                        return true;
        }
}
