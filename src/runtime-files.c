/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "control.h"
#include "event-util.h"
#include "log.h"
#include "notify.h"
#include "runtime-files.h"
#include "util.h"

bool runtime_files_remove_stale(pid_t pid) {
        bool control = control_remove_stale(pid), notify = notify_private_dir_remove_stale(pid);
        if (control || notify)
                log_info("Removed the%s%s%s left in the runtime directory by pid %d, which was killed.",
                         control ? " control socket" : "", control && notify ? " and the" : "",
                         notify ? " notify directory" : "", (int) pid);
        return control || notify;
}

/* "<prefix><pid>", the pid in decimal digits alone. */
static pid_t pid_suffix(const char *name, const char *prefix) {
        size_t l = strlen(prefix);
        uint64_t v;
        if (strncmp(name, prefix, l) != 0 || safe_atou64(name + l, &v) < 0 || v == 0 || v > INT32_MAX)
                return 0;
        return (pid_t) v;
}

static bool pid_alive(pid_t pid) {
        return kill(pid, 0) == 0 || errno == EPERM;
}

static bool changed_lately(int dirfd, const char *name, usec_t now) {
        struct stat st;
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return true; /* gone, or not ours to look at: leave it */
        usec_t changed = (usec_t) st.st_ctim.tv_sec * USEC_PER_SEC + (usec_t) st.st_ctim.tv_nsec / 1000;
        return changed + RUNTIME_FILES_MIN_AGE > now;
}

static void runtime_files_sweep(void) {
        _cleanup_free_ char *dir = NULL;
        if (control_runtime_dir(&dir) < 0)
                return;
        DIR *d = opendir(dir);
        if (!d)
                return;
        usec_t now = now_realtime(); /* st_ctim is CLOCK_REALTIME */
        unsigned n = 0;
        /* Each removal checks the directory and what it removes itself. */
        for (struct dirent *de; (de = readdir(d));) {
                pid_t c = pid_suffix(de->d_name, "control."), pid = c ? c : pid_suffix(de->d_name, "notify.");
                if (pid == 0 || pid == getpid() || pid_alive(pid) || changed_lately(dirfd(d), de->d_name, now))
                        continue;
                n += c ? control_remove_stale(pid) : notify_private_dir_remove_stale(pid);
        }
        closedir(d);
        if (n > 0)
                log_info("Removed %u runtime file%s left in %s by handoff processes that were killed.", n,
                         n == 1 ? "" : "s", dir);
}

static int on_sweep(sd_event_source *src, uint64_t usec, void *userdata) {
        runtime_files_sweep();
        return 0;
}

int runtime_files_sweep_later(sd_event *e) {
        /* Floating: freed with the loop; one per process. */
        return event_add_time_relative(e, NULL, RUNTIME_FILES_MIN_AGE, USEC_PER_SEC, on_sweep, NULL);
}
