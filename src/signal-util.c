/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "signal-util.h"

/* A number as systemd's safe_atoi() reads one, all of s: after blanks,
 * "0b" or "0o" and what strtol() reads in base 2 or 8; else what it reads
 * in base 0: a sign, then C's "0x" hexadecimal, "0" octal ("010" is 8) or
 * decimal. -EINVAL otherwise. */
static int parse_number(const char *s, long *ret) {
        int base = 0;
        s += strspn(s, " \t\n\r");
        if (strncasecmp(s, "0b", 2) == 0)
                base = 2, s += 2;
        else if (strncasecmp(s, "0o", 2) == 0)
                base = 8, s += 2;
        char *end;
        errno = 0;
        long v = strtol(s, &end, base);
        if (errno || end == s || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* "" (base itself), or sign and a number (as systemd reads it, sign
 * included: "+010" is 8) that keeps base+N or base-N within the real-time
 * signals. */
static int rt_offset(const char *s, char sign, int base) {
        long n;
        if (!*s)
                return base;
        if (*s != sign || parse_number(s, &n) < 0)
                return -EINVAL;
        long lo = sign == '+' ? 0 : SIGRTMIN - SIGRTMAX, hi = sign == '+' ? SIGRTMAX - SIGRTMIN : 0;
        return n >= lo && n <= hi ? base + (int) n : -EINVAL;
}

/* glibc's abbreviation of sig, but systemd's IO for SIGIO (glibc's POLL). */
static const char *signal_name(int sig) {
        return sig == SIGIO ? "IO" : sigabbrev_np(sig);
}

int signal_from_string(const char *s) {
        long n;
        if (!s)
                return -EINVAL;
        if (parse_number(s, &n) >= 0)
                return n > 0 && n < _NSIG ? (int) n : -EINVAL;
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        for (int sig = 1; sig < _NSIG; sig++) {
                const char *name = signal_name(sig);
                if (name && strcasecmp(name, s) == 0)
                        return sig;
        }
        /* glibc's name for SIGIO: systemd refuses it, but it means no other. */
        if (strcasecmp(s, "POLL") == 0)
                return SIGIO;
        if (strncasecmp(s, "RTMIN", 5) == 0)
                return rt_offset(s + 5, '+', SIGRTMIN);
        if (strncasecmp(s, "RTMAX", 5) == 0)
                return rt_offset(s + 5, '-', SIGRTMAX);
        return -EINVAL;
}

const char *signal_to_string(int sig, char *buf) {
        const char *name = signal_name(sig);
        if (sig >= SIGRTMIN && sig <= SIGRTMAX)
                snprintf(buf, SIGNAL_NAME_MAX, "SIGRTMIN+%d", sig - SIGRTMIN);
        else if (name)
                snprintf(buf, SIGNAL_NAME_MAX, "SIG%s", name);
        else
                snprintf(buf, SIGNAL_NAME_MAX, "%d", sig);
        return buf;
}
