/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "signal-util.h"

/* A decimal number, digits only (no sign, no blank), from 0 to max;
 * -EINVAL otherwise. */
static int parse_upto(const char *s, int max) {
        if (!*s || strspn(s, "0123456789") != strlen(s))
                return -EINVAL;
        errno = 0;
        unsigned long v = strtoul(s, NULL, 10);
        return errno || v > (unsigned long) max ? -EINVAL : (int) v;
}

/* "" (base itself) or sign followed by an offset from 0 to the number of
 * real-time signals less one, as base+N or base-N. */
static int rt_offset(const char *s, char sign, int base) {
        if (!*s)
                return base;
        if (*s != sign)
                return -EINVAL;
        int n = parse_upto(s + 1, SIGRTMAX - SIGRTMIN);
        if (n < 0)
                return n;
        return sign == '+' ? base + n : base - n;
}

int signal_from_string(const char *s) {
        if (!s || !*s)
                return -EINVAL;
        if (isdigit((unsigned char) s[0])) {
                int sig = parse_upto(s, _NSIG - 1);
                return sig > 0 ? sig : -EINVAL;
        }
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        if (strncasecmp(s, "RTMIN", 5) == 0)
                return rt_offset(s + 5, '+', SIGRTMIN);
        if (strncasecmp(s, "RTMAX", 5) == 0)
                return rt_offset(s + 5, '-', SIGRTMAX);
        /* systemd's name for it; glibc's is POLL. */
        if (strcasecmp(s, "IO") == 0)
                return SIGIO;
        for (int sig = 1; sig < _NSIG; sig++) {
                const char *name = sigabbrev_np(sig);
                if (name && strcasecmp(name, s) == 0)
                        return sig;
        }
        return -EINVAL;
}

const char *signal_to_string(int sig, char *buf) {
        const char *name = sigabbrev_np(sig);
        if (sig >= SIGRTMIN && sig <= SIGRTMAX)
                snprintf(buf, SIGNAL_NAME_MAX, "SIGRTMIN+%d", sig - SIGRTMIN);
        else if (name)
                snprintf(buf, SIGNAL_NAME_MAX, "SIG%s", name);
        else
                snprintf(buf, SIGNAL_NAME_MAX, "%d", sig);
        return buf;
}
