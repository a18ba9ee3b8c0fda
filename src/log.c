/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

        /* Expand %m ourselves so the error we were handed is the one shown,
         * whatever errno became in between. */
        char buf[2048];
        va_list ap;
        va_start(ap, fmt);
        int saved = errno;
        errno = error;
        vsnprintf(buf, sizeof buf, fmt, ap);
        errno = saved;
        va_end(ap);

        if (prefix_levels)
                fprintf(stderr, "<%d>handoff[%d]: %s\n", level, (int) handoff_pid(), buf);
        else
                fprintf(stderr, "handoff[%d]: %s\n", (int) handoff_pid(), buf);
        return -error;
}
