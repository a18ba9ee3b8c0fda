/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/param.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool prefix_levels = false;

/* JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected to stdout and
 * stderr; only when stderr is still that stream does journald parse "<N>". */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        if (!e)
                return false;
        char buf[64];
        uint64_t dev, ino;
        snprintf(buf, sizeof buf, "%s", e);
        char *colon = strchr(buf, ':');
        if (!colon)
                return false;
        *colon = '\0';
        if (safe_atou64(buf, &dev) < 0 || safe_atou64(colon + 1, &ino) < 0)
                return false;
        struct stat st;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == (dev_t) dev && st.st_ino == (ino_t) ino;
}

void log_setup(void) {
        prefix_levels = stderr_is_journal();
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_internal(int level, int error, const char *fmt, ...) {
        error = error < 0 ? -error : error;
        if (level > max_level)
                return -error;

        /* The whole line is formatted into one buffer and written with one
         * write(2): a reload logs four lines, and stdio on an unbuffered
         * stderr formatted each a second time and copied it through a
         * temporary buffer (7% of handoff's CPU per reload under perf). */
        int saved = errno;
        char buf[2048];
        /* "handoff[PID]: ", made once (handoff_pid() does not change). */
        static char name[32];
        static int name_len;
        if (name_len == 0)
                name_len = snprintf(name, sizeof name, "handoff[%d]: ", (int) handoff_pid());
        int n = 0;
        if (prefix_levels) {
                /* The syslog priority journald reads, 0 to 7. */
                buf[n++] = '<';
                buf[n++] = (char) ('0' + (level & 7));
                buf[n++] = '>';
        }
        memcpy(buf + n, name, (size_t) name_len);
        n += name_len;
        /* Expand %m ourselves so the error we were handed is the one shown,
         * whatever errno became in between. */
        va_list ap;
        va_start(ap, fmt);
        errno = error;
        int m = vsnprintf(buf + n, sizeof buf - (size_t) n - 1, fmt, ap);
        va_end(ap);
        /* A line longer than the buffer is cut (prefix, message and newline
         * make at most 2047 bytes) and still ends. */
        size_t room = sizeof buf - (size_t) n - 2;
        size_t len = (size_t) n + (m < 0 ? 0 : MIN((size_t) m, room));
        buf[len++] = '\n';
        for (size_t done = 0; done < len;) {
                ssize_t w = write(STDERR_FILENO, buf + done, len - done);
                if (w < 0 && errno == EINTR)
                        continue;
                /* Nowhere to log to, or a stderr made non-blocking (by a
                 * server sharing the stream) that is full: the rest of the
                 * line is lost, as it was with stdio. (A pipe takes a line
                 * whole or not at all; a stream socket, as journald's, may
                 * take part of one, and the next line then follows the
                 * fragment.) */
                if (w <= 0)
                        break;
                done += (size_t) w;
        }
        errno = saved;
        return -error;
}
