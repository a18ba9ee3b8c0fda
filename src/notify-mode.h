/* SPDX-License-Identifier: MIT */
#pragma once

/* The values of --notify-socket= and --notify-access=, apart from notify.c
 * so that the option parser (and handoffctl, which checks a reload's command
 * line with it) needs no sd-event. */

/* Where a generation's NOTIFY_SOCKET lives (--notify-socket=).
 * NOTIFY_SOCKET_AUTO is a path when a private runtime directory can be had,
 * else abstract: some sd_notify implementations only speak to path sockets
 * (Ruby's sd_notify gem 0.1, which puma 5 uses, takes "@name" for a file),
 * while every one that speaks to abstract sockets speaks to paths too. */
typedef enum {
        NOTIFY_SOCKET_AUTO,
        NOTIFY_SOCKET_ABSTRACT,
        NOTIFY_SOCKET_PATH,
} NotifySocketMode;

/* Whose datagrams count for a generation (--notify-access=), as systemd's
 * NotifyAccess=: its main process only, or any process of the generation. */
typedef enum {
        NOTIFY_ACCESS_MAIN,
        NOTIFY_ACCESS_ALL,
} NotifyAccess;

/* "auto", "abstract", "path" / "main", "all"; -EINVAL for anything else. */
int notify_socket_mode_from_string(const char *s, NotifySocketMode *ret);
const char *notify_socket_mode_to_string(NotifySocketMode m);
int notify_access_from_string(const char *s, NotifyAccess *ret);
const char *notify_access_to_string(NotifyAccess a);
