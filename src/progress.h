/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "notify.h"
#include "time-util.h"

/* What a candidate that takes its time is doing, as STATUS= lines to the
 * service manager (systemctl status shows them): at most one every
 * PROGRESS_INTERVAL. A line that comes sooner waits for the end of the
 * interval, and one that comes while it waits replaces it: the latest
 * wins. A line waiting when the reload ends is dropped (cancel). */
#define PROGRESS_INTERVAL (250 * USEC_PER_MSEC)
#define PROGRESS_LINE_MAX (NOTIFY_MAX_LEN / 2)

/* Sends a line (the caller escapes it for STATUS=). */
typedef void (*ProgressSend)(const char *line, void *userdata);

typedef struct Progress {
        sd_event *event;
        ProgressSend send;
        void *userdata;
        char line[PROGRESS_LINE_MAX]; /* waiting to be sent; "": none */
        usec_t sent;            /* when the last one was sent; 0: none yet */
        sd_event_source *timer; /* sends line at the end of the interval */
} Progress;

void progress_init(Progress *p, sd_event *e, ProgressSend send, void *userdata);
/* Sends line now, or at the end of the interval. A line that does not
 * fit is cut (at a byte: the caller gives one that fits). */
void progress_update(Progress *p, const char *line);
/* Drops the line waiting, if one is, and its timer (also to free p). */
void progress_cancel(Progress *p);
