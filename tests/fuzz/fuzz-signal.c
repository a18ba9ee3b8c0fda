/* SPDX-License-Identifier: MIT */
/* signal_from_string(): --stop-signal=SIG.
 *
 * Properties:
 *  - the result is -EINVAL or a signal number in 1.._NSIG-1;
 *  - it equals a reference, a port of systemd's signal_from_string() and
 *    safe_atoi() (src/basic/signal-util.c, parse-util.c): a number in
 *    1.._NSIG-1 as strtol() reads it in base 0 after blanks and an
 *    optional 0b/0o (C's octal "010" is 8); else, without an optional
 *    "SIG" prefix, a name of systemd's table ("IO" for SIGIO), "RTMIN",
 *    "RTMAX", or "RTMIN" / "RTMAX" and a signed such number in
 *    0..SIGRTMAX-SIGRTMIN or its negative; but names and prefixes in any
 *    case, and glibc's "POLL" for SIGIO too;
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

static const char *const systemd_names[] = {
        [SIGHUP] = "HUP",   [SIGINT] = "INT",       [SIGQUIT] = "QUIT",   [SIGILL] = "ILL",
        [SIGTRAP] = "TRAP", [SIGABRT] = "ABRT",     [SIGBUS] = "BUS",     [SIGFPE] = "FPE",
        [SIGKILL] = "KILL", [SIGUSR1] = "USR1",     [SIGSEGV] = "SEGV",   [SIGUSR2] = "USR2",
        [SIGPIPE] = "PIPE", [SIGALRM] = "ALRM",     [SIGTERM] = "TERM",   [SIGSTKFLT] = "STKFLT",
        [SIGCHLD] = "CHLD", [SIGCONT] = "CONT",     [SIGSTOP] = "STOP",   [SIGTSTP] = "TSTP",
        [SIGTTIN] = "TTIN", [SIGTTOU] = "TTOU",     [SIGURG] = "URG",     [SIGXCPU] = "XCPU",
        [SIGXFSZ] = "XFSZ", [SIGVTALRM] = "VTALRM", [SIGPROF] = "PROF",   [SIGWINCH] = "WINCH",
        [SIGIO] = "IO",     [SIGPWR] = "PWR",       [SIGSYS] = "SYS",
};

/* systemd's safe_atoi(), its mangle_base() inlined. */
static int safe_atoi(const char *s, int *ret) {
        unsigned base = 0;
        s += strspn(s, " \t\n\r");
        char prefix = s[0] == '0' ? (char) tolower((unsigned char) s[1]) : 0;
        if (prefix == 'b' || prefix == 'o')
                base = prefix == 'b' ? 2 : 8, s += 2;
        char *x = NULL;
        errno = 0;
        long l = strtol(s, &x, (int) base);
        if (errno > 0)
                return -errno;
        if (!x || x == s || *x != 0)
                return -EINVAL;
        if ((long) (int) l != l)
                return -ERANGE;
        *ret = (int) l;
        return 0;
}

static int reference(const char *s) {
        int signo;
        if (safe_atoi(s, &signo) >= 0)
                return signo > 0 && signo < _NSIG ? signo : -EINVAL;
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        for (size_t i = 0; i < sizeof systemd_names / sizeof systemd_names[0]; i++)
                if (systemd_names[i] && strcasecmp(systemd_names[i], s) == 0)
                        return (int) i;
        if (strcasecmp(s, "POLL") == 0)
                return SIGIO;
        if (strncasecmp(s, "RTMIN", 5) == 0) {
                const char *p = s + 5;
                if (*p == '\0')
                        return SIGRTMIN;
                if (*p != '+' || safe_atoi(p, &signo) < 0)
                        return -EINVAL;
                return signo < 0 || signo > SIGRTMAX - SIGRTMIN ? -EINVAL : signo + SIGRTMIN;
        }
        if (strncasecmp(s, "RTMAX", 5) == 0) {
                const char *p = s + 5;
                if (*p == '\0')
                        return SIGRTMAX;
                if (*p != '-' || safe_atoi(p, &signo) < 0)
                        return -EINVAL;
                return signo > 0 || signo < SIGRTMIN - SIGRTMAX ? -EINVAL : signo + SIGRTMAX;
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
