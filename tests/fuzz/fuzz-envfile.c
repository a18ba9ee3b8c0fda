/* SPDX-License-Identifier: MIT */
/* Environment files (--environment-file): env_file_parse() and the names
 * handoff keeps of them.
 *
 * Properties:
 *  - env_file_parse(), handoff's parser as a table, gives exactly what a
 *    reference gives: systemd 252's parse_env_file_internal() as written
 *    there (a switch per state) after read_full_file()'s refusal of a text
 *    with a NUL in it (-EBADMSG), with load_env_file()'s push (an entry of
 *    the same name replaced in its place, -EILSEQ for a key or value that
 *    is not UTF-8; handoff's -E2BIG beyond ENV_FILE_MAX_ENTRIES) and
 *    strv_env_clean()'s skip of invalid names; the same entries, the same
 *    skipped names, the same error and line;
 *  - every entry is NAME=VALUE with a valid name, no two of one name, and
 *    valid UTF-8;
 *  - env_file_names() of them is valid (env_file_names_valid()), and names
 *    exactly them (env_names_contain()). */
#include <stdbool.h>

#include "env-file.h"
#include "env-files.h"
#include "env.h"
#include "fuzz.h"
#include "util.h"

/* ---- the reference ---- */

/* Not instrumented for coverage: libFuzzer's feedback should come from
 * handoff's parser, and the reference's linear search by name, traced, made
 * a long input cost milliseconds. */
#define REFERENCE __attribute__((no_sanitize("coverage")))

typedef struct Ref {
        char **l;
        size_t n;
        size_t klen[ENV_FILE_MAX_ENTRIES]; /* each entry's name length: most compares end there */
        size_t skipped;
        unsigned bad_line;
} Ref;

REFERENCE static bool ref_name_valid(const char *s) {
        if (!*s || (*s >= '0' && *s <= '9'))
                return false;
        for (; *s; s++)
                if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_", *s))
                        return false;
        return true;
}

REFERENCE static int ref_push(Ref *r, const char *key, const char *value, unsigned line) {
        if (!utf8_is_valid(key) || !utf8_is_valid(value)) {
                r->bad_line = line;
                return -EILSEQ;
        }
        if (!ref_name_valid(key)) {
                r->skipped++;
                return 0;
        }
        size_t k = strlen(key);
        char *e;
        if (asprintf(&e, "%s=%s", key, value) < 0)
                abort();
        for (size_t i = 0; i < r->n; i++)
                if (r->klen[i] == k && r->l[i][0] == key[0] && memcmp(r->l[i], key, k) == 0) {
                        free(r->l[i]);
                        r->l[i] = e;
                        return 0;
                }
        /* handoff's own limit, which systemd does not have. */
        if (r->n >= ENV_FILE_MAX_ENTRIES) {
                free(e);
                r->bad_line = line;
                return -E2BIG;
        }
        if (!r->l && !(r->l = calloc(ENV_FILE_MAX_ENTRIES + 1, sizeof(char *))))
                abort();
        r->klen[r->n] = k;
        r->l[r->n++] = e;
        return 0;
}

#define WHITESPACE " \t\n\r"
#define NEWLINE "\n\r"
#define COMMENTS "#;"
#define SHELL_NEED_ESCAPE "\"\\`$"

/* systemd's loop, with its buffers preallocated; its line counter is
 * replaced by the line the key started on, which is what handoff reports. */
