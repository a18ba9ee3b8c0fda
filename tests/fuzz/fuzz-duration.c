/* SPDX-License-Identifier: MIT */
/* parse_duration() and format_duration(): --start-timeout, --drain-timeout,
 * --ready=delay:DUR, and every duration handoff logs or puts in STATUS=.
 *
 * Properties:
 *  - parse_duration() returns 0, -EINVAL or -ERANGE and writes the result
 *    only on success; a success is never USEC_INFINITY unless the text says
 *    "infinity" (a finite sum saturating into "infinity" would turn a
 *    timeout into none);
 *  - round trip: format(x) parses back to x truncated to the precision
 *    format_duration() prints (exact below 1ms; whole milliseconds above),
 *    and formatting that gives the same text;
 *    this is checked for the parsed value and for 8 raw input bytes taken
 *    as a usec_t, the latter also into buffers too small for the text
 *    (truncated, NUL-terminated, nothing written past the end);
 *  - additivity: when the input holds a '|', "A|B" with both halves valid
 *    and finite gives parse("A B") == parse(A) + parse(B), or -ERANGE when
 *    that sum does not fit. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

#include "fuzz.h"
#include "time-util.h"

static usec_t expected_precision(usec_t x) {
        if (x == USEC_INFINITY || x < USEC_PER_MSEC)
                return x;
        return x - x % USEC_PER_MSEC;
}

static void check_round_trip(usec_t x) {
        char buf[64], buf2[64];
        format_duration(buf, sizeof buf, x);
        FUZZ_ASSERT(strlen(buf) > 0 && strlen(buf) < sizeof buf - 1, "format_duration(%llu) = \"%s\"",
                    (unsigned long long) x, buf);
        usec_t y = 0;
        int r = parse_duration(buf, &y);
        FUZZ_ASSERT(r == 0, "format_duration(%llu) = \"%s\" does not parse (%d)", (unsigned long long) x, buf, r);
        FUZZ_ASSERT(y == expected_precision(x), "parse(format(%llu)) = parse(\"%s\") = %llu, expected %llu",
                    (unsigned long long) x, buf, (unsigned long long) y, (unsigned long long) expected_precision(x));
        format_duration(buf2, sizeof buf2, y);
        FUZZ_ASSERT(strcmp(buf, buf2) == 0, "format(parse(\"%s\")) = \"%s\"", buf, buf2);

        /* Any smaller buffer: a truncated prefix, always terminated. */
        size_t full = strlen(buf);
        for (size_t size = 1; size <= full; size += 1 + size / 3) {
                char *small = malloc(size);
                if (!small)
                        abort();
                const char *ret = format_duration(small, size, x);
                FUZZ_ASSERT(ret == small, "format_duration() returned another buffer");
                FUZZ_ASSERT(strlen(small) == size - 1 && strncmp(small, buf, size - 1) == 0,
                            "format_duration(%llu) into %zu bytes gave \"%s\"", (unsigned long long) x, size, small);
                free(small);
        }
}

static int parse_checked(const char *s, usec_t *ret) {
        char repr[1024];
        usec_t u = 424242;
        int r = parse_duration(s, &u);
        FUZZ_ASSERT(r == 0 || r == -EINVAL || r == -ERANGE, "parse_duration(\"%s\") = %d",
                    fuzz_repr(s, repr, sizeof repr), r);
        if (r < 0) {
                FUZZ_ASSERT(u == 424242, "parse_duration(\"%s\") wrote its result despite failing",
                            fuzz_repr(s, repr, sizeof repr));
                return r;
        }
        if (u == USEC_INFINITY) {
                /* "infinity", blanks around it allowed (as systemd's
                 * parse_time()), and nothing else. */
                const char *ws = " \t\n\v\f\r", *p = s + strspn(s, ws);
                FUZZ_ASSERT(strncmp(p, "infinity", 8) == 0 && p[8 + strspn(p + 8, ws)] == '\0',
                            "parse_duration(\"%s\") = infinity from a finite sum", fuzz_repr(s, repr, sizeof repr));
        }
        *ret = u;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char repr[1024];
        if (size > 4096)
                return 0; /* an argument, not a file */

        if (size >= sizeof(usec_t)) {
                usec_t raw;
                memcpy(&raw, data, sizeof raw);
                check_round_trip(raw);
        }

        char *s = fuzz_strndup(data, size);
        usec_t x;
        if (parse_checked(s, &x) == 0)
                check_round_trip(x);

        char *bar = strchr(s, '|');
        if (bar) {
                *bar = '\0';
                const char *a = s, *b = bar + 1;
                usec_t ua, ub;
                if (parse_checked(a, &ua) == 0 && parse_checked(b, &ub) == 0 && ua != USEC_INFINITY &&
                    ub != USEC_INFINITY) {
                        *bar = ' ';
                        usec_t sum = 0;
                        int r = parse_checked(s, &sum);
                        if (ua <= USEC_INFINITY - 1 - ub)
                                FUZZ_ASSERT(r == 0 && sum == ua + ub, "parse(\"%s\") = %d/%llu, expected %llu",
                                            fuzz_repr(s, repr, sizeof repr), r, (unsigned long long) sum,
                                            (unsigned long long) (ua + ub));
                        else
                                FUZZ_ASSERT(r == -ERANGE, "parse(\"%s\") = %d, expected -ERANGE (sum overflows)",
                                            fuzz_repr(s, repr, sizeof repr), r);
                }
        }
        free(s);
        return 0;
}
