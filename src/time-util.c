/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "time-util.h"

static const struct {
        const char *suffix;
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
};

static const char *skip_space(const char *p) {
        while (*p && isspace((unsigned char) *p))
                p++;
        return p;
}

/* Reads one "<number>[.<fraction>][unit]" term at *p and adds it to *sum. */
static int parse_term(const char **p, usec_t *sum) {
        const char *s = *p;
        if (!isdigit((unsigned char) *s))
                return -EINVAL;

        unsigned long long whole = 0;
        while (isdigit((unsigned char) *s)) {
                if (whole > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                whole = whole * 10 + (unsigned) (*s++ - '0');
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
        if (!matched && isalpha((unsigned char) *s))
                return -EINVAL;

        if (whole > UINT64_MAX / mult)
                return -ERANGE;
        /* 128 bits: nine fractional digits of a day overflow 64. */
        usec_t v = whole * mult + (usec_t) ((unsigned __int128) frac * mult / frac_div);
        if (v > UINT64_MAX - 1 - *sum)
                return -ERANGE;
        *sum += v;
        *p = s;
        return 0;
}

int parse_duration(const char *s, usec_t *ret) {
        if (!s)
                return -EINVAL;
        s = skip_space(s);
        if (strcmp(s, "infinity") == 0) {
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

const char *format_duration(char *buf, size_t len, usec_t u) {
        if (u == USEC_INFINITY)
                snprintf(buf, len, "infinity");
        else if (u < USEC_PER_MSEC)
                snprintf(buf, len, "%lluus", (unsigned long long) u);
        else if (u < USEC_PER_SEC)
                snprintf(buf, len, "%llums", (unsigned long long) (u / USEC_PER_MSEC));
        else if (u < 60 * USEC_PER_SEC) {
                unsigned long long ms = u / USEC_PER_MSEC;
                if (ms % 1000 == 0)
                        snprintf(buf, len, "%llus", ms / 1000);
                else
                        snprintf(buf, len, "%llu.%03llus", ms / 1000, ms % 1000);
        } else {
                unsigned long long sec = u / USEC_PER_SEC;
                if (sec % 60 == 0)
                        snprintf(buf, len, "%llumin", sec / 60);
                else
                        snprintf(buf, len, "%llumin %llus", sec / 60, sec % 60);
        }
        return buf;
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
