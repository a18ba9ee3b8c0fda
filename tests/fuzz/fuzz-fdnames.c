/* SPDX-License-Identifier: MIT */
/* LISTEN_FDNAMES-style names: fdname_is_valid() and fdnames_join().
 *
 * Properties:
 *  - fdname_is_valid() is exactly "0..255 bytes, each printable ASCII
 *    (0x20..0x7e), none of them ':' or '\\'" (what systemd accepts as a
 *    name, the empty one included, but the backslash, which readers of
 *    LISTEN_FDNAMES unescape);
 *  - the input split at newlines is a list of names: when every one is
 *    valid, joining them and splitting the result at ':' the way
 *    sd_listen_fds_with_names() does (no coalescing) gives back exactly
 *    the same names, and the joined string is itself a valid
 *    LISTEN_FDNAMES value (only valid names and n-1 colons);
 *  - the input as one LISTEN_FDNAMES value: when every ':'-separated name
 *    is valid, splitting and joining again gives the input byte for byte. */
#include <stdbool.h>

#include "address.h"
#include "fuzz.h"
#include "listeners.h"

static bool reference_valid(const char *s, size_t n) {
        if (n > 255)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c < 0x20 || c > 0x7e || c == ':' || c == '\\')
                        return false;
        }
        return true;
}

/* Splits s at sep without coalescing, as sd_listen_fds_with_names() does
 * (strv_split_full() with EXTRACT_DONT_COALESCE_SEPARATORS): "a::b" is "a",
 * "", "b", and "" is one empty name. */
static char **split(const char *s, char sep, size_t *ret_n) {
        size_t n = 0, cap = 1;
        for (const char *p = s; *p; p++)
                if (*p == sep)
                        cap++;
        char **v = calloc(cap + 1, sizeof(char *));
        if (!v)
                abort();
        for (const char *p = s;; p++) {
                const char *e = strchr(p, sep);
                size_t l = e ? (size_t) (e - p) : strlen(p);
                v[n] = strndup(p, l);
                if (!v[n++])
                        abort();
                if (!e)
                        break;
                p = e;
        }
        *ret_n = n;
        return v;
}

static void free_names(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char repr[1024];
        char *s = fuzz_strndup(data, size);

        /* The whole input as one name. */
        bool v = fdname_is_valid(s);
        FUZZ_ASSERT(v == reference_valid(s, strlen(s)), "fdname_is_valid(\"%s\") = %d", fuzz_repr(s, repr, sizeof repr), v);

        /* Newline-separated names, joined. */
        size_t n;
        char **names = split(s, '\n', &n);
        bool all_valid = true;
        for (size_t i = 0; i < n; i++) {
                bool vi = fdname_is_valid(names[i]);
                FUZZ_ASSERT(vi == reference_valid(names[i], strlen(names[i])), "fdname_is_valid(\"%s\") = %d",
                            fuzz_repr(names[i], repr, sizeof repr), vi);
                all_valid = all_valid && vi;
        }
        char *joined = fdnames_join(names, n);
        FUZZ_ASSERT(joined, "fdnames_join() failed");
        size_t colons = 0;
        for (const char *p = joined; *p; p++)
                colons += *p == ':';
        if (all_valid) {
                FUZZ_ASSERT(n == 0 ? colons == 0 : colons == n - 1, "%zu names joined with %zu colons", n, colons);
                size_t m;
                char **back = split(joined, ':', &m);
                FUZZ_ASSERT(m == n, "%zu names joined into \"%s\", which splits into %zu", n,
                            fuzz_repr(joined, repr, sizeof repr), m);
                for (size_t i = 0; i < n; i++)
                        FUZZ_ASSERT(strcmp(back[i], names[i]) == 0, "name %zu changed through join and split", i);
                free_names(back, m);
        }
        /* Joining never loses or adds a byte: the names and n-1 separators. */
        size_t total = n > 0 ? n - 1 : 0;
        for (size_t i = 0; i < n; i++)
                total += strlen(names[i]);
        FUZZ_ASSERT(strlen(joined) == total, "joined length %zu, expected %zu", strlen(joined), total);
        free(joined);
        free_names(names, n);

        /* The input as a LISTEN_FDNAMES value: split, validate, join back. */
        names = split(s, ':', &n);
        all_valid = n > 0;
        for (size_t i = 0; i < n; i++)
                all_valid = all_valid && fdname_is_valid(names[i]);
        if (all_valid) {
                joined = fdnames_join(names, n);
                FUZZ_ASSERT(joined && strcmp(joined, s) == 0, "split and join of \"%s\" gave \"%s\"",
                            fuzz_repr(s, repr, sizeof repr), joined ? joined : "(null)");
                free(joined);
        }
        free_names(names, n);
        free(s);
        return 0;
}
