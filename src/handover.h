/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/types.h>
#include <systemd/sd-event.h>

/* The commit of a handover reload, on the old main's side: while still the
 * main process, tell systemd who is main now and that the reload is done,
 * in one datagram (systemd applies MAINPID= before READY=1), then wait
 * until systemd has read it (BARRIER=1, as sd_notify_barrier(3) does, but
 * in the event loop) before the next handoff is told to take over. */

typedef struct Handover Handover;
typedef void (*HandoverDoneFn)(void *userdata);

/* Sends the datagram and arms the barrier. Returns 1 with *ret when done()
 * will be called once systemd has read it (or after a timeout), 0 when there
 * is nothing to wait for (no service manager, or the barrier could not be
 * set up: logged), -errno when the datagram itself was not sent (logged):
 * then systemd still names us main. */
int handover_announce(sd_event *e, pid_t next_pid, const char *status, HandoverDoneFn done, void *userdata,
                      Handover **ret);

Handover *handover_free(Handover *h);
