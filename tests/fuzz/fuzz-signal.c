/* SPDX-License-Identifier: MIT */
/* signal_from_string(): --stop-signal=SIG.
 *
 * Properties:
 *  - the result is -EINVAL or a signal number in 1.._NSIG-1;
 *  - a decimal input is accepted exactly when it is all digits and names a
 *    signal in that range, and gives that number;
 *  - otherwise it is accepted exactly when, without an optional
 *    case-insensitive "SIG" prefix, it equals a signal's abbreviation
 *    (sigabbrev_np()) ignoring case, and gives that signal;
 *  - each signal's own name, "SIG"-prefixed name, lower-case name and
 *    number parse back to it (checked once, for every signal). */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <strings.h>

#include "fuzz.h"
#include "options.h"

static int reference(const char *s) {
        if (!*s)
                return -EINVAL;
        if (isdigit((unsigned char) s[0])) {
                if (strspn(s, "0123456789") != strlen(s))
                        return -EINVAL;
                /* No overflow games: compare as text after leading zeros. */
                while (s[0] == '0' && s[1])
                        s++;
                if (strlen(s) > 3)
                        return -EINVAL;
                int v = atoi(s);
                return v >= 1 && v < _NSIG ? v : -EINVAL;
        }
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
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
