/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "time-util.h"

/* A new loop, as sd_event_new() makes it, whose CLOCK_MONOTONIC timers
 * (every one of ours) need no fd of their own: they fail only for want of
 * memory. */
int event_new(sd_event **ret);

/* A timer usec from now on CLOCK_MONOTONIC, as sd_event_add_time_relative()
 * arms it (ret NULL: a floating one), except that a deadline past the
 * clock's range is none, as systemd's usec_add() makes it infinity: where
 * now + usec does not fit in 64 bits (usec USEC_INFINITY, or a finite
 * --drain-timeout=584542y), nothing is armed, *ret is NULL and 0 returned,
 * where sd_event_add_time_relative() fails with -EOVERFLOW. Every relative
 * timer is armed with it. */
int event_add_time_relative(sd_event *e, sd_event_source **ret, usec_t usec, usec_t accuracy,
                            sd_event_time_handler_t callback, void *userdata);

/* Moves the timer *s to at least now + usec, never sooner, as systemd
 * extends a unit's timeout at EXTEND_TIMEOUT_USEC=. A deadline at infinity
 * is no deadline: the timer is disabled and *s set to NULL. Returns 1 when
 * the deadline moved, 0 when it was as late already (or there is no timer),
 * -errno when it could not be set. */
int event_timer_extend(sd_event_source **s, usec_t usec);

/* When the timer s fires (CLOCK_MONOTONIC); USEC_INFINITY without one (s
 * NULL, or its time unreadable). */
usec_t event_timer_time(sd_event_source *s);
