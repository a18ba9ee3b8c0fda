/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

/* The commit of a handover reload, on the old main's side: while still the
 * main process, tell systemd who is main now and that the reload is done,
 * in one datagram (systemd applies MAINPID= before READY=1), then wait
 * until systemd has read it (BARRIER=1, as sd_notify_barrier(3) does, but
 * in the event loop) before the next handoff is told to take over.
 *
 * MAINPID= is never queued behind anything (sdnotify_send_now()): if it
 * waited in our queue when this process exits, systemd would never learn
 * it, and would take our exit for the service's end. When the manager's
 * socket is full, or our earlier messages still wait for it to read, the
 * datagram waits here instead, in the event loop, until the socket has
 * room (at most HANDOVER_SEND_TIMEOUT); until then nothing is sent and
 * systemd names us main still. */

typedef struct Handover Handover;

typedef struct HandoverCallbacks {
        /* MAINPID= is out (called also when there is no manager to tell). */
        void (*sent)(void *userdata);
        /* systemd has read it (answered: the barrier came back), or did
         * not answer the barrier in time, or it could not be set up. */
        void (*done)(bool answered, void *userdata);
        /* MAINPID= could not be sent (the socket stayed full, or the
         * manager's is gone; logged), or is not (-ESRCH: gone() said so;
         * not logged): systemd names us main still. */
        void (*failed)(int error, void *userdata);
        /* Whether the process MAINPID= names has exited, asked before a
         * send that waited for room. */
        bool (*gone)(void *userdata);
} HandoverCallbacks;

/* Sends the datagram and arms the barrier, or waits to send it. Returns 0
 * when it is over (sent() was called, and there is nothing to wait for: no
 * service manager, or the barrier could not be set up, logged), 1 with *ret
 * when done() or failed() will be called, -errno when the datagram could not
 * be sent at all (logged): then systemd still names us main. Only the
 * callbacks called after this returns may free *ret. */
int handover_announce(sd_event *e, pid_t next_pid, const char *status, const HandoverCallbacks *cb,
                      void *userdata, Handover **ret);

/* Whether MAINPID= has gone out. */
bool handover_sent(const Handover *h);

Handover *handover_free(Handover *h);
