/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <stdint.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "notify.h"
#include "runtime-files.h"
#include "util.h"

void runtime_files_remove_stale(pid_t pid) {
        control_remove_stale(pid);
        if (notify_private_dir_remove_stale(pid))
                log_debug("Removed the notify directory left by pid %d.", (int) pid);
}

/* "<prefix><pid>", the pid in decimal digits alone. */
static pid_t pid_suffix(const char *name, const char *prefix) {
        size_t l = strlen(prefix);
        uint64_t v;
        if (strncmp(name, prefix, l) != 0 || safe_atou64(name + l, &v) < 0 || v == 0 || v > INT32_MAX)
                return 0;
        return (pid_t) v;
}

unsigned runtime_files_sweep(void) {
        _cleanup_free_ char *dir = NULL;
        if (control_runtime_dir(&dir) < 0)
                return 0;
        DIR *d = opendir(dir);
        if (!d)
                return 0;
        unsigned n = 0;
        /* Each removal checks the directory and what it removes itself. */
        for (struct dirent *de; (de = readdir(d));) {
                pid_t pid;
                if ((pid = pid_suffix(de->d_name, "control.")) > 0 && pid != getpid())
                        n += control_remove_stale(pid);
                else if ((pid = pid_suffix(de->d_name, "notify.")) > 0 && pid != getpid())
                        n += notify_private_dir_remove_stale(pid);
        }
        closedir(d);
        if (n > 0)
                log_info("Removed %u runtime file%s left in %s by handoff processes that were killed.", n,
                         n == 1 ? "" : "s", dir);
        return n;
}
