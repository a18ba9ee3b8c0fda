/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t usec_t;

#define USEC_INFINITY ((usec_t) UINT64_MAX)
#define USEC_PER_MSEC ((usec_t) 1000ULL)
#define USEC_PER_SEC ((usec_t) 1000000ULL)

/* Parses a duration the way systemd.time(7) does: "90", "500ms", "2min 30s",
 * "1h", "infinity". A bare number is seconds. Returns 0 or -EINVAL/-ERANGE. */
int parse_duration(const char *s, usec_t *ret);

/* Formats a duration as systemd does with millisecond accuracy ("350ms",
 * "1.200s", "1min 30.500s", "1h 5min", "infinity"). */
const char *format_duration(char *buf, size_t len, usec_t u);

usec_t now_monotonic(void);
/* Whether t is a time, neither 0 nor infinity (systemd's timestamp_is_set()). */
static inline bool timestamp_is_set(usec_t t) {
        return t > 0 && t != USEC_INFINITY;
}
/* a + b, or USEC_INFINITY where that would overflow (as systemd's usec_add()). */
usec_t usec_add(usec_t a, usec_t b);
usec_t now_realtime(void);
