/* SPDX-License-Identifier: MIT */
/* signal_from_string(): --stop-signal=SIG.
 *
 * Properties:
 *  - the result is -EINVAL or a signal number in 1.._NSIG-1;
 *  - a decimal input is accepted exactly when it is all digits and names a
 *    signal in that range, and gives that number;
 *  - otherwise, without an optional case-insensitive "SIG" prefix, it is
 *    accepted exactly when it is, ignoring case, "RTMIN", "RTMAX",
 *    "RTMIN+" or "RTMAX-" and all digits for N from 0 to
 *    SIGRTMAX-SIGRTMIN (giving SIGRTMIN+N or SIGRTMAX-N), "IO", or a
 *    signal's abbreviation (sigabbrev_np()), and gives that signal;
 *  - each signal's own name, "SIG"-prefixed name, lower-case name, number
 *    and signal_to_string() parse back to it, and so does every
 *    real-time signal's RTMIN+N and RTMAX-N (checked once). */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <strings.h>

#include "fuzz.h"
#include "signal-util.h"

/* Digits only, in lo..hi: the value; -EINVAL otherwise. */
static int decimal(const char *s, int lo, int hi) {
        if (!*s || strspn(s, "0123456789") != strlen(s))
                return -EINVAL;
        /* No overflow games: compare as text after leading zeros. */
        while (s[0] == '0' && s[1])
                s++;
        if (strlen(s) > 3)
                return -EINVAL;
        int v = atoi(s);
        return v >= lo && v <= hi ? v : -EINVAL;
}

static int reference(const char *s) {
        if (!*s)
                return -EINVAL;
        if (isdigit((unsigned char) s[0]))
                return decimal(s, 1, _NSIG - 1);
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        int rt = SIGRTMAX - SIGRTMIN, n;
        if (strcasecmp(s, "RTMIN") == 0)
                return SIGRTMIN;
        if (strcasecmp(s, "RTMAX") == 0)
                return SIGRTMAX;
        if (strncasecmp(s, "RTMIN+", 6) == 0)
                return (n = decimal(s + 6, 0, rt)) < 0 ? n : SIGRTMIN + n;
        if (strncasecmp(s, "RTMAX-", 6) == 0)
                return (n = decimal(s + 6, 0, rt)) < 0 ? n : SIGRTMAX - n;
        if (strcasecmp(s, "IO") == 0)
                return SIGIO;
        for (int sig = 1; sig < _NSIG; sig++) {
                const char *name = sigabbrev_np(sig);
                if (name && strcasecmp(name, s) == 0)
                        return sig;
        }
        return -EINVAL;
}

static void check_every_signal_once(void) {
        static bool done;
        if (done)
                return;
        done = true;
        for (int sig = 1; sig < _NSIG; sig++) {
                char buf[64];
                snprintf(buf, sizeof buf, "%d", sig);
                FUZZ_ASSERT(signal_from_string(buf) == sig, "\"%s\"", buf);
                FUZZ_ASSERT(signal_from_string(SIGNAL_NAME(sig)) == sig, "\"%s\"", SIGNAL_NAME(sig));
                const char *name = sigabbrev_np(sig);
                if (!name)
                        continue;
                FUZZ_ASSERT(signal_from_string(name) == sig, "\"%s\"", name);
                snprintf(buf, sizeof buf, "SIG%s", name);
                FUZZ_ASSERT(signal_from_string(buf) == sig, "\"%s\"", buf);
                for (char *p = buf; *p; p++)
                        *p = (char) tolower((unsigned char) *p);
                FUZZ_ASSERT(signal_from_string(buf) == sig, "\"%s\"", buf);
        }
        for (int n = 0; n <= SIGRTMAX - SIGRTMIN; n++) {
                char buf[64];
                snprintf(buf, sizeof buf, "RTMIN+%d", n);
                FUZZ_ASSERT(signal_from_string(buf) == SIGRTMIN + n, "\"%s\"", buf);
                snprintf(buf, sizeof buf, "SIGRTMAX-%d", n);
                FUZZ_ASSERT(signal_from_string(buf) == SIGRTMAX - n, "\"%s\"", buf);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char repr[1024];
        check_every_signal_once();
        char *s = fuzz_strndup(data, size);
        int r = signal_from_string(s);
        FUZZ_ASSERT(r == -EINVAL || (r >= 1 && r < _NSIG), "signal_from_string(\"%s\") = %d",
                    fuzz_repr(s, repr, sizeof repr), r);
        int want = reference(s);
        FUZZ_ASSERT(r == want, "signal_from_string(\"%s\") = %d, expected %d", fuzz_repr(s, repr, sizeof repr), r, want);
        free(s);
        return 0;
}
