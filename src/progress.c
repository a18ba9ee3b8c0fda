/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "log.h"
#include "progress.h"

void progress_init(Progress *p, sd_event *e, ProgressSend send, void *userdata) {
        *p = (Progress) { .event = e, .send = send, .userdata = userdata };
}

static void flush(Progress *p) {
        p->timer = sd_event_source_disable_unref(p->timer);
        if (!p->line[0])
                return;
        p->send(p->line, p->userdata);
        p->line[0] = '\0';
        p->sent = now_monotonic();
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        flush(userdata);
        return 0;
}

void progress_cancel(Progress *p) {
        p->timer = sd_event_source_disable_unref(p->timer);
        p->line[0] = '\0';
}

void progress_update(Progress *p, const char *line) {
        snprintf(p->line, sizeof p->line, "%s", line);
        if (p->timer)
                return; /* sent when the interval ends */
        if (!p->sent || now_monotonic() >= p->sent + PROGRESS_INTERVAL) {
                flush(p);
                return;
        }
        int r = sd_event_add_time(p->event, &p->timer, CLOCK_MONOTONIC, p->sent + PROGRESS_INTERVAL,
                                  10 * USEC_PER_MSEC, on_timer, p);
        if (r < 0) {
                /* A lost STATUS= line is fine. */
                log_debug_errno(r, "Failed to arm the progress timer: %m");
                progress_cancel(p);
        }
}
