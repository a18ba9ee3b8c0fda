/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

/* What a handoff process keeps in its runtime directory: its control socket
 * (control.h) and its private notify directory (notify.h). It removes them
 * when it exits; one killed hard cannot. A handoff that watches another to
 * its end (the old main its next handoff, a new main its predecessor)
 * removes them for it, once that pid has exited: what nobody listens on any
 * more, since the pid may have been reused by a live handoff. */
void runtime_files_remove_stale(pid_t pid);
