/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <string.h>

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
bool env_name_is_valid_n(const char *s, size_t n) {
        if (n == 0 || (*s >= '0' && *s <= '9'))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      s[i] == '_'))
                        return false;
        return true;
}

/* ---- the entries, with an index by name -------------------------------- */

/* Each lookup by name costs the name's length, not a scan of every entry:
 * with scans, 1,023 names of 500 bytes and then one name repeated to 1 MiB
 * took 4 s. A power of 2, at least twice ENV_FILE_MAX_ENTRIES: the table is
 * never full, and probes stay short. */
#define INDEX_SLOTS 2048

static uint32_t hash_name(const char *s, size_t k) {
        /* FNV-1a */
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < k; i++)
                h = (h ^ (unsigned char) s[i]) * 16777619u;
        return h;
}

/* The slot of the name of e (k bytes): the one holding it, or the empty
 * one where it goes. */
static uint16_t *slot_of(EnvList *x, const char *e, size_t k) {
        for (uint32_t h = hash_name(e, k) & (INDEX_SLOTS - 1);; h = (h + 1) & (INDEX_SLOTS - 1)) {
                uint16_t *slot = &x->index[h];
                if (*slot == 0)
                        return slot;
                const char *c = x->l[*slot - 1];
                if (strncmp(c, e, k) == 0 && c[k] == '=')
                        return slot;
        }
}

int env_list_init(EnvList *x) {
        *x = (EnvList) {};
        if (!(x->index = calloc(INDEX_SLOTS, sizeof *x->index)))
                return -ENOMEM;
        return 0;
}

void env_list_done(EnvList *x) {
        strv_free(x->l);
        free(x->index);
        *x = (EnvList) {};
}

char **env_list_steal(EnvList *x) {
        char **l = x->l ? x->l : calloc(1, sizeof(char *));
        x->l = NULL;
        env_list_done(x);
        return l;
}

/* Takes e ("NAME=VALUE"): in the place of the entry of the same name,
 * else at the end. Frees it when it cannot. */
static int assign(EnvList *x, char *e) {
        uint16_t *slot = slot_of(x, e, env_name_length(e));
        if (*slot) {
                free(x->l[*slot - 1]);
                x->l[*slot - 1] = e;
                return 0;
        }
        if (x->n >= ENV_FILE_MAX_ENTRIES) {
                free(e);
                return -E2BIG;
        }
        /* Doubling: one realloc() per entry was a copy of all of them. */
        if (x->n + 2 > x->allocated) {
                size_t a = x->allocated ? 2 * x->allocated : 16;
                char **m = realloc(x->l, a * sizeof(char *));
                if (!m) {
                        free(e);
                        return -ENOMEM;
                }
                x->l = m;
                x->allocated = a;
        }
        x->l[x->n++] = e;
        x->l[x->n] = NULL;
        *slot = (uint16_t) x->n;
        return 0;
}

int env_list_merge(EnvList *x, EnvList *m) {
        /* All or nothing: count the new names first. */
        size_t added = 0;
        for (size_t i = 0; i < m->n; i++)
                added += *slot_of(x, m->l[i], env_name_length(m->l[i])) == 0;
        int r = x->n + added > ENV_FILE_MAX_ENTRIES ? -E2BIG : 0;
        /* The entries move: assign() takes each, and frees it when it
         * cannot; after a failure the rest are freed. */
        for (size_t i = 0; i < m->n; i++) {
                char *e = TAKE_PTR(m->l[i]);
                if (r == 0)
                        r = assign(x, e);
                else
                        free(e);
        }
        env_list_done(m);
        return r;
}

static int put(EnvList *x, const char *key, const char *value) {
        size_t k = strlen(key), v = strlen(value);
        char *e = malloc(k + v + 2);
        if (!e)
                return -ENOMEM;
        memcpy(e, key, k);
        e[k] = '=';
        memcpy(e + k + 1, value, v + 1);
        return assign(x, e);
}

/* ---- parsing ------------------------------------------------------------- */

typedef struct Parser {
        char *key, *value;
        size_t n_key, n_value;
        size_t key_blank, value_blank; /* where trailing blanks begin; SIZE_MAX: none */
        unsigned line, key_line;
} Parser;

static int push(Parser *p, bool trim, EnvList *x, EnvFileSkipped skipped, void *userdata, unsigned *ret_line) {
        p->key[p->key_blank != SIZE_MAX ? p->key_blank : p->n_key] = 0;
        p->value[trim && p->value_blank != SIZE_MAX ? p->value_blank : p->n_value] = 0;
        p->n_key = p->n_value = 0;
        if (!utf8_is_valid(p->key) || !utf8_is_valid(p->value)) {
                *ret_line = p->key_line;
                return -EILSEQ;
        }
        if (!env_name_is_valid_n(p->key, strlen(p->key))) {
                if (skipped)
                        skipped(p->key, p->key_line, "not a valid variable name", userdata);
                return 0;
        }
        int r = put(x, p->key, p->value);
        if (r == -E2BIG)
                *ret_line = p->key_line;
        return r;
}

int env_file_parse(const char *text, size_t len, EnvList *x, EnvFileSkipped skipped, void *userdata,
                   unsigned *ret_line) {
        /* systemd reads the file with read_full_file() and no size to
         * return, which refuses a NUL in it: the text would end there. */
        const char *nul = memchr(text, 0, len);
        if (nul) {
                *ret_line = 1;
                for (const char *c = text; c < nul; c++)
                        *ret_line += *c == '\n';
                return -EBADMSG;
        }
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
                        if ((r = push(&p, step.action == A_PUSH_TRIM, x, skipped, userdata, ret_line)) < 0)
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
                return push(&p, s == VALUE, x, skipped, userdata, ret_line);
        return 0;
}

