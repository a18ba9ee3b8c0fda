/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "time-util.h"

/* Moves the timer *s to at least now + usec, never sooner, as systemd
 * extends a unit's timeout at EXTEND_TIMEOUT_USEC=. A deadline at infinity
 * is no deadline: the timer is disabled and *s set to NULL. Returns 1 when
 * the deadline moved, 0 when it was as late already (or there is no timer),
 * -errno when it could not be set. */
int event_timer_extend(sd_event_source **s, usec_t usec);

/* When the timer s fires (CLOCK_MONOTONIC); USEC_INFINITY without one (s
 * NULL, or its time unreadable). */
usec_t event_timer_time(sd_event_source *s);
