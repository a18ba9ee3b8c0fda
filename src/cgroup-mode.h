/* SPDX-License-Identifier: MIT */
#pragma once

/* The values of --cgroup=, apart from cgroup.h so that the option parser
 * (and handoffctl, which checks a reload's command line with it) needs no
 * sd-event. */
typedef enum CgroupMode {
        CGROUP_AUTO,   /* use the cgroup when it is marked delegated (trusted.delegate / user.delegate) */
        CGROUP_YES,    /* use it: the unit says Delegate=yes (systemd 252 marks nothing); fail if impossible */
        CGROUP_NO,     /* process groups only */
} CgroupMode;
