/* SPDX-License-Identifier: MIT */
#include "control.h"
#include "log.h"
#include "notify.h"
#include "runtime-files.h"

void runtime_files_remove_stale(pid_t pid) {
        control_remove_stale(pid);
        if (notify_private_dir_remove_stale(pid))
                log_debug("Removed the notify directory left by pid %d.", (int) pid);
}
