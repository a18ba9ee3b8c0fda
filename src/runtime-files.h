/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>

/* What a handoff process keeps in its runtime directory: its control socket
 * (control.h) and its private notify directory (notify.h). It removes them
 * when it exits; one killed hard cannot. A handoff that watches another to
 * its end (the old main its next handoff, a new main its predecessor)
 * removes them for it, once that pid has exited; a handoff that starts a
 * service anew sweeps what killed ones left before (a main killed and
 * restarted by Restart=, in a directory that outlives the service). Only
 * what nobody listens on any more goes: a pid may have been reused by a
 * live handoff, or be another pid namespace's. */
void runtime_files_remove_stale(pid_t pid);

/* Returns how many it removed (a socket and a directory count one each). */
unsigned runtime_files_sweep(void);
