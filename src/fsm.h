/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* The reload state machine, as a pure function of (state, event): no
 * syscalls, no clocks. The supervisor feeds it events and carries out the
 * actions it returns, in the order of the bits below. Unit tests drive it
 * directly.
 * Every way out goes through STOPPING, so that handoff exits only once the
 * supervisor reports EV_ALL_GONE: no process of ours is ever left behind.
 *
 * The "successor" is the generation being started: the very first one in
 * STARTING, the next one in RELOADING. */

typedef enum {
        STATE_STARTING,   /* first generation starting, nothing serves yet */
        STATE_SERVING,    /* one generation serves */
        STATE_RELOADING,  /* a successor starts beside the serving generation */
        STATE_STOPPING,   /* everything is being retired */
        STATE_DONE,       /* handoff exits */
        _STATE_MAX,
} State;

typedef enum {
        EV_READY,          /* the successor said READY=1 (or its delay passed) */
        EV_FAILED,         /* the successor exited or missed its start timeout */
        EV_SERVING_EXITED, /* the serving generation's main process exited */
        EV_RELOAD,         /* SIGHUP or a reload request */
        EV_STOP,           /* SIGTERM / SIGINT */
        EV_ALL_GONE,       /* while stopping: the last process was reaped */
        _EV_MAX,
} Event;

typedef enum {
        ACT_ROLLBACK         = 1 << 0, /* stop the successor; the old serves on */
        ACT_COMMIT           = 1 << 1, /* successor becomes serving; old retires */
        ACT_NOTIFY_READY     = 1 << 2, /* READY=1 (+STATUS) to systemd */
        ACT_RETIRE_SERVING   = 1 << 3, /* stop the serving generation */
        ACT_NOTIFY_STOPPING  = 1 << 4, /* STOPPING=1 to systemd */
        ACT_START_SUCCESSOR  = 1 << 5, /* start a new generation */
        ACT_NOTIFY_RELOADING = 1 << 6, /* RELOADING=1 + MONOTONIC_USEC */
        ACT_EXIT             = 1 << 7, /* leave the event loop */
} Action;

typedef struct Machine {
        State state;
        bool reload_pending; /* a reload asked for during one: run once after */
        bool serving_alive;  /* false once the serving generation died mid-reload */
} Machine;

#define MACHINE_INIT ((Machine) { .state = STATE_STARTING })

/* Applies ev to m and returns the actions (a mask of Action) to carry out.
 * The first generation is started by the caller before any event. */
unsigned machine_step(Machine *m, Event ev);

const char *state_to_string(State s);
const char *event_to_string(Event e);
