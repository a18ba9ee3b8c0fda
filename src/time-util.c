/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "time-util.h"

/* The suffix an array, not a pointer: the table needs no relocation
 * then and is read-only from the start. As pointers it was 480 of the
 * 4,304 bytes of handoff's RELRO, which its relocations write at every
 * start: two pages of private dirty memory, where 4,096 bytes are one. */
static const struct {
        char suffix[8];
        usec_t usec;
} units[] = {
        /* Longer suffixes first where one is a prefix of another ("ms" vs "m"). */
        { "usec", 1ULL },
        { "us", 1ULL },
        { "µs", 1ULL },
        { "msec", USEC_PER_MSEC },
        { "ms", USEC_PER_MSEC },
        { "seconds", USEC_PER_SEC },
        { "second", USEC_PER_SEC },
        { "sec", USEC_PER_SEC },
        { "s", USEC_PER_SEC },
        { "minutes", 60 * USEC_PER_SEC },
        { "minute", 60 * USEC_PER_SEC },
        { "min", 60 * USEC_PER_SEC },
        { "m", 60 * USEC_PER_SEC },
        { "hours", 3600 * USEC_PER_SEC },
        { "hour", 3600 * USEC_PER_SEC },
        { "hr", 3600 * USEC_PER_SEC },
        { "h", 3600 * USEC_PER_SEC },
        { "days", 86400 * USEC_PER_SEC },
        { "day", 86400 * USEC_PER_SEC },
        { "d", 86400 * USEC_PER_SEC },
        /* What systemd's format_timespan() writes too ("1w 2d",
         * "1month"), with its lengths of a month and a year. */
        { "weeks", 7 * 86400 * USEC_PER_SEC },
        { "week", 7 * 86400 * USEC_PER_SEC },
        { "w", 7 * 86400 * USEC_PER_SEC },
        { "months", 2629800 * USEC_PER_SEC },
        { "month", 2629800 * USEC_PER_SEC },
        { "M", 2629800 * USEC_PER_SEC },
        { "years", 31557600 * USEC_PER_SEC },
        { "year", 31557600 * USEC_PER_SEC },
        { "y", 31557600 * USEC_PER_SEC },
        { "\xce\xbcs", 1ULL }, /* U+03BC GREEK SMALL LETTER MU, beside U+00B5 MICRO SIGN above */
};

static const char *skip_space(const char *p) {
        while (*p && isspace((unsigned char) *p))
                p++;
        return p;
}

/* Reads one "<number>[.<fraction>][unit]" term at *p and adds it to *sum. */
static int parse_term(const char **p, usec_t *sum) {
        const char *s = *p;
        /* As systemd's parse_time(): the whole number may be left out
         * before a fraction (".5s"). */
        if (!isdigit((unsigned char) *s) && !(*s == '.' && isdigit((unsigned char) s[1])))
                return -EINVAL;

        unsigned long long whole = 0;
        while (isdigit((unsigned char) *s)) {
                unsigned digit = (unsigned) (*s++ - '0');
                if (whole > (UINT64_MAX - digit) / 10)
                        return -ERANGE;
                whole = whole * 10 + digit;
        }

        /* Up to 9 fractional digits, kept as nanos-of-one-unit. */
        unsigned long long frac = 0, frac_div = 1;
        if (*s == '.') {
                s++;
                if (!isdigit((unsigned char) *s))
                        return -EINVAL;
                while (isdigit((unsigned char) *s)) {
                        if (frac_div < 1000000000ULL) {
                                frac = frac * 10 + (unsigned) (*s - '0');
                                frac_div *= 10;
                        }
                        s++;
                }
        }

        const char *number_end = s;
        s = skip_space(s);
        usec_t mult = USEC_PER_SEC;
        bool matched = false;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
                size_t l = strlen(units[i].suffix);
                if (strncmp(s, units[i].suffix, l) == 0 && !isalpha((unsigned char) s[l])) {
                        mult = units[i].usec;
                        s += l;
                        matched = true;
                        break;
                }
        }
        /* Without a unit, a blank or the end follows the number (as in
         * systemd's parse_time(): "12.34.56" is not "12.34 .56"). */
        if (!matched && (isalpha((unsigned char) *s) || (s == number_end && *s)))
                return -EINVAL;

        if (whole > UINT64_MAX / mult)
                return -ERANGE;
        /* 128 bits: nine fractional digits of a day overflow 64, and so
         * may the whole number's part plus the fraction's. */
        unsigned __int128 v = (unsigned __int128) whole * mult + (unsigned __int128) frac * mult / frac_div;
        if (v > UINT64_MAX - 1 - *sum)
                return -ERANGE;
        *sum += (usec_t) v;
        *p = s;
        return 0;
}

int parse_duration(const char *s, usec_t *ret) {
        if (!s)
                return -EINVAL;
        s = skip_space(s);
        if (strncmp(s, "infinity", 8) == 0 && *skip_space(s + 8) == '\0') {
                *ret = USEC_INFINITY;
                return 0;
        }
        if (*s == '\0')
                return -EINVAL;

        usec_t sum = 0;
        while (*s) {
                int r = parse_term(&s, &sum);
                if (r < 0)
                        return r;
                s = skip_space(s);
        }
        *ret = sum;
        return 0;
}

/* As systemd's format_timespan() with an accuracy of 1ms: the largest units
 * first ("1h 2min 5s"), seconds below a minute with their milliseconds
 * ("5.500s", "1min 30.250s"), below a second whole milliseconds ("350ms"),
 * below a millisecond microseconds ("999us"), and "0". No weeks, months or
 * years: days are exact, and a month (30.44 days) is not a whole number of
 * them. */
const char *format_duration(char *buf, size_t len, usec_t u) {
        static const struct {
                const char *suffix;
                usec_t usec;
        } table[] = {
                { "d", 86400 * USEC_PER_SEC },
                { "h", 3600 * USEC_PER_SEC },
                { "min", 60 * USEC_PER_SEC },
                { "s", USEC_PER_SEC },
                { "ms", USEC_PER_MSEC },
        };
        char out[96];
        size_t n = 0;

        if (u == USEC_INFINITY)
                snprintf(out, sizeof out, "infinity");
        else if (u == 0)
                snprintf(out, sizeof out, "0");
        else if (u < USEC_PER_MSEC)
                snprintf(out, sizeof out, "%lluus", (unsigned long long) u);
        else {
                u -= u % USEC_PER_MSEC;
                out[0] = '\0';
                for (size_t i = 0; i < sizeof table / sizeof table[0] && u > 0; i++) {
                        if (u < table[i].usec)
                                continue;
                        unsigned long long a = u / table[i].usec, b = u % table[i].usec;
                        const char *sep = n > 0 ? " " : "";
                        if (table[i].usec == USEC_PER_SEC && b > 0) {
                                /* Below a minute (larger units took the rest). */
                                n += (size_t) snprintf(out + n, sizeof out - n, "%s%llu.%03llus", sep, a,
                                                       b / USEC_PER_MSEC);
                                break;
                        }
                        n += (size_t) snprintf(out + n, sizeof out - n, "%s%llu%s", sep, a, table[i].suffix);
                        u = b;
                }
        }
        snprintf(buf, len, "%s", out);
        return buf;
}

usec_t usec_add(usec_t a, usec_t b) {
        return a > USEC_INFINITY - b ? USEC_INFINITY : a + b;
}

usec_t now_monotonic(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
}

usec_t now_realtime(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
}
