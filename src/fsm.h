/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* The reload state machine, as a pure function of (state, event): no
 * syscalls, no clocks. The supervisor feeds it events and carries out the
 * actions it returns in a fixed order that is not the order of the bits
 * below: the outcome of the reload that ends (ROLLBACK or COMMIT, then
 * NOTIFY_READY), BAKE, HANDOVER, TAKEOVER, RETIRE_SERVING, NOTIFY_STOPPING, then
 * NOTIFY_RELOADING with START_CANDIDATE, and EXIT last (run_actions() in
 * supervisor.c). Unit tests drive it directly.
 * Every way out goes through STOPPING, so that handoff exits only once the
 * supervisor reports EV_ALL_GONE: no process of ours is ever left behind.
 *
 * The *candidate* is what is being started: the very first generation in
 * STARTING, the next one in RELOADING. In handover mode a reload's candidate
 * is the next handoff, a whole new handoff process; a successful reload
 * then hands the service over (HANDING_OVER) and this process retires
 * (STOPPING) without STOPPING=1. */

typedef enum {
        STATE_STARTING,   /* first generation starting, nothing serves yet */
        STATE_SERVING,    /* one generation serves */
        STATE_RELOADING,  /* a candidate starts beside the serving generation */
        STATE_BAKING,     /* --bake: the ready candidate serves beside the old one for a while */
        STATE_HANDING_OVER, /* handover mode: MAINPID sent, awaiting systemd's barrier */
        STATE_STOPPING,   /* everything is being retired */
        STATE_DONE,       /* handoff exits */
        _STATE_MAX,
} State;

typedef enum {
        EV_READY,          /* the candidate said READY=1 (or its delay passed) */
        EV_FAILED,         /* the candidate exited or missed its start timeout */
        EV_SERVING_EXITED, /* the serving generation's main process exited */
        EV_RELOAD,         /* SIGHUP or a reload request */
        EV_STOP,           /* SIGTERM / SIGINT */
        EV_ALL_GONE,       /* while stopping: the last process was reaped */
        EV_HANDED_OVER,    /* systemd has read MAINPID= (its barrier answered) */
        EV_BAKED,          /* the candidate outlived the bake time */
        EV_NOT_HANDED_OVER, /* MAINPID= could not be sent: systemd still knows us as main */
        _EV_MAX,
} Event;

typedef enum {
        ACT_ROLLBACK         = 1 << 0, /* stop the candidate; the old serves on */
        ACT_COMMIT           = 1 << 1, /* the candidate serves; the old retires */
        ACT_NOTIFY_READY     = 1 << 2, /* READY=1 (+STATUS) to systemd */
        ACT_RETIRE_SERVING   = 1 << 3, /* stop the serving generation */
        ACT_NOTIFY_STOPPING  = 1 << 4, /* STOPPING=1 to systemd */
        ACT_START_CANDIDATE  = 1 << 5, /* start a candidate */
        ACT_NOTIFY_RELOADING = 1 << 6, /* RELOADING=1 + MONOTONIC_USEC */
        ACT_EXIT             = 1 << 7, /* leave the event loop */
        ACT_HANDOVER         = 1 << 8, /* MAINPID=<next handoff> + READY=1, then a barrier */
        ACT_TAKEOVER         = 1 << 9, /* tell the next handoff to take over; retire ours */
        ACT_PASS_RELOAD      = 1 << 10, /* with TAKEOVER: a reload is pending, run it */
        ACT_BAKE             = 1 << 11, /* arm the bake timer (EV_BAKED when it fires) */
} Action;

typedef struct Machine {
        State state;
        bool reload_pending; /* a reload asked for during one: run once after */
        bool serving_alive;  /* false once the serving generation died mid-reload */
        bool handover;       /* a reload's candidate is the next handoff */
        bool bake;           /* --bake: a ready candidate must outlive the bake time */
} Machine;

#define MACHINE_INIT(h, b) ((Machine) { .state = STATE_STARTING, .handover = (h), .bake = (b) })

/* Applies ev to m and returns the actions (a mask of Action) to carry out.
 * The first generation is started by the caller before any event. */
unsigned machine_step(Machine *m, Event ev);

const char *state_to_string(State s);
const char *event_to_string(Event e);
