/* SPDX-License-Identifier: MIT */
#pragma once

#include "listeners.h"
#include "options.h"

/* Runs the service until it stops: starts the first generation, turns
 * signals, readiness and exits into state machine events, carries out the
 * machine's actions, and talks to systemd. Returns the exit code for main(). */
int supervisor_run(const Options *o, const Listeners *l);
