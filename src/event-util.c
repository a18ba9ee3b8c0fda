/* SPDX-License-Identifier: MIT */
#include "event-util.h"

int event_new(sd_event **ret) {
        sd_event *e;
        int r = sd_event_new(&e);
        if (r < 0)
                return r;
        /* sd-event creates a clock's timerfd with the clock's first timer
         * and keeps it until the loop is freed, timers or none. Made now,
         * where a failure is one to start, it cannot fail later for want of
         * an fd (EMFILE), when a deadline that is not armed holds a stop or
         * a reload for good. */
        sd_event_source *s;
        r = sd_event_add_time(e, &s, CLOCK_MONOTONIC, USEC_INFINITY, 0, NULL, NULL);
        if (r < 0) {
                sd_event_unref(e);
                return r;
        }
        sd_event_source_unref(s);
        *ret = e;
        return 0;
}

int event_add_time_relative(sd_event *e, sd_event_source **ret, usec_t usec, usec_t accuracy,
                            sd_event_time_handler_t callback, void *userdata) {
        uint64_t now;
        int r = sd_event_now(e, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        usec_t at = usec_add(now, usec);
        if (at == USEC_INFINITY) {
                if (ret)
                        *ret = NULL;
                return 0;
        }
        return sd_event_add_time(e, ret, CLOCK_MONOTONIC, at, accuracy, callback, userdata);
}

usec_t event_timer_time(sd_event_source *s) {
        uint64_t t;
        if (!s || sd_event_source_get_time(s, &t) < 0)
                return USEC_INFINITY;
        return t;
}

int event_timer_extend(sd_event_source **s, usec_t usec) {
        usec_t deadline = event_timer_time(*s);
        if (deadline == USEC_INFINITY)
                return 0;
        usec_t want = usec_add(now_monotonic(), usec);
        if (want <= deadline)
                return 0;
        if (want == USEC_INFINITY) {
                *s = sd_event_source_disable_unref(*s);
                return 1;
        }
        int r = sd_event_source_set_time(*s, want);
        return r < 0 ? r : 1;
}
