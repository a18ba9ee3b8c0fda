/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "time-util.h"

/* What a handoff process keeps in its runtime directory: its control socket
 * (control.h) and its private notify directory (notify.h). It removes them
 * when it exits; one killed hard cannot. A handoff that watches another to
 * its end (the old main its next handoff, a new main its predecessor)
 * removes them for it once that pid has exited; a handoff that starts a
 * service anew sweeps what others killed before left (a main killed and
 * restarted by Restart=, in a directory that outlives the service). Only
 * what nobody listens on any more goes: a pid may have been reused by a
 * live handoff, or be another pid namespace's. */

/* pid has exited (its pidfd said so). Returns whether anything was removed. */
bool runtime_files_remove_stale(pid_t pid);

/* How old what the sweep removes must be: a live handoff's files are not
 * listened on for a moment while it starts (between bind() and listen(),
 * between mkdir() and bind()), and in another pid namespace its pid may
 * mean nothing here. */
#define RUNTIME_FILES_MIN_AGE (5 * USEC_PER_SEC)

/* RUNTIME_FILES_MIN_AGE from now (off the start path; files left by a
 * process killed just before our start are old enough by then), removes
 * from the whole runtime directory the files of pids that are not alive
 * here, that nobody listens on, and that have not changed for
 * RUNTIME_FILES_MIN_AGE, and logs how many. */
int runtime_files_sweep_later(sd_event *e);