REFERENCE static int ref_parse(const char *text, Ref *r) {
        size_t len = strlen(text);
        char *key = malloc(len + 1), *value = malloc(2 * len + 2);
        size_t n_key = 0, n_value = 0, last_value_whitespace = SIZE_MAX, last_key_whitespace = SIZE_MAX;
        unsigned line = 1, key_line = 0;
        int ret = 0;
        enum { PRE_KEY, KEY, PRE_VALUE, VALUE, VALUE_ESCAPE, SINGLE_QUOTE_VALUE, DOUBLE_QUOTE_VALUE,
               DOUBLE_QUOTE_VALUE_ESCAPE, COMMENT, COMMENT_ESCAPE } state = PRE_KEY;
        if (!key || !value)
                abort();

        for (const char *p = text; *p; p++) {
                char c = *p;
                switch (state) {
                case PRE_KEY:
                        if (strchr(COMMENTS, c))
                                state = COMMENT;
                        else if (!strchr(WHITESPACE, c)) {
                                state = KEY;
                                last_key_whitespace = SIZE_MAX;
                                key_line = line;
                                key[n_key++] = c;
                        }
                        break;
                case KEY:
                        if (strchr(NEWLINE, c)) {
                                state = PRE_KEY;
                                n_key = 0;
                        } else if (c == '=') {
                                state = PRE_VALUE;
                                last_value_whitespace = SIZE_MAX;
                        } else {
                                if (!strchr(WHITESPACE, c))
                                        last_key_whitespace = SIZE_MAX;
                                else if (last_key_whitespace == SIZE_MAX)
                                        last_key_whitespace = n_key;
                                key[n_key++] = c;
                        }
                        break;
                case PRE_VALUE:
                        if (strchr(NEWLINE, c)) {
                                state = PRE_KEY;
                                key[n_key] = 0;
                                value[n_value] = 0;
                                if (last_key_whitespace != SIZE_MAX)
                                        key[last_key_whitespace] = 0;
                                if ((ret = ref_push(r, key, value, key_line)) < 0)
                                        goto done;
                                n_key = 0;
                                n_value = 0;
                        } else if (c == '\'')
                                state = SINGLE_QUOTE_VALUE;
                        else if (c == '"')
                                state = DOUBLE_QUOTE_VALUE;
                        else if (c == '\\')
                                state = VALUE_ESCAPE;
                        else if (!strchr(WHITESPACE, c)) {
                                state = VALUE;
                                value[n_value++] = c;
                        }
                        break;
                case VALUE:
                        if (strchr(NEWLINE, c)) {
                                state = PRE_KEY;
                                key[n_key] = 0;
                                value[n_value] = 0;
                                if (last_value_whitespace != SIZE_MAX)
                                        value[last_value_whitespace] = 0;
                                if (last_key_whitespace != SIZE_MAX)
                                        key[last_key_whitespace] = 0;
                                if ((ret = ref_push(r, key, value, key_line)) < 0)
                                        goto done;
                                n_key = 0;
                                n_value = 0;
                        } else if (c == '\\') {
                                state = VALUE_ESCAPE;
                                last_value_whitespace = SIZE_MAX;
                        } else {
                                if (!strchr(WHITESPACE, c))
                                        last_value_whitespace = SIZE_MAX;
                                else if (last_value_whitespace == SIZE_MAX)
                                        last_value_whitespace = n_value;
                                value[n_value++] = c;
                        }
                        break;
                case VALUE_ESCAPE:
                        state = VALUE;
                        if (!strchr(NEWLINE, c))
                                value[n_value++] = c;
                        break;
                case SINGLE_QUOTE_VALUE:
                        if (c == '\'')
                                state = PRE_VALUE;
                        else
                                value[n_value++] = c;
                        break;
                case DOUBLE_QUOTE_VALUE:
                        if (c == '"')
                                state = PRE_VALUE;
                        else if (c == '\\')
                                state = DOUBLE_QUOTE_VALUE_ESCAPE;
                        else
                                value[n_value++] = c;
                        break;
                case DOUBLE_QUOTE_VALUE_ESCAPE:
                        state = DOUBLE_QUOTE_VALUE;
                        if (strchr(SHELL_NEED_ESCAPE, c))
                                value[n_value++] = c;
                        else if (c != '\n') {
                                value[n_value++] = '\\';
                                value[n_value++] = c;
                        }
                        break;
                case COMMENT:
                        if (c == '\\')
                                state = COMMENT_ESCAPE;
                        else if (strchr(NEWLINE, c))
                                state = PRE_KEY;
                        break;
                case COMMENT_ESCAPE:
                        state = COMMENT;
                        break;
                }
                if (c == '\n')
                        line++;
        }

        if (state == PRE_VALUE || state == VALUE || state == VALUE_ESCAPE || state == SINGLE_QUOTE_VALUE ||
            state == DOUBLE_QUOTE_VALUE || state == DOUBLE_QUOTE_VALUE_ESCAPE) {
                key[n_key] = 0;
                value[n_value] = 0;
                if (state == VALUE && last_value_whitespace != SIZE_MAX)
                        value[last_value_whitespace] = 0;
                if (last_key_whitespace != SIZE_MAX)
                        key[last_key_whitespace] = 0;
                ret = ref_push(r, key, value, key_line);
        }
done:
        free(key);
        free(value);
        return ret;
}

/* read_full_file() without a size to return refuses a text with a NUL
 * (then s, the data up to its first NUL, has the line of that NUL). */
REFERENCE static int ref_load(const uint8_t *data, size_t size, const char *s, Ref *r) {
        if (!memchr(data, 0, size))
                return ref_parse(s, r);
        r->bad_line = 1;
        for (; *s; s++)
                r->bad_line += *s == '\n';
        return -EBADMSG;
}

/* ---- the target ---- */

static void count_skipped(const char *key, unsigned line, const char *why, void *userdata) {
        (*(size_t *) userdata)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char repr[1024];
        char *s = fuzz_strndup(data, size);

        static Ref ref;
        ref = (Ref) {};
        int want = ref_load(data, size, s, &ref);

        /* The whole input, NUL and what follows included. */
        EnvList x;
        if (env_list_init(&x) < 0)
                abort();
        size_t skipped = 0;
        unsigned line = 0;
        int r = env_file_parse((const char *) data, size, &x, count_skipped, &skipped, &line);
        char **l = x.l;
        size_t n = x.n;
        FUZZ_ASSERT(r == want, "env_file_parse(\"%s\") = %d, the reference %d", fuzz_repr(s, repr, sizeof repr), r,
                    want);
        if (r == -EILSEQ || r == -E2BIG || r == -EBADMSG)
                FUZZ_ASSERT(line == ref.bad_line, "bad line %u, the reference %u", line, ref.bad_line);
        FUZZ_ASSERT(skipped == ref.skipped, "%zu skipped, the reference %zu", skipped, ref.skipped);
        FUZZ_ASSERT(n == ref.n, "%zu entries, the reference %zu (\"%s\")", n, ref.n, fuzz_repr(s, repr, sizeof repr));
        FUZZ_ASSERT(n == strv_length(l), "n %zu, but %zu entries", n, strv_length(l));
        for (size_t i = 0; i < n; i++)
                FUZZ_ASSERT(strcmp(l[i], ref.l[i]) == 0, "entry %zu \"%s\", the reference's \"%s\"", i,
                            fuzz_repr(l[i], repr, sizeof repr), ref.l[i]);

        if (r == 0) {
                /* The pairwise checks on the first entries only: on all of
                 * them a long input (up to 1,024 entries) took milliseconds,
                 * and libFuzzer ran a few hundred inputs a second. (The
                 * reference's entries, compared above, are unique too.) */
                size_t checked = n < 64 ? n : 64;
                for (size_t i = 0; i < n; i++) {
                        const char *eq = strchr(l[i], '=');
                        FUZZ_ASSERT(eq, "entry without '='");
                        char *name = strndup(l[i], (size_t) (eq - l[i]));
                        FUZZ_ASSERT(name && ref_name_valid(name), "invalid name in \"%s\"",
                                    fuzz_repr(l[i], repr, sizeof repr));
                        FUZZ_ASSERT(utf8_is_valid(eq + 1), "value not UTF-8");
                        for (size_t j = 0; i < checked && j < i; j++)
                                FUZZ_ASSERT(!(strncmp(l[j], l[i], (size_t) (eq - l[i]) + 1) == 0),
                                            "name %s twice", name);
                        free(name);
                }
                char *names = env_file_names(l);
                FUZZ_ASSERT(names, "env_file_names() failed");
                FUZZ_ASSERT(env_file_names_valid(names), "env_file_names() gave \"%s\", not valid",
                            fuzz_repr(names, repr, sizeof repr));
                for (size_t i = 0; i < checked; i++)
                        FUZZ_ASSERT(env_names_contain(names, l[i]), "\"%s\" not in its names", l[i]);
                /* A name that is not there: each one with a letter added. */
                for (size_t i = 0; i < checked; i++) {
                        char *longer;
                        if (asprintf(&longer, "%.*sQ=", (int) strcspn(l[i], "="), l[i]) < 0)
                                abort();
                        bool there = false;
                        for (size_t j = 0; j < n; j++)
                                there = there || strncmp(l[j], longer, strlen(longer)) == 0;
                        FUZZ_ASSERT(env_names_contain(names, longer) == there, "\"%s\" wrongly in \"%s\"", longer,
                                    names);
                        free(longer);
                }
                free(names);
        }
        /* The input as names. */
        (void) env_file_names_valid(s);

        env_list_done(&x);
        strv_free(ref.l);
        free(s);
        return 0;
}
